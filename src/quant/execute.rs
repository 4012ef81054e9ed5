//! Carrying out a plan: kernels on every tensor, the lossless rewrite, the safe write.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::encode::{self, Original};
use super::error::{PlanError, PlanErrorKind, QuantError};
use super::estimate::{self, Job};
use super::fusion::{self, FusedValues};
use super::kernels::{self, DataSink, Dialect, KernelError, Quantized, ValueSource};
use super::plan::{LayerDecision, Plan};
use super::rewrite::{self, EmitError};
use super::write_package::{self, PackageWritten};
use super::Target;
use crate::model::{LayerId, ModelFile, ModelIndex};

/// A cancellation flag shared between the caller and a running quantization.
#[derive(Debug, Clone, Default)]
pub struct CancelToken(Arc<AtomicBool>);

impl CancelToken {
    /// A fresh, not cancelled token.
    pub fn new() -> CancelToken {
        CancelToken::default()
    }

    /// Asks the run to stop at the next tensor.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    /// Whether [`cancel`](Self::cancel) was called.
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// Progress of a run: `done` of `total` layers, the one being converted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress {
    /// Layers started so far (1-based when reporting a layer).
    pub done: usize,
    /// Layers with tensors to produce.
    pub total: usize,
    /// The layer's name.
    pub layer: String,
}

/// A progress callback.
pub type ProgressFn = Arc<dyn Fn(&Progress) + Send + Sync>;

/// Options of a run.
#[derive(Clone, Default)]
pub struct RunOptions {
    /// Checked between tensors.
    pub cancel: CancelToken,
    /// Called when a layer starts.
    pub progress: Option<ProgressFn>,
    /// Which coremltools arithmetic to reproduce (float32 by default).
    pub dialect: Dialect,
    /// Skip the fsync before the rename (faster, not crash-safe; benchmarks only).
    pub no_sync: bool,
}

impl std::fmt::Debug for RunOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunOptions")
            .field("cancel", &self.cancel)
            .field("progress", &self.progress.is_some())
            .field("dialect", &self.dialect)
            .field("no_sync", &self.no_sync)
            .finish()
    }
}

/// What one layer became.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerResult {
    /// The layer.
    pub layer: LayerId,
    /// Its name.
    pub name: String,
    /// The decision carried out.
    pub decision: LayerDecision,
    /// Why.
    pub reason: String,
    /// Its WeightParams bytes before.
    pub bytes_before: u64,
    /// Its WeightParams bytes after.
    pub bytes_after: u64,
}

/// The outcome of a run.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// The file (or package folder) written.
    pub output: PathBuf,
    /// Input size.
    pub bytes_before: u64,
    /// Output size.
    pub bytes_after: u64,
    /// Tensors converted.
    pub tensors_converted: usize,
    /// Per layer, in index order.
    pub layers: Vec<LayerResult>,
    /// Wall time of the run.
    pub elapsed: Duration,
    /// Deviations from coremltools 9.0 and other remarks.
    pub notes: Vec<String>,
    /// For a package output (`output` ends in `.mlpackage`): its model file and total bytes.
    /// `bytes_after` is the model file's size.
    pub package: Option<PackageWritten>,
}

/// Quantizes `file` per `plan` into `output` (temp file, fsync, verify, rename): a package
/// folder when `output` ends in `.mlpackage`, else a plain `.mlmodel` file.
pub fn quantize(
    file: &ModelFile,
    plan: &Plan,
    output: &Path,
    opts: &RunOptions,
) -> Result<Report, QuantError> {
    let start = Instant::now();
    let rw = unchanged(file, estimate::rewrite(&file.index, file.bytes(), plan))?;
    let expected = rw.layout.total;
    let package = write_package::write_output(
        &file.path,
        output,
        expected,
        &opts.cancel,
        !opts.no_sync,
        |out| unchanged(file, produce_into(file, plan, &rw, opts, out)),
    )?;
    let mut report = report(&file.index, plan, output, expected, start.elapsed());
    report.package = package;
    Ok(report)
}

/// Quantizes `file` per `plan` into memory (tests, previews).
pub fn quantize_to_vec(
    file: &ModelFile,
    plan: &Plan,
    opts: &RunOptions,
) -> Result<Vec<u8>, QuantError> {
    let rw = unchanged(file, estimate::rewrite(&file.index, file.bytes(), plan))?;
    let mut out = Vec::with_capacity(usize::try_from(rw.layout.total).unwrap_or(0));
    unchanged(file, produce_into(file, plan, &rw, opts, &mut out))?;
    Ok(out)
}

/// `result`, unless the input changed while it was read: then that is the error (a read of
/// a truncated map saw zeros, or a positioned read came up short).
fn unchanged<T>(file: &ModelFile, result: Result<T, QuantError>) -> Result<T, QuantError> {
    file.check_unchanged()?;
    result
}

fn report(
    index: &ModelIndex,
    plan: &Plan,
    output: &Path,
    bytes_after: u64,
    elapsed: Duration,
) -> Report {
    Report {
        output: output.to_path_buf(),
        bytes_before: index.file_bytes,
        bytes_after,
        tensors_converted: plan.converted(),
        layers: index
            .layers
            .iter()
            .zip(&plan.layers)
            .enumerate()
            .map(|(i, (l, lp))| LayerResult {
                layer: i,
                name: l.name.clone(),
                decision: lp.decision.clone(),
                reason: lp.reason.to_string(),
                bytes_before: lp.bytes_before,
                bytes_after: lp.bytes_after,
            })
            .collect(),
        elapsed,
        notes: plan.notes.clone(),
        package: None,
    }
}

fn job_layer(index: &ModelIndex, plan: &Plan, job: &Job) -> LayerId {
    match job {
        Job::Tensor { weight, .. } => index.weights.get(*weight).map_or(0, |w| w.layer),
        Job::CreatedBias { fusion, .. } => plan.fusions.get(*fusion).map_or(0, |f| f.layer),
    }
}

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

/// How many chunks of converted bodies may wait for the writer.
const AHEAD: usize = 4;

fn produce_into(
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
        self.tx
            .send((self.job, Part::Bytes(chunk)))
            .map_err(|_| std::io::Error::other("the writer stopped"))
    }
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
                if tx.send((at, Part::Bytes(piece))).is_err() {
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

fn attribute(e: QuantError, path: &Path, index: &ModelIndex, l: LayerId, j: &Job) -> QuantError {
    let layer = index
        .layers
        .get(l)
        .map(|x| x.name.clone())
        .unwrap_or_default();
    let field = match j {
        Job::Tensor { weight, .. } => index
            .weights
            .get(*weight)
            .map(|w| w.field.clone())
            .unwrap_or_default(),
        Job::CreatedBias { .. } => "bias".into(),
    };
    match e {
        QuantError::Plan(p) => {
            QuantError::Plan(p.in_file(path).at(format!("layer {layer:?} {field}")))
        }
        QuantError::Kernel { message, .. } => QuantError::Kernel {
            path: path.to_path_buf(),
            layer,
            field,
            message,
        },
        other => other,
    }
}

fn kernel_error(e: KernelError) -> QuantError {
    match e {
        KernelError::Fp16Range { .. } => QuantError::Plan(PlanError::new(PlanErrorKind::Fp16Range)),
        KernelError::ChannelsNotDivisible { weights, channels } => {
            QuantError::Plan(PlanError::new(PlanErrorKind::ChannelsDoNotDivide {
                count: weights as u64,
                channels,
            }))
        }
        other => QuantError::Kernel {
            path: PathBuf::new(),
            layer: String::new(),
            field: String::new(),
            message: other.to_string(),
        },
    }
}

/// [`produce_job`] with an error attributed to the job's layer and field.
fn convert(
    file: &ModelFile,
    reader: &Payloads,
    plan: &Plan,
    job: &Job,
    fused_cache: &mut HashMap<LayerId, FusedValues>,
    opts: &RunOptions,
    sink: &mut dyn DataSink,
) -> Result<(), QuantError> {
    produce_job(file, reader, plan, job, fused_cache, opts.dialect, sink).map_err(|e| {
        let l = job_layer(&file.index, plan, job);
        attribute(e, &file.path, &file.index, l, job)
    })
}

/// Puts the new body of `job` into `sink`, in order.
fn produce_job(
    file: &ModelFile,
    reader: &Payloads,
    plan: &Plan,
    job: &Job,
    fused_cache: &mut HashMap<LayerId, FusedValues>,
    dialect: Dialect,
    sink: &mut dyn DataSink,
) -> Result<(), QuantError> {
    let index = &file.index;
    let bytes = file.bytes();
    let path = file.path.as_path();
    let fused_values = |layer: LayerId,
                        cache: &mut HashMap<LayerId, FusedValues>|
     -> Result<FusedValues, QuantError> {
        if let Some(v) = cache.get(&layer) {
            return Ok(v.clone());
        }
        let fp = plan.fusion_of(layer).ok_or_else(|| QuantError::Verify {
            path: path.to_path_buf(),
            message: "fusion record missing".into(),
        })?;
        let v = fusion::compute(path, bytes, index, fp, dialect)?;
        cache.insert(layer, v.clone());
        Ok(v)
    };
    let missing = |what: &str| QuantError::Kernel {
        path: path.to_path_buf(),
        layer: String::new(),
        field: what.into(),
        message: "fusion produced no values".into(),
    };
    let put = |sink: &mut dyn DataSink, piece: Vec<u8>| {
        sink.put(piece).map_err(|source| QuantError::Io {
            path: path.to_path_buf(),
            source,
        })
    };
    match job {
        Job::Tensor {
            weight,
            target,
            fused,
            ..
        } => {
            let w = index.weights.get(*weight).ok_or_else(|| missing("?"))?;
            if *target == Some(Target::Dequantize) {
                let body = bytes.get(w.body.clone()).ok_or_else(|| missing(&w.field))?;
                let values = kernels::dequantize_weight_params(body, &w.shape, w.axis)
                    .map_err(kernel_error)?;
                return put(sink, encode_float(&values, true, w.is_updatable));
            }
            if let (false, Some(t), Some(source)) = (*fused, target, reader.source(file, w)) {
                if kernels::stream::streams(t) {
                    let original = only_updatable(w.is_updatable);
                    let expected = data_len(w.count as usize, t) as u64;
                    let half = *t == Target::Fp16;
                    put(sink, encode::quantized_head(&original, half, expected))?;
                    let s = kernels::quantize_streamed(
                        source.as_ref(),
                        w.count as usize,
                        &w.shape,
                        w.axis,
                        t,
                        dialect,
                        sink,
                    )
                    .map_err(|e| match e {
                        kernels::StreamError::Kernel(k) => kernel_error(k),
                        kernels::StreamError::Read(source)
                        | kernels::StreamError::Write(source) => QuantError::Io {
                            path: path.to_path_buf(),
                            source,
                        },
                    })?;
                    if s.data_len != expected {
                        return Err(QuantError::Verify {
                            path: path.to_path_buf(),
                            message: format!(
                                "{} bytes of data converted, {expected} were planned",
                                s.data_len
                            ),
                        });
                    }
                    return put(sink, encode::quantized_tail(&original, s.nbits, &s.params));
                }
            }
            let values = if *fused {
                let fv = fused_values(w.layer, fused_cache)?;
                fv.get(&w.field)
                    .map(<[f32]>::to_vec)
                    .ok_or_else(|| missing(&w.field))?
            } else {
                reader.values(file, w)?
            };
            match target {
                None => put(sink, encode_float(&values, false, w.is_updatable)),
                Some(t) => {
                    let q = kernels::quantize(&values, &w.shape, w.axis, t, dialect)
                        .map_err(kernel_error);
                    reader.recycle(values);
                    put_quantized(q?, w.is_updatable, &mut |p| put(sink, p))
                }
            }
        }
        Job::CreatedBias { fusion, target, .. } => {
            let fp = plan.fusions.get(*fusion).ok_or_else(|| missing("bias"))?;
            let fv = fused_values(fp.layer, fused_cache)?;
            let values = fv.bias.ok_or_else(|| missing("bias"))?;
            match target {
                None => put(sink, encode_float(&values, false, false)),
                Some(t) => {
                    let shape = [values.len() as u64];
                    let q =
                        kernels::quantize(&values, &shape, 0, t, dialect).map_err(kernel_error)?;
                    put_quantized(q, false, &mut |p| put(sink, p))
                }
            }
        }
    }
}

/// Bytes of the converted data of `count` weights.
fn data_len(count: usize, target: &Target) -> usize {
    match target {
        Target::Fp16 => count * 2,
        Target::LinearSymmetric => count,
        Target::Linear(b) | Target::LinearLut(b) | Target::KmeansLut(b) => {
            kernels::packed_len(count, *b)
        }
        Target::CustomLut(b, _) => kernels::packed_len(count, *b),
        Target::Dequantize => 0,
    }
}

/// A float32 WeightParams body holding only `values` (and isUpdatable); see
/// [`encode::float_body`].
fn encode_float(values: &[f32], empty_quantization: bool, is_updatable: bool) -> Vec<u8> {
    encode::float_body(&only_updatable(is_updatable), values, empty_quantization)
}

/// A converted WeightParams body in canonical field order (spec §2.7), as pieces given to
/// `put`: the payload is moved, not copied.
fn put_quantized(
    q: Quantized,
    is_updatable: bool,
    put: &mut dyn FnMut(Vec<u8>) -> Result<(), QuantError>,
) -> Result<(), QuantError> {
    let (head, tail) = encode::quantized_pieces(&only_updatable(is_updatable), &q);
    put(head)?;
    if !q.data.is_empty() {
        put(q.data)?;
    }
    put(tail)
}

/// The original WeightParams the writer re-encodes: a float32 tensor, perhaps updatable.
fn only_updatable(is_updatable: bool) -> Original<'static> {
    Original {
        is_updatable,
        ..Original::default()
    }
}

/// Reads weight payloads of a memory-mapped model with positioned reads of the mapped file,
/// so that the map's pages of converted tensors never become resident (peak memory stays
/// near the output size); reads a model held in memory from its bytes.
struct Payloads {
    file: Option<std::fs::File>,
    /// A buffer reused across tensors: fresh allocations of large tensors cost more in page
    /// faults and zeroing than the reads themselves.
    spare: std::sync::Mutex<Vec<f32>>,
}

impl Payloads {
    fn new(model: &ModelFile) -> Payloads {
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
    fn copy(
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

    /// The float32 payload of `w` as a source for the streamed kernels: positioned reads of
    /// the mapped file, or the bytes of a model held in memory; `None` without a payload.
    fn source<'a>(
        &'a self,
        model: &'a ModelFile,
        w: &crate::model::WeightInfo,
    ) -> Option<Box<dyn ValueSource + 'a>> {
        let span = w.float_values.as_ref().filter(|s| !s.is_empty())?;
        if span.end - span.start != w.count as usize * 4 {
            return None;
        }
        #[cfg(all(unix, target_endian = "little"))]
        if let Some(file) = &self.file {
            return Some(Box::new(FileFloats {
                file,
                offset: span.start as u64,
            }));
        }
        model
            .bytes()
            .get(span.clone())
            .map(|b| Box::new(ByteFloats(b)) as Box<_>)
    }

    /// Hands a values buffer back for reuse.
    fn recycle(&self, v: Vec<f32>) {
        let mut spare = self.spare.lock().unwrap_or_else(|p| p.into_inner());
        if v.capacity() > spare.capacity() {
            *spare = v;
        }
    }

    fn values(
        &self,
        model: &ModelFile,
        w: &crate::model::WeightInfo,
    ) -> Result<Vec<f32>, QuantError> {
        #[cfg(all(unix, target_endian = "little"))]
        if let (Some(f), Some(span)) = (
            &self.file,
            w.float_values.as_ref().filter(|s| !s.is_empty()),
        ) {
            let n = (span.end - span.start) / 4;
            let mut v = std::mem::take(&mut *self.spare.lock().unwrap_or_else(|p| p.into_inner()));
            v.clear();
            if v.capacity() < n {
                v.reserve_exact(n);
                kernels::pack::advise_huge(v.as_ptr(), v.capacity() * 4);
            }
            read_floats(f, span.start as u64, &mut v.spare_capacity_mut()[..n]).map_err(
                |source| QuantError::Io {
                    path: model.path.clone(),
                    source,
                },
            )?;
            // SAFETY: `read_floats` succeeded, so it initialised all of the first n
            // elements of the spare capacity (every bit pattern is a valid f32).
            unsafe { v.set_len(n) };
            return Ok(v);
        }
        fusion::read_values(&model.path, model.bytes(), w)
    }
}

/// Output buffers of written tensors, kept for the next ones: a fresh large buffer costs a
/// page fault and a zeroed page for every page, more than filling it again.
#[derive(Default)]
struct OutputPool(std::sync::Mutex<Vec<Vec<u8>>>);

impl OutputPool {
    /// Buffers kept (the pipeline holds at most a few chunks at once).
    const KEEP: usize = AHEAD + 4;

    /// The smallest spare buffer that holds `len` bytes, with its old contents (empty if
    /// there is none).
    fn take(&self, len: usize) -> Vec<u8> {
        let mut spares = self.0.lock().unwrap_or_else(|p| p.into_inner());
        match spares.iter().position(|b| b.capacity() >= len) {
            Some(i) => spares.remove(i),
            None => Vec::new(),
        }
    }

    /// Keeps a written chunk for reuse (large ones only, the largest ones).
    fn give_back(&self, chunk: Vec<u8>) {
        if chunk.capacity() < 1 << 20 {
            return;
        }
        let mut spares = self.0.lock().unwrap_or_else(|p| p.into_inner());
        spares.push(chunk);
        spares.sort_by_key(Vec::capacity);
        let extra = spares.len().saturating_sub(Self::KEEP);
        spares.drain(..extra);
    }
}

/// Little-endian floats at a byte offset of a file, read with positioned reads.
#[cfg(all(unix, target_endian = "little"))]
struct FileFloats<'a> {
    file: &'a std::fs::File,
    offset: u64,
}

#[cfg(all(unix, target_endian = "little"))]
impl ValueSource for FileFloats<'_> {
    fn read(&self, start: usize, dst: &mut [std::mem::MaybeUninit<f32>]) -> std::io::Result<()> {
        read_exact_at(self.file, self.offset + start as u64 * 4, dst)
    }
}

/// Little-endian floats held in memory.
struct ByteFloats<'a>(&'a [u8]);

impl ValueSource for ByteFloats<'_> {
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

/// Bytes per positioned read of a large payload (the reads run on all cores).
#[cfg(all(unix, target_endian = "little"))]
const READ_CHUNK: usize = 4 << 20;

/// Fills `dst` with the little-endian floats at byte `offset` of `f`, with positioned reads
/// straight into the (uninitialised) buffer, in parallel for large payloads: no zeroing
/// first, and the copies out of the page cache shared between the cores.
#[cfg(all(unix, target_endian = "little"))]
fn read_floats(
    f: &std::fs::File,
    offset: u64,
    dst: &mut [std::mem::MaybeUninit<f32>],
) -> std::io::Result<()> {
    use rayon::prelude::*;
    let per = READ_CHUNK / 4;
    if dst.len() <= per {
        return read_exact_at(f, offset, dst);
    }
    dst.par_chunks_mut(per)
        .enumerate()
        .try_for_each(|(i, part)| read_exact_at(f, offset + (i * READ_CHUNK) as u64, part))
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
