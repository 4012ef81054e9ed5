//! `textDocument/codeLens`: "Quantize → size (−saving)" on the first line, running
//! `coremlq.quantize`.

use coremlq::ide::hints;
use tower_lsp_server::ls_types::{CodeLens, CodeLensParams, Command, Position, Range};

use crate::analysis::with_analysis;
use crate::commands::QUANTIZE;
use crate::state::Snapshot;

/// Code lenses of a document.
pub fn handle(snap: &Snapshot, _params: &CodeLensParams) -> Option<Vec<CodeLens>> {
    if !snap.session.settings.code_lens {
        return Some(Vec::new());
    }
    let title = with_analysis(snap, false, |an| {
        an.model.is_some().then(|| hints::quantize_lens_title(an))
    })?;
    Some(vec![CodeLens {
        range: Range::new(Position::new(0, 0), Position::new(0, 0)),
        command: Some(Command {
            title,
            command: QUANTIZE.into(),
            arguments: Some(vec![serde_json::Value::String(
                snap.uri.as_str().to_owned(),
            )]),
        }),
        data: None,
    }])
}
