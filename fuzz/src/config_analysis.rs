//! The config analysis as the fuzzers drive it: the checker's diagnostics and plan, its
//! quick fixes applied and re-analysed, and the editor features (completion, hover, inlay
//! hints, symbols, the lens title) at a spread of offsets, against a few fixture models.
//!
//! The model is picked by the file name in the config's `model` string when it names one of
//! the embedded fixtures, otherwise from the text's length (a fixture, no model, or one of
//! the load failures), so that the fuzzer reaches both the model checks and the plan.

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::checks::char_range;
use coremlq::config::syntax::{self, Parse, TextRange};
use coremlq::config::{self as cfg, Code, Context, ModelStatus, OutputStatus};
use coremlq::ide::analysis::{self as ide_analysis, Env};
use coremlq::ide::completion::{self, CompletionConfig, PathCandidate};
use coremlq::ide::hover::{self, QualityFigure};
use coremlq::ide::{hints, symbols, Analysis, ModelInput};
use coremlq::model::{ModelError, ModelFile};
use coremlq::quant::kernels::Quality;

/// The embedded fixture models: (file name, bytes). Small, with the layer kinds the checks
/// care about: mixed types for the selector, nested networks, a pipeline, an updatable
/// model, an already quantized one.
const FIXTURES: &[(&str, &[u8])] = &[
    (
        "selector_mixed.mlmodel",
        include_bytes!("../../tests/fixtures/models/selector_mixed.mlmodel"),
    ),
    (
        "branch_loop.mlmodel",
        include_bytes!("../../tests/fixtures/models/branch_loop.mlmodel"),
    ),
    (
        "pipeline.mlmodel",
        include_bytes!("../../tests/fixtures/models/pipeline.mlmodel"),
    ),
    (
        "conv.mlmodel",
        include_bytes!("../../tests/fixtures/models/conv.mlmodel"),
    ),
    (
        "updatable.mlmodel",
        include_bytes!("../../tests/fixtures/models/updatable.mlmodel"),
    ),
    (
        "already_linear4.mlmodel",
        include_bytes!("../../tests/fixtures/models/already_linear4.mlmodel"),
    ),
];

/// The fixtures, indexed once.
fn models() -> &'static [(&'static str, Result<ModelFile, ModelError>)] {
    static MODELS: OnceLock<Vec<(&'static str, Result<ModelFile, ModelError>)>> = OnceLock::new();
    MODELS.get_or_init(|| {
        FIXTURES
            .iter()
            .map(|(name, bytes)| {
                let file = ModelFile::from_bytes(PathBuf::from(name), bytes.to_vec());
                (*name, file)
            })
            .collect()
    })
}

/// One model load failure of each kind the analysis reports differently.
fn failures() -> &'static [ModelError] {
    static FAILURES: OnceLock<Vec<ModelError>> = OnceLock::new();
    FAILURES.get_or_init(|| {
        let io = |kind| ModelError::Io {
            path: PathBuf::from("missing.mlmodel"),
            source: std::io::Error::from(kind),
        };
        let mut out = vec![
            io(std::io::ErrorKind::NotFound),
            io(std::io::ErrorKind::PermissionDenied),
            ModelError::NotAModel {
                path: PathBuf::from("folder.mlmodel"),
                message: "is a folder, not a Core ML model file".into(),
            },
        ];
        if let Err(e) = ModelFile::from_bytes(PathBuf::from("corrupt.mlmodel"), vec![0x0a, 0xff]) {
            out.push(e);
        }
        out
    })
}

/// The model the analysis is given for this input.
fn model_input<'a>(parse: &Parse, salt: usize) -> ModelInput<'a> {
    let loaded = |i: usize| match models().get(i % FIXTURES.len()) {
        Some((_, Ok(file))) => ModelInput::Loaded(file),
        Some((_, Err(e))) => ModelInput::Failed(e),
        None => ModelInput::None,
    };
    let Some((name, _)) = ide_analysis::model_reference(parse) else {
        return ModelInput::None;
    };
    let file_name = Path::new(&name)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if let Some(i) = FIXTURES.iter().position(|(n, _)| *n == file_name) {
        return loaded(i);
    }
    let failures = failures();
    match salt % 3 {
        0 => loaded(salt / 3),
        1 => failures
            .get((salt / 3) % failures.len().max(1))
            .map_or(ModelInput::None, ModelInput::Failed),
        _ => ModelInput::None,
    }
}

/// Checks that the text range `r` is a char range of `text`.
fn text_range(what: &str, text: &str, r: TextRange) -> Result<(), String> {
    char_range(what, text, &r.to_range())
}

/// Applies `edits` to `text`; `Err` when they overlap or leave the text.
fn apply(text: &str, edits: &[cfg::Edit]) -> Result<String, String> {
    let mut sorted: Vec<&cfg::Edit> = edits.iter().collect();
    sorted.sort_by_key(|e| (e.range.start, e.range.end));
    for pair in sorted.windows(2) {
        if let [a, b] = pair {
            if a.range.end > b.range.start {
                return Err(format!("fix edits {} and {} overlap", a.range, b.range));
            }
        }
    }
    let mut out = text.to_owned();
    for e in sorted.iter().rev() {
        text_range("fix edit", text, e.range)?;
        out.replace_range(e.range.to_range(), &e.text);
    }
    Ok(out)
}

/// Checks the checker's result on `text`: diagnostics inside the text, sorted, with known
/// codes reported at their severity, fixes and related places inside the text, and settings
/// and plan only for a config without errors. Returns the texts its fixes produce.
fn check_config_analysis(
    text: &str,
    an: &cfg::Analysis,
    max_fixes: usize,
) -> Result<Vec<String>, String> {
    let mut fixed = Vec::new();
    let mut last = 0;
    for d in &an.diagnostics {
        let what = format!("diagnostic {} ({})", d.code, d.message);
        text_range(&what, text, d.range)?;
        if d.range.start < last {
            return Err(format!("{what} at {} is not sorted by position", d.range));
        }
        last = d.range.start;
        if Code::parse(d.code.as_str()) != Some(d.code) {
            return Err(format!("{what}: unknown code"));
        }
        if d.message.trim().is_empty() {
            return Err(format!("{what}: empty message"));
        }
        for r in &d.related {
            text_range(&format!("{what}: related"), text, r.range)?;
        }
        for f in &d.fixes {
            let applied = apply(text, &f.edits).map_err(|e| format!("{what}: {e}"))?;
            if fixed.len() < max_fixes {
                fixed.push(applied);
            }
        }
    }
    if an.has_errors() && (an.settings.is_some() || an.plan.is_some()) {
        return Err("settings or a plan for a config with errors".into());
    }
    if an.plan.is_some() && an.settings.is_none() {
        return Err("a plan without settings".into());
    }
    Ok(fixed)
}

/// The quality figure the hover is told about tensor `i` (each kind in turn).
fn quality(i: usize) -> Option<QualityFigure> {
    match i % 4 {
        0 => None,
        1 => Some(QualityFigure::Computing),
        2 => Some(QualityFigure::Unavailable("too large".into())),
        _ => Some(QualityFigure::Known(Quality {
            snr_db: if i % 8 == 3 { f64::INFINITY } else { 42.5 },
            rel_rms: 0.01,
            max_abs: 0.5,
            mse: if i % 16 == 7 { f64::NAN } else { 1e-4 },
            count: i as u64,
        })),
    }
}

/// Checks the editor features on `an` at `offsets`: every range they return is a char range
/// of the text, and nothing panics.
fn check_ide(an: &Analysis, offsets: &[usize], snippets: bool) -> Result<(), String> {
    let text = an.text;
    let cfg = CompletionConfig {
        snippets,
        model_paths: vec![
            PathCandidate {
                path: "models/selector_mixed.mlmodel".into(),
                package: false,
            },
            PathCandidate {
                path: "Pkg.mlpackage".into(),
                package: true,
            },
        ],
    };
    let mut asked = 0;
    for &offset in offsets {
        for item in completion::completions(an, offset, &cfg) {
            char_range(
                &format!("completion {:?} at {offset}", item.label),
                text,
                &item.edit.range,
            )?;
        }
        let mut ask = |i: usize| {
            asked += 1;
            quality(i + asked)
        };
        if let Some(h) = hover::hover_with(an, offset, &mut ask) {
            char_range(&format!("hover at {offset}"), text, &h.range)?;
            let _ = hover::plain(&h.markdown);
        }
    }
    let len = text.len();
    let mid = offsets
        .get(offsets.len() / 2)
        .copied()
        .unwrap_or(0)
        .min(len);
    for range in [0..len, 0..mid, mid..len] {
        for h in hints::inlay_hints(an, range.clone()) {
            char_range(
                &format!("inlay hint {:?} in {range:?}", h.label),
                text,
                &(h.offset..h.offset),
            )?;
        }
    }
    let mut stack: Vec<(symbols::Symbol, Range<usize>)> = symbols::symbols(text, &an.parse.root)
        .into_iter()
        .map(|s| (s, 0..len))
        .collect();
    while let Some((s, parent)) = stack.pop() {
        let what = format!("symbol {:?}", s.name);
        char_range(&what, text, &s.range)?;
        char_range(&format!("{what} selection"), text, &s.selection)?;
        if s.range.start < parent.start || s.range.end > parent.end {
            return Err(format!(
                "{what} range {:?} outside its parent {parent:?}",
                s.range
            ));
        }
        let range = s.range.clone();
        stack.extend(s.children.into_iter().map(|c| (c, range.clone())));
    }
    let _ = hints::quantize_lens_title(an);
    let _ = completion::default_output(an);
    Ok(())
}

/// Up to about 16 offsets spread over `text`, plus both ends, on char boundaries.
fn offsets(text: &str, salt: usize) -> Vec<usize> {
    let len = text.len();
    let step = (len / 16).max(1);
    let mut out: Vec<usize> = (salt % step..=len)
        .step_by(step)
        .filter(|&o| text.is_char_boundary(o))
        .collect();
    out.push(0);
    out.push(len);
    out.sort_unstable();
    out.dedup();
    out
}

/// Analyses `text` once: the checker with its fixes applied (`fix_depth` levels deep) and
/// the editor features. `Err` names the broken invariant.
fn analyse(text: &str, salt: usize, fix_depth: usize) -> Result<(), String> {
    let parse = syntax::parse(text);
    crate::checks::syntax_invariants(text, &parse)?;
    let model = model_input(&parse, salt);
    let status = match &model {
        ModelInput::None => ModelStatus::NotGiven,
        ModelInput::Loaded(m) => ModelStatus::Loaded(&m.index),
        ModelInput::Failed(e) => ModelStatus::from_error(e),
    };
    let output = match (salt / 7) % 4 {
        0 => OutputStatus::Unknown,
        1 => OutputStatus::Absent,
        2 => OutputStatus::Model,
        _ => OutputStatus::NotAModel("a folder".into()),
    };
    let config_dir = (salt % 5 != 0).then(|| Path::new("configs"));
    let workspace = (salt % 3 != 0).then(|| Path::new("."));
    let ctx = Context {
        config_dir,
        workspace,
        model: status,
        output: &output,
        skip_plan: salt % 11 == 0,
    };
    let checked = cfg::analyze(&parse, &ctx);
    let fixed = check_config_analysis(text, &checked, if fix_depth > 0 { 2 } else { 0 })?;
    let env = Env {
        config_dir,
        workspace,
        output: Some(&output),
        skip_diagnostics: true,
        skip_plan_checks: ctx.skip_plan,
    };
    let an = Analysis::with_planner(text, parse, model, env, ide_analysis::plan_for);
    check_ide(&an, &offsets(text, salt), salt % 2 == 0)?;
    for f in fixed {
        analyse(&f, salt, fix_depth - 1).map_err(|e| format!("after a quick fix: {e}"))?;
    }
    Ok(())
}

/// Runs the whole config analysis on `data` (read as UTF-8, lossily) and checks its
/// invariants; `Err` names the broken one.
pub fn run(data: &[u8]) -> Result<(), String> {
    let text = String::from_utf8_lossy(data);
    analyse(&text, data.len(), 1)
}
