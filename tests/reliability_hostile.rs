//! Hostile and broken model files: each must give a clear error (or a consistent index),
//! never a panic, a hang, or an allocation sized by a length read from the file.
//!
//! The inputs are built by `fuzz/src/hostile.rs`; the small ones are also committed under
//! `tests/data/hostile/` (refreshed with `UPDATE_HOSTILE=1`), where they seed the fuzzers.

#[allow(dead_code)]
#[path = "../fuzz/src/checks.rs"]
mod checks;
#[allow(dead_code)]
#[path = "../fuzz/src/hostile.rs"]
mod hostile;

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use coremlq::model::{index, ModelError, ModelFile, ModelIndex};
use hostile::*;

/// Generous bound for one indexing of a small input (debug-ish test profile, shared CPU).
const FAST: Duration = Duration::from_secs(2);

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn fixture(name: &str) -> Vec<u8> {
    let path = root().join("tests/fixtures/models").join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Indexes `bytes`, checking the result is consistent and arrives quickly.
fn build(what: &str, bytes: &[u8]) -> Result<ModelIndex, ModelError> {
    let started = Instant::now();
    let result = index::build(Path::new("hostile.mlmodel"), bytes);
    let took = started.elapsed();
    assert!(
        took < FAST,
        "{what}: indexing {} bytes took {took:?}",
        bytes.len()
    );
    match &result {
        Ok(ix) => {
            if let Err(e) = checks::index_invariants(bytes, ix) {
                panic!("{what}: inconsistent index: {e}");
            }
        }
        Err(e) => {
            let message = e.to_string();
            assert!(
                message.contains("hostile.mlmodel"),
                "{what}: error without the file name: {message}"
            );
        }
    }
    result
}

/// Runs `f` on a thread with a 2 MiB stack (what tokio's blocking pool and most runtimes
/// give), failing if it takes longer than `limit`: deep inputs must not overflow it.
fn on_small_stack<T: Send + 'static>(limit: Duration, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    let handle = std::thread::Builder::new()
        .stack_size(2 * 1024 * 1024)
        .spawn(move || {
            let _ = tx.send(f());
        })
        .expect("spawn");
    match rx.recv_timeout(limit) {
        Ok(v) => {
            let _ = handle.join();
            v
        }
        Err(_) => panic!("did not finish within {limit:?} (hang)"),
    }
}

fn small_fixtures() -> Vec<(String, Vec<u8>)> {
    let mut out = vec![("small_model".to_string(), small_model())];
    for name in [
        "conv.mlmodel",
        "pipeline.mlmodel",
        "branch_loop.mlmodel",
        "bilstm.mlmodel",
    ] {
        out.push((name.to_string(), fixture(name)));
    }
    out
}

#[test]
fn the_generated_base_model_indexes() {
    let ix = build("small_model", &small_model()).expect("the base of the hostile models is valid");
    assert_eq!(ix.layers.len(), 1);
    assert_eq!(ix.weights.len(), 2, "weights and bias");
}

#[test]
fn truncated_at_every_offset() {
    for (name, bytes) in small_fixtures() {
        let mut refused = 0;
        for cut in 0..bytes.len() {
            if build(&format!("{name} cut at {cut}"), &bytes[..cut]).is_err() {
                refused += 1;
            }
        }
        // Most prefixes end inside a field; those must be refused.
        assert!(
            refused * 2 > bytes.len(),
            "{name}: only {refused} of {} prefixes refused",
            bytes.len()
        );
    }
}

#[test]
fn lying_length_fields_everywhere() {
    for (name, bytes) in small_fixtures() {
        let prefixes = length_prefixes(&bytes);
        let (mut refused, mut tried) = (0usize, 0usize);
        assert!(
            prefixes.len() > 3,
            "{name}: found only {} length prefixes",
            prefixes.len()
        );
        for &(at, old) in &prefixes {
            for value in [1u64 << 31, (1 << 32) - 1, 1 << 40, 1 << 63, u64::MAX] {
                let lying = with_length(&bytes, at, old, value);
                // Refused, or (for a length inside a message the index skips as opaque,
                // such as metadata) a consistent index: `build` checks both.
                if build(&format!("{name}: length at {at} = {value}"), &lying).is_err() {
                    refused += 1;
                }
                tried += 1;
            }
            for delta in [1u64, 2, 7, 1000] {
                let (_, len_end) = (at, at + old);
                let Some((len, _)) = decode(&bytes[at..len_end]) else {
                    continue;
                };
                let _ = build(
                    &format!("{name}: length at {at} + {delta}"),
                    &with_length(&bytes, at, old, len + delta),
                );
                if let Some(shorter) = len.checked_sub(delta) {
                    let _ = build(
                        &format!("{name}: length at {at} - {delta}"),
                        &with_length(&bytes, at, old, shorter),
                    );
                }
            }
        }
        assert!(
            refused * 10 >= tried * 9,
            "{name}: only {refused} of {tried} huge lengths refused"
        );
    }
}

fn decode(bytes: &[u8]) -> Option<(u64, usize)> {
    let mut v = 0u64;
    for (i, b) in bytes.iter().enumerate().take(10) {
        v |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Some((v, i + 1));
        }
    }
    None
}

#[test]
fn a_six_byte_file_claiming_a_two_gigabyte_field_is_refused_fast() {
    // Model.description (field 2), length 2^31, and nothing after it.
    let bytes = ld_lying(2, 1 << 31, &[]);
    assert_eq!(bytes.len(), 6);
    let started = Instant::now();
    assert!(build("2 GB claim", &bytes).is_err());
    assert!(started.elapsed() < Duration::from_millis(200));
    // The same claim deep inside: a network layer whose weights claim 2 GB.
    let model = cat(&[
        vint(1, 4),
        ld_lying(500, 1 << 31, &ld_lying(1, 1 << 31, &[0x0a, 0x01, b'x'])),
    ]);
    assert!(build("2 GB layer", &model).is_err());
}

#[test]
fn deep_branch_nesting_neither_overflows_nor_hangs() {
    for depth in [10usize, 100, 1_000, 10_000, 100_000] {
        let bytes = deep_branch_model(depth);
        let result = on_small_stack(Duration::from_secs(20), move || {
            index::build(Path::new("hostile.mlmodel"), &bytes)
                .map(|ix| ix.layers.len())
                .map_err(|e| e.to_string())
        });
        match result {
            Ok(layers) => assert!(layers >= depth, "depth {depth}: {layers} layers indexed"),
            Err(e) => assert!(e.contains("hostile.mlmodel"), "depth {depth}: {e}"),
        }
    }
    // Ordinary nesting is a model, not an attack: it must be indexed.
    let ix = build("branch depth 10", &deep_branch_model(10)).expect("10 nested branches index");
    assert_eq!(ix.networks.len(), 11);
}

#[test]
fn deep_pipeline_nesting_neither_overflows_nor_hangs() {
    for depth in [10usize, 100, 1_000, 10_000, 100_000] {
        let bytes = deep_pipeline_model(depth);
        let result = on_small_stack(Duration::from_secs(20), move || {
            index::build(Path::new("hostile.mlmodel"), &bytes)
                .map(|ix| ix.models.len())
                .map_err(|e| e.to_string())
        });
        if let Err(e) = result {
            assert!(e.contains("hostile.mlmodel"), "depth {depth}: {e}");
        }
    }
    let ix =
        build("pipeline depth 10", &deep_pipeline_model(10)).expect("10 nested pipelines index");
    assert_eq!(ix.models.len(), 11);
}

#[test]
fn empty_and_gigantic_repeated_fields() {
    // No layers at all.
    let ix = build("empty network", &nn_model(&[])).expect("an empty network is a model");
    assert!(ix.layers.is_empty());
    // 200 000 empty layer messages (400 kB): linear work, bounded memory.
    let bytes = many_empty_layers_model(200_000);
    let started = Instant::now();
    let result = index::build(Path::new("hostile.mlmodel"), &bytes);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "200k empty layers took {:?}",
        started.elapsed()
    );
    if let Ok(ix) = &result {
        assert_eq!(ix.layers.len(), 200_000);
        assert!(checks::index_invariants(&bytes, ix).is_ok());
    }
    // 20 000 real layers.
    let bytes = many_layers_model(20_000);
    let ix = build("20k layers", &bytes).expect("20k layers index");
    assert_eq!(ix.layers.len(), 20_000);
    // 4 M weights in one tensor (16 MB): indexing must not copy or decode them.
    let values = vec![0.5f32; 4 << 20];
    let bytes = values_model(&values);
    let started = Instant::now();
    let ix = build("4M weights", &bytes).expect("a big tensor indexes");
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "indexing read the payload: {:?}",
        started.elapsed()
    );
    assert_eq!(ix.weights.first().map(|w| w.count), Some(4 << 20));
    // The same field repeated: floatValue given twice (protobuf concatenates packed runs).
    let w = cat(&[ld(1, &floats(&[1.0, 2.0])), ld(1, &floats(&[3.0, 4.0]))]);
    let layer = cat(&[
        ld(1, b"ip"),
        ld(140, &cat(&[vint(1, 4), vint(2, 1), ld(20, &w)])),
    ]);
    let _ = build("floatValue twice", &nn_model(&[layer]));
}

#[test]
fn names_that_are_not_utf8() {
    let layer = cat(&[
        ld(1, b"\xff\xfe conv \xc3"),
        ld(2, b"in\xc0\x80put"),
        ld(3, b"\xed\xa0\x80"),
        ld(
            140,
            &cat(&[vint(1, 1), vint(2, 1), ld(20, &weight_params(&[1.0]))]),
        ),
    ]);
    let ix = build("non-UTF-8 names", &nn_model(&[layer])).expect("odd names are still a model");
    let name = &ix.layers[0].name;
    assert!(name.contains("conv"), "name decoded lossily: {name:?}");
}

#[test]
fn odd_float_weights_index() {
    let values = [
        f32::NAN,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::MIN_POSITIVE / 2.0,
        -0.0,
        f32::MAX,
        f32::MIN,
        1e-45,
    ];
    let ix = build("odd floats", &values_model(&values)).expect("odd values are still a model");
    assert_eq!(ix.weights[0].count, values.len() as u64);
}

#[test]
fn zero_element_and_misshapen_tensors() {
    // 0 × 0 innerProduct with no values.
    let _ = build(
        "0x0",
        &nn_model(&[inner_product_layer(b"ip", 0, 0, &[], None)]),
    );
    // A header saying 4 × 4 with no values at all.
    let _ = build(
        "4x4 empty",
        &nn_model(&[inner_product_layer(b"ip", 4, 4, &[], None)]),
    );
    // floatValue of 3 bytes (not a whole float).
    let w = ld(1, &[0, 0, 0x80]);
    let layer = cat(&[
        ld(1, b"ip"),
        ld(140, &cat(&[vint(1, 1), vint(2, 1), ld(20, &w)])),
    ]);
    let _ = build("3-byte floatValue", &nn_model(&[layer]));
    // Channel counts whose product overflows u64.
    let layer = inner_product_layer(b"ip", u64::MAX, u64::MAX, &[1.0], None);
    let _ = build("overflowing shape", &nn_model(&[layer]));
    // A quantized tensor claiming 2^60 elements of 1 bit.
    let quant = cat(&[
        vint(1, 1),
        ld(101, &cat(&[ld(1, &floats(&[1.0])), ld(2, &floats(&[0.0]))])),
    ]);
    let w = cat(&[ld(30, &[0xff]), ld(40, &quant)]);
    let layer = cat(&[
        ld(1, b"ip"),
        ld(140, &cat(&[vint(1, 1 << 30), vint(2, 1 << 30), ld(20, &w)])),
    ]);
    let _ = build("huge quantized shape", &nn_model(&[layer]));
}

#[test]
fn layer_names_collide_across_pipeline_members() {
    let a = small_model();
    let b = small_model();
    let bytes = pipeline_model(&[("first", a), ("second", b)]);
    let ix = build("colliding names", &bytes).expect("a pipeline of two models indexes");
    assert_eq!(
        ix.layers_named("ip").count(),
        2,
        "both members' layers are kept"
    );
    let models: Vec<_> = ix
        .layers_named("ip")
        .map(|l| ix.networks[ix.layers[l].network].model)
        .collect();
    assert_ne!(
        models[0], models[1],
        "the two layers belong to different members"
    );
}

#[test]
fn special_files_as_model_give_clear_errors() {
    // A folder.
    let dir = tempfile::tempdir().expect("tempdir");
    let err = ModelFile::open(dir.path())
        .err()
        .expect("a folder is not a model");
    assert!(
        err.to_string().contains(&*dir.path().to_string_lossy()),
        "{err}"
    );
    // /dev/zero and /dev/null: endless or empty, both refused without reading forever.
    for dev in ["/dev/zero", "/dev/null"] {
        if Path::new(dev).exists() {
            let err = on_small_stack(Duration::from_secs(5), move || {
                ModelFile::open(Path::new(dev)).err().map(|e| e.to_string())
            });
            let err = err.unwrap_or_else(|| panic!("{dev} accepted as a model"));
            assert!(err.contains(dev), "{err}");
        }
    }
    // A missing file.
    let missing = dir.path().join("missing.mlmodel");
    let err = ModelFile::open(&missing).err().expect("missing file");
    assert!(err.to_string().contains("missing.mlmodel"), "{err}");
    // An empty file.
    let empty = dir.path().join("empty.mlmodel");
    std::fs::write(&empty, b"").expect("write");
    assert!(ModelFile::open(&empty).is_err());
}

#[cfg(unix)]
#[test]
fn a_fifo_as_model_does_not_hang() {
    let dir = tempfile::tempdir().expect("tempdir");
    let fifo = dir.path().join("pipe.mlmodel");
    let status = std::process::Command::new("mkfifo").arg(&fifo).status();
    if !status.is_ok_and(|s| s.success()) {
        eprintln!("mkfifo unavailable; skipped");
        return;
    }
    let result = on_small_stack(Duration::from_secs(5), move || {
        ModelFile::open(&fifo).err().map(|e| e.to_string())
    });
    assert!(result.is_some(), "a FIFO was accepted as a model");
}

/// The committed copies of the hostile inputs match their builders (`UPDATE_HOSTILE=1`
/// rewrites them), so the fuzzers' seeds and the CLI tests see exactly what is tested here.
#[test]
fn committed_hostile_files_are_current() {
    let dir = root().join("tests/data/hostile");
    let update = std::env::var_os("UPDATE_HOSTILE").is_some();
    if update {
        std::fs::create_dir_all(&dir).expect("mkdir");
    }
    for (name, bytes) in committed_files() {
        let path = dir.join(name);
        if update {
            std::fs::write(&path, &bytes).expect("write");
        } else {
            let committed = std::fs::read(&path).unwrap_or_default();
            assert!(
                committed == bytes,
                "{} is stale: run with UPDATE_HOSTILE=1",
                path.display()
            );
        }
        if name.ends_with(".mlmodel") {
            let _ = build(name, &bytes);
        }
    }
}
