//! Request-head parsing: the bytes a client sent → a [`RequestHead`], or a
//! typed [`ParseError`] saying precisely what was wrong.
//!
//! Sans-IO: it only looks at a byte slice, so the reactor, the fuzzers and
//! the unit tests all call the same function. `httparse` does the grammar;
//! this module adds the rules of RFC 9112 that keep framing unambiguous
//! (exactly one `Host`, no `Content-Length` beside `Transfer-Encoding`, ...)
//! and copies out the few header fields stoke acts on.
//!
//! Runs on: the reactor thread, once per request head.

use std::str;

use crate::limits::MAX_HEADERS;

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

/// The header fields stoke acts on, copied out of the read buffer so the
/// request can travel to a worker thread. Repeated list fields are joined
/// with ", " as RFC 9110 §5.3 allows.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Fields {
    pub host: Option<String>,
    pub range: Option<String>,
    pub if_match: Option<String>,
    pub if_none_match: Option<String>,
    pub if_modified_since: Option<String>,
    pub if_unmodified_since: Option<String>,
    pub if_range: Option<String>,
    pub accept: Option<String>,
    pub accept_encoding: Option<String>,
    pub referer: Option<String>,
    pub user_agent: Option<String>,
}

/// One parsed request head: everything the worker needs to answer it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestHead {
    pub method: Method,
    /// The request target exactly as sent (for the access log).
    pub target: String,
    /// The path of the target, still percent-encoded, always starting with
    /// `/`; the query is split off and the authority of an absolute-form
    /// target removed. `*` for `OPTIONS *`.
    pub path: String,
    /// The query string without its `?`, if any (kept for redirects).
    pub query: Option<String>,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub minor_version: u8,
    /// Whether the client lets us keep the connection open afterwards. The
    /// connection overwrites it with its own decision before a worker sees
    /// the head (see `conn`'s `After`), so a worker reads the final word.
    pub keep_alive: bool,
    /// `Expect: 100-continue` was sent.
    pub expect_continue: bool,
    pub body: BodyFraming,
    pub fields: Fields,
}

impl RequestHead {
    /// `GET /path HTTP/1.1`, as the access log shows it.
    pub fn request_line(&self) -> String {
        format!(
            "{} {} HTTP/1.{}",
            self.method.as_str(),
            self.target,
            self.minor_version
        )
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
    // Browsers may send a stray CRLF after a POST body; RFC 9112 §2.2 lets a
    // server skip empty lines before the request line.
    let skip = leading_empty_lines(buf);
    let buf = &buf[skip..];

    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let status = match req.parse(buf) {
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

    let mut fields = Fields::default();
    let mut host_count = 0;
    let mut content_length: Option<u64> = None;
    let mut transfer_encoding: Option<String> = None;
    let mut connection_close = false;
    let mut connection_keep_alive = false;
    let mut expect_continue = false;
    for h in req.headers.iter() {
        let value = str::from_utf8(h.value).ok();
        let name = h.name;
        if name.eq_ignore_ascii_case("host") {
            host_count += 1;
            let host = value.map(|v| v.trim_matches([' ', '\t']));
            if !host.is_some_and(|h| valid_host(h.as_bytes())) {
                return Err(ParseError::BadHost);
            }
            fields.host = host.map(str::to_owned);
        } else if name.eq_ignore_ascii_case("content-length") {
            let n = parse_content_length(h.value)?;
            if content_length.is_some_and(|prev| prev != n) {
                return Err(ParseError::BadContentLength);
            }
            content_length = Some(n);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            let v = value.ok_or(ParseError::Malformed)?;
            join(&mut transfer_encoding, v);
        } else if name.eq_ignore_ascii_case("connection") {
            for token in value.unwrap_or("").split(',').map(str::trim) {
                connection_close |= token.eq_ignore_ascii_case("close");
                connection_keep_alive |= token.eq_ignore_ascii_case("keep-alive");
            }
        } else if name.eq_ignore_ascii_case("expect") {
            // An HTTP/1.0 client does not wait for "100 Continue", and RFC
            // 9110 §10.1.1 says to ignore the expectation from one.
            expect_continue |= minor_version == 1
                && value.is_some_and(|v| v.trim().eq_ignore_ascii_case("100-continue"));
        } else if let Some(slot) = field_slot(&mut fields, name) {
            // Fields that are not UTF-8 (obs-text) are dropped rather than
            // refused: they can only be ones we would ignore anyway.
            if let Some(v) = value {
                join(slot, v);
            }
        }
    }

    if minor_version == 1 && host_count != 1 {
        return Err(ParseError::BadHost);
    }
    if host_count > 1 {
        return Err(ParseError::BadHost);
    }
    let body = match (transfer_encoding, content_length) {
        (Some(_), Some(_)) => return Err(ParseError::AmbiguousFraming),
        (Some(_), None) if minor_version == 0 => return Err(ParseError::AmbiguousFraming),
        (Some(te), None) => transfer_framing(&te)?,
        (None, Some(0)) | (None, None) => BodyFraming::None,
        (None, Some(n)) => BodyFraming::Length(n),
    };
    let keep_alive = match minor_version {
        1 => !connection_close,
        _ => connection_keep_alive && !connection_close,
    };

    Ok(Parsed::Complete {
        head: Box::new(RequestHead {
            method,
            target: target.to_owned(),
            path,
            query,
            minor_version,
            keep_alive,
            expect_continue,
            body,
            fields,
        }),
        len: skip + len,
    })
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
    checked: usize,
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
        if buf.len() <= self.checked {
            return false;
        }
        let mut worth = false;
        if self.phase == ScanPhase::Fresh {
            self.phase = ScanPhase::Leading;
            worth = true;
        }
        let mut i = self.checked;
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
        self.checked = i;
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

/// Splits a request target into its path and query (RFC 9112 §3.2).
fn split_target(method: Method, target: &str) -> Result<(String, Option<String>), ParseError> {
    let path_and_query = if target.starts_with('/') {
        target
    } else if target == "*" {
        // asterisk-form: only for a server-wide OPTIONS.
        return match method {
            Method::Options => Ok(("*".to_owned(), None)),
            _ => Err(ParseError::BadTarget),
        };
    } else if let Some(rest) = strip_scheme(target) {
        // absolute-form: drop the authority; the Host header still had to be
        // sent. An http(s) URI with an empty or malformed host (or userinfo,
        // RFC 9110 §4.2.4) is invalid, and RFC 9110 §4.2.1 says to reject it.
        let authority = rest.find(['/', '?']).map_or(rest, |i| &rest[..i]);
        if authority.is_empty() || !valid_host(authority.as_bytes()) {
            return Err(ParseError::BadTarget);
        }
        match rest.find(['/', '?']) {
            Some(i) if rest.as_bytes()[i] == b'/' => &rest[i..],
            Some(i) => return Ok(("/".to_owned(), Some(rest[i + 1..].to_owned()))),
            None => "/",
        }
    } else if method == Method::Connect {
        // authority-form belongs to CONNECT, which we answer with 405.
        return Ok((target.to_owned(), None));
    } else {
        return Err(ParseError::BadTarget);
    };
    // A fragment is never sent by a correct client; treat '#' as data of the
    // path rather than guessing.
    Ok(match path_and_query.split_once('?') {
        Some((p, q)) => (p.to_owned(), Some(q.to_owned())),
        None => (path_and_query.to_owned(), None),
    })
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
        None => {
            let end = value.iter().position(|&b| b == b':').unwrap_or(value.len());
            (valid_reg_name(&value[..end]), &value[end..])
        }
    };
    host_ok
        && match rest.split_first() {
            None => true,
            Some((b':', port)) => port.iter().all(u8::is_ascii_digit),
            Some(_) => false,
        }
}

/// `reg-name = *( unreserved / pct-encoded / sub-delims )`.
fn valid_reg_name(name: &[u8]) -> bool {
    let mut i = 0;
    while let Some(&b) = name.get(i) {
        if b == b'%' {
            let hex = name.get(i + 1..i + 3);
            if !hex.is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)) {
                return false;
            }
            i += 3;
        } else if is_unreserved(b) || is_sub_delim(b) {
            i += 1;
        } else {
            return false;
        }
    }
    true
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
fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~')
}

/// `sub-delims = "!" / "$" / "&" / "'" / "(" / ")" / "*" / "+" / "," / ";" / "="`.
fn is_sub_delim(b: u8) -> bool {
    matches!(
        b,
        b'!' | b'$' | b'&' | b'\'' | b'(' | b')' | b'*' | b'+' | b',' | b';' | b'='
    )
}

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

/// `chunked` must be the final coding (else the length is unknowable: 400);
/// any other coding before it is one we can't decode (501).
fn transfer_framing(te: &str) -> Result<BodyFraming, ParseError> {
    let codings: Vec<&str> = te
        .split(',')
        .map(|c| c.trim_matches([' ', '\t']))
        .filter(|c| !c.is_empty())
        .collect();
    match codings.split_last() {
        Some((last, rest)) if last.eq_ignore_ascii_case("chunked") => {
            if rest.is_empty() {
                Ok(BodyFraming::Chunked)
            } else if rest.iter().any(|c| c.eq_ignore_ascii_case("chunked")) {
                Err(ParseError::AmbiguousFraming)
            } else {
                Err(ParseError::UnknownTransferCoding)
            }
        }
        _ => Err(ParseError::AmbiguousFraming),
    }
}

fn field_slot<'a>(fields: &'a mut Fields, name: &str) -> Option<&'a mut Option<String>> {
    let slot = match name.len() {
        4 if name.eq_ignore_ascii_case("host") => &mut fields.host,
        5 if name.eq_ignore_ascii_case("range") => &mut fields.range,
        6 if name.eq_ignore_ascii_case("accept") => &mut fields.accept,
        7 if name.eq_ignore_ascii_case("referer") => &mut fields.referer,
        8 if name.eq_ignore_ascii_case("if-match") => &mut fields.if_match,
        8 if name.eq_ignore_ascii_case("if-range") => &mut fields.if_range,
        10 if name.eq_ignore_ascii_case("user-agent") => &mut fields.user_agent,
        13 if name.eq_ignore_ascii_case("if-none-match") => &mut fields.if_none_match,
        15 if name.eq_ignore_ascii_case("accept-encoding") => &mut fields.accept_encoding,
        17 if name.eq_ignore_ascii_case("if-modified-since") => &mut fields.if_modified_since,
        19 if name.eq_ignore_ascii_case("if-unmodified-since") => &mut fields.if_unmodified_since,
        _ => return None,
    };
    Some(slot)
}

fn join(slot: &mut Option<String>, value: &str) {
    let value = value.trim_matches([' ', '\t']);
    match slot {
        Some(existing) => {
            existing.push_str(", ");
            existing.push_str(value);
        }
        None => *slot = Some(value.to_owned()),
    }
}

#[cfg(test)]
mod tests {
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
        assert_eq!(h.path, "/a/b.txt");
        assert_eq!(h.query.as_deref(), Some("x=1"));
        assert_eq!(h.minor_version, 1);
        assert!(h.keep_alive);
        assert_eq!(h.fields.user_agent.as_deref(), Some("t"));
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
                assert_eq!(head.path, "/1");
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
        assert_eq!((h.path.as_str(), h.query.as_deref()), ("/x%20y", Some("q")));
        let h = ok("GET HTTP://example.com HTTP/1.1\r\nHost: example.com\r\n\r\n");
        assert_eq!(h.path, "/");
        assert_eq!(ok("OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n").path, "*");
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
        assert_eq!(h.fields.if_none_match.as_deref(), Some("\"a\", \"b\""));
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
                    assert_eq!(head.fields.host.as_deref(), Some(*host));
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
            ok("GET / HTTP/1.1\r\nHost: \t h:1 \r\n\r\n")
                .fields
                .host
                .as_deref(),
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

    #[test]
    fn expect_continue_only_from_http11() {
        let h = ok("PUT / HTTP/1.1\r\nHost: h\r\nExpect: 100-Continue\r\n\r\n");
        assert!(h.expect_continue);
        let h = ok("PUT / HTTP/1.0\r\nExpect: 100-continue\r\n\r\n");
        assert!(!h.expect_continue);
    }

    #[test]
    fn leading_crlf_is_skipped() {
        let raw = "\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n";
        assert_eq!(ok(raw).path, "/");
    }
}
