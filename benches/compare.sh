#!/usr/bin/env bash
# benches/compare.sh — stoke vs lighttpd vs nginx: throughput and CPU efficiency.
#
# Builds stoke (cargo build --release), generates a docroot and server configs
# in a temp dir, runs wrk against each server interleaved, and prints/saves a
# table to bench-results/compare-<timestamp>.txt. All logic is in compare.py;
# see its docstring for the BENCH_* knobs. Example (quick run):
#   BENCH_SECONDS=3 benches/compare.sh
# Servers are always stopped on exit/error/signal (Python atexit + SIGTERM
# handler in benchlib.py, plus the trap below as a backstop).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here/.."   # repo root: cargo build and bench-results/ are relative to it
export PYTHONDONTWRITEBYTECODE=1  # keep benches/ free of __pycache__

# Servers and wrk need plenty of fds. The hard limit may be below 65536 in
# containers (no CAP_SYS_RESOURCE), so fall back to the hard limit.
if ! ulimit -n 65536 2>/dev/null; then
  ulimit -n "$(ulimit -Hn)"
  echo "[bench] note: could not raise fd limit to 65536; using hard limit $(ulimit -n)" >&2
fi

# Backstop: if this shell is killed (TERM/HUP), forward it to the python child,
# which stops the servers it started. Ctrl-C reaches python directly.
child=""
cleanup() { if [ -n "$child" ]; then kill -TERM "$child" 2>/dev/null || true; wait "$child" 2>/dev/null || true; fi; }
trap cleanup TERM HUP

python3 "$here/compare.py" "$@" &
child=$!
set +e
wait "$child"
rc=$?
set -e
child=""
exit "$rc"
