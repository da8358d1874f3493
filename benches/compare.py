#!/usr/bin/env python3
"""Throughput + CPU-efficiency comparison: stoke vs lighttpd vs nginx.

Normally run via benches/compare.sh (which raises the fd limit first).

For every file in BENCH_FILES and every server, runs
    wrk -t$BENCH_WRK_THREADS -c$BENCH_CONNECTIONS -d${BENCH_SECONDS}s
and samples utime+stime of the server's whole process tree (master + all
workers/threads) from /proc just before and just after wrk. Because wrk
and the servers share the same (few, noisy) cores, raw requests/s mostly
measures who wins the CPU fight; requests (or bytes) per server
CPU-second is the fair efficiency figure, and the ratios are based on it.

Servers run interleaved: for each round, for each file: stoke, lighttpd,
nginx — so drifting background load hits all of them alike.

Environment knobs (defaults in brackets):
  BENCH_SECONDS [10]      wrk duration per (server, file, round)
  BENCH_WARMUP [1]        un-measured wrk warm-up seconds before each run (0=off)
  BENCH_ROUNDS [1]        interleaved rounds; results are summed over rounds
  BENCH_WORKERS [2]       stoke --threads = nginx worker_processes = lighttpd max-worker
  BENCH_CONNECTIONS [64]  wrk -c
  BENCH_WRK_THREADS [2]   wrk -t
  BENCH_FILES ["small.bin large.bin"]  any of: small.bin 1k.html large.bin
  BENCH_SERVERS ["stoke lighttpd nginx"]
  SKIP_BUILD [0]          1 = don't run cargo build --release
  STOKE_REQUIRED [0]      1 = fail (exit 1) instead of skipping stoke
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib as bl  # noqa: E402

SECONDS = bl.env_int("BENCH_SECONDS", 10)
WARMUP = bl.env_int("BENCH_WARMUP", 1)
ROUNDS = bl.env_int("BENCH_ROUNDS", 1)
WORKERS = bl.env_int("BENCH_WORKERS", 2)
CONNS = bl.env_int("BENCH_CONNECTIONS", 64)
WRK_THREADS = bl.env_int("BENCH_WRK_THREADS", 2)
FILES = os.environ.get("BENCH_FILES", "small.bin large.bin").split()
SERVERS = os.environ.get("BENCH_SERVERS", "stoke lighttpd nginx").split()
SKIP_BUILD = os.environ.get("SKIP_BUILD", "0") == "1"
STOKE_REQUIRED = os.environ.get("STOKE_REQUIRED", "0") == "1"

# wrk's Lua done() hook gives exact counters (no parsing of "1.23MB").
# Only done() is defined, so wrk keeps its fast non-scripted request path.
WRK_LUA = r"""
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests":%.0f,"bytes":%.0f,"duration_us":%.0f,' ..
    '"connect":%.0f,"read":%.0f,"write":%.0f,"status":%.0f,"timeout":%.0f,' ..
    '"lat_p50_us":%.0f,"lat_p99_us":%.0f}\n',
    summary.requests, summary.bytes, summary.duration,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
"""


@dataclass
class Result:
    server: str
    file: str
    requests: int = 0
    bytes: int = 0
    duration: float = 0.0      # seconds, as measured by wrk
    cpu: float = 0.0           # server CPU-seconds (utime+stime, whole tree)
    errors: int = 0            # non-2xx/3xx + socket errors (connect/read/write/timeout)
    p50_ms: list[float] = field(default_factory=list)
    p99_ms: list[float] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def rps(self) -> float:
        return self.requests / self.duration if self.duration else 0.0

    @property
    def bps(self) -> float:
        return self.bytes / self.duration if self.duration else 0.0

    @property
    def req_per_cpu(self) -> float | None:
        return self.requests / self.cpu if self.cpu > 0 else None

    @property
    def bytes_per_cpu(self) -> float | None:
        return self.bytes / self.cpu if self.cpu > 0 else None


def run_wrk(port: int, path: str, seconds: int, lua: Path) -> dict:
    argv = [bl.which("wrk") or "wrk", f"-t{WRK_THREADS}", f"-c{CONNS}",
            f"-d{seconds}s", "-s", str(lua), f"http://127.0.0.1:{port}/{path}"]
    # Hard bound on top of -d, in case wrk wedges.
    out = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 30)
    for line in out.stdout.splitlines():
        if line.startswith("WRKJSON "):
            return json.loads(line[len("WRKJSON "):])
    raise RuntimeError(f"wrk failed (status {out.returncode}):\n{out.stdout}\n{out.stderr}")


def sanity_check(srv: bl.Server, root: Path, files: list[str]) -> None:
    """Each server must return 200 and the exact bytes of each file, or its
    numbers would be meaningless (e.g. fast 404s)."""
    for name in files:
        status, body = bl.http_get(srv.port, "/" + name)
        want = (root / name).read_bytes()
        if status != 200 or body != want:
            raise bl.StartError(
                f"{srv.name}: GET /{name} -> {status}, {len(body)} bytes "
                f"(expected 200, {len(want)} bytes)")


def fmt_rate(x: float | None, unit: str = "") -> str:
    if x is None:
        return "n/a"
    for suffix, div in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(x) >= div:
            return f"{x / div:.2f}{suffix}{unit}"
    return f"{x:.1f}{unit}"


def fmt_bytes(x: float | None) -> str:
    if x is None:
        return "n/a"
    for suffix, div in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if abs(x) >= div:
            return f"{x / div:.2f}{suffix}"
    return f"{x:.0f}B"


def ratio(a: float | None, b: float | None) -> str:
    if a is None or b is None or b == 0:
        return "n/a"
    return f"{a / b:.2f}x"


def report(results: dict[tuple[str, str], Result], skipped: dict[str, str],
           header: list[str]) -> str:
    lines = list(header)
    lines.append("")
    cols = ("server", "file", "req/s", "transfer/s", "cpu-s", "cpu%",
            "req/cpu-s", "bytes/cpu-s", "errors", "p50", "p99")
    rows = []
    for (srv, fname), r in results.items():
        wall = r.duration or 1
        rows.append((
            srv, fname, fmt_rate(r.rps), fmt_bytes(r.bps) + "/s",
            f"{r.cpu:.2f}", f"{100 * r.cpu / wall:.0f}%",
            fmt_rate(r.req_per_cpu), fmt_bytes(r.bytes_per_cpu),
            str(r.errors),
            f"{sum(r.p50_ms) / len(r.p50_ms):.2f}ms" if r.p50_ms else "-",
            f"{max(r.p99_ms):.2f}ms" if r.p99_ms else "-",
        ))
    widths = [max(len(c), *(len(row[i]) for row in rows)) if rows else len(c)
              for i, c in enumerate(cols)]
    fmt = "  ".join(f"{{:<{w}}}" if i < 2 else f"{{:>{w}}}" for i, w in enumerate(widths))
    lines.append(fmt.format(*cols))
    lines.append("  ".join("-" * w for w in widths))
    for row in rows:
        lines.append(fmt.format(*row))
    for r in results.values():
        for note in r.notes:
            lines.append(f"  note: {r.server}/{r.file}: {note}")
    for srv, why in skipped.items():
        short = " | ".join(l.strip() for l in why.splitlines() if l.strip())
        lines.append(f"  {srv}: SKIPPED: {short[:300]}")

    # Efficiency ratios (higher = stoke does more work per CPU-second).
    lines.append("")
    lines.append("Efficiency ratios (stoke / other; >1.00x means stoke is "
                 "cheaper per unit of work):")
    for fname in FILES:
        small = bl.DOCROOT_FILES[fname] < bl.SMALL_LIMIT
        metric = "requests per CPU-second" if small else "bytes per CPU-second"
        get = (lambda r: r.req_per_cpu) if small else (lambda r: r.bytes_per_cpu)
        s = results.get(("stoke", fname))
        for other in ("lighttpd", "nginx"):
            o = results.get((other, fname))
            val = ratio(get(s) if s else None, get(o) if o else None)
            lines.append(f"  {fname:<10} {metric:<24} stoke/{other:<8} = {val}")
    return "\n".join(lines) + "\n"


def main() -> int:
    bl.install_cleanup()
    for f in FILES:
        if f not in bl.DOCROOT_FILES:
            sys.exit(f"unknown file {f!r} in BENCH_FILES (have: {' '.join(bl.DOCROOT_FILES)})")
    if not bl.which("wrk"):
        sys.exit("wrk not found: run benches/setup.sh")

    skipped: dict[str, str] = {}
    if "stoke" in SERVERS:
        why = bl.build_stoke(SKIP_BUILD)
        if why:
            skipped["stoke"] = why

    tmp = Path(tempfile.mkdtemp(prefix="stoke-bench-"))
    try:
        root = bl.make_docroot(tmp)
        lua = tmp / "report.lua"
        lua.write_text(WRK_LUA)

        factories = {
            "stoke": bl.stoke_server,
            "lighttpd": bl.lighttpd_server,
            "nginx": bl.nginx_server,
        }
        servers: dict[str, bl.Server] = {}
        for name in SERVERS:
            if name in skipped:
                continue
            if name not in factories:
                sys.exit(f"unknown server {name!r} in BENCH_SERVERS")
            srv = None
            try:
                port = bl.free_port()
                srv = factories[name](root, port, WORKERS, tmp / name)
                srv.start(port)
                sanity_check(srv, root, FILES)
                servers[name] = srv
                bl.log(f"{name} up on 127.0.0.1:{port} (pid {srv.pid})")
            except (bl.StartError, OSError, ValueError) as e:
                bl.log(f"{name}: SKIPPED: {e}")
                skipped[name] = str(e)
                if srv is not None:
                    srv.stop()  # started but failed its sanity check

        if not servers:
            bl.log("no server could be started")
            return 1

        load_before = bl.loadavg()
        results: dict[tuple[str, str], Result] = {}
        for fname in FILES:                     # pre-create rows in table order
            for name in SERVERS:
                if name in servers:
                    results[(name, fname)] = Result(name, fname)

        total_runs = ROUNDS * len(FILES) * len(servers)
        n = 0
        for rnd in range(ROUNDS):
            for fname in FILES:
                for name in SERVERS:            # interleaved: stoke, lighttpd, nginx
                    srv = servers.get(name)
                    if srv is None:
                        continue
                    n += 1
                    r = results[(name, fname)]
                    if not srv.alive():
                        r.notes.append(f"server died before round {rnd + 1}")
                        continue
                    bl.log(f"[{n}/{total_runs}] round {rnd + 1}: {name} /{fname} "
                           f"({SECONDS}s, load {bl.loadavg()})")
                    if WARMUP > 0:
                        run_wrk(srv.port, fname, WARMUP, lua)
                    cpu0, pids0 = bl.tree_cpu(srv.pid)
                    w = run_wrk(srv.port, fname, SECONDS, lua)
                    cpu1, pids1 = bl.tree_cpu(srv.pid)
                    if pids0 != pids1:
                        r.notes.append(f"process set changed during run "
                                       f"({len(pids0)} -> {len(pids1)}); CPU may be off")
                    r.requests += int(w["requests"])
                    r.bytes += int(w["bytes"])
                    r.duration += w["duration_us"] / 1e6
                    r.cpu += max(0.0, cpu1 - cpu0)
                    r.errors += int(w["status"] + w["connect"] + w["read"]
                                    + w["write"] + w["timeout"])
                    r.p50_ms.append(w["lat_p50_us"] / 1000)
                    r.p99_ms.append(w["lat_p99_us"] / 1000)
                    if not srv.alive():
                        r.notes.append("server exited during the run!\n"
                                       + srv.log_tail())

        stamp = time.strftime("%Y%m%d-%H%M%S")
        header = [
            f"stoke benchmark: {time.strftime('%Y-%m-%d %H:%M:%S %z')}",
            f"host: {os.uname().nodename}, {os.cpu_count()} CPUs, "
            f"loadavg before {load_before}, after {bl.loadavg()}",
            f"wrk -t{WRK_THREADS} -c{CONNS} -d{SECONDS}s x {ROUNDS} round(s) "
            f"(+{WARMUP}s warm-up each); workers per server: {WORKERS}",
            f"versions: {bl.tool_version([bl.which('nginx') or 'nginx', '-v'])}; "
            f"{bl.tool_version([bl.which('lighttpd') or 'lighttpd', '-v'])}; "
            f"{bl.tool_version(['wrk', '--version'])}",
            "cpu-s = server utime+stime over the run (all processes/threads); "
            "cpu% = cpu-s / wall; errors = non-2xx/3xx + socket errors",
        ]
        text = report(results, skipped, header)
        print(text, end="")
        outdir = bl.REPO / "bench-results"
        outdir.mkdir(exist_ok=True)
        outfile = outdir / f"compare-{stamp}.txt"
        outfile.write_text(text)
        bl.log(f"results written to {outfile}")

        if STOKE_REQUIRED and "stoke" in skipped:
            return 1
        if any(n != "stoke" for n in skipped):
            return 1  # a baseline server failing is a harness problem
        return 0
    finally:
        bl.stop_all()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
