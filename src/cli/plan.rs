//! `coremlq plan CONFIG`: what a config does to every layer, with exact sizes, as a table
//! or as JSON. The plan is the one the analysis builds and `coremlq quantize` executes.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use coremlq::config::load::{check_file, Checked};
use coremlq::format::{percent_of, thousands};
use coremlq::model::{ModelFile, ModelIndex};
use coremlq::quant::estimate::estimate;
use coremlq::quant::{LayerDecision, Plan, Target};
use serde_json::{json, Value};

/// Arguments of `coremlq plan`.
#[derive(clap::Args)]
pub struct Args {
    /// The config file (`*.quant.json`).
    #[arg(value_name = "CONFIG")]
    pub config: PathBuf,
    /// Print the plan as JSON.
    #[arg(long)]
    pub json: bool,
    /// List every layer, also those without weights.
    #[arg(long)]
    pub all: bool,
    /// Also quantize in memory and show each converted tensor's SNR and relative RMS error.
    #[arg(long)]
    pub quality: bool,
}

/// The reconstruction quality of one converted tensor.
struct TensorQuality {
    layer: String,
    field: String,
    target: String,
    snr_db: f64,
    rel_rms: f64,
    max_abs: f64,
}

/// One row of the plan.
struct Row {
    name: String,
    layer_type: String,
    action: &'static str,
    nbits: Option<u8>,
    mode: Option<&'static str>,
    bytes_before: u64,
    bytes_after: u64,
    reason: String,
    fused_into: Option<String>,
}

/// Runs `coremlq plan`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let checked = check_file(&args.config, None)?;
    let (Some(plan), Some(model)) = (&checked.analysis.plan, &checked.model) else {
        return refuse(&checked);
    };
    let est = estimate(&model.index, model.bytes(), plan);
    model.check_unchanged()?;
    let est = est?;
    let rows = rows(&model.index, plan);
    let qualities = if args.quality {
        quality(model, plan)?
    } else {
        Vec::new()
    };
    let shown_model = display(checked.analysis.paths.model.as_ref());
    let shown_output = display(checked.analysis.paths.output.as_ref());
    let mut stdout = std::io::stdout().lock();
    if args.json {
        let layers: Vec<Value> = rows
            .iter()
            .map(|r| {
                json!({
                    "name": r.name, "type": r.layer_type, "action": r.action, "nbits": r.nbits,
                    "mode": r.mode, "bytes_before": r.bytes_before, "bytes_after": r.bytes_after,
                    "reason": r.reason, "fused_into": r.fused_into,
                })
            })
            .collect();
        let doc = json!({
            "model": shown_model,
            "output": shown_output,
            "input_bytes": est.bytes_before,
            "output_bytes": est.bytes_after,
            "weight_bytes_before": est.weight_bytes_before,
            "weight_bytes_after": est.weight_bytes_after,
            "tensors_converted": plan.converted(),
            "layers": layers,
            "quality": qualities.iter().map(|q| json!({
                "layer": q.layer, "tensor": q.field, "target": q.target,
                "snr_db": finite(q.snr_db), "rel_rms": q.rel_rms, "max_abs_error": q.max_abs,
            })).collect::<Vec<_>>(),
            "notes": plan.notes,
            "warnings": checked.analysis.diagnostics.iter().map(|d| format!("{}: {}", d.code, d.message)).collect::<Vec<_>>(),
        });
        writeln!(stdout, "{}", serde_json::to_string_pretty(&doc)?)?;
        return Ok(ExitCode::SUCCESS);
    }
    // Warnings first, rustc-style, so that nothing surprising goes unseen.
    stdout.write_all(super::check::report(&checked).as_bytes())?;
    writeln!(stdout, "model   {shown_model}")?;
    writeln!(stdout, "output  {shown_output}")?;
    writeln!(stdout)?;
    let shown: Vec<&Row> = rows
        .iter()
        .filter(|r| args.all || r.action != "no weights")
        .collect();
    let headers = ["layer", "type", "action", "nbits", "mode", "bytes", "why"];
    let cells: Vec<[String; 7]> = shown
        .iter()
        .map(|r| {
            let bytes = if r.bytes_before == r.bytes_after {
                thousands(r.bytes_before)
            } else {
                format!(
                    "{} → {}",
                    thousands(r.bytes_before),
                    thousands(r.bytes_after)
                )
            };
            [
                r.name.clone(),
                r.layer_type.clone(),
                r.action.to_string(),
                r.nbits.map_or_else(|| "-".into(), |b| b.to_string()),
                r.mode.unwrap_or("-").to_string(),
                bytes,
                r.reason.clone(),
            ]
        })
        .collect();
    let mut widths = headers.map(|h| h.chars().count());
    for row in &cells {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cols: Vec<&str>| {
        let mut s = String::new();
        for (i, (c, w)) in cols.iter().zip(widths).enumerate() {
            if i + 1 == cols.len() {
                s.push_str(c);
            } else {
                s.push_str(&format!(
                    "{c}{}  ",
                    " ".repeat(w.saturating_sub(c.chars().count()))
                ));
            }
        }
        s.trim_end().to_string()
    };
    writeln!(stdout, "{}", line(headers.to_vec()))?;
    for row in &cells {
        writeln!(stdout, "{}", line(row.iter().map(String::as_str).collect()))?;
    }
    let hidden = rows.len() - shown.len();
    if hidden > 0 {
        writeln!(
            stdout,
            "({hidden} layers without weights not shown; --all lists them)"
        )?;
    }
    writeln!(stdout)?;
    writeln!(
        stdout,
        "weights  {} → {} bytes ({} tensors converted)",
        thousands(est.weight_bytes_before),
        thousands(est.weight_bytes_after),
        plan.converted()
    )?;
    let pct = percent_of(est.bytes_after, est.bytes_before);
    writeln!(
        stdout,
        "file     {} → {} bytes ({pct:.1}%, exact)",
        thousands(est.bytes_before),
        thousands(est.bytes_after)
    )?;
    if args.quality {
        writeln!(stdout)?;
        let lw = qualities
            .iter()
            .map(|q| q.layer.chars().count() + q.field.chars().count() + 1)
            .max()
            .unwrap_or(6)
            .max(6);
        let tw = qualities
            .iter()
            .map(|q| q.target.chars().count())
            .max()
            .unwrap_or(6)
            .max(6);
        writeln!(
            stdout,
            "{:lw$}  {:tw$}  {:>9}  {:>9}  {:>10}",
            "tensor", "target", "SNR dB", "rel. RMS", "max error"
        )?;
        for q in &qualities {
            let name = format!("{}.{}", q.layer, q.field);
            let snr = if q.snr_db.is_finite() {
                format!("{:.1}", q.snr_db)
            } else {
                "exact".into()
            };
            writeln!(
                stdout,
                "{name:lw$}  {:tw$}  {snr:>9}  {:>9.2e}  {:>10.3e}",
                q.target, q.rel_rms, q.max_abs
            )?;
        }
    }
    for n in &plan.notes {
        writeln!(stdout, "note: {n}")?;
    }
    Ok(ExitCode::SUCCESS)
}

fn finite(x: f64) -> Option<f64> {
    x.is_finite().then_some(x)
}

/// Quantizes every converted tensor in memory (fused values included) and measures how
/// close its dequantized values are to the float originals.
fn quality(model: &ModelFile, plan: &Plan) -> anyhow::Result<Vec<TensorQuality>> {
    Ok(coremlq::quant::quality::plan_quality(model, plan)?
        .into_iter()
        .map(|q| TensorQuality {
            layer: q.layer,
            field: q.field,
            target: q.target.describe(),
            snr_db: q.quality.snr_db,
            rel_rms: q.quality.rel_rms,
            max_abs: q.quality.max_abs,
        })
        .collect())
}

/// Prints why there is no plan (the config's errors) and fails.
fn refuse(checked: &Checked) -> anyhow::Result<ExitCode> {
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(super::check::report(checked).as_bytes())?;
    let errors = checked.analysis.errors().count();
    if errors > 0 {
        writeln!(
            stdout,
            "error: {} has {errors} error{}: no plan",
            checked.path.display(),
            if errors == 1 { "" } else { "s" }
        )?;
    } else {
        writeln!(
            stdout,
            "error: {}: the model could not be loaded: no plan",
            checked.path.display()
        )?;
    }
    Ok(ExitCode::from(1))
}

/// A resolved path (relative paths stay relative to the current folder).
fn display(path: Option<&PathBuf>) -> String {
    let Some(p) = path else { return "-".into() };
    p.display().to_string()
}

fn rows(index: &ModelIndex, plan: &Plan) -> Vec<Row> {
    index
        .layers
        .iter()
        .zip(&plan.layers)
        .map(|(l, lp)| {
            let (action, target, fused_into) = match &lp.decision {
                LayerDecision::Quantize(t) => ("quantize", Some(t), None),
                LayerDecision::Skip => ("skip", None, None),
                LayerDecision::FusedInto(p) => {
                    ("fused", None, index.layers.get(*p).map(|x| x.name.clone()))
                }
                LayerDecision::NotQuantizable => ("not quantizable", None, None),
                LayerDecision::NoWeights => ("no weights", None, None),
            };
            Row {
                name: l.name.clone(),
                layer_type: l.layer_type.clone(),
                action,
                nbits: target.and_then(nbits_of),
                mode: target.map(mode_of),
                bytes_before: lp.bytes_before,
                bytes_after: lp.bytes_after,
                reason: lp.reason.to_string(),
                fused_into,
            }
        })
        .collect()
}

fn nbits_of(t: &Target) -> Option<u8> {
    match t {
        Target::Fp16 => Some(16),
        Target::Linear(b)
        | Target::LinearLut(b)
        | Target::KmeansLut(b)
        | Target::CustomLut(b, _) => Some(*b),
        Target::LinearSymmetric => Some(8),
        Target::Dequantize => None,
    }
}

fn mode_of(t: &Target) -> &'static str {
    match t {
        Target::Fp16 => "float16",
        Target::Linear(_) => "linear",
        Target::LinearSymmetric => "linear_symmetric",
        Target::LinearLut(_) => "linear_lut",
        Target::KmeansLut(_) => "kmeans_lut",
        Target::CustomLut(..) => "custom_lut",
        Target::Dequantize => "dequantization",
    }
}
