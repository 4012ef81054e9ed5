//! The schema of the config language: ONE table of keys ([`KEYS`]) with their types,
//! defaults, allowed values and documentation, plus the documented value sets ([`MODES`],
//! [`LAYER_TYPES`], [`NBITS`]).
//!
//! It drives the analysis (unknown keys, wrong types), the IDE (completion items, hover
//! text) and the shipped JSON Schema (`schemas/quant.schema.json`, produced by
//! [`json_schema`]).

use serde_json::{json, Map, Value as Json};

use super::syntax::PathSegment;

/// Where a key lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Section {
    /// The top-level object.
    Root,
    /// The `selector` object.
    Selector,
    /// One entry of the `layers` object (`"conv1": { … }`).
    LayerEntry,
}

impl Section {
    /// How messages name the object: `the config`, `selector`, `a layers entry`.
    pub fn describe(self) -> &'static str {
        match self {
            Section::Root => "the config",
            Section::Selector => "`selector`",
            Section::LayerEntry => "a `layers` entry",
        }
    }
}

/// The type of a key's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ValueType {
    /// A string.
    String,
    /// A file path (a string, relative to the config's folder).
    Path,
    /// An integer.
    Integer,
    /// `true` or `false`.
    Boolean,
    /// An array of numbers.
    NumberArray,
    /// An array of strings.
    StringArray,
    /// An object.
    Object,
}

impl ValueType {
    /// The type as messages name it: `a string`, `an integer`, ….
    pub fn describe(self) -> &'static str {
        match self {
            ValueType::String | ValueType::Path => "a string",
            ValueType::Integer => "an integer",
            ValueType::Boolean => "a boolean",
            ValueType::NumberArray => "an array of numbers",
            ValueType::StringArray => "an array of strings",
            ValueType::Object => "an object",
        }
    }
}

/// Whether a key must be present.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Required {
    /// Always.
    Yes,
    /// Never.
    No,
    /// When `quantization_mode` is `custom_lut` (with 1–8 bits).
    WithCustomLut,
}

/// The set of values a key accepts, beyond its type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Allowed {
    /// Anything of the type.
    Any,
    /// One of [`MODES`] (or the deprecated alias `kmeans`).
    Modes,
    /// One of [`NBITS`].
    Nbits,
    /// Array elements from [`LAYER_TYPES`].
    LayerTypes,
    /// Integers ≥ 0.
    NonNegative,
    /// Layer names of the model, or glob patterns (`*`, `?`).
    LayerNames,
}

/// One key of the language.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeySpec {
    /// The object it belongs to.
    pub section: Section,
    /// The key.
    pub name: &'static str,
    /// Its value's type.
    pub ty: ValueType,
    /// Whether it must be present.
    pub required: Required,
    /// The default as JSON text, or a description of it in words.
    pub default: Option<&'static str>,
    /// The values it accepts.
    pub allowed: Allowed,
    /// One line for completion lists.
    pub summary: &'static str,
    /// Markdown for hover.
    pub doc: &'static str,
}

/// A documented value (a mode or a layer type).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ValueDoc {
    /// The value as written in a config.
    pub name: &'static str,
    /// One line for completion lists.
    pub summary: &'static str,
    /// Markdown for hover.
    pub doc: &'static str,
}

/// Every key of the language, in the order documentation and completion list them.
pub const KEYS: &[KeySpec] = &[
    KeySpec {
        section: Section::Root,
        name: "$schema",
        ty: ValueType::String,
        required: Required::No,
        default: None,
        allowed: Allowed::Any,
        summary: "JSON Schema for plain JSON editors; ignored by coremlq",
        doc: "The JSON Schema of this file, for editors without the coremlq language server \
              (for example `\"../schemas/quant.schema.json\"`). Ignored by the tool.",
    },
    KeySpec {
        section: Section::Root,
        name: "model",
        ty: ValueType::Path,
        required: Required::Yes,
        default: None,
        allowed: Allowed::Any,
        summary: "The .mlmodel file to quantize",
        doc: "The Core ML neural-network model to quantize: an `.mlmodel` file (or an \
              `.mlpackage` folder holding a neural network). Relative paths start at the \
              folder holding this config. The file is never modified.\n\n\
              Only `neuralNetwork`, `neuralNetworkClassifier`, `neuralNetworkRegressor` models \
              and pipelines of them have weights that `quantize_weights` converts; ML Programs \
              are compressed with `coremltools.optimize.coreml` instead.",
    },
    KeySpec {
        section: Section::Root,
        name: "output",
        ty: ValueType::Path,
        required: Required::No,
        default: Some(
            "<model stem>.<tag>.mlmodel beside the model (tag: fp16 or <nbits>bit; \
             .mlpackage for a package model)",
        ),
        allowed: Allowed::Any,
        summary: "Where the quantized model is written",
        doc: "Where the quantized model is written. Relative paths start at the folder holding \
              this config. Must differ from `model`.\n\n\
              A name ending in `.mlpackage` is written as a Core ML package folder, any \
              other as a plain `.mlmodel` file.\n\n\
              Default: `<model stem>.<tag>.mlmodel` beside the model, where `<tag>` is `fp16` \
              for nbits 16 and `<nbits>bit` otherwise (e.g. `MobileNet.8bit.mlmodel`); \
              `<model stem>.<tag>.mlpackage` for an `.mlpackage` model.",
    },
    KeySpec {
        section: Section::Root,
        name: "nbits",
        ty: ValueType::Integer,
        required: Required::Yes,
        default: None,
        allowed: Allowed::Nbits,
        summary: "Bits per weight: 16 (float16) or 1 to 8",
        doc: "The `nbits` argument of `quantize_weights`: `16` converts float32 weights to \
              IEEE half precision (the mode is then ignored); `1` to `8` quantizes them to that \
              many bits with `quantization_mode`.",
    },
    KeySpec {
        section: Section::Root,
        name: "quantization_mode",
        ty: ValueType::String,
        required: Required::No,
        default: Some("\"linear\""),
        allowed: Allowed::Modes,
        summary: "How weights are quantized (coremltools' quantization_mode)",
        doc: "The `quantization_mode` argument of `quantize_weights`: `linear`, \
              `linear_symmetric`, `linear_lut`, `kmeans_lut`, `custom_lut` or \
              `dequantization` (`kmeans` is coremltools' deprecated alias of `kmeans_lut`).\n\n\
              `linear_symmetric` needs nbits 8; with nbits 16 every other mode means float16.",
    },
    KeySpec {
        section: Section::Root,
        name: "lut",
        ty: ValueType::NumberArray,
        required: Required::WithCustomLut,
        default: None,
        allowed: Allowed::Any,
        summary: "The lookup table for custom_lut: 2^nbits finite numbers",
        doc: "The lookup table of `custom_lut`: exactly 2^nbits finite numbers. Each weight is \
              replaced by the index of the nearest entry. (coremltools takes a Python \
              `lut_function` here; a config gives the table itself.)",
    },
    KeySpec {
        section: Section::Root,
        name: "selector",
        ty: ValueType::Object,
        required: Required::No,
        default: Some("every layer with weights is quantized"),
        allowed: Allowed::Any,
        summary: "Which layers to leave in full precision (AdvancedQuantizedLayerSelector)",
        doc: "Which layers to leave in full precision: the fields of coremltools' \
              `AdvancedQuantizedLayerSelector` (`skip_layer_types`, \
              `minimum_conv_kernel_channels`, `minimum_conv_weight_count`) plus `skip_layers` \
              (by name).\n\nWithout `selector`, every layer with weights is quantized (the \
              default `QuantizedLayerSelector`); with it, the advanced selector's rules apply \
              with its defaults for the keys not given.",
    },
    KeySpec {
        section: Section::Root,
        name: "fuse_layers",
        ty: ValueType::Boolean,
        required: Required::No,
        default: Some("true"),
        allowed: Allowed::Any,
        summary: "Fold conv/innerProduct→scale/bias, batchnorm→scale, conv→batchnorm first",
        doc: "Before 1–8-bit quantization coremltools folds conv/innerProduct→scale/bias, \
              batchnorm→scale and conv→batchnorm into one layer and deletes the folded layer. \
              `true` does the same, with the maths bugs of coremltools 9.0 fixed and never \
              deleting a blob that is a model output; `false` leaves the graph exactly as it \
              is. Ignored for nbits 16 and `dequantization`, as in coremltools.",
    },
    KeySpec {
        section: Section::Root,
        name: "layers",
        ty: ValueType::Object,
        required: Required::No,
        default: None,
        allowed: Allowed::LayerNames,
        summary: "Per-layer overrides (mixed precision)",
        doc: "Per-layer overrides: keys are layer names or glob patterns (`*`, `?`), values are \
              objects with any of `nbits`, `quantization_mode`, `lut`, or `\"skip\": true`. \
              The most specific match wins: an exact name beats a pattern; among patterns, the \
              longest pattern wins. Fields not given come from the top level.",
    },
    KeySpec {
        section: Section::Selector,
        name: "skip_layer_types",
        ty: ValueType::StringArray,
        required: Required::No,
        default: Some("[]"),
        allowed: Allowed::LayerTypes,
        summary: "Layer types to leave alone",
        doc: "Layer types to leave alone (`AdvancedQuantizedLayerSelector.skip_layer_types`): \
              Core ML neural-network layer types that carry weights (`convolution`, \
              `innerProduct`, `batchnorm`, `embedding`, …) and the selector's pseudo-types \
              `depthwiseConv` (depthwise convolutions) and `bias` (bias layers, and the biases \
              of convolution, innerProduct and batchedMatmul layers).",
    },
    KeySpec {
        section: Section::Selector,
        name: "minimum_conv_kernel_channels",
        ty: ValueType::Integer,
        required: Required::No,
        default: Some("4"),
        allowed: Allowed::NonNegative,
        summary: "Convolutions with fewer kernel channels are skipped",
        doc: "Convolutions with fewer kernel channels (`kernelChannels`) are left in full \
              precision (`AdvancedQuantizedLayerSelector.minimum_conv_kernel_channels`). \
              Applies to convolutions only.",
    },
    KeySpec {
        section: Section::Selector,
        name: "minimum_conv_weight_count",
        ty: ValueType::Integer,
        required: Required::No,
        default: Some("4096"),
        allowed: Allowed::NonNegative,
        summary: "Convolutions with fewer weights are skipped",
        doc: "Convolutions with fewer weights (outputChannels × kernelChannels × kH × kW) are \
              left in full precision (`AdvancedQuantizedLayerSelector.minimum_conv_weight_count`). \
              Applies to convolutions only.",
    },
    KeySpec {
        section: Section::Selector,
        name: "skip_layers",
        ty: ValueType::StringArray,
        required: Required::No,
        default: Some("[]"),
        allowed: Allowed::LayerNames,
        summary: "Layer names or glob patterns (*, ?) to leave alone",
        doc: "Layers to leave in full precision, by name or glob pattern (`*` any run of \
              characters, `?` one character) — what a custom `QuantizedLayerSelector` subclass \
              is usually written for.",
    },
    KeySpec {
        section: Section::LayerEntry,
        name: "nbits",
        ty: ValueType::Integer,
        required: Required::No,
        default: Some("the top-level nbits"),
        allowed: Allowed::Nbits,
        summary: "Bits per weight for these layers: 16 or 1 to 8",
        doc: "`nbits` for the matching layers: `16` (float16) or `1` to `8`. Defaults to the \
              top-level `nbits`.",
    },
    KeySpec {
        section: Section::LayerEntry,
        name: "quantization_mode",
        ty: ValueType::String,
        required: Required::No,
        default: Some("the top-level quantization_mode"),
        allowed: Allowed::Modes,
        summary: "quantization_mode for these layers",
        doc: "`quantization_mode` for the matching layers. Defaults to the top-level \
              `quantization_mode`.",
    },
    KeySpec {
        section: Section::LayerEntry,
        name: "lut",
        ty: ValueType::NumberArray,
        required: Required::WithCustomLut,
        default: Some("the top-level lut"),
        allowed: Allowed::Any,
        summary: "custom_lut table for these layers: 2^nbits finite numbers",
        doc: "The `custom_lut` table for the matching layers: exactly 2^nbits finite numbers. \
              Defaults to the top-level `lut`.",
    },
    KeySpec {
        section: Section::LayerEntry,
        name: "skip",
        ty: ValueType::Boolean,
        required: Required::No,
        default: Some("false"),
        allowed: Allowed::Any,
        summary: "Leave these layers in full precision",
        doc: "`true` leaves the matching layers in full precision.",
    },
];

/// Every `quantization_mode` (the deprecated alias `kmeans` is not listed).
pub const MODES: &[ValueDoc] = &[
    ValueDoc {
        name: "linear",
        summary: "Per-channel min/max scale and bias (default)",
        doc: "Linear quantization: per output channel, scale = (max − min)/(2^nbits − 1) and \
              bias = min; each weight becomes round((w − min)/scale).",
    },
    ValueDoc {
        name: "linear_symmetric",
        summary: "Symmetric linear quantization, 8 bits only",
        doc: "Symmetric linear quantization around zero, per output channel. Only with nbits 8 \
              (\"Symmetric quantization is only applicable for 8 bit linear\").",
    },
    ValueDoc {
        name: "linear_lut",
        summary: "Evenly spaced lookup table over the tensor's range",
        doc: "Lookup-table quantization with 2^nbits evenly spaced entries between the \
              tensor's minimum and maximum.",
    },
    ValueDoc {
        name: "kmeans_lut",
        summary: "Lookup table from 1-D k-means",
        doc: "Lookup-table quantization with 2^nbits entries found by 1-D k-means over the \
              tensor's weights.",
    },
    ValueDoc {
        name: "custom_lut",
        summary: "Your own lookup table (`lut`)",
        doc: "Lookup-table quantization with the table given in `lut` (2^nbits numbers); each \
              weight becomes the index of the nearest entry.",
    },
    ValueDoc {
        name: "dequantization",
        summary: "Turn quantized weights back into float32",
        doc: "Dequantization: quantized weights are turned back into float32; nbits is not \
              used.",
    },
];

/// The deprecated alias of `kmeans_lut` that coremltools still accepts.
pub const KMEANS_ALIAS: &str = "kmeans";

/// The valid `nbits` values.
pub const NBITS: &[i64] = &[1, 2, 3, 4, 5, 6, 7, 8, 16];

/// Names `skip_layer_types` accepts: coremltools' selector set (spec §2.8), including the
/// pseudo-types `depthwiseConv` and `bias`.
pub const LAYER_TYPES: &[ValueDoc] = &[
    ValueDoc { name: "convolution", summary: "Convolution and deconvolution layers", doc: "`convolution` layers (`ConvolutionLayerParams`): weights and bias." },
    ValueDoc { name: "innerProduct", summary: "Fully connected layers", doc: "`innerProduct` layers (`InnerProductLayerParams`): weights and bias." },
    ValueDoc { name: "embedding", summary: "Embedding layers", doc: "`embedding` layers (`EmbeddingLayerParams`): weights and bias." },
    ValueDoc { name: "embeddingND", summary: "N-d embedding layers", doc: "`embeddingND` layers (`EmbeddingNDLayerParams`): weights and bias." },
    ValueDoc { name: "batchnorm", summary: "Batch normalization layers", doc: "`batchnorm` layers: gamma, beta, mean and variance." },
    ValueDoc { name: "scale", summary: "Scale layers", doc: "`scale` layers: scale and bias." },
    ValueDoc { name: "bias", summary: "Bias layers and conv/innerProduct/batchedMatmul biases", doc: "Pseudo-type of the selector: skips `bias` layers **and** keeps the biases of convolution, innerProduct and batchedMatmul layers in float32 (biases of embedding, scale, recurrent and batchnorm layers are still quantized)." },
    ValueDoc { name: "loadConstant", summary: "Constant layers", doc: "`loadConstant` layers: their data." },
    ValueDoc { name: "loadConstantND", summary: "N-d constant layers", doc: "`loadConstantND` layers: their data." },
    ValueDoc { name: "simpleRecurrent", summary: "Simple RNN layers", doc: "`simpleRecurrent` layers: weight, recursion and bias." },
    ValueDoc { name: "gru", summary: "GRU layers", doc: "`gru` layers: gate weight, recursion and bias tensors." },
    ValueDoc { name: "uniDirectionalLSTM", summary: "LSTM layers", doc: "`uniDirectionalLSTM` layers: gate weights, recursions, biases and peepholes." },
    ValueDoc { name: "biDirectionalLSTM", summary: "Bidirectional LSTM layers", doc: "`biDirectionalLSTM` layers: both directions' gate tensors." },
    ValueDoc { name: "batchedMatmul", summary: "Batched matrix multiply with constant weights", doc: "`batchedMatmul` layers with constant weights: weights and bias." },
    ValueDoc { name: "depthwiseConv", summary: "Depthwise convolutions (pseudo-type)", doc: "Pseudo-type of the selector: convolutions with one kernel channel and more than one group." },
    ValueDoc { name: "loop", summary: "Loop layers (their nested networks)", doc: "`loop` layers: skipping one leaves its condition and body networks alone." },
    ValueDoc { name: "branch", summary: "Branch layers (their nested networks)", doc: "`branch` layers: skipping one leaves its if and else networks alone." },
];

/// The key `name` of a section.
pub fn key(section: Section, name: &str) -> Option<&'static KeySpec> {
    KEYS.iter().find(|k| k.section == section && k.name == name)
}

/// The keys of a section, in documentation order.
pub fn keys(section: Section) -> impl Iterator<Item = &'static KeySpec> {
    KEYS.iter().filter(move |k| k.section == section)
}

/// The documentation of a mode (`kmeans` resolves to `kmeans_lut`).
pub fn mode(name: &str) -> Option<&'static ValueDoc> {
    let name = if name == KMEANS_ALIAS {
        "kmeans_lut"
    } else {
        name
    };
    MODES.iter().find(|m| m.name == name)
}

/// The documentation of a `skip_layer_types` name.
pub fn layer_type(name: &str) -> Option<&'static ValueDoc> {
    LAYER_TYPES.iter().find(|t| t.name == name)
}

/// The section of the object at a JSON path: `[]` is the root, `["selector"]` the
/// selector, `["layers", name]` a layers entry; `None` elsewhere.
pub fn section_at(path: &[PathSegment]) -> Option<Section> {
    match path {
        [] => Some(Section::Root),
        [PathSegment::Key(k)] if k == "selector" => Some(Section::Selector),
        [PathSegment::Key(k), PathSegment::Key(_)] if k == "layers" => Some(Section::LayerEntry),
        _ => None,
    }
}

/// The key whose value holds the JSON path: `["nbits"]` → `nbits`,
/// `["selector", "skip_layer_types", 2]` → `skip_layer_types`,
/// `["layers", "conv1", "quantization_mode"]` → the entry's `quantization_mode`.
pub fn key_at(path: &[PathSegment]) -> Option<&'static KeySpec> {
    // The longest prefix ending in a key whose parent is a known section.
    (1..=path.len()).rev().find_map(|n| {
        let (parent, last) = path.get(..n)?.split_at(n - 1);
        match last {
            [PathSegment::Key(name)] => section_at(parent).and_then(|s| key(s, name)),
            _ => None,
        }
    })
}

/// The values completion can offer for a key (as JSON text), with a one-line summary each.
pub fn value_choices(spec: &KeySpec) -> Vec<(String, &'static str)> {
    match (spec.allowed, spec.ty) {
        (Allowed::Modes, _) => MODES
            .iter()
            .map(|m| (format!("\"{}\"", m.name), m.summary))
            .collect(),
        (Allowed::Nbits, _) => NBITS
            .iter()
            .map(|b| {
                (
                    b.to_string(),
                    if *b == 16 {
                        "float16 weights"
                    } else {
                        "bits per weight"
                    },
                )
            })
            .collect(),
        (Allowed::LayerTypes, _) => LAYER_TYPES
            .iter()
            .map(|t| (format!("\"{}\"", t.name), t.summary))
            .collect(),
        (_, ValueType::Boolean) => vec![("true".into(), "yes"), ("false".into(), "no")],
        _ => Vec::new(),
    }
}

/// Hover text of a key: the one-line summary, type, default and long documentation.
pub fn hover(spec: &KeySpec) -> String {
    let mut out = format!(
        "**{}** — {}\n\nType: {}",
        spec.name,
        spec.summary,
        spec.ty.describe()
    );
    match spec.required {
        Required::Yes => out.push_str(", required"),
        Required::WithCustomLut => out.push_str(", required with `custom_lut`"),
        Required::No => {}
    }
    if let Some(d) = spec.default {
        out.push_str(&format!(". Default: `{d}`"));
    }
    out.push_str("\n\n");
    out.push_str(spec.doc);
    out
}

/// The JSON Schema (draft-07) of the language, generated from [`KEYS`]; the shipped
/// `schemas/quant.schema.json` is exactly this text.
pub fn json_schema() -> String {
    let root = section_schema(Section::Root);
    let mut top = Map::new();
    top.insert(
        "$schema".into(),
        json!("http://json-schema.org/draft-07/schema#"),
    );
    top.insert(
        "$id".into(),
        json!("https://github.com/coremlq/coremlq/schemas/quant.schema.json"),
    );
    top.insert(
        "title".into(),
        json!("coremlq quantization config (*.quant.json)"),
    );
    top.insert(
        "description".into(),
        json!("How to quantize the weights of one Core ML neural-network model, in coremltools' vocabulary."),
    );
    if let Json::Object(m) = root {
        top.extend(m);
    }
    let mut text = serde_json::to_string_pretty(&Json::Object(top)).unwrap_or_default();
    text.push('\n');
    text
}

fn section_schema(section: Section) -> Json {
    let mut props = Map::new();
    let mut required = Vec::new();
    for k in keys(section) {
        props.insert(k.name.into(), key_schema(k));
        if k.required == Required::Yes {
            required.push(json!(k.name));
        }
    }
    let mut m = Map::new();
    m.insert("type".into(), json!("object"));
    m.insert("properties".into(), Json::Object(props));
    if !required.is_empty() {
        m.insert("required".into(), Json::Array(required));
    }
    m.insert("additionalProperties".into(), json!(false));
    if section == Section::Root {
        // custom_lut with 1–8 bits needs a table.
        m.insert(
            "if".into(),
            json!({
                "properties": {
                    "quantization_mode": { "const": "custom_lut" },
                    "nbits": { "maximum": 8 }
                },
                "required": ["quantization_mode", "nbits"]
            }),
        );
        m.insert("then".into(), json!({ "required": ["lut"] }));
    }
    Json::Object(m)
}

fn key_schema(k: &KeySpec) -> Json {
    let mut m = Map::new();
    match k.ty {
        ValueType::String | ValueType::Path => {
            m.insert("type".into(), json!("string"));
        }
        ValueType::Integer => {
            m.insert("type".into(), json!("integer"));
        }
        ValueType::Boolean => {
            m.insert("type".into(), json!("boolean"));
        }
        ValueType::NumberArray => {
            m.insert("type".into(), json!("array"));
            m.insert("items".into(), json!({ "type": "number" }));
            m.insert("minItems".into(), json!(2));
            m.insert("maxItems".into(), json!(256));
        }
        ValueType::StringArray => {
            m.insert("type".into(), json!("array"));
            let items = if k.allowed == Allowed::LayerTypes {
                enum_schema(LAYER_TYPES.iter().map(|t| (t.name, t.summary)))
            } else {
                json!({ "type": "string" })
            };
            m.insert("items".into(), items);
        }
        ValueType::Object => {
            m.insert("type".into(), json!("object"));
        }
    }
    match k.allowed {
        Allowed::Modes => {
            let mut names: Vec<(&str, &str)> = MODES.iter().map(|d| (d.name, d.summary)).collect();
            names.push((KMEANS_ALIAS, "Deprecated alias of kmeans_lut"));
            if let Json::Object(e) = enum_schema(names.into_iter()) {
                m.extend(e);
            }
        }
        Allowed::Nbits => {
            m.insert("enum".into(), json!(NBITS));
        }
        Allowed::NonNegative => {
            m.insert("minimum".into(), json!(0));
        }
        Allowed::LayerNames if k.ty == ValueType::Object => {
            m.insert(
                "additionalProperties".into(),
                section_schema(Section::LayerEntry),
            );
        }
        Allowed::Any | Allowed::LayerTypes | Allowed::LayerNames => {}
    }
    if k.name == "selector" {
        if let Json::Object(s) = section_schema(Section::Selector) {
            m.extend(s);
        }
    }
    if let Some(d) = k.default.and_then(|d| serde_json::from_str::<Json>(d).ok()) {
        m.insert("default".into(), d);
    }
    m.insert("description".into(), json!(k.summary));
    m.insert("markdownDescription".into(), json!(k.doc));
    Json::Object(m)
}

fn enum_schema<'a>(values: impl Iterator<Item = (&'a str, &'a str)>) -> Json {
    let (names, docs): (Vec<&str>, Vec<&str>) = values.unzip();
    json!({ "type": "string", "enum": names, "enumDescriptions": docs })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_consistent() {
        for (i, k) in KEYS.iter().enumerate() {
            assert!(!k.summary.is_empty() && !k.doc.is_empty(), "{}", k.name);
            assert!(
                !KEYS[..i]
                    .iter()
                    .any(|o| o.section == k.section && o.name == k.name),
                "duplicate key {}",
                k.name
            );
        }
        assert_eq!(LAYER_TYPES.len(), 17);
        for m in crate::quant::Mode::ALL {
            assert!(mode(m.name()).is_some(), "{}", m.name());
        }
    }

    #[test]
    fn paths_to_sections_and_keys() {
        let k = |s: &str| PathSegment::Key(s.into());
        assert_eq!(section_at(&[]), Some(Section::Root));
        assert_eq!(
            section_at(&[k("layers"), k("conv1")]),
            Some(Section::LayerEntry)
        );
        assert_eq!(key_at(&[k("nbits")]).map(|s| s.name), Some("nbits"));
        let p = [k("selector"), k("skip_layer_types"), PathSegment::Index(2)];
        assert_eq!(
            key_at(&p).map(|s| (s.section, s.name)),
            Some((Section::Selector, "skip_layer_types"))
        );
        let p = [k("layers"), k("conv*"), k("quantization_mode")];
        assert_eq!(key_at(&p).map(|s| s.section), Some(Section::LayerEntry));
        assert_eq!(key_at(&[k("nope")]), None);
        assert_eq!(
            value_choices(key(Section::Root, "nbits").expect("nbits")).len(),
            9
        );
        assert_eq!(
            value_choices(key(Section::Root, "quantization_mode").expect("mode"))[0].0,
            "\"linear\""
        );
    }

    #[test]
    fn shipped_json_schema_is_generated() {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas/quant.schema.json");
        let generated = json_schema();
        if std::env::var_os("UPDATE_EXPECT").is_some() {
            std::fs::write(&path, &generated).expect("write schema");
        }
        let shipped = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            shipped == generated,
            "schemas/quant.schema.json is stale: run `UPDATE_EXPECT=1 cargo test -p coremlq --lib config::schema`"
        );
    }
}
