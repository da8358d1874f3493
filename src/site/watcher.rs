//! Freshness by notification: what lets a hit of the small-file cache
//! (`cache.rs`) skip its stat while the kernel has reported no change.
//!
//! One inotify instance (`sys::watch`) watches, for each cached path
//! `a/b/c.html`, the directories ROOT, ROOT/a and ROOT/a/b (a directory's
//! watch reports entries created, deleted or renamed in it, and writes and
//! attribute changes of its children) and the file's own inode (so a write
//! through a hard link in a directory we do not watch is seen too: the
//! kernel reports a write to the inode's watches and to the parent of the
//! path written through). Only change events are asked for: our own opens
//! and reads raise nothing.
//!
//! Two counters say what happened, bumped when events are read:
//! - `epoch`, on any event at all. A cache slot remembers the epoch at which
//!   it was last proved fresh (a stat matching its stamp); a hit on a slot
//!   proved at the current epoch skips the stat. Any change anywhere in the
//!   watched tree sends every slot back to one stat: coarse, but a static
//!   site rarely changes, and one counter keeps the hit to a load and a
//!   compare.
//! - `watch_gen`, when a watch may no longer cover the path it was added
//!   for: a watched directory deleted, moved, unmounted or its watch gone
//!   (IN_DELETE_SELF, IN_MOVE_SELF, IN_UNMOUNT, IN_IGNORED), a directory
//!   created, deleted or renamed inside a watched one (IN_ISDIR: a path
//!   through that name may now lead to another directory), or lost events
//!   (IN_Q_OVERFLOW). A slot whose directories were watched under an older
//!   generation adds their watches again (by path; the kernel returns the
//!   same watch for an inode already watched) before it is proved again.
//!   A directory moved away loses its watch (a path still through it is
//!   watched again), so [`MAX_WATCHED_DIRS`] counts directories in place.
//!
//! Each file watch also remembers the epoch of its last event: data proved
//! after the watch was added is stale once its file had any event since,
//! whatever the stat says. That catches what a stamp cannot: a rewrite of
//! the same size within one tick of the file system's clock.
//!
//! Why a hit can skip the stat and never serve stale bytes:
//! 1. The kernel queues a change's event inside the changing syscall,
//!    before that syscall returns; a client who requests after the change
//!    sends its request after that.
//! 2. The reactor reads the request, then, before any worker can see the
//!    job, drains the inotify queue to `EAGAIN` and bumps `epoch` ([`fence`],
//!    once per turn for all the jobs the turn read: `event_loop.rs` holds
//!    them until then; `reactor-inline` drains before each request it
//!    answers). The drain began after the request was read, so it read the
//!    change's event (or an earlier drain did, and bumped before releasing
//!    the lock this one took). Not epoll's readiness of the inotify
//!    descriptor: a socket read may return bytes that arrived after the
//!    poll that reported it (a pipelined request, one sent just after
//!    accept), whose change's event that poll could not have reported.
//!
//!    With one event loop the drain is skipped when nothing was signalled
//!    ([`fence_on_signal`]): the inotify descriptor signals the loop's
//!    thread (`SIGIO`) for every event it queues, from inside the syscall
//!    that made the change, and a thread runs the handlers of its pending
//!    signals before any of its syscalls returns. The read that returned
//!    the request came after the change (1), so the handler had set the
//!    flag before the fence looks at it: bytes that arrived after a poll
//!    are covered too. With several loops a signal reaches one thread
//!    only, so every fence drains.
//! 3. The job reaches a worker through the pool's queue (release/acquire),
//!    so the worker sees the bumped epoch, which no slot was proved at
//!    before the change: the slot is proved again with a stat.
//! 4. A slot is proved by reading `epoch` first, then (re)adding watches,
//!    then the stat: a change after the read bumps the epoch past the one
//!    stored, a change before it is in the stat. A new slot starts never
//!    proved (a change between the worker's read and the watch's add is
//!    seen by that first stat, as without inotify). The file's watch and
//!    stamp come from one `O_PATH` descriptor opened link-free, so they are
//!    of the same inode.
//! 5. A hit never reaches through a symlink: it serves only a path that a
//!    link-free resolution proved, and any later change on that path (a
//!    directory renamed away, a symlink put in its place) is an event of a
//!    watched directory, so the next hit resolves link-free again.
//!
//! Known departures from a stat per hit, where inotify is blind:
//! - file systems changed by another host or process behind the kernel's
//!   back (NFS, SMB/CIFS, FUSE, 9p, Ceph, AFS, overlayfs layers...): only
//!   an allowlist of local types (`sys::watch::is_local_fs`) is trusted, a
//!   slot with anything else on its path stats on every hit;
//! - writes through a shared writable `mmap` raise no IN_MODIFY: the stat
//!   would see them only once the mtime moved (at the first write fault
//!   after writeback), inotify at the next unrelated event;
//! - a file system mounted over a directory inside ROOT raises no event:
//!   the old tree is served until something else changes.
//!
//! A slot that cannot be watched (a watch refused: `ENOSPC` past
//! `fs.inotify.max_user_watches`, `EACCES`; [`MAX_WATCHED_DIRS`] reached; a
//! remote file system) simply stats on every hit, as before. If inotify
//! cannot be set up at all, the site has no watcher and every hit stats.
//!
//! The blocking models (`pool`, `thread-per-connection`) read and answer on
//! one thread with no such point: their site has no watcher.
//!
//! Runs on: workers (proving slots), the reactor threads ([`fence`]); the
//! counters are atomics, the watch table a mutex taken only by fences and
//! by slots being proved, never by a hit.
//!
//! [`fence`]: Watcher::fence
//! [`fence_on_signal`]: Watcher::fence_on_signal

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock};

use crate::limits::{MAX_WATCHED_DIRS, WATCH_READ_BUFFER};
use crate::sys::watch::{self, mask, Event, EventSignal, Inotify};
use crate::sys::{self, FileStamp};

/// A slot's "proved at" before it ever was: no epoch equals it.
pub const NEVER: u64 = u64::MAX;

/// What one watch is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Watched {
    Dir,
    /// A cached file's inode, with the epoch of its last event (0: none).
    File {
        changed_at: u64,
    },
}

/// A cached file's watch: its descriptor, and the epoch read before it was
/// added (events after that are its data's).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileWatch {
    pub wd: i32,
    pub since: u64,
}

/// Why a path gets no watch: it is stat-ed on every hit instead.
#[derive(Debug)]
pub enum Unwatched {
    /// Not on a local file system, a watch refused, or the limit reached:
    /// stat on every hit, for the slot's life.
    Blind,
    /// The path does not resolve link-free any more (a miss).
    Gone(io::Error),
}

pub struct Watcher {
    inotify: Inotify,
    /// The root's descriptor as a path (`/proc/self/fd/N`): inotify takes
    /// paths, and this one always names the tree `site::Site` serves.
    root: PathBuf,
    epoch: AtomicU64,
    watch_gen: AtomicU64,
    table: Mutex<Table>,
    /// Set by [`Watcher::fence_on_signal`]: a fence drains only after the
    /// kernel signalled an event. Unset: every fence drains.
    signal: OnceLock<EventSignal>,
    /// Fences that read the queue (tests count them).
    drains: AtomicU64,
}

#[derive(Default)]
struct Table {
    buf: Box<[u8]>,
    watches: HashMap<i32, Watched>,
    dirs: usize,
    /// File watches added before this epoch may have missed an event (the
    /// queue overflowed): their data is not trusted.
    floor: u64,
    /// Events of watches added but not recorded yet (the add's syscall
    /// runs outside the lock), with the epoch they were read for; merged
    /// by `record`.
    early: HashMap<i32, u64>,
    /// The directories (relative to ROOT) whose ancestors and selves were
    /// all watched, with the generation they were watched under: the files
    /// of one directory add its watches once.
    dirs_done: HashMap<PathBuf, u64>,
    /// Directories moved away, whose watches the fence removes: they
    /// count against [`MAX_WATCHED_DIRS`], and a path that still leads to
    /// one is watched again under the new generation.
    moved: Vec<i32>,
}

impl Watcher {
    /// A watcher for the tree under `root` (held open by the site for as
    /// long as the watcher lives).
    pub fn new(root: &File) -> io::Result<Watcher> {
        let inotify = Inotify::new()?;
        let root = PathBuf::from(format!("/proc/self/fd/{}", root.as_raw_fd()));
        // Watches are added through /proc: without it, none could be.
        std::fs::metadata(&root)?;
        Ok(Watcher {
            inotify,
            root,
            epoch: AtomicU64::new(0),
            watch_gen: AtomicU64::new(0),
            table: Mutex::new(Table {
                buf: vec![0; WATCH_READ_BUFFER].into_boxed_slice(),
                ..Table::default()
            }),
            signal: OnceLock::new(),
            drains: AtomicU64::new(0),
        })
    }

    /// From now on, a fence reads the queue only if the kernel signalled an
    /// event since the last one that did (`sys::watch::EventSignal`): a
    /// turn with no change costs a load instead of a `read`. Sound only if
    /// every fence runs on the calling thread (one event loop): the signal
    /// goes to this thread, and it is the reason a fence may skip the read
    /// (see the module doc). An `Err` leaves every fence reading.
    pub fn fence_on_signal(&self) -> io::Result<()> {
        // A second call changes nothing: re-pointing the signal at another
        // thread would break the first one's fences.
        if self.signal.get().is_some() {
            return Ok(());
        }
        let _ = self.signal.set(self.inotify.signal_calling_thread()?);
        Ok(())
    }

    /// Fences that read the queue so far.
    pub fn drains(&self) -> u64 {
        self.drains.load(Ordering::Relaxed)
    }

    /// The current epoch. Acquire: pairs with the fence's release, so the
    /// table (and `watch_gen`) are seen as the fence that set it left them.
    #[inline]
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    pub fn watch_gen(&self) -> u64 {
        self.watch_gen.load(Ordering::Acquire)
    }

    /// Reads every queued event and bumps the counters they call for;
    /// returns once the queue said `EAGAIN`. Under the table's lock, bumps
    /// included: a fence that finds the queue empty because another one is
    /// reading it waits for that one's bumps.
    pub fn fence(&self) {
        if let Some(signal) = self.signal.get() {
            if !signal.take() {
                return;
            }
        }
        self.drains.fetch_add(1, Ordering::Relaxed);
        let mut table = self.lock();
        let table = &mut *table;
        let next = self.epoch.load(Ordering::Relaxed) + 1;
        let mut effect = Effect::default();
        let mut buf = std::mem::take(&mut table.buf);
        loop {
            let more = self.inotify.read(&mut buf, |event: Event| {
                effect = effect.and(table.apply(event, next));
            });
            match more {
                Ok(true) => {}
                Ok(false) => break,
                Err(e) => {
                    // Never seen in practice; trust nothing from now on.
                    log::warn!("reading inotify events failed: {e}; cache hits stat again");
                    table.floor = NEVER;
                    effect = Effect {
                        bump: true,
                        regen: true,
                    };
                    break;
                }
            }
        }
        table.buf = buf;
        for wd in table.moved.drain(..) {
            // Its IN_IGNORED, read by a later fence, forgets it.
            self.inotify.remove(wd);
        }
        if effect.regen {
            self.watch_gen.fetch_add(1, Ordering::Release);
        }
        if effect.bump {
            self.epoch.store(next, Ordering::Release);
        }
    }

    /// Watches ROOT and every directory on the way to `relative`'s file
    /// (all of them local). `Err` if one cannot be.
    pub fn watch_dirs(&self, relative: &Path) -> Result<(), Unwatched> {
        let parent = relative.parent().unwrap_or(Path::new(""));
        let generation = self.watch_gen();
        if self.lock().dirs_done.get(parent) == Some(&generation) {
            return Ok(());
        }
        let mut dirs = vec![self.root.join(".")];
        let mut dir = self.root.clone();
        for component in parent.components() {
            let Component::Normal(name) = component else {
                return Err(Unwatched::Blind);
            };
            if cfg!(feature = "test-hooks") && name == "__stoke_test_remote" {
                return Err(Unwatched::Blind);
            }
            dir.push(name);
            dirs.push(dir.clone());
        }
        for dir in &dirs {
            if !watch::is_local_fs(dir).unwrap_or(false) {
                return Err(Unwatched::Blind);
            }
            if self.lock().dirs >= MAX_WATCHED_DIRS {
                return Err(Unwatched::Blind);
            }
            // A symlink as the last component is watched as itself, and the
            // link-free resolution that follows refuses the path anyway.
            match self.inotify.add(dir, mask::DONT_FOLLOW) {
                Ok(wd) => self.lock().record(wd, Watched::Dir),
                Err(e) => {
                    log::debug!("cannot watch {}: {e}", dir.display());
                    return Err(Unwatched::Blind);
                }
            }
        }
        let mut table = self.lock();
        if table.dirs_done.len() >= MAX_WATCHED_DIRS {
            table.dirs_done.clear();
        }
        table.dirs_done.insert(parent.to_path_buf(), generation);
        Ok(())
    }

    /// Watches the file at `relative` (resolved link-free) and stamps it,
    /// both through one descriptor, so they are of the same inode. The
    /// stamp is taken after the watch exists: a change after it raises an
    /// event, one before is in the stamp. `since` is the epoch the caller
    /// read before it began proving the slot.
    pub fn watch_file(
        &self,
        root: &File,
        relative: &Path,
        since: u64,
    ) -> Result<(FileWatch, FileStamp), Unwatched> {
        let file = match sys::open_path_beneath(root, relative) {
            Ok(file) => file,
            // No `O_PATH` here: no watch, but the path may be fine.
            Err(e) if e.kind() == io::ErrorKind::Unsupported => return Err(Unwatched::Blind),
            Err(e) => return Err(Unwatched::Gone(e)),
        };
        let path = PathBuf::from(format!("/proc/self/fd/{}", file.as_raw_fd()));
        if !watch::is_local_fs(&path).unwrap_or(false) {
            return Err(Unwatched::Blind);
        }
        // Follows the descriptor's magic link to the inode itself.
        let wd = match self.inotify.add(&path, 0) {
            Ok(wd) => wd,
            Err(e) => {
                log::debug!("cannot watch {}: {e}", relative.display());
                return Err(Unwatched::Blind);
            }
        };
        self.lock().record(wd, Watched::File { changed_at: 0 });
        let watch = FileWatch { wd, since };
        match file.metadata() {
            Ok(meta) => Ok((watch, FileStamp::of(&meta))),
            Err(e) => {
                self.unwatch_file(wd);
                Err(Unwatched::Gone(e))
            }
        }
    }

    /// Whether `watch`'s file had no event since the watch was added (nor
    /// were events lost since).
    pub fn file_unchanged(&self, watch: FileWatch) -> bool {
        let table = self.lock();
        table.floor <= watch.since
            && matches!(
                table.watches.get(&watch.wd),
                Some(Watched::File { changed_at }) if *changed_at <= watch.since
            )
    }

    /// The cache dropped the file: its watch would pin its inode.
    pub fn unwatch_file(&self, wd: i32) {
        // Forgotten from the table when its IN_IGNORED is read.
        self.inotify.remove(wd);
    }

    fn lock(&self) -> MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// What the events of one fence call for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Effect {
    /// A new epoch: proved slots must be proved again.
    bump: bool,
    /// A new watch generation: directories must be watched again.
    regen: bool,
}

impl Effect {
    fn and(self, other: Effect) -> Effect {
        Effect {
            bump: self.bump || other.bump,
            regen: self.regen || other.regen,
        }
    }
}

impl Table {
    /// Remembers a watch just added (the same descriptor again if its
    /// inode was watched already), with any event read for it meanwhile.
    fn record(&mut self, wd: i32, what: Watched) {
        let early = self.early.remove(&wd);
        match (self.watches.get_mut(&wd), what) {
            (Some(Watched::File { changed_at }), Watched::File { .. }) => {
                *changed_at = (*changed_at).max(early.unwrap_or(0));
            }
            (Some(_), _) => {}
            (None, Watched::Dir) => {
                self.dirs += 1;
                self.watches.insert(wd, Watched::Dir);
            }
            (None, Watched::File { .. }) => {
                let changed_at = early.unwrap_or(0);
                self.watches.insert(wd, Watched::File { changed_at });
            }
        }
    }

    /// One event, read in the fence that will make `next` the epoch.
    fn apply(&mut self, event: Event, next: u64) -> Effect {
        let changed = Effect {
            bump: true,
            regen: false,
        };
        let everything = Effect {
            bump: true,
            regen: true,
        };
        if event.mask & mask::Q_OVERFLOW != 0 {
            self.floor = next;
            return everything;
        }
        let gone = event.mask & mask::IGNORED != 0;
        match self.watches.get_mut(&event.wd) {
            Some(Watched::File { changed_at }) => {
                *changed_at = next;
                if gone {
                    // Usually our own removal (the data was dropped), but a
                    // proof racing with the drop may have recorded this
                    // watch for data cached again: the new epoch sends it
                    // back to `file_unchanged`, which fails for a watch no
                    // longer in the table.
                    self.watches.remove(&event.wd);
                }
                changed
            }
            Some(Watched::Dir) => {
                if gone {
                    self.watches.remove(&event.wd);
                    self.dirs -= 1;
                } else if event.mask & mask::MOVE_SELF != 0 {
                    self.moved.push(event.wd);
                }
                let itself = mask::DELETE_SELF | mask::MOVE_SELF | mask::UNMOUNT | mask::IGNORED;
                let entry = mask::CREATE | mask::DELETE | mask::MOVED_FROM | mask::MOVED_TO;
                if event.mask & itself != 0
                    || (event.mask & mask::ISDIR != 0 && event.mask & entry != 0)
                {
                    everything
                } else {
                    changed
                }
            }
            // A watch added but not recorded yet (`record` merges this), or
            // one already forgotten: a directory's, for all we know.
            None => {
                if self.early.len() >= MAX_WATCHED_DIRS {
                    self.early.clear();
                    self.floor = next;
                }
                self.early.insert(event.wd, next);
                everything
            }
        }
    }
}

#[cfg(all(test, any(target_os = "linux", target_os = "android")))]
mod tests {
    use super::*;
    use std::fs;

    fn scratch(test: &str) -> (PathBuf, File, Watcher) {
        let dir = std::env::temp_dir().join(format!("stoke-watcher-{}-{test}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("a/b")).unwrap();
        fs::write(dir.join("a/b/f.txt"), b"one").unwrap();
        let root = File::open(&dir).unwrap();
        let watcher = Watcher::new(&root).unwrap();
        (dir, root, watcher)
    }

    /// The file's own watch reports a rewrite even when its stamp could not
    /// tell (same size within one clock tick): proved data is then stale.
    #[test]
    fn a_write_after_the_watch_marks_the_file_changed_whatever_its_stamp() {
        let (dir, root, w) = scratch("write");
        let rel = Path::new("a/b/f.txt");
        w.watch_dirs(rel).unwrap();
        let since = w.epoch();
        let (watch, _) = w.watch_file(&root, rel, since).unwrap();
        w.fence();
        assert_eq!(w.epoch(), since, "our own opens and stats raise nothing");
        fs::read(dir.join(rel)).unwrap();
        w.fence();
        assert_eq!(w.epoch(), since, "nor do reads");
        assert!(w.file_unchanged(watch));
        fs::write(dir.join(rel), b"two").unwrap();
        w.fence();
        assert!(w.epoch() > since);
        assert!(!w.file_unchanged(watch), "the write is the data's");
        // A watch added after the write (for the new data) is clean.
        let (again, _) = w.watch_file(&root, rel, w.epoch()).unwrap();
        assert_eq!(again.wd, watch.wd, "one watch per inode");
        assert!(w.file_unchanged(again));
        // A removed watch, once read, proves nothing, and whatever was
        // proved with it must be proved again.
        let before = w.epoch();
        w.unwatch_file(again.wd);
        w.fence();
        assert!(w.epoch() > before);
        assert!(!w.file_unchanged(again), "a forgotten watch proves nothing");
        let _ = fs::remove_dir_all(&dir);
    }

    /// A directory created, moved or removed in a watched one may put
    /// another directory (or a symlink) on a cached path: the watches of
    /// every path must be added again. A plain file's entry need not.
    #[test]
    fn a_directory_entry_changing_asks_for_new_watches() {
        let (dir, _root, w) = scratch("regen");
        w.watch_dirs(Path::new("a/b/f.txt")).unwrap();
        let generation = w.watch_gen();
        fs::write(dir.join("a/new.txt"), b"x").unwrap();
        w.fence();
        assert_eq!(w.watch_gen(), generation, "a file created");
        assert!(w.epoch() > 0, "but an event all the same");
        fs::create_dir(dir.join("a/c")).unwrap();
        w.fence();
        assert!(w.watch_gen() > generation, "a directory created");
        let generation = w.watch_gen();
        let watched = w.lock().dirs;
        fs::rename(dir.join("a/b"), dir.join("a/b2")).unwrap();
        w.fence();
        assert!(w.watch_gen() > generation, "a watched directory moved");
        w.fence();
        assert_eq!(w.lock().dirs, watched - 1, "and its watch removed");
        let _ = fs::remove_dir_all(&dir);
    }

    /// With the signal, a fence reads the queue only after a change: the
    /// change made on another thread is seen once this thread has made
    /// any syscall that returns something sent after it (here a socket
    /// read, as the reactor's request read).
    #[test]
    fn with_the_signal_a_fence_reads_only_after_a_change() {
        use std::io::{Read, Write};
        use std::os::unix::net::UnixStream;
        let (dir, _root, w) = scratch("signal");
        w.watch_dirs(Path::new("a/b/f.txt")).unwrap();
        w.fence_on_signal().unwrap();
        w.fence();
        let (drains, epoch) = (w.drains(), w.epoch());
        for _ in 0..10 {
            w.fence();
        }
        assert_eq!(w.drains(), drains, "no change, no read");
        let (mut here, mut there) = UnixStream::pair().unwrap();
        let file = dir.join("a/b/f.txt");
        let changer = std::thread::spawn(move || {
            fs::write(file, b"two").unwrap();
            there.write_all(b"!").unwrap();
        });
        here.read_exact(&mut [0; 1]).unwrap();
        w.fence();
        assert_eq!(w.drains(), drains + 1);
        assert!(w.epoch() > epoch, "the change was read");
        changer.join().unwrap();
        let _ = fs::remove_dir_all(&dir);
    }

    /// Past the limit of watched directories a path is not watched (its
    /// hits stat), rather than a watch more.
    #[test]
    fn past_the_directory_limit_a_path_is_left_to_its_stat() {
        let (dir, _root, w) = scratch("limit");
        w.lock().dirs = MAX_WATCHED_DIRS;
        assert!(matches!(
            w.watch_dirs(Path::new("a/b/f.txt")),
            Err(Unwatched::Blind)
        ));
        let _ = fs::remove_dir_all(&dir);
    }
}
