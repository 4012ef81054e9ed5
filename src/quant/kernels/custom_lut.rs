//! `custom_lut` with a given table: every weight takes the index of the nearest table entry
//! (ties → lowest index; NaN weights → index 0). The table is written as given.

use rayon::prelude::*;

use super::{pack, KernelError, Notes, Params, Quantized};

/// Relative distance to a midpoint below which the exact (slow) tie rule is applied.
const TIE_MARGIN: f64 = 1.0 / (1u64 << 46) as f64;

/// A table prepared for nearest-entry search with numpy's semantics: the index is
/// `argmin_i |f64(w) − f64(table[i])|` (distances rounded to f64; ties → lowest index), so a NaN
/// weight gets index 0 and a NaN table entry captures every weight (numpy's argmin returns the
/// first NaN).
#[derive(Debug, Clone)]
pub(crate) struct Nearest {
    /// Distinct non-NaN values ascending (−0.0 and +0.0 merged).
    values: Vec<f64>,
    /// For each value, the lowest table index holding it.
    index: Vec<u8>,
    /// `mids[j]` = midpoint of values j and j + 1: a fast first guess of the nearest.
    mids: Vec<f64>,
    /// A uniform grid over `[mids[0], mids[last]]` giving a starting point for that guess.
    grid_lo: f64,
    grid_inv: f64,
    /// Number of midpoints below each grid cell's lower edge (as computed; only a guess).
    grid: Vec<u16>,
    /// The upper end of the grid (`mids[last]`).
    grid_hi: f64,
    /// Per cell, the answer for every x in the cell when it is certain (no midpoint in or near
    /// the cell, tie margins clear), else −1.
    cell_answer: Vec<i16>,
    /// The index of the first NaN entry, if any.
    nan_index: Option<u8>,
    /// The lowest index of any entry.
    min_index: u8,
}

impl Nearest {
    /// Prepares `table` (at most 256 entries are searched).
    pub(crate) fn new(table: &[f32]) -> Nearest {
        let table = &table[..table.len().min(256)];
        let nan_index = table.iter().position(|v| v.is_nan()).map(|i| i as u8);
        let mut entries: Vec<(f32, u8)> = table
            .iter()
            .enumerate()
            .filter(|(_, v)| !v.is_nan())
            .map(|(i, &v)| (v, i as u8))
            .collect();
        entries.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        let mut values: Vec<f64> = Vec::with_capacity(entries.len());
        let mut index: Vec<u8> = Vec::with_capacity(entries.len());
        for (v, i) in entries {
            let v = v as f64;
            match (values.last(), index.last_mut()) {
                (Some(&last), Some(li)) if last == v => *li = (*li).min(i),
                _ => {
                    values.push(v);
                    index.push(i);
                }
            }
        }
        let mids = values
            .windows(2)
            .map(|p| {
                let (a, b) = (p[0], p[1]);
                if b == f64::INFINITY {
                    f64::MAX
                } else if a == f64::NEG_INFINITY {
                    f64::MIN
                } else {
                    a / 2.0 + b / 2.0
                }
            })
            .collect::<Vec<f64>>();
        let cells = (mids.len() * 16).clamp(1, 4096);
        let (lo, hi) = (
            mids.first().copied().unwrap_or(0.0),
            mids.last().copied().unwrap_or(0.0),
        );
        let width = (hi - lo) / cells as f64;
        let grid_inv = if width > 0.0 && width.is_finite() {
            1.0 / width
        } else {
            0.0
        };
        let grid = (0..cells)
            .map(|c| {
                let edge = lo + c as f64 * width;
                mids.partition_point(|&m| m < edge) as u16
            })
            .collect();
        let min_index = index.iter().copied().min().unwrap_or(0);
        let slack = width * 0.01;
        let cell_answer = (0..cells)
            .map(|c| {
                if mids.is_empty() || grid_inv == 0.0 {
                    return -1;
                }
                let a = lo + c as f64 * width - slack;
                let b = lo + (c + 1) as f64 * width + slack;
                let p = mids.partition_point(|&m| m < a);
                if p != mids.partition_point(|&m| m <= b) {
                    return -1; // a midpoint lies in the (widened) cell
                }
                let xmax = a.abs().max(b.abs());
                let ok = |j: usize| {
                    let tol = (xmax + values[j].abs() + values[j + 1].abs()) * TIE_MARGIN;
                    let dist = if mids[j] < a {
                        a - mids[j]
                    } else {
                        mids[j] - b
                    };
                    dist.min((values[j + 1] - values[j]) / 2.0) > tol
                };
                if (p == 0 || ok(p - 1)) && (p == mids.len() || ok(p)) {
                    i16::from(index[p])
                } else {
                    -1
                }
            })
            .collect();
        Nearest {
            values,
            index,
            mids,
            grid_lo: lo,
            grid_inv,
            grid,
            grid_hi: hi,
            cell_answer,
            nan_index,
            min_index,
        }
    }

    /// The index of the entry nearest to `w`.
    #[inline]
    pub(crate) fn find(&self, w: f32) -> u8 {
        if let Some(i) = self.nan_index {
            return i;
        }
        if w.is_nan() || self.values.is_empty() {
            return 0;
        }
        let x = w as f64;
        if x.is_infinite() {
            // |inf − inf| is NaN (numpy's argmin picks it); every other distance is inf.
            return match self.values.iter().position(|&v| v == x) {
                Some(p) => self.index[p],
                None => self.min_index,
            };
        }
        let (vals, mids) = (&self.values[..], &self.mids[..]);
        // Midpoint guess: p = number of midpoints below x.
        let cell = (((x - self.grid_lo) * self.grid_inv) as usize).min(self.grid.len() - 1);
        if x >= self.grid_lo && x <= self.grid_hi {
            if let Some(&a) = self.cell_answer.get(cell).filter(|&&a| a >= 0) {
                return a as u8;
            }
        }
        let mut p = self.grid.get(cell).copied().unwrap_or(0) as usize;
        while p < mids.len() && mids[p] < x {
            p += 1;
        }
        while p > 0 && mids[p - 1] >= x {
            p -= 1;
        }
        // Fast path: the distance to the guessed entry is clearly below both neighbours'
        // (by far more than f64 rounding), so no tie or rounding can change the answer.
        let clear = |j: usize| {
            let tol = (x.abs() + vals[j].abs() + vals[j + 1].abs()) * TIE_MARGIN;
            // The distances to entries j and j + 1 differ by min(2·|x − mid|, gap).
            (x - mids[j]).abs().min((vals[j + 1] - vals[j]) / 2.0) > tol
        };
        if (p == 0 || clear(p - 1)) && (p == mids.len() || clear(p)) {
            return self.index[p];
        }
        // Exact rule on rounded distances around the guess; equal distances form one run.
        let d = |i: usize| (x - vals[i]).abs();
        let (lo, hi) = (p.saturating_sub(1), (p + 1).min(vals.len() - 1));
        let dmin = (lo..=hi).map(d).fold(f64::INFINITY, f64::min);
        let (mut a, mut b) = (lo, hi);
        while d(a) != dmin {
            a += 1;
        }
        while d(b) != dmin {
            b -= 1;
        }
        while a > 0 && d(a - 1) == dmin {
            a -= 1;
        }
        while b + 1 < vals.len() && d(b + 1) == dmin {
            b += 1;
        }
        self.index[a..=b].iter().copied().min().unwrap_or(0)
    }
}

/// Indices of the nearest entries of `table`, packed with `nbits` bits.
pub(crate) fn pack_nearest(values: &[f32], nbits: u8, table: &[f32]) -> Vec<u8> {
    let nearest = Nearest::new(&table[..table.len().min(1 << nbits)]);
    if let Some(i) = nearest.nan_index {
        // numpy's argmin returns the first NaN distance: every weight gets that index.
        return pack::pack_with(values.len(), nbits, |_, buf| buf.fill(i));
    }
    pack::pack_with(values.len(), nbits, |start, buf| {
        for (d, &w) in buf.iter_mut().zip(&values[start..]) {
            *d = nearest.find(w);
        }
    })
}

/// `custom_lut` quantization with `nbits` bits and `table` (1 to 2^nbits entries).
pub fn quantize(values: &[f32], nbits: u8, table: &[f32]) -> Result<Quantized, KernelError> {
    let nbits = nbits.clamp(1, 8);
    let max = 1usize << nbits;
    if table.is_empty() || table.len() > max {
        return Err(KernelError::CustomLutLength {
            len: table.len(),
            nbits,
            max,
        });
    }
    let data = pack_nearest(values, nbits, table);
    let nan_values = values.par_iter().filter(|v| v.is_nan()).count() as u64;
    Ok(Quantized {
        nbits,
        data,
        params: Params::Lut(table.to_vec()),
        notes: Notes {
            nan_values,
            threshold_channels: 0,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quant::kernels::testutil::hex;

    #[test]
    fn spec_example() {
        let q = quantize(&[-0.3, 0.2, 0.7], 1, &[-1.0, 1.0]).unwrap();
        assert_eq!(hex(&q.data), "60");
    }

    #[test]
    fn ties_pick_lowest_index_and_nan_is_zero() {
        let n = Nearest::new(&[3.0, 1.0, 2.0, 1.0]);
        assert_eq!(n.find(1.5), 1); // 1.0 (index 1) vs 2.0 (index 2): tie → 1
        assert_eq!(n.find(2.5), 0); // 2.0 (index 2) vs 3.0 (index 0): tie → 0
        assert_eq!(n.find(f32::NAN), 0);
        assert_eq!(n.find(-5.0), 1);
        assert_eq!(n.find(9.0), 0);
        let n = Nearest::new(&[0.0, f32::NAN, 1.0]);
        assert_eq!(n.find(1.0), 1);
        // Distances that round to the same f64 tie: the lowest index wins.
        let n = Nearest::new(&[-1.0, 1.0]);
        assert_eq!(n.find(1e-45), 0);
        assert_eq!(n.find(f32::INFINITY), 0);
        let n = Nearest::new(&[-1.0, f32::INFINITY, 1.0]);
        assert_eq!(n.find(f32::INFINITY), 1);
        let n = Nearest::new(&[1.0, -1.0, 1e30]);
        assert_eq!(n.find(-1e30), 0); // 1e30 ± 1 round to the same f64: tie
    }

    #[test]
    fn nearest_matches_brute_force() {
        use crate::quant::kernels::testutil::Rng;
        let mut rng = Rng::new(99);
        for round in 0..400 {
            let len = rng.below(40) as usize + 1;
            let table: Vec<f32> = (0..len)
                .map(|_| match round % 4 {
                    0 => rng.below(9) as f32 * 0.5 - 2.0,
                    1 => rng.normal(),
                    2 => rng.normal() * 1e3 * (rng.below(2) as f32),
                    _ => rng.normal() * 1e20,
                })
                .collect();
            let n = Nearest::new(&table);
            for _ in 0..200 {
                let w = match rng.below(6) {
                    0 => rng.below(20) as f32 * 0.25 - 2.5,
                    1 => rng.normal() * 3.0,
                    2 => rng.normal() * 1e25,
                    3 => {
                        f32::from_bits(rng.below(40) as u32)
                            * if rng.below(2) == 0 { 1.0 } else { -1.0 }
                    }
                    4 => {
                        // Exactly between two entries.
                        let (a, b) = (
                            table[rng.below(len as u64) as usize],
                            table[rng.below(len as u64) as usize],
                        );
                        ((a as f64 + b as f64) / 2.0) as f32
                    }
                    _ => table[rng.below(len as u64) as usize],
                };
                let mut want = 0usize;
                for (i, &t) in table.iter().enumerate() {
                    let (d, dw) = (
                        (w as f64 - t as f64).abs(),
                        (w as f64 - table[want] as f64).abs(),
                    );
                    if d < dw {
                        want = i;
                    }
                }
                assert_eq!(n.find(w) as usize, want, "{table:?} {w}");
            }
        }
    }

    #[test]
    fn table_length_checked() {
        assert!(quantize(&[1.0], 1, &[]).is_err());
        assert!(quantize(&[1.0], 1, &[0.0, 1.0, 2.0]).is_err());
    }
}
