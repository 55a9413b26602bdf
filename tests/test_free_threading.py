"""carpinus on a free-threaded CPython (3.13t): importing the C core leaves
the GIL off, and servers on several threads -- one event loop and one
ServerState each, the arrangement the core is built for (docs/architecture.md,
"Threads and free-threaded Python") -- serve at the same time without mixing
anything up.  The concurrency test runs on every build; with the GIL it
checks the same answers, only without the parallelism."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import sysconfig
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed

from carpinus.optimizations import OPTIMIZATIONS
from tests.support import apps, ws_apps
from tests.support.clients import RawClient
from tests.support.servers import ServerHandle, run_server
from tests.support.waiting import wait_for
from tests.support.ws_clients import connect_ws

FREE_THREADED = bool(sysconfig.get_config_var("Py_GIL_DISABLED"))
ROOT = Path(__file__).resolve().parents[1]

# Run in a fresh interpreter, so that nothing but carpinus decides about the
# GIL (PYTHON_GIL is removed from its environment; pytest itself may run
# under -X gil=0).  The warning CPython gives when an extension turns the GIL
# back on is made an error.
GIL_PROBE = """
import sys, warnings
warnings.filterwarnings("error", message=".*global interpreter lock", category=RuntimeWarning)
import carpinus._core
print("after import:", sys._is_gil_enabled())
from tests.support.servers import run_server
seen = []
async def app(scope, receive, send):
    seen.append(sys._is_gil_enabled())
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})
with run_server(app) as handle, handle.connect() as client:
    assert client.request().body == b"ok"
print("while serving:", seen[0])
"""


@pytest.mark.skipif(not FREE_THREADED,
                    reason="needs a free-threaded build (python3.13t): with the GIL "
                           "there is no GIL to keep off")
def test_the_core_keeps_the_gil_off() -> None:
    env = {k: v for k, v in os.environ.items() if k != "PYTHON_GIL"}
    done = subprocess.run([sys.executable, "-c", GIL_PROBE], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[:2] == ["after import: False", "while serving: False"]


SERVERS = 4
CLIENTS_PER_SERVER = 3
REQUESTS_PER_CLIENT = 40


async def headers_twice_app(scope: Any, receive: Any, send: Any) -> None:
    """Answers path|x-client|body, having read the request's headers on the
    loop and, at the same moment, in a worker thread: with lazy_headers the
    two build the same LazyHeaders' entries concurrently."""
    body, _ = await apps.read_body(receive)
    headers = scope["headers"]
    elsewhere = asyncio.get_running_loop().run_in_executor(None, dict, headers)
    here = dict(headers)
    if await elsewhere != here:
        raise AssertionError("two threads read different headers")
    await apps.send_text(send, b"|".join([scope["path"].encode(), here[b"x-client"], body]))


def post_requests(client: RawClient, client_id: str, failures: list[str]) -> None:
    """REQUESTS_PER_CLIENT requests on one keep-alive connection, each checked
    against its own answer; the first wrong one is reported and ends them."""
    for n in range(REQUESTS_PER_CLIENT):
        path, body = f"/{client_id}/{n}", f"body {n}".encode()
        got = client.request("POST", path, headers=[("X-Client", client_id)], body=body)
        want = f"{path}|{client_id}|body {n}".encode()
        if (got.status, got.body) != (200, want):
            failures.append(f"{client_id}: {got.status} {got.body!r}, want {want!r}")
            return


def hammer(handle: ServerHandle, client_id: str, start: threading.Barrier,
           failures: list[str]) -> None:
    """One keep-alive connection's requests, each checked against its own answer."""
    try:
        with RawClient(handle.host, handle.port) as client:
            start.wait()
            post_requests(client, client_id, failures)
    except Exception as exc:  # reported by the test, with the client that failed
        failures.append(f"{client_id}: {exc!r}")
        start.abort()


def test_servers_on_their_own_threads_answer_at_once() -> None:
    """SERVERS servers, each on its thread and loop, every optimization on and
    lazy headers for every request; CLIENTS_PER_SERVER connections to each,
    all started together.  Every answer is the one its request asked for."""
    options = {"optimizations": dict.fromkeys(OPTIMIZATIONS, True), "lazy_headers_min": 1,
               "loop": "asyncio"}
    failures: list[str] = []
    states = []
    with contextlib.ExitStack() as stack:
        handles = [stack.enter_context(run_server(headers_twice_app, **options))
                   for _ in range(SERVERS)]
        start = threading.Barrier(SERVERS * CLIENTS_PER_SERVER)
        clients = [threading.Thread(target=hammer, args=(handle, f"s{s}c{c}", start, failures))
                   for s, handle in enumerate(handles) for c in range(CLIENTS_PER_SERVER)]
        for thread in clients:
            thread.start()
        for thread in clients:
            thread.join(60)
        assert not any(thread.is_alive() for thread in clients), "a client hung"
        states = [handle.state for handle in handles]
    assert failures == []
    # read once the servers' loops have stopped: a ServerState belongs to its loop's thread
    assert [state.stats()["requests_total"] for state in states] == \
        [CLIENTS_PER_SERVER * REQUESTS_PER_CLIENT] * SERVERS


LOOPS = 4
HTTP_CLIENTS = 8
WS_SESSIONS = 4
WS_MESSAGES = 30


async def hammered_app(scope: Any, receive: Any, send: Any) -> None:
    """headers_twice_app for HTTP, the suite's echo for WebSockets."""
    if scope["type"] == "websocket":
        await ws_apps.echo(scope, receive, send)
    else:
        await headers_twice_app(scope, receive, send)


def http_session(handle: ServerHandle, client_id: str, start: threading.Barrier,
                 finished: threading.Barrier, closed: list[str], failures: list[str]) -> None:
    """A keep-alive connection's requests, each checked against its own answer;
    then the connection stays open until the server, stopping, closes it."""
    try:
        with handle.connect() as client:
            start.wait()
            post_requests(client, client_id, failures)
            finished.wait()
            if client.is_closed(timeout=20):
                closed.append(client_id)
    except Exception as exc:  # reported by the test, with the client that failed
        failures.append(f"{client_id}: {exc!r}")
        start.abort()
        finished.abort()


def ws_session(handle: ServerHandle, client_id: str, start: threading.Barrier,
               finished: threading.Barrier, closed: list[str], failures: list[str]) -> None:
    """A WebSocket session's text and binary echoes; then the session stays open
    until the server, stopping, closes it (1012, service restart)."""
    try:
        with connect_ws(handle, "/") as ws:
            start.wait()
            for n in range(WS_MESSAGES):
                message: str | bytes = f"{client_id} {n}" if n % 2 else f"{client_id} {n}".encode()
                ws.send(message)
                got = ws.recv(timeout=10)
                if got != message:
                    failures.append(f"{client_id}: echo {got!r}, want {message!r}")
                    break
            finished.wait()
            try:
                ws.recv(timeout=20)
            except ConnectionClosed as closing:
                if closing.rcvd is not None and closing.rcvd.code == 1012:
                    closed.append(client_id)
    except Exception as exc:
        failures.append(f"{client_id}: {exc!r}")
        start.abort()
        finished.abort()


def test_one_server_on_several_loops_hammered(serve: Callable[..., ServerHandle]) -> None:
    """One server with --threads 4 (every optimization on, lazy headers for
    every request): HTTP connections and WebSocket sessions all start at once
    and keep their connections open; then the server stops under them.  Every
    answer and echo is the one asked for, the loops' counts add up, every
    connection is closed by the server and every serving thread ends -- on
    3.13t with the loops running Python in parallel."""
    handle = serve(hammered_app, threads=LOOPS, lazy_headers_min=1,
                   optimizations=dict.fromkeys(OPTIMIZATIONS, True))
    sessions = [(http_session, f"h{i}") for i in range(HTTP_CLIENTS)] + \
        [(ws_session, f"w{i}") for i in range(WS_SESSIONS)]
    start = threading.Barrier(len(sessions))
    finished = threading.Barrier(len(sessions) + 1)  # + this thread
    failures: list[str] = []
    closed: list[str] = []
    clients = [threading.Thread(target=run, args=(handle, name, start, finished, closed, failures))
               for run, name in sessions]
    for thread in clients:
        thread.start()
    finished.wait(60)
    states = handle.server.states
    handle.server.should_exit = True
    for thread in clients:
        thread.join(60)
    assert not any(thread.is_alive() for thread in clients), "a client hung"
    assert failures == []
    assert sorted(closed) == sorted(name for _, name in sessions)
    wait_for(lambda: not any(thread.alive for thread in handle.server.serving_threads),
             what="every serving thread to end")
    stats = [state.stats() for state in states]  # their loops have stopped
    # (a WebSocket's upgrade request counts as a request)
    assert sum(s["requests_total"] for s in stats) == \
        HTTP_CLIENTS * REQUESTS_PER_CLIENT + WS_SESSIONS
    assert sum(s["websocket_upgrades"] for s in stats) == WS_SESSIONS
