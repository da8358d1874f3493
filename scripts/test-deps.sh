#!/usr/bin/env bash
# Installs what the integration tests drive, when it is missing: curl, wget,
# python3 (http.client), Chromium (the directory-listing and HTTPS browser
# tests), openssl (s_client protocol checks) and HAProxy (the load-balancer
# test).
# Idempotent; apt-get runs only if something is missing.
set -euo pipefail

missing=()
command -v curl >/dev/null || missing+=(curl)
command -v wget >/dev/null || missing+=(wget)
command -v python3 >/dev/null || missing+=(python3)
command -v chromium >/dev/null || missing+=(chromium)
command -v openssl >/dev/null || missing+=(openssl)
command -v haproxy >/dev/null || missing+=(haproxy)

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" != 0 ] && ! command -v sudo >/dev/null; then
  echo "test-deps: missing ${missing[*]} and cannot install (not root, no sudo)" >&2
  # Outside CI the tests that need them say they were skipped; under CI they fail.
  [ -n "${CI:-}" ] && exit 1 || exit 0
fi
SUDO=""
[ "$(id -u)" != 0 ] && SUDO=sudo
echo "test-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
