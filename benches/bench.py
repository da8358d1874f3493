#!/usr/bin/env python3
"""`make bench`: stoke against nginx, lighttpd and h2o on loopback.

Writes BENCHMARKS.md (tables, machine, versions, the exact commands) and
docs/bench.svg (stoke's ratio to each peer per load), plus the raw numbers
as bench-results/bench-<timestamp>.json (gitignored).

Sections (BENCH_SECTIONS, default all, in this order):
  loads         wrk loads, servers alternating over BENCH_ROUNDS rounds,
                medians: keep-alive 1 KiB at 1/64/512 connections,
                `Connection: close` 1 KiB at 64, 1 MiB at 16, 100 MiB at 4.
                Per point: requests/s, MB/s, p50/p99, server CPU (utime+stime
                of the whole process tree) => requests or MB per CPU-second,
                stoke's ratio to each peer, stoke's CPU per thread group.
  idle          RSS per idle keep-alive connection at BENCH_IDLE_CONNS.
  syscalls      counted over N and 2N sequential keep-alive requests; the
                difference / N is syscalls per request. With perf's syscall
                tracepoints where they count (exact, and the server runs at
                full speed); else strace -c -f, which stops every syscall
                and so changes how a hand-off between threads races.
  instructions  valgrind --tool=callgrind over N and 2N sequential requests
                (fresh server each); the difference / N is user-space
                instructions per request (startup and shutdown cancel out).
  cold          eight concurrent downloads of cold big files while wrk
                measures a cached 1 KiB file's latency: stoke, nginx, and
                nginx with `aio threads`.
  compress      a 100 KiB HTML page, keep-alive, 16 connections, wrk with
                `Accept-Encoding: gzip, br, zstd`: stoke (on-the-fly
                compression, its cache), nginx (`gzip on`, level 6, every
                response compressed again), lighttpd (mod_deflate with a
                cache dir). req/s, req per CPU-second, bytes per response,
                the Content-Encoding each chose.
  https         stoke --listen-tls vs nginx `listen ... ssl`, the same ECDSA
                P-256 certificate (openssl, temp dir): keep-alive 1 KiB at
                64 connections, `Connection: close` at 64, and `openssl
                s_time -new` (full handshakes) if openssl is there; then
                stoke alone: a plain keep-alive probe's latency beside
                s_time handshakes (RSA-2048) on the same process.

Every point is bounded in time and wrapped so that one failure is recorded
in the report and the run goes on. Knobs (defaults; BENCH_QUICK=1 in []):
  BENCH_SECONDS 5 [2]   BENCH_WARMUP 1 [1]   BENCH_ROUNDS 3 [1]
  BENCH_WORKERS 2       BENCH_SERVERS "stoke nginx lighttpd h2o"
  BENCH_STOKE_R2 1 (a stoke --reactors 2 row in the loads; 0: none)
  BENCH_LOADS "ka1k-1 ka1k-64 ka1k-512 close1k-64 1m-16 100m-4"
  BENCH_IDLE_CONNS 9000 [1000]   BENCH_SEQ_REQUESTS 2000 [200]
  BENCH_COLD_MIB 300 [32]  BENCH_COLD_SECONDS 10 [3]
  BENCH_COLD_EVICT drop (global drop_caches, else fadvise) | fadvise
  BENCH_OUT BENCHMARKS.md   BENCH_SVG docs/bench.svg
  BENCH_NOTE "text"     printed in bold at the top of BENCHMARKS.md
  SKIP_BUILD=1 / STOKE_BIN=path   don't cargo build (make bench builds first)
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib as bl  # noqa: E402

QUICK = bl.env_flag("BENCH_QUICK")
SECONDS = bl.env_int("BENCH_SECONDS", 2 if QUICK else 5)
WARMUP = bl.env_int("BENCH_WARMUP", 1)
ROUNDS = bl.env_int("BENCH_ROUNDS", 1 if QUICK else 3)
WORKERS = bl.env_int("BENCH_WORKERS", 2)
SERVERS = bl.env_list("BENCH_SERVERS", "stoke nginx lighttpd h2o")
# stoke with two event loops (--reactors 2) as an extra row in the loads:
# nginx, lighttpd and h2o each run WORKERS event loops, stoke one by default.
STOKE_R2 = bl.env_int("BENCH_STOKE_R2", 1) != 0
# The floor (benches/floor): stoke's design with no HTTP work, a row of the
# 1 KiB loads, so that what the design itself costs here is measured in the
# same rounds as stoke and its peers.
FLOOR = bl.env_int("BENCH_FLOOR", 1) != 0
FLOOR_DIR = bl.REPO / "benches" / "floor"
FLOOR_BIN = FLOOR_DIR / "target" / "release" / "stoke-floor"
LOAD_KEYS = bl.env_list("BENCH_LOADS", "ka1k-1 ka1k-64 ka1k-512 close1k-64 1m-16 100m-4")
SECTIONS = bl.env_list("BENCH_SECTIONS",
                       "loads idle syscalls instructions cold compress https")
# 9,000, not 10,000: stoke keeps two descriptors per connection in reserve
# (its socket and a file being sent), so under this machine's hard limit of
# 20,000 descriptors it accepts at most ~9,990 connections; 9,000 fits every
# server and leaves the client its own 9,000.
IDLE_CONNS = bl.env_int("BENCH_IDLE_CONNS", 1000 if QUICK else 9_000)
SEQ_N = bl.env_int("BENCH_SEQ_REQUESTS", 200 if QUICK else 2000)
COLD_MIB = bl.env_int("BENCH_COLD_MIB", 32 if QUICK else 300)
COLD_SECONDS = bl.env_int("BENCH_COLD_SECONDS", 3 if QUICK else 10)
COLD_EVICT = os.environ.get("BENCH_COLD_EVICT", "drop")
OUT = bl.REPO / os.environ.get("BENCH_OUT", "BENCHMARKS.md")
SVG = bl.REPO / os.environ.get("BENCH_SVG", "docs/bench.svg")
NOTE = os.environ.get("BENCH_NOTE", "")
SKIP_BUILD = bl.env_flag("SKIP_BUILD")

# Idle keep-alive timeout given to every server: it must outlast the idle
# section (open 10,000 connections, then measure) and is far above any gap
# in the wrk loads, so it changes nothing there.
KEEPALIVE_S = 60
# Concurrent cold downloads and the wrk connections probing the cached file
# meanwhile (the scenario: a few big downloads must not stall small hits).
# Syscalls per request under load: wrk with this many connections, under strace.
SYSCALL_CONNS = 64
SYSCALL_SECONDS = 3
COLD_DOWNLOADS = 8
COLD_PROBE_CONNS = 16
MB = 1e6  # MB in the tables is 10^6 bytes

FILES = {"index.html": 1024, "1k.bin": 1024, "1m.bin": bl.MIB, "100m.bin": 100 * bl.MIB}
COLD_NAMES = [f"cold/cold-{i}.bin" for i in range(COLD_DOWNLOADS)]

# compress: a 100 KiB page (text compresses ~4-5x, as real markup does), 16
# keep-alive connections, the Accept-Encoding a current browser sends.
COMPRESS_PATH = "/compress/page.html"
COMPRESS_SIZE = 100 * bl.KIB
COMPRESS_CONNS = 16
ACCEPT = "gzip, br, zstd"
# Requests per server before measuring, so stoke and lighttpd have their
# compressed variant cached (nginx has no such cache: it compresses each time).
COMPRESS_WARM = 5
COMPRESS_SERVERS = ("stoke", "nginx", "lighttpd")
# https: the same loads as the plain 1 KiB rows, and bounded s_time runs.
HTTPS_SERVERS = ("stoke", "nginx")
HTTPS_CONNS = 64
# Parallel `openssl s_time -new` clients: each does one handshake at a time,
# so one alone would leave the server mostly idle on two cores.
S_TIME_CLIENTS = 2


@dataclass
class Load:
    key: str
    label: str
    path: str
    conns: int
    headers: tuple[str, ...] = ()
    unit: str = "req"  # "req": judged per request; "MB": per megabyte


LOADS = {l.key: l for l in (
    Load("ka1k-1", "keep-alive 1 KiB, 1 conn", "/index.html", 1),
    Load("ka1k-64", "keep-alive 1 KiB, 64 conns", "/index.html", 64),
    Load("ka1k-512", "keep-alive 1 KiB, 512 conns", "/index.html", 512),
    Load("close1k-64", "Connection: close 1 KiB, 64 conns", "/index.html", 64,
         ("Connection: close",)),
    Load("1m-16", "1 MiB, 16 conns", "/1m.bin", 16, unit="MB"),
    Load("100m-4", "100 MiB, 4 conns", "/100m.bin", 4, unit="MB"),
)}

SETTINGS = {
    "stoke": f"`RUST_LOG=warn` (no access log), `--threads {WORKERS}`, "
             f"`--max-connections {bl.MAX_CONNECTIONS}`, `--keepalive-timeout {KEEPALIVE_S}`; "
             "sendfile is how stoke always sends file bodies",
    "nginx": f"`worker_processes {WORKERS}`, `access_log off`, `sendfile on`, `tcp_nopush on`, "
             f"`worker_connections {bl.MAX_CONNECTIONS}`, `keepalive_requests 1000000`, "
             f"`keepalive_timeout {KEEPALIVE_S}s`, no `open_file_cache` (its default)",
    "floor": f"benches/floor, `stoke-floor 127.0.0.1:PORT {WORKERS}`: one reactor, "
             f"{WORKERS} workers on a crossbeam-deque injector, a completion queue and a "
             "`mio::Waker`, one `recvfrom` and one `writev` per request, and no HTTP work: "
             "every request (found by its blank line) gets the same 1 KiB page. Only in "
             "the 1 KiB loads",
    "stoke-r2": "as stoke, plus `--reactors 2` (two event loops sharing the same pool; "
                "loads only, BENCH_STOKE_R2=0 leaves it out): the peers each run "
                f"{WORKERS} event loops, stoke one by default",
    "nginx-aio": "as nginx, plus `aio threads` (the default pool: 32 threads per worker)",
    "lighttpd": f"`server.max-worker = {WORKERS}` (forked processes), no mod_accesslog, "
                "`server.network-backend = \"sendfile\"`, "
                f"`server.max-connections = {bl.MAX_CONNECTIONS}`, "
                f"`server.max-keep-alive-idle = {KEEPALIVE_S}`",
    "h2o": f"`num-threads: {WORKERS}`, no access-log, `max-connections: {bl.MAX_CONNECTIONS}`, "
           f"`http1-request-timeout: {KEEPALIVE_S}`; h2o 2.2 has no sendfile "
           "(it reads files into buffers)",
}


# mimetypes compressed by nginx and lighttpd in the compress section: the
# text types stoke compresses by default.
COMPRESS_TYPES = ("text/html", "text/plain", "text/css", "text/javascript",
                  "application/javascript", "application/json", "image/svg+xml")


def lighttpd_has(feature: str) -> bool:
    """Whether `lighttpd -V` lists '+ <feature> support' (zlib, brotli, zstd)."""
    exe = bl.which("lighttpd")
    if not exe:
        return False
    out = subprocess.run([exe, "-V"], capture_output=True, text=True, timeout=10)
    return f"+ {feature} support" in out.stdout + out.stderr


def lighttpd_module_missing(module: str) -> str | None:
    """Why lighttpd cannot load `module`, or None. Debian ships mod_deflate
    in its own package (lighttpd-mod-deflate; make bench-deps installs it)."""
    dirs = ["/usr/lib/lighttpd", "/usr/local/lib/lighttpd", "/usr/lib64/lighttpd"]
    if any(Path(d, f"{module}.so").exists() for d in dirs):
        return None
    return f"{module}.so not found in {', '.join(dirs)} (Debian: lighttpd-{module.replace('_', '-')})"


def lighttpd_encodings() -> tuple[str, ...]:
    return ("br", "gzip") if lighttpd_has("brotli") else ("gzip",)


def make_server(name: str, root: Path, port: int, workdir: Path,
                variant: str = "", tls: tuple[Path, Path] | None = None) -> bl.Server:
    """variant "compress": each server's on-the-fly compression on;
    tls=(cert, key): HTTPS instead of HTTP (stoke and nginx)."""
    if tls is not None:
        if name == "stoke":
            return bl.stoke_server(root, port, WORKERS, workdir, [
                "--max-connections", str(bl.MAX_CONNECTIONS),
                "--keepalive-timeout", str(KEEPALIVE_S), "--shutdown-timeout", "2"], tls=tls)
        if name == "nginx":
            return bl.nginx_server(root, port, WORKERS, workdir, KEEPALIVE_S,
                                   listen_opts=" ssl", http_extra=(
                                       f"ssl_certificate {tls[0]}; ssl_certificate_key {tls[1]}; "
                                       "ssl_protocols TLSv1.2 TLSv1.3;"))
        raise ValueError(f"no HTTPS setup for {name!r}")
    if variant == "compress":
        if name == "nginx":
            return bl.nginx_server(root, port, WORKERS, workdir, KEEPALIVE_S, http_extra=(
                "gzip on; gzip_comp_level 6; gzip_vary on; gzip_types "
                + " ".join(t for t in COMPRESS_TYPES if t != "text/html") + ";"))
        if name == "lighttpd":
            cache = workdir / "deflate-cache"
            cache.mkdir(parents=True, exist_ok=True)
            encs = ", ".join(f'"{e}"' for e in lighttpd_encodings())
            types = ", ".join(f'"{t}"' for t in COMPRESS_TYPES)
            return bl.lighttpd_server(root, port, WORKERS, workdir, KEEPALIVE_S, extra=(
                'server.modules += ( "mod_deflate" )\n'
                f'deflate.cache-dir = "{cache}"\n'
                f"deflate.mimetypes = ( {types} )\n"
                f"deflate.allowed-encodings = ( {encs} )\n"))
    if name in ("stoke", "stoke-r2"):
        reactors = ["--reactors", "2"] if name == "stoke-r2" else []
        return bl.stoke_server(root, port, WORKERS, workdir, [
            "--max-connections", str(bl.MAX_CONNECTIONS),
            "--keepalive-timeout", str(KEEPALIVE_S), "--shutdown-timeout", "2", *reactors])
    if name == "nginx":
        return bl.nginx_server(root, port, WORKERS, workdir, KEEPALIVE_S)
    if name == "floor":
        workdir.mkdir(parents=True, exist_ok=True)
        return bl.Server("floor", [FLOOR_BIN, f"127.0.0.1:{port}", WORKERS], workdir)
    if name == "nginx-aio":
        return bl.nginx_server(root, port, WORKERS, workdir, KEEPALIVE_S,
                               aio_threads=True, name="nginx-aio")
    if name == "lighttpd":
        return bl.lighttpd_server(root, port, WORKERS, workdir, KEEPALIVE_S)
    if name == "h2o":
        return bl.h2o_server(root, port, WORKERS, workdir, KEEPALIVE_S)
    raise ValueError(f"unknown server {name!r}")


class Run:
    """State shared by the sections: temp dir, docroot, failures."""

    def __init__(self, tmp: Path):
        self.tmp = tmp
        self.root: Path | None = None
        self.failures: list[tuple[str, str, str]] = []  # (section, what, why)
        self.skipped: list[tuple[str, str]] = []        # (what, why)
        self.commands: dict[str, str] = {}
        self.results: dict = {}
        self._n = 0

    def workdir(self, name: str) -> Path:
        self._n += 1
        return self.tmp / f"{self._n:03d}-{name}"

    def fail(self, section: str, what: str, why) -> None:
        msg = bl.short_error(why, 300)
        bl.log(f"FAILED {section} {what}: {msg}")
        self.failures.append((section, what, msg))

    def start(self, name: str, wrap: list[str] | None = None,
              timeout: float = 15.0, variant: str = "",
              tls: tuple[Path, Path] | None = None) -> bl.Server:
        port = bl.free_port()
        srv = make_server(name, self.root, port, self.workdir(name), variant, tls)
        if wrap:
            srv.wrap(wrap)
        return srv.start(port, timeout=timeout)


def lua_file(run: Run) -> Path:
    p = run.tmp / "done.lua"
    if not p.exists():
        p.write_text(bl.WRK_DONE_LUA)
    return p


def cmd_str(argv: list[str]) -> str:
    return " ".join(shlex.quote(str(a)) for a in argv)


def template_cmd(argv: list[str], port: int, lua: Path) -> str:
    """A wrk command line for the report, with the port as $PORT."""
    return cmd_str(argv).replace(str(port), "$PORT").replace(str(lua), "done.lua")


# --------------------------------------------------------------------------
# section: loads
# --------------------------------------------------------------------------

def floor_loads() -> list[str]:
    """The loads the floor takes part in: those of the 1 KiB page."""
    return [k for k in LOAD_KEYS if LOADS[k].path == "/index.html"]


def build_floor(run: Run) -> bool:
    """Builds benches/floor (its own small crate); says why not if it fails."""
    cargo = bl.which("cargo")
    if not cargo:
        run.skipped.append(("floor", "cargo not found"))
        return False
    out = subprocess.run([cargo, "build", "--release", "--quiet", "--manifest-path",
                          str(FLOOR_DIR / "Cargo.toml")], capture_output=True, text=True)
    if out.returncode != 0 or not FLOOR_BIN.exists():
        run.skipped.append(("floor", f"build failed: {out.stderr.strip()[-300:]}"))
        return False
    return True


def section_loads(run: Run, servers: list[str]) -> None:
    lua = lua_file(run)
    if STOKE_R2 and "stoke" in servers:
        servers = servers[:1 + servers.index("stoke")] + ["stoke-r2"] + \
            servers[1 + servers.index("stoke"):]
    if FLOOR and "stoke" in servers and floor_loads() and build_floor(run):
        servers = servers + ["floor"]
    loads = [LOADS[k] for k in LOAD_KEYS]
    res: dict[str, dict[str, list[dict]]] = {
        l.key: {s: [] for s in servers if s != "floor" or l.key in floor_loads()}
        for l in loads}
    run.results["loads"] = res
    live: dict[str, bl.Server] = {}
    for name in servers:
        try:
            srv = run.start(name)
            # The floor serves no files: wrk's error count is its check.
            if name != "floor":
                bl.check_serves(srv.port, run.root, list(FILES), name)
            live[name] = srv
            bl.log(f"{name} up on 127.0.0.1:{srv.port} (pid {srv.pid})")
        except (bl.StartError, OSError, ValueError, RuntimeError) as e:
            run.fail("loads", name, f"did not start or serve correctly: {e}")
    total = ROUNDS * sum(len([s for s in res[l.key] if s in live]) for l in loads)
    n = 0
    try:
        for rnd in range(ROUNDS):
            # Rotate the order each round so no server always goes first.
            order = [s for s in servers if s in live]
            order = order[rnd % max(1, len(order)):] + order[:rnd % max(1, len(order))]
            for load in loads:
                for name in order:
                    if name not in res[load.key]:
                        continue
                    n += 1
                    srv = live[name]
                    what = f"{load.key} {name} round {rnd + 1}"
                    if not srv.alive():
                        run.fail("loads", what, "server is not running")
                        continue
                    argv = bl.wrk_argv(srv.port, load.path, load.conns, SECONDS, lua,
                                       list(load.headers))
                    run.commands[f"load {load.key}"] = template_cmd(argv, srv.port, lua)
                    bl.log(f"[{n}/{total}] {what} (load {bl.loadavg()})")
                    try:
                        if WARMUP > 0:
                            bl.run_wrk(bl.wrk_argv(srv.port, load.path, load.conns, WARMUP,
                                                   lua, list(load.headers)), WARMUP)
                        w = bl.measure(srv, argv, SECONDS, per_thread=name.startswith("stoke"))
                        w["round"] = rnd + 1
                        res[load.key][name].append(w)
                    except (OSError, RuntimeError, subprocess.TimeoutExpired) as e:
                        run.fail("loads", what, e)
    finally:
        for srv in live.values():
            srv.stop()


def load_summary(load: Load, rounds: list[dict]) -> dict | None:
    """Medians over rounds of the per-round figures."""
    if not rounds:
        return None
    per = []
    for w in rounds:
        secs = w["secs"] or 1
        cpu = w["cpu_s"]
        split = w.get("cpu_split") or {}
        tot = sum(split.values())
        per.append({
            "rps": w["requests"] / secs,
            "mbps": w["bytes"] / MB / secs,
            "p50": w["p50_us"], "p99": w["p99_us"],
            "cpu_pct": 100 * cpu / secs, "cpu_s": cpu,
            "req_per_cpu": w["requests"] / cpu if cpu > 0 else None,
            "mb_per_cpu": w["bytes"] / MB / cpu if cpu > 0 else None,
            "split": {k: 100 * v / tot for k, v in split.items()} if tot > 0 else {},
        })
    out = {k: bl.median([p[k] for p in per])
           for k in ("rps", "mbps", "p50", "p99", "cpu_pct", "cpu_s", "req_per_cpu",
                     "mb_per_cpu")}
    out["errors"] = sum(w["errors"] for w in rounds)
    out["rounds"] = len(rounds)
    groups = sorted({g for p in per for g in p["split"]})
    out["split"] = {g: bl.median([p["split"].get(g, 0.0) for p in per]) for g in groups}
    out["throughput"] = out["rps"] if load.unit == "req" else out["mbps"]
    out["efficiency"] = out["req_per_cpu"] if load.unit == "req" else out["mb_per_cpu"]
    return out


# --------------------------------------------------------------------------
# section: idle
# --------------------------------------------------------------------------

def section_idle(run: Run, servers: list[str]) -> None:
    res = run.results.setdefault("idle", {})
    for name in servers:
        srv = None
        try:
            srv = run.start(name)
            bl.sequential_requests(srv.port, "/index.html", 10)
            time.sleep(0.5)
            rss0, thr0 = bl.tree_rss(srv.pid), bl.tree_threads(srv.pid)
            bl.log(f"idle: {name}: opening {IDLE_CONNS} keep-alive connections")
            t0 = time.monotonic()
            socks = bl.open_idle_connections(srv.port, IDLE_CONNS, "/index.html")
            try:
                opened_s = time.monotonic() - t0
                time.sleep(1)  # let the server finish per-connection bookkeeping
                rss1, thr1 = bl.tree_rss(srv.pid), bl.tree_threads(srv.pid)
                c0, _ = bl.tree_cpu(srv.pid)
                time.sleep(2)
                c1, _ = bl.tree_cpu(srv.pid)
                still = bl.count_open(socks)
            finally:
                bl.close_all(socks)
            res[name] = {"rss0": rss0, "rss1": rss1, "threads0": thr0, "threads1": thr1,
                         "per_conn": (rss1 - rss0) / IDLE_CONNS, "still_open": still,
                         "open_s": opened_s, "idle_cpu_2s": c1 - c0}
        except (bl.StartError, OSError, RuntimeError, ValueError) as e:
            run.fail("idle", name, e)
        finally:
            if srv is not None:
                srv.stop()


# --------------------------------------------------------------------------
# section: syscalls (perf tracepoints, or strace)
# --------------------------------------------------------------------------

# Counted one by one with perf (the servers' usual calls); whatever else a
# server makes is in raw_syscalls:sys_enter's total and shows as "other".
PERF_SYSCALLS = (
    "read", "write", "readv", "writev", "recvfrom", "sendto", "recvmsg", "sendmsg",
    "sendfile64", "pread64", "preadv2", "openat", "openat2", "close", "newfstatat",
    "newfstat", "statx", "epoll_wait", "epoll_pwait", "epoll_ctl", "futex",
    "setsockopt", "accept4", "fcntl", "ioctl", "mincore", "readahead", "fadvise64",
    "getdents64", "clock_gettime", "madvise", "mmap", "munmap", "brk", "shutdown",
    "rt_sigprocmask", "sched_yield", "io_uring_enter", "poll", "ppoll", "lseek")


def traced(argv: list[str], ready, what: str, drive, errpath: Path) -> None:
    """Runs the tracer `argv` until `ready(its stderr so far)` says it is
    attached (or raises `what` with that stderr), then drive(), then stops
    it with SIGINT, which makes both perf and strace write their counts."""
    errf = open(errpath, "w+")
    tracer = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=errf,
                              start_new_session=True)
    try:
        deadline = time.monotonic() + 10
        while True:
            errf.seek(0)
            if ready(errf.read()):
                break
            if tracer.poll() is not None or time.monotonic() > deadline:
                errf.seek(0)
                raise RuntimeError(f"{what}: {errf.read()[-300:]}")
            time.sleep(0.05)
        drive()
    finally:
        if tracer.poll() is None:
            tracer.send_signal(signal.SIGINT)
        try:
            tracer.wait(timeout=30)
        except subprocess.TimeoutExpired:
            tracer.kill()
            tracer.wait()
        errf.close()


def perf_syscalls_work() -> bool:
    """Whether perf can count syscall tracepoints here (root or a low
    perf_event_paranoid, and a kernel with tracefs)."""
    perf = bl.which("perf")
    if not perf:
        return False
    try:
        out = subprocess.run([perf, "stat", "-x,", "-e", "raw_syscalls:sys_enter",
                              "-e", "syscalls:sys_enter_getpid", "true"],
                             capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return False
    counts = [line.split(",")[0] for line in out.stderr.splitlines() if "sys_enter" in line]
    return out.returncode == 0 and len(counts) == 2 and all(c.isdigit() for c in counts)


def perf_count(srv: bl.Server, drive, out: Path) -> dict[str, int]:
    """Syscall counts of every process of srv while drive() runs, from
    perf's tracepoints: exact, and the server is not slowed down."""
    pids = bl.process_tree(srv.pid)
    events = ["raw_syscalls:sys_enter"] + [f"syscalls:sys_enter_{n}" for n in PERF_SYSCALLS]
    # -I: one block of counts per 100 ms; the first block says perf is attached.
    argv = [bl.which("perf"), "stat", "-x,", "-I", "100", "-o", str(out),
            "-e", ",".join(events), "-p", ",".join(str(p) for p in pids)]
    traced(argv, lambda _err: out.exists() and "raw_syscalls" in out.read_text(),
           "perf stat did not start", drive, out.with_suffix(".err"))
    counts: dict[str, int] = {}
    for line in out.read_text().splitlines():
        f = line.split(",")
        # interval, count, unit, event, ...
        if len(f) < 4 or line.startswith("#") or not f[1].strip().isdigit():
            continue
        counts[f[3]] = counts.get(f[3], 0) + int(f[1])
    total = counts.pop("raw_syscalls:sys_enter", 0)
    named = {k.removeprefix("syscalls:sys_enter_"): v for k, v in counts.items() if v}
    other = total - sum(named.values())
    if other:
        named["other"] = other
    return named


def parse_strace_c(text: str) -> dict[str, int]:
    """syscall -> calls from `strace -c` output."""
    out = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) < 5 or not parts[0][0].isdigit() or parts[-1] == "total":
            continue
        # % time, seconds, usecs/call, calls, [errors], syscall
        try:
            out[parts[-1]] = int(parts[3])
        except ValueError:
            continue
    return out


def strace_count(srv: bl.Server, drive, out: Path) -> dict[str, int]:
    """Syscall counts of every process of srv while drive() runs."""
    pids = bl.process_tree(srv.pid)
    argv = [bl.which("strace"), "-f", "-c", "-o", str(out)]
    for p in pids:
        argv += ["-p", str(p)]
    # strace says "attached" once per process.
    traced(argv, lambda err: err.count("attached") >= len(pids), "strace did not attach",
           drive, out.with_suffix(".err"))
    return parse_strace_c(out.read_text())


def section_syscalls(run: Run, servers: list[str]) -> None:
    res = run.results.setdefault("syscalls", {})
    use_perf = perf_syscalls_work()
    if not use_perf and not bl.which("strace"):
        run.skipped.append(("syscalls", "neither perf's syscall tracepoints nor strace "
                                        "available (make bench-deps)"))
        return
    run.results["syscalls_by"] = "perf" if use_perf else "strace"
    count = perf_count if use_perf else strace_count
    counter = ("perf stat -x, -I 100 -e raw_syscalls:sys_enter,syscalls:sys_enter_NAME,… "
               "-p PID,… (every process of the server, all threads)" if use_perf else
               "strace -f -c -o OUT -p PID [-p PID…] (every process of the server)")
    run.commands["syscalls"] = (f"{counter}, attached after warm-up, over {SEQ_N} and "
                                f"{2 * SEQ_N} sequential GET /index.html on one keep-alive "
                                "connection")
    lua = lua_file(run)
    wrk = bl.wrk_argv(59999, "/index.html", SYSCALL_CONNS, SYSCALL_SECONDS, lua)
    run.commands["syscalls @64"] = (
        f"{counter} while "
        f"{template_cmd(wrk, 59999, lua)} runs (after a warm-up), divided by wrk's request count")
    for name in servers:
        srv = None
        try:
            srv = run.start(name)
            bl.sequential_requests(srv.port, "/index.html", 100)

            def seq(n: int, port: int = srv.port):
                return lambda: bl.sequential_requests(port, "/index.html", n, timeout=60)
            a = count(srv, seq(SEQ_N), srv.workdir / "syscalls-1.txt")
            b = count(srv, seq(2 * SEQ_N), srv.workdir / "syscalls-2.txt")
            diff = {k: (b.get(k, 0) - a.get(k, 0)) / SEQ_N for k in set(a) | set(b)}
            res[name] = {"per_request": sum(diff.values()),
                         "by_call": {k: v for k, v in sorted(diff.items(), key=lambda kv: -kv[1])
                                     if abs(v) >= 0.005}}
            # Under 64 connections: what batching saves. The connections are
            # opened during the warm-up, so accepts barely count.
            argv = bl.wrk_argv(srv.port, "/index.html", SYSCALL_CONNS, SYSCALL_SECONDS, lua)
            bl.run_wrk(bl.wrk_argv(srv.port, "/index.html", SYSCALL_CONNS, 1, lua), 1)
            got: dict = {}
            c = count(srv, lambda: got.update(bl.run_wrk(argv, SYSCALL_SECONDS)),
                      srv.workdir / "syscalls-64.txt")
            if got.get("requests"):
                res[name]["per_request_64"] = sum(c.values()) / got["requests"]
                res[name]["by_call_64"] = {
                    k: v / got["requests"] for k, v in sorted(c.items(), key=lambda kv: -kv[1])
                    if v / got["requests"] >= 0.005}
        except (bl.StartError, OSError, RuntimeError, ValueError) as e:
            run.fail("syscalls", name, e)
        finally:
            if srv is not None:
                srv.stop()


# --------------------------------------------------------------------------
# section: instructions (callgrind)
# --------------------------------------------------------------------------

def perf_instructions_work() -> bool:
    perf = bl.which("perf")
    if not perf:
        return False
    try:
        out = subprocess.run([perf, "stat", "-x,", "-e", "instructions:u", "true"],
                             capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return out.returncode == 0 and "not supported" not in out.stderr \
        and "not counted" not in out.stderr


def callgrind_total(outdir: Path) -> int:
    """Sum of Ir over every callgrind.out.* file (one per process)."""
    total = 0
    for f in outdir.glob("callgrind.out.*"):
        for line in f.read_text(errors="replace").splitlines():
            if line.startswith(("summary:", "totals:")):
                total += int(line.split()[1])
                break
    return total


def section_instructions(run: Run, servers: list[str]) -> None:
    res = run.results.setdefault("instructions", {})
    run.results["perf_instructions"] = perf_instructions_work()
    if not bl.which("valgrind"):
        run.skipped.append(("instructions", "valgrind not installed (make bench-deps)"))
        return
    run.commands["instructions"] = (
        f"valgrind --tool=callgrind --callgrind-out-file=DIR/callgrind.out.%p SERVER… "
        f"(a fresh server for each count) over {SEQ_N} and {2 * SEQ_N} sequential "
        "GET /index.html on one keep-alive connection; (Ir(2N) - Ir(N)) / N")
    for name in servers:
        totals = {}
        try:
            for n in (SEQ_N, 2 * SEQ_N):
                outdir = run.tmp / f"callgrind-{name}-{n}"
                outdir.mkdir()
                srv = None
                try:
                    srv = run.start(name, wrap=[
                        bl.which("valgrind"), "--tool=callgrind", "-q",
                        f"--callgrind-out-file={outdir}/callgrind.out.%p"], timeout=120)
                    bl.sequential_requests(srv.port, "/index.html", n, timeout=120)
                finally:
                    if srv is not None:
                        srv.stop(grace=60)
                totals[n] = callgrind_total(outdir)
                if totals[n] == 0:
                    raise RuntimeError("callgrind wrote no totals (server killed before exit?)")
            res[name] = {"per_request": (totals[2 * SEQ_N] - totals[SEQ_N]) / SEQ_N,
                         "totals": totals}
        except (bl.StartError, OSError, RuntimeError, ValueError) as e:
            run.fail("instructions", name, e)


# --------------------------------------------------------------------------
# section: cold files
# --------------------------------------------------------------------------

class Downloader(threading.Thread):
    """Downloads one file again and again over one keep-alive connection
    until stopped, evicting it from the page cache before each pass so every
    pass reads from the device; counts bytes received."""

    def __init__(self, port: int, path: str, file: Path, stop: threading.Event):
        super().__init__(daemon=True)
        self.port, self.path, self.file, self.stop_ev = port, path, file, stop
        self.size = file.stat().st_size
        self.bytes = self.completed = 0
        self.error: str | None = None

    def run(self) -> None:
        buf = bytearray(1 << 20)
        view = memoryview(buf)
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=30) as s:
                while not self.stop_ev.is_set():
                    bl.fadvise_dontneed([self.file])
                    s.sendall(bl.request_bytes(self.path))
                    head = b""
                    while b"\r\n\r\n" not in head:
                        chunk = s.recv(4096)
                        if not chunk:
                            raise ConnectionError("closed before headers")
                        head += chunk
                    hdr, _, body = head.partition(b"\r\n\r\n")
                    if b" 200 " not in hdr.split(b"\r\n")[0]:
                        raise RuntimeError(hdr.split(b"\r\n")[0].decode(errors="replace"))
                    got = len(body)
                    self.bytes += got
                    while got < self.size and not self.stop_ev.is_set():
                        k = s.recv_into(view, min(len(buf), self.size - got))
                        if k == 0:
                            raise ConnectionError("closed mid-body")
                        got += k
                        self.bytes += k
                    if got >= self.size:
                        self.completed += 1
        except (OSError, RuntimeError) as e:
            if not self.stop_ev.is_set():
                self.error = str(e)


def nginx_has_threads() -> bool:
    exe = bl.which("nginx")
    if not exe:
        return False
    out = subprocess.run([exe, "-V"], capture_output=True, text=True, timeout=10)
    return "--with-threads" in out.stderr + out.stdout


def section_cold(run: Run, servers: list[str]) -> None:
    res = run.results.setdefault("cold", {})
    lua = lua_file(run)
    cold_paths = [run.root / n for n in COLD_NAMES]
    wanted = [s for s in ("stoke", "nginx", "nginx-aio")
              if s in servers or (s == "nginx-aio" and "nginx" in servers)]
    if "nginx-aio" in wanted and not nginx_has_threads():
        wanted.remove("nginx-aio")
        run.skipped.append(("cold nginx-aio", "this nginx build has no thread pools "
                                              "(nginx -V lacks --with-threads)"))
    # How cold is cold here: one sequential read of an evicted file.
    bl.fadvise_dontneed(cold_paths[:1])
    t0 = time.monotonic()
    with open(cold_paths[0], "rb", buffering=0) as f:
        while f.read(bl.MIB):
            pass
    run.results["cold_device_mbps"] = cold_paths[0].stat().st_size / MB / (time.monotonic() - t0)
    for name in wanted:
        srv = None
        try:
            srv = run.start(name)
            bl.check_serves(srv.port, run.root, ["index.html"], name)
            half = max(1, COLD_SECONDS // 2)
            probe = bl.wrk_argv(srv.port, "/index.html", COLD_PROBE_CONNS, half, lua, threads=1)
            base = bl.measure(srv, probe, half)
            method = bl.make_cold(cold_paths, COLD_EVICT)
            bl.sequential_requests(srv.port, "/index.html", 10)  # re-cache the small file
            probe = bl.wrk_argv(srv.port, "/index.html", COLD_PROBE_CONNS, COLD_SECONDS, lua,
                                threads=1)
            run.commands["cold probe"] = template_cmd(probe, srv.port, lua)
            stop = threading.Event()
            dls = [Downloader(srv.port, "/" + n, run.root / n, stop) for n in COLD_NAMES]
            bl.log(f"cold: {name}: {COLD_DOWNLOADS} x {COLD_MIB} MiB cold downloads + probe "
                   f"for {COLD_SECONDS}s ({method})")
            t0 = time.monotonic()
            for d in dls:
                d.start()
            try:
                w = bl.measure(srv, probe, COLD_SECONDS)
            finally:
                stop.set()
                wall = time.monotonic() - t0
                for d in dls:
                    d.join(timeout=30)
            errors = [d.error for d in dls if d.error]
            res[name] = {
                "method": method,
                "base_p50": base["p50_us"], "base_p99": base["p99_us"],
                "p50": w["p50_us"], "p99": w["p99_us"], "max": w["max_us"],
                "rps": w["requests"] / (w["secs"] or 1), "errors": w["errors"],
                "cpu_pct": 100 * w["cpu_s"] / (w["secs"] or 1),
                "dl_mbps": sum(d.bytes for d in dls) / MB / wall,
                "dl_completed": sum(d.completed for d in dls),
                "dl_errors": errors,
            }
        except (bl.StartError, OSError, RuntimeError, ValueError,
                subprocess.TimeoutExpired) as e:
            run.fail("cold", name, e)
        finally:
            if srv is not None:
                srv.stop()


# --------------------------------------------------------------------------
# sections: compress and https (servers alternating over rounds, as loads)
# --------------------------------------------------------------------------

def alternate(run: Run, section: str, live: dict[str, bl.Server], loads: list[Load],
              scheme: str = "http") -> dict[str, dict[str, list[dict]]]:
    """ROUNDS rounds of each load against each live server (order rotated
    each round, a WARMUP run before each); per load and server the wrk
    results of each round."""
    lua = lua_file(run)
    res: dict[str, dict[str, list[dict]]] = {l.key: {s: [] for s in live} for l in loads}
    for rnd in range(ROUNDS):
        order = list(live)
        order = order[rnd % max(1, len(order)):] + order[:rnd % max(1, len(order))]
        for load in loads:
            for name in order:
                srv = live[name]
                what = f"{load.key} {name} round {rnd + 1}"
                if not srv.alive():
                    run.fail(section, what, "server is not running")
                    continue
                argv = bl.wrk_argv(srv.port, load.path, load.conns, SECONDS, lua,
                                   list(load.headers), scheme=scheme)
                run.commands[f"{section} {load.key}"] = template_cmd(argv, srv.port, lua)
                bl.log(f"{section}: {what} (load {bl.loadavg()})")
                try:
                    if WARMUP > 0:
                        bl.run_wrk(bl.wrk_argv(srv.port, load.path, load.conns, WARMUP, lua,
                                               list(load.headers), scheme=scheme), WARMUP)
                    w = bl.measure(srv, argv, SECONDS)
                    w["round"] = rnd + 1
                    res[load.key][name].append(w)
                except (OSError, RuntimeError, subprocess.TimeoutExpired) as e:
                    run.fail(section, what, e)
    return res


COMPRESS_LOAD = Load("gz100k-16", f"100 KiB HTML, Accept-Encoding: {ACCEPT}, "
                     f"{COMPRESS_CONNS} conns", COMPRESS_PATH, COMPRESS_CONNS,
                     (f"Accept-Encoding: {ACCEPT}",))


def section_compress(run: Run, servers: list[str]) -> None:
    import gzip
    page = run.root / COMPRESS_PATH.lstrip("/")
    page.parent.mkdir(mode=0o755, exist_ok=True)
    page.write_bytes(bl.html_text(COMPRESS_SIZE))
    os.chmod(page, 0o644)
    plain = page.read_bytes()
    res = run.results.setdefault("compress", {"servers": {}})
    res["identity_bytes"] = len(plain)
    res["gzip6_bytes"] = len(gzip.compress(plain, 6))
    res["lighttpd_encodings"] = list(lighttpd_encodings()) if "lighttpd" in servers else []
    live: dict[str, bl.Server] = {}
    try:
        for name in COMPRESS_SERVERS:
            if name not in servers:
                continue
            why = lighttpd_module_missing("mod_deflate") if name == "lighttpd" else None
            if why:
                run.skipped.append(("compress lighttpd", why))
                continue
            try:
                srv = run.start(name, variant="compress")
                live[name] = srv
                # The identity body must be the file, the encoded one must
                # decode to it (gzip checked here; br/zstd have no stdlib
                # decoder, so only their size is recorded).
                bl.check_serves(srv.port, run.root, [COMPRESS_PATH.lstrip("/")], name)
                for _ in range(COMPRESS_WARM):
                    status, enc, body = bl.encoded_get(srv.port, COMPRESS_PATH, ACCEPT)
                if status != 200:
                    raise RuntimeError(f"GET {COMPRESS_PATH} with Accept-Encoding -> {status}")
                if enc == "gzip" and gzip.decompress(body) != plain:
                    raise RuntimeError("gzip body does not decode to the file")
                if enc == "identity":
                    # Uncompressed answers would make a fast, meaningless row.
                    raise RuntimeError("answered without compression (Content-Encoding "
                                       "absent): its compression is not active")
                res["servers"][name] = {"encoding": enc, "body_bytes": len(body)}
                bl.log(f"compress: {name} up on {srv.port}: {enc}, {len(body)} B body")
            except (bl.StartError, OSError, RuntimeError, ValueError) as e:
                run.fail("compress", name, f"did not start or serve correctly: {e}")
                live.pop(name, None)
        rounds = alternate(run, "compress", live, [COMPRESS_LOAD])
        for name, ws in rounds[COMPRESS_LOAD.key].items():
            if ws:
                s = load_summary(COMPRESS_LOAD, ws)
                s["wire_per_resp"] = bl.median([w["bytes"] / w["requests"]
                                                for w in ws if w["requests"]])
                res["servers"][name]["summary"] = s
    finally:
        for srv in live.values():
            srv.stop()


HTTPS_LOADS = [
    Load("tls-ka1k-64", f"HTTPS keep-alive 1 KiB, {HTTPS_CONNS} conns", "/index.html",
         HTTPS_CONNS),
    Load("tls-close1k-64", f"HTTPS Connection: close 1 KiB, {HTTPS_CONNS} conns",
         "/index.html", HTTPS_CONNS, ("Connection: close",)),
]


def s_time(srv: bl.Server, seconds: int, port: int | None = None) -> dict:
    """S_TIME_CLIENTS parallel `openssl s_time -new` (a full handshake per
    connection, one GET /index.html each) for `seconds` against `port`
    (default the server's); connections done and the server tree's CPU
    meanwhile."""
    argv = [bl.which("openssl"), "s_time", "-connect", f"127.0.0.1:{port or srv.port}",
            "-new", "-time", str(seconds), "-www", "/index.html"]
    cpu0, _ = bl.tree_cpu(srv.pid)
    t0 = time.monotonic()
    procs = [subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              stdin=subprocess.DEVNULL, text=True, start_new_session=True)
             for _ in range(S_TIME_CLIENTS)]
    conns, outs = 0, []
    try:
        for pr in procs:
            out, _ = pr.communicate(timeout=seconds + 30)
            outs.append(out)
    finally:
        for pr in procs:
            if pr.poll() is None:
                pr.kill()
                pr.wait()
    wall = time.monotonic() - t0
    cpu1, _ = bl.tree_cpu(srv.pid)
    for out in outs:
        # "1234 connections in 8 real seconds, 5678 bytes read per connection"
        got = [int(l.split()[0]) for l in out.splitlines()
               if "connections in" in l and "real seconds" in l]
        if not got:
            raise RuntimeError(f"s_time printed no count: {out.strip()[-300:]}")
        conns += got[0]
    return {"conns": conns, "secs": wall, "cpu_s": max(0.0, cpu1 - cpu0)}


def section_https(run: Run, servers: list[str]) -> None:
    res = run.results.setdefault("https", {"loads": {}, "s_time": {}})
    wanted = [s for s in HTTPS_SERVERS if s in servers]
    if not bl.which("openssl"):
        run.skipped.append(("https", "openssl not installed (needed for the certificate)"))
        return
    tls = bl.make_cert(run.tmp / "tls")
    live: dict[str, bl.Server] = {}
    try:
        for name in wanted:
            try:
                srv = run.start(name, tls=tls)
                live[name] = srv
                status, body = bl.https_get(srv.port, "/index.html")
                if status != 200 or body != (run.root / "index.html").read_bytes():
                    raise RuntimeError(f"GET /index.html over TLS -> {status}, {len(body)} B")
                bl.log(f"https: {name} up on {srv.port}")
            except (bl.StartError, OSError, RuntimeError, ValueError) as e:
                run.fail("https", name, f"did not start or serve correctly: {e}")
                live.pop(name, None)
        rounds = alternate(run, "https", live, HTTPS_LOADS, scheme="https")
        for load in HTTPS_LOADS:
            res["loads"][load.key] = {n: load_summary(load, ws)
                                      for n, ws in rounds[load.key].items() if ws}
        run.commands["https s_time"] = (
            f"{S_TIME_CLIENTS} x openssl s_time -connect 127.0.0.1:$PORT -new "
            f"-time {SECONDS} -www /index.html (in parallel)")
        for rnd in range(ROUNDS):
            for name, srv in live.items():
                try:
                    bl.log(f"https: s_time {name} round {rnd + 1}")
                    res["s_time"].setdefault(name, []).append(s_time(srv, SECONDS))
                except (OSError, RuntimeError, subprocess.TimeoutExpired) as e:
                    run.fail("https", f"s_time {name} round {rnd + 1}", e)
    finally:
        for srv in live.values():
            srv.stop()
    if "stoke" in wanted:
        handshake_stall(run, res)


# A handshake costs far more CPU than a cached request (RSA-2048 most): a
# plain keep-alive probe on the same stoke shows whether handshakes stall
# the connections beside them (issue #11).
STALL_PROBE_CONNS = 8


def handshake_stall(run: Run, res: dict) -> None:
    """stoke with a plain and a TLS listener (RSA-2048): wrk's plain 1 KiB
    keep-alive probe alone, then while S_TIME_CLIENTS `s_time -new` run
    full handshakes on the TLS port; ROUNDS rounds, alternating."""
    import threading
    out = res.setdefault("stall", {"alone": [], "handshakes": [], "s_time": []})
    srv = None
    try:
        cert, key = bl.make_cert(run.tmp / "tls-rsa", kind="rsa")
        port, tls_port = bl.free_port(), bl.free_port()
        srv = bl.stoke_server(run.root, port, WORKERS, run.workdir("stoke-stall"), [
            "--max-connections", str(bl.MAX_CONNECTIONS), "--keepalive-timeout",
            str(KEEPALIVE_S), "--shutdown-timeout", "2", "--listen-tls",
            f"127.0.0.1:{tls_port}", "--tls-cert", cert, "--tls-key", key])
        srv.start(port)
        lua = lua_file(run)
        argv = bl.wrk_argv(port, "/index.html", STALL_PROBE_CONNS, SECONDS, lua, threads=1)
        run.commands["https stall probe"] = template_cmd(argv, port, lua) + (
            f"  (alone, then beside {S_TIME_CLIENTS} x openssl s_time -connect "
            f"127.0.0.1:$TLSPORT -new -time {SECONDS} -www /index.html; RSA-2048)")
        for rnd in range(ROUNDS):
            bl.log(f"https: stall probe round {rnd + 1} (load {bl.loadavg()})")
            out["alone"].append(bl.measure(srv, argv, SECONDS))
            got: dict = {}
            t = threading.Thread(target=lambda: got.update(s_time(srv, SECONDS, tls_port)))
            t.start()
            try:
                out["handshakes"].append(bl.measure(srv, argv, SECONDS))
            finally:
                t.join(SECONDS + 60)
            if got:
                out["s_time"].append(got)
    except (bl.StartError, OSError, RuntimeError, ValueError, IndexError,
            subprocess.TimeoutExpired) as e:
        run.fail("https", "stall probe", e)
    finally:
        if srv is not None:
            srv.stop()


# --------------------------------------------------------------------------
# report
# --------------------------------------------------------------------------

def ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def fmt_ratio(x: float | None) -> str:
    return f"{x:.2f}×" if x is not None else "–"


# Below this much server CPU per run the 10 ms tick of utime+stime makes the
# per-CPU-second figure rough (±5% or worse); such cells get a "≈".
ROUGH_CPU_S = 0.2


def rough(summary: dict) -> str:
    return "≈" if (summary.get("cpu_s") or 0) < ROUGH_CPU_S else ""


def load_tables(run: Run, servers: list[str]) -> tuple[list[str], dict]:
    lines: list[str] = []
    ratios: dict[str, dict[str, tuple[float | None, float | None]]] = {}
    res = run.results.get("loads", {})
    if "stoke" in servers and any("stoke-r2" in res.get(k, {}) for k in LOAD_KEYS):
        i = servers.index("stoke") + 1
        servers = servers[:i] + ["stoke-r2"] + servers[i:]
    if any("floor" in res.get(k, {}) for k in LOAD_KEYS):
        servers = servers + ["floor"]
    # The floor is not a peer: its row shows how near stoke comes to it,
    # and it stays out of the ratios the chart and the targets use.
    peers = [s for s in servers if not s.startswith("stoke") and s != "floor"]
    for key in LOAD_KEYS:
        load = LOADS[key]
        sums = {s: load_summary(load, res.get(key, {}).get(s, [])) for s in servers
                if s != "floor" or "floor" in res.get(key, {})}
        st = sums.get("stoke")
        eff_col = "req/CPU-s" if load.unit == "req" else "MB/CPU-s"
        lines += [f"### {load.label}", "",
                  f"| server | req/s | MB/s | p50 | p99 | CPU | {eff_col} | errors "
                  "| stoke ÷ it: throughput | stoke ÷ it: per CPU-s |",
                  "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|"]
        ratios[key] = {}
        for s in servers:
            if s not in sums:
                continue
            r = sums[s]
            if r is None:
                lines.append(f"| {s} | failed or skipped | | | | | | | | |")
                continue
            own = s.startswith("stoke")
            tput = ratio(st["throughput"], r["throughput"]) if st and not own else None
            eff = ratio(st["efficiency"], r["efficiency"]) if st and not own else None
            if not own and s != "floor":
                ratios[key][s] = (tput, eff)
            lines.append(
                f"| {s} | {bl.fmt_num(r['rps'])} | {bl.fmt_num(r['mbps'], 1)} | "
                f"{bl.fmt_ms(r['p50'])} | {bl.fmt_ms(r['p99'])} | {r['cpu_pct']:.0f}% | "
                f"{rough(r)}{bl.fmt_num(r['efficiency'], 1)} | {r['errors']} | "
                f"{'' if own else fmt_ratio(tput)} | "
                f"{'' if own else fmt_ratio(eff)} |")
        r2 = sums.get("stoke-r2")
        if r2 and peers:
            vs = ", ".join(
                f"{p} {fmt_ratio(ratio(r2['throughput'], sums[p]['throughput']))} / "
                f"{fmt_ratio(ratio(r2['efficiency'], sums[p]['efficiency']))}"
                for p in peers if sums.get(p))
            lines += ["", f"stoke-r2 (`--reactors 2`) ÷ each peer, throughput / per CPU-s: {vs}."]
        for name in ("stoke", "stoke-r2"):
            if sums.get(name) and sums[name]["split"]:
                split = ", ".join(f"`{g}` {v:.0f}%" for g, v in
                                  sorted(sums[name]["split"].items(), key=lambda kv: -kv[1]))
                lines += ["", f"{name} CPU by thread: {split}."]
        lines.append("")
    return lines, ratios


def compress_report(run: Run) -> list[str]:
    lines = ["## Compression on the fly", ""]
    c = run.results.get("compress")
    if not c or not c["servers"]:
        return lines + ["(not run)", ""]
    lenc = ", ".join(c.get("lighttpd_encodings") or ["gzip"])
    lines += [f"A {c['identity_bytes'] / bl.KIB:.0f} KiB HTML page of varied prose and markup "
              f"(gzip -6 makes it {c['gzip6_bytes']:,} bytes), keep-alive, {COMPRESS_CONNS} "
              f"connections, `wrk -H 'Accept-Encoding: {ACCEPT}'`, {SECONDS} s per run after a "
              f"{WARMUP} s warm-up, {ROUNDS} round(s), medians; each server got "
              f"{COMPRESS_WARM} requests first so a cached variant exists. "
              "stoke: its defaults (on-the-fly compression on, each variant compressed once "
              "and cached; it picks br). nginx: `gzip on; gzip_comp_level 6; gzip_types "
              "<text types>` (this build has no brotli module, so it sends gzip, and it "
              "compresses every response again: nginx has no cache of compressed bodies). "
              f"lighttpd: mod_deflate, `deflate.allowed-encodings = ({lenc})`, "
              "`deflate.cache-dir` in the run's temp dir (compressed once, then sent from "
              "the cache file). Bytes per response = wrk's bytes ÷ requests (headers "
              "included); body = one GET's body with the same Accept-Encoding.", "",
              "| server | Content-Encoding | body bytes | bytes/response | req/s | CPU | "
              "req/CPU-s | errors | stoke ÷ it: req/s | stoke ÷ it: per CPU-s | "
              "stoke ÷ it: bytes/response |", "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|"]
    st = (c["servers"].get("stoke") or {}).get("summary")
    for name in COMPRESS_SERVERS:
        r = c["servers"].get(name)
        if not r:
            continue
        s = r.get("summary")
        if not s:
            lines.append(f"| {name} | {r['encoding']} | {r['body_bytes']:,} | failed | | | | "
                         "| | | |")
            continue
        peer = st is not None and name != "stoke"
        lines.append(
            f"| {name} | {r['encoding']} | {r['body_bytes']:,} | {s['wire_per_resp']:,.0f} | "
            f"{bl.fmt_num(s['rps'])} | {s['cpu_pct']:.0f}% | {rough(s)}"
            f"{bl.fmt_num(s['req_per_cpu'])} | {s['errors']} | "
            f"{fmt_ratio(ratio(st['rps'], s['rps'])) if peer else ''} | "
            f"{fmt_ratio(ratio(st['req_per_cpu'], s['req_per_cpu'])) if peer else ''} | "
            f"{fmt_ratio(ratio(st['wire_per_resp'], s['wire_per_resp'])) if peer else ''} |")
    return lines + ["", "bytes/response below 1× means stoke sends fewer bytes.", ""]


def https_report(run: Run) -> list[str]:
    lines = ["## HTTPS", ""]
    h = run.results.get("https")
    if not h or not (h["loads"] or h["s_time"]):
        return lines + ["(not run)", ""]
    lines += ["stoke `--listen-tls` (`--tls-cert/--tls-key`, rustls) vs nginx `listen … ssl` "
              "(OpenSSL, `ssl_protocols TLSv1.2 TLSv1.3`, other ssl settings at their "
              "defaults), the same self-signed ECDSA P-256 certificate made by openssl for "
              f"the run; {WORKERS} workers each, no access log. wrk over https ({SECONDS} s "
              f"per run, {ROUNDS} round(s), medians); `openssl s_time -new`: "
              f"{S_TIME_CLIENTS} clients in parallel, each a full handshake (no session "
              "reuse) and one GET /index.html per connection.", "",
              "| load | server | req/s (conn/s) | CPU | per CPU-s | errors | "
              "stoke ÷ it: throughput | stoke ÷ it: per CPU-s |",
              "|---|---|--:|--:|--:|--:|--:|--:|"]
    for load in HTTPS_LOADS:
        sums = h["loads"].get(load.key, {})
        st = sums.get("stoke")
        for name in HTTPS_SERVERS:
            s = sums.get(name)
            if not s:
                continue
            peer = st is not None and name != "stoke"
            lines.append(
                f"| {load.label} | {name} | {bl.fmt_num(s['rps'])} | {s['cpu_pct']:.0f}% | "
                f"{rough(s)}{bl.fmt_num(s['req_per_cpu'])} | {s['errors']} | "
                f"{fmt_ratio(ratio(st['rps'], s['rps'])) if peer else ''} | "
                f"{fmt_ratio(ratio(st['req_per_cpu'], s['req_per_cpu'])) if peer else ''} |")
    st_sum = {}
    for name, runs in h["s_time"].items():
        st_sum[name] = {"rps": bl.median([r["conns"] / r["secs"] for r in runs]),
                        "cpu_pct": bl.median([100 * r["cpu_s"] / r["secs"] for r in runs]),
                        "cpu_s": bl.median([r["cpu_s"] for r in runs]),
                        "req_per_cpu": bl.median([r["conns"] / r["cpu_s"] for r in runs
                                                  if r["cpu_s"] > 0])}
    st = st_sum.get("stoke")
    for name in HTTPS_SERVERS:
        s = st_sum.get(name)
        if not s:
            continue
        peer = st is not None and name != "stoke"
        lines.append(
            f"| full handshakes (`s_time -new`, {S_TIME_CLIENTS} clients) | {name} | "
            f"{bl.fmt_num(s['rps'])} | {s['cpu_pct']:.0f}% | {rough(s)}"
            f"{bl.fmt_num(s['req_per_cpu'])} | – | "
            f"{fmt_ratio(ratio(st['rps'], s['rps'])) if peer else ''} | "
            f"{fmt_ratio(ratio(st['req_per_cpu'], s['req_per_cpu'])) if peer else ''} |")
    lines.append("")
    stall = h.get("stall")
    if stall and stall["alone"] and stall["handshakes"]:
        def med(runs: list[dict], k: str) -> float:
            return bl.median([w[k] for w in runs])

        def rps(runs: list[dict]) -> str:
            return bl.fmt_num(bl.median([w["requests"] / (w["secs"] or 1) for w in runs]))
        hs = (bl.median([r["conns"] / r["secs"] for r in stall["s_time"]])
              if stall["s_time"] else None)
        lines += [
            "**Do handshakes stall the other connections?** One stoke with a plain and a "
            "TLS listener (RSA-2048 certificate, where a handshake costs most: ~0.9 ms of "
            f"signing), {WORKERS} workers: wrk's plain keep-alive 1 KiB probe "
            f"({STALL_PROBE_CONNS} connections, 1 thread) alone, then while "
            f"{S_TIME_CLIENTS} `openssl s_time -new` clients do full handshakes on the TLS "
            "port. stoke signs on its workers, not on the event loop, so the probe's "
            f"latency should rise only by the CPU the handshakes take; {ROUNDS} round(s), "
            "medians.", "",
            "| probe | req/s | p50 | p99 | handshakes/s |", "|---|--:|--:|--:|--:|",
            f"| alone | {rps(stall['alone'])} | "
            f"{bl.fmt_ms(med(stall['alone'], 'p50_us'))} | "
            f"{bl.fmt_ms(med(stall['alone'], 'p99_us'))} | – |",
            f"| beside {S_TIME_CLIENTS} `s_time -new` | "
            f"{rps(stall['handshakes'])} | "
            f"{bl.fmt_ms(med(stall['handshakes'], 'p50_us'))} | "
            f"{bl.fmt_ms(med(stall['handshakes'], 'p99_us'))} | "
            f"{bl.fmt_num(hs) if hs is not None else '–'} |", ""]
    return lines


def report(run: Run, servers: list[str], started: float, load_before: str) -> str:
    m = bl.machine()
    vers = run.results["versions"]
    lines: list[str] = ["# stoke benchmarks", ""]
    if NOTE:
        lines += [f"**{NOTE}**", ""]
    if QUICK:
        lines += ["**BENCH_QUICK=1: a smoke run of the pipeline (short runs, one round, "
                  "fewer idle connections, small cold files). Not figures to quote.**", ""]
    lines += [
        f"Generated by `make bench` (benches/bench.py) on {time.strftime('%Y-%m-%d %H:%M %Z')} "
        f"in {(time.time() - started) / 60:.1f} minutes.", "",
        "## Machine", "",
        f"- `nproc`: {m['nproc']}; CPU: {m['cpu']}; memory: {m['memory']}; "
        f"kernel (`uname -r`): {m['kernel']}",
        f"- load average before: {load_before}; after: {bl.loadavg()} "
        "(wrk, the servers and anything else running share these cores)",
    ]
    for k in ("stoke", "nginx", "lighttpd", "h2o", "wrk", "strace", "valgrind"):
        lines.append(f"- {k}: {vers.get(k, '?')}")
    lines += ["", "## Settings", "",
              "Every server: loopback only, the same worker count, no access log, "
              "keep-alive on; each run bounded in time.", ""]
    r2 = ["stoke-r2"] if STOKE_R2 and "loads" in SECTIONS and "stoke" in servers else []
    floor = ["floor"] if FLOOR and "loads" in SECTIONS and "stoke" in servers else []
    for s in (servers[:1] + r2 + servers[1:] + floor
              + (["nginx-aio"] if "cold" in SECTIONS and "nginx" in servers else [])):
        if s in SETTINGS:
            lines.append(f"- **{s}**: {SETTINGS[s]}")
    lines += ["",
              f"Loads: wrk, {SECONDS} s per run after a {WARMUP} s warm-up, servers "
              f"alternating (order rotated each round), {ROUNDS} round(s); figures are "
              "medians over rounds (errors are summed). CPU is utime+stime of the "
              "server's whole process tree from /proc/PID/stat before and after the run "
              "(100% = one core). MB = 10^6 bytes (wrk's byte count, headers included).",
              "The ratio columns are stoke's figure divided by that server's: above 1× "
              "stoke is ahead. Per CPU-second is the fairer one here, since wrk competes "
              "with the server for the same cores. ≈ marks a per-CPU-second figure from "
              f"under {ROUGH_CPU_S} CPU-seconds per run (the clock tick is "
              f"{1000 // bl.CLK_TCK} ms): rough. Big files over loopback cost the sender "
              "little CPU: over loopback the copy happens mostly in the receiver's recv.", ""]

    lines += ["## Loads", ""]
    if "loads" in run.results:
        tl, ratios = load_tables(run, servers)
        lines += tl
        run.results["ratios"] = {k: {s: list(v) for s, v in d.items()} for k, d in ratios.items()}
        lines += [f"![stoke's ratio to each peer]({os.path.relpath(SVG, OUT.parent)})", ""]
        lines += ["stoke's threads: the reactor is the main thread, named `stoke` "
                  "(`ps -L`); the file-work pool threads are `stoke-worker-N`, the "
                  "cold-file warm-up threads `stoke-warm-N`.", ""]
    else:
        lines += ["(not run)", ""]

    lines += ["## Idle memory per keep-alive connection", ""]
    idle = run.results.get("idle")
    if idle:
        lines += [f"{IDLE_CONNS} connections, each after one GET /index.html, then idle; "
                  "VmRSS summed over the server's processes, before and 1 s after.", "",
                  "| server | RSS before | RSS after | per connection | threads | still open "
                  "| idle CPU over 2 s |", "|---|--:|--:|--:|--:|--:|--:|"]
        for s in servers:
            r = idle.get(s)
            if not r:
                lines.append(f"| {s} | failed or skipped | | | | | |")
                continue
            lines.append(f"| {s} | {bl.fmt_bytes(r['rss0'])} | {bl.fmt_bytes(r['rss1'])} | "
                         f"{r['per_conn']:,.0f} B | {r['threads1']} | "
                         f"{r['still_open']}/{IDLE_CONNS} | {r['idle_cpu_2s'] * 1000:.0f} ms |")
        lines.append("")
    else:
        lines += ["(not run)", ""]

    lines += ["## Syscalls and instructions per sequential request", ""]
    sc, ins = run.results.get("syscalls", {}), run.results.get("instructions", {})
    if sc or ins:
        perf = run.results.get("perf_instructions")
        lines += [f"One keep-alive connection, GET /index.html one after another; each figure "
                  f"is the difference between {2 * SEQ_N} and {SEQ_N} requests, divided by "
                  f"{SEQ_N}, so startup, attach and shutdown cancel out. Instructions are "
                  "user-space (callgrind's Ir, all threads and processes)"
                  + ("; `perf stat -e instructions:u` does not count on this machine "
                     "(no PMU in the VM), hence callgrind." if perf is False else ".")
                  + " Timer wake-ups scale with run time, not requests, and are not "
                  "cancelled: small noise. "
                  + ("Syscalls are counted by perf's tracepoints, every thread and process of "
                     "the server, which runs at full speed ("
                     + ", ".join(f"`{n}`" for n in ("read", "writev", "futex", "epoll_wait"))
                     + " and other usual calls by name; the rest is `other`)."
                     if run.results.get("syscalls_by") == "perf" else
                     "Syscalls are counted by `strace -f -c`, which stops every call: a "
                     "hand-off between threads then races differently than at full speed."),
                  "",
                  "| server | syscalls/request | top syscalls per request | "
                  "instructions/request |", "|---|--:|---|--:|"]
        for s in servers:
            a, b = sc.get(s), ins.get(s)
            top = ", ".join(f"{k} {v:.2f}" for k, v in list(a["by_call"].items())[:6]) if a else ""
            calls = f"{a['per_request']:.2f}" if a else "–"
            instr = f"{b['per_request']:,.0f}" if b else "–"
            lines.append(f"| {s} | {calls} | {top} | {instr} |")
        lines.append("")
        if any("per_request_64" in (sc.get(s) or {}) for s in servers):
            lines += [f"Under {SYSCALL_CONNS} keep-alive connections (wrk `-c{SYSCALL_CONNS}`, "
                      f"{SYSCALL_SECONDS} s, every thread and process counted the same way; "
                      "syscalls ÷ wrk's requests), where one wake-up can carry many requests:",
                      "", "| server | syscalls/request | top syscalls per request |",
                      "|---|--:|---|"]
            for s in servers:
                a = sc.get(s) or {}
                if "per_request_64" in a:
                    top = ", ".join(f"{k} {v:.2f}" for k, v in list(a["by_call_64"].items())[:6])
                    lines.append(f"| {s} | {a['per_request_64']:.2f} | {top} |")
            lines.append("")
    else:
        lines += ["(not run)", ""]

    lines += ["## Cold files", ""]
    cold = run.results.get("cold")
    if cold:
        method = next(iter(cold.values()))["method"]
        device = (f"one sequential read of an evicted {COLD_MIB} MiB file ran at "
                  f"{run.results.get('cold_device_mbps', 0):,.0f} MB/s here; a VM's disk may "
                  "itself be cached by its host")
        lines += [f"{COLD_DOWNLOADS} concurrent downloads of {COLD_MIB} MiB files, each on its "
                  "own keep-alive connection, looping, while wrk "
                  f"(`-t1 -c{COLD_PROBE_CONNS}`, {COLD_SECONDS} s) fetches the cached 1 KiB "
                  f"index.html. Cache eviction before the run: {method}; each download pass "
                  "starts with posix_fadvise(POSIX_FADV_DONTNEED) on its file, so every pass "
                  f"reads from the device ({device}). Baseline: the same probe for {max(1, COLD_SECONDS // 2)} s without "
                  "downloads.", "",
                  "| server | probe p50 | probe p99 | probe max | probe req/s | baseline p50 "
                  "| baseline p99 | downloads MB/s | files completed | server CPU | errors |",
                  "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|"]
        for s in ("stoke", "nginx", "nginx-aio"):
            r = cold.get(s)
            if not r:
                continue
            errs = r["errors"] + len(r["dl_errors"])
            lines.append(f"| {s} | {bl.fmt_ms(r['p50'])} | {bl.fmt_ms(r['p99'])} | "
                         f"{bl.fmt_ms(r['max'])} | {bl.fmt_num(r['rps'])} | "
                         f"{bl.fmt_ms(r['base_p50'])} | {bl.fmt_ms(r['base_p99'])} | "
                         f"{bl.fmt_num(r['dl_mbps'], 1)} | {r['dl_completed']} | "
                         f"{r['cpu_pct']:.0f}% | {errs} |")
        lines.append("")
        if "nginx-aio" in cold:
            lines += ["This nginx build supports `aio threads` (`nginx -V` shows "
                      "`--with-threads`).", ""]
    else:
        lines += ["(not run)", ""]

    lines += compress_report(run)
    lines += https_report(run)

    lines += ["## Skipped and failed", ""]
    if not run.skipped and not run.failures:
        lines.append("Nothing.")
    for what, why in run.skipped:
        lines.append(f"- skipped {what}: {why}")
    for section, what, why in run.failures:
        lines.append(f"- failed {section} / {what}: {why}")
    lines += ["", "## Commands", "", "```sh",
              "make bench-deps   # wrk nginx lighttpd h2o strace valgrind (apt), matplotlib (pip)",
              f"{run.results['invocation']}"]
    lines += ["```", "", "Per point ($PORT is the server's free loopback port; done.lua is "
              "a wrk done() hook that prints exact counters):", "", "```sh"]
    for k, v in run.commands.items():
        lines.append(f"# {k}")
        lines.append(v)
    lines += ["```", ""]
    return "\n".join(lines)


def chart(run: Run, servers: list[str]) -> str | None:
    """docs/bench.svg: stoke's throughput and per-CPU-second ratio to each
    peer per load. Returns a reason when it could not be drawn."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib not installed (make bench-deps)"
    ratios = run.results.get("ratios")
    if not ratios:
        return "no load results"
    peers = [s for s in servers if s != "stoke"]
    keys = [k for k in LOAD_KEYS if k in ratios]
    plt.rcParams["svg.hashsalt"] = "stoke-bench"  # stable ids: smaller diffs
    plt.rcParams["svg.fonttype"] = "none"  # text as text, not glyph paths: a smaller file
    fig, axes = plt.subplots(2, 1, figsize=(10, 7.5), sharex=True)
    width = 0.8 / max(1, len(peers))
    for ax, idx, title in ((axes[0], 0, "throughput: stoke ÷ peer"),
                           (axes[1], 1, "work per server CPU-second: stoke ÷ peer")):
        for i, peer in enumerate(peers):
            vals = [(ratios[k].get(peer) or (None, None))[idx] for k in keys]
            xs = [j + (i - (len(peers) - 1) / 2) * width for j in range(len(keys))]
            bars = ax.bar(xs, [v or 0 for v in vals], width, label=peer)
            for b, v in zip(bars, vals):
                ax.annotate("n/a" if v is None else f"{v:.2f}",
                            (b.get_x() + b.get_width() / 2, b.get_height()),
                            ha="center", va="bottom", fontsize=7)
        ax.axhline(1.0, color="black", linewidth=0.8)
        ax.set_title(title, fontsize=10)
        ax.set_ylabel("ratio (>1: stoke ahead)")
        ax.grid(axis="y", alpha=0.3)
    axes[0].legend(title="peer", fontsize=8)
    axes[1].set_xticks(range(len(keys)))
    axes[1].set_xticklabels([LOADS[k].label.replace(", ", "\n")
                             + ("\n(per MB)" if LOADS[k].unit == "MB" else "")
                             for k in keys], fontsize=8)
    m = bl.machine()
    head = "stoke vs peers (medians of %d round(s), %d s each)" % (ROUNDS, SECONDS)
    if NOTE:
        head = NOTE + " — " + head
    fig.suptitle(head, fontsize=11)
    fig.text(0.01, 0.005, f"{m['nproc']} CPUs, {m['cpu']}, kernel {m['kernel']}; "
             f"{WORKERS} workers per server; `make bench`", fontsize=7)
    fig.tight_layout(rect=(0, 0.02, 1, 0.96))
    SVG.parent.mkdir(parents=True, exist_ok=True)
    # The format follows the file name (BENCH_SVG=x.png for a quick look).
    fig.savefig(SVG, **({"metadata": {"Date": None}} if SVG.suffix == ".svg" else {}))
    plt.close(fig)
    return None


def main() -> int:
    bl.install_cleanup()
    started = time.time()
    fdlim = bl.raise_nofile()
    servers = list(SERVERS)
    for s in servers:
        if s not in ("stoke", "nginx", "lighttpd", "h2o"):
            sys.exit(f"unknown server {s!r} in BENCH_SERVERS")
    for k in LOAD_KEYS:
        if k not in LOADS:
            sys.exit(f"unknown load {k!r} in BENCH_LOADS (have: {' '.join(LOADS)})")
    tmp = Path(tempfile.mkdtemp(prefix="stoke-bench-"))
    run = Run(tmp)
    env_bits = [f"{k}={shlex.quote(v)}" for k, v in sorted(os.environ.items())
                if k.startswith("BENCH_") or k in ("STOKE_BIN",)]
    run.results["invocation"] = " ".join(env_bits + ["make bench"])
    if fdlim < IDLE_CONNS + 100 and "idle" in SECTIONS:
        bl.log(f"note: fd limit {fdlim} is below {IDLE_CONNS} idle connections + margin")
    if "stoke" in servers:
        why = bl.build_stoke(SKIP_BUILD)
        if why:
            run.skipped.append(("stoke", why))
            servers.remove("stoke")
    for s in list(servers):
        if s != "stoke" and not bl.which(s):
            run.skipped.append((s, f"{s} not installed (make bench-deps)"))
            servers.remove(s)
    if not bl.which("wrk"):
        run.skipped.append(("loads, cold, compress and https",
                            "wrk not installed (make bench-deps)"))
    run.results["versions"] = bl.peer_versions()
    load_before = bl.loadavg()
    try:
        files = dict(FILES)
        if "cold" in SECTIONS:
            files.update({n: COLD_MIB * bl.MIB for n in COLD_NAMES})
        bl.log(f"writing the docroot ({sum(files.values()) / bl.MIB:.0f} MiB) under {tmp}")
        run.root = bl.make_tree(tmp, files)
        sections = {
            "loads": section_loads, "idle": section_idle, "syscalls": section_syscalls,
            "instructions": section_instructions, "cold": section_cold,
            "compress": section_compress, "https": section_https,
        }
        for name in SECTIONS:
            if name not in sections:
                sys.exit(f"unknown section {name!r} in BENCH_SECTIONS")
            if name in ("loads", "cold", "compress", "https") and not bl.which("wrk"):
                continue
            t0 = time.monotonic()
            bl.log(f"== section {name} ==")
            try:
                sections[name](run, servers)
            except Exception as e:  # one broken section must not lose the others
                run.fail(name, "section", f"{type(e).__name__}: {e}")
            bl.log(f"== section {name} took {time.monotonic() - t0:.0f}s ==")
        text = report(run, servers, started, load_before)
        why = chart(run, servers)
        if why:
            run.skipped.append(("docs/bench.svg", why))
            text = report(run, servers, started, load_before)
        OUT.write_text(text)
        outdir = bl.REPO / "bench-results"
        outdir.mkdir(exist_ok=True)
        raw = outdir / f"bench-{time.strftime('%Y%m%d-%H%M%S')}.json"
        raw.write_text(json.dumps(run.results, indent=1, default=str))
        print(text)
        bl.log(f"wrote {OUT}, {SVG if not why else '(no chart)'}, {raw} "
               f"in {(time.time() - started) / 60:.1f} min")
        return 0
    finally:
        bl.stop_all()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
