//! Connection persistence: HTTP/1.1 keeps the connection by default and
//! closes on `Connection: close`; HTTP/1.0 closes unless it asks for
//! keep-alive; an idle keep-alive connection is closed after the timeout.
mod common;
use common::*;

use std::io::{BufReader, Write};
use std::time::Duration;

fn root() -> TempDir {
    let root = TempDir::new("keepalive");
    root.write("a.txt", "alpha");
    root.write("b.txt", "bravo!");
    root
}

#[test]
fn http11_connection_is_reused_for_three_requests() {
    let root = root();
    let server = TestServer::start(root.path());
    let s = server.connect();
    let mut w = s.try_clone().unwrap();
    let mut r = BufReader::new(s);
    for (path, body) in [
        ("/a.txt", "alpha"),
        ("/b.txt", "bravo!"),
        ("/a.txt", "alpha"),
    ] {
        w.write_all(format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes())
            .unwrap();
        let resp = read_response(&mut r, false).unwrap();
        assert_eq!((resp.status, resp.text().as_str()), (200, body));
        assert_ne!(resp.header("connection"), Some("close"));
    }
    let summary = server.stop();
    assert_eq!((summary.connections, summary.requests), (1, 3));
}

/// Requests after which the server must say `Connection: close` and close.
#[test]
fn closing_requests_get_connection_close_and_eof() {
    let root = root();
    let server = TestServer::start(root.path());
    for req in [
        "GET /a.txt HTTP/1.0\r\n\r\n",
        "GET /a.txt HTTP/1.0\r\nHost: t\r\n\r\n",
        "GET /a.txt HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    ] {
        let mut s = server.connect();
        s.write_all(req.as_bytes()).unwrap();
        let mut r = BufReader::new(s);
        let resp = read_response(&mut r, false).unwrap();
        assert_eq!(
            (resp.status, resp.text().as_str()),
            (200, "alpha"),
            "{req:?}"
        );
        assert_eq!(resp.header("connection"), Some("close"), "{req:?}");
        assert!(closed_by_server(&mut r), "{req:?}: server did not close");
    }
}

#[test]
fn http10_keep_alive_is_honoured_and_announced() {
    let root = root();
    let server = TestServer::start(root.path());
    let s = server.connect();
    let mut w = s.try_clone().unwrap();
    let mut r = BufReader::new(s);
    for (path, body) in [("/a.txt", "alpha"), ("/b.txt", "bravo!")] {
        w.write_all(format!("GET {path} HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").as_bytes())
            .unwrap();
        let resp = read_response(&mut r, false).unwrap();
        assert_eq!((resp.status, resp.text().as_str()), (200, body));
        assert_eq!(resp.header("connection"), Some("keep-alive"));
    }
    let summary = server.stop();
    assert_eq!((summary.connections, summary.requests), (1, 2));
}

#[test]
fn idle_keep_alive_connection_is_closed_after_the_timeout() {
    let root = root();
    let server = TestServer::with(root.path(), |c| {
        c.keepalive_timeout = Duration::from_millis(300);
    });
    let mut s = server.connect();
    s.write_all(b"GET /a.txt HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    let mut r = BufReader::new(s);
    let resp = read_response(&mut r, false).unwrap();
    assert_eq!(resp.status, 200);
    assert_ne!(resp.header("connection"), Some("close"));
    // Sending nothing more: the server must close (the read timeout of
    // IO_TIMEOUT bounds the wait, and a timeout counts as "not closed").
    assert!(closed_by_server(&mut r), "idle connection was not closed");
}

#[test]
fn http10_keep_alive_is_announced_on_error_responses_too() {
    let root = root();
    let server = TestServer::start(root.path());
    let s = server.connect();
    let mut w = s.try_clone().unwrap();
    let mut r = BufReader::new(s);
    // (path, status): an error between two files must not end persistence.
    for (path, status) in [("/a.txt", 200), ("/missing", 404), ("/b.txt", 200)] {
        w.write_all(format!("GET {path} HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").as_bytes())
            .unwrap();
        let resp = read_response(&mut r, false).unwrap();
        assert_eq!(resp.status, status, "{path}");
        assert_eq!(
            resp.header("connection"),
            Some("keep-alive"),
            "{path}: an HTTP/1.0 client closes unless told keep-alive:\n{}",
            resp.head
        );
    }
}

#[test]
fn connection_that_never_sends_a_request_is_closed_after_the_idle_timeout() {
    let root = root();
    let server = TestServer::with(root.path(), |c| {
        c.keepalive_timeout = Duration::from_millis(300);
    });
    let mut s = server.connect();
    assert!(closed_by_server(&mut s), "silent connection was not closed");
    let summary = server.stop();
    assert_eq!((summary.connections, summary.requests), (1, 0));
}
