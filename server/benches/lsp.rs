//! Language server latency over real JSON-RPC (in process): with a 2,000-layer model and a
//! 600 MB model open, p50/p99 of completion, hover and the diagnostics pass over 1,000
//! requests each, the time from opening a config on the 600 MB model to its diagnostics,
//! and the server's anonymous memory (the mapped model file excluded).
//!
//! Run: `cargo bench -p coremlq-lsp --bench lsp` (`LSP_BENCH_BIG_MB` changes the big model's size).

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use serde_json::json;
use support::*;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(i).copied().unwrap_or_default()
}

fn report(name: &str, mut samples: Vec<Duration>) {
    samples.sort();
    println!(
        "{name:<28} n={:<5} p50={:>8.3} ms  p99={:>8.3} ms  max={:>8.3} ms",
        samples.len(),
        percentile(&samples, 0.5).as_secs_f64() * 1e3,
        percentile(&samples, 0.99).as_secs_f64() * 1e3,
        samples.last().copied().unwrap_or_default().as_secs_f64() * 1e3,
    );
}

fn status_kb(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(run());
}

async fn run() {
    let big_mb: u64 = std::env::var("LSP_BENCH_BIG_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(600);
    let ws = tempfile::tempdir().expect("tempdir");
    // 2,000 layers of 16×16 weights; the big one: layers of 1000×1000 float32 (4 MB each).
    std::fs::write(ws.path().join("many.mlmodel"), model::dense_model(2000, 16)).expect("write");
    let big_layers = usize::try_from(big_mb / 4).unwrap_or(150).max(1);
    std::fs::write(
        ws.path().join("big.mlmodel"),
        model::dense_model(big_layers, 1000),
    )
    .expect("write");
    let big_bytes = std::fs::metadata(ws.path().join("big.mlmodel"))
        .map(|m| m.len())
        .unwrap_or(0);
    let anon_before = status_kb("RssAnon:");

    let mut client = TestClient::on_workspace(ws.path()).await;
    let big_uri = uri(&ws.path().join("big.quant.json"));
    let start = Instant::now();
    client
        .open(
            &big_uri,
            1,
            "{ \"model\": \"big.mlmodel\", \"nbits\": 8, \"quantization_mode\": \"linear\" }",
        )
        .await;
    let _ = client.diagnostics(&big_uri, Some(1)).await;
    let open_big = start.elapsed();

    let text = "{\n  \"model\": \"many.mlmodel\",\n  \"nbits\": 8,\n  \"selector\": { \"skip_layers\": [\"fc1\", ] },\n  \"layers\": { \"fc2*\": { \"nbits\": 4 } }\n}\n";
    let uri = uri(&ws.path().join("many.quant.json"));
    client.open(&uri, 1, text).await;
    let _ = client.diagnostics(&uri, Some(1)).await;
    let td = json!({"uri": uri});
    let mut completion = Vec::new();
    let mut hover = Vec::new();
    let mut diagnostics = Vec::new();
    for i in 0..1000 {
        let pos = if i % 2 == 0 {
            json!({"line": 3, "character": 40})
        } else {
            json!({"line": 2, "character": 3})
        };
        let t = Instant::now();
        let r = client
            .request(
                "textDocument/completion",
                json!({"textDocument": td, "position": pos}),
            )
            .await;
        completion.push(t.elapsed());
        assert!(r.is_ok());
        let pos = if i % 2 == 0 {
            json!({"line": 2, "character": 12})
        } else {
            json!({"line": 4, "character": 16})
        };
        let t = Instant::now();
        let r = client
            .request(
                "textDocument/hover",
                json!({"textDocument": td, "position": pos}),
            )
            .await;
        hover.push(t.elapsed());
        assert!(r.is_ok());
        let t = Instant::now();
        client.replace(&uri, i + 2, text).await;
        let _ = client.diagnostics(&uri, Some(i + 2)).await;
        diagnostics.push(t.elapsed());
        client.inbox.clear();
    }
    // The big model's config too.
    let mut hover_big = Vec::new();
    for _ in 0..200 {
        let t = Instant::now();
        let r = client
            .request(
                "textDocument/hover",
                json!({"textDocument": {"uri": big_uri}, "position": {"line": 0, "character": 32}}),
            )
            .await;
        hover_big.push(t.elapsed());
        assert!(r.is_ok());
    }
    let anon_after = status_kb("RssAnon:");
    println!(
        "models: 2,000 layers ({} KB), {} layers ({:.0} MB)",
        std::fs::metadata(ws.path().join("many.mlmodel"))
            .map(|m| m.len() / 1000)
            .unwrap_or(0),
        big_layers,
        big_bytes as f64 / 1e6
    );
    println!(
        "{:<28} {:>8.3} ms",
        "open big → diagnostics",
        open_big.as_secs_f64() * 1e3
    );
    report("completion (2,000 layers)", completion);
    report("hover (2,000 layers)", hover);
    report("diagnostics pass (2,000)", diagnostics);
    report("hover (big model)", hover_big);
    println!(
        "anonymous memory: {} KB before the server, {} KB after (+{} KB); mapped file not included",
        anon_before,
        anon_after,
        anon_after.saturating_sub(anon_before)
    );
    client.shutdown().await;
}
