//! `textDocument/inlayHint`: the size estimate after each layer entry.

use coremlq::ide::hints;
use tower_lsp_server::ls_types::{InlayHint, InlayHintLabel, InlayHintParams, InlayHintTooltip};

use crate::analysis::with_analysis;
use crate::state::Snapshot;

/// Inlay hints in a range.
pub fn handle(snap: &Snapshot, params: &InlayHintParams) -> Option<Vec<InlayHint>> {
    if !snap.session.settings.inlay_hints {
        return Some(Vec::new());
    }
    let range = crate::line_index::byte_range(&snap.rope, params.range, snap.session.encoding);
    let found = with_analysis(snap, false, |an| hints::inlay_hints(an, range));
    Some(
        found
            .into_iter()
            .map(|h| InlayHint {
                position: crate::line_index::position(&snap.rope, h.offset, snap.session.encoding),
                label: InlayHintLabel::String(h.label),
                kind: None,
                text_edits: None,
                tooltip: h.tooltip.map(InlayHintTooltip::String),
                padding_left: Some(true),
                padding_right: None,
                data: None,
            })
            .collect(),
    )
}
