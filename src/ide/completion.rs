//! Completion candidates at a byte offset, with the exact edit each one makes: keys not yet
//! present, enum values, nbits with their meaning, model paths, layer names (largest
//! first) and layer types (those in the model first).

use std::ops::Range;

use crate::config::syntax::{Object, PathSegment, PositionKind, Value};
use crate::quant::Mode;

use super::analysis::Analysis;
use super::keys;
use super::{facts, TextEdit};
use crate::config::schema::{KeySpec, ValueType};

/// What a candidate is (the editor picks an icon from it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ItemKind {
    /// A key of the config.
    Key,
    /// An enum value (`quantization_mode`, booleans).
    EnumValue,
    /// A number.
    Value,
    /// A `.mlmodel` file.
    File,
    /// An `.mlpackage` folder.
    Folder,
    /// A layer of the model.
    Layer,
    /// A layer type.
    LayerType,
}

/// One completion candidate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompletionItem {
    /// What the list shows.
    pub label: String,
    /// What it is.
    pub kind: ItemKind,
    /// One line beside the label (type, size, meaning).
    pub detail: Option<String>,
    /// Markdown documentation.
    pub documentation: Option<String>,
    /// The edit; its text is a snippet when `snippet` is set.
    pub edit: TextEdit,
    /// Whether `edit.new_text` uses snippet syntax (`$1`, `${1|a,b|}`).
    pub snippet: bool,
    /// Sort key (candidates are also returned in this order).
    pub sort_text: String,
    /// What the editor matches the typed text against (the quoted text for strings).
    pub filter_text: Option<String>,
    /// Characters that accept the candidate and are then typed.
    pub commit_characters: Vec<String>,
}

/// A model file or package the `model` key may name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathCandidate {
    /// The path relative to the config's folder, with `/` separators.
    pub path: String,
    /// Whether it is an `.mlpackage` folder.
    pub package: bool,
}

/// What the editor can take.
#[derive(Debug, Clone, Default)]
pub struct CompletionConfig {
    /// Snippets are supported.
    pub snippets: bool,
    /// Model files near the config.
    pub model_paths: Vec<PathCandidate>,
}

/// Completion candidates at `offset`.
pub fn completions(an: &Analysis, offset: usize, cfg: &CompletionConfig) -> Vec<CompletionItem> {
    let loc = an.parse.locate(an.text, offset);
    let mut items = match &loc.kind {
        PositionKind::Key { range, .. } => key_items(an, &loc.path, range.to_range(), cfg),
        PositionKind::ObjectBody => key_items(an, &loc.path, offset..offset, cfg),
        PositionKind::AfterColon { replace } => value_items(an, &loc.path, replace.to_range(), cfg),
        PositionKind::StringValue { range, .. } | PositionKind::Value { range, .. } => {
            value_items(an, &loc.path, range.to_range(), cfg)
        }
        PositionKind::ArrayElement { .. } => value_items(an, &loc.path, offset..offset, cfg),
        PositionKind::Outside => Vec::new(),
    };
    items.sort_by(|a, b| a.sort_text.cmp(&b.sort_text));
    items
}

fn quoted(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| format!("\"{s}\""))
}

/// Whether the next significant character after `end` starts another member or element,
/// so an inserted member needs a trailing comma.
fn needs_comma(text: &str, end: usize) -> bool {
    let rest = text.get(end..).unwrap_or("");
    matches!(rest.trim_start().chars().next(), Some('"'))
}

fn key_items(
    an: &Analysis,
    path: &[PathSegment],
    range: Range<usize>,
    cfg: &CompletionConfig,
) -> Vec<CompletionItem> {
    let Some(object) = an.parse.at_path(path).and_then(Value::as_object) else {
        return Vec::new();
    };
    // The member whose key is being typed: it already has a colon when only the key changes.
    let editing = object
        .members
        .iter()
        .find(|m| m.key.range.to_range() == range && !range.is_empty());
    let has_colon = editing.is_some_and(|m| m.colon.is_some());
    let present = |name: &str| {
        object
            .members
            .iter()
            .any(|m| m.key.name == name && m.key.range.to_range() != range)
    };
    let comma = !has_colon && needs_comma(an.text, range.end);
    if let [PathSegment::Key(k)] = path {
        if k == "layers" {
            return layer_key_items(an, object, range, has_colon, comma, cfg);
        }
    }
    let Some(docs) = keys::keys_at(path) else {
        return Vec::new();
    };
    docs.iter()
        .enumerate()
        .filter(|(_, d)| !present(d.name))
        .map(|(i, d)| key_item(d, i, range.clone(), has_colon, comma, cfg.snippets))
        .collect()
}

fn placeholder(d: &KeySpec, snippets: bool) -> &'static str {
    match (d.ty, snippets) {
        (ValueType::String | ValueType::Path, true) => "\"$1\"",
        (ValueType::String | ValueType::Path, false) => "\"\"",
        (ValueType::Integer, true) if d.name == "nbits" => "${1|8,16,6,4|}",
        (ValueType::Integer, true) => "$1",
        (ValueType::Integer, false) => "",
        (ValueType::Boolean, true) => "${1|true,false|}",
        (ValueType::Boolean, false) => "true",
        (ValueType::NumberArray | ValueType::StringArray, true) => "[$1]",
        (ValueType::NumberArray | ValueType::StringArray, false) => "[]",
        (ValueType::Object, true) => "{$1}",
        (ValueType::Object, false) => "{}",
    }
}

fn key_item(
    d: &KeySpec,
    i: usize,
    range: Range<usize>,
    has_colon: bool,
    comma: bool,
    snippets: bool,
) -> CompletionItem {
    let key = quoted(d.name);
    let mut new_text = if has_colon {
        key.clone()
    } else {
        format!("{key}: {}", placeholder(d, snippets))
    };
    if comma {
        new_text.push(',');
    }
    let required = keys::is_required(d);
    CompletionItem {
        label: d.name.to_owned(),
        kind: ItemKind::Key,
        detail: Some(if required {
            format!("required · {}", d.summary)
        } else {
            d.summary.to_owned()
        }),
        documentation: Some(crate::config::schema::hover(d)),
        snippet: snippets && !has_colon,
        edit: TextEdit { range, new_text },
        sort_text: format!("{}{i:02}", if required { 0 } else { 1 }),
        filter_text: Some(key),
        commit_characters: Vec::new(),
    }
}

fn layer_key_items(
    an: &Analysis,
    object: &Object,
    range: Range<usize>,
    has_colon: bool,
    comma: bool,
    cfg: &CompletionConfig,
) -> Vec<CompletionItem> {
    let Some(model) = an.model else {
        return Vec::new();
    };
    facts::layer_stats(&model.index)
        .into_iter()
        .filter(|s| {
            !object
                .members
                .iter()
                .any(|m| m.key.name == s.name && m.key.range.to_range() != range)
        })
        .enumerate()
        .map(|(rank, s)| {
            let key = quoted(&s.name);
            let mut new_text = match (has_colon, cfg.snippets) {
                (true, _) => key.clone(),
                (false, true) => format!("{key}: {{$1}}"),
                (false, false) => format!("{key}: {{}}"),
            };
            if comma {
                new_text.push(',');
            }
            layer_item(
                &s,
                rank,
                range.clone(),
                new_text,
                cfg.snippets && !has_colon,
                key,
            )
        })
        .collect()
}

fn layer_item(
    s: &facts::LayerStat,
    rank: usize,
    range: Range<usize>,
    new_text: String,
    snippet: bool,
    filter: String,
) -> CompletionItem {
    CompletionItem {
        label: s.name.clone(),
        kind: ItemKind::Layer,
        detail: Some(format!(
            "{} · {} weights · {}",
            s.layer_type,
            facts::count(s.weights),
            facts::bytes(s.bytes)
        )),
        documentation: None,
        edit: TextEdit { range, new_text },
        snippet,
        sort_text: format!("{rank:06}"),
        filter_text: Some(filter),
        commit_characters: Vec::new(),
    }
}

fn simple(
    label: String,
    kind: ItemKind,
    detail: &str,
    range: Range<usize>,
    new_text: String,
    sort: usize,
) -> CompletionItem {
    let filter = new_text.clone();
    CompletionItem {
        label,
        kind,
        detail: Some(detail.to_owned()),
        documentation: None,
        edit: TextEdit { range, new_text },
        snippet: false,
        sort_text: format!("{sort:06}"),
        filter_text: Some(filter),
        commit_characters: vec![",".into()],
    }
}

fn value_items(
    an: &Analysis,
    path: &[PathSegment],
    range: Range<usize>,
    cfg: &CompletionConfig,
) -> Vec<CompletionItem> {
    let names: Vec<&str> = path
        .iter()
        .map(|s| match s {
            PathSegment::Key(k) => k.as_str(),
            PathSegment::Index(_) => "[]",
        })
        .collect();
    match names.as_slice() {
        ["quantization_mode"] | ["layers", _, "quantization_mode"] => Mode::ALL
            .iter()
            .enumerate()
            .map(|(i, m)| {
                simple(
                    m.name().into(),
                    ItemKind::EnumValue,
                    keys::mode_doc(*m),
                    range.clone(),
                    quoted(m.name()),
                    i,
                )
            })
            .collect(),
        ["nbits"] | ["layers", _, "nbits"] => keys::NBITS
            .iter()
            .enumerate()
            .map(|(i, (n, doc))| {
                simple(
                    n.to_string(),
                    ItemKind::Value,
                    doc,
                    range.clone(),
                    n.to_string(),
                    i,
                )
            })
            .collect(),
        ["fuse_layers"] | ["layers", _, "skip"] => ["true", "false"]
            .iter()
            .enumerate()
            .map(|(i, b)| {
                simple(
                    (*b).into(),
                    ItemKind::EnumValue,
                    "",
                    range.clone(),
                    (*b).into(),
                    i,
                )
            })
            .collect(),
        ["model"] => cfg
            .model_paths
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let (kind, detail) = if p.package {
                    (ItemKind::Folder, "ML package")
                } else {
                    (ItemKind::File, "Core ML model")
                };
                simple(
                    p.path.clone(),
                    kind,
                    detail,
                    range.clone(),
                    quoted(&p.path),
                    i,
                )
            })
            .collect(),
        ["output"] => default_output(an)
            .map(|o| {
                vec![simple(
                    o.clone(),
                    ItemKind::File,
                    "the default output name",
                    range.clone(),
                    quoted(&o),
                    0,
                )]
            })
            .unwrap_or_default(),
        ["selector", "skip_layers", "[]"] => skip_layer_items(an, path, range),
        ["selector", "skip_layer_types", "[]"] => layer_type_items(an, path, range),
        _ => Vec::new(),
    }
}

/// The default output name: `<model stem>.<tag>.mlmodel` beside the model (`.mlpackage` for
/// a model named `*.mlpackage`).
pub fn default_output(an: &Analysis) -> Option<String> {
    let (model, _) = super::analysis::model_reference(&an.parse)?;
    let nbits = an.settings.as_ref()?.default.nbits;
    let tag = if nbits == 16 {
        "fp16".to_owned()
    } else {
        format!("{nbits}bit")
    };
    let path = std::path::Path::new(model.trim_end_matches('/'));
    let stem = path.file_stem()?.to_string_lossy();
    // A package in, a package out (as `config::analysis::default_output_name`).
    let ext = if crate::quant::write_package::is_package_path(path) {
        "mlpackage"
    } else {
        "mlmodel"
    };
    let name = format!("{stem}.{tag}.{ext}");
    Some(match path.parent().map(|p| p.to_string_lossy()) {
        Some(dir) if !dir.is_empty() => format!("{dir}/{name}"),
        _ => name,
    })
}

/// Strings already in the array holding the element at `path`, except that element.
fn siblings<'a>(an: &'a Analysis, path: &[PathSegment]) -> Vec<&'a str> {
    let Some((PathSegment::Index(me), parent)) = path.split_last() else {
        return Vec::new();
    };
    let Some(array) = an.parse.at_path(parent).and_then(Value::as_array) else {
        return Vec::new();
    };
    array
        .elements
        .iter()
        .enumerate()
        .filter(|(i, _)| i != me)
        .filter_map(|(_, e)| e.as_str())
        .collect()
}

fn skip_layer_items(
    an: &Analysis,
    path: &[PathSegment],
    range: Range<usize>,
) -> Vec<CompletionItem> {
    let Some(model) = an.model else {
        return Vec::new();
    };
    let taken = siblings(an, path);
    let comma = range.is_empty() && needs_comma(an.text, range.end);
    facts::layer_stats(&model.index)
        .into_iter()
        .filter(|s| !taken.contains(&s.name.as_str()))
        .enumerate()
        .map(|(rank, s)| {
            let q = quoted(&s.name);
            let text = if comma { format!("{q},") } else { q.clone() };
            let mut item = layer_item(&s, rank, range.clone(), text, false, q);
            item.commit_characters = vec![",".into()];
            item
        })
        .collect()
}

fn layer_type_items(
    an: &Analysis,
    path: &[PathSegment],
    range: Range<usize>,
) -> Vec<CompletionItem> {
    let taken = siblings(an, path);
    let present = an
        .model
        .map(|m| facts::type_stats(&m.index))
        .unwrap_or_default();
    let mut items = Vec::new();
    let mut push = |name: &str, detail: String, sort: String| {
        if taken.contains(&name) {
            return;
        }
        let q = quoted(name);
        items.push(CompletionItem {
            label: name.to_owned(),
            kind: ItemKind::LayerType,
            detail: Some(detail),
            documentation: keys::layer_type_doc(name).map(str::to_owned),
            edit: TextEdit {
                range: range.clone(),
                new_text: q.clone(),
            },
            snippet: false,
            sort_text: sort,
            filter_text: Some(q),
            commit_characters: vec![",".into()],
        });
    };
    for (rank, t) in present
        .iter()
        .filter(|t| keys::layer_type_names().any(|n| n == t.name))
        .enumerate()
    {
        let layers = if t.layers == 1 {
            "1 layer".to_owned()
        } else {
            format!("{} layers", t.layers)
        };
        push(
            &t.name,
            format!("{layers} · {}", facts::bytes(t.bytes)),
            format!("0{rank:05}"),
        );
    }
    for (i, name) in keys::layer_type_names().enumerate() {
        if present.iter().any(|t| t.name == name) {
            continue;
        }
        let detail = if an.model.is_some() {
            "not in this model"
        } else {
            "layer type"
        };
        push(name, detail.to_owned(), format!("1{i:05}"));
    }
    items
}
