//! The quantize pipeline as the fuzzers drive it: index → plan → rewrite → re-read, with
//! the settings picked from a few bytes of the input, so that mutations of a model explore
//! every mode and bit width.

use std::path::Path;
use std::sync::Arc;

use coremlq::model::index;
use coremlq::quant::{self, Choice, Mode, RunOptions, Selector, Settings};

/// The settings the pipeline fuzzers cycle through (`choice` picks one).
pub fn settings(choice: u8) -> Settings {
    let (nbits, mode, lut): (u8, Mode, Option<Arc<[f32]>>) = match choice % 10 {
        0 => (16, Mode::Linear, None),
        1 => (8, Mode::Linear, None),
        2 => (4, Mode::Linear, None),
        3 => (8, Mode::LinearSymmetric, None),
        4 => (2, Mode::LinearLut, None),
        5 => (3, Mode::KmeansLut, None),
        6 => (
            2,
            Mode::CustomLut,
            Some(Arc::from(vec![-1.0f32, -0.25, 0.25, 1.0])),
        ),
        7 => (8, Mode::Dequantization, None),
        8 => (1, Mode::Linear, None),
        _ => (6, Mode::LinearLut, None),
    };
    Settings {
        default: Choice { nbits, mode, lut },
        selector: if choice & 0x80 != 0 {
            Selector::Advanced {
                skip_layer_types: Vec::new(),
                minimum_conv_kernel_channels: 4,
                minimum_conv_weight_count: 16,
            }
        } else {
            Selector::Default
        },
        skip_layers: Vec::new(),
        overrides: Vec::new(),
        fuse_layers: choice & 0x40 != 0,
    }
}

/// Planned outputs larger than this are not produced (see [`run`]).
pub const PLANNED_LIMIT: u64 = 256 << 20;

/// How far an input went through the pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Stage {
    /// The model was refused by the index.
    Index,
    /// The plan refused the settings for this model.
    Plan,
    /// Execution refused (values that cannot be converted, …).
    Execute,
    /// Written and read back.
    Written,
}

/// Runs index → plan → quantize into memory → re-index the output. Errors are fine; a
/// panic, or an output that does not index or whose index is inconsistent, is a bug
/// (returned as `Err`).
pub fn run(model: &[u8], choice: u8) -> Result<Stage, String> {
    let path = Path::new("fuzz.mlmodel");
    let Ok(file) = coremlq::model::ModelFile::from_bytes(path.to_path_buf(), model.to_vec()) else {
        return Ok(Stage::Index);
    };
    let settings = settings(choice);
    let Ok(plan) = quant::plan::build(&file.index, &settings) else {
        return Ok(Stage::Plan);
    };
    // Known bug (docs/reliability.md): `quantize_to_vec` reserves the planned size, which
    // can come from a header claiming far more elements than are stored. Until it is fixed,
    // outputs planned far beyond what the input can hold are not produced here; the ignored
    // test `known_bug_dequantizing_a_huge_header_aborts` keeps the reproduction.
    match quant::estimate::rewrite(&file.index, file.bytes(), &plan) {
        Ok(rw) if rw.layout.total > PLANNED_LIMIT => return Ok(Stage::Execute),
        Ok(_) => {}
        Err(_) => return Ok(Stage::Execute),
    }
    let Ok(out) = quant::execute::quantize_to_vec(&file, &plan, &RunOptions::default()) else {
        return Ok(Stage::Execute);
    };
    let reread = index::build(Path::new("fuzz.out.mlmodel"), &out)
        .map_err(|e| format!("the quantized output does not index: {e}"))?;
    crate::checks::index_invariants(&out, &reread)?;
    if reread.layers.len() > file.index.layers.len() {
        return Err(format!(
            "the output has {} layers, the input {}",
            reread.layers.len(),
            file.index.layers.len()
        ));
    }
    Ok(Stage::Written)
}
