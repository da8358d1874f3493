//! One client connection as an explicit state machine.
//!
//! ```text
//!            bytes arrive                 head complete
//!   Idle ─────────────────▶ ReadingHead ────────────────▶ Dispatched
//!    ▲                          │ bad head / timeout          │ worker's Completion
//!    │                          ▼                             ▼
//!    │◀── body skipped ── DiscardingBody ◀──────────────── Writing
//!    │◀──────────────────── keep-alive ───────────────────────┘
//!                                                             │ close after it
//!                                                             ▼
//!                                                 Lingering ──▶ Closed
//! ```
//!
//! The machine is sans-IO in the sense that matters: it talks to its socket
//! only through the small [`Transport`] trait, so the reactor drives it with
//! a real `mio::net::TcpStream`, and the fuzzers and unit tests drive it with
//! an in-memory fake. It never blocks, never touches the file system and
//! never sees a thread: a complete head leaves as [`Action::Dispatch`] and
//! the answer comes back through [`Connection::complete`].
//!
//! One request is in flight per connection at a time; pipelined requests
//! wait, already read, in `buf` and are parsed as soon as the previous
//! response has been written. That keeps responses in request order by
//! construction and bounds memory: while a response is pending, nothing more
//! is read from the socket.
//!
//! Runs on: the reactor thread.

use std::fs::File;
use std::io::{self, IoSlice};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use crate::access_log;
use crate::http::request::{self, BodyFraming, Parsed, RequestHead};
use crate::http::response::{error_response, Chunk, Response, Status};

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
    /// Total time a client may take to send one head, however slowly it trickles.
    pub header_timeout: Duration,
    /// How long an idle keep-alive connection is kept.
    pub keepalive_timeout: Duration,
}

/// A request body we skip (GET with a body) is read and thrown away up to
/// this size; beyond it we answer 413 and close rather than spend bandwidth.
pub const MAX_DISCARDED_BODY: u64 = 1024 * 1024;

/// A client that reads nothing of a response for this long is gone (nginx's
/// `send_timeout` default).
pub const SEND_TIMEOUT: Duration = Duration::from_secs(60);

/// After a response that ends the connection we half-close and read what the
/// client still sends for at most this long, so that an unread request body
/// in our receive buffer does not make the kernel reset the connection and
/// destroy the response before the client has read it.
pub const LINGER_TIMEOUT: Duration = Duration::from_secs(2);

/// Bytes written for one connection per readiness event before it yields to
/// the others: one fast reader of a large file must not starve the rest.
pub const WRITE_BUDGET: u64 = 1024 * 1024;

/// What the reactor must do for this connection next.
#[derive(Debug)]
pub enum Action {
    /// Nothing until the next readiness event, completion or timeout.
    Wait,
    /// Run this request on the pool and call [`Connection::complete`] with the answer.
    Dispatch(Box<RequestHead>),
    /// It has used its write budget: call [`Connection::resume`] again on the next turn.
    Yield,
    /// Done: drop the connection (closing the socket and any open file).
    Close,
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
    log: Option<Box<access_log::AccessRecord>>,
}

/// What follows the response being prepared or written.
#[derive(Clone, Copy, Debug)]
struct After {
    close: bool,
    /// Request-body bytes still to skip before the next head.
    skip_body: u64,
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
    /// A worker is answering the request.
    Dispatched {
        after: After,
    },
    /// Writing the response; `progress` is when the client last took bytes.
    Writing {
        out: Box<Outgoing>,
        after: After,
        progress: Instant,
    },
    /// Throwing away a request body we don't need.
    DiscardingBody {
        remaining: u64,
        since: Instant,
    },
    /// Write side shut; reading until EOF or `until`.
    Lingering {
        until: Instant,
    },
    Closed,
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
    /// The client's address, for the access log.
    peer: IpAddr,
    /// What the socket's receive side may hold; saves the `read` that would
    /// only say `WouldBlock` (one syscall per keep-alive request).
    inbound: Inbound,
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
            peer,
            inbound: Inbound::Pending,
        }
    }

    /// The client's address: the one a trusted proxy reported, else the
    /// socket's peer.
    pub fn peer(&self) -> IpAddr {
        self.io.client_addr().unwrap_or(self.peer)
    }

    pub fn is_closed(&self) -> bool {
        matches!(self.state, State::Closed)
    }

    /// Bytes buffered but not parsed yet (tests and fuzzers check its bound).
    pub fn buffered(&self) -> usize {
        self.buf.len()
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
            State::DiscardingBody { since, .. } => Some(*since + limits.header_timeout),
            State::Writing { progress, .. } => Some(*progress + SEND_TIMEOUT),
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
        after.close |= response.close || cx.draining;
        self.start_writing(response, after, cx.now);
        self.resume(cx)
    }

    /// The deadline from [`Connection::deadline`] has passed.
    pub fn on_timeout(&mut self, cx: &mut Cx<'_>) -> Action {
        match self.deadline(cx.limits) {
            Some(deadline) if deadline <= cx.now => {}
            _ => return Action::Wait,
        }
        match self.state {
            State::ReadingHead { .. } => {
                log::info!(
                    "{}: request head not complete in time; closing",
                    self.peer()
                );
                self.buf = Vec::new();
                let response = error_response(Status::REQUEST_TIMEOUT, false, false, false, &[]);
                self.start_error(response, "-", cx.now);
                self.resume(cx)
            }
            _ => {
                self.state = State::Closed;
                Action::Close
            }
        }
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

    /// Idle or ReadingHead: parse what is buffered, else read more.
    fn read_head(&mut self, cx: &mut Cx<'_>) -> Option<Action> {
        if !self.buf.is_empty() {
            match request::parse(&self.buf, cx.limits.max_head) {
                Ok(Parsed::Complete { head, len }) => {
                    self.buf.drain(..len);
                    return Some(self.accept_head(head, cx));
                }
                Ok(Parsed::Partial) => {
                    if let State::Idle { .. } = self.state {
                        self.state = State::ReadingHead { started: cx.now };
                    }
                }
                Err(e) => {
                    self.refuse_head(e, cx);
                    return None;
                }
            }
        } else if cx.draining {
            // Between requests during shutdown: nothing is lost by closing.
            self.state = State::Closed;
            return Some(Action::Close);
        }
        match self.read_into_scratch(cx) {
            Err(_) | Ok(Read::Eof) => {
                // Gone between requests (or mid-head): nothing to answer.
                self.state = State::Closed;
                Some(Action::Close)
            }
            Ok(Read::WouldBlock) => Some(Action::Wait),
            Ok(Read::Data(n)) => {
                // The common case: a whole head in one read with nothing
                // buffered before it. Parse it straight from scratch space
                // and copy only leftovers (pipelined requests).
                if self.buf.is_empty() {
                    if let Ok(Parsed::Complete { head, len }) =
                        request::parse(&cx.scratch[..n], cx.limits.max_head)
                    {
                        self.buf.extend_from_slice(&cx.scratch[len..n]);
                        return Some(self.accept_head(head, cx));
                    }
                }
                self.buf.extend_from_slice(&cx.scratch[..n]);
                None
            }
        }
    }

    /// A complete head: decide what follows it, and hand it to a worker.
    fn accept_head(&mut self, mut head: Box<RequestHead>, cx: &mut Cx<'_>) -> Action {
        let mut after = After {
            close: !head.keep_alive || cx.draining,
            skip_body: 0,
        };
        match head.body {
            BodyFraming::None => {}
            // A client waiting for "100 Continue" may or may not send its
            // body after our final answer; we can't tell its next request
            // from its body, so we close instead of guessing.
            BodyFraming::Length(_) if head.expect_continue => after.close = true,
            BodyFraming::Length(n) if n > MAX_DISCARDED_BODY => {
                let response = error_response(Status::CONTENT_TOO_LARGE, false, false, false, &[]);
                self.start_error(response, &head.request_line(), cx.now);
                return self.resume(cx);
            }
            BodyFraming::Length(n) => after.skip_body = n,
            // We don't decode chunked bodies: answer, then close, and the
            // lingering close swallows the body.
            BodyFraming::Chunked => after.close = true,
        }
        head.keep_alive = !after.close;
        self.state = State::Dispatched { after };
        Action::Dispatch(head)
    }

    /// A head we refuse: answer with its status code and close, since the
    /// rest of the byte stream can't be trusted.
    fn refuse_head(&mut self, e: request::ParseError, cx: &mut Cx<'_>) {
        let status = Status::for_parse_error(e);
        log::info!("{}: bad request head ({e:?}) → {}", self.peer(), status.0);
        self.buf = Vec::new();
        self.start_error(
            error_response(status, false, false, false, &[]),
            "-",
            cx.now,
        );
    }

    fn start_error(&mut self, mut response: Response, request_line: &str, now: Instant) {
        response.log = access_log::record(self.peer(), request_line, response.status, None, None);
        let after = After {
            close: true,
            skip_body: 0,
        };
        self.start_writing(response, after, now);
    }

    fn start_writing(&mut self, response: Response, after: After, now: Instant) {
        let out = Outgoing {
            chunks: response.chunks,
            next: 0,
            offset: 0,
            sent: 0,
            log: response.log,
        };
        self.state = State::Writing {
            out: Box::new(out),
            after,
            progress: now,
        };
    }

    fn write_response(&mut self, cx: &mut Cx<'_>) -> Option<Action> {
        let State::Writing {
            out,
            after,
            progress,
        } = &mut self.state
        else {
            return None;
        };
        let before = out.sent;
        let result = write_out(&mut self.io, out);
        if out.sent > before {
            *progress = cx.now;
        }
        match result {
            Ok(Written::All) => {}
            Ok(Written::Budget) => return Some(Action::Yield),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Some(Action::Wait),
            Err(e) => {
                // Reset by the peer, or the file shrank under us: the
                // response can't be finished, so the connection ends.
                log::debug!(
                    "{}: write failed: {e}",
                    self.io.client_addr().unwrap_or(self.peer)
                );
                access_log::write(out.log.take(), out.sent);
                self.state = State::Closed;
                return Some(Action::Close);
            }
        }
        access_log::write(out.log.take(), out.sent);
        let after = *after;
        self.state = if after.close {
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
            if self.buf.is_empty() {
                // Give the memory of a long head back while idle.
                self.buf = Vec::new();
            }
            State::Idle { since: cx.now }
        };
        None
    }

    fn discard_body(&mut self, cx: &mut Cx<'_>) -> Option<Action> {
        let State::DiscardingBody { remaining, .. } = &mut self.state else {
            return None;
        };
        let from_buf = (*remaining).min(self.buf.len() as u64);
        self.buf.drain(..from_buf as usize);
        *remaining -= from_buf;
        if *remaining == 0 {
            self.state = State::Idle { since: cx.now };
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

    fn linger(&mut self, cx: &mut Cx<'_>) -> Option<Action> {
        match self.read_into_scratch(cx) {
            Ok(Read::Data(_)) => None,
            Ok(Read::WouldBlock) => Some(Action::Wait),
            Ok(Read::Eof) | Err(_) => {
                self.state = State::Closed;
                Some(Action::Close)
            }
        }
    }

    /// One read into the shared scratch buffer; `Interrupted` is retried.
    fn read_into_scratch(&mut self, cx: &mut Cx<'_>) -> io::Result<Read> {
        if self.inbound == Inbound::Drained {
            return Ok(Read::WouldBlock);
        }
        loop {
            return match self.io.read(cx.scratch) {
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

/// How a write attempt ended without error.
enum Written {
    All,
    /// [`WRITE_BUDGET`] used up; more remains.
    Budget,
}

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
            Chunk::Bytes(_) => {
                let mut slices = [IoSlice::new(&[]); MAX_SLICES];
                let mut count = 0;
                for (i, chunk) in out.chunks[out.next..].iter().enumerate().take(MAX_SLICES) {
                    let Chunk::Bytes(bytes) = chunk else { break };
                    let skip = if i == 0 { out.offset as usize } else { 0 };
                    slices[count] = IoSlice::new(&bytes[skip..]);
                    count += 1;
                }
                io.write_vectored(&slices[..count])
            }
            Chunk::File { file, offset, len } => {
                let remaining = len - out.offset;
                let want = remaining.min(WRITE_BUDGET) as usize;
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
