//! Value checks that need no model: nbits, quantization_mode, lut (and their valid
//! combinations, coremltools' §2.1 table), the selector's values, and the same for every
//! `layers` entry.

use std::sync::Arc;

use super::structure::{quote, wrong_type, EntryFields, Fields};
use crate::config::diagnostic::{Code, Diagnostic, Fix};
use crate::config::schema::{self, KMEANS_ALIAS, NBITS};
use crate::config::suggest::closest;
use crate::config::syntax::{Member, TextRange, Value};
use crate::quant::settings::Override;
use crate::quant::Mode;

/// A checked value and the member it came from.
#[derive(Debug, Clone)]
pub(super) struct Given<'p, T> {
    /// The value.
    pub value: T,
    /// Its member (key and value ranges).
    pub member: &'p Member,
}

/// The checked values of a config (absent when missing or invalid).
#[derive(Debug, Default)]
pub(super) struct Values<'p> {
    pub nbits: Option<Given<'p, u8>>,
    pub mode: Option<Given<'p, Mode>>,
    pub lut: Option<Given<'p, Arc<[f32]>>>,
    /// Whether the config has a `selector` object.
    pub selector: bool,
    /// Valid `skip_layer_types` names and their ranges.
    pub skip_layer_types: Vec<(String, TextRange)>,
    pub min_kernel_channels: Option<u64>,
    pub min_weight_count: Option<u64>,
    /// `skip_layers` entries and their ranges.
    pub skip_layers: Vec<(String, TextRange)>,
    pub fuse_layers: Option<bool>,
    /// Whether a top-level `lut` is written (even an invalid one).
    pub lut_given: bool,
    pub entries: Vec<EntryValues<'p>>,
}

/// The checked values of one `layers` entry.
#[derive(Debug)]
pub(super) struct EntryValues<'p> {
    /// The entry's member (its key is the pattern).
    pub member: &'p Member,
    pub skip: bool,
    pub nbits: Option<Given<'p, u8>>,
    pub mode: Option<Given<'p, Mode>>,
    pub lut: Option<Given<'p, Arc<[f32]>>>,
}

/// Runs the value checks.
pub(super) fn check<'p>(f: &Fields<'p>, out: &mut Vec<Diagnostic>) -> Values<'p> {
    let mut v = Values {
        nbits: f.nbits.and_then(|m| nbits(m, out)),
        mode: f.mode.and_then(|m| mode(m, out)),
        lut: f.lut.and_then(|m| lut(m, out)),
        selector: f.selector.is_some_and(|m| m.value.as_object().is_some()),
        fuse_layers: f.fuse_layers.and_then(|m| m.value.as_bool()),
        lut_given: f.lut.is_some(),
        ..Values::default()
    };
    let top = Choice {
        nbits: v.nbits.as_ref(),
        mode: v.mode.as_ref(),
        lut: v.lut.as_ref(),
        lut_given: f.lut.is_some(),
    };
    let all_local = Local {
        nbits: true,
        mode: true,
        lut: true,
    };
    combination(&top, all_local, f.root_range, out);

    if let Some(arr) = f.skip_layer_types.and_then(|m| m.value.as_array()) {
        for e in &arr.elements {
            if let Some(name) = e.as_str() {
                if layer_type(name, e, out) {
                    v.skip_layer_types.push((name.to_string(), e.range));
                }
            }
        }
    }
    v.min_kernel_channels = f.min_kernel_channels.and_then(|m| minimum(m, out));
    v.min_weight_count = f.min_weight_count.and_then(|m| minimum(m, out));
    if let Some(arr) = f.skip_layers.and_then(|m| m.value.as_array()) {
        for e in &arr.elements {
            if let Some(name) = e.as_str() {
                v.skip_layers.push((name.to_string(), e.range));
            }
        }
    }
    for e in &f.entries {
        v.entries.push(entry(e, &v, out));
    }
    v
}

fn entry<'p>(e: &EntryFields<'p>, top: &Values<'p>, out: &mut Vec<Diagnostic>) -> EntryValues<'p> {
    let ev = EntryValues {
        member: e.member,
        skip: e.skip.and_then(|m| m.value.as_bool()).unwrap_or(false),
        nbits: e.nbits.and_then(|m| nbits(m, out)),
        mode: e.mode.and_then(|m| mode(m, out)),
        lut: e.lut.and_then(|m| lut(m, out)),
    };
    if ev.skip {
        for m in [e.nbits, e.mode, e.lut].into_iter().flatten() {
            out.push(Diagnostic::new(
                Code::SkipIgnoresSettings,
                m.key.range,
                format!(
                    "`{}` has no effect: this entry has `\"skip\": true`",
                    m.key.name
                ),
            ));
        }
        return ev;
    }
    let local = Local {
        nbits: ev.nbits.is_some(),
        mode: ev.mode.is_some(),
        lut: ev.lut.is_some(),
    };
    // The engine's inheritance rule: an entry with its own nbits 16 and no mode is float16.
    let inherited_mode = top
        .mode
        .as_ref()
        .filter(|_| Override::inherits_mode(ev.nbits.as_ref().map(|n| n.value)));
    let choice = Choice {
        nbits: ev.nbits.as_ref().or(top.nbits.as_ref()),
        mode: ev.mode.as_ref().or(inherited_mode),
        lut: ev.lut.as_ref().or(top.lut.as_ref()),
        lut_given: e.lut.is_some() || top.lut_given,
    };
    if local.nbits || local.mode || local.lut {
        combination(&choice, local, e.member.key.range, out);
    }
    ev
}

fn nbits<'p>(m: &'p Member, out: &mut Vec<Diagnostic>) -> Option<Given<'p, u8>> {
    let n = m.value.as_number()?;
    if let Some(i) = n.integer.filter(|i| NBITS.contains(i)) {
        return u8::try_from(i).ok().map(|value| Given { value, member: m });
    }
    let (message, target) = if n.integral {
        (
            format!(
                "nbits must be 16 (float16) or 1 to 8, found {}",
                text_of(&m.value, n.value)
            ),
            n.value,
        )
    } else {
        (
            format!(
                "nbits must be an integer (16, or 1 to 8), found {}",
                n.value
            ),
            n.value,
        )
    };
    let mut near: Vec<i64> = NBITS.to_vec();
    near.sort_by(|a, b| {
        (*a as f64 - target)
            .abs()
            .total_cmp(&(*b as f64 - target).abs())
    });
    let mut d = Diagnostic::new(Code::InvalidNbits, m.value.range, message)
        .with_help("Only half precision (16-bit), 1 to 8-bit quantization is supported");
    for c in near.into_iter().take(2) {
        d = d.with_fix(Fix::replace(
            format!("Use {c}"),
            m.value.range,
            c.to_string(),
        ));
    }
    out.push(d);
    None
}

fn text_of(v: &Value, n: f64) -> String {
    v.as_number()
        .and_then(|x| x.integer)
        .map_or_else(|| format!("{n}"), |i| i.to_string())
}

fn mode<'p>(m: &'p Member, out: &mut Vec<Diagnostic>) -> Option<Given<'p, Mode>> {
    let s = m.value.as_str()?;
    if s == KMEANS_ALIAS {
        out.push(
            Diagnostic::new(
                Code::DeprecatedMode,
                m.value.range,
                "`kmeans` is coremltools' deprecated alias of `kmeans_lut`",
            )
            .with_fix(Fix::replace(
                "Replace with \"kmeans_lut\"",
                m.value.range,
                "\"kmeans_lut\"",
            )),
        );
    }
    if let Some(value) = Mode::parse(s) {
        return Some(Given { value, member: m });
    }
    let names: Vec<&str> = schema::MODES.iter().map(|d| d.name).collect();
    let mut d = Diagnostic::new(
        Code::UnknownMode,
        m.value.range,
        format!(
            "Invalid quantization mode {}: quantization_mode must be one of {}",
            quote(s),
            names.join(", ")
        ),
    );
    for n in closest(s, names.iter().copied(), 3) {
        d = d.with_fix(Fix::replace(
            format!("Replace with \"{n}\""),
            m.value.range,
            quote(n),
        ));
    }
    out.push(d);
    None
}

fn lut<'p>(m: &'p Member, out: &mut Vec<Diagnostic>) -> Option<Given<'p, Arc<[f32]>>> {
    let arr = m.value.as_array()?;
    let mut values = Vec::with_capacity(arr.elements.len());
    let mut ok = true;
    for e in &arr.elements {
        if e.is_broken() {
            ok = false;
            continue;
        }
        let Some(n) = e.as_number() else {
            out.push(wrong_type(e, "a number"));
            ok = false;
            continue;
        };
        let f = n.value as f32;
        if !f.is_finite() {
            out.push(Diagnostic::new(
                Code::LutNotFinite,
                e.range,
                format!(
                    "lut entries must be finite float32 numbers; {} is not",
                    short(n.value)
                ),
            ));
            ok = false;
        }
        values.push(f);
    }
    ok.then(|| Given {
        value: values.into(),
        member: m,
    })
}

/// A number as messages show it (`1e39`, not 40 digits).
fn short(x: f64) -> String {
    if x.is_finite() && x.abs() >= 1e16 {
        format!("{x:e}")
    } else {
        format!("{x}")
    }
}

fn minimum(m: &Member, out: &mut Vec<Diagnostic>) -> Option<u64> {
    let n = m.value.as_number()?;
    if n.integral && n.value >= 0.0 {
        return Some(n.value as u64);
    }
    let what = if n.integral {
        "negative"
    } else {
        "not an integer"
    };
    out.push(Diagnostic::new(
        Code::InvalidMinimum,
        m.value.range,
        format!(
            "`{}` must be an integer ≥ 0; {} is {what}",
            m.key.name, n.value
        ),
    ));
    None
}

/// Checks one `skip_layer_types` name; true when valid.
fn layer_type(name: &str, e: &Value, out: &mut Vec<Diagnostic>) -> bool {
    if schema::layer_type(name).is_some() {
        return true;
    }
    let names: Vec<&str> = schema::LAYER_TYPES.iter().map(|t| t.name).collect();
    let is_core_ml_type = crate::model::names::LAYER_TYPES
        .iter()
        .any(|(_, n)| *n == name);
    let message = if is_core_ml_type {
        format!("`{name}` layers carry no weights that quantize_weights converts: the selector cannot skip them")
    } else {
        format!("`{name}` is not a layer type")
    };
    let mut d = Diagnostic::new(Code::UnknownLayerType, e.range, message).with_help(format!(
        "Supported quantization layers: {}",
        names.join(", ")
    ));
    for n in closest(name, names.iter().copied(), 3) {
        d = d.with_fix(Fix::replace(
            format!("Replace with \"{n}\""),
            e.range,
            quote(n),
        ));
    }
    out.push(d);
    false
}

/// An effective choice: each piece from the entry or inherited from the top level.
struct Choice<'a, 'p> {
    nbits: Option<&'a Given<'p, u8>>,
    mode: Option<&'a Given<'p, Mode>>,
    lut: Option<&'a Given<'p, Arc<[f32]>>>,
    /// Whether a `lut` is written (even an invalid one, already reported).
    lut_given: bool,
}

/// Which pieces are written in the object being checked (not inherited).
#[derive(Clone, Copy)]
struct Local {
    nbits: bool,
    mode: bool,
    lut: bool,
}

/// coremltools' (mode, nbits) rules and the lut rules, reported on the object's own
/// values (`anchor` when the offending piece is inherited).
fn combination(c: &Choice<'_, '_>, local: Local, anchor: TextRange, out: &mut Vec<Diagnostic>) {
    let mode = c.mode.map_or(Mode::Linear, |m| m.value);
    let mode_range = c.mode.filter(|_| local.mode).map(|m| m.member.value.range);
    let nbits_range = c
        .nbits
        .filter(|_| local.nbits)
        .map(|n| n.member.value.range);
    let lut_range = c.lut.filter(|_| local.lut).map(|l| l.member.value.range);
    if let Some(l) = c.lut.filter(|_| local.lut) {
        if mode != Mode::CustomLut {
            out.push(
                Diagnostic::new(
                    Code::LutUnused,
                    l.member.key.range,
                    format!(
                        "`lut` is only used with `custom_lut`; quantization_mode is `{}`",
                        mode.name()
                    ),
                )
                .with_help("remove `lut`, or set \"quantization_mode\": \"custom_lut\""),
            );
        }
    }
    let Some(nbits) = c.nbits else { return };
    let b = nbits.value;
    if mode == Mode::LinearSymmetric && b != 8 {
        if let Some(range) = mode_range.or(nbits_range) {
            let mut d = Diagnostic::new(
                Code::ModeNbitsConflict,
                range,
                format!("Symmetric quantization is only applicable for 8 bit linear: `linear_symmetric` needs nbits 8, not {b}"),
            );
            if let Some(r) = nbits_range {
                d = d.with_fix(Fix::replace("Set nbits to 8", r, "8"));
            }
            if let Some(r) = mode_range {
                d = d.with_fix(Fix::replace("Use \"linear\"", r, "\"linear\""));
            }
            out.push(d);
        }
        return;
    }
    if b == 16 {
        if let (Some(r), false) = (
            mode_range,
            matches!(mode, Mode::Dequantization | Mode::LinearSymmetric),
        ) {
            out.push(Diagnostic::new(
                Code::ModeIgnored,
                r,
                format!(
                    "nbits 16 converts weights to float16: quantization_mode `{}` is ignored",
                    mode.name()
                ),
            ));
        }
        return;
    }
    if mode != Mode::CustomLut {
        return;
    }
    let want = 1usize << b;
    match c.lut {
        None if c.lut_given => {}
        None => {
            if let Some(range) = mode_range
                .or(nbits_range)
                .or(Some(anchor).filter(|_| local.lut))
            {
                out.push(
                    Diagnostic::new(
                        Code::LutMissing,
                        range,
                        format!("`custom_lut` needs a `lut` of 2^{b} = {want} numbers"),
                    )
                    .with_help(format!("add `\"lut\": [ … {want} numbers … ]`")),
                );
            }
        }
        Some(l) if l.value.len() != want => {
            if let Some(range) = lut_range.or(nbits_range).or(mode_range) {
                out.push(Diagnostic::new(
                    Code::LutLength,
                    range,
                    format!(
                        "`lut` has {} entries; with nbits {b} it needs exactly 2^{b} = {want}",
                        l.value.len()
                    ),
                ));
            }
        }
        Some(_) => {}
    }
}
