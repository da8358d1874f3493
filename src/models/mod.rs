//! The ways of running the shared core (`conn` + `site`) on threads and
//! sockets. Only this folder knows about mio, pools, wakers and blocking
//! sockets; everything it drives is shared, so for the same request every
//! model sends the same bytes and enforces the same limits.
//!
//! | `--model` | who reads and writes sockets | who does the file work |
//! |---|---|---|
//! | `reactor` | one [`reactor`] thread, non-blocking | the work-stealing pool |
//! | `reactor-inline` | one [`reactor`] thread, non-blocking | that same thread |
//! | `pool` | `--threads` [`blocking_pool`] threads, one client each | the client's thread |
//! | `thread-per-connection` | a new [`thread_per_conn`] thread per client | the client's thread |
//!
//! The two blocking models share their driver ([`blocking`]) and differ only
//! in who owns the threads; docs/MODELS.md compares all four.
//!
//! Runs on: the threads each model starts.

use std::io;
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use crate::config::ListenKind;
use crate::limits::{ACCEPT_BACKOFF, SCRATCH_SIZE};
use crate::site::Site;
use crate::tls::Tls;

pub mod blocking;
pub mod blocking_pool;
pub mod reactor;
pub mod thread_per_conn;

/// The `--model` choice. Defined with the configuration, which reads it,
/// so that `config` does not depend on the models that it configures.
pub use crate::config::Model;

/// Counters for the shutdown summary, the same for every model.
#[derive(Debug, Default, Clone, Copy)]
pub struct Summary {
    pub connections: u64,
    pub requests: u64,
    /// Connections still open when the shutdown deadline passed (or a
    /// second signal arrived).
    pub cut_off: usize,
    /// A second signal ended the shutdown early.
    pub forced: bool,
    /// Requests queued for a worker and never run.
    pub dropped_jobs: usize,
    /// Workers still inside a job at exit (not waited for).
    pub busy_workers: usize,
}

impl Summary {
    /// Adds another event loop's counts to these (`--reactors`).
    pub(crate) fn add(&mut self, other: &Summary) {
        self.connections += other.connections;
        self.requests += other.requests;
        self.cut_off += other.cut_off;
        self.forced |= other.forced;
    }
}

/// `accept` errors that mean "no descriptors or memory right now".
pub(crate) fn is_resource_exhaustion(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
    )
}

/// A graceful-shutdown request, shared by a running model and every
/// `Handle`: a flag, and how to wake the model's sleeping threads so they
/// look at it (the reactor's waker; the blocking models' alarm).
pub struct Shutdown {
    requested: Arc<AtomicBool>,
    wake: Box<dyn Fn() + Send + Sync>,
}

impl Shutdown {
    pub(crate) fn new(requested: Arc<AtomicBool>, wake: Box<dyn Fn() + Send + Sync>) -> Shutdown {
        Shutdown { requested, wake }
    }

    /// Asks for a graceful shutdown (from any thread; repeating is harmless).
    pub fn request(&self) {
        self.requested.store(true, Ordering::Release);
        (self.wake)();
    }

    pub fn is_requested(&self) -> bool {
        self.requested.load(Ordering::Acquire)
    }
}

/// The bound listening sockets and what each serves (all plain HTTP for
/// the blocking models; see `server.rs`).
pub(crate) struct Listeners {
    pub sockets: Vec<TcpListener>,
    pub kinds: Vec<ListenKind>,
    pub tls: Option<Arc<Tls>>,
    /// The port redirects point to (the first HTTPS listener's).
    pub https_port: u16,
}

/// A model set up by `Server::bind`: listeners bound, ready to run.
pub(crate) enum Bound {
    /// Boxed: the reactor's state is large and the enum is moved around.
    Reactor(Box<reactor::event_loop::Reactor>),
    Blocking(blocking::Bound),
}

impl Bound {
    /// Sets up `model` on the bound `listeners`. The error names what failed.
    pub(crate) fn new(
        model: Model,
        listeners: Listeners,
        site: Arc<Site>,
    ) -> Result<Bound, (&'static str, io::Error)> {
        Ok(match model {
            Model::Reactor => Bound::Reactor(Box::new(reactor::bind(
                listeners,
                site,
                reactor::FileWork::Pool,
            )?)),
            Model::ReactorInline => Bound::Reactor(Box::new(reactor::bind(
                listeners,
                site,
                reactor::FileWork::Inline,
            )?)),
            Model::Pool => Bound::Blocking(blocking::Bound::new(
                listeners.sockets,
                site,
                blocking::Threads::Pool,
            )?),
            Model::ThreadPerConnection => Bound::Blocking(blocking::Bound::new(
                listeners.sockets,
                site,
                blocking::Threads::PerConnection,
            )?),
        })
    }

    pub(crate) fn shutdown(&self) -> Arc<Shutdown> {
        match self {
            Bound::Reactor(r) => reactor::shutdown(r),
            Bound::Blocking(b) => b.shutdown(),
        }
    }

    /// Connections open right now, for `Handle::open_connections`.
    pub(crate) fn open(&self) -> Arc<AtomicUsize> {
        match self {
            Bound::Reactor(r) => Arc::clone(&r.shared.open),
            Bound::Blocking(b) => b.open(),
        }
    }

    /// File ranges warmed off the reactor (blocking models: never).
    pub(crate) fn warmups(&self) -> Arc<AtomicU64> {
        match self {
            Bound::Reactor(r) => Arc::clone(&r.shared.warmups),
            Bound::Blocking(_) => Arc::new(AtomicU64::new(0)),
        }
    }

    /// Batches of jobs handed to the pool (blocking models: never).
    pub(crate) fn handoffs(&self) -> Arc<AtomicU64> {
        match self {
            Bound::Reactor(r) => Arc::clone(&r.shared.handoffs),
            Bound::Blocking(_) => Arc::new(AtomicU64::new(0)),
        }
    }

    /// SIGINT and SIGTERM ask for a graceful shutdown.
    pub(crate) fn handle_signals(&mut self) -> io::Result<()> {
        match self {
            Bound::Reactor(r) => reactor::handle_signals(r),
            Bound::Blocking(b) => b.handle_signals(),
        }
    }

    /// Runs on this thread until a graceful shutdown completes.
    pub(crate) fn run(self) -> io::Result<Summary> {
        match self {
            Bound::Reactor(r) => r.run(),
            Bound::Blocking(b) => b.run(),
        }
    }
}
