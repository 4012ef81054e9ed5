//! `coremlq quantize CONFIG…`: configs run in parallel, the output has the size `plan`
//! announced, and a config with errors is refused before anything is written.

use std::path::Path;
use std::process::Command;

fn coremlq(dir: &Path, args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_coremlq"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run coremlq");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

fn models() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/models")
}

#[test]
fn quantizes_two_configs_with_the_planned_sizes() {
    let dir = tempfile::tempdir().expect("temp dir");
    for m in ["selector_mixed", "branch_loop"] {
        std::fs::copy(
            models().join(format!("{m}.mlmodel")),
            dir.path().join(format!("{m}.mlmodel")),
        )
        .expect("copy");
    }
    std::fs::write(
        dir.path().join("a.quant.json"),
        r#"{ "model": "selector_mixed.mlmodel", "nbits": 4, "layers": { "ip": { "nbits": 8 } } }"#,
    )
    .expect("write");
    std::fs::write(
        dir.path().join("b.quant.json"),
        r#"{ "model": "branch_loop.mlmodel", "output": "out/b.mlmodel", "nbits": 16 }"#,
    )
    .expect("write");
    let (code, text) = coremlq(dir.path(), &["plan", "--json", "a.quant.json"]);
    assert_eq!(code, 0, "{text}");
    let planned: serde_json::Value = serde_json::from_str(&text).expect("json");
    let (code, text) = coremlq(dir.path(), &["quantize", "a.quant.json", "b.quant.json"]);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("2 of 2 configs quantized"), "{text}");
    let a = std::fs::metadata(dir.path().join("selector_mixed.4bit.mlmodel"))
        .expect("default output written");
    assert_eq!(Some(a.len()), planned["output_bytes"].as_u64());
    assert!(dir.path().join("out/b.mlmodel").is_file());
    // The written model is itself a valid input.
    let (code, text) = coremlq(dir.path(), &["inspect", "selector_mixed.4bit.mlmodel"]);
    assert_eq!(code, 0, "{text}");
}

#[test]
fn refuses_configs_with_errors_and_names_them() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::copy(
        models().join("conv.mlmodel"),
        dir.path().join("conv.mlmodel"),
    )
    .expect("copy");
    std::fs::write(
        dir.path().join("good.quant.json"),
        r#"{ "model": "conv.mlmodel", "nbits": 8 }"#,
    )
    .expect("write");
    std::fs::write(
        dir.path().join("bad.quant.json"),
        r#"{ "model": "conv.mlmodel", "nbits": 4, "quantization_mode": "linear_symmetric" }"#,
    )
    .expect("write");
    let (code, text) = coremlq(
        dir.path(),
        &["quantize", "good.quant.json", "bad.quant.json"],
    );
    assert_eq!(code, 1, "{text}");
    assert!(text.contains("error[Q0304]"), "{text}");
    assert!(
        text.contains("refusing to quantize: 1 config with errors: bad.quant.json"),
        "{text}"
    );
    assert!(
        !dir.path().join("conv.8bit.mlmodel").exists(),
        "nothing may be written"
    );
}

#[path = "../benches/common/mod.rs"]
mod bench_models;

#[test]
fn configs_with_large_tensors_run_side_by_side_without_waiting_on_each_other() {
    // Tensors large enough for the kernels to split their work over the thread pool: runs
    // started from inside that pool could take every thread of it and wait forever.
    let dir = tempfile::tempdir().expect("temp dir");
    let layers = [bench_models::Layer::InnerProduct {
        input: 600,
        output: 600,
    }];
    let names = ["a", "b", "c"];
    for (i, name) in names.iter().enumerate() {
        bench_models::write_model(
            &dir.path().join(format!("{name}.mlmodel")),
            &layers,
            i as u64,
        )
        .expect("model");
        std::fs::write(
            dir.path().join(format!("{name}.quant.json")),
            format!(r#"{{ "model": "{name}.mlmodel", "nbits": 8 }}"#),
        )
        .expect("write");
    }
    let mut child = Command::new(env!("CARGO_BIN_EXE_coremlq"))
        .args(["quantize", "a.quant.json", "b.quant.json", "c.quant.json"])
        .current_dir(dir.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run coremlq");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("coremlq quantize with three configs did not finish in 120 s");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let out = child.wait_with_output().expect("output");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(status.success(), "{text}");
    assert!(text.contains("3 of 3 configs quantized"), "{text}");
    for name in names {
        assert!(dir.path().join(format!("{name}.8bit.mlmodel")).is_file());
    }
}
