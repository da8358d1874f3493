//! HTTPS with real clients: curl and openssl s_client trusting a test CA
//! made here, a rustls client for keep-alive, pipelining and slow reading;
//! protocol refusals (TLS 1.1, no common cipher, plain HTTP on the TLS
//! port, a stalled handshake); certificate problems at start; reload on
//! SIGHUP; the HTTP→HTTPS redirect listener.
mod common;
mod tls_support;

use common::child::{listening_addr, Proc};
use common::*;
use tls_support::*;

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use stoke::server::StartError;
use stoke::Server;

fn run(program: &str, args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(program)
        .args(args)
        .env_remove("https_proxy")
        .env_remove("HTTPS_PROXY")
        .env_remove("all_proxy")
        .env_remove("ALL_PROXY")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("run {program}: {e}"));
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    child.wait_with_output().unwrap()
}

/// `openssl s_client` against `addr` with extra `args`; sends `request`.
fn s_client(
    addr: SocketAddr,
    ca: &std::path::Path,
    args: &[&str],
    request: &str,
) -> (bool, String) {
    let connect = addr.to_string();
    let mut all = vec![
        "s_client",
        "-connect",
        &connect,
        "-servername",
        "localhost",
        "-CAfile",
        ca.to_str().unwrap(),
        "-verify_return_error",
        "-ign_eof",
    ];
    all.extend_from_slice(args);
    let out = run("openssl", &all, request.as_bytes());
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn curl_downloads_over_https_trusting_the_test_ca() {
    if !available("curl") {
        return;
    }
    let fx = TlsFixture::new("tls-curl");
    let big = pattern(3 * 1024 * 1024 + 17, 5);
    fx.root.write("big.bin", &big);
    fx.root
        .write("index.html", "<!doctype html><title>hi</title>\n");
    let server = TestServer::with_config(fx.config());
    let ca = fx.ca.write_pem(fx.certs.path());
    let out_dir = TempDir::new("tls-curl-out");
    let dest = out_dir.path().join("big");
    let url = format!("https://127.0.0.1:{}/big.bin", server.addr.port());
    let small = format!("https://127.0.0.1:{}/index.html", server.addr.port());
    // Two URLs on one command line: curl reuses the connection.
    let out = run(
        "curl",
        &[
            "-sS",
            "--fail",
            "--cacert",
            ca.to_str().unwrap(),
            "-w",
            "%{http_version} %{num_connects}\\n",
            "-o",
            dest.to_str().unwrap(),
            &url,
            "-o",
            "/dev/null",
            &small,
        ],
        b"",
    );
    assert!(
        out.status.success(),
        "curl failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(std::fs::read(&dest).unwrap() == big, "big.bin bytes differ");
    // ALPN chose HTTP/1.1; the second transfer made no new connection.
    assert_eq!(String::from_utf8_lossy(&out.stdout), "1.1 1\n1.1 0\n");
    let summary = server.stop();
    assert_eq!((summary.connections, summary.requests), (1, 2));
}

#[test]
fn one_process_serves_plain_and_tls() {
    let fx = TlsFixture::new("tls-both");
    fx.root.write("a.txt", "same bytes\n");
    let mut config = fx.config();
    config.listen = vec![SocketAddr::from(([127, 0, 0, 1], 0))];
    let server = Server::bind(config).unwrap();
    let addrs = server.local_addrs().to_vec();
    let handle = server.handle();
    let thread = std::thread::spawn(move || server.run());
    let plain = get(addrs[0], "/a.txt", &[]);
    assert_eq!((plain.status, plain.text().as_str()), (200, "same bytes\n"));
    let mut tls = tls_connect(addrs[1], &client_config(&fx.ca, &[b"http/1.1"]));
    assert_eq!(tls.conn.alpn_protocol(), Some(&b"http/1.1"[..]));
    let r = tls_get(&mut tls, "/a.txt");
    assert_eq!((r.status, r.text().as_str()), (200, "same bytes\n"));
    drop(tls);
    handle.shutdown();
    thread.join().unwrap().unwrap();
}

#[test]
fn openssl_negotiates_tls12_and_tls13_with_alpn_http11() {
    if !available("openssl") {
        return;
    }
    let fx = TlsFixture::new("tls-sclient");
    fx.root.write("index.html", "hello tls\n");
    let server = TestServer::with_config(fx.config());
    let ca = fx.ca.write_pem(fx.certs.path());
    let request = "GET /index.html HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
    for (flag, version) in [("-tls1_2", "TLSv1.2"), ("-tls1_3", "TLSv1.3")] {
        let (ok, text) = s_client(server.addr, &ca, &[flag, "-alpn", "http/1.1"], request);
        assert!(ok, "{flag}: {text}");
        assert!(
            text.contains(&format!("Protocol  : {version}"))
                || text.contains(&format!("New, {version}")),
            "{flag}: {text}"
        );
        assert!(text.contains("ALPN protocol: http/1.1"), "{flag}: {text}");
        assert!(
            text.contains("Verify return code: 0 (ok)"),
            "{flag}: {text}"
        );
        assert!(text.contains("HTTP/1.1 200 OK"), "{flag}: {text}");
        assert!(text.contains("hello tls"), "{flag}: {text}");
    }
}

#[test]
fn tls11_only_client_is_refused() {
    if !available("openssl") {
        return;
    }
    let fx = TlsFixture::new("tls-old");
    let server = TestServer::with_config(fx.config());
    let ca = fx.ca.write_pem(fx.certs.path());
    // SECLEVEL=0 lets OpenSSL 3 offer TLS 1.1 at all; the refusal must be ours.
    let (ok, text) = s_client(
        server.addr,
        &ca,
        &["-tls1_1", "-cipher", "DEFAULT:@SECLEVEL=0"],
        "",
    );
    assert!(!ok, "TLS 1.1 handshake succeeded: {text}");
    // rustls answers a ClientHello without a version it speaks with a
    // fatal alert; nothing was negotiated.
    assert!(
        text.contains("alert handshake failure") || text.contains("alert protocol version"),
        "{text}"
    );
    assert!(text.contains("Cipher is (NONE)"), "{text}");
    // The server is fine afterwards.
    let mut tls = tls_connect(server.addr, &client_config(&fx.ca, &[]));
    assert_eq!(tls_get(&mut tls, "/").status, 403);
}

#[test]
fn client_with_no_common_cipher_is_refused() {
    if !available("openssl") {
        return;
    }
    let fx = TlsFixture::new("tls-cipher");
    let server = TestServer::with_config(fx.config());
    let ca = fx.ca.write_pem(fx.certs.path());
    // Static-RSA key exchange and CBC: nothing a modern server offers.
    let (ok, text) = s_client(server.addr, &ca, &["-tls1_2", "-cipher", "AES128-SHA"], "");
    assert!(!ok, "handshake with AES128-SHA succeeded: {text}");
    assert!(text.contains("alert handshake failure"), "{text}");
}

#[test]
fn client_offering_only_h2_gets_no_application_protocol() {
    let fx = TlsFixture::new("tls-alpn");
    let server = TestServer::with_config(fx.config());
    let tcp = connect(server.addr);
    let config = client_config(&fx.ca, &[b"h2"]);
    let conn = rustls::ClientConnection::new(config, "localhost".try_into().unwrap()).unwrap();
    let mut stream = rustls::StreamOwned::new(conn, tcp);
    let mut err = None;
    while stream.conn.is_handshaking() {
        if let Err(e) = stream.conn.complete_io(&mut stream.sock) {
            err = Some(e.to_string());
            break;
        }
    }
    let err = err.expect("handshake must fail");
    assert!(err.contains("NoApplicationProtocol"), "{err}");
}

#[test]
fn plain_http_on_the_tls_port_gets_an_alert_and_is_closed() {
    let fx = TlsFixture::new("tls-plain");
    let server = TestServer::with_config(fx.config());
    let mut s = server.connect();
    s.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => panic!("not closed: {e}"),
        }
    }
    // Nothing but (at most) a TLS alert record: content type 21.
    assert!(got.is_empty() || got[0] == 0x15, "{got:02x?}");
    assert!(!got.windows(4).any(|w| w == b"HTTP"), "{got:02x?}");
}

#[test]
fn stalled_handshake_is_closed_by_the_head_timeout() {
    let fx = TlsFixture::new("tls-stall");
    let mut config = fx.config();
    config.header_timeout = Duration::from_millis(500);
    // Far beyond the socket's read timeout: only the head timeout can
    // close the connection in time.
    config.keepalive_timeout = Duration::from_secs(600);
    let server = TestServer::with_config(config);
    // The first bytes of a ClientHello record, then nothing.
    let mut s = server.connect();
    s.write_all(&[0x16, 0x03, 0x01, 0x01, 0x00, 0x01, 0x00])
        .unwrap();
    assert!(closed_by_server(&mut s), "stalled handshake still open");
    // Garbage that looks like a handshake record is refused at once.
    let mut s = server.connect();
    let mut junk = vec![0x16, 0x03, 0x03, 0x00, 0x40];
    junk.extend(pattern(64, 9));
    s.write_all(&junk).unwrap();
    assert!(closed_by_server(&mut s), "garbage handshake still open");
    // A connection that sent nothing at all is bounded the same way.
    let mut s = server.connect();
    assert!(closed_by_server(&mut s), "silent connection still open");
}

#[test]
fn pipelined_requests_over_tls_all_get_answers() {
    // More request bytes than one read buffer: rustls holds decrypted
    // bytes the connection has not asked for yet, which must still be
    // delivered without a new readable event.
    let fx = TlsFixture::new("tls-pipeline");
    fx.root.write("p.txt", "p\n");
    let server = TestServer::with_config(fx.config());
    let mut tls = tls_connect(server.addr, &client_config(&fx.ca, &[b"http/1.1"]));
    let pad = "x".repeat(300);
    let count = 200;
    let mut batch = String::new();
    for i in 0..count {
        batch.push_str(&format!(
            "GET /p.txt?{i} HTTP/1.1\r\nHost: localhost\r\nX-Pad: {pad}\r\n\r\n"
        ));
    }
    assert!(batch.len() > 32 * 1024);
    tls.write_all(batch.as_bytes()).unwrap();
    tls.flush().unwrap();
    for i in 0..count {
        let r = read_one(&mut tls);
        assert_eq!((r.status, r.text().as_str()), (200, "p\n"), "response {i}");
    }
}

#[test]
fn slow_reader_gets_every_byte_of_a_large_file_over_tls() {
    // The client stops reading: records pile up until the socket is full
    // and rustls holds the rest; each writable event must send them on.
    let fx = TlsFixture::new("tls-slow");
    let body = pattern(6 * 1024 * 1024 + 5, 77);
    fx.root.write("big.bin", &body);
    fx.root.write("small.txt", "after\n");
    let server = TestServer::with_config(fx.config());
    let mut tls = tls_connect(server.addr, &client_config(&fx.ca, &[]));
    tls.sock.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    write!(
        tls,
        "GET /big.bin HTTP/1.1\r\nHost: localhost\r\n\r\nGET /small.txt HTTP/1.1\r\nHost: localhost\r\n\r\n"
    )
    .unwrap();
    tls.flush().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let r = read_one(&mut tls);
    assert_eq!(r.status, 200);
    assert!(r.body == body, "large body differs");
    let r = read_one(&mut tls);
    assert_eq!((r.status, r.text().as_str()), (200, "after\n"));
}

#[test]
fn https_redirect_listener_answers_308_to_the_tls_port() {
    let fx = TlsFixture::new("tls-redirect");
    let mut config = fx.config();
    config.redirect_http = vec![SocketAddr::from(([127, 0, 0, 1], 0))];
    let server = Server::bind(config).unwrap();
    let addrs = server.local_addrs().to_vec();
    let (tls_addr, redirect_addr) = (addrs[0], addrs[1]);
    let handle = server.handle();
    let thread = std::thread::spawn(move || server.run());
    let r = roundtrip(
        redirect_addr,
        "GET /docs/a%20b.txt?x=1 HTTP/1.1\r\nHost: example.test:8080\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(r.status, 308);
    assert_eq!(
        r.header("location"),
        Some(
            format!(
                "https://example.test:{}/docs/a%20b.txt?x=1",
                tls_addr.port()
            )
            .as_str()
        )
    );
    let r = roundtrip(
        redirect_addr,
        "GET / HTTP/1.1\r\nHost: bad host\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(r.status, 400);
    handle.shutdown();
    thread.join().unwrap().unwrap();
}

/// Server::bind with these files fails with a one-line TLS error.
fn start_error(fx: &TlsFixture, cert: &std::path::Path, key: &std::path::Path) -> String {
    let mut config = fx.config();
    config.tls = Some(stoke::config::TlsFiles {
        cert: cert.to_owned(),
        key: key.to_owned(),
    });
    match Server::bind(config) {
        Err(e @ StartError::Tls(_)) => {
            let line = e.to_string();
            assert!(!line.contains('\n'), "{line}");
            line
        }
        Err(e) => panic!("wrong error: {e}"),
        Ok(_) => panic!("started with {cert:?} / {key:?}"),
    }
}

#[test]
fn bad_certificates_are_refused_at_start_with_one_line() {
    let fx = TlsFixture::new("tls-bad");
    let dir = fx.certs.path();
    let other = fx.ca.issue(dir, "other", |_| {});
    let expired = fx.ca.issue(dir, "expired", |p| {
        p.not_before = rcgen::date_time_ymd(2001, 1, 1);
        p.not_after = rcgen::date_time_ymd(2002, 1, 1);
    });
    let future = fx.ca.issue(dir, "future", |p| {
        p.not_before = rcgen::date_time_ymd(2400, 1, 1);
        p.not_after = rcgen::date_time_ymd(2401, 1, 1);
    });
    let empty = dir.join("empty.pem");
    std::fs::write(&empty, "").unwrap();
    let missing = dir.join("missing.pem");
    let (cert, key) = (&fx.issued.cert, &fx.issued.key);
    for (c, k, expect) in [
        (&missing, key, "cannot read certificate"),
        (cert, &missing, "cannot read key"),
        (&dir.to_path_buf(), key, "cannot read certificate"),
        (&empty, key, "cannot read certificate"),
        (cert, &empty, "cannot read key"),
        (key, key, "cannot read certificate"),
        (cert, cert, "cannot read key"),
        (cert, &other.key, "does not match the certificate"),
        (&expired.cert, &expired.key, "expired on"),
        (&future.cert, &future.key, "not valid before"),
    ] {
        let line = start_error(&fx, c, k);
        assert!(line.contains(expect), "{c:?} {k:?}: {line}");
    }
}

#[test]
fn binary_exits_nonzero_with_one_line_for_an_expired_certificate() {
    let fx = TlsFixture::new("tls-bin-expired");
    let expired = fx.ca.issue(fx.certs.path(), "expired", |p| {
        p.not_before = rcgen::date_time_ymd(2001, 1, 1);
        p.not_after = rcgen::date_time_ymd(2002, 1, 1);
    });
    let out = Command::new(env!("CARGO_BIN_EXE_stoke"))
        .arg(fx.root.path())
        .args(["--listen-tls", "127.0.0.1:0", "--tls-cert"])
        .arg(&expired.cert)
        .arg("--tls-key")
        .arg(&expired.key)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("stoke: the certificate ") && err.contains("expired on"),
        "{err}"
    );
}

#[test]
fn sighup_reloads_the_certificate_without_dropping_connections() {
    let fx = TlsFixture::new("tls-reload");
    fx.root.write("a.txt", "a\n");
    // The server reads its pair from these two paths; the test swaps files.
    let cert = fx.certs.path().join("live.crt");
    let key = fx.certs.path().join("live.key");
    std::fs::copy(&fx.issued.cert, &cert).unwrap();
    std::fs::copy(&fx.issued.key, &key).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_stoke"));
    cmd.arg(fx.root.path())
        .args(["--listen-tls", "127.0.0.1:0", "--tls-cert"])
        .arg(&cert)
        .arg("--tls-key")
        .arg(&key)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null());
    let mut child = Proc::spawn(cmd);
    let line = child.wait("on https://");
    let addr = listening_addr(&line, "https");
    // A fresh client configuration per connection: a resumed session
    // would not show the server's current certificate.
    let connect = || tls_connect(addr, &client_config(&fx.ca, &[b"http/1.1"]));
    let mut old = connect();
    assert_eq!(tls_get(&mut old, "/a.txt").status, 200);
    let presented = |c: &TlsClient| c.conn.peer_certificates().unwrap()[0].clone();
    assert_eq!(presented(&old), fx.issued.der);

    // A new pair: new handshakes present it; the open connection goes on.
    let next = fx.ca.issue(fx.certs.path(), "next", |_| {});
    std::fs::copy(&next.cert, &cert).unwrap();
    std::fs::copy(&next.key, &key).unwrap();
    child.signal("-HUP");
    child.wait("reloaded the TLS certificate");
    let mut fresh = connect();
    assert_eq!(presented(&fresh), next.der);
    assert_eq!(tls_get(&mut fresh, "/a.txt").status, 200);
    assert_eq!(tls_get(&mut old, "/a.txt").status, 200);

    // A bad pair (key of another certificate) is refused; the last good one stays.
    let stray = fx.ca.issue(fx.certs.path(), "stray", |_| {});
    std::fs::copy(&stray.key, &key).unwrap();
    child.signal("-HUP");
    let line = child.wait("TLS reload refused");
    assert!(line.contains("does not match"), "{line}");
    let mut third = connect();
    assert_eq!(presented(&third), next.der);
    assert_eq!(tls_get(&mut third, "/a.txt").status, 200);
    assert_eq!(tls_get(&mut old, "/a.txt").status, 200);
}

/// A server with a plain listener (`addrs[0]`) and a TLS one (`addrs[1]`)
/// on one event loop with two workers, presenting a certificate that also
/// names the test hook's held server name; and `a.txt` to fetch.
#[cfg(feature = "test-hooks")]
fn start_for_held_handshakes(
    fx: &TlsFixture,
    adjust: impl FnOnce(&mut stoke::Config),
) -> (
    Vec<SocketAddr>,
    stoke::server::Handle,
    std::thread::JoinHandle<()>,
) {
    use stoke::tls::test_hook::HELD_SERVER_NAME;
    fx.root.write("a.txt", "a\n");
    let issued = fx.ca.issue(fx.certs.path(), "held", |p| {
        p.subject_alt_names.push(rcgen::SanType::DnsName(
            HELD_SERVER_NAME.try_into().unwrap(),
        ));
    });
    let mut config = fx.config();
    config.tls = Some(stoke::config::TlsFiles {
        cert: issued.cert,
        key: issued.key,
    });
    config.listen = vec![SocketAddr::from(([127, 0, 0, 1], 0))];
    // The model with a pool (`reactor-inline` signs on its loop by design).
    // One loop: the plain request must be served by the loop that holds
    // the TLS connection. Two workers: one may be held in the handshake,
    // the other answers the plain request.
    config.model = stoke::models::Model::Reactor;
    config.reactors = 1;
    config.threads = 2;
    adjust(&mut config);
    let server = Server::bind(config).unwrap();
    let addrs = server.local_addrs().to_vec();
    let handle = server.handle();
    let thread = std::thread::spawn(move || {
        server.run().unwrap();
    });
    (addrs, handle, thread)
}

/// Regression (issue #11: every TLS handshake's expensive step, the key
/// exchange and the certificate signature, ran on the reactor, stalling
/// every other connection of that loop meanwhile): a handshake held inside
/// the certificate resolution (the test hook) holds a pool worker, not the
/// event loop, so a plain request to the same loop is answered meanwhile;
/// once released, the held handshake completes and is served too.
#[cfg(feature = "test-hooks")]
#[test]
fn tls_handshake_does_not_stall_the_reactor() {
    use std::io::BufReader;
    use stoke::tls::test_hook::{Hold, HELD_SERVER_NAME};
    let fx = TlsFixture::new("tls-nostall");
    let (addrs, handle, thread) = start_for_held_handshakes(&fx, |_| {});
    let hold = Hold::new();
    let config = client_config(&fx.ca, &[b"http/1.1"]);
    let tls_addr = addrs[1];
    let client = std::thread::spawn(move || {
        let mut tls = tls_connect_to(tls_addr, &config, HELD_SERVER_NAME);
        let r = tls_get(&mut tls, "/a.txt");
        (r.status, r.text())
    });
    let held_on = hold
        .wait_entered(IO_TIMEOUT)
        .expect("the handshake never reached the certificate resolution");

    // The handshake is held now. A plain request to the same loop:
    let mut s = connect(addrs[0]);
    s.write_all(b"GET /a.txt HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .unwrap();
    let plain = read_response(&mut BufReader::new(s), false);
    let plain = plain.unwrap_or_else(|e| {
        panic!(
            "plain request not answered while a TLS handshake was held ({e}): the loop is stalled"
        )
    });
    assert_eq!((plain.status, plain.text().as_str()), (200, "a\n"));
    assert!(
        held_on.starts_with("stoke-worker-"),
        "the handshake's signing step ran on {held_on:?}, not on a pool worker"
    );

    drop(hold);
    let (status, body) = client.join().unwrap();
    assert_eq!((status, body.as_str()), (200, "a\n"));
    handle.shutdown();
    thread.join().unwrap();
}

/// A handshake held in its expensive step past the handshake deadline: the
/// connection is closed on time (the deadline still runs while a worker
/// has its ClientHello), the late result is dropped, and the signing slot
/// it held comes back (later handshakes are not left waiting for it).
#[cfg(feature = "test-hooks")]
#[test]
fn handshake_held_past_its_deadline_is_closed_and_its_late_result_dropped() {
    use stoke::tls::test_hook::{Hold, HELD_SERVER_NAME};
    let fx = TlsFixture::new("tls-held-late");
    let (addrs, handle, thread) = start_for_held_handshakes(&fx, |c| {
        c.header_timeout = Duration::from_millis(300);
        // One worker: the held handshake takes the only signing slot.
        c.threads = 1;
    });
    let hold = Hold::new();
    let config = client_config(&fx.ca, &[b"http/1.1"]);
    let tcp = connect(addrs[1]);
    let name = rustls::pki_types::ServerName::try_from(HELD_SERVER_NAME).unwrap();
    let mut conn = rustls::ClientConnection::new(std::sync::Arc::clone(&config), name).unwrap();
    let mut tcp = tcp;
    conn.write_tls(&mut tcp).unwrap();
    hold.wait_entered(IO_TIMEOUT)
        .expect("the handshake never reached the certificate resolution");
    assert!(
        closed_by_server(&mut tcp),
        "a handshake held past the head timeout was not closed"
    );
    drop(hold);
    // The slot is back: a new handshake completes and is served.
    let mut tls = tls_connect(addrs[1], &config);
    let r = tls_get(&mut tls, "/a.txt");
    assert_eq!((r.status, r.text().as_str()), (200, "a\n"));
    handle.shutdown();
    thread.join().unwrap();
}

/// TLS reads file bodies with `pread` on the reactor (no `sendfile` under
/// TLS); they must not wait for the disk either. Pages evicted from the
/// page cache mid-download are warmed by a worker before the reactor reads
/// them (`Transport::file_ready` is asked before every chunk, TLS or not).
#[test]
fn tls_file_reads_of_evicted_pages_are_warmed_off_the_reactor() {
    use stoke::sys::page_cache::{self, Residency};
    const MIB: usize = 1024 * 1024;
    let fx = TlsFixture::new("tls-cold");
    let body = pattern(16 * MIB, 21);
    let path = fx.root.write("cold.bin", &body);
    std::fs::File::open(&path).unwrap().sync_all().unwrap();
    let file = std::fs::File::open(&path).unwrap();
    let server = TestServer::with_config(fx.config());
    let mut tls = tls_connect(server.addr, &client_config(&fx.ca, &[]));
    write!(tls, "GET /cold.bin HTTP/1.1\r\nHost: localhost\r\n\r\n").unwrap();
    tls.flush().unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut b = [0u8; 1];
        tls.read_exact(&mut b).unwrap();
        head.push(b[0]);
    }
    assert!(head.starts_with(b"HTTP/1.1 200 "), "{head:?}");
    // Take the first MiB (the rest is unsent: socket buffers and rustls'
    // queue hold far less than 15 MiB), then drop the file's pages.
    let mut got = vec![0u8; body.len()];
    tls.read_exact(&mut got[..MIB]).unwrap();
    let warmups = server.file_warmups();
    let cold = page_cache::evict(&file)
        && page_cache::probe(&file, 12 * MIB as u64) == Residency::NotCached;
    tls.read_exact(&mut got[MIB..]).unwrap();
    assert!(got == body, "the body differs from the file");
    if cold {
        assert!(
            server.file_warmups() > warmups,
            "evicted pages were read on the reactor"
        );
    } else {
        println!("SKIPPED the warm-up check: cannot evict pages here (tmpfs?)");
    }
}
