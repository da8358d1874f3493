//! What the reactor's connections talk through: an accepted mio socket,
//! optionally preceded by a PROXY protocol header ([`Socket`]), used plain
//! or under a TLS session ([`Stream`]).
//!
//! The PROXY header is read by peeking: the socket's bytes are inspected
//! without consuming them, [`proxy_protocol::parse`] decides, and exactly
//! the header's length is then read away, so whatever follows (an HTTP
//! request, a TLS ClientHello) stays in the socket for the next layer.
//!
//! A TLS stream hands its ClientHello out once read ([`Stream::take_hello`])
//! and gets the session back from the worker that did the expensive step
//! ([`Stream::signed`]); `tls::stream` explains the split.
//!
//! Runs on: the reactor thread.

use std::fs::File;
use std::io::{self, IoSlice};
use std::net::{IpAddr, SocketAddr};

use mio::net::TcpStream;

use crate::conn::Transport;
use crate::net::proxy_protocol::{self, Parsed, MAX_HEADER};
use crate::tls::stream::{Hello, Signed, TlsStream};

/// Where a socket stands with its PROXY header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Preamble {
    /// The header must come first and has not been read yet.
    Expected,
    /// Read; the client's address if it named one.
    Done(Option<IpAddr>),
}

/// An accepted socket and, behind a PROXY listener, its header state.
pub struct Socket {
    tcp: TcpStream,
    /// Boxed: every connection holds a `Socket`, few come through a proxy,
    /// and an idle connection should cost little memory.
    proxy: Option<Box<Proxied>>,
}

/// The PROXY protocol side of a socket.
struct Proxied {
    /// The proxy's address, for log lines.
    peer: SocketAddr,
    preamble: Preamble,
}

/// Whether a listener's connections start with a PROXY header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyHeader {
    Absent,
    Required,
}

impl Socket {
    pub fn new(tcp: TcpStream, peer: SocketAddr, proxy: ProxyHeader) -> Socket {
        Socket {
            tcp,
            proxy: match proxy {
                ProxyHeader::Absent => None,
                ProxyHeader::Required => Some(Box::new(Proxied {
                    peer,
                    preamble: Preamble::Expected,
                })),
            },
        }
    }

    pub fn tcp_mut(&mut self) -> &mut TcpStream {
        &mut self.tcp
    }

    /// Reads the PROXY header if it has arrived whole. `WouldBlock` while
    /// only part of it is here; an error (logged) closes the connection.
    fn read_preamble(tcp: &mut TcpStream, proxied: &mut Proxied) -> io::Result<()> {
        let mut peek = [0u8; MAX_HEADER];
        let n = loop {
            match tcp.peek(&mut peek) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                other => break other?,
            }
        };
        let refuse = |what: &dyn std::fmt::Display| {
            log::warn!("{}: {what}; closing", proxied.peer);
            Err(io::Error::new(io::ErrorKind::InvalidData, what.to_string()))
        };
        match proxy_protocol::parse(&peek[..n]) {
            Err(e) => refuse(&e),
            Ok(Parsed::Incomplete) if n == 0 => {
                // EOF before any byte: a connect-only health check, not worth a line.
                Err(io::Error::new(io::ErrorKind::UnexpectedEof, "closed"))
            }
            Ok(Parsed::Incomplete) => {
                // The peek did not drain the socket, but more bytes raise a
                // new edge; until then there is nothing to do. A peer that
                // stops here is closed by the handshake deadline.
                Err(io::ErrorKind::WouldBlock.into())
            }
            Ok(Parsed::Header { len, client }) => {
                let mut consumed = 0;
                while consumed < len {
                    match io::Read::read(tcp, &mut peek[consumed..len]) {
                        Ok(0) => return refuse(&"connection closed inside the PROXY header"),
                        Ok(k) => consumed += k,
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                        Err(e) => return Err(e),
                    }
                }
                proxied.preamble = Preamble::Done(client.map(|c| c.ip()));
                Ok(())
            }
        }
    }
}

impl Transport for Socket {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if let Some(proxied) = &mut self.proxy {
            if proxied.preamble == Preamble::Expected {
                Socket::read_preamble(&mut self.tcp, proxied)?;
            }
        }
        self.tcp.read(buf)
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        self.tcp.write_vectored(bufs)
    }

    fn send_file(&mut self, file: &File, offset: u64, len: usize) -> io::Result<usize> {
        self.tcp.send_file(file, offset, len)
    }

    fn shutdown_write(&mut self) {
        self.tcp.shutdown_write();
    }

    fn drop_is_clean_close(&self) -> bool {
        true
    }

    fn handshaking(&self) -> bool {
        self.proxy
            .as_ref()
            .is_some_and(|p| p.preamble == Preamble::Expected)
    }

    fn client_addr(&self) -> Option<IpAddr> {
        match self.proxy.as_ref()?.preamble {
            Preamble::Done(client) => client,
            Preamble::Expected => None,
        }
    }
}

/// A connection's transport: the socket itself, or a TLS session over it.
pub enum Stream {
    Plain(Socket),
    Tls(Box<TlsStream<Socket>>),
}

impl Stream {
    /// The socket, to register it with the poller.
    pub fn tcp_mut(&mut self) -> &mut TcpStream {
        match self {
            Stream::Plain(s) => s.tcp_mut(),
            Stream::Tls(t) => t.get_mut().tcp_mut(),
        }
    }

    /// A TLS ClientHello just read whole, for a worker to answer (see
    /// `tls::stream`); the reactor checks after every step.
    pub fn take_hello(&mut self) -> Option<Box<Hello>> {
        match self {
            Stream::Plain(_) => None,
            Stream::Tls(t) => t.take_hello(),
        }
    }

    /// The worker's answer to the ClientHello taken with `take_hello`.
    pub fn signed(&mut self, signed: Signed) {
        if let Stream::Tls(t) = self {
            t.signed(signed);
        }
    }
}

impl Transport for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.read(buf),
            Stream::Tls(t) => t.read(buf),
        }
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.write_vectored(bufs),
            Stream::Tls(t) => t.write_vectored(bufs),
        }
    }

    fn send_file(&mut self, file: &File, offset: u64, len: usize) -> io::Result<usize> {
        match self {
            Stream::Plain(s) => s.send_file(file, offset, len),
            Stream::Tls(t) => t.send_file(file, offset, len),
        }
    }

    /// The reactor must not wait for the disk: a range not in the page cache
    /// is warmed by the pool first (both `sendfile` and TLS's `pread` would
    /// block on it). For TLS the range probed is the whole write budget
    /// from the next byte, of which `send_file` reads the first
    /// `TLS_FILE_CHUNK`: asked before every chunk, so each read starts on
    /// a page found cached.
    fn file_ready(&mut self, file: &File, offset: u64, len: usize) -> bool {
        crate::sys::page_cache::range_cached(file, offset, len)
    }

    fn shutdown_write(&mut self) {
        match self {
            Stream::Plain(s) => s.shutdown_write(),
            Stream::Tls(t) => t.shutdown_write(),
        }
    }

    fn drop_is_clean_close(&self) -> bool {
        match self {
            Stream::Plain(s) => s.drop_is_clean_close(),
            // `close_notify` first (see `shutdown_write`).
            Stream::Tls(_) => false,
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Plain(s) => s.flush(),
            Stream::Tls(t) => t.flush(),
        }
    }

    fn handshaking(&self) -> bool {
        match self {
            Stream::Plain(s) => s.handshaking(),
            Stream::Tls(t) => t.handshaking(),
        }
    }

    fn client_addr(&self) -> Option<IpAddr> {
        match self {
            Stream::Plain(s) => s.client_addr(),
            Stream::Tls(t) => t.client_addr(),
        }
    }
}
