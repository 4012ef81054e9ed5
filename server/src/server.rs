//! The `LanguageServer` implementation: lifecycle, document sync and settings here; each
//! feature's conversion lives in its own file.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tower_lsp_server::jsonrpc::{Error, Result};
use tower_lsp_server::ls_types::*;
use tower_lsp_server::{Client, LanguageServer};

use crate::config::{Settings, SECTION};
use crate::line_index::Encoding;
use crate::state::{ClientFlags, Inner, Snapshot};
use crate::{
    code_action, code_lens, commands, completion, diagnostics, hover, inlay_hints, symbols, watcher,
};

/// The server; one per client connection.
pub struct Backend {
    inner: Arc<Inner>,
}

impl Backend {
    /// A server talking to `client`.
    pub fn new(client: Client) -> Backend {
        Backend {
            inner: Arc::new(Inner::new(client)),
        }
    }

    /// The shared state (for handlers and tests).
    pub fn inner(&self) -> &Arc<Inner> {
        &self.inner
    }

    /// Runs `f` on a snapshot of the document off the event loop; `None` when the document
    /// is not open.
    async fn with_snapshot<T, F>(&self, uri: &Uri, f: F) -> Result<Option<T>>
    where
        T: Send + 'static,
        F: FnOnce(Snapshot) -> Option<T> + Send + 'static,
    {
        let Some(snap) = self.inner.snapshot(uri) else {
            return Ok(None);
        };
        tokio::task::spawn_blocking(move || f(snap))
            .await
            .map_err(|e| Error {
                message: e.to_string().into(),
                ..Error::internal_error()
            })
    }

    /// `window/workDoneProgress/cancel`: stops the job running under that token.
    pub async fn work_done_progress_cancel(&self, params: WorkDoneProgressCancelParams) {
        self.inner.jobs.cancel(&commands::token_key(&params.token));
    }

    /// A message that was not JSON: reported in the client's log, otherwise ignored.
    pub async fn malformed_message(&self, params: Value) {
        let error = params
            .get("error")
            .and_then(Value::as_str)
            .unwrap_or("unknown error");
        self.inner
            .client
            .log_message(
                MessageType::ERROR,
                format!("coremlq-lsp: ignored a malformed message: {error}"),
            )
            .await;
    }

    /// Pulls settings through `workspace/configuration` when the client offers it.
    async fn pull_settings(inner: Arc<Inner>) {
        if !inner.session().flags.configuration {
            return;
        }
        let item = ConfigurationItem {
            scope_uri: None,
            section: Some(SECTION.into()),
        };
        if let Ok(values) = inner.client.configuration(vec![item]).await {
            if let Some(value) = values.first().filter(|v| !v.is_null()) {
                let settings = Settings::from_value(value);
                inner.update_session(|s| s.settings = settings);
            }
        }
    }

    /// Registers the model-file watcher with the client, or starts the server-side one.
    async fn watch_models(inner: Arc<Inner>) {
        let session = inner.session();
        if session.flags.watch_files {
            let watchers: Vec<FileSystemWatcher> = ["**/*.mlmodel", "**/*.mlpackage/**"]
                .into_iter()
                .map(|glob| FileSystemWatcher {
                    glob_pattern: GlobPattern::String(glob.into()),
                    kind: None,
                })
                .collect();
            let options = DidChangeWatchedFilesRegistrationOptions { watchers };
            let registration = Registration {
                id: "coremlq-model-watcher".into(),
                method: "workspace/didChangeWatchedFiles".into(),
                register_options: serde_json::to_value(options).ok(),
            };
            if inner
                .client
                .register_capability(vec![registration])
                .await
                .is_ok()
            {
                inner.update_session(|s| s.client_watches = true);
                return;
            }
        }
        watcher::spawn_poller(&inner);
    }
}

fn folder_paths(params: &InitializeParams) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = params
        .workspace_folders
        .iter()
        .flatten()
        .filter_map(|f| f.uri.to_file_path().map(|p| p.into_owned()))
        .collect();
    #[allow(deprecated)]
    if out.is_empty() {
        if let Some(root) = params.root_uri.as_ref().and_then(|u| u.to_file_path()) {
            out.push(root.into_owned());
        }
    }
    out
}

/// What the server announces.
pub fn capabilities(encoding: Encoding) -> ServerCapabilities {
    ServerCapabilities {
        position_encoding: Some(encoding.kind()),
        text_document_sync: Some(TextDocumentSyncCapability::Options(
            TextDocumentSyncOptions {
                open_close: Some(true),
                change: Some(TextDocumentSyncKind::INCREMENTAL),
                ..Default::default()
            },
        )),
        completion_provider: Some(CompletionOptions {
            trigger_characters: Some(vec!["\"".into(), ":".into(), "/".into()]),
            ..Default::default()
        }),
        hover_provider: Some(HoverProviderCapability::Simple(true)),
        code_action_provider: Some(CodeActionProviderCapability::Options(CodeActionOptions {
            code_action_kinds: Some(vec![CodeActionKind::QUICKFIX, code_action::QUANTIZE_KIND]),
            ..Default::default()
        })),
        execute_command_provider: Some(ExecuteCommandOptions {
            commands: commands::ALL.iter().map(|c| (*c).to_owned()).collect(),
            ..Default::default()
        }),
        inlay_hint_provider: Some(OneOf::Left(true)),
        code_lens_provider: Some(CodeLensOptions {
            resolve_provider: Some(false),
        }),
        document_symbol_provider: Some(OneOf::Left(true)),
        ..Default::default()
    }
}

impl LanguageServer for Backend {
    async fn initialize(&self, params: InitializeParams) -> Result<InitializeResult> {
        let offered = params
            .capabilities
            .general
            .as_ref()
            .and_then(|g| g.position_encodings.as_deref());
        let encoding = Encoding::negotiate(offered);
        let flags = ClientFlags::from_capabilities(&params.capabilities);
        let settings = params
            .initialization_options
            .as_ref()
            .map(Settings::from_value)
            .unwrap_or_default();
        let folders = folder_paths(&params);
        self.inner.update_session(|s| {
            s.encoding = encoding;
            s.flags = flags;
            s.settings = settings;
            s.workspace_folders = folders;
        });
        Ok(InitializeResult {
            capabilities: capabilities(encoding),
            server_info: Some(ServerInfo {
                name: "coremlq-lsp".into(),
                version: Some(env!("CARGO_PKG_VERSION").into()),
            }),
            offset_encoding: None,
        })
    }

    async fn initialized(&self, _: InitializedParams) {
        // Off the notification's future: a client that never answers (or an `exit`
        // arriving first) must not keep the server from finishing.
        let inner = self.inner.clone();
        tokio::spawn(async move {
            Backend::pull_settings(inner.clone()).await;
            Backend::watch_models(inner).await;
        });
    }

    async fn shutdown(&self) -> Result<()> {
        self.inner.jobs.cancel_all();
        Ok(())
    }

    async fn did_open(&self, params: DidOpenTextDocumentParams) {
        let doc = params.text_document;
        self.inner
            .docs()
            .open(doc.uri.clone(), doc.version, &doc.text);
        diagnostics::schedule(&self.inner, &doc.uri, Duration::ZERO);
    }

    async fn did_change(&self, params: DidChangeTextDocumentParams) {
        let session = self.inner.session();
        let uri = params.text_document.uri;
        // Applied before any await, so edits stay in order.
        let applied = self
            .inner
            .docs()
            .change(
                &uri,
                params.text_document.version,
                &params.content_changes,
                session.encoding,
            )
            .is_some();
        if applied {
            let delay = Duration::from_millis(session.settings.diagnostics_delay_ms);
            diagnostics::schedule(&self.inner, &uri, delay);
        }
    }

    async fn did_close(&self, params: DidCloseTextDocumentParams) {
        let uri = params.text_document.uri;
        self.inner.docs().close(&uri);
        diagnostics::clear(&self.inner, uri).await;
    }

    async fn did_change_configuration(&self, params: DidChangeConfigurationParams) {
        if !params.settings.is_null() {
            let settings = Settings::from_value(&params.settings);
            self.inner.update_session(|s| s.settings = settings);
        }
        let inner = self.inner.clone();
        tokio::spawn(async move {
            Backend::pull_settings(inner.clone()).await;
            diagnostics::schedule_all(&inner);
        });
    }

    async fn did_change_watched_files(&self, params: DidChangeWatchedFilesParams) {
        for change in &params.changes {
            if let Some(path) = change.uri.to_file_path() {
                self.inner.models.invalidate_under(&path);
            }
        }
        diagnostics::schedule_all(&self.inner);
    }

    async fn completion(&self, params: CompletionParams) -> Result<Option<CompletionResponse>> {
        let uri = params.text_document_position.text_document.uri.clone();
        self.with_snapshot(&uri, move |snap| completion::handle(&snap, &params))
            .await
    }

    async fn hover(&self, params: HoverParams) -> Result<Option<Hover>> {
        let uri = params
            .text_document_position_params
            .text_document
            .uri
            .clone();
        self.with_snapshot(&uri, move |snap| hover::handle(&snap, &params))
            .await
    }

    async fn code_action(&self, params: CodeActionParams) -> Result<Option<CodeActionResponse>> {
        let uri = params.text_document.uri.clone();
        self.with_snapshot(&uri, move |snap| code_action::handle(&snap, &params))
            .await
    }

    async fn inlay_hint(&self, params: InlayHintParams) -> Result<Option<Vec<InlayHint>>> {
        let uri = params.text_document.uri.clone();
        self.with_snapshot(&uri, move |snap| inlay_hints::handle(&snap, &params))
            .await
    }

    async fn code_lens(&self, params: CodeLensParams) -> Result<Option<Vec<CodeLens>>> {
        let uri = params.text_document.uri.clone();
        self.with_snapshot(&uri, move |snap| code_lens::handle(&snap, &params))
            .await
    }

    async fn document_symbol(
        &self,
        params: DocumentSymbolParams,
    ) -> Result<Option<DocumentSymbolResponse>> {
        let uri = params.text_document.uri.clone();
        self.with_snapshot(&uri, move |snap| symbols::handle(&snap, &params))
            .await
    }

    async fn execute_command(&self, params: ExecuteCommandParams) -> Result<Option<Value>> {
        commands::execute(&self.inner, params).await
    }
}
