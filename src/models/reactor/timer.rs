//! Deadlines for connections: the head timeout, the keep-alive timeout, the
//! send timeout. One min-heap inside the reactor, no thread per timer.
//!
//! A connection's deadline moves on every request, and moving an entry in a
//! heap is costly, so entries are never moved or removed: each connection has
//! at most one *armed* entry, the earliest it could need. When an entry fires
//! the reactor asks the connection for its real deadline: if that is still in
//! the future it simply re-arms. A connection whose deadline moves earlier
//! than its armed entry (rare) gets a second entry. So the heap holds about
//! one entry per connection, not one per request.
//!
//! Runs on: the reactor thread.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::{Duration, Instant};

/// A timer entry: at `when`, look at connection `key` if it is still
/// generation `generation`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Expiry {
    pub when: Instant,
    pub key: usize,
    pub generation: u64,
}

#[derive(Default)]
pub struct Timers {
    heap: BinaryHeap<Reverse<Expiry>>,
}

impl Timers {
    pub fn new() -> Timers {
        Timers::default()
    }

    pub fn arm(&mut self, expiry: Expiry) {
        self.heap.push(Reverse(expiry));
    }

    /// How long the poll may sleep: until the earliest entry, or forever.
    pub fn timeout(&self, now: Instant) -> Option<Duration> {
        self.heap
            .peek()
            .map(|Reverse(e)| e.when.saturating_duration_since(now))
    }

    /// Removes and returns the next entry that is due at `now`.
    pub fn pop_due(&mut self, now: Instant) -> Option<Expiry> {
        match self.heap.peek() {
            Some(Reverse(e)) if e.when <= now => self.heap.pop().map(|Reverse(e)| e),
            _ => None,
        }
    }

    pub fn len(&self) -> usize {
        self.heap.len()
    }

    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pops_in_deadline_order_only_when_due() {
        let t0 = Instant::now();
        let mut timers = Timers::new();
        for (i, secs) in [5u64, 1, 3].into_iter().enumerate() {
            timers.arm(Expiry {
                when: t0 + Duration::from_secs(secs),
                key: i,
                generation: 0,
            });
        }
        assert_eq!(timers.timeout(t0), Some(Duration::from_secs(1)));
        assert_eq!(timers.pop_due(t0), None);
        let due: Vec<usize> = std::iter::from_fn(|| timers.pop_due(t0 + Duration::from_secs(4)))
            .map(|e| e.key)
            .collect();
        assert_eq!(due, vec![1, 2]);
        assert_eq!(timers.len(), 1);
    }
}
