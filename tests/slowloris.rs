//! Slowloris: 1,000 connections that each keep trickling one byte of a
//! never-ending request head every ~100 ms. The header timeout is a budget
//! for the whole head, not per byte, so every one of them must be answered
//! 408 (or closed) while it is still sending; meanwhile a normal client is
//! served, and afterwards no connection is left behind.
mod common;
use common::*;

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

const SLOW: usize = 1000;
/// Interval between two bytes on each slow connection.
const TRICKLE: Duration = Duration::from_millis(100);
/// Hang guard: with a 1 s header timeout every slow connection must be
/// closed long before this, however slowly the machine runs the test.
const GIVE_UP: Duration = Duration::from_secs(15);

/// What a slow connection has seen from the server so far.
#[derive(Clone, Debug, Default)]
struct Seen {
    /// First bytes the server sent (the 408 response, if any).
    data: Vec<u8>,
    /// The server closed it (EOF or reset).
    closed: bool,
}

/// Non-blocking look at the socket: records bytes and closure.
fn observe(s: &mut TcpStream, seen: &mut Seen) {
    let mut buf = [0u8; 512];
    loop {
        match s.read(&mut buf) {
            Ok(0) => {
                seen.closed = true;
                return;
            }
            Ok(n) => {
                if seen.data.len() < 64 {
                    seen.data.extend_from_slice(&buf[..n]);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => {
                seen.closed = true;
                return;
            }
        }
    }
}

#[test]
fn trickling_heads_are_cut_off_by_the_total_header_timeout() {
    raise_nofile_limit(4 * SLOW as libc::rlim_t + 256);
    let root = TempDir::new("slowloris");
    root.write("a.txt", "served while under attack");
    let server = TestServer::with(root.path(), |c| {
        c.header_timeout = Duration::from_secs(1);
        // Keep-alive idle time must not be what closes them.
        c.keepalive_timeout = Duration::from_secs(60);
        // The slow ones and the normal client, all at once.
        serve_at_once(c, SLOW + 1);
    });
    assert!(server.open_connections() == 0);

    let mut slow: Vec<TcpStream> = (0..SLOW)
        .map(|_| {
            let mut s = connect(server.addr);
            s.write_all(b"G").unwrap();
            s.set_nonblocking(true).unwrap();
            s
        })
        .collect();
    // Every connection gets the same never-ending header, one byte a tick.
    let head: Vec<u8> = b"ET /a.txt HTTP/1.1\r\nHost: t\r\nX-Slow: "
        .iter()
        .copied()
        .chain(std::iter::repeat(b'a'))
        .take(4096)
        .collect();

    let mut seen = vec![Seen::default(); SLOW];
    let mut normal = None;
    let start = Instant::now();
    let mut tick = 0usize;
    while seen.iter().any(|s| !s.closed) && start.elapsed() < GIVE_UP {
        for (s, seen) in slow.iter_mut().zip(seen.iter_mut()) {
            if seen.closed {
                continue;
            }
            observe(s, seen);
            if seen.closed || !seen.data.is_empty() {
                continue;
            }
            match s.write(&head[tick % head.len()..][..1]) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(_) => seen.closed = true,
            }
        }
        if normal.is_none() {
            // A normal client is served while all of them are connected.
            normal = Some(get(server.addr, "/a.txt", &[]));
        }
        tick += 1;
        std::thread::sleep(TRICKLE);
    }
    let normal = normal.unwrap();
    assert_eq!(
        (normal.status, normal.text().as_str()),
        (200, "served while under attack")
    );
    let still_open = seen.iter().filter(|s| !s.closed).count();
    assert_eq!(
        still_open, 0,
        "{still_open} of {SLOW} trickling connections were never closed \
         (per-byte instead of total header timeout?)"
    );
    for (i, s) in seen.iter().enumerate() {
        assert!(
            s.data.is_empty() || s.data.starts_with(b"HTTP/1.1 408"),
            "connection {i} got {:?}",
            String::from_utf8_lossy(&s.data)
        );
    }
    let answered = seen.iter().filter(|s| !s.data.is_empty()).count();
    println!("{answered} of {SLOW} slow connections got a 408 before EOF ({tick} ticks)");
    drop(slow);

    let deadline = Instant::now() + Duration::from_secs(10);
    while server.open_connections() != 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(server.open_connections(), 0, "connections left open");
    let summary = server.stop();
    assert_eq!(summary.cut_off, 0);
    assert!(summary.connections > SLOW as u64);
}
