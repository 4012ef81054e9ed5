//! `textDocument/documentSymbol`: the keys of the config as an outline.

use coremlq::config::syntax;
use coremlq::ide::symbols::{self, Symbol, SymbolKind};
use tower_lsp_server::ls_types::{self as lsp, DocumentSymbolParams, DocumentSymbolResponse};

use crate::state::Snapshot;

/// The outline of a document.
pub fn handle(snap: &Snapshot, _params: &DocumentSymbolParams) -> Option<DocumentSymbolResponse> {
    let parse = syntax::parse(&snap.text);
    let found = symbols::symbols(&snap.text, &parse.root);
    Some(DocumentSymbolResponse::Nested(
        found.into_iter().map(|s| convert(snap, s)).collect(),
    ))
}

#[allow(deprecated)]
fn convert(snap: &Snapshot, s: Symbol) -> lsp::DocumentSymbol {
    lsp::DocumentSymbol {
        name: s.name,
        detail: s.detail,
        kind: match s.kind {
            SymbolKind::Object => lsp::SymbolKind::OBJECT,
            SymbolKind::Array => lsp::SymbolKind::ARRAY,
            SymbolKind::String => lsp::SymbolKind::STRING,
            SymbolKind::Number => lsp::SymbolKind::NUMBER,
            SymbolKind::Boolean => lsp::SymbolKind::BOOLEAN,
            SymbolKind::Null => lsp::SymbolKind::NULL,
        },
        tags: None,
        deprecated: None,
        range: snap.range(s.range),
        selection_range: snap.range(s.selection),
        children: (!s.children.is_empty())
            .then(|| s.children.into_iter().map(|c| convert(snap, c)).collect()),
    }
}
