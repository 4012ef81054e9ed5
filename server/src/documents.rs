//! The open documents: a rope per document for incremental edits, the version the client
//! gave it, and an immutable text snapshot for the analysis.

use std::collections::HashMap;
use std::sync::Arc;

use ropey::Rope;
use tower_lsp_server::ls_types::{TextDocumentContentChangeEvent, Uri};

use crate::line_index::{self, Encoding};

/// One open document.
#[derive(Debug, Clone)]
pub struct Document {
    /// The document's URI.
    pub uri: Uri,
    /// The version of the last change applied.
    pub version: i32,
    /// The text, for edits and position conversion.
    pub rope: Rope,
    /// The same text as one string, shared with background work.
    pub text: Arc<str>,
}

impl Document {
    /// A new document.
    pub fn new(uri: Uri, version: i32, text: &str) -> Document {
        Document {
            uri,
            version,
            rope: Rope::from_str(text),
            text: Arc::from(text),
        }
    }

    /// Applies the changes of one `didChange`, in order, and bumps the version.
    pub fn apply(
        &mut self,
        version: i32,
        changes: &[TextDocumentContentChangeEvent],
        enc: Encoding,
    ) {
        for change in changes {
            match change.range {
                Some(range) => {
                    let bytes = line_index::byte_range(&self.rope, range, enc);
                    let start = self.rope.byte_to_char(bytes.start);
                    let end = self.rope.byte_to_char(bytes.end);
                    self.rope.remove(start..end);
                    self.rope.insert(start, &change.text);
                }
                None => self.rope = Rope::from_str(&change.text),
            }
        }
        self.version = version;
        self.text = Arc::from(self.rope.to_string());
    }
}

/// The open documents by URI.
#[derive(Debug, Default)]
pub struct Documents {
    docs: HashMap<String, Document>,
}

impl Documents {
    /// Opens (or reopens) a document.
    pub fn open(&mut self, uri: Uri, version: i32, text: &str) {
        self.docs
            .insert(uri.as_str().to_owned(), Document::new(uri, version, text));
    }

    /// Applies a change; returns the document, or `None` when it is not open.
    pub fn change(
        &mut self,
        uri: &Uri,
        version: i32,
        changes: &[TextDocumentContentChangeEvent],
        enc: Encoding,
    ) -> Option<&Document> {
        let doc = self.docs.get_mut(uri.as_str())?;
        doc.apply(version, changes, enc);
        Some(doc)
    }

    /// Closes a document.
    pub fn close(&mut self, uri: &Uri) -> Option<Document> {
        self.docs.remove(uri.as_str())
    }

    /// A document by URI.
    pub fn get(&self, uri: &Uri) -> Option<&Document> {
        self.docs.get(uri.as_str())
    }

    /// Every open document.
    pub fn iter(&self) -> impl Iterator<Item = &Document> {
        self.docs.values()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tower_lsp_server::ls_types::{Position, Range};

    fn edit(l0: u32, c0: u32, l1: u32, c1: u32, text: &str) -> TextDocumentContentChangeEvent {
        TextDocumentContentChangeEvent {
            range: Some(Range::new(Position::new(l0, c0), Position::new(l1, c1))),
            range_length: None,
            text: text.into(),
        }
    }

    #[test]
    fn incremental_edits_on_non_ascii_text() {
        let uri: Uri = "file:///a.quant.json".parse().unwrap();
        let mut doc = Document::new(uri, 1, "{\"model\": \"😀.mlmodel\"}\n");
        // Replace the emoji (2 UTF-16 units) by "né".
        doc.apply(2, &[edit(0, 11, 0, 13, "né")], Encoding::Utf16);
        assert_eq!(&*doc.text, "{\"model\": \"né.mlmodel\"}\n");
        // Then, in UTF-8 columns, insert after "é" (bytes 11..14).
        doc.apply(
            3,
            &[edit(0, 14, 0, 14, "x"), edit(1, 0, 1, 0, "// ü")],
            Encoding::Utf8,
        );
        assert_eq!(&*doc.text, "{\"model\": \"néx.mlmodel\"}\n// ü");
        assert_eq!(doc.version, 3);
        // A full replacement.
        let full = TextDocumentContentChangeEvent {
            range: None,
            range_length: None,
            text: "{}".into(),
        };
        doc.apply(4, &[full], Encoding::Utf8);
        assert_eq!(&*doc.text, "{}");
    }
}
