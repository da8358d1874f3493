//! Rendered listing pages, shared by the requests that ask for the same
//! directory in the same state, and a bound on the memory that all listing
//! bodies together may hold.
//!
//! A page is keyed by its directory's stamp (device, inode, mtime, ctime:
//! creating, removing or renaming an entry changes the last two), its format
//! and the URL path it is shown under (title and links depend on it). A
//! burst of requests for one directory therefore costs one `readdir` and
//! one rendering, and every response sends the same `Arc<[u8]>`. A file
//! edited in place does not change its directory's stamp, so a page is also
//! rebuilt once it is [`PAGE_MAX_AGE`] old: sizes and times in a listing are
//! at most that stale.
//!
//! Bodies outlive the cache: a response holds its page until the client has
//! read it, and a client may never read. So the budget [`MAX_LISTING_MEMORY`]
//! counts every page still alive, cached or evicted-but-held; a page that
//! would not fit is refused (the caller answers 503) instead of growing
//! memory with the number of stalled clients. Evicted pages are dropped from
//! the count as soon as their last response is gone.
//!
//! Runs on: worker threads (behind one mutex: listings are rare next to
//! files, and the critical sections are a hash lookup or an eviction scan
//! over at most [`MAX_CACHED_PAGES`] entries).

use std::collections::HashMap;
use std::fs::Metadata;
use std::os::unix::fs::MetadataExt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use crate::limits::{MAX_CACHED_PAGES, MAX_LISTING_MEMORY, PAGE_MAX_AGE};

/// The representation a listing is rendered in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Format {
    Html,
    Json,
}

/// What a rendered page depends on.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PageKey {
    /// The directory's (dev, ino, mtime, ctime), nanoseconds included.
    dir: (u64, u64, (i64, i64), (i64, i64)),
    format: Format,
    url_path: String,
}

impl PageKey {
    /// The key for the directory described by `dir` (its `fstat`, taken
    /// before its entries are read, so a page never claims a newer state
    /// than it shows), shown as `url_path`.
    pub fn new(dir: &Metadata, format: Format, url_path: &str) -> PageKey {
        PageKey {
            dir: (
                dir.dev(),
                dir.ino(),
                (dir.mtime(), dir.mtime_nsec()),
                (dir.ctime(), dir.ctime_nsec()),
            ),
            format,
            url_path: url_path.to_owned(),
        }
    }
}

/// A new page would push the listing bodies alive past
/// [`MAX_LISTING_MEMORY`].
#[derive(Debug, PartialEq, Eq)]
pub struct OverBudget;

#[derive(Default)]
pub struct PageCache {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    pages: HashMap<PageKey, Cached>,
    /// Evicted pages that a response may still hold.
    retired: Vec<Arc<[u8]>>,
    /// Bytes of every body in `pages` and `retired`.
    held: usize,
    /// Counts uses, for least-recently-used eviction.
    clock: u64,
}

struct Cached {
    body: Arc<[u8]>,
    built: Instant,
    last_used: u64,
}

impl PageCache {
    pub fn new() -> PageCache {
        PageCache::default()
    }

    /// The page for `key` if one was built less than [`PAGE_MAX_AGE`]
    /// before `now`.
    pub fn get(&self, key: &PageKey, now: Instant) -> Option<Arc<[u8]>> {
        let mut inner = self.lock();
        inner.clock += 1;
        let clock = inner.clock;
        let page = inner.pages.get_mut(key)?;
        if now.saturating_duration_since(page.built) >= PAGE_MAX_AGE {
            return None;
        }
        page.last_used = clock;
        Some(Arc::clone(&page.body))
    }

    /// Keeps `body` as the page for `key`, built at `now`, and returns it to
    /// be sent. Least recently used pages make room; if the pages that
    /// responses still hold leave no room, the page is refused.
    pub fn insert(
        &self,
        key: PageKey,
        body: Vec<u8>,
        now: Instant,
    ) -> Result<Arc<[u8]>, OverBudget> {
        let mut inner = self.lock();
        inner.reap();
        if let Some(old) = inner.pages.remove(&key) {
            inner.retire(old.body);
        }
        loop {
            let over_bytes = inner.held + body.len() > MAX_LISTING_MEMORY;
            let over_count = inner.pages.len() >= MAX_CACHED_PAGES;
            if !(over_bytes || over_count) {
                break;
            }
            // For bytes alone, evicting a page that a response holds frees
            // nothing and only stops it from being shared.
            let only_unheld = !over_count;
            if !inner.evict_one(now, only_unheld) {
                break;
            }
        }
        if inner.held + body.len() > MAX_LISTING_MEMORY {
            return Err(OverBudget);
        }
        let body: Arc<[u8]> = body.into();
        inner.held += body.len();
        inner.clock += 1;
        let cached = Cached {
            body: Arc::clone(&body),
            built: now,
            last_used: inner.clock,
        };
        inner.pages.insert(key, cached);
        Ok(body)
    }

    /// Bytes of listing bodies alive (cached, or evicted and still being
    /// sent), as of the last insertion.
    pub fn held_bytes(&self) -> usize {
        self.lock().held
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Inner {
    /// Forgets retired pages that no response holds any more.
    fn reap(&mut self) {
        let mut freed = 0;
        self.retired.retain(|body| {
            // Only this list holds it: nobody can take a new reference.
            let alive = Arc::strong_count(body) > 1;
            if !alive {
                freed += body.len();
            }
            alive
        });
        self.held -= freed;
    }

    /// Drops a body from the cache; it stays counted while responses hold it.
    fn retire(&mut self, body: Arc<[u8]>) {
        if Arc::strong_count(&body) > 1 {
            self.retired.push(body);
        } else {
            self.held -= body.len();
        }
    }

    /// Evicts one page: one that no response holds (its memory is freed)
    /// before one that a response holds, an expired one before a fresh one,
    /// and otherwise the least recently used. With `only_unheld`, never one
    /// that a response holds. False when there is nothing to evict.
    fn evict_one(&mut self, now: Instant, only_unheld: bool) -> bool {
        // Under the lock, a count of 1 cannot grow: only `get` clones, and
        // it takes the lock.
        let held = |page: &Cached| Arc::strong_count(&page.body) > 1;
        let victim = self
            .pages
            .iter()
            .filter(|(_, page)| !(only_unheld && held(page)))
            .min_by_key(|(_, page)| {
                let fresh = now.saturating_duration_since(page.built) < PAGE_MAX_AGE;
                (held(page), fresh, page.last_used)
            })
            .map(|(key, _)| key.clone());
        let Some(victim) = victim else {
            return false;
        };
        if let Some(page) = self.pages.remove(&victim) {
            self.retire(page.body);
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::MAX_PAGE_BYTES;

    fn key(n: u64, format: Format) -> PageKey {
        PageKey {
            dir: (1, n, (0, 0), (0, 0)),
            format,
            url_path: format!("/d{n}/"),
        }
    }

    #[test]
    fn a_burst_of_requests_shares_one_rendering() {
        let cache = PageCache::new();
        let now = Instant::now();
        let k = key(1, Format::Html);
        assert!(cache.get(&k, now).is_none());
        let built = cache.insert(k.clone(), b"page".to_vec(), now).unwrap();
        let again = cache.get(&k, now + PAGE_MAX_AGE / 2).unwrap();
        assert!(Arc::ptr_eq(&built, &again), "same body, not a copy");
        // The other format and another directory state are other pages.
        assert!(cache.get(&key(1, Format::Json), now).is_none());
        let mut changed = k.clone();
        changed.dir.3 .1 += 1;
        assert!(cache.get(&changed, now).is_none());
        // Old enough, it is rebuilt even with the same stamp.
        assert!(cache.get(&k, now + PAGE_MAX_AGE).is_none());
    }

    #[test]
    fn pages_held_by_stalled_clients_count_against_the_budget() {
        let cache = PageCache::new();
        let now = Instant::now();
        let page = vec![b'x'; MAX_PAGE_BYTES];
        // Each "client" keeps its body and never finishes.
        let mut held = Vec::new();
        let fits = MAX_LISTING_MEMORY / MAX_PAGE_BYTES;
        for n in 0..fits as u64 {
            held.push(
                cache
                    .insert(key(n, Format::Html), page.clone(), now)
                    .unwrap(),
            );
        }
        assert_eq!(cache.held_bytes(), MAX_LISTING_MEMORY);
        // Eviction cannot free what clients hold: the next page is refused.
        let extra = key(fits as u64, Format::Html);
        assert_eq!(
            cache.insert(extra.clone(), page.clone(), now),
            Err(OverBudget)
        );
        assert!(cache.held_bytes() <= MAX_LISTING_MEMORY);
        // Once one client is gone, its page's memory is reusable.
        held.remove(0);
        assert!(cache.insert(extra, page.clone(), now).is_ok());
        assert!(cache.held_bytes() <= MAX_LISTING_MEMORY);
        // Pages that nobody holds are simply evicted, least recently used
        // first, whatever their number.
        drop(held);
        for n in 100..100 + 4 * MAX_CACHED_PAGES as u64 {
            cache
                .insert(key(n, Format::Json), b"small".to_vec(), now)
                .unwrap();
        }
        assert!(cache.lock().pages.len() <= MAX_CACHED_PAGES);
        assert!(cache.held_bytes() <= MAX_LISTING_MEMORY);
    }

    #[test]
    fn the_least_recently_used_page_is_evicted_first() {
        let cache = PageCache::new();
        let now = Instant::now();
        for n in 0..MAX_CACHED_PAGES as u64 {
            cache
                .insert(key(n, Format::Html), b"p".to_vec(), now)
                .unwrap();
        }
        // Page 0 is used again; page 1 is now the least recently used.
        assert!(cache.get(&key(0, Format::Html), now).is_some());
        cache
            .insert(key(9_999, Format::Html), b"p".to_vec(), now)
            .unwrap();
        assert!(cache.get(&key(0, Format::Html), now).is_some());
        assert!(cache.get(&key(1, Format::Html), now).is_none());
    }
}
