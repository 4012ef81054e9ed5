//! The safe write: a temp file next to the output, fsync, re-read and verify, then rename.
//! The input is never written, and nothing is left behind on error or cancellation.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use super::error::QuantError;
use super::execute::CancelToken;
use crate::model::ModelFile;

pub(crate) fn io(path: &Path) -> impl Fn(std::io::Error) -> QuantError + '_ {
    move |source| QuantError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The folder an output goes into (`.` for a bare file name): where its temp file is made.
pub(crate) fn folder_of(output: &Path) -> PathBuf {
    match output.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// The canonical form of a path that may not exist yet (its folder must).
pub(crate) fn canonical_target(path: &Path) -> Option<PathBuf> {
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
    write_file_verified(input, output, output, expected, cancel, sync, fill)
}

/// The steps of [`write_verified`] after the output check, also used for the model file
/// inside a package being assembled: a temp file `.coremlq-*.mlmodel.tmp` beside `output`,
/// `fill`, fsync (when `sync`), re-read, index and size check against `expected`, the
/// permissions of `input`, then the rename to `output` and an fsync of its folder.
/// Errors name `shown` (the path the user asked for).
pub(crate) fn write_file_verified(
    input: &Path,
    output: &Path,
    shown: &Path,
    expected: u64,
    cancel: &CancelToken,
    sync: bool,
    fill: impl FnOnce(&mut dyn Write) -> Result<(), QuantError>,
) -> Result<(), QuantError> {
    let dir = folder_of(output);
    let tmp = tempfile::Builder::new()
        .prefix(".coremlq-")
        .suffix(".mlmodel.tmp")
        .tempfile_in(&dir)
        .map_err(io(&dir))?;
    fill_file(&tmp, fill)?;
    if cancel.is_cancelled() {
        return Err(QuantError::Cancelled);
    }
    if sync {
        tmp.as_file().sync_data().map_err(io(tmp.path()))?;
    }
    let written = tmp.as_file().metadata().map_err(io(tmp.path()))?.len();
    if written != expected {
        return Err(QuantError::Verify {
            path: shown.to_path_buf(),
            message: format!("wrote {written} bytes, {expected} were planned"),
        });
    }
    let reread = ModelFile::open(tmp.path()).map_err(|e| QuantError::Verify {
        path: shown.to_path_buf(),
        message: format!("the written file does not index: {e}"),
    })?;
    if reread.index.file_bytes != expected {
        return Err(QuantError::Verify {
            path: shown.to_path_buf(),
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
        path: shown.to_path_buf(),
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

/// Runs `fill` on the temp file: on Linux through a [`DirectWriter`] where the file system
/// allows direct I/O, else buffered with early writeback.
fn fill_file(
    tmp: &tempfile::NamedTempFile,
    fill: impl FnOnce(&mut dyn Write) -> Result<(), QuantError>,
) -> Result<(), QuantError> {
    #[cfg(target_os = "linux")]
    if let Some(mut w) = DirectWriter::open(tmp.as_file()) {
        fill(&mut w)?;
        return w.finish().map_err(io(tmp.path()));
    }
    let mut w = BufWriter::with_capacity(1 << 20, EarlyWriteback::new(tmp.as_file()));
    fill(&mut w)?;
    w.flush().map_err(io(tmp.path()))
}

/// Bytes written between two requests to start writing back (Linux).
const WRITEBACK_STEP: u64 = 16 << 20;

/// A file writer that asks the kernel to start writing back each finished stretch of the
/// file (`sync_file_range(SYNC_FILE_RANGE_WRITE)`, Linux), so that the disk works while the
/// rest is produced and the final fsync has little left to do. Elsewhere a plain writer.
struct EarlyWriteback<'f> {
    file: &'f std::fs::File,
    written: u64,
    started: u64,
}

impl<'f> EarlyWriteback<'f> {
    fn new(file: &'f std::fs::File) -> Self {
        EarlyWriteback {
            file,
            written: 0,
            started: 0,
        }
    }
}

impl Write for EarlyWriteback<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.file.write(buf)?;
        self.written += n as u64;
        if self.written - self.started >= WRITEBACK_STEP {
            #[cfg(target_os = "linux")]
            {
                use std::os::unix::io::AsRawFd;
                if let (Ok(from), Ok(len)) = (
                    libc::off64_t::try_from(self.started),
                    libc::off64_t::try_from(self.written - self.started),
                ) {
                    // SAFETY: a plain system call on an open descriptor we borrow; it only
                    // schedules I/O. Best effort: the fsync before the rename is what counts.
                    unsafe {
                        libc::sync_file_range(
                            self.file.as_raw_fd(),
                            from,
                            len,
                            libc::SYNC_FILE_RANGE_WRITE,
                        );
                    }
                }
            }
            self.started = self.written;
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

/// Alignment of direct writes: buffer address, file offset and length (the largest logical
/// block size in use).
#[cfg(target_os = "linux")]
const DIRECT_ALIGN: usize = 4096;
/// A huge page (x86-64, most of aarch64): the alignment of the direct-write buffer.
#[cfg(target_os = "linux")]
const HUGE_PAGE: usize = 2 << 20;
/// Bytes gathered before each direct write.
#[cfg(target_os = "linux")]
const DIRECT_CHUNK: usize = 4 << 20;

/// Writes a new file with `O_DIRECT` (Linux): the bytes are gathered in one aligned buffer
/// and handed to the disk from there, instead of being copied into freshly allocated
/// page-cache pages (which costs more than the conversion itself) and written back at the
/// fsync. The last block is padded and the file then cut to its exact length. Where the
/// file system refuses direct I/O, it falls back to ordinary positioned writes of the same
/// bytes. [`finish`](Self::finish) must be called after the last write.
#[cfg(target_os = "linux")]
struct DirectWriter<'f> {
    /// The `O_DIRECT` descriptor, until a write is refused.
    direct: Option<std::fs::File>,
    /// The ordinary descriptor of the same file (the fallback).
    plain: &'f std::fs::File,
    buf: Vec<u8>,
    /// Offset of the aligned part of `buf`.
    start: usize,
    /// Bytes gathered in the aligned part.
    fill: usize,
    /// File offset of the gathered bytes.
    pos: u64,
}

#[cfg(target_os = "linux")]
impl<'f> DirectWriter<'f> {
    /// Opens the new, empty file behind `plain` a second time for direct writes, if the
    /// file system allows it.
    fn open(plain: &'f std::fs::File) -> Option<DirectWriter<'f>> {
        use std::os::unix::fs::OpenOptionsExt;
        use std::os::unix::io::AsRawFd;
        // Reopened through the descriptor, not the path: the very same file even if its
        // name were replaced meanwhile (no /proc: no direct I/O).
        let direct = std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_DIRECT)
            .open(format!("/proc/self/fd/{}", plain.as_raw_fd()))
            .ok()?;
        // Aligned on a huge page, and backed by huge pages where the system allows: the
        // disk then gets each write as a few large segments instead of a thousand pages.
        let buf = vec![0u8; DIRECT_CHUNK + HUGE_PAGE];
        let start = buf.as_ptr().align_offset(HUGE_PAGE);
        if start >= HUGE_PAGE {
            return None;
        }
        crate::quant::kernels::pack::advise_huge(buf.as_ptr(), buf.len());
        Some(DirectWriter {
            direct: Some(direct),
            plain,
            buf,
            start,
            fill: 0,
            pos: 0,
        })
    }

    /// Writes the first `len` gathered bytes (a multiple of the alignment while direct)
    /// at `pos`.
    fn drain(&mut self, len: usize) -> std::io::Result<()> {
        use std::os::unix::fs::FileExt;
        let chunk = self
            .buf
            .get(self.start..self.start + len)
            .ok_or(std::io::ErrorKind::InvalidInput)?;
        if let Some(d) = &self.direct {
            match d.write_all_at(chunk, self.pos) {
                Ok(()) => {
                    self.pos += len as u64;
                    self.fill = 0;
                    return Ok(());
                }
                // The file system (or this buffer) does not do direct I/O: write the same
                // bytes the ordinary way from here on (a partial direct write is simply
                // written again).
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) => self.direct = None,
                Err(e) => return Err(e),
            }
        }
        self.plain.write_all_at(chunk, self.pos)?;
        self.pos += len as u64;
        self.fill = 0;
        Ok(())
    }

    /// Writes what is left and cuts the file to the exact number of bytes written.
    fn finish(mut self) -> std::io::Result<()> {
        let tail = self.fill;
        if tail == 0 {
            return Ok(());
        }
        if self.direct.is_none() {
            return self.drain(tail);
        }
        // A direct write covers whole blocks: pad the last one with zeros, then cut the
        // padding off (also when this very write fell back to the ordinary descriptor).
        let exact = self.pos + tail as u64;
        let padded = tail.next_multiple_of(DIRECT_ALIGN);
        if let Some(pad) = self.buf.get_mut(self.start + tail..self.start + padded) {
            pad.fill(0);
        }
        self.drain(padded)?;
        self.plain.set_len(exact)
    }
}

#[cfg(target_os = "linux")]
impl Write for DirectWriter<'_> {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        let room = DIRECT_CHUNK - self.fill;
        let n = data.len().min(room);
        let at = self.start + self.fill;
        self.buf
            .get_mut(at..at + n)
            .ok_or(std::io::ErrorKind::InvalidInput)?
            .copy_from_slice(&data[..n]);
        self.fill += n;
        if self.fill == DIRECT_CHUNK {
            self.drain(DIRECT_CHUNK)?;
        }
        Ok(n)
    }

    /// Nothing to do: gathered bytes go out in aligned chunks and at [`finish`].
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Deterministic bytes that differ from zero padding.
    fn pattern(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 7 + i / 251) as u8 | 1).collect()
    }

    /// Writes `pieces` through `fill_file` into a temp file under `dir`; returns the bytes.
    fn written(dir: &Path, pieces: &[usize]) -> (Vec<u8>, Vec<u8>) {
        let tmp = tempfile::Builder::new().tempfile_in(dir).unwrap();
        let total: usize = pieces.iter().sum();
        let data = pattern(total);
        fill_file(&tmp, |out| {
            let mut at = 0;
            for &p in pieces {
                out.write_all(&data[at..at + p]).unwrap();
                at += p;
            }
            Ok(())
        })
        .unwrap();
        (std::fs::read(tmp.path()).unwrap(), data)
    }

    #[test]
    fn the_file_holds_exactly_the_bytes_written_whatever_the_pieces() {
        // A folder on the build's disk (direct I/O) and the system temp folder (which may
        // refuse it: then the fallback writes).
        let here = Path::new(env!("CARGO_MANIFEST_DIR")).join("target");
        let _ = std::fs::create_dir_all(&here);
        let dirs = [
            tempfile::tempdir_in(&here).unwrap(),
            tempfile::tempdir().unwrap(),
        ];
        let chunk = DIRECT_CHUNK;
        let cases: Vec<Vec<usize>> = vec![
            vec![],
            vec![1],
            vec![4096],
            vec![4095, 2],
            vec![3, chunk - 3],
            vec![chunk],
            vec![chunk + 1],
            vec![100, chunk * 2 + 5000, 17, 1, 4096 * 3],
            vec![1 << 20; 19],
        ];
        for dir in &dirs {
            for pieces in &cases {
                let (got, want) = written(dir.path(), pieces);
                assert!(
                    got == want,
                    "{pieces:?}: {} vs {} bytes",
                    got.len(),
                    want.len()
                );
            }
        }
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_refused_direct_write_falls_back_to_the_same_bytes() {
        let here = Path::new(env!("CARGO_MANIFEST_DIR")).join("target");
        let _ = std::fs::create_dir_all(&here);
        let dir = tempfile::tempdir_in(&here).unwrap();
        for pieces in [
            vec![10usize],
            vec![DIRECT_CHUNK + 10, 5],
            vec![3 * DIRECT_CHUNK],
        ] {
            let tmp = tempfile::Builder::new().tempfile_in(dir.path()).unwrap();
            let Some(mut w) = DirectWriter::open(tmp.as_file()) else {
                return; // no direct I/O here: the fallback is all there is
            };
            // A misaligned buffer: the kernel refuses the direct write (EINVAL).
            w.start += 1;
            let total: usize = pieces.iter().sum();
            let data = pattern(total);
            let mut at = 0;
            for p in &pieces {
                w.write_all(&data[at..at + p]).unwrap();
                at += p;
            }
            w.finish().unwrap();
            assert!(std::fs::read(tmp.path()).unwrap() == data, "{pieces:?}");
        }
    }
}
