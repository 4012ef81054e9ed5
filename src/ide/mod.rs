//! Protocol-free editor features for `*.quant.json` configs: diagnostics with fixes,
//! completion candidates, hover text, inlay hints, code lenses and document symbols.
//!
//! Inputs are the config text, a byte offset and what the analysis knows (the model index,
//! the plan); outputs are plain structs with byte ranges. The language server converts them
//! to protocol types; nothing here knows about positions, encodings or JSON-RPC.

use std::ops::Range;

pub mod analysis;
pub mod completion;
pub mod facts;
pub mod hints;
pub mod hover;
pub mod keys;
pub mod symbols;

pub use analysis::{Analysis, ModelInput};

/// A replacement of the bytes `range` by `new_text`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextEdit {
    /// The bytes replaced.
    pub range: Range<usize>,
    /// The text put in their place.
    pub new_text: String,
}

/// How bad a diagnostic is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// The config cannot be executed.
    Error,
    /// Probably not what the user meant.
    Warning,
    /// Worth knowing.
    Info,
    /// A gentle remark (unnecessary setting, …).
    Hint,
}

/// A quick fix: a title and the edits that apply it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fix {
    /// What the fix does, as shown in the editor's menu.
    pub title: String,
    /// The edits, in the config text.
    pub edits: Vec<TextEdit>,
}

/// One finding about a config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// The offending bytes.
    pub range: Range<usize>,
    /// How bad it is.
    pub severity: Severity,
    /// The stable code (also shown by `coremlq check`).
    pub code: String,
    /// The message.
    pub message: String,
    /// Quick fixes, best first.
    pub fixes: Vec<Fix>,
}
