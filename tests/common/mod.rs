//! Shared helpers for the integration tests: a real server on port 0
//! (in-process, or the real binary as a child process), raw-socket
//! request/response helpers, and a throwaway document root.
//!
//! Every server they start runs the model named by the environment variable
//! `STOKE_TEST_MODEL` (`reactor` when unset; `make test` runs the suite once
//! per model, `make test-model MODEL=pool` once for one). A test that only
//! makes sense for one model says so in its name and uses [`skip_unless`].
//! `STOKE_TEST_REACTORS=N` runs the reactor models with `--reactors N`
//! (`make test-reactors` runs the suite once with 2).
#![allow(dead_code)]

pub mod browser;
pub mod child;
pub mod load;

use std::fs;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver};
use std::thread::JoinHandle;
use std::time::Duration;

use clap::Parser;
use stoke::models::Model;
use stoke::{Cli, Config, Handle, Server};

/// The environment variable that picks the model every test server runs.
pub const MODEL_VAR: &str = "STOKE_TEST_MODEL";

/// The environment variable that sets `--reactors` for every test server.
pub const REACTORS_VAR: &str = "STOKE_TEST_REACTORS";

/// `--reactors` for the servers under test (from [`REACTORS_VAR`]; 1 when unset).
pub fn reactors() -> usize {
    match std::env::var(REACTORS_VAR) {
        Err(_) => 1,
        Ok(n) => n
            .parse()
            .unwrap_or_else(|_| panic!("{REACTORS_VAR}={n:?}: expected a number")),
    }
}

/// The model under test (from [`MODEL_VAR`]; `reactor` when unset).
pub fn model() -> Model {
    match std::env::var(MODEL_VAR) {
        Err(_) => Model::Reactor,
        Ok(name) => Model::ALL
            .into_iter()
            .find(|m| m.name() == name)
            .unwrap_or_else(|| {
                let names: Vec<&str> = Model::ALL.iter().map(|m| m.name()).collect();
                panic!("{MODEL_VAR}={name:?}: expected one of {names:?}")
            }),
    }
}

/// `--model NAME` for a child `stoke` process.
pub fn model_args() -> [&'static str; 2] {
    ["--model", model().name()]
}

/// `--reactors N` for a child `stoke` process (see [`REACTORS_VAR`]).
pub fn reactors_args() -> [String; 2] {
    ["--reactors".to_owned(), reactors().to_string()]
}

/// For a test that belongs to one model: `true` (run it) when that model is
/// under test; otherwise prints a note and returns `false`.
pub fn skip_unless(only: Model, test: &str) -> bool {
    if model() == only {
        return true;
    }
    println!(
        "SKIPPED {test}: it is about the {only} model, not {}",
        model()
    );
    false
}

/// For a test of what only the reactor models serve (HTTPS, redirects, the
/// PROXY protocol; the blocking models refuse those flags): `true` (run
/// it) under `reactor` or `reactor-inline`, else prints a note and returns
/// `false`.
pub fn runs_on_reactor_models(test: &str) -> bool {
    if matches!(model(), Model::Reactor | Model::ReactorInline) {
        return true;
    }
    println!(
        "SKIPPED {test}: HTTPS and the PROXY protocol are served by the reactor models, not {}",
        model()
    );
    false
}

/// A configuration with every default for `model`, serving `root` on
/// 127.0.0.1:0 (defaults such as `--threads` depend on the model).
pub fn config_for(root: &Path, model: Model) -> Config {
    let mut cli = Cli::parse_from(["stoke", "--model", model.name()]);
    cli.root = root.to_path_buf();
    cli.listen = vec![SocketAddr::from(([127, 0, 0, 1], 0))];
    cli.reactors = reactors();
    Config::from_cli(cli).unwrap()
}

/// Makes `config` serve `clients` connections at once. Only the pool needs
/// it: a pool thread holds one client from accept to close, so a pool
/// smaller than a test's crowd leaves the rest waiting in the backlog, the
/// model working as designed (tests/models.rs shows it), not what a test
/// of many simultaneous clients is about.
pub fn serve_at_once(config: &mut Config, clients: usize) {
    if config.model == Model::Pool {
        config.threads = config.threads.max(clients + 16);
    }
}

/// Upper bound for any single socket wait in a test: a hung server fails
/// the test instead of hanging the suite.
pub const IO_TIMEOUT: Duration = Duration::from_secs(20);

/// A temporary directory removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "stoke-test-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    /// Writes `contents` to `rel` (creating parent directories).
    pub fn write(&self, rel: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let path = self.0.join(rel);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).unwrap();
        }
        fs::write(&path, contents).unwrap();
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Deterministic pseudo-random bytes (so bodies can be byte-checked).
pub fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407)
        | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// A server running in this process on 127.0.0.1:0, shut down on drop.
pub struct TestServer {
    pub addr: SocketAddr,
    handle: Handle,
    thread: Option<JoinHandle<std::io::Result<stoke::models::Summary>>>,
}

impl TestServer {
    pub fn start(root: &Path) -> TestServer {
        TestServer::with_config(config_for(root, model()))
    }

    /// Starts with a config adjusted by `f` (listen stays on 127.0.0.1:0).
    pub fn with(root: &Path, f: impl FnOnce(&mut Config)) -> TestServer {
        let mut config = config_for(root, model());
        f(&mut config);
        TestServer::with_config(config)
    }

    pub fn with_config(config: Config) -> TestServer {
        TestServer::bound_then(config, |_| {})
    }

    /// Binds (the listener is listening from here on), runs `before_run`
    /// with its address, and only then starts serving: connections made by
    /// `before_run` wait in the backlog, so the server's first loop turn
    /// finds them all at once.
    pub fn bound_then(config: Config, before_run: impl FnOnce(SocketAddr)) -> TestServer {
        let server = Server::bind(config).expect("bind");
        let addr = server.local_addrs()[0];
        let handle = server.handle();
        before_run(addr);
        let thread = std::thread::spawn(move || server.run());
        TestServer {
            addr,
            handle,
            thread: Some(thread),
        }
    }

    pub fn connect(&self) -> TcpStream {
        connect(self.addr)
    }

    /// Connections the server holds right now (the reactor: as of its last
    /// loop turn).
    pub fn open_connections(&self) -> usize {
        self.handle.open_connections()
    }

    /// Times the server compressed a file on the fly (cache hits not counted).
    pub fn compressions(&self) -> u64 {
        self.handle.compressions()
    }

    /// Stats the server made to prove cache hits fresh (see
    /// `Handle::freshness_checks`).
    pub fn freshness_checks(&self) -> u64 {
        self.handle.freshness_checks()
    }

    /// Batches of request jobs the server handed to its pool (see
    /// `Handle::pool_handoffs`).
    pub fn pool_handoffs(&self) -> u64 {
        self.handle.pool_handoffs()
    }

    /// File ranges the reactor had warmed off its thread (see
    /// `Handle::file_warmups`).
    pub fn file_warmups(&self) -> u64 {
        self.handle.file_warmups()
    }

    /// Asks for a graceful shutdown without waiting for it (see [`stop`]).
    ///
    /// [`stop`]: TestServer::stop
    pub fn request_shutdown(&self) {
        self.handle.shutdown();
    }

    /// Shuts down gracefully and returns the summary.
    pub fn stop(mut self) -> stoke::models::Summary {
        self.handle.shutdown();
        self.thread.take().unwrap().join().unwrap().unwrap()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(t) = self.thread.take() {
            self.handle.shutdown();
            let _ = t.join();
        }
    }
}

/// The real `stoke` binary as a child process; killed on drop.
pub struct ChildServer {
    pub addr: SocketAddr,
    pub child: Child,
    pub stderr: Option<BufReader<std::process::ChildStderr>>,
}

impl ChildServer {
    /// Starts `stoke ROOT --listen 127.0.0.1:0 --model MODEL ARGS...` and
    /// waits for the "serving ... on http://ADDR/" line to learn the port.
    pub fn start(root: &Path, args: &[&str]) -> ChildServer {
        let mut child = Command::new(env!("CARGO_BIN_EXE_stoke"))
            .arg(root)
            .args(["--listen", "127.0.0.1:0"])
            .args(model_args())
            .args(reactors_args())
            .args(args)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn stoke");
        let mut stderr = BufReader::new(child.stderr.take().unwrap());
        let mut line = String::new();
        let addr = loop {
            line.clear();
            if stderr.read_line(&mut line).unwrap() == 0 {
                panic!("stoke exited before listening");
            }
            if let Some(rest) = line.split("on http://").nth(1) {
                break rest.trim().trim_end_matches('/').parse().unwrap();
            }
        };
        ChildServer {
            addr,
            child,
            stderr: Some(stderr),
        }
    }

    /// Forwards the rest of stderr, line by line (newline kept), to a
    /// channel, so a test can wait for a line with a bound.
    pub fn stderr_lines(&mut self) -> Receiver<String> {
        let mut stderr = self.stderr.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || loop {
            let mut line = String::new();
            match stderr.read_line(&mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) => {
                    if tx.send(line).is_err() {
                        return;
                    }
                }
            }
        });
        rx
    }

    /// Reads the rest of stderr (after the process exited).
    pub fn rest_of_stderr(&mut self) -> String {
        let mut s = String::new();
        if let Some(mut e) = self.stderr.take() {
            let _ = e.read_to_string(&mut s);
        }
        s
    }

    pub fn signal(&self, sig: libc::c_int) {
        // SAFETY-free: `kill` via the command keeps tests free of unsafe.
        let status = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(status.success());
    }
}

impl Drop for ChildServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    s.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    s
}

/// A parsed response read off a raw socket.
#[derive(Debug, Clone)]
pub struct RawResponse {
    pub status: u16,
    pub head: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RawResponse {
    /// First value of a header (case-insensitive name).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Reads one response from `r`. `head_request`: the request was HEAD, so
/// no body follows whatever Content-Length says. Bodies are delimited by
/// Content-Length (stoke never uses chunked); a response without one (e.g.
/// 304) has no body.
pub fn read_response(r: &mut impl BufRead, head_request: bool) -> io::Result<RawResponse> {
    let mut head = String::new();
    loop {
        let mut line = String::new();
        if r.read_line(&mut line)? == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("eof in head: {head:?}"),
            ));
        }
        head.push_str(&line);
        if line == "\r\n" {
            break;
        }
    }
    let mut lines = head.lines();
    let status_line = lines.next().unwrap_or("");
    let status: u16 = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("bad status line {status_line:?}"),
            )
        })?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let len = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .map(|(_, v)| v.parse::<usize>().unwrap())
        .unwrap_or(0);
    let mut body = vec![
        0;
        if head_request || status == 304 || status == 204 {
            0
        } else {
            len
        }
    ];
    r.read_exact(&mut body)?;
    Ok(RawResponse {
        status,
        head,
        headers,
        body,
    })
}

/// Sends `request` on a fresh connection and reads one response.
pub fn roundtrip(addr: SocketAddr, request: &str) -> RawResponse {
    let mut s = connect(addr);
    s.write_all(request.as_bytes()).unwrap();
    let head_request = request.starts_with("HEAD ");
    read_response(&mut BufReader::new(s), head_request).unwrap()
}

/// `GET path` with Host and any extra header lines ("Name: value").
pub fn get(addr: SocketAddr, path: &str, extra: &[&str]) -> RawResponse {
    let mut req = format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n");
    for h in extra {
        req.push_str(h);
        req.push_str("\r\n");
    }
    req.push_str("\r\n");
    roundtrip(addr, &req)
}

/// Reads until EOF: true when the server closed the connection.
pub fn closed_by_server(s: &mut impl Read) -> bool {
    let mut buf = [0u8; 1024];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => return true,
            Err(_) => return false,
        }
    }
}

/// For a test that needs an outside client (curl, openssl, ...): true when
/// `tool` is on PATH; otherwise prints a note and returns false, except in
/// CI (`CI` set), where a missing tool is a failure.
pub fn available(tool: &str) -> bool {
    if have(tool) {
        return true;
    }
    if std::env::var_os("CI").is_some() {
        panic!("{tool} is required in CI but not installed");
    }
    println!("SKIPPED: {tool} not installed");
    false
}

/// Is a program on PATH?
pub fn have(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .stdout(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// Raises this process's soft descriptor limit to at least `want` (within
/// the hard limit), for tests that hold many connections at once.
pub fn raise_nofile_limit(want: libc::rlim_t) {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid, exclusive rlimit for the duration of the call.
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) }, 0);
    if lim.rlim_cur >= want {
        return;
    }
    lim.rlim_cur = want.min(lim.rlim_max);
    // SAFETY: as above; raising the soft limit up to the hard one needs no privilege.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) }, 0);
    assert!(
        lim.rlim_cur >= want,
        "RLIMIT_NOFILE hard limit {} is below the {want} descriptors this test needs",
        lim.rlim_max
    );
}
