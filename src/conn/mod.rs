//! One client connection as an explicit state machine: `State`, driven
//! by [`Connection::resume`] (readiness), [`Connection::complete`] (the
//! worker's answer), [`Connection::on_timeout`] and the shutdown calls.
//!
//! ```text
//!                  some bytes, not a whole head
//!   ┌──▶ Idle ─────────────────────────────────▶ ReadingHead
//!   │     │ a whole head                              │ a whole head
//!   │     └───────────────┬───────────────────────────┘
//!   │                     ├─ chunked body ─▶ ReadingBody
//!   │                     │                       │ body read to its end
//!   │                     ▼ no body, or a length  │
//!   │                 Dispatched ◀────────────────┘
//!   │                     │ the worker's answer (complete)
//!   │                     ▼
//!   │                  Writing ◀── refused (bad head, 413, bad chunked body,
//!   │                     │        408) from Idle, ReadingHead, ReadingBody
//!   │    ┌────────────────┼──────────────────────┐
//!   │    │ kept           │ kept, a Content-     │ closes after it:
//!   │    │                ▼ Length body to skip  ▼ half-close
//!   ├────┘          DiscardingBody           Lingering ── EOF, error or ──▶ Closed
//!   │                     │ skipped              ▲        LINGER_TIMEOUT
//!   └─────────────────────┘                      │
//!                           Idle, when shutdown begins (on_shutdown_lingering)
//! ```
//!
//! Writing and Lingering may also yield (their budget for the turn used)
//! and go on where they were at the next `resume`. Back in Idle, bytes
//! already buffered (pipelined requests) are parsed before reading again.
//! Straight to `Closed`, from the state named: EOF or a socket error
//! while reading or writing; Writing, after the answer to a request that
//! said `Connection: close` (or HTTP/1.0) and left nothing unread (the
//! client sends nothing more, so nothing can make the kernel reset the
//! response: no half-close and linger, as nginx); a timeout in Idle (keep-alive), Writing (`SEND_TIMEOUT`) or
//! DiscardingBody; Idle when shutdown begins (`on_shutdown`), or while
//! draining once the client has sent nothing more. A refusal always
//! closes after its answer: the rest of the byte stream can't be trusted.
//! Whether a response closes the connection is decided in one place,
//! `After`.
//!
//! The machine is sans-IO in the sense that matters: it talks to its socket
//! only through the small [`Transport`] trait, so the reactor drives it with
//! a real `mio::net::TcpStream`, the blocking models with a blocking
//! `std::net::TcpStream` (`models/blocking.rs`), and the fuzzers and unit
//! tests with an in-memory fake. It never blocks, never touches the file system and
//! never sees a thread: a complete head leaves as [`Action::Dispatch`] and
//! the answer comes back through [`Connection::complete`].
//!
//! One request is in flight per connection at a time; pipelined requests
//! wait, already read, in `buf` and are parsed as soon as the previous
//! response has been written. That keeps responses in request order by
//! construction and bounds memory: while a response is pending, nothing more
//! is read from the socket.
//!
//! Runs on: the thread that drives it (the reactor, or a blocking model's
//! connection thread).

use std::fs::File;
use std::io::{self, IoSlice};
use std::mem;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::access_log;
use crate::http::chunked::{ChunkedDecoder, Decoded};
use crate::http::errors::{self, error_response};
use crate::http::request::{self, BodyFraming, HeadScanner, Parsed, RequestHead, SpareHeads};
use crate::http::response::{
    rewrite_head_to_close, AccessRecord, Body, Chunk, Recycled, ReplyTo, Response, Status,
};
use crate::limits::{
    LINGER_READ_BUDGET, LINGER_TIMEOUT, MAX_DISCARDED_BODY, MAX_SPARE_HEADS, SEND_TIMEOUT,
    WRITE_BUDGET,
};
use crate::trace::{self, ConnTrace};

/// The socket operations a connection needs. Implemented for
/// `mio::net::TcpStream` by the reactor, for a TLS session over any
/// transport by `tls::stream`, and by fakes in tests and fuzzers.
///
/// Contract (edge-triggered readiness relies on it): a `read` that returns
/// fewer bytes than asked, or `WouldBlock`, has drained the source, so that
/// only a new readable event can bring more; a transport that buffers
/// input itself (TLS) keeps reading until that holds.
pub trait Transport {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize>;
    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize>;
    /// Sends `len` bytes of `file` from `offset` (see [`crate::sys::send_file`]).
    fn send_file(&mut self, file: &File, offset: u64, len: usize) -> io::Result<usize>;
    /// Half-closes: the peer sees EOF after the bytes already sent.
    fn shutdown_write(&mut self);

    /// Whether dropping the transport ends the stream cleanly by itself, so
    /// that a client known to send nothing more needs no half-close and
    /// linger: true of a TCP socket (`close` sends FIN after the queued
    /// response when nothing unread is left), not of TLS (`close_notify`
    /// must go first). The default lingers, as every close used to.
    fn drop_is_clean_close(&self) -> bool {
        false
    }

    /// Whether `send_file(file, offset, len)` would run without waiting for
    /// the disk. The reactor's transports probe the page cache, and a `false`
    /// makes the connection ask for [`Action::Warm`] instead of sending; the
    /// default (blocking drivers, whose thread may wait) says yes.
    fn file_ready(&mut self, _file: &File, _offset: u64, _len: usize) -> bool {
        true
    }

    /// Called after each call above. A non-blocking socket never waits, so
    /// what the caller put in `cx` for its turn (the time, whether the
    /// server is draining) is still true, and there is nothing to do. A
    /// blocking one may have slept in the call for seconds and must refresh
    /// them: else deadlines set after a long wait start in the past, and a
    /// head that arrived during a shutdown is answered as keep-alive.
    fn refresh(&self, _cx: &mut Cx<'_>) {}

    // Added for TLS; the defaults fit a plain socket.

    /// Sends what the transport buffered itself (TLS records the socket did
    /// not take: handshake messages, encrypted response bytes, close_notify).
    /// The connection calls it on every event before anything else, so bytes
    /// left behind by a `WouldBlock` go out on the next writable event even
    /// when the connection itself has nothing more to write. `WouldBlock`
    /// here is normal; any other error ends the connection.
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }

    /// True while a handshake is under way (no request bytes can come yet):
    /// an idle connection in this state is held to the head timeout.
    fn handshaking(&self) -> bool {
        false
    }

    /// The client's address as a trusted proxy in front reported it (PROXY
    /// protocol), once known; used instead of the socket's peer address.
    fn client_addr(&self) -> Option<IpAddr> {
        None
    }
}

/// The limits a connection enforces; copied from the configuration.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Longest request head accepted (→ 431, or 414 for the request line).
    pub max_head: usize,
    /// Total time a client may take to send one head, however slowly it
    /// trickles; a request body we read before answering gets as long again.
    pub header_timeout: Duration,
    /// How long an idle keep-alive connection is kept.
    pub keepalive_timeout: Duration,
}

/// What the reactor must do for this connection next.
#[derive(Debug)]
pub enum Action {
    /// Nothing until the next readiness event, completion or timeout.
    Wait,
    /// Run this request on the pool and call [`Connection::complete`] with the answer.
    Dispatch(Box<RequestHead>),
    /// It has used its budget for this turn (writing, or reading what a
    /// closing client still sends): call [`Connection::resume`] again on
    /// the next turn.
    Yield,
    /// Done: drop the connection (closing the socket and any open file).
    Close,
    /// The next bytes of the response's file are not in the page cache:
    /// have them read off this thread (the pool), then call
    /// [`Connection::warmed`]. Until then the connection sends nothing.
    Warm(WarmUp),
}

/// The range of a file to bring into the page cache before sending on.
#[derive(Debug)]
pub struct WarmUp {
    pub file: Arc<File>,
    pub offset: u64,
    pub len: u64,
}

/// What the reactor lends a connection for one call.
pub struct Cx<'a> {
    /// The time cached for this turn of the loop.
    pub now: Instant,
    pub limits: &'a Limits,
    /// Scratch space shared by all connections for reads, so that an idle
    /// connection owns no buffer at all.
    pub scratch: &'a mut [u8],
    /// The server is shutting down: finish the current response, then close.
    pub draining: bool,
    /// This call is for a readiness event that says the socket is readable.
    pub readable: bool,
    /// ... and that the peer has closed its side (EOF follows the data).
    pub read_closed: bool,
    /// Allocations that finished requests left behind, for the next ones.
    pub spares: &'a mut Spares,
}

/// What a driver keeps between requests so that a keep-alive request
/// allocates nothing: answered heads (the driver hands them back with
/// [`SpareHeads::put`] once the worker is done), the boxes responses were
/// written from, and the written responses' buffers ([`Recycled`]), which
/// the driver hands to the worker with the next request
/// ([`Spares::take_recycled`]). Shared by all of a driver's connections,
/// so an idle connection holds none; bounded by [`MAX_SPARE_HEADS`] each.
#[derive(Debug, Default)]
pub struct Spares {
    pub heads: SpareHeads,
    // The boxes are what is kept: each becomes a `State::Writing` again.
    #[allow(clippy::vec_box)]
    outgoing: Vec<Box<Outgoing>>,
    recycled: Vec<Recycled>,
}

impl Spares {
    fn put_outgoing(&mut self, mut out: Box<Outgoing>) {
        // The written response's buffers (head and chunk list) are kept
        // for a later response; the shared body in them is let go.
        let chunks = mem::take(&mut out.chunks);
        if self.recycled.len() < MAX_SPARE_HEADS {
            if let Some(recycled) = Recycled::from_written(chunks) {
                self.recycled.push(recycled);
            }
        }
        if self.outgoing.len() < MAX_SPARE_HEADS {
            out.log = None;
            self.outgoing.push(out);
        }
    }

    /// A written response's buffers to build the next response in, if any
    /// are kept.
    pub fn take_recycled(&mut self) -> Option<Recycled> {
        self.recycled.pop()
    }

    /// Keeps buffers taken with [`Spares::take_recycled`] and not used.
    pub fn put_recycled(&mut self, recycled: Recycled) {
        if self.recycled.len() < MAX_SPARE_HEADS {
            self.recycled.push(recycled);
        }
    }

    fn outgoing(
        &mut self,
        chunks: Vec<Chunk>,
        log: Option<Box<AccessRecord>>,
        after: After,
        now: Instant,
    ) -> Box<Outgoing> {
        let out = Outgoing {
            progress: now,
            chunks,
            next: 0,
            offset: 0,
            sent: 0,
            log,
            warming: false,
            after,
        };
        match self.outgoing.pop() {
            Some(mut spare) => {
                *spare = out;
                spare
            }
            None => Box::new(out),
        }
    }
}

/// A response being written: its chunks and how far we got.
#[derive(Debug)]
pub struct Outgoing {
    chunks: Vec<Chunk>,
    /// Index of the chunk being written.
    next: usize,
    /// Bytes of `chunks[next]` already written.
    offset: u64,
    /// Bytes written in total (for the access log).
    sent: u64,
    log: Option<Box<AccessRecord>>,
    /// An [`Action::Warm`] is out: send nothing until [`Connection::warmed`].
    warming: bool,
    /// What follows the response, and when the client last took bytes
    /// (kept here, not in `State`, to keep an idle connection small).
    after: After,
    progress: Instant,
}

/// What follows the response being prepared or written.
///
/// `close` is THE keep-alive decision: whether the connection persists
/// after this response. Everything else consults it. Its inputs, each
/// named where it is applied:
///
/// - the client's wish, read from its head by `http::request::parse`
///   (`RequestHead::keep_alive`: HTTP/1.1 unless `Connection: close`,
///   HTTP/1.0 only with `Connection: keep-alive`) → [`After::for_request`];
/// - a shutdown under way (`Cx::draining`) → [`After::for_request`], and
///   again when the answer arrives ([`Connection::complete`]) or before its
///   first byte is written (`write_response`);
/// - `Expect: 100-continue` with no body byte yet (`accept_head`);
/// - a refusal by the connection itself (bad head or body, timeout):
///   always closes (`start_error`);
/// - the worker's answer says close (`Response::close`: it closes when the
///   request did, or for its own reasons, e.g. out of descriptors) →
///   [`Connection::complete`].
///
/// The worker learns the decision through the head it receives
/// (`dispatch` writes it into `RequestHead::keep_alive`) and spells it in
/// the response head with `http::response::Persistence::for_request`.
///
/// Invariant once the response is `Writing`: `close` is true exactly when
/// its head says `Connection: close` (see [`Connection::start_writing`]).
#[derive(Clone, Copy, Debug)]
struct After {
    close: bool,
    /// Request-body bytes still to skip before the next head (at most
    /// [`MAX_DISCARDED_BODY`], so a `u32`, which keeps `State` small).
    skip_body: u32,
    /// Whether the client may send more after this response.
    more: MoreFromClient,
}

/// Whether the client may still send bytes after the response being
/// written: what decides, when the connection closes, between a plain close
/// and a half-close that lingers (reads until EOF) so that late bytes do
/// not make the kernel reset the response away.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum MoreFromClient {
    /// It may: a keep-alive request, a body we answered before reading, a
    /// byte stream we refused.
    Possible,
    /// Its request said it closes (`Connection: close`, or HTTP/1.0) and
    /// carried no body: it must send nothing more (RFC 9112 §9.6).
    None,
}

const _: () = assert!(MAX_DISCARDED_BODY <= u32::MAX as u64);

impl After {
    /// The decision for a request whose head (and body, if read) is in:
    /// the client's wish, unless the server is shutting down.
    fn for_request(head: &RequestHead, draining: bool) -> After {
        After {
            close: !head.keep_alive || draining,
            skip_body: 0,
            more: if head.keep_alive {
                MoreFromClient::Possible
            } else {
                MoreFromClient::None
            },
        }
    }

    /// A response after which the connection closes whatever was asked.
    fn closing() -> After {
        After {
            close: true,
            skip_body: 0,
            more: MoreFromClient::Possible,
        }
    }
}

#[derive(Debug)]
enum State {
    /// Between requests, nothing buffered.
    Idle {
        since: Instant,
    },
    /// Part of a head has arrived; `started` bounds the whole head (slowloris).
    ReadingHead {
        started: Instant,
    },
    /// Reading (and throwing away) a chunked request body before the
    /// request goes to a worker: its size is known only at its end, and a
    /// body over the limit or badly framed must be refused before any
    /// answer has promised to keep the connection.
    ReadingBody(Box<BodyRead>),
    /// A worker is answering the request.
    Dispatched {
        after: After,
    },
    /// Writing the response.
    Writing {
        out: Box<Outgoing>,
    },
    /// Throwing away a request body we don't need.
    DiscardingBody {
        remaining: u32,
        since: Instant,
    },
    /// Write side shut; reading until EOF or `until`.
    Lingering {
        until: Instant,
    },
    Closed,
}

/// The `ReadingBody` state, boxed: rare, and larger than the others.
#[derive(Debug)]
struct BodyRead {
    head: Box<RequestHead>,
    decoder: ChunkedDecoder,
    started: Instant,
}

/// Result of trying to read.
enum Read {
    Data(usize),
    WouldBlock,
    Eof,
}

pub struct Connection<T> {
    io: T,
    state: State,
    /// Received bytes not yet consumed: a partial head, or pipelined requests
    /// waiting their turn. Unallocated while idle.
    buf: Vec<u8>,
    /// Where the search for the end of the head in `buf` stopped.
    scan: HeadScanner,
    /// Heads parsed (complete or not) over the connection's life.
    parses: u32,
    /// The client's address, for the access log.
    peer: IpAddr,
    /// What the socket's receive side may hold; saves the `read` that would
    /// only say `WouldBlock` (one syscall per keep-alive request).
    inbound: Inbound,
    /// `--trace`: this connection's story so far; `None` (one word, no
    /// allocation) when tracing is off.
    trace: Option<Box<ConnTrace>>,
}

/// What we know of the bytes waiting in the socket.
///
/// A read that returns less than it asked for has emptied the socket, and
/// bytes arriving later raise a fresh edge-triggered event (epoll and kqueue
/// both do), so until that event we need not read. The exception is a peer
/// that has closed: its FIN came with the edge we already consumed, so we
/// must read on until we see the EOF.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Inbound {
    /// Nothing to read until the next readable event.
    Drained,
    /// There may be bytes to read.
    Pending,
    /// The peer closed: read until EOF whatever the reads return.
    Closing,
}

impl<T: Transport> Connection<T> {
    pub fn new(io: T, peer: IpAddr, now: Instant) -> Connection<T> {
        Connection {
            io,
            state: State::Idle { since: now },
            buf: Vec::new(),
            scan: HeadScanner::default(),
            parses: 0,
            peer,
            inbound: Inbound::Pending,
            trace: ConnTrace::accepted(peer),
        }
    }

    /// `--trace`: the request being answered, for the models' trace lines.
    pub fn trace_story(&self) -> Option<trace::Story> {
        self.trace.as_deref().and_then(ConnTrace::story)
    }

    /// The client's address: the one a trusted proxy reported, else the
    /// socket's peer.
    pub fn peer(&self) -> IpAddr {
        self.io.client_addr().unwrap_or(self.peer)
    }

    pub fn is_closed(&self) -> bool {
        matches!(self.state, State::Closed)
    }

    /// Between requests with nothing buffered (what a shutdown lets go at
    /// once, and where a blocking driver waits for the next request).
    pub fn is_idle(&self) -> bool {
        matches!(self.state, State::Idle { .. })
    }

    /// The transport, for a driver that configures its socket between calls
    /// (the blocking models set its timeouts from [`Connection::deadline`]).
    pub fn transport_mut(&mut self) -> &mut T {
        &mut self.io
    }

    /// Bytes buffered but not parsed yet (tests and fuzzers check its bound).
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Memory the read buffer holds (tests check an idle connection holds
    /// none).
    pub fn buffer_capacity(&self) -> usize {
        self.buf.capacity()
    }

    /// How many times a head was handed to the parser (tests and fuzzers
    /// check that it stays a small constant per head, however the head was
    /// split into reads).
    pub fn parse_attempts(&self) -> u32 {
        self.parses
    }

    /// When the reactor must call [`Connection::on_timeout`], if ever.
    pub fn deadline(&self, limits: &Limits) -> Option<Instant> {
        match &self.state {
            // A TLS handshake in progress is bounded like a request head.
            State::Idle { since } if self.io.handshaking() => {
                Some(*since + limits.keepalive_timeout.min(limits.header_timeout))
            }
            State::Idle { since } => Some(*since + limits.keepalive_timeout),
            State::ReadingHead { started } => Some(*started + limits.header_timeout),
            State::ReadingBody(body) => Some(body.started + limits.header_timeout),
            State::DiscardingBody { since, .. } => Some(*since + limits.header_timeout),
            State::Writing { out } => Some(out.progress + SEND_TIMEOUT),
            State::Lingering { until } => Some(*until),
            State::Dispatched { .. } | State::Closed => None,
        }
    }

    /// Called on every readiness event (readable or writable, spurious ones
    /// included) and after a yield: makes all the progress the socket allows.
    pub fn resume(&mut self, cx: &mut Cx<'_>) -> Action {
        if cx.read_closed {
            self.inbound = Inbound::Closing;
        } else if cx.readable && self.inbound == Inbound::Drained {
            self.inbound = Inbound::Pending;
        }
        if let Err(e) = self.io.flush() {
            if e.kind() != io::ErrorKind::WouldBlock && !self.is_closed() {
                log::debug!("{}: flush failed: {e}", self.peer());
                self.state = State::Closed;
            }
        }
        loop {
            let step = match &mut self.state {
                State::Idle { .. } | State::ReadingHead { .. } => self.read_head(cx),
                State::ReadingBody(_) => self.read_body(cx),
                State::DiscardingBody { .. } => self.discard_body(cx),
                State::Dispatched { .. } => return Action::Wait,
                State::Writing { .. } => self.write_response(cx),
                State::Lingering { .. } => self.linger(cx),
                State::Closed => return Action::Close,
            };
            if let Some(action) = step {
                return action;
            }
        }
    }

    /// The worker's answer to the dispatched request.
    pub fn complete(&mut self, response: Response, cx: &mut Cx<'_>) -> Action {
        let State::Dispatched { mut after } = self.state else {
            // Not waiting for an answer (cannot happen: the reactor drops
            // completions whose generation is stale). Ignore it.
            return Action::Wait;
        };
        // Shutdown may have begun while the worker built a head that keeps
        // the connection; `start_writing` makes the head say what we do.
        after.close |= response.close || cx.draining;
        self.start_writing(response, after, cx);
        self.resume(cx)
    }

    /// The warm-up asked for with [`Action::Warm`] is done (or failed: then
    /// `sendfile` meets the error itself): send on.
    pub fn warmed(&mut self, cx: &mut Cx<'_>) -> Action {
        if let State::Writing { out, .. } = &mut self.state {
            out.warming = false;
        }
        self.resume(cx)
    }

    /// The deadline from [`Connection::deadline`] has passed.
    pub fn on_timeout(&mut self, cx: &mut Cx<'_>) -> Action {
        match self.deadline(cx.limits) {
            Some(deadline) if deadline <= cx.now => {}
            _ => return Action::Wait,
        }
        // An answer to HEAD has no body, even an error (RFC 9110 §9.3.2).
        let (what, body) = match &self.state {
            State::ReadingHead { .. } => ("request head", refused_body(&self.buf)),
            State::ReadingBody(body) => ("request body", Body::for_method(body.head.method)),
            _ => {
                self.state = State::Closed;
                return Action::Close;
            }
        };
        log::info!("{}: {what} not complete in time; closing", self.peer());
        if let Some(t) = &mut self.trace {
            t.stage(format_args!("{what} not complete in time"));
        }
        self.buf = Vec::new();
        let response = error_response(Status::REQUEST_TIMEOUT, ReplyTo::refusal(body), &[]);
        self.start_error(response, None, cx);
        self.resume(cx)
    }

    /// Shutdown began: an idle connection closes now, busy ones finish their
    /// response first (see `Cx::draining`).
    pub fn on_shutdown(&mut self) -> Action {
        match self.state {
            State::Idle { .. } | State::Closed => {
                self.state = State::Closed;
                Action::Close
            }
            _ => Action::Wait,
        }
    }

    /// Like [`Connection::on_shutdown`], but an idle connection half-closes
    /// and lingers (reads and discards until EOF or [`LINGER_TIMEOUT`])
    /// instead of closing: a request the client sent on it at that moment
    /// meets a FIN (which clients retry on a new connection), not a reset.
    pub fn on_shutdown_lingering(&mut self, now: Instant) -> Action {
        match self.state {
            State::Idle { .. } if self.buf.is_empty() => {
                self.io.shutdown_write();
                self.state = State::Lingering {
                    until: now + LINGER_TIMEOUT,
                };
                Action::Wait
            }
            _ => self.on_shutdown(),
        }
    }

    /// Idle or ReadingHead: parse what is buffered when it is worth it,
    /// else read more.
    fn read_head(&mut self, cx: &mut Cx<'_>) -> Option<Action> {
        if !self.buf.is_empty() {
            if let Some(t) = &mut self.trace {
                t.pipelined();
            }
            // Parse only when the scanner saw a landmark (or at the limit):
            // a head trickling in byte by byte is not re-parsed per byte.
            if self.scan.scan(&self.buf) || self.buf.len() >= cx.limits.max_head {
                self.parses = self.parses.saturating_add(1);
                match request::parse_with(
                    &self.buf,
                    cx.limits.max_head,
                    &mut cx.spares.heads,
                    kept_fields(),
                ) {
                    Ok(Parsed::Complete { head, len }) => {
                        self.buf.drain(..len);
                        return self.accept_head(head, cx);
                    }
                    Ok(Parsed::Partial) => {}
                    Err(e) => {
                        self.refuse_head(e, cx);
                        return None;
                    }
                }
            }
            if let State::Idle { .. } = self.state {
                self.state = State::ReadingHead { started: cx.now };
            }
        }
        match self.read_into_scratch(cx) {
            Err(_) | Ok(Read::Eof) => {
                // Gone between requests (or mid-head): nothing to answer.
                self.state = State::Closed;
                Some(Action::Close)
            }
            Ok(Read::WouldBlock) if cx.draining && self.buf.is_empty() => {
                // Between requests during shutdown, and the client has sent
                // nothing more: nothing is lost by closing. (A request that
                // did arrive is answered, with `Connection: close`.)
                self.state = State::Closed;
                Some(Action::Close)
            }
            Ok(Read::WouldBlock) => Some(Action::Wait),
            Ok(Read::Data(n)) => {
                if let Some(t) = &mut self.trace {
                    t.bytes_read(n);
                }
                // The common case: a whole head in one read with nothing
                // buffered before it. Parse it straight from scratch space
                // and copy only leftovers (pipelined requests). With nothing
                // buffered the scanner is fresh, and a fresh scanner asks for
                // a parse on its first look anyway: it is only run when that
                // parse finds a partial head, to find the landmarks of the
                // bytes that follow.
                if self.buf.is_empty() {
                    self.parses = self.parses.saturating_add(1);
                    let bytes = &cx.scratch[..n];
                    match request::parse_with(
                        bytes,
                        cx.limits.max_head,
                        &mut cx.spares.heads,
                        kept_fields(),
                    ) {
                        Ok(Parsed::Complete { head, len }) => {
                            self.buf.extend_from_slice(&cx.scratch[len..n]);
                            return self.accept_head(head, cx);
                        }
                        Ok(Parsed::Partial) => {
                            self.scan.scan(&cx.scratch[..n]);
                        }
                        Err(e) => {
                            // `refuse_head` looks at the refused bytes (is it a HEAD?).
                            self.buf.extend_from_slice(&cx.scratch[..n]);
                            self.refuse_head(e, cx);
                            return None;
                        }
                    }
                }
                // The scanner's position is valid for `buf` too: it now
                // holds the same bytes, or more at the end.
                self.buf.extend_from_slice(&cx.scratch[..n]);
                None
            }
        }
    }

    /// A complete head: decide what follows it, and hand it to a worker
    /// (or read its chunked body first).
    fn accept_head(&mut self, head: Box<RequestHead>, cx: &mut Cx<'_>) -> Option<Action> {
        self.scan = HeadScanner::default();
        if let Some(t) = &mut self.trace {
            t.stage(format_args!("head complete: {}", head.request_line()));
        }
        let mut after = After::for_request(&head, cx.draining);
        // Bytes that follow the head before we have answered anything can
        // only be its body: a client may send it without waiting for
        // "100 Continue", but it cannot know yet whether to skip it.
        let body_started = !self.buf.is_empty();
        match head.body {
            BodyFraming::None => {}
            BodyFraming::Length(n) if n > MAX_DISCARDED_BODY => {
                let reply = ReplyTo::refusal(Body::for_method(head.method));
                let response = error_response(Status::CONTENT_TOO_LARGE, reply, &[]);
                self.start_error(response, Some(&head), cx);
                return None;
            }
            // `Expect: 100-continue` and no body byte yet: we answer with
            // the final response at once (RFC 9110 §10.1.1 allows it) and
            // don't send "100 Continue". Then the client may send the body
            // (curl does after a 2xx), or skip it and send its next
            // request, and from the bytes alone we cannot tell which: read
            // as a body, a skipped body eats the next request; read as a
            // request, a body the client chose to send is parsed as one
            // (smuggling). So the answer says `Connection: close`, and the
            // lingering close swallows whatever follows. This is what RFC
            // 9110 asks of a server that answers before reading the body:
            // say whether it closes. The client reconnects for its next
            // request; an Expect request whose body has begun arriving is
            // unambiguous and keeps the connection like any other.
            _ if head.expect_continue && !body_started => {
                after.close = true;
                after.more = MoreFromClient::Possible;
            }
            // Not over MAX_DISCARDED_BODY (above), so it fits.
            BodyFraming::Length(n) => after.skip_body = n as u32,
            BodyFraming::Chunked => {
                self.state = State::ReadingBody(Box::new(BodyRead {
                    head,
                    decoder: ChunkedDecoder::new(MAX_DISCARDED_BODY),
                    started: cx.now,
                }));
                return None;
            }
        }
        Some(self.dispatch(head, after))
    }

    fn dispatch(&mut self, mut head: Box<RequestHead>, after: After) -> Action {
        // The worker builds the head: it must say what we will do.
        head.keep_alive = !after.close;
        self.state = State::Dispatched { after };
        Action::Dispatch(head)
    }

    /// A head we refuse: answer with its status code and close, since the
    /// rest of the byte stream can't be trusted.
    fn refuse_head(&mut self, e: request::ParseError, cx: &mut Cx<'_>) {
        let status = errors::for_parse_error(e);
        log::info!("{}: bad request head ({e:?}) → {}", self.peer(), status.0);
        if let Some(t) = &mut self.trace {
            t.stage(format_args!("head refused ({e:?}) → {}", status.0));
        }
        let reply = ReplyTo::refusal(refused_body(&self.buf));
        self.buf = Vec::new();
        self.scan = HeadScanner::default();
        self.start_error(error_response(status, reply, &[]), None, cx);
    }

    /// ReadingBody: feed the decoder what is buffered, else read more; at
    /// the body's end the request goes to a worker.
    fn read_body(&mut self, cx: &mut Cx<'_>) -> Option<Action> {
        let decoded = if self.buf.is_empty() {
            let n = match self.read_into_scratch(cx) {
                Ok(Read::Data(n)) => n,
                Ok(Read::WouldBlock) => return Some(Action::Wait),
                Ok(Read::Eof) | Err(_) => {
                    log::debug!("{}: gone in the middle of a request body", self.peer());
                    self.state = State::Closed;
                    return Some(Action::Close);
                }
            };
            let State::ReadingBody(body) = &mut self.state else {
                return None;
            };
            // Straight from scratch space: the body is never copied.
            let decoded = body.decoder.feed(&cx.scratch[..n]);
            if let Ok(Decoded::Done(used)) = decoded {
                self.buf.extend_from_slice(&cx.scratch[used..n]);
            }
            decoded
        } else {
            let State::ReadingBody(body) = &mut self.state else {
                return None;
            };
            let decoded = body.decoder.feed(&self.buf);
            match decoded {
                Ok(Decoded::Done(used)) => drop(self.buf.drain(..used)),
                _ => self.buf.clear(),
            }
            decoded
        };
        match decoded {
            Ok(Decoded::NeedMore) => None,
            Ok(Decoded::Done(_)) => {
                let State::ReadingBody(body) = mem::replace(&mut self.state, State::Closed) else {
                    return None;
                };
                let after = After::for_request(&body.head, cx.draining);
                Some(self.dispatch(body.head, after))
            }
            Err(e) => {
                let status = errors::for_chunked_error(e);
                let refused = match mem::replace(&mut self.state, State::Closed) {
                    State::ReadingBody(body) => Some(body),
                    _ => None,
                };
                log::info!("{}: bad chunked body ({e:?}) → {}", self.peer(), status.0);
                self.buf = Vec::new();
                let response = error_response(status, ReplyTo::refusal(Body::Full), &[]);
                self.start_error(response, refused.as_ref().map(|b| &*b.head), cx);
                None
            }
        }
    }

    /// Answers with a refusal and closes after it; `request` is the head
    /// it refuses, if one was parsed (for the access log).
    fn start_error(
        &mut self,
        mut response: Response,
        request: Option<&RequestHead>,
        cx: &mut Cx<'_>,
    ) {
        // With the log off, not even the request line is formatted.
        if access_log::enabled() {
            let line = request.map_or_else(|| "-".to_owned(), RequestHead::request_line);
            response.log = access_log::record(self.peer(), &line, response.status, None, None);
        }
        self.start_writing(response, After::closing(), cx);
    }

    /// Establishes the invariant of [`After`]: a response after which the
    /// connection closes says so, even when the decision to close came
    /// after its head was built.
    fn start_writing(&mut self, mut response: Response, after: After, cx: &mut Cx<'_>) {
        if after.close && !response.close {
            if let Some(Chunk::Bytes(head)) = response.chunks.first_mut() {
                rewrite_head_to_close(head);
            }
        }
        let out = cx
            .spares
            .outgoing(response.chunks, response.log, after, cx.now);
        self.state = State::Writing { out };
    }

    fn write_response(&mut self, cx: &mut Cx<'_>) -> Option<Action> {
        let State::Writing { out } = &mut self.state else {
            return None;
        };
        if cx.draining && !out.after.close && out.sent == 0 {
            // Shutdown began after this response was ready (it was waiting
            // for a full socket buffer): nothing of it is out yet, so it can
            // still say that the connection closes after it. Once the head
            // is on the wire it can't, and the connection instead closes
            // when it is next idle, as a keep-alive timeout would.
            if let Some(Chunk::Bytes(head)) = out.chunks.first_mut() {
                rewrite_head_to_close(head);
            }
            out.after.close = true;
        }
        let before = out.sent;
        let result = write_out(&mut self.io, out);
        self.io.refresh(cx);
        if let Some(t) = &mut self.trace {
            t.wrote(before, out.sent);
        }
        if out.sent > before {
            out.progress = cx.now;
        }
        match result {
            Ok(Written::All) => {}
            Ok(Written::Budget) => return Some(Action::Yield),
            Ok(Written::Cold(warm)) => return Some(Action::Warm(warm)),
            // A readiness event while the pool warms the file: nothing to do.
            Ok(Written::Warming) => return Some(Action::Wait),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Some(Action::Wait),
            Err(e) => {
                // Reset by the peer, or the file shrank under us: the
                // response can't be finished, so the connection ends.
                log::debug!(
                    "{}: write failed: {e}",
                    self.io.client_addr().unwrap_or(self.peer)
                );
                if let Some(t) = &mut self.trace {
                    t.finished(out.sent, "write failed");
                }
                access_log::write(out.log.take(), out.sent);
                self.state = State::Closed;
                return Some(Action::Close);
            }
        }
        access_log::write(out.log.take(), out.sent);
        if let Some(t) = &mut self.trace {
            t.finished(out.sent, "last byte written");
        }
        let after = out.after;
        let nothing_unread = after.skip_body == 0 && self.buf.is_empty();
        let next = if after.close
            && after.more == MoreFromClient::None
            && nothing_unread
            && self.io.drop_is_clean_close()
        {
            // The client sends nothing more: no bytes can arrive to make
            // the kernel reset the response, so a plain close is as safe
            // as a linger, without its `shutdown`, EOF read and wake-up.
            State::Closed
        } else if after.close {
            self.io.shutdown_write();
            State::Lingering {
                until: cx.now + LINGER_TIMEOUT,
            }
        } else if after.skip_body > 0 {
            State::DiscardingBody {
                remaining: after.skip_body,
                since: cx.now,
            }
        } else {
            self.release_empty_buffer();
            State::Idle { since: cx.now }
        };
        if let State::Writing { out, .. } = mem::replace(&mut self.state, next) {
            cx.spares.put_outgoing(out);
        }
        None
    }

    /// Between requests: an idle connection holds no buffer (unless
    /// pipelined bytes wait in it).
    fn go_idle(&mut self, now: Instant) {
        self.release_empty_buffer();
        self.state = State::Idle { since: now };
    }

    fn release_empty_buffer(&mut self) {
        if self.buf.is_empty() {
            // Give the memory of a long head, or of a skipped body, back.
            self.buf = Vec::new();
        }
    }

    fn discard_body(&mut self, cx: &mut Cx<'_>) -> Option<Action> {
        let State::DiscardingBody { remaining, .. } = &mut self.state else {
            return None;
        };
        let from_buf = (*remaining as usize).min(self.buf.len());
        self.buf.drain(..from_buf);
        *remaining -= from_buf as u32;
        if *remaining == 0 {
            self.go_idle(cx.now);
            return None;
        }
        match self.read_into_scratch(cx) {
            Ok(Read::Data(n)) => self.buf.extend_from_slice(&cx.scratch[..n]),
            Ok(Read::WouldBlock) => return Some(Action::Wait),
            Ok(Read::Eof) | Err(_) => {
                self.state = State::Closed;
                return Some(Action::Close);
            }
        }
        None
    }

    /// Lingering: read and drop what the client still sends, until EOF or
    /// the deadline, at most [`LINGER_READ_BUDGET`] bytes per turn.
    fn linger(&mut self, cx: &mut Cx<'_>) -> Option<Action> {
        let State::Lingering { until } = self.state else {
            return None;
        };
        // Checked here too, not only by the timer: a client that floods
        // keeps this connection yielding and being resumed.
        if until <= cx.now {
            self.state = State::Closed;
            return Some(Action::Close);
        }
        let mut taken = 0;
        loop {
            match self.read_into_scratch(cx) {
                Ok(Read::Data(n)) => {
                    taken += n;
                    if taken >= LINGER_READ_BUDGET {
                        return Some(Action::Yield);
                    }
                }
                Ok(Read::WouldBlock) => return Some(Action::Wait),
                Ok(Read::Eof) | Err(_) => {
                    self.state = State::Closed;
                    return Some(Action::Close);
                }
            }
        }
    }

    /// One read into the shared scratch buffer; `Interrupted` is retried.
    fn read_into_scratch(&mut self, cx: &mut Cx<'_>) -> io::Result<Read> {
        if self.inbound == Inbound::Drained {
            return Ok(Read::WouldBlock);
        }
        loop {
            let result = self.io.read(cx.scratch);
            self.io.refresh(cx);
            return match result {
                Ok(0) => Ok(Read::Eof),
                Ok(n) => {
                    if self.inbound == Inbound::Pending && n < cx.scratch.len() {
                        self.inbound = Inbound::Drained;
                    }
                    Ok(Read::Data(n))
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.inbound = Inbound::Drained;
                    Ok(Read::WouldBlock)
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => Err(e),
            };
        }
    }
}

/// The fields a parsed head keeps: those only the access log shows
/// (`Referer`, `User-Agent`) only while it is on. Asked per head, as the
/// worker asks whether to log, so the two always agree.
fn kept_fields() -> request::Keep {
    if access_log::enabled() {
        request::Keep::All
    } else {
        request::Keep::ForAnswer
    }
}

/// Whether the answer to a head we could not parse carries a body: not if
/// the bytes start like a HEAD request (RFC 9110 §9.3.2).
fn refused_body(buf: &[u8]) -> Body {
    if request::starts_with_head_method(buf) {
        Body::HeadOnly
    } else {
        Body::Full
    }
}

/// How a write attempt ended without error.
enum Written {
    All,
    /// [`WRITE_BUDGET`] used up; more remains.
    Budget,
    /// The file's next bytes are not cached: warm them, then go on.
    Cold(WarmUp),
    /// Waiting for the warm-up asked for earlier.
    Warming,
}

/// How much of a cold file one [`Action::Warm`] brings in: two write budgets,
/// so the warm-up is a rare round trip, not one per `sendfile`.
pub const WARM_WINDOW: u64 = 2 * WRITE_BUDGET;

/// Writes as much of `out` as the socket takes: runs of in-memory chunks
/// with one `writev`, file chunks with `sendfile`.
fn write_out<T: Transport>(io: &mut T, out: &mut Outgoing) -> io::Result<Written> {
    /// At most this many slices per `writev`: a head, a part header and a
    /// small body is the common case.
    const MAX_SLICES: usize = 8;
    let start = out.sent;
    while out.next < out.chunks.len() {
        if out.sent - start >= WRITE_BUDGET {
            return Ok(Written::Budget);
        }
        let result = match &out.chunks[out.next] {
            Chunk::Bytes(_) | Chunk::Shared(_) => {
                let mut slices = [IoSlice::new(&[]); MAX_SLICES];
                let mut count = 0;
                for (i, chunk) in out.chunks[out.next..].iter().enumerate().take(MAX_SLICES) {
                    let Some(bytes) = chunk.memory() else { break };
                    let skip = if i == 0 { out.offset as usize } else { 0 };
                    slices[count] = IoSlice::new(&bytes[skip..]);
                    count += 1;
                }
                io.write_vectored(&slices[..count])
            }
            Chunk::File { file, offset, len } => {
                let remaining = len - out.offset;
                let want = remaining.min(WRITE_BUDGET) as usize;
                if out.warming {
                    return Ok(Written::Warming);
                }
                if !io.file_ready(file, offset + out.offset, want) {
                    let warm = WarmUp {
                        file: Arc::clone(file),
                        offset: offset + out.offset,
                        len: remaining.min(WARM_WINDOW),
                    };
                    out.warming = true;
                    return Ok(Written::Cold(warm));
                }
                match io.send_file(file, offset + out.offset, want) {
                    Ok(0) if want > 0 => Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "file is shorter than when it was opened",
                    )),
                    other => other,
                }
            }
        };
        match result {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => advance(out, n as u64),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(Written::All)
}

/// Moves the write position `n` bytes forward, across chunk boundaries.
fn advance(out: &mut Outgoing, mut n: u64) {
    out.sent += n;
    while n > 0 && out.next < out.chunks.len() {
        let left = out.chunks[out.next].len() - out.offset;
        if n >= left {
            n -= left;
            out.next += 1;
            out.offset = 0;
        } else {
            out.offset += n;
            n = 0;
        }
    }
    // Skip empty chunks so that "all written" is simply `next == len`.
    while out.next < out.chunks.len() && out.chunks[out.next].is_empty() {
        out.next += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::response::{HeadBuilder, Persistence};
    use std::collections::VecDeque;
    use std::net::Ipv4Addr;

    /// Reads beyond this mean the machine spins: the test fails instead of
    /// hanging.
    const READ_GUARD: usize = 100_000;

    /// An in-memory socket.
    struct Fake {
        /// What the client has sent and we have not read.
        input: VecDeque<u8>,
        /// The client sends without end: every read fills the buffer.
        flood: bool,
        /// Bytes the socket accepts before `WouldBlock`.
        writable: usize,
        output: Vec<u8>,
        shut: bool,
        reads: usize,
        /// What `drop_is_clean_close` answers (a TCP socket: true).
        clean_close: bool,
    }

    impl Fake {
        fn new() -> Fake {
            Fake {
                input: VecDeque::new(),
                flood: false,
                writable: usize::MAX,
                output: Vec::new(),
                shut: false,
                reads: 0,
                clean_close: false,
            }
        }
    }

    impl Transport for Fake {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.reads += 1;
            assert!(self.reads < READ_GUARD, "the connection keeps reading");
            if self.flood {
                buf.fill(b'x');
                return Ok(buf.len());
            }
            if self.input.is_empty() {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            let n = buf.len().min(self.input.len());
            for (slot, b) in buf.iter_mut().zip(self.input.drain(..n)) {
                *slot = b;
            }
            Ok(n)
        }

        fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
            if self.writable == 0 {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            let mut n = 0;
            for b in bufs {
                let take = b.len().min(self.writable - n);
                self.output.extend_from_slice(&b[..take]);
                n += take;
            }
            self.writable -= n;
            Ok(n)
        }

        fn send_file(&mut self, _: &File, _: u64, _: usize) -> io::Result<usize> {
            Err(io::ErrorKind::Unsupported.into())
        }

        fn shutdown_write(&mut self) {
            self.shut = true;
        }

        fn drop_is_clean_close(&self) -> bool {
            self.clean_close
        }
    }

    struct Harness {
        conn: Connection<Fake>,
        now: Instant,
        limits: Limits,
        scratch: Vec<u8>,
        spares: Spares,
        draining: bool,
    }

    impl Harness {
        fn new() -> Harness {
            let now = Instant::now();
            Harness {
                conn: Connection::new(Fake::new(), IpAddr::V4(Ipv4Addr::LOCALHOST), now),
                now,
                limits: Limits {
                    max_head: 8192,
                    header_timeout: Duration::from_secs(10),
                    keepalive_timeout: Duration::from_secs(5),
                },
                scratch: vec![0; 16 * 1024],
                spares: Spares::default(),
                draining: false,
            }
        }

        fn call(&mut self, f: impl FnOnce(&mut Connection<Fake>, &mut Cx<'_>) -> Action) -> Action {
            let mut cx = Cx {
                now: self.now,
                limits: &self.limits,
                scratch: &mut self.scratch,
                draining: self.draining,
                readable: true,
                read_closed: false,
                spares: &mut self.spares,
            };
            f(&mut self.conn, &mut cx)
        }

        /// The client sends `bytes`; a readable event follows.
        fn send(&mut self, bytes: &[u8]) -> Action {
            self.conn.io.input.extend(bytes);
            self.call(|c, cx| c.resume(cx))
        }

        /// The worker answers 200 with a body, keeping the connection if
        /// the request allows.
        fn answer(&mut self, head: &RequestHead) -> Action {
            let mut b = HeadBuilder::new(Status::OK);
            b.content_length(2);
            let mut bytes = b.finish(Persistence::for_request(head));
            bytes.extend_from_slice(b"ok");
            let response = Response {
                status: Status::OK,
                chunks: vec![Chunk::Bytes(bytes)],
                close: !head.keep_alive,
                log: None,
            };
            self.call(|c, cx| c.complete(response, cx))
        }

        fn output(&self) -> String {
            String::from_utf8_lossy(&self.conn.io.output).into_owned()
        }
    }

    fn dispatched(action: Action) -> Box<RequestHead> {
        match action {
            Action::Dispatch(head) => head,
            other => panic!("expected a dispatch, got {other:?}"),
        }
    }

    /// Regression (partial head re-parsed from its start on every read): a
    /// 6.5 KB head sent a byte at a time is parsed a few times, not once
    /// per byte (which cost ~0.1 s of CPU per head).
    #[test]
    fn partial_head_sent_a_byte_at_a_time_is_not_reparsed_per_byte() {
        let mut h = Harness::new();
        let head = format!(
            "GET /slow HTTP/1.1\r\nHost: h\r\nX-Pad: {}\r\n\r\n",
            "p".repeat(6500)
        );
        let (last, first) = head.as_bytes().split_last().unwrap();
        for b in first {
            assert!(matches!(h.send(&[*b]), Action::Wait));
        }
        let req = dispatched(h.send(&[*last]));
        assert_eq!(req.path(), "/slow");
        assert!(
            h.conn.parse_attempts() <= 3,
            "{} parses for one head",
            h.conn.parse_attempts()
        );
    }

    /// A bad request line is still refused as soon as it ends, before the
    /// rest of the head arrives.
    #[test]
    fn bad_request_line_is_refused_before_the_head_ends() {
        let mut h = Harness::new();
        for b in b"GET /pot HTTP/3.0\r\n" {
            h.send(&[*b]);
        }
        assert!(h.output().starts_with("HTTP/1.1 505 "), "{}", h.output());
    }

    /// Regression (lingering reads without a budget and without looking at
    /// its deadline): a client that floods after a closing response gets a
    /// bounded share of each turn and is cut off at the linger deadline.
    #[test]
    fn lingering_flood_yields_each_turn_and_ends_at_its_deadline() {
        let mut h = Harness::new();
        let req = dispatched(h.send(b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"));
        h.conn.io.flood = true;
        let mut action = h.answer(&req);
        assert!(h.conn.io.shut, "close response, then half-close");
        let mut turns = 0;
        while matches!(action, Action::Yield) {
            let reads = h.conn.io.reads;
            action = h.call(|c, cx| c.resume(cx));
            let per_turn = (h.conn.io.reads - reads) * h.scratch.len();
            assert!(per_turn <= LINGER_READ_BUDGET + h.scratch.len());
            turns += 1;
            if turns == 3 {
                h.now += LINGER_TIMEOUT;
            }
            assert!(turns < 10, "still lingering after its deadline");
        }
        assert!(matches!(action, Action::Close), "{action:?}");
        assert!(h.conn.is_closed());
    }

    /// Regression (a response in flight when shutdown begins lacks
    /// `Connection: close`, yet the connection closes after it): the worker
    /// built a keep-alive head, the answer arrives while draining.
    #[test]
    fn response_completed_during_shutdown_says_connection_close() {
        for http10 in [false, true] {
            let mut h = Harness::new();
            let request: &[u8] = if http10 {
                b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"
            } else {
                b"GET / HTTP/1.1\r\nHost: h\r\n\r\n"
            };
            let req = dispatched(h.send(request));
            assert!(req.keep_alive);
            h.draining = true;
            h.answer(&req);
            let out = h.output();
            assert!(out.contains("\r\nConnection: close\r\n"), "{out}");
            assert!(!out.contains("keep-alive"), "{out}");
            assert!(out.ends_with("\r\n\r\nok"), "{out}");
            assert!(h.conn.io.shut, "closes after it");
        }
    }

    /// Regression (every `Connection: close` response half-closed and
    /// lingered for the client's EOF: a `shutdown`, a read and a wake-up per
    /// connection beyond nginx's): after the answer to a client that said it
    /// closes and sent nothing more, the connection closes at once; whenever
    /// the client may still send (keep-alive request closed by us, a body
    /// not read, pipelined bytes, TLS) it still half-closes and lingers.
    #[test]
    fn client_that_closes_and_sent_nothing_more_is_closed_without_lingering() {
        let table: &[(&[u8], bool, bool)] = &[
            // (request bytes, draining, plain close expected)
            (
                b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
                false,
                true,
            ),
            (b"GET / HTTP/1.0\r\n\r\n", false, true),
            (
                b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
                true,
                true,
            ),
            // Closed by us: the client may have sent its next request.
            (b"GET / HTTP/1.1\r\nHost: h\r\n\r\n", true, false),
            // A body not yet read.
            (
                b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\nContent-Length: 9\r\n\r\n",
                false,
                false,
            ),
            // Bytes after the head, against its word.
            (
                b"GET / HTTP/1.0\r\n\r\nGET / HTTP/1.0\r\n\r\n",
                false,
                false,
            ),
        ];
        for &(request, draining, plain) in table {
            let mut h = Harness::new();
            h.conn.io.clean_close = true;
            let req = dispatched(h.send(request));
            h.draining = draining;
            let action = h.answer(&req);
            let what = String::from_utf8_lossy(request);
            assert!(h.output().ends_with("\r\n\r\nok"), "{what}");
            if plain {
                assert!(matches!(action, Action::Close), "{what}: {action:?}");
                assert!(!h.conn.io.shut, "{what}: half-closed");
            } else {
                assert!(h.conn.io.shut, "{what}: not half-closed");
                assert!(!matches!(action, Action::Close), "{what}: {action:?}");
            }
        }
        // A transport whose drop is not a clean close (TLS) always lingers.
        let mut h = Harness::new();
        let req = dispatched(h.send(b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"));
        let action = h.answer(&req);
        assert!(
            h.conn.io.shut && matches!(action, Action::Wait),
            "{action:?}"
        );
    }

    /// Same, for a response that was ready but waiting for the socket when
    /// shutdown began.
    #[test]
    fn response_not_yet_sent_when_shutdown_begins_says_connection_close() {
        let mut h = Harness::new();
        let req = dispatched(h.send(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n"));
        h.conn.io.writable = 0;
        assert!(matches!(h.answer(&req), Action::Wait));
        h.draining = true;
        h.conn.io.writable = usize::MAX;
        h.call(|c, cx| c.resume(cx));
        let out = h.output();
        assert!(out.contains("\r\nConnection: close\r\n"), "{out}");
        assert!(h.conn.io.shut);
    }

    /// A keep-alive response already on the wire when shutdown begins
    /// can't be changed: the connection closes once idle, and a request
    /// that arrives meanwhile is answered with `Connection: close`.
    #[test]
    fn request_arriving_after_shutdown_began_is_answered_with_close() {
        let mut h = Harness::new();
        let req = dispatched(h.send(b"GET /1 HTTP/1.1\r\nHost: h\r\n\r\n"));
        h.answer(&req);
        assert!(!h.output().contains("close"));
        h.draining = true;
        let req = dispatched(h.send(b"GET /2 HTTP/1.1\r\nHost: h\r\n\r\n"));
        assert!(!req.keep_alive);
        h.answer(&req);
        assert!(h.output().ends_with("Connection: close\r\n\r\nok"));
        // Nothing more arrives: an idle draining connection closes.
        let mut h = Harness::new();
        let req = dispatched(h.send(b"GET /1 HTTP/1.1\r\nHost: h\r\n\r\n"));
        h.answer(&req);
        h.draining = true;
        assert!(matches!(h.call(|c, cx| c.resume(cx)), Action::Close));
    }

    /// Regression (the read buffer kept its memory when a skipped
    /// `Content-Length` body ended, so an idle keep-alive connection held
    /// up to a read's worth of bytes): back in Idle, the buffer is released.
    #[test]
    fn idle_after_a_skipped_body_holds_no_buffer() {
        let mut h = Harness::new();
        let req = dispatched(h.send(b"POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\n"));
        h.answer(&req);
        assert!(!h.conn.is_idle(), "still skipping the body");
        assert!(matches!(h.send(b"hel"), Action::Wait));
        assert!(matches!(h.send(b"lo"), Action::Wait));
        assert!(h.conn.is_idle());
        assert_eq!(h.conn.buffer_capacity(), 0);
        // And after an ordinary keep-alive response.
        let req = dispatched(h.send(b"GET /b HTTP/1.1\r\nHost: h\r\n\r\n"));
        h.answer(&req);
        assert!(h.conn.is_idle());
        assert_eq!(h.conn.buffer_capacity(), 0);
    }

    #[test]
    fn chunked_body_split_anywhere_is_skipped_and_the_connection_kept() {
        let stream: &[u8] = b"POST /a HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n\
            5;ext=1\r\nhello\r\n0\r\nTrailer: t\r\n\r\nGET /b HTTP/1.1\r\nHost: h\r\n\r\n";
        for split in 1..stream.len() {
            let mut h = Harness::new();
            let mut action = h.send(&stream[..split]);
            if matches!(action, Action::Wait) {
                action = h.send(&stream[split..]);
            } else {
                h.conn.io.input.extend(&stream[split..]);
            }
            let first = dispatched(action);
            assert_eq!((first.path(), first.keep_alive), ("/a", true));
            let second = dispatched(h.answer(&first));
            assert_eq!(second.path(), "/b", "split at {split}");
        }
    }
}

/// Runs `f` on `conn` within a fresh context of ordinary test limits: the
/// harness the connection's unit-test files share.
#[cfg(test)]
fn test_call<T: Transport>(
    conn: &mut Connection<T>,
    f: impl FnOnce(&mut Connection<T>, &mut Cx<'_>) -> Action,
) -> Action {
    let limits = Limits {
        max_head: 8192,
        header_timeout: Duration::from_secs(10),
        keepalive_timeout: Duration::from_secs(5),
    };
    let mut scratch = vec![0; 16 * 1024];
    let mut spares = Spares::default();
    let mut cx = Cx {
        now: Instant::now(),
        limits: &limits,
        scratch: &mut scratch,
        draining: false,
        readable: true,
        read_closed: false,
        spares: &mut spares,
    };
    f(conn, &mut cx)
}

#[cfg(test)]
mod cold_file_tests;

#[cfg(test)]
mod write_budget_tests;
