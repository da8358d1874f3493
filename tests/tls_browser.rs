//! A real browser over HTTPS: headless Chromium loads a page and its
//! stylesheet from stoke's TLS listener, trusting the test certificate by
//! its public-key hash (`--ignore-certificate-errors-spki-list`, which
//! accepts exactly that key and nothing else), and the DOM it built shows
//! the page. Without Chromium the test is skipped, except under CI.
mod common;
mod tls_support;

use common::browser::{chromium_or_skip, run_chromium};
use common::*;
use tls_support::*;

use std::io::Write;
use std::process::{Command, Stdio};

/// base64(sha256(SPKI)), the form Chromium's SPKI allow-list takes.
fn spki_hash(spki: &[u8]) -> String {
    let mut child = Command::new("sh")
        .args(["-c", "openssl dgst -sha256 -binary | openssl base64 -A"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("openssl");
    child.stdin.take().unwrap().write_all(spki).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

#[test]
fn chromium_loads_a_page_over_https() {
    let Some(bin) = chromium_or_skip() else {
        return;
    };
    let fx = TlsFixture::new("tls-browser");
    fx.root.write(
        "index.html",
        "<!doctype html><html><head><title>secure page</title>\
         <link rel=stylesheet href=style.css></head>\
         <body><p id=msg>served over TLS</p>\
         <script>document.getElementById('msg').dataset.color = \
         getComputedStyle(document.getElementById('msg')).color;</script></body></html>\n",
    );
    fx.root
        .write("style.css", "#msg { color: rgb(1, 2, 3); }\n");
    let server = TestServer::with_config(fx.config());
    let url = format!("https://localhost:{}/index.html", server.addr.port());
    let work = TempDir::new("tls-browser-profile");
    let out = run_chromium(
        &bin,
        work.path(),
        &[
            format!(
                "--ignore-certificate-errors-spki-list={}",
                spki_hash(&fx.issued.spki)
            ),
            "--dump-dom".into(),
            url,
        ],
    );
    let dom = String::from_utf8_lossy(&out.stdout).into_owned();
    let log = String::from_utf8_lossy(&out.stderr).into_owned();
    let status = out.status;
    assert!(status.success(), "chromium failed: {log}");
    assert!(
        dom.contains("<title>secure page</title>"),
        "DOM: {dom}\n{log}"
    );
    assert!(dom.contains("served over TLS"), "DOM: {dom}");
    // The stylesheet came over the same TLS listener and applied.
    assert!(dom.contains("data-color=\"rgb(1, 2, 3)\""), "DOM: {dom}");
    let summary = server.stop();
    assert!(summary.requests >= 2, "page and stylesheet: {summary:?}");
}
