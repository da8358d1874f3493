//! A file body not in the page cache is read in by a worker before the
//! reactor sends it: the reactor's `sendfile` must never wait for the disk
//! (one cold download would stall every connection). Real server, real
//! sockets, a real file evicted from the page cache with
//! `posix_fadvise(DONTNEED)`; where eviction is not possible (tmpfs, not
//! Linux) the test says so and checks only that the body arrives intact.

mod common;

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::Instant;

use common::{
    connect, model, pattern, read_response, ChildServer, TempDir, TestServer, IO_TIMEOUT,
};
use stoke::models::Model;
use stoke::sys::page_cache::{self, Residency};

const MIB: usize = 1024 * 1024;

/// Only the reactor models warm files (a blocking model's thread may wait).
fn reactor_model(test: &str) -> bool {
    if matches!(model(), Model::Reactor | Model::ReactorInline) {
        return true;
    }
    println!("SKIPPED {test}: only the reactor models keep disk waits off their loop");
    false
}

/// Writes `body` to `rel` under `dir`, flushed to the device so that
/// eviction can drop its pages.
fn write_synced(dir: &TempDir, rel: &str, body: &[u8]) -> File {
    let path = dir.path().join(rel);
    let mut f = File::create(&path).unwrap();
    f.write_all(body).unwrap();
    f.sync_all().unwrap();
    File::open(&path).unwrap()
}

/// Evicts `file` and reports whether the byte at `offset` is now uncached.
fn evicted(file: &File, offset: u64) -> bool {
    page_cache::evict(file) && page_cache::probe(file, offset) == Residency::NotCached
}

/// Sends a GET on a fresh connection and returns it after the head.
fn request(server: &TestServer, path: &Path) -> (BufReader<std::net::TcpStream>, usize) {
    let mut s = server.connect();
    s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    write!(
        s,
        "GET /{} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n",
        path.display()
    )
    .unwrap();
    let mut r = BufReader::new(s);
    let mut len = None;
    loop {
        let mut line = String::new();
        r.read_line(&mut line).unwrap();
        if line == "\r\n" {
            break;
        }
        if line.starts_with("HTTP/1.1") {
            assert!(line.contains(" 200 "), "{line}");
        }
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            len = Some(v.trim().parse().unwrap());
        }
    }
    (r, len.expect("no Content-Length"))
}

/// Regression (`sendfile` ran on the reactor for a file not in the page
/// cache): a cold file's first window is read in off the reactor (by a
/// warm-up thread) before the reactor's first `sendfile`.
#[test]
fn cold_file_is_warmed_off_the_reactor_before_it_is_sent() {
    if !reactor_model("cold_file_is_warmed_off_the_reactor_before_it_is_sent") {
        return;
    }
    let dir = TempDir::new("cold-first");
    let body = pattern(4 * MIB, 11);
    let file = write_synced(&dir, "cold.bin", &body);
    let cold = evicted(&file, 0);
    let server = TestServer::start(dir.path());
    let (mut r, len) = request(&server, Path::new("cold.bin"));
    assert_eq!(len, body.len());
    let mut got = Vec::with_capacity(len);
    r.read_to_end(&mut got).unwrap();
    assert!(got == body, "the body differs from the file");
    if cold {
        assert!(server.file_warmups() >= 1, "a cold file was sent unwarmed");
    } else {
        println!("SKIPPED the warm-up check: cannot evict pages here (tmpfs?)");
    }
}

/// Regression (a long download's later windows, evicted or never read
/// yet, were read by `sendfile` on the reactor): when the pages where the
/// next `sendfile` starts are not cached, the reactor has a worker read
/// them in and waits for its completion instead.
#[test]
fn pages_evicted_mid_download_are_warmed_off_the_reactor() {
    if !reactor_model("pages_evicted_mid_download_are_warmed_off_the_reactor") {
        return;
    }
    let dir = TempDir::new("cold-middle");
    let body = pattern(32 * MIB, 12);
    let file = write_synced(&dir, "long.bin", &body);
    let server = TestServer::start(dir.path());
    let (mut r, len) = request(&server, Path::new("long.bin"));
    assert_eq!(len, body.len());
    // Take the first MiB, then (the rest still unsent: the socket buffers
    // hold far less than 31 MiB) drop the file's pages.
    let mut got = vec![0; MIB];
    r.read_exact(&mut got).unwrap();
    let before = server.file_warmups();
    let cold = evicted(&file, 24 * MIB as u64);
    r.read_to_end(&mut got).unwrap();
    assert!(got == body, "the body differs from the file");
    if cold {
        assert!(
            server.file_warmups() > before,
            "evicted pages were sent unwarmed"
        );
    } else {
        println!("SKIPPED the warm-up check: cannot evict pages here (tmpfs?)");
    }
}

/// Regression (a worker handing back a cold file warmed its first window
/// outside the loop's warm cap): with two workers (one warm slot),
/// several cold downloads starting at once and a client asking for a
/// cached file meanwhile all finish, byte-correct. A warm slot leaked or a
/// deferred warm-up never restarted would leave a download hanging (the
/// read times out); the small requests go through the reactor's answers
/// delivered between the downloads' sends.
#[test]
fn cold_downloads_share_the_warm_cap_and_cached_requests_go_through() {
    if !reactor_model("cold_downloads_share_the_warm_cap_and_cached_requests_go_through") {
        return;
    }
    const DOWNLOADS: usize = 4;
    let dir = TempDir::new("cold-cap");
    let bodies: Vec<Vec<u8>> = (0..DOWNLOADS)
        .map(|i| pattern(6 * MIB, 20 + i as u64))
        .collect();
    let files: Vec<File> = bodies
        .iter()
        .enumerate()
        .map(|(i, b)| write_synced(&dir, &format!("cold-{i}.bin"), b))
        .collect();
    let small = pattern(1024, 30);
    dir.write("small.bin", &small);
    let server = TestServer::with(dir.path(), |c| c.threads = 2);
    let cold = files.iter().all(|f| evicted(f, 0));
    std::thread::scope(|scope| {
        let downloads: Vec<_> = (0..DOWNLOADS)
            .map(|i| {
                let (server, body) = (&server, &bodies[i]);
                scope.spawn(move || {
                    let (mut r, len) = request(server, Path::new(&format!("cold-{i}.bin")));
                    assert_eq!(len, body.len());
                    let mut got = Vec::with_capacity(len);
                    r.read_to_end(&mut got).unwrap();
                    assert!(got == *body, "download {i}: the body differs from the file");
                })
            })
            .collect();
        for _ in 0..50 {
            let (mut r, len) = request(&server, Path::new("small.bin"));
            assert_eq!(len, small.len());
            let mut got = Vec::new();
            r.read_to_end(&mut got).unwrap();
            assert!(got == small, "the small file's body differs");
        }
        for d in downloads {
            d.join().unwrap();
        }
    });
    if cold {
        assert!(
            server.file_warmups() >= DOWNLOADS as u64,
            "cold files sent unwarmed"
        );
    } else {
        println!("SKIPPED the warm-up count: cannot evict pages here (tmpfs?)");
    }
}

/// Waits (bounded) for a stderr line containing `needle`.
fn wait_for_line(lines: &Receiver<String>, needle: &str) {
    let deadline = Instant::now() + IO_TIMEOUT;
    let mut seen = Vec::new();
    loop {
        match lines.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(line) if line.contains(needle) => return,
            Ok(line) => seen.push(line),
            Err(RecvTimeoutError::Timeout) => panic!("no {needle:?} on stderr: {seen:?}"),
            Err(RecvTimeoutError::Disconnected) => panic!("stderr closed: {seen:?}"),
        }
    }
}

/// Regression (warm-ups ran on the request workers: while a download was
/// being warmed, a two-worker server served cached requests with one
/// worker, and the cached requests' tail latency was the disk's): with the
/// only request worker held (the test hook), a download whose pages were
/// evicted mid-way still completes, so its warm-ups need no request worker.
#[test]
fn cold_download_is_warmed_while_every_request_worker_is_busy() {
    let test = "cold_download_is_warmed_while_every_request_worker_is_busy";
    if model() != Model::Reactor {
        println!("SKIPPED {test}: only the pooled reactor has request workers apart from warm-ups");
        return;
    }
    if !cfg!(feature = "test-hooks") {
        println!("SKIPPED {test}: needs --features test-hooks");
        return;
    }
    let dir = TempDir::new("cold-busy");
    let body = pattern(16 * MIB, 40);
    let file = write_synced(&dir, "long.bin", &body);
    dir.write("__stoke_test_hang", "released");
    let mut server = ChildServer::start(dir.path(), &["--threads", "1"]);
    let lines = server.stderr_lines();

    let mut s = connect(server.addr);
    s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    s.write_all(b"GET /long.bin HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut r = BufReader::new(s);
    let mut line = String::new();
    while line != "\r\n" {
        line.clear();
        r.read_line(&mut line).unwrap();
    }
    let mut got = vec![0; MIB];
    r.read_exact(&mut got).unwrap();

    // The only request worker is held from here on.
    let mut hang = connect(server.addr);
    hang.write_all(b"GET /__stoke_test_hang HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    wait_for_line(&lines, "test hook: worker blocked");
    let cold = evicted(&file, 8 * MIB as u64);

    r.read_to_end(&mut got).unwrap();
    assert!(got == body, "the body differs from the file");
    if !cold {
        println!("SKIPPED the eviction half of {test}: cannot evict pages here (tmpfs?)");
    }

    dir.write("__stoke_test_release", "");
    hang.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    let resp = read_response(&mut BufReader::new(hang), false).unwrap();
    assert_eq!(resp.status, 200);
    drop(server);
}
