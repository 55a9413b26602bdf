"""Regression tests for the seams where real deployments differ from polite
tests (the C-core review of 2026-12, docs/reliability.md): real TLS
transports that call back into the protocol, middleware that sets context
variables, apps that re-enter send() or cancel their own waits, hop-by-hop
headers from proxy-style apps, bodies that arrive slowly.

Every test here runs the real server over real sockets, on both event loops.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import socket
import ssl
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import pytest

from tests.support import apps
from tests.support.clients import RawClient, build_request, chunked
from tests.support.servers import ServerHandle
from tests.support.tls_leg import Certificates, session_certificates
from tests.support.waiting import wait_for

# ---------------------------------------------------------------------------
# TLS: error responses over the stdlib / uvloop TLS transport
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def certs() -> Certificates:
    return session_certificates()


def tls_client(handle: ServerHandle, certs: Certificates) -> RawClient:
    client = RawClient.__new__(RawClient)
    client.host, client.port, client.timeout, client.buf = handle.host, handle.port, 10.0, b""
    raw = socket.create_connection((handle.host, handle.port), timeout=10.0)
    # ragged EOFs not suppressed: a close without close_notify raises
    client.sock = certs.client_context.wrap_socket(raw, server_hostname="127.0.0.1",
                                                   suppress_ragged_eofs=False)
    return client


def read_until_clean_close(c: RawClient) -> bytes:
    """Everything the server sends, then its TLS close_notify: a clean EOF,
    not an abort (which the client sees as SSLEOFError / a reset)."""
    data = b""
    while True:
        chunk = c.sock.recv(65536)  # raises on an unclean close
        if not chunk:
            return data
        data += chunk


@pytest.fixture
def loop_errors(caplog: pytest.LogCaptureFixture) -> Callable[[], list[str]]:
    """What the event loop's exception handler has logged so far ("Fatal error
    on SSL protocol", "Exception in callback ...")."""
    caplog.set_level(logging.ERROR, logger="asyncio")

    def errors() -> list[str]:
        return [r.getMessage() for r in caplog.records if r.name == "asyncio"]

    return errors


# Each is sent in one write of less than one TLS record (16 KiB), so that the
# server reads it whole: the error is answered while the rest of that read is
# still unparsed, and the client has nothing left to send when the server
# closes (which would otherwise reset the connection under the client).
ERROR_REQUESTS = {
    # an oversized upload whose first bytes came with the head: 413 with
    # bytes left in the read
    "413-body-in-the-read": (
        build_request("POST", "/", [("Content-Length", "100000")]) + b"x" * 8000, 413),
    # a request, then garbage in the same read
    "400-pipelined-garbage": (build_request("GET", "/") + b"NOT HTTP\r\n\r\n" * 50, 400),
    "431-too-many-fields": (
        b"GET / HTTP/1.1\r\nHost: a\r\n" + b"X: 1\r\n" * 200 + b"\r\n" + b"y" * 5000, 431),
}


@pytest.mark.parametrize("case", list(ERROR_REQUESTS))
def test_tls_error_responses_close_cleanly(serve, certs, loop_errors, case):
    """An error answered over TLS while unparsed bytes remain: the client gets
    the response and a clean close (close_notify), and the loop logs no
    "Fatal error on SSL protocol" (stdlib TLS's close() calls get_buffer()
    and buffer_updated() on the protocol while it is still parsing)."""
    handle = serve(apps.echo_body, ssl_certfile=certs.certfile,
                   ssl_keyfile=certs.keyfile, limit_request_body=10_000)
    data, status = ERROR_REQUESTS[case]
    c = tls_client(handle, certs)
    try:
        c.send(data)
        out = read_until_clean_close(c)
    finally:
        c.close()
    responses = out.split(b"HTTP/1.1 ")[1:]
    assert int(responses[-1][:3]) == status, out[:300]
    assert b"connection: close" in responses[-1]
    time.sleep(0.1)  # let the loop run what close() scheduled
    assert not loop_errors()
    wait_for(lambda: handle.state.connections == 0, what="the connection is gone")


def test_tls_503_overload_closes_cleanly(serve, certs, loop_errors):
    release = threading.Event()

    async def app(scope, receive, send):
        while scope["path"] == "/hold" and not release.is_set():
            await asyncio.sleep(0.01)
        await apps.send_text(send, b"ok")

    handle = serve(app, ssl_certfile=certs.certfile, ssl_keyfile=certs.keyfile,
                   limit_concurrency=1)
    holder = tls_client(handle, certs)
    try:
        holder.send(build_request("GET", "/hold"))
        wait_for(lambda: handle.state.active_requests == 1, what="the first request runs")
        c = tls_client(handle, certs)
        try:
            c.send(build_request("GET", "/") + build_request("GET", "/"))
            out = read_until_clean_close(c)
        finally:
            c.close()
        assert out.startswith(b"HTTP/1.1 503"), out[:200]
        release.set()
        assert holder.read_response().status == 200
    finally:
        release.set()
        holder.close()
    assert not loop_errors()


def test_tls_half_close_is_not_answered_true(serve, certs, caplog):
    """A TLS client that shuts down its side after a request still gets the
    response; the protocol does not ask a TLS transport to stay half-open
    (asyncio would log "returning true from eof_received() has no effect")."""
    caplog.set_level(logging.WARNING, logger="asyncio")

    async def app(scope, receive, send):
        message = await receive()
        assert message["type"] == "http.request"
        await asyncio.sleep(0.05)
        await apps.send_text(send, b"late")

    handle = serve(app, ssl_certfile=certs.certfile, ssl_keyfile=certs.keyfile)
    c = tls_client(handle, certs)
    c.send(build_request("GET", "/"))
    tls_sock = c.sock
    assert isinstance(tls_sock, ssl.SSLSocket)
    try:
        tls_sock.unwrap()  # close_notify: the TLS "half-close"
    except (ssl.SSLError, OSError):
        pass
    c.close()
    time.sleep(0.2)
    messages = [r.getMessage() for r in caplog.records if r.name == "asyncio"]
    assert not any("eof_received" in m for m in messages), messages


# ---------------------------------------------------------------------------
# Each request starts from the server's base context
# ---------------------------------------------------------------------------

REQUEST_ID: contextvars.ContextVar[str] = contextvars.ContextVar("request_id")


def context_app(seen: list[tuple[str, str | None]]) -> Any:
    """Middleware-style: reads the variable at the start, then sets it."""

    async def app(scope, receive, send):
        seen.append((scope["path"], REQUEST_ID.get(None)))
        REQUEST_ID.set(scope["path"])
        body, _ = await apps.read_body(receive)
        REQUEST_ID.set(scope["path"] + "/after-body")
        await apps.send_text(send, b"%d" % len(body))
        REQUEST_ID.set(scope["path"] + "/after-response")

    return app


def test_context_does_not_leak_to_a_pipelined_request(serve):
    seen: list[tuple[str, str | None]] = []
    handle = serve(context_app(seen))
    with handle.connect() as c:
        c.send(b"".join(build_request("GET", f"/r{i}") for i in range(5)))
        for _ in range(5):
            assert c.read_response().status == 200
    assert seen == [(f"/r{i}", None) for i in range(5)]


def test_context_does_not_leak_after_a_large_upload(serve):
    """An upload large enough to pause reading: reading resumes from inside
    the app's receive() (whose context the loop's read callback then runs
    in); the next request on the connection must still start clean."""
    seen: list[tuple[str, str | None]] = []

    async def slow(scope, receive, send):
        seen.append((scope["path"], REQUEST_ID.get(None)))
        REQUEST_ID.set(scope["path"])
        size = 0
        while True:
            message = await receive()
            size += len(message["body"])
            await asyncio.sleep(0.001)  # lag behind: the server pauses reading
            if not message.get("more_body"):
                break
        await apps.send_text(send, b"%d" % size)

    handle = serve(slow, optimizations={"zero_copy_body": False})
    body = b"x" * (2 * 1024 * 1024)
    with handle.connect() as c:
        c.send(build_request("POST", "/upload", body=body))
        assert c.read_response().body == b"%d" % len(body)
        for i in range(3):
            assert c.request("GET", f"/next{i}").status == 200
    assert seen == [("/upload", None)] + [(f"/next{i}", None) for i in range(3)]


def test_context_does_not_leak_into_a_websocket(serve):
    """The request before an upgrade on the same connection sets a variable;
    the WebSocket's app task starts clean."""
    pytest.importorskip("wsproto")
    seen: list[str | None] = []

    async def app(scope, receive, send):
        seen.append(REQUEST_ID.get(None))
        REQUEST_ID.set("http")
        if scope["type"] == "websocket":
            await receive()
            await send({"type": "websocket.accept"})
            await send({"type": "websocket.close"})
            return
        await apps.send_text(send, b"ok")

    handle = serve(app)
    with handle.connect() as c:
        assert c.request("GET", "/").status == 200
        c.send(build_request("GET", "/ws", [
            ("Upgrade", "websocket"), ("Connection", "Upgrade"),
            ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="), ("Sec-WebSocket-Version", "13")]))
        assert c.read_response(head_request=True).status == 101
    wait_for(lambda: len(seen) == 2, what="the websocket app ran")
    assert seen == [None, None]


# ---------------------------------------------------------------------------
# send() and receive(): re-entry, cancellation, return types
# ---------------------------------------------------------------------------


class SendsInBool:
    """A more_body value whose truth test calls send() (app code that runs
    inside send())."""

    def __init__(self, send: Any, errors: list[BaseException]) -> None:
        self.send, self.errors = send, errors

    def __bool__(self) -> bool:
        try:
            self.send({"type": "http.response.body", "body": b"inner", "more_body": False})
        except RuntimeError as exc:
            self.errors.append(exc)
        return True


class SendingMapping(Mapping[str, Any]):
    def __init__(self, message: dict[str, Any], send: Any, errors: list[BaseException]) -> None:
        self.message, self.send, self.errors = message, send, errors

    def __getitem__(self, key: str) -> Any:
        if key == "body":
            try:
                self.send({"type": "http.response.body", "body": b"inner"})
            except RuntimeError as exc:
                self.errors.append(exc)
        return self.message[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.message)

    def __len__(self) -> int:
        return len(self.message)


@pytest.mark.parametrize("where", ["more_body", "headers", "mapping"])
def test_send_reentered_from_app_code_raises(serve, where):
    """send() called from code that send() runs is refused with RuntimeError;
    the outer send() goes on and the response is exactly the outer one."""
    errors: list[BaseException] = []

    async def app(scope, receive, send):
        start: Any = {"type": "http.response.start", "status": 200,
                      "headers": [(b"content-type", b"text/plain")]}
        if where == "headers":
            def headers() -> Iterator[tuple[bytes, bytes]]:
                try:
                    send({"type": "http.response.start", "status": 500, "headers": []})
                except RuntimeError as exc:
                    errors.append(exc)
                yield (b"x-a", b"1")
            start["headers"] = headers()
        await send(start)
        if where == "more_body":
            await send({"type": "http.response.body", "body": b"outer",
                        "more_body": SendsInBool(send, errors)})
            await send({"type": "http.response.body", "body": b"!"})
        elif where == "mapping":
            await send(SendingMapping({"type": "http.response.body", "body": b"outer"},
                                      send, errors))
        else:
            await send({"type": "http.response.body", "body": b"outer"})

    handle = serve(app)
    with handle.connect() as c:
        r = c.request("GET", "/")
        assert r.status == 200
        assert r.body == (b"outer!" if where == "more_body" else b"outer")
        assert len(errors) == 1 and isinstance(errors[0], RuntimeError), errors
        assert "another send()" in str(errors[0])
        assert c.request("GET", "/").status == 200  # the connection is in sync


def test_cancelled_send_does_not_poison_the_next_one(serve):
    """Writing is paused (the client reads nothing); a send() is cancelled by
    a timeout.  The next send() waits for writing to resume like any other,
    instead of raising CancelledError at once."""
    outcome: dict[str, str] = {}
    done = asyncio.Event()

    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": []})
        chunk = b"x" * 65536
        sent = 0
        while True:  # until a send() has to wait
            try:
                await asyncio.wait_for(send({"type": "http.response.body", "body": chunk,
                                             "more_body": True}), 0.05)
                sent += 1
            except asyncio.TimeoutError:
                outcome["first"] = "timed out"
                break
        try:
            await asyncio.wait_for(send({"type": "http.response.body", "body": b"y",
                                         "more_body": True}), 0.1)
            outcome["second"] = "sent"
        except asyncio.CancelledError:
            outcome["second"] = "CancelledError at once"
            raise
        except asyncio.TimeoutError:
            outcome["second"] = "waited"
        await send({"type": "http.response.body", "body": b"end"})
        done.set()

    handle = serve(app)
    with handle.connect() as c:
        c.send(build_request("GET", "/"))
        wait_for(lambda: "second" in outcome, what="the second send() returned")
        r = c.read_response()
    assert outcome == {"first": "timed out", "second": "waited"}
    assert r.status == 200 and r.body.endswith(b"yend")


def test_receive_and_send_can_become_tasks_whether_or_not_they_wait(serve):
    """asyncio.create_task(receive()) works when the body is not there yet
    (the call must wait) as well as when it is."""
    results: list[Any] = []

    async def app(scope, receive, send):
        task = asyncio.create_task(receive())
        message = await task
        results.append(message["body"])
        sent = asyncio.create_task(send({"type": "http.response.start", "status": 200,
                                         "headers": []}))
        await sent
        await send({"type": "http.response.body", "body": b"ok"})

    handle = serve(app)
    with handle.connect() as c:
        c.send(build_request("POST", "/", [("Content-Length", "5")]))
        time.sleep(0.1)  # the app waits in receive() meanwhile
        c.send(b"hello")
        r = c.read_response()
        assert r.status == 200 and r.body == b"ok"
        r = c.request("POST", "/", body=b"again")  # the body comes with the head
        assert r.status == 200
    assert results == [b"hello", b"again"]


# ---------------------------------------------------------------------------
# Response messages the server must not pass on as they are
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("status", [100, 101, 103, 199])
def test_informational_status_is_refused(serve, status):
    """http.response.start starts the final response: a 1xx there would be
    written as if final and desynchronise the client.  RuntimeError, 500."""
    errors: list[BaseException] = []

    async def app(scope, receive, send):
        try:
            await send({"type": "http.response.start", "status": status, "headers": []})
        except RuntimeError as exc:
            errors.append(exc)
            raise

    handle = serve(app)
    with handle.connect() as c:
        r = c.request("GET", "/")
        assert r.status == 500
        assert c.is_closed()
    assert len(errors) == 1 and "informational" in str(errors[0])


# ---------------------------------------------------------------------------
# Request heads and bodies
# ---------------------------------------------------------------------------


def test_head_over_limit_request_head_gets_431(serve):
    handle = serve(apps.hello, limit_request_head=4096)
    with handle.connect() as c:
        fields = [(f"X-{i}", "v" * 100) for i in range(50)]  # about 5.5 KiB
        r = c.request("GET", "/", headers=fields)
        assert r.status == 431 and c.is_closed()
    with handle.connect() as c:  # one a bit under the limit is served
        assert c.request("GET", "/", headers=fields[:30]).status == 200


def test_head_larger_than_the_read_high_water_mark_is_served(serve):
    """A head of 140 KB (allowed here by the limits) arriving in pieces: the
    server keeps reading until it is complete -- an incomplete head is never a
    backlog to pause for (it used to stall until the header timeout)."""
    handle = serve(apps.echo_scope, limit_request_head=256 * 1024, limit_request_headers=200,
                   timeout_request_header=30)
    fields = [(f"X-{i}", "v" * 1000) for i in range(140)]
    data = build_request("GET", "/", fields)
    with handle.connect() as c:
        for i in range(0, len(data), 20_000):
            c.send(data[i:i + 20_000])
            time.sleep(0.01)
        r = c.read_response()
    assert r.status == 200


def test_slow_head_one_line_per_packet(serve):
    """100 fields sent a line at a time (the parse resumes after the last
    complete line instead of starting over)."""
    handle = serve(apps.echo_scope)
    lines = [b"GET /slow HTTP/1.1\r\n", b"Host: a\r\n"] + [
        b"X-%d: %s\r\n" % (i, b"v" * 500) for i in range(98)] + [b"\r\n"]
    with handle.connect() as c:
        for line in lines:
            c.send(line)
        r = c.read_response()
    assert r.status == 200 and b'"x-97"' in r.body


def test_chunked_body_is_one_message_per_read_not_per_chunk(serve):
    """5,000 one-byte chunks sent at once reach the app in a few messages
    (one bytes object per read), not 5,000."""
    handle = serve(apps.echo_body)
    body = bytes(range(256)) * 20
    framed = chunked(body, size=1)
    with handle.connect() as c:
        c.send(build_request("POST", "/", [("Transfer-Encoding", "chunked")]) + framed)
        r = c.read_response()
    assert r.body == body
    assert int(r.header("x-messages") or 0) <= 10


def test_zero_copy_body_reaches_a_waiting_app_when_the_client_pauses(serve):
    """A client sends the first 1,000 bytes of a 100 KB body and pauses: the
    app waiting in receive() gets what has arrived (within a few server
    ticks), and the rest when it comes."""
    got: list[tuple[int, bool, float]] = []
    start = time.monotonic()

    async def app(scope, receive, send):
        total = 0
        while True:
            message = await receive()
            total += len(message["body"])
            got.append((len(message["body"]), message["more_body"], time.monotonic() - start))
            if not message["more_body"]:
                break
        await apps.send_text(send, b"%d" % total)

    handle = serve(app, optimizations={"zero_copy_body": True}, zero_copy_threshold=4096)
    size = 100_000
    with handle.connect() as c:
        c.send(build_request("POST", "/", [("Content-Length", str(size))]) + b"a" * 1000)
        wait_for(lambda: got, timeout=5, what="the first part reached the app")
        assert got[0][0] == 1000 and got[0][1] is True
        c.send(b"b" * (size - 1000))
        r = c.read_response()
    assert r.body == b"%d" % size
    assert sum(n for n, _, _ in got) == size and got[-1][1] is False


def test_zero_copy_body_at_full_speed_is_one_object(serve):
    seen: list[int] = []

    async def app(scope, receive, send):
        body, messages = await apps.read_body(receive)
        seen.append(len(messages))
        await apps.send_text(send, b"%d" % len(body))

    handle = serve(app, optimizations={"zero_copy_body": True}, zero_copy_threshold=4096)
    with handle.connect() as c:
        for _ in range(5):
            assert c.request("POST", "/", body=b"z" * 500_000).body == b"500000"
    assert seen == [1] * 5


def test_expect_continue_with_the_body_already_sent_zero_copy(serve):
    """`Expect: 100-continue` but the body came with the head (zero-copy
    size): no 100 Continue is owed; an early response drains the rest and
    the connection stays usable."""

    async def early(scope, receive, send):
        await apps.send_text(send, b"early", status=413)

    handle = serve(early, optimizations={"zero_copy_body": True}, zero_copy_threshold=4096)
    with handle.connect() as c:
        head = build_request("POST", "/", [("Content-Length", "20000"),
                                           ("Expect", "100-continue")])
        c.send(head + b"q" * 8000)
        r = c.read_response()
        assert r.status == 413 and r.body == b"early"
        c.send(b"q" * 12000)  # the rest of the body: drained
        assert c.request("GET", "/").status == 413  # same connection, in sync


# ---------------------------------------------------------------------------
# Logging of what the server answers itself
# ---------------------------------------------------------------------------


def test_parse_errors_are_logged_with_the_reason(serve, caplog):
    caplog.set_level(logging.WARNING, logger="carpinus.error")
    handle = serve(apps.hello)
    with handle.connect() as c:
        c.send(b"GET / HTTP/1.1\r\nHost: a\r\nBad Name: x\r\n\r\n")
        assert c.read_response().status == 400
    wait_for(lambda: any("Invalid HTTP request" in r.getMessage() for r in caplog.records),
             what="a log line")
    line = next(r.getMessage() for r in caplog.records if "Invalid HTTP request" in r.getMessage())
    assert "field name" in line and "127.0.0.1" in line and "400" in line


def test_refusals_are_rate_limited(serve, caplog):
    caplog.set_level(logging.WARNING, logger="carpinus.error")
    handle = serve(apps.hello)
    for _ in range(30):
        with handle.connect() as c:
            c.send(b"BAD\r\n\r\n")
            c.read_response()
    time.sleep(0.1)
    lines = [r for r in caplog.records if "Invalid HTTP request" in r.getMessage()]
    assert 1 <= len(lines) <= 20
    assert handle.state.stats()["parse_errors"] == 30


def test_server_made_responses_reach_the_access_log(serve, caplog):
    caplog.set_level(logging.INFO, logger="carpinus.access")

    async def failing(scope, receive, send):
        raise ValueError("boom")

    handle = serve(failing, access_log=True, limit_request_body=10)
    with handle.connect() as c:
        assert c.request("GET", "/fails").status == 500
    with handle.connect() as c:
        assert c.request("POST", "/big", body=b"x" * 100).status == 413
    with handle.connect() as c:
        c.send(b"GET /bad\x01 HTTP/1.1\r\n\r\n")
        assert c.read_response().status == 400
    wait_for(lambda: len([r for r in caplog.records if r.name == "carpinus.access"]) >= 3,
             what="three access lines")
    lines = [r.getMessage() for r in caplog.records if r.name == "carpinus.access"]
    assert any('"GET /fails HTTP/1.1" 500' in line for line in lines), lines
    assert any('"POST /big HTTP/1.1" 413' in line for line in lines), lines
    assert any(line.endswith(" 400") for line in lines), lines


def test_counters_say_what_they_count(serve):
    handle = serve(apps.hello, limit_request_body=10, timeout_request_header=0.3)
    with handle.connect() as c:
        c.send(b"GET / HTTP/1.1\r\nHost: a\r\n\r\x00")
        c.read_response()
    with handle.connect() as c:
        c.request("POST", "/", body=b"x" * 11)
    with handle.connect() as c:
        c.send(b"GET / HTTP/1.1\r\n")  # and nothing more: 408
        assert c.read_response().status == 408
    stats = handle.state.stats()
    assert stats["parse_errors"] == 1
    assert stats["bodies_too_large"] == 1
    assert stats["timeouts"] == 1
    assert stats["internal_errors"] == 0 and stats["overloaded"] == 0


# ---------------------------------------------------------------------------
# Python 3.12+: the eager-start paths
# ---------------------------------------------------------------------------

eager_only = pytest.mark.skipif(sys.version_info < (3, 12),
                                reason="eager task start exists from Python 3.12")


@eager_only
def test_eager_app_that_never_suspends_is_counted_once(serve):
    handle = serve(apps.hello)
    with handle.connect() as c:
        for _ in range(50):
            assert c.request("GET", "/").status == 200
    # back to exactly 0 (the count once went to -1 on this path); the
    # response can reach the client before the server thread has finished
    wait_for(lambda: handle.state.active_requests == 0, what="no request running")
    assert handle.state.stats()["active_requests"] == 0


def test_pipelined_burst_is_served_in_order(serve):
    """200 tiny pipelined requests in one write: on 3.12+ an app that never
    suspends is served inside the read, a bounded number per read; all are
    answered, in order."""
    async def app(scope, receive, send):
        await apps.send_text(send, scope["path"].encode())

    handle = serve(app)
    with handle.connect() as c:
        c.send(b"".join(build_request("GET", f"/{i}") for i in range(200)))
        for i in range(200):
            assert c.read_response().body == f"/{i}".encode()


# ---------------------------------------------------------------------------
# asyncio's tooling: task factories, task reprs and stacks
# ---------------------------------------------------------------------------


def test_loop_task_factory_is_honoured(loop_name):
    """A task factory set on the loop before the server starts (OpenTelemetry,
    aiomonitor, asyncio.eager_task_factory) makes every request's Task, on
    every Python version; the request still starts from a clean context."""
    from carpinus.config import Config
    from carpinus.server import Server

    made: list[asyncio.Task[Any]] = []
    seen: list[str | None] = []

    def factory(loop: asyncio.AbstractEventLoop, coro: Any, **kwargs: Any) -> asyncio.Task[Any]:
        task = asyncio.Task(coro, loop=loop, **kwargs)
        made.append(task)
        return task

    async def app(scope, receive, send):
        seen.append(REQUEST_ID.get(None))
        REQUEST_ID.set("set by a request")
        await apps.send_text(send, b"ok")

    config = Config(app, port=0, lifespan="off", access_log=False, configure_logging=False,
                    gc_freeze=False, loop=loop_name)
    server = Server(config)
    loop = config.loop_factory()()
    loop.set_task_factory(factory)
    thread = threading.Thread(target=loop.run_until_complete, args=(server.serve(),))
    thread.start()
    try:
        wait_for(lambda: server.started, what="the server started")
        handle = ServerHandle(server, "127.0.0.1", server.port)
        with handle.connect() as c:
            c.send(build_request("GET", "/") + build_request("GET", "/"))
            assert c.read_response().status == 200
            assert c.read_response().status == 200
    finally:
        server.should_exit = True
        thread.join(10)
        loop.close()
    request_tasks = [t for t in made if type(t.get_coro()).__name__ == "AppRunner"]
    assert len(request_tasks) == 2, made
    assert seen == [None, None]


def test_request_task_repr_and_stack_show_the_app(serve):
    """Task reprs name the app's coroutine (not "<AppRunner without
    __name__>"), and Task.get_stack() reaches its frame."""
    info: dict[str, Any] = {}

    async def my_asgi_app(scope, receive, send):
        task = asyncio.current_task()
        assert task is not None
        info["repr"] = repr(task)
        info["stack"] = [f.f_code.co_name for f in task.get_stack()]
        info["cr_await"] = type(task.get_coro().cr_await).__name__  # type: ignore[union-attr]
        await apps.send_text(send, b"ok")

    handle = serve(my_asgi_app)
    with handle.connect() as c:
        assert c.request("GET", "/").status == 200
    assert "my_asgi_app" in info["repr"] and "without __name__" not in info["repr"], info
    assert "my_asgi_app" in info["stack"], info
    assert info["cr_await"] == "coroutine"


def test_app_sys_exit_stops_the_server_once(spawn):
    """sys.exit() in an app that never suspends (on 3.12+ it runs inside the
    read, eager start): the client gets one 500, not two, and the exception
    is not swallowed -- the server process stops with the app's exit code,
    as it does on 3.11 where the app runs in its own loop step."""
    server = spawn.start("tests.support.process_apps:app")
    with server.connect() as c:
        c.send(build_request("GET", "/exit"))
        data = b""
        while True:
            chunk = c.sock.recv(65536)
            if not chunk:
                break
            data += chunk
    assert data.count(b"HTTP/1.1 ") == 1 and data.startswith(b"HTTP/1.1 500"), data
    assert server.wait(10) == 3, server.output
