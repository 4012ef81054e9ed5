//! The lossless re-emitter: splices edits into the original file bytes.
//!
//! An edit replaces (or deletes) one whole field, or inserts bytes at a position inside a
//! given message. Re-emission copies every untouched field verbatim and descends only into
//! the length-delimited fields that contain an edit, recomputing their length prefixes.
//! [`measure`] runs the same walk counting bytes; [`emit`] uses its result, so the size
//! estimate and the written file cannot disagree.

use std::collections::HashMap;
use std::io::Write;
use std::ops::Range;

/// A wire-format problem at a byte offset.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("byte {offset}: {message}")]
pub struct WireError {
    /// Where.
    pub offset: usize,
    /// What.
    pub message: String,
}

fn wire_err(offset: usize, message: &str) -> WireError {
    WireError {
        offset,
        message: message.into(),
    }
}

/// Bytes of the varint encoding of `v`.
pub fn vlen(v: u64) -> u64 {
    let bits = 64 - v.leading_zeros() as u64;
    bits.div_ceil(7).max(1)
}

/// Appends `v` as a varint.
pub fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8 & 0x7f) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Appends a tag.
pub fn put_tag(out: &mut Vec<u8>, field: u32, wire_type: u8) {
    put_varint(out, (u64::from(field) << 3) | u64::from(wire_type));
}

/// Reads a varint at `pos`; returns the value and the position after it.
pub fn read_varint(bytes: &[u8], pos: usize) -> Result<(u64, usize), WireError> {
    let mut v = 0u64;
    for i in 0..10 {
        let b = *bytes
            .get(pos + i)
            .ok_or_else(|| wire_err(pos, "truncated varint"))?;
        v |= u64::from(b & 0x7f) << (7 * i);
        if b < 0x80 {
            return Ok((v, pos + i + 1));
        }
    }
    Err(wire_err(pos, "varint longer than 10 bytes"))
}

/// One field of a message, by position.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    /// Field number.
    pub number: u32,
    /// Wire type.
    pub wire_type: u8,
    /// Tag to end.
    pub span: Range<usize>,
    /// The value (for length-delimited fields, the payload without the length).
    pub value: Range<usize>,
}

/// Iterates the fields of a message body, checking every bound.
pub struct Fields<'a> {
    bytes: &'a [u8],
    pos: usize,
    end: usize,
}

/// The fields of the message whose body is `body`.
pub fn fields(bytes: &[u8], body: Range<usize>) -> Fields<'_> {
    Fields {
        bytes,
        pos: body.start,
        end: body.end.min(bytes.len()),
    }
}

impl Iterator for Fields<'_> {
    type Item = Result<Field, WireError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.pos >= self.end {
            return None;
        }
        let r = self.read();
        if r.is_err() {
            self.pos = self.end;
        }
        Some(r)
    }
}

impl Fields<'_> {
    fn read(&mut self) -> Result<Field, WireError> {
        let start = self.pos;
        let (tag, p) = read_varint(self.bytes, start)?;
        let number =
            u32::try_from(tag >> 3).map_err(|_| wire_err(start, "field number too large"))?;
        let wire_type = (tag & 7) as u8;
        if number == 0 {
            return Err(wire_err(start, "field number 0"));
        }
        let (value, end) = match wire_type {
            0 => {
                let (_, e) = read_varint(self.bytes, p)?;
                (p..e, e)
            }
            1 => (p..p + 8, p + 8),
            5 => (p..p + 4, p + 4),
            2 => {
                let (len, v) = read_varint(self.bytes, p)?;
                let len = usize::try_from(len).map_err(|_| wire_err(p, "length too large"))?;
                let e = v
                    .checked_add(len)
                    .ok_or_else(|| wire_err(p, "length too large"))?;
                (v..e, e)
            }
            _ => return Err(wire_err(start, "unsupported wire type (groups)")),
        };
        if end > self.end {
            return Err(wire_err(start, "field runs past the end of its message"));
        }
        self.pos = end;
        Ok(Field {
            number,
            wire_type,
            span: start..end,
            value,
        })
    }
}

/// What an edit puts in place of its span.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Content {
    /// Literal bytes (empty = deletion).
    Bytes(Vec<u8>),
    /// A tensor field produced while emitting: `tag`, then the varint length, then
    /// `body_len` bytes that the producer callback returns for `job`.
    Tensor {
        /// Index into the caller's job list.
        job: usize,
        /// The field's tag bytes.
        tag: Vec<u8>,
        /// The exact length of the WeightParams body.
        body_len: u64,
    },
}

impl Content {
    /// Bytes this content occupies.
    pub fn len(&self) -> u64 {
        match self {
            Content::Bytes(b) => b.len() as u64,
            Content::Tensor { tag, body_len, .. } => tag.len() as u64 + vlen(*body_len) + body_len,
        }
    }

    /// Whether the content is empty (a deletion).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// One edit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Edit {
    /// The whole field replaced, or an empty range for an insertion.
    pub span: Range<usize>,
    /// For insertions: the start of the body of the message the bytes go into (several
    /// nested messages can end at the same byte).
    pub container: usize,
    /// The new bytes.
    pub content: Content,
}

impl Edit {
    /// Replaces a whole field.
    pub fn replace(span: Range<usize>, content: Content) -> Edit {
        Edit {
            container: span.start,
            span,
            content,
        }
    }

    /// Inserts bytes at `at`, inside the message whose body starts at `container`.
    pub fn insert(at: usize, container: usize, bytes: Vec<u8>) -> Edit {
        Edit {
            span: at..at,
            container,
            content: Content::Bytes(bytes),
        }
    }
}

/// Sorted, non-overlapping edits of one file.
#[derive(Debug, Clone, Default)]
pub struct Edits {
    edits: Vec<Edit>,
}

impl Edits {
    /// Sorts and checks edits (overlaps are a bug in the caller).
    pub fn new(mut edits: Vec<Edit>) -> Result<Edits, WireError> {
        edits.sort_by(|a, b| {
            (a.span.start, !a.span.is_empty(), a.container).cmp(&(
                b.span.start,
                !b.span.is_empty(),
                b.container,
            ))
        });
        for w in edits.windows(2) {
            if let [a, b] = w {
                if !a.span.is_empty() && b.span.start < a.span.end {
                    return Err(wire_err(b.span.start, "overlapping edits"));
                }
            }
        }
        Ok(Edits { edits })
    }

    /// The edits, sorted.
    pub fn as_slice(&self) -> &[Edit] {
        &self.edits
    }
}

/// The new lengths of every message re-emitted, from [`measure`].
#[derive(Debug, Clone, Default)]
pub struct Layout {
    /// New total size.
    pub total: u64,
    lengths: HashMap<usize, u64>,
}

/// Computes the size of the file after `edits` (the message spans the whole of `bytes`).
pub fn measure(bytes: &[u8], edits: &Edits) -> Result<Layout, WireError> {
    let mut layout = Layout::default();
    layout.total = measure_body(bytes, 0..bytes.len(), edits.as_slice(), &mut layout.lengths)?;
    Ok(layout)
}

/// The edits that fall inside `value` (a nested message body).
fn inside(edits: &[Edit], value: &Range<usize>) -> Range<usize> {
    let lo = edits.partition_point(|e| e.span.start < value.start);
    let mut hi = lo;
    while let Some(e) = edits.get(hi) {
        let within = if e.span.is_empty() {
            e.span.start <= value.end && e.container >= value.start
        } else {
            e.span.end <= value.end
        };
        if e.span.start > value.end || !within {
            break;
        }
        hi += 1;
    }
    lo..hi
}

/// Walks `body` with its edits, calling `visit` for each piece in output order.
fn walk<'e>(
    bytes: &[u8],
    body: Range<usize>,
    edits: &'e [Edit],
    visit: &mut dyn FnMut(Piece<'e>) -> Result<(), WireError>,
) -> Result<(), WireError> {
    if edits.is_empty() {
        visit(Piece::Copy(body))?;
        return Ok(());
    }
    let mut i = 0; // next edit
    let mut copy_from = body.start;
    let mut it = fields(bytes, body.clone());
    loop {
        // Insertions into this message at the current field boundary.
        let next_field = match it.next() {
            Some(f) => Some(f?),
            None => None,
        };
        let boundary = next_field.as_ref().map_or(body.end, |f| f.span.start);
        while let Some(e) = edits.get(i) {
            if e.span.is_empty() && e.span.start == boundary && e.container == body.start {
                if copy_from < boundary {
                    visit(Piece::Copy(copy_from..boundary))?;
                }
                copy_from = boundary;
                visit(Piece::Content(&e.content))?;
                i += 1;
            } else {
                break;
            }
        }
        let Some(f) = next_field else { break };
        // Edits of this field: the whole field, or inside its value.
        let Some(e) = edits.get(i) else { break };
        if e.span.start >= f.span.end
            && !(e.span.is_empty() && e.span.start == f.span.end && e.container > f.span.start)
        {
            continue;
        }
        if copy_from < f.span.start {
            visit(Piece::Copy(copy_from..f.span.start))?;
        }
        copy_from = f.span.end;
        if e.span == f.span {
            visit(Piece::Content(&e.content))?;
            i += 1;
            continue;
        }
        if f.wire_type != 2 {
            return Err(wire_err(
                e.span.start,
                "edit inside a field that is not a message",
            ));
        }
        let r = inside(&edits[i..], &f.value);
        if r.is_empty() {
            return Err(wire_err(e.span.start, "edit straddles a field boundary"));
        }
        let sub = &edits[i + r.start..i + r.end];
        visit(Piece::Nested {
            tag: f.span.start..len_start(bytes, &f)?,
            value: f.value.clone(),
            edits: sub,
        })?;
        i += r.end;
    }
    if copy_from < body.end {
        visit(Piece::Copy(copy_from..body.end))?;
    }
    if i != edits.len() {
        let at = edits.get(i).map_or(body.end, |e| e.span.start);
        return Err(wire_err(at, "edit does not fall on a field of its message"));
    }
    Ok(())
}

/// Where the length varint of a length-delimited field starts.
fn len_start(bytes: &[u8], f: &Field) -> Result<usize, WireError> {
    let (_, p) = read_varint(bytes, f.span.start)?;
    Ok(p)
}

enum Piece<'e> {
    Copy(Range<usize>),
    Content(&'e Content),
    Nested {
        tag: Range<usize>,
        value: Range<usize>,
        edits: &'e [Edit],
    },
}

fn measure_body(
    bytes: &[u8],
    body: Range<usize>,
    edits: &[Edit],
    lengths: &mut HashMap<usize, u64>,
) -> Result<u64, WireError> {
    let mut total = 0u64;
    let mut nested = Vec::new();
    walk(bytes, body, edits, &mut |p| {
        match p {
            Piece::Copy(r) => total += (r.end - r.start) as u64,
            Piece::Content(c) => total += c.len(),
            Piece::Nested { tag, value, edits } => nested.push((tag, value, edits)),
        }
        Ok(())
    })?;
    for (tag, value, sub) in nested {
        let inner = measure_body(bytes, value.clone(), sub, lengths)?;
        lengths.insert(value.start, inner);
        total += (tag.end - tag.start) as u64 + vlen(inner) + inner;
    }
    Ok(total)
}

/// Writes the body bytes of a tensor job to the output (in as many writes as it likes, so
/// that a large payload never has to exist whole) and returns how many it wrote.
pub type Producer<'a> = dyn FnMut(usize, &mut dyn Write) -> Result<u64, EmitError> + 'a;

/// Why emission failed.
#[derive(Debug, thiserror::Error)]
pub enum EmitError {
    /// The input bytes are not what the edits expect.
    #[error(transparent)]
    Wire(#[from] WireError),
    /// Writing failed.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// A tensor job failed (the caller's error, boxed).
    #[error("{0}")]
    Job(Box<dyn std::error::Error + Send + Sync>),
    /// A job produced a body of another length than measured (a bug).
    #[error("tensor job {job} produced {got} bytes, {expected} were planned")]
    Length {
        /// The job.
        job: usize,
        /// Planned length.
        expected: u64,
        /// Produced length.
        got: u64,
    },
}

/// Copies an unchanged range of the input to the output by other means than slicing the
/// input bytes (e.g. positioned reads); returns false to let the slice be used.
pub type Copier<'a> = dyn FnMut(Range<usize>, &mut dyn Write) -> Result<bool, EmitError> + 'a;

/// Writes the edited file to `out`, producing tensor bodies on demand.
pub fn emit(
    bytes: &[u8],
    edits: &Edits,
    layout: &Layout,
    out: &mut dyn Write,
    produce: &mut Producer<'_>,
) -> Result<(), EmitError> {
    emit_with(bytes, edits, layout, out, produce, &mut |_, _| Ok(false))
}

/// [`emit`] with a custom copier for unchanged ranges.
pub fn emit_with(
    bytes: &[u8],
    edits: &Edits,
    layout: &Layout,
    out: &mut dyn Write,
    produce: &mut Producer<'_>,
    copy: &mut Copier<'_>,
) -> Result<(), EmitError> {
    let mut sink = Sink { out, produce, copy };
    emit_body(bytes, 0..bytes.len(), edits.as_slice(), layout, &mut sink)
}

struct Sink<'s, 'p, 'c> {
    out: &'s mut dyn Write,
    produce: &'s mut Producer<'p>,
    copy: &'s mut Copier<'c>,
}

fn emit_body(
    bytes: &[u8],
    body: Range<usize>,
    edits: &[Edit],
    layout: &Layout,
    sink: &mut Sink<'_, '_, '_>,
) -> Result<(), EmitError> {
    let mut pieces = Vec::new();
    walk(bytes, body, edits, &mut |p| {
        pieces.push(p);
        Ok(())
    })?;
    let mut buf = Vec::new();
    for p in pieces {
        match p {
            Piece::Copy(r) => {
                if !(sink.copy)(r.clone(), &mut *sink.out)? {
                    sink.out.write_all(
                        bytes
                            .get(r.clone())
                            .ok_or_else(|| wire_err(r.start, "range outside the file"))?,
                    )?;
                }
            }
            Piece::Content(Content::Bytes(b)) => sink.out.write_all(b)?,
            Piece::Content(Content::Tensor { job, tag, body_len }) => {
                buf.clear();
                buf.extend_from_slice(tag);
                put_varint(&mut buf, *body_len);
                sink.out.write_all(&buf)?;
                let got = (sink.produce)(*job, &mut *sink.out)?;
                if got != *body_len {
                    return Err(EmitError::Length {
                        job: *job,
                        expected: *body_len,
                        got,
                    });
                }
            }
            Piece::Nested { tag, value, edits } => {
                let len = *layout
                    .lengths
                    .get(&value.start)
                    .ok_or_else(|| wire_err(value.start, "message not measured"))?;
                sink.out.write_all(
                    bytes
                        .get(tag.clone())
                        .ok_or_else(|| wire_err(tag.start, "range outside the file"))?,
                )?;
                buf.clear();
                put_varint(&mut buf, len);
                sink.out.write_all(&buf)?;
                emit_body(bytes, value, edits, layout, sink)?;
            }
        }
    }
    Ok(())
}

/// Finds where a field `number` goes in canonical (ascending) order inside `body`: the
/// start of the first field with a larger number, or the body's end.
pub fn insert_position(bytes: &[u8], body: Range<usize>, number: u32) -> Result<usize, WireError> {
    for f in fields(bytes, body.clone()) {
        let f = f?;
        if f.number > number {
            return Ok(f.span.start);
        }
    }
    Ok(body.end)
}

/// All fields `number` of a message body.
pub fn find_fields(bytes: &[u8], body: Range<usize>, number: u32) -> Result<Vec<Field>, WireError> {
    let mut out = Vec::new();
    for f in fields(bytes, body) {
        let f = f?;
        if f.number == number {
            out.push(f);
        }
    }
    Ok(out)
}

/// The value of a length-delimited field whose whole span is `span`.
pub fn body_of(bytes: &[u8], span: Range<usize>) -> Result<Range<usize>, WireError> {
    let (_, p) = read_varint(bytes, span.start)?;
    let (len, v) = read_varint(bytes, p)?;
    let end = v
        .checked_add(usize::try_from(len).map_err(|_| wire_err(p, "length too large"))?)
        .ok_or_else(|| wire_err(p, "length too large"))?;
    if end != span.end {
        return Err(wire_err(span.start, "field length does not match its span"));
    }
    Ok(v..end)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// message { 1: "ab", 2: { 3: 7, 4: "xyz" }, 5: 1 }
    fn sample() -> Vec<u8> {
        let mut inner = Vec::new();
        put_tag(&mut inner, 3, 0);
        put_varint(&mut inner, 7);
        put_tag(&mut inner, 4, 2);
        put_varint(&mut inner, 3);
        inner.extend_from_slice(b"xyz");
        let mut m = Vec::new();
        put_tag(&mut m, 1, 2);
        put_varint(&mut m, 2);
        m.extend_from_slice(b"ab");
        put_tag(&mut m, 2, 2);
        put_varint(&mut m, inner.len() as u64);
        m.extend_from_slice(&inner);
        put_tag(&mut m, 5, 0);
        put_varint(&mut m, 1);
        m
    }

    fn run(bytes: &[u8], edits: Vec<Edit>) -> Vec<u8> {
        let edits = Edits::new(edits).unwrap();
        let layout = measure(bytes, &edits).unwrap();
        let mut out = Vec::new();
        emit(bytes, &edits, &layout, &mut out, &mut |_, out| {
            out.write_all(&[9; 150])?;
            out.write_all(&[9; 50])?;
            Ok(200)
        })
        .unwrap();
        assert_eq!(out.len() as u64, layout.total);
        out
    }

    #[test]
    fn no_edits_copies_verbatim() {
        let b = sample();
        assert_eq!(run(&b, vec![]), b);
    }

    #[test]
    fn nested_replacement_fixes_the_length_prefix() {
        let b = sample();
        // field 4 inside field 2: tag at 4+2+2 = 8.
        let inner_body = body_of(&b, 4..b.len() - 2).unwrap();
        let f4 = find_fields(&b, inner_body.clone(), 4).unwrap().remove(0);
        let mut repl = Vec::new();
        put_tag(&mut repl, 4, 2);
        put_varint(&mut repl, 1);
        repl.push(b'Q');
        let out = run(&b, vec![Edit::replace(f4.span, Content::Bytes(repl))]);
        assert_eq!(
            out,
            vec![0x0a, 2, b'a', b'b', 0x12, 5, 0x18, 7, 0x22, 1, b'Q', 0x28, 1]
        );
    }

    #[test]
    fn insertions_deletions_and_tensor_jobs() {
        let b = sample();
        let inner_body = body_of(&b, 4..b.len() - 2).unwrap();
        // Insert field 3.5 → use 4 at the end of the inner message, delete field 1, and
        // replace field 5 by a 200-byte tensor (length prefix of 2 bytes).
        let out = run(
            &b,
            vec![
                Edit::insert(inner_body.end, inner_body.start, vec![0x30, 1]),
                Edit::replace(0..4, Content::Bytes(vec![])),
                Edit::replace(
                    b.len() - 2..b.len(),
                    Content::Tensor {
                        job: 0,
                        tag: vec![0x2a],
                        body_len: 200,
                    },
                ),
            ],
        );
        assert_eq!(&out[..4], &[0x12, 9, 0x18, 7]);
        assert_eq!(&out[9..11], &[0x30, 1]);
        assert_eq!(&out[11..14], &[0x2a, 0xc8, 0x01]);
        assert_eq!(out.len(), 14 + 200);
    }

    #[test]
    fn insertion_at_the_end_of_the_outer_message_is_not_nested() {
        let b = sample();
        let out = run(&b, vec![Edit::insert(b.len(), 0, vec![0x30, 1])]);
        assert_eq!(&out[..b.len()], &b[..]);
        assert_eq!(&out[b.len()..], &[0x30, 1]);
        let lenpos = find_fields(&b, 0..b.len(), 2).unwrap().remove(0);
        let inner = lenpos.value.clone();
        let out = run(
            &b,
            vec![Edit::insert(inner.end, inner.start, vec![0x30, 1])],
        );
        assert_eq!(out[5], 9, "inner length grew from 7 to 9");
    }

    #[test]
    fn varint_lengths() {
        for (v, n) in [
            (0u64, 1u64),
            (127, 1),
            (128, 2),
            (16383, 2),
            (16384, 3),
            (u64::MAX, 10),
        ] {
            assert_eq!(vlen(v), n);
            let mut out = Vec::new();
            put_varint(&mut out, v);
            assert_eq!(out.len() as u64, n);
            assert_eq!(read_varint(&out, 0).unwrap(), (v, n as usize));
        }
    }
}
