//! `coremlq quantize CONFIG…`: quantize from `*.quant.json` configs, in parallel, with
//! progress and a summary. A config with errors is refused (and named) before anything is
//! written; the plan executed is the one `coremlq check` and `coremlq plan` show.

use std::collections::HashMap;
use std::io::{IsTerminal, Write as _};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context as _;
use coremlq::config::load::Checked;
use coremlq::format::percent_of;
use coremlq::quant::{quantize, Report, RunOptions};

/// Quantizes the models of `configs`; exit status 1 when a config is refused or a run fails.
/// An output resolving outside the workspace (`workspace`, else the repository holding the
/// config, else its folder) is refused unless `allow_outside` (configs may come from
/// anywhere; the one-off `quantize MODEL -o OUT` form is not restricted).
pub fn run(
    configs: &[PathBuf],
    workspace: Option<&Path>,
    allow_outside: bool,
) -> anyhow::Result<ExitCode> {
    let mut checked = Vec::new();
    for path in configs {
        checked.push(super::check::checked_in_workspace(
            path,
            workspace,
            allow_outside,
        )?);
    }
    let mut stdout = std::io::stdout().lock();
    let refused: Vec<&Checked> = checked
        .iter()
        .filter(|c| c.analysis.has_errors() || c.analysis.plan.is_none())
        .collect();
    for c in &checked {
        stdout.write_all(super::check::report(c).as_bytes())?;
    }
    if !refused.is_empty() {
        let names: Vec<String> = refused
            .iter()
            .map(|c| c.path.display().to_string())
            .collect();
        writeln!(
            stdout,
            "error: refusing to quantize: {} config{} with errors: {}",
            refused.len(),
            if refused.len() == 1 { "" } else { "s" },
            names.join(", ")
        )?;
        return Ok(ExitCode::from(1));
    }
    // Two configs writing one file would race.
    let mut seen: HashMap<&Path, &Path> = HashMap::new();
    for c in &checked {
        if let Some(out) = c.analysis.paths.output.as_deref() {
            if let Some(other) = seen.insert(out, &c.path) {
                anyhow::bail!(
                    "{} and {} both write {}",
                    other.display(),
                    c.path.display(),
                    out.display()
                );
            }
        }
    }
    drop(stdout);
    let bars = std::io::stderr()
        .is_terminal()
        .then(indicatif::MultiProgress::new);
    let results = run_all(&checked, bars.as_ref());
    let mut stdout = std::io::stdout().lock();
    let mut failed = 0;
    for (i, result) in results {
        let Some(c) = checked.get(i) else { continue };
        match result {
            Ok(r) => {
                let pct = percent_of(r.bytes_after, r.bytes_before);
                writeln!(
                    stdout,
                    "{}: wrote {} ({} → {} bytes, {pct:.1}%, {} tensors converted, {:.2}s)",
                    c.path.display(),
                    r.output.display(),
                    r.bytes_before,
                    r.bytes_after,
                    r.tensors_converted,
                    r.elapsed.as_secs_f64()
                )?;
                if let Some(p) = &r.package {
                    writeln!(
                        stdout,
                        "{}: wrote a Core ML package: {} bytes in all ({} model file)",
                        c.path.display(),
                        p.total_bytes,
                        r.bytes_after
                    )?;
                }
            }
            Err(e) => {
                failed += 1;
                writeln!(stdout, "{}: error: {e:#}", c.path.display())?;
            }
        }
    }
    writeln!(
        stdout,
        "{} of {} config{} quantized",
        checked.len() - failed,
        checked.len(),
        if checked.len() == 1 { "" } else { "s" }
    )?;
    Ok(if failed > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// Runs every config, as many at once as there are cores, each on a plain thread of its own:
/// a run blocks its calling thread while the kernels work in the shared rayon pool, so runs
/// started from inside that pool (`par_iter`) could occupy every pool thread and wait forever
/// for kernels that have no thread left to run on.
fn run_all(
    checked: &[Checked],
    bars: Option<&indicatif::MultiProgress>,
) -> Vec<(usize, anyhow::Result<Report>)> {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Mutex;
    let next = AtomicUsize::new(0);
    let results = Mutex::new(Vec::with_capacity(checked.len()));
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(checked.len())
        .max(1);
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(c) = checked.get(i) else { break };
                let r = run_one(c, bars);
                results
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push((i, r));
            });
        }
    });
    let mut results = results.into_inner().unwrap_or_else(|p| p.into_inner());
    results.sort_by_key(|(i, _)| *i);
    results
}

fn run_one(c: &Checked, bars: Option<&indicatif::MultiProgress>) -> anyhow::Result<Report> {
    let (Some(plan), Some(model), Some(output)) =
        (&c.analysis.plan, &c.model, &c.analysis.paths.output)
    else {
        anyhow::bail!("no plan");
    };
    if let Some(dir) = output.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let mut opts = RunOptions::default();
    let started = Instant::now();
    if let Some(multi) = bars {
        let bar = multi.add(indicatif::ProgressBar::new(0));
        bar.set_prefix(c.path.display().to_string());
        if let Ok(style) =
            indicatif::ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} {msg}")
        {
            bar.set_style(style);
        }
        let b = bar.clone();
        opts.progress = Some(Arc::new(move |p: &coremlq::quant::Progress| {
            b.set_length(p.total as u64);
            b.set_position(p.done as u64);
            b.set_message(p.layer.clone());
        }));
        let result = quantize(model, plan, output, &opts);
        bar.finish_and_clear();
        return result.with_context(|| format!("after {:.1}s", started.elapsed().as_secs_f64()));
    }
    Ok(quantize(model, plan, output, &opts)?)
}
