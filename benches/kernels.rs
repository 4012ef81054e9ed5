//! Throughput of the quantization kernels on large in-memory tensors, compared with the time
//! coremltools 9.0 needs for the same work.
//!
//! Run: `cargo bench --bench kernels` (150 M weights, 600 MB of float32, plus k-means on
//! 25 M weights). `COREMLQ_BENCH_SCALE=0.1` shrinks every tensor for a quick run;
//! `COREMLQ_BENCH_PART=tensor` or `=kmeans` runs one half.

use std::hint::black_box;
use std::time::Instant;

use coremlq::quant::kernels::{self, pack, Dialect, Quantized};
use coremlq::quant::Target;

/// Deterministic pseudo-normal weights (xorshift, sum of two uniforms), filled in parallel.
fn weights(n: usize, seed: u64) -> Vec<f32> {
    use rayon::prelude::*;
    let mut v = vec![0f32; n];
    v.par_chunks_mut(1 << 20).enumerate().for_each(|(i, c)| {
        let mut s = seed ^ (i as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        for x in c.iter_mut() {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            let a = (s >> 40) as f32 / (1u64 << 24) as f32;
            let b = ((s >> 16) & 0xff_ffff) as f32 / (1u64 << 24) as f32;
            *x = (a + b - 1.0) * 0.05;
        }
    });
    v
}

fn time<T>(label: &str, n: usize, reference: Option<(f64, usize)>, f: impl FnOnce() -> T) -> T {
    let t = Instant::now();
    let out = black_box(f());
    let s = t.elapsed().as_secs_f64();
    let rate = n as f64 / s / 1e6;
    match reference {
        Some((ref_s, ref_n)) => {
            // Scale coremltools' time linearly to this tensor size.
            let ref_here = ref_s * n as f64 / ref_n as f64;
            println!(
                "{label:<34} {s:>8.3} s  {rate:>9.1} M weights/s   coremltools {ref_here:>8.1} s  ({:.0}x)",
                ref_here / s
            );
        }
        None => println!("{label:<34} {s:>8.3} s  {rate:>9.1} M weights/s"),
    }
    out
}

fn main() {
    let scale: f64 = std::env::var("COREMLQ_BENCH_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1.0);
    let big = ((150_000_000.0 * scale) as usize / 4096).max(1) * 4096;
    let km = ((25_000_000.0 * scale) as usize).max(4096);
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "threads: {}, load average: {}",
        rayon::current_num_threads(),
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    );
    println!("tensor: {big} weights as [4096, {}] (axis 0)\n", big / 4096);
    let part = std::env::var("COREMLQ_BENCH_PART").unwrap_or_default();
    if part != "kmeans" {
        big_tensor(big);
    }
    if part != "tensor" {
        kmeans(km);
    }
}

fn big_tensor(big: usize) {
    let w = weights(big, 1);
    // Baseline: writing a fresh float32 output of this size (first touch of new memory).
    time("baseline: fill fresh f32 output", big, None, || {
        use rayon::prelude::*;
        let mut v = vec![0f32; big];
        v.par_chunks_mut(1 << 16).for_each(|c| c.fill(1.0));
        v
    });
    let shape = [4096u64, (big / 4096) as u64];
    // coremltools 9.0, end to end, on 600 MB / 150 M weights.
    const N: usize = 150_000_000;
    let q = |t: &Target, d: Dialect| -> Quantized {
        kernels::quantize(&w, &shape, 0, t, d).expect("quantize")
    };
    time("fp16", big, Some((11.8, N)), || {
        q(&Target::Fp16, Dialect::F32)
    });
    let q8 = time("linear 8-bit (F32)", big, Some((6.8, N)), || {
        q(&Target::Linear(8), Dialect::F32)
    });
    let q4 = time("linear 4-bit (F32)", big, Some((540.0, N)), || {
        q(&Target::Linear(4), Dialect::F32)
    });
    time("linear 4-bit (F64)", big, None, || {
        q(&Target::Linear(4), Dialect::F64)
    });
    time("linear_symmetric 8-bit", big, None, || {
        q(&Target::LinearSymmetric, Dialect::F32)
    });
    time("linear_lut 4-bit", big, None, || {
        q(&Target::LinearLut(4), Dialect::F32)
    });
    let table: std::sync::Arc<[f32]> = (0..16).map(|i| (i as f32 - 7.5) * 0.01).collect();
    time("custom_lut 4-bit (nearest)", big, None, || {
        q(&Target::CustomLut(4, table), Dialect::F32)
    });
    let idx = time("unpack 4-bit", big, None, || {
        pack::unpack(&q4.data, 4, big).expect("unpack")
    });
    time("pack 4-bit", big, None, || pack::pack(&idx, 4));
    let d = time("dequantize linear 8-bit", big, None, || {
        kernels::dequantize(&q8, &shape, 0).expect("dequantize")
    });
    time("quality", big, None, || kernels::quality(&w, &d));
}

fn kmeans(km: usize) {
    println!("\nk-means on {km} weights (coremltools: scikit-learn KMeans)");
    let w = weights(km, 2);
    const K: usize = 25_000_000;
    for (b, ref_s) in [(4u8, 451.0), (8, 635.0)] {
        let label = format!("kmeans_lut {b}-bit");
        let q = time(&label, km, Some((ref_s, K)), || {
            kernels::quantize(&w, &[km as u64], 0, &Target::KmeansLut(b), Dialect::F32)
                .expect("kmeans")
        });
        let d = kernels::dequantize(&q, &[km as u64], 0).expect("dequantize");
        let lin = kernels::quantize(&w, &[km as u64], 0, &Target::LinearLut(b), Dialect::F32)
            .expect("linear_lut");
        let dl = kernels::dequantize(&lin, &[km as u64], 0).expect("dequantize");
        println!(
            "{:<34} SNR {:.2} dB (linear_lut {:.2} dB)",
            "",
            kernels::quality(&w, &d).snr_db,
            kernels::quality(&w, &dl).snr_db
        );
    }
}
