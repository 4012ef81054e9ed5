//! Fuzz target: the language server's message handling.
//!
//! The input is a sequence of JSON-RPC bodies separated by NUL bytes, sent after a real
//! `initialize` and the opening of one config, to an in-process server; a chunk starting
//! with `Content-Length` is sent raw (broken framing). The server must answer `shutdown`
//! afterwards and exit: a panic, a hang or a dead connection is a bug.

#![no_main]

use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// What the server gets before the fuzzed messages.
const PRELUDE: &[&str] = &[
    r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"processId":null,"rootUri":null,"capabilities":{"general":{"positionEncodings":["utf-16"]}},"initializationOptions":{"diagnosticsDelayMs":0}}}"#,
    r#"{"jsonrpc":"2.0","method":"initialized","params":{}}"#,
    r#"{"jsonrpc":"2.0","method":"textDocument/didOpen","params":{"textDocument":{"uri":"file:///ws/a.quant.json","languageId":"jsonc","version":1,"text":"{\n  \"model\": \"m.mlmodel\",\n  \"nbits\": 8\n}\n"}}}"#,
];

const SHUTDOWN_ID: i64 = 999_999_999;

fn frame(body: &[u8]) -> Vec<u8> {
    let mut out = format!("Content-Length: {}\r\n\r\n", body.len()).into_bytes();
    out.extend_from_slice(body);
    out
}

/// Whether `body` is a well-formed JSON-RPC request or notification, or not JSON at all.
///
/// Known upstream behaviour (tower-lsp-server's framed reader stops after a body that is
/// JSON but not a JSON-RPC message, e.g. without `"jsonrpc": "2.0"`): the session ends
/// after answering "Invalid request". Such inputs are not required to reach `shutdown`;
/// `server/tests/reliability_load.rs` keeps the ignored regression test for it.
fn well_formed_or_not_json(body: &[u8]) -> bool {
    /// The shape of a request or notification, strict about duplicate members (as the
    /// server's decoder is).
    #[derive(serde::Deserialize)]
    #[allow(dead_code)]
    struct Strict {
        jsonrpc: String,
        method: String,
        #[serde(default)]
        id: Option<serde_json::Value>,
        #[serde(default)]
        params: Option<serde_json::Value>,
    }
    if serde_json::from_slice::<serde_json::Value>(body).is_err() {
        return true;
    }
    let Ok(msg) = serde_json::from_slice::<Strict>(body) else {
        return false;
    };
    let id_ok = msg
        .id
        .as_ref()
        .is_none_or(|id| id.is_i64() || id.is_string() || id.is_null());
    let params_ok = msg
        .params
        .as_ref()
        .is_none_or(|p| p.is_object() || p.is_array() || p.is_null());
    msg.jsonrpc == "2.0" && id_ok && params_ok
}

fuzz_target!(|data: &[u8]| {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(_) => return,
    };
    runtime.block_on(async {
        // One pipe each way, so that dropping the client's writer is an end of input.
        let (mut to_server, server_read) = tokio::io::duplex(1 << 16);
        let (server_write, mut from_server) = tokio::io::duplex(1 << 16);
        let served = tokio::spawn(coremlq_lsp::serve(server_read, server_write));
        // Drain the server's output concurrently, looking for the answer to `shutdown`.
        let reader = tokio::spawn(async move {
            let mut seen = Vec::new();
            let mut buf = vec![0u8; 1 << 14];
            let needle = format!("\"id\":{SHUTDOWN_ID}");
            loop {
                match from_server.read(&mut buf).await {
                    Ok(0) | Err(_) => return false,
                    Ok(n) => {
                        seen.extend_from_slice(&buf[..n]);
                        if seen.windows(needle.len()).any(|w| w == needle.as_bytes()) {
                            return true;
                        }
                        // Keep only a tail long enough to hold the needle across reads.
                        if seen.len() > 1 << 16 {
                            seen.drain(..seen.len() - 64);
                        }
                    }
                }
            }
        });
        let mut input = Vec::new();
        for m in PRELUDE {
            input.extend(frame(m.as_bytes()));
        }
        // Raw framing can legitimately swallow what follows, and a fuzzed `exit` ends the
        // session: then only a clean end of the server on end of input is required.
        let mut must_answer = true;
        for chunk in data.split(|&b| b == 0) {
            if chunk.windows(4).any(|w| w == b"exit") {
                must_answer = false;
            }
            if !well_formed_or_not_json(chunk) {
                must_answer = false;
            }
            if chunk.starts_with(b"Content-Length") {
                must_answer = false;
                input.extend_from_slice(chunk);
            } else if !chunk.is_empty() {
                input.extend(frame(chunk));
            }
        }
        input.extend(frame(
            format!(r#"{{"jsonrpc":"2.0","id":{SHUTDOWN_ID},"method":"shutdown"}}"#).as_bytes(),
        ));
        input.extend(frame(br#"{"jsonrpc":"2.0","method":"exit"}"#));
        let exchange = async {
            let _ = to_server.write_all(&input).await;
            let _ = to_server.flush().await;
            if must_answer {
                let answered = reader.await.unwrap_or(false);
                assert!(
                    answered,
                    "the server closed the connection without answering shutdown"
                );
            }
            // End of input: the server must stop by itself.
            drop(to_server);
            served.await
        };
        if tokio::time::timeout(Duration::from_secs(5), exchange)
            .await
            .is_err()
        {
            panic!("the server did not finish within 5 s of its input");
        }
    });
});
