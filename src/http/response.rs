//! Responses: status codes, the serialized head, and the body as a list of
//! [`Chunk`]s that the reactor writes out (bytes with `writev`, file ranges
//! with `sendfile`).
//!
//! Also the two facts about a request that shape every response
//! ([`ReplyTo`]: does the connection persist, does the body go out). Error
//! pages, and which error earns which code, live in `http::errors`.
//!
//! Runs on: workers (file responses) and the thread driving a connection
//! (its own refusals).

use std::fs::File;
use std::sync::Arc;
use std::time::SystemTime;

use super::date;
use super::request::{Method, RequestHead};
use crate::limits::{MAX_RECYCLED_CHUNKS, MAX_RECYCLED_HEAD};

/// An HTTP status code with its reason phrase.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Status(pub u16);

impl Status {
    pub const OK: Status = Status(200);
    pub const NO_CONTENT: Status = Status(204);
    pub const PARTIAL_CONTENT: Status = Status(206);
    pub const MOVED_PERMANENTLY: Status = Status(301);
    pub const PERMANENT_REDIRECT: Status = Status(308);
    pub const NOT_MODIFIED: Status = Status(304);
    pub const BAD_REQUEST: Status = Status(400);
    pub const FORBIDDEN: Status = Status(403);
    pub const NOT_FOUND: Status = Status(404);
    pub const METHOD_NOT_ALLOWED: Status = Status(405);
    pub const REQUEST_TIMEOUT: Status = Status(408);
    pub const PRECONDITION_FAILED: Status = Status(412);
    pub const CONTENT_TOO_LARGE: Status = Status(413);
    pub const URI_TOO_LONG: Status = Status(414);
    pub const RANGE_NOT_SATISFIABLE: Status = Status(416);
    pub const EXPECTATION_FAILED: Status = Status(417);
    pub const HEADER_FIELDS_TOO_LARGE: Status = Status(431);
    pub const INTERNAL_SERVER_ERROR: Status = Status(500);
    pub const NOT_IMPLEMENTED: Status = Status(501);
    pub const SERVICE_UNAVAILABLE: Status = Status(503);
    pub const VERSION_NOT_SUPPORTED: Status = Status(505);

    pub fn reason(self) -> &'static str {
        match self.0 {
            200 => "OK",
            204 => "No Content",
            206 => "Partial Content",
            301 => "Moved Permanently",
            304 => "Not Modified",
            308 => "Permanent Redirect",
            400 => "Bad Request",
            403 => "Forbidden",
            404 => "Not Found",
            405 => "Method Not Allowed",
            408 => "Request Timeout",
            412 => "Precondition Failed",
            413 => "Content Too Large",
            414 => "URI Too Long",
            416 => "Range Not Satisfiable",
            417 => "Expectation Failed",
            431 => "Request Header Fields Too Large",
            500 => "Internal Server Error",
            501 => "Not Implemented",
            503 => "Service Unavailable",
            505 => "HTTP Version Not Supported",
            _ => "Unknown",
        }
    }
}

/// A piece of a response body.
#[derive(Debug)]
pub enum Chunk {
    /// Bytes in memory: the head, small files, multipart boundaries.
    Bytes(Vec<u8>),
    /// Bytes in memory shared with other responses (a cached file, a
    /// compressed variant, a listing page):
    /// a client that does not read pins no copy of its own.
    Shared(Arc<[u8]>),
    /// `len` bytes of `file` from `offset`, sent with `sendfile`. The file is
    /// shared so that several ranges of one multipart answer can point at it.
    File {
        file: Arc<File>,
        offset: u64,
        len: u64,
    },
}

impl Chunk {
    pub fn len(&self) -> u64 {
        match self {
            Chunk::Bytes(b) => b.len() as u64,
            Chunk::Shared(b) => b.len() as u64,
            Chunk::File { len, .. } => *len,
        }
    }

    /// The bytes of an in-memory chunk; `None` for a file range.
    pub fn memory(&self) -> Option<&[u8]> {
        match self {
            Chunk::Bytes(b) => Some(b),
            Chunk::Shared(b) => Some(b),
            Chunk::File { .. } => None,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A finished response: the serialized head first, then the body chunks.
#[derive(Debug)]
pub struct Response {
    pub status: Status,
    /// Head and body, in order.
    pub chunks: Vec<Chunk>,
    /// The connection must close after this response.
    pub close: bool,
    /// The access-log line, minus the byte count, when access logging is on.
    pub log: Option<Box<AccessRecord>>,
}

/// The heap buffers of a written response, emptied with their capacity
/// kept, to build a later response in: the head's bytes and the list of
/// chunks. A cached small file's answer (`site::prepared`) is built in
/// them, so it allocates nothing (issue #10). The reactor's loop takes
/// them back from each written response (`conn::Spares`) and hands them
/// to the next request's job.
#[derive(Debug, Default)]
pub struct Recycled {
    pub head: Vec<u8>,
    pub chunks: Vec<Chunk>,
}

impl Recycled {
    /// What a written response's `chunks` leave for reuse: the head's
    /// buffer (the first chunk's bytes) and the list itself, both emptied.
    /// `None` when either grew past its bound ([`MAX_RECYCLED_HEAD`],
    /// [`MAX_RECYCLED_CHUNKS`]), or holds nothing worth keeping: one large
    /// answer must not pin its memory for good.
    pub fn from_written(mut chunks: Vec<Chunk>) -> Option<Recycled> {
        if chunks.capacity() > MAX_RECYCLED_CHUNKS {
            return None;
        }
        let head = match chunks.first_mut() {
            Some(Chunk::Bytes(head)) if head.capacity() <= MAX_RECYCLED_HEAD => {
                std::mem::take(head)
            }
            _ => return None,
        };
        let mut recycled = Recycled { head, chunks };
        recycled.clear();
        Some(recycled)
    }

    /// Empties both buffers, keeping their capacity.
    pub fn clear(&mut self) {
        self.head.clear();
        self.chunks.clear();
    }

    /// Whether there is nothing to reuse (a fresh, unallocated pair).
    pub fn is_unallocated(&self) -> bool {
        self.head.capacity() == 0 && self.chunks.capacity() == 0
    }
}

/// An access-log line waiting for its byte count: built by
/// `access_log::record` with the response, written by `access_log::write`
/// after its last byte. Defined here, not in `access_log`, so that `http`
/// depends on nothing outside it (`access_log` uses `http`, not the
/// reverse).
#[derive(Debug)]
pub struct AccessRecord {
    /// `host - - [time] "request line" status `
    pub prefix: String,
    /// ` "referer" "user-agent"`
    pub suffix: String,
}

/// What a response head says about the connection after it: the
/// keep-alive decision (see `conn`'s `After`) as the head spells it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Persistence {
    /// `Connection: close`: the connection ends after this response.
    Close,
    /// Kept open; HTTP/1.1's default, so the head says nothing.
    KeepAlive,
    /// Kept open for an HTTP/1.0 client, which needs it spelled out:
    /// `Connection: keep-alive`.
    KeepAliveHttp10,
}

impl Persistence {
    /// What `head` asks for. By the time a worker sees a head, the
    /// connection has already folded its own decision into
    /// `head.keep_alive` (see `conn`'s `dispatch`), so this is the answer.
    pub fn for_request(head: &RequestHead) -> Persistence {
        match (head.keep_alive, head.minor_version) {
            (false, _) => Persistence::Close,
            (true, 0) => Persistence::KeepAliveHttp10,
            (true, _) => Persistence::KeepAlive,
        }
    }

    /// The connection ends after the response.
    pub fn closes(self) -> bool {
        self == Persistence::Close
    }

    /// The end of a head: the `Connection` line this decision needs, if
    /// any, and the empty line.
    pub fn head_end(self) -> &'static [u8] {
        match self {
            Persistence::Close => b"Connection: close\r\n\r\n",
            Persistence::KeepAlive => b"\r\n",
            Persistence::KeepAliveHttp10 => b"Connection: keep-alive\r\n\r\n",
        }
    }
}

/// Whether a response carries its body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Body {
    Full,
    /// An answer to HEAD: the head of the answer GET would get, with its
    /// `Content-Length`, and no body (RFC 9110 §9.3.2), even for an error.
    HeadOnly,
}

impl Body {
    pub fn for_method(method: Method) -> Body {
        if method == Method::Head {
            Body::HeadOnly
        } else {
            Body::Full
        }
    }
}

/// Whom a response answers: the two facts about the request that shape
/// every response, taken from a [`RequestHead`] in one place
/// ([`ReplyTo::request`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReplyTo {
    pub persistence: Persistence,
    pub body: Body,
}

impl ReplyTo {
    pub fn request(head: &RequestHead) -> ReplyTo {
        ReplyTo {
            persistence: Persistence::for_request(head),
            body: Body::for_method(head.method),
        }
    }

    /// The same answer, but the connection closes after it.
    pub fn closing(self) -> ReplyTo {
        ReplyTo {
            persistence: Persistence::Close,
            ..self
        }
    }

    /// The connection's own refusals (a bad head, a timeout): the request
    /// is not trusted, so it closes; `body` still follows the method when it
    /// could be read.
    pub fn refusal(body: Body) -> ReplyTo {
        ReplyTo {
            persistence: Persistence::Close,
            body,
        }
    }
}

/// Builds a response head line by line.
pub struct HeadBuilder {
    buf: Vec<u8>,
}

impl HeadBuilder {
    pub fn new(status: Status) -> HeadBuilder {
        let mut buf = Vec::with_capacity(256);
        start_head(&mut buf, status);
        HeadBuilder { buf }
    }

    pub fn header(&mut self, name: &str, value: &str) -> &mut HeadBuilder {
        push_header(&mut self.buf, name, value);
        self
    }

    /// Header lines already written by [`push_header`].
    pub fn lines(&mut self, lines: &[u8]) -> &mut HeadBuilder {
        self.buf.extend_from_slice(lines);
        self
    }

    pub fn content_length(&mut self, len: u64) -> &mut HeadBuilder {
        let mut digits = [0; MAX_DECIMAL_LEN];
        self.header("Content-Length", decimal(len, &mut digits))
    }

    /// Ends the head with what `persistence` says about the connection.
    pub fn finish(mut self, persistence: Persistence) -> Vec<u8> {
        self.buf.extend_from_slice(persistence.head_end());
        self.buf
    }
}

/// One header line, `name: value` and CRLF.
pub fn push_header(buf: &mut Vec<u8>, name: &str, value: &str) {
    buf.extend_from_slice(name.as_bytes());
    buf.extend_from_slice(b": ");
    buf.extend_from_slice(value.as_bytes());
    buf.extend_from_slice(b"\r\n");
}

/// The first lines of every head: status line, `Server` and `Date`.
/// [`HeadBuilder::new`] starts with them, and so does a cached file's
/// prepared answer (`site::prepared`), so both write the same bytes.
pub fn start_head(buf: &mut Vec<u8>, status: Status) {
    start_head_at(buf, status, date::unix_seconds(SystemTime::now()));
}

/// [`start_head`] with the `Date` of `now`, in UNIX seconds.
pub fn start_head_at(buf: &mut Vec<u8>, status: Status, now: i64) {
    // The cached file's answers, 200 and 304, in one piece each.
    const OK: &[u8] = b"HTTP/1.1 200 OK\r\nServer: stoke\r\nDate: ";
    const NOT_MODIFIED: &[u8] = b"HTTP/1.1 304 Not Modified\r\nServer: stoke\r\nDate: ";
    match status {
        Status::OK => buf.extend_from_slice(OK),
        Status::NOT_MODIFIED => buf.extend_from_slice(NOT_MODIFIED),
        _ => {
            buf.extend_from_slice(b"HTTP/1.1 ");
            let code = status.0.min(999);
            buf.extend_from_slice(&[
                b'0' + (code / 100) as u8,
                b'0' + (code / 10 % 10) as u8,
                b'0' + (code % 10) as u8,
                b' ',
            ]);
            buf.extend_from_slice(status.reason().as_bytes());
            buf.extend_from_slice(b"\r\nServer: stoke\r\nDate: ");
        }
    }
    buf.extend_from_slice(&date::imf_fixdate_of_seconds_cached(now));
    buf.extend_from_slice(b"\r\n");
}

/// Digits of the largest `u64`.
pub const MAX_DECIMAL_LEN: usize = 20;

/// `n` in decimal, written into `buf` without `fmt` or allocation.
pub fn decimal(mut n: u64, buf: &mut [u8; MAX_DECIMAL_LEN]) -> &str {
    let mut at = buf.len();
    loop {
        at -= 1;
        buf[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    // Only ASCII digits were written.
    std::str::from_utf8(&buf[at..]).unwrap_or("0")
}

/// Makes a head finished by [`HeadBuilder::finish`] for a kept connection
/// say `Connection: close` instead: the connection decided to close after a
/// worker built the head (shutdown began meanwhile). `bytes` is the head,
/// possibly followed by body bytes; a head already saying close is left as
/// it is.
pub fn rewrite_head_to_close(bytes: &mut Vec<u8>) {
    // A head has no empty line before its end, so the first one ends it.
    let Some(end) = bytes.windows(4).position(|w| w == b"\r\n\r\n") else {
        return;
    };
    let head = &bytes[..end + 2];
    if head.ends_with(b"\r\nConnection: close\r\n") {
        return;
    }
    const KEEP_ALIVE: &[u8] = b"Connection: keep-alive\r\n";
    if head.ends_with(KEEP_ALIVE) {
        let at = end + 2 - KEEP_ALIVE.len();
        bytes.splice(at..end + 2, b"Connection: close\r\n".iter().copied());
    } else {
        bytes.splice(end + 2..end + 2, b"Connection: close\r\n".iter().copied());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A written response's buffers are kept for the next one only while
    /// small: a head that carried a body, or a long list of chunks, is let
    /// go rather than pinned in the spares.
    #[test]
    fn only_small_response_buffers_are_recycled() {
        let small = vec![Chunk::Bytes(b"HTTP/1.1 200 OK\r\n\r\n".to_vec())];
        let kept = Recycled::from_written(small).expect("kept");
        assert!(kept.head.is_empty() && kept.chunks.is_empty());
        assert!(kept.head.capacity() > 0 && kept.chunks.capacity() > 0);

        let big_head = vec![Chunk::Bytes(vec![b'x'; MAX_RECYCLED_HEAD + 1])];
        assert!(Recycled::from_written(big_head).is_none());
        let mut many = Vec::with_capacity(MAX_RECYCLED_CHUNKS + 1);
        many.push(Chunk::Bytes(Vec::with_capacity(64)));
        assert!(Recycled::from_written(many).is_none());
        let no_head = vec![Chunk::Shared(Arc::from(&b"x"[..]))];
        assert!(Recycled::from_written(no_head).is_none());
    }

    #[test]
    fn head_shape() {
        let mut b = HeadBuilder::new(Status::NOT_FOUND);
        b.content_length(3);
        let head = String::from_utf8(b.finish(Persistence::Close)).unwrap();
        assert!(head.starts_with("HTTP/1.1 404 Not Found\r\nServer: stoke\r\nDate: "));
        assert!(head.ends_with("Content-Length: 3\r\nConnection: close\r\n\r\n"));
    }

    #[test]
    fn decimal_matches_display() {
        let mut buf = [0; MAX_DECIMAL_LEN];
        for n in (0..2_000u64).chain([9_999, 10_000, u64::from(u32::MAX), u64::MAX - 1, u64::MAX]) {
            assert_eq!(decimal(n, &mut buf), n.to_string());
        }
        let mut n = 1u64;
        while let Some(next) = n.checked_mul(7) {
            assert_eq!(decimal(n, &mut buf), n.to_string());
            assert_eq!(decimal(n - 1, &mut buf), (n - 1).to_string());
            n = next;
        }
    }

    /// The one-piece prefixes of 200 and 304 are what the general case
    /// writes.
    #[test]
    fn fast_status_lines_match_the_general_ones() {
        for status in [Status::OK, Status::NOT_MODIFIED] {
            let mut fast = Vec::new();
            start_head_at(&mut fast, status, 1_000_000_000);
            let general = format!(
                "HTTP/1.1 {} {}\r\nServer: stoke\r\nDate: Sun, 09 Sep 2001 01:46:40 GMT\r\n",
                status.0,
                status.reason()
            );
            assert_eq!(String::from_utf8(fast).unwrap(), general);
        }
    }

    #[test]
    fn status_lines() {
        for (status, line) in [
            (Status::OK, "HTTP/1.1 200 OK\r\n"),
            (Status::NOT_MODIFIED, "HTTP/1.1 304 Not Modified\r\n"),
            (Status(99), "HTTP/1.1 099 Unknown\r\n"),
        ] {
            let head = HeadBuilder::new(status).finish(Persistence::KeepAlive);
            assert!(head.starts_with(line.as_bytes()), "{line}");
        }
    }

    #[test]
    fn a_kept_head_is_rewritten_to_close() {
        for kept in [Persistence::KeepAlive, Persistence::KeepAliveHttp10] {
            let mut b = HeadBuilder::new(Status::OK);
            b.content_length(4);
            let mut bytes = b.finish(kept);
            bytes.extend_from_slice(b"body");
            rewrite_head_to_close(&mut bytes);
            let text = String::from_utf8(bytes.clone()).unwrap();
            assert!(
                text.ends_with("Content-Length: 4\r\nConnection: close\r\n\r\nbody"),
                "{text:?}"
            );
            rewrite_head_to_close(&mut bytes);
            assert_eq!(String::from_utf8(bytes).unwrap(), text, "idempotent");
        }
    }
}
