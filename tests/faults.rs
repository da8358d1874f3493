//! Faults from the outside world: clients that reset in the middle of a
//! `sendfile`, clients that half-close, files truncated or replaced while
//! they are being sent, a panic inside a worker, a file the (unprivileged)
//! server may not read, and a `--user` that does not exist. In each case the
//! server answers what it can, closes what it must, never hangs, never dies,
//! and leaves no connection behind.
mod common;
use common::*;

use std::fs;
use std::io::{BufReader, Read, Write};
use std::net::Shutdown;
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const MIB: usize = 1024 * 1024;

/// Polls until the server holds no connection (up to 10 s).
fn wait_for_no_connections(server: &TestServer) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while server.open_connections() != 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(server.open_connections(), 0, "connections left open");
}

/// Reads the head of a response, leaving the body in the reader.
fn read_head(r: &mut BufReader<std::net::TcpStream>) -> (u16, usize) {
    use std::io::BufRead;
    let mut status = 0;
    let mut len = 0;
    loop {
        let mut line = String::new();
        assert!(r.read_line(&mut line).unwrap() > 0, "EOF in head");
        if line == "\r\n" {
            return (status, len);
        }
        if status == 0 {
            status = line.split(' ').nth(1).unwrap().parse().unwrap();
        } else if let Some((n, v)) = line.split_once(':') {
            if n.eq_ignore_ascii_case("content-length") {
                len = v.trim().parse().unwrap();
            }
        }
    }
}

/// Reads until EOF (or reset); the bytes read.
fn read_to_close(r: &mut impl Read) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        match r.read(&mut buf) {
            Ok(0) => return got,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return got,
            Err(e) => panic!("no EOF after {} bytes: {e}", got.len()),
        }
    }
}

#[test]
fn clients_resetting_mid_sendfile_leave_nothing_behind() {
    let root = TempDir::new("reset");
    root.write("big.bin", pattern(8 * MIB, 1));
    root.write("ok.txt", "ok");
    let server = TestServer::start(root.path());
    for round in 0..20 {
        let mut s = server.connect();
        s.write_all(b"GET /big.bin HTTP/1.1\r\nHost: t\r\n\r\n")
            .unwrap();
        let mut some = vec![0u8; 64 * 1024];
        s.read_exact(&mut some).unwrap();
        assert!(some.starts_with(b"HTTP/1.1 200"), "round {round}");
        // Unread data in our receive buffer: closing sends a reset.
        let _ = s.shutdown(Shutdown::Both);
        drop(s);
    }
    wait_for_no_connections(&server);
    let r = get(server.addr, "/ok.txt", &[]);
    assert_eq!((r.status, r.text().as_str()), (200, "ok"));
    let summary = server.stop();
    assert_eq!(summary.cut_off, 0);
}

#[test]
fn half_closed_client_still_gets_whole_responses() {
    let root = TempDir::new("halfclosed");
    let big = pattern(2 * MIB, 2);
    root.write("big.bin", &big);
    root.write("ok.txt", "ok");
    let server = TestServer::start(root.path());
    // (pipelined requests, expected bodies)
    let table: &[(&[u8], &[&[u8]])] = &[
        (b"GET /big.bin HTTP/1.1\r\nHost: t\r\n\r\n", &[&big]),
        (
            b"GET /ok.txt HTTP/1.1\r\nHost: t\r\n\r\nGET /big.bin HTTP/1.1\r\nHost: t\r\n\r\n",
            &[b"ok", &big],
        ),
        (b"GET /big.bin HTTP/1.0\r\n\r\n", &[&big]),
    ];
    for &(request, bodies) in table {
        let mut s = server.connect();
        s.write_all(request).unwrap();
        s.shutdown(Shutdown::Write).unwrap();
        let mut r = BufReader::new(s);
        for (i, &body) in bodies.iter().enumerate() {
            let resp = read_response(&mut r, false).unwrap();
            assert_eq!(resp.status, 200, "response {i}");
            assert!(resp.body == body, "response {i}: body differs");
        }
        assert!(closed_by_server(&mut r), "no EOF after the client's EOF");
    }
    wait_for_no_connections(&server);
}

#[test]
fn file_truncated_while_being_sent_closes_the_connection() {
    let root = TempDir::new("truncate");
    let original = pattern(64 * MIB, 3);
    let path = root.write("big.bin", &original);
    let server = TestServer::start(root.path());

    let mut s = server.connect();
    s.write_all(b"GET /big.bin HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    let mut r = BufReader::new(s);
    let (status, len) = read_head(&mut r);
    assert_eq!((status, len), (200, 64 * MIB));
    let mut first = vec![0u8; MIB];
    r.read_exact(&mut first).unwrap();
    assert!(first == original[..MIB]);

    fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(1024)
        .unwrap();
    // What was already queued in socket buffers may still arrive; then the
    // server must close instead of leaving us waiting for the promised rest.
    let rest = read_to_close(&mut r);
    let total = MIB + rest.len();
    assert!(
        total < 64 * MIB,
        "got all {total} bytes of a truncated file"
    );
    println!("truncated transfer ended after {total} bytes");
    drop(r);

    let again = get(server.addr, "/big.bin", &[]);
    assert_eq!(again.status, 200);
    assert!(again.body == original[..1024], "new length not seen");
    wait_for_no_connections(&server);
}

#[test]
fn file_replaced_while_being_sent_finishes_old_or_closes_cleanly() {
    let root = TempDir::new("replace");
    let original = pattern(64 * MIB, 4);
    let path = root.write("big.bin", &original);
    root.write("small.txt", "small version one");
    let server = TestServer::start(root.path());
    // Get the small file cached.
    for _ in 0..2 {
        assert_eq!(
            get(server.addr, "/small.txt", &[]).text(),
            "small version one"
        );
    }

    let mut s = server.connect();
    s.write_all(b"GET /big.bin HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut r = BufReader::new(s);
    let (status, len) = read_head(&mut r);
    assert_eq!((status, len), (200, 64 * MIB));
    let mut first = vec![0u8; MIB];
    r.read_exact(&mut first).unwrap();

    // Atomic replacement: new contents under a temporary name, then rename.
    for (name, contents) in [
        ("big.bin", &b"big version two"[..]),
        ("small.txt", b"small version two!"),
    ] {
        let tmp = root.path().join(format!(".{name}.tmp"));
        fs::write(&tmp, contents).unwrap();
        fs::rename(&tmp, root.path().join(name)).unwrap();
    }
    assert_eq!(fs::read(&path).unwrap(), b"big version two");

    let rest = read_to_close(&mut r);
    let mut body = first;
    body.extend_from_slice(&rest);
    assert!(body.len() <= 64 * MIB, "more bytes than promised");
    assert!(
        body == original[..body.len()],
        "old transfer mixed in other bytes"
    );
    println!(
        "replaced transfer sent {} of {} bytes",
        body.len(),
        64 * MIB
    );

    for (target, expected) in [
        ("/big.bin", "big version two"),
        ("/small.txt", "small version two!"),
    ] {
        let r = get(server.addr, target, &[]);
        assert_eq!((r.status, r.text().as_str()), (200, expected), "{target}");
    }
    wait_for_no_connections(&server);
}

#[test]
fn a_panicking_worker_answers_500_and_survives() {
    if !cfg!(feature = "test-hooks") {
        println!("SKIPPED: needs --features test-hooks");
        return;
    }
    let root = TempDir::new("panic");
    root.write("ok.txt", "ok");
    let server = TestServer::with(root.path(), |c| c.threads = 2);
    // More panics than workers: a worker that died would not come back.
    for i in 0..10 {
        let r = get(server.addr, "/__stoke_test_panic", &[]);
        assert_eq!(r.status, 500, "panic {i}: {}", r.head);
    }
    // A panic in the middle of a keep-alive connection.
    let mut s = server.connect();
    s.write_all(b"GET /ok.txt HTTP/1.1\r\nHost: t\r\n\r\nGET /__stoke_test_panic HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    let mut r = BufReader::new(s);
    assert_eq!(read_response(&mut r, false).unwrap().status, 200);
    assert_eq!(read_response(&mut r, false).unwrap().status, 500);
    drop(r);
    for i in 0..20 {
        let r = get(server.addr, "/ok.txt", &[]);
        assert_eq!((r.status, r.text().as_str()), (200, "ok"), "request {i}");
    }
    wait_for_no_connections(&server);
    let summary = server.stop();
    assert_eq!(summary.requests, 10 + 2 + 20);
}

fn running_as_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

#[test]
fn unreadable_file_is_403_for_a_server_that_dropped_root() {
    if !running_as_root() {
        println!("SKIPPED: not running as root");
        return;
    }
    let root = TempDir::new("dropuser");
    root.write("public.txt", "anyone may read this");
    let private = root.write("private.txt", "root only");
    fs::set_permissions(root.path(), fs::Permissions::from_mode(0o755)).unwrap();
    fs::set_permissions(
        root.path().join("public.txt"),
        fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    fs::set_permissions(&private, fs::Permissions::from_mode(0o600)).unwrap();

    let mut server = ChildServer::start(root.path(), &["--user", "nobody"]);
    let status = fs::read_to_string(format!("/proc/{}/status", server.child.id())).unwrap();
    let uid_line = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    assert!(
        uid_line.split_whitespace().skip(1).all(|id| id != "0"),
        "still root after --user nobody: {uid_line}"
    );
    // (target, status)
    for (target, expected) in [("/private.txt", 403), ("/public.txt", 200)] {
        let r = get(server.addr, target, &[]);
        assert_eq!(r.status, expected, "{target}: {}", r.head);
        assert!(!r.text().contains("root only"), "{target} leaked");
    }
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    let log = server.rest_of_stderr();
    assert!(
        log.lines()
            .any(|l| l.contains("permission denied") && l.contains("private.txt")),
        "no permission-denied log line:\n{log}"
    );
}

#[test]
fn unknown_user_fails_to_start_with_one_clear_line() {
    let root = TempDir::new("nouser");
    let mut child = Command::new(env!("CARGO_BIN_EXE_stoke"))
        .arg(root.path())
        .args(["--listen", "127.0.0.1:0", "--user", "no-such-user-xyz"])
        .args(model_args())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("stoke --user no-such-user-xyz is still running");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(!status.success(), "exit status {status}");
    assert_eq!(err.lines().count(), 1, "stderr: {err:?}");
    assert!(err.contains("no-such-user-xyz"), "stderr: {err:?}");
}

/// A client that sends its last bytes and its FIN while the server is busy
/// writing an earlier response (the server does not read then). Once that
/// response is out, the server reads the pipelined bytes and must also see
/// the EOF queued behind them, instead of waiting for a timeout.
/// (tail sent after the FIN's first response, whether a response follows)
const EOF_BEHIND_DATA: &[(&[u8], bool)] = &[
    (b"GET /ok.txt HTTP/1.1\r\nHost: t\r\n\r\n", true),
    (b"GET /ok.txt HTTP/1.1\r\nHo", false),
];

#[test]
fn eof_queued_behind_pipelined_bytes_closes_without_waiting_for_a_timeout() {
    let root = TempDir::new("eofbehind");
    let big = pattern(8 * MIB, 6);
    root.write("big.bin", &big);
    root.write("ok.txt", "ok");
    let server = TestServer::with(root.path(), |c| {
        // Far beyond the 10 s read timeout below: only EOF handling can
        // close these connections in time.
        c.keepalive_timeout = Duration::from_secs(120);
        c.header_timeout = Duration::from_secs(120);
    });
    let mut failures = Vec::new();
    for &(tail, answered) in EOF_BEHIND_DATA {
        let mut s = server.connect();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        s.write_all(b"GET /big.bin HTTP/1.1\r\nHost: t\r\n\r\n")
            .unwrap();
        let mut r = BufReader::new(s.try_clone().unwrap());
        let (status, len) = read_head(&mut r);
        assert_eq!((status, len), (200, 8 * MIB));
        let mut some = vec![0u8; MIB];
        r.read_exact(&mut some).unwrap();
        // The server is now blocked writing the rest: bytes and FIN queue up.
        s.write_all(tail).unwrap();
        s.shutdown(Shutdown::Write).unwrap();
        let mut rest = vec![0u8; 7 * MIB];
        r.read_exact(&mut rest).unwrap();
        if answered {
            let resp = read_response(&mut r, false).unwrap();
            assert_eq!((resp.status, resp.text().as_str()), (200, "ok"));
        }
        let mut more = Vec::new();
        match r.read_to_end(&mut more) {
            Ok(_) if more.is_empty() => {}
            Ok(_) => failures.push(format!(
                "{:?}: unexpected bytes {:?}",
                String::from_utf8_lossy(tail),
                String::from_utf8_lossy(&more)
            )),
            Err(e) => failures.push(format!(
                "{:?}: no EOF from the server 10 s after the client's EOF ({e})",
                String::from_utf8_lossy(tail)
            )),
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
    wait_for_no_connections(&server);
}
