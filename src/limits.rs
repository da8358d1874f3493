//! Every limit and default in one place, each with one sentence (or a
//! few) on why it has its value. A reader auditing what a client can make
//! stoke spend (memory, descriptors, time) reads this file; the modules
//! that enforce a limit import it from here. Settings a user may change
//! are `DEFAULT_*` here and fields of `Config` (config.rs).
//!
//! Runs on: nothing itself; constants read by every thread.

use std::time::Duration;

// ---- Request heads and bodies (`http::request`, `http::chunked`, `http::range`, `conn`)

/// Longest request head (request line + fields) we buffer. nginx and most
/// servers use 8 KiB; real browser heads are under 2 KiB.
pub const DEFAULT_MAX_HEAD: usize = 8 * 1024;

/// Bounds `--max-head-size`: each connection may buffer a head this long
/// plus one read, so with thousands of connections a larger limit is a
/// memory hazard, and no real client needs it (browser heads with large
/// cookies stay under 16 KiB).
pub const MAX_MAX_HEAD: usize = 64 * 1024;

/// How many header fields one request may carry. Browsers send about 15;
/// 64 leaves room for proxies while bounding the work per head.
pub const MAX_HEADERS: usize = 64;

/// Answered request heads an event loop keeps for reuse
/// (`http::request::SpareHeads`): enough for the requests in flight in a
/// busy turn, so a steady stream allocates none, yet a bounded amount of memory.
pub const MAX_SPARE_HEADS: usize = 128;

/// A head whose buffer grew beyond this is not kept for reuse: a few long
/// heads must not pin their memory for good. Ordinary browser heads fit.
pub const MAX_SPARE_HEAD_TEXT: usize = 2048;

/// A written response's head buffer is kept for the next response
/// (`http::response::Recycled`) only up to this capacity: a prepared
/// cached-file head is a few hundred bytes, while a head that carried a
/// small file's body or an error page must not pin that memory.
pub const MAX_RECYCLED_HEAD: usize = 2048;

/// ... and its list of chunks only up to this many: a plain answer has
/// two (head, body); a multipart range answer may have dozens.
pub const MAX_RECYCLED_CHUNKS: usize = 4;

/// Whole time allowed for one request head (slowloris defence).
pub const DEFAULT_HEADER_TIMEOUT_SECS: f64 = 10.0;

/// Bytes of framing one body may carry: chunk-size lines with their
/// extensions, the CRLFs, and the trailer section. A real client spends a
/// few bytes per chunk; without this bound a client could send endless
/// leading zeros, extensions or trailers that never count as content.
pub const MAX_FRAMING: u64 = 64 * 1024;

/// A request body we skip (a GET with a body) is read and thrown away up to
/// this much content, chunked or not; beyond it we answer 413 and close
/// rather than spend bandwidth.
pub const MAX_DISCARDED_BODY: u64 = 1024 * 1024;

/// The most range-specs we accept in a single `Range` header before
/// ignoring it and serving the whole file with `200`.
///
/// Real clients (media players seeking, PDF viewers, download resumers) send
/// one range, occasionally a handful; Apache's CVE-2011-3192 was exploited
/// with hundreds of overlapping ranges that each cost a multipart part, so
/// a small cap removes the amplification while never bothering real clients.
pub const MAX_RANGES: usize = 16;

// ---- Connections (`conn`, the models)

/// Connections served at once. Each idle one costs a few hundred bytes here
/// and a socket in the kernel; past this we stop accepting and let the
/// kernel's backlog hold the rest.
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;

/// How long an idle keep-alive connection is kept (nginx: 75 s; we are
/// stingier, since an idle connection serves nobody).
pub const DEFAULT_KEEPALIVE_TIMEOUT_SECS: f64 = 5.0;

/// A client that reads nothing of a response for this long is gone (nginx's
/// `send_timeout` default).
pub const SEND_TIMEOUT: Duration = Duration::from_secs(60);

/// After a response that ends the connection we half-close and read what the
/// client still sends for at most this long, so that an unread request body
/// in our receive buffer does not make the kernel reset the connection and
/// destroy the response before the client has read it.
pub const LINGER_TIMEOUT: Duration = Duration::from_secs(2);

/// Nice steps the cold-file warm-up threads run below the rest of stoke.
/// Their readahead is background work: when the cores are busy, the
/// reactor and the request workers (which answer cached requests in
/// microseconds) should get the CPU first, and a download still gets its
/// window read in once they are idle (10: the scheduler then gives a warm-up
/// about a tenth of a core that a busy reactor also wants).
pub const WARM_NICE: i32 = 10;

/// Bytes written for one connection per readiness event before it yields to
/// the others: one fast reader of a large file must not starve the rest.
pub const WRITE_BUDGET: u64 = 1024 * 1024;

/// Bytes a lingering connection reads (and throws away) per readiness event
/// before it yields: it serves nobody, so a client flooding it must not
/// hold the reactor.
pub const LINGER_READ_BUDGET: usize = 64 * 1024;

/// Size of the read scratch buffer (one per reactor, one per blocking
/// connection thread). Enough for a large head or a burst of pipelined ones
/// in one `read`.
pub const SCRATCH_SIZE: usize = 16 * 1024;

/// Events taken from the kernel per `poll`.
pub const EVENTS_CAPACITY: usize = 1024;

/// When `accept` fails for lack of descriptors or memory, we stop accepting
/// for this long instead of retrying in a hot loop (the pending connection
/// stays in the backlog, so the listener would report ready forever).
pub const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Queue length for sockets we bind ourselves (mio and std use the same).
pub const LISTEN_BACKLOG: libc::c_int = 1024;

/// More inherited sockets than this is a misconfiguration, not a service.
pub const MAX_INHERITED: usize = 64;

/// Bytes of a file read and encrypted per `send_file` call: one full TLS
/// record, so every record but a file's last is full-size.
pub const TLS_FILE_CHUNK: usize = 16 * 1024;

// ---- Threads and shutdown (`models`)

/// Threads of `--model pool` when `--threads` is not given. A pool thread
/// holds one client from accept to close, idle keep-alive time included, so
/// this is also how many clients are served at once: a few dozen browsers
/// (each opens up to 6 connections), at ~25 KiB of memory per thread.
pub const DEFAULT_POOL_THREADS: usize = 128;

/// How long a graceful shutdown waits for responses in flight.
pub const DEFAULT_SHUTDOWN_TIMEOUT_SECS: f64 = 10.0;

/// How long a shutdown gives the workers to exit once no connection is
/// left: idle ones only have to wake up, one finishing a job for a client
/// already gone gets this long; one stuck longer (a hung mount) is left
/// behind and dies with the process.
pub const WORKER_EXIT_GRACE: Duration = Duration::from_millis(500);

/// After the shutdown deadline has cut the last connections off, how long we
/// still wait for their threads to notice. A thread blocked on the socket
/// wakes at once; one stuck in the file system (a hung network mount) can't
/// be woken, and is left behind rather than holding the process forever.
pub const CUT_OFF_GRACE: Duration = Duration::from_secs(1);

// ---- Descriptors (`server` sizes the connection cap from these)

/// Descriptors kept out of the connection cap for the server itself: stdio,
/// the poller and its waker, the signal pipe, the root directory, and room
/// to spare (the listeners come on top).
pub const FD_RESERVE_BASE: u64 = 16;

/// Descriptors one worker may hold at once while answering: a directory,
/// its index file and two precompressed sidecars.
pub const FD_PER_WORKER: u64 = 4;

/// Descriptors one connection may hold when workers do the file work (the
/// reactor models): its socket, and the file a large response is sent from.
pub const FD_PER_CONNECTION: u64 = 2;

/// Descriptors one connection may hold in a blocking model, where its own
/// thread does the file work: its socket and what a worker may hold.
pub const FD_PER_BLOCKING_CONNECTION: u64 = 1 + FD_PER_WORKER;

// ---- Files: resolution and the small-file cache (`sys::open`, `site`, `site::cache`)

/// Symlinks followed while resolving one path, at most: Linux's own limit
/// (`MAXSYMLINKS`), so a link loop fails here as it would in the kernel.
pub const MAX_SYMLINKS: usize = 40;

/// Names one resolution may look up, at most: bounds what a crafted tree of
/// links (each `..` costs a walk back down from the root) can cost a worker.
pub const MAX_LOOKUPS: usize = 1024;

/// Files up to this size are read into memory by the worker and leave in the
/// same `writev` as the head: one syscall on the reactor instead of two, and
/// no descriptor held open. Above it, `sendfile` wins.
pub const SMALL_FILE: u64 = 16 * 1024;

/// Memory the cache may hold, data and paths together. Entries are small
/// files (see `[`SMALL_FILE`]`), so this is a few hundred of them: the hot
/// set of a typical site.
pub const MAX_CACHED_BYTES: usize = 8 * 1024 * 1024;

/// Paths the cache may index. Twice or more the hot set of a typical site,
/// with room for a few aliases each; each costs its path's bytes (counted in
/// [`MAX_CACHED_BYTES`]) plus a fixed few hundred bytes, so the index stays
/// near a megabyte however many empty files or alias paths are requested.
pub const MAX_CACHED_PATHS: usize = 4096;

/// Directories `site::watcher` may watch with inotify (the cached files'
/// directories and their ancestors). Each watch pins the directory's inode
/// in kernel memory and counts against the user's
/// `fs.inotify.max_user_watches`, shared with every other program of that
/// user; past this, a cached file in a directory not yet watched is checked
/// with a stat on every hit, as without inotify. A site's cached files
/// rarely span more than a few hundred directories.
pub const MAX_WATCHED_DIRS: usize = 1024;

/// Bytes read from the inotify descriptor at once: room for about a hundred
/// events of directory entries (16 bytes each plus the name).
pub const WATCH_READ_BUFFER: usize = 4096;

/// A directory modified this recently may be modified again within the same
/// timestamp tick without its stamp changing (file-system clocks are
/// coarse: a jiffy on Linux, 2 s on FAT), so "no sidecar" is not remembered
/// against it.
pub const SIDECAR_MEMO_SETTLE: Duration = Duration::from_secs(2);

// ---- Directory listings (`site::listing`, `site::listing_cache`)

/// At most this many entries are read from one directory: it bounds the
/// memory and time a single listing costs, and a longer listing is unusable
/// in a browser anyway.
pub const MAX_ENTRIES: usize = 10_000;

/// At most this many bytes in one page (HTML or JSON). A typical row is under
/// 200 bytes, so [`MAX_ENTRIES`] ordinary names fit; 255-byte names that
/// escape to several times their length would otherwise make a page of tens
/// of MB, built for every request.
pub const MAX_PAGE_BYTES: usize = 2 * 1024 * 1024;

/// All listing bodies alive at once, cached or still being sent, may hold
/// this much: eight pages of the largest size, far more than the listings a
/// static site serves at a time, and a small, fixed share of memory however
/// many clients stall.
pub const MAX_LISTING_MEMORY: usize = 8 * MAX_PAGE_BYTES;

/// At most this many pages are cached: bounds the index, whose keys hold a
/// URL path each; the bytes are bounded by [`MAX_LISTING_MEMORY`].
pub const MAX_CACHED_PAGES: usize = 256;

/// A cached page is rebuilt after this long even if its directory's stamp
/// did not change, because an entry edited in place changes only its own
/// stamp: long enough for a burst to share one rendering, short enough
/// that a listing's sizes and times are never noticeably old.
pub const PAGE_MAX_AGE: Duration = Duration::from_secs(1);

// ---- Compression on the fly (`site::compress`, `site::variants`)

/// Files smaller than this are sent as they are: the saving would be a few
/// hundred bytes at most, of which `Content-Encoding` and the codec's
/// framing take a good part, and head and body fit in one TCP segment
/// either way.
pub const COMPRESS_MIN_SIZE: u64 = 1024;

/// Files larger than this are streamed as they are (sendfile): compressing
/// means holding the whole file and its compressed copy in memory, and the
/// largest real text assets (JavaScript bundles) stay under it.
pub const COMPRESS_MAX_SIZE: u64 = 4 * 1024 * 1024;

/// Memory for compressed variants: every compressible asset of a typical
/// site in all three codings, and room for eight variants of [`COMPRESS_MAX_SIZE`]
/// files (which shrink at least by [`COMPRESS_MIN_SAVING_DIVISOR`]).
pub const COMPRESS_CACHE_BYTES: usize = 32 * 1024 * 1024;

/// A variant must save at least an eighth of the bytes: less is what data
/// that was already compressed (a gzip file under a text name) yields, and
/// it would cost every client a decode for nothing.
pub const COMPRESS_MIN_SAVING_DIVISOR: u64 = 8;

/// Longest wait for another worker's compression of the same variant
/// before serving something else: a safety net only, since a `COMPRESS_MAX_SIZE`
/// file takes well under a second with any of our codecs.
pub const COMPRESS_WAIT_LIMIT: Duration = Duration::from_secs(10);

/// Most `--reactors`: each loop is a thread that polls its own sockets;
/// more than the machine's cores only adds switching.
pub const MAX_REACTORS: usize = 256;

/// How far past an even split of the connections an event loop still
/// accepts on a listener event (`--reactors`): a little, so that a loop that
/// is alone awake does not leave a client waiting for the others over a
/// count of one.
pub const FAIR_SHARE_SLACK: usize = 2;
