//! One job's new body: the kernels on a tensor (streamed where they can be), encoded, with
//! errors attributed to the tensor's layer and field.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::payloads::Payloads;
use super::{CancelToken, RunOptions};
use crate::model::{LayerId, ModelFile, ModelIndex, WeightInfo};
use crate::quant::encode::{self, Original};
use crate::quant::error::{PlanError, PlanErrorKind, QuantError};
use crate::quant::estimate::Job;
use crate::quant::fusion::{self, FusedValues};
use crate::quant::kernels::ValueSource;
use crate::quant::kernels::{self, DataSink, Dialect, KernelError, Quantized, StreamError};
use crate::quant::plan::Plan;
use crate::quant::Target;

/// The layer a job belongs to.
pub(super) fn job_layer(index: &ModelIndex, plan: &Plan, job: &Job) -> LayerId {
    match job {
        Job::Tensor { weight, .. } => index.weights.get(*weight).map_or(0, |w| w.layer),
        Job::CreatedBias { fusion, .. } => plan.fusions.get(*fusion).map_or(0, |f| f.layer),
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
pub(super) fn convert(
    file: &ModelFile,
    reader: &Payloads,
    plan: &Plan,
    job: &Job,
    fused_cache: &mut HashMap<LayerId, FusedValues>,
    opts: &RunOptions,
    sink: &mut dyn DataSink,
) -> Result<(), QuantError> {
    let mut sink = Cancellable {
        inner: sink,
        cancel: &opts.cancel,
    };
    let r = produce_job(
        file,
        reader,
        plan,
        job,
        fused_cache,
        opts.dialect,
        &mut sink,
    );
    r.map_err(|e| {
        if opts.cancel.is_cancelled() {
            return QuantError::Cancelled;
        }
        let l = job_layer(&file.index, plan, job);
        attribute(e, &file.path, &file.index, l, job)
    })
}

/// A sink that refuses the next piece once the run is cancelled, so that a large tensor
/// stops within a chunk (4 MiB of output) instead of running to its end.
struct Cancellable<'a> {
    inner: &'a mut dyn DataSink,
    cancel: &'a CancelToken,
}

impl DataSink for Cancellable<'_> {
    fn buffer(&mut self, capacity: usize) -> Vec<u8> {
        self.inner.buffer(capacity)
    }

    fn put(&mut self, chunk: Vec<u8>) -> std::io::Result<()> {
        if self.cancel.is_cancelled() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::Interrupted,
                "the run was cancelled",
            ));
        }
        self.inner.put(chunk)
    }
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
            // Streamed targets read their own values (a payload that cannot be read directly
            // and fused values go the whole-tensor way).
            if let Some(t) = target
                .as_ref()
                .filter(|t| !*fused && kernels::stream::streams(t))
            {
                if let Some(source) = reader.source(file, w) {
                    return put_streamed(source.as_ref(), w, t, dialect, path, sink);
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

/// The new body of tensor `w` (its float32 values in `source`) converted to `t` by a streamed
/// kernel, put into `sink` as it is made: the head (whose only variable part is the data's
/// planned length), the data chunk by chunk, then the parameters.
fn put_streamed(
    source: &dyn ValueSource,
    w: &WeightInfo,
    t: &Target,
    dialect: Dialect,
    path: &Path,
    sink: &mut dyn DataSink,
) -> Result<(), QuantError> {
    let io = |source| QuantError::Io {
        path: path.to_path_buf(),
        source,
    };
    let original = only_updatable(w.is_updatable);
    let expected = data_len(w.count as usize, t) as u64;
    let half = *t == Target::Fp16;
    sink.put(encode::quantized_head(&original, half, expected))
        .map_err(io)?;
    let count = w.count as usize;
    let s = kernels::quantize_streamed(source, count, &w.shape, w.axis, t, dialect, sink).map_err(
        |e| match e {
            StreamError::Kernel(k) => kernel_error(k),
            StreamError::Read(e) | StreamError::Write(e) => io(e),
        },
    )?;
    if s.data_len != expected {
        return Err(QuantError::Verify {
            path: path.to_path_buf(),
            message: format!(
                "{} bytes of data converted, {expected} were planned",
                s.data_len
            ),
        });
    }
    sink.put(encode::quantized_tail(&original, s.nbits, &s.params))
        .map_err(io)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quant::kernels::stream::CHUNK;

    /// Counts the pieces it takes; cancels `token` after the first.
    struct CancelsAfterOne<'a> {
        token: &'a CancelToken,
        pieces: usize,
    }

    impl DataSink for CancelsAfterOne<'_> {
        fn buffer(&mut self, capacity: usize) -> Vec<u8> {
            Vec::with_capacity(capacity)
        }

        fn put(&mut self, _: Vec<u8>) -> std::io::Result<()> {
            self.pieces += 1;
            self.token.cancel();
            Ok(())
        }
    }

    #[test]
    fn a_cancelled_run_stops_within_the_tensor() {
        // Three chunks of output: the one after the cancel is refused.
        let n = 3 * CHUNK;
        let values: Vec<f32> = (0..n).map(|i| (i % 1024) as f32).collect();
        let token = CancelToken::new();
        let mut counting = CancelsAfterOne {
            token: &token,
            pieces: 0,
        };
        let mut sink = Cancellable {
            inner: &mut counting,
            cancel: &token,
        };
        let shape = [(n / 1024) as u64, 1024];
        let t = Target::Linear(8);
        let e = kernels::quantize_streamed(
            &values.as_slice(),
            n,
            &shape,
            0,
            &t,
            Dialect::F32,
            &mut sink,
        )
        .unwrap_err();
        assert!(
            matches!(&e, StreamError::Write(io) if io.kind() == std::io::ErrorKind::Interrupted),
            "{e:?}"
        );
        assert_eq!(counting.pieces, 1);
    }
}
