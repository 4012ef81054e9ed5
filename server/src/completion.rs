//! `textDocument/completion`.

use tower_lsp_server::ls_types::{CompletionParams, CompletionResponse};

use crate::state::Snapshot;

/// Completion items at the cursor.
pub fn handle(snap: &Snapshot, params: &CompletionParams) -> Option<CompletionResponse> {
    let _ = (snap, params);
    None
}
