//! Opening and stat-ing a path beneath the served root: the one seam through
//! which a worker reaches a file by name.
//!
//! The rule: unless the operator passed `--follow-symlinks`, nothing outside
//! ROOT is ever opened, not even for a moment, and every decision is made on
//! what was actually reached, never on a second look-up of the same name
//! (which a concurrent symlink swap could answer differently).
//!
//! - Linux, the common case: one `openat2(RESOLVE_BENEATH |
//!   RESOLVE_NO_SYMLINKS)` relative to the root's descriptor. A path with no
//!   symlink on it costs exactly that one syscall.
//! - A path with a symlink on it (`openat2` says `ELOOP`), and every path
//!   where `openat2` is missing (kernels before 5.6, seccomp sandboxes, macOS,
//!   FreeBSD): [`Walk`] resolves it one component at a time, each opened with
//!   `O_NOFOLLOW` relative to the directory descriptor before it, so the
//!   kernel never follows a link for us. A link's target is read with
//!   `readlinkat` and walked the same way: relative targets from where the
//!   link is, absolute ones only when they name a place under ROOT's
//!   canonical path (walked from ROOT's descriptor, not from `/`), and `..`
//!   by dropping our own last component, never above ROOT. Absolute links
//!   that point back inside ROOT are therefore served, race-free.
//! - With `--follow-symlinks`, a path the walk refuses as leaving ROOT is
//!   opened by the kernel, following links, and the real path of the
//!   *descriptor* is reported so the caller's dotfile policy judges what was
//!   opened.
//!
//! Whenever a symlink was followed, the caller gets the real path of what was
//! opened ([`Opened::via_link`]) to apply the dotfile policy to.
//!
//! Runs on: worker threads.

use std::ffi::{CStr, CString, OsStr, OsString};
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use super::FileStamp;
use crate::limits::{MAX_LOOKUPS, MAX_SYMLINKS};

/// Flags for the file finally opened. `O_NONBLOCK`: opening a FIFO would
/// otherwise wait for a writer and hold a worker forever; it changes nothing
/// for regular files.
const OPEN_FLAGS: libc::c_int =
    libc::O_RDONLY | libc::O_CLOEXEC | libc::O_NOCTTY | libc::O_NONBLOCK;

/// Flags for a directory the walk passes through. Linux's `O_PATH` needs
/// only search permission on it, like the kernel's own path walk.
#[cfg(any(target_os = "linux", target_os = "android"))]
const DIR_FLAGS: libc::c_int =
    libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC | libc::O_NOFOLLOW;
#[cfg(not(any(target_os = "linux", target_os = "android")))]
const DIR_FLAGS: libc::c_int =
    libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC | libc::O_NOFOLLOW;

/// Which symlinks a resolution may follow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Symlinks {
    /// Only links that stay under ROOT: relative ones that do not climb above
    /// it, and absolute ones that name a place under its canonical path.
    /// Anything else is refused (`EXDEV`) without being opened.
    StayInside,
    /// Any link (`--follow-symlinks`).
    Anywhere,
}

/// A file opened beneath the root.
#[derive(Debug)]
pub struct Opened {
    pub file: File,
    /// Where the file really is, when a symlink was followed to reach it:
    /// relative to ROOT, or absolute when it is outside (only with
    /// [`Symlinks::Anywhere`]). `None`: no link was crossed, so the file is
    /// exactly the requested path.
    pub via_link: Option<PathBuf>,
}

/// Opens `relative` (no leading `/`; see `url_path`) under the directory
/// `root`, whose canonical path is `root_path`, following symlinks only as
/// `symlinks` allows.
pub fn open_beneath(
    root: &File,
    root_path: &Path,
    relative: &Path,
    symlinks: Symlinks,
) -> io::Result<Opened> {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    match openat2(root, relative, OPEN_FLAGS, RESOLVE_NO_LINKS) {
        Ok(file) => {
            return Ok(Opened {
                file,
                via_link: None,
            })
        }
        // A symlink on the path: the walk follows it, checking each step.
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) || openat2_unavailable(&e) => {}
        Err(e) => return Err(e),
    }
    match walk_open(root, root_path, relative) {
        Err(e) if e.raw_os_error() == Some(libc::EXDEV) && symlinks == Symlinks::Anywhere => {
            open_following(root, root_path, relative)
        }
        other => other,
    }
}

/// The stamp of `relative` (a file, or a directory; empty means the root
/// itself) under `root`, resolved with no symlink at all: a link anywhere on
/// the path, the last component included, is `ELOOP`.
///
/// This is the cache's check on every hit, so it must never reach a file
/// that [`open_beneath`] plus the dotfile policy would refuse. Refusing every
/// link guarantees that: what it reaches is exactly the path asked for, which
/// `url_path` has already vetted. A single name costs one `fstatat` that
/// does not follow it; a longer path, on Linux, `openat2(O_PATH)`, `fstat`
/// and `close`.
pub fn stat_beneath(root: &File, relative: &Path) -> io::Result<FileStamp> {
    // One plain name (the common case: a file at the top of the root): the
    // walk's single step, without building the walk.
    let name = relative.as_os_str().as_bytes();
    if !name.is_empty() && !name.contains(&b'/') && name != b"." && name != b".." {
        return link_refused(fstatat(root, relative.as_os_str())?);
    }
    #[cfg(any(target_os = "linux", target_os = "android"))]
    if relative.components().nth(1).is_some() {
        let flags = libc::O_PATH | libc::O_CLOEXEC;
        match openat2(root, relative, flags, RESOLVE_NO_LINKS) {
            Ok(file) => return Ok(FileStamp::of(&file.metadata()?)),
            Err(e) if !openat2_unavailable(&e) => return Err(e),
            Err(_) => {}
        }
    }
    walk_stat(root, relative)
}

/// An `O_PATH` descriptor for `relative` under `root`, resolved with no
/// symlink at all, like [`stat_beneath`] (a link anywhere is `ELOOP`): what
/// `site::watcher` watches and stamps, so the watch and the stamp are of
/// the very same inode. One `openat2`, or the walk where it is missing.
/// Linux only (`O_PATH`); elsewhere `Unsupported`, and the caller stats as
/// before.
pub fn open_path_beneath(root: &File, relative: &Path) -> io::Result<File> {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        if cfg!(feature = "test-hooks")
            && relative
                .file_name()
                .is_some_and(|n| n == "__stoke_test_no_o_path")
        {
            return Err(io::Error::from(io::ErrorKind::Unsupported));
        }
        let flags = libc::O_PATH | libc::O_CLOEXEC;
        match openat2(root, relative, flags, RESOLVE_NO_LINKS) {
            Err(e) if openat2_unavailable(&e) => walk_open_path(root, relative),
            other => other,
        }
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    {
        let _ = (root, relative);
        Err(io::Error::from(io::ErrorKind::Unsupported))
    }
}

/// [`open_path_beneath`] without `openat2`: directories entered with
/// `O_NOFOLLOW` one by one, the last component opened as itself.
#[cfg(any(target_os = "linux", target_os = "android"))]
fn walk_open_path(root: &File, relative: &Path) -> io::Result<File> {
    let flags = libc::O_PATH | libc::O_CLOEXEC;
    let mut walk = Walk::new(root, Path::new(""), relative, OnLink::Refuse);
    loop {
        let Some(name) = walk.next_name()? else {
            return openat(walk.dir(), OsStr::new("."), flags);
        };
        if walk.at_last() {
            // O_NOFOLLOW with O_PATH opens a final link itself: refused.
            let file = openat(walk.dir(), &name, flags | libc::O_NOFOLLOW)?;
            if file.metadata()?.file_type().is_symlink() {
                return Err(io::Error::from_raw_os_error(libc::ELOOP));
            }
            return Ok(file);
        }
        walk.enter(name)?;
    }
}

/// The stamp of whatever `relative` leads to now, symlinks followed: one
/// `fstatat`. Only for a fact about an inode's state (a directory unchanged
/// since "no sidecar" was noted in it holds the same entries however it is
/// reached), never to decide whether something may be served; that is
/// [`stat_beneath`]'s job.
pub fn stat_following_links(root: &File, relative: &Path) -> io::Result<FileStamp> {
    with_c_path(dot_if_empty(relative.as_os_str()), |path| {
        // SAFETY: `stat` is plain data for which all-zero bytes are valid.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: `root` is an open descriptor, `path` is NUL-terminated and
        // `st` a valid, exclusive out-pointer, all for the duration of the call.
        let rc = unsafe { libc::fstatat(root.as_raw_fd(), path.as_ptr(), &mut st, 0) };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(stamp_of(&st))
    })
}

/// [`stat_beneath`] without `openat2`.
fn walk_stat(root: &File, relative: &Path) -> io::Result<FileStamp> {
    link_refused(walk_lstat(root, relative)?)
}

/// The stamp of what an `lstat` found, unless it is a symlink (`ELOOP`).
fn link_refused(st: libc::stat) -> io::Result<FileStamp> {
    if st.st_mode & libc::S_IFMT == libc::S_IFLNK {
        return Err(io::Error::from_raw_os_error(libc::ELOOP));
    }
    Ok(stamp_of(&st))
}

/// Whether `relative` certainly does not exist: its directory is reached
/// with no symlink, and holds no entry of that name, not even a dangling
/// link. Any doubt (an error, a link on the way) answers `false`.
///
/// For remembering "no sidecar" with the directory's stamp: only an absent
/// name is tied to that stamp; a link's target can appear elsewhere.
pub fn entry_absent(root: &File, relative: &Path) -> bool {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        // O_PATH | O_NOFOLLOW opens a final symlink itself instead of failing.
        let flags = libc::O_PATH | libc::O_NOFOLLOW | libc::O_CLOEXEC;
        match openat2(root, relative, flags, RESOLVE_NO_LINKS) {
            Ok(_) => return false,
            Err(e) if !openat2_unavailable(&e) => return e.raw_os_error() == Some(libc::ENOENT),
            Err(_) => {}
        }
    }
    walk_entry_absent(root, relative)
}

/// [`entry_absent`] without `openat2`.
fn walk_entry_absent(root: &File, relative: &Path) -> bool {
    match walk_lstat(root, relative) {
        Ok(_) => false,
        Err(e) => e.raw_os_error() == Some(libc::ENOENT),
    }
}

/// `--follow-symlinks` only: lets the kernel follow every link, then asks
/// the descriptor where it really is.
fn open_following(root: &File, root_path: &Path, relative: &Path) -> io::Result<Opened> {
    let file = openat(root, dot_if_empty(relative.as_os_str()), OPEN_FLAGS)?;
    let real = descriptor_path(&file)?;
    let via_link = match real.strip_prefix(root_path) {
        Ok(inside) => inside.to_path_buf(),
        Err(_) => real,
    };
    Ok(Opened {
        file,
        via_link: Some(via_link),
    })
}

/// What the walk does on meeting a symlink.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum OnLink {
    /// `ELOOP`, as `RESOLVE_NO_SYMLINKS` would.
    Refuse,
    /// Follow it if it stays under the root, else `EXDEV`.
    FollowInside,
}

/// A path resolution done by hand, one component per syscall (see the
/// module comment).
struct Walk<'a> {
    root: &'a File,
    /// The root's canonical path, to recognise absolute links into it.
    root_path: &'a Path,
    on_link: OnLink,
    /// The directory reached so far; `None` is the root.
    dir: Option<File>,
    /// The real path of `dir` relative to the root, one name per component.
    names: Vec<OsString>,
    /// Components still to resolve, the next one last.
    pending: Vec<OsString>,
    links: usize,
    lookups: usize,
}

impl<'a> Walk<'a> {
    fn new(root: &'a File, root_path: &'a Path, relative: &Path, on_link: OnLink) -> Walk<'a> {
        let mut walk = Walk {
            root,
            root_path,
            on_link,
            dir: None,
            names: Vec::new(),
            pending: Vec::new(),
            links: 0,
            lookups: 0,
        };
        walk.push_front(relative.as_os_str());
        walk
    }

    /// Queues `path`'s components ahead of those still pending.
    fn push_front(&mut self, path: &OsStr) {
        let components = path.as_bytes().split(|&b| b == b'/');
        for name in components.rev().filter(|name| !name.is_empty()) {
            self.pending.push(OsStr::from_bytes(name).to_owned());
        }
    }

    fn dir(&self) -> &File {
        self.dir.as_ref().unwrap_or(self.root)
    }

    /// Nothing follows the name last returned by `next_name`.
    fn at_last(&self) -> bool {
        self.pending.is_empty()
    }

    fn count_lookup(&mut self) -> io::Result<()> {
        self.lookups += 1;
        if self.lookups > MAX_LOOKUPS {
            return Err(io::Error::from_raw_os_error(libc::ELOOP));
        }
        Ok(())
    }

    /// The next name to look up in `dir`, after applying any `.` and `..`;
    /// `None` when the path ends at `dir` itself.
    fn next_name(&mut self) -> io::Result<Option<OsString>> {
        while let Some(name) = self.pending.pop() {
            match name.as_bytes() {
                b"." => {}
                b".." => {
                    // Above the root is outside it, whatever is there.
                    if self.names.pop().is_none() {
                        return Err(io::Error::from_raw_os_error(libc::EXDEV));
                    }
                    self.reopen()?;
                }
                _ => {
                    self.count_lookup()?;
                    return Ok(Some(name));
                }
            }
        }
        Ok(None)
    }

    /// Opens `names` again from the root, after a `..`. Asking the kernel
    /// for `..` instead could land outside the root if the directory was
    /// moved meanwhile; these names were real directories a moment ago, and
    /// one that became a link fails here instead of being followed.
    fn reopen(&mut self) -> io::Result<()> {
        self.dir = None;
        for name in std::mem::take(&mut self.names) {
            self.count_lookup()?;
            let dir = openat(self.dir(), &name, DIR_FLAGS)?;
            self.dir = Some(dir);
            self.names.push(name);
        }
        Ok(())
    }

    /// Steps into the directory `name`, or follows it if it is a link.
    fn enter(&mut self, name: OsString) -> io::Result<()> {
        match openat(self.dir(), &name, DIR_FLAGS) {
            Ok(dir) => {
                self.dir = Some(dir);
                self.names.push(name);
                Ok(())
            }
            Err(e) if may_be_symlink(&e) => self.follow(&name, e),
            Err(e) => Err(e),
        }
    }

    /// `name` in `dir` could not be opened with `O_NOFOLLOW`, with the error
    /// `not_opened`; if it is a symlink, queue its target instead.
    fn follow(&mut self, name: &OsStr, not_opened: io::Error) -> io::Result<()> {
        let Ok(target) = readlinkat(self.dir(), name) else {
            // Not a link after all: the open's own error stands (ENOTDIR for
            // a file used as a directory, ...).
            return Err(not_opened);
        };
        if self.on_link == OnLink::Refuse {
            return Err(io::Error::from_raw_os_error(libc::ELOOP));
        }
        self.links += 1;
        if self.links > MAX_SYMLINKS {
            return Err(io::Error::from_raw_os_error(libc::ELOOP));
        }
        if target.is_empty() {
            return Err(io::Error::from_raw_os_error(libc::ENOENT));
        }
        let target = Path::new(OsStr::from_bytes(&target));
        if target.is_absolute() {
            // Compared component by component: `/srv/www2` is not under
            // `/srv/www`, and `/srv/www/../x` leaves `..` to the walk.
            let Ok(inside) = target.strip_prefix(self.root_path) else {
                return Err(io::Error::from_raw_os_error(libc::EXDEV));
            };
            self.dir = None;
            self.names.clear();
            self.push_front(inside.as_os_str());
        } else {
            self.push_front(target.as_os_str());
        }
        Ok(())
    }

    fn opened(self, file: File) -> Opened {
        let via_link = (self.links > 0).then(|| self.names.iter().collect());
        Opened { file, via_link }
    }
}

fn walk_open(root: &File, root_path: &Path, relative: &Path) -> io::Result<Opened> {
    let mut walk = Walk::new(root, root_path, relative, OnLink::FollowInside);
    loop {
        let Some(name) = walk.next_name()? else {
            // The path ends at a directory already reached (the root, or
            // after `.` or `..`): open it for reading.
            let file = openat(walk.dir(), OsStr::new("."), OPEN_FLAGS)?;
            return Ok(walk.opened(file));
        };
        if !walk.at_last() {
            walk.enter(name)?;
            continue;
        }
        match openat(walk.dir(), &name, OPEN_FLAGS | libc::O_NOFOLLOW) {
            Ok(file) => {
                walk.names.push(name);
                return Ok(walk.opened(file));
            }
            Err(e) if may_be_symlink(&e) => walk.follow(&name, e)?,
            Err(e) => return Err(e),
        }
    }
}

/// `lstat` of `relative`, reached through directories only (a link on the
/// way is `ELOOP`); the last component is not followed.
fn walk_lstat(root: &File, relative: &Path) -> io::Result<libc::stat> {
    let mut walk = Walk::new(root, Path::new(""), relative, OnLink::Refuse);
    loop {
        let Some(name) = walk.next_name()? else {
            return fstatat(walk.dir(), OsStr::new("."));
        };
        if walk.at_last() {
            return fstatat(walk.dir(), &name);
        }
        walk.enter(name)?;
    }
}

/// What an `O_NOFOLLOW` open answers for a symlink: `ELOOP` (Linux, macOS),
/// `EMLINK` (FreeBSD), or `ENOTDIR` when a directory was asked for.
fn may_be_symlink(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::ELOOP | libc::EMLINK | libc::ENOTDIR)
    )
}

fn dot_if_empty(path: &OsStr) -> &OsStr {
    if path.is_empty() {
        OsStr::new(".")
    } else {
        path
    }
}

pub(super) fn c_path(path: &OsStr) -> io::Result<CString> {
    CString::new(path.as_bytes()).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))
}

/// Paths shorter than this are made NUL-terminated on the stack by
/// [`with_c_path`]: every cached file's check on every hit, so no heap.
const STACK_PATH: usize = 256;

/// Calls `f` with `path` NUL-terminated, as [`c_path`] makes it (a NUL
/// inside is `InvalidInput`), but on the stack when it is short.
fn with_c_path<R>(path: &OsStr, f: impl FnOnce(&CStr) -> io::Result<R>) -> io::Result<R> {
    let bytes = path.as_bytes();
    if bytes.len() >= STACK_PATH {
        return f(&c_path(path)?);
    }
    // Not zeroed first: only the path and its NUL are written and read
    // (this runs on every cache hit). The copy looks for a NUL inside as it
    // goes: one pass, not a copy and then `CStr`'s own scan.
    let mut buf = [std::mem::MaybeUninit::<u8>::uninit(); STACK_PATH];
    let mut nul_inside = false;
    for (slot, &b) in buf.iter_mut().zip(bytes) {
        slot.write(b);
        nul_inside |= b == 0;
    }
    if nul_inside {
        return Err(io::Error::from(io::ErrorKind::InvalidInput));
    }
    buf[bytes.len()].write(0);
    // SAFETY: the first `bytes.len() + 1` bytes (within `STACK_PATH`, checked
    // above) were all just written, and `MaybeUninit<u8>` has `u8`'s layout.
    let written = unsafe { std::slice::from_raw_parts(buf.as_ptr().cast::<u8>(), bytes.len() + 1) };
    // SAFETY: `written` ends with the NUL just written and, as checked in
    // the copy, holds no other.
    f(unsafe { CStr::from_bytes_with_nul_unchecked(written) })
}

fn openat(dir: &File, path: &OsStr, flags: libc::c_int) -> io::Result<File> {
    let path = c_path(path)?;
    // SAFETY: `dir` is an open descriptor and `path` a NUL-terminated string,
    // both alive for the call; no O_CREAT, so no mode argument is read.
    let fd = unsafe { libc::openat(dir.as_raw_fd(), path.as_ptr(), flags) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel just returned this descriptor and nothing else owns it.
    Ok(unsafe { File::from_raw_fd(fd) })
}

fn readlinkat(dir: &File, name: &OsStr) -> io::Result<Vec<u8>> {
    let name = c_path(name)?;
    let mut target = vec![0u8; libc::PATH_MAX as usize];
    // SAFETY: `dir` is open, `name` NUL-terminated, and `target` is valid for
    // writes of `target.len()` bytes, all for the duration of the call.
    let n = unsafe {
        libc::readlinkat(
            dir.as_raw_fd(),
            name.as_ptr(),
            target.as_mut_ptr().cast(),
            target.len(),
        )
    };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    // A full buffer may be a truncated target.
    if n as usize >= target.len() {
        return Err(io::Error::from_raw_os_error(libc::ENAMETOOLONG));
    }
    target.truncate(n as usize);
    Ok(target)
}

/// `fstatat` of `name` in `dir`, not following a final symlink.
// Inlined: its `stat` is then built where the caller keeps it, not copied
// out (it runs on every cache hit).
#[inline(always)]
fn fstatat(dir: &File, name: &OsStr) -> io::Result<libc::stat> {
    with_c_path(name, |name| {
        // SAFETY: `stat` is plain data for which all-zero bytes are valid.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: `dir` is open, `name` NUL-terminated and `st` a valid,
        // exclusive out-pointer, all for the duration of the call.
        let rc = unsafe {
            libc::fstatat(
                dir.as_raw_fd(),
                name.as_ptr(),
                &mut st,
                libc::AT_SYMLINK_NOFOLLOW,
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(st)
    })
}

fn stamp_of(st: &libc::stat) -> FileStamp {
    #[allow(clippy::unnecessary_cast)] // the field types differ between systems
    FileStamp {
        dev: st.st_dev as u64,
        ino: st.st_ino as u64,
        len: st.st_size as u64,
        mtime: (st.st_mtime as i64, st.st_mtime_nsec as i64),
        ctime: (st.st_ctime as i64, st.st_ctime_nsec as i64),
    }
}

/// The path the open descriptor `file` has now, as the kernel knows it.
#[cfg(any(target_os = "linux", target_os = "android"))]
fn descriptor_path(file: &File) -> io::Result<PathBuf> {
    std::fs::read_link(format!("/proc/self/fd/{}", file.as_raw_fd()))
}

#[cfg(target_os = "macos")]
fn descriptor_path(file: &File) -> io::Result<PathBuf> {
    use std::os::unix::ffi::OsStringExt;
    let mut buf = vec![0u8; libc::PATH_MAX as usize];
    // SAFETY: F_GETPATH writes at most PATH_MAX bytes, NUL included, into
    // `buf`, which is that large and exclusively ours for the call.
    let rc = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_GETPATH, buf.as_mut_ptr()) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    let len = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    buf.truncate(len);
    Ok(PathBuf::from(OsString::from_vec(buf)))
}

#[cfg(target_os = "freebsd")]
fn descriptor_path(file: &File) -> io::Result<PathBuf> {
    use std::os::unix::ffi::OsStringExt;
    // SAFETY: `kinfo_file` is plain data for which all-zero bytes are valid.
    let mut info: libc::kinfo_file = unsafe { std::mem::zeroed() };
    info.kf_structsize = libc::KINFO_FILE_SIZE;
    // SAFETY: F_KINFO fills the `kinfo_file` whose size we declared; it is
    // valid and exclusively ours for the call.
    let rc = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_KINFO, &mut info) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    let path: Vec<u8> = info
        .kf_path
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as u8)
        .collect();
    // An empty path: the kernel no longer knows a name for it.
    if path.is_empty() {
        return Err(io::Error::from_raw_os_error(libc::ENOENT));
    }
    Ok(PathBuf::from(OsString::from_vec(path)))
}

#[cfg(not(any(
    target_os = "linux",
    target_os = "android",
    target_os = "macos",
    target_os = "freebsd"
)))]
fn descriptor_path(_file: &File) -> io::Result<PathBuf> {
    Err(io::Error::from(io::ErrorKind::Unsupported))
}

/// `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS`: stay
/// under the directory, and fail with `ELOOP` on the first link of any kind.
#[cfg(any(target_os = "linux", target_os = "android"))]
const RESOLVE_NO_LINKS: u64 = 0x08 | 0x04 | 0x02;

/// `openat2` is not there (`ENOSYS`: before Linux 5.6; `EPERM`: a seccomp
/// filter that does not know it), or asked us to retry (`EAGAIN`): the walk
/// does the same job.
#[cfg(any(target_os = "linux", target_os = "android"))]
fn openat2_unavailable(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::ENOSYS | libc::EPERM | libc::EAGAIN)
    )
}

#[cfg(any(target_os = "linux", target_os = "android"))]
fn openat2(dir: &File, relative: &Path, flags: libc::c_int, resolve: u64) -> io::Result<File> {
    /// `struct open_how` from <linux/openat2.h>; the libc crate does not
    /// carry it.
    #[repr(C)]
    struct OpenHow {
        flags: u64,
        mode: u64,
        resolve: u64,
    }
    let how = OpenHow {
        flags: flags as u64,
        mode: 0,
        resolve,
    };
    let fd = with_c_path(dot_if_empty(relative.as_os_str()), |path| {
        // SAFETY: `path` is a NUL-terminated string and `how` a correctly laid
        // out `open_how` that both outlive the call; the size passed is its size.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_openat2,
                dir.as_raw_fd(),
                path.as_ptr(),
                &how as *const OpenHow,
                std::mem::size_of::<OpenHow>(),
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(fd)
    })?;
    // SAFETY: the kernel just returned this descriptor and nothing else owns it.
    Ok(unsafe { File::from_raw_fd(fd as libc::c_int) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::symlink;
    use std::sync::atomic::{AtomicUsize, Ordering};

    const FILE: &str = "inside the root";

    /// The stack copy and the heap copy of a path agree: a NUL inside is
    /// refused either way, a clean path is passed on unchanged.
    /// What `site::watcher` watches and stamps is exactly the path asked
    /// for, with or without `openat2`: a link anywhere on it is refused.
    #[cfg(any(target_os = "linux", target_os = "android"))]
    #[test]
    fn o_path_opens_refuse_every_link() {
        use std::os::unix::fs::{symlink, MetadataExt};
        let dir = std::env::temp_dir().join(format!("stoke-o-path-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("a/b")).unwrap();
        std::fs::write(dir.join("a/b/f"), b"f").unwrap();
        symlink("a", dir.join("l")).unwrap();
        symlink("b/f", dir.join("a/fl")).unwrap();
        let root = File::open(&dir).unwrap();
        let ino = std::fs::metadata(dir.join("a/b/f")).unwrap().ino();
        type Open = fn(&File, &Path) -> io::Result<File>;
        for (how, open) in [
            ("openat2", open_path_beneath as Open),
            ("walk", walk_open_path as Open),
        ] {
            let file = open(&root, Path::new("a/b/f")).unwrap();
            assert_eq!(file.metadata().unwrap().ino(), ino, "{how}");
            for linked in ["l/b/f", "a/fl", "l"] {
                let e = open(&root, Path::new(linked)).unwrap_err();
                assert_eq!(e.raw_os_error(), Some(libc::ELOOP), "{how} {linked}");
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn c_paths_on_the_stack_and_the_heap_agree() {
        for len in [0, 1, STACK_PATH - 1, STACK_PATH, STACK_PATH + 1] {
            let clean = "a".repeat(len);
            let got = with_c_path(OsStr::new(&clean), |c| Ok(c.to_bytes().to_vec()));
            assert_eq!(got.unwrap(), clean.as_bytes(), "{len}");
            if len == 0 {
                continue;
            }
            // First, middle and last byte: the stack copy checks each one.
            for at in [0, len / 2, len - 1] {
                let mut bad = clean.clone().into_bytes();
                bad[at] = 0;
                let got = with_c_path(OsStr::from_bytes(&bad), |_| Ok(()));
                assert_eq!(
                    got.unwrap_err().kind(),
                    io::ErrorKind::InvalidInput,
                    "{len} {at}"
                );
            }
        }
    }
    const SECRET: &str = "outside the root";

    /// `base/www` (the root, canonical) beside `base/secret` and
    /// `base/www2`, with one symlink of each kind worth telling apart.
    struct Tree {
        base: PathBuf,
        root_path: PathBuf,
        root: File,
    }

    impl Tree {
        fn new() -> Tree {
            static N: AtomicUsize = AtomicUsize::new(0);
            let base = std::env::temp_dir().join(format!(
                "stoke-open-{}-{}",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed)
            ));
            let _ = fs::remove_dir_all(&base);
            let base = {
                fs::create_dir_all(&base).unwrap();
                fs::canonicalize(&base).unwrap()
            };
            let www = base.join("www");
            for dir in ["www/sub", "www/.git", "secret", "www2"] {
                fs::create_dir_all(base.join(dir)).unwrap();
            }
            fs::write(www.join("file.txt"), FILE).unwrap();
            fs::write(www.join("sub/inner.txt"), "inner").unwrap();
            fs::write(www.join(".env"), "env").unwrap();
            fs::write(www.join(".git/config"), "config").unwrap();
            fs::write(base.join("secret/secret.txt"), SECRET).unwrap();
            fs::write(base.join("www2/secret.txt"), SECRET).unwrap();
            let links: &[(&str, PathBuf)] = &[
                ("link_in", "file.txt".into()),
                ("link_in_abs", www.join("file.txt")),
                ("link_out", "../secret/secret.txt".into()),
                ("link_out_abs", base.join("secret/secret.txt")),
                ("link_sibling", base.join("www2/secret.txt")),
                ("dir_out", "../secret".into()),
                ("sub/up", "../file.txt".into()),
                ("sub/upup", "../../secret/secret.txt".into()),
                ("loop1", "loop2".into()),
                ("loop2", "loop1".into()),
                ("dangling", "nothing-here".into()),
                ("envlink", ".env".into()),
                ("g", ".git".into()),
                ("abs_dotdot", www.join("../secret/secret.txt")),
                ("abs_in_dotdot", www.join("sub/../file.txt")),
                ("chain", "link_in".into()),
                ("self_dir", ".".into()),
            ];
            for (link, target) in links {
                symlink(target, www.join(link)).unwrap();
            }
            let root = File::open(&www).unwrap();
            Tree {
                base,
                root_path: www,
                root,
            }
        }
    }

    impl Drop for Tree {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.base);
        }
    }

    /// What opening a path gives: its contents and real path, or an errno.
    type Expected = Result<(&'static str, Option<&'static str>), i32>;

    /// (relative path, expected) for `Symlinks::StayInside`.
    const CASES: &[(&str, Expected)] = &[
        ("file.txt", Ok((FILE, None))),
        ("sub/inner.txt", Ok(("inner", None))),
        ("link_in", Ok((FILE, Some("file.txt")))),
        ("link_in_abs", Ok((FILE, Some("file.txt")))),
        ("chain", Ok((FILE, Some("file.txt")))),
        ("sub/up", Ok((FILE, Some("file.txt")))),
        ("abs_in_dotdot", Ok((FILE, Some("file.txt")))),
        ("self_dir/file.txt", Ok((FILE, Some("file.txt")))),
        ("envlink", Ok(("env", Some(".env")))),
        ("g/config", Ok(("config", Some(".git/config")))),
        ("link_out", Err(libc::EXDEV)),
        ("link_out_abs", Err(libc::EXDEV)),
        ("link_sibling", Err(libc::EXDEV)),
        ("dir_out/secret.txt", Err(libc::EXDEV)),
        ("sub/upup", Err(libc::EXDEV)),
        ("abs_dotdot", Err(libc::EXDEV)),
        ("loop1", Err(libc::ELOOP)),
        ("dangling", Err(libc::ENOENT)),
        ("missing", Err(libc::ENOENT)),
        ("file.txt/x", Err(libc::ENOTDIR)),
    ];

    fn check(got: io::Result<Opened>, expected: Expected, path: &str) {
        match (got, expected) {
            (Ok(mut opened), Ok((contents, via_link))) => {
                let mut read = String::new();
                io::Read::read_to_string(&mut opened.file, &mut read).unwrap();
                assert_eq!(read, contents, "{path:?}");
                assert_eq!(
                    opened.via_link.as_deref(),
                    via_link.map(Path::new),
                    "{path:?}"
                );
            }
            (got, expected) => assert_eq!(
                got.map(|o| o.via_link).map_err(|e| e.raw_os_error()),
                expected.map(|_| None).map_err(Some),
                "{path:?}"
            ),
        }
    }

    /// The walk alone: what macOS, FreeBSD and old Linux kernels run for
    /// every path, and Linux for every path with a link on it.
    #[test]
    fn walk_follows_only_links_that_stay_inside() {
        let tree = Tree::new();
        for &(path, expected) in CASES {
            let got = walk_open(&tree.root, &tree.root_path, Path::new(path));
            check(got, expected, path);
        }
        let root = walk_open(&tree.root, &tree.root_path, Path::new("")).unwrap();
        assert!(root.file.metadata().unwrap().is_dir());
    }

    #[test]
    fn open_beneath_follows_only_links_that_stay_inside() {
        let tree = Tree::new();
        for &(path, expected) in CASES {
            let got = open_beneath(
                &tree.root,
                &tree.root_path,
                Path::new(path),
                Symlinks::StayInside,
            );
            check(got, expected, path);
        }
    }

    #[test]
    fn follow_anywhere_reports_the_real_path_of_the_descriptor() {
        let tree = Tree::new();
        let secret = tree.base.join("secret/secret.txt");
        for (path, real) in [
            ("link_out", secret.as_path()),
            ("link_out_abs", &secret),
            ("dir_out/secret.txt", &secret),
            ("link_in", Path::new("file.txt")),
            ("g/config", Path::new(".git/config")),
        ] {
            let opened = open_beneath(
                &tree.root,
                &tree.root_path,
                Path::new(path),
                Symlinks::Anywhere,
            )
            .unwrap();
            assert_eq!(opened.via_link.as_deref(), Some(real), "{path:?}");
        }
    }

    /// One implementation of a stat, named for the failure message.
    type StatFn = fn(&File, &Path) -> io::Result<FileStamp>;
    type AbsentFn = fn(&File, &Path) -> bool;

    /// The cache's check on every hit: any link on the path is a miss.
    #[test]
    fn stat_beneath_refuses_every_symlink() {
        let tree = Tree::new();
        let expected = FileStamp::of(&fs::metadata(tree.root_path.join("file.txt")).unwrap());
        let stats: [(&str, StatFn); 2] = [("stat_beneath", stat_beneath), ("walk_stat", walk_stat)];
        for (name, stat) in stats {
            assert_eq!(
                stat(&tree.root, Path::new("file.txt")).unwrap(),
                expected,
                "{name}"
            );
            assert!(stat(&tree.root, Path::new("")).is_ok(), "{name}");
            for path in [
                "link_in",
                "self_dir/file.txt",
                "g/config",
                "link_out",
                "dangling",
            ] {
                let e = stat(&tree.root, Path::new(path)).unwrap_err();
                assert_eq!(e.raw_os_error(), Some(libc::ELOOP), "{name} {path:?}");
            }
        }
    }

    #[test]
    fn entry_absent_only_when_no_entry_of_that_name_exists() {
        let tree = Tree::new();
        let probes: [(&str, AbsentFn); 2] = [
            ("entry_absent", entry_absent),
            ("walk_entry_absent", walk_entry_absent),
        ];
        for (name, absent) in probes {
            for (path, expected) in [
                ("missing", true),
                ("sub/missing", true),
                ("file.txt", false),
                ("dangling", false),
                ("link_out", false),
                ("self_dir/missing", false),
                ("file.txt/x", false),
            ] {
                assert_eq!(
                    absent(&tree.root, Path::new(path)),
                    expected,
                    "{name} {path:?}"
                );
            }
        }
    }

    /// A link re-pointed between an inside and an outside target while the
    /// walk runs: every answer is the inside file or a refusal.
    #[test]
    fn walk_never_returns_the_outside_target_of_a_flipping_link() {
        use std::sync::atomic::AtomicBool;
        /// Stops the flipper however the loop ends, a failed assertion
        /// included (the scope waits for it).
        struct StopOnDrop<'a>(&'a AtomicBool);
        impl Drop for StopOnDrop<'_> {
            fn drop(&mut self) {
                self.0.store(true, Ordering::Relaxed);
            }
        }
        let tree = Tree::new();
        let link = tree.root_path.join("flip");
        let tmp = tree.root_path.join(".flip.tmp");
        let stop = AtomicBool::new(false);
        std::thread::scope(|scope| {
            scope.spawn(|| {
                let targets = [Path::new("../secret/secret.txt"), Path::new("file.txt")];
                for target in targets.iter().cycle() {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let _ = fs::remove_file(&tmp);
                    symlink(target, &tmp).unwrap();
                    fs::rename(&tmp, &link).unwrap();
                }
            });
            let _stop = StopOnDrop(&stop);
            let start = std::time::Instant::now();
            let (mut inside, mut refused) = (0, 0);
            while inside < 200 || refused < 200 {
                assert!(
                    start.elapsed() < std::time::Duration::from_secs(60),
                    "saw {inside} inside, {refused} refused"
                );
                match walk_open(&tree.root, &tree.root_path, Path::new("flip")) {
                    Ok(mut opened) => {
                        let mut read = String::new();
                        io::Read::read_to_string(&mut opened.file, &mut read).unwrap();
                        assert_eq!(read, FILE);
                        inside += 1;
                    }
                    Err(e) if e.raw_os_error() == Some(libc::EXDEV) => refused += 1,
                    // Not there for a moment: before the first flip.
                    Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
                    Err(e) => panic!("unexpected {e}"),
                }
            }
        });
    }
}
