//! A cached small file's answer, prepared once: the lines of its head that
//! do not depend on the request (`Content-Type`, `Last-Modified`, `ETag`,
//! `Accept-Ranges`, `Vary`, `Cache-Control`, the configured headers,
//! `Content-Length`) and its validators, made by `file::serve_file` when it
//! serves the file from memory and kept in the file's cache slot
//! (`site::cache`) for that version of the file.
//!
//! [`serve`] answers a cache hit from it when the request is a plain one: no
//! `Range`, `If-Match`, `If-Unmodified-Since` or `If-Range`, and identity is
//! what `serve_file` would send (no sidecar, and no coding the client wants
//! more). The head is then the status line and `Date`, these lines (all of
//! them for a 200, the validators' part for a 304) and the connection's
//! line; the body is the cached bytes themselves, shared, not copied. Head
//! and chunk list are built in a written response's buffers when the
//! caller has some (`http::response::Recycled`): a hit allocates nothing.
//! The
//! bytes are the ones `serve_file` writes for the same request (tested
//! byte for byte); anything else goes to `serve_file`.
//!
//! Sidecars: the cache slot remembers "no `.br`/`.gz`" together with the
//! directory's stamp. `serve_file` checks that stamp on every request; a
//! prepared hit checks it at most once per second per cached path, so a
//! sidecar created next to a cached file is noticed within a second. Until
//! then the identity answer goes out (always a correct body), without
//! `Vary: Accept-Encoding` if the file had no other reason to vary.
//!
//! Runs on: worker threads.

use std::mem;
use std::ops::Range;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::cache::Hit;
use super::{compress, Site};
use crate::http::conditional::{self, Conditions, Precondition, Validators};
use crate::http::date;
use crate::http::encoding::{AcceptEncoding, Coding};
use crate::http::request::RequestHead;
use crate::http::response::{self, Body, Chunk, Persistence, Recycled, Response, Status};
use crate::sys::{self, FileStamp};

/// Room for the status line, `Server` and `Date`, and for the longest
/// connection line with the empty line: a prepared head is written into
/// one buffer of the right size.
const HEAD_EXTRA: usize = 128;

/// The request-independent part of one file version's answer.
pub struct Prepared {
    /// The version of the file this was made from; stale once it changes.
    stamp: FileStamp,
    /// `Content-Type` line, then `common`, then `Content-Length` line.
    lines: Box<[u8]>,
    /// The lines a 304 carries too: validators, `Accept-Ranges`, `Vary`,
    /// `Cache-Control`, the configured headers.
    common: Range<usize>,
    etag: Box<str>,
    /// The `Last-Modified` sent, in whole seconds; `None`: none is sent.
    last_modified: Option<SystemTime>,
    /// The same, in UNIX seconds (compared with the clock on every hit).
    last_modified_secs: Option<i64>,
    /// The type may have `.br`/`.gz` sidecars: a hit needs the slot's "no
    /// sidecar" memo to hold.
    may_have_sidecar: bool,
    /// The codings the file is compressed to on the fly (`Compressor::offers`).
    compressible: &'static [Coding],
    /// The UNIX second in which the slot's "no sidecar" memo was last found
    /// to match its directory (`i64::MIN`: never).
    sidecars_confirmed: AtomicI64,
}

/// What a file's answer depends on besides the request; see [`Prepared::new`].
pub struct Parts<'a> {
    pub stamp: FileStamp,
    pub content_type: &'a str,
    /// The header lines shared by 200 and 304, as `serve_file` writes them.
    pub common: &'a [u8],
    pub len: u64,
    pub etag: &'a str,
    pub last_modified: Option<SystemTime>,
    pub may_have_sidecar: bool,
    pub compressible: &'static [Coding],
}

impl Prepared {
    pub fn new(parts: Parts<'_>) -> Prepared {
        let mut lines = Vec::with_capacity(parts.common.len() + 80);
        response::push_header(&mut lines, "Content-Type", parts.content_type);
        let start = lines.len();
        lines.extend_from_slice(parts.common);
        let common = start..lines.len();
        let mut digits = [0; response::MAX_DECIMAL_LEN];
        let len = response::decimal(parts.len, &mut digits);
        response::push_header(&mut lines, "Content-Length", len);
        Prepared {
            stamp: parts.stamp,
            lines: lines.into_boxed_slice(),
            common,
            etag: parts.etag.into(),
            last_modified: parts.last_modified.map(conditional::http_seconds),
            last_modified_secs: parts.last_modified.map(date::unix_seconds),
            may_have_sidecar: parts.may_have_sidecar,
            compressible: parts.compressible,
            sidecars_confirmed: AtomicI64::new(i64::MIN),
        }
    }

    /// The file version this answer belongs to.
    pub fn stamp(&self) -> FileStamp {
        self.stamp
    }

    /// Test-only: as if the sidecar memo was last confirmed long ago.
    #[cfg(test)]
    pub fn forget_confirmation(&self) {
        self.sidecars_confirmed.store(i64::MIN, Ordering::Relaxed);
    }
}

/// The answer to `req` for the cache hit `hit` of `relative`, when it is
/// prepared and the request plain (see the module doc); `None`: ask
/// `serve_file`.
pub(super) fn serve(
    site: &Site,
    req: &RequestHead,
    hit: &Hit,
    relative: &Path,
    recycled: &mut Recycled,
) -> Option<Response> {
    let prepared = hit.prepared.as_deref()?;
    if req.range().is_some()
        || req.if_match().is_some()
        || req.if_unmodified_since().is_some()
        || req.if_range().is_some()
    {
        return None;
    }
    // One cheap clock read, in whole seconds (all a head says): the
    // `Date`, and `now` for the validators.
    let now_secs = sys::unix_seconds_now();
    // A clock set back behind the file's time: `serve_file` sends "now"
    // as `Last-Modified` then. (Also a clock before 1970.)
    if now_secs < 0 || prepared.last_modified_secs.is_some_and(|lm| lm > now_secs) {
        return None;
    }
    if prepared.may_have_sidecar && !no_sidecars(site, hit, prepared, relative, now_secs) {
        return None;
    }
    // As `serve_file` decides, with no sidecar on offer. No
    // `Accept-Encoding` at all means identity only (`AcceptEncoding::parse`).
    if let (false, Some(accept)) = (prepared.compressible.is_empty(), req.accept_encoding()) {
        let accept = AcceptEncoding::parse(Some(accept));
        let chosen = accept.choose(false, false);
        if compress::pick(&accept, chosen, prepared.compressible).is_some() {
            return None;
        }
    }
    let conditions = Conditions {
        if_none_match: req.if_none_match(),
        if_modified_since: req.if_modified_since(),
        ..Conditions::default()
    };
    let precondition =
        if conditions.if_none_match.is_none() && conditions.if_modified_since.is_none() {
            // No condition asked (the other two were ruled out above): the
            // common request, with nothing to evaluate.
            Precondition::Proceed
        } else {
            let validators = Validators {
                etag: &prepared.etag,
                last_modified: prepared.last_modified,
                now: UNIX_EPOCH + Duration::from_secs(now_secs.unsigned_abs()),
            };
            conditional::evaluate(true, &conditions, &validators)
        };
    let (status, lines) = match precondition {
        Precondition::Proceed => (Status::OK, &prepared.lines[..]),
        Precondition::NotModified => (
            Status::NOT_MODIFIED,
            &prepared.lines[prepared.common.clone()],
        ),
        Precondition::Failed => return None,
    };
    let persistence = Persistence::for_request(req);
    // Built in the buffers of an earlier response when there are any
    // (`Recycled`): then this allocates nothing.
    let Recycled {
        mut head,
        mut chunks,
    } = mem::take(recycled);
    head.clear();
    chunks.clear();
    head.reserve(HEAD_EXTRA + lines.len());
    chunks.reserve(2);
    response::start_head_at(&mut head, status, now_secs);
    head.extend_from_slice(lines);
    head.extend_from_slice(persistence.head_end());
    chunks.push(Chunk::Bytes(head));
    let body = Body::for_method(req.method) == Body::Full;
    if status == Status::OK && body && !hit.data.is_empty() {
        chunks.push(Chunk::Shared(Arc::clone(&hit.data)));
    }
    Some(Response {
        status,
        chunks,
        close: persistence.closes(),
        log: None,
    })
}

/// Does the slot's "no sidecar" memo hold now? Checked against the
/// directory's stamp at most once per second (see the module doc).
fn no_sidecars(
    site: &Site,
    hit: &Hit,
    prepared: &Prepared,
    relative: &Path,
    now_secs: i64,
) -> bool {
    let Some(memo) = hit.no_sidecars_in else {
        return false;
    };
    if prepared.sidecars_confirmed.load(Ordering::Relaxed) == now_secs {
        return true;
    }
    // The parent of a normalized relative path (see `url_path`).
    let bytes = relative.as_os_str().as_bytes();
    let dir = match bytes.iter().rposition(|&b| b == b'/') {
        Some(at) => &bytes[..at],
        None => &[],
    };
    let dir = Path::new(std::ffi::OsStr::from_bytes(dir));
    match sys::stat_following_links(&site.root, dir) {
        Ok(stamp) if stamp == memo => {
            prepared
                .sidecars_confirmed
                .store(now_secs, Ordering::Relaxed);
            true
        }
        _ => false,
    }
}
