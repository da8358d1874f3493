//! `--model pool`: `--threads` threads, all started up front; each one
//! accepts a client, serves it from accept to close, then accepts the next.
//!
//! The classic pre-threaded server (Apache's worker MPM, Gunicorn's gthread
//! workers): no thread is created per client, but each thread holds its
//! client for the connection's whole life, idle keep-alive time included,
//! so at most `--threads` clients are served at once and the next ones wait
//! in the kernel's backlog. Compare with `thread_per_conn.rs` (`diff` them):
//! the driver is the same, only who owns the threads differs. (Not to be
//! confused with the reactor's work-stealing pool, which runs file work,
//! never a connection.)
//!
//! Runs on: the thread that calls `Server::run` (waiting for shutdown), and
//! the pool's threads.

use std::io;
use std::sync::Arc;
use std::thread;

use crate::models::blocking::{self, Shared};
use crate::models::Summary;

/// Starts the threads, each accepting and serving until shutdown, then drains.
pub(crate) fn run(shared: Arc<Shared>) -> io::Result<Summary> {
    let running = shared.running();
    // Each pool thread runs its own accept loop (one at a time holds the
    // accept lock, see `blocking::Acceptor`).
    for i in 0..shared.threads {
        let thread = running.enter();
        let mine = Arc::clone(&shared);
        let spawned = thread::Builder::new()
            .name(format!("stoke-pool-{i}"))
            .spawn(move || {
                let mut scratch = vec![0; mine.scratch_len];
                while let Some(client) = mine.accept() {
                    blocking::serve(client, &mut scratch);
                }
                drop(mine);
                drop(thread);
            });
        if let Err(e) = spawned {
            // Stop the threads already started before giving up.
            shared.request_shutdown();
            shared.drain();
            return Err(io::Error::new(
                e.kind(),
                format!("cannot start pool thread {i}: {e}"),
            ));
        }
    }
    shared.wait_for_shutdown();
    Ok(shared.drain())
}
