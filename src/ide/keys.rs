//! The keys an editor offers and documents, per object of the config (root, `selector`,
//! one entry of `layers`), with the one-line meanings of enum values and nbits.
//!
//! This is the IDE's view of the config format; the config schema is the authority on
//! validation.

use crate::config::syntax::PathSegment;
use crate::quant::Mode;

/// The JSON type of a key's value (drives the inserted snippet).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyType {
    /// A string.
    String,
    /// An integer.
    Integer,
    /// `true` / `false`.
    Bool,
    /// An array.
    Array,
    /// An object.
    Object,
}

/// One documented key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyDoc {
    /// The key.
    pub name: &'static str,
    /// Its value's type.
    pub ty: KeyType,
    /// Whether a config must have it.
    pub required: bool,
    /// Markdown documentation (first line is the summary).
    pub doc: &'static str,
}

const fn key(name: &'static str, ty: KeyType, required: bool, doc: &'static str) -> KeyDoc {
    KeyDoc {
        name,
        ty,
        required,
        doc,
    }
}

/// Keys of the root object.
pub const ROOT: &[KeyDoc] = &[
    key("model", KeyType::String, true, "The `.mlmodel` file to quantize (or an `.mlpackage` folder), relative to this config."),
    key("nbits", KeyType::Integer, true, "Bits per weight: 16 (float16 weights), or 1 to 8."),
    key("quantization_mode", KeyType::String, false, "How weights are quantized: `linear` (default), `linear_symmetric`, `linear_lut`, `kmeans_lut`, `custom_lut` or `dequantization`."),
    key("output", KeyType::String, false, "Where the quantized model is written. Default: `<model stem>.<tag>.mlmodel` beside the model (`fp16` for nbits 16, `<nbits>bit` otherwise). Must differ from `model`."),
    key("selector", KeyType::Object, false, "Which layers to leave in full precision: coremltools' `AdvancedQuantizedLayerSelector` fields plus `skip_layers` by name. Absent: every layer with weights is quantized."),
    key("layers", KeyType::Object, false, "Per-layer overrides (mixed precision): layer names or glob patterns mapped to `nbits`, `quantization_mode`, `lut` or `\"skip\": true`. An exact name beats a pattern; the longest pattern wins."),
    key("fuse_layers", KeyType::Bool, false, "Fold conv/innerProduct→scale/bias, batchnorm→scale and conv→batchnorm before 1–8-bit quantization, as coremltools does (default `true`)."),
    key("lut", KeyType::Array, false, "The lookup table for `custom_lut`: exactly 2^nbits finite numbers; each weight becomes the index of the nearest entry."),
    key("$schema", KeyType::String, false, "Ignored by the tool; lets plain JSON editors validate the file against the shipped JSON Schema."),
];

/// Keys of `selector`.
pub const SELECTOR: &[KeyDoc] = &[
    key("skip_layer_types", KeyType::Array, false, "Layer types to leave alone (`convolution`, `innerProduct`, `batchnorm`, …, and the pseudo-types `depthwiseConv` and `bias`)."),
    key("skip_layers", KeyType::Array, false, "Layers to leave alone, by name or glob pattern (`*`, `?`)."),
    key("minimum_conv_kernel_channels", KeyType::Integer, false, "Convolutions with fewer kernel channels are skipped (default 4)."),
    key("minimum_conv_weight_count", KeyType::Integer, false, "Convolutions with fewer weights are skipped (default 4096)."),
];

/// Keys of one entry of `layers`.
pub const OVERRIDE: &[KeyDoc] = &[
    key(
        "nbits",
        KeyType::Integer,
        false,
        "Bits per weight for the matching layers: 16, or 1 to 8.",
    ),
    key(
        "quantization_mode",
        KeyType::String,
        false,
        "Quantization mode for the matching layers.",
    ),
    key(
        "lut",
        KeyType::Array,
        false,
        "The lookup table for `custom_lut` on the matching layers (2^nbits numbers).",
    ),
    key(
        "skip",
        KeyType::Bool,
        false,
        "`true` leaves the matching layers in full precision.",
    ),
];

/// The keys allowed in the object at `path`, if it is one of the config's objects.
pub fn keys_at(path: &[PathSegment]) -> Option<&'static [KeyDoc]> {
    match path {
        [] => Some(ROOT),
        [PathSegment::Key(k)] if k == "selector" => Some(SELECTOR),
        [PathSegment::Key(k), PathSegment::Key(_)] if k == "layers" => Some(OVERRIDE),
        _ => None,
    }
}

/// The documentation of the key at the end of `path`.
pub fn doc_of(path: &[PathSegment]) -> Option<&'static KeyDoc> {
    let (last, parent) = path.split_last()?;
    let PathSegment::Key(name) = last else {
        return None;
    };
    keys_at(parent)?.iter().find(|k| k.name == name)
}

/// One line on what a mode does.
pub fn mode_doc(mode: Mode) -> &'static str {
    match mode {
        Mode::Linear => "per-channel min/max scale and bias (coremltools' default)",
        Mode::LinearSymmetric => "symmetric linear around zero; 8 bits only",
        Mode::LinearLut => "evenly spaced lookup table between min and max",
        Mode::KmeansLut => "lookup table from 1-D k-means over the weights",
        Mode::CustomLut => "your own lookup table (`lut`)",
        Mode::Dequantization => "turn quantized weights back into float32",
    }
}

/// The nbits values in the order offered, each with a one-line meaning.
pub const NBITS: &[(u8, &str)] = &[
    (16, "float16: half the size, practically lossless"),
    (8, "8-bit: a quarter of the size; safe for most models"),
    (7, "7-bit"),
    (6, "6-bit: usually fine with a LUT mode"),
    (5, "5-bit"),
    (
        4,
        "4-bit: an eighth of the size; check quality, prefer kmeans_lut",
    ),
    (3, "3-bit: aggressive"),
    (2, "2-bit: very aggressive"),
    (1, "1-bit: binary weights"),
];

/// What a `skip_layer_types` pseudo-type means.
pub fn pseudo_type_doc(name: &str) -> Option<&'static str> {
    match name {
        "depthwiseConv" => Some("convolutions with one kernel channel and several groups"),
        "bias" => {
            Some("bias layers, and the biases of convolution, innerProduct and batchedMatmul")
        }
        _ => None,
    }
}
