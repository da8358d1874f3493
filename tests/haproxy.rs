//! Behind a real load balancer: HAProxy (contrib/haproxy.cfg with loopback
//! ports filled in) in front of two stoke processes, health-checking them
//! and sending PROXY v2 headers. Requests spread across both, each access
//! log shows the client's address (not HAProxy's), and when one instance
//! is stopped (SIGTERM) or killed (SIGKILL) under steady load, HAProxy
//! marks it down and the client sees no failed request.
//!
//! Without HAProxy the test is skipped, except under CI.
mod common;
use common::child::{listening_addr, Proc};
use common::load::{Client, Load, Outcome, Tally};
use common::*;

use std::io::{BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// HAProxy connects to the backends from this loopback address, and only it
/// is a trusted proxy: the address stoke logs can only come from the header.
const HAPROXY_SOURCE: &str = "127.0.0.3";

/// Requests each load phase must complete before the next step.
const PHASE_REQUESTS: usize = 60;

/// Upper bound on the whole load run.
const LOAD_LIMIT: Duration = Duration::from_secs(90);

fn stoke(root: &TempDir, listen: &str) -> (Proc, SocketAddr) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_stoke"));
    cmd.arg(root.path())
        .args(["--listen", listen, "--proxy-protocol", "--trusted-proxy"])
        .arg(HAPROXY_SOURCE)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null());
    let mut p = Proc::spawn(cmd);
    let line = p.wait("on http://");
    (p, listening_addr(&line, "http"))
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One GET through the balancer on `conn` (a keep-alive connection, made
/// anew if there is none). Returns the status, or an error text.
fn request(front: SocketAddr, conn: &mut Option<BufReader<TcpStream>>) -> Result<u16, String> {
    if conn.is_none() {
        let s = TcpStream::connect(front).map_err(|e| format!("connect: {e}"))?;
        s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        *conn = Some(BufReader::new(s));
    }
    let reader = conn.as_mut().unwrap();
    let sent = reader
        .get_mut()
        .write_all(b"GET /index.html HTTP/1.1\r\nHost: lb\r\n\r\n");
    let result = sent
        .map_err(|e| format!("write: {e}"))
        .and_then(|()| read_response(reader, false).map_err(|e| format!("read: {e}")));
    match result {
        Ok(r) if r.text() == "behind haproxy\n" => {
            if r.header("connection") == Some("close") {
                *conn = None;
            }
            Ok(r.status)
        }
        Ok(r) => {
            *conn = None;
            Err(format!("{} {:?}", r.status, r.text()))
        }
        Err(e) => {
            *conn = None;
            Err(e)
        }
    }
}

fn access_lines(p: &mut Proc) -> Vec<String> {
    p.drain()
        .iter()
        .filter(|l| l.contains("\"GET /index.html HTTP/1.1\""))
        .cloned()
        .collect()
}

#[test]
fn haproxy_spreads_load_and_survives_a_stopped_and_a_killed_backend() {
    if !have("haproxy") {
        if std::env::var_os("CI").is_some() {
            panic!("haproxy must be installed in CI (scripts/test-deps.sh)");
        }
        println!("SKIPPED: haproxy not installed");
        return;
    }
    let root = TempDir::new("haproxy");
    root.write("index.html", "behind haproxy\n");
    root.write("health.txt", "ok\n");
    let (mut s1, addr1) = stoke(&root, "127.0.0.1:0");
    let (mut s2, addr2) = stoke(&root, "127.0.0.1:0");
    let front = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let config = include_str!("../contrib/haproxy.cfg")
        .replace("{{FRONTEND}}", &front.to_string())
        .replace("{{CHECK_PATH}}", "/health.txt")
        .replace("{{SOURCE}}", HAPROXY_SOURCE)
        .replace("{{SERVER1}}", &addr1.to_string())
        .replace("{{SERVER2}}", &addr2.to_string());
    assert!(!config.contains("{{"), "every placeholder filled");
    let dir = TempDir::new("haproxy-cfg");
    let cfg = dir.write("haproxy.cfg", &config);
    let mut cmd = Command::new("haproxy");
    cmd.arg("-db").arg("-f").arg(&cfg).stdin(Stdio::null());
    let mut lb = Proc::spawn(cmd);
    // Both backends pass their health checks (made with PROXY headers).
    s1.wait("\"GET /health.txt HTTP/1.1\" 200");
    s2.wait("\"GET /health.txt HTTP/1.1\" 200");
    let deadline = Instant::now() + IO_TIMEOUT;
    while TcpStream::connect(front).is_err() {
        assert!(Instant::now() < deadline, "haproxy not listening");
        std::thread::sleep(Duration::from_millis(20));
    }

    // 1. Requests spread over both, and the logs carry the client address.
    let mut conn = None;
    for i in 0..40 {
        assert_eq!(request(front, &mut conn), Ok(200), "request {i}");
    }
    for (name, p) in [("s1", &mut s1), ("s2", &mut s2)] {
        // The log line is written after the response: wait for the first.
        p.wait("\"GET /index.html HTTP/1.1\" 200");
        let lines = access_lines(p);
        assert!(!lines.is_empty(), "{name} served nothing");
        for l in &lines {
            assert!(l.starts_with("127.0.0.1 - - ["), "{name}: {l}");
        }
    }

    // 2. Under steady load: stop s1 gracefully, bring it back, kill s2.
    let load = Load::start(LOAD_LIMIT, |client| {
        let mut conn = None;
        move || {
            if client == Client::NewConnectionEachRequest {
                conn = None;
            }
            let outcome = match request(front, &mut conn) {
                Ok(200) => Outcome::Ok,
                Ok(status) => Outcome::Failed(format!("status {status}")),
                Err(e) => Outcome::Failed(e),
            };
            std::thread::sleep(Duration::from_millis(2));
            outcome
        }
    });
    load.more(PHASE_REQUESTS);
    s1.signal("-TERM");
    lb.wait("stoke/s1 is DOWN");
    load.more(PHASE_REQUESTS);
    let _ = s1.child.wait();
    let (s1_again, _) = stoke(&root, &addr1.to_string());
    lb.wait("stoke/s1 is UP");
    load.more(PHASE_REQUESTS);
    s2.signal("-KILL");
    lb.wait("stoke/s2 is DOWN");
    load.more(PHASE_REQUESTS);
    let Tally { ok, failures, .. } = load.finish();
    assert!(ok >= 4 * PHASE_REQUESTS);
    assert!(
        failures.is_empty(),
        "{} of {} requests failed: {failures:?}",
        failures.len(),
        ok + failures.len()
    );
    drop(s1_again);
}
