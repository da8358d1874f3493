//! The access log: one line per request in the Combined Log Format, logged
//! under the target `access` at info level, so `RUST_LOG=access=off` (or
//! `RUST_LOG=warn`) silences it.
//!
//! The line is formatted on the worker that built the response; the reactor
//! only appends the number of body bytes it actually sent, once the write is
//! over (or has failed).
//!
//! Runs on: workers ([`record`]) and the reactor ([`write`]).

use std::fmt::Write as _;
use std::net::IpAddr;
use std::time::SystemTime;

use crate::http::date::clf_time;
use crate::http::response::Status;

/// The log target; `RUST_LOG` filters on it.
pub const TARGET: &str = "access";

/// An access-log line waiting for its byte count.
#[derive(Debug)]
pub struct AccessRecord {
    /// `host - - [time] "request line" status `
    prefix: String,
    /// ` "referer" "user-agent"`
    suffix: String,
}

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
    Some(Box::new(AccessRecord { prefix, suffix }))
}

/// Logs the line with the number of bytes sent (head included, as nginx's
/// `$bytes_sent`).
pub fn write(record: Option<Box<AccessRecord>>, bytes_sent: u64) {
    if let Some(r) = record {
        log::info!(target: TARGET, "{}{}{}", r.prefix, bytes_sent, r.suffix);
    }
}

/// Quotes and control bytes from the client must not forge log lines.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => {
                let _ = write!(out, "\\x{:02x}", c as u32);
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
}
