//! One TLS connection as a [`Transport`]: a rustls `ServerConnection` over
//! any other transport (the reactor's mio socket, or a blocking one).
//!
//! rustls is sans-IO: it turns ciphertext into plaintext and back in
//! memory, and this wrapper moves bytes between it and the socket. With
//! edge-triggered readiness nothing may be left behind:
//! - `read` fills the caller's buffer from decrypted data and keeps reading
//!   ciphertext until the buffer is full or the socket says `WouldBlock`,
//!   so a short read means drained, as the `Transport` contract requires,
//!   and no plaintext waits inside rustls without a read to come for it;
//! - records the socket did not take (handshake replies, response bytes,
//!   close_notify) stay queued in rustls and go out on the next `flush`,
//!   which the connection calls on every event (a writable edge included);
//! - nothing new is encrypted while older records still wait for the
//!   socket, so the queue holds at most one write's worth (bounded by
//!   rustls' buffer limit).
//!
//! Files go out by positioned reads of at most [`TLS_FILE_CHUNK`] bytes, each
//! encrypted into records: `sendfile` cannot encrypt. (Kernel TLS would
//! allow it; it is not used: it needs the `tls` module, a handshake
//! hand-off and per-kernel cipher support, for a gain only on large files.)
//!
//! Runs on: the reactor thread (or a blocking model's connection thread).

use std::fs::File;
use std::io::{self, IoSlice, Read, Write};
use std::net::IpAddr;
use std::os::unix::fs::FileExt;

use rustls::ServerConnection;

use crate::conn::Transport;
use crate::limits::TLS_FILE_CHUNK;

/// Where the write side stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum WriteSide {
    Open,
    /// close_notify queued; the socket is half-closed once it is sent.
    Closing,
    Shut,
}

/// A TLS session over the transport `S`.
pub struct TlsStream<S> {
    sock: S,
    tls: ServerConnection,
    write_side: WriteSide,
    /// For log lines about this connection.
    peer: IpAddr,
}

impl<S: Transport> TlsStream<S> {
    pub fn new(sock: S, tls: ServerConnection, peer: IpAddr) -> TlsStream<S> {
        TlsStream {
            sock,
            tls,
            write_side: WriteSide::Open,
            peer,
        }
    }

    /// The underlying transport (to register it with a poller).
    pub fn get_mut(&mut self) -> &mut S {
        &mut self.sock
    }

    /// The negotiated protocol version, once the handshake is done.
    pub fn protocol_version(&self) -> Option<rustls::ProtocolVersion> {
        self.tls.protocol_version()
    }

    /// Writes queued records until none is left or the socket would block
    /// (`Err(WouldBlock)`), then half-closes if close_notify was queued.
    fn send_queued(&mut self) -> io::Result<()> {
        while self.tls.wants_write() {
            match self.tls.write_tls(&mut Socket(&mut self.sock)) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        if self.write_side == WriteSide::Closing {
            self.sock.shutdown_write();
            self.write_side = WriteSide::Shut;
        }
        Ok(())
    }

    /// A session error: log it, try to send the alert rustls queued, and
    /// turn it into an I/O error that ends the connection.
    fn fail(&mut self, e: rustls::Error) -> io::Error {
        if self.tls.is_handshaking() {
            log::info!("{}: TLS handshake failed: {e}", self.peer);
        } else {
            log::info!("{}: TLS error: {e}", self.peer);
        }
        let _ = self.send_queued();
        io::Error::new(io::ErrorKind::InvalidData, e)
    }

    /// Hands plaintext to rustls (which encrypts it at once once the
    /// handshake is done) and sends what the socket takes. Refuses new
    /// bytes while older records are still waiting for the socket.
    fn encrypt(
        &mut self,
        write: impl FnOnce(&mut rustls::Writer<'_>) -> io::Result<usize>,
    ) -> io::Result<usize> {
        self.send_queued()?;
        let n = write(&mut self.tls.writer())?;
        match self.send_queued() {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
        if n == 0 {
            // rustls' buffer is full: only the socket taking bytes helps.
            return Err(io::ErrorKind::WouldBlock.into());
        }
        Ok(n)
    }
}

impl<S: Transport> Transport for TlsStream<S> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut filled = 0;
        loop {
            match self.tls.reader().read(&mut buf[filled..]) {
                Ok(n) if filled + n == buf.len() => return Ok(buf.len()),
                // close_notify received and everything delivered.
                Ok(0) => return Ok(filled),
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                // TCP EOF without close_notify: for a request stream that
                // is just the end (a cut request is not answered anyway).
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(filled),
                Err(e) => return Err(e),
            }
            // Handshake replies, session tickets, key updates.
            match self.send_queued() {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
            match self.tls.read_tls(&mut Socket(&mut self.sock)) {
                // EOF (or close_notify seen): the reader above says which.
                Ok(0) => {}
                Ok(_) => {
                    if let Err(e) = self.tls.process_new_packets() {
                        return Err(self.fail(e));
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    return if filled > 0 { Ok(filled) } else { Err(e) };
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        if bufs.iter().all(|b| b.is_empty()) {
            return Ok(0);
        }
        self.encrypt(|w| w.write_vectored(bufs))
    }

    fn send_file(&mut self, file: &File, offset: u64, len: usize) -> io::Result<usize> {
        if len == 0 {
            return Ok(0);
        }
        // Nothing is read from the file while the socket is still full.
        self.send_queued()?;
        let mut chunk = [0u8; TLS_FILE_CHUNK];
        let want = len.min(TLS_FILE_CHUNK);
        let got = loop {
            match file.read_at(&mut chunk[..want], offset) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                other => break other?,
            }
        };
        if got == 0 {
            // The file shrank: the caller reports it.
            return Ok(0);
        }
        self.encrypt(|w| w.write(&chunk[..got]))
    }

    fn shutdown_write(&mut self) {
        if self.write_side == WriteSide::Open {
            self.tls.send_close_notify();
            self.write_side = WriteSide::Closing;
        }
        let _ = self.send_queued();
    }

    fn flush(&mut self) -> io::Result<()> {
        self.send_queued()
    }

    fn handshaking(&self) -> bool {
        self.tls.is_handshaking() || self.sock.handshaking()
    }

    fn client_addr(&self) -> Option<IpAddr> {
        self.sock.client_addr()
    }
}

/// The inner transport as the `io::Read`/`io::Write` rustls wants.
struct Socket<'a, S>(&'a mut S);

impl<S: Transport> Read for Socket<'_, S> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf)
    }
}

impl<S: Transport> Write for Socket<'_, S> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write_vectored(&[IoSlice::new(buf)])
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        self.0.write_vectored(bufs)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
