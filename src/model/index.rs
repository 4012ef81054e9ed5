//! The model index: every model, network, layer and weight tensor of a Core ML file, with
//! the byte spans the writer needs, built by walking the protobuf in place.
//!
//! Ids are indices into the flat vectors of [`ModelIndex`]; `models[0]` is the top-level
//! model and every vector is in walk order (pre-order, layers in file order, a branch or
//! loop layer's nested networks right after the layer itself).

use std::ops::Range;
use std::path::PathBuf;

/// A byte range in the model file.
pub type Span = Range<usize>;

/// Index of a [`ModelInfo`] in [`ModelIndex::models`].
pub type ModelId = usize;
/// Index of a [`NetworkInfo`] in [`ModelIndex::networks`].
pub type NetworkId = usize;
/// Index of a [`LayerInfo`] in [`ModelIndex::layers`].
pub type LayerId = usize;
/// Index of a [`WeightInfo`] in [`ModelIndex::weights`].
pub type WeightId = usize;

/// Everything coremlq knows about one model file, without its weight payloads.
#[derive(Debug, Clone, Default)]
pub struct ModelIndex {
    /// The file that was indexed (for an `.mlpackage`, the model file inside it).
    pub path: PathBuf,
    /// Size of that file in bytes.
    pub file_bytes: u64,
    /// `models[0]` is the file's Model; pipeline members follow in walk order.
    pub models: Vec<ModelInfo>,
    /// Every neural network: main networks of NN models and nested branch/loop networks.
    pub networks: Vec<NetworkInfo>,
    /// Every layer of every network.
    pub layers: Vec<LayerInfo>,
    /// Every WeightParams under any layer.
    pub weights: Vec<WeightInfo>,
    /// Non-fatal findings (unknown fields, odd encodings) worth showing to the user.
    pub warnings: Vec<String>,
}

/// One `Model` message: the file itself or a member of a pipeline.
#[derive(Debug, Clone, Default)]
pub struct ModelInfo {
    /// The whole field holding this model in its parent pipeline (tag to end); for the
    /// top-level model, the whole file.
    pub span: Span,
    /// The bytes of the Model message itself (without tag and length).
    pub body: Span,
    /// The pipeline model containing this one.
    pub parent: Option<ModelId>,
    /// The member's name in its pipeline (`Pipeline.names`), if any.
    pub name: Option<String>,
    /// Field path from the file's Model: `""` for the top level,
    /// `pipeline.models[1]`, `pipelineClassifier.pipeline.models[0]`, …
    pub path: String,
    /// The `Model.Type` oneof member as coremltools spells it (`neuralNetworkClassifier`, …);
    /// `"unknown(N)"` for an unknown field number, `""` when no type is set.
    pub model_type: String,
    /// Field number of the `Model.Type` member (0 when none).
    pub type_field: u32,
    /// `Model.specificationVersion`.
    pub specification_version: i64,
    /// `Model.isUpdatable`.
    pub is_updatable: bool,
    /// `ModelDescription.input`.
    pub inputs: Vec<FeatureInfo>,
    /// `ModelDescription.output`.
    pub outputs: Vec<FeatureInfo>,
    /// The model's main neural network, for NN models.
    pub network: Option<NetworkId>,
    /// Pipeline members, in order.
    pub children: Vec<ModelId>,
}

/// One input or output feature of a model.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FeatureInfo {
    /// Feature name.
    pub name: String,
    /// Short type description (`multiArray [3,224,224] float32`, `image 224x224`, `int64`, …).
    pub kind: String,
}

/// Where a network sits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NetworkRole {
    /// The network of a `neuralNetwork`, `neuralNetworkClassifier` or `neuralNetworkRegressor` model.
    #[default]
    Main,
    /// `BranchLayerParams.ifBranch`.
    IfBranch,
    /// `BranchLayerParams.elseBranch`.
    ElseBranch,
    /// `LoopLayerParams.conditionNetwork`.
    LoopCondition,
    /// `LoopLayerParams.bodyNetwork`.
    LoopBody,
}

/// One neural network (a `NeuralNetwork*` message).
#[derive(Debug, Clone, Default)]
pub struct NetworkInfo {
    /// The model this network belongs to.
    pub model: ModelId,
    /// The branch or loop layer holding this network, for nested networks.
    pub parent_layer: Option<LayerId>,
    /// Where the network sits.
    pub role: NetworkRole,
    /// Field path from the file's Model: `neuralNetwork`,
    /// `neuralNetworkClassifier.layers[3].loop.bodyNetwork`, `pipeline.models[0].neuralNetwork`, …
    pub path: String,
    /// The whole field holding the network (tag to end).
    pub span: Span,
    /// The network message's bytes (without tag and length).
    pub body: Span,
    /// Its layers, in file order.
    pub layers: Vec<LayerId>,
}

/// One `NeuralNetworkLayer`.
#[derive(Debug, Clone, Default)]
pub struct LayerInfo {
    /// The network holding the layer.
    pub network: NetworkId,
    /// `NeuralNetworkLayer.name` (lossily decoded if not UTF-8).
    pub name: String,
    /// The `layer` oneof member as coremltools spells it (`convolution`, `innerProduct`, …);
    /// `"unknown(N)"` for an unknown field number, `""` when no type is set.
    pub layer_type: String,
    /// Field number of the `layer` oneof member (0 when none).
    pub type_field: u32,
    /// Input blob names.
    pub inputs: Vec<String>,
    /// Output blob names.
    pub outputs: Vec<String>,
    /// `NeuralNetworkLayer.isUpdatable`.
    pub is_updatable: bool,
    /// The whole `layers` entry in its network (tag to end).
    pub span: Span,
    /// The whole `layer` oneof field (tag to end).
    pub params_span: Span,
    /// The header fields that shape its weight tensors.
    pub params: LayerParams,
    /// Its weight tensors, in the order coremltools processes them (§2.6 of the spec).
    pub weights: Vec<WeightId>,
    /// Networks nested in a branch or loop layer.
    pub children: Vec<NetworkId>,
}

/// The shape-giving header fields of a layer that holds weights.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum LayerParams {
    /// `ConvolutionLayerParams`.
    Convolution {
        /// outputChannels(1).
        output_channels: u64,
        /// kernelChannels(2).
        kernel_channels: u64,
        /// nGroups(10).
        n_groups: u64,
        /// kernelSize(20), usually `[kH, kW]`.
        kernel_size: Vec<u64>,
        /// isDeconvolution(60).
        is_deconvolution: bool,
        /// hasBias(70).
        has_bias: bool,
    },
    /// `InnerProductLayerParams`.
    InnerProduct {
        /// inputChannels(1).
        input_channels: u64,
        /// outputChannels(2).
        output_channels: u64,
        /// hasBias(10).
        has_bias: bool,
        /// int8DynamicQuantize(22).
        int8_dynamic_quantize: bool,
    },
    /// `BatchedMatMulLayerParams`.
    BatchedMatmul {
        /// weightMatrixFirstDimension(5).
        first_dim: u64,
        /// weightMatrixSecondDimension(6).
        second_dim: u64,
        /// hasBias(7).
        has_bias: bool,
        /// int8DynamicQuantize(10).
        int8_dynamic_quantize: bool,
    },
    /// `EmbeddingLayerParams`.
    Embedding {
        /// inputDim(1).
        input_dim: u64,
        /// outputChannels(2).
        output_channels: u64,
        /// hasBias(10).
        has_bias: bool,
    },
    /// `EmbeddingNDLayerParams`.
    EmbeddingNd {
        /// vocabSize(1).
        vocab_size: u64,
        /// embeddingSize(2).
        embedding_size: u64,
        /// hasBias(3).
        has_bias: bool,
    },
    /// `BatchnormLayerParams`.
    Batchnorm {
        /// channels(1).
        channels: u64,
        /// computeMeanVar(5).
        compute_mean_var: bool,
        /// instanceNormalization(6).
        instance_normalization: bool,
        /// epsilon(10), as stored.
        epsilon: f32,
    },
    /// `ScaleLayerParams`.
    Scale {
        /// shapeScale(1).
        shape_scale: Vec<u64>,
        /// hasBias(3).
        has_bias: bool,
        /// shapeBias(4).
        shape_bias: Vec<u64>,
    },
    /// `BiasLayerParams`.
    Bias {
        /// shape(1).
        shape: Vec<u64>,
    },
    /// `LoadConstantLayerParams` / `LoadConstantNDLayerParams`.
    LoadConstant {
        /// shape(1).
        shape: Vec<u64>,
    },
    /// `SimpleRecurrentLayerParams`, `GRULayerParams`, `UniDirectionalLSTMLayerParams`,
    /// `BiDirectionalLSTMLayerParams`.
    Recurrent {
        /// inputVectorSize(1).
        input_size: u64,
        /// outputVectorSize(2).
        output_size: u64,
        /// hasBiasVector(s) (simpleRecurrent, gru; LSTMParams.hasBiasVectors for LSTMs).
        has_bias: bool,
        /// LSTMParams.hasPeepholeVectors (LSTMs only).
        has_peephole: bool,
    },
    /// Any other layer (its weights, if any, are never quantized by coremltools).
    #[default]
    Other,
}

/// How a WeightParams currently stores its values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Storage {
    /// No values at all (absent bias, dynamic weights).
    #[default]
    Empty,
    /// floatValue.
    Float32,
    /// float16Value.
    Float16,
    /// rawValue with linear quantization of `nbits` bits.
    Linear {
        /// QuantizationParams.numberOfBits.
        nbits: u8,
    },
    /// rawValue with a lookup table of `nbits` bits.
    Lut {
        /// QuantizationParams.numberOfBits.
        nbits: u8,
    },
    /// int8RawValue (int8 dynamic matmul).
    Int8,
    /// More than one storage field set, or quantization parameters that do not fit.
    Mixed,
}

impl Storage {
    /// The name used in `inspect` output: `float32`, `float16`, `linear`, `lut`, `int8`, `empty`, `mixed`.
    pub fn name(self) -> &'static str {
        match self {
            Storage::Empty => "empty",
            Storage::Float32 => "float32",
            Storage::Float16 => "float16",
            Storage::Linear { .. } => "linear",
            Storage::Lut { .. } => "lut",
            Storage::Int8 => "int8",
            Storage::Mixed => "mixed",
        }
    }

    /// Bits per stored weight, where that is meaningful.
    pub fn nbits(self) -> Option<u8> {
        match self {
            Storage::Float32 => Some(32),
            Storage::Float16 => Some(16),
            Storage::Linear { nbits } | Storage::Lut { nbits } => Some(nbits),
            Storage::Int8 => Some(8),
            Storage::Empty | Storage::Mixed => None,
        }
    }
}

/// One `WeightParams` under a layer.
#[derive(Debug, Clone, Default)]
pub struct WeightInfo {
    /// The layer holding it.
    pub layer: LayerId,
    /// Its field name as in the schema (`weights`, `bias`, `gamma`, …); inside
    /// `LSTMWeightParams` prefixed by the path (`weightParams.inputGateWeightMatrix`,
    /// `weightParams[1].inputGateWeightMatrix` for the backward direction), inside
    /// activations `activation.PReLU.alpha`.
    pub field: String,
    /// The whole field holding the WeightParams (tag to end).
    pub span: Span,
    /// The WeightParams message's bytes (without tag and length); its length is the
    /// tensor's serialized size.
    pub body: Span,
    /// How the values are stored.
    pub storage: Storage,
    /// Number of elements: stored floats or halves, or the shape's element count for
    /// quantized tensors.
    pub count: u64,
    /// The tensor shape as stored (row-major), derived from the layer's header fields;
    /// empty when the layer does not define one.
    pub shape: Vec<u64>,
    /// The quantization channel axis within `shape` (1 for deconvolution weights, else 0).
    pub axis: usize,
    /// Payload of floatValue (the packed little-endian floats), if any.
    pub float_values: Option<Span>,
    /// Payload of float16Value, if any.
    pub half_values: Option<Span>,
    /// Payload of rawValue, if any.
    pub raw_values: Option<Span>,
    /// Payload of int8RawValue, if any.
    pub int8_values: Option<Span>,
    /// The whole quantization field (tag to end), if present.
    pub quantization: Option<Span>,
    /// WeightParams.isUpdatable.
    pub is_updatable: bool,
}

impl WeightInfo {
    /// Serialized size of the WeightParams message (without its own tag and length).
    pub fn bytes(&self) -> u64 {
        (self.body.end - self.body.start) as u64
    }
}

impl ModelIndex {
    /// The top-level model.
    pub fn root(&self) -> &ModelInfo {
        &self.models[0]
    }

    /// Total serialized size of all WeightParams messages.
    pub fn weight_bytes(&self) -> u64 {
        self.weights.iter().map(WeightInfo::bytes).sum()
    }

    /// The weights of one layer.
    pub fn layer_weights(&self, layer: LayerId) -> impl Iterator<Item = &WeightInfo> + '_ {
        self.layers[layer]
            .weights
            .iter()
            .map(move |&w| &self.weights[w])
    }

    /// Layers whose name is exactly `name`, in walk order (names need not be unique).
    pub fn layers_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = LayerId> + 'a {
        self.layers
            .iter()
            .enumerate()
            .filter(move |(_, l)| l.name == name)
            .map(|(i, _)| i)
    }
}

/// Builds the index of a model file's bytes (`path` is only used in messages).
///
/// Reads only the skeleton of the file: tags, lengths and the small header fields; the
/// weight payloads are recorded as spans and never read.
pub fn build(path: &std::path::Path, bytes: &[u8]) -> Result<ModelIndex, super::ModelError> {
    super::walk::build(path, bytes)
}

/// The float32 values of a WeightParams (`floatValue`, packed or not), decoded from `bytes`
/// (the file the index was built from). Empty when the tensor has no float32 values.
pub fn float_values(
    path: &std::path::Path,
    bytes: &[u8],
    w: &WeightInfo,
) -> Result<Vec<f32>, super::ModelError> {
    super::walk::float_values(path, bytes, w)
}

/// The float16 values of a WeightParams (`float16Value`), decoded from `bytes`. Empty when
/// the tensor has no float16 values; a trailing odd byte is ignored.
pub fn half_values(bytes: &[u8], w: &WeightInfo) -> Vec<half::f16> {
    match &w.half_values {
        Some(span) => bytes
            .get(span.clone())
            .unwrap_or_default()
            .chunks_exact(2)
            .map(|c| half::f16::from_le_bytes([c[0], c[1]]))
            .collect(),
        None => Vec::new(),
    }
}
