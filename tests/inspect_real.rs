//! `coremlq inspect --json` against coremltools' own view of real models
//! (`tests/data/real/`) and of models with the structure older converters write
//! (`tests/data/converter-style/`). Each folder's `views.json` was written by
//! `scripts/compare-inspect.py --write-view` (coremltools 9.0); see the folders' READMEs.

mod common;

use common::coremlq;
use serde_json::Value;

/// Keys compared at the top level, per model and per layer (as `scripts/compare-inspect.py`).
const TOP: [&str; 9] = [
    "file_bytes",
    "model_type",
    "specification_version",
    "is_updatable",
    "inputs",
    "outputs",
    "networks",
    "weight_tensors",
    "weight_bytes",
];
const MODEL: [&str; 8] = [
    "path",
    "name",
    "type",
    "specification_version",
    "is_updatable",
    "inputs",
    "outputs",
    "networks",
];
const LAYER: [&str; 6] = [
    "name",
    "type",
    "network",
    "inputs",
    "outputs",
    "is_updatable",
];
const WEIGHT: [&str; 6] = ["field", "count", "shape", "storage", "nbits", "bytes"];

fn views(folder: &str) -> Vec<(String, Value)> {
    let path = format!(
        "{}/tests/data/{folder}/views.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let v: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"));
    let map = v
        .as_object()
        .unwrap_or_else(|| panic!("{path}: not an object"));
    assert!(!map.is_empty(), "{path}: no views");
    map.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

/// The differences between coremlq's JSON and coremltools' view of one model.
fn differences(name: &str, ours: &Value, view: &Value) -> Vec<String> {
    let mut diffs = Vec::new();
    let mut check = |what: String, a: &Value, b: &Value| {
        if a != b {
            diffs.push(format!("{name}: {what}: coremlq {a}, coremltools {b}"));
        }
    };
    for key in TOP {
        check(key.into(), &ours[key], &view[key]);
    }
    let empty = Vec::new();
    let list = |v: &Value| v.as_array().unwrap_or(&empty).clone();
    let (om, vm) = (list(&ours["models"]), list(&view["models"]));
    check("model count".into(), &om.len().into(), &vm.len().into());
    for (a, b) in om.iter().zip(&vm) {
        for key in MODEL {
            check(format!("model {} {key}", b["path"]), &a[key], &b[key]);
        }
    }
    let (ol, vl) = (list(&ours["layers"]), list(&view["layers"]));
    check("layer count".into(), &ol.len().into(), &vl.len().into());
    for (i, (a, b)) in ol.iter().zip(&vl).enumerate() {
        let at = format!("layer {i} {}", b["name"]);
        for key in LAYER {
            check(format!("{at} {key}"), &a[key], &b[key]);
        }
        let (aw, bw) = (list(&a["weights"]), list(&b["weights"]));
        check(
            format!("{at} weight count"),
            &aw.len().into(),
            &bw.len().into(),
        );
        for (x, y) in aw.iter().zip(&bw) {
            for key in WEIGHT {
                // coremltools' quantize walk defines no shape for some tensors (null).
                if key == "shape" && y[key].is_null() {
                    continue;
                }
                check(format!("{at} {} {key}", y["field"]), &x[key], &y[key]);
            }
        }
    }
    diffs
}

fn compare_folder(folder: &str) {
    let mut diffs = Vec::new();
    for (name, view) in views(folder) {
        let path = format!("tests/data/{folder}/{name}");
        let (code, stdout, stderr) = coremlq(&["inspect", "--json", &path]);
        assert_eq!(code, 0, "{path}: {stderr}");
        let ours: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{path}: {e}"));
        assert_eq!(ours["warnings"], Value::Array(Vec::new()), "{path}");
        diffs.extend(differences(&path, &ours, &view));
        // The table reads the same index; it must print the same totals.
        let (code, table, stderr) = coremlq(&["inspect", "--all", &path]);
        assert_eq!(code, 0, "{path}: {stderr}");
        let tensors = view["weight_tensors"].as_u64().unwrap_or_default();
        let total = format!(
            "total      {tensors} tensor{}",
            if tensors == 1 { "" } else { "s" }
        );
        assert!(table.contains(&total), "{path}: no {total:?} in\n{table}");
    }
    assert!(diffs.is_empty(), "{}", diffs.join("\n"));
}

#[test]
fn real_models_match_coremltools() {
    compare_folder("real");
}

#[test]
fn converter_style_models_match_coremltools() {
    compare_folder("converter-style");
}
