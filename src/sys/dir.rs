//! Reading a directory through a descriptor that was already opened (and
//! vetted) beneath the root: `fdopendir` on a duplicate of it, `readdir`, and
//! `fstatat(AT_SYMLINK_NOFOLLOW)` for each entry relative to that same
//! descriptor. No path is looked up again, so a directory swapped for a
//! symlink after it was opened cannot make a listing show another directory,
//! and a listing always shows the very directory the request resolved to.
//!
//! Runs on: worker threads (directory listings).

use std::ffi::{CStr, CString, OsStr, OsString};
use std::fs::File;
use std::io;
use std::os::fd::IntoRawFd;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::ptr::NonNull;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// An open directory stream over a duplicate of a vetted descriptor; closed
/// on drop.
pub struct DirReader {
    dir: NonNull<libc::DIR>,
}

/// What a listing shows of one entry, from `fstatat` without following a
/// symlink (a symlink reveals nothing about its target).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EntryMeta {
    pub is_dir: bool,
    pub len: u64,
    /// The UNIX epoch when the time is before it.
    pub modified: SystemTime,
}

impl DirReader {
    /// Starts reading the directory `dir` from its first entry. `dir` itself
    /// is left open and untouched apart from its shared position, which is
    /// rewound.
    pub fn new(dir: &File) -> io::Result<DirReader> {
        // `try_clone` is `fcntl(F_DUPFD_CLOEXEC)`: the stream gets its own
        // descriptor, so closing the stream never closes the caller's.
        let fd = dir.try_clone()?.into_raw_fd();
        // SAFETY: `fd` is an open descriptor that we own (just duplicated);
        // on success the stream takes it over.
        let raw = unsafe { libc::fdopendir(fd) };
        let Some(dir) = NonNull::new(raw) else {
            let err = io::Error::last_os_error();
            // SAFETY: fdopendir failed, so `fd` is still ours to close, once.
            unsafe { libc::close(fd) };
            return Err(err);
        };
        // A duplicate shares the file position with the original; start at
        // the beginning whatever was read through it before.
        // SAFETY: `dir` is a live stream owned by us.
        unsafe { libc::rewinddir(dir.as_ptr()) };
        Ok(DirReader { dir })
    }

    /// The next entry's name, skipping `.` and `..`; `None` at the end.
    pub fn next_name(&mut self) -> Option<io::Result<OsString>> {
        loop {
            clear_errno();
            // SAFETY: `self.dir` is a live stream used by this thread only
            // (`&mut self`); the returned entry is valid until the next
            // `readdir` or `closedir` on it, and is copied out before either.
            let entry = unsafe { libc::readdir(self.dir.as_ptr()) };
            if entry.is_null() {
                let err = io::Error::last_os_error();
                return match err.raw_os_error() {
                    Some(0) | None => None,
                    Some(_) => Some(Err(err)),
                };
            }
            // SAFETY: `entry` is non-null and points at a `dirent` whose
            // `d_name` is NUL-terminated, valid until the next `readdir`.
            let name = unsafe { CStr::from_ptr((*entry).d_name.as_ptr()) };
            let name = name.to_bytes();
            if name == b"." || name == b".." {
                continue;
            }
            return Some(Ok(OsString::from_vec(name.to_vec())));
        }
    }

    /// The metadata of the entry `name` of this directory, without following
    /// a symlink.
    pub fn metadata(&self, name: &OsStr) -> io::Result<EntryMeta> {
        let name = CString::new(name.as_bytes())
            .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        // SAFETY: `self.dir` is a live stream; its descriptor stays open
        // while the stream does.
        let fd = unsafe { libc::dirfd(self.dir.as_ptr()) };
        // SAFETY: `stat` is plain data for which all-zero bytes are valid.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: `fd` is open, `name` NUL-terminated and `st` a valid,
        // exclusive out-pointer, all for the duration of the call.
        let rc = unsafe { libc::fstatat(fd, name.as_ptr(), &mut st, libc::AT_SYMLINK_NOFOLLOW) };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        #[allow(clippy::unnecessary_cast)] // the field types differ between systems
        let (secs, nanos, len) = (
            st.st_mtime as i64,
            st.st_mtime_nsec as i64,
            st.st_size as u64,
        );
        let modified = u64::try_from(secs)
            .ok()
            .and_then(|s| {
                UNIX_EPOCH.checked_add(Duration::new(s, nanos.clamp(0, 999_999_999) as u32))
            })
            .unwrap_or(UNIX_EPOCH);
        Ok(EntryMeta {
            is_dir: st.st_mode & libc::S_IFMT == libc::S_IFDIR,
            len,
            modified,
        })
    }
}

impl Drop for DirReader {
    fn drop(&mut self) {
        // SAFETY: the stream is live and closed exactly once, here; this also
        // closes the duplicated descriptor it owns.
        unsafe { libc::closedir(self.dir.as_ptr()) };
    }
}

/// `readdir` reports an error only through `errno`, and leaves it untouched
/// at the end of the stream: clear it first to tell the two apart.
fn clear_errno() {
    if let Some(slot) = errno_slot() {
        // SAFETY: `slot` is this thread's errno, valid for the thread's life
        // and written by no one else.
        unsafe { *slot = 0 };
    }
}

#[cfg(target_os = "linux")]
fn errno_slot() -> Option<*mut libc::c_int> {
    // SAFETY: no preconditions; returns this thread's errno location.
    Some(unsafe { libc::__errno_location() })
}

#[cfg(target_os = "android")]
fn errno_slot() -> Option<*mut libc::c_int> {
    // SAFETY: no preconditions; returns this thread's errno location.
    Some(unsafe { libc::__errno() })
}

#[cfg(any(target_os = "macos", target_os = "freebsd"))]
fn errno_slot() -> Option<*mut libc::c_int> {
    // SAFETY: no preconditions; returns this thread's errno location.
    Some(unsafe { libc::__error() })
}

/// Elsewhere errno stays as it was: a stale error at the end of a stream
/// only ends the listing where it would have ended anyway.
#[cfg(not(any(
    target_os = "linux",
    target_os = "android",
    target_os = "macos",
    target_os = "freebsd"
)))]
fn errno_slot() -> Option<*mut libc::c_int> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn reads_names_and_metadata_through_the_descriptor() {
        let dir = std::env::temp_dir().join(format!("stoke-sysdir-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("sub")).unwrap();
        fs::write(dir.join("f.txt"), b"12345").unwrap();
        std::os::unix::fs::symlink("sub", dir.join("link")).unwrap();
        let handle = File::open(&dir).unwrap();
        // Renaming the directory away after it was opened changes nothing:
        // the reader works on the descriptor, not the path.
        let moved = dir.with_extension("moved");
        let _ = fs::remove_dir_all(&moved);
        fs::rename(&dir, &moved).unwrap();
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("other.txt"), b"x").unwrap();

        let mut reader = DirReader::new(&handle).unwrap();
        let mut seen = Vec::new();
        while let Some(name) = reader.next_name() {
            let name = name.unwrap();
            let meta = reader.metadata(&name).unwrap();
            seen.push((name.into_string().unwrap(), meta.is_dir, meta.len));
        }
        seen.sort();
        assert_eq!(seen.len(), 3, "{seen:?}");
        assert_eq!(seen[0], ("f.txt".to_owned(), false, 5));
        assert_eq!(seen[1].0, "link");
        assert!(!seen[1].1, "a symlink to a directory is not followed");
        assert_eq!((seen[2].0.as_str(), seen[2].1), ("sub", true));
        assert!(reader.metadata(OsStr::new("missing")).is_err());
        drop(reader);
        // The caller's descriptor is still open, and a new reader starts
        // from the first entry again.
        let mut again = DirReader::new(&handle).unwrap();
        let mut count = 0;
        while let Some(name) = again.next_name() {
            name.unwrap();
            count += 1;
        }
        assert_eq!(count, 3);
        let _ = fs::remove_dir_all(&dir);
        let _ = fs::remove_dir_all(&moved);
    }
}
