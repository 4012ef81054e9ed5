//! Kernels that read their tensor a block at a time from a [`ValueSource`] instead of taking
//! it whole, and hand their data on a chunk at a time to a [`DataSink`]: each block is read
//! into a small per-thread buffer and converted while it is still in the processor's cache,
//! so a large tensor crosses memory once instead of being copied into a tensor-sized buffer
//! and read back twice (min/max, then indices), and its output never exists whole (the
//! memory of a conversion no longer grows with the tensor).
//!
//! A source that holds its values in memory (a payload inside a file map, at any byte
//! offset) is read in place instead: no copy at all. The source is told what the next chunk
//! will read, so a file not yet in the page cache is read ahead, and which values are done,
//! so a map lets go of their pages and a run's memory stays near a chunk's.
//!
//! Streamed are the kernels whose output for a block depends on that block alone: fp16
//! (with the tensor-wide range check applied at the end), and `linear`/`linear_symmetric`
//! when every channel is one contiguous run (axis 0) that fits a block. Everything else is
//! read whole and handed to [`quantize`]. Outputs are the same bytes either way.

use std::mem::MaybeUninit;

use rayon::prelude::*;

use super::linear::{self, combine, count_nan_of, minmax_of, Scheme};
use super::symmetric::Symmetric;
use super::{check_bits, fp16, pack, quantize, ChannelView, Dialect, KernelError, Notes};
use super::{Floats, Params, Quantized};
use crate::quant::Target;

/// Where a streamed kernel reads float32 values from.
pub trait ValueSource: Sync {
    /// Fills `dst` with the values at positions `start..start + dst.len()`.
    fn read(&self, start: usize, dst: &mut [MaybeUninit<f32>]) -> std::io::Result<()>;

    /// The values `range` where they lie, when the source holds them in memory and reading
    /// them there is cheap (a file map whose pages are in the page cache): the streamed
    /// kernels then read them there instead of copying blocks out with [`read`](Self::read).
    fn in_place(&self, range: std::ops::Range<usize>) -> Option<Floats<'_>> {
        let _ = range;
        None
    }

    /// The values `range` will be read next (a file map starts reading them from disk).
    fn prefetch(&self, range: std::ops::Range<usize>) {
        let _ = range;
    }

    /// The values `range` have been converted and are not read again (a file map lets go
    /// of their pages).
    fn release(&self, range: std::ops::Range<usize>) {
        let _ = range;
    }
}

impl ValueSource for &[f32] {
    fn read(&self, start: usize, dst: &mut [MaybeUninit<f32>]) -> std::io::Result<()> {
        let src = self
            .get(start..start + dst.len())
            .ok_or(std::io::ErrorKind::UnexpectedEof)?;
        for (d, &s) in dst.iter_mut().zip(src) {
            d.write(s);
        }
        Ok(())
    }

    fn in_place(&self, range: std::ops::Range<usize>) -> Option<Floats<'_>> {
        self.get(range).map(Floats::from_slice)
    }
}

/// Where a streamed kernel puts its data: in order, a chunk at a time.
pub trait DataSink {
    /// A buffer for the next chunk, with room for at least `capacity` bytes where a recycled
    /// one is at hand; whatever it holds is overwritten.
    fn buffer(&mut self, capacity: usize) -> Vec<u8>;
    /// Takes the next chunk of the data.
    fn put(&mut self, chunk: Vec<u8>) -> std::io::Result<()>;
}

/// Why a streamed conversion failed: the kernel refused the tensor, a read failed, or the
/// sink refused a chunk.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    /// The kernel's own error.
    #[error(transparent)]
    Kernel(#[from] KernelError),
    /// Reading values from the source failed.
    #[error(transparent)]
    Read(std::io::Error),
    /// The sink refused a chunk.
    #[error(transparent)]
    Write(std::io::Error),
}

/// Everything of a [`Quantized`] but the data, which went to the sink.
#[derive(Debug, Clone, PartialEq)]
pub struct Streamed {
    /// Bits per weight: 1–8, or 16 for half precision.
    pub nbits: u8,
    /// How to read the data.
    pub params: Params,
    /// Diagnostics gathered while converting.
    pub notes: Notes,
    /// Bytes of data put into the sink.
    pub data_len: u64,
}

impl Streamed {
    /// A whole-tensor result, its data put into `sink`.
    fn put_whole(q: Quantized, sink: &mut dyn DataSink) -> Result<Streamed, StreamError> {
        let data_len = q.data.len() as u64;
        if data_len > 0 {
            sink.put(q.data).map_err(StreamError::Write)?;
        }
        Ok(Streamed {
            nbits: q.nbits,
            params: q.params,
            notes: q.notes,
            data_len,
        })
    }
}

/// Values per block (128 KiB of floats: a block and its indices stay in the L2 cache).
const BLOCK: usize = 1 << 15;
/// Bytes of data per chunk handed to the sink (blocks are converted in parallel a chunk at a
/// time).
pub const CHUNK: usize = 4 << 20;
/// Values per chunk at most (16 MiB of input), whatever the output size: the pages a chunk
/// read in place are let go after it, so this bounds what a run keeps resident.
const CHUNK_VALUES: usize = 4 << 20;
/// Channels longer than this are not streamed (their block would not stay in cache).
const MAX_CHANNEL: usize = 1 << 20;

/// Whether [`quantize_streamed`] streams `target` (for some shapes); other targets are
/// better served by reading the tensor whole and calling [`quantize`].
pub fn streams(target: &Target) -> bool {
    matches!(
        target,
        Target::Fp16 | Target::Linear(_) | Target::LinearSymmetric
    )
}

/// Quantizes the `len` values of `source` exactly as [`quantize`] would quantize them,
/// reading them block by block where the target allows (see the module documentation), and
/// puts the data into `sink` in order.
pub fn quantize_streamed(
    source: &dyn ValueSource,
    len: usize,
    shape: &[u64],
    axis: usize,
    target: &Target,
    dialect: Dialect,
    sink: &mut dyn DataSink,
) -> Result<Streamed, StreamError> {
    match target {
        Target::Fp16 => return fp16_streamed(source, len, sink),
        Target::Linear(b) => {
            check_bits(*b)?;
            let view = ChannelView::new(len, shape, axis, true)?;
            let scheme = linear::Linear { nbits: *b, dialect };
            if let Some(blocks) = channel_blocks(&view, *b) {
                return per_channel_streamed(source, &view, &blocks, &scheme, sink);
            }
        }
        Target::LinearSymmetric => {
            let view = ChannelView::new(len, shape, axis, true)?;
            if let Some(blocks) = channel_blocks(&view, 8) {
                let scheme = Symmetric { dialect };
                return per_channel_streamed(source, &view, &blocks, &scheme, sink);
            }
        }
        _ => {}
    }
    let values = read_all(source, len).map_err(StreamError::Read)?;
    Streamed::put_whole(quantize(&values, shape, axis, target, dialect)?, sink)
}

/// All `len` values of `source`, read in parallel blocks straight into the buffer.
fn read_all(source: &dyn ValueSource, len: usize) -> std::io::Result<Vec<f32>> {
    read_all_into(source, len, Vec::new())
}

/// All `len` values of `source`, read in parallel blocks straight into `buffer` (reused:
/// its old contents are dropped, and it grows when it is too small).
pub fn read_all_into(
    source: &dyn ValueSource,
    len: usize,
    buffer: Vec<f32>,
) -> std::io::Result<Vec<f32>> {
    let mut v = buffer;
    v.clear();
    if v.capacity() < len {
        v = Vec::with_capacity(len);
        if len >= pack::HUGE_FROM / 4 {
            pack::advise_huge(v.as_ptr(), len * 4);
        }
    }
    v.spare_capacity_mut()[..len]
        .par_chunks_mut(BLOCK * 8)
        .enumerate()
        .try_for_each(|(i, dst)| source.read(i * BLOCK * 8, dst))?;
    // SAFETY: every chunk of the first `len` elements was filled by a successful read.
    unsafe { v.set_len(len) };
    Ok(v)
}

std::thread_local! {
    /// Each thread's block buffers (values, indices), kept between blocks and tensors.
    static BUFFERS: std::cell::RefCell<(Vec<f32>, Vec<u8>)> = const {
        std::cell::RefCell::new((Vec::new(), Vec::new()))
    };
}

/// Runs `f` with this thread's block buffers (fresh ones if they are in use further up).
fn with_buffers<R>(f: impl FnOnce(&mut Vec<f32>, &mut Vec<u8>) -> R) -> R {
    BUFFERS.with(|b| match b.try_borrow_mut() {
        Ok(mut b) => {
            let (values, indices) = &mut *b;
            f(values, indices)
        }
        Err(_) => f(&mut Vec::new(), &mut Vec::new()),
    })
}

/// Reads `source` at `start` into `buf` (reused), which then holds exactly `n` values.
fn fill<'b>(
    source: &dyn ValueSource,
    start: usize,
    n: usize,
    buf: &'b mut Vec<f32>,
) -> std::io::Result<&'b [f32]> {
    buf.clear();
    buf.reserve(n);
    source.read(start, &mut buf.spare_capacity_mut()[..n])?;
    // SAFETY: the read succeeded, so it initialised the first n elements.
    unsafe { buf.set_len(n) };
    Ok(buf)
}

/// The values of one chunk of a source: in place when the source offers them so, else read.
struct Input<'s> {
    source: &'s dyn ValueSource,
    /// The values `range`, when the source holds them in memory.
    in_place: Option<Floats<'s>>,
    range: std::ops::Range<usize>,
}

impl<'s> Input<'s> {
    /// The values `range` of `source`.
    fn new(source: &'s dyn ValueSource, range: std::ops::Range<usize>) -> Input<'s> {
        let in_place = source
            .in_place(range.clone())
            .filter(|f| f.len() == range.end - range.start);
        Input {
            source,
            in_place,
            range,
        }
    }

    /// The values `start..start + n` (within the chunk): where they lie, or read into `buf`
    /// (reused).
    fn get<'b>(
        &'b self,
        start: usize,
        n: usize,
        buf: &'b mut Vec<f32>,
    ) -> std::io::Result<Floats<'b>> {
        match self.in_place {
            Some(here) if start >= self.range.start && start + n <= self.range.end => {
                let at = start - self.range.start;
                Ok(here.range(at..at + n))
            }
            _ => Ok(Floats::from_slice(fill(self.source, start, n, buf)?)),
        }
    }
}

/// Runs `convert` on the chunks of `source`'s values `ranges`, in order, each given as an
/// [`Input`] (in place where the source offers it): the first chunk is prefetched before
/// anything, each next one before the current one is converted, and each is released once
/// `convert` is done with it. Stops at the first error.
fn for_each_chunk(
    source: &dyn ValueSource,
    ranges: &[std::ops::Range<usize>],
    mut convert: impl FnMut(usize, &Input) -> Result<(), StreamError>,
) -> Result<(), StreamError> {
    if let Some(first) = ranges.first() {
        source.prefetch(first.clone());
    }
    for (k, range) in ranges.iter().enumerate() {
        if let Some(next) = ranges.get(k + 1) {
            source.prefetch(next.clone());
        }
        convert(k, &Input::new(source, range.clone()))?;
        source.release(range.clone());
    }
    Ok(())
}

/// Channel ranges of one block each when every channel of `view` is one contiguous run short
/// enough to stream: blocks of about [`BLOCK`] values whose first index starts on a byte of
/// the packed output. `None` when the tensor cannot be streamed.
fn channel_blocks(view: &ChannelView, nbits: u8) -> Option<Vec<std::ops::Range<usize>>> {
    if view.channels * view.inner != view.len || view.inner > MAX_CHANNEL || view.len == 0 {
        return None;
    }
    let per = (BLOCK / view.inner).max(1);
    let aligned = |c: usize| (c * view.inner * nbits as usize) % 8 == 0;
    let mut blocks = Vec::with_capacity(view.channels / per + 1);
    let mut first = 0;
    while first < view.channels {
        let mut end = (first + per).min(view.channels);
        while end < view.channels && !aligned(end) {
            end += 1;
        }
        blocks.push(first..end);
        first = end;
    }
    Some(blocks)
}

/// Splits `data` into consecutive parts of the given lengths.
fn split_parts(mut data: &mut [u8], lens: impl Iterator<Item = usize>) -> Vec<&mut [u8]> {
    let mut parts = Vec::new();
    for n in lens {
        let all = std::mem::take(&mut data);
        let (head, rest) = all.split_at_mut(n.min(all.len()));
        parts.push(head);
        data = rest;
    }
    parts
}

/// A chunk buffer from `sink` holding `len` bytes, every one of which the kernels overwrite:
/// a recycled chunk's old bytes are left as they are (no zeroing), a fresh buffer is zeroed.
fn chunk_buffer(sink: &mut dyn DataSink, len: usize) -> Vec<u8> {
    let mut buffer = sink.buffer(len);
    if buffer.len() >= len {
        buffer.truncate(len);
        return buffer;
    }
    pack::zeroed_in(buffer, len)
}

/// What one block of channels yields: its channels' parameters and its NaN count.
type BlockOut<C> = (Vec<C>, u64);

/// `scheme` over the channel `blocks` of `view`, each block read and converted on its own,
/// the blocks of a chunk in parallel.
fn per_channel_streamed<S: Scheme>(
    source: &dyn ValueSource,
    view: &ChannelView,
    blocks: &[std::ops::Range<usize>],
    scheme: &S,
    sink: &mut dyn DataSink,
) -> Result<Streamed, StreamError> {
    let nbits = scheme.nbits() as usize;
    let inner = view.inner;
    let total = pack::packed_len(view.len, scheme.nbits());
    // Byte offset of each block's data (blocks start on byte boundaries); `total` past the
    // last block. Likewise the first value of each block.
    let offset = |i: usize| blocks.get(i).map_or(total, |b| b.start * inner * nbits / 8);
    let value = |i: usize| blocks.get(i).map_or(view.len, |b| b.start * inner);
    // The blocks of each chunk: as many as fit its output and input limits (at least one).
    let mut chunks = Vec::new();
    let mut first = 0;
    while first < blocks.len() {
        let mut end = first + 1;
        while end < blocks.len()
            && offset(end + 1) - offset(first) <= CHUNK
            && value(end + 1) - value(first) <= CHUNK_VALUES
        {
            end += 1;
        }
        chunks.push(first..end);
        first = end;
    }
    let mut channels = Vec::with_capacity(view.channels);
    let mut notes = Notes::default();
    let ranges: Vec<_> = chunks
        .iter()
        .map(|c| value(c.start)..value(c.end))
        .collect();
    for_each_chunk(source, &ranges, |k, input| {
        let chunk = chunks[k].clone();
        let mut data = chunk_buffer(sink, offset(chunk.end) - offset(chunk.start));
        let lens = chunk.clone().map(|i| offset(i + 1) - offset(i));
        let parts = split_parts(&mut data, lens);
        let outs: Vec<BlockOut<S::Channel>> = blocks[chunk]
            .par_iter()
            .zip(parts)
            .map(|(block, dst)| {
                with_buffers(|values, indices| {
                    convert_block(input, block, inner, scheme, values, indices, dst)
                })
            })
            .collect::<std::io::Result<_>>()
            .map_err(StreamError::Read)?;
        for (c, nans) in outs {
            channels.extend(c);
            notes.nan_values += nans;
        }
        sink.put(data).map_err(StreamError::Write)
    })?;
    notes.threshold_channels = channels.iter().filter(|c| scheme.thresholded(c)).count() as u64;
    Ok(Streamed {
        nbits: scheme.nbits(),
        params: scheme.params(&channels),
        notes,
        data_len: total as u64,
    })
}

/// Reads the channels `block` (each `inner` values long; in place, or into `values`) and
/// writes their packed indices into `dst` (through `indices` below 8 bits).
fn convert_block<S: Scheme>(
    input: &Input,
    block: &std::ops::Range<usize>,
    inner: usize,
    scheme: &S,
    values: &mut Vec<f32>,
    indices: &mut Vec<u8>,
    dst: &mut [u8],
) -> std::io::Result<BlockOut<S::Channel>> {
    let n = (block.end - block.start) * inner;
    let values = input.get(block.start * inner, n, values)?;
    let packed = scheme.nbits() < 8;
    if packed {
        indices.clear();
        indices.resize(n, 0);
    }
    let mut channels = Vec::with_capacity(block.len());
    let mut nan = false;
    for (k, src) in values.chunks(inner).enumerate() {
        let (lo, hi) = minmax_of(src);
        nan |= lo.is_nan() || hi.is_nan();
        let ch = scheme.channel(lo, hi);
        let out = if packed {
            &mut indices[k * inner..(k + 1) * inner]
        } else {
            &mut dst[k * inner..(k + 1) * inner]
        };
        scheme.indices(&ch, src, out);
        channels.push(ch);
    }
    if packed {
        pack::pack_into(indices, scheme.nbits(), dst);
    }
    let nans = if nan { count_nan_of(values) } else { 0 };
    Ok((channels, nans))
}

/// fp16 of the `len` values of `source`, a chunk at a time; the range check on the tensor's
/// extremes (spec §3.6) comes once every chunk is converted (the sink has then seen data
/// that the error makes worthless).
fn fp16_streamed(
    source: &dyn ValueSource,
    len: usize,
    sink: &mut dyn DataSink,
) -> Result<Streamed, StreamError> {
    let per_chunk = CHUNK / 2;
    let ranges: Vec<_> = (0..len)
        .step_by(per_chunk)
        .map(|start| start..(start + per_chunk).min(len))
        .collect();
    let mut extremes: Option<(f32, f32)> = None;
    let mut nan_values = 0;
    for_each_chunk(source, &ranges, |k, input| {
        let range = ranges[k].clone();
        let mut data = chunk_buffer(sink, range.len() * 2);
        let outs: Vec<((f32, f32), u64)> = data
            .par_chunks_mut(BLOCK * 2)
            .enumerate()
            .map(|(i, dst)| {
                with_buffers(|buf, _| {
                    let values = input.get(range.start + i * BLOCK, dst.len() / 2, buf)?;
                    let (lo, hi) = minmax_of(values);
                    fp16::halves_into(values, dst);
                    let nans = if lo.is_nan() { count_nan_of(values) } else { 0 };
                    Ok(((lo, hi), nans))
                })
            })
            .collect::<std::io::Result<_>>()
            .map_err(StreamError::Read)?;
        for (e, nans) in outs {
            extremes = Some(extremes.map_or(e, |x| combine(x, e)));
            nan_values += nans;
        }
        sink.put(data).map_err(StreamError::Write)
    })?;
    let (lo, hi) = extremes.unwrap_or((0.0, 0.0));
    fp16::check_range(lo, hi)?;
    Ok(Streamed {
        nbits: 16,
        params: Params::Half,
        notes: Notes {
            nan_values,
            threshold_channels: 0,
        },
        data_len: len as u64 * 2,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quant::kernels::testutil::{ne_bytes_after, Rng};

    /// A source that fails every read from position `from` on.
    struct Failing<'a> {
        values: &'a [f32],
        from: usize,
    }

    impl ValueSource for Failing<'_> {
        fn read(&self, start: usize, dst: &mut [MaybeUninit<f32>]) -> std::io::Result<()> {
            if start + dst.len() > self.from {
                return Err(std::io::Error::other("device gone"));
            }
            self.values.read(start, dst)
        }
    }

    /// Values held as native bytes starting `skip` bytes into a buffer (as a payload lies
    /// in a file map), read in place; records what it is told to prefetch and release.
    struct Unaligned {
        bytes: Vec<u8>,
        skip: usize,
        patchy: bool,
        told: std::sync::Mutex<Vec<(char, std::ops::Range<usize>)>>,
    }

    impl Unaligned {
        fn new(values: &[f32], skip: usize) -> Unaligned {
            Unaligned {
                bytes: ne_bytes_after(skip, values),
                skip,
                patchy: false,
                told: Default::default(),
            }
        }

        fn told(&self) -> Vec<(char, std::ops::Range<usize>)> {
            self.told.lock().unwrap().clone()
        }
    }

    impl ValueSource for Unaligned {
        fn read(&self, start: usize, dst: &mut [MaybeUninit<f32>]) -> std::io::Result<()> {
            let range = start..start + dst.len();
            self.told.lock().unwrap().push(('c', range.clone()));
            let all = Floats::from_ne_bytes(&self.bytes[self.skip..]).unwrap();
            for (d, v) in dst.iter_mut().zip(all.range(range).iter()) {
                d.write(v);
            }
            Ok(())
        }

        fn in_place(&self, range: std::ops::Range<usize>) -> Option<Floats<'_>> {
            // With `patchy`, every other chunk only (a file map whose pages are partly in
            // the page cache).
            let f = Floats::from_ne_bytes(&self.bytes[self.skip..])?;
            let mut told = self.told.lock().unwrap();
            let offered = told.iter().filter(|x| x.0 == 'i').count();
            if self.patchy && offered % 2 == 1 {
                told.push(('n', range));
                return None;
            }
            told.push(('i', range.clone()));
            Some(f.range(range))
        }

        fn prefetch(&self, range: std::ops::Range<usize>) {
            self.told.lock().unwrap().push(('p', range));
        }

        fn release(&self, range: std::ops::Range<usize>) {
            self.told.lock().unwrap().push(('r', range));
        }
    }

    /// A slice read only by copying (no values in place).
    struct Copied<'a>(&'a [f32]);

    impl ValueSource for Copied<'_> {
        fn read(&self, start: usize, dst: &mut [MaybeUninit<f32>]) -> std::io::Result<()> {
            self.0.read(start, dst)
        }
    }

    /// Equal bytes, notes and parameters, parameters compared bit for bit (NaN included).
    fn same(a: &Quantized, b: &Quantized) -> bool {
        let bits = |p: &Params| -> Vec<u32> {
            match p {
                Params::Half => vec![],
                Params::Linear { scale, bias } => {
                    scale.iter().chain(bias).map(|x| x.to_bits()).collect()
                }
                Params::Lut(t) => t.iter().map(|x| x.to_bits()).collect(),
            }
        };
        a.nbits == b.nbits
            && a.data == b.data
            && a.notes == b.notes
            && std::mem::discriminant(&a.params) == std::mem::discriminant(&b.params)
            && bits(&a.params) == bits(&b.params)
    }

    fn targets() -> Vec<Target> {
        let mut t = vec![Target::Fp16, Target::LinearSymmetric, Target::KmeansLut(2)];
        t.extend((1..=8).map(Target::Linear));
        t
    }

    /// Tensors that exercise every block layout: tiny and huge channels, channel lengths
    /// that leave blocks off byte boundaries, one-dimensional tensors, axis 1.
    fn cases() -> Vec<(Vec<u64>, usize)> {
        vec![
            (vec![3], 0),
            (vec![7, 5], 0),
            (vec![1000, 77], 0),
            (vec![3, 70_001], 0),
            (vec![2, (MAX_CHANNEL + 8) as u64], 0),
            (vec![64, 3, 3, 3], 0),
            (vec![9, 11, 5, 3], 0),
            (vec![4, 6, 3, 3], 1),
            (vec![150_001], 0),
        ]
    }

    fn values(n: usize, rng: &mut Rng) -> Vec<f32> {
        (0..n)
            .map(|i| match rng.below(1000) {
                0 => f32::NAN,
                1 => 0.0,
                2 => -0.0,
                3 => 1e-7,
                _ => rng.normal() * (1.0 + (i % 13) as f32),
            })
            .collect()
    }

    /// A sink that keeps the chunks, handing out dirty recycled buffers.
    #[derive(Default)]
    struct Chunks(Vec<Vec<u8>>);

    impl DataSink for Chunks {
        fn buffer(&mut self, capacity: usize) -> Vec<u8> {
            vec![0xA5; capacity + 3]
        }

        fn put(&mut self, chunk: Vec<u8>) -> std::io::Result<()> {
            self.0.push(chunk);
            Ok(())
        }
    }

    /// The streamed conversion as a [`Quantized`], and its chunk lengths.
    fn streamed(
        source: &dyn ValueSource,
        len: usize,
        shape: &[u64],
        axis: usize,
        t: &Target,
        dialect: Dialect,
    ) -> Result<(Quantized, Vec<usize>), StreamError> {
        let mut sink = Chunks::default();
        let s = quantize_streamed(source, len, shape, axis, t, dialect, &mut sink)?;
        let data = sink.0.concat();
        assert_eq!(data.len() as u64, s.data_len);
        let q = Quantized {
            nbits: s.nbits,
            data,
            params: s.params,
            notes: s.notes,
        };
        Ok((q, sink.0.iter().map(Vec::len).collect()))
    }

    #[test]
    fn streamed_equals_whole_tensor_kernels() {
        let mut rng = Rng::new(7);
        for (shape, axis) in cases() {
            let n = shape.iter().product::<u64>() as usize;
            let mut v = values(n, &mut rng);
            // A channel whose range falls under the threshold.
            v[..n.min(40)]
                .iter_mut()
                .for_each(|x| *x = 1e-6 * x.signum());
            for dialect in [Dialect::F32, Dialect::F64] {
                for t in targets() {
                    let whole = quantize(&v, &shape, axis, &t, dialect);
                    // Copied into block buffers, and read in place at odd addresses (a
                    // tensor read whole is copied out of either).
                    let unaligned = Unaligned::new(&v, 1 + n % 3);
                    let sources: [&dyn ValueSource; 2] = [&Copied(&v), &unaligned];
                    for source in sources {
                        match (&whole, streamed(source, n, &shape, axis, &t, dialect)) {
                            (Ok(a), Ok((b, _))) => {
                                assert!(same(a, &b), "{t:?} {shape:?} axis {axis}")
                            }
                            (Err(a), Err(StreamError::Kernel(b))) => assert_eq!(a, &b),
                            (a, b) => panic!("{t:?} {shape:?}: {a:?} vs {b:?}"),
                        }
                    }
                    // Streamed tensors are never copied out of an in-place source.
                    let copied = unaligned.told().iter().any(|(k, _)| *k == 'c');
                    let streamed_here = t == Target::Fp16
                        || (streams(&t)
                            && ChannelView::new(n, &shape, axis, true)
                                .ok()
                                .and_then(|view| channel_blocks(&view, 8))
                                .is_some());
                    assert!(!(copied && streamed_here), "{t:?} {shape:?}");
                }
            }
        }
    }

    /// A tensor of 3,000 channels of 2,001 values (several chunks of output in every mode).
    const MANY_CHUNKS: [u64; 2] = [3000, 2001];

    /// Streams `v` (shaped [`MANY_CHUNKS`]) from `source` to `t` and checks the result
    /// against the whole-tensor kernel.
    fn streamed_as_whole(source: &Unaligned, v: &[f32], t: &Target) {
        let (q, _) = streamed(source, v.len(), &MANY_CHUNKS, 0, t, Dialect::F32).unwrap();
        let whole = quantize(v, &MANY_CHUNKS, 0, t, Dialect::F32).unwrap();
        assert!(same(&whole, &q), "{t:?}");
    }

    #[test]
    fn in_place_values_are_prefetched_ahead_and_released_once_converted() {
        let n = (MANY_CHUNKS[0] * MANY_CHUNKS[1]) as usize;
        let v = values(n, &mut Rng::new(5));
        for t in [Target::Fp16, Target::Linear(8), Target::Linear(2)] {
            let source = Unaligned::new(&v, 3);
            streamed_as_whole(&source, &v, &t);
            let told = source.told();
            let released: Vec<_> = told.iter().filter(|(k, _)| *k == 'r').collect();
            // Released in order, without gaps, up to the end.
            let mut at = 0;
            for (_, r) in &released {
                assert_eq!(r.start, at, "{t:?}: {told:?}");
                assert!(r.end - r.start <= CHUNK_VALUES, "{t:?}: {told:?}");
                at = r.end;
            }
            assert_eq!(at, n, "{t:?}");
            assert!(released.len() > 1, "{t:?}");
            // Each range is prefetched before it is released, and the next one before the
            // current one is converted.
            for (i, (_, r)) in released.iter().enumerate() {
                let p = told.iter().position(|x| x == &('p', r.clone()));
                let rel = told.iter().position(|x| x == &('r', r.clone()));
                assert!(p.is_some() && p < rel, "{t:?}: {told:?}");
                if let Some((_, next)) = released.get(i + 1) {
                    let pn = told.iter().position(|x| x == &('p', next.clone()));
                    assert!(pn < rel, "{t:?}: {told:?}");
                }
            }
        }
    }

    #[test]
    fn chunks_not_in_place_are_copied_to_the_same_bytes() {
        let n = (MANY_CHUNKS[0] * MANY_CHUNKS[1]) as usize;
        let v = values(n, &mut Rng::new(13));
        for t in [Target::Fp16, Target::Linear(8), Target::Linear(5)] {
            let mut source = Unaligned::new(&v, 2);
            source.patchy = true;
            streamed_as_whole(&source, &v, &t);
            // Copies were made, and only of the chunks not offered in place.
            let told = source.told();
            let refused: Vec<_> = told.iter().filter(|x| x.0 == 'n').collect();
            let copies: Vec<_> = told.iter().filter(|x| x.0 == 'c').collect();
            assert!(!copies.is_empty(), "{t:?}");
            for (_, r) in copies {
                let within =
                    |x: &&(char, std::ops::Range<usize>)| x.1.start <= r.start && r.end <= x.1.end;
                assert!(refused.iter().any(within), "{t:?} {r:?}");
            }
        }
    }

    #[test]
    fn large_tensors_go_out_in_chunks_that_add_up() {
        let mut rng = Rng::new(11);
        let shape = [2100u64, 2001];
        let n = 2100 * 2001;
        let v = values(n, &mut rng);
        for t in [Target::Fp16, Target::Linear(8), Target::Linear(3)] {
            let whole = quantize(&v, &shape, 0, &t, Dialect::F32).unwrap();
            let (q, chunks) = streamed(&v.as_slice(), n, &shape, 0, &t, Dialect::F32).unwrap();
            assert!(same(&whole, &q), "{t:?}");
            // Chunks as large as the output and input limits allow (to within a block).
            let nbits = if t == Target::Fp16 { 16 } else { q.nbits };
            let per = CHUNK.min(CHUNK_VALUES * nbits as usize / 8);
            let least = q.data.len().div_ceil(per);
            assert!(
                (least..=least + 1).contains(&chunks.len()),
                "{t:?}: {chunks:?}"
            );
            assert!(chunks.iter().all(|&c| c <= per), "{t:?}: {chunks:?}");
        }
    }

    #[test]
    fn errors_are_the_kernels_and_the_reads() {
        let v = vec![1.0f32; 12];
        let e = streamed(
            &v.as_slice(),
            12,
            &[5, 2],
            0,
            &Target::Linear(8),
            Dialect::F32,
        )
        .unwrap_err();
        assert!(matches!(
            e,
            StreamError::Kernel(KernelError::ChannelsNotDivisible { .. })
        ));
        let mut big = vec![0.5f32; 3 * BLOCK];
        big[2 * BLOCK + 5] = 70000.0;
        let e = streamed(
            &big.as_slice(),
            big.len(),
            &[],
            0,
            &Target::Fp16,
            Dialect::F32,
        )
        .unwrap_err();
        assert!(matches!(
            e,
            StreamError::Kernel(KernelError::Fp16Range { value }) if value == 70000.0
        ));
        let failing = Failing {
            values: &big,
            from: 2 * BLOCK,
        };
        for t in [Target::Fp16, Target::Linear(4), Target::KmeansLut(3)] {
            let shape = [3, BLOCK as u64];
            let e = streamed(&failing, big.len(), &shape, 0, &t, Dialect::F32).unwrap_err();
            assert!(matches!(e, StreamError::Read(_)), "{t:?}: {e:?}");
        }
    }

    #[test]
    fn a_sink_that_refuses_stops_the_conversion() {
        struct Refusing;
        impl DataSink for Refusing {
            fn buffer(&mut self, capacity: usize) -> Vec<u8> {
                Vec::with_capacity(capacity)
            }
            fn put(&mut self, _: Vec<u8>) -> std::io::Result<()> {
                Err(std::io::Error::other("disk full"))
            }
        }
        let v = vec![0.25f32; 64];
        for t in [Target::Fp16, Target::Linear(8), Target::KmeansLut(2)] {
            let e = quantize_streamed(
                &v.as_slice(),
                64,
                &[8, 8],
                0,
                &t,
                Dialect::F32,
                &mut Refusing,
            )
            .unwrap_err();
            assert!(matches!(e, StreamError::Write(_)), "{t:?}: {e:?}");
        }
    }

    #[test]
    fn blocks_start_on_byte_boundaries_and_cover_every_channel() {
        for (channels, inner, nbits) in [(1000, 77, 3), (5, 1, 1), (1 << 12, 4096, 8), (9, 3, 5)] {
            let view = ChannelView {
                len: channels * inner,
                channels,
                inner,
            };
            let blocks = channel_blocks(&view, nbits).unwrap();
            assert_eq!(blocks.first().map(|b| b.start), Some(0));
            assert_eq!(blocks.last().map(|b| b.end), Some(channels));
            for w in blocks.windows(2) {
                assert_eq!(w[0].end, w[1].start);
                assert_eq!(w[1].start * inner * nbits as usize % 8, 0);
            }
        }
        let axis1 = ChannelView {
            len: 24,
            channels: 3,
            inner: 4,
        };
        assert_eq!(channel_blocks(&axis1, 8), None);
    }
}
