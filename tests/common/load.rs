//! Steady client load for the restart and load-balancer tests: two client
//! threads (one keeping its connection alive, one opening a new connection
//! per request) run a test's request step until stopped or a time limit
//! passes, counting successes and recording every failure. The test's
//! thread waits (bounded) for progress between the steps of a scenario.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::IO_TIMEOUT;

/// How one load client treats its connection between requests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Client {
    /// Reuses its connection until the server closes it.
    KeepAlive,
    /// Opens a new connection for every request.
    NewConnectionEachRequest,
}

/// What one request step came to.
pub enum Outcome {
    Ok,
    /// A request retried on a new connection as HTTP clients do (an idle
    /// keep-alive connection the server closed between requests); neither
    /// a success nor a failure, counted apart.
    Retried,
    Failed(String),
}

/// The counts at the end of a load run.
pub struct Tally {
    pub ok: usize,
    pub retried: usize,
    pub failures: Vec<String>,
}

/// A running load; [`finish`](Load::finish) stops it.
pub struct Load {
    ok: Arc<AtomicUsize>,
    retried: Arc<AtomicUsize>,
    failures: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl Load {
    /// Starts one thread per [`Client`] kind; each makes its step with
    /// `client(kind)` and runs it until [`finish`](Load::finish) or until
    /// `limit` has passed.
    pub fn start<S>(limit: Duration, client: impl Fn(Client) -> S) -> Load
    where
        S: FnMut() -> Outcome + Send + 'static,
    {
        let ok = Arc::new(AtomicUsize::new(0));
        let retried = Arc::new(AtomicUsize::new(0));
        let failures = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let started = Instant::now();
        let threads = [Client::KeepAlive, Client::NewConnectionEachRequest]
            .into_iter()
            .map(|kind| {
                let mut step = client(kind);
                let (ok, retried, failures, stop) =
                    (ok.clone(), retried.clone(), failures.clone(), stop.clone());
                std::thread::spawn(move || {
                    while !stop.load(Ordering::Relaxed) && started.elapsed() < limit {
                        match step() {
                            Outcome::Ok => {
                                ok.fetch_add(1, Ordering::Relaxed);
                            }
                            Outcome::Retried => {
                                retried.fetch_add(1, Ordering::Relaxed);
                            }
                            Outcome::Failed(e) => failures.lock().unwrap().push(e),
                        }
                    }
                })
            })
            .collect();
        Load {
            ok,
            retried,
            failures,
            stop,
            threads,
        }
    }

    /// Waits (bounded by [`IO_TIMEOUT`]) until `n` more requests succeeded.
    pub fn more(&self, n: usize) {
        let target = self.ok.load(Ordering::Relaxed) + n;
        let deadline = Instant::now() + IO_TIMEOUT;
        while self.ok.load(Ordering::Relaxed) < target {
            assert!(
                Instant::now() < deadline,
                "load stalled; failures: {:?}",
                self.failures.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Stops the clients and returns the counts.
    pub fn finish(self) -> Tally {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads {
            t.join().unwrap();
        }
        let failures = self.failures.lock().unwrap().clone();
        Tally {
            ok: self.ok.load(Ordering::Relaxed),
            retried: self.retried.load(Ordering::Relaxed),
            failures,
        }
    }
}
