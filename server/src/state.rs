//! Server state shared by the handlers: the session negotiated at `initialize`, the open
//! documents, the model cache, and request snapshots for work done off the event loop.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use ropey::Rope;
use tower_lsp_server::ls_types::{ClientCapabilities, MarkupKind, Uri};
use tower_lsp_server::Client;

use crate::config::Settings;
use crate::diagnostics::Scheduler;
use crate::documents::Documents;
use crate::line_index::Encoding;
use crate::model_cache::ModelCache;

/// What the client can do, distilled from its capabilities.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClientFlags {
    /// Completion items may be snippets.
    pub snippets: bool,
    /// Hover text may be markdown.
    pub markdown_hover: bool,
    /// `workspace/didChangeWatchedFiles` may be registered dynamically.
    pub watch_files: bool,
    /// `workspace/configuration` is answered.
    pub configuration: bool,
    /// `window/workDoneProgress/create` is supported.
    pub work_done_progress: bool,
    /// `window/showMessageRequest` is answered with a chosen action.
    pub message_actions: bool,
}

impl ClientFlags {
    /// Reads the flags from the client's capabilities.
    pub fn from_capabilities(caps: &ClientCapabilities) -> ClientFlags {
        let td = caps.text_document.as_ref();
        let ws = caps.workspace.as_ref();
        let win = caps.window.as_ref();
        ClientFlags {
            snippets: td
                .and_then(|t| t.completion.as_ref())
                .and_then(|c| c.completion_item.as_ref())
                .and_then(|i| i.snippet_support)
                .unwrap_or(false),
            markdown_hover: td
                .and_then(|t| t.hover.as_ref())
                .and_then(|h| h.content_format.as_ref())
                .is_some_and(|f| f.first() == Some(&MarkupKind::Markdown)),
            watch_files: ws
                .and_then(|w| w.did_change_watched_files.as_ref())
                .and_then(|d| d.dynamic_registration)
                .unwrap_or(false),
            configuration: ws.and_then(|w| w.configuration).unwrap_or(false),
            work_done_progress: win.and_then(|w| w.work_done_progress).unwrap_or(false),
            message_actions: win.and_then(|w| w.show_message.as_ref()).is_some(),
        }
    }
}

/// What was agreed at `initialize` and changed by settings.
#[derive(Debug, Clone, Default)]
pub struct Session {
    /// Position encoding.
    pub encoding: Encoding,
    /// Client abilities.
    pub flags: ClientFlags,
    /// User settings.
    pub settings: Settings,
    /// Workspace folders (outputs outside them need confirmation).
    pub workspace_folders: Vec<PathBuf>,
    /// Whether the client watches model files for us.
    pub client_watches: bool,
}

/// Everything the handlers share.
pub struct Inner {
    /// The connection to the client.
    pub client: Client,
    /// Negotiated session (written at initialize and on settings changes).
    pub session: RwLock<Session>,
    /// Open documents; edits are applied under this lock before any await.
    pub docs: Mutex<Documents>,
    /// Indexed models.
    pub models: Arc<ModelCache>,
    /// Diagnostics scheduling.
    pub diagnostics: Scheduler,
    /// Running quantize jobs.
    pub jobs: crate::commands::Jobs,
}

impl Inner {
    /// A new state for a client connection.
    pub fn new(client: Client) -> Inner {
        Inner {
            client,
            session: RwLock::new(Session::default()),
            docs: Mutex::new(Documents::default()),
            models: Arc::new(ModelCache::default()),
            diagnostics: Scheduler::default(),
            jobs: crate::commands::Jobs::default(),
        }
    }

    /// The documents, tolerating a lock poisoned by a panicking handler.
    pub fn docs(&self) -> MutexGuard<'_, Documents> {
        self.docs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A copy of the session.
    pub fn session(&self) -> Session {
        self.session
            .read()
            .map(|s| s.clone())
            .unwrap_or_else(|e| e.into_inner().clone())
    }

    /// Changes the session.
    pub fn update_session(&self, f: impl FnOnce(&mut Session)) {
        let mut guard = self
            .session
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut guard);
    }

    /// A snapshot of one open document for a request, or `None` when it is not open.
    pub fn snapshot(&self, uri: &Uri) -> Option<Snapshot> {
        let session = self.session();
        let docs = self.docs();
        let doc = docs.get(uri)?;
        Some(Snapshot {
            uri: uri.clone(),
            version: doc.version,
            rope: doc.rope.clone(),
            text: doc.text.clone(),
            config_path: uri.to_file_path().map(|p| p.into_owned()),
            session,
            models: self.models.clone(),
        })
    }
}

/// An immutable view of one document and the session, to work with off the event loop.
#[derive(Clone)]
pub struct Snapshot {
    /// The document.
    pub uri: Uri,
    /// Its version.
    pub version: i32,
    /// Its text, for position conversion.
    pub rope: Rope,
    /// Its text.
    pub text: Arc<str>,
    /// The config file's path, for `file:` URIs.
    pub config_path: Option<PathBuf>,
    /// The session when the snapshot was taken.
    pub session: Session,
    /// The model cache.
    pub models: Arc<ModelCache>,
}

impl Snapshot {
    /// The folder that relative paths in the config are resolved against.
    pub fn base_dir(&self) -> Option<&Path> {
        self.config_path.as_deref().and_then(Path::parent)
    }

    /// An LSP range for a byte range of this document.
    pub fn range(&self, bytes: std::ops::Range<usize>) -> tower_lsp_server::ls_types::Range {
        crate::line_index::range(&self.rope, bytes, self.session.encoding)
    }

    /// The byte offset of an LSP position in this document.
    pub fn offset(&self, pos: tower_lsp_server::ls_types::Position) -> usize {
        crate::line_index::offset(&self.rope, pos, self.session.encoding)
    }
}
