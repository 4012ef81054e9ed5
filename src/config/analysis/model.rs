//! Model checks: the status the caller found (one diagnostic on the `model` value, no
//! cascade), the model's type, updatable models, and models already quantized.

use super::structure::Fields;
use super::values::Values;
use super::{Context, ModelStatus};
use crate::config::diagnostic::{Code, Diagnostic};
use crate::model::{ModelIndex, Storage};
use crate::quant::Mode;

/// Model types whose networks `quantize_weights` processes.
const NN_TYPES: &[&str] = &[
    "neuralNetwork",
    "neuralNetworkClassifier",
    "neuralNetworkRegressor",
];
const PIPELINE_TYPES: &[&str] = &["pipeline", "pipelineClassifier", "pipelineRegressor"];

/// Runs the model checks; returns the index when the model can be quantized this way.
pub(super) fn check<'a>(
    f: &Fields<'_>,
    v: &Values<'_>,
    ctx: &Context<'a>,
    out: &mut Vec<Diagnostic>,
) -> Option<&'a ModelIndex> {
    let member = f.model?;
    let shown = member.value.as_str()?;
    let range = member.value.range;
    if shown.trim().is_empty() {
        out.push(Diagnostic::new(
            Code::ModelNotFound,
            range,
            "`model` is empty: name the .mlmodel file to quantize",
        ));
        return None;
    }
    let index = match ctx.model {
        ModelStatus::NotGiven => return None,
        ModelStatus::NotFound => {
            out.push(
                Diagnostic::new(
                    Code::ModelNotFound,
                    range,
                    format!("model file `{shown}` not found"),
                )
                .with_help("relative paths start at the folder holding the config"),
            );
            return None;
        }
        ModelStatus::Unreadable(why) => {
            out.push(Diagnostic::new(
                Code::ModelUnreadable,
                range,
                format!("`{shown}` cannot be read: {why}"),
            ));
            return None;
        }
        ModelStatus::Corrupt { message, offset } => {
            out.push(Diagnostic::new(
                Code::ModelCorrupt,
                range,
                format!("`{shown}` is truncated or corrupt: byte {offset}: {message}"),
            ));
            return None;
        }
        ModelStatus::NotAModel(what) => {
            let message = if what.starts_with("is ") {
                format!("`{shown}` {what}")
            } else {
                format!("`{shown}` is not a Core ML model: {what}")
            };
            out.push(Diagnostic::new(Code::NotAModel, range, message));
            return None;
        }
        ModelStatus::Loaded(index) => index,
    };
    let root = index.models.first()?;
    let ty = root.model_type.as_str();
    if ty.is_empty() {
        out.push(Diagnostic::new(
            Code::NotAModel,
            range,
            format!("`{shown}` is not a Core ML model: it has no model type"),
        ));
        return None;
    }
    let supported =
        NN_TYPES.contains(&ty) || (PIPELINE_TYPES.contains(&ty) && !index.networks.is_empty());
    if !supported {
        let (what, help) = describe_type(ty, index);
        out.push(
            Diagnostic::new(
                Code::UnsupportedModelType,
                range,
                format!("`{shown}` is {what}"),
            )
            .with_help(help),
        );
        return None;
    }
    if root.is_updatable {
        updatable_fp16(v, out);
    }
    let dequantizing = v
        .mode
        .as_ref()
        .is_some_and(|m| m.value == Mode::Dequantization);
    if !dequantizing {
        already_quantized(index, shown, range, out);
    }
    Some(index)
}

fn describe_type(ty: &str, index: &ModelIndex) -> (String, String) {
    let other =
        "only neural networks (neuralNetwork, neuralNetworkClassifier, neuralNetworkRegressor) \
                 and pipelines holding them have weights that quantize_weights converts";
    match ty {
        "mlProgram" => (
            "an ML Program (mlProgram): quantize_weights only handles neural networks".into(),
            "compress ML Programs with coremltools.optimize.coreml (linear_quantize_weights, palettize_weights)".into(),
        ),
        t if PIPELINE_TYPES.contains(&t) => {
            let _ = index;
            (format!("a pipeline ({t}) without any neural network: nothing to quantize"), other.into())
        }
        t => {
            let name = match t {
                "glmRegressor" | "glmClassifier" => "a generalized linear model",
                "treeEnsembleRegressor" | "treeEnsembleClassifier" => "a tree ensemble",
                "supportVectorRegressor" | "supportVectorClassifier" => "a support vector machine",
                "kNearestNeighborsClassifier" => "a k-nearest-neighbors classifier",
                _ => "a model",
            };
            (format!("{name} ({t}), not a neural network: it has no weights quantize_weights converts"), other.into())
        }
    }
}

fn updatable_fp16(v: &Values<'_>, out: &mut Vec<Diagnostic>) {
    let help = "coremltools refuses fp16 for updatable models; use 1 to 8 bits, or a model without isUpdatable";
    let msg = "updatable models cannot get quantized to FP16.";
    if let Some(n) = v.nbits.as_ref().filter(|n| n.value == 16) {
        out.push(Diagnostic::new(Code::UpdatableFp16, n.member.value.range, msg).with_help(help));
    }
    for e in v.entries.iter().filter(|e| !e.skip) {
        let mode = e.mode.as_ref().or(v.mode.as_ref()).map(|m| m.value);
        if let Some(n) = e
            .nbits
            .as_ref()
            .filter(|n| n.value == 16 && mode != Some(Mode::Dequantization))
        {
            out.push(
                Diagnostic::new(Code::UpdatableFp16, n.member.value.range, msg).with_help(help),
            );
        }
    }
}

fn already_quantized(
    index: &ModelIndex,
    shown: &str,
    range: crate::config::syntax::TextRange,
    out: &mut Vec<Diagnostic>,
) {
    let mut count = 0usize;
    let mut kinds: Vec<String> = Vec::new();
    for w in &index.weights {
        let kind = match w.storage {
            Storage::Float16 => "float16".to_string(),
            Storage::Linear { nbits } => format!("linear {nbits}-bit"),
            Storage::Lut { nbits } => format!("lookup-table {nbits}-bit"),
            Storage::Int8 => "int8".to_string(),
            Storage::Empty | Storage::Float32 | Storage::Mixed => continue,
        };
        count += 1;
        if !kinds.contains(&kind) {
            kinds.push(kind);
        }
    }
    if count == 0 {
        return;
    }
    let total = index
        .weights
        .iter()
        .filter(|w| w.storage != Storage::Empty)
        .count();
    out.push(
        Diagnostic::new(
            Code::AlreadyQuantized,
            range,
            format!("`{shown}` is already quantized: {count} of {total} weight tensors are stored as {}", kinds.join(", ")),
        )
        .with_help("quantize_weights leaves such tensors as they are; use \"quantization_mode\": \"dequantization\" to restore float32"),
    );
}
