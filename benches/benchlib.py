"""Shared helpers for stoke's benchmark scripts (python3 stdlib only).

Used by benches/compare.py and benches/idle.py. Provides:
  * process-tree CPU time / RSS sampling from /proc,
  * free loopback ports,
  * config rendering from the *.conf.in templates next to this file,
  * a Server wrapper that starts stoke / nginx / lighttpd in their own
    process group and always stops them (atexit + SIGTERM/SIGHUP handlers),
  * the bench document root.
"""

from __future__ import annotations

import atexit
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
# Override with STOKE_BIN=/path/to/binary (e.g. to compare two builds);
# setting it also means "don't cargo build".
STOKE_BIN = Path(os.environ.get("STOKE_BIN") or REPO / "target" / "release" / "stoke")

CLK_TCK = os.sysconf("SC_CLK_TCK")

# nginx / lighttpd live in /usr/sbin, which may not be on PATH.
_SEARCH_PATH = os.environ.get("PATH", "") + ":/usr/local/sbin:/usr/sbin:/sbin"


def log(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def which(tool: str) -> str | None:
    return shutil.which(tool, path=_SEARCH_PATH)


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "")
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        sys.exit(f"{name} must be an integer, got {raw!r}")


# --------------------------------------------------------------------------
# /proc sampling
# --------------------------------------------------------------------------

def _children_map() -> dict[int, list[int]]:
    """ppid -> [pid] for every process currently visible in /proc."""
    kids: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue  # raced with exit
        rest = stat[stat.rfind(b")") + 2:].split()
        kids.setdefault(int(rest[1]), []).append(int(entry))
    return kids


def _group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes whose process group is pgid."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        rest = stat[stat.rfind(b")") + 2:].split()
        # rest[0] = state (field 3), rest[2] = pgrp (field 5)
        if int(rest[2]) == pgid and rest[0] not in (b"Z", b"X"):
            out.append(int(entry))
    return out


def process_tree(pid: int) -> list[int]:
    """pid plus all of its live descendants (nginx master + workers, ...)."""
    kids = _children_map()
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(kids.get(p, []))
    return out


def _cpu_ticks(pid: int) -> int:
    """utime + stime of one process (all its threads), in clock ticks."""
    with open(f"/proc/{pid}/stat", "rb") as f:
        stat = f.read()
    # Fields after the ")" that closes comm start at field 3 (state);
    # utime is field 14 and stime field 15 => indexes 11 and 12 here.
    rest = stat[stat.rfind(b")") + 2:].split()
    return int(rest[11]) + int(rest[12])


def tree_cpu(pid: int) -> tuple[float, frozenset[int]]:
    """(CPU-seconds of pid and all live descendants, set of pids sampled)."""
    ticks, pids = 0, []
    for p in process_tree(pid):
        try:
            ticks += _cpu_ticks(p)
            pids.append(p)
        except OSError:
            pass
    return ticks / CLK_TCK, frozenset(pids)


def tree_rss(pid: int) -> int:
    """Sum of VmRSS (bytes) over pid and its live descendants."""
    total = 0
    for p in process_tree(pid):
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1]) * 1024
                        break
        except OSError:
            pass
    return total


def loadavg() -> str:
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "?"


# --------------------------------------------------------------------------
# ports, files, configs
# --------------------------------------------------------------------------

def free_port() -> int:
    """A currently free TCP port on 127.0.0.1 (tiny race, fine for benches)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# name -> size in bytes. "small" files are benchmarked for requests/CPU-s,
# the large one for bytes/CPU-s.
DOCROOT_FILES = {
    "small.bin": 1024,
    "1k.html": 1024,
    "large.bin": 16 * 1024 * 1024,
}
SMALL_LIMIT = 64 * 1024  # files below this are judged on requests/CPU-s


def make_docroot(base: Path) -> Path:
    """Create the bench document root under base; world-readable so any
    server user can serve it."""
    root = base / "docroot"
    root.mkdir(mode=0o755)
    os.chmod(base, 0o755)  # mkdtemp makes 0700 dirs
    for name, size in DOCROOT_FILES.items():
        if name.endswith(".html"):
            head = b"<!doctype html><title>bench</title><pre>\n"
            data = head + b"x" * (size - len(head) - 1) + b"\n"
        else:
            data = os.urandom(size)
        assert len(data) == size
        (root / name).write_bytes(data)
        os.chmod(root / name, 0o644)
    return root


def render_template(template: str, dest: Path, **values: object) -> Path:
    """Replace @KEY@ placeholders in benches/<template>; write to dest."""
    text = (BENCH_DIR / template).read_text()
    for key, val in values.items():
        text = text.replace(f"@{key}@", str(val))
    left = sorted(set(re.findall(r"@[A-Z_]+@", text)))
    if left:
        raise ValueError(f"{template}: unfilled placeholders {left}")
    dest.write_text(text)
    return dest


# --------------------------------------------------------------------------
# server processes
# --------------------------------------------------------------------------

class StartError(RuntimeError):
    pass


_RUNNING: list["Server"] = []


class Server:
    """One server under test, started in its own session/process group so
    that stopping it also reaps forked workers."""

    def __init__(self, name: str, argv: list[str], workdir: Path,
                 env: dict[str, str] | None = None):
        self.name = name
        self.argv = [str(a) for a in argv]
        self.workdir = workdir
        self.env = env
        self.port = 0
        self.proc: subprocess.Popen | None = None
        self.logpath = workdir / "server.log"

    def start(self, port: int, timeout: float = 15.0) -> "Server":
        self.port = port
        logf = open(self.logpath, "wb")
        self.proc = subprocess.Popen(
            self.argv, stdin=subprocess.DEVNULL, stdout=logf,
            stderr=subprocess.STDOUT, env=self.env, start_new_session=True)
        logf.close()
        _RUNNING.append(self)
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise StartError(
                    f"{self.name} exited with status {self.proc.returncode} "
                    f"before listening on port {port}; output:\n{self.log_tail()}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise StartError(f"{self.name} not listening on port {port} "
                                 f"after {timeout:.0f}s; output:\n{self.log_tail()}")
            time.sleep(0.05)
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, n: int = 15) -> str:
        try:
            lines = self.logpath.read_text(errors="replace").splitlines()
        except OSError:
            return "(no output)"
        extra = []
        err = self.workdir / "error.log"  # nginx / lighttpd error log
        if err.exists():
            extra = err.read_text(errors="replace").splitlines()
        out = (lines + extra)[-n:]
        return "\n".join("    " + l for l in out) or "    (no output)"

    def stop(self) -> None:
        """SIGTERM the whole process group, SIGKILL whatever is left after 5s."""
        if self.proc is None:
            return
        pgid = self.proc.pid  # start_new_session => pgid == pid
        try:
            os.killpg(pgid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        # Give forked workers a moment to exit on their own, then SIGKILL
        # whatever is left of the group.
        deadline = time.monotonic() + 3
        while _group_members(pgid) and time.monotonic() < deadline:
            time.sleep(0.05)
        try:
            os.killpg(pgid, signal.SIGKILL)  # stragglers (workers), if any
        except ProcessLookupError:
            pass
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            log(f"warning: {self.name} (pid {pgid}) did not die")
        if self in _RUNNING:
            _RUNNING.remove(self)
        self.proc = None


def stop_all() -> None:
    for srv in list(_RUNNING):
        srv.stop()


_EXITING = False


def _on_signal(signum, _frame):
    # Turn SIGINT/SIGTERM/SIGHUP into SystemExit so finally-blocks and atexit
    # run; a second signal while we are already cleaning up is ignored so it
    # cannot interrupt the server shutdown.
    global _EXITING
    if _EXITING:
        return
    _EXITING = True
    log(f"caught signal {signum}; stopping servers")
    raise SystemExit(128 + signum)


def install_cleanup() -> None:
    """Make sure every started server is stopped on exit, error or signal."""
    atexit.register(stop_all)
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _on_signal)


# --------------------------------------------------------------------------
# server factories
# --------------------------------------------------------------------------

def stoke_server(root: Path, port: int, workers: int, workdir: Path,
                 extra: list[str] | None = None) -> Server:
    if not STOKE_BIN.exists():
        raise StartError(f"{STOKE_BIN} not found (cargo build --release first)")
    workdir.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, RUST_LOG="warn")  # silence per-request access log
    argv = [STOKE_BIN, root, "--listen", f"127.0.0.1:{port}",
            "--threads", workers, *(extra or [])]
    return Server("stoke", argv, workdir, env)


def nginx_server(root: Path, port: int, workers: int, workdir: Path,
                 keepalive_timeout: int = 65) -> Server:
    exe = which("nginx")
    if not exe:
        raise StartError("nginx not installed (run benches/setup.sh)")
    workdir.mkdir(parents=True, exist_ok=True)
    # As root, nginx would drop workers to 'nobody'; keep root so that the
    # (0700-parent) temp dirs stay readable and nothing needs chown.
    user = "user root;" if os.geteuid() == 0 else "# (not root: no user directive)"
    conf = render_template("nginx.conf.in", workdir / "nginx.conf",
                           WORKERS=workers, USER_DIRECTIVE=user, DIR=workdir,
                           PORT=port, ROOT=root,
                           KEEPALIVE_TIMEOUT=keepalive_timeout)
    # -p prefix and -e error log keep nginx away from /etc/nginx, /var/log.
    argv = [exe, "-p", workdir, "-c", conf, "-e", workdir / "error.log"]
    return Server("nginx", argv, workdir)


def lighttpd_server(root: Path, port: int, workers: int, workdir: Path,
                    keepalive_timeout: int = 5) -> Server:
    exe = which("lighttpd")
    if not exe:
        raise StartError("lighttpd not installed (run benches/setup.sh)")
    workdir.mkdir(parents=True, exist_ok=True)
    # lighttpd is single-threaded; with >1 workers we use server.max-worker
    # (forked processes). 1 worker => plain single process (max-worker 0).
    conf = render_template("lighttpd.conf.in", workdir / "lighttpd.conf",
                           ROOT=root, PORT=port, DIR=workdir,
                           MAX_WORKER=workers if workers > 1 else 0,
                           KEEPALIVE_TIMEOUT=keepalive_timeout)
    argv = [exe, "-D", "-f", conf]
    return Server("lighttpd", argv, workdir)


def build_stoke(skip: bool = False) -> str | None:
    """cargo build --release; returns a skip reason or None on success."""
    if skip or os.environ.get("STOKE_BIN"):
        log(f"not building stoke (SKIP_BUILD/STOKE_BIN set); using {STOKE_BIN}")
        return None
    cargo = which("cargo")
    if not cargo:
        return "cargo not found"
    log("cargo build --release (stoke)")
    try:
        res = subprocess.run([cargo, "build", "--release"], cwd=REPO, timeout=900)
    except subprocess.TimeoutExpired:
        return "cargo build --release timed out"
    if res.returncode != 0:
        return f"cargo build --release failed (status {res.returncode})"
    return None


def http_get(port: int, path: str, timeout: float = 10.0) -> tuple[int, bytes]:
    """One plain GET via http.client; returns (status, body)."""
    import http.client
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def tool_version(argv: list[str]) -> str:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    text = (out.stdout + out.stderr).strip().splitlines()
    return text[0] if text else "?"
