//! `coremlq inspect` end to end: tables (snapshots), JSON, filters, and error exits.

mod common;

use common::coremlq;
use expect_test::{expect, Expect};

fn check(args: &[&str], expected: Expect) {
    let (code, stdout, stderr) = coremlq(args);
    assert_eq!(code, 0, "{stderr}");
    expected.assert_eq(&stdout);
}

#[test]
fn table_of_a_convolution() {
    check(
        &["inspect", "tests/fixtures/models/conv.mlmodel"],
        expect![[r#"
            model      tests/fixtures/models/conv.mlmodel
            type       neuralNetwork (specification version 4)
            updatable  no
            inputs     data (multiArray [3,8,8] float64)
            outputs    out (multiArray [4,6,6] float64)
            networks   1 (1 layer, 1 with weights, 2 weight tensors)

            layer  type         tensor   shape    count  storage  bytes
            conv   convolution  weights  4x3x3x3    108  float32    435
                                bias     4            4  float32     18

            total      2 tensors, 453 weight bytes of 641 file bytes (70.7% of the file)
              float32             2 tensors              453 bytes
        "#]],
    );
}

#[test]
fn table_of_nested_networks() {
    check(
        &["inspect", "tests/fixtures/models/branch_loop.mlmodel"],
        expect![[r#"
            model      tests/fixtures/models/branch_loop.mlmodel
            type       neuralNetwork (specification version 4)
            updatable  no
            inputs     data (multiArray [6] float64), cond (multiArray [1] float64)
            outputs    out (multiArray [4] float64)
            networks   5 (9 layers, 6 with weights, 8 weight tensors)

            layer       type            tensor   shape  count  storage  bytes
            -- neuralNetwork (main network)
            branch      branch          -        -          -  -            -
            -- neuralNetwork.layers[0].branch.ifBranch (if branch)
            if_ip       innerProduct    weights  4x6       24  float32     98
                                        bias     4          4  float32     18
            if_bias     bias            bias     4          4  float32     18
            -- neuralNetwork.layers[0].branch.elseBranch (else branch)
            else_ip     innerProduct    weights  4x6       24  float32     98
            -- neuralNetwork (main network)
            loop        loop            -        -          -  -            -
            -- neuralNetwork.layers[1].loop.conditionNetwork (loop condition)
            cond_const  loadConstantND  data     1          1  float32      6
            -- neuralNetwork.layers[1].loop.bodyNetwork (loop body)
            body_ip     innerProduct    weights  4x4       16  float32     66
                                        bias     4          4  float32     18
            -- neuralNetwork (main network)
            head        innerProduct    weights  4x4       16  float32     66
            (1 layer without weights not shown; --all lists them)

            total      8 tensors, 388 weight bytes of 811 file bytes (47.8% of the file)
              float32             8 tensors              388 bytes
        "#]],
    );
}

#[test]
fn table_of_a_pipeline_classifier() {
    check(
        &[
            "inspect",
            "tests/fixtures/models/pipeline_classifier.mlmodel",
            "--all",
        ],
        expect![[r#"
            model      tests/fixtures/models/pipeline_classifier.mlmodel
            type       pipelineClassifier (specification version 4)
            updatable  no
            inputs     data (multiArray [6] float64)
            outputs    probs (dictionary<string,double>), classLabel (string)
            models     3
              pipelineClassifier.pipeline.models[0] "stage0": neuralNetwork (specification version 1)
              pipelineClassifier.pipeline.models[1] "stage1": neuralNetworkClassifier (specification version 4)
            networks   2 (3 layers, 2 with weights, 4 weight tensors)

            layer    type          tensor   shape  count  storage  bytes
            -- pipelineClassifier.pipeline.models[0].neuralNetwork (main network)
            ip       innerProduct  weights  6x6       36  float32    147
                                   bias     6          6  float32     26
            -- pipelineClassifier.pipeline.models[1].neuralNetworkClassifier (main network)
            ip       innerProduct  weights  3x6       18  float32     74
                                   bias     3          3  float32     14
            softmax  softmaxND     -        -          -  -            -

            total      4 tensors, 261 weight bytes of 744 file bytes (35.1% of the file)
              float32             4 tensors              261 bytes
        "#]],
    );
}

#[test]
fn table_of_quantized_and_half_tensors() {
    check(
        &[
            "inspect",
            "tests/fixtures/golden/fp16_ip_bias__linear8.mlmodel",
        ],
        expect![[r#"
            model      tests/fixtures/golden/fp16_ip_bias__linear8.mlmodel
            type       neuralNetwork (specification version 4)
            updatable  no
            inputs     data (multiArray [4] float64)
            outputs    out (multiArray [3] float64)
            networks   1 (1 layer, 1 with weights, 2 weight tensors)

            layer  type          tensor   shape  count  storage  bytes
            ip     innerProduct  weights  3x4       12  float16     26
                                 bias     3          3  mixed       34

            total      2 tensors, 60 weight bytes of 227 file bytes (26.4% of the file)
              mixed                1 tensor               34 bytes
              float16              1 tensor               26 bytes
        "#]],
    );
    check(
        &[
            "inspect",
            "tests/fixtures/golden/selector_mixed__linear_lut2.mlmodel",
            "--largest",
            "3",
        ],
        expect![[r#"
            model      tests/fixtures/golden/selector_mixed__linear_lut2.mlmodel
            type       neuralNetwork (specification version 4)
            updatable  no
            inputs     data (multiArray [4,6,6] float64), tok (multiArray [1] float64)
            outputs    out (multiArray [3] float64), emb (multiArray [5] float64)
            networks   1 (10 layers, 6 with weights, 13 weight tensors)

            layer  type          tensor    shape    count  storage    bytes
            ip     innerProduct  weights   3x200      600  lut 2-bit    180
                                 bias      3            3  lut 2-bit     30
            bn     batchnorm     gamma     8            8  lut 2-bit     31
                                 beta      8            8  lut 2-bit     31
                                 mean      8            8  lut 2-bit     31
                                 variance  8            8  lut 2-bit     31
            conv   convolution   weights   8x4x2x2    128  lut 2-bit     61
                                 bias      8            8  lut 2-bit     31

            shown      3 layers, 426 weight bytes (39.0% of the file)
            total      13 tensors, 588 weight bytes of 1,091 file bytes (53.9% of the file)
              lut 2-bit          13 tensors              588 bytes
        "#]],
    );
}

#[test]
fn type_filter() {
    check(
        &[
            "inspect",
            "tests/fixtures/models/selector_mixed.mlmodel",
            "--type",
            "batchnorm",
            "--type",
            "scale",
        ],
        expect![[r#"
            model      tests/fixtures/models/selector_mixed.mlmodel
            type       neuralNetwork (specification version 4)
            updatable  no
            inputs     data (multiArray [4,6,6] float64), tok (multiArray [1] float64)
            outputs    out (multiArray [3] float64), emb (multiArray [5] float64)
            networks   1 (10 layers, 6 with weights, 13 weight tensors)

            layer  type       tensor    shape  count  storage  bytes
            bn     batchnorm  gamma     8          8  float32     34
                              beta      8          8  float32     34
                              mean      8          8  float32     34
                              variance  8          8  float32     34
            scale  scale      scale     8          8  float32     34
                              bias      8          8  float32     34

            shown      2 layers, 204 weight bytes (5.3% of the file)
            total      13 tensors, 3,369 weight bytes of 3,876 file bytes (86.9% of the file)
              float32            13 tensors            3,369 bytes
        "#]],
    );
    let (code, _, stderr) = coremlq(&[
        "inspect",
        "tests/fixtures/models/conv.mlmodel",
        "--type",
        "conv",
    ]);
    assert_eq!(code, 1);
    assert_eq!(
        stderr,
        "error: unknown layer type \"conv\" (did you mean convolution, convolution3d?)\n"
    );
}

#[test]
fn json_output() {
    let (code, stdout, stderr) = coremlq(&[
        "inspect",
        "tests/fixtures/models/already_linear4.mlmodel",
        "--json",
    ]);
    assert_eq!(code, 0, "{stderr}");
    let v: serde_json::Value =
        serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    assert_eq!(v["path"], "tests/fixtures/models/already_linear4.mlmodel");
    assert_eq!(v["model_type"], "neuralNetwork");
    assert_eq!(v["specification_version"], 4);
    assert_eq!(v["is_updatable"], false);
    assert_eq!(v["networks"], 1);
    assert_eq!(v["file_bytes"], 1382);
    let layers = v["layers"].as_array().cloned().unwrap_or_default();
    assert_eq!(layers.len(), 6, "JSON lists every layer");
    let conv = &layers[0];
    assert_eq!(
        (conv["name"].as_str(), conv["type"].as_str()),
        (Some("conv"), Some("convolution"))
    );
    let w = &conv["weights"][0];
    assert_eq!(w["field"], "weights");
    assert_eq!(w["count"], 108);
    assert_eq!(w["storage"], "linear");
    assert_eq!(w["nbits"], 4);
    assert_eq!(w["bytes"], 101);
    assert_eq!(w["shape"], serde_json::json!([4, 3, 3, 3]));
    let sum: u64 = layers
        .iter()
        .flat_map(|l| l["weights"].as_array().cloned().unwrap_or_default())
        .filter_map(|w| w["bytes"].as_u64())
        .sum();
    assert_eq!(v["weight_bytes"].as_u64(), Some(sum));
    // Pipelines list their member models with their networks.
    let (_, stdout, _) = coremlq(&[
        "inspect",
        "tests/fixtures/models/pipeline.mlmodel",
        "--json",
    ]);
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}"));
    let models = v["models"].as_array().cloned().unwrap_or_default();
    assert!(models.len() > 2);
    assert_eq!(models[1]["path"], "pipeline.models[0]");
    assert_eq!(
        v["layers"][0]["network"],
        "pipeline.models[0].neuralNetwork"
    );
}

#[test]
fn errors_name_the_file_and_the_byte() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let bytes = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/models/conv.mlmodel"
    ))
    .unwrap_or_else(|e| panic!("{e}"));
    let truncated = dir.path().join("truncated.mlmodel");
    std::fs::write(&truncated, &bytes[..300]).unwrap_or_else(|e| panic!("{e}"));
    let lfs = dir.path().join("lfs.mlmodel");
    std::fs::write(
        &lfs,
        "version https://git-lfs.github.com/spec/v1\noid sha256:ab\nsize 9\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let empty = dir.path().join("empty.mlmodel");
    std::fs::write(&empty, "").unwrap_or_else(|e| panic!("{e}"));
    let cases: [(&std::path::Path, &str); 5] = [
        (&truncated, ": byte 118: Model: field 500 claims 521 bytes but only 180 remain before the end of the enclosing message at byte 300\n"),
        (&lfs, ": is a Git LFS pointer, not the model itself; fetch the file with `git lfs pull`\n"),
        (&empty, ": is empty (0 bytes), not a Core ML model\n"),
        (std::path::Path::new("Cargo.toml"), ": byte 0: Model: field 11 uses wire type 3 (a group); groups are not used by Core ML, expected a protobuf-encoded Core ML model (the file looks like text, not a binary Core ML model)\n"),
        (dir.path(), ": is a folder, not a Core ML model: it has neither Manifest.json nor Data/com.apple.CoreML/model.mlmodel\n"),
    ];
    for (path, tail) in cases {
        let p = path.to_string_lossy();
        let (code, stdout, stderr) = coremlq(&["inspect", &p]);
        assert_eq!((code, stdout.as_str()), (1, ""), "{p}");
        assert_eq!(stderr, format!("error: {p}{tail}"));
    }
    #[cfg(unix)]
    {
        let (code, _, stderr) = coremlq(&["inspect", "/dev/zero"]);
        assert_eq!(code, 1);
        assert!(stderr.contains("not a regular file"), "{stderr}");
    }
    let (code, _, stderr) = coremlq(&["inspect", "no/such/model.mlmodel"]);
    assert_eq!(code, 1);
    assert!(
        stderr.starts_with("error: no/such/model.mlmodel: "),
        "{stderr}"
    );
}

#[test]
fn mlpackage_folders_are_followed() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let pkg = dir.path().join("Model.mlpackage");
    let data = pkg.join("Data/com.apple.CoreML");
    std::fs::create_dir_all(&data).unwrap_or_else(|e| panic!("{e}"));
    std::fs::copy(
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/models/ml_program.mlmodel"
        ),
        data.join("model.mlmodel"),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(
        pkg.join("Manifest.json"),
        r#"{"fileFormatVersion":"1.0.0","itemInfoEntries":{"X":{"author":"com.apple.CoreML","path":"com.apple.CoreML/model.mlmodel"}},"rootModelIdentifier":"X"}"#,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let (code, stdout, stderr) = coremlq(&["inspect", &pkg.to_string_lossy(), "--json"]);
    assert_eq!(code, 0, "{stderr}");
    let v: serde_json::Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(v["model_type"], "mlProgram");
    assert_eq!(v["networks"], 0);
    assert!(v["path"]
        .as_str()
        .is_some_and(|p| p.ends_with("Data/com.apple.CoreML/model.mlmodel")));
}

/// Protobuf helpers for hand-made models: a varint, a length-delimited field, a varint field.
fn varint(mut v: u64) -> Vec<u8> {
    let mut out = Vec::new();
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
    out
}

fn ld(field: u64, body: &[u8]) -> Vec<u8> {
    let mut out = varint(field << 3 | 2);
    out.extend(varint(body.len() as u64));
    out.extend_from_slice(body);
    out
}

fn vint(field: u64, v: u64) -> Vec<u8> {
    let mut out = varint(field << 3);
    out.extend(varint(v));
    out
}

/// A spec-4 model: `description`, then a neural network (field 500) or classifier (403).
fn model_bytes(description: &[u8], network_field: u64, network: &[u8]) -> Vec<u8> {
    [vint(1, 4), ld(2, description), ld(network_field, network)].concat()
}

/// Writes `bytes` to a temporary model file, runs `coremlq inspect ARGS... FILE` and returns
/// (exit code, stdout, stderr) with the file's path replaced by `MODEL`.
fn inspect_bytes(bytes: &[u8], args: &[&str]) -> (i32, String, String) {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let path = dir.path().join("m.mlmodel");
    std::fs::write(&path, bytes).unwrap_or_else(|e| panic!("{e}"));
    let p = path.to_string_lossy().into_owned();
    let all: Vec<&str> = ["inspect"]
        .into_iter()
        .chain(args.iter().copied())
        .chain([p.as_str()])
        .collect();
    let (code, out, err) = coremlq(&all);
    (code, out.replace(&p, "MODEL"), err.replace(&p, "MODEL"))
}

#[test]
fn corrupt_description_parts_that_the_table_does_not_show_are_refused() {
    // A flexible input whose enumerated shape claims 16 bytes inside a 4-byte message: found
    // in a real model with one flipped byte; coremltools refuses it, so does coremlq.
    let shapes = [0x0a, 0x10, 0x01, 0x02];
    let array = [vint(2, 65568), ld(21, &shapes)].concat();
    let input = [ld(1, b"x"), ld(3, &ld(5, &array))].concat();
    let bytes = model_bytes(&ld(1, &input), 500, &[]);
    let (code, out, err) = inspect_bytes(&bytes, &[]);
    assert_eq!((code, out.as_str()), (1, ""));
    expect![[r#"
        error: MODEL: byte 4: ModelDescription (20 bytes) is not valid in ModelDescription.input > FeatureDescription.type > FeatureType.type > ArrayFeatureType.shape_flexibility > EnumeratedShapes.shapes: buffer underflow (Core ML and coremltools refuse such a file)
    "#]]
    .assert_eq(&err);

    // Class labels of a classifier are checked the same way.
    let labels = ld(100, &[0x0a, 0x05, b'c', b'a']);
    let bytes = model_bytes(&[], 403, &labels);
    let (code, _, err) = inspect_bytes(&bytes, &[]);
    assert_eq!(code, 1);
    expect![[r#"
        error: MODEL: byte 10: NeuralNetworkClassifier.stringClassLabels (4 bytes) is not valid in StringVector.vector: buffer underflow (Core ML and coremltools refuse such a file)
    "#]]
    .assert_eq(&err);
}

#[test]
fn strings_that_are_not_utf8_are_shown_with_a_warning() {
    // coremltools refuses such a file; coremlq still indexes it (names shown with U+FFFD) and
    // says why Core ML will not load it.
    let metadata = ld(100, &ld(4, b"MIT \xc3("));
    let layer = [
        ld(1, b"conv\xff"),
        ld(2, b"in"),
        ld(3, b"out"),
        ld(
            140,
            &[vint(1, 1), vint(2, 1), ld(20, &ld(1, &1f32.to_le_bytes()))].concat(),
        ),
    ]
    .concat();
    let bytes = model_bytes(&metadata, 500, &ld(1, &layer));
    let (code, out, err) = inspect_bytes(&bytes, &[]);
    assert_eq!(code, 0, "{err}");
    expect![[r#"
        model      MODEL
        type       neuralNetwork (specification version 4)
        updatable  no
        inputs     -
        outputs    -
        networks   1 (1 layer, 1 with weights, 1 weight tensor)
        warning    strings that are not valid UTF-8 (the first: ModelDescription.metadata > Metadata.license, in the ModelDescription that starts at byte 4), shown with U+FFFD; protobuf strings must be UTF-8, and Core ML and coremltools refuse such a file

        layer  type          tensor   shape  count  storage  bytes
        conv�  innerProduct  weights  1x1        1  float32      6

        total      1 tensor, 6 weight bytes of 52 file bytes (11.5% of the file)
          float32              1 tensor                6 bytes
    "#]]
    .assert_eq(&out);
}
