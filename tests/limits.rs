//! Resource limits: an oversized head (431) or request line (414) is
//! refused and the connection closed; a head that never completes gets 408
//! after the header timeout; past `max_connections` new clients wait in the
//! backlog until a slot frees.
mod common;
use common::*;

use std::io::{self, BufReader, Read, Write};
use std::time::Duration;

fn root() -> TempDir {
    let root = TempDir::new("limits");
    root.write("a.txt", "alpha");
    root
}

/// Sends `request` and expects `status`, `Connection: close`, then EOF.
fn refused_with(server: &TestServer, request: &[u8], status: u16) {
    let mut s = server.connect();
    s.write_all(request).unwrap();
    let mut r = BufReader::new(s);
    let resp = read_response(&mut r, false).unwrap();
    assert_eq!(resp.status, status, "{}", resp.head);
    assert_eq!(resp.header("connection"), Some("close"));
    assert!(closed_by_server(&mut r), "no EOF after {status}");
}

#[test]
fn oversized_head_and_request_line_are_refused_and_closed() {
    let root = root();
    let server = TestServer::start(root.path());
    let big_header = format!(
        "GET /a.txt HTTP/1.1\r\nHost: t\r\nX-Big: {}\r\n\r\n",
        "x".repeat(9000)
    );
    let long_line = format!("GET /{} HTTP/1.1\r\nHost: t\r\n\r\n", "a".repeat(9000));
    // (request, expected status)
    for (req, status) in [(big_header, 431), (long_line, 414)] {
        refused_with(&server, req.as_bytes(), status);
    }
    // A head just under the limit is still fine.
    let ok = get(
        server.addr,
        "/a.txt",
        &[&format!("X-Pad: {}", "p".repeat(7000))],
    );
    assert_eq!((ok.status, ok.text().as_str()), (200, "alpha"));
}

#[test]
fn slow_head_gets_408_after_the_header_timeout_and_is_closed() {
    let root = root();
    let server = TestServer::with(root.path(), |c| {
        c.header_timeout = Duration::from_millis(300);
    });
    let mut s = server.connect();
    s.write_all(b"GET /a.txt HTTP/1.1\r\nHost: t\r\nX-Slow: ")
        .unwrap();
    let mut r = BufReader::new(s);
    let resp = read_response(&mut r, false).unwrap();
    assert_eq!(resp.status, 408);
    assert!(closed_by_server(&mut r), "no EOF after 408");
}

#[test]
fn connections_past_the_limit_wait_until_a_slot_frees() {
    let root = root();
    let server = TestServer::with(root.path(), |c| c.max_connections = 2);
    let mut first = server.connect();
    let mut second = server.connect();
    for s in [&mut first, &mut second] {
        s.write_all(b"GET /a.txt HTTP/1.1\r\nHost: t\r\n").unwrap();
    }
    // The backlog is FIFO: whenever the reactor accepts, it takes these
    // two first and then stops at the limit, leaving the third queued.
    let mut third = server.connect();
    third
        .write_all(b"GET /a.txt HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .unwrap();
    third
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut byte = [0u8; 1];
    match third.read(&mut byte) {
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            ) => {}
        other => panic!("third connection was answered past the limit: {other:?}"),
    }
    drop(first);
    third.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    let resp = read_response(&mut BufReader::new(third), false).unwrap();
    assert_eq!((resp.status, resp.text().as_str()), (200, "alpha"));
    drop(second);
    let summary = server.stop();
    assert_eq!((summary.connections, summary.requests), (3, 1));
}

#[test]
fn header_timeout_bounds_the_whole_head_even_when_bytes_keep_trickling() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    let root = root();
    let server = TestServer::with(root.path(), |c| {
        c.header_timeout = Duration::from_millis(300);
    });
    let s = server.connect();
    let mut w = s.try_clone().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let trickle = {
        let stop = Arc::clone(&stop);
        // One header byte every 20 ms, at most 500 of them (10 s): each
        // read makes progress, but the head never completes.
        std::thread::spawn(move || {
            w.write_all(b"GET /a.txt HTTP/1.1\r\nHost: t\r\nX-Slow: ")
                .unwrap();
            for _ in 0..500 {
                if stop.load(Ordering::Relaxed) || w.write_all(b"z").is_err() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };
    let mut r = BufReader::new(s);
    let resp = read_response(&mut r, false);
    stop.store(true, Ordering::Relaxed);
    trickle.join().unwrap();
    assert_eq!(resp.unwrap().status, 408);
}

#[test]
fn oversized_discarded_body_gets_413_and_close() {
    let root = root();
    let server = TestServer::start(root.path());
    refused_with(
        &server,
        b"GET /a.txt HTTP/1.1\r\nHost: t\r\nContent-Length: 2000000\r\n\r\n",
        413,
    );
}

/// Regression (blocking models): the connection's clock was read before a
/// blocking `read`, so a head that began after an idle wait was timed from
/// the start of the wait and got 408 as soon as it arrived.
#[test]
fn header_timeout_starts_at_the_first_byte_not_when_the_connection_went_idle() {
    let root = root();
    let server = TestServer::with(root.path(), |c| {
        c.keepalive_timeout = Duration::from_secs(3);
        c.header_timeout = Duration::from_secs(1);
    });
    let mut s = server.connect();
    // Idle for longer than the header timeout, but within keep-alive.
    std::thread::sleep(Duration::from_millis(1500));
    let first_byte = std::time::Instant::now();
    s.write_all(b"GET /a.txt HTTP/1.1\r\nHost: t\r\nX-Slow: ")
        .unwrap();
    let mut r = BufReader::new(s);
    let resp = read_response(&mut r, false).unwrap();
    let waited = first_byte.elapsed();
    assert_eq!(resp.status, 408);
    // Deadlines are never early, so this lower bound cannot flake.
    assert!(
        waited >= Duration::from_millis(900),
        "408 came {waited:?} after the head began, not the 1 s header timeout"
    );
}
