//! What the user asked for, in coremltools' vocabulary: nbits, mode, selector, overrides.

use std::sync::Arc;

/// A `quantization_mode` of coremltools' `quantize_weights`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mode {
    /// `linear`: per-channel min/max scale and bias.
    Linear,
    /// `linear_symmetric`: symmetric linear, 8 bits only.
    LinearSymmetric,
    /// `linear_lut`: evenly spaced lookup table.
    LinearLut,
    /// `kmeans_lut` (alias `kmeans`): lookup table from 1-D k-means.
    KmeansLut,
    /// `custom_lut`: a user-supplied lookup table.
    CustomLut,
    /// `dequantization`: turn quantized weights back into float32.
    Dequantization,
}

impl Mode {
    /// Every mode, in the order coremltools documents them.
    pub const ALL: [Mode; 6] = [
        Mode::Linear,
        Mode::LinearSymmetric,
        Mode::LinearLut,
        Mode::KmeansLut,
        Mode::CustomLut,
        Mode::Dequantization,
    ];

    /// The mode's name as coremltools spells it.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Linear => "linear",
            Mode::LinearSymmetric => "linear_symmetric",
            Mode::LinearLut => "linear_lut",
            Mode::KmeansLut => "kmeans_lut",
            Mode::CustomLut => "custom_lut",
            Mode::Dequantization => "dequantization",
        }
    }

    /// Parses a mode name; `kmeans` is accepted as coremltools' deprecated alias.
    pub fn parse(s: &str) -> Option<Mode> {
        match s {
            "kmeans" => Some(Mode::KmeansLut),
            _ => Mode::ALL.into_iter().find(|m| m.name() == s),
        }
    }
}

/// One quantization choice: nbits, mode and (for `custom_lut`) the table.
#[derive(Debug, Clone, PartialEq)]
pub struct Choice {
    /// 16 (float16) or 1 to 8.
    pub nbits: u8,
    /// The mode.
    pub mode: Mode,
    /// The lookup table for `custom_lut` (2^nbits entries).
    pub lut: Option<Arc<[f32]>>,
}

/// What happens to one float32 tensor.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    /// IEEE half precision.
    Fp16,
    /// `linear` with 1–8 bits.
    Linear(u8),
    /// `linear_symmetric`, 8 bits.
    LinearSymmetric,
    /// `linear_lut` with 1–8 bits.
    LinearLut(u8),
    /// `kmeans_lut` with 1–8 bits.
    KmeansLut(u8),
    /// `custom_lut` with 1–8 bits and the table.
    CustomLut(u8, Arc<[f32]>),
    /// Back to float32.
    Dequantize,
}

/// Which layers coremltools' selector lets through.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Selector {
    /// `QuantizedLayerSelector`: every layer type that carries quantizable weights.
    #[default]
    Default,
    /// `AdvancedQuantizedLayerSelector` with its three parameters.
    Advanced {
        /// Layer types (and the pseudo-types `depthwiseConv`, `bias`) to leave alone.
        skip_layer_types: Vec<String>,
        /// Convolutions with fewer kernel channels are skipped.
        minimum_conv_kernel_channels: u64,
        /// Convolutions with fewer weights are skipped.
        minimum_conv_weight_count: u64,
    },
}

/// A per-layer override from the config's `layers` table.
#[derive(Debug, Clone, PartialEq)]
pub struct Override {
    /// A layer name or a glob pattern (`*`, `?`).
    pub pattern: String,
    /// `"skip": true`.
    pub skip: bool,
    /// Overridden nbits.
    pub nbits: Option<u8>,
    /// Overridden mode.
    pub mode: Option<Mode>,
    /// Overridden table.
    pub lut: Option<Arc<[f32]>>,
}

impl Override {
    /// Whether an override whose own nbits are `nbits` takes the model-wide mode when it
    /// writes none. Not with nbits 16: that means float16 whatever mode it would inherit
    /// (every mode is ignored at 16 bits); only a `linear_symmetric` written in the same
    /// object as nbits 16 is refused, as coremltools does.
    pub fn inherits_mode(nbits: Option<u8>) -> bool {
        nbits != Some(16)
    }

    /// The choice this override makes: its own pieces, the rest from `default` (see
    /// [`Override::inherits_mode`]).
    pub fn choice(&self, default: &Choice) -> Choice {
        let mode = match self.mode {
            Some(m) => m,
            None if Self::inherits_mode(self.nbits) => default.mode,
            None => Mode::Linear,
        };
        Choice {
            nbits: self.nbits.unwrap_or(default.nbits),
            mode,
            lut: self.lut.clone().or_else(|| default.lut.clone()),
        }
    }
}

/// Everything that decides a plan.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// The model-wide choice.
    pub default: Choice,
    /// coremltools' selector.
    pub selector: Selector,
    /// Layer names or glob patterns to leave alone.
    pub skip_layers: Vec<String>,
    /// Per-layer overrides: an exact name beats a pattern, the longest pattern wins.
    pub overrides: Vec<Override>,
    /// Apply coremltools' pre-quantization layer fusion (bugs fixed).
    pub fuse_layers: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn choice(nbits: u8, mode: Mode) -> Choice {
        Choice {
            nbits,
            mode,
            lut: None,
        }
    }

    fn ov(nbits: Option<u8>, mode: Option<Mode>) -> Override {
        Override {
            pattern: "x".into(),
            skip: false,
            nbits,
            mode,
            lut: None,
        }
    }

    #[test]
    fn nbits_16_without_a_mode_is_float16_whatever_is_inherited() {
        for top in Mode::ALL {
            let c = ov(Some(16), None).choice(&choice(8, top));
            assert_eq!(c, choice(16, Mode::Linear), "{top:?}");
        }
        let written = ov(Some(16), Some(Mode::LinearSymmetric));
        assert_eq!(
            written.choice(&choice(8, Mode::Linear)),
            choice(16, Mode::LinearSymmetric)
        );
        let inherited_nbits = ov(None, None).choice(&choice(16, Mode::LinearSymmetric));
        assert_eq!(inherited_nbits, choice(16, Mode::LinearSymmetric));
        let other = ov(Some(4), None).choice(&choice(8, Mode::KmeansLut));
        assert_eq!(other, choice(4, Mode::KmeansLut));
    }
}
