//! The syntax tree of a config: JSON values with byte ranges, explicit missing pieces, and
//! the syntax errors found while building it.

use std::fmt::Write as _;

/// A byte range `start..end` in the config text (always on char boundaries).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub struct TextRange {
    /// First byte.
    pub start: usize,
    /// One past the last byte.
    pub end: usize,
}

impl TextRange {
    /// The range `start..end`.
    pub fn new(start: usize, end: usize) -> TextRange {
        TextRange {
            start,
            end: end.max(start),
        }
    }

    /// An empty range at `offset` (where something is missing).
    pub fn empty(offset: usize) -> TextRange {
        TextRange {
            start: offset,
            end: offset,
        }
    }

    /// Length in bytes.
    pub fn len(self) -> usize {
        self.end - self.start
    }

    /// Whether the range is empty.
    pub fn is_empty(self) -> bool {
        self.start == self.end
    }

    /// Whether `offset` lies in `start..=end`.
    pub fn touches(self, offset: usize) -> bool {
        self.start <= offset && offset <= self.end
    }

    /// The smallest range covering both.
    pub fn cover(self, other: TextRange) -> TextRange {
        TextRange::new(self.start.min(other.start), self.end.max(other.end))
    }

    /// As a `std` range, for slicing.
    pub fn to_range(self) -> std::ops::Range<usize> {
        self.start..self.end
    }
}

impl std::fmt::Display for TextRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}..{}", self.start, self.end)
    }
}

/// What kind of syntax error (each maps to one diagnostic code).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SyntaxErrorKind {
    /// A character that starts no token.
    UnexpectedCharacter,
    /// A token where it cannot be (a stray `]`, a second root value, …).
    UnexpectedToken,
    /// A value is missing (after a colon, between commas, empty document).
    MissingValue,
    /// A member has no `:` between key and value.
    MissingColon,
    /// Two members or elements without a `,` between them.
    MissingComma,
    /// An object is not closed.
    MissingBrace,
    /// An array is not closed.
    MissingBracket,
    /// A string is not closed.
    MissingQuote,
    /// A key where none was given (`{ : 1 }`) or a non-string key.
    MissingKey,
    /// A key written without quotes.
    UnquotedKey,
    /// A bare word that is not `true`, `false` or `null`.
    InvalidLiteral,
    /// A malformed number (`01`, `1.`, `-`, `1e`, `0x10`).
    InvalidNumber,
    /// A bad escape sequence or a control character inside a string.
    InvalidString,
    /// A `/*` comment without `*/`.
    UnterminatedComment,
    /// Nesting deeper than the parser follows.
    TooDeep,
}

/// One syntax error: where and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    /// The kind.
    pub kind: SyntaxErrorKind,
    /// The offending text, or an empty range where something is missing.
    pub range: TextRange,
    /// A sentence for the user.
    pub message: String,
}

impl SyntaxError {
    /// A new error.
    pub fn new(kind: SyntaxErrorKind, range: TextRange, message: impl Into<String>) -> SyntaxError {
        SyntaxError {
            kind,
            range,
            message: message.into(),
        }
    }
}

/// A JSON value (or the explicit absence of one) with its byte range.
#[derive(Debug, Clone, PartialEq)]
pub struct Value {
    /// The value's text (for `Missing`, an empty range where it was expected).
    pub range: TextRange,
    /// What it is.
    pub kind: ValueKind,
}

/// The kinds of value.
#[derive(Debug, Clone, PartialEq)]
pub enum ValueKind {
    /// `{ … }`.
    Object(Object),
    /// `[ … ]`.
    Array(Array),
    /// `"…"`.
    String(StringLit),
    /// A number.
    Number(NumberLit),
    /// `true` / `false`.
    Bool(bool),
    /// `null`.
    Null,
    /// Text that is no value (a syntax error was recorded for it).
    Error,
    /// Nothing where a value was expected (a syntax error was recorded for it).
    Missing,
}

/// An object.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Object {
    /// Members in text order (duplicates kept).
    pub members: Vec<Member>,
    /// Whether the closing `}` is present.
    pub closed: bool,
}

/// One `key: value` member of an object.
#[derive(Debug, Clone, PartialEq)]
pub struct Member {
    /// From the key's start to the value's end.
    pub range: TextRange,
    /// The key.
    pub key: Key,
    /// The `:`, when present.
    pub colon: Option<TextRange>,
    /// The value (`Missing` when absent).
    pub value: Value,
}

/// A member's key.
#[derive(Debug, Clone, PartialEq)]
pub struct Key {
    /// The key's text including quotes (empty when missing).
    pub range: TextRange,
    /// The decoded key.
    pub name: String,
    /// How it was written.
    pub form: KeyForm,
}

/// How a key was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyForm {
    /// `"key"`.
    Quoted,
    /// `"key` (no closing quote).
    Unterminated,
    /// `key` (a bare word; a syntax error).
    Bare,
    /// No key at all (`{ : 1 }`).
    Missing,
}

/// An array.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Array {
    /// Elements in text order (`Missing` for holes such as `[1,,2]`).
    pub elements: Vec<Value>,
    /// Whether the closing `]` is present.
    pub closed: bool,
}

/// A string literal.
#[derive(Debug, Clone, PartialEq)]
pub struct StringLit {
    /// The decoded text (escapes resolved; bad escapes kept as written).
    pub value: String,
    /// The raw text between the quotes.
    pub inner: TextRange,
    /// Whether the closing quote is present.
    pub terminated: bool,
}

/// A number literal.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NumberLit {
    /// Its value (may be infinite for huge exponents).
    pub value: f64,
    /// Its value when written as an integer (no fraction, no exponent) that fits in `i64`.
    pub integer: Option<i64>,
    /// Whether it is written as an integer (no fraction, no exponent), whatever its size.
    pub integral: bool,
}

/// The result of parsing: a tree that always exists, and the syntax errors.
#[derive(Debug, Clone, PartialEq)]
pub struct Parse {
    /// The document's root value (`Missing` for an empty document).
    pub root: Value,
    /// Syntax errors in text order of discovery.
    pub errors: Vec<SyntaxError>,
    /// Length of the parsed text in bytes.
    pub len: usize,
}

/// One step of a JSON path.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PathSegment {
    /// A member of an object.
    Key(String),
    /// An element of an array.
    Index(usize),
}

impl std::fmt::Display for PathSegment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PathSegment::Key(k) => write!(f, "{k:?}"),
            PathSegment::Index(i) => write!(f, "{i}"),
        }
    }
}

impl Value {
    /// A `Missing` value at `offset`.
    pub fn missing(offset: usize) -> Value {
        Value {
            range: TextRange::empty(offset),
            kind: ValueKind::Missing,
        }
    }

    /// The object, if this is one.
    pub fn as_object(&self) -> Option<&Object> {
        match &self.kind {
            ValueKind::Object(o) => Some(o),
            _ => None,
        }
    }

    /// The array, if this is one.
    pub fn as_array(&self) -> Option<&Array> {
        match &self.kind {
            ValueKind::Array(a) => Some(a),
            _ => None,
        }
    }

    /// The decoded string, if this is one.
    pub fn as_str(&self) -> Option<&str> {
        match &self.kind {
            ValueKind::String(s) => Some(&s.value),
            _ => None,
        }
    }

    /// The number, if this is one.
    pub fn as_number(&self) -> Option<NumberLit> {
        match &self.kind {
            ValueKind::Number(n) => Some(*n),
            _ => None,
        }
    }

    /// The boolean, if this is one.
    pub fn as_bool(&self) -> Option<bool> {
        match &self.kind {
            ValueKind::Bool(b) => Some(*b),
            _ => None,
        }
    }

    /// Whether a syntax error already covers this value (`Error` or `Missing`).
    pub fn is_broken(&self) -> bool {
        matches!(self.kind, ValueKind::Error | ValueKind::Missing)
    }

    /// The JSON type name used in messages: `an object`, `a string`, ….
    pub fn type_name(&self) -> &'static str {
        match &self.kind {
            ValueKind::Object(_) => "an object",
            ValueKind::Array(_) => "an array",
            ValueKind::String(_) => "a string",
            ValueKind::Number(n) if n.integral => "an integer",
            ValueKind::Number(_) => "a number",
            ValueKind::Bool(_) => "a boolean",
            ValueKind::Null => "null",
            ValueKind::Error => "invalid text",
            ValueKind::Missing => "nothing",
        }
    }

    /// The value at a JSON path below this one.
    pub fn at_path(&self, path: &[PathSegment]) -> Option<&Value> {
        let Some((first, rest)) = path.split_first() else {
            return Some(self);
        };
        let next = match (first, &self.kind) {
            (PathSegment::Key(k), ValueKind::Object(o)) => &o.get(k)?.value,
            (PathSegment::Index(i), ValueKind::Array(a)) => a.elements.get(*i)?,
            _ => return None,
        };
        next.at_path(rest)
    }
}

impl Object {
    /// The first member named `key`.
    pub fn get(&self, key: &str) -> Option<&Member> {
        self.members
            .iter()
            .find(|m| m.key.form != KeyForm::Missing && m.key.name == key)
    }

    /// The value of the first member named `key`.
    pub fn value(&self, key: &str) -> Option<&Value> {
        self.get(key).map(|m| &m.value)
    }

    /// Members whose key repeats an earlier key: `(first, repeat)` pairs.
    pub fn duplicates(&self) -> Vec<(&Member, &Member)> {
        let mut out = Vec::new();
        for (i, m) in self.members.iter().enumerate() {
            if m.key.form == KeyForm::Missing {
                continue;
            }
            let earlier = self
                .members
                .iter()
                .take(i)
                .find(|e| e.key.form != KeyForm::Missing && e.key.name == m.key.name);
            if let Some(first) = earlier {
                out.push((first, m));
            }
        }
        out
    }
}

impl Parse {
    /// The root object, if the document is one.
    pub fn root_object(&self) -> Option<&Object> {
        self.root.as_object()
    }

    /// The value at a JSON path (`["selector", "skip_layers", 2]`).
    pub fn at_path(&self, path: &[PathSegment]) -> Option<&Value> {
        self.root.at_path(path)
    }

    /// An indented dump of the tree with ranges, for tests and debugging.
    pub fn debug_tree(&self, text: &str) -> String {
        let mut out = String::new();
        dump(&self.root, text, 0, &mut out);
        for e in &self.errors {
            let _ = writeln!(out, "error {:?} {}: {}", e.kind, e.range, e.message);
        }
        out
    }
}

fn dump(value: &Value, text: &str, depth: usize, out: &mut String) {
    let pad = "  ".repeat(depth);
    let r = value.range;
    match &value.kind {
        ValueKind::Object(o) => {
            let _ = writeln!(
                out,
                "{pad}object {r}{}",
                if o.closed { "" } else { " (unclosed)" }
            );
            for m in &o.members {
                let colon = if m.colon.is_some() { "" } else { " (no colon)" };
                let _ = writeln!(
                    out,
                    "{pad}  member {} key {:?} {:?} {}{colon}",
                    m.range, m.key.name, m.key.form, m.key.range
                );
                dump(&m.value, text, depth + 2, out);
            }
        }
        ValueKind::Array(a) => {
            let _ = writeln!(
                out,
                "{pad}array {r}{}",
                if a.closed { "" } else { " (unclosed)" }
            );
            for e in &a.elements {
                dump(e, text, depth + 1, out);
            }
        }
        ValueKind::String(s) => {
            let t = if s.terminated { "" } else { " (unterminated)" };
            let _ = writeln!(out, "{pad}string {r} {:?}{t}", s.value);
        }
        ValueKind::Number(n) => {
            let _ = writeln!(out, "{pad}number {r} {} int={:?}", n.value, n.integer);
        }
        ValueKind::Bool(b) => {
            let _ = writeln!(out, "{pad}bool {r} {b}");
        }
        ValueKind::Null => {
            let _ = writeln!(out, "{pad}null {r}");
        }
        ValueKind::Error => {
            let _ = writeln!(
                out,
                "{pad}error {r} {:?}",
                text.get(r.to_range()).unwrap_or("")
            );
        }
        ValueKind::Missing => {
            let _ = writeln!(out, "{pad}missing {r}");
        }
    }
}
