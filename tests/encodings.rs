//! Precompressed sidecars (`FILE.br`, `FILE.gz` beside `FILE`) chosen by
//! Accept-Encoding: the chosen variant's bytes with `Content-Encoding`, the
//! original's `Content-Type`, `Vary: Accept-Encoding` whenever a sidecar
//! exists (even when identity is served); a distinct strong ETag per
//! variant; and ranges and conditionals applied to the encoded bytes.
//! The sidecars are fake (just distinct bytes): the server never decodes.
mod common;
use common::*;

struct Site {
    _root: TempDir,
    server: TestServer,
    plain: Vec<u8>,
    br: Vec<u8>,
    gz: Vec<u8>,
}

fn site() -> Site {
    let root = TempDir::new("enc");
    let plain = b"plain text, the identity variant\n".repeat(40);
    let mut br = b"BR:".to_vec();
    br.extend(pattern(300, 21));
    let mut gz = b"GZ:".to_vec();
    gz.extend(pattern(400, 22));
    root.write("page.txt", &plain);
    root.write("page.txt.br", &br);
    root.write("page.txt.gz", &gz);
    // A large variant, to take the sendfile path with a range.
    root.write("big.js", pattern(50_000, 23));
    root.write("big.js.br", pattern(30_000, 24));
    // Only a gzip sidecar.
    root.write("only-gz.css", "body{}");
    root.write("only-gz.css.gz", "GZ-CSS");
    // No sidecar at all.
    root.write("bare.txt", "bare");
    let server = TestServer::start(root.path());
    Site {
        _root: root,
        server,
        plain,
        br,
        gz,
    }
}

#[test]
fn accept_encoding_table() {
    let s = site();
    // (Accept-Encoding, expected Content-Encoding, expected body)
    let cases: Vec<(Option<&str>, Option<&str>, &Vec<u8>)> = vec![
        (None, None, &s.plain),
        (Some("gzip, br"), Some("br"), &s.br),
        (Some("br, gzip"), Some("br"), &s.br),
        (Some("gzip"), Some("gzip"), &s.gz),
        (Some("br"), Some("br"), &s.br),
        (Some("br;q=0, gzip"), Some("gzip"), &s.gz),
        (Some("gzip;q=0"), None, &s.plain),
        (Some("gzip;q=0, br;q=0"), None, &s.plain),
        (Some("gzip;q=1.0, br;q=0.5"), Some("gzip"), &s.gz),
        (Some("GZIP"), Some("gzip"), &s.gz),
        (Some("x-gzip"), Some("gzip"), &s.gz),
        (Some("*"), Some("br"), &s.br),
        (Some("*;q=0, gzip"), Some("gzip"), &s.gz),
        (Some("identity"), None, &s.plain),
        (Some(""), None, &s.plain),
        (Some("deflate, compress"), None, &s.plain),
        (Some("gzip;q=bogus, br;q=0.001"), Some("br"), &s.br),
    ];
    for (accept, want_coding, want_body) in cases {
        let header = accept.map(|a| format!("Accept-Encoding: {a}"));
        let extra: Vec<&str> = header.iter().map(String::as_str).collect();
        let r = get(s.server.addr, "/page.txt", &extra);
        assert_eq!(r.status, 200, "{accept:?}");
        assert_eq!(r.header("content-encoding"), want_coding, "{accept:?}");
        assert!(&r.body == want_body, "{accept:?}: wrong variant");
        assert_eq!(
            r.header("content-length"),
            Some(want_body.len().to_string().as_str())
        );
        assert_eq!(
            r.header("content-type"),
            Some("text/plain; charset=utf-8"),
            "{accept:?}: the original's type"
        );
        assert_eq!(r.header("vary"), Some("Accept-Encoding"), "{accept:?}");
    }
}

#[test]
fn vary_only_when_a_sidecar_exists() {
    let s = site();
    let r = get(s.server.addr, "/bare.txt", &["Accept-Encoding: gzip, br"]);
    assert_eq!((r.status, r.body.as_slice()), (200, &b"bare"[..]));
    assert_eq!(r.header("content-encoding"), None);
    assert_eq!(r.header("vary"), None);

    // Only .gz exists: br preferred by the client but not on disk.
    let r = get(
        s.server.addr,
        "/only-gz.css",
        &["Accept-Encoding: br, gzip"],
    );
    assert_eq!(r.body, b"GZ-CSS");
    assert_eq!(r.header("content-encoding"), Some("gzip"));
    assert_eq!(r.header("content-type"), Some("text/css; charset=utf-8"));
    assert_eq!(r.header("vary"), Some("Accept-Encoding"));
    let r = get(s.server.addr, "/only-gz.css", &["Accept-Encoding: br"]);
    assert_eq!(r.body, b"body{}");
    assert_eq!(r.header("vary"), Some("Accept-Encoding"));
}

#[test]
fn each_variant_has_its_own_strong_etag() {
    let s = site();
    let tag = |ae: &str| {
        let r = get(
            s.server.addr,
            "/page.txt",
            &[&format!("Accept-Encoding: {ae}")],
        );
        r.header("etag").unwrap().to_owned()
    };
    let (identity, br, gz) = (tag("identity"), tag("br"), tag("gzip"));
    assert!(!identity.starts_with("W/") && !br.starts_with("W/") && !gz.starts_with("W/"));
    assert_ne!(identity, br);
    assert_ne!(identity, gz);
    assert_ne!(br, gz);

    // A cached br copy validates only the br variant.
    let cases = [
        ("br", &br, 304),
        ("identity", &br, 200),
        ("gzip", &br, 200),
        ("gzip", &gz, 304),
        ("identity", &identity, 304),
        ("br", &identity, 200),
    ];
    for (ae, inm, want) in cases {
        let r = get(
            s.server.addr,
            "/page.txt",
            &[
                &format!("Accept-Encoding: {ae}"),
                &format!("If-None-Match: {inm}"),
            ],
        );
        assert_eq!(r.status, want, "AE {ae}, INM {inm}");
        if want == 304 {
            assert_eq!(r.header("etag"), Some(inm.as_str()));
            assert_eq!(r.header("vary"), Some("Accept-Encoding"), "304 keeps Vary");
        }
    }

    // If-Range with the identity tag must not splice br bytes.
    let r = get(
        s.server.addr,
        "/page.txt",
        &[
            "Accept-Encoding: br",
            "Range: bytes=0-9",
            &format!("If-Range: {identity}"),
        ],
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.body, s.br);
}

#[test]
fn ranges_apply_to_encoded_bytes() {
    let s = site();
    let r = get(
        s.server.addr,
        "/page.txt",
        &["Accept-Encoding: br", "Range: bytes=3-12"],
    );
    assert_eq!(r.status, 206);
    assert_eq!(r.header("content-encoding"), Some("br"));
    assert_eq!(
        r.header("content-range"),
        Some(format!("bytes 3-12/{}", s.br.len()).as_str())
    );
    assert_eq!(r.body, s.br[3..13]);

    let r = get(
        s.server.addr,
        "/page.txt",
        &["Accept-Encoding: gzip", "Range: bytes=-5"],
    );
    assert_eq!(r.status, 206);
    assert_eq!(r.body, s.gz[s.gz.len() - 5..]);

    // Beyond the sidecar's length (but within the original's) is 416.
    let r = get(
        s.server.addr,
        "/page.txt",
        &[
            "Accept-Encoding: br",
            &format!("Range: bytes={}-", s.br.len()),
        ],
    );
    assert!(s.br.len() < s.plain.len());
    assert_eq!(r.status, 416);
    assert_eq!(
        r.header("content-range"),
        Some(format!("bytes */{}", s.br.len()).as_str())
    );

    // Large sidecar via sendfile.
    let big_br = pattern(30_000, 24);
    let r = get(
        s.server.addr,
        "/big.js",
        &["Accept-Encoding: gzip, br", "Range: bytes=17000-29999"],
    );
    assert_eq!(r.status, 206);
    assert_eq!(r.header("content-encoding"), Some("br"));
    let ty = r.header("content-type").unwrap();
    assert!(ty.contains("javascript"), "the original's type, got {ty}");
    assert!(r.body == big_br[17000..30000]);
}

#[test]
fn multipart_of_encoded_variant_names_the_encoding() {
    let s = site();
    let r = get(
        s.server.addr,
        "/page.txt",
        &["Accept-Encoding: br", "Range: bytes=0-1,100-101"],
    );
    assert_eq!(r.status, 206);
    assert!(r
        .header("content-type")
        .unwrap()
        .starts_with("multipart/byteranges"));
    let text = String::from_utf8_lossy(&r.body);
    assert!(text.contains(&format!("Content-Range: bytes 0-1/{}", s.br.len())));
    assert!(text.contains(&format!("Content-Range: bytes 100-101/{}", s.br.len())));
    let pos = r.body.windows(2).position(|w| w == &s.br[100..102]);
    assert!(pos.is_some(), "br bytes 100-101 are in the body");
}

#[test]
fn head_picks_the_same_variant() {
    let s = site();
    let get_r = get(s.server.addr, "/page.txt", &["Accept-Encoding: gzip, br"]);
    let head = roundtrip(
        s.server.addr,
        "HEAD /page.txt HTTP/1.1\r\nHost: t\r\nAccept-Encoding: gzip, br\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(head.status, 200);
    for name in [
        "content-encoding",
        "content-length",
        "etag",
        "vary",
        "content-type",
    ] {
        assert_eq!(head.header(name), get_r.header(name), "{name}");
    }
    assert!(head.body.is_empty());
}

#[test]
fn sidecar_without_original_is_not_served() {
    let root = TempDir::new("enc-orphan");
    root.write("orphan.txt.br", "BR");
    root.write("orphan.txt.gz", "GZ");
    let server = TestServer::start(root.path());
    let r = get(server.addr, "/orphan.txt", &["Accept-Encoding: br, gzip"]);
    assert_eq!(r.status, 404);
    assert_eq!(r.header("content-encoding"), None);
}

/// The small-file cache remembers "no sidecar" only as long as the
/// directory is unchanged: a sidecar added later is served by the very next
/// request, and one removed stops being served.
#[test]
fn sidecar_added_or_removed_later_is_seen_at_once() {
    let root = TempDir::new("sidecar-later");
    root.write("sub/late.css", "body{}");
    let server = TestServer::start(root.path());
    for _ in 0..3 {
        let r = get(server.addr, "/sub/late.css", &["Accept-Encoding: gzip"]);
        assert_eq!(r.status, 200);
        assert_eq!(r.header("content-encoding"), None);
        assert_eq!(r.header("vary"), None);
    }
    root.write("sub/late.css.gz", "GZIPPED");
    let r = get(server.addr, "/sub/late.css", &["Accept-Encoding: gzip"]);
    assert_eq!(r.header("content-encoding"), Some("gzip"));
    assert_eq!(r.header("vary"), Some("Accept-Encoding"));
    assert_eq!(r.body, b"GZIPPED");
    std::fs::remove_file(root.path().join("sub/late.css.gz")).unwrap();
    let r = get(server.addr, "/sub/late.css", &["Accept-Encoding: gzip"]);
    assert_eq!(r.header("content-encoding"), None);
    assert_eq!(r.body, b"body{}");
}

/// Regression (vary-missing-on-412-and-416): a file with sidecars answered
/// 412 and 416 without `Vary: Accept-Encoding`, though whether a range is
/// satisfiable or a tag matches depends on the variant; a cache could reuse
/// such an answer for another `Accept-Encoding`. Every answer about the
/// file carries it, for GET and HEAD: 200, 206, 304, 412, 416.
#[test]
fn every_response_of_a_file_with_sidecars_has_vary() {
    let s = site();
    let etag = get(s.server.addr, "/page.txt", &["Accept-Encoding: br"])
        .header("etag")
        .unwrap()
        .to_owned();
    let cases: Vec<(String, u16)> = vec![
        (String::new(), 200),
        ("Range: bytes=0-1".into(), 206),
        ("Range: bytes=0-1,5-6".into(), 206),
        (format!("If-None-Match: {etag}"), 304),
        ("If-Match: \"other\"".into(), 412),
        (
            "If-Unmodified-Since: Thu, 01 Jan 1970 00:00:00 GMT".into(),
            412,
        ),
        (format!("Range: bytes={}-", s.br.len()), 416),
    ];
    for method in ["GET", "HEAD"] {
        for (extra, want) in &cases {
            let raw = format!(
                "{method} /page.txt HTTP/1.1\r\nHost: t\r\nAccept-Encoding: br\r\n{extra}{}Connection: close\r\n\r\n",
                if extra.is_empty() { "" } else { "\r\n" }
            );
            let r = roundtrip(s.server.addr, &raw);
            assert_eq!(r.status, *want, "{method} {extra:?}");
            assert_eq!(
                r.header("vary"),
                Some("Accept-Encoding"),
                "{method} {extra:?} → {want}"
            );
        }
    }
    // A file without sidecars never varies, errors included.
    let r = get(s.server.addr, "/bare.txt", &["If-Match: \"other\""]);
    assert_eq!((r.status, r.header("vary")), (412, None));
}
