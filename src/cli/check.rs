//! `coremlq check`.

use std::process::ExitCode;

/// Arguments of `coremlq check`.
#[derive(clap::Args)]
pub struct Args {}

/// Runs `coremlq check`.
pub fn run(_args: Args) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`coremlq check` is not implemented yet")
}
