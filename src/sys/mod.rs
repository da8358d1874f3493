//! The few system calls the standard library does not wrap: `sendfile(2)`
//! for file bodies, the `setuid` family for dropping root, `getrlimit(2)`
//! for the descriptor limit, and (in `open.rs`) opening and stat-ing a path
//! without leaving the served root, and (in `page_cache.rs`) probing and
//! warming the page cache so that `sendfile` does not wait for the disk;
//! a cheap read of the wall clock in seconds (`unix_seconds_now`);
//! (in `socket.rs`) `recv` and `writev` on a connection's socket without
//! glibc's cancellation bookkeeping;
//! (in `watch.rs`) inotify, so that cache hits need no stat while the
//! kernel reports no change;
//! and (in `alloc_count.rs`) a counting allocator for the allocation tests.
//!
//! This is the only module with `unsafe`; each block says why it is sound.
//! Everything OS-specific sits behind these functions, `cfg`-gated, with a
//! portable fallback, so the rest of stoke reads the same on Linux (epoll),
//! macOS and FreeBSD (kqueue).
//!
//! Runs on: `send_file`, `recv` and `writev` on the reactor thread,
//! `open_beneath` and `stat_beneath` on workers, `drop_privileges` on the
//! main thread;
//! `wait_readable` (in `poll.rs`) on the blocking models' accepting threads.

pub mod listen_fds;

use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, RawFd};

mod open;
pub use open::{
    entry_absent, open_beneath, open_path_beneath, stat_beneath, stat_following_links, Opened,
    Symlinks,
};

pub mod watch;

mod poll;
pub use poll::wait_readable;

mod socket;
pub use socket::{recv, writev};

pub mod page_cache;

pub mod alloc_count;

/// Makes the calling thread `steps` nice values kinder to the others. On
/// Linux the nice value belongs to each thread (`nice(2)` changes the
/// caller's only); elsewhere it belongs to the process, so nothing is done
/// there. For the cold-file warm-up threads (`models::reactor::warm`).
#[cfg(any(target_os = "linux", target_os = "android"))]
pub fn lower_thread_priority(steps: i32) {
    // SAFETY: plain nice(2) on the calling thread; raising the value needs
    // no privilege, and a failure only leaves the priority as it was.
    unsafe { libc::nice(steps) };
}

/// [`lower_thread_priority`] elsewhere: the whole process would change.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub fn lower_thread_priority(_steps: i32) {}

/// The wall clock in whole UNIX seconds, read as cheaply as the OS allows.
/// On Linux, `CLOCK_REALTIME_COARSE`: the time of the last timer tick (a
/// few milliseconds behind at most), read from the vDSO without
/// `SystemTime`'s arithmetic. For a response's `Date` and the
/// second-granular checks of a cached file's prepared answer
/// (`site::prepared`), where lagging by a tick is harmless.
#[cfg(any(target_os = "linux", target_os = "android"))]
pub fn unix_seconds_now() -> i64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, exclusive out-pointer for the duration of
    // the call; the clock id is a constant the kernel knows.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_REALTIME_COARSE, &mut ts) };
    if rc == 0 {
        #[allow(clippy::useless_conversion)] // `time_t` is 32 bits on some systems
        return i64::from(ts.tv_sec);
    }
    portable_unix_seconds_now()
}

/// [`unix_seconds_now`] elsewhere.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub fn unix_seconds_now() -> i64 {
    portable_unix_seconds_now()
}

fn portable_unix_seconds_now() -> i64 {
    use std::time::{SystemTime, UNIX_EPOCH};
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        // Before 1970: whole seconds, rounded down.
        Err(e) => {
            let d = e.duration();
            let secs = i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
            if d.subsec_nanos() > 0 {
                -secs - 1
            } else {
                -secs
            }
        }
    }
}

/// Copies up to `len` bytes of `file`, starting at `offset`, to the socket
/// `socket` inside the kernel. Returns the number of bytes sent; a short count
/// means the socket buffer is full (the next call gets `WouldBlock`), and `0`
/// for a non-zero `len` means the file is shorter than we were told (it was
/// truncated while being served).
#[cfg(any(target_os = "linux", target_os = "android"))]
pub fn send_file(socket: RawFd, file: &File, offset: u64, len: usize) -> io::Result<usize> {
    let mut off = offset as libc::off_t;
    // SAFETY: both descriptors are open for the duration of the call (we hold
    // borrows of their owners), and `off` is a valid, exclusive pointer.
    let n = unsafe { libc::sendfile(socket, file.as_raw_fd(), &mut off, len) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

#[cfg(target_os = "macos")]
pub fn send_file(socket: RawFd, file: &File, offset: u64, len: usize) -> io::Result<usize> {
    // macOS reports the bytes sent through `sent` even when it fails with
    // EAGAIN, so a partial send is not an error for us.
    let mut sent = len as libc::off_t;
    // SAFETY: both descriptors are open during the call; `sent` is a valid
    // pointer and `hdtr` may be null.
    let rc = unsafe {
        libc::sendfile(
            file.as_raw_fd(),
            socket,
            offset as libc::off_t,
            &mut sent,
            std::ptr::null_mut(),
            0,
        )
    };
    partial_send_result(rc, sent)
}

#[cfg(target_os = "freebsd")]
pub fn send_file(socket: RawFd, file: &File, offset: u64, len: usize) -> io::Result<usize> {
    let mut sent: libc::off_t = 0;
    // SAFETY: both descriptors are open during the call; `sent` is a valid
    // pointer and `hdtr` may be null.
    let rc = unsafe {
        libc::sendfile(
            file.as_raw_fd(),
            socket,
            offset as libc::off_t,
            len,
            std::ptr::null_mut(),
            &mut sent,
            0,
        )
    };
    partial_send_result(rc, sent)
}

#[cfg(any(target_os = "macos", target_os = "freebsd"))]
fn partial_send_result(rc: libc::c_int, sent: libc::off_t) -> io::Result<usize> {
    if rc == 0 || sent > 0 {
        Ok(sent as usize)
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Portable fallback where there is no `sendfile`: read a block with `pread`
/// and write it. Bytes that the socket refuses are read again next time.
#[cfg(not(any(
    target_os = "linux",
    target_os = "android",
    target_os = "macos",
    target_os = "freebsd"
)))]
pub fn send_file(socket: RawFd, file: &File, offset: u64, len: usize) -> io::Result<usize> {
    use std::os::unix::fs::FileExt;
    let mut block = [0u8; 16 * 1024];
    let want = len.min(block.len());
    let n = file.read_at(&mut block[..want], offset)?;
    if n == 0 {
        return Ok(0);
    }
    // SAFETY: `socket` is an open descriptor owned by the caller for the call.
    let w = unsafe { libc::write(socket, block.as_ptr().cast(), n) };
    if w < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(w as usize)
    }
}

/// What identifies one version of a file's contents: any write changes the
/// ctime, a replacement changes the inode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileStamp {
    pub dev: u64,
    pub ino: u64,
    pub len: u64,
    pub mtime: (i64, i64),
    pub ctime: (i64, i64),
}

impl FileStamp {
    pub fn of(meta: &std::fs::Metadata) -> FileStamp {
        use std::os::unix::fs::MetadataExt;
        FileStamp {
            dev: meta.dev(),
            ino: meta.ino(),
            len: meta.len(),
            mtime: (meta.mtime(), meta.mtime_nsec()),
            ctime: (meta.ctime(), meta.ctime_nsec()),
        }
    }
}

/// Becomes `user` (and its primary and supplementary groups) for good: what
/// nginx's `user` and darkhttpd's `--uid` do, so a server started as root to
/// bind its ports does not serve files as root. Called after binding and
/// before any worker thread exists. Fails if any step fails, or if root
/// could be regained afterwards.
pub fn drop_privileges(user: &str) -> io::Result<()> {
    use std::ffi::CString;
    let name = CString::new(user).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: `passwd` is plain data for which all-zero bytes are valid.
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut buf = vec![0 as libc::c_char; 16 * 1024];
    let mut found: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: every pointer is valid for the call, `buf.len()` is its real
    // size, and `pwd`'s strings point into `buf`, which outlives their use.
    let rc = unsafe {
        libc::getpwnam_r(
            name.as_ptr(),
            &mut pwd,
            buf.as_mut_ptr(),
            buf.len(),
            &mut found,
        )
    };
    if rc != 0 {
        return Err(io::Error::from_raw_os_error(rc));
    }
    if found.is_null() {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("no user named {user:?}"),
        ));
    }
    let (uid, gid) = (pwd.pw_uid, pwd.pw_gid);
    // Groups first: after setuid we would no longer be allowed to change them.
    // SAFETY: `name` is NUL-terminated; the ids come from the password database.
    check(unsafe { libc::initgroups(name.as_ptr(), gid as _) })?;
    // SAFETY: plain syscalls on integer ids.
    check(unsafe { libc::setgid(gid) })?;
    // SAFETY: as above.
    check(unsafe { libc::setuid(uid) })?;
    // SAFETY: as above; this is expected to fail.
    if uid != 0 && unsafe { libc::setuid(0) } == 0 {
        return Err(io::Error::other("could regain root after dropping it"));
    }
    Ok(())
}

fn check(rc: libc::c_int) -> io::Result<()> {
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

pub mod dir;

/// The soft limit on open descriptors (`RLIMIT_NOFILE`), or `None` when it
/// is unlimited or unknown.
pub fn descriptor_limit() -> Option<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid, exclusive out-pointer for the call.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return None;
    }
    #[allow(clippy::unnecessary_cast)] // rlim_t differs between systems
    (lim.rlim_cur != libc::RLIM_INFINITY).then_some(lim.rlim_cur as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The cheap clock is the wall clock, at most a tick behind.
    #[test]
    fn unix_seconds_now_is_the_wall_clock() {
        let before = portable_unix_seconds_now();
        let cheap = unix_seconds_now();
        let after = portable_unix_seconds_now();
        assert!(
            before - 1 <= cheap && cheap <= after,
            "{before} {cheap} {after}"
        );
    }
}
