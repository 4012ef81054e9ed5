//! The pipeline of a run: a worker thread converts the jobs in order and sends their
//! bodies a chunk at a time, while the calling thread writes the file.

use std::collections::HashMap;

use super::job::{convert, job_layer};
use super::payloads::{OutputPool, Payloads};
use super::{Progress, ProgressFn, RunOptions};
use crate::model::{LayerId, ModelFile, ModelIndex};
use crate::quant::error::QuantError;
use crate::quant::estimate::{self, Job};
use crate::quant::fusion::FusedValues;
use crate::quant::kernels::stream::CHUNK;
use crate::quant::kernels::DataSink;
use crate::quant::plan::Plan;
use crate::quant::rewrite::{self, EmitError};
use crate::quant::Target;

/// What both sides of the pipeline share: the run's inputs and its spare output buffers.
#[derive(Clone, Copy)]
struct Run<'a> {
    file: &'a ModelFile,
    plan: &'a Plan,
    rw: &'a estimate::Rewrite,
    opts: &'a RunOptions,
    outputs: &'a OutputPool,
}

impl<'a> Run<'a> {
    /// The model, plan, rewrite, options and buffer pool, in that order.
    fn parts(
        &self,
    ) -> (
        &'a ModelFile,
        &'a Plan,
        &'a estimate::Rewrite,
        &'a RunOptions,
        &'a OutputPool,
    ) {
        (self.file, self.plan, self.rw, self.opts, self.outputs)
    }
}

/// How many chunks of converted bodies may wait for the writer: enough (64 MiB of 4 MiB
/// chunks) that the kernels keep going while a direct write waits on a slow disk (4 chunks
/// left the worker waiting a third of an 8-bit run on this machine's virtual disk).
pub(super) const AHEAD: usize = 16;

pub(super) fn produce_into(
    file: &ModelFile,
    plan: &Plan,
    rw: &estimate::Rewrite,
    opts: &RunOptions,
    out: &mut dyn std::io::Write,
) -> Result<(), QuantError> {
    let outputs = OutputPool::default();
    let run = Run {
        file,
        plan,
        rw,
        opts,
        outputs: &outputs,
    };
    if rayon::current_thread_index().is_some() {
        // Called from a task of the thread pool: this thread waiting for a worker whose
        // kernels need the pool could, with every pool thread doing the same, leave the
        // kernels no thread at all. Convert here instead (the kernels then run nested in the
        // pool, which never blocks): no worker, so every job is converted by the writer.
        let (tx, rx) = std::sync::mpsc::sync_channel(0);
        drop(tx);
        let progress = Announcer::new(file, plan, rw, opts);
        return emit_pipelined(&run, out, rx, Some(progress));
    }
    // A pipeline: a worker thread converts the tensors in job order (its kernels use every
    // core) and sends their bodies a chunk at a time, while this thread writes the chunks
    // before, so conversion and writing overlap. At most AHEAD chunks wait between the two.
    std::thread::scope(|scope| {
        let (tx, rx) = std::sync::mpsc::sync_channel(AHEAD);
        let shared = &run;
        let worker = scope.spawn(move || convert_all(shared, &tx));
        let r = emit_pipelined(&run, out, rx, None);
        // The receiver is gone now: a worker blocked on sending wakes up and stops.
        let _ = worker.join();
        r
    })
}

/// A piece of job `.0`'s body on its way from the worker to the writer.
type Message = (usize, Part);

/// What the worker sends about a job: its body's bytes in order, then whether it is whole.
enum Part {
    /// The next bytes of the body.
    Bytes(Vec<u8>),
    /// The body is complete, or could not be made.
    Done(Result<(), QuantError>),
}

/// The worker's sink for one job: every chunk goes to the writer at once (waiting while
/// AHEAD chunks are queued).
struct ToWriter<'a> {
    job: usize,
    tx: &'a std::sync::mpsc::SyncSender<Message>,
    outputs: &'a OutputPool,
}

impl DataSink for ToWriter<'_> {
    fn buffer(&mut self, capacity: usize) -> Vec<u8> {
        self.outputs.take(capacity)
    }

    fn put(&mut self, chunk: Vec<u8>) -> std::io::Result<()> {
        send_piece(self.tx, self.job, chunk)
            .map_err(|()| std::io::Error::other("the writer stopped"))
    }
}

/// Sends a piece of job `job`'s body, cut into messages of at most one streamed chunk, so
/// that the queue holds at most AHEAD × [`CHUNK`] bytes whatever the kernel (a whole tensor's
/// output is copied into the smaller messages). `Err` when the writer is gone.
fn send_piece(
    tx: &std::sync::mpsc::SyncSender<Message>,
    job: usize,
    piece: Vec<u8>,
) -> Result<(), ()> {
    if piece.len() <= CHUNK {
        return tx.send((job, Part::Bytes(piece))).map_err(|_| ());
    }
    for part in piece.chunks(CHUNK) {
        tx.send((job, Part::Bytes(part.to_vec()))).map_err(|_| ())?;
    }
    Ok(())
}

/// A body kept whole, for a job converted alongside another one.
#[derive(Default)]
struct Pieces(Vec<Vec<u8>>);

impl DataSink for Pieces {
    fn buffer(&mut self, capacity: usize) -> Vec<u8> {
        Vec::with_capacity(capacity)
    }

    fn put(&mut self, chunk: Vec<u8>) -> std::io::Result<()> {
        self.0.push(chunk);
        Ok(())
    }
}

/// The writer's own sink, for a job it converts itself: chunks go straight to the output.
struct ToOutput<'a, 'w> {
    out: &'a mut (dyn std::io::Write + 'w),
    outputs: &'a OutputPool,
    written: u64,
    /// The output's own error, kept apart from the conversion's.
    failed: Option<std::io::Error>,
}

impl DataSink for ToOutput<'_, '_> {
    fn buffer(&mut self, capacity: usize) -> Vec<u8> {
        self.outputs.take(capacity)
    }

    fn put(&mut self, chunk: Vec<u8>) -> std::io::Result<()> {
        match self.out.write_all(&chunk) {
            Ok(()) => {
                self.written += chunk.len() as u64;
                self.outputs.give_back(chunk);
                Ok(())
            }
            Err(e) => {
                let kind = e.kind();
                self.failed = Some(e);
                Err(kind.into())
            }
        }
    }
}

/// Reports each layer once, as its first job starts, to the run's progress callback.
struct Announcer<'a> {
    index: &'a ModelIndex,
    progress: Option<&'a ProgressFn>,
    total: usize,
    done: usize,
    last: Option<LayerId>,
}

impl<'a> Announcer<'a> {
    fn new(
        file: &'a ModelFile,
        plan: &Plan,
        rw: &estimate::Rewrite,
        opts: &'a RunOptions,
    ) -> Announcer<'a> {
        let index = &file.index;
        let mut total = 0;
        let mut last = None;
        for j in &rw.jobs {
            let l = job_layer(index, plan, j);
            if last != Some(l) {
                total += 1;
                last = Some(l);
            }
        }
        Announcer {
            index,
            progress: opts.progress.as_ref(),
            total,
            done: 0,
            last: None,
        }
    }

    /// A job of layer `l` starts.
    fn layer(&mut self, l: LayerId) {
        if self.last == Some(l) {
            return;
        }
        self.last = Some(l);
        self.done += 1;
        if let Some(p) = self.progress {
            p(&Progress {
                done: self.done,
                total: self.total,
                layer: self
                    .index
                    .layers
                    .get(l)
                    .map(|x| x.name.clone())
                    .unwrap_or_default(),
            });
        }
    }
}

/// The worker side of the pipeline: converts every job in order and sends the bodies a
/// chunk at a time, stopping at the first error or when the receiver is gone.
fn convert_all(run: &Run<'_>, tx: &std::sync::mpsc::SyncSender<Message>) {
    let (file, plan, rw, opts, outputs) = run.parts();
    let index = &file.index;
    let reader = Payloads::new(file);
    let partner = Payloads::new(file);
    let mut fused_cache: HashMap<LayerId, FusedValues> = HashMap::new();
    let mut progress = Announcer::new(file, plan, rw, opts);
    let mut k = 0;
    while k < rw.jobs.len() {
        let Some(j) = rw.jobs.get(k) else { break };
        if opts.cancel.is_cancelled() {
            let _ = tx.send((k, Part::Done(Err(QuantError::Cancelled))));
            return;
        }
        progress.layer(job_layer(index, plan, j));
        // A slow tensor (k-means) and the next slow one within a few jobs run at once: each
        // k-means kernel alone keeps only about one core busy, and the pair's working memory
        // is small next to the file's. The bodies between go with the first.
        let partner_at = if is_slow(index, j) {
            (k + 1..rw.jobs.len().min(k + 1 + PAIR_REACH)).find(|&m| is_slow(index, &rw.jobs[m]))
        } else {
            None
        };
        let Some(m) = partner_at else {
            let mut sink = ToWriter {
                job: k,
                tx,
                outputs,
            };
            let r = convert(file, &reader, plan, j, &mut fused_cache, opts, &mut sink);
            let stop = r.is_err();
            if tx.send((k, Part::Done(r))).is_err() || stop {
                return;
            }
            k += 1;
            continue;
        };
        for between in &rw.jobs[k + 1..=m] {
            progress.layer(job_layer(index, plan, between));
        }
        let mut spare_cache = HashMap::new();
        let (mut results, last) = rayon::join(
            || {
                (k..m)
                    .map(|at| {
                        let mut body = Pieces::default();
                        let job = &rw.jobs[at];
                        let r =
                            convert(file, &reader, plan, job, &mut fused_cache, opts, &mut body);
                        (at, body, r)
                    })
                    .collect::<Vec<_>>()
            },
            || {
                let mut body = Pieces::default();
                let job = &rw.jobs[m];
                let r = convert(file, &partner, plan, job, &mut spare_cache, opts, &mut body);
                (m, body, r)
            },
        );
        results.push(last);
        for (at, body, r) in results {
            let stop = r.is_err();
            for piece in body.0 {
                if send_piece(tx, at, piece).is_err() {
                    return;
                }
            }
            if tx.send((at, Part::Done(r))).is_err() || stop {
                return;
            }
        }
        k = m + 1;
    }
}

/// How many jobs ahead a slow job looks for a partner.
const PAIR_REACH: usize = 8;
/// Weights from which a k-means tensor counts as slow.
const SLOW_WEIGHTS: u64 = 1 << 16;
/// Weights above which a k-means tensor runs alone: its working set (the values, their sort
/// keys and the sort's scratch, 12 bytes a weight) should not be doubled.
const PAIR_MAX_WEIGHTS: u64 = 1 << 22;

/// Whether a job's kernel is slow enough (a large k-means tensor, but not a huge one) to run
/// two at once; fused layers are excluded (their values come from a cache the first of a
/// pair owns).
fn is_slow(index: &ModelIndex, job: &Job) -> bool {
    match job {
        Job::Tensor {
            weight,
            target: Some(Target::KmeansLut(_)),
            fused: false,
            ..
        } => index
            .weights
            .get(*weight)
            .is_some_and(|w| (SLOW_WEIGHTS..=PAIR_MAX_WEIGHTS).contains(&w.count)),
        _ => false,
    }
}

/// The writer side of the pipeline: emits the file, writing each tensor body as its chunks
/// come from the worker. Chunks of a job other than the one being written are kept until
/// its turn; a job the worker did not send (it stopped) is converted here. With `inline`
/// there is no worker: every job is converted here and its layer announced through
/// `inline`.
fn emit_pipelined(
    run: &Run<'_>,
    out: &mut dyn std::io::Write,
    rx: std::sync::mpsc::Receiver<Message>,
    mut inline: Option<Announcer<'_>>,
) -> Result<(), QuantError> {
    let (file, plan, rw, opts, outputs) = run.parts();
    let index = &file.index;
    let path = file.path.as_path();
    let reader = Payloads::new(file);
    let mut early: HashMap<usize, std::collections::VecDeque<Part>> = HashMap::new();
    let mut fused_cache: HashMap<LayerId, FusedValues> = HashMap::new();
    let mut failure: Option<QuantError> = None;
    let mut produce = |job: usize, out: &mut dyn std::io::Write| -> Result<u64, EmitError> {
        let mut written = 0u64;
        let r = loop {
            let part = match early.get_mut(&job).and_then(|q| q.pop_front()) {
                Some(p) => p,
                None => match rx.recv() {
                    Ok((k, p)) if k == job => p,
                    Ok((k, p)) => {
                        early.entry(k).or_default().push_back(p);
                        continue;
                    }
                    Err(_) if written > 0 => {
                        break Err(QuantError::Verify {
                            path: path.to_path_buf(),
                            message: format!("the conversion of job {job} stopped midway"),
                        });
                    }
                    Err(_) => {
                        // The worker stopped: convert here (a job asked for twice, or after
                        // the worker's error, which then repeats).
                        if opts.cancel.is_cancelled() {
                            break Err(QuantError::Cancelled);
                        }
                        let Some(j) = rw.jobs.get(job) else {
                            break Err(QuantError::Verify {
                                path: path.to_path_buf(),
                                message: format!("unknown job {job}"),
                            });
                        };
                        if let Some(a) = inline.as_mut() {
                            a.layer(job_layer(index, plan, j));
                        }
                        let mut sink = ToOutput {
                            out: &mut *out,
                            outputs,
                            written: 0,
                            failed: None,
                        };
                        let r = convert(file, &reader, plan, j, &mut fused_cache, opts, &mut sink);
                        if let Some(e) = sink.failed {
                            return Err(EmitError::Io(e));
                        }
                        break r.map(|()| sink.written);
                    }
                },
            };
            match part {
                Part::Bytes(b) => {
                    out.write_all(&b)?;
                    written += b.len() as u64;
                    outputs.give_back(b);
                }
                Part::Done(r) => break r.map(|()| written),
            }
        };
        r.map_err(|e| {
            let msg = e.to_string();
            failure = Some(e);
            EmitError::Job(msg.into())
        })
    };
    let mut copy = |r: std::ops::Range<usize>,
                    out: &mut dyn std::io::Write|
     -> Result<bool, EmitError> { reader.copy(r, out).map_err(EmitError::Io) };
    let r = rewrite::emit_with(
        file.bytes(),
        &rw.edits,
        &rw.layout,
        out,
        &mut produce,
        &mut copy,
    );
    match r {
        Ok(()) => Ok(()),
        Err(EmitError::Job(_)) => Err(failure.unwrap_or(QuantError::Cancelled)),
        Err(EmitError::Io(e)) => Err(QuantError::Io {
            path: path.to_path_buf(),
            source: e,
        }),
        Err(EmitError::Wire(e)) => Err(QuantError::Malformed {
            path: path.to_path_buf(),
            offset: e.offset as u64,
            message: e.message,
        }),
        Err(e @ EmitError::Length { .. }) => Err(QuantError::Verify {
            path: path.to_path_buf(),
            message: e.to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_pieces_cross_in_chunks_of_the_streamed_size() {
        let (tx, rx) = std::sync::mpsc::sync_channel(64);
        let piece: Vec<u8> = (0..2 * CHUNK + 5).map(|i| (i % 251) as u8).collect();
        send_piece(&tx, 3, piece.clone()).unwrap();
        send_piece(&tx, 3, vec![7; 10]).unwrap();
        drop(tx);
        let mut got = Vec::new();
        let mut sizes = Vec::new();
        for (job, part) in rx {
            assert_eq!(job, 3);
            let Part::Bytes(b) = part else {
                panic!("only bytes were sent")
            };
            sizes.push(b.len());
            got.extend(b);
        }
        assert_eq!(sizes, [CHUNK, CHUNK, 5, 10]);
        assert_eq!(got[..piece.len()], piece[..]);
        // A writer that is gone stops the sender.
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        drop(rx);
        assert!(send_piece(&tx, 0, vec![1; 3]).is_err());
    }
}
