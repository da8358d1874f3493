//! Heap allocations on the reactor's side of a keep-alive request (issue
//! #10: none on the path of a cached small-file response).
//!
//! Its own test binary because it installs a counting global allocator
//! (`stoke::sys::alloc_count`, counting per thread, so the harness's other
//! threads do not disturb the figures). It drives the sans-IO `Connection`
//! exactly as the reactor does: the request arrives (`resume`: read, parse,
//! dispatch), a worker answers (not counted: that is the worker's side) in
//! the buffers of the previous response taken from the spares, the head
//! comes back with the answer and goes to the spares, and `complete` writes
//! the response, keeps its buffers and returns to idle.
//!
//! Not covered here: the pool's job box (reused by the loop) and
//! crossbeam's injector queue, one block per 63 jobs; the whole path is
//! counted by `tests/alloc_end_to_end.rs`.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, IoSlice};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use stoke::conn::{Action, Connection, Cx, Limits, Spares, Transport};
use stoke::http::request::{parse_with, Keep, Parsed, RequestHead, SpareHeads};
use stoke::http::response::{Chunk, HeadBuilder, Persistence, Recycled, Response, Status};
use stoke::sys::alloc_count::CountingAlloc;

#[global_allocator]
static ALLOCATOR: CountingAlloc = CountingAlloc;

/// What `wrk` (and the benchmarks' sequential client) sends.
const REQUEST: &[u8] =
    b"GET /index.html HTTP/1.1\r\nHost: localhost\r\nUser-Agent: wrk\r\nAccept: */*\r\n\r\n";

/// An in-memory socket whose buffers are allocated up front, so that it
/// adds no allocation of its own to the count.
struct Fake {
    input: VecDeque<u8>,
    output: Vec<u8>,
}

impl Transport for Fake {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.input.is_empty() {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let n = buf.len().min(self.input.len());
        for (slot, b) in buf.iter_mut().zip(self.input.drain(..n)) {
            *slot = b;
        }
        Ok(n)
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        let room = self.output.capacity() - self.output.len();
        let mut n = 0;
        for b in bufs {
            let take = b.len().min(room - n);
            self.output.extend_from_slice(&b[..take]);
            n += take;
        }
        Ok(n)
    }

    fn send_file(&mut self, _: &File, _: u64, _: usize) -> io::Result<usize> {
        Err(io::ErrorKind::Unsupported.into())
    }

    fn shutdown_write(&mut self) {}
}

/// The worker's side: a small cached file's answer, built as
/// `site::prepared` builds it, in the buffers of a written response that
/// the loop hands over with the job (allocations here are not the
/// reactor's).
fn answer(head: &RequestHead, body: &Arc<[u8]>, recycled: Option<Recycled>) -> Response {
    let Recycled {
        head: mut bytes,
        mut chunks,
    } = recycled.unwrap_or_default();
    let mut b = HeadBuilder::new(Status::OK);
    b.content_length(body.len() as u64);
    bytes.extend_from_slice(&b.finish(Persistence::for_request(head)));
    chunks.push(Chunk::Bytes(bytes));
    chunks.push(Chunk::Shared(Arc::clone(body)));
    Response {
        status: Status::OK,
        chunks,
        close: false,
        log: None,
    }
}

fn allocations() -> u64 {
    CountingAlloc::allocations_on_this_thread()
}

#[test]
fn keep_alive_request_allocates_nothing_on_the_reactor_side() {
    let limits = Limits {
        max_head: 8192,
        header_timeout: Duration::from_secs(10),
        keepalive_timeout: Duration::from_secs(5),
    };
    let mut scratch = vec![0; 64 * 1024];
    let mut spares = Spares::default();
    let fake = Fake {
        input: VecDeque::with_capacity(4096),
        output: Vec::with_capacity(64 * 1024),
    };
    let mut conn = Connection::new(fake, IpAddr::V4(Ipv4Addr::LOCALHOST), Instant::now());
    let mut per_request = Vec::with_capacity(16);
    let body: Arc<[u8]> = Arc::from(&b"<p>hello</p>"[..]);
    for round in 0..8 {
        conn.transport_mut().input.extend(REQUEST);
        let mut cx = Cx {
            now: Instant::now(),
            limits: &limits,
            scratch: &mut scratch,
            draining: false,
            readable: true,
            read_closed: false,
            spares: &mut spares,
        };
        let before = allocations();
        let head = match conn.resume(&mut cx) {
            Action::Dispatch(head) => head,
            other => panic!("round {round}: expected a dispatch, got {other:?}"),
        };
        let reading = allocations() - before;

        let recycled = cx.spares.take_recycled();
        let response = answer(&head, &body, recycled);

        let before = allocations();
        // The head comes back with the completion and is kept for reuse.
        cx.spares.heads.put(head);
        let action = conn.complete(response, &mut cx);
        let writing = allocations() - before;

        assert!(matches!(action, Action::Wait), "round {round}: {action:?}");
        assert!(conn.is_idle(), "round {round}: not back to idle");
        let out = &conn.transport_mut().output;
        assert!(out.starts_with(b"HTTP/1.1 200 OK\r\n"), "round {round}");
        assert!(out.ends_with(b"\r\n\r\n<p>hello</p>"), "round {round}");
        conn.transport_mut().output.clear();
        per_request.push(reading + writing);
    }
    // The first request finds no spare head or response box and allocates
    // them (the counter does count); from then on they are reused.
    assert!(per_request[0] >= 2, "{per_request:?}");
    assert_eq!(
        per_request[1..],
        [0; 7],
        "allocations per keep-alive request on the reactor's side: {per_request:?}"
    );
}

/// A browser-like head (repeated fields, a query, a large cookie) parsed
/// into a spare head allocates nothing either. Regression (the head's
/// buffer was sized to the whole head, cookies included, so a head over
/// 2 KiB was too big to keep and every such request allocated): only what
/// is kept counts.
#[test]
fn head_with_large_cookies_parsed_into_a_spare_allocates_nothing() {
    let cookie = "c".repeat(3000);
    let raw = format!(
        "GET /a/b.css?v=3 HTTP/1.1\r\nHost: example.com\r\n\
         User-Agent: Mozilla/5.0 (X11; Linux x86_64) Gecko/20100101 Firefox/128.0\r\n\
         Accept: text/css,*/*;q=0.1\r\nAccept-Encoding: gzip, deflate, br, zstd\r\n\
         Accept-Encoding: identity\r\nReferer: https://example.com/\r\n\
         If-None-Match: \"abc\"\r\nIf-Modified-Since: Tue, 01 Jul 2025 10:00:00 GMT\r\n\
         Connection: keep-alive\r\nSec-Fetch-Dest: style\r\nCookie: {cookie}\r\n\r\n"
    );
    let mut spares = SpareHeads::default();
    for round in 0..4 {
        let before = allocations();
        let Ok(Parsed::Complete { head, .. }) =
            parse_with(raw.as_bytes(), 8192, &mut spares, Keep::All)
        else {
            panic!("round {round}: refused");
        };
        let made = allocations() - before;
        assert_eq!(
            head.accept_encoding(),
            Some("gzip, deflate, br, zstd, identity")
        );
        assert_eq!(head.query(), Some("v=3"));
        if round == 0 {
            assert!(made >= 1, "the first head is allocated ({made})");
        } else {
            assert_eq!(
                made, 0,
                "round {round}: a reused head allocated {made} times"
            );
        }
        spares.put(head);
        assert_eq!(
            spares.len(),
            1,
            "round {round}: the head was not kept for reuse"
        );
    }
}
