//! The work-stealing pool that runs the blocking part of every request.
//!
//! The reactor must never block, but opening and `stat`ing a file can (a
//! cold disk, a network file system). So each complete request head becomes
//! a [`Job`] that a worker thread runs, and the answer travels back through
//! the completion queue (`completion.rs`).
//!
//! The queues are `crossbeam-deque`'s: the reactor pushes onto one shared
//! [`Injector`]; each worker owns a [`Worker`] deque and takes work from, in
//! order, its own deque, the injector (in batches, so one steal feeds it for
//! a while) and its siblings' deques through their [`Stealer`]s.
//!
//! Idle workers sleep on a condition variable: an idle server burns no CPU.
//! The handshake that keeps a wake-up from being lost is explained on
//! [`Pool::notify`].
//!
//! Runs on: `submit`/`notify` on the reactor; `run_worker` on each worker.

use std::iter;
use std::sync::atomic::{fence, AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::{self, JoinHandle};

use crossbeam_deque::{Injector, Steal, Stealer, Worker};

use crate::trace::{self, Source};

/// Anything a worker can run. The server's jobs answer one request each.
pub type Job = Box<dyn FnOnce() + Send + 'static>;

/// What the reactor and the workers share.
struct Shared {
    injector: Injector<Job>,
    stealers: Vec<Stealer<Job>>,
    /// Number of workers asleep (or about to be) on `wakeup`.
    sleepers: AtomicUsize,
    /// Guards the sleep/wake handshake; the data is unused.
    lock: Mutex<()>,
    wakeup: Condvar,
    shutdown: AtomicBool,
}

pub struct Pool {
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
}

impl Pool {
    /// Starts `n` workers (at least one).
    pub fn new(n: usize) -> std::io::Result<Pool> {
        let n = n.max(1);
        let locals: Vec<Worker<Job>> = (0..n).map(|_| Worker::new_fifo()).collect();
        let shared = Arc::new(Shared {
            injector: Injector::new(),
            stealers: locals.iter().map(Worker::stealer).collect(),
            sleepers: AtomicUsize::new(0),
            lock: Mutex::new(()),
            wakeup: Condvar::new(),
            shutdown: AtomicBool::new(false),
        });
        let mut threads = Vec::with_capacity(n);
        for (i, local) in locals.into_iter().enumerate() {
            let shared = Arc::clone(&shared);
            let handle = thread::Builder::new()
                .name(format!("stoke-worker-{i}"))
                .spawn(move || run_worker(i, local, &shared))?;
            threads.push(handle);
        }
        Ok(Pool { shared, threads })
    }

    /// Queues a job. Call [`Pool::notify`] once the turn's jobs are all in:
    /// waking workers is what costs, so it is done once per batch.
    pub fn submit(&self, job: Job) {
        self.shared.injector.push(job);
    }

    /// Jobs waiting in the injector (for `--trace`).
    pub fn queued(&self) -> usize {
        self.shared.injector.len()
    }

    /// Wakes up to `n` sleeping workers for `n` newly submitted jobs.
    ///
    /// The handshake: a worker about to sleep first increments `sleepers`,
    /// then looks at the injector once more, under `lock`. We push the jobs,
    /// then (after a full fence) read `sleepers`. Either the worker's second
    /// look sees our jobs, or we see its increment and notify under the same
    /// lock, which it holds until it is waiting. No job is left unseen.
    pub fn notify(&self, n: usize) {
        if n == 0 {
            return;
        }
        fence(Ordering::SeqCst);
        let sleeping = self.shared.sleepers.load(Ordering::SeqCst);
        if sleeping == 0 {
            return;
        }
        let _guard = self.shared.lock.lock().unwrap_or_else(|e| e.into_inner());
        for _ in 0..n.min(sleeping) {
            self.shared.wakeup.notify_one();
        }
    }

    /// Lets the queued jobs finish, then stops and joins every worker.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        self.shared.shutdown.store(true, Ordering::SeqCst);
        {
            let _guard = self.shared.lock.lock().unwrap_or_else(|e| e.into_inner());
            self.shared.wakeup.notify_all();
        }
        for handle in self.threads.drain(..) {
            let _ = handle.join();
        }
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        self.stop();
    }
}

fn run_worker(index: usize, local: Worker<Job>, shared: &Shared) {
    loop {
        if let Some((job, source)) = find_job(index, &local, shared) {
            trace::taken(index, source);
            // A job that panics must not take the worker with it; the server's
            // jobs catch their own panics to answer 500, this is the backstop.
            if std::panic::catch_unwind(std::panic::AssertUnwindSafe(job)).is_err() {
                log::error!("a job panicked on worker {index}");
            }
            continue;
        }
        // Nothing to do: sleep until notified (see `Pool::notify`).
        let guard = shared.lock.lock().unwrap_or_else(|e| e.into_inner());
        shared.sleepers.fetch_add(1, Ordering::SeqCst);
        if shared.injector.is_empty() && !shared.shutdown.load(Ordering::SeqCst) {
            let _guard = shared.wakeup.wait(guard).unwrap_or_else(|e| e.into_inner());
        }
        shared.sleepers.fetch_sub(1, Ordering::SeqCst);
        if shared.shutdown.load(Ordering::SeqCst) && shared.injector.is_empty() && local.is_empty()
        {
            return;
        }
    }
}

/// Own deque first, then a batch from the injector, then a sibling's deque;
/// and where the job was found.
fn find_job(index: usize, local: &Worker<Job>, shared: &Shared) -> Option<(Job, Source)> {
    if let Some(job) = local.pop() {
        return Some((job, Source::Own));
    }
    iter::repeat_with(|| {
        tagged(shared.injector.steal_batch_and_pop(local), Source::Injector).or_else(|| {
            shared
                .stealers
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != index)
                .map(|(i, s)| tagged(s.steal(), Source::Stolen(i)))
                .collect()
        })
    })
    .find(|s| !s.is_retry())
    .and_then(Steal::success)
}

/// A steal's job with where it came from.
fn tagged(steal: Steal<Job>, source: Source) -> Steal<(Job, Source)> {
    match steal {
        Steal::Success(job) => Steal::Success((job, source)),
        Steal::Empty => Steal::Empty,
        Steal::Retry => Steal::Retry,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    #[test]
    fn runs_every_job_and_survives_panics() {
        let pool = Pool::new(3).unwrap();
        let (tx, rx) = mpsc::channel();
        for i in 0..1000 {
            let tx = tx.clone();
            pool.submit(Box::new(move || {
                if i % 100 == 0 {
                    panic!("test panic {i}");
                }
                tx.send(i).unwrap();
            }));
            if i % 7 == 0 {
                pool.notify(7);
            }
        }
        pool.notify(1000);
        drop(tx);
        let mut got: Vec<i32> = rx.iter().collect();
        got.sort();
        let want: Vec<i32> = (0..1000).filter(|i| i % 100 != 0).collect();
        assert_eq!(got, want);
        pool.shutdown();
    }
}
