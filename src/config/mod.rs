//! The `*.quant.json` config language: tolerant syntax, schema and analysis.
//!
//! # API for editors and the command line
//!
//! 1. [`syntax::parse`]`(text) -> `[`syntax::Parse`] — never fails. `Parse { root, errors }`:
//!    a tree of [`syntax::Value`]s, each with its byte [`syntax::TextRange`]; missing pieces
//!    are explicit (`ValueKind::Missing`, `Member::colon == None`, `Object::closed == false`,
//!    `StringLit::terminated == false`, `KeyForm::Missing`) and each has a syntax error.
//!    [`syntax::Parse::locate`]`(text, offset)` returns the JSON path and the
//!    [`syntax::PositionKind`] at a cursor (in a key with the typed prefix, after a colon, in
//!    an array element, inside a string…): what completion needs in a half-typed document.
//! 2. [`schema`] — the one table of keys ([`schema::KEYS`]: section, type, required,
//!    default, allowed values, summary and markdown doc), the value sets
//!    ([`schema::MODES`], [`schema::LAYER_TYPES`], [`schema::NBITS`]), hover text
//!    ([`schema::hover`]) and the JSON Schema ([`schema::json_schema`]). From a
//!    `Location::path`: [`schema::section_at`] (which object a key goes in),
//!    [`schema::key_at`] (which key's value the cursor is in) and
//!    [`schema::value_choices`] (the values to offer for it).
//! 3. [`analysis::analyze`]`(&parse, &Context)` — no I/O. The caller resolves the paths
//!    with [`analysis::referenced_paths`], opens the model (or takes it from a cache) and
//!    passes a [`analysis::ModelStatus`] and an [`analysis::OutputStatus`]. The result
//!    holds every [`Diagnostic`] (stable [`Code`], [`Severity`], narrowest byte range,
//!    message, help, [`Fix`]es with text edits, related ranges) and, when there is no
//!    error, the [`crate::quant::Settings`] and the engine's [`crate::quant::Plan`].
//!    `Context::skip_plan` gives a fast pass without the plan (and without the checks
//!    that need it) for keystroke-rate diagnostics.
//! 4. [`load`] — the file-system side for the CLI and the server: reads the config, opens
//!    the model, probes the output, then calls `analyze` ([`load::check_file`],
//!    [`load::check_text`] for unsaved text, [`load::probe_output`]).
//! 5. [`render`] — line/column conversion and the rustc-style text of diagnostics.
//! 6. [`workspace`] — the command line's workspace of a config and the `Q0602` refusal of
//!    an output that resolves outside it (links followed).

pub mod analysis;
pub mod diagnostic;
pub mod load;
pub mod render;
pub mod schema;
pub mod suggest;
pub mod syntax;
pub mod workspace;

pub use analysis::{analyze, Analysis, Context, ModelStatus, OutputStatus};
pub use diagnostic::{Code, Diagnostic, Edit, Fix, Related, Severity};
