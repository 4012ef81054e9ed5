//! Reconstruction quality of a quantized tensor: SNR, relative RMS error, maximum error.

use rayon::prelude::*;

/// Values per parallel work item (fixed, so sums do not depend on the thread count).
const CHUNK: usize = 1 << 16;

/// How close the dequantized weights are to the originals.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Quality {
    /// Signal-to-noise ratio in dB: 10·log10(Σw² / Σ(w − w')²); infinite when exact.
    pub snr_db: f64,
    /// Root-mean-square error relative to the root-mean-square weight.
    pub rel_rms: f64,
    /// Largest absolute error.
    pub max_abs: f64,
    /// Mean squared error.
    pub mse: f64,
    /// Pairs compared (pairs with a NaN original are left out).
    pub count: u64,
}

/// Compares `original` with `dequantized` position by position (the shorter length counts).
pub fn quality(original: &[f32], dequantized: &[f32]) -> Quality {
    let n = original.len().min(dequantized.len());
    let parts: Vec<(f64, f64, f64, u64)> = original[..n]
        .par_chunks(CHUNK)
        .zip(dequantized[..n].par_chunks(CHUNK))
        .map(|(a, b)| {
            let (mut sig, mut err, mut max, mut cnt) = (0.0f64, 0.0f64, 0.0f64, 0u64);
            for (&w, &d) in a.iter().zip(b) {
                if w.is_nan() {
                    continue;
                }
                let e = (w as f64 - d as f64).abs();
                sig += w as f64 * w as f64;
                err += e * e;
                max = if e > max || e.is_nan() { e } else { max };
                cnt += 1;
            }
            (sig, err, max, cnt)
        })
        .collect();
    let (mut sig, mut err, mut max, mut cnt) = (0.0, 0.0, 0.0f64, 0u64);
    for (s, e, m, c) in parts {
        sig += s;
        err += e;
        max = if m > max || m.is_nan() { m } else { max };
        cnt += c;
    }
    let snr_db = if err == 0.0 {
        f64::INFINITY
    } else {
        10.0 * (sig / err).log10()
    };
    let rel_rms = if sig == 0.0 {
        if err == 0.0 {
            0.0
        } else {
            f64::INFINITY
        }
    } else {
        (err / sig).sqrt()
    };
    let mse = if cnt == 0 { 0.0 } else { err / cnt as f64 };
    Quality {
        snr_db,
        rel_rms,
        max_abs: max,
        mse,
        count: cnt,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simple_figures() {
        let q = quality(&[1.0, -1.0, 2.0, 0.0], &[1.0, -1.0, 2.0, 1.0]);
        assert_eq!(q.max_abs, 1.0);
        assert_eq!(q.mse, 0.25);
        assert!((q.snr_db - 10.0 * 6f64.log10()).abs() < 1e-12);
        assert!((q.rel_rms - (1.0f64 / 6.0).sqrt()).abs() < 1e-12);
        let exact = quality(&[1.0, 2.0], &[1.0, 2.0]);
        assert_eq!(exact.snr_db, f64::INFINITY);
        assert_eq!(exact.rel_rms, 0.0);
    }
}
