//! The config syntax: a tolerant JSON-with-comments parser that never fails.
//!
//! - [`parse`] turns any text into a [`Parse`]: a tree of [`Value`]s where every node has
//!   its byte [`TextRange`], missing pieces are explicit (`ValueKind::Missing`, an absent
//!   colon, an unclosed object or array, an unterminated string), and each one has a
//!   [`SyntaxError`]. `//` and `/* */` comments and trailing commas are accepted.
//! - [`Parse::locate`] tells what is at a byte offset: the JSON path and a [`PositionKind`]
//!   (in a key, after a colon, in an array element, inside a string…), which is what
//!   completion and hover need in a half-typed document.
//! - Strings are decoded (escapes resolved) and keep the raw range of their content.
//! - Duplicate keys are kept in the tree; [`Object::duplicates`] lists them.

mod lexer;
mod locate;
mod parser;
mod tree;

pub use lexer::{tokenize, Token, TokenKind};
pub use locate::{Location, PositionKind};
pub use parser::{decode_string, parse, parse_number};
pub use tree::{
    Array, Key, KeyForm, Member, NumberLit, Object, Parse, PathSegment, StringLit, SyntaxError,
    SyntaxErrorKind, TextRange, Value, ValueKind,
};

#[cfg(test)]
mod tests;
