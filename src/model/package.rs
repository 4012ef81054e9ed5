//! `.mlpackage` folders: finding the model file through `Manifest.json`.

use std::path::{Path, PathBuf};

use super::ModelError;

/// The path of the Core ML model file inside an `.mlpackage` folder.
pub fn model_path(package: &Path) -> Result<PathBuf, ModelError> {
    let fallback = package.join("Data/com.apple.CoreML/model.mlmodel");
    if fallback.is_file() {
        return Ok(fallback);
    }
    Err(ModelError::NotAModel {
        path: package.to_path_buf(),
        message: "is a folder without Data/com.apple.CoreML/model.mlmodel".into(),
    })
}
