//! Soak: 16 client threads run a seeded random mix of everything clients do
//! (plain GETs, keep-alive sequences, pipelined bursts, heads abandoned
//! halfway, downloads dropped mid-body, ranges, conditional requests, a slow
//! reader of a 2 MiB file) for STOKE_SOAK_SECONDS (default 15, at most 30).
//! Every completed response is byte-checked. Afterwards nothing leaks: no
//! connection, no descriptor (counted in /proc/self/fd before the server
//! starts and after it stops), no unbounded memory, no dead thread.
mod common;
use common::*;

use std::io::{BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

const THREADS: u64 = 16;
const KIB: usize = 1024;

/// xorshift64*: a seeded PRNG, no crates.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform-ish in `lo..hi` (hi > lo).
    fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + (self.next() % (hi - lo) as u64) as usize
    }
}

/// The served files: (URL path, contents).
type Files = Arc<Vec<(&'static str, Vec<u8>)>>;

fn fd_count() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

fn rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kb: u64 = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .expect("VmRSS");
    kb * 1024
}

fn request(path: &str, extra: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: soak\r\n{extra}\r\n")
}

fn check(resp: &RawResponse, path: &str, body: &[u8], what: &str) {
    assert_eq!(resp.status, 200, "{what} {path}: {}", resp.head);
    assert!(resp.body == body, "{what} {path}: body differs");
}

/// One client thread's work until `end`; panics on any wrong byte.
fn client(addr: SocketAddr, files: &Files, seed: u64, end: Instant) -> u64 {
    let mut rng = Rng::new(seed);
    let mut ops = 0;
    while Instant::now() < end {
        ops += 1;
        let (path, body) = &files[rng.range(0, files.len())];
        let (path, body) = (*path, &body[..]);
        match rng.range(0, 8) {
            0 => {
                let r = get(addr, path, &[]);
                check(&r, path, body, "plain");
            }
            1 => {
                // Keep-alive sequence, ending with close or a drop.
                let mut s = connect(addr);
                let n = rng.range(2, 6);
                let close_last = rng.range(0, 2) == 0;
                let mut r = BufReader::new(s.try_clone().unwrap());
                for i in 0..n {
                    let (p, b) = &files[rng.range(0, files.len())];
                    let extra = if close_last && i == n - 1 {
                        "Connection: close\r\n"
                    } else {
                        ""
                    };
                    s.write_all(request(p, extra).as_bytes()).unwrap();
                    check(&read_response(&mut r, false).unwrap(), p, b, "keep-alive");
                }
                if close_last {
                    assert!(closed_by_server(&mut r), "no EOF after Connection: close");
                }
            }
            2 => {
                // Pipelined burst in one write.
                let picks: Vec<usize> = (0..rng.range(2, 9))
                    .map(|_| rng.range(0, files.len()))
                    .collect();
                let burst: String = picks.iter().map(|&i| request(files[i].0, "")).collect();
                let mut s = connect(addr);
                s.write_all(burst.as_bytes()).unwrap();
                let mut r = BufReader::new(s);
                for &i in &picks {
                    let resp = read_response(&mut r, false).unwrap();
                    check(&resp, files[i].0, &files[i].1, "pipelined");
                }
            }
            3 => {
                // Part of a head, then gone.
                let full = request(path, "User-Agent: soak\r\n");
                let cut = rng.range(1, full.len());
                let mut s = connect(addr);
                let _ = s.write_all(&full.as_bytes()[..cut]);
                if rng.range(0, 2) == 0 {
                    let _ = s.shutdown(Shutdown::Both);
                }
            }
            4 => {
                // Gone in the middle of the body.
                let mut s = connect(addr);
                s.write_all(request("/big.bin", "").as_bytes()).unwrap();
                let mut some = vec![0u8; rng.range(1, 256 * KIB)];
                let _ = s.read_exact(&mut some);
                if rng.range(0, 2) == 0 {
                    let _ = s.shutdown(Shutdown::Both);
                }
            }
            5 => {
                // A single range.
                let start = rng.range(0, body.len());
                let last = rng.range(start, body.len());
                let extra = format!("Range: bytes={start}-{last}\r\nConnection: close\r\n");
                let mut s = connect(addr);
                s.write_all(request(path, &extra).as_bytes()).unwrap();
                let resp = read_response(&mut BufReader::new(s), false).unwrap();
                assert_eq!(
                    resp.status, 206,
                    "range {path} {start}-{last}: {}",
                    resp.head
                );
                let expected = format!("bytes {start}-{last}/{}", body.len());
                assert_eq!(resp.header("content-range"), Some(expected.as_str()));
                assert!(
                    resp.body == body[start..=last],
                    "range {path}: bytes differ"
                );
            }
            6 => {
                // Conditional: the ETag just received → 304.
                let mut s = connect(addr);
                let mut r = BufReader::new(s.try_clone().unwrap());
                s.write_all(request(path, "").as_bytes()).unwrap();
                let first = read_response(&mut r, false).unwrap();
                check(&first, path, body, "before 304");
                let etag = first.header("etag").expect("ETag").to_owned();
                let extra = format!("If-None-Match: {etag}\r\n");
                s.write_all(request(path, &extra).as_bytes()).unwrap();
                let second = read_response(&mut r, false).unwrap();
                assert_eq!(second.status, 304, "{path}: {}", second.head);
                assert!(second.body.is_empty());
            }
            _ => {
                // Slow reader of the 2 MiB file, in small pieces.
                let (p, b) = files.iter().find(|(p, _)| *p == "/big.bin").unwrap();
                let mut s = connect(addr);
                s.write_all(request(p, "Connection: close\r\n").as_bytes())
                    .unwrap();
                let mut raw = Vec::with_capacity(b.len() + 512);
                let mut piece = [0u8; KIB];
                loop {
                    let n = s.read(&mut piece).unwrap();
                    if n == 0 {
                        break;
                    }
                    raw.extend_from_slice(&piece[..n]);
                    if raw.len() % (256 * KIB) < KIB {
                        std::thread::sleep(Duration::from_millis(2));
                    }
                }
                let resp = read_response(&mut &raw[..], false).unwrap();
                check(&resp, p, b, "slow reader");
                assert_eq!(resp.head.len() + b.len(), raw.len(), "trailing bytes");
            }
        }
    }
    ops
}

#[test]
fn soak_leaves_no_connection_descriptor_or_memory_behind() {
    let seconds: u64 = std::env::var("STOKE_SOAK_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(15)
        .clamp(1, 30);
    let root = TempDir::new("soak");
    let files: Files = Arc::new(vec![
        ("/small.txt", pattern(300, 1)),
        ("/medium.bin", pattern(40 * KIB, 2)),
        ("/big.bin", pattern(2048 * KIB, 3)),
        ("/dir/edge.bin", pattern(16 * KIB, 4)),
        ("/dir/over.bin", pattern(16 * KIB + 1, 5)),
    ]);
    for (path, body) in files.iter() {
        root.write(path.trim_start_matches('/'), body);
    }

    let fds_before = fd_count();
    let rss_before = rss();
    // Default limits: every client closes its connections, and the server
    // must notice each close at once (a FIN that arrives with the last bytes
    // included), so the drain below does not wait for any timeout.
    let server = TestServer::start(root.path());
    let addr = server.addr;
    let end = Instant::now() + Duration::from_secs(seconds);
    let threads: Vec<_> = (0..THREADS)
        .map(|seed| {
            let files = Arc::clone(&files);
            std::thread::spawn(move || client(addr, &files, seed, end))
        })
        .collect();
    let mut ops = 0;
    let mut panicked = 0;
    for t in threads {
        match t.join() {
            Ok(n) => ops += n,
            Err(_) => panicked += 1,
        }
    }
    assert_eq!(panicked, 0, "client threads panicked (see above)");

    let deadline = Instant::now() + Duration::from_secs(10);
    while server.open_connections() != 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(server.open_connections(), 0, "connections left open");
    let summary = server.stop();
    let fds_after = fd_count();
    let growth = rss().saturating_sub(rss_before);
    println!(
        "{ops} client operations, {} requests on {} connections; fds {fds_before} → \
         {fds_after}; RSS +{} KiB",
        summary.requests,
        summary.connections,
        growth / 1024
    );
    assert_eq!(summary.cut_off, 0);
    assert!(summary.requests > 0);
    assert_eq!(fds_after, fds_before, "descriptors leaked");
    assert!(growth < 100 << 20, "RSS grew by {growth} bytes");
}
