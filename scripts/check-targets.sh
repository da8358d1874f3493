#!/usr/bin/env bash
# `cargo check` for the kqueue platforms, so the macOS/FreeBSD side of
# sys/ (sendfile) and mio's kqueue poller never silently break.
set -euo pipefail
# C code in -sys crates (ring for TLS, zstd-sys) needs a C compiler for the
# target even under `cargo check`; nothing is linked, so a stub will do.
stub="$(cd "$(dirname "$0")" && pwd)/cross-stub/cc"
for target in x86_64-apple-darwin x86_64-unknown-freebsd; do
  if ! rustup target list --installed | grep -qx "$target"; then
    rustup target add "$target"
  fi
  echo "== cargo check --target $target"
  cc_var="CC_${target//-/_}"
  env "$cc_var=$stub" cargo check --all-targets --target "$target"
done
