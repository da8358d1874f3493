//! The event-loop model: one reactor thread ([`event_loop`]) with its
//! deadline heap ([`timer`]) owns every socket; a work-stealing [`pool`]
//! does the blocking file work (and the CPU-heavy step of each TLS
//! handshake) and hands answers back through the [`completion`] queue,
//! which wakes the reactor. Cold file windows are read in by a second,
//! smaller pool of warm-up threads ([`warm`]).
//!
//! `--reactors N` runs that shape N times: N loops, each with its own
//! poller, connections, timers and completion queue, sharing one pool and
//! the listeners. Every loop registers the same listening sockets (a `dup`
//! each) and accepts from them; see [`bind`] for why shared listeners and
//! not one `SO_REUSEPORT` socket per loop. Loop 0 runs on the thread that
//! calls `Server::run` and owns the signals; loops 1.. get their own
//! threads, named `stoke-reactor-K`.
//!
//! `--model reactor-inline` is the same loop with no pool: the reactor does
//! the file work itself ([`FileWork::Inline`]), the control that shows what
//! the pool buys (Flash's SPED against AMPED).
//!
//! Runs on: the reactor thread and the pool's worker threads.

use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize};
use std::sync::Arc;

use mio::net::TcpListener;
use mio::{Interest, Poll, Token, Waker};

use crate::models::{Listeners, Shutdown};
use crate::site::Site;
use crate::sys::listen_fds::{self, NoDelay};
use completion::CompletionQueue;
use event_loop::{Reactor, LISTENER_BASE, SIGNALS, WAKER};
use pool::{Pool, Priority};

pub mod completion;
pub mod event_loop;
pub mod pool;
pub mod stream;
pub mod timer;
pub mod warm;

/// Who runs `site::handle` for a complete request head.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileWork {
    /// The work-stealing pool's `--threads` workers (`reactor`).
    Pool,
    /// The reactor thread itself, between two polls (`reactor-inline`).
    Inline,
}

/// Sets up `--reactors` event loops on the bound listeners and starts the
/// pool. Returns loop 0, which holds the others until it runs them.
///
/// Shared listeners (each loop registers a `dup` of every listening socket)
/// rather than one `SO_REUSEPORT` socket per loop: it works the same for
/// sockets passed by a service manager (of which there is one each) and for
/// port 0; connections queued at shutdown are not lost, since the socket
/// closes only when the last loop drops its `dup` after draining the
/// backlog (closing one of a `SO_REUSEPORT` group resets its queue); and
/// whichever loop frees a connection slot can accept the client waiting in
/// the shared backlog. The price is that a new connection wakes every loop
/// (mio registers edge-triggered, without `EPOLLEXCLUSIVE`) and the losers'
/// `accept` says `EAGAIN`: one syscall per loop per burst of connections,
/// nothing per request.
pub(crate) fn bind(
    listeners: Listeners,
    site: Arc<Site>,
    work: FileWork,
) -> Result<Reactor, (&'static str, io::Error)> {
    let pool = match work {
        FileWork::Pool => Some(Arc::new(
            Pool::new(site.config.threads).map_err(|e| ("start worker threads", e))?,
        )),
        FileWork::Inline => None,
    };
    let n = site.config.reactors.max(1);
    // Every loop's warm-ups in flight at once get a thread: none waits
    // behind another loop's (they wait for the device, not for CPU).
    let warm_pool = match work {
        FileWork::Pool => Some(Arc::new(
            Pool::named(
                warm::warm_cap(site.config.threads) * n,
                "stoke-warm",
                Priority::Background,
            )
            .map_err(|e| ("start warm-up threads", e))?,
        )),
        FileWork::Inline => None,
    };
    let shared = Arc::new(Shared {
        shutdown_requested: Arc::new(AtomicBool::new(false)),
        abort_requested: AtomicBool::new(false),
        open: Arc::new(AtomicUsize::new(0)),
        warmups: Arc::new(AtomicU64::new(0)),
        handoffs: Arc::new(AtomicU64::new(0)),
        running: AtomicUsize::new(n),
        loop_open: (0..n).map(|_| AtomicUsize::new(0)).collect(),
        accept_asked: (0..n).map(|_| AtomicBool::new(false)).collect(),
    });
    // Each loop's listeners are clones of these sockets: one option each.
    let nodelay = if listeners
        .sockets
        .iter()
        .all(|l| listen_fds::nodelay_for_accepted(l) == NoDelay::Inherited)
    {
        NoDelay::Inherited
    } else {
        NoDelay::PerConnection
    };
    let mut loops = Vec::with_capacity(n);
    for index in 0..n {
        let poll = Poll::new().map_err(|e| ("create the poller", e))?;
        let mut registered = Vec::with_capacity(listeners.sockets.len());
        for (i, listener) in listeners.sockets.iter().enumerate() {
            let listener = listener
                .try_clone()
                .map_err(|e| ("share a listener between event loops", e))?;
            listener
                .set_nonblocking(true)
                .map_err(|e| ("register a listener", e))?;
            let mut listener = TcpListener::from_std(listener);
            poll.registry()
                .register(&mut listener, Token(LISTENER_BASE + i), Interest::READABLE)
                .map_err(|e| ("register a listener", e))?;
            registered.push(listener);
        }
        let waker = Waker::new(poll.registry(), WAKER).map_err(|e| ("create the waker", e))?;
        let completions = Arc::new(CompletionQueue::new(waker));
        let mut reactor = Reactor::new(
            poll,
            registered,
            pool.clone(),
            Arc::clone(&site),
            completions,
            index,
            Arc::clone(&shared),
        );
        reactor.listener_kinds = listeners.kinds.clone();
        reactor.tls = listeners.tls.clone();
        reactor.https_port = listeners.https_port;
        reactor.nodelay = nodelay;
        reactor.warm_pool = warm_pool.clone();
        loops.push(reactor);
    }
    // Every loop can wake every other (signals arrive at loop 0 only).
    let queues: Vec<Arc<CompletionQueue>> =
        loops.iter().map(|r| Arc::clone(&r.completions)).collect();
    for reactor in &mut loops {
        reactor.peers = queues.clone();
    }
    let mut first = loops.remove(0);
    first.siblings = loops;
    Ok(first)
}

/// What the event loops of one server share.
pub(crate) struct Shared {
    /// Set (by a signal or a `Handle`) to ask for a graceful shutdown.
    pub shutdown_requested: Arc<AtomicBool>,
    /// A second signal: stop waiting for busy connections.
    pub abort_requested: AtomicBool,
    /// Connections open in all loops: what `--max-connections` bounds and
    /// `Handle::open_connections` reports.
    pub open: Arc<AtomicUsize>,
    /// File ranges warmed off the loops (`Handle::file_warmups`).
    pub warmups: Arc<AtomicU64>,
    /// Batches of request jobs handed to the pool (`Handle::pool_handoffs`).
    pub handoffs: Arc<AtomicU64>,
    /// Loops not finished yet: loop 0 keeps polling (for a second signal)
    /// until the others are done.
    pub running: AtomicUsize,
    /// Per loop: its connections as of its last turn (to pick who accepts).
    pub loop_open: Vec<AtomicUsize>,
    /// Per loop: another loop left it the backlog (`Reactor::accept`).
    pub accept_asked: Vec<AtomicBool>,
}

/// The shutdown request a `Handle` makes: set the flag, wake every loop.
pub(crate) fn shutdown(reactor: &Reactor) -> Arc<Shutdown> {
    let queues = reactor.peers.clone();
    Arc::new(Shutdown::new(
        Arc::clone(&reactor.shared.shutdown_requested),
        Box::new(move || {
            for queue in &queues {
                queue.wake();
            }
        }),
    ))
}

/// Shut down gracefully on SIGINT and SIGTERM, reload the TLS certificate on
/// SIGHUP: the signals arrive as events of the loop's own poller. (SIGPIPE needs nothing: Rust programs start
/// with it ignored, so a write to a closed socket is an `EPIPE` error.)
pub(crate) fn handle_signals(reactor: &mut Reactor) -> io::Result<()> {
    let mut signals = signal_hook_mio::v1_0::Signals::new([
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGHUP,
    ])?;
    reactor
        .poll
        .registry()
        .register(&mut signals, SIGNALS, Interest::READABLE)?;
    reactor.signals = Some(signals);
    Ok(())
}
