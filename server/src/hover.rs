//! `textDocument/hover`.

use tower_lsp_server::ls_types::{Hover, HoverParams};

use crate::state::Snapshot;

/// Hover text at the cursor.
pub fn handle(snap: &Snapshot, params: &HoverParams) -> Option<Hover> {
    let _ = (snap, params);
    None
}
