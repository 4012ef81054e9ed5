//! The lexer: JSON tokens plus `//` and `/* */` comments (skipped as trivia).
//!
//! It never fails: anything it does not understand becomes an [`TokenKind::Unknown`] token,
//! an unterminated string ends at the end of its line, and every problem it sees is
//! recorded as a [`SyntaxError`].

use super::tree::{SyntaxError, SyntaxErrorKind, TextRange};

/// The kind of a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    /// `{`
    LBrace,
    /// `}`
    RBrace,
    /// `[`
    LBracket,
    /// `]`
    RBracket,
    /// `:`
    Colon,
    /// `,`
    Comma,
    /// A string literal; `terminated` is false when the closing quote is missing.
    String {
        /// Whether the closing quote is present.
        terminated: bool,
    },
    /// Something that starts like a number (validated by the parser).
    Number,
    /// A bare word: `true`, `false`, `null`, or an unquoted key/value being typed.
    Word,
    /// A character that starts no token.
    Unknown,
    /// The end of the text (an empty range at the end).
    Eof,
}

/// One token with its byte range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Token {
    /// What it is.
    pub kind: TokenKind,
    /// Where it is.
    pub range: TextRange,
}

/// Splits `text` into tokens (comments and whitespace dropped), ending with one `Eof` token.
pub fn tokenize(text: &str, errors: &mut Vec<SyntaxError>) -> Vec<Token> {
    let bytes = text.as_bytes();
    let mut tokens = Vec::new();
    // A byte-order mark, as some editors write, is not content.
    let mut i = if text.starts_with('\u{FEFF}') { 3 } else { 0 };
    while i < bytes.len() {
        let b = bytes[i];
        let start = i;
        let single = |kind| Token {
            kind,
            range: TextRange::new(start, start + 1),
        };
        match b {
            b' ' | b'\t' | b'\n' | b'\r' => i += 1,
            b'/' if bytes.get(i + 1) == Some(&b'/') => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                i += 2;
                loop {
                    if i >= bytes.len() {
                        errors.push(SyntaxError::new(
                            SyntaxErrorKind::UnterminatedComment,
                            TextRange::new(start, start + 2),
                            "block comment is not closed: missing `*/`",
                        ));
                        break;
                    }
                    if bytes[i] == b'*' && bytes.get(i + 1) == Some(&b'/') {
                        i += 2;
                        break;
                    }
                    i += 1;
                }
            }
            b'{' => {
                tokens.push(single(TokenKind::LBrace));
                i += 1;
            }
            b'}' => {
                tokens.push(single(TokenKind::RBrace));
                i += 1;
            }
            b'[' => {
                tokens.push(single(TokenKind::LBracket));
                i += 1;
            }
            b']' => {
                tokens.push(single(TokenKind::RBracket));
                i += 1;
            }
            b':' => {
                tokens.push(single(TokenKind::Colon));
                i += 1;
            }
            b',' => {
                tokens.push(single(TokenKind::Comma));
                i += 1;
            }
            b'"' => {
                i += 1;
                let mut terminated = false;
                while i < bytes.len() {
                    match bytes[i] {
                        b'"' => {
                            i += 1;
                            terminated = true;
                            break;
                        }
                        // A string never spans lines: a missing quote ends at the line end,
                        // so the following lines still parse.
                        b'\n' | b'\r' => break,
                        b'\\' => {
                            i += 1;
                            if i < bytes.len() && bytes[i] != b'\n' && bytes[i] != b'\r' {
                                i += char_len(text, i);
                            }
                        }
                        _ => i += 1,
                    }
                }
                let range = TextRange::new(start, i);
                if !terminated {
                    errors.push(SyntaxError::new(
                        SyntaxErrorKind::MissingQuote,
                        TextRange::empty(i),
                        "string is not closed: missing `\"`",
                    ));
                }
                tokens.push(Token {
                    kind: TokenKind::String { terminated },
                    range,
                });
            }
            b'-' | b'0'..=b'9' => {
                i += 1;
                while i < bytes.len() {
                    let c = bytes[i];
                    let after_exp = matches!(bytes[i - 1], b'e' | b'E');
                    let sign = (c == b'+' || c == b'-') && after_exp;
                    if c.is_ascii_alphanumeric() || c == b'.' || c == b'_' || sign {
                        i += 1;
                    } else {
                        break;
                    }
                }
                tokens.push(Token {
                    kind: TokenKind::Number,
                    range: TextRange::new(start, i),
                });
            }
            c if c.is_ascii_alphabetic() || c == b'_' || c == b'$' => {
                while i < bytes.len()
                    && (bytes[i].is_ascii_alphanumeric() || matches!(bytes[i], b'_' | b'$' | b'.'))
                {
                    i += 1;
                }
                tokens.push(Token {
                    kind: TokenKind::Word,
                    range: TextRange::new(start, i),
                });
            }
            _ => {
                i += char_len(text, i);
                let range = TextRange::new(start, i);
                errors.push(SyntaxError::new(
                    SyntaxErrorKind::UnexpectedCharacter,
                    range,
                    format!(
                        "unexpected character `{}`",
                        text.get(start..i).unwrap_or("?")
                    ),
                ));
                tokens.push(Token {
                    kind: TokenKind::Unknown,
                    range,
                });
            }
        }
    }
    tokens.push(Token {
        kind: TokenKind::Eof,
        range: TextRange::empty(bytes.len()),
    });
    tokens
}

/// Length in bytes of the character starting at byte `i` (1 if `i` is not a boundary).
fn char_len(text: &str, i: usize) -> usize {
    text.get(i..)
        .and_then(|s| s.chars().next())
        .map_or(1, char::len_utf8)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(text: &str) -> Vec<TokenKind> {
        let mut errors = Vec::new();
        tokenize(text, &mut errors)
            .into_iter()
            .map(|t| t.kind)
            .collect()
    }

    #[test]
    fn comments_are_trivia() {
        use TokenKind::*;
        assert_eq!(
            kinds("{ // c\n /* x */ \"a\": 1e-3, }"),
            vec![
                LBrace,
                String { terminated: true },
                Colon,
                Number,
                Comma,
                RBrace,
                Eof
            ]
        );
    }

    #[test]
    fn byte_order_mark_is_skipped() {
        let mut errors = Vec::new();
        let tokens = tokenize("\u{FEFF}{}", &mut errors);
        assert!(errors.is_empty());
        assert_eq!(tokens[0].range, TextRange::new(3, 4));
    }

    #[test]
    fn unterminated_string_stops_at_line_end() {
        let mut errors = Vec::new();
        let tokens = tokenize("\"ab\n1", &mut errors);
        assert_eq!(tokens[0].range, TextRange::new(0, 3));
        assert_eq!(tokens[1].kind, TokenKind::Number);
        assert_eq!(errors.len(), 1);
    }

    #[test]
    fn multibyte_unknown_characters() {
        let mut errors = Vec::new();
        let tokens = tokenize("é\"\\é", &mut errors);
        assert_eq!(tokens[0].range, TextRange::new(0, 2));
        assert_eq!(tokens[1].range, TextRange::new(2, 6));
    }
}
