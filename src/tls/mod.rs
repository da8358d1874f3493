//! HTTPS: the rustls server configuration, the certificate it presents, and
//! reloading that certificate on SIGHUP without dropping a connection.
//!
//! Crypto provider: `ring`. It builds in seconds from Rust and a little C
//! and assembly through `cc`, with no cmake or nasm (rustls' default,
//! aws-lc-rs, needs both and takes minutes to build); its AES-GCM,
//! ChaCha20-Poly1305, X25519/P-256 and ECDSA/Ed25519/RSA are all a static
//! server needs. Protocols: TLS 1.3 and 1.2 only (rustls implements nothing
//! older), only AEAD suites with forward secrecy (the provider's default
//! list), no renegotiation (rustls has none), ALPN `http/1.1` only.
//!
//! The certificate sits behind a `CertStore` (rustls'
//! `ResolvesServerCert`): every handshake takes the current pair under a
//! read lock, and [`Tls::reload`] swaps in a new pair only after it loaded
//! and checked completely, so a bad pair on disk never replaces a good one
//! and a connection already established keeps its session.
//!
//! [`stream`] is the per-connection transport (a socket plus a rustls
//! session), and splits each handshake so that its expensive step (this
//! file's certificate resolution, the key exchange, the signature) runs on
//! a pool worker, not on the reactor.
//!
//! Runs on: the main thread ([`Tls::load`] at start), the reactor (one
//! [`TlsStream`] per accepted socket), a pool worker (each handshake's
//! `CertStore::resolve`, on the reactor under `reactor-inline`;
//! [`Tls::reload`]).

pub mod redirect;
pub mod stream;

use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;

use crate::conn::Transport;
use stream::TlsStream;

/// The only application protocol we speak (RFC 7301 ALPN id).
const ALPN_HTTP11: &[u8] = b"http/1.1";

/// Where the certificate chain and its key come from (PEM files).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The end-entity certificate first, then the intermediates.
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Why a certificate/key pair cannot be used; shown as one line.
#[derive(Debug)]
pub struct TlsError(String);

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for TlsError {}

/// The server side of TLS, shared by the reactor and the reload job.
pub struct Tls {
    config: Arc<ServerConfig>,
    store: Arc<CertStore>,
}

impl fmt::Debug for Tls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tls")
            .field("files", &self.store.files)
            .finish()
    }
}

impl Tls {
    /// Loads and checks the pair and builds the server configuration.
    pub fn load(files: &TlsFiles) -> Result<Tls, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let key = load_pair(files, &provider, SystemTime::now())?;
        let store = Arc::new(CertStore {
            files: files.clone(),
            provider: Arc::clone(&provider),
            current: RwLock::new(Arc::new(key)),
        });
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| TlsError(format!("TLS configuration: {e}")))?
            .with_no_client_auth()
            .with_cert_resolver(Arc::clone(&store) as Arc<dyn ResolvesServerCert>);
        config.alpn_protocols = vec![ALPN_HTTP11.to_vec()];
        // Stateless resumption: a returning client skips the signature (the
        // expensive part of a handshake) and we keep no per-client state.
        config.ticketer = rustls::crypto::ring::Ticketer::new()
            .map_err(|e| TlsError(format!("TLS session tickets: {e}")))?;
        Ok(Tls {
            config: Arc::new(config),
            store,
        })
    }

    /// The TLS layer over one accepted connection, waiting for its
    /// ClientHello (see [`stream`] for how its handshake is split).
    pub fn accept<S: Transport>(&self, sock: S, peer: IpAddr) -> TlsStream<S> {
        TlsStream::accepting(sock, Arc::clone(&self.config), peer)
    }

    /// Loads the pair again from the same files; on success new handshakes
    /// use it, on failure the current one stays. Logs either way.
    pub fn reload(&self) -> Result<(), TlsError> {
        let files = &self.store.files;
        match load_pair(files, &self.store.provider, SystemTime::now()) {
            Ok(key) => {
                *self
                    .store
                    .current
                    .write()
                    .unwrap_or_else(|poisoned| poisoned.into_inner()) = Arc::new(key);
                log::info!("reloaded the TLS certificate from {}", files.cert.display());
                Ok(())
            }
            Err(e) => {
                log::error!("TLS reload refused, keeping the current certificate: {e}");
                Err(e)
            }
        }
    }
}

/// The certificate every handshake presents; replaced whole on reload.
#[derive(Debug)]
struct CertStore {
    files: TlsFiles,
    provider: Arc<CryptoProvider>,
    current: RwLock<Arc<CertifiedKey>>,
}

impl ResolvesServerCert for CertStore {
    /// Runs inside the handshake's expensive step (`stream::Hello::sign`).
    #[cfg_attr(not(feature = "test-hooks"), allow(unused_variables))]
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        #[cfg(feature = "test-hooks")]
        test_hook::at_resolve(hello.server_name());
        let current = self
            .current
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        Some(Arc::clone(&current))
    }
}

/// Test-only (`--features test-hooks`): holds handshakes in the certificate
/// resolution, where the handshake's expensive step is, so a test can see
/// which thread runs that step and what the server does meanwhile.
#[cfg(feature = "test-hooks")]
pub mod test_hook {
    use std::sync::{Condvar, Mutex, MutexGuard};
    use std::time::{Duration, Instant};

    /// The server name (SNI) of the handshakes a [`Hold`] holds; others go
    /// through untouched.
    pub const HELD_SERVER_NAME: &str = "held-handshake.stoke.test";

    struct State {
        holding: bool,
        /// The names of the threads that entered the hold (in order).
        entered: Vec<String>,
    }

    static STATE: Mutex<State> = Mutex::new(State {
        holding: false,
        entered: Vec::new(),
    });
    static CHANGED: Condvar = Condvar::new();

    fn state() -> MutexGuard<'static, State> {
        STATE.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// While this lives, handshakes for [`HELD_SERVER_NAME`] wait in the
    /// certificate resolution. Dropping it lets them go.
    pub struct Hold(());

    impl Hold {
        pub fn new() -> Hold {
            let mut state = state();
            state.holding = true;
            state.entered.clear();
            Hold(())
        }

        /// The name of the thread holding the next handshake, once one is
        /// held; `None` if none arrives within `timeout`.
        pub fn wait_entered(&self, timeout: Duration) -> Option<String> {
            let deadline = Instant::now() + timeout;
            let mut state = state();
            loop {
                if let Some(name) = state.entered.first() {
                    return Some(name.clone());
                }
                let left = deadline.checked_duration_since(Instant::now())?;
                state = CHANGED
                    .wait_timeout(state, left)
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
            }
        }
    }

    impl Default for Hold {
        fn default() -> Hold {
            Hold::new()
        }
    }

    impl Drop for Hold {
        fn drop(&mut self) {
            state().holding = false;
            CHANGED.notify_all();
        }
    }

    /// Called from `CertStore::resolve`.
    pub(super) fn at_resolve(server_name: Option<&str>) {
        if server_name != Some(HELD_SERVER_NAME) {
            return;
        }
        let mut state = state();
        let thread = std::thread::current();
        let name = thread.name().unwrap_or("<unnamed>").to_owned();
        log::warn!("test hook: TLS handshake held in the certificate resolution on {name}");
        state.entered.push(name);
        CHANGED.notify_all();
        while state.holding {
            state = CHANGED.wait(state).unwrap_or_else(|e| e.into_inner());
        }
    }
}

/// Reads the chain and key, and refuses a pair that could only fail later:
/// no certificate, no key, a key that does not match the certificate, a
/// certificate outside its validity period.
fn load_pair(
    files: &TlsFiles,
    provider: &CryptoProvider,
    now: SystemTime,
) -> Result<CertifiedKey, TlsError> {
    let cert_path = files.cert.display();
    let key_path = files.key.display();
    let chain = CertificateDer::pem_file_iter(&files.cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| {
            TlsError(format!(
                "cannot read certificate {cert_path}: {}",
                pem_error(&e)
            ))
        })?;
    let Some(leaf) = chain.first() else {
        return Err(TlsError(format!(
            "cannot read certificate {cert_path}: no PEM CERTIFICATE in it"
        )));
    };
    check_validity(leaf, now, &files.cert)?;
    let key = PrivateKeyDer::from_pem_file(&files.key)
        .map_err(|e| TlsError(format!("cannot read key {key_path}: {}", pem_error(&e))))?;
    CertifiedKey::from_der(chain, key, provider).map_err(|e| match e {
        rustls::Error::InconsistentKeys(_) => TlsError(format!(
            "the key {key_path} does not match the certificate {cert_path}"
        )),
        e => TlsError(format!("cannot use key {key_path}: {e}")),
    })
}

fn pem_error(e: &rustls::pki_types::pem::Error) -> String {
    use rustls::pki_types::pem::Error;
    match e {
        Error::Io(io) => io.to_string(),
        Error::NoItemsFound => "no PEM item of the expected kind in it".to_owned(),
        other => format!("{other:?}"),
    }
}

fn check_validity(leaf: &CertificateDer<'_>, now: SystemTime, path: &Path) -> Result<(), TlsError> {
    let (not_before, not_after) = validity(leaf).ok_or_else(|| {
        TlsError(format!(
            "cannot read certificate {}: not a well-formed X.509 certificate",
            path.display()
        ))
    })?;
    let now = now
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    if now > not_after {
        return Err(TlsError(format!(
            "the certificate {} expired on {}",
            path.display(),
            format_time(not_after)
        )));
    }
    if now < not_before {
        return Err(TlsError(format!(
            "the certificate {} is not valid before {}",
            path.display(),
            format_time(not_before)
        )));
    }
    Ok(())
}

fn format_time(unix: i64) -> String {
    let t = UNIX_EPOCH + std::time::Duration::from_secs(unix.max(0) as u64);
    httpdate::fmt_http_date(t)
}

/// `(notBefore, notAfter)` of a DER X.509 certificate, in seconds since the
/// Unix epoch. A minimal DER walk (RFC 5280 §4.1): rustls and webpki check
/// validity only when verifying a peer, and a server must refuse to start
/// with an expired certificate instead of failing every handshake.
pub fn validity(der: &[u8]) -> Option<(i64, i64)> {
    let (SEQUENCE, cert, _) = tlv(der)? else {
        return None;
    };
    let (SEQUENCE, tbs, _) = tlv(cert)? else {
        return None;
    };
    let mut rest = tbs;
    // version [0] EXPLICIT, absent for v1 certificates
    if rest.first() == Some(&0xa0) {
        rest = tlv(rest)?.2;
    }
    for _field in ["serialNumber", "signature", "issuer"] {
        rest = tlv(rest)?.2;
    }
    let (SEQUENCE, validity, _) = tlv(rest)? else {
        return None;
    };
    let (tag, not_before, rest) = tlv(validity)?;
    let not_before = asn1_time(tag, not_before)?;
    let (tag, not_after, _) = tlv(rest)?;
    Some((not_before, asn1_time(tag, not_after)?))
}

const SEQUENCE: u8 = 0x30;
const UTC_TIME: u8 = 0x17;
const GENERALIZED_TIME: u8 = 0x18;

/// One DER tag-length-value: `(tag, value, what follows)`.
fn tlv(b: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let tag = *b.first()?;
    let first = *b.get(1)?;
    let (len, header) = if first < 0x80 {
        (first as usize, 2)
    } else {
        let n = (first & 0x7f) as usize;
        // Longer lengths than 4 bytes are not a certificate we can use.
        if n == 0 || n > 4 {
            return None;
        }
        let mut len = 0usize;
        for i in 0..n {
            len = (len << 8) | *b.get(2 + i)? as usize;
        }
        (len, 2 + n)
    };
    let end = header.checked_add(len)?;
    if end > b.len() {
        return None;
    }
    Some((tag, &b[header..end], &b[end..]))
}

/// UTCTime `YYMMDDHHMMSSZ` or GeneralizedTime `YYYYMMDDHHMMSSZ` (the only
/// forms RFC 5280 allows) → seconds since the epoch.
fn asn1_time(tag: u8, s: &[u8]) -> Option<i64> {
    let digits = |r: &[u8]| -> Option<i64> {
        r.iter().try_fold(0i64, |acc, &c| {
            c.is_ascii_digit().then(|| acc * 10 + i64::from(c - b'0'))
        })
    };
    let (year, rest) = match (tag, s.len()) {
        (UTC_TIME, 13) => {
            let yy = digits(&s[..2])?;
            (if yy < 50 { 2000 + yy } else { 1900 + yy }, &s[2..])
        }
        (GENERALIZED_TIME, 15) => (digits(&s[..4])?, &s[4..]),
        _ => return None,
    };
    if rest[10] != b'Z' {
        return None;
    }
    let month = digits(&rest[0..2])?;
    let day = digits(&rest[2..4])?;
    let (h, m, sec) = (
        digits(&rest[4..6])?,
        digits(&rest[6..8])?,
        digits(&rest[8..10])?,
    );
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || h > 23 || m > 59 || sec > 60 {
        return None;
    }
    Some(days_from_civil(year, month, day) * 86_400 + h * 3600 + m * 60 + sec)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
/// `days_from_civil`).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_days() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(days_from_civil(1969, 12, 31), -1);
    }

    #[test]
    fn asn1_times() {
        // 2000-10-10 13:55:36 UTC
        assert_eq!(asn1_time(UTC_TIME, b"001010135536Z"), Some(971_186_136));
        assert_eq!(
            asn1_time(GENERALIZED_TIME, b"20001010135536Z"),
            Some(971_186_136)
        );
        assert_eq!(asn1_time(UTC_TIME, b"491231235959Z"), Some(2_524_607_999));
        assert_eq!(asn1_time(UTC_TIME, b"001010135536+"), None);
        assert_eq!(asn1_time(UTC_TIME, b"0010101355Z"), None);
        assert_eq!(asn1_time(UTC_TIME, b"001310135536Z"), None);
    }

    #[test]
    fn truncated_der_is_refused_not_panicked() {
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let der = cert.cert.der().to_vec();
        assert!(validity(&der).is_some());
        for cut in 0..der.len() {
            let _ = validity(&der[..cut]);
        }
        assert_eq!(validity(&[]), None);
        assert_eq!(validity(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]), None);
    }

    #[test]
    fn validity_of_a_generated_certificate() {
        let mut params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
        params.not_before = rcgen::date_time_ymd(2001, 2, 3);
        params.not_after = rcgen::date_time_ymd(2061, 4, 5);
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        let (nb, na) = validity(cert.der()).unwrap();
        assert_eq!(nb, days_from_civil(2001, 2, 3) * 86_400);
        assert_eq!(na, days_from_civil(2061, 4, 5) * 86_400);
    }
}
