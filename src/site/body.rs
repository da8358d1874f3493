//! Where a response body's bytes come from ([`Source`]: an open file, or a
//! small file's bytes in memory) and how they are laid out as chunks: one
//! stretch of a file ([`single_body`]; small ones read into the head's
//! buffer, bytes already in memory shared, so head and body leave in one
//! `writev`) or several ranges as `multipart/byteranges` ([`multipart`]).
//!
//! Runs on: worker threads.

use std::fs::{File, Metadata};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

use super::file::Variant;
use super::{compress, error, Site};
use crate::http::encoding::Coding;
use crate::http::range::{self, ByteRange};
use crate::http::request::RequestHead;
use crate::http::response::{Body, Chunk, HeadBuilder, Persistence, Response, Status};
use crate::limits::SMALL_FILE;
use crate::sys::{self, FileStamp};

/// Where the bytes of a response body come from.
pub(super) enum Source {
    /// An open file: read by the worker if small, else sent with `sendfile`.
    File(File),
    /// A small file's contents, from the cache or just read.
    Memory {
        data: Arc<[u8]>,
        /// From the cache: no sidecar exists while the directory has this stamp.
        no_sidecars_in: Option<FileStamp>,
        prepare: Prepare,
    },
}

/// Whether the answer made from a [`Source::Memory`] is to be kept in the
/// cache as the file's prepared answer (`site::prepared`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Prepare {
    /// The bytes are the cache's, and no answer is prepared for this
    /// version yet.
    Wanted,
    /// Prepared already, or not the cache's bytes (a compressed variant).
    NotWanted,
}

impl Source {
    /// The bytes to compress on the fly.
    pub(super) fn input(&self) -> compress::Input<'_> {
        match self {
            Source::File(file) => compress::Input::File(file),
            Source::Memory { data, .. } => compress::Input::Bytes(data),
        }
    }

    pub(super) fn cached(
        data: Arc<[u8]>,
        no_sidecars_in: Option<FileStamp>,
        prepare: Prepare,
    ) -> Source {
        Source::Memory {
            data,
            no_sidecars_in,
            prepare,
        }
    }

    /// Small files are read into memory now: the read is needed anyway (they
    /// leave with the head in one `writev`), and the cache keeps them.
    pub(super) fn load_small(self, site: &Site, relative: &Path, meta: &Metadata) -> Source {
        let Source::File(file) = self else {
            return self;
        };
        if meta.len() > SMALL_FILE {
            return Source::File(file);
        }
        let mut data = vec![0; meta.len() as usize];
        // Positioned: the file's cursor is never used, so no earlier read
        // (or failed one) can shift what we send.
        match file.read_exact_at(&mut data, 0) {
            Ok(()) => {
                let data: Arc<[u8]> = data.into();
                // Cached only if a hit can reach it: hits re-resolve with no
                // symlink at all (`sys::stat_beneath`), so a file reached
                // through a link, or swapped since it was opened, stays out.
                let stamp = sys::stat_beneath(&site.root, relative);
                let prepare = if stamp.is_ok_and(|now| now == FileStamp::of(meta)) {
                    site.cache.insert(relative, Arc::clone(&data), meta);
                    Prepare::Wanted
                } else {
                    Prepare::NotWanted
                };
                Source::cached(data, None, prepare)
            }
            // Shrunk since fstat: leave it to the body writer to fail cleanly.
            Err(_) => Source::File(file),
        }
    }
}

/// A body that is one stretch of one file. `vary` goes on the error answer
/// if the file cannot be read, as on every answer about it.
#[allow(clippy::too_many_arguments)]
pub(super) fn single_body(
    status: Status,
    head: HeadBuilder,
    req: &RequestHead,
    source: Source,
    offset: u64,
    len: u64,
    body: Body,
    vary: &[(&str, &str)],
) -> Response {
    let head_only = body == Body::HeadOnly;
    let mut bytes = head.finish(Persistence::for_request(req));
    let mut chunks = Vec::with_capacity(2);
    let file = match source {
        Source::Memory { data, .. } => {
            let whole = offset == 0 && len == data.len() as u64;
            if head_only {
                chunks.push(Chunk::Bytes(bytes));
            } else if whole && len > 0 {
                // Bytes from a cache (the file's, or a compressed
                // variant's) are shared, not copied: the `writev` takes
                // head and body as two slices all the same.
                chunks.push(Chunk::Bytes(bytes));
                chunks.push(Chunk::Shared(data));
            } else {
                bytes.extend_from_slice(&data[offset as usize..(offset + len) as usize]);
                chunks.push(Chunk::Bytes(bytes));
            }
            return Response {
                status,
                chunks,
                close: Persistence::for_request(req).closes(),
                log: None,
            };
        }
        Source::File(file) => file,
    };
    if head_only || len == 0 {
        chunks.push(Chunk::Bytes(bytes));
    } else if len <= SMALL_FILE {
        let start = bytes.len();
        bytes.resize(start + len as usize, 0);
        let read = file.read_exact_at(&mut bytes[start..], offset);
        if let Err(e) = read {
            // The file shrank between fstat and read: we can't send what the
            // head promised.
            log::warn!("file changed while being read: {e}");
            return error(req, Status::INTERNAL_SERVER_ERROR, vary);
        }
        chunks.push(Chunk::Bytes(bytes));
    } else {
        chunks.push(Chunk::Bytes(bytes));
        chunks.push(Chunk::File {
            file: Arc::new(file),
            offset,
            len,
        });
    }
    Response {
        status,
        chunks,
        close: Persistence::for_request(req).closes(),
        log: None,
    }
}

/// `206 multipart/byteranges` (RFC 9110 §14.6): each range as a part with its
/// own `Content-Type` and `Content-Range`, the file bytes sent with sendfile.
#[allow(clippy::too_many_arguments)]
pub(super) fn multipart(
    req: &RequestHead,
    variant: Variant,
    ty: &str,
    etag: &str,
    parts: &[ByteRange],
    len: u64,
    body_wanted: Body,
    common: impl Fn(&mut HeadBuilder),
) -> Response {
    // The boundary must not occur in the parts; deriving it from the ETag
    // (hex and dashes) and never from file data makes it unique enough.
    let boundary = format!(
        "stoke-{}",
        etag.trim_matches('"')
            .replace(|c: char| !c.is_ascii_alphanumeric(), "")
    );
    let encoding = match variant.coding {
        Coding::Identity => String::new(),
        c => format!("Content-Encoding: {}\r\n", c.token()),
    };
    // Every part points into the same file (or the same bytes).
    let file = match variant.source {
        Source::File(file) => Ok(Arc::new(file)),
        Source::Memory { data, .. } => Err(data),
    };
    let mut body: Vec<Chunk> = Vec::with_capacity(parts.len() * 2 + 1);
    for (i, part) in parts.iter().enumerate() {
        let lead = if i == 0 { "" } else { "\r\n" };
        let part_head = format!(
            "{lead}--{boundary}\r\nContent-Type: {ty}\r\n{encoding}Content-Range: {}\r\n\r\n",
            range::content_range(*part, len)
        );
        body.push(Chunk::Bytes(part_head.into_bytes()));
        body.push(match &file {
            Ok(file) => Chunk::File {
                file: Arc::clone(file),
                offset: part.start,
                len: part.len(),
            },
            Err(data) => Chunk::Bytes(data[part.start as usize..part.end as usize].to_vec()),
        });
    }
    body.push(Chunk::Bytes(format!("\r\n--{boundary}--\r\n").into_bytes()));
    let body_len: u64 = body.iter().map(Chunk::len).sum();

    let mut head = HeadBuilder::new(Status::PARTIAL_CONTENT);
    head.header(
        "Content-Type",
        &format!("multipart/byteranges; boundary={boundary}"),
    );
    common(&mut head);
    head.content_length(body_len);
    let mut chunks = vec![Chunk::Bytes(head.finish(Persistence::for_request(req)))];
    if body_wanted == Body::Full {
        chunks.extend(body);
    }
    Response {
        status: Status::PARTIAL_CONTENT,
        chunks,
        close: Persistence::for_request(req).closes(),
        log: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::request::{self, Parsed};

    fn get(method: &str) -> Box<RequestHead> {
        let raw = format!("{method} /f HTTP/1.1\r\nHost: h\r\n\r\n");
        match request::parse(raw.as_bytes(), 8192) {
            Ok(Parsed::Complete { head, .. }) => head,
            other => panic!("{other:?}"),
        }
    }

    fn in_memory(data: &[u8]) -> Variant {
        Variant {
            source: Source::cached(data.into(), None, Prepare::NotWanted),
            meta: std::fs::metadata(env!("CARGO_MANIFEST_DIR")).unwrap(),
            coding: Coding::Identity,
            etag_suffix: "",
        }
    }

    fn text(chunks: &[Chunk]) -> String {
        let bytes: Vec<u8> = chunks
            .iter()
            .flat_map(|c| c.memory().unwrap().to_vec())
            .collect();
        String::from_utf8(bytes).unwrap()
    }

    /// The exact layout of a `multipart/byteranges` body (RFC 9110 §14.6):
    /// the boundary comes from the ETag's letters and digits, each part has
    /// its own type and range, and `Content-Length` counts it all.
    #[test]
    fn multipart_body_layout() {
        let parts = [
            ByteRange { start: 0, end: 4 },
            ByteRange { start: 10, end: 12 },
        ];
        let variant = in_memory(b"0123456789abcdef");
        let r = multipart(
            &get("GET"),
            variant,
            "text/plain",
            "\"1a-2b\"",
            &parts,
            16,
            Body::Full,
            |_| {},
        );
        assert_eq!(r.status, Status::PARTIAL_CONTENT);
        let all = text(&r.chunks);
        let (head, body) = all.split_once("\r\n\r\n").unwrap();
        assert!(
            head.contains("\r\nContent-Type: multipart/byteranges; boundary=stoke-1a2b\r\n"),
            "{head}"
        );
        assert!(
            format!("{head}\r\n").contains(&format!("\r\nContent-Length: {}\r\n", body.len())),
            "{head}"
        );
        assert_eq!(
            body,
            "--stoke-1a2b\r\nContent-Type: text/plain\r\nContent-Range: bytes 0-3/16\r\n\r\n0123\
             \r\n--stoke-1a2b\r\nContent-Type: text/plain\r\nContent-Range: bytes 10-11/16\r\n\r\nab\
             \r\n--stoke-1a2b--\r\n"
        );
    }

    /// HEAD gets the same head, with the length of the body it does not get.
    #[test]
    fn multipart_answer_to_head_is_the_head_alone() {
        let parts = [
            ByteRange { start: 0, end: 1 },
            ByteRange { start: 2, end: 3 },
        ];
        let full = |method, body| {
            let r = multipart(
                &get(method),
                in_memory(b"abcd"),
                "text/plain",
                "\"e\"",
                &parts,
                4,
                body,
                |_| {},
            );
            text(&r.chunks)
        };
        let get_answer = full("GET", Body::Full);
        let head_answer = full("HEAD", Body::HeadOnly);
        let (head, _) = get_answer.split_once("\r\n\r\n").unwrap();
        // Date may tick between the two; compare the rest.
        let strip = |s: &str| {
            s.lines()
                .filter(|l| !l.starts_with("Date: "))
                .collect::<Vec<_>>()
                .join("\n")
        };
        assert_eq!(strip(&head_answer), strip(&format!("{head}\r\n\r\n")));
    }

    /// A small in-memory body leaves in the head's own buffer: one chunk,
    /// one `writev`.
    #[test]
    fn small_body_shares_the_heads_buffer() {
        let req = get("GET");
        let mut head = HeadBuilder::new(Status::OK);
        head.content_length(3);
        let source = Source::cached(b"abcdef"[..].into(), None, Prepare::NotWanted);
        let r = single_body(Status::OK, head, &req, source, 2, 3, Body::Full, &[]);
        assert_eq!(r.chunks.len(), 1);
        assert!(text(&r.chunks).ends_with("\r\n\r\ncde"));
    }
}
