//! One file's answer: the variant sent (a precompressed `.br`/`.gz`
//! sidecar, one compressed on the fly, or the file itself), its content
//! type, its validators (`ETag`, `Last-Modified`), and what the request's
//! conditions and range make of them: 200, 206, 304, 412 or 416.
//!
//! Runs on: worker threads.

use std::fs::{File, Metadata};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use super::body::{multipart, single_body, Prepare, Source};
use super::prepared::{Parts, Prepared};
use super::resolve::open;
use super::{compress, error, plain, Site};
use crate::config::Config;
use crate::http::conditional::{self, Conditions, Precondition, Validators};
use crate::http::date;
use crate::http::encoding::{AcceptEncoding, Coding};
use crate::http::range::{self, RangeOutcome};
use crate::http::request::RequestHead;
use crate::http::response::{push_header, Body, HeadBuilder, Response, Status};
use crate::limits::{SIDECAR_MEMO_SETTLE, SMALL_FILE};
use crate::sys::{self, FileStamp};

/// Content type from the extension: the user's `--mime` table first, then
/// mime_guess's; text gets `charset=utf-8`.
pub(super) fn content_type(config: &Config, path: &Path) -> String {
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
pub(super) fn may_have_sidecar(content_type: &str) -> bool {
    content_type.starts_with("text/")
        || content_type.starts_with("application/javascript")
        || content_type.starts_with("application/json")
        || content_type.starts_with("application/xml")
        || content_type.starts_with("application/wasm")
        || content_type.starts_with("image/svg+xml")
}

/// The variant of a file chosen for this request.
pub(super) struct Variant {
    pub(super) source: Source,
    /// The metadata of the file the bytes come from (the sidecar's, or the
    /// original's for identity and for a variant compressed on the fly).
    pub(super) meta: Metadata,
    pub(super) coding: Coding,
    /// Tells the variant's ETag from the identity's and from the other
    /// variants' of the same coding.
    pub(super) etag_suffix: &'static str,
}

impl Variant {
    pub(super) fn body_len(&self) -> u64 {
        match &self.source {
            Source::Memory { data, .. } => data.len() as u64,
            Source::File(_) => self.meta.len(),
        }
    }
}

/// What looking for one precompressed sidecar found.
pub(super) enum Sidecar {
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
    pub(super) fn take(self) -> Option<(File, Metadata)> {
        match self {
            Sidecar::Found(file, meta) => Some((file, meta)),
            Sidecar::Absent | Sidecar::NotUsable => None,
        }
    }
}

/// Looks for `relative`'s sidecar for `coding`. `probe_absence`: tell
/// `Absent` from `NotUsable` when it is not found (one more syscall, only
/// worth it when "none" can be remembered).
pub(super) fn sidecar(
    site: &Site,
    relative: &Path,
    coding: Coding,
    probe_absence: bool,
) -> Sidecar {
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
pub(super) fn classify_missing_sidecar(e: &io::Error, absent: impl FnOnce() -> bool) -> Sidecar {
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
pub(super) fn sidecar_memo_allowed(dir_mtime: (i64, i64), now: SystemTime) -> bool {
    let Ok(now) = now.duration_since(SystemTime::UNIX_EPOCH) else {
        return false;
    };
    let settled = now.as_secs() as i64 - SIDECAR_MEMO_SETTLE.as_secs() as i64;
    dir_mtime.0 < settled
}

pub(super) fn serve_file(
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
    let accept = AcceptEncoding::parse(req.accept_encoding());
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
            source: Source::cached(data, None, Prepare::NotWanted),
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
    let mut common_lines = Vec::with_capacity(256);
    if let Some(lm) = &last_modified {
        push_header(&mut common_lines, "Last-Modified", lm);
    }
    push_header(&mut common_lines, "ETag", &etag);
    push_header(&mut common_lines, "Accept-Ranges", "bytes");
    for (name, value) in vary {
        push_header(&mut common_lines, name, value);
    }
    if let Some(cc) = &config.cache_control {
        push_header(&mut common_lines, "Cache-Control", cc);
    }
    for (name, value) in &config.headers {
        push_header(&mut common_lines, name, value);
    }
    let common = |head: &mut HeadBuilder| {
        head.lines(&common_lines);
    };

    // The cache's bytes, served as they are: keep this answer's
    // request-independent part for the next hits (`site::prepared`). Not
    // when `Last-Modified` was clamped to now (a file dated in the future):
    // that one moves with the clock.
    let identity_from_cache = matches!(
        &variant.source,
        Source::Memory {
            prepare: Prepare::Wanted,
            ..
        }
    ) && variant.coding == Coding::Identity
        && !has_sidecar;
    if identity_from_cache && mtime.is_none_or(|m| m <= now) {
        let prepared = Prepared::new(Parts {
            stamp: FileStamp::of(&variant.meta),
            content_type: &ty,
            common: &common_lines,
            len,
            etag: &etag,
            last_modified: validators.last_modified,
            may_have_sidecar: may_have_sidecar(&ty),
            compressible,
        });
        site.cache.prepare(relative, Arc::new(prepared));
    }

    let conditions = Conditions {
        if_match: req.if_match(),
        if_none_match: req.if_none_match(),
        if_modified_since: req.if_modified_since(),
        if_unmodified_since: req.if_unmodified_since(),
        if_range: req.if_range(),
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

    let ranges = match req.range() {
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// Extension → type: the `--mime` table first (case-insensitively),
    /// then mime_guess; text-like types say `charset=utf-8`.
    #[test]
    fn content_types() {
        let mut config = Config::for_root(Path::new("/")).unwrap();
        config
            .mime
            .insert("md".to_owned(), "text/markdown; charset=utf-8".to_owned());
        for (path, want) in [
            ("a.html", "text/html; charset=utf-8"),
            ("a.CSS", "text/css; charset=utf-8"),
            ("a.js", "text/javascript; charset=utf-8"),
            ("a.json", "application/json; charset=utf-8"),
            ("a.png", "image/png"),
            ("a.svg", "image/svg+xml"),
            ("a.MD", "text/markdown; charset=utf-8"),
            ("noext", "application/octet-stream"),
            ("a.unknownext", "application/octet-stream"),
        ] {
            assert_eq!(content_type(&config, Path::new(path)), want, "{path}");
        }
    }

    /// Sidecars are looked up for types that compress, never for images
    /// or archives (each lookup is a syscall).
    #[test]
    fn only_compressible_types_may_have_a_sidecar() {
        for ty in [
            "text/html; charset=utf-8",
            "text/css; charset=utf-8",
            "application/javascript; charset=utf-8",
            "application/json; charset=utf-8",
            "application/xml",
            "application/wasm",
            "image/svg+xml",
        ] {
            assert!(may_have_sidecar(ty), "{ty}");
        }
        for ty in [
            "image/png",
            "image/jpeg",
            "application/gzip",
            "application/octet-stream",
            "video/mp4",
        ] {
            assert!(!may_have_sidecar(ty), "{ty}");
        }
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
