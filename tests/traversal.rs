//! Path traversal and information disclosure: raw-socket request targets that
//! try to climb out of the root (dot segments, percent-encoded dots and
//! slashes, double encoding, overlong UTF-8, NUL, backslashes), symlinks that
//! point outside the root (files, directories, precompressed sidecars, a
//! symlink swapped in behind the small-file cache, a link flipped between an
//! inside and an outside target while requests run), dotfiles (`.git`,
//! `.env`, `.htpasswd`, hidden entries in listings, hidden sidecars and
//! indexes, and all of these reached through a symlink) and special files (a
//! FIFO). None may ever return the secret's bytes, and each must get its
//! specific status code. Also: "no sidecar" is never remembered for a
//! sidecar name that is a dangling link.
mod common;
use common::*;

use std::fs;
use std::io::{BufReader, Write};
use std::net::SocketAddr;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The bytes that live outside the root and must never be served.
const SECRET: &str = "TOP-SECRET-7f3a9c-outside-the-root";
const FILE: &str = "plain file inside the root";

/// A base directory holding the served root `www/` and, beside it, `secret/`
/// (outside the root) and `www2/` (a sibling whose name starts with the
/// root's name, to catch prefix-only containment checks).
struct Site {
    base: TempDir,
}

impl Site {
    fn new(tag: &str) -> Site {
        let base = TempDir::new(tag);
        base.write("secret/secret.txt", SECRET);
        base.write("www2/secret.txt", SECRET);
        base.write("www/file.txt", FILE);
        base.write("www/sub/visible.txt", "visible");
        base.write("www/sub/.hidden", "hidden in sub");
        base.write("www/.env", "DB_PASSWORD=hunter2");
        base.write("www/.env.gz", "gzipped env");
        base.write("www/.htpasswd", "admin:$apr1$x");
        base.write("www/.git/config", "[core]\n");
        base.write("www/.git/index.html", "git index");
        base.write("www/.well-known/security.txt", "Contact: mailto:x@y");
        base.write("www/page.txt", "page identity");
        base.write("www/swap.txt", "swap before");
        let www = base.path().join("www");
        // Inside → inside, relative and absolute (absolute links take the
        // checked fallback path, since RESOLVE_BENEATH refuses them).
        symlink("file.txt", www.join("link_in")).unwrap();
        symlink(www.join("file.txt"), www.join("link_in_abs")).unwrap();
        // Inside → outside: a file, a directory, an absolute one, one into
        // the prefix-named sibling, and a precompressed sidecar.
        symlink("../secret/secret.txt", www.join("link_out")).unwrap();
        symlink("../secret", www.join("dir_out")).unwrap();
        symlink(
            base.path().join("secret/secret.txt"),
            www.join("link_out_abs"),
        )
        .unwrap();
        symlink(
            base.path().join("www2/secret.txt"),
            www.join("link_sibling"),
        )
        .unwrap();
        symlink("../secret/secret.txt", www.join("page.txt.gz")).unwrap();
        Site { base }
    }

    fn root(&self) -> PathBuf {
        self.base.path().join("www")
    }
}

/// Sends raw `request` bytes on a fresh connection and reads one response.
fn exchange(addr: SocketAddr, request: &[u8]) -> RawResponse {
    let mut s = connect(addr);
    s.write_all(request).unwrap();
    read_response(&mut BufReader::new(s), false).unwrap()
}

/// `GET target` as raw bytes (no client-side normalization at all).
fn raw_get(addr: SocketAddr, target: &str, extra: &str) -> RawResponse {
    let req = format!("GET {target} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n{extra}\r\n");
    exchange(addr, req.as_bytes())
}

fn assert_no_secret(target: &str, r: &RawResponse) {
    let leaked = r.body.windows(SECRET.len()).any(|w| w == SECRET.as_bytes());
    assert!(!leaked, "{target:?} leaked the secret: {}", r.head);
}

/// (raw target, expected status)
const TRAVERSAL: &[(&str, u16)] = &[
    ("/../secret/secret.txt", 404),
    ("/../secret", 404),
    ("/%2e%2e/secret/secret.txt", 404),
    ("/%2E%2E/secret/secret.txt", 404),
    ("/.%2e/secret/secret.txt", 404),
    ("/sub/..%2f..%2fsecret/secret.txt", 404),
    ("/sub/..%2F..%2Fsecret", 404),
    ("/..%2fsecret%2fsecret.txt", 404),
    ("//etc/passwd", 404),
    ("///../../etc/passwd", 404),
    ("/sub/../../secret/secret.txt", 404),
    ("/sub/../../../../../../etc/passwd", 404),
    ("/%252e%252e/secret/secret.txt", 404),
    ("/%252e%252e/x", 404),
    ("/%00", 400),
    ("/a%00b", 400),
    ("/file.txt%00.html", 400),
    ("/%c0%ae%c0%ae/secret/secret.txt", 400),
    ("/%c0%ae%c0%ae/secret", 400),
    ("/%e0%80%ae%e0%80%ae/secret", 400),
    ("/%zz", 400),
    ("/%", 400),
    ("/%2", 400),
    ("/a%0d%0aSet-Cookie:x", 400),
    ("/..\\secret", 404),
    ("/..\\secret\\secret.txt", 404),
    ("/sub\\..\\..\\secret\\secret.txt", 404),
    ("/%5c..%5csecret%5csecret.txt", 404),
    ("/../www2/secret.txt", 404),
    ("http://evil/../secret/secret.txt", 404),
];

#[test]
fn traversal_attempts_never_escape_the_root() {
    let site = Site::new("trav");
    let server = TestServer::start(&site.root());
    for &(target, status) in TRAVERSAL {
        let r = raw_get(server.addr, target, "");
        assert_no_secret(target, &r);
        assert_eq!(r.status, status, "{target:?}: {}", r.head);
    }
    // Dot segments that stay inside normalize and serve.
    for target in [
        "/sub/../file.txt",
        "/./file.txt",
        "/sub/./../sub/../file.txt",
    ] {
        let r = raw_get(server.addr, target, "");
        assert_eq!((r.status, r.text().as_str()), (200, FILE), "{target:?}");
    }
}

#[test]
fn request_target_must_be_origin_form() {
    let site = Site::new("originform");
    let server = TestServer::start(&site.root());
    for target in ["index.html", "file.txt", "../secret/secret.txt", "*"] {
        let r = raw_get(server.addr, target, "");
        assert_no_secret(target, &r);
        assert_eq!(r.status, 400, "{target:?}: {}", r.head);
    }
}

/// (target, status with default config, status with follow_symlinks)
const SYMLINKS: &[(&str, u16, u16)] = &[
    ("/link_in", 200, 200),
    ("/link_in_abs", 200, 200),
    ("/link_out", 404, 200),
    ("/link_out_abs", 404, 200),
    ("/link_sibling", 404, 200),
    ("/dir_out/secret.txt", 404, 200),
    ("/dir_out/", 404, 403),
    ("/dir_out", 404, 301),
];

#[test]
fn symlinks_out_of_the_root_are_not_followed_unless_allowed() {
    let site = Site::new("symlink");
    let strict = TestServer::start(&site.root());
    let follow = TestServer::with(&site.root(), |c| c.follow_symlinks = true);
    for &(target, default_status, follow_status) in SYMLINKS {
        let r = raw_get(strict.addr, target, "");
        assert_no_secret(target, &r);
        assert_eq!(r.status, default_status, "{target:?}: {}", r.head);
        if r.status == 200 {
            assert_eq!(r.text(), FILE, "{target:?}");
        }
        let r = raw_get(follow.addr, target, "");
        assert_eq!(r.status, follow_status, "follow {target:?}: {}", r.head);
        if r.status == 200 {
            let body = r.text();
            assert!(
                body == FILE || body == SECRET,
                "follow {target:?}: {body:?}"
            );
        }
    }
    assert_eq!(raw_get(follow.addr, "/link_out", "").text(), SECRET);
}

#[test]
fn listing_of_a_symlinked_outside_directory_is_refused() {
    let site = Site::new("symlisting");
    let server = TestServer::with(&site.root(), |c| c.listing = true);
    for target in ["/dir_out/", "/dir_out/.", "/sub/../dir_out/"] {
        let r = raw_get(server.addr, target, "");
        assert_eq!(r.status, 404, "{target:?}: {}", r.head);
        assert!(
            !r.text().contains("secret.txt"),
            "{target:?} listed outside"
        );
    }
}

#[test]
fn sidecar_symlinked_outside_is_ignored() {
    let site = Site::new("sidecar");
    let server = TestServer::start(&site.root());
    let r = raw_get(server.addr, "/page.txt", "Accept-Encoding: gzip\r\n");
    assert_no_secret("/page.txt", &r);
    assert_eq!((r.status, r.text().as_str()), (200, "page identity"));
    assert_eq!(r.header("content-encoding"), None);
}

#[test]
fn a_cached_file_swapped_for_an_outside_symlink_is_not_served() {
    let site = Site::new("swap");
    let server = TestServer::start(&site.root());
    for _ in 0..2 {
        let r = raw_get(server.addr, "/swap.txt", "");
        assert_eq!((r.status, r.text().as_str()), (200, "swap before"));
    }
    let path = site.root().join("swap.txt");
    fs::remove_file(&path).unwrap();
    symlink("../secret/secret.txt", &path).unwrap();
    let r = raw_get(server.addr, "/swap.txt", "");
    assert_no_secret("/swap.txt", &r);
    assert_eq!(r.status, 404, "{}", r.head);
}

/// (target, extra header lines, status by default, status with hidden = true)
const DOTFILES: &[(&str, &str, u16, u16)] = &[
    ("/.git/config", "", 404, 200),
    ("/.git/", "", 404, 200),
    ("/.git", "", 404, 301),
    ("/.env", "", 404, 200),
    ("/.env", "Accept-Encoding: gzip\r\n", 404, 200),
    ("/%2eenv", "", 404, 200),
    ("/.env.gz", "", 404, 200),
    ("/.htpasswd", "", 404, 200),
    ("/sub/.hidden", "", 404, 200),
    ("/sub/../.env", "", 404, 200),
    ("/.well-known/security.txt", "", 200, 200),
    ("/.git/../file.txt", "", 200, 200),
];

#[test]
fn dotfiles_are_hidden_by_default_and_served_when_allowed() {
    let site = Site::new("dotfiles");
    let default = TestServer::start(&site.root());
    let hidden = TestServer::with(&site.root(), |c| c.hidden = true);
    for &(target, extra, default_status, hidden_status) in DOTFILES {
        let r = raw_get(default.addr, target, extra);
        assert_eq!(r.status, default_status, "{target:?} {extra:?}: {}", r.head);
        if r.status == 404 {
            for leak in ["hunter2", "gzipped env", "[core]", "git index", "admin:"] {
                assert!(!r.text().contains(leak), "{target:?} leaked {leak:?}");
            }
        }
        let r = raw_get(hidden.addr, target, extra);
        assert_eq!(r.status, hidden_status, "hidden {target:?}: {}", r.head);
    }
    assert_eq!(raw_get(hidden.addr, "/.git/", "").text(), "git index");
    assert_eq!(
        raw_get(hidden.addr, "/.env", "").text(),
        "DB_PASSWORD=hunter2"
    );
}

#[test]
fn listings_omit_hidden_entries_unless_allowed() {
    let site = Site::new("hidlisting");
    let default = TestServer::with(&site.root(), |c| c.listing = true);
    let hidden = TestServer::with(&site.root(), |c| {
        c.listing = true;
        c.hidden = true;
    });
    // (target, shown entry, hidden entries)
    let table: &[(&str, &str, &[&str])] = &[
        (
            "/",
            "file.txt",
            &[".env", ".git", ".htpasswd", ".well-known"],
        ),
        ("/sub/", "visible.txt", &[".hidden"]),
    ];
    for accept in ["text/html", "application/json"] {
        let extra = format!("Accept: {accept}\r\n");
        for &(target, shown, hidden_names) in table {
            let r = raw_get(default.addr, target, &extra);
            assert_eq!(r.status, 200, "{target:?} {accept}: {}", r.head);
            let body = r.text();
            assert!(body.contains(shown), "{target:?} {accept}: {body}");
            for name in hidden_names {
                assert!(!body.contains(name), "{target:?} {accept} lists {name}");
            }
            let body = raw_get(hidden.addr, target, &extra).text();
            for name in hidden_names {
                assert!(
                    body.contains(name),
                    "hidden {target:?} {accept} omits {name}"
                );
            }
        }
    }
}

/// Opening a FIFO for reading blocks until a writer appears. A FIFO inside
/// the root must be answered 404 without tying up a worker.
#[test]
fn a_fifo_inside_the_root_does_not_hang_a_worker() {
    if !have("mkfifo") {
        println!("SKIPPED: mkfifo not available");
        return;
    }
    let site = Site::new("fifo");
    let fifo = site.root().join("fifo");
    let ok = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(ok.success());
    let server = TestServer::start(&site.root());
    let mut s = connect(server.addr);
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"GET /fifo HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .unwrap();
    let got = read_response(&mut BufReader::new(s), false);
    // Release a worker stuck in open(2) whatever happened, so that the
    // server can shut down: a non-blocking writer unblocks a blocked reader.
    use std::os::unix::fs::OpenOptionsExt;
    let _writer = fs::OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(&fifo);
    let r = got.expect("no answer for GET /fifo: a worker is stuck opening the FIFO");
    assert_eq!(r.status, 404, "{}", r.head);
}

/// Replaces the symlink `link` with one pointing at `target` atomically (a
/// fresh link renamed over the old one), so a reader always finds one of
/// the two targets, never nothing.
fn point(link: &Path, target: &Path) {
    let name = link.file_name().unwrap().to_string_lossy();
    let tmp = link.with_file_name(format!(".{name}.flip"));
    let _ = fs::remove_file(&tmp);
    symlink(target, &tmp).unwrap();
    fs::rename(&tmp, link).unwrap();
}

/// A symlink that a thread keeps flipping between an inside and an outside
/// target, and the URL that reaches the inside file through it.
struct Flip {
    link: PathBuf,
    inside: PathBuf,
    outside: PathBuf,
    url: &'static str,
    /// The inside file's own URL, to warm the cache with it.
    direct_url: &'static str,
    inside_body: &'static str,
}

/// How long each flipping link is raced at least; the loop also waits until
/// both outcomes were seen, so the race was really run.
const MIN_RACE: Duration = Duration::from_secs(2);
/// Upper bound for one race, so a starved machine fails instead of hanging.
const MAX_RACE: Duration = Duration::from_secs(60);

/// Requests `flip.url` over one keep-alive connection while another thread
/// flips the link; returns (inside answers, refusals). Panics on the secret
/// or on any other status.
fn race(addr: SocketAddr, flip: &Flip) -> (usize, usize) {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    /// Stops the flipper however `race` ends, a failed assertion included.
    struct StopOnDrop(Arc<AtomicBool>);
    impl Drop for StopOnDrop {
        fn drop(&mut self) {
            self.0.store(true, Ordering::Relaxed);
        }
    }
    let stop = StopOnDrop(Arc::new(AtomicBool::new(false)));
    let flipper = {
        let stop = Arc::clone(&stop.0);
        let (link, inside, outside) =
            (flip.link.clone(), flip.inside.clone(), flip.outside.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                point(&link, &outside);
                point(&link, &inside);
            }
        })
    };
    let start = std::time::Instant::now();
    let (mut inside, mut refused) = (0, 0);
    let mut s = BufReader::new(connect(addr));
    let request = format!("GET {} HTTP/1.1\r\nHost: t\r\n\r\n", flip.url);
    while start.elapsed() < MIN_RACE || inside == 0 || refused == 0 {
        assert!(
            start.elapsed() < MAX_RACE,
            "{}: saw {inside} inside, {refused} refused",
            flip.url
        );
        s.get_mut().write_all(request.as_bytes()).unwrap();
        let r = read_response(&mut s, false).unwrap();
        assert_no_secret(flip.url, &r);
        match r.status {
            200 => {
                assert_eq!(r.text(), flip.inside_body, "{}", flip.url);
                inside += 1;
            }
            404 => refused += 1,
            other => panic!("{}: unexpected {other}: {}", flip.url, r.head),
        }
    }
    drop(stop);
    flipper.join().unwrap();
    (inside, refused)
}

#[test]
fn symlink_swapped_between_inside_and_outside_never_serves_the_secret() {
    let site = Site::new("flip");
    let (base, www) = (site.base.path().to_path_buf(), site.root());
    site.base.write("secret/data.txt", SECRET);
    site.base.write("www/pub/data.txt", "inside data");
    fs::create_dir_all(www.join("sub")).unwrap();
    let flips = [
        // A relative link with `..` in both targets.
        Flip {
            link: www.join("sub/flip"),
            inside: PathBuf::from("../file.txt"),
            outside: PathBuf::from("../../secret/secret.txt"),
            url: "/sub/flip",
            direct_url: "/file.txt",
            inside_body: FILE,
        },
        // An absolute link (RESOLVE_BENEATH refuses every one of these).
        Flip {
            link: www.join("flip_abs"),
            inside: www.join("file.txt"),
            outside: base.join("secret/secret.txt"),
            url: "/flip_abs",
            direct_url: "/file.txt",
            inside_body: FILE,
        },
        // A directory component that is a link.
        Flip {
            link: www.join("flip_dir"),
            inside: PathBuf::from("pub"),
            outside: PathBuf::from("../secret"),
            url: "/flip_dir/data.txt",
            direct_url: "/pub/data.txt",
            inside_body: "inside data",
        },
    ];
    for flip in &flips {
        point(&flip.link, &flip.inside);
    }
    let server = TestServer::start(&www);
    let raced: Vec<(usize, usize)> = std::thread::scope(|scope| {
        let runs: Vec<_> = flips
            .iter()
            .map(|flip| scope.spawn(move || race(server.addr, flip)))
            .collect();
        runs.into_iter().map(|r| r.join().unwrap()).collect()
    });
    println!("(inside, refused) per link: {raced:?}");
    // Then, race-free: warm the cache through the inside target (its own
    // URL and the link), leave the link pointing outside, and ask again.
    for flip in &flips {
        point(&flip.link, &flip.inside);
        for url in [flip.direct_url, flip.direct_url, flip.url, flip.url] {
            let r = raw_get(server.addr, url, "");
            assert_eq!(
                (r.status, r.text().as_str()),
                (200, flip.inside_body),
                "{url}"
            );
        }
        point(&flip.link, &flip.outside);
        for _ in 0..2 {
            let r = raw_get(server.addr, flip.url, "");
            assert_no_secret(flip.url, &r);
            assert_eq!(r.status, 404, "{}: {}", flip.url, r.head);
        }
    }
}

/// A small file is cached; then its directory is moved out of the root (the
/// file keeps its inode and ctime) and a link to the new place put where it
/// was. A fresh resolution refuses the link, so a cache hit must too.
#[test]
fn a_cached_file_whose_directory_became_an_outside_link_is_not_served() {
    let site = Site::new("dirmove");
    let www = site.root();
    site.base.write("www/moved/data.txt", "was inside");
    site.base.write("www/pub2/data.txt", "was visible");
    let server = TestServer::start(&www);
    for url in ["/moved/data.txt", "/pub2/data.txt"] {
        // Twice: the first request fills the cache, the second is a hit.
        for _ in 0..2 {
            assert_eq!(raw_get(server.addr, url, "").status, 200, "{url}");
        }
    }
    // Out of the root, and into a hidden directory, each behind a link.
    fs::rename(www.join("moved"), site.base.path().join("secret/moved")).unwrap();
    symlink("../secret/moved", www.join("moved")).unwrap();
    fs::rename(www.join("pub2"), www.join(".pub2")).unwrap();
    symlink(".pub2", www.join("pub2")).unwrap();
    for url in ["/moved/data.txt", "/pub2/data.txt"] {
        let r = raw_get(server.addr, url, "");
        assert_eq!(r.status, 404, "{url}: {} {:?}", r.head, r.text());
    }
}

/// (target, extra header lines, listing on, status by default, status with
/// hidden = true, body that only the hidden file has)
const DOTFILE_LINKS: &[(&str, &str, bool, u16, u16, &str)] = &[
    ("/envlink", "", false, 404, 200, "hunter2"),
    ("/g/config", "", false, 404, 200, "[core]"),
    ("/g/", "", false, 404, 200, "git index"),
    ("/g", "", false, 404, 301, ""),
    ("/gabs/config", "", false, 404, 200, "[core]"),
    ("/idx/", "", false, 403, 200, "git index"),
    ("/go/", "", true, 404, 200, "objfile"),
    ("/go/objfile", "", false, 404, 200, "object bytes"),
    (
        "/page3.txt",
        "Accept-Encoding: gzip\r\n",
        false,
        200,
        200,
        "gzipped env",
    ),
    ("/wk", "", false, 200, 200, ""),
];

/// The dotfile policy applies to what is opened, not only to the name asked
/// for: a link to `.env`, into `.git/` (relative or absolute), an index file
/// or a sidecar linking to a hidden file, a link to a hidden directory that
/// would be listed.
#[test]
fn dotfiles_reached_through_a_symlink_stay_hidden() {
    let site = Site::new("dotlinks");
    let www = site.root();
    site.base.write("www/.git/objects/objfile", "object bytes");
    site.base.write("www/page3.txt", "page3 identity");
    fs::create_dir_all(www.join("idx")).unwrap();
    symlink(".env", www.join("envlink")).unwrap();
    symlink(".git", www.join("g")).unwrap();
    symlink(www.join(".git"), www.join("gabs")).unwrap();
    symlink("../.git/index.html", www.join("idx/index.html")).unwrap();
    symlink(".git/objects", www.join("go")).unwrap();
    symlink(".env.gz", www.join("page3.txt.gz")).unwrap();
    symlink(".well-known/security.txt", www.join("wk")).unwrap();
    let mut servers = Vec::new();
    for listing in [false, true] {
        let default = TestServer::with(&www, |c| c.listing = listing);
        let hidden = TestServer::with(&www, |c| {
            c.listing = listing;
            c.hidden = true;
        });
        servers.push((listing, default, hidden));
    }
    for &(target, extra, listing, default_status, hidden_status, secret) in DOTFILE_LINKS {
        let (_, default, hidden) = servers.iter().find(|s| s.0 == listing).unwrap();
        let r = raw_get(default.addr, target, extra);
        assert_eq!(r.status, default_status, "{target:?}: {}", r.head);
        for leak in [
            "hunter2",
            "gzipped env",
            "[core]",
            "git index",
            "objfile",
            "object bytes",
        ] {
            assert!(!r.text().contains(leak), "{target:?} leaked {leak:?}");
        }
        let r = raw_get(hidden.addr, target, extra);
        assert_eq!(r.status, hidden_status, "hidden {target:?}: {}", r.head);
        assert!(
            r.text().contains(secret),
            "hidden {target:?}: {:?}",
            r.text()
        );
    }
}

/// A sidecar that is a link into another directory, dangling at first: the
/// server must not remember "no sidecar" for the file's directory, since the
/// target can appear without that directory changing.
#[test]
fn a_dangling_sidecar_link_is_not_remembered_as_no_sidecar() {
    let site = Site::new("memo");
    let www = site.root();
    site.base.write("www/m/page.txt", "memo page identity");
    site.base.write("www/gz/keep.txt", "keeps the directory");
    symlink("../gz/page.txt.gz", www.join("m/page.txt.gz")).unwrap();
    // An old directory: the memo is allowed for it (a just-changed one is
    // never remembered, see `sidecar_memo_allowed`).
    let old = std::time::SystemTime::now() - Duration::from_secs(3600);
    fs::File::open(www.join("m"))
        .unwrap()
        .set_modified(old)
        .unwrap();
    let server = TestServer::start(&www);
    for _ in 0..3 {
        let r = raw_get(server.addr, "/m/page.txt", "Accept-Encoding: gzip\r\n");
        assert_eq!(r.status, 200, "{}", r.head);
        assert_eq!(r.header("content-encoding"), None);
        assert_eq!(r.text(), "memo page identity");
    }
    site.base.write("www/gz/page.txt.gz", "gz bytes");
    let r = raw_get(server.addr, "/m/page.txt", "Accept-Encoding: gzip\r\n");
    assert_eq!(r.status, 200, "{}", r.head);
    assert_eq!(r.header("content-encoding"), Some("gzip"), "{}", r.head);
    assert_eq!(r.text(), "gz bytes");
}
