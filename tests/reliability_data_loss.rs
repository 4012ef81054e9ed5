//! No data loss: the input model is never modified, and an interrupted quantization
//! (cancelled, killed, out of disk space) leaves the previous output intact or absent,
//! never a partial file; outputs onto the input, through a link into it, onto a file that is
//! not a model or onto a folder are refused with the reason.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use coremlq::model::ModelFile;
use coremlq::quant::{self, Choice, Mode, QuantError, RunOptions, Selector, Settings};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// FNV-1a, enough to show in a message that two files differ.
fn checksum(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

/// A file's bytes and checksum, to compare before and after.
#[derive(Debug, PartialEq, Eq)]
struct Snapshot {
    len: usize,
    sum: u64,
}

fn snapshot(path: &Path) -> Snapshot {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    Snapshot {
        len: bytes.len(),
        sum: checksum(&bytes),
    }
}

fn settings(nbits: u8, mode: Mode) -> Settings {
    let lut = (mode == Mode::CustomLut).then(|| Arc::from(vec![-1.0f32, 0.0, 0.5, 1.0]));
    Settings {
        default: Choice { nbits, mode, lut },
        selector: Selector::Default,
        skip_layers: Vec::new(),
        overrides: Vec::new(),
        fuse_layers: nbits != 16,
    }
}

/// A private copy of a fixture or example in a fresh folder (tests never touch the originals).
fn copy_in(dir: &Path, source: &Path) -> PathBuf {
    let name = source.file_name().expect("file name");
    let target = dir.join(name);
    std::fs::copy(source, &target).unwrap_or_else(|e| panic!("{}: {e}", source.display()));
    target
}

/// Files in `dir` other than `keep` (temp files left behind, partial outputs).
fn leftovers(dir: &Path, keep: &[&Path]) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| rd.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default();
    out.retain(|p| !keep.iter().any(|k| k == p));
    out.sort();
    out
}

fn run(
    input: &Path,
    output: &Path,
    settings: &Settings,
    opts: &RunOptions,
) -> Result<(), QuantError> {
    let file = ModelFile::open(input).map_err(QuantError::from)?;
    let plan = quant::plan::build(&file.index, settings)?;
    quant::quantize(&file, &plan, output, opts).map(|_| ())
}

#[test]
fn the_input_is_never_modified() {
    let dir = tempfile::tempdir().expect("tempdir");
    let models = root().join("tests/fixtures/models");
    let mut names: Vec<PathBuf> = std::fs::read_dir(&models)
        .expect("fixtures")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "mlmodel"))
        .collect();
    names.sort();
    assert!(!names.is_empty());
    let mut written = 0;
    for source in &names {
        let input = copy_in(dir.path(), source);
        let before = snapshot(&input);
        for (nbits, mode) in [
            (16, Mode::Linear),
            (8, Mode::Linear),
            (4, Mode::KmeansLut),
            (8, Mode::Dequantization),
        ] {
            let output = dir.path().join("out.mlmodel");
            if run(
                &input,
                &output,
                &settings(nbits, mode),
                &RunOptions::default(),
            )
            .is_ok()
            {
                written += 1;
            }
            assert_eq!(
                snapshot(&input),
                before,
                "{}: input changed by {nbits} bits {mode:?}",
                source.display()
            );
            let _ = std::fs::remove_file(&output);
        }
        std::fs::remove_file(&input).expect("cleanup");
        assert_eq!(
            leftovers(dir.path(), &[]),
            Vec::<PathBuf>::new(),
            "{}: files left behind",
            source.display()
        );
    }
    assert!(
        written > names.len(),
        "only {written} quantizations succeeded"
    );
}

#[test]
fn writing_onto_the_input_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = copy_in(
        dir.path(),
        &root().join("tests/fixtures/models/conv.mlmodel"),
    );
    let before = snapshot(&input);
    let s = settings(8, Mode::Linear);
    // The same path, spelled differently.
    let dotted = dir.path().join(".").join("conv.mlmodel");
    for output in [input.clone(), dotted] {
        let err = run(&input, &output, &s, &RunOptions::default()).expect_err("onto the input");
        assert!(matches!(err, QuantError::OutputIsInput { .. }), "{err}");
        assert!(err.to_string().contains("input"), "no reason given: {err}");
    }
    assert_eq!(snapshot(&input), before);
    assert_eq!(leftovers(dir.path(), &[&input]), Vec::<PathBuf>::new());
}

#[cfg(unix)]
#[test]
fn writing_through_a_link_into_the_input_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = copy_in(
        dir.path(),
        &root().join("tests/fixtures/models/conv.mlmodel"),
    );
    let before = snapshot(&input);
    let s = settings(8, Mode::Linear);
    // A symbolic link to the input.
    let link = dir.path().join("link.mlmodel");
    std::os::unix::fs::symlink(&input, &link).expect("symlink");
    let err = run(&input, &link, &s, &RunOptions::default()).expect_err("through a symlink");
    assert!(
        matches!(
            err,
            QuantError::OutputIsInput { .. } | QuantError::RefuseOverwrite { .. }
        ),
        "{err}"
    );
    assert!(
        std::fs::symlink_metadata(&link)
            .expect("link")
            .file_type()
            .is_symlink(),
        "the link was replaced"
    );
    // A linked folder: the output is the input reached through another name.
    let alias = dir.path().join("alias");
    std::os::unix::fs::symlink(dir.path(), &alias).expect("symlink");
    let err = run(
        &input,
        &alias.join("conv.mlmodel"),
        &s,
        &RunOptions::default(),
    )
    .expect_err("through a linked folder");
    assert!(matches!(err, QuantError::OutputIsInput { .. }), "{err}");
    // Opened through the link, written to the real path.
    let err =
        run(&link, &input, &s, &RunOptions::default()).expect_err("input opened through a link");
    assert!(matches!(err, QuantError::OutputIsInput { .. }), "{err}");
    // A hard link to the input: replacing that name must leave the input's bytes alone.
    let hard = dir.path().join("hard.mlmodel");
    std::fs::hard_link(&input, &hard).expect("hard link");
    let _ = run(&input, &hard, &s, &RunOptions::default());
    assert_eq!(
        snapshot(&input),
        before,
        "writing onto a hard link changed the input"
    );
}

#[test]
fn writing_onto_something_that_is_not_a_model_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = copy_in(
        dir.path(),
        &root().join("tests/fixtures/models/conv.mlmodel"),
    );
    let s = settings(8, Mode::Linear);
    let notes = dir.path().join("notes.mlmodel");
    std::fs::write(&notes, "my only copy of something important\n").expect("write");
    let before = snapshot(&notes);
    let err = run(&input, &notes, &s, &RunOptions::default()).expect_err("onto a text file");
    assert!(matches!(err, QuantError::RefuseOverwrite { .. }), "{err}");
    assert!(err.to_string().contains("not a Core ML model"), "{err}");
    assert_eq!(snapshot(&notes), before);
    let folder = dir.path().join("folder.mlmodel");
    std::fs::create_dir(&folder).expect("mkdir");
    assert!(
        run(&input, &folder, &s, &RunOptions::default()).is_err(),
        "onto a folder"
    );
    assert!(folder.is_dir());
    // A folder that does not exist: a clear I/O error, nothing created.
    let err = run(
        &input,
        &dir.path().join("no/such/dir/out.mlmodel"),
        &s,
        &RunOptions::default(),
    )
    .expect_err("missing folder");
    assert!(err.to_string().contains("no/such/dir"), "{err}");
}

#[test]
fn a_cancelled_run_leaves_the_previous_output_intact() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = copy_in(dir.path(), &root().join("examples/MobileNetMini.mlmodel"));
    let output = dir.path().join("out.mlmodel");
    // A previous output, valid, that the cancelled run must not touch.
    std::fs::copy(root().join("tests/fixtures/models/conv.mlmodel"), &output).expect("copy");
    let previous = snapshot(&output);
    let before = snapshot(&input);
    for cancel_at in [0usize, 1, 2, 5] {
        let opts = RunOptions::default();
        let token = opts.cancel.clone();
        if cancel_at == 0 {
            token.cancel();
        }
        let progress_token = token.clone();
        let opts = RunOptions {
            progress: Some(Arc::new(move |p: &quant::Progress| {
                if p.done >= cancel_at {
                    progress_token.cancel();
                }
            })),
            ..opts
        };
        let result = run(&input, &output, &settings(4, Mode::Linear), &opts);
        assert!(
            matches!(result, Err(QuantError::Cancelled)),
            "cancel at layer {cancel_at}: {result:?}"
        );
        assert_eq!(
            snapshot(&output),
            previous,
            "cancel at layer {cancel_at} touched the previous output"
        );
        assert_eq!(snapshot(&input), before);
        assert_eq!(
            leftovers(dir.path(), &[&input, &output]),
            Vec::<PathBuf>::new(),
            "temp files left behind"
        );
    }
}

/// Runs the CLI on `input` → `output` in a shell that first sets `prelude` (limits, traps).
fn cli(prelude: &str, input: &Path, output: &Path, extra: &[&str]) -> Command {
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(format!("{prelude}\nexec \"$@\""))
        .arg("sh")
        .arg(env!("CARGO_BIN_EXE_coremlq"))
        .arg("quantize")
        .arg(input)
        .arg("-o")
        .arg(output)
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

#[cfg(unix)]
#[test]
fn a_full_disk_leaves_no_partial_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = copy_in(dir.path(), &root().join("examples/MobileNetMini.mlmodel"));
    let output = dir.path().join("out.mlmodel");
    let before = snapshot(&input);
    // Files may not grow past 64 kB (in 512-byte blocks); the signal is ignored so that the
    // write fails with "file too large", as on a full disk.
    for (previous, blocks) in [(false, 128), (true, 128), (false, 1)] {
        if previous {
            std::fs::copy(root().join("tests/fixtures/models/conv.mlmodel"), &output)
                .expect("copy");
        } else {
            let _ = std::fs::remove_file(&output);
        }
        let prior = previous.then(|| snapshot(&output));
        let out = cli(
            &format!("trap '' XFSZ; ulimit -f {blocks}"),
            &input,
            &output,
            &["--nbits", "8"],
        )
        .output()
        .expect("run the CLI");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success(),
            "a 64 kB limit did not stop a 1.2 MB model: {stderr}"
        );
        assert!(
            stderr.to_lowercase().contains("too large"),
            "the reason is not given: {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{stderr}");
        match prior {
            Some(p) => assert_eq!(snapshot(&output), p, "the previous output changed"),
            None => assert!(!output.exists(), "a partial output was left"),
        }
        assert_eq!(snapshot(&input), before);
        assert_eq!(
            leftovers(dir.path(), &[&input, &output]),
            Vec::<PathBuf>::new(),
            "temp files left behind"
        );
    }
}

#[cfg(unix)]
#[test]
fn a_killed_run_leaves_the_previous_output_or_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = copy_in(dir.path(), &root().join("examples/MobileNetMini.mlmodel"));
    let output = dir.path().join("out.mlmodel");
    let before = snapshot(&input);
    // How long a whole run takes, to spread the kills over it.
    let started = Instant::now();
    let status = cli(
        "",
        &input,
        &output,
        &["--nbits", "4", "--mode", "kmeans_lut"],
    )
    .status()
    .expect("run");
    assert!(status.success());
    let whole = started.elapsed();
    let finished = snapshot(&output);
    std::fs::copy(root().join("tests/fixtures/models/conv.mlmodel"), &output).expect("copy");
    let previous = snapshot(&output);
    let mut outcomes = (0, 0);
    for step in 0..8u32 {
        let delay = whole * step / 8;
        let mut child = cli(
            "",
            &input,
            &output,
            &["--nbits", "4", "--mode", "kmeans_lut"],
        )
        .spawn()
        .expect("spawn");
        std::thread::sleep(delay);
        let _ = child.kill();
        let _ = child.wait();
        let now = snapshot(&output);
        if now == previous {
            outcomes.0 += 1;
        } else {
            assert_eq!(
                now, finished,
                "killed after {delay:?}: the output is neither the previous one nor complete"
            );
            outcomes.1 += 1;
            std::fs::copy(root().join("tests/fixtures/models/conv.mlmodel"), &output)
                .expect("copy");
        }
        assert_eq!(snapshot(&input), before);
        // A killed process cannot clean up; what it leaves must be a hidden temp file.
        for f in leftovers(dir.path(), &[&input, &output]) {
            let name = f
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            assert!(
                name.starts_with('.') && name.ends_with(".tmp"),
                "killed run left {name}"
            );
            let _ = std::fs::remove_file(&f);
        }
    }
    eprintln!(
        "killed runs (whole run {whole:?}): {} left the previous output, {} had finished",
        outcomes.0, outcomes.1
    );
    let _ = Duration::ZERO;
}

/// Runs `coremlq` with `args` in `dir`: (exit code, stdout + stderr).
fn coremlq(dir: &Path, args: &[&std::ffi::OsStr]) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_coremlq"))
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .expect("run coremlq");
    (
        out.status.code(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// A scratch tree `scratch/ws/cfg/` (no repository above it) holding the conv fixture at
/// `ws/conv.mlmodel`, and `scratch/elsewhere/`, outside the workspace.
fn config_tree() -> (tempfile::TempDir, PathBuf) {
    let scratch = tempfile::tempdir().expect("tempdir");
    let root = std::fs::canonicalize(scratch.path()).expect("canonical");
    std::fs::create_dir_all(root.join("ws/cfg")).expect("mkdir");
    std::fs::create_dir_all(root.join("elsewhere")).expect("mkdir");
    copy_in(
        &root.join("ws"),
        &self::root().join("tests/fixtures/models/conv.mlmodel"),
    );
    (scratch, root)
}

/// Writes a config at `path` naming `model` and (when given) `output` on line 4.
fn write_config(path: &Path, model: &str, output: Option<&str>) {
    let out = output.map_or_else(String::new, |o| format!(",\n  \"output\": {o:?}"));
    std::fs::write(
        path,
        format!("{{\n  \"model\": {model:?},\n  \"nbits\": 8{out}\n}}\n"),
    )
    .expect("write config");
}

fn os(s: &str) -> &std::ffi::OsStr {
    std::ffi::OsStr::new(s)
}

/// Config-driven quantize refuses an output resolving outside the workspace (by `..`,
/// through a linked folder, or the default output beside a model outside it), naming the
/// config, the value's line:column, the resolved path, the workspace and how to allow it;
/// `check` reports the same error; `--workspace` and `--allow-outside-workspace` allow it;
/// a repository marker widens the default workspace; the one-off form is not restricted.
#[cfg(unix)]
#[test]
fn outputs_outside_the_workspace_are_refused_for_configs() {
    let (_scratch, root) = config_tree();
    let ws = root.join("ws");
    let cfg = ws.join("cfg");
    let elsewhere = root.join("elsewhere");
    std::os::unix::fs::symlink(&elsewhere, cfg.join("link")).expect("symlink");
    copy_in(
        &elsewhere,
        &self::root().join("tests/fixtures/models/conv.mlmodel"),
    );
    let cases: [(&str, &str, Option<&str>, &str, PathBuf); 3] = [
        (
            "dotdot.quant.json",
            "../conv.mlmodel",
            Some("../../elsewhere/a.mlmodel"),
            ":4:13",
            elsewhere.join("a.mlmodel"),
        ),
        (
            "link.quant.json",
            "../conv.mlmodel",
            Some("link/b.mlmodel"),
            ":4:13",
            elsewhere.join("b.mlmodel"),
        ),
        (
            "default.quant.json",
            "../../elsewhere/conv.mlmodel",
            None,
            ":2:12",
            elsewhere.join("conv.8bit.mlmodel"),
        ),
    ];
    for (name, model, output, place, resolved) in &cases {
        let config = cfg.join(name);
        write_config(&config, model, *output);
        let before = leftovers(&elsewhere, &[]);
        for sub in ["quantize", "check"] {
            let (code, said) = coremlq(&cfg, &[os(sub), config.as_os_str()]);
            assert_eq!(code, Some(1), "{sub} {name}: {said}");
            for needle in [
                "error[Q0602]",
                &format!("{}{place}", config.display()),
                &format!("resolves to {}", resolved.display()),
                &format!("outside the workspace {}", cfg.display()),
                "the config's folder: no .git, .hg or .jj above it",
                "--workspace DIR",
                "--allow-outside-workspace",
            ] {
                assert!(
                    said.contains(needle),
                    "{sub} {name}: no {needle:?} in\n{said}"
                );
            }
        }
        assert_eq!(leftovers(&elsewhere, &[]), before, "{name}: wrote outside");
        // A workspace that holds the output, or the flag, allows it.
        let (code, said) = coremlq(
            &cfg,
            &[
                os("check"),
                os("--workspace"),
                root.as_os_str(),
                config.as_os_str(),
            ],
        );
        assert_eq!(code, Some(0), "check --workspace {name}: {said}");
        let (code, said) = coremlq(
            &cfg,
            &[
                os("quantize"),
                os("--allow-outside-workspace"),
                config.as_os_str(),
            ],
        );
        assert_eq!(
            code,
            Some(0),
            "quantize --allow-outside-workspace {name}: {said}"
        );
        assert!(resolved.exists(), "{name}: {said}");
        std::fs::remove_file(resolved).expect("remove");
        let (code, said) = coremlq(
            &cfg,
            &[
                os("quantize"),
                os("--workspace"),
                root.as_os_str(),
                config.as_os_str(),
            ],
        );
        assert_eq!(code, Some(0), "quantize --workspace {name}: {said}");
        assert!(resolved.exists(), "{name}: {said}");
        std::fs::remove_file(resolved).expect("remove");
    }
    // Inside the workspace: written.
    let inside = cfg.join("inside.quant.json");
    write_config(&inside, "../conv.mlmodel", Some("out/c.mlmodel"));
    let (code, said) = coremlq(&cfg, &[os("quantize"), inside.as_os_str()]);
    assert_eq!(code, Some(0), "{said}");
    assert!(cfg.join("out/c.mlmodel").exists());
    // A repository above the config is the workspace: `ws/d.mlmodel` is inside it.
    let up = cfg.join("up.quant.json");
    write_config(&up, "../conv.mlmodel", Some("../d.mlmodel"));
    let (code, said) = coremlq(&cfg, &[os("check"), up.as_os_str()]);
    assert_eq!(code, Some(1), "no repository yet: {said}");
    for marker in [".git", ".hg", ".jj"] {
        std::fs::create_dir(ws.join(marker)).expect("mkdir");
        let (code, said) = coremlq(&cfg, &[os("check"), up.as_os_str()]);
        assert_eq!(code, Some(0), "{marker}: {said}");
        std::fs::remove_dir(ws.join(marker)).expect("rmdir");
    }
    std::fs::create_dir(ws.join(".git")).expect("mkdir");
    let (code, said) = coremlq(&cfg, &[os("quantize"), up.as_os_str()]);
    assert_eq!(code, Some(0), "{said}");
    assert!(ws.join("d.mlmodel").exists());
    // ...but not beyond it.
    let (code, said) = coremlq(
        &cfg,
        &[os("quantize"), cfg.join("dotdot.quant.json").as_os_str()],
    );
    assert_eq!(code, Some(1), "{said}");
    assert!(
        said.contains("the repository holding the config: it has .git"),
        "{said}"
    );
    // The one-off form writes where the user said.
    let (code, said) = coremlq(
        &cfg,
        &[
            os("quantize"),
            ws.join("conv.mlmodel").as_os_str(),
            os("--nbits"),
            os("8"),
            os("-o"),
            elsewhere.join("e.mlmodel").as_os_str(),
        ],
    );
    assert_eq!(code, Some(0), "{said}");
    assert!(elsewhere.join("e.mlmodel").exists());
}

/// Config-driven quantize, inside the workspace, still refuses an output onto the input,
/// through a link into it, or onto a file that is not a model, and leaves them unchanged.
#[cfg(unix)]
#[test]
fn configs_cannot_write_onto_the_input_or_a_file_that_is_not_a_model() {
    let (_scratch, root) = config_tree();
    let cfg = root.join("ws/cfg");
    let input = root.join("ws/conv.mlmodel");
    let before = snapshot(&input);
    // A repository: the workspace holds the input.
    std::fs::create_dir(root.join("ws/.git")).expect("mkdir");
    std::os::unix::fs::symlink(&input, cfg.join("link.mlmodel")).expect("symlink");
    std::os::unix::fs::symlink(root.join("ws"), cfg.join("up")).expect("symlink");
    std::fs::write(cfg.join("notes.mlmodel"), "my only copy\n").expect("write");
    let notes = snapshot(&cfg.join("notes.mlmodel"));
    for (output, why) in [
        ("../conv.mlmodel", "the input model is never overwritten"),
        (
            "./../cfg/../conv.mlmodel",
            "the input model is never overwritten",
        ),
        ("link.mlmodel", "the output resolves to the model itself"),
        ("up/conv.mlmodel", "the output resolves to the model itself"),
        ("notes.mlmodel", "not a Core ML model"),
    ] {
        let config = cfg.join("c.quant.json");
        write_config(&config, "../conv.mlmodel", Some(output));
        for sub in ["check", "quantize"] {
            let (code, said) = coremlq(&cfg, &[os(sub), config.as_os_str()]);
            assert_eq!(code, Some(1), "{sub} {output}: {said}");
            assert!(said.contains(why), "{sub} {output}: no {why:?} in\n{said}");
        }
        assert_eq!(snapshot(&input), before, "{output}: the input changed");
        assert_eq!(snapshot(&cfg.join("notes.mlmodel")), notes);
        assert!(std::fs::symlink_metadata(cfg.join("link.mlmodel"))
            .expect("link")
            .file_type()
            .is_symlink());
    }
}
