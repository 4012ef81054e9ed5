//! Facts about a model for the editor: per-layer and per-type weight totals, the storage
//! mix, and sizes in words.

use std::collections::HashMap;

use crate::model::{LayerInfo, LayerParams, ModelIndex};
use crate::quant::select::glob_match;
use crate::quant::Plan;

/// A size in bytes for people: `512 B`, `310 KB`, `1.2 MB`, `4.1 GB` (decimal units).
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["KB", "MB", "GB", "TB"];
    if n < 1000 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1000.0;
    let mut unit = UNITS[0];
    for u in UNITS.iter().skip(1) {
        if v < 999.95 {
            break;
        }
        v /= 1000.0;
        unit = u;
    }
    if v < 9.95 {
        format!("{v:.1} {unit}")
    } else {
        format!("{v:.0} {unit}")
    }
}

/// The change from `before` to `after` as a signed percentage: `−75%`, `+3%`, `±0%`.
pub fn change(before: u64, after: u64) -> String {
    if before == 0 {
        return "±0%".into();
    }
    let pct = (after as f64 - before as f64) * 100.0 / before as f64;
    let rounded = pct.round() as i64;
    match rounded {
        0 => "±0%".into(),
        r if r < 0 => format!("−{}%", -r),
        r => format!("+{r}%"),
    }
}

/// A count with thousands separators: `36,864`.
pub fn count(n: u64) -> String {
    crate::format::thousands(n)
}

/// Weight totals of one named layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerStat {
    /// The layer's name.
    pub name: String,
    /// Its type.
    pub layer_type: String,
    /// Number of weight elements.
    pub weights: u64,
    /// Serialized bytes of its WeightParams.
    pub bytes: u64,
}

/// Every layer holding weights, largest first (ties by name), one entry per name.
pub fn layer_stats(index: &ModelIndex) -> Vec<LayerStat> {
    let mut seen = HashMap::new();
    let mut out: Vec<LayerStat> = Vec::new();
    for (id, layer) in index.layers.iter().enumerate() {
        if layer.weights.is_empty() {
            continue;
        }
        let (weights, bytes) = index
            .layer_weights(id)
            .fold((0, 0), |(c, b), w| (c + w.count, b + w.bytes()));
        match seen.get(&layer.name) {
            Some(&i) => {
                if let Some(s) = out.get_mut(i) {
                    let s: &mut LayerStat = s;
                    s.weights += weights;
                    s.bytes += bytes;
                }
            }
            None => {
                seen.insert(layer.name.clone(), out.len());
                out.push(LayerStat {
                    name: layer.name.clone(),
                    layer_type: layer.layer_type.clone(),
                    weights,
                    bytes,
                });
            }
        }
    }
    out.sort_by(|a, b| b.bytes.cmp(&a.bytes).then_with(|| a.name.cmp(&b.name)));
    out
}

/// Whether a layer counts as the selector's pseudo-type `depthwiseConv`.
pub fn is_depthwise(layer: &LayerInfo) -> bool {
    matches!(layer.params, LayerParams::Convolution { kernel_channels: 1, n_groups, .. } if n_groups > 1)
}

/// Layers and bytes of one layer type (or pseudo-type) in a model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TypeStat {
    /// The type's name.
    pub name: String,
    /// Number of layers of that type holding weights.
    pub layers: u64,
    /// Their WeightParams bytes.
    pub bytes: u64,
}

/// Totals per layer type present in the model (with `depthwiseConv` for depthwise
/// convolutions, counted under `convolution` too), largest first.
pub fn type_stats(index: &ModelIndex) -> Vec<TypeStat> {
    let mut map: HashMap<String, (u64, u64)> = HashMap::new();
    for (id, layer) in index.layers.iter().enumerate() {
        if layer.weights.is_empty() {
            continue;
        }
        let bytes: u64 = index.layer_weights(id).map(|w| w.bytes()).sum();
        let mut add = |name: &str| {
            let e = map.entry(name.to_owned()).or_default();
            e.0 += 1;
            e.1 += bytes;
        };
        add(&layer.layer_type);
        if is_depthwise(layer) {
            add("depthwiseConv");
        }
    }
    let mut out: Vec<TypeStat> = map
        .into_iter()
        .map(|(name, (layers, bytes))| TypeStat {
            name,
            layers,
            bytes,
        })
        .collect();
    out.sort_by(|a, b| b.bytes.cmp(&a.bytes).then_with(|| a.name.cmp(&b.name)));
    out
}

/// How the weights are stored, by share of bytes: `float32 98%, float16 2%`.
pub fn storage_mix(index: &ModelIndex) -> String {
    let mut map: HashMap<&'static str, u64> = HashMap::new();
    let mut total = 0;
    for w in &index.weights {
        if w.count == 0 {
            continue;
        }
        *map.entry(w.storage.name()).or_default() += w.bytes();
        total += w.bytes();
    }
    if total == 0 {
        return "no weights".into();
    }
    let mut parts: Vec<(&str, u64)> = map.into_iter().collect();
    parts.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(b.0)));
    parts
        .iter()
        .map(|(name, b)| format!("{name} {}%", (*b as f64 * 100.0 / total as f64).round()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The ids of the layers a name or glob pattern matches.
pub fn matching_layers<'a>(
    index: &'a ModelIndex,
    pattern: &'a str,
) -> impl Iterator<Item = usize> + 'a {
    index
        .layers
        .iter()
        .enumerate()
        .filter(move |(_, l)| l.name == pattern || glob_match(pattern, &l.name))
        .map(|(i, _)| i)
}

/// Bytes before and after of the layers matching `pattern` under a plan.
pub fn pattern_bytes(index: &ModelIndex, plan: &Plan, pattern: &str) -> Option<(u64, u64)> {
    let mut any = false;
    let (mut before, mut after) = (0, 0);
    for id in matching_layers(index, pattern) {
        let lp = plan.layers.get(id)?;
        any = true;
        before += lp.bytes_before;
        after += lp.bytes_after;
    }
    any.then_some((before, after))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_in_words() {
        let out: Vec<String> = [0, 999, 1000, 9_949, 310_000, 1_234_567, 4_100_000_000]
            .into_iter()
            .map(bytes)
            .collect();
        assert_eq!(
            out,
            ["0 B", "999 B", "1.0 KB", "9.9 KB", "310 KB", "1.2 MB", "4.1 GB"]
        );
        assert_eq!(change(4000, 1000), "−75%");
        assert_eq!(change(100, 103), "+3%");
        assert_eq!(change(0, 5), "±0%");
        assert_eq!(count(36_864), "36,864");
        assert_eq!(count(999), "999");
    }
}
