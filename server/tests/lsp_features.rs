//! Features over real JSON-RPC against the bundled example model: fixtures with a `$0`
//! cursor and expect-test snapshots (`UPDATE_EXPECT=1` refreshes them).

mod support;

use expect_test::{expect, Expect};
use serde_json::{json, Value};
use support::*;

const BASE: &str = r#"{
  "model": "MobileNetMini.mlmodel",
  "nbits": 8,
  "quantization_mode": "linear",
  "selector": { "skip_layer_types": ["depthwiseConv"] },
  "layers": { "fc1": { "nbits": 4 } }
}
"#;

struct Fixture {
    client: TestClient,
    ws: tempfile::TempDir,
    uri: String,
}

/// Opens `text` (a `$0` marks the cursor, if any) as `m.quant.json` beside a copy of the
/// example model; returns the cursor position.
async fn open(text: &str, caps: Value) -> (Fixture, Value) {
    let (text, pos) = if text.contains("$0") {
        cursor(text)
    } else {
        (text.to_owned(), json!({"line": 0, "character": 0}))
    };
    let ws = workspace_with_example();
    let (mut client, _) =
        TestClient::initialized(caps, Some(ws.path()), json!({"diagnosticsDelayMs": 0})).await;
    let uri = uri(&ws.path().join("m.quant.json"));
    client.open(&uri, 1, &text).await;
    let _ = client.diagnostics(&uri, Some(1)).await;
    (Fixture { client, ws, uri }, pos)
}

fn render_completions(result: &Value) -> String {
    let items = result
        .as_array()
        .cloned()
        .or_else(|| result["items"].as_array().cloned())
        .unwrap_or_default();
    let mut out = String::new();
    for i in items.iter().take(12) {
        let edit = &i["textEdit"];
        out.push_str(&format!(
            "{} | {} | {}:{}-{}:{} {}\n",
            i["label"].as_str().unwrap_or(""),
            i["detail"].as_str().unwrap_or(""),
            edit["range"]["start"]["line"],
            edit["range"]["start"]["character"],
            edit["range"]["end"]["line"],
            edit["range"]["end"]["character"],
            edit["newText"].as_str().unwrap_or(""),
        ));
    }
    if items.len() > 12 {
        out.push_str(&format!("… {} items\n", items.len()));
    }
    out
}

async fn check_completion(text: &str, caps: Value, expect: Expect) {
    let (mut f, pos) = open(text, caps).await;
    let result = f
        .client
        .request(
            "textDocument/completion",
            json!({"textDocument": {"uri": f.uri}, "position": pos}),
        )
        .await
        .expect("completion");
    expect.assert_eq(&render_completions(&result));
    f.client.shutdown().await;
}

async fn check_hover(text: &str, expect: Expect) {
    let (mut f, pos) = open(text, vscode_capabilities()).await;
    let result = f
        .client
        .request(
            "textDocument/hover",
            json!({"textDocument": {"uri": f.uri}, "position": pos}),
        )
        .await
        .expect("hover");
    let value = result["contents"]["value"]
        .as_str()
        .unwrap_or("<none>")
        .to_owned();
    expect.assert_eq(&format!("{value}\n"));
    f.client.shutdown().await;
}

#[tokio::test]
async fn completes_missing_keys_with_snippets() {
    check_completion(
        "{\n  \"model\": \"MobileNetMini.mlmodel\",\n  $0\n}",
        vscode_capabilities(),
        expect![[r#"
            nbits | required · Bits per weight: 16 (float16) or 1 to 8 | 2:2-2:2 "nbits": ${1|8,16,6,4|}
            $schema | JSON Schema for plain JSON editors; ignored by coremlq | 2:2-2:2 "$schema": "$1"
            output | Where the quantized model is written | 2:2-2:2 "output": "$1"
            quantization_mode | How weights are quantized (coremltools' quantization_mode) | 2:2-2:2 "quantization_mode": "$1"
            lut | The lookup table for custom_lut: 2^nbits finite numbers | 2:2-2:2 "lut": [$1]
            selector | Which layers to leave in full precision (AdvancedQuantizedLayerSelector) | 2:2-2:2 "selector": {$1}
            fuse_layers | Fold conv/innerProduct→scale/bias, batchnorm→scale, conv→batchnorm first | 2:2-2:2 "fuse_layers": ${1|true,false|}
            layers | Per-layer overrides (mixed precision) | 2:2-2:2 "layers": {$1}
        "#]],
    )
    .await;
}

#[tokio::test]
async fn completes_a_half_typed_key_without_snippets() {
    check_completion("{\n  \"model\": \"MobileNetMini.mlmodel\",\n  \"nb$0\n}", neovim_capabilities(), expect![[r#"
        nbits | required · Bits per weight: 16 (float16) or 1 to 8 | 2:2-2:5 "nbits": 
        $schema | JSON Schema for plain JSON editors; ignored by coremlq | 2:2-2:5 "$schema": ""
        output | Where the quantized model is written | 2:2-2:5 "output": ""
        quantization_mode | How weights are quantized (coremltools' quantization_mode) | 2:2-2:5 "quantization_mode": ""
        lut | The lookup table for custom_lut: 2^nbits finite numbers | 2:2-2:5 "lut": []
        selector | Which layers to leave in full precision (AdvancedQuantizedLayerSelector) | 2:2-2:5 "selector": {}
        fuse_layers | Fold conv/innerProduct→scale/bias, batchnorm→scale, conv→batchnorm first | 2:2-2:5 "fuse_layers": true
        layers | Per-layer overrides (mixed precision) | 2:2-2:5 "layers": {}
    "#]]).await;
}

#[tokio::test]
async fn completes_modes_and_nbits() {
    check_completion(
        "{ \"model\": \"MobileNetMini.mlmodel\", \"nbits\": 8, \"quantization_mode\": \"k$0\" }",
        vscode_capabilities(),
        expect![[r#"
            linear | Per-channel min/max scale and bias (default) | 0:69-0:72 "linear"
            linear_symmetric | Symmetric linear quantization, 8 bits only | 0:69-0:72 "linear_symmetric"
            linear_lut | Evenly spaced lookup table over the tensor's range | 0:69-0:72 "linear_lut"
            kmeans_lut | Lookup table from 1-D k-means | 0:69-0:72 "kmeans_lut"
            custom_lut | Your own lookup table (`lut`) | 0:69-0:72 "custom_lut"
            dequantization | Turn quantized weights back into float32 | 0:69-0:72 "dequantization"
        "#]],
    )
    .await;
    check_completion(
        "{ \"model\": \"MobileNetMini.mlmodel\", \"nbits\": $0 }",
        vscode_capabilities(),
        expect![[r#"
        16 | float16: half the size, practically lossless | 0:45-0:45 16
        8 | 8-bit: a quarter of the size; safe for most models | 0:45-0:45 8
        7 | 7-bit | 0:45-0:45 7
        6 | 6-bit: usually fine with a LUT mode | 0:45-0:45 6
        5 | 5-bit | 0:45-0:45 5
        4 | 4-bit: an eighth of the size; check quality, prefer kmeans_lut | 0:45-0:45 4
        3 | 3-bit: aggressive | 0:45-0:45 3
        2 | 2-bit: very aggressive | 0:45-0:45 2
        1 | 1-bit: binary weights | 0:45-0:45 1
    "#]],
    )
    .await;
}

#[tokio::test]
async fn completes_layers_largest_first_and_layer_types_present_first() {
    check_completion(
        "{ \"model\": \"MobileNetMini.mlmodel\", \"nbits\": 8, \"selector\": { \"skip_layers\": [$0] } }",
        vscode_capabilities(),
        expect![[r#"
            pw4 | convolution · 131,584 weights · 526 KB | 0:78-0:78 "pw4"
            fc1 | innerProduct · 131,328 weights · 525 KB | 0:78-0:78 "fc1"
            pw3 | convolution · 33,024 weights · 132 KB | 0:78-0:78 "pw3"
            pw2 | convolution · 8,320 weights · 33 KB | 0:78-0:78 "pw2"
            dw4 | convolution · 2,560 weights · 10 KB | 0:78-0:78 "dw4"
            pw1 | convolution · 2,112 weights · 8.5 KB | 0:78-0:78 "pw1"
            pw4_bn | batchnorm · 2,048 weights · 8.2 KB | 0:78-0:78 "pw4_bn"
            classifier | innerProduct · 1,285 weights · 5.1 KB | 0:78-0:78 "classifier"
            dw3 | convolution · 1,280 weights · 5.1 KB | 0:78-0:78 "dw3"
            dw4_bn | batchnorm · 1,024 weights · 4.1 KB | 0:78-0:78 "dw4_bn"
            pw3_bn | batchnorm · 1,024 weights · 4.1 KB | 0:78-0:78 "pw3_bn"
            conv1 | convolution · 896 weights · 3.6 KB | 0:78-0:78 "conv1"
            … 20 items
        "#]],
    )
    .await;
    check_completion(
        "{ \"model\": \"MobileNetMini.mlmodel\", \"nbits\": 8, \"selector\": { \"skip_layer_types\": [\"batchnorm\", $0] } }",
        vscode_capabilities(),
        expect![[r#"
            convolution | 9 layers · 723 KB | 0:96-0:96 "convolution"
            innerProduct | 2 layers · 530 KB | 0:96-0:96 "innerProduct"
            depthwiseConv | 4 layers · 19 KB | 0:96-0:96 "depthwiseConv"
            embedding | not in this model | 0:96-0:96 "embedding"
            embeddingND | not in this model | 0:96-0:96 "embeddingND"
            scale | not in this model | 0:96-0:96 "scale"
            bias | not in this model | 0:96-0:96 "bias"
            loadConstant | not in this model | 0:96-0:96 "loadConstant"
            loadConstantND | not in this model | 0:96-0:96 "loadConstantND"
            simpleRecurrent | not in this model | 0:96-0:96 "simpleRecurrent"
            gru | not in this model | 0:96-0:96 "gru"
            uniDirectionalLSTM | not in this model | 0:96-0:96 "uniDirectionalLSTM"
            … 16 items
        "#]],
    )
    .await;
    check_completion(
        "{ \"model\": \"MobileNetMini.mlmodel\", \"nbits\": 8, \"layers\": { $0 } }",
        vscode_capabilities(),
        expect![[r#"
        pw4 | convolution · 131,584 weights · 526 KB | 0:60-0:60 "pw4": {$1}
        fc1 | innerProduct · 131,328 weights · 525 KB | 0:60-0:60 "fc1": {$1}
        pw3 | convolution · 33,024 weights · 132 KB | 0:60-0:60 "pw3": {$1}
        pw2 | convolution · 8,320 weights · 33 KB | 0:60-0:60 "pw2": {$1}
        dw4 | convolution · 2,560 weights · 10 KB | 0:60-0:60 "dw4": {$1}
        pw1 | convolution · 2,112 weights · 8.5 KB | 0:60-0:60 "pw1": {$1}
        pw4_bn | batchnorm · 2,048 weights · 8.2 KB | 0:60-0:60 "pw4_bn": {$1}
        classifier | innerProduct · 1,285 weights · 5.1 KB | 0:60-0:60 "classifier": {$1}
        dw3 | convolution · 1,280 weights · 5.1 KB | 0:60-0:60 "dw3": {$1}
        dw4_bn | batchnorm · 1,024 weights · 4.1 KB | 0:60-0:60 "dw4_bn": {$1}
        pw3_bn | batchnorm · 1,024 weights · 4.1 KB | 0:60-0:60 "pw3_bn": {$1}
        conv1 | convolution · 896 weights · 3.6 KB | 0:60-0:60 "conv1": {$1}
        … 20 items
    "#]],
    )
    .await;
}

#[tokio::test]
async fn completes_model_paths() {
    check_completion(
        "{ \"model\": \"$0\" }",
        vscode_capabilities(),
        expect![[r#"
        MobileNetMini.mlmodel | Core ML model | 0:11-0:13 "MobileNetMini.mlmodel"
    "#]],
    )
    .await;
}

#[tokio::test]
async fn hovers() {
    check_hover(
        &BASE.replacen("\"model\": \"", "\"model\": \"$0", 1),
        expect![[r#"
            **MobileNetMini.mlmodel** — `neuralNetworkClassifier`, specification version 4

            33 layers (20 with weights) · weights 1.3 MB of 1.3 MB · float32 100%
        "#]],
    )
    .await;
    check_hover(
        &BASE.replacen("\"nbits\": 8", "\"nbits\": $08", 1),
        expect![[r#"
            Weights 1.3 MB → 287 KB (−77%)

            Output file: 1,279,267 → 289,478 bytes (−77%)

            | layer type | layers | before | after |
            |---|---:|---:|---:|
            | convolution | 9 | 723 KB | 211 KB (−71%) |
            | innerProduct | 2 | 530 KB | 69 KB (−87%) |
            | batchnorm | 9 | 24 KB | 6.7 KB (−72%) |
        "#]],
    )
    .await;
    check_hover(
        &BASE.replacen("\"fc1\"", "\"f$0c1\"", 1),
        expect![[r#"
            **fc1** — `innerProduct`: quantized, linear 4-bit (overrides "fc1")

            - `weights` [256, 512]: 524 KB → 68 KB (linear 4-bit) · quality: computing…
            - `bias` [256]: 1.0 KB → 152 B (linear 4-bit) · quality: computing…
        "#]],
    )
    .await;
    check_hover(
        &BASE.replacen("\"depthwiseConv\"", "\"depthwise$0Conv\"", 1),
        expect![[r#"
        `depthwiseConv` — Depthwise convolutions (pseudo-type): 4 layers, 19 KB of weights

        With this config: 19 KB → 19 KB (±0%)
    "#]],
    )
    .await;
    check_hover(&BASE.replacen("\"selector\"", "\"sel$0ector\"", 1), expect![[r#"
        **selector** — Which layers to leave in full precision (AdvancedQuantizedLayerSelector)

        Type: an object. Default: `every layer with weights is quantized`

        Which layers to leave in full precision: the fields of coremltools' `AdvancedQuantizedLayerSelector` (`skip_layer_types`, `minimum_conv_kernel_channels`, `minimum_conv_weight_count`) plus `skip_layers` (by name).

        Without `selector`, every layer with weights is quantized (the default `QuantizedLayerSelector`); with it, the advanced selector's rules apply with its defaults for the keys not given.
    "#]]).await;
}

async fn hover_text(f: &mut Fixture, pos: &Value) -> String {
    let result = f
        .client
        .request(
            "textDocument/hover",
            json!({"textDocument": {"uri": f.uri}, "position": pos}),
        )
        .await
        .expect("hover");
    result["contents"]["value"]
        .as_str()
        .unwrap_or("<none>")
        .to_owned()
}

#[tokio::test]
async fn layer_hover_measures_quality_in_the_background() {
    let (mut f, pos) = open(
        &BASE.replacen("\"fc1\"", "\"f$0c1\"", 1),
        vscode_capabilities(),
    )
    .await;
    let first = hover_text(&mut f, &pos).await;
    assert!(first.contains("quality: computing…"), "{first}");
    let deadline = std::time::Instant::now() + TIMEOUT;
    let second = loop {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        let text = hover_text(&mut f, &pos).await;
        if text.contains("dB") || std::time::Instant::now() > deadline {
            break text;
        }
    };
    expect![[r#"
        **fc1** — `innerProduct`: quantized, linear 4-bit (overrides "fc1")

        - `weights` [256, 512]: 524 KB → 68 KB (linear 4-bit) · quality: SNR 18.6 dB, rel. RMS 1.18e-1
        - `bias` [256]: 1.0 KB → 152 B (linear 4-bit) · quality: SNR 19.4 dB, rel. RMS 1.07e-1
    "#]].assert_eq(&format!("{second}\n"));
    f.client.shutdown().await;
}

#[tokio::test]
async fn diagnostics_for_a_missing_model_and_a_broken_document() {
    let (mut f, _) = open(
        "{ \"model\": \"nope.mlmodel\", \"nbits\": 8 }",
        vscode_capabilities(),
    )
    .await;
    f.client
        .replace(&f.uri, 2, "{ \"model\": \"nope.mlmodel\", \"nbits\": 8 ")
        .await;
    let diags = f.client.diagnostics(&f.uri, Some(2)).await;
    let mut out = String::new();
    for d in diags.as_array().cloned().unwrap_or_default() {
        let msg = d["message"]
            .as_str()
            .unwrap_or("")
            .replace(&f.ws.path().display().to_string(), "<ws>");
        out.push_str(&format!(
            "{} {} {}:{} {}\n",
            d["severity"],
            d["code"].as_str().unwrap_or(""),
            d["range"]["start"]["line"],
            d["range"]["start"]["character"],
            msg
        ));
    }
    expect![[r#"
        1 Q0201 0:11 model file `nope.mlmodel` not found
        relative paths start at the folder holding the config
        1 Q0006 0:37 object is not closed: missing `}`
    "#]]
    .assert_eq(&out);
    f.client.shutdown().await;
}

#[tokio::test]
async fn inlay_hints_code_lens_symbols_and_source_action() {
    let (mut f, _) = open(BASE, vscode_capabilities()).await;
    let td = json!({"uri": f.uri});
    let whole = json!({"start": {"line": 0, "character": 0}, "end": {"line": 99, "character": 0}});
    let hints = f
        .client
        .request(
            "textDocument/inlayHint",
            json!({"textDocument": td, "range": whole}),
        )
        .await
        .expect("hints");
    let lens = f
        .client
        .request("textDocument/codeLens", json!({"textDocument": td}))
        .await
        .expect("lens");
    let symbols = f
        .client
        .request("textDocument/documentSymbol", json!({"textDocument": td}))
        .await
        .expect("symbols");
    let actions = f
        .client
        .request(
            "textDocument/codeAction",
            json!({"textDocument": td, "range": whole, "context": {"diagnostics": []}}),
        )
        .await
        .expect("actions");
    let mut out = String::new();
    for h in hints.as_array().cloned().unwrap_or_default() {
        out.push_str(&format!(
            "hint {}:{} {}\n",
            h["position"]["line"],
            h["position"]["character"],
            h["label"].as_str().unwrap_or("")
        ));
    }
    for l in lens.as_array().cloned().unwrap_or_default() {
        out.push_str(&format!(
            "lens {} {}\n",
            l["command"]["title"].as_str().unwrap_or(""),
            l["command"]["command"].as_str().unwrap_or("")
        ));
    }
    for s in symbols.as_array().cloned().unwrap_or_default() {
        let children: Vec<&str> = s["children"]
            .as_array()
            .map(|c| c.iter().filter_map(|c| c["name"].as_str()).collect())
            .unwrap_or_default();
        out.push_str(&format!(
            "symbol {} kind {} {:?}\n",
            s["name"].as_str().unwrap_or(""),
            s["kind"],
            children
        ));
    }
    for a in actions.as_array().cloned().unwrap_or_default() {
        out.push_str(&format!(
            "action {} {}\n",
            a["title"].as_str().unwrap_or(""),
            a["kind"].as_str().unwrap_or("")
        ));
    }
    expect![[r#"
        hint 5:35 ≈ 525 KB → 68 KB
        lens Quantize → 289 KB (−77%) coremlq.quantize
        symbol model kind 15 []
        symbol nbits kind 16 []
        symbol quantization_mode kind 15 []
        symbol selector kind 19 ["skip_layer_types"]
        symbol layers kind 19 ["fc1"]
        action Quantize model source.quantize
    "#]]
    .assert_eq(&out);
    f.client.shutdown().await;
}

#[tokio::test]
async fn quick_fixes_from_the_diagnostics() {
    let (mut f, _) = open(
        "{ \"model\": \"MobileNetMini.mlmodel\", \"nbits\": 8, \"quantization_mode\": \"kmeans\", \"nbitz\": 1 }",
        vscode_capabilities(),
    )
    .await;
    let whole = json!({"start": {"line": 0, "character": 0}, "end": {"line": 0, "character": 99}});
    let actions = f
        .client
        .request(
            "textDocument/codeAction",
            json!({"textDocument": {"uri": f.uri}, "range": whole, "context": {"diagnostics": [], "only": ["quickfix"]}}),
        )
        .await
        .expect("actions");
    let mut out = String::new();
    for a in actions.as_array().cloned().unwrap_or_default() {
        let edits = &a["edit"]["changes"][&f.uri];
        let edits: Vec<String> = edits
            .as_array()
            .map(|e| {
                e.iter()
                    .map(|e| {
                        format!(
                            "{}-{} {:?}",
                            e["range"]["start"]["character"],
                            e["range"]["end"]["character"],
                            e["newText"].as_str().unwrap_or("")
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        out.push_str(&format!(
            "{} [{}] {:?}\n",
            a["title"].as_str().unwrap_or(""),
            a["kind"].as_str().unwrap_or(""),
            edits
        ));
    }
    expect![[r#"
        Replace with "kmeans_lut" [quickfix] ["69-77 \"\\\"kmeans_lut\\\"\""]
    "#]]
    .assert_eq(&out);
    f.client.shutdown().await;
}
