//! Runs the config analysis for a snapshot: finds the referenced model, loads it through the
//! cache (blocking), and hands text and index to the protocol-free layer.

use std::path::{Path, PathBuf};

use coremlq::config::{syntax, OutputStatus};
use coremlq::ide::analysis::Env;
use coremlq::ide::{self, Analysis, ModelInput};
use coremlq::model::ModelError;

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

/// What is at the output path, through the model cache (an existing output is indexed once).
fn output_status(snap: &Snapshot, parse: &syntax::Parse) -> OutputStatus {
    let paths = coremlq::config::analysis::referenced_paths(parse, snap.base_dir());
    let Some(out) = paths.output else {
        return OutputStatus::Unknown;
    };
    if !out.exists() {
        return OutputStatus::Absent;
    }
    if out.is_dir() {
        // The writer's rule: a package output may replace a Core ML package, a plain
        // output never replaces a folder.
        if !coremlq::quant::write_package::is_package_path(&out) {
            return OutputStatus::NotAModel("a folder".into());
        }
        return match &*snap.models.get(&out) {
            Ok(_) => OutputStatus::Model,
            Err(_) => OutputStatus::NotAModel("a folder that is not a Core ML package".into()),
        };
    }
    match &*snap.models.get(&out) {
        Ok(_) => OutputStatus::Model,
        Err(ModelError::Io { .. }) => OutputStatus::NotAModel("an unreadable file".into()),
        Err(_) => OutputStatus::NotAModel("a file that is not a Core ML model".into()),
    }
}

/// Analyses a snapshot and runs `f` on the result (blocking: may index a model file).
/// Without `diagnostics`, the config checks are skipped (completion, hover, hints).
pub fn with_analysis<T>(snap: &Snapshot, diagnostics: bool, f: impl FnOnce(&Analysis) -> T) -> T {
    with_analysis_opts(snap, diagnostics, false, f)
}

/// [`with_analysis`], optionally without the config checks that need the engine's plan.
pub fn with_analysis_opts<T>(
    snap: &Snapshot,
    diagnostics: bool,
    skip_plan_checks: bool,
    f: impl FnOnce(&Analysis) -> T,
) -> T {
    let parse = syntax::parse(&snap.text);
    let loaded = load_model(snap, &parse);
    let output = if diagnostics {
        output_status(snap, &parse)
    } else {
        OutputStatus::Unknown
    };
    let input = match loaded.as_deref() {
        None => ModelInput::None,
        Some(Ok(file)) => ModelInput::Loaded(file),
        Some(Err(e)) => ModelInput::Failed(e),
    };
    let env = Env {
        config_dir: snap.base_dir(),
        workspace: snap.session.workspace_folders.first().map(PathBuf::as_path),
        output: Some(&output),
        skip_diagnostics: !diagnostics,
        skip_plan_checks,
    };
    let analysis =
        Analysis::with_planner(
            &snap.text,
            parse,
            input,
            env,
            |file, settings| match &loaded {
                Some(l) => snap
                    .models
                    .plan(l, settings, || ide::analysis::plan_for(file, settings)),
                None => ide::analysis::plan_for(file, settings),
            },
        );
    f(&analysis)
}
