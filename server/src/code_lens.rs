//! `textDocument/codeLens`: "Quantize → size (−saving)" on the first line.

use tower_lsp_server::ls_types::{CodeLens, CodeLensParams};

use crate::state::Snapshot;

/// Code lenses of a document.
pub fn handle(snap: &Snapshot, params: &CodeLensParams) -> Option<Vec<CodeLens>> {
    let _ = (snap, params);
    None
}
