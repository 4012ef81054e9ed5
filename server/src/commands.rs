//! `workspace/executeCommand`: `coremlq.quantize` and `coremlq.modelSummary`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// The command that quantizes the model of a config (args: `[config uri]`).
pub const QUANTIZE: &str = "coremlq.quantize";
/// The command that returns a JSON summary of a config's model (args: `[config uri]`).
pub const MODEL_SUMMARY: &str = "coremlq.modelSummary";
/// Every command the server executes.
pub const ALL: [&str; 2] = [QUANTIZE, MODEL_SUMMARY];

/// Running quantize jobs by progress token, so `window/workDoneProgress/cancel` finds them.
#[derive(Default)]
pub struct Jobs {
    running: Mutex<HashMap<String, Arc<AtomicBool>>>,
}

impl Jobs {
    /// Registers a job under its progress token.
    pub fn start(&self, token: &str) -> Arc<AtomicBool> {
        let flag = Arc::new(AtomicBool::new(false));
        if let Ok(mut running) = self.running.lock() {
            running.insert(token.to_owned(), flag.clone());
        }
        flag
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
            for flag in running.values() {
                flag.store(true, Ordering::Relaxed);
            }
        }
    }

    /// Asks the job with this token to stop.
    pub fn cancel(&self, token: &str) {
        if let Ok(running) = self.running.lock() {
            if let Some(flag) = running.get(token) {
                flag.store(true, Ordering::Relaxed);
            }
        }
    }
}

use serde_json::Value;
use tower_lsp_server::jsonrpc::{Error, Result};
use tower_lsp_server::ls_types::{ExecuteCommandParams, Uri};

use crate::state::Inner;

/// The config URI in a command's arguments.
fn config_uri(params: &ExecuteCommandParams) -> Result<Uri> {
    let arg = params.arguments.first().ok_or_else(|| Error::invalid_params("expected [config uri]"))?;
    serde_json::from_value(arg.clone()).map_err(|e| Error::invalid_params(format!("config uri: {e}")))
}

/// Runs a command.
pub async fn execute(inner: &Arc<Inner>, params: ExecuteCommandParams) -> Result<Option<Value>> {
    match params.command.as_str() {
        QUANTIZE | MODEL_SUMMARY => {
            let uri = config_uri(&params)?;
            let _ = (inner, uri);
            Err(Error { message: "not implemented yet".into(), ..Error::invalid_request() })
        }
        other => Err(Error::invalid_params(format!("unknown command {other:?}"))),
    }
}
