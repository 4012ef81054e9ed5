//! Hover text: the model's facts on `model`, the whole-model estimate on `nbits` and
//! `quantization_mode`, the plan of a layer on its name, a type's totals on a layer type,
//! and every key's documentation. Markdown; [`plain`] turns it into plaintext.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::ops::Range;

use crate::config::syntax::{PathSegment, PositionKind};
use crate::quant::kernels::Quality;
use crate::quant::{LayerDecision, TensorAction};

use super::analysis::Analysis;
use super::{facts, keys};

/// Hover text and the range it is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HoverResult {
    /// The hovered text.
    pub range: Range<usize>,
    /// Markdown.
    pub markdown: String,
}

/// What the caller knows of the quality figures of one quantized tensor.
#[derive(Debug, Clone, PartialEq)]
pub enum QualityFigure {
    /// Measured: SNR and relative RMS error of the dequantized weights.
    Known(Quality),
    /// Not measured yet (the measurement runs in the background).
    Computing,
    /// Not measured, and why (too large, or the measurement failed).
    Unavailable(String),
}

/// The hover at `offset`, without quality figures.
pub fn hover(an: &Analysis, offset: usize) -> Option<HoverResult> {
    hover_with(an, offset, &mut |_| None)
}

/// The hover at `offset`; on a layer, `quality` is asked about every tensor the plan
/// quantizes (by its index in the model index) and its answer is shown.
pub fn hover_with(
    an: &Analysis,
    offset: usize,
    quality: &mut dyn FnMut(usize) -> Option<QualityFigure>,
) -> Option<HoverResult> {
    let loc = an.parse.locate(an.text, offset);
    let (path, range) = match &loc.kind {
        PositionKind::Key { name, range, .. } => {
            let mut p = loc.path.clone();
            p.push(PathSegment::Key(name.clone()));
            (p, range.to_range())
        }
        PositionKind::StringValue { range, .. } | PositionKind::Value { range, .. } => {
            (loc.path.clone(), range.to_range())
        }
        _ => return None,
    };
    let is_key = matches!(loc.kind, PositionKind::Key { .. });
    let names: Vec<&str> = path
        .iter()
        .map(|s| match s {
            PathSegment::Key(k) => k.as_str(),
            PathSegment::Index(_) => "[]",
        })
        .collect();
    let mut md = String::new();
    match names.as_slice() {
        ["layers", pattern] => md.push_str(&layer_text(an, pattern, quality)),
        ["selector", "skip_layers", "[]"] => {
            let name = an
                .parse
                .at_path(&path)
                .and_then(|v| v.as_str())
                .unwrap_or("");
            md.push_str(&layer_text(an, name, quality));
        }
        ["selector", "skip_layer_types", "[]"] => {
            let name = an
                .parse
                .at_path(&path)
                .and_then(|v| v.as_str())
                .unwrap_or("");
            md.push_str(&type_text(an, name));
        }
        ["layers", pattern, "nbits" | "quantization_mode"] if !is_key => {
            md.push_str(&layer_text(an, pattern, quality))
        }
        _ => {
            // On a key its documentation; on a value what it means for this model
            // (the documentation when there is nothing to compute).
            let facts = match names.as_slice() {
                _ if is_key => None,
                ["model"] => model_text(an),
                ["nbits" | "quantization_mode"] => estimate_text(an),
                _ => None,
            };
            match (facts, keys::doc_of(&path)) {
                (Some(f), _) => md.push_str(&f),
                (None, Some(spec)) => md.push_str(&crate::config::schema::hover(spec)),
                (None, None) => {}
            }
        }
    }
    (!md.is_empty()).then_some(HoverResult {
        range,
        markdown: md,
    })
}

/// The model's facts.
fn model_text(an: &Analysis) -> Option<String> {
    let m = an.model?;
    let idx = &m.index;
    let root = idx.models.first()?;
    let with_weights = idx.layers.iter().filter(|l| !l.weights.is_empty()).count();
    let name = m
        .path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut s = format!(
        "**{name}** — `{}`, specification version {}\n\n{} layers ({with_weights} with weights) · weights {} of {} · {}",
        root.model_type,
        root.specification_version,
        idx.layers.len(),
        facts::bytes(idx.weight_bytes()),
        facts::bytes(idx.file_bytes),
        facts::storage_mix(idx),
    );
    if root.is_updatable {
        s.push_str(" · updatable");
    }
    Some(s)
}

/// The whole-model estimate, by layer type.
fn estimate_text(an: &Analysis) -> Option<String> {
    let (m, plan, est) = (an.model?, an.plan()?, an.estimate()?);
    let mut s = format!(
        "Weights {} → {} ({})\n\nOutput file: {} → {} bytes ({})",
        facts::bytes(est.weight_bytes_before),
        facts::bytes(est.weight_bytes_after),
        facts::change(est.weight_bytes_before, est.weight_bytes_after),
        facts::count(est.bytes_before),
        facts::count(est.bytes_after),
        facts::change(est.bytes_before, est.bytes_after),
    );
    let mut by_type: BTreeMap<&str, (u64, u64, u64)> = BTreeMap::new();
    for (layer, lp) in m.index.layers.iter().zip(&plan.layers) {
        if lp.bytes_before == 0 {
            continue;
        }
        let e = by_type.entry(layer.layer_type.as_str()).or_default();
        e.0 += 1;
        e.1 += lp.bytes_before;
        e.2 += lp.bytes_after;
    }
    let mut rows: Vec<_> = by_type.into_iter().collect();
    rows.sort_by_key(|r| std::cmp::Reverse(r.1 .1));
    if !rows.is_empty() {
        s.push_str("\n\n| layer type | layers | before | after |\n|---|---:|---:|---:|");
        for (ty, (n, before, after)) in rows {
            let _ = write!(
                s,
                "\n| {ty} | {n} | {} | {} ({}) |",
                facts::bytes(before),
                facts::bytes(after),
                facts::change(before, after)
            );
        }
    }
    Some(s)
}

fn decision_text(d: &LayerDecision, an: &Analysis) -> String {
    match d {
        LayerDecision::Quantize(t) => format!("quantized: {}", t.describe()),
        LayerDecision::Skip => "kept in full precision".into(),
        LayerDecision::FusedInto(p) => {
            let producer = an
                .model
                .and_then(|m| m.index.layers.get(*p))
                .map_or("?", |l| l.name.as_str());
            format!("fused into `{producer}` and deleted")
        }
        LayerDecision::NotQuantizable => "weights coremltools never converts".into(),
        LayerDecision::NoWeights => "no weights".into(),
    }
}

/// The plan of the layers a name or pattern matches.
fn layer_text(
    an: &Analysis,
    pattern: &str,
    quality: &mut dyn FnMut(usize) -> Option<QualityFigure>,
) -> String {
    let Some(m) = an.model else {
        return format!("`{pattern}`");
    };
    let ids: Vec<usize> = facts::matching_layers(&m.index, pattern).collect();
    if ids.is_empty() {
        return format!("`{pattern}` matches no layer of the model");
    }
    let mut s = String::new();
    if ids.len() > 1 {
        let _ = writeln!(s, "`{pattern}` matches {} layers\n", ids.len());
    }
    for &id in ids.iter().take(8) {
        let Some(layer) = m.index.layers.get(id) else {
            continue;
        };
        let _ = write!(s, "**{}** — `{}`", layer.name, layer.layer_type);
        if let Some(lp) = an.plan().and_then(|p| p.layers.get(id)) {
            match &lp.decision {
                LayerDecision::Quantize(_) => {
                    let _ = write!(s, ": quantized, {}", lp.reason);
                }
                d if lp.reason.is_empty() => {
                    let _ = write!(s, ": {}", decision_text(d, an));
                }
                d => {
                    let _ = write!(s, ": {} ({})", decision_text(d, an), lp.reason);
                }
            }
        }
        s.push('\n');
        for &w in &layer.weights {
            let Some(info) = m.index.weights.get(w) else {
                continue;
            };
            let shape = if info.shape.is_empty() {
                String::new()
            } else {
                format!(" {:?}", info.shape)
            };
            let _ = write!(
                s,
                "\n- `{}`{shape}: {}",
                info.field,
                facts::bytes(info.bytes())
            );
            if let Some(tp) = an.plan().and_then(|p| p.tensors.get(w)) {
                let what = match &tp.action {
                    TensorAction::Keep if tp.fused => "kept (fused values)".to_owned(),
                    TensorAction::Keep => "kept".to_owned(),
                    TensorAction::Convert(t) => t.describe(),
                    TensorAction::Delete => "deleted".to_owned(),
                };
                let _ = write!(s, " → {} ({what})", facts::bytes(tp.bytes_after));
                let measured = matches!(&tp.action, TensorAction::Convert(t)
                    if *t != crate::quant::Target::Dequantize);
                if let Some(figure) = measured.then(|| quality(w)).flatten() {
                    s.push_str(&quality_text(&figure));
                }
            }
        }
        s.push_str("\n\n");
    }
    if ids.len() > 8 {
        let _ = writeln!(s, "… and {} more", ids.len() - 8);
    }
    s.trim_end().to_owned()
}

/// A tensor's quality figures, as a suffix of its line.
fn quality_text(figure: &QualityFigure) -> String {
    match figure {
        QualityFigure::Known(q) if !q.snr_db.is_finite() => " · quality: exact".into(),
        QualityFigure::Known(q) => format!(
            " · quality: SNR {:.1} dB, rel. RMS {:.2e}",
            q.snr_db, q.rel_rms
        ),
        QualityFigure::Computing => " · quality: computing…".into(),
        QualityFigure::Unavailable(why) => format!(" · quality: {why}"),
    }
}

/// A layer type's totals and saving.
fn type_text(an: &Analysis, name: &str) -> String {
    let doc = keys::layer_type_doc(name)
        .map(|d| format!(" — {d}"))
        .unwrap_or_default();
    let Some(m) = an.model else {
        return format!("`{name}`{doc}");
    };
    let ids: Vec<usize> = m
        .index
        .layers
        .iter()
        .enumerate()
        .filter(|(_, l)| {
            !l.weights.is_empty()
                && (l.layer_type == name || (name == "depthwiseConv" && facts::is_depthwise(l)))
        })
        .map(|(i, _)| i)
        .collect();
    if ids.is_empty() {
        return format!("`{name}`{doc}: no layer of this type holds weights in the model");
    }
    let before: u64 = ids
        .iter()
        .flat_map(|&i| m.index.layer_weights(i))
        .map(|w| w.bytes())
        .sum();
    let mut s = format!(
        "`{name}`{doc}: {} layers, {} of weights",
        ids.len(),
        facts::bytes(before)
    );
    if let Some(plan) = an.plan() {
        let after: u64 = ids
            .iter()
            .filter_map(|&i| plan.layers.get(i))
            .map(|l| l.bytes_after)
            .sum();
        let _ = write!(
            s,
            "\n\nWith this config: {} → {} ({})",
            facts::bytes(before),
            facts::bytes(after),
            facts::change(before, after)
        );
    }
    s
}

/// Markdown to plaintext: drops emphasis and code marks and the rule.
pub fn plain(markdown: &str) -> String {
    markdown
        .replace("**", "")
        .replace('`', "")
        .replace("\n\n---\n\n", "\n\n")
}
