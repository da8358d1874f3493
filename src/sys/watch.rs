//! inotify, the kernel's change notifications (Linux): the system calls
//! behind `site::watcher`, which lets a cache hit skip its freshness stat
//! while the kernel has reported no change. Also `statfs`, to tell a local
//! file system (whose every change inotify sees) from a remote one (where
//! another host's changes raise no event).
//!
//! Owns one inotify descriptor; only change events are asked for, never
//! IN_ACCESS, IN_OPEN or IN_CLOSE_NOWRITE, so stoke's own reads queue
//! nothing. Elsewhere than Linux there is no inotify: [`Inotify::new`] fails
//! and every hit stats, as before.
//!
//! Runs on: any thread (`add`/`remove` on workers, `read` on whichever
//! thread fences, see `site::watcher`); the descriptor is shared. With
//! [`Inotify::signal_calling_thread`], the kernel also signals one thread
//! (`SIGIO`) for every event it queues.

use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// One raw event: the watch it came from and what happened. (The name of
/// the entry, for events of a directory, is not needed and not kept.)
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Event {
    pub wd: i32,
    pub mask: u32,
}

/// The event kinds, as the kernel numbers them (`<sys/inotify.h>`).
pub mod mask {
    pub const MODIFY: u32 = 0x0000_0002;
    pub const ATTRIB: u32 = 0x0000_0004;
    pub const CLOSE_WRITE: u32 = 0x0000_0008;
    pub const MOVED_FROM: u32 = 0x0000_0040;
    pub const MOVED_TO: u32 = 0x0000_0080;
    pub const CREATE: u32 = 0x0000_0100;
    pub const DELETE: u32 = 0x0000_0200;
    pub const DELETE_SELF: u32 = 0x0000_0400;
    pub const MOVE_SELF: u32 = 0x0000_0800;
    /// Always reported: the file system was unmounted.
    pub const UNMOUNT: u32 = 0x0000_2000;
    /// Always reported: events were lost (the queue was full).
    pub const Q_OVERFLOW: u32 = 0x0000_4000;
    /// Always reported: the watch is gone (removed, or its inode deleted
    /// or unmounted).
    pub const IGNORED: u32 = 0x0000_8000;
    /// Set on an event whose subject is a directory.
    pub const ISDIR: u32 = 0x4000_0000;
    /// `inotify_add_watch` flag: do not follow a final symlink.
    pub const DONT_FOLLOW: u32 = 0x0200_0000;
    /// What a change to a watched inode or to a watched directory's entries
    /// raises; nothing that a read raises.
    pub const CHANGES: u32 = MODIFY
        | ATTRIB
        | CLOSE_WRITE
        | MOVED_FROM
        | MOVED_TO
        | CREATE
        | DELETE
        | DELETE_SELF
        | MOVE_SELF;
}

/// An inotify instance (non-blocking, close-on-exec).
#[derive(Debug)]
pub struct Inotify {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    fd: std::os::fd::OwnedFd,
}

#[cfg(any(target_os = "linux", target_os = "android"))]
impl Inotify {
    pub fn new() -> io::Result<Inotify> {
        use std::os::fd::{FromRawFd, OwnedFd};
        // SAFETY: plain syscall with constant flags.
        let fd = unsafe { libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` was just returned by the kernel and is owned by no one else.
        Ok(Inotify {
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
        })
    }

    /// Watches what `path` names now for [`mask::CHANGES`] (with `flags`,
    /// e.g. [`mask::DONT_FOLLOW`]). Idempotent per inode: watching an inode
    /// already watched returns its watch descriptor again.
    pub fn add(&self, path: &Path, flags: u32) -> io::Result<i32> {
        use std::os::fd::AsRawFd;
        let path = super::open::c_path(path.as_os_str())?;
        // SAFETY: the descriptor is open (we own it) and `path` is
        // NUL-terminated, both for the duration of the call.
        let wd = unsafe {
            libc::inotify_add_watch(self.fd.as_raw_fd(), path.as_ptr(), mask::CHANGES | flags)
        };
        if wd < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(wd)
    }

    /// Stops watch `wd` (the kernel then queues IN_IGNORED for it). A watch
    /// already gone (its inode deleted) is not an error worth reporting.
    pub fn remove(&self, wd: i32) {
        use std::os::fd::AsRawFd;
        // SAFETY: plain syscall on our own descriptor and an integer.
        unsafe { libc::inotify_rm_watch(self.fd.as_raw_fd(), wd) };
    }

    /// Has the kernel send `SIGIO` to the calling thread whenever it
    /// queues an event (`O_ASYNC`, with `F_SETOWN_EX` naming this thread),
    /// and unblocks `SIGIO` on this thread. The kernel makes the signal
    /// pending inside the syscall that caused the event, and a thread runs
    /// the handlers of its pending signals on its way out of every syscall
    /// (`site::watcher` builds its fence on these two facts). The returned
    /// [`EventSignal`] says whether a signal came since it was last asked;
    /// dropping it removes its handler.
    pub fn signal_calling_thread(&self) -> io::Result<EventSignal> {
        use std::os::fd::AsRawFd;
        // <fcntl.h>; the libc crate has no `F_SETOWN_EX` for every target.
        const F_SETOWN_EX: libc::c_int = 15;
        const F_OWNER_TID: libc::c_int = 0;
        #[repr(C)]
        struct OwnerEx {
            kind: libc::c_int,
            pid: libc::pid_t,
        }
        // The handler first: `SIGIO`'s default action ends the process. It
        // only sets the flag (async-signal-safe); with several servers in
        // one process, each one's flag is set by any of their signals, which
        // costs a drain, never a missed event. It starts set: what was
        // queued before is drained by the first fence.
        let flag = Arc::new(AtomicBool::new(true));
        let id = signal_hook::flag::register(libc::SIGIO, Arc::clone(&flag))?;
        let signal = EventSignal { flag, id };
        let fd = self.fd.as_raw_fd();
        let check = |ret: libc::c_int| {
            if ret < 0 {
                Err(io::Error::last_os_error())
            } else {
                Ok(ret)
            }
        };
        // SAFETY: no arguments, no preconditions.
        let tid = unsafe { libc::gettid() };
        let owner = OwnerEx {
            kind: F_OWNER_TID,
            pid: tid,
        };
        // SAFETY: our own open descriptor, and a pointer to a live value of
        // the layout `F_SETOWN_EX` reads (`struct f_owner_ex`).
        check(unsafe { libc::fcntl(fd, F_SETOWN_EX, &owner as *const OwnerEx) })?;
        // SAFETY: status flags of our own open descriptor.
        let flags = check(unsafe { libc::fcntl(fd, libc::F_GETFL) })?;
        // SAFETY: as above.
        check(unsafe { libc::fcntl(fd, libc::F_SETFL, flags | libc::O_ASYNC) })?;
        // SAFETY: `set` is initialised by `sigemptyset` before use, and the
        // old mask is not asked for (null).
        let ret = unsafe {
            let mut set = std::mem::zeroed::<libc::sigset_t>();
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, libc::SIGIO);
            libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut())
        };
        if ret != 0 {
            return Err(io::Error::from_raw_os_error(ret));
        }
        Ok(signal)
    }

    /// Reads the queued events into `buf` and hands each to `each`.
    /// `Ok(false)` once the queue is empty (`EAGAIN`), `Ok(true)` if more
    /// may be queued.
    pub fn read(&self, buf: &mut [u8], mut each: impl FnMut(Event)) -> io::Result<bool> {
        use std::os::fd::AsRawFd;
        // The kernel's event header: wd, mask, cookie, len (then `len` bytes
        // of name).
        const HEADER: usize = 16;
        // The raw syscall, not libc's `read`: this runs once per reactor
        // turn and usually only says `EAGAIN`, and `read`'s thread
        // cancellation bookkeeping (which stoke never uses) was a third of
        // its cost.
        // SAFETY: the descriptor is ours and open, and `buf` is valid for
        // writes of `buf.len()` bytes, for the duration of the call.
        let n = unsafe {
            libc::syscall(
                libc::SYS_read,
                self.fd.as_raw_fd(),
                buf.as_mut_ptr(),
                buf.len(),
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            return match e.raw_os_error() {
                Some(libc::EAGAIN) => Ok(false),
                Some(libc::EINTR) => Ok(true),
                _ => Err(e),
            };
        }
        if n == 0 {
            // Not something inotify does; do not spin on it.
            return Ok(false);
        }
        let bytes = &buf[..n as usize];
        let mut at = 0;
        while at + HEADER <= bytes.len() {
            let word = |i: usize| {
                let b = &bytes[at + 4 * i..at + 4 * i + 4];
                u32::from_ne_bytes([b[0], b[1], b[2], b[3]])
            };
            each(Event {
                wd: word(0) as i32,
                mask: word(1),
            });
            at += HEADER + word(3) as usize;
        }
        Ok(true)
    }
}

/// Whether the kernel signalled an event (see
/// [`Inotify::signal_calling_thread`]); the handler goes with it.
#[derive(Debug)]
pub struct EventSignal {
    flag: Arc<AtomicBool>,
    id: signal_hook::SigId,
}

impl EventSignal {
    /// Whether a signal came since the last call, clearing the flag: an
    /// event queued from now on signals (and sets it) again.
    pub fn take(&self) -> bool {
        self.flag.swap(false, Ordering::Acquire)
    }
}

impl Drop for EventSignal {
    fn drop(&mut self) {
        // A signal still on its way finds the handler without this flag:
        // signal-hook then does nothing (it never runs the default action).
        signal_hook::low_level::unregister(self.id);
    }
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
impl Inotify {
    pub fn new() -> io::Result<Inotify> {
        Err(io::Error::from(io::ErrorKind::Unsupported))
    }
    pub fn add(&self, _path: &Path, _flags: u32) -> io::Result<i32> {
        Err(io::Error::from(io::ErrorKind::Unsupported))
    }
    pub fn remove(&self, _wd: i32) {}
    pub fn signal_calling_thread(&self) -> io::Result<EventSignal> {
        Err(io::Error::from(io::ErrorKind::Unsupported))
    }
    pub fn read(&self, _buf: &mut [u8], _each: impl FnMut(Event)) -> io::Result<bool> {
        Ok(false)
    }
}

/// Whether `path` is on a file system whose every change inotify reports:
/// a local one, by an allowlist of `statfs` types. Network and FUSE file
/// systems (NFS, SMB/CIFS, 9p, Ceph, AFS, FUSE...) change under us without
/// events when another host (or the FUSE daemon) changes them; overlayfs
/// too when its layers are changed directly. Anything not known to be local
/// counts as remote: an unknown type costs a stat per hit, never staleness.
#[cfg(any(target_os = "linux", target_os = "android"))]
pub fn is_local_fs(path: &Path) -> io::Result<bool> {
    const EXT234: i64 = 0xEF53;
    const XFS: i64 = 0x5846_5342;
    const BTRFS: i64 = 0x9123_683E;
    const TMPFS: i64 = 0x0102_1994;
    const F2FS: i64 = 0xF2F5_2010;
    const ZFS: i64 = 0x2FC1_2FC1;
    let path = super::open::c_path(path.as_os_str())?;
    // SAFETY: `statfs` is plain data for which all-zero bytes are valid.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: `path` is NUL-terminated and `st` a valid, exclusive
    // out-pointer, both for the duration of the call.
    if unsafe { libc::statfs(path.as_ptr(), &mut st) } != 0 {
        return Err(io::Error::last_os_error());
    }
    #[allow(clippy::unnecessary_cast)] // f_type's width differs between ABIs
    let kind = st.f_type as i64 & 0xFFFF_FFFF;
    Ok(matches!(kind, EXT234 | XFS | BTRFS | TMPFS | F2FS | ZFS))
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub fn is_local_fs(_path: &Path) -> io::Result<bool> {
    Ok(false)
}

#[cfg(all(test, any(target_os = "linux", target_os = "android")))]
mod tests {
    use super::*;
    use std::fs;

    /// A write to a watched file is reported; reading it is not.
    #[test]
    fn writes_are_reported_and_reads_are_not() {
        let dir = std::env::temp_dir().join(format!("stoke-inotify-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let file = dir.join("f");
        fs::write(&file, b"one").unwrap();
        let inotify = Inotify::new().unwrap();
        let wd = inotify.add(&file, mask::DONT_FOLLOW).unwrap();
        assert_eq!(
            inotify.add(&file, mask::DONT_FOLLOW).unwrap(),
            wd,
            "one watch per inode"
        );
        let mut buf = [0u8; 4096];
        let mut seen = Vec::new();
        fs::read(&file).unwrap();
        while inotify.read(&mut buf, |e| seen.push(e)).unwrap() {}
        assert!(seen.is_empty(), "{seen:?}");
        fs::write(&file, b"two").unwrap();
        while inotify.read(&mut buf, |e| seen.push(e)).unwrap() {}
        assert!(seen
            .iter()
            .any(|e| e.wd == wd && e.mask & mask::MODIFY != 0));
        inotify.remove(wd);
        seen.clear();
        while inotify.read(&mut buf, |e| seen.push(e)).unwrap() {}
        assert!(seen
            .iter()
            .any(|e| e.wd == wd && e.mask & mask::IGNORED != 0));
        // /proc is no place whose changes inotify reports.
        assert!(!is_local_fs(Path::new("/proc")).unwrap());
        let _ = fs::remove_dir_all(&dir);
    }
}
