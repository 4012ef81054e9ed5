//! Opening model files: memory mapping, `.mlpackage` folders, and the index built on top.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use memmap2::Mmap;

use super::map_guard::{self, Registration};
use super::{ModelError, ModelIndex, WeightInfo};

/// Files up to this size are read into memory; larger ones are memory-mapped.
const READ_LIMIT: u64 = 16 << 20;
/// [`ModelFile::resident`] asks about one page in this many (one per MiB).
const RESIDENT_SAMPLE: usize = 256;

/// The bytes of a model file, kept alive together with its index.
pub struct ModelFile {
    /// The file holding the Model message (inside the package for an `.mlpackage`).
    pub path: PathBuf,
    bytes: Bytes,
    /// The index of the bytes.
    pub index: ModelIndex,
}

enum Bytes {
    Mapped(Mapped),
    Owned(Vec<u8>),
}

/// A memory-mapped model file and what is needed to notice that it changed underneath.
struct Mapped {
    /// Declared before `map`: fields drop in order, so the map is unregistered from the
    /// SIGBUS guard before it is unmapped.
    guard: Option<Registration>,
    map: Mmap,
    /// The file mapped (the same file even if the path is later renamed over or deleted).
    file: std::fs::File,
    /// Its size and modification time when mapped.
    len: u64,
    mtime: Option<SystemTime>,
}

impl ModelFile {
    /// Opens and indexes a `.mlmodel` file or an `.mlpackage` folder.
    ///
    /// A file larger than 16 MiB is memory-mapped with random-access advice, so indexing
    /// faults in only the pages holding field headers, never the weight payloads in between;
    /// smaller files are read into memory. A map is guarded against the file shrinking
    /// underneath ([`map_guard`]): a read of a vanished page sees zeros, and
    /// [`check_unchanged`](Self::check_unchanged) reports it. Opening checks it after
    /// indexing.
    pub fn open(path: &Path) -> Result<ModelFile, ModelError> {
        let file_path = resolve(path)?;
        let io = |source| ModelError::Io {
            path: file_path.clone(),
            source,
        };
        let meta = std::fs::metadata(&file_path).map_err(io)?;
        if meta.is_dir() {
            return Err(ModelError::NotAModel {
                path: file_path,
                message: "is a folder, not a Core ML model file".into(),
            });
        }
        if !meta.is_file() {
            // Devices, FIFOs and sockets: mapping them is wrong (`/dev/zero` maps endless
            // zeros), reading them may never end.
            return Err(ModelError::NotAModel {
                path: file_path,
                message: "is not a regular file (a device, FIFO or socket), not a Core ML model"
                    .into(),
            });
        }
        let file = std::fs::File::open(&file_path).map_err(io)?;
        let bytes = if meta.len() <= READ_LIMIT {
            // Small files are mostly skeleton: one read costs less than a page fault per
            // header, and a copy cannot fault if the file is truncated while in use.
            Bytes::Owned(read_all(&file, READ_LIMIT + 1).map_err(io)?)
        } else {
            match map(file).map_err(io)? {
                Ok(mapped) => Bytes::Mapped(mapped),
                // The map could not be guarded: a copy cannot fault.
                Err(file) => Bytes::Owned(read_all(&file, u64::MAX).map_err(io)?),
            }
        };
        let index = super::index::build(&file_path, bytes.as_slice());
        // Zeros read from a vanished page can make the walk fail or succeed: either way the
        // file changed, and that is the error to report.
        bytes.check_unchanged(&file_path)?;
        Ok(ModelFile {
            index: index?,
            path: file_path,
            bytes,
        })
    }

    /// Indexes bytes already in memory (tests, fuzzing, files being edited).
    pub fn from_bytes(path: PathBuf, bytes: Vec<u8>) -> Result<ModelFile, ModelError> {
        let index = super::index::build(&path, &bytes)?;
        Ok(ModelFile {
            path,
            bytes: Bytes::Owned(bytes),
            index,
        })
    }

    /// The whole file.
    pub fn bytes(&self) -> &[u8] {
        self.bytes.as_slice()
    }

    /// Whether the bytes read so far are those of the file as it was opened: an error when a
    /// memory-mapped file was truncated (a read of a vanished page saw zeros) or rewritten
    /// since it was opened. Every operation that reads through [`bytes`](Self::bytes) calls
    /// it when it finishes, so nothing computed from changed bytes is written or shown.
    pub fn check_unchanged(&self) -> Result<(), ModelError> {
        self.bytes.check_unchanged(&self.path)
    }

    /// The open file behind a memory-mapped model, for positioned reads of the very file
    /// the map shows (the path may since name another file); `None` when the bytes are in
    /// memory.
    pub fn mapped_file(&self) -> Option<&std::fs::File> {
        match &self.bytes {
            Bytes::Mapped(m) => Some(&m.file),
            Bytes::Owned(_) => None,
        }
    }

    /// The float32 values of a WeightParams of this file (empty when it has none).
    pub fn float_values(&self, w: &WeightInfo) -> Result<Vec<f32>, ModelError> {
        super::index::float_values(&self.path, self.bytes(), w)
    }

    /// The float16 values of a WeightParams of this file (empty when it has none).
    pub fn half_values(&self, w: &WeightInfo) -> Vec<half::f16> {
        super::index::half_values(self.bytes(), w)
    }

    /// Asks the kernel to start reading the bytes `range` of a memory-mapped file from disk
    /// (they are about to be read through the map, whose random-access advice turns off
    /// read-ahead). Nothing for a file in memory.
    pub fn prefetch(&self, range: std::ops::Range<usize>) {
        #[cfg(unix)]
        if let Bytes::Mapped(m) = &self.bytes {
            let end = range.end.min(m.map.len());
            if range.start < end {
                // The page holding `range.start` is included (the offset is rounded down).
                let _ =
                    m.map
                        .advise_range(memmap2::Advice::WillNeed, range.start, end - range.start);
            }
        }
        #[cfg(not(unix))]
        let _ = range;
    }

    /// Whether the bytes `range` are in memory: always for a file read into memory; for a
    /// memory-mapped file, whether the page cache holds them, judged from one page in every
    /// `RESIDENT_SAMPLE` and the last (asking for every page costs as much as reading
    /// them). Reading cached pages through the map is cheap, while a fault on an uncached
    /// page of this random-access map reads one page at a time. `false` where it cannot be
    /// told.
    pub fn resident(&self, range: std::ops::Range<usize>) -> bool {
        match &self.bytes {
            Bytes::Owned(_) => true,
            #[cfg(unix)]
            Bytes::Mapped(m) => {
                let end = range.end.min(m.map.len());
                if range.start >= end {
                    return true;
                }
                let page = page_size();
                let first = range.start / page;
                let last = (end - 1) / page;
                let cached = |p: usize| {
                    let mut flag = 0u8;
                    // SAFETY: page `p` lies inside the live map, whose base is on a page
                    // boundary; mincore writes one byte for one page.
                    let r = unsafe {
                        libc::mincore(
                            m.map.as_ptr().add(p * page) as *mut libc::c_void,
                            1,
                            std::ptr::addr_of_mut!(flag).cast(),
                        )
                    };
                    r == 0 && flag & 1 == 1
                };
                (first..=last)
                    .step_by(RESIDENT_SAMPLE)
                    .chain([last])
                    .all(cached)
            }
            #[cfg(not(unix))]
            Bytes::Mapped(_) => false,
        }
    }

    /// Lets go of this process's view of the pages wholly inside the bytes `range` of a
    /// memory-mapped file, once they have been read: the pages stay in the page cache, a
    /// later read maps them again, and reading a large file once through the map does not
    /// keep all of it resident. Nothing for a file in memory.
    pub fn release(&self, range: std::ops::Range<usize>) {
        #[cfg(unix)]
        if let Bytes::Mapped(m) = &self.bytes {
            if let Some((at, len)) = whole_pages(range, m.map.len()) {
                // SAFETY: the map is a shared, read-only map of a file: dropping its pages
                // changes no byte any reader sees (the next read maps the file's page
                // again; a page the SIGBUS guard replaced reads as zeros again).
                let _ = unsafe {
                    m.map
                        .unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, at, len)
                };
            }
        }
        #[cfg(not(unix))]
        let _ = range;
    }
}

/// The size of a memory page.
#[cfg(unix)]
fn page_size() -> usize {
    static PAGE: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *PAGE.get_or_init(|| {
        // SAFETY: sysconf has no preconditions.
        let p = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        usize::try_from(p)
            .ok()
            .filter(|p| p.is_power_of_two())
            .unwrap_or(4096)
    })
}

/// The whole pages inside `range` of a map `len` bytes long, as (offset, length).
#[cfg(unix)]
fn whole_pages(range: std::ops::Range<usize>, len: usize) -> Option<(usize, usize)> {
    let page = page_size();
    let start = range.start.next_multiple_of(page);
    let end = range.end.min(len) / page * page;
    (start < end).then(|| (start, end - start))
}

impl Bytes {
    fn as_slice(&self) -> &[u8] {
        match self {
            Bytes::Mapped(m) => &m.map,
            Bytes::Owned(v) => v,
        }
    }

    fn check_unchanged(&self, path: &Path) -> Result<(), ModelError> {
        let Bytes::Mapped(m) = self else {
            return Ok(());
        };
        let poisoned = m.guard.as_ref().is_some_and(Registration::poisoned);
        let same = m
            .file
            .metadata()
            .is_ok_and(|meta| meta.len() == m.len && meta.modified().ok() == m.mtime);
        match (poisoned, same) {
            (false, true) => Ok(()),
            // A page could not be read although the file kept its size and time.
            (true, true) => Err(ModelError::Io {
                path: path.to_path_buf(),
                source: std::io::Error::other("a page of the memory-mapped file could not be read"),
            }),
            _ => Err(ModelError::Changed {
                path: path.to_path_buf(),
            }),
        }
    }
}

/// Reads at most `limit` bytes of `file`.
fn read_all(file: &std::fs::File, limit: u64) -> std::io::Result<Vec<u8>> {
    let len = file.metadata().map_or(0, |m| m.len()).min(limit);
    let mut buf = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
    file.take(limit).read_to_end(&mut buf)?;
    Ok(buf)
}

/// Maps `file` read-only and registers the map with the SIGBUS guard; gives the file back
/// when the map cannot be guarded on a platform where a truncated map faults.
fn map(file: std::fs::File) -> std::io::Result<Result<Mapped, std::fs::File>> {
    // SAFETY: the map is read-only, and a file truncated underneath us cannot kill the
    // process: the guard registered below turns the fault into zeros and a flag that
    // `check_unchanged` reports.
    let map = unsafe { Mmap::map(&file) }?;
    // Large files are mostly payload: no read-ahead around the headers, so a cold file
    // costs one page read per header instead of megabytes of weights.
    #[cfg(unix)]
    let _ = map.advise(memmap2::Advice::Random);
    // SAFETY: `map` is read-only and lives in the same `Mapped` as the registration, which
    // is dropped first.
    let guard = unsafe { map_guard::register(map.as_ptr(), map.len()) };
    // Elsewhere (Windows) a mapped file cannot be truncated; a test may turn the guard off
    // to show what it prevents.
    if guard.is_none() && cfg!(unix) && map_guard::enabled() {
        return Ok(Err(file));
    }
    let meta = file.metadata()?;
    Ok(Ok(Mapped {
        guard,
        len: map.len() as u64,
        mtime: meta.modified().ok(),
        map,
        file,
    }))
}

/// The file holding the Model message: `path` itself, or the model listed in an
/// `.mlpackage`'s `Manifest.json`.
pub fn resolve(path: &Path) -> Result<PathBuf, ModelError> {
    let meta = std::fs::metadata(path).map_err(|source| ModelError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    if meta.is_dir() {
        return super::package::model_path(path);
    }
    Ok(path.to_path_buf())
}
