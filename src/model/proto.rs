//! prost types generated from `proto/` (package `CoreML.Specification`).
#![allow(missing_docs, clippy::all, clippy::pedantic)]

include!(concat!(env!("OUT_DIR"), "/core_ml.specification.rs"));
