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
use super::kernels::{self, Dialect, KernelError, Quantized};
use super::plan::{LayerDecision, Plan};
use super::rewrite::{self, EmitError};
use super::{write, Target};
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
    /// The file written.
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
}

/// Quantizes `file` per `plan` into `output` (temp file, fsync, verify, rename).
pub fn quantize(
    file: &ModelFile,
    plan: &Plan,
    output: &Path,
    opts: &RunOptions,
) -> Result<Report, QuantError> {
    let start = Instant::now();
    let rw = estimate::rewrite(&file.index, file.bytes(), plan)?;
    let expected = rw.layout.total;
    write::write_verified(
        &file.path,
        output,
        expected,
        &opts.cancel,
        !opts.no_sync,
        |out| produce_into(file, plan, &rw, opts, out),
    )?;
    Ok(report(&file.index, plan, output, expected, start.elapsed()))
}

/// Quantizes `file` per `plan` into memory (tests, previews).
pub fn quantize_to_vec(
    file: &ModelFile,
    plan: &Plan,
    opts: &RunOptions,
) -> Result<Vec<u8>, QuantError> {
    let rw = estimate::rewrite(&file.index, file.bytes(), plan)?;
    let mut out = Vec::with_capacity(usize::try_from(rw.layout.total).unwrap_or(0));
    produce_into(file, plan, &rw, opts, &mut out)?;
    Ok(out)
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
    }
}

fn job_layer(index: &ModelIndex, plan: &Plan, job: &Job) -> LayerId {
    match job {
        Job::Tensor { weight, .. } => index.weights.get(*weight).map_or(0, |w| w.layer),
        Job::CreatedBias { fusion, .. } => plan.fusions.get(*fusion).map_or(0, |f| f.layer),
    }
}

fn produce_into(
    file: &ModelFile,
    plan: &Plan,
    rw: &estimate::Rewrite,
    opts: &RunOptions,
    out: &mut dyn std::io::Write,
) -> Result<(), QuantError> {
    let index = &file.index;
    let bytes = file.bytes();
    let path = file.path.as_path();
    let mut layers_total = 0;
    let mut last = None;
    for j in &rw.jobs {
        let l = job_layer(index, plan, j);
        if last != Some(l) {
            layers_total += 1;
            last = Some(l);
        }
    }
    let mut fused_cache: HashMap<LayerId, FusedValues> = HashMap::new();
    let reader = Payloads::new(file);
    let mut done = 0usize;
    let mut last_layer: Option<LayerId> = None;
    let mut failure: Option<QuantError> = None;
    let mut produce = |job: usize| -> Result<Vec<Vec<u8>>, EmitError> {
        let mut run =
            |fused_cache: &mut HashMap<LayerId, FusedValues>| -> Result<Vec<Vec<u8>>, QuantError> {
                if opts.cancel.is_cancelled() {
                    return Err(QuantError::Cancelled);
                }
                let j = rw.jobs.get(job).ok_or_else(|| QuantError::Verify {
                    path: path.to_path_buf(),
                    message: format!("unknown job {job}"),
                })?;
                let l = job_layer(index, plan, j);
                if last_layer != Some(l) {
                    last_layer = Some(l);
                    done += 1;
                    if let Some(p) = &opts.progress {
                        p(&Progress {
                            done,
                            total: layers_total,
                            layer: index
                                .layers
                                .get(l)
                                .map(|x| x.name.clone())
                                .unwrap_or_default(),
                        });
                    }
                }
                produce_job(file, &reader, plan, j, fused_cache, opts.dialect)
                    .map_err(|e| attribute(e, path, index, l, j))
            };
        run(&mut fused_cache).map_err(|e| {
            let msg = e.to_string();
            failure = Some(e);
            EmitError::Job(msg.into())
        })
    };
    let mut copy = |r: std::ops::Range<usize>,
                    out: &mut dyn std::io::Write|
     -> Result<bool, EmitError> { reader.copy(r, out).map_err(EmitError::Io) };
    let r = rewrite::emit_with(bytes, &rw.edits, &rw.layout, out, &mut produce, &mut copy);
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

fn produce_job(
    file: &ModelFile,
    reader: &Payloads,
    plan: &Plan,
    job: &Job,
    fused_cache: &mut HashMap<LayerId, FusedValues>,
    dialect: Dialect,
) -> Result<Vec<Vec<u8>>, QuantError> {
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
        let v = fusion::compute(path, bytes, index, fp)?;
        cache.insert(layer, v.clone());
        Ok(v)
    };
    let missing = |what: &str| QuantError::Kernel {
        path: path.to_path_buf(),
        layer: String::new(),
        field: what.into(),
        message: "fusion produced no values".into(),
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
                return Ok(vec![encode_float(&values, true, w.is_updatable)]);
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
                None => Ok(vec![encode_float(&values, false, w.is_updatable)]),
                Some(t) => {
                    let q = kernels::quantize(&values, &w.shape, w.axis, t, dialect)
                        .map_err(kernel_error);
                    reader.recycle(values);
                    Ok(encode_quantized(q?, w.is_updatable))
                }
            }
        }
        Job::CreatedBias { fusion, target, .. } => {
            let fp = plan.fusions.get(*fusion).ok_or_else(|| missing("bias"))?;
            let fv = fused_values(fp.layer, fused_cache)?;
            let values = fv.bias.ok_or_else(|| missing("bias"))?;
            match target {
                None => Ok(vec![encode_float(&values, false, false)]),
                Some(t) => {
                    let shape = [values.len() as u64];
                    let q =
                        kernels::quantize(&values, &shape, 0, t, dialect).map_err(kernel_error)?;
                    Ok(encode_quantized(q, false))
                }
            }
        }
    }
}

/// A float32 WeightParams body holding only `values` (and isUpdatable); see
/// [`encode::float_body`].
fn encode_float(values: &[f32], empty_quantization: bool, is_updatable: bool) -> Vec<u8> {
    encode::float_body(&only_updatable(is_updatable), values, empty_quantization)
}

/// A converted WeightParams body in canonical field order (spec §2.7), as pieces: the
/// payload is moved, not copied.
fn encode_quantized(q: Quantized, is_updatable: bool) -> Vec<Vec<u8>> {
    let (head, tail) = encode::quantized_pieces(&only_updatable(is_updatable), &q);
    vec![head, q.data, tail]
}

/// The original WeightParams the writer re-encodes: a float32 tensor, perhaps updatable.
fn only_updatable(is_updatable: bool) -> Original<'static> {
    Original {
        is_updatable,
        ..Original::default()
    }
}

/// Reads weight payloads with positioned reads from the file when it is on disk, so that
/// the memory map's pages of converted tensors never become resident (peak memory stays
/// near the output size); falls back to the in-memory bytes.
struct Payloads {
    file: Option<std::fs::File>,
    /// A buffer reused across tensors: fresh allocations of large tensors cost more in page
    /// faults and zeroing than the reads themselves.
    spare: std::cell::RefCell<Vec<f32>>,
}

impl Payloads {
    fn new(model: &ModelFile) -> Payloads {
        let file = std::fs::File::open(&model.path).ok().filter(|f| {
            f.metadata()
                .is_ok_and(|m| m.len() == model.bytes().len() as u64)
        });
        Payloads {
            file,
            spare: std::cell::RefCell::new(Vec::new()),
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

    /// Hands a values buffer back for reuse.
    fn recycle(&self, v: Vec<f32>) {
        let mut spare = self.spare.borrow_mut();
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
            use std::os::unix::fs::FileExt;
            let n = (span.end - span.start) / 4;
            let mut v = std::mem::take(&mut *self.spare.borrow_mut());
            v.clear();
            v.resize(n, 0.0);
            // SAFETY: the byte view covers exactly the vector's initialised elements, and
            // every bit pattern is a valid f32; on little-endian targets the file's
            // little-endian floats are the native representation.
            let dst = unsafe { std::slice::from_raw_parts_mut(v.as_mut_ptr().cast::<u8>(), n * 4) };
            f.read_exact_at(dst, span.start as u64)
                .map_err(|source| QuantError::Io {
                    path: model.path.clone(),
                    source,
                })?;
            return Ok(v);
        }
        fusion::read_values(&model.path, model.bytes(), w)
    }
}
