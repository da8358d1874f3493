//! The PROXY protocol on the wire: the real binary behind a (simulated)
//! load balancer logs the client address from a v1 or v2 header, over
//! plain HTTP and TLS; a missing, malformed or truncated header and a peer
//! that is not a trusted proxy are closed with a log line.
mod common;
mod tls_support;

use common::child::listening_addr;
use common::*;
use tls_support::*;

use std::io::{Read, Write};
use std::net::{Ipv6Addr, SocketAddr, TcpStream};
use std::sync::mpsc::Receiver;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Waits (bounded) for a line containing `needle`.
fn wait_line(rx: &Receiver<String>, needle: &str) -> String {
    let deadline = Instant::now() + IO_TIMEOUT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) if line.contains(needle) => return line,
            Ok(_) => {}
            Err(_) => panic!("no log line containing {needle:?}"),
        }
    }
}

fn v2_header(command: u8, family: u8, body: &[u8]) -> Vec<u8> {
    let mut h = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    h.push(0x20 | command);
    h.push(family);
    h.extend_from_slice(&(body.len() as u16).to_be_bytes());
    h.extend_from_slice(body);
    h
}

fn v2_tcp6(client: Ipv6Addr, port: u16) -> Vec<u8> {
    let mut body = client.octets().to_vec();
    body.extend_from_slice(&Ipv6Addr::LOCALHOST.octets());
    body.extend_from_slice(&port.to_be_bytes());
    body.extend_from_slice(&80u16.to_be_bytes());
    v2_header(1, 0x21, &body)
}

const GET: &[u8] = b"GET /a.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";

/// Sends `bytes` and reads the whole answer (empty if closed unanswered).
fn exchange(addr: SocketAddr, bytes: &[u8]) -> Vec<u8> {
    let mut s = connect(addr);
    s.write_all(bytes).unwrap();
    let mut got = Vec::new();
    match s.read_to_end(&mut got) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        Err(e) => panic!("{e}"),
    }
    got
}

fn proxied_server(root: &TempDir, extra: &[&str]) -> (ChildServer, Receiver<String>) {
    let mut args = vec!["--proxy-protocol", "--trusted-proxy", "127.0.0.0/8"];
    args.extend_from_slice(extra);
    let mut server = ChildServer::start(root.path(), &args);
    let rx = server.stderr_lines();
    (server, rx)
}

#[test]
fn access_log_shows_the_client_from_v1_and_v2_headers() {
    if !runs_on_reactor_models("access_log_shows_the_client_from_v1_and_v2_headers") {
        return;
    }
    let root = TempDir::new("pp-log");
    root.write("a.txt", "a\n");
    let (server, rx) = proxied_server(&root, &[]);

    let mut v1 = b"PROXY TCP4 203.0.113.7 127.0.0.1 5555 80\r\n".to_vec();
    v1.extend_from_slice(GET);
    assert!(exchange(server.addr, &v1).starts_with(b"HTTP/1.1 200"));
    let line = wait_line(&rx, "GET /a.txt");
    assert!(line.starts_with("203.0.113.7 - - ["), "{line}");

    let mut v2 = v2_tcp6("2001:db8::7".parse().unwrap(), 4000);
    v2.extend_from_slice(GET);
    assert!(exchange(server.addr, &v2).starts_with(b"HTTP/1.1 200"));
    let line = wait_line(&rx, "GET /a.txt");
    assert!(line.starts_with("2001:db8::7 - - ["), "{line}");

    // LOCAL (the balancer's own health check): the socket's address stays.
    let mut local = v2_header(0, 0x00, &[]);
    local.extend_from_slice(GET);
    assert!(exchange(server.addr, &local).starts_with(b"HTTP/1.1 200"));
    let line = wait_line(&rx, "GET /a.txt");
    assert!(line.starts_with("127.0.0.1 - - ["), "{line}");

    // The header arriving byte by byte is still read whole.
    let mut s = connect(server.addr);
    let mut bytes = b"PROXY TCP4 198.51.100.1 127.0.0.1 1 80\r\n".to_vec();
    bytes.extend_from_slice(GET);
    for b in &bytes[..20] {
        s.write_all(&[*b]).unwrap();
        std::thread::sleep(Duration::from_millis(5));
    }
    s.write_all(&bytes[20..]).unwrap();
    let mut got = Vec::new();
    s.read_to_end(&mut got).unwrap();
    assert!(got.starts_with(b"HTTP/1.1 200"));
    let line = wait_line(&rx, "GET /a.txt");
    assert!(line.starts_with("198.51.100.1 - - ["), "{line}");
}

#[test]
fn bad_or_missing_proxy_headers_close_the_connection_with_a_log_line() {
    if !runs_on_reactor_models("bad_or_missing_proxy_headers_close_the_connection_with_a_log_line")
    {
        return;
    }
    let root = TempDir::new("pp-bad");
    root.write("a.txt", "a\n");
    let (server, rx) = proxied_server(
        &root,
        &["--header-timeout", "0.5", "--keepalive-timeout", "600"],
    );
    // (bytes sent, log line expected)
    let mut bad_family = v2_header(1, 0x12, &[0; 12]);
    bad_family.extend_from_slice(GET);
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (GET.to_vec(), "no PROXY protocol header"),
        (
            [&b"PROXY TCP4 1.2.3.4 5.6.7.8 99999 80\r\n"[..], GET].concat(),
            "malformed PROXY v1 line",
        ),
        (
            [&b"PROXY UNKNOWN "[..], &[b'x'; 120][..]].concat(),
            "PROXY v1 line longer than 107 bytes",
        ),
        (bad_family, "PROXY v2 header for a non-TCP transport"),
        (
            [&v2_header(1, 0x11, &[1, 2, 3])[..], GET].concat(),
            "PROXY v2 address block too short",
        ),
    ];
    for (bytes, expect) in cases {
        let got = exchange(server.addr, &bytes);
        assert!(got.is_empty(), "{expect}: answered {got:?}");
        wait_line(&rx, expect);
    }
    // Truncated: part of a v2 header, then silence. The head timeout closes it.
    let mut s = connect(server.addr);
    s.write_all(&v2_tcp6(Ipv6Addr::LOCALHOST, 1)[..20]).unwrap();
    assert!(closed_by_server(&mut s), "truncated header left open");
}

#[test]
fn untrusted_peer_is_closed_with_a_log_line() {
    if !runs_on_reactor_models("untrusted_peer_is_closed_with_a_log_line") {
        return;
    }
    let root = TempDir::new("pp-untrusted");
    root.write("a.txt", "a\n");
    let mut server = ChildServer::start(
        root.path(),
        &["--proxy-protocol", "--trusted-proxy", "10.0.0.0/8"],
    );
    let rx = server.stderr_lines();
    let mut bytes = b"PROXY TCP4 203.0.113.7 127.0.0.1 5555 80\r\n".to_vec();
    bytes.extend_from_slice(GET);
    assert!(exchange(server.addr, &bytes).is_empty());
    let line = wait_line(&rx, "not a trusted proxy");
    assert!(line.contains("127.0.0.1"), "{line}");
}

#[test]
fn proxy_header_in_front_of_tls() {
    if !runs_on_reactor_models("proxy_header_in_front_of_tls") {
        return;
    }
    let fx = TlsFixture::new("pp-tls");
    fx.root.write("a.txt", "a\n");
    let cert = fx.issued.cert.to_str().unwrap().to_owned();
    let key = fx.issued.key.to_str().unwrap().to_owned();
    let (server, rx) = proxied_server(
        &fx.root,
        &[
            "--listen-tls",
            "127.0.0.1:0",
            "--tls-cert",
            &cert,
            "--tls-key",
            &key,
        ],
    );
    let line = wait_line(&rx, "on https://");
    let tls_addr = listening_addr(&line, "https");
    let _ = server.addr;
    let mut tcp = TcpStream::connect(tls_addr).unwrap();
    tcp.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    tcp.write_all(b"PROXY TCP4 192.0.2.99 127.0.0.1 4444 443\r\n")
        .unwrap();
    let config = client_config(&fx.ca, &[b"http/1.1"]);
    let conn = rustls::ClientConnection::new(Arc::clone(&config), "localhost".try_into().unwrap())
        .unwrap();
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    let r = tls_get(&mut tls, "/a.txt");
    assert_eq!((r.status, r.text().as_str()), (200, "a\n"));
    let line = wait_line(&rx, "GET /a.txt");
    assert!(line.starts_with("192.0.2.99 - - ["), "{line}");
}
