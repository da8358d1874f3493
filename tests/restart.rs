//! Restarts that drop nothing. Socket activation: the binary started with
//! a pre-bound listener as descriptor 3 and `LISTEN_FDS`/`LISTEN_PID` (what
//! systemd does) serves that socket instead of binding, and two processes
//! sharing it hand over under load. `--reuse-port`: a new process binds the
//! port while the old one still runs, the old one gets SIGTERM, and a
//! steady keep-alive and new-connection load sees no failed request and no
//! reset.
mod common;
use common::child::{listening_addr, Proc};
use common::load::{Client, Load, Outcome, Tally};
use common::*;

use std::io::{self, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::OwnedFd;
use std::process::{Command, Stdio};
use std::time::Duration;

/// Successful requests each load phase must see before the next step.
const PHASE_REQUESTS: usize = 200;

/// Upper bound on one load run.
const LOAD_LIMIT: Duration = Duration::from_secs(90);

const BODY: &str = "still here\n";

/// Spawns `cmd` (a stoke) logging at info, its lines captured.
fn spawn(mut cmd: Command) -> Proc {
    cmd.env("RUST_LOG", "info");
    Proc::spawn(cmd)
}

/// `stoke ROOT ARGS` with `listener` as descriptor 3 and the socket
/// activation variables naming it (`LISTEN_PID` is the shell's own pid,
/// which `exec` hands to stoke).
fn socket_activated(root: &TempDir, listener: &TcpListener, name: &str, args: &[&str]) -> Proc {
    let fd: OwnedFd = listener.try_clone().unwrap().into();
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(
            "exec 3<&0 </dev/null; export LISTEN_PID=$$ LISTEN_FDS=1 LISTEN_FDNAMES=\"$0\"; exec \"$@\"",
        )
        .arg(name)
        .arg(env!("CARGO_BIN_EXE_stoke"))
        .arg(root.path())
        .args(args)
        .stdin(Stdio::from(fd));
    spawn(cmd)
}

fn site() -> TempDir {
    let root = TempDir::new("restart");
    root.write("index.html", BODY);
    root
}

#[test]
fn socket_activation_serves_the_passed_socket_instead_of_binding() {
    let root = site();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    // --listen would bind another port; with a passed socket it is not bound.
    let unused = TcpListener::bind("127.0.0.1:0").unwrap();
    let unused_addr = unused.local_addr().unwrap();
    drop(unused);
    let mut p = socket_activated(
        &root,
        &listener,
        "http",
        &["--listen", &unused_addr.to_string()],
    );
    drop(listener);
    let line = p.wait("on http://");
    assert!(line.contains(&format!("on http://{addr}/")), "{line}");
    let r = get(addr, "/index.html", &[]);
    assert_eq!((r.status, r.text().as_str()), (200, BODY));
    assert!(
        TcpStream::connect(unused_addr).is_err(),
        "--listen was bound too"
    );
}

#[test]
fn socket_activation_for_another_pid_is_ignored() {
    let root = site();
    let mut p = spawn({
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_stoke"));
        cmd.arg(root.path())
            .args(["--listen", "127.0.0.1:0"])
            .env("LISTEN_PID", "1")
            .env("LISTEN_FDS", "1");
        cmd
    });
    let line = p.wait("on http://");
    let addr = listening_addr(&line, "http");
    assert_eq!(get(addr, "/index.html", &[]).status, 200);
}

#[test]
fn socket_activation_with_a_non_socket_fails_with_one_line() {
    let root = site();
    let file = std::fs::File::open(root.path().join("index.html")).unwrap();
    let out = Command::new("sh")
        .arg("-c")
        .arg("exec 3<&0 </dev/null; export LISTEN_PID=$$ LISTEN_FDS=1; exec \"$@\"")
        .arg("sh")
        .arg(env!("CARGO_BIN_EXE_stoke"))
        .arg(root.path())
        .stdin(Stdio::from(file))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("inherited descriptor 3"), "{err}");
}

#[test]
fn backlog_is_served_not_reset_at_shutdown() {
    // One slot (--max-connections 1), held by an idle keep-alive client:
    // three more clients wait in the kernel's backlog with their requests
    // sent. Shutdown must accept and answer them, not close the listener
    // on them (which resets every queued connection).
    let root = site();
    let server = TestServer::with(root.path(), |c| c.max_connections = 1);
    let mut first = BufReader::new(server.connect());
    let r = one_request(&mut first).unwrap();
    assert_eq!(r.status, 200);
    let queued: Vec<TcpStream> = (0..3)
        .map(|_| {
            let mut s = server.connect();
            s.write_all(b"GET /index.html HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
                .unwrap();
            s
        })
        .collect();
    let stopper = std::thread::spawn(move || server.stop());
    for (i, s) in queued.into_iter().enumerate() {
        let r = read_response(&mut BufReader::new(s), false)
            .unwrap_or_else(|e| panic!("queued client {i}: {e}"));
        assert_eq!(
            (r.status, r.text().as_str()),
            (200, BODY),
            "queued client {i}"
        );
    }
    drop(first);
    let summary = stopper.join().unwrap();
    assert_eq!((summary.connections, summary.requests), (4, 4));
}

/// Reads one response; `Err` says how it failed.
fn one_request(conn: &mut BufReader<TcpStream>) -> io::Result<RawResponse> {
    conn.get_mut()
        .write_all(b"GET /index.html HTTP/1.1\r\nHost: t\r\n\r\n")?;
    read_response(conn, false)
}

/// Steady load on `addr`: one keep-alive client and one client with a new
/// connection per request. A keep-alive connection the server closed
/// between requests is reopened and the request retried, as HTTP clients
/// do (RFC 9112 §9.3.1); those retries are counted apart. Anything else
/// (an error on a new connection, a reset mid-response, a wrong answer)
/// is a failure.
fn start_load(addr: SocketAddr) -> Load {
    Load::start(LOAD_LIMIT, |client| {
        let mut conn: Option<BufReader<TcpStream>> = None;
        move || {
            let reused = conn.is_some();
            if conn.is_none() {
                match TcpStream::connect(addr) {
                    Ok(s) => {
                        s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
                        conn = Some(BufReader::new(s));
                    }
                    Err(e) => return Outcome::Failed(format!("connect: {e}")),
                }
            }
            let result = one_request(conn.as_mut().unwrap());
            let stale = reused
                && matches!(&result, Err(e) if e.kind() == io::ErrorKind::UnexpectedEof
                    && e.to_string().contains("eof in head: \"\""));
            match result {
                Ok(r) if r.status == 200 && r.text() == BODY => {
                    let close = r.header("connection") == Some("close");
                    if close || client == Client::NewConnectionEachRequest {
                        conn = None;
                    }
                    Outcome::Ok
                }
                Ok(r) => {
                    conn = None;
                    Outcome::Failed(format!("{} {:?}", r.status, r.text()))
                }
                Err(_) if stale => {
                    conn = None;
                    Outcome::Retried
                }
                Err(e) => {
                    conn = None;
                    Outcome::Failed(format!(
                        "{} connection: {e}",
                        if reused { "reused" } else { "new" }
                    ))
                }
            }
        }
    })
}

fn assert_clean(load: Load) {
    let Tally {
        ok,
        retried,
        failures,
    } = load.finish();
    println!("{ok} requests answered, {retried} retried after an idle keep-alive close");
    assert!(ok >= 3 * PHASE_REQUESTS);
    assert!(
        failures.is_empty(),
        "{} failures: {failures:?}",
        failures.len()
    );
}

/// Runs the SO_REUSEPORT restart in a network namespace of its own with
/// `net.ipv4.tcp_migrate_req=1` (the setting docs/README recommend for
/// reuse-port restarts), by running this test binary again under
/// `unshare`. Without it the kernel can still reset a connection that
/// lands in the old listener's queue in the microseconds between its last
/// `accept` and its `close` (seen about once in 80 runs here). Where no
/// namespace can be made (not root), the restart runs here, unshielded.
#[test]
fn reuse_port_restart_under_load_fails_no_request() {
    let exe = std::env::current_exe().unwrap();
    let script = "ip link set lo up && sysctl -qw net.ipv4.tcp_migrate_req=1 && exec \"$0\" \
                  --exact reuse_port_restart_scenario --ignored --nocapture --test-threads 1";
    let probe = Command::new("unshare")
        .args(["-n", "true"])
        .stderr(Stdio::null())
        .status();
    if !probe.is_ok_and(|s| s.success()) || !have("ip") || !have("sysctl") {
        println!("no network namespace: running the restart without tcp_migrate_req");
        reuse_port_restart_scenario();
        return;
    }
    let out = Command::new("unshare")
        .args(["-n", "sh", "-c", script])
        .arg(&exe)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    println!("{text}");
    assert!(
        out.status.success(),
        "restart in a namespace failed: {text}"
    );
    assert!(
        text.contains("1 passed"),
        "the scenario did not run: {text}"
    );
}

/// The restart itself (run by the test above, in its namespace).
#[test]
#[ignore = "run by reuse_port_restart_under_load_fails_no_request"]
fn reuse_port_restart_scenario() {
    let root = site();
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let start = |root: &TempDir| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_stoke"));
        cmd.arg(root.path())
            .args(["--reuse-port", "--listen", &addr.to_string()]);
        let mut p = spawn(cmd);
        p.wait("on http://");
        p
    };
    let mut old = start(&root);
    let load = start_load(addr);
    load.more(PHASE_REQUESTS);
    let new = start(&root);
    load.more(PHASE_REQUESTS);
    old.signal("-TERM");
    assert!(old.exit_ok(), "old process exit status");
    load.more(PHASE_REQUESTS);
    assert_clean(load);
    drop(new);
}

#[test]
fn socket_activated_handover_under_load_fails_no_request() {
    // systemd's way: the socket belongs to the service manager (here: the
    // test), so it never closes; the new process accepts from the same
    // queue while the old one drains.
    let root = site();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let mut old = socket_activated(&root, &listener, "http", &[]);
    old.wait("on http://");
    let load = start_load(addr);
    load.more(PHASE_REQUESTS);
    let mut new = socket_activated(&root, &listener, "http", &[]);
    new.wait("on http://");
    load.more(PHASE_REQUESTS);
    old.signal("-TERM");
    assert!(old.exit_ok(), "old process exit status");
    load.more(PHASE_REQUESTS);
    assert_clean(load);
}
