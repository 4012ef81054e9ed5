//! Dequantization (spec §2.10, §3.8): indices back to float32 values.
//!
//! Linear: value = fl32(float64(q)·scale[c] + bias[c]); lookup table: value = table[q];
//! half: the half value. Errors follow coremltools' `dequantization` mode.

use std::borrow::Cow;

use prost::Message;
use rayon::prelude::*;

use super::view::numpy_shape;
use super::{fp16, pack, ChannelView, KernelError, Params, Quantized};
use crate::model::proto::{quantization_params::QuantizationType, WeightParams};

/// Values per parallel work item.
const CHUNK: usize = 1 << 16;

/// The float32 values a [`Quantized`] tensor of `shape` (channel axis `axis`) stands for.
pub fn dequantize(q: &Quantized, shape: &[u64], axis: usize) -> Result<Vec<f32>, KernelError> {
    match &q.params {
        Params::Half => Ok(fp16::from_half_bytes(&q.data)),
        Params::Linear { scale, bias } => linear(&q.data, q.nbits, scale, bias, shape, axis),
        Params::Lut(table) => lut(&q.data, q.nbits, table, shape_len(shape)?),
    }
}

/// Dequantizes the WeightParams message `body` (its bytes without tag and length) as
/// coremltools' `dequantization` mode does; float32 values are returned as they are.
pub fn dequantize_weight_params(
    body: &[u8],
    shape: &[u64],
    axis: usize,
) -> Result<Vec<f32>, KernelError> {
    let wp = WeightParams::decode(body)
        .map_err(|e| KernelError::NotDequantizable(format!("malformed WeightParams: {e}")))?;
    if !wp.float_value.is_empty() {
        return Ok(wp.float_value);
    }
    let qp = wp.quantization.unwrap_or_default();
    let nbits = u8::try_from(qp.number_of_bits).unwrap_or(u8::MAX);
    match qp.quantization_type {
        Some(QuantizationType::LinearQuantization(l)) => {
            if l.scale.len() != l.bias.len() {
                return Err(KernelError::ScaleBiasLengths);
            }
            linear(&wp.raw_value, nbits, &l.scale, &l.bias, shape, axis)
        }
        Some(QuantizationType::LookupTableQuantization(t)) => {
            lut(&wp.raw_value, nbits, &t.float_value, shape_len(shape)?)
        }
        None if !wp.float16_value.is_empty() => Err(KernelError::NotDequantizable(
            "coremltools cannot dequantize float16 weights (IndexError); they need no dequantization"
                .into(),
        )),
        None => Err(KernelError::NotDequantizable("the tensor has no quantization parameters".into())),
    }
}

fn shape_len(shape: &[u64]) -> Result<usize, KernelError> {
    if shape.is_empty() {
        return Err(KernelError::NotDequantizable(
            "the tensor's shape is unknown".into(),
        ));
    }
    shape
        .iter()
        .try_fold(1u64, |a, &d| a.checked_mul(d))
        .and_then(|n| usize::try_from(n).ok())
        .ok_or_else(|| KernelError::NotDequantizable("the tensor's shape is too large".into()))
}

/// The indices of `n` weights: raw bytes as they are for 8 bits, else unpacked.
fn indices(raw: &[u8], nbits: u8, n: usize) -> Result<Cow<'_, [u8]>, KernelError> {
    match nbits {
        8 if raw.len() == n => Ok(Cow::Borrowed(raw)),
        8 => Err(KernelError::Reshape {
            size: raw.len(),
            shape: format!("({n},)"),
        }),
        _ => pack::unpack(raw, nbits, n).map(Cow::Owned),
    }
}

fn linear(
    raw: &[u8],
    nbits: u8,
    scale: &[f32],
    bias: &[f32],
    shape: &[u64],
    axis: usize,
) -> Result<Vec<f32>, KernelError> {
    if scale.len() != bias.len() {
        return Err(KernelError::ScaleBiasLengths);
    }
    let n = shape_len(shape)?;
    let view = ChannelView::new(n, shape, axis, true)?;
    if scale.len() != view.channels {
        // numpy reshapes scale to (C, 1, …, 1) with the tensor's rank (at least 2).
        let mut b = vec![view.channels as u64];
        b.resize(shape.len().max(2), 1);
        return Err(KernelError::Reshape {
            size: scale.len(),
            shape: numpy_shape(&b),
        });
    }
    let q = indices(raw, nbits, n)?;
    let mut out = vec![0f32; n];
    out.par_chunks_mut(CHUNK).enumerate().for_each(|(i, dst)| {
        let start = i * CHUNK;
        view.for_runs(start..start + dst.len(), |c, run| {
            let (s, b) = (scale[c] as f64, bias[c] as f64);
            for (d, &qi) in dst[run.start - start..run.end - start]
                .iter_mut()
                .zip(&q[run])
            {
                *d = (qi as f64 * s + b) as f32;
            }
        });
    });
    Ok(out)
}

fn lut(raw: &[u8], nbits: u8, table: &[f32], n: usize) -> Result<Vec<f32>, KernelError> {
    let q = indices(raw, nbits, n)?;
    if let Some(&bad) = q.iter().find(|&&i| i as usize >= table.len()) {
        return Err(KernelError::LutIndex {
            index: bad as usize,
            size: table.len(),
        });
    }
    Ok(q.par_iter()
        .map(|&i| table.get(i as usize).copied().unwrap_or(0.0))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quant::kernels::{quantize, Dialect};
    use crate::quant::Target;

    #[test]
    fn linear_roundtrip_of_spec_examples() {
        let w = [-1.0, 0.0, 1.0, 2.0, 2.5, 4.0];
        let q = quantize(&w, &[2, 3], 0, &Target::Linear(4), Dialect::F32).unwrap();
        let d = dequantize(&q, &[2, 3], 0).unwrap();
        let s = 0.133_333_34f32 as f64;
        let want = [0.0, 7.0, 15.0, 0.0, 4.0, 15.0]
            .iter()
            .zip([-1.0, -1.0, -1.0, 2.0, 2.0, 2.0])
            .map(|(q, b)| (q * s + b) as f32)
            .collect::<Vec<f32>>();
        assert_eq!(d, want);
    }

    #[test]
    fn weight_params_errors_like_coremltools() {
        use crate::model::proto::{LinearQuantizationParams, QuantizationParams};
        let wp = WeightParams {
            raw_value: vec![0, 1],
            quantization: Some(QuantizationParams {
                number_of_bits: 8,
                quantization_type: Some(QuantizationType::LinearQuantization(
                    LinearQuantizationParams {
                        scale: vec![1.0],
                        bias: vec![],
                    },
                )),
            }),
            ..Default::default()
        };
        let e = dequantize_weight_params(&wp.encode_to_vec(), &[2], 0).unwrap_err();
        assert_eq!(
            e.to_string(),
            "Linear quantization scale and bias vectors are different lengths"
        );
        let mut ok = wp.clone();
        if let Some(QuantizationParams {
            quantization_type: Some(QuantizationType::LinearQuantization(l)),
            ..
        }) = ok.quantization.as_mut()
        {
            l.bias = vec![0.5];
        }
        let v = dequantize_weight_params(&ok.encode_to_vec(), &[2], 0).unwrap();
        assert_eq!(v, vec![0.5, 1.5]);
        let e = dequantize_weight_params(&ok.encode_to_vec(), &[2, 1], 0).unwrap_err();
        assert_eq!(
            e.to_string(),
            "cannot reshape array of size 1 into shape (2,1)"
        );
        let half = WeightParams {
            float16_value: vec![0, 0x3c],
            ..Default::default()
        };
        assert!(dequantize_weight_params(&half.encode_to_vec(), &[1], 0).is_err());
    }

    #[test]
    fn lut_index_out_of_range() {
        let q = Quantized {
            nbits: 2,
            data: vec![0b1100_0000],
            params: Params::Lut(vec![0.0, 1.0]),
            notes: Default::default(),
        };
        let e = dequantize(&q, &[1], 0).unwrap_err();
        assert_eq!(
            e.to_string(),
            "index 3 is out of bounds for axis 0 with size 2"
        );
    }
}
