//! A cached small file is never served stale, however it changes: edited in
//! place (even with the same size within one tick of the clock), replaced
//! by rename, a directory on its path replaced (by another directory or by
//! a symlink leading out of the root), written through a hard link from
//! outside the root, or deleted. Each change is followed at once by the
//! next request, with no wait: the reactor models' hits skip their stat
//! while inotify reports no change (`site::watcher`), and must see every
//! change a client could know of. The blocking models stat every hit.
//!
//! And the point of it: with no change, hits cost no stat at all
//! (counted by `Handle::freshness_checks`), except where inotify is blind.
mod common;
use common::*;

use std::fs;
use std::net::TcpStream;
use std::os::unix::fs::symlink;

/// `GET path` on a kept-alive connection: (status, body).
fn fetch(conn: &mut TcpStream, path: &str) -> (u16, String) {
    use std::io::{BufReader, Write};
    conn.write_all(format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes())
        .unwrap();
    let r = read_response(&mut BufReader::new(&mut *conn), false).unwrap();
    (r.status, r.text())
}

/// Requests `path` a few times, so that it is cached and proved fresh.
fn warm(conn: &mut TcpStream, path: &str, expect: &str) {
    for _ in 0..3 {
        assert_eq!(
            fetch(conn, path),
            (200, expect.to_string()),
            "warming {path}"
        );
    }
}

fn keepalive(server: &TestServer) -> TcpStream {
    let conn = server.connect();
    conn.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    conn
}

#[test]
fn a_file_rewritten_in_place_with_the_same_size_is_served_new_on_the_next_request() {
    let dir = TempDir::new("fresh-inplace");
    dir.write("page.html", "version 0000");
    let server = TestServer::start(dir.path());
    let mut conn = keepalive(&server);
    warm(&mut conn, "/page.html", "version 0000");
    // Back to back, same size, same inode: within one tick of the file
    // system's clock the stamp (size, mtime, ctime) may not move, which a
    // stat alone could miss; the file's own watch reports the write.
    for n in 1..200 {
        let body = format!("version {n:04}");
        fs::write(dir.path().join("page.html"), &body).unwrap();
        assert_eq!(
            fetch(&mut conn, "/page.html"),
            (200, body.clone()),
            "round {n}"
        );
        assert_eq!(
            fetch(&mut conn, "/page.html"),
            (200, body),
            "round {n}, again"
        );
    }
}

#[test]
fn a_file_replaced_by_rename_is_served_new_on_the_next_request() {
    let dir = TempDir::new("fresh-rename");
    dir.write("a/page.html", "old");
    let server = TestServer::start(dir.path());
    let mut conn = keepalive(&server);
    for n in 0..50 {
        warm(&mut conn, "/a/page.html", "old");
        let body = format!("new {n}");
        dir.write("a/tmp.html", &body);
        fs::rename(
            dir.path().join("a/tmp.html"),
            dir.path().join("a/page.html"),
        )
        .unwrap();
        assert_eq!(fetch(&mut conn, "/a/page.html"), (200, body), "round {n}");
        dir.write("a/page.html", "old");
    }
}

#[test]
fn a_directory_on_the_path_replaced_is_served_from_the_new_directory() {
    let dir = TempDir::new("fresh-dir");
    dir.write("site/deep/page.html", "tree 0");
    let server = TestServer::start(dir.path());
    let mut conn = keepalive(&server);
    warm(&mut conn, "/site/deep/page.html", "tree 0");
    for n in 1..30 {
        // A deploy: the new tree beside the old, then swapped in by name.
        let body = format!("tree {n}");
        dir.write("next/deep/page.html", &body);
        fs::rename(dir.path().join("site"), dir.path().join(format!("old{n}"))).unwrap();
        fs::rename(dir.path().join("next"), dir.path().join("site")).unwrap();
        assert_eq!(
            fetch(&mut conn, "/site/deep/page.html"),
            (200, body.clone()),
            "round {n}"
        );
        warm(&mut conn, "/site/deep/page.html", &body);
        // The old tree, moved away, is still watched: a change there
        // must not matter, and a change in the new one must.
        dir.write(&format!("old{n}/deep/page.html"), "moved away");
        let edited = format!("tree {n} edited");
        dir.write("site/deep/page.html", &edited);
        assert_eq!(
            fetch(&mut conn, "/site/deep/page.html"),
            (200, edited.clone()),
            "round {n}"
        );
        warm(&mut conn, "/site/deep/page.html", &edited);
    }
}

#[test]
fn a_directory_on_the_path_replaced_by_a_symlink_leading_outside_is_not_followed() {
    let base = TempDir::new("fresh-dirlink");
    base.write("outside/deep/page.html", "outside secret");
    base.write("root/site/deep/page.html", "inside");
    let root = base.path().join("root");
    let server = TestServer::start(&root);
    let mut conn = keepalive(&server);
    for n in 0..20 {
        base.write("root/site/deep/page.html", "inside");
        warm(&mut conn, "/site/deep/page.html", "inside");
        fs::rename(root.join("site"), base.path().join(format!("gone{n}"))).unwrap();
        symlink(base.path().join("outside"), root.join("site")).unwrap();
        let (status, body) = fetch(&mut conn, "/site/deep/page.html");
        assert!(matches!(status, 403 | 404), "round {n}: {status} {body}");
        assert!(
            !body.contains("secret") && !body.contains("inside"),
            "{body}"
        );
        fs::remove_file(root.join("site")).unwrap();
        fs::rename(base.path().join(format!("gone{n}")), root.join("site")).unwrap();
    }
}

#[test]
fn a_write_through_a_hard_link_from_outside_the_root_is_served_new() {
    let base = TempDir::new("fresh-hardlink");
    base.write("root/page.html", "linked 0");
    fs::create_dir_all(base.path().join("outside")).unwrap();
    let outside = base.path().join("outside/alias.html");
    fs::hard_link(base.path().join("root/page.html"), &outside).unwrap();
    let server = TestServer::start(&base.path().join("root"));
    let mut conn = keepalive(&server);
    warm(&mut conn, "/page.html", "linked 0");
    for n in 1..100 {
        // The same inode, written through a directory nobody watches.
        let body = format!("linked {n}");
        fs::write(&outside, &body).unwrap();
        assert_eq!(fetch(&mut conn, "/page.html"), (200, body), "round {n}");
    }
}

#[test]
fn a_deleted_file_is_not_found_on_the_next_request() {
    let dir = TempDir::new("fresh-deleted");
    let server = TestServer::start(dir.path());
    let mut conn = keepalive(&server);
    for n in 0..50 {
        dir.write("x/page.html", "here");
        warm(&mut conn, "/x/page.html", "here");
        fs::remove_file(dir.path().join("x/page.html")).unwrap();
        assert_eq!(fetch(&mut conn, "/x/page.html").0, 404, "round {n}");
    }
}

/// The reactor models trust inotify: once proved, hits cost no stat until
/// something changes, then one stat per path. The blocking models (no
/// reactor to fence) stat every hit, as before.
#[test]
fn hits_skip_the_stat_until_something_changes() {
    let dir = TempDir::new("fresh-count");
    dir.write("a/b/page.html", "page");
    dir.write("other.txt", "other");
    let server = TestServer::start(dir.path());
    let mut conn = keepalive(&server);
    // A miss, then the first hit proves the path (one stat).
    warm(&mut conn, "/a/b/page.html", "page");
    let proved = server.freshness_checks();
    for _ in 0..20 {
        assert_eq!(fetch(&mut conn, "/a/b/page.html"), (200, "page".into()));
    }
    let watched = matches!(
        model(),
        stoke::models::Model::Reactor | stoke::models::Model::ReactorInline
    );
    let expected = if watched { 0 } else { 20 };
    assert_eq!(
        server.freshness_checks() - proved,
        expected,
        "20 hits, no change"
    );
    // Any change in the watched tree: one stat proves the path again.
    dir.write("other.txt", "changed");
    let before = server.freshness_checks();
    for _ in 0..20 {
        assert_eq!(fetch(&mut conn, "/a/b/page.html"), (200, "page".into()));
    }
    let expected = if watched { 1 } else { 20 };
    assert_eq!(
        server.freshness_checks() - before,
        expected,
        "20 hits after a change"
    );
}

/// Where inotify would not see every change (a remote file system; here
/// the test hook that makes a directory count as one), hits stat as before.
#[test]
fn a_file_where_inotify_is_blind_is_checked_on_every_hit() {
    if !cfg!(feature = "test-hooks") {
        println!("SKIPPED: needs --features test-hooks");
        return;
    }
    let dir = TempDir::new("fresh-blind");
    dir.write("__stoke_test_remote/page.html", "remote 0");
    let server = TestServer::start(dir.path());
    let mut conn = keepalive(&server);
    warm(&mut conn, "/__stoke_test_remote/page.html", "remote 0");
    let before = server.freshness_checks();
    for _ in 0..20 {
        assert_eq!(
            fetch(&mut conn, "/__stoke_test_remote/page.html"),
            (200, "remote 0".into())
        );
    }
    assert_eq!(server.freshness_checks() - before, 20);
    dir.write("__stoke_test_remote/page.html", "remote 1");
    assert_eq!(
        fetch(&mut conn, "/__stoke_test_remote/page.html"),
        (200, "remote 1".into())
    );
}
