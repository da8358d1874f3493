//! Real HTTP clients (curl, wget, Python's http.client) fetch a small demo
//! site byte-for-byte, see the right Content-Type per file type, resolve
//! percent-encoded UTF-8 names, and reuse one keep-alive connection.
mod common;
use common::*;

use std::fs;
use std::process::{Command, Output};

/// One file of the demo site: (name on disk, URL path, contents).
type DemoFile = (&'static str, &'static str, Vec<u8>);

fn site() -> (TempDir, Vec<DemoFile>) {
    let root = TempDir::new("clients");
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    png.extend(pattern(3000, 42));
    let files = vec![
        (
            "index.html",
            "/index.html",
            b"<!doctype html><title>demo</title><link rel=stylesheet href=style.css>\n".to_vec(),
        ),
        (
            "style.css",
            "/style.css",
            b"body { color: #333; }\n".to_vec(),
        ),
        ("app.js", "/app.js", b"console.log('hi');\n".to_vec()),
        ("logo.png", "/logo.png", png),
        (
            "ünï code.txt",
            "/%C3%BCn%C3%AF%20code.txt",
            "ünïcödé text\n".as_bytes().to_vec(),
        ),
    ];
    for (name, _, body) in &files {
        root.write(name, body);
    }
    (root, files)
}

/// Runs a client with no proxy settings from the environment.
fn run(program: &str, args: &[&str]) -> Output {
    let out = Command::new(program)
        .args(args)
        .env_remove("http_proxy")
        .env_remove("HTTP_PROXY")
        .env_remove("all_proxy")
        .env_remove("ALL_PROXY")
        .output()
        .unwrap_or_else(|e| panic!("run {program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

#[test]
fn curl_downloads_every_file_byte_for_byte() {
    if !available("curl") {
        return;
    }
    let (root, files) = site();
    let server = TestServer::start(root.path());
    let out_dir = TempDir::new("clients-out");
    for (i, (name, path, body)) in files.iter().enumerate() {
        let dest = out_dir.path().join(format!("out{i}"));
        let url = format!("http://{}{path}", server.addr);
        run(
            "curl",
            &["-sS", "--fail", "-o", dest.to_str().unwrap(), &url],
        );
        assert!(fs::read(&dest).unwrap() == *body, "{name}: bytes differ");
    }
}

#[test]
fn curl_sees_the_content_type_of_each_file_type() {
    if !available("curl") {
        return;
    }
    let (root, _) = site();
    let server = TestServer::start(root.path());
    // (path, expected Content-Type)
    for (path, expected) in [
        ("/index.html", "text/html; charset=utf-8"),
        ("/style.css", "text/css; charset=utf-8"),
        ("/app.js", "javascript; charset=utf-8"),
        ("/logo.png", "image/png"),
    ] {
        let url = format!("http://{}{path}", server.addr);
        let out = run(
            "curl",
            &["-sS", "--fail", "-D", "-", "-o", "/dev/null", &url],
        );
        let head = String::from_utf8(out.stdout).unwrap();
        let ty = head
            .lines()
            .find_map(|l| {
                let (n, v) = l.split_once(':')?;
                n.eq_ignore_ascii_case("content-type").then(|| v.trim())
            })
            .unwrap_or_else(|| panic!("{path}: no Content-Type in {head:?}"));
        assert!(
            ty.ends_with(expected),
            "{path}: Content-Type {ty:?}, want {expected:?}"
        );
    }
}

#[test]
fn wget_downloads_a_file() {
    if !available("wget") {
        return;
    }
    let (root, files) = site();
    let server = TestServer::start(root.path());
    let out_dir = TempDir::new("clients-wget");
    let dest = out_dir.path().join("logo.png");
    let url = format!("http://{}/logo.png", server.addr);
    run(
        "wget",
        &["-q", "--no-proxy", "-O", dest.to_str().unwrap(), &url],
    );
    let logo = &files.iter().find(|f| f.0 == "logo.png").unwrap().2;
    assert!(fs::read(&dest).unwrap() == *logo, "wget: bytes differ");
}

#[test]
fn python_http_client_makes_two_requests_on_one_connection() {
    if !available("python3") {
        return;
    }
    let (root, files) = site();
    let server = TestServer::start(root.path());
    let script = r#"
import http.client, sys
conn = http.client.HTTPConnection(sys.argv[1], int(sys.argv[2]), timeout=20)
socks = []
for path in ("/index.html", "/%C3%BCn%C3%AF%20code.txt"):
    conn.request("GET", path)
    r = conn.getresponse()
    body = r.read()
    socks.append(conn.sock)
    print(r.status, len(body))
print("same connection:", socks[0] is socks[1] and socks[0] is not None)
"#;
    let host = server.addr.ip().to_string();
    let port = server.addr.port().to_string();
    let out = run("python3", &["-c", script, &host, &port]);
    let expected = format!(
        "200 {}\n200 {}\nsame connection: True\n",
        files[0].2.len(),
        files[4].2.len()
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), expected);
    let summary = server.stop();
    assert_eq!((summary.connections, summary.requests), (1, 2));
}
