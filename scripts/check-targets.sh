#!/usr/bin/env bash
# `cargo check` for the kqueue platforms, so the macOS/FreeBSD side of
# sys/ (sendfile) and mio's kqueue poller never silently break.
set -euo pipefail
for target in x86_64-apple-darwin x86_64-unknown-freebsd; do
  if ! rustup target list --installed | grep -qx "$target"; then
    rustup target add "$target"
  fi
  echo "== cargo check --target $target"
  cargo check --all-targets --target "$target"
done
