#![no_main]
//! libFuzzer entry for `range_header`; the invariants live in `checks/range_header.rs`,
//! shared with the corpus replay in `tests/fuzz_corpus.rs`.

use libfuzzer_sys::fuzz_target;

#[path = "../checks/mod.rs"]
mod checks;

fuzz_target!(|data: &[u8]| {
    if let Err(violation) = checks::range_header::check(data) {
        panic!("range_header invariant violated: {violation}");
    }
});
