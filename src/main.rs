//! The `coremlq` command line: `inspect`, `check`, `plan` and `quantize`.

mod cli;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Inspect, check, plan and quantize the weights of Core ML neural-network models.
#[derive(Parser)]
#[command(name = "coremlq", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Show a model's type, networks, layers and weight tensors.
    Inspect(cli::inspect::Args),
    /// Check quantization configs (`*.quant.json`) and report problems.
    Check(cli::check::Args),
    /// Show what a config would do to every layer, with exact sizes.
    Plan(cli::plan::Args),
    /// Quantize a model, from configs or from command-line flags.
    Quantize(cli::quantize::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Inspect(args) => cli::inspect::run(args),
        Command::Check(args) => cli::check::run(args),
        Command::Plan(args) => cli::plan::run(args),
        Command::Quantize(args) => cli::quantize::run(args),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
