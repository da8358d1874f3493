//! Clients that vanish mid-download: the server drops the connection, keeps
//! serving everyone else, and still shuts down cleanly with every request
//! counted and nothing left hanging.
mod common;
use common::*;

use std::io::{Read, Write};
use std::net::Shutdown;

const BIG: usize = 16 * 1024 * 1024;
const ROUNDS: u64 = 20;

#[test]
fn clients_dropping_a_large_download_do_not_disturb_the_server() {
    let root = TempDir::new("disconnect");
    root.write("big.bin", pattern(BIG, 7));
    root.write("small.txt", "still here");
    let server = TestServer::start(root.path());
    for round in 0..ROUNDS {
        let mut s = server.connect();
        s.write_all(b"GET /big.bin HTTP/1.1\r\nHost: t\r\n\r\n")
            .unwrap();
        let mut got = vec![0u8; 4096];
        s.read_exact(&mut got).unwrap();
        assert!(got.starts_with(b"HTTP/1.1 200"), "round {round}");
        if round % 2 == 0 {
            let _ = s.shutdown(Shutdown::Both);
        }
        drop(s);

        let r = get(server.addr, "/small.txt", &[]);
        assert_eq!(
            (r.status, r.text().as_str()),
            (200, "still here"),
            "round {round}"
        );
    }
    let summary = server.stop();
    assert_eq!(summary.requests, 2 * ROUNDS);
    assert_eq!(summary.connections, 2 * ROUNDS);
    assert_eq!(summary.cut_off, 0, "connections left open at shutdown");
}

#[test]
fn client_that_half_closes_after_pipelining_gets_every_response() {
    let root = TempDir::new("halfclose");
    root.write("a", "contents of a");
    root.write("b", "contents of b");
    let server = TestServer::start(root.path());
    let mut s = server.connect();
    s.write_all(b"GET /a HTTP/1.1\r\nHost: t\r\n\r\nGET /b HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    s.shutdown(Shutdown::Write).unwrap();
    let mut r = std::io::BufReader::new(s);
    for body in ["contents of a", "contents of b"] {
        let resp = read_response(&mut r, false).unwrap();
        assert_eq!((resp.status, resp.text().as_str()), (200, body));
    }
    assert!(closed_by_server(&mut r), "no EOF after the client's EOF");
}

#[test]
fn client_gone_before_its_response_is_ready_is_cleaned_up() {
    let root = TempDir::new("gone");
    root.write("big.bin", pattern(BIG, 9));
    let server = TestServer::start(root.path());
    for _ in 0..ROUNDS {
        let mut s = server.connect();
        s.write_all(b"GET /big.bin HTTP/1.1\r\nHost: t\r\n\r\n")
            .unwrap();
        drop(s);
    }
    let r = get(server.addr, "/big.bin", &[]);
    assert_eq!(r.status, 200);
    assert!(r.body == pattern(BIG, 9));
    let summary = server.stop();
    assert_eq!(summary.connections, ROUNDS + 1);
    assert_eq!(summary.cut_off, 0, "connections left open at shutdown");
}
