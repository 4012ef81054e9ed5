//! Closed-form serialized sizes of WeightParams messages (spec §5.1), without their own tag
//! and length. They equal `encode_quantized(..).len()` for a float32-only original.

use super::kernels::packed_len;
use super::Target;

/// Extra bytes of a WeightParams with `isUpdatable` set.
pub const IS_UPDATABLE: u64 = 3;

/// Bytes of the varint `x`.
pub fn vlen(x: u64) -> u64 {
    let bits = 64 - (x | 1).leading_zeros() as u64;
    bits.div_ceil(7)
}

/// Bytes of a length-delimited field with field number `field` and `len` payload bytes.
pub fn field(field: u32, len: u64) -> u64 {
    vlen(u64::from(field) << 3) + vlen(len) + len
}

/// `F(n)`: n float32 values in floatValue (0 for n = 0).
pub fn float32(n: u64) -> u64 {
    if n == 0 {
        0
    } else {
        field(1, 4 * n)
    }
}

/// `H(n)`: n halves in float16Value (0 for n = 0).
pub fn float16(n: u64) -> u64 {
    if n == 0 {
        0
    } else {
        field(2, 2 * n)
    }
}

/// `R`: the rawValue field of n indices of `nbits` bits.
pub fn raw(n: u64, nbits: u8) -> u64 {
    let r = packed_len(n as usize, nbits) as u64;
    if r == 0 {
        0
    } else {
        field(30, r)
    }
}

fn packed_floats(field_no: u32, count: u64) -> u64 {
    if count == 0 {
        0
    } else {
        field(field_no, 4 * count)
    }
}

/// `R + Q` for `nbits`-bit linear quantization with `channels` scale/bias pairs.
pub fn linear(n: u64, nbits: u8, channels: u64) -> u64 {
    let l = packed_floats(1, channels) + packed_floats(2, channels);
    let q = 2 + field(101, l);
    raw(n, nbits) + field(40, q)
}

/// `R + Q` for `nbits`-bit lookup-table quantization with a `k`-entry table.
pub fn lut(n: u64, nbits: u8, k: u64) -> u64 {
    let t = packed_floats(1, k);
    let q = 2 + field(102, t);
    raw(n, nbits) + field(40, q)
}

/// floatValue of n values plus the empty `quantization {}` dequantization leaves behind.
pub fn dequantized(n: u64) -> u64 {
    float32(n) + 3
}

/// The channel count of linear modes for `shape`/`axis`: 1 for one-dimensional tensors.
pub fn linear_channels(shape: &[u64], axis: usize) -> u64 {
    if shape.len() <= 1 {
        1
    } else {
        shape.get(axis).copied().unwrap_or(1)
    }
}

/// Size of a freshly converted WeightParams holding `n` float32 weights of `shape`
/// (channel axis `axis`), without isUpdatable; `None` for `Target::Dequantize`.
pub fn converted(target: &Target, n: u64, shape: &[u64], axis: usize) -> Option<u64> {
    let c = linear_channels(shape, axis);
    Some(match target {
        Target::Fp16 => float16(n),
        Target::Linear(b) => linear(n, *b, c),
        Target::LinearSymmetric => linear(n, 8, c),
        Target::LinearLut(b) | Target::KmeansLut(b) => lut(n, *b, 1 << *b),
        Target::CustomLut(b, table) => lut(n, *b, table.len() as u64),
        Target::Dequantize => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quant::encode::{encode_quantized, put_packed_f32};
    use crate::quant::kernels::{quantize, testutil::Rng, Dialect};

    #[test]
    fn varint_lengths() {
        for (x, l) in [
            (0, 1),
            (127, 1),
            (128, 2),
            (16383, 2),
            (16384, 3),
            (1 << 21, 4),
            (1 << 28, 5),
        ] {
            assert_eq!(vlen(x), l, "{x}");
        }
    }

    #[test]
    fn spec_5_1_examples() {
        assert_eq!(linear(8, 3, 1), 26);
        assert_eq!(raw(8, 3), 6);
        assert_eq!(float32(8), 34);
        let n = 64 * 64 * 9;
        assert_eq!(float32(n), 147_460);
        assert_eq!(
            [8, 4, 2, 1].map(|b| linear(n, b, 64)),
            [37_397, 18_965, 9_748, 5_140]
        );
        assert_eq!(
            [8, 4, 2, 1].map(|b| lut(n, b, 1 << b)),
            [37_906, 18_511, 9_246, 4_630]
        );
        assert_eq!(float16(n), 73_732);
        assert_eq!(float32(3), 14);
        assert_eq!(linear(3, 8, 1), 26);
        assert_eq!(lut(3, 1, 2), 22);
        assert_eq!(lut(3, 8, 256), 1_043);
    }

    #[test]
    fn formula_equals_encoder() {
        let mut rng = Rng::new(17);
        for i in 0..300 {
            let c = rng.below(40) + 1;
            let per = match i % 3 {
                0 => rng.below(5) + 1,
                1 => rng.below(200) + 1,
                _ => rng.below(5000) + 1,
            };
            let n = c * per;
            let shape = if i % 5 == 0 { vec![n] } else { vec![c, per] };
            let w: Vec<f32> = (0..n).map(|_| rng.normal()).collect();
            let mut body = Vec::new();
            put_packed_f32(&mut body, 1, &w);
            let b = rng.below(8) as u8 + 1;
            let table: std::sync::Arc<[f32]> =
                (0..rng.below(1 << b) + 1).map(|k| k as f32).collect();
            for target in [
                Target::Fp16,
                Target::Linear(b),
                Target::LinearSymmetric,
                Target::LinearLut(b),
                Target::CustomLut(b, table.clone()),
            ] {
                let q = quantize(&w, &shape, 0, &target, Dialect::F32).unwrap();
                let len = encode_quantized(&body, &q).unwrap().len() as u64;
                assert_eq!(
                    converted(&target, n, &shape, 0),
                    Some(len),
                    "{target:?} n={n} shape={shape:?}"
                );
            }
            assert_eq!(body.len() as u64, float32(n));
            // isUpdatable adds its 3 bytes; dequantization's form is floatValue + `quantization {}`.
            let mut updatable = body.clone();
            updatable.extend_from_slice(&[0x90, 0x03, 0x01]);
            let q = quantize(&w, &shape, 0, &Target::Linear(b), Dialect::F32).unwrap();
            let len = encode_quantized(&updatable, &q).unwrap().len() as u64;
            assert_eq!(linear(n, b, linear_channels(&shape, 0)) + IS_UPDATABLE, len);
            let back = crate::quant::encode::encode_dequantized(&body, &w).unwrap();
            assert_eq!(dequantized(n), back.len() as u64);
        }
    }
}
