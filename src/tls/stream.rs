//! One TLS connection as a [`Transport`]: a rustls session over another
//! transport (the reactor's mio socket), from the first ClientHello byte.
//!
//! The handshake is split in two, and the expensive half is handed out, so
//! that it runs where it stalls no other connection (issue #11):
//! - reading the ClientHello (rustls' `Acceptor`: buffering and parsing,
//!   cheap) happens here, in `read`;
//! - once it is whole, [`TlsStream::take_hello`] hands it out as a
//!   [`Hello`], and [`Hello::sign`] does what costs: the certificate
//!   resolution, the key exchange and the signature (`Accepted::
//!   into_connection` runs all three: ECDSA P-256 ~0.3 ms, RSA-2048
//!   ~0.9 ms of CPU, against a few µs for a cached request). The reactor
//!   runs it on a pool worker; meanwhile this stream reads nothing;
//! - [`TlsStream::signed`] takes the resulting session back, and the
//!   ServerHello flight it queued goes out on the next `flush`.
//!
//! What follows stays here, being cheap: the client's Finished (a MAC
//! check) in TLS 1.3; in TLS 1.2 the ClientKeyExchange, i.e. the second
//! half of the ECDHE (one X25519/P-256 scalar multiplication, ~0.1 ms, no
//! signature); then the session ticket and the records of the connection.
//! (`Acceptor` over handing the whole `ServerConnection` to a worker for
//! its first `process_new_packets`: the split point is rustls' own API, and
//! nothing that is only parsing leaves the thread.)
//!
//! rustls is sans-IO: it turns ciphertext into plaintext and back in
//! memory, and this wrapper moves bytes between it and the socket. With
//! edge-triggered readiness nothing may be left behind:
//! - `read` fills the caller's buffer from decrypted data and keeps reading
//!   ciphertext until the buffer is full or the socket says `WouldBlock`,
//!   so a short read means drained, as the `Transport` contract requires,
//!   and no plaintext waits inside rustls without a read to come for it.
//!   The one exception is the ClientHello: reading stops when it is whole,
//!   and whoever takes it must call `read` again after `signed` (the
//!   reactor does, as if the socket had become readable);
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
//! Those reads do not wait for the disk on the reactor: the connection asks
//! [`Transport::file_ready`] before each `send_file`, and the reactor's
//! `Stream` answers it for TLS as for `sendfile` (a cold range is warmed by
//! a worker first).
//!
//! Runs on: the reactor thread; [`Hello::sign`] on a pool worker (on the
//! reactor itself under `reactor-inline`).

use std::fs::File;
use std::io::{self, IoSlice, Read, Write};
use std::net::IpAddr;
use std::os::unix::fs::FileExt;
use std::panic::{self, AssertUnwindSafe};
use std::sync::Arc;

use rustls::server::{Accepted, AcceptedAlert, Acceptor};
use rustls::{ServerConfig, ServerConnection};

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

/// Where the session stands: the handshake's steps, in order.
enum Session {
    /// Reading the ClientHello (buffering and parsing only).
    Hello {
        acceptor: Box<Acceptor>,
        config: Arc<ServerConfig>,
    },
    /// The ClientHello is whole; it waits for [`TlsStream::take_hello`].
    /// Nothing more is read until the session comes back.
    HelloRead(Box<Hello>),
    /// Taken: the expensive step runs elsewhere. Nothing is read or written
    /// until [`TlsStream::signed`]; the connection is still held to its
    /// handshake deadline meanwhile.
    Signing,
    /// The session: the rest of the handshake (cheap), then the data.
    Open(Box<ServerConnection>),
    /// The handshake failed (logged, alert sent if the socket took it);
    /// reads report an error, which ends the connection.
    Failed,
}

/// A ClientHello read whole, with the configuration to answer it: the
/// handshake's expensive step, still to run ([`Hello::sign`]) on any thread.
pub struct Hello {
    accepted: Accepted,
    config: Arc<ServerConfig>,
}

impl Hello {
    /// Resolves the certificate, does the key exchange and signs (what
    /// `Accepted::into_connection` does): the CPU-heavy part of a
    /// handshake. Never panics: a panic in there becomes a failed handshake,
    /// so the caller always gets an outcome to hand back.
    pub fn sign(self) -> Signed {
        let Hello { accepted, config } = self;
        let outcome = panic::catch_unwind(AssertUnwindSafe(|| accepted.into_connection(config)));
        Signed(match outcome {
            Ok(Ok(session)) => Outcome::Session(Box::new(session)),
            Ok(Err((e, alert))) => Outcome::Refused(e, alert),
            Err(_) => Outcome::Panicked,
        })
    }
}

/// What [`Hello::sign`] made: give it to [`TlsStream::signed`].
pub struct Signed(Outcome);

enum Outcome {
    /// The server's first flight is queued in it.
    Session(Box<ServerConnection>),
    /// The ClientHello cannot be answered (no common version, cipher or
    /// group...): the alert to send.
    Refused(rustls::Error, AcceptedAlert),
    Panicked,
}

/// A TLS session over the transport `S`.
pub struct TlsStream<S> {
    sock: S,
    session: Session,
    write_side: WriteSide,
    /// For log lines about this connection.
    peer: IpAddr,
}

impl<S: Transport> TlsStream<S> {
    /// A new connection: the ClientHello is still to come.
    pub fn accepting(sock: S, config: Arc<ServerConfig>, peer: IpAddr) -> TlsStream<S> {
        TlsStream {
            sock,
            session: Session::Hello {
                acceptor: Box::default(),
                config,
            },
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
        match &self.session {
            Session::Open(tls) => tls.protocol_version(),
            _ => None,
        }
    }

    /// The ClientHello, if it has just been read whole: the caller must
    /// run [`Hello::sign`] and hand the outcome to [`TlsStream::signed`].
    /// Until then this stream reads nothing.
    /// Boxed as it is kept: a `Hello` is over a kilobyte, and the reactor
    /// asks after every step of every connection.
    pub fn take_hello(&mut self) -> Option<Box<Hello>> {
        if !matches!(self.session, Session::HelloRead(_)) {
            return None;
        }
        match std::mem::replace(&mut self.session, Session::Signing) {
            Session::HelloRead(hello) => Some(hello),
            _ => unreachable!("checked just above"),
        }
    }

    /// The expensive step is done: carry on with the session (its first
    /// flight goes out on the next `flush`), or send the alert and fail.
    /// The caller then reads again (the ClientHello read stopped early).
    pub fn signed(&mut self, signed: Signed) {
        if !matches!(self.session, Session::Signing) {
            // No hello was handed out: nothing to carry on.
            return;
        }
        match signed.0 {
            Outcome::Session(mut tls) => {
                // Records that came right behind the ClientHello (a
                // ChangeCipherSpec, refused early data) are already in the
                // session's buffer, and no new bytes may come to make us
                // look at them: process them now. Cheap: nothing the client
                // sends before our reply costs a signature.
                let processed = tls.process_new_packets();
                self.session = Session::Open(tls);
                if let Err(e) = processed {
                    let _ = self.fail(e);
                    self.session = Session::Failed;
                }
            }
            Outcome::Refused(e, mut alert) => {
                log::info!("{}: TLS handshake failed: {e}", self.peer);
                // Best effort: the connection closes whether it went or not.
                let _ = alert.write_all(&mut Socket(&mut self.sock));
                self.session = Session::Failed;
            }
            Outcome::Panicked => {
                log::error!("{}: TLS handshake panicked; closing", self.peer);
                self.session = Session::Failed;
            }
        }
    }

    /// The `Hello` state's `read`: takes in what the socket has until the
    /// ClientHello is whole. Returns `WouldBlock` (or EOF, or an error):
    /// no request bytes can come before the session exists.
    fn read_hello(&mut self) -> io::Result<usize> {
        let Session::Hello { acceptor, config } = &mut self.session else {
            return Err(io::ErrorKind::WouldBlock.into());
        };
        loop {
            match acceptor.read_tls(&mut Socket(&mut self.sock)) {
                Ok(0) => return Ok(0),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
            match acceptor.accept() {
                Ok(None) => {}
                Ok(Some(accepted)) => {
                    let config = Arc::clone(config);
                    self.session = Session::HelloRead(Box::new(Hello { accepted, config }));
                    return Err(io::ErrorKind::WouldBlock.into());
                }
                Err((e, mut alert)) => {
                    log::info!("{}: TLS handshake failed: {e}", self.peer);
                    let _ = alert.write_all(&mut Socket(&mut self.sock));
                    self.session = Session::Failed;
                    return Err(io::Error::new(io::ErrorKind::InvalidData, e));
                }
            }
        }
    }

    /// Writes queued records until none is left or the socket would block
    /// (`Err(WouldBlock)`), then half-closes if close_notify was queued.
    fn send_queued(&mut self) -> io::Result<()> {
        if let Session::Open(tls) = &mut self.session {
            while tls.wants_write() {
                match tls.write_tls(&mut Socket(&mut self.sock)) {
                    Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                    Ok(_) => {}
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
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
        if self.handshaking() {
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
        let Session::Open(tls) = &mut self.session else {
            // The connection writes only after a request, which only a
            // session can deliver.
            return Err(io::Error::new(
                io::ErrorKind::NotConnected,
                "no TLS session to write to",
            ));
        };
        let n = write(&mut tls.writer())?;
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

    /// The `Open` state's `read`.
    fn read_session(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut filled = 0;
        loop {
            let Session::Open(tls) = &mut self.session else {
                return Err(io::ErrorKind::WouldBlock.into());
            };
            match tls.reader().read(&mut buf[filled..]) {
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
            let Session::Open(tls) = &mut self.session else {
                return Err(io::ErrorKind::WouldBlock.into());
            };
            match tls.read_tls(&mut Socket(&mut self.sock)) {
                // EOF (or close_notify seen): the reader above says which.
                Ok(0) => {}
                Ok(_) => {
                    if let Err(e) = tls.process_new_packets() {
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
}

impl<S: Transport> Transport for TlsStream<S> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.session {
            Session::Open(_) => self.read_session(buf),
            Session::Hello { .. } => self.read_hello(),
            Session::HelloRead(_) | Session::Signing => Err(io::ErrorKind::WouldBlock.into()),
            Session::Failed => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "TLS handshake failed",
            )),
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
            if let Session::Open(tls) = &mut self.session {
                tls.send_close_notify();
            }
            // Without a session there is no close_notify to send: the
            // socket is half-closed at once.
            self.write_side = WriteSide::Closing;
        }
        let _ = self.send_queued();
    }

    fn flush(&mut self) -> io::Result<()> {
        self.send_queued()
    }

    fn handshaking(&self) -> bool {
        let tls = match &self.session {
            Session::Open(tls) => tls.is_handshaking(),
            _ => true,
        };
        tls || self.sock.handshaking()
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

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
    use rustls::{ClientConfig, ClientConnection, RootCertStore};

    /// An in-memory socket: reads what the test put in `input` (then
    /// `WouldBlock`), collects what is written in `output`.
    #[derive(Default)]
    struct Pipe {
        input: Vec<u8>,
        pos: usize,
        output: Vec<u8>,
    }

    impl Transport for Pipe {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let left = &self.input[self.pos..];
            if left.is_empty() {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            let n = left.len().min(buf.len());
            buf[..n].copy_from_slice(&left[..n]);
            self.pos += n;
            Ok(n)
        }

        fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
            let before = self.output.len();
            for b in bufs {
                self.output.extend_from_slice(b);
            }
            Ok(self.output.len() - before)
        }

        fn send_file(&mut self, _: &File, _: u64, _: usize) -> io::Result<usize> {
            unreachable!("no files here")
        }

        fn shutdown_write(&mut self) {}
    }

    fn configs() -> (Arc<ServerConfig>, Arc<ClientConfig>) {
        let made = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(made.key_pair.serialize_der()));
        let server = ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![made.cert.der().clone()], key)
            .unwrap();
        let mut roots = RootCertStore::empty();
        roots.add(made.cert.der().clone()).unwrap();
        let client = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        (Arc::new(server), Arc::new(client))
    }

    fn would_block<T: std::fmt::Debug>(r: io::Result<T>) -> bool {
        matches!(r, Err(e) if e.kind() == io::ErrorKind::WouldBlock)
    }

    /// The ClientHello, however the socket splits it, is handed out once,
    /// when whole; nothing is read while it is out; the session signed on
    /// another thread takes over, and the handshake and a request complete.
    #[test]
    fn client_hello_split_anywhere_is_handed_out_once_whole_then_the_session_carries_on() {
        let (server_config, client_config) = configs();
        for step in [1, 5, 97, usize::MAX] {
            let name = ServerName::try_from("localhost").unwrap();
            let mut client = ClientConnection::new(Arc::clone(&client_config), name).unwrap();
            let mut hello = Vec::new();
            client.write_tls(&mut hello).unwrap();
            let mut s = TlsStream::accepting(
                Pipe::default(),
                Arc::clone(&server_config),
                IpAddr::from([127, 0, 0, 1]),
            );
            let mut buf = [0u8; 64];
            let mut taken = None;
            for chunk in hello.chunks(step.min(hello.len())) {
                assert!(taken.is_none(), "handed out before the last byte");
                s.sock.input.extend_from_slice(chunk);
                assert!(would_block(s.read(&mut buf)));
                assert!(s.handshaking());
                taken = s.take_hello();
            }
            let taken = taken.expect("a whole ClientHello was not handed out");
            assert!(s.take_hello().is_none(), "handed out twice");
            // Signing: nothing is read, even with bytes waiting.
            s.sock.input.push(0x16);
            assert!(would_block(s.read(&mut buf)));
            s.sock.input.pop();
            let signed = std::thread::spawn(move || taken.sign()).join().unwrap();
            s.signed(signed);
            s.flush().unwrap();
            // The server's flight reaches the client; its Finished comes back.
            client.read_tls(&mut &s.sock.output[..]).unwrap();
            client.process_new_packets().unwrap();
            s.sock.output.clear();
            client
                .writer()
                .write_all(b"GET / HTTP/1.1\r\n\r\n")
                .unwrap();
            let mut reply = Vec::new();
            while client.wants_write() {
                client.write_tls(&mut reply).unwrap();
            }
            s.sock.input.extend_from_slice(&reply);
            let n = s.read(&mut buf).unwrap();
            assert_eq!(&buf[..n], b"GET / HTTP/1.1\r\n\r\n");
            assert!(!s.handshaking());
        }
    }

    /// Bytes that are no ClientHello: an alert goes out, reads fail.
    #[test]
    fn plain_http_instead_of_a_client_hello_gets_an_alert_and_an_error() {
        let (server_config, _) = configs();
        let mut s =
            TlsStream::accepting(Pipe::default(), server_config, IpAddr::from([127, 0, 0, 1]));
        s.sock
            .input
            .extend_from_slice(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
        let mut buf = [0u8; 64];
        let e = s.read(&mut buf).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        assert!(s.take_hello().is_none());
        assert_eq!(s.sock.output.first(), Some(&0x15), "no alert record");
        assert!(s.read(&mut buf).is_err(), "a failed stream read on");
    }
}
