//! The small-file cache is invisible from outside: a warm server answers
//! exactly what a fresh resolution would. A symlink that was served from
//! the cache and is then re-pointed outside the root, or at a dotfile, gets
//! the answer a cold server gives (404 outside the root), never the cached
//! bytes nor the new target's.
mod common;
use common::*;

use std::fs;
use std::os::unix::fs::symlink;
use std::path::Path;

/// Re-points the symlink `link` at `target` atomically (a new link renamed
/// over the old), as a deploy would.
fn repoint(link: &Path, target: &str) {
    let tmp = link.with_extension("tmp-link");
    let _ = fs::remove_file(&tmp);
    symlink(target, &tmp).unwrap();
    fs::rename(&tmp, link).unwrap();
}

#[test]
fn a_cached_link_repointed_outside_or_to_a_dotfile_answers_as_a_fresh_resolution() {
    let base = TempDir::new("cache-repoint");
    base.write("outside/secret.txt", "outside secret");
    base.write("root/inside.txt", "inside bytes");
    base.write("root/.hidden.txt", "hidden secret");
    let root = base.path().join("root");
    let link = root.join("link.txt");
    symlink("inside.txt", &link).unwrap();
    let warm = TestServer::start(&root);
    let warm_up = |what: &str| {
        repoint(&link, "inside.txt");
        for _ in 0..3 {
            let r = get(warm.addr, "/link.txt", &[]);
            assert_eq!(
                (r.status, r.text().as_str()),
                (200, "inside bytes"),
                "{what}"
            );
        }
    };

    // Outside the root: the link now leads out, so it is not found.
    warm_up("before outside");
    repoint(&link, "../outside/secret.txt");
    let r = get(warm.addr, "/link.txt", &[]);
    assert_eq!(r.status, 404, "{}", r.head);
    assert!(!r.text().contains("secret") && !r.text().contains("inside"));
    let r = get(warm.addr, "/link.txt", &[]);
    assert_eq!(r.status, 404, "and stays so");

    // At a dotfile: whatever the hidden-file policy says for a link to a
    // dotfile, the warm server says the same as one that never cached it,
    // and never the cached bytes.
    warm_up("before dotfile");
    repoint(&link, ".hidden.txt");
    let warm_answer = get(warm.addr, "/link.txt", &[]);
    let cold = TestServer::start(&root);
    let cold_answer = get(cold.addr, "/link.txt", &[]);
    assert_eq!(
        (warm_answer.status, &warm_answer.body),
        (cold_answer.status, &cold_answer.body),
        "warm and cold servers disagree"
    );
    assert!(!warm_answer.text().contains("inside bytes"));
}
