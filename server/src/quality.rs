//! Quality figures for the layer hover (SNR and relative RMS error of each quantized
//! tensor). They are measured in the background, one job at a time, never on a request's
//! path, and cached per model state (path, size, modification time), layer, tensor and
//! conversion. A hover shows the cached figures, or "computing…" and starts a job.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

use coremlq::ide::analysis::Planned;
use coremlq::ide::hover::QualityFigure;
use coremlq::quant::quality::{measured_target, quality_of};

use crate::model_cache::{Loaded, Stamp};

/// The largest tensor measured, in elements (larger ones are reported as not measured).
pub const MAX_ELEMENTS: u64 = 1 << 22;

/// Figures kept per server before the oldest are forgotten.
const KEPT: usize = 4096;

/// What one figure is about.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Key {
    /// The model file.
    pub path: PathBuf,
    /// Its size when measured.
    pub len: u64,
    /// Its modification time when measured.
    pub mtime: Option<SystemTime>,
    /// The layer's name.
    pub layer: String,
    /// The tensor's field.
    pub field: String,
    /// The conversion (its full description, custom tables included).
    pub target: String,
}

/// One tensor to measure.
pub struct Job {
    /// Where the figure goes.
    pub key: Key,
    /// The model.
    pub loaded: Loaded,
    /// The plan that converts the tensor.
    pub planned: Planned,
    /// The tensor's index in the model index.
    pub tensor: usize,
}

#[derive(Default)]
struct State {
    done: HashMap<Key, QualityFigure>,
    busy: bool,
}

/// The cache and the single background worker.
#[derive(Default)]
pub struct QualityCache {
    state: Arc<Mutex<State>>,
}

impl QualityCache {
    fn state(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }

    /// The key of tensor `tensor` under `planned` on `loaded`, when the plan quantizes it.
    pub fn key(loaded: &Loaded, planned: &Planned, tensor: usize) -> Option<Key> {
        let file = loaded.as_ref().as_ref().ok()?;
        let (plan, _) = planned.as_ref().as_ref().ok()?;
        let target = measured_target(plan, tensor)?;
        let w = file.index.weights.get(tensor)?;
        let stamp = Stamp::of(&file.path);
        Some(Key {
            path: file.path.clone(),
            len: stamp.map_or(0, |s| s.len),
            mtime: stamp.and_then(|s| s.mtime),
            layer: file
                .index
                .layers
                .get(w.layer)
                .map_or_else(String::new, |l| l.name.clone()),
            field: w.field.clone(),
            target: format!("{target:?}"),
        })
    }

    /// The figure for `key` when known; tensors too large to measure are known at once.
    pub fn figure(&self, key: &Key, elements: u64) -> Option<QualityFigure> {
        if elements > MAX_ELEMENTS {
            return Some(QualityFigure::Unavailable(format!(
                "not measured (over {MAX_ELEMENTS} weights)"
            )));
        }
        self.state().done.get(key).cloned()
    }

    /// Whether no job is running.
    pub fn idle(&self) -> bool {
        !self.state().busy
    }

    /// Starts measuring `jobs` in the background unless a job is already running (a later
    /// hover asks again). Needs a Tokio runtime; without one nothing is started.
    pub fn start(&self, jobs: Vec<Job>) {
        if jobs.is_empty() {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        {
            let mut state = self.state();
            if state.busy {
                return;
            }
            state.busy = true;
        }
        let shared = self.state.clone();
        runtime.spawn_blocking(move || {
            for job in jobs {
                if lock(&shared).done.contains_key(&job.key) {
                    continue;
                }
                let figure = measure(&job);
                let mut state = lock(&shared);
                if state.done.len() >= KEPT {
                    state.done.clear();
                }
                state.done.insert(job.key, figure);
            }
            lock(&shared).busy = false;
        });
    }
}

/// The state, tolerating a lock poisoned by a panicking job.
fn lock(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Measures one job's tensor.
fn measure(job: &Job) -> QualityFigure {
    let (Ok(file), Ok((plan, _))) = (job.loaded.as_ref(), job.planned.as_ref()) else {
        return QualityFigure::Unavailable("not measured (no plan)".into());
    };
    match quality_of(file, plan, job.tensor) {
        Ok(Some(q)) => QualityFigure::Known(q.quality),
        Ok(None) => QualityFigure::Unavailable("not measured".into()),
        Err(e) => QualityFigure::Unavailable(format!("not measured ({e})")),
    }
}
