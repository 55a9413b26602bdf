"""WebSocket over real sockets with the `websockets` client: the ASGI websocket protocol."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from typing import Any

import pytest
from fastapi import FastAPI, WebSocket, WebSocketDisconnect
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.support.clients import IO_TIMEOUT
from tests.support.processes import REPO
from tests.support.waiting import wait_for
from tests.support.ws_apps import Recorder, echo
from tests.support.ws_clients import connect_ws


def test_echo_text_and_binary(serve):
    handle = serve(echo)
    with connect_ws(handle, "/chat?room=1") as ws:
        ws.send("héllo")
        assert ws.recv(timeout=IO_TIMEOUT) == "héllo"
        ws.send(b"\x00\x01\xff")
        assert ws.recv(timeout=IO_TIMEOUT) == b"\x00\x01\xff"
        ws.send("")
        assert ws.recv(timeout=IO_TIMEOUT) == ""
        ws.send("scope")
        scope = json.loads(ws.recv(timeout=IO_TIMEOUT))
    assert scope["type"] == "websocket"
    assert scope["asgi"] == {"version": "3.0", "spec_version": "2.4"}
    assert scope["http_version"] == "1.1"
    assert scope["scheme"] == ("wss" if handle.tls else "ws")
    assert "method" not in scope
    assert scope["path"] == "/chat"
    assert scope["raw_path"] == "/chat"
    assert scope["query_string"] == "room=1"
    assert scope["root_path"] == ""
    assert scope["subprotocols"] == []
    tls = scope["extensions"].pop("tls", None)  # the ASGI tls extension, on wss only
    assert (tls is not None) == (handle.tls is not None)
    assert scope["extensions"] == {"websocket.http.response": {}}
    assert scope["server"] == ["127.0.0.1", handle.port]
    assert "sec-websocket-key" in scope["header_names"]
    assert handle.state.stats()["websocket_upgrades"] == 1


def test_proxy_headers_and_default_headers_apply_to_websockets(serve):
    """A trusted proxy's X-Forwarded-For/-Proto set the websocket scope's client and
    scheme (https -> wss), and --header lines go out with the 101 answer."""
    handle = serve(echo, forwarded_allow_ips="*", headers=[("x-deployment", "blue")])
    with connect_ws(handle, additional_headers={"X-Forwarded-For": "203.0.113.7",
                                                "X-Forwarded-Proto": "https"}) as ws:
        assert ws.response.headers["x-deployment"] == "blue"
        assert ws.response.headers["server"] == "carpinus"
        ws.send("scope")
        scope = json.loads(ws.recv(timeout=IO_TIMEOUT))
    assert scope["client"] == ["203.0.113.7", 0]
    assert scope["scheme"] == "wss"


def test_http_still_served_beside_websockets(serve):
    handle = serve(echo)
    assert handle.get("/x").text == "plain http: /x"
    with connect_ws(handle) as ws:
        ws.send("a")
        assert ws.recv(timeout=IO_TIMEOUT) == "a"
    assert handle.get("/y").text == "plain http: /y"


@pytest.mark.parametrize("compression", ["deflate", None])
def test_one_mebibyte_messages(serve, compression):
    handle = serve(echo)
    text = "".join(chr(0x41 + i % 26) for i in range(1 << 20))
    blob = os.urandom(1 << 20)
    with connect_ws(handle, compression=compression, max_size=None) as ws:
        offered = ws.response.headers.get("sec-websocket-extensions")
        assert (offered is not None and "permessage-deflate" in offered) == bool(compression)
        ws.send(text)
        assert ws.recv(timeout=IO_TIMEOUT) == text
        ws.send(blob)
        assert ws.recv(timeout=IO_TIMEOUT) == blob


def test_per_message_deflate_can_be_switched_off(serve):
    handle = serve(echo, ws_per_message_deflate=False)
    with connect_ws(handle, compression="deflate") as ws:
        assert "sec-websocket-extensions" not in ws.response.headers
        ws.send("x" * 1000)
        assert ws.recv(timeout=IO_TIMEOUT) == "x" * 1000


def test_ping_answered_with_pong(serve):
    handle = serve(echo)
    with connect_ws(handle) as ws:
        pong = ws.ping(b"are you there")
        assert pong.wait(IO_TIMEOUT)
        ws.send("still open")
        assert ws.recv(timeout=IO_TIMEOUT) == "still open"


def test_client_close_code_reaches_the_app(serve):
    app = Recorder()
    handle = serve(app)
    with connect_ws(handle) as ws:
        ws.send("hi")
        ws.close(4001, "bye now")
        assert ws.close_code == 4001  # the server echoed our code
    assert app.done.wait(IO_TIMEOUT)
    assert app.messages[0] == {"type": "websocket.connect"}
    assert app.messages[1] == {"type": "websocket.receive", "text": "hi"}
    assert app.messages[2] == {"type": "websocket.disconnect", "code": 4001, "reason": "bye now"}


def test_app_close_code_reaches_the_client(serve):
    app = Recorder(after_first=[{"type": "websocket.close", "code": 4002, "reason": "done"}])
    handle = serve(app)
    with connect_ws(handle) as ws:
        ws.send("please close")
        with pytest.raises(ConnectionClosed) as info:
            ws.recv(timeout=IO_TIMEOUT)
    assert info.value.rcvd is not None
    assert (info.value.rcvd.code, info.value.rcvd.reason) == (4002, "done")
    assert app.done.wait(IO_TIMEOUT)
    # after its close, the app hears the end of the close handshake
    assert app.messages[-1]["type"] == "websocket.disconnect"
    assert not app.errors


def test_app_returning_closes_with_1000(serve):
    async def app(scope, receive, send):
        await receive()
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.send", "text": "bye"})

    handle = serve(app)
    with connect_ws(handle) as ws:
        assert ws.recv(timeout=IO_TIMEOUT) == "bye"
        with pytest.raises(ConnectionClosed) as info:
            ws.recv(timeout=IO_TIMEOUT)
    assert info.value.rcvd is not None and info.value.rcvd.code == 1000


def test_app_exception_after_accept_closes_with_1011(serve, caplog):
    async def app(scope, receive, send):
        await receive()
        await send({"type": "websocket.accept"})
        raise ValueError("boom")

    handle = serve(app)
    with connect_ws(handle) as ws:
        with pytest.raises(ConnectionClosed) as info:
            ws.recv(timeout=IO_TIMEOUT)
    assert info.value.rcvd is not None and info.value.rcvd.code == 1011
    wait_for(lambda: "Exception in ASGI application" in caplog.text)


def test_close_before_accept_is_403(serve):
    app = Recorder(on_connect=[{"type": "websocket.close"}])
    handle = serve(app)
    with pytest.raises(InvalidStatus) as info:
        connect_ws(handle)
    assert info.value.response.status_code == 403
    assert app.done.wait(IO_TIMEOUT)
    assert app.messages[-1]["type"] == "websocket.disconnect"


def test_denial_response_extension(serve):
    app = Recorder(on_connect=[
        {"type": "websocket.http.response.start", "status": 401,
         "headers": [(b"content-type", b"text/plain"), (b"www-authenticate", b"Bearer")]},
        {"type": "websocket.http.response.body", "body": b"no ", "more_body": True},
        {"type": "websocket.http.response.body", "body": b"entry"},
    ])
    handle = serve(app)
    with pytest.raises(InvalidStatus) as info:
        connect_ws(handle)
    response = info.value.response
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.body == b"no entry"


def test_app_returning_without_handshake_is_500(serve, caplog):
    async def app(scope, receive, send):
        await receive()

    handle = serve(app)
    with pytest.raises(InvalidStatus) as info:
        connect_ws(handle)
    assert info.value.response.status_code == 500
    wait_for(lambda: "without accepting or closing" in caplog.text)


def test_subprotocol_negotiation(serve):
    app = Recorder(on_connect=[{"type": "websocket.accept", "subprotocol": "chat.v2",
                                "headers": [(b"x-extra", b"yes")]}])
    handle = serve(app)
    with connect_ws(handle, subprotocols=["chat.v1", "chat.v2"]) as ws:
        assert ws.subprotocol == "chat.v2"
        assert ws.response.headers["x-extra"] == "yes"
    assert app.scopes[0]["subprotocols"] == ["chat.v1", "chat.v2"]


def test_subprotocol_not_offered_is_an_app_error(serve):
    app = Recorder(on_connect=[{"type": "websocket.accept", "subprotocol": "nope"}])
    handle = serve(app)
    with pytest.raises(InvalidStatus) as info:
        connect_ws(handle, subprotocols=["chat"])
    assert info.value.response.status_code == 500
    assert app.done.wait(IO_TIMEOUT)
    assert isinstance(app.errors[0], RuntimeError)


def test_oversize_message_closes_with_1009(serve):
    handle = serve(echo, ws_max_size=1000)
    with connect_ws(handle) as ws:
        ws.send("x" * 1000)
        assert ws.recv(timeout=IO_TIMEOUT) == "x" * 1000
        ws.send("x" * 1001)
        with pytest.raises(ConnectionClosed) as info:
            ws.recv(timeout=IO_TIMEOUT)
    assert info.value.rcvd is not None and info.value.rcvd.code == 1009


def test_send_after_client_left_raises_client_disconnected(serve):
    outcome: list[BaseException | None] = []
    closed = threading.Event()

    async def app(scope, receive, send):
        await receive()
        await send({"type": "websocket.accept"})
        message = await receive()
        assert message["type"] == "websocket.disconnect"
        closed.set()
        try:
            await send({"type": "websocket.send", "text": "too late"})
            outcome.append(None)
        except OSError as exc:
            outcome.append(exc)

    handle = serve(app)
    with connect_ws(handle) as ws:
        ws.close(1000)
    assert closed.wait(IO_TIMEOUT)
    wait_for(lambda: outcome)
    assert type(outcome[0]).__name__ == "ClientDisconnected"


def test_graceful_shutdown_closes_with_1012(serve):
    handle = serve(echo)
    with connect_ws(handle) as ws:
        ws.send("a")
        assert ws.recv(timeout=IO_TIMEOUT) == "a"
        handle.server.should_exit = True
        with pytest.raises(ConnectionClosed) as info:
            ws.recv(timeout=IO_TIMEOUT)
    assert info.value.rcvd is not None and info.value.rcvd.code == 1012


def test_keepalive_pings_keep_a_live_client(serve):
    handle = serve(echo, ws_ping_interval=0.05, ws_ping_timeout=IO_TIMEOUT)
    with connect_ws(handle) as ws:
        time.sleep(0.3)  # several ping intervals; the client answers each
        ws.send("alive")
        assert ws.recv(timeout=IO_TIMEOUT) == "alive"


def test_ws_none_serves_upgrade_requests_as_http(serve):
    handle = serve(echo, ws="none")
    assert handle.state.websocket is None
    with pytest.raises(InvalidStatus) as info:
        connect_ws(handle, "/upgrade")
    assert info.value.response.status_code == 200
    assert info.value.response.body == b"plain http: /upgrade"


def test_starlette_websocket_endpoint(serve):
    async def endpoint(websocket: WebSocket) -> None:
        await websocket.accept(subprotocol="json")
        async for data in websocket.iter_json():
            await websocket.send_json({"echo": data, "path": websocket.url.path})

    app = Starlette(routes=[WebSocketRoute("/s", endpoint)])
    handle = serve(app)
    with connect_ws(handle, "/s", subprotocols=["json"]) as ws:
        assert ws.subprotocol == "json"
        ws.send(json.dumps({"n": 1}))
        assert json.loads(ws.recv(timeout=IO_TIMEOUT)) == {"echo": {"n": 1}, "path": "/s"}


def test_fastapi_websocket_endpoint(serve):
    # FastAPI resolves the endpoint's (postponed) annotations in this
    # module's globals: WebSocket is imported at the top for that.
    app = FastAPI()
    seen: list[int] = []

    @app.websocket("/items/{item_id}")
    async def items(websocket: WebSocket, item_id: int) -> None:
        if item_id == 0:
            await websocket.close(code=1008)
            return
        await websocket.accept()
        try:
            while True:
                text = await websocket.receive_text()
                await websocket.send_text(f"{item_id}:{text}")
        except WebSocketDisconnect as exc:
            seen.append(exc.code)

    handle = serve(app)
    with connect_ws(handle, "/items/7") as ws:
        ws.send("x")
        assert ws.recv(timeout=IO_TIMEOUT) == "7:x"
        ws.close(1001)
    wait_for(lambda: seen)
    assert seen == [1001]
    with pytest.raises(InvalidStatus) as info:
        connect_ws(handle, "/items/0")
    assert info.value.response.status_code == 403


def test_demo_app_echoes_on_ws(serve):
    from carpinus.demo import app

    handle = serve(app)
    with connect_ws(handle, "/ws") as ws:
        ws.send("ping")
        assert ws.recv(timeout=IO_TIMEOUT) == "ping"
        ws.send(b"bin")
        assert ws.recv(timeout=IO_TIMEOUT) == b"bin"


BLOCK_WSPROTO = """
import sys
sys.modules["wsproto"] = None  # import wsproto now fails, as if not installed
from tests.support.servers import run_server
from tests.support.ws_apps import echo
from tests.support.ws_clients import connect_ws
with run_server(echo, ws="auto") as handle:
    with connect_ws(handle, "/ws") as ws:
        ws.send("ping")
        print("ECHO", ws.recv(timeout=10))
"""


def test_websockets_need_no_wsproto():
    """The frame codec is the C core's: WebSockets work with wsproto not installed."""
    done = subprocess.run([sys.executable, "-c", BLOCK_WSPROTO], capture_output=True,
                          text=True, cwd=REPO, timeout=60, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "ECHO ping" in done.stdout


def test_denial_response_with_content_length(serve):
    app = Recorder(on_connect=[
        {"type": "websocket.http.response.start", "status": 404,
         "headers": [(b"content-length", b"9")]},
        {"type": "websocket.http.response.body", "body": b"not found"},
    ])
    handle = serve(app)
    with pytest.raises(InvalidStatus) as info:
        connect_ws(handle)
    assert info.value.response.status_code == 404
    assert info.value.response.body == b"not found"
    assert "transfer-encoding" not in info.value.response.headers


@pytest.mark.parametrize("bad", [
    {"type": "websocket.close", "code": 999},
    {"type": "websocket.close", "code": 1006},
    {"type": "websocket.send", "bytes": b"a", "text": "a"},
    {"type": "websocket.send"},
    {"type": "websocket.accept"},
])
def test_bad_messages_after_accept_are_app_errors(serve, bad):
    app = Recorder(after_first=[bad])
    handle = serve(app)
    with connect_ws(handle) as ws:
        ws.send("go")
        with pytest.raises(ConnectionClosed) as info:
            ws.recv(timeout=IO_TIMEOUT)
    assert info.value.rcvd is not None and info.value.rcvd.code == 1011
    assert app.done.wait(IO_TIMEOUT)
    assert isinstance(app.errors[0], RuntimeError)


def test_limit_concurrency_refuses_handshakes_with_503(serve):
    handle = serve(echo, limit_concurrency=1)
    with connect_ws(handle) as first:
        first.send("a")
        assert first.recv(timeout=IO_TIMEOUT) == "a"
        with pytest.raises(InvalidStatus) as info:
            connect_ws(handle)
        assert info.value.response.status_code == 503


def test_shutdown_refuses_a_handshake_the_app_has_not_answered(serve):
    waiting = threading.Event()
    outcome: list[dict[str, Any]] = []

    async def app(scope, receive, send):
        await receive()
        waiting.set()
        outcome.append(await receive())  # the shutdown ends the wait

    handle = serve(app)
    result: list[BaseException] = []

    def client() -> None:
        try:
            connect_ws(handle)
        except BaseException as exc:
            result.append(exc)

    thread = threading.Thread(target=client)
    thread.start()
    assert waiting.wait(IO_TIMEOUT)
    handle.server.should_exit = True
    thread.join(IO_TIMEOUT)
    assert isinstance(result[0], InvalidStatus)
    assert result[0].response.status_code == 503
    wait_for(lambda: outcome)
    assert outcome[0] == {"type": "websocket.disconnect", "code": 1012, "reason": ""}


def test_max_size_counts_decompressed_bytes(serve):
    """permessage-deflate: a message that is small on the wire but large inflated is refused."""
    handle = serve(echo, ws_max_size=10_000)
    with connect_ws(handle, compression="deflate", max_size=None) as ws:
        assert "permessage-deflate" in ws.response.headers["sec-websocket-extensions"]
        ws.send(b"\x00" * 9_000)
        assert ws.recv(timeout=IO_TIMEOUT) == b"\x00" * 9_000
        ws.send(b"\x00" * 5_000_000)  # about 5 KB compressed
        with pytest.raises(ConnectionClosed) as info:
            ws.recv(timeout=IO_TIMEOUT)
    assert info.value.rcvd is not None and info.value.rcvd.code == 1009
