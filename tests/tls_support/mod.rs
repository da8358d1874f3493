//! TLS helpers for the integration tests: a throwaway certificate authority
//! and server certificates made with rcgen, a rustls client that trusts
//! that CA, and a server started with an HTTPS listener.
#![allow(dead_code)]

use std::io::{BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
use rustls::pki_types::{CertificateDer, ServerName};

use crate::common::{model, reactors, read_response, RawResponse, TempDir, IO_TIMEOUT};
use stoke::models::Model;

/// A test CA that can issue server certificates.
pub struct Ca {
    cert: rcgen::Certificate,
    key: KeyPair,
}

/// Files of one issued certificate.
pub struct Issued {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub der: CertificateDer<'static>,
    /// SubjectPublicKeyInfo DER of the key (for Chromium's SPKI allow-list).
    pub spki: Vec<u8>,
}

impl Ca {
    pub fn new() -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "stoke test CA");
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        Ca { cert, key }
    }

    pub fn der(&self) -> CertificateDer<'static> {
        self.cert.der().clone()
    }

    /// Writes the CA certificate as PEM (for curl/openssl `-CAfile`).
    pub fn write_pem(&self, dir: &Path) -> PathBuf {
        let path = dir.join("ca.pem");
        std::fs::write(&path, self.cert.pem()).unwrap();
        path
    }

    /// A certificate for localhost/127.0.0.1 written as `NAME.crt` and
    /// `NAME.key` in `dir`; `adjust` can change validity etc.
    pub fn issue(
        &self,
        dir: &Path,
        name: &str,
        adjust: impl FnOnce(&mut CertificateParams),
    ) -> Issued {
        let mut params =
            CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        adjust(&mut params);
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.cert, &self.key).unwrap();
        let cert_path = dir.join(format!("{name}.crt"));
        let key_path = dir.join(format!("{name}.key"));
        // The chain: the server's certificate, then the CA's (as an
        // intermediate would be).
        std::fs::write(&cert_path, cert.pem() + &self.cert.pem()).unwrap();
        std::fs::write(&key_path, key.serialize_pem()).unwrap();
        Issued {
            cert: cert_path,
            key: key_path,
            der: cert.der().clone(),
            spki: key.public_key_der(),
        }
    }
}

/// A rustls client configuration that trusts `ca` only, offering `alpn`.
pub fn client_config(ca: &Ca, alpn: &[&[u8]]) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.der()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Arc::new(config)
}

pub type TlsClient = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

/// A TLS connection to `addr` (certificate checked for "localhost"),
/// handshake completed.
pub fn tls_connect(addr: SocketAddr, config: &Arc<rustls::ClientConfig>) -> TlsClient {
    tls_connect_to(addr, config, "localhost")
}

/// Like [`tls_connect`], for the server name `name` (sent as SNI, and what
/// the certificate is checked for).
pub fn tls_connect_to(
    addr: SocketAddr,
    config: &Arc<rustls::ClientConfig>,
    name: &str,
) -> TlsClient {
    let tcp = TcpStream::connect(addr).unwrap();
    tcp.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    tcp.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    let name = ServerName::try_from(name.to_owned()).unwrap();
    let conn = rustls::ClientConnection::new(Arc::clone(config), name).unwrap();
    let mut stream = rustls::StreamOwned::new(conn, tcp);
    while stream.conn.is_handshaking() {
        stream.conn.complete_io(&mut stream.sock).unwrap();
    }
    stream
}

/// Sends a keep-alive GET and reads the response on `stream`.
pub fn tls_get(stream: &mut TlsClient, path: &str) -> RawResponse {
    write!(stream, "GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").unwrap();
    stream.flush().unwrap();
    read_one(stream)
}

/// Reads one response off a TLS stream without reading past it.
pub fn read_one(stream: &mut TlsClient) -> RawResponse {
    // A BufReader over a borrowed stream would swallow bytes of a later
    // response; read byte-wise for the head, then exactly the body.
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut b = [0u8; 1];
        stream.read_exact(&mut b).unwrap();
        head.push(b[0]);
    }
    let mut r = BufReader::new(&head[..]);
    let mut response = read_response(&mut r, true).unwrap();
    let len: usize = response
        .header("content-length")
        .map_or(0, |v| v.parse().unwrap());
    let mut body = vec![0; len];
    stream.read_exact(&mut body).unwrap();
    response.body = body;
    response
}

/// A document root plus a CA and a valid certificate for it.
pub struct TlsFixture {
    pub root: TempDir,
    pub certs: TempDir,
    pub ca: Ca,
    pub issued: Issued,
}

impl TlsFixture {
    pub fn new(tag: &str) -> TlsFixture {
        let root = TempDir::new(tag);
        let certs = TempDir::new(&format!("{tag}-certs"));
        let ca = Ca::new();
        let issued = ca.issue(certs.path(), "server", |_| {});
        TlsFixture {
            root,
            certs,
            ca,
            issued,
        }
    }

    pub fn files(&self) -> stoke::config::TlsFiles {
        stoke::config::TlsFiles {
            cert: self.issued.cert.clone(),
            key: self.issued.key.clone(),
        }
    }

    /// A config serving HTTPS only, on 127.0.0.1:0, with the reactor model
    /// and `--reactors` under test (`STOKE_TEST_MODEL`, `STOKE_TEST_REACTORS`;
    /// under a blocking model, which serves no HTTPS, the reactor).
    pub fn config(&self) -> stoke::Config {
        let mut config = stoke::Config::for_root(self.root.path()).unwrap();
        if matches!(model(), Model::Reactor | Model::ReactorInline) {
            config.model = model();
        }
        config.reactors = reactors();
        config.listen = vec![];
        config.listen_tls = vec![SocketAddr::from(([127, 0, 0, 1], 0))];
        config.tls = Some(self.files());
        config
    }
}
