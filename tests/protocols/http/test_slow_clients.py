"""Slow and idle clients: the C core's deadlines.

--timeout-request-body: a client that stops sending a body it owes is
dropped: 408 when no response has started, a plain close otherwise.  What
the timeout measures is silence, not the length of an upload: every read
restarts it, and it does not run while the server itself holds reading
paused because the app is behind.

--timeout-request-header: a head is due within the timeout of the
connection's start, or of the first byte of the next request's head; a
partial head then gets 408, a client that sent nothing is closed without an
answer.  Trickling the head a byte at a time does not extend it (slowloris).
At shutdown a head on its way gets at most a second's grace.

--timeout-keep-alive: a connection idle between requests is closed quietly.

The tests run the real protocol over the fake transport with the server's
deadline clock in their hand (tests/support/fake_server.py): each deadline is
looked at a moment before it (nothing happens) and at it (it fires), without
waiting.  One test per kind of deadline stays on a real socket and the real
clock, for what only that shows: that a running Server's own tick fires the
deadline and the TCP connection really closes -- the body deadline here
(test_stalled_body_gets_408_on_a_real_socket), the keep-alive and header
deadlines with a real process in tests/test_server.py
(test_keep_alive_timeout, test_request_header_timeout).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from tests.support import apps
from tests.support.clients import build_request
from tests.support.fake_server import JUST, Conn, FakeServer, run, settle
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


def assert_408_and_closed(c: Conn) -> None:
    (response,) = c.responses()
    assert response.startswith(b"HTTP/1.1 408 "), response
    assert b"\r\nconnection: close\r\n" in response.lower(), response
    assert c.transport.server_closed and c.transport.lost


def body_of(response: bytes) -> bytes:
    return response.partition(b"\r\n\r\n")[2]


# ---------------------------------------------------------------------------
# The request-body deadline
# ---------------------------------------------------------------------------


def test_stalled_body_gets_408_at_the_deadline() -> None:
    async def test(loop: asyncio.AbstractEventLoop) -> None:
        app = BodyRecorder()
        srv = FakeServer(loop, app, timeout_request_body=TIMEOUT)
        c = srv.connect()
        c.send(build_request("POST", "/", [("Content-Length", "100")]) + b"x" * 10)
        await settle()
        await srv.advance(TIMEOUT - JUST)
        assert c.out == b"" and not c.closed
        assert app.types == ["http.request"]  # the ten bytes; the app waits for more
        await srv.advance(JUST)
        assert_408_and_closed(c)
        assert app.types[-1:] == ["http.disconnect"]
        assert srv.state.connections == 0 and srv.state.active_requests == 0
        assert srv.stats()["timeouts"] == 1
        again = srv.connect()  # the server goes on serving
        again.send(build_request("POST", "/", body=b"abc"))
        await settle()
        (response,) = again.responses()
        assert response.startswith(b"HTTP/1.1 200 ") and body_of(response) == b"3"

    run(test)


def test_stalled_chunked_body_gets_408_at_the_deadline() -> None:
    async def test(loop: asyncio.AbstractEventLoop) -> None:
        app = BodyRecorder()
        srv = FakeServer(loop, app, timeout_request_body=TIMEOUT)
        c = srv.connect()
        c.send(build_request("POST", "/", [("Transfer-Encoding", "chunked")]) + b"5\r\nhel")
        await settle()
        await srv.advance(TIMEOUT - JUST)
        assert c.out == b"" and not c.closed
        await srv.advance(JUST)
        assert_408_and_closed(c)
        assert app.types[-1:] == ["http.disconnect"]
        assert srv.stats()["timeouts"] == 1

    run(test)


def test_stalled_body_after_the_response_started_is_closed_without_408() -> None:
    """The app answered before reading the rest; the client stalls: the server
    drains for a while, then gives up silently (a 408 now would be read as
    the response to a next request)."""

    async def test(loop: asyncio.AbstractEventLoop) -> None:
        srv = FakeServer(loop, apps.hello, timeout_request_body=TIMEOUT)
        c = srv.connect()
        c.send(build_request("POST", "/", [("Content-Length", "1000")]) + b"x" * 10)
        await settle()
        (response,) = c.responses()
        assert response.startswith(b"HTTP/1.1 200 ") and body_of(response) == b"Hello, World!"
        assert c.protocol.state == "drain"
        await srv.advance(TIMEOUT - JUST)
        assert not c.closed
        await srv.advance(JUST)
        assert c.transport.server_closed and c.transport.lost
        assert c.responses() == [response]  # nothing after the 200
        assert srv.state.connections == 0 and srv.state.active_requests == 0

    run(test)


def test_trickling_body_is_not_dropped() -> None:
    """Ten bytes a moment before each deadline, ten times (ten timeouts'
    worth): every read restarts the clock, so the upload completes."""

    async def test(loop: asyncio.AbstractEventLoop) -> None:
        srv = FakeServer(loop, BodyRecorder(), timeout_request_body=TIMEOUT)
        c = srv.connect()
        c.send(build_request("POST", "/", [("Content-Length", "100")]))
        for _ in range(10):
            await srv.advance(TIMEOUT - JUST)
            assert not c.closed and c.out == b""
            c.send(b"y" * 10)
        await settle()
        (response,) = c.responses()
        assert response.startswith(b"HTTP/1.1 200 ") and body_of(response) == b"100"
        assert srv.stats()["timeouts"] == 0

    run(test)


def test_app_that_reads_slowly_is_not_the_clients_fault() -> None:
    """The app waits before reading an 8 MiB upload (streamed: above the
    zero-copy maximum): the server pauses reading (flow control), the client
    cannot send, and no body timeout runs meanwhile -- ten timeouts pass.
    When the app reads, reading resumes and the deadline starts again from
    then."""

    async def test(loop: asyncio.AbstractEventLoop) -> None:
        gate = loop.create_future()

        async def lazy(scope: Any, receive: Any, send: Any) -> None:
            await gate
            body, _ = await apps.read_body(receive)
            await apps.send_text(send, b"%d" % len(body))

        srv = FakeServer(loop, lazy, timeout_request_body=TIMEOUT)
        c = srv.connect()
        size = 8 * 1024 * 1024
        c.transport.queue(build_request("POST", "/", [("Content-Length", str(size))])
                          + b"z" * size)
        while c.transport.read():
            pass
        assert c.transport.reading_paused and c.transport.pending  # the app is behind
        await srv.advance(10 * TIMEOUT)
        assert not c.closed and c.out == b""
        gate.set_result(None)
        await settle()
        assert not c.transport.reading_paused  # the app caught up
        await srv.advance(TIMEOUT - JUST)  # the deadline runs again from the resume
        assert not c.closed
        for _ in range(10_000):
            if not c.transport.pending:
                break
            if not c.transport.read():
                assert c.transport.reading_paused
                await settle(1)
        await settle()
        (response,) = c.responses()
        assert response.startswith(b"HTTP/1.1 200 ") and body_of(response) == str(size).encode()
        assert srv.stats()["timeouts"] == 0

    run(test)


# ---------------------------------------------------------------------------
# The keep-alive deadline
# ---------------------------------------------------------------------------


def test_idle_keep_alive_is_not_a_body_timeout() -> None:
    """After a complete request the keep-alive timeout applies, not this one."""

    async def test(loop: asyncio.AbstractEventLoop) -> None:
        srv = FakeServer(loop, BodyRecorder(), timeout_request_body=0.5, timeout_keep_alive=3)
        c = srv.connect()
        c.send(build_request("POST", "/", body=b"abc"))
        await settle()
        await srv.advance(3 - JUST)  # the body timeout six times over
        assert not c.closed
        c.send(build_request("POST", "/", body=b"abcd"))
        await settle()
        assert [body_of(r) for r in c.responses()] == [b"3", b"4"]

    run(test)


def test_idle_connection_is_closed_quietly_at_the_keep_alive_deadline() -> None:
    """Each response starts the keep-alive clock again; at its deadline the
    idle connection is closed without a word (not a timeout of the client's:
    the counter stays)."""

    async def test(loop: asyncio.AbstractEventLoop) -> None:
        srv = FakeServer(loop, apps.hello, timeout_keep_alive=3)
        c = srv.connect()
        c.send(build_request("GET", "/"))
        await settle()
        await srv.advance(3 - JUST)
        assert not c.closed
        c.send(build_request("GET", "/"))
        await settle()
        await srv.advance(3 - JUST)
        assert not c.closed
        await srv.advance(JUST)
        assert c.transport.server_closed and c.transport.lost
        assert [body_of(r) for r in c.responses()] == [b"Hello, World!"] * 2
        assert srv.state.connections == 0
        assert srv.stats()["timeouts"] == 0

    run(test)


# ---------------------------------------------------------------------------
# The request-head deadline
# ---------------------------------------------------------------------------


def test_partial_head_gets_408_and_a_silent_client_is_closed_at_the_deadline() -> None:
    async def test(loop: asyncio.AbstractEventLoop) -> None:
        srv = FakeServer(loop, apps.echo_scope, timeout_request_header=TIMEOUT)
        partial = srv.connect()
        silent = srv.connect()
        partial.send(b"GET /scope HTTP/1.1\r\nHost: x\r\nUser-Agent: sl")
        await srv.advance(TIMEOUT - JUST)
        assert not partial.closed and not silent.closed
        assert partial.out == b"" and silent.out == b""
        await srv.advance(JUST)
        assert_408_and_closed(partial)
        assert silent.transport.server_closed and silent.transport.lost
        assert silent.out == b""  # nothing to answer
        assert srv.stats()["timeouts"] == 2
        assert srv.state.connections == 0

    run(test)


def test_request_header_timeout_spans_the_whole_head() -> None:
    """The header deadline is not reset by each trickled byte (slowloris):
    a byte every 1/64 of the timeout, and the 408 comes at the timeout."""

    async def test(loop: asyncio.AbstractEventLoop) -> None:
        srv = FakeServer(loop, apps.hello, timeout_request_header=TIMEOUT)
        head = build_request("GET", "/", [("X-Pad", "a" * 60)])[:-2]  # never finished
        assert len(head) > 64
        step = TIMEOUT / 64
        c = srv.connect()
        for i in range(63):
            c.send(head[i:i + 1])
            await srv.advance(step)
            assert not c.closed, i
        c.send(head[63:64])
        await srv.advance(step)
        assert_408_and_closed(c)

    run(test)


def test_next_heads_deadline_runs_from_its_first_byte() -> None:
    """Between requests the keep-alive clock runs; the first byte of the next
    head starts the header clock."""

    async def test(loop: asyncio.AbstractEventLoop) -> None:
        srv = FakeServer(loop, apps.hello, timeout_request_header=TIMEOUT,
                         timeout_keep_alive=5)
        c = srv.connect()
        c.send(build_request("GET", "/"))
        await settle()
        await srv.advance(2 * TIMEOUT)  # idle: longer than a head may take
        c.send(b"GET / HT")
        await srv.advance(TIMEOUT - JUST)
        assert not c.closed and len(c.responses()) == 1
        await srv.advance(JUST)
        first, second = c.responses()
        assert first.startswith(b"HTTP/1.1 200 ") and second.startswith(b"HTTP/1.1 408 ")
        assert c.transport.server_closed

    run(test)


def test_shutdown_gives_a_head_on_its_way_one_second() -> None:
    """ServerState.shutdown(): an idle keep-alive connection closes at once; a
    connection whose head is on its way gets the shutdown grace (one second,
    shorter than its header timeout): completed in time it is served with
    Connection: close, else 408 at the grace's end."""

    async def test(loop: asyncio.AbstractEventLoop) -> None:
        srv = FakeServer(loop, apps.hello, timeout_request_header=10)
        idle = srv.connect()
        idle.send(build_request("GET", "/"))
        await settle()
        finishing = srv.connect()
        late = srv.connect()
        request = build_request("GET", "/")
        finishing.send(request[:5])
        late.send(request[:5])
        srv.state.shutdown()
        await settle()
        assert idle.transport.server_closed and len(idle.responses()) == 1
        await srv.advance(1.0 - JUST)
        assert not finishing.closed and not late.closed
        finishing.send(request[5:])
        await settle()
        (served,) = finishing.responses()
        assert served.startswith(b"HTTP/1.1 200 ") and b"\r\nconnection: close\r\n" in served
        assert finishing.transport.server_closed
        await srv.advance(JUST)
        assert_408_and_closed(late)

    run(test)


def test_the_test_clock_only_moves_forward() -> None:
    """ServerState._advance_clock refuses to go back or to jump by an
    unknown amount (a test would then see deadlines fire out of order)."""

    async def test(loop: asyncio.AbstractEventLoop) -> None:
        srv = FakeServer(loop, apps.hello)
        for bad in (-JUST, float("nan"), float("inf")):
            with pytest.raises(ValueError):
                srv.state._advance_clock(bad)
        await srv.advance(0)  # standing still is fine

    run(test)


# ---------------------------------------------------------------------------
# On a real socket and the real clock
# ---------------------------------------------------------------------------


def test_stalled_body_gets_408_on_a_real_socket(serve: Any) -> None:
    """Stays on a socket: the running Server's own tick fires the body
    deadline on the real clock, the 408 reaches the client and the TCP
    connection is closed (the fake-clock tests above tick by hand)."""
    timeout = 0.5
    app = BodyRecorder()
    handle = serve(app, timeout_request_body=timeout)
    with handle.connect() as c:
        started = time.monotonic()  # before the server can have read the bytes
        c.send(build_request("POST", "/", [("Content-Length", "100")]) + b"x" * 10)
        r = c.read_response()
        elapsed = time.monotonic() - started
        assert r.status == 408
        assert timeout <= elapsed <= 5.0, elapsed
        assert c.is_closed()
    wait_for(lambda: app.types[-1:] == ["http.disconnect"])
    wait_for(lambda: handle.state.connections == 0 and handle.state.active_requests == 0)
    with handle.connect() as c:
        assert c.request("POST", "/", body=b"abc").body == b"3"
