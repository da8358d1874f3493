//! Heap allocations of the worker's answer to a cached small file (issue
//! #10: none on that path). The counting allocator
//! (`stoke::sys::alloc_count`, installed as `#[global_allocator]`) counts, per
//! thread, the allocations made while `site::handle_reusing` answers a
//! request for a file already in the cache with its prepared answer, in
//! process, with no socket: only the worker's own share is counted.
//!
//! The answer is built in the buffers of the previous response
//! (`Recycled::from_written`, as the reactor's loop hands them back with
//! the next job), so it allocates nothing; without them (`site::handle`,
//! the first request) it allocates its head and its list of chunks.
//! The whole path, reactor and worker over a real socket, is checked by
//! `tests/alloc_end_to_end.rs`.

use std::fs::{self, File};
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use stoke::http::request::{self, Parsed, RequestHead};
use stoke::http::response::{Chunk, Recycled, Response, Status};
use stoke::site::{handle, handle_reusing, Site};
use stoke::sys::alloc_count::CountingAlloc;
use stoke::Config;

/// What a cached hit allocates without recycled buffers: the head's
/// bytes and the list of chunks.
const FRESH_HIT_ALLOCATIONS: usize = 2;

#[global_allocator]
static ALLOCATOR: CountingAlloc = CountingAlloc;

/// `f`'s result and the allocations (and reallocations) it made on this thread.
fn allocations_during<R>(f: impl FnOnce() -> R) -> (R, usize) {
    let before = CountingAlloc::allocations_on_this_thread();
    let result = f();
    let made = CountingAlloc::allocations_on_this_thread() - before;
    (result, made as usize)
}

fn parse(raw: &str) -> Box<RequestHead> {
    match request::parse(raw.as_bytes(), 64 * 1024) {
        Ok(Parsed::Complete { head, .. }) => head,
        other => panic!("{raw:?}: {other:?}"),
    }
}

/// A root with a 1 KiB page, last changed an hour ago as a deployed tree
/// is (so "no sidecar" may be remembered at once).
fn settled_root(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("stoke-alloc-{}-{test}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    let page = dir.join("index.html");
    fs::write(&page, vec![b'x'; 1024]).unwrap();
    let an_hour_ago = SystemTime::now() - Duration::from_secs(3600);
    let file = File::options().write(true).open(&page).unwrap();
    file.set_modified(an_hour_ago).unwrap();
    File::open(&dir).unwrap().set_modified(an_hour_ago).unwrap();
    dir
}

fn etag_of(r: &Response) -> String {
    let Some(Chunk::Bytes(head)) = r.chunks.first() else {
        panic!("no head: {r:?}");
    };
    let head = String::from_utf8_lossy(head);
    head.split("\r\n")
        .find_map(|l| l.strip_prefix("ETag: "))
        .expect("an ETag")
        .to_owned()
}

#[test]
fn a_cached_small_file_is_answered_without_allocating() {
    let dir = settled_root("hit");
    let site = Site::new(Arc::new(Config::for_root(&dir).unwrap())).unwrap();
    let peer = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let get = parse("GET /index.html HTTP/1.1\r\nHost: t\r\nAccept: */*\r\n\r\n");

    // The cold miss (open, read, cache, prepare) allocates plenty: proof
    // that the counter counts.
    let (first, cold) = allocations_during(|| handle(&site, &get, peer));
    assert_eq!(first.status, Status::OK);
    assert!(
        cold > FRESH_HIT_ALLOCATIONS,
        "the counter counts nothing ({cold})"
    );
    let etag = etag_of(&first);

    // A hit without buffers to reuse allocates exactly its two.
    let (_, fresh) = allocations_during(|| handle(&site, &get, peer));
    assert_eq!(fresh, FRESH_HIT_ALLOCATIONS, "a hit with fresh buffers");

    let cases = [
        ("GET /index.html", String::new(), Status::OK),
        ("GET /", String::new(), Status::OK),
        ("HEAD /index.html", String::new(), Status::OK),
        (
            "GET /index.html",
            format!("If-None-Match: {etag}\r\n"),
            Status::NOT_MODIFIED,
        ),
        (
            "GET /index.html",
            "Connection: close\r\n".to_owned(),
            Status::OK,
        ),
    ];
    let mut previous = first;
    for (line, extra, status) in cases {
        let req = parse(&format!("{line} HTTP/1.1\r\nHost: t\r\n{extra}\r\n"));
        // Twice: the first of a new kind may still fill a per-thread cache.
        for round in 0..2 {
            // What the reactor's loop does with a written response.
            let mut recycled = Recycled::from_written(previous.chunks).expect("kept for reuse");
            let (response, n) =
                allocations_during(|| handle_reusing(&site, &req, peer, &mut recycled));
            assert_eq!(response.status, status, "{line} {extra:?}");
            assert!(recycled.is_unallocated(), "the buffers were not used");
            if round == 1 {
                assert_eq!(
                    n, 0,
                    "{line} {extra:?}: {n} allocations for a cached hit in recycled buffers"
                );
            }
            previous = response;
        }
    }
    let _ = fs::remove_dir_all(&dir);
}
