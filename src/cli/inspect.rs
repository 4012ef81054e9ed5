//! `coremlq inspect`: a model's type, networks, layers and weight tensors.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use coremlq::format::thousands;
use coremlq::model::names::{is_layer_type, LAYER_TYPES};
use coremlq::model::{LayerId, ModelFile, ModelIndex, NetworkRole, Storage, WeightInfo};
use serde::Serialize;

/// Arguments of `coremlq inspect`.
#[derive(clap::Args)]
pub struct Args {
    /// The model: an `.mlmodel` file or an `.mlpackage` folder.
    pub model: PathBuf,
    /// Show only the N layers with the most weight bytes, largest first.
    #[arg(long, value_name = "N")]
    pub largest: Option<usize>,
    /// Show only layers of this type (repeatable), e.g. `--type convolution`.
    #[arg(long = "type", value_name = "TYPE")]
    pub types: Vec<String>,
    /// Also list the layers without weights in the table (JSON always lists every layer).
    #[arg(long)]
    pub all: bool,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Runs `coremlq inspect`.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    for t in &args.types {
        if !is_layer_type(t) && !t.starts_with("unknown(") {
            let close: Vec<&str> = LAYER_TYPES
                .iter()
                .map(|(_, n)| *n)
                .filter(|n| n.to_lowercase().contains(&t.to_lowercase()))
                .collect();
            let hint = if close.is_empty() {
                String::new()
            } else {
                format!(" (did you mean {}?)", close.join(", "))
            };
            anyhow::bail!("unknown layer type {t:?}{hint}");
        }
    }
    // The error's text already names the cause; keep anyhow from repeating its source.
    let file = ModelFile::open(&args.model).map_err(|e| anyhow::anyhow!("{e}"))?;
    let out = if args.json {
        json(&args, &file.index)?
    } else {
        table(&args, &file.index)
    };
    print!("{out}");
    Ok(ExitCode::SUCCESS)
}

/// The layers to show, in the order to show them.
fn selected(args: &Args, idx: &ModelIndex, for_table: bool) -> Vec<LayerId> {
    let mut layers: Vec<LayerId> = (0..idx.layers.len())
        .filter(|&l| args.types.is_empty() || args.types.contains(&idx.layers[l].layer_type))
        .collect();
    if let Some(n) = args.largest {
        layers.retain(|&l| layer_bytes(idx, l) > 0);
        // Stable sort: equal sizes stay in walk order.
        layers.sort_by_key(|&l| std::cmp::Reverse(layer_bytes(idx, l)));
        layers.truncate(n);
    } else if for_table && !args.all && args.types.is_empty() {
        // Branch and loop layers stay: they hold the nested networks listed below them.
        layers.retain(|&l| !idx.layers[l].weights.is_empty() || !idx.layers[l].children.is_empty());
    }
    layers
}

fn layer_bytes(idx: &ModelIndex, l: LayerId) -> u64 {
    idx.layer_weights(l).map(WeightInfo::bytes).sum()
}

/// `float32`, `float16`, `linear 4-bit`, `lut 2-bit`, `int8`, `empty`, `mixed`.
fn storage_text(s: Storage) -> String {
    match s {
        Storage::Linear { nbits } | Storage::Lut { nbits } => format!("{} {nbits}-bit", s.name()),
        _ => s.name().to_string(),
    }
}

fn shape_text(shape: &[u64]) -> String {
    if shape.is_empty() {
        "-".into()
    } else {
        shape
            .iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join("x")
    }
}

/// `1 layer`, `2 layers`, `1,024 layers`.
fn plural(n: u64, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{} {what}s", thousands(n))
    }
}

fn yes_no(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}

fn role_text(role: NetworkRole) -> &'static str {
    match role {
        NetworkRole::Main => "main network",
        NetworkRole::IfBranch => "if branch",
        NetworkRole::ElseBranch => "else branch",
        NetworkRole::LoopCondition => "loop condition",
        NetworkRole::LoopBody => "loop body",
    }
}

fn percent(part: u64, whole: u64) -> String {
    if whole == 0 {
        "0.0%".into()
    } else {
        format!("{:.1}%", part as f64 * 100.0 / whole as f64)
    }
}

fn features(f: &[coremlq::model::FeatureInfo]) -> String {
    if f.is_empty() {
        return "-".into();
    }
    f.iter()
        .map(|f| format!("{} ({})", f.name, f.kind))
        .collect::<Vec<_>>()
        .join(", ")
}

fn table(args: &Args, idx: &ModelIndex) -> String {
    let mut o = String::new();
    let root = idx.root();
    let _ = writeln!(o, "model      {}", idx.path.display());
    let _ = writeln!(
        o,
        "type       {} (specification version {})",
        if root.model_type.is_empty() {
            "(none)"
        } else {
            &root.model_type
        },
        root.specification_version
    );
    let _ = writeln!(o, "updatable  {}", yes_no(root.is_updatable));
    let _ = writeln!(o, "inputs     {}", features(&root.inputs));
    let _ = writeln!(o, "outputs    {}", features(&root.outputs));
    if idx.models.len() > 1 {
        let _ = writeln!(o, "models     {}", idx.models.len());
        for m in &idx.models[1..] {
            let depth = m.path.matches(".models[").count();
            let name = m
                .name
                .as_deref()
                .map(|n| format!(" {n:?}"))
                .unwrap_or_default();
            let _ = writeln!(
                o,
                "  {}{}{name}: {} (specification version {})",
                "  ".repeat(depth.saturating_sub(1)),
                m.path,
                m.model_type,
                m.specification_version
            );
        }
    }
    let with_weights = idx.layers.iter().filter(|l| !l.weights.is_empty()).count();
    let _ = writeln!(
        o,
        "networks   {} ({}, {with_weights} with weights, {})",
        idx.networks.len(),
        plural(idx.layers.len() as u64, "layer"),
        plural(idx.weights.len() as u64, "weight tensor"),
    );
    if root.model_type == "mlProgram" {
        let _ = writeln!(
            o,
            "note       ML Programs keep their weights in the package's weights/ folder; \
             coremlq quantizes neural networks only"
        );
    }
    for w in &idx.warnings {
        let _ = writeln!(o, "warning    {w}");
    }

    let layers = selected(args, idx, true);
    let headers = [
        "layer", "type", "tensor", "shape", "count", "storage", "bytes",
    ];
    let mut rows: Vec<[String; 7]> = Vec::new();
    let mut sections: Vec<(usize, String)> = Vec::new();
    let sectioned = args.largest.is_none() && idx.networks.len() > 1;
    let mut last_net = usize::MAX;
    for &l in &layers {
        let layer = &idx.layers[l];
        if sectioned && layer.network != last_net {
            last_net = layer.network;
            let n = &idx.networks[layer.network];
            sections.push((rows.len(), format!("{} ({})", n.path, role_text(n.role))));
        }
        let mut first = true;
        let name_cells = |first: bool| {
            if first {
                [layer.name.clone(), layer.layer_type.clone()]
            } else {
                [String::new(), String::new()]
            }
        };
        for w in idx.layer_weights(l) {
            let [a, b] = name_cells(first);
            first = false;
            rows.push([
                a,
                b,
                w.field.clone(),
                shape_text(&w.shape),
                thousands(w.count),
                storage_text(w.storage),
                thousands(w.bytes()),
            ]);
        }
        if first {
            let [a, b] = name_cells(true);
            rows.push([
                a,
                b,
                "-".into(),
                "-".into(),
                "-".into(),
                "-".into(),
                "-".into(),
            ]);
        }
    }
    o.push('\n');
    if rows.is_empty() {
        let _ = writeln!(o, "(no layers to show)");
    } else {
        let mut widths = headers.map(str::len);
        for r in &rows {
            for (w, c) in widths.iter_mut().zip(r) {
                *w = (*w).max(c.chars().count());
            }
        }
        let right = [false, false, false, false, true, false, true];
        let line = |cells: [&str; 7]| {
            let mut s = String::new();
            for (i, c) in cells.iter().enumerate() {
                let pad = widths[i].saturating_sub(c.chars().count());
                if right[i] {
                    s.push_str(&" ".repeat(pad));
                    s.push_str(c);
                } else {
                    s.push_str(c);
                    if i + 1 < cells.len() {
                        s.push_str(&" ".repeat(pad));
                    }
                }
                if i + 1 < cells.len() {
                    s.push_str("  ");
                }
            }
            s.trim_end().to_string() + "\n"
        };
        o.push_str(&line(headers));
        let mut sec = sections.iter().peekable();
        for (i, r) in rows.iter().enumerate() {
            while let Some((at, title)) = sec.peek() {
                if *at != i {
                    break;
                }
                let _ = writeln!(o, "-- {title}");
                sec.next();
            }
            o.push_str(&line([&r[0], &r[1], &r[2], &r[3], &r[4], &r[5], &r[6]]));
        }
    }
    let hidden = idx.layers.len() - layers.len();
    if hidden > 0 && args.types.is_empty() && args.largest.is_none() {
        let _ = writeln!(
            o,
            "({} without weights not shown; --all lists them)",
            plural(hidden as u64, "layer")
        );
    }

    o.push('\n');
    let total = idx.weight_bytes();
    if !args.types.is_empty() || args.largest.is_some() {
        let shown: u64 = layers.iter().map(|&l| layer_bytes(idx, l)).sum();
        let _ = writeln!(
            o,
            "shown      {}, {} weight bytes ({} of the file)",
            plural(layers.len() as u64, "layer"),
            thousands(shown),
            percent(shown, idx.file_bytes)
        );
    }
    let _ = writeln!(
        o,
        "total      {}, {} weight bytes of {} file bytes ({} of the file)",
        plural(idx.weights.len() as u64, "tensor"),
        thousands(total),
        thousands(idx.file_bytes),
        percent(total, idx.file_bytes)
    );
    let mut by_storage: Vec<(String, u64, u64)> = Vec::new();
    for w in &idx.weights {
        let key = storage_text(w.storage);
        match by_storage.iter_mut().find(|(k, _, _)| *k == key) {
            Some(e) => {
                e.1 += 1;
                e.2 += w.bytes();
            }
            None => by_storage.push((key, 1, w.bytes())),
        }
    }
    by_storage.sort_by_key(|e| std::cmp::Reverse(e.2));
    for (k, n, b) in by_storage {
        let _ = writeln!(
            o,
            "  {k:<14} {:>14} {:>16} bytes",
            plural(n, "tensor"),
            thousands(b)
        );
    }
    o
}

#[derive(Serialize)]
struct JsonOut<'a> {
    path: String,
    file_bytes: u64,
    model_type: &'a str,
    specification_version: i64,
    is_updatable: bool,
    inputs: Vec<JsonFeature<'a>>,
    outputs: Vec<JsonFeature<'a>>,
    networks: usize,
    models: Vec<JsonModel<'a>>,
    layers: Vec<JsonLayer<'a>>,
    weight_tensors: usize,
    weight_bytes: u64,
    warnings: &'a [String],
}

#[derive(Serialize)]
struct JsonFeature<'a> {
    name: &'a str,
    #[serde(rename = "type")]
    kind: &'a str,
}

#[derive(Serialize)]
struct JsonModel<'a> {
    path: &'a str,
    name: Option<&'a str>,
    #[serde(rename = "type")]
    model_type: &'a str,
    specification_version: i64,
    is_updatable: bool,
    inputs: Vec<JsonFeature<'a>>,
    outputs: Vec<JsonFeature<'a>>,
    networks: Vec<&'a str>,
}

#[derive(Serialize)]
struct JsonLayer<'a> {
    name: &'a str,
    #[serde(rename = "type")]
    layer_type: &'a str,
    network: &'a str,
    inputs: &'a [String],
    outputs: &'a [String],
    is_updatable: bool,
    bytes: u64,
    weights: Vec<JsonWeight<'a>>,
}

#[derive(Serialize)]
struct JsonWeight<'a> {
    field: &'a str,
    count: u64,
    shape: &'a [u64],
    axis: usize,
    storage: &'static str,
    nbits: Option<u8>,
    bytes: u64,
}

fn json_features(f: &[coremlq::model::FeatureInfo]) -> Vec<JsonFeature<'_>> {
    f.iter()
        .map(|f| JsonFeature {
            name: &f.name,
            kind: &f.kind,
        })
        .collect()
}

fn json(args: &Args, idx: &ModelIndex) -> anyhow::Result<String> {
    let root = idx.root();
    let models = idx
        .models
        .iter()
        .enumerate()
        .map(|(id, m)| JsonModel {
            path: &m.path,
            name: m.name.as_deref(),
            model_type: &m.model_type,
            specification_version: m.specification_version,
            is_updatable: m.is_updatable,
            inputs: json_features(&m.inputs),
            outputs: json_features(&m.outputs),
            networks: idx
                .networks
                .iter()
                .filter(|n| n.model == id)
                .map(|n| n.path.as_str())
                .collect(),
        })
        .collect();
    let layers = selected(args, idx, false)
        .into_iter()
        .map(|l| {
            let layer = &idx.layers[l];
            JsonLayer {
                name: &layer.name,
                layer_type: &layer.layer_type,
                network: &idx.networks[layer.network].path,
                inputs: &layer.inputs,
                outputs: &layer.outputs,
                is_updatable: layer.is_updatable,
                bytes: layer_bytes(idx, l),
                weights: idx
                    .layer_weights(l)
                    .map(|w| JsonWeight {
                        field: &w.field,
                        count: w.count,
                        shape: &w.shape,
                        axis: w.axis,
                        storage: w.storage.name(),
                        nbits: w.storage.nbits(),
                        bytes: w.bytes(),
                    })
                    .collect(),
            }
        })
        .collect();
    let out = JsonOut {
        path: idx.path.display().to_string(),
        file_bytes: idx.file_bytes,
        model_type: &root.model_type,
        specification_version: root.specification_version,
        is_updatable: root.is_updatable,
        inputs: json_features(&root.inputs),
        outputs: json_features(&root.outputs),
        networks: idx.networks.len(),
        models,
        layers,
        weight_tensors: idx.weights.len(),
        weight_bytes: idx.weight_bytes(),
        warnings: &idx.warnings,
    };
    Ok(serde_json::to_string_pretty(&out)? + "\n")
}
