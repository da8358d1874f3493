//! Starting and stopping a server: binds the listeners, drops privileges,
//! opens the site and hands everything to the `--model` (`models/`). The
//! public face of the library (`main.rs` and the tests use only this).
//!
//! Runs on: whichever thread calls [`Server::bind`] and [`Server::run`]; for
//! the reactor models that thread becomes the reactor.

use std::fmt;
use std::io;
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crate::config::Config;
use crate::models::{Bound, Model, Shutdown, Summary};
use crate::site::Site;

/// Descriptors kept out of the connection cap for the server itself: stdio,
/// the poller and its waker, the signal pipe, the root directory, and room
/// to spare (the listeners come on top).
const FD_RESERVE_BASE: u64 = 16;

/// Descriptors one worker may hold at once while answering: a directory,
/// its index file and two precompressed sidecars.
const FD_PER_WORKER: u64 = 4;

/// Descriptors one connection may hold when workers do the file work (the
/// reactor models): its socket, and the file a large response is sent from.
const FD_PER_CONNECTION: u64 = 2;

/// Descriptors one connection may hold in a blocking model, where its own
/// thread does the file work: its socket and what a worker may hold.
const FD_PER_BLOCKING_CONNECTION: u64 = 1 + FD_PER_WORKER;

/// Descriptors a connection of `model` may need.
fn fds_per_connection(model: Model) -> u64 {
    match model {
        Model::Reactor | Model::ReactorInline => FD_PER_CONNECTION,
        Model::Pool | Model::ThreadPerConnection => FD_PER_BLOCKING_CONNECTION,
    }
}

/// The most connections `limit` descriptors can serve with the file work
/// always able to open its files: what is left after the reserve, divided
/// by what one connection may need (lighttpd caps at half its descriptors
/// the same way; nginx warns when `worker_connections` exceeds the limit).
/// Without it the connections alone could take every descriptor, and every
/// request would then fail to open its file.
fn connection_cap(limit: u64, listeners: usize, model: Model, threads: usize) -> usize {
    let workers = match model {
        Model::Reactor => threads as u64,
        // The reactor does the file work itself: one worker's worth.
        Model::ReactorInline => 1,
        // Counted in each connection's share.
        Model::Pool | Model::ThreadPerConnection => 0,
    };
    let reserve = FD_RESERVE_BASE + listeners as u64 + FD_PER_WORKER * workers;
    let cap = limit.saturating_sub(reserve) / fds_per_connection(model);
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
    model: Bound,
    addrs: Vec<SocketAddr>,
}

/// Asks a running server to shut down gracefully, from any thread.
#[derive(Clone)]
pub struct Handle {
    shutdown: Arc<Shutdown>,
    open: Arc<AtomicUsize>,
}

impl Handle {
    /// Connections the server holds (for the reactor: as of its last loop turn).
    pub fn open_connections(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    pub fn shutdown(&self) {
        self.shutdown.request();
    }
}

impl Server {
    /// Binds every listen address and sets up the `--model` (for the
    /// reactor: starts the workers). Port 0 picks a free port;
    /// [`Server::local_addrs`] tells which.
    pub fn bind(mut config: Config) -> Result<Server, StartError> {
        crate::trace::init(config.trace);
        let mut listeners = Vec::new();
        let mut addrs = Vec::new();
        for addr in &config.listen {
            let listener = TcpListener::bind(*addr).map_err(|e| StartError::Bind(*addr, e))?;
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
            let cap = connection_cap(limit, config.listen.len(), config.model, config.threads);
            if cap < config.max_connections {
                lowered_cap = Some((config.max_connections, limit));
                config.max_connections = cap;
            }
        }
        let config = Arc::new(config);
        if let Some(user) = &config.user {
            crate::sys::drop_privileges(user).map_err(|e| StartError::User(user.clone(), e))?;
        }
        let site = Arc::new(
            Site::new(Arc::clone(&config)).map_err(|e| StartError::Io("open the root", e))?,
        );
        let model = Bound::new(config.model, listeners, site)
            .map_err(|(what, e)| StartError::Io(what, e))?;
        if let Some((configured, limit)) = lowered_cap {
            log::warn!(
                "serving at most {} connections, not {configured}: the descriptor limit \
                 (ulimit -n) is {limit}, and each connection may need {} (its socket and \
                 its files) beside those kept for the server and its workers; raise the \
                 limit to serve more",
                config.max_connections,
                fds_per_connection(config.model)
            );
        }
        Ok(Server { model, addrs })
    }

    /// The addresses actually bound (useful with port 0).
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.addrs
    }

    pub fn handle(&self) -> Handle {
        Handle {
            shutdown: self.model.shutdown(),
            open: self.model.open(),
        }
    }

    /// Shut down gracefully on SIGINT and SIGTERM. (SIGPIPE needs nothing:
    /// Rust programs start with it ignored, so a write to a closed socket is
    /// an `EPIPE` error, never a death.)
    pub fn handle_signals(&mut self) -> io::Result<()> {
        self.model.handle_signals()
    }

    /// Runs the server on this thread until a graceful shutdown completes.
    pub fn run(self) -> io::Result<Summary> {
        self.model.run()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_cap_leaves_descriptors_for_files() {
        // ulimit -n 1024, one listener, 8 workers: (1024 - 16 - 1 - 32) / 2.
        assert_eq!(connection_cap(1024, 1, Model::Reactor, 8), 487);
        // Every connection at the cap sending a file, every worker holding
        // its most: still within the limit.
        let (limit, threads) = (64, 2);
        let cap = connection_cap(limit, 1, Model::Reactor, threads) as u64;
        assert!(cap * FD_PER_CONNECTION + FD_PER_WORKER * threads as u64 + 1 < limit);
        // A limit below the reserve still serves one connection.
        assert_eq!(connection_cap(10, 1, Model::Reactor, 64), 1);
    }

    #[test]
    fn connection_cap_of_each_model_fits_its_file_work() {
        let (limit, threads) = (64, 2);
        // (model, descriptors its file work holds beside the connections')
        for (model, workers) in [
            (Model::Reactor, threads as u64),
            (Model::ReactorInline, 1),
            (Model::Pool, 0),
            (Model::ThreadPerConnection, 0),
        ] {
            let cap = connection_cap(limit, 1, model, threads) as u64;
            let at_most = cap * fds_per_connection(model) + FD_PER_WORKER * workers;
            assert!(at_most + FD_RESERVE_BASE < limit, "{model}: {cap}");
            assert!(cap > 1, "{model}");
        }
        // A blocking connection's thread opens its own files.
        assert_eq!(connection_cap(64, 1, Model::Pool, 128), (64 - 16 - 1) / 5);
    }
}
