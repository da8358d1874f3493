//! Heap allocations of the whole path of a cached small-file response
//! (issue #10: none), reactor and worker together: a real server in this
//! process, a keep-alive client on a raw `TcpStream`, and a counting global
//! allocator (`stoke::sys::alloc_count`) counting every thread.
//!
//! Its own test binary, with a single test, because the count is
//! process-wide: the server's threads' allocations are the process's minus
//! the client's (this thread's own, counted apart), and no other test may
//! run meanwhile.
//!
//! The one allocation that remains, and the bound it gives: the pool's
//! queue (`crossbeam_deque::Injector`) is a list of blocks of 63 jobs, and
//! the reactor allocates a new block each time the 63rd job of one has been
//! pushed (the workers free the drained ones). So `M` sequential requests
//! allocate at most `M / 63 + 1` times, and nothing else does: the request
//! head, the job box, the response's buffers (head and chunk list) and the
//! `Outgoing` box all come back to the reactor's spares and are reused.
//! Any per-request allocation would make at least `M`.

use std::io::{Read, Write};

use stoke::models::Model;
use stoke::sys::alloc_count::CountingAlloc;

mod common;
use common::{config_for, TempDir, TestServer};

#[global_allocator]
static ALLOCATOR: CountingAlloc = CountingAlloc;

/// What `wrk` (and the benchmarks' sequential client) sends.
const REQUEST: &[u8] =
    b"GET /index.html HTTP/1.1\r\nHost: localhost\r\nUser-Agent: wrk\r\nAccept: */*\r\n\r\n";

/// Requests before counting: fill the cache, prepare the answer, and let
/// every spare (heads, jobs, buffers, boxes) and per-thread cache exist.
const WARM_UP: usize = 200;

/// Requests counted.
const COUNTED: u64 = 630;

/// Jobs per block of the pool's injector queue (crossbeam-deque's
/// `BLOCK_CAP`); see the module doc.
const JOBS_PER_QUEUE_BLOCK: u64 = 63;

/// Reads one response to `REQUEST` into `buf` (allocated up front): the
/// head, then the `Content-Length` bytes of body. Returns the head's length.
fn read_one(stream: &mut impl Read, buf: &mut [u8], body_len: usize) -> usize {
    let mut have = 0;
    loop {
        let n = stream.read(&mut buf[have..]).expect("read");
        assert!(n > 0, "the server closed the connection");
        have += n;
        if let Some(end) = buf[..have].windows(4).position(|w| w == b"\r\n\r\n") {
            let total = end + 4 + body_len;
            while have < total {
                let n = stream.read(&mut buf[have..total]).expect("read");
                assert!(n > 0, "the server closed the connection");
                have += n;
            }
            assert_eq!(have, total, "more bytes than one response");
            return end + 4;
        }
    }
}

#[test]
fn cached_keep_alive_requests_allocate_nothing_but_queue_blocks() {
    let root = TempDir::new("alloc-e2e");
    let body = common::pattern(1024, 7);
    let page = root.write("index.html", &body);
    // Settled an hour ago, as a deployed tree is: "no sidecar" is
    // remembered at once, and the answer is the prepared one.
    let an_hour_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
    std::fs::File::options()
        .write(true)
        .open(&page)
        .unwrap()
        .set_modified(an_hour_ago)
        .unwrap();
    std::fs::File::open(root.path())
        .unwrap()
        .set_modified(an_hour_ago)
        .unwrap();
    let server = TestServer::with_config(config_for(root.path(), Model::Reactor));
    let mut stream = server.connect();
    let mut buf = vec![0u8; 64 * 1024];

    let request = |stream: &mut std::net::TcpStream, buf: &mut [u8]| {
        stream.write_all(REQUEST).expect("write");
        let head = read_one(stream, buf, body.len());
        assert!(buf.starts_with(b"HTTP/1.1 200 OK\r\n"));
        assert_eq!(&buf[head..head + body.len()], &body[..]);
    };
    for _ in 0..WARM_UP {
        request(&mut stream, &mut buf);
    }

    let process = CountingAlloc::allocations_in_process();
    let mine = CountingAlloc::allocations_on_this_thread();
    for _ in 0..COUNTED {
        request(&mut stream, &mut buf);
    }
    let all = CountingAlloc::allocations_in_process() - process;
    let client = CountingAlloc::allocations_on_this_thread() - mine;
    let server_side = all - client;
    let bound = COUNTED / JOBS_PER_QUEUE_BLOCK + 1;
    eprintln!("{server_side} allocations on the server's side for {COUNTED} requests");
    assert!(
        server_side <= bound,
        "{server_side} allocations on the server's side for {COUNTED} cached \
         keep-alive requests (at most {bound}: one queue block per \
         {JOBS_PER_QUEUE_BLOCK} jobs)"
    );
    drop(stream);
    server.stop();
}
