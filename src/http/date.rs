//! The one calendar: UTC civil time from a `SystemTime`, and the two text
//! forms stoke writes, the IMF-fixdate of HTTP (`Date`, `Last-Modified`, the
//! log's timestamp) and the Common Log Format time of the access log.
//!
//! Nothing here can panic for any `SystemTime`, before 1970 or after the
//! year 9999 included: file times come from the disk, where anything can be.
//! Years that do not fit the four digits both formats have are clamped to
//! 0000-01-01 00:00:00 or 9999-12-31 23:59:59; callers that must not send a
//! clamped value (`Last-Modified`) decide before formatting.
//!
//! Runs on: any thread (workers, the reactor, the logger).

use std::cell::Cell;
use std::time::{SystemTime, UNIX_EPOCH};

/// Seconds in a day; UNIX time ignores leap seconds, so every day has exactly
/// this many.
pub const SECONDS_PER_DAY: i64 = 86_400;

/// 0000-01-01T00:00:00Z, the first second a four-digit year can show.
const FIRST_FORMATTABLE: i64 = -62_167_219_200;

/// 9999-12-31T23:59:59Z, the last second a four-digit year can show.
const LAST_FORMATTABLE: i64 = 253_402_300_799;

const DAY_NAMES: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
const MONTH_NAMES: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// A UTC calendar timestamp broken into fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Civil {
    /// Proleptic Gregorian; may be negative or beyond 9999.
    pub year: i64,
    /// 1..=12
    pub month: u8,
    /// 1..=31
    pub day: u8,
    pub hour: u8,
    pub minute: u8,
    pub second: u8,
    /// 0 = Sunday ..= 6 = Saturday.
    pub weekday: u8,
}

/// Whole seconds since the UNIX epoch, rounded towards the past (so
/// 1969-12-31T23:59:59.5 is -1), and the nanoseconds past that second.
/// Saturates at the ends of `i64`, which no real clock or file reaches.
pub fn unix_parts(t: SystemTime) -> (i64, u32) {
    match t.duration_since(UNIX_EPOCH) {
        Ok(after) => match i64::try_from(after.as_secs()) {
            Ok(secs) => (secs, after.subsec_nanos()),
            Err(_) => (i64::MAX, 0),
        },
        Err(e) => {
            let before = e.duration();
            let whole = i64::try_from(before.as_secs()).unwrap_or(i64::MAX);
            match before.subsec_nanos() {
                0 => (whole.saturating_neg(), 0),
                nanos => (
                    whole.saturating_neg().saturating_sub(1),
                    1_000_000_000 - nanos,
                ),
            }
        }
    }
}

/// Whole seconds since the UNIX epoch, rounded towards the past.
pub fn unix_seconds(t: SystemTime) -> i64 {
    unix_parts(t).0
}

/// Splits UNIX seconds into a UTC date and time, for any `i64`.
///
/// The date part is Howard Hinnant's `civil_from_days`: it shifts the year to
/// start in March so the leap day is the last day of the year, then counts in
/// 400-year eras (146 097 days each). Euclidean division makes it exact for
/// days before 1970 too, and `|days| < 2^47` keeps every product far from
/// overflow.
pub fn civil_from_unix(seconds: i64) -> Civil {
    let days = seconds.div_euclid(SECONDS_PER_DAY);
    let of_day = seconds.rem_euclid(SECONDS_PER_DAY); // [0, 86399]

    // 719 468 days separate 0000-03-01 from 1970-01-01.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097); // [0, 146096]
    let year_of_era =
        (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365; // [0, 399]
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100); // [0, 365]
    let shifted_month = (5 * day_of_year + 2) / 153; // [0, 11], March = 0
    let day = day_of_year - (153 * shifted_month + 2) / 5 + 1; // [1, 31]
    let month = if shifted_month < 10 {
        shifted_month + 3
    } else {
        shifted_month - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);

    // Every narrowing below is of a value whose range is stated above.
    let small = |v: i64| u8::try_from(v).unwrap_or(0);
    Civil {
        year,
        month: small(month),
        day: small(day),
        hour: small(of_day / 3_600),
        minute: small(of_day % 3_600 / 60),
        second: small(of_day % 60),
        // 1970-01-01 was a Thursday.
        weekday: small((days + 4).rem_euclid(7)),
    }
}

/// `t` in the range both text forms can show.
fn formattable(t: SystemTime) -> Civil {
    civil_from_unix(unix_seconds(t).clamp(FIRST_FORMATTABLE, LAST_FORMATTABLE))
}

fn month_name(c: &Civil) -> &'static str {
    MONTH_NAMES
        .get(usize::from(c.month).wrapping_sub(1))
        .copied()
        .unwrap_or("Jan")
}

/// Length of an IMF-fixdate: `Sun, 06 Nov 1994 08:49:37 GMT`.
pub const IMF_FIXDATE_LEN: usize = 29;

/// `Sun, 06 Nov 1994 08:49:37 GMT`, the IMF-fixdate of RFC 9110 §5.6.7.
pub fn imf_fixdate(t: SystemTime) -> String {
    imf_fixdate_bytes(t)
        .iter()
        .map(|&b| char::from(b))
        .collect()
}

/// [`imf_fixdate`] into a fixed buffer: no allocation and no `fmt`, for
/// the `Date` of every response and a cached file's `Last-Modified`.
pub fn imf_fixdate_bytes(t: SystemTime) -> [u8; IMF_FIXDATE_LEN] {
    imf_fixdate_of_seconds(unix_seconds(t))
}

/// [`imf_fixdate_bytes`] of UNIX seconds.
fn imf_fixdate_of_seconds(seconds: i64) -> [u8; IMF_FIXDATE_LEN] {
    let c = civil_from_unix(seconds.clamp(FIRST_FORMATTABLE, LAST_FORMATTABLE));
    let day_name = DAY_NAMES
        .get(usize::from(c.weekday))
        .copied()
        .unwrap_or("Sun");
    let mut out = *b"Sun, 00 Jan 0000 00:00:00 GMT";
    out[..3].copy_from_slice(day_name.as_bytes());
    two_digits(&mut out[5..7], c.day);
    out[8..11].copy_from_slice(month_name(&c).as_bytes());
    // `formattable` clamps the year to 0..=9999.
    let year = u16::try_from(c.year).unwrap_or(0);
    two_digits(&mut out[12..14], (year / 100 % 100) as u8);
    two_digits(&mut out[14..16], (year % 100) as u8);
    two_digits(&mut out[17..19], c.hour);
    two_digits(&mut out[20..22], c.minute);
    two_digits(&mut out[23..25], c.second);
    out
}

/// Writes `v` (0..=99) as two ASCII digits into `out` (two bytes).
fn two_digits(out: &mut [u8], v: u8) {
    if let [tens, ones] = out {
        *tens = b'0' + v / 10 % 10;
        *ones = b'0' + v % 10;
    }
}

/// `10/Oct/2000:13:55:36 +0000`, the Common Log Format time, in UTC.
pub fn clf_time(t: SystemTime) -> String {
    let c = formattable(t);
    format!(
        "{:02}/{}/{:04}:{:02}:{:02}:{:02} +0000",
        c.day,
        month_name(&c),
        c.year,
        c.hour,
        c.minute,
        c.second
    )
}

/// Calls `f` with the current time as an IMF-fixdate. Every response and
/// every log line needs one, so each thread keeps the text of the current
/// second in a fixed buffer and formats again only when the second
/// changes: per thread rather than shared, so a hit reads no cache line
/// that another worker writes, and no lock is needed; the price is one
/// formatting per thread per second.
pub fn with_imf_fixdate_now<R>(f: impl FnOnce(&str) -> R) -> R {
    with_imf_fixdate(SystemTime::now(), f)
}

/// [`with_imf_fixdate_now`] for a "now" the caller already has.
pub fn with_imf_fixdate<R>(now: SystemTime, f: impl FnOnce(&str) -> R) -> R {
    with_imf_fixdate_of_seconds(unix_seconds(now), f)
}

/// [`with_imf_fixdate`] for a "now" the caller has as UNIX seconds.
pub fn with_imf_fixdate_of_seconds<R>(secs: i64, f: impl FnOnce(&str) -> R) -> R {
    let text = imf_fixdate_of_seconds_cached(secs);
    // Only ASCII is ever written (see `imf_fixdate_bytes`).
    f(std::str::from_utf8(&text).unwrap_or("Thu, 01 Jan 1970 00:00:00 GMT"))
}

/// The bytes [`with_imf_fixdate_of_seconds`] passes on, from the same
/// per-thread cache, for a caller that writes bytes (a response head).
pub fn imf_fixdate_of_seconds_cached(secs: i64) -> [u8; IMF_FIXDATE_LEN] {
    thread_local! {
        static CACHE: Cell<(i64, [u8; IMF_FIXDATE_LEN])> =
            const { Cell::new((i64::MIN, [b' '; IMF_FIXDATE_LEN])) };
    }
    CACHE.with(|cell| {
        let (cached, text) = cell.get();
        if cached == secs {
            return text;
        }
        let text = imf_fixdate_of_seconds(secs);
        cell.set((secs, text));
        text
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn at(secs: i64) -> SystemTime {
        if secs >= 0 {
            UNIX_EPOCH + Duration::from_secs(secs.unsigned_abs())
        } else {
            UNIX_EPOCH - Duration::from_secs(secs.unsigned_abs())
        }
    }

    #[test]
    fn imf_fixdate_table() {
        let cases = [
            (0, "Thu, 01 Jan 1970 00:00:00 GMT"),
            (784_111_777, "Sun, 06 Nov 1994 08:49:37 GMT"),
            (951_782_400, "Tue, 29 Feb 2000 00:00:00 GMT"),
            (4_102_444_800, "Fri, 01 Jan 2100 00:00:00 GMT"),
            (-1, "Wed, 31 Dec 1969 23:59:59 GMT"),
            (-86_400, "Wed, 31 Dec 1969 00:00:00 GMT"),
            (-2_208_988_800, "Mon, 01 Jan 1900 00:00:00 GMT"),
            (LAST_FORMATTABLE, "Fri, 31 Dec 9999 23:59:59 GMT"),
            (FIRST_FORMATTABLE, "Sat, 01 Jan 0000 00:00:00 GMT"),
            // Beyond four digits: clamped, never a panic or a fifth digit.
            (LAST_FORMATTABLE + 86_400, "Fri, 31 Dec 9999 23:59:59 GMT"),
            (FIRST_FORMATTABLE - 1, "Sat, 01 Jan 0000 00:00:00 GMT"),
        ];
        for (secs, want) in cases {
            assert_eq!(imf_fixdate(at(secs)), want, "{secs}");
        }
    }

    #[test]
    fn clf_time_table() {
        assert_eq!(clf_time(at(971_186_136)), "10/Oct/2000:13:55:36 +0000");
        assert_eq!(clf_time(at(-1)), "31/Dec/1969:23:59:59 +0000");
    }

    /// Cross-check against httpdate wherever it is defined (1970..=9999).
    #[test]
    fn imf_fixdate_matches_httpdate() {
        let mut secs: i64 = 0;
        while secs <= LAST_FORMATTABLE {
            let t = at(secs);
            assert_eq!(imf_fixdate(t), httpdate::fmt_http_date(t), "{secs}");
            secs += 3 * SECONDS_PER_DAY + 3_607;
        }
    }

    /// Day by day across the epoch, every date follows the one before it.
    #[test]
    fn days_are_consecutive_across_the_epoch() {
        let mut prev = civil_from_unix(-800 * SECONDS_PER_DAY);
        for day in -799..800 {
            let c = civil_from_unix(day * SECONDS_PER_DAY);
            let next_day = c.day == prev.day + 1 && c.month == prev.month && c.year == prev.year;
            let next_month = c.day == 1 && c.month == prev.month % 12 + 1;
            assert!(next_day || next_month, "{prev:?} → {c:?}");
            assert_eq!(c.weekday, (prev.weekday + 1) % 7);
            prev = c;
        }
    }

    #[test]
    fn unix_parts_floor_before_the_epoch() {
        assert_eq!(unix_parts(UNIX_EPOCH), (0, 0));
        assert_eq!(unix_parts(UNIX_EPOCH + Duration::new(3, 5)), (3, 5));
        assert_eq!(
            unix_parts(UNIX_EPOCH - Duration::new(1, 500_000_000)),
            (-2, 500_000_000)
        );
        assert_eq!(unix_parts(UNIX_EPOCH - Duration::from_secs(3)), (-3, 0));
    }

    /// The extremes of `SystemTime` and of `i64` never panic.
    #[test]
    fn any_time_formats_without_panicking() {
        for secs in [i64::MIN, i64::MIN + 1, -1, 0, i64::MAX - 1, i64::MAX] {
            let c = civil_from_unix(secs);
            assert!((1..=12).contains(&c.month) && (1..=31).contains(&c.day));
        }
        let far = [
            UNIX_EPOCH.checked_add(Duration::from_secs(u64::MAX / 2)),
            UNIX_EPOCH.checked_sub(Duration::from_secs(u64::MAX / 2)),
            UNIX_EPOCH.checked_add(Duration::new(i64::MAX as u64, 999_999_999)),
        ];
        for t in far.into_iter().flatten() {
            assert_eq!(imf_fixdate(t).len(), 29);
            let _ = clf_time(t);
        }
    }

    /// The per-second cache never serves the previous second's text, and
    /// within a second gives what formatting afresh gives.
    #[test]
    fn the_cached_date_follows_the_clock() {
        let t = at(784_111_777);
        let read = |t| with_imf_fixdate(t, str::to_owned);
        assert_eq!(read(t), "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(
            read(t + Duration::from_millis(999)),
            "Sun, 06 Nov 1994 08:49:37 GMT"
        );
        assert_eq!(
            read(t + Duration::from_secs(1)),
            "Sun, 06 Nov 1994 08:49:38 GMT"
        );
        // Backwards too (the clock may be set back).
        assert_eq!(read(t), "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(read(at(0)), "Thu, 01 Jan 1970 00:00:00 GMT");
    }

    #[test]
    fn date_now_is_cached_and_well_formed() {
        let first = with_imf_fixdate_now(str::to_owned);
        assert_eq!(first.len(), 29);
        assert!(httpdate::parse_http_date(&first).is_ok(), "{first}");
    }
}
