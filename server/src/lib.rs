//! `coremlq-lsp`: the language server for `*.quant.json` quantization configs.
//!
//! This crate converts and schedules; the analysis, plan and engine of the `coremlq`
//! library do the work, and its `ide` module computes every feature without protocol types.
//! One file per LSP feature; [`line_index`] is the only place positions are converted.

pub mod analysis;
pub mod code_action;
pub mod code_lens;
pub mod commands;
pub mod completion;
pub mod config;
pub mod diagnostics;
pub mod documents;
pub mod hover;
pub mod inlay_hints;
pub mod line_index;
pub mod model_cache;
pub mod quality;
pub mod server;
pub mod state;
pub mod symbols;
pub mod transport;
pub mod watcher;

pub use server::Backend;

use tokio::io::{AsyncRead, AsyncWrite};
use tower_lsp_server::{ClientSocket, LspService, Server};

/// The service with every method the server handles, including the custom notifications.
pub fn service() -> (LspService<Backend>, ClientSocket) {
    LspService::build(Backend::new)
        .custom_method(
            "window/workDoneProgress/cancel",
            Backend::work_done_progress_cancel,
        )
        .custom_method(transport::MALFORMED, Backend::malformed_message)
        .finish()
}

/// Serves one client over a byte stream pair until `exit` (or the end of the input).
pub async fn serve<I, O>(input: I, output: O)
where
    I: AsyncRead + Unpin + Send + 'static,
    O: AsyncWrite,
{
    let (service, socket) = service();
    let (framed_in, framed_out) = tokio::io::duplex(1 << 16);
    let repair = tokio::spawn(transport::sanitize(input, framed_out));
    Server::new(framed_in, output, socket).serve(service).await;
    repair.abort();
}
