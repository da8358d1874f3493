//! Starting and stopping a server: binds the listeners, starts the worker
//! pool and hands everything to the reactor. The public face of the library
//! (`main.rs` and the tests use only this).
//!
//! Runs on: whichever thread calls [`Server::bind`] and [`Server::run`]; that
//! thread becomes the reactor.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use mio::net::TcpListener;
use mio::{Interest, Poll, Token, Waker};

use crate::config::{Config, ListenKind};
use crate::models::reactor::completion::CompletionQueue;
use crate::models::reactor::event_loop::{Reactor, LISTENER_BASE, SIGNALS, WAKER};
use crate::models::reactor::pool::Pool;
use crate::models::Summary;
use crate::site::Site;
use crate::tls::Tls;

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
    /// The TLS certificate or key cannot be used.
    Tls(crate::tls::TlsError),
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StartError::Bind(addr, e) => write!(f, "cannot listen on {addr}: {e}"),
            StartError::Io(what, e) => write!(f, "cannot {what}: {e}"),
            StartError::User(user, e) => write!(f, "cannot switch to user {user:?}: {e}"),
            StartError::Tls(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for StartError {}

// ---- production: socket activation, SO_REUSEPORT (src/sys/listen_fds.rs) ----

/// The listening sockets and what each serves: those passed by a service
/// manager (socket activation; then the configured addresses are not
/// bound), else the configured addresses, bound here.
fn open_listeners(config: &Config) -> Result<(Vec<TcpListener>, Vec<ListenKind>), StartError> {
    let inherited = crate::sys::listen_fds::inherited()
        .map_err(|e| StartError::Io("use the sockets passed by the service manager", e))?;
    if let Some(sockets) = inherited.filter(|s| !s.is_empty()) {
        log::info!(
            "socket activation: serving {} passed socket(s); --listen addresses are not bound",
            sockets.len()
        );
        return Ok(sockets
            .into_iter()
            .map(|s| (TcpListener::from_std(s.listener), kind_of_name(&s.name)))
            .unzip());
    }
    let mut listeners = Vec::new();
    let mut kinds = Vec::new();
    for (addr, kind) in config.listeners() {
        let listener = if config.reuse_port {
            crate::sys::listen_fds::bind_reuse_port(addr).map(TcpListener::from_std)
        } else {
            TcpListener::bind(addr)
        };
        listeners.push(listener.map_err(|e| StartError::Bind(addr, e))?);
        kinds.push(kind);
    }
    Ok((listeners, kinds))
}

/// What a socket passed by the service manager serves, by its name
/// (`FileDescriptorName=` in the .socket unit).
fn kind_of_name(name: &str) -> ListenKind {
    match name {
        "https" => ListenKind::Https,
        "http-redirect" => ListenKind::RedirectToHttps,
        _ => ListenKind::Http,
    }
}

/// A certificate needs an HTTPS listener and the other way round.
fn check_tls_listeners(kinds: &[ListenKind], have_tls: bool) -> Result<(), StartError> {
    let https = kinds.contains(&ListenKind::Https);
    let message = match (https, have_tls) {
        (true, false) => "an HTTPS socket was passed (named \"https\") but no --tls-cert/--tls-key",
        (false, true) => "--tls-cert/--tls-key given but no HTTPS listener (--listen-tls, or a passed socket named \"https\")",
        _ => return Ok(()),
    };
    Err(StartError::Io(
        "serve HTTPS",
        io::Error::new(io::ErrorKind::InvalidInput, message),
    ))
}

/// A bound server, ready to [`run`](Server::run).
pub struct Server {
    reactor: Reactor,
    addrs: Vec<SocketAddr>,
    kinds: Vec<ListenKind>,
    compressions: Arc<AtomicU64>,
}

/// Asks a running server to shut down gracefully, from any thread.
#[derive(Clone)]
pub struct Handle {
    flag: Arc<AtomicBool>,
    queue: Arc<CompletionQueue>,
    open: Arc<AtomicUsize>,
    compressions: Arc<AtomicU64>,
}

impl Handle {
    /// Times a file was compressed on the fly (cache hits not counted).
    pub fn compressions(&self) -> u64 {
        self.compressions.load(Ordering::Relaxed)
    }

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
        // Before binding: a bad certificate is a start-up error, not a
        // failure of every handshake later.
        let tls = match &config.tls {
            Some(files) => Some(Arc::new(Tls::load(files).map_err(StartError::Tls)?)),
            None => None,
        };
        let poll = Poll::new().map_err(|e| StartError::Io("create the poller", e))?;
        let mut listeners = Vec::new();
        let mut addrs = Vec::new();
        let (bound, kinds) = open_listeners(&config)?;
        check_tls_listeners(&kinds, tls.is_some())?;
        for (i, mut listener) in bound.into_iter().enumerate() {
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
            let cap = connection_cap(limit, listeners.len(), config.threads);
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
        let compressions = site.compressor.counter();
        let pool =
            Pool::new(config.threads).map_err(|e| StartError::Io("start worker threads", e))?;
        let mut reactor = Reactor::new(poll, listeners, pool, site, completions);
        reactor.listener_kinds = kinds.clone();
        reactor.https_port = addrs
            .iter()
            .zip(&kinds)
            .find(|(_, k)| **k == ListenKind::Https)
            .map_or(443, |(a, _)| a.port());
        reactor.tls = tls;
        if let Some((configured, limit)) = lowered_cap {
            log::warn!(
                "serving at most {} connections, not {configured}: the descriptor limit \
                 (ulimit -n) is {limit}, and each connection may need {FD_PER_CONNECTION} \
                 (its socket and a file) beside those kept for the server and its \
                 workers; raise the limit to serve more",
                config.max_connections
            );
        }
        Ok(Server {
            reactor,
            addrs,
            kinds,
            compressions,
        })
    }

    /// The addresses actually bound (useful with port 0), in the order of
    /// [`Config::listeners`]: plain, then HTTPS, then redirecting.
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    /// The bound addresses with what each serves.
    pub fn listeners(&self) -> impl Iterator<Item = (SocketAddr, ListenKind)> + '_ {
        self.addrs.iter().copied().zip(self.kinds.iter().copied())
    }

    pub fn handle(&self) -> Handle {
        Handle {
            flag: Arc::clone(&self.reactor.shutdown_requested),
            queue: Arc::clone(&self.reactor.completions),
            open: Arc::clone(&self.reactor.open),
            compressions: Arc::clone(&self.compressions),
        }
    }

    /// Shut down gracefully on SIGINT and SIGTERM; reload the TLS
    /// certificate on SIGHUP. (SIGPIPE needs nothing:
    /// Rust programs start with it ignored, so a write to a closed socket is
    /// an `EPIPE` error, never a death.)
    pub fn handle_signals(&mut self) -> io::Result<()> {
        let mut signals = signal_hook_mio::v1_0::Signals::new([
            signal_hook::consts::SIGINT,
            signal_hook::consts::SIGTERM,
            signal_hook::consts::SIGHUP,
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
