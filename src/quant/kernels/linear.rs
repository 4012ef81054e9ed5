//! `linear` quantization (spec §3.2): per channel, scale = (max − min)/(2^b − 1), bias = min,
//! q = round-half-even((w − min)·(1/scale)), all indices 0 when the scale is ≤ 1e-6.

use rayon::prelude::*;

use super::{pack, ChannelView, Dialect, Floats, Notes, Params, Quantized};

/// Values per parallel work item of the min/max pass.
const MINMAX_CHUNK: usize = 1 << 16;

/// fl32(1e-6): coremltools compares the float32 scale against this value in float32.
pub(crate) const THRESHOLD_F32: f32 = 1e-6;
/// The float64 threshold of dialect F64.
pub(crate) const THRESHOLD_F64: f64 = 1e-6;

/// Rounds `0 ≤ x < 2^22` to the nearest integer, ties to even (the FPU's default rounding of
/// the addition does the work; much faster than a libm call on baseline x86-64).
#[inline(always)]
pub(crate) fn rne_f32(x: f32) -> f32 {
    const M: f32 = 8_388_608.0; // 2^23
    (x + M) - M
}

/// Rounds `0 ≤ x < 2^51` to the nearest integer, ties to even.
#[inline(always)]
pub(crate) fn rne_f64(x: f64) -> f64 {
    const M: f64 = 4_503_599_627_370_496.0; // 2^52
    (x + M) - M
}

/// Minimum and maximum of a slice as numpy's `amin`/`amax` give them: NaN if any value is NaN;
/// (0, 0) for an empty slice. Equal extremes keep the last occurrence, as numpy does.
pub(crate) fn minmax(values: &[f32]) -> (f32, f32) {
    minmax_of(Floats::from_slice(values))
}

/// [`minmax`] of values at any alignment.
pub(crate) fn minmax_of(values: Floats) -> (f32, f32) {
    if values.is_empty() {
        return (0.0, 0.0);
    }
    if values.len() <= MINMAX_CHUNK {
        return minmax_seq(values);
    }
    let parts: Vec<(f32, f32)> = (0..values.len().div_ceil(MINMAX_CHUNK))
        .into_par_iter()
        .map(|i| minmax_seq(values.range(i * MINMAX_CHUNK..(i + 1) * MINMAX_CHUNK)))
        .collect();
    parts.into_iter().reduce(combine).unwrap_or((0.0, 0.0))
}

fn minmax_seq(values: Floats) -> (f32, f32) {
    // Non-zero extremes that compare equal have equal bits, so the order of ties only
    // matters for ±0 and NaN: the vectorised pass answers every other case exactly.
    match minmax_lanes(values) {
        Some((lo, hi)) if lo != 0.0 && hi != 0.0 => (lo, hi),
        _ => minmax_exact(values),
    }
}

/// Lanes of the vectorised min/max pass.
const LANES: usize = 16;

/// [`minmax_lanes_body`], by hand-written AVX2 code where the processor has it (the same
/// answer: see [`super::simd`]).
fn minmax_lanes(values: Floats) -> Option<(f32, f32)> {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the processor supports AVX2 (checked just above).
        return unsafe { super::simd::minmax_finite_avx2(values) };
    }
    minmax_lanes_body(values)
}

/// Minimum and maximum with plain comparisons (which the compiler turns into SIMD min/max),
/// or `None` when a value is not finite (NaN or infinity: the exact pass decides those) or
/// there is none.
#[inline(always)]
fn minmax_lanes_body(values: Floats) -> Option<(f32, f32)> {
    if values.is_empty() {
        return None;
    }
    let mut lo = [f32::INFINITY; LANES];
    let mut hi = [f32::NEG_INFINITY; LANES];
    // v · 0 is ±0 for finite values and NaN for NaN and ±inf: one NaN poisons the lane.
    let mut finite = [0.0f32; LANES];
    let whole = values.len() / LANES * LANES;
    for c in values.range(0..whole).chunks(LANES) {
        for (i, v) in c.iter().enumerate() {
            finite[i] += v * 0.0;
            lo[i] = if v < lo[i] { v } else { lo[i] };
            hi[i] = if v > hi[i] { v } else { hi[i] };
        }
    }
    for v in values.range(whole..values.len()).iter() {
        finite[0] += v * 0.0;
        lo[0] = if v < lo[0] { v } else { lo[0] };
        hi[0] = if v > hi[0] { v } else { hi[0] };
    }
    if finite.iter().any(|f| *f != 0.0) {
        return None;
    }
    let l = lo
        .iter()
        .fold(f32::INFINITY, |a, &b| if b < a { b } else { a });
    let h = hi
        .iter()
        .fold(f32::NEG_INFINITY, |a, &b| if b > a { b } else { a });
    Some((l, h))
}

/// The reference pass: numpy's NaN propagation and tie order, one value at a time.
fn minmax_exact(values: Floats) -> (f32, f32) {
    let mut lo = f32::INFINITY;
    let mut hi = f32::NEG_INFINITY;
    let mut nan = false;
    for v in values.iter() {
        nan |= v.is_nan();
        // numpy's minimum/maximum keep the later operand on ties (−0.0 vs +0.0 matters).
        lo = if v <= lo { v } else { lo };
        hi = if v >= hi { v } else { hi };
    }
    if nan {
        (f32::NAN, f32::NAN)
    } else {
        (lo, hi)
    }
}

/// The extremes of two consecutive parts from theirs (NaN wins; ties keep the later part's).
pub(crate) fn combine(a: (f32, f32), b: (f32, f32)) -> (f32, f32) {
    if a.0.is_nan() || b.0.is_nan() {
        return (f32::NAN, f32::NAN);
    }
    (
        if b.0 <= a.0 { b.0 } else { a.0 },
        if b.1 >= a.1 { b.1 } else { a.1 },
    )
}

/// Per-channel minimum and maximum, in channel order.
pub(crate) fn channel_minmax(values: &[f32], view: &ChannelView) -> Vec<(f32, f32)> {
    if view.channels == 1 {
        return vec![minmax(values)];
    }
    if view.inner * view.channels == values.len() {
        // Axis 0: each channel is one contiguous block.
        return values.par_chunks(view.inner).map(minmax).collect();
    }
    // Axis 1: channel c is every `channels`-th block of `inner` values, starting at block c.
    let blocks = values.len() / view.inner;
    (0..view.channels)
        .into_par_iter()
        .map(|c| {
            (c..blocks)
                .step_by(view.channels)
                .filter_map(|blk| values.get(blk * view.inner..(blk + 1) * view.inner))
                .map(minmax)
                .reduce(combine)
                .unwrap_or((0.0, 0.0))
        })
        .collect()
}

/// One channel's linear parameters in both dialects' terms.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Channel {
    /// The minimum (the stored bias).
    pub lo: f32,
    /// The stored (float32) scale.
    pub scale: f32,
    /// The unrounded float64 scale (dialect F64).
    pub scale64: f64,
    /// Reciprocal used for the indices in F32 (0 under the threshold).
    pub inv32: f32,
    /// Reciprocal used for the indices in F64 (0 under the threshold).
    pub inv64: f64,
    /// The scale was non-zero but under the threshold.
    pub thresholded: bool,
}

impl Channel {
    /// The index arithmetic of this channel in `dialect`: `(w − lo) × (1/scale)`.
    pub(crate) fn index_map(&self, dialect: Dialect) -> IndexMap {
        match dialect {
            Dialect::F32 => IndexMap::F32(Affine {
                offset: self.lo,
                op: Op::Mul,
                k: self.inv32,
            }),
            Dialect::F64 => IndexMap::F64(Affine {
                offset: self.lo as f64,
                op: Op::Mul,
                k: self.inv64,
            }),
        }
    }

    /// Computes the parameters of a channel with extremes `lo`, `hi` (spec §3.2 steps 3–4).
    pub(crate) fn new(lo: f32, hi: f32, nbits: u8, dialect: Dialect) -> Channel {
        let qmax = ((1u32 << nbits) - 1) as f32;
        match dialect {
            Dialect::F32 => {
                let scale = (hi - lo) / qmax;
                let pass = scale.abs() > THRESHOLD_F32;
                let inv32 = if pass { 1.0 / scale } else { 0.0 };
                Channel {
                    lo,
                    scale,
                    scale64: scale as f64,
                    inv32,
                    inv64: inv32 as f64,
                    thresholded: !pass && scale != 0.0 && !scale.is_nan(),
                }
            }
            Dialect::F64 => {
                let scale64 = (hi as f64 - lo as f64) / qmax as f64;
                let pass = scale64.abs() > THRESHOLD_F64;
                let inv64 = if pass { 1.0 / scale64 } else { 0.0 };
                Channel {
                    lo,
                    scale: scale64 as f32,
                    scale64,
                    inv32: inv64 as f32,
                    inv64,
                    thresholded: !pass && scale64 != 0.0 && !scale64.is_nan(),
                }
            }
        }
    }
}

/// A per-channel linear scheme (`linear`, `linear_symmetric`): each channel's parameters
/// come from its extremes alone, and its indices from those parameters alone.
pub(crate) trait Scheme: Sync {
    /// One channel's parameters.
    type Channel: Copy + Send + Sync;
    /// Bits per index.
    fn nbits(&self) -> u8;
    /// The parameters of a channel with extremes `lo`, `hi`.
    fn channel(&self, lo: f32, hi: f32) -> Self::Channel;
    /// Writes the indices of `src`, values of one channel, into `dst` (as long as `src`).
    fn indices(&self, ch: &Self::Channel, src: Floats, dst: &mut [u8]);
    /// Whether the channel's non-zero scale fell under the threshold (all its indices 0).
    fn thresholded(&self, ch: &Self::Channel) -> bool;
    /// The stored parameters of the tensor's channels.
    fn params(&self, channels: &[Self::Channel]) -> Params;
}

/// `linear` with `nbits` bits in `dialect`.
pub(crate) struct Linear {
    /// Bits per index (1–8).
    pub nbits: u8,
    /// The arithmetic reproduced.
    pub dialect: Dialect,
}

impl Scheme for Linear {
    type Channel = Channel;

    fn nbits(&self) -> u8 {
        self.nbits
    }

    fn channel(&self, lo: f32, hi: f32) -> Channel {
        Channel::new(lo, hi, self.nbits, self.dialect)
    }

    #[inline]
    fn indices(&self, ch: &Channel, src: Floats, dst: &mut [u8]) {
        fill_indices(dst, src, ch.index_map(self.dialect))
    }

    fn thresholded(&self, ch: &Channel) -> bool {
        ch.thresholded
    }

    fn params(&self, channels: &[Channel]) -> Params {
        Params::Linear {
            scale: channels.iter().map(|c| c.scale).collect(),
            bias: channels.iter().map(|c| c.lo).collect(),
        }
    }
}

/// Channel parameters, packed indices and notes for `values` seen through `view`.
pub(crate) fn run<S: Scheme>(
    values: &[f32],
    view: &ChannelView,
    scheme: &S,
) -> (Vec<S::Channel>, Vec<u8>, Notes) {
    let extremes = channel_minmax(values, view);
    let channels: Vec<S::Channel> = extremes
        .iter()
        .map(|&(lo, hi)| scheme.channel(lo, hi))
        .collect();
    let data = pack_channels(values, view, scheme, &channels);
    let notes = Notes {
        nan_values: count_nan_after(values, &extremes),
        threshold_channels: channels.iter().filter(|c| scheme.thresholded(c)).count() as u64,
    };
    (channels, data, notes)
}

/// The tensor `values` seen through `view`, quantized by `scheme`.
pub(crate) fn quantize_with<S: Scheme>(
    values: &[f32],
    view: &ChannelView,
    scheme: &S,
) -> Quantized {
    let (channels, data, notes) = run(values, view, scheme);
    Quantized {
        nbits: scheme.nbits(),
        data,
        params: scheme.params(&channels),
        notes,
    }
}

/// Packs the indices `scheme` gives the `values` seen through `view`, each run of a
/// channel's values with that channel's parameters from `channels`.
fn pack_channels<S: Scheme>(
    values: &[f32],
    view: &ChannelView,
    scheme: &S,
    channels: &[S::Channel],
) -> Vec<u8> {
    pack::pack_with(values.len(), scheme.nbits(), |start, buf| {
        view.for_runs(start..start + buf.len(), |c, run| {
            if let (Some(ch), Some(src)) = (channels.get(c), values.get(run.clone())) {
                if let Some(dst) = buf.get_mut(run.start - start..run.end - start) {
                    scheme.indices(ch, Floats::from_slice(src), dst);
                }
            }
        });
    })
}

/// The arithmetic of an unrounded index: `(w − offset) × k` or `(w − offset) ÷ k`, in the
/// float type `F` of the dialect.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Affine<F> {
    /// Subtracted from the weight first.
    pub offset: F,
    /// Whether the difference is multiplied by `k` or divided by it.
    pub op: Op,
    /// The factor or divisor.
    pub k: F,
}

/// Multiplication or true division (the two differ in the last bit, so each scheme says
/// which coremltools does).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    /// `× k`.
    Mul,
    /// `÷ k`.
    Div,
}

impl<
        F: std::ops::Sub<Output = F> + std::ops::Mul<Output = F> + std::ops::Div<Output = F> + Copy,
    > Affine<F>
{
    /// The unrounded index of `w`.
    #[inline(always)]
    pub(crate) fn apply(self, w: F) -> F {
        match self.op {
            Op::Mul => (w - self.offset) * self.k,
            Op::Div => (w - self.offset) / self.k,
        }
    }
}

/// How one channel's indices are computed, in either dialect.
#[derive(Debug, Clone, Copy)]
pub(crate) enum IndexMap {
    /// Dialect F32: float32 arithmetic.
    F32(Affine<f32>),
    /// Dialect F64: float64 arithmetic on the widened weight.
    F64(Affine<f64>),
}

/// Fills `dst` with the indices of `src` (as many as both hold), each rounded half to even
/// and clamped to 0–255 (NaN → 0). Float32 runs on hand-written AVX2 code where the
/// processor has it (see [`super::simd`]); float64 on the compiler's AVX2 build of the same
/// loop. Both give the portable loop's bytes.
#[inline(always)]
pub(crate) fn fill_indices(dst: &mut [u8], src: Floats, map: IndexMap) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the processor supports AVX2 (checked just above).
        unsafe {
            match map {
                IndexMap::F32(a) => super::simd::indices_f32_avx2(dst, src, a),
                IndexMap::F64(a) => fill_indices_f64_avx2(dst, src, a),
            }
        }
        return;
    }
    fill_indices_body(dst, src, map)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn fill_indices_f64_avx2(dst: &mut [u8], src: Floats, a: Affine<f64>) {
    fill_indices_body(dst, src, IndexMap::F64(a))
}

/// The portable loop of [`fill_indices`].
#[inline(always)]
fn fill_indices_body(dst: &mut [u8], src: Floats, map: IndexMap) {
    match map {
        IndexMap::F32(a) => {
            for (d, w) in dst.iter_mut().zip(src.iter()) {
                *d = to_u8(rne_f32(a.apply(w)));
            }
        }
        // The operation is chosen outside the loop, which then vectorises.
        IndexMap::F64(Affine { offset, op, k }) => match op {
            Op::Mul => {
                for (d, w) in dst.iter_mut().zip(src.iter()) {
                    *d = to_u8(rne_f64((w as f64 - offset) * k) as f32);
                }
            }
            Op::Div => {
                for (d, w) in dst.iter_mut().zip(src.iter()) {
                    *d = to_u8(rne_f64((w as f64 - offset) / k) as f32);
                }
            }
        },
    }
}

/// `x as u8` (NaN → 0, saturating at 0 and 255, truncating), written as a clamp and a
/// 32-bit conversion, which the compiler vectorises; the saturating 8-bit cast it does not.
#[inline(always)]
pub(crate) fn to_u8(x: f32) -> u8 {
    // Plain comparisons (SIMD max/min): a NaN fails the first and becomes 0.
    let x = if x > 0.0 { x } else { 0.0 };
    let x = if x < 255.0 { x } else { 255.0 };
    // SAFETY: x is finite and within 0..=255 here, so the conversion is defined (and exact
    // after truncation, as `as` would do).
    unsafe { x.to_int_unchecked::<i32>() as u8 }
}

/// Number of NaN values given the extremes found for the tensor's channels: a NaN makes its
/// channel's extremes NaN, so without a NaN extreme there is nothing to count.
pub(crate) fn count_nan_after(values: &[f32], extremes: &[(f32, f32)]) -> u64 {
    if extremes.iter().any(|(lo, hi)| lo.is_nan() || hi.is_nan()) {
        count_nan(values)
    } else {
        0
    }
}

/// Number of NaN values (a fast parallel count; 0 for NaN-free tensors).
pub(crate) fn count_nan(values: &[f32]) -> u64 {
    values
        .par_chunks(MINMAX_CHUNK)
        .map(|c| count_nan_of(Floats::from_slice(c)))
        .sum()
}

/// Number of NaN values of a run (sequentially).
pub(crate) fn count_nan_of(values: Floats) -> u64 {
    values.iter().filter(|v| v.is_nan()).count() as u64
}

/// `linear` quantization with `nbits` bits of the tensor seen through `view`.
pub fn quantize(values: &[f32], view: &ChannelView, nbits: u8, dialect: Dialect) -> Quantized {
    let nbits = nbits.clamp(1, 8);
    quantize_with(values, view, &Linear { nbits, dialect })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quant::kernels::testutil::{hex, ne_bytes_after, Rng};
    use crate::quant::kernels::{dequantize, quantize as q_tensor};
    use crate::quant::Target;

    fn lin(values: &[f32], shape: &[u64], axis: usize, b: u8) -> Quantized {
        q_tensor(values, shape, axis, &Target::Linear(b), Dialect::F32).unwrap()
    }

    fn scale_bias(q: &Quantized) -> (Vec<f32>, Vec<f32>) {
        match &q.params {
            Params::Linear { scale, bias } => (scale.clone(), bias.clone()),
            p => panic!("not linear: {p:?}"),
        }
    }

    #[test]
    fn spec_3_7_table_zero_to_seven() {
        let w: Vec<f32> = (0..8).map(|k| k as f32).collect();
        let want = [
            "0f",
            "05 af",
            "05 39 77",
            "02 46 9b df",
            "01 12 d9 5b 7f",
            "00 94 9b 92 dd bf",
            "00 49 23 69 36 f6 ff",
            "00 24 49 6d 92 b6 db ff",
        ];
        for (b, want) in (1..=8).zip(want) {
            let q = lin(&w, &[1, 8], 0, b);
            assert_eq!(hex(&q.data), want, "{b} bits");
        }
    }

    #[test]
    fn spec_3_7_more_examples() {
        let q = lin(&[0.0, 7.0, 3.5], &[1, 3], 0, 3);
        assert_eq!(hex(&q.data), "1e 00");
        let q = lin(&[5.0], &[1, 1], 0, 1);
        assert_eq!(hex(&q.data), "00");
        let q = lin(&[0., 1., 2., 3., 10., 20., 30., 40.], &[2, 4], 0, 2);
        assert_eq!(hex(&q.data), "1b 1b");
        assert_eq!(scale_bias(&q), (vec![1.0, 10.0], vec![0.0, 10.0]));
        let q = lin(&[1.0, 3.0], &[2], 0, 2);
        assert_eq!(hex(&q.data), "30");
        assert_eq!(scale_bias(&q), (vec![0.666_666_7], vec![1.0]));
    }

    #[test]
    fn spec_3_2_edge_cases() {
        // Threshold: scale stored, indices forced to 0.
        let q = lin(&[0.0, 1e-7, 2e-7, 3e-6], &[4], 0, 2);
        assert_eq!(hex(&q.data), "00");
        let (s, b) = scale_bias(&q);
        assert_eq!(s[0].to_bits(), 1e-6f32.to_bits());
        assert_eq!(b, vec![0.0]);
        assert_eq!(q.notes.threshold_channels, 1);
        // Ties to even.
        let q = lin(&[0.0, 0.5, 1.5, 2.5, 3.5, 7.0], &[6], 0, 3);
        let idx = crate::quant::kernels::pack::unpack(&q.data, 3, 6).unwrap();
        assert_eq!(idx, vec![0, 0, 2, 2, 4, 7]);
        // max == min.
        let q = lin(&[2.5, 2.5], &[2], 0, 4);
        assert_eq!(scale_bias(&q), (vec![0.0], vec![2.5]));
        assert_eq!(q.notes.threshold_channels, 0);
    }

    #[test]
    fn to_u8_is_the_saturating_cast() {
        let xs = [
            f32::NAN,
            -f32::NAN,
            f32::INFINITY,
            f32::NEG_INFINITY,
            -0.0,
            0.0,
            -0.5,
            -1.0,
            0.999,
            1.0,
            254.99,
            255.0,
            255.5,
            256.0,
            1e30,
            -1e30,
        ];
        for x in xs {
            assert_eq!(to_u8(x), x as u8, "{x}");
        }
        // The F64 path narrows an integral f64 first: exact for every index.
        for k in 0..=255u32 {
            assert_eq!(to_u8(k as f64 as f32), k as u8);
        }
    }

    #[test]
    fn minmax_fast_path_agrees_with_the_exact_pass() {
        let mut rng = Rng::new(5);
        let mut cases: Vec<Vec<f32>> = vec![
            vec![0.0, -0.0, 1.0],
            vec![-0.0, 0.0, -1.0],
            vec![1.0, f32::NAN, 2.0],
            vec![f32::INFINITY, 1.0],
            vec![-3.0; 40],
            vec![0.0; 17],
            // Large values, then a NaN or an infinity of the other sign.
            vec![f32::MAX; 64],
            [vec![f32::MAX; 48], vec![f32::NAN], vec![1.0; 20]].concat(),
            [vec![f32::MAX; 48], vec![f32::NEG_INFINITY], vec![1.0; 20]].concat(),
            [vec![-f32::MAX; 33], vec![f32::INFINITY; 2], vec![-0.0; 3]].concat(),
            // A NaN in a lane other than the first, and in the remainder.
            [vec![2.0; 37], vec![f32::NAN], vec![-2.0; 26]].concat(),
            [vec![2.0; 64], vec![f32::NAN]].concat(),
        ];
        for n in [1usize, 15, 16, 17, 100, 1000] {
            cases.push((0..n).map(|_| rng.normal()).collect());
            let mut v: Vec<f32> = (0..n).map(|_| rng.normal().abs()).collect();
            v[n / 2] = 0.0;
            cases.push(v.clone());
            v[n - 1] = -0.0;
            cases.push(v);
        }
        for v in &cases {
            let (a, b) = minmax_seq(Floats::from_slice(v));
            let (x, y) = minmax_exact(Floats::from_slice(v));
            assert_eq!(
                (a.to_bits(), b.to_bits()),
                (x.to_bits(), y.to_bits()),
                "{v:?}"
            );
        }
    }

    #[test]
    fn vector_copies_agree_with_the_baseline_ones() {
        let mut rng = Rng::new(9);
        let bits = |r: Option<(f32, f32)>| r.map(|(a, b)| (a.to_bits(), b.to_bits()));
        let sizes = (0..100).chain([255, 256, 257, 4099]);
        for n in sizes {
            let mut v: Vec<f32> = (0..n).map(|_| rng.normal() * 3.0).collect();
            for skip in 0..4 {
                let b = ne_bytes_after(skip, &v);
                let f = Floats::from_ne_bytes(&b[skip..]).unwrap();
                assert_eq!(bits(minmax_lanes(f)), bits(minmax_lanes_body(f)), "{n}");
            }
            // Ties at .5 after the mapping below, far out-of-range weights and NaN.
            for (i, w) in v.iter_mut().enumerate().filter(|(i, _)| i % 7 == 3) {
                *w = [-2.5 + 6.5 * 0.5 / 255.0, 1e30, -1e30, f32::NAN][i % 4];
            }
            for dialect in [Dialect::F32, Dialect::F64] {
                let ch = Channel::new(-2.5, 4.0, 8, dialect);
                let sym = super::super::symmetric::Symmetric { dialect };
                let sch = sym.channel(-2.5, 4.0);
                for map in [ch.index_map(dialect), sym.index_map(&sch)] {
                    let mut want = vec![9u8; n];
                    fill_indices_body(&mut want, Floats::from_slice(&v), map);
                    for skip in 0..4 {
                        let b = ne_bytes_after(skip, &v);
                        let mut got = vec![7u8; n];
                        fill_indices(&mut got, Floats::from_ne_bytes(&b[skip..]).unwrap(), map);
                        assert_eq!(got, want, "{n} {map:?} {skip}");
                    }
                }
            }
            // A NaN or an infinity anywhere: no fast answer.
            for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
                for at in [0, n / 2, n.saturating_sub(1)] {
                    let mut w: Vec<f32> = (0..n).map(|i| i as f32).collect();
                    if let Some(x) = w.get_mut(at) {
                        *x = bad;
                        let f = Floats::from_slice(&w);
                        assert_eq!(minmax_lanes(f), None, "{n} {bad} at {at}");
                        assert_eq!(minmax_lanes_body(f), None, "{n} {bad} at {at}");
                    }
                }
            }
        }
    }

    #[test]
    fn deconvolution_axis_one() {
        // [kc=2, oc=3, 1, 1]: channel c = w[0][c], w[1][c].
        let w = [0.0, 10.0, 100.0, 1.0, 20.0, 300.0];
        let q = lin(&w, &[2, 3, 1, 1], 1, 8);
        let (s, b) = scale_bias(&q);
        assert_eq!(b, vec![0.0, 10.0, 100.0]);
        assert_eq!(s, vec![1.0 / 255.0, 10.0 / 255.0, 200.0 / 255.0]);
        assert_eq!(q.data, vec![0, 0, 0, 255, 255, 255]);
    }

    #[test]
    fn dialects_differ_only_in_rounding() {
        let mut rng = Rng::new(3);
        let w: Vec<f32> = (0..4096).map(|_| rng.normal()).collect();
        let a = lin(&w, &[16, 256], 0, 4);
        let b = q_tensor(&w, &[16, 256], 0, &Target::Linear(4), Dialect::F64).unwrap();
        let (ia, ib) = (
            pack::unpack(&a.data, 4, 4096).unwrap(),
            pack::unpack(&b.data, 4, 4096).unwrap(),
        );
        let diff = ia.iter().zip(&ib).filter(|(x, y)| x != y).count();
        assert!(diff < 40, "{diff}");
        assert!(ia.iter().zip(&ib).all(|(x, y)| x.abs_diff(*y) <= 1));
    }

    #[test]
    fn matches_reference_arithmetic_and_error_bound() {
        let mut rng = Rng::new(11);
        for round in 0..60 {
            let b = (round % 8) as u8 + 1;
            let rows = rng.below(5) as usize + 1;
            let cols = rng.below(300) as usize + 1;
            let w: Vec<f32> = (0..rows * cols).map(|_| rng.normal() * 3.0).collect();
            let q = lin(&w, &[rows as u64, cols as u64], 0, b);
            let idx = pack::unpack(&q.data, b, w.len()).unwrap();
            let (s, bias) = scale_bias(&q);
            let deq = dequantize(&q, &[rows as u64, cols as u64], 0).unwrap();
            for r in 0..rows {
                let row = &w[r * cols..(r + 1) * cols];
                let lo = row.iter().copied().fold(f32::INFINITY, f32::min);
                let hi = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                let scale = (hi - lo) / ((1u32 << b) - 1) as f32;
                assert_eq!(s[r].to_bits(), scale.to_bits());
                assert_eq!(bias[r], lo);
                let inv = if scale.abs() > 1e-6 { 1.0 / scale } else { 0.0 };
                for (k, &x) in row.iter().enumerate() {
                    let want = ((x - lo) * inv).round_ties_even();
                    assert_eq!(idx[r * cols + k] as f32, want);
                    assert!(u32::from(idx[r * cols + k]) < (1u32 << b));
                    let err = (deq[r * cols + k] - x).abs();
                    assert!(
                        err <= scale * 0.5 * 1.0001 + 1e-6,
                        "err {err} scale {scale}"
                    );
                }
            }
        }
    }

    #[test]
    fn f64_dialect_matches_reference_arithmetic() {
        let mut rng = Rng::new(12);
        for round in 0..40 {
            let b = (round % 8) as u8 + 1;
            let n = rng.below(500) as usize + 2;
            let w: Vec<f32> = (0..n).map(|_| rng.normal() * 0.01).collect();
            let q = q_tensor(&w, &[n as u64], 0, &Target::Linear(b), Dialect::F64).unwrap();
            let idx = pack::unpack(&q.data, b, n).unwrap();
            let lo = w.iter().copied().fold(f32::INFINITY, f32::min) as f64;
            let hi = w.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
            let scale = (hi - lo) / ((1u32 << b) - 1) as f64;
            let inv = if scale.abs() > 1e-6 { 1.0 / scale } else { 0.0 };
            let (s, _) = scale_bias(&q);
            assert_eq!(s[0], scale as f32);
            for (k, &x) in w.iter().enumerate() {
                assert_eq!(idx[k] as f64, ((x as f64 - lo) * inv).round_ties_even());
            }
        }
    }

    #[test]
    fn nan_channel_collapses_to_zero() {
        let q = lin(&[1.0, f32::NAN, 3.0, 0.0, 1.0, 2.0], &[2, 3], 0, 8);
        assert_eq!(q.data, vec![0, 0, 0, 0, 127, 255]);
        assert_eq!(q.notes.nan_values, 1);
    }

    #[test]
    fn large_tensor_is_thread_count_independent() {
        let mut rng = Rng::new(5);
        let w: Vec<f32> = (0..300_001).map(|_| rng.normal()).collect();
        let a = lin(&w, &[300_001], 0, 3);
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap();
        let b = pool.install(|| lin(&w, &[300_001], 0, 3));
        assert_eq!(a, b);
    }
}
