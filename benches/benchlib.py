"""Shared helpers for stoke's benchmark harnesses.

Used by benches/bench.py (`make bench`, `make bench-idle`: stoke vs
nginx/lighttpd/h2o) and benches/models.py (`make compare-models`: stoke's
concurrency models). Python 3 stdlib only;
matplotlib is imported lazily by the chart code in the harnesses.

What lives here:
  * /proc sampling: CPU of a whole process tree and per thread, RSS,
    thread counts, and a background Sampler for peaks during a run;
  * wrk: one bounded run with a Lua done() hook that prints exact counters;
  * servers: start stoke / nginx / lighttpd / h2o from the *.conf.in
    templates next to this file, each in its own process group, always
    stopped on exit, error or signal;
  * files: the document root, big cold files, dropping them from the page
    cache (global drop_caches or per-file posix_fadvise);
  * idle keep-alive connections and sequential requests over one socket;
  * the machine description and small formatting helpers.

Everything listens on and connects to 127.0.0.1 only; every client run is
bounded in time.
"""

from __future__ import annotations

import atexit
import errno
import json
import os
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
# Override with STOKE_BIN=/path/to/binary (e.g. to compare two builds);
# setting it also means "don't cargo build".
STOKE_BIN = Path(os.environ.get("STOKE_BIN") or REPO / "target" / "release" / "stoke")

CLK_TCK = os.sysconf("SC_CLK_TCK")

# nginx / lighttpd / h2o live in /usr/sbin, which may not be on PATH.
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


def env_float(name: str, default: float) -> float:
    raw = os.environ.get(name, "")
    if not raw:
        return default
    try:
        return float(raw)
    except ValueError:
        sys.exit(f"{name} must be a number, got {raw!r}")


def env_list(name: str, default: str) -> list[str]:
    return (os.environ.get(name) or default).split()


def env_flag(name: str) -> bool:
    return os.environ.get(name, "0") not in ("", "0", "no", "false")


# --------------------------------------------------------------------------
# resource limits
# --------------------------------------------------------------------------

def raise_nofile(need: int = 0) -> int:
    """Raise our soft RLIMIT_NOFILE as far as the hard limit allows (servers
    and wrk started from here inherit it). Returns the new soft limit; exits
    if it stays below `need`. Containers without CAP_SYS_RESOURCE cannot
    raise the hard limit (here it is 20000), so we never try to."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 1 << 20 if hard == resource.RLIM_INFINITY else hard
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
        soft = want
    if soft < need:
        sys.exit(f"RLIMIT_NOFILE is {soft} (hard {hard}); need >= {need}")
    return soft


def nofile_limit() -> int:
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


# --------------------------------------------------------------------------
# /proc sampling
# --------------------------------------------------------------------------

def _stat_fields(path: str) -> tuple[str, list[bytes]]:
    """(comm, fields after the ')' that closes comm) of a /proc stat file."""
    with open(path, "rb") as f:
        stat = f.read()
    lpar, rpar = stat.find(b"("), stat.rfind(b")")
    return stat[lpar + 1:rpar].decode(errors="replace"), stat[rpar + 2:].split()


def _children_map() -> dict[int, list[int]]:
    """ppid -> [pid] for every process currently visible in /proc."""
    kids: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            _, rest = _stat_fields(f"/proc/{entry}/stat")
        except OSError:
            continue  # raced with exit
        kids.setdefault(int(rest[1]), []).append(int(entry))
    return kids


def _group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes whose process group is pgid."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            _, rest = _stat_fields(f"/proc/{entry}/stat")
        except OSError:
            continue
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
    # Fields after the ")" that closes comm start at field 3 (state);
    # utime is field 14 and stime field 15 => indexes 11 and 12 here.
    _, rest = _stat_fields(f"/proc/{pid}/stat")
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


def thread_cpu(pid: int) -> dict[int, tuple[str, float]]:
    """tid -> (thread name, CPU-seconds) for every thread of the tree."""
    out = {}
    for p in process_tree(pid):
        try:
            tids = os.listdir(f"/proc/{p}/task")
        except OSError:
            continue
        for t in tids:
            try:
                comm, rest = _stat_fields(f"/proc/{p}/task/{t}/stat")
            except OSError:
                continue
            out[int(t)] = (comm, (int(rest[11]) + int(rest[12])) / CLK_TCK)
    return out


def thread_group(name: str) -> str:
    """'stoke-worker-3' -> 'stoke-worker': threads numbered by index are
    one group."""
    return re.sub(r"[-_ ]?\d+$", "", name) or name


def cpu_split(before: dict[int, tuple[str, float]],
              after: dict[int, tuple[str, float]]) -> dict[str, float]:
    """CPU-seconds used between two thread_cpu() samples, per thread group.
    Threads that appeared in between count from zero."""
    out: dict[str, float] = {}
    for tid, (name, cpu) in after.items():
        delta = cpu - before.get(tid, (name, 0.0))[1]
        out[thread_group(name)] = out.get(thread_group(name), 0.0) + max(0.0, delta)
    return out


def _status_field(pid: int, key: str) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key):
                return int(line.split()[1])
    return 0


def tree_rss(pid: int) -> int:
    """Sum of VmRSS (bytes) over pid and its live descendants."""
    total = 0
    for p in process_tree(pid):
        try:
            total += _status_field(p, "VmRSS:") * 1024
        except OSError:
            pass
    return total


def tree_threads(pid: int) -> int:
    """Threads (/proc/PID/status Threads) summed over the process tree."""
    total = 0
    for p in process_tree(pid):
        try:
            total += _status_field(p, "Threads:")
        except OSError:
            pass
    return total


class Sampler:
    """Samples a server tree's RSS and thread count in the background and
    keeps the peaks (a run's RSS is highest while its connections are open,
    which is before wrk's end-of-run summary)."""

    def __init__(self, pid: int, interval: float = 0.25):
        self.pid, self.interval = pid, interval
        self.max_rss = self.max_threads = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> None:
        self.max_rss = max(self.max_rss, tree_rss(self.pid))
        self.max_threads = max(self.max_threads, tree_threads(self.pid))

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def __enter__(self) -> "Sampler":
        self._sample()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()


def loadavg() -> str:
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "?"


# --------------------------------------------------------------------------
# the machine
# --------------------------------------------------------------------------

def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "?"


def mem_total_gib() -> float:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) / 2**20
    except OSError:
        pass
    return 0.0


def machine() -> dict[str, str]:
    return {
        "nproc": str(os.cpu_count()),
        "cpu": cpu_model(),
        "kernel": os.uname().release,
        "memory": f"{mem_total_gib():.0f} GiB",
        "host": os.uname().nodename,
    }


def tool_version(argv: list[str]) -> str:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    text = (out.stdout + out.stderr).strip().splitlines()
    return text[0] if text else "?"


def stoke_version() -> str:
    ver = tool_version([str(STOKE_BIN), "--version"]) if STOKE_BIN.exists() else "missing"
    try:
        rev = subprocess.run(["git", "-C", str(REPO), "describe", "--always", "--dirty"],
                             capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        rev = ""
    return f"{ver} ({rev})" if rev else ver


def peer_versions() -> dict[str, str]:
    out = {"stoke": stoke_version()}
    for name, argv in (("nginx", ["nginx", "-v"]), ("lighttpd", ["lighttpd", "-v"]),
                       ("h2o", ["h2o", "--version"]), ("wrk", ["wrk", "--version"]),
                       ("strace", ["strace", "-V"]), ("valgrind", ["valgrind", "--version"])):
        exe = which(argv[0])
        out[name] = tool_version([exe, *argv[1:]]) if exe else "not installed"
    return out


# --------------------------------------------------------------------------
# ports, files, configs
# --------------------------------------------------------------------------

def free_port() -> int:
    """A currently free TCP port on 127.0.0.1 (tiny race, fine for benches)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


KIB, MIB = 1024, 1024 * 1024

# Files are written in blocks of this size; each block gets its own index
# stamped at the front so no two blocks of a file are equal (nothing below
# us can deduplicate them) without paying for os.urandom per byte.
_WRITE_BLOCK = MIB


def write_file(path: Path, size: int, html: bool = False) -> None:
    """A file of exactly `size` bytes, world-readable, flushed to disk (so a
    later page-cache drop really evicts it: dirty pages cannot be dropped)."""
    if html:
        head = b"<!doctype html><title>bench</title><pre>\n"
        data = head + b"x" * max(0, size - len(head) - 1) + b"\n"
        path.write_bytes(data[:size])
    else:
        block = os.urandom(min(size, _WRITE_BLOCK))
        with open(path, "wb") as f:
            for i in range(0, size, _WRITE_BLOCK):
                n = min(_WRITE_BLOCK, size - i)
                stamp = f"{path.name}:{i}:".encode()
                f.write((stamp + block[len(stamp):])[:n])
            f.flush()
            os.fsync(f.fileno())
    os.chmod(path, 0o644)


def make_tree(base: Path, files: dict[str, int]) -> Path:
    """A docroot `base/docroot` with files name -> size ('a/b.bin' makes
    sub-directories); names ending in .html get text content."""
    root = base / "docroot"
    root.mkdir(mode=0o755, exist_ok=True)
    os.chmod(base, 0o755)  # mkdtemp makes 0700 dirs
    for name, size in files.items():
        path = root / name
        path.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
        write_file(path, size, html=name.endswith(".html"))
    # Dated a minute back, like a deployed tree: a directory changed in the
    # last seconds is one stoke re-checks for new .gz/.br sidecars on every
    # request (its memo of "none" waits until the directory settles).
    then = time.time() - 60
    for p in sorted(root.rglob("*"), reverse=True) + [root]:
        os.utime(p, (then, then))
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
# page cache
# --------------------------------------------------------------------------

def drop_caches() -> bool:
    """sync + echo 3 > /proc/sys/vm/drop_caches; False if not permitted."""
    try:
        os.sync()
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
        return True
    except OSError:
        return False


def fadvise_dontneed(paths: list[Path]) -> None:
    """Evict these (clean) files from the page cache."""
    for p in paths:
        fd = os.open(p, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def make_cold(paths: list[Path], method: str = "drop") -> str:
    """Evict `paths` from the page cache. method 'drop' tries the global
    drop_caches first (falls back to fadvise); 'fadvise' only touches our
    own files. Returns what was done, for the report."""
    if method == "drop" and drop_caches():
        return "echo 3 > /proc/sys/vm/drop_caches"
    fadvise_dontneed(paths)
    why = "" if method == "fadvise" else " (drop_caches not permitted)"
    return f"posix_fadvise(POSIX_FADV_DONTNEED) per file{why}"


class ColdKeeper:
    """Keeps a set of files out of the page cache while a run goes on by
    calling posix_fadvise(DONTNEED) on each every `interval` seconds, as if
    memory were too small to hold them. Pages in use at that instant may
    survive a pass; the next pass gets them."""

    def __init__(self, paths: list[Path], interval: float = 0.5):
        self.paths, self.interval = paths, interval
        self.passes = 0
        self._stop = threading.Event()
        self._fds: list[int] = []
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            for fd in self._fds:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            self.passes += 1

    def __enter__(self) -> "ColdKeeper":
        self._fds = [os.open(p, os.O_RDONLY) for p in self.paths]
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        for fd in self._fds:
            os.close(fd)
        self._fds = []


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

    def wrap(self, prefix: list[str]) -> "Server":
        """Run the server under a tool (strace, valgrind, ...)."""
        self.argv = [str(a) for a in prefix] + self.argv
        return self

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
                rc = self.proc.returncode
                _RUNNING.remove(self)
                self.proc = None
                raise StartError(
                    f"{self.name} exited with status {rc} "
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
        err = self.workdir / "error.log"  # nginx / lighttpd / h2o error log
        if err.exists():
            extra = err.read_text(errors="replace").splitlines()
        out = (lines + extra)[-n:]
        return "\n".join("    " + l for l in out) or "    (no output)"

    def stop(self, grace: float = 5.0) -> None:
        """SIGTERM the whole process group, SIGKILL whatever is left after
        `grace` seconds (raise it for servers under valgrind, which write
        their profile on exit)."""
        if self.proc is None:
            return
        pgid = self.proc.pid  # start_new_session => pgid == pid
        try:
            os.killpg(pgid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            self.proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            pass
        # Give forked workers a moment to exit on their own, then SIGKILL
        # whatever is left of the group.
        deadline = time.monotonic() + max(3.0, grace)
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

# Connection slots every server gets (stoke --max-connections, nginx
# worker_connections, lighttpd max-connections, h2o max-connections): above
# the 10,000 idle connections the benches hold, plus the active ones.
MAX_CONNECTIONS = 16384


def _fd_budget() -> int:
    """fds a server may ask for: our soft limit (servers inherit it and
    cannot go above the hard limit without CAP_SYS_RESOURCE)."""
    return nofile_limit()


def stoke_server(root: Path, port: int, workers: int, workdir: Path,
                 extra: list[str] | None = None,
                 tls: tuple[Path, Path] | None = None) -> Server:
    """tls=(cert, key): serve HTTPS only (--listen-tls) instead of HTTP."""
    if not STOKE_BIN.exists():
        raise StartError(f"{STOKE_BIN} not found (cargo build --release first)")
    workdir.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, RUST_LOG="warn")  # silence per-request access log
    listen = (["--listen-tls", f"127.0.0.1:{port}", "--tls-cert", tls[0], "--tls-key", tls[1]]
              if tls else ["--listen", f"127.0.0.1:{port}"])
    argv = [STOKE_BIN, root, *listen, "--threads", workers, *(extra or [])]
    return Server("stoke", argv, workdir, env)


def stoke_has_flag(flag: str) -> bool:
    """Whether `stoke --help` mentions flag (e.g. '--model')."""
    if not STOKE_BIN.exists():
        return False
    try:
        out = subprocess.run([str(STOKE_BIN), "--help"], capture_output=True,
                             text=True, timeout=10).stdout
    except (OSError, subprocess.TimeoutExpired):
        return False
    return re.search(rf"(^|\s){re.escape(flag)}\b", out) is not None


def nginx_server(root: Path, port: int, workers: int, workdir: Path,
                 keepalive_timeout: int = 65, aio_threads: bool = False,
                 name: str = "nginx", http_extra: str = "",
                 listen_opts: str = "") -> Server:
    """http_extra: directives added to the http block (gzip, ssl_*);
    listen_opts: appended to the listen address (" ssl")."""
    exe = which("nginx")
    if not exe:
        raise StartError("nginx not installed (run make bench-deps)")
    workdir.mkdir(parents=True, exist_ok=True)
    # As root, nginx would drop workers to 'nobody'; keep root so that the
    # (0700-parent) temp dirs stay readable and nothing needs chown.
    user = "user root;" if os.geteuid() == 0 else "# (not root: no user directive)"
    conf = render_template(
        "nginx.conf.in", workdir / "nginx.conf",
        WORKERS=workers, USER_DIRECTIVE=user, DIR=workdir, PORT=port, ROOT=root,
        KEEPALIVE_TIMEOUT=keepalive_timeout,
        WORKER_CONNECTIONS=MAX_CONNECTIONS, RLIMIT_NOFILE=_fd_budget(),
        AIO_DIRECTIVE="aio threads;  # reads and sendfile in nginx's thread pool"
        if aio_threads else "# aio off (nginx default)",
        HTTP_EXTRA=http_extra or "# (no section extras)", LISTEN_OPTS=listen_opts)
    # -p prefix and -e error log keep nginx away from /etc/nginx, /var/log.
    argv = [exe, "-p", workdir, "-c", conf, "-e", workdir / "error.log"]
    return Server(name, argv, workdir)


def lighttpd_server(root: Path, port: int, workers: int, workdir: Path,
                    keepalive_timeout: int = 5, extra: str = "") -> Server:
    """extra: config lines appended to the template (mod_deflate, ...)."""
    exe = which("lighttpd")
    if not exe:
        raise StartError("lighttpd not installed (run make bench-deps)")
    workdir.mkdir(parents=True, exist_ok=True)
    # lighttpd is single-threaded; with >1 workers we use server.max-worker
    # (forked processes). 1 worker => plain single process (max-worker 0).
    conf = render_template("lighttpd.conf.in", workdir / "lighttpd.conf",
                           ROOT=root, PORT=port, DIR=workdir,
                           MAX_WORKER=workers if workers > 1 else 0,
                           KEEPALIVE_TIMEOUT=keepalive_timeout,
                           MAX_FDS=_fd_budget(), MAX_CONNECTIONS=MAX_CONNECTIONS,
                           EXTRA=extra or "# (no section extras)")
    argv = [exe, "-D", "-f", conf]
    return Server("lighttpd", argv, workdir)


def h2o_server(root: Path, port: int, workers: int, workdir: Path,
               keepalive_timeout: int = 10) -> Server:
    exe = which("h2o")
    if not exe:
        raise StartError("h2o not installed (run make bench-deps)")
    workdir.mkdir(parents=True, exist_ok=True)
    user = "user: root" if os.geteuid() == 0 else "# (not root: no user directive)"
    conf = render_template("h2o.conf.in", workdir / "h2o.conf",
                           ROOT=root, PORT=port, DIR=workdir, WORKERS=workers,
                           USER_DIRECTIVE=user, KEEPALIVE_TIMEOUT=keepalive_timeout,
                           MAX_CONNECTIONS=MAX_CONNECTIONS)
    argv = [exe, "-c", conf]
    return Server("h2o", argv, workdir)


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


# --------------------------------------------------------------------------
# clients
# --------------------------------------------------------------------------

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


def https_get(port: int, path: str, timeout: float = 10.0) -> tuple[int, bytes]:
    """One GET over TLS to 127.0.0.1 (the bench's self-signed certificate:
    not verified)."""
    import http.client
    import ssl
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=timeout, context=ctx)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def encoded_get(port: int, path: str, accept: str,
                timeout: float = 10.0) -> tuple[int, str, bytes]:
    """One GET with Accept-Encoding; (status, Content-Encoding or
    'identity', body as sent on the wire, de-chunked)."""
    import http.client
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path, headers={"Accept-Encoding": accept})
        resp = conn.getresponse()
        return resp.status, resp.getheader("Content-Encoding") or "identity", resp.read()
    finally:
        conn.close()


def make_cert(dest: Path, kind: str = "ec") -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 made by openssl into dest,
    ECDSA P-256 (kind "ec") or RSA-2048 (kind "rsa"); returns (cert, key).
    Raises StartError without openssl."""
    exe = which("openssl")
    if not exe:
        raise StartError("openssl not installed")
    dest.mkdir(parents=True, exist_ok=True)
    crt, key = dest / f"{kind}.crt", dest / f"{kind}.key"
    newkey = (["-newkey", "rsa:2048"] if kind == "rsa"
              else ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"])
    out = subprocess.run(
        [exe, "req", "-x509", *newkey,
         "-nodes", "-keyout", str(key), "-out", str(crt), "-days", "2",
         "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1"],
        capture_output=True, text=True, timeout=30)
    if out.returncode != 0:
        raise StartError(f"openssl req failed: {out.stderr.strip()[-300:]}")
    os.chmod(key, 0o644)  # readable by nginx workers whatever their user
    return crt, key


_WORDS = ("the server sends each file once and caches the compressed variant so "
          "later requests cost only a copy while nginx compresses every response "
          "again at level six which spends processor time on bytes that never "
          "change between requests static sites mostly serve markup style sheets "
          "scripts and images browsers ask for brotli first then gzip").split()


def html_text(size: int, seed: int = 1) -> bytes:
    """Realistic compressible HTML of exactly `size` bytes: varied prose in
    paragraphs, lists, links and tables (deterministic for a seed), so it
    compresses like a real page (~4-6x), not like one repeated byte."""
    import random
    rnd = random.Random(seed)
    parts = ["<!doctype html>\n<html lang=\"en\">\n<head><meta charset=\"utf-8\">"
             "<title>stoke compression benchmark</title>"
             "<link rel=\"stylesheet\" href=\"/style.css\"></head>\n<body>\n"]
    n = 0
    while sum(map(len, parts)) < size:
        n += 1
        sent = lambda k: " ".join(rnd.choice(_WORDS) for _ in range(k)).capitalize() + "."
        kind = n % 4
        if kind == 0:
            parts.append(f"<h2 id=\"s{n}\">{sent(rnd.randint(3, 7))}</h2>\n")
        elif kind == 1:
            parts.append("<p>" + " ".join(sent(rnd.randint(6, 18))
                                           for _ in range(rnd.randint(2, 5))) + "</p>\n")
        elif kind == 2:
            items = "".join(f"<li><a href=\"/docs/{rnd.choice(_WORDS)}-{rnd.randint(1, 999)}"
                            f".html\">{sent(rnd.randint(2, 6))}</a></li>\n"
                            for _ in range(rnd.randint(2, 6)))
            parts.append(f"<ul class=\"nav\">\n{items}</ul>\n")
        else:
            rows = "".join(f"<tr><td>{rnd.choice(_WORDS)}</td><td>{rnd.randint(0, 99999)}"
                           f"</td><td>{rnd.random():.3f}</td></tr>\n"
                           for _ in range(rnd.randint(2, 5)))
            parts.append(f"<table>\n{rows}</table>\n")
    tail = b"</body>\n</html>\n"
    body = "".join(parts).encode()[:size - len(tail)]
    return body + tail


def check_serves(port: int, root: Path, names: list[str], who: str) -> None:
    """The server must return 200 and the exact bytes of each file, or its
    numbers would be meaningless (e.g. fast 404s)."""
    for name in names:
        status, body = http_get(port, "/" + name, timeout=60)
        want = (root / name).read_bytes()
        if status != 200 or body != want:
            raise StartError(f"{who}: GET /{name} -> {status}, {len(body)} bytes "
                             f"(expected 200, {len(want)} bytes)")


def request_bytes(path: str) -> bytes:
    return (f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            "Connection: keep-alive\r\n\r\n").encode()


def read_response(sock: socket.socket, buf: bytes = b"") -> tuple[int, bytes]:
    """Read one HTTP/1.1 response with Content-Length; returns (status,
    bytes already read past its end)."""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed before headers")
        buf += chunk
    head, _, rest = buf.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1])
    length = 0
    for line in lines[1:]:
        k, _, v = line.partition(b":")
        if k.strip().lower() == b"content-length":
            length = int(v.strip())
    while len(rest) < length:
        chunk = sock.recv(max(65536, length - len(rest)))
        if not chunk:
            raise ConnectionError("closed mid-body")
        rest += chunk
    return status, rest[length:]


def sequential_requests(port: int, path: str, n: int, timeout: float = 30.0) -> None:
    """n GETs, one after the other, over one keep-alive connection."""
    req = request_bytes(path)
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        left = b""
        for _ in range(n):
            s.sendall(req)
            status, left = read_response(s, left)
            if status != 200:
                raise RuntimeError(f"GET {path} -> {status}")


def open_idle_connections(port: int, n: int, path: str,
                          deadline_s: float = 120.0) -> list[socket.socket]:
    """n connections, each after one complete GET, left open and idle. On
    failure the opened sockets are closed and the error names how many got
    through."""
    socks: list[socket.socket] = []
    req = request_bytes(path)
    deadline = time.monotonic() + deadline_s
    try:
        for i in range(n):
            if time.monotonic() > deadline:
                raise TimeoutError(f"still opening after {deadline_s:.0f}s")
            s = socket.create_connection(("127.0.0.1", port), timeout=10)
            socks.append(s)  # append first so it is closed even on error
            s.sendall(req)
            status, _ = read_response(s)
            if status != 200:
                raise RuntimeError(f"GET {path} -> {status}")
    except (OSError, RuntimeError) as e:  # TimeoutError is an OSError
        got = len(socks)
        close_all(socks)
        raise RuntimeError(f"opened {got}/{n} idle connections, then: {e}") from e
    except BaseException:
        close_all(socks)
        raise
    return socks


def count_open(socks: list[socket.socket]) -> int:
    """Connections the server has not closed (peek without blocking)."""
    alive = 0
    for s in socks:
        # Must be non-blocking: with a timeout set, Python would poll-and-wait
        # on EAGAIN instead of raising BlockingIOError.
        s.setblocking(False)
        try:
            data = s.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
            alive += 1 if data else 0  # b"" => server closed it
        except BlockingIOError:
            alive += 1  # nothing to read and not closed: idle and open
        except OSError as e:
            if e.errno not in (errno.ECONNRESET, errno.EPIPE):
                raise
    return alive


def close_all(socks: list[socket.socket]) -> None:
    for s in socks:
        try:
            s.close()
        except OSError:
            pass


# --------------------------------------------------------------------------
# wrk
# --------------------------------------------------------------------------

# wrk's Lua done() hook gives exact counters (no parsing of "1.23MB"). With
# only done() defined, wrk keeps its fast non-scripted request path.
WRK_DONE_LUA = r"""
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests":%.0f,"bytes":%.0f,"duration_us":%.0f,' ..
    '"connect":%.0f,"read":%.0f,"write":%.0f,"status":%.0f,"timeout":%.0f,' ..
    '"p50_us":%.0f,"p90_us":%.0f,"p99_us":%.0f,"max_us":%.0f}\n',
    summary.requests, summary.bytes, summary.duration,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.max))
end
"""


def wrk_random_paths_lua(prefix: str, count: int, suffix: str) -> str:
    """A wrk script whose every request picks one of `count` files
    prefix<1..count>suffix at random (each wrk thread seeded apart)."""
    return (r"""
local counter = 0
setup = function(thread)
  counter = counter + 1
  thread:set("seed", counter)
end
init = function(args)
  math.randomseed(os.time() * 1000 + seed)
end
request = function()
  return wrk.format(nil, "%s" .. math.random(%d) .. "%s")
end
""" % (prefix, count, suffix)) + WRK_DONE_LUA


def wrk_argv(port: int, path: str, conns: int, seconds: float, lua: Path,
             headers: list[str] = (), threads: int = 2,
             timeout_s: float = 10.0, scheme: str = "http") -> list[str]:
    threads = max(1, min(threads, conns))  # wrk needs conns >= threads
    argv = [which("wrk") or "wrk", f"-t{threads}", f"-c{conns}",
            f"-d{max(1, round(seconds))}s", f"--timeout={timeout_s:g}s", "--latency"]
    for h in headers:
        argv += ["-H", h]
    return argv + ["-s", str(lua), f"{scheme}://127.0.0.1:{port}{path}"]


def run_wrk(argv: list[str], seconds: float) -> dict:
    """Run wrk (hard-bounded on top of its -d); returns the done() counters
    plus 'errors' (socket errors + non-2xx/3xx)."""
    out = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60)
    for line in out.stdout.splitlines():
        if line.startswith("WRKJSON "):
            w = json.loads(line[len("WRKJSON "):])
            w["errors"] = int(w["status"] + w["connect"] + w["read"]
                              + w["write"] + w["timeout"])
            return w
    raise RuntimeError(f"wrk failed (status {out.returncode}): "
                       f"{(out.stdout + out.stderr).strip()[-500:]}")


def measure(srv: Server, argv: list[str], seconds: float,
            per_thread: bool = False, sample: bool = False) -> dict:
    """One wrk run against srv with the server tree's CPU (and optionally
    per-thread CPU and peak RSS / threads) sampled around it."""
    t0 = thread_cpu(srv.pid) if per_thread else {}
    cpu0, pids0 = tree_cpu(srv.pid)
    if sample:
        with Sampler(srv.pid) as smp:
            w = run_wrk(argv, seconds)
        w["max_rss"], w["max_threads"] = smp.max_rss, smp.max_threads
    else:
        w = run_wrk(argv, seconds)
    cpu1, pids1 = tree_cpu(srv.pid)
    w["cpu_s"] = max(0.0, cpu1 - cpu0)
    w["secs"] = w["duration_us"] / 1e6
    if pids0 != pids1:
        w["note"] = f"process set changed during run ({len(pids0)} -> {len(pids1)})"
    if per_thread:
        w["cpu_split"] = cpu_split(t0, thread_cpu(srv.pid))
    if not srv.alive():
        raise RuntimeError(f"{srv.name} exited during the run:\n{srv.log_tail()}")
    return w


# --------------------------------------------------------------------------
# small helpers
# --------------------------------------------------------------------------

def median(xs: list[float]) -> float | None:
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def fmt_num(x: float | None, digits: int = 0) -> str:
    if x is None:
        return "–"
    if abs(x) >= 100 or digits == 0:
        return f"{x:,.0f}"
    return f"{x:,.{digits}f}"


def fmt_ms(us: float | None) -> str:
    if us is None:
        return "–"
    ms = us / 1000
    return f"{ms:.2f} ms" if ms < 10 else f"{ms:.0f} ms"


def fmt_bytes(x: float | None) -> str:
    if x is None:
        return "–"
    for suffix, div in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if abs(x) >= div:
            return f"{x / div:.1f} {suffix}"
    return f"{x:.0f} B"


def short_error(e: BaseException | str, limit: int = 200) -> str:
    # " / " rather than "|": these strings end up in markdown table cells.
    text = " / ".join(l.strip() for l in str(e).splitlines() if l.strip()).replace("|", "/")
    return text[:limit] + ("…" if len(text) > limit else "")
