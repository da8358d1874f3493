#!/usr/bin/env python3
"""Idle cost of a server: CPU while idle, and memory per idle keep-alive
connection. Normally run via benches/idle.sh (which raises the fd limit).

For each server (stoke, then nginx and lighttpd for comparison):
  1. start it (keep-alive idle timeout 60 s so connections survive the test),
     send a few warm-up requests on a throw-away connection;
  2. idle CPU: utime+stime delta of the whole process tree over
     IDLE_SECONDS with no connections (should be ~0);
  3. VmRSS (summed over the tree) before; open IDLE_CONNS TCP connections,
     each sending one complete GET /small.bin and reading the full response,
     then left open and idle; VmRSS after => bytes per idle connection;
  4. idle CPU again over IDLE_SECONDS with all connections parked
     (catches busy-polling / per-connection timers);
  5. checks how many connections the server still holds open (a server
     that closes them early would make the RSS figure meaningless).

Environment knobs: IDLE_CONNS [1000], IDLE_SECONDS [5], BENCH_WORKERS [2],
IDLE_SERVERS ["stoke nginx lighttpd"], SKIP_BUILD [0] (1 = don't run
cargo build --release first).
"""

from __future__ import annotations

import errno
import os
import resource
import shutil
import socket
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib as bl  # noqa: E402

CONNS = bl.env_int("IDLE_CONNS", 1000)
IDLE_SECONDS = bl.env_int("IDLE_SECONDS", 5)
WORKERS = bl.env_int("BENCH_WORKERS", 2)
SERVERS = os.environ.get("IDLE_SERVERS", "stoke nginx lighttpd").split()
SKIP_BUILD = os.environ.get("SKIP_BUILD", "0") == "1"
KEEPALIVE = 60  # seconds; must outlast the whole measurement

REQUEST = (b"GET /small.bin HTTP/1.1\r\nHost: 127.0.0.1\r\n"
           b"Connection: keep-alive\r\n\r\n")


def raise_nofile(need: int) -> None:
    """The client holds CONNS sockets itself: raise our own RLIMIT_NOFILE."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 65536 if hard == resource.RLIM_INFINITY else min(65536, hard)
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
        soft = want
    if soft < need:
        sys.exit(f"RLIMIT_NOFILE is {soft} (hard {hard}); need >= {need} "
                 f"for IDLE_CONNS={CONNS}")


def read_response(sock: socket.socket) -> int:
    """Read one HTTP/1.1 response with Content-Length; return its status."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed before headers")
        buf += chunk
    head, _, body = buf.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1])
    length = 0
    for line in lines[1:]:
        k, _, v = line.partition(b":")
        if k.strip().lower() == b"content-length":
            length = int(v.strip())
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed mid-body")
        body += chunk
    return status


def open_idle_connections(port: int, n: int) -> list[socket.socket]:
    socks = []
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        socks.append(s)  # append first so it is closed even on error
        s.sendall(REQUEST)
        status = read_response(s)
        if status != 200:
            raise RuntimeError(f"GET /small.bin -> {status}")
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


def idle_cpu(pid: int, seconds: int) -> float:
    c0, _ = bl.tree_cpu(pid)
    time.sleep(seconds)
    c1, _ = bl.tree_cpu(pid)
    return c1 - c0


def measure(srv: bl.Server) -> dict:
    # Warm-up: a few requests on a separate connection, then let it settle.
    warm = open_idle_connections(srv.port, 1)
    for _ in range(9):
        warm[0].sendall(REQUEST)
        read_response(warm[0])
    warm[0].close()
    time.sleep(0.5)

    res = {"idle_cpu0": idle_cpu(srv.pid, IDLE_SECONDS)}
    res["rss0"] = bl.tree_rss(srv.pid)
    t0 = time.monotonic()
    socks = open_idle_connections(srv.port, CONNS)
    res["open_s"] = time.monotonic() - t0
    try:
        time.sleep(1)  # let the server finish per-connection bookkeeping
        res["rss1"] = bl.tree_rss(srv.pid)
        res["idle_cpu1"] = idle_cpu(srv.pid, IDLE_SECONDS)
        res["still_open"] = count_open(socks)
        res["rss2"] = bl.tree_rss(srv.pid)
    finally:
        for s in socks:
            s.close()
    return res


def main() -> int:
    bl.install_cleanup()
    raise_nofile(CONNS + 64)

    skipped: dict[str, str] = {}
    if "stoke" in SERVERS:
        why = bl.build_stoke(SKIP_BUILD)
        if why:
            skipped["stoke"] = why

    tmp = Path(tempfile.mkdtemp(prefix="stoke-idle-"))
    rows = []
    try:
        root = bl.make_docroot(tmp)
        for name in SERVERS:
            if name in skipped:
                continue
            srv = None
            try:
                port = bl.free_port()
                if name == "stoke":
                    srv = bl.stoke_server(root, port, WORKERS, tmp / name,
                                          extra=["--keepalive-timeout", str(KEEPALIVE)])
                elif name == "nginx":
                    srv = bl.nginx_server(root, port, WORKERS, tmp / name,
                                          keepalive_timeout=KEEPALIVE)
                elif name == "lighttpd":
                    srv = bl.lighttpd_server(root, port, WORKERS, tmp / name,
                                             keepalive_timeout=KEEPALIVE)
                else:
                    sys.exit(f"unknown server {name!r} in IDLE_SERVERS")
                srv.start(port)
                bl.log(f"{name} up on 127.0.0.1:{port} (pid {srv.pid}); "
                       f"measuring ~{2 * IDLE_SECONDS + 2}s")
                r = measure(srv)
                r["name"] = name
                rows.append(r)
            except (bl.StartError, OSError, RuntimeError, ValueError) as e:
                msg = str(e)
                if srv is not None and not srv.alive() and not isinstance(e, bl.StartError):
                    msg += "\n" + srv.log_tail()  # died mid-test: show why
                bl.log(f"{name}: SKIPPED: {msg}")
                skipped[name] = msg
            finally:
                if srv is not None:
                    srv.stop()
    finally:
        bl.stop_all()
        shutil.rmtree(tmp, ignore_errors=True)

    print(f"idle test: {CONNS} keep-alive connections, {IDLE_SECONDS}s idle "
          f"windows, {WORKERS} workers/threads per server, loadavg {bl.loadavg()}")
    hdr = ("server", "idle cpu", "idle cpu w/ conns", "rss before", "rss after",
           "rss delta/conn", "still open", "connect+GET all")
    print("{:<9} {:>9} {:>17} {:>11} {:>11} {:>14} {:>10} {:>15}".format(*hdr))
    for r in rows:
        delta = (r["rss1"] - r["rss0"]) / CONNS
        print("{:<9} {:>9} {:>17} {:>11} {:>11} {:>14} {:>10} {:>15}".format(
            r["name"],
            f"{r['idle_cpu0'] * 1000:.0f}ms",
            f"{r['idle_cpu1'] * 1000:.0f}ms",
            f"{r['rss0'] / 1024:.0f}KiB",
            f"{r['rss1'] / 1024:.0f}KiB",
            f"{delta:.0f}B",
            f"{r['still_open']}/{CONNS}",
            f"{r['open_s']:.2f}s"))
    for name, why in skipped.items():
        short = " | ".join(l.strip() for l in why.splitlines() if l.strip())
        print(f"  {name}: SKIPPED: {short[:300]}")
    print("idle cpu = server utime+stime over the window (ticks of "
          f"{1000 / bl.CLK_TCK:.0f}ms); rss summed over all server processes.")
    return 0 if rows and not any(n != "stoke" for n in skipped) else 1


if __name__ == "__main__":
    sys.exit(main())
