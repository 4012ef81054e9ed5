//! The workspace of a config on the command line, and whether its output stays inside it
//! (the file-system side of `Q0602`, shared by `coremlq check` and `coremlq quantize`).
//!
//! Configs may come from strangers' repositories, and `output` (or the default output,
//! beside the model) may point anywhere. The command line refuses an output that resolves
//! outside the workspace: `--workspace DIR` when given, else the nearest folder above the
//! config holding `.git`, `.hg` or `.jj`, else the config's own folder. Paths are resolved
//! as the writer will see them: made absolute, symbolic links of the existing folders
//! followed, `..` applied to the folder it names.

use std::path::{Component, Path, PathBuf};

use super::diagnostic::{Code, Diagnostic, Severity};
use super::load::Checked;
use super::syntax::TextRange;

/// The markers of a repository's root folder.
pub const REPOSITORY_MARKERS: [&str; 3] = [".git", ".hg", ".jj"];

/// A workspace folder and how it was chosen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Workspace {
    /// The folder, resolved (absolute, links followed).
    pub root: PathBuf,
    /// How it was found.
    pub source: WorkspaceSource,
}

/// How a workspace was chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkspaceSource {
    /// Given with `--workspace`.
    Given,
    /// The repository holding the config (the marker found: `.git`, `.hg` or `.jj`).
    Repository(&'static str),
    /// The config's own folder (no repository above it).
    ConfigFolder,
}

impl Workspace {
    /// The folder given with `--workspace`.
    pub fn given(dir: &Path) -> Workspace {
        Workspace {
            root: resolve(dir),
            source: WorkspaceSource::Given,
        }
    }

    /// The default workspace of `config`: the nearest folder above it holding `.git`, `.hg`
    /// or `.jj`, else its own folder.
    pub fn of_config(config: &Path) -> Workspace {
        let dir = resolve(config)
            .parent()
            .map_or_else(|| PathBuf::from("/"), Path::to_path_buf);
        for folder in dir.ancestors() {
            for marker in REPOSITORY_MARKERS {
                if folder.join(marker).exists() {
                    return Workspace {
                        root: folder.to_path_buf(),
                        source: WorkspaceSource::Repository(marker),
                    };
                }
            }
        }
        Workspace {
            root: dir,
            source: WorkspaceSource::ConfigFolder,
        }
    }

    /// `--workspace DIR` when given, else the default of `config`.
    pub fn for_config(config: &Path, given: Option<&Path>) -> Workspace {
        given.map_or_else(|| Workspace::of_config(config), Workspace::given)
    }

    /// Whether `path` (resolved) lies inside the workspace.
    pub fn contains(&self, path: &Path) -> bool {
        resolve(path).starts_with(&self.root)
    }

    /// How the workspace was chosen, for messages.
    pub fn describe(&self) -> String {
        match self.source {
            WorkspaceSource::Given => format!("{} (given with --workspace)", self.root.display()),
            WorkspaceSource::Repository(marker) => format!(
                "{} (the repository holding the config: it has {marker})",
                self.root.display()
            ),
            WorkspaceSource::ConfigFolder => format!(
                "{} (the config's folder: no .git, .hg or .jj above it)",
                self.root.display()
            ),
        }
    }
}

/// `path` as the file system will see it: absolute, each existing folder (and the file
/// itself, when it exists) with its symbolic links followed, `.` dropped and `..` applied
/// to the folder it names. Never fails: the part that does not exist is kept as written.
pub fn resolve(path: &Path) -> PathBuf {
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let mut out = PathBuf::new();
    // Whether `out` still names something that exists (so it is canonical so far).
    let mut exists = true;
    for c in absolute.components() {
        match c {
            Component::Prefix(_) | Component::RootDir => out.push(c.as_os_str()),
            Component::CurDir => {}
            // `out` is canonical while it exists, so its parent is what `..` names.
            Component::ParentDir => {
                out.pop();
                // Back in a folder that exists: its links are followed again from here.
                exists = out.exists();
            }
            Component::Normal(name) => {
                out.push(name);
                if exists {
                    match std::fs::canonicalize(&out) {
                        Ok(real) => out = real,
                        Err(_) => exists = false,
                    }
                }
            }
        }
    }
    out
}

/// The output of a checked config when it resolves outside `workspace`: an error `Q0602`
/// on the `output` value (on the `model` value for the default output) naming the resolved
/// path and the workspace, and how to allow it. `None` when the output is inside, or there
/// is no output.
pub fn output_outside(checked: &Checked, workspace: &Workspace) -> Option<Diagnostic> {
    let output = checked.analysis.paths.output.as_deref()?;
    if workspace.contains(output) {
        return None;
    }
    let root = checked.parse.root_object()?;
    let explicit = root
        .value("output")
        .filter(|v| v.as_str().is_some_and(|s| !s.is_empty()));
    let (what, range): (String, TextRange) = match explicit {
        Some(v) => (format!("`{}`", v.as_str().unwrap_or_default()), v.range),
        None => (
            format!(
                "the default output `{}` (beside the model)",
                output
                    .file_name()
                    .map_or_else(String::new, |n| n.to_string_lossy().into_owned())
            ),
            root.value("model")?.range,
        ),
    };
    let mut d = Diagnostic::new(
        Code::OutputOutsideWorkspace,
        range,
        format!(
            "{what} resolves to {}, outside the workspace {}",
            resolve(output).display(),
            workspace.describe()
        ),
    )
    .with_help(
        "configs may come from anywhere, so their outputs stay inside the workspace; \
         to write there, name a workspace that holds it with `--workspace DIR`, \
         or pass `--allow-outside-workspace`",
    );
    d.severity = Severity::Error;
    Some(d)
}

/// Adds the `Q0602` error of [`output_outside`] to a checked config (keeping the
/// diagnostics sorted by position); returns whether it was added.
pub fn refuse_outside(checked: &mut Checked, workspace: &Workspace) -> bool {
    let Some(d) = output_outside(checked, workspace) else {
        return false;
    };
    let diags = &mut checked.analysis.diagnostics;
    let at = diags.partition_point(|x| x.range.start <= d.range.start);
    diags.insert(at, d);
    true
}

/// Adds a `Q0601` error when the output, with links followed, is the model itself (the
/// analysis compares the paths as written; `quantize` would refuse it); returns whether it
/// was added.
pub fn refuse_onto_model(checked: &mut Checked) -> bool {
    let paths = &checked.analysis.paths;
    let (Some(model), Some(output)) = (paths.model.as_deref(), paths.output.as_deref()) else {
        return false;
    };
    let already = checked
        .analysis
        .diagnostics
        .iter()
        .any(|d| d.code == Code::OutputIsModel);
    if already || !model.exists() || resolve(model) != resolve(output) {
        return false;
    }
    let Some(root) = checked.parse.root_object() else {
        return false;
    };
    let Some(value) = root
        .value("output")
        .filter(|v| v.as_str().is_some_and(|s| !s.is_empty()))
        .or_else(|| root.value("model"))
    else {
        return false;
    };
    let d = Diagnostic::new(
        Code::OutputIsModel,
        value.range,
        format!(
            "the output resolves to the model itself ({}): the input model is never overwritten",
            resolve(output).display()
        ),
    )
    .with_help("choose another file name, or remove `output` to use the default");
    let diags = &mut checked.analysis.diagnostics;
    let at = diags.partition_point(|x| x.range.start <= d.range.start);
    diags.insert(at, d);
    true
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    fn resolves_links_of_existing_folders_and_dot_dot() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = std::fs::canonicalize(dir.path()).expect("canonical");
        std::fs::create_dir_all(root.join("ws/a")).expect("mkdir");
        std::fs::create_dir_all(root.join("elsewhere")).expect("mkdir");
        std::os::unix::fs::symlink(root.join("elsewhere"), root.join("ws/link")).expect("link");
        let cases = [
            ("ws/a/out.mlmodel", "ws/a/out.mlmodel"),
            ("ws/a/../out.mlmodel", "ws/out.mlmodel"),
            ("ws/./a/new/../x.mlmodel", "ws/a/x.mlmodel"),
            ("ws/link/out.mlmodel", "elsewhere/out.mlmodel"),
            // `..` after a link leaves the folder the link points to.
            ("ws/link/../out.mlmodel", "out.mlmodel"),
            ("ws/missing/../../out.mlmodel", "out.mlmodel"),
            ("ws/missing/../link/out.mlmodel", "elsewhere/out.mlmodel"),
        ];
        for (given, want) in cases {
            assert_eq!(resolve(&root.join(given)), root.join(want), "{given}");
        }
    }

    #[test]
    fn the_default_workspace_is_the_repository_else_the_config_folder() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = std::fs::canonicalize(dir.path()).expect("canonical");
        std::fs::create_dir_all(root.join("plain/c")).expect("mkdir");
        std::fs::create_dir_all(root.join("repo/.hg")).expect("mkdir");
        std::fs::create_dir_all(root.join("repo/a/b")).expect("mkdir");
        let ws = Workspace::of_config(&root.join("plain/c/x.quant.json"));
        assert_eq!(ws.root, root.join("plain/c"));
        assert_eq!(ws.source, WorkspaceSource::ConfigFolder);
        let ws = Workspace::of_config(&root.join("repo/a/b/x.quant.json"));
        assert_eq!(ws.root, root.join("repo"));
        assert_eq!(ws.source, WorkspaceSource::Repository(".hg"));
        assert!(ws.contains(&root.join("repo/a/../out.mlmodel")));
        assert!(!ws.contains(&root.join("repo/../out.mlmodel")));
        let given = Workspace::for_config(&root.join("repo/a/b/x.quant.json"), Some(&root));
        assert_eq!(given.source, WorkspaceSource::Given);
        assert!(given.contains(&root.join("plain/out.mlmodel")));
    }
}
