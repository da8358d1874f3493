//! `--model thread-per-connection`: this thread accepts; every client gets a
//! thread of its own, which serves it from accept to close and then ends.
//!
//! The simplest server there is: a thread per client, blocking calls, no
//! queue. A new thread costs a `clone` and a stack (virtual 2 MiB, a few
//! KiB touched) per connection, and an idle keep-alive client holds its
//! thread asleep in `poll`. `--max-connections` caps the threads: past it,
//! clients wait in the kernel's backlog. Compare with `blocking_pool.rs`
//! (`diff` them): the driver is the same, only who owns the threads differs.
//!
//! Runs on: the thread that calls `Server::run` (accepting), and one thread
//! per client.

use std::io;
use std::sync::Arc;

use crate::models::blocking::{self, Shared};
use crate::models::Summary;

/// Accepts and starts a thread for each client until shutdown, then drains.
pub(crate) fn run(shared: Arc<Shared>) -> io::Result<Summary> {
    let running = shared.running();
    // The accept loop runs here; only this thread accepts.
    while let Some(client) = shared.accept() {
        // A new thread, which ends with the client (`blocking::spawn_for`).
        blocking::spawn_for(client, running);
    }
    Ok(shared.drain())
}
