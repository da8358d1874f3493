//! THE policy: a request's URL → what to open, and how. A plain URL path
//! (nothing to decode, see `url_path::plain`) is first looked up in the
//! small-file cache as it is; otherwise it is decoded once (`url_path`) and
//! the cache is asked; a hit is answered from its prepared answer when the
//! request allows (`prepared`), else by `file`; on a miss the file is opened beneath the root ([`open`]: the only way a file
//! is reached by name, so every alternate file, index, sidecar or listed
//! directory, goes through the same check). Here are decided: dotfiles
//! (also when a symlink leads to one), a trailing slash on a file (404),
//! FIFOs, sockets and devices (never read: 404), a
//! directory without its slash (301), its `index.html`, else its listing
//! or 403; and an open that failed, through `http::errors`.
//!
//! Runs on: worker threads.

use std::fs::{File, Metadata};
use std::io;
use std::path::Path;

use super::body::{Prepare, Source};
use super::cache::Hit;
use super::file::serve_file;
use super::{error, prepared, serve_listing, url_path, Site};
use crate::http::errors::{self, OpenFailure};
use crate::http::request::RequestHead;
use crate::http::response::{Recycled, ReplyTo, Response, Status};
use crate::sys;

/// The file that answers for a directory.
const INDEX: &str = "index.html";

/// GET and HEAD: what the URL names (a file, a directory's index or its
/// listing), or the status that says why not.
pub(super) fn serve(site: &Site, req: &RequestHead, recycled: &mut Recycled) -> Response {
    if req.path() == "*" {
        return error(req, Status::BAD_REQUEST, &[]);
    }
    if cfg!(feature = "test-hooks") && req.path() == "/__stoke_test_panic" {
        panic!("forced by the test-only panic path");
    }
    if cfg!(feature = "test-hooks") && req.path() == "/__stoke_test_hang" {
        test_hang(site);
    }
    // The common case first: a plain path (nothing to decode) whose file
    // is cached, found without building a path (see `url_path::plain`).
    let mut plain_buf = None;
    let plain = url_path::plain(req.path(), INDEX, &mut plain_buf);
    if let Some(likely) = plain {
        if let Some(hit) = site.cache.get(&site.root, likely) {
            return serve_hit(site, req, hit, likely, recycled);
        }
    }
    let url = match url_path::decode(req.path(), site.config.hidden) {
        Ok(url) => url,
        Err(e) => return error(req, errors::for_path_error(e), &[]),
    };
    // A directory's index is asked for far more often than the directory.
    let index = url.relative.join(INDEX);
    let likely = if url.trailing_slash {
        &index
    } else {
        &url.relative
    };
    // (A plain path was looked up already, under the same name.)
    if plain.is_none() {
        if let Some(hit) = site.cache.get(&site.root, likely) {
            return serve_hit(site, req, hit, likely, recycled);
        }
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
        if let Some(q) = req.query() {
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

/// A cache hit for `likely`: its prepared answer when the request allows
/// (`site::prepared`, built in `recycled`), else `serve_file` on the
/// cached bytes.
fn serve_hit(
    site: &Site,
    req: &RequestHead,
    hit: Hit,
    likely: &Path,
    recycled: &mut Recycled,
) -> Response {
    crate::trace::resolved(format_args!("cache hit"));
    if let Some(response) = prepared::serve(site, req, &hit, likely, recycled) {
        return response;
    }
    let prepare = match hit.prepared {
        Some(_) => Prepare::NotWanted,
        None => Prepare::Wanted,
    };
    let source = Source::cached(hit.data, hit.no_sidecars_in, prepare);
    serve_file(site, req, source, Metadata::clone(&hit.meta), likely)
}

/// Test-only: blocks this worker, as a hung network mount would, until a
/// file named `__stoke_test_release` appears in the root (never, for a test
/// that wants a worker stuck for good); then the request goes on.
pub(super) fn test_hang(site: &Site) {
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
pub(super) fn open(site: &Site, relative: &Path) -> io::Result<(File, Metadata)> {
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
pub(super) fn open_error(req: &RequestHead, relative: &Path, e: &io::Error) -> Response {
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
