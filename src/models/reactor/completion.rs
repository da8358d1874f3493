//! The completion queue: how a worker's answer gets back to the reactor.
//!
//! Workers push [`Completion`]s onto a mutex-guarded vector and wake the
//! reactor through a `mio::Waker` (an eventfd on Linux, a kqueue user event
//! on BSD/macOS). The reactor swaps the whole vector out in one lock.
//!
//! Waking is the expensive part (a syscall on each side), so a worker only
//! wakes the reactor if no wake is already pending: `wake_pending` is set by
//! the first worker to push after the reactor last drained, and cleared by
//! the reactor just before it drains. A push that lands after the clear
//! either is seen by that drain or sets the flag and wakes again.
//!
//! Runs on: `push` on workers, `drain_into` on the reactor.

use std::mem;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use mio::Waker;

use crate::http::response::Response;

/// A finished job for connection `key`, which must still be the
/// connection of generation `generation` for it to be delivered.
pub struct Completion {
    pub key: usize,
    pub generation: u64,
    pub done: Done,
}

/// What a worker did for a connection.
pub enum Done {
    /// Answered its request.
    Response(Response),
    /// Brought the next part of the file it is sending into the page cache.
    Warmed,
}

pub struct CompletionQueue {
    queue: Mutex<Vec<Completion>>,
    wake_pending: AtomicBool,
    waker: Waker,
}

impl CompletionQueue {
    pub fn new(waker: Waker) -> CompletionQueue {
        CompletionQueue {
            queue: Mutex::new(Vec::new()),
            wake_pending: AtomicBool::new(false),
            waker,
        }
    }

    pub fn push(&self, completion: Completion) {
        self.queue
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(completion);
        if !self.wake_pending.swap(true, Ordering::AcqRel) {
            if let Err(e) = self.waker.wake() {
                log::error!("cannot wake the reactor: {e}");
            }
        }
    }

    /// Wakes the reactor without a completion (shutdown requests use this).
    pub fn wake(&self) {
        self.wake_pending.store(true, Ordering::Release);
        let _ = self.waker.wake();
    }

    /// Moves every queued completion into `out` (which should be empty; its
    /// allocation is reused turn after turn).
    pub fn drain_into(&self, out: &mut Vec<Completion>) {
        self.wake_pending.store(false, Ordering::Release);
        let mut queue = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        mem::swap(&mut *queue, out);
    }
}
