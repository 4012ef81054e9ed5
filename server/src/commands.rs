//! `workspace/executeCommand`: `coremlq.quantize` and `coremlq.modelSummary`.
//!
//! Quantizing runs on a blocking thread, reports `$/progress` per layer, and stops on
//! `$/cancelRequest` (the request future is dropped: a guard cancels the run) or
//! `window/workDoneProgress/cancel`; the engine then removes its temporary file, so a
//! cancelled run leaves no file. Writing outside the workspace folders needs the user's
//! confirmation through `window/showMessageRequest`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use coremlq::ide::{self, facts, Severity};
use coremlq::quant::{self, CancelToken, QuantError, RunOptions};
use serde_json::{json, Value};
use tower_lsp_server::jsonrpc::{Error, ErrorCode, Result};
use tower_lsp_server::ls_types::{
    ExecuteCommandParams, MessageActionItem, MessageType, NumberOrString, ProgressToken, Uri,
};

use crate::analysis::{load_model, resolve_model, with_analysis};
use crate::state::{Inner, Snapshot};

/// The command that quantizes the model of a config (args: `[config uri]`).
pub const QUANTIZE: &str = "coremlq.quantize";
/// The command that returns a JSON summary of a config's model (args: `[config uri]`).
pub const MODEL_SUMMARY: &str = "coremlq.modelSummary";
/// Every command the server executes.
pub const ALL: [&str; 2] = [QUANTIZE, MODEL_SUMMARY];

/// Running quantize jobs by progress token, so `window/workDoneProgress/cancel` finds them.
#[derive(Default)]
pub struct Jobs {
    next: AtomicU64,
    running: Mutex<HashMap<String, CancelToken>>,
}

impl Jobs {
    /// Registers a new job under the client's progress token, or a new one of the server's;
    /// returns the token's key and the cancellation flag.
    pub fn start(&self, client_token: Option<&ProgressToken>) -> (String, CancelToken) {
        let token = client_token.map(token_key).unwrap_or_else(|| {
            format!(
                "coremlq-quantize-{}",
                self.next.fetch_add(1, Ordering::Relaxed) + 1
            )
        });
        let cancel = CancelToken::new();
        if let Ok(mut running) = self.running.lock() {
            running.insert(token.clone(), cancel.clone());
        }
        (token, cancel)
    }

    /// Forgets a finished job.
    pub fn finish(&self, token: &str) {
        if let Ok(mut running) = self.running.lock() {
            running.remove(token);
        }
    }

    /// Asks every job to stop (shutdown).
    pub fn cancel_all(&self) {
        if let Ok(running) = self.running.lock() {
            running.values().for_each(CancelToken::cancel);
        }
    }

    /// Asks the job with this token to stop.
    pub fn cancel(&self, token: &str) {
        if let Ok(running) = self.running.lock() {
            if let Some(c) = running.get(token) {
                c.cancel();
            }
        }
    }
}

/// Cancels the run and forgets the job when the command's future ends or is dropped.
struct JobGuard<'a> {
    jobs: &'a Jobs,
    token: String,
    cancel: CancelToken,
}

impl Drop for JobGuard<'_> {
    fn drop(&mut self) {
        self.cancel.cancel();
        self.jobs.finish(&self.token);
    }
}

fn invalid(message: impl Into<String>) -> Error {
    Error {
        code: ErrorCode::InvalidParams,
        message: message.into().into(),
        data: None,
    }
}

fn failed(message: impl Into<String>) -> Error {
    Error {
        code: ErrorCode::ServerError(-32803),
        message: message.into().into(),
        data: None,
    }
}

/// The config URI in a command's arguments.
fn config_uri(params: &ExecuteCommandParams) -> Result<Uri> {
    let arg = params
        .arguments
        .first()
        .ok_or_else(|| invalid("expected [config uri]"))?;
    serde_json::from_value(arg.clone()).map_err(|e| invalid(format!("config uri: {e}")))
}

/// The open document, or the config read from disk.
fn snapshot_of(inner: &Inner, uri: &Uri) -> Result<Snapshot> {
    if let Some(s) = inner.snapshot(uri) {
        return Ok(s);
    }
    let path = uri
        .to_file_path()
        .ok_or_else(|| invalid(format!("{}: not a file", uri.as_str())))?
        .into_owned();
    let text =
        std::fs::read_to_string(&path).map_err(|e| failed(format!("{}: {e}", path.display())))?;
    let doc = crate::documents::Document::new(uri.clone(), 0, &text);
    Ok(Snapshot {
        uri: uri.clone(),
        version: 0,
        rope: doc.rope,
        text: doc.text,
        config_path: Some(path),
        session: inner.session(),
        models: inner.models.clone(),
    })
}

/// Runs a command.
pub async fn execute(inner: &Arc<Inner>, params: ExecuteCommandParams) -> Result<Option<Value>> {
    match params.command.as_str() {
        MODEL_SUMMARY => {
            let snap = snapshot_of(inner, &config_uri(&params)?)?;
            let summary = tokio::task::spawn_blocking(move || model_summary(&snap))
                .await
                .map_err(|e| failed(e.to_string()))??;
            Ok(Some(summary))
        }
        QUANTIZE => {
            let snap = snapshot_of(inner, &config_uri(&params)?)?;
            let token = params.work_done_progress_params.work_done_token.clone();
            quantize_command(inner, snap, token).await.map(Some)
        }
        other => Err(invalid(format!("unknown command {other:?}"))),
    }
}

/// The JSON summary of a config's model.
pub fn model_summary(snap: &Snapshot) -> Result<Value> {
    with_analysis(snap, true, |an| {
        let m = an.model.ok_or_else(|| {
            failed(first_error(an).unwrap_or_else(|| "the config names no model".into()))
        })?;
        let idx = &m.index;
        let root = idx
            .models
            .first()
            .ok_or_else(|| failed("the model index is empty"))?;
        let types: Vec<Value> = facts::type_stats(idx)
            .into_iter()
            .map(|t| json!({"type": t.name, "layers": t.layers, "weightBytes": t.bytes}))
            .collect();
        let largest: Vec<Value> = facts::layer_stats(idx)
            .into_iter()
            .take(20)
            .map(|l| json!({"name": l.name, "type": l.layer_type, "weights": l.weights, "weightBytes": l.bytes}))
            .collect();
        let estimate = an.estimate().map(|e| {
            json!({"bytesBefore": e.bytes_before, "bytesAfter": e.bytes_after,
                   "weightBytesBefore": e.weight_bytes_before, "weightBytesAfter": e.weight_bytes_after})
        });
        Ok(json!({
            "path": m.path,
            "modelType": root.model_type,
            "specificationVersion": root.specification_version,
            "isUpdatable": root.is_updatable,
            "fileBytes": idx.file_bytes,
            "weightBytes": idx.weight_bytes(),
            "layers": idx.layers.len(),
            "layersWithWeights": idx.layers.iter().filter(|l| !l.weights.is_empty()).count(),
            "storage": facts::storage_mix(idx),
            "inputs": root.inputs.iter().map(|f| json!({"name": f.name, "kind": f.kind})).collect::<Vec<_>>(),
            "outputs": root.outputs.iter().map(|f| json!({"name": f.name, "kind": f.kind})).collect::<Vec<_>>(),
            "layerTypes": types,
            "largestLayers": largest,
            "estimate": estimate,
            "output": output_path(snap, an),
        }))
    })
}

fn first_error(an: &ide::Analysis) -> Option<String> {
    an.diagnostics
        .iter()
        .find(|d| d.severity == Severity::Error)
        .map(|d| d.message.clone())
}

/// Where the quantized model goes: `output`, or the default name beside the model.
fn output_path(snap: &Snapshot, an: &ide::Analysis) -> Option<PathBuf> {
    let root = an.root()?;
    let rel = match root.value("output").and_then(|v| v.as_str()) {
        Some(o) if !o.trim().is_empty() => o.trim().to_owned(),
        _ => ide::completion::default_output(an)?,
    };
    resolve_model(snap, &rel)
}

fn inside_workspace(path: &Path, folders: &[PathBuf]) -> bool {
    let parent = path
        .parent()
        .map(|p| p.canonicalize().unwrap_or_else(|_| p.to_path_buf()));
    let Some(parent) = parent else { return false };
    folders
        .iter()
        .any(|f| parent.starts_with(f.canonicalize().unwrap_or_else(|_| f.clone())))
}

/// Everything a run needs, prepared off the event loop.
struct Prepared {
    loaded: crate::model_cache::Loaded,
    plan: quant::Plan,
    output: PathBuf,
}

fn prepare(snap: &Snapshot) -> std::result::Result<Prepared, String> {
    let parse = coremlq::config::syntax::parse(&snap.text);
    let loaded = load_model(snap, &parse).ok_or("the config names no model")?;
    with_analysis(snap, true, |an| {
        if let Some(e) = first_error(an) {
            return Err(format!("the config has errors: {e}"));
        }
        let plan = an
            .plan()
            .cloned()
            .ok_or("the config does not give enough to plan (nbits?)")?;
        let output = output_path(snap, an).ok_or("cannot tell where to write the output")?;
        Ok(Prepared {
            loaded: loaded.clone(),
            plan,
            output,
        })
    })
}

/// Runs the quantization of a config. With a client's `workDoneToken` the progress goes to
/// that token and the client shows the result itself (one notification, not two); without
/// one the server creates its own progress and shows the result as a message.
async fn quantize_command(
    inner: &Arc<Inner>,
    snap: Snapshot,
    client_token: Option<ProgressToken>,
) -> Result<Value> {
    let client = &inner.client;
    let prep = {
        let snap = snap.clone();
        tokio::task::spawn_blocking(move || prepare(&snap))
            .await
            .map_err(|e| failed(e.to_string()))?
    };
    let prep = match prep {
        Ok(p) => p,
        Err(msg) => {
            client
                .show_message(MessageType::ERROR, format!("Quantize: {msg}"))
                .await;
            return Err(failed(msg));
        }
    };
    let session = inner.session();
    if !inside_workspace(&prep.output, &session.workspace_folders) {
        let write = MessageActionItem {
            title: "Write".into(),
            properties: HashMap::new(),
        };
        let cancel = MessageActionItem {
            title: "Cancel".into(),
            properties: HashMap::new(),
        };
        let answer = client
            .show_message_request(
                MessageType::WARNING,
                format!(
                    "{} is outside the workspace folders. Write it anyway?",
                    prep.output.display()
                ),
                Some(vec![write, cancel]),
            )
            .await;
        let confirmed = matches!(answer, Ok(Some(ref a)) if a.title == "Write");
        if !confirmed {
            let msg = format!(
                "Not written: {} is outside the workspace folders",
                prep.output.display()
            );
            client.show_message(MessageType::WARNING, &msg).await;
            return Ok(json!({"written": false, "message": msg}));
        }
    }

    let (token, cancel) = inner.jobs.start(client_token.as_ref());
    let _guard = JobGuard {
        jobs: &inner.jobs,
        token: token.clone(),
        cancel: cancel.clone(),
    };
    let client_owns_progress = client_token.is_some();
    let progress_token = client_token.unwrap_or_else(|| ProgressToken::String(token.clone()));
    let progress = if client_owns_progress
        || (session.flags.work_done_progress
            && client
                .create_work_done_progress(progress_token.clone())
                .await
                .is_ok())
    {
        Some(
            client
                .progress(progress_token, "Quantizing")
                .with_percentage(0)
                .with_cancel_button()
                .begin()
                .await,
        )
    } else {
        None
    };

    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<quant::execute::Progress>();
    let opts = RunOptions {
        cancel: cancel.clone(),
        progress: Some(Arc::new(move |p: &quant::execute::Progress| {
            let _ = tx.send(p.clone());
        })),
        ..RunOptions::default()
    };
    let Prepared {
        loaded,
        plan,
        output,
    } = prep;
    let out = output.clone();
    let mut job = tokio::task::spawn_blocking(move || match &*loaded {
        Ok(file) => quant::quantize(file, &plan, &out, &opts).map_err(|e| match e {
            QuantError::Cancelled => None,
            e => Some(e.to_string()),
        }),
        Err(e) => Err(Some(e.to_string())),
    });
    let result = loop {
        tokio::select! {
            r = &mut job => break r,
            Some(p) = rx.recv() => {
                if let Some(progress) = &progress {
                    let pct = u32::try_from(p.done * 100 / p.total.max(1)).unwrap_or(100).min(100);
                    progress.report_with_message(format!("{}/{} {}", p.done, p.total, p.layer), pct, None).await;
                }
            }
        }
    };
    let result = result.map_err(|e| failed(e.to_string()))?;
    let (message, value) = match result {
        Ok(report) => (
            format!(
                "Quantized → {} ({} → {} bytes, {})",
                report.output.display(),
                facts::count(report.bytes_before),
                facts::count(report.bytes_after),
                facts::change(report.bytes_before, report.bytes_after)
            ),
            Ok(
                json!({"written": true, "output": report.output, "bytesBefore": report.bytes_before,
                      "bytesAfter": report.bytes_after}),
            ),
        ),
        Err(None) => (
            "Quantization cancelled; nothing was written".to_owned(),
            Ok(json!({"written": false, "cancelled": true})),
        ),
        Err(Some(e)) => (format!("Quantize failed: {e}"), Err(failed(e))),
    };
    if let Some(progress) = progress {
        progress.finish_with_message(message.clone()).await;
    }
    if !client_owns_progress {
        let kind = if value.is_ok() {
            MessageType::INFO
        } else {
            MessageType::ERROR
        };
        client.show_message(kind, &message).await;
    }
    value
}

/// A progress token as a map key.
pub fn token_key(token: &ProgressToken) -> String {
    match token {
        NumberOrString::Number(n) => n.to_string(),
        NumberOrString::String(s) => s.clone(),
    }
}
