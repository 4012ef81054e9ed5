//! `linear_lut` quantization (spec §3.4): `linear` with one channel for the whole tensor, and
//! the evenly spaced table `lut[i] = fl32(i·scale + min)` evaluated in float64.

use super::linear;
use super::{ChannelView, Dialect, Params, Quantized};

/// `linear_lut` quantization with `nbits` bits (always one channel, 2^nbits table entries).
pub fn quantize(values: &[f32], nbits: u8, dialect: Dialect) -> Quantized {
    let nbits = nbits.clamp(1, 8);
    let view = ChannelView::single(values.len());
    let (channels, data, notes) = linear::run(values, &view, &linear::Linear { nbits, dialect });
    let table = match channels.first() {
        Some(ch) => {
            // numpy: int64 indices × float32 (F32) or float64 (F64) scalar → float64.
            let s = match dialect {
                Dialect::F32 => ch.scale as f64,
                Dialect::F64 => ch.scale64,
            };
            (0..1u32 << nbits)
                .map(|i| (i as f64 * s + ch.lo as f64) as f32)
                .collect()
        }
        None => vec![0.0; 1 << nbits],
    };
    Quantized {
        nbits,
        data,
        params: Params::Lut(table),
        notes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quant::kernels::testutil::hex;

    #[test]
    fn spec_example() {
        let q = quantize(&[0.0, 0.1, 0.2, 0.3, 0.9, 1.2], 2, Dialect::F32);
        assert_eq!(hex(&q.data), "01 b0");
        let Params::Lut(t) = &q.params else { panic!() };
        let bytes: Vec<u8> = t.iter().flat_map(|v| v.to_le_bytes()).collect();
        assert_eq!(
            hex(&bytes),
            "00 00 00 00 cd cc cc 3e cd cc 4c 3f 9a 99 99 3f"
        );
    }

    #[test]
    fn small_tensor_gets_full_table() {
        let q = quantize(&[1.0, 2.0, 3.0], 8, Dialect::F32);
        let Params::Lut(t) = &q.params else { panic!() };
        assert_eq!(t.len(), 256);
    }
}
