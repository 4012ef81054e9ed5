//! Resolution: checked values → [`Settings`] → the engine's [`Plan`], and the checks that
//! need the plan (fused layers named by the config, updatable layers quantized, nothing
//! quantized, the engine's own refusals).

use super::structure::Fields;
use super::values::Values;
use crate::config::diagnostic::{Code, Diagnostic, Fix};
use crate::config::syntax::TextRange;
use crate::model::{LayerId, ModelIndex};
use crate::quant::plan::build;
use crate::quant::select::{glob_match, is_glob};
use crate::quant::settings::Override;
use crate::quant::{Choice, LayerDecision, Mode, Plan, PlanErrorKind, Selector, Settings};

/// `AdvancedQuantizedLayerSelector`'s defaults.
pub const DEFAULT_MIN_KERNEL_CHANNELS: u64 = 4;
/// `AdvancedQuantizedLayerSelector`'s defaults.
pub const DEFAULT_MIN_WEIGHT_COUNT: u64 = 4096;

/// The settings of a config whose values are all valid (`None` without nbits).
pub(super) fn settings(v: &Values<'_>) -> Option<Settings> {
    let nbits = v.nbits.as_ref()?.value;
    let mode = v.mode.as_ref().map_or(Mode::Linear, |m| m.value);
    let selector = if v.selector {
        Selector::Advanced {
            skip_layer_types: v.skip_layer_types.iter().map(|(n, _)| n.clone()).collect(),
            minimum_conv_kernel_channels: v
                .min_kernel_channels
                .unwrap_or(DEFAULT_MIN_KERNEL_CHANNELS),
            minimum_conv_weight_count: v.min_weight_count.unwrap_or(DEFAULT_MIN_WEIGHT_COUNT),
        }
    } else {
        Selector::Default
    };
    let overrides = v
        .entries
        .iter()
        .map(|e| Override {
            pattern: e.member.key.name.clone(),
            skip: e.skip,
            nbits: e.nbits.as_ref().map(|n| n.value),
            mode: e.mode.as_ref().map(|m| m.value),
            lut: e.lut.as_ref().map(|l| l.value.clone()),
        })
        .collect();
    Some(Settings {
        default: Choice {
            nbits,
            mode,
            lut: v.lut.as_ref().map(|l| l.value.clone()),
        },
        selector,
        skip_layers: v.skip_layers.iter().map(|(n, _)| n.clone()).collect(),
        overrides,
        fuse_layers: v.fuse_layers.unwrap_or(true),
    })
}

/// Builds the plan and runs the checks that need it.
pub(super) fn plan(
    f: &Fields<'_>,
    v: &Values<'_>,
    settings: &Settings,
    index: &ModelIndex,
    out: &mut Vec<Diagnostic>,
) -> Option<Plan> {
    let model_range = f
        .model
        .map_or(super::brace(f.root_range), |m| m.value.range);
    let plan = match build(index, settings) {
        Ok(p) => p,
        Err(e) => {
            let range = match e.kind {
                PlanErrorKind::UpdatableFp16 => v
                    .nbits
                    .as_ref()
                    .map_or(model_range, |n| n.member.value.range),
                _ => model_range,
            };
            let message = match &e.place {
                Some(place) => format!("{place}: {}", e.kind),
                None => e.kind.to_string(),
            };
            let mut d = Diagnostic::new(Code::PlanFailed, range, message);
            if matches!(e.kind, PlanErrorKind::FusionWithoutValues { .. }) {
                d = d.with_help("set \"fuse_layers\": false");
            }
            out.push(d);
            return None;
        }
    };
    fused_entries(v, index, &plan, out);
    updatable_layers(f, v, settings, index, &plan, out);
    if plan.converted() == 0 {
        let range = f
            .selector
            .or(f.layers)
            .map(|m| m.key.range)
            .or_else(|| f.model.map(|m| m.value.range))
            .unwrap_or(model_range);
        let message = if settings.default.mode == Mode::Dequantization && !index.weights.is_empty()
        {
            "nothing to dequantize: no selected weight tensor is quantized".to_string()
        } else if index.weights.is_empty() {
            "this config quantizes nothing: the model has no weight tensors".to_string()
        } else {
            format!("this config quantizes nothing: every one of the {} layers is skipped or left as it is", index.layers.len())
        };
        out.push(Diagnostic::new(Code::QuantizesNothing, range, message));
    }
    Some(plan)
}

/// Entries that name only layers deleted by fusion.
fn fused_entries(v: &Values<'_>, index: &ModelIndex, plan: &Plan, out: &mut Vec<Diagnostic>) {
    if plan.fusions.is_empty() {
        return;
    }
    let entries = v.skip_layers.iter().map(|(p, r)| (p.as_str(), *r)).chain(
        v.entries
            .iter()
            .map(|e| (e.member.key.name.as_str(), e.member.key.range)),
    );
    for (pattern, range) in entries {
        // Every matched layer must be fused away: stop at the first one that is not.
        let mut into = Vec::new();
        let mut all_fused = true;
        for l in matching(index, pattern) {
            match plan.layers.get(l).map(|p| &p.decision) {
                Some(LayerDecision::FusedInto(p)) => into.push((l, *p)),
                _ => {
                    all_fused = false;
                    break;
                }
            }
        }
        if into.is_empty() || !all_fused {
            continue;
        }
        let pairs: Vec<String> = into
            .iter()
            .map(|(l, p)| format!("`{}` into `{}`", name(index, *l), name(index, *p)))
            .collect();
        let message = if is_glob(pattern) || into.len() > 1 {
            format!("every layer `{pattern}` matches is folded into its producer by layer fusion and deleted ({}): this entry has no effect", pairs.join(", "))
        } else {
            let (l, p) = into[0];
            format!("layer `{}` is folded into `{}` by layer fusion and deleted: this entry has no effect", name(index, l), name(index, p))
        };
        out.push(
            Diagnostic::new(Code::FusedLayer, range, message)
                .with_help("set \"fuse_layers\": false to keep the layer (coremltools always fuses before 1-8-bit quantization)"),
        );
    }
}

fn name(index: &ModelIndex, l: LayerId) -> &str {
    index.layers.get(l).map_or("?", |x| x.name.as_str())
}

fn matching<'a>(index: &'a ModelIndex, pattern: &'a str) -> impl Iterator<Item = LayerId> + 'a {
    let glob = is_glob(pattern);
    index
        .layers
        .iter()
        .enumerate()
        .filter(move |(_, l)| l.name == pattern || (glob && glob_match(pattern, &l.name)))
        .map(|(i, _)| i)
}

/// The `layers` entry that decides a layer: an exact name beats a pattern, the longest
/// pattern wins (first on ties) — the engine's rule.
fn deciding_entry(settings: &Settings, layer: &str) -> Option<usize> {
    let mut best: Option<(usize, bool, usize)> = None;
    for (i, o) in settings.overrides.iter().enumerate() {
        let exact = o.pattern == layer;
        if !(exact || (is_glob(&o.pattern) && glob_match(&o.pattern, layer))) {
            continue;
        }
        let better = match best {
            None => true,
            Some((_, be, bl)) => !be && (exact || o.pattern.len() > bl),
        };
        if better {
            best = Some((i, exact, o.pattern.len()));
        }
    }
    best.map(|(i, _, _)| i)
}

fn updatable_layers(
    f: &Fields<'_>,
    v: &Values<'_>,
    settings: &Settings,
    index: &ModelIndex,
    plan: &Plan,
    out: &mut Vec<Diagnostic>,
) {
    for (i, layer) in index.layers.iter().enumerate() {
        let updatable = layer.is_updatable || index.layer_weights(i).any(|w| w.is_updatable);
        if !updatable
            || !matches!(
                plan.layers.get(i).map(|p| &p.decision),
                Some(LayerDecision::Quantize(_))
            )
        {
            continue;
        }
        let entry = deciding_entry(settings, &layer.name).and_then(|e| v.entries.get(e));
        let range: TextRange = match entry {
            Some(e) => e
                .nbits
                .as_ref()
                .map_or(e.member.key.range, |n| n.member.value.range),
            None => v
                .nbits
                .as_ref()
                .map(|n| n.member.value.range)
                .unwrap_or_else(|| super::brace(f.root_range)),
        };
        let quoted = super::structure::quote(&layer.name);
        let fix = match f.layers.filter(|m| m.value.as_object().is_some()) {
            Some(m) => Fix::replace(
                format!("Skip {quoted} in \"layers\""),
                TextRange::empty(m.value.range.start + 1),
                format!(" {quoted}: {{ \"skip\": true }},"),
            ),
            None => Fix::replace(
                format!("Skip {quoted} in \"layers\""),
                TextRange::empty(f.root_range.start + 1),
                format!("\n  \"layers\": {{ {quoted}: {{ \"skip\": true }} }},"),
            ),
        };
        out.push(
            Diagnostic::new(
                Code::UpdatableLayer,
                range,
                format!("layer `{}` is updatable: quantizing its weights breaks on-device training", layer.name),
            )
            .with_help(format!(
                "keep it in float32: add {quoted} to selector.skip_layers, or \"layers\": {{{quoted}: {{\"skip\": true}}}}"
            ))
            .with_fix(fix),
        );
    }
}
