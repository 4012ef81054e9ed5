//! Bytes of a converted WeightParams message, exactly as coremltools (protobuf-python) writes
//! them: known fields in ascending field-number order, then unknown fields in their original
//! order; packed floats; empty storage omitted; `-0.0` written by bit pattern.
//!
//! The caller passes the original WeightParams body (without its tag and length); the fields
//! coremltools leaves alone (float16Value, int8RawValue, isUpdatable, …) are copied over.

use super::kernels::{Params, Quantized};

/// WeightParams field numbers.
const FLOAT_VALUE: u32 = 1;
const FLOAT16_VALUE: u32 = 2;
const RAW_VALUE: u32 = 30;
const INT8_RAW_VALUE: u32 = 31;
const QUANTIZATION: u32 = 40;
const IS_UPDATABLE: u32 = 50;

/// The original WeightParams body could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("WeightParams byte {offset}: {message}")]
pub struct EncodeError {
    /// Offset within the WeightParams body.
    pub offset: usize,
    /// What was wrong there.
    pub message: String,
}

/// The fields of an original WeightParams, as byte slices of its body.
#[derive(Debug, Default, Clone)]
pub struct Original<'a> {
    /// floatValue payloads (packed or single values), in order.
    pub float_value: Vec<&'a [u8]>,
    /// float16Value payload (the last occurrence wins).
    pub float16_value: Option<&'a [u8]>,
    /// rawValue payload.
    pub raw_value: Option<&'a [u8]>,
    /// int8RawValue payload.
    pub int8_raw_value: Option<&'a [u8]>,
    /// quantization payload (the message body).
    pub quantization: Option<&'a [u8]>,
    /// isUpdatable.
    pub is_updatable: bool,
    /// Unknown fields (tag included), in order.
    pub unknown: Vec<&'a [u8]>,
}

fn read_varint(bytes: &[u8], pos: &mut usize) -> Result<u64, EncodeError> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let Some(&b) = bytes.get(*pos) else {
            return Err(EncodeError {
                offset: *pos,
                message: "truncated varint".into(),
            });
        };
        *pos += 1;
        v |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Ok(v);
        }
    }
    Err(EncodeError {
        offset: *pos,
        message: "varint longer than 10 bytes".into(),
    })
}

fn take<'a>(bytes: &'a [u8], pos: &mut usize, len: u64) -> Result<&'a [u8], EncodeError> {
    let start = *pos;
    let end = usize::try_from(len)
        .ok()
        .and_then(|l| start.checked_add(l))
        .filter(|&e| e <= bytes.len())
        .ok_or_else(|| EncodeError {
            offset: start,
            message: format!(
                "field of {len} bytes runs past the end ({} bytes)",
                bytes.len()
            ),
        })?;
    *pos = end;
    Ok(&bytes[start..end])
}

impl<'a> Original<'a> {
    /// Splits a WeightParams body into its fields.
    pub fn parse(body: &'a [u8]) -> Result<Original<'a>, EncodeError> {
        let mut o = Original::default();
        let mut pos = 0;
        while pos < body.len() {
            let start = pos;
            let tag = read_varint(body, &mut pos)?;
            let (field, wire) = (tag >> 3, tag & 7);
            let payload = match wire {
                0 => {
                    let v_start = pos;
                    read_varint(body, &mut pos)?;
                    &body[v_start..pos]
                }
                1 => take(body, &mut pos, 8)?,
                2 => {
                    let len = read_varint(body, &mut pos)?;
                    take(body, &mut pos, len)?
                }
                5 => take(body, &mut pos, 4)?,
                _ => {
                    return Err(EncodeError {
                        offset: start,
                        message: format!("unsupported wire type {wire} for field {field}"),
                    })
                }
            };
            match (u32::try_from(field).unwrap_or(0), wire) {
                (FLOAT_VALUE, 2 | 5) => o.float_value.push(payload),
                (FLOAT16_VALUE, 2) => o.float16_value = Some(payload),
                (RAW_VALUE, 2) => o.raw_value = Some(payload),
                (INT8_RAW_VALUE, 2) => o.int8_raw_value = Some(payload),
                (QUANTIZATION, 2) => o.quantization = Some(payload),
                (IS_UPDATABLE, 0) => {
                    let mut p = 0;
                    o.is_updatable = read_varint(payload, &mut p)? != 0;
                }
                _ => o.unknown.push(&body[start..pos]),
            }
        }
        Ok(o)
    }
}

/// Appends a varint.
pub fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Appends a length-delimited field (tag, length, bytes).
pub fn put_bytes(out: &mut Vec<u8>, field: u32, bytes: &[u8]) {
    put_varint(out, u64::from(field) << 3 | 2);
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// Appends a packed repeated float field (nothing for an empty list).
pub fn put_packed_f32(out: &mut Vec<u8>, field: u32, values: &[f32]) {
    if values.is_empty() {
        return;
    }
    put_varint(out, u64::from(field) << 3 | 2);
    put_varint(out, values.len() as u64 * 4);
    out.reserve(values.len() * 4);
    for v in values {
        out.extend_from_slice(&v.to_le_bytes());
    }
}

/// Appends a bytes field unless it is empty (proto3 default).
fn put_nonempty(out: &mut Vec<u8>, field: u32, bytes: Option<&[u8]>) {
    if let Some(b) = bytes.filter(|b| !b.is_empty()) {
        put_bytes(out, field, b);
    }
}

fn put_tail(out: &mut Vec<u8>, o: &Original<'_>) {
    if o.is_updatable {
        put_varint(out, u64::from(IS_UPDATABLE) << 3);
        out.push(1);
    }
    for u in &o.unknown {
        out.extend_from_slice(u);
    }
}

/// The QuantizationParams body for `nbits` and `params` (empty for half precision).
pub fn quantization_params(nbits: u8, params: &Params) -> Vec<u8> {
    let mut q = Vec::new();
    if nbits != 0 {
        q.push(0x08);
        put_varint(&mut q, u64::from(nbits));
    }
    let mut inner = Vec::new();
    match params {
        Params::Half => return Vec::new(),
        Params::Linear { scale, bias } => {
            put_packed_f32(&mut inner, 1, scale);
            put_packed_f32(&mut inner, 2, bias);
            put_bytes(&mut q, 101, &inner);
        }
        Params::Lut(table) => {
            put_packed_f32(&mut inner, 1, table);
            put_bytes(&mut q, 102, &inner);
        }
    }
    q
}

/// The new WeightParams body after converting the float32 tensor of `original` to `q`
/// (spec §2.7): floatValue cleared; rawValue + quantization replaced (or float16Value for
/// half precision); every other field kept.
pub fn encode_quantized(original: &[u8], q: &Quantized) -> Result<Vec<u8>, EncodeError> {
    let o = Original::parse(original)?;
    let (head, tail) = quantized_pieces(&o, q);
    let mut out = Vec::with_capacity(head.len() + q.data.len() + tail.len());
    out.extend_from_slice(&head);
    out.extend_from_slice(&q.data);
    out.extend_from_slice(&tail);
    Ok(out)
}

/// [`encode_quantized`]'s body as the pieces around the payload: the body is `head`, then
/// `q.data`, then `tail`, so that a caller can hand the payload on without copying it.
pub fn quantized_pieces(o: &Original<'_>, q: &Quantized) -> (Vec<u8>, Vec<u8>) {
    let half = matches!(q.params, Params::Half);
    (
        quantized_head(o, half, q.data.len() as u64),
        quantized_tail(o, q.nbits, &q.params),
    )
}

/// The bytes of a converted body before its `data_len` bytes of payload: half precision
/// (`half`) or packed indices. They depend on the payload's length only, so a payload can
/// be written as it is produced.
pub fn quantized_head(o: &Original<'_>, half: bool, data_len: u64) -> Vec<u8> {
    let mut head = Vec::with_capacity(16);
    let payload_field = if half {
        FLOAT16_VALUE
    } else {
        put_nonempty(&mut head, FLOAT16_VALUE, o.float16_value);
        RAW_VALUE
    };
    if data_len > 0 {
        put_varint(&mut head, u64::from(payload_field) << 3 | 2);
        put_varint(&mut head, data_len);
    }
    head
}

/// The bytes of a converted body after its payload: the parameters and the kept fields.
pub fn quantized_tail(o: &Original<'_>, nbits: u8, params: &Params) -> Vec<u8> {
    let half = matches!(params, Params::Half);
    let mut tail = Vec::new();
    if half {
        put_nonempty(&mut tail, RAW_VALUE, o.raw_value);
    }
    put_nonempty(&mut tail, INT8_RAW_VALUE, o.int8_raw_value);
    if !half {
        put_bytes(&mut tail, QUANTIZATION, &quantization_params(nbits, params));
    } else if let Some(qp) = o.quantization {
        put_bytes(&mut tail, QUANTIZATION, qp);
    }
    put_tail(&mut tail, o);
    tail
}

/// The new WeightParams body after coremltools' `dequantization` (spec §2.10): floatValue :=
/// `values`, rawValue cleared, an empty `quantization {}` left behind, other fields kept.
pub fn encode_dequantized(original: &[u8], values: &[f32]) -> Result<Vec<u8>, EncodeError> {
    let o = Original::parse(original)?;
    Ok(float_body(&o, values, true))
}

/// A float32 WeightParams body: floatValue := `values`, rawValue dropped, the float16Value,
/// int8RawValue, isUpdatable and unknown fields of `o` kept, and the empty
/// `quantization {}` that dequantization leaves behind when `empty_quantization` is set.
pub fn float_body(o: &Original<'_>, values: &[f32], empty_quantization: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(values.len() * 4 + 16);
    put_packed_f32(&mut out, FLOAT_VALUE, values);
    put_nonempty(&mut out, FLOAT16_VALUE, o.float16_value);
    put_nonempty(&mut out, INT8_RAW_VALUE, o.int8_raw_value);
    if empty_quantization {
        put_bytes(&mut out, QUANTIZATION, &[]);
    }
    put_tail(&mut out, o);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quant::kernels::{quantize, testutil::hex, Dialect};
    use crate::quant::Target;

    fn float_body(values: &[f32]) -> Vec<u8> {
        let mut b = Vec::new();
        put_packed_f32(&mut b, 1, values);
        b
    }

    fn enc(values: &[f32], shape: &[u64], target: Target) -> String {
        let q = quantize(values, shape, 0, &target, Dialect::F32).unwrap();
        hex(&encode_quantized(&float_body(values), &q).unwrap())
    }

    #[test]
    fn spec_3_7_byte_dumps() {
        let w: Vec<f32> = (0..8).map(|k| k as f32).collect();
        assert_eq!(
            enc(&w, &[1, 8], Target::Linear(3)),
            "f2 01 03 05 39 77 c2 02 11 08 03 aa 06 0c 0a 04 00 00 80 3f 12 04 00 00 00 00"
        );
        assert_eq!(
            enc(&[-1.0, 0.0, 1.0, 2.0, 2.5, 4.0], &[2, 3], Target::Linear(4)),
            "f2 01 03 07 f0 4f c2 02 19 08 04 aa 06 14 0a 08 89 88 08 3e 89 88 08 3e \
             12 08 00 00 80 bf 00 00 00 40"
        );
        assert_eq!(
            enc(&[0.0, 0.1, 0.2, 0.3, 0.9, 1.2], &[6], Target::LinearLut(2)),
            "f2 01 02 01 b0 c2 02 17 08 02 b2 06 12 0a 10 00 00 00 00 cd cc cc 3e \
             cd cc 4c 3f 9a 99 99 3f"
        );
        assert_eq!(
            enc(&[-2.0, -1.0, 0.5, 1.0], &[1, 4], Target::LinearSymmetric),
            "f2 01 04 01 40 a0 c0 c2 02 11 08 08 aa 06 0c 0a 04 04 02 81 3c 12 04 04 02 01 c0"
        );
        assert_eq!(
            enc(&[1.0, -2.0, 0.1, 65000.0], &[4], Target::Fp16),
            "12 08 00 3c 00 c0 66 2e ef 7b"
        );
        assert_eq!(
            enc(
                &[-0.3, 0.2, 0.7],
                &[3],
                Target::CustomLut(1, vec![-1.0, 1.0].into())
            ),
            "f2 01 01 60 c2 02 0f 08 01 b2 06 0a 0a 08 00 00 80 bf 00 00 80 3f"
        );
    }

    #[test]
    fn negative_zero_bias_is_written() {
        let s = enc(&[0.0, 0.0], &[2], Target::LinearSymmetric);
        assert_eq!(
            s,
            "f2 01 02 00 00 c2 02 11 08 08 aa 06 0c 0a 04 00 00 00 00 12 04 00 00 00 80"
        );
    }

    #[test]
    fn kept_fields_in_canonical_order() {
        // isUpdatable first and an unknown field 7 in the original; a stale float16Value too.
        let mut body = vec![0x90, 0x03, 0x01];
        put_bytes(&mut body, 7, &[9, 9]);
        body.extend(float_body(&[1.0, 3.0]));
        put_bytes(&mut body, 2, &[0, 0x3c]);
        let q = quantize(&[1.0, 3.0], &[2], 0, &Target::Linear(8), Dialect::F32).unwrap();
        let out = encode_quantized(&body, &q).unwrap();
        assert_eq!(
            hex(&out),
            "12 02 00 3c f2 01 02 00 ff c2 02 11 08 08 aa 06 0c 0a 04 81 80 00 3c 12 04 00 00 80 3f \
             90 03 01 3a 02 09 09"
        );
    }

    #[test]
    fn dequantized_leaves_empty_quantization() {
        let q = quantize(&[1.0, 3.0], &[2], 0, &Target::Linear(8), Dialect::F32).unwrap();
        let quantized = encode_quantized(&float_body(&[1.0, 3.0]), &q).unwrap();
        let out = encode_dequantized(&quantized, &[1.0, 3.0]).unwrap();
        assert_eq!(hex(&out), "0a 08 00 00 80 3f 00 00 40 40 c2 02 00");
    }

    #[test]
    fn matches_prost_for_random_tensors() {
        use crate::model::proto::WeightParams;
        use crate::quant::kernels::testutil::Rng;
        use prost::Message;
        let mut rng = Rng::new(13);
        for i in 0..50 {
            let n = rng.below(100) as usize + 1;
            let w: Vec<f32> = (0..n).map(|_| rng.normal()).collect();
            let target = match i % 4 {
                0 => Target::Linear(rng.below(8) as u8 + 1),
                1 => Target::LinearLut(rng.below(8) as u8 + 1),
                2 => Target::LinearSymmetric,
                _ => Target::Fp16,
            };
            let q = quantize(&w, &[n as u64], 0, &target, Dialect::F32).unwrap();
            let out = encode_quantized(&float_body(&w), &q).unwrap();
            let decoded = WeightParams::decode(&out[..]).unwrap();
            // prost writes the same canonical order (no -0.0 floats at top level here).
            assert_eq!(decoded.encode_to_vec(), out);
            assert!(decoded.float_value.is_empty());
        }
    }

    #[test]
    fn pieces_around_the_payload_make_the_whole_body() {
        let w = [1.0, -2.0, 0.5, 3.0];
        for target in [Target::Linear(3), Target::LinearLut(2), Target::Fp16] {
            let q = quantize(&w, &[4], 0, &target, Dialect::F32).unwrap();
            for updatable in [false, true] {
                let mut body = float_body(&w);
                if updatable {
                    body.extend([0x90, 0x03, 0x01]);
                }
                let o = Original::parse(&body).unwrap();
                let (head, tail) = quantized_pieces(&o, &q);
                let joined = [head, q.data.clone(), tail].concat();
                assert_eq!(joined, encode_quantized(&body, &q).unwrap(), "{target:?}");
                assert_eq!(
                    super::float_body(&o, &w, true),
                    encode_dequantized(&body, &w).unwrap()
                );
            }
        }
    }

    #[test]
    fn malformed_original_is_reported() {
        let e = encode_dequantized(&[0x0a, 0x10, 0x00], &[]).unwrap_err();
        assert_eq!(e.offset, 2);
    }
}
