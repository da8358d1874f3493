//! `poll(2)` for the blocking models' accept loops: one call that sleeps
//! until any listener has a client *or* the shutdown alarm rings, so a
//! thread waiting for clients notices a shutdown at once without spinning
//! (a plain blocking `accept` could only be woken by a client).
//!
//! Runs on: the blocking models' accepting threads.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::time::Duration;

/// Sleeps until at least one of `fds` is readable (for a listener: a client
/// is waiting), or `timeout` passes (`None`: no limit). Sets `ready[i]` for
/// each descriptor that is readable, has hung up or has an error (then the
/// caller's next call on it reports what happened). Returns how many are
/// ready; `Interrupted` (a signal) is for the caller to retry.
pub fn wait_readable(
    fds: &[BorrowedFd<'_>],
    timeout: Option<Duration>,
    ready: &mut [bool],
) -> io::Result<usize> {
    assert_eq!(fds.len(), ready.len(), "one `ready` flag per descriptor");
    let mut polled: Vec<libc::pollfd> = fds
        .iter()
        .map(|fd| libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    let timeout_ms = match timeout {
        None => -1,
        // Rounded up: a wait rounded down to 0 would return at once and spin.
        Some(t) => t
            .as_nanos()
            .div_ceil(1_000_000)
            .min(libc::c_int::MAX as u128) as libc::c_int,
    };
    // SAFETY: `polled` is a valid, exclusive array of `polled.len()` pollfds
    // for the duration of the call, and every descriptor in it is open: each
    // comes from a `BorrowedFd` that outlives the call.
    let n = unsafe {
        libc::poll(
            polled.as_mut_ptr(),
            polled.len() as libc::nfds_t,
            timeout_ms,
        )
    };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    for (flag, p) in ready.iter_mut().zip(&polled) {
        *flag = p.revents & (libc::POLLIN | libc::POLLHUP | libc::POLLERR | libc::POLLNVAL) != 0;
    }
    Ok(n as usize)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::os::fd::AsFd;
    use std::os::unix::net::UnixStream;

    #[test]
    fn wakes_for_the_readable_one_only_and_times_out_otherwise() {
        let (a_rx, mut a_tx) = UnixStream::pair().unwrap();
        let (b_rx, _b_tx) = UnixStream::pair().unwrap();
        let mut ready = [false; 2];
        let fds = [a_rx.as_fd(), b_rx.as_fd()];
        let n = wait_readable(&fds, Some(Duration::from_millis(1)), &mut ready).unwrap();
        assert_eq!((n, ready), (0, [false, false]));
        a_tx.write_all(b"x").unwrap();
        let n = wait_readable(&fds, None, &mut ready).unwrap();
        assert_eq!((n, ready), (1, [true, false]));
    }
}
