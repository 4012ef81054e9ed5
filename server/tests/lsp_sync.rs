//! Ordering and freshness: rapid edits while diagnostics run, a model replaced on disk
//! (client-watched and server-polled), and clearing on close.

mod support;

use serde_json::{json, Value};
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rapid_edits_end_on_the_last_version_in_order() {
    let ws = workspace_with_example();
    let mut client = TestClient::on_workspace(ws.path()).await;
    let uri = uri(&ws.path().join("m.quant.json"));
    client
        .open(
            &uri,
            1,
            "{ \"model\": \"MobileNetMini.mlmodel\", \"nbits\": 8 }",
        )
        .await;
    for v in 2..=60 {
        // Every other version is broken, so stale results would show.
        let text = if v % 2 == 0 {
            "{ \"model\": \"MobileNetMini.mlmodel\", \"nbits\": 8 "
        } else {
            "{ \"model\": \"MobileNetMini.mlmodel\", \"nbits\": 8 }"
        };
        client.replace(&uri, v, text).await;
    }
    let last = client.diagnostics(&uri, Some(60)).await;
    assert_eq!(last.as_array().map(Vec::len), Some(1), "{last}");
    let versions: Vec<i64> = client
        .inbox
        .iter()
        .filter(|m| m["method"] == "textDocument/publishDiagnostics")
        .filter_map(|m| m["params"]["version"].as_i64())
        .collect();
    assert!(
        versions.windows(2).all(|w| w[0] <= w[1]),
        "out of order: {versions:?}"
    );
    // Requests answer for the latest text.
    let hover = client
        .request(
            "textDocument/hover",
            json!({"textDocument": {"uri": uri}, "position": {"line": 0, "character": 45}}),
        )
        .await
        .expect("hover");
    assert!(
        hover["contents"]["value"]
            .as_str()
            .unwrap_or("")
            .contains("Weights"),
        "{hover}"
    );
    client.shutdown().await;
}

fn codes(diags: &Value) -> Vec<String> {
    diags
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|d| d["code"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

async fn model_replaced(caps: Value, notify: bool) {
    let ws = workspace_with_example();
    let (mut client, _) = TestClient::initialized(
        caps,
        Some(ws.path()),
        json!({"diagnosticsDelayMs": 0, "pollIntervalMs": 50}),
    )
    .await;
    let uri = uri(&ws.path().join("m.quant.json"));
    client
        .open(
            &uri,
            1,
            "{ \"model\": \"MobileNetMini.mlmodel\", \"nbits\": 8 }",
        )
        .await;
    assert_eq!(client.diagnostics(&uri, Some(1)).await, json!([]));
    // Replaced by something that is not a model: diagnosed without any edit.
    let model = ws.path().join("MobileNetMini.mlmodel");
    std::fs::write(&model, b"version https://git-lfs.github.com/spec/v1\n").expect("overwrite");
    if notify {
        client
            .notify(
                "workspace/didChangeWatchedFiles",
                json!({"changes": [{"uri": support::uri(&model), "type": 2}]}),
            )
            .await;
    }
    let diags = client.diagnostics(&uri, Some(1)).await;
    assert_eq!(codes(&diags).len(), 1, "{diags}");
    // Let the full pass of this change finish before the file changes again.
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    assert_eq!(diags[0]["severity"], 1, "{diags}");
    // And back: the diagnostics clear.
    std::fs::copy(repo_root().join("examples/MobileNetMini.mlmodel"), &model).expect("restore");
    if notify {
        client
            .notify(
                "workspace/didChangeWatchedFiles",
                json!({"changes": [{"uri": support::uri(&model), "type": 2}]}),
            )
            .await;
    }
    // A pass that started before the restore may still report what it saw; the last word
    // is the clear.
    while client.diagnostics(&uri, Some(1)).await != json!([]) {}
    client.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn model_replaced_on_disk_with_client_watching() {
    model_replaced(vscode_capabilities(), true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn model_replaced_on_disk_with_server_polling() {
    model_replaced(neovim_capabilities(), false).await;
}
