//! End-to-end quantization benchmark: load + plan + quantize + write, one child process per
//! run so that peak memory (VmHWM) is measured per run.
//!
//! Run: `cargo bench --bench quantize`. `seconds` is wall time, `cpu s` user + system time
//! of the run (on a busy machine the better measure of the work done). Generates (in a
//! temp folder, deleted afterwards) a ~600 MB / 150 M-weight model and a ~25 M-weight
//! ResNet-50-like model.
//! `COREMLQ_BENCH_SCALE=0.1` shrinks both. `COREMLQ_BENCH_PYTHON=/path/to/python` (a Python
//! with coremltools 9.0, see `scripts/bench-coremltools.sh`) also times coremltools on the
//! same files (`COREMLQ_BENCH_KMEANS_PYTHON` for k-means, which needs protobuf 4.21);
//! otherwise ratios use reference timings of coremltools on this machine class.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use coremlq::model::ModelFile;
use coremlq::quant::{plan, Choice, Mode, RunOptions, Selector, Settings};

/// (label, model, nbits, mode, coremltools seconds on the full-size model).
const RUNS: &[(&str, &str, u8, &str, Option<f64>)] = &[
    ("fp16", "big", 16, "linear", Some(11.8)),
    ("linear 8-bit", "big", 8, "linear", Some(6.8)),
    ("linear 4-bit", "big", 4, "linear", Some(540.0)),
    ("symmetric 8-bit", "big", 8, "linear_symmetric", None),
    ("linear 8-bit", "resnet", 8, "linear", None),
    ("kmeans 4-bit", "resnet", 4, "kmeans_lut", Some(451.0)),
    ("kmeans 8-bit", "resnet", 8, "kmeans_lut", Some(635.0)),
];

fn vm_hwm_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmHWM:")).and_then(|l| {
                l.split_whitespace()
                    .nth(1)
                    .and_then(|v| v.parse::<f64>().ok())
            })
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// CPU time (user + system) of this process so far, in seconds (clock ticks of 1/100 s).
fn cpu_seconds() -> f64 {
    std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| {
            // Fields after the parenthesised command name; utime and stime are 14 and 15.
            let rest = s.rsplit_once(')')?.1;
            let f: Vec<&str> = rest.split_whitespace().collect();
            let ut: f64 = f.get(11)?.parse().ok()?;
            let st: f64 = f.get(12)?.parse().ok()?;
            Some((ut + st) / 100.0)
        })
        .unwrap_or(f64::NAN)
}

/// Child: one run, prints `seconds peak_mb output_bytes cpu_seconds`.
fn one(model: &Path, nbits: u8, mode: &str, out: &Path) {
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
    let report =
        coremlq::quant::quantize(&file, &p, out, &RunOptions::default()).expect("quantize");
    println!(
        "{} {} {} {}",
        t.elapsed().as_secs_f64(),
        vm_hwm_mb(),
        report.bytes_after,
        cpu_seconds()
    );
}

fn coremltools(python: &str, model: &Path, nbits: u8, mode: &str, out: &Path) -> Option<f64> {
    let script = format!(
        "import time,coremltools as ct\nfrom coremltools.models.neural_network import quantization_utils as q\nspec=ct.utils.load_spec({m:?})\nclass M:\n  def get_spec(self):\n    import copy; return copy.deepcopy(spec)\nt=time.time()\nr=q.quantize_weights(M(),{nbits},quantization_mode={mode:?})\nct.utils.save_spec(r.get_spec(),{o:?})\nprint(time.time()-t)\n",
        m = model.display().to_string(),
        o = out.display().to_string(),
    );
    let o = Command::new(python).arg("-c").arg(script).output().ok()?;
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .last()?
        .trim()
        .parse()
        .ok()
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
    let scale: f64 = std::env::var("COREMLQ_BENCH_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1.0);
    let python = std::env::var("COREMLQ_BENCH_PYTHON").ok();
    let kmeans_python = std::env::var("COREMLQ_BENCH_KMEANS_PYTHON").ok();
    let dir = tempfile::tempdir().expect("temp dir");
    let shrink = |layers: Vec<common::Layer>| -> Vec<common::Layer> {
        if scale >= 1.0 {
            return layers;
        }
        let keep = ((layers.len() as f64 * scale).ceil() as usize).max(1);
        layers.into_iter().take(keep).collect()
    };
    let models: Vec<(&str, PathBuf, u64, f64)> = [
        (
            "big",
            shrink(common::big_model()),
            common::total_weights(&common::big_model()),
        ),
        (
            "resnet",
            shrink(common::resnet50_like()),
            common::total_weights(&common::resnet50_like()),
        ),
    ]
    .into_iter()
    .map(|(name, layers, full)| {
        let path = dir.path().join(format!("{name}.mlmodel"));
        let t = Instant::now();
        let size = common::write_model(&path, &layers, 7).expect("generate");
        let n = common::total_weights(&layers);
        println!(
            "{name}: {} layers, {:.1} M weights, {:.1} MB (generated in {:.1} s)",
            layers.len(),
            n as f64 / 1e6,
            size as f64 / 1e6,
            t.elapsed().as_secs_f64()
        );
        (name, path, n, full as f64 / n as f64)
    })
    .collect();
    println!("threads: {}\n", rayon::current_num_threads());
    println!(
        "{:<18} {:<7} {:>9} {:>8} {:>10} {:>11} {:>13} {:>9}",
        "run", "model", "seconds", "cpu s", "peak MB", "output MB", "coremltools s", "speed-up"
    );
    let exe = std::env::current_exe().expect("exe");
    for &(label, model, nbits, mode, reference) in RUNS {
        let Some((_, path, _, factor)) = models.iter().find(|m| m.0 == model) else {
            continue;
        };
        let out = dir.path().join("out.mlmodel");
        let _ = std::fs::remove_file(&out);
        let o = Command::new(&exe)
            .args([
                "--one",
                &path.display().to_string(),
                &nbits.to_string(),
                mode,
                &out.display().to_string(),
            ])
            .output()
            .expect("child");
        let line = String::from_utf8_lossy(&o.stdout);
        let mut it = line
            .split_whitespace()
            .map(|v| v.parse::<f64>().unwrap_or(f64::NAN));
        let (secs, peak, bytes, cpu) = (
            it.next().unwrap_or(f64::NAN),
            it.next().unwrap_or(f64::NAN),
            it.next().unwrap_or(f64::NAN),
            it.next().unwrap_or(f64::NAN),
        );
        if !o.status.success() {
            println!(
                "{label:<18} {model:<7} failed: {}",
                String::from_utf8_lossy(&o.stderr)
            );
            continue;
        }
        let py = if mode == "kmeans_lut" {
            kmeans_python.as_ref().or(python.as_ref())
        } else {
            python.as_ref()
        };
        let reference = match py {
            Some(py) => coremltools(py, path, nbits, mode, &dir.path().join("ct.mlmodel")),
            // Reference timings are for the full-size model: scale to the generated one.
            None => reference.map(|r| r / factor),
        };
        let (ref_s, ratio) = match reference {
            Some(r) => (format!("{r:.1}"), format!("{:.0}x", r / secs)),
            None => ("-".into(), "-".into()),
        };
        println!(
            "{label:<18} {model:<7} {secs:>9.2} {cpu:>8.2} {peak:>10.0} {:>11.1} {ref_s:>13} {ratio:>9}",
            bytes / 1e6
        );
    }
}
