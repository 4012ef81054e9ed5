//! Semantic analysis of a parsed config against what the caller knows about the model.
//!
//! [`analyze`] does no I/O: the caller resolves the paths ([`referenced_paths`]), opens or
//! looks up the model and the output, and passes the results in a [`Context`]. It returns
//! every [`Diagnostic`] and, when there is no error, the resolved [`Settings`] and the
//! engine's [`Plan`] — the same plan `coremlq quantize` executes.
//!
//! One file per group of checks: `structure` (keys, types, duplicates), `values` (nbits,
//! mode, lut, selector values), `paths` (model/output paths), `model` (the model's status,
//! type, updatable and quantized state), `layers` (names and types against the model),
//! `resolve` (settings, plan and the checks that need the plan).

mod layers;
mod model;
mod paths;
mod resolve;
mod structure;
mod values;

use std::path::{Path, PathBuf};

use super::diagnostic::{Diagnostic, Severity};
use super::syntax::{Parse, TextRange};
use crate::model::{ModelError, ModelIndex};
use crate::quant::{Plan, Settings};

pub use paths::{default_output_name, normalize, referenced_paths, ReferencedPaths};

/// What the caller found at the config's `model` path.
#[derive(Debug, Clone, Copy, Default)]
pub enum ModelStatus<'a> {
    /// Not looked up (no path, or the caller does not load models): no model checks.
    #[default]
    NotGiven,
    /// Nothing at the path.
    NotFound,
    /// The file exists but could not be read (the operating system's message).
    Unreadable(&'a str),
    /// The bytes are not a well-formed Core ML model: the parser's message and byte offset.
    Corrupt {
        /// What was wrong.
        message: &'a str,
        /// Where in the file.
        offset: u64,
    },
    /// Something that is not a Core ML model (a folder, an empty file, …): what it is.
    NotAModel(&'a str),
    /// The model's index.
    Loaded(&'a ModelIndex),
}

impl<'a> ModelStatus<'a> {
    /// The status for a failure of [`crate::model::ModelFile::open`].
    pub fn from_error(err: &'a ModelError) -> ModelStatus<'a> {
        match err {
            ModelError::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
                ModelStatus::NotFound
            }
            ModelError::Io { .. } => ModelStatus::Unreadable(io_message(err)),
            ModelError::Malformed {
                offset, message, ..
            } => ModelStatus::Corrupt {
                message,
                offset: *offset,
            },
            ModelError::NotAModel { message, .. } => ModelStatus::NotAModel(message),
            ModelError::Changed { .. } => {
                ModelStatus::Unreadable("it changed while it was being read")
            }
        }
    }

    /// The index, when loaded.
    pub fn index(&self) -> Option<&'a ModelIndex> {
        match self {
            ModelStatus::Loaded(i) => Some(i),
            _ => None,
        }
    }
}

fn io_message(err: &ModelError) -> &'static str {
    match err {
        ModelError::Io { source, .. } => match source.kind() {
            std::io::ErrorKind::PermissionDenied => "permission denied",
            std::io::ErrorKind::IsADirectory => "it is a folder",
            std::io::ErrorKind::NotADirectory => "a part of the path is a file, not a folder",
            std::io::ErrorKind::InvalidFilename => "invalid file name",
            _ => "input/output error",
        },
        _ => "input/output error",
    }
}

/// What the caller found at the output path.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum OutputStatus {
    /// Not looked up.
    #[default]
    Unknown,
    /// Nothing there yet.
    Absent,
    /// An existing Core ML model (it will be replaced).
    Model,
    /// An existing file or folder that is not a Core ML model: what it is.
    NotAModel(String),
}

/// Everything `analyze` needs besides the syntax tree.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    /// The folder holding the config (relative paths start there); `None` for an unsaved
    /// document (paths are then compared as written).
    pub config_dir: Option<&'a Path>,
    /// The workspace folder, for the "output outside the workspace" warning.
    pub workspace: Option<&'a Path>,
    /// The model at the config's `model` path.
    pub model: ModelStatus<'a>,
    /// What is at the output path.
    pub output: &'a OutputStatus,
    /// Skip the engine's plan (and the checks that need it: fused layers, updatable
    /// layers, nothing quantized, the engine's refusals) for a fast first pass.
    pub skip_plan: bool,
}

static UNKNOWN_OUTPUT: OutputStatus = OutputStatus::Unknown;

impl Default for Context<'_> {
    fn default() -> Self {
        Context {
            config_dir: None,
            workspace: None,
            model: ModelStatus::NotGiven,
            output: &UNKNOWN_OUTPUT,
            skip_plan: false,
        }
    }
}

/// The result of the analysis.
#[derive(Debug, Clone, Default)]
pub struct Analysis {
    /// Every finding, sorted by position.
    pub diagnostics: Vec<Diagnostic>,
    /// The resolved settings, when there is no error.
    pub settings: Option<Settings>,
    /// The engine's plan for those settings and the loaded model.
    pub plan: Option<Plan>,
    /// The resolved model and output paths (for the CLI, code lenses, commands).
    pub paths: ReferencedPaths,
}

impl Analysis {
    /// Whether any diagnostic is an error.
    pub fn has_errors(&self) -> bool {
        self.diagnostics
            .iter()
            .any(|d| d.severity == Severity::Error)
    }

    /// The errors.
    pub fn errors(&self) -> impl Iterator<Item = &Diagnostic> {
        self.diagnostics
            .iter()
            .filter(|d| d.severity == Severity::Error)
    }
}

/// Analyses a parsed config. No I/O; see the module documentation.
pub fn analyze(parse: &Parse, ctx: &Context<'_>) -> Analysis {
    let mut out = Vec::new();
    for e in &parse.errors {
        let code = super::diagnostic::Code::of_syntax(e.kind);
        out.push(Diagnostic::new(code, e.range, e.message.clone()));
    }
    let paths = referenced_paths(parse, ctx.config_dir);
    let mut analysis = Analysis {
        paths,
        ..Analysis::default()
    };
    let Some(fields) = structure::check(parse, &mut out) else {
        analysis.diagnostics = finish(out);
        return analysis;
    };
    let values = values::check(&fields, &mut out);
    paths::check(&fields, &analysis.paths, ctx, &mut out);
    let index = model::check(&fields, &values, ctx, &mut out);
    if let Some(index) = index {
        layers::check(&fields, &values, index, &mut out);
    }
    let errors_so_far = out.iter().any(|d| d.severity == Severity::Error);
    if !errors_so_far {
        if let Some(settings) = resolve::settings(&values) {
            if let Some(index) = index.filter(|_| !ctx.skip_plan) {
                analysis.plan = resolve::plan(&fields, &values, &settings, index, &mut out);
            }
            if !out.iter().any(|d| d.severity == Severity::Error) {
                analysis.settings = Some(settings);
            } else {
                analysis.plan = None;
            }
        }
    }
    analysis.diagnostics = finish(out);
    analysis
}

fn finish(mut out: Vec<Diagnostic>) -> Vec<Diagnostic> {
    out.sort_by(|a, b| {
        (a.range.start, a.range.end, a.code).cmp(&(b.range.start, b.range.end, b.code))
    });
    out.dedup_by(|a, b| a.code == b.code && a.range == b.range && a.message == b.message);
    out
}

/// The range of a member's key, or of the object's `{` when the member is absent.
pub(crate) fn brace(range: TextRange) -> TextRange {
    TextRange::new(range.start, range.start + 1)
}

/// A path relative to the config folder, made absolute when the folder is known.
pub(crate) fn join(config_dir: Option<&Path>, raw: &str) -> PathBuf {
    match config_dir {
        Some(dir) => normalize(&dir.join(raw)),
        None => normalize(Path::new(raw)),
    }
}

#[cfg(test)]
mod tests;
