//! The reactor: one thread, one `mio::Poll` loop, every socket.
//!
//! Shutdown: the first SIGINT/SIGTERM (or `Handle::shutdown`) stops
//! accepting and lets busy connections finish until `--shutdown-timeout`; a
//! second signal, or the deadline, cuts them off. The pool is then stopped
//! without waiting for a worker stuck in a job (`pool.rs`).
//!
//! Each turn of the loop:
//! 1. sleep in `poll` until a socket is ready, a worker wakes us, or the
//!    earliest deadline (the heap in `timer.rs`) is due; but if completions
//!    are already queued, do not sleep: skip the poll (at most one turn in
//!    a row, so sockets are still heard) or poll without waiting;
//! 2. for each event: accept on a listener until `WouldBlock`; let a
//!    connection make progress (`conn/mod.rs` reads, parses and writes
//!    until `WouldBlock`);
//! 3. deliver every finished job from the completion queue (workers wake
//!    us only while we are parked in `poll`; see `completion.rs`);
//! 4. expire due deadlines;
//! 5. hand the turn's request jobs to the pool, after one drain of the
//!    file-change reports (`Site::fence_changes`: a cache hit skips its
//!    stat only while no change was reported, and that holds only if every
//!    change made before a request was read is applied before a worker
//!    sees it; see `site::watcher`), and wake as many workers as jobs were
//!    submitted this turn (once per batch);
//! 6. let the connections that used their write budget (big bodies) go on:
//!    last, so that no cached request's read waits behind them, and with
//!    the answers that came back meanwhile delivered between two of them.
//!
//! Sockets are registered once, for both readable and writable, edge-
//! triggered: no `epoll_ctl` per request. The price is that every operation
//! must go on until `WouldBlock`, which `Connection::resume` does; a
//! spurious event is harmless (it finds nothing to do).
//!
//! The reactor owns the connections in a `Slab` keyed by `Token`. A key is
//! reused once its connection closes, so every job carries the connection's
//! generation too, and a completion for a dead generation is dropped.
//!
//! The reactor never waits for the disk: a file body whose next bytes are
//! not in the page cache is not handed to `sendfile`. The connection asks
//! for [`Action::Warm`], a warm-up thread reads that window in
//! (`sys::page_cache::warm`) and posts `Done::Warmed`, and the connection
//! sends on. Nor do the request workers wait for file data: warm-ups run on
//! threads of their own, at most `warm::warm_cap` per loop at once
//! (`warm.rs`), so cached requests always find a worker.
//!
//! Nor for a TLS handshake's expensive step: once a connection's ClientHello
//! is read (after any step, `drive` asks its stream), a worker resolves the
//! certificate, does the key exchange and signs (`Hello::sign`) and posts
//! `Done::Signed`; the connection reads nothing meanwhile (see
//! `tls::stream`). At most `max_signing` per loop at once, like warm-ups.
//!
//! With `--model reactor-inline` there is no pool: step 2 runs the file work
//! (and the handshakes' signing) on this thread, each request's after its
//! own drain of the file-change reports (step 5's rule), and its answers wait in
//! `inline` to be delivered after the events, like completions from the
//! pool (see `Reactor::inline`).
//!
//! Runs on: the reactor thread (the thread that calls `Server::run`).

use std::collections::VecDeque;
use std::io;
use std::mem;
use std::net::{IpAddr, Shutdown, SocketAddr};
use std::os::fd::AsRawFd;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use slab::Slab;

use crate::config::ListenKind;
use crate::conn::{Action, Connection, Cx, Limits, Spares, Transport, WarmUp};
use crate::http::request::RequestHead;
use crate::http::response::{Recycled, Response};
use crate::limits::{EVENTS_CAPACITY, FAIR_SHARE_SLACK, MAX_SPARE_HEADS, WORKER_EXIT_GRACE};
use crate::models::reactor::completion::{Completion, CompletionQueue, Done};
use crate::models::reactor::pool::{Job, Pool, Task};
use crate::models::reactor::stream::{ProxyHeader, Socket, Stream};
use crate::models::reactor::timer::{Expiry, Timers};
use crate::models::reactor::warm::{warm_cap, WarmSlots};
use crate::models::reactor::Shared;
use crate::models::{is_resource_exhaustion, Summary, ACCEPT_BACKOFF, SCRATCH_SIZE};
use crate::site::{self, Site};
use crate::sys;
use crate::sys::listen_fds::NoDelay;
use crate::tls::stream::Hello;
use crate::tls::Tls;
use crate::trace;

/// Tokens at the top of the range name the non-connection sources; slab keys
/// (connections) count up from zero and never get near them.
pub const WAKER: Token = Token(usize::MAX);
pub const SIGNALS: Token = Token(usize::MAX - 1);
pub const LISTENER_BASE: usize = usize::MAX - 1024;

/// Whether a loop leaves new clients to the other loops once it holds its
/// share of the connections (see `Reactor::accept`).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Share {
    /// A listener event, which every loop heard: take a fair share.
    Fair,
    /// A slot freed up here, which no other loop heard of: take any.
    Any,
}

// Reads and writes go through `sys` rather than mio's `Read`/`Write`
// (std's): the same system calls, without glibc's cancellation-point
// bookkeeping around each (see `sys/socket.rs`).
impl Transport for TcpStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        sys::recv(self.as_raw_fd(), buf)
    }

    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        sys::writev(self.as_raw_fd(), bufs)
    }

    fn send_file(&mut self, file: &std::fs::File, offset: u64, len: usize) -> io::Result<usize> {
        sys::send_file(self.as_raw_fd(), file, offset, len)
    }

    fn shutdown_write(&mut self) {
        let _ = self.shutdown(Shutdown::Write);
    }
}

/// What a readiness event said about reading.
#[derive(Clone, Copy)]
struct Readiness {
    readable: bool,
    read_closed: bool,
}

impl Readiness {
    /// Not a read event (a yield, a completion, a timeout).
    const NONE: Readiness = Readiness {
        readable: false,
        read_closed: false,
    };
    /// A new connection: its request may already be waiting.
    const ACCEPTED: Readiness = Readiness {
        readable: true,
        read_closed: false,
    };
    /// A TLS handshake's expensive step came back: reading stopped at the
    /// ClientHello, with bytes perhaps left in the socket (see
    /// `tls::stream`), so read as if the socket had said readable.
    const SIGNED: Readiness = Readiness {
        readable: true,
        read_closed: false,
    };
}

/// A slab slot: the connection and the bookkeeping the reactor keeps for it.
struct Entry {
    conn: Connection<Stream>,
    /// What the listener that accepted it serves.
    kind: ListenKind,
    /// It has sent a request. Until then a shutdown does not count it as
    /// idle: it may be a client from the backlog whose request is on its way.
    has_requested: bool,
    /// Distinguishes this connection from earlier ones in the same slot.
    generation: u64,
    /// The earliest deadline already in the timer heap for this connection.
    armed: Option<Instant>,
}

pub struct Reactor {
    pub(crate) poll: Poll,
    pub(crate) listeners: Vec<TcpListener>,
    /// What each listener serves (same order as `listeners`).
    pub(crate) listener_kinds: Vec<ListenKind>,
    /// The TLS configuration, when there are HTTPS listeners.
    pub(crate) tls: Option<Arc<Tls>>,
    /// The port redirects point to (the first HTTPS listener's).
    pub(crate) https_port: u16,
    /// Whether accepted sockets come with `TCP_NODELAY` from the listener.
    pub(crate) nodelay: NoDelay,
    connections: Slab<Entry>,
    next_generation: u64,
    timers: Timers,
    /// The work-stealing pool (shared by every loop); `None` for
    /// `reactor-inline`.
    pool: Option<Arc<Pool>>,
    /// The threads that read cold file windows in (`warm.rs`), shared by
    /// every loop; `None` for `reactor-inline`. Not `pool`: a warm-up
    /// waits for the device, and a request worker waiting there leaves the
    /// cached requests one worker fewer.
    pub(crate) warm_pool: Option<Arc<Pool>>,
    /// Warm-ups this loop has on `warm_pool` now, at most half the request
    /// workers: how many cold reads a burst of downloads queues at the
    /// device at once.
    warm_slots: WarmSlots,
    /// Warm-ups waiting for a slot, oldest first.
    deferred_warmups: VecDeque<(usize, u64, WarmUp)>,
    /// TLS handshakes this loop has on the pool now, at most `max_signing`:
    /// a burst of new clients must leave workers for the requests of the
    /// connections already open (their CPU cost is why they left the
    /// reactor, and it is many requests' worth each).
    signing: usize,
    max_signing: usize,
    /// ClientHellos waiting for a slot, oldest first.
    deferred_hellos: VecDeque<(usize, u64, Box<Hello>)>,
    /// Which loop this is (`--reactors`; 0 owns the signals).
    index: usize,
    /// What the loops share: shutdown flags, connection count, counters.
    pub(crate) shared: Arc<Shared>,
    /// Every loop's completion queue (this one's too), to wake them all.
    pub(crate) peers: Vec<Arc<CompletionQueue>>,
    /// Loop 0 only, until `run`: the other loops, started on their threads.
    pub(crate) siblings: Vec<Reactor>,
    /// `reactor-inline`: answers made on this thread, delivered at the end of
    /// the turn. Not from inside `act`: a pipelined request would then be
    /// dispatched and answered from within the previous one's completion,
    /// recursing as deep as the pipeline.
    inline: Vec<Completion>,
    site: Arc<Site>,
    pub(crate) completions: Arc<CompletionQueue>,
    pub(crate) signals: Option<signal_hook_mio::v1_0::Signals>,
    limits: Limits,
    max_connections: usize,
    shutdown_timeout: Duration,
    scratch: Box<[u8]>,
    /// What answered requests leave for the next ones (see `conn::Spares`).
    spares: Spares,
    /// Request jobs back from the pool, for the next requests (at most
    /// `MAX_SPARE_HEADS`).
    // The boxes are what is kept: each goes to the pool again as a job.
    #[allow(clippy::vec_box)]
    spare_jobs: Vec<Box<AnswerJob>>,
    /// Connections that used their write budget and continue next turn.
    yielded: Vec<(usize, u64)>,
    /// Request jobs read this turn, held until `notify_pool` has applied the
    /// file changes reported so far: a cache hit then skips its stat only
    /// if no change was reported (see `site::watcher`). Empty unless the
    /// site watches for changes.
    fenced: Vec<Job>,
    /// Jobs that new connections' first reads submitted, counted for the
    /// turn's `notify_pool`: a burst of accepts wakes the workers once,
    /// not once per connection.
    accepted_jobs: usize,
    /// Accepting is paused until then (descriptor exhaustion).
    accept_paused_until: Option<Instant>,
    /// Set once shutdown began: the moment we stop waiting.
    drain_deadline: Option<Instant>,
    /// A second signal arrived during the drain: stop waiting now.
    abort: bool,
    summary: Summary,
}

impl Reactor {
    pub(crate) fn new(
        poll: Poll,
        listeners: Vec<TcpListener>,
        pool: Option<Arc<Pool>>,
        site: Arc<Site>,
        completions: Arc<CompletionQueue>,
        index: usize,
        shared: Arc<Shared>,
    ) -> Reactor {
        let config = Arc::clone(&site.config);
        let limits = Limits {
            max_head: config.max_head,
            header_timeout: config.header_timeout,
            keepalive_timeout: config.keepalive_timeout,
        };
        Reactor {
            poll,
            listener_kinds: vec![ListenKind::Http; listeners.len()],
            listeners,
            tls: None,
            https_port: 443,
            nodelay: NoDelay::PerConnection,
            connections: Slab::with_capacity(1024),
            next_generation: 0,
            timers: Timers::new(),
            pool,
            warm_pool: None,
            warm_slots: WarmSlots::new(warm_cap(config.threads), Arc::clone(&shared.warmups)),
            deferred_warmups: VecDeque::new(),
            signing: 0,
            max_signing: (config.threads / 2).max(1),
            deferred_hellos: VecDeque::new(),
            index,
            shared,
            peers: Vec::new(),
            siblings: Vec::new(),
            inline: Vec::new(),
            max_connections: config.max_connections,
            shutdown_timeout: config.shutdown_timeout,
            site,
            completions,
            signals: None,
            limits,
            scratch: vec![0; SCRATCH_SIZE.max(config.max_head + 1)].into_boxed_slice(),
            spares: Spares::default(),
            spare_jobs: Vec::new(),
            yielded: Vec::new(),
            fenced: Vec::new(),
            accepted_jobs: 0,
            accept_paused_until: None,
            drain_deadline: None,
            abort: false,
            summary: Summary::default(),
        }
    }

    /// Runs every loop (this one on this thread, the others on their own)
    /// until a graceful shutdown completes, then stops the pool.
    pub fn run(mut self) -> io::Result<Summary> {
        let mut threads = Vec::new();
        for sibling in mem::take(&mut self.siblings) {
            let index = sibling.index;
            let shared = Arc::clone(&self.shared);
            let first = Arc::clone(&self.completions);
            let spawned = thread::Builder::new()
                .name(format!("stoke-reactor-{index}"))
                .spawn(move || {
                    let result = sibling.run_loop();
                    // Loop 0 waits for every other loop before it returns.
                    shared.running.fetch_sub(1, Ordering::SeqCst);
                    first.wake();
                    result
                });
            match spawned {
                Ok(handle) => threads.push(handle),
                Err(e) => {
                    // The loop was dropped unstarted: it no longer runs.
                    self.shared.running.fetch_sub(1, Ordering::SeqCst);
                    log::error!("cannot start event loop {index}: {e}");
                }
            }
        }
        if threads.is_empty() {
            // One loop: this thread runs every fence (`site::watcher`).
            self.site.fence_on_signal();
        }
        let pool = self.pool.clone();
        let (shared, peers) = (Arc::clone(&self.shared), self.peers.clone());
        let result = self.run_loop();
        if result.is_err() {
            // This loop failed: stop the others now.
            shared.shutdown_requested.store(true, Ordering::SeqCst);
            shared.abort_requested.store(true, Ordering::SeqCst);
            for peer in &peers {
                peer.wake();
            }
        }
        let mut summary = result?;
        for handle in threads {
            match handle.join() {
                Ok(Ok(s)) => summary.add(&s),
                Ok(Err(e)) => log::error!("an event loop failed: {e}"),
                Err(_) => log::error!("an event loop panicked"),
            }
        }
        // Nobody waits for an answer any more: queued jobs are dropped and
        // a worker stuck in a job (a hung mount) is not waited for.
        if let Some(pool) = pool.and_then(|p| Arc::try_unwrap(p).ok()) {
            let left = pool.shutdown(WORKER_EXIT_GRACE);
            if left.dropped_jobs > 0 || left.busy_workers > 0 {
                log::warn!(
                    "shutdown cut off the pool: {} queued jobs dropped, {} workers still busy \
                     (not waited for)",
                    left.dropped_jobs,
                    left.busy_workers
                );
            }
            summary.dropped_jobs = left.dropped_jobs;
            summary.busy_workers = left.busy_workers;
        }
        Ok(summary)
    }

    /// Runs this loop until its part of a graceful shutdown completes.
    fn run_loop(mut self) -> io::Result<Summary> {
        let mut events = Events::with_capacity(EVENTS_CAPACITY);
        let mut completions = Vec::new();
        // The previous turn did not poll (completions were waiting): this
        // one must, so that answers arriving back to back cannot keep the
        // sockets from being heard.
        let mut skipped_poll = false;
        // The previous turn's "now", which also measures the poll's timeout:
        // a deadline then fires at most one turn's work late, and a request
        // costs no clock read before the sleep.
        let mut now = Instant::now();
        loop {
            // Sleep only if no completion is waiting; from `park` on, a
            // worker that posts one wakes us (see `completion.rs`).
            let parked = self.completions.park();
            if !parked && !skipped_poll {
                // Answers are ready now: deliver them without asking the
                // kernel (one `epoll_wait` fewer per hand-off under load).
                events.clear();
                skipped_poll = true;
            } else {
                let timeout = if parked {
                    self.poll_timeout(now)
                } else {
                    Some(Duration::ZERO)
                };
                let result = self.poll.poll(&mut events, timeout);
                if parked {
                    self.completions.unpark();
                }
                skipped_poll = false;
                if let Err(e) = result {
                    if e.kind() == io::ErrorKind::Interrupted {
                        continue;
                    }
                    return Err(e);
                }
            }
            // "Now" is read once per turn: every deadline set in this turn
            // is measured from the same instant.
            now = Instant::now();
            let mut submitted = 0;
            let mut woken = false;

            for event in events.iter() {
                match event.token() {
                    // Completions are delivered below, woken or not.
                    WAKER => woken = true,
                    SIGNALS => self.on_signals(now),
                    Token(t) if t >= LISTENER_BASE => {
                        self.accept(t - LISTENER_BASE, now, Share::Fair)
                    }
                    Token(key) => {
                        let readiness = Readiness {
                            readable: event.is_readable() || event.is_error(),
                            read_closed: event.is_read_closed() || event.is_error(),
                        };
                        self.resume(key, readiness, now, &mut submitted)
                    }
                }
            }
            if woken || self.completions.pending() {
                self.deliver(&mut completions, now, &mut submitted);
            }
            if woken && self.shared.shutdown_requested.load(Ordering::Acquire) {
                self.begin_shutdown(now);
            }
            if woken && self.shared.abort_requested.load(Ordering::Acquire) {
                self.abort = true;
            }
            if woken && self.shared.accept_asked[self.index].swap(false, Ordering::SeqCst) {
                for index in 0..self.listeners.len() {
                    self.accept(index, now, Share::Fair);
                }
            }
            self.shared.loop_open[self.index].store(self.connections.len(), Ordering::Relaxed);
            if self.accept_paused_until.is_some_and(|t| t <= now) {
                self.accept_paused_until = None;
                self.accept_all(now);
            }
            self.expire(now, &mut submitted);
            self.answer_inline(now, &mut submitted);
            self.notify_pool(submitted);
            self.resume_yielded(&mut completions, now);

            if let Some(deadline) = self.drain_deadline {
                // Loop 0 polls on (for a second signal) until the others end.
                let others_done =
                    self.index != 0 || self.shared.running.load(Ordering::SeqCst) == 1;
                if self.connections.is_empty() && others_done {
                    break;
                }
                if deadline <= now || self.abort {
                    self.summary.cut_off = self.connections.len();
                    log::warn!(
                        "{}; closing {} connections still busy",
                        if self.abort {
                            "second signal"
                        } else {
                            "shutdown deadline passed"
                        },
                        self.connections.len()
                    );
                    self.shared
                        .open
                        .fetch_sub(self.connections.len(), Ordering::Relaxed);
                    self.connections.clear();
                    break;
                }
            }
        }
        Ok(self.summary)
    }

    /// Delivers every finished job (draining also re-arms the wake-up,
    /// `wake_pending`). `buf` is the caller's, reused turn after turn.
    fn deliver(&mut self, buf: &mut Vec<Completion>, now: Instant, submitted: &mut usize) {
        self.completions.drain_into(buf);
        for c in buf.drain(..) {
            self.complete(c, now, submitted);
        }
    }

    /// Step 6: connections that used their write budget go on, after the
    /// turn's requests were read, its answers written and the workers
    /// woken. Each one's budget is a `sendfile` of about half a millisecond
    /// per MiB over loopback; answers the workers finish meanwhile are
    /// delivered between two of them, not after all (a cached request
    /// waits for one download's send, not for every download's).
    fn resume_yielded(&mut self, buf: &mut Vec<Completion>, now: Instant) {
        // Most turns have none: not even an empty list is taken and
        // dropped (about 25 instructions a turn).
        if self.yielded.is_empty() {
            return;
        }
        for (key, generation) in mem::take(&mut self.yielded) {
            let mut submitted = 0;
            if self.is_current(key, generation) {
                self.resume(key, Readiness::NONE, now, &mut submitted);
            }
            if self.completions.pending() {
                self.deliver(buf, now, &mut submitted);
            }
            // Not at the end: the workers get a warm-up or a pipelined
            // request now, not after the other downloads' sends.
            self.notify_pool(submitted);
        }
    }

    fn notify_pool(&mut self, submitted: usize) {
        let submitted = submitted + mem::take(&mut self.accepted_jobs);
        if let Some(pool) = &self.pool {
            if submitted > 0 {
                self.shared.handoffs.fetch_add(1, Ordering::Relaxed);
            }
            if !self.fenced.is_empty() {
                // Every request these jobs carry was read before this call:
                // the changes reported until now apply to all of them
                // (`site::watcher`). One drain for the turn's jobs.
                self.site.fence_changes();
                for job in self.fenced.drain(..) {
                    pool.submit(job);
                }
            }
            pool.notify(submitted);
        }
    }

    /// `reactor-inline`: delivers the answers made this turn. Those they
    /// lead to (pipelined requests) wait for the next turn, so one deep
    /// pipeline cannot hold the loop while other connections wait.
    fn answer_inline(&mut self, now: Instant, submitted: &mut usize) {
        // Empty but for `reactor-inline`: skip taking and dropping it.
        if self.inline.is_empty() {
            return;
        }
        for c in mem::take(&mut self.inline) {
            self.complete(c, now, submitted);
        }
    }

    /// The poll sleeps until the earliest of: a yielded connection (no
    /// sleep), a timer, the end of an accept pause, the shutdown deadline.
    fn poll_timeout(&self, now: Instant) -> Option<Duration> {
        if !self.yielded.is_empty() || !self.inline.is_empty() {
            return Some(Duration::ZERO);
        }
        // The usual turn: only the timers bound the sleep.
        if self.accept_paused_until.is_none() && self.drain_deadline.is_none() {
            return self.timers.timeout(now);
        }
        [
            self.timers.timeout(now),
            self.accept_paused_until
                .map(|t| t.saturating_duration_since(now)),
            self.drain_deadline
                .map(|t| t.saturating_duration_since(now)),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    fn is_current(&self, key: usize, generation: u64) -> bool {
        self.connections
            .get(key)
            .is_some_and(|e| e.generation == generation)
    }

    /// Accepts from one listener until `WouldBlock` (edge-triggered: a
    /// connection left in the backlog would get no second event).
    ///
    /// With `--reactors`, every loop hears the same listener event, and the
    /// first awake would take a whole burst. On a readiness event
    /// ([`Share::Fair`]) a loop holding more than its share stops and leaves
    /// the rest to the others, which heard the same edge. When a slot frees
    /// up ([`Share::Any`]) no other loop hears anything, so it takes them.
    fn accept(&mut self, index: usize, now: Instant, share: Share) {
        let loops = self.peers.len().max(1);
        // The shared flag, not only this loop's drain: once any loop logged
        // "stopped accepting", no loop may take a new client (`--reactors`).
        while self.drain_deadline.is_none()
            && !self.shared.shutdown_requested.load(Ordering::Acquire)
            && self.accept_paused_until.is_none()
            && self.shared.open.load(Ordering::Relaxed) < self.max_connections
        {
            if share == Share::Fair
                && loops > 1
                && self.connections.len()
                    >= self.shared.open.load(Ordering::Relaxed) / loops + FAIR_SHARE_SLACK
            {
                self.hand_off_accepting();
                return;
            }
            let Some(listener) = self.listeners.get(index) else {
                return;
            };
            match listener.accept() {
                Ok((stream, peer)) => {
                    let kind = self.listener_kinds.get(index).copied();
                    self.add_connection(stream, peer, kind.unwrap_or(ListenKind::Http), now)
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if is_resource_exhaustion(&e) => {
                    log::warn!("accept: {e}; pausing new connections for {ACCEPT_BACKOFF:?}");
                    self.accept_paused_until = Some(now + ACCEPT_BACKOFF);
                    return;
                }
                // ECONNABORTED and friends: that one client is gone; go on.
                Err(e) => log::debug!("accept: {e}"),
            }
        }
    }

    /// This loop holds more than its share and leaves the backlog: the
    /// least busy other loop is told to accept (it may have heard the
    /// listener's edge before the backlog was left to it, and no new edge
    /// comes until a new client does). That loop holds less than an even
    /// split, so it accepts at least one: the backlog always moves.
    fn hand_off_accepting(&self) {
        let counts = &self.shared.loop_open;
        let least = (0..counts.len())
            .filter(|&k| k != self.index)
            .min_by_key(|&k| counts[k].load(Ordering::Relaxed));
        if let (Some(k), Some(peer)) = (least, least.and_then(|k| self.peers.get(k))) {
            self.shared.accept_asked[k].store(true, Ordering::SeqCst);
            peer.wake();
        }
    }

    /// Accepts on every listener; called when accepting becomes possible again.
    fn accept_all(&mut self, now: Instant) {
        for index in 0..self.listeners.len() {
            self.accept(index, now, Share::Any);
        }
    }

    fn add_connection(&mut self, tcp: TcpStream, peer: SocketAddr, kind: ListenKind, now: Instant) {
        // Responses go out whole; Nagle's delay would only slow the last
        // packet. Linux copies the option from the listener at accept.
        if self.nodelay == NoDelay::PerConnection {
            let _ = tcp.set_nodelay(true);
        }
        let Some(mut stream) = self.wrap(tcp, peer, kind) else {
            return;
        };
        let slot = self.connections.vacant_entry();
        let key = slot.key();
        if let Err(e) = self.poll.registry().register(
            stream.tcp_mut(),
            Token(key),
            Interest::READABLE | Interest::WRITABLE,
        ) {
            log::error!("cannot register a connection: {e}");
            return;
        }
        self.next_generation += 1;
        self.summary.connections += 1;
        self.shared.open.fetch_add(1, Ordering::Relaxed);
        slot.insert(Entry {
            conn: Connection::new(stream, peer.ip(), now),
            kind,
            has_requested: false,
            generation: self.next_generation,
            armed: None,
        });
        // The client may have sent its request with the handshake already:
        // with edge triggering we would not hear about it again. The job
        // this submits waits for the turn's `notify_pool`, which every path
        // that accepts reaches before the loop sleeps.
        let mut submitted = 0;
        self.resume(key, Readiness::ACCEPTED, now, &mut submitted);
        self.accepted_jobs += submitted;
    }

    /// A readiness event (or a yield) for connection `key`.
    fn resume(&mut self, key: usize, readiness: Readiness, now: Instant, submitted: &mut usize) {
        // No generation check: an event for a closed key finds no entry.
        self.drive(key, None, readiness, now, submitted, |conn, cx| {
            conn.resume(cx)
        });
    }

    /// A worker finished a request, a warm-up or a handshake's expensive step.
    fn complete(&mut self, c: Completion, now: Instant, submitted: &mut usize) {
        let response = match c.done {
            Done::Response(response, job) => {
                if let Some(mut job) = job {
                    if let Some(head) = job.head.take() {
                        self.spares.heads.put(head);
                    }
                    if self.spare_jobs.len() < MAX_SPARE_HEADS {
                        self.spare_jobs.push(job);
                    }
                }
                response
            }
            Done::Signed(signed) => {
                if self.pool.is_some() {
                    self.signing -= 1;
                    self.start_deferred_signing(submitted);
                }
                // A connection closed (or timed out) meanwhile: its slot is
                // empty or has a new generation, and `drive` drops this.
                self.drive(
                    c.key,
                    Some(c.generation),
                    Readiness::SIGNED,
                    now,
                    submitted,
                    |conn, cx| {
                        conn.transport_mut().signed(*signed);
                        conn.resume(cx)
                    },
                );
                return;
            }
            Done::Warmed => {
                if self.warm_pool.is_some() {
                    self.warm_slots.give_back();
                    self.start_deferred_warmup();
                }
                self.drive(
                    c.key,
                    Some(c.generation),
                    Readiness::NONE,
                    now,
                    submitted,
                    |conn, cx| conn.warmed(cx),
                );
                return;
            }
        };
        let woken = self.pool.is_some();
        self.drive(
            c.key,
            Some(c.generation),
            Readiness::NONE,
            now,
            submitted,
            |conn, cx| {
                if let Some(story) = conn.trace_story() {
                    let how = if woken { "reactor woken, " } else { "" };
                    story.stage(format_args!("{how}answer delivered"));
                }
                conn.complete(response, cx)
            },
        );
    }

    /// Lends connection `key` this turn's context for one `step`, then
    /// carries out the action it returns. With `generation`, a slot that
    /// now holds a newer connection is left alone (the old one closed and
    /// its slot was reused).
    fn drive(
        &mut self,
        key: usize,
        generation: Option<u64>,
        readiness: Readiness,
        now: Instant,
        submitted: &mut usize,
        step: impl FnOnce(&mut Connection<Stream>, &mut Cx<'_>) -> Action,
    ) {
        let Some(entry) = self.connections.get_mut(key) else {
            return;
        };
        if generation.is_some_and(|g| g != entry.generation) {
            return;
        }
        // A connection that has not sent its first request yet still gets
        // it answered during a shutdown (then closes).
        let draining = self.drain_deadline.is_some() && entry.has_requested;
        let mut cx = Cx {
            now,
            limits: &self.limits,
            scratch: &mut self.scratch,
            spares: &mut self.spares,
            draining,
            readable: readiness.readable,
            read_closed: readiness.read_closed,
        };
        let action = step(&mut entry.conn, &mut cx);
        // A TLS connection whose ClientHello this step completed: the
        // expensive part of its handshake goes to the pool.
        let hello = entry.conn.transport_mut().take_hello();
        let generation = entry.generation;
        self.act(key, action, now, submitted);
        if let Some(hello) = hello {
            if self.is_current(key, generation) {
                self.sign(key, generation, hello, submitted);
            }
        }
    }

    /// Carries out what a connection asked for.
    fn act(&mut self, key: usize, action: Action, now: Instant, submitted: &mut usize) {
        match action {
            Action::Wait => self.arm_deadline(key),
            Action::Yield => {
                if let Some(entry) = self.connections.get(key) {
                    self.yielded.push((key, entry.generation));
                }
                self.arm_deadline(key);
            }
            Action::Dispatch(head) => {
                let Some(entry) = self.connections.get_mut(key) else {
                    return;
                };
                entry.has_requested = true;
                let generation = entry.generation;
                let peer = entry.conn.peer();
                let story = entry.conn.trace_story();
                let kind = entry.kind;
                let https_port = self.https_port;
                self.summary.requests += 1;
                let Some(pool) = &self.pool else {
                    // reactor-inline: the file work, here and now, after
                    // the changes reported since this request was read
                    // (`site::watcher`; one drain per request, in place
                    // of the cache hit's stat).
                    if let Some(s) = story {
                        s.stage(format_args!("file work inline, on the reactor"));
                    }
                    self.site.fence_changes();
                    let mut recycled = self.spares.take_recycled().unwrap_or_default();
                    let response = trace::handling(story, || {
                        answer(&self.site, kind, https_port, &head, peer, &mut recycled)
                    });
                    if !recycled.is_unallocated() {
                        self.spares.put_recycled(recycled);
                    }
                    if let Some(s) = story {
                        s.stage(format_args!("answer ready ({})", response.status.0));
                    }
                    self.spares.heads.put(head);
                    self.inline.push(Completion {
                        key,
                        generation,
                        done: Done::Response(response, None),
                    });
                    return;
                };
                if let Some(s) = story {
                    s.stage(format_args!("queued (depth {})", pool.queued() + 1));
                }
                let mut job = self.spare_jobs.pop().unwrap_or_else(|| {
                    Box::new(AnswerJob {
                        site: Arc::clone(&self.site),
                        queue: Arc::clone(&self.completions),
                        head: None,
                        recycled: Recycled::default(),
                        key,
                        generation,
                        peer,
                        kind,
                        https_port,
                        story,
                    })
                });
                job.head = Some(head);
                // A written response's buffers to answer in (a job whose
                // last answer did not use its pair still has it).
                if job.recycled.is_unallocated() {
                    if let Some(recycled) = self.spares.take_recycled() {
                        job.recycled = recycled;
                    }
                }
                (job.key, job.generation, job.peer) = (key, generation, peer);
                (job.kind, job.https_port, job.story) = (kind, https_port, story);
                if self.site.watches_changes() {
                    // Held until the turn's fence (`notify_pool`).
                    self.fenced.push(job);
                } else {
                    pool.submit(job);
                }
                *submitted += 1;
            }
            Action::Warm(warm) => self.warm(key, warm),
            Action::Close => self.close(key, now),
        }
    }

    /// A connection's file is not cached where it sends next: a worker
    /// reads that window through and posts `Done::Warmed`, and the
    /// connection sends nothing meanwhile (it is still held to its send
    /// timeout). `reactor-inline` reads it here: that model's point is
    /// doing the file work on this thread.
    fn warm(&mut self, key: usize, warm: WarmUp) {
        let Some(entry) = self.connections.get(key) else {
            return;
        };
        let generation = entry.generation;
        if let Some(s) = entry.conn.trace_story() {
            s.stage(format_args!(
                "bytes {}.. not cached; warming {} bytes",
                warm.offset, warm.len
            ));
        }
        self.warm_slots.count();
        if self.warm_pool.is_some() && !self.warm_slots.try_take() {
            self.deferred_warmups.push_back((key, generation, warm));
            return;
        }
        self.start_warm(key, generation, warm);
    }

    /// Hands a warm-up to the warm-up threads (or, `reactor-inline`, does
    /// it here).
    fn start_warm(&mut self, key: usize, generation: u64, warm: WarmUp) {
        let job = move || {
            if let Err(e) = crate::sys::page_cache::warm(&warm.file, warm.offset, warm.len) {
                // `sendfile` will meet the error too and end the response.
                log::debug!("warming a file range failed: {e}");
            }
        };
        let Some(pool) = &self.warm_pool else {
            job();
            self.inline.push(Completion {
                key,
                generation,
                done: Done::Warmed,
            });
            return;
        };
        let queue = Arc::clone(&self.completions);
        pool.submit(Box::new(move || {
            job();
            queue.push(Completion {
                key,
                generation,
                done: Done::Warmed,
            });
        }));
        // Rare (one per 2 MiB window at most): woken one by one.
        pool.notify(1);
    }

    /// Warm slots may have freed: start the oldest deferred warm-ups whose
    /// connections are still there, one per free slot.
    fn start_deferred_warmup(&mut self) {
        while !self.deferred_warmups.is_empty() && self.warm_slots.try_take() {
            let next = loop {
                match self.deferred_warmups.pop_front() {
                    Some((key, generation, warm)) if self.is_current(key, generation) => {
                        break Some((key, generation, warm));
                    }
                    Some(_) => {}
                    None => break None,
                }
            };
            let Some((key, generation, warm)) = next else {
                self.warm_slots.give_back();
                return;
            };
            self.start_warm(key, generation, warm);
        }
    }

    /// A TLS connection's ClientHello is read: a worker resolves the
    /// certificate, does the key exchange and signs (`Hello::sign`, 0.3 to
    /// 1 ms of CPU that would stall every connection of this loop), and
    /// posts `Done::Signed`. Meanwhile the connection reads nothing and is
    /// still held to its handshake deadline. `reactor-inline` signs here:
    /// that model's point is doing the work on this thread.
    fn sign(&mut self, key: usize, generation: u64, hello: Box<Hello>, submitted: &mut usize) {
        if self.pool.is_none() {
            self.inline.push(Completion {
                key,
                generation,
                done: Done::Signed(Box::new(hello.sign())),
            });
            return;
        }
        if self.signing >= self.max_signing {
            self.deferred_hellos.push_back((key, generation, hello));
            return;
        }
        self.start_signing(key, generation, hello, submitted);
    }

    fn start_signing(
        &mut self,
        key: usize,
        generation: u64,
        hello: Box<Hello>,
        submitted: &mut usize,
    ) {
        let Some(pool) = &self.pool else {
            return;
        };
        let queue = Arc::clone(&self.completions);
        self.signing += 1;
        pool.submit(Box::new(move || {
            // `sign` never panics, so the slot always comes back.
            queue.push(Completion {
                key,
                generation,
                done: Done::Signed(Box::new(hello.sign())),
            });
        }));
        *submitted += 1;
    }

    /// A signing slot freed: start the oldest deferred ClientHello whose
    /// connection is still there.
    fn start_deferred_signing(&mut self, submitted: &mut usize) {
        while let Some((key, generation, hello)) = self.deferred_hellos.pop_front() {
            if self.is_current(key, generation) {
                self.start_signing(key, generation, hello, submitted);
                return;
            }
        }
    }

    fn close(&mut self, key: usize, now: Instant) {
        if self.connections.try_remove(key).is_some() {
            // Dropping the connection closed the socket (which also removes it
            // from the poller) and any file it was sending.
            let before = self.shared.open.fetch_sub(1, Ordering::Relaxed);
            if before == self.max_connections {
                // We were at the limit and may have left clients in the backlog.
                self.accept_all(now);
            }
        }
    }

    /// Makes sure the timer heap holds an entry no later than the
    /// connection's current deadline (see `timer.rs`).
    fn arm_deadline(&mut self, key: usize) {
        let Some(entry) = self.connections.get_mut(key) else {
            return;
        };
        let Some(deadline) = entry.conn.deadline(&self.limits) else {
            return;
        };
        if entry.armed.is_none_or(|armed| deadline < armed) {
            entry.armed = Some(deadline);
            self.timers.arm(Expiry {
                when: deadline,
                key,
                generation: entry.generation,
            });
        }
    }

    fn expire(&mut self, now: Instant, submitted: &mut usize) {
        while let Some(expiry) = self.timers.pop_due(now) {
            if let Some(entry) = self.connections.get_mut(expiry.key) {
                if entry.generation == expiry.generation && entry.armed == Some(expiry.when) {
                    entry.armed = None;
                }
            }
            self.drive(
                expiry.key,
                Some(expiry.generation),
                Readiness::NONE,
                now,
                submitted,
                |conn, cx| conn.on_timeout(cx),
            );
        }
    }

    /// The first SIGINT/SIGTERM starts a graceful shutdown; another one
    /// during it stops waiting (an operator pressing Ctrl-C twice). SIGHUP
    /// reloads the TLS certificate.
    fn on_signals(&mut self, now: Instant) {
        let Some(signals) = &mut self.signals else {
            return;
        };
        let received: Vec<i32> = signals.pending().collect();
        for signal in received {
            if signal == signal_hook::consts::SIGHUP {
                self.reload_tls();
            } else if self.drain_deadline.is_none() {
                log::info!("received signal {signal}; shutting down gracefully");
                // Before this loop's "stopped accepting": the other loops
                // (`--reactors`) accept no more from now on, and hear the
                // rest through their wakers.
                self.shared.shutdown_requested.store(true, Ordering::SeqCst);
                self.begin_shutdown(now);
                self.wake_peers();
            } else {
                log::warn!("received signal {signal} again; exiting now");
                self.summary.forced = true;
                self.abort = true;
                self.shared.abort_requested.store(true, Ordering::SeqCst);
                self.wake_peers();
            }
        }
    }

    /// Wakes the other loops to look at the shared shutdown flags.
    fn wake_peers(&self) {
        for peer in &self.peers {
            if !Arc::ptr_eq(peer, &self.completions) {
                peer.wake();
            }
        }
    }

    /// Stop accepting, close idle connections, let busy ones finish until
    /// the shutdown deadline.
    ///
    /// Closing a listener resets every connection still queued in its
    /// backlog, so the backlog is accepted first and those connections are
    /// served (they count as busy until their first request is answered).
    /// The kernel can still queue a connection between that last `accept`
    /// and the `close`; with SO_REUSEPORT, `net.ipv4.tcp_migrate_req=1`
    /// hands such connections to another listener of the group, and with
    /// socket activation the socket outlives this process anyway.
    fn begin_shutdown(&mut self, now: Instant) {
        if self.drain_deadline.is_some() {
            return;
        }
        // Loop 0 serves the shared backlog; the others accept nothing once
        // the shutdown flag is up (see `accept`), so nothing arriving after
        // loop 0 said "stopped accepting" is served.
        if self.index == 0 {
            self.accept_backlog(now);
        }
        self.drain_deadline = Some(now + self.shutdown_timeout);
        for mut listener in self.listeners.drain(..) {
            let _ = self.poll.registry().deregister(&mut listener);
        }
        // Idle connections half-close and linger (a request racing the
        // close gets a FIN, not a reset); busy ones finish first.
        let mut idle = Vec::new();
        for (key, entry) in self.connections.iter_mut() {
            if entry.has_requested {
                idle.push((key, entry.conn.on_shutdown_lingering(now)));
            }
        }
        for (key, action) in idle {
            match action {
                Action::Close => {
                    self.connections.remove(key);
                    self.shared.open.fetch_sub(1, Ordering::Relaxed);
                }
                _ => self.arm_deadline(key),
            }
        }
        log::info!(
            "stopped accepting; waiting up to {:?} for {} connections in flight",
            self.shutdown_timeout,
            self.connections.len()
        );
    }
}

// ---- production: TLS and PROXY protocol (src/tls/, src/net/) ----
impl Reactor {
    /// Puts the layers a listener asks for around an accepted socket, or
    /// refuses it (logged): a PROXY listener takes only trusted peers.
    fn wrap(&self, tcp: TcpStream, peer: SocketAddr, kind: ListenKind) -> Option<Stream> {
        let config = &self.site.config;
        let proxy = if config.proxy_protocol {
            if !config.trusted_proxies.iter().any(|c| c.contains(peer.ip())) {
                log::warn!("{peer}: not a trusted proxy (--trusted-proxy); closing");
                return None;
            }
            ProxyHeader::Required
        } else {
            ProxyHeader::Absent
        };
        let socket = Socket::new(tcp, peer, proxy);
        match kind {
            ListenKind::Http | ListenKind::RedirectToHttps => Some(Stream::Plain(socket)),
            ListenKind::Https => {
                let tls = self.tls.as_ref()?;
                Some(Stream::Tls(Box::new(tls.accept(socket, peer.ip()))))
            }
        }
    }

    /// At shutdown: accepts every connection queued on every listener,
    /// past `max_connections` too (the backlog is bounded by the kernel's
    /// queue length; refusing them would reset them). Stops at `WouldBlock`
    /// or at the first error that is not about one client.
    fn accept_backlog(&mut self, now: Instant) {
        for index in 0..self.listeners.len() {
            loop {
                match self.listeners[index].accept() {
                    Ok((stream, peer)) => {
                        let kind = self.listener_kinds.get(index).copied();
                        self.add_connection(stream, peer, kind.unwrap_or(ListenKind::Http), now);
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) if is_resource_exhaustion(&e) => {
                        log::warn!(
                            "accept at shutdown: {e}; connections still queued will be reset"
                        );
                        return;
                    }
                    Err(e) => log::debug!("accept: {e}"),
                }
            }
        }
    }

    /// SIGHUP: load the certificate again, on a worker (file reads and key
    /// parsing stay off the reactor). A bad new pair is refused and logged.
    fn reload_tls(&mut self) {
        match &self.tls {
            Some(tls) => {
                log::info!("received SIGHUP; reloading the TLS certificate");
                let tls = Arc::clone(tls);
                match &self.pool {
                    Some(pool) => {
                        pool.submit(Box::new(move || {
                            let _ = tls.reload();
                        }));
                        pool.notify(1);
                    }
                    // reactor-inline: this thread is the only one there is.
                    None => {
                        let _ = tls.reload();
                    }
                }
            }
            None => log::info!("received SIGHUP; no TLS certificate to reload"),
        }
    }
}

/// One request's trip to a worker and back: what the worker needs to
/// answer it, and the way home. The box travels to a worker as the job and
/// back in the completion, and the loop keeps it (and the `Arc`s in it) for
/// the next request: handing a request to the pool allocates nothing. It
/// also carries a written response's buffers, in which the worker builds a
/// cached small file's answer (`site::handle_reusing`), so that answer
/// allocates nothing either.
pub struct AnswerJob {
    site: Arc<Site>,
    queue: Arc<CompletionQueue>,
    /// The request; taken back out by the loop when the answer arrives.
    head: Option<Box<RequestHead>>,
    /// Buffers to answer in; emptied when the answer used them.
    recycled: Recycled,
    key: usize,
    generation: u64,
    peer: IpAddr,
    kind: ListenKind,
    https_port: u16,
    story: Option<trace::Story>,
}

impl Task for AnswerJob {
    fn run(mut self: Box<Self>) {
        let story = self.story;
        if let (Some(s), Some((k, from))) = (story, trace::taken_here()) {
            s.stage(format_args!("taken by worker {k} from {from}"));
        }
        let job = &mut *self;
        let Some(head) = &job.head else {
            return;
        };
        let response = trace::handling(story, || {
            answer(
                &job.site,
                job.kind,
                job.https_port,
                head,
                job.peer,
                &mut job.recycled,
            )
        });
        if let Some(s) = story {
            s.stage(format_args!(
                "answer ready ({}), completion posted",
                response.status.0
            ));
        }
        let queue = Arc::clone(&self.queue);
        queue.push(Completion {
            key: self.key,
            generation: self.generation,
            done: Done::Response(response, Some(self)),
        });
    }
}

/// The answer to `head` on a listener of `kind`: the site's (built in
/// `recycled` when it can be), or a redirect.
fn answer(
    site: &Site,
    kind: ListenKind,
    https_port: u16,
    head: &RequestHead,
    peer: IpAddr,
    recycled: &mut Recycled,
) -> Response {
    match kind {
        ListenKind::RedirectToHttps => crate::tls::redirect::to_https(head, https_port, peer),
        ListenKind::Http | ListenKind::Https => site::handle_reusing(site, head, peer, recycled),
    }
}
#[cfg(test)]
mod tests {
    use super::*;

    /// Regression (idle keep-alive connections grew to 279 B of RSS each as
    /// per-connection state grew; issue #10 asks for at most 256 B): the
    /// slab entry an idle connection holds stays small. Its RSS is this
    /// entry plus about one 32-byte timer entry; the read buffer is
    /// released while idle and spare heads and response boxes are shared
    /// by the loop. Rarely used state is boxed to stay out of it: TLS,
    /// the PROXY header, a chunked body being read, the response being
    /// written. A debug build's mio socket carries 8 more bytes (a selector
    /// id) than a release build's, hence the margin.
    #[test]
    fn idle_connection_slab_entry_stays_small() {
        const MAX_ENTRY: usize = 144;
        let entry = std::mem::size_of::<Entry>();
        assert!(
            entry <= MAX_ENTRY,
            "a slab entry is {entry} B (at most {MAX_ENTRY})"
        );
        let conn = std::mem::size_of::<Connection<Stream>>();
        assert!(conn <= 112, "a connection is {conn} B");
    }
}
