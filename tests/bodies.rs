//! Request bodies, which stoke never uses but must frame exactly so that
//! the next request starts where the client says: a chunked body is decoded
//! and thrown away (up to 1 MiB of content; 413 beyond) and the connection
//! kept; `Expect: 100-continue` is answered with the final response at
//! once, and then, unless the body had already begun arriving, the
//! connection closes: a body the client sends after the answer is
//! swallowed, never parsed as a request, and a next request sent instead of
//! the body is never eaten as body bytes.
mod common;
use common::*;

use std::io::{BufReader, Read, Write};
use std::net::TcpStream;

/// Looks like a request, to catch a body being parsed as one.
const SMUGGLED: &[u8] = b"GET /smuggled.txt HTTP/1.1\r\nHost: t\r\n\r\n";

fn root() -> TempDir {
    let root = TempDir::new("bodies");
    root.write("ok.txt", "ok");
    root.write("smuggled.txt", "SMUGGLED-RESPONSE");
    root
}

fn expect_head(len: usize) -> String {
    format!(
        "GET /ok.txt HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: {len}\r\n\r\n"
    )
}

/// Everything after the response: must be nothing, then EOF.
fn nothing_more(r: &mut BufReader<TcpStream>) {
    let mut rest = Vec::new();
    match r.read_to_end(&mut rest) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        Err(e) => panic!("no EOF: {e} after {:?}", String::from_utf8_lossy(&rest)),
    }
    assert!(
        rest.is_empty(),
        "bytes after the last response: {:?}",
        String::from_utf8_lossy(&rest)
    );
}

/// Regression (a chunked body was answered and the connection closed): the
/// body, split across writes with an extension and a trailer, is skipped;
/// the answer keeps the connection and the next request is served.
#[test]
fn chunked_body_is_discarded_and_the_connection_kept() {
    let root = root();
    let server = TestServer::start(root.path());
    let mut s = server.connect();
    let mut r = BufReader::new(s.try_clone().unwrap());
    let data = "x".repeat(40_000);
    let pieces = [
        "GET /ok.txt HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n4;ext=\"a b\"\r\nab",
        "cd\r\n9c40\r",
        &format!("\n{data}\r\n"),
        "0\r\nX-Trailer: t\r\n\r\n",
    ];
    for piece in pieces {
        s.write_all(piece.as_bytes()).unwrap();
        s.flush().unwrap();
    }
    let first = read_response(&mut r, false).unwrap();
    assert_eq!((first.status, first.text().as_str()), (200, "ok"));
    assert_eq!(first.header("connection"), None, "{}", first.head);
    s.write_all(SMUGGLED).unwrap();
    let second = read_response(&mut r, false).unwrap();
    assert_eq!(
        (second.status, second.text().as_str()),
        (200, "SMUGGLED-RESPONSE")
    );
}

/// A chunked body with more than 1 MiB of content is refused with 413 as
/// soon as a chunk size says so, and the connection closes.
#[test]
fn chunked_body_over_one_mib_is_413_and_closed() {
    let root = root();
    let server = TestServer::start(root.path());
    // One chunk announcing 1 MiB + 1, or many that add up past it.
    let mut many = String::new();
    for _ in 0..16 {
        many.push_str(&format!("10000\r\n{}\r\n", "y".repeat(0x10000)));
    }
    many.push_str("1\r\n");
    for body in ["100001\r\n".to_owned(), many] {
        let mut s = server.connect();
        s.write_all(b"GET /ok.txt HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n")
            .unwrap();
        s.write_all(body.as_bytes()).unwrap();
        s.write_all(SMUGGLED).unwrap();
        let mut r = BufReader::new(s);
        let resp = read_response(&mut r, false).unwrap();
        assert_eq!(resp.status, 413, "{}", resp.head);
        assert_eq!(resp.header("connection"), Some("close"));
        nothing_more(&mut r);
    }
    // Exactly 1 MiB is fine.
    let mut s = server.connect();
    let mut body = String::new();
    for _ in 0..16 {
        body.push_str(&format!("10000\r\n{}\r\n", "y".repeat(0x10000)));
    }
    body.push_str("0\r\n\r\n");
    s.write_all(b"GET /ok.txt HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n")
        .unwrap();
    s.write_all(body.as_bytes()).unwrap();
    s.write_all(SMUGGLED).unwrap();
    let mut r = BufReader::new(s);
    assert_eq!(read_response(&mut r, false).unwrap().status, 200);
    assert_eq!(read_response(&mut r, false).unwrap().status, 200);
}

/// Regression (`Expect: 100-continue` was answered without "100 Continue"
/// and the connection closed without saying why it may): the final answer
/// comes at once, says `Connection: close`, and a body the client sends
/// after it (curl does after a 2xx) is swallowed; even a body that looks
/// like a request is never answered as one.
#[test]
fn expect_continue_body_sent_after_the_answer_is_not_parsed_as_a_request() {
    let root = root();
    let server = TestServer::start(root.path());
    let mut s = server.connect();
    s.write_all(expect_head(SMUGGLED.len()).as_bytes()).unwrap();
    let mut r = BufReader::new(s.try_clone().unwrap());
    let resp = read_response(&mut r, false).unwrap();
    assert_eq!((resp.status, resp.text().as_str()), (200, "ok"));
    assert!(!resp.head.starts_with("HTTP/1.1 100"), "{}", resp.head);
    assert_eq!(resp.header("connection"), Some("close"), "{}", resp.head);
    // The body, after the answer. The server half-closed and lingers, so
    // the write is read and dropped, not reset.
    s.write_all(SMUGGLED).unwrap();
    nothing_more(&mut r);
}

/// The other client behaviour: it skips its body after the answer and sends
/// its next request. That request must not be eaten as the skipped body (a
/// desync), nor answered on a connection we said we would close; the client
/// reconnects and is served.
#[test]
fn expect_continue_client_that_skips_its_body_is_not_desynchronized() {
    let root = root();
    let server = TestServer::start(root.path());
    let mut s = server.connect();
    s.write_all(expect_head(5).as_bytes()).unwrap();
    let mut r = BufReader::new(s.try_clone().unwrap());
    let resp = read_response(&mut r, false).unwrap();
    assert_eq!(resp.status, 200);
    assert_eq!(resp.header("connection"), Some("close"), "{}", resp.head);
    s.write_all(SMUGGLED).unwrap();
    nothing_more(&mut r);
    let again = get(server.addr, "/smuggled.txt", &[]);
    assert_eq!(again.status, 200);
}

/// An Expect request whose body arrives with its head is unambiguous: the
/// body is skipped and the connection kept like any other.
#[test]
fn expect_continue_with_its_body_already_sent_keeps_the_connection() {
    let root = root();
    let server = TestServer::start(root.path());
    let mut bytes = expect_head(5).into_bytes();
    bytes.extend_from_slice(b"hello");
    bytes.extend_from_slice(SMUGGLED);
    let mut s = server.connect();
    s.write_all(&bytes).unwrap();
    let mut r = BufReader::new(s);
    let first = read_response(&mut r, false).unwrap();
    assert_eq!((first.status, first.header("connection")), (200, None));
    let second = read_response(&mut r, false).unwrap();
    assert_eq!(second.text(), "SMUGGLED-RESPONSE");
}
