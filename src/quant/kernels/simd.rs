//! Hand-vectorised x86-64 (AVX2) copies of the two hot loops of the linear kernels: the
//! extremes of a run of weights, and their float32 indices. The compiler's own
//! vectorisation of the portable loops spills and shuffles (measured: 2–4× slower); these
//! do the very same comparisons and arithmetic, in the same order per value, so they give
//! the same bits. Tests compare them with the portable loops.

use std::arch::x86_64::*;

use super::linear::{rne_f32, to_u8, Affine, Op};
use super::Floats;

/// Vectors of eight values handled per loop turn (independent accumulators, so that the
/// latency of one comparison never waits on the previous one).
const UNROLL: usize = 4;
/// Values per loop turn.
const STEP: usize = 8 * UNROLL;

/// Minimum and maximum of `values`, or `None` when one is NaN or infinite (or the slice is
/// empty): the same answer as the portable `minmax_lanes` for every finite input.
///
/// # Safety
/// The processor must support AVX2.
#[target_feature(enable = "avx2")]
pub(crate) unsafe fn minmax_finite_avx2(values: Floats) -> Option<(f32, f32)> {
    let mut lo = [_mm256_set1_ps(f32::INFINITY); UNROLL];
    let mut hi = [_mm256_set1_ps(f32::NEG_INFINITY); UNROLL];
    // All-ones in a lane that has seen a NaN.
    let mut nan = [_mm256_setzero_ps(); UNROLL];
    let whole = values.len() / STEP * STEP;
    let p = values.as_ptr().cast::<f32>();
    for at in (0..whole).step_by(STEP) {
        for k in 0..UNROLL {
            // SAFETY: values at..at + STEP exist (at + STEP ≤ whole ≤ len), so the 8 from
            // at + 8k do; loadu takes any alignment.
            let v = unsafe { _mm256_loadu_ps(p.add(at + 8 * k)) };
            // min_ps(v, lo) is `v < lo ? v : lo`: NaN leaves the accumulator alone.
            lo[k] = _mm256_min_ps(v, lo[k]);
            hi[k] = _mm256_max_ps(v, hi[k]);
            nan[k] = _mm256_or_ps(nan[k], _mm256_cmp_ps::<_CMP_UNORD_Q>(v, v));
        }
    }
    let mut l = f32::INFINITY;
    let mut h = f32::NEG_INFINITY;
    let mut seen_nan = false;
    for k in 0..UNROLL {
        let (mut ls, mut hs, mut ns) = ([0f32; 8], [0f32; 8], [0f32; 8]);
        // SAFETY: each array holds exactly 8 floats; storeu takes any alignment.
        unsafe {
            _mm256_storeu_ps(ls.as_mut_ptr(), lo[k]);
            _mm256_storeu_ps(hs.as_mut_ptr(), hi[k]);
            _mm256_storeu_ps(ns.as_mut_ptr(), nan[k]);
        }
        for i in 0..8 {
            l = if ls[i] < l { ls[i] } else { l };
            h = if hs[i] > h { hs[i] } else { h };
            seen_nan |= ns[i].to_bits() != 0;
        }
    }
    for v in values.range(whole..values.len()).iter() {
        seen_nan |= v.is_nan();
        l = if v < l { v } else { l };
        h = if v > h { v } else { h };
    }
    (!seen_nan && l.is_finite() && h.is_finite()).then_some((l, h))
}

/// Writes the index of each weight of `src` into `dst` (as long as `src`): the float32
/// `(w − offset) × k` or `÷ k`, rounded half to even, clamped to 0–255 with NaN → 0 (the
/// portable `to_u8(rne_f32(…))`, operation for operation).
///
/// # Safety
/// The processor must support AVX2.
#[target_feature(enable = "avx2")]
pub(crate) unsafe fn indices_f32_avx2(dst: &mut [u8], src: Floats, a: Affine<f32>) {
    let n = dst.len().min(src.len());
    let whole = n / STEP * STEP;
    let offset = _mm256_set1_ps(a.offset);
    let k = _mm256_set1_ps(a.k);
    let magic = _mm256_set1_ps(8_388_608.0); // 2^23: adding and removing it rounds
    let zero = _mm256_setzero_ps();
    let top = _mm256_set1_ps(255.0);
    // packs/packus interleave the two 128-bit halves; this puts the 4-byte groups back.
    let order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7);
    let index = |v: __m256| -> __m256i {
        let x = _mm256_sub_ps(v, offset);
        let x = match a.op {
            Op::Mul => _mm256_mul_ps(x, k),
            Op::Div => _mm256_div_ps(x, k),
        };
        let x = _mm256_sub_ps(_mm256_add_ps(x, magic), magic);
        // max_ps(x, 0) is `x > 0 ? x : 0` (NaN → 0), min_ps(x, 255) is `x < 255 ? x : 255`.
        let x = _mm256_min_ps(_mm256_max_ps(x, zero), top);
        _mm256_cvttps_epi32(x)
    };
    let p = src.as_ptr().cast::<f32>();
    for (i, d) in dst[..whole].chunks_exact_mut(STEP).enumerate() {
        // SAFETY: values i·STEP..(i + 1)·STEP exist (≤ whole ≤ len) and `d` holds STEP = 32
        // bytes; unaligned loads and stores.
        unsafe {
            let p = p.add(i * STEP);
            let q0 = index(_mm256_loadu_ps(p));
            let q1 = index(_mm256_loadu_ps(p.add(8)));
            let q2 = index(_mm256_loadu_ps(p.add(16)));
            let q3 = index(_mm256_loadu_ps(p.add(24)));
            // Every index is 0–255: the saturating packs keep them as they are.
            let w01 = _mm256_packs_epi32(q0, q1);
            let w23 = _mm256_packs_epi32(q2, q3);
            let b = _mm256_packus_epi16(w01, w23);
            let b = _mm256_permutevar8x32_epi32(b, order);
            _mm256_storeu_si256(d.as_mut_ptr().cast(), b);
        }
    }
    for (d, w) in dst[whole..n].iter_mut().zip(src.range(whole..n).iter()) {
        *d = to_u8(rne_f32(a.apply(w)));
    }
}

/// Writes the little-endian halves of `src` into `dst` (twice as long, or as many as fit):
/// the F16C conversion with round to nearest even, the one `half` uses on such processors.
///
/// # Safety
/// The processor must support AVX2 and F16C.
#[target_feature(enable = "avx2,f16c")]
pub(crate) unsafe fn halves_f16c(dst: &mut [u8], src: Floats) {
    let n = (dst.len() / 2).min(src.len());
    let whole = n / 8 * 8;
    let p = src.as_ptr().cast::<f32>();
    for (i, d) in dst[..whole * 2].chunks_exact_mut(16).enumerate() {
        // SAFETY: values 8i..8i + 8 exist (≤ whole ≤ len) and `d` holds 16 bytes; unaligned
        // loads and stores.
        unsafe {
            let v = _mm256_loadu_ps(p.add(8 * i));
            let h = _mm256_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(v);
            _mm_storeu_si128(d.as_mut_ptr().cast(), h);
        }
    }
    super::fp16::halves_one_by_one(src.range(whole..n), &mut dst[whole * 2..n * 2]);
}
