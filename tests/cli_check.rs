//! `coremlq check`: exit codes, rustc-style output and JSON.

mod common;

use expect_test::expect;

fn check(args: &[&str]) -> (i32, String, String) {
    common::subcommand("check", args)
}

#[test]
fn clean_config_exits_zero() {
    let (code, stdout, _) = check(&["tests/data/config/valid_selector_mixed.quant.json"]);
    assert_eq!(code, 0);
    expect![[r#"
        ok: 0 errors, 0 warnings in 1 config
    "#]]
    .assert_eq(&stdout);
}

#[test]
fn errors_are_reported_rustc_style_and_exit_one() {
    let (code, stdout, _) = check(&[
        "tests/data/config/nbits_and_modes.quant.json",
        "tests/data/config/fused_layer.quant.json",
    ]);
    assert_eq!(code, 1);
    expect![[r#"
        error[Q0301]: nbits must be 16 (float16) or 1 to 8, found 9
         --> tests/data/config/nbits_and_modes.quant.json:3:12
          |
        3 |   "nbits": 9,
          |            ^
          = help: Only half precision (16-bit), 1 to 8-bit quantization is supported
          = fix: Use 8
          = fix: Use 7

        warning[Q0303]: `kmeans` is coremltools' deprecated alias of `kmeans_lut`
         --> tests/data/config/nbits_and_modes.quant.json:4:24
          |
        4 |   "quantization_mode": "kmeans",
          |                        ^^^^^^^^
          = fix: Replace with "kmeans_lut"

        error[Q0304]: Symmetric quantization is only applicable for 8 bit linear: `linear_symmetric` needs nbits 8, not 4
         --> tests/data/config/nbits_and_modes.quant.json:6:48
          |
        6 |     "conv": { "nbits": 4, "quantization_mode": "linear_symmetric" },
          |                                                ^^^^^^^^^^^^^^^^^^
          = fix: Set nbits to 8
          = fix: Use "linear"

        hint[Q0305]: nbits 16 converts weights to float16: quantization_mode `linear_lut` is ignored
         --> tests/data/config/nbits_and_modes.quant.json:7:47
          |
        7 |     "ip": { "nbits": 16, "quantization_mode": "linear_lut" },
          |                                               ^^^^^^^^^^^^

        error[Q0302]: Invalid quantization mode "lut": quantization_mode must be one of linear, linear_symmetric, linear_lut, kmeans_lut, custom_lut, dequantization
         --> tests/data/config/nbits_and_modes.quant.json:8:34
          |
        8 |     "bn": { "quantization_mode": "lut" },
          |                                  ^^^^^
          = fix: Replace with "custom_lut"
          = fix: Replace with "kmeans_lut"
          = fix: Replace with "linear_lut"

        error[Q0301]: nbits must be an integer (16, or 1 to 8), found 2.5
         --> tests/data/config/nbits_and_modes.quant.json:9:25
          |
        9 |     "scale": { "nbits": 2.5 }
          |                         ^^^
          = help: Only half precision (16-bit), 1 to 8-bit quantization is supported
          = fix: Use 2
          = fix: Use 3

        warning[Q0506]: layer `bn` is folded into `conv` by layer fusion and deleted: this entry has no effect
         --> tests/data/config/fused_layer.quant.json:5:15
          |
        5 |   "layers": { "bn": { "nbits": 4 } }
          |               ^^^^
          = help: set "fuse_layers": false to keep the layer (coremltools always fuses before 1-8-bit quantization)

        error: 4 errors, 2 warnings in 2 configs
    "#]].assert_eq(&stdout);
}

#[test]
fn warnings_alone_exit_zero() {
    let (code, stdout, _) = check(&["tests/data/config/quantizes_nothing.quant.json"]);
    assert_eq!(code, 0);
    expect![[r#"
        warning[Q0701]: this config quantizes nothing: every one of the 1 layers is skipped or left as it is
         --> tests/data/config/quantizes_nothing.quant.json:1:62
          |
        1 | { "model": "../../fixtures/models/conv.mlmodel", "nbits": 8, "selector": { "skip_layer_types": ["convolution"] } }
          |                                                              ^^^^^^^^^^

        ok: 0 errors, 1 warning in 1 config
    "#]].assert_eq(&stdout);
}

#[test]
fn outputs_outside_the_workspace_are_errors() {
    let config = "tests/data/config/output_outside_workspace.quant.json";
    // The given workspace, and by default the repository holding the config.
    for args in [&["--workspace", "tests/data", config][..], &[config][..]] {
        let (code, stdout, _) = check(args);
        assert_eq!(code, 1, "{args:?}: {stdout}");
        assert!(stdout.contains("error[Q0602]"), "{args:?}: {stdout}");
        assert!(stdout.contains("--allow-outside-workspace"), "{stdout}");
    }
    let (code, stdout, _) = check(&["--allow-outside-workspace", config]);
    assert_eq!(code, 0, "{stdout}");
    assert!(!stdout.contains("Q0602"), "{stdout}");
}

#[test]
fn json_output() {
    let (code, stdout, _) = check(&["--json", "tests/data/config/kmeans_alias.quant.json"]);
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&stdout).expect("json");
    expect![[r#"
        [
          {
            "diagnostics": [
              {
                "code": "Q0303",
                "end": {
                  "column": 91,
                  "line": 1,
                  "offset": 90
                },
                "fixes": [
                  {
                    "edits": [
                      {
                        "end": 90,
                        "start": 82,
                        "text": "\"kmeans_lut\""
                      }
                    ],
                    "title": "Replace with \"kmeans_lut\""
                  }
                ],
                "help": null,
                "message": "`kmeans` is coremltools' deprecated alias of `kmeans_lut`",
                "name": "deprecated-mode",
                "related": [],
                "severity": "warning",
                "start": {
                  "column": 83,
                  "line": 1,
                  "offset": 82
                }
              }
            ],
            "file": "tests/data/config/kmeans_alias.quant.json"
          }
        ]"#]]
    .assert_eq(&serde_json::to_string_pretty(&v).unwrap_or_default());
}

#[test]
fn unreadable_config_fails() {
    let (code, _, stderr) = check(&["tests/data/config/no_such.quant.json"]);
    assert_eq!(code, 1);
    assert!(stderr.contains("cannot read the config"), "{stderr}");
}

#[test]
fn folders_are_searched_for_configs() {
    let (code, stdout, _) = check(&["tests/data/config"]);
    assert_eq!(code, 1);
    let configs = std::fs::read_dir("tests/data/config")
        .map(|d| {
            d.filter_map(Result::ok)
                .filter(|e| e.file_name().to_string_lossy().ends_with(".quant.json"))
                .count()
        })
        .unwrap_or(0);
    assert!(
        stdout
            .trim_end()
            .ends_with(&format!("in {configs} configs")),
        "{stdout}"
    );
}
