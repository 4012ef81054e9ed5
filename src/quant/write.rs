//! The safe write: a temp file next to the output, fsync, re-read and verify, then rename.
//! The input is never written, and nothing is left behind on error or cancellation.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use super::error::QuantError;
use super::execute::CancelToken;
use crate::model::ModelFile;

fn io(path: &Path) -> impl Fn(std::io::Error) -> QuantError + '_ {
    move |source| QuantError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The canonical form of a path that may not exist yet (its folder must).
fn canonical_target(path: &Path) -> Option<PathBuf> {
    if let Ok(p) = std::fs::canonicalize(path) {
        return Some(p);
    }
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let name = path.file_name()?;
    std::fs::canonicalize(parent).ok().map(|p| p.join(name))
}

/// Checks that `output` may be written: not the input (nor a link to it), and not an
/// existing file that is something other than a Core ML model.
pub fn check_output(input: &Path, output: &Path) -> Result<(), QuantError> {
    let refuse = || QuantError::OutputIsInput {
        path: output.to_path_buf(),
    };
    let input_c = std::fs::canonicalize(input).map_err(io(input))?;
    if canonical_target(output).is_some_and(|o| o == input_c) {
        return Err(refuse());
    }
    if let Ok(meta) = std::fs::symlink_metadata(output) {
        if meta.file_type().is_symlink() {
            // A dangling or foreign link is refused too: renaming over it would silently
            // replace the link, which is rarely what the user meant.
            return Err(QuantError::RefuseOverwrite {
                path: output.to_path_buf(),
            });
        }
        if meta.is_dir() || ModelFile::open(output).is_err() {
            return Err(QuantError::RefuseOverwrite {
                path: output.to_path_buf(),
            });
        }
    }
    Ok(())
}

/// Writes `output` through a temp file: `fill` writes the bytes, the file is synced (when
/// `sync`), re-read
/// and indexed, its size compared with `expected`, and only then renamed into place.
pub fn write_verified(
    input: &Path,
    output: &Path,
    expected: u64,
    cancel: &CancelToken,
    sync: bool,
    fill: impl FnOnce(&mut dyn Write) -> Result<(), QuantError>,
) -> Result<(), QuantError> {
    check_output(input, output)?;
    let dir = match output.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let tmp = tempfile::Builder::new()
        .prefix(".coremlq-")
        .suffix(".mlmodel.tmp")
        .tempfile_in(&dir)
        .map_err(io(&dir))?;
    {
        let mut w = BufWriter::with_capacity(1 << 20, tmp.as_file());
        fill(&mut w)?;
        w.flush().map_err(io(tmp.path()))?;
    }
    if cancel.is_cancelled() {
        return Err(QuantError::Cancelled);
    }
    if sync {
        tmp.as_file().sync_data().map_err(io(tmp.path()))?;
    }
    let written = tmp.as_file().metadata().map_err(io(tmp.path()))?.len();
    if written != expected {
        return Err(QuantError::Verify {
            path: output.to_path_buf(),
            message: format!("wrote {written} bytes, {expected} were planned"),
        });
    }
    let reread = ModelFile::open(tmp.path()).map_err(|e| QuantError::Verify {
        path: output.to_path_buf(),
        message: format!("the written file does not index: {e}"),
    })?;
    if reread.index.file_bytes != expected {
        return Err(QuantError::Verify {
            path: output.to_path_buf(),
            message: format!(
                "re-read {} bytes, {expected} were planned",
                reread.index.file_bytes
            ),
        });
    }
    drop(reread);
    // The temp file is private (0600); the quantized model gets its source's permissions.
    if let Ok(meta) = std::fs::metadata(input) {
        tmp.as_file()
            .set_permissions(meta.permissions())
            .map_err(io(tmp.path()))?;
    }
    if cancel.is_cancelled() {
        return Err(QuantError::Cancelled);
    }
    tmp.persist(output).map_err(|e| QuantError::Io {
        path: output.to_path_buf(),
        source: e.error,
    })?;
    // Make the rename durable too (best effort: not every platform can sync a folder).
    if sync {
        if let Ok(d) = std::fs::File::open(&dir) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}
