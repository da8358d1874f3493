//! Request-head parsing: the bytes a client sent → a [`RequestHead`], or a
//! typed [`ParseError`] saying precisely what was wrong.
//!
//! Sans-IO: it only looks at a byte slice, so the reactor, the fuzzers and
//! the unit tests all call the same function. `httparse` does the grammar;
//! this module adds the rules of RFC 9112 that keep framing unambiguous
//! (exactly one `Host`, no `Content-Length` beside `Transfer-Encoding`, ...)
//! and copies the target and the few header fields stoke acts on into one
//! buffer owned by the head (reused across requests, see [`SpareHeads`]).
//!
//! Runs on: the reactor thread, once per request head.

use std::str;

use std::mem::{self, MaybeUninit};

use crate::limits::{MAX_HEADERS, MAX_SPARE_HEADS, MAX_SPARE_HEAD_TEXT};

/// Request methods stoke knows. Unknown tokens are [`ParseError::UnknownMethod`] (501).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    Get,
    Head,
    Options,
    Post,
    Put,
    Delete,
    Patch,
    Trace,
    Connect,
}

impl Method {
    fn from_token(token: &str) -> Option<Method> {
        // Methods are case-sensitive (RFC 9110 §9.1): "get" is not GET.
        Some(match token {
            "GET" => Method::Get,
            "HEAD" => Method::Head,
            "OPTIONS" => Method::Options,
            "POST" => Method::Post,
            "PUT" => Method::Put,
            "DELETE" => Method::Delete,
            "PATCH" => Method::Patch,
            "TRACE" => Method::Trace,
            "CONNECT" => Method::Connect,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Head => "HEAD",
            Method::Options => "OPTIONS",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Delete => "DELETE",
            Method::Patch => "PATCH",
            Method::Trace => "TRACE",
            Method::Connect => "CONNECT",
        }
    }
}

/// How the request's body, if any, is delimited (RFC 9112 §6.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyFraming {
    None,
    Length(u64),
    Chunked,
}

/// The header fields stoke acts on; [`RequestHead`] keeps these and no
/// others (the last two only when asked, see [`Keep`]). Repeated list
/// fields are joined with ", " as RFC 9110 §5.3 allows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Field {
    Host,
    Range,
    IfMatch,
    IfNoneMatch,
    IfModifiedSince,
    IfUnmodifiedSince,
    IfRange,
    Accept,
    AcceptEncoding,
    Referer,
    UserAgent,
}

/// How many [`Field`]s there are (the length of `RequestHead::fields`).
const FIELD_COUNT: usize = 11;

/// Where a piece of a head sits in `RequestHead::text` (byte offsets; a head
/// is at most `MAX_MAX_HEAD` bytes, far below `u32::MAX`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Span {
    start: u32,
    end: u32,
}

/// One parsed request head: everything the worker needs to answer it.
///
/// The target and the kept field values are copied into one owned buffer,
/// `text`, and read through accessors: one allocation per head at most,
/// and none when the head is reused (see [`SpareHeads`]), rather than one
/// `String` per field. Its fields are owned, not borrowed from the read
/// buffer, so the head can travel to a worker thread.
#[derive(Clone, PartialEq, Eq)]
pub struct RequestHead {
    pub method: Method,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub minor_version: u8,
    /// Whether the client lets us keep the connection open afterwards. The
    /// connection overwrites it with its own decision before a worker sees
    /// the head (see `conn`'s `After`), so a worker reads the final word.
    pub keep_alive: bool,
    /// `Expect: 100-continue` was sent.
    pub expect_continue: bool,
    pub body: BodyFraming,
    /// The target, then the kept field values (and a synthesized path).
    text: String,
    target: Span,
    path: Span,
    query: Option<Span>,
    fields: [Option<Span>; FIELD_COUNT],
}

impl RequestHead {
    fn empty() -> RequestHead {
        RequestHead {
            method: Method::Get,
            minor_version: 1,
            keep_alive: false,
            expect_continue: false,
            body: BodyFraming::None,
            text: String::new(),
            target: Span::default(),
            path: Span::default(),
            query: None,
            fields: [None; FIELD_COUNT],
        }
    }

    fn span(&self, span: Span) -> &str {
        self.text
            .get(span.start as usize..span.end as usize)
            .unwrap_or_default()
    }

    /// The request target exactly as sent (for the access log).
    pub fn target(&self) -> &str {
        self.span(self.target)
    }

    /// The path of the target, still percent-encoded, always starting with
    /// `/`; the query is split off and the authority of an absolute-form
    /// target removed. `*` for `OPTIONS *`.
    pub fn path(&self) -> &str {
        self.span(self.path)
    }

    /// The query string without its `?`, if any (kept for redirects).
    pub fn query(&self) -> Option<&str> {
        self.query.map(|q| self.span(q))
    }

    /// The value of a kept field (trimmed; repeated ones joined), if sent.
    pub fn field(&self, field: Field) -> Option<&str> {
        self.fields[field as usize].map(|f| self.span(f))
    }

    pub fn host(&self) -> Option<&str> {
        self.field(Field::Host)
    }

    pub fn range(&self) -> Option<&str> {
        self.field(Field::Range)
    }

    pub fn if_match(&self) -> Option<&str> {
        self.field(Field::IfMatch)
    }

    pub fn if_none_match(&self) -> Option<&str> {
        self.field(Field::IfNoneMatch)
    }

    pub fn if_modified_since(&self) -> Option<&str> {
        self.field(Field::IfModifiedSince)
    }

    pub fn if_unmodified_since(&self) -> Option<&str> {
        self.field(Field::IfUnmodifiedSince)
    }

    pub fn if_range(&self) -> Option<&str> {
        self.field(Field::IfRange)
    }

    pub fn accept(&self) -> Option<&str> {
        self.field(Field::Accept)
    }

    pub fn accept_encoding(&self) -> Option<&str> {
        self.field(Field::AcceptEncoding)
    }

    pub fn referer(&self) -> Option<&str> {
        self.field(Field::Referer)
    }

    pub fn user_agent(&self) -> Option<&str> {
        self.field(Field::UserAgent)
    }

    /// `GET /path HTTP/1.1`, as the access log shows it.
    pub fn request_line(&self) -> String {
        format!(
            "{} {} HTTP/1.{}",
            self.method.as_str(),
            self.target(),
            self.minor_version
        )
    }
}

/// Appends `piece` to `text` and says where it went.
fn push(text: &mut String, piece: &str) -> Span {
    let start = text.len() as u32;
    text.push_str(piece);
    Span {
        start,
        end: text.len() as u32,
    }
}

/// A field value as text if it may go into the head: UTF-8 (the standard
/// check runs a word at a time over ASCII, so `http` stays free of `unsafe`
/// and of `sys`). Values that are not (obs-text) are dropped rather than
/// refused: they can only be ones we would ignore anyway.
fn as_text(value: &[u8]) -> Option<&str> {
    str::from_utf8(value).ok()
}

impl std::fmt::Debug for RequestHead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut d = f.debug_struct("RequestHead");
        d.field("method", &self.method)
            .field("target", &self.target())
            .field("path", &self.path())
            .field("query", &self.query())
            .field("minor_version", &self.minor_version)
            .field("keep_alive", &self.keep_alive)
            .field("expect_continue", &self.expect_continue)
            .field("body", &self.body);
        for field in Field::ALL {
            if let Some(value) = self.field(field) {
                d.field(field.name(), &value);
            }
        }
        d.finish()
    }
}

impl Field {
    const ALL: [Field; FIELD_COUNT] = [
        Field::Host,
        Field::Range,
        Field::IfMatch,
        Field::IfNoneMatch,
        Field::IfModifiedSince,
        Field::IfUnmodifiedSince,
        Field::IfRange,
        Field::Accept,
        Field::AcceptEncoding,
        Field::Referer,
        Field::UserAgent,
    ];

    /// The field's name, lower-case.
    pub fn name(self) -> &'static str {
        match self {
            Field::Host => "host",
            Field::Range => "range",
            Field::IfMatch => "if-match",
            Field::IfNoneMatch => "if-none-match",
            Field::IfModifiedSince => "if-modified-since",
            Field::IfUnmodifiedSince => "if-unmodified-since",
            Field::IfRange => "if-range",
            Field::Accept => "accept",
            Field::AcceptEncoding => "accept-encoding",
            Field::Referer => "referer",
            Field::UserAgent => "user-agent",
        }
    }
}

/// Heads whose requests have been answered, kept to be filled by the next
/// [`parse_with`] so that a steady stream of requests allocates no head.
/// Bounded in number and in the size of each kept head (see
/// [`MAX_SPARE_HEADS`] and [`MAX_SPARE_HEAD_TEXT`]).
#[derive(Debug, Default)]
// The boxes are what is kept: each leaves again as a parsed head.
#[allow(clippy::vec_box)]
pub struct SpareHeads(Vec<Box<RequestHead>>);

impl SpareHeads {
    /// Keeps `head` for reuse, unless enough are kept already or it grew
    /// large (one long head must not pin its memory for good).
    pub fn put(&mut self, head: Box<RequestHead>) {
        if self.0.len() < MAX_SPARE_HEADS && head.text.capacity() <= MAX_SPARE_HEAD_TEXT {
            self.0.push(head);
        }
    }

    /// How many are kept (tests).
    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn take(&mut self) -> Box<RequestHead> {
        self.0
            .pop()
            .unwrap_or_else(|| Box::new(RequestHead::empty()))
    }
}

/// Why a head was refused. Each variant maps to exactly one status code in
/// [`crate::http::errors::for_parse_error`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParseError {
    /// The request line or a header field breaks the grammar (includes
    /// obs-fold, whitespace before a colon, bare CR, control bytes).
    Malformed,
    /// The request line alone is longer than the head limit.
    TargetTooLong,
    /// The head is longer than the limit or has too many fields.
    HeadTooLarge,
    /// Not HTTP/1.0 or HTTP/1.1.
    UnsupportedVersion,
    /// A method token we don't know.
    UnknownMethod,
    /// HTTP/1.1 without a `Host`, more than one, or one that is not a
    /// `uri-host[:port]`.
    BadHost,
    /// Neither origin-form nor absolute-form (asterisk-form only with OPTIONS,
    /// authority-form only with CONNECT), or an absolute-form whose
    /// authority is not a non-empty `uri-host[:port]`.
    BadTarget,
    /// Invalid or conflicting `Content-Length` values.
    BadContentLength,
    /// `Content-Length` together with `Transfer-Encoding`, `chunked` not the
    /// final coding, or `Transfer-Encoding` in an HTTP/1.0 request.
    AmbiguousFraming,
    /// A transfer coding other than `chunked` (before the final `chunked`).
    UnknownTransferCoding,
    /// An `Expect` member other than `100-continue` (RFC 9110 §10.1.1):
    /// an expectation we cannot meet, refused rather than ignored.
    UnknownExpectation,
}

/// The outcome of looking at a buffer that may hold a request head.
#[derive(Debug, PartialEq, Eq)]
pub enum Parsed {
    /// Not a whole head yet: read more (unless the buffer is already at the limit).
    Partial,
    /// A head of `len` bytes; the body (if any) and pipelined requests follow.
    Complete { head: Box<RequestHead>, len: usize },
}

/// Parses the head at the start of `buf`. `max_head` bounds it: a partial
/// head that already fills `max_head` bytes is an error, not `Partial`, so a
/// client can't make us buffer without end.
pub fn parse(buf: &[u8], max_head: usize) -> Result<Parsed, ParseError> {
    parse_with(buf, max_head, &mut SpareHeads::default(), Keep::All)
}

/// Which of the [`Field`]s a parsed head keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Keep {
    All,
    /// All but `Referer` and `User-Agent`, which only the access log
    /// shows: with the log off, copying them into the head (and checking
    /// that they are text) would be work for nothing on every request,
    /// and a browser's `User-Agent` alone is a hundred bytes or more.
    ForAnswer,
}

impl Field {
    /// Kept only for the access log (see [`Keep::ForAnswer`]).
    fn only_for_log(self) -> bool {
        matches!(self, Field::Referer | Field::UserAgent)
    }
}

/// What a header field's name means to us.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Name {
    ContentLength,
    TransferEncoding,
    Connection,
    Expect,
    Kept(Field),
    Other,
}

impl Name {
    /// Compares the length first: most names are then ruled out without
    /// looking at their bytes; then eight bytes at a time.
    fn of(name: &str) -> Name {
        let is = |want: &str| eq_lowercase(name.as_bytes(), want.as_bytes());
        match name.len() {
            4 if is("host") => Name::Kept(Field::Host),
            5 if is("range") => Name::Kept(Field::Range),
            6 if is("accept") => Name::Kept(Field::Accept),
            6 if is("expect") => Name::Expect,
            7 if is("referer") => Name::Kept(Field::Referer),
            8 if is("if-match") => Name::Kept(Field::IfMatch),
            8 if is("if-range") => Name::Kept(Field::IfRange),
            10 if is("user-agent") => Name::Kept(Field::UserAgent),
            10 if is("connection") => Name::Connection,
            13 if is("if-none-match") => Name::Kept(Field::IfNoneMatch),
            14 if is("content-length") => Name::ContentLength,
            15 if is("accept-encoding") => Name::Kept(Field::AcceptEncoding),
            17 if is("if-modified-since") => Name::Kept(Field::IfModifiedSince),
            17 if is("transfer-encoding") => Name::TransferEncoding,
            19 if is("if-unmodified-since") => Name::Kept(Field::IfUnmodifiedSince),
            _ => Name::Other,
        }
    }
}

/// Whether `name` is `want` in any ASCII case, for a `want` of at least 4
/// bytes that are lowercase letters, digits or `-` (the field names we
/// know): a word at a time, cheaper than a byte-wise `eq_ignore_ascii_case`
/// on the three or so fields of every request.
///
/// A byte of `name` matches a letter of `want` when, with the case bit
/// (0x20) set, it equals that letter; only there is the bit set, found as
/// bit 0x40 of `want` (set in a lowercase letter, clear in a digit or `-`),
/// so elsewhere the bytes must be equal: a CR (0x0D) is not taken for a
/// `-` (0x2D).
fn eq_lowercase(name: &[u8], want: &[u8]) -> bool {
    let n = want.len();
    if name.len() != n || n < 4 {
        return name.eq_ignore_ascii_case(want);
    }
    if n < 8 {
        // Two words that overlap when n < 8.
        let at = |s: &[u8], i: usize| u32::from_le_bytes([s[i], s[i + 1], s[i + 2], s[i + 3]]);
        let same = |i: usize| {
            let w = at(want, i);
            at(name, i) | ((w & 0x4040_4040) >> 1) == w
        };
        return same(0) && same(n - 4);
    }
    let at = |s: &[u8], i: usize| {
        let mut w = [0; 8];
        w.copy_from_slice(&s[i..i + 8]);
        u64::from_le_bytes(w)
    };
    let same = |i: usize| {
        let w = at(want, i);
        at(name, i) | ((w & 0x4040_4040_4040_4040) >> 1) == w
    };
    let mut i = 0;
    while i + 8 < n {
        if !same(i) {
            return false;
        }
        i += 8;
    }
    same(n - 8)
}

/// Where the kept occurrences of one field are among the head's fields.
#[derive(Clone, Copy, Default)]
struct Seen {
    /// Index of the first occurrence.
    first: u8,
    count: u8,
}

/// [`parse`], filling a head from `spares` instead of allocating one when
/// there is one (only a complete head takes one), and keeping the fields
/// `keep` says.
pub fn parse_with(
    buf: &[u8],
    max_head: usize,
    spares: &mut SpareHeads,
    keep: Keep,
) -> Result<Parsed, ParseError> {
    // Browsers may send a stray CRLF after a POST body; RFC 9112 §2.2 lets a
    // server skip empty lines before the request line.
    let skip = leading_empty_lines(buf);
    let buf = &buf[skip..];

    // Left uninitialised: httparse writes the entries it fills in, and
    // zeroing all of them cost more than parsing a small head.
    let mut headers = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut []);
    let status = match req.parse_with_uninit_headers(buf, &mut headers) {
        Ok(status) => status,
        Err(httparse::Error::TooManyHeaders) => return Err(ParseError::HeadTooLarge),
        Err(httparse::Error::Version) => match version_error(buf) {
            Some(e) => return Err(e),
            None if buf.len() + skip >= max_head => return Err(too_large(buf, max_head)),
            None => return Ok(Parsed::Partial),
        },
        Err(_) => return Err(ParseError::Malformed),
    };
    let len = match status {
        httparse::Status::Partial => {
            if buf.len() + skip >= max_head {
                return Err(too_large(buf, max_head));
            }
            return Ok(Parsed::Partial);
        }
        httparse::Status::Complete(len) if len + skip > max_head => {
            return Err(too_large(buf, max_head))
        }
        httparse::Status::Complete(len) => len,
    };

    // httparse fills these in for every complete head.
    let (Some(method), Some(target), Some(minor_version)) = (req.method, req.path, req.version)
    else {
        return Err(ParseError::Malformed);
    };
    let method = Method::from_token(method).ok_or(ParseError::UnknownMethod)?;
    let (path, query) = split_target(method, target)?;

    // First pass: check every field, note where the kept ones are; nothing
    // is copied until the head is known to be good.
    let mut seen = [Seen::default(); FIELD_COUNT];
    // The kept fields present, in order of first appearance.
    let mut present = [Field::Host; FIELD_COUNT];
    let mut present_count = 0;
    // An upper bound of what the kept values take in the head's text.
    let mut kept_bytes = 0;
    let mut content_length: Option<u64> = None;
    let mut transfer_codings: Option<TransferCodings> = None;
    let mut connection_close = false;
    let mut connection_keep_alive = false;
    let mut expect_continue = false;
    for (i, h) in req.headers.iter().enumerate() {
        match Name::of(h.name) {
            Name::Kept(field) if keep == Keep::ForAnswer && field.only_for_log() => {}
            Name::Kept(field) => {
                // A valid host is ASCII, so UTF-8 like every kept value.
                if field == Field::Host && !valid_host(trim_ows(h.value)) {
                    return Err(ParseError::BadHost);
                }
                let s = &mut seen[field as usize];
                if s.count == 0 {
                    // MAX_HEADERS (64) fits in a u8.
                    s.first = i as u8;
                    present[present_count] = field;
                    present_count += 1;
                }
                s.count += 1;
                // The value, and a ", " if it is joined to another.
                kept_bytes += h.value.len() + 2;
            }
            Name::ContentLength => {
                let n = parse_content_length(h.value)?;
                if content_length.is_some_and(|prev| prev != n) {
                    return Err(ParseError::BadContentLength);
                }
                content_length = Some(n);
            }
            Name::TransferEncoding => {
                let v = str::from_utf8(h.value).map_err(|_| ParseError::Malformed)?;
                transfer_codings.get_or_insert_default().add(v);
            }
            Name::Connection => {
                let value = str::from_utf8(h.value).unwrap_or("");
                for token in value.split(',').map(str::trim) {
                    connection_close |= token.eq_ignore_ascii_case("close");
                    connection_keep_alive |= token.eq_ignore_ascii_case("keep-alive");
                }
            }
            Name::Expect => match expectation(h.value) {
                Expectation::Nothing => {}
                // An HTTP/1.0 client does not wait for "100 Continue", and RFC
                // 9110 §10.1.1 says to ignore the expectation from one.
                Expectation::Continue => expect_continue |= minor_version == 1,
                // Refused from HTTP/1.0 too: only 100-continue is to be
                // ignored there, and a client that asks for something else
                // learns it was not met instead of assuming it was.
                Expectation::Unknown => return Err(ParseError::UnknownExpectation),
            },
            Name::Other => {}
        }
    }

    let host_count = seen[Field::Host as usize].count;
    if minor_version == 1 && host_count != 1 {
        return Err(ParseError::BadHost);
    }
    if host_count > 1 {
        return Err(ParseError::BadHost);
    }
    let body = match (transfer_codings, content_length) {
        (Some(_), Some(_)) => return Err(ParseError::AmbiguousFraming),
        (Some(_), None) if minor_version == 0 => return Err(ParseError::AmbiguousFraming),
        (Some(te), None) => te.framing()?,
        (None, Some(0)) | (None, None) => BodyFraming::None,
        (None, Some(n)) => BodyFraming::Length(n),
    };
    let keep_alive = match minor_version {
        1 => !connection_close,
        _ => connection_keep_alive && !connection_close,
    };

    // Second pass: copy the target and the kept values into the head.
    let mut head = spares.take();
    // Built from pieces that are each text already (the target from
    // httparse, the values through `as_text`): no check of the whole.
    let mut text = mem::take(&mut head.text);
    text.clear();
    // Room for the target, a synthesized path ("/" or "*") and the kept
    // values: at most one allocation, none for a reused head of a similar
    // request. Only what is kept counts, so a head with large cookies
    // still leaves a small buffer that is worth reusing.
    text.reserve(target.len() + 1 + kept_bytes);
    head.method = method;
    head.minor_version = minor_version;
    head.keep_alive = keep_alive;
    head.expect_continue = expect_continue;
    head.body = body;
    head.target = push(&mut text, target);
    let base = head.target.start;
    let within_target = |piece: Piece| match piece {
        Piece::Within(from, to) => Span {
            start: base + from as u32,
            end: base + to as u32,
        },
        Piece::Is(_) => Span::default(),
    };
    let query = query.map(within_target);
    head.path = match path {
        Piece::Is(fixed) => push(&mut text, fixed),
        within => within_target(within),
    };
    head.query = query;
    head.fields = [None; FIELD_COUNT];
    for &field in &present[..present_count] {
        let s = seen[field as usize];
        head.fields[field as usize] = copy_field(&mut text, req.headers, field, s);
    }
    head.text = text;
    Ok(Parsed::Complete {
        head,
        len: skip + len,
    })
}

/// Copies the `s.count` values of `field` into `text`, joined with ", ",
/// leaving out those that are not UTF-8 (see [`as_text`]).
fn copy_field(
    text: &mut String,
    fields: &[httparse::Header<'_>],
    field: Field,
    s: Seen,
) -> Option<Span> {
    let first = trim_ows(fields[s.first as usize].value);
    if s.count == 1 {
        return as_text(first).map(|first| push(text, first));
    }
    let start = text.len() as u32;
    let mut joined = false;
    for h in &fields[s.first as usize..] {
        let value = trim_ows(h.value);
        if Name::of(h.name) != Name::Kept(field) {
            continue;
        }
        let Some(value) = as_text(value) else {
            continue;
        };
        if joined {
            text.push_str(", ");
        }
        text.push_str(value);
        joined = true;
    }
    joined.then_some(Span {
        start,
        end: text.len() as u32,
    })
}

/// `value` without the optional whitespace (spaces, tabs) around it.
/// What one `Expect` field value asks of us (RFC 9110 §10.1.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Expectation {
    /// An empty value or list (`Expect:`, `Expect: ,`): nothing is asked,
    /// and RFC 9110 §5.6.1 has empty list elements ignored.
    Nothing,
    /// Only `100-continue` (in any case, any number of times).
    Continue,
    /// Any other member (`foo`, `100-continue, foo`, `100-continue=x`, bytes
    /// that are not text): an expectation we cannot meet → 417.
    Unknown,
}

/// Reads an `Expect` value member by member. A quoted string holding a
/// comma is split in pieces, but a member with a quote is unknown anyway.
fn expectation(value: &[u8]) -> Expectation {
    let mut seen = Expectation::Nothing;
    for member in value.split(|&b| b == b',').map(trim_ows) {
        if member.is_empty() {
            continue;
        }
        if !member.eq_ignore_ascii_case(b"100-continue") {
            return Expectation::Unknown;
        }
        seen = Expectation::Continue;
    }
    seen
}

fn trim_ows(value: &[u8]) -> &[u8] {
    let ows = |b: &u8| *b == b' ' || *b == b'\t';
    let start = value.iter().position(|b| !ows(b)).unwrap_or(value.len());
    let end = value.iter().rposition(|b| !ows(b)).map_or(start, |i| i + 1);
    &value[start..end]
}

/// Whether buffered bytes that did not make a valid head (refused, or not
/// complete in time) still begin with the method `HEAD`: the error answer
/// must then carry no body (RFC 9110 §9.3.2), as for a parsed HEAD.
pub fn starts_with_head_method(buf: &[u8]) -> bool {
    buf.get(leading_empty_lines(buf)..)
        .is_some_and(|line| line.starts_with(b"HEAD "))
}

/// Decides when a growing buffer is worth handing to [`parse`], so that a
/// head arriving in many small reads is parsed a few times rather than once
/// per read (a 6.5 KB head sent a byte at a time cost ~6,500 parses, ~0.1 s
/// of CPU, when every read re-parsed the head from its start).
///
/// It resumes where it stopped, so each byte is looked at once, and asks
/// for a parse at most three times per head: on the first look (garbage
/// such as a TLS handshake gets its 400 at once), when the request line has
/// ended (a malformed request line or an unsupported version is answered
/// before the fields arrive), and when the head has ended: at a line feed followed by an
/// empty line (`\n\n` or `\n\r\n`; the latter covers `\r\n\r\n`, the
/// former the bare-LF line ends httparse accepts). The caller also parses
/// once the buffer reaches the head limit, where [`parse`] gives its final
/// verdict.
///
/// The scanner describes one buffer that only grows between calls; start a
/// new one (`HeadScanner::default()`) for each head.
#[derive(Clone, Copy, Debug, Default)]
pub struct HeadScanner {
    /// Bytes of the buffer already looked at.
    /// (`u32` keeps the scanner, which every connection holds, small; a
    /// buffer never nears 4 GiB.)
    checked: u32,
    phase: ScanPhase,
}

/// Where the scanner is in the head.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum ScanPhase {
    /// Nothing looked at yet.
    #[default]
    Fresh,
    /// Skipping empty lines before the request line, as [`parse`] does.
    Leading,
    /// ... and a CR was just seen there.
    LeadingCr,
    RequestLine,
    /// In the field lines, right after a LF.
    AfterLf,
    /// ... after a LF and a CR.
    AfterLfCr,
    /// Elsewhere in a field line.
    InLine,
    /// The end of the head was found: nothing more to look for.
    Ended,
}

impl HeadScanner {
    /// Looks at the bytes of `buf` not seen yet; true when `buf` is now
    /// worth parsing.
    pub fn scan(&mut self, buf: &[u8]) -> bool {
        if buf.len() <= self.checked as usize {
            return false;
        }
        let mut worth = false;
        if self.phase == ScanPhase::Fresh {
            self.phase = ScanPhase::Leading;
            worth = true;
        }
        let mut i = self.checked as usize;
        while i < buf.len() {
            let b = buf[i];
            match self.phase {
                ScanPhase::Leading => match b {
                    b'\n' => i += 1,
                    b'\r' => {
                        self.phase = ScanPhase::LeadingCr;
                        i += 1;
                    }
                    _ => self.phase = ScanPhase::RequestLine,
                },
                ScanPhase::LeadingCr if b == b'\n' => {
                    self.phase = ScanPhase::Leading;
                    i += 1;
                }
                // A CR that is not part of a CRLF starts the (malformed)
                // request line; `b` is looked at again as part of it.
                ScanPhase::LeadingCr => self.phase = ScanPhase::RequestLine,
                ScanPhase::RequestLine | ScanPhase::InLine => {
                    match buf[i..].iter().position(|&c| c == b'\n') {
                        Some(at) => {
                            i += at + 1;
                            worth |= self.phase == ScanPhase::RequestLine;
                            self.phase = ScanPhase::AfterLf;
                        }
                        None => i = buf.len(),
                    }
                }
                ScanPhase::AfterLf | ScanPhase::AfterLfCr if b == b'\n' => {
                    self.phase = ScanPhase::Ended;
                    worth = true;
                    i += 1;
                }
                ScanPhase::AfterLf if b == b'\r' => {
                    self.phase = ScanPhase::AfterLfCr;
                    i += 1;
                }
                ScanPhase::AfterLf | ScanPhase::AfterLfCr => self.phase = ScanPhase::InLine,
                ScanPhase::Ended | ScanPhase::Fresh => i = buf.len(),
            }
        }
        self.checked = i as u32;
        worth
    }
}

fn leading_empty_lines(buf: &[u8]) -> usize {
    let mut i = 0;
    loop {
        if buf[i..].starts_with(b"\r\n") {
            i += 2;
        } else if buf[i..].starts_with(b"\n") {
            i += 1;
        } else {
            return i;
        }
    }
}

/// httparse says "Version" both for `HTTP/2.0` and for garbage; only a
/// well-formed `HTTP/x.y` is a version we don't support (505), the rest is 400.
///
/// The verdict must not depend on how the line was split across reads (the
/// fuzzer caught exactly that), so while the request line has not ended and
/// its third word could still become `HTTP/x.y`, the answer is `None`: wait
/// for more bytes.
fn version_error(buf: &[u8]) -> Option<ParseError> {
    let line_end = buf.iter().position(|&b| b == b'\r' || b == b'\n');
    let line = &buf[..line_end.unwrap_or(buf.len())];
    let version = line.splitn(3, |&b| b == b' ').nth(2).unwrap_or(b"");
    const SHAPE: &[u8] = b"HTTP/0.0";
    let fits = |(i, &b): (usize, &u8)| match SHAPE[i] {
        b'0' => b.is_ascii_digit(),
        c => b == c,
    };
    let fits_so_far = version.len() <= SHAPE.len() && version.iter().enumerate().all(fits);
    match (line_end, fits_so_far) {
        (Some(_), true) if version.len() == SHAPE.len() => Some(ParseError::UnsupportedVersion),
        (None, true) => None,
        _ => Some(ParseError::Malformed),
    }
}

/// Over the limit: if the request line alone fills the limit, it is the
/// target that is too long (414); otherwise the header section is (431).
fn too_large(buf: &[u8], max_head: usize) -> ParseError {
    let line_len = buf.iter().position(|&b| b == b'\n').unwrap_or(buf.len());
    if line_len >= max_head {
        ParseError::TargetTooLong
    } else {
        ParseError::HeadTooLarge
    }
}

/// A piece of the target: a range of its bytes, or a fixed text.
#[derive(Clone, Copy)]
enum Piece {
    Within(usize, usize),
    Is(&'static str),
}

/// Splits a request target into its path and query (RFC 9112 §3.2).
fn split_target(method: Method, target: &str) -> Result<(Piece, Option<Piece>), ParseError> {
    let (from, path_and_query) = if target.starts_with('/') {
        (0, target)
    } else if target == "*" {
        // asterisk-form: only for a server-wide OPTIONS.
        return match method {
            Method::Options => Ok((Piece::Is("*"), None)),
            _ => Err(ParseError::BadTarget),
        };
    } else if let Some(rest) = strip_scheme(target) {
        // absolute-form: drop the authority; the Host header still had to be
        // sent. An http(s) URI with an empty or malformed host (or userinfo,
        // RFC 9110 §4.2.4) is invalid, and RFC 9110 §4.2.1 says to reject it.
        let at = target.len() - rest.len();
        let authority = rest.find(['/', '?']).map_or(rest, |i| &rest[..i]);
        if authority.is_empty() || !valid_host(authority.as_bytes()) {
            return Err(ParseError::BadTarget);
        }
        match rest.find(['/', '?']) {
            Some(i) if rest.as_bytes()[i] == b'/' => (at + i, &rest[i..]),
            Some(i) => {
                let query = Piece::Within(at + i + 1, target.len());
                return Ok((Piece::Is("/"), Some(query)));
            }
            None => return Ok((Piece::Is("/"), None)),
        }
    } else if method == Method::Connect {
        // authority-form belongs to CONNECT, which we answer with 405.
        return Ok((Piece::Within(0, target.len()), None));
    } else {
        return Err(ParseError::BadTarget);
    };
    // A fragment is never sent by a correct client; treat '#' as data of the
    // path rather than guessing.
    Ok(match find_question_mark(path_and_query.as_bytes()) {
        Some(q) => (
            Piece::Within(from, from + q),
            Some(Piece::Within(from + q + 1, target.len())),
        ),
        None => (Piece::Within(from, target.len()), None),
    })
}

/// Where the first `?` of `bytes` is, eight bytes at a time: every
/// request's target is searched, and a byte loop took about seven
/// instructions a byte (`str::find` with a char pattern sets up a searcher
/// that costs more than a short path's whole scan).
fn find_question_mark(bytes: &[u8]) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const MARKS: u64 = ONES * b'?' as u64;
    let mut words = bytes.chunks_exact(8);
    let mut at = 0;
    for word in &mut words {
        let mut w = [0; 8];
        w.copy_from_slice(word);
        // Zero bytes where the `?`s are. The classic test flags each zero
        // byte's high bit; a byte above a zero can be flagged falsely (the
        // borrow), one below never is, so the lowest flag is the first `?`.
        let x = u64::from_le_bytes(w) ^ MARKS;
        let zeros = x.wrapping_sub(ONES) & !x & (ONES * 0x80);
        if zeros != 0 {
            return Some(at + (zeros.trailing_zeros() / 8) as usize);
        }
        at += 8;
    }
    let tail = words.remainder().iter().position(|&b| b == b'?');
    tail.map(|i| at + i)
}

/// `uri-host [ ":" port ]`, the value of `Host` (RFC 9112 §3.2) and the
/// authority of an http URI without userinfo (RFC 3986 §3.2.2, §3.2.3):
/// a bracketed IPv6 or IPvFuture literal, or a reg-name (which covers IPv4
/// addresses), then optionally a colon and digits. Empty is valid: a
/// client sends an empty Host when the target has no authority.
fn valid_host(value: &[u8]) -> bool {
    let (host_ok, rest) = match value.strip_prefix(b"[") {
        Some(literal) => match literal.iter().position(|&b| b == b']') {
            Some(end) => (valid_ip_literal(&literal[..end]), &literal[end + 1..]),
            None => return false,
        },
        None => match reg_name_len(value) {
            Some(end) => (true, &value[end..]),
            None => return false,
        },
    };
    host_ok
        && match rest.split_first() {
            None => true,
            Some((b':', port)) => port.iter().all(u8::is_ascii_digit),
            Some(_) => false,
        }
}

/// The length of the `reg-name = *( unreserved / pct-encoded / sub-delims )`
/// that `value` starts with, which must end at a `:` or at the end of
/// `value`; `None` if another byte ends it. One pass over the Host of
/// every request.
fn reg_name_len(value: &[u8]) -> Option<usize> {
    let mut i = 0;
    while let Some(&b) = value.get(i) {
        if REG_NAME_BYTE[b as usize] {
            i += 1;
        } else if b == b'%' {
            let hex = value.get(i + 1..i + 3);
            if !hex.is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)) {
                return None;
            }
            i += 3;
        } else if b == b':' {
            return Some(i);
        } else {
            return None;
        }
    }
    Some(i)
}

/// Inside the brackets: `IPv6address / IPvFuture`, where
/// `IPvFuture = "v" 1*HEXDIG "." 1*( unreserved / sub-delims / ":" )`.
fn valid_ip_literal(literal: &[u8]) -> bool {
    if let Some(future) = literal.strip_prefix(b"v").or(literal.strip_prefix(b"V")) {
        let Some(dot) = future.iter().position(|&b| b == b'.') else {
            return false;
        };
        let (version, rest) = (&future[..dot], &future[dot + 1..]);
        return !version.is_empty()
            && version.iter().all(u8::is_ascii_hexdigit)
            && !rest.is_empty()
            && rest
                .iter()
                .all(|&b| is_unreserved(b) || is_sub_delim(b) || b == b':');
    }
    str::from_utf8(literal).is_ok_and(|text| text.parse::<std::net::Ipv6Addr>().is_ok())
}

/// `unreserved = ALPHA / DIGIT / "-" / "." / "_" / "~"` (RFC 3986 §2.3).
const fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// `sub-delims = "!" / "$" / "&" / "'" / "(" / ")" / "*" / "+" / "," / ";" / "="`.
const fn is_sub_delim(b: u8) -> bool {
    matches!(
        b,
        b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+' | b',' | b';' | b'='
    )
}

/// The bytes a reg-name takes as they are (`unreserved / sub-delims`), as
/// a table: every request's Host goes through it, a lookup per byte.
const REG_NAME_BYTE: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        table[b] = is_unreserved(b as u8) || is_sub_delim(b as u8);
        b += 1;
    }
    table
};

fn strip_scheme(target: &str) -> Option<&str> {
    for scheme in ["http://", "https://"] {
        // Compare bytes: slicing the str could cut a UTF-8 character in half
        // (a panic the fuzzer found: `GET abcdef\xc3\xa9 HTTP/1.1`).
        let prefix = target.as_bytes().get(..scheme.len());
        if prefix.is_some_and(|p| p.eq_ignore_ascii_case(scheme.as_bytes())) {
            return target.get(scheme.len()..);
        }
    }
    None
}

/// `Content-Length = 1*DIGIT`; a list of identical values ("5, 5") is allowed
/// by RFC 9110 §8.6, anything else is an error.
fn parse_content_length(value: &[u8]) -> Result<u64, ParseError> {
    let text = str::from_utf8(value).map_err(|_| ParseError::BadContentLength)?;
    let mut result: Option<u64> = None;
    for part in text.split(',') {
        let part = part.trim_matches([' ', '\t']);
        if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ParseError::BadContentLength);
        }
        let n: u64 = part.parse().map_err(|_| ParseError::BadContentLength)?;
        if result.is_some_and(|prev| prev != n) {
            return Err(ParseError::BadContentLength);
        }
        result = Some(n);
    }
    result.ok_or(ParseError::BadContentLength)
}

/// The transfer codings of a request, in order across all its
/// `Transfer-Encoding` fields: what [`TransferCodings::framing`] needs.
#[derive(Clone, Copy, Default)]
struct TransferCodings {
    count: usize,
    last_is_chunked: bool,
    chunked_before_last: bool,
}

impl TransferCodings {
    fn add(&mut self, value: &str) {
        let codings = value.split(',').map(|c| c.trim_matches([' ', '\t']));
        for coding in codings.filter(|c| !c.is_empty()) {
            self.chunked_before_last |= self.count > 0 && self.last_is_chunked;
            self.last_is_chunked = coding.eq_ignore_ascii_case("chunked");
            self.count += 1;
        }
    }

    /// `chunked` must be the final coding (else the length is unknowable:
    /// 400); any other coding before it is one we can't decode (501).
    fn framing(&self) -> Result<BodyFraming, ParseError> {
        if !self.last_is_chunked {
            Err(ParseError::AmbiguousFraming)
        } else if self.count == 1 {
            Ok(BodyFraming::Chunked)
        } else if self.chunked_before_last {
            Err(ParseError::AmbiguousFraming)
        } else {
            Err(ParseError::UnknownTransferCoding)
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn field_names_match_in_any_case_and_only_themselves() {
        let names = [
            "host",
            "range",
            "accept",
            "expect",
            "referer",
            "if-match",
            "if-range",
            "user-agent",
            "connection",
            "if-none-match",
            "content-length",
            "accept-encoding",
            "if-modified-since",
            "transfer-encoding",
            "if-unmodified-since",
        ];
        for want in names {
            let w = want.as_bytes();
            assert!(super::eq_lowercase(w, w), "{want}");
            assert!(
                super::eq_lowercase(want.to_ascii_uppercase().as_bytes(), w),
                "{want}"
            );
            // One byte changed anywhere (including to a byte that differs
            // from it only in bit 5 but is not a letter, or in bit 7) must
            // not match.
            for i in 0..w.len() {
                for change in [0x20u8, 0x80, 0x01, 0xa0] {
                    let mut other = w.to_vec();
                    other[i] ^= change;
                    let same = other[i].eq_ignore_ascii_case(&w[i]);
                    assert_eq!(super::eq_lowercase(&other, w), same, "{want} {other:?}");
                }
            }
        }
        assert!(!super::eq_lowercase(b"hos", b"host"));
    }

    use super::*;

    const LIMIT: usize = 8192;

    fn ok(raw: &str) -> Box<RequestHead> {
        match parse(raw.as_bytes(), LIMIT) {
            Ok(Parsed::Complete { head, len }) => {
                assert_eq!(len, raw.len(), "whole input is one head: {raw:?}");
                head
            }
            other => panic!("{raw:?} → {other:?}"),
        }
    }

    fn err(raw: &str) -> ParseError {
        match parse(raw.as_bytes(), LIMIT) {
            Err(e) => e,
            other => panic!("{raw:?} should fail, got {other:?}"),
        }
    }

    #[test]
    fn simple_get() {
        let h = ok("GET /a/b.txt?x=1 HTTP/1.1\r\nHost: h\r\nUser-Agent: t\r\n\r\n");
        assert_eq!(h.method, Method::Get);
        assert_eq!(h.path(), "/a/b.txt");
        assert_eq!(h.query(), Some("x=1"));
        assert_eq!(h.minor_version, 1);
        assert!(h.keep_alive);
        assert_eq!(h.user_agent(), Some("t"));
        assert_eq!(h.body, BodyFraming::None);
    }

    #[test]
    fn partial_heads_ask_for_more() {
        let full = b"GET / HTTP/1.1\r\nHost: h\r\n\r\n";
        for end in 0..full.len() {
            assert_eq!(
                parse(&full[..end], LIMIT),
                Ok(Parsed::Partial),
                "prefix {end}"
            );
        }
    }

    #[test]
    fn pipelined_heads_leave_the_rest() {
        let two = b"GET /1 HTTP/1.1\r\nHost: h\r\n\r\nGET /2 HTTP/1.1\r\nHost: h\r\n\r\n";
        match parse(two, LIMIT) {
            Ok(Parsed::Complete { head, len }) => {
                assert_eq!(head.path(), "/1");
                assert_eq!(&two[len..len + 6], b"GET /2");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn connection_semantics() {
        let table = [
            ("GET / HTTP/1.1\r\nHost: h\r\n\r\n", true),
            (
                "GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
                false,
            ),
            (
                "GET / HTTP/1.1\r\nHost: h\r\nConnection: TE, Close\r\n\r\n",
                false,
            ),
            ("GET / HTTP/1.0\r\n\r\n", false),
            ("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", true),
            ("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", true),
        ];
        for (raw, keep_alive) in table {
            assert_eq!(ok(raw).keep_alive, keep_alive, "{raw:?}");
        }
    }

    #[test]
    fn target_forms() {
        let h = ok("GET http://example.com/x%20y?q HTTP/1.1\r\nHost: example.com\r\n\r\n");
        assert_eq!((h.path(), h.query()), ("/x%20y", Some("q")));
        let h = ok("GET HTTP://example.com HTTP/1.1\r\nHost: example.com\r\n\r\n");
        assert_eq!(h.path(), "/");
        assert_eq!(ok("OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n").path(), "*");
        assert_eq!(
            err("GET * HTTP/1.1\r\nHost: h\r\n\r\n"),
            ParseError::BadTarget
        );
        assert_eq!(
            err("GET index.html HTTP/1.1\r\nHost: h\r\n\r\n"),
            ParseError::BadTarget
        );
    }

    #[test]
    fn refusals() {
        let table = [
            ("GET / HTTP/1.1\r\n\r\n", ParseError::BadHost),
            ("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", ParseError::BadHost),
            ("GET / HTTP/2.0\r\nHost: h\r\n\r\n", ParseError::UnsupportedVersion),
            ("GET / HTTP/1.2\r\nHost: h\r\n\r\n", ParseError::UnsupportedVersion),
            ("GET / HTXP/1.1\r\nHost: h\r\n\r\n", ParseError::Malformed),
            ("BREW / HTTP/1.1\r\nHost: h\r\n\r\n", ParseError::UnknownMethod),
            ("GET / HTTP/1.1\r\nHost : h\r\n\r\n", ParseError::Malformed),
            ("GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n b\r\n\r\n", ParseError::Malformed),
            ("GET / HTTP/1.1\r\nHost: h\rX: y\r\n\r\n", ParseError::Malformed),
            ("GET / HTTP/1.1\r\nHost: h\r\nX: a\0b\r\n\r\n", ParseError::Malformed),
            ("GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", ParseError::BadContentLength),
            ("GET / HTTP/1.1\r\nHost: h\r\nContent-Length: -1\r\n\r\n", ParseError::BadContentLength),
            ("GET / HTTP/1.1\r\nHost: h\r\nContent-Length: +1\r\n\r\n", ParseError::BadContentLength),
            ("GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 99999999999999999999999\r\n\r\n", ParseError::BadContentLength),
            ("GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", ParseError::AmbiguousFraming),
            ("GET / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", ParseError::AmbiguousFraming),
            ("GET / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", ParseError::UnknownTransferCoding),
            ("GET / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", ParseError::AmbiguousFraming),
        ];
        for (raw, want) in table {
            assert_eq!(err(raw), want, "{raw:?}");
        }
    }

    #[test]
    fn body_framing() {
        let h = ok("GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 5, 5\r\n\r\n");
        assert_eq!(h.body, BodyFraming::Length(5));
        let h = ok("GET / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: Chunked\r\n\r\n");
        assert_eq!(h.body, BodyFraming::Chunked);
    }

    #[test]
    fn limits() {
        let long_target = format!("GET /{} HTTP/1.1\r\nHost: h\r\n\r\n", "a".repeat(LIMIT));
        assert_eq!(err(&long_target), ParseError::TargetTooLong);
        let long_field = format!(
            "GET / HTTP/1.1\r\nHost: h\r\nX: {}\r\n\r\n",
            "a".repeat(LIMIT)
        );
        assert_eq!(err(&long_field), ParseError::HeadTooLarge);
        let many: String = (0..MAX_HEADERS + 1)
            .map(|i| format!("X{i}: v\r\n"))
            .collect();
        assert_eq!(
            err(&format!("GET / HTTP/1.1\r\nHost: h\r\n{many}\r\n")),
            ParseError::HeadTooLarge
        );
    }

    #[test]
    fn repeated_list_fields_are_joined() {
        let h =
            ok("GET / HTTP/1.1\r\nHost: h\r\nIf-None-Match: \"a\"\r\nif-none-match: \"b\"\r\n\r\n");
        assert_eq!(h.if_none_match(), Some("\"a\", \"b\""));
    }

    /// Regression (fuzz: version-error-depends-on-segmentation): a bad
    /// version earns the same status however the line arrives.
    #[test]
    fn version_verdict_does_not_depend_on_read_boundaries() {
        let full = b"GET / HTTP/2.0\r\nHost: h\r\n\r\n";
        for end in 1..=full.len() {
            match parse(&full[..end], LIMIT) {
                Ok(Parsed::Partial) | Err(ParseError::UnsupportedVersion) => {}
                other => panic!("prefix {end}: {other:?}"),
            }
        }
        assert_eq!(
            err("GET / HTTP/2.0x\r\nHost: h\r\n\r\n"),
            ParseError::Malformed
        );
    }

    /// Regression (fuzz: strip-scheme-char-boundary): a multi-byte character
    /// where a scheme would end must not panic.
    #[test]
    fn non_ascii_target_is_refused_not_a_panic() {
        let raw = "GET abcdef\u{e9} HTTP/1.1\r\nHost: h\r\n\r\n";
        assert!(parse(raw.as_bytes(), LIMIT).is_err());
    }

    /// Regression (host-not-validated): `Host: a b c <script>` was served.
    /// Host must be `uri-host[:port]` (RFC 9112 §3.2, RFC 3986 §3.2.2).
    #[test]
    fn host_validation_table() {
        #[rustfmt::skip]
        let table: &[(&str, bool)] = &[
            ("example.com", true),
            ("example.com:8080", true),
            ("EXAMPLE.com:", true),                // empty port: allowed by the grammar
            ("", true),                            // no authority in the target
            ("127.0.0.1", true),
            ("127.0.0.1:80", true),
            ("999.1.1.1", true),                   // not IPv4, but a valid reg-name
            ("xn--bcher-kva.example", true),
            ("a-b_c~d.e", true),
            ("a%41b", true),
            ("!$&'()*+,;=", true),
            ("[::1]", true),
            ("[::1]:8080", true),
            ("[2001:db8::7]", true),
            ("[::ffff:192.0.2.1]", true),
            ("[v1.fe80::a+en1]", true),
            ("[V7.x:y]", true),
            ("a b c <script>", false),
            ("a b", false),
            ("<script>", false),
            ("a\"b", false),
            ("a/b", false),
            ("a?b", false),
            ("a#b", false),
            ("a@b", false),                         // userinfo
            ("a\\b", false),
            ("a%4", false),
            ("a%zz", false),
            ("a:1:2", false),
            ("a:8o", false),
            ("a:-1", false),
            (":80", true),                         // empty reg-name, port
            ("caf\u{e9}", false),                  // non-ASCII: must be percent-encoded
            ("[::1", false),
            ("::1", false),
            ("[::g]", false),
            ("[1.2.3.4]", false),
            ("[::1]x", false),
            ("[::1]:8o", false),
            ("[::1%25eth0]", false),               // zone IDs are not in RFC 3986
            ("[v.x]", false),
            ("[v1.]", false),
            ("[v1x]", false),
            ("[]", false),
        ];
        for (host, want) in table {
            assert_eq!(valid_host(host.as_bytes()), *want, "{host:?}");
            let raw = format!("GET / HTTP/1.1\r\nHost: {host}\r\n\r\n");
            match parse(raw.as_bytes(), LIMIT) {
                Ok(Parsed::Complete { head, .. }) => {
                    assert!(*want, "{host:?} was accepted");
                    assert_eq!(head.host(), Some(*host));
                }
                Err(e) => {
                    assert!(!*want, "{host:?} was refused");
                    assert_eq!(e, ParseError::BadHost, "{host:?}");
                }
                Ok(Parsed::Partial) => panic!("{host:?}: partial"),
            }
        }
        // Surrounding whitespace is not part of the value; HTTP/1.0 hosts are
        // checked too.
        assert_eq!(
            ok("GET / HTTP/1.1\r\nHost: \t h:1 \r\n\r\n").host(),
            Some("h:1")
        );
        assert_eq!(
            err("GET / HTTP/1.0\r\nHost: a b\r\n\r\n"),
            ParseError::BadHost
        );
        assert_eq!(
            parse(b"GET / HTTP/1.1\r\nHost: caf\xe9\r\n\r\n", LIMIT),
            Err(ParseError::BadHost),
            "not UTF-8"
        );
    }

    /// The authority of an absolute-form target follows the same rule, and
    /// must not be empty (RFC 9110 §4.2.1).
    #[test]
    fn absolute_form_authority_is_validated() {
        let table = [
            ("http://h/x", true),
            ("http://h:8080/x", true),
            ("http://[::1]:80?q", true),
            ("http://h", true),
            ("http:///x", false),
            ("http://", false),
            ("http://u@h/x", false),
            ("http://u:p@h/x", false),
            ("http://a<b/x", false),
            ("http://[::1/x", false),
        ];
        for (target, want) in table {
            let raw = format!("GET {target} HTTP/1.1\r\nHost: h\r\n\r\n");
            match parse(raw.as_bytes(), LIMIT) {
                Ok(Parsed::Complete { .. }) => assert!(want, "{target} was accepted"),
                Err(e) => {
                    assert!(!want, "{target} was refused: {e:?}");
                    assert_eq!(e, ParseError::BadTarget, "{target}");
                }
                Ok(Parsed::Partial) => panic!("{target}: partial"),
            }
        }
    }

    /// Feeds `raw` to a scanner `step` bytes at a time; returns the buffer
    /// lengths at which it asked for a parse.
    fn scan_points(raw: &[u8], step: usize) -> Vec<usize> {
        let mut scanner = HeadScanner::default();
        let mut points = Vec::new();
        let mut end = 0;
        while end < raw.len() {
            end = (end + step).min(raw.len());
            if scanner.scan(&raw[..end]) {
                points.push(end);
            }
        }
        points
    }

    /// Regression (partial head re-parsed from its start on every read): a
    /// head sent a byte at a time asks for three parses, not one per byte,
    /// and the last one sees the whole head.
    #[test]
    fn partial_head_is_worth_parsing_only_at_its_landmarks() {
        let head = format!(
            "GET /a HTTP/1.1\r\nHost: h\r\nX-Pad: {}\r\n\r\n",
            "p".repeat(6500)
        );
        let line_end = "GET /a HTTP/1.1\r\n".len();
        assert_eq!(scan_points(head.as_bytes(), 1), [1, line_end, head.len()]);
        let points = scan_points(head.as_bytes(), 7);
        assert!(points.len() <= 3, "{points:?}");
        assert_eq!(points.last(), Some(&head.len()));
        assert!(matches!(
            parse(head.as_bytes(), LIMIT),
            Ok(Parsed::Complete { .. })
        ));
    }

    /// The scanner finds the end of the head wherever `parse` does, for
    /// every line-end style `parse` accepts and for any read size.
    #[test]
    fn head_end_is_found_for_every_line_end_style() {
        let heads = [
            "GET / HTTP/1.1\r\nHost: h\r\n\r\n",
            "GET / HTTP/1.1\nHost: h\n\n",
            "GET / HTTP/1.1\nHost: h\n\r\n",
            "GET / HTTP/1.1\r\nHost: h\r\n\n",
            "\r\n\nGET / HTTP/1.1\r\nHost: h\r\n\r\n",
            "GET / HTTP/1.0\r\n\r\n",
            "GET / HTTP/1.0\n\n",
        ];
        for raw in heads {
            let Ok(Parsed::Complete { len, .. }) = parse(raw.as_bytes(), LIMIT) else {
                panic!("{raw:?} does not parse");
            };
            assert_eq!(len, raw.len());
            for step in 1..=raw.len() {
                let points = scan_points(raw.as_bytes(), step);
                assert_eq!(points.last(), Some(&raw.len()), "{raw:?} by {step}");
                assert!(points.len() <= 3, "{raw:?} by {step}: {points:?}");
            }
        }
    }

    #[test]
    fn head_method_is_recognised_in_refused_bytes() {
        let table: [(&[u8], bool); 8] = [
            (b"HEAD / HTTP/1.1\r\nHost: a b\r\n\r\n", true),
            (b"\r\n\nHEAD / HTTP/9.9\r\n", true),
            (b"HEAD ", true),
            (b"HEAD", false),
            (b"HEADX / HTTP/1.1\r\n", false),
            (b"head / HTTP/1.1\r\n", false),
            (b"GET / HTTP/1.1\r\n", false),
            (b"", false),
        ];
        for (raw, want) in table {
            assert_eq!(starts_with_head_method(raw), want, "{raw:?}");
        }
    }

    /// Only `100-continue` is an expectation we meet; any other member is
    /// refused with 417 (RFC 9110 §10.1.1). An empty value asks nothing.
    #[test]
    fn expect_values() {
        use super::{expectation, Expectation};
        let table: &[(&[u8], Expectation)] = &[
            (b"100-continue", Expectation::Continue),
            (b"100-Continue", Expectation::Continue),
            (b" 100-continue ", Expectation::Continue),
            (b"\t100-CONTINUE", Expectation::Continue),
            (b"100-continue, 100-continue", Expectation::Continue),
            (b"100-continue,", Expectation::Continue),
            (b"", Expectation::Nothing),
            (b" ", Expectation::Nothing),
            (b" , ,", Expectation::Nothing),
            (b"100-continue, foo", Expectation::Unknown),
            (b"foo, 100-continue", Expectation::Unknown),
            (b"foo", Expectation::Unknown),
            (b"100-continue=1", Expectation::Unknown),
            (b"100-continuee", Expectation::Unknown),
            (b"100 continue", Expectation::Unknown),
            (b"\"100-continue\"", Expectation::Unknown),
            (b"100-continue\xff", Expectation::Unknown),
        ];
        for &(value, want) in table {
            assert_eq!(expectation(value), want, "{value:?}");
        }
        // Through the parser: the status code, and which versions it applies to.
        for raw in [
            "PUT / HTTP/1.1\r\nHost: h\r\nExpect: foo\r\n\r\n",
            "PUT / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue, foo\r\n\r\n",
            "PUT / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nExpect: foo\r\n\r\n",
            "GET / HTTP/1.0\r\nExpect: foo\r\n\r\n",
        ] {
            assert_eq!(err(raw), ParseError::UnknownExpectation, "{raw:?}");
        }
        let status = crate::http::errors::for_parse_error(ParseError::UnknownExpectation);
        assert_eq!((status.0, status.reason()), (417, "Expectation Failed"));
        let h = ok("PUT / HTTP/1.1\r\nHost: h\r\nExpect:\r\n\r\n");
        assert!(!h.expect_continue);
        let h = ok("PUT / HTTP/1.1\r\nHost: h\r\nExpect:  100-continue \r\n\r\n");
        assert!(h.expect_continue);
        let h = ok("PUT / HTTP/1.1\r\nHost: h\r\nExpect:\r\nExpect: 100-continue\r\n\r\n");
        assert!(h.expect_continue);
    }

    #[test]
    fn expect_continue_only_from_http11() {
        let h = ok("PUT / HTTP/1.1\r\nHost: h\r\nExpect: 100-Continue\r\n\r\n");
        assert!(h.expect_continue);
        let h = ok("PUT / HTTP/1.0\r\nExpect: 100-continue\r\n\r\n");
        assert!(!h.expect_continue);
    }

    /// Repeated fields are joined in order even when other fields come
    /// between them, and a value that is not UTF-8 is left out of the join.
    #[test]
    fn interleaved_repeated_fields_are_joined_in_order() {
        let h = ok(
            "GET / HTTP/1.1\r\nRange: bytes=0-1\r\nHost: h\r\nIf-Match: \"a\"\r\n\
             User-Agent: u\r\nif-match:  \"b\" \r\nIF-MATCH: \"c\"\r\n\r\n",
        );
        assert_eq!(h.if_match(), Some("\"a\", \"b\", \"c\""));
        assert_eq!(h.range(), Some("bytes=0-1"));
        assert_eq!(h.user_agent(), Some("u"));
        assert_eq!(h.host(), Some("h"));
        assert_eq!(h.accept(), None);
        let raw = b"GET / HTTP/1.1\r\nHost: h\r\nAccept: a\r\nAccept: \xff\r\nAccept: b\r\n\r\n";
        let Ok(Parsed::Complete { head, .. }) = parse(raw, LIMIT) else {
            panic!("refused");
        };
        assert_eq!(head.accept(), Some("a, b"));
        let raw = b"GET / HTTP/1.1\r\nHost: h\r\nAccept: \xff\r\n\r\n";
        let Ok(Parsed::Complete { head, .. }) = parse(raw, LIMIT) else {
            panic!("refused");
        };
        assert_eq!(head.accept(), None);
    }

    /// With the access log off the connection asks for [`Keep::ForAnswer`]:
    /// `Referer` and `User-Agent` (repeated, too) are not kept, every field
    /// that decides the answer is, and the checks still run.
    #[test]
    fn fields_only_the_log_shows_are_kept_only_when_asked() {
        let raw = "GET /p?q HTTP/1.1\r\nUser-Agent: u\r\nHost: h\r\nReferer: r\r\n\
                   Accept: a\r\nUser-Agent: v\r\nRange: bytes=0-1\r\n\r\n";
        let keep = |keep| match parse_with(raw.as_bytes(), LIMIT, &mut SpareHeads::default(), keep)
        {
            Ok(Parsed::Complete { head, .. }) => head,
            other => panic!("{other:?}"),
        };
        let all = keep(Keep::All);
        assert_eq!((all.user_agent(), all.referer()), (Some("u, v"), Some("r")));
        let answer = keep(Keep::ForAnswer);
        assert_eq!((answer.user_agent(), answer.referer()), (None, None));
        for field in [Field::Host, Field::Accept, Field::Range] {
            assert_eq!(answer.field(field), all.field(field), "{field:?}");
        }
        assert_eq!((answer.path(), answer.query()), ("/p", Some("q")));
        let bad = b"GET / HTTP/1.1\r\nUser-Agent: u\r\nHost: a b\r\n\r\n";
        assert_eq!(
            parse_with(bad, LIMIT, &mut SpareHeads::default(), Keep::ForAnswer),
            Err(ParseError::BadHost)
        );
    }

    /// A reused head carries nothing over from its previous request: every
    /// accessor answers as for a freshly allocated head.
    #[test]
    fn reused_head_forgets_its_previous_request() {
        let mut spares = SpareHeads::default();
        let first = "GET http://a.example/old/path?q=1 HTTP/1.1\r\nHost: a.example\r\n\
             Range: bytes=1-2\r\nIf-None-Match: \"x\"\r\nUser-Agent: long agent\r\n\
             Referer: r\r\nContent-Length: 3\r\n\r\n";
        let Ok(Parsed::Complete { head, .. }) =
            parse_with(first.as_bytes(), LIMIT, &mut spares, Keep::All)
        else {
            panic!("refused");
        };
        spares.put(head);
        assert_eq!(spares.len(), 1);
        let second = "HEAD /n HTTP/1.0\r\n\r\n";
        let Ok(Parsed::Complete { head, .. }) =
            parse_with(second.as_bytes(), LIMIT, &mut spares, Keep::All)
        else {
            panic!("refused");
        };
        assert!(spares.is_empty(), "the spare head was used");
        assert_eq!(*head, *ok(second));
        assert_eq!(
            (head.path(), head.query(), head.target()),
            ("/n", None, "/n")
        );
        for field in Field::ALL {
            assert_eq!(head.field(field), None, "{field:?}");
        }
        assert_eq!(
            (head.method, head.body, head.keep_alive),
            (Method::Head, BodyFraming::None, false)
        );
    }

    /// The spare list is bounded, and a head that grew large is not kept.
    #[test]
    fn spare_heads_are_bounded() {
        let mut spares = SpareHeads::default();
        for _ in 0..MAX_SPARE_HEADS + 5 {
            spares.put(ok("GET / HTTP/1.1\r\nHost: h\r\n\r\n"));
        }
        assert_eq!(spares.len(), MAX_SPARE_HEADS);
        let mut spares = SpareHeads::default();
        let big = format!(
            "GET / HTTP/1.1\r\nHost: h\r\nUser-Agent: {}\r\n\r\n",
            "u".repeat(MAX_SPARE_HEAD_TEXT)
        );
        spares.put(ok(&big));
        assert!(spares.is_empty());
    }

    #[test]
    fn transfer_codings_across_fields() {
        let table = [
            (
                "Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked",
                Err(ParseError::UnknownTransferCoding),
            ),
            (
                "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked",
                Err(ParseError::AmbiguousFraming),
            ),
            ("Transfer-Encoding: ,chunked,", Ok(BodyFraming::Chunked)),
            ("Transfer-Encoding: ", Err(ParseError::AmbiguousFraming)),
            (
                "Transfer-Encoding: chunked\r\nTransfer-Encoding: gzip",
                Err(ParseError::AmbiguousFraming),
            ),
        ];
        for (fields, want) in table {
            let raw = format!("POST / HTTP/1.1\r\nHost: h\r\n{fields}\r\n\r\n");
            let got = parse(raw.as_bytes(), LIMIT).map(|p| match p {
                Parsed::Complete { head, .. } => head.body,
                Parsed::Partial => panic!("partial"),
            });
            assert_eq!(got, want, "{fields:?}");
        }
    }

    /// The word-at-a-time search finds exactly the first `?`, wherever it
    /// is, next to bytes one bit away from it (`>`, `/`, 0xBF) and behind
    /// other `?`s, in targets of every length around a word's.
    #[test]
    fn question_mark_is_found_word_at_a_time_where_a_byte_scan_finds_it() {
        for len in 0..40 {
            for fill in [b'a', b'>', b'/', 0xbf, 0x7f, 0x00, 0xff] {
                let mut bytes = vec![fill; len];
                let want = bytes.iter().position(|&b| b == b'?');
                assert_eq!(find_question_mark(&bytes), want, "{len} {fill:#x}");
                for at in 0..len {
                    bytes[at] = b'?';
                    for later in at + 1..len {
                        let mut two = bytes.clone();
                        two[later] = b'?';
                        assert_eq!(find_question_mark(&two), Some(at), "{len} {at} {later}");
                    }
                    assert_eq!(find_question_mark(&bytes), Some(at), "{len} {at} {fill:#x}");
                    bytes[at] = fill;
                }
            }
        }
    }

    #[test]
    fn leading_crlf_is_skipped() {
        let raw = "\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n";
        assert_eq!(ok(raw).path(), "/");
    }
}
