#!/usr/bin/env bash
# HTTPS requests per server CPU-second, stoke vs nginx: now the `https`
# section of benches/bench.py (same ECDSA P-256 certificate made by openssl,
# wrk keep-alive and `Connection: close`, `openssl s_time -new`). This is a
# thin wrapper that runs that section alone into bench-results/https.md.
#
#   scripts/bench-https.sh            (BENCH_QUICK=1, BENCH_SECONDS=… work too)
# Needs: a release build (cargo build --release), nginx, wrk, openssl.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p bench-results
exec env PYTHONDONTWRITEBYTECODE=1 SKIP_BUILD=1 BENCH_SECTIONS=https \
  BENCH_SERVERS="${BENCH_SERVERS:-stoke nginx}" \
  BENCH_OUT="${BENCH_OUT:-bench-results/https.md}" \
  BENCH_SVG="${BENCH_SVG:-bench-results/https.svg}" python3 benches/bench.py
