#!/usr/bin/env bash
# benches/idle.sh — idle CPU and memory per idle keep-alive connection.
#
# Builds stoke (cargo build --release; SKIP_BUILD=1 to skip), starts it with
# --keepalive-timeout 60, measures idle CPU over 5 s, then parks 1000
# keep-alive connections (one GET each) and reports the VmRSS delta per
# connection. nginx and lighttpd are measured the same way for comparison.
# Logic lives in idle.py (knobs: IDLE_CONNS, IDLE_SECONDS, BENCH_WORKERS,
# IDLE_SERVERS). Example:  IDLE_CONNS=2000 benches/idle.sh
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here/.."   # repo root
export PYTHONDONTWRITEBYTECODE=1  # keep benches/ free of __pycache__

# The servers are started from this shell's limits: ask for 65536 fds. In
# containers the hard limit may be lower (and not raisable): use the max.
if ! ulimit -n 65536 2>/dev/null; then
  ulimit -n "$(ulimit -Hn)"
  echo "[idle] note: could not raise fd limit to 65536; using hard limit $(ulimit -n)" >&2
fi

# Backstop: forward TERM/HUP to the python child, which stops its servers.
child=""
cleanup() { if [ -n "$child" ]; then kill -TERM "$child" 2>/dev/null || true; wait "$child" 2>/dev/null || true; fi; }
trap cleanup TERM HUP

python3 "$here/idle.py" "$@" &
child=$!
set +e
wait "$child"
rc=$?
set -e
child=""
exit "$rc"
