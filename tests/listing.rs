//! Directory listings with `listing = true`: the HTML page lists entries
//! (directories first, then case-insensitive name order), HTML-escapes
//! names, percent-encodes links that resolve back to the files, has a
//! parent link below the root, hides dotfiles; `Accept: application/json`
//! gives the same data as JSON. With listings off a directory without an
//! index is refused. A huge directory gives a page capped in entries and
//! bytes that says it is truncated.
mod common;
use common::*;

use std::net::SocketAddr;

const EVIL: &str = "<b>&x.txt";

/// The tree every test serves.
fn tree() -> TempDir {
    let root = TempDir::new("listing");
    root.write("Zeta.txt", "zeta");
    root.write("alpha.txt", "alpha");
    root.write("beta.TXT", "beta");
    root.write(EVIL, "evil bytes");
    root.write("with space & 'quote\".txt", "spaced");
    root.write("caf\u{e9}.txt", "unicode");
    root.write("q?x#y%z.txt", "reserved");
    root.write(".secret", "hidden");
    root.write(".hiddendir/inner.txt", "hidden too");
    root.write("sub/inner.txt", "inner");
    root.write("Another dir/x.txt", "x");
    root.write("with-index/index.html", "<p>index</p>");
    std::fs::create_dir_all(root.path().join("empty")).unwrap();
    root
}

fn listing_server(root: &TempDir) -> TestServer {
    TestServer::with(root.path(), |c| c.listing = true)
}

/// The (href, text) of every `<a>` in a page, in order.
fn anchors(html: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = html;
    while let Some(i) = rest.find("<a href=\"") {
        rest = &rest[i + 9..];
        let end = rest.find('"').unwrap();
        let href = rest[..end].to_owned();
        let gt = rest.find('>').unwrap();
        let close = rest.find("</a>").unwrap();
        out.push((href, rest[gt + 1..close].to_owned()));
        rest = &rest[close..];
    }
    out
}

/// The expected order of the root's visible entries.
const ROOT_ORDER: &[(&str, &str)] = &[
    // directories first, case-insensitively sorted
    ("Another%20dir/", "Another dir/"),
    ("empty/", "empty/"),
    ("sub/", "sub/"),
    ("with-index/", "with-index/"),
    // then files
    ("%3Cb%3E%26x.txt", "&lt;b&gt;&amp;x.txt"),
    ("alpha.txt", "alpha.txt"),
    ("beta.TXT", "beta.TXT"),
    ("caf%C3%A9.txt", "caf\u{e9}.txt"),
    ("q%3Fx%23y%25z.txt", "q?x#y%z.txt"),
    (
        "with%20space%20%26%20%27quote%22.txt",
        "with space &amp; &#39;quote&quot;.txt",
    ),
    ("Zeta.txt", "Zeta.txt"),
];

#[test]
fn html_listing_of_root() {
    let root = tree();
    let server = listing_server(&root);
    let r = get(server.addr, "/", &[]);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    let html = r.text();
    assert!(html.contains("Index of /"), "{html}");
    assert!(!html.contains(EVIL), "raw name must be escaped");
    assert!(!html.contains("secret") && !html.contains("hiddendir"));
    let got = anchors(&html);
    let want: Vec<(String, String)> = ROOT_ORDER
        .iter()
        .map(|(h, t)| (h.to_string(), t.to_string()))
        .collect();
    assert_eq!(got, want, "entries, order, escaping");
    assert!(!html.contains("../"), "no parent link at the root");
}

#[test]
fn links_resolve_to_the_files() {
    let root = tree();
    let server = listing_server(&root);
    let html = get(server.addr, "/", &[]).text();
    for (href, _) in anchors(&html) {
        let r = get(server.addr, &format!("/{href}"), &[]);
        if href.ends_with('/') {
            assert_eq!(r.status, 200, "{href}");
        } else {
            let name = percent_decode(&href);
            let want = std::fs::read(root.path().join(&name)).unwrap();
            assert_eq!((r.status, &r.body), (200, &want), "{href}");
        }
    }
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap());
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}

#[test]
fn subdirectory_has_parent_link_and_escaped_title() {
    let root = tree();
    root.write("a <dir>/f.txt", "f");
    let server = listing_server(&root);
    let r = get(server.addr, "/sub/", &[]);
    assert_eq!(r.status, 200);
    let links = anchors(&r.text());
    assert_eq!(links[0].0, "../", "parent link first");
    assert_eq!(links[1], ("inner.txt".to_owned(), "inner.txt".to_owned()));
    assert_eq!(links.len(), 2);

    let r = get(server.addr, "/a%20%3Cdir%3E/", &[]);
    assert_eq!(r.status, 200);
    let html = r.text();
    assert!(html.contains("Index of /a &lt;dir&gt;/"), "{html}");
    assert!(!html.contains("<dir>"));

    let r = get(server.addr, "/empty/", &[]);
    assert_eq!(r.status, 200);
    assert_eq!(anchors(&r.text()), vec![("../".into(), "../".into())]);
}

#[test]
fn index_html_wins_and_slashless_dir_redirects() {
    let root = tree();
    let server = listing_server(&root);
    let r = get(server.addr, "/with-index/", &[]);
    assert_eq!((r.status, r.body.as_slice()), (200, &b"<p>index</p>"[..]));
    let r = get(server.addr, "/sub?x=1", &[]);
    assert_eq!(r.status, 301);
    assert_eq!(r.header("location"), Some("/sub/?x=1"));
    let r = get(server.addr, "/Another%20dir", &[]);
    assert_eq!(r.status, 301);
    assert_eq!(r.header("location"), Some("/Another%20dir/"));
}

/// The `"name"` values of a listing's JSON, in order, and their types.
fn json_entries(json: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = json;
    while let Some(i) = rest.find("{\"name\":\"") {
        rest = &rest[i + 9..];
        // Decode a JSON string (the escapes our names can produce).
        let mut name = String::new();
        let mut chars = rest.char_indices();
        let end = loop {
            let (j, c) = chars.next().unwrap();
            match c {
                '"' => break j,
                '\\' => {
                    let (_, e) = chars.next().unwrap();
                    match e {
                        '"' => name.push('"'),
                        '\\' => name.push('\\'),
                        '/' => name.push('/'),
                        other => panic!("unexpected escape \\{other}"),
                    }
                }
                c => name.push(c),
            }
        };
        rest = &rest[end..];
        let t = rest.find("\"type\":\"").unwrap();
        let ty = rest[t + 8..].split('"').next().unwrap().to_owned();
        out.push((name, ty));
    }
    out
}

#[test]
fn json_listing_has_the_same_data() {
    let root = tree();
    let server = listing_server(&root);
    let r = get(server.addr, "/", &["Accept: application/json"]);
    assert_eq!(r.status, 200);
    assert!(r
        .header("content-type")
        .unwrap()
        .starts_with("application/json"));
    let json = r.text();
    assert!(json.starts_with("{\"path\":\"/\""), "{json}");
    assert!(json.ends_with('}'));
    let got = json_entries(&json);
    let want: Vec<(String, String)> = ROOT_ORDER
        .iter()
        .map(|(h, _)| {
            let dir = h.ends_with('/');
            let name = percent_decode(h.trim_end_matches('/'));
            (name, if dir { "dir" } else { "file" }.to_owned())
        })
        .collect();
    assert_eq!(got, want);
    assert!(json.contains("\"name\":\"alpha.txt\",\"type\":\"file\",\"size\":5,"));
    assert!(!json.contains("secret"));

    // A browser's Accept (HTML listed) still gets HTML.
    let r = get(
        server.addr,
        "/",
        &["Accept: text/html,application/xhtml+xml,application/json;q=0.9,*/*;q=0.8"],
    );
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
}

#[test]
fn head_of_a_listing_has_no_body() {
    let root = tree();
    let server = listing_server(&root);
    let full = get(server.addr, "/sub/", &[]);
    let head = roundtrip(
        server.addr,
        "HEAD /sub/ HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(head.status, 200);
    assert_eq!(
        head.header("content-length"),
        Some(full.body.len().to_string().as_str())
    );
}

#[test]
fn hidden_paths_are_not_found_even_with_listing() {
    let root = tree();
    let server = listing_server(&root);
    for path in ["/.hiddendir/", "/.hiddendir/inner.txt", "/.secret"] {
        assert_eq!(get(server.addr, path, &[]).status, 404, "{path}");
    }
}

fn status_of(addr: SocketAddr, path: &str) -> u16 {
    get(addr, path, &[]).status
}

#[test]
fn listing_off_refuses_directories() {
    let root = tree();
    let server = TestServer::start(root.path());
    for path in ["/", "/sub/", "/empty/"] {
        let r = get(server.addr, path, &[]);
        assert!(r.status == 403 || r.status == 404, "{path}: {}", r.status);
        assert!(!r.text().contains("inner.txt"), "nothing listed");
        assert!(!r.text().contains("alpha.txt"), "nothing listed");
    }
    let r = get(server.addr, "/", &["Accept: application/json"]);
    assert!(r.status == 403 || r.status == 404);
    // Files and index pages are still served.
    assert_eq!(status_of(server.addr, "/sub/inner.txt"), 200);
    assert_eq!(status_of(server.addr, "/with-index/"), 200);
}

#[test]
fn hidden_flag_lists_dotfiles() {
    let root = tree();
    let server = TestServer::with(root.path(), |c| {
        c.listing = true;
        c.hidden = true;
    });
    let html = get(server.addr, "/", &[]).text();
    let names: Vec<String> = anchors(&html).into_iter().map(|(h, _)| h).collect();
    assert!(names.contains(&".secret".to_owned()), "{names:?}");
    assert!(names.contains(&".hiddendir/".to_owned()), "{names:?}");
}

/// Pages used to have no byte cap: 10,000 long names that escape to several
/// times their length made a 24 MB page, built anew for every request. The
/// page now stops at `MAX_PAGE_BYTES` and says it was truncated.
#[test]
fn a_directory_of_many_long_names_gives_a_capped_page_that_says_truncated() {
    use stoke::limits::MAX_PAGE_BYTES;
    let root = TempDir::new("long-names");
    // 254-byte names of '&': 750 bytes as a link, 1250 as text.
    const FILES: usize = 1_500;
    for n in 0..FILES {
        root.write(&format!("many/{n:04}{}", "&".repeat(250)), "");
    }
    let server = listing_server(&root);
    let r = get(server.addr, "/many/", &[]);
    assert_eq!(r.status, 200);
    assert!(r.body.len() <= MAX_PAGE_BYTES, "{} bytes", r.body.len());
    let html = r.text();
    assert!(html.ends_with("</html>\n"), "a complete page");
    let shown = anchors(&html).len() - 1; // less the parent link
    assert!(shown > 0 && shown < FILES, "{shown} of {FILES} rows");
    assert!(
        html.contains(&format!(
            "This listing is truncated: only {shown} entries are shown."
        )),
        "a visible note"
    );
    // HEAD agrees with GET on the length.
    let head = roundtrip(
        server.addr,
        "HEAD /many/ HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(
        head.header("content-length"),
        Some(r.body.len().to_string().as_str())
    );
}

/// More entries than `MAX_ENTRIES`: both forms say the listing is
/// truncated, and JSON carries `"truncated": true`.
#[test]
fn a_directory_of_more_than_max_entries_says_truncated() {
    use stoke::limits::{MAX_ENTRIES, MAX_PAGE_BYTES};
    let root = TempDir::new("many-entries");
    std::fs::create_dir_all(root.path().join("big")).unwrap();
    for n in 0..=MAX_ENTRIES {
        std::fs::File::create(root.path().join(format!("big/{n}"))).unwrap();
    }
    root.write("small/a.txt", "a");
    let server = listing_server(&root);
    let r = get(server.addr, "/big/", &["Accept: application/json"]);
    assert_eq!(r.status, 200);
    let json = r.text();
    assert!(json.len() <= MAX_PAGE_BYTES);
    assert!(json.starts_with(r#"{"path":"/big/","truncated":true,"entries":["#));
    assert_eq!(json_entries(&json).len(), MAX_ENTRIES);
    let html = get(server.addr, "/big/", &[]).text();
    assert!(html.contains(&format!("only {MAX_ENTRIES} entries are shown.")));
    // A small directory is complete and says so.
    let json = get(server.addr, "/small/", &["Accept: application/json"]).text();
    assert!(json.contains(r#""truncated":false"#), "{json}");
}
