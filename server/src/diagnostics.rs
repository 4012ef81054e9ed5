//! The diagnostics pipeline: debounced analysis off the event loop, published tagged with
//! the document version; results for an old version or a superseded pass are dropped, an
//! empty list is published to clear, and closing a document clears its diagnostics.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tower_lsp_server::ls_types::{self as lsp, DiagnosticSeverity, NumberOrString, Uri};

use crate::state::{Inner, Snapshot};
use coremlq::ide;

/// Tracks the latest pass per document and what was last published.
#[derive(Default)]
pub struct Scheduler {
    counter: AtomicU64,
    latest: Mutex<HashMap<String, u64>>,
    /// Last published version per document; also serialises publishing.
    published: tokio::sync::Mutex<HashMap<String, Option<i32>>>,
}

impl Scheduler {
    fn begin(&self, uri: &Uri) -> u64 {
        let generation = self.counter.fetch_add(1, Ordering::Relaxed) + 1;
        if let Ok(mut latest) = self.latest.lock() {
            latest.insert(uri.as_str().to_owned(), generation);
        }
        generation
    }

    fn is_latest(&self, uri: &Uri, generation: u64) -> bool {
        self.latest
            .lock()
            .is_ok_and(|l| l.get(uri.as_str()) == Some(&generation))
    }
}

/// Starts a diagnostics pass for `uri` after `delay` (0 on open: show results at once).
pub fn schedule(inner: &Arc<Inner>, uri: &Uri, delay: Duration) {
    let generation = inner.diagnostics.begin(uri);
    let inner = inner.clone();
    let uri = uri.clone();
    tokio::spawn(async move {
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        if !inner.diagnostics.is_latest(&uri, generation) {
            return;
        }
        let Some(snap) = inner.snapshot(&uri) else {
            return;
        };
        let version = snap.version;
        // A fast pass first (everything but the checks that need the engine's plan), then
        // the full pass, published again only when it found more.
        let first = snap.clone();
        let Ok(fast) = tokio::task::spawn_blocking(move || compute(&first, true)).await else {
            return;
        };
        if !inner.diagnostics.is_latest(&uri, generation) {
            return;
        }
        publish(&inner, uri.clone(), version, fast.clone()).await;
        let Ok(full) = tokio::task::spawn_blocking(move || compute(&snap, false)).await else {
            return;
        };
        if full != fast && inner.diagnostics.is_latest(&uri, generation) {
            publish(&inner, uri, version, full).await;
        }
    });
}

/// Re-runs diagnostics for every open document (settings or a model file changed).
pub fn schedule_all(inner: &Arc<Inner>) {
    let uris: Vec<Uri> = inner.docs().iter().map(|d| d.uri.clone()).collect();
    for uri in uris {
        schedule(inner, &uri, Duration::ZERO);
    }
}

/// Publishes `diags` for `version` unless the document moved on or was closed meanwhile.
async fn publish(inner: &Inner, uri: Uri, version: i32, diags: Vec<lsp::Diagnostic>) {
    let mut published = inner.diagnostics.published.lock().await;
    let current = inner.docs().get(&uri).map(|d| d.version);
    if current != Some(version) {
        return;
    }
    published.insert(uri.as_str().to_owned(), Some(version));
    inner
        .client
        .publish_diagnostics(uri, diags, Some(version))
        .await;
}

/// Clears the diagnostics of a closed document.
pub async fn clear(inner: &Inner, uri: Uri) {
    inner.diagnostics.begin(&uri);
    let mut published = inner.diagnostics.published.lock().await;
    published.remove(uri.as_str());
    inner
        .client
        .publish_diagnostics(uri, Vec::new(), None)
        .await;
}

/// The protocol diagnostics of a snapshot (blocking: runs the analysis), optionally
/// without the checks that need the engine's plan.
pub fn compute(snap: &Snapshot, skip_plan_checks: bool) -> Vec<lsp::Diagnostic> {
    crate::analysis::with_analysis_opts(snap, true, skip_plan_checks, |an| {
        an.diagnostics.iter().map(|d| to_lsp(snap, d)).collect()
    })
}

/// Converts one diagnostic.
pub fn to_lsp(snap: &Snapshot, d: &ide::Diagnostic) -> lsp::Diagnostic {
    lsp::Diagnostic {
        range: snap.range(d.range.clone()),
        severity: Some(match d.severity {
            ide::Severity::Error => DiagnosticSeverity::ERROR,
            ide::Severity::Warning => DiagnosticSeverity::WARNING,
            ide::Severity::Info => DiagnosticSeverity::INFORMATION,
            ide::Severity::Hint => DiagnosticSeverity::HINT,
        }),
        code: Some(NumberOrString::String(d.code.clone())),
        source: Some("coremlq".into()),
        message: d.message.clone(),
        ..Default::default()
    }
}
