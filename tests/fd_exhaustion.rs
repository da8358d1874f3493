//! Descriptor exhaustion: the real binary runs under `ulimit -n 64` and gets
//! more connections than it has descriptors for. `accept` then fails with
//! EMFILE while the listener stays readable; the server must back off rather
//! than spin on the CPU, keep answering the connections it has, and recover
//! by itself once clients go away.
mod common;
use common::*;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const LIMIT: usize = 64;
const CLIENTS: usize = 80;

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
                "ulimit -n {LIMIT} && exec \"$0\" \"$1\" --listen 127.0.0.1:0 --keepalive-timeout 60 \"$2\" \"$3\""
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
        let addr = loop {
            line.clear();
            if stderr.read_line(&mut line).unwrap() == 0 {
                let _ = child.wait();
                panic!("stoke exited before listening");
            }
            if let Some(rest) = line.split("on http://").nth(1) {
                break rest.trim().trim_end_matches('/').parse().unwrap();
            }
        };
        let log = Arc::new(Mutex::new(String::new()));
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
        // SAFETY: sysconf has no preconditions.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
        Duration::from_millis(ticks * 1000 / hz)
    }

    fn alive(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
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

#[test]
fn out_of_descriptors_backs_off_without_spinning_and_recovers() {
    let root = TempDir::new("fdlimit");
    root.write("ok.txt", "ok");
    let mut server = LimitedServer::start(root.path());
    assert_eq!(try_get(server.addr), Some(200));

    // More connections than descriptors: the kernel completes them all
    // (backlog); the server accepts until EMFILE.
    let mut clients: Vec<TcpStream> = (0..CLIENTS).map(|_| connect(server.addr)).collect();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !server.log().contains("pausing new connections") && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        server.log().contains("pausing new connections"),
        "server never reported running out of descriptors:\n{}",
        server.log()
    );

    // Resource check: while the listener stays readable and accept keeps
    // failing, the server must sleep, not spin.
    let before = server.cpu();
    std::thread::sleep(Duration::from_secs(1));
    let used = server.cpu() - before;
    println!("CPU used over ~1 s at the descriptor limit: {used:?}");
    assert!(
        used < Duration::from_millis(500),
        "server spun: {used:?} of CPU in ~1 s"
    );
    assert!(server.alive(), "server died at the descriptor limit");

    // A connection it did accept is still answered (from the small-file
    // cache or with an error status, but answered).
    let first = &mut clients[0];
    first
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    first
        .write_all(b"GET /ok.txt HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut head = [0u8; 12];
    first.read_exact(&mut head).unwrap();
    assert!(
        head.starts_with(b"HTTP/1.1 200") || head.starts_with(b"HTTP/1.1 5"),
        "{:?}",
        String::from_utf8_lossy(&head)
    );

    // Everyone leaves; the server recovers without help.
    drop(clients);
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut last = None;
    while Instant::now() < deadline {
        last = try_get(server.addr);
        if last == Some(200) {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        last,
        Some(200),
        "no recovery after clients left:\n{}",
        server.log()
    );
    assert!(server.alive());
}
