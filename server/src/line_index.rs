//! The one place where byte offsets meet LSP positions.
//!
//! Everything below the server speaks byte offsets into the document text; the protocol
//! speaks `(line, character)` where a character is counted in the negotiated encoding
//! (UTF-8 bytes or UTF-16 code units). Lines end at `\n`, `\r\n` or `\r`, as the protocol
//! says (ropey is built with `cr_lines` and without `unicode_lines` for that reason).

use std::ops::Range;

use ropey::Rope;
use tower_lsp_server::ls_types::{Position, PositionEncodingKind};

/// The position encoding agreed with the client at `initialize`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Encoding {
    /// Columns count UTF-8 bytes.
    Utf8,
    /// Columns count UTF-16 code units (the protocol's default).
    #[default]
    Utf16,
}

impl Encoding {
    /// Picks UTF-8 when the client offers it, UTF-16 otherwise.
    pub fn negotiate(offered: Option<&[PositionEncodingKind]>) -> Encoding {
        match offered {
            Some(kinds) if kinds.contains(&PositionEncodingKind::UTF8) => Encoding::Utf8,
            _ => Encoding::Utf16,
        }
    }

    /// The protocol value announced in the server capabilities.
    pub fn kind(self) -> PositionEncodingKind {
        match self {
            Encoding::Utf8 => PositionEncodingKind::UTF8,
            Encoding::Utf16 => PositionEncodingKind::UTF16,
        }
    }
}

/// Byte length of line `line` without its line ending.
fn line_len_bytes(rope: &Rope, line: usize) -> usize {
    let slice = rope.line(line);
    let mut len = slice.len_bytes();
    let mut chars = slice.chars_at(slice.len_chars());
    while let Some(c) = chars.prev() {
        if c == '\n' || c == '\r' {
            len -= 1;
        } else {
            break;
        }
    }
    len
}

/// The byte offset of an LSP position. Positions past the end of a line clamp to the line's
/// end, positions past the last line clamp to the end of the text, and a column inside a
/// multi-unit character rounds down to the character's start.
pub fn offset(rope: &Rope, pos: Position, enc: Encoding) -> usize {
    let line = pos.line as usize;
    if line >= rope.len_lines() {
        return rope.len_bytes();
    }
    let start = rope.line_to_byte(line);
    let end = start + line_len_bytes(rope, line);
    let col = pos.character as usize;
    match enc {
        Encoding::Utf8 => {
            let byte = start.saturating_add(col).min(end);
            rope.char_to_byte(rope.byte_to_char(byte))
        }
        Encoding::Utf16 => {
            let start_cu = rope.char_to_utf16_cu(rope.byte_to_char(start));
            let end_cu = rope.char_to_utf16_cu(rope.byte_to_char(end));
            let cu = start_cu.saturating_add(col).min(end_cu);
            rope.char_to_byte(rope.utf16_cu_to_char(cu))
        }
    }
}

/// The LSP position of a byte offset (clamped to the text, rounded down to a character start).
pub fn position(rope: &Rope, offset: usize, enc: Encoding) -> Position {
    let offset = offset.min(rope.len_bytes());
    let char_idx = rope.byte_to_char(offset);
    let line = rope.char_to_line(char_idx);
    let line_char = rope.line_to_char(line);
    let col = match enc {
        Encoding::Utf8 => rope.char_to_byte(char_idx) - rope.line_to_byte(line),
        Encoding::Utf16 => rope.char_to_utf16_cu(char_idx) - rope.char_to_utf16_cu(line_char),
    };
    Position::new(to_u32(line), to_u32(col))
}

/// The LSP range of a byte range.
pub fn range(rope: &Rope, bytes: Range<usize>, enc: Encoding) -> tower_lsp_server::ls_types::Range {
    tower_lsp_server::ls_types::Range::new(
        position(rope, bytes.start, enc),
        position(rope, bytes.end.max(bytes.start), enc),
    )
}

/// The byte range of an LSP range (start and end ordered).
pub fn byte_range(
    rope: &Rope,
    range: tower_lsp_server::ls_types::Range,
    enc: Encoding,
) -> Range<usize> {
    let a = offset(rope, range.start, enc);
    let b = offset(rope, range.end, enc);
    a.min(b)..a.max(b)
}

fn to_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use expect_test::expect;

    fn pos(line: u32, character: u32) -> Position {
        Position::new(line, character)
    }

    /// Every character start round-trips in both encodings, and the columns are the ones
    /// the protocol prescribes.
    #[test]
    fn non_ascii_columns() {
        let text = "{\"é\": \"😀x\",\r\n  \"日本\": 1\r// ü\n}";
        let rope = Rope::from_str(text);
        let mut out = String::new();
        for (i, c) in text.char_indices() {
            let p8 = position(&rope, i, Encoding::Utf8);
            let p16 = position(&rope, i, Encoding::Utf16);
            // The `\n` of a `\r\n` has no position of its own: it clamps to the line end.
            if !(c == '\n' && text[..i].ends_with('\r')) {
                assert_eq!(offset(&rope, p8, Encoding::Utf8), i, "{c:?}");
                assert_eq!(offset(&rope, p16, Encoding::Utf16), i, "{c:?}");
            }
            if !c.is_ascii() {
                out.push_str(&format!(
                    "{c:?} byte {i}: utf8 {}:{} utf16 {}:{}\n",
                    p8.line, p8.character, p16.line, p16.character
                ));
            }
        }
        expect![[r#"
            'é' byte 2: utf8 0:2 utf16 0:2
            '😀' byte 8: utf8 0:8 utf16 0:7
            '日' byte 20: utf8 1:3 utf16 1:3
            '本' byte 23: utf8 1:6 utf16 1:4
            'ü' byte 34: utf8 2:3 utf16 2:3
        "#]]
        .assert_eq(&out);
    }

    #[test]
    fn clamping_and_rounding() {
        let rope = Rope::from_str("a😀b\r\nc");
        // Inside the surrogate pair: rounds down to the emoji's start.
        assert_eq!(offset(&rope, pos(0, 2), Encoding::Utf16), 1);
        // Inside the UTF-8 sequence: rounds down too.
        assert_eq!(offset(&rope, pos(0, 3), Encoding::Utf8), 1);
        // Past the end of the line: the line's end, before `\r\n`.
        assert_eq!(offset(&rope, pos(0, 99), Encoding::Utf16), 6);
        assert_eq!(offset(&rope, pos(0, 99), Encoding::Utf8), 6);
        // Past the last line: the end of the text.
        assert_eq!(offset(&rope, pos(7, 0), Encoding::Utf16), 9);
        assert_eq!(position(&rope, 99, Encoding::Utf16), pos(1, 1));
        // The `\n` of `\r\n` belongs to line 0.
        assert_eq!(position(&rope, 7, Encoding::Utf16), pos(0, 5));
    }

    #[test]
    fn unicode_line_separators_are_not_line_breaks() {
        // U+2028 and NEL are ordinary characters for the protocol.
        let rope = Rope::from_str("a\u{2028}b\u{85}c\nd");
        assert_eq!(
            position(&rope, rope.len_bytes(), Encoding::Utf16),
            pos(1, 1)
        );
        assert_eq!(position(&rope, 4, Encoding::Utf16), pos(0, 2));
    }

    #[test]
    fn negotiation() {
        let both = [PositionEncodingKind::UTF16, PositionEncodingKind::UTF8];
        assert_eq!(Encoding::negotiate(Some(&both)), Encoding::Utf8);
        assert_eq!(
            Encoding::negotiate(Some(&[PositionEncodingKind::UTF32])),
            Encoding::Utf16
        );
        assert_eq!(Encoding::negotiate(None), Encoding::Utf16);
    }
}
