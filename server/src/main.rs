//! `coremlq-lsp`: the language server for `*.quant.json` files, over stdio.

use anyhow::bail;

const USAGE: &str = "usage: coremlq-lsp [--stdio]\n\nThe language server for coremlq quantization configs (*.quant.json); speaks LSP on stdin/stdout.";

fn main() -> anyhow::Result<()> {
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            // Editors' clients add it; stdio is the only transport.
            "--stdio" => {}
            "--version" | "-V" => {
                println!("coremlq-lsp {}", env!("CARGO_PKG_VERSION"));
                return Ok(());
            }
            "--help" | "-h" => {
                println!("{USAGE}");
                return Ok(());
            }
            other => bail!("unknown argument {other:?}\n{USAGE}"),
        }
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(coremlq_lsp::serve(tokio::io::stdin(), tokio::io::stdout()));
    // A thread may still be blocked reading stdin: do not wait for it.
    runtime.shutdown_background();
    Ok(())
}
