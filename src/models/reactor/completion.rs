//! The completion queue: how a worker's answer gets back to the reactor.
//!
//! Workers push [`Completion`]s onto a mutex-guarded vector; the reactor
//! swaps the whole vector out in one lock, once per loop turn when
//! [`CompletionQueue::pending`] says there is something.
//!
//! Waking the reactor through its `mio::Waker` (an eventfd on Linux, a
//! kqueue user event on BSD/macOS) costs a syscall on each side (the
//! worker's `write`, and the reactor's extra `epoll_wait` turn), so a worker
//! wakes it only when it must:
//! - only while the reactor is **parked**, i.e. in (or about to enter) its
//!   `poll`. An awake reactor looks at the queue before it sleeps again
//!   ([`CompletionQueue::park`]), so it needs no wake-up.
//! - only once per park: `wake_pending` is set by the first worker to wake
//!   it and cleared when the reactor drains.
//!
//! The lost-wake-up argument (a Dekker handshake, both sides `SeqCst`): the
//! worker increments `queued` and then reads `parked`; the reactor sets
//! `parked` and then reads `queued`. In the single order of `SeqCst`
//! operations one of the two writes comes first, so either the reactor sees
//! the completion and does not sleep, or the worker sees `parked` and wakes
//! it.
//!
//! Runs on: `push` on workers, `drain_into` on the reactor.

use std::mem;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;

use mio::Waker;

use crate::http::response::Response;
use crate::models::reactor::event_loop::AnswerJob;
use crate::tls::stream::Signed;

/// A finished job for connection `key`, which must still be the
/// connection of generation `generation` for it to be delivered.
pub struct Completion {
    pub key: usize,
    pub generation: u64,
    pub done: Done,
}

/// What a worker did for a connection.
pub enum Done {
    /// Answered its request; the job comes back with the answer, for the
    /// reactor to reuse (its box, and the head in it).
    Response(Response, Option<Box<AnswerJob>>),
    /// Brought the next part of the file it is sending into the page cache.
    Warmed,
    /// Did the expensive step of its TLS handshake (`tls::stream::Hello`).
    /// Boxed: unboxed it would make every completion 136 bytes instead of
    /// 64, copied twice per request.
    Signed(Box<Signed>),
}

pub struct CompletionQueue {
    queue: Mutex<Vec<Completion>>,
    /// Completions pushed and not drained yet (read without the lock).
    queued: AtomicUsize,
    /// The reactor is in its `poll`, or about to be (see the module doc).
    parked: AtomicBool,
    wake_pending: AtomicBool,
    waker: Waker,
    /// Times a worker wrote to the waker (tests check it is not per job).
    wakes: AtomicUsize,
}

impl CompletionQueue {
    pub fn new(waker: Waker) -> CompletionQueue {
        CompletionQueue {
            queue: Mutex::new(Vec::new()),
            queued: AtomicUsize::new(0),
            parked: AtomicBool::new(false),
            wake_pending: AtomicBool::new(false),
            waker,
            wakes: AtomicUsize::new(0),
        }
    }

    pub fn push(&self, completion: Completion) {
        {
            let mut queue = self.queue.lock().unwrap_or_else(|e| e.into_inner());
            queue.push(completion);
            // Under the lock, so that `drain_into` subtracts exactly what it took.
            self.queued.fetch_add(1, Ordering::SeqCst);
        }
        if self.parked.load(Ordering::SeqCst) && !self.wake_pending.swap(true, Ordering::AcqRel) {
            self.wakes.fetch_add(1, Ordering::Relaxed);
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

    /// The reactor is about to sleep in `poll`: from now on workers wake it.
    /// Returns `false` (and stays unparked) if completions are already
    /// waiting: then the reactor must not sleep, but drain them.
    pub fn park(&self) -> bool {
        self.parked.store(true, Ordering::SeqCst);
        if self.queued.load(Ordering::SeqCst) > 0 {
            self.parked.store(false, Ordering::SeqCst);
            return false;
        }
        true
    }

    /// The reactor is back from `poll`: it will look at the queue itself.
    pub fn unpark(&self) {
        self.parked.store(false, Ordering::SeqCst);
    }

    /// Whether completions wait to be drained.
    pub fn pending(&self) -> bool {
        self.queued.load(Ordering::SeqCst) > 0
    }

    /// Times a worker woke the reactor so far.
    pub fn wakes(&self) -> usize {
        self.wakes.load(Ordering::Relaxed)
    }

    /// Moves every queued completion into `out` (which should be empty; its
    /// allocation is reused turn after turn).
    pub fn drain_into(&self, out: &mut Vec<Completion>) {
        self.wake_pending.store(false, Ordering::Release);
        let mut queue = self.queue.lock().unwrap_or_else(|e| e.into_inner());
        mem::swap(&mut *queue, out);
        // Under the lock: every push counted so far is in `out`.
        self.queued.fetch_sub(out.len(), Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::response::Status;
    use mio::{Events, Poll, Token};
    use std::time::Duration;

    fn completion(key: usize) -> Completion {
        Completion {
            key,
            generation: 1,
            done: Done::Response(
                Response {
                    status: Status::OK,
                    chunks: Vec::new(),
                    close: false,
                    log: None,
                },
                None,
            ),
        }
    }

    /// Regression (every completion wrote to the waker, though the reactor
    /// was awake and would look at the queue anyway): only a reactor parked
    /// in `poll` is woken, once per park, and it never parks over a
    /// completion already queued.
    #[test]
    fn completion_posted_while_reactor_awake_costs_no_wake_up() {
        let mut poll = Poll::new().unwrap();
        let queue = CompletionQueue::new(Waker::new(poll.registry(), Token(7)).unwrap());
        let mut out = Vec::new();

        // Awake: no wake-up, but the reactor sees it before sleeping.
        queue.push(completion(1));
        assert_eq!(queue.wakes(), 0);
        assert!(queue.pending());
        assert!(!queue.park(), "parked over a queued completion");
        queue.drain_into(&mut out);
        assert_eq!(out.len(), 1);
        assert!(!queue.pending());
        out.clear();

        // Parked: the first push wakes, the second rides on it.
        assert!(queue.park());
        queue.push(completion(2));
        queue.push(completion(3));
        assert_eq!(queue.wakes(), 1);
        let mut events = Events::with_capacity(4);
        poll.poll(&mut events, Some(Duration::from_secs(20)))
            .unwrap();
        assert!(events.iter().any(|e| e.token() == Token(7)), "not woken");
        queue.unpark();
        queue.drain_into(&mut out);
        assert_eq!(out.len(), 2);

        // Parked again after draining: woken again.
        assert!(queue.park());
        queue.push(completion(4));
        assert_eq!(queue.wakes(), 2);
    }
}
