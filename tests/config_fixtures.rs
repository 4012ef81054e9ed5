//! Data-driven tests of the config analysis: every `tests/data/config/*.quant.json` is
//! checked against the model it names, and the diagnostics (code, severity, line:col
//! range, message, fixes, help), the resolved settings and the plan's per-layer decisions
//! are compared with `<name>.expected` beside it. `UPDATE_EXPECT=1` rewrites the
//! expectations.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use coremlq::config::load::check_file;
use coremlq::config::render::compact;
use coremlq::config::Code;
use coremlq::quant::LayerDecision;

const DIR: &str = "tests/data/config";

fn configs() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(DIR)
        .expect("fixture folder")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.to_string_lossy().ends_with(".quant.json"))
        .collect();
    v.sort();
    v
}

fn render(config: &Path) -> String {
    let checked = check_file(config, Some(Path::new("tests/data"))).expect("readable config");
    let mut out = compact(&checked.text, &checked.analysis.diagnostics);
    if let Some(s) = &checked.analysis.settings {
        let _ = writeln!(
            out,
            "settings: {:?} selector={:?} skip_layers={:?} fuse_layers={}",
            s.default, s.selector, s.skip_layers, s.fuse_layers
        );
        for o in &s.overrides {
            let _ = writeln!(
                out,
                "  override {:?} skip={} nbits={:?} mode={:?}",
                o.pattern, o.skip, o.nbits, o.mode
            );
        }
    }
    if let (Some(plan), Some(model)) = (&checked.analysis.plan, &checked.model) {
        for (layer, lp) in model.index.layers.iter().zip(&plan.layers) {
            let decision = match &lp.decision {
                LayerDecision::Quantize(t) => t.describe(),
                LayerDecision::Skip => "skip".into(),
                LayerDecision::FusedInto(p) => {
                    format!("fused into {}", model.index.layers[*p].name)
                }
                LayerDecision::NotQuantizable => "not quantizable".into(),
                LayerDecision::NoWeights => "no weights".into(),
            };
            let _ = writeln!(
                out,
                "plan: {} ({}): {decision} — {}",
                layer.name, layer.layer_type, lp.reason
            );
        }
    }
    out
}

#[test]
fn fixtures() {
    let update = std::env::var_os("UPDATE_EXPECT").is_some();
    let mut failures = Vec::new();
    for config in configs() {
        let actual = render(&config);
        let expected_path =
            PathBuf::from(config.to_string_lossy().replace(".quant.json", ".expected"));
        let expected = std::fs::read_to_string(&expected_path).unwrap_or_default();
        if actual != expected {
            if update {
                std::fs::write(&expected_path, &actual).expect("write expectation");
            } else {
                failures.push(format!(
                    "{}:\n--- expected\n{expected}--- actual\n{actual}",
                    config.display()
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} fixture(s) differ (UPDATE_EXPECT=1 to accept):\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn every_code_is_exercised() {
    let mut seen = BTreeSet::new();
    for config in configs() {
        for line in render(&config).lines() {
            let mut words = line.split_whitespace();
            if let (Some(_severity), Some(code)) = (words.next(), words.next()) {
                if let Some(c) = Code::parse(code) {
                    seen.insert(c);
                }
            }
        }
    }
    let missing: Vec<&str> = Code::ALL
        .iter()
        .filter(|c| !seen.contains(c))
        .map(|c| c.as_str())
        .collect();
    assert!(missing.is_empty(), "codes without a fixture: {missing:?}");
}

#[test]
fn shipped_example_and_documented_example_are_clean() {
    let checked =
        check_file(Path::new("examples/MobileNetMini.quant.json"), None).expect("example config");
    assert!(
        !checked.analysis.has_errors(),
        "{}",
        compact(&checked.text, &checked.analysis.diagnostics)
    );
    assert!(checked.analysis.plan.is_some());
    // The example of docs/config.md: no syntax or structure error (its model is not shipped).
    let doc = std::fs::read_to_string("docs/config.md").expect("docs/config.md");
    let example = doc
        .split("```jsonc\n")
        .nth(1)
        .and_then(|s| s.split("```").next())
        .expect("example block");
    let checked = coremlq::config::load::check_text(
        Path::new("docs/example.quant.json"),
        example.to_string(),
        None,
    );
    let codes: Vec<&str> = checked
        .analysis
        .diagnostics
        .iter()
        .map(|d| d.code.as_str())
        .collect();
    assert_eq!(codes, ["Q0201"], "only the missing model may be reported");
}

/// Applying any quick fix never adds a syntax error, and removes the diagnostic it fixes.
#[test]
fn fixes_apply_cleanly() {
    let mut applied = 0;
    for config in configs() {
        let checked = check_file(&config, Some(Path::new("tests/data"))).expect("readable config");
        let before = checked.parse.errors.len();
        for d in &checked.analysis.diagnostics {
            for fix in &d.fixes {
                let mut text = checked.text.clone();
                let mut edits = fix.edits.clone();
                edits.sort_by_key(|e| std::cmp::Reverse(e.range.start));
                for e in &edits {
                    text.replace_range(e.range.to_range(), &e.text);
                }
                let after = coremlq::config::load::check_text(
                    &config,
                    text.clone(),
                    Some(Path::new("tests/data")),
                );
                assert!(
                    after.parse.errors.len() <= before,
                    "{}: fix {:?} breaks the syntax:\n{text}",
                    config.display(),
                    fix.title
                );
                let still = after.analysis.diagnostics.iter().any(|a| {
                    a.code == d.code && a.range.start == d.range.start && a.message == d.message
                });
                assert!(
                    !still,
                    "{}: fix {:?} does not fix {}",
                    config.display(),
                    fix.title,
                    d.message
                );
                applied += 1;
            }
        }
    }
    assert!(applied > 20, "only {applied} fixes exercised");
}
