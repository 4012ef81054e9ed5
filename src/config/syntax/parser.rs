//! The tolerant recursive-descent parser: never fails, records every missing piece as an
//! explicit `Missing` node (or flag) with a syntax error, and keeps parsing around it.

use super::lexer::{tokenize, Token, TokenKind};
use super::tree::{
    Array, Key, KeyForm, Member, NumberLit, Object, Parse, StringLit, SyntaxError,
    SyntaxErrorKind as K, TextRange, Value, ValueKind,
};

/// Deeper nesting is skipped as one error node (keeps the stack bounded on any input).
const MAX_DEPTH: usize = 64;

/// One kind of container, `{…}` or `[…]`: its closer, the other closer, and the messages
/// of its mistakes.
struct Container {
    close: TokenKind,
    other: TokenKind,
    unclosed: K,
    unclosed_msg: &'static str,
    /// Whether a token starts another item (then a missing `,` is reported as such).
    starts_item: fn(TokenKind) -> bool,
    between_msg: &'static str,
    comma_or_close_msg: &'static str,
    /// What follows "unexpected `x`" for a token that cannot start an item.
    unexpected: &'static str,
}

const OBJECT: Container = Container {
    close: TokenKind::RBrace,
    other: TokenKind::RBracket,
    unclosed: K::MissingBrace,
    unclosed_msg: "object is not closed: missing `}`",
    starts_item: |k| matches!(k, TokenKind::String { .. } | TokenKind::Word),
    between_msg: "expected `,` between members",
    comma_or_close_msg: "expected `,` or `}`",
    unexpected: ": expected a key",
};

const ARRAY: Container = Container {
    close: TokenKind::RBracket,
    other: TokenKind::RBrace,
    unclosed: K::MissingBracket,
    unclosed_msg: "array is not closed: missing `]`",
    starts_item: Parser::starts_value,
    between_msg: "expected `,` between elements",
    comma_or_close_msg: "expected `,` or `]`",
    unexpected: " in an array",
};

/// Parses a config text. Never fails; see [`Parse::errors`].
pub fn parse(text: &str) -> Parse {
    let mut errors = Vec::new();
    let tokens = tokenize(text, &mut errors);
    let mut p = Parser {
        text,
        tokens,
        pos: 0,
        errors,
        closers: Vec::new(),
    };
    let root = if p.peek().kind == TokenKind::Eof {
        p.error(
            K::MissingValue,
            TextRange::empty(text.len()),
            "empty document: expected `{`",
        );
        Value::missing(text.len())
    } else {
        p.value(0)
    };
    if p.peek().kind != TokenKind::Eof {
        let start = p.peek().range.start;
        p.error(
            K::UnexpectedToken,
            TextRange::new(start, text.len()),
            "unexpected text after the end of the document",
        );
    }
    let mut errors = p.errors;
    errors.sort_by_key(|e| (e.range.start, e.range.end));
    Parse {
        root,
        errors,
        len: text.len(),
    }
}

struct Parser<'t> {
    text: &'t str,
    tokens: Vec<Token>,
    pos: usize,
    errors: Vec<SyntaxError>,
    /// The closing tokens of the containers being parsed, innermost last.
    closers: Vec<TokenKind>,
}

impl Parser<'_> {
    fn peek(&self) -> Token {
        self.peek_at(0)
    }

    fn peek_at(&self, n: usize) -> Token {
        let eof = Token {
            kind: TokenKind::Eof,
            range: TextRange::empty(self.text.len()),
        };
        self.tokens.get(self.pos + n).copied().unwrap_or(eof)
    }

    fn bump(&mut self) -> Token {
        let t = self.peek();
        if t.kind != TokenKind::Eof {
            self.pos += 1;
        }
        t
    }

    /// End of the last consumed token (where a missing piece is reported).
    fn prev_end(&self) -> usize {
        match self.pos.checked_sub(1).and_then(|i| self.tokens.get(i)) {
            Some(t) => t.range.end,
            None => 0,
        }
    }

    fn error(&mut self, kind: K, range: TextRange, message: impl Into<String>) {
        self.errors.push(SyntaxError::new(kind, range, message));
    }

    fn slice(&self, range: TextRange) -> &str {
        self.text.get(range.to_range()).unwrap_or("")
    }

    /// Whether an enclosing container is closed by `kind` (so the current one is unclosed).
    fn closes_outer(&self, kind: TokenKind) -> bool {
        self.closers.contains(&kind)
    }

    fn starts_value(kind: TokenKind) -> bool {
        matches!(
            kind,
            TokenKind::LBrace
                | TokenKind::LBracket
                | TokenKind::String { .. }
                | TokenKind::Number
                | TokenKind::Word
        )
    }

    fn value(&mut self, depth: usize) -> Value {
        let t = self.peek();
        if depth >= MAX_DEPTH && matches!(t.kind, TokenKind::LBrace | TokenKind::LBracket) {
            return self.skip_deep();
        }
        match t.kind {
            TokenKind::LBrace => self.object(depth),
            TokenKind::LBracket => self.array(depth),
            TokenKind::String { .. } => {
                self.bump();
                let lit = self.string(t);
                Value {
                    range: t.range,
                    kind: ValueKind::String(lit),
                }
            }
            TokenKind::Number => {
                self.bump();
                let kind = match parse_number(self.slice(t.range)) {
                    Some(n) => ValueKind::Number(n),
                    None => {
                        let msg = format!("invalid number `{}`", self.slice(t.range));
                        self.error(K::InvalidNumber, t.range, msg);
                        ValueKind::Error
                    }
                };
                Value {
                    range: t.range,
                    kind,
                }
            }
            TokenKind::Word => {
                self.bump();
                let kind = match self.slice(t.range) {
                    "true" => ValueKind::Bool(true),
                    "false" => ValueKind::Bool(false),
                    "null" => ValueKind::Null,
                    word => {
                        let msg =
                            format!("`{word}` is not a JSON value: strings need double quotes");
                        self.error(K::InvalidLiteral, t.range, msg);
                        ValueKind::Error
                    }
                };
                Value {
                    range: t.range,
                    kind,
                }
            }
            TokenKind::Unknown => {
                // The lexer already reported the character.
                self.bump();
                Value {
                    range: t.range,
                    kind: ValueKind::Error,
                }
            }
            _ => {
                let at = self.prev_end();
                self.error(K::MissingValue, TextRange::empty(at), "expected a value");
                Value::missing(at)
            }
        }
    }

    /// Skips a too-deeply nested container as one `Error` value.
    fn skip_deep(&mut self) -> Value {
        let start = self.peek().range.start;
        let mut level = 0usize;
        loop {
            let t = self.bump();
            match t.kind {
                TokenKind::LBrace | TokenKind::LBracket => level += 1,
                TokenKind::RBrace | TokenKind::RBracket => {
                    level = level.saturating_sub(1);
                    if level == 0 {
                        break;
                    }
                }
                TokenKind::Eof => break,
                _ => {}
            }
        }
        let range = TextRange::new(start, self.prev_end());
        self.error(
            K::TooDeep,
            range,
            format!("nested more than {MAX_DEPTH} levels deep"),
        );
        Value {
            range,
            kind: ValueKind::Error,
        }
    }

    fn object(&mut self, depth: usize) -> Value {
        let mut obj = Object::default();
        let (range, closed) = self.container(&OBJECT, |p, t| match t.kind {
            // A stray `,` is reported like any other token that cannot start a member.
            TokenKind::String { .. } | TokenKind::Word | TokenKind::Colon => {
                let member = p.member(depth);
                obj.members.push(member);
                Some(true)
            }
            TokenKind::LBrace | TokenKind::LBracket | TokenKind::Number => {
                p.error(K::MissingKey, t.range, "expected a key in double quotes");
                let _ = p.value(depth + 1);
                Some(true)
            }
            _ => None,
        });
        obj.closed = closed;
        Value {
            range,
            kind: ValueKind::Object(obj),
        }
    }

    /// Parses the `{…}` or `[…]` starting at the next token: `item` parses what starts at the
    /// token it is given and returns whether a separator must follow, or `None` when the
    /// token cannot start an item (it is then skipped with an error). Returns the
    /// container's range and whether its closer is present.
    fn container(
        &mut self,
        c: &Container,
        mut item: impl FnMut(&mut Self, Token) -> Option<bool>,
    ) -> (TextRange, bool) {
        let open = self.bump();
        let mut closed = false;
        self.closers.push(c.close);
        loop {
            let t = self.peek();
            if t.kind == c.close {
                self.bump();
                closed = true;
                break;
            }
            if t.kind == TokenKind::Eof || (t.kind == c.other && self.closes_outer(c.other)) {
                let at = self.prev_end();
                self.error(c.unclosed, TextRange::empty(at), c.unclosed_msg);
                break;
            }
            match item(self, t) {
                Some(true) => {}
                Some(false) => continue,
                None => {
                    self.bump();
                    let msg = format!("unexpected `{}`{}", self.slice(t.range), c.unexpected);
                    self.error(K::UnexpectedToken, t.range, msg);
                    continue;
                }
            }
            // After an item: `,`, the closer, or a recoverable mistake.
            match self.peek().kind {
                TokenKind::Comma => {
                    self.bump();
                }
                k if k == c.close || k == c.other || k == TokenKind::Eof => {}
                k => {
                    let msg = if (c.starts_item)(k) {
                        c.between_msg
                    } else {
                        c.comma_or_close_msg
                    };
                    let at = self.prev_end();
                    self.error(K::MissingComma, TextRange::empty(at), msg);
                }
            }
        }
        self.closers.pop();
        let end = self.prev_end().max(open.range.end);
        (TextRange::new(open.range.start, end), closed)
    }

    fn member(&mut self, depth: usize) -> Member {
        let t = self.peek();
        let key = match t.kind {
            TokenKind::String { terminated } => {
                self.bump();
                let lit = self.string(t);
                let form = if terminated {
                    KeyForm::Quoted
                } else {
                    KeyForm::Unterminated
                };
                Key {
                    range: t.range,
                    name: lit.value,
                    form,
                }
            }
            TokenKind::Word => {
                self.bump();
                let name = self.slice(t.range).to_string();
                let msg = format!("key `{name}` must be in double quotes");
                self.error(K::UnquotedKey, t.range, msg);
                Key {
                    range: t.range,
                    name,
                    form: KeyForm::Bare,
                }
            }
            _ => {
                let at = t.range.start;
                self.error(
                    K::MissingKey,
                    TextRange::empty(at),
                    "expected a key before `:`",
                );
                Key {
                    range: TextRange::empty(at),
                    name: String::new(),
                    form: KeyForm::Missing,
                }
            }
        };
        let colon = if self.peek().kind == TokenKind::Colon {
            Some(self.bump().range)
        } else {
            let at = key.range.end;
            self.error(
                K::MissingColon,
                TextRange::empty(at),
                "expected `:` after the key",
            );
            None
        };
        let next = self.peek();
        // A string followed by `:` is the next member's key, not this member's value.
        let next_is_key = matches!(next.kind, TokenKind::String { .. })
            && self.peek_at(1).kind == TokenKind::Colon;
        let value =
            if (Self::starts_value(next.kind) && !next_is_key) || next.kind == TokenKind::Unknown {
                self.value(depth + 1)
            } else {
                let at = self.prev_end();
                let msg = format!("expected a value for `{}`", key.name);
                self.error(K::MissingValue, TextRange::empty(at), msg);
                Value::missing(at)
            };
        let end = value.range.end.max(colon.map_or(key.range.end, |c| c.end));
        Member {
            range: TextRange::new(key.range.start, end),
            key,
            colon,
            value,
        }
    }

    fn array(&mut self, depth: usize) -> Value {
        let mut arr = Array::default();
        let (range, closed) = self.container(&ARRAY, |p, t| match t.kind {
            TokenKind::Comma => {
                // A hole: `[1,,2]` or `[,`.
                let at = p.prev_end();
                p.error(K::MissingValue, TextRange::empty(at), "expected a value");
                arr.elements.push(Value::missing(at));
                p.bump();
                Some(false)
            }
            k if Self::starts_value(k) || k == TokenKind::Unknown => {
                let v = p.value(depth + 1);
                arr.elements.push(v);
                Some(true)
            }
            _ => None,
        });
        arr.closed = closed;
        Value {
            range,
            kind: ValueKind::Array(arr),
        }
    }

    /// Decodes a string token, reporting bad escapes and control characters.
    fn string(&mut self, t: Token) -> StringLit {
        let terminated = matches!(t.kind, TokenKind::String { terminated: true });
        let inner_end = if terminated {
            t.range.end - 1
        } else {
            t.range.end
        };
        let inner = TextRange::new(t.range.start + 1, inner_end);
        let (value, errors) = decode_string(self.text, inner);
        for (range, msg) in errors {
            self.error(K::InvalidString, range, msg);
        }
        StringLit {
            value,
            inner,
            terminated,
        }
    }
}

/// The end of the run of ASCII digits in `b` starting at `i`.
fn digits_end(b: &[u8], mut i: usize) -> usize {
    while b.get(i).is_some_and(u8::is_ascii_digit) {
        i += 1;
    }
    i
}

/// Decodes the raw text of a string literal (between the quotes): JSON escapes, with
/// problems reported as `(range, message)`; undecodable escapes are kept as written.
pub fn decode_string(text: &str, inner: TextRange) -> (String, Vec<(TextRange, String)>) {
    let raw = text.get(inner.to_range()).unwrap_or("");
    let mut out = String::with_capacity(raw.len());
    let mut errors = Vec::new();
    let mut chars = raw.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        let at = inner.start + i;
        if c != '\\' {
            if (c as u32) < 0x20 {
                errors.push((
                    TextRange::new(at, at + c.len_utf8()),
                    "control character in a string: write it as an escape".to_string(),
                ));
            }
            out.push(c);
            continue;
        }
        let Some((_, e)) = chars.next() else {
            errors.push((
                TextRange::new(at, at + 1),
                "incomplete escape sequence".to_string(),
            ));
            out.push('\\');
            break;
        };
        let simple = match e {
            '"' => Some('"'),
            '\\' => Some('\\'),
            '/' => Some('/'),
            'b' => Some('\u{8}'),
            'f' => Some('\u{c}'),
            'n' => Some('\n'),
            'r' => Some('\r'),
            't' => Some('\t'),
            _ => None,
        };
        if let Some(s) = simple {
            out.push(s);
            continue;
        }
        if e == 'u' {
            let hi = hex4(raw, i + 2);
            match hi {
                Some(hi) => {
                    for _ in 0..4 {
                        chars.next();
                    }
                    let mut code = hi;
                    let mut len = 6;
                    if (0xD800..0xDC00).contains(&hi) && raw.get(i + 6..i + 8) == Some("\\u") {
                        if let Some(lo) =
                            hex4(raw, i + 8).filter(|lo| (0xDC00..0xE000).contains(lo))
                        {
                            for _ in 0..6 {
                                chars.next();
                            }
                            code = 0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00);
                            len = 12;
                        }
                    }
                    match char::from_u32(code) {
                        Some(ch) => out.push(ch),
                        None => {
                            errors.push((
                                TextRange::new(at, at + len),
                                "unpaired surrogate in a `\\u` escape".to_string(),
                            ));
                            out.push('\u{FFFD}');
                        }
                    }
                }
                None => {
                    errors.push((
                        TextRange::new(at, at + 2),
                        "`\\u` must be followed by four hex digits".to_string(),
                    ));
                    out.push('\\');
                    out.push('u');
                }
            }
            continue;
        }
        errors.push((
            TextRange::new(at, at + 1 + e.len_utf8()),
            format!("invalid escape `\\{e}`"),
        ));
        out.push('\\');
        out.push(e);
    }
    (out, errors)
}

fn hex4(raw: &str, at: usize) -> Option<u32> {
    let digits = raw.get(at..at + 4)?;
    if !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u32::from_str_radix(digits, 16).ok()
}

/// Parses a JSON number strictly (`-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`).
pub fn parse_number(s: &str) -> Option<NumberLit> {
    let b = s.as_bytes();
    let mut i = 0;
    if b.first() == Some(&b'-') {
        i += 1;
    }
    let int_start = i;
    i = digits_end(b, i);
    let int_digits = i - int_start;
    if int_digits == 0 || (int_digits > 1 && b.get(int_start) == Some(&b'0')) {
        return None;
    }
    let mut integral = true;
    if b.get(i) == Some(&b'.') {
        integral = false;
        let start = i + 1;
        i = digits_end(b, start);
        if i == start {
            return None;
        }
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        integral = false;
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        let start = i;
        i = digits_end(b, start);
        if i == start {
            return None;
        }
    }
    if i != b.len() {
        return None;
    }
    let value: f64 = s.parse().ok()?;
    let integer = if integral {
        s.parse::<i64>().ok()
    } else {
        None
    };
    Some(NumberLit {
        value,
        integer,
        integral,
    })
}
