//! The floor: stoke's shape with none of its HTTP work, to measure what the
//! design itself costs on this machine (`make bench`, section `floor`).
//!
//! One reactor thread owns a `mio::Poll`, the listener and every connection
//! (a `slab::Slab` keyed by token). When a connection's bytes hold a
//! request head (up to the blank line, nothing parsed), the reactor pushes
//! a job onto a `crossbeam_deque::Injector`, once per turn for all the
//! turn's jobs, and unparks as many idle workers as there are jobs. A worker
//! "answers" (there is nothing to do: every answer is the same 1 KiB page)
//! and posts the connection's key on a completion queue, waking the reactor
//! through a `mio::Waker` only if the reactor sleeps. The reactor writes
//! each answer with one `writev` (head and body), and closes the connection
//! after it if the request said `Connection: close`.
//!
//! So per request: one `recvfrom`, one `writev`, a share of `epoll_wait`
//! and of the hand-off's wake-ups. Whatever stoke spends beyond this
//! program is its HTTP work; whatever this program spends is the design's
//! and the kernel's.
//!
//! Usage: `stoke-floor 127.0.0.1:PORT [WORKERS]` (2 workers by default).
//!
//! Runs on: `main` is the reactor; `worker` runs on each worker thread.

use std::io::{self, ErrorKind, Read};
use std::mem;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, Thread};

use crossbeam_deque::{Injector, Steal};
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token, Waker};

const LISTENER: Token = Token(usize::MAX - 1);
const WAKER: Token = Token(usize::MAX - 2);
/// A request head must fit (wrk's are about 100 bytes).
const READ_BUFFER: usize = 4096;
const BODY: usize = 1024;

/// A connection's key in the slab and its generation: a key is reused
/// after a close, and an answer must not reach the next connection.
type Job = (usize, u64);

/// What the reactor and the workers share.
struct Shared {
    jobs: Injector<Job>,
    /// Answered connections, drained by the reactor.
    done: Mutex<Vec<Job>>,
    /// The reactor sleeps (or is about to) in `poll`: a completion must wake it.
    reactor_parked: AtomicBool,
    /// A worker already woke it since it last drained `done`.
    wake_pending: AtomicBool,
    waker: Waker,
    /// Workers parked (or about to be), each with its `asleep` flag.
    workers: Vec<(Thread, Arc<AtomicBool>)>,
}

/// The one page every request gets, with a head for each way a
/// connection goes on (a client must be told the server closes, or it
/// sends its next request on a closed connection).
struct Answer {
    keep_alive: Vec<u8>,
    closing: Vec<u8>,
    body: Vec<u8>,
}

impl Answer {
    fn new() -> Answer {
        let head = |connection: &str| {
            format!(
                "HTTP/1.1 200 OK\r\nServer: stoke-floor\r\nDate: Sun, 29 Nov 2026 00:00:00 GMT\r\n\
                 Content-Type: text/html\r\nContent-Length: {BODY}\r\n\
                 Last-Modified: Sun, 29 Nov 2026 00:00:00 GMT\r\nETag: \"6743-400\"\r\n\
                 Accept-Ranges: bytes\r\n{connection}\r\n"
            )
            .into_bytes()
        };
        Answer {
            keep_alive: head(""),
            closing: head("Connection: close\r\n"),
            body: vec![b'x'; BODY],
        }
    }
}

struct Conn {
    generation: u64,
    stream: TcpStream,
    buf: Box<[u8; READ_BUFFER]>,
    len: usize,
    /// Bytes of the current answer written so far (a write may be partial).
    written: usize,
    close_after: bool,
}

fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(addr), workers) = (args.next(), args.next()) else {
        eprintln!("usage: stoke-floor 127.0.0.1:PORT [WORKERS]");
        std::process::exit(2);
    };
    let addr = addr.parse().unwrap_or_else(|e| fail("address", e));
    let workers: usize = workers.map_or(2, |w| w.parse().unwrap_or_else(|e| fail("workers", e)));
    if let Err(e) = run(addr, workers.max(1)) {
        fail("serve", e);
    }
}

fn fail(what: &str, e: impl std::fmt::Display) -> ! {
    eprintln!("stoke-floor: {what}: {e}");
    std::process::exit(1);
}

fn run(addr: std::net::SocketAddr, n_workers: usize) -> io::Result<()> {
    let mut poll = Poll::new()?;
    let mut listener = TcpListener::bind(addr)?;
    poll.registry()
        .register(&mut listener, LISTENER, Interest::READABLE)?;
    let waker = Waker::new(poll.registry(), WAKER)?;

    // Workers start parked; their handles are needed to unpark them.
    let (tx, rx) = std::sync::mpsc::channel::<Arc<Shared>>();
    let rx = Arc::new(Mutex::new(rx));
    let mut workers = Vec::new();
    for i in 0..n_workers {
        let asleep = Arc::new(AtomicBool::new(false));
        let (rx, flag) = (Arc::clone(&rx), Arc::clone(&asleep));
        let handle = thread::Builder::new()
            .name(format!("floor-worker-{i}"))
            .spawn(move || {
                let shared = rx.lock().unwrap().recv().unwrap();
                worker(&shared, &flag)
            })?;
        workers.push((handle.thread().clone(), asleep));
    }
    let shared = Arc::new(Shared {
        jobs: Injector::new(),
        done: Mutex::new(Vec::new()),
        reactor_parked: AtomicBool::new(false),
        wake_pending: AtomicBool::new(false),
        waker,
        workers,
    });
    for _ in 0..n_workers {
        let _ = tx.send(Arc::clone(&shared));
    }

    let answer = Answer::new();

    let mut conns: slab::Slab<Conn> = slab::Slab::new();
    let mut generation = 0;
    let mut events = Events::with_capacity(1024);
    let mut jobs = 0;
    let mut done = Vec::new();
    loop {
        // Sleep only if no completion waits (the Dekker handshake with
        // `worker`: we set the flag, then look; it posts, then looks).
        shared.reactor_parked.store(true, Ordering::SeqCst);
        let idle = shared.done.lock().unwrap().is_empty();
        let timeout = if idle {
            None
        } else {
            Some(std::time::Duration::ZERO)
        };
        match poll.poll(&mut events, timeout) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
        shared.reactor_parked.store(false, Ordering::SeqCst);

        for event in events.iter() {
            match event.token() {
                LISTENER => accept(&mut listener, &mut conns, &poll, &mut generation)?,
                WAKER => {}
                Token(key) => {
                    if event.is_writable() && conns.get(key).is_some_and(|c| c.written > 0) {
                        jobs += write_answer(&mut conns, key, &answer, &shared);
                    }
                    if event.is_readable() || event.is_read_closed() {
                        jobs += read_requests(&mut conns, key, &shared);
                    }
                }
            }
        }
        mem::swap(&mut *shared.done.lock().unwrap(), &mut done);
        shared.wake_pending.store(false, Ordering::SeqCst);
        for (key, generation) in done.drain(..) {
            if conns.get(key).is_some_and(|c| c.generation == generation) {
                // A pipelined request already read is queued behind it.
                jobs += write_answer(&mut conns, key, &answer, &shared);
            }
        }
        hand_off(&shared, mem::take(&mut jobs));
    }
}

/// One hand-off for a turn's jobs: unpark a sleeping worker per job, at most.
fn hand_off(shared: &Shared, mut jobs: usize) {
    for (thread, asleep) in &shared.workers {
        if jobs == 0 {
            return;
        }
        if asleep.swap(false, Ordering::SeqCst) {
            thread.unpark();
            jobs -= 1;
        }
    }
}

fn accept(
    listener: &mut TcpListener,
    conns: &mut slab::Slab<Conn>,
    poll: &Poll,
    generation: &mut u64,
) -> io::Result<()> {
    loop {
        let (mut stream, _) = match listener.accept() {
            Ok(accepted) => accepted,
            Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(()),
            Err(e) => return Err(e),
        };
        stream.set_nodelay(true)?;
        let entry = conns.vacant_entry();
        poll.registry().register(
            &mut stream,
            Token(entry.key()),
            Interest::READABLE | Interest::WRITABLE,
        )?;
        *generation += 1;
        entry.insert(Conn {
            generation: *generation,
            stream,
            buf: Box::new([0; READ_BUFFER]),
            len: 0,
            written: 0,
            close_after: false,
        });
    }
}

/// Reads what the socket has and queues a job if a whole head arrived (one
/// request at a time: a pipelined one waits in the buffer until the answer
/// before it is written). Returns the jobs queued (0 or 1).
fn read_requests(conns: &mut slab::Slab<Conn>, key: usize, shared: &Shared) -> usize {
    let Some(conn) = conns.get_mut(key) else {
        return 0;
    };
    loop {
        match conn.stream.read(&mut conn.buf[conn.len..]) {
            Ok(0) => {
                conns.remove(key);
                return 0;
            }
            // A short read emptied the socket: edge-triggered is satisfied.
            Ok(n) if conn.len + n < READ_BUFFER => {
                conn.len += n;
                break;
            }
            Ok(n) => conn.len += n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => break,
            Err(_) => {
                conns.remove(key);
                return 0;
            }
        }
        if conn.len == READ_BUFFER {
            conns.remove(key); // a head too big: not what this program is for
            return 0;
        }
    }
    queue_if_complete(conn, key, shared)
}

fn queue_if_complete(conn: &mut Conn, key: usize, shared: &Shared) -> usize {
    if conn.written > 0 {
        return 0; // still writing the previous answer
    }
    let Some(end) = conn.buf[..conn.len]
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
    else {
        return 0;
    };
    let head = &conn.buf[..end];
    conn.close_after = head
        .windows(17)
        .any(|w| w.eq_ignore_ascii_case(b"connection: close"));
    conn.buf.copy_within(end + 4..conn.len, 0);
    conn.len -= end + 4;
    shared.jobs.push((key, conn.generation));
    1
}

/// Writes (the rest of) the answer; then closes, or queues a pipelined
/// request already read. Returns the jobs queued (0 or 1).
fn write_answer(
    conns: &mut slab::Slab<Conn>,
    key: usize,
    answer: &Answer,
    shared: &Shared,
) -> usize {
    let Some(conn) = conns.get_mut(key) else {
        return 0;
    };
    let head = if conn.close_after {
        &answer.closing[..]
    } else {
        &answer.keep_alive[..]
    };
    let total = head.len() + answer.body.len();
    let skip = conn.written;
    let (head, body) = if skip < head.len() {
        (&head[skip..], &answer.body[..])
    } else {
        (&head[..0], &answer.body[skip - head.len()..])
    };
    let iov = [
        libc::iovec {
            iov_base: head.as_ptr() as *mut _,
            iov_len: head.len(),
        },
        libc::iovec {
            iov_base: body.as_ptr() as *mut _,
            iov_len: body.len(),
        },
    ];
    // SAFETY: the descriptor is the connection's open socket, and both
    // buffers outlive the call.
    let n = unsafe { libc::writev(conn.stream.as_raw_fd(), iov.as_ptr(), 2) };
    if n < 0 {
        if io::Error::last_os_error().kind() != ErrorKind::WouldBlock {
            conns.remove(key);
        }
        return 0; // the writable event resumes it
    }
    conn.written += n as usize;
    if conn.written < total {
        return 0;
    }
    conn.written = 0;
    if conn.close_after {
        conns.remove(key);
        return 0;
    }
    queue_if_complete(conn, key, shared)
}

fn worker(shared: &Shared, asleep: &AtomicBool) {
    loop {
        match shared.jobs.steal() {
            Steal::Success(job) => {
                // The answer is always the same page: posting is the job.
                shared.done.lock().unwrap().push(job);
                if shared.reactor_parked.load(Ordering::SeqCst)
                    && !shared.wake_pending.swap(true, Ordering::SeqCst)
                {
                    let _ = shared.waker.wake();
                }
            }
            Steal::Retry => {}
            Steal::Empty => {
                // Dekker with the reactor: flag, then look; it pushes, then
                // reads the flag. An unpark before the park is kept.
                asleep.store(true, Ordering::SeqCst);
                if shared.jobs.is_empty() {
                    thread::park();
                }
                asleep.store(false, Ordering::SeqCst);
            }
        }
    }
}
