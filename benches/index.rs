//! Indexing benchmark: generates a ~600 MB model (150 M float32 weights in 40 big layers) and
//! a 2,000-layer model in a temporary folder, then measures `ModelFile::open` (map + index):
//! median and minimum time over several runs, heap bytes allocated (peak, counted by a global
//! allocator), and the file pages the walk mapped in (`RssFile` growth).
//!
//! Run: `cargo bench --bench index`. Set `COREMLQ_BENCH_PYTHON` to a Python that has
//! coremltools to measure `coremltools.utils.load_spec` on the same files.
//! `COREMLQ_BENCH_RUNS` (default 15) sets the number of timed runs.

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicIsize, Ordering};
use std::time::{Duration, Instant};

use coremlq::model::proto as pb;
use coremlq::model::wire::{put_varint, varint_len};
use coremlq::model::ModelFile;
use prost::Message;

/// Counts live and peak heap bytes.
struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);
static PEAK: AtomicIsize = AtomicIsize::new(0);
/// Counting is switched on only for the memory run, so timed runs pay no atomics.
static COUNTING: AtomicBool = AtomicBool::new(false);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded unchanged to the system allocator.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() && COUNTING.load(Ordering::Relaxed) {
            let size = layout.size() as isize;
            let now = LIVE.fetch_add(size, Ordering::Relaxed) + size;
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.dealloc(ptr, layout) };
        if COUNTING.load(Ordering::Relaxed) {
            LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// A message to write: raw bytes, a nested length-delimited field, or generated floats.
enum Part {
    Raw(Vec<u8>),
    Field(u32, Vec<Part>),
    Floats(usize),
}

fn len(parts: &[Part]) -> usize {
    parts
        .iter()
        .map(|p| match p {
            Part::Raw(b) => b.len(),
            Part::Floats(n) => 4 * n,
            Part::Field(f, inner) => {
                let l = len(inner);
                varint_len(u64::from(*f) << 3 | 2) + varint_len(l as u64) + l
            }
        })
        .sum()
}

fn write(parts: &[Part], out: &mut impl Write, rng: &mut u32) -> std::io::Result<()> {
    let mut chunk = Vec::with_capacity(1 << 20);
    for p in parts {
        match p {
            Part::Raw(b) => out.write_all(b)?,
            Part::Field(f, inner) => {
                let mut head = Vec::new();
                put_varint(&mut head, u64::from(*f) << 3 | 2);
                put_varint(&mut head, len(inner) as u64);
                out.write_all(&head)?;
                write(inner, out, rng)?;
            }
            Part::Floats(n) => {
                let mut left = *n;
                while left > 0 {
                    let k = left.min(1 << 18);
                    chunk.clear();
                    for _ in 0..k {
                        *rng ^= *rng << 13;
                        *rng ^= *rng >> 17;
                        *rng ^= *rng << 5;
                        let v = (*rng as f32 / u32::MAX as f32 - 0.5) * 0.1;
                        chunk.extend_from_slice(&v.to_le_bytes());
                    }
                    out.write_all(&chunk)?;
                    left -= k;
                }
            }
        }
    }
    Ok(())
}

fn varint_field(f: u32, v: u64) -> Vec<u8> {
    let mut b = Vec::new();
    put_varint(&mut b, u64::from(f) << 3);
    put_varint(&mut b, v);
    b
}

fn string_field(f: u32, s: &str) -> Part {
    Part::Field(f, vec![Part::Raw(s.as_bytes().to_vec())])
}

fn weights(field: u32, n: usize) -> Part {
    Part::Field(field, vec![Part::Field(1, vec![Part::Floats(n)])])
}

fn feature(name: &str) -> Part {
    // FeatureDescription { name, type { multiArrayType { shape [n], dataType FLOAT32 } } }
    let array = vec![
        Part::Field(1, vec![Part::Raw(vec![0x80, 0x10])]),
        Part::Raw(varint_field(2, 65568)),
    ];
    Part::Field(
        0,
        vec![
            string_field(1, name),
            Part::Field(3, vec![Part::Field(5, array)]),
        ],
    )
}

/// 30 innerProduct layers 2048×2048 and 10 convolutions 512×512×3×3, all with biases:
/// 149.4 M float32 weights.
fn write_big(path: &Path) -> std::io::Result<u64> {
    let mut layers = Vec::new();
    let mut blob = "input".to_string();
    for i in 0..40 {
        let name = format!("layer{i}");
        let params = if i % 4 == 3 {
            let (oc, kc) = (512u64, 512u64);
            Part::Field(
                100,
                vec![
                    Part::Raw(varint_field(1, oc)),
                    Part::Raw(varint_field(2, kc)),
                    Part::Raw(varint_field(10, 1)),
                    Part::Field(20, vec![Part::Raw(vec![3, 3])]),
                    Part::Raw(vec![0xb0, 0x04, 0x01]), // hasBias(70)
                    weights(90, (oc * kc * 9) as usize),
                    weights(91, oc as usize),
                ],
            )
        } else {
            let n = 2048u64;
            Part::Field(
                140,
                vec![
                    Part::Raw(varint_field(1, n)),
                    Part::Raw(varint_field(2, n)),
                    Part::Raw(varint_field(10, 1)),
                    weights(20, (n * n) as usize),
                    weights(21, n as usize),
                ],
            )
        };
        layers.push(Part::Field(
            1,
            vec![
                string_field(1, &name),
                string_field(2, &blob),
                string_field(3, &name),
                params,
            ],
        ));
        blob = name;
    }
    let description = |parts: Vec<Part>| Part::Field(2, parts);
    let mut input = feature("input");
    let mut output = feature(&blob);
    if let (Part::Field(f, _), Part::Field(g, _)) = (&mut input, &mut output) {
        (*f, *g) = (1, 10);
    }
    let model = vec![
        Part::Raw(varint_field(1, 4)),
        description(vec![input, output]),
        Part::Field(500, layers),
    ];
    let file = std::fs::File::create(path)?;
    let mut out = BufWriter::with_capacity(8 << 20, file);
    let mut rng = 0x9e37_79b9;
    write(&model, &mut out, &mut rng)?;
    out.flush()?;
    Ok(len(&model) as u64)
}

fn wp(n: usize, seed: f32) -> Option<pb::WeightParams> {
    Some(pb::WeightParams {
        float_value: (0..n).map(|i| seed + (i % 97) as f32 * 0.01).collect(),
        ..Default::default()
    })
}

/// 2,000 layers cycling through convolution, batchnorm, activation, innerProduct and bias,
/// with small weights: what a large real network's skeleton looks like.
fn write_many(path: &Path) -> std::io::Result<u64> {
    use pb::neural_network_layer::Layer;
    let mut layers = Vec::new();
    for i in 0..2000 {
        let c = 16 + (i % 5) as u64;
        let layer = match i % 5 {
            0 => Layer::Convolution(pb::ConvolutionLayerParams {
                output_channels: c,
                kernel_channels: c,
                n_groups: 1,
                kernel_size: vec![3, 3],
                stride: vec![1, 1],
                has_bias: true,
                weights: wp((c * c * 9) as usize, 0.1),
                bias: wp(c as usize, 0.0),
                convolution_padding_type: Some(
                    pb::convolution_layer_params::ConvolutionPaddingType::Valid(
                        pb::ValidPadding::default(),
                    ),
                ),
                ..Default::default()
            }),
            1 => Layer::Batchnorm(pb::BatchnormLayerParams {
                channels: c,
                epsilon: 1e-5,
                gamma: wp(c as usize, 1.0),
                beta: wp(c as usize, 0.0),
                mean: wp(c as usize, 0.0),
                variance: wp(c as usize, 1.0),
                ..Default::default()
            }),
            2 => Layer::Activation(pb::ActivationParams {
                nonlinearity_type: Some(pb::activation_params::NonlinearityType::ReLu(
                    pb::ActivationReLu {},
                )),
            }),
            3 => Layer::InnerProduct(pb::InnerProductLayerParams {
                input_channels: c,
                output_channels: c,
                has_bias: true,
                weights: wp((c * c) as usize, 0.2),
                bias: wp(c as usize, 0.0),
                ..Default::default()
            }),
            _ => Layer::Bias(pb::BiasLayerParams {
                shape: vec![c],
                bias: wp(c as usize, 0.0),
            }),
        };
        layers.push(pb::NeuralNetworkLayer {
            name: format!("block{}/layer{i}", i / 5),
            input: vec![format!("blob{i}")],
            output: vec![format!("blob{}", i + 1)],
            layer: Some(layer),
            ..Default::default()
        });
    }
    let model = pb::Model {
        specification_version: 4,
        r#type: Some(pb::model::Type::NeuralNetwork(pb::NeuralNetwork {
            layers,
            ..Default::default()
        })),
        ..Default::default()
    };
    let bytes = model.encode_to_vec();
    std::fs::write(path, &bytes)?;
    Ok(bytes.len() as u64)
}

/// A `/proc/self/status` field in KiB (0 where unavailable).
fn status_kib(key: &str) -> u64 {
    let text = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// CPU time of the calling thread (excludes time spent waiting for a core).
fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid out-pointer for the duration of the call.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// Bytes this process has caused to be read from storage (`/proc/self/io`).
fn read_bytes() -> u64 {
    let text = std::fs::read_to_string("/proc/self/io").unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix("read_bytes:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// Writes the file's pages back and drops them from the page cache, so the next open is cold.
fn drop_cache(path: &Path) {
    use std::os::fd::AsRawFd;
    let Ok(f) = std::fs::File::open(path) else {
        return;
    };
    let _ = f.sync_all();
    // SAFETY: a valid descriptor; advice only.
    unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
}

struct Figures {
    median: Duration,
    min: Duration,
    cpu_median: Duration,
    walk_median: Duration,
    cold: Duration,
    cold_read_kib: u64,
    heap_peak: usize,
    heap_kept: usize,
    file_pages_kib: u64,
    anon_kib: u64,
    layers: usize,
    weights: usize,
}

fn measure(path: &Path, runs: usize) -> Figures {
    // A cold open: how much of the file is read from storage.
    drop_cache(path);
    let read_before = read_bytes();
    let t = Instant::now();
    drop(ModelFile::open(path).unwrap_or_else(|e| panic!("{e}")));
    let cold = t.elapsed();
    let cold_read_kib = read_bytes().saturating_sub(read_before) / 1024;
    // One untimed warm run with memory accounting.
    let (rss_file, rss_anon) = (status_kib("RssFile:"), status_kib("RssAnon:"));
    LIVE.store(0, Ordering::Relaxed);
    PEAK.store(0, Ordering::Relaxed);
    COUNTING.store(true, Ordering::Relaxed);
    let file = ModelFile::open(path).unwrap_or_else(|e| panic!("{e}"));
    COUNTING.store(false, Ordering::Relaxed);
    let heap_peak = PEAK.load(Ordering::Relaxed).max(0) as usize;
    let heap_kept = LIVE.load(Ordering::Relaxed).max(0) as usize;
    let file_pages_kib = status_kib("RssFile:").saturating_sub(rss_file);
    let anon_kib = status_kib("RssAnon:").saturating_sub(rss_anon);
    let (layers, weights) = (file.index.layers.len(), file.index.weights.len());
    drop(file);
    let mut times = Vec::new();
    let mut cpu = Vec::new();
    for _ in 0..runs {
        let (t, c) = (Instant::now(), thread_cpu());
        let f = ModelFile::open(path).unwrap_or_else(|e| panic!("{e}"));
        times.push(t.elapsed());
        cpu.push(thread_cpu().saturating_sub(c));
        drop(f);
    }
    times.sort();
    cpu.sort();
    // The walk alone, over bytes already in memory (no mapping, no page faults).
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{e}"));
    let mut walk: Vec<Duration> = (0..runs)
        .map(|_| {
            let t = Instant::now();
            let idx = coremlq::model::index::build(path, &bytes).unwrap_or_else(|e| panic!("{e}"));
            let d = t.elapsed();
            drop(idx);
            d
        })
        .collect();
    walk.sort();
    Figures {
        median: times[times.len() / 2],
        min: times[0],
        cpu_median: cpu[cpu.len() / 2],
        walk_median: walk[walk.len() / 2],
        cold,
        cold_read_kib,
        heap_peak,
        heap_kept,
        file_pages_kib,
        anon_kib,
        layers,
        weights,
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Median seconds and peak RSS (KiB) of `coremltools.utils.load_spec` on `path`.
fn coremltools(python: &str, path: &Path, runs: usize) -> Option<(f64, u64)> {
    // Peak RSS from VmHWM: ru_maxrss would include this (forking) process's own peak.
    let script = "import sys, time, statistics\n\
                  import coremltools as ct\n\
                  ts = []\n\
                  for _ in range(int(sys.argv[2])):\n\
                  \x20   t = time.perf_counter(); ct.utils.load_spec(sys.argv[1]); ts.append(time.perf_counter() - t)\n\
                  hwm = [l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM')]\n\
                  print(statistics.median(ts), hwm[0] if hwm else 0)\n";
    let out = std::process::Command::new(python)
        .args(["-c", script])
        .arg(path)
        .arg(runs.to_string())
        .output()
        .ok()?;
    if !out.status.success() {
        eprintln!(
            "coremltools run failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        return None;
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut it = text.split_whitespace();
    Some((it.next()?.parse().ok()?, it.next()?.parse().ok()?))
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing: keep that quick.
    let benching = std::env::args().any(|a| a == "--bench");
    if !benching {
        println!("index bench: run with `cargo bench --bench index`");
        return;
    }
    let runs: usize = std::env::var("COREMLQ_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(15);
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("temp dir: {e}"));
    let big = dir.path().join("big.mlmodel");
    let many = dir.path().join("many_layers.mlmodel");
    let t = Instant::now();
    let big_bytes = write_big(&big).unwrap_or_else(|e| panic!("{e}"));
    println!(
        "generated {} ({:.1} MB) in {:.1?}",
        big.display(),
        big_bytes as f64 / 1e6,
        t.elapsed()
    );
    let t = Instant::now();
    let many_bytes = write_many(&many).unwrap_or_else(|e| panic!("{e}"));
    println!(
        "generated {} ({:.1} MB) in {:.1?}",
        many.display(),
        many_bytes as f64 / 1e6,
        t.elapsed()
    );
    let python = std::env::var("COREMLQ_BENCH_PYTHON").ok();
    for (name, path, bytes) in [
        ("600 MB model", &big, big_bytes),
        ("2,000-layer model", &many, many_bytes),
    ] {
        let f = measure(path, runs);
        let ok = |b: bool| if b { "met" } else { "MISSED" };
        println!();
        println!(
            "{name}: {:.1} MB, {} layers, {} weight tensors",
            bytes as f64 / 1e6,
            f.layers,
            f.weights
        );
        println!(
            "  warm open+index ({runs} runs): median {:.3} ms, min {:.3} ms, thread CPU median {:.3} ms \
             (target < 5 ms: {})",
            ms(f.median),
            ms(f.min),
            ms(f.cpu_median),
            ok(f.median < Duration::from_millis(5))
        );
        println!(
            "  index only (bytes already in memory): median {:.3} ms",
            ms(f.walk_median)
        );
        println!(
            "  cold open+index: {:.3} ms, {} KB read from storage ({:.3}% of the file)",
            ms(f.cold),
            f.cold_read_kib,
            f.cold_read_kib as f64 * 1024.0 * 100.0 / bytes as f64
        );
        println!(
            "  heap: peak {} KB, kept by the index {} KB (target < 20 MB: {}); anonymous RSS +{} KB; \
             file pages mapped (warm) {} KB",
            f.heap_peak / 1024,
            f.heap_kept / 1024,
            ok(f.heap_peak < 20 << 20),
            f.anon_kib,
            f.file_pages_kib
        );
        if let Some(py) = &python {
            let ct_runs = if bytes > 100_000_000 { 3 } else { runs.min(5) };
            if let Some((secs, maxrss)) = coremltools(py, path, ct_runs) {
                println!(
                    "  coremltools.utils.load_spec ({ct_runs} runs): median {:.1} ms, peak RSS {} MB; \
                     ratio {:.0}x",
                    secs * 1e3,
                    maxrss / 1024,
                    secs / f.median.as_secs_f64()
                );
            }
        }
    }
}
