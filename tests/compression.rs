//! On-the-fly compression, black-box: real files served by a real server,
//! read over raw sockets (and by curl), decoded here and compared with the
//! file. Covers the choice of coding, `Vary` on every response of a
//! compressible file, one strong ETag per coding, ranges over the
//! compressed bytes, HEAD = GET, what is never compressed, a changed file
//! never served stale, and one compression for many concurrent requests.
mod common;
use common::*;

use std::io::{BufReader, Read, Write};
use std::process::Command;
use std::sync::Barrier;

use stoke::limits::{COMPRESS_MAX_SIZE, COMPRESS_MIN_SIZE};

/// Text that compresses like real markup (about 4:1), deterministic.
fn prose(len: usize, seed: u64) -> Vec<u8> {
    const WORDS: &[&str] = &[
        "stoke",
        "serves",
        "static",
        "files",
        "<p>",
        "</p>",
        "fast",
        "and",
        "the",
        "reactor",
        "worker",
        "compress",
        "\n",
        "<a href=\"/x\">",
        "</a>",
        "with",
    ];
    let mut out = Vec::with_capacity(len + 16);
    for b in pattern(len, seed) {
        if out.len() >= len {
            break;
        }
        out.extend_from_slice(WORDS[b as usize % WORDS.len()].as_bytes());
        out.push(b' ');
    }
    out.truncate(len);
    out
}

/// Decodes a body by its `Content-Encoding` (`None`: as it is).
fn decode(coding: Option<&str>, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    match coding {
        None => out = body.to_vec(),
        Some("gzip") => {
            flate2::read::GzDecoder::new(body)
                .read_to_end(&mut out)
                .expect("valid gzip");
        }
        Some("br") => {
            brotli::Decompressor::new(body, 4096)
                .read_to_end(&mut out)
                .expect("valid brotli");
        }
        Some("zstd") => out = zstd::stream::decode_all(body).expect("valid zstd"),
        Some(other) => panic!("unexpected Content-Encoding {other}"),
    }
    out
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn ae(value: &str) -> String {
    format!("Accept-Encoding: {value}")
}

fn head(addr: std::net::SocketAddr, path: &str, extra: &[&str]) -> RawResponse {
    let mut req = format!("HEAD {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n");
    for h in extra {
        req.push_str(h);
        req.push_str("\r\n");
    }
    req.push_str("\r\n");
    roundtrip(addr, &req)
}

#[test]
fn each_coding_is_decoded_back_to_the_file() {
    let root = TempDir::new("cmp-codings");
    // In memory (the small-file path) and read from the open file.
    let small = prose(4000, 1);
    let large = prose(200_000, 2);
    root.write("small.html", &small);
    root.write("large.js", &large);
    let server = TestServer::start(root.path());
    // (Accept-Encoding, expected Content-Encoding)
    let cases: &[(Option<&str>, Option<&str>)] = &[
        (None, None),
        (Some("gzip"), Some("gzip")),
        (Some("br"), Some("br")),
        (Some("zstd"), Some("zstd")),
        (Some("gzip, deflate, br, zstd"), Some("br")),
        (Some("gzip, deflate, zstd"), Some("zstd")),
        (Some("br;q=0.5, gzip"), Some("gzip")),
        (Some("zstd;q=0.1, br;q=0.2"), Some("br")),
        (Some("x-gzip"), Some("gzip")),
        (Some("*"), Some("br")),
        (Some("*, br;q=0"), Some("zstd")),
        (Some("identity"), None),
        (Some("gzip;q=0.5, identity"), None),
        (Some("zstd;q=0, br;q=0, gzip;q=0"), None),
        (Some("deflate, compress"), None),
        (Some(""), None),
    ];
    for (path, file, ty) in [
        ("/small.html", &small, "text/html; charset=utf-8"),
        ("/large.js", &large, "text/javascript; charset=utf-8"),
    ] {
        for &(accept, want) in cases {
            let extra: Vec<String> = accept.map(ae).into_iter().collect();
            let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
            let r = get(server.addr, path, &extra);
            let what = format!("{path} {accept:?}");
            assert_eq!(r.status, 200, "{what}");
            assert_eq!(r.header("content-encoding"), want, "{what}");
            let len = r.body.len().to_string();
            assert_eq!(r.header("content-length"), Some(len.as_str()), "{what}");
            assert_eq!(r.header("vary"), Some("Accept-Encoding"), "{what}");
            assert_eq!(r.header("content-type"), Some(ty), "{what}");
            assert!(
                decode(want, &r.body) == *file,
                "{what}: decodes to the file"
            );
            if want.is_some() {
                assert!(r.body.len() * 2 < file.len(), "{what}: compressed");
            }
        }
    }
}

/// curl's own decoders read what we send, for every coding this curl
/// build supports (`curl --version` lists them under Features).
#[test]
fn curl_compressed_gets_the_file_back() {
    if !have("curl") {
        assert!(std::env::var_os("CI").is_none(), "curl is required in CI");
        println!("SKIPPED: curl not installed");
        return;
    }
    let version = Command::new("curl").arg("--version").output().unwrap();
    let version = String::from_utf8_lossy(&version.stdout).to_ascii_lowercase();
    let features = version
        .lines()
        .find_map(|l| l.strip_prefix("features:"))
        .unwrap_or_default()
        .to_owned();
    let root = TempDir::new("cmp-curl");
    let page = prose(50_000, 3);
    root.write("page.css", &page);
    let server = TestServer::start(root.path());
    let out = TempDir::new("cmp-curl-out");
    let mut tried = 0;
    for (coding, feature) in [("gzip", "libz"), ("br", "brotli"), ("zstd", "zstd")] {
        if !features.split_whitespace().any(|f| f == feature) {
            println!("SKIPPED {coding}: this curl lacks {feature}");
            continue;
        }
        tried += 1;
        let body = out.path().join(format!("{coding}.out"));
        let headers = out.path().join(format!("{coding}.headers"));
        let status = Command::new("curl")
            .args(["--silent", "--show-error", "--fail", "--compressed"])
            .args(["-H", &ae(coding)])
            .arg("-D")
            .arg(&headers)
            .arg("-o")
            .arg(&body)
            .arg(format!("http://{}/page.css", server.addr))
            .env_remove("http_proxy")
            .env_remove("all_proxy")
            .status()
            .unwrap();
        assert!(status.success(), "curl {coding}");
        let headers = std::fs::read_to_string(&headers).unwrap().to_lowercase();
        assert!(
            headers.contains(&format!("content-encoding: {coding}\r\n")),
            "{coding}: {headers}"
        );
        assert!(
            std::fs::read(&body).unwrap() == page,
            "{coding}: curl decoded the file"
        );
    }
    assert!(tried > 0, "curl supports gzip at least: {features}");
}

#[test]
fn vary_is_on_every_response_of_a_compressible_file() {
    let root = TempDir::new("cmp-vary");
    let page = prose(10_000, 4);
    root.write("page.html", &page);
    root.write("tiny.html", "<p>tiny</p>");
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    png.extend(prose(10_000, 5));
    root.write("logo.png", &png);
    let server = TestServer::start(root.path());
    let a = server.addr;
    let gz = get(a, "/page.html", &[&ae("gzip")]);
    let gz_len = gz.body.len();
    let etag = gz.header("etag").unwrap().to_owned();
    let beyond = format!("Range: bytes={gz_len}-");
    let inm = format!("If-None-Match: {etag}");
    // (request extras, expected status)
    let cases: Vec<(Vec<&str>, u16)> = vec![
        (vec![], 200),
        (vec!["Accept-Encoding: gzip"], 200),
        (vec!["Accept-Encoding: gzip", "Range: bytes=0-9"], 206),
        (vec!["Accept-Encoding: gzip", "Range: bytes=0-1,5-6"], 206),
        (vec!["Accept-Encoding: gzip", &inm], 304),
        (vec!["Accept-Encoding: gzip", "If-Match: \"other\""], 412),
        (vec!["Accept-Encoding: gzip", &beyond], 416),
        (vec!["Range: bytes=999999-"], 416),
    ];
    for (extra, status) in &cases {
        let r = get(a, "/page.html", extra);
        assert_eq!(r.status, *status, "{extra:?}");
        assert_eq!(r.header("vary"), Some("Accept-Encoding"), "{extra:?}");
        let h = head(a, "/page.html", extra);
        assert_eq!(h.status, *status, "HEAD {extra:?}");
        assert_eq!(h.header("vary"), Some("Accept-Encoding"), "HEAD {extra:?}");
    }
    // Never compressed, so never varying: too small, or not a text type.
    for path in ["/tiny.html", "/logo.png"] {
        let r = get(a, path, &[&ae("gzip, br, zstd")]);
        assert_eq!(r.status, 200);
        assert_eq!(r.header("content-encoding"), None, "{path}");
        assert_eq!(r.header("vary"), None, "{path}");
    }
}

#[test]
fn each_coding_has_its_own_strong_etag() {
    let root = TempDir::new("cmp-etag");
    let page = prose(8_000, 6);
    root.write("page.txt", &page);
    // A sidecar for gzip only: br and zstd are made on the fly.
    root.write("page.txt.gz", gzip(&page));
    let server = TestServer::start(root.path());
    let a = server.addr;
    let tag = |coding: &str| {
        let r = get(a, "/page.txt", &[&ae(coding)]);
        let want = Some(coding).filter(|c| *c != "identity");
        assert_eq!(r.header("content-encoding"), want);
        r.header("etag").unwrap().to_owned()
    };
    let tags = ["identity", "gzip", "br", "zstd"].map(tag);
    for (i, t) in tags.iter().enumerate() {
        assert!(t.starts_with('"') && t.ends_with('"'), "strong: {t}");
        for u in &tags[i + 1..] {
            assert_ne!(t, u);
        }
    }
    let [identity, sidecar, br, zstd] = &tags;
    let all = format!("If-None-Match: {identity}, {sidecar}, {br}, {zstd}");
    // (Accept-Encoding, If-None-Match, status, ETag of the answer)
    let cases = [
        ("br", format!("If-None-Match: {br}"), 304, br),
        ("br", format!("If-None-Match: W/{br}"), 304, br),
        ("br", format!("If-None-Match: {identity}"), 200, br),
        ("zstd", format!("If-None-Match: {br}"), 200, zstd),
        ("identity", format!("If-None-Match: {zstd}"), 200, identity),
        ("gzip", format!("If-None-Match: {br}, {zstd}"), 200, sidecar),
        // A cache holding several variants lists them all: the selected
        // one's tag comes back in the 304.
        ("zstd", all.clone(), 304, zstd),
        ("gzip", all.clone(), 304, sidecar),
        ("identity", all, 304, identity),
        ("zstd", "If-None-Match: *".to_owned(), 304, zstd),
    ];
    for (coding, inm, status, etag) in cases {
        let r = get(a, "/page.txt", &[&ae(coding), &inm]);
        assert_eq!(r.status, status, "{coding} {inm}");
        assert_eq!(r.header("etag"), Some(etag.as_str()), "{coding} {inm}");
        assert!(r.status == 304 || decode(r.header("content-encoding"), &r.body) == page);
    }
}

/// Ranges apply to the representation served (RFC 9110 §14.1): for a
/// compressed variant, to its compressed bytes, as for a sidecar.
#[test]
fn ranges_apply_to_the_compressed_bytes() {
    let root = TempDir::new("cmp-range");
    let page = prose(60_000, 7);
    root.write("app.js", &page);
    let server = TestServer::start(root.path());
    let a = server.addr;
    let full = get(a, "/app.js", &[&ae("br")]);
    assert_eq!(full.header("content-encoding"), Some("br"));
    let br = full.body.clone();
    let total = br.len();
    let etag = full.header("etag").unwrap().to_owned();
    let identity_tag = get(a, "/app.js", &[]).header("etag").unwrap().to_owned();

    let r = get(a, "/app.js", &[&ae("br"), "Range: bytes=10-99"]);
    assert_eq!(r.status, 206);
    assert_eq!(r.header("content-encoding"), Some("br"));
    assert_eq!(r.header("etag"), Some(etag.as_str()));
    let want = format!("bytes 10-99/{total}");
    assert_eq!(r.header("content-range"), Some(want.as_str()));
    assert_eq!(r.body, br[10..100]);

    let r = get(a, "/app.js", &[&ae("br"), "Range: bytes=-20"]);
    assert_eq!((r.status, &r.body[..]), (206, &br[total - 20..]));

    // Multipart: each part names the coding and the compressed length.
    let r = get(a, "/app.js", &[&ae("br"), "Range: bytes=0-3,100-103"]);
    assert_eq!(r.status, 206);
    let text = String::from_utf8_lossy(&r.body);
    assert!(text.contains("Content-Encoding: br"), "{text}");
    assert!(text.contains(&format!("Content-Range: bytes 100-103/{total}")));

    // Past the compressed length (though within the file's): 416.
    let r = get(
        a,
        "/app.js",
        &[&ae("br"), &format!("Range: bytes={total}-")],
    );
    assert_eq!(r.status, 416);
    let want = format!("bytes */{total}");
    assert_eq!(r.header("content-range"), Some(want.as_str()));

    // If-Range: the variant's own tag resumes; the identity's must not
    // splice compressed bytes onto identity ones.
    let r = get(
        a,
        "/app.js",
        &[&ae("br"), "Range: bytes=5-9", &format!("If-Range: {etag}")],
    );
    assert_eq!((r.status, &r.body[..]), (206, &br[5..10]));
    let r = get(
        a,
        "/app.js",
        &[
            &ae("br"),
            "Range: bytes=5-9",
            &format!("If-Range: {identity_tag}"),
        ],
    );
    assert_eq!(r.status, 200);
    assert!(r.body == br);

    // Without compression the range is over the file.
    let r = get(a, "/app.js", &["Range: bytes=5-9"]);
    assert_eq!((r.status, &r.body[..]), (206, &page[5..10]));
    assert_eq!(r.header("content-encoding"), None);
}

#[test]
fn head_sends_the_same_headers_as_get() {
    let root = TempDir::new("cmp-head");
    root.write("a.json", prose(30_000, 8));
    root.write("b.json", prose(3_000, 9));
    let server = TestServer::start(root.path());
    for path in ["/a.json", "/b.json"] {
        for coding in ["gzip", "br", "zstd", "identity"] {
            // HEAD first: the variant is not cached yet.
            let h = head(server.addr, path, &[&ae(coding)]);
            let g = get(server.addr, path, &[&ae(coding)]);
            assert_eq!((h.status, g.status), (200, 200));
            assert!(h.body.is_empty());
            for name in [
                "content-encoding",
                "content-length",
                "content-type",
                "etag",
                "last-modified",
                "vary",
                "accept-ranges",
            ] {
                assert_eq!(h.header(name), g.header(name), "{path} {coding} {name}");
            }
        }
    }
}

#[test]
fn compressed_content_is_never_compressed_again() {
    let root = TempDir::new("cmp-again");
    let css = prose(20_000, 10);
    let css_gz = gzip(&css);
    root.write("site.css", &css);
    root.write("site.css.gz", &css_gz);
    // gzip data under a text name, an SVGZ, an archive, and noise.
    let hidden_gz = gzip(&prose(40_000, 11));
    root.write("packed.txt", &hidden_gz);
    root.write("icon.svgz", &hidden_gz);
    root.write("bundle.tar.gz", &hidden_gz);
    let noise = pattern(20_000, 12);
    root.write("noise.txt", &noise);
    let server = TestServer::start(root.path());
    let a = server.addr;

    // The sidecar goes out byte for byte.
    let r = get(a, "/site.css", &[&ae("gzip")]);
    assert_eq!(r.header("content-encoding"), Some("gzip"));
    assert!(r.body == css_gz, "the sidecar itself");
    // Asked for directly, the sidecar is a file of its own type.
    let r = get(a, "/site.css.gz", &[&ae("gzip, br, zstd")]);
    assert_eq!(r.header("content-encoding"), None);
    assert!(r.body == css_gz);

    for (path, body) in [
        ("/packed.txt", &hidden_gz),
        ("/icon.svgz", &hidden_gz),
        ("/bundle.tar.gz", &hidden_gz),
        ("/noise.txt", &noise),
    ] {
        for _ in 0..2 {
            let r = get(a, path, &[&ae("gzip, br, zstd")]);
            assert_eq!(r.status, 200, "{path}");
            assert_eq!(r.header("content-encoding"), None, "{path}");
            assert!(r.body == *body, "{path}: sent as it is");
        }
    }
    // Noise was tried once (it may look like text) and the verdict kept;
    // the gzip magic was not even tried.
    assert_eq!(server.compressions(), 1, "noise tried once, with br");
}

#[test]
fn files_too_small_or_too_large_are_sent_as_they_are() {
    let root = TempDir::new("cmp-size");
    let below = prose(COMPRESS_MIN_SIZE as usize - 1, 13);
    let at_min = prose(COMPRESS_MIN_SIZE as usize, 14);
    let above = prose(COMPRESS_MAX_SIZE as usize + 1, 15);
    root.write("below.txt", &below);
    root.write("at-min.txt", &at_min);
    root.write("above.txt", &above);
    let server = TestServer::start(root.path());
    for (path, body, compressed) in [
        ("/below.txt", &below, false),
        ("/at-min.txt", &at_min, true),
        ("/above.txt", &above, false),
    ] {
        let r = get(server.addr, path, &[&ae("gzip")]);
        assert_eq!(r.status, 200);
        let coding = r.header("content-encoding");
        assert_eq!(coding.is_some(), compressed, "{path}");
        assert_eq!(r.header("vary").is_some(), compressed, "{path}");
        assert!(decode(coding, &r.body) == *body, "{path}");
    }
}

#[test]
fn no_compress_and_compress_types_are_obeyed() {
    let root = TempDir::new("cmp-config");
    let page = prose(5_000, 16);
    root.write("a.css", &page);
    root.write("a.js", &page);
    let off = TestServer::with(root.path(), |c| c.compress = false);
    let css_only = TestServer::with(root.path(), |c| {
        c.compress_types = vec!["text/css".to_owned()];
    });
    for path in ["/a.css", "/a.js"] {
        let r = get(off.addr, path, &[&ae("gzip")]);
        assert_eq!(r.header("content-encoding"), None, "{path}");
        assert_eq!(r.header("vary"), None, "{path}");
    }
    let r = get(css_only.addr, "/a.css", &[&ae("gzip")]);
    assert_eq!(r.header("content-encoding"), Some("gzip"));
    let r = get(css_only.addr, "/a.js", &[&ae("gzip")]);
    assert_eq!(r.header("content-encoding"), None);
    assert_eq!(off.compressions(), 0);
}

/// A changed file is never served stale, compressed or not: a new size, a
/// new mtime at the same size, and a replaced file are each seen by the
/// very next request (the variant cache checks the stamp on every hit).
#[test]
fn a_changed_file_is_not_served_stale_compressed() {
    let root = TempDir::new("cmp-stale");
    let server = TestServer::start(root.path());
    // One file served from memory, one from the open file.
    for (name, len) in [("small.html", 6_000), ("large.html", 300_000)] {
        let path = format!("/{name}");
        let fetch = |want: &[u8], what: &str| {
            let r = get(server.addr, &path, &[&ae("gzip")]);
            assert_eq!(r.header("content-encoding"), Some("gzip"), "{name} {what}");
            assert!(
                decode(Some("gzip"), &r.body) == want,
                "{name} {what}: fresh"
            );
            r.header("etag").unwrap().to_owned()
        };
        let v1 = prose(len, 20);
        let file = root.write(name, &v1);
        let before = server.compressions();
        let tag1 = fetch(&v1, "v1");
        assert_eq!(fetch(&v1, "v1 again"), tag1);
        assert_eq!(server.compressions(), before + 1, "the second was a hit");

        // Rewritten in place with another size.
        let v2 = prose(len + 10, 21);
        std::fs::write(&file, &v2).unwrap();
        let tag2 = fetch(&v2, "v2");
        assert_ne!(tag1, tag2);

        // Same size, rewritten in place; the mtime moves on (set explicitly:
        // two writes can fall in one timestamp tick).
        let v3 = prose(len + 10, 22);
        assert_eq!(v3.len(), v2.len());
        let old = std::fs::metadata(&file).unwrap().modified().unwrap();
        let f = std::fs::OpenOptions::new().write(true).open(&file).unwrap();
        (&f).write_all(&v3).unwrap();
        f.set_modified(old + std::time::Duration::from_secs(1))
            .unwrap();
        drop(f);
        let tag3 = fetch(&v3, "v3");
        assert_ne!(tag2, tag3);

        // Replaced by rename (a new inode), as deploy tools do.
        let v4 = prose(len, 23);
        let tmp = root.write("incoming.tmp", &v4);
        std::fs::rename(&tmp, &file).unwrap();
        fetch(&v4, "v4");
        assert_eq!(server.compressions(), before + 4, "one per version");
    }
}

/// Many concurrent requests for one big uncached variant compress it once:
/// each either waits for that compression or gets the identity body; none
/// starts its own (counted by the server, not timed).
#[test]
fn concurrent_requests_for_one_big_variant_compress_it_once() {
    const CLIENTS: usize = 8;
    let root = TempDir::new("cmp-flight");
    let big = prose(3 * 1024 * 1024, 24);
    root.write("bundle.js", &big);
    let server = TestServer::with(root.path(), |c| c.threads = 4);
    let start = Barrier::new(CLIENTS);
    let codings: Vec<Option<String>> = std::thread::scope(|s| {
        let clients: Vec<_> = (0..CLIENTS)
            .map(|_| {
                s.spawn(|| {
                    let mut stream = connect(server.addr);
                    start.wait();
                    stream
                        .write_all(
                            b"GET /bundle.js HTTP/1.1\r\nHost: t\r\nAccept-Encoding: gzip\r\nConnection: close\r\n\r\n",
                        )
                        .unwrap();
                    let r = read_response(&mut BufReader::new(stream), false).unwrap();
                    assert_eq!(r.status, 200);
                    let coding = r.header("content-encoding").map(str::to_owned);
                    assert!(decode(coding.as_deref(), &r.body) == big, "the file");
                    coding
                })
            })
            .collect();
        clients.into_iter().map(|c| c.join().unwrap()).collect()
    });
    assert!(codings.iter().any(Option::is_some), "one was compressed");
    assert_eq!(server.compressions(), 1, "{codings:?}");
    // Once made, every request gets it, still without compressing again.
    for _ in 0..3 {
        let r = get(server.addr, "/bundle.js", &[&ae("gzip")]);
        assert_eq!(r.header("content-encoding"), Some("gzip"));
    }
    assert_eq!(server.compressions(), 1);
}
