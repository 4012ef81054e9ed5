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
// Models up to 16 MiB are read into memory, so this holds for them; a larger, mapped
// model truncated underneath can still fault (docs/reliability.md, known limitation).
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
    assert!(
        status.success(),
        "the process died: {}\n{output}",
        describe(status)
    );
    assert!(output.contains("CHILD RESULT"), "{output}");
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
// Models up to 16 MiB are read into memory, so this holds for them; a larger, mapped
// model truncated underneath can still fault (docs/reliability.md, known limitation).
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
    assert!(
        status.success(),
        "the process died: {}\n{output}",
        describe(status)
    );
    assert!(output.contains("CHILD RESULT"), "{output}");
}
