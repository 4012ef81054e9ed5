//! `kmeans_lut` (spec §3.5), done better than coremltools: a deterministic, optimal 1-D
//! k-means (minimum within-cluster sum of squares) instead of scikit-learn's seeded
//! k-means++ with one or two Lloyd steps.
//!
//! Method: sort the finite weights, collapse duplicates into (value, count) pairs and solve the
//! classic 1-D k-means dynamic programme over them with the divide-and-conquer optimisation
//! (clusters are contiguous intervals of the sorted values; O(k·m·log m) interval costs from
//! f64 prefix sums). When there are too many distinct values for that budget, consecutive
//! distinct values are first merged into equal-mass groups, the programme is solved over the
//! groups, and the programme is solved again over all distinct values with every cut
//! restricted to a window around its coarse position (windows re-centred while a cut lands on
//! an edge), which recovers the exact optimum in practice. Results depend only on the input,
//! never on the thread count.
//!
//! Table layout: the k = min(2^b, distinct) centres ascending (coremltools uses cluster order;
//! the order carries no meaning; infinite centres, if any, follow the finite ones), then zeros
//! up to 2^b entries. Every weight takes the index of its nearest centre (ties → lower index).
//! NaN weights take index 0 and are counted in [`Notes::nan_values`]; ±inf weights get their
//! own centres when the table has room.

use rayon::prelude::*;

use super::custom_lut::pack_nearest;
use super::{Notes, Params, Quantized};

/// Work budget for the dynamic programme: k·m·log2(m) interval evaluations at most.
const DP_BUDGET: f64 = 3.0e7;
/// The most items (distinct values or groups) the programme ever works on.
const MAX_ITEMS: usize = 1 << 22;
/// Below this many positions a divide-and-conquer step runs sequentially.
const PAR_MIN: usize = 4096;

/// `kmeans_lut` quantization with `nbits` bits: optimal 1-D k-means table and nearest indices.
pub fn quantize(values: &[f32], nbits: u8) -> Quantized {
    let nbits = nbits.clamp(1, 8);
    let table_len = 1usize << nbits;
    let centres = centres(values, table_len);
    let mut table = centres.clone();
    table.resize(table_len, 0.0);
    let data = pack_nearest(values, nbits, &centres);
    let nan_values = values.par_iter().filter(|v| v.is_nan()).count() as u64;
    Quantized {
        nbits,
        data,
        params: Params::Lut(table),
        notes: Notes {
            nan_values,
            threshold_channels: 0,
        },
    }
}

/// The centres (at most `k_max`) minimising the squared error of `values`: the finite ones
/// ascending, then −inf and +inf when such weights exist and the table has room.
pub fn centres(values: &[f32], k_max: usize) -> Vec<f32> {
    centres_within(values, k_max, item_budget(k_max))
}

/// [`centres`] with an explicit cap on the items of the dynamic programme.
fn centres_within(values: &[f32], k_max: usize, budget: usize) -> Vec<f32> {
    let Distinct {
        xs,
        full,
        mu,
        neg_inf,
        pos_inf,
    } = distinct(values);
    let mut k_inf = usize::from(neg_inf) + usize::from(pos_inf);
    if !xs.is_empty() && k_inf >= k_max {
        k_inf = 0; // no room: finite values need at least one centre
    }
    let k = k_max.saturating_sub(k_inf).min(xs.len());
    let mut out: Vec<f32> = Vec::with_capacity(k + 2);
    if k == xs.len() {
        out.extend_from_slice(&xs);
    } else if k > 0 {
        drop(xs);
        out.extend(optimal(&full, mu, k, budget));
    }
    // Infinite centres go after the finite ones, so index 0 (where NaN weights land) is finite.
    if k_inf > 0 && neg_inf {
        out.push(f32::NEG_INFINITY);
    }
    if k_inf > 0 && pos_inf && out.len() < k_max {
        out.push(f32::INFINITY);
    }
    if out.is_empty() && (neg_inf || pos_inf) {
        out.push(if neg_inf {
            f32::NEG_INFINITY
        } else {
            f32::INFINITY
        });
    }
    out
}

/// The distinct finite values (ascending; −0.0 and +0.0 are one value) and the prefix sums of
/// their multiplicities, centred on the mean `mu`.
struct Distinct {
    xs: Vec<f32>,
    full: Prefix,
    mu: f64,
    neg_inf: bool,
    pos_inf: bool,
}

/// Maps a non-NaN float to a key whose unsigned order is the float's total order.
#[inline]
fn key(v: f32) -> u32 {
    let b = v.to_bits();
    if b >> 31 == 1 {
        !b
    } else {
        b | 0x8000_0000
    }
}

#[inline]
fn unkey(k: u32) -> f32 {
    f32::from_bits(if k >> 31 == 1 { k & 0x7fff_ffff } else { !k })
}

/// LSD radix sort of u32 keys in three 11-bit passes (passes where every key has the same
/// digit are skipped).
fn radix_sort(keys: &mut Vec<u32>) {
    const BITS: u32 = 11;
    const BUCKETS: usize = 1 << BITS;
    if keys.len() < 1 << 12 {
        keys.sort_unstable();
        return;
    }
    let mut tmp = vec![0u32; keys.len()];
    for pass in 0..3 {
        let shift = pass * BITS;
        let digit = |k: u32| ((k >> shift) as usize) & (BUCKETS - 1);
        let mut counts = vec![0usize; BUCKETS];
        for &k in keys.iter() {
            counts[digit(k)] += 1;
        }
        if counts.contains(&keys.len()) {
            continue;
        }
        let mut pos = vec![0usize; BUCKETS];
        let mut acc = 0;
        for (p, c) in pos.iter_mut().zip(&counts) {
            *p = acc;
            acc += c;
        }
        for &k in keys.iter() {
            let d = digit(k);
            tmp[pos[d]] = k;
            pos[d] += 1;
        }
        std::mem::swap(keys, &mut tmp);
    }
}

fn distinct(values: &[f32]) -> Distinct {
    // Mean of the finite values, summed over fixed chunks so any thread count agrees.
    let parts: Vec<(f64, u64)> = values
        .par_chunks(1 << 16)
        .map(|c| {
            c.iter()
                .filter(|v| v.is_finite())
                .fold((0.0, 0), |(s, n), &v| (s + v as f64, n + 1))
        })
        .collect();
    let (sum, count) = parts
        .iter()
        .fold((0.0, 0), |(s, n), &(ps, pn)| (s + ps, n + pn));
    let mu = if count == 0 { 0.0 } else { sum / count as f64 };
    let neg_inf = values.par_iter().any(|&v| v == f32::NEG_INFINITY);
    let pos_inf = values.par_iter().any(|&v| v == f32::INFINITY);
    let mut keys: Vec<u32> = values
        .par_iter()
        .filter(|v| v.is_finite())
        .map(|&v| key(v))
        .collect();
    radix_sort(&mut keys);
    let mut xs: Vec<f32> = Vec::new();
    let mut full = Prefix::with_capacity(0);
    let mut run: Option<(f32, f64)> = None;
    for &k in &keys {
        let v = unkey(k);
        match run {
            Some((last, ref mut c)) if last == v => *c += 1.0,
            _ => {
                if let Some((x, c)) = run {
                    full.push(x, c, mu);
                }
                if xs.is_empty() {
                    // Reserve once the first value is seen (most tensors are mostly distinct).
                    xs.reserve(keys.len());
                    full = Prefix::with_capacity(keys.len());
                }
                xs.push(v);
                run = Some((v, 1.0));
            }
        }
    }
    if let Some((x, c)) = run {
        full.push(x, c, mu);
    }
    xs.shrink_to_fit();
    Distinct {
        xs,
        full,
        mu,
        neg_inf,
        pos_inf,
    }
}

/// Prefix sums of weight, weighted value and weighted square over centred values.
struct Prefix {
    w: Vec<f64>,
    s: Vec<f64>,
    q: Vec<f64>,
}

impl Prefix {
    /// An empty prefix (one zero entry) with room for `n` items.
    fn with_capacity(n: usize) -> Prefix {
        let mut p = Prefix {
            w: Vec::with_capacity(n + 1),
            s: Vec::with_capacity(n + 1),
            q: Vec::with_capacity(n + 1),
        };
        p.w.push(0.0);
        p.s.push(0.0);
        p.q.push(0.0);
        p
    }

    /// Appends the value `x` with multiplicity `c`, centred on `mu`.
    fn push(&mut self, x: f32, c: f64, mu: f64) {
        let y = x as f64 - mu;
        let (w, s, q) = (self.w.last(), self.s.last(), self.q.last());
        let (w, s, q) = (
            w.copied().unwrap_or(0.0),
            s.copied().unwrap_or(0.0),
            q.copied().unwrap_or(0.0),
        );
        self.w.push(w + c);
        self.s.push(s + c * y);
        self.q.push(q + c * y * y);
    }

    /// The prefix at the given item boundaries (`bounds[0] = 0`, ascending).
    fn select(&self, bounds: &[usize]) -> Prefix {
        Prefix {
            w: bounds.iter().map(|&b| self.w[b]).collect(),
            s: bounds.iter().map(|&b| self.s[b]).collect(),
            q: bounds.iter().map(|&b| self.q[b]).collect(),
        }
    }

    /// Items.
    fn len(&self) -> usize {
        self.w.len() - 1
    }

    /// Sum of squared deviations from the mean of items `i..j`.
    #[inline(always)]
    fn cost(&self, i: usize, j: usize) -> f64 {
        let w = self.w[j] - self.w[i];
        if w <= 0.0 {
            return 0.0;
        }
        let s = self.s[j] - self.s[i];
        ((self.q[j] - self.q[i]) - s * s / w).max(0.0)
    }

    /// Weighted mean of items `i..j` (centred coordinates).
    fn mean(&self, i: usize, j: usize) -> f64 {
        let w = self.w[j] - self.w[i];
        if w <= 0.0 {
            0.0
        } else {
            (self.s[j] - self.s[i]) / w
        }
    }
}

/// Largest item count the budget allows for `k` clusters.
fn item_budget(k: usize) -> usize {
    let mut m = 1usize << 10;
    while m < MAX_ITEMS && (k as f64) * (2 * m) as f64 * ((2 * m) as f64).log2() <= DP_BUDGET {
        m *= 2;
    }
    m
}

/// The `k` optimal centres of the items of `full` (centred on `mu`), ascending, as f32.
fn optimal(full: &Prefix, mu: f64, k: usize, budget: usize) -> Vec<f32> {
    let d = full.len();
    let edges = if d <= budget {
        solve(full, k)
    } else {
        // bounds[g] = first distinct index of group g; the last entry is d.
        let bounds = group_bounds(full, budget);
        let cuts = solve(&full.select(&bounds), k);
        refine(full, &bounds, &cuts)
    };
    edges
        .windows(2)
        .map(|e| (full.mean(e[0], e[1]) + mu) as f32)
        .collect()
}

/// Splits the distinct values into about `groups` runs of equal total count.
fn group_bounds(full: &Prefix, groups: usize) -> Vec<usize> {
    let d = full.len();
    let total = full.w[d];
    let mut bounds = vec![0usize];
    for g in 1..groups {
        let target = total * g as f64 / groups as f64;
        let b = full.w.partition_point(|&w| w < target).clamp(1, d);
        if b > *bounds.last().unwrap_or(&0) && b < d {
            bounds.push(b);
        }
    }
    bounds.push(d);
    bounds
}

/// Optimal split of `p`'s items into `k` non-empty contiguous clusters: returns the k+1 cut
/// positions `0 = c0 < c1 < … < ck = m`.
fn solve(p: &Prefix, k: usize) -> Vec<usize> {
    let m = p.len();
    let k = k.clamp(1, m.max(1));
    let mut prev: Vec<f64> = (0..=m)
        .map(|j| if j == 0 { f64::INFINITY } else { p.cost(0, j) })
        .collect();
    let mut args: Vec<Vec<u32>> = Vec::with_capacity(k.saturating_sub(1));
    for l in 2..=k {
        let mut cur = vec![f64::INFINITY; m + 1];
        let mut arg = vec![0u32; m + 1];
        if l == k {
            // Only j = m is needed in the last layer.
            let (v, i) = best(p, &prev, 0, m, l - 1, m - 1);
            cur[m] = v;
            arg[m] = i as u32;
        } else {
            // Layer l needs j ∈ [l, m − (k − l)]; later layers never look further.
            let jhi = m - (k - l);
            let (c, a) = (&mut cur[l..=jhi], &mut arg[l..=jhi]);
            step(p, &prev, 0, c, a, l, l - 1, jhi - 1);
        }
        args.push(arg);
        prev = cur;
    }
    let mut cuts = vec![m];
    let mut j = m;
    for arg in args.iter().rev() {
        j = arg.get(j).copied().unwrap_or(0) as usize;
        cuts.push(j);
    }
    cuts.push(0);
    cuts.reverse();
    cuts.dedup();
    cuts
}

/// min over positions i ∈ [lo, hi] of prev[i − off] + cost(i, j): the value and the lowest
/// arg ((∞, lo) when the range is empty).
#[inline]
fn best(p: &Prefix, prev: &[f64], off: usize, j: usize, lo: usize, hi: usize) -> (f64, usize) {
    let mut bv = f64::INFINITY;
    let mut bi = lo;
    if hi < lo || lo < off {
        return (bv, bi);
    }
    for (k, &pv) in prev.iter().enumerate().take(hi + 1 - off).skip(lo - off) {
        let i = k + off;
        let v = pv + p.cost(i, j);
        if v < bv {
            bv = v;
            bi = i;
        }
    }
    (bv, bi)
}

/// Divide and conquer over positions j ∈ [jlo, jlo + cur.len()) with the argmin in
/// [optlo, opthi]; `prev[i − off]` is the previous layer's value at position i.
#[allow(clippy::too_many_arguments)]
fn step(
    p: &Prefix,
    prev: &[f64],
    off: usize,
    cur: &mut [f64],
    arg: &mut [u32],
    jlo: usize,
    optlo: usize,
    opthi: usize,
) {
    if cur.is_empty() {
        return;
    }
    let mid = cur.len() / 2;
    let j = jlo + mid;
    let (v, bi) = best(p, prev, off, j, optlo, opthi.min(j.saturating_sub(1)));
    cur[mid] = v;
    arg[mid] = bi as u32;
    let (cl, cr) = cur.split_at_mut(mid);
    let (al, ar) = arg.split_at_mut(mid);
    let (cr, ar) = (&mut cr[1..], &mut ar[1..]);
    if cl.len() + cr.len() >= PAR_MIN {
        rayon::join(
            || step(p, prev, off, cl, al, jlo, optlo, bi),
            || step(p, prev, off, cr, ar, j + 1, bi, opthi),
        );
    } else {
        step(p, prev, off, cl, al, jlo, optlo, bi);
        step(p, prev, off, cr, ar, j + 1, bi, opthi);
    }
}

/// Groups on each side of a coarse cut that the windowed refinement searches.
const WINDOW_GROUPS: usize = 2;
/// Rounds of window re-centring at most.
const MAX_ROUNDS: usize = 16;

/// Refines cuts found over groups (`bounds` = group starts in distinct indices, last = d) to
/// the exact optimum over all distinct values with every cut restricted to a window of
/// ±[`WINDOW_GROUPS`] groups around its coarse position; windows are re-centred while a cut
/// lands on a window edge. Returns cuts as distinct indices.
fn refine(full: &Prefix, bounds: &[usize], coarse: &[usize]) -> Vec<usize> {
    let d = full.len();
    let k = coarse.len().saturating_sub(1);
    let mut cuts: Vec<usize> = coarse
        .iter()
        .map(|&c| bounds.get(c).copied().unwrap_or(d))
        .collect();
    let last_group = bounds.len().saturating_sub(1);
    for _ in 0..MAX_ROUNDS {
        let mut ranges: Vec<(usize, usize)> = Vec::with_capacity(k.saturating_sub(1));
        for (j, &cut) in cuts.iter().enumerate().take(k).skip(1) {
            let g = bounds.partition_point(|&b| b < cut);
            let lo = bounds
                .get(g.saturating_sub(WINDOW_GROUPS))
                .copied()
                .unwrap_or(0);
            let hi = bounds
                .get((g + WINDOW_GROUPS).min(last_group))
                .copied()
                .unwrap_or(d);
            let floor = ranges.last().map_or(1, |r: &(usize, usize)| r.0 + 1).max(j);
            let lo = lo.max(floor);
            let hi = hi.min(d - (k - j)).max(lo);
            ranges.push((lo, hi));
        }
        let mut prev = vec![0.0f64];
        let (mut plo, mut phi) = (0usize, 0usize);
        let mut args: Vec<Vec<u32>> = Vec::with_capacity(ranges.len());
        for &(lo, hi) in &ranges {
            let mut cur = vec![f64::INFINITY; hi - lo + 1];
            let mut arg = vec![0u32; hi - lo + 1];
            step(full, &prev, plo, &mut cur, &mut arg, lo, plo, phi);
            args.push(arg);
            prev = cur;
            (plo, phi) = (lo, hi);
        }
        let (v, mut x) = best(full, &prev, plo, d, plo, phi.min(d.saturating_sub(1)));
        if !v.is_finite() {
            break;
        }
        let mut new = vec![d; k + 1];
        new[0] = 0;
        for j in (1..k).rev() {
            new[j] = x;
            let (lo, _) = ranges[j - 1];
            x = args[j - 1].get(x - lo).copied().unwrap_or(0) as usize;
        }
        let at_edge = (1..k).any(|j| {
            let (lo, hi) = ranges[j - 1];
            (new[j] == lo && lo > j) || (new[j] == hi && hi < d - (k - j))
        });
        let moved = new != cuts;
        cuts = new;
        if !at_edge || !moved {
            break;
        }
    }
    cuts
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quant::kernels::{dequantize, quality, testutil::Rng};

    fn mse(values: &[f32], nbits: u8) -> f64 {
        let q = quantize(values, nbits);
        let d = dequantize(&q, &[values.len() as u64], 0).unwrap();
        quality(values, &d).mse
    }

    /// Exhaustive optimum over all splits of the sorted distinct values (small inputs only).
    fn brute(values: &[f32], k: usize) -> f64 {
        let Distinct { full: p, .. } = distinct(values);
        let m = p.len();
        if m <= k {
            return 0.0;
        }
        let mut best = f64::INFINITY;
        // Choose k−1 cut points among 1..m.
        fn rec(p: &Prefix, m: usize, k: usize, start: usize, acc: f64, best: &mut f64) {
            if k == 1 {
                *best = best.min(acc + p.cost(start, m));
                return;
            }
            for c in start + 1..=m - (k - 1) {
                rec(p, m, k - 1, c, acc + p.cost(start, c), best);
            }
        }
        rec(&p, m, k, 0, 0.0, &mut best);
        best / values.len() as f64
    }

    /// scikit-learn-like Lloyd from k-means++-style seeds, as the baseline to beat.
    fn lloyd_baseline(values: &[f32], k: usize, rng: &mut Rng) -> f64 {
        let x: Vec<f64> = values.iter().map(|&v| v as f64).collect();
        let mut c: Vec<f64> = vec![x[rng.below(x.len() as u64) as usize]];
        while c.len() < k {
            let d: Vec<f64> = x
                .iter()
                .map(|&v| {
                    c.iter()
                        .map(|&cc| (v - cc).powi(2))
                        .fold(f64::INFINITY, f64::min)
                })
                .collect();
            let tot: f64 = d.iter().sum();
            let mut r = rng.unit() * tot;
            let mut pick = x.len() - 1;
            for (i, di) in d.iter().enumerate() {
                if r < *di {
                    pick = i;
                    break;
                }
                r -= di;
            }
            c.push(x[pick]);
        }
        let mut lab = vec![0usize; x.len()];
        for _ in 0..300 {
            for (i, &v) in x.iter().enumerate() {
                lab[i] = (0..k)
                    .min_by(|&a, &b| (v - c[a]).abs().total_cmp(&(v - c[b]).abs()))
                    .unwrap_or(0);
            }
            let mut s = vec![0.0; k];
            let mut n = vec![0.0; k];
            for (i, &v) in x.iter().enumerate() {
                s[lab[i]] += v;
                n[lab[i]] += 1.0;
            }
            for j in 0..k {
                if n[j] > 0.0 {
                    c[j] = s[j] / n[j];
                }
            }
        }
        let c32: Vec<f32> = c.iter().map(|&v| v as f32).collect();
        x.iter()
            .map(|&v| {
                c32.iter()
                    .map(|&cc| (v - cc as f64).powi(2))
                    .fold(f64::INFINITY, f64::min)
            })
            .sum::<f64>()
            / x.len() as f64
    }

    #[test]
    fn optimal_on_brute_forceable_cases() {
        let mut rng = Rng::new(21);
        for _ in 0..150 {
            let n = rng.below(14) as usize + 1;
            let b = rng.below(2) as u8 + 1;
            let vals: Vec<f32> = (0..n)
                .map(|_| (rng.below(40) as f32 - 20.0) * 0.37)
                .collect();
            let got = mse(&vals, b);
            let want = brute(&vals, 1 << b);
            assert!(
                got <= want * (1.0 + 1e-6) + 1e-9,
                "{vals:?} b={b}: {got} > {want}"
            );
        }
    }

    #[test]
    fn beats_lloyd_on_random_data() {
        let mut rng = Rng::new(4);
        for round in 0..8 {
            let b = [1u8, 2, 3, 4][round % 4];
            let vals: Vec<f32> = (0..600)
                .map(|_| rng.normal() * (1.0 + round as f32))
                .collect();
            let ours = mse(&vals, b);
            let theirs = lloyd_baseline(&vals, 1 << b, &mut rng);
            assert!(ours <= theirs * (1.0 + 1e-9), "b={b}: {ours} > {theirs}");
        }
    }

    #[test]
    fn few_distinct_values_are_exact() {
        let vals = [1.0f32, 1.0, -2.0, 0.5, -0.0, 0.0, 1.0];
        let q = quantize(&vals, 2);
        let Params::Lut(t) = &q.params else { panic!() };
        assert_eq!(t, &vec![-2.0, 0.0, 0.5, 1.0]);
        assert_eq!(mse(&vals, 2), 0.0);
        let q = quantize(&[3.0], 3);
        let Params::Lut(t) = &q.params else { panic!() };
        assert_eq!(t.len(), 8);
        assert_eq!(t[0], 3.0);
    }

    #[test]
    fn nan_and_inf() {
        let q = quantize(&[f32::NAN, f32::NEG_INFINITY, 5.0], 1);
        let Params::Lut(t) = &q.params else { panic!() };
        assert_eq!(t, &vec![5.0, f32::NEG_INFINITY]);
        assert_eq!(q.data, vec![0b0100_0000]);
        let vals = [f32::NAN, 1.0, 2.0, f32::INFINITY, 3.0];
        let q = quantize(&vals, 2);
        assert_eq!(q.notes.nan_values, 1);
        let idx = crate::quant::kernels::pack::unpack(&q.data, 2, 5).unwrap();
        let Params::Lut(t) = &q.params else { panic!() };
        assert_eq!(idx[0], 0);
        assert_eq!(t[idx[3] as usize], f32::INFINITY);
        assert!(t[..3].iter().all(|v| v.is_finite()));
    }

    #[test]
    fn grouped_path_is_close_to_exact() {
        let mut rng = Rng::new(9);
        let vals: Vec<f32> = (0..20_000).map(|_| rng.normal()).collect();
        let sse = |c: &[f32]| -> f64 {
            let n = crate::quant::kernels::custom_lut::Nearest::new(c);
            vals.iter()
                .map(|&v| (v as f64 - c[n.find(v) as usize] as f64).powi(2))
                .sum()
        };
        for k in [4, 16, 64] {
            let exact = sse(&centres_within(&vals, k, usize::MAX));
            let grouped = sse(&centres_within(&vals, k, 1024));
            assert!(
                grouped <= exact * (1.0 + 1e-9),
                "k={k}: {grouped} vs {exact}"
            );
            assert!(
                exact <= grouped * (1.0 + 1e-9),
                "k={k}: exact {exact} > {grouped}"
            );
        }
    }

    #[test]
    fn radix_sort_sorts() {
        let mut rng = Rng::new(8);
        let mut keys: Vec<u32> = (0..50_000).map(|_| rng.next_u64() as u32).collect();
        let mut want = keys.clone();
        want.sort_unstable();
        radix_sort(&mut keys);
        assert_eq!(keys, want);
        let vals = [-1.5f32, 2.0, -0.0, 0.0, f32::NEG_INFINITY, 1e-30];
        let mut k: Vec<u32> = vals.iter().map(|&v| key(v)).collect();
        k.sort_unstable();
        let back: Vec<f32> = k.iter().map(|&x| unkey(x)).collect();
        assert_eq!(back, vec![f32::NEG_INFINITY, -1.5, -0.0, 0.0, 1e-30, 2.0]);
    }

    #[test]
    fn thread_count_independent() {
        let mut rng = Rng::new(2);
        let vals: Vec<f32> = (0..200_000).map(|_| rng.normal()).collect();
        let a = quantize(&vals, 4);
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap();
        let b = pool.install(|| quantize(&vals, 4));
        assert_eq!(a, b);
    }
}
