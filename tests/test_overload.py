"""Overload, with a real server process: many idle connections, a concurrency
limit under a flood, and clients that never read what they asked for.

The server runs as a child process so that its memory (VmRSS) and open file
descriptors can be read from /proc, and so that 10,000 connections cost the
test process and the server 10,000 descriptors each, not 20,000 in one.
"""

from __future__ import annotations

import asyncio
import os
import resource
import socket
import threading
import time
from pathlib import Path

import pytest

from tests.support.clients import RawClient, build_request
from tests.support.process_apps import SLEEP_MARKER
from tests.support.processes import REPO, ServerProcess, Spawner, child_env
from tests.support.waiting import wait_for

PROCESS_APP = "tests.support.process_apps:app"
# Under the ASan leg freed memory sits in ASan's quarantine (256 MiB by
# default), which would read as RSS growth: keep it small for the server.
SMALL_QUARANTINE = ":".join(filter(None, [os.environ.get("ASAN_OPTIONS"),
                                           "quarantine_size_mb=4"]))
SOAK_APP = ["soak_app:app", "--app-dir", str(Path(REPO) / "scripts")]
IDLE_CONNECTIONS = 10_000


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


# ---------------------------------------------------------------------------
# 10,000 idle keep-alive connections
# ---------------------------------------------------------------------------


def raise_fd_limit(needed: int) -> None:
    """Raise this process's soft RLIMIT_NOFILE (children inherit it), or skip."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < needed:
        pytest.skip(f"needs {needed} file descriptors per process; the hard limit "
                    f"(ulimit -Hn) is {hard}")
    if soft == resource.RLIM_INFINITY or soft >= needed:
        return
    resource.setrlimit(resource.RLIMIT_NOFILE, (needed if hard == resource.RLIM_INFINITY
                                                 else min(hard, max(needed, soft)), hard))


Stream = tuple[asyncio.StreamReader, asyncio.StreamWriter]


async def open_idle(port: int, n: int, batch: int = 250) -> list[Stream]:
    """n connections that each completed one request and now sit idle."""

    async def one() -> Stream:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET / HTTP/1.1\r\nHost: idle\r\n\r\n")
        head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 "), head
        length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
        await reader.readexactly(length)
        return reader, writer

    streams: list[Stream] = []
    for start in range(0, n, batch):
        streams += await asyncio.gather(*(one() for _ in range(min(batch, n - start))))
    return streams


@pytest.mark.timeout(300)
def test_ten_thousand_idle_keep_alive_connections(spawn: Spawner) -> None:
    raise_fd_limit(IDLE_CONNECTIONS + 500)
    server = spawn.start(PROCESS_APP, "--no-access-log", "--timeout-keep-alive", "600",
                         "--backlog", "4096", env=child_env(ASAN_OPTIONS=SMALL_QUARANTINE))
    assert server.port is not None
    base_fds, base_rss = open_fds(server.pid), rss_kib(server.pid)

    async def scenario() -> None:
        idle = await open_idle(server.port, IDLE_CONNECTIONS)
        try:
            held_fds = open_fds(server.pid)
            assert held_fds >= base_fds + IDLE_CONNECTIONS, (base_fds, held_fds)
            per_conn = (rss_kib(server.pid) - base_rss) * 1024 / IDLE_CONNECTIONS
            print(f"\n{IDLE_CONNECTIONS} idle connections: {per_conn:.0f} bytes of server "
                  f"RSS each, {held_fds} fds")
            if not os.environ.get("CARPINUS_SANITIZED"):  # ASan's redzones inflate it
                assert per_conn < 64 * 1024  # an idle connection owns no buffer
            # the server still answers new connections, promptly enough for a client
            loop = asyncio.get_running_loop()
            for _ in range(20):
                started = time.monotonic()
                r = await loop.run_in_executor(None, _get, server.port, "/")
                assert r == 200 and time.monotonic() - started < 10
            # ... and the idle ones are still alive
            for reader, writer in idle[:: IDLE_CONNECTIONS // 10]:
                writer.write(b"GET / HTTP/1.1\r\nHost: idle\r\n\r\n")
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
                assert head.startswith(b"HTTP/1.1 200 ")
        finally:
            for _, writer in idle:
                writer.close()

    asyncio.run(scenario())
    wait_for(lambda: open_fds(server.pid) <= base_fds, 60, interval=0.05,
             what="fds back to the baseline")


def _get(port: int, path: str) -> int:
    with RawClient("127.0.0.1", port, timeout=10) as c:
        return c.request("GET", path).status


# ---------------------------------------------------------------------------
# --limit-concurrency under a flood
# ---------------------------------------------------------------------------


def test_limit_concurrency_answers_503_at_once(spawn: Spawner) -> None:
    """40 clients at once against --limit-concurrency 5, each asking for a
    3-second request: 5 are served, 35 get 503 right away -- the server does
    not queue them behind the running ones."""
    server = spawn.start(PROCESS_APP, "--no-access-log", "--limit-concurrency", "5")
    assert server.port is not None
    port = server.port
    results: list[tuple[int, float]] = []
    lock = threading.Lock()
    started = time.monotonic()

    def client() -> None:
        with RawClient("127.0.0.1", port, timeout=30) as c:
            status = c.request("GET", "/sleep?ms=3000").status
        with lock:
            results.append((status, time.monotonic() - started))

    threads = [threading.Thread(target=client) for _ in range(40)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    statuses = sorted(s for s, _ in results)
    assert statuses == [200] * 5 + [503] * 35, statuses
    first_200 = min(t for s, t in results if s == 200)
    last_503 = max(t for s, t in results if s == 503)
    assert last_503 < first_200, "a 503 waited for a running request to finish"
    assert server.output.count(SLEEP_MARKER) == 5
    assert _get(port, "/") == 200


# ---------------------------------------------------------------------------
# Clients that never read
# ---------------------------------------------------------------------------


def rss_growth_while(server: ServerProcess, seconds: float, base: int | None = None) -> int:
    """Largest RSS growth (KiB) over `base` (default: now) seen over `seconds`,
    sampled every 0.1 s."""
    base = rss_kib(server.pid) if base is None else base
    peak = base
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        peak = max(peak, rss_kib(server.pid))
        time.sleep(0.1)
    return peak - base


def test_client_that_never_reads_a_large_response(spawn: Spawner) -> None:
    """GET 400 MiB and read nothing: the app's send() waits once the
    transport's buffer is full, so the server holds a few hundred KiB for the
    client, not the response."""
    server = spawn.start(*SOAK_APP, "--no-access-log",
                         env=child_env(ASAN_OPTIONS=SMALL_QUARANTINE))
    assert server.port is not None
    sock = socket.create_connection(("127.0.0.1", server.port))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
    try:
        sock.sendall(build_request("GET", "/stream?n=1024") * 100)  # 100 x 4 MiB, pipelined
        growth = rss_growth_while(server, 3.0)
        print(f"\nnever-reading client, 400 MiB asked: server RSS +{growth} KiB")
        assert growth < 32 * 1024, f"server RSS grew by {growth} KiB"
        assert _get(server.port, "/") == 200  # and everyone else is served
    finally:
        sock.close()
    assert _get(server.port, "/") == 200


def test_pipelining_client_that_never_reads(spawn: Spawner) -> None:
    """A client writes requests as fast as it can and never reads a response.
    The server stops reading (responses back up, then pipelined bytes reach
    the high-water mark), so the client's writes stop too and the server's
    memory stays flat."""
    server = spawn.start(*SOAK_APP, "--no-access-log",
                         env=child_env(ASAN_OPTIONS=SMALL_QUARANTINE))
    assert server.port is not None
    sock = socket.create_connection(("127.0.0.1", server.port))
    sock.settimeout(3.0)
    request = build_request("GET", "/stream?n=4")  # 16 KiB per response
    batch = request * 256
    sent = 0
    base = rss_kib(server.pid)
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                sent += sock.send(batch)
            except TimeoutError:
                break  # the server stopped reading: the client is blocked
        else:
            raise AssertionError(f"the client could write {sent} bytes without blocking")
        growth = rss_growth_while(server, 2.0, base)
        print(f"\npipelining client that never reads: blocked after {sent} bytes, "
              f"server RSS +{growth} KiB")
        assert growth < 32 * 1024, f"server RSS grew by {growth} KiB"
        assert sent < 64 * 1024 * 1024, sent
        assert _get(server.port, "/") == 200
    finally:
        sock.close()
