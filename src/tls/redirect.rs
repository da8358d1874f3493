//! `--redirect-http`: every request on such a listener is answered with a
//! 308 to the same path and query over HTTPS (308, unlike 301, keeps the
//! method and body of a non-GET request).
//!
//! Runs on: a pool worker, like any other answer.

use std::net::IpAddr;

use crate::access_log;
use crate::http::errors::error_response;
use crate::http::request::RequestHead;
use crate::http::response::{ReplyTo, Status};

/// The redirect for `head`, to the HTTPS listener on `https_port`. A
/// missing or odd Host gets a 400: it would end up in the Location header.
pub fn to_https(
    head: &RequestHead,
    https_port: u16,
    peer: IpAddr,
) -> crate::http::response::Response {
    let reply = ReplyTo::request(head);
    let mut response = match location(head, https_port) {
        Some(location) => error_response(
            Status::PERMANENT_REDIRECT,
            reply,
            &[("Location", &location)],
        ),
        None => error_response(Status::BAD_REQUEST, reply, &[]),
    };
    response.log = access_log::for_request(peer, head, response.status);
    response
}

/// `https://host[:port]/path[?query]`, or `None` if the Host is unusable.
fn location(head: &RequestHead, https_port: u16) -> Option<String> {
    let host = host_without_port(head.host()?)?;
    if head.path() == "*" {
        return None;
    }
    let port = if https_port == 443 {
        String::new()
    } else {
        format!(":{https_port}")
    };
    let query = head.query().map(|q| format!("?{q}")).unwrap_or_default();
    Some(format!("https://{host}{port}{}{query}", head.path()))
}

/// The host part of a Host field: a DNS name, an IPv4 address or a
/// bracketed IPv6 literal; `None` for anything else.
fn host_without_port(field: &str) -> Option<&str> {
    let host = if field.starts_with('[') {
        &field[..=field.find(']')?]
    } else {
        field.split(':').next()?
    };
    let rest = &field[host.len()..];
    let port_ok = rest.is_empty()
        || rest
            .strip_prefix(':')
            .is_some_and(|p| p.bytes().all(|b| b.is_ascii_digit()));
    let chars_ok = host
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-.[]:".contains(&b));
    (port_ok && chars_ok && !host.is_empty() && host.len() <= 255).then_some(host)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts() {
        for (field, want) in [
            ("example.com", Some("example.com")),
            ("example.com:8080", Some("example.com")),
            ("127.0.0.1:80", Some("127.0.0.1")),
            ("[::1]:8080", Some("[::1]")),
            ("[::1]", Some("[::1]")),
            ("", None),
            ("a b", None),
            ("evil.com/x", None),
            ("host:80x", None),
            ("[::1", None),
            ("user@host", None),
        ] {
            assert_eq!(host_without_port(field), want, "{field:?}");
        }
    }
}
