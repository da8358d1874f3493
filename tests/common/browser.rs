//! Headless Chromium for the browser tests: find it, run it with a
//! throwaway profile, and kill it if it overruns.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use super::have;

/// How long one Chromium run may take before it is killed.
const CHROMIUM_TIMEOUT: Duration = Duration::from_secs(60);

/// The Chromium binary on PATH, if any.
pub fn chromium() -> Option<PathBuf> {
    for candidate in ["chromium", "chromium-browser", "google-chrome"] {
        if have(candidate) {
            return Some(PathBuf::from(candidate));
        }
    }
    None
}

/// For a browser test: the Chromium binary, or `None` (the test returns)
/// after printing a note; in CI (`CI` set) a missing Chromium is a failure.
pub fn chromium_or_skip() -> Option<PathBuf> {
    let bin = chromium();
    if bin.is_none() {
        if std::env::var_os("CI").is_some() {
            panic!("chromium must be installed in CI");
        }
        println!("SKIPPED: chromium not installed");
    }
    bin
}

/// Runs Chromium headless with `args` and the given profile directory;
/// polls for exit and kills it after [`CHROMIUM_TIMEOUT`].
pub fn run_chromium(bin: &Path, profile: &Path, args: &[String]) -> Output {
    let stdout = profile.join("stdout");
    let stderr = profile.join("stderr");
    let mut child = Command::new(bin)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
        ])
        .arg(format!(
            "--user-data-dir={}",
            profile.join("profile").display()
        ))
        .args(args)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&stdout).unwrap())
        .stderr(std::fs::File::create(&stderr).unwrap())
        .spawn()
        .expect("spawn chromium");
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > CHROMIUM_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "chromium did not finish within {CHROMIUM_TIMEOUT:?}: {}",
                String::from_utf8_lossy(&std::fs::read(&stderr).unwrap_or_default())
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    Output {
        status,
        stdout: std::fs::read(&stdout).unwrap(),
        stderr: std::fs::read(&stderr).unwrap(),
    }
}
