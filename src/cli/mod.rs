//! The subcommands of the `coremlq` binary, one file each.

pub mod check;
pub mod inspect;
pub mod plan;
pub mod quantize;
pub mod quantize_configs;
