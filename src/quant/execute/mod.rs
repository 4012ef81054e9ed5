//! Carrying out a plan: kernels on every tensor, the lossless rewrite, the safe write.
//!
//! `pipeline` runs the jobs (a worker converting, the caller writing), `job` makes one
//! tensor's new body, `payloads` reads weights and recycles output buffers.

mod job;
mod payloads;
mod pipeline;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::error::QuantError;
use super::estimate;
use super::kernels::Dialect;
use super::plan::{LayerDecision, Plan};
use super::write_package::{self, PackageWritten};
use crate::model::{LayerId, ModelFile, ModelIndex};
use pipeline::produce_into;

/// A cancellation flag shared between the caller and a running quantization.
#[derive(Debug, Clone, Default)]
pub struct CancelToken(Arc<AtomicBool>);

impl CancelToken {
    /// A fresh, not cancelled token.
    pub fn new() -> CancelToken {
        CancelToken::default()
    }

    /// Asks the run to stop: within the 4 MiB of output being made, or at the next tensor.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    /// Whether [`cancel`](Self::cancel) was called.
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// Progress of a run: `done` of `total` layers, the one being converted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress {
    /// Layers started so far (1-based when reporting a layer).
    pub done: usize,
    /// Layers with tensors to produce.
    pub total: usize,
    /// The layer's name.
    pub layer: String,
}

/// A progress callback.
pub type ProgressFn = Arc<dyn Fn(&Progress) + Send + Sync>;

/// Options of a run.
#[derive(Clone, Default)]
pub struct RunOptions {
    /// Checked between tensors.
    pub cancel: CancelToken,
    /// Called when a layer starts.
    pub progress: Option<ProgressFn>,
    /// Which coremltools arithmetic to reproduce (float32 by default).
    pub dialect: Dialect,
    /// Skip the fsync before the rename (faster, not crash-safe; benchmarks only).
    pub no_sync: bool,
}

impl std::fmt::Debug for RunOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunOptions")
            .field("cancel", &self.cancel)
            .field("progress", &self.progress.is_some())
            .field("dialect", &self.dialect)
            .field("no_sync", &self.no_sync)
            .finish()
    }
}

/// What one layer became.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerResult {
    /// The layer.
    pub layer: LayerId,
    /// Its name.
    pub name: String,
    /// The decision carried out.
    pub decision: LayerDecision,
    /// Why.
    pub reason: String,
    /// Its WeightParams bytes before.
    pub bytes_before: u64,
    /// Its WeightParams bytes after.
    pub bytes_after: u64,
}

/// The outcome of a run.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// The file (or package folder) written.
    pub output: PathBuf,
    /// Input size.
    pub bytes_before: u64,
    /// Output size.
    pub bytes_after: u64,
    /// Tensors converted.
    pub tensors_converted: usize,
    /// Per layer, in index order.
    pub layers: Vec<LayerResult>,
    /// Wall time of the run.
    pub elapsed: Duration,
    /// Deviations from coremltools 9.0 and other remarks.
    pub notes: Vec<String>,
    /// For a package output (`output` ends in `.mlpackage`): its model file and total bytes.
    /// `bytes_after` is the model file's size.
    pub package: Option<PackageWritten>,
}

/// Quantizes `file` per `plan` into `output` (temp file, fsync, verify, rename): a package
/// folder when `output` ends in `.mlpackage`, else a plain `.mlmodel` file.
pub fn quantize(
    file: &ModelFile,
    plan: &Plan,
    output: &Path,
    opts: &RunOptions,
) -> Result<Report, QuantError> {
    let start = Instant::now();
    let rw = unchanged(file, estimate::rewrite(&file.index, file.bytes(), plan))?;
    let expected = rw.layout.total;
    let package = write_package::write_output(
        &file.path,
        output,
        expected,
        &opts.cancel,
        !opts.no_sync,
        |out| unchanged(file, produce_into(file, plan, &rw, opts, out)),
    )?;
    let mut report = report(&file.index, plan, output, expected, start.elapsed());
    report.package = package;
    Ok(report)
}

/// Quantizes `file` per `plan` into memory (tests, previews).
pub fn quantize_to_vec(
    file: &ModelFile,
    plan: &Plan,
    opts: &RunOptions,
) -> Result<Vec<u8>, QuantError> {
    let rw = unchanged(file, estimate::rewrite(&file.index, file.bytes(), plan))?;
    let mut out = Vec::with_capacity(usize::try_from(rw.layout.total).unwrap_or(0));
    unchanged(file, produce_into(file, plan, &rw, opts, &mut out))?;
    Ok(out)
}

/// `result`, unless the input changed while it was read: then that is the error (a read of
/// a truncated map saw zeros, or a positioned read came up short).
fn unchanged<T>(file: &ModelFile, result: Result<T, QuantError>) -> Result<T, QuantError> {
    file.check_unchanged()?;
    result
}

fn report(
    index: &ModelIndex,
    plan: &Plan,
    output: &Path,
    bytes_after: u64,
    elapsed: Duration,
) -> Report {
    Report {
        output: output.to_path_buf(),
        bytes_before: index.file_bytes,
        bytes_after,
        tensors_converted: plan.converted(),
        layers: index
            .layers
            .iter()
            .zip(&plan.layers)
            .enumerate()
            .map(|(i, (l, lp))| LayerResult {
                layer: i,
                name: l.name.clone(),
                decision: lp.decision.clone(),
                reason: lp.reason.to_string(),
                bytes_before: lp.bytes_before,
                bytes_after: lp.bytes_after,
            })
            .collect(),
        elapsed,
        notes: plan.notes.clone(),
        package: None,
    }
}
