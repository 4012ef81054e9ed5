//! The IDE's analysis of one config version: the syntax tree, the settings it asks for, and
//! with a model, the plan and the exact size estimate that every feature reads.
//!
//! Adapter note: until the config analysis provides them, the settings are read here from
//! the syntax tree (tolerantly: a broken value falls back to its default) and the
//! diagnostics are the syntax errors, the model's load error and the plan's error.

use std::ops::Range;
use std::sync::Arc;

use std::path::Path;

use crate::config::syntax::{self, Object, Parse, TextRange, Value, ValueKind};
use crate::config::{self as cfg, Context, ModelStatus, OutputStatus};
use crate::model::{ModelError, ModelFile};
use crate::quant::estimate::{self, Estimate};
use crate::quant::settings::Override;
use crate::quant::{plan, Choice, Mode, Plan, Selector, Settings};

use super::{Diagnostic, Severity};

/// The model a config refers to, as the caller found it.
pub enum ModelInput<'a> {
    /// The config names no model (yet).
    None,
    /// The model, opened and indexed.
    Loaded(&'a ModelFile),
    /// The model could not be opened.
    Failed(&'a ModelError),
}

/// Where the config lives, for the config analysis's path checks (found by the caller).
#[derive(Debug, Clone, Copy, Default)]
pub struct Env<'a> {
    /// The folder holding the config.
    pub config_dir: Option<&'a Path>,
    /// The workspace folder.
    pub workspace: Option<&'a Path>,
    /// What is at the output path.
    pub output: Option<&'a OutputStatus>,
    /// Leave the diagnostics empty (completion and hover do not need them).
    pub skip_diagnostics: bool,
    /// Skip the config checks that need the engine's plan (a fast first pass).
    pub skip_plan_checks: bool,
}

/// The `model` string of a config: its decoded value and the range of the literal.
pub fn model_reference(parse: &Parse) -> Option<(String, Range<usize>)> {
    let value = parse.root_object()?.value("model")?;
    let s = value.as_str()?.trim();
    (!s.is_empty()).then(|| (s.to_owned(), value.range.to_range()))
}

/// Everything the features need about one version of a config.
pub struct Analysis<'a> {
    /// The text analysed.
    pub text: &'a str,
    /// Its syntax tree.
    pub parse: Parse,
    /// The model, when loaded.
    pub model: Option<&'a ModelFile>,
    /// The settings, when the config says enough to build them (needs `nbits`).
    pub settings: Option<Settings>,
    /// The plan and exact output size (or the planner's error), when model and settings
    /// are there.
    pub planned: Option<Planned>,
    /// Findings.
    pub diagnostics: Vec<Diagnostic>,
}

/// A plan with its exact size estimate, or why there is none; shared between analyses of
/// configs that ask for the same settings on the same model.
pub type Planned = Arc<Result<(Plan, Option<Estimate>), String>>;

/// Plans `settings` on `model` and estimates the output size.
pub fn plan_for(model: &ModelFile, settings: &Settings) -> Planned {
    Arc::new(
        plan::build(&model.index, settings)
            .map_err(|e| e.to_string())
            .map(|p| {
                // An estimate read from a model that changed meanwhile is no estimate.
                let e = estimate::estimate(&model.index, model.bytes(), &p)
                    .ok()
                    .filter(|_| model.check_unchanged().is_ok());
                (p, e)
            }),
    )
}

impl<'a> Analysis<'a> {
    /// Analyses `text` (already parsed as `parse`) against the model.
    pub fn new(text: &'a str, parse: Parse, model: ModelInput<'a>) -> Analysis<'a> {
        Analysis::with_planner(text, parse, model, Env::default(), plan_for)
    }

    /// Like [`Analysis::new`], with the planning step supplied (a cache).
    pub fn with_planner(
        text: &'a str,
        parse: Parse,
        model: ModelInput<'a>,
        env: Env<'_>,
        planner: impl FnOnce(&ModelFile, &Settings) -> Planned,
    ) -> Analysis<'a> {
        let unknown = OutputStatus::Unknown;
        let status = match &model {
            ModelInput::None => ModelStatus::NotGiven,
            ModelInput::Loaded(m) => ModelStatus::Loaded(&m.index),
            ModelInput::Failed(e) => ModelStatus::from_error(e),
        };
        // The config analysis is the authority on diagnostics and their fixes.
        let ctx = Context {
            config_dir: env.config_dir,
            workspace: env.workspace,
            model: status,
            output: env.output.unwrap_or(&unknown),
            skip_plan: env.skip_plan_checks,
        };
        let diagnostics = if env.skip_diagnostics {
            Vec::new()
        } else {
            cfg::analyze(&parse, &ctx)
                .diagnostics
                .into_iter()
                .map(convert)
                .collect()
        };
        // Settings are read tolerantly so hover and hints work in a config with errors.
        let settings = parse.root_object().and_then(settings_of);
        let model = match model {
            ModelInput::Loaded(m) => Some(m),
            _ => None,
        };
        let planned = match (model, settings.as_ref()) {
            (Some(m), Some(s)) => Some(planner(m, s)),
            _ => None,
        };
        Analysis {
            text,
            parse,
            model,
            settings,
            planned,
            diagnostics,
        }
    }

    /// The plan, when model and settings are there and valid.
    pub fn plan(&self) -> Option<&Plan> {
        self.planned.as_deref()?.as_ref().ok().map(|(p, _)| p)
    }

    /// The exact output size of the plan.
    pub fn estimate(&self) -> Option<&Estimate> {
        self.planned.as_deref()?.as_ref().ok()?.1.as_ref()
    }

    /// Parses and analyses `text`.
    pub fn of_text(text: &'a str, model: ModelInput<'a>) -> Analysis<'a> {
        Analysis::new(text, syntax::parse(text), model)
    }

    /// The root object of the config.
    pub fn root(&self) -> Option<&Object> {
        self.parse.root_object()
    }
}

fn convert(d: cfg::Diagnostic) -> Diagnostic {
    let message = match &d.help {
        Some(help) => format!("{}\n{help}", d.message),
        None => d.message.clone(),
    };
    Diagnostic {
        range: d.range.to_range(),
        severity: match d.severity {
            cfg::Severity::Error => Severity::Error,
            cfg::Severity::Warning => Severity::Warning,
            cfg::Severity::Info => Severity::Info,
            cfg::Severity::Hint => Severity::Hint,
        },
        code: d.code.as_str().to_owned(),
        message,
        fixes: d
            .fixes
            .into_iter()
            .map(|f| super::Fix {
                title: f.title,
                edits: f
                    .edits
                    .into_iter()
                    .map(|e| super::TextEdit {
                        range: e.range.to_range(),
                        new_text: e.text,
                    })
                    .collect(),
            })
            .collect(),
    }
}

/// An integer in `0..=255`.
fn small_int(v: &Value) -> Option<u8> {
    v.as_number()?.integer.and_then(|i| u8::try_from(i).ok())
}

fn lut_of(v: Option<&Value>) -> Option<Arc<[f32]>> {
    let a = v?.as_array()?;
    let values: Option<Vec<f32>> = a
        .elements
        .iter()
        .map(|e| e.as_number().map(|n| n.value as f32))
        .collect();
    values.map(|v| plan::lut(&v))
}

fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| {
            a.elements
                .iter()
                .filter_map(|e| e.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

fn mode_of(v: Option<&Value>) -> Option<Mode> {
    v.and_then(Value::as_str).and_then(Mode::parse)
}

/// The settings a config asks for; `None` without a usable `nbits`.
pub fn settings_of(root: &Object) -> Option<Settings> {
    let nbits = small_int(root.value("nbits")?)?;
    let mode = mode_of(root.value("quantization_mode")).unwrap_or(Mode::Linear);
    let default = Choice {
        nbits,
        mode,
        lut: lut_of(root.value("lut")),
    };
    let sel = root.value("selector").and_then(Value::as_object);
    let selector = match sel {
        None => Selector::Default,
        Some(s) => Selector::Advanced {
            skip_layer_types: strings(s.value("skip_layer_types")),
            minimum_conv_kernel_channels: uint(s.value("minimum_conv_kernel_channels"))
                .unwrap_or(4),
            minimum_conv_weight_count: uint(s.value("minimum_conv_weight_count")).unwrap_or(4096),
        },
    };
    let skip_layers = sel
        .map(|s| strings(s.value("skip_layers")))
        .unwrap_or_default();
    let overrides = root
        .value("layers")
        .and_then(Value::as_object)
        .map(|layers| {
            layers
                .members
                .iter()
                .filter_map(|m| {
                    let o = m.value.as_object()?;
                    Some(Override {
                        pattern: m.key.name.clone(),
                        skip: o.value("skip").and_then(Value::as_bool).unwrap_or(false),
                        nbits: o.value("nbits").and_then(small_int),
                        mode: mode_of(o.value("quantization_mode")),
                        lut: lut_of(o.value("lut")),
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    let fuse_layers = root
        .value("fuse_layers")
        .and_then(Value::as_bool)
        .unwrap_or(true);
    Some(Settings {
        default,
        selector,
        skip_layers,
        overrides,
        fuse_layers,
    })
}

fn uint(v: Option<&Value>) -> Option<u64> {
    v?.as_number()?.integer.and_then(|i| u64::try_from(i).ok())
}

/// The range of a value's text, for strings without the quotes.
pub fn inner_range(v: &Value) -> TextRange {
    match &v.kind {
        ValueKind::String(s) => s.inner,
        _ => v.range,
    }
}
