//! Unit tests of the cold-file decision: a transport whose page-cache probe
//! (a fake here) says "not cached" gets [`Action::Warm`] instead of a
//! `sendfile`, and nothing of the file is sent until [`Connection::warmed`].
//!
//! Runs on: the test thread.

use super::*;
use crate::http::response::Status;
use std::net::Ipv4Addr;
use std::os::unix::fs::FileExt;

/// A socket that takes everything, with a scripted page-cache probe.
struct ColdFake {
    input: Vec<u8>,
    output: Vec<u8>,
    /// Answers of `file_ready`, first to last; once used up: ready.
    probes: Vec<bool>,
    probes_asked: usize,
    /// Bytes sent with `send_file`.
    file_bytes: u64,
}

impl Transport for ColdFake {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.input.is_empty() {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let n = buf.len().min(self.input.len());
        buf[..n].copy_from_slice(&self.input[..n]);
        self.input.drain(..n);
        Ok(n)
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        let mut n = 0;
        for b in bufs {
            self.output.extend_from_slice(b);
            n += b.len();
        }
        Ok(n)
    }

    fn send_file(&mut self, file: &File, offset: u64, len: usize) -> io::Result<usize> {
        let mut buf = vec![0; len];
        let n = file.read_at(&mut buf, offset)?;
        self.output.extend_from_slice(&buf[..n]);
        self.file_bytes += n as u64;
        Ok(n)
    }

    fn shutdown_write(&mut self) {}

    fn file_ready(&mut self, _file: &File, _offset: u64, _len: usize) -> bool {
        let ready = self.probes.get(self.probes_asked).copied().unwrap_or(true);
        self.probes_asked += 1;
        ready
    }
}

use super::test_call as call;

/// Regression (`sendfile` ran on the reactor for a file not in the page
/// cache, stalling every connection while the disk read): an uncached file
/// range is handed out to be warmed, and sent only once it is.
#[test]
fn uncached_file_range_is_warmed_before_it_is_sent() {
    let body: Vec<u8> = (0..10_000u32).map(|i| i as u8).collect();
    let dir = std::env::temp_dir().join(format!("stoke-cold-unit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("body.bin");
    std::fs::write(&path, &body).unwrap();
    let file = Arc::new(File::open(&path).unwrap());

    let fake = ColdFake {
        input: b"GET /body.bin HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
        output: Vec::new(),
        probes: vec![false],
        probes_asked: 0,
        file_bytes: 0,
    };
    let mut conn = Connection::new(fake, IpAddr::V4(Ipv4Addr::LOCALHOST), Instant::now());
    let action = call(&mut conn, |c, cx| c.resume(cx));
    assert!(matches!(action, Action::Dispatch(_)), "{action:?}");
    let head = b"HTTP/1.1 200 OK\r\nContent-Length: 10000\r\n\r\n".to_vec();
    let response = Response {
        status: Status::OK,
        chunks: vec![
            Chunk::Bytes(head.clone()),
            Chunk::File {
                file: Arc::clone(&file),
                offset: 0,
                len: body.len() as u64,
            },
        ],
        close: false,
        log: None,
    };
    let action = call(&mut conn, |c, cx| c.complete(response, cx));
    let Action::Warm(warm) = action else {
        panic!("expected a warm-up, got {action:?}");
    };
    assert_eq!((warm.offset, warm.len), (0, body.len() as u64));
    assert_eq!(conn.io.file_bytes, 0, "sent file bytes before the warm-up");
    assert_eq!(conn.io.output, head, "the head goes out at once");

    // A readiness event while the pool warms: no probe, no send.
    let action = call(&mut conn, |c, cx| c.resume(cx));
    assert!(matches!(action, Action::Wait), "{action:?}");
    assert_eq!((conn.io.probes_asked, conn.io.file_bytes), (1, 0));

    let action = call(&mut conn, |c, cx| c.warmed(cx));
    assert!(matches!(action, Action::Wait), "{action:?}");
    assert!(
        conn.is_idle(),
        "the response is done and the connection kept"
    );
    assert_eq!(&conn.io.output[head.len()..], &body[..]);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A cached file goes straight to `sendfile`: one probe, no warm-up.
#[test]
fn cached_file_range_is_sent_without_a_warm_up() {
    let dir = std::env::temp_dir().join(format!("stoke-warm-unit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("body.bin");
    std::fs::write(&path, b"hello").unwrap();
    let fake = ColdFake {
        input: b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
        output: Vec::new(),
        probes: vec![true],
        probes_asked: 0,
        file_bytes: 0,
    };
    let mut conn = Connection::new(fake, IpAddr::V4(Ipv4Addr::LOCALHOST), Instant::now());
    assert!(matches!(
        call(&mut conn, |c, cx| c.resume(cx)),
        Action::Dispatch(_)
    ));
    let response = Response {
        status: Status::OK,
        chunks: vec![
            Chunk::Bytes(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n".to_vec()),
            Chunk::File {
                file: Arc::new(File::open(&path).unwrap()),
                offset: 0,
                len: 5,
            },
        ],
        close: false,
        log: None,
    };
    let action = call(&mut conn, |c, cx| c.complete(response, cx));
    assert!(matches!(action, Action::Wait), "{action:?}");
    assert_eq!((conn.io.probes_asked, conn.io.file_bytes), (1, 5));
    std::fs::remove_dir_all(&dir).unwrap();
}
