//! `coremlq check CONFIG…`: report the problems of quantization configs, rustc-style or as
//! JSON; exit status 1 when any config has an error.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use coremlq::config::load::{check_file, Checked};
use coremlq::config::render::{rustc_style, LineIndex};
use coremlq::config::workspace::{refuse_onto_model, refuse_outside, Workspace};
use coremlq::config::{Diagnostic, Severity};
use serde_json::{json, Value};

/// Arguments of `coremlq check`.
#[derive(clap::Args)]
pub struct Args {
    /// Config files (`*.quant.json`), or folders to search for them.
    #[arg(required = true, value_name = "CONFIG")]
    pub configs: Vec<PathBuf>,
    /// Print the diagnostics as JSON.
    #[arg(long)]
    pub json: bool,
    /// The workspace folder: an output resolving outside it is an error (Q0602). Default:
    /// the repository holding each config (`.git`, `.hg`, `.jj`), else its folder.
    #[arg(long, value_name = "DIR")]
    pub workspace: Option<PathBuf>,
    /// Do not report outputs outside the workspace (as `quantize` with the same flag).
    #[arg(long)]
    pub allow_outside_workspace: bool,
}

/// Runs `coremlq check`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let mut files = Vec::new();
    for path in &args.configs {
        if path.is_dir() {
            find_configs(path, &mut files)?;
        } else {
            files.push(path.clone());
        }
    }
    let mut checked = Vec::new();
    for path in &files {
        checked.push(checked_in_workspace(
            path,
            args.workspace.as_deref(),
            args.allow_outside_workspace,
        )?);
    }
    let errors: usize = checked.iter().map(|c| count(c, Severity::Error)).sum();
    let warnings: usize = checked.iter().map(|c| count(c, Severity::Warning)).sum();
    let mut stdout = std::io::stdout().lock();
    if args.json {
        let files: Vec<Value> = checked.iter().map(to_json).collect();
        writeln!(
            stdout,
            "{}",
            serde_json::to_string_pretty(&Value::Array(files))?
        )?;
    } else {
        for c in &checked {
            stdout.write_all(report(c).as_bytes())?;
        }
        let configs = checked.len();
        let plural = |n: usize, w: &str| format!("{n} {w}{}", if n == 1 { "" } else { "s" });
        writeln!(
            stdout,
            "{}: {}, {} in {}",
            if errors > 0 { "error" } else { "ok" },
            plural(errors, "error"),
            plural(warnings, "warning"),
            plural(configs, "config")
        )?;
    }
    Ok(if errors > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// Checks one config, with links followed for the output: an output that is the model
/// (Q0601), or outside the workspace unless `allow` (Q0602; the workspace is `workspace`,
/// else the repository holding the config, else its folder).
/// `check` and `quantize` both go through here, so they agree.
pub fn checked_in_workspace(
    config: &Path,
    workspace: Option<&Path>,
    allow: bool,
) -> anyhow::Result<Checked> {
    // The analysis' own lexical check is left out: the one here follows links.
    let mut checked = check_file(config, None)?;
    refuse_onto_model(&mut checked);
    if !allow {
        refuse_outside(&mut checked, &Workspace::for_config(config, workspace));
    }
    Ok(checked)
}

/// Every `*.quant.json` below `dir` (hidden folders and `target` skipped), sorted.
fn find_configs(dir: &Path, out: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| anyhow::anyhow!("{}: {e}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    for p in entries {
        let name = p
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if p.is_dir() {
            if !name.starts_with('.') && name != "target" {
                find_configs(&p, out)?;
            }
        } else if name.ends_with(".quant.json") {
            out.push(p);
        }
    }
    Ok(())
}

fn count(c: &Checked, severity: Severity) -> usize {
    c.analysis
        .diagnostics
        .iter()
        .filter(|d| d.severity == severity)
        .count()
}

/// The rustc-style text of every diagnostic of one config.
pub fn report(c: &Checked) -> String {
    let index = LineIndex::new(&c.text);
    let file = c.path.display().to_string();
    let mut out = String::new();
    for d in &c.analysis.diagnostics {
        out.push_str(&rustc_style(&file, &c.text, &index, d));
        out.push('\n');
    }
    out
}

/// One config's diagnostics as JSON.
pub fn to_json(c: &Checked) -> Value {
    let index = LineIndex::new(&c.text);
    let diags: Vec<Value> = c
        .analysis
        .diagnostics
        .iter()
        .map(|d| diagnostic_json(&c.text, &index, d))
        .collect();
    json!({ "file": c.path.display().to_string(), "diagnostics": diags })
}

fn diagnostic_json(text: &str, index: &LineIndex, d: &Diagnostic) -> Value {
    let pos = |offset: usize| {
        let (line, column) = index.human(text, offset);
        json!({ "offset": offset, "line": line, "column": column })
    };
    let fixes: Vec<Value> = d
        .fixes
        .iter()
        .map(|f| {
            let edits: Vec<Value> = f
                .edits
                .iter()
                .map(|e| json!({ "start": e.range.start, "end": e.range.end, "text": e.text }))
                .collect();
            json!({ "title": f.title, "edits": edits })
        })
        .collect();
    let related: Vec<Value> = d
        .related
        .iter()
        .map(|r| json!({ "start": pos(r.range.start), "end": pos(r.range.end), "message": r.message }))
        .collect();
    json!({
        "code": d.code.as_str(),
        "name": d.code.slug(),
        "severity": d.severity.as_str(),
        "message": d.message,
        "start": pos(d.range.start),
        "end": pos(d.range.end),
        "help": d.help,
        "fixes": fixes,
        "related": related,
    })
}
