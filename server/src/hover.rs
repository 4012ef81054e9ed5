//! `textDocument/hover`: the IDE layer's text, as markdown or plaintext as the client asks.

use coremlq::ide::hover;
use tower_lsp_server::ls_types::{Hover, HoverContents, HoverParams, MarkupContent, MarkupKind};

use crate::analysis::with_analysis;
use crate::state::Snapshot;

/// Hover text at the cursor.
pub fn handle(snap: &Snapshot, params: &HoverParams) -> Option<Hover> {
    let offset = snap.offset(params.text_document_position_params.position);
    let result = with_analysis(snap, false, |an| hover::hover(an, offset))?;
    let (kind, value) = if snap.session.flags.markdown_hover {
        (MarkupKind::Markdown, result.markdown)
    } else {
        (MarkupKind::PlainText, hover::plain(&result.markdown))
    };
    Some(Hover {
        contents: HoverContents::Markup(MarkupContent { kind, value }),
        range: Some(snap.range(result.range)),
    })
}
