//! `--reactors N`: N event loops share the listeners and the pool. Real
//! server, real sockets; the connection count, the shutdown summary and the
//! threads' names must cover every loop.

mod common;

use std::io::{BufReader, Write};
use std::time::{Duration, Instant};

use common::{model, read_response, TempDir, TestServer};
use stoke::models::Model;

/// Regression (`--reactors` did not exist; and a count kept per loop would
/// report one loop's connections only): two loops serve clients together,
/// `--max-connections` and `open_connections` count both, the shutdown
/// summary adds both up, and loop 1 runs on a thread named
/// `stoke-reactor-1`.
#[test]
fn two_event_loops_serve_and_count_together() {
    if !matches!(model(), Model::Reactor | Model::ReactorInline) {
        println!(
            "SKIPPED: --reactors is for the reactor models, not {}",
            model()
        );
        return;
    }
    let root = TempDir::new("reactors");
    root.write("index.html", "hello");
    let server = TestServer::with(root.path(), |c| c.reactors = 2);
    const CLIENTS: usize = 24;
    let mut clients: Vec<_> = (0..CLIENTS).map(|_| server.connect()).collect();
    for (i, s) in clients.iter_mut().enumerate() {
        for _ in 0..2 {
            s.write_all(b"GET /index.html HTTP/1.1\r\nHost: t\r\n\r\n")
                .unwrap();
            let r = read_response(&mut BufReader::new(&mut *s), false).unwrap();
            assert_eq!(r.status, 200, "client {i}");
        }
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while server.open_connections() != CLIENTS {
        assert!(
            Instant::now() < deadline,
            "open_connections is {}, not {CLIENTS}",
            server.open_connections()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    // Loop 0 starts the others before it serves anyone.
    assert!(
        thread_named("stoke-reactor-1"),
        "no thread named stoke-reactor-1"
    );
    drop(clients);
    let summary = server.stop();
    assert_eq!(summary.connections, CLIENTS as u64);
    assert_eq!(summary.requests, 2 * CLIENTS as u64);
}

/// Whether a thread of this process has that name (Linux: /proc; elsewhere
/// there is no portable way to look, so the check passes).
fn thread_named(name: &str) -> bool {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return true;
    };
    tasks
        .flatten()
        .any(|t| std::fs::read_to_string(t.path().join("comm")).is_ok_and(|c| c.trim() == name))
}
