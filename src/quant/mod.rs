//! Quantization: settings in coremltools' vocabulary, the plan, the exact size estimate,
//! the numeric kernels and the lossless writer.

pub mod encode;
pub mod error;
pub mod estimate;
pub mod execute;
pub mod fusion;
pub mod kernels;
pub mod plan;
pub mod quality;
pub mod rewrite;
pub mod select;
pub mod settings;
pub mod size;
pub mod write;
pub mod write_package;

pub use error::{PlanError, PlanErrorKind, QuantError};
pub use execute::{quantize, CancelToken, Progress, Report, RunOptions};
pub use plan::{LayerDecision, LayerPlan, Plan, Reason, TensorAction, TensorPlan};
pub use settings::{Choice, Mode, Selector, Settings, Target};
