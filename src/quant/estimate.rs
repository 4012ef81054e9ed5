//! Exact sizes: per tensor from the closed forms of spec §5.1, per file by measuring the
//! very edits the writer applies (spec §5.2), without reading any weight payload.

use std::path::Path;

use super::error::QuantError;
use super::plan::{Plan, TensorAction, TensorPlan};
use super::rewrite::{self, put_tag, put_varint, vlen, Content, Edit, Edits, Layout, WireError};
use super::Target;
use crate::model::{ModelIndex, WeightId, WeightInfo};

/// Bytes of a packed float32 field with `n` values (`F(n)`; 0 when empty).
pub fn float_field(n: u64) -> u64 {
    if n == 0 {
        0
    } else {
        1 + vlen(4 * n) + 4 * n
    }
}

/// Bytes of a float16Value field with `n` values (`H(n)`; 0 when empty).
pub fn half_field(n: u64) -> u64 {
    if n == 0 {
        0
    } else {
        1 + vlen(2 * n) + 2 * n
    }
}

/// Bytes of the rawValue field for `n` indices of `b` bits.
pub fn raw_field(n: u64, b: u8) -> u64 {
    let r = if b == 8 {
        n
    } else {
        (n * u64::from(b)).div_ceil(8).max(1)
    };
    2 + vlen(r) + r
}

/// Bytes of the quantization field with linear parameters for `c` channels.
pub fn linear_params_field(c: u64) -> u64 {
    let l = 2 * (1 + vlen(4 * c) + 4 * c);
    let q = 2 + (2 + vlen(l) + l);
    2 + vlen(q) + q
}

/// Bytes of the quantization field with a lookup table of `k` entries.
pub fn lut_params_field(k: u64) -> u64 {
    let t = if k == 0 { 0 } else { 1 + vlen(4 * k) + 4 * k };
    let q = 2 + (2 + vlen(t) + t);
    2 + vlen(q) + q
}

/// Serialized size of a WeightParams body holding `n` weights converted to `target` with
/// `c` linear channels (spec §5.1); `None` target means float32 values.
pub fn weight_params_bytes(target: Option<&Target>, n: u64, c: u64, is_updatable: bool) -> u64 {
    let upd = if is_updatable { 3 } else { 0 };
    upd + match target {
        None => float_field(n),
        Some(Target::Fp16) => half_field(n),
        Some(Target::Linear(b)) => raw_field(n, *b) + linear_params_field(c),
        Some(Target::LinearSymmetric) => raw_field(n, 8) + linear_params_field(c),
        Some(Target::LinearLut(b) | Target::KmeansLut(b)) => {
            raw_field(n, *b) + lut_params_field(1 << b)
        }
        Some(Target::CustomLut(b, lut)) => raw_field(n, *b) + lut_params_field(lut.len() as u64),
        // floatValue + the empty `quantization {}` coremltools leaves behind (§2.10).
        Some(Target::Dequantize) => float_field(n) + 3,
    }
}

/// The exact size of a tensor after its plan.
pub fn tensor_bytes_after(info: &WeightInfo, tp: &TensorPlan) -> u64 {
    match &tp.action {
        TensorAction::Delete => 0,
        TensorAction::Keep if !tp.fused => info.bytes(),
        TensorAction::Keep => weight_params_bytes(None, info.count, 1, info.is_updatable),
        TensorAction::Convert(t) => {
            weight_params_bytes(Some(t), info.count, tp.channels, info.is_updatable)
        }
    }
}

/// One tensor the writer produces.
#[derive(Debug, Clone, PartialEq)]
pub enum Job {
    /// An existing WeightParams: converted (`target`), or rewritten as float32 values after
    /// fusion (`target` None).
    Tensor {
        /// The tensor.
        weight: WeightId,
        /// The conversion.
        target: Option<Target>,
        /// Its values come from a fusion.
        fused: bool,
        /// Planned body length.
        body_len: u64,
    },
    /// A bias created by fusion.
    CreatedBias {
        /// Index into [`Plan::fusions`].
        fusion: usize,
        /// The conversion.
        target: Option<Target>,
        /// Planned body length.
        body_len: u64,
    },
}

/// The edits of a plan, and the tensor jobs they reference.
#[derive(Debug, Clone, Default)]
pub struct Rewrite {
    /// Sorted edits.
    pub edits: Edits,
    /// Tensor jobs, in file order.
    pub jobs: Vec<Job>,
    /// Sizes of every re-emitted message.
    pub layout: Layout,
}

fn malformed(path: &Path, e: WireError) -> QuantError {
    QuantError::Malformed {
        path: path.to_path_buf(),
        offset: e.offset as u64,
        message: e.message,
    }
}

fn tag_bytes(bytes: &[u8], span: &std::ops::Range<usize>) -> Result<Vec<u8>, WireError> {
    let (_, p) = rewrite::read_varint(bytes, span.start)?;
    Ok(bytes
        .get(span.start..p)
        .map(<[u8]>::to_vec)
        .unwrap_or_default())
}

/// Builds the edits that carry out `plan` on the file `bytes`, and measures the result.
/// Only message headers on the edited paths are read, never weight payloads.
pub fn rewrite(index: &ModelIndex, bytes: &[u8], plan: &Plan) -> Result<Rewrite, QuantError> {
    let path = index.path.as_path();
    let m = |e: WireError| malformed(path, e);
    let mut edits = Vec::new();
    let mut jobs = Vec::new();
    // specificationVersion (field 1 of every processed Model).
    for (id, mp) in plan.models.iter().enumerate() {
        if mp.version_after == mp.version_before {
            continue;
        }
        let Some(info) = index.models.get(id) else {
            continue;
        };
        let mut field = Vec::new();
        put_tag(&mut field, 1, 0);
        put_varint(&mut field, mp.version_after as u64);
        let existing = rewrite::find_fields(bytes, info.body.clone(), 1).map_err(m)?;
        match existing.as_slice() {
            [] => edits.push(Edit::insert(info.body.start, info.body.start, field)),
            [first, rest @ ..] => {
                edits.push(Edit::replace(first.span.clone(), Content::Bytes(field)));
                for f in rest {
                    edits.push(Edit::replace(f.span.clone(), Content::Bytes(Vec::new())));
                }
            }
        }
    }
    // Tensors.
    for (w, tp) in plan.tensors.iter().enumerate() {
        let info = &index.weights[w];
        let target = match &tp.action {
            TensorAction::Delete => continue,
            TensorAction::Keep if !tp.fused => continue,
            TensorAction::Keep => None,
            TensorAction::Convert(t) => Some(t.clone()),
        };
        let tag = tag_bytes(bytes, &info.span).map_err(m)?;
        jobs.push(Job::Tensor {
            weight: w,
            target,
            fused: tp.fused,
            body_len: tp.bytes_after,
        });
        edits.push(Edit::replace(
            info.span.clone(),
            Content::Tensor {
                job: jobs.len() - 1,
                tag,
                body_len: tp.bytes_after,
            },
        ));
    }
    // Fusions: deleted consumers, new producer outputs, hasBias, created biases.
    for (fi, fp) in plan.fusions.iter().enumerate() {
        for s in &fp.steps {
            let Some(l) = index.layers.get(s.consumer) else {
                continue;
            };
            edits.push(Edit::replace(l.span.clone(), Content::Bytes(Vec::new())));
        }
        let Some(layer) = index.layers.get(fp.layer) else {
            continue;
        };
        let layer_body = rewrite::body_of(bytes, layer.span.clone()).map_err(m)?;
        let outs = rewrite::find_fields(bytes, layer_body.clone(), 3).map_err(m)?;
        let mut new_outputs = Vec::new();
        for o in &fp.outputs {
            put_tag(&mut new_outputs, 3, 2);
            put_varint(&mut new_outputs, o.len() as u64);
            new_outputs.extend_from_slice(o.as_bytes());
        }
        match outs.as_slice() {
            [] => {
                let at = rewrite::insert_position(bytes, layer_body.clone(), 3).map_err(m)?;
                edits.push(Edit::insert(at, layer_body.start, new_outputs));
            }
            [first, rest @ ..] => {
                edits.push(Edit::replace(
                    first.span.clone(),
                    Content::Bytes(new_outputs),
                ));
                for f in rest {
                    edits.push(Edit::replace(f.span.clone(), Content::Bytes(Vec::new())));
                }
            }
        }
        let params_body = rewrite::body_of(bytes, layer.params_span.clone()).map_err(m)?;
        if fp.set_has_bias {
            let mut field = Vec::new();
            put_tag(&mut field, fp.has_bias_field, 0);
            field.push(1);
            match rewrite::find_fields(bytes, params_body.clone(), fp.has_bias_field)
                .map_err(m)?
                .first()
            {
                Some(f) => edits.push(Edit::replace(f.span.clone(), Content::Bytes(field))),
                None => {
                    let at =
                        rewrite::insert_position(bytes, params_body.clone(), fp.has_bias_field)
                            .map_err(m)?;
                    edits.push(Edit::insert(at, params_body.start, field));
                }
            }
        }
        if let Some(cb) = &fp.created_bias {
            let target = match &cb.action {
                TensorAction::Convert(t) => Some(t.clone()),
                _ => None,
            };
            let mut tag = Vec::new();
            put_tag(&mut tag, cb.field, 2);
            jobs.push(Job::CreatedBias {
                fusion: fi,
                target,
                body_len: cb.bytes_after,
            });
            let content = Content::Tensor {
                job: jobs.len() - 1,
                tag,
                body_len: cb.bytes_after,
            };
            let at = rewrite::insert_position(bytes, params_body.clone(), cb.field).map_err(m)?;
            // Insertions are plain bytes in the edit model; tensors are produced lazily, so
            // a created bias is an insertion whose content is a tensor.
            edits.push(Edit {
                span: at..at,
                container: params_body.start,
                content,
            });
        }
    }
    let edits = Edits::new(edits).map_err(m)?;
    let layout = rewrite::measure(bytes, &edits).map_err(m)?;
    Ok(Rewrite {
        edits,
        jobs,
        layout,
    })
}

/// The size of the file a plan writes, and of its weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Estimate {
    /// Input file size.
    pub bytes_before: u64,
    /// Output file size (exact).
    pub bytes_after: u64,
    /// All WeightParams before.
    pub weight_bytes_before: u64,
    /// All WeightParams after.
    pub weight_bytes_after: u64,
}

/// Plans `settings` for an open model and measures the exact output size.
pub fn plan_and_estimate(
    file: &crate::model::ModelFile,
    settings: &super::Settings,
) -> Result<(Plan, Estimate), QuantError> {
    let plan = super::plan::build(&file.index, settings)?;
    let est = estimate(&file.index, file.bytes(), &plan);
    file.check_unchanged()?;
    Ok((plan, est?))
}

/// The exact output size of `plan` on the file `bytes` (headers read, weights not).
pub fn estimate(index: &ModelIndex, bytes: &[u8], plan: &Plan) -> Result<Estimate, QuantError> {
    let r = rewrite(index, bytes, plan)?;
    Ok(Estimate {
        bytes_before: bytes.len() as u64,
        bytes_after: r.layout.total,
        weight_bytes_before: plan.weight_bytes_before,
        weight_bytes_after: plan.weight_bytes_after,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closed_forms_match_the_spec_examples() {
        // §5.1: 8 weights, 3-bit linear, C = 1 → 26; float32 34.
        assert_eq!(
            weight_params_bytes(Some(&Target::Linear(3)), 8, 1, false),
            26
        );
        assert_eq!(weight_params_bytes(None, 8, 1, false), 34);
        // Conv 64×64×3×3, C = 64.
        let n = 36_864;
        assert_eq!(weight_params_bytes(None, n, 1, false), 147_460);
        for (b, want) in [(8, 37_397), (4, 18_965), (2, 9_748), (1, 5_140)] {
            assert_eq!(
                weight_params_bytes(Some(&Target::Linear(b)), n, 64, false),
                want,
                "linear {b}"
            );
        }
        for (b, want) in [(8, 37_906), (4, 18_511), (2, 9_246), (1, 4_630)] {
            assert_eq!(
                weight_params_bytes(Some(&Target::LinearLut(b)), n, 1, false),
                want,
                "lut {b}"
            );
        }
        assert_eq!(
            weight_params_bytes(Some(&Target::Fp16), n, 1, false),
            73_732
        );
        // A 3-float bias.
        assert_eq!(weight_params_bytes(None, 3, 1, false), 14);
        assert_eq!(
            weight_params_bytes(Some(&Target::Linear(8)), 3, 1, false),
            26
        );
        assert_eq!(
            weight_params_bytes(Some(&Target::LinearLut(1)), 3, 1, false),
            22
        );
        assert_eq!(
            weight_params_bytes(Some(&Target::LinearLut(8)), 3, 1, false),
            1_043
        );
        assert_eq!(
            weight_params_bytes(Some(&Target::Linear(8)), 3, 1, true),
            29
        );
    }
}

#[cfg(test)]
mod cross_check {
    use super::*;
    use crate::quant::size;

    #[test]
    fn closed_forms_agree_with_the_size_module() {
        for n in [1u64, 3, 8, 127, 128, 4096, 36_864, 1 << 21] {
            assert_eq!(weight_params_bytes(None, n, 1, false), size::float32(n));
            assert_eq!(
                weight_params_bytes(Some(&Target::Fp16), n, 1, false),
                size::float16(n)
            );
            assert_eq!(
                weight_params_bytes(Some(&Target::Dequantize), n, 1, false),
                size::dequantized(n)
            );
            for b in 1..=8u8 {
                for c in [1u64, 2, 64] {
                    assert_eq!(
                        weight_params_bytes(Some(&Target::Linear(b)), n, c, false),
                        size::linear(n, b, c),
                        "n={n} b={b} c={c}"
                    );
                }
                assert_eq!(
                    weight_params_bytes(Some(&Target::LinearLut(b)), n, 1, false),
                    size::lut(n, b, 1 << b),
                    "n={n} b={b}"
                );
            }
        }
    }
}
