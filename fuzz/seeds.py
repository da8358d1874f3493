#!/usr/bin/env python3
"""Regenerates the seed corpora under fuzz/corpus/ (run from anywhere).

Real request heads captured from curl, headless Chromium and wrk live in
fuzz/seeds-src/*.head; the rest are hand-written edge cases. Connection seeds
are `[n][n op bytes][client byte stream]` (see fuzz/checks/connection.rs).
"""
import hashlib, os, pathlib, shutil

HERE = pathlib.Path(__file__).resolve().parent
CORPUS = HERE / "corpus"

def write(target, name, data):
    d = CORPUS / target
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_bytes(data if isinstance(data, bytes) else data.encode())

real = {p.stem: p.read_bytes() for p in sorted((HERE / "seeds-src").glob("*.head"))}

H = "Host: h\r\n"
heads = {
    "minimal": "GET / HTTP/1.1\r\nHost: h\r\n\r\n",
    "http10": "GET /a HTTP/1.0\r\n\r\n",
    "http10-keepalive": "GET /a HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
    "head-query": "HEAD /x/y.txt?q=1&r=%20 HTTP/1.1\r\nHost: h\r\n\r\n",
    "leading-crlf": "\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n",
    "bare-lf": "GET / HTTP/1.1\nHost: h\n\n",
    "cl-te": "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n",
    "te-cl": "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n",
    "double-cl": "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
    "cl-list": "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5, 5\r\n\r\n",
    "cl-plus": "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: +5\r\n\r\n",
    "te-gzip-chunked": "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
    "te-chunked-http10": "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
    "te-space": "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding : chunked\r\n\r\n",
    "obs-fold": "GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n b\r\n\r\n",
    "bare-cr": "GET / HTTP/1.1\r\nHost: h\rX: y\r\n\r\n",
    "nul-in-value": "GET / HTTP/1.1\r\nHost: h\r\nX: a\x00b\r\n\r\n",
    "absolute-form": "GET http://example.com/a/b?c HTTP/1.1\r\nHost: example.com\r\n\r\n",
    "absolute-no-path": "GET HTTPS://example.com?x HTTP/1.1\r\nHost: example.com\r\n\r\n",
    "asterisk": "OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n",
    "asterisk-get": "GET * HTTP/1.1\r\nHost: h\r\n\r\n",
    "connect": "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n",
    "no-host": "GET / HTTP/1.1\r\n\r\n",
    "two-hosts": "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
    "http2": "GET / HTTP/2.0\r\nHost: h\r\n\r\n",
    "h2-preface": "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
    "lowercase-method": "get / HTTP/1.1\r\nHost: h\r\n\r\n",
    "expect": "PUT /f HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n",
    "expect-unknown": "PUT /f HTTP/1.1\r\nHost: h\r\nExpect: 100-continue, foo\r\nContent-Length: 3\r\n\r\n",
    "conditional": "GET /f HTTP/1.1\r\nHost: h\r\nIf-None-Match: \"a\"\r\nif-none-match: W/\"b\"\r\nIf-Modified-Since: Sun, 06 Nov 1994 08:49:37 GMT\r\nRange: bytes=0-1\r\nIf-Range: \"a\"\r\n\r\n",
    "huge-header": "GET / HTTP/1.1\r\nHost: h\r\nX: " + "a" * 9000 + "\r\n\r\n",
    "huge-target": "GET /" + "a" * 9000 + " HTTP/1.1\r\nHost: h\r\n\r\n",
    "many-headers": "GET / HTTP/1.1\r\nHost: h\r\n" + "".join(f"X{i}: v\r\n" for i in range(70)) + "\r\n",
    "obs-text": "GET / HTTP/1.1\r\nHost: h\r\nUser-Agent: caf\xe9\r\n\r\n",
    "partial": "GET /partial HTTP/1.1\r\nHost: h\r\n",
}
for name, raw in real.items():
    write("request_head", f"real-{name}", raw)
for name, raw in heads.items():
    write("request_head", name, raw.encode("latin-1"))
# Host: uri-host [":" port] (RFC 9112 §3.2, RFC 3986 §3.2.2).
hosts = {
    "host-port": "h.example:8080", "host-ipv4": "127.0.0.1:80", "host-ipv6": "[::1]:8080",
    "host-ipvfuture": "[v1.fe80::a+en1]", "host-empty": "", "host-pct": "a%41b",
    "host-space": "a b c", "host-script": "<script>", "host-two-colons": "a:1:2",
    "host-bad-ipv6": "[::g]", "host-unclosed": "[::1", "host-port-letters": "h:8o",
    "host-userinfo": "u@h",
}
for name, host in hosts.items():
    write("request_head", name, f"GET / HTTP/1.1\r\nHost: {host}\r\n\r\n".encode("latin-1"))
write("request_head", "absolute-userinfo", b"GET http://u@h/ HTTP/1.1\r\nHost: h\r\n\r\n")

import struct
def rng(length, header):
    # Low two bits 3: length = raw >> 2 exactly.
    return struct.pack("<Q", (length << 2) | 3) + header.encode()
ranges = {
    "simple": rng(1000, "bytes=0-499"),
    "suffix": rng(1000, "bytes=-500"),
    "open": rng(1000, "bytes=500-"),
    "multi": rng(10000, "bytes=0-0,-1,100-199,50-150"),
    "adjacent": rng(10, "bytes=0-4,5-9"),
    "ows-empty": rng(10, " bytes=,0-1 ,\t4-5,, "),
    "beyond": rng(10, "bytes=10-20"),
    "empty-file": rng(0, "bytes=0-"),
    "suffix-zero": rng(10, "bytes=-0"),
    "inverted": rng(10, "bytes=5-4"),
    "overflow": rng(10, "bytes=0-18446744073709551616"),
    "max": rng(10, "bytes=0-18446744073709551615"),
    "huge-len": struct.pack("<Q", (0 << 2) | 2) + b"bytes=18446744073709551613-",
    "too-many": rng(1000, "bytes=" + ",".join(f"{i*10}-{i*10+1}" for i in range(17))),
    "sixteen": rng(1000, "bytes=" + ",".join(f"{i*10}-{i*10+1}" for i in range(16))),
    "overlap-amplify": rng(1000, "bytes=" + ",".join(["0-"] * 16)),
    "unit": rng(10, "items=0-1"),
    "plus": rng(10, "bytes=+1-2"),
    "unicode-digit": rng(10, "bytes=\u0663-4"),
}
for name, raw in ranges.items():
    write("range_header", name, raw)

paths = {
    "root": "/", "plain": "/a/b.txt", "space": "/a%20b.txt", "utf8": "/%E2%9C%93.txt",
    "traversal": "/../../etc/passwd", "enc-traversal": "/%2e%2e/%2E%2e/x",
    "overlong-dot": "/%c0%ae%c0%ae/x", "nul": "/a%00b", "raw-nul": "/a\x00b",
    "enc-slash": "/sub/..%2f..%2fx", "double-slash": "//etc//passwd///",
    "git": "/.git/config", "env": "/x/../.env", "git-escape": "/.git/../x",
    "well-known": "/.well-known/acme-challenge/t", "well-known-nested": "/a/.well-known",
    "dots": "/...", "backslash": "/..\\x", "double-enc": "/%252e%252e/x",
    "bad-pct": "/%zz%4", "not-absolute": "index.html", "trailing-dot": "/a/b/.",
    "trailing-dotdot": "/a/..", "ctl": "/a%7f", "latin1": "/caf\u00e9",
}
for name, raw in paths.items():
    for hidden in (0, 1):
        write("path_resolve", f"{name}-{'hidden' if hidden else 'nohidden'}", bytes([hidden]) + raw.encode())

def conn(ops, stream):
    return bytes([len(ops)]) + bytes(ops) + stream.encode("latin-1")
DELIVER = lambda i: (i << 3) | 0
QUIET = lambda i: (i << 3) | 1
WRITABLE = lambda i: (i << 3) | 2
COMPLETE, COMPLETE_CLOSE = 3, (7 << 3) | 3
TICK_DEADLINE, TICK = (1 << 3) | 4, (2 << 3) | 4
EOF, RESUME, SHUTDOWN = 5, 6, (31 << 3) | 7
ALL = 31
r = lambda p, extra="": f"GET {p} HTTP/1.1\r\nHost: h\r\n{extra}\r\n"
pipelined = r("/1") + r("/2") + r("/3")
CHUNKED = "POST /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
EXPECT96 = "PUT /e HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 3\r\n"
EXPECT96 += "X: " + "p" * (96 - len(EXPECT96) - 7) + "\r\n\r\n"
assert len(EXPECT96) == 96
connections = {
    "single": conn([DELIVER(ALL), WRITABLE(ALL), COMPLETE], r("/index.html")),
    "pipelined": conn([DELIVER(ALL), COMPLETE, WRITABLE(ALL), COMPLETE, COMPLETE], pipelined),
    "pipelined-bytewise": conn([DELIVER(0)] * 40 + [WRITABLE(3), COMPLETE, WRITABLE(5)] * 6, pipelined),
    "real-chromium": conn([DELIVER(20), DELIVER(ALL), COMPLETE], real.get("chromium-156", b"").decode("latin-1")),
    "real-wrk-pipelined": conn([DELIVER(ALL)] + [COMPLETE, WRITABLE(ALL)] * 4, real.get("wrk", b"").decode("latin-1") * 4),
    "body-skipped": conn([DELIVER(ALL), COMPLETE, WRITABLE(ALL), COMPLETE], "POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello" + r("/after")),
    "body-too-large": conn([DELIVER(ALL), WRITABLE(ALL)], "POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 99999999\r\n\r\n"),
    "chunked-kept": conn([DELIVER(ALL), COMPLETE, WRITABLE(ALL), COMPLETE], CHUNKED + "3\r\nabc\r\n0\r\n\r\n" + r("/after")),
    "chunked-bytewise": conn([DELIVER(0)] * 120 + [COMPLETE, WRITABLE(ALL), COMPLETE], CHUNKED + "3;x=\"y\"\r\nabc\r\n00\r\nT: v\r\n\r\n" + r("/after")),
    "chunked-bare-lf": conn([DELIVER(ALL), WRITABLE(ALL)], CHUNKED + "3\nabc\r\n0\r\n\r\n" + r("/smuggled")),
    "chunked-too-large": conn([DELIVER(ALL), WRITABLE(ALL)], CHUNKED + "200000\r\n" + "x" * 100),
    "chunked-shutdown": conn([DELIVER(15), SHUTDOWN, DELIVER(ALL), COMPLETE], CHUNKED + "3\r\nabc\r\n0\r\n\r\n" + r("/after")),
    # The head alone arrives first (96 bytes): answered and closed, then
    # the client sends its body, or skips it and sends its next request.
    "expect-body-later": conn([DELIVER(16), COMPLETE, WRITABLE(ALL), DELIVER(ALL)], EXPECT96 + "abc" + r("/next")),
    "expect-no-body": conn([DELIVER(16), COMPLETE, WRITABLE(ALL), DELIVER(ALL)], EXPECT96 + r("/next")),
    "expect-chunked": conn([DELIVER(ALL), COMPLETE, COMPLETE], CHUNKED.replace("Host", "Expect: 100-continue\r\nHost") + "0\r\n\r\n" + r("/next")),
    "cl-te-smuggle": conn([DELIVER(ALL), COMPLETE], "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nG" + r("/smuggled")),
    "connection-close": conn([DELIVER(ALL), COMPLETE, COMPLETE], r("/a", "Connection: close\r\n") + r("/b")),
    "http10": conn([DELIVER(ALL), COMPLETE, COMPLETE], "GET /a HTTP/1.0\r\n\r\nGET /b HTTP/1.0\r\n\r\n"),
    "bad-second": conn([DELIVER(ALL), COMPLETE, COMPLETE], r("/ok") + "GET / HTTP/1.1\r\n\r\n"),
    "slowloris": conn([DELIVER(10), TICK_DEADLINE, WRITABLE(ALL)], r("/slow")),
    "idle-timeout": conn([DELIVER(ALL), COMPLETE, WRITABLE(ALL), TICK_DEADLINE], r("/idle")),
    "send-timeout": conn([DELIVER(ALL), WRITABLE(4), COMPLETE, TICK_DEADLINE], r("/stalled")),
    "answer-close": conn([DELIVER(ALL), COMPLETE_CLOSE, COMPLETE], pipelined),
    "shutdown-mid": conn([DELIVER(ALL), SHUTDOWN, COMPLETE, COMPLETE], pipelined),
    # Saved under regressions/connection/eof-stall-data-and-fin-in-one-read instead:
    # "quiet-then-eof": conn([QUIET(ALL), EOF, COMPLETE, RESUME, COMPLETE], r("/q1") + r("/q2")),
    "big-pipeline": conn([DELIVER(29), COMPLETE, DELIVER(29), COMPLETE], "".join(r(f"/{i:04}", "X: " + "y" * 100 + "\r\n") for i in range(200))),
    "huge-head": conn([DELIVER(ALL), WRITABLE(ALL)], "GET / HTTP/1.1\r\nHost: h\r\nX: " + "a" * 20000 + "\r\n\r\n"),
    "expect": conn([DELIVER(ALL), COMPLETE, COMPLETE], "PUT /e HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\nabc" + r("/next")),
    "expect-unknown": conn([DELIVER(ALL), WRITABLE(ALL)], "PUT /e HTTP/1.1\r\nHost: h\r\nExpect: foo\r\nContent-Length: 3\r\n\r\nabc" + r("/next")),
    "leading-crlf": conn([DELIVER(ALL), COMPLETE, COMPLETE], r("/a") + "\r\n" + r("/b")),
}
for name, raw in connections.items():
    write("connection", name, raw)
# A refused HEAD gets a head without a body, however it is refused.
head_refusals = {
    "head-bad-host": conn([DELIVER(ALL), WRITABLE(ALL)], "HEAD / HTTP/1.1\r\nHost: a b\r\n\r\n"),
    "head-body-too-large": conn([DELIVER(ALL), WRITABLE(ALL)], "HEAD /p HTTP/1.1\r\nHost: h\r\nContent-Length: 99999999\r\n\r\n"),
    "head-slowloris": conn([DELIVER(10), TICK_DEADLINE, WRITABLE(ALL)], "HEAD /slow HTTP/1.1\r\nHost: h\r\n\r\n"),
}
for name, raw in head_refusals.items():
    write("connection", name, raw)
print("seeds written:", {t: len(list((CORPUS / t).iterdir())) for t in ["request_head", "range_header", "path_resolve", "connection"]})
