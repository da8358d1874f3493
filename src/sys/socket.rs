//! Reading from and writing to a connected socket: the reactor's `recv`
//! and `writev` of every request.
//!
//! On Linux they are issued with `syscall(2)`, not through glibc's `recv`
//! and `writev`: those are cancellation points, and in a multi-threaded
//! process glibc wraps each call in cancellation bookkeeping (about 20
//! instructions on each side of the call) for `pthread_cancel`, which
//! stoke never uses. The kernel calls are the same ones std makes
//! (`recv` with no flags is `recvfrom` without an address), so the
//! results and errors are too. Elsewhere the libc functions are called.
//!
//! Runs on: the reactor thread.

use std::io::{self, IoSlice};
use std::os::fd::RawFd;

/// At most this many buffers go to one `writev`: the kernel refuses more
/// than `IOV_MAX` (1024 on Linux and the BSDs) with `EINVAL`, where a short
/// write is what a caller expects. std caps its `writev` the same way.
const MAX_IOV: usize = 1024;

/// `recv` is asked for nothing special (no `MSG_PEEK`, no `MSG_WAITALL`).
#[cfg(any(target_os = "linux", target_os = "android"))]
const NO_FLAGS: libc::c_long = 0;

/// Receives into `buf` from `socket`: what `Read::read` on a `TcpStream`
/// does (`recv` with no flags). `Ok(0)` is EOF; `WouldBlock` on a
/// non-blocking socket with nothing to read.
#[cfg(any(target_os = "linux", target_os = "android"))]
pub fn recv(socket: RawFd, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: `buf` is valid for writes of `buf.len()` bytes for the
    // duration of the call; recvfrom(2) accepts null for the address and
    // its length when the caller does not want the sender's address.
    let n = unsafe {
        libc::syscall(
            libc::SYS_recvfrom,
            libc::c_long::from(socket),
            buf.as_mut_ptr(),
            buf.len(),
            NO_FLAGS,
            std::ptr::null_mut::<libc::sockaddr>(),
            std::ptr::null_mut::<libc::socklen_t>(),
        )
    };
    count(n)
}

/// [`recv`] elsewhere.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub fn recv(socket: RawFd, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: `buf` is valid for writes of `buf.len()` bytes for the
    // duration of the call.
    let n = unsafe { libc::recv(socket, buf.as_mut_ptr().cast(), buf.len(), 0) };
    count(n as libc::c_long)
}

/// Writes `bufs`, in order, to `socket` with one `writev(2)`: what
/// `Write::write_vectored` on a `TcpStream` does. Returns how many bytes
/// the socket took (a short count when its buffer filled up).
#[cfg(any(target_os = "linux", target_os = "android"))]
pub fn writev(socket: RawFd, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
    // SAFETY: `IoSlice` is guaranteed to be ABI-compatible with `iovec` on
    // Unix, and the slices it points to are borrowed (so valid for reads)
    // for the duration of the call; the count does not exceed `bufs`.
    let n = unsafe {
        libc::syscall(
            libc::SYS_writev,
            libc::c_long::from(socket),
            bufs.as_ptr(),
            bufs.len().min(MAX_IOV),
        )
    };
    count(n)
}

/// [`writev`] elsewhere.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub fn writev(socket: RawFd, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
    // SAFETY: as above: `IoSlice` is an `iovec`, borrowed for the call.
    let n = unsafe {
        libc::writev(
            socket,
            bufs.as_ptr().cast(),
            bufs.len().min(MAX_IOV) as libc::c_int,
        )
    };
    count(n as libc::c_long)
}

/// A byte count, or the error `errno` names when the call returned -1.
fn count(n: libc::c_long) -> io::Result<usize> {
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};
    use std::os::fd::AsRawFd;

    fn pair() -> (TcpStream, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        (client, server)
    }

    /// The wrappers behave as std's `read` and `write_vectored`: bytes in
    /// order, `WouldBlock` on an empty non-blocking socket, `Ok(0)` at EOF,
    /// and an error (not a bogus count) on a bad descriptor.
    #[test]
    fn recv_and_writev_behave_like_std() {
        let (mut client, server) = pair();
        let sent = writev(
            server.as_raw_fd(),
            &[IoSlice::new(b"he"), IoSlice::new(b""), IoSlice::new(b"llo")],
        )
        .unwrap();
        assert_eq!(sent, 5);
        let mut got = [0; 5];
        client.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"hello");

        client.write_all(b"abc").unwrap();
        let mut buf = [0; 16];
        let mut n = 0;
        while n < 3 {
            n += recv(server.as_raw_fd(), &mut buf[n..]).unwrap();
        }
        assert_eq!(&buf[..3], b"abc");
        server.set_nonblocking(true).unwrap();
        let e = recv(server.as_raw_fd(), &mut buf).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::WouldBlock);
        drop(client);
        server.set_nonblocking(false).unwrap();
        assert_eq!(recv(server.as_raw_fd(), &mut buf).unwrap(), 0, "EOF");

        assert!(recv(-1, &mut buf).is_err());
        assert!(writev(-1, &[IoSlice::new(b"x")]).is_err());
    }
}
