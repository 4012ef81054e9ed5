//! Allocation bounds: a counting global allocator (this test binary only) proves that no
//! allocation is sized by a length read from the input without checking it against the
//! bytes actually there. A tiny file claiming gigabytes must be refused with kilobytes.
//!
//! One test function runs every case in sequence, so the counters see only that case.

#[allow(dead_code)]
#[path = "../fuzz/src/hostile.rs"]
mod hostile;

use std::alloc::{GlobalAlloc, Layout, System};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

use hostile::*;

/// Counts live bytes, their peak, and the largest single request.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);
static LARGEST: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded unchanged to the system allocator.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded unchanged to the system allocator.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.dealloc(ptr, layout) };
        LIVE.fetch_sub(layout.size(), Relaxed);
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded unchanged to the system allocator.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            LIVE.fetch_sub(layout.size(), Relaxed);
            grew(new_size);
        }
        p
    }
}

fn grew(size: usize) {
    let live = LIVE.fetch_add(size, Relaxed) + size;
    PEAK.fetch_max(live, Relaxed);
    LARGEST.fetch_max(size, Relaxed);
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// What one case cost: peak bytes above the live bytes at its start, largest request.
#[derive(Debug, Clone, Copy)]
struct Cost {
    peak: usize,
    largest: usize,
}

fn measure<T>(f: impl FnOnce() -> T) -> (T, Cost) {
    let base = LIVE.load(Relaxed);
    PEAK.store(base, Relaxed);
    LARGEST.store(0, Relaxed);
    let out = f();
    let cost = Cost {
        peak: PEAK.load(Relaxed).saturating_sub(base),
        largest: LARGEST.load(Relaxed),
    };
    (out, cost)
}

const KB: usize = 1024;
const MB: usize = 1024 * 1024;

fn index_cost(bytes: &[u8]) -> (bool, Cost) {
    measure(|| coremlq::model::index::build(Path::new("hostile.mlmodel"), bytes).is_ok())
}

#[test]
fn no_allocation_is_sized_by_an_unchecked_length() {
    let mut report = Vec::new();

    // 1. Six bytes claiming a 2 GB description.
    let bytes = ld_lying(2, 1 << 31, &[]);
    let (ok, cost) = index_cost(&bytes);
    assert!(!ok);
    assert!(
        cost.largest < 64 * KB && cost.peak < 256 * KB,
        "6-byte file claiming 2 GB: {cost:?}"
    );
    report.push(format!("6-byte file claiming 2 GiB: {cost:?}"));

    // 2. Every length prefix of a real model replaced by 2^31 and u64::MAX.
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/models/conv.mlmodel");
    let conv = std::fs::read(&path).expect("conv fixture");
    let mut worst = Cost {
        peak: 0,
        largest: 0,
    };
    for (at, old) in length_prefixes(&conv) {
        for value in [1u64 << 31, u64::MAX] {
            let lying = with_length(&conv, at, old, value);
            let (_, cost) = index_cost(&lying);
            worst.peak = worst.peak.max(cost.peak);
            worst.largest = worst.largest.max(cost.largest);
        }
    }
    assert!(
        worst.largest < MB && worst.peak < 4 * MB,
        "conv with lying lengths: {worst:?}"
    );
    report.push(format!(
        "conv.mlmodel ({} B) with each length lying: worst {worst:?}",
        conv.len()
    ));

    // 3. A quantized tensor whose header claims 2^60 elements in one byte of payload.
    let quant = cat(&[
        vint(1, 1),
        ld(101, &cat(&[ld(1, &floats(&[1.0])), ld(2, &floats(&[0.0]))])),
    ]);
    let w = cat(&[ld(30, &[0xff]), ld(40, &quant)]);
    let layer = cat(&[
        ld(1, b"ip"),
        ld(140, &cat(&[vint(1, 1 << 30), vint(2, 1 << 30), ld(20, &w)])),
    ]);
    let bytes = nn_model(&[layer]);
    let (_, cost) = index_cost(&bytes);
    assert!(
        cost.largest < MB && cost.peak < 4 * MB,
        "2^60-element header: {cost:?}"
    );
    report.push(format!("header claiming 2^60 elements: {cost:?}"));

    // 4. A config whose numbers and nesting are absurd: memory stays proportional to the text.
    let text = format!(
        "{{\"nbits\": 1e{}, \"a\": {}",
        "9".repeat(10_000),
        "[".repeat(10_000)
    );
    let (_, cost) = measure(|| coremlq::config::syntax::parse(&text).errors.len());
    assert!(
        cost.peak < 64 * text.len() + MB,
        "absurd config of {} B: {cost:?}",
        text.len()
    );
    report.push(format!(
        "config of {} B (10k-digit exponent, 10k open brackets): {cost:?}",
        text.len()
    ));

    // 5. Memory per indexed layer, on 200 000 empty layers (400 kB of input).
    let bytes = many_empty_layers_model(200_000);
    let (_, cost) = index_cost(&bytes);
    assert!(
        cost.peak < 512 * bytes.len() + MB,
        "200k empty layers ({} B): {cost:?}",
        bytes.len()
    );
    report.push(format!(
        "200k empty layers ({} B): {cost:?}, {} B per input byte",
        bytes.len(),
        cost.peak / bytes.len()
    ));

    eprintln!("{}", report.join("\n"));
}
