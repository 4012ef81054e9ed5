//! Input framing in front of the JSON-RPC codec: every frame the codec sees is well formed.
//!
//! The codec stops reading for good after one undecodable frame, which would turn a single
//! bad message into a dead server. Here broken headers are skipped, a body that is not a
//! JSON-RPC 2.0 object becomes a `$/coremlq/malformedMessage` notification, which the
//! server reports through `window/logMessage` and otherwise ignores, and a body with a
//! duplicate key is passed on with the last value only.

use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};

/// The notification a malformed message becomes.
pub const MALFORMED: &str = "$/coremlq/malformedMessage";

/// Largest body accepted (a config is a few kilobytes; this bounds memory).
const MAX_BODY: usize = 64 << 20;

/// Copies frames from `input` to `output`, repairing or replacing the malformed ones, until
/// either side closes.
pub async fn sanitize<R, W>(input: R, mut output: W)
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut reader = BufReader::new(input);
    loop {
        let mut len: Option<usize> = None;
        let mut header_lines = 0;
        loop {
            let mut line = String::new();
            match reader.read_line(&mut line).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            let line = line.trim();
            if line.is_empty() {
                if header_lines > 0 {
                    break;
                }
                continue;
            }
            header_lines += 1;
            if let Some((name, value)) = line.split_once(':') {
                if name.trim().eq_ignore_ascii_case("content-length") {
                    len = value.trim().parse().ok();
                }
            }
        }
        // A header block without a usable length is skipped.
        let Some(len) = len.filter(|&l| l <= MAX_BODY) else {
            continue;
        };
        let mut body = vec![0; len];
        if reader.read_exact(&mut body).await.is_err() {
            return;
        }
        // Re-serialised from the parsed value, so a duplicate key reaches the codec once.
        let body = match serde_json::from_slice::<Value>(&body) {
            Ok(v) if v.get("jsonrpc").and_then(Value::as_str) == Some("2.0") => {
                serde_json::to_vec(&v).unwrap_or_else(|e| malformed(&e.to_string()))
            }
            Ok(_) => malformed("not a JSON-RPC 2.0 message object"),
            Err(e) => malformed(&e.to_string()),
        };
        let header = format!("Content-Length: {}\r\n\r\n", body.len());
        if output.write_all(header.as_bytes()).await.is_err()
            || output.write_all(&body).await.is_err()
        {
            return;
        }
        if output.flush().await.is_err() {
            return;
        }
    }
}

fn malformed(error: &str) -> Vec<u8> {
    json!({"jsonrpc": "2.0", "method": MALFORMED, "params": {"error": error}})
        .to_string()
        .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn repairs_the_stream() {
        let dup = r#"{"jsonrpc":"2.0","method":"a","method":"b"}"#;
        let input = format!(
            "garbage\r\n\r\nContent-Length: 5\r\n\r\n{{nope\
Content-Length: 2\r\n\r\n[]Content-Length: 2\r\ncontent-type: application/vscode-jsonrpc; charset=utf-8\r\n\r\n{{}}\
Content-Length: {}\r\n\r\n{dup}",
            dup.len()
        );
        let mut out = Vec::new();
        sanitize(input.as_bytes(), &mut out).await;
        let out = String::from_utf8(out).unwrap_or_default();
        let bodies: Vec<&str> = out
            .split("\r\n\r\n")
            .skip(1)
            .map(|b| b.split("Content-Length").next().unwrap_or(""))
            .collect();
        assert_eq!(bodies.len(), 4);
        assert!(
            bodies[0].contains(MALFORMED) && bodies[0].contains("key must be a string"),
            "{}",
            bodies[0]
        );
        assert!(bodies[1].contains("not a JSON-RPC 2.0 message object"));
        assert!(bodies[2].contains("not a JSON-RPC 2.0 message object"));
        assert_eq!(bodies[3], r#"{"jsonrpc":"2.0","method":"b"}"#);
    }
}
