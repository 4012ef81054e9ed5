//! Indexed model files, keyed by path and revalidated by size and modification time, so a
//! model replaced on disk is re-indexed on the next look-up and an unchanged one never is.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use coremlq::ide::analysis::Planned;
use coremlq::model::{ModelError, ModelFile};
use coremlq::quant::Settings;

/// The outcome of opening a model: the indexed file, or why it could not be read.
pub type Loaded = Arc<Result<ModelFile, ModelError>>;

/// What identifies one state of a file on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    /// Size in bytes.
    pub len: u64,
    /// Modification time.
    pub mtime: Option<SystemTime>,
}

impl Stamp {
    /// The stamp of the file holding the model (inside an `.mlpackage` for a package), or
    /// `None` when there is nothing to read.
    pub fn of(path: &Path) -> Option<Stamp> {
        let file = coremlq::model::open::resolve(path).ok()?;
        let meta = std::fs::metadata(file).ok()?;
        Some(Stamp {
            len: meta.len(),
            mtime: meta.modified().ok(),
        })
    }
}

struct Entry {
    stamp: Option<Stamp>,
    loaded: Loaded,
}

/// The cache; cheap to share, safe to use from blocking threads.
#[derive(Default)]
pub struct ModelCache {
    entries: Mutex<HashMap<PathBuf, Entry>>,
    /// Recent plans by model (the `Loaded` kept alive, so its address is its identity) and
    /// settings, most recent first.
    plans: Mutex<Vec<(Loaded, Settings, Planned)>>,
    /// Quality figures of quantized tensors, measured in the background.
    pub quality: crate::quality::QualityCache,
}

/// Plans kept per server (a few configs on a few models).
const PLANS_KEPT: usize = 16;

impl ModelCache {
    /// The model at `path`, indexing it when it is new or changed on disk. Blocking: call it
    /// off the event loop.
    pub fn get(&self, path: &Path) -> Loaded {
        let stamp = Stamp::of(path);
        if let Some(hit) = self.lookup(path, stamp) {
            return hit;
        }
        let loaded: Loaded = Arc::new(ModelFile::open(path));
        if let Ok(mut entries) = self.entries.lock() {
            entries.insert(
                path.to_path_buf(),
                Entry {
                    stamp,
                    loaded: loaded.clone(),
                },
            );
        }
        loaded
    }

    /// The cached model when its stamp still matches (`None` stamps never match: a missing
    /// file is re-checked every time).
    fn lookup(&self, path: &Path, stamp: Option<Stamp>) -> Option<Loaded> {
        let entries = self.entries.lock().ok()?;
        let entry = entries.get(path)?;
        // A map poisoned by a truncation is stale even when the file is back at the same
        // size and time stamp.
        let intact = match entry.loaded.as_ref() {
            Ok(file) => file.check_unchanged().is_ok(),
            Err(_) => true,
        };
        (intact && stamp.is_some() && entry.stamp == stamp).then(|| entry.loaded.clone())
    }

    /// The plan of `settings` on the model `loaded`, from the cache or made by `make`.
    pub fn plan(
        &self,
        loaded: &Loaded,
        settings: &Settings,
        make: impl FnOnce() -> Planned,
    ) -> Planned {
        if let Ok(mut plans) = self.plans.lock() {
            if let Some(i) = plans
                .iter()
                .position(|(l, s, _)| Arc::ptr_eq(l, loaded) && s == settings)
            {
                let hit = plans.remove(i);
                let planned = hit.2.clone();
                plans.insert(0, hit);
                return planned;
            }
        }
        let planned = make();
        if let Ok(mut plans) = self.plans.lock() {
            plans.insert(0, (loaded.clone(), settings.clone(), planned.clone()));
            plans.truncate(PLANS_KEPT);
        }
        planned
    }

    /// Whether the file at `path` differs from what was indexed (or was never indexed).
    pub fn is_stale(&self, path: &Path) -> bool {
        let stamp = Stamp::of(path);
        match self.entries.lock() {
            Ok(entries) => entries.get(path).is_none_or(|e| e.stamp != stamp),
            Err(_) => true,
        }
    }

    /// The paths indexed so far.
    pub fn paths(&self) -> Vec<PathBuf> {
        self.entries
            .lock()
            .map(|e| e.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// Forgets a path, and every cached model inside it or holding it (a watched-file
    /// event may name a file inside an `.mlpackage`, or the package itself).
    pub fn invalidate_under(&self, path: &Path) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.retain(|p, _| !p.starts_with(path) && !path.starts_with(p));
        }
        if let Ok(mut plans) = self.plans.lock() {
            plans.retain(|(l, _, _)| match &**l {
                Ok(f) => !f.path.starts_with(path) && !path.starts_with(&f.path),
                Err(_) => false,
            });
        }
    }
}
