//! Byte ranges over real sockets (RFC 9110 §14): `Accept-Ranges: bytes`;
//! single ranges → 206 with exact `Content-Range` and bytes, for a small
//! (in-memory) and a large (sendfile) file; several ranges → a well-formed
//! `multipart/byteranges` body, coalesced; hundreds of overlapping ranges
//! cannot amplify the response; 416 / invalid / If-Range / HEAD semantics;
//! curl `-r` as a real client.
mod common;
use common::*;

use std::io::{BufReader, Write};
use std::net::SocketAddr;
use std::process::Command;

const SMALL_LEN: usize = 1000;
/// Well above limits::SMALL_FILE (16 KiB), so bodies go out via sendfile.
const BIG_LEN: usize = 100 * 1024 + 7;

struct Site {
    _root: TempDir,
    server: TestServer,
    small: Vec<u8>,
    big: Vec<u8>,
}

fn site() -> Site {
    let root = TempDir::new("ranges");
    let small = pattern(SMALL_LEN, 11);
    let big = pattern(BIG_LEN, 12);
    root.write("small.bin", &small);
    let big_path = root.write("big.bin", &big);
    // An mtime well in the past: a Last-Modified in the current second is
    // a weak validator, which If-Range with a date must not accept.
    let old = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_577_836_800);
    std::fs::File::options()
        .write(true)
        .open(&big_path)
        .unwrap()
        .set_modified(old)
        .unwrap();
    let server = TestServer::start(root.path());
    Site {
        _root: root,
        server,
        small,
        big,
    }
}

/// Inclusive `(first, last)` the server must pick for `spec` on `len` bytes.
fn expected(spec: &str, len: usize) -> (usize, usize) {
    let (a, b) = spec.split_once('-').unwrap();
    match (a.is_empty(), b.is_empty()) {
        (true, _) => (len.saturating_sub(b.parse().unwrap()), len - 1),
        (false, true) => (a.parse().unwrap(), len - 1),
        (false, false) => (a.parse().unwrap(), b.parse::<usize>().unwrap().min(len - 1)),
    }
}

#[test]
fn full_response_advertises_ranges() {
    let s = site();
    for (path, body) in [("/small.bin", &s.small), ("/big.bin", &s.big)] {
        let r = get(s.server.addr, path, &[]);
        assert_eq!(r.status, 200);
        assert_eq!(r.header("accept-ranges"), Some("bytes"));
        assert_eq!(&r.body, body);
    }
}

#[test]
fn single_ranges_table() {
    let s = site();
    let specs = [
        "0-0", "0-99", "1-1", "100-", "-100", "-1", "500-999", "0-999999", "-999999", "999-",
    ];
    let big_specs = ["16383-16384", "20000-20099", "16384-", "-20000", "0-65535"];
    for (path, body) in [("/small.bin", &s.small), ("/big.bin", &s.big)] {
        let len = body.len();
        let extra: &[&str] = if len == BIG_LEN { &big_specs } else { &[] };
        for spec in specs.iter().chain(extra) {
            let r = get(s.server.addr, path, &[&format!("Range: bytes={spec}")]);
            let (first, last) = expected(spec, len);
            assert_eq!(r.status, 206, "{path} {spec}");
            assert_eq!(
                r.header("content-range"),
                Some(format!("bytes {first}-{last}/{len}").as_str()),
                "{path} {spec}"
            );
            assert_eq!(
                r.header("content-length"),
                Some((last - first + 1).to_string().as_str())
            );
            assert_eq!(r.header("accept-ranges"), Some("bytes"));
            assert!(r.body == body[first..=last], "{path} {spec}: bytes differ");
        }
    }
}

/// Several ranged responses on one keep-alive connection: framing must stay
/// exact whether the body went through memory or sendfile.
#[test]
fn ranges_on_one_keep_alive_connection() {
    let s = site();
    let mut stream = connect(s.server.addr);
    let specs = [
        ("/big.bin", "0-9"),
        ("/big.bin", "50000-90000"),
        ("/small.bin", "-10"),
        ("/big.bin", "-1"),
    ];
    let mut pipelined = String::new();
    for (path, spec) in specs {
        pipelined.push_str(&format!(
            "GET {path} HTTP/1.1\r\nHost: t\r\nRange: bytes={spec}\r\n\r\n"
        ));
    }
    stream.write_all(pipelined.as_bytes()).unwrap();
    let mut reader = BufReader::new(stream);
    for (path, spec) in specs {
        let body = if path == "/big.bin" { &s.big } else { &s.small };
        let r = read_response(&mut reader, false).unwrap();
        let (first, last) = expected(spec, body.len());
        assert_eq!(r.status, 206, "{path} {spec}");
        assert!(r.body == body[first..=last], "{path} {spec}");
    }
    // Then multipart answers (sendfile parts between in-memory boundaries),
    // each followed by a single range, on the same connection.
    let mut stream = reader.into_inner();
    let req = "GET /big.bin HTTP/1.1\r\nHost: t\r\nRange: bytes=0-9,50000-90000\r\n\r\n\
               GET /small.bin HTTP/1.1\r\nHost: t\r\nRange: bytes=1-2\r\n\r\n";
    stream.write_all(req.repeat(3).as_bytes()).unwrap();
    let mut reader = BufReader::new(stream);
    for _ in 0..3 {
        let r = read_response(&mut reader, false).unwrap();
        let parts = parse_multipart(&r);
        assert_eq!(parts.len(), 2);
        assert!(parts[1].bytes == s.big[50000..=90000]);
        let r = read_response(&mut reader, false).unwrap();
        assert_eq!(r.body, s.small[1..3]);
    }
}

/// A matching If-None-Match wins over Range: 304, not 206.
#[test]
fn not_modified_beats_range() {
    let s = site();
    let etag = get(s.server.addr, "/big.bin", &[])
        .header("etag")
        .unwrap()
        .to_owned();
    let r = get(
        s.server.addr,
        "/big.bin",
        &["Range: bytes=0-9", &format!("If-None-Match: {etag}")],
    );
    assert_eq!(r.status, 304);
    assert!(r.header("content-range").is_none());
    let r = get(
        s.server.addr,
        "/big.bin",
        &["Range: bytes=0-9", "If-None-Match: \"other\""],
    );
    assert_eq!(r.status, 206);
    assert!(r.body == s.big[..10]);
}

/// One part of a multipart/byteranges body.
#[derive(Debug)]
struct Part {
    content_type: Option<String>,
    content_range: String,
    bytes: Vec<u8>,
}

fn find(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    hay.get(from..)?
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|i| i + from)
}

/// Parses a multipart/byteranges body strictly (RFC 2046 framing): each
/// part's length comes from its own Content-Range, and the bytes after it
/// must be CRLF + the next delimiter.
fn parse_multipart(r: &RawResponse) -> Vec<Part> {
    let ct = r.header("content-type").expect("Content-Type");
    assert!(
        ct.starts_with("multipart/byteranges"),
        "content type {ct:?}"
    );
    let boundary = ct
        .split(';')
        .find_map(|p| p.trim().strip_prefix("boundary="))
        .expect("boundary parameter")
        .trim_matches('"');
    let delim = format!("--{boundary}");
    let body = &r.body;
    let mut pos = find(body, delim.as_bytes(), 0).expect("first delimiter");
    assert!(
        body[..pos].iter().all(|b| b.is_ascii_whitespace()),
        "only whitespace before the first delimiter"
    );
    let mut parts = Vec::new();
    loop {
        pos += delim.len();
        if body[pos..].starts_with(b"--") {
            let tail = &body[pos + 2..];
            assert!(
                tail.iter().all(|b| b.is_ascii_whitespace()),
                "junk after the close delimiter: {tail:?}"
            );
            return parts;
        }
        assert!(body[pos..].starts_with(b"\r\n"), "CRLF after delimiter");
        pos += 2;
        let head_end = find(body, b"\r\n\r\n", pos).expect("part head end");
        let head = String::from_utf8(body[pos..head_end].to_vec()).unwrap();
        let field = |name: &str| {
            head.lines().find_map(|l| {
                let (n, v) = l.split_once(':')?;
                n.trim()
                    .eq_ignore_ascii_case(name)
                    .then(|| v.trim().to_owned())
            })
        };
        let content_range = field("content-range").expect("part Content-Range");
        let (first, last) = content_range
            .strip_prefix("bytes ")
            .and_then(|r| r.split('/').next())
            .and_then(|r| r.split_once('-'))
            .map(|(a, b)| (a.parse::<usize>().unwrap(), b.parse::<usize>().unwrap()))
            .expect("range in Content-Range");
        let start = head_end + 4;
        let end = start + (last - first + 1);
        parts.push(Part {
            content_type: field("content-type"),
            content_range: content_range.clone(),
            bytes: body[start..end].to_vec(),
        });
        pos = end;
        assert!(body[pos..].starts_with(b"\r\n"), "CRLF before delimiter");
        pos += 2;
        assert!(
            body[pos..].starts_with(delim.as_bytes()),
            "delimiter after part {content_range}"
        );
    }
}

/// (path, Range value, expected inclusive parts after sorting and coalescing)
type MultipartCase = (&'static str, &'static str, Vec<(usize, usize)>);

#[test]
fn multipart_byteranges_table() {
    let s = site();
    let cases: Vec<MultipartCase> = vec![
        ("/small.bin", "bytes=0-9,100-199", vec![(0, 9), (100, 199)]),
        ("/small.bin", "bytes=0-9,-10", vec![(0, 9), (990, 999)]),
        // Unsorted input comes back sorted.
        ("/small.bin", "bytes=500-510,0-0", vec![(0, 0), (500, 510)]),
        // Overlapping and adjacent ranges are merged, the rest kept.
        (
            "/small.bin",
            "bytes=0-9,5-30,31-40,100-110",
            vec![(0, 40), (100, 110)],
        ),
        // An unsatisfiable element is dropped, the others served.
        (
            "/small.bin",
            "bytes=0-1,5000-6000,9-9",
            vec![(0, 1), (9, 9)],
        ),
        (
            "/big.bin",
            "bytes=0-9,20000-20099,-5",
            vec![(0, 9), (20000, 20099), (BIG_LEN - 5, BIG_LEN - 1)],
        ),
        (
            "/big.bin",
            "bytes=1-40000,60000-",
            vec![(1, 40000), (60000, BIG_LEN - 1)],
        ),
    ];
    for (path, header, want) in cases {
        let body = if path == "/big.bin" { &s.big } else { &s.small };
        let len = body.len();
        let r = get(s.server.addr, path, &[&format!("Range: {header}")]);
        assert_eq!(r.status, 206, "{path} {header}");
        assert!(
            r.header("content-range").is_none(),
            "no top-level Content-Range"
        );
        let parts = parse_multipart(&r);
        assert_eq!(parts.len(), want.len(), "{path} {header}: {parts:?}");
        for (part, (first, last)) in parts.iter().zip(&want) {
            assert_eq!(
                part.content_range,
                format!("bytes {first}-{last}/{len}"),
                "{path} {header}"
            );
            assert_eq!(
                part.content_type.as_deref(),
                Some("application/octet-stream"),
                "{path} {header}"
            );
            assert!(part.bytes == body[*first..=*last], "{path} {header}: bytes");
        }
    }
}

#[test]
fn coalesced_to_one_range_is_a_plain_206() {
    let s = site();
    for (header, first, last) in [
        ("bytes=0-9,10-19", 0, 19),
        ("bytes=0-50,20-100", 0, 100),
        ("bytes=5-5,5-5,5-5", 5, 5),
        ("bytes=-100,900-", 900, 999),
    ] {
        let r = get(s.server.addr, "/small.bin", &[&format!("Range: {header}")]);
        assert_eq!(r.status, 206, "{header}");
        assert_eq!(
            r.header("content-range"),
            Some(format!("bytes {first}-{last}/{SMALL_LEN}").as_str()),
            "{header}"
        );
        assert!(r.body == s.small[first..=last], "{header}");
    }
}

/// CVE-2011-3192 style: many overlapping ranges must not multiply the
/// response size.
#[test]
fn overlapping_ranges_do_not_amplify() {
    let s = site();
    let headers = [
        vec!["0-"; 200].join(","),
        (0..200)
            .map(|i| format!("{i}-{}", i + 1))
            .collect::<Vec<_>>()
            .join(","),
        (0..200)
            .map(|i| format!("0-{}", BIG_LEN - 1 - i))
            .collect::<Vec<_>>()
            .join(","),
        vec!["-50000"; 200].join(","),
    ];
    for (path, len) in [("/big.bin", BIG_LEN), ("/small.bin", SMALL_LEN)] {
        for header in &headers {
            let r = get(s.server.addr, path, &[&format!("Range: bytes={header}")]);
            assert!(
                r.status == 200 || r.status == 206,
                "{path}: status {}",
                r.status
            );
            assert!(
                r.body.len() <= len + 512,
                "{path}: {} body bytes for a {len}-byte file",
                r.body.len()
            );
        }
    }
}

#[test]
fn unsatisfiable_is_416() {
    let s = site();
    for (path, len) in [("/small.bin", SMALL_LEN), ("/big.bin", BIG_LEN)] {
        for spec in [
            format!("{len}-"),
            format!("{}-{}", len + 10, len + 20),
            "-0".to_owned(),
            format!("{len}-,{}-", len + 1),
        ] {
            let r = get(s.server.addr, path, &[&format!("Range: bytes={spec}")]);
            assert_eq!(r.status, 416, "{path} {spec}");
            assert_eq!(
                r.header("content-range"),
                Some(format!("bytes */{len}").as_str()),
                "{path} {spec}"
            );
            let cl: usize = r.header("content-length").unwrap().parse().unwrap();
            assert_eq!(cl, r.body.len());
        }
    }
    // An empty file can satisfy no range.
    let root = TempDir::new("ranges-empty");
    root.write("empty", "");
    let server = TestServer::start(root.path());
    let r = get(server.addr, "/empty", &["Range: bytes=0-"]);
    assert_eq!(r.status, 416);
    assert_eq!(r.header("content-range"), Some("bytes */0"));
}

#[test]
fn invalid_range_syntax_serves_full() {
    let s = site();
    for header in [
        "bytes=5-4",
        "bytes=abc",
        "bytes=",
        "bytes=1",
        "bytes=--1",
        "items=0-1",
        "bytes 0-1",
        "bytes=0-1;x",
        "bytes=0x10-20",
        "bytes=18446744073709551616-",
    ] {
        let r = get(s.server.addr, "/small.bin", &[&format!("Range: {header}")]);
        assert_eq!(r.status, 200, "{header}");
        assert!(r.header("content-range").is_none(), "{header}");
        assert_eq!(r.body, s.small, "{header}");
    }
}

#[test]
fn if_range_table() {
    let s = site();
    let full = get(s.server.addr, "/big.bin", &[]);
    let etag = full.header("etag").unwrap().to_owned();
    let lm = full.header("last-modified").unwrap().to_owned();
    let lm_time = httpdate::parse_http_date(&lm).unwrap();
    let other_date = httpdate::fmt_http_date(lm_time + std::time::Duration::from_secs(1));
    let cases = [
        (etag.clone(), 206),
        (format!("W/{etag}"), 200),
        ("\"other\"".to_owned(), 200),
        (lm.clone(), 206),
        (other_date, 200),
        ("garbage".to_owned(), 200),
    ];
    for (value, want) in cases {
        let r = get(
            s.server.addr,
            "/big.bin",
            &["Range: bytes=100-199", &format!("If-Range: {value}")],
        );
        assert_eq!(r.status, want, "If-Range: {value}");
        if want == 206 {
            assert_eq!(
                r.header("content-range"),
                Some(format!("bytes 100-199/{BIG_LEN}").as_str())
            );
            assert!(r.body == s.big[100..200]);
        } else {
            assert!(r.header("content-range").is_none());
            assert!(r.body == s.big, "If-Range {value}: full body");
        }
    }
}

/// Reads a HEAD response and checks nothing follows it on the connection.
fn head_then_nothing(addr: SocketAddr, path: &str, range: &str) -> RawResponse {
    let mut stream = connect(addr);
    let req = format!("HEAD {path} HTTP/1.1\r\nHost: t\r\nRange: {range}\r\n\r\nGET /small.bin HTTP/1.1\r\nHost: t\r\nRange: bytes=0-0\r\nConnection: close\r\n\r\n");
    stream.write_all(req.as_bytes()).unwrap();
    let mut reader = BufReader::new(stream);
    let head = read_response(&mut reader, true).unwrap();
    // If HEAD leaked a body, this would parse body bytes as a status line.
    let next = read_response(&mut reader, false).unwrap();
    assert_eq!(next.status, 206, "next response on the connection");
    assert_eq!(next.header("content-range"), Some("bytes 0-0/1000"));
    head
}

#[test]
fn head_with_range_matches_get() {
    let s = site();
    for (path, range) in [
        ("/small.bin", "bytes=10-19"),
        ("/big.bin", "bytes=20000-"),
        ("/big.bin", "bytes=0-0,500-599"),
        ("/big.bin", "bytes=999999-"),
        ("/small.bin", "bytes=5-4"),
    ] {
        let got = get(s.server.addr, path, &[&format!("Range: {range}")]);
        let head = head_then_nothing(s.server.addr, path, range);
        assert_eq!(head.status, got.status, "{path} {range}");
        for name in [
            "content-length",
            "content-range",
            "content-type",
            "etag",
            "last-modified",
            "accept-ranges",
        ] {
            assert_eq!(
                head.header(name),
                got.header(name),
                "{path} {range}: {name}"
            );
        }
        assert_eq!(
            head.header("content-length")
                .map(|v| v.parse::<usize>().unwrap()),
            Some(got.body.len()),
            "{path} {range}"
        );
    }
}

#[test]
fn curl_range_requests() {
    if !have("curl") {
        assert!(std::env::var_os("CI").is_none(), "curl must exist in CI");
        println!("SKIPPED: curl not installed");
        return;
    }
    let s = site();
    for (path, body, range, first, last) in [
        ("/small.bin", &s.small, "0-99", 0, 99),
        ("/big.bin", &s.big, "0-99", 0, 99),
        ("/big.bin", &s.big, "20000-70000", 20000, 70000),
        ("/big.bin", &s.big, "-300", BIG_LEN - 300, BIG_LEN - 1),
    ] {
        let url = format!("http://{}{path}", s.server.addr);
        let out = Command::new("curl")
            .args(["-sS", "--max-time", "20", "-r", range, &url])
            .output()
            .expect("run curl");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.stdout == body[first..=last], "curl -r {range} {path}");
    }
    // A multi-range through curl is still a multipart body containing the parts.
    let url = format!("http://{}/small.bin", s.server.addr);
    let out = Command::new("curl")
        .args([
            "-sS",
            "--max-time",
            "20",
            "-D",
            "-",
            "-r",
            "0-9,500-509",
            &url,
        ])
        .output()
        .expect("run curl");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("HTTP/1.1 206"), "{text}");
    assert!(text.contains("multipart/byteranges; boundary="), "{text}");
    assert!(find(&out.stdout, &s.small[500..510], 0).is_some());
}
