//! The `stoke` command: parse the command line, start the server, turn any
//! failure into one line on stderr and a non-zero exit.
//!
//! Runs on: the main thread, which becomes the reactor (or, for the
//! blocking models, the thread that accepts or waits for shutdown).

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;
use stoke::config::ListenKind;
use stoke::{Cli, Config, Server};

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return cli_error(e),
    };
    init_logging(cli.trace);
    let config = match Config::from_cli(cli) {
        Ok(config) => config,
        Err(e) => return fail(&e),
    };
    let root = config.root.clone();
    let mut server = match Server::bind(config) {
        Ok(server) => server,
        Err(e) => return fail(&e),
    };
    if let Err(e) = server.handle_signals() {
        return fail(&format!("cannot install signal handlers: {e}"));
    }
    for (addr, kind) in server.listeners() {
        let (scheme, what) = match kind {
            ListenKind::Http => ("http", "serving"),
            ListenKind::Https => ("https", "serving"),
            ListenKind::RedirectToHttps => ("http", "redirecting to https"),
        };
        log::info!("{what} {} on {scheme}://{addr}/", root.display());
    }
    match server.run() {
        Ok(summary) => {
            let mut cut = String::new();
            if summary.cut_off > 0 {
                let when = if summary.forced {
                    "by a second signal"
                } else {
                    "at the deadline"
                };
                cut += &format!(", {} connections cut off {when}", summary.cut_off);
            }
            if summary.dropped_jobs > 0 {
                cut += &format!(", {} queued requests dropped", summary.dropped_jobs);
            }
            if summary.busy_workers > 0 {
                cut += &format!(", {} workers still busy", summary.busy_workers);
            }
            log::info!(
                "shut down: {} requests on {} connections{cut}",
                summary.requests,
                summary.connections,
            );
            ExitCode::SUCCESS
        }
        Err(e) => fail(&format!("server failed: {e}")),
    }
}

/// `--help` and `--version` print as clap formats them; a mistake becomes
/// one line (clap's first), not clap's multi-line usage block.
fn cli_error(e: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
        let _ = e.print();
        return ExitCode::SUCCESS;
    }
    let text = e.to_string();
    let first = text.lines().next().unwrap_or("invalid arguments");
    let first = first.strip_prefix("error: ").unwrap_or(first);
    eprintln!("stoke: {first} (see stoke --help)");
    ExitCode::from(2)
}

fn fail(e: &dyn std::fmt::Display) -> ExitCode {
    eprintln!("stoke: {e}");
    ExitCode::FAILURE
}

/// `RUST_LOG` decides what is logged (default: `info`, which includes the
/// access log); `--trace` adds the trace lines. Lines carry a UTC timestamp,
/// the level and the target.
fn init_logging(trace: bool) {
    let mut builder =
        env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"));
    if trace {
        builder.filter_module(stoke::trace::TARGET, log::LevelFilter::Debug);
    }
    builder
        .format(|buf, record| {
            if record.target() == stoke::access_log::TARGET {
                // Access lines are Combined Log Format already, time included.
                writeln!(buf, "{}", record.args())
            } else {
                stoke::http::date::with_imf_fixdate_now(|now| {
                    writeln!(
                        buf,
                        "[{now} {} {}] {}",
                        record.level(),
                        record.target(),
                        record.args()
                    )
                })
            }
        })
        .init();
}
