//! `textDocument/documentSymbol`: the keys of the config as an outline.

use tower_lsp_server::ls_types::{DocumentSymbolParams, DocumentSymbolResponse};

use crate::state::Snapshot;

/// The outline of a document.
pub fn handle(snap: &Snapshot, params: &DocumentSymbolParams) -> Option<DocumentSymbolResponse> {
    let _ = (snap, params);
    None
}
