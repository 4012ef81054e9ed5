//! The `coremlq` command line on hostile inputs (`tests/data/hostile/`) and special files:
//! every run ends quickly with a clear message, never a panic, and leaves its inputs as
//! they were. Configs run in a scratch workspace, so relative outputs stay inside it.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// No command may take longer than this on these tiny inputs.
const LIMIT: Duration = Duration::from_secs(20);

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Output of one CLI run that finished in time.
struct Run {
    code: Option<i32>,
    stderr: String,
    stdout: String,
}

fn coremlq(args: &[&std::ffi::OsStr], cwd: &Path) -> Run {
    let child = Command::new(env!("CARGO_BIN_EXE_coremlq"))
        .args(args)
        .current_dir(cwd)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn coremlq");
    let pid = child.id();
    // Read the pipes while waiting (a long report must not fill them and stall the child).
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let Ok(output) = rx.recv_timeout(LIMIT) else {
        let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
        panic!("`coremlq {args:?}` did not finish within {LIMIT:?} (hang)");
    };
    let output = output.expect("wait");
    let run = Run {
        code: output.status.code(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
    };
    assert!(
        run.code.is_some() && run.code != Some(101) && !run.stderr.contains("panicked"),
        "`coremlq {args:?}` crashed ({:?}):\n{}",
        run.code,
        run.stderr
    );
    run
}

fn os(s: &str) -> &std::ffi::OsStr {
    std::ffi::OsStr::new(s)
}

fn hostile(suffix: &str) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(root().join("tests/data/hostile"))
        .expect("tests/data/hostile")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.to_string_lossy().ends_with(suffix))
        .collect();
    out.sort();
    out
}

#[test]
fn inspect_and_quantize_every_hostile_model() {
    let scratch = tempfile::tempdir().expect("tempdir");
    let models = hostile(".mlmodel");
    assert!(models.len() > 10);
    for source in models {
        let name = source
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let model = scratch.path().join(&name);
        std::fs::copy(&source, &model).expect("copy");
        let before = std::fs::read(&model).expect("read");
        let run = coremlq(&[os("inspect"), model.as_os_str()], scratch.path());
        if run.code != Some(0) {
            assert!(
                run.stderr.contains(&name),
                "{name}: the error does not name the file:\n{}",
                run.stderr
            );
        }
        for args in [
            &["--nbits", "8"][..],
            &["--nbits", "16"],
            &["--nbits", "2", "--mode", "kmeans_lut"],
        ] {
            let out = scratch.path().join("out.mlmodel");
            let mut all = vec![os("quantize"), model.as_os_str(), os("-o"), out.as_os_str()];
            all.extend(args.iter().map(|a| os(a)));
            let run = coremlq(&all, scratch.path());
            if run.code != Some(0) {
                assert!(
                    !run.stderr.trim().is_empty(),
                    "{name} {args:?}: failed without a message"
                );
                assert!(
                    !out.exists(),
                    "{name} {args:?}: failed but wrote {}",
                    out.display()
                );
            } else {
                let check = coremlq(&[os("inspect"), out.as_os_str()], scratch.path());
                assert_eq!(
                    check.code,
                    Some(0),
                    "{name} {args:?}: the output does not inspect:\n{}",
                    check.stderr
                );
            }
            let _ = std::fs::remove_file(&out);
        }
        assert_eq!(
            std::fs::read(&model).expect("read"),
            before,
            "{name}: the input changed"
        );
    }
}

#[cfg(unix)]
#[test]
fn special_files_as_model() {
    let scratch = tempfile::tempdir().expect("tempdir");
    let fifo = scratch.path().join("pipe.mlmodel");
    let _ = Command::new("mkfifo").arg(&fifo).status();
    let folder = scratch.path().join("folder.mlmodel");
    std::fs::create_dir(&folder).expect("mkdir");
    let package = scratch.path().join("empty.mlpackage");
    std::fs::create_dir(&package).expect("mkdir");
    let mut paths = vec![folder, package, scratch.path().join("missing.mlmodel")];
    for dev in ["/dev/zero", "/dev/null", "/dev/urandom"] {
        if Path::new(dev).exists() {
            paths.push(PathBuf::from(dev));
        }
    }
    if fifo.exists() {
        paths.push(fifo);
    }
    for path in paths {
        let run = coremlq(&[os("inspect"), path.as_os_str()], scratch.path());
        assert_eq!(run.code, Some(1), "{}: {}", path.display(), run.stderr);
        let shown = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        assert!(
            run.stderr.contains(&shown),
            "{}: the error does not name it:\n{}",
            path.display(),
            run.stderr
        );
        let out = scratch.path().join("out.mlmodel");
        let run = coremlq(
            &[
                os("quantize"),
                path.as_os_str(),
                os("--nbits"),
                os("8"),
                os("-o"),
                out.as_os_str(),
            ],
            scratch.path(),
        );
        assert_ne!(run.code, Some(0), "{}", path.display());
        assert!(!out.exists());
    }
}

/// A scratch workspace `outer/ws/a/b/` holding the hostile configs, with the conv fixture
/// at `outer/ws/fixtures/models/conv.mlmodel` where their relative paths point.
fn config_workspace() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let scratch = tempfile::tempdir().expect("tempdir");
    let ws = scratch.path().join("outer/ws");
    let dir = ws.join("a/b");
    std::fs::create_dir_all(&dir).expect("mkdir");
    std::fs::create_dir_all(ws.join("fixtures/models")).expect("mkdir");
    std::fs::copy(
        root().join("tests/fixtures/models/conv.mlmodel"),
        ws.join("fixtures/models/conv.mlmodel"),
    )
    .expect("copy");
    for source in hostile(".quant.json") {
        std::fs::copy(&source, dir.join(source.file_name().expect("name"))).expect("copy");
    }
    (scratch, ws, dir)
}

fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d)
            .expect("read_dir")
            .filter_map(Result::ok)
        {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let bytes = std::fs::read(&p).unwrap_or_default();
                out.push((p, bytes));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn check_plan_and_quantize_every_hostile_config() {
    let (scratch, ws, dir) = config_workspace();
    let model = ws.join("fixtures/models/conv.mlmodel");
    let model_before = std::fs::read(&model).expect("read");
    let mut configs: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("dir")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .collect();
    configs.sort();
    for config in configs {
        let name = config
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let before = std::fs::read(&config).expect("read");
        let check = coremlq(
            &[
                os("check"),
                os("--workspace"),
                ws.as_os_str(),
                config.as_os_str(),
            ],
            &dir,
        );
        let plan = coremlq(&[os("plan"), config.as_os_str()], &dir);
        let quantize = coremlq(&[os("quantize"), config.as_os_str()], &dir);
        for (what, run) in [("check", &check), ("plan", &plan), ("quantize", &quantize)] {
            if run.code != Some(0) {
                let said = format!("{}{}", run.stderr, run.stdout);
                assert!(
                    !said.trim().is_empty(),
                    "{what} {name}: failed without a message"
                );
            }
        }
        assert_eq!(
            std::fs::read(&config).expect("read"),
            before,
            "{name}: the config was changed"
        );
        assert_eq!(
            std::fs::read(&model).expect("read"),
            model_before,
            "{name}: the model was changed"
        );
        match name.as_str() {
            "self_model.quant.json"
            | "model_is_dev_zero.quant.json"
            | "model_is_a_folder.quant.json" => {
                assert_eq!(check.code, Some(1), "{name}: {}", check.stdout);
                assert_ne!(quantize.code, Some(0), "{name}");
            }
            "self_output.quant.json" | "output_is_input.quant.json" => {
                assert_ne!(
                    quantize.code,
                    Some(0),
                    "{name}: quantized onto {}",
                    if name.starts_with("self") {
                        "its own config"
                    } else {
                        "its input"
                    }
                );
            }
            "output_outside_workspace.quant.json" => {
                let said = format!("{}{}", check.stdout, check.stderr);
                assert!(said.contains("outside the workspace"), "{name}: {said}");
            }
            _ => {}
        }
    }
    // Nothing appeared outside the workspace except what a config asked for explicitly.
    let outside: Vec<PathBuf> = std::fs::read_dir(scratch.path())
        .expect("dir")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| !p.ends_with("outer"))
        .collect();
    eprintln!("written outside the workspace: {outside:?}");
    let _ = snapshot(&ws);
}
