//! Structure checks: the root is an object, keys are known and not repeated, values have
//! the schema's types, required keys are present. Produces [`Fields`] for the other checks.

use super::brace;
use crate::config::diagnostic::{Code, Diagnostic, Fix};
use crate::config::schema::{self, Required, Section, ValueType};
use crate::config::suggest::closest;
use crate::config::syntax::{KeyForm, Member, Object, Parse, TextRange, Value, ValueKind};

/// The members of a config that passed the type checks (absent when missing or mistyped).
#[derive(Debug, Default)]
pub(super) struct Fields<'p> {
    /// The root object's range.
    pub root_range: TextRange,
    pub model: Option<&'p Member>,
    pub output: Option<&'p Member>,
    pub nbits: Option<&'p Member>,
    pub mode: Option<&'p Member>,
    pub lut: Option<&'p Member>,
    pub selector: Option<&'p Member>,
    pub fuse_layers: Option<&'p Member>,
    pub layers: Option<&'p Member>,
    pub skip_layer_types: Option<&'p Member>,
    pub min_kernel_channels: Option<&'p Member>,
    pub min_weight_count: Option<&'p Member>,
    pub skip_layers: Option<&'p Member>,
    /// The `layers` entries whose value is an object.
    pub entries: Vec<EntryFields<'p>>,
}

/// The typed members of one `layers` entry.
#[derive(Debug)]
pub(super) struct EntryFields<'p> {
    /// The entry (`"conv1": { … }`).
    pub member: &'p Member,
    pub nbits: Option<&'p Member>,
    pub mode: Option<&'p Member>,
    pub lut: Option<&'p Member>,
    pub skip: Option<&'p Member>,
}

/// Runs the structure checks; `None` when the document is not an object.
pub(super) fn check<'p>(parse: &'p Parse, out: &mut Vec<Diagnostic>) -> Option<Fields<'p>> {
    duplicates(&parse.root, out);
    let root = match &parse.root.kind {
        ValueKind::Object(o) => o,
        ValueKind::Missing | ValueKind::Error => return None,
        _ => {
            out.push(Diagnostic::new(
                Code::NotAnObject,
                parse.root.range,
                format!(
                    "a config is a JSON object, found {}",
                    parse.root.type_name()
                ),
            ));
            return None;
        }
    };
    let mut f = Fields {
        root_range: parse.root.range,
        ..Fields::default()
    };
    let typed = check_object(root, Section::Root, out);
    let get = |name: &str| typed.iter().find(|m| m.key.name == name).copied();
    f.model = get("model");
    f.output = get("output");
    f.nbits = get("nbits");
    f.mode = get("quantization_mode");
    f.lut = get("lut");
    f.selector = get("selector");
    f.fuse_layers = get("fuse_layers");
    f.layers = get("layers");
    for spec in schema::keys(Section::Root).filter(|k| k.required == Required::Yes) {
        if root.get(spec.name).is_none() {
            let at = TextRange::empty(parse.root.range.start + 1);
            let example = if spec.name == "nbits" {
                "8"
            } else {
                "\"model.mlmodel\""
            };
            out.push(
                Diagnostic::new(
                    Code::MissingRequiredKey,
                    brace(parse.root.range),
                    format!("missing required key `{}`", spec.name),
                )
                .with_help(format!("add `\"{}\": …`: {}", spec.name, spec.summary))
                .with_fix(Fix::replace(
                    format!("Add \"{}\": {example}", spec.name),
                    at,
                    format!("\n  \"{}\": {example},", spec.name),
                )),
            );
        }
    }
    if let Some(sel) = f.selector.and_then(|m| m.value.as_object()) {
        let typed = check_object(sel, Section::Selector, out);
        let get = |name: &str| typed.iter().find(|m| m.key.name == name).copied();
        f.skip_layer_types = get("skip_layer_types");
        f.min_kernel_channels = get("minimum_conv_kernel_channels");
        f.min_weight_count = get("minimum_conv_weight_count");
        f.skip_layers = get("skip_layers");
    }
    if let Some(layers) = f.layers.and_then(|m| m.value.as_object()) {
        for entry in &layers.members {
            if entry.key.form == KeyForm::Missing || is_repeat(layers, entry) {
                continue;
            }
            let Some(obj) = entry.value.as_object() else {
                if !entry.value.is_broken() {
                    out.push(wrong_type(
                        &entry.value,
                        "an object (`{\"nbits\": …}` or `{\"skip\": true}`)",
                    ));
                }
                continue;
            };
            let typed = check_object(obj, Section::LayerEntry, out);
            let get = |name: &str| typed.iter().find(|m| m.key.name == name).copied();
            f.entries.push(EntryFields {
                member: entry,
                nbits: get("nbits"),
                mode: get("quantization_mode"),
                lut: get("lut"),
                skip: get("skip"),
            });
        }
    }
    Some(f)
}

/// Checks the keys and value types of one object; returns the well-typed first occurrences.
fn check_object<'p>(
    obj: &'p Object,
    section: Section,
    out: &mut Vec<Diagnostic>,
) -> Vec<&'p Member> {
    let mut typed = Vec::new();
    for m in &obj.members {
        if m.key.form == KeyForm::Missing || is_repeat(obj, m) {
            continue;
        }
        let Some(spec) = schema::key(section, &m.key.name) else {
            out.push(unknown_key(obj, m, section));
            continue;
        };
        if m.value.is_broken() {
            continue;
        }
        if type_ok(&m.value, spec.ty) {
            if let (ValueType::StringArray, Some(arr)) = (spec.ty, m.value.as_array()) {
                for e in arr
                    .elements
                    .iter()
                    .filter(|e| !e.is_broken() && e.as_str().is_none())
                {
                    out.push(wrong_type(e, "a string"));
                }
            }
            typed.push(m);
        } else {
            out.push(
                wrong_type(&m.value, spec.ty.describe())
                    .with_help(format!("`{}`: {}", spec.name, spec.summary)),
            );
        }
    }
    typed
}

fn is_repeat(obj: &Object, m: &Member) -> bool {
    obj.get(&m.key.name)
        .is_some_and(|first| !std::ptr::eq(first, m))
}

fn type_ok(v: &Value, ty: ValueType) -> bool {
    match ty {
        ValueType::String | ValueType::Path => matches!(v.kind, ValueKind::String(_)),
        ValueType::Integer => matches!(v.kind, ValueKind::Number(_)),
        ValueType::Boolean => matches!(v.kind, ValueKind::Bool(_)),
        ValueType::NumberArray | ValueType::StringArray => matches!(v.kind, ValueKind::Array(_)),
        ValueType::Object => matches!(v.kind, ValueKind::Object(_)),
    }
}

/// A wrong-type diagnostic on a value.
pub(super) fn wrong_type(v: &Value, expected: &str) -> Diagnostic {
    let mut d = Diagnostic::new(
        Code::WrongType,
        v.range,
        format!("expected {expected}, found {}", v.type_name()),
    );
    // `"8"` where an integer is expected: offer the number.
    if expected == "an integer" {
        if let Some(n) = v.as_str().and_then(|s| s.trim().parse::<i64>().ok()) {
            d = d.with_fix(Fix::replace(
                format!("Replace with {n}"),
                v.range,
                n.to_string(),
            ));
        }
    }
    d
}

/// An unknown key, with a fix for each close key not already given in the same object
/// (replacing with a present key would only make a duplicate).
fn unknown_key(obj: &Object, m: &Member, section: Section) -> Diagnostic {
    let names: Vec<&str> = schema::keys(section).map(|k| k.name).collect();
    let mut d = Diagnostic::new(
        Code::UnknownKey,
        m.key.range,
        format!("unknown key `{}` in {}", m.key.name, section.describe()),
    );
    let absent = names.iter().copied().filter(|n| obj.get(n).is_none());
    let near = closest(&m.key.name, absent, 3);
    for n in &near {
        d = d.with_fix(Fix::replace(
            format!("Replace with \"{n}\""),
            m.key.range,
            quote(n),
        ));
    }
    if !near.is_empty() {
        return d.with_help(format!("did you mean `{}`?", near.join("` or `")));
    }
    let given = closest(&m.key.name, names.iter().copied(), 3);
    if given.is_empty() {
        d.with_help(format!("valid keys: {}", names.join(", ")))
    } else {
        d.with_help(format!(
            "`{}` is already given in this object; remove this key",
            given.join("` and `")
        ))
    }
}

/// Reports every repeated key in every object of the tree.
fn duplicates(v: &Value, out: &mut Vec<Diagnostic>) {
    match &v.kind {
        ValueKind::Object(o) => {
            for (first, repeat) in o.duplicates() {
                out.push(
                    Diagnostic::new(
                        Code::DuplicateKey,
                        repeat.key.range,
                        format!("duplicate key `{}`", repeat.key.name),
                    )
                    .with_related(first.key.range, "first given here (this one is used)"),
                );
            }
            for m in &o.members {
                duplicates(&m.value, out);
            }
        }
        ValueKind::Array(a) => a.elements.iter().for_each(|e| duplicates(e, out)),
        _ => {}
    }
}

/// `s` as a JSON string literal.
pub(super) fn quote(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| format!("\"{s}\""))
}
