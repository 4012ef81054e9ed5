//! End-to-end quantization benchmark, coremlq and (when installed) coremltools 9.0 in the
//! same run: load + plan + quantize + write, one child process per run, so that wall time,
//! CPU time (user + system, from the child's own `getrusage`) and peak memory (`VmHWM`)
//! are measured per run.
//!
//! Run: `cargo bench --bench quantize`. Generates (in a temp folder, deleted afterwards) a
//! ~600 MB / 150 M-weight model and a ~25 M-weight ResNet-50-like model. Environment:
//!
//! * `COREMLQ_BENCH_PYTHON=/path/to/python` (a Python with coremltools 9.0, environment A;
//!   see `scripts/bench-coremltools.sh`) also times coremltools' `quantize_weights` end to
//!   end on the same files (load_spec + quantize + save_spec; the import is excluded) for
//!   fp16, linear 8/4-bit and linear_symmetric on the big model, and checks that both tools
//!   wrote the same bytes.
//! * `COREMLQ_BENCH_KMEANS_PYTHON=/path/to/python` (environment B: scikit-learn, protobuf
//!   4.21) does the same for kmeans_lut 4- and 8-bit on the ResNet-like model.
//! * `COREMLQ_BENCH_RUNS=fp16,linear8` selects runs (names: fp16, linear8, linear4,
//!   symmetric8, resnet-linear8, kmeans4, kmeans8; default all). coremltools needs about
//!   27 minutes for all of them; each result is printed as soon as it is known.
//! * `COREMLQ_BENCH_REPEAT=n` (default 3): coremlq runs per row; the median is reported.
//!   coremltools runs as often where its first run took under 30 s (its median too), and
//!   once otherwise.
//! * `COREMLQ_BENCH_SCALE=0.1` shrinks both models (a quick check of the harness).
//! * `COREMLQ_BENCH_NO_SYNC=1` skips coremlq's fsync (coremltools does not sync).
//! * `COREMLQ_BENCH_MARKDOWN=path` also writes the results as a Markdown table to `path`
//!   (rewritten after every row; `scripts/bench-coremltools.sh --write-doc` puts it into
//!   `docs/performance.md`).
//!
//! Without a Python, the coremltools column holds reference timings of coremltools on this
//! machine class (scaled to the generated model), marked `ref`.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use coremlq::model::ModelFile;
use coremlq::quant::{plan, Choice, Mode, RunOptions, Selector, Settings};

/// One row of the benchmark.
struct Run {
    /// Name for `COREMLQ_BENCH_RUNS`.
    name: &'static str,
    /// Label in the table.
    label: &'static str,
    /// `big` or `resnet`.
    model: &'static str,
    nbits: u8,
    mode: &'static str,
    /// coremltools' end-to-end seconds on the full-size model, measured on this machine
    /// class (used when coremltools is not run).
    reference: Option<f64>,
    /// The speed-up the project aims at (the targets are set for the 600 MB model and for
    /// k-means on the ResNet-like one; other rows are for information).
    target: Option<f64>,
}

const RUNS: &[Run] = &[
    Run {
        name: "fp16",
        label: "fp16",
        model: "big",
        nbits: 16,
        mode: "linear",
        reference: Some(11.8),
        target: Some(20.0),
    },
    Run {
        name: "linear8",
        label: "linear 8-bit",
        model: "big",
        nbits: 8,
        mode: "linear",
        reference: Some(6.8),
        target: Some(20.0),
    },
    Run {
        name: "symmetric8",
        label: "symmetric 8-bit",
        model: "big",
        nbits: 8,
        mode: "linear_symmetric",
        reference: None,
        target: Some(20.0),
    },
    Run {
        name: "linear4",
        label: "linear 4-bit",
        model: "big",
        nbits: 4,
        mode: "linear",
        reference: Some(540.0),
        target: Some(500.0),
    },
    Run {
        name: "resnet-linear8",
        label: "linear 8-bit",
        model: "resnet",
        nbits: 8,
        mode: "linear",
        reference: None,
        target: None,
    },
    Run {
        name: "kmeans4",
        label: "kmeans 4-bit",
        model: "resnet",
        nbits: 4,
        mode: "kmeans_lut",
        reference: Some(451.0),
        target: Some(100.0),
    },
    Run {
        name: "kmeans8",
        label: "kmeans 8-bit",
        model: "resnet",
        nbits: 8,
        mode: "kmeans_lut",
        reference: Some(635.0),
        target: Some(100.0),
    },
];

/// User + system seconds of this process so far (every thread).
fn cpu_seconds() -> f64 {
    // SAFETY: getrusage only writes the struct we pass.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: as above; RUSAGE_SELF covers every thread of the process.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// Peak resident MB of this process (`VmHWM`; unlike `ru_maxrss`, it starts afresh at
/// `exec` instead of keeping the parent's peak at the fork).
fn peak_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|| "?".into())
}

/// Child: one coremlq run; prints `wall_s cpu_s peak_mb output_bytes`.
fn one(model: &Path, nbits: u8, mode: &str, out: &Path) {
    let cpu0 = cpu_seconds();
    let t = Instant::now();
    let file = ModelFile::open(model).expect("open");
    let settings = Settings {
        default: Choice {
            nbits,
            mode: Mode::parse(mode).expect("mode"),
            lut: None,
        },
        selector: Selector::Default,
        skip_layers: vec![],
        overrides: vec![],
        fuse_layers: true,
    };
    let p = plan::build(&file.index, &settings).expect("plan");
    let opts = RunOptions {
        no_sync: std::env::var_os("COREMLQ_BENCH_NO_SYNC").is_some(),
        ..RunOptions::default()
    };
    let report = coremlq::quant::quantize(&file, &p, out, &opts).expect("quantize");
    let wall = t.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu0;
    println!("{wall} {cpu} {} {}", peak_mb(), report.bytes_after);
}

/// coremltools end to end in a child Python: the import first (untimed), then load_spec,
/// quantize_weights and save_spec, timed with the process's own rusage.
const CT_SCRIPT: &str = r#"
import sys, time, resource
import coremltools as ct
from coremltools.models.neural_network import quantization_utils as q
model, out, nbits, mode = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]

class SpecModel:
    """What quantize_weights needs of an MLModel (get_spec, compute_unit)."""
    def __init__(self, spec):
        self._spec = spec
        self.compute_unit = ct.ComputeUnit.ALL
    def get_spec(self):
        return self._spec

def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime

c0, t0 = cpu(), time.perf_counter()
spec = ct.utils.load_spec(model)
res = q.quantize_weights(SpecModel(spec), nbits, quantization_mode=mode)
ct.utils.save_spec(res.get_spec(), out)
t1, c1 = time.perf_counter(), cpu()
# VmHWM: ru_maxrss would include the parent's peak at the fork.
peak = float("nan")
with open("/proc/self/status") as f:
    for line in f:
        if line.startswith("VmHWM:"):
            peak = int(line.split()[1]) / 1024.0
print("COREMLTOOLS", t1 - t0, c1 - c0, peak)
"#;

/// (wall s, cpu s, peak MB) of one coremltools run, or why it failed.
fn coremltools(
    python: &str,
    model: &Path,
    nbits: u8,
    mode: &str,
    out: &Path,
) -> Result<(f64, f64, f64), String> {
    let o = Command::new(python)
        .arg("-c")
        .arg(CT_SCRIPT)
        .arg(model)
        .arg(out)
        .arg(nbits.to_string())
        .arg(mode)
        .output()
        .map_err(|e| e.to_string())?;
    let stdout = String::from_utf8_lossy(&o.stdout);
    let line = stdout
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("COREMLTOOLS "))
        .ok_or_else(|| {
            let err = String::from_utf8_lossy(&o.stderr);
            let last: Vec<&str> = err.lines().rev().take(3).collect();
            format!("coremltools failed: {}", last.join(" | "))
        })?;
    let v: Vec<f64> = line
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(f64::NAN))
        .collect();
    match v.as_slice() {
        [w, c, p] => Ok((*w, *c, *p)),
        _ => Err(format!("unexpected output {line:?}")),
    }
}

/// Runs coremltools once, and `repeat` times in all when a run takes under 30 s: the medians
/// of wall and CPU time and the largest peak.
fn coremltools_median(
    python: &str,
    model: &Path,
    nbits: u8,
    mode: &str,
    out: &Path,
    repeat: usize,
) -> Result<(f64, f64, f64), String> {
    let first = coremltools(python, model, nbits, mode, out)?;
    if first.0 >= 30.0 {
        return Ok(first);
    }
    let (mut walls, mut cpus, mut peak) = (vec![first.0], vec![first.1], first.2);
    for _ in 1..repeat {
        let (w, c, p) = coremltools(python, model, nbits, mode, out)?;
        walls.push(w);
        cpus.push(c);
        peak = peak.max(p);
    }
    Ok((median(walls), median(cpus), peak))
}

/// Per-tensor mean squared error of the dequantized weights of two quantized models against
/// the original: "lower N/M, ratio R" = coremlq's error is ≤ coremltools' on N of the M
/// tensors, and R = coremlq's total squared error over coremltools'.
fn compare_errors(original: &Path, ours: &Path, theirs: &Path) -> Result<String, String> {
    use coremlq::quant::kernels::{dequantize_weight_params, quality};
    let open = |p: &Path| ModelFile::open(p).map_err(|e| e.to_string());
    let (orig, a, b) = (open(original)?, open(ours)?, open(theirs)?);
    let key = |f: &ModelFile, w: &coremlq::model::WeightInfo| {
        let layer = f.index.layers.get(w.layer).map(|l| l.name.clone());
        (layer, w.field.clone())
    };
    let find = |f: &ModelFile, k: &(Option<String>, String)| -> Result<Vec<f32>, String> {
        let w = f
            .index
            .weights
            .iter()
            .find(|w| &key(f, w) == k)
            .ok_or_else(|| format!("{k:?} missing"))?;
        let body = f.bytes().get(w.body.clone()).ok_or("body out of range")?;
        dequantize_weight_params(body, &w.shape, w.axis).map_err(|e| e.to_string())
    };
    let (mut lower, mut tensors, mut sse_a, mut sse_b) = (0usize, 0usize, 0.0f64, 0.0f64);
    for w in &orig.index.weights {
        let Ok(values) = orig.float_values(w) else {
            continue;
        };
        if values.is_empty() {
            continue;
        }
        let k = key(&orig, w);
        let (qa, qb) = (
            quality(&values, &find(&a, &k)?),
            quality(&values, &find(&b, &k)?),
        );
        let n = values.len() as f64;
        tensors += 1;
        lower += usize::from(qa.mse <= qb.mse);
        sse_a += qa.mse * n;
        sse_b += qb.mse * n;
    }
    Ok(format!(
        "error lower on {lower}/{tensors}, {:.2}x",
        if sse_b > 0.0 { sse_a / sse_b } else { 0.0 }
    ))
}

/// Whether two files hold the same bytes (compared a few megabytes at a time).
fn same_bytes(a: &Path, b: &Path) -> bool {
    use std::io::Read;
    let (Ok(fa), Ok(fb)) = (std::fs::File::open(a), std::fs::File::open(b)) else {
        return false;
    };
    if fa.metadata().ok().map(|m| m.len()) != fb.metadata().ok().map(|m| m.len()) {
        return false;
    }
    let (mut ra, mut rb) = (std::io::BufReader::new(fa), std::io::BufReader::new(fb));
    let (mut x, mut y) = (vec![0u8; 4 << 20], vec![0u8; 4 << 20]);
    loop {
        let n = match ra.read(&mut x) {
            Ok(n) => n,
            Err(_) => return false,
        };
        if n == 0 {
            return true;
        }
        if rb.read_exact(&mut y[..n]).is_err() || x[..n] != y[..n] {
            return false;
        }
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

/// One coremlq row: `repeat` child runs; the medians of wall and CPU time, peak MB, bytes.
fn run_coremlq(
    exe: &Path,
    model: &Path,
    run: &Run,
    out: &Path,
    repeat: usize,
) -> Result<(f64, f64, f64, f64), String> {
    let mut walls = Vec::new();
    let mut cpus = Vec::new();
    let (mut peak, mut bytes) = (0f64, f64::NAN);
    for _ in 0..repeat {
        let _ = std::fs::remove_file(out);
        let o = Command::new(exe)
            .arg("--one")
            .arg(model)
            .arg(run.nbits.to_string())
            .arg(run.mode)
            .arg(out)
            .output()
            .map_err(|e| e.to_string())?;
        if !o.status.success() {
            return Err(String::from_utf8_lossy(&o.stderr).into_owned());
        }
        let line = String::from_utf8_lossy(&o.stdout);
        let v: Vec<f64> = line
            .split_whitespace()
            .map(|x| x.parse().unwrap_or(f64::NAN))
            .collect();
        let [w, c, p, b] = v.as_slice() else {
            return Err(format!("unexpected output {line:?}"));
        };
        walls.push(*w);
        cpus.push(*c);
        peak = peak.max(*p);
        bytes = *b;
    }
    Ok((median(walls), median(cpus), peak, bytes))
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--generate") {
        // `--generate big|resnet PATH`: write one model and stop (for profiling by hand).
        let layers = if args.get(i + 1).is_some_and(|m| m == "resnet") {
            common::resnet50_like()
        } else {
            common::big_model()
        };
        let path = PathBuf::from(
            args.get(i + 2)
                .cloned()
                .unwrap_or_else(|| "model.mlmodel".into()),
        );
        let size = common::write_model(&path, &layers, 7).expect("generate");
        println!("{}: {size} bytes", path.display());
        return;
    }
    if let Some(i) = args.iter().position(|a| a == "--one") {
        let get = |k: usize| args.get(i + k).cloned().unwrap_or_default();
        one(
            Path::new(&get(1)),
            get(2).parse().unwrap_or(8),
            &get(3),
            Path::new(&get(4)),
        );
        return;
    }
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let scale: f64 = env("COREMLQ_BENCH_SCALE")
        .and_then(|s| s.parse().ok())
        .unwrap_or(1.0);
    let repeat: usize = env("COREMLQ_BENCH_REPEAT")
        .and_then(|s| s.parse().ok())
        .unwrap_or(3)
        .max(1);
    let python = env("COREMLQ_BENCH_PYTHON");
    let kmeans_python = env("COREMLQ_BENCH_KMEANS_PYTHON");
    let selected: Option<Vec<String>> = env("COREMLQ_BENCH_RUNS").map(|s| {
        s.split(',')
            .map(|x| x.trim().to_string())
            .filter(|x| !x.is_empty())
            .collect()
    });
    let runs: Vec<&Run> = RUNS
        .iter()
        .filter(|r| {
            selected
                .as_ref()
                .is_none_or(|s| s.iter().any(|n| n == r.name))
        })
        .collect();
    if runs.is_empty() {
        let names: Vec<&str> = RUNS.iter().map(|r| r.name).collect();
        eprintln!("COREMLQ_BENCH_RUNS selects none of: {}", names.join(", "));
        std::process::exit(2);
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let shrink = |layers: Vec<common::Layer>| -> Vec<common::Layer> {
        if scale >= 1.0 {
            return layers;
        }
        let keep = ((layers.len() as f64 * scale).ceil() as usize).max(1);
        layers.into_iter().take(keep).collect()
    };
    let mut models: Vec<(&str, PathBuf, f64)> = Vec::new();
    for (name, full) in [
        ("big", common::big_model()),
        ("resnet", common::resnet50_like()),
    ] {
        if !runs.iter().any(|r| r.model == name) {
            continue;
        }
        let layers = shrink(full.clone());
        let path = dir.path().join(format!("{name}.mlmodel"));
        let t = Instant::now();
        let size = common::write_model(&path, &layers, 7).expect("generate");
        // On disk before any timing: neither tool should compete with its writeback.
        std::fs::File::open(&path)
            .and_then(|f| f.sync_all())
            .expect("sync the generated model");
        let n = common::total_weights(&layers);
        println!(
            "{name}: {} layers, {:.1} M weights, {:.1} MB (generated in {:.1} s)",
            layers.len(),
            n as f64 / 1e6,
            size as f64 / 1e6,
            t.elapsed().as_secs_f64()
        );
        models.push((name, path, common::total_weights(&full) as f64 / n as f64));
    }
    println!(
        "threads: {}, coremlq runs per row: {repeat} (median), load average at start: {}",
        rayon::current_num_threads(),
        load_average()
    );
    match (&python, &kmeans_python) {
        (None, None) => {
            println!("coremltools: not run (reference timings of this machine class, marked ref)")
        }
        _ => println!(
            "coremltools: {} / k-means: {}",
            python.as_deref().unwrap_or("reference timings"),
            kmeans_python.as_deref().unwrap_or("reference timings")
        ),
    }
    println!(
        "\n{:<16} {:<6} | {:>7} {:>7} {:>7} {:>8} {:>4} | {:>8} {:>8} {:>7} | {:>8} {:>8} {:>6} | {:>9} {:>9}",
        "run",
        "model",
        "wall s",
        "cpu s",
        "peak MB",
        "out MB",
        "mem",
        "ct wall",
        "ct cpu",
        "ct MB",
        "x wall",
        "x cpu",
        "target",
        "same",
        "load",
    );
    let _ = std::io::stdout().flush();
    let markdown = env("COREMLQ_BENCH_MARKDOWN").map(PathBuf::from);
    let mut md = vec![
        format!(
            "Measured by `cargo bench --bench quantize` ({}; coremlq: median of {repeat} runs, \
             coremltools too where a run takes under 30 s; load average at start {}).\n",
            match (&python, &kmeans_python) {
                (None, None) => "coremltools not run: its column holds reference timings",
                _ => "coremltools 9.0 timed in the same run",
            },
            load_average()
        ),
        "| run | model | coremlq wall s | coremlq cpu s | peak MB | output MB | peak ≤ output + 100 MB | coremltools wall s | coremltools cpu s | coremltools peak MB | speed-up wall | speed-up cpu | target | same bytes (k-means: error vs coremltools) | load average |".into(),
        "|---|---|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---|---|".into(),
    ];
    let exe = std::env::current_exe().expect("exe");
    for run in runs {
        let Some((_, path, factor)) = models.iter().find(|m| m.0 == run.model) else {
            continue;
        };
        let out = dir.path().join("out.mlmodel");
        let (wall, cpu, peak, bytes) = match run_coremlq(&exe, path, run, &out, repeat) {
            Ok(r) => r,
            Err(e) => {
                println!("{:<16} {:<6} | coremlq failed: {e}", run.label, run.model);
                continue;
            }
        };
        let py = if run.mode == "kmeans_lut" {
            kmeans_python.as_ref()
        } else {
            python.as_ref()
        };
        let ct_out = dir.path().join("ct.mlmodel");
        let _ = std::fs::remove_file(&ct_out);
        let load = load_average();
        let (ct, same) = match py {
            Some(py) => match coremltools_median(py, path, run.nbits, run.mode, &ct_out, repeat) {
                Ok((w, c, p)) => {
                    let same = if run.mode == "kmeans_lut" {
                        compare_errors(path, &out, &ct_out).unwrap_or_else(|e| format!("? ({e})"))
                    } else if same_bytes(&out, &ct_out) {
                        "yes".to_string()
                    } else {
                        "NO".to_string()
                    };
                    (
                        Some((
                            format!("{w:.2}"),
                            w,
                            format!("{c:.2}"),
                            Some(c),
                            format!("{p:.0}"),
                        )),
                        same,
                    )
                }
                Err(e) => {
                    println!("{:<16} {:<6} | {e}", run.label, run.model);
                    (None, "-".into())
                }
            },
            // Reference timings are for the full-size model: scale to the generated one.
            None => (
                run.reference.map(|r| {
                    let r = r / factor;
                    (format!("{r:.1} ref"), r, "-".into(), None, "-".into())
                }),
                "-".into(),
            ),
        };
        let (ct_wall, ct_cpu, ct_peak, x_wall, x_cpu) = match ct {
            Some((ws, w, cs, c, ps)) => (
                ws,
                cs,
                ps,
                format!("{:.0}x", w / wall),
                c.map_or("-".into(), |c| format!("{:.0}x", c / cpu)),
            ),
            None => ("-".into(), "-".into(), "-".into(), "-".into(), "-".into()),
        };
        let target = run.target.map_or("-".into(), |t| format!("{t:.0}x"));
        // Peak memory against the output size + 100 MB.
        let memory = if peak <= bytes / 1e6 + 100.0 {
            "yes"
        } else {
            "NO"
        };
        println!(
            "{:<16} {:<6} | {wall:>7.2} {cpu:>7.2} {peak:>7.0} {:>8.1} {memory:>4} | {ct_wall:>8} {ct_cpu:>8} {ct_peak:>7} | {x_wall:>8} {x_cpu:>8} {target:>6} | {same:>9} {load:>9}",
            run.label,
            run.model,
            bytes / 1e6,
        );
        let _ = std::io::stdout().flush();
        md.push(format!(
            "| {} | {} | {wall:.2} | {cpu:.2} | {peak:.0} | {:.1} | {memory} | {ct_wall} | {ct_cpu} | {ct_peak} | {x_wall} | {x_cpu} | {target} | {same} | {load} |",
            run.label,
            run.model,
            bytes / 1e6,
        ));
        if let Some(path) = &markdown {
            let _ = std::fs::write(path, md.join("\n") + "\n");
        }
    }
    println!("load average at end: {}", load_average());
    if let Some(path) = &markdown {
        md.push(format!("\nLoad average at the end: {}.", load_average()));
        if scale < 1.0 {
            md.push(format!(
                "Models shrunk with `COREMLQ_BENCH_SCALE={scale}`: not comparable with full-size figures."
            ));
        }
        let _ = std::fs::write(path, md.join("\n") + "\n");
    }
}
