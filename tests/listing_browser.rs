//! A real browser renders a directory listing: headless Chromium's DOM of
//! the page served by stoke shows the entries with `<a href>` links, a link
//! resolved against the page URL fetches the file's exact bytes over a raw
//! socket, and a screenshot of the page is a real PNG. Without Chromium the
//! test is skipped, except under CI (env `CI` set), where it must run.
mod common;
use common::*;

use common::browser::{chromium_or_skip, run_chromium};
use std::io::{BufReader, Write};
use std::path::Path;

/// Resolves a relative href against a directory URL path (ends with '/').
fn resolve(base_dir: &str, href: &str) -> String {
    assert!(base_dir.ends_with('/'));
    if href.starts_with('/') {
        return href.to_owned();
    }
    let mut segments: Vec<&str> = base_dir
        .trim_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    let mut rest = href;
    loop {
        if let Some(r) = rest.strip_prefix("../") {
            segments.pop();
            rest = r;
        } else if let Some(r) = rest.strip_prefix("./") {
            rest = r;
        } else {
            break;
        }
    }
    let mut out = String::from("/");
    for s in segments {
        out.push_str(s);
        out.push('/');
    }
    out.push_str(rest);
    out
}

/// All `href` attribute values of `<a>` elements in serialized DOM.
fn hrefs(dom: &str) -> Vec<String> {
    dom.match_indices("<a href=\"")
        .map(|(i, m)| {
            let rest = &dom[i + m.len()..];
            rest[..rest.find('"').unwrap()].to_owned()
        })
        .collect()
}

#[test]
fn chromium_renders_the_listing() {
    let Some(bin) = chromium_or_skip() else {
        return;
    };
    let root = TempDir::new("browser");
    let payload = pattern(20_000, 31);
    root.write("docs/report 2024.bin", &payload);
    root.write("docs/readme.txt", "read me\n");
    root.write("docs/<b>&x.txt", "escaped\n");
    root.write("docs/nested/deep.txt", "deep");
    root.write("docs/.hidden", "nope");
    let server = TestServer::with(root.path(), |c| c.listing = true);
    let page_path = "/docs/";
    let url = format!("http://{}{page_path}", server.addr);
    let work = TempDir::new("browser-profile");

    // 1. The DOM as Chromium built it.
    let out = run_chromium(&bin, work.path(), &["--dump-dom".into(), url.clone()]);
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dom = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(dom.contains("Index of /docs/"), "title in DOM: {dom}");
    for shown in [
        "report 2024.bin",
        "readme.txt",
        "&lt;b&gt;&amp;x.txt",
        "nested/",
    ] {
        assert!(dom.contains(shown), "{shown} in DOM: {dom}");
    }
    assert!(!dom.contains(".hidden"), "hidden entry not in DOM");
    // The browser parsed the escaped name as text, not as a <b> element.
    assert!(!dom.contains("<b>&amp;x.txt"), "no injected element: {dom}");
    let links = hrefs(&dom);
    assert!(links.contains(&"../".to_owned()), "{links:?}");
    assert!(links.contains(&"nested/".to_owned()), "{links:?}");
    let href = links
        .iter()
        .find(|h| h.starts_with("report"))
        .unwrap_or_else(|| panic!("a link to the file: {links:?}"))
        .clone();
    assert_eq!(href, "report%202024.bin");

    // 2. Following the link (resolved against the page URL) gets the bytes.
    let target = resolve(page_path, &href);
    assert_eq!(target, "/docs/report%202024.bin");
    let mut stream = connect(server.addr);
    write!(
        stream,
        "GET {target} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
        server.addr
    )
    .unwrap();
    let r = read_response(&mut BufReader::new(stream), false).unwrap();
    assert_eq!(r.status, 200);
    assert!(r.body == payload, "linked file's bytes");
    let escaped = links.iter().find(|h| h.contains("x.txt")).unwrap();
    let r = get(server.addr, &resolve(page_path, escaped), &[]);
    assert_eq!((r.status, r.body.as_slice()), (200, &b"escaped\n"[..]));

    // 3. A screenshot of the page.
    // CARGO_TARGET_TMPDIR is target/tmp: the screenshot lands in target/.
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let shot = tmp.parent().unwrap_or(tmp).join("listing.png");
    let _ = std::fs::remove_file(&shot);
    let out = run_chromium(
        &bin,
        work.path(),
        &[
            format!("--screenshot={}", shot.display()),
            "--window-size=1024,768".into(),
            "--hide-scrollbars".into(),
            url,
        ],
    );
    assert!(
        out.status.success(),
        "screenshot failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let png = std::fs::read(&shot).expect("screenshot written");
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "PNG signature");
    assert!(png.len() > 1024, "non-trivial PNG: {} bytes", png.len());
}
