//! What is at a byte offset: the JSON path and the kind of position, for completion and
//! hover in half-typed documents.

use super::parser::decode_string;
use super::tree::{KeyForm, Parse, PathSegment, TextRange, Value, ValueKind};

/// Where a cursor is: the JSON path and what kind of place it is.
#[derive(Debug, Clone, PartialEq)]
pub struct Location {
    /// For `Key` and `ObjectBody`, the path of the object holding the key; for every other
    /// kind, the path of the value at (or expected at) the cursor, e.g.
    /// `["selector", "skip_layers", 2]`.
    pub path: Vec<PathSegment>,
    /// The kind of position.
    pub kind: PositionKind,
}

/// The kinds of cursor position.
#[derive(Debug, Clone, PartialEq)]
pub enum PositionKind {
    /// Inside an object where a new key may be typed (after `{` or `,`, between members).
    ObjectBody,
    /// Inside a key (quoted, unterminated or bare).
    Key {
        /// The key's decoded text.
        name: String,
        /// The decoded text before the cursor.
        prefix: String,
        /// The key's whole text including quotes: what a completion replaces.
        range: TextRange,
    },
    /// After a member's `:` where its value is missing or not yet reached (whitespace).
    AfterColon {
        /// The range a completed value replaces (the existing value, or empty at the cursor).
        replace: TextRange,
    },
    /// In an array, where a new element may be typed (after `[` or `,`).
    ArrayElement {
        /// The index the new element would have.
        index: usize,
    },
    /// Inside a string value.
    StringValue {
        /// The decoded text before the cursor.
        prefix: String,
        /// Byte offset of the cursor from the start of the string's content.
        offset: usize,
        /// The whole literal including quotes: what a completion replaces.
        range: TextRange,
    },
    /// On a non-string scalar (number, `true`, a bare word being typed, …).
    Value {
        /// The text before the cursor.
        prefix: String,
        /// The value's range.
        range: TextRange,
    },
    /// Before or after the root value, or in an empty document.
    Outside,
}

impl Parse {
    /// What is at byte `offset` of `text` (the text that was parsed); `offset` is clamped
    /// to the text and moved back to a char boundary.
    pub fn locate(&self, text: &str, offset: usize) -> Location {
        let mut offset = offset.min(text.len());
        while !text.is_char_boundary(offset) {
            offset -= 1;
        }
        let mut path = Vec::new();
        let kind = match &self.root.kind {
            ValueKind::Missing => PositionKind::AfterColon {
                replace: TextRange::empty(offset),
            },
            _ if !inside(&self.root, offset) => PositionKind::Outside,
            _ => locate_in(&self.root, text, offset, &mut path),
        };
        Location { path, kind }
    }
}

/// Whether the cursor is within the value (for containers, strictly after the opener and
/// not after a present closer; for scalars, touching).
fn inside(v: &Value, offset: usize) -> bool {
    let r = v.range;
    match &v.kind {
        ValueKind::Object(o) => {
            r.start < offset && (offset < r.end || (!o.closed && offset == r.end))
        }
        ValueKind::Array(a) => {
            r.start < offset && (offset < r.end || (!a.closed && offset == r.end))
        }
        ValueKind::String(s) => {
            r.start < offset && (offset < r.end || (!s.terminated && offset == r.end))
        }
        ValueKind::Missing => false,
        _ => r.touches(offset),
    }
}

fn locate_in(v: &Value, text: &str, offset: usize, path: &mut Vec<PathSegment>) -> PositionKind {
    match &v.kind {
        ValueKind::Object(o) => {
            for m in &o.members {
                let k = &m.key;
                let in_key = match k.form {
                    KeyForm::Quoted => k.range.start < offset && offset < k.range.end,
                    KeyForm::Unterminated => k.range.start < offset && offset <= k.range.end,
                    KeyForm::Bare => k.range.touches(offset),
                    KeyForm::Missing => false,
                };
                if in_key {
                    let inner_start = match k.form {
                        KeyForm::Bare => k.range.start,
                        _ => k.range.start + 1,
                    };
                    let prefix = decode_prefix(text, inner_start, offset, k.form != KeyForm::Bare);
                    return PositionKind::Key {
                        name: k.name.clone(),
                        prefix,
                        range: k.range,
                    };
                }
                let Some(colon) = m.colon else { continue };
                if offset < colon.end {
                    continue;
                }
                if inside(&m.value, offset) {
                    path.push(PathSegment::Key(k.name.clone()));
                    return locate_in(&m.value, text, offset, path);
                }
                let missing = matches!(m.value.kind, ValueKind::Missing);
                if (missing || offset <= m.value.range.start)
                    && only_trivia(text, colon.end, offset)
                {
                    path.push(PathSegment::Key(k.name.clone()));
                    let replace = if missing {
                        TextRange::empty(offset)
                    } else {
                        m.value.range
                    };
                    return PositionKind::AfterColon { replace };
                }
            }
            PositionKind::ObjectBody
        }
        ValueKind::Array(a) => {
            for (i, e) in a.elements.iter().enumerate() {
                if inside(e, offset) {
                    path.push(PathSegment::Index(i));
                    return locate_in(e, text, offset, path);
                }
            }
            let index = a
                .elements
                .iter()
                .filter(|e| e.range.end <= offset && !is_hole(e))
                .count();
            path.push(PathSegment::Index(index));
            PositionKind::ArrayElement { index }
        }
        ValueKind::String(s) => {
            let prefix = decode_prefix(text, s.inner.start, offset, true);
            PositionKind::StringValue {
                prefix,
                offset: offset.saturating_sub(s.inner.start),
                range: v.range,
            }
        }
        _ => PositionKind::Value {
            prefix: text.get(v.range.start..offset).unwrap_or("").to_string(),
            range: v.range,
        },
    }
}

fn is_hole(v: &Value) -> bool {
    matches!(v.kind, ValueKind::Missing)
}

fn only_trivia(text: &str, start: usize, end: usize) -> bool {
    text.get(start..end)
        .is_some_and(|s| s.chars().all(char::is_whitespace))
}

fn decode_prefix(text: &str, start: usize, end: usize, quoted: bool) -> String {
    let range = TextRange::new(start, end.max(start));
    if quoted {
        decode_string(text, range).0
    } else {
        text.get(range.to_range()).unwrap_or("").to_string()
    }
}
