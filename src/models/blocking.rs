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
//! - a `Dispatch` is answered right here with `site::handle`, a `Yield`
//!   (write budget used) is just another turn.
//!
//! Shutdown has to reach threads asleep in `poll`, in `accept` and in `read`.
//! The accepting threads wait in `poll(2)` on the listeners *and* the
//! `Alarm`, which rings on shutdown. A thread asleep in `read` on an idle
//! keep-alive connection is woken by the shutdown thread half-closing that
//! socket (`shutdown(SHUT_RD)`: the read returns EOF), which is why every
//! open connection is in the `Registry`; past the deadline the rest are
//! shut both ways, which ends any blocked write too.
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

use crate::conn::{Action, Connection, Cx, Limits, Transport};
use crate::http::request::RequestHead;
use crate::models::{
    blocking_pool, is_resource_exhaustion, thread_per_conn, Shutdown, Summary, ACCEPT_BACKOFF,
    SCRATCH_SIZE,
};
use crate::site::{self, Site};
use crate::sys;
use crate::trace;

/// After the shutdown deadline has cut the last connections off, how long we
/// still wait for their threads to notice. A thread blocked on the socket
/// wakes at once; one stuck in the file system (a hung network mount) can't
/// be woken, and is left behind rather than holding the process forever.
const CUT_OFF_GRACE: Duration = Duration::from_secs(1);

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
        // On BSD an accepted socket inherits the listener's non-blocking
        // flag; this driver needs it blocking.
        let _ = stream.set_nonblocking(false);
        // Responses go out whole; Nagle's delay would only slow the last packet.
        let _ = stream.set_nodelay(true);
        self.connections.fetch_add(1, Ordering::Relaxed);
        let (key, slot) = self.registry.insert(stream);
        Some(Client {
            shared: Arc::clone(self),
            key,
            slot,
            peer,
        })
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

    /// The graceful shutdown, once a shutdown was requested: close idle
    /// connections and the listeners, let busy connections finish until the
    /// shutdown deadline (or a second signal), cut off the rest, and wait
    /// for the model's threads.
    pub(crate) fn drain(&self) -> Summary {
        let running = &*self.running;
        // Draining first: a head parsed from now on is answered with
        // `Connection: close`, before a client can notice the closed listener.
        let busy = self.registry.begin_drain();
        self.acceptor.close();
        log::info!(
            "stopped accepting; waiting up to {:?} for {busy} connections in flight",
            self.shutdown_timeout
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

/// What the driver does next for its connection.
enum Next {
    /// Let the connection make progress on its socket (or time out).
    Resume,
    /// Answer this request (the `Dispatch` the connection asked for).
    Answer(Box<RequestHead>),
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
    let stream = BlockingStream::new(
        Arc::clone(&client.slot),
        Arc::clone(&shared.registry.draining),
    );
    let mut conn = Connection::new(stream, peer, Instant::now());
    let mut requests = 0;
    // What the registry was last told: is this connection idle?
    let mut marked_idle = false;
    let mut next = Next::Resume;
    loop {
        let idle = conn.is_idle();
        if let Next::Resume = next {
            // Tell the registry first, then look at `draining`: a shutdown
            // starting meanwhile either is seen here (and an idle connection
            // does not wait in `read`) or sees us idle and wakes our read.
            if idle != marked_idle {
                client.slot.idle.store(idle, Ordering::SeqCst);
                marked_idle = idle;
            }
        }
        let now = Instant::now();
        let mut cx = Cx {
            now,
            limits,
            scratch: &mut *scratch,
            draining: shared.registry.is_draining(),
            readable: true,
            read_closed: false,
        };
        let action = match next {
            Next::Answer(head) => {
                requests += 1;
                let story = conn.trace_story();
                if let Some(s) = story {
                    let thread = thread::current();
                    let name = thread.name().unwrap_or("?");
                    s.stage(format_args!("file work on this thread ({name})"));
                }
                let response = trace::handling(story, || site::handle(&shared.site, &head, peer));
                if let Some(s) = story {
                    s.stage(format_args!("answer ready ({})", response.status.0));
                }
                conn.complete(response, &mut cx)
            }
            Next::Resume => match conn.deadline(limits) {
                Some(deadline) if deadline <= now => conn.on_timeout(&mut cx),
                deadline => {
                    // Draining: an idle connection only takes a request that
                    // has already arrived (as the reactor's does), and closes
                    // rather than wait for one in `read`.
                    let turn = if idle && cx.draining {
                        Turn::NoWait
                    } else {
                        Turn::MayBlock { until: deadline }
                    };
                    conn.transport_mut().arm(turn);
                    let action = conn.resume(&mut cx);
                    conn.transport_mut().disarm();
                    action
                }
            },
        };
        next = match action {
            // Blocking I/O never waits for readiness: "wait" here means a
            // call timed out or this turn's one blocking call was made.
            Action::Wait | Action::Yield => Next::Resume,
            Action::Dispatch(head) => Next::Answer(head),
            Action::Close => break,
        };
    }
    shared.requests.fetch_add(requests, Ordering::Relaxed);
}

/// Whether the next socket call of this turn may block, and until when.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Turn {
    /// One call may block until the deadline (`None`: no deadline).
    MayBlock { until: Option<Instant> },
    /// One call, which must not block (it reports `WouldBlock` instead).
    NoWait,
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
    /// The registry's `draining`.
    draining: Arc<AtomicBool>,
    turn: Turn,
    /// The timeouts set on the socket (whole milliseconds, so a deadline a
    /// few microseconds further away costs no `setsockopt`).
    read_timeout: Option<Duration>,
    write_timeout: Option<Duration>,
}

impl BlockingStream {
    fn new(slot: Arc<Slot>, draining: Arc<AtomicBool>) -> BlockingStream {
        BlockingStream {
            slot,
            draining,
            turn: Turn::Spent,
            read_timeout: None,
            write_timeout: None,
        }
    }

    /// Allows one call this turn, as `turn` says.
    pub(crate) fn arm(&mut self, turn: Turn) {
        self.turn = turn;
    }

    pub(crate) fn disarm(&mut self) {
        self.turn = Turn::Spent;
    }

    /// Uses up the turn: how long the call may wait, or `WouldBlock` when
    /// no call may be made now (turn spent, or deadline reached).
    fn take_turn(&mut self) -> io::Result<Wait> {
        let until = match std::mem::replace(&mut self.turn, Turn::Spent) {
            Turn::Spent => return Err(io::ErrorKind::WouldBlock.into()),
            Turn::NoWait => return Ok(Wait::No),
            Turn::MayBlock { until: None } => return Ok(Wait::Up(None)),
            Turn::MayBlock { until: Some(until) } => until,
        };
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        // Rounded up: the call must not return before the deadline.
        let millis = left.as_nanos().div_ceil(1_000_000) as u64;
        Ok(Wait::Up(Some(Duration::from_millis(millis))))
    }

    fn prepare_write(&mut self) -> io::Result<()> {
        // Only an idle connection's read is ever asked not to wait.
        let timeout = match self.take_turn()? {
            Wait::Up(timeout) => timeout,
            Wait::No => return Err(io::ErrorKind::WouldBlock.into()),
        };
        if timeout != self.write_timeout {
            self.slot.stream.set_write_timeout(timeout)?;
            self.write_timeout = timeout;
        }
        Ok(())
    }
}

/// How long this turn's call may wait.
enum Wait {
    /// Up to the socket timeout (`None`: no limit).
    Up(Option<Duration>),
    /// Not at all.
    No,
}

impl Transport for BlockingStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.take_turn()? {
            Wait::Up(timeout) => {
                if timeout != self.read_timeout {
                    self.slot.stream.set_read_timeout(timeout)?;
                    self.read_timeout = timeout;
                }
                (&self.slot.stream).read(buf)
            }
            // Rare (once per idle connection in a shutdown): two more
            // system calls rather than a `recv` flag std does not offer.
            Wait::No => {
                self.slot.stream.set_nonblocking(true)?;
                let result = (&self.slot.stream).read(buf);
                self.slot.stream.set_nonblocking(false)?;
                result
            }
        }
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
        cx.draining = self.draining.load(Ordering::SeqCst);
    }
}

/// One open connection as the registry sees it.
pub(crate) struct Slot {
    stream: TcpStream,
    /// Idle between requests: shutdown wakes its thread's `read`.
    idle: AtomicBool,
}

/// The connections being served, so that shutdown can reach their sockets
/// from another thread.
#[derive(Default)]
struct Registry {
    slots: Mutex<Slab<Arc<Slot>>>,
    /// How many, for `Handle::open_connections`.
    open: Arc<AtomicUsize>,
    /// Shutdown has begun: connections finish their response, then close.
    draining: Arc<AtomicBool>,
}

impl Registry {
    fn insert(&self, stream: TcpStream) -> (usize, Arc<Slot>) {
        let slot = Arc::new(Slot {
            stream,
            idle: AtomicBool::new(false),
        });
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

    fn is_draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }

    /// Starts draining and wakes every idle connection's thread (its `read`
    /// returns EOF, and the connection closes as the reactor closes its idle
    /// ones). Returns how many connections are busy.
    fn begin_drain(&self) -> usize {
        self.draining.store(true, Ordering::SeqCst);
        let slots = lock(&self.slots);
        let mut busy = 0;
        for (_, slot) in slots.iter() {
            if slot.idle.load(Ordering::SeqCst) {
                let _ = slot.stream.shutdown(Direction::Read);
            } else {
                busy += 1;
            }
        }
        busy
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

    /// Closes the listeners: new clients are refused. Waits for the thread
    /// inside `accept` to leave, which the alarm makes prompt.
    fn close(&self) {
        lock(&self.listeners).clear();
    }
}

/// The connection cap as a counting semaphore: a thread takes a slot before
/// it accepts, so past `--max-connections` clients wait in the backlog.
struct Slots {
    free: Mutex<usize>,
    freed: Condvar,
}

impl Slots {
    fn new(max: usize) -> Slots {
        Slots {
            free: Mutex::new(max),
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
        let slot = Arc::new(Slot {
            stream: ours,
            idle: AtomicBool::new(false),
        });
        let draining = Arc::new(AtomicBool::new(false));
        (BlockingStream::new(slot, draining), peer)
    }

    #[test]
    fn one_call_per_turn_may_block_and_only_until_the_deadline() {
        let (mut stream, mut peer) = pair();
        let mut buf = [0u8; 16];
        // Not armed: no call may block.
        let e = stream.read(&mut buf).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock);

        peer.write_all(b"hi").unwrap();
        stream.arm(Turn::MayBlock { until: None });
        assert_eq!(stream.read(&mut buf).unwrap(), 2);
        // The turn is spent: a second read would block with a stale deadline.
        let e = stream.read(&mut buf).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock);

        // Nothing to read: the read times out at the deadline.
        stream.arm(Turn::MayBlock {
            until: Some(Instant::now() + Duration::from_millis(20)),
        });
        let e = stream.read(&mut buf).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
        assert_eq!(stream.read_timeout, Some(Duration::from_millis(20)));

        // A deadline already passed: no system call at all.
        stream.arm(Turn::MayBlock {
            until: Some(Instant::now()),
        });
        let e = stream.read(&mut buf).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
    }

    /// An idle connection during a shutdown takes a request that already
    /// arrived, but must not wait in `read` for one (its thread would hold
    /// the shutdown until the keep-alive timeout).
    #[test]
    fn a_no_wait_turn_reads_what_is_there_and_never_blocks() {
        let (mut stream, mut peer) = pair();
        let mut buf = [0u8; 16];
        stream.arm(Turn::NoWait);
        let e = stream.read(&mut buf).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock);

        peer.write_all(b"GET").unwrap();
        // Until the bytes are there (loopback: at once, but not atomically).
        let deadline = Instant::now() + Duration::from_secs(10);
        let n = loop {
            stream.arm(Turn::NoWait);
            match stream.read(&mut buf) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock && Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err(e) => panic!("{e}"),
            }
        };
        assert_eq!(&buf[..n], b"GET");
        // And the socket is blocking again for the next turn.
        peer.write_all(b"!").unwrap();
        stream.arm(Turn::MayBlock { until: None });
        assert_eq!(stream.read(&mut buf).unwrap(), 1);
    }

    #[test]
    fn refresh_reads_the_clock_and_the_draining_flag() {
        let (stream, _peer) = pair();
        let limits = Limits {
            max_head: 1024,
            header_timeout: Duration::from_secs(1),
            keepalive_timeout: Duration::from_secs(1),
        };
        let mut scratch = [0u8; 16];
        let before = Instant::now();
        let mut cx = Cx {
            now: before,
            limits: &limits,
            scratch: &mut scratch,
            draining: false,
            readable: true,
            read_closed: false,
        };
        std::thread::sleep(Duration::from_millis(5));
        stream.draining.store(true, Ordering::SeqCst);
        stream.refresh(&mut cx);
        assert!(cx.now >= before + Duration::from_millis(5));
        assert!(cx.draining);
    }
}
