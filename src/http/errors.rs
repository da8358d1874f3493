//! The one map from every kind of error to the status code that answers
//! it, and the error pages themselves.
//!
//! Errors are small `Copy` enums where they happen (a head refused by
//! `request::parse`, a chunked body refused by `chunked`, a URL path
//! refused by `site::url_path`, a file the worker could not open); this
//! module alone says which code each one earns, so a reader checks the
//! whole policy here and a change of policy is one edit. Context (the path,
//! the errno, the peer) stays with the caller, which logs it.
//!
//! Runs on: any thread (the connection's own refusals on the thread that
//! drives it, the rest on workers).

use std::io;

use super::chunked::ChunkedError;
use super::request::ParseError;
use super::response::{Chunk, HeadBuilder, ReplyTo, Response, Status};

/// Every way a request head can be refused, and the code it earns.
pub fn for_parse_error(e: ParseError) -> Status {
    match e {
        ParseError::Malformed
        | ParseError::BadHost
        | ParseError::BadTarget
        | ParseError::BadContentLength
        | ParseError::AmbiguousFraming => Status::BAD_REQUEST,
        ParseError::TargetTooLong => Status::URI_TOO_LONG,
        ParseError::HeadTooLarge => Status::HEADER_FIELDS_TOO_LARGE,
        ParseError::UnsupportedVersion => Status::VERSION_NOT_SUPPORTED,
        ParseError::UnknownMethod | ParseError::UnknownTransferCoding => Status::NOT_IMPLEMENTED,
        ParseError::UnknownExpectation => Status::EXPECTATION_FAILED,
    }
}

/// A chunked request body we refused while reading it.
pub fn for_chunked_error(e: ChunkedError) -> Status {
    match e {
        ChunkedError::Malformed => Status::BAD_REQUEST,
        ChunkedError::TooLarge => Status::CONTENT_TOO_LARGE,
    }
}

/// Why a request path was refused by `site::url_path::decode`. Defined
/// here, beside its status codes, because `http` must not depend on `site`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PathError {
    /// Malformed percent-encoding (a lone `%`, `%zz`), invalid or overlong
    /// UTF-8 after decoding (e.g. `%c0%ae`), NUL (`%00` or raw), or any other
    /// control byte → 400.
    BadEncoding,
    /// `%2f` / `%2F` inside a segment. It is never treated as a separator, and
    /// no file name can contain '/', so nothing could match → 404.
    EncodedSlash,
    /// A segment starting with '.' while hidden files are not allowed; the only
    /// exception is the first segment `.well-known` (RFC 8615) → 404.
    Hidden,
    /// Not origin-form: does not start with '/' → 400.
    NotAbsolute,
}

pub fn for_path_error(e: PathError) -> Status {
    match e {
        PathError::BadEncoding | PathError::NotAbsolute => Status::BAD_REQUEST,
        PathError::EncodedSlash | PathError::Hidden => Status::NOT_FOUND,
    }
}

/// Why a file (or directory) could not be opened or read beneath the root,
/// sorted by what the client should hear.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpenFailure {
    /// Missing, a file used as a directory, a name too long, or a path that
    /// leaves the root through a symlink: all simply "not here" → 404.
    NotHere,
    /// The server may not read it → 403.
    Denied,
    /// Out of descriptors: a moment's overload, not a fault → 503 with
    /// `Retry-After`, and the connection closes, which frees a descriptor.
    OutOfDescriptors,
    /// Anything else (EIO, ...) → 500.
    Other,
}

impl OpenFailure {
    pub fn of(e: &io::Error) -> OpenFailure {
        match e.raw_os_error() {
            Some(libc::ENOENT | libc::ENOTDIR | libc::ENAMETOOLONG | libc::EXDEV | libc::ELOOP) => {
                OpenFailure::NotHere
            }
            Some(libc::EACCES | libc::EPERM) => OpenFailure::Denied,
            Some(libc::EMFILE | libc::ENFILE) => OpenFailure::OutOfDescriptors,
            _ => OpenFailure::Other,
        }
    }

    /// The answer for `reply`.
    pub fn response(self, reply: ReplyTo) -> Response {
        match self {
            OpenFailure::NotHere => error_response(Status::NOT_FOUND, reply, &[]),
            OpenFailure::Denied => error_response(Status::FORBIDDEN, reply, &[]),
            OpenFailure::OutOfDescriptors => retry_later(reply.closing()),
            OpenFailure::Other => error_response(Status::INTERNAL_SERVER_ERROR, reply, &[]),
        }
    }
}

/// 503 with `Retry-After: 1`: the server is briefly short of something
/// (descriptors, the memory budget for listing pages), and a retry in a
/// second will likely succeed.
pub fn retry_later(reply: ReplyTo) -> Response {
    error_response(Status::SERVICE_UNAVAILABLE, reply, &[("Retry-After", "1")])
}

/// A small HTML error page, complete with head, for `reply`. `extra` adds
/// headers (`Allow`, `Location`, ...).
pub fn error_response(status: Status, reply: ReplyTo, extra: &[(&str, &str)]) -> Response {
    let body = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{code} {reason}</title></head>\n<body><h1>{code} {reason}</h1><hr><p>stoke</p></body></html>\n",
        code = status.0,
        reason = status.reason()
    );
    let mut head = HeadBuilder::new(status);
    head.header("Content-Type", "text/html; charset=utf-8");
    for (name, value) in extra {
        head.header(name, value);
    }
    head.content_length(body.len() as u64);
    let mut bytes = head.finish(reply.persistence);
    if reply.body == super::response::Body::Full {
        bytes.extend_from_slice(body.as_bytes());
    }
    Response {
        status,
        chunks: vec![Chunk::Bytes(bytes)],
        close: reply.persistence.closes(),
        log: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::response::Body;

    #[test]
    fn error_pages_have_exact_lengths() {
        let r = error_response(Status::BAD_REQUEST, ReplyTo::refusal(Body::Full), &[]);
        let Chunk::Bytes(bytes) = &r.chunks[0] else {
            panic!()
        };
        let text = String::from_utf8(bytes.clone()).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        let len: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("Content-Length: "))
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(len, body.len());
        assert!(r.close);
    }

    #[test]
    fn open_errors_by_errno() {
        for (errno, want) in [
            (libc::ENOENT, OpenFailure::NotHere),
            (libc::ENOTDIR, OpenFailure::NotHere),
            (libc::ENAMETOOLONG, OpenFailure::NotHere),
            (libc::EXDEV, OpenFailure::NotHere),
            (libc::ELOOP, OpenFailure::NotHere),
            (libc::EACCES, OpenFailure::Denied),
            (libc::EPERM, OpenFailure::Denied),
            (libc::EMFILE, OpenFailure::OutOfDescriptors),
            (libc::ENFILE, OpenFailure::OutOfDescriptors),
            (libc::EIO, OpenFailure::Other),
        ] {
            let got = OpenFailure::of(&io::Error::from_raw_os_error(errno));
            assert_eq!(got, want, "errno {errno}");
        }
    }

    /// Out of descriptors: 503 with Retry-After, and the connection closes
    /// even when the request would keep it.
    #[test]
    fn out_of_descriptors_closes_and_asks_for_a_retry() {
        let kept = ReplyTo {
            persistence: crate::http::response::Persistence::KeepAlive,
            body: Body::Full,
        };
        let r = OpenFailure::OutOfDescriptors.response(kept);
        assert_eq!(r.status, Status::SERVICE_UNAVAILABLE);
        assert!(r.close);
        let head = String::from_utf8_lossy(r.chunks[0].memory().unwrap()).into_owned();
        assert!(head.contains("\r\nRetry-After: 1\r\n"), "{head}");
        assert!(head.contains("\r\nConnection: close\r\n"), "{head}");
    }
}
