//! On-the-fly compression: which files are compressed for which clients
//! (the policy), the three codecs, and the bridge to the variant cache.
//!
//! A file is compressed when compression is on (`--compress`, the default),
//! its type is compressible (`--compress-types`), its size is between
//! [`COMPRESS_MIN_SIZE`] and [`COMPRESS_MAX_SIZE`], and the client's `Accept-Encoding` wants
//! zstd, br or gzip more than every precompressed sidecar (a tie goes to
//! the sidecar: it was made with more effort, and costs no CPU). The bytes
//! come from the bounded, single-flight [`VariantCache`]: a file compresses
//! once per coding and per version of the file, not once per request, and
//! a changed file is never served stale (the cache checks the stamp of the
//! file this request opened on every hit).
//!
//! When a variant cannot be had now (too many compressions running, the
//! file changed while being read, the data does not shrink), the caller
//! serves the sidecar or identity choice instead: always a correct answer,
//! and no worker ever waits behind the compression cap.
//!
//! Runs on: worker threads (compression never runs on the reactor).

use std::fs::{File, Metadata};
use std::io::{self, Write};
use std::os::unix::fs::{FileExt, MetadataExt};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::config::Config;
use crate::http::encoding::{AcceptEncoding, Coding};
use crate::limits::{
    COMPRESS_CACHE_BYTES, COMPRESS_MAX_SIZE, COMPRESS_MIN_SAVING_DIVISOR, COMPRESS_MIN_SIZE,
};
use crate::sys::FileStamp;

use super::variants::{Body, Key, VariantCache};

/// The codings we make, in our order of preference at equal q. A variant is
/// made once and then served from the cache, so bytes on the wire count
/// more than the time to make it: brotli first, the smallest (a 100 KiB
/// HTML page: br 28.2 KB, gzip 29.3 KB, zstd 31.1 KB, in 7.5, 3.9 and
/// 0.7 ms); then zstd, ten times faster to make than either; gzip last,
/// the one every client decodes.
pub const CODINGS: &[Coding] = &[Coding::Brotli, Coding::Zstd, Coding::Gzip];

/// gzip level: zlib's own default, the usual trade between speed and size.
const GZIP_LEVEL: u32 = 6;

/// Brotli quality: 5 is where brotli passes gzip -9 in size at several
/// times gzip -9's speed; 10-11 are for precompressed sidecars.
const BROTLI_QUALITY: i32 = 5;

/// Brotli window (log2 bytes): 4 MiB covers [`COMPRESS_MAX_SIZE`] files whole.
const BROTLI_LGWIN: i32 = 22;

/// zstd level: the library's default; its window for files up to
/// [`COMPRESS_MAX_SIZE`] stays under the 8 MiB that browsers accept (RFC 8878 §3).
const ZSTD_LEVEL: i32 = 3;

/// The ETag suffix of a variant made here: the coding and its level, so
/// a variant never shares a tag with a sidecar of the same coding (whose
/// bytes differ), and a change of level is a change of tag.
pub fn etag_suffix(coding: Coding) -> &'static str {
    match coding {
        Coding::Zstd => "zstdq3",
        Coding::Brotli => "brq5",
        Coding::Gzip => "gzipq6",
        Coding::Identity => "",
    }
}

/// The coding to compress with for this request, if any: the client's
/// favourite among `chosen` (the best sidecar, or identity), `offers` (see
/// [`Compressor::offers`]) and identity, when that is one of `offers`. A
/// tie goes to the sidecar, then to the earlier of `offers`, then to
/// identity.
pub fn pick(accept: &AcceptEncoding, chosen: Coding, offers: &[Coding]) -> Option<Coding> {
    if offers.is_empty() {
        return None;
    }
    let sidecar = Some(chosen).filter(|&c| c != Coding::Identity);
    let mut offered = [Coding::Identity; 1 + CODINGS.len()];
    let mut n = 0;
    for c in sidecar.into_iter().chain(offers.iter().copied()) {
        if let Some(slot) = offered.get_mut(n) {
            *slot = c;
            n += 1;
        }
    }
    let best = accept.choose_among(&offered[..n]);
    (best != chosen && best != Coding::Identity).then_some(best)
}

/// Where the file's bytes are: already in memory (a small file), or in the
/// open file (read with `pread`, so its offset stays where it was for the
/// identity fallback).
pub enum Input<'a> {
    Bytes(&'a [u8]),
    File(&'a File),
}

/// The compression policy and the variant cache of one site.
pub struct Compressor {
    enabled: bool,
    /// Lower-case `type/subtype` or `type/*`.
    types: Vec<String>,
    variants: VariantCache,
    /// Times a codec ran (not cache hits): tests count them.
    compressions: Arc<AtomicU64>,
}

impl Compressor {
    pub fn new(config: &Config) -> Compressor {
        Compressor {
            enabled: config.compress,
            types: config.compress_types.clone(),
            variants: VariantCache::new(COMPRESS_CACHE_BYTES, max_busy(config.threads)),
            compressions: Arc::new(AtomicU64::new(0)),
        }
    }

    /// The codings we would make for this file, in our order of preference;
    /// empty when the file is never compressed on the fly. Non-empty means
    /// the response depends on `Accept-Encoding` (`Vary`).
    pub fn offers(&self, content_type: &str, meta: &Metadata) -> &'static [Coding] {
        let size_fits = (COMPRESS_MIN_SIZE..=COMPRESS_MAX_SIZE).contains(&meta.len());
        if self.enabled && size_fits && self.compressible(content_type) {
            CODINGS
        } else {
            &[]
        }
    }

    /// The compressed bytes of this file in `coding`: from the cache, or
    /// made now; `None` when they cannot be had now (see the module doc).
    /// `meta` is the file's metadata as this request found it: the cache
    /// checks it against the variant's stamp.
    pub fn variant(&self, coding: Coding, meta: &Metadata, input: Input) -> Option<Arc<[u8]>> {
        let stamp = FileStamp::of(meta);
        let key = Key {
            dev: meta.dev(),
            ino: meta.ino(),
            coding,
        };
        let body = self
            .variants
            .get_or_make(key, stamp, || self.make(coding, meta, stamp, input))?;
        match body {
            Body::Compressed(data) => Some(data),
            Body::NotWorthIt => None,
        }
    }

    /// A counter of codec runs, shared with the server's `Handle`.
    pub fn counter(&self) -> Arc<AtomicU64> {
        Arc::clone(&self.compressions)
    }

    fn compressible(&self, content_type: &str) -> bool {
        let essence = content_type.split(';').next().unwrap_or_default().trim();
        self.types
            .iter()
            .any(|pattern| match pattern.strip_suffix('*') {
                Some(prefix) => essence
                    .get(..prefix.len())
                    .is_some_and(|head| head.eq_ignore_ascii_case(prefix)),
                None => essence.eq_ignore_ascii_case(pattern),
            })
    }

    /// Reads and compresses. `None` (a failure: nothing is cached) when the
    /// file cannot be read whole or changed while it was read.
    fn make(
        &self,
        coding: Coding,
        meta: &Metadata,
        stamp: FileStamp,
        input: Input,
    ) -> Option<Body> {
        let read;
        let data = match input {
            Input::Bytes(data) => data,
            Input::File(file) => {
                read = read_whole(file, meta.len(), stamp)?;
                &read[..]
            }
        };
        if looks_compressed(data) {
            return Some(Body::NotWorthIt);
        }
        self.compressions.fetch_add(1, Ordering::Relaxed);
        let out = match encode(coding, data) {
            Ok(out) => out,
            Err(e) => {
                log::error!("cannot compress with {}: {e}", coding.token());
                return None;
            }
        };
        let len = data.len() as u64;
        if out.len() as u64 > len - len / COMPRESS_MIN_SAVING_DIVISOR {
            return Some(Body::NotWorthIt);
        }
        log::debug!(
            "compressed inode {} with {}: {len} -> {} bytes",
            meta.ino(),
            coding.token(),
            out.len()
        );
        Some(Body::Compressed(out.into()))
    }
}

/// At most half the workers are ever busy with compression (compressing or
/// waiting for a compression), so the other half stay free for the cheap
/// requests; with one worker, that one may compress.
fn max_busy(threads: usize) -> usize {
    (threads / 2).max(1)
}

/// The first `len` bytes of `file`, if it still has the stamp `stamp`
/// afterwards (else a writer raced us and the bytes may be torn).
fn read_whole(file: &File, len: u64, stamp: FileStamp) -> Option<Vec<u8>> {
    let mut data = vec![0; usize::try_from(len).ok()?];
    if let Err(e) = file.read_exact_at(&mut data, 0) {
        log::warn!("file changed while being read for compression: {e}");
        return None;
    }
    match file.metadata() {
        Ok(now) if FileStamp::of(&now) == stamp => Some(data),
        _ => None,
    }
}

/// Data that is already compressed, by its magic number: gzip, zstd, xz,
/// bzip2, zip. Compressing it again gains nothing, so it is not tried.
fn looks_compressed(data: &[u8]) -> bool {
    const MAGIC: &[&[u8]] = &[
        b"\x1f\x8b",
        b"\x28\xb5\x2f\xfd",
        b"\xfd7zXZ\x00",
        b"BZh",
        b"PK\x03\x04",
    ];
    MAGIC.iter().any(|m| data.starts_with(m))
}

/// Compresses `data` whole with `coding` (identity: a copy).
pub fn encode(coding: Coding, data: &[u8]) -> io::Result<Vec<u8>> {
    match coding {
        Coding::Gzip => {
            let out = Vec::with_capacity(data.len() / 3);
            let mut encoder =
                flate2::write::GzEncoder::new(out, flate2::Compression::new(GZIP_LEVEL));
            encoder.write_all(data)?;
            encoder.finish()
        }
        Coding::Brotli => {
            let params = brotli::enc::BrotliEncoderParams {
                quality: BROTLI_QUALITY,
                lgwin: BROTLI_LGWIN,
                size_hint: data.len(),
                ..Default::default()
            };
            let mut out = Vec::with_capacity(data.len() / 3);
            brotli::BrotliCompress(&mut &data[..], &mut out, &params)?;
            Ok(out)
        }
        // The frame records the content size, and the level's window fits.
        Coding::Zstd => zstd::bulk::compress(data, ZSTD_LEVEL),
        Coding::Identity => Ok(data.to_vec()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn decode(coding: Coding, data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        match coding {
            Coding::Gzip => {
                flate2::read::GzDecoder::new(data)
                    .read_to_end(&mut out)
                    .unwrap();
            }
            Coding::Brotli => {
                brotli::Decompressor::new(data, 4096)
                    .read_to_end(&mut out)
                    .unwrap();
            }
            Coding::Zstd => out = zstd::stream::decode_all(data).unwrap(),
            Coding::Identity => out = data.to_vec(),
        }
        out
    }

    #[test]
    fn every_codec_round_trips_and_shrinks_text() {
        let text = b"<p>stoke serves static files, and text compresses well.</p>\n".repeat(200);
        for &coding in CODINGS {
            let packed = encode(coding, &text).unwrap();
            assert!(
                packed.len() * 4 < text.len(),
                "{coding:?}: {}",
                packed.len()
            );
            assert_eq!(decode(coding, &packed), text, "{coding:?}");
            // Deterministic: one strong ETag names one byte sequence, even
            // when a variant is evicted and made again.
            assert_eq!(encode(coding, &text).unwrap(), packed, "{coding:?}");
        }
        for empty in CODINGS.iter().map(|&c| encode(c, b"").unwrap()) {
            assert!(!empty.is_empty());
        }
    }

    #[test]
    fn etag_suffixes_name_coding_and_level() {
        let cases = [
            (Coding::Zstd, ZSTD_LEVEL.to_string()),
            (Coding::Brotli, BROTLI_QUALITY.to_string()),
            (Coding::Gzip, GZIP_LEVEL.to_string()),
        ];
        for (coding, level) in cases {
            let suffix = etag_suffix(coding);
            assert!(suffix.starts_with(coding.token()), "{suffix}");
            assert!(suffix.ends_with(&format!("q{level}")), "{suffix}");
            // Never the sidecar's suffix, which is the bare token.
            assert_ne!(suffix, coding.token());
            assert!(suffix.chars().all(|c| c.is_ascii_alphanumeric()));
        }
    }

    #[test]
    fn pick_table() {
        use Coding::{Brotli, Gzip, Identity, Zstd};
        // (Accept-Encoding, the sidecar choice, offers, expected)
        let cases: &[(&str, Coding, &[Coding], Option<Coding>)] = &[
            ("gzip, deflate, br, zstd", Identity, CODINGS, Some(Brotli)),
            ("gzip, deflate, zstd", Identity, CODINGS, Some(Zstd)),
            ("gzip, deflate", Identity, CODINGS, Some(Gzip)),
            ("gzip, deflate", Identity, &[], None),
            ("identity", Identity, CODINGS, None),
            ("gzip;q=0.5, identity", Identity, CODINGS, None),
            ("gzip, identity", Identity, CODINGS, Some(Gzip)),
            // Sidecars win ties, and lose to a coding the client prefers.
            ("gzip, br, zstd", Brotli, CODINGS, None),
            ("gzip, br, zstd", Gzip, CODINGS, None),
            ("gzip;q=0.5, zstd", Gzip, CODINGS, Some(Zstd)),
            ("br;q=0.5, gzip", Brotli, CODINGS, Some(Gzip)),
        ];
        for &(header, chosen, offers, want) in cases {
            let accept = AcceptEncoding::parse(Some(header));
            assert_eq!(pick(&accept, chosen, offers), want, "{header:?} {chosen:?}");
        }
    }

    #[test]
    fn compressed_magic_is_recognised() {
        let gz = encode(Coding::Gzip, b"hello hello hello").unwrap();
        let zst = encode(Coding::Zstd, b"hello hello hello").unwrap();
        assert!(looks_compressed(&gz));
        assert!(looks_compressed(&zst));
        assert!(looks_compressed(b"PK\x03\x04rest"));
        assert!(!looks_compressed(b"<!doctype html>"));
        assert!(!looks_compressed(b""));
    }

    #[test]
    fn at_most_half_the_workers_compress() {
        assert_eq!(
            [1, 2, 3, 4, 16].map(max_busy),
            [1, 1, 1, 2, 8],
            "threads -> compressions at once"
        );
    }
}
