//! Configuration: the command line (parsed by clap) and the validated,
//! immutable [`Config`] that every thread shares through an `Arc`.
//!
//! The defaults come from `limits`, each with one sentence of why; the
//! `--model` choice ([`Model`]) is defined here too, so that `config`
//! needs nothing from the models it configures. Validation turns a CLI
//! mistake into one [`ConfigError`] line, never a panic.
//!
//! Runs on: the main thread, once, before the server starts.

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

use crate::limits::{
    DEFAULT_HEADER_TIMEOUT_SECS, DEFAULT_KEEPALIVE_TIMEOUT_SECS, DEFAULT_MAX_CONNECTIONS,
    DEFAULT_MAX_HEAD, DEFAULT_POOL_THREADS, DEFAULT_SHUTDOWN_TIMEOUT_SECS, MAX_MAX_HEAD,
    MAX_REACTORS,
};
use crate::net::Cidr;
pub use crate::tls::TlsFiles;

/// How the server runs its connections (`--model`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Model {
    /// One event-loop thread owns every socket; a work-stealing pool does the file work.
    #[default]
    Reactor,
    /// The same event loop doing the file work itself, with no pool (the control).
    ReactorInline,
    /// --threads pre-created threads, each serving one client at a time, accept to close.
    Pool,
    /// A new thread for every client, ended when it closes (at most --max-connections).
    ThreadPerConnection,
}

impl Model {
    pub const ALL: [Model; 4] = [
        Model::Reactor,
        Model::ReactorInline,
        Model::Pool,
        Model::ThreadPerConnection,
    ];

    /// The name `--model` takes.
    pub fn name(self) -> &'static str {
        match self {
            Model::Reactor => "reactor",
            Model::ReactorInline => "reactor-inline",
            Model::Pool => "pool",
            Model::ThreadPerConnection => "thread-per-connection",
        }
    }
}

impl fmt::Display for Model {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Types compressed on the fly: text and the text-like formats of the web,
/// which shrink to a third or less; images, audio, video, fonts and
/// archives are compressed already.
pub const DEFAULT_COMPRESS_TYPES: &str = "text/*,application/javascript,application/json,\
application/xml,application/wasm,image/svg+xml,application/manifest+json,\
application/ld+json,application/xhtml+xml,application/rss+xml,application/atom+xml";

/// stoke — a small static-file HTTP/1.1 server.
///
/// Serves the files under ROOT over HTTP/1.1 with keep-alive, pipelining,
/// ranges, validators, precompressed sidecars and on-the-fly compression.
/// RUST_LOG controls logging (the access log is the `access` target at info
/// level).
#[derive(Parser, Debug, Clone)]
#[command(name = "stoke", version = version(), about, long_about = None)]
pub struct Cli {
    /// Directory to serve.
    #[arg(default_value = ".")]
    pub root: PathBuf,

    /// Address to listen on (IPv4 `127.0.0.1:8080` or IPv6 `[::1]:8080`); repeatable.
    /// [default: 127.0.0.1:8080 when no other listener is given]
    #[arg(short, long = "listen", value_name = "ADDR:PORT")]
    pub listen: Vec<SocketAddr>,

    /// How connections are run: one event loop, a thread pool, or a thread each (see docs/MODELS.md).
    #[arg(long, value_enum, default_value_t = Model::Reactor)]
    pub model: Model,

    /// Threads: the reactor's file workers [default: available parallelism], or the
    /// pool's connection threads [default: 128]; other models ignore it.
    #[arg(short, long, value_name = "N")]
    pub threads: Option<usize>,

    /// Event loops of the reactor models, each with its own connections and
    /// timers, sharing the listeners and the file workers; other models ignore it.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub reactors: usize,

    /// Most connections served at once; further clients wait in the backlog.
    #[arg(long, value_name = "N", default_value_t = DEFAULT_MAX_CONNECTIONS)]
    pub max_connections: usize,

    /// Seconds a client has to send a whole request head.
    #[arg(long, value_name = "SECS", default_value_t = DEFAULT_HEADER_TIMEOUT_SECS)]
    pub header_timeout: f64,

    /// Seconds an idle keep-alive connection is kept open.
    #[arg(long, value_name = "SECS", default_value_t = DEFAULT_KEEPALIVE_TIMEOUT_SECS)]
    pub keepalive_timeout: f64,

    /// Seconds a graceful shutdown waits for responses in flight.
    #[arg(long, value_name = "SECS", default_value_t = DEFAULT_SHUTDOWN_TIMEOUT_SECS)]
    pub shutdown_timeout: f64,

    /// Largest request head in bytes (larger → 431, a longer request line → 414).
    #[arg(long, value_name = "BYTES", default_value_t = DEFAULT_MAX_HEAD)]
    pub max_head_size: usize,

    /// List directories that have no index.html.
    #[arg(long)]
    pub listing: bool,

    /// Serve dotfiles and dot-directories (.git, .env, ...); off by default.
    #[arg(long)]
    pub hidden: bool,

    /// Follow symlinks that point outside ROOT (by default only links that stay inside are followed).
    #[arg(long)]
    pub follow_symlinks: bool,

    /// Compress compressible files on the fly with br, zstd or gzip, as the
    /// client's Accept-Encoding allows (the default); precompressed .br/.gz
    /// sidecars win ties.
    //
    // On by default because text is most of a static site's bytes and every
    // browser asks for it; each variant is compressed once and cached, so the
    // cost is CPU once per file version; and BREACH-style attacks need a
    // secret reflected next to attacker input in one response, which a
    // static file never has.
    #[arg(long, overrides_with = "no_compress")]
    pub compress: bool,

    /// Never compress on the fly (sidecars are still served).
    #[arg(long, overrides_with = "compress")]
    pub no_compress: bool,

    /// Content types compressed on the fly, comma-separated: `type/subtype` or `type/*`.
    #[arg(
        long,
        value_name = "TYPES",
        value_delimiter = ',',
        default_value = DEFAULT_COMPRESS_TYPES
    )]
    pub compress_types: Vec<String>,

    /// Value of a Cache-Control header added to file responses.
    #[arg(long, value_name = "VALUE")]
    pub cache_control: Option<String>,

    /// Extra response header, as 'Name: value'; repeatable.
    #[arg(long = "header", value_name = "NAME: VALUE")]
    pub headers: Vec<String>,

    /// Content type for a file extension, as EXT=TYPE (e.g. md=text/markdown); repeatable.
    #[arg(long = "mime", value_name = "EXT=TYPE")]
    pub mime: Vec<String>,

    /// Log each request's stages with microsecond offsets (debug lines under the
    /// target stoke::trace; RUST_LOG=stoke::trace=debug does the same).
    #[arg(long)]
    pub trace: bool,

    /// After binding, drop root privileges for good and run as this user
    /// (and its groups); refuse to start if that fails.
    #[arg(long, value_name = "NAME")]
    pub user: Option<String>,

    // ---- production: TLS, load balancers (see src/tls/, src/net/) ----
    /// Address to serve HTTPS on (needs --tls-cert and --tls-key); repeatable.
    #[arg(long = "listen-tls", value_name = "ADDR:PORT")]
    pub listen_tls: Vec<SocketAddr>,

    /// PEM certificate chain for HTTPS: the server's certificate first, then intermediates.
    /// Reloaded with the key on SIGHUP.
    #[arg(long, value_name = "FILE")]
    pub tls_cert: Option<PathBuf>,

    /// PEM private key (PKCS#8, PKCS#1 or SEC1) of --tls-cert.
    #[arg(long, value_name = "FILE")]
    pub tls_key: Option<PathBuf>,

    /// Address on which every plain-HTTP request is answered with a 308 redirect
    /// to the same URL over HTTPS; repeatable.
    #[arg(long = "redirect-http", value_name = "ADDR:PORT")]
    pub redirect_http: Vec<SocketAddr>,

    /// Every connection starts with a PROXY protocol header (v1 or v2) from a load
    /// balancer; the client address it names is logged and used. Needs --trusted-proxy.
    #[arg(long)]
    pub proxy_protocol: bool,

    /// Address or CIDR block allowed to send PROXY headers; others are closed. Repeatable.
    #[arg(long = "trusted-proxy", value_name = "CIDR")]
    pub trusted_proxies: Vec<Cidr>,

    /// Bind with SO_REUSEPORT, so that a new stoke can start on the same ports while
    /// this one drains (zero-downtime restarts without a service manager).
    #[arg(long)]
    pub reuse_port: bool,
}

/// What a listener serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListenKind {
    Http,
    Https,
    /// Plain HTTP answered only with redirects to HTTPS.
    RedirectToHttps,
}

/// `stoke --version`: the version, then what this build can do (the
/// optional parts an operator would ask about).
pub fn version() -> &'static str {
    static VERSION: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    VERSION.get_or_init(|| {
        let mut features = vec![
            "https (rustls, ring; TLS 1.2, 1.3)",
            "proxy-protocol (v1, v2)",
            "socket-activation",
        ];
        if cfg!(any(target_os = "linux", target_os = "android")) {
            features.extend(["reuse-port", "sendfile", "openat2"]);
        } else {
            features.push("reuse-port");
        }
        if cfg!(feature = "test-hooks") {
            features.push("test-hooks (NOT FOR PRODUCTION)");
        }
        format!(
            "{}\nfeatures: {}",
            env!("CARGO_PKG_VERSION"),
            features.join(", ")
        )
    })
}

/// The validated configuration shared by the reactor and every worker.
#[derive(Debug, Clone)]
pub struct Config {
    /// Canonical absolute path of the served directory.
    pub root: PathBuf,
    pub listen: Vec<SocketAddr>,
    pub model: Model,
    pub threads: usize,
    /// Event loops (`--reactors`; the reactor models only).
    pub reactors: usize,
    pub max_connections: usize,
    pub max_head: usize,
    pub header_timeout: Duration,
    pub keepalive_timeout: Duration,
    pub shutdown_timeout: Duration,
    pub listing: bool,
    pub hidden: bool,
    pub follow_symlinks: bool,
    /// Compress on the fly (`site::compress`).
    pub compress: bool,
    /// Types compressed on the fly: `type/subtype` or `type/*`, lower case.
    pub compress_types: Vec<String>,
    pub cache_control: Option<String>,
    /// Extra headers, already checked to be valid field names and values and
    /// none of the fields stoke manages itself (`SERVER_MANAGED_FIELDS`).
    pub headers: Vec<(String, String)>,
    /// Lower-case extension → content type.
    pub mime: HashMap<String, String>,
    /// The user to become once the listeners are bound.
    pub user: Option<String>,
    /// `--trace`: log every request's stages (see `trace.rs`).
    pub trace: bool,
    pub listen_tls: Vec<SocketAddr>,
    /// Certificate and key, set exactly when there is a TLS listener.
    pub tls: Option<TlsFiles>,
    pub redirect_http: Vec<SocketAddr>,
    /// Connections must start with a PROXY header, from `trusted_proxies` only.
    pub proxy_protocol: bool,
    pub trusted_proxies: Vec<Cidr>,
    pub reuse_port: bool,
}

impl Config {
    /// Every listen address with what it serves, in the order they are bound.
    pub fn listeners(&self) -> Vec<(SocketAddr, ListenKind)> {
        let plain = self.listen.iter().map(|a| (*a, ListenKind::Http));
        let tls = self.listen_tls.iter().map(|a| (*a, ListenKind::Https));
        let redirect = self
            .redirect_http
            .iter()
            .map(|a| (*a, ListenKind::RedirectToHttps));
        plain.chain(tls).chain(redirect).collect()
    }
}

/// A configuration mistake, shown to the user as one line.
#[derive(Debug)]
pub enum ConfigError {
    Root(PathBuf, std::io::Error),
    RootNotDirectory(PathBuf),
    Invalid(String),
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigError::Root(path, e) => write!(f, "cannot serve {}: {e}", path.display()),
            ConfigError::RootNotDirectory(path) => {
                write!(f, "cannot serve {}: not a directory", path.display())
            }
            ConfigError::Invalid(msg) => f.write_str(msg),
        }
    }
}

impl std::error::Error for ConfigError {}

impl Config {
    /// A configuration with every default, serving `root` on `127.0.0.1:0`
    /// (tests and embedders start from here).
    pub fn for_root(root: impl Into<PathBuf>) -> Result<Config, ConfigError> {
        let mut cli = Cli::parse_from(["stoke"]);
        cli.root = root.into();
        cli.listen = vec![SocketAddr::from(([127, 0, 0, 1], 0))];
        Config::from_cli(cli)
    }

    pub fn from_cli(cli: Cli) -> Result<Config, ConfigError> {
        let root =
            std::fs::canonicalize(&cli.root).map_err(|e| ConfigError::Root(cli.root.clone(), e))?;
        if !root.is_dir() {
            return Err(ConfigError::RootNotDirectory(cli.root));
        }
        let threads = match cli.threads {
            Some(0) => return Err(invalid("--threads must be at least 1")),
            Some(n) => n,
            None if cli.model == Model::Pool => DEFAULT_POOL_THREADS,
            None => std::thread::available_parallelism().map_or(2, |n| n.get()),
        };
        if !(1..=MAX_REACTORS).contains(&cli.reactors) {
            return Err(invalid(&format!(
                "--reactors must be between 1 and {MAX_REACTORS}"
            )));
        }
        if cli.max_connections == 0 {
            return Err(invalid("--max-connections must be at least 1"));
        }
        if !(256..=MAX_MAX_HEAD).contains(&cli.max_head_size) {
            return Err(invalid(&format!(
                "--max-head-size must be between 256 and {MAX_MAX_HEAD} bytes"
            )));
        }
        let headers = cli
            .headers
            .iter()
            .map(|h| parse_header(h))
            .collect::<Result<Vec<_>, _>>()?;
        let mut mime = HashMap::new();
        for m in &cli.mime {
            let (ext, ty) = m
                .split_once('=')
                .filter(|(e, t)| !e.is_empty() && is_field_value(t) && !t.is_empty())
                .ok_or_else(|| invalid(&format!("--mime {m:?}: expected EXT=TYPE")))?;
            mime.insert(
                ext.trim_start_matches('.').to_ascii_lowercase(),
                ty.to_owned(),
            );
        }
        let compress_types = cli
            .compress_types
            .iter()
            .map(|t| parse_media_range(t))
            .collect::<Result<Vec<_>, _>>()?;
        if let Some(cc) = &cli.cache_control {
            if !is_field_value(cc) {
                return Err(invalid("--cache-control: not a valid header value"));
            }
            // Both would be written: two Cache-Control lines, combined by caches.
            if headers
                .iter()
                .any(|(n, _)| n.eq_ignore_ascii_case("Cache-Control"))
            {
                return Err(invalid(
                    "--cache-control and --header 'Cache-Control: ...' both set Cache-Control; use one",
                ));
            }
        }
        let tls = match (cli.tls_cert, cli.tls_key) {
            (Some(cert), Some(key)) => Some(TlsFiles { cert, key }),
            (None, None) => None,
            _ => return Err(invalid("--tls-cert and --tls-key go together")),
        };
        // (A certificate without --listen-tls is fine here: the HTTPS
        // socket may come from the service manager; the server checks.)
        if tls.is_none() && !cli.listen_tls.is_empty() {
            return Err(invalid("--listen-tls needs --tls-cert and --tls-key"));
        }
        if !cli.redirect_http.is_empty() && cli.listen_tls.is_empty() {
            return Err(invalid(
                "--redirect-http needs a --listen-tls address to redirect to",
            ));
        }
        let reactor_only = !cli.listen_tls.is_empty() || !cli.redirect_http.is_empty();
        if reactor_only || cli.proxy_protocol {
            if let Model::Pool | Model::ThreadPerConnection = cli.model {
                return Err(invalid(&format!(
                    "--listen-tls, --redirect-http and --proxy-protocol are served by \
                     --model reactor and reactor-inline, not {}",
                    cli.model
                )));
            }
        }
        if cli.proxy_protocol && cli.trusted_proxies.is_empty() {
            return Err(invalid(
                "--proxy-protocol needs at least one --trusted-proxy address or CIDR",
            ));
        }
        let mut listen = cli.listen;
        if listen.is_empty() && cli.listen_tls.is_empty() && cli.redirect_http.is_empty() {
            listen.push(SocketAddr::from(([127, 0, 0, 1], 8080)));
        }
        Ok(Config {
            root,
            listen,
            listen_tls: cli.listen_tls,
            tls,
            redirect_http: cli.redirect_http,
            proxy_protocol: cli.proxy_protocol,
            trusted_proxies: cli.trusted_proxies,
            reuse_port: cli.reuse_port,
            model: cli.model,
            threads,
            reactors: cli.reactors,
            max_connections: cli.max_connections,
            max_head: cli.max_head_size,
            header_timeout: seconds("--header-timeout", cli.header_timeout)?,
            keepalive_timeout: seconds("--keepalive-timeout", cli.keepalive_timeout)?,
            shutdown_timeout: seconds("--shutdown-timeout", cli.shutdown_timeout)?,
            listing: cli.listing,
            hidden: cli.hidden,
            follow_symlinks: cli.follow_symlinks,
            compress: !cli.no_compress,
            compress_types,
            cache_control: cli.cache_control,
            headers,
            mime,
            user: cli.user,
            trace: cli.trace,
        })
    }
}

fn invalid(msg: &str) -> ConfigError {
    ConfigError::Invalid(msg.to_owned())
}

fn seconds(flag: &str, secs: f64) -> Result<Duration, ConfigError> {
    if secs.is_finite() && secs > 0.0 && secs < 1e9 {
        Ok(Duration::from_secs_f64(secs))
    } else {
        Err(invalid(&format!(
            "{flag} must be a positive number of seconds"
        )))
    }
}

/// Fields `--header` may not set, because stoke writes them itself or they
/// steer framing and the connection; a configured copy would sit beside (or
/// contradict) stoke's own. Compared case-insensitively.
const SERVER_MANAGED_FIELDS: &[&str] = &[
    // Message framing: a second length or transfer coding lets the client
    // and any proxy disagree on where the response ends (desync, splitting).
    "Content-Length",
    "Transfer-Encoding",
    "Trailer",
    "TE",
    // Connection management (hop-by-hop): stoke alone decides keep-alive or
    // close per request, and never switches protocols.
    "Connection",
    "Keep-Alive",
    "Proxy-Connection",
    "Upgrade",
    // Representation metadata stoke computes per file and per request
    // (http/response.rs, site/file.rs, site/body.rs, site/mod.rs): a fixed
    // copy would be wrong for most files and break caches, ranges, decoding.
    "Content-Type",
    "Content-Encoding",
    "Content-Range",
    "ETag",
    "Last-Modified",
    "Accept-Ranges",
    "Vary",
    // Written on every head (`Server`, `Date`) or by status (`Location` on
    // redirects, `Retry-After` on 503, `Allow` on 405/OPTIONS, in
    // site/mod.rs and http/errors.rs): single-valued fields stoke owns.
    "Date",
    "Server",
    "Location",
    "Retry-After",
    "Allow",
];

fn parse_header(h: &str) -> Result<(String, String), ConfigError> {
    let bad = || invalid(&format!("--header {h:?}: expected 'Name: value'"));
    let (name, value) = h.split_once(':').ok_or_else(bad)?;
    let value = value.trim();
    let token = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
    if name.is_empty() || !name.chars().all(token) || !is_field_value(value) {
        return Err(bad());
    }
    if SERVER_MANAGED_FIELDS
        .iter()
        .any(|f| f.eq_ignore_ascii_case(name))
    {
        return Err(invalid(&format!(
            "--header {name:?}: stoke writes or controls this field itself"
        )));
    }
    Ok((name.to_owned(), value.to_owned()))
}

/// One `--compress-types` entry: `type/subtype` or `type/*`, lower-cased.
fn parse_media_range(t: &str) -> Result<String, ConfigError> {
    let t = t.trim().to_ascii_lowercase();
    let token = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "!#$&-^_.+".contains(c))
    };
    match t.split_once('/') {
        Some((ty, sub)) if token(ty) && (sub == "*" || token(sub)) => Ok(t),
        _ => Err(invalid(&format!(
            "--compress-types {t:?}: expected type/subtype or type/* (use --no-compress to turn compression off)"
        ))),
    }
}

/// Visible ASCII, spaces and tabs only: nothing that could end a header line.
fn is_field_value(v: &str) -> bool {
    v.bytes().all(|b| b == b'\t' || (b' '..0x7f).contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cli(args: &[&str]) -> Result<Config, String> {
        let mut argv = vec!["stoke"];
        argv.extend_from_slice(args);
        let cli = Cli::try_parse_from(argv).map_err(|e| e.to_string())?;
        Config::from_cli(cli).map_err(|e| e.to_string())
    }

    #[test]
    fn defaults() {
        let c = cli(&["."]).unwrap();
        assert_eq!(c.listen, vec!["127.0.0.1:8080".parse().unwrap()]);
        assert_eq!(c.max_connections, 10_000);
        assert_eq!(c.max_head, 8192);
        assert_eq!(c.keepalive_timeout, Duration::from_secs(5));
        assert!(c.compress);
        assert!(c.compress_types.contains(&"text/*".to_owned()));
        assert!(c.compress_types.contains(&"image/svg+xml".to_owned()));
        assert_eq!(c.model, Model::Reactor);
    }

    #[test]
    fn compress_flags() {
        assert!(!cli(&[".", "--no-compress"]).unwrap().compress);
        assert!(cli(&[".", "--compress"]).unwrap().compress);
        // The last one wins, so a wrapper's default can be overridden.
        assert!(cli(&[".", "--no-compress", "--compress"]).unwrap().compress);
        assert!(!cli(&[".", "--compress", "--no-compress"]).unwrap().compress);
        let c = cli(&[".", "--compress-types", "Text/HTML, application/*"]).unwrap();
        assert_eq!(c.compress_types, ["text/html", "application/*"]);
    }

    #[test]
    fn model_names_and_the_pool_thread_default() {
        for model in Model::ALL {
            let c = cli(&[".", "--model", model.name()]).unwrap();
            assert_eq!(c.model, model);
        }
        assert_eq!(cli(&[".", "--model", "pool"]).unwrap().threads, 128);
        let c = cli(&[".", "--model", "pool", "--threads", "3"]).unwrap();
        assert_eq!(c.threads, 3);
        assert!(cli(&[".", "--model", "fork"]).is_err());
    }

    #[test]
    fn repeated_listen_and_headers() {
        let c = cli(&[
            ".",
            "-l",
            "127.0.0.1:1",
            "--listen",
            "[::1]:2",
            "--header",
            "X-A: b c",
            "--mime",
            "MD=text/markdown",
        ])
        .unwrap();
        assert_eq!(c.listen.len(), 2);
        assert_eq!(c.headers, vec![("X-A".to_owned(), "b c".to_owned())]);
        assert_eq!(c.mime["md"], "text/markdown");
    }

    /// Regression (`--header` accepted fields stoke writes itself, such as a
    /// second `Content-Length`): every server-managed field is refused in any
    /// case with one line naming it; policy headers still pass.
    #[test]
    fn server_managed_header_fields_are_refused_in_any_case() {
        for name in [
            "Content-Length",
            "content-length",
            "TRANSFER-ENCODING",
            "Trailer",
            "te",
            "Connection",
            "Keep-Alive",
            "Proxy-Connection",
            "Upgrade",
            "Content-Type",
            "Content-Encoding",
            "Content-Range",
            "etag",
            "Last-Modified",
            "Accept-Ranges",
            "Vary",
            "Date",
            "Server",
            "Location",
            "Retry-After",
            "Allow",
        ] {
            let e = cli(&[".", "--header", &format!("{name}: 5")]).unwrap_err();
            assert_eq!(
                e,
                format!("--header {name:?}: stoke writes or controls this field itself")
            );
        }
        for name in [
            "Cache-Control",
            "Strict-Transport-Security",
            "Content-Security-Policy",
            "X-Frame-Options",
            "X-Content-Type-Options",
            "Referrer-Policy",
            "Link",
            "Content-Language",
            "Tear",
            "Dates",
        ] {
            let c = cli(&[".", "--header", &format!("{name}: v")]).unwrap();
            assert_eq!(c.headers, vec![(name.to_owned(), "v".to_owned())]);
        }
    }

    /// A configured value cannot end the header line or carry other control
    /// bytes or non-ASCII: each is refused, not written.
    #[test]
    fn header_values_with_control_characters_are_refused() {
        for value in [
            "a\rb",
            "a\nb",
            "a\r\nX-Evil: 1",
            "a\0b",
            "a\x7fb",
            "a\x1bb",
            "caf\u{e9}",
        ] {
            let e = cli(&[".", "--header", &format!("X-A: {value}")]).unwrap_err();
            assert!(e.contains("expected 'Name: value'"), "{value:?}: {e}");
        }
        let c = cli(&[".", "--header", "X-A: a\tb"]).unwrap();
        assert_eq!(c.headers, vec![("X-A".to_owned(), "a\tb".to_owned())]);
    }

    #[test]
    fn cache_control_flag_and_header_are_not_both_allowed() {
        let e = cli(&[
            ".",
            "--cache-control",
            "max-age=1",
            "--header",
            "cache-control: no-store",
        ])
        .unwrap_err();
        assert!(e.contains("both set Cache-Control"), "{e}");
    }

    /// Regression (`--max-head-size` had no upper bound): a huge head limit
    /// is refused with one line naming the flag and its range.
    #[test]
    fn max_head_size_has_an_upper_bound() {
        let e = cli(&[".", "--max-head-size", "100000000"]).unwrap_err();
        assert_eq!(e, "--max-head-size must be between 256 and 65536 bytes");
        assert_eq!(
            cli(&[".", "--max-head-size", "65536"]).unwrap().max_head,
            65536
        );
    }

    #[test]
    fn tls_only_means_no_default_plain_listener() {
        let c = cli(&[
            ".",
            "--listen-tls",
            "127.0.0.1:8443",
            "--tls-cert",
            "c.pem",
            "--tls-key",
            "k.pem",
            "--redirect-http",
            "127.0.0.1:8080",
        ])
        .unwrap();
        assert_eq!(
            c.listeners(),
            vec![
                ("127.0.0.1:8443".parse().unwrap(), ListenKind::Https),
                (
                    "127.0.0.1:8080".parse().unwrap(),
                    ListenKind::RedirectToHttps
                ),
            ]
        );
    }

    #[test]
    fn mistakes_are_one_line() {
        for args in [
            &["/no/such/dir"][..],
            &["Cargo.toml"],
            &[".", "--threads", "0"],
            &[".", "--reactors", "0"],
            &[".", "--reactors", "100000"],
            &[".", "--header", "bad header"],
            &[".", "--header", "X: a\nb"],
            &[".", "--header", "Content-Length: 5"],
            &[".", "--keepalive-timeout=-1"],
            &[".", "--mime", "md"],
            &[".", "--max-head-size", "100"],
            &[".", "--max-head-size", "1000000000"],
            &[".", "--listen-tls", "127.0.0.1:1"],
            &[".", "--listen-tls", "127.0.0.1:1", "--tls-cert", "c.pem"],
            &[".", "--redirect-http", "127.0.0.1:1"],
            &[".", "--proxy-protocol"],
            &[
                ".",
                "--model",
                "pool",
                "--proxy-protocol",
                "--trusted-proxy",
                "127.0.0.1",
            ],
            &[".", "--compress-types", ""],
            &[".", "--compress-types", "text"],
            &[".", "--compress-types", "text/html,*/x"],
        ] {
            let e = cli(args).unwrap_err();
            assert!(!e.trim().contains('\n'), "{args:?}: {e}");
        }
    }
}
