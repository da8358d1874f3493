//! The blocking driver, shared by `--model pool` ([`super::blocking_pool`])
//! and `--model thread-per-connection` ([`super::thread_per_conn`]): one
//! thread drives one `conn::Connection` over a blocking `std::net::TcpStream`
//! from accept to close. The two models differ only in who owns the threads.
//!
//! The sans-IO connection was written for an event loop; a blocking thread
//! drives it like this (`serve`):
//! - every call says "readable": the next `read` simply blocks until bytes
//!   come;
//! - before each call the socket's `SO_RCVTIMEO`/`SO_SNDTIMEO` are set from
//!   the connection's next deadline ([`Connection::deadline`]), so a read or
//!   write that would outlive it returns `WouldBlock` instead, and the driver
//!   answers with [`Connection::on_timeout`], the same transition the
//!   reactor's timer heap makes;
//! - at most one call per turn may block (`Turn`): a state change inside
//!   the turn moves the deadline, and the timeout on the socket would be
//!   stale for a second call;
//! - a `Dispatch` is answered right here with `site::handle_reusing` (in
//!   the buffers of the connection's last response), a `Yield`
//!   (write budget used) is just another turn.
//!
//! Shutdown has to reach threads asleep waiting for a client or for a
//! connection's next request, so those two waits are `poll(2)`s that also
//! watch the `Alarm`, which rings on shutdown: the accepting threads poll
//! the listeners, and a thread whose connection is idle between requests
//! polls its socket, then reads (or, once the alarm has rung, half-closes
//! and lingers, as the reactor does with its idle connections). Past the
//! deadline the sockets still open (every one is in the `Registry`) are shut
//! both ways, which ends any blocked read or write.
//!
//! Runs on: the blocking models' threads; `Shared::drain` on the thread
//! that called `Server::run`.

use std::io::{self, Read, Write};
use std::net::{Shutdown as Direction, SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use slab::Slab;

use crate::conn::{Action, Connection, Cx, Limits, Spares, Transport};
use crate::http::request::RequestHead;
use crate::limits::CUT_OFF_GRACE;
use crate::models::{
    blocking_pool, is_resource_exhaustion, thread_per_conn, Shutdown, Summary, ACCEPT_BACKOFF,
    SCRATCH_SIZE,
};
use crate::site::{self, Site};
use crate::sys;
use crate::trace;

/// Who owns the threads: the one difference between the two blocking models.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Threads {
    /// `--threads` threads started up front, each serving one client at a time.
    Pool,
    /// A thread started for each client, ending with it.
    PerConnection,
}

/// A blocking model set up by `Server::bind`.
pub(crate) struct Bound {
    shared: Arc<Shared>,
    threads: Threads,
    /// Ends the signal thread once the server has stopped.
    signals: Option<signal_hook::iterator::Handle>,
}

impl Bound {
    pub(crate) fn new(
        listeners: Vec<TcpListener>,
        site: Arc<Site>,
        threads: Threads,
    ) -> Result<Bound, (&'static str, io::Error)> {
        for listener in &listeners {
            // Non-blocking: `poll` said a client is waiting, but it may be
            // gone (reset) by the time we call `accept`, which must not then
            // block with the accept lock held.
            listener
                .set_nonblocking(true)
                .map_err(|e| ("set up a listener", e))?;
        }
        let config = &site.config;
        let alarm = Arc::new(Alarm::new().map_err(|e| ("create the shutdown alarm", e))?);
        let slots = Arc::new(Slots::new(config.max_connections));
        let shutdown = Arc::new(Shutdown::new(
            Arc::new(AtomicBool::new(false)),
            Box::new({
                let (alarm, slots) = (Arc::clone(&alarm), Arc::clone(&slots));
                move || {
                    alarm.ring();
                    slots.wake_all();
                }
            }),
        ));
        let shared = Shared {
            limits: Limits {
                max_head: config.max_head,
                header_timeout: config.header_timeout,
                keepalive_timeout: config.keepalive_timeout,
            },
            scratch_len: SCRATCH_SIZE.max(config.max_head + 1),
            threads: config.threads,
            shutdown_timeout: config.shutdown_timeout,
            acceptor: Acceptor {
                listeners: Mutex::new(listeners),
            },
            slots,
            registry: Registry::default(),
            alarm,
            shutdown,
            connections: AtomicU64::new(0),
            requests: AtomicU64::new(0),
            forced: AtomicBool::new(false),
            running: Arc::new(Running::default()),
            site,
        };
        Ok(Bound {
            shared: Arc::new(shared),
            threads,
            signals: None,
        })
    }

    pub(crate) fn shutdown(&self) -> Arc<Shutdown> {
        Arc::clone(&self.shared.shutdown)
    }

    pub(crate) fn open(&self) -> Arc<AtomicUsize> {
        Arc::clone(&self.shared.registry.open)
    }

    /// A small thread turns SIGINT and SIGTERM into a shutdown request, and
    /// a second one during the shutdown into "stop waiting" (the reactor
    /// gets signals as poll events instead; here no one thread polls for
    /// everything).
    pub(crate) fn handle_signals(&mut self) -> io::Result<()> {
        let mut signals = signal_hook::iterator::Signals::new([
            signal_hook::consts::SIGINT,
            signal_hook::consts::SIGTERM,
        ])?;
        self.signals = Some(signals.handle());
        let shared = Arc::clone(&self.shared);
        thread::Builder::new()
            .name("stoke-signals".into())
            .spawn(move || {
                for signal in signals.forever() {
                    if !shared.shutdown.is_requested() {
                        log::info!("received signal {signal}; shutting down gracefully");
                        shared.request_shutdown();
                    } else {
                        log::warn!("received signal {signal} again; exiting now");
                        shared.force();
                    }
                }
            })?;
        Ok(())
    }

    pub(crate) fn run(self) -> io::Result<Summary> {
        let summary = match self.threads {
            Threads::Pool => blocking_pool::run(Arc::clone(&self.shared)),
            Threads::PerConnection => thread_per_conn::run(Arc::clone(&self.shared)),
        };
        if let Some(signals) = self.signals {
            signals.close();
        }
        summary
    }
}

/// What every thread of a blocking model shares.
pub(crate) struct Shared {
    site: Arc<Site>,
    limits: Limits,
    /// Bytes of read buffer each connection thread needs.
    pub(crate) scratch_len: usize,
    /// `--threads`: the pool's size.
    pub(crate) threads: usize,
    shutdown_timeout: Duration,
    acceptor: Acceptor,
    /// The connection cap (`--max-connections`).
    slots: Arc<Slots>,
    registry: Registry,
    alarm: Arc<Alarm>,
    shutdown: Arc<Shutdown>,
    connections: AtomicU64,
    requests: AtomicU64,
    /// A second signal arrived during the drain: stop waiting now.
    forced: AtomicBool,
    running: Arc<Running>,
}

impl Shared {
    /// Waits for a free connection slot, then for a client on any listener.
    /// `None` once shutdown has been requested: the caller's accepting is over.
    pub(crate) fn accept(self: &Arc<Self>) -> Option<Client> {
        if !self.slots.acquire(&self.shutdown) {
            return None;
        }
        let Some((stream, peer)) = self.acceptor.accept(&self.shutdown, &self.alarm) else {
            self.slots.release();
            return None;
        };
        Some(self.register(stream, peer))
    }

    /// An accepted socket becomes a `Client` (its slot already taken).
    fn register(self: &Arc<Self>, stream: TcpStream, peer: SocketAddr) -> Client {
        // On BSD an accepted socket inherits the listener's non-blocking
        // flag; this driver needs it blocking.
        let _ = stream.set_nonblocking(false);
        // Responses go out whole; Nagle's delay would only slow the last packet.
        let _ = stream.set_nodelay(true);
        self.connections.fetch_add(1, Ordering::Relaxed);
        let (key, slot) = self.registry.insert(stream);
        Client {
            shared: Arc::clone(self),
            key,
            slot,
            peer,
        }
    }

    pub(crate) fn request_shutdown(&self) {
        self.shutdown.request();
    }

    /// Ends the drain's wait at once (a second signal): the connections
    /// still busy are cut off.
    fn force(&self) {
        self.forced.store(true, Ordering::SeqCst);
        self.running.wake();
    }

    /// Counts the model's threads (see [`Running`]).
    pub(crate) fn running(&self) -> &Arc<Running> {
        &self.running
    }

    /// Sleeps until a shutdown is requested.
    pub(crate) fn wait_for_shutdown(&self) {
        while !self.shutdown.is_requested() {
            self.alarm.sleep(None);
        }
    }

    /// The graceful shutdown, once a shutdown was requested and the
    /// accepting threads have stopped: serve the backlog and close the
    /// listeners, let the connections finish (idle ones linger, see
    /// `drive`) until the shutdown deadline or a second signal, cut off the
    /// rest, and wait for the model's threads.
    pub(crate) fn drain(self: &Arc<Self>) -> Summary {
        let running = &self.running;
        // Closing a listener resets every connection still queued in its
        // backlog, so those are accepted first, past `--max-connections`,
        // and each served on a thread of its own (as the reactor does).
        for (stream, peer) in self.acceptor.accept_backlog_and_close() {
            self.slots.take_past_the_cap();
            spawn_for(self.register(stream, peer), running);
        }
        log::info!(
            "stopped accepting; waiting up to {:?} for {} connections in flight",
            self.shutdown_timeout,
            self.registry.len()
        );
        let mut cut_off = 0;
        let mut busy_workers = 0;
        let deadline = Instant::now() + self.shutdown_timeout;
        if !running.wait_until_none(deadline, &self.forced) {
            let forced = self.forced.load(Ordering::SeqCst);
            cut_off = self.registry.cut_off();
            log::warn!(
                "{}; closing {cut_off} connections still busy",
                if forced {
                    "second signal"
                } else {
                    "shutdown deadline passed"
                }
            );
            let never = AtomicBool::new(false);
            if !running.wait_until_none(Instant::now() + CUT_OFF_GRACE, &never) {
                busy_workers = running.count();
                log::warn!(
                    "{busy_workers} threads still busy in the file system; not waiting for them"
                );
            }
        }
        Summary {
            connections: self.connections.load(Ordering::Relaxed),
            requests: self.requests.load(Ordering::Relaxed),
            cut_off,
            forced: self.forced.load(Ordering::SeqCst),
            dropped_jobs: 0,
            busy_workers,
        }
    }
}

/// An accepted client: registered, and holding one connection slot until
/// it is dropped (its socket closes once its `Connection` is dropped too).
pub(crate) struct Client {
    shared: Arc<Shared>,
    key: usize,
    slot: Arc<Slot>,
    peer: SocketAddr,
}

impl Drop for Client {
    fn drop(&mut self) {
        self.shared.registry.remove(self.key);
        self.shared.slots.release();
    }
}

/// Serves `client` on a new thread, counted in `running`. If no thread can
/// be started (out of threads or memory), the client is closed unanswered,
/// like a refused connection.
pub(crate) fn spawn_for(client: Client, running: &Arc<Running>) {
    let thread = running.enter();
    let scratch_len = client.shared.scratch_len;
    let spawned = thread::Builder::new()
        .name("stoke-conn".into())
        .spawn(move || {
            let mut scratch = vec![0; scratch_len];
            serve(client, &mut scratch);
            drop(thread);
        });
    if let Err(e) = spawned {
        log::warn!("cannot start a thread for a client: {e}; closing it");
    }
}

/// What the driver does next for its connection.
enum Next {
    /// Let the connection make progress on its socket (or time out).
    Resume,
    /// Answer this request (the `Dispatch` the connection asked for).
    Answer(Box<RequestHead>),
    /// The file range the connection asked to warm is warm: send on.
    Warmed,
}

/// Serves `client` on this thread until its connection closes. `scratch` is
/// this thread's read buffer. A bug that panics ends this connection only.
pub(crate) fn serve(client: Client, scratch: &mut [u8]) {
    let peer = client.peer;
    let served = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| drive(client, scratch)));
    if served.is_err() {
        log::error!(
            "{}: connection thread panicked; connection closed",
            peer.ip()
        );
    }
}

fn drive(client: Client, scratch: &mut [u8]) {
    let shared = &*client.shared;
    let limits = &shared.limits;
    let peer = client.peer.ip();
    let stream = BlockingStream::new(Arc::clone(&client.slot), Arc::clone(&shared.shutdown));
    let mut conn = Connection::new(stream, peer, Instant::now());
    // Requests dispatched so far. Until the first, a shutdown does not
    // count the connection as idle: it may be a client from the backlog
    // whose request is on its way (the reactor's `has_requested`).
    let mut requests = 0;
    let mut next = Next::Resume;
    let mut spares = Spares::default();
    loop {
        let now = Instant::now();
        let mut cx = Cx {
            now,
            limits,
            scratch: &mut *scratch,
            draining: requests > 0 && shared.shutdown.is_requested(),
            readable: true,
            read_closed: false,
            spares: &mut spares,
        };
        let action = match next {
            Next::Answer(head) => {
                let story = conn.trace_story();
                if let Some(s) = story {
                    let thread = thread::current();
                    let name = thread.name().unwrap_or("?");
                    s.stage(format_args!("file work on this thread ({name})"));
                }
                // The connection's last written response's buffers, so a
                // cached small file's answer allocates nothing here either.
                let mut recycled = cx.spares.take_recycled().unwrap_or_default();
                let response = trace::handling(story, || {
                    site::handle_reusing(&shared.site, &head, peer, &mut recycled)
                });
                if !recycled.is_unallocated() {
                    cx.spares.put_recycled(recycled);
                }
                if let Some(s) = story {
                    s.stage(format_args!("answer ready ({})", response.status.0));
                }
                cx.spares.heads.put(head);
                conn.complete(response, &mut cx)
            }
            Next::Warmed => conn.warmed(&mut cx),
            Next::Resume => match conn.deadline(limits) {
                Some(deadline) if deadline <= now => conn.on_timeout(&mut cx),
                Some(deadline) if requests > 0 && conn.is_idle() => {
                    // Between requests: wait where a shutdown can reach us.
                    match wait_for_request(&client.slot.stream, &shared.alarm, deadline - now) {
                        Between::Request => resume(&mut conn, Some(deadline), &mut cx),
                        Between::Shutdown => conn.on_shutdown_lingering(now),
                        // The next turn finds the deadline passed.
                        Between::Nothing => Action::Wait,
                    }
                }
                deadline => resume(&mut conn, deadline, &mut cx),
            },
        };
        next = match action {
            // Blocking I/O never waits for readiness: "wait" here means a
            // call timed out or this turn's one blocking call was made.
            Action::Wait | Action::Yield => Next::Resume,
            Action::Dispatch(head) => {
                requests += 1;
                conn.transport_mut().has_requested = true;
                Next::Answer(head)
            }
            Action::Close => break,
            // Not asked by a blocking socket (its `file_ready` says yes), but
            // this thread may wait for the disk anyway.
            Action::Warm(w) => {
                let _ = crate::sys::page_cache::warm(&w.file, w.offset, w.len);
                Next::Warmed
            }
        };
    }
    shared.requests.fetch_add(requests, Ordering::Relaxed);
}

/// One turn: the connection may make one blocking call, until `deadline`.
fn resume(
    conn: &mut Connection<BlockingStream>,
    deadline: Option<Instant>,
    cx: &mut Cx<'_>,
) -> Action {
    conn.transport_mut().arm(deadline);
    let action = conn.resume(cx);
    conn.transport_mut().disarm();
    action
}

/// What ended the wait for a connection's next request.
enum Between {
    /// The socket is readable: a request (or the client's EOF) is here.
    Request,
    /// The server is shutting down, and nothing has arrived.
    Shutdown,
    /// The wait timed out.
    Nothing,
}

/// Waits up to `timeout` for `stream` to be readable or `alarm` to ring.
/// A request that arrives as the alarm rings is still served.
fn wait_for_request(stream: &TcpStream, alarm: &Alarm, timeout: Duration) -> Between {
    let mut ready = [false; 2];
    match sys::wait_readable(&[stream.as_fd(), alarm.fd()], Some(timeout), &mut ready) {
        Ok(_) if ready[0] => Between::Request,
        Ok(_) if ready[1] => Between::Shutdown,
        Ok(_) => Between::Nothing,
        // Interrupted (a signal), or poll failing: let the read decide.
        Err(_) => Between::Request,
    }
}

/// Whether the next socket call of this turn may block, and until when.
#[derive(Clone, Copy, Debug)]
enum Turn {
    /// One call may block until the deadline (`None`: no deadline).
    MayBlock { until: Option<Instant> },
    /// This turn's call was made (or none is allowed, as when answering a
    /// dispatch): further calls report `WouldBlock`, and the driver starts
    /// a new turn with the deadline as it is now.
    Spent,
}

/// A blocking socket as a connection's [`Transport`]: each call first sets
/// the socket's timeout from the turn's deadline.
pub(crate) struct BlockingStream {
    /// The socket, shared with the registry so that shutdown can reach it.
    slot: Arc<Slot>,
    /// Whether the server is shutting down ...
    shutdown: Arc<Shutdown>,
    /// ... which counts for the connection once it has sent a request.
    has_requested: bool,
    turn: Turn,
    /// The timeouts set on the socket (whole milliseconds, so a deadline a
    /// few microseconds further away costs no `setsockopt`).
    read_timeout: Option<Duration>,
    write_timeout: Option<Duration>,
}

impl BlockingStream {
    fn new(slot: Arc<Slot>, shutdown: Arc<Shutdown>) -> BlockingStream {
        BlockingStream {
            slot,
            shutdown,
            has_requested: false,
            turn: Turn::Spent,
            read_timeout: None,
            write_timeout: None,
        }
    }

    /// Allows one blocking call, until `deadline`.
    fn arm(&mut self, deadline: Option<Instant>) {
        self.turn = Turn::MayBlock { until: deadline };
    }

    fn disarm(&mut self) {
        self.turn = Turn::Spent;
    }

    /// Uses up the turn; the timeout the call should have, or `WouldBlock`
    /// when no call may block now (turn spent, or deadline reached).
    fn take_turn(&mut self) -> io::Result<Option<Duration>> {
        let Turn::MayBlock { until } = std::mem::replace(&mut self.turn, Turn::Spent) else {
            return Err(io::ErrorKind::WouldBlock.into());
        };
        let Some(until) = until else {
            return Ok(None);
        };
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        // Rounded up: the call must not return before the deadline.
        let millis = left.as_nanos().div_ceil(1_000_000) as u64;
        Ok(Some(Duration::from_millis(millis)))
    }

    fn prepare_read(&mut self) -> io::Result<()> {
        let timeout = self.take_turn()?;
        if timeout != self.read_timeout {
            self.slot.stream.set_read_timeout(timeout)?;
            self.read_timeout = timeout;
        }
        Ok(())
    }

    fn prepare_write(&mut self) -> io::Result<()> {
        let timeout = self.take_turn()?;
        if timeout != self.write_timeout {
            self.slot.stream.set_write_timeout(timeout)?;
            self.write_timeout = timeout;
        }
        Ok(())
    }
}

impl Transport for BlockingStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.prepare_read()?;
        (&self.slot.stream).read(buf)
    }

    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        self.prepare_write()?;
        (&self.slot.stream).write_vectored(bufs)
    }

    fn send_file(&mut self, file: &std::fs::File, offset: u64, len: usize) -> io::Result<usize> {
        self.prepare_write()?;
        sys::send_file(self.slot.stream.as_raw_fd(), file, offset, len)
    }

    fn shutdown_write(&mut self) {
        let _ = self.slot.stream.shutdown(Direction::Write);
    }

    /// A call may have slept for seconds: read the clock and the flag again.
    fn refresh(&self, cx: &mut Cx<'_>) {
        cx.now = Instant::now();
        cx.draining = self.has_requested && self.shutdown.is_requested();
    }
}

/// One open connection as the registry sees it.
pub(crate) struct Slot {
    stream: TcpStream,
}

/// The connections being served, so that a shutdown past its deadline can
/// reach their sockets from another thread.
#[derive(Default)]
struct Registry {
    slots: Mutex<Slab<Arc<Slot>>>,
    /// How many, for `Handle::open_connections`.
    open: Arc<AtomicUsize>,
}

impl Registry {
    fn insert(&self, stream: TcpStream) -> (usize, Arc<Slot>) {
        let slot = Arc::new(Slot { stream });
        let mut slots = lock(&self.slots);
        let key = slots.insert(Arc::clone(&slot));
        self.open.store(slots.len(), Ordering::Relaxed);
        (key, slot)
    }

    fn remove(&self, key: usize) {
        let mut slots = lock(&self.slots);
        slots.try_remove(key);
        self.open.store(slots.len(), Ordering::Relaxed);
    }

    fn len(&self) -> usize {
        lock(&self.slots).len()
    }

    /// The shutdown deadline has passed: shut every socket both ways, which
    /// ends any read or write blocked on it. Returns how many there were.
    fn cut_off(&self) -> usize {
        let slots = lock(&self.slots);
        for (_, slot) in slots.iter() {
            let _ = slot.stream.shutdown(Direction::Both);
        }
        slots.len()
    }
}

/// The listeners. Its lock is the *accept mutex*: one thread at a time
/// waits for a client, so a new client wakes one thread, not every idle one
/// (the thundering herd).
struct Acceptor {
    /// Emptied by [`Acceptor::close`].
    listeners: Mutex<Vec<TcpListener>>,
}

impl Acceptor {
    /// Sleeps until a client arrives on any listener; `None` once shutdown
    /// has been requested.
    fn accept(&self, shutdown: &Shutdown, alarm: &Alarm) -> Option<(TcpStream, SocketAddr)> {
        let listeners = lock(&self.listeners);
        let fds: Vec<BorrowedFd<'_>> = listeners
            .iter()
            .map(AsFd::as_fd)
            .chain([alarm.fd()])
            .collect();
        let mut ready = vec![false; fds.len()];
        loop {
            if shutdown.is_requested() || listeners.is_empty() {
                return None;
            }
            match sys::wait_readable(&fds, None, &mut ready) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    log::error!("poll: {e}");
                    alarm.sleep(Some(ACCEPT_BACKOFF));
                    continue;
                }
            }
            for (listener, _) in listeners.iter().zip(&ready).filter(|(_, r)| **r) {
                match listener.accept() {
                    Ok(client) => return Some(client),
                    // Gone before we got to it, or taken already.
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) if is_resource_exhaustion(&e) => {
                        // Still holding the accept lock: every thread pauses.
                        log::warn!("accept: {e}; pausing new connections for {ACCEPT_BACKOFF:?}");
                        alarm.sleep(Some(ACCEPT_BACKOFF));
                        break;
                    }
                    // ECONNABORTED and friends: that one client is gone; go on.
                    Err(e) => log::debug!("accept: {e}"),
                }
            }
        }
    }

    /// Accepts every client still queued on the listeners, then closes them
    /// (new clients are refused). Waits for the thread inside `accept` to
    /// leave, which the alarm makes prompt.
    fn accept_backlog_and_close(&self) -> Vec<(TcpStream, SocketAddr)> {
        let mut listeners = lock(&self.listeners);
        let mut queued = Vec::new();
        for listener in listeners.iter() {
            loop {
                match listener.accept() {
                    Ok(client) => queued.push(client),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) if is_resource_exhaustion(&e) => {
                        log::warn!(
                            "accept at shutdown: {e}; connections still queued will be reset"
                        );
                        break;
                    }
                    Err(e) => log::debug!("accept: {e}"),
                }
            }
        }
        listeners.clear();
        queued
    }
}

/// The connection cap as a counting semaphore: a thread takes a slot before
/// it accepts, so past `--max-connections` clients wait in the backlog.
struct Slots {
    /// Below zero while the backlog accepted at shutdown is served.
    free: Mutex<isize>,
    freed: Condvar,
}

impl Slots {
    fn new(max: usize) -> Slots {
        Slots {
            free: Mutex::new(isize::try_from(max).unwrap_or(isize::MAX)),
            freed: Condvar::new(),
        }
    }

    /// Takes a slot, waiting for one if need be; `false` once shutdown has
    /// been requested.
    fn acquire(&self, shutdown: &Shutdown) -> bool {
        let mut free = lock(&self.free);
        loop {
            // Checked under the lock that `wake_all` takes: no lost wake-up.
            if shutdown.is_requested() {
                return false;
            }
            if *free > 0 {
                *free -= 1;
                return true;
            }
            free = self.freed.wait(free).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// Takes a slot even if none is free (the backlog at shutdown).
    fn take_past_the_cap(&self) {
        *lock(&self.free) -= 1;
    }

    fn release(&self) {
        *lock(&self.free) += 1;
        self.freed.notify_one();
    }

    /// Shutdown: every waiter looks at the flag again.
    fn wake_all(&self) {
        let _free = lock(&self.free);
        self.freed.notify_all();
    }
}

/// Rings once, for good, when shutdown is requested: a socket pair whose
/// read end becomes readable and stays so (it is never read), so every
/// thread in `poll` on it wakes, now or later.
struct Alarm {
    bell: UnixStream,
    clapper: UnixStream,
}

impl Alarm {
    fn new() -> io::Result<Alarm> {
        let (bell, clapper) = UnixStream::pair()?;
        // Rung twice with a full buffer: it has rung, which is all we need.
        clapper.set_nonblocking(true)?;
        Ok(Alarm { bell, clapper })
    }

    fn ring(&self) {
        let _ = (&self.clapper).write(&[1]);
    }

    fn fd(&self) -> BorrowedFd<'_> {
        self.bell.as_fd()
    }

    /// Sleeps until the alarm rings or `timeout` passes.
    fn sleep(&self, timeout: Option<Duration>) {
        let mut ready = [false];
        if let Err(e) = sys::wait_readable(&[self.fd()], timeout, &mut ready) {
            if e.kind() != io::ErrorKind::Interrupted {
                log::error!("poll: {e}");
                // Not a hot loop if poll itself keeps failing.
                thread::sleep(ACCEPT_BACKOFF);
            }
        }
    }
}

/// Counts a model's threads still running, so that shutdown can wait for
/// them (and nothing they hold, such as the root directory's descriptor, is
/// still open when `Server::run` returns).
#[derive(Default)]
pub(crate) struct Running {
    count: Mutex<usize>,
    changed: Condvar,
}

/// One running thread; dropping it (the thread's last act) counts it out.
pub(crate) struct RunningThread(Arc<Running>);

impl Running {
    pub(crate) fn enter(self: &Arc<Self>) -> RunningThread {
        *lock(&self.count) += 1;
        RunningThread(Arc::clone(self))
    }

    fn count(&self) -> usize {
        *lock(&self.count)
    }

    /// Waits until no thread runs; `false` if `deadline` came first, or
    /// `abort` was set (see [`Running::wake`]).
    fn wait_until_none(&self, deadline: Instant, abort: &AtomicBool) -> bool {
        let mut count = lock(&self.count);
        while *count > 0 {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || abort.load(Ordering::SeqCst) {
                return false;
            }
            count = self
                .changed
                .wait_timeout(count, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        true
    }
}

impl Running {
    /// Makes a waiter look at its `abort` flag (set before calling this).
    fn wake(&self) {
        let _count = lock(&self.count);
        self.changed.notify_all();
    }
}

impl Drop for RunningThread {
    fn drop(&mut self) {
        *lock(&self.0.count) -= 1;
        self.0.changed.notify_all();
    }
}

/// Locks, ignoring poisoning: the data stays consistent (every critical
/// section above is a counter update or a slab insert or remove).
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A connected pair over loopback: (our blocking stream, the peer).
    fn pair() -> (BlockingStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let peer = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (ours, _) = listener.accept().unwrap();
        let slot = Arc::new(Slot { stream: ours });
        let shutdown = Arc::new(Shutdown::new(
            Arc::new(AtomicBool::new(false)),
            Box::new(|| {}),
        ));
        (BlockingStream::new(slot, shutdown), peer)
    }

    #[test]
    fn one_call_per_turn_may_block_and_only_until_the_deadline() {
        let (mut stream, mut peer) = pair();
        let mut buf = [0u8; 16];
        // Not armed: no call may block.
        let e = stream.read(&mut buf).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock);

        peer.write_all(b"hi").unwrap();
        stream.arm(None);
        assert_eq!(stream.read(&mut buf).unwrap(), 2);
        // The turn is spent: a second read would block with a stale deadline.
        let e = stream.read(&mut buf).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock);

        // Nothing to read: the read times out at the deadline.
        stream.arm(Some(Instant::now() + Duration::from_millis(20)));
        let e = stream.read(&mut buf).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
        assert_eq!(stream.read_timeout, Some(Duration::from_millis(20)));

        // A deadline already passed: no system call at all.
        stream.arm(Some(Instant::now()));
        let e = stream.read(&mut buf).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
    }

    #[test]
    fn refresh_reads_the_clock_and_the_shutdown_flag_once_a_request_came() {
        let (mut stream, _peer) = pair();
        let limits = Limits {
            max_head: 1024,
            header_timeout: Duration::from_secs(1),
            keepalive_timeout: Duration::from_secs(1),
        };
        let mut scratch = [0u8; 16];
        let mut spares = Spares::default();
        let before = Instant::now();
        let mut cx = Cx {
            now: before,
            limits: &limits,
            scratch: &mut scratch,
            draining: false,
            readable: true,
            read_closed: false,
            spares: &mut spares,
        };
        std::thread::sleep(Duration::from_millis(5));
        stream.shutdown.request();
        stream.refresh(&mut cx);
        assert!(cx.now >= before + Duration::from_millis(5));
        // No request yet: a client from the backlog is served normally.
        assert!(!cx.draining);
        stream.has_requested = true;
        stream.refresh(&mut cx);
        assert!(cx.draining);
    }

    #[test]
    fn the_wait_between_requests_ends_for_a_request_or_a_shutdown() {
        let (stream, mut peer) = pair();
        let alarm = Alarm::new().unwrap();
        let stream = &stream.slot.stream;
        let short = Duration::from_millis(10);
        assert!(matches!(
            wait_for_request(stream, &alarm, short),
            Between::Nothing
        ));
        alarm.ring();
        assert!(matches!(
            wait_for_request(stream, &alarm, short),
            Between::Shutdown
        ));
        // A request that came as the alarm rang is served.
        peer.write_all(b"GET").unwrap();
        assert!(matches!(
            wait_for_request(stream, &alarm, IO_LIMIT),
            Between::Request
        ));
    }

    /// Bounds a wait that should end at once.
    const IO_LIMIT: Duration = Duration::from_secs(20);
}
