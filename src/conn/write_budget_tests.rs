//! Unit tests of the write budget: a file body larger than
//! [`WRITE_BUDGET`] goes out in `sendfile` calls of at most the budget, and
//! the connection yields to the others after each budget's worth.
//!
//! Runs on: the test thread.

use super::*;
use crate::http::response::Status;
use std::net::Ipv4Addr;

/// A socket that takes everything, recording what each `send_file` asked for.
struct Recorder {
    input: Vec<u8>,
    /// `len` of each `send_file` call, in order.
    asked: Vec<usize>,
    file_bytes: u64,
}

impl Transport for Recorder {
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
        Ok(bufs.iter().map(|b| b.len()).sum())
    }

    fn send_file(&mut self, _file: &File, _offset: u64, len: usize) -> io::Result<usize> {
        self.asked.push(len);
        self.file_bytes += len as u64;
        Ok(len)
    }

    fn shutdown_write(&mut self) {}
}

use super::test_call as call;

/// A body of two and a half budgets goes out in calls of a whole budget
/// (few `sendfile`s per byte), a budget per turn, yielding between turns
/// (so a fast reader of a large file does not starve the other connections
/// of the one reactor thread).
#[test]
fn large_file_is_sent_a_whole_budget_per_sendfile_and_yields_between() {
    const BUDGET: usize = WRITE_BUDGET as usize;
    let dir = std::env::temp_dir().join(format!("stoke-budget-unit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("big.bin");
    let len = 2 * WRITE_BUDGET + WRITE_BUDGET / 2;
    // Sparse: the fake never reads it.
    File::create(&path).unwrap().set_len(len).unwrap();

    let fake = Recorder {
        input: b"GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
        asked: Vec::new(),
        file_bytes: 0,
    };
    let mut conn = Connection::new(fake, IpAddr::V4(Ipv4Addr::LOCALHOST), Instant::now());
    let action = call(&mut conn, |c, cx| c.resume(cx));
    assert!(matches!(action, Action::Dispatch(_)), "{action:?}");
    let response = Response {
        status: Status::OK,
        chunks: vec![
            Chunk::Bytes(b"HTTP/1.1 200 OK\r\n\r\n".to_vec()),
            Chunk::File {
                file: Arc::new(File::open(&path).unwrap()),
                offset: 0,
                len,
            },
        ],
        close: false,
        log: None,
    };
    let mut actions = vec![call(&mut conn, |c, cx| c.complete(response, cx))];
    while matches!(actions.last(), Some(Action::Yield)) {
        assert!(actions.len() < 10, "the connection keeps yielding");
        actions.push(call(&mut conn, |c, cx| c.resume(cx)));
    }
    assert_eq!(conn.io.asked, vec![BUDGET, BUDGET, BUDGET / 2]);
    assert_eq!(conn.io.file_bytes, len);
    assert!(
        matches!(
            actions.as_slice(),
            [Action::Yield, Action::Yield, Action::Wait]
        ),
        "{actions:?}"
    );
    assert!(
        conn.is_idle(),
        "the response is done and the connection kept"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
