//! A real browser over HTTPS: headless Chromium loads a page and its
//! stylesheet from stoke's TLS listener, trusting the test certificate by
//! its public-key hash (`--ignore-certificate-errors-spki-list`, which
//! accepts exactly that key and nothing else), and the DOM it built shows
//! the page. Without Chromium the test is skipped, except under CI.
mod common;
mod tls_support;

use common::*;
use tls_support::*;

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long one Chromium run may take before it is killed.
const CHROMIUM_TIMEOUT: Duration = Duration::from_secs(60);

fn chromium() -> Option<PathBuf> {
    ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|c| have(c))
        .map(PathBuf::from)
}

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
    let Some(bin) = chromium() else {
        if std::env::var_os("CI").is_some() {
            panic!("chromium must be installed in CI");
        }
        println!("SKIPPED: chromium not installed");
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
    let stdout = work.path().join("stdout");
    let stderr = work.path().join("stderr");
    let mut child = Command::new(&bin)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
        ])
        .arg(format!(
            "--user-data-dir={}",
            work.path().join("profile").display()
        ))
        .arg(format!(
            "--ignore-certificate-errors-spki-list={}",
            spki_hash(&fx.issued.spki)
        ))
        .arg("--dump-dom")
        .arg(&url)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&stdout).unwrap())
        .stderr(std::fs::File::create(&stderr).unwrap())
        .spawn()
        .expect("spawn chromium");
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > CHROMIUM_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium did not finish within {CHROMIUM_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let dom = std::fs::read_to_string(&stdout).unwrap();
    let log = std::fs::read_to_string(&stderr).unwrap_or_default();
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
