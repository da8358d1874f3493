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

/// Regression (last-modified-before-1970): httpdate panicked formatting an
/// mtime before 1970, so such a file always got a 500 and a logged panic.
/// It is served; it has no `Last-Modified` (no client could send it back in
/// a form we parse), and its ETag still works.
#[test]
fn file_dated_before_1970_is_served_without_last_modified() {
    let root = TempDir::new("cond-1969");
    set_mtime(
        &root.write("old.txt", "from 1969"),
        SystemTime::UNIX_EPOCH - Duration::from_secs(86_400),
    );
    let server = TestServer::start(root.path());
    for method in ["GET", "HEAD"] {
        let (r, rest) = exchange(server.addr, &request(method, "/old.txt", &[]));
        assert_eq!(r.status, 200, "{method}");
        assert_eq!(r.header("last-modified"), None, "{method}");
        if method == "GET" {
            assert_eq!(rest, b"from 1969");
        }
    }
    let etag = etag_of(server.addr, "/old.txt");
    let r = get(
        server.addr,
        "/old.txt",
        &[&format!("If-None-Match: {etag}")],
    );
    assert_eq!(r.status, 304);
    // With no modification date, the date conditions are ignored.
    let r = get(
        server.addr,
        "/old.txt",
        &["If-Unmodified-Since: Thu, 01 Jan 1970 00:00:00 GMT"],
    );
    assert_eq!(r.status, 200);
}

/// The `Date` and `Last-Modified` of a response, parsed.
fn date_and_last_modified(r: &RawResponse) -> (SystemTime, SystemTime) {
    let parse = |name| httpdate::parse_http_date(r.header(name).unwrap()).unwrap();
    (parse("date"), parse("last-modified"))
}

/// Regression (last-modified-in-the-future): a future mtime was sent as is,
/// later than the response's `Date`; RFC 9110 §8.8.2.1 says to send `Date`.
#[test]
fn future_last_modified_is_clamped_to_date() {
    let root = TempDir::new("cond-future");
    // 2400-01-01: far ahead, and within what every Linux filesystem stores.
    let future = SystemTime::UNIX_EPOCH + Duration::from_secs(13_569_465_600);
    set_mtime(&root.write("f.txt", "later"), future);
    let server = TestServer::start(root.path());
    let before = SystemTime::now() - Duration::from_secs(1);
    for method in ["GET", "HEAD"] {
        let (r, _) = exchange(server.addr, &request(method, "/f.txt", &[]));
        assert_eq!(r.status, 200, "{method}");
        let (date, lm) = date_and_last_modified(&r);
        assert!(
            lm <= date,
            "{method}: Last-Modified {lm:?} after Date {date:?}"
        );
        assert!(lm >= before, "{method}: Last-Modified is now, not earlier");
    }
    // The file's real (future) date is not a validator we sent, so If-Range
    // with it must not splice a range.
    let r = get(
        server.addr,
        "/f.txt",
        &["Range: bytes=0-1", &format!("If-Range: {}", date(future))],
    );
    assert_eq!((r.status, r.body.as_slice()), (200, &b"later"[..]));
}

/// A directory on a filesystem that keeps `t` as an mtime (ext4 stops at
/// 2446, tmpfs does not), or `None`.
fn root_keeping_mtime(t: SystemTime) -> Option<(TempDir, std::path::PathBuf)> {
    let shm = std::path::Path::new("/dev/shm");
    let candidates = [Some(TempDir::new("cond-y10k")), {
        shm.is_dir().then(|| {
            let dir = shm.join(format!("stoke-test-y10k-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            TempDir(dir)
        })
    }];
    for root in candidates.into_iter().flatten() {
        let path = root.write("y10k.txt", "far future");
        set_mtime(&path, t);
        if std::fs::metadata(&path).unwrap().modified().unwrap() == t {
            return Some((root, path));
        }
    }
    None
}

/// Regression (last-modified-year-10000): httpdate panicked formatting an
/// mtime at or after the year 10000, so the file always got a 500.
#[test]
fn file_dated_after_year_9999_is_served() {
    // 10000-01-02T00:00:00.000000005Z
    let t = SystemTime::UNIX_EPOCH + Duration::new(253_402_387_200, 5);
    let Some((root, _path)) = root_keeping_mtime(t) else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI needs a filesystem with 64-bit timestamps (tmpfs on /dev/shm)"
        );
        println!("SKIPPED: no filesystem here stores the year 10000");
        return;
    };
    let server = TestServer::start(root.path());
    for method in ["GET", "HEAD"] {
        let (r, rest) = exchange(server.addr, &request(method, "/y10k.txt", &[]));
        assert_eq!(r.status, 200, "{method}");
        let (date, lm) = date_and_last_modified(&r);
        assert!(lm <= date, "{method}");
        assert!(r.header("etag").is_some(), "{method}");
        if method == "GET" {
            assert_eq!(rest, b"far future");
        }
    }
}

/// Regression (etag-from-inode): the ETag was built from the inode, so two
/// instances serving the same deployed files sent different tags for the
/// same file. Copies with the same size and mtime (nanoseconds included)
/// now get the same tag, and a different nanosecond gives another.
#[test]
fn etag_is_the_same_for_copies_on_different_servers() {
    let t = SystemTime::UNIX_EPOCH + Duration::new(FIXED_MTIME, 123_456_789);
    let (a, b) = (TempDir::new("cond-copy-a"), TempDir::new("cond-copy-b"));
    for root in [&a, &b] {
        set_mtime(&root.write("same.txt", "deployed"), t);
        set_mtime(
            &root.write("nanos.txt", "deployed"),
            t + Duration::from_nanos(if std::ptr::eq(root, &a) { 0 } else { 1 }),
        );
    }
    // Both files exist at once, on one filesystem: different inodes.
    use std::os::unix::fs::MetadataExt;
    let ino = |root: &TempDir| {
        std::fs::metadata(root.path().join("same.txt"))
            .unwrap()
            .ino()
    };
    assert_ne!(ino(&a), ino(&b));
    let (sa, sb) = (TestServer::start(a.path()), TestServer::start(b.path()));
    assert_eq!(etag_of(sa.addr, "/same.txt"), etag_of(sb.addr, "/same.txt"));
    assert_ne!(
        etag_of(sa.addr, "/nanos.txt"),
        etag_of(sb.addr, "/nanos.txt"),
        "a different nanosecond is a different version"
    );
    // A tag from one instance validates on the other.
    let tag = etag_of(sa.addr, "/same.txt");
    let r = get(sb.addr, "/same.txt", &[&format!("If-None-Match: {tag}")]);
    assert_eq!(r.status, 304);
}

/// Regression (if-range-date-weak-validator): If-Range with a date counted
/// even when Last-Modified fell in the response's own second, where the
/// file can change again without its date changing (RFC 9110 §8.8.2.2,
/// §13.1.5). Strong (a second or more before Date): 206. Weak: the whole file.
#[test]
fn if_range_date_counts_only_when_last_modified_is_strong() {
    let s = site();
    let lm = date(fixed());
    let r = get(
        s.server.addr,
        "/big.bin",
        &["Range: bytes=0-9", &format!("If-Range: {lm}")],
    );
    assert_eq!((r.status, r.body.as_slice()), (206, &s.big[..10]));

    // A file modified "now": while the server's clock is still in that
    // second, the date is weak. If the second rolls over before the answer
    // (its Date tells), the date became strong and we try again.
    let root = TempDir::new("cond-weak");
    let path = root.write("fresh.txt", "0123456789");
    let server = TestServer::start(root.path());
    for _ in 0..10 {
        let now = SystemTime::now();
        set_mtime(&path, now);
        let r = get(
            server.addr,
            "/fresh.txt",
            &["Range: bytes=0-1", &format!("If-Range: {}", date(now))],
        );
        let answered = httpdate::parse_http_date(r.header("date").unwrap()).unwrap();
        if answered != httpdate::parse_http_date(&date(now)).unwrap() {
            continue;
        }
        assert_eq!((r.status, r.body.as_slice()), (200, &b"0123456789"[..]));
        return;
    }
    panic!("the clock's second rolled over during each of 10 requests");
}
