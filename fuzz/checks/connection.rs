//! `connection`: the whole `Connection` state machine over an in-memory
//! transport, driven by the input bytes.
//!
//! Input layout: `data[0]` = number of op bytes `n`, `data[1..1+n]` = ops,
//! the rest = the byte stream the client sends. Each op byte: low 3 bits
//! pick the operation, the high 5 bits its argument (see [`Op`]). When the
//! ops run out, everything left is delivered, the socket made writable,
//! every dispatch answered and EOF sent, and the connection must then close.
//!
//! The fake "worker" answers each `Dispatch` with a 200 whose body is the
//! request path, so the output stream tells which requests were answered in
//! which order.
//!
//! Invariants: no panic; at most one request in flight; no `Dispatch` after
//! `Close`, and `Close` means `is_closed()`; `buffered()` stays within
//! `max_head + scratch`; nothing is written after `shutdown_write`; the
//! dispatched requests are a prefix of what a straight reading of the byte
//! stream (request::parse, skipping Content-Length bodies and chunked ones
//! as one `ChunkedDecoder::feed` of the rest of the stream finds them)
//! yields; the output is a sequence of well-framed responses whose bodies
//! are exactly the answered paths in order, with connection-made errors
//! only last and matching the refusal the stream earns (bodiless when the
//! refused request is a HEAD); the write side is
//! shut only after a response that says `Connection: close`; heads are
//! parsed a bounded number of times each, however they were split; and the
//! machine always ends closed once the peer has sent EOF and everything
//! was answered.
//!
//! `Expect: 100-continue` makes the connection's choice depend on how the
//! bytes arrived (no body byte yet: answer and close; else read the body),
//! so the straight reading allows both (see [`reference`]).

use std::cell::RefCell;
use std::fs::File;
use std::io::{self, IoSlice};
use std::net::{IpAddr, Ipv4Addr};
use std::rc::Rc;
use std::time::{Duration, Instant};

use stoke::conn::{Action, Connection, Cx, Limits, Spares, Transport};
use stoke::http::chunked::{ChunkedDecoder, ChunkedError, Decoded};
use stoke::http::request::{self, BodyFraming, Method, Parsed, RequestHead};
use stoke::http::response::{Chunk, HeadBuilder, Persistence, Response, Status};
use stoke::limits::MAX_DISCARDED_BODY;

const MAX_HEAD: usize = 8192;
const SCRATCH: usize = 16 * 1024;
/// Bounds the work per input so a slow input is a bug, not a timeout.
const STEP_LIMIT: usize = 20_000;

/// Sizes an op argument (0..32) maps to: many small ones for splitting heads
/// byte by byte, a few around the limits.
#[rustfmt::skip]
const SIZES: [usize; 32] = [
    1, 2, 3, 4, 5, 6, 7, 8, 10, 12, 16, 20, 24, 32, 48, 64, 96, 128, 192, 256, 512, 1024, 2048,
    4095, 4096, 8191, 8192, 8193, 16383, 16384, 16385, 1 << 20,
];

#[derive(Default)]
struct Wire {
    /// Delivered by the client, not yet read by the server.
    readable: Vec<u8>,
    eof: bool,
    /// An edge-triggered readable event is due (bytes or EOF arrived since
    /// the last event the connection was told about).
    edge: bool,
    /// Bytes the socket accepts before `WouldBlock`.
    writable: usize,
    output: Vec<u8>,
    shut: bool,
    /// Protocol violations seen by the transport itself.
    errors: Vec<String>,
}

#[derive(Clone)]
struct Fake(Rc<RefCell<Wire>>);

impl Transport for Fake {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut w = self.0.borrow_mut();
        if w.readable.is_empty() {
            return if w.eof {
                Ok(0)
            } else {
                Err(io::ErrorKind::WouldBlock.into())
            };
        }
        let n = buf.len().min(w.readable.len());
        buf[..n].copy_from_slice(&w.readable[..n]);
        w.readable.drain(..n);
        Ok(n)
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        let mut w = self.0.borrow_mut();
        if w.shut {
            w.errors.push("write after shutdown_write".into());
        }
        if w.writable == 0 {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let mut written = 0;
        for b in bufs {
            let n = b.len().min(w.writable - written);
            w.output.extend_from_slice(&b[..n]);
            written += n;
            if written == w.writable {
                break;
            }
        }
        w.writable -= written;
        Ok(written)
    }

    fn send_file(&mut self, _file: &File, _offset: u64, _len: usize) -> io::Result<usize> {
        self.0
            .borrow_mut()
            .errors
            .push("send_file without a file chunk".into());
        Err(io::ErrorKind::Other.into())
    }

    fn shutdown_write(&mut self) {
        self.0.borrow_mut().shut = true;
    }
}

/// One step of the driver, decoded from an op byte.
#[derive(Clone, Copy, Debug)]
enum Op {
    /// Deliver the next `SIZES[arg]` input bytes, then resume.
    Deliver(usize),
    /// Deliver without a readiness event (bytes pile up in the kernel).
    DeliverQuietly(usize),
    /// Let the socket accept `SIZES[arg]` more bytes (arg 0: none), then resume.
    Writable(usize),
    /// The worker answers the pending request (arg & 7 == 7: with close).
    Complete(u8),
    /// Time passes: to the deadline (odd arg) or `arg` seconds; then on_timeout.
    Tick(u8),
    /// The peer half-closes (EOF after what was delivered), then resume.
    Eof,
    /// A spurious readiness event.
    Resume,
    /// Shutdown begins: `on_shutdown`, and every later call is draining.
    Shutdown,
}

impl Op {
    fn decode(b: u8) -> Op {
        let arg = b >> 3;
        match b & 7 {
            0 => Op::Deliver(SIZES[arg as usize]),
            1 => Op::DeliverQuietly(SIZES[arg as usize]),
            2 => Op::Writable(if arg == 0 { 0 } else { SIZES[arg as usize] }),
            3 => Op::Complete(arg),
            4 => Op::Tick(arg),
            5 => Op::Eof,
            6 => Op::Resume,
            _ => {
                // Shutdown is rare in real life; keep most of this op's space
                // for more deliveries.
                if arg == 31 {
                    Op::Shutdown
                } else {
                    Op::Deliver(SIZES[arg as usize])
                }
            }
        }
    }
}

struct Driver<'a> {
    conn: Connection<Fake>,
    wire: Rc<RefCell<Wire>>,
    input: &'a [u8],
    /// Bytes of `input` delivered so far.
    sent: usize,
    now: Instant,
    limits: Limits,
    scratch: Vec<u8>,
    /// Answered heads go back here, so later heads are parsed into reused
    /// ones, as in the reactor.
    spares: Spares,
    draining: bool,
    pending: Option<Box<RequestHead>>,
    /// Every dispatched head, in order.
    dispatched: Vec<RequestHead>,
    /// Paths whose answer was handed to `complete`, in order.
    answered: Vec<String>,
    closed: bool,
    /// `on_timeout` closed the connection (a response may be cut short).
    timed_out: bool,
    /// The peer's EOF was never read: the connection waited for a timer.
    eof_stalled: bool,
    steps: usize,
}

impl Driver<'_> {
    fn cx_call<R>(
        &mut self,
        readable: bool,
        read_closed: bool,
        f: impl FnOnce(&mut Connection<Fake>, &mut Cx<'_>) -> R,
    ) -> R {
        let mut cx = Cx {
            now: self.now,
            limits: &self.limits,
            scratch: &mut self.scratch,
            draining: self.draining,
            readable,
            read_closed,
            spares: &mut self.spares,
        };
        f(&mut self.conn, &mut cx)
    }

    /// A readiness event; it says "readable" when bytes or EOF arrived
    /// since the last one (edge triggering, as the reactor's epoll does),
    /// and "read closed" once the peer's FIN is in (EPOLLRDHUP / EV_EOF).
    fn resume(&mut self) -> Result<(), String> {
        let (readable, read_closed) = {
            let mut w = self.wire.borrow_mut();
            let readable = std::mem::take(&mut w.edge);
            (readable, readable && w.eof)
        };
        let action = self.cx_call(readable, read_closed, |c, cx| c.resume(cx));
        self.handle(action, "resume")
    }

    fn handle(&mut self, mut action: Action, from: &str) -> Result<(), String> {
        loop {
            self.steps += 1;
            ensure!(self.steps < STEP_LIMIT, "step limit: the machine spins");
            ensure!(
                self.conn.buffered() <= MAX_HEAD + SCRATCH,
                "buffered {} > max_head + scratch after {from}",
                self.conn.buffered()
            );
            // An idle keep-alive connection must cost little memory: with
            // nothing buffered it holds no buffer.
            ensure!(
                !self.conn.is_idle()
                    || self.conn.buffered() > 0
                    || self.conn.buffer_capacity() == 0,
                "idle with nothing buffered, yet the buffer holds {} bytes after {from}",
                self.conn.buffer_capacity()
            );
            let errors = std::mem::take(&mut self.wire.borrow_mut().errors);
            ensure!(errors.is_empty(), "transport: {errors:?} after {from}");
            match action {
                Action::Wait => return Ok(()),
                Action::Yield => {
                    ensure!(!self.closed, "Yield after Close ({from})");
                    action = self.cx_call(false, false, |c, cx| c.resume(cx));
                }
                Action::Close => {
                    ensure!(
                        self.conn.is_closed(),
                        "Action::Close but !is_closed() ({from})"
                    );
                    self.closed = true;
                    return Ok(());
                }
                // Only files are warmed, and the fuzzed responses are in memory.
                Action::Warm(w) => {
                    return Err(format!("Action::Warm without a file body ({from}): {w:?}"))
                }
                Action::Dispatch(head) => {
                    ensure!(!self.closed, "Dispatch after Close ({from}): {head:?}");
                    ensure!(
                        self.pending.is_none(),
                        "second Dispatch while {:?} is pending ({from})",
                        self.pending.as_ref().map(|h| h.path())
                    );
                    ensure!(
                        self.conn.deadline(&self.limits).is_none(),
                        "a deadline while a worker has the request"
                    );
                    self.dispatched.push((*head).clone());
                    self.pending = Some(head);
                    return Ok(());
                }
            }
        }
    }

    fn deliver(&mut self, n: usize) {
        let n = n.min(self.input.len() - self.sent);
        let chunk = &self.input[self.sent..self.sent + n];
        let mut w = self.wire.borrow_mut();
        w.readable.extend_from_slice(chunk);
        w.edge |= n > 0;
        drop(w);
        self.sent += n;
    }

    fn peer_eof(&mut self) {
        let mut w = self.wire.borrow_mut();
        w.edge |= !w.eof;
        w.eof = true;
    }

    fn complete(&mut self, close: bool) -> Result<(), String> {
        let Some(head) = self.pending.take() else {
            return Ok(());
        };
        let keep_alive = head.keep_alive && !close;
        let body = head.path().as_bytes().to_vec();
        let mut b = HeadBuilder::new(Status::OK);
        b.header("Content-Type", "text/plain");
        b.content_length(body.len() as u64);
        let persistence = if keep_alive {
            Persistence::for_request(&head)
        } else {
            Persistence::Close
        };
        let head_bytes = b.finish(persistence);
        // Split the body in two chunks (one possibly empty) to exercise
        // vectored writes across chunk boundaries.
        let (a, z) = body.split_at(body.len() / 2);
        let response = Response {
            status: Status::OK,
            chunks: vec![
                Chunk::Bytes(head_bytes),
                Chunk::Bytes(a.to_vec()),
                Chunk::Bytes(z.to_vec()),
            ],
            close: !keep_alive,
            log: None,
        };
        self.answered.push(head.path().to_owned());
        self.spares.heads.put(head);
        let action = self.cx_call(false, false, |c, cx| c.complete(response, cx));
        self.handle(action, "complete")
    }

    fn tick(&mut self, arg: u8) -> Result<(), String> {
        let deadline = self.conn.deadline(&self.limits);
        match deadline {
            Some(d) if arg & 1 == 1 => {
                self.now = self.now.max(d) + Duration::from_millis(u64::from(arg));
            }
            _ => self.now += Duration::from_secs(u64::from(arg >> 1)),
        }
        let due = deadline.is_some_and(|d| d <= self.now);
        let was_closed = self.conn.is_closed();
        let action = self.cx_call(false, false, |c, cx| c.on_timeout(cx));
        if !due {
            ensure!(
                matches!(action, Action::Wait) && self.conn.is_closed() == was_closed,
                "on_timeout before the deadline acted: {action:?}"
            );
        }
        if matches!(action, Action::Close) && !was_closed {
            self.timed_out = true;
        }
        self.handle(action, "on_timeout")
    }

    fn run(&mut self, op: Op) -> Result<(), String> {
        match op {
            Op::Deliver(n) => {
                self.deliver(n);
                self.resume()
            }
            Op::DeliverQuietly(n) => {
                self.deliver(n);
                Ok(())
            }
            Op::Writable(n) => {
                self.wire.borrow_mut().writable = n;
                self.resume()
            }
            Op::Complete(arg) => self.complete(arg & 7 == 7),
            Op::Tick(arg) => self.tick(arg),
            Op::Eof => {
                self.peer_eof();
                self.resume()
            }
            Op::Resume => self.resume(),
            Op::Shutdown => {
                self.draining = true;
                let action = self.conn.on_shutdown();
                self.handle(action, "on_shutdown")
            }
        }
    }

    /// Everything left: all input, unlimited writes, every answer, EOF.
    fn finish(&mut self) -> Result<(), String> {
        self.deliver(usize::MAX);
        self.wire.borrow_mut().writable = usize::MAX;
        self.resume()?;
        for _ in 0..STEP_LIMIT {
            if self.closed {
                return Ok(());
            }
            if self.pending.is_some() {
                self.complete(false)?;
            } else if !self.wire.borrow().eof {
                self.peer_eof();
                self.resume()?;
            } else if self.wire.borrow().edge {
                self.resume()?;
            } else {
                // EOF is in, nothing is pending, no event will come: only a
                // timer can end this connection now.
                self.eof_stalled = true;
                self.tick(1)?;
            }
        }
        Err("the connection never closed after EOF".into())
    }
}

pub fn check(data: &[u8]) -> Result<(), String> {
    if super::hits_known_bug(data) {
        return Ok(());
    }
    let (ops, input) = match data.split_first() {
        Some((&n, rest)) => rest.split_at((n as usize).min(rest.len())),
        None => (&[][..], &[][..]),
    };
    let wire = Rc::new(RefCell::new(Wire::default()));
    let start = Instant::now();
    let mut d = Driver {
        conn: Connection::new(Fake(wire.clone()), IpAddr::V4(Ipv4Addr::LOCALHOST), start),
        wire: wire.clone(),
        input,
        sent: 0,
        now: start,
        limits: Limits {
            max_head: MAX_HEAD,
            header_timeout: Duration::from_secs(10),
            keepalive_timeout: Duration::from_secs(5),
        },
        scratch: vec![0; SCRATCH],
        spares: Spares::default(),
        draining: false,
        pending: None,
        dispatched: Vec::new(),
        answered: Vec::new(),
        closed: false,
        timed_out: false,
        eof_stalled: false,
        steps: 0,
    };
    for &b in ops {
        d.run(Op::decode(b))?;
    }
    d.finish()?;
    ensure!(d.conn.is_closed(), "not closed at the end");
    ensure!(
        !d.eof_stalled || super::ignored("eof-stall"),
        "eof-stall: the peer's EOF arrived with its last bytes, yet the connection \
         never read it and stayed open until a timeout (set STOKE_FUZZ_IGNORE=eof-stall \
         to fuzz past this)"
    );

    // Parses: a few per head (see `HeadScanner`), not one per read.
    let heads_seen = d.dispatched.len() as u64 + 2;
    ensure!(
        u64::from(d.conn.parse_attempts()) <= 4 * heads_seen,
        "{} parses for at most {heads_seen} heads",
        d.conn.parse_attempts()
    );

    // Requests: a prefix of what the byte stream holds.
    let Reference {
        heads: expected,
        refusal,
        last_may_be_refused,
        refused_head,
    } = reference(input);
    for (i, got) in d.dispatched.iter().enumerate() {
        let Some(want) = expected.get(i) else {
            return Err(format!(
                "dispatch #{i} {:?} beyond the {} requests the stream allows ({refusal:?})",
                got.target(),
                expected.len()
            ));
        };
        ensure!(
            got.method == want.method && got.target() == want.target() && got.path() == want.path(),
            "dispatch #{i} is {} {:?}, the stream says {} {:?}",
            got.method.as_str(),
            got.target(),
            want.method.as_str(),
            want.target()
        );
    }

    // Responses: well framed, bodies = answered paths in order.
    let output = std::mem::take(&mut wire.borrow_mut().output);
    // The n-th request (after n answers) is a HEAD: a connection-made error
    // for it (a refusal, or 408 once "HEAD " has arrived) has no body.
    let is_head = |n: usize| {
        expected
            .get(n)
            .map_or(refused_head, |h| h.method == Method::Head)
    };
    let (responses, cut) = split_responses(&output, is_head)?;
    ensure!(
        cut.is_empty() || d.timed_out,
        "output ends in a partial response ({} bytes) without a timeout",
        cut.len()
    );
    ensure!(
        !wire.borrow().shut || responses.last().is_some_and(|r| r.1),
        "write side shut after a response that did not say Connection: close"
    );
    let mut bodies = Vec::new();
    for (i, (status, close, body)) in responses.iter().enumerate() {
        let last = i + 1 == responses.len();
        if *close {
            ensure!(last, "bytes written after a Connection: close response");
        }
        if *status == 200 {
            bodies.push(String::from_utf8_lossy(body).into_owned());
            continue;
        }
        ensure!(
            last && *close,
            "connection-made {status} is not the last response or keeps the connection"
        );
        if *status != 408 {
            // The refusal matches what the stream earns at that point.
            let refused_at = bodies.len() == expected.len()
                || (last_may_be_refused && bodies.len() + 1 == expected.len());
            ensure!(
                refused_at && refusal.contains(status),
                "{status} after {} answers; the stream holds {} requests then {refusal:?}",
                bodies.len(),
                expected.len()
            );
            // Error pages are never empty: an empty body is an omitted one.
            let head = is_head(bodies.len());
            ensure!(
                body.is_empty() == head,
                "{status} to a {} request has {} bytes of body",
                if head { "HEAD" } else { "non-HEAD" },
                body.len()
            );
        }
    }
    ensure!(
        bodies.len() <= d.answered.len() && bodies[..] == d.answered[..bodies.len()],
        "response bodies {bodies:?} are not the answered paths {:?} in order",
        d.answered
    );
    ensure!(
        d.timed_out || bodies.len() == d.answered.len(),
        "answered {:?} but only {bodies:?} were written",
        d.answered
    );
    Ok(())
}

/// What a straight reading of the byte stream says.
struct Reference {
    /// The requests a client sending `input` may expect answered, in order.
    heads: Vec<RequestHead>,
    /// The statuses of the refusal that ends the stream, if it ends in one.
    refusal: Vec<u16>,
    /// The refusal may instead come in place of the last of `heads`: an
    /// `Expect: 100-continue` request with a bad chunked body, which the
    /// connection either answers and closes (no body byte had arrived) or
    /// refuses for its body.
    last_may_be_refused: bool,
    /// The refused (or unfinished) request is a HEAD, so a connection-made
    /// answer to it has no body.
    refused_head: bool,
}

/// Reads `input` as a client's requests. When the rest of the stream is at
/// least `max_head` long, the connection may see only part of it when it
/// gives up, so 414 and 431 are also fair refusals of a head.
///
/// An `Expect: 100-continue` request is answered either way: the connection
/// closes after it (a prefix of this reading) or reads its body as here.
fn reference(input: &[u8]) -> Reference {
    let mut heads = Vec::new();
    let mut pos = 0;
    let end = |heads, refusal, last_may_be_refused, refused_head| Reference {
        heads,
        refusal,
        last_may_be_refused,
        refused_head,
    };
    while pos < input.len() {
        match request::parse(&input[pos..], MAX_HEAD) {
            Ok(Parsed::Complete { head, len }) => {
                pos += len;
                let last = !head.keep_alive;
                match head.body {
                    BodyFraming::None => {}
                    BodyFraming::Length(n) if n > MAX_DISCARDED_BODY => {
                        return end(heads, vec![413], false, head.method == Method::Head)
                    }
                    BodyFraming::Length(n) => pos = pos.saturating_add(n as usize),
                    BodyFraming::Chunked => {
                        let expect = head.expect_continue;
                        let mut decoder = ChunkedDecoder::new(MAX_DISCARDED_BODY);
                        match decoder.feed(&input[pos..]) {
                            Ok(Decoded::Done(used)) => pos += used,
                            Ok(Decoded::NeedMore) => {
                                // Never dispatched, unless answered at once
                                // for its Expect.
                                let is_head = head.method == Method::Head;
                                if expect {
                                    heads.push(*head);
                                }
                                return end(heads, Vec::new(), false, is_head);
                            }
                            Err(e) => {
                                let status = match e {
                                    ChunkedError::Malformed => 400,
                                    ChunkedError::TooLarge => 413,
                                };
                                let is_head = head.method == Method::Head;
                                if expect {
                                    heads.push(*head);
                                }
                                return end(heads, vec![status], expect, is_head);
                            }
                        }
                    }
                }
                heads.push(*head);
                if last {
                    break;
                }
            }
            Ok(Parsed::Partial) => break,
            Err(e) => {
                let mut fair = vec![stoke::http::errors::for_parse_error(e).0];
                if super::ignored("version-prefix") && fair.iter().any(|&s| s == 400 || s == 505) {
                    fair.extend([400, 505]);
                }
                if input.len() - pos >= MAX_HEAD {
                    fair.extend([414, 431]);
                }
                let refused_head = request::starts_with_head_method(&input[pos..]);
                return end(heads, fair, false, refused_head);
            }
        }
    }
    let unfinished_head = request::starts_with_head_method(input.get(pos..).unwrap_or(&[]));
    end(heads, Vec::new(), false, unfinished_head)
}

type Parsed3 = (u16, bool, Vec<u8>);

/// Splits the output into (status, Connection: close, body) triples, plus a
/// trailing incomplete response, if any. `is_head(n)`: the request after n
/// answers is a HEAD, so a final connection-made error for it may be a head
/// alone (an empty body here).
fn split_responses(
    mut out: &[u8],
    is_head: impl Fn(usize) -> bool,
) -> Result<(Vec<Parsed3>, &[u8]), String> {
    let mut responses = Vec::new();
    while !out.is_empty() {
        let Some(end) = out.windows(4).position(|w| w == b"\r\n\r\n") else {
            return Ok((responses, out));
        };
        let head = std::str::from_utf8(&out[..end]).map_err(|e| format!("head: {e}"))?;
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap_or("");
        ensure!(
            status_line.starts_with("HTTP/1.1 ") && status_line.len() >= 12,
            "bad status line {status_line:?}"
        );
        let status: u16 = status_line[9..12]
            .parse()
            .map_err(|_| format!("bad status in {status_line:?}"))?;
        let mut length = None;
        let mut close = false;
        for line in lines {
            let (name, value) = line
                .split_once(": ")
                .ok_or_else(|| format!("bad header line {line:?}"))?;
            if name.eq_ignore_ascii_case("content-length") {
                length = Some(value.parse::<usize>().map_err(|e| format!("{e}"))?);
            } else if name.eq_ignore_ascii_case("connection") {
                close = value.eq_ignore_ascii_case("close");
            }
        }
        let mut length = length.ok_or("response without Content-Length")?;
        let body_start = end + 4;
        let answered = responses.iter().filter(|r: &&Parsed3| r.0 == 200).count();
        if close && status != 200 && out.len() == body_start && is_head(answered) {
            length = 0;
        }
        if out.len() < body_start + length {
            return Ok((responses, out));
        }
        responses.push((status, close, out[body_start..body_start + length].to_vec()));
        out = &out[body_start + length..];
    }
    Ok((responses, out))
}
