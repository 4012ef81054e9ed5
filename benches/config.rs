//! Config analysis benchmark: parse + analyse (schema checks, layer-name checks, settings,
//! the engine's plan) of a realistic config against an indexed 2,000-layer model.
//!
//! Run: `cargo bench --bench config`. `COREMLQ_BENCH_RUNS` (default 200) sets the number
//! of timed runs; the median and minimum are printed.

#[path = "common/mod.rs"]
mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use coremlq::config::analysis::{analyze, Context, ModelStatus, OutputStatus};
use coremlq::config::syntax::parse;
use coremlq::model::ModelFile;

const CONFIG: &str = r#"{
  // A realistic config: selector, name globs, mixed precision.
  "$schema": "../schemas/quant.schema.json",
  "model": "model.mlmodel",
  "output": "model.4bit.mlmodel",
  "nbits": 4,
  "quantization_mode": "linear_lut",
  "selector": {
    "skip_layer_types": ["bias", "batchnorm"],
    "minimum_conv_kernel_channels": 4,
    "minimum_conv_weight_count": 4096,
    "skip_layers": ["layer0", "layer1999", "layer1?", "layer5*"],
  },
  "layers": {
    "layer42": { "nbits": 8, "quantization_mode": "linear" },
    "layer1*": { "nbits": 6 },
    "layer2??": { "nbits": 16 },
    "layer3*": { "skip": true },
  },
}"#;

fn main() {
    let runs: usize = std::env::var("COREMLQ_BENCH_RUNS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(200);
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("temp dir: {e}"));
    let path = dir.path().join("model.mlmodel");
    let layers = vec![
        common::Layer::InnerProduct {
            input: 16,
            output: 16
        };
        2000
    ];
    common::write_model(&path, &layers, 7).unwrap_or_else(|e| panic!("write model: {e}"));
    let file = ModelFile::open(&path).unwrap_or_else(|e| panic!("open model: {e}"));
    assert_eq!(file.index.layers.len(), 2000);
    let output = OutputStatus::Absent;
    let ctx = Context {
        config_dir: Some(dir.path()),
        workspace: Some(dir.path()),
        model: ModelStatus::Loaded(&file.index),
        output: &output,
        skip_plan: false,
    };
    let once = || {
        let p = parse(CONFIG);
        analyze(&p, &ctx)
    };
    let a = once();
    assert!(!a.has_errors(), "{:?}", a.diagnostics);
    assert!(a.plan.is_some());
    for _ in 0..10 {
        std::hint::black_box(once());
    }
    let mut times: Vec<Duration> = (0..runs)
        .map(|_| {
            let t = Instant::now();
            std::hint::black_box(once());
            t.elapsed()
        })
        .collect();
    times.sort();
    let median = times[times.len() / 2];
    let min = times[0];
    let p = parse(CONFIG);
    let t = Instant::now();
    for _ in 0..runs {
        std::hint::black_box(parse(std::hint::black_box(CONFIG)));
    }
    let parse_only = t.elapsed() / runs as u32;
    println!("config analysis, 2,000-layer model ({} runs)", runs);
    println!(
        "  parse only           {:>9.1} µs",
        parse_only.as_secs_f64() * 1e6
    );
    println!(
        "  parse + analysis     {:>9.1} µs median, {:.1} µs min",
        median.as_secs_f64() * 1e6,
        min.as_secs_f64() * 1e6
    );
    println!("  diagnostics          {}", a.diagnostics.len());
    if let Some(settings) = &a.settings {
        let t = Instant::now();
        for _ in 0..runs {
            std::hint::black_box(coremlq::quant::plan::build(&file.index, settings).ok());
        }
        let plan_only = t.elapsed() / runs as u32;
        println!(
            "  of which plan::build {:>9.1} µs (the engine's plan, mean)",
            plan_only.as_secs_f64() * 1e6
        );
    }
    let fast = Context {
        skip_plan: true,
        ..ctx
    };
    let mut fast_times: Vec<Duration> = (0..runs)
        .map(|_| {
            let t = Instant::now();
            std::hint::black_box(analyze(&parse(CONFIG), &fast));
            t.elapsed()
        })
        .collect();
    fast_times.sort();
    println!(
        "  parse + analysis, no plan (skip_plan) {:>9.1} µs median, {:.1} µs min",
        fast_times[fast_times.len() / 2].as_secs_f64() * 1e6,
        fast_times[0].as_secs_f64() * 1e6
    );
    let no_model = Context {
        model: ModelStatus::NotGiven,
        ..ctx
    };
    let t = Instant::now();
    for _ in 0..runs {
        std::hint::black_box(analyze(&parse(CONFIG), &no_model));
    }
    let without = t.elapsed() / runs as u32;
    println!(
        "  parse + analysis without a model {:>9.1} µs (mean)",
        without.as_secs_f64() * 1e6
    );
    let _ = (p, Path::new("."));
}
