"""What the server does when the app misbehaves or the client goes away."""

from __future__ import annotations

import asyncio
import logging
import socket
import threading

import pytest

from tests.support import apps
from tests.support.clients import build_request
from tests.support.waiting import wait_for


def test_exception_before_response_is_500_and_logged(serve, caplog):
    async def app(scope, receive, send):
        raise ValueError("boom")

    handle = serve(app)
    with caplog.at_level(logging.ERROR, logger="carpinus.error"):
        with handle.connect() as c:
            r = c.request()
            assert r.status == 500
            assert r.body == b"Internal Server Error"
            assert r.header("connection") == "close"
            assert c.is_closed()
    assert any("Exception in ASGI application" in rec.getMessage() and rec.exc_info
               and rec.exc_info[0] is ValueError for rec in caplog.records)
    with handle.connect() as c:
        assert c.request().status == 500  # the server keeps serving


def test_exception_after_start_but_before_body_is_still_500(serve):
    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": []})
        raise ValueError("boom")

    handle = serve(app)
    with handle.connect() as c:
        assert c.request().status == 500


def test_exception_mid_stream_closes_connection(serve):
    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"partial", "more_body": True})
        raise ValueError("boom")

    handle = serve(app)
    with handle.connect() as c:
        c.send(build_request())
        head = c._read_until(b"\r\n\r\n")
        assert b"200 OK" in head and b"transfer-encoding: chunked" in head
        while c._fill():
            pass
        # the chunked body never terminates: the client can tell it is truncated
        assert not c.buf.endswith(b"0\r\n\r\n")
        assert b"partial" in c.buf


def test_app_returning_without_response_is_500(serve, caplog):
    async def app(scope, receive, send):
        return None

    handle = serve(app)
    with caplog.at_level(logging.ERROR, logger="carpinus.error"):
        with handle.connect() as c:
            assert c.request().status == 500
    assert any("without starting response" in rec.getMessage() for rec in caplog.records)


def test_app_returning_mid_stream_closes(serve, caplog):
    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"x", "more_body": True})

    handle = serve(app)
    with caplog.at_level(logging.ERROR, logger="carpinus.error"):
        with handle.connect() as c:
            c.send(build_request())
            c._read_until(b"\r\n\r\n")
            while c._fill():  # returns False at EOF: the server closed the connection
                pass
            assert c.buf == b"1\r\nx\r\n"  # and never sent the last chunk
    assert any("without completing response" in rec.getMessage() for rec in caplog.records)


def test_disconnect_wakes_waiting_receive_and_send_raises_oserror(serve):
    events = []
    done = threading.Event()

    async def app(scope, receive, send):
        first = await receive()  # the partial body
        events.append(first["type"])
        message = await receive()  # the client is gone before the rest arrives
        events.append(message["type"])
        try:
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"late"})
        except OSError as exc:
            events.append(type(exc).__name__)
        done.set()

    handle = serve(app)
    c = handle.connect()
    c.send(build_request("POST", "/", [("Content-Length", "100")]) + b"x" * 10)
    wait_for(lambda: events)
    c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    c.close()
    assert done.wait(5)
    assert events == ["http.request", "http.disconnect", "ClientDisconnected"]
    wait_for(lambda: handle.state.connections == 0 and handle.state.active_requests == 0)


def test_receive_after_response_returns_disconnect(serve):
    got = []

    async def app(scope, receive, send):
        await apps.send_text(send, b"ok")
        got.append(await asyncio.wait_for(receive(), 1))
        got.append(await asyncio.wait_for(receive(), 1))

    handle = serve(app)
    with handle.connect() as c:
        assert c.request("POST", "/", body=b"unread").status == 200
        wait_for(lambda: len(got) == 2)
    assert [m["type"] for m in got] == ["http.disconnect", "http.disconnect"]


def test_background_work_after_response_does_not_block_next_request(serve):
    release = asyncio.Event()
    finished = []

    async def app(scope, receive, send):
        await apps.send_text(send, scope["path"].encode())
        if scope["path"] == "/first":
            try:
                await asyncio.wait_for(release.wait(), 2)
            except asyncio.TimeoutError:
                pass
            finished.append("first")

    handle = serve(app)
    with handle.connect() as c:
        assert c.request("GET", "/first").body == b"/first"
        assert c.request("GET", "/second").body == b"/second"
    wait_for(lambda: finished == ["first"], timeout=5)


def test_app_cancelling_its_receive_keeps_body(serve):
    """A receive() cancelled by a timeout must not lose the bytes that arrive later."""

    timed_out = threading.Event()

    async def app(scope, receive, send):
        try:
            await asyncio.wait_for(receive(), 0.05)
        except asyncio.TimeoutError:
            timed_out.set()
        body, _ = await apps.read_body(receive)
        await apps.send_text(send, body)

    handle = serve(app)
    with handle.connect() as c:
        c.send(build_request("POST", "/", [("Content-Length", "5")]))
        # the body goes only once the first receive() has been cancelled
        # (a fixed sleep raced with a slow, loaded or sanitized server)
        assert timed_out.wait(10)
        c.send(b"hello")
        assert c.read_response().body == b"hello"


def test_slow_app_pauses_reading_of_large_upload(serve):
    """Read flow control: an app that doesn't read does not make the server buffer the body."""
    gate = threading.Event()
    total = []

    async def app(scope, receive, send):
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, gate.wait, 5)
        body, _ = await apps.read_body(receive)
        total.append(len(body))
        await apps.send_text(send, b"%d" % len(body))

    handle = serve(app)
    size = 32 * 1024 * 1024
    c = handle.connect()
    c.sock.settimeout(0.5)
    sent = 0
    payload = build_request("POST", "/", [("Content-Length", str(size))]) + b"x" * size
    try:
        while sent < len(payload):
            sent += c.sock.send(payload[sent : sent + 1 << 20])
    except TimeoutError:
        pass
    # the server stopped reading long before 32 MiB (kernel buffers + our high-water mark)
    assert sent < size // 2
    gate.set()
    c.sock.settimeout(10)
    c.sock.sendall(payload[sent:])
    assert c.read_response().body == str(size).encode()
    c.close()


def test_state_counters_return_to_zero(serve):
    handle = serve(apps.echo_body)
    for _ in range(3):
        with handle.connect() as c:
            c.request("POST", "/", body=b"abc")
    wait_for(lambda: handle.state.connections == 0 and handle.state.active_requests == 0)
    assert handle.state.stats()["requests_total"] == 3


@pytest.mark.parametrize("raw_split", [1, 7])
def test_partial_head_then_close_is_quiet(serve, raw_split):
    handle = serve(apps.hello)
    with handle.connect() as c:
        c.send(build_request()[:raw_split])
    wait_for(lambda: handle.state.connections == 0)
    with handle.connect() as c:
        assert c.request().status == 200


def test_unread_small_body_is_drained_and_connection_kept(serve):
    """An app that answers without reading a body still arriving: the server
    reads and drops the rest and the connection serves the next request."""
    handle = serve(apps.hello)
    with handle.connect() as c:
        c.send(build_request("POST", "/", [("Content-Length", "2000")]) + b"x" * 10)
        assert c.read_response().status == 200
        c.send(b"y" * 1990 + build_request("GET", "/next"))
        assert c.read_response().body == b"Hello, World!"


def test_unread_chunked_body_closes_after_response(serve):
    """A chunked body of unknown remaining length is not drained: after the
    response the connection closes, and bytes sent later get no answer."""
    handle = serve(apps.hello)
    with handle.connect() as c:
        c.send(build_request("POST", "/", [("Transfer-Encoding", "chunked")]) + b"5\r\nab")
        assert c.read_response().status == 200
        c.send(b"cde\r\nzz\r\n")  # "zz" is not a chunk size
        assert c.is_closed()
        assert c.buf == b""  # no 400 after the 200 already sent


def test_class_instance_app_follows_its_class(serve):
    """A class-instance app (every framework's) is called through the plain
    function its class's __call__ is, found once by the core, not looked up
    per request: a change to the class, to a base, or of the instance's class
    still takes effect on the next request, exactly as with a plain call,
    and an instance attribute named __call__ is ignored, as Python ignores it."""

    class Base:
        name = b"base"

        async def __call__(self, scope, receive, send):
            await apps.send_text(send, b"called " + self.name)

    class App(Base):
        name = b"app"

    class Other:
        async def __call__(self, scope, receive, send):
            await apps.send_text(send, b"other")

    async def replaced(self, scope, receive, send):
        await apps.send_text(send, b"replaced " + self.name)

    app = App()
    handle = serve(app)
    with handle.connect() as c:
        assert c.request().body == b"called app"
        assert c.request().body == b"called app"
        Base.__call__ = replaced  # a base class changed
        assert c.request().body == b"replaced app"
        App.name = b"renamed"  # any change to the class: looked at again
        assert c.request().body == b"replaced renamed"
        App.__call__ = staticmethod(lambda scope, receive, send: apps.send_text(send, b"static"))
        assert c.request().body == b"static"
        del App.__call__
        assert c.request().body == b"replaced renamed"
        app.__class__ = Other
        assert c.request().body == b"other"
        app.__call__ = replaced.__get__(app)  # not how Python calls an instance
        assert c.request().body == b"other"
