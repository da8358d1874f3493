//! Descriptor exhaustion: the real binary runs under `ulimit -n 64`. It
//! lowers its connection cap at start so that the connections it accepts
//! always leave descriptors for the files their requests open (clients
//! beyond the cap wait in the backlog, and the server does not spin on
//! them); and when a file still cannot be opened for lack of descriptors
//! (the limit lowered under it), the request gets 503 with `Retry-After`,
//! `accept` backs off instead of spinning, and the server recovers by
//! itself once descriptors are free again.
#![cfg(target_os = "linux")] // /proc, prlimit(1)
mod common;
use common::*;

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use stoke::models::Model;

const LIMIT: usize = 64;
const CLIENTS: usize = 80;
/// Worker threads, pinned so that the connection cap is the same on every
/// machine.
const THREADS: usize = 2;

/// The connection cap the server derives from the limit (`server.rs`,
/// `connection_cap`): 16 descriptors reserved and 1 for the listener, then
/// for the reactor 4 per worker (the reactor-inline: 4 for itself) and 2
/// per connection (its socket and a file); for the blocking models 5 per
/// connection (its socket and its thread's file work).
fn cap() -> usize {
    match model() {
        Model::Reactor => (LIMIT - 16 - 1 - 4 * THREADS) / 2,
        Model::ReactorInline => (LIMIT - 16 - 1 - 4) / 2,
        Model::Pool | Model::ThreadPerConnection => (LIMIT - 16 - 1) / 5,
    }
}

/// How many connections the server holds at once: the cap, or for the pool
/// its threads if fewer.
fn served_at_once() -> usize {
    match model() {
        Model::Pool => cap().min(THREADS),
        _ => cap(),
    }
}
/// Larger than `limits::SMALL_FILE`: sent with sendfile, its descriptor held
/// while the response is written.
const BIG: usize = 256 * 1024;

/// `stoke` started through `sh -c 'ulimit -n 64; exec stoke ...'`, with its
/// stderr drained into `log` by a thread (a full pipe would stall it).
struct LimitedServer {
    addr: SocketAddr,
    child: Child,
    log: Arc<Mutex<String>>,
}

impl LimitedServer {
    fn start(root: &std::path::Path) -> LimitedServer {
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "ulimit -n {LIMIT} && exec \"$0\" \"$1\" --listen 127.0.0.1:0 --keepalive-timeout 60 \
                 --threads {THREADS} \"$2\" \"$3\""
            ))
            .arg(env!("CARGO_BIN_EXE_stoke"))
            .arg(root)
            .args(model_args())
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn sh");
        let mut stderr = BufReader::new(child.stderr.take().unwrap());
        let mut line = String::new();
        let mut early = String::new();
        let addr = loop {
            line.clear();
            if stderr.read_line(&mut line).unwrap() == 0 {
                let _ = child.wait();
                panic!("stoke exited before listening: {early}");
            }
            early.push_str(&line);
            if let Some(rest) = line.split("on http://").nth(1) {
                break rest.trim().trim_end_matches('/').parse().unwrap();
            }
        };
        let log = Arc::new(Mutex::new(early));
        let sink = Arc::clone(&log);
        std::thread::spawn(move || {
            let mut line = String::new();
            while matches!(stderr.read_line(&mut line), Ok(n) if n > 0) {
                sink.lock().unwrap().push_str(&line);
                line.clear();
            }
        });
        LimitedServer { addr, child, log }
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// User + system CPU time the server has used so far.
    fn cpu(&self) -> Duration {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap();
        // Fields after "(comm)": state is field 3, utime 14, stime 15.
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .unwrap()
            .1
            .split_whitespace()
            .collect();
        let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
        let hz: u64 = std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok()?.trim().parse().ok())
            .unwrap_or(100)
            .max(1);
        Duration::from_millis(ticks * 1000 / hz)
    }

    fn alive(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    fn descriptors(&self) -> Vec<usize> {
        std::fs::read_dir(format!("/proc/{}/fd", self.child.id()))
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
            .collect()
    }

    fn open_descriptors(&self) -> usize {
        self.descriptors().len()
    }

    /// The descriptor number the server's next `open` or `accept` gets.
    fn lowest_free_descriptor(&self) -> usize {
        let open = self.descriptors();
        (0..).find(|fd| !open.contains(fd)).unwrap()
    }

    /// Sets the server's soft `RLIMIT_NOFILE` while it runs.
    fn set_descriptor_limit(&self, soft: usize) {
        // util-linux's prlimit(1): no `unsafe` outside src/sys/.
        let status = std::process::Command::new("prlimit")
            .arg(format!("--pid={}", self.child.id()))
            .arg(format!("--nofile={soft}:{LIMIT}"))
            .status()
            .expect("run prlimit (util-linux)");
        assert!(status.success(), "prlimit: {status}");
    }
}

impl Drop for LimitedServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One `GET /ok.txt` with short timeouts; the status if a response came.
fn try_get(addr: SocketAddr) -> Option<u16> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    s.write_all(b"GET /ok.txt HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .ok()?;
    read_response(&mut BufReader::new(s), false)
        .ok()
        .map(|r| r.status)
}

/// Waits (bounded) until the server's log contains `needle`.
fn wait_for_log(server: &LimitedServer, needle: &str) {
    let deadline = Instant::now() + IO_TIMEOUT;
    while !server.log().contains(needle) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        server.log().contains(needle),
        "no {needle:?} in the log:\n{}",
        server.log()
    );
}

/// Regression (the connections accepted under a low descriptor limit used
/// up every descriptor, and then every request answered 500): more clients
/// than descriptors, each asking for a file sent with sendfile. The server
/// serves `CAP` at a time, leaves the rest in the backlog without spinning,
/// and every client gets its whole file; none gets a 5xx.
#[test]
fn connections_at_the_descriptor_limit_still_get_their_files_not_500() {
    let root = TempDir::new("fdlimit");
    let big = pattern(BIG, 14);
    root.write("big.bin", &big);
    let mut server = LimitedServer::start(root.path());
    wait_for_log(&server, &format!("serving at most {} connections", cap()));

    // More clients than descriptors connect and stay idle: the server
    // takes `CAP` of them, the kernel's backlog holds the rest.
    let base = server.open_descriptors();
    let clients: Vec<TcpStream> = (0..CLIENTS).map(|_| connect(server.addr)).collect();
    let deadline = Instant::now() + IO_TIMEOUT;
    while server.open_descriptors() < base + served_at_once() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    // Resource check: at the cap with clients waiting, the server sleeps.
    let before = server.cpu();
    std::thread::sleep(Duration::from_secs(1));
    let used = server.cpu() - before;
    println!("CPU used over ~1 s at the connection cap: {used:?}");
    assert!(
        used < Duration::from_millis(500),
        "server spun: {used:?} of CPU in ~1 s"
    );
    assert_eq!(
        server.open_descriptors(),
        base + served_at_once(),
        "{}",
        server.log()
    );

    // Now every client asks for the big file at once.
    let readers: Vec<_> = clients
        .into_iter()
        .map(|mut s| {
            std::thread::spawn(move || {
                s.write_all(b"GET /big.bin HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
                    .unwrap();
                let resp = read_response(&mut BufReader::new(s), false).unwrap();
                (resp.status, resp.body)
            })
        })
        .collect();
    for (i, reader) in readers.into_iter().enumerate() {
        let (status, body) = reader.join().unwrap();
        assert_eq!(status, 200, "client {i}:\n{}", server.log());
        assert!(body == big, "client {i}: body differs");
    }
    assert!(
        !server.log().contains("out of descriptors"),
        "{}",
        server.log()
    );
    assert!(server.alive());
}

/// A file that can't be opened for lack of descriptors is a moment's
/// overload: 503 with `Retry-After` and `Connection: close`, not 500.
/// (The limit is lowered under the running server, below the descriptors
/// it holds, which the connection cap can't foresee.) Accepting backs off
/// meanwhile, and everything recovers once the limit is back.
#[test]
fn file_open_out_of_descriptors_is_503_with_retry_after() {
    let root = TempDir::new("fd503");
    root.write("ok.txt", "ok");
    root.write("other.txt", "other");
    let mut server = LimitedServer::start(root.path());
    let mut s = connect(server.addr);
    s.write_all(b"GET /ok.txt HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    let mut r = BufReader::new(s.try_clone().unwrap());
    assert_eq!(read_response(&mut r, false).unwrap().status, 200);

    // No descriptor left: the lowest free one is the limit.
    server.set_descriptor_limit(server.lowest_free_descriptor());
    s.write_all(b"GET /other.txt HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    let resp = read_response(&mut r, false).unwrap();
    assert_eq!(resp.status, 503, "{}\n{}", resp.head, server.log());
    assert_eq!(resp.header("retry-after"), Some("1"));
    assert_eq!(resp.header("connection"), Some("close"));
    assert!(closed_by_server(&mut r));
    wait_for_log(&server, "out of descriptors opening other.txt");

    // A new client meanwhile: accept fails, and the server backs off.
    server.set_descriptor_limit(server.lowest_free_descriptor());
    let waiting = std::thread::spawn({
        let addr = server.addr;
        move || {
            let mut s = connect(addr);
            s.write_all(b"GET /other.txt HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
                .unwrap();
            read_response(&mut BufReader::new(s), false).map(|r| r.status)
        }
    });
    wait_for_log(&server, "pausing new connections");
    server.set_descriptor_limit(LIMIT);
    assert_eq!(waiting.join().unwrap().unwrap(), 200, "{}", server.log());
    assert_eq!(try_get(server.addr), Some(200));
    assert!(server.alive());
}
