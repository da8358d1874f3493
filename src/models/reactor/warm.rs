//! The cap on one event loop's cold-file warm-ups, and how many threads
//! read cold windows in.
//!
//! A warm-up (`sys::page_cache::warm`) waits for the device for as long as
//! the read takes: milliseconds, tens under load. It runs on threads of its
//! own (`stoke-warm-K`, a second [`Pool`](super::pool::Pool)), never on a
//! request worker: with the warm-ups on the request pool, a two-worker
//! server served its cached requests with one worker (or none) for as long
//! as downloads were being warmed, and they queued behind the disk. A
//! thread waiting for the disk costs no CPU, so the extra threads cost only
//! their stacks. What CPU a warm-up does take (allocating and filling the
//! window's pages) is background work: the threads run [`WARM_NICE`] steps
//! below the reactor and the request workers (`pool::Priority`), so on busy
//! cores the cached requests get the CPU first.
//!
//! [`WARM_NICE`]: crate::limits::WARM_NICE
//!
//! Each loop keeps at most [`warm_cap`] warm-ups in flight
//! ([`WarmSlots`]: taken before the job is submitted, given back when
//! `Done::Warmed` is delivered); the rest wait in the loop, oldest first.
//! That bounds the reads a burst of cold downloads queues at the device.
//!
//! Runs on: the reactor thread (`WarmSlots`); the warm-up jobs on the
//! warm-up threads.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Warm-ups one loop has in flight at most, for `--threads` request
/// workers: half of them, at least one (the cap that held when warm-ups
/// ran on the request workers, so a cold download reads as fast as it did).
pub fn warm_cap(threads: usize) -> usize {
    (threads / 2).max(1)
}

/// The warm-ups one loop has in flight now, at most `max` (the loop's own:
/// only its thread counts them); also holds the server-wide count of
/// warm-ups (`Handle::file_warmups`).
#[derive(Debug)]
pub struct WarmSlots {
    busy: usize,
    max: usize,
    count: Arc<AtomicU64>,
}

impl WarmSlots {
    /// At most `max` at once (at least one); `count` counts every warm-up.
    pub fn new(max: usize, count: Arc<AtomicU64>) -> WarmSlots {
        WarmSlots {
            busy: 0,
            max: max.max(1),
            count,
        }
    }

    /// Takes a slot if one is free.
    pub fn try_take(&mut self) -> bool {
        let free = self.busy < self.max;
        self.busy += usize::from(free);
        free
    }

    /// Gives back a slot taken with [`WarmSlots::try_take`].
    pub fn give_back(&mut self) {
        debug_assert!(self.busy > 0, "gave back a warm slot never taken");
        self.busy = self.busy.saturating_sub(1);
    }

    /// Counts one warm-up (asked for, deferred or started).
    pub fn count(&self) {
        self.count.fetch_add(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_cap_at_max() {
        let count = Arc::new(AtomicU64::new(0));
        let mut slots = WarmSlots::new(2, Arc::clone(&count));
        assert!(slots.try_take() && slots.try_take());
        assert!(!slots.try_take());
        slots.give_back();
        assert!(slots.try_take());
        slots.count();
        assert_eq!(count.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn warm_cap_is_half_the_workers_at_least_one() {
        assert_eq!(warm_cap(1), 1);
        assert_eq!(warm_cap(2), 1);
        assert_eq!(warm_cap(8), 4);
    }
}
