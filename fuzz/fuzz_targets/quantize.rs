//! Fuzz target: the quantize pipeline (index → plan → write → re-read) on mutated models.
//!
//! The settings come from the input's length, so every mode and bit width is exercised on
//! the same corpus. Errors are expected; panics, or an output that does not index back, are
//! bugs.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let choice = (data.len() % 256) as u8;
    if let Err(e) = coremlq_fuzz::pipeline::run(data, choice) {
        panic!("quantize pipeline: {e}");
    }
});
