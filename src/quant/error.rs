//! Errors of planning and executing a quantization. The texts of [`PlanErrorKind`] carry
//! coremltools' own wording (typos fixed) so that users recognise them.

use std::fmt;
use std::path::PathBuf;

use crate::model::ModelError;

/// What is wrong with a request, in coremltools' terms.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanErrorKind {
    /// An unknown `quantization_mode` string.
    #[error("Invalid quantization mode {mode:?}. Quantization mode must be one of linear, linear_symmetric, linear_lut, kmeans_lut, custom_lut, dequantization")]
    InvalidMode {
        /// The string given.
        mode: String,
    },
    /// fp16 conversion of a model with `isUpdatable` set.
    #[error("updatable models cannot get quantized to FP16.")]
    UpdatableFp16,
    /// No nbits given.
    #[error("Missing argument \"nbits\"")]
    MissingNbits,
    /// nbits outside 1–8 and not 16.
    #[error(
        "Only half precision (16-bit), 1 to 8-bit quantization is supported (got nbits {nbits})"
    )]
    InvalidNbits {
        /// The value given.
        nbits: i64,
    },
    /// linear_symmetric with nbits other than 8.
    #[error("Symmetric quantization is only applicable for 8 bit linear (got nbits {nbits})")]
    SymmetricNot8 {
        /// The value given.
        nbits: i64,
    },
    /// custom_lut with 1–8 bits but no table.
    #[error("Custom lookup table quantization mode selected but no lookup table function passed")]
    CustomLutWithoutTable,
    /// A custom table that cannot be indexed with nbits bits.
    #[error("the custom lookup table has {len} entries; with {nbits} bits it needs 1 to {max}")]
    CustomLutSize {
        /// Entries given.
        len: usize,
        /// Bits per index.
        nbits: u8,
        /// 2^nbits.
        max: usize,
    },
    /// `skip_layer_types` names a type the selector does not know.
    #[error("Skip quantization layer types ({types}) is not supported.\nSupported quantization layers: ({supported})")]
    UnsupportedSkipTypes {
        /// The offending names, comma separated.
        types: String,
        /// The supported names, comma separated.
        supported: String,
    },
    /// The channel count does not divide the number of weights.
    #[error("Number of quantization channels does not divide evenly into weights ({count} weights, {channels} channels)")]
    ChannelsDoNotDivide {
        /// Number of weights.
        count: u64,
        /// Number of channels.
        channels: u64,
    },
    /// The stored values do not fill the shape the layer header declares.
    #[error("cannot reshape array of size {count} into shape {shape:?}")]
    ShapeMismatch {
        /// Number of stored values.
        count: u64,
        /// The declared shape.
        shape: Vec<u64>,
    },
    /// A quantized tensor's payload holds fewer indices than its layer header declares.
    #[error("the quantized values hold {bytes} bytes, too few for {count} {nbits}-bit indices")]
    QuantizedPayloadTooShort {
        /// Bytes of rawValue.
        bytes: u64,
        /// Number of weights the header declares.
        count: u64,
        /// Bits per index.
        nbits: u8,
    },
    /// A fusion needs float values but the tensor is quantized.
    #[error("No values found in input. Please make sure either `floatValue` or `float16Value` of the input is set (fusing {producer} -> {consumer}; run without layer fusion to quantize this model)")]
    FusionWithoutValues {
        /// The producer layer.
        producer: String,
        /// The consumer layer.
        consumer: String,
    },
    /// An fp16 conversion hit a value half precision cannot hold.
    #[error(
        "Model cannot be converted as it has weights that cannot be represented in half precision."
    )]
    Fp16Range,
}

/// A planning error: what (`kind`), in which file and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanError {
    /// The model file (empty when validating settings alone).
    pub path: PathBuf,
    /// The layer and tensor concerned, if any (`layer "conv1" weights`).
    pub place: Option<String>,
    /// What is wrong.
    pub kind: PlanErrorKind,
}

impl PlanError {
    /// An error not tied to a file or layer.
    pub fn new(kind: PlanErrorKind) -> PlanError {
        PlanError {
            path: PathBuf::new(),
            place: None,
            kind,
        }
    }

    /// The same error, attributed to a file.
    pub fn in_file(mut self, path: &std::path::Path) -> PlanError {
        if self.path.as_os_str().is_empty() {
            self.path = path.to_path_buf();
        }
        self
    }

    /// The same error, attributed to a place in the file.
    pub fn at(mut self, place: impl Into<String>) -> PlanError {
        self.place = Some(place.into());
        self
    }
}

impl fmt::Display for PlanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.path.as_os_str().is_empty() {
            write!(f, "{}: ", self.path.display())?;
        }
        if let Some(place) = &self.place {
            write!(f, "{place}: ")?;
        }
        write!(f, "{}", self.kind)
    }
}

impl std::error::Error for PlanError {}

/// Why a quantization run failed. Nothing is left on disk when it does.
#[derive(Debug, thiserror::Error)]
pub enum QuantError {
    /// The request is invalid for this model.
    #[error(transparent)]
    Plan(#[from] PlanError),
    /// The input (or the written output, on verification) could not be read.
    #[error(transparent)]
    Model(#[from] ModelError),
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// The output path is the input file (or a link to it).
    #[error("{path}: refusing to overwrite the input model; choose another output path")]
    OutputIsInput {
        /// The output path.
        path: PathBuf,
    },
    /// The output path is inside the input package, or an existing output holds the input.
    #[error("{path}: the output and the input {input} overlap (one is inside the other); choose another output path")]
    OutputOverlapsInput {
        /// The output path.
        path: PathBuf,
        /// The input package (or model file).
        input: PathBuf,
    },
    /// An entry of the input package that is not copied into a package output.
    #[error("{path}: {message}; the package is not copied")]
    PackageEntry {
        /// The entry inside the input package.
        path: PathBuf,
        /// What it is.
        message: String,
    },
    /// The output path exists and is not a Core ML model.
    #[error("{path}: exists and is not a Core ML model; refusing to overwrite it")]
    RefuseOverwrite {
        /// The output path.
        path: PathBuf,
    },
    /// The input bytes do not match the index (a field could not be parsed where expected).
    #[error("{path}: byte {offset}: {message}")]
    Malformed {
        /// The model file.
        path: PathBuf,
        /// Where.
        offset: u64,
        /// What.
        message: String,
    },
    /// A kernel failed on one tensor.
    #[error("{path}: layer {layer:?} {field}: {message}")]
    Kernel {
        /// The model file.
        path: PathBuf,
        /// The layer.
        layer: String,
        /// The tensor's field.
        field: String,
        /// The kernel's message.
        message: String,
    },
    /// The file written does not have the size or structure planned (a bug in coremlq).
    #[error("{path}: verification failed: {message}")]
    Verify {
        /// The output file.
        path: PathBuf,
        /// What differed.
        message: String,
    },
    /// The run was cancelled.
    #[error("quantization cancelled")]
    Cancelled,
}
