//! The PROXY protocol header (HAProxy's spec, versions 1 and 2) that a load
//! balancer sends before the client's bytes to say who the client is.
//! Pure and sans-IO: bytes in, a decision out; the reactor peeks at the
//! socket, asks [`parse`], and consumes exactly the header's length.
//!
//! - v1: one text line, `PROXY TCP4|TCP6|UNKNOWN ... \r\n`, at most
//!   [`V1_MAX`] bytes.
//! - v2: a 12-byte binary signature, version/command, family/transport, a
//!   big-endian length, the addresses, then TLVs (ignored). The LOCAL
//!   command (the balancer's own health checks) carries no client.
//!
//! Runs on: the reactor thread.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The longest v1 line, CRLF included (the spec's own bound: a TCP6 line
/// with the longest addresses and ports).
pub const V1_MAX: usize = 107;

/// The v2 signature: bytes no HTTP request or TLS record starts with.
pub const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";

/// Longest v2 header we accept (fixed part + addresses + TLVs). The spec
/// allows 64 KiB of TLVs; balancers send at most a few hundred bytes (the
/// TLS and cloud-id TLVs), and a bound keeps the peek buffer small.
pub const V2_MAX: usize = 16 + 1024;

/// The most bytes [`parse`] needs to see to decide.
pub const MAX_HEADER: usize = V2_MAX;

const V1_PREFIX: &[u8] = b"PROXY ";

/// What the header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parsed {
    /// A prefix of a valid header: wait for more bytes.
    Incomplete,
    /// A whole header of `len` bytes. `client` is `None` for v2 LOCAL and
    /// v1 UNKNOWN (the balancer speaking for itself: keep the socket's
    /// peer address).
    Header {
        len: usize,
        client: Option<SocketAddr>,
    },
}

/// Why a header is refused. Every case closes the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyError {
    /// The stream does not start with either signature.
    Missing,
    /// A v1 line with no CRLF within [`V1_MAX`] bytes.
    V1TooLong,
    /// A v1 line that is not `PROXY TCP4|TCP6 src dst sport dport`.
    V1Malformed,
    /// v2 with a version other than 2 or a command other than LOCAL/PROXY.
    V2BadVersion,
    /// v2 whose address block is shorter than its family needs.
    V2Truncated,
    /// v2 with a declared length over [`V2_MAX`].
    V2TooLong,
    /// v2 PROXY over something other than TCP (UDP, Unix sockets).
    V2Unsupported,
}

impl std::fmt::Display for ProxyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ProxyError::Missing => "no PROXY protocol header",
            ProxyError::V1TooLong => "PROXY v1 line longer than 107 bytes",
            ProxyError::V1Malformed => "malformed PROXY v1 line",
            ProxyError::V2BadVersion => "PROXY v2 header with an unknown version or command",
            ProxyError::V2Truncated => "PROXY v2 address block too short",
            ProxyError::V2TooLong => "PROXY v2 header too long",
            ProxyError::V2Unsupported => "PROXY v2 header for a non-TCP transport",
        })
    }
}

/// Parses the start of a connection's byte stream.
pub fn parse(buf: &[u8]) -> Result<Parsed, ProxyError> {
    if is_prefix_of(buf, &V2_SIGNATURE) {
        if buf.len() < V2_SIGNATURE.len() {
            return Ok(Parsed::Incomplete);
        }
        return parse_v2(buf);
    }
    if is_prefix_of(buf, V1_PREFIX) {
        if buf.len() < V1_PREFIX.len() {
            return Ok(Parsed::Incomplete);
        }
        return parse_v1(buf);
    }
    Err(ProxyError::Missing)
}

/// `buf` and `signature` agree on their common length.
fn is_prefix_of(buf: &[u8], signature: &[u8]) -> bool {
    let n = buf.len().min(signature.len());
    buf[..n] == signature[..n]
}

fn parse_v1(buf: &[u8]) -> Result<Parsed, ProxyError> {
    let window = &buf[..buf.len().min(V1_MAX)];
    let Some(end) = window.windows(2).position(|w| w == b"\r\n") else {
        return if buf.len() >= V1_MAX {
            Err(ProxyError::V1TooLong)
        } else if window.contains(&b'\n') {
            Err(ProxyError::V1Malformed)
        } else {
            Ok(Parsed::Incomplete)
        };
    };
    let len = end + 2;
    let line =
        std::str::from_utf8(&buf[V1_PREFIX.len()..end]).map_err(|_| ProxyError::V1Malformed)?;
    let fields: Vec<&str> = line.split(' ').collect();
    let client = match fields.as_slice() {
        // The spec lets UNKNOWN carry anything up to the CRLF.
        ["UNKNOWN", ..] => None,
        [family @ ("TCP4" | "TCP6"), src, dst, sport, dport] => {
            let (src, dst) = match *family {
                "TCP4" => (
                    IpAddr::V4(
                        src.parse::<Ipv4Addr>()
                            .map_err(|_| ProxyError::V1Malformed)?,
                    ),
                    IpAddr::V4(
                        dst.parse::<Ipv4Addr>()
                            .map_err(|_| ProxyError::V1Malformed)?,
                    ),
                ),
                _ => (
                    IpAddr::V6(
                        src.parse::<Ipv6Addr>()
                            .map_err(|_| ProxyError::V1Malformed)?,
                    ),
                    IpAddr::V6(
                        dst.parse::<Ipv6Addr>()
                            .map_err(|_| ProxyError::V1Malformed)?,
                    ),
                ),
            };
            let _ = dst;
            let sport = port(sport)?;
            port(dport)?;
            Some(SocketAddr::new(src, sport))
        }
        _ => return Err(ProxyError::V1Malformed),
    };
    Ok(Parsed::Header { len, client })
}

/// A decimal port, 0–65535, no sign, no leading zeros.
fn port(s: &str) -> Result<u16, ProxyError> {
    let canonical =
        !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) && (s == "0" || !s.starts_with('0'));
    if !canonical {
        return Err(ProxyError::V1Malformed);
    }
    s.parse().map_err(|_| ProxyError::V1Malformed)
}

fn parse_v2(buf: &[u8]) -> Result<Parsed, ProxyError> {
    /// Fixed part: signature, version/command, family, length.
    const FIXED: usize = 16;
    const LOCAL: u8 = 0x0;
    const PROXY: u8 = 0x1;
    const UNSPEC: u8 = 0x00;
    const TCP4: u8 = 0x11;
    const TCP6: u8 = 0x21;
    // Version and command can be judged before the length arrives.
    if let Some(&ver_cmd) = buf.get(12) {
        if ver_cmd >> 4 != 2 || !matches!(ver_cmd & 0xf, LOCAL | PROXY) {
            return Err(ProxyError::V2BadVersion);
        }
    }
    if buf.len() < FIXED {
        return Ok(Parsed::Incomplete);
    }
    let body_len = u16::from_be_bytes([buf[14], buf[15]]) as usize;
    let len = FIXED + body_len;
    if len > V2_MAX {
        return Err(ProxyError::V2TooLong);
    }
    let family = buf[13];
    // Check what the length promises before waiting for the bytes.
    let needed = match family {
        TCP4 => 12,
        TCP6 => 36,
        _ => 0,
    };
    if body_len < needed {
        return Err(ProxyError::V2Truncated);
    }
    if buf.len() < len {
        return Ok(Parsed::Incomplete);
    }
    if buf[12] & 0xf == LOCAL {
        return Ok(Parsed::Header { len, client: None });
    }
    let body = &buf[FIXED..len];
    let client = match family {
        TCP4 => {
            let ip: [u8; 4] = body[0..4].try_into().unwrap_or_default();
            let port = u16::from_be_bytes([body[8], body[9]]);
            Some(SocketAddr::new(IpAddr::V4(Ipv4Addr::from(ip)), port))
        }
        TCP6 => {
            let ip: [u8; 16] = body[0..16].try_into().unwrap_or_default();
            let port = u16::from_be_bytes([body[32], body[33]]);
            Some(SocketAddr::new(IpAddr::V6(Ipv6Addr::from(ip)), port))
        }
        UNSPEC => None,
        _ => return Err(ProxyError::V2Unsupported),
    };
    Ok(Parsed::Header { len, client })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v2(cmd: u8, family: u8, body: &[u8]) -> Vec<u8> {
        let mut h = V2_SIGNATURE.to_vec();
        h.push(0x20 | cmd);
        h.push(family);
        h.extend_from_slice(&(body.len() as u16).to_be_bytes());
        h.extend_from_slice(body);
        h
    }

    fn tcp4_body() -> Vec<u8> {
        let mut b = vec![192, 0, 2, 7, 10, 0, 0, 1];
        b.extend_from_slice(&51234u16.to_be_bytes());
        b.extend_from_slice(&443u16.to_be_bytes());
        b
    }

    fn header(len: usize, client: &str) -> Result<Parsed, ProxyError> {
        Ok(Parsed::Header {
            len,
            client: Some(client.parse().unwrap()),
        })
    }

    #[test]
    fn v1_table() {
        let cases: &[(&[u8], Result<Parsed, ProxyError>)] = &[
            (
                b"PROXY TCP4 192.0.2.7 10.0.0.1 51234 80\r\nGET / HTTP/1.1\r\n",
                header(40, "192.0.2.7:51234"),
            ),
            (
                b"PROXY TCP6 2001:db8::1 ::1 4000 443\r\n",
                header(37, "[2001:db8::1]:4000"),
            ),
            (
                b"PROXY UNKNOWN\r\n",
                Ok(Parsed::Header {
                    len: 15,
                    client: None,
                }),
            ),
            (
                b"PROXY UNKNOWN ffff::1 ::1 1 2\r\n",
                Ok(Parsed::Header {
                    len: 31,
                    client: None,
                }),
            ),
            (b"", Ok(Parsed::Incomplete)),
            (b"PRO", Ok(Parsed::Incomplete)),
            (b"PROXY TCP4 192.0.2.7 10.0", Ok(Parsed::Incomplete)),
            (
                b"PROXY TCP4 192.0.2.7 10.0.0.1 1 2\r",
                Ok(Parsed::Incomplete),
            ),
            (b"GET / HTTP/1.1\r\n\r\n", Err(ProxyError::Missing)),
            (b"\x16\x03\x01\x02\x00", Err(ProxyError::Missing)),
            (
                b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n",
                Err(ProxyError::V1Malformed),
            ),
            (b"PROXY TCP4 ::1 ::1 1 2\r\n", Err(ProxyError::V1Malformed)),
            (
                b"PROXY TCP6 1.2.3.4 5.6.7.8 1 2\r\n",
                Err(ProxyError::V1Malformed),
            ),
            (
                b"PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n",
                Err(ProxyError::V1Malformed),
            ),
            (
                b"PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n",
                Err(ProxyError::V1Malformed),
            ),
            (
                b"PROXY TCP4 1.2.3.4 5.6.7.8 +1 2\r\n",
                Err(ProxyError::V1Malformed),
            ),
            (
                b"PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n",
                Err(ProxyError::V1Malformed),
            ),
            (
                b"PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n",
                Err(ProxyError::V1Malformed),
            ),
            (
                b"PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n",
                Err(ProxyError::V1Malformed),
            ),
            (
                b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n",
                Err(ProxyError::V1Malformed),
            ),
            (
                b"PROXY TCP4 1.2.3.\xff 5.6.7.8 1 2\r\n",
                Err(ProxyError::V1Malformed),
            ),
        ];
        for (input, want) in cases {
            assert_eq!(parse(input), *want, "{:?}", String::from_utf8_lossy(input));
        }
    }

    #[test]
    fn v1_longer_than_107_bytes_is_refused() {
        let mut line = b"PROXY UNKNOWN ".to_vec();
        line.resize(V1_MAX, b'x');
        assert_eq!(parse(&line), Err(ProxyError::V1TooLong));
        // 107 bytes with the CRLF at the end is the longest allowed.
        line.truncate(V1_MAX - 2);
        line.extend_from_slice(b"\r\n");
        assert_eq!(
            parse(&line),
            Ok(Parsed::Header {
                len: V1_MAX,
                client: None
            })
        );
    }

    #[test]
    fn v2_table() {
        let mut tcp6 = Vec::new();
        tcp6.extend_from_slice(&"2001:db8::7".parse::<Ipv6Addr>().unwrap().octets());
        tcp6.extend_from_slice(&Ipv6Addr::LOCALHOST.octets());
        tcp6.extend_from_slice(&4000u16.to_be_bytes());
        tcp6.extend_from_slice(&443u16.to_be_bytes());
        let mut with_tlv = tcp4_body();
        with_tlv.extend_from_slice(&[0x04, 0x00, 0x03, b'a', b'b', b'c']); // PP2_TYPE_NOOP
        let mut over = v2(1, 0x11, &tcp4_body());
        over[14..16].copy_from_slice(&((V2_MAX - 16 + 1) as u16).to_be_bytes());
        let mut bad_version = v2(1, 0x11, &tcp4_body());
        bad_version[12] = 0x11;
        let mut bad_command = v2(1, 0x11, &tcp4_body());
        bad_command[12] = 0x22;
        let cases: Vec<(Vec<u8>, Result<Parsed, ProxyError>)> = vec![
            (v2(1, 0x11, &tcp4_body()), header(28, "192.0.2.7:51234")),
            (v2(1, 0x21, &tcp6), header(52, "[2001:db8::7]:4000")),
            (v2(1, 0x11, &with_tlv), header(34, "192.0.2.7:51234")),
            (
                v2(0, 0x00, &[]),
                Ok(Parsed::Header {
                    len: 16,
                    client: None,
                }),
            ),
            // LOCAL may still carry addresses: they are ignored.
            (
                v2(0, 0x11, &tcp4_body()),
                Ok(Parsed::Header {
                    len: 28,
                    client: None,
                }),
            ),
            (
                v2(1, 0x00, &[]),
                Ok(Parsed::Header {
                    len: 16,
                    client: None,
                }),
            ),
            (V2_SIGNATURE[..5].to_vec(), Ok(Parsed::Incomplete)),
            (
                v2(1, 0x11, &tcp4_body())[..20].to_vec(),
                Ok(Parsed::Incomplete),
            ),
            (v2(1, 0x11, &tcp4_body()[..8]), Err(ProxyError::V2Truncated)),
            (v2(1, 0x21, &tcp4_body()), Err(ProxyError::V2Truncated)),
            (v2(1, 0x12, &tcp4_body()), Err(ProxyError::V2Unsupported)),
            (v2(1, 0x31, &[0; 216]), Err(ProxyError::V2Unsupported)),
            (over, Err(ProxyError::V2TooLong)),
            (bad_version[..13].to_vec(), Err(ProxyError::V2BadVersion)),
            (bad_command, Err(ProxyError::V2BadVersion)),
            (b"\r\n\r\n\0\r\nQUIX\n".to_vec(), Err(ProxyError::Missing)),
        ];
        for (input, want) in cases {
            assert_eq!(parse(&input), want, "{input:02x?}");
        }
    }

    #[test]
    fn every_prefix_of_a_valid_header_is_incomplete() {
        let headers = [
            v2(1, 0x11, &tcp4_body()),
            b"PROXY TCP4 192.0.2.7 10.0.0.1 51234 80\r\n".to_vec(),
        ];
        for h in headers {
            for cut in 0..h.len() {
                assert_eq!(parse(&h[..cut]), Ok(Parsed::Incomplete), "cut {cut}");
            }
        }
    }
}
