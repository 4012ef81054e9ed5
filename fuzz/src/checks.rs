//! Invariants that every successful result must satisfy, shared by the fuzz targets and the
//! deterministic mini-fuzzers of `cargo test` (which include this file by path).

use std::ops::Range;

use coremlq::model::ModelIndex;

/// Checks that an index built from `bytes` is self-consistent: every span lies inside the
/// file, payloads lie inside their WeightParams, and every id points into its vector.
pub fn index_invariants(bytes: &[u8], index: &ModelIndex) -> Result<(), String> {
    let len = bytes.len();
    let inside = |what: &str, s: &Range<usize>| -> Result<(), String> {
        if s.start <= s.end && s.end <= len {
            Ok(())
        } else {
            Err(format!("{what} span {s:?} outside the file of {len} bytes"))
        }
    };
    let within = |what: &str, inner: &Range<usize>, outer: &Range<usize>| -> Result<(), String> {
        if outer.start <= inner.start && inner.end <= outer.end && inner.start <= inner.end {
            Ok(())
        } else {
            Err(format!(
                "{what} span {inner:?} outside its parent {outer:?}"
            ))
        }
    };
    let id = |what: &str, i: usize, n: usize| -> Result<(), String> {
        if i < n {
            Ok(())
        } else {
            Err(format!("{what} id {i} out of range (only {n})"))
        }
    };
    if index.models.is_empty() {
        return Err("an index without a top-level model".into());
    }
    if index.file_bytes != len as u64 {
        return Err(format!(
            "file_bytes {} but the file has {len} bytes",
            index.file_bytes
        ));
    }
    let (nm, nn, nl, nw) = (
        index.models.len(),
        index.networks.len(),
        index.layers.len(),
        index.weights.len(),
    );
    for m in &index.models {
        inside("model", &m.span)?;
        within("model body", &m.body, &m.span)?;
        if let Some(p) = m.parent {
            id("parent model", p, nm)?;
        }
        if let Some(n) = m.network {
            id("model network", n, nn)?;
        }
        for &c in &m.children {
            id("pipeline member", c, nm)?;
        }
    }
    for n in &index.networks {
        inside("network", &n.span)?;
        within("network body", &n.body, &n.span)?;
        id("network model", n.model, nm)?;
        if let Some(l) = n.parent_layer {
            id("network parent layer", l, nl)?;
        }
        for &l in &n.layers {
            id("network layer", l, nl)?;
        }
    }
    for l in &index.layers {
        inside("layer", &l.span)?;
        // A layer without a type has an empty params span (by convention `0..0`).
        if !l.params_span.is_empty() || l.type_field != 0 {
            within("layer params", &l.params_span, &l.span)?;
        }
        id("layer network", l.network, nn)?;
        for &w in &l.weights {
            id("layer weight", w, nw)?;
        }
        for &c in &l.children {
            id("nested network", c, nn)?;
        }
    }
    for w in &index.weights {
        inside("weight", &w.span)?;
        within("weight body", &w.body, &w.span)?;
        id("weight layer", w.layer, nl)?;
        for p in [
            &w.float_values,
            &w.half_values,
            &w.raw_values,
            &w.int8_values,
        ]
        .into_iter()
        .flatten()
        {
            within("weight payload", p, &w.body)?;
        }
        if let Some(q) = &w.quantization {
            within("quantization params", q, &w.body)?;
        }
    }
    Ok(())
}

/// Checks that `r` is a char range of `text` (inside it, on char boundaries).
pub fn char_range(what: &str, text: &str, r: &std::ops::Range<usize>) -> Result<(), String> {
    if r.start <= r.end
        && r.end <= text.len()
        && text.is_char_boundary(r.start)
        && text.is_char_boundary(r.end)
    {
        Ok(())
    } else {
        Err(format!(
            "{what} range {r:?} is not a char range of the {} byte text",
            text.len()
        ))
    }
}

/// Checks that a config parse covers `text` honestly: every range of the tree and of the
/// errors lies inside the text, on char boundaries, and children lie inside their parents.
pub fn syntax_invariants(text: &str, parse: &coremlq::config::syntax::Parse) -> Result<(), String> {
    use coremlq::config::syntax::{TextRange, Value, ValueKind};
    let ok = |what: &str, r: TextRange| char_range(what, text, &r.to_range());
    let within = |what: &str, inner: TextRange, outer: TextRange| -> Result<(), String> {
        if outer.start <= inner.start && inner.end <= outer.end {
            Ok(())
        } else {
            Err(format!("{what} range {inner} outside its parent {outer}"))
        }
    };
    if parse.len != text.len() {
        return Err(format!(
            "parse.len {} for a {} byte text",
            parse.len,
            text.len()
        ));
    }
    for e in &parse.errors {
        ok("error", e.range)?;
    }
    // An explicit stack: the checker must survive the deep nesting it is given.
    let mut stack: Vec<&Value> = vec![&parse.root];
    while let Some(v) = stack.pop() {
        ok("value", v.range)?;
        match &v.kind {
            ValueKind::Object(o) => {
                for m in &o.members {
                    ok("member", m.range)?;
                    ok("key", m.key.range)?;
                    within("member", m.range, v.range)?;
                    within("key", m.key.range, m.range)?;
                    if let Some(c) = m.colon {
                        ok("colon", c)?;
                    }
                    stack.push(&m.value);
                }
            }
            ValueKind::Array(a) => {
                for e in &a.elements {
                    within("element", e.range, v.range)?;
                    stack.push(e);
                }
            }
            ValueKind::String(s) => {
                ok("string content", s.inner)?;
                within("string content", s.inner, v.range)?;
            }
            _ => {}
        }
    }
    Ok(())
}
