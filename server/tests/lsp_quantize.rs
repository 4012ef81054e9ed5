//! The quantize command over real JSON-RPC: progress, a written file whose size is the one
//! announced, other requests answered meanwhile, both ways of cancelling leaving no file,
//! and the refusal to write outside the workspace without confirmation.

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::*;

/// Files in `dir`, sorted.
fn files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Waits until `dir` holds exactly `expected` (a cancelled run removes its temp file when
/// its thread notices the cancellation).
async fn wait_for_files(dir: &Path, expected: &[&str]) {
    let start = Instant::now();
    loop {
        let now = files(dir);
        if now == expected {
            return;
        }
        assert!(start.elapsed() < TIMEOUT, "files left behind: {now:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn big_workspace(mode: &str) -> (TestClient, tempfile::TempDir, String) {
    let ws = tempfile::tempdir().expect("tempdir");
    std::fs::write(ws.path().join("big.mlmodel"), model::dense_model(12, 700))
        .expect("write model");
    let mut client = TestClient::on_workspace(ws.path()).await;
    let config = format!(
        "{{ \"model\": \"big.mlmodel\", \"nbits\": 8, \"quantization_mode\": \"{mode}\" }}"
    );
    std::fs::write(ws.path().join("big.quant.json"), &config).expect("write config");
    let uri = uri(&ws.path().join("big.quant.json"));
    client.open(&uri, 1, &config).await;
    assert_eq!(client.diagnostics(&uri, Some(1)).await, json!([]));
    (client, ws, uri)
}

/// A server on a workspace holding the example model, with its config open and analysed.
async fn example_opened() -> (TestClient, tempfile::TempDir, String) {
    let ws = workspace_with_example();
    let mut client = TestClient::on_workspace(ws.path()).await;
    let text = std::fs::read_to_string(repo_root().join("examples/MobileNetMini.quant.json"))
        .expect("example config");
    let uri = uri(&ws.path().join("MobileNetMini.quant.json"));
    client.open(&uri, 1, &text).await;
    let _ = client.diagnostics(&uri, Some(1)).await;
    (client, ws, uri)
}

fn is_report(m: &Value) -> bool {
    m["method"] == "$/progress" && m["params"]["value"]["kind"] == "report"
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quantize_writes_the_announced_size_with_progress() {
    let (mut client, ws, uri) = example_opened().await;
    let lens = client
        .request(
            "textDocument/codeLens",
            json!({"textDocument": {"uri": uri}}),
        )
        .await
        .expect("lens");
    let result = client
        .request(
            "workspace/executeCommand",
            json!({"command": "coremlq.quantize", "arguments": [uri]}),
        )
        .await
        .expect("quantize");
    assert_eq!(result["written"], true, "{result}");
    let out = ws.path().join("MobileNetMini.8bit.mlmodel");
    let size = std::fs::metadata(&out).expect("output written").len();
    assert_eq!(result["bytesAfter"], size);
    // The lens announced that very size.
    let title = lens[0]["command"]["title"]
        .as_str()
        .unwrap_or("")
        .to_owned();
    assert!(title.starts_with("Quantize → "), "{title}");
    let begin = client
        .notification(|m| m["method"] == "$/progress" && m["params"]["value"]["kind"] == "begin")
        .await;
    assert_eq!(begin["params"]["value"]["cancellable"], true);
    let _ = client.notification(is_report).await;
    let end = client
        .notification(|m| m["method"] == "$/progress" && m["params"]["value"]["kind"] == "end")
        .await;
    assert!(end["params"]["value"]["message"]
        .as_str()
        .unwrap_or("")
        .contains("MobileNetMini.8bit.mlmodel"));
    let shown = client
        .notification(|m| m["method"] == "window/showMessage")
        .await;
    let msg = shown["params"]["message"].as_str().unwrap_or("");
    assert!(
        msg.starts_with("Quantized → ") && msg.contains(" → ") && msg.contains("bytes"),
        "{msg}"
    );
    // The summary command for the editor's "Show model summary".
    let summary = client
        .request(
            "workspace/executeCommand",
            json!({"command": "coremlq.modelSummary", "arguments": [uri]}),
        )
        .await
        .expect("summary");
    assert_eq!(summary["modelType"], "neuralNetworkClassifier");
    assert_eq!(summary["estimate"]["bytesAfter"], size);
    client.shutdown().await;
}

/// A client that passes its own `workDoneToken` (VS Code, Neovim) gets the progress on that
/// token and shows the result itself: one progress notification and no second message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_s_work_done_token_carries_the_progress() {
    let (mut client, _ws, uri) = example_opened().await;
    let result = client
        .request(
            "workspace/executeCommand",
            json!({"command": "coremlq.quantize", "arguments": [uri], "workDoneToken": "client-7"}),
        )
        .await
        .expect("quantize");
    assert_eq!(result["written"], true, "{result}");
    let begin = client
        .notification(|m| m["method"] == "$/progress" && m["params"]["value"]["kind"] == "begin")
        .await;
    assert_eq!(begin["params"]["token"], "client-7");
    let end = client
        .notification(|m| m["method"] == "$/progress" && m["params"]["value"]["kind"] == "end")
        .await;
    assert_eq!(end["params"]["token"], "client-7");
    // A later request is answered, and no result message was pushed in between.
    let _ = client
        .request(
            "textDocument/codeLens",
            json!({"textDocument": {"uri": uri}}),
        )
        .await
        .expect("lens");
    assert!(
        !client
            .received()
            .iter()
            .any(|m| m["method"] == "window/showMessage"
                || m["method"] == "window/workDoneProgress/create"),
        "the server created its own progress or showed its own result"
    );
    client.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_are_answered_during_a_quantize_and_cancel_request_leaves_no_file() {
    let (mut client, ws, uri) = big_workspace("kmeans_lut").await;
    let before = files(ws.path());
    let id = client
        .send_request(
            "workspace/executeCommand",
            json!({"command": "coremlq.quantize", "arguments": [uri]}),
        )
        .await;
    let _ = client.notification(is_report).await;
    // The run is going on; hover and completion still answer.
    let hover = client
        .request(
            "textDocument/hover",
            json!({"textDocument": {"uri": uri}, "position": {"line": 0, "character": 4}}),
        )
        .await
        .expect("hover");
    assert!(hover["contents"]["value"]
        .as_str()
        .unwrap_or("")
        .contains("model"));
    let pending = client.inbox.iter().any(|m| m["id"] == json!(id));
    assert!(
        !pending,
        "the quantize finished too early for this test to mean anything"
    );
    client.notify("$/cancelRequest", json!({"id": id})).await;
    let err = client.response(id).await.expect_err("cancelled");
    assert_eq!(err["code"], -32800);
    let expected: Vec<&str> = before.iter().map(String::as_str).collect();
    wait_for_files(ws.path(), &expected).await;
    client.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn progress_cancel_button_leaves_no_file() {
    let (mut client, ws, uri) = big_workspace("kmeans_lut").await;
    let before = files(ws.path());
    let id = client
        .send_request(
            "workspace/executeCommand",
            json!({"command": "coremlq.quantize", "arguments": [uri]}),
        )
        .await;
    let report = client.notification(is_report).await;
    let token = report["params"]["token"].clone();
    client
        .notify("window/workDoneProgress/cancel", json!({"token": token}))
        .await;
    let result = client.response(id).await.expect("answered");
    assert_eq!(result, json!({"written": false, "cancelled": true}));
    let expected: Vec<&str> = before.iter().map(String::as_str).collect();
    wait_for_files(ws.path(), &expected).await;
    client.shutdown().await;
}

#[tokio::test]
async fn writing_outside_the_workspace_needs_confirmation() {
    let ws = workspace_with_example();
    let elsewhere = tempfile::tempdir().expect("tempdir");
    let mut client = TestClient::on_workspace(ws.path()).await;
    let out = elsewhere.path().join("out.mlmodel");
    let text = json!({"model": "MobileNetMini.mlmodel", "nbits": 16, "output": out}).to_string();
    let uri = uri(&ws.path().join("m.quant.json"));
    client.open(&uri, 1, &text).await;
    let args = json!({"command": "coremlq.quantize", "arguments": [uri]});
    // Declined (the client answers null): nothing is written.
    let result = client
        .request("workspace/executeCommand", args.clone())
        .await
        .expect("answered");
    assert_eq!(result["written"], false);
    assert!(client
        .server_requests
        .iter()
        .any(|r| r["method"] == "window/showMessageRequest"));
    assert!(!out.exists());
    // Confirmed: written.
    client.message_action = json!({"title": "Write"});
    let result = client
        .request("workspace/executeCommand", args)
        .await
        .expect("answered");
    assert_eq!(result["written"], true, "{result}");
    assert!(out.exists());
    client.shutdown().await;
}

#[tokio::test]
async fn an_existing_output_folder_is_a_model_only_when_it_is_a_core_ml_package() {
    let ws = workspace_with_example();
    let mut client = TestClient::on_workspace(ws.path()).await;
    // An empty folder named like a package: the writer refuses it, so the editor warns.
    std::fs::create_dir(ws.path().join("empty.mlpackage")).expect("folder");
    let uri1 = uri(&ws.path().join("m.quant.json"));
    let text = json!({"model": "MobileNetMini.mlmodel", "nbits": 8, "output": "empty.mlpackage"})
        .to_string();
    client.open(&uri1, 1, &text).await;
    let diags = client.diagnostics(&uri1, Some(1)).await;
    let codes: Vec<&str> = diags
        .as_array()
        .map(|a| a.iter().filter_map(|d| d["code"].as_str()).collect())
        .unwrap_or_default();
    assert!(codes.contains(&"Q0603"), "{diags}");
    // A real package there is a model: no warning.
    let file =
        coremlq::model::ModelFile::open(&ws.path().join("MobileNetMini.mlmodel")).expect("model");
    let settings = coremlq::quant::Settings {
        default: coremlq::quant::Choice {
            nbits: 8,
            mode: coremlq::quant::Mode::Linear,
            lut: None,
        },
        selector: coremlq::quant::Selector::Default,
        skip_layers: vec![],
        overrides: vec![],
        fuse_layers: true,
    };
    let plan = coremlq::quant::plan::build(&file.index, &settings).expect("plan");
    let real = ws.path().join("real.mlpackage");
    coremlq::quant::quantize(&file, &plan, &real, &Default::default()).expect("package");
    assert!(real.is_dir());
    let uri2 = uri(&ws.path().join("n.quant.json"));
    let text = json!({"model": "MobileNetMini.mlmodel", "nbits": 8, "output": "real.mlpackage"})
        .to_string();
    client.open(&uri2, 1, &text).await;
    let diags = client.diagnostics(&uri2, Some(1)).await;
    assert!(!diags.to_string().contains("Q0603"), "{diags}");
    client.shutdown().await;
}
