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
from pathlib import Path
from typing import Any

import pytest

from carpinus.optimizations import OPTIMIZATIONS
from tests.support import apps
from tests.support.clients import RawClient
from tests.support.servers import ServerHandle, run_server

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


def hammer(handle: ServerHandle, client_id: str, start: threading.Barrier,
           failures: list[str]) -> None:
    """One keep-alive connection's requests, each checked against its own answer."""
    try:
        with RawClient(handle.host, handle.port) as client:
            start.wait()
            for n in range(REQUESTS_PER_CLIENT):
                path, body = f"/{client_id}/{n}", f"body {n}".encode()
                got = client.request("POST", path, headers=[("X-Client", client_id)],
                                     body=body)
                want = f"{path}|{client_id}|body {n}".encode()
                if (got.status, got.body) != (200, want):
                    failures.append(f"{client_id}: {got.status} {got.body!r}, want {want!r}")
                    return
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
