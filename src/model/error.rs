//! Errors from opening and indexing a model file.

use std::path::PathBuf;

/// Why a model file could not be read or indexed; messages name the file and the byte offset.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// The file could not be opened or mapped.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// The bytes are not a well-formed Core ML model.
    #[error("{path}: byte {offset}: {message}")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// Where the problem was found.
        offset: u64,
        /// What was expected there.
        message: String,
    },
    /// The file was truncated or rewritten while it was being read (memory-mapped files).
    #[error("{path} changed while it was being read (it was truncated or rewritten); nothing was written")]
    Changed {
        /// The file.
        path: PathBuf,
    },
    /// The file is something else (an LFS pointer, an empty file, a folder without a model, …).
    #[error("{path}: {message}")]
    NotAModel {
        /// The file.
        path: PathBuf,
        /// What it is instead, and what to do.
        message: String,
    },
}
