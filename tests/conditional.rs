//! Validators and conditional requests over real sockets (RFC 9110 §8.8,
//! §13): every 200/206/304 carries a strong `ETag` and `Last-Modified`;
//! If-None-Match / If-Modified-Since give 304 (no body) for GET and HEAD;
//! If-Match / If-Unmodified-Since give 412; the §13.2.2 evaluation order
//! holds; and curl, as a real client, sees the same.
mod common;
use common::*;

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, SystemTime};

/// 2020-01-01T00:00:00Z: a whole-second mtime makes date arithmetic exact.
const FIXED_MTIME: u64 = 1_577_836_800;

fn set_mtime(path: &Path, t: SystemTime) {
    let f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    f.set_modified(t).unwrap();
}

fn fixed() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(FIXED_MTIME)
}

fn date(t: SystemTime) -> String {
    httpdate::fmt_http_date(t)
}

/// Sends `request` (which must ask for `Connection: close`) and returns the
/// head and everything after it up to EOF, so "no body" is really checked.
fn exchange(addr: SocketAddr, request: &str) -> (RawResponse, Vec<u8>) {
    let mut s = connect(addr);
    s.write_all(request.as_bytes()).unwrap();
    let mut all = Vec::new();
    s.read_to_end(&mut all).unwrap();
    let end = all
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("complete head")
        + 4;
    let head = read_response(&mut &all[..end], true).unwrap();
    (head, all[end..].to_vec())
}

fn request(method: &str, path: &str, extra: &[String]) -> String {
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n");
    for h in extra {
        req.push_str(h);
        req.push_str("\r\n");
    }
    req.push_str("\r\n");
    req
}

struct Site {
    _root: TempDir,
    server: TestServer,
    small: Vec<u8>,
    big: Vec<u8>,
}

/// `small.txt` (1000 B, in-memory path) and `big.bin` (40 KiB, sendfile
/// path), both with a fixed whole-second mtime.
fn site() -> Site {
    let root = TempDir::new("cond");
    let small = pattern(1000, 1);
    let big = pattern(40 * 1024, 2);
    set_mtime(&root.write("small.txt", &small), fixed());
    set_mtime(&root.write("big.bin", &big), fixed());
    let server = TestServer::start(root.path());
    Site {
        _root: root,
        server,
        small,
        big,
    }
}

fn etag_of(addr: SocketAddr, path: &str) -> String {
    let r = get(addr, path, &[]);
    assert_eq!(r.status, 200);
    r.header("etag").expect("ETag on 200").to_owned()
}

fn assert_validators(r: &RawResponse, what: &str) {
    let etag = r
        .header("etag")
        .unwrap_or_else(|| panic!("{what}: no ETag"));
    assert!(
        etag.starts_with('"') && etag.ends_with('"') && etag.len() > 2,
        "{what}: ETag must be strong and quoted: {etag}"
    );
    let lm = r
        .header("last-modified")
        .unwrap_or_else(|| panic!("{what}: no Last-Modified"));
    assert_eq!(
        httpdate::parse_http_date(lm).unwrap(),
        fixed(),
        "{what}: Last-Modified {lm}"
    );
}

#[test]
fn validators_on_200_206_and_304() {
    let s = site();
    for (path, body) in [("/small.txt", &s.small), ("/big.bin", &s.big)] {
        let ok = get(s.server.addr, path, &[]);
        assert_eq!(ok.status, 200, "{path}");
        assert_eq!(&ok.body, body, "{path}");
        assert_validators(&ok, &format!("200 {path}"));
        let etag = ok.header("etag").unwrap().to_owned();

        let partial = get(s.server.addr, path, &["Range: bytes=0-9"]);
        assert_eq!(partial.status, 206, "{path}");
        assert_validators(&partial, &format!("206 {path}"));
        assert_eq!(partial.header("etag"), Some(etag.as_str()));

        let (nm, rest) = exchange(
            s.server.addr,
            &request("GET", path, &[format!("If-None-Match: {etag}")]),
        );
        assert_eq!(nm.status, 304, "{path}");
        assert_validators(&nm, &format!("304 {path}"));
        assert_eq!(nm.header("etag"), Some(etag.as_str()));
        assert!(rest.is_empty(), "304 has no body: {rest:?}");
    }
}

#[test]
fn etag_is_stable_and_changes_with_content() {
    let root = TempDir::new("cond-change");
    let path = root.write("f.txt", "one");
    let server = TestServer::start(root.path());
    let first = etag_of(server.addr, "/f.txt");
    assert_eq!(
        first,
        etag_of(server.addr, "/f.txt"),
        "stable across requests"
    );
    std::fs::write(&path, "two!").unwrap();
    let second = etag_of(server.addr, "/f.txt");
    assert_ne!(first, second, "a changed file gets a new ETag");
    // The old tag no longer yields 304.
    let r = get(server.addr, "/f.txt", &[&format!("If-None-Match: {first}")]);
    assert_eq!((r.status, r.body.as_slice()), (200, &b"two!"[..]));
}

#[test]
fn if_none_match_table() {
    let s = site();
    let etag = etag_of(s.server.addr, "/small.txt");
    let cases: Vec<(String, u16)> = vec![
        (etag.clone(), 304),
        (format!("\"nope\", {etag}"), 304),
        (format!("\"a\",{etag},\"b\""), 304),
        ("*".into(), 304),
        (format!("W/{etag}"), 304), // weak comparison
        ("\"nope\"".into(), 200),
        ("\"nope\", W/\"other\"".into(), 200),
        (etag.trim_matches('"').to_owned(), 200), // unquoted: not an entity-tag
    ];
    for method in ["GET", "HEAD"] {
        for (value, want) in &cases {
            let (r, rest) = exchange(
                s.server.addr,
                &request(method, "/small.txt", &[format!("If-None-Match: {value}")]),
            );
            assert_eq!(r.status, *want, "{method} If-None-Match: {value}");
            if *want == 304 {
                assert_eq!(r.header("etag"), Some(etag.as_str()), "{value}");
                assert!(rest.is_empty(), "{method} 304 must have no body");
            } else if method == "GET" {
                assert_eq!(rest, s.small, "{value}");
            } else {
                assert!(rest.is_empty(), "HEAD has no body");
                assert_eq!(r.header("content-length"), Some("1000"));
            }
        }
    }
}

#[test]
fn if_modified_since_table() {
    let s = site();
    let etag = etag_of(s.server.addr, "/big.bin");
    let lm = date(fixed());
    let earlier = date(fixed() - Duration::from_secs(1));
    let later = date(fixed() + Duration::from_secs(86_400));
    let cases: Vec<(Vec<String>, u16, &str)> = vec![
        (vec![format!("If-Modified-Since: {lm}")], 304, "equal"),
        (vec![format!("If-Modified-Since: {later}")], 304, "later"),
        (
            vec![format!("If-Modified-Since: {earlier}")],
            200,
            "earlier",
        ),
        (
            vec!["If-Modified-Since: yesterday-ish".into()],
            200,
            "unparseable date is ignored",
        ),
        (
            vec!["If-Modified-Since: Sunday, 06-Nov-94 08:49:37 GMT".into()],
            200,
            "rfc850 date in the past",
        ),
        (
            vec![
                format!("If-Modified-Since: {later}"),
                "If-None-Match: \"other\"".into(),
            ],
            200,
            "IMS ignored when If-None-Match present (non-matching)",
        ),
        (
            vec![
                format!("If-Modified-Since: {earlier}"),
                format!("If-None-Match: {etag}"),
            ],
            304,
            "If-None-Match decides, not IMS",
        ),
    ];
    for method in ["GET", "HEAD"] {
        for (headers, want, what) in &cases {
            let (r, rest) = exchange(s.server.addr, &request(method, "/big.bin", headers));
            assert_eq!(r.status, *want, "{method} {what}");
            if *want == 304 {
                assert!(rest.is_empty(), "{what}: no body on 304");
                assert_eq!(r.header("etag"), Some(etag.as_str()), "{what}");
                assert_eq!(r.header("last-modified"), Some(lm.as_str()), "{what}");
            } else if method == "GET" {
                assert_eq!(rest, s.big, "{what}");
            }
        }
    }
}

/// A file written just now has a sub-second mtime; echoing its
/// Last-Modified (whole seconds) back must still count as "not modified".
#[test]
fn if_modified_since_ignores_subsecond_mtime() {
    let root = TempDir::new("cond-subsec");
    let path = root.write("f.txt", "fresh");
    set_mtime(
        &path,
        SystemTime::UNIX_EPOCH + Duration::new(FIXED_MTIME, 900_000_000),
    );
    let server = TestServer::start(root.path());
    let lm = get(server.addr, "/f.txt", &[])
        .header("last-modified")
        .unwrap()
        .to_owned();
    assert_eq!(lm, date(fixed()));
    let r = get(
        server.addr,
        "/f.txt",
        &[&format!("If-Modified-Since: {lm}")],
    );
    assert_eq!(r.status, 304);
    let r = get(
        server.addr,
        "/f.txt",
        &[&format!("If-Unmodified-Since: {lm}")],
    );
    assert_eq!(r.status, 200);
}

#[test]
fn if_match_and_if_unmodified_since_table() {
    let s = site();
    let etag = etag_of(s.server.addr, "/small.txt");
    let lm = date(fixed());
    let earlier = date(fixed() - Duration::from_secs(1));
    let later = date(fixed() + Duration::from_secs(60));
    let cases: Vec<(Vec<String>, u16, &str)> = vec![
        (vec![format!("If-Match: {etag}")], 200, "IM match"),
        (vec![format!("If-Match: \"x\", {etag}")], 200, "IM in list"),
        (vec!["If-Match: *".into()], 200, "IM star"),
        (vec!["If-Match: \"x\"".into()], 412, "IM mismatch"),
        (
            vec![format!("If-Match: W/{etag}")],
            412,
            "IM weak never matches",
        ),
        (vec![format!("If-Unmodified-Since: {lm}")], 200, "IUS equal"),
        (
            vec![format!("If-Unmodified-Since: {later}")],
            200,
            "IUS later",
        ),
        (
            vec![format!("If-Unmodified-Since: {earlier}")],
            412,
            "IUS earlier",
        ),
        (
            vec!["If-Unmodified-Since: soon".into()],
            200,
            "IUS unparseable",
        ),
        (
            vec![
                format!("If-Match: {etag}"),
                format!("If-Unmodified-Since: {earlier}"),
            ],
            200,
            "IUS ignored when If-Match present",
        ),
        // RFC 9110 §13.2.2: steps 1-2 before 3-4.
        (
            vec!["If-Match: \"x\"".into(), format!("If-None-Match: {etag}")],
            412,
            "IM failing beats INM matching",
        ),
        (
            vec![
                format!("If-Unmodified-Since: {earlier}"),
                format!("If-None-Match: {etag}"),
            ],
            412,
            "IUS failing beats INM matching",
        ),
        (
            vec![
                format!("If-Match: {etag}"),
                format!("If-None-Match: {etag}"),
            ],
            304,
            "IM passing then INM matching",
        ),
        (
            vec![
                "If-Match: \"x\"".into(),
                format!("If-Modified-Since: {later}"),
            ],
            412,
            "IM failing beats IMS",
        ),
        // A 412 wins over a Range.
        (
            vec!["If-Match: \"x\"".into(), "Range: bytes=0-1".into()],
            412,
            "IM failing with Range",
        ),
    ];
    for method in ["GET", "HEAD"] {
        for (headers, want, what) in &cases {
            let (r, rest) = exchange(s.server.addr, &request(method, "/small.txt", headers));
            assert_eq!(r.status, *want, "{method} {what}");
            match (*want, method) {
                (200, "GET") => assert_eq!(rest, s.small, "{what}"),
                (412, "GET") => {
                    let len: usize = r.header("content-length").unwrap().parse().unwrap();
                    assert_eq!(rest.len(), len, "{what}: 412 body matches its length");
                }
                (_, "HEAD") | (304, _) => assert!(rest.is_empty(), "{method} {what}"),
                _ => {}
            }
        }
    }
}

/// Conditionals on a missing file: `If-None-Match: *` must not turn a 404
/// into a 304.
#[test]
fn conditionals_on_missing_file_are_404() {
    let s = site();
    for h in [
        "If-None-Match: *",
        "If-Match: *",
        "If-Modified-Since: Thu, 01 Jan 2099 00:00:00 GMT",
    ] {
        assert_eq!(get(s.server.addr, "/missing", &[h]).status, 404, "{h}");
    }
}

fn curl_available() -> bool {
    if have("curl") {
        return true;
    }
    assert!(std::env::var_os("CI").is_none(), "curl must exist in CI");
    println!("SKIPPED: curl not installed");
    false
}

fn curl(args: &[&str]) -> Vec<u8> {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "20"])
        .args(args)
        .output()
        .expect("run curl");
    assert!(
        out.status.success(),
        "curl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn status_of(curl_dump: &[u8]) -> u16 {
    let text = String::from_utf8_lossy(curl_dump);
    let line = text.lines().next().unwrap_or("");
    line.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap()
}

#[test]
fn curl_if_none_match_and_z() {
    if !curl_available() {
        return;
    }
    let s = site();
    let url = format!("http://{}/big.bin", s.server.addr);
    let etag = etag_of(s.server.addr, "/big.bin");

    let out = curl(&["-D", "-", "-o", "/dev/null", &url]);
    assert_eq!(status_of(&out), 200);
    let out = curl(&["-D", "-", "-H", &format!("If-None-Match: {etag}"), &url]);
    assert_eq!(status_of(&out), 304, "{}", String::from_utf8_lossy(&out));
    let text = String::from_utf8_lossy(&out);
    assert!(text.contains(&etag), "304 shows the ETag: {text}");
    assert!(text.ends_with("\r\n\r\n"), "no body after the 304 head");

    // curl -z FILE sends If-Modified-Since with FILE's mtime.
    let local = TempDir::new("cond-curl");
    let same = local.write("same", "x");
    set_mtime(&same, fixed());
    let out = curl(&["-D", "-", "-z", same.to_str().unwrap(), &url]);
    assert_eq!(status_of(&out), 304, "{}", String::from_utf8_lossy(&out));

    let older = local.write("older", "x");
    set_mtime(&older, fixed() - Duration::from_secs(3600));
    let out = curl(&[
        "-D",
        "-",
        "-o",
        "/dev/null",
        "-z",
        older.to_str().unwrap(),
        &url,
    ]);
    assert_eq!(status_of(&out), 200);
    // And the body curl downloads is the file.
    assert_eq!(curl(&["-z", older.to_str().unwrap(), &url]), s.big);
}
