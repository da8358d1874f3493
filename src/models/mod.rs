//! The ways of running the shared core (`conn` + `site`) on threads and
//! sockets. Only this folder knows about mio, pools, wakers and blocking
//! sockets; everything it drives is shared.
//!
//! Today there is one model, [`reactor`]: one `mio::Poll` thread owns every
//! socket and hands the blocking file work to a work-stealing pool.
//!
//! Runs on: the threads each model starts.

pub mod reactor;

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
