//! Is a file's range in the page cache, and bringing it there: what keeps
//! `sendfile` on the reactor from waiting for the disk (Flash's AMPED idea:
//! the event loop only touches memory, helpers touch the disk).
//!
//! [`probe`] asks without waiting (`preadv2(RWF_NOWAIT)` of one byte: the
//! kernel answers `EAGAIN` instead of reading a page that is not cached);
//! [`warm`] reads a range through, blocking, so that afterwards it is
//! cached; [`evict`] drops a file's clean pages (tests, benchmarks).
//!
//! Linux (glibc) only; elsewhere [`probe`] answers [`Residency::Unknown`]
//! and callers treat that as cached (`sendfile` may then wait, as before).
//!
//! Runs on: `probe` on the reactor thread, `warm` on the warm-up threads
//! (`models/reactor/warm.rs`; the blocking models' connection threads).

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

/// What [`probe`] found out about one byte of a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Residency {
    /// In memory: reading it will not wait for the device.
    Cached,
    /// Reading it would wait for the device.
    NotCached,
    /// This system (or file system) cannot tell without waiting.
    Unknown,
}

/// Whether the byte at `offset` of `file` is in the page cache (a byte past
/// the end counts as cached: reading it costs nothing).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn probe(file: &File, offset: u64) -> Residency {
    use std::os::fd::AsRawFd;
    let mut byte = 0u8;
    let iov = libc::iovec {
        iov_base: (&mut byte as *mut u8).cast(),
        iov_len: 1,
    };
    // SAFETY: the descriptor is open for the call (we borrow its owner), and
    // `iov` describes one valid, exclusive byte that outlives the call.
    let n = unsafe {
        libc::preadv2(
            file.as_raw_fd(),
            &iov,
            1,
            offset as libc::off_t,
            libc::RWF_NOWAIT,
        )
    };
    if n >= 0 {
        return Residency::Cached;
    }
    match io::Error::last_os_error().raw_os_error() {
        Some(libc::EAGAIN) => Residency::NotCached,
        // EOPNOTSUPP/EINVAL: a kernel before 4.14 or a file system without
        // non-blocking buffered reads.
        _ => Residency::Unknown,
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn probe(_file: &File, _offset: u64) -> Residency {
    Residency::Unknown
}

/// Whether `len` bytes of `file` from `offset` look cached: the first and
/// the last byte are (one probe each; the pages between were read in with
/// them by [`warm`] or the kernel's readahead). [`Residency::Unknown`]
/// counts as cached, so where we cannot tell we send as before.
pub fn range_cached(file: &File, offset: u64, len: usize) -> bool {
    if probe(file, offset) == Residency::NotCached {
        return false;
    }
    let last = offset + (len as u64).saturating_sub(1);
    last / PAGE == offset / PAGE || probe(file, last) != Residency::NotCached
}

/// The page size the probes reason with (the smallest in use; a larger one
/// only makes the second probe redundant).
const PAGE: u64 = 4096;

/// Block size [`warm`] reads with: large enough for few calls, small enough
/// to be a cheap buffer on a worker.
const WARM_BLOCK: usize = 256 * 1024;

/// Brings `len` bytes of `file` from `offset` (fewer at the end of the
/// file) into the page cache, blocking for as long as the device takes:
/// call it on a worker. The following `len` bytes are asked for too,
/// without waiting, so that a long download's next window is on its way
/// while this one is sent.
pub fn warm(file: &File, offset: u64, len: u64) -> io::Result<()> {
    advise_will_need(file, offset, len.saturating_mul(2));
    if populate(file, offset, len) {
        return Ok(());
    }
    read_through(file, offset, len)
}

/// Faults the range in through a temporary mapping
/// (`madvise(MADV_POPULATE_READ)`, Linux 5.14): the kernel reads the pages
/// and nothing is copied to user space. `false` where that is not available
/// (or the range is empty or past the end): then [`read_through`] does it.
#[cfg(any(target_os = "linux", target_os = "android"))]
fn populate(file: &File, offset: u64, len: u64) -> bool {
    use std::os::fd::AsRawFd;
    let Ok(meta) = file.metadata() else {
        return false;
    };
    // mmap wants a page-aligned offset; map from the page `offset` is in.
    let start = offset - offset % PAGE;
    let end = offset.saturating_add(len).min(meta.len());
    if end <= start {
        return false;
    }
    let Ok(map_len) = usize::try_from(end - start) else {
        return false;
    };
    // SAFETY: a fresh private read-only mapping of a descriptor we hold open;
    // the kernel picks the address; nothing reads through the pointer.
    let addr = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            map_len,
            libc::PROT_READ,
            libc::MAP_PRIVATE,
            file.as_raw_fd(),
            start as libc::off_t,
        )
    };
    if addr == libc::MAP_FAILED {
        return false;
    }
    // SAFETY: `addr..addr + map_len` is the mapping made above.
    let rc = unsafe { libc::madvise(addr, map_len, libc::MADV_POPULATE_READ) };
    // SAFETY: unmaps exactly the mapping made above, used by nothing else.
    unsafe { libc::munmap(addr, map_len) };
    rc == 0
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn populate(_file: &File, _offset: u64, _len: u64) -> bool {
    false
}

/// Reads the range with `pread` and throws the bytes away.
fn read_through(file: &File, offset: u64, len: u64) -> io::Result<()> {
    let mut block = vec![0u8; WARM_BLOCK.min(len as usize).max(1)];
    let end = offset.saturating_add(len);
    let mut at = offset;
    while at < end {
        let want = ((end - at) as usize).min(block.len());
        match file.read_at(&mut block[..want], at) {
            Ok(0) => break,
            Ok(n) => at += n as u64,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Tells the kernel the whole range is wanted soon, so it queues all of it
/// at once instead of page by page as `warm`'s reads reach it.
#[cfg(target_os = "linux")]
fn advise_will_need(file: &File, offset: u64, len: u64) {
    use std::os::fd::AsRawFd;
    // SAFETY: a plain syscall on a descriptor we hold open for the call.
    let _ = unsafe {
        libc::posix_fadvise(
            file.as_raw_fd(),
            offset as libc::off_t,
            len as libc::off_t,
            libc::POSIX_FADV_WILLNEED,
        )
    };
}

#[cfg(not(target_os = "linux"))]
fn advise_will_need(_file: &File, _offset: u64, _len: u64) {}

/// Drops `file`'s clean pages from the page cache (its dirty pages stay:
/// `sync_all` it first). Returns whether the system has a way to do it.
#[cfg(target_os = "linux")]
pub fn evict(file: &File) -> bool {
    use std::os::fd::AsRawFd;
    // SAFETY: a plain syscall on a descriptor we hold open for the call.
    let rc = unsafe { libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
    rc == 0
}

#[cfg(not(target_os = "linux"))]
pub fn evict(_file: &File) -> bool {
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// A file just written and read is cached; after `evict` on a real disk
    /// it is not (skipped where the system or file system cannot say).
    #[test]
    fn probe_tells_cached_from_evicted_pages() {
        let dir = std::env::temp_dir().join(format!("stoke-page-cache-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("f.bin");
        let mut f = File::create(&path).unwrap();
        f.write_all(&vec![7u8; 1 << 20]).unwrap();
        f.sync_all().unwrap();
        let f = File::open(&path).unwrap();
        warm(&f, 0, 1 << 20).unwrap();
        let cached = probe(&f, 4096);
        if cached == Residency::Unknown {
            eprintln!("skipped: this system cannot probe the page cache");
        } else {
            assert_eq!(cached, Residency::Cached);
            // Past the end: nothing to wait for.
            assert_eq!(probe(&f, 10 << 20), Residency::Cached);
            if evict(&f) && probe(&f, 4096) == Residency::NotCached {
                warm(&f, 0, 8192).unwrap();
                assert_eq!(probe(&f, 4096), Residency::Cached);
            } else {
                eprintln!("skipped the eviction half: pages stayed cached (tmpfs?)");
            }
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
