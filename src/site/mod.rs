//! The worker's job: turn one parsed request into a [`Response`].
//!
//! This is the blocking part of a request, so it runs on a pool thread:
//! decode the URL path (`url_path`), open the file beneath the root
//! (`sys::open_beneath`), `fstat` it, pick a precompressed sidecar
//! (`http::encoding`) or a variant compressed on the fly (`compress`, kept
//! in `variants`), evaluate the validators (`http::conditional`) and the
//! range (`http::range`), and build the response head. Small files are read
//! into memory here so the reactor sends head and body in one `writev`;
//! larger ones travel as an open `File` for `sendfile`.
//!
//! Every file opened by name (the requested one, an index, a sidecar, a
//! listed directory) goes through [`open`]: `sys::open_beneath`, which never
//! leaves the root, then the dotfile policy applied again to the real path
//! when a symlink led there. One policy, one place.
//!
//! Runs on: worker threads.

use std::fs::{File, Metadata};
use std::io;
use std::net::IpAddr;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

pub mod cache;
pub mod compress;
pub mod listing;
pub mod listing_cache;
pub mod url_path;
pub mod variants;

use crate::access_log;
use crate::config::Config;
use crate::http::conditional::{self, Conditions, Precondition, Validators};
use crate::http::date;
use crate::http::encoding::{AcceptEncoding, Coding};
use crate::http::errors::{self, error_response, OpenFailure};
use crate::http::range::{self, ByteRange, RangeOutcome};
use crate::http::request::{Method, RequestHead};
use crate::http::response::{Body, Chunk, HeadBuilder, Persistence, ReplyTo, Response, Status};
use crate::limits::{SIDECAR_MEMO_SETTLE, SMALL_FILE};
use crate::sys::{self, FileStamp};
use cache::FileCache;
use compress::Compressor;
use listing_cache::{Format, OverBudget, PageCache, PageKey};

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
        })
    }
}

/// Answers `req`. Never panics: a bug that panics answers 500 and is logged,
/// and the worker goes on.
pub fn handle(site: &Site, req: &RequestHead, peer: IpAddr) -> Response {
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| respond(site, req)));
    let mut response = outcome.unwrap_or_else(|_| {
        log::error!(
            "internal error answering {:?}; responded 500",
            req.request_line()
        );
        let reply = ReplyTo::request(req).closing();
        error_response(Status::INTERNAL_SERVER_ERROR, reply, &[])
    });
    // Check first: with the log off, not even the request line is formatted.
    if access_log::enabled() {
        response.log = access_log::record(
            peer,
            &req.request_line(),
            response.status,
            req.fields.referer.as_deref(),
            req.fields.user_agent.as_deref(),
        );
    }
    response
}

fn respond(site: &Site, req: &RequestHead) -> Response {
    match req.method {
        Method::Get | Method::Head => serve(site, req),
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

fn serve(site: &Site, req: &RequestHead) -> Response {
    if req.path == "*" {
        return error(req, Status::BAD_REQUEST, &[]);
    }
    if cfg!(feature = "test-hooks") && req.path == "/__stoke_test_panic" {
        panic!("forced by the test-only panic path");
    }
    if cfg!(feature = "test-hooks") && req.path == "/__stoke_test_hang" {
        test_hang(site);
    }
    let url = match url_path::decode(&req.path, site.config.hidden) {
        Ok(url) => url,
        Err(e) => return error(req, errors::for_path_error(e), &[]),
    };
    // A directory's index is asked for far more often than the directory.
    let index = url.relative.join("index.html");
    let likely = if url.trailing_slash {
        &index
    } else {
        &url.relative
    };
    if let Some(hit) = site.cache.get(&site.root, likely) {
        crate::trace::resolved(format_args!("cache hit"));
        let source = Source::cached(hit.data, hit.no_sidecars_in);
        return serve_file(site, req, source, hit.meta, likely);
    }
    let (file, meta) = match open(site, &url.relative) {
        Ok(found) => found,
        Err(e) => return open_error(req, &url.relative, &e),
    };
    crate::trace::resolved(format_args!("cache miss, opened"));
    if meta.is_file() {
        // `/file.txt/` names a directory, and a file is not one (the kernel
        // says ENOTDIR; nginx and Apache answer 404). Serving it anyway
        // would make the page's relative links resolve one level too deep
        // and give each file a second URL.
        if url.trailing_slash {
            return error(req, Status::NOT_FOUND, &[]);
        }
        return serve_file(site, req, Source::File(file), meta, &url.relative);
    }
    if !meta.is_dir() {
        // FIFOs, sockets and devices are never served: reading one could block a worker forever.
        return error(req, Status::NOT_FOUND, &[]);
    }
    if !url.trailing_slash {
        let mut location = url_path::encode(&url.decoded);
        location.push('/');
        if let Some(q) = &req.query {
            location.push('?');
            location.push_str(q);
        }
        return error(req, Status::MOVED_PERMANENTLY, &[("Location", &location)]);
    }
    match open(site, &index) {
        Ok((file, meta)) if meta.is_file() => {
            return serve_file(site, req, Source::File(file), meta, &index)
        }
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return open_error(req, &index, &e),
    }
    if site.config.listing {
        return serve_listing(site, req, &file, &meta, &url.relative, &url.decoded);
    }
    error(req, Status::FORBIDDEN, &[])
}

/// Test-only: blocks this worker, as a hung network mount would, until a
/// file named `__stoke_test_release` appears in the root (never, for a test
/// that wants a worker stuck for good); then the request goes on.
fn test_hang(site: &Site) {
    log::warn!("test hook: worker blocked until __stoke_test_release exists");
    let release = site.config.root.join("__stoke_test_release");
    while !release.exists() {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// Opens `relative` beneath the root and `fstat`s it: the only way a file is
/// reached by name. A hidden file reached through a symlink (`envlink ->
/// .env`, `g -> .git`) is refused like the hidden name itself, unless
/// `--hidden`: the policy judges what was opened, not only what was asked
/// for.
fn open(site: &Site, relative: &Path) -> io::Result<(File, Metadata)> {
    let symlinks = if site.config.follow_symlinks {
        sys::Symlinks::Anywhere
    } else {
        sys::Symlinks::StayInside
    };
    let opened = sys::open_beneath(&site.root, &site.config.root, relative, symlinks)?;
    if let Some(real) = &opened.via_link {
        if !site.config.hidden && url_path::exposes_hidden(real) {
            log::debug!(
                "{} leads to hidden {}; refused",
                relative.display(),
                real.display()
            );
            return Err(io::Error::from_raw_os_error(libc::ENOENT));
        }
    }
    let meta = opened.file.metadata()?;
    Ok((opened.file, meta))
}

/// Why a file could not be opened, logged with its path and answered as
/// `http::errors` says.
fn open_error(req: &RequestHead, relative: &Path, e: &io::Error) -> Response {
    let failure = OpenFailure::of(e);
    match failure {
        OpenFailure::NotHere => {}
        OpenFailure::Denied => log::warn!("permission denied: {}", relative.display()),
        OpenFailure::OutOfDescriptors => {
            log::warn!("out of descriptors opening {}: {e}", relative.display())
        }
        OpenFailure::Other => log::error!("cannot open {}: {e}", relative.display()),
    }
    failure.response(ReplyTo::request(req))
}

/// Content type from the extension: the user's `--mime` table first, then
/// mime_guess's; text gets `charset=utf-8`.
fn content_type(config: &Config, path: &Path) -> String {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    if let Some(ty) = ext.as_ref().and_then(|e| config.mime.get(e)) {
        return ty.clone();
    }
    let ty = mime_guess::from_path(path)
        .first_raw()
        .unwrap_or("application/octet-stream");
    if ty.starts_with("text/") || ty == "application/javascript" || ty == "application/json" {
        format!("{ty}; charset=utf-8")
    } else {
        ty.to_owned()
    }
}

/// Only types that compress well are looked up for `.br`/`.gz` sidecars:
/// nobody precompresses a JPEG, and each lookup is a syscall.
fn may_have_sidecar(content_type: &str) -> bool {
    content_type.starts_with("text/")
        || content_type.starts_with("application/javascript")
        || content_type.starts_with("application/json")
        || content_type.starts_with("application/xml")
        || content_type.starts_with("application/wasm")
        || content_type.starts_with("image/svg+xml")
}

/// Where the bytes of a response body come from.
enum Source {
    /// An open file: read by the worker if small, else sent with `sendfile`.
    File(File),
    /// A small file's contents, from the cache or just read.
    Memory {
        data: Arc<[u8]>,
        /// From the cache: no sidecar exists while the directory has this stamp.
        no_sidecars_in: Option<FileStamp>,
    },
}

impl Source {
    /// The bytes to compress on the fly.
    fn input(&self) -> compress::Input<'_> {
        match self {
            Source::File(file) => compress::Input::File(file),
            Source::Memory { data, .. } => compress::Input::Bytes(data),
        }
    }

    fn cached(data: Arc<[u8]>, no_sidecars_in: Option<FileStamp>) -> Source {
        Source::Memory {
            data,
            no_sidecars_in,
        }
    }

    /// Small files are read into memory now: the read is needed anyway (they
    /// leave with the head in one `writev`), and the cache keeps them.
    fn load_small(self, site: &Site, relative: &Path, meta: &Metadata) -> Source {
        let Source::File(file) = self else {
            return self;
        };
        if meta.len() > SMALL_FILE {
            return Source::File(file);
        }
        let mut data = vec![0; meta.len() as usize];
        // Positioned: the file's cursor is never used, so no earlier read
        // (or failed one) can shift what we send.
        match file.read_exact_at(&mut data, 0) {
            Ok(()) => {
                let data: Arc<[u8]> = data.into();
                // Cached only if a hit can reach it: hits re-resolve with no
                // symlink at all (`sys::stat_beneath`), so a file reached
                // through a link, or swapped since it was opened, stays out.
                let stamp = sys::stat_beneath(&site.root, relative);
                if stamp.is_ok_and(|now| now == FileStamp::of(meta)) {
                    site.cache.insert(relative, Arc::clone(&data), meta);
                }
                Source::cached(data, None)
            }
            // Shrunk since fstat: leave it to the body writer to fail cleanly.
            Err(_) => Source::File(file),
        }
    }
}

/// The variant of a file chosen for this request.
struct Variant {
    source: Source,
    /// The metadata of the file the bytes come from (the sidecar's, or the
    /// original's for identity and for a variant compressed on the fly).
    meta: Metadata,
    coding: Coding,
    /// Tells the variant's ETag from the identity's and from the other
    /// variants' of the same coding.
    etag_suffix: &'static str,
}

impl Variant {
    fn body_len(&self) -> u64 {
        match &self.source {
            Source::Memory { data, .. } => data.len() as u64,
            Source::File(_) => self.meta.len(),
        }
    }
}

/// What looking for one precompressed sidecar found.
enum Sidecar {
    Found(File, Metadata),
    /// No entry of that name at all (not even a dangling link) in the
    /// file's directory: true for as long as the directory is unchanged.
    Absent,
    /// Not served, for a reason the directory's stamp does not capture: a
    /// link (its target lives elsewhere), an error such as EMFILE or EACCES,
    /// something that is not a regular file.
    NotUsable,
}

impl Sidecar {
    fn take(self) -> Option<(File, Metadata)> {
        match self {
            Sidecar::Found(file, meta) => Some((file, meta)),
            Sidecar::Absent | Sidecar::NotUsable => None,
        }
    }
}

/// Looks for `relative`'s sidecar for `coding`. `probe_absence`: tell
/// `Absent` from `NotUsable` when it is not found (one more syscall, only
/// worth it when "none" can be remembered).
fn sidecar(site: &Site, relative: &Path, coding: Coding, probe_absence: bool) -> Sidecar {
    let Some(suffix) = coding.sidecar_suffix() else {
        return Sidecar::Absent;
    };
    let mut name = relative.as_os_str().to_owned();
    name.push(suffix);
    let name = PathBuf::from(name);
    match open(site, &name) {
        Ok((file, meta)) if meta.is_file() => Sidecar::Found(file, meta),
        Ok(_) => Sidecar::NotUsable,
        Err(e) => {
            classify_missing_sidecar(&e, || probe_absence && sys::entry_absent(&site.root, &name))
        }
    }
}

/// A sidecar that could not be opened is `Absent` only when the open said
/// "not found" and the name is really not there (`absent`, asked only
/// then): a dangling link also says "not found". Any other error, EMFILE
/// first of all, says nothing about the directory.
fn classify_missing_sidecar(e: &io::Error, absent: impl FnOnce() -> bool) -> Sidecar {
    if e.raw_os_error() == Some(libc::ENOENT) && absent() {
        return Sidecar::Absent;
    }
    if !matches!(
        e.raw_os_error(),
        Some(libc::ENOENT | libc::ENOTDIR | libc::ELOOP | libc::EXDEV)
    ) {
        log::warn!("sidecar lookup failed: {e}");
    }
    Sidecar::NotUsable
}

/// May "no sidecar" be remembered against a directory last modified at
/// `dir_mtime`, now? Not when it is recent (see [`SIDECAR_MEMO_SETTLE`]) or
/// in the future.
fn sidecar_memo_allowed(dir_mtime: (i64, i64), now: SystemTime) -> bool {
    let Ok(now) = now.duration_since(SystemTime::UNIX_EPOCH) else {
        return false;
    };
    let settled = now.as_secs() as i64 - SIDECAR_MEMO_SETTLE.as_secs() as i64;
    dir_mtime.0 < settled
}

fn serve_file(
    site: &Site,
    req: &RequestHead,
    source: Source,
    meta: Metadata,
    relative: &Path,
) -> Response {
    let config = &site.config;
    let ty = content_type(config, relative);

    // Precompressed sidecars: look them up, choose by Accept-Encoding. Most
    // files have none, and two failing opens per request are costly, so the
    // cache remembers "none" together with the directory's stamp, which any
    // new, removed or renamed entry changes: one cheap stat instead. Only
    // names that are absent outright are remembered (see `Sidecar`).
    let (mut brotli, mut gzip) = (None, None);
    let mut none_while_dir_is = None;
    if may_have_sidecar(&ty) {
        let dir = relative.parent().unwrap_or(Path::new(""));
        // The directory's state, however it is reached: the memo is a fact
        // about that inode (see `sys::stat_following_links`).
        let dir = sys::stat_following_links(&site.root, dir).ok();
        let known_none = matches!(
            &source,
            Source::Memory { no_sidecars_in: Some(stamp), .. } if Some(*stamp) == dir
        );
        if !known_none {
            // Only a small file is cached, and only a cached one keeps the memo.
            let rememberable = meta.len() <= SMALL_FILE
                && dir.is_some_and(|d| sidecar_memo_allowed(d.mtime, SystemTime::now()));
            let found_brotli = sidecar(site, relative, Coding::Brotli, rememberable);
            let found_gzip = sidecar(site, relative, Coding::Gzip, rememberable);
            // Remembered only when both names are simply not there: a link
            // or an error (EMFILE) must be looked at again next time.
            if matches!(
                (&found_brotli, &found_gzip),
                (Sidecar::Absent, Sidecar::Absent)
            ) {
                none_while_dir_is = dir.filter(|_| rememberable);
            }
            brotli = found_brotli.take();
            gzip = found_gzip.take();
        }
    }
    let has_sidecar = brotli.is_some() || gzip.is_some();
    let accept = AcceptEncoding::parse(req.fields.accept_encoding.as_deref());
    let chosen = accept.choose(brotli.is_some(), gzip.is_some());

    // On-the-fly compression (site::compress): only when the client wants
    // one of its codings more than every sidecar (a tie goes to the
    // sidecar); when it cannot be had now, `chosen` stands.
    let compressible = site.compressor.offers(&ty, &meta);
    let mut source = source;
    let live = match compress::pick(&accept, chosen, compressible) {
        Some(coding) => {
            source = source.load_small(site, relative, &meta);
            let data = site.compressor.variant(coding, &meta, source.input());
            data.map(|data| (coding, data))
        }
        None => None,
    };
    let varies = has_sidecar || !compressible.is_empty();

    let variant = match (live, chosen, brotli, gzip) {
        (Some((coding, data)), ..) => Variant {
            source: Source::cached(data, None),
            meta,
            coding,
            etag_suffix: compress::etag_suffix(coding),
        },
        (None, Coding::Brotli, Some((file, meta)), _)
        | (None, Coding::Gzip, _, Some((file, meta))) => Variant {
            source: Source::File(file),
            meta,
            coding: chosen,
            etag_suffix: chosen.token(),
        },
        _ => Variant {
            source: source.load_small(site, relative, &meta),
            meta,
            coding: Coding::Identity,
            etag_suffix: "",
        },
    };
    if let Some(dir) = none_while_dir_is {
        site.cache.note_no_sidecars(relative, dir);
    }

    let len = variant.body_len();
    let mtime = variant.meta.modified().ok();
    let etag = conditional::make_etag(
        variant.meta.len(),
        mtime.unwrap_or(UNIX_EPOCH),
        variant.etag_suffix,
    );
    // Taken before any head is built, so every `Date` is at or after it.
    let now = SystemTime::now();
    let validators = Validators {
        etag: &etag,
        last_modified: conditional::last_modified(mtime, now),
        now,
    };
    let last_modified = validators.last_modified.map(date::imf_fixdate);
    // Every answer about a file with variants says so, errors included: a
    // cache must not reuse a 412 or 416 made for another Accept-Encoding.
    let vary: &[(&str, &str)] = if varies {
        &[("Vary", "Accept-Encoding")]
    } else {
        &[]
    };

    // Headers shared by 200, 206 and 304.
    let common = |head: &mut HeadBuilder| {
        if let Some(lm) = &last_modified {
            head.header("Last-Modified", lm);
        }
        head.header("ETag", &etag);
        head.header("Accept-Ranges", "bytes");
        for (name, value) in vary {
            head.header(name, value);
        }
        if let Some(cc) = &config.cache_control {
            head.header("Cache-Control", cc);
        }
        for (name, value) in &config.headers {
            head.header(name, value);
        }
    };

    let conditions = Conditions {
        if_match: req.fields.if_match.as_deref(),
        if_none_match: req.fields.if_none_match.as_deref(),
        if_modified_since: req.fields.if_modified_since.as_deref(),
        if_unmodified_since: req.fields.if_unmodified_since.as_deref(),
        if_range: req.fields.if_range.as_deref(),
    };
    match conditional::evaluate(true, &conditions, &validators) {
        Precondition::Proceed => {}
        Precondition::NotModified => {
            let mut head = HeadBuilder::new(Status::NOT_MODIFIED);
            common(&mut head);
            return plain(Status::NOT_MODIFIED, head, req);
        }
        Precondition::Failed => return error(req, Status::PRECONDITION_FAILED, vary),
    }

    let ranges = match req.fields.range.as_deref() {
        Some(r)
            if conditions
                .if_range
                .is_none_or(|ir| conditional::if_range_allows(ir, &validators)) =>
        {
            range::evaluate(r, len)
        }
        _ => RangeOutcome::Full,
    };

    let body = Body::for_method(req.method);
    match ranges {
        RangeOutcome::Unsatisfiable => {
            let unsatisfied = range::unsatisfied_range(len);
            let mut extra = vec![("Content-Range", unsatisfied.as_str())];
            extra.extend_from_slice(vary);
            error(req, Status::RANGE_NOT_SATISFIABLE, &extra)
        }
        RangeOutcome::Full => {
            let mut head = HeadBuilder::new(Status::OK);
            head.header("Content-Type", &ty);
            if variant.coding != Coding::Identity {
                head.header("Content-Encoding", variant.coding.token());
            }
            common(&mut head);
            head.content_length(len);
            single_body(Status::OK, head, req, variant.source, 0, len, body, vary)
        }
        RangeOutcome::Partial(parts) if parts.len() == 1 => {
            let part = parts[0];
            let mut head = HeadBuilder::new(Status::PARTIAL_CONTENT);
            head.header("Content-Type", &ty);
            if variant.coding != Coding::Identity {
                head.header("Content-Encoding", variant.coding.token());
            }
            head.header("Content-Range", &range::content_range(part, len));
            common(&mut head);
            head.content_length(part.len());
            single_body(
                Status::PARTIAL_CONTENT,
                head,
                req,
                variant.source,
                part.start,
                part.len(),
                body,
                vary,
            )
        }
        RangeOutcome::Partial(parts) => {
            multipart(req, variant, &ty, &etag, &parts, len, body, common)
        }
    }
}

/// A body that is one stretch of one file. `vary` goes on the error answer
/// if the file cannot be read, as on every answer about it.
#[allow(clippy::too_many_arguments)]
fn single_body(
    status: Status,
    head: HeadBuilder,
    req: &RequestHead,
    source: Source,
    offset: u64,
    len: u64,
    body: Body,
    vary: &[(&str, &str)],
) -> Response {
    let head_only = body == Body::HeadOnly;
    let mut bytes = head.finish(Persistence::for_request(req));
    let mut chunks = Vec::with_capacity(2);
    let file = match source {
        Source::Memory { data, .. } => {
            let whole = offset == 0 && len == data.len() as u64;
            if head_only {
                chunks.push(Chunk::Bytes(bytes));
            } else if whole && len > SMALL_FILE {
                // A large compressed variant is shared with the cache, not
                // copied.
                chunks.push(Chunk::Bytes(bytes));
                chunks.push(Chunk::Shared(data));
            } else {
                bytes.extend_from_slice(&data[offset as usize..(offset + len) as usize]);
                chunks.push(Chunk::Bytes(bytes));
            }
            return Response {
                status,
                chunks,
                close: Persistence::for_request(req).closes(),
                log: None,
            };
        }
        Source::File(file) => file,
    };
    if head_only || len == 0 {
        chunks.push(Chunk::Bytes(bytes));
    } else if len <= SMALL_FILE {
        let start = bytes.len();
        bytes.resize(start + len as usize, 0);
        let read = file.read_exact_at(&mut bytes[start..], offset);
        if let Err(e) = read {
            // The file shrank between fstat and read: we can't send what the
            // head promised.
            log::warn!("file changed while being read: {e}");
            return error(req, Status::INTERNAL_SERVER_ERROR, vary);
        }
        chunks.push(Chunk::Bytes(bytes));
    } else {
        chunks.push(Chunk::Bytes(bytes));
        chunks.push(Chunk::File {
            file: Arc::new(file),
            offset,
            len,
        });
    }
    Response {
        status,
        chunks,
        close: Persistence::for_request(req).closes(),
        log: None,
    }
}

/// `206 multipart/byteranges` (RFC 9110 §14.6): each range as a part with its
/// own `Content-Type` and `Content-Range`, the file bytes sent with sendfile.
#[allow(clippy::too_many_arguments)]
fn multipart(
    req: &RequestHead,
    variant: Variant,
    ty: &str,
    etag: &str,
    parts: &[ByteRange],
    len: u64,
    body_wanted: Body,
    common: impl Fn(&mut HeadBuilder),
) -> Response {
    // The boundary must not occur in the parts; deriving it from the ETag
    // (hex and dashes) and never from file data makes it unique enough.
    let boundary = format!(
        "stoke-{}",
        etag.trim_matches('"')
            .replace(|c: char| !c.is_ascii_alphanumeric(), "")
    );
    let encoding = match variant.coding {
        Coding::Identity => String::new(),
        c => format!("Content-Encoding: {}\r\n", c.token()),
    };
    // Every part points into the same file (or the same bytes).
    let file = match variant.source {
        Source::File(file) => Ok(Arc::new(file)),
        Source::Memory { data, .. } => Err(data),
    };
    let mut body: Vec<Chunk> = Vec::with_capacity(parts.len() * 2 + 1);
    for (i, part) in parts.iter().enumerate() {
        let lead = if i == 0 { "" } else { "\r\n" };
        let part_head = format!(
            "{lead}--{boundary}\r\nContent-Type: {ty}\r\n{encoding}Content-Range: {}\r\n\r\n",
            range::content_range(*part, len)
        );
        body.push(Chunk::Bytes(part_head.into_bytes()));
        body.push(match &file {
            Ok(file) => Chunk::File {
                file: Arc::clone(file),
                offset: part.start,
                len: part.len(),
            },
            Err(data) => Chunk::Bytes(data[part.start as usize..part.end as usize].to_vec()),
        });
    }
    body.push(Chunk::Bytes(format!("\r\n--{boundary}--\r\n").into_bytes()));
    let body_len: u64 = body.iter().map(Chunk::len).sum();

    let mut head = HeadBuilder::new(Status::PARTIAL_CONTENT);
    head.header(
        "Content-Type",
        &format!("multipart/byteranges; boundary={boundary}"),
    );
    common(&mut head);
    head.content_length(body_len);
    let mut chunks = vec![Chunk::Bytes(head.finish(Persistence::for_request(req)))];
    if body_wanted == Body::Full {
        chunks.extend(body);
    }
    Response {
        status: Status::PARTIAL_CONTENT,
        chunks,
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
        .fields
        .accept
        .as_deref()
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
    use super::*;
    use crate::http::request::{self, Parsed};
    use std::fs;
    use std::io::Read;
    use std::net::Ipv4Addr;
    use std::path::PathBuf;
    use std::time::Duration;

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

    /// EMFILE (or any error but "not found") while looking for a sidecar
    /// says nothing about the directory: remembering it as "no sidecar"
    /// would hide a real sidecar until the directory changes.
    #[test]
    fn an_emfile_during_the_sidecar_lookup_is_not_remembered_as_no_sidecar() {
        for errno in [
            libc::EMFILE,
            libc::ENFILE,
            libc::EACCES,
            libc::EIO,
            libc::ELOOP,
        ] {
            let e = io::Error::from_raw_os_error(errno);
            let got = classify_missing_sidecar(&e, || panic!("probed after errno {errno}"));
            assert!(matches!(got, Sidecar::NotUsable), "errno {errno}");
        }
        let missing = io::Error::from_raw_os_error(libc::ENOENT);
        assert!(matches!(
            classify_missing_sidecar(&missing, || true),
            Sidecar::Absent
        ));
        // Not found, yet the name is there: a dangling link.
        assert!(matches!(
            classify_missing_sidecar(&missing, || false),
            Sidecar::NotUsable
        ));
    }

    /// A directory changed within the settle time could change again within
    /// the same timestamp tick, invisibly to its stamp.
    #[test]
    fn a_recently_changed_directory_is_not_remembered_as_sidecar_free() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let secs = |s: i64| (s, 0);
        assert!(sidecar_memo_allowed(secs(1_000_000 - 3600), now));
        assert!(sidecar_memo_allowed(secs(1_000_000 - 3), now));
        assert!(!sidecar_memo_allowed(secs(1_000_000 - 1), now));
        assert!(!sidecar_memo_allowed(secs(1_000_000), now));
        assert!(!sidecar_memo_allowed(secs(1_000_000 + 60), now));
        assert!(!sidecar_memo_allowed(secs(0), SystemTime::UNIX_EPOCH));
    }
}
