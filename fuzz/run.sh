#!/usr/bin/env bash
# Runs the cargo-fuzz targets: all of them, or the one named in $1.
#   FUZZ_SECONDS  seconds per target (default 60)
#   SANITIZER     none (default, stable toolchain) or address (ASan; uses
#                 RUSTC_BOOTSTRAP=1 so the stable toolchain accepts -Zsanitizer)
#   FUZZ_JOBS     libFuzzer -fork jobs (default 1)
#   STOKE_FUZZ_IGNORE  known findings to look past (see fuzz/checks/connection.rs)
# The committed seeds in fuzz/corpus/<target> are copied to a scratch corpus
# so new entries never land in the repository. Exits non-zero on any crash,
# printing where the reproducer was saved.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
cd "$here"
seconds="${FUZZ_SECONDS:-60}"
sanitizer="${SANITIZER:-none}"
all_targets=(request_head range_header path_resolve connection)
targets=("${@:-${all_targets[@]}}")

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "==> installing cargo-fuzz" >&2
    cargo install --locked cargo-fuzz
fi
case "$sanitizer" in
    none) ;;
    address|leak|memory|thread) export RUSTC_BOOTSTRAP=1 ;;
    *) echo "unknown SANITIZER=$sanitizer" >&2; exit 2 ;;
esac

work="$(mktemp -d "${TMPDIR:-/tmp}/stoke-fuzz.XXXXXX")"
trap 'rm -rf "$work"' EXIT
failed=()
for t in "${targets[@]}"; do
    if [[ ! -f "fuzz_targets/$t.rs" ]]; then
        echo "unknown target '$t' (have: ${all_targets[*]})" >&2
        exit 2
    fi
    corpus="$work/$t"
    mkdir -p "$corpus" "artifacts/$t"
    cp -r "corpus/$t/." "$corpus/"
    seeds=$(find "$corpus" -type f | wc -l)
    dict=()
    [[ "$t" == request_head || "$t" == connection ]] && dict=(-dict="$here/http.dict")
    echo "==> $t: ${seconds}s, sanitizer=$sanitizer, $seeds seeds"
    set +e
    cargo fuzz run --sanitizer "$sanitizer" "$t" "$corpus" -- \
        -max_total_time="$seconds" -print_final_stats=1 -timeout=10 \
        -rss_limit_mb=2048 -artifact_prefix="$here/artifacts/$t/" "${dict[@]}" \
        2>&1 | tee "$work/$t.log" | grep -E --line-buffered \
            '#[0-9]+ *(INITED|DONE|pulse)|panicked|invariant violated|ERROR|SUMMARY|Test unit written|stat::'
    status=${PIPESTATUS[0]}
    set -e
    now=$(find "$corpus" -type f | wc -l)
    last=$(grep -E '^#[0-9]+' "$work/$t.log" | tail -1 || true)
    echo "==> $t: exit $status; corpus $seeds -> $now (+$((now - seeds)) new, not committed); last: $last"
    if [[ $status -ne 0 ]]; then
        artifact=$(grep -oE 'Test unit written to [^ ]+' "$work/$t.log" | tail -1 | cut -d' ' -f5- || true)
        echo "!!! $t FAILED; reproducer: ${artifact:-see artifacts/$t/}" >&2
        echo "    replay: cargo fuzz run $t ${artifact:-<file>}; save it under fuzz/regressions/$t/" >&2
        failed+=("$t")
    fi
done
if ((${#failed[@]})); then
    echo "crashes in: ${failed[*]}" >&2
    exit 1
fi
echo "all targets clean"
