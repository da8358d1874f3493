//! Finding the end of a `Transfer-Encoding: chunked` request body (RFC 9112
//! §7.1), incrementally, without keeping it: stoke never uses request
//! content, but must consume exactly the bytes the client framed as body so
//! that the next request starts where the client says it does.
//!
//! Sans-IO: [`ChunkedDecoder::feed`] takes the bytes as they arrive, split
//! anywhere, and says how many of them belong to the body. It is strict on
//! purpose, because every leniency is a place where a proxy in front of us
//! and stoke could disagree on where the body ends (request smuggling):
//! every line ends in CRLF (a bare LF or CR is an error), a chunk size is
//! bare hex digits (no sign, prefix or whitespace before the optional
//! extensions), extension and trailer bytes must be visible characters or
//! whitespace, trailer lines must be `name:value` without obs-fold, and
//! everything that is not content is bounded by [`MAX_FRAMING`].
//!
//! Runs on: the reactor thread, for each chunked request.

use crate::limits::MAX_FRAMING;

/// Why a chunked body was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChunkedError {
    /// Not valid chunked framing (400).
    Malformed,
    /// More content than the decoder's limit, a chunk size that does not
    /// fit in 64 bits, or more framing than [`MAX_FRAMING`] (413).
    TooLarge,
}

/// How far a [`ChunkedDecoder::feed`] got.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decoded {
    /// All of the input was body; more is to come.
    NeedMore,
    /// The body ended after this many bytes of the input; the rest is
    /// whatever the client sent next.
    Done(usize),
}

/// Where in the chunked grammar the next byte falls.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// A chunk-size line starts: a hex digit must come.
    SizeStart,
    /// In the hex digits of a chunk size.
    Size,
    /// Whitespace after the size (BWS): only `;` may follow.
    SizeSpace,
    /// In chunk extensions, up to the CR.
    Extension,
    /// The CR of a chunk-size line was seen; LF must follow.
    SizeLf,
    /// In chunk data (`remaining` bytes left).
    Data,
    /// After chunk data: CR, then LF, must follow.
    DataCr,
    DataLf,
    /// A trailer line (or the final empty line) starts.
    TrailerStart,
    /// In a trailer field name.
    TrailerName,
    /// In a trailer field value, up to the CR.
    TrailerValue,
    /// The CR of a trailer line was seen; LF must follow.
    TrailerLf,
    /// The CR of the final empty line was seen; LF must follow.
    EndLf,
    Done,
}

/// The decoder for one body. It holds no heap memory: a connection keeps
/// it inline.
#[derive(Clone, Debug)]
pub struct ChunkedDecoder {
    state: State,
    /// The chunk size being parsed, then the data bytes left in the chunk.
    remaining: u64,
    /// Content bytes announced so far (every chunk size added up).
    content: u64,
    /// Bytes of framing consumed so far.
    framing: u64,
    max_content: u64,
}

impl ChunkedDecoder {
    /// A decoder that refuses bodies with more than `max_content` bytes of
    /// content (as soon as a chunk size announces them).
    pub fn new(max_content: u64) -> ChunkedDecoder {
        ChunkedDecoder {
            state: State::SizeStart,
            remaining: 0,
            content: 0,
            framing: 0,
            max_content,
        }
    }

    /// Consumes the next bytes of the body. After `Done` the decoder stays
    /// done (and consumes nothing); after an error it must not be fed again.
    pub fn feed(&mut self, input: &[u8]) -> Result<Decoded, ChunkedError> {
        let mut i = 0;
        while i < input.len() {
            if self.state == State::Done {
                return Ok(Decoded::Done(i));
            }
            if self.state == State::Data {
                // The bulk of a body: skip it without looking at each byte.
                let take = self.remaining.min((input.len() - i) as u64);
                i += take as usize;
                self.remaining -= take;
                if self.remaining == 0 {
                    self.state = State::DataCr;
                }
                continue;
            }
            self.framing += 1;
            if self.framing > MAX_FRAMING {
                return Err(ChunkedError::TooLarge);
            }
            self.state = self.step(input[i])?;
            i += 1;
        }
        Ok(match self.state {
            State::Done => Decoded::Done(i),
            _ => Decoded::NeedMore,
        })
    }

    /// One framing byte.
    fn step(&mut self, b: u8) -> Result<State, ChunkedError> {
        use ChunkedError::Malformed;
        Ok(match (self.state, b) {
            (State::SizeStart | State::Size, _) if b.is_ascii_hexdigit() => {
                let digit = u64::from((b as char).to_digit(16).unwrap_or(0));
                // Overflow guard: a size past 64 bits is too large, however
                // many leading zeros came first.
                self.remaining = self
                    .remaining
                    .checked_mul(16)
                    .and_then(|n| n.checked_add(digit))
                    .ok_or(ChunkedError::TooLarge)?;
                if self.content.saturating_add(self.remaining) > self.max_content {
                    return Err(ChunkedError::TooLarge);
                }
                State::Size
            }
            (State::SizeStart, _) => return Err(Malformed),
            (State::Size, b'\r') => State::SizeLf,
            (State::Size | State::SizeSpace, b';') => State::Extension,
            (State::Size | State::SizeSpace, b' ' | b'\t') => State::SizeSpace,
            (State::Size | State::SizeSpace, _) => return Err(Malformed),
            (State::Extension, b'\r') => State::SizeLf,
            (State::Extension, _) if is_text(b) => State::Extension,
            (State::Extension, _) => return Err(Malformed),
            (State::SizeLf, b'\n') => {
                self.content += self.remaining;
                if self.remaining == 0 {
                    State::TrailerStart
                } else {
                    State::Data
                }
            }
            (State::SizeLf, _) => return Err(Malformed),
            (State::DataCr, b'\r') => State::DataLf,
            (State::DataLf, b'\n') => {
                self.remaining = 0;
                State::SizeStart
            }
            (State::DataCr | State::DataLf, _) => return Err(Malformed),
            (State::TrailerStart, b'\r') => State::EndLf,
            (State::TrailerStart | State::TrailerName, _) if is_tchar(b) => State::TrailerName,
            (State::TrailerName, b':') => State::TrailerValue,
            // Includes obs-fold (a line starting with whitespace) and an
            // empty field name.
            (State::TrailerStart | State::TrailerName, _) => return Err(Malformed),
            (State::TrailerValue, b'\r') => State::TrailerLf,
            (State::TrailerValue, _) if is_text(b) => State::TrailerValue,
            (State::TrailerValue, _) => return Err(Malformed),
            (State::TrailerLf, b'\n') => State::TrailerStart,
            (State::TrailerLf, _) => return Err(Malformed),
            (State::EndLf, b'\n') => State::Done,
            (State::EndLf, _) => return Err(Malformed),
            // `feed` handles these two itself.
            (State::Data | State::Done, _) => self.state,
        })
    }
}

/// What may appear in an extension or a field value: visible ASCII,
/// obs-text, space and tab; never a control byte (bare CR and LF included).
fn is_text(b: u8) -> bool {
    b == b'\t' || (b' '..=b'~').contains(&b) || b >= 0x80
}

/// A `tchar` of a field name (RFC 9110 §5.6.2).
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMIT: u64 = 1024;

    /// Feeds `input` whole, then split at every point and byte by byte: the
    /// verdict must not depend on how the bytes arrived.
    fn decode(input: &[u8]) -> Result<Decoded, ChunkedError> {
        let whole = ChunkedDecoder::new(LIMIT).feed(input);
        for split in 0..=input.len() {
            let mut d = ChunkedDecoder::new(LIMIT);
            let got = d.feed(&input[..split]).and_then(|first| match first {
                Decoded::Done(n) => Ok(Decoded::Done(n)),
                Decoded::NeedMore => d.feed(&input[split..]).map(|second| match second {
                    Decoded::Done(n) => Decoded::Done(split + n),
                    Decoded::NeedMore => Decoded::NeedMore,
                }),
            });
            assert_eq!(got, whole, "split at {split} of {:?}", ascii(input));
        }
        let mut d = ChunkedDecoder::new(LIMIT);
        let mut bytewise = Ok(Decoded::NeedMore);
        for (i, b) in input.iter().enumerate() {
            bytewise = d.feed(std::slice::from_ref(b));
            match bytewise {
                Ok(Decoded::Done(1)) => {
                    bytewise = Ok(Decoded::Done(i + 1));
                    break;
                }
                Ok(Decoded::NeedMore) => {}
                _ => break,
            }
        }
        if !input.is_empty() {
            assert_eq!(bytewise, whole, "byte by byte: {:?}", ascii(input));
        }
        whole
    }

    fn ascii(b: &[u8]) -> String {
        String::from_utf8_lossy(b).into_owned()
    }

    #[test]
    fn valid_bodies_end_where_the_framing_says() {
        let table: &[&[u8]] = &[
            b"0\r\n\r\n",
            b"5\r\nhello\r\n0\r\n\r\n",
            b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
            b"A\r\n0123456789\r\n0\r\n\r\n",
            b"a\r\n0123456789\r\n0\r\n\r\n",
            b"0005\r\nhello\r\n000\r\n\r\n",
            b"5;name=value\r\nhello\r\n0;last\r\n\r\n",
            b"5 ;name=\"quoted; \\\" value\"\r\nhello\r\n0\r\n\r\n",
            b"5\t; a ; b=c\r\nhello\r\n0\r\n\r\n",
            b"5\r\nhe\r\nl\r\n0\r\n\r\n",
            b"0\r\nX-Checksum: abc\r\nX-Empty:\r\n\r\n",
            b"3\r\n\xff\x00\n\r\n0\r\n\r\n",
        ];
        for &body in table {
            let mut input = body.to_vec();
            input.extend_from_slice(b"GET /next HTTP/1.1\r\n");
            assert_eq!(
                decode(&input),
                Ok(Decoded::Done(body.len())),
                "{:?}",
                ascii(body)
            );
        }
    }

    #[test]
    fn incomplete_bodies_ask_for_more() {
        let body = b"5;x\r\nhello\r\n0\r\nT: v\r\n\r\n";
        for end in 0..body.len() {
            assert_eq!(decode(&body[..end]), Ok(Decoded::NeedMore), "prefix {end}");
        }
    }

    #[test]
    fn malformed_framing_is_refused() {
        let table: &[(&str, &[u8])] = &[
            ("empty size", b"\r\n"),
            ("size with 0x", b"0x5\r\nhello\r\n0\r\n\r\n"),
            ("size with sign", b"+5\r\nhello\r\n0\r\n\r\n"),
            ("negative size", b"-1\r\n"),
            ("space before size", b" 5\r\nhello\r\n0\r\n\r\n"),
            (
                "space after size, no extension",
                b"5 \r\nhello\r\n0\r\n\r\n",
            ),
            ("not hex", b"g\r\n"),
            ("bare LF after size", b"5\nhello\r\n0\r\n\r\n"),
            ("bare CR after size", b"5\rhello\r\n0\r\n\r\n"),
            ("bare LF after data", b"5\r\nhello\n0\r\n\r\n"),
            ("data longer than its size", b"5\r\nhelloX\r\n0\r\n\r\n"),
            ("no CRLF after data", b"5\r\nhello0\r\n\r\n"),
            ("bare LF in extension", b"5;a\nb\r\nhello\r\n0\r\n\r\n"),
            ("NUL in extension", b"5;a\0\r\nhello\r\n0\r\n\r\n"),
            ("bare LF ends the body", b"0\r\n\n"),
            ("bare LF ends a trailer", b"0\r\nT: v\n\r\n"),
            ("trailer obs-fold", b"0\r\nT: v\r\n folded\r\n\r\n"),
            ("trailer without colon", b"0\r\nTrailer\r\n\r\n"),
            ("trailer space before colon", b"0\r\nT : v\r\n\r\n"),
            ("trailer empty name", b"0\r\n: v\r\n\r\n"),
            ("trailer control byte", b"0\r\nT: a\x01b\r\n\r\n"),
            (
                "a request where a chunk size should be",
                b"GET / HTTP/1.1\r\n",
            ),
        ];
        for &(name, input) in table {
            assert_eq!(decode(input), Err(ChunkedError::Malformed), "{name}");
        }
    }

    #[test]
    fn limits_are_enforced_early() {
        // Content: refused when the size line announces it, before any data.
        assert_eq!(decode(b"401\r\n"), Err(ChunkedError::TooLarge));
        assert_eq!(
            decode(b"200\r\n").map(|_| ()),
            Ok(()),
            "512 bytes is within the 1024 limit"
        );
        let mut two = b"200\r\n".to_vec();
        two.extend_from_slice(&[b'x'; 0x200]);
        two.extend_from_slice(b"\r\n201\r\n");
        assert_eq!(decode(&two), Err(ChunkedError::TooLarge));
        // Exactly the limit is fine.
        let mut exact = b"400\r\n".to_vec();
        exact.extend_from_slice(&[b'x'; 0x400]);
        exact.extend_from_slice(b"\r\n0\r\n\r\n");
        assert_eq!(decode(&exact), Ok(Decoded::Done(exact.len())));
        // A size past 64 bits (the overflow guard), with or without zeros.
        assert_eq!(
            ChunkedDecoder::new(u64::MAX).feed(b"1ffffffffffffffff\r\n"),
            Err(ChunkedError::TooLarge)
        );
        assert_eq!(
            ChunkedDecoder::new(u64::MAX).feed(b"000000ffffffffffffffff\r\n"),
            Ok(Decoded::NeedMore)
        );
        // Framing: endless zeros, extensions or trailers.
        for filler in [b"0".repeat(70_000), {
            let mut v = b"1;".to_vec();
            v.extend(std::iter::repeat_n(b'e', 70_000));
            v
        }] {
            assert_eq!(
                ChunkedDecoder::new(LIMIT).feed(&filler),
                Err(ChunkedError::TooLarge)
            );
        }
        let mut trailers = b"0\r\n".to_vec();
        for i in 0..10_000 {
            trailers.extend_from_slice(format!("T{i}: v\r\n").as_bytes());
        }
        assert_eq!(
            ChunkedDecoder::new(LIMIT).feed(&trailers),
            Err(ChunkedError::TooLarge)
        );
        // Many tiny chunks: their framing adds up too.
        let tiny = b"1\r\nx\r\n".repeat(20_000);
        assert_eq!(
            ChunkedDecoder::new(u64::MAX).feed(&tiny),
            Err(ChunkedError::TooLarge)
        );
    }

    #[test]
    fn done_stays_done() {
        let mut d = ChunkedDecoder::new(LIMIT);
        assert_eq!(d.feed(b"0\r\n\r\nrest"), Ok(Decoded::Done(5)));
        assert_eq!(d.feed(b"more"), Ok(Decoded::Done(0)));
    }
}
