//! The `model` and `output` paths: resolution (relative to the config's folder, default
//! output name) and the output checks.

use std::path::{Component, Path, PathBuf};

use super::structure::Fields;
use super::{join, Context, OutputStatus};
use crate::config::diagnostic::{Code, Diagnostic};
use crate::config::syntax::Parse;

/// The files a config refers to, resolved against the config's folder.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReferencedPaths {
    /// The model (`None` when `model` is missing or not a string).
    pub model: Option<PathBuf>,
    /// The output: `output` if given, else the default beside the model (needs a valid nbits).
    pub output: Option<PathBuf>,
    /// Whether `output` is the default.
    pub output_is_default: bool,
}

/// Resolves the model and output paths of a config without touching the file system.
/// `config_dir` is the folder holding the config (`None`: paths stay as written).
pub fn referenced_paths(parse: &Parse, config_dir: Option<&Path>) -> ReferencedPaths {
    let Some(root) = parse.root_object() else {
        return ReferencedPaths::default();
    };
    let text = |k: &str| {
        root.value(k)
            .and_then(|v| v.as_str())
            .filter(|s| !s.is_empty())
    };
    let model = text("model").map(|m| join(config_dir, m));
    let nbits = root
        .value("nbits")
        .and_then(|v| v.as_number())
        .and_then(|n| n.integer);
    if let Some(out) = text("output") {
        return ReferencedPaths {
            model,
            output: Some(join(config_dir, out)),
            output_is_default: false,
        };
    }
    let output = match (&model, nbits) {
        (Some(m), Some(b)) if crate::config::schema::NBITS.contains(&b) => {
            let name = default_output_name(m, b);
            Some(
                m.parent()
                    .map_or_else(|| PathBuf::from(&name), |p| p.join(&name)),
            )
        }
        _ => None,
    };
    ReferencedPaths {
        model,
        output,
        output_is_default: true,
    }
}

/// The default output file name: `<model stem>.<tag>.mlmodel`, `<tag>` = `fp16` for nbits 16,
/// else `<nbits>bit`; `.mlpackage` instead for a model named `*.mlpackage` (any case).
pub fn default_output_name(model: &Path, nbits: i64) -> String {
    let stem = model
        .file_stem()
        .map_or_else(|| "model".into(), |s| s.to_string_lossy().into_owned());
    let tag = if nbits == 16 {
        "fp16".to_string()
    } else {
        format!("{nbits}bit")
    };
    let ext = if crate::quant::write_package::is_package_path(model) {
        "mlpackage"
    } else {
        "mlmodel"
    };
    format!("{stem}.{tag}.{ext}")
}

/// Removes `.` and resolves `..` lexically (no file-system access).
pub fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => match out.components().next_back() {
                Some(Component::Normal(_)) => {
                    out.pop();
                }
                Some(Component::RootDir | Component::Prefix(_)) => {}
                _ => out.push(".."),
            },
            other => out.push(other.as_os_str()),
        }
    }
    out
}

/// The output checks: not the model, inside the workspace, not an unrelated file.
pub(super) fn check(
    f: &Fields<'_>,
    paths: &super::ReferencedPaths,
    ctx: &Context<'_>,
    out: &mut Vec<Diagnostic>,
) {
    let explicit = f.output.filter(|m| m.value.as_str().is_some());
    // Where output problems are shown: the `output` value, else the model value.
    let Some(range) = explicit.or(f.model).map(|m| m.value.range) else {
        return;
    };
    let (Some(model), Some(output)) = (&paths.model, &paths.output) else {
        return;
    };
    let shown = explicit.and_then(|m| m.value.as_str()).map_or_else(
        || {
            output
                .file_name()
                .map_or_else(String::new, |n| n.to_string_lossy().into_owned())
        },
        str::to_string,
    );
    if model == output {
        out.push(
            Diagnostic::new(
                Code::OutputIsModel,
                range,
                "`output` is the model itself: the input model is never overwritten",
            )
            .with_help("choose another file name, or remove `output` to use the default"),
        );
        return;
    }
    // Lexical, for the editor (which asks before writing outside its folders). The command
    // line resolves links and refuses instead: `config::workspace`.
    if let (Some(ws), Some(_)) = (ctx.workspace, explicit) {
        if !output.starts_with(normalize(ws)) {
            out.push(Diagnostic::new(
                Code::OutputOutsideWorkspace,
                range,
                format!("`{shown}` is outside the workspace"),
            ));
        }
    }
    if let OutputStatus::NotAModel(what) = ctx.output {
        let whose = if explicit.is_some() {
            "`output`"
        } else {
            "the default output"
        };
        out.push(
            Diagnostic::new(
                Code::OutputNotAModel,
                range,
                format!("{whose} `{shown}` exists and is not a Core ML model ({what}): quantizing would destroy it"),
            )
            .with_help("choose another `output`"),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_lexically() {
        assert_eq!(normalize(Path::new("a/./b/../c")), PathBuf::from("a/c"));
        assert_eq!(normalize(Path::new("../x")), PathBuf::from("../x"));
        assert_eq!(normalize(Path::new("/a/../../b")), PathBuf::from("/b"));
    }

    #[test]
    fn default_names() {
        assert_eq!(
            default_output_name(Path::new("m/MobileNet.mlmodel"), 8),
            "MobileNet.8bit.mlmodel"
        );
        assert_eq!(
            default_output_name(Path::new("MobileNet.mlpackage"), 16),
            "MobileNet.fp16.mlpackage"
        );
        assert_eq!(
            default_output_name(Path::new("m/Net.MLPackage"), 4),
            "Net.4bit.mlpackage"
        );
    }

    #[test]
    fn resolves_against_the_config_folder() {
        let text = r#"{"model": "../m/A.mlmodel", "nbits": 4}"#;
        let p = crate::config::syntax::parse(text);
        let r = referenced_paths(&p, Some(Path::new("/w/configs")));
        assert_eq!(r.model, Some(PathBuf::from("/w/m/A.mlmodel")));
        assert_eq!(r.output, Some(PathBuf::from("/w/m/A.4bit.mlmodel")));
        assert!(r.output_is_default);
    }
}
