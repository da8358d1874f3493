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
    /// Connections still open when the shutdown deadline passed.
    pub cut_off: usize,
}
