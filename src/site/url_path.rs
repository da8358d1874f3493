//! URL path → relative filesystem path.
//!
//! Role in the request's path: runs on a worker thread right after the request
//! line has been parsed and before anything touches the filesystem. This is the
//! *only* place where bytes chosen by the client become a filesystem path, so
//! every traversal and encoding trick is settled here, once: the result is a
//! relative path that can be joined under the server root without ever
//! escaping it.
//!
//! The steps, in order:
//! 1. insist on origin-form (`/...`);
//! 2. split on the literal `/` *before* decoding, so an encoded slash can
//!    never act as a separator;
//! 3. percent-decode each segment exactly once and reject anything that is not
//!    clean UTF-8 text without control characters;
//! 4. remove dot segments (RFC 3986 §5.2.4), clamping at the root;
//! 5. apply the hidden-file (dotfile) policy to what is left.
//!
//! The functions here are pure (no I/O) and must never panic: they see raw
//! attacker input and are fuzzed.

use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

/// The one dot-directory served even when hidden files are off, because
/// RFC 8615 reserves it for well-known URIs (ACME challenges, security.txt).
const WELL_KNOWN: &str = ".well-known";

/// Bytes that [`encode`] leaves alone: RFC 3986 unreserved characters plus
/// '/', the separator. Everything else is escaped so that a file name can never
/// be read as a query, fragment, scheme or HTML attribute terminator.
const KEEP_UNESCAPED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b'/');

/// Why a request path was refused; `http::errors` maps it to a status.
pub use crate::http::errors::PathError;

/// A decoded request path, safe to join under the server root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UrlPath {
    /// Relative path: no leading '/', no "." or ".." components, no empty
    /// components, no NUL. Empty for the root.
    pub relative: PathBuf,
    /// The normalized, decoded path as the URL would show it, starting with
    /// '/' (used for redirects and listings). Ends with '/' exactly when
    /// `trailing_slash` is true. Never contains "//".
    pub decoded: String,
    /// The request asked for a directory explicitly: the path ended with '/',
    /// or ended in a dot segment ("/a/.." means "/", "/a/." means "/a/"), or
    /// it is the root.
    pub trailing_slash: bool,
}

/// Decode and normalize a request path.
///
/// `raw` is the request target's path part only (the caller strips `?query`;
/// for absolute-form targets the caller strips scheme and authority first).
/// Errors are reported in this order: `NotAbsolute`, then the first encoding
/// problem from left to right, then `Hidden`.
pub fn decode(raw: &str, allow_hidden: bool) -> Result<UrlPath, PathError> {
    let Some(rest) = raw.strip_prefix('/') else {
        return Err(PathError::NotAbsolute);
    };

    let mut segments: Vec<String> = Vec::new();
    // A final "." or ".." names a directory, just like a final '/'.
    let mut ended_with_dot_segment = false;
    for piece in rest.split('/') {
        // Empty pieces come from "//" or the trailing '/'; collapsing them means
        // "//etc/passwd" is simply "etc/passwd" under the root.
        if piece.is_empty() {
            continue;
        }
        // Decoding happens after the split and only once, so "%2f" cannot make
        // a separator and "%252e" stays the literal name "%2e".
        let segment = decode_segment(piece)?;
        ended_with_dot_segment = matches!(segment.as_str(), "." | "..");
        match segment.as_str() {
            "." => {}
            // Popping an empty stack is a no-op: ".." at the root stays at the
            // root instead of climbing out of it.
            ".." => {
                segments.pop();
            }
            _ => segments.push(segment),
        }
    }

    // The policy is checked on the normalized result, so "/.git/../x" is fine
    // (it never touches .git) while "/x/../.git" is not.
    let joined = segments.join("/");
    if !allow_hidden && exposes_hidden(Path::new(&joined)) {
        return Err(PathError::Hidden);
    }

    let trailing_slash = raw.ends_with('/') || ended_with_dot_segment || segments.is_empty();
    let mut decoded = String::with_capacity(joined.len() + 2);
    decoded.push('/');
    decoded.push_str(&joined);
    if trailing_slash && !joined.is_empty() {
        decoded.push('/');
    }

    Ok(UrlPath {
        // Each segment is free of '/' and NUL and is not "." or "..", so on
        // Unix every component of this path is a plain name.
        relative: PathBuf::from(joined),
        decoded,
        trailing_slash,
    })
}

/// Room for [`plain`]'s answer to a path ending in `/`: the path and the
/// index's name. Longer paths take the full [`decode`].
pub const PLAIN_MAX: usize = 512;

/// The bytes a plain path's segments may hold: printable ASCII but `%`.
const fn is_plain_byte(b: u8) -> bool {
    matches!(b, 0x21..=0x7e) && b != b'%'
}

/// Where [`plain`]'s scan stands after a byte.
const AT_SEGMENT_START: u8 = 0;
const IN_SEGMENT: u8 = 1;
/// Not plain; stays so whatever follows.
const REFUSED: u8 = 2;

/// [`plain`]'s scan as a table, `PLAIN_STEP[state][byte]`: one load per
/// byte, no branch until the end. A segment may not start with `.` or `/`
/// (a dot segment, a dotfile, an empty segment).
const PLAIN_STEP: [[u8; 256]; 3] = {
    let mut table = [[REFUSED; 256]; 3];
    let mut b = 0;
    while b < 256 {
        let byte = b as u8;
        if is_plain_byte(byte) {
            let next = if byte == b'/' {
                AT_SEGMENT_START
            } else {
                IN_SEGMENT
            };
            table[IN_SEGMENT as usize][b] = next;
            if byte != b'.' && byte != b'/' {
                table[AT_SEGMENT_START as usize][b] = next;
            }
        }
        b += 1;
    }
    table
};

/// The file a plain request path names, without decoding or allocating,
/// for the cache's lookup on the common path: `Some` only when [`decode`]
/// would change nothing, so its answer is exactly `decode`'s `relative`
/// (for a path ending in `/`, joined with `index`, built in `buf`, which
/// is only then filled: the common file path zeroes no buffer).
///
/// Plain means: origin-form, no empty segment (`//`) but a final `/`, and
/// every segment of printable ASCII other than `%`, not starting with `.`
/// (so no dot segment and nothing the dotfile policy refuses, whatever
/// `--hidden` says). Anything else is `None`, and the caller decodes.
pub fn plain<'a>(
    raw: &'a str,
    index: &str,
    buf: &'a mut Option<[u8; PLAIN_MAX]>,
) -> Option<&'a Path> {
    let rest = raw.strip_prefix('/')?;
    // The root is a directory asked for with its slash.
    let (dir, trailing_slash) = match rest.strip_suffix('/') {
        Some(dir) => (dir, true),
        None => (rest, rest.is_empty()),
    };
    if dir.is_empty() && !rest.is_empty() {
        return None;
    }
    let bytes = dir.as_bytes();
    // One pass: every byte plain, and each segment starts with neither `.`
    // nor `/` (an empty segment).
    let state = bytes.iter().fold(AT_SEGMENT_START, |state, &b| {
        PLAIN_STEP[usize::from(state)][usize::from(b)]
    });
    // The last segment is not empty either (`dir` has its final `/`
    // stripped already, so a `/` left at its end made an empty one).
    match state {
        IN_SEGMENT => {}
        AT_SEGMENT_START if bytes.is_empty() => {}
        _ => return None,
    }
    if !trailing_slash {
        return Some(Path::new(dir));
    }
    // `dir/index`, or `index` alone for the root.
    let sep = usize::from(!dir.is_empty());
    let len = dir.len() + sep + index.len();
    let out = buf.insert([0; PLAIN_MAX]).get_mut(..len)?;
    out[..dir.len()].copy_from_slice(dir.as_bytes());
    out[dir.len()..dir.len() + sep].copy_from_slice(&b"/"[..sep]);
    out[dir.len() + sep..].copy_from_slice(index.as_bytes());
    Some(Path::new(std::ffi::OsStr::from_bytes(out)))
}

/// Is this single file name hidden by the dotfile policy?
///
/// Used by listings and by sidecar/index lookups too. Note that this says
/// `true` for ".well-known": the RFC 8615 exception applies to request paths
/// (in [`decode`]), not to what a directory listing shows.
pub fn is_hidden_name(name: &str) -> bool {
    is_hidden_bytes(name.as_bytes())
}

fn is_hidden_bytes(name: &[u8]) -> bool {
    name.starts_with(b".")
}

/// Does `path` break the dotfile policy? A path relative to the root does
/// when any name in it starts with '.', except a first `.well-known`; an
/// absolute one (a symlink's target outside the root, with
/// `--follow-symlinks`) when any name does.
///
/// [`decode`] applies it to the request path; `site::open` applies it again
/// to the real path of what was opened when a symlink led there, so a link
/// cannot expose a hidden file.
pub fn exposes_hidden(path: &Path) -> bool {
    let relative = path.is_relative();
    path.components()
        .filter_map(|c| match c {
            Component::Normal(name) => Some(name.as_bytes()),
            _ => None,
        })
        .enumerate()
        .any(|(i, name)| {
            is_hidden_bytes(name) && !(relative && i == 0 && name == WELL_KNOWN.as_bytes())
        })
}

/// Percent-encode a decoded path for a Location header or an href.
///
/// Keeps unreserved characters and '/', encodes everything else (spaces,
/// UTF-8, '?', '#', '%', '"', '<', ':' ...). Pass a normalized path such as
/// [`UrlPath::decoded`] or a single file name: a value starting with "//"
/// would be read by browsers as a different host.
pub fn encode(decoded: &str) -> String {
    utf8_percent_encode(decoded, KEEP_UNESCAPED).to_string()
}

/// Percent-decode one segment (which contains no literal '/').
fn decode_segment(piece: &str) -> Result<String, PathError> {
    let mut bytes = Vec::with_capacity(piece.len());
    let mut input = piece.bytes();
    while let Some(byte) = input.next() {
        let byte = if byte == b'%' {
            // Both digits must be present and hex; "%", "%4" and "%zz" are all
            // malformed rather than literal, so ambiguity cannot sneak through.
            let high = input.next().and_then(hex_value);
            let low = input.next().and_then(hex_value);
            let (Some(high), Some(low)) = (high, low) else {
                return Err(PathError::BadEncoding);
            };
            let value = (high << 4) | low;
            if value == b'/' {
                return Err(PathError::EncodedSlash);
            }
            value
        } else {
            byte
        };
        // Control bytes (NUL above all) have no business in a file name and
        // confuse logs and C APIs; checked for raw and decoded bytes alike.
        if byte < 0x20 || byte == 0x7f {
            return Err(PathError::BadEncoding);
        }
        bytes.push(byte);
    }
    // from_utf8 is strict: it rejects overlong forms such as C0 AE (a sneaky
    // '.'), surrogates and truncated sequences.
    String::from_utf8(bytes).map_err(|_| PathError::BadEncoding)
}

/// The value of one ASCII hex digit, or `None` if it is not one.
fn hex_value(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        b'A'..=b'F' => Some(digit - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a table row expects: the relative path and trailing-slash flag,
    /// or an error.
    type Expected = Result<(&'static str, bool), PathError>;

    const DECODE_CASES: &[(&str, bool, Expected)] = &[
        // (raw, allow_hidden, expected)
        ("/", false, Ok(("", true))),
        ("/a/b.txt", false, Ok(("a/b.txt", false))),
        ("/a%20b.txt", false, Ok(("a b.txt", false))),
        ("/%E2%9C%93.txt", false, Ok(("✓.txt", false))),
        ("/%e2%9c%93.txt", false, Ok(("✓.txt", false))),
        ("/../x", false, Ok(("x", false))),
        ("/%2e%2e/x", false, Ok(("x", false))),
        ("/%2E%2E/%2e/x", false, Ok(("x", false))),
        ("/sub/..%2f..%2fx", false, Err(PathError::EncodedSlash)),
        ("/a%2Fb", false, Err(PathError::EncodedSlash)),
        ("//etc/passwd", false, Ok(("etc/passwd", false))),
        ("/sub/../../x", false, Ok(("x", false))),
        ("/a/./b", false, Ok(("a/b", false))),
        ("/a//b///", false, Ok(("a/b", true))),
        ("/a/..", false, Ok(("", true))),
        ("/a/b/.", false, Ok(("a/b", true))),
        ("/..", false, Ok(("", true))),
        ("/%00", false, Err(PathError::BadEncoding)),
        ("/a\0b", false, Err(PathError::BadEncoding)),
        ("/a%0ab", false, Err(PathError::BadEncoding)),
        ("/a%7f", false, Err(PathError::BadEncoding)),
        ("/a\tb", false, Err(PathError::BadEncoding)),
        ("/%c0%ae", false, Err(PathError::BadEncoding)),
        ("/%c0%ae%c0%ae/x", false, Err(PathError::BadEncoding)),
        ("/%ff", false, Err(PathError::BadEncoding)),
        ("/%e2%9c", false, Err(PathError::BadEncoding)),
        ("/%zz", false, Err(PathError::BadEncoding)),
        ("/%", false, Err(PathError::BadEncoding)),
        ("/%4", false, Err(PathError::BadEncoding)),
        ("/a%", false, Err(PathError::BadEncoding)),
        ("/.git/config", false, Err(PathError::Hidden)),
        ("/.git/config", true, Ok((".git/config", false))),
        ("/.env", false, Err(PathError::Hidden)),
        ("/%2eenv", false, Err(PathError::Hidden)),
        ("/x/../.env", false, Err(PathError::Hidden)),
        ("/.git/../x", false, Ok(("x", false))),
        ("/.well-known/acme", false, Ok((".well-known/acme", false))),
        ("/.well-known/.secret", false, Err(PathError::Hidden)),
        ("/a/.well-known", false, Err(PathError::Hidden)),
        ("/...", false, Err(PathError::Hidden)),
        ("/dir/", false, Ok(("dir", true))),
        ("/a\\b", false, Ok(("a\\b", false))),
        ("/..\\x", true, Ok(("..\\x", false))),
        ("index.html", false, Err(PathError::NotAbsolute)),
        ("", false, Err(PathError::NotAbsolute)),
        ("*", false, Err(PathError::NotAbsolute)),
        ("/%252e%252e/x", false, Ok(("%2e%2e/x", false))),
        ("/caf\u{e9}", false, Ok(("caf\u{e9}", false))),
    ];

    /// `plain` answers only where `decode` would change nothing, and then
    /// exactly what `decode` (joined with the index) gives.
    fn check_plain(raw: &str) {
        let mut buf = None;
        let Some(plain) = plain(raw, "index.html", &mut buf) else {
            return;
        };
        for allow_hidden in [false, true] {
            let url = decode(raw, allow_hidden).unwrap_or_else(|e| panic!("{raw:?}: {e:?}"));
            let want = if url.trailing_slash {
                url.relative.join("index.html")
            } else {
                url.relative.clone()
            };
            assert_eq!(plain, want, "{raw:?}");
            assert_eq!(
                plain.as_os_str().as_bytes(),
                want.as_os_str().as_bytes(),
                "{raw:?}"
            );
        }
    }

    #[test]
    fn plain_paths_are_what_decode_makes_of_them() {
        let mut buf = None;
        let mut plain = |raw: &str| plain(raw, "index.html", &mut buf).map(Path::to_path_buf);
        assert_eq!(plain("/"), Some("index.html".into()));
        assert_eq!(plain("/a.txt"), Some("a.txt".into()));
        assert_eq!(plain("/d/e/"), Some("d/e/index.html".into()));
        assert_eq!(plain("/d/e.css"), Some("d/e.css".into()));
        for refused in [
            "",
            "*",
            "a",
            "//",
            "/a//b",
            "/a//",
            "/a/b//",
            "/a/.b",
            "//a",
            "/a/./b",
            "/a/../b",
            "/..",
            "/.",
            "/.env",
            "/.well-known/x",
            "/a/.git/",
            "/a%20b",
            "/%2e",
            "/a b",
            "/a\u{7f}",
            "/caf\u{e9}",
            "/a\tb",
        ] {
            assert_eq!(plain(refused), None, "{refused:?}");
        }
        let long = format!("/{}/", "a".repeat(PLAIN_MAX));
        assert_eq!(plain(&long), None, "too long for the buffer");
        assert!(plain(&long[..long.len() - 1]).is_some(), "no buffer needed");
        for &(raw, _, _) in DECODE_CASES {
            check_plain(raw);
        }
    }

    #[test]
    fn decode_table() {
        for &(raw, allow_hidden, expected) in DECODE_CASES {
            let got = decode(raw, allow_hidden);
            match (got, expected) {
                (Ok(path), Ok((relative, trailing))) => {
                    assert_eq!(path.relative, Path::new(relative), "relative for {raw:?}");
                    assert_eq!(path.trailing_slash, trailing, "trailing for {raw:?}");
                }
                (got, expected) => assert_eq!(got.err(), expected.err(), "{raw:?}"),
            }
        }
    }

    const DECODED_CASES: &[(&str, &str)] = &[
        // (raw, normalized decoded form)
        ("/", "/"),
        ("/a%20b/", "/a b/"),
        ("//a//b", "/a/b"),
        ("/a/b/..", "/a/"),
        ("/a/.", "/a/"),
        ("/../..", "/"),
        ("/%E2%9C%93", "/✓"),
    ];

    #[test]
    fn decoded_table() {
        for &(raw, decoded) in DECODED_CASES {
            assert_eq!(
                decode(raw, false).map(|p| p.decoded),
                Ok(decoded.to_string()),
                "{raw:?}"
            );
        }
    }

    const ENCODE_CASES: &[(&str, &str)] = &[
        // (decoded, encoded)
        ("/", "/"),
        ("/a/b-c_d.e~f", "/a/b-c_d.e~f"),
        ("/a b", "/a%20b"),
        ("/✓.txt", "/%E2%9C%93.txt"),
        ("/?#%\"<>'", "/%3F%23%25%22%3C%3E%27"),
        ("javascript:x", "javascript%3Ax"),
        ("/%2e%2e", "/%252e%252e"),
        ("a\\b", "a%5Cb"),
    ];

    #[test]
    fn encode_table() {
        for &(decoded, encoded) in ENCODE_CASES {
            assert_eq!(encode(decoded), encoded, "{decoded:?}");
        }
    }

    const HIDDEN_CASES: &[(&str, bool)] = &[
        (".env", true),
        (".well-known", true),
        ("..", true),
        ("a.txt", false),
        ("", false),
        ("~a", false),
    ];

    const EXPOSES_CASES: &[(&str, bool)] = &[
        ("", false),
        ("a/b.txt", false),
        (".env", true),
        ("a/.git/config", true),
        (".well-known/security.txt", false),
        (".well-known/.x", true),
        ("a/.well-known", true),
        // Outside the root (absolute): no `.well-known` exception.
        ("/srv/docs/a.txt", false),
        ("/home/u/.ssh/id_rsa", true),
        ("/.well-known/x", true),
    ];

    #[test]
    fn exposes_hidden_table() {
        for &(path, hidden) in EXPOSES_CASES {
            assert_eq!(exposes_hidden(Path::new(path)), hidden, "{path:?}");
        }
    }

    #[test]
    fn hidden_table() {
        for &(name, hidden) in HIDDEN_CASES {
            assert_eq!(is_hidden_name(name), hidden, "{name:?}");
        }
    }

    /// Pieces that tend to break path handling; glued together at random.
    const FUZZ_PIECES: &[&str] = &[
        "/",
        "//",
        ".",
        "..",
        "%2e",
        "%2E%2e",
        "%2f",
        "%5c",
        "\\",
        "%",
        "%0",
        "%00",
        "%c0",
        "%ae",
        "%e2%9c%93",
        "a",
        "Z",
        ".well-known",
        ".git",
        "%25",
        "%252e",
        "?",
        "\u{e9}",
        " ",
        "\u{7f}",
    ];

    /// Deterministic pseudo-random inputs: decode must never panic, and any
    /// path it accepts must stay under the root and survive a round trip
    /// through `encode`.
    #[test]
    fn fuzz_invariants() {
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            // xorshift64: good enough to shuffle test pieces, no dependency.
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..20_000 {
            let mut raw = String::new();
            if next() % 8 != 0 {
                raw.push('/');
            }
            for _ in 0..(next() % 8) {
                let index = (next() % FUZZ_PIECES.len() as u64) as usize;
                raw.push_str(FUZZ_PIECES.get(index).copied().unwrap_or("a"));
            }
            check_plain(&raw);
            let allow_hidden = next() % 2 == 0;
            let Ok(path) = decode(&raw, allow_hidden) else {
                continue;
            };
            assert!(
                path.relative
                    .components()
                    .all(|c| matches!(c, Component::Normal(_))),
                "{raw:?} -> {:?}",
                path.relative
            );
            assert!(
                path.decoded.starts_with('/') && !path.decoded.contains("//"),
                "{raw:?}"
            );
            assert_eq!(path.decoded.ends_with('/'), path.trailing_slash, "{raw:?}");
            assert_eq!(
                decode(&encode(&path.decoded), allow_hidden),
                Ok(path),
                "{raw:?}"
            );
        }
    }
}
