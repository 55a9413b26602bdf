"""permessage-deflate (RFC 7692) over real sockets with the `websockets` client, which
negotiates it itself: every frame goes through the C core's codec both ways."""

from __future__ import annotations

import os
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory

from tests.support.clients import IO_TIMEOUT
from tests.support.ws_apps import Recorder, echo
from tests.support.ws_clients import connect_ws

# repetitive enough to compress well, varied enough to use the window
TEXT = "".join(f'{{"id": {i}, "name": "item {i}", "tags": ["a", "b"]}}, ' for i in range(4000))


def deflate_client(**params: Any) -> dict[str, Any]:
    return {"compression": None, "extensions": [ClientPerMessageDeflateFactory(**params)]}


def echo_round(ws: Any) -> None:
    for message in (TEXT, "héllo", "", os.urandom(50_000), TEXT[:1000].encode(), TEXT):
        ws.send(message)
        assert ws.recv(timeout=IO_TIMEOUT) == message


@pytest.mark.parametrize(("params", "answer"), [
    ({"client_max_window_bits": None}, "permessage-deflate"),
    ({"client_max_window_bits": True},
     "permessage-deflate; client_max_window_bits=15"),
    ({"client_no_context_takeover": True, "server_no_context_takeover": True},
     "permessage-deflate; server_no_context_takeover; client_no_context_takeover; "
     "client_max_window_bits=15"),
    ({"client_max_window_bits": 9, "server_max_window_bits": 10},
     "permessage-deflate; server_max_window_bits=10; client_max_window_bits=9"),
    ({"server_max_window_bits": 8},
     "permessage-deflate; server_max_window_bits=8; client_max_window_bits=15"),
])
def test_compressed_echo(serve, params, answer):
    """(websockets offers client_max_window_bits unless told not to; a server window
    of 8 is agreed and our messages then go out uncompressed.)"""
    handle = serve(echo)
    with connect_ws(handle, **deflate_client(**params)) as ws:
        assert ws.response.headers["sec-websocket-extensions"] == answer
        assert [type(e).__name__ for e in ws.protocol.extensions] == ["PerMessageDeflate"]
        echo_round(ws)


def test_default_client_offer_is_accepted(serve):
    """websockets offers permessage-deflate with client_max_window_bits by default."""
    handle = serve(echo)
    with connect_ws(handle) as ws:
        assert "permessage-deflate" in ws.response.headers["sec-websocket-extensions"]
        echo_round(ws)


def test_without_compression(serve):
    handle = serve(echo)
    with connect_ws(handle, compression=None) as ws:
        assert "sec-websocket-extensions" not in ws.response.headers
        echo_round(ws)


def test_compression_switched_off_by_option(serve):
    handle = serve(echo, ws_per_message_deflate=False)
    with connect_ws(handle) as ws:
        assert "sec-websocket-extensions" not in ws.response.headers
        echo_round(ws)


@pytest.mark.parametrize("compression", ["deflate", None])
def test_fragmented_messages_are_joined(serve, compression):
    handle = serve(echo)
    with connect_ws(handle, compression=compression) as ws:
        ws.send(["héllo ", "wörld", "", "!" * 70_000])
        assert ws.recv(timeout=IO_TIMEOUT) == "héllo wörld" + "!" * 70_000
        ws.send([b"\x00" * 10, b"\xff" * 200_000])
        assert ws.recv(timeout=IO_TIMEOUT) == b"\x00" * 10 + b"\xff" * 200_000
        ws.ping(b"between")  # control frames between messages still answered
        ws.send("after")
        assert ws.recv(timeout=IO_TIMEOUT) == "after"


def test_size_limit_counts_after_inflation(serve):
    """100 kB of zeros is a few hundred bytes on the wire: still 1009."""
    handle = serve(echo, ws_max_size=100_000)
    with connect_ws(handle) as ws:
        ws.send(b"\x00" * 100_000)
        assert ws.recv(timeout=IO_TIMEOUT) == b"\x00" * 100_000
        ws.send(b"\x00" * 100_001)
        with pytest.raises(ConnectionClosed) as info:
            ws.recv(timeout=IO_TIMEOUT)
    assert info.value.rcvd is not None and info.value.rcvd.code == 1009


@pytest.mark.parametrize("compression", ["deflate", None])
def test_invalid_utf8_closes_with_1007(serve, compression):
    app = Recorder()
    handle = serve(app)
    with connect_ws(handle, compression=compression) as ws:
        ws.send(b"caf\xc3", text=True)  # ends inside a code point
        with pytest.raises(ConnectionClosed) as info:
            ws.recv(timeout=IO_TIMEOUT)
    assert info.value.rcvd is not None and info.value.rcvd.code == 1007
    assert app.done.wait(IO_TIMEOUT)
    assert app.messages[-1]["type"] == "websocket.disconnect"
    assert app.messages[-1]["code"] == 1007
