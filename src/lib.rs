//! stoke: a static-file HTTP/1.1 server on a hand-rolled reactor.
//!
//! Read it in the order a request travels (docs/ARCHITECTURE.md walks it):
//!
//! | stage | module | thread |
//! |---|---|---|
//! | start: bind, spawn workers | [`server`] | main |
//! | the event loop: accept, readiness, timers | [`reactor`], [`timer`] | reactor |
//! | read, parse, write: the connection state machine | [`connection`], [`http::request`] | reactor |
//! | dispatch to the pool | [`pool`] | reactor → workers |
//! | resolve the path, open, stat, build the answer | [`handler`], [`url_path`], [`file_cache`], [`listing`], [`http`] | worker |
//! | hand the answer back | [`completion`] | worker → reactor |
//! | `sendfile`, `openat2` | [`sys`] | both |
//! | one log line per request | [`access_log`] | both |

pub mod access_log;
pub mod completion;
pub mod config;
pub mod connection;
pub mod file_cache;
pub mod handler;
pub mod http;
pub mod listing;
pub mod pool;
pub mod reactor;
pub mod server;
pub mod sys;
pub mod timer;
pub mod url_path;

pub use config::{Cli, Config};
pub use server::{Handle, Server};
