//! Starting and stopping a server: binds the listeners, drops privileges,
//! opens the site and hands everything to the `--model` (`models/`). The
//! public face of the library (`main.rs` and the tests use only this).
//!
//! Runs on: whichever thread calls [`Server::bind`] and [`Server::run`]; for
//! the reactor models that thread becomes the reactor.

use std::fmt;
use std::io;
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use crate::config::{Config, ListenKind};
use crate::limits::{
    FD_PER_BLOCKING_CONNECTION, FD_PER_CONNECTION, FD_PER_WORKER, FD_RESERVE_BASE,
};
use crate::models::{Bound, Listeners, Model, Shutdown, Summary};
use crate::site::Site;
use crate::tls::Tls;

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
            .map(|s| (s.listener, kind_of_name(&s.name)))
            .unzip());
    }
    let mut listeners = Vec::new();
    let mut kinds = Vec::new();
    for (addr, kind) in config.listeners() {
        let listener = if config.reuse_port {
            crate::sys::listen_fds::bind_reuse_port(addr)
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

/// HTTPS, redirecting listeners and the PROXY protocol are the reactor's
/// (`Config::from_cli` refuses the flags; this catches passed sockets).
fn check_model_serves(model: Model, kinds: &[ListenKind]) -> Result<(), StartError> {
    let blocking = matches!(model, Model::Pool | Model::ThreadPerConnection);
    if blocking && kinds.iter().any(|k| *k != ListenKind::Http) {
        return Err(StartError::Io(
            "serve the passed sockets",
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("HTTPS and redirecting sockets need --model reactor or reactor-inline, not {model}"),
            ),
        ));
    }
    Ok(())
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
    model: Bound,
    addrs: Vec<SocketAddr>,
    kinds: Vec<ListenKind>,
    compressions: Arc<AtomicU64>,
    freshness_checks: Arc<AtomicU64>,
}

/// Asks a running server to shut down gracefully, from any thread.
#[derive(Clone)]
pub struct Handle {
    shutdown: Arc<Shutdown>,
    open: Arc<AtomicUsize>,
    compressions: Arc<AtomicU64>,
    warmups: Arc<AtomicU64>,
    freshness_checks: Arc<AtomicU64>,
    handoffs: Arc<AtomicU64>,
}

impl Handle {
    /// Times a file was compressed on the fly (cache hits not counted).
    pub fn compressions(&self) -> u64 {
        self.compressions.load(Ordering::Relaxed)
    }

    /// Stats made to prove a small-file cache hit fresh: one per hit, or,
    /// where inotify reports changes (`site::watcher`), one per path after
    /// each change.
    pub fn freshness_checks(&self) -> u64 {
        self.freshness_checks.load(Ordering::Relaxed)
    }

    /// File ranges the reactor had read into the page cache off its thread
    /// before sending them, because they were not cached (0 for blocking
    /// models, whose threads may wait for the disk).
    pub fn file_warmups(&self) -> u64 {
        self.warmups.load(Ordering::Relaxed)
    }

    /// Times an event loop handed a batch of jobs to the pool: once per
    /// loop turn that made any, however many requests the turn read, and
    /// once more after each download that used up its write budget and
    /// led to jobs (0 for the models without a pool).
    pub fn pool_handoffs(&self) -> u64 {
        self.handoffs.load(Ordering::Relaxed)
    }

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
        // Before binding: a bad certificate is a start-up error, not a
        // failure of every handshake later.
        let tls = match &config.tls {
            Some(files) => Some(Arc::new(Tls::load(files).map_err(StartError::Tls)?)),
            None => None,
        };
        let mut listeners = Vec::new();
        let mut addrs = Vec::new();
        let (bound, kinds) = open_listeners(&config)?;
        check_tls_listeners(&kinds, tls.is_some())?;
        check_model_serves(config.model, &kinds)?;
        for listener in bound {
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
            // Each event loop past the first (`--reactors`) holds its own
            // poller, waker and a `dup` of every listener.
            let extra_loops = match config.model {
                Model::Reactor | Model::ReactorInline => config.reactors.saturating_sub(1),
                Model::Pool | Model::ThreadPerConnection => 0,
            };
            let limit = limit.saturating_sub((extra_loops * (2 + listeners.len())) as u64);
            let cap = connection_cap(limit, listeners.len(), config.model, config.threads);
            if cap < config.max_connections {
                lowered_cap = Some((config.max_connections, limit));
                config.max_connections = cap;
            }
        }
        let config = Arc::new(config);
        if let Some(user) = &config.user {
            crate::sys::drop_privileges(user).map_err(|e| StartError::User(user.clone(), e))?;
        }
        let mut site =
            Site::new(Arc::clone(&config)).map_err(|e| StartError::Io("open the root", e))?;
        // The reactor models answer a request only after a drain of the
        // change reports that began after it was read (`site::watcher`);
        // the blocking models have no such point and stat on every hit.
        if matches!(config.model, Model::Reactor | Model::ReactorInline) {
            site.watch_changes();
        }
        let site = Arc::new(site);
        let compressions = site.compressor.counter();
        let freshness_checks = site.freshness_checks();
        let https_port = addrs
            .iter()
            .zip(&kinds)
            .find(|(_, k)| **k == ListenKind::Https)
            .map_or(443, |(a, _)| a.port());
        let listeners = Listeners {
            sockets: listeners,
            kinds: kinds.clone(),
            tls,
            https_port,
        };
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
        Ok(Server {
            model,
            addrs,
            kinds,
            compressions,
            freshness_checks,
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
            shutdown: self.model.shutdown(),
            open: self.model.open(),
            compressions: Arc::clone(&self.compressions),
            warmups: self.model.warmups(),
            freshness_checks: Arc::clone(&self.freshness_checks),
            handoffs: self.model.handoffs(),
        }
    }

    /// Shut down gracefully on SIGINT and SIGTERM; reload the TLS
    /// certificate on SIGHUP. (SIGPIPE needs nothing:
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
