//! Pure numeric kernels: one float32 tensor in, the quantized bytes and parameters out.
//!
//! Every kernel reproduces coremltools 9.0's `quantize_weights` arithmetic bit for bit in the
//! chosen [`Dialect`] (float32 by default), except k-means, which is deterministic and optimal
//! instead of scikit-learn's seeded k-means++. Kernels never know about files or layers: the
//! caller adds that context to a [`KernelError`]. Large tensors are processed in parallel
//! (rayon) with a fixed decomposition, so results never depend on the thread count.

pub mod custom_lut;
pub mod dequant;
pub mod floats;
pub mod fp16;
pub mod kmeans;
pub mod linear;
pub mod linear_lut;
pub mod pack;
pub mod quality;
#[cfg(target_arch = "x86_64")]
mod simd;
pub mod stream;
pub mod symmetric;
mod view;

#[cfg(test)]
pub(crate) mod testutil;

pub use dequant::{dequantize, dequantize_weight_params};
pub use floats::Floats;
pub use pack::packed_len;
pub use quality::{quality, Quality};
pub use stream::{quantize_streamed, DataSink, StreamError, Streamed, ValueSource};
pub use view::ChannelView;

use crate::quant::Target;

/// Which of coremltools' two arithmetic dialects to reproduce (spec §3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Dialect {
    /// float32 arithmetic: coremltools with protobuf ≥ 7.34 (the reference environment).
    #[default]
    F32,
    /// float64 arithmetic on widened inputs: coremltools with protobuf ≤ 6.33.
    F64,
}

/// The parameters that tell a reader how to turn the stored data back into floats.
#[derive(Debug, Clone, PartialEq)]
pub enum Params {
    /// `float16Value`: the data are little-endian IEEE halves.
    Half,
    /// `linearQuantization`: value = q · scale[c] + bias[c], one pair per channel.
    Linear {
        /// Per-channel scales.
        scale: Vec<f32>,
        /// Per-channel biases (the channel minimum; −128·scale for symmetric).
        bias: Vec<f32>,
    },
    /// `lookupTableQuantization`: value = table[q].
    Lut(Vec<f32>),
}

/// Facts about a conversion worth showing to the user (none of them change the bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Notes {
    /// NaN weights (linear: their channel collapses to index 0; LUT: mapped to index 0).
    pub nan_values: u64,
    /// Channels whose non-zero range fell under coremltools' absolute 1e-6 scale threshold,
    /// so every weight of the channel got index 0 (spec §3.2, §4 item 12).
    pub threshold_channels: u64,
}

/// One converted tensor: the bytes for `rawValue` (or `float16Value`) and its parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct Quantized {
    /// Bits per weight: 1–8, or 16 for half precision.
    pub nbits: u8,
    /// Packed indices for `rawValue` (spec §3.7), or the halves for `float16Value`.
    pub data: Vec<u8>,
    /// How to read `data`.
    pub params: Params,
    /// Diagnostics gathered while converting.
    pub notes: Notes,
}

/// Why a tensor could not be converted; texts are coremltools' where it has one.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum KernelError {
    /// The weight count is not a multiple of the channel count (spec §2.7 step 5).
    #[error("Number of quantization channels does not divide evenly into weights")]
    ChannelsNotDivisible {
        /// Number of weights.
        weights: usize,
        /// Number of channels.
        channels: u64,
    },
    /// The channel dimension is 0 (Python's modulo by zero).
    #[error("integer modulo by zero")]
    ZeroChannels,
    /// The weight count differs from the shape's element count (numpy's reshape error).
    #[error("cannot reshape array of size {size} into shape {shape}")]
    Reshape {
        /// Number of weights.
        size: usize,
        /// The shape, formatted as numpy prints it: `(64,3,3,3)`, `(1,)`.
        shape: String,
    },
    /// Axis 1 is only used for rank-4 deconvolution weights.
    #[error("Quantization on second axis is only supported for rank-4 weight blob.")]
    AxisRank,
    /// An axis other than 0 or 1.
    #[error(
        "Invalid quantization axis {0} passed in. Allowedvalues are 0 (first axis) and 1 (second axis)"
    )]
    InvalidAxis(usize),
    /// More than 8 bits for an integer mode.
    #[error("Only 8-bit and lower quantization is supported")]
    TooManyBits(u8),
    /// 0 bits.
    #[error("Only half precision (16-bit), 1 to 8-bit quantization is supported")]
    UnsupportedBits(u8),
    /// A weight at or beyond ±65504 for half precision (spec §3.6).
    #[error(
        "Model cannot be converted as it has weights that cannot be represented in half precision."
    )]
    Fp16Range {
        /// The offending extreme value.
        value: f32,
    },
    /// A custom lookup table that is empty or longer than 2^nbits.
    #[error("custom lookup table has {len} entries; {nbits}-bit indices need 1 to {max}")]
    CustomLutLength {
        /// Entries given.
        len: usize,
        /// Bits per index.
        nbits: u8,
        /// 2^nbits.
        max: usize,
    },
    /// The target is not a conversion of float32 weights (e.g. `Dequantize`).
    #[error("{0} is not a quantization target")]
    NotAQuantization(&'static str),
    /// Dequantization of a tensor whose scale and bias lengths differ (spec §2.10).
    #[error("Linear quantization scale and bias vectors are different lengths")]
    ScaleBiasLengths,
    /// A lookup-table index beyond the table (numpy's IndexError).
    #[error("index {index} is out of bounds for axis 0 with size {size}")]
    LutIndex {
        /// The index found in rawValue.
        index: usize,
        /// The table's length.
        size: usize,
    },
    /// rawValue holds fewer bytes than the shape needs.
    #[error("rawValue holds {have} bytes; {count} indices of {nbits} bits need {need}")]
    RawTooShort {
        /// Bytes present.
        have: usize,
        /// Bytes needed.
        need: usize,
        /// Number of indices.
        count: usize,
        /// Bits per index.
        nbits: u8,
    },
    /// A WeightParams that cannot be dequantized (half values, no quantization, bad bytes).
    #[error("{0}")]
    NotDequantizable(String),
}

/// Quantizes one float32 tensor, as coremltools' `_quantize_wp_field` would (spec §2.7, §3).
///
/// `values` are in storage order, `shape` is the tensor shape of spec §1.7 (an empty shape is
/// read as one dimension of `values.len()`), `axis` the channel axis (1 for deconvolution
/// weights). Validation happens in coremltools' order and with its error texts.
pub fn quantize(
    values: &[f32],
    shape: &[u64],
    axis: usize,
    target: &Target,
    dialect: Dialect,
) -> Result<Quantized, KernelError> {
    match target {
        Target::Fp16 => fp16::quantize(values),
        Target::Linear(b) => {
            check_bits(*b)?;
            let view = ChannelView::new(values.len(), shape, axis, true)?;
            Ok(linear::quantize(values, &view, *b, dialect))
        }
        Target::LinearSymmetric => {
            let view = ChannelView::new(values.len(), shape, axis, true)?;
            Ok(symmetric::quantize(values, &view, dialect))
        }
        Target::LinearLut(b) => {
            check_bits(*b)?;
            ChannelView::new(values.len(), shape, axis, false)?;
            Ok(linear_lut::quantize(values, *b, dialect))
        }
        Target::KmeansLut(b) => {
            check_bits(*b)?;
            ChannelView::new(values.len(), shape, axis, false)?;
            Ok(kmeans::quantize(values, *b))
        }
        Target::CustomLut(b, table) => {
            check_bits(*b)?;
            ChannelView::new(values.len(), shape, axis, false)?;
            custom_lut::quantize(values, *b, table)
        }
        Target::Dequantize => Err(KernelError::NotAQuantization("dequantization")),
    }
}

/// Rejects bit widths outside 1–8 with coremltools' texts.
pub fn check_bits(nbits: u8) -> Result<(), KernelError> {
    match nbits {
        0 => Err(KernelError::UnsupportedBits(0)),
        1..=8 => Ok(()),
        b => Err(KernelError::TooManyBits(b)),
    }
}

/// Decodes packed little-endian float32 values (the payload of `floatValue`); a trailing
/// partial value is ignored.
pub fn f32s_from_le(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn targets() -> Vec<Target> {
        let mut t = vec![Target::Fp16, Target::LinearSymmetric];
        for b in 1..=8 {
            t.push(Target::Linear(b));
            t.push(Target::LinearLut(b));
            t.push(Target::KmeansLut(b));
            t.push(Target::CustomLut(b, Arc::from(vec![-1.0f32, 0.5])));
        }
        t
    }

    #[test]
    fn odd_inputs_never_panic_and_keep_their_shape() {
        let inputs: Vec<Vec<f32>> = vec![
            vec![],
            vec![1.5],
            vec![f32::NAN; 5],
            vec![f32::INFINITY, -1.0, f32::NEG_INFINITY, 2.0],
            vec![f32::MAX, f32::MIN, 0.0, -0.0],
            vec![1e-45, -1e-45, 0.0, 3.0],
        ];
        for values in &inputs {
            for dialect in [Dialect::F32, Dialect::F64] {
                for t in targets() {
                    let shape = [values.len() as u64];
                    let Ok(q) = quantize(values, &shape, 0, &t, dialect) else {
                        assert!(
                            matches!(t, Target::Fp16) || values.is_empty(),
                            "{t:?} {values:?}"
                        );
                        continue;
                    };
                    if q.nbits <= 8 {
                        assert_eq!(q.data.len(), packed_len(values.len(), q.nbits), "{t:?}");
                    }
                    let back = dequantize(&q, &shape, 0);
                    assert!(
                        values.is_empty() || back.is_ok(),
                        "{t:?} {values:?}: {back:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn validation_errors_in_coremltools_words() {
        let w = [0.0f32; 6];
        let e = quantize(&w, &[4, 2], 0, &Target::Linear(4), Dialect::F32).unwrap_err();
        assert_eq!(
            e.to_string(),
            "Number of quantization channels does not divide evenly into weights"
        );
        // LUT modes use one channel for the check, then fail in numpy's reshape.
        let e = quantize(&w, &[4, 2], 0, &Target::LinearLut(4), Dialect::F32).unwrap_err();
        assert_eq!(
            e.to_string(),
            "cannot reshape array of size 6 into shape (4,2)"
        );
        let e = quantize(&w, &[6], 0, &Target::Linear(9), Dialect::F32).unwrap_err();
        assert_eq!(
            e.to_string(),
            "Only 8-bit and lower quantization is supported"
        );
        let e = quantize(&w, &[6], 0, &Target::Linear(0), Dialect::F32).unwrap_err();
        assert_eq!(
            e.to_string(),
            "Only half precision (16-bit), 1 to 8-bit quantization is supported"
        );
        let e = quantize(&w, &[6], 0, &Target::Dequantize, Dialect::F32).unwrap_err();
        assert!(matches!(e, KernelError::NotAQuantization(_)));
        let e = quantize(&[70000.0], &[1], 0, &Target::Fp16, Dialect::F32).unwrap_err();
        assert_eq!(
            e.to_string(),
            "Model cannot be converted as it has weights that cannot be represented in half precision."
        );
    }
}
