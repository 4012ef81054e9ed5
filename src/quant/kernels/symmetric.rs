//! `linear_symmetric` quantization (spec §3.3, 8 bits only): scale = max(|min|, |max|)/127,
//! bias = −128·scale, q = round-half-even((w − bias)/scale) with a true division.

use super::linear::{
    fill_indices, quantize_with, Affine, IndexMap, Op, Scheme, THRESHOLD_F32, THRESHOLD_F64,
};
use super::{ChannelView, Dialect, Floats, Params, Quantized};

/// One channel's parameters in both dialects' terms.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Channel {
    scale: f32,
    bias: f32,
    scale64: f64,
    bias64: f64,
    pass: bool,
}

/// `linear_symmetric` (8 bits) in `dialect`.
pub(crate) struct Symmetric {
    /// The arithmetic reproduced.
    pub dialect: Dialect,
}

impl Symmetric {
    /// The index arithmetic of channel `ch`: `(w − bias) ÷ scale`, a true division as
    /// coremltools does.
    pub(crate) fn index_map(&self, ch: &Channel) -> IndexMap {
        match self.dialect {
            Dialect::F32 => IndexMap::F32(Affine {
                offset: ch.bias,
                op: Op::Div,
                k: ch.scale,
            }),
            Dialect::F64 => IndexMap::F64(Affine {
                offset: ch.bias64,
                op: Op::Div,
                k: ch.scale64,
            }),
        }
    }
}

impl Scheme for Symmetric {
    type Channel = Channel;

    fn nbits(&self) -> u8 {
        8
    }

    fn channel(&self, lo: f32, hi: f32) -> Channel {
        let r = lo.abs().max(hi.abs());
        let r = if lo.is_nan() { f32::NAN } else { r };
        match self.dialect {
            Dialect::F32 => {
                let scale = r / 127.0;
                let bias = (-scale * 256.0) / 2.0;
                let pass = scale.abs() > THRESHOLD_F32;
                Channel {
                    scale,
                    bias,
                    scale64: scale as f64,
                    bias64: bias as f64,
                    pass,
                }
            }
            Dialect::F64 => {
                let scale64 = r as f64 / 127.0;
                let bias64 = (-scale64 * 256.0) / 2.0;
                let pass = scale64.abs() > THRESHOLD_F64;
                Channel {
                    scale: scale64 as f32,
                    bias: bias64 as f32,
                    scale64,
                    bias64,
                    pass,
                }
            }
        }
    }

    #[inline]
    fn indices(&self, ch: &Channel, src: Floats, dst: &mut [u8]) {
        if !ch.pass {
            dst.fill(0);
            return;
        }
        fill_indices(dst, src, self.index_map(ch));
    }

    fn thresholded(&self, ch: &Channel) -> bool {
        !ch.pass && ch.scale != 0.0 && !ch.scale.is_nan()
    }

    fn params(&self, channels: &[Channel]) -> Params {
        Params::Linear {
            scale: channels.iter().map(|c| c.scale).collect(),
            bias: channels.iter().map(|c| c.bias).collect(),
        }
    }
}

/// `linear_symmetric` quantization (always 8 bits) of the tensor seen through `view`.
pub fn quantize(values: &[f32], view: &ChannelView, dialect: Dialect) -> Quantized {
    quantize_with(values, view, &Symmetric { dialect })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quant::kernels::quantize as q_tensor;
    use crate::quant::Target;

    fn sym(values: &[f32], shape: &[u64]) -> Quantized {
        q_tensor(values, shape, 0, &Target::LinearSymmetric, Dialect::F32).unwrap()
    }

    #[test]
    fn spec_example() {
        let q = sym(&[-2.0, -1.0, 0.5, 1.0], &[1, 4]);
        assert_eq!(q.data, vec![1, 64, 160, 192]);
        let Params::Linear { scale, bias } = &q.params else {
            panic!()
        };
        assert_eq!(scale[0].to_le_bytes(), [0x04, 0x02, 0x81, 0x3c]);
        assert_eq!(bias[0].to_le_bytes(), [0x04, 0x02, 0x01, 0xc0]);
    }

    #[test]
    fn sign_flip_under_threshold() {
        let q = sym(&[1e-5, 2e-5, 5e-5, 1e-4], &[4]);
        assert_eq!(q.data, vec![0, 0, 0, 0]);
        let Params::Linear { scale, bias } = &q.params else {
            panic!()
        };
        assert!((scale[0] - 7.874e-7).abs() < 1e-10);
        assert!((bias[0] + 1.0079e-4).abs() < 1e-8);
        assert_eq!(q.notes.threshold_channels, 1);
    }

    #[test]
    fn all_zero_channel_has_negative_zero_bias() {
        let q = sym(&[0.0, 0.0, 1.0, -1.0], &[2, 2]);
        let Params::Linear { scale, bias } = &q.params else {
            panic!()
        };
        assert_eq!(scale[0].to_bits(), 0);
        assert_eq!(bias[0].to_le_bytes(), [0, 0, 0, 0x80]);
        assert_eq!(q.data, vec![0, 0, 255, 1]);
    }

    #[test]
    fn range_ends_map_to_one_and_255() {
        let q = sym(&[-3.0, 3.0, 0.0], &[3]);
        assert_eq!(q.data, vec![1, 255, 128]);
    }
}
