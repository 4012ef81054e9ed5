//! The plan: for every layer and every WeightParams, what happens and why.

use super::Target;
use crate::model::LayerId;

/// The decision for every layer and tensor of a model (built by the engine).
#[derive(Debug, Clone, Default)]
pub struct Plan {
    /// One entry per layer of the index, same order.
    pub layers: Vec<LayerPlan>,
    /// One entry per WeightParams of the index, same order.
    pub tensors: Vec<TensorPlan>,
}

/// What happens to one layer.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerPlan {
    /// The decision.
    pub decision: LayerDecision,
    /// Why, in a few words (`layers."conv*"`, `selector: skip_layer_types`, …).
    pub reason: String,
}

/// A layer's fate.
#[derive(Debug, Clone, PartialEq)]
pub enum LayerDecision {
    /// Its tensors are converted.
    Quantize(Target),
    /// Left alone.
    Skip,
    /// Folded into another layer and deleted.
    FusedInto(LayerId),
    /// Holds weights that coremltools never converts (PReLU, layerNorm, conv3d, custom).
    NotQuantizable,
    /// Holds no weights.
    NoWeights,
}

/// What happens to one WeightParams.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorPlan {
    /// The action.
    pub action: TensorAction,
    /// Serialized size before.
    pub bytes_before: u64,
    /// Serialized size after (exact).
    pub bytes_after: u64,
}

/// A tensor's fate.
#[derive(Debug, Clone, PartialEq)]
pub enum TensorAction {
    /// Unchanged.
    Keep,
    /// Converted.
    Convert(Target),
}
