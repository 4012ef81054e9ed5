//! Fuzz target: the whole config analysis on arbitrary text, against fixture models.
//!
//! The checker's diagnostics, settings and plan, its quick fixes applied and re-analysed,
//! and the editor features (completion, hover, inlay hints, symbols, the lens title) at a
//! spread of offsets: every range they return must be a char range of the text, every
//! diagnostic code a known one, and nothing may panic, hang or allocate without bound.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(e) = coremlq_fuzz::config_analysis::run(data) {
        panic!("config analysis: {e}");
    }
});
