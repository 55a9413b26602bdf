"""--threads N: one process, N serving threads with an event loop and a ServerState each.

In-process servers (the `serve` fixture: both loops, and HTTPS in the TLS
leg) show the serving itself; real processes show signals, the drain and
--workers.  To make a test's requests land on several threads without
guessing, the app holds its thread's loop (time.sleep, which releases the
GIL as C code that blocks does): while one loop is held, only another
thread can accept the next connection.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from carpinus import _core
from carpinus.config import Config, ConfigError
from carpinus.server import Server
from carpinus.serving import LoopServing
from tests.support import apps, ws_apps
from tests.support.clients import RawClient
from tests.support.h2_clients import h2_http_client
from tests.support.process_apps import THREAD_MARKER
from tests.support.processes import ServerProcess, Spawner, listening_socket, run_cli
from tests.support.servers import ServerHandle, stats_on_their_loops
from tests.support.waiting import wait_for
from tests.support.ws_clients import connect_ws

PROCESS_APP = "tests.support.process_apps:app"
HOLD = 0.5  # seconds a request holds its thread's loop


class ThreadsApp:
    """/hold holds the loop HOLD seconds; every request answers with the ident of
    the thread that served it and the lifespan greeting it saw in scope["state"].
    Lifespan startups and shutdowns are counted."""

    def __init__(self) -> None:
        self.startups = 0
        self.shutdowns = 0
        self.lifespan_thread: int | None = None
        self.served_by: list[int] = []  # the list lifespan put in the state
        self.held = 0  # /hold requests begun

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    self.startups += 1
                    self.lifespan_thread = threading.get_ident()
                    scope["state"]["greeting"] = "hello"
                    # one list, shared by every thread (scope["state"] is a shallow copy)
                    self.served_by = scope["state"]["served_by"] = []
                    await send({"type": "lifespan.startup.complete"})
                else:
                    self.shutdowns += 1
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["path"] == "/hold":
            self.held += 1
            time.sleep(HOLD)
        state = scope.get("state", {})
        ident = threading.get_ident()
        if "served_by" in state:
            state["served_by"].append(ident)
        await apps.send_text(send, f"{ident} {state.get('greeting')}".encode())


def get_hold(handle: ServerHandle) -> tuple[int, str]:
    """GET /hold on a connection of its own: (serving thread ident, greeting)."""
    with handle.connect() as client:
        response = client.request("GET", "/hold")
    assert response.status == 200, response
    ident, greeting = response.body.decode().split()
    return int(ident), greeting


def held_requests(handle: ServerHandle, app: ThreadsApp, count: int,
                  fetch: Callable[[ServerHandle], Any] = get_hold) -> list[Any]:
    """`count` requests to /hold, each on its own connection, each sent once the
    app holds the one before (so it has to be accepted by another thread): what
    `fetch` returned for each."""
    with ThreadPoolExecutor(count) as pool:
        futures = []
        for i in range(count):
            begun = app.held
            futures.append(pool.submit(fetch, handle))
            wait_for(lambda begun=begun: app.held > begun, what=f"request {i + 1} to begin holding",
                     detail=lambda: [f for f in futures if f.done()])
        return [future.result(timeout=10) for future in futures]


@pytest.mark.parametrize("threads", [2, 4])
def test_requests_spread_over_threads(serve: Callable[..., ServerHandle],
                                      threads: int) -> None:
    """Concurrent connections are served by more than one serving thread, none of them
    the test's server thread (which runs the main loop)."""
    app = ThreadsApp()
    handle = serve(app, threads=threads)
    server = handle.server
    assert len(server.serving_threads) == threads
    assert server.state is None and len(server.states) == threads
    served = held_requests(handle, app, threads)
    # every thread holds one request, so each had to be accepted by a free thread
    idents = {ident for ident, _ in served}
    assert idents == {thread.thread.ident for thread in server.serving_threads}, served
    # and plain keep-alive requests work on whichever thread took the connection
    with handle.http_client() as client:
        for _ in range(5):
            assert client.get("/").status_code == 200


def test_one_thread_is_todays_server(serve: Callable[..., ServerHandle]) -> None:
    """The default: the main loop serves; no serving thread is started."""
    handle = serve(ThreadsApp())
    assert handle.server.serving_threads == []
    assert handle.state is not None and len(handle.server.states) == 1
    ident, _ = handle.get("/").text.split()
    names = {thread.ident: thread.name for thread in threading.enumerate()}
    assert names[int(ident)] == "carpinus-test-server"  # the thread that called run()


def test_lifespan_once_with_state_in_every_thread(serve: Callable[..., ServerHandle]) -> None:
    """Lifespan starts and stops once per process, in the main loop's thread; every
    serving thread sees its state, and objects in it are shared (one list)."""
    app = ThreadsApp()
    handle = serve(app, threads=3, lifespan="on")
    served = held_requests(handle, app, 3)
    assert {greeting for _, greeting in served} == {"hello"}
    idents = {ident for ident, _ in served}
    assert len(idents) >= 2
    assert app.startups == 1 and app.shutdowns == 0
    names = {thread.ident: thread.name for thread in threading.enumerate()}
    assert names[app.lifespan_thread] == "carpinus-test-server"  # the main loop's thread
    assert sorted(app.served_by) == sorted(ident for ident, _ in served)
    handle.server.should_exit = True  # (the fixture would stop it after the test)
    wait_for(lambda: app.shutdowns, what="lifespan shutdown")
    assert app.startups == 1 and app.shutdowns == 1


def test_websocket_echo_on_every_thread(serve: Callable[..., ServerHandle]) -> None:
    """WebSocket sessions on several serving threads at once echo their messages."""
    handle = serve(ws_apps.echo, threads=2)
    with contextlib.ExitStack() as stack:
        clients = [stack.enter_context(connect_ws(handle, "/")) for _ in range(4)]
        for round_ in range(3):
            for i, client in enumerate(clients):
                client.send(f"message {i}.{round_}")
                assert client.recv(timeout=10) == f"message {i}.{round_}"
            clients[0].send(b"\x00\x01")
            assert clients[0].recv(timeout=10) == b"\x00\x01"
    sessions = sum(stats["websocket_upgrades"] for stats in stats_on_their_loops(handle.server))
    assert sessions == 4


@pytest.mark.skipif(not _core.HAVE_HTTP2, reason="this build has no libnghttp2")
def test_http2_on_several_threads(serve: Callable[..., ServerHandle]) -> None:
    """HTTP/2 connections (h2c, or h2 by ALPN in the TLS leg) on two threads at once."""
    app = ThreadsApp()
    handle = serve(app, threads=2)

    def get_h2(handle: ServerHandle) -> tuple[str, int]:
        with h2_http_client(handle) as client:
            response = client.get("/hold")
            return response.http_version, int(response.text.split()[0])

    served = held_requests(handle, app, 2, get_h2)
    assert [version for version, _ in served] == ["HTTP/2", "HTTP/2"]
    assert len({ident for _, ident in served}) == 2
    assert sum(stats["h2_connections"] for stats in stats_on_their_loops(handle.server)) == 2


def test_metrics_sum_every_thread(serve: Callable[..., ServerHandle]) -> None:
    """--metrics-bind: one scrape counts the requests of every serving thread."""
    from tests.metrics.test_exporter import scrape, value

    app = ThreadsApp()
    handle = serve(app, threads=2, metrics_bind="127.0.0.1:0")
    served = held_requests(handle, app, 2)
    assert len({ident for ident, _ in served}) == 2
    for _ in range(3):
        assert handle.get("/").status_code == 200
    port = handle.server.metrics.exporter.port
    per_thread = [stats["requests_total"] for stats in stats_on_their_loops(handle.server)]
    assert all(per_thread) and sum(per_thread) == 5
    assert value(scrape(port), "carpinus_requests_total") == 5


def test_shutdown_drains_every_thread_in_process(serve: Callable[..., ServerHandle]) -> None:
    """In-process stop (should_exit) with a request held in each of two threads: both
    are answered, then every serving thread ends."""
    app = ThreadsApp()
    handle = serve(app, threads=2)
    with ThreadPoolExecutor(1) as pool:
        future = pool.submit(held_requests, handle, app, 2)
        wait_for(lambda: app.held == 2, what="both requests holding their threads")
        handle.server.should_exit = True
        served = future.result(timeout=10)
    assert len({ident for ident, _ in served}) == 2
    wait_for(lambda: not any(thread.alive for thread in handle.server.serving_threads),
             what="every serving thread to end")


def test_a_thread_that_cannot_listen_stops_the_start(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """One serving thread failing to listen fails the start: the others stop, lifespan
    shuts down again, the listening socket is released, and run() returns 1."""
    listen = LoopServing.listen

    async def second_thread_fails(self: LoopServing, sockets: list[socket.socket]) -> None:
        if threading.current_thread().name == "carpinus-serving-2":
            raise OSError("thread 2 cannot listen (on purpose)")
        await listen(self, sockets)

    monkeypatch.setattr(LoopServing, "listen", second_thread_fails)
    app = ThreadsApp()
    server = Server(Config(app, port=0, threads=3, lifespan="on", configure_logging=False,
                           gc_freeze=False, loop="asyncio"))
    with caplog.at_level(logging.INFO, logger="carpinus.error"):
        assert server.run() == 1
    assert not server.started
    assert not any(thread.alive for thread in server.serving_threads)
    assert [thread.failed for thread in server.serving_threads] == [False, True, False]
    assert app.startups == 1 and app.shutdowns == 1
    assert all(sock.fileno() == -1 for sock in server.listening)
    assert "thread 2 cannot listen (on purpose)" in caplog.text
    assert "serving thread(s) 2 could not start" in caplog.text


# -- options ----------------------------------------------------------------------


@pytest.mark.parametrize("value", [0, -1])
def test_invalid_threads_refused(value: int) -> None:
    with pytest.raises(ConfigError, match=r"threads must be >= 1, got") as info:
        Config(threads=value)
    assert info.value.option == "threads"
    result = run_cli("--threads", str(value))
    assert result.returncode == 2
    assert "--threads" in result.stderr and ">= 1" in result.stderr


def test_threads_in_help() -> None:
    result = run_cli("--help")
    assert result.returncode == 0
    assert "--threads INTEGER" in result.stdout and "CARPINUS_THREADS" in result.stdout


# -- real processes: signals and workers ------------------------------------------


def _thread_get(server: ServerProcess, ms: int) -> tuple[int, bytes]:
    with server.connect(timeout=15) as client:
        response = client.request("GET", f"/thread?ms={ms}")
        return response.status, response.body


def _held_in_flight(server: ServerProcess, count: int, ms: int) -> list[Any]:
    """`count` requests to /thread, staggered so that each lands on a free thread;
    returns their futures once the app has logged every one as started."""
    pool = ThreadPoolExecutor(count)
    futures = []
    for i in range(count):
        futures.append(pool.submit(_thread_get, server, ms))
        assert server.wait_for_output(THREAD_MARKER, timeout=10, count=i + 1), server.output
    pool.shutdown(wait=False)
    return futures


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_drains_requests_in_several_threads(spawn: Spawner, sig: int) -> None:
    """A signal with a request in flight in each of two serving threads: the main
    thread takes the signal, both requests finish, lifespan shuts down once, exit 0."""
    server = spawn.start(PROCESS_APP, "--threads", "2", "--lifespan", "on")
    assert "with 2 serving threads" in server.output
    futures = _held_in_flight(server, 2, 800)
    server.send_signal(sig)
    results = [future.result(timeout=15) for future in futures]
    assert [status for status, _ in results] == [200, 200]
    assert len({body.split()[1] for _, body in results}) == 2  # two threads
    assert server.wait(timeout=10) == 0, server.output
    log = server.output
    assert log.count("Application startup complete.") == 1
    assert log.count("Application shutdown complete.") == 1
    assert log.index("Shutting down") < log.index("Application shutdown complete.")


def test_graceful_timeout_bounds_every_thread(spawn: Spawner) -> None:
    """--timeout-graceful-shutdown bounds the threads' drains (run side by side):
    never-ending streams are cut after it and the process still exits 0."""
    server = spawn.start(PROCESS_APP, "--threads", "2", "--timeout-graceful-shutdown", "0.5")
    streams = []
    try:
        for i in range(2):
            client = RawClient("127.0.0.1", server.port or 0, 10, tls=server.tls)
            client.send(b"GET /stream?ms=50 HTTP/1.1\r\nHost: x\r\n\r\n")
            streams.append(client)
            assert server.wait_for_output("stream started", timeout=10, count=i + 1)
        started = time.monotonic()
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=10) == 0, server.output
        assert time.monotonic() - started < 5
        assert server.output.count("stream ended (cancelled)") == 2
    finally:
        for client in streams:
            client.close()


def test_threads_with_workers(spawn: Spawner) -> None:
    """--workers 2 --threads 2: each worker process runs two serving threads."""
    server = spawn.start(PROCESS_APP, "--workers", "2", "--threads", "2")
    assert server.wait_for_output("with 2 serving threads", timeout=30, count=2), server.output
    assert server.wait_for_output("ready.", timeout=30, count=2), server.output
    futures = _held_in_flight(server, 3, 600)
    results = [future.result(timeout=15) for future in futures]
    assert [status for status, _ in results] == [200] * 3
    # three requests held at once: at least one worker had two of them, on two threads
    served = {tuple(body.split()) for _, body in results}
    assert len(served) == 3
    assert server.stop() == 0, server.output


def test_run_with_threads(spawn: Spawner) -> None:
    """carpinus.run(app, threads=2) serves from two threads."""
    script = (
        "import carpinus, sys\n"
        f"carpinus.run({PROCESS_APP!r}, fd=int(sys.argv[1]), threads=2)\n"
    )
    sock = listening_socket()
    try:
        server = spawn.popen([sys.executable, "-c", script, str(sock.fileno())],
                             pass_fds=[sock.fileno()], port=sock.getsockname()[1])
    finally:
        sock.close()
    server.wait_ready()
    assert "with 2 serving threads" in server.output
    futures = _held_in_flight(server, 2, 600)
    assert len({future.result(timeout=15)[1] for future in futures}) == 2
    assert server.stop() == 0
