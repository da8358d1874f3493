//! A cache of small files' contents, checked against the file system on
//! every hit.
//!
//! Serving a small file costs four syscalls (`openat2`, `fstat`, `read`,
//! `close`); a hit here costs one `fstatat` relative to the root. The cache never serves stale bytes:
//! each hit compares the file's identity (device, inode, size, mtime and
//! ctime, which every write updates) with the one recorded when it was read,
//! and a mismatch is a miss. So a replaced or edited file is seen by the very
//! next request, as without a cache.
//!
//! Only files that the normal path opened (through `openat2` beneath the
//! root, after the dotfile policy) are ever inserted, under their decoded
//! relative path. A later symlink swap cannot make a hit serve something
//! else: the `stat` follows the new link, finds another inode, and misses,
//! and the miss goes back through `openat2`.
//!
//! Runs on: worker threads (shared by all of them behind one mutex; the
//! critical sections are a hash lookup).

use std::collections::HashMap;
use std::fs::{File, Metadata};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::sys::{self, FileStamp};

/// Memory the cache may hold. Entries are small files (see
/// `site::SMALL_FILE`), so this is a few hundred of them: the hot set of
/// a typical site.
pub const MAX_CACHED_BYTES: usize = 8 * 1024 * 1024;

struct Entry {
    data: Arc<[u8]>,
    /// The metadata read with the data; still true while the stamp matches.
    meta: Metadata,
    stamp: FileStamp,
    /// The file has no `.br`/`.gz` sidecar as long as its directory has
    /// this stamp (creating, removing or renaming an entry changes it).
    no_sidecars_in: Option<FileStamp>,
}

/// A cache hit.
pub struct Hit {
    pub data: Arc<[u8]>,
    pub meta: Metadata,
    /// See [`FileCache::note_no_sidecars`].
    pub no_sidecars_in: Option<FileStamp>,
}

#[derive(Default)]
pub struct FileCache {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    entries: HashMap<PathBuf, Entry>,
    bytes: usize,
}

impl FileCache {
    pub fn new() -> FileCache {
        FileCache::default()
    }

    /// The cached contents of `relative` under the directory `root`, and
    /// their metadata, if cached and unchanged. A path that was never cached
    /// costs no syscall; a cached one costs one `fstatat`.
    pub fn get(&self, root: &File, relative: &Path) -> Option<Hit> {
        let (hit, stamp) = {
            let inner = self.lock();
            let entry = inner.entries.get(relative)?;
            let hit = Hit {
                data: Arc::clone(&entry.data),
                meta: entry.meta.clone(),
                no_sidecars_in: entry.no_sidecars_in,
            };
            (hit, entry.stamp)
        };
        match sys::stat_beneath(root, relative) {
            Ok(now) if now == stamp => Some(hit),
            _ => {
                self.lock().remove(relative);
                None
            }
        }
    }

    /// Remembers `data` as the contents of `relative` described by `meta`.
    pub fn insert(&self, relative: &Path, data: Arc<[u8]>, meta: &Metadata) {
        if data.len() > MAX_CACHED_BYTES / 16 {
            return;
        }
        let mut inner = self.lock();
        inner.remove(relative);
        // Make room by dropping arbitrary entries: simpler than LRU, and a
        // dropped hot file comes back on its next request.
        while inner.bytes + data.len() > MAX_CACHED_BYTES {
            let Some(victim) = inner.entries.keys().next().cloned() else {
                break;
            };
            inner.remove(&victim);
        }
        inner.bytes += data.len();
        let entry = Entry {
            data,
            meta: meta.clone(),
            stamp: FileStamp::of(meta),
            no_sidecars_in: None,
        };
        inner.entries.insert(relative.to_path_buf(), entry);
    }

    /// Remembers that `relative` had no sidecar while its directory had the
    /// stamp `dir`: the next hits skip two failing opens.
    pub fn note_no_sidecars(&self, relative: &Path, dir: FileStamp) {
        if let Some(entry) = self.lock().entries.get_mut(relative) {
            entry.no_sidecars_in = Some(dir);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Inner {
    fn remove(&mut self, relative: &Path) {
        if let Some(old) = self.entries.remove(relative) {
            self.bytes -= old.data.len();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn a_changed_file_is_a_miss() {
        let dir = std::env::temp_dir().join(format!("stoke-cache-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let rel = Path::new("a.txt");
        fs::write(dir.join(rel), b"one").unwrap();
        let cache = FileCache::new();
        let root = File::open(&dir).unwrap();
        assert!(cache.get(&root, rel).is_none());
        let meta = fs::metadata(dir.join(rel)).unwrap();
        cache.insert(rel, Arc::from(&b"one"[..]), &meta);
        assert_eq!(&*cache.get(&root, rel).unwrap().data, b"one");
        fs::write(dir.join(rel), b"two!").unwrap();
        assert!(cache.get(&root, rel).is_none());
        fs::remove_file(dir.join(rel)).unwrap();
        assert!(cache.get(&root, rel).is_none());
        let _ = fs::remove_dir_all(&dir);
    }
}
