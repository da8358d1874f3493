//! The access log (`RUST_LOG` with `access=info`): the real binary's line
//! for a request shows its referer and user agent. The parser keeps those
//! two fields only while the log is on (`http::request::Keep`), so this is
//! what would catch a connection that asked for too little.
mod common;
use common::*;

#[test]
fn access_log_line_shows_referer_and_user_agent() {
    let root = TempDir::new("access-log");
    root.write("a.txt", "alpha");
    let mut server = ChildServer::start(root.path(), &[]);
    let r = get(
        server.addr,
        "/a.txt",
        &["Referer: http://example.com/from", "User-Agent: probe/1.0"],
    );
    assert_eq!((r.status, r.text().as_str()), (200, "alpha"));
    server.signal(libc::SIGTERM);
    let status = server.child.wait().unwrap();
    assert!(status.success(), "exit status {status}");
    let log = server.rest_of_stderr();
    let line = log
        .lines()
        .find(|l| l.contains("\"GET /a.txt HTTP/1.1\" 200"))
        .unwrap_or_else(|| panic!("no access log line:\n{log}"));
    assert!(
        line.ends_with("\"http://example.com/from\" \"probe/1.0\""),
        "{line}"
    );
}
