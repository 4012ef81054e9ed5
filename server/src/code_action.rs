//! `textDocument/codeAction`: quick fixes from the diagnostics, and "Quantize model".

use tower_lsp_server::ls_types::{CodeActionKind, CodeActionParams, CodeActionResponse};

use crate::state::Snapshot;

/// The kind of the "Quantize model" source action.
pub const QUANTIZE_KIND: CodeActionKind = CodeActionKind::new("source.quantize");

/// Code actions for a range.
pub fn handle(snap: &Snapshot, params: &CodeActionParams) -> Option<CodeActionResponse> {
    let _ = (snap, params);
    None
}
