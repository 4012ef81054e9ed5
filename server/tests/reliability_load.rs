//! The server under load: thousands of random edits, hovers and completions with
//! cancellations, across several documents, while the model they reference is rewritten
//! underneath. Every answer must fit the document version it was asked about, diagnostics
//! must arrive in version order and end on the last version, memory must stay bounded, and
//! the server must shut down cleanly.

mod support;

#[allow(dead_code)]
#[path = "../../fuzz/src/mutate.rs"]
mod mutate;

use std::collections::HashMap;
use std::path::Path;
use std::time::Instant;

use mutate::Rng;
use serde_json::{json, Value};
use support::*;

/// Operations in one run (edits, hovers, completions, cancellations, model rewrites).
const OPERATIONS: usize = 4000;
/// Requests in flight before the client waits for their answers.
const BATCH: usize = 16;
/// How long one answer may take (the whole run takes a few seconds).
const ANSWER_WITHIN: std::time::Duration = std::time::Duration::from_secs(10);

/// A document as the client sees it.
struct Doc {
    uri: String,
    text: String,
    version: i64,
    /// The highest version for which diagnostics were published.
    published: i64,
}

/// UTF-16 position of byte `offset` in `text`.
fn position(text: &str, offset: usize) -> Value {
    let before = &text[..offset];
    let line = before.matches('\n').count();
    let start = before.rfind('\n').map_or(0, |i| i + 1);
    let character: usize = before[start..].chars().map(char::len_utf16).sum();
    json!({"line": line, "character": character})
}

/// Byte offset of a UTF-16 position, or `None` when it is not inside `text`.
fn offset(text: &str, pos: &Value) -> Option<usize> {
    let line = usize::try_from(pos["line"].as_u64()?).ok()?;
    let character = usize::try_from(pos["character"].as_u64()?).ok()?;
    let mut start = 0;
    for _ in 0..line {
        start += text[start..].find('\n')? + 1;
    }
    let line_text = text[start..].split('\n').next().unwrap_or("");
    let mut units = 0;
    for (i, c) in line_text.char_indices() {
        if units == character {
            return Some(start + i);
        }
        units += c.len_utf16();
    }
    (units == character).then_some(start + line_text.len())
}

/// Checks that a range answers about `text` (both ends inside it, in order).
fn range_fits(text: &str, range: &Value) -> Result<(), String> {
    let s = offset(text, &range["start"])
        .ok_or_else(|| format!("start {} outside the text", range["start"]))?;
    let e = offset(text, &range["end"])
        .ok_or_else(|| format!("end {} outside the text", range["end"]))?;
    if s <= e {
        Ok(())
    } else {
        Err(format!("range {range} is reversed"))
    }
}

/// Every range in an answer (hover range, completion edits) must fit the text it was for.
fn check_answer(method: &str, text: &str, result: &Value) -> Result<(), String> {
    match method {
        "textDocument/hover" => {
            if let Some(r) = result.get("range") {
                range_fits(text, r)?;
            }
        }
        "textDocument/completion" => {
            let items = result.get("items").unwrap_or(result);
            for item in items.as_array().map(Vec::as_slice).unwrap_or_default() {
                if let Some(edit) = item.get("textEdit") {
                    for key in ["range", "insert", "replace"] {
                        if let Some(r) = edit.get(key) {
                            range_fits(text, r)?;
                        }
                    }
                }
                for edit in item
                    .get("additionalTextEdits")
                    .and_then(Value::as_array)
                    .map(Vec::as_slice)
                    .unwrap_or_default()
                {
                    range_fits(text, &edit["range"])?;
                }
            }
        }
        _ => {}
    }
    Ok(())
}

const PIECES: &[&str] = &[
    "\"nbits\": 4, ",
    "\"quantization_mode\": \"kmeans_lut\", ",
    "\"layers\": { \"conv*\": { \"skip\": true } }, ",
    "\"selector\": { \"skip_layer_types\": [\"innerProduct\"] }, ",
    "\"model\": \"other.mlmodel\", ",
    "{",
    "}",
    "[",
    "\"",
    ":",
    ",",
    "\n",
    "é",
    "𝄞",
    "// note\n",
    "\"lut\": [1, 2, 3], ",
];

fn resident_kb() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn rewrite_model(ws: &Path, from: &Path, n: usize) {
    // Written next to it and renamed into place, as exporters and `git checkout` do.
    let tmp = ws.join(format!(".model.{n}.tmp"));
    std::fs::copy(from, &tmp).expect("copy model");
    std::fs::rename(&tmp, ws.join("model.mlmodel")).expect("rename model");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_of_edits_hovers_and_completions_with_cancellations() {
    let ws = tempfile::tempdir().expect("tempdir");
    let models = [
        repo_root().join("examples/MobileNetMini.mlmodel"),
        repo_root().join("tests/fixtures/models/conv.mlmodel"),
    ];
    rewrite_model(ws.path(), &models[0], 0);
    let mut client = TestClient::on_workspace(ws.path()).await;
    let mut docs: Vec<Doc> = (0..4)
        .map(|i| Doc {
            uri: uri(&ws.path().join(format!("d{i}.quant.json"))),
            text: format!(
                "{{\n  \"model\": \"model.mlmodel\",\n  \"nbits\": {},\n  \"layers\": {{}}\n}}\n",
                [8, 4, 16, 2][i]
            ),
            version: 1,
            published: 0,
        })
        .collect();
    for d in &docs {
        client.open(&d.uri, d.version, &d.text).await;
    }
    // LOAD_SEED=n replays another run (the default keeps `cargo test` deterministic on the
    // client side; the server's own scheduling still varies).
    let seed = std::env::var("LOAD_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x10ad);
    let mut rng = Rng::new(seed);
    let started = Instant::now();
    let mut rss_warm = 0;
    let (mut edits, mut requests, mut cancels, mut cancelled, mut rewrites) = (0, 0, 0, 0, 0);
    // In flight: id → (method, document text at the time of asking, cancelled, operation).
    let mut in_flight: HashMap<i64, (String, String, bool, usize)> = HashMap::new();
    let mut errors = Vec::new();
    for op in 0..OPERATIONS {
        if op == OPERATIONS / 8 {
            rss_warm = resident_kb();
        }
        let d = rng.below(docs.len());
        match rng.below(20) {
            // Edits: insert a piece or delete a range, incrementally, UTF-16 positions.
            0..=8 => {
                let doc = &mut docs[d];
                let at = mutate::floor_char_boundary(&doc.text, rng.below(doc.text.len() + 1));
                let (end, new) = if rng.one_in(3) && at < doc.text.len() {
                    (
                        mutate::floor_char_boundary(&doc.text, at + 1 + rng.below(12)).max(at),
                        String::new(),
                    )
                } else {
                    (at, PIECES[rng.below(PIECES.len())].to_string())
                };
                let range =
                    json!({"start": position(&doc.text, at), "end": position(&doc.text, end)});
                doc.text.replace_range(at..end, &new);
                doc.version += 1;
                edits += 1;
                let params = json!({"textDocument": {"uri": doc.uri, "version": doc.version},
                                    "contentChanges": [{"range": range, "text": new}]});
                client.notify("textDocument/didChange", params).await;
            }
            // Hovers and completions at random places.
            9..=16 => {
                let doc = &docs[d];
                let at = mutate::floor_char_boundary(&doc.text, rng.below(doc.text.len() + 1));
                let method = if rng.one_in(2) {
                    "textDocument/hover"
                } else {
                    "textDocument/completion"
                };
                let id = client
                    .send_request(method, json!({"textDocument": {"uri": doc.uri}, "position": position(&doc.text, at)}))
                    .await;
                requests += 1;
                // Half of them are cancelled right away, as editors do while typing.
                let cancel = rng.one_in(2);
                if cancel {
                    client.notify("$/cancelRequest", json!({"id": id})).await;
                    cancels += 1;
                }
                in_flight.insert(id, (method.to_string(), doc.text.clone(), cancel, op));
            }
            // Inlay hints over the whole document (the plan behind them must be current).
            17 | 18 => {
                let doc = &docs[d];
                let end = position(&doc.text, doc.text.len());
                let id = client
                    .send_request(
                        "textDocument/inlayHint",
                        json!({"textDocument": {"uri": doc.uri}, "range": {"start": {"line": 0, "character": 0}, "end": end}}),
                    )
                    .await;
                requests += 1;
                in_flight.insert(
                    id,
                    (
                        "textDocument/inlayHint".to_string(),
                        doc.text.clone(),
                        false,
                        op,
                    ),
                );
            }
            // The model is rewritten underneath, and the client says so.
            _ => {
                rewrites += 1;
                rewrite_model(ws.path(), &models[rewrites % 2], rewrites);
                client
                    .notify(
                        "workspace/didChangeWatchedFiles",
                        json!({"changes": [{"uri": uri(&ws.path().join("model.mlmodel")), "type": 2}]}),
                    )
                    .await;
            }
        }
        if in_flight.len() >= BATCH || op + 1 == OPERATIONS {
            let mut ids: Vec<i64> = in_flight.keys().copied().collect();
            ids.sort_unstable();
            for id in ids {
                let Some((method, text, cancel, asked_at)) = in_flight.remove(&id) else {
                    continue;
                };
                let answer = tokio::time::timeout(ANSWER_WITHIN, client.response(id)).await;
                let Ok(answer) = answer else {
                    panic!(
                        "no answer within {ANSWER_WITHIN:?} to {method} #{id} (asked at operation {asked_at}, \
                         cancelled: {cancel}; {edits} edits, {rewrites} rewrites so far)\ntext: {text:?}"
                    );
                };
                match answer {
                    Ok(result) => {
                        if let Err(e) = check_answer(&method, &text, &result) {
                            errors.push(format!("{method} #{id}: {e}"));
                        }
                    }
                    // RequestCancelled and ContentModified are the honest answers to a
                    // cancelled or outdated request; anything else is a failure.
                    Err(err) if matches!(err["code"].as_i64(), Some(-32800 | -32801)) => {
                        cancelled += 1
                    }
                    Err(err) => errors.push(format!("{method} #{id}: error {err}")),
                }
            }
            // Diagnostics: per document, never for a version older than one already
            // published, never for a version the client has not sent.
            while let Some(msg) = client.inbox.pop_front() {
                if msg["method"] != "textDocument/publishDiagnostics" {
                    continue;
                }
                let Some(doc) = docs
                    .iter_mut()
                    .find(|d| msg["params"]["uri"] == json!(d.uri))
                else {
                    continue;
                };
                if let Some(v) = msg["params"]["version"].as_i64() {
                    if v < doc.published || v > doc.version {
                        errors.push(format!(
                            "{}: diagnostics for version {v} after {} (latest {})",
                            doc.uri, doc.published, doc.version
                        ));
                    }
                    doc.published = doc.published.max(v);
                }
            }
        }
    }
    // Every document ends with diagnostics for its last version.
    for doc in &docs {
        if doc.published < doc.version {
            let _ = client.diagnostics(&doc.uri, Some(doc.version)).await;
        }
    }
    let rss_end = resident_kb();
    let elapsed = started.elapsed();
    eprintln!(
        "load: {OPERATIONS} operations in {elapsed:?}: {edits} edits, {requests} requests ({cancels} cancel notices, \
         {cancelled} answered as cancelled), {rewrites} model rewrites; RSS {rss_warm} kB after warm-up, {rss_end} kB at the end"
    );
    assert!(
        errors.is_empty(),
        "{} wrong answers, first ones:\n{}",
        errors.len(),
        errors[..errors.len().min(10)].join("\n")
    );
    // Memory stays bounded: no growth with the number of operations beyond caches.
    assert!(
        rss_end < rss_warm + 128 * 1024,
        "RSS grew from {rss_warm} kB to {rss_end} kB"
    );
    client.shutdown().await;
}

/// Found by the load test: completion and hover at every offset of a half-edited document
/// (non-BMP characters, a key split by a newline) must each be answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_offset_of_a_garbled_document_is_answered() {
    let ws = tempfile::tempdir().expect("tempdir");
    std::fs::copy(
        repo_root().join("tests/fixtures/models/conv.mlmodel"),
        ws.path().join("model.mlmodel"),
    )
    .expect("copy");
    let mut client = TestClient::on_workspace(ws.path()).await;
    let text = "{\n  \"model\": \"mo𝄞del.mlmodel\",\n  \"{nbits\"\n: 4,\n  \"l:ayers\": {}\n}\n";
    let doc = uri(&ws.path().join("g.quant.json"));
    client.open(&doc, 1, text).await;
    for (at, _) in text.char_indices().chain([(text.len(), ' ')]) {
        for method in ["textDocument/completion", "textDocument/hover"] {
            let params = json!({"textDocument": {"uri": doc}, "position": position(text, at)});
            let id = client.send_request(method, params).await;
            let answer = tokio::time::timeout(ANSWER_WITHIN, client.response(id)).await;
            let Ok(answer) = answer else {
                panic!(
                    "no answer to {method} at byte {at} ({})",
                    position(text, at)
                )
            };
            if let Ok(result) = answer {
                check_answer(method, text, &result)
                    .unwrap_or_else(|e| panic!("{method} at byte {at}: {e}"));
            }
        }
    }
    client.shutdown().await;
}

/// Found by the `server` fuzz target: a body that is JSON but not a JSON-RPC message (here
/// without `"jsonrpc": "2.0"`) used to end the session, because the framed reader of
/// tower-lsp-server stops after a decode error of that kind. The transport now turns such a
/// body into a malformed-message notification, and every later request is answered.
#[tokio::test]
async fn a_message_that_is_not_jsonrpc_does_not_end_the_session() {
    let (mut client, _) = TestClient::initialized(
        vscode_capabilities(),
        None,
        json!({"diagnosticsDelayMs": 0}),
    )
    .await;
    client
        .send_body(r#"{"method": "textDocument/hover", "params": {}}"#)
        .await;
    let answer = tokio::time::timeout(
        ANSWER_WITHIN,
        client.request(
            "textDocument/hover",
            json!({"textDocument": {"uri": "file:///nope.quant.json"}, "position": {"line": 0, "character": 0}}),
        ),
    )
    .await;
    assert!(
        answer.is_ok(),
        "the server stopped answering after one malformed message"
    );
    client.shutdown().await;
}

/// The real `coremlq-lsp` binary over stdio while the model its config names is rewritten
/// in place (truncated, then written: what `cp`, many editors and exporters do) for a
/// second, with requests that read the model in between: the process must survive and
/// exit cleanly on `exit`.
///
/// (The library-level race, a read of the mapped file at the moment it shrinks, is the
/// ignored `reliability_changing_files` tests of the `coremlq` package.)
#[cfg(unix)]
#[test]
fn the_server_survives_a_model_rewritten_in_place() {
    use std::io::{Read, Write};
    use std::os::unix::process::ExitStatusExt;
    use std::process::{Command, Stdio};

    let ws = tempfile::tempdir().expect("tempdir");
    let model = ws.path().join("model.mlmodel");
    let big = std::fs::read(repo_root().join("examples/MobileNetMini.mlmodel")).expect("read");
    let small =
        std::fs::read(repo_root().join("tests/fixtures/models/conv.mlmodel")).expect("read");
    std::fs::write(&model, &big).expect("write");
    let mut child = Command::new(env!("CARGO_BIN_EXE_coremlq-lsp"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn coremlq-lsp");
    let mut stdin = child.stdin.take().expect("stdin");
    let mut stdout = child.stdout.take().expect("stdout");
    let drain = std::thread::spawn(move || {
        let mut all = Vec::new();
        let _ = stdout.read_to_end(&mut all);
        all
    });
    let mut send = |v: Value| {
        let body = v.to_string();
        let _ = write!(stdin, "Content-Length: {}\r\n\r\n{}", body.len(), body);
        let _ = stdin.flush();
    };
    let doc = uri(&ws.path().join("a.quant.json"));
    send(
        json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"processId": null,
        "rootUri": uri(ws.path()), "capabilities": {}, "initializationOptions": {"diagnosticsDelayMs": 0}}}),
    );
    send(json!({"jsonrpc": "2.0", "method": "initialized", "params": {}}));
    send(
        json!({"jsonrpc": "2.0", "method": "textDocument/didOpen", "params": {"textDocument": {"uri": doc,
        "languageId": "jsonc", "version": 1, "text": "{\n  \"model\": \"model.mlmodel\",\n  \"nbits\": 4,\n  \"quantization_mode\": \"kmeans_lut\"\n}\n"}}}),
    );
    let started = std::time::Instant::now();
    let mut id = 10;
    let mut n = 0;
    while started.elapsed() < std::time::Duration::from_secs(1) {
        let _ = std::fs::write(&model, if n % 2 == 0 { &small } else { &big });
        n += 1;
        send(
            json!({"jsonrpc": "2.0", "method": "workspace/didChangeWatchedFiles",
            "params": {"changes": [{"uri": uri(&model), "type": 2}]}}),
        );
        for method in [
            "textDocument/inlayHint",
            "textDocument/codeLens",
            "textDocument/hover",
        ] {
            id += 1;
            send(
                json!({"jsonrpc": "2.0", "id": id, "method": method, "params": {"textDocument": {"uri": doc},
                "position": {"line": 2, "character": 5},
                "range": {"start": {"line": 0, "character": 0}, "end": {"line": 5, "character": 0}}}}),
            );
        }
        for command in ["coremlq.modelSummary", "coremlq.quantize"] {
            id += 1;
            send(
                json!({"jsonrpc": "2.0", "id": id, "method": "workspace/executeCommand",
                "params": {"command": command, "arguments": [doc]}}),
            );
        }
    }
    send(json!({"jsonrpc": "2.0", "id": 2, "method": "shutdown"}));
    send(json!({"jsonrpc": "2.0", "method": "exit"}));
    drop(stdin);
    let status = child.wait().expect("wait");
    let out = drain.join().unwrap_or_default();
    assert!(
        status.success(),
        "coremlq-lsp ended with {status} (signal {:?}) after {n} rewrites",
        status.signal()
    );
    assert!(
        String::from_utf8_lossy(&out).contains("\"id\":2"),
        "shutdown was not answered"
    );
}
