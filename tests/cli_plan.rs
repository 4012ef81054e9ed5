//! `coremlq plan`: the per-layer table, JSON, and refusal of configs with errors.

mod common;

use expect_test::expect;

fn plan(args: &[&str]) -> (i32, String) {
    let (code, stdout, _) = common::subcommand("plan", args);
    (code, stdout)
}

#[test]
fn table() {
    let (code, stdout) = plan(&["tests/data/config/valid_selector_mixed.quant.json"]);
    assert_eq!(code, 0);
    expect![[r#"
        model   tests/fixtures/models/selector_mixed.mlmodel
        output  tests/data/config/out/selector_mixed.8bit.mlmodel

        layer      type          action    nbits  mode              bytes        why
        conv       convolution   quantize  16     float16           549 → 277    fp16 (overrides "conv")
        bn         batchnorm     quantize  8      linear_symmetric  136 → 124    linear_symmetric 8-bit (overrides "bn")
        bias       bias          quantize  8      linear            34 → 31      linear 8-bit (default)
        scale      scale         skip      -      -                 68           skip_layers "scale"
        ip         innerProduct  quantize  4      linear_lut        2,417 → 457  linear_lut 4-bit (overrides "ip")
        embedding  embedding     skip      -      -                 165          selector: skip_layer_types contains "embedding"
        (4 layers without weights not shown; --all lists them)

        weights  3,369 → 1,122 bytes (9 tensors converted)
        file     3,876 → 1,629 bytes (42.0%, exact)
    "#]].assert_eq(&stdout);
}

#[test]
fn table_with_fusion_and_all_layers() {
    let (code, stdout) = plan(&["--all", "tests/data/config/nested_networks.quant.json"]);
    assert_eq!(code, 0);
    expect![[r#"
        model   tests/fixtures/models/branch_loop.mlmodel
        output  tests/fixtures/models/branch_loop.4bit.mlmodel

        layer       type            action      nbits  mode    bytes     why
        branch      branch          no weights  -      -       0         nested networks processed
        if_ip       innerProduct    quantize    2      linear  116 → 77  linear 2-bit (overrides "*_ip"); absorbs if_bias (bias added to the layer's bias)
        if_bias     bias            fused       -      -       18 → 0    fused into if_ip (bias added to the layer's bias)
        else_ip     innerProduct    quantize    2      linear  98 → 53   linear 2-bit (overrides "*_ip")
        loop        loop            no weights  -      -       0         selector: skip_layer_types contains "loop"
        cond_const  loadConstantND  skip        -      -       6         not reached by the walk
        body_ip     innerProduct    skip        -      -       84        not reached by the walk
        body_copy   copy            no weights  -      -       0         not reached by the walk
        head        innerProduct    skip        -      -       66        overrides "head": skip

        weights  388 → 286 bytes (3 tensors converted)
        file     811 → 674 bytes (83.1%, exact)
    "#]].assert_eq(&stdout);
}

#[test]
fn json() {
    let (code, stdout) = plan(&["--json", "tests/data/config/fused_layer.quant.json"]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&stdout).expect("json");
    for key in ["model", "output", "input_bytes", "output_bytes", "layers"] {
        assert!(v.get(key).is_some(), "missing {key}");
    }
    let layer = &v["layers"][0];
    for key in [
        "name",
        "type",
        "action",
        "nbits",
        "mode",
        "bytes_before",
        "bytes_after",
    ] {
        assert!(layer.get(key).is_some(), "layer lacks {key}");
    }
    assert_eq!(v["layers"][1]["action"], "fused");
    assert_eq!(v["layers"][1]["fused_into"], "conv");
    assert!(v["output_bytes"].as_u64() < v["input_bytes"].as_u64());
}

#[test]
fn config_with_errors_is_refused() {
    let (code, stdout) = plan(&["tests/data/config/luts.quant.json"]);
    assert_eq!(code, 1);
    assert!(stdout.contains("error[Q0403]"), "{stdout}");
    assert!(stdout.ends_with("errors: no plan\n"), "{stdout}");
}

#[test]
fn quality_lists_every_converted_tensor() {
    let (code, stdout) = plan(&[
        "--quality",
        "--json",
        "tests/data/config/fused_layer.quant.json",
    ]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&stdout).expect("json");
    let q = v["quality"].as_array().expect("quality array");
    assert_eq!(
        q.len(),
        v["tensors_converted"].as_u64().unwrap_or(0) as usize
    );
    for t in q {
        let snr = t["snr_db"].as_f64().expect("finite snr");
        assert!(snr > 30.0, "8-bit linear should be accurate: {t}");
        assert!(t["rel_rms"].as_f64().is_some_and(|r| r < 0.05), "{t}");
    }
    let (code, stdout) = plan(&["--quality", "tests/data/config/fused_layer.quant.json"]);
    assert_eq!(code, 0);
    assert!(stdout.contains("SNR dB"), "{stdout}");
}
