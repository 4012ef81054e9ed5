//! prost types generated from `proto/` (package `CoreML.Specification`).
#![allow(missing_docs, clippy::all, clippy::pedantic)]

include!(concat!(env!("OUT_DIR"), "/core_ml.specification.rs"));

/// Package `CoreML.Specification.MILSpec` (ML Programs; a placeholder).
pub mod mil_spec {
    include!(concat!(
        env!("OUT_DIR"),
        "/core_ml.specification.mil_spec.rs"
    ));
}

/// Package `CoreML.Specification.CoreMLModels` (Apple's built-in models; placeholders).
pub mod core_ml_models {
    include!(concat!(
        env!("OUT_DIR"),
        "/core_ml.specification.core_ml_models.rs"
    ));
}
