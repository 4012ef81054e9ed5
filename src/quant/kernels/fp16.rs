//! fp16 conversion (spec §3.6): coremltools' range check, then IEEE binary16 round to nearest
//! even with subnormals, little endian.

use half::f16;
use rayon::prelude::*;

use super::linear::{count_nan_after, minmax};
use super::{Floats, KernelError, Notes, Params, Quantized};

/// Values per parallel work item.
const CHUNK: usize = 1 << 16;

/// Converts `values` to half precision for `float16Value`.
///
/// Like coremltools, rejects the tensor when its maximum is ≥ 65504 or its minimum ≤ −65504
/// (±65504 and ±inf included) and skips the check entirely when any value is NaN.
pub fn quantize(values: &[f32]) -> Result<Quantized, KernelError> {
    let (lo, hi) = minmax(values);
    check_range(lo, hi)?;
    Ok(Quantized {
        nbits: 16,
        data: to_half_bytes(values),
        params: Params::Half,
        notes: Notes {
            nan_values: count_nan_after(values, &[(lo, hi)]),
            threshold_channels: 0,
        },
    })
}

/// coremltools' range check on a tensor's extremes `lo`, `hi` (NaN extremes pass).
pub(crate) fn check_range(lo: f32, hi: f32) -> Result<(), KernelError> {
    if hi >= 65504.0 {
        return Err(KernelError::Fp16Range { value: hi });
    }
    if lo <= -65504.0 {
        return Err(KernelError::Fp16Range { value: lo });
    }
    Ok(())
}

/// The little-endian halves of `values`, without any range check.
pub fn to_half_bytes(values: &[f32]) -> Vec<u8> {
    let mut out = super::pack::zeroed(values.len() * 2);
    out.par_chunks_mut(CHUNK * 2)
        .zip(values.par_chunks(CHUNK))
        .for_each(|(dst, src)| halves_into(Floats::from_slice(src), dst));
    out
}

/// Converts `src` into the little-endian halves of `dst` (twice as long): through `half`'s
/// slice conversion when the values are aligned floats, which uses the F16C instructions
/// when the processor has them; through hand-written F16C code for values at any address;
/// else one value at a time. All give the same IEEE round to nearest even.
pub(crate) fn halves_into(src: Floats, dst: &mut [u8]) {
    #[cfg(target_endian = "little")]
    if let Some(src) = src.as_aligned() {
        use half::slice::HalfFloatSliceExt;
        // SAFETY: every bit pattern of two bytes is a valid f16; `align_to_mut` only hands
        // out the correctly aligned middle part.
        let (head, mid, tail) = unsafe { dst.align_to_mut::<f16>() };
        if head.is_empty() && tail.is_empty() && mid.len() == src.len() {
            mid.convert_from_f32_slice(src);
            return;
        }
    }
    #[cfg(all(target_arch = "x86_64", target_endian = "little"))]
    if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("f16c") {
        // SAFETY: the processor supports AVX2 and F16C (checked just above).
        unsafe { super::simd::halves_f16c(dst, src) };
        return;
    }
    halves_one_by_one(src, dst);
}

/// The portable conversion of [`halves_into`], one value at a time.
pub(crate) fn halves_one_by_one(src: Floats, dst: &mut [u8]) {
    for (d, v) in dst.chunks_exact_mut(2).zip(src.iter()) {
        d.copy_from_slice(&f16::from_f32(v).to_le_bytes());
    }
}

/// Reads little-endian halves back as float32 (a trailing odd byte is ignored).
pub fn from_half_bytes(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(2)
        .map(|c| f16::from_le_bytes([c[0], c[1]]).to_f32())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quant::kernels::testutil::{hex, ne_bytes_after};

    #[test]
    fn spec_examples() {
        let q = quantize(&[1.0, -2.0, 0.1, 65000.0]).unwrap();
        assert_eq!(hex(&q.data), "00 3c 00 c0 66 2e ef 7b");
        let q = quantize(&[65503.9, 1e-8, 3e-5, 6.1e-5]).unwrap();
        assert_eq!(hex(&q.data), "ff 7b 00 00 f7 01 ff 03");
    }

    #[test]
    fn range_check_like_coremltools() {
        let msg = "Model cannot be converted as it has weights that cannot be represented in half precision.";
        assert_eq!(quantize(&[65504.0]).unwrap_err().to_string(), msg);
        assert!(quantize(&[-65504.0]).is_err());
        assert!(quantize(&[f32::INFINITY]).is_err());
        // A NaN disables the check: inf becomes half inf.
        let q = quantize(&[f32::NAN, f32::INFINITY]).unwrap();
        assert_eq!(hex(&q.data), "00 7e 00 7c");
        assert_eq!(q.notes.nan_values, 1);
    }

    #[test]
    fn slice_conversion_matches_scalar_conversion() {
        // Every class of value (normal, subnormal, ties, overflow, inf, NaN, ±0), with a
        // length that leaves remainders for the 8- and 4-lane paths.
        let mut v = vec![
            0.0f32, -0.0, 1.0, -2.0, 0.1, 65519.0, 65520.0, 1e-8, 3e-5, 6.1e-5,
        ];
        v.extend([
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::NAN,
            2049.0,
            2051.0,
            -1e-7,
        ]);
        let mut s = 1u32;
        for _ in 0..(3 * CHUNK + 13) {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            v.push(f32::from_bits(s));
        }
        let want: Vec<u8> = v
            .iter()
            .flat_map(|&x| f16::from_f32(x).to_le_bytes())
            .collect();
        assert_eq!(to_half_bytes(&v), want);
        let mut odd = [0u8; 2 * 7 + 1];
        halves_into(Floats::from_slice(&v[..7]), &mut odd[1..]);
        assert_eq!(&odd[1..], &want[..14]);
        // Values at every address mod 4 (read in place from a file map), and the portable
        // conversion.
        let n = 1000;
        for skip in 0..4 {
            let bytes = ne_bytes_after(skip, &v[..n]);
            let src = Floats::from_ne_bytes(&bytes[skip..]).unwrap();
            let mut out = vec![0u8; 2 * n];
            halves_into(src, &mut out);
            assert!(out == want[..2 * n], "{skip}");
            out.fill(0);
            halves_one_by_one(src, &mut out);
            assert!(out == want[..2 * n], "{skip}");
        }
    }

    #[test]
    fn roundtrip() {
        let v = [0.5f32, -1.25, 1024.0];
        assert_eq!(from_half_bytes(&to_half_bytes(&v)), v);
    }
}
