//! Runs the config analysis for a snapshot: finds the referenced model, loads it through the
//! cache (blocking), and hands text and index to the protocol-free layer.

use std::path::{Path, PathBuf};

use coremlq::config::syntax;
use coremlq::ide::{self, Analysis, ModelInput};

use crate::model_cache::Loaded;
use crate::state::Snapshot;

/// The file a config's `model` string names: relative to the config's folder (or, for an
/// unsaved config, to the first workspace folder).
pub fn resolve_model(snap: &Snapshot, model: &str) -> Option<PathBuf> {
    let path = Path::new(model);
    if path.is_absolute() {
        return Some(path.to_path_buf());
    }
    let base = snap
        .base_dir()
        .map(Path::to_path_buf)
        .or_else(|| snap.session.workspace_folders.first().cloned())?;
    Some(base.join(path))
}

/// The model a snapshot's config refers to, loaded through the cache (blocking).
pub fn load_model(snap: &Snapshot, parse: &syntax::Parse) -> Option<Loaded> {
    let (model, _) = ide::analysis::model_reference(parse)?;
    let path = resolve_model(snap, &model)?;
    Some(snap.models.get(&path))
}

/// Analyses a snapshot and runs `f` on the result (blocking: may index a model file).
pub fn with_analysis<T>(snap: &Snapshot, f: impl FnOnce(&Analysis) -> T) -> T {
    let parse = syntax::parse(&snap.text);
    let loaded = load_model(snap, &parse);
    let input = match loaded.as_deref() {
        None => ModelInput::None,
        Some(Ok(file)) => ModelInput::Loaded(file),
        Some(Err(e)) => ModelInput::Failed(e.to_string()),
    };
    let analysis =
        Analysis::with_planner(&snap.text, parse, input, |file, settings| match &loaded {
            Some(l) => snap
                .models
                .plan(l, settings, || ide::analysis::plan_for(file, settings)),
            None => ide::analysis::plan_for(file, settings),
        });
    f(&analysis)
}
