//! Opening model files: memory mapping, `.mlpackage` folders, and the index built on top.

use std::io::Read;
use std::path::{Path, PathBuf};

use memmap2::Mmap;

use super::{ModelError, ModelIndex, WeightInfo};

/// Files up to this size are read into memory; larger ones are memory-mapped.
const READ_LIMIT: u64 = 16 << 20;

/// The bytes of a model file, kept alive together with its index.
pub struct ModelFile {
    /// The file holding the Model message (inside the package for an `.mlpackage`).
    pub path: PathBuf,
    bytes: Bytes,
    /// The index of the bytes.
    pub index: ModelIndex,
}

enum Bytes {
    Mapped(Mmap),
    Owned(Vec<u8>),
}

impl ModelFile {
    /// Opens and indexes a `.mlmodel` file or an `.mlpackage` folder.
    ///
    /// A file larger than 16 MiB is memory-mapped with random-access advice, so indexing
    /// faults in only the pages holding field headers, never the weight payloads in between
    /// (such a file must not be truncated while the `ModelFile` is alive: reading a vanished
    /// page faults); smaller files are read into memory.
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
            let mut buf = Vec::with_capacity(meta.len() as usize);
            (&file)
                .take(READ_LIMIT + 1)
                .read_to_end(&mut buf)
                .map_err(io)?;
            Bytes::Owned(buf)
        } else {
            // SAFETY: the map is read-only; a file truncated underneath us can fault, which
            // is the accepted risk of every memory-mapped reader (the quantizer re-reads and
            // verifies what it wrote).
            let map = unsafe { Mmap::map(&file) }.map_err(io)?;
            // Large files are mostly payload: no read-ahead around the headers, so a cold
            // file costs one page read per header instead of megabytes of weights.
            #[cfg(unix)]
            let _ = map.advise(memmap2::Advice::Random);
            Bytes::Mapped(map)
        };
        let index = super::index::build(&file_path, bytes.as_slice())?;
        Ok(ModelFile {
            path: file_path,
            bytes,
            index,
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

    /// The float32 values of a WeightParams of this file (empty when it has none).
    pub fn float_values(&self, w: &WeightInfo) -> Result<Vec<f32>, ModelError> {
        super::index::float_values(&self.path, self.bytes(), w)
    }

    /// The float16 values of a WeightParams of this file (empty when it has none).
    pub fn half_values(&self, w: &WeightInfo) -> Vec<half::f16> {
        super::index::half_values(self.bytes(), w)
    }

    /// Tells the kernel the whole file will be read in order (before quantizing it).
    pub fn advise_sequential(&self) {
        #[cfg(unix)]
        if let Bytes::Mapped(m) = &self.bytes {
            let _ = m.advise(memmap2::Advice::Sequential);
        }
    }
}

impl Bytes {
    fn as_slice(&self) -> &[u8] {
        match self {
            Bytes::Mapped(m) => m,
            Bytes::Owned(v) => v,
        }
    }
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
