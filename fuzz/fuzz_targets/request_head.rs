#![no_main]
//! libFuzzer entry for `request_head`; the invariants live in `checks/request_head.rs`,
//! shared with the corpus replay in `tests/fuzz_corpus.rs`.

use libfuzzer_sys::fuzz_target;

#[path = "../checks/mod.rs"]
mod checks;

fuzz_target!(|data: &[u8]| {
    if let Err(violation) = checks::request_head::check(data) {
        panic!("request_head invariant violated: {violation}");
    }
});
