//! `--trace`: the real binary logs each request's stages, in order, with
//! microsecond offsets that never go backwards, naming the stages of the
//! model under test; without `--trace` it logs none of them.
mod common;
use common::*;

use stoke::models::Model;

/// The stages one cache-missing GET goes through, in order, for `model`.
fn stages(model: Model) -> Vec<&'static str> {
    let middle: &[&str] = match model {
        Model::Reactor => &[
            "queued (depth ",
            "taken by worker ",
            "file resolved: cache miss",
            "answer ready (200), completion posted",
            "reactor woken, answer delivered",
        ],
        Model::ReactorInline => &[
            "file work inline, on the reactor",
            "file resolved: cache miss",
            "answer ready (200)",
            "answer delivered",
        ],
        Model::Pool | Model::ThreadPerConnection => &[
            "file work on this thread",
            "file resolved: cache miss",
            "answer ready (200)",
        ],
    };
    let mut all = vec![
        "accepted from 127.0.0.1",
        "first byte",
        "head complete: GET /a.txt HTTP/1.1",
    ];
    all.extend_from_slice(middle);
    all.extend_from_slice(&["first byte written", "last byte written"]);
    all
}

/// Runs one GET against a child started with `args`, stops it with
/// SIGTERM, and returns everything it logged.
fn log_of_one_request(args: &[&str]) -> String {
    let root = TempDir::new("trace");
    root.write("a.txt", "alpha");
    let mut server = ChildServer::start(root.path(), args);
    let r = get(server.addr, "/a.txt", &[]);
    assert_eq!((r.status, r.text().as_str()), (200, "alpha"));
    server.signal(libc::SIGTERM);
    let status = server.child.wait().unwrap();
    assert!(status.success(), "exit status {status}");
    server.rest_of_stderr()
}

#[test]
fn trace_tells_each_stage_of_a_request_in_order() {
    let log = log_of_one_request(&["--trace"]);
    // (stage text, offset in µs), for conn 1's first request.
    let story: Vec<(&str, u64)> = log
        .lines()
        .filter_map(|l| l.split_once("stoke::trace] conn 1 #1 +"))
        .map(|(_, rest)| {
            let (micros, what) = rest.split_once(" µs: ").expect("offset");
            (what, micros.parse().expect("µs"))
        })
        .collect();
    let mut next = 0;
    for want in stages(model()) {
        let found = story[next..]
            .iter()
            .position(|(what, _)| what.starts_with(want));
        let Some(i) = found else {
            panic!("no {want:?} after stage {next} in the trace:\n{log}");
        };
        next += i + 1;
    }
    assert!(
        story.windows(2).all(|w| w[0].1 <= w[1].1),
        "offsets go backwards:\n{log}"
    );
}

#[test]
fn without_trace_no_stage_is_logged() {
    let log = log_of_one_request(&[]);
    assert!(!log.contains("stoke::trace"), "{log}");
    assert!(log.contains("GET /a.txt"), "no access log line:\n{log}");
}
