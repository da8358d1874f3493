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
use crate::models::{Bound, Shutdown, Summary};
use crate::site::Site;

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
    pub fn bind(config: Config) -> Result<Server, StartError> {
        let config = Arc::new(config);
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
        if let Some(user) = &config.user {
            crate::sys::drop_privileges(user).map_err(|e| StartError::User(user.clone(), e))?;
        }
        let site = Arc::new(
            Site::new(Arc::clone(&config)).map_err(|e| StartError::Io("open the root", e))?,
        );
        let model = Bound::new(config.model, listeners, site)
            .map_err(|(what, e)| StartError::Io(what, e))?;
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
