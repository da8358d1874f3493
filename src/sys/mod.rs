//! The few system calls the standard library does not wrap: `sendfile(2)`
//! for file bodies, `openat2(2)` for opening a file without leaving the
//! served root, `fstatat(2)` for checking a cached file cheaply, and the
//! `setuid` family for dropping root.
//!
//! This is the only module with `unsafe`; each block says why it is sound.
//! Everything OS-specific sits behind these two functions, `cfg`-gated, with
//! a portable fallback, so the rest of stoke reads the same on Linux (epoll),
//! macOS and FreeBSD (kqueue).
//!
//! Runs on: `send_file` on the reactor thread, `open_beneath` on workers.

pub mod listen_fds;

use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::path::Path;

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

/// Opens `relative` (no leading `/`, no `..`: see `url_path`) under the
/// directory `root`, refusing any path that resolves outside it, symlinks
/// included, unless `follow_any_symlink` is set.
///
/// On Linux this is one `openat2(RESOLVE_BENEATH)`: the kernel checks every
/// component as it walks, so there is no window between a check and the
/// open. Where `openat2` is missing (old kernels, other systems) we open
/// first and then check the real path of what we opened.
pub fn open_beneath(
    root: &File,
    root_path: &Path,
    relative: &Path,
    follow_any_symlink: bool,
) -> io::Result<File> {
    if follow_any_symlink {
        return open_nonblocking(&root_path.join(relative));
    }
    #[cfg(target_os = "linux")]
    match openat2_beneath(root, relative) {
        Err(e)
            if e.raw_os_error() == Some(libc::ENOSYS) || e.raw_os_error() == Some(libc::EPERM) => {}
        // EXDEV: an absolute symlink, which RESOLVE_BENEATH always refuses even
        // when it points back inside the root; the checked fallback decides.
        Err(e) if e.raw_os_error() == Some(libc::EXDEV) => {}
        other => return other,
    }
    let _ = root;
    open_then_verify(root_path, relative)
}

#[cfg(target_os = "linux")]
fn openat2_beneath(root: &File, relative: &Path) -> io::Result<File> {
    use std::ffi::CString;
    use std::os::fd::FromRawFd;
    use std::os::unix::ffi::OsStrExt;

    /// `struct open_how` from <linux/openat2.h>; the libc crate does not
    /// carry it.
    #[repr(C)]
    struct OpenHow {
        flags: u64,
        mode: u64,
        resolve: u64,
    }
    const RESOLVE_NO_MAGICLINKS: u64 = 0x02;
    const RESOLVE_BENEATH: u64 = 0x08;

    let path = if relative.as_os_str().is_empty() {
        CString::new(".")
    } else {
        CString::new(relative.as_os_str().as_bytes())
    }
    .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let how = OpenHow {
        // O_NONBLOCK: opening a FIFO would otherwise wait for a writer and
        // hold a worker forever; it changes nothing for regular files.
        flags: (libc::O_RDONLY | libc::O_CLOEXEC | libc::O_NOCTTY | libc::O_NONBLOCK) as u64,
        mode: 0,
        resolve: RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS,
    };
    // SAFETY: `path` is a NUL-terminated string and `how` a correctly laid out
    // `open_how` that both outlive the call; the size passed is its size.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            root.as_raw_fd(),
            path.as_ptr(),
            &how as *const OpenHow,
            std::mem::size_of::<OpenHow>(),
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel just returned this descriptor to us and nothing else
    // owns it.
    Ok(unsafe { File::from_raw_fd(fd as RawFd) })
}

/// Read-only, without waiting on a FIFO (see `openat2_beneath`).
fn open_nonblocking(path: &Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
}

/// Opens, then checks that the canonical path of the opened name is still
/// under the (canonical) root. Portable, but a symlink swapped between the
/// two steps can race it; Linux uses `openat2` above instead.
fn open_then_verify(root_path: &Path, relative: &Path) -> io::Result<File> {
    let full = root_path.join(relative);
    let file = open_nonblocking(&full)?;
    let real = std::fs::canonicalize(&full)?;
    if real.starts_with(root_path) {
        Ok(file)
    } else {
        Err(io::Error::from_raw_os_error(libc::EXDEV))
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

/// The stamp of `relative` (a file, or a directory; empty means the root
/// itself) under the directory `root`. The walk starts at the root's
/// descriptor, not at `/`: fewer path components to look up on every cache
/// hit.
pub fn stat_beneath(root: &File, relative: &Path) -> io::Result<FileStamp> {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    let relative = relative.as_os_str().as_bytes();
    let path = CString::new(if relative.is_empty() { b"." } else { relative })
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: `stat` is plain data for which all-zero bytes are valid.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: `root` is an open descriptor, `path` is NUL-terminated and `st`
    // a valid, exclusive out-pointer, all for the duration of the call.
    let rc = unsafe { libc::fstatat(root.as_raw_fd(), path.as_ptr(), &mut st, 0) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    #[allow(clippy::unnecessary_cast)] // the field types differ between systems
    Ok(FileStamp {
        dev: st.st_dev as u64,
        ino: st.st_ino as u64,
        len: st.st_size as u64,
        mtime: (st.st_mtime as i64, st.st_mtime_nsec as i64),
        ctime: (st.st_ctime as i64, st.st_ctime_nsec as i64),
    })
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
