//! A cache of small files' contents, proved fresh against the file system.
//!
//! Serving a small file costs four syscalls (`openat2`, `fstat`, `read`,
//! `close`); a hit here costs one link-free stat relative to the root
//! (`sys::stat_beneath`), or none while the kernel reports no change (see
//! below). The cache never serves stale bytes: a hit's proof compares the
//! file's stamp (device, inode, size, mtime and ctime, which every write
//! updates) with the one recorded when it was read, and a mismatch is a
//! miss. So a replaced or edited file is seen by the very next request, as
//! without a cache.
//!
//! With a watcher (`watcher.rs`; the reactor models only), a slot remembers
//! the watcher's epoch at which a stat last proved it (`Slot::proved_at`),
//! and a hit at that same epoch is served without a stat: no event since
//! means the stat would say what it said then. The epoch is read before
//! anything else, so a change during a proof leaves the slot proved at an
//! epoch already past. Proving a slot the first time (or after its
//! directories' watches may have gone: a new watch generation) watches its
//! directories and its file first; a file whose own watch had an event
//! since the data was proved is a miss even if its stamp did not move
//! (a same-size rewrite within one tick of the clock). A slot that cannot
//! be watched (a remote file system, a watch refused, the limit reached)
//! stats on every hit, as without a watcher. A file's watch goes with its
//! data: it pins the inode in kernel memory.
//!
//! Only files that the normal path opened (beneath the root, after the
//! dotfile policy) and that a link-free stat of the same path reaches are
//! inserted, under their decoded relative path (its bytes: `url_path`
//! normalizes it, so equal paths are equal bytes). A hit cannot reach anything
//! a fresh resolution would refuse: its proof refuses every symlink on the
//! path, so it only ever sees the very path `url_path` vetted; a symlink put
//! anywhere on it, or another inode (or the same inode with a new ctime), is
//! a miss, and the miss goes back through `sys::open_beneath`. A hit without
//! a stat serves only a path so proved, with no event since in any
//! directory on it: putting a symlink there is such an event.
//!
//! Two maps, both bounded: a path index (at most [`MAX_CACHED_PATHS`]
//! paths) and the data, keyed by the file's identity (device, inode). The
//! aliases of one file (hard links: `a.txt` and `b.txt` naming one inode)
//! are entries of the index that share one copy of the data; paths through
//! a symlink (`l/a.txt` with `l -> .`) are never hit, since the hit's stat
//! refuses links. Bytes of data and
//! of paths together stay under [`MAX_CACHED_BYTES`]; empty files cost a
//! path each and are bounded by the path count.
//!
//! Eviction is CLOCK (second chance) over the paths: a hit sets the path's
//! reference bit, the hand clears set bits and evicts the first path whose
//! bit is clear, and a file's data goes with its last path. A path hit since
//! the hand last passed survives a sweep of cold ones.
//!
//! Each path also keeps what the worker learnt about it: "no `.br`/`.gz`
//! sidecar while the directory has this stamp", and the file's prepared
//! answer (`site::prepared`: the head's request-independent lines), which
//! a hit returns only while it belongs to the cached version of the file.
//!
//! Runs on: worker threads, shared by all of them behind one `RwLock`. A hit
//! takes it for reading only (a hash lookup, a few `Arc` clones, an atomic
//! reference bit and the epoch compare), so hits on many threads do not
//! wait for each other; insertions, misses, evictions, proofs' records and
//! the notes above take it for writing (a proof's syscalls run unlocked).

use std::collections::hash_map::Entry as MapEntry;
use std::collections::HashMap;
use std::fs::{File, Metadata};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use super::prepared::Prepared;
use super::watcher::{FileWatch, Unwatched, Watcher, NEVER};
use crate::limits::{MAX_CACHED_BYTES, MAX_CACHED_PATHS};
use crate::sys::{self, FileStamp};

/// Bounds of one cache; [`FileCache::new`] uses the constants above.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub max_bytes: usize,
    pub max_paths: usize,
}

/// The default bounds.
pub const LIMITS: Limits = Limits {
    max_bytes: MAX_CACHED_BYTES,
    max_paths: MAX_CACHED_PATHS,
};

/// What the cache holds right now (for tests and diagnostics).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stats {
    /// Paths indexed.
    pub paths: usize,
    /// Distinct files (identities) whose data is held.
    pub files: usize,
    /// Bytes of data and paths held.
    pub bytes: usize,
}

/// The maps' hasher: foldhash, seeded at random per map. Every hit hashes
/// its path, and SipHash (std's default) cost about a fifth of a hit's
/// instructions. Flooding a map with colliding keys (HashDoS) is not open
/// to a client anyway: only files that exist under the root are inserted,
/// at most `MAX_CACHED_PATHS`, and a lookup never inserts; the random seed
/// still keeps collisions from being computed offline.
type Hasher = foldhash::fast::RandomState;

/// A file's identity: what its aliases share.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct FileId {
    dev: u64,
    ino: u64,
}

/// One file's contents, shared by every path that reaches it.
struct FileData {
    data: Arc<[u8]>,
    /// The metadata read with the data; still true while the stamp matches.
    /// Shared with hits: a hit answered from its prepared answer never
    /// looks at it, so it is not copied per hit.
    meta: Arc<Metadata>,
    stamp: FileStamp,
    /// Paths of the index that point here; the data goes with the last.
    paths: usize,
    /// Its inotify watch, once a hit proved it (`watcher.rs`); removed with
    /// the data, since a watch pins the inode in kernel memory.
    watch: Option<FileWatch>,
}

/// One indexed path.
struct Slot {
    /// The bytes of the decoded relative path: `url_path` normalizes it, so
    /// equal paths are equal bytes, and hashing bytes is cheaper than
    /// hashing a `Path` component by component.
    path: Arc<[u8]>,
    file: FileId,
    /// The path has no `.br`/`.gz` sidecar as long as its directory has
    /// this stamp (creating, removing or renaming an entry changes it).
    no_sidecars_in: Option<FileStamp>,
    /// The answer prepared for this path (`site::prepared`), valid while its
    /// stamp is the file's.
    prepared: Option<Arc<Prepared>>,
    /// CLOCK's reference bit: set by hits (under the read lock), cleared by
    /// the hand (under the write lock).
    referenced: AtomicBool,
    /// The watcher's epoch at which a stat last proved this path fresh
    /// ([`NEVER`] until then): a hit at that epoch needs no stat.
    proved_at: AtomicU64,
    /// The watch generation under which this path's directories were
    /// watched ([`NEVER`]: not yet; [`BLIND`]: cannot be, stat every hit).
    dirs_watched: AtomicU64,
}

/// `Slot::dirs_watched` of a path that cannot be watched.
const BLIND: u64 = NEVER - 1;

/// A cache hit.
pub struct Hit {
    pub data: Arc<[u8]>,
    pub meta: Arc<Metadata>,
    /// See [`FileCache::note_no_sidecars`].
    pub no_sidecars_in: Option<FileStamp>,
    /// See [`FileCache::prepare`]; only for the version hit.
    pub prepared: Option<Arc<Prepared>>,
}

pub struct FileCache {
    inner: RwLock<Inner>,
    limits: Limits,
    /// Stats made to prove a hit fresh (tests count them).
    checks: Arc<AtomicU64>,
}

#[derive(Default)]
struct Inner {
    index: HashMap<Arc<[u8]>, usize, Hasher>,
    /// CLOCK's circle; `None` is a free place, listed in `free`.
    slots: Vec<Option<Slot>>,
    free: Vec<usize>,
    hand: usize,
    files: HashMap<FileId, FileData, Hasher>,
    /// Bytes of every `FileData::data` and every `Slot::path`.
    bytes: usize,
    /// Reports changes, so that hits need no stat (`watcher.rs`); `None`:
    /// every hit stats (the blocking models, or inotify unavailable).
    watcher: Option<Arc<Watcher>>,
}

impl Default for FileCache {
    fn default() -> FileCache {
        FileCache::with_limits(LIMITS)
    }
}

impl FileCache {
    pub fn new() -> FileCache {
        FileCache::default()
    }

    pub fn with_limits(limits: Limits) -> FileCache {
        FileCache {
            inner: RwLock::new(Inner::default()),
            limits,
            checks: Arc::new(AtomicU64::new(0)),
        }
    }

    /// From now on, hits trust `watcher`'s reports instead of a stat each
    /// (see `watcher.rs`). Only for a server that answers a request after a
    /// [`Watcher::fence`] begun after it was read (the reactor models).
    pub fn watch_with(&self, watcher: Arc<Watcher>) {
        self.write().watcher = Some(watcher);
    }

    /// The watcher, if hits may trust one.
    pub fn watcher(&self) -> Option<Arc<Watcher>> {
        self.read().watcher.clone()
    }

    /// Stats made so far to prove a hit fresh.
    pub fn checks(&self) -> Arc<AtomicU64> {
        Arc::clone(&self.checks)
    }

    /// The cached contents of `relative` under the directory `root`, and
    /// their metadata, if cached and unchanged. A path that was never cached
    /// costs no syscall; a cached one proved fresh at the watcher's current
    /// epoch costs none either; else one link-free stat
    /// (`sys::stat_beneath`) proves it again (see [`FileCache::prove`]).
    pub fn get(&self, root: &File, relative: &Path) -> Option<Hit> {
        let (hit, stamp, proof) = {
            let inner = self.read();
            let &place = inner.index.get(key(relative))?;
            let slot = inner.slots.get(place)?.as_ref()?;
            let file = inner.files.get(&slot.file)?;
            // Read first: a bit already set costs no write to a shared line.
            if !slot.referenced.load(Ordering::Relaxed) {
                slot.referenced.store(true, Ordering::Relaxed);
            }
            let hit = Hit {
                data: Arc::clone(&file.data),
                meta: Arc::clone(&file.meta),
                no_sidecars_in: slot.no_sidecars_in,
                prepared: slot
                    .prepared
                    .as_ref()
                    .filter(|p| p.stamp() == file.stamp)
                    .map(Arc::clone),
            };
            let proof = match &inner.watcher {
                Some(watcher) => {
                    // The hit of a path proved at the current epoch: no
                    // event since, so the stat would say what it said then.
                    let epoch = watcher.epoch();
                    if slot.proved_at.load(Ordering::Relaxed) == epoch {
                        return Some(hit);
                    }
                    Some(Proof {
                        watcher: Arc::clone(watcher),
                        epoch,
                        dirs_watched: slot.dirs_watched.load(Ordering::Relaxed),
                        file_watch: file.watch,
                    })
                }
                None => None,
            };
            (hit, file.stamp, proof)
        };
        self.checks.fetch_add(1, Ordering::Relaxed);
        let fresh = match proof {
            None => sys::stat_beneath(root, relative).is_ok_and(|now| now == stamp),
            Some(proof) => self.prove(root, relative, stamp, proof),
        };
        if fresh {
            Some(hit)
        } else {
            self.write().remove_stale(relative, stamp);
            None
        }
    }

    /// Proves the cached version `stamp` of `relative` fresh with a stat,
    /// watching the path first if it is not yet (or its directories were
    /// watched under an older generation), and records the epoch it was
    /// proved at. The order is the argument of `watcher.rs`: the epoch is
    /// read (by the caller) before any watch is added and before the stat.
    fn prove(&self, root: &File, relative: &Path, stamp: FileStamp, proof: Proof) -> bool {
        let Proof {
            watcher,
            epoch,
            dirs_watched,
            file_watch,
        } = proof;
        if dirs_watched == BLIND {
            return sys::stat_beneath(root, relative).is_ok_and(|now| now == stamp);
        }
        let generation = watcher.watch_gen();
        let dirs = if dirs_watched == generation {
            Ok(())
        } else {
            watcher.watch_dirs(relative)
        };
        let proved = match (dirs, file_watch) {
            (Err(Unwatched::Blind), _) => {
                self.mark_blind(relative, stamp);
                return sys::stat_beneath(root, relative).is_ok_and(|now| now == stamp);
            }
            (Err(Unwatched::Gone(_)), _) => return false,
            // Watched already: any event since it was added means the data
            // may be stale, whatever the stamp says.
            (Ok(()), Some(watch)) => {
                if !watcher.file_unchanged(watch) {
                    return false;
                }
                match sys::stat_beneath(root, relative) {
                    Ok(now) if now == stamp => watch,
                    _ => return false,
                }
            }
            (Ok(()), None) => match watcher.watch_file(root, relative, epoch) {
                Ok((watch, now)) if now == stamp => watch,
                Ok((watch, _)) => {
                    watcher.unwatch_file(watch.wd);
                    return false;
                }
                Err(Unwatched::Blind) => {
                    self.mark_blind(relative, stamp);
                    return sys::stat_beneath(root, relative).is_ok_and(|now| now == stamp);
                }
                Err(Unwatched::Gone(_)) => return false,
            },
        };
        if file_watch.is_some() {
            // Proved with the data's own watch: only the slot's atomics
            // change, under the read lock (a tree that changes all the time
            // costs hits a stat each, as without a watcher, not a write
            // lock each). Not if the data was dropped and cached again
            // meanwhile: its watch is another one, or none yet.
            let inner = self.read();
            if let Some(slot) = inner
                .index
                .get(key(relative))
                .and_then(|&place| inner.slots[place].as_ref())
            {
                let same = inner
                    .files
                    .get(&slot.file)
                    .is_some_and(|f| f.stamp == stamp && f.watch == file_watch);
                if same {
                    slot.dirs_watched.store(generation, Ordering::Relaxed);
                    slot.proved_at.store(epoch, Ordering::Relaxed);
                }
            }
            return true;
        }
        let mut guard = self.write();
        let inner = &mut *guard;
        let found = inner.index.get(key(relative)).and_then(|&place| {
            let slot = inner.slots[place].as_ref()?;
            let file = inner.files.get_mut(&slot.file)?;
            (file.stamp == stamp).then_some((slot, file))
        });
        let Some((slot, file)) = found else {
            // Dropped meanwhile: nobody will remove this watch but us.
            watcher.unwatch_file(proved.wd);
            return true;
        };
        // One watch per inode: a different one held is one removed since.
        file.watch = Some(proved);
        slot.dirs_watched.store(generation, Ordering::Relaxed);
        slot.proved_at.store(epoch, Ordering::Relaxed);
        true
    }

    /// `relative` (in version `stamp`) cannot be watched: it stats on every
    /// hit from now on, without trying again.
    fn mark_blind(&self, relative: &Path, stamp: FileStamp) {
        let inner = self.read();
        if let Some(slot) = inner
            .index
            .get(key(relative))
            .and_then(|&place| inner.slots[place].as_ref())
        {
            if inner
                .files
                .get(&slot.file)
                .is_some_and(|f| f.stamp == stamp)
            {
                slot.dirs_watched.store(BLIND, Ordering::Relaxed);
            }
        }
    }

    /// Remembers `data` as the contents of `relative` described by `meta`.
    /// If another path already holds this file's data in the same version,
    /// `relative` becomes one more name for it; a newer version replaces it
    /// for all its names.
    pub fn insert(&self, relative: &Path, data: Arc<[u8]>, meta: &Metadata) {
        // One file may not take more than a small share of the cache.
        if data.len() > self.limits.max_bytes / 16 {
            return;
        }
        let id = FileId {
            dev: meta.dev(),
            ino: meta.ino(),
        };
        let stamp = FileStamp::of(meta);
        let path_len = relative.as_os_str().len();
        let mut guard = self.write();
        let inner = &mut *guard;
        if let Some(&place) = inner.index.get(key(relative)) {
            inner.remove_slot(place);
        }
        // Room for the path and the data (none if this version is held
        // already). Evicting may drop that version: ask again every turn.
        loop {
            let new_data = match inner.files.get(&id) {
                Some(held) if held.stamp == stamp => 0,
                Some(held) => data.len().saturating_sub(held.data.len()),
                None => data.len(),
            };
            let fits = inner.index.len() < self.limits.max_paths
                && inner.bytes + path_len + new_data <= self.limits.max_bytes;
            if fits {
                break;
            }
            if !inner.evict_one() {
                return;
            }
        }
        match inner.files.entry(id) {
            MapEntry::Occupied(mut held) => {
                let held = held.get_mut();
                if held.stamp != stamp {
                    // A newer version of a file cached under another name.
                    inner.bytes = inner.bytes - held.data.len() + data.len();
                    held.data = data;
                    held.meta = Arc::new(meta.clone());
                    held.stamp = stamp;
                    // Proved again from scratch: its paths are not proved
                    // for this version (below), and its watch's events
                    // were the old version's.
                    if let (Some(watch), Some(watcher)) = (held.watch.take(), &inner.watcher) {
                        watcher.unwatch_file(watch.wd);
                    }
                    for slot in inner.slots.iter().flatten() {
                        if slot.file == id {
                            slot.proved_at.store(NEVER, Ordering::Relaxed);
                        }
                    }
                }
                held.paths += 1;
            }
            MapEntry::Vacant(place) => {
                inner.bytes += data.len();
                place.insert(FileData {
                    data,
                    meta: Arc::new(meta.clone()),
                    stamp,
                    paths: 1,
                    watch: None,
                });
            }
        }
        let path: Arc<[u8]> = Arc::from(key(relative));
        inner.bytes += path_len;
        let slot = Slot {
            path: Arc::clone(&path),
            file: id,
            no_sidecars_in: None,
            prepared: None,
            referenced: AtomicBool::new(false),
            // Never proved: a change between the worker's read and the
            // first watch is seen only by the first proof's stat.
            proved_at: AtomicU64::new(NEVER),
            dirs_watched: AtomicU64::new(NEVER),
        };
        let place = match inner.free.pop() {
            Some(place) => {
                inner.slots[place] = Some(slot);
                place
            }
            None => {
                inner.slots.push(Some(slot));
                inner.slots.len() - 1
            }
        };
        inner.index.insert(path, place);
    }

    /// Remembers that `relative` had no sidecar while its directory had the
    /// stamp `dir`: the next hits skip two failing opens.
    pub fn note_no_sidecars(&self, relative: &Path, dir: FileStamp) {
        let mut inner = self.write();
        if let Some(&place) = inner.index.get(key(relative)) {
            if let Some(slot) = inner.slots[place].as_mut() {
                slot.no_sidecars_in = Some(dir);
            }
        }
    }

    /// Keeps `prepared` as `relative`'s answer, if the cached version of the
    /// file is still the one it was made from.
    pub fn prepare(&self, relative: &Path, prepared: Arc<Prepared>) {
        let mut guard = self.write();
        let inner = &mut *guard;
        let Some(&place) = inner.index.get(key(relative)) else {
            return;
        };
        let Some(slot) = inner.slots[place].as_mut() else {
            return;
        };
        if inner
            .files
            .get(&slot.file)
            .is_some_and(|file| file.stamp == prepared.stamp())
        {
            slot.prepared = Some(prepared);
        }
    }

    pub fn stats(&self) -> Stats {
        let inner = self.read();
        Stats {
            paths: inner.index.len(),
            files: inner.files.len(),
            bytes: inner.bytes,
        }
    }

    fn read(&self) -> RwLockReadGuard<'_, Inner> {
        self.inner.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, Inner> {
        self.inner.write().unwrap_or_else(|e| e.into_inner())
    }
}

/// What a hit not proved at the current epoch needs to prove itself.
struct Proof {
    watcher: Arc<Watcher>,
    /// The epoch read before anything else: the one the proof is for.
    epoch: u64,
    dirs_watched: u64,
    file_watch: Option<FileWatch>,
}

/// The index's key for `relative`.
fn key(relative: &Path) -> &[u8] {
    relative.as_os_str().as_bytes()
}

impl Inner {
    /// Forgets `relative` if it still holds the version `stamp` (another
    /// thread may have cached a newer one since this one was found stale).
    fn remove_stale(&mut self, relative: &Path, stamp: FileStamp) {
        let Some(&place) = self.index.get(key(relative)) else {
            return;
        };
        let current = self.slots[place]
            .as_ref()
            .and_then(|slot| self.files.get(&slot.file))
            .map(|file| file.stamp);
        if current.is_none_or(|current| current == stamp) {
            self.remove_slot(place);
        }
    }

    /// Frees the place `place`, its path, and its file's data if no other
    /// path shares it.
    fn remove_slot(&mut self, place: usize) {
        let Some(slot) = self.slots[place].take() else {
            return;
        };
        self.free.push(place);
        self.index.remove(&slot.path);
        self.bytes -= slot.path.len();
        if let MapEntry::Occupied(mut file) = self.files.entry(slot.file) {
            file.get_mut().paths -= 1;
            if file.get().paths == 0 {
                let file = file.remove();
                self.bytes -= file.data.len();
                if let (Some(watch), Some(watcher)) = (file.watch, &self.watcher) {
                    watcher.unwatch_file(watch.wd);
                }
            }
        }
    }

    /// CLOCK: moves the hand, giving each referenced path a second chance,
    /// and evicts the first unreferenced one. False when nothing is cached.
    fn evict_one(&mut self) -> bool {
        if self.index.is_empty() {
            return false;
        }
        // Two turns suffice: the first clears every bit it passes.
        for _ in 0..2 * self.slots.len() + 1 {
            let place = self.hand % self.slots.len();
            self.hand = place + 1;
            let Some(slot) = self.slots[place].as_mut() else {
                continue;
            };
            if std::mem::take(slot.referenced.get_mut()) {
                continue;
            }
            self.remove_slot(place);
            return true;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::path::PathBuf;

    /// A scratch directory unique to this test process and test name.
    fn scratch(test: &str) -> (PathBuf, File) {
        let dir = std::env::temp_dir().join(format!("stoke-cache-{}-{test}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let root = File::open(&dir).unwrap();
        (dir, root)
    }

    /// Reads `rel` under `dir` and caches it, as the worker does on a miss.
    fn load(cache: &FileCache, dir: &Path, rel: &str) {
        let meta = fs::metadata(dir.join(rel)).unwrap();
        let data: Arc<[u8]> = fs::read(dir.join(rel)).unwrap().into();
        cache.insert(Path::new(rel), data, &meta);
    }

    fn hit(cache: &FileCache, root: &File, rel: &str) -> Option<Vec<u8>> {
        cache.get(root, Path::new(rel)).map(|h| h.data.to_vec())
    }

    #[test]
    fn a_changed_file_is_a_miss() {
        let (dir, root) = scratch("changed");
        let rel = Path::new("a.txt");
        fs::write(dir.join(rel), b"one").unwrap();
        let cache = FileCache::new();
        assert!(cache.get(&root, rel).is_none());
        load(&cache, &dir, "a.txt");
        assert_eq!(&*cache.get(&root, rel).unwrap().data, b"one");
        fs::write(dir.join(rel), b"two!").unwrap();
        assert!(cache.get(&root, rel).is_none());
        fs::remove_file(dir.join(rel)).unwrap();
        assert!(cache.get(&root, rel).is_none());
        let _ = fs::remove_dir_all(&dir);
    }

    /// Rewrites in place with the same size, replaces by rename, and edits
    /// seen through an alias: none of them ever yields the old bytes.
    #[test]
    fn stale_data_is_never_served() {
        let (dir, root) = scratch("stale");
        fs::write(dir.join("a.txt"), b"one").unwrap();
        // A second name for the same inode: a hard link (a name through a
        // symlink is never hit at all, see below).
        fs::hard_link(dir.join("a.txt"), dir.join("b.txt")).unwrap();
        let cache = FileCache::new();
        load(&cache, &dir, "a.txt");
        load(&cache, &dir, "b.txt");
        assert_eq!(cache.stats().files, 1, "two names, one copy");
        let before = sys::stat_beneath(&root, Path::new("a.txt")).unwrap();
        // Same size, same inode: only the times tell. Rewrite until the
        // stamp moves (file systems with coarse timestamps may need a tick).
        for _ in 0..10_000 {
            fs::write(dir.join("a.txt"), b"two").unwrap();
            if sys::stat_beneath(&root, Path::new("a.txt")).unwrap() != before {
                break;
            }
        }
        assert_ne!(
            sys::stat_beneath(&root, Path::new("a.txt")).unwrap(),
            before
        );
        assert_eq!(hit(&cache, &root, "a.txt"), None);
        assert_eq!(hit(&cache, &root, "b.txt"), None, "the alias too");
        // The new version, cached under one name, serves both names.
        load(&cache, &dir, "a.txt");
        load(&cache, &dir, "b.txt");
        assert_eq!(hit(&cache, &root, "b.txt").as_deref(), Some(&b"two"[..]));
        // Replaced by rename: another inode.
        fs::write(dir.join("new"), b"three").unwrap();
        fs::rename(dir.join("new"), dir.join("a.txt")).unwrap();
        assert_eq!(hit(&cache, &root, "a.txt"), None);
        // A name through a symlink is never a hit, even for unchanged data:
        // the hit's stat refuses links (`sys::stat_beneath`).
        std::os::unix::fs::symlink(".", dir.join("l")).unwrap();
        load(&cache, &dir, "l/a.txt");
        assert_eq!(hit(&cache, &root, "l/a.txt"), None);
        let _ = fs::remove_dir_all(&dir);
    }

    /// Empty files cost no data bytes and `l -> .` makes endless names for
    /// one file: the path count bounds both, and aliases share one copy.
    #[test]
    fn empty_files_and_alias_paths_do_not_grow_the_cache_without_bound() {
        let (dir, root) = scratch("bounded");
        std::os::unix::fs::symlink(".", dir.join("l")).unwrap();
        fs::write(dir.join("f.txt"), vec![b'x'; 1000]).unwrap();
        let limits = Limits {
            max_bytes: 64 * 1024,
            max_paths: 64,
        };
        let cache = FileCache::with_limits(limits);
        for n in 0..500 {
            fs::write(dir.join(format!("e{n}")), b"").unwrap();
            load(&cache, &dir, &format!("e{n}"));
            assert!(cache.stats().paths <= limits.max_paths);
        }
        let mut alias = String::from("f.txt");
        // The kernel follows at most 40 symlinks in one lookup.
        for _ in 0..30 {
            alias.insert_str(0, "l/");
            load(&cache, &dir, &alias);
            let stats = cache.stats();
            assert!(stats.paths <= limits.max_paths, "{stats:?}");
            assert!(stats.bytes <= limits.max_bytes, "{stats:?}");
        }
        // The aliases still cached share one copy. (None of them would hit:
        // a hit's stat refuses symlinks, and the site never inserts them.)
        let stats = cache.stats();
        assert!(stats.files < stats.paths, "{stats:?}");
        assert_eq!(hit(&cache, &root, &alias), None);
        let _ = fs::remove_dir_all(&dir);
    }

    /// With a watcher, a proved path is hit without a stat until a change
    /// is fenced in; then it is proved again, once.
    #[test]
    fn with_a_watcher_hits_stat_once_per_reported_change() {
        let (dir, root) = scratch("watched");
        fs::create_dir_all(dir.join("d")).unwrap();
        fs::write(dir.join("d/a.txt"), b"one").unwrap();
        let cache = FileCache::new();
        cache.watch_with(Arc::new(Watcher::new(&root).unwrap()));
        let watcher = cache.watcher().unwrap();
        load(&cache, &dir, "d/a.txt");
        let checks = || cache.checks().load(Ordering::Relaxed);
        assert_eq!(hit(&cache, &root, "d/a.txt").as_deref(), Some(&b"one"[..]));
        assert_eq!(checks(), 1, "the first hit proves the path");
        for _ in 0..10 {
            assert_eq!(hit(&cache, &root, "d/a.txt").as_deref(), Some(&b"one"[..]));
        }
        assert_eq!(checks(), 1, "no change, no stat");
        fs::write(dir.join("other.txt"), b"x").unwrap();
        // Not fenced yet: the change is not known (the reactor fences
        // before a worker sees a request read after it).
        hit(&cache, &root, "d/a.txt");
        assert_eq!(checks(), 1);
        watcher.fence();
        assert_eq!(hit(&cache, &root, "d/a.txt").as_deref(), Some(&b"one"[..]));
        assert_eq!(hit(&cache, &root, "d/a.txt").as_deref(), Some(&b"one"[..]));
        assert_eq!(checks(), 2, "one stat for the change");
        fs::write(dir.join("d/a.txt"), b"two").unwrap();
        watcher.fence();
        assert_eq!(hit(&cache, &root, "d/a.txt"), None, "the file's own change");
        let _ = fs::remove_dir_all(&dir);
    }

    /// Regression (unwatchable-file-was-a-miss): where no `O_PATH` open was
    /// possible (no `openat2` under valgrind, a seccomp sandbox), the
    /// file's watch failed as if the file were gone, and every hit was a
    /// miss. It is a hit proved by a stat, every time.
    #[test]
    fn a_file_that_cannot_be_watched_is_still_a_hit_proved_by_a_stat() {
        if !cfg!(feature = "test-hooks") {
            return;
        }
        let (dir, root) = scratch("unwatchable");
        fs::write(dir.join("__stoke_test_no_o_path"), b"data").unwrap();
        let cache = FileCache::new();
        cache.watch_with(Arc::new(Watcher::new(&root).unwrap()));
        load(&cache, &dir, "__stoke_test_no_o_path");
        for n in 1..=5 {
            let got = hit(&cache, &root, "__stoke_test_no_o_path");
            assert_eq!(got.as_deref(), Some(&b"data"[..]), "hit {n}");
            assert_eq!(cache.checks().load(Ordering::Relaxed), n);
        }
        let _ = fs::remove_dir_all(&dir);
    }

    /// A path that keeps being hit survives a stream of paths used once.
    #[test]
    fn clock_keeps_a_hot_entry_over_cold_ones() {
        let (dir, root) = scratch("clock");
        let limits = Limits {
            max_bytes: 1024 * 1024,
            max_paths: 8,
        };
        let cache = FileCache::with_limits(limits);
        fs::write(dir.join("hot"), b"hot").unwrap();
        load(&cache, &dir, "hot");
        for n in 0..100 {
            let name = format!("cold{n}");
            fs::write(dir.join(&name), b"cold").unwrap();
            load(&cache, &dir, &name);
            assert!(hit(&cache, &root, "hot").is_some(), "hot evicted at {n}");
        }
        // The cold ones were evicted in turn: only the most recent remain.
        assert_eq!(cache.stats().paths, limits.max_paths);
        assert!(hit(&cache, &root, "cold0").is_none());
        assert!(hit(&cache, &root, "cold99").is_some());
        let _ = fs::remove_dir_all(&dir);
    }
}
