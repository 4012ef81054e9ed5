//! `.mlpackage` folders: finding the model file through `Manifest.json`.
//!
//! A package's `Manifest.json` lists its items in `itemInfoEntries` (identifier → `{path,
//! name, author, description}`, paths relative to `Data/`) and names the model in
//! `rootModelIdentifier`. coremltools writes the model to `Data/com.apple.CoreML/model.mlmodel`.

use std::path::{Component, Path, PathBuf};

use serde::Deserialize;

use super::ModelError;

/// Where coremltools puts the model inside a package.
pub const DEFAULT_MODEL: &str = "Data/com.apple.CoreML/model.mlmodel";

#[derive(Deserialize)]
struct Manifest {
    #[serde(rename = "itemInfoEntries", default)]
    items: std::collections::BTreeMap<String, Item>,
    #[serde(rename = "rootModelIdentifier", default)]
    root: Option<String>,
}

#[derive(Deserialize)]
struct Item {
    #[serde(default)]
    path: String,
}

/// The path of the Core ML model file inside an `.mlpackage` folder: the manifest's root
/// model (or its first `.mlmodel` item), else `Data/com.apple.CoreML/model.mlmodel`.
pub fn model_path(package: &Path) -> Result<PathBuf, ModelError> {
    let fallback = package.join(DEFAULT_MODEL);
    let manifest_path = package.join("Manifest.json");
    let not_a_model = |message: String| ModelError::NotAModel {
        path: package.to_path_buf(),
        message,
    };
    let text = match std::fs::read_to_string(&manifest_path) {
        Ok(text) => text,
        Err(_) if fallback.is_file() => return Ok(fallback),
        Err(_) => {
            return Err(not_a_model(format!(
                "is a folder, not a Core ML model: it has neither Manifest.json nor {DEFAULT_MODEL}"
            )))
        }
    };
    let manifest: Manifest = match serde_json::from_str(&text) {
        Ok(m) => m,
        Err(_) if fallback.is_file() => return Ok(fallback),
        Err(e) => return Err(not_a_model(format!("Manifest.json is not valid: {e}"))),
    };
    let is_model = |item: &&Item| item.path.ends_with(".mlmodel");
    let chosen = manifest
        .root
        .as_ref()
        .and_then(|id| manifest.items.get(id))
        .filter(is_model)
        .or_else(|| manifest.items.values().find(is_model));
    let Some(item) = chosen else {
        if fallback.is_file() {
            return Ok(fallback);
        }
        return Err(not_a_model(format!(
            "Manifest.json lists no .mlmodel item and there is no {DEFAULT_MODEL}"
        )));
    };
    let relative = Path::new(&item.path);
    if !relative
        .components()
        .all(|c| matches!(c, Component::Normal(_)))
    {
        return Err(not_a_model(format!(
            "Manifest.json names the model {:?}, which is not a path inside Data/",
            item.path
        )));
    }
    let path = package.join("Data").join(relative);
    if path.is_file() {
        Ok(path)
    } else if fallback.is_file() {
        Ok(fallback)
    } else {
        Err(not_a_model(format!(
            "Manifest.json names Data/{}, which does not exist",
            item.path
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn package(manifest: Option<&str>, files: &[&str]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        if let Some(m) = manifest {
            std::fs::write(dir.path().join("Manifest.json"), m).unwrap_or_else(|e| panic!("{e}"));
        }
        for f in files {
            let p = dir.path().join(f);
            std::fs::create_dir_all(p.parent().unwrap_or(dir.path()))
                .unwrap_or_else(|e| panic!("{e}"));
            std::fs::write(p, b"x").unwrap_or_else(|e| panic!("{e}"));
        }
        dir
    }

    #[test]
    fn root_model_from_manifest() {
        let m = r#"{"fileFormatVersion":"1.0.0","itemInfoEntries":{
            "A":{"author":"com.apple.CoreML","path":"com.apple.CoreML/weights"},
            "B":{"author":"com.apple.CoreML","path":"com.apple.CoreML/other.mlmodel"}},
            "rootModelIdentifier":"B"}"#;
        let dir = package(Some(m), &["Data/com.apple.CoreML/other.mlmodel"]);
        let p = model_path(dir.path()).unwrap_or_else(|e| panic!("{e}"));
        assert!(p.ends_with("Data/com.apple.CoreML/other.mlmodel"));
    }

    #[test]
    fn fallbacks_and_errors() {
        let dir = package(None, &[DEFAULT_MODEL]);
        assert!(model_path(dir.path()).is_ok_and(|p| p.ends_with(DEFAULT_MODEL)));
        let dir = package(Some("not json"), &[DEFAULT_MODEL]);
        assert!(model_path(dir.path()).is_ok());
        let dir = package(None, &[]);
        let e = model_path(dir.path()).map(|_| ()).unwrap_err().to_string();
        assert!(e.contains("neither Manifest.json"), "{e}");
        let dir = package(Some("{}"), &[]);
        let e = model_path(dir.path()).map(|_| ()).unwrap_err().to_string();
        assert!(e.contains("no .mlmodel item"), "{e}");
        let m =
            r#"{"itemInfoEntries":{"A":{"path":"../../etc/x.mlmodel"}},"rootModelIdentifier":"A"}"#;
        let dir = package(Some(m), &[]);
        let e = model_path(dir.path()).map(|_| ()).unwrap_err().to_string();
        assert!(e.contains("not a path inside Data/"), "{e}");
    }
}
