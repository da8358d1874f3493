//! The bounded, single-flight cache of compressed variants.
//!
//! An entry is keyed by the file's identity (device, inode) and the coding,
//! and remembers the stamp (size, mtime, ctime, ...) of the file it was
//! made from. A lookup passes the stamp of the file the request opened
//! just now, and any difference is a miss that replaces the entry: the same
//! rule as the small-file cache, so an edited or replaced file is never
//! served stale, compressed or not. Keying by inode rather than by path
//! lets `/` and `/index.html`, or two hard links, share one variant.
//!
//! Single flight: the first request for a missing variant inserts a
//! `Making` slot and compresses outside the lock; a request for the same
//! variant meanwhile waits for that one flight (on one `Condvar` shared by
//! all flights, re-checking its slot on each signal) instead of starting
//! its own. A flight that fails or panics removes its slot and wakes its
//! waiters, who then serve something else.
//!
//! Bounds: at most `max_busy` workers are inside compression at once,
//! compressing or waiting; past that a request gets `None` at once (the
//! caller serves identity) rather than tying up another worker. The
//! variants' bytes stay under `capacity`, evicting the least recently used.
//!
//! Runs on: worker threads, behind one mutex whose critical sections are
//! map operations (the codecs run outside it).

use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use crate::http::encoding::Coding;
use crate::limits::COMPRESS_WAIT_LIMIT;
use crate::sys::FileStamp;

/// What an entry costs besides its bytes (key, stamp, map slot, `Arc`
/// header), counted so that "not worth it" entries are bounded too.
const ENTRY_OVERHEAD: usize = 128;

/// One variant: which file, which coding.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Key {
    pub dev: u64,
    pub ino: u64,
    pub coding: Coding,
}

/// What compressing a file gave.
#[derive(Clone, Debug)]
pub enum Body {
    Compressed(Arc<[u8]>),
    /// It would not shrink enough: remembered, so it is not tried again.
    NotWorthIt,
}

impl Body {
    fn cost(&self) -> usize {
        ENTRY_OVERHEAD
            + match self {
                Body::Compressed(data) => data.len(),
                Body::NotWorthIt => 0,
            }
    }
}

enum Slot {
    Ready {
        stamp: FileStamp,
        body: Body,
        /// The `clock` of the last hit, for LRU eviction.
        last_used: u64,
    },
    /// A worker is compressing this variant of the file with `stamp`.
    Making { stamp: FileStamp, flight: u64 },
}

pub struct VariantCache {
    inner: Mutex<Inner>,
    /// Signalled when a flight ends or is superseded.
    flight_over: Condvar,
    capacity: usize,
    max_busy: usize,
}

#[derive(Default)]
struct Inner {
    slots: HashMap<Key, Slot>,
    /// The cost of every `Ready` slot.
    bytes: usize,
    /// Workers compressing or waiting for a compression.
    busy: usize,
    /// Ticks once per lookup: the LRU's notion of time.
    clock: u64,
    /// The last flight's number.
    flights: u64,
}

impl VariantCache {
    /// A cache holding at most `capacity` bytes, with at most `max_busy`
    /// workers compressing or waiting at once.
    pub fn new(capacity: usize, max_busy: usize) -> VariantCache {
        VariantCache {
            inner: Mutex::default(),
            flight_over: Condvar::new(),
            capacity,
            max_busy: max_busy.max(1),
        }
    }

    /// The variant `key` of the file whose stamp is `stamp`: cached, made by
    /// another worker right now (waited for), or made by `make` on this
    /// thread. `None` when it cannot be had now: too many workers are busy
    /// compressing, `make` failed, or the wait ran out.
    pub fn get_or_make(
        &self,
        key: Key,
        stamp: FileStamp,
        make: impl FnOnce() -> Option<Body>,
    ) -> Option<Body> {
        let mut inner = self.lock();
        match inner.slots.get(&key) {
            Some(Slot::Ready { stamp: s, .. }) if *s == stamp => return inner.hit(key, stamp),
            Some(Slot::Making { stamp: s, flight }) if *s == stamp => {
                let flight = *flight;
                return self.wait(inner, key, stamp, flight);
            }
            // Absent, or made from another version of the file.
            _ => {}
        }
        if inner.busy >= self.max_busy {
            return None;
        }
        // A flight for another version is superseded: its waiters must
        // stop waiting for it, and it will not store its result.
        let superseded = matches!(inner.slots.get(&key), Some(Slot::Making { .. }));
        inner.remove(&key);
        inner.flights += 1;
        let flight = inner.flights;
        inner.slots.insert(key, Slot::Making { stamp, flight });
        inner.busy += 1;
        drop(inner);
        if superseded {
            self.flight_over.notify_all();
        }
        // The guard ends the flight even if `make` panics.
        let mut guard = Flight {
            cache: self,
            key,
            stamp,
            flight,
            body: None,
        };
        let body = make();
        guard.body.clone_from(&body);
        drop(guard);
        body
    }

    /// Waits for `flight` (another worker's) to end, if a worker may be
    /// spent on waiting.
    fn wait(
        &self,
        mut inner: MutexGuard<'_, Inner>,
        key: Key,
        stamp: FileStamp,
        flight: u64,
    ) -> Option<Body> {
        if inner.busy >= self.max_busy {
            return None;
        }
        inner.busy += 1;
        let in_flight = |inner: &mut Inner| matches!(inner.slots.get(&key), Some(Slot::Making { flight: f, .. }) if *f == flight);
        let (mut inner, _) = self
            .flight_over
            .wait_timeout_while(inner, COMPRESS_WAIT_LIMIT, in_flight)
            .unwrap_or_else(|e| e.into_inner());
        inner.busy -= 1;
        inner.hit(key, stamp)
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // The lock is never held across code that can panic; recover anyway.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    #[cfg(test)]
    fn busy(&self) -> usize {
        self.lock().busy
    }

    #[cfg(test)]
    fn bytes(&self) -> usize {
        self.lock().bytes
    }
}

/// One compression in progress; dropping it (also while unwinding) ends
/// the flight: stores the result, frees the worker's place, wakes waiters.
struct Flight<'a> {
    cache: &'a VariantCache,
    key: Key,
    stamp: FileStamp,
    flight: u64,
    body: Option<Body>,
}

impl Drop for Flight<'_> {
    fn drop(&mut self) {
        let mut inner = self.cache.lock();
        inner.busy -= 1;
        let ours = matches!(
            inner.slots.get(&self.key),
            Some(Slot::Making { flight, .. }) if *flight == self.flight
        );
        if ours {
            inner.slots.remove(&self.key);
            if let Some(body) = self.body.take() {
                inner.store(self.key, self.stamp, body, self.cache.capacity);
            }
        }
        drop(inner);
        self.cache.flight_over.notify_all();
    }
}

impl Inner {
    /// The `Ready` body of `key` if made from `stamp`, marked as used.
    fn hit(&mut self, key: Key, stamp: FileStamp) -> Option<Body> {
        self.clock += 1;
        let now = self.clock;
        match self.slots.get_mut(&key) {
            Some(Slot::Ready {
                stamp: s,
                body,
                last_used,
            }) if *s == stamp => {
                *last_used = now;
                Some(body.clone())
            }
            _ => None,
        }
    }

    /// Keeps `body`, evicting the least recently used entries to make room.
    /// Finding the victim scans the map, but this runs once per compression,
    /// which costs far more.
    fn store(&mut self, key: Key, stamp: FileStamp, body: Body, capacity: usize) {
        let cost = body.cost();
        if cost > capacity {
            return;
        }
        while self.bytes + cost > capacity {
            let victim = self
                .slots
                .iter()
                .filter_map(|(k, slot)| match slot {
                    Slot::Ready { last_used, .. } => Some((*last_used, *k)),
                    Slot::Making { .. } => None,
                })
                .min_by_key(|(last_used, _)| *last_used);
            match victim {
                Some((_, k)) => self.remove(&k),
                None => break,
            }
        }
        self.bytes += cost;
        self.clock += 1;
        let last_used = self.clock;
        self.slots.insert(
            key,
            Slot::Ready {
                stamp,
                body,
                last_used,
            },
        );
    }

    fn remove(&mut self, key: &Key) {
        if let Some(Slot::Ready { body, .. }) = self.slots.remove(key) {
            self.bytes -= body.cost();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Barrier;
    use std::time::{Duration, Instant};

    fn key(ino: u64) -> Key {
        Key {
            dev: 1,
            ino,
            coding: Coding::Gzip,
        }
    }

    fn stamp(len: u64, mtime: i64) -> FileStamp {
        FileStamp {
            dev: 1,
            ino: 1,
            len,
            mtime: (mtime, 0),
            ctime: (mtime, 0),
        }
    }

    fn bytes(data: &[u8]) -> Option<Body> {
        Some(Body::Compressed(Arc::from(data)))
    }

    fn data(body: Option<Body>) -> Vec<u8> {
        match body {
            Some(Body::Compressed(d)) => d.to_vec(),
            other => panic!("expected bytes, got {other:?}"),
        }
    }

    /// Polls `cond` for up to five seconds: for states another thread
    /// reaches on its own schedule (no timing is asserted).
    fn eventually(what: &str, cond: impl Fn() -> bool) {
        let start = Instant::now();
        while !cond() {
            assert!(start.elapsed() < Duration::from_secs(5), "never: {what}");
            std::thread::yield_now();
        }
    }

    #[test]
    fn a_hit_needs_the_same_stamp() {
        let cache = VariantCache::new(1 << 20, 2);
        let made = AtomicUsize::new(0);
        let make = |b: &'static [u8]| {
            made.fetch_add(1, Ordering::Relaxed);
            bytes(b)
        };
        assert_eq!(
            data(cache.get_or_make(key(1), stamp(5, 1), || make(b"one"))),
            b"one"
        );
        assert_eq!(
            data(cache.get_or_make(key(1), stamp(5, 1), || make(b"xxx"))),
            b"one"
        );
        assert_eq!(made.load(Ordering::Relaxed), 1);
        // The file changed (same size, new mtime): never the old bytes.
        assert_eq!(
            data(cache.get_or_make(key(1), stamp(5, 2), || make(b"two"))),
            b"two"
        );
        assert_eq!(made.load(Ordering::Relaxed), 2);
        // Another coding of the same file is another variant.
        let br = Key {
            coding: Coding::Brotli,
            ..key(1)
        };
        assert_eq!(
            data(cache.get_or_make(br, stamp(5, 2), || make(b"br"))),
            b"br"
        );
        assert_eq!(cache.bytes(), 2 * ENTRY_OVERHEAD + 3 + 2);
    }

    #[test]
    fn not_worth_it_is_remembered_and_failure_is_not() {
        let cache = VariantCache::new(1 << 20, 2);
        let got = cache.get_or_make(key(1), stamp(1, 1), || Some(Body::NotWorthIt));
        assert!(matches!(got, Some(Body::NotWorthIt)));
        let got = cache.get_or_make(key(1), stamp(1, 1), || bytes(b"never"));
        assert!(matches!(got, Some(Body::NotWorthIt)));
        assert!(cache.get_or_make(key(2), stamp(1, 1), || None).is_none());
        assert_eq!(
            data(cache.get_or_make(key(2), stamp(1, 1), || bytes(b"ok"))),
            b"ok"
        );
        assert_eq!(cache.busy(), 0);
    }

    /// Two requests for one uncached variant: the second waits for the
    /// first's compression instead of compressing again.
    #[test]
    fn concurrent_misses_compress_once() {
        let cache = VariantCache::new(1 << 20, 2);
        let made = AtomicUsize::new(0);
        let gate = Barrier::new(2);
        std::thread::scope(|s| {
            let first = s.spawn(|| {
                cache.get_or_make(key(1), stamp(1, 1), || {
                    made.fetch_add(1, Ordering::Relaxed);
                    gate.wait();
                    bytes(b"packed")
                })
            });
            eventually("the first is compressing", || cache.busy() == 1);
            let second = s.spawn(|| {
                cache.get_or_make(key(1), stamp(1, 1), || {
                    made.fetch_add(1, Ordering::Relaxed);
                    bytes(b"again")
                })
            });
            eventually("the second is waiting", || cache.busy() == 2);
            gate.wait();
            assert_eq!(data(first.join().unwrap()), b"packed");
            assert_eq!(data(second.join().unwrap()), b"packed");
        });
        assert_eq!(made.load(Ordering::Relaxed), 1);
        assert_eq!(cache.busy(), 0);
    }

    /// At the cap, a request neither compresses nor waits: `None` at once,
    /// for another variant and for the one in flight alike.
    #[test]
    fn at_the_cap_requests_get_none_at_once() {
        let cache = VariantCache::new(1 << 20, 1);
        let gate = Barrier::new(2);
        std::thread::scope(|s| {
            let first = s.spawn(|| {
                cache.get_or_make(key(1), stamp(1, 1), || {
                    gate.wait();
                    bytes(b"packed")
                })
            });
            eventually("the first is compressing", || cache.busy() == 1);
            assert!(cache
                .get_or_make(key(2), stamp(1, 1), || bytes(b"b"))
                .is_none());
            assert!(cache
                .get_or_make(key(1), stamp(1, 1), || bytes(b"c"))
                .is_none());
            gate.wait();
            assert_eq!(data(first.join().unwrap()), b"packed");
        });
        assert_eq!(
            data(cache.get_or_make(key(2), stamp(1, 1), || bytes(b"b"))),
            b"b"
        );
    }

    /// A codec that panics must not leave its slot "in flight" for ever:
    /// the waiter is released, the place is freed, the next request retries.
    #[test]
    fn a_panicking_compression_releases_its_waiters() {
        let cache = VariantCache::new(1 << 20, 2);
        let gate = Barrier::new(2);
        std::thread::scope(|s| {
            let first = s.spawn(|| {
                cache.get_or_make(key(1), stamp(1, 1), || {
                    gate.wait();
                    panic!("codec bug")
                })
            });
            eventually("the first is compressing", || cache.busy() == 1);
            let second = s.spawn(|| cache.get_or_make(key(1), stamp(1, 1), || bytes(b"x")));
            eventually("the second is waiting", || cache.busy() == 2);
            gate.wait();
            assert!(first.join().is_err(), "the panic propagates to the caller");
            assert!(second.join().unwrap().is_none());
        });
        assert_eq!(cache.busy(), 0);
        assert_eq!(
            data(cache.get_or_make(key(1), stamp(1, 1), || bytes(b"ok"))),
            b"ok"
        );
    }

    /// A request that sees a newer version of the file while the old one is
    /// being compressed starts its own flight; the old flight's result is
    /// not stored, and the old waiters stop waiting.
    #[test]
    fn a_newer_version_supersedes_a_flight() {
        let cache = VariantCache::new(1 << 20, 3);
        let gate = Barrier::new(2);
        std::thread::scope(|s| {
            let old = s.spawn(|| {
                cache.get_or_make(key(1), stamp(1, 1), || {
                    gate.wait();
                    bytes(b"old")
                })
            });
            eventually("the old flight runs", || cache.busy() == 1);
            let waiter = s.spawn(|| cache.get_or_make(key(1), stamp(1, 1), || bytes(b"w")));
            eventually("a waiter waits", || cache.busy() == 2);
            let new = cache.get_or_make(key(1), stamp(1, 2), || bytes(b"new"));
            assert_eq!(data(new), b"new");
            assert!(waiter.join().unwrap().is_none(), "released, no old bytes");
            gate.wait();
            assert_eq!(data(old.join().unwrap()), b"old");
        });
        let got = cache.get_or_make(key(1), stamp(1, 2), || bytes(b"remade"));
        assert_eq!(data(got), b"new", "the old flight did not overwrite");
    }

    #[test]
    fn memory_stays_under_capacity_evicting_the_least_recently_used() {
        let cap = 3 * (ENTRY_OVERHEAD + 100);
        let cache = VariantCache::new(cap, 1);
        let body = |b: u8| bytes(&[b; 100]);
        for ino in 1..=3 {
            cache.get_or_make(key(ino), stamp(1, 1), || body(ino as u8));
        }
        assert_eq!(cache.bytes(), cap);
        // Use 1, so 2 is the least recently used when 4 arrives.
        cache.get_or_make(key(1), stamp(1, 1), || panic!("cached"));
        cache.get_or_make(key(4), stamp(1, 1), || body(4));
        assert!(cache.bytes() <= cap);
        let remade = AtomicUsize::new(0);
        for ino in [1, 3, 4, 2] {
            cache.get_or_make(key(ino), stamp(1, 1), || {
                remade.fetch_add(1, Ordering::Relaxed);
                body(ino as u8)
            });
        }
        assert_eq!(remade.load(Ordering::Relaxed), 1, "only 2 was evicted");
        // Larger than the whole cache: returned, not kept.
        let huge = vec![7u8; cap];
        let got = cache.get_or_make(key(9), stamp(1, 1), || bytes(&huge));
        assert_eq!(data(got).len(), cap);
        assert!(cache.bytes() <= cap);
    }
}
