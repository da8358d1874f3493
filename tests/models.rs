//! The server models side by side. Every model drives the same connection
//! state machine and the same request handling, so the same requests get
//! byte-identical responses from each (Date aside); and the few behaviours
//! that belong to one model, named after it: a pool smaller than its clients
//! leaves the rest in the backlog, reactor-inline answers a deep pipeline
//! without recursing.
//!
//! These tests start each model explicitly, so they need no
//! `STOKE_TEST_MODEL` (`make test` runs this file once).
mod common;
use common::*;

use std::io::{self, BufReader, Read, Write};
use std::net::SocketAddr;
use std::time::Duration;

use stoke::models::Model;

/// The site every model serves.
fn site() -> TempDir {
    let root = TempDir::new("models");
    root.write("a.txt", "alpha\n");
    root.write("page.html", "<!doctype html><title>p</title>\n");
    root.write("big.bin", pattern(100_000, 11));
    root.write(
        "notes.txt",
        "plain notes, long enough to be worth compressing\n",
    );
    root.write("notes.txt.gz", pattern(40, 12));
    root.write("dir/one.txt", "1");
    root.write("dir/two.txt", "22");
    root
}

/// (what, the raw bytes one client sends). Each ends in a request that
/// closes the connection, or in bytes the server refuses and closes on, so
/// a response stream is "everything until EOF".
const CASES: &[(&str, &[u8])] = &[
    ("get", b"GET /a.txt HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"),
    ("head", b"HEAD /a.txt HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"),
    ("missing", b"GET /nope HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"),
    ("sendfile body", b"GET /big.bin HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"),
    ("listing", b"GET /dir/ HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"),
    ("no slash", b"GET /dir HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"),
    (
        "range",
        b"GET /big.bin HTTP/1.1\r\nHost: t\r\nRange: bytes=10-19\r\nConnection: close\r\n\r\n",
    ),
    (
        "multirange",
        b"GET /big.bin HTTP/1.1\r\nHost: t\r\nRange: bytes=0-1,5-6\r\nConnection: close\r\n\r\n",
    ),
    (
        "unsatisfiable",
        b"GET /a.txt HTTP/1.1\r\nHost: t\r\nRange: bytes=900-\r\nConnection: close\r\n\r\n",
    ),
    (
        "not modified",
        b"GET /a.txt HTTP/1.1\r\nHost: t\r\nIf-Modified-Since: Fri, 01 Jan 2100 00:00:00 GMT\r\nConnection: close\r\n\r\n",
    ),
    (
        "sidecar",
        b"GET /notes.txt HTTP/1.1\r\nHost: t\r\nAccept-Encoding: gzip\r\nConnection: close\r\n\r\n",
    ),
    ("options", b"OPTIONS * HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"),
    (
        "post",
        b"POST /a.txt HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    ),
    ("http/1.0", b"GET /a.txt HTTP/1.0\r\n\r\n"),
    (
        "keep-alive then close",
        b"GET /a.txt HTTP/1.1\r\nHost: t\r\n\r\nGET /dir/one.txt HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    ),
    (
        "body skipped",
        b"GET /a.txt HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhelloGET /dir/two.txt HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    ),
    (
        "chunked body",
        b"GET /a.txt HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    ),
    ("bad request line", b"GET\r\n\r\n"),
    ("bad version", b"GET / HTTP/2.7\r\nHost: t\r\n\r\n"),
    (
        "traversal",
        b"GET /../../etc/passwd HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    ),
];

/// Sends `request` on a fresh connection; every byte until the server closes.
fn exchange(addr: SocketAddr, request: &[u8]) -> Vec<u8> {
    let mut s = connect(addr);
    s.write_all(request).unwrap();
    let mut out = Vec::new();
    match s.read_to_end(&mut out) {
        Ok(_) => {}
        // A reset after the response (the server closed with our bytes
        // unread) still leaves what it sent before.
        Err(e) if e.kind() == io::ErrorKind::ConnectionReset => {}
        Err(e) => panic!("no EOF after {} bytes: {e}", out.len()),
    }
    out
}

/// The response stream without its `Date` lines (the one field that may
/// differ from one second to the next).
fn without_date(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut rest = bytes;
    while !rest.is_empty() {
        let end = rest
            .windows(2)
            .position(|w| w == b"\r\n")
            .map_or(rest.len(), |i| i + 2);
        let (line, tail) = rest.split_at(end);
        if !line.to_ascii_lowercase().starts_with(b"date:") {
            out.extend_from_slice(line);
        }
        rest = tail;
    }
    out
}

#[test]
fn every_model_sends_the_same_bytes_for_the_same_requests() {
    let root = site();
    let servers: Vec<(Model, TestServer)> = Model::ALL
        .into_iter()
        .map(|model| {
            let mut config = config_for(root.path(), model);
            config.listing = true;
            (model, TestServer::with_config(config))
        })
        .collect();
    let mut differences = Vec::new();
    for &(what, request) in CASES {
        let expected = without_date(&exchange(servers[0].1.addr, request));
        assert!(
            expected.starts_with(b"HTTP/1."),
            "{what}: the reactor sent {:?}",
            String::from_utf8_lossy(&expected)
        );
        for (model, server) in &servers[1..] {
            let got = without_date(&exchange(server.addr, request));
            if got != expected {
                differences.push(format!(
                    "{what}: {model} sent\n{:?}\nthe reactor sent\n{:?}",
                    String::from_utf8_lossy(&got[..got.len().min(600)]),
                    String::from_utf8_lossy(&expected[..expected.len().min(600)]),
                ));
            }
        }
    }
    assert!(differences.is_empty(), "{}", differences.join("\n\n"));
    for (model, server) in servers {
        let summary = server.stop();
        assert_eq!(summary.cut_off, 0, "{model}");
        assert_eq!(summary.connections, CASES.len() as u64, "{model}");
    }
}

#[test]
fn pool_smaller_than_its_clients_leaves_the_rest_in_the_backlog() {
    let root = site();
    let mut config = config_for(root.path(), Model::Pool);
    config.threads = 1;
    let server = TestServer::with_config(config);
    // The one thread serves this client and then waits on it, idle.
    let mut first = server.connect();
    first
        .write_all(b"GET /a.txt HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    let resp = read_response(&mut BufReader::new(first.try_clone().unwrap()), false).unwrap();
    assert_eq!(resp.status, 200);

    let mut second = server.connect();
    second
        .write_all(b"GET /a.txt HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .unwrap();
    second
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut byte = [0u8; 1];
    match second.read(&mut byte) {
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            ) => {}
        other => panic!("a second client was served by a pool of one busy thread: {other:?}"),
    }
    // The first client leaves: the thread takes the next from the backlog.
    drop(first);
    second.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    let resp = read_response(&mut BufReader::new(second), false).unwrap();
    assert_eq!((resp.status, resp.text().as_str()), (200, "alpha\n"));
    let summary = server.stop();
    assert_eq!((summary.connections, summary.requests), (2, 2));
}

/// Deep enough that answering each pipelined request from inside the
/// previous one's completion would overflow the server thread's stack.
const DEEP_PIPELINE: usize = 20_000;

#[test]
fn reactor_inline_answers_a_deep_pipeline_without_recursing() {
    let root = site();
    let server = TestServer::with_config(config_for(root.path(), Model::ReactorInline));
    let s = server.connect();
    let mut w = s.try_clone().unwrap();
    let writer = std::thread::spawn(move || {
        let one = b"GET /dir/one.txt HTTP/1.1\r\nHost: t\r\n\r\n";
        let mut all = one.repeat(DEEP_PIPELINE - 1);
        all.extend_from_slice(b"GET /dir/two.txt HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
        w.write_all(&all).unwrap();
    });
    let mut r = BufReader::new(s);
    for i in 0..DEEP_PIPELINE - 1 {
        let resp = read_response(&mut r, false).unwrap();
        assert_eq!((resp.status, resp.body.as_slice()), (200, &b"1"[..]), "{i}");
    }
    let last = read_response(&mut r, false).unwrap();
    assert_eq!((last.status, last.text().as_str()), (200, "22"));
    assert!(closed_by_server(&mut r));
    writer.join().unwrap();
    let summary = server.stop();
    assert_eq!(summary.requests, DEEP_PIPELINE as u64);
}
