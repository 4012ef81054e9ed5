//! Reconstruction quality of a plan's conversions: each converted tensor is quantized in
//! memory (fused values included), dequantized, and compared with its float originals.
//! Shared by `coremlq plan --quality` and the language server's hover.

use rayon::prelude::*;

use crate::model::ModelFile;

use super::kernels::{dequantize, quality, quantize, Dialect, Quality};
use super::{fusion, Plan, QuantError, Target, TensorAction};

/// The reconstruction quality of one converted tensor.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorQuality {
    /// The tensor's index in the model index (and the plan).
    pub tensor: usize,
    /// The layer's name.
    pub layer: String,
    /// The tensor's field (`weights`, `bias`, …).
    pub field: String,
    /// The conversion measured.
    pub target: Target,
    /// SNR, relative RMS error and largest error of the dequantized values.
    pub quality: Quality,
}

/// The conversion the plan applies to `tensor` when it can be measured (a quantization;
/// kept, deleted and dequantized tensors have nothing to measure).
pub fn measured_target(plan: &Plan, tensor: usize) -> Option<&Target> {
    match &plan.tensors.get(tensor)?.action {
        TensorAction::Convert(target) if *target != Target::Dequantize => Some(target),
        _ => None,
    }
}

/// Quantizes tensor `tensor` of `file` as `plan` says, dequantizes it and measures the
/// result; `Ok(None)` when the plan does not quantize that tensor. Blocking and CPU-bound.
pub fn quality_of(
    file: &ModelFile,
    plan: &Plan,
    tensor: usize,
) -> Result<Option<TensorQuality>, QuantError> {
    let Some(target) = measured_target(plan, tensor) else {
        return Ok(None);
    };
    let fused = plan.tensors.get(tensor).is_some_and(|t| t.fused);
    let index = &file.index;
    let Some(w) = index.weights.get(tensor) else {
        return Ok(None);
    };
    let layer = index
        .layers
        .get(w.layer)
        .map_or_else(String::new, |l| l.name.clone());
    let values = match (fused, plan.fusion_of(w.layer)) {
        (true, Some(fp)) => {
            let fused = fusion::compute(&file.path, file.bytes(), index, fp, Dialect::F32)?;
            match fused.get(&w.field) {
                Some(v) => v.to_vec(),
                None => fusion::read_values(&file.path, file.bytes(), w)?,
            }
        }
        _ => fusion::read_values(&file.path, file.bytes(), w)?,
    };
    let kernel = |e: super::kernels::KernelError| QuantError::Kernel {
        path: file.path.clone(),
        layer: layer.clone(),
        field: w.field.clone(),
        message: e.to_string(),
    };
    file.check_unchanged()?;
    let q = quantize(&values, &w.shape, w.axis, target, Dialect::F32).map_err(kernel)?;
    let back = dequantize(&q, &w.shape, w.axis).map_err(kernel)?;
    Ok(Some(TensorQuality {
        tensor,
        layer,
        field: w.field.clone(),
        target: target.clone(),
        quality: quality(&values, &back),
    }))
}

/// [`quality_of`] for every tensor the plan quantizes, in tensor order (in parallel).
pub fn plan_quality(file: &ModelFile, plan: &Plan) -> Result<Vec<TensorQuality>, QuantError> {
    let tensors: Vec<usize> = (0..plan.tensors.len())
        .filter(|&i| measured_target(plan, i).is_some())
        .collect();
    let measured: Result<Vec<Option<TensorQuality>>, QuantError> = tensors
        .par_iter()
        .map(|&i| quality_of(file, plan, i))
        .collect();
    Ok(measured?.into_iter().flatten().collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quant::{plan, Choice, Mode, Selector, Settings};

    fn example() -> ModelFile {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/examples/MobileNetMini.mlmodel"
        );
        ModelFile::open(std::path::Path::new(path)).expect("the example model opens")
    }

    fn settings(nbits: u8) -> Settings {
        Settings {
            default: Choice {
                nbits,
                mode: Mode::parse("linear").expect("a mode"),
                lut: None,
            },
            selector: Selector::default(),
            skip_layers: vec!["fc1".into()],
            overrides: Vec::new(),
            fuse_layers: false,
        }
    }

    #[test]
    fn measures_every_quantized_tensor_and_more_bits_are_closer() {
        let file = example();
        let p8 = plan::build(&file.index, &settings(8)).expect("plan");
        let p4 = plan::build(&file.index, &settings(4)).expect("plan");
        let q8 = plan_quality(&file, &p8).expect("measured");
        let q4 = plan_quality(&file, &p4).expect("measured");
        let expected = (0..p8.tensors.len())
            .filter(|&i| measured_target(&p8, i).is_some())
            .count();
        assert!(expected > 0);
        assert_eq!(q8.len(), expected);
        assert!(q8.iter().all(|q| q.layer != "fc1"));
        for (a, b) in q8.iter().zip(&q4) {
            assert_eq!((a.tensor, &a.field), (b.tensor, &b.field));
            assert!(a.quality.snr_db >= b.quality.snr_db, "{a:?} vs {b:?}");
        }
        assert!(q8
            .iter()
            .zip(&q4)
            .any(|(a, b)| a.quality.snr_db > b.quality.snr_db));
        let skipped = file
            .index
            .weights
            .iter()
            .position(|w| {
                file.index
                    .layers
                    .get(w.layer)
                    .is_some_and(|l| l.name == "fc1")
            })
            .expect("fc1 has weights");
        assert_eq!(quality_of(&file, &p8, skipped).expect("no error"), None);
    }
}
