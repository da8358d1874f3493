//! Byte-range requests (RFC 9110 §14).
//!
//! Where this sits in a request's path: after the request head has been
//! parsed and the conditional headers have said "go ahead" (see
//! `conditional.rs`, including If-Range), the worker thread hands the raw
//! `Range` field value and the length of the chosen representation to
//! [`evaluate`]. The answer tells it whether to send `200` with the whole
//! file, `206` with one or more slices, or `416`.
//!
//! Everything here is pure: no I/O, no allocation beyond the returned
//! vector and strings, and no panics on any input, because the `Range`
//! header is attacker-controlled and this module is fuzzed.

use crate::limits::MAX_RANGES;

/// The only range unit HTTP defines; other units are ignored (served `200`).
const BYTES_UNIT: &str = "bytes";

/// A satisfiable byte range, half-open: `[start, end)`.
///
/// Values produced by [`evaluate`] always satisfy `start < end <= file length`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ByteRange {
    pub start: u64,
    pub end: u64,
}

impl ByteRange {
    /// Number of bytes in the range (saturating, so a hand-built inverted
    /// range reports 0 instead of wrapping).
    pub fn len(&self) -> u64 {
        self.end.saturating_sub(self.start)
    }

    /// True when the range covers no bytes; never the case for ranges
    /// returned by [`evaluate`].
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What the server should do with a `Range` header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RangeOutcome {
    /// Serve the whole representation with 200: header syntactically invalid,
    /// not a `bytes` unit, or ignorable.
    Full,
    /// 206: one or more ranges, sorted by start, coalesced (overlapping or
    /// adjacent ranges merged), non-empty.
    Partial(Vec<ByteRange>),
    /// 416 with `Content-Range: bytes */LEN`: valid syntax but no range
    /// overlaps the representation.
    Unsatisfiable,
}

/// One syntactically valid range-spec, before it is resolved against the
/// representation length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum RangeSpec {
    /// `first-last`, both inclusive; `last` may exceed the file length.
    Closed { first: u64, last: u64 },
    /// `first-`: from `first` to the end of the file.
    From { first: u64 },
    /// `-n`: the last `n` bytes.
    Suffix { n: u64 },
}

/// Evaluates a raw `Range` field value against a representation of `len`
/// bytes.
pub fn evaluate(header: &str, len: u64) -> RangeOutcome {
    let specs = match parse(header) {
        Some(specs) => specs,
        // RFC 9110 §14.2: a server may ignore a Range it does not understand;
        // serving the full file is always a correct answer.
        None => return RangeOutcome::Full,
    };

    let mut ranges: Vec<ByteRange> = specs.iter().filter_map(|s| resolve(*s, len)).collect();
    if ranges.is_empty() {
        return RangeOutcome::Unsatisfiable;
    }

    // Sorting then merging means the multipart body never repeats a byte,
    // which is what stops overlapping-range amplification.
    ranges.sort_unstable_by_key(|r| (r.start, r.end));
    let merged = coalesce(ranges);

    // Belt and braces: after coalescing the parts are disjoint, so this sum
    // cannot exceed `len`; if it somehow did we would rather send 200.
    let total = merged
        .iter()
        .try_fold(0u64, |acc, r| acc.checked_add(r.len()));
    match total {
        Some(t) if t <= len => RangeOutcome::Partial(merged),
        _ => RangeOutcome::Full,
    }
}

/// Formats the `Content-Range` value for one part of a 206 response:
/// `bytes START-END/LEN` with an inclusive end, as the RFC requires.
pub fn content_range(r: ByteRange, len: u64) -> String {
    // `saturating_sub` keeps a hand-built empty range from wrapping around.
    let last = r.end.saturating_sub(1);
    format!("bytes {}-{}/{}", r.start, last, len)
}

/// Formats the `Content-Range` value sent with a 416 response.
pub fn unsatisfied_range(len: u64) -> String {
    format!("bytes */{len}")
}

/// Parses `bytes=range-spec *( OWS "," OWS range-spec )`.
///
/// Returns `None` when the whole header must be ignored: wrong unit, bad
/// syntax anywhere, no range-spec at all, or more than [`MAX_RANGES`] specs.
fn parse(header: &str) -> Option<Vec<RangeSpec>> {
    let (unit, set) = header.trim_matches(is_ows).split_once('=')?;
    if !unit.eq_ignore_ascii_case(BYTES_UNIT) {
        return None;
    }

    let mut specs = Vec::new();
    // RFC 9110 §5.6.1: recipients must accept empty list elements such as
    // `0-1,,2-3`, so blank members are skipped rather than rejected.
    for element in set.split(',').map(|e| e.trim_matches(is_ows)) {
        if element.is_empty() {
            continue;
        }
        // Bail out as soon as the cap is passed so a huge header costs no
        // more than MAX_RANGES parses.
        if specs.len() >= MAX_RANGES {
            return None;
        }
        specs.push(parse_spec(element)?);
    }

    // `range-set = 1#range-spec`: at least one is required.
    if specs.is_empty() {
        None
    } else {
        Some(specs)
    }
}

/// Parses one `first-last`, `first-` or `-suffix` element.
fn parse_spec(element: &str) -> Option<RangeSpec> {
    let (first, last) = element.split_once('-')?;
    if first.is_empty() {
        return Some(RangeSpec::Suffix {
            n: parse_digits(last)?,
        });
    }
    let first = parse_digits(first)?;
    if last.is_empty() {
        return Some(RangeSpec::From { first });
    }
    let last = parse_digits(last)?;
    // RFC 9110 §14.1.1: a range with last < first is invalid, which makes
    // the whole header invalid.
    if last < first {
        return None;
    }
    Some(RangeSpec::Closed { first, last })
}

/// Parses `1*DIGIT` into a `u64`.
///
/// Hand-rolled because `u64::from_str` also accepts a leading `+`, which the
/// grammar forbids; overflow yields `None` so the header is ignored.
fn parse_digits(s: &str) -> Option<u64> {
    if s.is_empty() {
        return None;
    }
    s.bytes().try_fold(0u64, |acc, b| {
        let digit = if b.is_ascii_digit() {
            b - b'0'
        } else {
            return None;
        };
        acc.checked_mul(10)?.checked_add(u64::from(digit))
    })
}

/// Turns a range-spec into concrete bytes of a `len`-byte file, or `None`
/// if it does not overlap the file at all (an unsatisfiable element).
fn resolve(spec: RangeSpec, len: u64) -> Option<ByteRange> {
    let (start, end) = match spec {
        // `last` may point past EOF; clients use huge values to mean "to the
        // end", so clamp rather than reject. `saturating_add` covers u64::MAX.
        RangeSpec::Closed { first, last } => (first, last.saturating_add(1).min(len)),
        RangeSpec::From { first } => (first, len),
        // A suffix longer than the file means the whole file; `-0` asks for
        // nothing and ends up empty below.
        RangeSpec::Suffix { n } => (len.saturating_sub(n), len),
    };
    // Covers start >= len (beyond EOF), empty files, and `-0`.
    if start < end {
        Some(ByteRange { start, end })
    } else {
        None
    }
}

/// Merges sorted ranges that overlap or touch, so that `0-4,5-9` becomes a
/// single part: fewer multipart boundaries and no byte sent twice.
fn coalesce(sorted: Vec<ByteRange>) -> Vec<ByteRange> {
    let mut merged: Vec<ByteRange> = Vec::with_capacity(sorted.len());
    for r in sorted {
        match merged.last_mut() {
            Some(prev) if r.start <= prev.end => prev.end = prev.end.max(r.end),
            _ => merged.push(r),
        }
    }
    merged
}

/// Optional whitespace (RFC 9110 §5.6.3): spaces and horizontal tabs only.
fn is_ows(c: char) -> bool {
    c == ' ' || c == '\t'
}

#[cfg(test)]
mod tests {
    use super::*;

    fn br(start: u64, end: u64) -> ByteRange {
        ByteRange { start, end }
    }

    fn partial(ranges: &[(u64, u64)]) -> RangeOutcome {
        RangeOutcome::Partial(ranges.iter().map(|&(s, e)| br(s, e)).collect())
    }

    #[test]
    fn evaluate_table() {
        use RangeOutcome::{Full, Unsatisfiable};
        let many_ranges = (0..=MAX_RANGES)
            .map(|i| format!("{}-{}", i * 10, i * 10 + 1))
            .collect::<Vec<_>>()
            .join(",");
        let max_ranges = (0..MAX_RANGES)
            .map(|i| format!("{}-{}", i * 10, i * 10 + 1))
            .collect::<Vec<_>>()
            .join(",");
        let max_expected: Vec<(u64, u64)> = (0..MAX_RANGES as u64)
            .map(|i| (i * 10, i * 10 + 2))
            .collect();

        let cases: Vec<(&str, u64, RangeOutcome)> = vec![
            // Basic forms.
            ("bytes=0-499", 1000, partial(&[(0, 500)])),
            ("bytes=500-999", 1000, partial(&[(500, 1000)])),
            ("bytes=500-", 1000, partial(&[(500, 1000)])),
            ("bytes=-500", 1000, partial(&[(500, 1000)])),
            ("bytes=0-0", 1000, partial(&[(0, 1)])),
            ("bytes=999-999", 1000, partial(&[(999, 1000)])),
            // Clamping past EOF.
            ("bytes=0-5000", 1000, partial(&[(0, 1000)])),
            ("bytes=0-18446744073709551615", 10, partial(&[(0, 10)])),
            ("bytes=-5000", 1000, partial(&[(0, 1000)])),
            ("bytes=-18446744073709551615", 10, partial(&[(0, 10)])),
            // Case-insensitive unit, OWS, empty list elements.
            ("BYTES=0-1", 10, partial(&[(0, 2)])),
            ("Bytes=0-1 ,\t4-5", 10, partial(&[(0, 2), (4, 6)])),
            ("bytes=,0-1,,4-5,", 10, partial(&[(0, 2), (4, 6)])),
            ("  bytes=0-1  ", 10, partial(&[(0, 2)])),
            // Sorting and coalescing (overlapping and adjacent).
            ("bytes=4-5,0-1", 10, partial(&[(0, 2), (4, 6)])),
            ("bytes=0-4,5-9", 10, partial(&[(0, 10)])),
            ("bytes=0-5,3-7", 10, partial(&[(0, 8)])),
            ("bytes=0-9,2-3", 10, partial(&[(0, 10)])),
            ("bytes=0-0,0-0,0-0", 10, partial(&[(0, 1)])),
            ("bytes=-3,0-1", 10, partial(&[(0, 2), (7, 10)])),
            ("bytes=-3,5-6", 10, partial(&[(5, 10)])),
            // Unsatisfiable elements are dropped, others kept.
            ("bytes=50-60,0-1", 10, partial(&[(0, 2)])),
            ("bytes=-0,0-1", 10, partial(&[(0, 2)])),
            // Nothing satisfiable.
            ("bytes=10-", 10, Unsatisfiable),
            ("bytes=10-20", 10, Unsatisfiable),
            ("bytes=-0", 10, Unsatisfiable),
            ("bytes=0-", 0, Unsatisfiable),
            ("bytes=-5", 0, Unsatisfiable),
            ("bytes=0-0", 0, Unsatisfiable),
            // Invalid syntax: ignore the header.
            ("bytes=5-4", 10, Full),
            ("bytes=0-1,5-4", 10, Full),
            ("bytes=", 10, Full),
            ("bytes=,,", 10, Full),
            ("bytes=-", 10, Full),
            ("bytes=1", 10, Full),
            ("bytes=+1-2", 10, Full),
            ("bytes=1-+2", 10, Full),
            ("bytes=-+2", 10, Full),
            ("bytes=--2", 10, Full),
            ("bytes=1-2-3", 10, Full),
            ("bytes=1 -2", 10, Full),
            ("bytes=1- 2", 10, Full),
            ("bytes = 0-1", 10, Full),
            ("bytes=0x1-2", 10, Full),
            ("bytes=18446744073709551616-", 10, Full),
            ("bytes=0-18446744073709551616", 10, Full),
            ("bytes=-18446744073709551616", 10, Full),
            ("bytes=٣-4", 10, Full),
            ("items=0-1", 10, Full),
            ("bytes 0-1", 10, Full),
            ("", 10, Full),
            ("=", 10, Full),
            ("bytes=0-1;x", 10, Full),
        ];
        for (header, len, want) in cases {
            assert_eq!(evaluate(header, len), want, "header {header:?} len {len}");
        }

        // The cap counts range-specs as written, before coalescing.
        assert_eq!(
            evaluate(&format!("bytes={many_ranges}"), 1000),
            RangeOutcome::Full
        );
        assert_eq!(
            evaluate(&format!("bytes={max_ranges}"), 1000),
            partial(&max_expected)
        );
        let overlapping = vec!["0-"; MAX_RANGES + 1].join(",");
        assert_eq!(
            evaluate(&format!("bytes={overlapping}"), 10),
            RangeOutcome::Full
        );
    }

    #[test]
    fn header_strings() {
        let cases = [
            (br(0, 1), 10, "bytes 0-0/10"),
            (br(0, 10), 10, "bytes 0-9/10"),
            (br(5, 8), 10, "bytes 5-7/10"),
            (br(0, 0), 0, "bytes 0-0/0"),
            (
                br(u64::MAX - 1, u64::MAX),
                u64::MAX,
                "bytes 18446744073709551614-18446744073709551614/18446744073709551615",
            ),
        ];
        for (r, len, want) in cases {
            assert_eq!(content_range(r, len), want);
        }
        assert_eq!(unsatisfied_range(0), "bytes */0");
        assert_eq!(unsatisfied_range(1234), "bytes */1234");
    }

    #[test]
    fn byte_range_len() {
        let cases = [
            (br(0, 1), 1, false),
            (br(3, 10), 7, false),
            (br(5, 5), 0, true),
            (br(9, 2), 0, true),
        ];
        for (r, len, empty) in cases {
            assert_eq!(r.len(), len, "{r:?}");
            assert_eq!(r.is_empty(), empty, "{r:?}");
        }
    }

    /// A tiny deterministic fuzzer: random headers from a hostile alphabet
    /// must never panic and must always uphold the `Partial` invariants.
    #[test]
    fn pseudo_random_headers_uphold_invariants() {
        const ALPHABET: &[&str] = &[
            "0",
            "1",
            "9",
            "-",
            ",",
            " ",
            "\t",
            "=",
            "bytes",
            "BYTES",
            "18446744073709551615",
            "18446744073709551616",
            "+",
            "x",
            "é",
        ];
        let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = move || {
            // xorshift64: good enough to spread test inputs, no crates needed.
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..20_000 {
            let mut header = String::from(if next() % 4 == 0 { "" } else { "bytes=" });
            for _ in 0..(next() % 12) {
                let pick = usize::try_from(next() % ALPHABET.len() as u64).unwrap_or(0);
                header.push_str(ALPHABET.get(pick).copied().unwrap_or(""));
            }
            let len = match next() % 4 {
                0 => 0,
                1 => next() % 20,
                2 => u64::MAX,
                _ => next(),
            };
            if let RangeOutcome::Partial(ranges) = evaluate(&header, len) {
                assert!(!ranges.is_empty(), "{header:?}");
                assert!(ranges.len() <= MAX_RANGES, "{header:?}");
                for r in &ranges {
                    assert!(r.start < r.end && r.end <= len, "{header:?} {r:?}");
                }
                for pair in ranges.windows(2) {
                    // Strictly greater: adjacent ranges must have been merged.
                    assert!(pair[0].end < pair[1].start, "{header:?} {ranges:?}");
                }
            }
        }
    }
}
