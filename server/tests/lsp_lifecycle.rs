//! Lifecycle over real JSON-RPC: initialize and negotiation, errors instead of crashes,
//! document sync and diagnostics publishing, clean shutdown; plus the real binary on stdio.

mod support;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

use expect_test::expect;
use serde_json::{json, Value};
use support::*;

#[tokio::test]
async fn initialize_negotiates_encoding_and_announces_features() {
    let (client, result) = TestClient::initialized(neovim_capabilities(), None, Value::Null).await;
    assert_eq!(result["capabilities"]["positionEncoding"], "utf-8");
    let caps = &result["capabilities"];
    let mut keys: Vec<&String> = caps
        .as_object()
        .map(|o| o.keys().collect())
        .unwrap_or_default();
    keys.sort();
    expect![[r#"["codeActionProvider", "codeLensProvider", "completionProvider", "documentSymbolProvider", "executeCommandProvider", "hoverProvider", "inlayHintProvider", "positionEncoding", "textDocumentSync"]"#]]
        .assert_eq(&format!("{keys:?}"));
    assert_eq!(caps["textDocumentSync"]["change"], 2, "incremental sync");
    assert_eq!(
        caps["executeCommandProvider"]["commands"],
        json!(["coremlq.quantize", "coremlq.modelSummary"])
    );
    client.shutdown().await;

    let (client, result) = TestClient::initialized(vscode_capabilities(), None, Value::Null).await;
    assert_eq!(result["capabilities"]["positionEncoding"], "utf-16");
    client.shutdown().await;
}

#[tokio::test]
async fn unknown_methods_and_malformed_messages_are_errors_not_crashes() {
    let (mut client, _) = TestClient::initialized(vscode_capabilities(), None, Value::Null).await;
    let err = client
        .request("coremlq/noSuchMethod", json!({}))
        .await
        .unwrap_err();
    assert_eq!(err["code"], -32601);
    // Invalid params for a known method.
    let err = client
        .request("textDocument/hover", json!({"nonsense": 1}))
        .await
        .unwrap_err();
    assert_eq!(err["code"], -32602);
    // A body that is not JSON, and a header block without a length: logged, then ignored.
    client.send_body("{this is not json").await;
    client.send_bytes(b"X-Nonsense: 1\r\n\r\n").await;
    let log = client
        .notification(|m| m["method"] == "window/logMessage")
        .await;
    assert!(
        log["params"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("malformed"),
        "{log}"
    );
    // A request for a document that is not open answers null.
    let hover = client
        .request("textDocument/hover", json!({"textDocument": {"uri": "file:///nope.quant.json"}, "position": {"line": 0, "character": 0}}))
        .await;
    assert_eq!(hover, Ok(Value::Null));
    // Unknown notifications are ignored; an unknown command is an error.
    client
        .notify("coremlq/unknownNotification", json!({}))
        .await;
    let err = client
        .request(
            "workspace/executeCommand",
            json!({"command": "coremlq.nope", "arguments": []}),
        )
        .await
        .unwrap_err();
    assert_eq!(err["code"], -32602);
    client.shutdown().await;
}

#[tokio::test]
async fn diagnostics_on_open_change_and_close() {
    let (mut client, _) = TestClient::initialized(
        vscode_capabilities(),
        None,
        json!({"diagnosticsDelayMs": 0}),
    )
    .await;
    let uri = "file:///ws/a.quant.json";
    client.open(uri, 1, "{}").await;
    let _ = client.diagnostics(uri, Some(1)).await;
    client.replace(uri, 2, "{\"nbits\": 8}").await;
    let _ = client.diagnostics(uri, Some(2)).await;
    client
        .notify(
            "textDocument/didClose",
            json!({"textDocument": {"uri": uri}}),
        )
        .await;
    assert_eq!(client.diagnostics(uri, None).await, json!([]));
    client.shutdown().await;
}

#[tokio::test]
async fn registers_watcher_and_pulls_configuration_when_offered() {
    let (mut client, _) = TestClient::initialized(vscode_capabilities(), None, Value::Null).await;
    // Any request round-trip lets `initialized` finish its own requests first.
    let _ = client
        .request(
            "textDocument/hover",
            json!({"textDocument": {"uri": "file:///x"}, "position": {"line": 0, "character": 0}}),
        )
        .await;
    for _ in 0..5 {
        if client.server_requests.len() >= 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let _ = client.request("textDocument/hover", json!({"textDocument": {"uri": "file:///x"}, "position": {"line": 0, "character": 0}})).await;
    }
    let methods: Vec<&str> = client
        .server_requests
        .iter()
        .filter_map(|r| r["method"].as_str())
        .collect();
    assert_eq!(
        methods,
        ["workspace/configuration", "client/registerCapability"]
    );
    let reg = &client.server_requests[1]["params"]["registrations"][0];
    assert_eq!(reg["method"], "workspace/didChangeWatchedFiles");
    client.shutdown().await;

    // Neovim-like: neither configuration nor dynamic registration is requested.
    let (mut client, _) = TestClient::initialized(neovim_capabilities(), None, Value::Null).await;
    let _ = client
        .request(
            "textDocument/hover",
            json!({"textDocument": {"uri": "file:///x"}, "position": {"line": 0, "character": 0}}),
        )
        .await;
    assert!(client.server_requests.is_empty());
    client.shutdown().await;
}

fn write_frame(w: &mut impl Write, msg: &Value) {
    let body = msg.to_string();
    write!(w, "Content-Length: {}\r\n\r\n{}", body.len(), body).expect("write");
    w.flush().expect("flush");
}

fn read_frame_sync(r: &mut impl BufRead) -> Value {
    let mut len = 0;
    loop {
        let mut line = String::new();
        assert!(
            r.read_line(&mut line).expect("read") > 0,
            "server closed stdout"
        );
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some(v) = line.strip_prefix("Content-Length:") {
            len = v.trim().parse().expect("length");
        }
    }
    let mut body = vec![0; len];
    r.read_exact(&mut body).expect("body");
    serde_json::from_slice(&body).expect("json")
}

/// The real binary, as an editor starts it (`--stdio` appended), initializes, answers and exits.
#[test]
fn real_binary_over_stdio() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_coremlq-lsp"))
        .arg("--stdio")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn coremlq-lsp");
    let mut stdin = child.stdin.take().expect("stdin");
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
    write_frame(
        &mut stdin,
        &json!({"jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"processId": null, "rootUri": null, "capabilities": neovim_capabilities()}}),
    );
    let init = read_frame_sync(&mut stdout);
    assert_eq!(init["id"], 1);
    assert_eq!(init["result"]["serverInfo"]["name"], "coremlq-lsp");
    write_frame(
        &mut stdin,
        &json!({"jsonrpc": "2.0", "method": "initialized", "params": {}}),
    );
    let uri = "file:///ws/%C3%A9.quant.json";
    write_frame(
        &mut stdin,
        &json!({"jsonrpc": "2.0", "method": "textDocument/didOpen",
        "params": {"textDocument": {"uri": uri, "languageId": "jsonc", "version": 7, "text": "{"}}}),
    );
    let diags = loop {
        let msg = read_frame_sync(&mut stdout);
        if msg["method"] == "textDocument/publishDiagnostics" {
            break msg;
        }
    };
    assert_eq!(diags["params"]["version"], 7);
    write_frame(
        &mut stdin,
        &json!({"jsonrpc": "2.0", "id": 2, "method": "shutdown"}),
    );
    loop {
        let msg = read_frame_sync(&mut stdout);
        if msg["id"] == 2 {
            break;
        }
    }
    // Exit while stdin stays open: the server must not wait for end of input.
    write_frame(&mut stdin, &json!({"jsonrpc": "2.0", "method": "exit"}));
    let start = std::time::Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            assert!(status.success(), "{status}");
            break;
        }
        assert!(
            start.elapsed() < std::time::Duration::from_secs(10),
            "server did not exit"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    drop(stdin);
}
