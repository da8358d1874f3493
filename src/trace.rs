//! `--trace`: one request's journey through the server, as log lines with
//! microsecond offsets from its arrival, so the lines of one request read as
//! a story: accepted, first byte, head complete, queued, taken by a worker,
//! file resolved, completion posted, reactor woken, first and last byte
//! written (or the blocking models' equivalents).
//!
//! ```text
//! conn 4 #1 +0 µs: accepted from 127.0.0.1
//! conn 4 #1 +61 µs: first byte (38 bytes read)
//! conn 4 #1 +83 µs: head complete: GET /a.txt HTTP/1.1
//! conn 4 #1 +97 µs: queued (depth 1)
//! conn 4 #1 +142 µs: taken by worker 1 from the injector
//! ...
//! ```
//!
//! Off by default and free when off: every hook first checks one relaxed
//! atomic ([`enabled`]) and does nothing else, no clock read, no formatting.
//! It is switched on, for the whole process, by `--trace` or by
//! `RUST_LOG=stoke::trace=debug`; the lines are logged at debug level under
//! the target [`TARGET`].
//!
//! Runs on: every thread that touches a request (the hooks are called by the
//! connection, the models, the pool and the site).

use std::cell::Cell;
use std::fmt;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Instant;

/// The log target of the trace lines.
pub const TARGET: &str = "stoke::trace";

static ENABLED: AtomicBool = AtomicBool::new(false);
/// Numbers connections in the trace (only counted while tracing).
static NEXT_CONN: AtomicU64 = AtomicU64::new(1);

/// Is tracing on? The check every hook makes first.
#[inline]
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// Switches tracing on for this process when `--trace` was given or the
/// log filter already lets the trace target's debug lines through. Never
/// switches it off (several servers in one process share the switch).
pub fn init(requested: bool) {
    if requested || log::log_enabled!(target: TARGET, log::Level::Debug) {
        ENABLED.store(true, Ordering::Relaxed);
    }
}

/// One request on one connection, and when it arrived: at the accept for a
/// connection's first request, at its first byte for the next ones.
#[derive(Clone, Copy, Debug)]
pub struct Story {
    conn: u64,
    request: u32,
    start: Instant,
}

impl Story {
    /// Logs one stage, timed now.
    pub fn stage(&self, what: fmt::Arguments<'_>) {
        let micros = self.start.elapsed().as_micros();
        log::debug!(
            target: TARGET,
            "conn {} #{} +{micros} µs: {what}",
            self.conn,
            self.request
        );
    }
}

/// A connection's trace state (lives in `Connection`, which holds `None`
/// when tracing is off).
#[derive(Debug)]
pub struct ConnTrace {
    conn: u64,
    /// Requests begun on this connection.
    requests: u32,
    /// The request being told, from its arrival to its last byte written.
    current: Option<Story>,
    /// `current` has had its first byte.
    got_bytes: bool,
}

impl ConnTrace {
    /// A connection was accepted: `None` when tracing is off.
    pub fn accepted(peer: IpAddr) -> Option<Box<ConnTrace>> {
        if !enabled() {
            return None;
        }
        let story = Story {
            conn: NEXT_CONN.fetch_add(1, Ordering::Relaxed),
            request: 1,
            start: Instant::now(),
        };
        story.stage(format_args!("accepted from {peer}"));
        Some(Box::new(ConnTrace {
            conn: story.conn,
            requests: 1,
            current: Some(story),
            got_bytes: false,
        }))
    }

    /// The request being told, if any.
    pub fn story(&self) -> Option<Story> {
        self.current
    }

    fn begin(&mut self) -> Story {
        *self.current.get_or_insert_with(|| {
            self.requests += 1;
            Story {
                conn: self.conn,
                request: self.requests,
                start: Instant::now(),
            }
        })
    }

    /// `n` bytes were read while waiting for a head.
    pub fn bytes_read(&mut self, n: usize) {
        if !self.got_bytes {
            self.got_bytes = true;
            self.begin()
                .stage(format_args!("first byte ({n} bytes read)"));
        }
    }

    /// A head is to be parsed from bytes that arrived with an earlier one.
    pub fn pipelined(&mut self) {
        if !self.got_bytes {
            self.got_bytes = true;
            self.begin()
                .stage(format_args!("head already buffered (pipelined)"));
        }
    }

    /// Logs a stage of the current request.
    pub fn stage(&mut self, what: fmt::Arguments<'_>) {
        self.begin().stage(what);
    }

    /// `sent_before` → `sent_now` bytes of the response have been written.
    pub fn wrote(&mut self, sent_before: u64, sent_now: u64) {
        if sent_before == 0 && sent_now > 0 {
            self.stage(format_args!("first byte written"));
        }
    }

    /// The response is over (`how`: all written, or why not); the next
    /// request starts a new story.
    pub fn finished(&mut self, sent: u64, how: &str) {
        self.stage(format_args!("{how} ({sent} bytes)"));
        self.current = None;
        self.got_bytes = false;
    }
}

/// Where a pool worker found the job it runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// Its own deque (from a batch it took earlier).
    Own,
    /// The injector the reactor pushes onto.
    Injector,
    /// Another worker's deque.
    Stolen(usize),
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Own => f.write_str("its own deque"),
            Source::Injector => f.write_str("the injector"),
            Source::Stolen(j) => write!(f, "worker {j}'s deque (stolen)"),
        }
    }
}

thread_local! {
    /// This worker's index and where it found the job it is running.
    static TAKEN: Cell<Option<(usize, Source)>> = const { Cell::new(None) };
    /// The request whose file work runs on this thread.
    static HANDLING: Cell<Option<Story>> = const { Cell::new(None) };
}

/// Pool worker `index` is about to run a job it found at `source`.
pub fn taken(index: usize, source: Source) {
    if enabled() {
        TAKEN.with(|t| t.set(Some((index, source))));
    }
}

/// Where this thread's current job came from (set by [`taken`]).
pub fn taken_here() -> Option<(usize, Source)> {
    TAKEN.with(Cell::get)
}

/// Runs `work` (the site's file work for `story`) with `story` as this
/// thread's current request, so the site's hooks ([`resolved`]) can tell it.
pub fn handling<R>(story: Option<Story>, work: impl FnOnce() -> R) -> R {
    let Some(story) = story else {
        return work();
    };
    HANDLING.with(|h| h.set(Some(story)));
    let result = work();
    HANDLING.with(|h| h.set(None));
    result
}

/// The site found what to answer with (`how`: cache hit, opened, ...).
#[inline]
pub fn resolved(how: fmt::Arguments<'_>) {
    if enabled() {
        if let Some(story) = HANDLING.with(Cell::get) {
            story.stage(format_args!("file resolved: {how}"));
        }
    }
}
