//! Inlay hints after each layer entry (`≈ 1.2 MB → 310 KB`) and the quantize lens title
//! (`Quantize → 4.1 MB (−75%)`).

use std::ops::Range;

use crate::config::syntax::Value;

use super::analysis::Analysis;
use super::facts;

/// A hint shown at a byte offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InlayHint {
    /// Where it is shown (after the entry).
    pub offset: usize,
    /// The text.
    pub label: String,
    /// A longer explanation.
    pub tooltip: Option<String>,
}

/// Hints for the entries of `layers` and `selector.skip_layers` that end inside `range`.
pub fn inlay_hints(an: &Analysis, range: Range<usize>) -> Vec<InlayHint> {
    let (Some(model), Some(plan), Some(root)) = (an.model, an.plan(), an.root()) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut push = |pattern: &str, offset: usize| {
        if !range.contains(&offset) && range.end != offset {
            return;
        }
        if let Some((before, after)) = facts::pattern_bytes(&model.index, plan, pattern) {
            let n = facts::matching_layers(&model.index, pattern).count();
            let layers = if n == 1 {
                "1 layer".to_owned()
            } else {
                format!("{n} layers")
            };
            out.push(InlayHint {
                offset,
                label: format!("≈ {} → {}", facts::bytes(before), facts::bytes(after)),
                tooltip: Some(format!(
                    "{layers}: {before} → {after} bytes ({})",
                    facts::change(before, after)
                )),
            });
        }
    };
    if let Some(layers) = root.value("layers").and_then(Value::as_object) {
        for m in &layers.members {
            push(&m.key.name, m.range.end);
        }
    }
    let skip = root
        .value("selector")
        .and_then(Value::as_object)
        .and_then(|s| s.value("skip_layers"))
        .and_then(Value::as_array);
    for e in skip.map(|a| a.elements.as_slice()).unwrap_or_default() {
        if let Some(name) = e.as_str() {
            push(name, e.range.end);
        }
    }
    out
}

/// The title of the "Quantize" lens: the output size and the saving when known.
pub fn quantize_lens_title(an: &Analysis) -> String {
    match an.estimate() {
        Some(e) => format!(
            "Quantize → {} ({})",
            facts::bytes(e.bytes_after),
            facts::change(e.bytes_before, e.bytes_after)
        ),
        None => "Quantize".into(),
    }
}
