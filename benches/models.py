#!/usr/bin/env python3
"""`make compare-models`: stoke's concurrency models side by side.

Runs `stoke --model M` for each model (reactor, reactor-inline, pool,
thread-per-connection) at each keep-alive concurrency level (1 … 10,000)
under three workloads, one bounded run per point, models alternating at
each level so drifting background load hits all of them alike:

  cached  wrk -cL on a cached 1 KiB file;
  idle    L idle keep-alive connections (each after one GET) plus 64
          active wrk connections on the 1 KiB file: memory per idle
          connection, thread count, and what the idle ones cost the rest;
  cold    wrk -cL on random files of a data set kept out of the page cache
          (the case a blocking-read pool exists for): the cache is dropped
          before the run, and during it either the server runs under a
          memory limit smaller than the data set (systemd-run --scope -p
          MemoryMax=, when systemd manages this machine) or, failing that,
          the data set's pages are evicted with posix_fadvise(DONTNEED)
          every MODELS_COLD_EVICT_INTERVAL seconds, as memory pressure would.

Per point: requests/s, p50 and p99 latency, requests per server CPU-second
(utime+stime of the process tree), peak RSS, RSS per connection, peak
thread count (/proc/PID/status Threads), errors, CPU per thread group.
A model the binary rejects, or a level it cannot hold, is recorded as a
failure and the run goes on.

Writes a table to stdout and docs/MODELS-results.md, one chart per
workload to docs/models-<workload>.svg, and the raw points to
bench-results/models-<timestamp>.json.

Knobs (defaults; MODELS_QUICK=1 in []):
  MODELS "reactor reactor-inline pool thread-per-connection"
  MODELS_LEVELS "1 4 16 64 256 1024 4096 10000" ["1 64 1024"]
  MODELS_WORKLOADS "cached idle cold"
  MODELS_SECONDS 4 [2]   MODELS_WARMUP 1   MODELS_THREADS 2 (file workers: --threads)
  MODELS_POOL_THREADS 128 (connection threads of --model pool)
  MODELS_WRK_TIMEOUT 10 (s; slower responses count as timeouts)
  MODELS_COLD_MIB 1024 [128] (data set)  MODELS_COLD_FILE_KIB 256
  MODELS_COLD_EVICT drop|fadvise   MODELS_COLD_EVICT_INTERVAL 0.25
  MODELS_MEMORY_MAX 256M (only with systemd-run)
  MODELS_OUT docs/MODELS-results.md   MODELS_SVG_PREFIX docs/models-
  MODELS_NOTE "text"   printed in bold at the top of the results and on the charts
  SKIP_BUILD=1 / STOKE_BIN=path
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib as bl  # noqa: E402

QUICK = bl.env_flag("MODELS_QUICK")
MODELS = bl.env_list("MODELS", "reactor reactor-inline pool thread-per-connection")
LEVELS = [int(x) for x in bl.env_list(
    "MODELS_LEVELS", "1 64 1024" if QUICK else "1 4 16 64 256 1024 4096 10000")]
WORKLOADS = bl.env_list("MODELS_WORKLOADS", "cached idle cold")
SECONDS = bl.env_int("MODELS_SECONDS", 2 if QUICK else 4)
WARMUP = bl.env_int("MODELS_WARMUP", 1)
THREADS = bl.env_int("MODELS_THREADS", bl.env_int("BENCH_WORKERS", 2))
# The `pool` model's --threads are connection threads, not file workers:
# give it its own default (128) so that its keep-alive levels measure the
# pool, not its backlog.
POOL_THREADS = bl.env_int("MODELS_POOL_THREADS", 128)
WRK_TIMEOUT = bl.env_float("MODELS_WRK_TIMEOUT", 10.0)
COLD_MIB = bl.env_int("MODELS_COLD_MIB", 128 if QUICK else 1024)
COLD_FILE_KIB = bl.env_int("MODELS_COLD_FILE_KIB", 256)
COLD_EVICT = os.environ.get("MODELS_COLD_EVICT", "drop")
COLD_EVICT_INTERVAL = bl.env_float("MODELS_COLD_EVICT_INTERVAL", 0.25)
MEMORY_MAX = os.environ.get("MODELS_MEMORY_MAX", "256M")
OUT = bl.REPO / os.environ.get("MODELS_OUT", "docs/MODELS-results.md")
SVG_PREFIX = os.environ.get("MODELS_SVG_PREFIX", "docs/models-")
NOTE = os.environ.get("MODELS_NOTE", "")
SKIP_BUILD = bl.env_flag("SKIP_BUILD")

# Active connections in the idle workload: enough to keep both cores busy.
IDLE_ACTIVE = 64
# Keep-alive timeout: far longer than any point, so idle connections stay.
KEEPALIVE_S = 60
# Above the most connections any point holds (10,000 idle + 64 active).
MAX_CONNECTIONS = bl.MAX_CONNECTIONS
SMALL = "/index.html"

WORKLOAD_TITLES = {
    "cached": "cached 1 KiB file, keep-alive",
    "idle": f"N idle keep-alive connections + {IDLE_ACTIVE} active (1 KiB)",
    "cold": "files kept out of the page cache (random 256 KiB files), keep-alive",
}


def use_systemd_memcg() -> bool:
    """systemd-run --scope needs a running systemd (PID 1)."""
    return bool(bl.which("systemd-run")) and Path("/run/systemd/system").is_dir()


def cold_method(evicted: str) -> str:
    if use_systemd_memcg():
        return (f"server in `systemd-run --scope -p MemoryMax={MEMORY_MAX}` with a "
                f"{COLD_MIB} MiB data set; page cache emptied before each run ({evicted})")
    return (f"{COLD_MIB} MiB data set; page cache emptied before each run "
            f"({evicted}); during the run every file of the data set is evicted "
            f"with posix_fadvise(POSIX_FADV_DONTNEED) every {COLD_EVICT_INTERVAL:g} s "
            "(systemd-run unavailable: PID 1 here is not systemd, and the harness "
            "does not make cgroups of its own in the sandbox's hierarchy)")


class Bench:
    def __init__(self, tmp: Path):
        self.tmp = tmp
        self.root: Path | None = None
        self.cold_files: list[Path] = []
        self.lua = tmp / "done.lua"
        self.lua_cold = tmp / "cold.lua"
        self.points: list[dict] = []
        self.rejected: dict[str, str] = {}  # model -> why
        self.has_model_flag = bl.stoke_has_flag("--model")
        self.commands: dict[str, str] = {}
        self.evicted = ""  # how the page cache was emptied (make_cold's answer)
        self._n = 0

    def show(self, argv: list[str], port: int) -> str:
        """A command line for the report: $PORT and $TMP for the per-run parts."""
        return shlex.join(str(a) for a in argv).replace(str(port), "$PORT") \
            .replace(str(self.tmp), "$TMP")

    def stoke_argv_extra(self, model: str) -> list[str]:
        extra = ["--max-connections", str(MAX_CONNECTIONS),
                 "--keepalive-timeout", str(KEEPALIVE_S), "--shutdown-timeout", "2"]
        if self.has_model_flag:
            return ["--model", model, *extra]
        if model == "reactor":
            return extra  # the only model a binary without --model has
        raise bl.StartError("this stoke binary has no --model flag")

    def start(self, model: str, workload: str) -> bl.Server:
        self._n += 1
        port = bl.free_port()
        threads = POOL_THREADS if model == "pool" else THREADS
        srv = bl.stoke_server(self.root, port, threads,
                              self.tmp / f"{self._n:04d}-{model}",
                              self.stoke_argv_extra(model))
        if workload == "cold" and use_systemd_memcg():
            srv.wrap([bl.which("systemd-run"), "--scope", "--quiet",
                      "-p", f"MemoryMax={MEMORY_MAX}", "--"])
        srv.start(port)
        self.commands[f"stoke ({model})"] = self.show(srv.argv, port)
        return srv


def wrk_cmd(b: Bench, port: int, path: str, conns: int, seconds: float,
            cold: bool = False) -> list[str]:
    return bl.wrk_argv(port, path, conns, seconds, b.lua_cold if cold else b.lua,
                       threads=2, timeout_s=WRK_TIMEOUT)


def fill(point: dict, w: dict, rss_base: int, conns: int) -> None:
    secs = w["secs"] or 1
    point.update({
        "rps": w["requests"] / secs, "p50_us": w["p50_us"], "p99_us": w["p99_us"],
        "req_per_cpu": w["requests"] / w["cpu_s"] if w["cpu_s"] > 0 else None,
        "cpu_pct": 100 * w["cpu_s"] / secs,
        "rss": w["max_rss"], "threads": w["max_threads"],
        "errors": w["errors"], "requests": w["requests"],
        "cpu_split": {k: round(v, 3) for k, v in w.get("cpu_split", {}).items()},
    })
    point.setdefault("rss_per_conn", (w["max_rss"] - rss_base) / conns)
    if w["requests"] == 0:
        point["error"] = f"no responses in {secs:.0f} s ({w['errors']} errors)"
    elif w["errors"]:
        parts = [f"{k} {int(w[k])}" for k in ("connect", "read", "write", "timeout", "status")
                 if w[k]]
        point["note"] = "wrk errors: " + ", ".join(parts)


def run_point(b: Bench, model: str, workload: str, level: int) -> dict:
    point = {"model": model, "workload": workload, "level": level}
    if model in b.rejected:
        point["error"] = b.rejected[model]
        return point
    srv = None
    socks = []
    try:
        try:
            srv = b.start(model, workload)
        except bl.StartError as e:
            # The same binary and flags fail the same way at every level.
            b.rejected[model] = "rejected: " + bl.short_error(e, 240)
            point["error"] = b.rejected[model]
            return point
        bl.sequential_requests(srv.port, SMALL, 10)
        time.sleep(0.2)
        rss_base = bl.tree_rss(srv.pid)
        point["rss_base"] = rss_base
        if workload == "cached":
            if WARMUP > 0:
                bl.run_wrk(wrk_cmd(b, srv.port, SMALL, level, WARMUP), WARMUP)
            argv = wrk_cmd(b, srv.port, SMALL, level, SECONDS)
            b.commands["cached"] = b.show(argv, srv.port)
            fill(point, bl.measure(srv, argv, SECONDS, per_thread=True, sample=True),
                 rss_base, level)
        elif workload == "idle":
            socks = bl.open_idle_connections(srv.port, level, SMALL, deadline_s=120)
            time.sleep(0.5)
            point["rss_per_conn"] = (bl.tree_rss(srv.pid) - rss_base) / level
            point["threads_idle"] = bl.tree_threads(srv.pid)
            if WARMUP > 0:
                bl.run_wrk(wrk_cmd(b, srv.port, SMALL, IDLE_ACTIVE, WARMUP), WARMUP)
            argv = wrk_cmd(b, srv.port, SMALL, IDLE_ACTIVE, SECONDS)
            b.commands["idle"] = (f"python: open N connections, one GET {SMALL} each, "
                                  "keep them idle; then "
                                  + b.show(argv, srv.port))
            fill(point, bl.measure(srv, argv, SECONDS, per_thread=True, sample=True),
                 rss_base, level)
            still = bl.count_open(socks)
            if still < level:
                point["note"] = (point.get("note", "") + f"; server closed {level - still} "
                                 "of the idle connections").lstrip("; ")
        elif workload == "cold":
            b.evicted = bl.make_cold(b.cold_files, COLD_EVICT)
            argv = wrk_cmd(b, srv.port, "/", level, SECONDS, cold=True)
            b.commands["cold"] = b.show(argv, srv.port) + \
                "  # cold.lua: each request a random /cold/fN.bin"
            if use_systemd_memcg():
                w = bl.measure(srv, argv, SECONDS, per_thread=True, sample=True)
            else:
                with bl.ColdKeeper(b.cold_files, COLD_EVICT_INTERVAL):
                    w = bl.measure(srv, argv, SECONDS, per_thread=True, sample=True)
            fill(point, w, rss_base, level)
    except (OSError, RuntimeError, ValueError, subprocess.TimeoutExpired) as e:
        point["error"] = bl.short_error(e, 240)
        if srv is not None and not srv.alive():
            point["error"] += " (server exited)"
    finally:
        bl.close_all(socks)
        if srv is not None:
            srv.stop()
    return point


# --------------------------------------------------------------------------
# output
# --------------------------------------------------------------------------

def fmt_level(n: int) -> str:
    return f"{n // 1000}k" if n >= 1000 and n % 1000 == 0 else f"{n:,}"


def table(b: Bench, header: list[str]) -> str:
    lines = list(header)
    for wl in WORKLOADS:
        lines += ["", f"### {wl}: {WORKLOAD_TITLES[wl]}", "",
                  "| model | conns | req/s | p50 | p99 | req/CPU-s | RSS | RSS/conn "
                  "| threads | errors | CPU by thread | note |",
                  "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|---|"]
        if wl == "idle":
            lines[-2] = lines[-2].replace("| conns |", "| idle conns |")
        for model in MODELS:
            if model in b.rejected:
                lines.append(f"| {model} | all | rejected by the binary | | | | | | | | | "
                             f"{b.rejected[model]} |")
                continue
            for p in (p for p in b.points if p["workload"] == wl and p["model"] == model):
                if "rps" not in p:
                    lines.append(f"| {model} | {p['level']:,} | failed | | | | | | | | | "
                                 f"{p.get('error', '?')} |")
                    continue
                split = p.get("cpu_split") or {}
                tot = sum(split.values())
                split_s = ", ".join(f"{k} {100 * v / tot:.0f}%" for k, v in
                                    sorted(split.items(), key=lambda kv: -kv[1])[:3]) \
                    if tot > 0 else ""
                note = "; ".join(x for x in (p.get("error"), p.get("note")) if x)
                lines.append(
                    f"| {model} | {p['level']:,} | {bl.fmt_num(p['rps'])} | "
                    f"{bl.fmt_ms(p['p50_us'])} | {bl.fmt_ms(p['p99_us'])} | "
                    f"{bl.fmt_num(p['req_per_cpu'])} | {bl.fmt_bytes(p['rss'])} | "
                    f"{bl.fmt_bytes(p['rss_per_conn'])} | {p['threads']} | {p['errors']} | "
                    f"{split_s} | {note} |")
    if b.rejected:
        lines += ["", "Models the binary rejected (every point of theirs is a failure):"]
        lines += [f"- {m}: {why}" for m, why in b.rejected.items()]
    lines += ["", "Commands ($PORT: a free loopback port; $TMP: the run's temp dir, with "
              "docroot/ and the wrk scripts):", "", "```sh"]
    lines += [f"# {k}\n{v}" for k, v in b.commands.items()]
    lines += ["```", ""]
    return "\n".join(lines)


def charts(b: Bench, footer: str) -> list[str]:
    """One SVG per workload; returns the files written (or why not)."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.ticker import (FixedFormatter, FixedLocator, FuncFormatter,
                                       NullLocator)
    except ImportError:
        return ["no charts: matplotlib not installed (make bench-deps)"]
    plt.rcParams["svg.hashsalt"] = "stoke-models"  # stable ids: smaller diffs
    plt.rcParams["svg.fonttype"] = "none"  # text as text, not glyph paths: a smaller file
    written = []
    for wl in WORKLOADS:
        fig, axes = plt.subplots(2, 2, figsize=(11, 8), sharex=True)
        (ax_tp, ax_p99), (ax_mem, ax_eff) = axes
        ax_thr = ax_mem.twinx()
        for i, model in enumerate(MODELS):
            pts = sorted((p for p in b.points if p["workload"] == wl and p["model"] == model),
                         key=lambda p: p["level"])
            ok = [p for p in pts if "rps" in p and not p.get("error")]
            failed = [p for p in pts if p not in ok]
            color = f"C{i}"
            label = model
            if not ok and model in b.rejected:
                label += " (rejected by the binary)"
            elif failed:
                label += f" (failed at {', '.join(fmt_level(p['level']) for p in failed)})"
            xs = [p["level"] for p in ok]

            def line(ax, key, scale=1.0, style="-", lab=label):
                ys = [(p[key] * scale if p.get(key) is not None else float("nan")) for p in ok]
                ax.plot(xs, ys, style, marker="o", markersize=3, color=color, label=lab)

            line(ax_tp, "rps")
            line(ax_p99, "p99_us", 1e-3)
            line(ax_mem, "rss", 1 / bl.MIB)
            line(ax_thr, "threads", style="--", lab=None)
            line(ax_eff, "req_per_cpu")  # (an empty line still gets its legend entry)
        ax_tp.set_title("throughput (requests/s)", fontsize=10)
        ax_p99.set_title("p99 latency (ms, log)", fontsize=10)
        ax_p99.set_yscale("log")
        ax_mem.set_title("peak RSS (MiB, solid) and threads (dashed, right); log", fontsize=10)
        ax_mem.set_yscale("log")
        ax_thr.set_yscale("log")
        ax_thr.set_ylabel("threads")
        ax_eff.set_title("requests per server CPU-second", fontsize=10)
        xlabel = "idle keep-alive connections (log)" if wl == "idle" else \
            "keep-alive connections (log)"
        for ax in (ax_tp, ax_p99, ax_mem, ax_eff):
            ax.set_xscale("log")
            ax.xaxis.set_major_locator(FixedLocator(LEVELS))
            ax.xaxis.set_major_formatter(FixedFormatter([fmt_level(n) for n in LEVELS]))
            ax.xaxis.set_minor_locator(NullLocator())
            ax.grid(alpha=0.3)
        for ax in (ax_mem, ax_eff):
            ax.set_xlabel(xlabel)
        for ax in (ax_tp, ax_eff):
            ax.set_ylim(bottom=0)
        # Log axes: plain numbers (6, not 6×10⁰); on an axis spanning more than
        # a decade only the 2× and 5× minor ticks get a label.
        plain = FuncFormatter(lambda v, _pos: f"{v:g}")
        for ax in (ax_p99, ax_mem, ax_thr):
            lo, hi = ax.get_ylim()
            wide = lo > 0 and hi / lo > 10
            ax.yaxis.set_major_formatter(plain)
            ax.yaxis.set_minor_formatter(FuncFormatter(
                lambda v, _pos, wide=wide: "" if wide and f"{v:e}"[0] not in "25"
                else f"{v:g}"))
        ax_tp.legend(fontsize=7, loc="best")
        fig.suptitle((f"{NOTE} — " if NOTE else "")
                     + f"stoke concurrency models — {WORKLOAD_TITLES[wl]}", fontsize=11)
        fig.text(0.01, 0.005, footer, fontsize=7, wrap=True)
        fig.tight_layout(rect=(0, 0.04, 1, 0.97))
        path = bl.REPO / f"{SVG_PREFIX}{wl}.svg"
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, **({"metadata": {"Date": None}} if path.suffix == ".svg" else {}))
        plt.close(fig)
        written.append(os.path.relpath(path, bl.REPO))
    return written


def main() -> int:
    bl.install_cleanup()
    started = time.time()
    fdlim = bl.raise_nofile()
    for wl in WORKLOADS:
        if wl not in WORKLOAD_TITLES:
            sys.exit(f"unknown workload {wl!r} in MODELS_WORKLOADS")
    if not bl.which("wrk"):
        sys.exit("wrk not found: run make bench-deps")
    need = max(LEVELS) + IDLE_ACTIVE + 200
    if fdlim < need:
        bl.log(f"note: fd limit {fdlim} < {need}: the top levels will fail for lack of fds")
    why = bl.build_stoke(SKIP_BUILD)
    if why:
        sys.exit(f"stoke: {why}")
    tmp = Path(tempfile.mkdtemp(prefix="stoke-models-"))
    b = Bench(tmp)
    load_before = bl.loadavg()
    try:
        files = {"index.html": 1024}
        n_cold = max(1, COLD_MIB * 1024 // COLD_FILE_KIB)
        if "cold" in WORKLOADS:
            files.update({f"cold/f{i}.bin": COLD_FILE_KIB * 1024 for i in range(1, n_cold + 1)})
        bl.log(f"writing the docroot ({sum(files.values()) / bl.MIB:.0f} MiB) under {tmp}")
        b.root = bl.make_tree(tmp, files)
        b.cold_files = sorted((b.root / "cold").glob("f*.bin")) if "cold" in WORKLOADS else []
        b.lua.write_text(bl.WRK_DONE_LUA)
        b.lua_cold.write_text(bl.wrk_random_paths_lua("/cold/f", n_cold, ".bin"))
        if not b.has_model_flag:
            bl.log("this stoke has no --model flag: reactor runs without it, the other "
                   "models are recorded as rejected")
        total = len(WORKLOADS) * len(LEVELS) * len(MODELS)
        n = 0
        for wl in WORKLOADS:
            for level in LEVELS:
                for model in MODELS:
                    n += 1
                    if model not in b.rejected:
                        bl.log(f"[{n}/{total}] {wl} {model} at {level} "
                               f"(load {bl.loadavg()})")
                    p = run_point(b, model, wl, level)
                    if p.get("error"):
                        bl.log(f"  {model} {wl} {level}: {p['error']}")
                    b.points.append(p)
        m = bl.machine()
        cmd = " ".join([f"{k}={shlex.quote(v)}" for k, v in sorted(os.environ.items())
                        if k.startswith("MODELS") or k == "STOKE_BIN"] + ["make compare-models"])
        elapsed = (time.time() - started) / 60
        header = [
            "## Concurrency models: measured", "",
            *([f"**{NOTE}**", ""] if NOTE else []),
            f"Generated by `{cmd}` (benches/models.py) on "
            f"{time.strftime('%Y-%m-%d %H:%M %Z')} in {elapsed:.1f} minutes"
            + (" — MODELS_QUICK=1 smoke run, not figures to quote." if QUICK else "."), "",
            f"- machine: `nproc` {m['nproc']}, {m['cpu']}, {m['memory']}, kernel {m['kernel']}; "
            f"load average before {load_before}, after {bl.loadavg()}",
            f"- stoke: {bl.stoke_version()}; `--threads {THREADS}` (file workers; "
            f"`--threads {POOL_THREADS}` connection threads for `pool`); "
            f"`RUST_LOG=warn --max-connections {MAX_CONNECTIONS} --keepalive-timeout "
            f"{KEEPALIVE_S}`" + ("" if b.has_model_flag else
                                 "; this binary has no `--model`, so `reactor` ran "
                                 "without the flag (it is the only model it has)"),
            f"- each point: a fresh server, {WARMUP} s warm-up (not for cold), one "
            f"{SECONDS} s wrk run (`-t2`, `--timeout {WRK_TIMEOUT:g}s`); models alternate "
            "at each level. RSS = peak VmRSS of the server during the run; RSS/conn = "
            "(peak − RSS after 10 warm-up requests) / connections (idle: measured with the "
            "idle connections open, before the active load). threads = peak "
            "/proc/PID/status Threads. CPU = utime+stime of the process tree.",
            *([f"- cold: {cold_method(b.evicted)}."] if "cold" in WORKLOADS else []),
            f"- fd limit {fdlim} (hard limit; servers and wrk inherit it).",
        ]
        # Raw points first: a chart problem must not lose the measurements.
        outdir = bl.REPO / "bench-results"
        outdir.mkdir(exist_ok=True)
        raw = outdir / f"models-{time.strftime('%Y%m%d-%H%M%S')}.json"
        raw.write_text(json.dumps({"points": b.points, "rejected": b.rejected,
                                   "commands": b.commands}, indent=1))
        text = table(b, header)
        footer = (f"{m['nproc']} CPUs, {m['cpu']}, kernel {m['kernel']}; pool size "
                  f"--threads {THREADS} (pool model: {POOL_THREADS}); {SECONDS} s per point; `{cmd}`")
        try:
            written = charts(b, footer)
        except Exception as e:  # noqa: BLE001 - report it, keep the table
            written = [f"no charts: {type(e).__name__}: {e}"]
        text += "\nCharts: " + ", ".join(f"`{w}`" for w in written) + "\n"
        print(text)
        OUT.parent.mkdir(parents=True, exist_ok=True)
        OUT.write_text(text)
        bl.log(f"wrote {OUT}, {', '.join(written)}, {raw} in {elapsed:.1f} min")
        return 0
    finally:
        bl.stop_all()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
