//! An in-process LSP client: real JSON-RPC frames over a duplex pipe to the server's
//! `LspService` + `Server`, with helpers for fixtures (`$0` marks the cursor).
#![allow(dead_code)]

pub mod model;

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{
    AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader, DuplexStream, ReadHalf, WriteHalf,
};
use tokio::task::JoinHandle;

/// How long any single wait may take before the test fails.
pub const TIMEOUT: Duration = Duration::from_secs(20);

/// One client connection to an in-process server.
pub struct TestClient {
    writer: WriteHalf<DuplexStream>,
    reader: BufReader<ReadHalf<DuplexStream>>,
    next_id: i64,
    /// Notifications received and not yet consumed.
    pub inbox: VecDeque<Value>,
    /// Every request the server sent to the client, in order.
    pub server_requests: Vec<Value>,
    /// The answer to `workspace/configuration` (one value per item).
    pub configuration: Value,
    /// The answer to `window/showMessageRequest`.
    pub message_action: Value,
    server: JoinHandle<()>,
}

/// Client capabilities like a recent VS Code: UTF-16 only, snippets, markdown, dynamic
/// file watching, configuration and progress.
pub fn vscode_capabilities() -> Value {
    json!({
        "general": {"positionEncodings": ["utf-16"]},
        "textDocument": {
            "completion": {"completionItem": {"snippetSupport": true}},
            "hover": {"contentFormat": ["markdown", "plaintext"]},
            "publishDiagnostics": {"versionSupport": true}
        },
        "workspace": {
            "configuration": true,
            "didChangeWatchedFiles": {"dynamicRegistration": true},
            "workspaceFolders": true
        },
        "window": {"workDoneProgress": true, "showMessage": {}}
    })
}

/// Client capabilities like Neovim 0.11: offers UTF-8, plaintext-first hover, no snippets,
/// no dynamic file watching.
pub fn neovim_capabilities() -> Value {
    json!({
        "general": {"positionEncodings": ["utf-8", "utf-16", "utf-32"]},
        "textDocument": {"hover": {"contentFormat": ["plaintext"]}},
        "window": {"workDoneProgress": true, "showMessage": {}}
    })
}

impl TestClient {
    /// Starts a server in this runtime.
    pub fn start() -> TestClient {
        let (client_io, server_io) = tokio::io::duplex(1 << 20);
        let (server_read, server_write) = tokio::io::split(server_io);
        let server = tokio::spawn(coremlq_lsp::serve(server_read, server_write));
        let (reader, writer) = tokio::io::split(client_io);
        TestClient {
            writer,
            reader: BufReader::new(reader),
            next_id: 0,
            inbox: VecDeque::new(),
            server_requests: Vec::new(),
            configuration: json!([null]),
            message_action: Value::Null,
            server,
        }
    }

    /// Starts a server and completes `initialize` + `initialized`.
    pub async fn initialized(
        capabilities: Value,
        root: Option<&Path>,
        options: Value,
    ) -> (TestClient, Value) {
        let mut client = TestClient::start();
        let folders = root
            .map(|r| json!([{"uri": uri(r), "name": "ws"}]))
            .unwrap_or(Value::Null);
        let result = client
            .request(
                "initialize",
                json!({"processId": null, "rootUri": null, "capabilities": capabilities,
                       "workspaceFolders": folders, "initializationOptions": options}),
            )
            .await
            .expect("initialize");
        client.notify("initialized", json!({})).await;
        (client, result)
    }

    /// A VS Code-like client on the workspace `root`, diagnostics published without delay.
    pub async fn on_workspace(root: &Path) -> TestClient {
        let options = json!({"diagnosticsDelayMs": 0});
        TestClient::initialized(vscode_capabilities(), Some(root), options)
            .await
            .0
    }

    /// Writes raw bytes as one frame body.
    pub async fn send_body(&mut self, body: &str) {
        let frame = format!("Content-Length: {}\r\n\r\n{}", body.len(), body);
        self.writer
            .write_all(frame.as_bytes())
            .await
            .expect("write");
        self.writer.flush().await.expect("flush");
    }

    /// Writes bytes as they are (for malformed input).
    pub async fn send_bytes(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).await.expect("write");
        self.writer.flush().await.expect("flush");
    }

    /// Sends a notification.
    pub async fn notify(&mut self, method: &str, params: Value) {
        let msg = json!({"jsonrpc": "2.0", "method": method, "params": params});
        self.send_body(&msg.to_string()).await;
    }

    /// Sends a request without waiting; returns its id.
    pub async fn send_request(&mut self, method: &str, params: Value) -> i64 {
        self.next_id += 1;
        let id = self.next_id;
        let msg = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
        self.send_body(&msg.to_string()).await;
        id
    }

    /// Sends a request and waits for its response: `Ok(result)` or `Err(error)`.
    pub async fn request(&mut self, method: &str, params: Value) -> Result<Value, Value> {
        let id = self.send_request(method, params).await;
        self.response(id).await
    }

    /// Waits for the response to request `id`.
    pub async fn response(&mut self, id: i64) -> Result<Value, Value> {
        let early = self
            .inbox
            .iter()
            .position(|m| m.get("method").is_none() && m["id"] == json!(id));
        let mut early = early.and_then(|i| self.inbox.remove(i));
        loop {
            let msg = match early.take() {
                Some(m) => m,
                None => self.read().await,
            };
            if msg.get("method").is_none() && msg["id"] == json!(id) {
                return match msg.get("error") {
                    Some(err) => Err(err.clone()),
                    None => Ok(msg.get("result").cloned().unwrap_or(Value::Null)),
                };
            }
            if msg.get("method").is_none() {
                self.inbox.push_back(msg);
            }
        }
    }

    /// Reads the next message, answering the server's own requests and queueing
    /// notifications (the message is returned too).
    async fn read(&mut self) -> Value {
        let msg = tokio::time::timeout(TIMEOUT, read_frame(&mut self.reader))
            .await
            .expect("timed out waiting for the server")
            .expect("server closed the connection");
        if let (Some(method), Some(id)) = (msg.get("method").and_then(Value::as_str), msg.get("id"))
        {
            let result = match method {
                "workspace/configuration" => self.configuration.clone(),
                "window/showMessageRequest" => self.message_action.clone(),
                _ => Value::Null,
            };
            let reply = json!({"jsonrpc": "2.0", "id": id, "result": result});
            self.server_requests.push(msg.clone());
            self.send_body(&reply.to_string()).await;
        } else if msg.get("method").is_some() {
            self.inbox.push_back(msg.clone());
        }
        msg
    }

    /// The queued notifications and every request the server has sent so far.
    #[allow(dead_code)]
    pub fn received(&self) -> Vec<Value> {
        self.inbox
            .iter()
            .chain(&self.server_requests)
            .cloned()
            .collect()
    }

    /// Waits for a notification matching `pred`, consuming it (earlier ones stay queued).
    pub async fn notification(&mut self, pred: impl Fn(&Value) -> bool) -> Value {
        let mut seen = 0;
        loop {
            if let Some(i) = self
                .inbox
                .iter()
                .skip(seen)
                .position(|m| m.get("method").is_some() && pred(m))
            {
                return self.inbox.remove(seen + i).unwrap_or_default();
            }
            seen = self.inbox.len();
            self.read().await;
        }
    }

    /// Waits for the diagnostics of `uri` at `version` (`None`: the clearing on close).
    pub async fn diagnostics(&mut self, uri: &str, version: Option<i64>) -> Value {
        let uri = uri.to_owned();
        let msg = self
            .notification(move |m| {
                m["method"] == "textDocument/publishDiagnostics"
                    && m["params"]["uri"] == json!(uri)
                    && m["params"].get("version").and_then(Value::as_i64) == version
            })
            .await;
        msg["params"]["diagnostics"].clone()
    }

    /// Opens a document.
    pub async fn open(&mut self, uri: &str, version: i64, text: &str) {
        self.notify(
            "textDocument/didOpen",
            json!({"textDocument": {"uri": uri, "languageId": "jsonc", "version": version, "text": text}}),
        )
        .await;
    }

    /// Replaces a document's text.
    pub async fn replace(&mut self, uri: &str, version: i64, text: &str) {
        self.notify(
            "textDocument/didChange",
            json!({"textDocument": {"uri": uri, "version": version}, "contentChanges": [{"text": text}]}),
        )
        .await;
    }

    /// `shutdown` then `exit`; the server task must end.
    pub async fn shutdown(mut self) {
        self.request("shutdown", Value::Null)
            .await
            .expect("shutdown");
        self.notify("exit", Value::Null).await;
        tokio::time::timeout(TIMEOUT, self.server)
            .await
            .expect("server did not exit")
            .expect("server task");
    }
}

/// Reads one `Content-Length` frame; `None` at end of stream.
pub async fn read_frame<R: tokio::io::AsyncBufRead + Unpin>(reader: &mut R) -> Option<Value> {
    let mut len = None;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).await.ok()? == 0 {
            return None;
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some(v) = line.strip_prefix("Content-Length:") {
            len = v.trim().parse::<usize>().ok();
        }
    }
    let mut body = vec![0; len?];
    reader.read_exact(&mut body).await.ok()?;
    serde_json::from_slice(&body).ok()
}

/// The `file:` URI of a path.
pub fn uri(path: &Path) -> String {
    let mut s = String::from("file://");
    for c in path.to_string_lossy().chars() {
        match c {
            ' ' => s.push_str("%20"),
            '#' => s.push_str("%23"),
            '%' => s.push_str("%25"),
            c => s.push(c),
        }
    }
    s
}

/// Splits a fixture at its `$0` marker: the text without it and the marker's UTF-16 position.
pub fn cursor(fixture: &str) -> (String, Value) {
    let at = fixture.find("$0").expect("fixture without $0");
    let before = &fixture[..at];
    let line = before.matches('\n').count();
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let character: usize = before[line_start..].chars().map(char::len_utf16).sum();
    (
        fixture.replacen("$0", "", 1),
        json!({"line": line, "character": character}),
    )
}

/// The repository's root folder.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A fresh workspace folder holding a copy of the bundled example model.
pub fn workspace_with_example() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::copy(
        repo_root().join("examples/MobileNetMini.mlmodel"),
        dir.path().join("MobileNetMini.mlmodel"),
    )
    .expect("copy example model");
    dir
}
