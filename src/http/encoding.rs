//! Content-coding negotiation (RFC 9110 §12.5.3): precompressed sidecars
//! and on-the-fly compression.
//!
//! Where this sits in a request's path: after the worker thread has mapped
//! the URL to a file, it checks whether `file.br` / `file.gz` sidecars exist
//! next to it, parses the client's `Accept-Encoding` with
//! [`AcceptEncoding::parse`], and asks [`AcceptEncoding::choose`] which
//! sidecar to open, or [`AcceptEncoding::choose_among`] which of the
//! sidecars and the codings `site::compress` can make on the fly wins. The
//! chosen [`Coding`] then decides the `Content-Encoding` header and the ETag
//! suffix (see `conditional.rs`).
//!
//! Everything here is pure and panic-free on any input, because the header
//! comes from the client and this module is fuzzed.

/// q-values are kept as integer thousandths: the grammar allows at most
/// three decimals, so this is exact and avoids floating-point comparisons.
const Q_SCALE: u16 = 1000;

/// Weight given to `identity` when the client did not mention it (nor `*`).
///
/// Identity is acceptable by default (§12.5.3), but a client that lists
/// `gzip;q=0.5` is saying "gzip is fine", not "prefer uncompressed", so the
/// implicit identity ranks below every coding the client listed with q > 0.
const IMPLICIT_IDENTITY_Q: u16 = 1;

/// The most decimal places a qvalue may have (RFC 9110 §12.4.2).
const MAX_Q_DECIMALS: usize = 3;

/// A content coding we can serve: a precompressed sidecar, a variant
/// compressed on the fly, or the file itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Coding {
    Zstd,
    Brotli,
    Gzip,
    Identity,
}

impl Coding {
    /// The token used in `Content-Encoding` (and in our ETag suffix).
    pub fn token(self) -> &'static str {
        match self {
            Coding::Zstd => "zstd",
            Coding::Brotli => "br",
            Coding::Gzip => "gzip",
            Coding::Identity => "identity",
        }
    }

    /// The file-name suffix of the precompressed sidecar, e.g. `app.js.br`;
    /// `None` for identity, which is the file itself, and for zstd, which is
    /// only made on the fly (no `.zst` lookup: another failing open on every
    /// request for a rare convention).
    pub fn sidecar_suffix(self) -> Option<&'static str> {
        match self {
            Coding::Zstd => None,
            Coding::Brotli => Some(".br"),
            Coding::Gzip => Some(".gz"),
            Coding::Identity => None,
        }
    }
}

/// Parsed Accept-Encoding preferences.
///
/// Each field is the q-value (in thousandths) the client gave that member,
/// or `None` if it did not list it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AcceptEncoding {
    zstd: Option<u16>,
    brotli: Option<u16>,
    gzip: Option<u16>,
    identity: Option<u16>,
    star: Option<u16>,
}

impl AcceptEncoding {
    /// Parses the field value; `None` means the header was absent.
    ///
    /// An absent or empty header means identity only: RFC 9110 says an empty
    /// value wants no coding, and although an absent header technically
    /// allows any coding, old clients that omit it may not decode one.
    /// Unknown codings are ignored; a malformed q-value counts as `q=0`,
    /// so we never send a coding the client may not have asked for.
    /// If a coding is listed more than once, the first occurrence wins.
    pub fn parse(header: Option<&str>) -> AcceptEncoding {
        let mut prefs = AcceptEncoding::default();
        let header = match header {
            Some(h) => h,
            None => return prefs,
        };
        for member in header.split(',') {
            let mut parts = member.split(';');
            let token = parts.next().unwrap_or_default().trim_matches(is_ows);
            if token.is_empty() {
                // RFC 9110 §5.6.1: tolerate empty list elements.
                continue;
            }
            let q = parse_weight(parts);
            let slot = if token.eq_ignore_ascii_case("zstd") {
                &mut prefs.zstd
            } else if token.eq_ignore_ascii_case("br") {
                &mut prefs.brotli
            } else if token.eq_ignore_ascii_case("gzip") || token.eq_ignore_ascii_case("x-gzip") {
                // `x-gzip` is the historical alias (§8.4.1.3).
                &mut prefs.gzip
            } else if token.eq_ignore_ascii_case("identity") {
                &mut prefs.identity
            } else if token == "*" {
                &mut prefs.star
            } else {
                continue;
            };
            if slot.is_none() {
                *slot = Some(q);
            }
        }
        prefs
    }

    /// True when the client accepts `c` (q > 0).
    pub fn accepts(&self, c: Coding) -> bool {
        self.weight(c) > 0
    }

    /// Chooses among the codings that exist on disk.
    ///
    /// Highest q wins; on a tie br is preferred over gzip over identity
    /// (smallest transfer first). Returns Identity when nothing else is
    /// acceptable. If identity itself is refused (`identity;q=0`, or `*;q=0`
    /// without identity) and no sidecar fits, this still returns Identity:
    /// the caller serves it anyway, as nginx does, rather than a bare 406.
    pub fn choose(&self, brotli_available: bool, gzip_available: bool) -> Coding {
        let sidecars = [
            (Coding::Brotli, brotli_available),
            (Coding::Gzip, gzip_available),
        ];
        let mut offered = [Coding::Identity; 2];
        let mut n = 0;
        for (coding, available) in sidecars {
            if available {
                offered[n] = coding;
                n += 1;
            }
        }
        self.choose_among(&offered[..n])
    }

    /// Chooses among `offered` (the server's order of preference) and
    /// identity, which is always available and comes last.
    ///
    /// Highest q wins; on a tie the earlier offered coding wins. A coding
    /// with q=0 is never chosen; when nothing is acceptable the answer is
    /// Identity, as for [`choose`](Self::choose).
    pub fn choose_among(&self, offered: &[Coding]) -> Coding {
        let mut best = Coding::Identity;
        let mut best_q = 0;
        // Strict `>` keeps the earlier (preferred) coding on a tie.
        for &coding in offered.iter().chain([&Coding::Identity]) {
            let q = self.weight(coding);
            if q > best_q {
                best = coding;
                best_q = q;
            }
        }
        best
    }

    /// The effective q-value of `c` in thousandths, applying the rules for
    /// `*` and for identity's default acceptability.
    fn weight(&self, c: Coding) -> u16 {
        let listed = match c {
            Coding::Zstd => self.zstd,
            Coding::Brotli => self.brotli,
            Coding::Gzip => self.gzip,
            Coding::Identity => self.identity,
        };
        // `*` covers only codings not listed explicitly.
        match (listed, self.star, c) {
            (Some(q), _, _) => q,
            (None, Some(q), _) => q,
            (None, None, Coding::Identity) => IMPLICIT_IDENTITY_Q,
            (None, None, _) => 0,
        }
    }
}

/// Finds the `q` parameter among a member's parameters. Absent means q=1;
/// malformed means q=0. Other parameters are ignored.
fn parse_weight<'a>(params: impl Iterator<Item = &'a str>) -> u16 {
    for param in params {
        let (name, value) = match param.split_once('=') {
            Some(pair) => pair,
            None => continue,
        };
        if name.trim_matches(is_ows).eq_ignore_ascii_case("q") {
            return parse_qvalue(value.trim_matches(is_ows)).unwrap_or(0);
        }
    }
    Q_SCALE
}

/// Parses `qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] )`
/// into thousandths.
fn parse_qvalue(s: &str) -> Option<u16> {
    let (int, frac) = match s.split_once('.') {
        Some((int, frac)) => (int, frac),
        None => (s, ""),
    };
    if frac.len() > MAX_Q_DECIMALS || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // Pad to exactly three digits so "0.5" is 500 thousandths, not 5.
    let thousandths = frac
        .bytes()
        .chain(std::iter::repeat(b'0'))
        .take(MAX_Q_DECIMALS)
        .fold(0u16, |acc, b| {
            acc.saturating_mul(10)
                .saturating_add(u16::from(b.saturating_sub(b'0')))
        });
    match int {
        "0" => Some(thousandths),
        "1" if thousandths == 0 => Some(Q_SCALE),
        _ => None,
    }
}

/// Optional whitespace (RFC 9110 §5.6.3): spaces and horizontal tabs only.
fn is_ows(c: char) -> bool {
    c == ' ' || c == '\t'
}

#[cfg(test)]
mod tests {
    use super::*;
    use Coding::{Brotli, Gzip, Identity, Zstd};

    #[test]
    fn choose_table() {
        // (header, brotli on disk, gzip on disk, expected)
        let cases: &[(Option<&str>, bool, bool, Coding)] = &[
            // The brief's examples.
            (Some("gzip, br"), true, true, Brotli),
            (Some("br;q=0.5, gzip"), true, true, Gzip),
            (Some("br;q=0, gzip"), true, true, Gzip),
            (Some("*"), true, true, Brotli),
            (Some("gzip;q=0"), true, true, Identity),
            (Some("identity"), true, true, Identity),
            (Some("BR"), true, true, Brotli),
            // Absent and empty headers: identity only.
            (None, true, true, Identity),
            (Some(""), true, true, Identity),
            (Some(" , ,"), true, true, Identity),
            // Availability on disk.
            (Some("gzip, br"), false, true, Gzip),
            (Some("gzip, br"), false, false, Identity),
            (Some("br"), false, true, Identity),
            // Aliases, case, whitespace, parameters.
            (Some("x-gzip"), true, true, Gzip),
            (Some("X-GZIP"), false, true, Gzip),
            (Some(" gzip ; q = 0.8 , br ;q=0.7"), true, true, Gzip),
            (Some("gzip;Q=0.9, br;q=0.8"), true, true, Gzip),
            (Some("gzip;level=9"), true, true, Gzip),
            // Star applies only to unlisted codings.
            (Some("*;q=0.5, gzip"), true, true, Gzip),
            (Some("*, br;q=0"), true, true, Gzip),
            (Some("*;q=0"), true, true, Identity),
            (Some("*;q=0, identity;q=0"), true, true, Identity),
            // Identity explicitly preferred, tied, or implicit.
            (Some("identity, gzip;q=0.5"), true, true, Identity),
            (Some("identity, gzip"), true, true, Gzip),
            (Some("gzip;q=0.001"), true, true, Gzip),
            (Some("identity;q=0.002, gzip;q=0.001"), true, true, Identity),
            // Exact q comparisons at three decimals.
            (Some("br;q=0.999, gzip;q=1.000"), true, true, Gzip),
            (Some("br;q=0.5, gzip;q=0.50"), true, true, Brotli),
            // Malformed q-values count as q=0.
            (Some("br;q=1.5, gzip"), true, true, Gzip),
            (Some("br;q=0.1234, gzip;q=0.1"), true, true, Gzip),
            (Some("br;q=abc"), true, true, Identity),
            (Some("br;q=-1"), true, true, Identity),
            (Some("br;q=, gzip"), true, true, Gzip),
            (Some("br;q=2"), true, true, Identity),
            // Duplicates: the first occurrence wins.
            (Some("br;q=0, br"), true, true, Identity),
            // Unknown codings are ignored.
            (Some("zstd, deflate"), true, true, Identity),
            (Some("compress, br;q=0.1"), true, true, Brotli),
        ];
        for &(header, brotli, gzip, want) in cases {
            let got = AcceptEncoding::parse(header).choose(brotli, gzip);
            assert_eq!(got, want, "{header:?} br={brotli} gz={gzip}");
        }
    }

    /// The sidecars first, then the codings made on the fly: at equal q a
    /// sidecar wins (it was made with more effort), and among the rest the
    /// order offered (site::compress: br, zstd, gzip) decides; a higher q
    /// always wins.
    #[test]
    fn choose_among_table() {
        let live = [Brotli, Zstd, Gzip];
        // (header, offered, expected)
        let cases: &[(Option<&str>, &[Coding], Coding)] = &[
            (Some("gzip, deflate, br, zstd"), &live, Brotli),
            (Some("gzip, zstd"), &live, Zstd),
            (Some("gzip"), &live, Gzip),
            (Some("zstd;q=0.5, gzip"), &live, Gzip),
            (Some("zstd, br;q=0.9"), &live, Zstd),
            (Some("*"), &live, Brotli),
            (Some("*;q=0.5, identity"), &live, Identity),
            (Some("identity;q=0, zstd;q=0"), &live, Identity),
            (None, &live, Identity),
            (Some(""), &live, Identity),
            // A gzip sidecar offered first beats br made on the fly at
            // equal q, but not a coding the client prefers.
            (Some("gzip, br, zstd"), &[Gzip, Brotli, Zstd, Gzip], Gzip),
            (Some("gzip;q=0.9, zstd"), &[Gzip, Brotli, Zstd, Gzip], Zstd),
            (Some("ZSTD"), &[], Identity),
            (Some("ZSTD"), &[Zstd], Zstd),
        ];
        for &(header, offered, want) in cases {
            let got = AcceptEncoding::parse(header).choose_among(offered);
            assert_eq!(got, want, "{header:?} {offered:?}");
        }
    }

    #[test]
    fn accepts_table() {
        // (header, accepts br, accepts gzip, accepts identity)
        let cases: &[(Option<&str>, bool, bool, bool)] = &[
            (None, false, false, true),
            (Some(""), false, false, true),
            (Some("gzip"), false, true, true),
            (Some("br, gzip"), true, true, true),
            (Some("zstd"), false, false, true),
            (Some("*"), true, true, true),
            (Some("*;q=0"), false, false, false),
            (Some("*;q=0, identity"), false, false, true),
            (Some("identity;q=0"), false, false, false),
            (Some("identity;q=0, *"), true, true, false),
        ];
        for &(header, br, gz, id) in cases {
            let prefs = AcceptEncoding::parse(header);
            assert_eq!(prefs.accepts(Brotli), br, "{header:?} br");
            assert_eq!(prefs.accepts(Gzip), gz, "{header:?} gzip");
            assert_eq!(prefs.accepts(Identity), id, "{header:?} identity");
        }
    }

    #[test]
    fn qvalue_table() {
        let cases = [
            ("0", Some(0)),
            ("0.", Some(0)),
            ("0.5", Some(500)),
            ("0.05", Some(50)),
            ("0.123", Some(123)),
            ("1", Some(1000)),
            ("1.", Some(1000)),
            ("1.000", Some(1000)),
            ("1.001", None),
            ("0.1234", None),
            ("2", None),
            (".5", None),
            ("", None),
            ("+0.5", None),
            ("0.5x", None),
            ("0.٣", None),
        ];
        for (input, want) in cases {
            assert_eq!(parse_qvalue(input), want, "{input:?}");
        }
    }

    #[test]
    fn coding_names() {
        let cases = [
            (Zstd, "zstd", None),
            (Brotli, "br", Some(".br")),
            (Gzip, "gzip", Some(".gz")),
            (Identity, "identity", None),
        ];
        for (coding, token, suffix) in cases {
            assert_eq!(coding.token(), token);
            assert_eq!(coding.sidecar_suffix(), suffix);
        }
    }

    /// Hostile header values must never panic, and a refused coding must
    /// never be chosen.
    #[test]
    fn pseudo_random_headers_never_panic() {
        const ALPHABET: &[&str] = &[
            "br", "gzip", "x-gzip", "zstd", "identity", "*", ";", "q=", "0", "1", ".", "5", ",",
            " ", "é", "=",
        ];
        let mut state: u64 = 0xDEAD_BEEF_CAFE_F00D;
        let mut next = move || {
            // xorshift64: enough to spread inputs without extra crates.
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..20_000 {
            let mut value = String::new();
            for _ in 0..(next() % 12) {
                let pick = usize::try_from(next() % ALPHABET.len() as u64).unwrap_or(0);
                value.push_str(ALPHABET.get(pick).copied().unwrap_or(""));
            }
            let prefs = AcceptEncoding::parse(Some(&value));
            let chosen = prefs.choose(next() % 2 == 0, next() % 2 == 0);
            if chosen != Identity {
                assert!(prefs.accepts(chosen), "{value:?} -> {chosen:?}");
            }
            let chosen = prefs.choose_among(&[Brotli, Gzip, Zstd, Brotli, Gzip]);
            if chosen != Identity {
                assert!(prefs.accepts(chosen), "{value:?} -> {chosen:?}");
            }
        }
    }
}
