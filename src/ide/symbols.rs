//! Document symbols: the config's members as an outline.

use std::ops::Range;

use crate::config::syntax::{Value, ValueKind};

/// The kind of a symbol's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SymbolKind {
    /// An object.
    Object,
    /// An array.
    Array,
    /// A string.
    String,
    /// A number.
    Number,
    /// A boolean.
    Boolean,
    /// `null` or a broken value.
    Null,
}

/// One member of the outline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Symbol {
    /// The key.
    pub name: String,
    /// The value, shortened, for scalars.
    pub detail: Option<String>,
    /// What the value is.
    pub kind: SymbolKind,
    /// The whole member.
    pub range: Range<usize>,
    /// The key.
    pub selection: Range<usize>,
    /// Members of an object value.
    pub children: Vec<Symbol>,
}

/// The outline of the root object.
pub fn symbols(text: &str, root: &Value) -> Vec<Symbol> {
    let Some(o) = root.as_object() else {
        return Vec::new();
    };
    o.members
        .iter()
        .filter(|m| !m.key.name.is_empty())
        .map(|m| {
            let kind = match &m.value.kind {
                ValueKind::Object(_) => SymbolKind::Object,
                ValueKind::Array(_) => SymbolKind::Array,
                ValueKind::String(_) => SymbolKind::String,
                ValueKind::Number(_) => SymbolKind::Number,
                ValueKind::Bool(_) => SymbolKind::Boolean,
                _ => SymbolKind::Null,
            };
            let detail = match kind {
                SymbolKind::Object | SymbolKind::Array => None,
                _ => text
                    .get(m.value.range.to_range())
                    .map(|s| s.chars().take(40).collect()),
            };
            Symbol {
                name: m.key.name.clone(),
                detail,
                kind,
                range: m.range.to_range(),
                selection: m.key.range.to_range(),
                children: symbols(text, &m.value),
            }
        })
        .collect()
}
