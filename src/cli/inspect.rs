//! `coremlq inspect`.

use std::process::ExitCode;

/// Arguments of `coremlq inspect`.
#[derive(clap::Args)]
pub struct Args {}

/// Runs `coremlq inspect`.
pub fn run(_args: Args) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`coremlq inspect` is not implemented yet")
}
