//! coremlq: inspect, plan and quantize the weights of Core ML neural-network models.
//!
//! Layers, each depending only on those above it (see `ARCHITECTURE.md`):
//! [`model`] reads `.mlmodel` files without copying weights, [`quant`] plans, estimates and
//! executes quantization, [`config`] parses and analyses `*.quant.json` files.

pub mod config;
pub mod format;
pub mod ide;
pub mod model;
pub mod quant;
