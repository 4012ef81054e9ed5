//! The plan: for every model, layer and WeightParams, what happens, why, and how many bytes
//! it takes before and after. One plan drives both the size estimate and the writer.
//!
//! [`build`] follows coremltools' `quantize_weights` walk (spec §2.3–2.8): models reached
//! (top level, pipeline members), version bumps, per-network fusion, the selector, and the
//! per-layer-type table of tensors that get converted. On top of that it applies coremlq's
//! own settings: `skip_layers` globs and per-layer `overrides` (mixed precision).

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

use super::error::{PlanError, PlanErrorKind};
use super::fusion::{self, FusedProducer, FusionKind};
use super::kernels::ChannelView;
use super::select;
use super::settings::{Choice, Mode, Settings};
use super::Target;
use crate::model::{
    LayerId, LayerInfo, LayerParams, ModelId, ModelIndex, NetworkId, Storage, WeightInfo,
};

/// The decision for every model, layer and tensor of a model file.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    /// One entry per model of the index (top level and pipeline members), same order.
    pub models: Vec<ModelPlan>,
    /// One entry per layer of the index, same order.
    pub layers: Vec<LayerPlan>,
    /// One entry per WeightParams of the index, same order.
    pub tensors: Vec<TensorPlan>,
    /// Producer layers that absorb fused layers, in fusion order.
    pub fusions: Vec<FusedProducer>,
    /// Position in [`fusions`](Self::fusions) of each producer layer.
    pub fusion_index: HashMap<LayerId, usize>,
    /// Where and why coremlq behaves differently from coremltools 9.0, and other remarks.
    pub notes: Vec<String>,
    /// The input file's size.
    pub bytes_before: u64,
    /// Total serialized size of all WeightParams before.
    pub weight_bytes_before: u64,
    /// Total serialized size of all WeightParams after (created biases included).
    pub weight_bytes_after: u64,
}

/// What happens to one `Model` message.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ModelPlan {
    /// Whether its networks are processed.
    pub processed: bool,
    /// `specificationVersion` before.
    pub version_before: i64,
    /// `specificationVersion` after (coremltools' bump, §2.4).
    pub version_after: i64,
    /// Why it is or is not processed.
    pub reason: String,
}

/// What happens to one layer.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerPlan {
    /// The decision.
    pub decision: LayerDecision,
    /// Why, in a few words (`overrides."conv*"`, `selector: skip_layer_types contains "bias"`,
    /// `fused into conv1 (batchnorm)`, …).
    pub reason: Reason,
    /// Serialized size of its WeightParams before.
    pub bytes_before: u64,
    /// Serialized size of its WeightParams after (0 for a fused-away layer).
    pub bytes_after: u64,
}

/// Why a layer or tensor gets its decision, in a few words. Cheap to build and to clone:
/// fixed text is static, and the text of a rule (`linear 4-bit (overrides "conv*")`) is
/// built once per plan and shared by every layer and tensor it decides.
#[derive(Clone, Default)]
pub struct Reason(Repr);

#[derive(Clone)]
enum Repr {
    Static(&'static str),
    Shared(Arc<str>),
}

impl Default for Repr {
    fn default() -> Self {
        Repr::Static("")
    }
}

impl Reason {
    /// A reason with fixed text.
    pub const fn fixed(text: &'static str) -> Reason {
        Reason(Repr::Static(text))
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        match &self.0 {
            Repr::Static(s) => s,
            Repr::Shared(s) => s,
        }
    }
}

impl Deref for Reason {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl From<&'static str> for Reason {
    fn from(text: &'static str) -> Reason {
        Reason::fixed(text)
    }
}

impl From<String> for Reason {
    fn from(text: String) -> Reason {
        Reason(Repr::Shared(Arc::from(text)))
    }
}

impl From<Cow<'static, str>> for Reason {
    fn from(text: Cow<'static, str>) -> Reason {
        match text {
            Cow::Borrowed(s) => Reason::fixed(s),
            Cow::Owned(s) => Reason::from(s),
        }
    }
}

impl From<Reason> for String {
    fn from(r: Reason) -> String {
        r.as_str().to_owned()
    }
}

impl PartialEq for Reason {
    fn eq(&self, other: &Reason) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for Reason {}

impl PartialEq<str> for Reason {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for Reason {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl PartialEq<String> for Reason {
    fn eq(&self, other: &String) -> bool {
        self.as_str() == other.as_str()
    }
}

/// A layer's fate.
#[derive(Debug, Clone, PartialEq)]
pub enum LayerDecision {
    /// Its tensors are converted.
    Quantize(Target),
    /// Left alone.
    Skip,
    /// Folded into another layer and deleted.
    FusedInto(LayerId),
    /// Holds weights that coremltools never converts (PReLU, layerNorm, conv3d, custom).
    NotQuantizable,
    /// Holds no weights.
    NoWeights,
}

/// What happens to one WeightParams.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorPlan {
    /// The action.
    pub action: TensorAction,
    /// Whether its values are rewritten by a layer fusion before the action.
    pub fused: bool,
    /// Why, in a few words.
    pub reason: Reason,
    /// Quantization channels (linear modes; 1 otherwise).
    pub channels: u64,
    /// Serialized size of the WeightParams before (without its field tag and length).
    pub bytes_before: u64,
    /// Serialized size after (exact; 0 when deleted).
    pub bytes_after: u64,
}

/// A tensor's fate.
#[derive(Debug, Clone, PartialEq)]
pub enum TensorAction {
    /// Unchanged (or, when fused, rewritten as float32 values).
    Keep,
    /// Converted.
    Convert(Target),
    /// Deleted with its fused-away layer.
    Delete,
}

impl Plan {
    /// Number of tensors converted.
    pub fn converted(&self) -> usize {
        self.tensors
            .iter()
            .filter(|t| matches!(t.action, TensorAction::Convert(_)))
            .count()
    }

    /// The fusion record of a producer layer, if it absorbs others.
    pub fn fusion_of(&self, layer: LayerId) -> Option<&FusedProducer> {
        self.fusion_index
            .get(&layer)
            .and_then(|&i| self.fusions.get(i))
    }
}

impl Choice {
    /// The conversion this choice asks for, validated as coremltools does (§2.1–2.2).
    pub fn target(&self) -> Result<Target, PlanErrorKind> {
        let b = self.nbits;
        if self.mode == Mode::Dequantization {
            return Ok(Target::Dequantize);
        }
        if !(1..=8).contains(&b) && b != 16 {
            return Err(PlanErrorKind::InvalidNbits {
                nbits: i64::from(b),
            });
        }
        if self.mode == Mode::LinearSymmetric && b != 8 {
            return Err(PlanErrorKind::SymmetricNot8 {
                nbits: i64::from(b),
            });
        }
        if b == 16 {
            return Ok(Target::Fp16);
        }
        Ok(match self.mode {
            Mode::Linear => Target::Linear(b),
            Mode::LinearSymmetric => Target::LinearSymmetric,
            Mode::LinearLut => Target::LinearLut(b),
            Mode::KmeansLut => Target::KmeansLut(b),
            Mode::CustomLut => {
                let lut = self
                    .lut
                    .clone()
                    .ok_or(PlanErrorKind::CustomLutWithoutTable)?;
                let max = 1usize << b;
                if lut.is_empty() || lut.len() > max {
                    return Err(PlanErrorKind::CustomLutSize {
                        len: lut.len(),
                        nbits: b,
                        max,
                    });
                }
                Target::CustomLut(b, lut)
            }
            Mode::Dequantization => Target::Dequantize,
        })
    }
}

impl Target {
    /// Whether coremltools' pre-quantization fusion runs for this target (1–8 bits).
    pub fn fuses(&self) -> bool {
        !matches!(self, Target::Fp16 | Target::Dequantize)
    }

    /// Short human name: `linear 4-bit`, `fp16`, …
    pub fn describe(&self) -> String {
        match self {
            Target::Fp16 => "fp16".into(),
            Target::Linear(b) => format!("linear {b}-bit"),
            Target::LinearSymmetric => "linear_symmetric 8-bit".into(),
            Target::LinearLut(b) => format!("linear_lut {b}-bit"),
            Target::KmeansLut(b) => format!("kmeans_lut {b}-bit"),
            Target::CustomLut(b, _) => format!("custom_lut {b}-bit"),
            Target::Dequantize => "dequantization".into(),
        }
    }

    /// Whether the target uses per-channel linear parameters.
    pub fn is_linear(&self) -> bool {
        matches!(self, Target::Linear(_) | Target::LinearSymmetric)
    }
}

/// Validates settings without a model: every choice, and the selector.
pub fn validate_settings(settings: &Settings) -> Result<(), PlanError> {
    settings.default.target().map_err(PlanError::new)?;
    for o in &settings.overrides {
        if !o.skip {
            o.choice(&settings.default)
                .target()
                .map_err(|k| PlanError::new(k).at(format!("override {:?}", o.pattern)))?;
        }
    }
    select::validate(&settings.selector)
}

/// What decides a layer's target (indices into the settings' lists).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rule {
    /// Skipped by `skip_layers[i]`.
    SkipLayers(usize),
    /// `overrides[i]`, either `skip` or a target.
    Override(usize),
    /// The model-wide choice.
    Default,
}

struct Builder<'a> {
    index: &'a ModelIndex,
    settings: &'a Settings,
    default_target: Target,
    /// `<target> (default)`.
    default_reason: Reason,
    /// Override targets, parallel to `settings.overrides` (None for `skip`).
    override_targets: Vec<Option<Target>>,
    /// `<target> (overrides "p")` or `overrides "p": skip`, parallel to the overrides.
    override_reasons: Vec<Reason>,
    /// The override patterns, prepared, parallel to the overrides.
    override_globs: Vec<select::Glob<'a>>,
    /// The `skip_layers` patterns, prepared.
    skip_globs: Vec<select::Glob<'a>>,
    /// `skip_layers "p"`, parallel to `settings.skip_layers`.
    skip_reasons: Vec<Reason>,
    /// Each layer's rule, computed once.
    rules: Vec<Option<Rule>>,
    plan: Plan,
    /// Blobs consumed per model, by network (for the "do not fuse across" check).
    consumed_by: HashMap<ModelId, HashMap<&'a str, HashSet<NetworkId>>>,
}

/// Builds the plan of `settings` for an indexed model (spec §2).
pub fn build(index: &ModelIndex, settings: &Settings) -> Result<Plan, PlanError> {
    let err_in = |e: PlanError| e.in_file(&index.path);
    let default_target = settings
        .default
        .target()
        .map_err(|k| err_in(PlanError::new(k)))?;
    let mut override_targets = Vec::with_capacity(settings.overrides.len());
    for o in &settings.overrides {
        override_targets.push(if o.skip {
            None
        } else {
            Some(
                o.choice(&settings.default).target().map_err(|k| {
                    err_in(PlanError::new(k).at(format!("override {:?}", o.pattern)))
                })?,
            )
        });
    }
    let Some(root) = index.models.first() else {
        return Ok(Plan::default());
    };
    // §2.2 step 2: fp16 of an updatable model is refused (checked on the top-level model).
    // nbits 16 counts even in dequantization mode, as in coremltools.
    let any_fp16 = settings.default.nbits == 16
        || override_targets
            .iter()
            .flatten()
            .any(|t| *t == Target::Fp16);
    if root.is_updatable && any_fp16 {
        return Err(err_in(PlanError::new(PlanErrorKind::UpdatableFp16)));
    }
    select::validate(&settings.selector).map_err(err_in)?;

    let default_reason = Reason::from(format!("{} (default)", default_target.describe()));
    let override_reasons = settings
        .overrides
        .iter()
        .zip(&override_targets)
        .map(|(o, t)| {
            Reason::from(match t {
                None => format!("overrides {:?}: skip", o.pattern),
                Some(t) => format!("{} (overrides {:?})", t.describe(), o.pattern),
            })
        })
        .collect();
    let override_globs = settings
        .overrides
        .iter()
        .map(|o| select::Glob::new(&o.pattern))
        .collect();
    let skip_globs = settings
        .skip_layers
        .iter()
        .map(|p| select::Glob::new(p))
        .collect();
    let skip_reasons = settings
        .skip_layers
        .iter()
        .map(|p| Reason::from(format!("skip_layers {p:?}")))
        .collect();
    let mut b = Builder {
        index,
        settings,
        default_target,
        default_reason,
        override_targets,
        override_reasons,
        override_globs,
        skip_globs,
        skip_reasons,
        rules: vec![None; index.layers.len()],
        plan: Plan {
            bytes_before: index.file_bytes,
            weight_bytes_before: index.weight_bytes(),
            ..Plan::default()
        },
        consumed_by: HashMap::new(),
    };
    b.init();
    b.visit_model(0, true).map_err(err_in)?;
    b.finish();
    Ok(b.plan)
}

impl<'a> Builder<'a> {
    fn init(&mut self) {
        let index = self.index;
        self.plan.models = index
            .models
            .iter()
            .map(|m| ModelPlan {
                processed: false,
                version_before: m.specification_version,
                version_after: m.specification_version,
                reason: format!("{} models hold no neural network", display(&m.model_type)),
            })
            .collect();
        self.plan.layers = index
            .layers
            .iter()
            .map(|l| LayerPlan {
                decision: if l.weights.is_empty() {
                    LayerDecision::NoWeights
                } else {
                    LayerDecision::Skip
                },
                reason: Reason::fixed("not reached by the walk"),
                bytes_before: 0,
                bytes_after: 0,
            })
            .collect();
        self.plan.tensors = index
            .weights
            .iter()
            .map(|w| TensorPlan {
                action: TensorAction::Keep,
                fused: false,
                reason: Reason::fixed("layer not quantized"),
                channels: 1,
                bytes_before: w.bytes(),
                bytes_after: w.bytes(),
            })
            .collect();
    }

    fn visit_model(&mut self, model: ModelId, top: bool) -> Result<(), PlanError> {
        let index = self.index;
        let Some(info) = index.models.get(model) else {
            return Ok(());
        };
        match info.model_type.as_str() {
            "neuralNetwork" | "neuralNetworkClassifier" | "neuralNetworkRegressor" => {
                let min = if self.model_needs_v3(model) { 3 } else { 2 };
                let mp = &mut self.plan.models[model];
                mp.processed = true;
                mp.version_after = mp.version_before.max(min);
                mp.reason = "neural network".into();
                if let Some(net) = info.network {
                    self.visit_network(net)?;
                }
            }
            "pipeline" | "pipelineClassifier" | "pipelineRegressor" => {
                let mp = &mut self.plan.models[model];
                mp.processed = true;
                mp.reason =
                    "pipeline: members processed, its own version is kept (as coremltools does)"
                        .into();
                if info.model_type != "pipeline" {
                    let note = format!(
                        "coremltools 9.0 cannot quantize {} models (ValueError: Protocol message Pipeline has no \"Type\" field); coremlq can",
                        info.model_type
                    );
                    if !self.plan.notes.contains(&note) {
                        self.plan.notes.push(note);
                    }
                }
                for &child in &info.children {
                    self.visit_model(child, false)?;
                }
            }
            "mlProgram" if top => {
                self.plan.notes.push(
                    "ML Program models are not NeuralNetwork models; quantize_weights does not apply (nothing to do)".into(),
                );
            }
            _ => {}
        }
        Ok(())
    }

    /// Whether any layer of the model can be converted to 1–8 bits (or dequantized with
    /// nbits ≠ 16), which makes coremltools raise the version to 3 instead of 2.
    fn model_needs_v3(&self, _model: ModelId) -> bool {
        if self.settings.default.nbits != 16 {
            return true;
        }
        self.override_targets
            .iter()
            .flatten()
            .any(|t| *t != Target::Fp16)
    }

    /// The rule deciding layer `l` (cached: fusion planning and the walk both ask).
    fn rule(&mut self, l: LayerId) -> Rule {
        if let Some(Some(r)) = self.rules.get(l) {
            return *r;
        }
        let r = self.compute_rule(&self.index.layers[l]);
        if let Some(slot) = self.rules.get_mut(l) {
            *slot = Some(r);
        }
        r
    }

    fn compute_rule(&self, layer: &LayerInfo) -> Rule {
        let name = layer.name.as_str();
        if let Some(i) = self.skip_globs.iter().position(|g| g.matches(name)) {
            return Rule::SkipLayers(i);
        }
        // Exact name beats any pattern; among patterns the longest wins (first on ties).
        let mut best: Option<(usize, bool, usize)> = None; // (override index, exact, len)
        for (i, (o, glob)) in self
            .settings
            .overrides
            .iter()
            .zip(&self.override_globs)
            .enumerate()
        {
            let exact = o.pattern == name;
            let hit = exact || (glob.is_glob() && glob.matches(name));
            if !hit {
                continue;
            }
            let better = match best {
                None => true,
                Some((_, be, bl)) => {
                    (exact && !be) || (exact == be && !exact && o.pattern.len() > bl)
                }
            };
            if better {
                best = Some((i, exact, o.pattern.len()));
            }
        }
        match best {
            Some((i, _, _)) => Rule::Override(i),
            None => Rule::Default,
        }
    }

    /// The target and reason of a rule; `Err` with the reason when it skips the layer.
    fn rule_target(&self, rule: Rule) -> Result<(Target, Reason), Reason> {
        match rule {
            Rule::SkipLayers(i) => Err(self.skip_reasons.get(i).cloned().unwrap_or_default()),
            Rule::Override(i) => {
                let reason = self.override_reasons.get(i).cloned().unwrap_or_default();
                match self.override_targets.get(i).cloned().flatten() {
                    None => Err(reason),
                    Some(t) => Ok((t, reason)),
                }
            }
            Rule::Default => Ok((self.default_target.clone(), self.default_reason.clone())),
        }
    }

    fn visit_network(&mut self, net: NetworkId) -> Result<(), PlanError> {
        let index = self.index;
        let Some(info) = index.networks.get(net) else {
            return Ok(());
        };
        // §2.5: fusion runs per network for 1–8-bit targets, before the walk.
        if self.settings.fuse_layers && self.default_target.fuses() {
            let outputs: HashSet<&str> = index
                .models
                .get(info.model)
                .map(|m| m.outputs.iter().map(|f| f.name.as_str()).collect())
                .unwrap_or_default();
            let several = index
                .networks
                .iter()
                .filter(|n| n.model == info.model)
                .nth(1)
                .is_some();
            let outer = if several {
                self.consumed_elsewhere(info.model, net)
            } else {
                HashSet::new()
            };
            let may_skip = !self.settings.skip_layers.is_empty()
                || self.settings.overrides.iter().any(|o| o.skip);
            let excluded: Vec<bool> = if may_skip {
                info.layers
                    .iter()
                    .map(|&l| {
                        let rule = self.rule(l);
                        self.rule_target(rule).is_err()
                    })
                    .collect()
            } else {
                vec![false; info.layers.len()]
            };
            let result = fusion::plan_network(index, net, &outputs, &outer, &excluded)?;
            self.plan.notes.extend(result.notes);
            for fp in result.producers {
                for step in &fp.steps {
                    let lp = &mut self.plan.layers[step.consumer];
                    lp.decision = LayerDecision::FusedInto(fp.layer);
                    lp.reason = Reason::from(format!(
                        "fused into {} ({})",
                        index.layers[fp.layer].name,
                        step.kind.describe()
                    ));
                    for &w in &index.layers[step.consumer].weights {
                        let tp = &mut self.plan.tensors[w];
                        tp.action = TensorAction::Delete;
                        tp.reason = lp.reason.clone();
                        tp.bytes_after = 0;
                    }
                }
                for &w in &index.layers[fp.layer].weights {
                    if fp.rewrites(&index.weights[w].field) {
                        self.plan.tensors[w].fused = true;
                    }
                }
                if fp.steps.iter().any(|s| s.kind == FusionKind::ConvBatchnorm) {
                    self.plan.notes.push(format!(
                        "{} -> {}: coremltools 9.0 fails on convolution -> batchnorm fusion (§4 bug 5); coremlq fuses with the correct formula",
                        index.layers[fp.layer].name,
                        fp.steps.iter().map(|s| index.layers[s.consumer].name.as_str()).collect::<Vec<_>>().join(", ")
                    ));
                }
                self.plan
                    .fusion_index
                    .insert(fp.layer, self.plan.fusions.len());
                self.plan.fusions.push(fp);
            }
        }
        for &l in &info.layers {
            self.visit_layer(l)?;
        }
        Ok(())
    }

    /// Blobs that layers of other networks of the same model consume.
    fn consumed_elsewhere(&mut self, model: ModelId, net: NetworkId) -> HashSet<&'a str> {
        let index = self.index;
        let map = self.consumed_by.entry(model).or_insert_with(|| {
            let mut map: HashMap<&'a str, HashSet<NetworkId>> = HashMap::new();
            for (n, ni) in index.networks.iter().enumerate() {
                if ni.model != model {
                    continue;
                }
                for &l in &ni.layers {
                    for i in &index.layers[l].inputs {
                        map.entry(i.as_str()).or_default().insert(n);
                    }
                }
            }
            map
        });
        map.iter()
            .filter(|(_, nets)| nets.iter().any(|&n| n != net))
            .map(|(b, _)| *b)
            .collect()
    }

    fn visit_layer(&mut self, l: LayerId) -> Result<(), PlanError> {
        let index = self.index;
        let layer = &index.layers[l];
        if matches!(self.plan.layers[l].decision, LayerDecision::FusedInto(_)) {
            return Ok(());
        }
        let ty = layer.layer_type.as_str();
        let has_weights = !layer.weights.is_empty();
        let fused = self.plan.fusion_of(l).map(|f| f.describe(index));
        let with_fused = |reason: Reason| match &fused {
            Some(f) => Reason::from(format!("{reason}; {f}")),
            None => reason,
        };
        if select::NEVER_CONVERTED_TYPES.contains(&ty) && has_weights {
            let reason = Reason::fixed("coremltools never converts these");
            self.plan.layers[l].decision = LayerDecision::NotQuantizable;
            self.plan.layers[l].reason = reason.clone();
            for &w in &layer.weights {
                self.plan.tensors[w].reason = reason.clone();
            }
            return Ok(());
        }
        let rule = self.rule(l);
        let (target, why) = match self.rule_target(rule) {
            Err(reason) => {
                self.skip_layer(l, with_fused(reason));
                return Ok(());
            }
            Ok(t) => t,
        };
        if let Err(reason) = select::select_layer(&self.settings.selector, layer) {
            self.skip_layer(l, with_fused(Reason::from(reason)));
            return Ok(());
        }
        if ty == "branch" || ty == "loop" {
            self.plan.layers[l].decision = LayerDecision::NoWeights;
            self.plan.layers[l].reason = Reason::fixed("nested networks processed");
            for &child in &layer.children {
                self.visit_network(child)?;
            }
            return Ok(());
        }
        if !has_weights && self.plan.fusion_of(l).is_none() {
            self.plan.layers[l].decision = LayerDecision::NoWeights;
            self.plan.layers[l].reason = Reason::fixed("holds no weights");
            return Ok(());
        }
        self.plan.layers[l].decision = LayerDecision::Quantize(target.clone());
        self.plan.layers[l].reason = with_fused(why.clone());
        let bias_selected = select::select_bias(&self.settings.selector);
        if let Some(&fi) = self.plan.fusion_index.get(&l) {
            if let Some(cb) = self.plan.fusions[fi].created_bias.as_mut() {
                cb.action = if bias_selected && target != Target::Dequantize {
                    TensorAction::Convert(target.clone())
                } else {
                    TensorAction::Keep
                };
            }
        }
        for &w in &layer.weights {
            let info = &index.weights[w];
            let processed = processes(layer, &info.field, bias_selected, self.plan.fusion_of(l));
            let fused_values = self.plan.tensors[w].fused;
            let tp_reason;
            let action = match processed {
                Err(reason) => {
                    tp_reason = Reason::fixed(reason);
                    TensorAction::Keep
                }
                Ok(()) => match tensor_action(info, &target, fused_values) {
                    Ok(()) => {
                        check_shape(info, &target, fused_values).map_err(|k| {
                            PlanError::new(k).at(format!("layer {:?} {}", layer.name, info.field))
                        })?;
                        tp_reason = why.clone();
                        TensorAction::Convert(target.clone())
                    }
                    Err(reason) => {
                        tp_reason = reason;
                        TensorAction::Keep
                    }
                },
            };
            let tp = &mut self.plan.tensors[w];
            tp.action = action;
            tp.reason = tp_reason;
        }
        Ok(())
    }

    fn skip_layer(&mut self, l: LayerId, reason: Reason) {
        let layer = &self.index.layers[l];
        let lp = &mut self.plan.layers[l];
        lp.decision = if layer.weights.is_empty() && !self.plan.fusion_index.contains_key(&l) {
            LayerDecision::NoWeights
        } else {
            LayerDecision::Skip
        };
        for &w in &layer.weights {
            self.plan.tensors[w].reason = reason.clone();
        }
        lp.reason = reason;
    }

    fn finish(&mut self) {
        let index = self.index;
        for fp in &mut self.plan.fusions {
            if let Some(cb) = fp.created_bias.as_mut() {
                let target = match &cb.action {
                    TensorAction::Convert(t) => Some(t),
                    _ => None,
                };
                cb.bytes_after = super::estimate::weight_params_bytes(target, cb.count, 1, false);
            }
        }
        for (w, info) in index.weights.iter().enumerate() {
            let tp = &mut self.plan.tensors[w];
            tp.channels = channels(info, &tp.action);
            tp.bytes_after = super::estimate::tensor_bytes_after(info, tp);
        }
        for (l, layer) in index.layers.iter().enumerate() {
            let before: u64 = layer
                .weights
                .iter()
                .map(|&w| self.plan.tensors[w].bytes_before)
                .sum();
            let mut after: u64 = layer
                .weights
                .iter()
                .map(|&w| self.plan.tensors[w].bytes_after)
                .sum();
            if let Some(fp) = self.plan.fusion_of(l) {
                if let Some(cb) = &fp.created_bias {
                    after += cb.bytes_after;
                }
            }
            let lp = &mut self.plan.layers[l];
            lp.bytes_before = before;
            lp.bytes_after = after;
        }
        self.plan.weight_bytes_after = self.plan.tensors.iter().map(|t| t.bytes_after).sum::<u64>()
            + self
                .plan
                .fusions
                .iter()
                .filter_map(|f| f.created_bias.as_ref().map(|c| c.bytes_after))
                .sum::<u64>();
    }
}

/// Whether coremltools' walk processes the tensor `field` of `layer` (§2.6).
fn processes(
    layer: &LayerInfo,
    field: &str,
    bias_selected: bool,
    fusion: Option<&FusedProducer>,
) -> Result<(), &'static str> {
    // Fields are short: a byte scan beats the general substring search.
    let leaf = field
        .as_bytes()
        .iter()
        .rposition(|&b| b == b'.')
        .and_then(|i| field.get(i + 1..))
        .unwrap_or(field);
    let created = fusion.is_some_and(|f| f.created_bias.is_some());
    match (&layer.params, leaf) {
        (LayerParams::Convolution { has_bias, .. }, "bias")
        | (LayerParams::InnerProduct { has_bias, .. }, "bias")
        | (LayerParams::BatchedMatmul { has_bias, .. }, "bias") => {
            if !(*has_bias || created) {
                Err("hasBias is false")
            } else if !bias_selected {
                Err("selector: skip_layer_types contains \"bias\"")
            } else {
                Ok(())
            }
        }
        (LayerParams::Embedding { has_bias, .. }, "bias")
        | (LayerParams::EmbeddingNd { has_bias, .. }, "bias")
        | (LayerParams::Scale { has_bias, .. }, "bias") => {
            if *has_bias {
                Ok(())
            } else {
                Err("hasBias is false")
            }
        }
        (LayerParams::Recurrent { .. }, _) if field.starts_with("activation") => {
            Err("coremltools never converts activation parameters")
        }
        (
            LayerParams::Recurrent { has_bias, .. },
            "biasVector" | "updateGateBiasVector" | "resetGateBiasVector" | "outputGateBiasVector",
        ) if !field.starts_with("weightParams") => {
            if *has_bias {
                Ok(())
            } else {
                Err("hasBiasVectors is false")
            }
        }
        (LayerParams::Recurrent { has_peephole, .. }, l) if l.ends_with("PeepholeVector") => {
            if *has_peephole {
                Ok(())
            } else {
                Err("hasPeepholeVectors is false")
            }
        }
        (LayerParams::Other, _) => Err("coremltools never converts these"),
        _ => Ok(()),
    }
}

/// Whether a processed tensor is converted, given its storage (§2.7 step 2, §2.10).
fn tensor_action(info: &WeightInfo, target: &Target, fused: bool) -> Result<(), Reason> {
    if fused {
        return if *target == Target::Dequantize {
            Err("fused values are float32".into())
        } else {
            Ok(())
        };
    }
    match (info.storage, target) {
        (Storage::Float32, Target::Dequantize) => Err("already float32".into()),
        (Storage::Float32, _) => Ok(()),
        (Storage::Linear { .. } | Storage::Lut { .. }, Target::Dequantize) => Ok(()),
        (Storage::Float16, Target::Dequantize) => Err(
            "float16 values are kept (coremltools 9.0 fails on them with IndexError, §4 bug 11)"
                .into(),
        ),
        (Storage::Int8, Target::Dequantize) => Err(
            "int8 dynamic-quantization values are kept (coremltools 9.0 refuses them, §4 bug 11)"
                .into(),
        ),
        (Storage::Empty, _) => Err("no values (absent or dynamic)".into()),
        (Storage::Float16, _) => Err("already float16".into()),
        (Storage::Linear { nbits } | Storage::Lut { nbits }, _) => {
            Err(Reason::from(format!("already {nbits}-bit quantized")))
        }
        (Storage::Int8, _) => Err("already int8".into()),
        (Storage::Mixed, _) => Err("several storage fields are set; left as is".into()),
    }
}

/// coremltools' channel and reshape checks (§2.7 step 5), done at plan time.
fn check_shape(info: &WeightInfo, target: &Target, _fused: bool) -> Result<(), PlanErrorKind> {
    if *target == Target::Dequantize {
        // The output size comes from the header's count: it must be backed by the payload
        // (coremltools unpacks exactly count·nbits bits), or a lying header would plan a
        // tensor of any size.
        if let (Storage::Linear { nbits } | Storage::Lut { nbits }, Some(raw)) =
            (info.storage, &info.raw_values)
        {
            let bytes = (raw.end - raw.start) as u64;
            let needed = info.count.saturating_mul(u64::from(nbits)).div_ceil(8);
            if bytes < needed {
                return Err(PlanErrorKind::QuantizedPayloadTooShort {
                    bytes,
                    count: info.count,
                    nbits,
                });
            }
        }
        return Ok(());
    }
    if *target == Target::Fp16 {
        return Ok(());
    }
    let count = usize::try_from(info.count).unwrap_or(usize::MAX);
    ChannelView::new(count, &info.shape, info.axis, target.is_linear())
        .map(|_| ())
        .map_err(|e| match e {
            super::kernels::KernelError::ChannelsNotDivisible { weights, channels } => {
                PlanErrorKind::ChannelsDoNotDivide {
                    count: weights as u64,
                    channels,
                }
            }
            _ => PlanErrorKind::ShapeMismatch {
                count: info.count,
                shape: info.shape.clone(),
            },
        })
}

/// The number of linear quantization channels of a tensor (1 for 1-D tensors and LUTs).
pub fn channels(info: &WeightInfo, action: &TensorAction) -> u64 {
    match action {
        TensorAction::Convert(t) if t.is_linear() && info.shape.len() > 1 => {
            info.shape.get(info.axis).copied().unwrap_or(1).max(1)
        }
        _ => 1,
    }
}

fn display(s: &str) -> &str {
    if s.is_empty() {
        "untyped"
    } else {
        s
    }
}

/// A shared custom table, for tests and the CLI.
pub fn lut(values: &[f32]) -> Arc<[f32]> {
    Arc::from(values)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_compare_by_text_whatever_their_storage() {
        let fixed = Reason::fixed("already float32");
        let shared = Reason::from(String::from("already float32"));
        assert_eq!(fixed, shared);
        assert_eq!(shared, "already float32");
        assert_eq!(fixed.to_string(), "already float32");
        assert_eq!(format!("{shared:?}"), "\"already float32\"");
        assert!(Reason::default().is_empty());
        assert!(Reason::from(Cow::Borrowed("hasBias is false")).contains("hasBias"));
        assert_eq!(String::from(shared.clone()), "already float32");
    }
}
