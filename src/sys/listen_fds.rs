//! Listening sockets that mio's `bind` does not make: those inherited from
//! a service manager (systemd socket activation: `LISTEN_PID`,
//! `LISTEN_FDS`, `LISTEN_FDNAMES`, descriptors from 3 on) and those bound
//! with `SO_REUSEPORT`, so a new stoke can bind the port while the old one
//! still drains.
//!
//! Also the options that accepted connections inherit from their listener
//! ([`nodelay_for_accepted`]).
//!
//! Runs on: the main thread, at start, before any other thread exists
//! (it edits the environment).

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::os::fd::{AsRawFd, FromRawFd, RawFd};

use crate::limits::{LISTEN_BACKLOG, MAX_INHERITED};

/// The first inherited descriptor (`SD_LISTEN_FDS_START`).
const LISTEN_FDS_START: RawFd = 3;

/// One socket passed by the service manager, with its name
/// (`FileDescriptorName=`; `"unknown"` when none was given).
#[derive(Debug)]
pub struct Inherited {
    pub listener: TcpListener,
    pub name: String,
}

/// The sockets passed to this process, or `None` when it was not socket
/// activated (no `LISTEN_PID`, or one naming another process). The
/// variables are removed so that no child would take them for its own.
/// Each descriptor must be a listening TCP socket; it is made
/// non-blocking and close-on-exec.
pub fn inherited() -> io::Result<Option<Vec<Inherited>>> {
    let Ok(pid) = std::env::var("LISTEN_PID") else {
        return Ok(None);
    };
    if pid.trim().parse::<u32>().ok() != Some(std::process::id()) {
        return Ok(None);
    }
    let count = std::env::var("LISTEN_FDS").unwrap_or_default();
    let names = std::env::var("LISTEN_FDNAMES").unwrap_or_default();
    for var in ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"] {
        std::env::remove_var(var);
    }
    let count: usize = count
        .trim()
        .parse()
        .ok()
        .filter(|&n| n <= MAX_INHERITED)
        .ok_or_else(|| invalid(format!("LISTEN_FDS={count:?} is not a descriptor count")))?;
    let mut names = names.split(':');
    let mut sockets = Vec::with_capacity(count);
    for i in 0..count {
        let fd = LISTEN_FDS_START + i as RawFd;
        let name = names.next().filter(|n| !n.is_empty()).unwrap_or("unknown");
        check_listening_tcp(fd).map_err(|e| invalid(format!("inherited descriptor {fd}: {e}")))?;
        // SAFETY: the service manager passed `fd` to us alone (LISTEN_PID is
        // our pid), it is open (checked above), and nothing else in this
        // process has taken ownership of it: this runs once, at start.
        let listener = unsafe { TcpListener::from_raw_fd(fd) };
        set_cloexec(fd)?;
        listener.set_nonblocking(true)?;
        sockets.push(Inherited {
            listener,
            name: name.to_owned(),
        });
    }
    Ok(Some(sockets))
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg)
}

/// `fd` is an open TCP socket in the listening state.
fn check_listening_tcp(fd: RawFd) -> io::Result<()> {
    let int_opt = |level, name| -> io::Result<libc::c_int> {
        let mut value: libc::c_int = 0;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        // SAFETY: `value` and `len` are valid, exclusive pointers of the
        // sizes passed; the kernel checks `fd` itself.
        let rc = unsafe {
            libc::getsockopt(
                fd,
                level,
                name,
                (&mut value as *mut libc::c_int).cast(),
                &mut len,
            )
        };
        if rc == 0 {
            Ok(value)
        } else {
            Err(io::Error::last_os_error())
        }
    };
    if int_opt(libc::SOL_SOCKET, libc::SO_TYPE)? != libc::SOCK_STREAM {
        return Err(io::Error::other("not a stream socket"));
    }
    if int_opt(libc::SOL_SOCKET, libc::SO_ACCEPTCONN)? == 0 {
        return Err(io::Error::other("not a listening socket"));
    }
    let domain = socket_family(fd)?;
    if domain != libc::AF_INET && domain != libc::AF_INET6 {
        return Err(io::Error::other("not an IPv4 or IPv6 socket"));
    }
    Ok(())
}

/// The address family of socket `fd` (`getsockname`, which every system
/// has; Linux's `SO_DOMAIN` would say the same).
fn socket_family(fd: RawFd) -> io::Result<libc::c_int> {
    // SAFETY: `sockaddr_storage` is plain data for which all-zero bytes are valid.
    let mut addr: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: `addr` is large enough for any address and `len` says so; both
    // are valid, exclusive pointers for the call.
    let rc = unsafe {
        libc::getsockname(
            fd,
            (&mut addr as *mut libc::sockaddr_storage).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(libc::c_int::from(addr.ss_family))
}

fn set_cloexec(fd: RawFd) -> io::Result<()> {
    // SAFETY: plain fcntl calls on a descriptor we own.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
    // SAFETY: as above.
    if flags < 0 || unsafe { libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Whether a connection accepted from our listeners already has
/// `TCP_NODELAY` (see [`nodelay_for_accepted`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NoDelay {
    /// Set on the listener; the kernel copies it to each accepted socket.
    Inherited,
    /// Each accepted connection needs its own `setsockopt`.
    PerConnection,
}

/// Sets `TCP_NODELAY` on a listening socket so that the connections it
/// accepts start with it. Linux builds an accepted socket from a copy of
/// the listener's TCP state, so one call at start replaces a `setsockopt`
/// per connection (a tenth of the syscalls of a `Connection: close`
/// exchange). Elsewhere, or if the call fails, the answer is
/// [`NoDelay::PerConnection`].
pub fn nodelay_for_accepted(listener: &TcpListener) -> NoDelay {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        let one: libc::c_int = 1;
        // SAFETY: `one` is a valid c_int for the duration of the call and
        // its size is the length passed; the descriptor is the listener's.
        let rc = unsafe {
            libc::setsockopt(
                listener.as_raw_fd(),
                libc::IPPROTO_TCP,
                libc::TCP_NODELAY,
                (&one as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if rc == 0 {
            return NoDelay::Inherited;
        }
    }
    let _ = listener;
    NoDelay::PerConnection
}

/// Binds a non-blocking listener on `addr` with `SO_REUSEADDR` and
/// `SO_REUSEPORT`: several processes (of the same user) may listen on the
/// port at once and the kernel spreads new connections over them.
pub fn bind_reuse_port(addr: SocketAddr) -> io::Result<TcpListener> {
    let domain = if addr.is_ipv4() {
        libc::AF_INET
    } else {
        libc::AF_INET6
    };
    // SAFETY: plain socket(2) call; the result is checked.
    let fd = unsafe { libc::socket(domain, libc::SOCK_STREAM, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the kernel just gave us `fd` and nothing else owns it; from
    // here on the listener closes it on every path.
    let listener = unsafe { TcpListener::from_raw_fd(fd) };
    // Two fcntl calls rather than socket(2)'s SOCK_NONBLOCK | SOCK_CLOEXEC,
    // which macOS lacks; nothing can fork between them and the bind.
    set_cloexec(fd)?;
    listener.set_nonblocking(true)?;
    let one: libc::c_int = 1;
    for option in [libc::SO_REUSEADDR, libc::SO_REUSEPORT] {
        // SAFETY: `one` is a valid c_int for the duration of the call and
        // its size is the length passed.
        let rc = unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                option,
                (&one as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    let (storage, len) = sockaddr(addr);
    // SAFETY: `storage` holds a sockaddr of the family of `fd`, `len` bytes
    // long, valid for the call.
    if unsafe { libc::bind(fd, (&storage as *const libc::sockaddr_storage).cast(), len) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: plain listen(2) on our socket.
    if unsafe { libc::listen(listener.as_raw_fd(), LISTEN_BACKLOG) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(listener)
}

/// `addr` as the C socket address the kernel takes.
fn sockaddr(addr: SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: sockaddr_storage is plain data for which all-zero is valid.
    let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let len = match addr {
        SocketAddr::V4(a) => {
            // SAFETY: sockaddr_storage is large and aligned enough for any
            // socket address, and all-zero is a valid sockaddr_in (the
            // fields some systems add, like sin_len, may stay zero).
            let sin = unsafe {
                &mut *(&mut storage as *mut libc::sockaddr_storage).cast::<libc::sockaddr_in>()
            };
            sin.sin_family = libc::AF_INET as libc::sa_family_t;
            sin.sin_port = a.port().to_be();
            sin.sin_addr = libc::in_addr {
                s_addr: u32::from_ne_bytes(a.ip().octets()),
            };
            std::mem::size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(a) => {
            // SAFETY: as above, for a sockaddr_in6.
            let sin6 = unsafe {
                &mut *(&mut storage as *mut libc::sockaddr_storage).cast::<libc::sockaddr_in6>()
            };
            sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            sin6.sin6_port = a.port().to_be();
            sin6.sin6_flowinfo = a.flowinfo();
            sin6.sin6_addr = libc::in6_addr {
                s6_addr: a.ip().octets(),
            };
            sin6.sin6_scope_id = a.scope_id();
            std::mem::size_of::<libc::sockaddr_in6>()
        }
    };
    (storage, len as libc::socklen_t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_reuse_port_listeners_share_a_port() {
        let a = bind_reuse_port("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = a.local_addr().unwrap();
        let b = bind_reuse_port(addr).unwrap();
        assert_eq!(b.local_addr().unwrap(), addr);
        // A plain bind of the same port is refused: only SO_REUSEPORT
        // sockets join the group.
        assert!(std::net::TcpListener::bind(addr).is_err());
        let v6 = bind_reuse_port("[::1]:0".parse().unwrap());
        if let Ok(v6) = v6 {
            assert!(v6.local_addr().unwrap().is_ipv6());
        }
    }

    #[test]
    fn accepted_connections_inherit_nodelay_when_the_listener_says_so() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let inherited = nodelay_for_accepted(&listener);
        if cfg!(any(target_os = "linux", target_os = "android")) {
            assert_eq!(inherited, NoDelay::Inherited);
        }
        let _client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (accepted, _) = listener.accept().unwrap();
        if inherited == NoDelay::Inherited {
            assert!(accepted.nodelay().unwrap());
        }
    }

    #[test]
    fn not_socket_activated_without_our_pid() {
        // LISTEN_PID is not set in tests (or names another process).
        if std::env::var("LISTEN_PID").is_err() {
            assert!(inherited().unwrap().is_none());
        }
    }
}
