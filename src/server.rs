//! Starting and stopping a server: binds the listeners, starts the worker
//! pool and hands everything to the reactor. The public face of the library
//! (`main.rs` and the tests use only this).
//!
//! Runs on: whichever thread calls [`Server::bind`] and [`Server::run`]; that
//! thread becomes the reactor.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use mio::net::TcpListener;
use mio::{Interest, Poll, Token, Waker};

use crate::config::Config;
use crate::models::reactor::completion::CompletionQueue;
use crate::models::reactor::event_loop::{Reactor, LISTENER_BASE, SIGNALS, WAKER};
use crate::models::reactor::pool::Pool;
use crate::models::Summary;
use crate::site::Site;

/// Descriptors kept out of the connection cap for the server itself: stdio,
/// the poller and its waker, the signal pipe, the root directory, and room
/// to spare (the listeners come on top).
const FD_RESERVE_BASE: u64 = 16;

/// Descriptors one worker may hold at once while answering: a directory,
/// its index file and two precompressed sidecars.
const FD_PER_WORKER: u64 = 4;

/// Descriptors one connection may hold: its socket, and the file a large
/// response is sent from.
const FD_PER_CONNECTION: u64 = 2;

/// The most connections `limit` descriptors can serve with the workers'
/// file work always able to open its files: what is left after the reserve,
/// two per connection (lighttpd caps at half its descriptors the same way;
/// nginx warns when `worker_connections` exceeds the limit). Without it the
/// connections alone could take every descriptor, and every request would
/// then fail to open its file.
fn connection_cap(limit: u64, listeners: usize, threads: usize) -> usize {
    let reserve = FD_RESERVE_BASE + listeners as u64 + FD_PER_WORKER * threads as u64;
    let cap = limit.saturating_sub(reserve) / FD_PER_CONNECTION;
    usize::try_from(cap).unwrap_or(usize::MAX).max(1)
}

/// Why the server could not start.
#[derive(Debug)]
pub enum StartError {
    /// Binding a listen address failed (in use, not available, no permission).
    Bind(SocketAddr, io::Error),
    /// Anything else the OS refused (poller, threads, the root directory).
    Io(&'static str, io::Error),
    /// `--user`: the switch to that user failed.
    User(String, io::Error),
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StartError::Bind(addr, e) => write!(f, "cannot listen on {addr}: {e}"),
            StartError::Io(what, e) => write!(f, "cannot {what}: {e}"),
            StartError::User(user, e) => write!(f, "cannot switch to user {user:?}: {e}"),
        }
    }
}

impl std::error::Error for StartError {}

/// A bound server, ready to [`run`](Server::run).
pub struct Server {
    reactor: Reactor,
    addrs: Vec<SocketAddr>,
}

/// Asks a running server to shut down gracefully, from any thread.
#[derive(Clone)]
pub struct Handle {
    flag: Arc<AtomicBool>,
    queue: Arc<CompletionQueue>,
    open: Arc<AtomicUsize>,
}

impl Handle {
    /// Connections the reactor holds (as of its last loop turn).
    pub fn open_connections(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    pub fn shutdown(&self) {
        self.flag.store(true, Ordering::Release);
        self.queue.wake();
    }
}

impl Server {
    /// Binds every listen address and starts the workers. Port 0 picks a
    /// free port; [`Server::local_addrs`] tells which.
    pub fn bind(mut config: Config) -> Result<Server, StartError> {
        let poll = Poll::new().map_err(|e| StartError::Io("create the poller", e))?;
        let mut listeners = Vec::new();
        let mut addrs = Vec::new();
        for (i, addr) in config.listen.iter().enumerate() {
            let mut listener = TcpListener::bind(*addr).map_err(|e| StartError::Bind(*addr, e))?;
            poll.registry()
                .register(&mut listener, Token(LISTENER_BASE + i), Interest::READABLE)
                .map_err(|e| StartError::Io("register a listener", e))?;
            addrs.push(
                listener
                    .local_addr()
                    .map_err(|e| StartError::Io("read the listen address", e))?,
            );
            listeners.push(listener);
        }
        // Said once the server has started, not before a start-up error.
        let mut lowered_cap = None;
        if let Some(limit) = crate::sys::descriptor_limit() {
            let cap = connection_cap(limit, config.listen.len(), config.threads);
            if cap < config.max_connections {
                lowered_cap = Some((config.max_connections, limit));
                config.max_connections = cap;
            }
        }
        let config = Arc::new(config);
        if let Some(user) = &config.user {
            crate::sys::drop_privileges(user).map_err(|e| StartError::User(user.clone(), e))?;
        }
        let waker = Waker::new(poll.registry(), WAKER)
            .map_err(|e| StartError::Io("create the waker", e))?;
        let completions = Arc::new(CompletionQueue::new(waker));
        let site = Arc::new(
            Site::new(Arc::clone(&config)).map_err(|e| StartError::Io("open the root", e))?,
        );
        let pool =
            Pool::new(config.threads).map_err(|e| StartError::Io("start worker threads", e))?;
        let reactor = Reactor::new(poll, listeners, pool, site, completions);
        if let Some((configured, limit)) = lowered_cap {
            log::warn!(
                "serving at most {} connections, not {configured}: the descriptor limit \
                 (ulimit -n) is {limit}, and each connection may need {FD_PER_CONNECTION} \
                 (its socket and a file) beside those kept for the server and its \
                 workers; raise the limit to serve more",
                config.max_connections
            );
        }
        Ok(Server { reactor, addrs })
    }

    /// The addresses actually bound (useful with port 0).
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    pub fn handle(&self) -> Handle {
        Handle {
            flag: Arc::clone(&self.reactor.shutdown_requested),
            queue: Arc::clone(&self.reactor.completions),
            open: Arc::clone(&self.reactor.open),
        }
    }

    /// Shut down gracefully on SIGINT and SIGTERM. (SIGPIPE needs nothing:
    /// Rust programs start with it ignored, so a write to a closed socket is
    /// an `EPIPE` error, never a death.)
    pub fn handle_signals(&mut self) -> io::Result<()> {
        let mut signals = signal_hook_mio::v1_0::Signals::new([
            signal_hook::consts::SIGINT,
            signal_hook::consts::SIGTERM,
        ])?;
        self.reactor
            .poll
            .registry()
            .register(&mut signals, SIGNALS, Interest::READABLE)?;
        self.reactor.signals = Some(signals);
        Ok(())
    }

    /// Runs the reactor on this thread until a graceful shutdown completes.
    pub fn run(self) -> io::Result<Summary> {
        self.reactor.run()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_cap_leaves_descriptors_for_files() {
        // ulimit -n 1024, one listener, 8 workers: (1024 - 16 - 1 - 32) / 2.
        assert_eq!(connection_cap(1024, 1, 8), 487);
        // Every connection at the cap sending a file, every worker holding
        // its most: still within the limit.
        let (limit, threads) = (64, 2);
        let cap = connection_cap(limit, 1, threads) as u64;
        assert!(cap * FD_PER_CONNECTION + FD_PER_WORKER * threads as u64 + 1 < limit);
        // A limit below the reserve still serves one connection.
        assert_eq!(connection_cap(10, 1, 64), 1);
    }
}
