//! Fuzz target: the config parser and cursor location on arbitrary text.
//!
//! Parsing never fails: it must return a tree whose ranges are char ranges of the text, for
//! every input, and locating any offset (as completion and hover do) must not panic.

#![no_main]

use libfuzzer_sys::fuzz_target;

use coremlq::config::syntax;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let parse = syntax::parse(&text);
    if let Err(e) = coremlq_fuzz::checks::syntax_invariants(&text, &parse) {
        panic!("inconsistent parse: {e}");
    }
    let _ = parse.debug_tree(&text);
    let step = (text.len() / 16).max(1);
    for offset in (0..=text.len() + 1).step_by(step) {
        let _ = parse.locate(&text, offset);
    }
});
