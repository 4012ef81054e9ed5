//! Analysis tests on small hand-built model indexes (the data-driven tests against real
//! model files are in `tests/config_fixtures.rs`).

use expect_test::{expect, Expect};

use super::*;
use crate::config::render::compact;
use crate::config::syntax::parse;
use crate::model::{LayerInfo, LayerParams, ModelInfo, NetworkInfo, Storage, WeightInfo};

/// A model with a conv (64×32×3×3, bias) → batchnorm chain, an innerProduct `dense_1`, a
/// depthwise conv and a PReLU activation.
fn index() -> ModelIndex {
    let mut ix = ModelIndex {
        models: vec![ModelInfo {
            model_type: "neuralNetwork".into(),
            network: Some(0),
            specification_version: 4,
            ..ModelInfo::default()
        }],
        networks: vec![NetworkInfo::default()],
        ..ModelIndex::default()
    };
    let conv = LayerParams::Convolution {
        output_channels: 64,
        kernel_channels: 32,
        n_groups: 1,
        kernel_size: vec![3, 3],
        is_deconvolution: false,
        has_bias: true,
    };
    add_layer(
        &mut ix,
        "conv1",
        "convolution",
        conv,
        &[("weights", 64 * 32 * 9), ("bias", 64)],
        &["in"],
        &["c1"],
    );
    let bn = LayerParams::Batchnorm {
        channels: 64,
        compute_mean_var: false,
        instance_normalization: false,
        epsilon: 1e-5,
    };
    add_layer(
        &mut ix,
        "bn1",
        "batchnorm",
        bn,
        &[("gamma", 64), ("beta", 64), ("mean", 64), ("variance", 64)],
        &["c1"],
        &["b1"],
    );
    let dw = LayerParams::Convolution {
        output_channels: 64,
        kernel_channels: 1,
        n_groups: 64,
        kernel_size: vec![3, 3],
        is_deconvolution: false,
        has_bias: false,
    };
    add_layer(
        &mut ix,
        "dw_conv",
        "convolution",
        dw,
        &[("weights", 64 * 9)],
        &["b1"],
        &["d1"],
    );
    let ip = LayerParams::InnerProduct {
        input_channels: 576,
        output_channels: 10,
        has_bias: true,
        int8_dynamic_quantize: false,
    };
    add_layer(
        &mut ix,
        "dense_1",
        "innerProduct",
        ip,
        &[("weights", 5760), ("bias", 10)],
        &["d1"],
        &["out"],
    );
    add_layer(
        &mut ix,
        "relu",
        "activation",
        LayerParams::Other,
        &[],
        &["out"],
        &["act"],
    );
    ix
}

fn add_layer(
    ix: &mut ModelIndex,
    name: &str,
    ty: &str,
    params: LayerParams,
    weights: &[(&str, u64)],
    inputs: &[&str],
    outputs: &[&str],
) {
    let id = ix.layers.len();
    let mut layer = LayerInfo {
        name: name.into(),
        layer_type: ty.into(),
        params,
        inputs: inputs.iter().map(|s| s.to_string()).collect(),
        outputs: outputs.iter().map(|s| s.to_string()).collect(),
        ..LayerInfo::default()
    };
    for (field, n) in weights {
        layer.weights.push(ix.weights.len());
        let bytes = (4 * n + 3) as usize;
        ix.weights.push(WeightInfo {
            layer: id,
            field: field.to_string(),
            storage: Storage::Float32,
            count: *n,
            body: 0..bytes,
            ..WeightInfo::default()
        });
    }
    ix.networks[0].layers.push(id);
    ix.layers.push(layer);
}

fn run(text: &str, status: ModelStatus<'_>, output: &OutputStatus) -> String {
    let p = parse(text);
    let ctx = Context {
        config_dir: Some(std::path::Path::new("/ws/cfg")),
        workspace: Some(std::path::Path::new("/ws")),
        model: status,
        output,
        skip_plan: false,
    };
    let a = analyze(&p, &ctx);
    let mut s = compact(text, &a.diagnostics);
    if let Some(settings) = &a.settings {
        let _ =
            std::fmt::Write::write_fmt(&mut s, format_args!("settings: {:?}\n", settings.default));
    }
    s
}

fn check(text: &str, expect: Expect) {
    let ix = index();
    expect.assert_eq(&run(text, ModelStatus::Loaded(&ix), &OutputStatus::Absent));
}

#[test]
fn valid_config() {
    check(
        r#"{"model": "m.mlmodel", "nbits": 8, "quantization_mode": "linear_symmetric",
            "selector": {"skip_layer_types": ["depthwiseConv"], "skip_layers": ["dense_1"]},
            "layers": {"conv*": {"nbits": 4, "quantization_mode": "linear"}}}"#,
        expect![[r#"
            settings: Choice { nbits: 8, mode: LinearSymmetric, lut: None }
        "#]],
    );
}

#[test]
fn keys_and_types() {
    check(
        r#"{"model": "m.mlmodel", "nbit": 8, "nbits": "8", "fuse_layers": 1, "model": "x",
            "selector": {"skip_layer": [], "skip_layers": [3]}, "layers": {"conv1": 4, "bn1": {"bits": 2}}}"#,
        expect![[r#"
            error Q0102 1:24-1:30 unknown key `nbit` in the config
                help: `nbits` is already given in this object; remove this key
            error Q0104 1:44-1:47 expected an integer, found a string
                fix: Replace with 8 -> "8"
                help: `nbits`: Bits per weight: 16 (float16) or 1 to 8
            error Q0104 1:64-1:65 expected a boolean, found an integer
                help: `fuse_layers`: Fold conv/innerProduct→scale/bias, batchnorm→scale, conv→batchnorm first
            error Q0103 1:67-1:74 duplicate key `model`
                related 1:2-1:9: first given here (this one is used)
            error Q0102 2:26-2:38 unknown key `skip_layer` in `selector`
                fix: Replace with "skip_layer_types" -> "\"skip_layer_types\""
                help: did you mean `skip_layer_types`?
            error Q0104 2:60-2:61 expected a string, found an integer
            error Q0104 2:85-2:86 expected an object (`{"nbits": …}` or `{"skip": true}`), found an integer
            error Q0102 2:96-2:102 unknown key `bits` in a `layers` entry
                fix: Replace with "nbits" -> "\"nbits\""
                help: did you mean `nbits`?
        "#]],
    );
}

#[test]
fn required_keys_and_not_an_object() {
    check(
        "{}",
        expect![[r#"
            error Q0105 1:1-1:2 missing required key `model`
                fix: Add "model": "model.mlmodel" -> "\n  \"model\": \"model.mlmodel\","
                help: add `"model": …`: The .mlmodel file to quantize
            error Q0105 1:1-1:2 missing required key `nbits`
                fix: Add "nbits": 8 -> "\n  \"nbits\": 8,"
                help: add `"nbits": …`: Bits per weight: 16 (float16) or 1 to 8
        "#]],
    );
    check(
        "[1]",
        expect![[r#"
        error Q0101 1:1-1:4 a config is a JSON object, found an array
    "#]],
    );
}

#[test]
fn nbits_and_modes() {
    check(
        r#"{"model": "m.mlmodel", "nbits": 9, "quantization_mode": "kmeans"}"#,
        expect![[r#"
        error Q0301 1:33-1:34 nbits must be 16 (float16) or 1 to 8, found 9
            fix: Use 8 -> "8"
            fix: Use 7 -> "7"
            help: Only half precision (16-bit), 1 to 8-bit quantization is supported
        warning Q0303 1:57-1:65 `kmeans` is coremltools' deprecated alias of `kmeans_lut`
            fix: Replace with "kmeans_lut" -> "\"kmeans_lut\""
    "#]],
    );
    check(
        r#"{"model": "m.mlmodel", "nbits": 8.5, "quantization_mode": "linera"}"#,
        expect![[r#"
        error Q0301 1:33-1:36 nbits must be an integer (16, or 1 to 8), found 8.5
            fix: Use 8 -> "8"
            fix: Use 7 -> "7"
            help: Only half precision (16-bit), 1 to 8-bit quantization is supported
        error Q0302 1:59-1:67 Invalid quantization mode "linera": quantization_mode must be one of linear, linear_symmetric, linear_lut, kmeans_lut, custom_lut, dequantization
            fix: Replace with "linear" -> "\"linear\""
    "#]],
    );
    check(
        r#"{"model": "m.mlmodel", "nbits": 4, "quantization_mode": "linear_symmetric"}"#,
        expect![[r#"
        error Q0304 1:57-1:75 Symmetric quantization is only applicable for 8 bit linear: `linear_symmetric` needs nbits 8, not 4
            fix: Set nbits to 8 -> "8"
            fix: Use "linear" -> "\"linear\""
    "#]],
    );
    check(
        r#"{"model": "m.mlmodel", "nbits": 16, "quantization_mode": "linear_lut"}"#,
        expect![[r#"
        hint Q0305 1:58-1:70 nbits 16 converts weights to float16: quantization_mode `linear_lut` is ignored
        settings: Choice { nbits: 16, mode: LinearLut, lut: None }
    "#]],
    );
    check(
        r#"{"model": "m.mlmodel", "nbits": 8, "quantization_mode": "linear_symmetric", "layers": {"dense_1": {"nbits": 4}}}"#,
        expect![[r#"
            error Q0304 1:109-1:110 Symmetric quantization is only applicable for 8 bit linear: `linear_symmetric` needs nbits 8, not 4
                fix: Set nbits to 8 -> "8"
        "#]],
    );
}

#[test]
fn luts() {
    check(
        r#"{"model": "m.mlmodel", "nbits": 2, "quantization_mode": "custom_lut"}"#,
        expect![[r#"
        error Q0401 1:57-1:69 `custom_lut` needs a `lut` of 2^2 = 4 numbers
            help: add `"lut": [ … 4 numbers … ]`
    "#]],
    );
    check(
        r#"{"model": "m.mlmodel", "nbits": 1, "quantization_mode": "custom_lut", "lut": [0, 1, 2]}"#,
        expect![[r#"
        error Q0403 1:78-1:87 `lut` has 3 entries; with nbits 1 it needs exactly 2^1 = 2
    "#]],
    );
    check(
        r#"{"model": "m.mlmodel", "nbits": 1, "quantization_mode": "custom_lut", "lut": [1e39, "a"]}"#,
        expect![[r#"
        error Q0404 1:79-1:83 lut entries must be finite float32 numbers; 1e39 is not
        error Q0104 1:85-1:88 expected a number, found a string
    "#]],
    );
    check(
        r#"{"model": "m.mlmodel", "nbits": 1, "lut": [0, 1]}"#,
        expect![[r#"
        warning Q0402 1:36-1:41 `lut` is only used with `custom_lut`; quantization_mode is `linear`
            help: remove `lut`, or set "quantization_mode": "custom_lut"
        settings: Choice { nbits: 1, mode: Linear, lut: Some([0.0, 1.0]) }
    "#]],
    );
    check(
        r#"{"model": "m.mlmodel", "nbits": 1, "quantization_mode": "custom_lut", "lut": [-1, 1], "layers": {"dense_1": {"nbits": 2}}}"#,
        expect![[r#"
            error Q0403 1:119-1:120 `lut` has 2 entries; with nbits 2 it needs exactly 2^2 = 4
        "#]],
    );
}

#[test]
fn selector_values() {
    check(
        r#"{"model": "m.mlmodel", "nbits": 8, "selector": {"skip_layer_types": ["Convolution", "activation", "embedding", "bias"],
            "minimum_conv_kernel_channels": -1, "minimum_conv_weight_count": 1.5}}"#,
        expect![[r#"
            error Q0501 1:70-1:83 `Convolution` is not a layer type
                fix: Replace with "convolution" -> "\"convolution\""
                help: Supported quantization layers: convolution, innerProduct, embedding, embeddingND, batchnorm, scale, bias, loadConstant, loadConstantND, simpleRecurrent, gru, uniDirectionalLSTM, biDirectionalLSTM, batchedMatmul, depthwiseConv, loop, branch
            error Q0501 1:85-1:97 `activation` layers carry no weights that quantize_weights converts: the selector cannot skip them
                help: Supported quantization layers: convolution, innerProduct, embedding, embeddingND, batchnorm, scale, bias, loadConstant, loadConstantND, simpleRecurrent, gru, uniDirectionalLSTM, biDirectionalLSTM, batchedMatmul, depthwiseConv, loop, branch
            warning Q0502 1:99-1:110 the model has no `embedding` layer: this entry has no effect
            error Q0505 2:45-2:47 `minimum_conv_kernel_channels` must be an integer ≥ 0; -1 is negative
            error Q0505 2:78-2:81 `minimum_conv_weight_count` must be an integer ≥ 0; 1.5 is not an integer
        "#]],
    );
}

#[test]
fn layer_names() {
    check(
        r#"{"model": "m.mlmodel", "nbits": 8, "selector": {"skip_layers": ["dense1", "fc*", "conv?"]},
            "layers": {"Dense_1": {"skip": true, "nbits": 4}}}"#,
        expect![[r#"
            error Q0503 1:65-1:73 the model has no layer named `dense1`
                fix: Replace with "dense_1" -> "\"dense_1\""
                help: did you mean `dense_1`?
            warning Q0504 1:75-1:80 pattern `fc*` matches no layer of the model
            error Q0503 2:24-2:33 the model has no layer named `Dense_1`
                fix: Replace with "dense_1" -> "\"dense_1\""
                help: did you mean `dense_1`?
            hint Q0507 2:50-2:57 `nbits` has no effect: this entry has `"skip": true`
        "#]],
    );
}

#[test]
fn fused_layers_and_nothing_quantized() {
    check(
        r#"{"model": "m.mlmodel", "nbits": 8, "layers": {"bn?": {"nbits": 4}, "dw_conv": {"skip": true}}}"#,
        expect![[r#"
            warning Q0506 1:47-1:52 every layer `bn?` matches is folded into its producer by layer fusion and deleted (`bn1` into `conv1`): this entry has no effect
                help: set "fuse_layers": false to keep the layer (coremltools always fuses before 1-8-bit quantization)
            settings: Choice { nbits: 8, mode: Linear, lut: None }
        "#]],
    );
    check(
        r#"{"model": "m.mlmodel", "nbits": 8, "selector": {"skip_layers": ["bn1", "conv1", "dw_conv", "dense_1"]}}"#,
        expect![[r#"
            warning Q0701 1:36-1:46 this config quantizes nothing: every one of the 5 layers is skipped or left as it is
            settings: Choice { nbits: 8, mode: Linear, lut: None }
        "#]],
    );
}

#[test]
fn model_statuses() {
    let text = r#"{"model": "m.mlmodel", "nbits": 8, "selector": {"skip_layers": ["nope"]}}"#;
    let absent = OutputStatus::Absent;
    let out = [
        run(text, ModelStatus::NotGiven, &absent),
        run(text, ModelStatus::NotFound, &absent),
        run(text, ModelStatus::Unreadable("permission denied"), &absent),
        run(
            text,
            ModelStatus::Corrupt {
                message: "truncated varint",
                offset: 1234,
            },
            &absent,
        ),
        run(text, ModelStatus::NotAModel("is a folder"), &absent),
        run(
            r#"{"model": " ", "nbits": 8}"#,
            ModelStatus::NotGiven,
            &absent,
        ),
    ];
    expect![[r#"
        settings: Choice { nbits: 8, mode: Linear, lut: None }
        --
        error Q0201 1:11-1:22 model file `m.mlmodel` not found
            help: relative paths start at the folder holding the config
        --
        error Q0202 1:11-1:22 `m.mlmodel` cannot be read: permission denied
        --
        error Q0203 1:11-1:22 `m.mlmodel` is truncated or corrupt: byte 1234: truncated varint
        --
        error Q0204 1:11-1:22 `m.mlmodel` is a folder
        --
        error Q0201 1:11-1:14 `model` is empty: name the .mlmodel file to quantize
    "#]]
    .assert_eq(&out.join("--\n"));
}

#[test]
fn model_types() {
    let mut ix = index();
    let text = r#"{"model": "m.mlmodel", "nbits": 8}"#;
    let mut out = Vec::new();
    for ty in ["mlProgram", "treeEnsembleClassifier", "pipeline", ""] {
        ix.models[0].model_type = ty.into();
        ix.networks.clear();
        out.push(run(text, ModelStatus::Loaded(&ix), &OutputStatus::Absent));
    }
    expect![[r#"
        error Q0205 1:11-1:22 `m.mlmodel` is an ML Program (mlProgram): quantize_weights only handles neural networks
            help: compress ML Programs with coremltools.optimize.coreml (linear_quantize_weights, palettize_weights)
        --
        error Q0205 1:11-1:22 `m.mlmodel` is a tree ensemble (treeEnsembleClassifier), not a neural network: it has no weights quantize_weights converts
            help: only neural networks (neuralNetwork, neuralNetworkClassifier, neuralNetworkRegressor) and pipelines holding them have weights that quantize_weights converts
        --
        error Q0205 1:11-1:22 `m.mlmodel` is a pipeline (pipeline) without any neural network: nothing to quantize
            help: only neural networks (neuralNetwork, neuralNetworkClassifier, neuralNetworkRegressor) and pipelines holding them have weights that quantize_weights converts
        --
        error Q0204 1:11-1:22 `m.mlmodel` is not a Core ML model: it has no model type
    "#]].assert_eq(&out.join("--\n"));
}

#[test]
fn updatable_and_already_quantized() {
    let mut ix = index();
    ix.models[0].is_updatable = true;
    ix.layers[3].is_updatable = true;
    ix.weights[0].storage = Storage::Linear { nbits: 8 };
    let out = [
        run(
            r#"{"model": "m.mlmodel", "nbits": 16}"#,
            ModelStatus::Loaded(&ix),
            &OutputStatus::Absent,
        ),
        run(
            r#"{"model": "m.mlmodel", "nbits": 8, "layers": {"dense_*": {"nbits": 4}}}"#,
            ModelStatus::Loaded(&ix),
            &OutputStatus::Absent,
        ),
    ];
    expect![[r#"
        warning Q0206 1:11-1:22 `m.mlmodel` is already quantized: 1 of 9 weight tensors are stored as linear 8-bit
            help: quantize_weights leaves such tensors as they are; use "quantization_mode": "dequantization" to restore float32
        error Q0207 1:33-1:35 updatable models cannot get quantized to FP16.
            help: coremltools refuses fp16 for updatable models; use 1 to 8 bits, or a model without isUpdatable
        --
        warning Q0206 1:11-1:22 `m.mlmodel` is already quantized: 1 of 9 weight tensors are stored as linear 8-bit
            help: quantize_weights leaves such tensors as they are; use "quantization_mode": "dequantization" to restore float32
        error Q0702 1:11-1:22 layer "conv1": No values found in input. Please make sure either `floatValue` or `float16Value` of the input is set (fusing conv1 -> bn1; run without layer fusion to quantize this model)
            help: set "fuse_layers": false
    "#]].assert_eq(&out.join("--\n"));
}

#[test]
fn outputs() {
    let ix = index();
    let st = || ModelStatus::Loaded(&ix);
    let out = [
        run(
            r#"{"model": "m.mlmodel", "output": "./m.mlmodel", "nbits": 8}"#,
            st(),
            &OutputStatus::Absent,
        ),
        run(
            r#"{"model": "m.mlmodel", "output": "../../elsewhere/q.mlmodel", "nbits": 8}"#,
            st(),
            &OutputStatus::Absent,
        ),
        run(
            r#"{"model": "m.mlmodel", "output": "notes.txt", "nbits": 8}"#,
            st(),
            &OutputStatus::NotAModel("a text file".into()),
        ),
        run(
            r#"{"model": "m.mlmodel", "nbits": 8}"#,
            st(),
            &OutputStatus::NotAModel("a folder".into()),
        ),
    ];
    expect![[r#"
        error Q0601 1:34-1:47 `output` is the model itself: the input model is never overwritten
            help: choose another file name, or remove `output` to use the default
        --
        warning Q0602 1:34-1:61 `../../elsewhere/q.mlmodel` is outside the workspace
        settings: Choice { nbits: 8, mode: Linear, lut: None }
        --
        error Q0603 1:34-1:45 `output` `notes.txt` exists and is not a Core ML model (a text file): quantizing would destroy it
            help: choose another `output`
        --
        error Q0603 1:11-1:22 the default output `m.8bit.mlmodel` exists and is not a Core ML model (a folder): quantizing would destroy it
            help: choose another `output`
    "#]].assert_eq(&out.join("--\n"));
}

#[test]
fn syntax_errors_do_not_stop_the_analysis() {
    check(
        r#"{"model": "m.mlmodel", "nbits": 3, "quantization_mode": "lin", "selector": {"skip_"#,
        expect![[r#"
        error Q0302 1:57-1:62 Invalid quantization mode "lin": quantization_mode must be one of linear, linear_symmetric, linear_lut, kmeans_lut, custom_lut, dequantization
            fix: Replace with "linear" -> "\"linear\""
            fix: Replace with "linear_lut" -> "\"linear_lut\""
            fix: Replace with "linear_symmetric" -> "\"linear_symmetric\""
        error Q0102 1:77-1:83 unknown key `skip_` in `selector`
            fix: Replace with "skip_layers" -> "\"skip_layers\""
            fix: Replace with "skip_layer_types" -> "\"skip_layer_types\""
            help: did you mean `skip_layers` or `skip_layer_types`?
        error Q0003 1:83-1:83 expected a value for `skip_`
        error Q0004 1:83-1:83 expected `:` after the key
        error Q0006 1:83-1:83 object is not closed: missing `}`
        error Q0008 1:83-1:83 string is not closed: missing `"`
    "#]],
    );
}

#[test]
fn resolved_paths_and_settings() {
    let ix = index();
    let p = parse(
        r#"{"model": "../models/m.mlmodel", "nbits": 16, "layers": {"dense_1": {"skip": true}}}"#,
    );
    let ctx = Context {
        config_dir: Some(std::path::Path::new("/ws/cfg")),
        model: ModelStatus::Loaded(&ix),
        ..Context::default()
    };
    let a = analyze(&p, &ctx);
    assert!(!a.has_errors(), "{:?}", a.diagnostics);
    assert_eq!(
        a.paths.output.as_deref(),
        Some(std::path::Path::new("/ws/models/m.fp16.mlmodel"))
    );
    let s = a.settings.expect("settings");
    assert_eq!(s.overrides.len(), 1);
    assert!(s.overrides[0].skip);
    assert_eq!(s.selector, crate::quant::Selector::Default);
}

/// Random edits of valid configs: the analysis never panics and every range (diagnostics,
/// fixes, related) lies on char boundaries of the text.
#[test]
fn random_edits_never_panic() {
    const SEEDS: &[&str] = &[
        r#"{"model": "m.mlmodel", "output": "o.mlmodel", "nbits": 2, "quantization_mode": "custom_lut",
           "lut": [1, 2, 3, 4], "selector": {"skip_layer_types": ["bias", "depthwiseConv"],
           "minimum_conv_kernel_channels": 4, "minimum_conv_weight_count": 0, "skip_layers": ["dense_1", "bn*"]},
           "layers": {"conv1": {"nbits": 8, "quantization_mode": "linear_symmetric"}, "b?1": {"skip": true},
           "dw_*": {"nbits": 16, "lut": [0]}}, "fuse_layers": true}"#,
        r#"{"model": "m.mlmodel", "nbits": 16, "layers": {"dense_1": {"nbits": 4, "quantization_mode": "kmeans"}}}"#,
    ];
    const PIECES: &[&str] = &[
        "{",
        "}",
        "[",
        "]",
        ":",
        ",",
        "\"",
        "\\",
        "//",
        "/*",
        "\n",
        "1",
        "-1",
        "16",
        "9",
        "1e39",
        "0.5",
        "true",
        "null",
        "\"nbits\"",
        "\"skip\"",
        "\"layers\"",
        "\"linear\"",
        "é",
        "\"conv1\"",
        "*",
    ];
    let ix = index();
    let mut state: u64 = 0x2545_F491_4F6C_DD1D;
    let mut next = |n: usize| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state % n.max(1) as u64) as usize
    };
    for round in 0..1500 {
        let mut text = SEEDS[round % SEEDS.len()].to_string();
        for _ in 0..1 + next(4) {
            let mut at = next(text.len() + 1);
            while !text.is_char_boundary(at) {
                at -= 1;
            }
            if next(2) == 0 {
                text.insert_str(at, PIECES[next(PIECES.len())]);
            } else {
                let mut end = (at + 1 + next(6)).min(text.len());
                while !text.is_char_boundary(end) {
                    end += 1;
                }
                text.replace_range(at..end, "");
            }
        }
        let p = parse(&text);
        let out = OutputStatus::Absent;
        let ctx = Context {
            model: ModelStatus::Loaded(&ix),
            output: &out,
            ..Context::default()
        };
        let a = analyze(&p, &ctx);
        let ok = |r: crate::config::syntax::TextRange| {
            r.start <= r.end
                && r.end <= text.len()
                && text.is_char_boundary(r.start)
                && text.is_char_boundary(r.end)
        };
        for d in &a.diagnostics {
            assert!(ok(d.range), "{d:?} in {text:?}");
            assert!(
                d.fixes.iter().flat_map(|f| &f.edits).all(|e| ok(e.range)),
                "{d:?}"
            );
            assert!(d.related.iter().all(|r| ok(r.range)), "{d:?}");
        }
        assert_eq!(
            a.settings.is_some(),
            !a.has_errors() && a.settings.is_some()
        );
    }
}
