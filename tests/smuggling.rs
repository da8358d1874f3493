//! Request smuggling: heads whose body framing or header syntax is ambiguous
//! (CL+TE, conflicting or malformed Content-Length, non-final or unknown
//! Transfer-Encoding, obs-fold, whitespace before a colon, bare CR, NUL and
//! control bytes, Transfer-Encoding in HTTP/1.0) must be refused with their
//! status code and the connection closed, and a request pipelined behind them
//! in the same write must never be answered: the server never guesses where
//! the next request starts. Chunked bodies are decoded strictly (CRLF line
//! ends, bare hex sizes, bounded extensions and trailers); a framing a
//! proxy could read differently is refused the same way.
mod common;
use common::*;

use std::io::{BufRead, BufReader, Cursor, Read, Write};
use std::net::SocketAddr;

/// Appended to every attack in the same write; answering it would mean the
/// server re-synchronized on attacker-chosen bytes.
const SMUGGLED: &[u8] = b"GET /smuggled.txt HTTP/1.1\r\nHost: t\r\n\r\n";

/// (name, head + body bytes, expected status); every row must also close.
const ATTACKS: &[(&str, &[u8], u16)] = &[
    (
        "CL+TE",
        b"POST /ok.txt HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        400,
    ),
    (
        "TE+CL",
        b"POST /ok.txt HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n",
        400,
    ),
    (
        "two different Content-Length",
        b"POST /ok.txt HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
        400,
    ),
    (
        "Content-Length list 1,2",
        b"POST /ok.txt HTTP/1.1\r\nHost: t\r\nContent-Length: 1,2\r\n\r\nab",
        400,
    ),
    (
        "Content-Length +5",
        b"POST /ok.txt HTTP/1.1\r\nHost: t\r\nContent-Length: +5\r\n\r\nabcde",
        400,
    ),
    (
        "Content-Length -1",
        b"POST /ok.txt HTTP/1.1\r\nHost: t\r\nContent-Length: -1\r\n\r\n",
        400,
    ),
    (
        "Content-Length 0x10",
        b"POST /ok.txt HTTP/1.1\r\nHost: t\r\nContent-Length: 0x10\r\n\r\n0123456789abcdef",
        400,
    ),
    (
        "Content-Length empty",
        b"POST /ok.txt HTTP/1.1\r\nHost: t\r\nContent-Length: \r\n\r\n",
        400,
    ),
    (
        "Content-Length overflow",
        b"POST /ok.txt HTTP/1.1\r\nHost: t\r\nContent-Length: 18446744073709551616\r\n\r\n",
        400,
    ),
    (
        "Content-Length 1 2",
        b"POST /ok.txt HTTP/1.1\r\nHost: t\r\nContent-Length: 1 2\r\n\r\nab",
        400,
    ),
    (
        "TE chunked, gzip (chunked not final)",
        b"POST /ok.txt HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n",
        400,
    ),
    (
        "TE identity",
        b"POST /ok.txt HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: identity\r\n\r\n",
        400,
    ),
    (
        "TE xchunked",
        b"POST /ok.txt HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n",
        400,
    ),
    (
        "TE chunked twice",
        b"POST /ok.txt HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        400,
    ),
    (
        "obs-fold",
        b"GET /ok.txt HTTP/1.1\r\nHost: t\r\nX: a\r\n b\r\n\r\n",
        400,
    ),
    (
        "obs-fold on Transfer-Encoding",
        b"POST /ok.txt HTTP/1.1\r\nHost: t\r\nTransfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n",
        400,
    ),
    (
        "space before colon",
        b"GET /ok.txt HTTP/1.1\r\nHost : x\r\n\r\n",
        400,
    ),
    (
        "space before colon on Transfer-Encoding",
        b"POST /ok.txt HTTP/1.1\r\nHost: t\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n",
        400,
    ),
    (
        "bare CR in a header value",
        b"GET /ok.txt HTTP/1.1\r\nHost: t\r\nX: a\rb\r\n\r\n",
        400,
    ),
    (
        "bare CR as a line end",
        b"GET /ok.txt HTTP/1.1\r\nHost: t\rX: y\r\n\r\n",
        400,
    ),
    (
        "NUL in a header value",
        b"GET /ok.txt HTTP/1.1\r\nHost: t\r\nX: a\0b\r\n\r\n",
        400,
    ),
    (
        "0x01 in a header value",
        b"GET /ok.txt HTTP/1.1\r\nHost: t\r\nX: a\x01b\r\n\r\n",
        400,
    ),
    (
        "NUL in a header name",
        b"GET /ok.txt HTTP/1.1\r\nHost: t\r\nX\0Y: a\r\n\r\n",
        400,
    ),
    (
        "TE chunked in HTTP/1.0",
        b"POST /ok.txt HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        400,
    ),
    (
        "two Host headers",
        b"GET /ok.txt HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
        400,
    ),
    (
        "no Host in HTTP/1.1",
        b"GET /ok.txt HTTP/1.1\r\n\r\n",
        400,
    ),
    // Chunked bodies are decoded strictly: any framing a proxy could read
    // differently is refused before the request is answered.
    (
        "chunked: bare LF after the chunk size",
        b"GET /ok.txt HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n3\nabc\r\n0\r\n\r\n",
        400,
    ),
    (
        "chunked: bare LF after the chunk data",
        b"GET /ok.txt HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\n0\r\n\r\n",
        400,
    ),
    (
        "chunked: data longer than its size",
        b"GET /ok.txt HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcd\r\n0\r\n\r\n",
        400,
    ),
    (
        "chunked: size with 0x",
        b"GET /ok.txt HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n0x3\r\nabc\r\n0\r\n\r\n",
        400,
    ),
    (
        "chunked: space between size and CRLF",
        b"GET /ok.txt HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n3 \r\nabc\r\n0\r\n\r\n",
        400,
    ),
    (
        "chunked: bare CR in an extension",
        b"GET /ok.txt HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n3;a\rb\r\nabc\r\n0\r\n\r\n",
        400,
    ),
    (
        "chunked: obs-fold in a trailer",
        b"GET /ok.txt HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nT: a\r\n b\r\n\r\n",
        400,
    ),
    (
        "chunked: size past 64 bits",
        b"GET /ok.txt HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n10000000000000003\r\nabc\r\n0\r\n\r\n",
        413,
    ),
    (
        "body too large to skip",
        b"GET /ok.txt HTTP/1.1\r\nHost: t\r\nContent-Length: 2000000\r\n\r\n",
        413,
    ),
    (
        "TE gzip, chunked (unknown coding)",
        b"POST /ok.txt HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
        501,
    ),
];

/// Everything the server sends on one connection for `bytes`, up to EOF.
fn all_until_eof(addr: SocketAddr, bytes: &[u8]) -> Result<Vec<u8>, String> {
    let mut s = connect(addr);
    s.write_all(bytes).unwrap();
    let mut got = Vec::new();
    match s.read_to_end(&mut got) {
        Ok(_) => Ok(got),
        // A reset after the response still proves the connection closed.
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset && !got.is_empty() => Ok(got),
        Err(e) => Err(format!(
            "no EOF ({e}) after {:?}",
            String::from_utf8_lossy(&got)
        )),
    }
}

#[test]
fn ambiguous_framing_is_refused_closed_and_nothing_after_it_is_answered() {
    let root = TempDir::new("smuggling");
    root.write("ok.txt", "ok");
    root.write("smuggled.txt", "SMUGGLED-RESPONSE");
    let server = TestServer::start(root.path());
    let mut failures = Vec::new();
    for &(name, attack, status) in ATTACKS {
        let mut bytes = attack.to_vec();
        bytes.extend_from_slice(SMUGGLED);
        let got = match all_until_eof(server.addr, &bytes) {
            Ok(got) => got,
            Err(e) => {
                failures.push(format!("{name}: {e}"));
                continue;
            }
        };
        let mut r = Cursor::new(&got[..]);
        let resp = match read_response(&mut r, false) {
            Ok(resp) => resp,
            Err(e) => {
                failures.push(format!("{name}: unreadable response ({e})"));
                continue;
            }
        };
        if resp.status != status {
            failures.push(format!("{name}: status {} != {status}", resp.status));
        }
        if resp.header("connection") != Some("close") {
            failures.push(format!("{name}: no Connection: close"));
        }
        let rest = r.fill_buf().unwrap();
        if !rest.is_empty() {
            failures.push(format!(
                "{name}: bytes after the refusal: {:?}",
                String::from_utf8_lossy(rest)
            ));
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
    // The server is unharmed.
    let r = get(server.addr, "/ok.txt", &[]);
    assert_eq!((r.status, r.text().as_str()), (200, "ok"));
}

/// Control: the harness does see a pipelined request when framing is clean
/// (`Content-Length: 5, 5` is an allowed list of identical values).
#[test]
fn clean_framing_lets_the_pipelined_request_through() {
    let root = TempDir::new("smuggling-ctl");
    root.write("ok.txt", "ok");
    root.write("smuggled.txt", "SMUGGLED-RESPONSE");
    let server = TestServer::start(root.path());
    let controls: &[&[u8]] = &[
        b"GET /ok.txt HTTP/1.1\r\nHost: t\r\n\r\n",
        b"GET /ok.txt HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nabcde",
        b"GET /ok.txt HTTP/1.1\r\nHost: t\r\nContent-Length: 5, 5\r\n\r\nabcde",
        // A chunked body is decoded exactly, extensions and trailers too.
        b"GET /ok.txt HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        b"GET /ok.txt HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n0\r\nT: v\r\n\r\n",
        // An Expect request whose body came with it (see tests/bodies.rs).
        b"GET /ok.txt HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\nabcde",
    ];
    for &control in controls {
        let mut bytes = control.to_vec();
        bytes.extend_from_slice(SMUGGLED);
        let mut s = connect(server.addr);
        s.write_all(&bytes).unwrap();
        let mut r = BufReader::new(s);
        let first = read_response(&mut r, false).unwrap();
        assert_eq!(first.status, 200, "{:?}", String::from_utf8_lossy(control));
        let second = read_response(&mut r, false).unwrap();
        assert_eq!(
            (second.status, second.text().as_str()),
            (200, "SMUGGLED-RESPONSE")
        );
    }
}
