//! Validators and conditional requests (RFC 9110 §8.8 and §13).
//!
//! Where this sits in a request's path: once the worker thread has resolved
//! the path to a file (and picked an encoded variant), it knows that
//! variant's validators: a strong `ETag` built by [`make_etag`] and a
//! `Last-Modified` time from [`last_modified`]. Before reading any bytes it calls [`evaluate`] with
//! the request's conditional headers to decide between carrying on, `304
//! Not Modified` and `412 Precondition Failed`; if it carries on and there
//! is a `Range`, [`if_range_allows`] says whether to honour it.
//!
//! Everything here is pure: no I/O and no panics on any input, because all
//! of these header values come straight from the client and are fuzzed.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The validators of one representation (a file, or one encoded variant of it).
#[derive(Clone, Copy, Debug)]
pub struct Validators<'a> {
    /// Strong entity-tag including its quotes, e.g. `"5f1-1a2b"`.
    pub etag: &'a str,
    /// The `Last-Modified` the response carries (see [`last_modified`]);
    /// compared at whole-second precision. `None`: there is none, and the
    /// date preconditions are ignored (RFC 9110 §13.1.3, §13.1.4).
    pub last_modified: Option<SystemTime>,
    /// When the response is made (its `Date`): decides whether
    /// `last_modified` is a strong validator (RFC 9110 §8.8.2.2).
    pub now: SystemTime,
}

/// The conditional request header values as received (raw field values;
/// `None` if absent; if a field occurs several times the caller joins them
/// with ", ").
///
/// `if_range` is carried here for convenience but is not used by
/// [`evaluate`]; pass it to [`if_range_allows`] when a `Range` is present.
#[derive(Default, Clone, Copy, Debug)]
pub struct Conditions<'a> {
    pub if_match: Option<&'a str>,
    pub if_none_match: Option<&'a str>,
    pub if_modified_since: Option<&'a str>,
    pub if_unmodified_since: Option<&'a str>,
    pub if_range: Option<&'a str>,
}

/// The verdict of the precondition checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Precondition {
    /// Serve the request normally.
    Proceed,
    /// Answer `304 Not Modified` with no body.
    NotModified,
    /// Answer `412 Precondition Failed`.
    Failed,
}

/// How two entity-tags are compared (RFC 9110 §8.8.3.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Comparison {
    /// Both tags must be strong and byte-for-byte equal; used where the
    /// client will combine bytes (If-Match, If-Range).
    Strong,
    /// Opaque parts equal, `W/` ignored; enough to reuse a cached copy
    /// (If-None-Match).
    Weak,
}

/// One parsed entity-tag: `opaque` keeps its surrounding quotes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct EntityTag<'a> {
    weak: bool,
    opaque: &'a [u8],
}

/// Evaluates the preconditions in the order of RFC 9110 §13.2.2.
///
/// `is_get_or_head`: If-None-Match/If-Modified-Since yield 304 only for
/// GET/HEAD (else 412 for If-None-Match, and If-Modified-Since is ignored).
pub fn evaluate(is_get_or_head: bool, c: &Conditions, v: &Validators) -> Precondition {
    // Steps 1-2: the "don't touch it unless it is still what I think" checks.
    // If-Unmodified-Since is only a fallback for clients without an ETag, so
    // it is skipped whenever If-Match is present.
    if let Some(if_match) = c.if_match {
        if !list_matches(if_match, v.etag, Comparison::Strong) {
            return Precondition::Failed;
        }
    } else if let (Some(date), Some(modified)) =
        (c.if_unmodified_since.and_then(parse_date), v.last_modified)
    {
        if http_seconds(modified) > date {
            return Precondition::Failed;
        }
    }

    // Steps 3-4: the "only send it if it changed" checks. The same rule
    // applies: If-Modified-Since is ignored whenever If-None-Match is present.
    if let Some(if_none_match) = c.if_none_match {
        if list_matches(if_none_match, v.etag, Comparison::Weak) {
            return if is_get_or_head {
                Precondition::NotModified
            } else {
                Precondition::Failed
            };
        }
    } else if is_get_or_head {
        if let (Some(date), Some(modified)) =
            (c.if_modified_since.and_then(parse_date), v.last_modified)
        {
            if http_seconds(modified) <= date {
                return Precondition::NotModified;
            }
        }
    }

    Precondition::Proceed
}

/// If-Range (RFC 9110 §13.1.5): true when the `Range` header should be
/// honoured.
///
/// That is an entity-tag that strongly matches (weak tags never match), or
/// an HTTP-date exactly equal to Last-Modified at second precision, counted
/// only while that date is a strong validator: at least one second before
/// the response's `Date` (RFC 9110 §8.8.2.2), since a file modified in the
/// current second may change again within it without its date changing.
/// Anything unparseable yields false, which means "send the whole file":
/// the safe answer when we cannot tell whether the client's copy is current.
pub fn if_range_allows(if_range: &str, v: &Validators) -> bool {
    let value = if_range.trim_matches(is_ows);
    // §13.1.5: a DQUOTE in the first three characters (`"…` or `W/"…`)
    // distinguishes an entity-tag from a date.
    if value.starts_with('"') || value.starts_with("W/") {
        let ours = match parse_single_tag(v.etag) {
            Some(tag) => tag,
            None => return false,
        };
        return match parse_single_tag(value) {
            Some(theirs) => tags_match(theirs, ours, Comparison::Strong),
            None => false,
        };
    }
    match (parse_date(value), v.last_modified) {
        (Some(date), Some(modified)) => {
            let modified = http_seconds(modified);
            modified == date && modified < http_seconds(v.now)
        }
        _ => false,
    }
}

/// The `Last-Modified` to send for a file modified at `mtime` in a response
/// made at `now`, or `None` for none.
///
/// A modification time in the future (a skewed clock, a file from a
/// careless archive) is replaced by `now`, as RFC 9110 §8.8.2.1 requires:
/// the response's `Date` is made after `now` and so is never earlier. A
/// time before 1970 is not sent at all: no HTTP-date parser we or most
/// clients use reads one back, so it could never validate anything.
pub fn last_modified(mtime: Option<SystemTime>, now: SystemTime) -> Option<SystemTime> {
    let mtime = mtime?;
    if mtime < UNIX_EPOCH {
        return None;
    }
    Some(mtime.min(now))
}

/// Makes a strong ETag from a file's size, modification time and content
/// coding: only what a copy of the file carries with it, so every machine
/// serving the same deployed files (same bytes, same mtime) sends the same
/// tag, and a cache in front of several instances keeps validating. (Inode
/// numbers, which nginx leaves out for the same reason, differ per disk.)
///
/// Shape: `"<len>-<secs>[.<nanos>][-<coding>]"`, all numbers in hex to keep
/// it short; `secs` is the mtime's whole seconds since 1970 (rounded down)
/// as a 64-bit two's-complement number, so a time before 1970 gets a tag of
/// its own too and nothing here can panic. The coding suffix makes each
/// precompressed variant's tag distinct, which strong comparison requires
/// because their bytes differ. `""` and `"identity"` both mean "no suffix".
/// Only ASCII alphanumerics of `coding` are kept so the tag can never
/// contain a quote.
pub fn make_etag(len: u64, mtime: SystemTime, coding: &str) -> String {
    let (secs, nanos) = super::date::unix_parts(mtime);
    let mut tag = String::with_capacity(48);
    tag.push('"');
    push_hex(&mut tag, len);
    tag.push('-');
    // `as` reinterprets the sign bit: the two's-complement spelling above.
    push_hex(&mut tag, secs as u64);
    // Nanoseconds catch edits within the same second; omitted when zero
    // (filesystems with coarse timestamps) to keep the tag short.
    if nanos != 0 {
        tag.push('.');
        push_hex(&mut tag, u64::from(nanos));
    }
    if !coding.is_empty() && !coding.eq_ignore_ascii_case("identity") {
        tag.push('-');
        tag.extend(coding.chars().filter(char::is_ascii_alphanumeric));
    }
    tag.push('"');
    tag
}

/// Appends `n` in lower-case hex, as `{:x}` would, without `fmt`.
fn push_hex(out: &mut String, n: u64) {
    let mut digits = [0u8; 16];
    let mut at = digits.len();
    let mut n = n;
    loop {
        at -= 1;
        digits[at] = b"0123456789abcdef"[(n & 0xf) as usize];
        n >>= 4;
        if n == 0 {
            break;
        }
    }
    out.extend(digits[at..].iter().map(|&d| char::from(d)));
}

/// Truncates a time to whole seconds (towards the past).
///
/// HTTP dates have no sub-second part, so a file modified at 12:00:00.7 is
/// sent as `Last-Modified: ... 12:00:00 GMT`; comparing the untruncated
/// mtime with the client's echo of that value would wrongly say "modified".
pub fn http_seconds(t: SystemTime) -> SystemTime {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => UNIX_EPOCH
            .checked_add(Duration::from_secs(d.as_secs()))
            .unwrap_or(t),
        Err(e) => {
            // Before the epoch, flooring means rounding the distance up.
            let before = e.duration();
            let secs = if before.subsec_nanos() == 0 {
                before.as_secs()
            } else {
                before.as_secs().saturating_add(1)
            };
            UNIX_EPOCH
                .checked_sub(Duration::from_secs(secs))
                .unwrap_or(t)
        }
    }
}

/// Parses an HTTP-date (IMF-fixdate, RFC 850 or asctime). Invalid dates,
/// including a comma-joined list of several dates, yield `None` so the
/// header is ignored as RFC 9110 §13.1.3/§13.1.4 require.
fn parse_date(value: &str) -> Option<SystemTime> {
    httpdate::parse_http_date(value.trim_matches(is_ows)).ok()
}

/// Whether an If-Match / If-None-Match value (`"*"` or a list of
/// entity-tags) matches our tag under `cmp`.
fn list_matches(value: &str, etag: &str, cmp: Comparison) -> bool {
    // `*` matches any current representation; we only get here when the
    // file exists, so it always matches.
    if value.trim_matches(is_ows) == "*" {
        return true;
    }
    let ours = match parse_single_tag(etag) {
        Some(tag) => tag,
        None => return false,
    };
    EntityTags::new(value).any(|theirs| tags_match(theirs, ours, cmp))
}

/// Compares two entity-tags (RFC 9110 §8.8.3.2).
fn tags_match(a: EntityTag, b: EntityTag, cmp: Comparison) -> bool {
    match cmp {
        Comparison::Strong => !a.weak && !b.weak && a.opaque == b.opaque,
        Comparison::Weak => a.opaque == b.opaque,
    }
}

/// Parses a value that must be exactly one entity-tag (If-Range, and our
/// own ETag).
fn parse_single_tag(value: &str) -> Option<EntityTag<'_>> {
    let bytes = value.trim_matches(is_ows).as_bytes();
    match scan_tag(bytes) {
        Some((tag, [])) => Some(tag),
        _ => None,
    }
}

/// Reads one `[W/] DQUOTE *etagc DQUOTE` from the start of `input` and
/// returns it with the unread remainder.
fn scan_tag(input: &[u8]) -> Option<(EntityTag<'_>, &[u8])> {
    let (weak, quoted) = match input.strip_prefix(b"W/") {
        Some(rest) => (true, rest),
        None => (false, input),
    };
    let inner = quoted.strip_prefix(b"\"")?;
    // Entity-tags cannot contain a DQUOTE, so the first one closes the tag.
    // Commas are legal inside, which is why lists are not split on commas.
    let close = inner.iter().position(|&b| b == b'"')?;
    let body = inner.get(..close)?;
    if !body.iter().all(|&b| is_etagc(b)) {
        return None;
    }
    // +2 covers both quotes; `get` keeps this panic-free regardless.
    let opaque = quoted.get(..close.checked_add(2)?)?;
    let rest = quoted.get(close.checked_add(2)?..)?;
    Some((EntityTag { weak, opaque }, rest))
}

/// Iterator over the well-formed entity-tags of a comma-separated list.
/// Malformed members are skipped (treated as non-matching), never fatal.
struct EntityTags<'a> {
    rest: &'a [u8],
}

impl<'a> EntityTags<'a> {
    fn new(value: &'a str) -> Self {
        EntityTags {
            rest: value.as_bytes(),
        }
    }
}

impl<'a> Iterator for EntityTags<'a> {
    type Item = EntityTag<'a>;

    fn next(&mut self) -> Option<EntityTag<'a>> {
        loop {
            // Skip OWS and empty list elements (RFC 9110 §5.6.1).
            let start = self
                .rest
                .iter()
                .position(|&b| !(b == b' ' || b == b'\t' || b == b','))?;
            let member = self.rest.get(start..)?;
            match scan_tag(member) {
                Some((tag, after)) => {
                    let after = trim_ows_start(after);
                    if after.is_empty() || after.first() == Some(&b',') {
                        self.rest = after;
                        return Some(tag);
                    }
                    // Junk after the closing quote: the member is garbage.
                    self.rest = skip_past_comma(after);
                }
                None => self.rest = skip_past_comma(member),
            }
        }
    }
}

/// Drops everything up to and including the next comma (or everything).
/// Every call consumes at least one byte of a non-empty input, so the
/// iterator above always terminates.
fn skip_past_comma(input: &[u8]) -> &[u8] {
    match input.iter().position(|&b| b == b',') {
        Some(i) => input.get(i.saturating_add(1)..).unwrap_or_default(),
        None => &[],
    }
}

fn trim_ows_start(input: &[u8]) -> &[u8] {
    let start = input
        .iter()
        .position(|&b| b != b' ' && b != b'\t')
        .unwrap_or(input.len());
    input.get(start..).unwrap_or_default()
}

/// `etagc = %x21 / %x23-7E / obs-text` (RFC 9110 §8.8.3).
fn is_etagc(b: u8) -> bool {
    b == 0x21 || (0x23..=0x7E).contains(&b) || b >= 0x80
}

/// Optional whitespace (RFC 9110 §5.6.3): spaces and horizontal tabs only.
fn is_ows(c: char) -> bool {
    c == ' ' || c == '\t'
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 1994-11-06 08:49:37 UTC, the RFC's example date.
    const T: u64 = 784_111_777;
    const DATE: &str = "Sun, 06 Nov 1994 08:49:37 GMT";
    const DATE_850: &str = "Sunday, 06-Nov-94 08:49:37 GMT";
    const DATE_ASCTIME: &str = "Sun Nov  6 08:49:37 1994";
    const BEFORE: &str = "Sun, 06 Nov 1994 08:49:36 GMT";
    const AFTER: &str = "Sun, 06 Nov 1994 08:49:38 GMT";
    const ETAG: &str = "\"abc\"";

    fn at(secs: u64, nanos: u32) -> SystemTime {
        UNIX_EPOCH + Duration::new(secs, nanos)
    }

    fn validators() -> Validators<'static> {
        // Sub-second part on purpose: comparisons must ignore it.
        Validators {
            etag: ETAG,
            last_modified: Some(at(T, 700_000_000)),
            now: at(T + 3_600, 0),
        }
    }

    #[test]
    fn evaluate_table() {
        use Precondition::{Failed, NotModified, Proceed};
        let none = Conditions::default();
        #[rustfmt::skip]
        let cases: Vec<(&str, bool, Conditions, Precondition)> = vec![
            ("no conditions", true, none, Proceed),
            ("no conditions, POST", false, none, Proceed),
            // Step 1: If-Match (strong).
            ("IM match", true, Conditions { if_match: Some("\"abc\""), ..none }, Proceed),
            ("IM in list", true, Conditions { if_match: Some("\"x\", \"abc\""), ..none }, Proceed),
            ("IM star", true, Conditions { if_match: Some("*"), ..none }, Proceed),
            ("IM mismatch", true, Conditions { if_match: Some("\"x\""), ..none }, Failed),
            ("IM weak never matches", true, Conditions { if_match: Some("W/\"abc\""), ..none }, Failed),
            ("IM garbage", true, Conditions { if_match: Some("abc"), ..none }, Failed),
            ("IM empty", true, Conditions { if_match: Some(""), ..none }, Failed),
            ("IM beats IUS", true, Conditions { if_match: Some(ETAG), if_unmodified_since: Some(BEFORE), ..none }, Proceed),
            // Step 2: If-Unmodified-Since.
            ("IUS same second", true, Conditions { if_unmodified_since: Some(DATE), ..none }, Proceed),
            ("IUS later", true, Conditions { if_unmodified_since: Some(AFTER), ..none }, Proceed),
            ("IUS earlier", true, Conditions { if_unmodified_since: Some(BEFORE), ..none }, Failed),
            ("IUS earlier, POST", false, Conditions { if_unmodified_since: Some(BEFORE), ..none }, Failed),
            ("IUS unparseable", true, Conditions { if_unmodified_since: Some("yesterday"), ..none }, Proceed),
            // Step 3: If-None-Match (weak).
            ("INM match", true, Conditions { if_none_match: Some(ETAG), ..none }, NotModified),
            ("INM weak match", true, Conditions { if_none_match: Some("W/\"abc\""), ..none }, NotModified),
            ("INM list match", true, Conditions { if_none_match: Some("\"a\" , W/\"abc\""), ..none }, NotModified),
            ("INM star", true, Conditions { if_none_match: Some("*"), ..none }, NotModified),
            ("INM match, POST", false, Conditions { if_none_match: Some(ETAG), ..none }, Failed),
            ("INM star, POST", false, Conditions { if_none_match: Some("*"), ..none }, Failed),
            ("INM mismatch", true, Conditions { if_none_match: Some("\"x\""), ..none }, Proceed),
            ("INM garbage then match", true, Conditions { if_none_match: Some("junk, \"abc\""), ..none }, NotModified),
            ("INM beats IMS", true, Conditions { if_none_match: Some("\"x\""), if_modified_since: Some(AFTER), ..none }, Proceed),
            // Step 4: If-Modified-Since.
            ("IMS same second", true, Conditions { if_modified_since: Some(DATE), ..none }, NotModified),
            ("IMS rfc850", true, Conditions { if_modified_since: Some(DATE_850), ..none }, NotModified),
            ("IMS asctime", true, Conditions { if_modified_since: Some(DATE_ASCTIME), ..none }, NotModified),
            ("IMS later", true, Conditions { if_modified_since: Some(AFTER), ..none }, NotModified),
            ("IMS earlier", true, Conditions { if_modified_since: Some(BEFORE), ..none }, Proceed),
            ("IMS ignored for POST", false, Conditions { if_modified_since: Some(AFTER), ..none }, Proceed),
            ("IMS unparseable", true, Conditions { if_modified_since: Some("garbage"), ..none }, Proceed),
            ("IMS two dates", true, Conditions { if_modified_since: Some("Sun, 06 Nov 1994 08:49:37 GMT, Sun, 06 Nov 1994 08:49:37 GMT"), ..none }, Proceed),
            // Order: a failed If-Match wins over a matching If-None-Match.
            ("IM fail before INM", true, Conditions { if_match: Some("\"x\""), if_none_match: Some(ETAG), ..none }, Failed),
            ("IUS fail before IMS", true, Conditions { if_unmodified_since: Some(BEFORE), if_modified_since: Some(AFTER), ..none }, Failed),
            ("If-Range is ignored", true, Conditions { if_range: Some("\"x\""), ..none }, Proceed),
        ];
        let v = validators();
        for (name, get, c, want) in cases {
            assert_eq!(evaluate(get, &c, &v), want, "{name}");
        }
        // No Last-Modified (a file from before 1970): the date conditions
        // are ignored, the entity-tag ones still apply.
        let undated = Validators {
            last_modified: None,
            ..v
        };
        #[rustfmt::skip]
        let undated_cases = [
            ("IUS ignored", Conditions { if_unmodified_since: Some(BEFORE), ..none }, Proceed),
            ("IMS ignored", Conditions { if_modified_since: Some(AFTER), ..none }, Proceed),
            ("INM still", Conditions { if_none_match: Some(ETAG), ..none }, NotModified),
            ("IM still", Conditions { if_match: Some("\"x\""), ..none }, Failed),
        ];
        for (name, c, want) in undated_cases {
            assert_eq!(evaluate(true, &c, &undated), want, "{name}");
        }
    }

    #[test]
    fn if_range_table() {
        let cases = [
            ("\"abc\"", true),
            (" \"abc\" ", true),
            ("W/\"abc\"", false),
            ("\"abd\"", false),
            ("\"abc\", \"abc\"", false),
            ("\"abc", false),
            ("abc", false),
            (DATE, true),
            (DATE_850, true),
            (BEFORE, false),
            (AFTER, false),
            ("", false),
            ("W/", false),
            ("\"", false),
        ];
        let v = validators();
        for (value, want) in cases {
            assert_eq!(if_range_allows(value, &v), want, "{value:?}");
        }
        // A weak tag of our own can never satisfy a strong comparison.
        let weak = Validators {
            etag: "W/\"abc\"",
            ..v
        };
        assert!(!if_range_allows("W/\"abc\"", &weak));
        assert!(!if_range_allows("\"abc\"", &weak));
        // Without a Last-Modified no date can match.
        let undated = Validators {
            last_modified: None,
            ..v
        };
        assert!(!if_range_allows(DATE, &undated));
        assert!(if_range_allows("\"abc\"", &undated));
    }

    /// Regression (if-range-date-weak-validator): an If-Range date counted
    /// even when Last-Modified fell in the response's own second, where the
    /// file may change again without its date changing (RFC 9110 §8.8.2.2).
    #[test]
    fn if_range_date_counts_only_when_last_modified_is_strong() {
        let modified = at(T, 700_000_000);
        let cases = [
            ("a second later", at(T + 1, 0), true),
            ("an hour later", at(T + 3_600, 0), true),
            ("same second", at(T, 900_000_000), false),
            ("same instant", modified, false),
        ];
        for (what, now, want) in cases {
            let v = Validators {
                etag: ETAG,
                last_modified: Some(modified),
                now,
            };
            assert_eq!(if_range_allows(DATE, &v), want, "{what}");
            // The entity-tag form is always strong.
            assert!(if_range_allows(ETAG, &v), "{what}");
        }
    }

    /// Regression (last-modified-in-the-future, last-modified-before-1970):
    /// a future mtime was sent as is, later than `Date`; one outside
    /// 1970..=9999 made the date formatter panic.
    #[test]
    fn last_modified_is_clamped_to_now_and_omitted_before_1970() {
        let now = at(T, 250_000_000);
        let cases = [
            ("past", Some(at(T - 10, 5)), Some(at(T - 10, 5))),
            ("now", Some(now), Some(now)),
            ("future", Some(at(T + 10, 0)), Some(now)),
            (
                "year 10000",
                Some(UNIX_EPOCH + Duration::from_secs(253_402_387_200)),
                Some(now),
            ),
            ("epoch", Some(UNIX_EPOCH), Some(UNIX_EPOCH)),
            (
                "before 1970",
                Some(UNIX_EPOCH - Duration::from_secs(86_400)),
                None,
            ),
            (
                "just before 1970",
                Some(UNIX_EPOCH - Duration::new(0, 1)),
                None,
            ),
            ("unknown", None, None),
        ];
        for (what, mtime, want) in cases {
            assert_eq!(last_modified(mtime, now), want, "{what}");
        }
    }

    #[test]
    fn entity_tag_lists() {
        let cases: &[(&str, &[&str])] = &[
            ("\"a\"", &["\"a\""]),
            ("\"a\",\"b\"", &["\"a\"", "\"b\""]),
            (" W/\"a\" ,\t\"b\" ", &["\"a\"", "\"b\""]),
            ("\"a,b\", \"c\"", &["\"a,b\"", "\"c\""]),
            (",,\"a\",,", &["\"a\""]),
            ("\"\"", &["\"\""]),
            ("junk, \"a\"", &["\"a\""]),
            ("\"a\"junk, \"b\"", &["\"b\""]),
            ("\"a b\", \"c\"", &["\"c\""]),
            ("w/\"a\"", &[]),
            ("\"unterminated", &[]),
            ("", &[]),
            ("*", &[]),
            ("\"é\"", &["\"é\""]),
        ];
        for (value, want) in cases {
            let got: Vec<&[u8]> = EntityTags::new(value).map(|t| t.opaque).collect();
            let want: Vec<&[u8]> = want.iter().map(|s| s.as_bytes()).collect();
            assert_eq!(got, want, "{value:?}");
        }
    }

    #[test]
    fn make_etag_table() {
        let cases = [
            (2, at(3, 0), "", "\"2-3\""),
            (0x10, at(0x5f, 0x1a), "", "\"10-5f.1a\""),
            (2, at(3, 0), "identity", "\"2-3\""),
            (2, at(3, 0), "br", "\"2-3-br\""),
            (2, at(3, 0), "gzip", "\"2-3-gzip\""),
            (2, at(3, 0), "g\"z ip", "\"2-3-gzip\""),
            (
                2,
                UNIX_EPOCH - Duration::from_secs(5),
                "",
                "\"2-fffffffffffffffb\"",
            ),
            (
                2,
                UNIX_EPOCH - Duration::new(0, 1),
                "",
                "\"2-ffffffffffffffff.3b9ac9ff\"",
            ),
            (
                u64::MAX,
                at(1, 999_999_999),
                "br",
                "\"ffffffffffffffff-1.3b9ac9ff-br\"",
            ),
        ];
        for (len, mtime, coding, want) in cases {
            let tag = make_etag(len, mtime, coding);
            assert_eq!(tag, want);
            // Every tag we make must parse back as a single strong tag.
            let parsed = parse_single_tag(&tag);
            assert!(
                matches!(parsed, Some(EntityTag { weak: false, .. })),
                "{tag}"
            );
        }
    }

    /// Regression (etag-from-inode): the tag depended on the inode, so two
    /// machines serving the same files sent different tags. Now it is a
    /// function of size, mtime (nanoseconds included) and coding alone.
    #[test]
    fn etag_depends_on_size_mtime_and_coding_only() {
        let base = make_etag(100, at(T, 1), "");
        assert_eq!(base, make_etag(100, at(T, 1), ""), "deterministic");
        assert_ne!(base, make_etag(100, at(T, 2), ""), "nanoseconds count");
        assert_ne!(base, make_etag(100, at(T + 1, 1), ""), "seconds count");
        assert_ne!(base, make_etag(101, at(T, 1), ""), "size counts");
        assert_ne!(base, make_etag(100, at(T, 1), "br"), "coding counts");
        // Before 1970, distinct times still give distinct tags.
        let old = |secs| make_etag(1, UNIX_EPOCH - Duration::from_secs(secs), "");
        assert_ne!(old(5), old(6));
        assert_ne!(old(5), make_etag(1, UNIX_EPOCH, ""));
    }

    #[test]
    fn http_seconds_table() {
        let cases = [
            (at(T, 0), at(T, 0)),
            (at(T, 1), at(T, 0)),
            (at(T, 999_999_999), at(T, 0)),
            (UNIX_EPOCH, UNIX_EPOCH),
            (
                UNIX_EPOCH - Duration::new(1, 500),
                UNIX_EPOCH - Duration::from_secs(2),
            ),
            (
                UNIX_EPOCH - Duration::from_secs(3),
                UNIX_EPOCH - Duration::from_secs(3),
            ),
        ];
        for (input, want) in cases {
            assert_eq!(http_seconds(input), want, "{input:?}");
        }
    }

    /// Hostile header values must never panic.
    #[test]
    fn pseudo_random_values_never_panic() {
        const ALPHABET: &[&str] = &[
            "\"", "W/", "w/", ",", " ", "\t", "*", "abc", "\"abc\"", "é", "\u{7f}", DATE, "GMT",
        ];
        let mut state: u64 = 0x2545_F491_4F6C_DD1D;
        let mut next = move || {
            // xorshift64: enough to spread inputs without extra crates.
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let v = validators();
        for _ in 0..20_000 {
            let mut value = String::new();
            for _ in 0..(next() % 10) {
                let pick = usize::try_from(next() % ALPHABET.len() as u64).unwrap_or(0);
                value.push_str(ALPHABET.get(pick).copied().unwrap_or(""));
            }
            let c = Conditions {
                if_match: Some(&value),
                if_none_match: Some(&value),
                if_modified_since: Some(&value),
                if_unmodified_since: Some(&value),
                if_range: Some(&value),
            };
            let _ = evaluate(next() % 2 == 0, &c, &v);
            let _ = if_range_allows(&value, &v);
            let _ = EntityTags::new(&value).count();
        }
    }
}
