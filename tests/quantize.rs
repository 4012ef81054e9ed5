//! End-to-end tests of the quantization engine and `coremlq quantize`: exact size estimates
//! on every fixture and mode, the safe writer, cancellation, mixed precision, the CLI.

mod common;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use coremlq::model::{ModelFile, Storage};
use coremlq::quant::error::{PlanErrorKind, QuantError};
use coremlq::quant::execute::quantize_to_vec;
use coremlq::quant::settings::Override;
use coremlq::quant::{
    estimate, plan, CancelToken, Choice, LayerDecision, Mode, RunOptions, Selector, Settings,
    Target, TensorAction,
};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/models")
        .join(name)
}

fn golden(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/golden")
        .join(name)
}

/// The fixture `name` and the float32-dialect values of the first fusion its 8-bit linear
/// plan makes.
fn first_fusion(name: &str) -> (ModelFile, coremlq::quant::fusion::FusedValues) {
    let file = ModelFile::open(&fixture(name)).unwrap();
    let p = plan::build(&file.index, &settings(8, Mode::Linear)).unwrap();
    let v = coremlq::quant::fusion::compute(
        &file.path,
        file.bytes(),
        &file.index,
        &p.fusions[0],
        coremlq::quant::kernels::Dialect::F32,
    )
    .unwrap();
    (file, v)
}

fn settings(nbits: u8, mode: Mode) -> Settings {
    Settings {
        default: Choice {
            nbits,
            mode,
            lut: (mode == Mode::CustomLut).then(|| plan::lut(&[-0.5, -0.1, 0.1, 0.5])),
        },
        selector: Selector::Default,
        skip_layers: vec![],
        overrides: vec![],
        fuse_layers: true,
    }
}

fn models() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(fixture(""))
        .map(|d| {
            d.filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|e| e == "mlmodel"))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

#[test]
fn estimate_equals_written_size_for_every_mode_on_every_fixture() {
    let choices = [
        (16, Mode::Linear),
        (8, Mode::Linear),
        (4, Mode::Linear),
        (3, Mode::Linear),
        (1, Mode::Linear),
        (8, Mode::LinearSymmetric),
        (8, Mode::LinearLut),
        (2, Mode::LinearLut),
        (4, Mode::KmeansLut),
        (2, Mode::CustomLut),
        (8, Mode::Dequantization),
    ];
    let mut checked = 0;
    for path in models() {
        let Ok(file) = ModelFile::open(&path) else {
            continue;
        };
        for (nbits, mode) in choices {
            for fuse in [true, false] {
                let mut s = settings(nbits, mode);
                s.fuse_layers = fuse;
                let Ok(p) = plan::build(&file.index, &s) else {
                    continue;
                };
                let est = estimate::estimate(&file.index, file.bytes(), &p).expect("estimate");
                match quantize_to_vec(&file, &p, &RunOptions::default()) {
                    Ok(out) => {
                        assert_eq!(
                            est.bytes_after,
                            out.len() as u64,
                            "{} {mode:?} {nbits} fuse={fuse}",
                            path.display()
                        );
                        let re = ModelFile::from_bytes(path.clone(), out).expect("output indexes");
                        assert_eq!(
                            re.index.weight_bytes(),
                            p.weight_bytes_after,
                            "{} {mode:?} {nbits}: per-tensor sizes",
                            path.display()
                        );
                        checked += 1;
                    }
                    // Value-dependent refusals (fp16 range) are fine; nothing else is.
                    Err(QuantError::Plan(e)) if e.kind == PlanErrorKind::Fp16Range => {}
                    Err(e) => panic!("{} {mode:?} {nbits}: {e}", path.display()),
                }
            }
        }
    }
    assert!(checked > 100, "only {checked} runs");
}

#[test]
fn writes_through_a_temp_file_and_matches_the_golden_output() {
    let dir = tempfile::tempdir().unwrap();
    let file = ModelFile::open(&fixture("conv.mlmodel")).unwrap();
    let p = plan::build(&file.index, &settings(8, Mode::Linear)).unwrap();
    let out = dir.path().join("conv8.mlmodel");
    let seen = Arc::new(Mutex::new(Vec::new()));
    let seen2 = seen.clone();
    let opts = RunOptions {
        progress: Some(Arc::new(move |p: &coremlq::quant::Progress| {
            seen2
                .lock()
                .unwrap()
                .push((p.done, p.total, p.layer.clone()))
        })),
        ..RunOptions::default()
    };
    let report = coremlq::quant::quantize(&file, &p, &out, &opts).unwrap();
    assert_eq!(
        std::fs::read(&out).unwrap(),
        std::fs::read(golden("conv__linear8.mlmodel")).unwrap()
    );
    assert_eq!(report.bytes_after, std::fs::metadata(&out).unwrap().len());
    assert_eq!(*seen.lock().unwrap(), vec![(1, 1, "conv".to_string())]);
    // Only the output is left in the folder.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    // Overwriting a Core ML model is allowed.
    coremlq::quant::quantize(&file, &p, &out, &RunOptions::default()).unwrap();
}

#[cfg(unix)]
#[test]
fn the_output_gets_the_permissions_of_its_source_not_the_temp_file_s() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("conv.mlmodel");
    std::fs::copy(fixture("conv.mlmodel"), &input).unwrap();
    std::fs::set_permissions(&input, std::fs::Permissions::from_mode(0o644)).unwrap();
    let file = ModelFile::open(&input).unwrap();
    let p = plan::build(&file.index, &settings(8, Mode::Linear)).unwrap();
    let out = dir.path().join("conv8.mlmodel");
    coremlq::quant::quantize(&file, &p, &out, &RunOptions::default()).unwrap();
    let mode = std::fs::metadata(&out).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o644);
}

#[test]
fn refuses_to_write_the_input_or_a_non_model_file() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.mlmodel");
    std::fs::copy(fixture("conv.mlmodel"), &input).unwrap();
    let before = std::fs::read(&input).unwrap();
    let file = ModelFile::open(&input).unwrap();
    let p = plan::build(&file.index, &settings(8, Mode::Linear)).unwrap();
    let err = coremlq::quant::quantize(&file, &p, &input, &RunOptions::default()).unwrap_err();
    assert!(matches!(err, QuantError::OutputIsInput { .. }), "{err}");
    let relative = dir.path().join(".").join("in.mlmodel");
    assert!(matches!(
        coremlq::quant::quantize(&file, &p, &relative, &RunOptions::default()),
        Err(QuantError::OutputIsInput { .. })
    ));
    #[cfg(unix)]
    {
        let link = dir.path().join("link.mlmodel");
        std::os::unix::fs::symlink(&input, &link).unwrap();
        assert!(coremlq::quant::quantize(&file, &p, &link, &RunOptions::default()).is_err());
    }
    let text = dir.path().join("notes.txt");
    std::fs::write(&text, "keep me").unwrap();
    assert!(matches!(
        coremlq::quant::quantize(&file, &p, &text, &RunOptions::default()),
        Err(QuantError::RefuseOverwrite { .. })
    ));
    assert_eq!(std::fs::read(&text).unwrap(), b"keep me");
    assert_eq!(std::fs::read(&input).unwrap(), before);
}

#[test]
fn cancellation_leaves_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let file = ModelFile::open(&fixture("multi.mlmodel")).unwrap();
    let p = plan::build(&file.index, &settings(4, Mode::Linear)).unwrap();
    let cancel = CancelToken::new();
    cancel.cancel();
    let opts = RunOptions {
        cancel,
        ..RunOptions::default()
    };
    let err =
        coremlq::quant::quantize(&file, &p, &dir.path().join("out.mlmodel"), &opts).unwrap_err();
    assert!(matches!(err, QuantError::Cancelled), "{err}");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn a_failing_tensor_leaves_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let file = ModelFile::open(&fixture("edge_inf.mlmodel")).unwrap();
    let p = plan::build(&file.index, &settings(16, Mode::Linear)).unwrap();
    let err = coremlq::quant::quantize(
        &file,
        &p,
        &dir.path().join("out.mlmodel"),
        &RunOptions::default(),
    )
    .unwrap_err();
    let QuantError::Plan(e) = &err else {
        panic!("{err}")
    };
    assert_eq!(e.kind, PlanErrorKind::Fp16Range);
    assert!(err.to_string().contains("edge_inf.mlmodel"), "{err}");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn overrides_give_mixed_precision_exact_name_beating_patterns() {
    let file = ModelFile::open(&fixture("multi.mlmodel")).unwrap();
    let mut s = settings(8, Mode::Linear);
    let ov = |pattern: &str, skip: bool, nbits: Option<u8>, mode: Option<Mode>| Override {
        pattern: pattern.into(),
        skip,
        nbits,
        mode,
        lut: None,
    };
    s.overrides = vec![
        ov("*", false, Some(4), None),
        ov("i*", false, Some(2), Some(Mode::LinearLut)),
        ov("ip", false, Some(16), None),
        ov("lst?", true, None, None),
    ];
    s.skip_layers = vec!["b?".into()];
    s.fuse_layers = false;
    let p = plan::build(&file.index, &s).unwrap();
    let by_name = |n: &str| {
        let l = file.index.layers.iter().position(|l| l.name == n).unwrap();
        (p.layers[l].decision.clone(), p.layers[l].reason.clone())
    };
    assert_eq!(
        by_name("conv").0,
        LayerDecision::Quantize(Target::Linear(4))
    );
    assert_eq!(by_name("ip").0, LayerDecision::Quantize(Target::Fp16));
    assert_eq!(by_name("lstm").0, LayerDecision::Skip);
    assert!(by_name("lstm").1.contains("lst?"));
    assert_eq!(by_name("bn").0, LayerDecision::Skip);
    assert!(by_name("bn").1.contains("skip_layers"));
    assert_eq!(by_name("relu").0, LayerDecision::NoWeights);
    let out = quantize_to_vec(&file, &p, &RunOptions::default()).unwrap();
    let re = ModelFile::from_bytes(file.path.clone(), out).unwrap();
    let storage = |layer: &str, field: &str| {
        let l = re
            .index
            .layers
            .iter()
            .position(|l| l.name == layer)
            .unwrap();
        re.index
            .layer_weights(l)
            .find(|w| w.field == field)
            .unwrap()
            .storage
    };
    assert_eq!(storage("conv", "weights"), Storage::Linear { nbits: 4 });
    assert_eq!(storage("ip", "weights"), Storage::Float16);
    assert_eq!(storage("bn", "gamma"), Storage::Float32);
    // Mixed 1–8-bit and fp16 targets: the version rises to at least 3.
    assert!(re.index.root().specification_version >= 3);
}

#[test]
fn fusion_plan_explains_itself_and_respects_model_outputs() {
    let file = ModelFile::open(&fixture("fuse_output_blob.mlmodel")).unwrap();
    let p = plan::build(&file.index, &settings(8, Mode::Linear)).unwrap();
    assert!(p.fusions.is_empty());
    assert!(
        p.notes.iter().any(|n| n.contains("model output")),
        "{:?}",
        p.notes
    );

    let file = ModelFile::open(&fixture("fuse_conv_bn.mlmodel")).unwrap();
    let p = plan::build(&file.index, &settings(4, Mode::Linear)).unwrap();
    assert_eq!(p.fusions.len(), 1);
    let bn = file
        .index
        .layers
        .iter()
        .position(|l| l.name == "bn")
        .unwrap();
    assert_eq!(p.layers[bn].decision, LayerDecision::FusedInto(0));
    assert!(p.layers[bn].reason.contains("fused into conv"));
    assert!(p.notes.iter().any(|n| n.contains("coremltools 9.0 fails")));
    let out = quantize_to_vec(&file, &p, &RunOptions::default()).unwrap();
    let re = ModelFile::from_bytes(file.path.clone(), out).unwrap();
    assert_eq!(re.index.layers.len(), 1);
    assert_eq!(re.index.layers[0].outputs, vec!["out".to_string()]);

    // No fusion when asked, and none for fp16.
    let mut s = settings(4, Mode::Linear);
    s.fuse_layers = false;
    assert!(plan::build(&file.index, &s).unwrap().fusions.is_empty());
    assert!(plan::build(&file.index, &settings(16, Mode::Linear))
        .unwrap()
        .fusions
        .is_empty());
}

#[test]
fn conv_batchnorm_fusion_uses_the_correct_formula() {
    let (file, v) = first_fusion("fuse_conv_bn.mlmodel");
    let read = |layer: &str, field: &str| {
        let l = file
            .index
            .layers
            .iter()
            .position(|l| l.name == layer)
            .unwrap();
        let w = file
            .index
            .layer_weights(l)
            .find(|w| w.field == field)
            .unwrap();
        coremlq::quant::fusion::read_values(&file.path, file.bytes(), w).unwrap()
    };
    let (w, b) = (read("conv", "weights"), read("conv", "bias"));
    let (g, beta, mean, var) = (
        read("bn", "gamma"),
        read("bn", "beta"),
        read("bn", "mean"),
        read("bn", "variance"),
    );
    let eps = match file.index.layers[1].params {
        coremlq::model::LayerParams::Batchnorm { epsilon, .. } => f64::from(epsilon),
        _ => unreachable!(),
    };
    let per = w.len() / g.len();
    for o in 0..g.len() {
        let f = f64::from(g[o]) / (f64::from(var[o]) + eps).sqrt();
        let want_b = ((f64::from(b[o]) - f64::from(mean[o])) * f + f64::from(beta[o])) as f32;
        assert_eq!(v.bias.as_ref().unwrap()[o], want_b);
        for i in 0..per {
            assert_eq!(
                v.weights.as_ref().unwrap()[o * per + i],
                (f64::from(w[o * per + i]) * f) as f32
            );
        }
    }
}

#[test]
fn never_converted_layers_are_reported() {
    let file = ModelFile::open(&fixture("float_only.mlmodel")).unwrap();
    let p = plan::build(&file.index, &settings(8, Mode::Linear)).unwrap();
    for (l, lp) in file.index.layers.iter().zip(&p.layers) {
        if lp.decision == LayerDecision::NotQuantizable {
            assert_eq!(lp.reason, "coremltools never converts these", "{}", l.name);
        }
        for &w in &l.weights {
            if lp.decision == LayerDecision::NotQuantizable {
                assert_eq!(p.tensors[w].action, TensorAction::Keep);
            }
        }
    }
}

#[test]
fn cli_quantizes_and_reports() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("ip.mlmodel");
    let input = fixture("inner_product.mlmodel");
    let o = common::run(&[
        "quantize",
        input.to_str().unwrap(),
        "--nbits",
        "3",
        "-o",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        std::fs::read(&out).unwrap(),
        std::fs::read(golden("inner_product__linear3.mlmodel")).unwrap()
    );
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(stdout.contains("->") && stdout.contains('%'), "{stdout}");
    assert!(
        o.stderr.is_empty(),
        "no progress bar in a pipe: {}",
        String::from_utf8_lossy(&o.stderr)
    );

    let o = common::run(&[
        "quantize",
        input.to_str().unwrap(),
        "--nbits",
        "8",
        "--mode",
        "linear_symmetric",
        "-o",
        out.to_str().unwrap(),
        "--json",
    ]);
    assert!(o.status.success());
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        v["bytes_after"].as_u64(),
        Some(std::fs::metadata(&out).unwrap().len())
    );
    assert_eq!(v["layers"][0]["decision"], "linear_symmetric 8-bit");

    let o = common::run(&[
        "quantize",
        input.to_str().unwrap(),
        "--nbits",
        "4",
        "--skip-layer-types",
        "innerProduct",
        "-o",
        out.to_str().unwrap(),
        "--json",
    ]);
    assert!(o.status.success());
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["layers"][0]["decision"], "skip");
}

#[test]
fn cli_errors_exit_1_with_coremltools_meaning() {
    let input = fixture("inner_product.mlmodel");
    let i = input.to_str().unwrap();
    for (args, text) in [
        (
            vec!["quantize", i, "--nbits", "8", "--mode", "foo"],
            "Invalid quantization mode",
        ),
        (
            vec!["quantize", i, "--nbits", "9"],
            "Only half precision (16-bit), 1 to 8-bit",
        ),
        (vec!["quantize", i], "Missing argument \"nbits\""),
        (
            vec!["quantize", i, "--nbits", "4", "--mode", "linear_symmetric"],
            "Symmetric quantization is only applicable for 8 bit",
        ),
        (
            vec!["quantize", i, "--nbits", "4", "--mode", "custom_lut"],
            "no lookup table",
        ),
        (
            vec![
                "quantize",
                i,
                "--nbits",
                "4",
                "--skip-layer-types",
                "activation",
            ],
            "is not supported",
        ),
        (
            vec!["quantize", i, "--nbits", "4", "-o", i],
            "refusing to overwrite the input",
        ),
    ] {
        let o = common::run(&args);
        assert_eq!(o.status.code(), Some(1), "{args:?}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains(text), "{args:?}: {err}");
    }
    let upd = fixture("updatable.mlmodel");
    let o = common::run(&[
        "quantize",
        upd.to_str().unwrap(),
        "--nbits",
        "16",
        "-o",
        "/nonexistent/x.mlmodel",
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr)
        .contains("updatable models cannot get quantized to FP16"));
}

/// xorshift64: deterministic pseudo-random numbers for the property tests.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn float(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
    }
}

#[test]
fn property_pack_unpack_round_trips_with_the_closed_form_length() {
    use coremlq::quant::kernels::pack;
    let mut rng = Rng(0x5eed);
    for _ in 0..500 {
        let nbits = 1 + rng.below(8) as u8;
        let n = rng.below(300) as usize;
        let idx: Vec<u8> = (0..n)
            .map(|_| (rng.next() as u8) & ((1u16 << nbits) - 1) as u8)
            .collect();
        let packed = pack::pack(&idx, nbits);
        assert_eq!(packed.len(), pack::packed_len(n, nbits));
        let want = if nbits == 8 {
            n
        } else {
            (n * nbits as usize).div_ceil(8).max(1)
        };
        assert_eq!(packed.len(), want);
        assert_eq!(
            pack::unpack(&packed, nbits, n).unwrap(),
            idx,
            "n={n} b={nbits}"
        );
    }
}

#[test]
fn property_kernels_respect_their_error_bounds_and_sizes() {
    use coremlq::quant::kernels::{self, Dialect, Params};
    let mut rng = Rng(0xfeed);
    for _ in 0..200 {
        let rows = 1 + rng.below(6);
        let cols = 1 + rng.below(40);
        let n = (rows * cols) as usize;
        let spread = [1e-3f32, 0.1, 1.0, 100.0][rng.below(4) as usize];
        let values: Vec<f32> = (0..n).map(|_| rng.float() * spread).collect();
        let shape = [rows, cols];
        let nbits = 1 + rng.below(8) as u8;
        for target in [
            Target::Linear(nbits),
            Target::LinearLut(nbits),
            Target::LinearSymmetric,
            Target::Fp16,
        ] {
            let q = kernels::quantize(&values, &shape, 0, &target, Dialect::F32).unwrap();
            let deq = kernels::dequantize(&q, &shape, 0).unwrap();
            assert_eq!(deq.len(), n);
            let channels = if target.is_linear() { rows } else { 1 };
            let size = estimate::weight_params_bytes(Some(&target), n as u64, channels, false);
            let data_field = if target == Target::Fp16 {
                estimate::half_field(n as u64)
            } else {
                estimate::raw_field(n as u64, q.nbits)
            };
            assert!(size >= data_field);
            if let (Target::Linear(_), Params::Linear { scale, .. }) = (&target, &q.params) {
                for (i, (w, d)) in values.iter().zip(&deq).enumerate() {
                    let s = scale[i / cols as usize];
                    if s > 1e-6 {
                        assert!(
                            (w - d).abs() <= s / 2.0 * 1.0001 + 1e-6,
                            "{w} vs {d} (scale {s})"
                        );
                    }
                }
            }
        }
    }
}

fn values_of(file: &ModelFile, layer: &str, field: &str) -> Vec<f32> {
    let l = file
        .index
        .layers
        .iter()
        .position(|l| l.name == layer)
        .unwrap();
    let w = file
        .index
        .layer_weights(l)
        .find(|w| w.field == field)
        .unwrap();
    coremlq::quant::fusion::read_values(&file.path, file.bytes(), w).unwrap()
}

#[test]
fn scale_fusion_fixes_coremltools_deconvolution_axis_and_unscaled_bias() {
    // §4 bug 8: deconvolution weights [kc, oc/g, kH, kW] are scaled along axis 1.
    let (file, v) = first_fusion("fuse_deconv_scale.mlmodel");
    let (w, s) = (
        values_of(&file, "deconv", "weights"),
        values_of(&file, "scale", "scale"),
    );
    let fused = v.weights.unwrap();
    // Shape [3, 2, 2, 2]: position i belongs to output channel (i / 4) % 2.
    for (i, x) in w.iter().enumerate() {
        assert_eq!(fused[i], x * s[(i / 4) % 2], "position {i}");
    }
    // §4 bug 9: a scale layer without bias still scales the producer's bias.
    let (file, v) = first_fusion("fuse_ip_scale.mlmodel");
    let (b, s) = (
        values_of(&file, "ip", "bias"),
        values_of(&file, "scale", "scale"),
    );
    let want: Vec<f32> = b.iter().zip(&s).map(|(b, s)| b * s).collect();
    assert_eq!(v.bias.unwrap(), want);
}

#[test]
fn fusion_of_half_precision_tensors_leaves_one_storage() {
    // §4 bug 7: coremltools keeps float16Value next to the new values; coremlq clears it.
    let file = ModelFile::open(&fixture("fp16_ip_bias.mlmodel")).unwrap();
    let p = plan::build(&file.index, &settings(8, Mode::Linear)).unwrap();
    let out = quantize_to_vec(&file, &p, &RunOptions::default()).unwrap();
    let re = ModelFile::from_bytes(file.path.clone(), out).unwrap();
    assert_eq!(re.index.layers.len(), 1);
    for w in &re.index.weights {
        assert_ne!(w.storage, Storage::Mixed, "{} holds two storages", w.field);
    }
    // Weights were float16 and not fused: they stay float16; the fused bias is quantized.
    let storages: Vec<Storage> = re.index.weights.iter().map(|w| w.storage).collect();
    assert_eq!(
        storages,
        vec![Storage::Float16, Storage::Linear { nbits: 8 }]
    );
}

#[path = "../benches/common/mod.rs"]
mod bench_models;

/// Writes a model of an `input`×`output` inner product followed by a 10×10 one to `path`.
fn large_then_small(path: &Path, input: u64, output: u64, seed: u64) {
    let layers = [
        bench_models::Layer::InnerProduct { input, output },
        bench_models::Layer::InnerProduct {
            input: 10,
            output: 10,
        },
    ];
    bench_models::write_model(path, &layers, seed).unwrap();
}

/// The model at `path` held in memory, under a name that is not on disk.
fn in_memory(path: &Path) -> ModelFile {
    ModelFile::from_bytes(
        PathBuf::from("not-on-disk.mlmodel"),
        std::fs::read(path).unwrap(),
    )
    .unwrap()
}

/// Asserts that every tensor of the `written` model is what the whole-tensor kernel makes
/// of the same tensor of `file` with `target`.
fn assert_each_tensor_is_the_kernel_s(file: &ModelFile, written: &Path, target: &Target) {
    let re = ModelFile::open(written).unwrap();
    assert_eq!(re.index.weights.len(), file.index.weights.len());
    for (w, r) in file.index.weights.iter().zip(&re.index.weights) {
        let values = file.float_values(w).unwrap();
        let dialect = coremlq::quant::kernels::Dialect::F32;
        let q =
            coremlq::quant::kernels::quantize(&values, &w.shape, w.axis, target, dialect).unwrap();
        if *target == Target::Fp16 {
            let halves = coremlq::model::index::half_values(re.bytes(), r);
            let got: Vec<u8> = halves.iter().flat_map(|h| h.to_le_bytes()).collect();
            assert!(got == q.data, "{target:?} {}", w.field);
            continue;
        }
        let want = coremlq::quant::kernels::dequantize(&q, &w.shape, w.axis).unwrap();
        let body = &re.bytes()[r.body.clone()];
        let got =
            coremlq::quant::kernels::dequantize_weight_params(body, &r.shape, r.axis).unwrap();
        assert!(got == want, "{target:?} {}", w.field);
    }
}

#[test]
fn large_unchanged_ranges_are_copied_exactly() {
    // A 1.4 MB tensor left alone (copied with positioned reads) next to a converted one.
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("big.mlmodel");
    large_then_small(&input, 600, 600, 3);
    let file = ModelFile::open(&input).unwrap();
    let mut s = settings(4, Mode::Linear);
    s.skip_layers = vec!["layer0".into()];
    let p = plan::build(&file.index, &s).unwrap();
    let out = dir.path().join("out.mlmodel");
    coremlq::quant::quantize(&file, &p, &out, &RunOptions::default()).unwrap();
    let written = std::fs::read(&out).unwrap();
    // The same plan run from memory (slices, no file) gives the same bytes.
    let mem = in_memory(&input);
    assert_eq!(
        quantize_to_vec(&mem, &p, &RunOptions::default()).unwrap(),
        written
    );
    let re = ModelFile::open(&out).unwrap();
    assert_eq!(re.index.weights[0].storage, Storage::Float32);
    assert_eq!(re.index.weights[2].storage, Storage::Linear { nbits: 4 });
    let a = &file.bytes()[file.index.weights[0].body.clone()];
    let b = &re.bytes()[re.index.weights[0].body.clone()];
    assert_eq!(a, b);
}

#[test]
fn pipeline_classifiers_are_quantized_and_the_plan_says_coremltools_cannot() {
    for name in ["pipeline_classifier.mlmodel", "pipeline_regressor.mlmodel"] {
        let file = ModelFile::open(&fixture(name)).unwrap();
        let p = plan::build(&file.index, &settings(8, Mode::Linear)).unwrap();
        assert!(
            p.notes
                .iter()
                .any(|n| n.contains("coremltools 9.0 cannot quantize")),
            "{:?}",
            p.notes
        );
        let out = quantize_to_vec(&file, &p, &RunOptions::default()).unwrap();
        let re = ModelFile::from_bytes(file.path.clone(), out).unwrap();
        let floats_before = file
            .index
            .weights
            .iter()
            .filter(|w| w.storage == Storage::Float32)
            .count();
        assert!(floats_before > 0);
        for w in &re.index.weights {
            assert_ne!(
                w.storage,
                Storage::Float32,
                "{name}: {} left float32",
                w.field
            );
        }
        // The container keeps its version (as coremltools does for plain pipelines); the
        // neural-network members rise to at least 3.
        assert_eq!(
            re.index.models[0].specification_version,
            file.index.models[0].specification_version
        );
        for m in re.index.models.iter().filter(|m| m.network.is_some()) {
            assert!(m.specification_version >= 3, "{name}");
        }
    }
}

/// The (done, total) of every progress report of a run.
type Reports = Arc<Mutex<Vec<(usize, usize)>>>;

/// Run options whose progress callback records each report's (done, total).
fn recording_progress() -> (RunOptions, Reports) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    let opts = RunOptions {
        progress: Some(Arc::new(move |p: &coremlq::quant::Progress| {
            sink.lock().unwrap().push((p.done, p.total))
        })),
        ..RunOptions::default()
    };
    (opts, seen)
}

#[test]
fn large_k_means_tensors_run_in_pairs_with_the_single_tensor_result() {
    // Four 90,000-weight layers (k-means tensors this large are converted two at a time,
    // the small biases in between going with the first of a pair) and an odd fifth one.
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("pairs.mlmodel");
    let layers: Vec<bench_models::Layer> = (0..5)
        .map(|_| bench_models::Layer::InnerProduct {
            input: 300,
            output: 300,
        })
        .collect();
    bench_models::write_model(&input, &layers, 7).unwrap();
    let file = ModelFile::open(&input).unwrap();
    let p = plan::build(&file.index, &settings(3, Mode::KmeansLut)).unwrap();
    let (opts, seen) = recording_progress();
    let out = dir.path().join("out.mlmodel");
    coremlq::quant::quantize(&file, &p, &out, &opts).unwrap();
    assert_eq!(
        *seen.lock().unwrap(),
        (1..=5).map(|d| (d, 5)).collect::<Vec<_>>(),
        "every layer announced once, in order"
    );
    // One thread (the pairs then run one after the other) writes the same bytes.
    let written = std::fs::read(&out).unwrap();
    let one = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap()
        .install(|| quantize_to_vec(&file, &p, &RunOptions::default()).unwrap());
    assert_eq!(one, written);
    // Every tensor is what the kernel makes of it alone.
    assert_each_tensor_is_the_kernel_s(&file, &out, &Target::KmeansLut(3));
}

#[test]
fn streamed_tensors_larger_than_a_chunk_are_written_whole_and_exact() {
    // A 17 MB tensor (mapped and read with positioned reads; its fp16 and 8-bit data leave
    // the kernels in several chunks) and a small layer after it.
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("streamed.mlmodel");
    large_then_small(&input, 2048, 2100, 5);
    let file = ModelFile::open(&input).unwrap();
    let mem = in_memory(&input);
    let single = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    for (nbits, mode, target) in [
        (16, Mode::Linear, Target::Fp16),
        (8, Mode::Linear, Target::Linear(8)),
        (3, Mode::Linear, Target::Linear(3)),
        (8, Mode::LinearSymmetric, Target::LinearSymmetric),
    ] {
        let p = plan::build(&file.index, &settings(nbits, mode)).unwrap();
        let out = dir.path().join("out.mlmodel");
        let report = coremlq::quant::quantize(&file, &p, &out, &RunOptions::default()).unwrap();
        let written = std::fs::read(&out).unwrap();
        assert_eq!(written.len() as u64, report.bytes_after, "{target:?}");
        // From memory (no file), and converted on the writing thread itself (a run started
        // inside the thread pool has no worker): the same bytes.
        let opts = RunOptions::default();
        assert_eq!(
            quantize_to_vec(&mem, &p, &opts).unwrap(),
            written,
            "{target:?}"
        );
        let inline = single.install(|| quantize_to_vec(&file, &p, &opts).unwrap());
        assert_eq!(inline, written, "{target:?}");
        // Every tensor is what the whole-tensor kernel makes of it.
        assert_each_tensor_is_the_kernel_s(&file, &out, &target);
    }
}

#[cfg(target_os = "linux")]
#[test]
fn a_model_out_of_the_page_cache_is_read_with_positioned_reads_to_the_same_bytes() {
    // Cached pages are read in place through the map; uncached ones with positioned reads
    // (read ahead by the kernel). Both give the same file.
    let dir = tempfile::tempdir_in(concat!(env!("CARGO_MANIFEST_DIR"), "/target")).unwrap();
    let input = dir.path().join("cold.mlmodel");
    large_then_small(&input, 2048, 2100, 9);
    let file = ModelFile::open(&input).unwrap();
    let all = 0..file.bytes().len();
    let _ = std::fs::read(&input).unwrap();
    assert!(
        file.resident(all.clone()),
        "a file just read is in the page cache"
    );
    let p = plan::build(&file.index, &settings(8, Mode::Linear)).unwrap();
    let opts = RunOptions::default();
    let hot = quantize_to_vec(&file, &p, &opts).unwrap();
    // Out of the page cache (clean pages not mapped by anyone are dropped).
    let f = std::fs::File::open(&input).unwrap();
    f.sync_all().unwrap();
    use std::os::unix::io::AsRawFd;
    // SAFETY: a plain advice on an open descriptor.
    unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
    let evicted = !file.resident(all);
    let cold = quantize_to_vec(&file, &p, &opts).unwrap();
    assert!(cold == hot, "evicted first: {evicted}");
    // This folder's file system drops pages on request, so the second run read cold pages.
    assert!(evicted, "the model stayed in the page cache");
}

#[test]
fn runs_started_inside_the_thread_pool_finish() {
    // Every pool thread quantizing at once (tensors large enough for the kernels to use the
    // pool themselves) must not leave the kernels without a thread to run on.
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("pool.mlmodel");
    let layers = [bench_models::Layer::InnerProduct {
        input: 600,
        output: 600,
    }];
    bench_models::write_model(&input, &layers, 11).unwrap();
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    let root = dir.path().to_path_buf();
    std::thread::spawn(move || {
        use rayon::prelude::*;
        let file = ModelFile::open(&root.join("pool.mlmodel")).unwrap();
        let p = plan::build(&file.index, &settings(8, Mode::Linear)).unwrap();
        let (opts, seen) = recording_progress();
        let outs: Vec<Vec<u8>> = (0..4)
            .into_par_iter()
            .map(|i| {
                let out = root.join(format!("out{i}.mlmodel"));
                coremlq::quant::quantize(&file, &p, &out, &opts).unwrap();
                std::fs::read(&out).unwrap()
            })
            .collect();
        let _ = done_tx.send((outs, seen.lock().unwrap().clone()));
    });
    let (outs, seen) = done_rx
        .recv_timeout(std::time::Duration::from_secs(120))
        .expect("four runs inside the pool finished");
    // The same bytes as a run from a plain thread, and each run announced its one layer.
    let file = ModelFile::open(&input).unwrap();
    let p = plan::build(&file.index, &settings(8, Mode::Linear)).unwrap();
    let want = quantize_to_vec(&file, &p, &RunOptions::default()).unwrap();
    assert!(outs.iter().all(|o| *o == want));
    assert_eq!(seen, vec![(1, 1); 4]);
}
