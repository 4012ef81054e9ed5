//! Core ML model files: the zero-copy index and the generated protobuf types.

pub mod error;
pub mod index;
pub mod map_guard;
pub mod names;
pub mod open;
pub mod package;
pub mod proto;
mod walk;
pub mod wire;

pub use error::ModelError;
pub use index::{
    FeatureInfo, LayerId, LayerInfo, LayerParams, ModelId, ModelIndex, ModelInfo, NetworkId,
    NetworkInfo, NetworkRole, Storage, WeightId, WeightInfo,
};
pub use open::ModelFile;
