//! Configuration flags that shape response headers: `cache_control` adds
//! Cache-Control to file responses (200, 206, 304, HEAD); `headers` adds
//! custom fields to file and listing responses; the `mime` table overrides
//! the guessed Content-Type (case-insensitively on the extension). Also the
//! defaults: no Cache-Control unless configured, and the built-in types; and
//! fields stoke writes itself are refused as `--header` at start-up.
mod common;
use common::*;

fn tree() -> TempDir {
    let root = TempDir::new("headers");
    root.write("notes.md", "# title\n");
    root.write("LOUD.MD", "# loud\n");
    root.write("page.html", "<p>hi</p>");
    root.write("data.json", "{}");
    root.write("img.png", pattern(100, 41));
    root.write("blob.unknownext", "?");
    root.write("noext", "n");
    root.write("sub/a.txt", "a");
    root
}

fn configured(root: &TempDir) -> TestServer {
    TestServer::with(root.path(), |c| {
        c.cache_control = Some("max-age=60".into());
        c.headers = vec![
            ("X-Frame-Options".into(), "DENY".into()),
            ("X-Custom".into(), "one two".into()),
        ];
        c.mime.insert("md".into(), "text/markdown".into());
        c.mime.insert("png".into(), "image/x-custom".into());
        c.listing = true;
    })
}

#[test]
fn cache_control_and_custom_headers_on_file_responses() {
    let root = tree();
    let server = configured(&root);
    let etag = get(server.addr, "/page.html", &[])
        .header("etag")
        .unwrap()
        .to_owned();
    let cases: Vec<(Vec<String>, u16)> = vec![
        (vec![], 200),
        (vec!["Range: bytes=0-1".into()], 206),
        (vec!["Range: bytes=0-0,2-3".into()], 206),
        (vec![format!("If-None-Match: {etag}")], 304),
    ];
    for (extra, want) in &cases {
        let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
        let r = get(server.addr, "/page.html", &extra);
        assert_eq!(r.status, *want, "{extra:?}");
        assert_eq!(r.header("cache-control"), Some("max-age=60"), "{extra:?}");
        assert_eq!(r.header("x-frame-options"), Some("DENY"), "{extra:?}");
        assert_eq!(r.header("x-custom"), Some("one two"), "{extra:?}");
    }
    let r = roundtrip(
        server.addr,
        "HEAD /page.html HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(r.header("cache-control"), Some("max-age=60"));
    assert_eq!(r.header("x-frame-options"), Some("DENY"));
}

#[test]
fn custom_headers_on_listings() {
    let root = tree();
    let server = configured(&root);
    let r = get(server.addr, "/sub/", &[]);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-frame-options"), Some("DENY"));
}

#[test]
fn defaults_have_no_cache_control_or_custom_headers() {
    let root = tree();
    let server = TestServer::start(root.path());
    let r = get(server.addr, "/page.html", &[]);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("cache-control"), None);
    assert_eq!(r.header("x-frame-options"), None);
}

#[test]
fn mime_table_overrides_guess() {
    let root = tree();
    let configured = configured(&root);
    let plain = TestServer::start(root.path());
    // (path, type with the mime table, type without it)
    let cases = [
        ("/notes.md", "text/markdown", None),
        ("/LOUD.MD", "text/markdown", None),
        ("/img.png", "image/x-custom", Some("image/png")),
        (
            "/page.html",
            "text/html; charset=utf-8",
            Some("text/html; charset=utf-8"),
        ),
        (
            "/data.json",
            "application/json; charset=utf-8",
            Some("application/json; charset=utf-8"),
        ),
        (
            "/blob.unknownext",
            "application/octet-stream",
            Some("application/octet-stream"),
        ),
        (
            "/noext",
            "application/octet-stream",
            Some("application/octet-stream"),
        ),
    ];
    for (path, with_table, without) in cases {
        let r = get(configured.addr, path, &[]);
        assert_eq!(r.status, 200, "{path}");
        assert_eq!(r.header("content-type"), Some(with_table), "{path}");
        let r = get(plain.addr, path, &[]);
        if let Some(t) = without {
            assert_eq!(r.header("content-type"), Some(t), "{path} (default)");
        } else {
            assert_ne!(
                r.header("content-type"),
                Some("text/markdown"),
                "{path}: only the table maps md"
            );
        }
    }
    // The mapped type applies to ranged parts too.
    let r = get(configured.addr, "/notes.md", &["Range: bytes=0-0,2-3"]);
    assert_eq!(r.status, 206);
    assert!(r.text().contains("Content-Type: text/markdown\r\n"));
}

#[test]
fn standard_headers_on_every_response() {
    let root = tree();
    let server = configured(&root);
    for path in ["/page.html", "/missing", "/sub/"] {
        let r = get(server.addr, path, &[]);
        assert_eq!(r.header("server"), Some("stoke"), "{path}");
        let date = r.header("date").expect("Date");
        assert!(httpdate::parse_http_date(date).is_ok(), "{path}: {date}");
    }
}

#[test]
fn cli_flags_reach_the_real_binary() {
    let root = tree();
    let mut child = ChildServer::start(
        root.path(),
        &[
            "--cache-control",
            "max-age=60",
            "--header",
            "X-Frame-Options: DENY",
            "--mime",
            "md=text/markdown",
        ],
    );
    let r = get(child.addr, "/notes.md", &[]);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/markdown"));
    assert_eq!(r.header("cache-control"), Some("max-age=60"));
    assert_eq!(r.header("x-frame-options"), Some("DENY"));
    child.signal(libc::SIGTERM);
    let status = child.child.wait().unwrap();
    assert!(status.success(), "{}", child.rest_of_stderr());
}

/// Regression (`--header 'Content-Length: 5'` was accepted and written beside
/// stoke's own Content-Length, a desync risk): the binary refuses it at
/// start-up with one `stoke:` line naming the field, and exits non-zero
/// without serving.
#[test]
fn header_option_refuses_fields_the_server_manages() {
    let root = tree();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_stoke"))
        .arg(root.path())
        .args(["--listen", "127.0.0.1:0", "--header", "Content-Length: 5"])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success(), "exited successfully");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "stderr {stderr:?}");
    assert!(lines[0].starts_with("stoke:"), "{stderr:?}");
    assert!(
        lines[0].contains("\"Content-Length\"") && lines[0].contains("itself"),
        "{stderr:?}"
    );
}
