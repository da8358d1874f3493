#![no_main]
//! libFuzzer entry for `path_resolve`; the invariants live in `checks/path_resolve.rs`,
//! shared with the corpus replay in `tests/fuzz_corpus.rs`.

use libfuzzer_sys::fuzz_target;

#[path = "../checks/mod.rs"]
mod checks;

fuzz_target!(|data: &[u8]| {
    if let Err(violation) = checks::path_resolve::check(data) {
        panic!("path_resolve invariant violated: {violation}");
    }
});
