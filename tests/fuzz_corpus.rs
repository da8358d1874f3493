//! Replays the committed fuzz seeds (fuzz/corpus/<target>/) and saved crash
//! inputs (fuzz/regressions/<target>/) through the same invariant checks the
//! libFuzzer targets run (fuzz/checks/), on stable, under plain `cargo test`.
//! `make fuzz` / `./fuzz/run.sh` does the actual fuzzing.

use std::fs;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};

#[path = "../fuzz/checks/mod.rs"]
mod checks;

/// Regressions that still fail because the fix in src/ has not landed yet:
/// (target, file name, why). Remove the entry once fixed.
const KNOWN_UNFIXED: &[(&str, &str, &str)] = &[];

fn files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| !n.starts_with('.') && n != "README.md")
        })
        .collect();
    files.sort();
    files
}

fn replay(target: &str, check: fn(&[u8]) -> Result<(), String>) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let corpus = files(&root.join("corpus").join(target));
    assert!(!corpus.is_empty(), "no seeds in fuzz/corpus/{target}");
    let regressions = files(&root.join("regressions").join(target));
    let mut failures = Vec::new();
    let mut skipped = Vec::new();
    for file in corpus.iter().chain(&regressions) {
        let name = file.file_name().and_then(|n| n.to_str()).unwrap_or("?");
        if let Some((_, _, why)) = KNOWN_UNFIXED
            .iter()
            .find(|(t, f, _)| *t == target && *f == name)
        {
            skipped.push(format!("{}: {why}", file.display()));
            continue;
        }
        let data = fs::read(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        match panic::catch_unwind(AssertUnwindSafe(|| check(&data))) {
            Ok(Ok(())) => {}
            Ok(Err(violation)) => failures.push(format!("{}: {violation}", file.display())),
            Err(payload) => {
                let msg = payload
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                failures.push(format!("{}: panicked: {msg}", file.display()));
            }
        }
    }
    for s in &skipped {
        eprintln!("SKIPPED (known, not yet fixed in src/): {s}");
    }
    assert!(
        failures.is_empty(),
        "{target}: {} of {} inputs fail:\n{}",
        failures.len(),
        corpus.len() + regressions.len(),
        failures.join("\n")
    );
}

#[test]
fn request_head_corpus() {
    replay("request_head", checks::request_head::check);
}

#[test]
fn range_header_corpus() {
    replay("range_header", checks::range_header::check);
}

#[test]
fn path_resolve_corpus() {
    replay("path_resolve", checks::path_resolve::check);
}

#[test]
fn connection_corpus() {
    replay("connection", checks::connection::check);
}
