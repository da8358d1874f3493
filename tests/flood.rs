//! Pipelining flood: one client writes pipelined `GET /1k` requests as fast
//! as it can and never reads. The server must apply back-pressure (stop
//! reading once its responses back up, so the client's writes block) instead
//! of buffering requests or responses without bound; its memory stays flat;
//! other clients are served meanwhile; and once the flooder starts reading,
//! every request it managed to send is answered, in order, byte-exact.
mod common;
use common::*;

use std::io::{self, BufReader, Write};
use std::time::{Duration, Instant};

/// One pipelined request, padded to 512 bytes: loopback sockets here may
/// autotune to 32 MiB of receive buffer plus 4 MiB of send buffer, so the
/// flood (up to 100,000 requests, ~50 MiB) must be larger than everything the
/// kernel alone can absorb for the writer to ever block.
const REQUEST_LEN: usize = 512;
const MAX_REQUESTS: usize = 100_000;
/// A write that makes no progress at all for this long means the server has
/// stopped reading (back-pressure reached the client).
const STALL: Duration = Duration::from_secs(1);

fn padded_request() -> Vec<u8> {
    let start = "GET /1k HTTP/1.1\r\nHost: flood\r\nX-Pad: ";
    let pad = REQUEST_LEN - start.len() - "\r\n\r\n".len();
    let request = format!("{start}{}\r\n\r\n", "p".repeat(pad)).into_bytes();
    assert_eq!(request.len(), REQUEST_LEN);
    request
}

/// Resident set size of this process (the server runs in it), in bytes.
fn rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .expect("VmRSS");
    let kb: u64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .expect("VmRSS value");
    kb * 1024
}

#[test]
fn a_pipelining_flood_is_throttled_and_fully_answered() {
    let root = TempDir::new("flood");
    let body = pattern(1024, 42);
    root.write("1k", &body);
    root.write("other.txt", "other client");
    let server = TestServer::start(root.path());
    // Warm up (worker threads, file cache) so RSS measures the flood only.
    assert_eq!(get(server.addr, "/1k", &[]).body, body);
    let rss_before = rss();

    let request = padded_request();
    let mut flood = connect(server.addr);
    flood.set_write_timeout(Some(STALL)).unwrap();
    let batch: Vec<u8> = request.repeat(1000);
    let limit = MAX_REQUESTS * REQUEST_LEN;
    let mut sent = 0usize;
    let mut blocked = false;
    while sent < limit {
        let off = sent % batch.len();
        let end = batch.len().min(off + (limit - sent));
        match flood.write(&batch[off..end]) {
            Ok(n) => sent += n,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                blocked = true;
                break;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => panic!("flood write failed after {sent} bytes: {e}"),
        }
    }
    let requests = sent.div_ceil(REQUEST_LEN);
    println!("flooder blocked={blocked} after {requests} requests ({sent} bytes)");
    assert!(
        blocked,
        "{MAX_REQUESTS} pipelined requests were accepted without the server \
         ever pushing back"
    );

    let growth = rss().saturating_sub(rss_before);
    println!("RSS growth under flood: {} KiB", growth / 1024);
    assert!(
        growth < 64 << 20,
        "RSS grew by {growth} bytes under the flood"
    );

    // Another client is served while the flooder is stalled.
    let r = get(server.addr, "/other.txt", &[]);
    assert_eq!((r.status, r.text().as_str()), (200, "other client"));

    // Finish the request the stall cut in half (it unblocks as we read),
    // then read every answer.
    let mut writer = flood.try_clone().unwrap();
    writer.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    let rest = (REQUEST_LEN - sent % REQUEST_LEN) % REQUEST_LEN;
    let tail = request[REQUEST_LEN - rest..].to_vec();
    let finisher = std::thread::spawn(move || writer.write_all(&tail));

    let mut r = BufReader::new(flood);
    for i in 0..requests {
        let resp = read_response(&mut r, false)
            .unwrap_or_else(|e| panic!("response {i} of {requests}: {e}"));
        assert_eq!(resp.status, 200, "response {i}");
        assert!(resp.body == body, "response {i}: body differs");
    }
    finisher.join().unwrap().unwrap();

    // The connection still works after the flood.
    r.get_mut()
        .write_all(b"GET /other.txt HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .unwrap();
    let last = read_response(&mut r, false).unwrap();
    assert_eq!((last.status, last.text().as_str()), (200, "other client"));
    assert!(closed_by_server(&mut r), "no EOF after Connection: close");
    drop(r);

    let deadline = Instant::now() + Duration::from_secs(10);
    while server.open_connections() != 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(server.open_connections(), 0);
    let summary = server.stop();
    assert_eq!(summary.requests, requests as u64 + 3);
}
