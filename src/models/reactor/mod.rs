//! The event-loop model: one reactor thread ([`event_loop`]) with its
//! deadline heap ([`timer`]) owns every socket; a work-stealing [`pool`]
//! does the blocking file work and hands answers back through the
//! [`completion`] queue, which wakes the reactor.
//!
//! `--model reactor-inline` is the same loop with no pool: the reactor does
//! the file work itself ([`FileWork::Inline`]), the control that shows what
//! the pool buys (Flash's SPED against AMPED).
//!
//! Runs on: the reactor thread and the pool's worker threads.

use std::io;
use std::sync::Arc;

use mio::net::TcpListener;
use mio::{Interest, Poll, Token, Waker};

use crate::models::{Listeners, Shutdown};
use crate::site::Site;
use completion::CompletionQueue;
use event_loop::{Reactor, LISTENER_BASE, SIGNALS, WAKER};
use pool::Pool;

pub mod completion;
pub mod event_loop;
pub mod pool;
pub mod stream;
pub mod timer;

/// Who runs `site::handle` for a complete request head.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileWork {
    /// The work-stealing pool's `--threads` workers (`reactor`).
    Pool,
    /// The reactor thread itself, between two polls (`reactor-inline`).
    Inline,
}

/// Registers the bound listeners with a new poller and starts the pool.
pub(crate) fn bind(
    listeners: Listeners,
    site: Arc<Site>,
    work: FileWork,
) -> Result<Reactor, (&'static str, io::Error)> {
    let poll = Poll::new().map_err(|e| ("create the poller", e))?;
    let mut registered = Vec::with_capacity(listeners.sockets.len());
    for (i, listener) in listeners.sockets.into_iter().enumerate() {
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
    let pool = match work {
        FileWork::Pool => {
            Some(Pool::new(site.config.threads).map_err(|e| ("start worker threads", e))?)
        }
        FileWork::Inline => None,
    };
    let mut reactor = Reactor::new(poll, registered, pool, site, completions);
    reactor.listener_kinds = listeners.kinds;
    reactor.tls = listeners.tls;
    reactor.https_port = listeners.https_port;
    Ok(reactor)
}

/// The shutdown request a `Handle` makes: set the flag, wake the loop.
pub(crate) fn shutdown(reactor: &Reactor) -> Arc<Shutdown> {
    let queue = Arc::clone(&reactor.completions);
    Arc::new(Shutdown::new(
        Arc::clone(&reactor.shutdown_requested),
        Box::new(move || queue.wake()),
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
