//! Checks against the model's layers: `skip_layers` entries and `layers` keys must match a
//! layer, `skip_layer_types` entries should name a type the model contains.

use std::collections::HashSet;

use super::structure::{quote, Fields};
use super::values::Values;
use crate::config::diagnostic::{Code, Diagnostic, Fix};
use crate::config::suggest::closest;
use crate::config::syntax::TextRange;
use crate::model::{LayerParams, ModelIndex};
use crate::quant::select::{glob_match, is_glob};

/// Runs the layer checks.
pub(super) fn check(
    _f: &Fields<'_>,
    v: &Values<'_>,
    index: &ModelIndex,
    out: &mut Vec<Diagnostic>,
) {
    let names: HashSet<&str> = index.layers.iter().map(|l| l.name.as_str()).collect();
    for (pattern, range) in &v.skip_layers {
        name_or_pattern(pattern, *range, &names, index, out);
    }
    for e in &v.entries {
        name_or_pattern(&e.member.key.name, e.member.key.range, &names, index, out);
    }
    for (ty, range) in &v.skip_layer_types {
        if !model_has_type(index, ty) {
            let what = match ty.as_str() {
                "depthwiseConv" => {
                    "no depthwise convolution (kernelChannels 1, nGroups > 1)".to_string()
                }
                "bias" => "no `bias` layer and no layer with a bias".to_string(),
                t => format!("no `{t}` layer"),
            };
            out.push(Diagnostic::new(
                Code::LayerTypeNotInModel,
                *range,
                format!("the model has {what}: this entry has no effect"),
            ));
        }
    }
}

fn name_or_pattern(
    pattern: &str,
    range: TextRange,
    names: &HashSet<&str>,
    index: &ModelIndex,
    out: &mut Vec<Diagnostic>,
) {
    if names.contains(pattern) {
        return;
    }
    if is_glob(pattern) {
        if !names.iter().any(|n| glob_match(pattern, n)) {
            out.push(Diagnostic::new(
                Code::PatternMatchesNothing,
                range,
                format!("pattern `{pattern}` matches no layer of the model"),
            ));
        }
        return;
    }
    let mut d = Diagnostic::new(
        Code::UnknownLayer,
        range,
        format!("the model has no layer named `{pattern}`"),
    );
    let near = closest(pattern, index.layers.iter().map(|l| l.name.as_str()), 3);
    for n in &near {
        d = d.with_fix(Fix::replace(
            format!("Replace with \"{n}\""),
            range,
            quote(n),
        ));
    }
    if let Some(first) = near.first() {
        d = d.with_help(format!("did you mean `{first}`?"));
    }
    out.push(d);
}

/// Whether the model has a layer that `skip_layer_types: [ty]` would affect.
fn model_has_type(index: &ModelIndex, ty: &str) -> bool {
    index.layers.iter().any(|l| match ty {
        "depthwiseConv" => matches!(
            l.params,
            LayerParams::Convolution { kernel_channels: 1, n_groups, .. } if n_groups > 1
        ),
        "bias" => {
            l.layer_type == "bias"
                || matches!(
                    l.params,
                    LayerParams::Convolution { has_bias: true, .. }
                        | LayerParams::InnerProduct { has_bias: true, .. }
                        | LayerParams::BatchedMatmul { has_bias: true, .. }
                )
        }
        t => l.layer_type == t,
    })
}
