//! The model index against coremltools' own view of every fixture model
//! (`tests/fixtures/manifest.json`, written by `tests/fixtures/generate.py`), and indexing
//! of every golden output file.

use std::path::{Path, PathBuf};

use coremlq::model::{ModelFile, ModelIndex, Storage};
use serde_json::Value;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn manifest() -> Value {
    let path = fixtures().join("manifest.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (run tests/fixtures/generate.py)", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn open(path: &Path) -> ModelIndex {
    ModelFile::open(path)
        .unwrap_or_else(|e| panic!("{e}"))
        .index
}

/// The storage coremltools' description implies (spec §1.6).
fn expected_storage(w: &Value) -> Storage {
    let present = w["present_fields"].as_array().cloned().unwrap_or_default();
    let storages = ["floatValue", "float16Value", "rawValue", "int8RawValue"];
    let n = present
        .iter()
        .filter(|f| storages.iter().any(|s| f.as_str() == Some(s)))
        .count();
    if n > 1 {
        return Storage::Mixed;
    }
    let q = &w["quantization"];
    let nbits = q["nbits"]
        .as_u64()
        .and_then(|b| u8::try_from(b).ok())
        .filter(|b| (1..=8).contains(b));
    match w["storage"].as_str() {
        Some("float32") => Storage::Float32,
        Some("float16") => Storage::Float16,
        Some("int8") => Storage::Int8,
        Some("empty") => Storage::Empty,
        Some("quantized") => match (q["kind"].as_str(), nbits) {
            (Some("linear"), Some(nbits)) => Storage::Linear { nbits },
            (Some("lut"), Some(nbits)) => Storage::Lut { nbits },
            _ => Storage::Mixed,
        },
        other => panic!("unexpected storage {other:?}"),
    }
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// Compares the index of one model with the manifest's description; returns the differences.
fn compare(name: &str, desc: &Value, idx: &ModelIndex) -> Vec<String> {
    let mut diffs = Vec::new();
    let mut check = |what: String, ours: String, theirs: String| {
        if ours != theirs {
            diffs.push(format!("{name}: {what}: ours {ours}, coremltools {theirs}"));
        }
    };
    let root = idx.root();
    check(
        "type".into(),
        root.model_type.clone(),
        desc["type"].as_str().unwrap_or("").into(),
    );
    check(
        "specificationVersion".into(),
        root.specification_version.to_string(),
        desc["specificationVersion"].to_string(),
    );
    check(
        "isUpdatable".into(),
        root.is_updatable.to_string(),
        desc["isUpdatable"].to_string(),
    );
    check(
        "file size".into(),
        idx.file_bytes.to_string(),
        desc["size"].to_string(),
    );

    let models = desc["models"].as_array().cloned().unwrap_or_default();
    check(
        "model count".into(),
        idx.models.len().to_string(),
        models.len().to_string(),
    );
    for (m, d) in idx.models.iter().zip(&models) {
        let what = format!("model {:?}", m.path);
        check(
            format!("{what} path"),
            m.path.clone(),
            d["path"].as_str().unwrap_or("").into(),
        );
        check(
            format!("{what} type"),
            m.model_type.clone(),
            d["type"].as_str().unwrap_or("").into(),
        );
        check(
            format!("{what} version"),
            m.specification_version.to_string(),
            d["specificationVersion"].to_string(),
        );
    }

    let nets = desc["networks"].as_array().cloned().unwrap_or_default();
    check(
        "network count".into(),
        idx.networks.len().to_string(),
        nets.len().to_string(),
    );
    for (net, d) in idx.networks.iter().zip(&nets) {
        let np = net.path.clone();
        check(
            format!("network {np} path"),
            np.clone(),
            d["path"].as_str().unwrap_or("").into(),
        );
        check(
            format!("network {np} model_path"),
            idx.models[net.model].path.clone(),
            d["model_path"].as_str().unwrap_or("").into(),
        );
        let layers = d["layers"].as_array().cloned().unwrap_or_default();
        check(
            format!("network {np} layer count"),
            net.layers.len().to_string(),
            layers.len().to_string(),
        );
        for (&l, dl) in net.layers.iter().zip(&layers) {
            let layer = &idx.layers[l];
            let what = format!("{np} layer {:?}", layer.name);
            check(
                format!("{what} name"),
                layer.name.clone(),
                dl["name"].as_str().unwrap_or("").into(),
            );
            check(
                format!("{what} type"),
                layer.layer_type.clone(),
                dl["type"].as_str().unwrap_or("").into(),
            );
            check(
                format!("{what} inputs"),
                format!("{:?}", layer.inputs),
                format!("{:?}", strings(&dl["inputs"])),
            );
            check(
                format!("{what} outputs"),
                format!("{:?}", layer.outputs),
                format!("{:?}", strings(&dl["outputs"])),
            );
            check(
                format!("{what} isUpdatable"),
                layer.is_updatable.to_string(),
                dl["isUpdatable"].as_bool().unwrap_or(false).to_string(),
            );
            let dws = dl["weights"].as_array().cloned().unwrap_or_default();
            // The manifest lists fields in field-number order, which is coremltools' processing
            // order except that activation parameters inside recurrent layers (never quantized)
            // come first there and last in the index.
            let (act, rest): (Vec<&Value>, Vec<&Value>) = dws.iter().partition(|w| {
                w["field"]
                    .as_str()
                    .is_some_and(|f| f.starts_with("activation"))
            });
            let expected: Vec<&Value> = rest.into_iter().chain(act).collect();
            let ours: Vec<_> = idx.layer_weights(l).collect();
            check(
                format!("{what} weight fields"),
                format!(
                    "{:?}",
                    ours.iter().map(|w| w.field.as_str()).collect::<Vec<_>>()
                ),
                format!(
                    "{:?}",
                    expected
                        .iter()
                        .map(|w| w["field"].as_str().unwrap_or(""))
                        .collect::<Vec<_>>()
                ),
            );
            for (w, dw) in ours.iter().zip(&expected) {
                let wf = format!("{what} {}", w.field);
                check(
                    format!("{wf} count"),
                    w.count.to_string(),
                    dw["count"].to_string(),
                );
                check(
                    format!("{wf} bytes"),
                    w.bytes().to_string(),
                    dw["bytes"].to_string(),
                );
                check(
                    format!("{wf} storage"),
                    format!("{:?}", w.storage),
                    format!("{:?}", expected_storage(dw)),
                );
                if let Some(shape) = dw["shape"].as_array() {
                    let shape: Vec<u64> = shape.iter().filter_map(Value::as_u64).collect();
                    check(
                        format!("{wf} shape"),
                        format!("{:?}", w.shape),
                        format!("{shape:?}"),
                    );
                }
                assert_eq!(w.layer, l);
            }
        }
    }
    diffs
}

#[test]
fn index_matches_coremltools_view_of_every_fixture_model() {
    let manifest = manifest();
    let models = manifest["models"].as_object().cloned().unwrap_or_default();
    assert!(
        models.len() >= 60,
        "manifest lists only {} models",
        models.len()
    );
    let mut diffs = Vec::new();
    let mut weights = 0;
    for (name, desc) in &models {
        let file = desc["file"]
            .as_str()
            .unwrap_or_else(|| panic!("{name}: no file"));
        let idx = open(&fixtures().join(file));
        weights += idx.weights.len();
        diffs.extend(compare(name, desc, &idx));
    }
    // The README example (a MobileNet-like network) is described the same way.
    if let Some(example) = manifest["example"]["model"].as_object() {
        let desc = Value::Object(example.clone());
        let file = desc["file"].as_str().unwrap_or("");
        let idx = open(&fixtures().join(file));
        diffs.extend(compare("example", &desc, &idx));
    }
    assert!(
        diffs.is_empty(),
        "{} differences:\n{}",
        diffs.len(),
        diffs.join("\n")
    );
    assert!(weights > 200, "only {weights} weight tensors compared");
}

#[test]
fn every_golden_output_indexes_cleanly() {
    let manifest = manifest();
    let cases = manifest["cases"].as_array().cloned().unwrap_or_default();
    let mut indexed = 0;
    for case in &cases {
        let Some(golden) = case["outcome"]["golden"].as_str() else {
            continue;
        };
        let idx = open(&fixtures().join(golden));
        assert_eq!(
            idx.file_bytes.to_string(),
            case["outcome"]["size"].to_string(),
            "{golden}"
        );
        assert!(idx.warnings.is_empty(), "{golden}: {:?}", idx.warnings);
        let version = case["outcome"]["specificationVersion"].as_i64();
        assert_eq!(Some(idx.root().specification_version), version, "{golden}");
        // Every tensor's storage is one coremltools can produce.
        for w in &idx.weights {
            assert!(
                !matches!(w.storage, Storage::Mixed)
                    || (w.half_values.is_some() && w.raw_values.is_some()),
                "{golden}: {} {:?}",
                w.field,
                w.storage
            );
        }
        indexed += 1;
    }
    assert!(indexed >= 500, "only {indexed} golden files");
}

#[test]
fn truncated_and_corrupted_fixtures_never_panic() {
    for name in [
        "models/branch_loop.mlmodel",
        "models/bilstm.mlmodel",
        "models/pipeline_classifier.mlmodel",
        "models/float_only.mlmodel",
        "golden/already_linear4__linear_lut2.mlmodel",
        "golden/fp16_ip_bias__linear8.mlmodel",
    ] {
        let path = fixtures().join(name);
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let good = coremlq::model::index::build(&path, &bytes).unwrap_or_else(|e| panic!("{e}"));
        for n in 0..bytes.len() {
            // Every strict prefix that cuts a length-delimited field is an error with an offset
            // inside the file; a prefix that ends between top-level fields may index.
            if let Err(coremlq::model::ModelError::Malformed { offset, .. }) =
                coremlq::model::index::build(&path, &bytes[..n])
            {
                assert!(offset <= n as u64, "{name}[..{n}]: offset {offset}");
            }
        }
        let mut copy = bytes.clone();
        for i in 0..bytes.len() {
            for x in [0xff, 0x80, 0x7f, 0x01, 0x08] {
                copy[i] = bytes[i] ^ x;
                if let Ok(idx) = coremlq::model::index::build(&path, &copy) {
                    for w in &idx.weights {
                        assert!(w.span.start <= w.body.start && w.body.end <= copy.len());
                        let _ = coremlq::model::index::float_values(&path, &copy, w);
                    }
                }
            }
            copy[i] = bytes[i];
        }
        assert!(!good.layers.is_empty());
    }
}

/// The prost schema subset re-encodes a fixture to the same bytes when every message in it is
/// modelled (field numbers, types, packing and presence match protobuf-python's output). The
/// fixtures that differ hold placeholder messages: models without networks (GLM, tree
/// ensemble, ML Program, the GLM inside `pipeline`), `softmaxND` (its `axis`) and
/// `NetworkUpdateParameters` (`updatable`).
#[test]
fn prost_schema_round_trips_fixtures() {
    use prost::Message;
    let manifest = manifest();
    let models = manifest["models"].as_object().cloned().unwrap_or_default();
    let mut differ = Vec::new();
    for (name, desc) in &models {
        let file = desc["file"].as_str().unwrap_or("");
        let bytes = std::fs::read(fixtures().join(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
        let model = coremlq::model::proto::Model::decode(bytes.as_slice())
            .unwrap_or_else(|e| panic!("{file}: prost cannot decode: {e}"));
        if model.encode_to_vec() != bytes {
            differ.push(name.as_str());
        }
    }
    differ.sort_unstable();
    expect_test::expect![[r#"
        glm_classifier
        glm_regressor
        ml_program
        nn_classifier
        nn_classifier_int64
        pipeline
        pipeline_classifier
        tree_ensemble
        updatable"#]]
    .assert_eq(&differ.join("\n"));
}
