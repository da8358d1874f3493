//! Error answers over raw sockets: each way a request can be wrong earns its
//! status code (400, 405, 413, 414, 417, 431, 501, 505), every error carries a
//! small HTML body whose length matches `Content-Length`, a head that can't
//! be trusted ends the connection (`Connection: close`, then EOF), and
//! request bodies on GET are skipped without desynchronizing pipelined
//! requests. Also: OPTIONS, absolute-form targets, `Expect: 100-continue`, and
//! any other expectation (417).
mod common;
use common::*;

use std::io::{BufReader, Read, Write};
use std::net::SocketAddr;

fn site() -> (TempDir, TestServer) {
    let root = TempDir::new("errors");
    root.write("index.html", "<p>home</p>");
    root.write("file.txt", "file body\n");
    root.write("x", "x");
    let server = TestServer::start(root.path());
    (root, server)
}

/// Sends raw bytes and reads everything until the server closes.
fn until_close(addr: SocketAddr, raw: &[u8]) -> Vec<u8> {
    let mut s = connect(addr);
    s.write_all(raw).unwrap();
    let mut all = Vec::new();
    // A reset after the full response is fine: we keep what arrived.
    let mut buf = [0u8; 8192];
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => all.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => panic!("read failed (server did not close?): {e}"),
        }
    }
    all
}

/// Parses every response in `bytes` (none may be a HEAD response).
fn responses(bytes: &[u8]) -> Vec<RawResponse> {
    let mut reader = bytes;
    let mut out = Vec::new();
    while !reader.is_empty() {
        out.push(read_response(&mut reader, false).unwrap());
    }
    out
}

/// An error page: HTML, small, and exactly as long as announced (checked by
/// `responses`, which fails on a short body and would leave trailing bytes
/// on a long one).
fn assert_error_page(r: &RawResponse, what: &str) {
    assert_eq!(
        r.header("content-type"),
        Some("text/html; charset=utf-8"),
        "{what}"
    );
    let len: usize = r.header("content-length").unwrap().parse().unwrap();
    assert_eq!(len, r.body.len(), "{what}");
    assert!(len > 0 && len < 1024, "{what}: small body, got {len}");
    let text = r.text();
    assert!(text.contains(&r.status.to_string()), "{what}: {text}");
}

#[test]
fn bad_heads_are_refused_and_close() {
    let (_root, server) = site();
    let long_target = format!("GET /{} HTTP/1.1\r\nHost: t\r\n\r\n", "a".repeat(9000));
    let big_head = format!(
        "GET / HTTP/1.1\r\nHost: t\r\nX-Big: {}\r\n\r\n",
        "b".repeat(9000)
    );
    let many_fields: String = (0..100).map(|i| format!("X-F{i}: v\r\n")).collect();
    let many_fields = format!("GET / HTTP/1.1\r\nHost: t\r\n{many_fields}\r\n");
    let cases: Vec<(&str, String, u16)> =
        vec![
        ("garbage line", "GARBAGE\r\n\r\n".into(), 400),
        ("no version", "GET /\r\nHost: t\r\n\r\n".into(), 400),
        ("extra token", "GET / HTTP/1.1 x\r\nHost: t\r\n\r\n".into(), 400),
        ("bad version token", "GET / HTXP/1.1\r\nHost: t\r\n\r\n".into(), 400),
        ("missing Host", "GET / HTTP/1.1\r\n\r\n".into(), 400),
        (
            "duplicate Host",
            "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n".into(),
            400,
        ),
        ("relative target", "GET index.html HTTP/1.1\r\nHost: t\r\n\r\n".into(), 400),
        ("asterisk GET", "GET * HTTP/1.1\r\nHost: t\r\n\r\n".into(), 400),
        ("space before colon", "GET / HTTP/1.1\r\nHost : t\r\n\r\n".into(), 400),
        (
            "obs-fold",
            "GET / HTTP/1.1\r\nHost: t\r\nX: a\r\n b\r\n\r\n".into(),
            400,
        ),
        (
            "CL and TE",
            "GET / HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"
                .into(),
            400,
        ),
        (
            "conflicting CL",
            "GET / HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n".into(),
            400,
        ),
        ("long target", long_target, 414),
        ("big head", big_head, 431),
        ("too many fields", many_fields, 431),
        ("unknown method", "BREW /pot HTTP/1.1\r\nHost: t\r\n\r\n".into(), 501),
        (
            "unknown transfer coding",
            "GET / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip, chunked\r\n\r\n".into(),
            501,
        ),
        ("HTTP/2.0", "GET / HTTP/2.0\r\nHost: t\r\n\r\n".into(), 505),
        ("HTTP/1.2", "GET / HTTP/1.2\r\nHost: t\r\n\r\n".into(), 505),
    ];
    for (what, raw, want) in cases {
        // A valid request pipelined behind the bad one must NOT be answered:
        // after a bad head the stream can't be trusted.
        let mut bytes = raw.into_bytes();
        bytes.extend_from_slice(b"GET /file.txt HTTP/1.1\r\nHost: t\r\n\r\n");
        let all = until_close(server.addr, &bytes);
        let rs = responses(&all);
        assert_eq!(rs.len(), 1, "{what}: exactly one response, then close");
        let r = &rs[0];
        assert_eq!(r.status, want, "{what}");
        assert_eq!(r.header("connection"), Some("close"), "{what}");
        assert_error_page(r, what);
    }
}

#[test]
fn unsupported_methods_get_405_with_allow() {
    let (_root, server) = site();
    // CONNECT in authority-form is well-formed, just not something we do.
    let r = roundtrip(
        server.addr,
        "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(r.status, 405);
    assert!(r.header("allow").is_some());
    for method in ["POST", "PUT", "DELETE", "PATCH", "TRACE"] {
        // Keep-alive: a 405 is a well-formed answer to a well-formed
        // request, so the next request on the connection is served.
        let raw = format!(
            "{method} /file.txt HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello\
             GET /file.txt HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
        );
        let rs = responses(&until_close(server.addr, raw.as_bytes()));
        assert_eq!(rs.len(), 2, "{method}");
        assert_eq!(rs[0].status, 405, "{method}");
        assert_error_page(&rs[0], method);
        let allow = rs[0].header("allow").expect("Allow on 405");
        for m in ["GET", "HEAD", "OPTIONS"] {
            assert!(allow.contains(m), "{method}: Allow {allow}");
        }
        assert!(!allow.contains(method), "{method}: Allow {allow}");
        assert_eq!(rs[1].status, 200, "{method}: next request");
        assert_eq!(rs[1].body, b"file body\n");
    }
}

#[test]
fn options_answers_204_with_allow() {
    let (_root, server) = site();
    for target in ["*", "/x", "/file.txt", "/missing"] {
        let raw = format!(
            "OPTIONS {target} HTTP/1.1\r\nHost: t\r\n\r\nGET /x HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
        );
        let rs = responses(&until_close(server.addr, raw.as_bytes()));
        assert_eq!(
            rs.len(),
            2,
            "{target}: 204 has no body, next request follows"
        );
        assert_eq!(rs[0].status, 204, "OPTIONS {target}");
        let allow = rs[0].header("allow").expect("Allow");
        assert!(allow.contains("GET") && allow.contains("HEAD"), "{allow}");
        assert!(rs[0].body.is_empty());
        assert_eq!((rs[1].status, rs[1].body.as_slice()), (200, &b"x"[..]));
    }
}

#[test]
fn not_found_pages_and_head() {
    let (_root, server) = site();
    let r = get(server.addr, "/missing.txt", &[]);
    assert_eq!(r.status, 404);
    assert_error_page(&r, "404");
    let r = get(server.addr, "/%zz", &[]);
    assert_eq!(r.status, 400);
    assert_error_page(&r, "bad escape");
    // HEAD of an error: the same length, no body, connection still usable.
    let mut s = connect(server.addr);
    s.write_all(b"HEAD /missing.txt HTTP/1.1\r\nHost: t\r\n\r\nGET /x HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    let mut reader = BufReader::new(s);
    let head = read_response(&mut reader, true).unwrap();
    assert_eq!(head.status, 404);
    let len: usize = head.header("content-length").unwrap().parse().unwrap();
    assert!(len > 0);
    let next = read_response(&mut reader, false).unwrap();
    assert_eq!((next.status, next.body.as_slice()), (200, &b"x"[..]));
}

#[test]
fn absolute_form_is_served() {
    let (_root, server) = site();
    for target in [
        "http://t/file.txt",
        "HTTP://other.example:8080/file.txt",
        "http://t/file.txt?q=1",
    ] {
        let r = roundtrip(
            server.addr,
            &format!("GET {target} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"),
        );
        assert_eq!(
            (r.status, r.body.as_slice()),
            (200, &b"file body\n"[..]),
            "{target}"
        );
    }
    let r = roundtrip(
        server.addr,
        "GET http://t HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    );
    assert_eq!((r.status, r.body.as_slice()), (200, &b"<p>home</p>"[..]));
}

#[test]
fn get_body_is_skipped_and_pipelining_continues() {
    let (_root, server) = site();
    // The body looks like a request on purpose: it must not be parsed as one.
    let body = "GET /x HTTP/1.1\r\nHost: t\r\n\r\n";
    let raw = format!(
        "GET /file.txt HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n{body}\
         GET /index.html HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let rs = responses(&until_close(server.addr, raw.as_bytes()));
    let got: Vec<(u16, &[u8])> = rs.iter().map(|r| (r.status, r.body.as_slice())).collect();
    assert_eq!(
        got,
        vec![(200, &b"file body\n"[..]), (200, &b"<p>home</p>"[..])]
    );
}

/// A body sent in pieces after the response was already written.
#[test]
fn get_body_arriving_late_is_skipped() {
    let (_root, server) = site();
    let mut s = connect(server.addr);
    s.write_all(b"GET /file.txt HTTP/1.1\r\nHost: t\r\nContent-Length: 100000\r\n\r\n")
        .unwrap();
    let mut reader = BufReader::new(s.try_clone().unwrap());
    let r = read_response(&mut reader, false).unwrap();
    assert_eq!(r.status, 200);
    for _ in 0..10 {
        s.write_all(&[b'Z'; 10_000]).unwrap();
    }
    s.write_all(b"GET /x HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
    let r = read_response(&mut reader, false).unwrap();
    assert_eq!((r.status, r.body.as_slice()), (200, &b"x"[..]));
}

#[test]
fn huge_get_body_is_413_and_close() {
    let (_root, server) = site();
    let raw = "GET /file.txt HTTP/1.1\r\nHost: t\r\nContent-Length: 1048577\r\n\r\nsome of it";
    let rs = responses(&until_close(server.addr, raw.as_bytes()));
    assert_eq!(rs.len(), 1);
    assert_eq!(rs[0].status, 413);
    assert_eq!(rs[0].header("connection"), Some("close"));
    assert_error_page(&rs[0], "413");
    // Exactly 1 MiB is still skipped.
    let raw = format!(
        "GET /x HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n",
        1024 * 1024
    );
    let mut bytes = raw.into_bytes();
    bytes.extend(std::iter::repeat_n(b'.', 1024 * 1024));
    bytes.extend_from_slice(b"GET /file.txt HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    let rs = responses(&until_close(server.addr, &bytes));
    let statuses: Vec<u16> = rs.iter().map(|r| r.status).collect();
    assert_eq!(statuses, vec![200, 200]);
}

#[test]
fn expect_100_continue_never_hangs() {
    let (_root, server) = site();
    let mut s = connect(server.addr);
    // The body is withheld until the server says something: a server that
    // waits for the body while the client waits for "100 Continue" would
    // hang here (bounded by the socket timeout, which fails the test).
    s.write_all(
        b"GET /file.txt HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n",
    )
    .unwrap();
    let mut reader = BufReader::new(s.try_clone().unwrap());
    let mut r = read_response(&mut reader, false).unwrap();
    if r.status == 100 {
        s.write_all(b"hello").unwrap();
        r = read_response(&mut reader, false).unwrap();
    }
    assert_eq!((r.status, r.body.as_slice()), (200, &b"file body\n"[..]));
}

/// Regression (unknown-expectation-ignored): `Expect: foo` was ignored
/// and the request served as if nothing were asked. An expectation other
/// than `100-continue` is one we cannot meet: 417 (RFC 9110 §10.1.1), like
/// any refused head with `Connection: close`, and the connection ends, so
/// the body and the pipelined request behind it are never read as requests.
#[test]
fn unknown_expectation_is_refused_with_417() {
    let (_root, server) = site();
    for expect in ["foo", "100-continue, foo", "FOO=bar"] {
        let raw = format!(
            "PUT /file.txt HTTP/1.1\r\nHost: t\r\nExpect: {expect}\r\nContent-Length: 30\r\n\r\n\
             GET /x HTTP/1.1\r\nHost: t\r\n\r\n\
             GET /x HTTP/1.1\r\nHost: t\r\n\r\n"
        );
        let all = until_close(server.addr, raw.as_bytes());
        assert!(
            all.starts_with(b"HTTP/1.1 417 Expectation Failed\r\n"),
            "{expect}: {}",
            String::from_utf8_lossy(&all)
        );
        let rs = responses(&all);
        assert_eq!(rs.len(), 1, "{expect}: one answer, then EOF");
        assert_error_page(&rs[0], expect);
        assert_eq!(rs[0].header("connection"), Some("close"), "{expect}");
    }
    // HTTP/1.0 too: only 100-continue is ignored from an HTTP/1.0 client.
    let rs = responses(&until_close(
        server.addr,
        b"GET /x HTTP/1.0\r\nExpect: foo\r\n\r\n",
    ));
    assert_eq!(rs.iter().map(|r| r.status).collect::<Vec<_>>(), [417]);
    // An empty Expect asks nothing: served, and the connection stays usable.
    let mut s = connect(server.addr);
    let mut reader = BufReader::new(s.try_clone().unwrap());
    for _ in 0..2 {
        s.write_all(b"GET /x HTTP/1.1\r\nHost: t\r\nExpect:\r\n\r\n")
            .unwrap();
        let r = read_response(&mut reader, false).unwrap();
        assert_eq!((r.status, r.body.as_slice()), (200, &b"x"[..]));
    }
}

#[test]
fn chunked_body_on_get_is_answered() {
    let (_root, server) = site();
    let raw = "GET /file.txt HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n";
    let all = until_close(server.addr, raw.as_bytes());
    let mut reader = all.as_slice();
    let r = read_response(&mut reader, false).unwrap();
    assert_eq!((r.status, r.body.as_slice()), (200, &b"file body\n"[..]));
    // Whatever follows (nothing, or an answer to a correctly de-chunked
    // stream) must not be a response to the chunk bytes parsed as a head.
    if !reader.is_empty() {
        let next = read_response(&mut reader, false).unwrap();
        panic!("unexpected second response {}", next.status);
    }
}

#[test]
fn http10_errors_and_keepalive() {
    let (_root, server) = site();
    // HTTP/1.0 needs no Host.
    let r = roundtrip(server.addr, "GET /x HTTP/1.0\r\n\r\n");
    assert_eq!((r.status, r.body.as_slice()), (200, &b"x"[..]));
    let r = roundtrip(server.addr, "GET /nope HTTP/1.0\r\n\r\n");
    assert_eq!(r.status, 404);
    assert_error_page(&r, "1.0 404");
}

/// A trailing slash names a directory: a file is not one, so `/file.txt/`
/// is 404, not the file under a second URL.
#[test]
fn file_with_trailing_slash_is_not_found() {
    let (root, server) = site();
    root.write("sub/a.txt", "a");
    for path in ["/file.txt/", "/file.txt/.", "/sub/a.txt/", "/sub/a.txt//"] {
        let r = get(server.addr, path, &[]);
        assert_eq!(r.status, 404, "{path}");
        assert_error_page(&r, path);
    }
    for path in ["/file.txt", "/sub/../file.txt", "/sub/a.txt/../../file.txt"] {
        let r = get(server.addr, path, &[]);
        assert_eq!(
            (r.status, r.body.as_slice()),
            (200, &b"file body\n"[..]),
            "{path}"
        );
    }
}

/// Sends `raw`, reads until the server closes, and splits the bytes at the
/// end of the first head: (head, what followed it).
fn head_and_rest(addr: SocketAddr, raw: &[u8]) -> (RawResponse, Vec<u8>) {
    let all = until_close(addr, raw);
    let end = all
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a complete head")
        + 4;
    let head = read_response(&mut &all[..end], true).unwrap();
    (head, all[end..].to_vec())
}

/// Regression (head-413-has-a-body): a HEAD answered 413 carried the error
/// page. Every answer to HEAD is a head only, including the ones the
/// connection makes itself (413, and a refused head that starts with HEAD).
#[test]
fn error_answers_to_head_have_no_body() {
    let (_root, server) = site();
    let cases: &[(&str, &str, u16)] = &[
        (
            "body over the limit",
            "HEAD /file.txt HTTP/1.1\r\nHost: t\r\nContent-Length: 1048577\r\n\r\n",
            413,
        ),
        (
            "bad Host",
            "HEAD /file.txt HTTP/1.1\r\nHost: a b\r\n\r\n",
            400,
        ),
        ("missing Host", "HEAD / HTTP/1.1\r\n\r\n", 400),
        ("HTTP/2.0", "HEAD / HTTP/2.0\r\nHost: t\r\n\r\n", 505),
        (
            "unknown expectation",
            "HEAD /file.txt HTTP/1.1\r\nHost: t\r\nExpect: foo\r\n\r\n",
            417,
        ),
        (
            "leading CRLF, bad version",
            "\r\nHEAD / HTTP/1.2\r\nHost: t\r\n\r\n",
            505,
        ),
        (
            "not found",
            "HEAD /missing HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
            404,
        ),
        (
            "bad path",
            "HEAD /%zz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
            400,
        ),
        (
            "precondition failed",
            "HEAD /file.txt HTTP/1.1\r\nHost: t\r\nIf-Match: \"x\"\r\nConnection: close\r\n\r\n",
            412,
        ),
        (
            "range not satisfiable",
            "HEAD /file.txt HTTP/1.1\r\nHost: t\r\nRange: bytes=99-\r\nConnection: close\r\n\r\n",
            416,
        ),
    ];
    for (what, raw, want) in cases {
        let (r, rest) = head_and_rest(server.addr, raw.as_bytes());
        assert_eq!(r.status, *want, "{what}");
        let len: usize = r.header("content-length").unwrap().parse().unwrap();
        assert!(len > 0, "{what}: the length of the page a GET would get");
        assert!(
            rest.is_empty(),
            "{what}: {} bytes after the head",
            rest.len()
        );
    }
    // The same refusals to GET still carry their page.
    let (r, rest) = head_and_rest(
        server.addr,
        b"GET /file.txt HTTP/1.1\r\nHost: t\r\nContent-Length: 1048577\r\n\r\n",
    );
    assert_eq!(r.status, 413);
    assert_eq!(
        rest.len(),
        r.header("content-length")
            .unwrap()
            .parse::<usize>()
            .unwrap()
    );
}

/// Regression (host-not-validated): `Host: a b c <script>` got a 200. A Host
/// that is not `uri-host[:port]` (RFC 9112 §3.2, RFC 3986 §3.2.2) is 400,
/// and the connection closes like after any refused head.
#[test]
fn malformed_host_is_refused() {
    let (_root, server) = site();
    for host in [
        "a b c <script>",
        "<script>",
        "evil.example/x",
        "u@h",
        "h:80:80",
        "h:http",
        "[::1",
        "[zz::1]",
        "a%zz",
    ] {
        let mut raw = format!("GET /file.txt HTTP/1.1\r\nHost: {host}\r\n\r\n").into_bytes();
        raw.extend_from_slice(b"GET /file.txt HTTP/1.1\r\nHost: t\r\n\r\n");
        let rs = responses(&until_close(server.addr, &raw));
        assert_eq!(rs.len(), 1, "{host:?}: one answer, then close");
        assert_eq!(rs[0].status, 400, "{host:?}");
        assert_eq!(rs[0].header("connection"), Some("close"), "{host:?}");
        assert_error_page(&rs[0], host);
    }
    for host in [
        "t",
        "t:8080",
        "127.0.0.1:1",
        "[::1]:8080",
        "[v1.x]",
        "",
        "xn--d1a.example",
    ] {
        let r = roundtrip(
            server.addr,
            &format!("GET /file.txt HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"),
        );
        assert_eq!(
            (r.status, r.body.as_slice()),
            (200, &b"file body\n"[..]),
            "{host:?}"
        );
    }
    // The authority of an absolute-form target follows the same rule.
    for target in [
        "http://u@t/file.txt",
        "http:///file.txt",
        "http://a<b/file.txt",
    ] {
        let r = roundtrip(
            server.addr,
            &format!("GET {target} HTTP/1.1\r\nHost: t\r\n\r\n"),
        );
        assert_eq!(r.status, 400, "{target}");
    }
}
