//! `request_head`: arbitrary bytes → `stoke::http::request::parse`.
//!
//! Invariants: no panic; a complete head lies inside the input and the
//! limit; method, target, path and query are copied from the input (not
//! invented); the answer does not depend on how much follows the head or on
//! a larger limit; a strict prefix of a complete head is only `Partial`;
//! and parsing only where `HeadScanner` asks (as the connection does) finds
//! every complete head, and the same refusals, as parsing after every byte.

use stoke::http::request::{parse, BodyFraming, HeadScanner, ParseError, Parsed, RequestHead};

use super::contains;

/// The production default, and a tiny one so the limit paths get exercised.
const LIMITS: [usize; 3] = [8192, 64, 17];

pub fn check(data: &[u8]) -> Result<(), String> {
    if super::hits_known_bug(data) {
        return Ok(());
    }
    let mut complete_at: Vec<(usize, usize)> = Vec::new();
    for max_head in LIMITS {
        let result = parse(data, max_head);
        match &result {
            Ok(Parsed::Partial) => {
                ensure!(
                    data.len() < max_head,
                    "Partial for {} bytes at limit {max_head}: must be an error",
                    data.len()
                );
            }
            Ok(Parsed::Complete { head, len }) => {
                let len = *len;
                ensure!(len <= data.len(), "len {len} > input {}", data.len());
                ensure!(len <= max_head, "len {len} > limit {max_head}");
                check_head(head, &data[..len])?;
                // Only the head itself decides: re-parsing exactly the head,
                // or with more room, gives the same answer.
                let again = parse(&data[..len], max_head);
                ensure!(
                    again == result,
                    "head alone parses differently: {again:?} vs {result:?}"
                );
                let roomy = parse(data, max_head.max(8192) * 2);
                ensure!(
                    roomy == result,
                    "larger limit changes a complete head: {roomy:?} vs {result:?}"
                );
                // A strict prefix of a whole head is never an error: the
                // connection parses whatever has arrived so far.
                for cut in [len - 1, len / 2, 1] {
                    if cut == 0 || cut >= len {
                        continue;
                    }
                    let p = parse(&data[..cut], max_head);
                    ensure!(
                        p == Ok(Parsed::Partial),
                        "prefix {cut} of a {len}-byte head gives {p:?}"
                    );
                }
                complete_at.push((max_head, len));
            }
            Err(_) => {}
        }
    }
    // Same head whatever the limit, as long as it fits.
    if let Some(&(_, first)) = complete_at.first() {
        ensure!(
            complete_at.iter().all(|&(_, len)| len == first),
            "head length depends on the limit: {complete_at:?}"
        );
    }
    check_scanner(data)
}

/// Inputs longer than this skip the scanner check (it parses every prefix).
const SCANNER_CHECK_MAX: usize = 1024;

/// The connection parses a growing buffer only when `HeadScanner` asks or
/// at the limit; that must reach the verdict parsing after every byte
/// reaches first, whatever the read size: the same complete head, never
/// missed, and the same refusal, unless that refusal is for a field of a
/// head that has not ended yet (found when it ends, reaches the limit or
/// times out).
fn check_scanner(data: &[u8]) -> Result<(), String> {
    if data.len() > SCANNER_CHECK_MAX {
        return Ok(());
    }
    for max_head in LIMITS {
        let every = (1..=data.len()).find_map(|end| verdict(&data[..end], max_head));
        for step in [1, 7, 64] {
            let mut scanner = HeadScanner::default();
            let mut got = None;
            let mut end = 0;
            while end < data.len() && got.is_none() {
                end = (end + step).min(data.len());
                if scanner.scan(&data[..end]) || end >= max_head {
                    got = verdict(&data[..end], max_head);
                }
            }
            // A read that overshoots the limit may show a grammar error
            // past it before the limit is judged, as it always could.
            let over_limit = matches!(
                every,
                Some(Err(ParseError::HeadTooLarge | ParseError::TargetTooLong))
            ) && matches!(got, Some(Err(_)));
            // A bad field inside a head that has not ended yet is found
            // when it ends or reaches the limit (or the client times out).
            let error_later = matches!(every, Some(Err(_))) && got.is_none();
            ensure!(
                got == every || over_limit || error_later,
                "reads of {step} (limit {max_head}): scanner-driven parsing gives {got:?}, \
                 parsing after every byte {every:?}"
            );
        }
    }
    Ok(())
}

/// What the connection acts on: the head's length, or the error; `None`
/// while `Partial`.
fn verdict(buf: &[u8], max_head: usize) -> Option<Result<usize, ParseError>> {
    match parse(buf, max_head) {
        Ok(Parsed::Partial) => None,
        Ok(Parsed::Complete { len, .. }) => Some(Ok(len)),
        Err(e) => Some(Err(e)),
    }
}

fn check_head(head: &RequestHead, raw: &[u8]) -> Result<(), String> {
    let mut skip = 0;
    while raw[skip..].starts_with(b"\r\n") || raw[skip..].starts_with(b"\n") {
        skip += if raw[skip] == b'\r' { 2 } else { 1 };
    }
    let line = &raw[skip..];
    let method = head.method.as_str();
    ensure!(
        line.starts_with(method.as_bytes()),
        "method {method} is not at the start of {:?}",
        String::from_utf8_lossy(&line[..line.len().min(32)])
    );
    ensure!(
        contains(line, head.target().as_bytes()),
        "target {:?} not in the input",
        head.target()
    );
    ensure!(!head.target().is_empty(), "empty target");
    let target = head.target().as_bytes();
    let synthesized_root = head.path() == "/" && !head.target().starts_with('/');
    ensure!(
        synthesized_root || contains(target, head.path().as_bytes()),
        "path {:?} not in target {:?}",
        head.path(),
        head.target()
    );
    ensure!(
        head.path().starts_with('/')
            || head.path() == "*"
            || head.method == stoke::http::request::Method::Connect,
        "path {:?} neither origin-form nor '*'",
        head.path()
    );
    if let Some(query) = head.query() {
        ensure!(
            contains(target, query.as_bytes()) && head.target().contains('?'),
            "query {query:?} not in target {:?}",
            head.target()
        );
        ensure!(
            !head.path().contains('?'),
            "path {:?} still holds the query",
            head.path()
        );
    }
    ensure!(
        head.minor_version <= 1,
        "minor version {}",
        head.minor_version
    );
    if head.body == BodyFraming::Chunked {
        ensure!(head.minor_version == 1, "chunked framing on HTTP/1.0");
    }
    ensure!(
        head.body != BodyFraming::Length(0),
        "Content-Length: 0 must map to BodyFraming::None"
    );
    for value in [
        head.host(),
        head.range(),
        head.if_none_match(),
        head.user_agent(),
        head.accept_encoding(),
    ]
    .into_iter()
    .flatten()
    {
        ensure!(
            !value.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0),
            "field value {value:?} carries CR, LF or NUL"
        );
    }
    Ok(())
}
