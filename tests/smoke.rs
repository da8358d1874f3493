//! The shortest end-to-end check: a file, over a real socket.
mod common;
use common::*;

#[test]
fn serves_a_file_and_404s_a_missing_one() {
    let root = TempDir::new("smoke");
    root.write("hello.txt", "hello\n");
    let server = TestServer::start(root.path());
    let r = get(server.addr, "/hello.txt", &[]);
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"hello\n");
    assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
    assert_eq!(get(server.addr, "/missing", &[]).status, 404);
    let summary = server.stop();
    assert_eq!(summary.requests, 2);
}
