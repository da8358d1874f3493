//! The access log: one line per request in the Combined Log Format, logged
//! under the target `access` at info level, so `RUST_LOG=access=off` (or
//! `RUST_LOG=warn`) silences it.
//!
//! The line is formatted on the worker that built the response; the reactor
//! only appends the number of body bytes it actually sent, once the write is
//! over (or has failed).
//!
//! Runs on: workers ([`record`]) and the reactor ([`write`](fn@write)).

use std::fmt::Write as _;
use std::net::IpAddr;
use std::time::SystemTime;

use crate::http::date::clf_time;
use crate::http::request::RequestHead;
use crate::http::response::{AccessRecord, Status};

/// The log target; `RUST_LOG` filters on it.
pub const TARGET: &str = "access";

/// Is the access log on? (`RUST_LOG` decides.)
pub fn enabled() -> bool {
    log::log_enabled!(target: TARGET, log::Level::Info)
}

/// Prepares the line for one request, or `None` when the access log is off
/// (then nothing is formatted at all).
pub fn record(
    peer: IpAddr,
    request_line: &str,
    status: Status,
    referer: Option<&str>,
    user_agent: Option<&str>,
) -> Option<Box<AccessRecord>> {
    if !enabled() {
        return None;
    }
    Some(build(peer, request_line, status, referer, user_agent))
}

/// [`record`] for a parsed request: its request line, `Referer` and
/// `User-Agent`. With the log off, not even the request line is formatted.
pub fn for_request(peer: IpAddr, head: &RequestHead, status: Status) -> Option<Box<AccessRecord>> {
    if !enabled() {
        return None;
    }
    Some(build(
        peer,
        &head.request_line(),
        status,
        head.referer(),
        head.user_agent(),
    ))
}

/// The line itself, every client-supplied part escaped.
fn build(
    peer: IpAddr,
    request_line: &str,
    status: Status,
    referer: Option<&str>,
    user_agent: Option<&str>,
) -> Box<AccessRecord> {
    let mut prefix = String::with_capacity(128);
    let _ = write!(
        prefix,
        "{peer} - - [{}] \"{}\" {} ",
        clf_time(SystemTime::now()),
        escape(request_line),
        status.0
    );
    let suffix = format!(
        " \"{}\" \"{}\"",
        escape(referer.unwrap_or("-")),
        escape(user_agent.unwrap_or("-"))
    );
    Box::new(AccessRecord { prefix, suffix })
}

/// Logs the line with the number of bytes sent (head included, as nginx's
/// `$bytes_sent`).
pub fn write(record: Option<Box<AccessRecord>>, bytes_sent: u64) {
    if let Some(r) = record {
        log::info!(target: TARGET, "{}{}{}", r.prefix, bytes_sent, r.suffix);
    }
}

/// Characters that are not control characters yet change how a line reads:
/// line and paragraph separators (a viewer breaks the line there) and the
/// bidirectional and invisible format characters, which can reorder or hide
/// the text around them (the "Trojan Source" trick).
const DECEPTIVE: &[(char, char)] = &[
    ('\u{00ad}', '\u{00ad}'), // soft hyphen
    ('\u{061c}', '\u{061c}'), // Arabic letter mark
    ('\u{180e}', '\u{180e}'), // Mongolian vowel separator
    ('\u{200b}', '\u{200f}'), // zero-width space/(non-)joiner, LRM, RLM
    ('\u{2028}', '\u{202e}'), // line/paragraph separator, LRE..RLO embeddings
    ('\u{2060}', '\u{206f}'), // word joiner, invisible operators, LRI..PDI isolates
    ('\u{feff}', '\u{feff}'), // zero-width no-break space (BOM)
    ('\u{fff9}', '\u{fffb}'), // interlinear annotation controls
];

/// Quotes, control characters and [`DECEPTIVE`] ones from the client must
/// not forge log lines or make one read as something that was not sent.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if DECEPTIVE.iter().any(|&(lo, hi)| (lo..=hi).contains(&c)) => {
                let _ = write!(out, "\\u{{{:04x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_text_cannot_forge_lines() {
        assert_eq!(escape("a\"b\nc\\"), "a\\\"b\\x0ac\\\\");
    }

    /// Regression (log-bidi-and-line-separators): U+2028/U+2029 and the
    /// bidi controls used to pass through from the request line, Referer and
    /// User-Agent, so a log line could show a line break or reordered text
    /// that was never sent.
    #[test]
    fn unicode_separators_and_bidi_controls_are_escaped() {
        let cases = [
            ("a\u{2028}b", "a\\u{2028}b"),
            ("a\u{2029}b", "a\\u{2029}b"),
            ("\u{202e}gnp.exe", "\\u{202e}gnp.exe"),
            (
                "\u{202a}\u{202b}\u{202c}\u{202d}",
                "\\u{202a}\\u{202b}\\u{202c}\\u{202d}",
            ),
            (
                "\u{2066}x\u{2067}y\u{2068}z\u{2069}",
                "\\u{2066}x\\u{2067}y\\u{2068}z\\u{2069}",
            ),
            ("\u{200e}\u{200f}\u{061c}", "\\u{200e}\\u{200f}\\u{061c}"),
            ("zero\u{200b}width\u{feff}", "zero\\u{200b}width\\u{feff}"),
            ("\u{85}next line", "\\x85next line"),
            // Ordinary non-ASCII text is kept as sent.
            ("café – 東京 ✓", "café – 東京 ✓"),
        ];
        for (raw, want) in cases {
            assert_eq!(escape(raw), want, "{raw:?}");
        }
        // Through the whole line too (request line, Referer, User-Agent).
        let r = build(
            IpAddr::from([127, 0, 0, 1]),
            "GET /\u{2028}x HTTP/1.1",
            Status::OK,
            Some("http://r/\u{202e}"),
            Some("ua\u{2069}"),
        );
        let line = format!("{}0{}", r.prefix, r.suffix);
        assert!(
            line.ends_with(
                "] \"GET /\\u{2028}x HTTP/1.1\" 200 0 \"http://r/\\u{202e}\" \"ua\\u{2069}\""
            ),
            "{line:?}"
        );
    }
}
