//! `range_header`: 8 bytes choose the representation length, the rest is
//! the `Range` field value → `stoke::http::range::evaluate`.
//!
//! Invariants: no panic; every range is non-empty and inside the file;
//! ranges are sorted, disjoint and not adjacent (coalesced); at most
//! `MAX_RANGES` of them; their total never exceeds the length; and the
//! answer is a fixed point: asking again for exactly the returned ranges
//! returns them unchanged. For small files, the returned ranges cover
//! exactly the bytes a straightforward reading of RFC 9110 selects.

use stoke::http::range::{content_range, evaluate, ByteRange, RangeOutcome};
use stoke::limits::MAX_RANGES;

pub fn check(data: &[u8]) -> Result<(), String> {
    let (len_bytes, rest) = data.split_at(data.len().min(8));
    let mut raw = [0u8; 8];
    raw[..len_bytes.len()].copy_from_slice(len_bytes);
    let raw = u64::from_le_bytes(raw);
    // The low two bits pick a size class so small files (where clamping and
    // coalescing happen) are as likely as huge ones.
    let len = match raw & 3 {
        0 => (raw >> 2) % 64,
        1 => (raw >> 2) % 100_000,
        2 => u64::MAX - (raw >> 2) % 4,
        _ => raw >> 2,
    };
    let header = String::from_utf8_lossy(rest);
    check_header(&header, len)
}

pub fn check_header(header: &str, len: u64) -> Result<(), String> {
    let outcome = evaluate(header, len);
    let RangeOutcome::Partial(ranges) = &outcome else {
        if len <= 64 {
            reference_matches(header, len, &outcome)?;
        }
        return Ok(());
    };
    ensure!(!ranges.is_empty(), "Partial with no range for {header:?}");
    ensure!(
        ranges.len() <= MAX_RANGES,
        "{} ranges > MAX_RANGES for {header:?}",
        ranges.len()
    );
    let mut total: u64 = 0;
    for r in ranges {
        ensure!(
            r.start < r.end && r.end <= len,
            "range {r:?} outside 0..{len} for {header:?}"
        );
        total += r.len();
        let _ = content_range(*r, len);
    }
    ensure!(total <= len, "total {total} > len {len} for {header:?}");
    for pair in ranges.windows(2) {
        ensure!(
            pair[0].end < pair[1].start,
            "ranges not sorted/disjoint/non-adjacent: {ranges:?} for {header:?}"
        );
    }
    let again: Vec<String> = ranges
        .iter()
        .map(|r| format!("{}-{}", r.start, r.end - 1))
        .collect();
    let again = format!("bytes={}", again.join(","));
    let second = evaluate(&again, len);
    ensure!(
        second == outcome,
        "not a fixed point: {header:?} → {outcome:?}, {again:?} → {second:?}"
    );
    if len <= 64 {
        reference_matches(header, len, &outcome)?;
    }
    Ok(())
}

/// A deliberately naive model of RFC 9110 §14 for files of at most 64
/// bytes: a bitmap of the selected bytes.
fn reference_matches(header: &str, len: u64, got: &RangeOutcome) -> Result<(), String> {
    let want = reference(header, len);
    ensure!(
        &want == got,
        "reference says {want:?}, evaluate says {got:?} for {header:?} len {len}"
    );
    Ok(())
}

fn reference(header: &str, len: u64) -> RangeOutcome {
    let ows = |c: char| c == ' ' || c == '\t';
    let Some((unit, set)) = header.trim_matches(ows).split_once('=') else {
        return RangeOutcome::Full;
    };
    if !unit.eq_ignore_ascii_case("bytes") {
        return RangeOutcome::Full;
    }
    let digits = |s: &str| -> Option<u64> {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        s.parse::<u64>().ok()
    };
    let mut selected = [false; 64];
    let mut specs = 0;
    for element in set.split(',').map(|e| e.trim_matches(ows)) {
        if element.is_empty() {
            continue;
        }
        specs += 1;
        if specs > MAX_RANGES {
            return RangeOutcome::Full;
        }
        let Some((first, last)) = element.split_once('-') else {
            return RangeOutcome::Full;
        };
        let (start, end_incl) = if first.is_empty() {
            let Some(n) = digits(last) else {
                return RangeOutcome::Full;
            };
            if n == 0 {
                continue;
            }
            (len.saturating_sub(n), len.saturating_sub(1))
        } else {
            let Some(first) = digits(first) else {
                return RangeOutcome::Full;
            };
            let last = if last.is_empty() {
                u64::MAX
            } else {
                match digits(last) {
                    Some(l) if l >= first => l,
                    _ => return RangeOutcome::Full,
                }
            };
            (first, last)
        };
        let mut i = start;
        while i < len && i <= end_incl {
            selected[i as usize] = true;
            i += 1;
        }
    }
    if specs == 0 {
        return RangeOutcome::Full;
    }
    let mut ranges = Vec::new();
    let mut i = 0;
    while i < len {
        if selected[i as usize] {
            let start = i;
            while i < len && selected[i as usize] {
                i += 1;
            }
            ranges.push(ByteRange { start, end: i });
        } else {
            i += 1;
        }
    }
    if ranges.is_empty() {
        RangeOutcome::Unsatisfiable
    } else {
        RangeOutcome::Partial(ranges)
    }
}
