//! `coremlq plan`.

use std::process::ExitCode;

/// Arguments of `coremlq plan`.
#[derive(clap::Args)]
pub struct Args {}

/// Runs `coremlq plan`.
pub fn run(_args: Args) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`coremlq plan` is not implemented yet")
}
