//! Fuzz target: the model walker and index on arbitrary bytes.
//!
//! Indexing must return `Ok` or `Err` for every input, never panic, hang or allocate without
//! bound, and every index it returns must be self-consistent (spans inside the file, ids
//! inside their vectors).

#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(index) = coremlq::model::index::build(Path::new("fuzz.mlmodel"), data) {
        if let Err(e) = coremlq_fuzz::checks::index_invariants(data, &index) {
            panic!("inconsistent index: {e}");
        }
    }
});
