//! Many clients at once: 1,000 connections, all open before the first
//! request, each making two keep-alive requests for files from 10 B to
//! 200 KB; every body comes back byte-correct and every request is counted.
//! And a burst of new connections reaches the pool as one batch.
mod common;
use common::*;
use stoke::models::Model;

use std::io::{BufReader, Write};
use std::net::TcpStream;
use std::sync::{Arc, Barrier};
use std::time::Duration;

const THREADS: usize = 50;
const PER_THREAD: usize = 20;
const SIZES: [usize; 6] = [10, 1_000, 10_000, 64 * 1024, 100_000, 200_000];

fn request(i: usize) -> String {
    format!("GET /f{i}.bin HTTP/1.1\r\nHost: t\r\n\r\n")
}

#[test]
fn a_thousand_clients_at_once_get_byte_correct_bodies() {
    raise_nofile_limit(4096);
    let root = TempDir::new("concurrency");
    let bodies: Arc<Vec<Vec<u8>>> = Arc::new(
        SIZES
            .iter()
            .enumerate()
            .map(|(i, &len)| pattern(len, 100 + i as u64))
            .collect(),
    );
    for (i, body) in bodies.iter().enumerate() {
        root.write(&format!("f{i}.bin"), body);
    }
    // Idle connections wait at the barrier until all 1,000 are open; a
    // generous keep-alive timeout keeps a slow machine from closing them.
    let server = TestServer::with(root.path(), |c| {
        c.keepalive_timeout = Duration::from_secs(60);
        serve_at_once(c, THREADS * PER_THREAD);
    });
    let addr = server.addr;
    let barrier = Arc::new(Barrier::new(THREADS));
    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            let barrier = Arc::clone(&barrier);
            let bodies = Arc::clone(&bodies);
            std::thread::spawn(move || {
                let mut conns: Vec<(TcpStream, BufReader<TcpStream>)> = (0..PER_THREAD)
                    .map(|_| {
                        let s = connect(addr);
                        let r = BufReader::new(s.try_clone().unwrap());
                        (s, r)
                    })
                    .collect();
                barrier.wait();
                for round in 0..2 {
                    let file = |c: usize| (t * PER_THREAD + c + round * 7) % SIZES.len();
                    // Every connection has a request in flight before any
                    // response is read.
                    for (c, (w, _)) in conns.iter_mut().enumerate() {
                        w.write_all(request(file(c)).as_bytes()).unwrap();
                    }
                    for (c, (_, r)) in conns.iter_mut().enumerate() {
                        let resp = read_response(r, false).unwrap();
                        assert_eq!(resp.status, 200, "thread {t} conn {c} round {round}");
                        assert!(
                            resp.body == bodies[file(c)],
                            "thread {t} conn {c} round {round}: wrong body for f{}",
                            file(c)
                        );
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("client thread failed");
    }
    let summary = server.stop();
    let clients = (THREADS * PER_THREAD) as u64;
    assert_eq!(summary.connections, clients);
    assert_eq!(summary.requests, 2 * clients);
    assert_eq!(summary.cut_off, 0);
}

/// Regression (each accepted connection whose request was already there
/// handed its job to the pool on its own: one inotify drain and one
/// worker wake-up per connection, which cost `Connection: close` loads
/// about a fifth of their requests per CPU-second): sixteen connections
/// that wait in the backlog with their requests sent are accepted in one
/// loop turn, and that turn hands all sixteen jobs over at once.
#[test]
fn a_burst_of_accepted_connections_is_handed_to_the_pool_as_one_batch() {
    const CLIENTS: usize = 16;
    if !skip_unless(
        Model::Reactor,
        "a_burst_of_accepted_connections_is_handed_to_the_pool_as_one_batch",
    ) {
        return;
    }
    let root = TempDir::new("accept-burst");
    root.write("index.html", "burst");
    let mut config = config_for(root.path(), Model::Reactor);
    // One loop: with several, the loops share the burst (and each hands
    // over its part).
    config.reactors = 1;
    let mut clients = Vec::new();
    let server = TestServer::bound_then(config, |addr| {
        for _ in 0..CLIENTS {
            let mut c = connect(addr);
            c.write_all(b"GET /index.html HTTP/1.1\r\nHost: t\r\n\r\n")
                .unwrap();
            clients.push(c);
        }
    });
    for c in clients {
        let response = read_response(&mut BufReader::new(c), false).unwrap();
        assert_eq!(response.status, 200);
        assert_eq!(response.body, b"burst");
    }
    assert_eq!(server.pool_handoffs(), 1);
}
