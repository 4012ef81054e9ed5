//! The server's settings (the `coremlq` section), from `initializationOptions`,
//! `workspace/didChangeConfiguration` and, when the client offers it, `workspace/configuration`.

use serde::Deserialize;
use serde_json::Value;

/// User settings; every field has a default so a partial object is fine.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Settings {
    /// Show size estimates after each layer entry.
    pub inlay_hints: bool,
    /// Show the "Quantize → size" lens on the first line.
    pub code_lens: bool,
    /// Delay before re-analysing a changed document, in milliseconds.
    pub diagnostics_delay_ms: u64,
    /// How often to check referenced model files when the client does not watch files, in
    /// milliseconds (0 disables the server-side watcher).
    pub poll_interval_ms: u64,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            inlay_hints: true,
            code_lens: true,
            diagnostics_delay_ms: 30,
            poll_interval_ms: 1000,
        }
    }
}

/// The configuration section the server asks for.
pub const SECTION: &str = "coremlq";

impl Settings {
    /// Reads settings from a JSON value: either the section itself or an object holding a
    /// `coremlq` member. Unknown or ill-typed members fall back to the defaults.
    pub fn from_value(value: &Value) -> Settings {
        let section = value.get(SECTION).unwrap_or(value);
        if !section.is_object() {
            return Settings::default();
        }
        match serde_json::from_value(section.clone()) {
            Ok(settings) => settings,
            Err(_) => Settings::field_by_field(section),
        }
    }

    /// Tolerant fallback: take each well-typed member, ignore the rest.
    fn field_by_field(section: &Value) -> Settings {
        let mut s = Settings::default();
        if let Some(v) = section.get("inlayHints").and_then(Value::as_bool) {
            s.inlay_hints = v;
        }
        if let Some(v) = section.get("codeLens").and_then(Value::as_bool) {
            s.code_lens = v;
        }
        if let Some(v) = section.get("diagnosticsDelayMs").and_then(Value::as_u64) {
            s.diagnostics_delay_ms = v;
        }
        if let Some(v) = section.get("pollIntervalMs").and_then(Value::as_u64) {
            s.poll_interval_ms = v;
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn partial_nested_and_ill_typed() {
        let s = Settings::from_value(&json!({"coremlq": {"inlayHints": false}}));
        assert!(!s.inlay_hints && s.code_lens);
        let s = Settings::from_value(&json!({"codeLens": false, "diagnosticsDelayMs": "x"}));
        assert!(!s.code_lens);
        assert_eq!(s.diagnostics_delay_ms, 30);
        assert_eq!(Settings::from_value(&json!(null)), Settings::default());
    }
}
