//! `coremlq quantize`: quantize a model from command-line flags that mirror coremltools'
//! `quantize_weights` (or, for `*.quant.json` arguments, from configs).

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use coremlq::model::ModelFile;
use coremlq::quant::error::{PlanError, PlanErrorKind};
use coremlq::quant::kernels::Dialect;
use coremlq::quant::{self, plan, Choice, Mode, RunOptions, Selector, Settings};

/// Arguments of `coremlq quantize`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The model (`.mlmodel` or `.mlpackage`), or `*.quant.json` config files.
    #[arg(required = true, value_name = "MODEL")]
    pub inputs: Vec<PathBuf>,
    /// Bits per weight: 1–8, or 16 for half precision.
    #[arg(long, allow_hyphen_values = true)]
    pub nbits: Option<i64>,
    /// linear, linear_symmetric, linear_lut, kmeans_lut, custom_lut or dequantization.
    #[arg(long, default_value = "linear")]
    pub mode: String,
    /// The lookup table for custom_lut, comma separated (2^nbits values at most).
    #[arg(long, value_delimiter = ',', allow_hyphen_values = true)]
    pub lut: Option<Vec<f32>>,
    /// Layer types to leave alone (advanced selector; also `depthwiseConv`, `bias`).
    #[arg(long, value_delimiter = ',')]
    pub skip_layer_types: Option<Vec<String>>,
    /// Layer names or globs (`*`, `?`) to leave alone.
    #[arg(long, value_delimiter = ',')]
    pub skip_layers: Vec<String>,
    /// Convolutions with fewer kernel channels are left alone (advanced selector; default 4).
    #[arg(long)]
    pub minimum_conv_kernel_channels: Option<u64>,
    /// Convolutions with fewer weights are left alone (advanced selector; default 4096).
    #[arg(long)]
    pub minimum_conv_weight_count: Option<u64>,
    /// Do not fuse layers before quantizing (coremltools always fuses for 1–8 bits).
    #[arg(long)]
    pub no_fuse: bool,
    /// Reproduce coremltools with protobuf ≤ 6 (float64 arithmetic) instead of ≥ 7.34.
    #[arg(long)]
    pub float64: bool,
    /// Output file, or package folder when it ends in `.mlpackage` (default: next to the
    /// input, named after the mode and bits; a package for a package input).
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    /// Configs only: the workspace their outputs must stay in (default: the repository
    /// holding each config, else its folder).
    #[arg(long, value_name = "DIR")]
    pub workspace: Option<PathBuf>,
    /// Configs only: write outputs that resolve outside the workspace too.
    #[arg(long)]
    pub allow_outside_workspace: bool,
}

/// Runs `coremlq quantize`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let (configs, models): (Vec<PathBuf>, Vec<PathBuf>) =
        args.inputs.iter().cloned().partition(|p| is_config(p));
    if !configs.is_empty() {
        if !models.is_empty() {
            anyhow::bail!("give either one model with flags or `*.quant.json` configs, not both");
        }
        return super::quantize_configs::run(
            &configs,
            args.workspace.as_deref(),
            args.allow_outside_workspace,
        );
    }
    let [model] = models.as_slice() else {
        anyhow::bail!("give exactly one model to quantize (got {})", models.len());
    };
    let settings = settings_from_args(&args)?;
    let file =
        ModelFile::open(model).with_context(|| format!("cannot read {}", model.display()))?;
    let plan = plan::build(&file.index, &settings)?;
    let output = match &args.output {
        Some(o) => o.clone(),
        None => default_output(model, &settings),
    };
    let mut opts = RunOptions {
        dialect: if args.float64 {
            Dialect::F64
        } else {
            Dialect::F32
        },
        ..RunOptions::default()
    };
    let bar = (!args.json && std::io::stderr().is_terminal()).then(|| {
        let bar = indicatif::ProgressBar::new(0);
        bar.set_style(
            indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} layers  {msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar
    });
    if let Some(bar) = &bar {
        let bar = bar.clone();
        opts.progress = Some(Arc::new(move |p: &quant::Progress| {
            bar.set_length(p.total as u64);
            bar.set_position(p.done as u64);
            bar.set_message(p.layer.clone());
        }));
    }
    let result = quant::quantize(&file, &plan, &output, &opts);
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    let report = result?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report_json(&report))?);
    } else {
        print_summary(&report);
    }
    Ok(ExitCode::SUCCESS)
}

fn is_config(p: &Path) -> bool {
    p.to_string_lossy().ends_with(".quant.json")
}

/// `*.quant.json` arguments are handled by the config front end.
/// Builds [`Settings`] from the flags, with coremltools' validation order and texts.
pub fn settings_from_args(args: &Args) -> anyhow::Result<Settings> {
    let mode = Mode::parse(&args.mode).ok_or_else(|| {
        PlanError::new(PlanErrorKind::InvalidMode {
            mode: args.mode.clone(),
        })
    })?;
    let nbits = match (args.nbits, mode) {
        (Some(n), _) => n,
        (None, Mode::Dequantization) => 8,
        (None, _) => return Err(PlanError::new(PlanErrorKind::MissingNbits).into()),
    };
    let nbits_u8 = u8::try_from(nbits)
        .ok()
        .filter(|b| (1..=8).contains(b) || *b == 16 || mode == Mode::Dequantization)
        .ok_or_else(|| PlanError::new(PlanErrorKind::InvalidNbits { nbits }))?;
    let advanced = args.skip_layer_types.is_some()
        || args.minimum_conv_kernel_channels.is_some()
        || args.minimum_conv_weight_count.is_some();
    let selector = if advanced {
        Selector::Advanced {
            skip_layer_types: args.skip_layer_types.clone().unwrap_or_default(),
            minimum_conv_kernel_channels: args.minimum_conv_kernel_channels.unwrap_or(4),
            minimum_conv_weight_count: args.minimum_conv_weight_count.unwrap_or(4096),
        }
    } else {
        Selector::Default
    };
    let settings = Settings {
        default: Choice {
            nbits: nbits_u8,
            mode,
            lut: args.lut.as_deref().map(plan::lut),
        },
        selector,
        skip_layers: args.skip_layers.clone(),
        overrides: Vec::new(),
        fuse_layers: !args.no_fuse,
    };
    plan::validate_settings(&settings)?;
    Ok(settings)
}

fn default_output(model: &Path, settings: &Settings) -> PathBuf {
    let stem = model
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "model".into());
    let tag = match settings.default.target() {
        Ok(t) => t.describe().replace([' ', '-'], ""),
        Err(_) => "quantized".into(),
    };
    let dir = model.parent().unwrap_or(Path::new("."));
    // A package in, a package out.
    let ext = if model.is_dir() || quant::write_package::is_package_path(model) {
        "mlpackage"
    } else {
        "mlmodel"
    };
    dir.join(format!("{stem}.{tag}.{ext}"))
}

fn human(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KB", "MB", "GB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1000.0 && u + 1 < UNITS.len() {
        v /= 1000.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

fn print_summary(r: &quant::Report) {
    let pct = if r.bytes_before == 0 {
        0.0
    } else {
        100.0 * r.bytes_after as f64 / r.bytes_before as f64
    };
    println!(
        "{}: {} -> {} ({pct:.1} % of the input), {} tensors converted in {:.2} s",
        r.output.display(),
        human(r.bytes_before),
        human(r.bytes_after),
        r.tensors_converted,
        r.elapsed.as_secs_f64()
    );
    if let Some(p) = &r.package {
        println!(
            "wrote a Core ML package: {} in all ({} model file)",
            human(p.total_bytes),
            human(r.bytes_after)
        );
    }
    for n in &r.notes {
        println!("note: {n}");
    }
}

fn report_json(r: &quant::Report) -> serde_json::Value {
    serde_json::json!({
        "output": r.output.display().to_string(),
        "bytes_before": r.bytes_before,
        "bytes_after": r.bytes_after,
        "tensors_converted": r.tensors_converted,
        "seconds": r.elapsed.as_secs_f64(),
        "notes": r.notes,
        "package": r.package.as_ref().map(|p| serde_json::json!({
            "model": p.model.display().to_string(),
            "total_bytes": p.total_bytes,
        })),
        "layers": r.layers.iter().map(|l| serde_json::json!({
            "name": l.name,
            "decision": decision_name(&l.decision),
            "reason": l.reason,
            "bytes_before": l.bytes_before,
            "bytes_after": l.bytes_after,
        })).collect::<Vec<_>>(),
    })
}

fn decision_name(d: &quant::LayerDecision) -> String {
    match d {
        quant::LayerDecision::Quantize(t) => t.describe(),
        quant::LayerDecision::Skip => "skip".into(),
        quant::LayerDecision::FusedInto(_) => "fused".into(),
        quant::LayerDecision::NotQuantizable => "not quantizable".into(),
        quant::LayerDecision::NoWeights => "no weights".into(),
    }
}
