//! stoke: a static-file HTTP/1.1 server on a hand-rolled reactor.
//!
//! The folders show the architecture. Arrows point one way, with no
//! cycles:
//!
//! ```text
//! main → server → models/ ──drives──▶ conn/ ──────────────┬──▶ http/ ──▶ limits
//!                    │                  ▲                  │     ▲
//!                    │                 tls/ (a Transport)  ▼     │
//!                    │                               access_log ─┤
//!                    └──calls──▶ site/ ───────────────────┴──────┘
//!                                  └──▶ sys/
//! ```
//!
//! Exactly, module by module (`use crate::…`):
//!
//! | module | uses |
//! |---|---|
//! | [`server`] | `models`, `site`, `config`, `tls`, `sys`, `trace`, `limits` |
//! | [`models`] | `conn`, `site`, `tls`, `net`, `config`, `http`, `sys`, `trace`, `limits` |
//! | [`site`] | `config`, `access_log`, `http`, `sys`, `trace`, `limits` |
//! | [`config`] | `tls`, `net`, `limits` |
//! | [`tls`] | `conn`, `access_log`, `http`, `limits` |
//! | [`conn`] | `access_log`, `http`, `sys`, `trace`, `limits` |
//! | [`access_log`] | `http` |
//! | [`http`] | `limits` |
//! | [`sys`] | `limits` |
//! | [`net`], [`trace`], [`limits`] | nothing |
//!
//! - [`http`]: pure HTTP/1.1, sans-IO (bytes and field values in, decisions out).
//! - [`conn`]: one connection as a sans-IO state machine, shared by every model.
//! - [`site`]: request → response: the blocking file work, the same in every model.
//! - [`models`]: ways to run `conn` + `site` on threads and sockets
//!   (`--model`; docs/MODELS.md compares them).
//! - [`sys`]: every `unsafe` and OS-specific call.
//! - [`limits`]: every limit and default, each with its reason.
//! - [`tls`]: HTTPS (rustls sessions as a `conn::Transport`, certificates
//!   and their reload); [`net`]: the PROXY protocol and trusted-proxy blocks.
//!
//! Read it in the order a request travels (docs/ARCHITECTURE.md walks it):
//!
//! | stage | module | thread |
//! |---|---|---|
//! | start: bind, spawn workers | [`server`] | main |
//! | the event loop: accept, readiness, timers | [`models::reactor::event_loop`], [`models::reactor::timer`] | reactor |
//! | PROXY header, TLS session around the socket | [`models::reactor::stream`], [`net::proxy_protocol`], [`tls::stream`] | reactor |
//! | read, parse, write: the connection state machine; keep-alive | [`conn`], [`http::request`], [`http::chunked`] | reactor |
//! | dispatch to the pool | [`models::reactor::pool`] | reactor → workers |
//! | the panic guard, the method, the access-log record | [`site`] (`handle`) | worker |
//! | URL → what to open: decode, cache, open beneath the root, index, listing | `site/resolve.rs`, [`site::url_path`], [`site::cache`], [`site::listing`] | worker |
//! | the variant, validators, ranges → 200/206/304/412/416 | `site/file.rs`, [`site::compress`], [`site::variants`], [`http::conditional`], [`http::range`] | worker |
//! | the body as chunks; error pages and their codes | `site/body.rs`, [`http::response`], [`http::errors`] | worker |
//! | hand the answer back | [`models::reactor::completion`] | worker → reactor |
//! | or, `--model pool` / `thread-per-connection`: all of the above on one blocking thread per client | [`models::blocking`], [`models::blocking_pool`], [`models::thread_per_conn`] | the client's thread |
//! | `sendfile`, `openat2` | [`sys`] | both |
//! | every limit and default, with its reason | [`limits`] | all |
//! | one log line per request | [`access_log`] | both |
//! | `--trace`: each request's stages, timed | [`trace`] | all |

pub mod access_log;
pub mod config;
pub mod conn;
pub mod http;
pub mod limits;
pub mod models;
pub mod net;
pub mod server;
pub mod site;
pub mod sys;
pub mod tls;
pub mod trace;

pub use config::{Cli, Config};
pub use server::{Handle, Server};
