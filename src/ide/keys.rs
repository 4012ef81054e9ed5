//! The keys an editor offers and documents, per object of the config, read from the config
//! schema (the single source of truth), plus the one-line meanings of the nbits values.

use crate::config::schema::{self, KeySpec, Required};
use crate::config::syntax::PathSegment;
use crate::quant::Mode;

/// The keys allowed in the object at `path`, if it is one of the config's objects.
pub fn keys_at(path: &[PathSegment]) -> Option<Vec<&'static KeySpec>> {
    schema::section_at(path).map(|s| schema::keys(s).collect())
}

/// The key at the end of `path` (`["selector", "skip_layers"]`).
pub fn doc_of(path: &[PathSegment]) -> Option<&'static KeySpec> {
    let (last, parent) = path.split_last()?;
    let PathSegment::Key(name) = last else {
        return None;
    };
    schema::key(schema::section_at(parent)?, name)
}

/// Whether a config must always have the key.
pub fn is_required(spec: &KeySpec) -> bool {
    spec.required == Required::Yes
}

/// One line on what a mode does.
pub fn mode_doc(mode: Mode) -> &'static str {
    schema::mode(mode.name()).map_or("", |d| d.summary)
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

/// What a `skip_layer_types` name means.
pub fn layer_type_doc(name: &str) -> Option<&'static str> {
    schema::layer_type(name).map(|d| d.summary)
}

/// The names `skip_layer_types` accepts, in the schema's order.
pub fn layer_type_names() -> impl Iterator<Item = &'static str> {
    schema::LAYER_TYPES.iter().map(|d| d.name)
}
