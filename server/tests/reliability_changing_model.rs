//! A memory-mapped model (over 16 MiB) truncated underneath the server while a background
//! quality job is reading it: the server stays up and keeps answering. Without the
//! library's SIGBUS guard the read of a vanished page kills the whole process (this test
//! binary with it).

mod support;

use serde_json::json;
use support::model::dense_model;
use support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_truncated_during_a_quality_job_does_not_kill_the_server() {
    let ws = tempfile::tempdir().expect("tempdir");
    let model = ws.path().join("big.mlmodel");
    // One innerProduct layer `fc0` of 2048×2048 float32 weights: 16.8 MB, mapped, and at
    // 4 M weights still small enough for quality figures.
    let bytes = dense_model(1, 2048);
    assert!(bytes.len() > 16 << 20, "{} bytes", bytes.len());
    std::fs::write(&model, &bytes).expect("write model");
    let mut client = TestClient::on_workspace(ws.path()).await;
    let uri = uri(&ws.path().join("m.quant.json"));
    // k-means is slow on 4 M weights: the job is still busy with `weights` when the file is
    // truncated, and reads `bias` from the map afterwards.
    let (text, pos) = cursor(
        r#"{ "model": "big.mlmodel", "nbits": 8, "quantization_mode": "kmeans_lut",
  "layers": { "f$0c0": { "nbits": 8 } } }"#,
    );
    client.open(&uri, 1, &text).await;
    assert_eq!(client.diagnostics(&uri, Some(1)).await, json!([]));
    let first = hover(&mut client, &uri, &pos).await;
    assert!(first.contains("quality: computing…"), "{first}");
    // Truncate the mapped file in place (its pages vanish), then put a new file in its
    // place by renaming, so the old mapping stays truncated for good.
    std::fs::OpenOptions::new()
        .write(true)
        .open(&model)
        .and_then(|f| f.set_len(0))
        .expect("truncate");
    let fresh = ws.path().join("big.mlmodel.new");
    std::fs::write(&fresh, &bytes).expect("write new model");
    std::fs::rename(&fresh, &model).expect("rename");
    client
        .notify(
            "workspace/didChangeWatchedFiles",
            json!({"changes": [{"uri": support::uri(&model), "type": 2}]}),
        )
        .await;
    // The single quality worker takes new jobs only once the old one (which read the
    // truncated map) has finished: figures for the new file prove the server lived through it.
    let deadline = std::time::Instant::now() + TIMEOUT * 3;
    let last = loop {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let text = hover(&mut client, &uri, &pos).await;
        if text.matches("dB").count() == 2 || std::time::Instant::now() > deadline {
            break text;
        }
    };
    assert_eq!(last.matches("dB").count(), 2, "{last}");
    client.shutdown().await;
}

async fn hover(client: &mut TestClient, uri: &str, pos: &serde_json::Value) -> String {
    let r = client
        .request(
            "textDocument/hover",
            json!({"textDocument": {"uri": uri}, "position": pos}),
        )
        .await
        .expect("hover");
    r["contents"]["value"].as_str().unwrap_or("").to_owned()
}
