//! Kernel-level parity with coremltools 9.0: for every successful float32-dialect fixture case
//! without layer fusion, every tensor coremltools converted is converted again by the kernels
//! alone (`kernels::quantize` + `encode::encode_quantized` on the original WeightParams) and
//! must equal the golden WeightParams byte for byte; k-means tables must not be worse than
//! coremltools' per-tensor error. Failures name the case, layer and field.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use coremlq::model::{ModelFile, Storage};
use coremlq::quant::encode::encode_quantized;
use coremlq::quant::kernels::{self, Dialect};
use coremlq::quant::Target;
use serde_json::Value;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn target(case: &Value) -> Option<Target> {
    let nbits = u8::try_from(case["nbits"].as_i64()?).ok()?;
    if nbits == 16 {
        return Some(Target::Fp16);
    }
    Some(match case["mode"].as_str()? {
        "linear" => Target::Linear(nbits),
        "linear_symmetric" => Target::LinearSymmetric,
        "linear_lut" => Target::LinearLut(nbits),
        "kmeans_lut" | "kmeans" => Target::KmeansLut(nbits),
        "custom_lut" => {
            let t: Vec<f32> = case["custom_lut"]
                .as_array()?
                .iter()
                .filter_map(Value::as_f64)
                .map(|x| x as f32)
                .collect();
            Target::CustomLut(nbits, Arc::from(t))
        }
        _ => return None,
    })
}

fn hex(b: &[u8]) -> String {
    b.iter()
        .map(|x| format!("{x:02x}"))
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn converted_tensors_match_coremltools() {
    let Ok(text) = std::fs::read_to_string(fixtures().join("manifest.json")) else {
        eprintln!("no fixtures; skipped");
        return;
    };
    let manifest: Value = serde_json::from_str(&text).expect("manifest.json");
    let cases = manifest["cases"].as_array().cloned().unwrap_or_default();
    let (mut exact, mut kmeans, mut failures) = (0usize, 0usize, Vec::new());
    for case in &cases {
        let id = case["id"].as_str().unwrap_or("?");
        let Some(golden) = case["outcome"]["golden"].as_str() else {
            continue;
        };
        let Some(t) = target(case) else { continue };
        let fused = case["log"].as_array().is_some_and(|l| {
            l.iter()
                .any(|s| s.as_str().is_some_and(|s| s.starts_with("Fused")))
        });
        if fused {
            continue;
        }
        let Some(input) = case["input"].as_str() else {
            continue;
        };
        let (Ok(inp), Ok(out)) = (
            ModelFile::open(&fixtures().join(input)),
            ModelFile::open(&fixtures().join(golden)),
        ) else {
            failures.push(format!("{id}: cannot open input or golden"));
            continue;
        };
        let (ii, oi) = (&inp.index, &out.index);
        if ii.weights.len() != oi.weights.len() {
            continue;
        }
        let mut kmeans_seen = 0usize;
        for (wi, wo) in ii.weights.iter().zip(&oi.weights) {
            if wi.storage != Storage::Float32 || wo.storage == Storage::Float32 {
                continue;
            }
            let layer = ii.layers.get(wi.layer).map_or("?", |l| l.name.as_str());
            let place = format!("{id}: layer {layer} field {}", wi.field);
            let body = &inp.bytes()[wi.body.clone()];
            let values =
                kernels::f32s_from_le(&inp.bytes()[wi.float_values.clone().unwrap_or(0..0)]);
            let q = match kernels::quantize(&values, &wi.shape, wi.axis, &t, Dialect::F32) {
                Ok(q) => q,
                Err(e) => {
                    failures.push(format!("{place}: {e}"));
                    continue;
                }
            };
            if let Target::KmeansLut(_) = t {
                let want = case["kmeans_tensors"]
                    .as_array()
                    .and_then(|a| a.get(kmeans_seen))
                    .and_then(|k| k["mse"].as_f64());
                kmeans_seen += 1;
                let d = kernels::dequantize(&q, &wi.shape, wi.axis).expect("dequantize");
                let mse = kernels::quality(&values, &d).mse;
                match want {
                    Some(w) if mse <= w * (1.0 + 1e-9) + 1e-30 => kmeans += 1,
                    Some(w) => {
                        failures.push(format!("{place}: k-means mse {mse} > coremltools {w}"))
                    }
                    None => failures.push(format!("{place}: no coremltools mse recorded")),
                }
                continue;
            }
            let got = encode_quantized(body, &q).expect("encode");
            let want = &out.bytes()[wo.body.clone()];
            if got == want {
                exact += 1;
            } else {
                failures.push(format!(
                    "{place}:\n    got  {}\n    want {}",
                    hex(&got),
                    hex(want)
                ));
            }
        }
    }
    eprintln!("{exact} tensors byte-identical, {kmeans} k-means tensors within coremltools' error");
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(exact > 0 || cases.is_empty());
}
