//! The work-stealing pool that runs the blocking part of every request.
//!
//! The reactor must never block, but opening and `stat`ing a file can (a
//! cold disk, a network file system). So each complete request head becomes
//! a [`Job`] that a worker thread runs, and the answer travels back through
//! the completion queue (`completion.rs`). Other jobs: warming a cold file
//! range, the CPU-heavy step of a TLS handshake, a certificate reload.
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
//! Shutting down runs nothing more and waits for a busy worker only a short
//! grace: a job stuck on a slow disk or a hung network mount must not keep
//! the process alive past the shutdown deadline (see [`Pool::shutdown`]).
//!
//! Runs on: `submit`/`notify` on the reactor; `run_worker` on each worker.

use std::iter;
use std::sync::atomic::{fence, AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crossbeam_deque::{Injector, Steal, Stealer, Worker};

use crate::limits::WARM_NICE;
use crate::sys;
use crate::trace::{self, Source};

/// Anything a worker can run. The server's jobs answer one request each.
pub type Job = Box<dyn Task>;

/// A job: any closure, or a type that runs itself from its box (the
/// reactor's request job, whose box comes back with the answer for reuse).
pub trait Task: Send + 'static {
    fn run(self: Box<Self>);
}

impl<F: FnOnce() + Send + 'static> Task for F {
    fn run(self: Box<Self>) {
        (*self)()
    }
}

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
    /// Per worker: inside a job right now.
    busy: Vec<AtomicBool>,
    /// Workers that have not exited yet.
    alive: AtomicUsize,
    /// Signalled (under `lock`) when a worker exits.
    exited: Condvar,
}

/// What [`Pool::shutdown`] left behind.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Leftovers {
    /// Queued jobs thrown away without running.
    pub dropped_jobs: usize,
    /// Workers still inside a job, left running (the process exits anyway).
    pub busy_workers: usize,
}

/// How a pool's threads share the CPU with the rest of stoke.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Priority {
    /// Like every other thread: the request workers.
    Normal,
    /// [`WARM_NICE`] steps below: the cold-file warm-ups, background work
    /// that must not take the CPU from cached requests.
    Background,
}

pub struct Pool {
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
}

impl Pool {
    /// Starts `n` workers (at least one), named `stoke-worker-K`.
    pub fn new(n: usize) -> std::io::Result<Pool> {
        Pool::named(n, "stoke-worker", Priority::Normal)
    }

    /// Starts `n` workers (at least one), named `{name}-K`, at `priority`.
    pub fn named(n: usize, name: &str, priority: Priority) -> std::io::Result<Pool> {
        let n = n.max(1);
        let locals: Vec<Worker<Job>> = (0..n).map(|_| Worker::new_fifo()).collect();
        let shared = Arc::new(Shared {
            injector: Injector::new(),
            stealers: locals.iter().map(Worker::stealer).collect(),
            sleepers: AtomicUsize::new(0),
            lock: Mutex::new(()),
            wakeup: Condvar::new(),
            shutdown: AtomicBool::new(false),
            busy: (0..n).map(|_| AtomicBool::new(false)).collect(),
            alive: AtomicUsize::new(n),
            exited: Condvar::new(),
        });
        let mut threads = Vec::with_capacity(n);
        for (i, local) in locals.into_iter().enumerate() {
            let shared = Arc::clone(&shared);
            let handle = thread::Builder::new()
                .name(format!("{name}-{i}"))
                .spawn(move || {
                    if priority == Priority::Background {
                        sys::lower_thread_priority(WARM_NICE);
                    }
                    run_worker(i, local, &shared)
                })?;
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
    /// The handshake: a worker about to sleep takes `lock`, increments
    /// `sleepers`, looks at the injector once more and waits (which releases
    /// `lock`). We push the jobs, then (after a full fence) read `sleepers`.
    /// Either the worker's second look sees our jobs, or we see its
    /// increment. In that case we take and release `lock` before notifying:
    /// the worker held it from its increment until it was waiting, so once
    /// we have had it the worker is waiting (or already awake), and our
    /// notify cannot fall between its look and its wait. No job is left
    /// unseen, and no wake-up is spent while nobody sleeps.
    ///
    /// The notify comes after the lock is released, not under it: a worker
    /// woken while we still held it would first block on it again (a second
    /// futex round trip per hand-off).
    pub fn notify(&self, n: usize) {
        if n == 0 {
            return;
        }
        fence(Ordering::SeqCst);
        let sleeping = self.shared.sleepers.load(Ordering::SeqCst);
        if sleeping == 0 {
            return;
        }
        drop(self.shared.lock.lock().unwrap_or_else(|e| e.into_inner()));
        for _ in 0..n.min(sleeping) {
            self.shared.wakeup.notify_one();
        }
    }

    /// Stops the pool without running what is queued: by now nobody waits
    /// for an answer (the reactor calls this once every connection is done
    /// or cut off). Queued jobs are dropped unrun; workers get `grace` to
    /// exit (an idle one only has to wake up, a busy one to finish its job)
    /// and are joined; a worker still inside a job after that (a slow disk,
    /// a hung mount) is left behind, since joining it could block forever,
    /// and dies with the process.
    pub fn shutdown(mut self, grace: Duration) -> Leftovers {
        self.stop(grace)
    }

    fn stop(&mut self, grace: Duration) -> Leftovers {
        let shared = &*self.shared;
        shared.shutdown.store(true, Ordering::SeqCst);
        {
            let _guard = shared.lock.lock().unwrap_or_else(|e| e.into_inner());
            shared.wakeup.notify_all();
        }
        let mut dropped_jobs = drain(|| shared.injector.steal());
        for stealer in &shared.stealers {
            dropped_jobs += drain(|| stealer.steal());
        }
        let deadline = Instant::now() + grace;
        let mut guard = shared.lock.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            let now = Instant::now();
            if shared.alive.load(Ordering::SeqCst) == 0 || now >= deadline {
                break;
            }
            guard = shared
                .exited
                .wait_timeout(guard, deadline - now)
                .map(|(g, _)| g)
                .unwrap_or_else(|e| e.into_inner().0);
        }
        drop(guard);
        // A worker not inside a job now never starts one again (it checks
        // the flag first), so joining it is quick; dropping the handle of
        // a busy one detaches it.
        let mut busy_workers = 0;
        for (i, handle) in self.threads.drain(..).enumerate() {
            if shared.busy[i].load(Ordering::SeqCst) {
                busy_workers += 1;
            } else {
                let _ = handle.join();
            }
        }
        Leftovers {
            dropped_jobs,
            busy_workers,
        }
    }
}

/// Takes every job `steal` yields and drops it; returns how many.
fn drain(steal: impl Fn() -> Steal<Job>) -> usize {
    let mut n = 0;
    loop {
        match steal() {
            Steal::Success(job) => {
                drop(job);
                n += 1;
            }
            Steal::Retry => {}
            Steal::Empty => return n,
        }
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        if !self.threads.is_empty() {
            self.stop(Duration::ZERO);
        }
    }
}

fn run_worker(index: usize, local: Worker<Job>, shared: &Shared) {
    work(index, &local, shared);
    let _guard = shared.lock.lock().unwrap_or_else(|e| e.into_inner());
    shared.alive.fetch_sub(1, Ordering::SeqCst);
    shared.exited.notify_all();
}

fn work(index: usize, local: &Worker<Job>, shared: &Shared) {
    loop {
        // Once shutdown began, nobody waits for answers: take no new job.
        if shared.shutdown.load(Ordering::SeqCst) {
            return;
        }
        if let Some((job, source)) = find_job(index, local, shared) {
            trace::taken(index, source);
            shared.busy[index].store(true, Ordering::SeqCst);
            // A job that panics must not take the worker with it; the server's
            // jobs catch their own panics to answer 500, this is the backstop.
            if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job.run())).is_err() {
                log::error!("a job panicked on worker {index}");
            }
            shared.busy[index].store(false, Ordering::SeqCst);
            continue;
        }
        // Nothing to do: sleep until notified (see `Pool::notify`).
        let guard = shared.lock.lock().unwrap_or_else(|e| e.into_inner());
        shared.sleepers.fetch_add(1, Ordering::SeqCst);
        if shared.injector.is_empty() && !shared.shutdown.load(Ordering::SeqCst) {
            let _guard = shared.wakeup.wait(guard).unwrap_or_else(|e| e.into_inner());
        }
        shared.sleepers.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Own deque first, then a batch from the injector, then a sibling's deque;
/// and where the job was found.
///
/// A queue is only stolen from when it looks non-empty: looking is a few
/// loads, while a steal from a sibling pins crossbeam's epoch first (a
/// thread-local and a fence), and every worker looks everywhere once
/// after each job before it sleeps (about 50 instructions per request).
/// A job pushed just after a look is missed exactly as by a steal that
/// found the queue empty a moment earlier, which loses nothing: one in the
/// injector is seen by the last look before sleeping (see
/// [`Pool::notify`]), and one in a sibling's deque is that sibling's next.
fn find_job(index: usize, local: &Worker<Job>, shared: &Shared) -> Option<(Job, Source)> {
    if let Some(job) = local.pop() {
        return Some((job, Source::Own));
    }
    iter::repeat_with(|| {
        let from_injector = if shared.injector.is_empty() {
            Steal::Empty
        } else {
            tagged(shared.injector.steal_batch_and_pop(local), Source::Injector)
        };
        from_injector.or_else(|| {
            shared
                .stealers
                .iter()
                .enumerate()
                .filter(|(i, s)| *i != index && !s.is_empty())
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
        // Every job is done: the workers exit well within the grace.
        assert_eq!(pool.shutdown(Duration::from_secs(20)), Leftovers::default());
    }

    /// The nice value of the thread running a job of `pool` (Linux: field
    /// 19 of `/proc/thread-self/stat`, after the command name).
    #[cfg(target_os = "linux")]
    fn nice_of_a_worker(pool: &Pool) -> i64 {
        let (tx, rx) = mpsc::channel();
        pool.submit(Box::new(move || {
            let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap();
            let after_name = stat.rsplit_once(')').unwrap().1;
            tx.send(
                after_name
                    .split_whitespace()
                    .nth(16)
                    .unwrap()
                    .parse()
                    .unwrap(),
            )
            .unwrap();
        }));
        pool.notify(1);
        rx.recv_timeout(Duration::from_secs(20)).expect("job ran")
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn background_pool_threads_run_below_the_normal_ones() {
        let normal = Pool::new(1).unwrap();
        let background = Pool::named(1, "test-background", Priority::Background).unwrap();
        let (low, high) = (nice_of_a_worker(&background), nice_of_a_worker(&normal));
        // 19 is the lowest priority there is: a test run already at 19
        // cannot go further.
        assert_eq!(
            low,
            (high + i64::from(WARM_NICE)).min(19),
            "{low} vs {high}"
        );
        normal.shutdown(Duration::from_secs(20));
        background.shutdown(Duration::from_secs(20));
    }

    /// Regression (`pool.shutdown()` ran every queued job and joined every
    /// worker, so a worker blocked on a hung mount kept the process alive):
    /// shutdown drops the queue and leaves the stuck worker behind.
    #[test]
    fn shutdown_drops_queued_jobs_and_does_not_wait_for_a_stuck_worker() {
        let pool = Pool::new(1).unwrap();
        let (entered_tx, entered) = mpsc::channel();
        let (release, released) = mpsc::channel::<()>();
        pool.submit(Box::new(move || {
            entered_tx.send(()).unwrap();
            // Stuck until the test lets it go (after the assertions).
            let _ = released.recv();
        }));
        pool.notify(1);
        entered
            .recv_timeout(Duration::from_secs(20))
            .expect("the job never started");
        let (ran_tx, ran) = mpsc::channel();
        for i in 0..5 {
            let ran_tx = ran_tx.clone();
            pool.submit(Box::new(move || ran_tx.send(i).unwrap()));
        }
        pool.notify(5);
        let left = pool.shutdown(Duration::from_millis(50));
        assert_eq!(
            left,
            Leftovers {
                dropped_jobs: 5,
                busy_workers: 1
            }
        );
        drop(release);
        drop(ran_tx);
        assert_eq!(ran.iter().count(), 0, "a queued job ran after shutdown");
    }
}
