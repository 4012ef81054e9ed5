//! A zero-copy protobuf wire-format reader: varints, tags and field spans over a byte slice.
//! Every read is bounds-checked and reports the byte offset of a problem.
//!
//! Offsets are absolute positions in the slice the reader was created over (the whole file),
//! so the spans it yields can be used directly by the writer. Nothing here allocates memory
//! sized by a length read from the input.

use std::fmt;
use std::ops::Range;

/// A byte range in the buffer being read.
pub type Span = Range<usize>;

/// The longest varint protobuf allows (10 bytes carry 64 bits).
pub const MAX_VARINT_LEN: usize = 10;

/// How deep messages may nest before the reader gives up (protect the stack).
pub const MAX_DEPTH: usize = 64;

/// A malformed input: where, and what was expected there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WireError {
    /// Absolute byte offset of the problem.
    pub offset: usize,
    /// What was found and what was expected.
    pub message: String,
}

impl WireError {
    /// A new error at `offset`.
    pub fn new(offset: usize, message: impl Into<String>) -> WireError {
        WireError {
            offset,
            message: message.into(),
        }
    }
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "byte {}: {}", self.offset, self.message)
    }
}

impl std::error::Error for WireError {}

/// The four wire types Core ML files use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WireType {
    /// 0: varint (ints, bools, enums).
    Varint,
    /// 1: 8 little-endian bytes (double, fixed64).
    Fixed64,
    /// 2: length-delimited (messages, strings, bytes, packed repeated scalars).
    Len,
    /// 5: 4 little-endian bytes (float, fixed32).
    Fixed32,
}

impl WireType {
    /// The wire type's name, for messages.
    pub fn name(self) -> &'static str {
        match self {
            WireType::Varint => "varint",
            WireType::Fixed64 => "fixed64",
            WireType::Len => "length-delimited",
            WireType::Fixed32 => "fixed32",
        }
    }
}

/// Reads the varint at `pos`, which must end before `end`; returns the value and the
/// position after it. At most 10 bytes; a 10th byte above 1 overflows 64 bits (error).
pub fn read_varint(buf: &[u8], pos: usize, end: usize) -> Result<(u64, usize), WireError> {
    let end = end.min(buf.len());
    // Fast path: most tags and lengths in a model are one byte.
    if pos < end && buf[pos] < 0x80 {
        return Ok((u64::from(buf[pos]), pos + 1));
    }
    let mut value: u64 = 0;
    let mut i = pos;
    let mut shift = 0u32;
    loop {
        if i >= end {
            return Err(WireError::new(
                pos,
                format!("varint runs past the end of its message (ends at byte {end})"),
            ));
        }
        let b = buf[i];
        if shift == 63 && b > 1 {
            return Err(WireError::new(pos, "varint overflows 64 bits"));
        }
        value |= u64::from(b & 0x7f) << shift;
        i += 1;
        if b & 0x80 == 0 {
            return Ok((value, i));
        }
        shift += 7;
        if i - pos >= MAX_VARINT_LEN {
            return Err(WireError::new(pos, "varint longer than 10 bytes"));
        }
    }
}

/// One field of a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    /// Field number (≥ 1).
    pub number: u32,
    /// Wire type.
    pub wire_type: WireType,
    /// The whole field: tag, length (if any) and value.
    pub span: Span,
    /// The value: the varint bytes, the 4 or 8 fixed bytes, or the payload of a
    /// length-delimited field (without its length prefix).
    pub value: Span,
    /// The decoded scalar: the varint's value, the fixed32/fixed64 bits, or the length of a
    /// length-delimited field.
    pub scalar: u64,
}

impl Field {
    /// The varint or fixed value as a `bool` (non-zero = true).
    pub fn as_bool(&self) -> bool {
        self.scalar != 0
    }

    /// A fixed32 field as `f32`.
    pub fn as_f32(&self) -> f32 {
        f32::from_bits(self.scalar as u32)
    }

    /// The payload length of a length-delimited field.
    pub fn len(&self) -> usize {
        self.value.end - self.value.start
    }

    /// True when a length-delimited field has an empty payload.
    pub fn is_empty(&self) -> bool {
        self.value.start == self.value.end
    }
}

/// Iterates over the fields of one message, `buf[start..end]`; yields each field or the first
/// error (after which it stops).
#[derive(Debug, Clone)]
pub struct Fields<'a> {
    buf: &'a [u8],
    pos: usize,
    end: usize,
    what: &'static str,
    failed: bool,
}

impl<'a> Fields<'a> {
    /// Reads the message occupying `span` of `buf`; `what` names the message type in errors.
    pub fn new(buf: &'a [u8], span: Span, what: &'static str) -> Fields<'a> {
        let end = span.end.min(buf.len());
        Fields {
            buf,
            pos: span.start.min(end),
            end,
            what,
            failed: false,
        }
    }

    fn next_field(&mut self) -> Result<Field, WireError> {
        let start = self.pos;
        let (tag, after_tag) = read_varint(self.buf, start, self.end).map_err(|e| {
            WireError::new(e.offset, format!("{}: field tag: {}", self.what, e.message))
        })?;
        let number = tag >> 3;
        if number == 0 {
            return Err(WireError::new(
                start,
                format!(
                    "{}: field number 0 in tag 0x{tag:x} (expected a field number ≥ 1)",
                    self.what
                ),
            ));
        }
        if number > u64::from(u32::MAX >> 3) {
            return Err(WireError::new(
                start,
                format!(
                    "{}: field number {number} is larger than protobuf allows",
                    self.what
                ),
            ));
        }
        let number = number as u32;
        let wire = (tag & 7) as u8;
        let (wire_type, value, scalar, next) = match wire {
            0 => {
                let (v, next) = read_varint(self.buf, after_tag, self.end).map_err(|e| {
                    WireError::new(
                        e.offset,
                        format!("{}: field {number}: {}", self.what, e.message),
                    )
                })?;
                (WireType::Varint, after_tag..next, v, next)
            }
            1 => {
                let next = self.fixed(number, after_tag, 8)?;
                let mut b = [0u8; 8];
                b.copy_from_slice(&self.buf[after_tag..next]);
                (
                    WireType::Fixed64,
                    after_tag..next,
                    u64::from_le_bytes(b),
                    next,
                )
            }
            5 => {
                let next = self.fixed(number, after_tag, 4)?;
                let mut b = [0u8; 4];
                b.copy_from_slice(&self.buf[after_tag..next]);
                (
                    WireType::Fixed32,
                    after_tag..next,
                    u64::from(u32::from_le_bytes(b)),
                    next,
                )
            }
            2 => {
                let (len, body) = read_varint(self.buf, after_tag, self.end).map_err(|e| {
                    WireError::new(
                        e.offset,
                        format!("{}: length of field {number}: {}", self.what, e.message),
                    )
                })?;
                let remaining = self.end - body;
                if len > remaining as u64 {
                    return Err(WireError::new(
                        after_tag,
                        format!(
                            "{}: field {number} claims {len} bytes but only {remaining} remain \
                             before the end of the enclosing message at byte {}",
                            self.what, self.end
                        ),
                    ));
                }
                let next = body + len as usize;
                (WireType::Len, body..next, len, next)
            }
            3 | 4 => {
                return Err(WireError::new(
                    start,
                    format!(
                        "{}: field {number} uses wire type {wire} (a group); groups are not used \
                         by Core ML, expected a protobuf-encoded Core ML model",
                        self.what
                    ),
                ))
            }
            _ => {
                return Err(WireError::new(
                    start,
                    format!(
                        "{}: field {number} has invalid wire type {wire} (expected 0, 1, 2 or 5)",
                        self.what
                    ),
                ))
            }
        };
        self.pos = next;
        Ok(Field {
            number,
            wire_type,
            span: start..next,
            value,
            scalar,
        })
    }

    fn fixed(&self, number: u32, at: usize, n: usize) -> Result<usize, WireError> {
        if self.end - at < n {
            return Err(WireError::new(
                at,
                format!(
                    "{}: field {number} needs {n} bytes but only {} remain before byte {}",
                    self.what,
                    self.end - at,
                    self.end
                ),
            ));
        }
        Ok(at + n)
    }
}

impl Iterator for Fields<'_> {
    type Item = Result<Field, WireError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.pos >= self.end {
            return None;
        }
        let r = self.next_field();
        if r.is_err() {
            self.failed = true;
        }
        Some(r)
    }
}

/// Expects `field` to be length-delimited (a message, string, bytes or packed field).
pub fn expect_len(field: &Field, what: &str) -> Result<(), WireError> {
    if field.wire_type == WireType::Len {
        Ok(())
    } else {
        Err(WireError::new(
            field.span.start,
            format!(
                "{what} (field {}) has wire type {}, expected length-delimited",
                field.number,
                field.wire_type.name()
            ),
        ))
    }
}

/// Expects `field` to be a varint (an integer, bool or enum).
pub fn expect_varint(field: &Field, what: &str) -> Result<u64, WireError> {
    if field.wire_type == WireType::Varint {
        Ok(field.scalar)
    } else {
        Err(WireError::new(
            field.span.start,
            format!(
                "{what} (field {}) has wire type {}, expected varint",
                field.number,
                field.wire_type.name()
            ),
        ))
    }
}

/// Expects `field` to be a fixed32 (a float).
pub fn expect_f32(field: &Field, what: &str) -> Result<f32, WireError> {
    if field.wire_type == WireType::Fixed32 {
        Ok(field.as_f32())
    } else {
        Err(WireError::new(
            field.span.start,
            format!(
                "{what} (field {}) has wire type {}, expected fixed32",
                field.number,
                field.wire_type.name()
            ),
        ))
    }
}

/// Iterates over the varints packed in `buf[span]`.
#[derive(Debug, Clone)]
pub struct PackedVarints<'a> {
    buf: &'a [u8],
    pos: usize,
    end: usize,
    failed: bool,
}

impl<'a> PackedVarints<'a> {
    /// The packed varints in `span` of `buf`.
    pub fn new(buf: &'a [u8], span: Span) -> PackedVarints<'a> {
        let end = span.end.min(buf.len());
        PackedVarints {
            buf,
            pos: span.start.min(end),
            end,
            failed: false,
        }
    }
}

impl Iterator for PackedVarints<'_> {
    type Item = Result<u64, WireError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.pos >= self.end {
            return None;
        }
        match read_varint(self.buf, self.pos, self.end) {
            Ok((v, next)) => {
                self.pos = next;
                Some(Ok(v))
            }
            Err(e) => {
                self.failed = true;
                Some(Err(WireError::new(
                    e.offset,
                    format!("packed varints: {}", e.message),
                )))
            }
        }
    }
}

/// Appends a repeated integer field's values to `out`, accepting both the packed encoding
/// (length-delimited) and the unpacked one (one varint per field occurrence).
pub fn push_repeated_varint(
    buf: &[u8],
    field: &Field,
    what: &str,
    out: &mut Vec<u64>,
) -> Result<(), WireError> {
    match field.wire_type {
        WireType::Varint => {
            out.push(field.scalar);
            Ok(())
        }
        WireType::Len => {
            for v in PackedVarints::new(buf, field.value.clone()) {
                out.push(
                    v.map_err(|e| WireError::new(e.offset, format!("{what}: {}", e.message)))?,
                );
            }
            Ok(())
        }
        other => Err(WireError::new(
            field.span.start,
            format!(
                "{what} (field {}) has wire type {}, expected packed or unpacked varints",
                field.number,
                other.name()
            ),
        )),
    }
}

/// Checks that `span` holds whole little-endian floats and returns how many.
pub fn packed_f32_count(span: &Span, what: &str) -> Result<usize, WireError> {
    let len = span.end - span.start;
    if len % 4 != 0 {
        return Err(WireError::new(
            span.start,
            format!("{what}: packed floats take {len} bytes, not a multiple of 4"),
        ));
    }
    Ok(len / 4)
}

/// Decodes the little-endian floats of a packed float payload (its length must be a
/// multiple of 4; checked by the caller with [`packed_f32_count`]).
pub fn packed_f32(bytes: &[u8]) -> impl ExactSizeIterator<Item = f32> + '_ {
    bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
}

/// Number of bytes of the varint encoding of `v`.
pub fn varint_len(v: u64) -> usize {
    let bits = 64 - (v | 1).leading_zeros() as usize;
    bits.div_ceil(7)
}

/// Appends the varint encoding of `v` to `out`.
pub fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(buf: &[u8]) -> Result<Vec<Field>, WireError> {
        Fields::new(buf, 0..buf.len(), "Test").collect()
    }

    #[test]
    fn varints() {
        for v in [0u64, 1, 127, 128, 300, 1 << 35, u64::MAX] {
            let mut b = Vec::new();
            put_varint(&mut b, v);
            assert_eq!(b.len(), varint_len(v));
            assert_eq!(read_varint(&b, 0, b.len()), Ok((v, b.len())));
        }
        // 11 bytes
        let long = [0x80u8; 10].iter().copied().chain([0]).collect::<Vec<_>>();
        assert!(read_varint(&long, 0, long.len()).is_err());
        // 10th byte too large
        let mut over = vec![0xffu8; 9];
        over.push(0x02);
        assert!(read_varint(&over, 0, over.len())
            .unwrap_err()
            .message
            .contains("overflows"));
        // truncated
        assert!(read_varint(&[0x80, 0x80], 0, 2).is_err());
        // end bound is respected even when the buffer goes on
        assert!(read_varint(&[0x80, 0x01], 0, 1).is_err());
    }

    #[test]
    fn field_iteration_and_spans() {
        // field 1 varint 150, field 2 "ab", field 3 fixed32 1.0, field 4 fixed64
        let buf = [
            0x08, 0x96, 0x01, 0x12, 0x02, b'a', b'b', 0x1d, 0, 0, 0x80, 0x3f, 0x21, 1, 0, 0, 0, 0,
            0, 0, 0,
        ];
        let f = fields(&buf).unwrap();
        assert_eq!(f.len(), 4);
        assert_eq!(
            (f[0].number, f[0].scalar, f[0].span.clone()),
            (1, 150, 0..3)
        );
        assert_eq!(
            (f[1].wire_type, f[1].value.clone(), f[1].span.clone()),
            (WireType::Len, 5..7, 3..7)
        );
        assert_eq!(f[2].as_f32(), 1.0);
        assert_eq!((f[3].wire_type, f[3].scalar), (WireType::Fixed64, 1));
    }

    #[test]
    fn lying_length_names_offset_and_limit() {
        let buf = [0x0a, 0x05, 1, 2];
        let e = fields(&buf).unwrap_err();
        assert_eq!(e.offset, 1);
        assert!(
            e.message.contains("claims 5 bytes but only 2 remain"),
            "{}",
            e.message
        );
        // a length that fits the buffer but not the enclosing message
        let e = Fields::new(&[0x0a, 0x02, 1, 2], 0..3, "Inner")
            .next()
            .unwrap()
            .unwrap_err();
        assert!(e.message.contains("Inner"), "{}", e.message);
    }

    #[test]
    fn rejects_groups_bad_wire_types_and_field_zero() {
        assert!(fields(&[0x0b]).unwrap_err().message.contains("group"));
        assert!(fields(&[0x0c]).unwrap_err().message.contains("group"));
        assert!(fields(&[0x0e])
            .unwrap_err()
            .message
            .contains("invalid wire type 6"));
        assert!(fields(&[0x0f])
            .unwrap_err()
            .message
            .contains("invalid wire type 7"));
        assert!(fields(&[0x00, 0x00])
            .unwrap_err()
            .message
            .contains("field number 0"));
        assert!(fields(&[0x0d, 0, 0])
            .unwrap_err()
            .message
            .contains("needs 4 bytes"));
        assert!(fields(&[0x09, 0, 0])
            .unwrap_err()
            .message
            .contains("needs 8 bytes"));
    }

    #[test]
    fn repeated_varints_packed_and_unpacked() {
        // packed [3, 300] as field 1, then unpacked 7
        let buf = [0x0a, 0x03, 0x03, 0xac, 0x02, 0x08, 0x07];
        let mut out = Vec::new();
        for f in fields(&buf).unwrap() {
            push_repeated_varint(&buf, &f, "shape", &mut out).unwrap();
        }
        assert_eq!(out, [3, 300, 7]);
        let bad = [0x0a, 0x01, 0x80];
        let f = fields(&bad).unwrap();
        assert!(push_repeated_varint(&bad, &f[0], "shape", &mut out).is_err());
    }

    #[test]
    fn packed_floats() {
        let bytes = [0, 0, 0x80, 0x3f, 0, 0, 0, 0xc0];
        assert_eq!(packed_f32(&bytes).collect::<Vec<_>>(), [1.0, -2.0]);
        assert_eq!(packed_f32_count(&(0..8), "x"), Ok(2));
        assert!(packed_f32_count(&(0..7), "x").is_err());
    }

    #[test]
    fn never_panics_on_arbitrary_bytes() {
        let mut state = 0x1234_5678_u32;
        for len in 0..200 {
            let buf: Vec<u8> = (0..len)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 17;
                    state ^= state << 5;
                    state as u8
                })
                .collect();
            for f in Fields::new(&buf, 0..buf.len(), "Fuzz").flatten() {
                assert!(f.span.end <= buf.len() && f.value.end <= f.span.end);
                let _ = PackedVarints::new(&buf, f.value.clone()).count();
            }
        }
    }
}
