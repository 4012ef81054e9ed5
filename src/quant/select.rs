//! coremltools' layer selectors (§2.8 of the spec) and the name globs of `skip_layers` and
//! `overrides`.

use std::borrow::Cow;

use super::error::{PlanError, PlanErrorKind};
use super::settings::Selector;
use crate::model::{LayerInfo, LayerParams};

/// The layer types `QuantizedLayerSelector` lets through (plus the advanced selector's
/// pseudo-type `depthwiseConv`), in coremltools' documentation order.
pub const QUANTIZABLE_TYPES: [&str; 17] = [
    "convolution",
    "innerProduct",
    "embedding",
    "embeddingND",
    "batchnorm",
    "scale",
    "bias",
    "loadConstant",
    "loadConstantND",
    "simpleRecurrent",
    "gru",
    "uniDirectionalLSTM",
    "biDirectionalLSTM",
    "batchedMatmul",
    "depthwiseConv",
    "loop",
    "branch",
];

/// Layer types that hold weights coremltools never converts (§2.6).
pub const NEVER_CONVERTED_TYPES: [&str; 4] = [
    "activation",
    "layerNormalization",
    "convolution3d",
    "custom",
];

/// Checks a selector's parameters the way coremltools' constructor does.
pub fn validate(selector: &Selector) -> Result<(), PlanError> {
    if let Selector::Advanced {
        skip_layer_types, ..
    } = selector
    {
        let bad: Vec<&str> = skip_layer_types
            .iter()
            .map(String::as_str)
            .filter(|t| !QUANTIZABLE_TYPES.contains(t))
            .collect();
        if !bad.is_empty() {
            return Err(PlanError::new(PlanErrorKind::UnsupportedSkipTypes {
                types: bad.join(", "),
                supported: QUANTIZABLE_TYPES.join(", "),
            }));
        }
    }
    Ok(())
}

/// The answer of `selector.do_quantize(layer)`: `Ok(())` to quantize, or the reason not to.
pub fn select_layer(selector: &Selector, layer: &LayerInfo) -> Result<(), Cow<'static, str>> {
    let ty = layer.layer_type.as_str();
    if !QUANTIZABLE_TYPES.contains(&ty) {
        return Err(Cow::Owned(format!(
            "selector: {} layers are not quantized",
            display_type(ty)
        )));
    }
    let Selector::Advanced {
        skip_layer_types,
        minimum_conv_kernel_channels,
        minimum_conv_weight_count,
    } = selector
    else {
        return Ok(());
    };
    if skip_layer_types.iter().any(|t| t == ty) {
        return Err(Cow::Owned(format!(
            "selector: skip_layer_types contains {ty:?}"
        )));
    }
    if let LayerParams::Convolution {
        output_channels,
        kernel_channels,
        n_groups,
        kernel_size,
        ..
    } = &layer.params
    {
        let kc = *kernel_channels;
        if skip_layer_types.iter().any(|t| t == "depthwiseConv") && kc == 1 && *n_groups > 1 {
            return Err(Cow::Borrowed(
                "selector: skip_layer_types contains \"depthwiseConv\"",
            ));
        }
        let kh = kernel_size.first().copied().unwrap_or(3);
        let kw = kernel_size.get(1).copied().unwrap_or(3);
        let count = output_channels
            .saturating_mul(kc)
            .saturating_mul(kh)
            .saturating_mul(kw);
        if kc < *minimum_conv_kernel_channels {
            return Err(Cow::Owned(format!(
                "selector: {kc} kernel channels < minimum_conv_kernel_channels {minimum_conv_kernel_channels}"
            )));
        }
        if count < *minimum_conv_weight_count {
            return Err(Cow::Owned(format!(
                "selector: {count} weights < minimum_conv_weight_count {minimum_conv_weight_count}"
            )));
        }
    }
    Ok(())
}

/// The answer of `selector.do_quantize(layer, weight_param="bias")`.
pub fn select_bias(selector: &Selector) -> bool {
    match selector {
        Selector::Default => true,
        Selector::Advanced {
            skip_layer_types, ..
        } => !skip_layer_types.iter().any(|t| t == "bias"),
    }
}

fn display_type(ty: &str) -> &str {
    if ty.is_empty() {
        "untyped"
    } else {
        ty
    }
}

/// Whether `name` matches a glob `pattern` with `*` (any run) and `?` (one character).
pub fn glob_match(pattern: &str, name: &str) -> bool {
    Glob::new(pattern).matches(name)
}

/// A glob pattern prepared once to be matched against many names.
#[derive(Debug, Clone, Copy)]
pub struct Glob<'a> {
    /// The literal text before the first wildcard.
    prefix: &'a str,
    /// The rest, from the first wildcard on (empty for a plain name).
    rest: &'a str,
}

impl<'a> Glob<'a> {
    /// Prepares `pattern`.
    pub fn new(pattern: &'a str) -> Glob<'a> {
        let split = pattern.find(['*', '?']).unwrap_or(pattern.len());
        let (prefix, rest) = pattern.split_at(split);
        Glob { prefix, rest }
    }

    /// Whether the pattern holds a wildcard.
    pub fn is_glob(&self) -> bool {
        !self.rest.is_empty()
    }

    /// Whether `name` matches.
    pub fn matches(&self, name: &str) -> bool {
        // Fast rejection on the literal prefix, byte by byte (names are short).
        let (p, n) = (self.prefix.as_bytes(), name.as_bytes());
        if n.len() < p.len() || !p.iter().zip(n).all(|(a, b)| a == b) {
            return false;
        }
        // The prefix ends before an ASCII wildcard, so this is a character boundary.
        let Some(tail) = name.get(p.len()..) else {
            return false;
        };
        if self.rest.is_empty() {
            return tail.is_empty();
        }
        if self.rest.is_ascii() && tail.is_ascii() {
            // The common case, without allocating.
            return glob(self.rest.as_bytes(), tail.as_bytes(), b'*', b'?');
        }
        let p: Vec<char> = self.rest.chars().collect();
        let n: Vec<char> = tail.chars().collect();
        glob(&p, &n, '*', '?')
    }
}

/// Iterative matcher with one backtrack point: linear in practice, never exponential.
fn glob<T: PartialEq + Copy>(p: &[T], n: &[T], star_c: T, any: T) -> bool {
    let (mut pi, mut ni) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        match p.get(pi) {
            Some(&c) if c == star_c => {
                star = Some((pi, ni));
                pi += 1;
            }
            Some(&c) if c == any || n.get(ni) == Some(&c) => {
                pi += 1;
                ni += 1;
            }
            _ => match star {
                Some((sp, sn)) => {
                    pi = sp + 1;
                    ni = sn + 1;
                    star = Some((sp, sn + 1));
                }
                None => return false,
            },
        }
    }
    p.get(pi..)
        .is_some_and(|rest| rest.iter().all(|&c| c == star_c))
}

/// Whether a pattern contains glob characters.
pub fn is_glob(pattern: &str) -> bool {
    pattern.contains(['*', '?'])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conv(oc: u64, kc: u64, groups: u64, k: u64) -> LayerInfo {
        LayerInfo {
            name: "c".into(),
            layer_type: "convolution".into(),
            params: LayerParams::Convolution {
                output_channels: oc,
                kernel_channels: kc,
                n_groups: groups,
                kernel_size: vec![k, k],
                is_deconvolution: false,
                has_bias: true,
            },
            ..LayerInfo::default()
        }
    }

    fn adv(skip: &[&str], kc: u64, count: u64) -> Selector {
        Selector::Advanced {
            skip_layer_types: skip.iter().map(|s| s.to_string()).collect(),
            minimum_conv_kernel_channels: kc,
            minimum_conv_weight_count: count,
        }
    }

    #[test]
    fn globs() {
        for (p, n, want) in [
            ("conv*", "conv1", true),
            ("conv*", "xconv1", false),
            ("*", "", true),
            ("?", "", false),
            ("a?c", "abc", true),
            ("*b*", "abc", true),
            ("*.weights", "a.b.weights", true),
            ("a*b*c", "abxbc", true),
            ("a*b*c", "abxbd", false),
            ("exact", "exact", true),
            ("exact", "exactly", false),
            ("é?", "éa", true),
            ("*ü", "grün", false),
            ("*ün", "grün", true),
            ("layer1?", "layer12", true),
            ("layer1?", "layer1", false),
            ("layer1?", "layer123", false),
            ("ab", "a", false),
            ("", "", true),
            ("", "a", false),
            ("é*", "éx", true),
            ("ü?n", "grün", false),
        ] {
            assert_eq!(glob_match(p, n), want, "{p} vs {n}");
        }
    }

    #[test]
    fn advanced_thresholds_as_verified_in_the_spec() {
        let s = adv(&[], 4, 4096);
        assert!(select_layer(&s, &conv(16, 16, 1, 4)).is_ok());
        assert!(select_layer(&s, &conv(16, 16, 1, 3)).is_err());
        assert!(select_layer(&s, &conv(256, 3, 1, 3)).is_err());
        let dw = adv(&["depthwiseConv"], 1, 0);
        assert!(select_layer(&dw, &conv(8, 1, 8, 3)).is_err());
        assert!(select_layer(&adv(&[], 1, 0), &conv(8, 1, 8, 3)).is_ok());
        assert!(!select_bias(&adv(&["bias"], 4, 4096)));
        assert!(select_bias(&Selector::Default));
    }

    #[test]
    fn unknown_skip_type_is_rejected() {
        let err = validate(&adv(&["activation"], 4, 4096)).unwrap_err();
        assert!(matches!(
            err.kind,
            PlanErrorKind::UnsupportedSkipTypes { .. }
        ));
        assert!(validate(&adv(&["depthwiseConv", "bias"], 4, 4096)).is_ok());
    }

    #[test]
    fn default_selector_lets_only_weight_types_through() {
        let mut l = conv(1, 1, 1, 1);
        assert!(select_layer(&Selector::Default, &l).is_ok());
        l.layer_type = "activation".into();
        assert!(select_layer(&Selector::Default, &l).is_err());
    }
}
