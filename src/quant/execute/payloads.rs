//! Reading weight payloads (positioned reads of the mapped file, or the bytes of a model in
//! memory) and the pool of output buffers a run recycles.

use super::pipeline::AHEAD;
use crate::model::ModelFile;
use crate::quant::error::QuantError;
use crate::quant::fusion;
use crate::quant::kernels::stream::CHUNK;
use crate::quant::kernels::{self, Floats, ValueSource};

/// Reads weight payloads: of a memory-mapped model in place through the map where the page
/// cache holds them (each chunk's pages let go of once converted), else with positioned
/// reads of the mapped file, so that peak memory stays near the output size; of a model
/// held in memory from its bytes.
pub(super) struct Payloads {
    file: Option<std::fs::File>,
    /// A buffer reused across tensors: fresh allocations of large tensors cost more in page
    /// faults and zeroing than the reads themselves.
    spare: std::sync::Mutex<Vec<f32>>,
}

impl Payloads {
    pub(super) fn new(model: &ModelFile) -> Payloads {
        // The file behind the map, not the path: the path may name another file by now.
        let file = model.mapped_file().and_then(|f| f.try_clone().ok());
        Payloads {
            file,
            spare: std::sync::Mutex::new(Vec::new()),
        }
    }

    /// Copies a large unchanged range with positioned reads (the index maps big files for
    /// random access, so slicing the map would fault in one page at a time); small ranges
    /// are left to the caller.
    pub(super) fn copy(
        &self,
        r: std::ops::Range<usize>,
        out: &mut dyn std::io::Write,
    ) -> std::io::Result<bool> {
        const MIN: usize = 1 << 20;
        #[cfg(unix)]
        if let Some(f) = self.file.as_ref().filter(|_| r.end - r.start >= MIN) {
            use std::os::unix::fs::FileExt;
            let mut buf = vec![0u8; (4 << 20).min(r.end - r.start)];
            let mut pos = r.start;
            while pos < r.end {
                let n = buf.len().min(r.end - pos);
                let chunk = &mut buf[..n];
                f.read_exact_at(chunk, pos as u64)?;
                out.write_all(chunk)?;
                pos += n;
            }
            return Ok(true);
        }
        let _ = (&r, out);
        Ok(false)
    }

    /// The float32 payload of `w` as a source for the streamed kernels: the payload where it
    /// lies in the map (read in place) with positioned reads of the mapped file for whole
    /// copies, or the bytes of a model held in memory; `None` without a payload.
    pub(super) fn source<'a>(
        &'a self,
        model: &'a ModelFile,
        w: &crate::model::WeightInfo,
    ) -> Option<Box<dyn ValueSource + 'a>> {
        let span = w.float_values.as_ref().filter(|s| !s.is_empty())?;
        if span.end - span.start != w.count as usize * 4 {
            return None;
        }
        let bytes = model.bytes().get(span.clone())?;
        #[cfg(all(unix, target_endian = "little"))]
        if let Some(file) = &self.file {
            return Some(Box::new(MappedFloats {
                model,
                file,
                bytes,
                offset: span.start,
            }));
        }
        Some(Box::new(ByteFloats(bytes)))
    }

    /// Hands a values buffer back for reuse.
    pub(super) fn recycle(&self, v: Vec<f32>) {
        let mut spare = self.spare.lock().unwrap_or_else(|p| p.into_inner());
        if v.capacity() > spare.capacity() {
            *spare = v;
        }
    }

    /// All float32 values of `w`: read into the reused buffer when the payload can be read
    /// directly (see [`source`](Self::source)), else decoded by the general reader.
    pub(super) fn values(
        &self,
        model: &ModelFile,
        w: &crate::model::WeightInfo,
    ) -> Result<Vec<f32>, QuantError> {
        let Some(source) = self.source(model, w) else {
            return fusion::read_values(&model.path, model.bytes(), w);
        };
        let spare = std::mem::take(&mut *self.spare.lock().unwrap_or_else(|p| p.into_inner()));
        kernels::stream::read_all_into(source.as_ref(), w.count as usize, spare).map_err(|source| {
            QuantError::Io {
                path: model.path.clone(),
                source,
            }
        })
    }
}

/// Chunk buffers of the streamed kernels, kept for the next chunks once written: a fresh
/// large buffer costs a page fault and a zeroed page for every page, more than filling it
/// again.
#[derive(Default)]
pub(super) struct OutputPool {
    spares: std::sync::Mutex<Vec<Vec<u8>>>,
    /// A streamed kernel asked for a buffer: until then nothing is worth keeping.
    wanted: std::sync::atomic::AtomicBool,
}

impl OutputPool {
    /// Buffers kept (the pipeline holds at most a few chunks at once).
    const KEEP: usize = AHEAD + 4;

    /// The smallest spare buffer that holds `len` bytes, with its old contents (empty if
    /// there is none).
    pub(super) fn take(&self, len: usize) -> Vec<u8> {
        self.wanted
            .store(true, std::sync::atomic::Ordering::Relaxed);
        let mut spares = self.spares.lock().unwrap_or_else(|p| p.into_inner());
        match spares.iter().position(|b| b.capacity() >= len) {
            Some(i) => spares.remove(i),
            None => Vec::new(),
        }
    }

    /// Keeps a written piece for reuse when a streamed kernel asks for buffers and the piece
    /// is the size of its chunks (1 MiB to [`CHUNK`]): smaller ones cost little to make, and
    /// other pieces (a whole tensor's output, cut into chunks on the way) are not asked for.
    pub(super) fn give_back(&self, chunk: Vec<u8>) {
        if !self.wanted.load(std::sync::atomic::Ordering::Relaxed)
            || !(1 << 20..=CHUNK).contains(&chunk.capacity())
        {
            return;
        }
        let mut spares = self.spares.lock().unwrap_or_else(|p| p.into_inner());
        spares.push(chunk);
        spares.sort_by_key(Vec::capacity);
        let extra = spares.len().saturating_sub(Self::KEEP);
        spares.drain(..extra);
    }
}

/// Little-endian floats at a byte offset of a memory-mapped file: read in place through the
/// map (whose pages are prefetched ahead and let go of once converted), or copied out with
/// positioned reads, which never make the map's pages resident.
#[cfg(all(unix, target_endian = "little"))]
struct MappedFloats<'a> {
    model: &'a ModelFile,
    file: &'a std::fs::File,
    /// The payload in the map.
    bytes: &'a [u8],
    /// Its offset in the file.
    offset: usize,
}

#[cfg(all(unix, target_endian = "little"))]
impl MappedFloats<'_> {
    /// The bytes of the values `range`, as a range of the file.
    fn file_range(&self, range: std::ops::Range<usize>) -> std::ops::Range<usize> {
        self.offset + range.start * 4..self.offset + range.end * 4
    }
}

#[cfg(all(unix, target_endian = "little"))]
impl ValueSource for MappedFloats<'_> {
    fn read(&self, start: usize, dst: &mut [std::mem::MaybeUninit<f32>]) -> std::io::Result<()> {
        read_exact_at(self.file, (self.offset + start * 4) as u64, dst)
    }

    fn in_place(&self, range: std::ops::Range<usize>) -> Option<Floats<'_>> {
        // Pages not in the page cache are copied out with positioned reads, which read
        // ahead; a fault on this random-access map would read them one at a time.
        if !self.model.resident(self.file_range(range.clone())) {
            return None;
        }
        Some(Floats::from_ne_bytes(self.bytes)?.range(range))
    }

    fn prefetch(&self, range: std::ops::Range<usize>) {
        self.model.prefetch(self.file_range(range));
    }

    fn release(&self, range: std::ops::Range<usize>) {
        self.model.release(self.file_range(range));
    }
}

/// Little-endian floats held in memory.
struct ByteFloats<'a>(&'a [u8]);

impl ValueSource for ByteFloats<'_> {
    #[cfg(target_endian = "little")]
    fn in_place(&self, range: std::ops::Range<usize>) -> Option<Floats<'_>> {
        Some(Floats::from_ne_bytes(self.0)?.range(range))
    }

    fn read(&self, start: usize, dst: &mut [std::mem::MaybeUninit<f32>]) -> std::io::Result<()> {
        let bytes = start
            .checked_add(dst.len())
            .and_then(|end| self.0.get(start * 4..end * 4))
            .ok_or(std::io::ErrorKind::UnexpectedEof)?;
        for (d, c) in dst.iter_mut().zip(bytes.chunks_exact(4)) {
            d.write(f32::from_le_bytes([c[0], c[1], c[2], c[3]]));
        }
        Ok(())
    }
}

/// One `pread` loop into uninitialised floats (little-endian file, little-endian target).
#[cfg(all(unix, target_endian = "little"))]
fn read_exact_at(
    f: &std::fs::File,
    offset: u64,
    dst: &mut [std::mem::MaybeUninit<f32>],
) -> std::io::Result<()> {
    use std::os::unix::io::AsRawFd;
    let len = std::mem::size_of_val(dst);
    let base = dst.as_mut_ptr().cast::<u8>();
    let mut done = 0usize;
    while done < len {
        let pos = libc::off_t::try_from(offset + done as u64)
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput))?;
        // SAFETY: `base + done .. base + len` lies inside `dst`, which we borrow mutably;
        // pread writes at most `len - done` bytes there and never reads them.
        let r = unsafe {
            libc::pread(
                f.as_raw_fd(),
                base.add(done).cast::<libc::c_void>(),
                len - done,
                pos,
            )
        };
        match r {
            0 => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            r if r > 0 => done += r as usize,
            _ => {
                let e = std::io::Error::last_os_error();
                if e.kind() != std::io::ErrorKind::Interrupted {
                    return Err(e);
                }
            }
        }
    }
    Ok(())
}
