//! Replays every committed fuzz regression input (`fuzz/regressions/<target>/`) and every
//! hostile file (`tests/data/hostile/`) through the checks of the matching fuzz target, so
//! that `cargo test` alone catches a crash the fuzzers once found.

#[allow(dead_code)]
#[path = "../fuzz/src/checks.rs"]
mod checks;
#[allow(dead_code)]
#[path = "../fuzz/src/config_analysis.rs"]
mod config_analysis;
#[allow(dead_code)]
#[path = "../fuzz/src/pipeline.rs"]
mod pipeline;

use std::path::{Path, PathBuf};

use coremlq::quant::Mode;

fn inputs(dir: &Path, keep: impl Fn(&Path) -> bool) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.is_file() && keep(p))
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out
}

/// Known bugs, skipped by the replay and reproduced by an ignored test each (run them with
/// `cargo test --test reliability_fuzz_regressions -- --ignored`): (file name, mode).
/// Remove an entry when its bug is fixed.
const KNOWN_BUGS: &[(&str, Mode)] = &[];

fn known_bug(file: &Path, choice: u8) -> bool {
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mode = pipeline::settings(choice).default.mode;
    KNOWN_BUGS.iter().any(|(n, m)| *n == name && *m == mode)
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn is_model(p: &Path) -> bool {
    !p.to_string_lossy().ends_with(".quant.json") && !p.to_string_lossy().ends_with(".md")
}

fn is_config(p: &Path) -> bool {
    p.to_string_lossy().ends_with(".quant.json")
        || p.starts_with(root().join("fuzz/regressions/config"))
}

#[test]
fn model_regressions_index_and_quantize() {
    let mut files = inputs(&root().join("fuzz/regressions/index"), |_| true);
    files.extend(inputs(&root().join("fuzz/regressions/quantize"), |_| true));
    files.extend(inputs(&root().join("tests/data/hostile"), is_model));
    assert!(!files.is_empty());
    for file in files {
        let data = std::fs::read(&file).expect("read");
        if let Ok(index) = coremlq::model::index::build(Path::new("regression.mlmodel"), &data) {
            if let Err(e) = checks::index_invariants(&data, &index) {
                panic!("{}: {e}", file.display());
            }
        }
        for choice in 0..=255u8 {
            if known_bug(&file, choice) {
                continue;
            }
            if let Err(e) = pipeline::run(&data, choice) {
                panic!(
                    "{} with {:?}: {e}",
                    file.display(),
                    pipeline::settings(choice)
                );
            }
        }
    }
}

#[test]
fn config_regressions_parse() {
    let mut files = inputs(&root().join("fuzz/regressions/config"), |_| true);
    files.extend(inputs(&root().join("tests/data/hostile"), is_config));
    assert!(!files.is_empty());
    for file in files {
        let data = std::fs::read(&file).expect("read");
        let text = String::from_utf8_lossy(&data);
        let parse = coremlq::config::syntax::parse(&text);
        if let Err(e) = checks::syntax_invariants(&text, &parse) {
            panic!("{}: {e}", file.display());
        }
        for offset in 0..=text.len() + 1 {
            let _ = parse.locate(&text, offset);
        }
    }
}

#[test]
fn config_analysis_regressions_and_seeds() {
    let mut files = inputs(&root().join("fuzz/regressions/config_analysis"), |_| true);
    files.extend(inputs(&root().join("fuzz/regressions/config"), |_| true));
    files.extend(inputs(&root().join("tests/data/config"), is_config));
    files.extend(inputs(&root().join("tests/data/hostile"), is_config));
    files.extend(inputs(&root().join("examples"), is_config));
    assert!(files.len() > 40, "only {} inputs", files.len());
    for file in files {
        let data = std::fs::read(&file).expect("read");
        if let Err(e) = config_analysis::run(&data) {
            panic!("{}: {e}", file.display());
        }
    }
}

/// Regression: dequantizing a tensor whose header claims 2^60 elements (with a 1-byte
/// payload) used to plan a 4.6 EB output, which `quant::execute::quantize_to_vec` reserved
/// and aborted on. The plan now refuses a payload too short for its header. Runs in a child
/// process, so that an abort fails this test only.
#[test]
fn dequantizing_a_huge_header_is_an_error_not_an_abort() {
    let file = root().join("tests/data/hostile/huge_quantized_shape.mlmodel");
    if std::env::var_os("COREMLQ_RELIABILITY_CHILD").is_some() {
        let data = std::fs::read(&file).expect("read");
        let choice = (0..=255u8)
            .find(|&c| pipeline::settings(c).default.mode == Mode::Dequantization)
            .unwrap_or(7);
        let model = coremlq::model::ModelFile::from_bytes(file.clone(), data).expect("indexes");
        let plan = coremlq::quant::plan::build(&model.index, &pipeline::settings(choice));
        let err = plan.expect_err("a payload too short for its header is refused");
        assert!(err.to_string().contains("too few"), "{err}");
        return;
    }
    let status = std::process::Command::new(std::env::current_exe().expect("test binary"))
        .args([
            "--exact",
            "dequantizing_a_huge_header_is_an_error_not_an_abort",
            "--include-ignored",
            "--test-threads=1",
        ])
        .env("COREMLQ_RELIABILITY_CHILD", "1")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .expect("run the child");
    assert!(
        status.success(),
        "quantize_to_vec on {} ended with {status}",
        file.display()
    );
}
