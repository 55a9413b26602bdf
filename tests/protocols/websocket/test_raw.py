"""WebSocket over a raw socket: handshake checks, frames, hostile input, flow control."""

from __future__ import annotations

import asyncio
import ssl
import struct
import threading
import time
from typing import Any

import pytest

from tests.support.clients import IO_TIMEOUT
from tests.support.waiting import wait_for
from tests.support.ws_apps import Recorder, echo
from tests.support.ws_clients import (
    OP_BINARY,
    OP_CLOSE,
    OP_CONT,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    RawWebSocket,
    close_frame,
    frame,
    handshake_request,
)


def ws_connect(handle: Any) -> RawWebSocket:
    return RawWebSocket(handle.host, handle.port, tls=handle.tls)


# -- the opening handshake -----------------------------------------------------


@pytest.mark.parametrize(("skip", "extra", "method", "status"), [
    (("Sec-WebSocket-Key",), [], "GET", 400),
    (("Sec-WebSocket-Version",), [], "GET", 400),
    (("Sec-WebSocket-Version",), [("Sec-WebSocket-Version", "8")], "GET", 426),
    (("Connection",), [], "GET", 400),
    (("Sec-WebSocket-Key",), [("Sec-WebSocket-Key", "c2hvcnQ=")], "GET", 400),  # 5 bytes
    (("Sec-WebSocket-Key",), [("Sec-WebSocket-Key", "not base64!!")], "GET", 400),
    ((), [], "POST", 400),
    ((), [("Content-Length", "3")], "GET", 400),
])
def test_invalid_handshake_gets_plain_http_answer(serve, skip, extra, method, status):
    app = Recorder()
    handle = serve(app)
    request, _ = handshake_request("/", extra=extra, skip=skip, method=method)
    with handle.connect() as c:
        c.send(request + (b"abc" if ("Content-Length", "3") in extra else b""))
        response = c.read_response()
        assert response.status == status
        assert response.header("connection") == "close"
        if status == 426 or "Sec-WebSocket-Version" in skip:
            assert response.header("sec-websocket-version") == "13"
        assert c.is_closed()
    assert app.scopes == []  # the app never saw it


def test_upgrade_token_matching_is_case_insensitive_and_in_lists(serve):
    handle = serve(echo)
    request, _ = handshake_request("/", skip=("Upgrade", "Connection"), extra=[
        ("Upgrade", "h2c, WebSocket"), ("Connection", "keep-alive, UPGRADE")])
    with ws_connect(handle) as c:
        c.send(request)
        assert c.read_response(head_request=True).status == 101


def test_other_upgrade_tokens_stay_http(serve):
    handle = serve(echo)
    with handle.connect() as c:
        r = c.request("GET", "/h", headers=[("Upgrade", "websocketx, h2c"),
                                            ("Connection", "Upgrade")])
        assert r.status == 200 and r.body == b"plain http: /h"


def test_upgrade_after_keep_alive_request_on_the_same_connection(serve):
    handle = serve(echo)
    with ws_connect(handle) as c:
        assert c.request("GET", "/first").body == b"plain http: /first"
        c.handshake("/second")
        c.send(frame(OP_TEXT, b"after http"))
        f = c.read_frame()
        assert (f.opcode, f.payload) == (OP_TEXT, b"after http")


def test_frames_sent_with_the_handshake_are_not_lost(serve):
    handle = serve(echo)
    with ws_connect(handle) as c:
        c.handshake(trailing=frame(OP_TEXT, b"early") + frame(OP_BINARY, b"bird"))
        assert c.read_frame().payload == b"early"
        assert c.read_frame().payload == b"bird"


def test_handshake_sent_byte_by_byte(serve):
    handle = serve(echo)
    request, _ = handshake_request("/")
    with ws_connect(handle) as c:
        c.send_slowly(request)
        assert c.read_response(head_request=True).status == 101
        c.send_slowly(frame(OP_TEXT, b"slow"))
        assert c.read_frame().payload == b"slow"


def test_detached_http_protocol_leaves_the_connection_list(serve):
    handle = serve(echo)
    with ws_connect(handle) as c:
        c.handshake()
        wait_for(lambda: handle.state.connections == 0)
        assert len(handle.state.websocket.connections) == 1
        c.send(close_frame(1000))
        assert c.read_frame().close_code == 1000
        assert c.wait_closed()
    wait_for(lambda: not handle.state.websocket.connections)


# -- frames --------------------------------------------------------------------


def test_fragmented_message_with_ping_between_fragments(serve):
    handle = serve(echo)
    with ws_connect(handle) as c:
        c.handshake()
        c.send(frame(OP_TEXT, "héllo ".encode()[:2], fin=False))  # split inside "é"
        c.send(frame(OP_PING, b"mid"))
        pong = c.read_frame()
        assert (pong.opcode, pong.payload) == (OP_PONG, b"mid")
        c.send(frame(OP_CONT, "héllo ".encode()[2:], fin=False))
        c.send(frame(OP_CONT, b"world", fin=True))
        f = c.read_frame()
        assert (f.opcode, f.payload.decode()) == (OP_TEXT, "héllo world")
        c.send(frame(OP_BINARY, b"\x00" * 70000, fin=False) + frame(OP_CONT, b"\x01"))
        f = c.read_frame()
        assert f.opcode == OP_BINARY and f.payload == b"\x00" * 70000 + b"\x01"


def test_invalid_utf8_closes_with_1007(serve):
    app = Recorder()
    handle = serve(app)
    with ws_connect(handle) as c:
        c.handshake()
        c.send(frame(OP_TEXT, b"ok \xff\xfe"))
        assert c.read_until_close().close_code == 1007
        assert c.wait_closed()
    assert app.done.wait(IO_TIMEOUT)
    assert app.messages[-1]["type"] == "websocket.disconnect"
    assert app.messages[-1]["code"] == 1007


@pytest.mark.parametrize("bad", [
    frame(OP_TEXT, b"unmasked", mask=False),
    frame(OP_CONT, b"nothing to continue"),
    frame(OP_PING, b"fragmented control", fin=False),
    frame(0x3, b"reserved opcode"),
    frame(OP_TEXT, b"rsv bit", rsv=0b010),
    frame(OP_PING, b"x" * 126),
    frame(OP_CLOSE, b"\x03"),  # close payload of one byte
])
def test_protocol_errors_close_with_1002(serve, bad):
    handle = serve(echo)
    with ws_connect(handle) as c:
        c.handshake()
        c.send(bad)
        assert c.read_until_close().close_code == 1002
        assert c.wait_closed()


def test_oversize_fragmented_message_closes_with_1009(serve):
    handle = serve(echo, ws_max_size=100)
    with ws_connect(handle) as c:
        c.handshake()
        c.send(frame(OP_BINARY, b"x" * 60, fin=False))
        c.send(frame(OP_CONT, b"x" * 60, fin=True))
        assert c.read_until_close().close_code == 1009
        assert c.wait_closed()


def test_oversize_declared_frame_is_refused_before_it_arrives(serve):
    handle = serve(echo, ws_max_size=1000)
    with ws_connect(handle) as c:
        c.handshake()
        # a header announcing 1 GiB, then a little of it: no need to wait for the rest
        head = struct.pack("!BBQ", 0x82, 0x80 | 127, 1 << 30) + b"\x00\x00\x00\x00"
        c.send(head + b"y" * 2000)
        assert c.read_until_close().close_code == 1009


def test_close_handshake_from_the_client(serve):
    app = Recorder()
    handle = serve(app)
    with ws_connect(handle) as c:
        c.handshake()
        c.send(close_frame(4321, "räson".encode()))
        reply = c.read_frame()
        assert reply.close_code == 4321
        assert c.wait_closed()  # the server closes TCP after its reply
    assert app.done.wait(IO_TIMEOUT)
    assert app.messages[-1] == {"type": "websocket.disconnect", "code": 4321, "reason": "räson"}


def test_empty_close_frame_reports_1005(serve):
    app = Recorder()
    handle = serve(app)
    with ws_connect(handle) as c:
        c.handshake()
        c.send(frame(OP_CLOSE, b""))
        assert c.read_frame().opcode == OP_CLOSE
    assert app.done.wait(IO_TIMEOUT)
    assert app.messages[-1]["code"] == 1005


def test_client_vanishing_gives_the_app_a_disconnect(serve):
    app = Recorder()
    handle = serve(app)
    c = ws_connect(handle)
    c.handshake()
    c.send(frame(OP_TEXT, b"then gone"))
    wait_for(lambda: len(app.messages) >= 2)
    c.close()  # no close frame
    assert app.done.wait(IO_TIMEOUT)
    assert app.messages[-1] == {"type": "websocket.disconnect", "code": 1006, "reason": ""}
    wait_for(lambda: not handle.state.websocket.connections)


def test_unanswered_pings_close_with_1011(serve):
    handle = serve(echo, ws_ping_interval=0.05, ws_ping_timeout=0.3)
    with ws_connect(handle) as c:
        c.handshake()
        first = c.read_frame()
        assert first.opcode == OP_PING  # we do not answer it
        assert c.read_until_close().close_code == 1011
        assert c.wait_closed()


# -- flow control --------------------------------------------------------------


def test_slow_reader_makes_send_wait_instead_of_buffering(serve):
    """A client that reads nothing: the app's send() waits; the server's buffer stays bounded."""
    total = 48
    message = b"m" * (1 << 20)
    progress = {"sent": 0, "max_buffered": 0}
    finished = threading.Event()

    async def app(scope, receive, send):
        await receive()
        await send({"type": "websocket.accept"})
        protocol = next(iter(handle.state.websocket.connections))
        for _ in range(total):
            await send({"type": "websocket.send", "bytes": message})
            progress["sent"] += 1
            progress["max_buffered"] = max(progress["max_buffered"],
                                           protocol.transport.get_write_buffer_size())
        finished.set()
        await receive()

    handle = serve(app)
    with ws_connect(handle) as c:
        c.handshake()
        # Wait until the app stops making progress: the kernel's socket
        # buffers are full and send() is waiting on the transport.
        last, stable_since = -1, time.monotonic()
        while time.monotonic() - stable_since < 1.0:
            if progress["sent"] != last:
                last, stable_since = progress["sent"], time.monotonic()
            time.sleep(0.05)
        assert not finished.is_set() and progress["sent"] < total
        # everything arrives once we read
        for _ in range(total):
            f = c.read_frame()
            assert f.opcode == OP_BINARY and len(f.payload) == len(message)
        assert finished.wait(IO_TIMEOUT)
    # send() never left more than one message above the transport's high-water mark
    assert progress["max_buffered"] <= len(message) + 1024 * 1024


def test_slow_app_pauses_reading(serve):
    """An app that does not receive(): the server stops reading instead of queueing all."""
    release = threading.Event()
    received: list[int] = []
    count, size = 10_000, 2000  # 20 MB: more than the kernel's socket buffers hold

    async def app(scope, receive, send):
        await receive()
        await send({"type": "websocket.accept"})
        while not release.is_set():
            await asyncio.sleep(0.01)
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                return
            received.append(len(message["bytes"]))

    handle = serve(app, ws_max_queue=4)
    data = frame(OP_BINARY, b"q" * size) * count
    with ws_connect(handle) as c:
        c.handshake()
        c.sock.setblocking(False)
        sent, stalled_since = 0, None
        while sent < len(data):
            try:
                sent += c.sock.send(data[sent:sent + 65536])
                stalled_since = None
            except (BlockingIOError, ssl.SSLWantWriteError):  # a full buffer, TCP or TLS
                stalled_since = stalled_since or time.monotonic()
                if time.monotonic() - stalled_since > 1.0:
                    break  # the server stopped reading
                time.sleep(0.01)
        assert sent < len(data)
        protocol = next(iter(handle.state.websocket.connections))
        wait_for(lambda: protocol.reading_paused)
        # at most the messages of the read that crossed the limit are queued
        assert len(protocol.queue) <= 4 + 256 * 1024 // size + 1
        release.set()
        c.sock.setblocking(True)
        c.sock.sendall(data[sent:])
        wait_for(lambda: len(received) == count, timeout=60)
        assert set(received) == {size}
        wait_for(lambda: not protocol.reading_paused)
