//! `coremlq quantize`.

use std::process::ExitCode;

/// Arguments of `coremlq quantize`.
#[derive(clap::Args)]
pub struct Args {}

/// Runs `coremlq quantize`.
pub fn run(_args: Args) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`coremlq quantize` is not implemented yet")
}
