//! Quantization: settings in coremltools' vocabulary, the plan, the exact size estimate,
//! the numeric kernels and the lossless writer.

pub mod plan;
pub mod settings;

pub use plan::{LayerDecision, LayerPlan, Plan, TensorAction, TensorPlan};
pub use settings::{Choice, Mode, Selector, Settings, Target};
