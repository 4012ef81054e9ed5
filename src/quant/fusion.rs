//! coremltools' pre-quantization layer fusion (spec §2.5), with its bugs fixed (§4 items 5–9).
//!
//! [`plan_network`] finds the same fusions in the same order as coremltools' restart-from-
//! scratch loop, in time linear in the number of layers: fusing (p, c) only changes p's
//! consumer set, so each candidate producer is examined once per category and re-examined
//! only right after it absorbed a layer. [`compute`] performs the arithmetic on the values.

use std::collections::{HashMap, HashSet};

use super::error::{PlanError, PlanErrorKind, QuantError};
use super::kernels::Dialect;
use super::plan::TensorAction;
use crate::model::{LayerId, LayerParams, ModelIndex, NetworkId, Storage, WeightInfo};

/// One kind of fusion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FusionKind {
    /// convolution → batchnorm (broken in coremltools 9.0; correct maths here).
    ConvBatchnorm,
    /// convolution/innerProduct → scale.
    Scale,
    /// convolution/innerProduct → bias.
    Bias,
    /// batchnorm → scale.
    BatchnormScale,
}

impl FusionKind {
    /// A few words for hovers and notes.
    pub fn describe(self) -> &'static str {
        match self {
            FusionKind::ConvBatchnorm => "batchnorm folded into the convolution",
            FusionKind::Scale => "scale folded into weights and bias",
            FusionKind::Bias => "bias added to the layer's bias",
            FusionKind::BatchnormScale => "scale folded into gamma and beta",
        }
    }
}

/// One absorbed layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FusionStep {
    /// The layer deleted.
    pub consumer: LayerId,
    /// How it was folded in.
    pub kind: FusionKind,
}

/// A bias tensor created by fusion on a producer that had none.
#[derive(Debug, Clone, PartialEq)]
pub struct CreatedBias {
    /// Number of values (the producer's output channels).
    pub count: u64,
    /// Field number of the bias in the producer's params message (91 conv, 21 innerProduct).
    pub field: u32,
    /// What happens to it after fusion.
    pub action: TensorAction,
    /// Its serialized size (without tag and length).
    pub bytes_after: u64,
}

/// A producer layer that absorbs one or more layers.
#[derive(Debug, Clone, PartialEq)]
pub struct FusedProducer {
    /// The producer.
    pub layer: LayerId,
    /// Absorbed layers, in fusion order.
    pub steps: Vec<FusionStep>,
    /// The producer's outputs after fusion (the last consumer's outputs).
    pub outputs: Vec<String>,
    /// The bias created because the producer had none.
    pub created_bias: Option<CreatedBias>,
    /// `hasBias` goes from false to true.
    pub set_has_bias: bool,
    /// Field number of `hasBias` in the producer's params message (70 conv, 10 innerProduct).
    pub has_bias_field: u32,
}

impl FusedProducer {
    /// Whether fusion rewrites the producer's tensor `field`.
    pub fn rewrites(&self, field: &str) -> bool {
        let weights = self
            .steps
            .iter()
            .any(|s| matches!(s.kind, FusionKind::Scale | FusionKind::ConvBatchnorm));
        match field {
            "weights" => weights,
            "bias" => true,
            "gamma" | "beta" => self
                .steps
                .iter()
                .any(|s| s.kind == FusionKind::BatchnormScale),
            _ => false,
        }
    }

    /// `absorbs bn1 (batchnorm folded …), scale1 (…)`.
    pub fn describe(&self, index: &ModelIndex) -> String {
        let parts: Vec<String> = self
            .steps
            .iter()
            .map(|s| {
                format!(
                    "{} ({})",
                    index
                        .layers
                        .get(s.consumer)
                        .map_or("?", |l| l.name.as_str()),
                    s.kind.describe()
                )
            })
            .collect();
        format!("absorbs {}", parts.join(", "))
    }
}

/// The fusions of one network, and remarks on fusions not made.
#[derive(Debug, Clone, Default)]
pub struct NetworkFusions {
    /// Producers with their absorbed layers, in the order of their first fusion.
    pub producers: Vec<FusedProducer>,
    /// Fusions coremltools would make but coremlq refuses, and why.
    pub notes: Vec<String>,
}

fn has_values(w: &WeightInfo) -> bool {
    match w.storage {
        Storage::Float32 | Storage::Float16 => true,
        Storage::Mixed => w.float_values.is_some() || w.half_values.is_some(),
        _ => false,
    }
}

fn weight<'a>(index: &'a ModelIndex, layer: LayerId, field: &str) -> Option<&'a WeightInfo> {
    index
        .layers
        .get(layer)?
        .weights
        .iter()
        .map(|&w| &index.weights[w])
        .find(|w| w.field == field)
}

fn count_of(index: &ModelIndex, layer: LayerId, field: &str) -> Option<u64> {
    weight(index, layer, field)
        .filter(|w| has_values(w))
        .map(|w| w.count)
}

/// Producer state while planning.
struct State {
    oc: u64,
    has_bias: bool,
}

/// Plans the fusions of network `net` (§2.5). `outputs` are the model's output blobs and
/// `outer` the blobs other networks read: fusing across them would delete a blob someone
/// needs. `excluded[i]` marks the network's i-th layer as off limits (skipped by name).
pub fn plan_network(
    index: &ModelIndex,
    net: NetworkId,
    outputs: &HashSet<&str>,
    outer: &HashSet<&str>,
    excluded: &[bool],
) -> Result<NetworkFusions, PlanError> {
    let mut out = NetworkFusions::default();
    let Some(info) = index.networks.get(net) else {
        return Ok(out);
    };
    let ids = &info.layers;
    let n = ids.len();
    // Only batchnorm, scale and bias layers are ever absorbed: without one, nothing fuses.
    let absorbable = |l: &LayerId| {
        index
            .layers
            .get(*l)
            .is_some_and(|x| matches!(x.layer_type.as_str(), "batchnorm" | "scale" | "bias"))
    };
    if !ids.iter().any(absorbable) {
        return Ok(out);
    }
    let mut alive = vec![true; n];
    // A layer's current outputs are always some layer's original outputs: borrow them.
    let mut outs: Vec<&[String]> = ids
        .iter()
        .map(|&l| index.layers[l].outputs.as_slice())
        .collect();
    let mut producers: HashMap<&str, Vec<usize>> = HashMap::with_capacity(n);
    let mut consumers: HashMap<&str, Vec<usize>> = HashMap::with_capacity(n);
    for (i, &l) in ids.iter().enumerate() {
        for o in &index.layers[l].outputs {
            producers.entry(o.as_str()).or_default().push(i);
        }
        for inp in &index.layers[l].inputs {
            consumers.entry(inp.as_str()).or_default().push(i);
        }
    }
    let unique_consumer = |p: usize, outs: &[&[String]], alive: &[bool]| -> Option<usize> {
        let mut found: Option<usize> = None;
        for blob in outs[p] {
            for &c in consumers
                .get(blob.as_str())
                .map(Vec::as_slice)
                .unwrap_or(&[])
            {
                if !alive[c] {
                    continue;
                }
                match found {
                    None => found = Some(c),
                    Some(f) if f == c => {}
                    Some(_) => return None,
                }
            }
        }
        found
    };
    let unique_producer =
        |c: usize, producers: &HashMap<&str, Vec<usize>>, alive: &[bool]| -> Option<usize> {
            let mut found: Option<usize> = None;
            for blob in &index.layers[ids[c]].inputs {
                for &p in producers
                    .get(blob.as_str())
                    .map(Vec::as_slice)
                    .unwrap_or(&[])
                {
                    if !alive[p] {
                        continue;
                    }
                    match found {
                        None => found = Some(p),
                        Some(f) if f == p => {}
                        Some(_) => return None,
                    }
                }
            }
            found
        };
    let mut records: HashMap<usize, usize> = HashMap::new(); // local producer -> out.producers index

    for category in 0..3 {
        for p in 0..n {
            if !alive[p] {
                continue;
            }
            let pl = &index.layers[ids[p]];
            let kind_of_producer = match (&pl.params, category) {
                (LayerParams::Convolution { .. }, 0) => 0,
                (LayerParams::InnerProduct { .. }, 1) => 1,
                (
                    LayerParams::Batchnorm {
                        instance_normalization: false,
                        ..
                    },
                    2,
                ) => 2,
                _ => continue,
            };
            while let Some(c) = unique_consumer(p, &outs, &alive) {
                if c == p || unique_producer(c, &producers, &alive) != Some(p) {
                    break;
                }
                let cl = &index.layers[ids[c]];
                let kind = match (kind_of_producer, &cl.params, cl.layer_type.as_str()) {
                    (
                        0,
                        LayerParams::Batchnorm {
                            instance_normalization: false,
                            ..
                        },
                        "batchnorm",
                    ) => FusionKind::ConvBatchnorm,
                    (0 | 1, _, "scale") => FusionKind::Scale,
                    (0 | 1, _, "bias") => FusionKind::Bias,
                    (2, _, "scale") => FusionKind::BatchnormScale,
                    _ => break,
                };
                let (pname, cname) = (pl.name.as_str(), cl.name.as_str());
                let refuse = |why: String| {
                    format!("not fused {pname} -> {cname} (coremltools would): {why}")
                };
                if excluded.get(p).copied().unwrap_or(false)
                    || excluded.get(c).copied().unwrap_or(false)
                {
                    out.notes.push(refuse("a layer is skipped by name".into()));
                    break;
                }
                if let Some(b) = outs[p].iter().find(|b| outputs.contains(b.as_str())) {
                    out.notes.push(refuse(format!(
                        "blob {b:?} is a model output and would disappear (§4 bug 6)"
                    )));
                    break;
                }
                if let Some(b) = outs[p].iter().find(|b| outer.contains(b.as_str())) {
                    out.notes
                        .push(refuse(format!("blob {b:?} is read by another network")));
                    break;
                }
                let state =
                    producer_state(index, ids[p], records.get(&p).map(|&r| &out.producers[r]));
                match check_values(
                    index,
                    ids[p],
                    ids[c],
                    kind,
                    &state,
                    records.contains_key(&p),
                ) {
                    Ok(()) => {}
                    Err(Check::NoValues) => {
                        return Err(PlanError::new(PlanErrorKind::FusionWithoutValues {
                            producer: pname.to_string(),
                            consumer: cname.to_string(),
                        })
                        .at(format!("layer {pname:?}")));
                    }
                    Err(Check::Shape(why)) => {
                        out.notes.push(refuse(why));
                        break;
                    }
                }
                // Fuse: p takes over c's outputs, c disappears.
                alive[c] = false;
                for blob in outs[p] {
                    if let Some(v) = producers.get_mut(blob.as_str()) {
                        v.retain(|&x| x != p);
                    }
                }
                let new_outs = outs[c];
                for blob in new_outs {
                    if let Some(v) = producers.get_mut(blob.as_str()) {
                        for x in v.iter_mut() {
                            if *x == c {
                                *x = p;
                            }
                        }
                    }
                }
                outs[p] = new_outs;
                let r = *records.entry(p).or_insert_with(|| {
                    out.producers.push(new_record(index, ids[p]));
                    out.producers.len() - 1
                });
                let rec = &mut out.producers[r];
                rec.steps.push(FusionStep {
                    consumer: ids[c],
                    kind,
                });
                rec.outputs = outs[p].to_vec();
                if kind_of_producer != 2
                    && !state.has_bias
                    && (kind != FusionKind::Scale || scale_has_bias(index, ids[c]))
                {
                    rec.set_has_bias = !layer_has_bias_flag(index, ids[p]);
                    if weight(index, ids[p], "bias").is_none() && rec.created_bias.is_none() {
                        rec.created_bias = Some(CreatedBias {
                            count: state.oc,
                            field: bias_field(&pl.params),
                            action: TensorAction::Keep,
                            bytes_after: 0,
                        });
                    }
                }
            }
        }
    }
    Ok(out)
}

fn new_record(index: &ModelIndex, layer: LayerId) -> FusedProducer {
    let params = &index.layers[layer].params;
    FusedProducer {
        layer,
        steps: Vec::new(),
        outputs: Vec::new(),
        created_bias: None,
        set_has_bias: false,
        has_bias_field: match params {
            LayerParams::Convolution { .. } => 70,
            _ => 10,
        },
    }
}

fn bias_field(params: &LayerParams) -> u32 {
    match params {
        LayerParams::Convolution { .. } => 91,
        _ => 21,
    }
}

fn layer_has_bias_flag(index: &ModelIndex, layer: LayerId) -> bool {
    matches!(
        index.layers[layer].params,
        LayerParams::Convolution { has_bias: true, .. }
            | LayerParams::InnerProduct { has_bias: true, .. }
    )
}

fn scale_has_bias(index: &ModelIndex, layer: LayerId) -> bool {
    matches!(
        index.layers[layer].params,
        LayerParams::Scale { has_bias: true, .. }
    )
}

fn producer_state(index: &ModelIndex, layer: LayerId, rec: Option<&FusedProducer>) -> State {
    let (oc, flag) = match &index.layers[layer].params {
        LayerParams::Convolution {
            output_channels,
            has_bias,
            ..
        } => (*output_channels, *has_bias),
        LayerParams::InnerProduct {
            output_channels,
            has_bias,
            ..
        } => (*output_channels, *has_bias),
        LayerParams::Batchnorm { channels, .. } => (*channels, false),
        _ => (0, false),
    };
    let created = rec.is_some_and(|r| r.set_has_bias || r.created_bias.is_some());
    State {
        oc,
        has_bias: flag || created,
    }
}

enum Check {
    NoValues,
    Shape(String),
}

fn check_values(
    index: &ModelIndex,
    p: LayerId,
    c: LayerId,
    kind: FusionKind,
    st: &State,
    fused_before: bool,
) -> Result<(), Check> {
    let oc = st.oc;
    let need = |layer: LayerId, field: &str| -> Result<u64, Check> {
        count_of(index, layer, field).ok_or(Check::NoValues)
    };
    let per_channel = |what: &str, n: u64, allow_one: bool| -> Result<(), Check> {
        if n == oc || (allow_one && n == 1) {
            Ok(())
        } else {
            Err(Check::Shape(format!(
                "{what} holds {n} values for {oc} channels"
            )))
        }
    };
    if oc == 0 {
        return Err(Check::Shape("the producer has 0 output channels".into()));
    }
    // Producer values: what coremltools reads (already-fused values are in memory).
    // Stored weights must hold values: an earlier scale fusion could only have read them too.
    if matches!(kind, FusionKind::Scale | FusionKind::ConvBatchnorm) {
        let n = need(p, "weights")?;
        if n % oc != 0 {
            return Err(Check::Shape(format!(
                "{n} weights do not split into {oc} channels"
            )));
        }
    }
    if st.has_bias
        && !fused_before
        && kind != FusionKind::BatchnormScale
        && weight(index, p, "bias").is_some_and(|w| w.storage != Storage::Empty)
    {
        let n = need(p, "bias")?;
        per_channel("the producer's bias", n, false)?;
    }
    match kind {
        FusionKind::Scale | FusionKind::BatchnormScale => {
            per_channel("the scale layer", need(c, "scale")?, true)?;
            if scale_has_bias(index, c) {
                per_channel(
                    "the scale layer's bias",
                    need(c, "bias")?,
                    st.has_bias || kind == FusionKind::BatchnormScale,
                )?;
            }
            if kind == FusionKind::BatchnormScale && !fused_before {
                per_channel("gamma", need(p, "gamma")?, false)?;
                per_channel("beta", need(p, "beta")?, false)?;
            }
        }
        FusionKind::Bias => {
            per_channel("the bias layer", need(c, "bias")?, st.has_bias)?;
        }
        FusionKind::ConvBatchnorm => {
            for f in ["gamma", "beta", "mean", "variance"] {
                per_channel(f, need(c, f)?, false)?;
            }
        }
    }
    Ok(())
}

/// The fused values of a producer's tensors, by field name.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FusedValues {
    /// New `weights`, if rewritten.
    pub weights: Option<Vec<f32>>,
    /// New `bias` (existing or created), if rewritten.
    pub bias: Option<Vec<f32>>,
    /// New `gamma`, if rewritten.
    pub gamma: Option<Vec<f32>>,
    /// New `beta`, if rewritten.
    pub beta: Option<Vec<f32>>,
}

impl FusedValues {
    /// The values for a field.
    pub fn get(&self, field: &str) -> Option<&[f32]> {
        match field {
            "weights" => self.weights.as_deref(),
            "bias" => self.bias.as_deref(),
            "gamma" => self.gamma.as_deref(),
            "beta" => self.beta.as_deref(),
            _ => None,
        }
    }
}

/// Reads a tensor's float values (floatValue, else float16Value widened).
pub fn read_values(
    path: &std::path::Path,
    bytes: &[u8],
    w: &WeightInfo,
) -> Result<Vec<f32>, QuantError> {
    let bad = |span: &std::ops::Range<usize>| QuantError::Malformed {
        path: path.to_path_buf(),
        offset: span.start as u64,
        message: "weight values lie outside the file".into(),
    };
    if let Some(span) = w.float_values.as_ref().filter(|s| !s.is_empty()) {
        let b = bytes.get(span.clone()).ok_or_else(|| bad(span))?;
        return Ok(super::kernels::f32s_from_le(b));
    }
    if let Some(span) = w.half_values.as_ref().filter(|s| !s.is_empty()) {
        let b = bytes.get(span.clone()).ok_or_else(|| bad(span))?;
        return Ok(b
            .chunks_exact(2)
            .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect());
    }
    Err(QuantError::Kernel {
        path: path.to_path_buf(),
        layer: String::new(),
        field: w.field.clone(),
        message: "No values found in input. Please make sure either `floatValue` or `float16Value` of the input is set.".into(),
    })
}

fn at(v: &[f32], i: usize) -> f32 {
    if v.len() == 1 {
        v.first().copied().unwrap_or(0.0)
    } else {
        v.get(i).copied().unwrap_or(0.0)
    }
}

/// `x·s + t` as coremltools computes it: two float32 operations in dialect F32, one float64
/// expression rounded once in dialect F64 (spec §3.1).
fn scale_add(x: f32, s: f32, t: Option<f32>, dialect: Dialect) -> f32 {
    match (t, dialect) {
        (None, _) => x * s,
        (Some(t), Dialect::F32) => x * s + t,
        (Some(t), Dialect::F64) => (f64::from(x) * f64::from(s) + f64::from(t)) as f32,
    }
}

/// Performs the fusion arithmetic of one producer in `dialect` (spec §3.1; conv → batchnorm
/// with the correct formula of §2.5).
pub fn compute(
    path: &std::path::Path,
    bytes: &[u8],
    index: &ModelIndex,
    fp: &FusedProducer,
    dialect: Dialect,
) -> Result<FusedValues, QuantError> {
    let read = |layer: LayerId, field: &str| -> Result<Option<Vec<f32>>, QuantError> {
        match weight(index, layer, field) {
            Some(w) if has_values(w) => read_values(path, bytes, w).map(Some),
            _ => Ok(None),
        }
    };
    let p = fp.layer;
    let params = &index.layers[p].params;
    let mut out = FusedValues::default();
    if let LayerParams::Batchnorm { .. } = params {
        let mut gamma = read(p, "gamma")?.unwrap_or_default();
        let mut beta = read(p, "beta")?.unwrap_or_default();
        for step in &fp.steps {
            let s = read(step.consumer, "scale")?.unwrap_or_default();
            let t = if scale_has_bias(index, step.consumer) {
                read(step.consumer, "bias")?
            } else {
                None
            };
            for (i, g) in gamma.iter_mut().enumerate() {
                *g *= at(&s, i);
            }
            for (i, b) in beta.iter_mut().enumerate() {
                *b = scale_add(*b, at(&s, i), t.as_ref().map(|t| at(t, i)), dialect);
            }
        }
        out.gamma = Some(gamma);
        out.beta = Some(beta);
        return Ok(out);
    }
    let (oc, deconv, groups) = match params {
        LayerParams::Convolution {
            output_channels,
            is_deconvolution,
            n_groups,
            ..
        } => (
            *output_channels as usize,
            *is_deconvolution,
            (*n_groups).max(1) as usize,
        ),
        LayerParams::InnerProduct {
            output_channels, ..
        } => (*output_channels as usize, false, 1),
        _ => (0, false, 1),
    };
    let mut weights = read(p, "weights")?;
    let mut bias = read(p, "bias")?.filter(|b| !b.is_empty());
    let n = weights.as_ref().map_or(0, Vec::len);
    // Output channel of each weight position: [oc, rest] for convolution/innerProduct;
    // deconvolution weights are [kc, oc/g, kH, kW] (§4 bug 8 fixed).
    let channel_of = |i: usize| -> usize {
        if oc == 0 {
            return 0;
        }
        if deconv {
            let ocg = (oc / groups).max(1);
            // n = kc · ocg · kH·kW; inner = kH·kW.
            let kc_total = n / (ocg * inner_hw(params)).max(1);
            let inner = inner_hw(params).max(1);
            let row = i / inner; // index over [kc, ocg]
            let k = row / ocg;
            let j = row % ocg;
            let group = k / (kc_total / groups).max(1);
            (group * ocg + j).min(oc - 1)
        } else {
            (i / (n / oc).max(1)).min(oc - 1)
        }
    };
    for step in &fp.steps {
        let c = step.consumer;
        match step.kind {
            FusionKind::Scale => {
                let s = read(c, "scale")?.unwrap_or_default();
                let t = if scale_has_bias(index, c) {
                    read(c, "bias")?
                } else {
                    None
                };
                if let Some(w) = weights.as_mut() {
                    for (i, x) in w.iter_mut().enumerate() {
                        *x *= at(&s, channel_of(i));
                    }
                }
                bias = match (bias, t) {
                    (Some(mut b), t) => {
                        for (o, x) in b.iter_mut().enumerate() {
                            // §4 bug 9 fixed: an existing bias is scaled too.
                            *x = scale_add(*x, at(&s, o), t.as_ref().map(|t| at(t, o)), dialect);
                        }
                        Some(b)
                    }
                    (None, Some(t)) => Some(t),
                    (None, None) => None,
                };
            }
            FusionKind::Bias => {
                let t = read(c, "bias")?.unwrap_or_default();
                bias = Some(match bias {
                    Some(mut b) => {
                        for (o, x) in b.iter_mut().enumerate() {
                            *x += at(&t, o);
                        }
                        b
                    }
                    None => t,
                });
            }
            FusionKind::ConvBatchnorm => {
                let eps = match index.layers[c].params {
                    LayerParams::Batchnorm { epsilon, .. } => f64::from(epsilon),
                    _ => 0.0,
                };
                let gamma = read(c, "gamma")?.unwrap_or_default();
                let beta = read(c, "beta")?.unwrap_or_default();
                let mean = read(c, "mean")?.unwrap_or_default();
                let var = read(c, "variance")?.unwrap_or_default();
                let factor: Vec<f64> = (0..oc)
                    .map(|o| f64::from(at(&gamma, o)) / (f64::from(at(&var, o)) + eps).sqrt())
                    .collect();
                if let Some(w) = weights.as_mut() {
                    for (i, x) in w.iter_mut().enumerate() {
                        *x = (f64::from(*x) * factor.get(channel_of(i)).copied().unwrap_or(1.0))
                            as f32;
                    }
                }
                let b0 = bias.take().unwrap_or_else(|| vec![0.0; oc]);
                bias = Some(
                    (0..oc)
                        .map(|o| {
                            let f = factor.get(o).copied().unwrap_or(1.0);
                            ((f64::from(at(&b0, o)) - f64::from(at(&mean, o))) * f
                                + f64::from(at(&beta, o))) as f32
                        })
                        .collect(),
                );
            }
            FusionKind::BatchnormScale => {}
        }
    }
    if fp.rewrites("weights") {
        out.weights = weights;
    }
    out.bias = bias;
    Ok(out)
}

fn inner_hw(params: &LayerParams) -> usize {
    match params {
        LayerParams::Convolution { kernel_size, .. } => {
            let kh = kernel_size.first().copied().unwrap_or(3) as usize;
            let kw = kernel_size.get(1).copied().unwrap_or(3) as usize;
            kh * kw
        }
        _ => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{LayerInfo, NetworkInfo};

    fn w(layer: LayerId, field: &str, count: u64) -> WeightInfo {
        WeightInfo {
            layer,
            field: field.into(),
            storage: Storage::Float32,
            count,
            ..WeightInfo::default()
        }
    }

    /// A network from (name, type, inputs, outputs); weights sized for 2 channels.
    fn net(layers: &[(&str, &str, &[&str], &[&str])]) -> ModelIndex {
        let mut idx = ModelIndex::default();
        idx.networks.push(NetworkInfo::default());
        for (i, (name, ty, ins, outs)) in layers.iter().enumerate() {
            let (params, fields): (LayerParams, &[(&str, u64)]) = match *ty {
                "innerProduct" => (
                    LayerParams::InnerProduct {
                        input_channels: 3,
                        output_channels: 2,
                        has_bias: false,
                        int8_dynamic_quantize: false,
                    },
                    &[("weights", 6)],
                ),
                "convolution" => (
                    LayerParams::Convolution {
                        output_channels: 2,
                        kernel_channels: 1,
                        n_groups: 1,
                        kernel_size: vec![1, 1],
                        is_deconvolution: false,
                        has_bias: true,
                    },
                    &[("weights", 2), ("bias", 2)],
                ),
                "batchnorm" | "instnorm" => (
                    LayerParams::Batchnorm {
                        channels: 2,
                        compute_mean_var: false,
                        instance_normalization: *ty == "instnorm",
                        epsilon: 1e-5,
                    },
                    &[("gamma", 2), ("beta", 2), ("mean", 2), ("variance", 2)],
                ),
                "scale" => (
                    LayerParams::Scale {
                        shape_scale: vec![2],
                        has_bias: false,
                        shape_bias: vec![],
                    },
                    &[("scale", 2)],
                ),
                "bias" => (LayerParams::Bias { shape: vec![2] }, &[("bias", 2)]),
                _ => (LayerParams::Other, &[]),
            };
            let mut weights = Vec::new();
            for (f, n) in fields {
                idx.weights.push(w(i, f, *n));
                weights.push(idx.weights.len() - 1);
            }
            idx.layers.push(LayerInfo {
                name: name.to_string(),
                layer_type: if *ty == "instnorm" {
                    "batchnorm".into()
                } else {
                    ty.to_string()
                },
                inputs: ins.iter().map(|s| s.to_string()).collect(),
                outputs: outs.iter().map(|s| s.to_string()).collect(),
                params,
                weights,
                ..LayerInfo::default()
            });
            idx.networks[0].layers.push(i);
        }
        idx
    }

    fn run(idx: &ModelIndex, outputs: &[&str]) -> NetworkFusions {
        let outputs: HashSet<&str> = outputs.iter().copied().collect();
        plan_network(
            idx,
            0,
            &outputs,
            &HashSet::new(),
            &vec![false; idx.layers.len()],
        )
        .unwrap()
    }

    #[test]
    fn chains_fold_completely_and_create_a_bias() {
        let idx = net(&[
            ("ip", "innerProduct", &["x"], &["a"]),
            ("b", "bias", &["a"], &["b"]),
            ("s", "scale", &["b"], &["c"]),
            ("act", "activation", &["c"], &["out"]),
        ]);
        let f = run(&idx, &["out"]);
        assert_eq!(f.producers.len(), 1);
        let p = &f.producers[0];
        assert_eq!(
            p.steps
                .iter()
                .map(|s| (s.consumer, s.kind))
                .collect::<Vec<_>>(),
            vec![(1, FusionKind::Bias), (2, FusionKind::Scale)]
        );
        assert_eq!(p.outputs, vec!["c".to_string()]);
        assert!(p.set_has_bias);
        assert_eq!(
            p.created_bias.as_ref().map(|c| (c.count, c.field)),
            Some((2, 21))
        );
    }

    #[test]
    fn shared_blobs_and_instance_norm_block_fusion() {
        let idx = net(&[
            ("ip", "innerProduct", &["x"], &["a"]),
            ("b", "bias", &["a"], &["b"]),
            ("s", "scale", &["a"], &["c"]),
            ("conv", "convolution", &["x"], &["d"]),
            ("in", "instnorm", &["d"], &["e"]),
        ]);
        assert!(run(&idx, &[]).producers.is_empty());
    }

    #[test]
    fn convolutions_come_first_then_batchnorm_scale() {
        let idx = net(&[
            ("conv", "convolution", &["x"], &["a"]),
            ("bn", "batchnorm", &["a"], &["b"]),
            ("s", "scale", &["b"], &["c"]),
            ("bn2", "batchnorm", &["y"], &["d"]),
            ("s2", "scale", &["d"], &["e"]),
        ]);
        let f = run(&idx, &[]);
        let kinds: Vec<(LayerId, Vec<FusionKind>)> = f
            .producers
            .iter()
            .map(|p| (p.layer, p.steps.iter().map(|s| s.kind).collect()))
            .collect();
        assert_eq!(
            kinds,
            vec![
                (0, vec![FusionKind::ConvBatchnorm, FusionKind::Scale]),
                (3, vec![FusionKind::BatchnormScale])
            ]
        );
    }

    #[test]
    fn model_outputs_are_never_fused_away() {
        let idx = net(&[
            ("ip", "innerProduct", &["x"], &["a"]),
            ("b", "bias", &["a"], &["out"]),
        ]);
        let f = run(&idx, &["a", "out"]);
        assert!(f.producers.is_empty());
        assert!(f.notes[0].contains("model output"), "{:?}", f.notes);
    }

    #[test]
    fn quantized_producer_weights_cannot_take_a_scale() {
        let mut idx = net(&[
            ("ip", "innerProduct", &["x"], &["a"]),
            ("s", "scale", &["a"], &["out"]),
        ]);
        idx.weights[0].storage = Storage::Linear { nbits: 8 };
        let err =
            plan_network(&idx, 0, &HashSet::new(), &HashSet::new(), &[false, false]).unwrap_err();
        assert!(matches!(
            err.kind,
            PlanErrorKind::FusionWithoutValues { .. }
        ));
    }

    #[test]
    fn linear_in_the_number_of_layers() {
        // 20,000 independent ip -> bias pairs: every pair fuses, quickly.
        let n = 20_000;
        let names: Vec<(String, String, String)> = (0..n)
            .map(|i| (format!("x{i}"), format!("a{i}"), format!("o{i}")))
            .collect();
        let mut spec: Vec<(&str, &str, Vec<&str>, Vec<&str>)> = Vec::new();
        for (x, a, o) in &names {
            spec.push(("ip", "innerProduct", vec![x.as_str()], vec![a.as_str()]));
            spec.push(("b", "bias", vec![a.as_str()], vec![o.as_str()]));
        }
        let layers: Vec<(&str, &str, &[&str], &[&str])> = spec
            .iter()
            .map(|(n, t, i, o)| (*n, *t, i.as_slice(), o.as_slice()))
            .collect();
        let idx = net(&layers);
        let t = std::time::Instant::now();
        let f = run(&idx, &[]);
        assert_eq!(f.producers.len(), n);
        assert!(t.elapsed().as_secs_f64() < 20.0, "quadratic behaviour?");
    }
}
