"""Faults: apps that hang or send nonsense, clients that reset mid-way.

Each fault has a defined outcome, and after it a request on a new connection
is answered normally.  Faults that already had tests (docs/reliability.md
has the whole table):

  app raises before / after start / mid-stream, returns without a response:
      test_app.py (test_exception_*, test_app_returning_*)
  messages in the wrong order, bad status, header injection, message not a
  dict, body longer or shorter than declared:
      test_responses.py (test_refused_send_before_any_byte_gives_a_clean_500,
      test_invalid_*, test_app_body_*)
  client resets mid-body (Content-Length):
      test_app.py::test_disconnect_wakes_waiting_receive_and_send_raises_oserror

This file adds the rest: an app that never responds, wrong types in
messages, client resets and half-closes at the other interesting points,
and a forced close under a running app.
"""

from __future__ import annotations

import asyncio
import socket
import struct
import threading
from typing import Any

import pytest

from tests.support import apps
from tests.support.clients import RawClient, build_request
from tests.support.servers import ServerHandle
from tests.support.waiting import wait_for

RST = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 s: close() sends a reset


def reset(c: RawClient) -> None:
    c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, RST)
    c.close()


def assert_serves(handle: ServerHandle) -> None:
    with handle.connect() as c:
        r = c.request("GET", "/")
        assert r.status == 200, r


def router(fault: Any) -> Any:
    """/ answers Hello; every other path runs the fault under test."""

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["path"] == "/":
            await apps.send_text(send, b"Hello")
        else:
            await fault(scope, receive, send)

    return app


# ---------------------------------------------------------------------------
# An app that never responds
# ---------------------------------------------------------------------------


def test_app_that_never_responds_hears_the_client_leave(serve: Any) -> None:
    """Defined outcome: the client waits (the server has no app timeout, like
    uvicorn); when the client gives up (closes), the app's receive() says
    http.disconnect; the app returning without a response then gets the
    usual 500 on the half-closed connection, and everything is released."""
    events: list[str] = []

    async def hang(scope: Any, receive: Any, send: Any) -> None:
        await receive()  # the (empty) body
        message = await receive()  # blocks until the client is gone
        events.append(message["type"])

    handle = serve(router(hang))
    c = handle.connect()
    c.send(build_request("GET", "/hang"))
    c.sock.settimeout(0.5)
    with pytest.raises(TimeoutError):
        c.sock.recv(1)  # no answer
    assert_serves(handle)  # meanwhile, others are served
    c.close()
    wait_for(lambda: events == ["http.disconnect"])
    wait_for(lambda: handle.state.connections == 0 and handle.state.active_requests == 0)
    assert_serves(handle)


def test_app_that_ignores_everything_is_cancelled_at_shutdown(serve: Any) -> None:
    """An app that neither answers nor listens: its connection goes when the
    client goes, its task runs on (the server does not kill apps mid-request)
    until shutdown, whose graceful timeout cancels it."""
    cancelled = threading.Event()

    async def deaf(scope: Any, receive: Any, send: Any) -> None:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    handle = serve(router(deaf), timeout_graceful_shutdown=0.5)
    c = handle.connect()
    c.send(build_request("GET", "/deaf"))
    wait_for(lambda: handle.state.active_requests == 1)
    reset(c)
    wait_for(lambda: handle.state.connections == 0)
    assert handle.state.active_requests == 1
    assert_serves(handle)
    handle.server.should_exit = True
    assert cancelled.wait(10)


# ---------------------------------------------------------------------------
# Messages with the wrong types
# ---------------------------------------------------------------------------

START = {"type": "http.response.start", "status": 200, "headers": []}

BAD_MESSAGES = [
    # (id, messages; the last one must raise, exception type)
    ("body-str", [START, {"type": "http.response.body", "body": "text"}], TypeError),
    ("body-int", [START, {"type": "http.response.body", "body": 5}], TypeError),
    ("body-list", [START, {"type": "http.response.body", "body": [b"a"]}], TypeError),
    ("headers-int", [{"type": "http.response.start", "status": 200, "headers": 5}], TypeError),
    ("headers-bytes", [{"type": "http.response.start", "status": 200, "headers": b"x-a: 1"}],
     TypeError),
    ("header-pair-of-str", [{"type": "http.response.start", "status": 200,
                             "headers": [("x-a", "1")]}], TypeError),
    ("type-bytes", [{"type": b"http.response.start", "status": 200}], RuntimeError),
    ("type-none", [{"type": None}], RuntimeError),
    ("message-none", [None], TypeError),
    ("trailers-without-start", [{"type": "http.response.trailers", "headers": []}],
     RuntimeError),
]


@pytest.mark.parametrize("messages, exc_type",
                         [pytest.param(m, e, id=i) for i, m, e in BAD_MESSAGES])
def test_wrong_types_raise_in_the_app_and_the_client_gets_500(serve: Any, messages: Any,
                                                               exc_type: Any) -> None:
    errors: list[BaseException] = []

    async def fault(scope: Any, receive: Any, send: Any) -> None:
        for message in messages[:-1]:
            await send(message)
        try:
            await send(messages[-1])
        except Exception as exc:
            errors.append(exc)

    handle = serve(router(fault))
    with handle.connect() as c:
        r = c.request("GET", "/fault")
        assert r.status == 500 and r.body == b"Internal Server Error"
        assert c.is_closed()
    assert len(errors) == 1 and isinstance(errors[0], exc_type), errors
    assert_serves(handle)


# ---------------------------------------------------------------------------
# Client resets and half-closes
# ---------------------------------------------------------------------------


def upload_recorder(seen: list[str]) -> Any:
    """An app that reads the body and records each message type, then returns."""

    async def upload(scope: Any, receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            seen.append(message["type"])
            if message["type"] == "http.disconnect" or not message.get("more_body"):
                break

    return upload


def test_client_reset_mid_response(serve: Any) -> None:
    """The client resets while a long response streams: the app's send()
    raises ClientDisconnected (an OSError), the server releases everything."""
    outcome: list[str] = []

    async def stream(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        try:
            for _ in range(100_000):
                await send({"type": "http.response.body", "body": b"x" * 65536,
                            "more_body": True})
        except OSError as exc:
            outcome.append(type(exc).__name__)
            return
        outcome.append("finished")  # pragma: no cover - the client reset long before

    handle = serve(router(stream))
    c = handle.connect()
    c.send(build_request("GET", "/stream"))
    c._read_until(b"\r\n\r\n")
    c.sock.recv(100_000)
    reset(c)
    wait_for(lambda: outcome == ["ClientDisconnected"])
    wait_for(lambda: handle.state.connections == 0 and handle.state.active_requests == 0)
    assert_serves(handle)


def test_streaming_app_that_never_waits_hears_a_reset_at_once(serve: Any) -> None:
    """The transport learns of a reset only when a write fails (reading is
    paused: the app left a large body unread), and the app streams in a
    loop whose send() never has to wait.  The first send() after the failed
    write must raise ClientDisconnected -- not accept 2,000 chunks into a
    dead transport.  (Seen under valgrind, where the timing makes it likely.)"""
    gate = threading.Event()
    accepted: list[int] = []
    outcome: list[str] = []

    async def stream(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"head", "more_body": True})
        await asyncio.get_running_loop().run_in_executor(None, gate.wait, 10)
        try:
            for _ in range(2000):
                await send({"type": "http.response.body", "body": b"x" * 65536,
                            "more_body": True})
                accepted.append(1)
        except OSError as exc:
            outcome.append(type(exc).__name__)
        else:
            outcome.append("all sent")

    handle = serve(router(stream))
    c = handle.connect()
    # 8 MiB announced (above the zero-copy maximum: streamed), 1 MiB sent and
    # never read by the app: the server pauses reading
    c.send(build_request("POST", "/stream", [("Content-Length", str(8 << 20))]))
    c.send(b"b" * (1 << 20))
    c._read_until(b"head\r\n")
    reset(c)
    gate.set()
    wait_for(lambda: outcome)
    assert outcome == ["ClientDisconnected"]
    assert len(accepted) < 10, len(accepted)
    wait_for(lambda: handle.state.connections == 0 and handle.state.active_requests == 0)
    assert_serves(handle)


def test_client_reset_mid_chunked_body(serve: Any) -> None:
    seen: list[str] = []
    handle = serve(router(upload_recorder(seen)))
    c = handle.connect()
    c.send(build_request("POST", "/upload", [("Transfer-Encoding", "chunked")])
           + b"5\r\nhello\r\n3\r\nab")
    wait_for(lambda: seen)
    reset(c)
    wait_for(lambda: seen[-1] == "http.disconnect")
    assert "http.request" in seen
    wait_for(lambda: handle.state.connections == 0 and handle.state.active_requests == 0)
    assert_serves(handle)


@pytest.mark.tcp_only("a TCP half-close (SHUT_WR) has no TLS counterpart: SSLSocket.shutdown "
                     "drops the TLS layer; test_tls.py covers close_notify mid-body")
def test_client_half_closes_mid_body(serve: Any) -> None:
    """A FIN before the body is complete: the request can never complete, so
    the server closes and the app hears http.disconnect."""
    seen: list[str] = []
    handle = serve(router(upload_recorder(seen)))
    with handle.connect() as c:
        c.send(build_request("POST", "/upload", [("Content-Length", "100")]) + b"x" * 10)
        wait_for(lambda: seen)
        c.sock.shutdown(socket.SHUT_WR)
        assert c.is_closed(timeout=5)
        assert c.buf == b""  # no answer to a request that never ended
    wait_for(lambda: seen[-1] == "http.disconnect")
    wait_for(lambda: handle.state.connections == 0 and handle.state.active_requests == 0)
    assert_serves(handle)


def test_client_reset_with_pipelined_requests_waiting(serve: Any) -> None:
    """A reset while the server holds pipelined requests behind a slow one:
    the waiting ones are dropped, never served."""
    paths: list[str] = []

    async def slow(scope: Any, receive: Any, send: Any) -> None:
        paths.append(scope["path"])
        await asyncio.sleep(0.3)
        try:
            await apps.send_text(send, b"late")
        except OSError:
            pass

    handle = serve(router(slow))
    c = handle.connect()
    c.send(b"".join(build_request("GET", f"/slow{i}") for i in range(5)))
    wait_for(lambda: paths)
    reset(c)
    wait_for(lambda: handle.state.connections == 0 and handle.state.active_requests == 0)
    assert paths == ["/slow0"]
    assert_serves(handle)


# ---------------------------------------------------------------------------
# The server closing connections under running requests
# ---------------------------------------------------------------------------


def test_close_all_cuts_off_a_running_app(serve: Any) -> None:
    """ServerState.close_all() (a forced shutdown) closes a connection whose
    app is mid-response: from that moment the app's send() raises
    ClientDisconnected and receive() says http.disconnect -- nothing more is
    written to the closing transport.  Found by fuzz_protocol: until the
    transport reported the connection lost (one loop iteration later), a
    send -- or the 500 for an app that then raised -- was still written."""
    outcome: list[str] = []
    states: list[Any] = []

    async def streaming(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"first", "more_body": True})
        states[0].close_all()  # as Server.shutdown does once its grace period is over
        try:
            await send({"type": "http.response.body", "body": b"second"})
            outcome.append("sent")
        except OSError as exc:
            outcome.append(type(exc).__name__)
        outcome.append((await receive())["type"])

    handle = serve(router(streaming))
    states.append(handle.state)
    with handle.connect() as c:
        c.send(build_request("GET", "/stream"))
        while c._fill():  # to the close (bounded by the socket timeout)
            pass
        assert b"first" in c.buf and b"second" not in c.buf
    wait_for(lambda: len(outcome) == 2)
    assert outcome == ["ClientDisconnected", "http.disconnect"]
    wait_for(lambda: handle.state.connections == 0 and handle.state.active_requests == 0)
    # (no request after it: close_all also makes the server refuse new work)
