//! Invariant checks shared by the libFuzzer targets (fuzz/fuzz_targets/) and
//! the corpus replay test (tests/fuzz_corpus.rs). Each `check(data)` takes
//! the raw fuzzer input, exercises stoke's public API only, and returns
//! `Err(description)` for a broken invariant. A panic inside stoke is left
//! to propagate: libFuzzer records it as a crash, the replay test catches it.
#![allow(dead_code)]

/// Turns a false condition into an `Err` with a formatted message.
macro_rules! ensure {
    ($cond:expr, $($msg:tt)+) => {
        if !$cond {
            return Err(format!($($msg)+));
        }
    };
}

/// Known findings to look past while fuzzing for others, named in
/// `STOKE_FUZZ_IGNORE` (comma-separated, read once). Empty by default, so
/// the replay test and a plain fuzz run report everything.
///
/// - `eof-stall`: conn/mod.rs; request bytes and FIN read together leave
///   the EOF unread until a timer fires.
/// - `strip-scheme`: request.rs `strip_scheme` slices the target at byte 7/8
///   without checking for a char boundary (panic on non-ASCII targets).
/// - `version-prefix`: request.rs `version_error` judges the last word of
///   the buffered line, so 400 vs 505 depends on how the line was split
///   into reads.
pub fn ignored(tag: &str) -> bool {
    static IGNORED: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    IGNORED
        .get_or_init(|| {
            std::env::var("STOKE_FUZZ_IGNORE")
                .unwrap_or_default()
                .split(',')
                .map(|t| t.trim().to_owned())
                .collect()
        })
        .iter()
        .any(|t| t == tag)
}

/// Whether `data` would only re-find an ignored bug that panics (see
/// [`ignored`]): some line's second word, a non-'/' request target, has a
/// non-ASCII byte among its first 8 bytes.
pub fn hits_known_bug(data: &[u8]) -> bool {
    ignored("strip-scheme")
        && data.split(|&b| b == b'\n').any(|line| {
            line.split(|&b| b == b' ')
                .nth(1)
                .is_some_and(|t| !t.starts_with(b"/") && t.iter().take(8).any(|&b| b >= 0x80))
        })
}

/// Finds `needle` in `haystack` (naive; inputs are small).
pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|w| w == needle)
}

pub mod connection;
pub mod path_resolve;
pub mod range_header;
pub mod request_head;
