#![no_main]
//! libFuzzer entry for `connection`; the invariants live in `checks/connection.rs`,
//! shared with the corpus replay in `tests/fuzz_corpus.rs`.

use libfuzzer_sys::fuzz_target;

#[path = "../checks/mod.rs"]
mod checks;

fuzz_target!(|data: &[u8]| {
    if let Err(violation) = checks::connection::check(data) {
        panic!("connection invariant violated: {violation}");
    }
});
