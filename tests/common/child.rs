//! A child process (the `stoke` binary, or a tool such as HAProxy) whose
//! output lines a test waits for with a bound: a reader thread per stream
//! forwards lines to a channel, so a silent child fails the test after
//! [`IO_TIMEOUT`] instead of hanging it. Runs on the test's thread plus
//! those reader threads.

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use super::IO_TIMEOUT;

/// A child process and its stdout and stderr lines; killed on drop.
pub struct Proc {
    pub child: Child,
    lines: Receiver<String>,
    /// Every line seen so far (kept by `wait` and `drain`).
    seen: Vec<String>,
}

impl Proc {
    /// Spawns `cmd` with stdout and stderr piped into one line channel
    /// (stdin and the environment are the caller's to set).
    pub fn spawn(mut cmd: Command) -> Proc {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn");
        let (tx, rx) = mpsc::channel();
        for stream in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines() {
                    let Ok(line) = line else { return };
                    if tx.send(line).is_err() {
                        return;
                    }
                }
            });
        }
        Proc {
            child,
            lines: rx,
            seen: Vec::new(),
        }
    }

    /// Waits (bounded by [`IO_TIMEOUT`]) for a line containing `needle`;
    /// a line already seen counts.
    pub fn wait(&mut self, needle: &str) -> String {
        if let Some(l) = self.seen.iter().find(|l| l.contains(needle)) {
            return l.clone();
        }
        let deadline = Instant::now() + IO_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(needle) {
                        return line;
                    }
                }
                Err(_) => panic!("no line containing {needle:?}; saw {:#?}", self.seen),
            }
        }
    }

    /// Every line so far, without waiting.
    pub fn drain(&mut self) -> &[String] {
        while let Ok(line) = self.lines.try_recv() {
            self.seen.push(line);
        }
        &self.seen
    }

    /// Sends `sig` (as `kill` spells it, e.g. "-TERM") to the child.
    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok);
    }

    /// Waits (bounded by [`IO_TIMEOUT`]) for the exit; true if it exited
    /// successfully.
    pub fn exit_ok(&mut self) -> bool {
        let deadline = Instant::now() + IO_TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.success();
            }
            assert!(Instant::now() < deadline, "did not exit");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The address in stoke's start-up line "... on SCHEME://ADDR/"
/// (`scheme` is "http" or "https").
pub fn listening_addr(line: &str, scheme: &str) -> SocketAddr {
    line.split(&format!("on {scheme}://"))
        .nth(1)
        .unwrap_or_else(|| panic!("no {scheme} address in {line:?}"))
        .trim()
        .trim_end_matches('/')
        .parse()
        .unwrap()
}
