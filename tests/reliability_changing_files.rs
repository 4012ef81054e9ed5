//! A model that changes or vanishes while it is being indexed or quantized: a clear error or
//! a consistent result, never a crash. Editors, exporters and `cp` rewrite files in place;
//! a reader that maps the file must survive the file shrinking underneath it.
//!
//! Cases that could kill the process (a fault on a mapped page) run in a child process: the
//! test binary runs itself with `COREMLQ_RELIABILITY_CHILD` naming the case, and the parent
//! checks how the child ended.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use coremlq::model::ModelFile;
use coremlq::quant::{self, Choice, Mode, RunOptions, Selector, Settings};

const CHILD: &str = "COREMLQ_RELIABILITY_CHILD";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn settings() -> Settings {
    Settings {
        default: Choice {
            nbits: 8,
            mode: Mode::Linear,
            lut: None,
        },
        selector: Selector::Default,
        skip_layers: Vec::new(),
        overrides: Vec::new(),
        fuse_layers: true,
    }
}

/// Runs `case` in a child process; returns its exit description and its output.
fn in_child(case: &str, test: &str, dir: &Path) -> (std::process::ExitStatus, String) {
    let out = Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "--exact",
            test,
            "--include-ignored",
            "--test-threads=1",
            "--nocapture",
        ])
        .env(CHILD, case)
        .env("COREMLQ_RELIABILITY_DIR", dir)
        .output()
        .expect("run the child");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status, text)
}

fn child_case() -> Option<(String, PathBuf)> {
    let case = std::env::var(CHILD).ok()?;
    let dir = std::env::var_os("COREMLQ_RELIABILITY_DIR").map(PathBuf::from)?;
    Some((case, dir))
}

/// Asserts that a child run ended normally and printed `marker`.
#[cfg(unix)]
fn assert_child_lived(status: std::process::ExitStatus, output: &str, marker: &str) {
    assert!(
        status.success(),
        "the process died: {}\n{output}",
        describe(status)
    );
    assert!(output.contains(marker), "{output}");
}

#[cfg(unix)]
fn describe(status: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match status.signal() {
        Some(7) => "killed by SIGBUS (a mapped page vanished)".into(),
        Some(11) => "killed by SIGSEGV".into(),
        Some(s) => format!("killed by signal {s}"),
        None => format!("exit code {:?}", status.code()),
    }
}

/// The model shrinks to nothing after it was opened, then is quantized (`cp` and most
/// editors rewrite a file in place: truncate, then write).
#[cfg(unix)]
#[test]
// Models up to 16 MiB are read into memory; larger, mapped ones are covered by
// `a_mapped_model_truncated_while_open_is_an_error_not_a_crash`.
fn a_model_truncated_after_opening_is_an_error_not_a_crash() {
    if let Some((case, dir)) = child_case() {
        if case == "truncate" {
            let input = dir.join("model.mlmodel");
            let file = ModelFile::open(&input).expect("open");
            std::fs::OpenOptions::new()
                .write(true)
                .open(&input)
                .and_then(|f| f.set_len(0))
                .expect("truncate");
            let plan = quant::plan::build(&file.index, &settings()).expect("plan");
            let result = quant::quantize(
                &file,
                &plan,
                &dir.join("out.mlmodel"),
                &RunOptions::default(),
            );
            println!(
                "CHILD RESULT: {:?}",
                result.map(|r| r.bytes_after).map_err(|e| e.to_string())
            );
        }
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::copy(
        root().join("examples/MobileNetMini.mlmodel"),
        dir.path().join("model.mlmodel"),
    )
    .expect("copy");
    let (status, output) = in_child(
        "truncate",
        "a_model_truncated_after_opening_is_an_error_not_a_crash",
        dir.path(),
    );
    assert_child_lived(status, &output, "CHILD RESULT");
    assert!(
        !dir.path().join("out.mlmodel").exists() || output.contains("CHILD RESULT: Ok"),
        "{output}"
    );
}

/// The model is deleted, or replaced by a rename, after it was opened: the open file stays
/// readable, so the run either succeeds on the bytes it opened or fails cleanly.
#[test]
fn a_model_that_vanishes_or_is_replaced_after_opening() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("model.mlmodel");
    for how in ["delete", "rename over"] {
        std::fs::copy(root().join("tests/fixtures/models/conv.mlmodel"), &input).expect("copy");
        let file = ModelFile::open(&input).expect("open");
        match how {
            "delete" => std::fs::remove_file(&input).expect("delete"),
            _ => {
                let other = dir.path().join("other.mlmodel");
                std::fs::copy(
                    root().join("tests/fixtures/models/inner_product.mlmodel"),
                    &other,
                )
                .expect("copy");
                std::fs::rename(&other, &input).expect("rename");
            }
        }
        let plan = quant::plan::build(&file.index, &settings()).expect("plan");
        let output = dir.path().join("out.mlmodel");
        let result = quant::quantize(&file, &plan, &output, &RunOptions::default());
        if let Err(e) = &result {
            assert!(!e.to_string().is_empty());
            assert!(!output.exists(), "{how}: failed but left an output");
        }
        let _ = std::fs::remove_file(&output);
    }
}

/// One thread rewrites the model in place (truncate + write, alternating two models) while
/// another opens, indexes and reads every weight of it, for a second.
#[cfg(unix)]
#[test]
// Models up to 16 MiB are read into memory; larger, mapped ones are covered by
// `a_mapped_model_rewritten_while_being_indexed`.
fn a_model_rewritten_while_being_indexed() {
    if let Some((case, dir)) = child_case() {
        if case == "rewrite" {
            let path = dir.join("model.mlmodel");
            let a = std::fs::read(root().join("examples/MobileNetMini.mlmodel")).expect("read");
            let b = std::fs::read(root().join("tests/fixtures/models/conv.mlmodel")).expect("read");
            std::fs::write(&path, &a).expect("write");
            let stop = Arc::new(AtomicBool::new(false));
            let writer = {
                let (stop, path) = (stop.clone(), path.clone());
                std::thread::spawn(move || {
                    let mut n = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        let _ = std::fs::write(&path, if n % 2 == 0 { &b } else { &a });
                        n += 1;
                    }
                    n
                })
            };
            let started = Instant::now();
            let (mut opened, mut refused, mut sum) = (0u64, 0u64, 0u64);
            while started.elapsed() < Duration::from_secs(1) {
                match ModelFile::open(&path) {
                    Ok(file) => {
                        opened += 1;
                        for w in &file.index.weights {
                            if let Some(bytes) = file.bytes().get(w.body.clone()) {
                                sum = sum
                                    .wrapping_add(bytes.iter().map(|&x| u64::from(x)).sum::<u64>());
                            }
                        }
                    }
                    Err(_) => refused += 1,
                }
            }
            stop.store(true, Ordering::Relaxed);
            let writes = writer.join().unwrap_or(0);
            println!("CHILD RESULT: {opened} opened, {refused} refused, {writes} rewrites, checksum {sum}");
        }
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let (status, output) = in_child(
        "rewrite",
        "a_model_rewritten_while_being_indexed",
        dir.path(),
    );
    assert_child_lived(status, &output, "CHILD RESULT");
}

/// A model larger than the 16 MiB below which files are read into memory, so it is mapped:
/// one innerProduct layer of 2048×2048 float32 weights (4 M of them, small enough for the
/// quality figures) and a bias, 16.8 MB in all.
fn big_model() -> Vec<u8> {
    use coremlq::model::proto::{
        self, model, neural_network_layer, InnerProductLayerParams, NeuralNetwork,
        NeuralNetworkLayer, WeightParams,
    };
    use prost::Message;
    let n = 2048u64;
    let layer = NeuralNetworkLayer {
        name: "fc".into(),
        input: vec!["input".into()],
        output: vec!["output".into()],
        layer: Some(neural_network_layer::Layer::InnerProduct(
            InnerProductLayerParams {
                input_channels: n,
                output_channels: n,
                has_bias: true,
                weights: Some(WeightParams {
                    float_value: (0..n * n).map(|i| (i % 251) as f32 / 251.0 - 0.5).collect(),
                    ..Default::default()
                }),
                bias: Some(WeightParams {
                    float_value: (0..n).map(|i| i as f32 / 2048.0).collect(),
                    ..Default::default()
                }),
                ..Default::default()
            },
        )),
        ..Default::default()
    };
    proto::Model {
        specification_version: 4,
        r#type: Some(model::Type::NeuralNetwork(NeuralNetwork {
            layers: vec![layer],
            ..Default::default()
        })),
        ..Default::default()
    }
    .encode_to_vec()
}

/// Files left in `dir` other than `keep`.
fn leftovers(dir: &Path, keep: &[&str]) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| !keep.contains(&n.as_str()))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// Every operation that reads a mapped model, run after the model was truncated to nothing
/// underneath it; each prints one `STEP name: result` line.
#[cfg(unix)]
fn read_a_truncated_map(dir: &Path, guard: bool) {
    coremlq::model::map_guard::set_enabled(guard);
    let input = dir.join("big.mlmodel");
    let file = ModelFile::open(&input).expect("open");
    assert!(
        file.mapped_file().is_some(),
        "a model over 16 MiB is mapped"
    );
    std::fs::OpenOptions::new()
        .write(true)
        .open(&input)
        .and_then(|f| f.set_len(0))
        .expect("truncate");
    let step = |name: &str, r: Result<String, String>| println!("STEP {name}: {r:?}");
    // The index walk over the map, as at open (every header page has vanished).
    let walked = coremlq::model::index::build(&file.path, file.bytes());
    step(
        "index",
        file.check_unchanged().map_err(|e| e.to_string()).and(
            walked
                .map(|i| format!("{} layers", i.layers.len()))
                .map_err(|e| e.to_string()),
        ),
    );
    step(
        "plan",
        quant::estimate::plan_and_estimate(&file, &settings())
            .map(|(_, e)| format!("{} bytes", e.bytes_after))
            .map_err(|e| e.to_string()),
    );
    let plan = quant::plan::build(&file.index, &settings()).expect("plan");
    step(
        "quality",
        quant::quality::quality_of(&file, &plan, 0)
            .map(|q| format!("{q:?}"))
            .map_err(|e| e.to_string()),
    );
    let mut no_fusion = settings();
    no_fusion.fuse_layers = false;
    for (name, s) in [
        ("quantize", settings()),
        ("quantize-fp16", {
            let mut s = no_fusion.clone();
            s.default.nbits = 16;
            s.default.mode = Mode::Linear;
            s
        }),
    ] {
        let plan = quant::plan::build(&file.index, &s).expect("plan");
        step(
            name,
            quant::quantize(
                &file,
                &plan,
                &dir.join("out.mlmodel"),
                &RunOptions::default(),
            )
            .map(|r| format!("{} bytes", r.bytes_after))
            .map_err(|e| e.to_string()),
        );
    }
    println!("CHILD DONE");
}

/// A mapped model (over 16 MiB) truncated to nothing while open: indexing its bytes,
/// planning, measuring quality and quantizing each end in an error naming the file, the
/// process lives, and no output is left. The same run without the SIGBUS guard is killed,
/// which shows the test can fail.
#[cfg(unix)]
#[test]
fn a_mapped_model_truncated_while_open_is_an_error_not_a_crash() {
    const TEST: &str = "a_mapped_model_truncated_while_open_is_an_error_not_a_crash";
    if let Some((case, dir)) = child_case() {
        match case.as_str() {
            "big-guarded" => read_a_truncated_map(&dir, true),
            "big-unguarded" => read_a_truncated_map(&dir, false),
            _ => {}
        }
        return;
    }
    let bytes = big_model();
    assert!(bytes.len() > 16 << 20, "{} bytes", bytes.len());
    for (case, guarded) in [("big-guarded", true), ("big-unguarded", false)] {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("big.mlmodel"), &bytes).expect("write");
        let (status, output) = in_child(case, TEST, dir.path());
        if !guarded {
            assert_eq!(
                describe(status),
                "killed by SIGBUS (a mapped page vanished)",
                "without the guard the first read of a vanished page must fault\n{output}"
            );
            continue;
        }
        assert_child_lived(status, &output, "CHILD DONE");
        let steps: Vec<&str> = output.lines().filter(|l| l.contains("STEP ")).collect();
        assert_eq!(steps.len(), 5, "{output}");
        for line in steps {
            assert!(
                line.contains("big.mlmodel changed while it was being read (it was truncated or rewritten); nothing was written"),
                "{line}"
            );
        }
        assert_eq!(
            leftovers(dir.path(), &["big.mlmodel"]),
            Vec::<String>::new()
        );
    }
}

/// A mapped model rewritten in place (truncated, then written again) over and over while
/// another thread opens it and reads all its bytes: every open either succeeds or fails with
/// an error, and the process lives.
#[cfg(unix)]
#[test]
fn a_mapped_model_rewritten_while_being_indexed() {
    const TEST: &str = "a_mapped_model_rewritten_while_being_indexed";
    if let Some((case, dir)) = child_case() {
        if case == "big-rewrite" {
            let path = dir.join("big.mlmodel");
            let bytes = big_model();
            std::fs::write(&path, &bytes).expect("write");
            let stop = Arc::new(AtomicBool::new(false));
            let writer = {
                let (stop, path) = (stop.clone(), path.clone());
                std::thread::spawn(move || {
                    let mut n = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        let _ = std::fs::write(&path, &bytes);
                        n += 1;
                    }
                    n
                })
            };
            let started = Instant::now();
            let (mut opened, mut changed, mut refused, mut sum) = (0u64, 0u64, 0u64, 0u64);
            while started.elapsed() < Duration::from_millis(700) {
                match ModelFile::open(&path) {
                    Ok(file) => {
                        // Touch one byte per page, as the writer's copies do.
                        sum = file
                            .bytes()
                            .iter()
                            .step_by(4096)
                            .fold(sum, |s, &b| s.wrapping_add(u64::from(b)));
                        match file.check_unchanged() {
                            Ok(()) => opened += 1,
                            Err(_) => changed += 1,
                        }
                    }
                    Err(_) => refused += 1,
                }
            }
            stop.store(true, Ordering::Relaxed);
            let writes = writer.join().unwrap_or(0);
            println!(
                "CHILD RESULT: {opened} read whole, {changed} changed while read, {refused} refused, {writes} rewrites, checksum {sum}"
            );
        }
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let (status, output) = in_child("big-rewrite", TEST, dir.path());
    assert_child_lived(status, &output, "CHILD RESULT");
    if let Some(line) = output.lines().find(|l| l.contains("CHILD RESULT")) {
        println!("{line}");
    }
}

/// The guard only answers for our own model maps: a fault on another mapping still ends
/// the process as before (the handler hands it on), so the guard hides no real bug.
#[cfg(unix)]
#[test]
fn a_fault_outside_our_maps_still_ends_the_process() {
    const TEST: &str = "a_fault_outside_our_maps_still_ends_the_process";
    if let Some((case, dir)) = child_case() {
        if case == "foreign" {
            // Opening a large model installs the guard.
            let model = ModelFile::open(&dir.join("big.mlmodel")).expect("open");
            assert!(model.mapped_file().is_some());
            let other = dir.join("other.bin");
            std::fs::write(&other, vec![1u8; 1 << 20]).expect("write");
            let file = std::fs::File::open(&other).expect("open");
            // SAFETY: this child exists to fault on this map.
            let map = unsafe { memmap2::Mmap::map(&file) }.expect("map");
            std::fs::OpenOptions::new()
                .write(true)
                .open(&other)
                .and_then(|f| f.set_len(0))
                .expect("truncate");
            let last = std::hint::black_box(&map[..]).last().copied();
            println!("CHILD RESULT: read {last:?}");
        }
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("big.mlmodel"), big_model()).expect("write");
    let (status, output) = in_child("foreign", TEST, dir.path());
    assert_eq!(
        describe(status),
        "killed by SIGBUS (a mapped page vanished)",
        "{output}"
    );
}
