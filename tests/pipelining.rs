//! Pipelining: several requests in one write (or one byte per write) are
//! all answered, in request order, with the right bodies; a 404 in the
//! middle does not disturb the others; a GET's body (Content-Length or
//! chunked) is skipped rather than parsed as the next request.
mod common;
use common::*;

use std::io::{BufReader, Write};

/// A root with `count` files `/f0.txt ...` of distinct contents.
fn files(tag: &str, count: usize) -> (TempDir, Vec<Vec<u8>>) {
    let root = TempDir::new(tag);
    let bodies: Vec<Vec<u8>> = (0..count)
        .map(|i| pattern(100 + i * 997, i as u64 + 1))
        .collect();
    for (i, body) in bodies.iter().enumerate() {
        root.write(&format!("f{i}.txt"), body);
    }
    (root, bodies)
}

fn request(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n")
}

#[test]
fn ten_pipelined_requests_in_one_write_are_answered_in_order() {
    let (root, bodies) = files("pipe10", 10);
    let server = TestServer::start(root.path());
    let all: String = (0..10).map(|i| request(&format!("/f{i}.txt"))).collect();
    let mut s = server.connect();
    s.write_all(all.as_bytes()).unwrap();
    let mut r = BufReader::new(s);
    for (i, body) in bodies.iter().enumerate() {
        let resp = read_response(&mut r, false).unwrap();
        assert_eq!(resp.status, 200, "response {i}");
        assert!(resp.body == *body, "response {i}: body of another file");
    }
    assert_eq!(server.stop().requests, 10);
}

#[test]
fn request_sent_one_byte_per_write_gets_a_correct_response() {
    let (root, bodies) = files("pipe1b", 1);
    let server = TestServer::start(root.path());
    let mut s = server.connect();
    s.set_nodelay(true).unwrap();
    for b in request("/f0.txt").bytes() {
        s.write_all(&[b]).unwrap();
        s.flush().unwrap();
    }
    let resp = read_response(&mut BufReader::new(s), false).unwrap();
    assert_eq!(resp.status, 200);
    assert_eq!(resp.body, bodies[0]);
}

#[test]
fn a_404_in_the_middle_of_a_pipeline_keeps_the_order() {
    let (root, bodies) = files("pipe404", 4);
    let server = TestServer::start(root.path());
    // (path, expected status, expected body)
    let table: Vec<(&str, u16, Option<&Vec<u8>>)> = vec![
        ("/f0.txt", 200, Some(&bodies[0])),
        ("/f1.txt", 200, Some(&bodies[1])),
        ("/missing.txt", 404, None),
        ("/f2.txt", 200, Some(&bodies[2])),
        ("/f3.txt", 200, Some(&bodies[3])),
    ];
    let all: String = table.iter().map(|(p, _, _)| request(p)).collect();
    let mut s = server.connect();
    s.write_all(all.as_bytes()).unwrap();
    let mut r = BufReader::new(s);
    for (path, status, body) in &table {
        let resp = read_response(&mut r, false).unwrap();
        assert_eq!(resp.status, *status, "{path}");
        if let Some(body) = body {
            assert!(resp.body == **body, "{path}: wrong body");
        }
    }
}

#[test]
fn get_with_a_content_length_body_is_skipped_before_the_next_request() {
    let root = TempDir::new("pipebody");
    root.write("a", "contents of a");
    root.write("b", "contents of b");
    let server = TestServer::start(root.path());
    let mut s = server.connect();
    s.write_all(
        b"GET /a HTTP/1.1\r\nHost: test\r\nContent-Length: 5\r\n\r\nhello\
          GET /b HTTP/1.1\r\nHost: test\r\n\r\n",
    )
    .unwrap();
    let mut r = BufReader::new(s);
    let first = read_response(&mut r, false).unwrap();
    assert_eq!(
        (first.status, first.text().as_str()),
        (200, "contents of a")
    );
    let second = read_response(&mut r, false).unwrap();
    assert_eq!(
        (second.status, second.text().as_str()),
        (200, "contents of b")
    );
    assert_eq!(server.stop().requests, 2);
}

#[test]
fn body_arriving_after_the_response_is_skipped_before_the_next_request() {
    let root = TempDir::new("pipebody2");
    root.write("a", "contents of a");
    root.write("b", "contents of b");
    let server = TestServer::start(root.path());
    let s = server.connect();
    let mut w = s.try_clone().unwrap();
    let mut r = BufReader::new(s);
    w.write_all(b"GET /a HTTP/1.1\r\nHost: test\r\nContent-Length: 11\r\n\r\nhel")
        .unwrap();
    let first = read_response(&mut r, false).unwrap();
    assert_eq!(
        (first.status, first.text().as_str()),
        (200, "contents of a")
    );
    // The rest of the body, then the next request, in a later write.
    w.write_all(b"lo worldGET /b HTTP/1.1\r\nHost: test\r\n\r\n")
        .unwrap();
    let second = read_response(&mut r, false).unwrap();
    assert_eq!(
        (second.status, second.text().as_str()),
        (200, "contents of b")
    );
}

#[test]
fn head_in_a_pipeline_sends_no_body_and_keeps_the_framing() {
    let (root, bodies) = files("pipehead", 2);
    let server = TestServer::start(root.path());
    let mut s = server.connect();
    s.write_all(
        format!(
            "{}HEAD /f1.txt HTTP/1.1\r\nHost: test\r\n\r\n{}",
            request("/f0.txt"),
            request("/f1.txt")
        )
        .as_bytes(),
    )
    .unwrap();
    let mut r = BufReader::new(s);
    // (HEAD?, expected body)
    for (head, body) in [(false, &bodies[0]), (true, &bodies[1]), (false, &bodies[1])] {
        let resp = read_response(&mut r, head).unwrap();
        assert_eq!(resp.status, 200);
        let len: usize = resp.header("content-length").unwrap().parse().unwrap();
        assert_eq!(len, body.len());
        if !head {
            assert!(resp.body == *body);
        }
    }
}

#[test]
fn long_pipeline_larger_than_one_read_is_answered_in_full() {
    let (root, bodies) = files("pipelong", 5);
    let server = TestServer::start(root.path());
    const COUNT: usize = 600; // ~25 KB of requests: more than one 16 KiB read
    let all: String = (0..COUNT)
        .map(|i| request(&format!("/f{}.txt", i % 5)))
        .collect();
    let s = server.connect();
    let mut w = s.try_clone().unwrap();
    // Write from another thread so neither side can block the other.
    let writer = std::thread::spawn(move || w.write_all(all.as_bytes()));
    let mut r = BufReader::new(s);
    for i in 0..COUNT {
        let resp = read_response(&mut r, false).unwrap();
        assert_eq!(resp.status, 200, "response {i}");
        assert!(resp.body == bodies[i % 5], "response {i}: wrong body");
    }
    writer.join().unwrap().unwrap();
    assert_eq!(server.stop().requests, COUNT as u64);
}

#[test]
fn chunked_request_body_is_skipped_and_the_next_request_answered() {
    let root = TempDir::new("pipechunked");
    root.write("a", "contents of a");
    root.write("b", "contents of b");
    let server = TestServer::start(root.path());
    let mut s = server.connect();
    s.write_all(
        b"GET /a HTTP/1.1\r\nHost: test\r\nTransfer-Encoding: chunked\r\n\r\n\
          5\r\nhello\r\n0\r\n\r\n\
          GET /b HTTP/1.1\r\nHost: test\r\n\r\n",
    )
    .unwrap();
    let mut r = BufReader::new(s);
    for want in ["contents of a", "contents of b"] {
        let resp = read_response(&mut r, false).unwrap();
        assert_eq!((resp.status, resp.text().as_str()), (200, want));
        assert_eq!(resp.header("connection"), None);
    }
    drop(r);
    assert_eq!(server.stop().requests, 2);
}
