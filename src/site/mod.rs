//! The worker's job: turn one parsed request into a [`Response`].
//!
//! This is the blocking part of a request, so it runs on a pool thread (or
//! on the connection's own thread in the blocking models). In the order a
//! request travels:
//!
//! - here: [`Site`] (configuration, the root directory held open, the
//!   caches) and [`handle`]: the panic guard, the access-log record, and
//!   the method (GET and HEAD are served, OPTIONS answered, others 405);
//! - `resolve`: THE policy, URL → what to open (`url_path` decodes; every
//!   file opened by name, the requested one, an index, a sidecar, a listed
//!   directory, goes through `resolve::open`: `sys::open_beneath`, which
//!   never leaves the root, then the dotfile policy applied again to the
//!   real path when a symlink led there. One policy, one place);
//! - `file`: the variant (a sidecar chosen by `http::encoding`, or one
//!   compressed on the fly by `compress`, kept in `variants`), validators
//!   (`http::conditional`) and range (`http::range`) → 200/206/304/412/416;
//! - `body`: the body as chunks. Small files are read into memory so the
//!   connection sends head and body in one `writev`; larger ones travel
//!   as an open `File` for `sendfile`;
//! - `listing` (rendering) and `listing_cache`, for a directory without an
//!   index, answered by `serve_listing` here; `cache`, the small-file cache
//!   (whose hits skip their stat while `watcher`'s inotify reports no
//!   change), and `prepared`, a cached file's answer kept with it, so that
//!   a plain request for it is answered without `file`'s work.
//!
//! Runs on: worker threads.

use std::fs::{File, Metadata};
use std::io;
use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;

mod body;
pub mod cache;
pub mod compress;
mod file;
pub mod listing;
pub mod listing_cache;
mod prepared;
mod resolve;
pub mod url_path;
pub mod variants;
pub mod watcher;

use crate::access_log;
use crate::config::Config;
use crate::http::errors::{self, error_response};
use crate::http::request::{Method, RequestHead};
use crate::http::response::{
    Body, Chunk, HeadBuilder, Persistence, Recycled, ReplyTo, Response, Status,
};
use cache::FileCache;
use compress::Compressor;
use listing_cache::{Format, OverBudget, PageCache, PageKey};
use resolve::{open_error, serve};
use watcher::Watcher;

/// The methods we answer, for `Allow` (405 and OPTIONS).
const ALLOW: &str = "GET, HEAD, OPTIONS";

/// What every request needs: the configuration and the open root directory
/// (the anchor for `openat2`).
///
/// Files and listings come from the same place: a listing is read from the
/// very descriptor that `sys::open_beneath` returned for its directory, so
/// it shows the tree the same request would serve files from. Every
/// resolution starts at `root`'s descriptor (`openat2`, the portable walk
/// and `--follow-symlinks` alike), so that is the tree held open by `root`,
/// the directory ROOT named at startup: a deploy that renames a new tree
/// onto ROOT's path is not seen, by files and listings alike, until stoke
/// restarts, while changes made inside the tree are seen at once. (Only an
/// absolute symlink's target is a path: one under ROOT's canonical path is
/// walked from `root`; under `--follow-symlinks`, one leading elsewhere is
/// followed by the kernel.)
pub struct Site {
    pub config: Arc<Config>,
    root: File,
    cache: FileCache,
    listings: PageCache,
    pub compressor: Compressor,
    /// See [`Site::watch_changes`].
    watcher: Option<Arc<Watcher>>,
}

impl Site {
    pub fn new(config: Arc<Config>) -> io::Result<Site> {
        let root = File::open(&config.root)?;
        Ok(Site {
            compressor: Compressor::new(&config),
            config,
            root,
            cache: FileCache::new(),
            listings: PageCache::new(),
            watcher: None,
        })
    }

    /// Lets cache hits skip their stat while inotify reports no change
    /// (`watcher.rs`). Only for a server that calls [`Site::fence_changes`]
    /// after reading a request and before answering it (the reactor
    /// models); without it every hit stats. If inotify cannot be
    /// set up, says so once and leaves every hit to its stat.
    pub fn watch_changes(&mut self) {
        match Watcher::new(&self.root) {
            Ok(watcher) => {
                let watcher = Arc::new(watcher);
                self.cache.watch_with(Arc::clone(&watcher));
                self.watcher = Some(watcher);
            }
            Err(e) => log::warn!(
                "cannot watch the root for changes ({e}); every cache hit checks its file with a stat"
            ),
        }
    }

    /// Whether [`Site::fence_changes`] must run before a worker sees a
    /// request read from a socket.
    pub fn watches_changes(&self) -> bool {
        self.watcher.is_some()
    }

    /// Applies every change the kernel has reported so far (see
    /// `Watcher::fence`): requests read before this call are answered as of
    /// now.
    pub fn fence_changes(&self) {
        if let Some(watcher) = &self.watcher {
            watcher.fence();
        }
    }

    /// Lets [`Site::fence_changes`] skip its `read` while the kernel
    /// signalled no change (`Watcher::fence_on_signal`). Only for a server
    /// that fences on one thread, the calling one. If the signal cannot be
    /// set up, every fence reads, as before.
    pub fn fence_on_signal(&self) {
        if let Some(watcher) = &self.watcher {
            if let Err(e) = watcher.fence_on_signal() {
                log::debug!("cannot have inotify signal this thread ({e}); every fence reads");
            }
        }
    }

    /// Stats made so far to prove cache hits fresh (tests count them).
    pub fn freshness_checks(&self) -> Arc<std::sync::atomic::AtomicU64> {
        self.cache.checks()
    }
}

/// Answers `req`. Never panics: a bug that panics answers 500 and is logged,
/// and the worker goes on. Allocates the response's buffers; the reactor
/// uses [`handle_reusing`] instead.
pub fn handle(site: &Site, req: &RequestHead, peer: IpAddr) -> Response {
    handle_reusing(site, req, peer, &mut Recycled::default())
}

/// [`handle`], building the answer of a cached small file in `recycled`
/// (taken out of it), so that the answer allocates nothing; other answers
/// leave it alone, for the next request.
pub fn handle_reusing(
    site: &Site,
    req: &RequestHead,
    peer: IpAddr,
    recycled: &mut Recycled,
) -> Response {
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        respond(site, req, recycled)
    }));
    let mut response = outcome.unwrap_or_else(|_| {
        log::error!(
            "internal error answering {:?}; responded 500",
            req.request_line()
        );
        let reply = ReplyTo::request(req).closing();
        error_response(Status::INTERNAL_SERVER_ERROR, reply, &[])
    });
    response.log = access_log::for_request(peer, req, response.status);
    response
}

fn respond(site: &Site, req: &RequestHead, recycled: &mut Recycled) -> Response {
    match req.method {
        Method::Get | Method::Head => serve(site, req, recycled),
        Method::Options => {
            let mut head = HeadBuilder::new(Status::NO_CONTENT);
            head.header("Allow", ALLOW);
            plain(Status::NO_CONTENT, head, req)
        }
        _ => error(req, Status::METHOD_NOT_ALLOWED, &[("Allow", ALLOW)]),
    }
}

fn error(req: &RequestHead, status: Status, extra: &[(&str, &str)]) -> Response {
    error_response(status, ReplyTo::request(req), extra)
}

/// A response that is only a head.
fn plain(status: Status, head: HeadBuilder, req: &RequestHead) -> Response {
    Response {
        status,
        chunks: vec![Chunk::Bytes(head.finish(Persistence::for_request(req)))],
        close: Persistence::for_request(req).closes(),
        log: None,
    }
}

/// The listing of the directory `dir` (opened beneath the root, described
/// by `dir_meta`), shown as `decoded`. Entries are read from `dir` itself,
/// never through its path again, and the rendered page is shared through
/// `site.listings`.
fn serve_listing(
    site: &Site,
    req: &RequestHead,
    dir: &File,
    dir_meta: &Metadata,
    relative: &Path,
    decoded: &str,
) -> Response {
    let wants_json = req
        .accept()
        .is_some_and(|a| a.contains("application/json") && !a.contains("text/html"));
    let (format, ty) = if wants_json {
        (Format::Json, "application/json")
    } else {
        (Format::Html, "text/html; charset=utf-8")
    };
    let key = PageKey::new(dir_meta, format, decoded);
    let now = std::time::Instant::now();
    let body = match site.listings.get(&key, now) {
        Some(body) => body,
        None => {
            let entries = match listing::read_entries(dir, site.config.hidden) {
                Ok(entries) => entries,
                Err(e) => return open_error(req, relative, &e),
            };
            let page = match format {
                Format::Json => listing::render_json(decoded, &entries),
                Format::Html => listing::render_html(decoded, &entries),
            };
            match site.listings.insert(key, page.into_bytes(), now) {
                Ok(body) => body,
                Err(OverBudget) => {
                    log::warn!(
                        "listing of {} refused: listing pages still being sent hold {} bytes",
                        relative.display(),
                        site.listings.held_bytes()
                    );
                    return errors::retry_later(ReplyTo::request(req));
                }
            }
        }
    };
    let mut head = HeadBuilder::new(Status::OK);
    head.header("Content-Type", ty);
    head.header("Vary", "Accept");
    for (name, value) in &site.config.headers {
        head.header(name, value);
    }
    head.content_length(body.len() as u64);
    let mut chunks = vec![Chunk::Bytes(head.finish(Persistence::for_request(req)))];
    if Body::for_method(req.method) == Body::Full {
        // Shared, not copied: a client that does not read pins no page of
        // its own.
        chunks.push(Chunk::Shared(body));
    }
    Response {
        status: Status::OK,
        chunks,
        close: Persistence::for_request(req).closes(),
        log: None,
    }
}

#[cfg(test)]
mod tests {
    //! The worker's path end to end, without sockets: reads, and what the
    //! cache and the listing pages hold after real requests on a real
    //! directory.
    use super::body::{single_body, Source};
    use super::*;
    use crate::http::request::{self, Parsed};
    use std::fs;
    use std::io::Read;
    use std::net::Ipv4Addr;
    use std::path::PathBuf;

    /// Regression (read-at-offset-zero-uses-the-cursor): a read "at offset
    /// 0" used the file's cursor, which an earlier (possibly failed) read
    /// may have moved, so the body could start mid-file. Every read is
    /// positioned now; here the cursor is moved on purpose first.
    #[test]
    fn reads_ignore_the_file_cursor() {
        let dir = std::env::temp_dir().join(format!("stoke-site-cursor-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let contents: Vec<u8> = (0..200u8).collect();
        std::fs::write(dir.join("f.bin"), &contents).unwrap();
        let site = Site::new(Arc::new(Config::for_root(&dir).unwrap())).unwrap();
        let moved = || {
            let mut file = File::open(dir.join("f.bin")).unwrap();
            let mut skip = [0u8; 50];
            file.read_exact(&mut skip).unwrap();
            file
        };

        // The small-file load behind the cache.
        let meta = std::fs::metadata(dir.join("f.bin")).unwrap();
        match Source::File(moved()).load_small(&site, Path::new("f.bin"), &meta) {
            Source::Memory { data, .. } => assert_eq!(&data[..], &contents[..]),
            Source::File(_) => panic!("a readable small file is loaded"),
        }

        // The body of a small File source (a sidecar), from offset 0.
        let req = match crate::http::request::parse(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n", 8192) {
            Ok(crate::http::request::Parsed::Complete { head, .. }) => head,
            other => panic!("{other:?}"),
        };
        let head = HeadBuilder::new(Status::OK);
        let r = single_body(
            Status::OK,
            head,
            &req,
            Source::File(moved()),
            0,
            200,
            Body::Full,
            &[],
        );
        let Some(Chunk::Bytes(bytes)) = r.chunks.first() else {
            panic!("one chunk of bytes");
        };
        assert!(bytes.ends_with(&contents), "body starts at byte 0");
        let _ = std::fs::remove_dir_all(&dir);
    }

    fn scratch(test: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("stoke-site-{}-{test}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn site(root: &Path, listing: bool) -> Site {
        let mut config = Config::for_root(root).unwrap();
        config.listing = listing;
        Site::new(Arc::new(config)).unwrap()
    }

    fn request(site: &Site, path: &str) -> Response {
        let raw = format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n");
        let Ok(Parsed::Complete { head, .. }) = request::parse(raw.as_bytes(), 64 * 1024) else {
            panic!("bad test request {raw:?}");
        };
        handle(site, &head, IpAddr::V4(Ipv4Addr::LOCALHOST))
    }

    /// Empty files add no data bytes and `l -> .` makes endless names for
    /// one file; requesting many of both keeps the cache within its bounds.
    /// The empty files fill the path index up to its cap and no further; the
    /// names through the link are served but never cached, since a hit
    /// could not reach them (its stat refuses symlinks).
    #[test]
    fn many_empty_files_and_alias_paths_keep_the_file_cache_bounded() {
        let dir = scratch("bounded");
        std::os::unix::fs::symlink(".", dir.join("l")).unwrap();
        const FILES: usize = crate::limits::MAX_CACHED_PATHS + 100;
        const ALIASED: usize = 50;
        const DEPTH: usize = 30; // below the kernel's 40 symlinks per lookup
        for n in 0..FILES {
            fs::write(dir.join(format!("e{n}")), b"").unwrap();
        }
        let site = site(&dir, false);
        for n in 0..FILES {
            let path = format!("/e{n}");
            assert_eq!(request(&site, &path).status, Status::OK, "{path}");
        }
        let full = site.cache.stats();
        assert_eq!(full.paths, crate::limits::MAX_CACHED_PATHS, "{full:?}");
        assert!(full.bytes <= crate::limits::MAX_CACHED_BYTES, "{full:?}");
        for depth in 1..DEPTH {
            for n in 0..ALIASED {
                let path = format!("/{}e{n}", "l/".repeat(depth));
                assert_eq!(request(&site, &path).status, Status::OK, "{path}");
            }
            assert_eq!(site.cache.stats(), full, "aliases are not cached");
        }
        let _ = fs::remove_dir_all(&dir);
    }

    /// Two requests for one listing send the same bytes, not two renderings.
    #[test]
    fn two_listing_requests_share_one_rendering() {
        let dir = scratch("shared-listing");
        for n in 0..50 {
            fs::write(dir.join(format!("file{n}.txt")), b"x").unwrap();
        }
        let site = site(&dir, true);
        let body = |r: &Response| match r.chunks.as_slice() {
            [Chunk::Bytes(_), Chunk::Shared(body)] => Arc::clone(body),
            other => panic!("unexpected chunks {other:?}"),
        };
        // A page is rebuilt once it is a second old; a pair of requests that
        // straddles that moment on a stalled machine is tried again.
        let shared = (0..3).any(|_| {
            let (a, b) = (request(&site, "/"), request(&site, "/"));
            Arc::ptr_eq(&body(&a), &body(&b))
        });
        assert!(shared, "the second request rendered the page again");
        let _ = fs::remove_dir_all(&dir);
    }

    fn parse(raw: &str) -> Box<RequestHead> {
        let Ok(Parsed::Complete { head, .. }) = request::parse(raw.as_bytes(), 64 * 1024) else {
            panic!("bad test request {raw:?}");
        };
        head
    }

    /// All the bytes a response sends, with its `Date` line taken out.
    fn bytes_without_date(r: &Response) -> String {
        let all: Vec<u8> = r
            .chunks
            .iter()
            .flat_map(|c| c.memory().expect("in memory").to_vec())
            .collect();
        let all = String::from_utf8_lossy(&all).into_owned();
        let start = all.find("\r\nDate: ").expect("a Date line") + 2;
        let end = start + all[start..].find("\r\n").unwrap() + 2;
        format!("{}{}", &all[..start], &all[end..])
    }

    /// A scratch root whose files and directory were last changed an hour
    /// ago, as a deployed tree is: "no sidecar" may be remembered at once.
    fn settled_site(test: &str, files: &[(&str, Vec<u8>)]) -> (PathBuf, Config) {
        let dir = scratch(test);
        let an_hour_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
        for (name, data) in files {
            fs::write(dir.join(name), data).unwrap();
            File::options()
                .write(true)
                .open(dir.join(name))
                .unwrap()
                .set_modified(an_hour_ago)
                .unwrap();
        }
        File::open(&dir).unwrap().set_modified(an_hour_ago).unwrap();
        let mut config = Config::for_root(&dir).unwrap();
        config.cache_control = Some("max-age=60".to_owned());
        config.headers = vec![("X-Frame-Options".to_owned(), "DENY".to_owned())];
        (dir, config)
    }

    /// A cached file's prepared answer (`site::prepared`) is the answer
    /// `serve_file` makes for a cold miss, byte for byte but the `Date`:
    /// 200, HEAD, 304 by tag and by date, every connection line, for a
    /// compressible text file (with `Vary`), a short text file, an image
    /// and an empty file.
    #[test]
    fn a_prepared_hit_answers_as_a_cold_miss_does() {
        let files = [
            ("page.html", vec![b'h'; 3000]),
            ("short.txt", b"hello".to_vec()),
            ("pic.png", vec![7u8; 100]),
            ("empty.css", Vec::new()),
        ];
        let (dir, config) = settled_site("prepared-equals-cold", &files);
        let config = Arc::new(config);
        let peer = IpAddr::V4(Ipv4Addr::LOCALHOST);
        for (name, data) in &files {
            let path = format!("/{name}");
            // The validators, from a first answer.
            let first = handle(
                &Site::new(Arc::clone(&config)).unwrap(),
                &parse(&format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n")),
                peer,
            );
            let head = bytes_without_date(&first);
            let field = |name: &str| {
                head.split("\r\n")
                    .find_map(|l| l.strip_prefix(name))
                    .map(str::to_owned)
            };
            let etag = field("ETag: ").expect("an ETag");
            let last_modified = field("Last-Modified: ").expect("a Last-Modified");
            assert_eq!(
                field("Vary: ").is_some(),
                *name == "page.html",
                "{name}: only the compressible one varies"
            );
            for extra in [
                String::new(),
                format!("If-None-Match: {etag}\r\n"),
                "If-None-Match: \"other\"\r\n".to_owned(),
                format!("If-Modified-Since: {last_modified}\r\n"),
                "Connection: close\r\n".to_owned(),
                "Accept-Encoding: identity\r\n".to_owned(),
            ] {
                for (method, version) in [("GET", "1.1"), ("HEAD", "1.1"), ("GET", "1.0")] {
                    let raw = format!("{method} {path} HTTP/{version}\r\nHost: t\r\nConnection: keep-alive\r\n{extra}\r\n");
                    let raw = if extra.starts_with("Connection") {
                        raw.replace("Connection: keep-alive\r\n", "")
                    } else {
                        raw
                    };
                    let req = parse(&raw);
                    let cold = handle(&Site::new(Arc::clone(&config)).unwrap(), &req, peer);
                    let warm = Site::new(Arc::clone(&config)).unwrap();
                    handle(
                        &warm,
                        &parse(&format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n")),
                        peer,
                    );
                    let likely = Path::new(&path[1..]);
                    let hit = warm.cache.get(&warm.root, likely).expect("cached");
                    assert!(hit.prepared.is_some(), "{name}: prepared by the miss");
                    let fast = prepared::serve(&warm, &req, &hit, likely, &mut Recycled::default())
                        .unwrap_or_else(|| panic!("{raw:?}: not answered from the prepared head"));
                    assert_eq!(fast.status, cold.status, "{raw:?}");
                    assert_eq!(fast.close, cold.close, "{raw:?}");
                    assert_eq!(
                        bytes_without_date(&fast),
                        bytes_without_date(&cold),
                        "{raw:?}"
                    );
                    // And through the front door.
                    let front = handle(&warm, &req, peer);
                    assert_eq!(
                        bytes_without_date(&front),
                        bytes_without_date(&cold),
                        "{raw:?}"
                    );
                    if fast.status == Status::OK && method == "GET" && !data.is_empty() {
                        assert!(
                            matches!(front.chunks.as_slice(), [Chunk::Bytes(_), Chunk::Shared(body)] if Arc::ptr_eq(body, &hit.data)),
                            "{raw:?}: the cached bytes are shared, not copied"
                        );
                    }
                }
            }
        }
        let _ = fs::remove_dir_all(&dir);
    }

    /// What the prepared answer must leave to `serve_file`: ranges, the
    /// preconditions it does not evaluate, a coding the client prefers,
    /// and a sidecar that appeared since the memo was last confirmed.
    #[test]
    fn a_prepared_hit_leaves_the_rest_to_serve_file() {
        let (dir, config) = settled_site("prepared-declines", &[("page.html", vec![b'h'; 3000])]);
        let site = Site::new(Arc::new(config)).unwrap();
        let peer = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let get = |extra: &str| {
            parse(&format!(
                "GET /page.html HTTP/1.1\r\nHost: t\r\n{extra}\r\n"
            ))
        };
        handle(&site, &get(""), peer);
        let likely = Path::new("page.html");
        let hit = site.cache.get(&site.root, likely).expect("cached");
        let prepared = hit.prepared.clone().expect("prepared");
        assert!(prepared::serve(&site, &get(""), &hit, likely, &mut Recycled::default()).is_some());
        for extra in [
            "Range: bytes=0-1\r\n",
            "If-Match: \"x\"\r\n",
            "If-Unmodified-Since: Sun, 06 Nov 1994 08:49:37 GMT\r\n",
            "If-Range: \"x\"\r\n",
            "Accept-Encoding: gzip\r\n",
        ] {
            assert!(
                prepared::serve(&site, &get(extra), &hit, likely, &mut Recycled::default())
                    .is_none(),
                "{extra:?}"
            );
        }
        // A sidecar appears; once the memo's second has passed, the
        // directory's new stamp sends the request to `serve_file`, which
        // finds the sidecar.
        fs::write(dir.join("page.html.gz"), b"gz").unwrap();
        prepared.forget_confirmation();
        assert!(prepared::serve(&site, &get(""), &hit, likely, &mut Recycled::default()).is_none());
        let r = handle(&site, &get("Accept-Encoding: gzip\r\n"), peer);
        assert!(bytes_without_date(&r).contains("\r\nContent-Encoding: gzip\r\n"));
        let r = handle(&site, &get(""), peer);
        assert!(bytes_without_date(&r).contains("\r\nVary: Accept-Encoding\r\n"));
        let _ = fs::remove_dir_all(&dir);
    }
}
