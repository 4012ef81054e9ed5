//! Diagnostics of the config language: stable codes, severities, byte ranges, messages and
//! fix data. `docs/diagnostics.md` documents every code.

use super::syntax::{SyntaxErrorKind, TextRange};

/// How bad a diagnostic is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Severity {
    /// The config cannot be executed (`coremlq quantize` refuses it).
    Error,
    /// Probably not what was meant.
    Warning,
    /// Worth knowing.
    Info,
    /// A remark about a setting that has no effect.
    Hint,
}

impl Severity {
    /// `error`, `warning`, `info` or `hint`.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Info => "info",
            Severity::Hint => "hint",
        }
    }
}

macro_rules! codes {
    ($( $(#[$doc:meta])* $variant:ident = $code:literal, $slug:literal, $sev:ident; )*) => {
        /// A stable diagnostic code (`Q0102`), also known by a slug (`unknown-key`).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Code {
            $( $(#[$doc])* $variant, )*
        }

        impl Code {
            /// Every code, in numeric order.
            pub const ALL: &'static [Code] = &[ $( Code::$variant, )* ];

            /// The code as shown to users: `Q0102`.
            pub fn as_str(self) -> &'static str {
                match self { $( Code::$variant => $code, )* }
            }

            /// A short descriptive name: `unknown-key`.
            pub fn slug(self) -> &'static str {
                match self { $( Code::$variant => $slug, )* }
            }

            /// The severity the code is reported with.
            pub fn severity(self) -> Severity {
                match self { $( Code::$variant => Severity::$sev, )* }
            }

            /// The code for `Q0102` or `unknown-key`.
            pub fn parse(s: &str) -> Option<Code> {
                Code::ALL.iter().copied().find(|c| c.as_str() == s || c.slug() == s)
            }
        }
    };
}

codes! {
    /// A character that starts no JSON token.
    UnexpectedCharacter = "Q0001", "unexpected-character", Error;
    /// A token where it cannot be.
    UnexpectedToken = "Q0002", "unexpected-token", Error;
    /// A value is missing.
    MissingValue = "Q0003", "missing-value", Error;
    /// A `:` is missing.
    MissingColon = "Q0004", "missing-colon", Error;
    /// A `,` is missing.
    MissingComma = "Q0005", "missing-comma", Error;
    /// A `}` is missing.
    MissingBrace = "Q0006", "missing-brace", Error;
    /// A `]` is missing.
    MissingBracket = "Q0007", "missing-bracket", Error;
    /// A closing `"` is missing.
    MissingQuote = "Q0008", "missing-quote", Error;
    /// A key is missing.
    MissingKey = "Q0009", "missing-key", Error;
    /// A key without quotes.
    UnquotedKey = "Q0010", "unquoted-key", Error;
    /// A bare word that is no JSON literal.
    InvalidLiteral = "Q0011", "invalid-literal", Error;
    /// A malformed number.
    InvalidNumber = "Q0012", "invalid-number", Error;
    /// A bad escape or control character in a string.
    InvalidString = "Q0013", "invalid-string", Error;
    /// A `/*` comment without `*/`.
    UnterminatedComment = "Q0014", "unterminated-comment", Error;
    /// Nesting too deep to follow.
    TooDeep = "Q0015", "too-deep", Error;
    /// The document is not a JSON object.
    NotAnObject = "Q0101", "not-an-object", Error;
    /// A key the language does not know.
    UnknownKey = "Q0102", "unknown-key", Error;
    /// A key given twice in one object.
    DuplicateKey = "Q0103", "duplicate-key", Error;
    /// A value of the wrong JSON type.
    WrongType = "Q0104", "wrong-type", Error;
    /// A required key (`model`, `nbits`) is missing.
    MissingRequiredKey = "Q0105", "missing-required-key", Error;
    /// The model file does not exist.
    ModelNotFound = "Q0201", "model-not-found", Error;
    /// The model file cannot be read.
    ModelUnreadable = "Q0202", "model-unreadable", Error;
    /// The model file is truncated or corrupt.
    ModelCorrupt = "Q0203", "model-corrupt", Error;
    /// The file is not a Core ML model.
    NotAModel = "Q0204", "not-a-model", Error;
    /// A Core ML model without neural-network weights to quantize (ML Program, tree ensemble, …).
    UnsupportedModelType = "Q0205", "unsupported-model-type", Error;
    /// The model's weights are already (partly) quantized or float16.
    AlreadyQuantized = "Q0206", "already-quantized", Warning;
    /// nbits 16 on an updatable model (coremltools refuses it).
    UpdatableFp16 = "Q0207", "updatable-fp16", Error;
    /// The settings would quantize the weights of a layer marked updatable.
    UpdatableLayer = "Q0208", "updatable-layer-quantized", Error;
    /// nbits not an integer in {1..8, 16}.
    InvalidNbits = "Q0301", "invalid-nbits", Error;
    /// An unknown quantization_mode.
    UnknownMode = "Q0302", "unknown-mode", Error;
    /// `kmeans`, coremltools' deprecated alias of `kmeans_lut`.
    DeprecatedMode = "Q0303", "deprecated-mode", Warning;
    /// A mode that coremltools rejects with this nbits.
    ModeNbitsConflict = "Q0304", "mode-nbits-conflict", Error;
    /// A mode that nbits 16 ignores.
    ModeIgnored = "Q0305", "mode-ignored", Hint;
    /// `custom_lut` without `lut`.
    LutMissing = "Q0401", "lut-missing", Error;
    /// `lut` without `custom_lut`.
    LutUnused = "Q0402", "lut-unused", Warning;
    /// `lut` without exactly 2^nbits entries.
    LutLength = "Q0403", "lut-length", Error;
    /// A `lut` entry that is not a finite float32.
    LutNotFinite = "Q0404", "lut-not-finite", Error;
    /// A `skip_layer_types` entry that is no layer type.
    UnknownLayerType = "Q0501", "unknown-layer-type", Error;
    /// A `skip_layer_types` entry the model does not contain.
    LayerTypeNotInModel = "Q0502", "layer-type-not-in-model", Warning;
    /// A `skip_layers` entry or `layers` key naming no layer of the model.
    UnknownLayer = "Q0503", "unknown-layer", Error;
    /// A glob pattern that matches no layer.
    PatternMatchesNothing = "Q0504", "pattern-matches-nothing", Warning;
    /// A `minimum_*` value that is negative or not an integer.
    InvalidMinimum = "Q0505", "invalid-minimum", Error;
    /// An entry naming a layer that fusion deletes.
    FusedLayer = "Q0506", "fused-layer", Warning;
    /// Settings in a `layers` entry that `"skip": true` makes pointless.
    SkipIgnoresSettings = "Q0507", "skip-ignores-settings", Hint;
    /// `output` is the model itself.
    OutputIsModel = "Q0601", "output-is-model", Error;
    /// `output` is outside the workspace.
    OutputOutsideWorkspace = "Q0602", "output-outside-workspace", Warning;
    /// `output` is an existing file that is not a Core ML model.
    OutputNotAModel = "Q0603", "output-not-a-model", Error;
    /// The config quantizes nothing.
    QuantizesNothing = "Q0701", "quantizes-nothing", Warning;
    /// The model cannot be planned with these settings (the engine's reason).
    PlanFailed = "Q0702", "plan-failed", Error;
}

impl Code {
    /// The code of a syntax error kind.
    pub fn of_syntax(kind: SyntaxErrorKind) -> Code {
        match kind {
            SyntaxErrorKind::UnexpectedCharacter => Code::UnexpectedCharacter,
            SyntaxErrorKind::UnexpectedToken => Code::UnexpectedToken,
            SyntaxErrorKind::MissingValue => Code::MissingValue,
            SyntaxErrorKind::MissingColon => Code::MissingColon,
            SyntaxErrorKind::MissingComma => Code::MissingComma,
            SyntaxErrorKind::MissingBrace => Code::MissingBrace,
            SyntaxErrorKind::MissingBracket => Code::MissingBracket,
            SyntaxErrorKind::MissingQuote => Code::MissingQuote,
            SyntaxErrorKind::MissingKey => Code::MissingKey,
            SyntaxErrorKind::UnquotedKey => Code::UnquotedKey,
            SyntaxErrorKind::InvalidLiteral => Code::InvalidLiteral,
            SyntaxErrorKind::InvalidNumber => Code::InvalidNumber,
            SyntaxErrorKind::InvalidString => Code::InvalidString,
            SyntaxErrorKind::UnterminatedComment => Code::UnterminatedComment,
            SyntaxErrorKind::TooDeep => Code::TooDeep,
        }
    }
}

impl std::fmt::Display for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A replacement of the bytes `range` by `text`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Edit {
    /// The bytes replaced (empty to insert).
    pub range: TextRange,
    /// The new text.
    pub text: String,
}

/// A quick fix: a title and the edits that apply it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fix {
    /// What the fix does (`Replace with "nbits"`).
    pub title: String,
    /// The edits, in the config text.
    pub edits: Vec<Edit>,
}

impl Fix {
    /// A fix replacing `range` by `text`.
    pub fn replace(title: impl Into<String>, range: TextRange, text: impl Into<String>) -> Fix {
        Fix {
            title: title.into(),
            edits: vec![Edit {
                range,
                text: text.into(),
            }],
        }
    }
}

/// Another place that explains a diagnostic (the first occurrence of a duplicate key, …).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Related {
    /// Where.
    pub range: TextRange,
    /// What is there.
    pub message: String,
}

/// One finding about a config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// The stable code.
    pub code: Code,
    /// How bad it is.
    pub severity: Severity,
    /// The narrowest range: the offending value or key (empty where something is missing).
    pub range: TextRange,
    /// The message.
    pub message: String,
    /// A hint on what to do, if any.
    pub help: Option<String>,
    /// Quick fixes, best first.
    pub fixes: Vec<Fix>,
    /// Related places.
    pub related: Vec<Related>,
}

impl Diagnostic {
    /// A diagnostic with the code's severity.
    pub fn new(code: Code, range: TextRange, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            code,
            severity: code.severity(),
            range,
            message: message.into(),
            help: None,
            fixes: Vec::new(),
            related: Vec::new(),
        }
    }

    /// With a help line.
    pub fn with_help(mut self, help: impl Into<String>) -> Diagnostic {
        self.help = Some(help.into());
        self
    }

    /// With a fix.
    pub fn with_fix(mut self, fix: Fix) -> Diagnostic {
        self.fixes.push(fix);
        self
    }

    /// With a related place.
    pub fn with_related(mut self, range: TextRange, message: impl Into<String>) -> Diagnostic {
        self.related.push(Related {
            range,
            message: message.into(),
        });
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_and_documented() {
        let doc =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/diagnostics.md"))
                .unwrap_or_default();
        for (i, c) in Code::ALL.iter().enumerate() {
            assert!(!Code::ALL[..i]
                .iter()
                .any(|o| o.as_str() == c.as_str() || o.slug() == c.slug()));
            assert_eq!(Code::parse(c.as_str()), Some(*c));
            assert_eq!(Code::parse(c.slug()), Some(*c));
            let heading = format!("## {} {}", c.as_str(), c.slug());
            assert!(
                doc.contains(&heading),
                "docs/diagnostics.md lacks `{heading}`"
            );
        }
    }
}
