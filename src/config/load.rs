//! The file-system side of checking a config, shared by the command line (and usable by
//! the language server): read the config, open the model, probe the output, analyse.

use std::path::{Path, PathBuf};

use super::analysis::{analyze, Analysis, Context, ModelStatus, OutputStatus};
use super::syntax::{parse, Parse};
use crate::model::{ModelError, ModelFile};

/// Why a config file could not be checked at all.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The config file could not be read.
    #[error("{path}: cannot read the config: {source}")]
    Read {
        /// The config.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
}

/// A config checked against the files it names.
pub struct Checked {
    /// The config file.
    pub path: PathBuf,
    /// Its text.
    pub text: String,
    /// Its syntax tree.
    pub parse: Parse,
    /// The analysis (diagnostics, settings, plan).
    pub analysis: Analysis,
    /// The opened model, when it could be opened.
    pub model: Option<ModelFile>,
}

/// Reads, parses and analyses a config file, opening the model it names.
pub fn check_file(config: &Path, workspace: Option<&Path>) -> Result<Checked, LoadError> {
    let bytes = std::fs::read(config).map_err(|source| LoadError::Read {
        path: config.to_path_buf(),
        source,
    })?;
    let text = String::from_utf8_lossy(&bytes).into_owned();
    Ok(check_text(config, text, workspace))
}

/// Parses and analyses config `text` as if it were the file `config`.
pub fn check_text(config: &Path, text: String, workspace: Option<&Path>) -> Checked {
    let parse = parse(&text);
    let dir = config.parent().map(|d| {
        if d.as_os_str().is_empty() {
            Path::new(".")
        } else {
            d
        }
    });
    let paths = super::analysis::referenced_paths(&parse, dir);
    let opened: Option<Result<ModelFile, ModelError>> = paths.model.as_deref().map(ModelFile::open);
    let output = paths
        .output
        .as_deref()
        .map_or(OutputStatus::Unknown, probe_output);
    let model = match &opened {
        None => ModelStatus::NotGiven,
        Some(Ok(file)) => ModelStatus::Loaded(&file.index),
        Some(Err(e)) => ModelStatus::from_error(e),
    };
    let ctx = Context {
        config_dir: dir,
        workspace,
        model,
        output: &output,
        skip_plan: false,
    };
    let analysis = analyze(&parse, &ctx);
    let model = opened.and_then(Result::ok);
    Checked {
        path: config.to_path_buf(),
        text,
        parse,
        analysis,
        model,
    }
}

/// What is at an output path: nothing, a Core ML model, or something else.
pub fn probe_output(path: &Path) -> OutputStatus {
    let Ok(meta) = std::fs::metadata(path) else {
        return OutputStatus::Absent;
    };
    if meta.is_dir() {
        // The writer's rule: a package output may replace a Core ML package, a plain
        // output never replaces a folder.
        return if !crate::quant::write_package::is_package_path(path) {
            OutputStatus::NotAModel("a folder".into())
        } else if ModelFile::open(path).is_ok() {
            OutputStatus::Model
        } else {
            OutputStatus::NotAModel("a folder that is not a Core ML package".into())
        };
    }
    match ModelFile::open(path) {
        Ok(_) => OutputStatus::Model,
        Err(ModelError::Io { .. }) => OutputStatus::NotAModel("an unreadable file".into()),
        Err(_) if meta.len() == 0 => OutputStatus::Absent,
        Err(_) => OutputStatus::NotAModel("a file that does not parse as a Core ML model".into()),
    }
}
