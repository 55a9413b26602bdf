"""Slow clients: the request-body timeout (--timeout-request-body).

A client that stops sending a body it owes is dropped: 408 when no response
has started, a plain close otherwise.  What the timeout measures is silence,
not the length of an upload: every read restarts it, and it does not run
while the server itself holds reading paused because the app is behind.

The slow-header side (--timeout-request-header, a slowloris trickling a head)
is tested with a real process in tests/test_server.py
(test_request_header_timeout, test_request_header_timeout_spans_the_whole_head).
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

from tests.support import apps
from tests.support.clients import RawClient, build_request
from tests.support.waiting import wait_for

TIMEOUT = 1.0


class BodyRecorder:
    """Reads the body; records the message types; answers with the body length."""

    def __init__(self) -> None:
        self.types: list[str] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        size = 0
        while True:
            message = await receive()
            self.types.append(message["type"])
            if message["type"] == "http.disconnect":
                return
            size += len(message["body"])
            if not message.get("more_body", False):
                break
        await apps.send_text(send, b"%d" % size)


def timed_response(c: RawClient) -> tuple[int, float]:
    started = time.monotonic()
    r = c.read_response()
    return r.status, time.monotonic() - started


def test_stalled_body_gets_408(serve: Any) -> None:
    app = BodyRecorder()
    handle = serve(app, timeout_request_body=TIMEOUT)
    with handle.connect() as c:
        c.send(build_request("POST", "/", [("Content-Length", "100")]) + b"x" * 10)
        status, elapsed = timed_response(c)
        assert status == 408
        assert 0.8 <= elapsed <= 5.0, elapsed
        assert c.is_closed()
    wait_for(lambda: app.types[-1:] == ["http.disconnect"])
    wait_for(lambda: handle.state.connections == 0 and handle.state.active_requests == 0)
    with handle.connect() as c:
        assert c.request("POST", "/", body=b"abc").body == b"3"


def test_stalled_chunked_body_gets_408(serve: Any) -> None:
    handle = serve(BodyRecorder(), timeout_request_body=TIMEOUT)
    with handle.connect() as c:
        c.send(build_request("POST", "/", [("Transfer-Encoding", "chunked")]) + b"5\r\nhel")
        status, _ = timed_response(c)
        assert status == 408
        assert c.is_closed()


def test_stalled_body_after_the_response_started_is_closed_without_408(serve: Any) -> None:
    """The app answered before reading the rest; the client stalls: the server
    drains for a while, then gives up silently (a 408 now would be read as
    the response to a next request)."""
    handle = serve(apps.hello, timeout_request_body=TIMEOUT)
    with handle.connect() as c:
        c.send(build_request("POST", "/", [("Content-Length", "1000")]) + b"x" * 10)
        assert c.read_response().status == 200
        started = time.monotonic()
        assert c.is_closed(timeout=5)
        assert c.buf == b""
        assert time.monotonic() - started >= 0.8


def test_trickling_body_is_not_dropped(serve: Any) -> None:
    """Ten bytes every 0.3 s for 3 s (three timeouts' worth): every read
    restarts the clock, so the upload completes."""
    handle = serve(BodyRecorder(), timeout_request_body=TIMEOUT)
    with handle.connect() as c:
        c.send(build_request("POST", "/", [("Content-Length", "100")]))
        for _ in range(10):
            time.sleep(0.3)
            c.send(b"y" * 10)
        r = c.read_response()
        assert r.status == 200 and r.body == b"100"


def test_app_that_reads_slowly_is_not_the_clients_fault(serve: Any) -> None:
    """The app waits 3 s before reading an 8 MiB upload (streamed: above the
    zero-copy maximum): the server pauses
    reading (flow control), the client cannot send, and no body timeout runs
    meanwhile."""
    gate = threading.Event()

    async def lazy(scope: Any, receive: Any, send: Any) -> None:
        await asyncio.get_running_loop().run_in_executor(None, gate.wait, 10)
        body, _ = await apps.read_body(receive)
        await apps.send_text(send, b"%d" % len(body))

    handle = serve(lazy, timeout_request_body=TIMEOUT)
    size = 8 * 1024 * 1024
    with handle.connect() as c:
        sender = threading.Thread(
            target=c.send, args=(build_request("POST", "/", [("Content-Length", str(size))])
                                 + b"z" * size,))
        sender.start()
        time.sleep(3 * TIMEOUT)
        gate.set()
        sender.join(30)
        r = c.read_response()
        assert r.status == 200 and r.body == str(size).encode()


def test_idle_keep_alive_is_not_a_body_timeout(serve: Any) -> None:
    """After a complete request the keep-alive timeout applies, not this one."""
    handle = serve(BodyRecorder(), timeout_request_body=0.5, timeout_keep_alive=3)
    with handle.connect() as c:
        assert c.request("POST", "/", body=b"abc").status == 200
        time.sleep(1.2)
        assert c.request("POST", "/", body=b"abcd").body == b"4"
