//! Deterministic mini-fuzzers that run in `cargo test`: seeded mutations of the fixture
//! models and configs, fed to the model index and the config parser. They use the same
//! mutations and invariants as the cargo-fuzz targets (fuzz/), so a regression that the
//! long fuzzing campaigns would find shows up here first, in a few seconds.

#[allow(dead_code)]
#[path = "../fuzz/src/checks.rs"]
mod checks;
#[allow(dead_code)]
#[path = "../fuzz/src/mutate.rs"]
mod mutate;
#[allow(dead_code)]
#[path = "../fuzz/src/pipeline.rs"]
mod pipeline;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use coremlq::config::syntax;
use mutate::Rng;

/// Mutated models tried per run.
const MODEL_ITERATIONS: usize = 20_000;
/// Mutated configs tried per run.
const CONFIG_ITERATIONS: usize = 20_000;
/// Mutated models pushed through the whole quantize pipeline per run.
const PIPELINE_ITERATIONS: usize = 10_000;
/// No single input may take longer than this (a hang, or work quadratic in a length).
const SLOW: Duration = Duration::from_millis(500);

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn files(dir: &Path, suffix: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out: Vec<(PathBuf, Vec<u8>)> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.to_string_lossy().ends_with(suffix))
                .filter_map(|p| std::fs::read(&p).ok().map(|b| (p, b)))
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

/// The fixture models (all small), the seeds of the model mini-fuzzer.
fn model_seeds() -> Vec<(PathBuf, Vec<u8>)> {
    let mut seeds = files(&root().join("tests/fixtures/models"), ".mlmodel");
    seeds.retain(|(_, b)| b.len() <= 256 * 1024);
    seeds
}

/// Configs: the example plus hand-written ones covering every construct of the language.
fn config_seeds() -> Vec<String> {
    let mut seeds: Vec<String> = files(&root().join("examples"), ".quant.json")
        .into_iter()
        .filter_map(|(_, b)| String::from_utf8(b).ok())
        .collect();
    seeds.extend(
        [
            "",
            "{}",
            r#"{ "model": "a.mlmodel", "nbits": 4, "quantization_mode": "kmeans_lut" }"#,
            r#"// comment
{ /* block */ "nbits": 8, "layers": { "conv*": { "skip": true }, "fc": { "nbits": 16 } }, }"#,
            r#"{ "quantization_mode": "custom_lut", "nbits": 2, "lut": [-1.5, -0.5, 0.5, 1.5] }"#,
            r#"{ "selector": { "skip_layer_types": ["innerProduct"], "minimum_conv_kernel_channels": 4,
                 "minimum_conv_weight_count": 4096 }, "skip_layers": ["fc\u00e9", "x\"y"] }"#,
            "{ \"model\": \"m.mlmodel\", \"nbits\": 8, \"extends\": \"self.quant.json\" }",
            "{ \"a\": [1, 2, {\"b\": null, \"c\": true}], \"d\": -1.5e-3 }",
            "{ \"unterminated: 1, nbits 8 ] } }",
        ]
        .map(String::from),
    );
    seeds
}

#[test]
fn mutated_models_never_break_the_index() {
    let seeds = model_seeds();
    assert!(!seeds.is_empty(), "no fixture models found");
    let donors: Vec<&[u8]> = seeds.iter().map(|(_, b)| b.as_slice()).collect();
    let mut rng = Rng::new(0x5eed_0001);
    let started = Instant::now();
    let (mut ok, mut err) = (0usize, 0usize);
    for i in 0..MODEL_ITERATIONS {
        let (path, seed) = &seeds[rng.below(seeds.len())];
        let mut data = seed.clone();
        mutate::mutate_bytes(&mut rng, &mut data, &donors);
        let t = Instant::now();
        let result = coremlq::model::index::build(Path::new("mutated.mlmodel"), &data);
        let took = t.elapsed();
        assert!(
            took < SLOW,
            "iteration {i} (seed {}, {} bytes) took {took:?}",
            path.display(),
            data.len()
        );
        match result {
            Ok(index) => {
                ok += 1;
                if let Err(e) = checks::index_invariants(&data, &index) {
                    panic!("iteration {i} (from {}): {e}", path.display());
                }
            }
            Err(e) => {
                err += 1;
                let message = e.to_string();
                assert!(
                    message.contains("mutated.mlmodel"),
                    "error does not name the file: {message}"
                );
            }
        }
    }
    eprintln!(
        "index mini-fuzzer: {MODEL_ITERATIONS} inputs ({ok} indexed, {err} refused) in {:?}",
        started.elapsed()
    );
}

#[test]
fn mutated_configs_never_break_the_parser() {
    let seeds = config_seeds();
    let donors: Vec<&str> = seeds.iter().map(String::as_str).collect();
    let mut rng = Rng::new(0x5eed_0002);
    let started = Instant::now();
    for i in 0..CONFIG_ITERATIONS {
        let mut text = seeds[rng.below(seeds.len())].clone();
        mutate::mutate_text(&mut rng, &mut text, &donors);
        let t = Instant::now();
        let parse = syntax::parse(&text);
        if let Err(e) = checks::syntax_invariants(&text, &parse) {
            panic!("iteration {i}: {e}\ntext: {text:?}");
        }
        // Completion and hover ask about arbitrary offsets, including past the end.
        for _ in 0..8 {
            let offset = rng.below(text.len() + 2);
            let _ = parse.locate(&text, offset);
        }
        let took = t.elapsed();
        assert!(took < SLOW, "iteration {i} took {took:?}: {text:?}");
    }
    eprintln!(
        "config mini-fuzzer: {CONFIG_ITERATIONS} inputs in {:?}",
        started.elapsed()
    );
}

#[test]
fn every_offset_of_every_seed_config_can_be_located() {
    for text in config_seeds() {
        let parse = syntax::parse(&text);
        for offset in 0..=text.len() + 1 {
            let _ = parse.locate(&text, offset);
        }
    }
}

#[test]
fn mutated_models_never_break_the_quantize_pipeline() {
    let seeds = model_seeds();
    let donors: Vec<&[u8]> = seeds.iter().map(|(_, b)| b.as_slice()).collect();
    let mut rng = Rng::new(0x5eed_0003);
    let started = Instant::now();
    let mut stages = std::collections::BTreeMap::new();
    for i in 0..PIPELINE_ITERATIONS {
        let (path, seed) = &seeds[rng.below(seeds.len())];
        let mut data = seed.clone();
        // One in four runs on the unmutated fixture: every mode on every real model.
        if !rng.one_in(4) {
            mutate::mutate_bytes(&mut rng, &mut data, &donors);
        }
        let choice = rng.next_u64() as u8;
        let t = Instant::now();
        match pipeline::run(&data, choice) {
            Ok(stage) => *stages.entry(stage).or_insert(0usize) += 1,
            Err(e) => panic!(
                "iteration {i} (from {}, settings {:?}): {e}",
                path.display(),
                pipeline::settings(choice)
            ),
        }
        let took = t.elapsed();
        assert!(
            took < SLOW * 4,
            "iteration {i} (from {}) took {took:?}",
            path.display()
        );
    }
    eprintln!(
        "pipeline mini-fuzzer: {PIPELINE_ITERATIONS} inputs in {:?}, stopped at: {stages:?}",
        started.elapsed()
    );
    let written = stages.get(&pipeline::Stage::Written).copied().unwrap_or(0);
    assert!(
        written * 10 >= PIPELINE_ITERATIONS,
        "only {written} inputs were written: {stages:?}"
    );
}
