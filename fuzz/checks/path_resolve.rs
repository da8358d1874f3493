//! `path_resolve`: the first byte chooses `allow_hidden`, the rest (lossy
//! UTF-8) is a request path → `stoke::site::url_path::decode`.
//!
//! Invariants: no panic; an accepted path is relative, made of plain names
//! only (no "", ".", "..", no NUL, no '/' inside a name), hides dotfiles
//! unless allowed (".well-known" as first component excepted); `decoded`
//! starts with '/', never holds "//", ends with '/' exactly when
//! `trailing_slash`, and survives a round trip through `encode`.

use std::path::Component;

use stoke::site::url_path::{decode, encode};

pub fn check(data: &[u8]) -> Result<(), String> {
    let Some((&first, rest)) = data.split_first() else {
        return Ok(());
    };
    let allow_hidden = first & 1 == 1;
    let raw = String::from_utf8_lossy(rest);
    check_path(&raw, allow_hidden)
}

pub fn check_path(raw: &str, allow_hidden: bool) -> Result<(), String> {
    let Ok(path) = decode(raw, allow_hidden) else {
        return Ok(());
    };
    let relative = path.relative.to_str().ok_or("relative is not UTF-8")?;
    ensure!(
        !relative.starts_with('/'),
        "absolute relative path {relative:?} from {raw:?}"
    );
    ensure!(!relative.contains('\0'), "NUL in {relative:?} from {raw:?}");
    ensure!(
        path.relative
            .components()
            .all(|c| matches!(c, Component::Normal(_))),
        "non-plain component in {relative:?} from {raw:?}"
    );
    if !relative.is_empty() {
        for (i, name) in relative.split('/').enumerate() {
            ensure!(
                !name.is_empty() && name != "." && name != "..",
                "component {name:?} in {relative:?} from {raw:?}"
            );
            ensure!(
                !name.bytes().any(|b| b < 0x20 || b == 0x7f),
                "control byte in {name:?} from {raw:?}"
            );
            if !allow_hidden {
                ensure!(
                    !name.starts_with('.') || (i == 0 && name == ".well-known"),
                    "hidden component {name:?} in {relative:?} from {raw:?}"
                );
            }
        }
    }
    ensure!(
        path.decoded.starts_with('/'),
        "decoded {:?} from {raw:?}",
        path.decoded
    );
    ensure!(
        !path.decoded.contains("//"),
        "decoded {:?} holds // (from {raw:?})",
        path.decoded
    );
    ensure!(
        path.decoded.ends_with('/') == path.trailing_slash,
        "decoded {:?} vs trailing_slash {} (from {raw:?})",
        path.decoded,
        path.trailing_slash
    );
    let trimmed = path.decoded.trim_start_matches('/').trim_end_matches('/');
    ensure!(
        trimmed == relative,
        "decoded {:?} and relative {relative:?} disagree (from {raw:?})",
        path.decoded
    );
    let round = decode(&encode(&path.decoded), allow_hidden);
    ensure!(
        round.as_ref() == Ok(&path),
        "round trip of {:?} gives {round:?}, not {path:?}",
        path.decoded
    );
    // Decoding is idempotent on what it produces when nothing needs escaping.
    if !path.decoded.contains('%') {
        let again = decode(&path.decoded, allow_hidden);
        ensure!(
            again.as_ref() == Ok(&path),
            "re-decoding {:?} gives {again:?}",
            path.decoded
        );
    }
    Ok(())
}
