"""The bundled demo app: the reference's benchmark workloads, in raw ASGI.

    GET  /              Hello, World!
    GET  /sleep?ms=N    waits N milliseconds, then "ok"
    POST /upload        reads the whole body, answers its length
    GET  /headers       echoes the two request headers it looks up
                        (user-agent and accept)
    GET  /users/ID      "user ID", for any ID (a path per user, as REST APIs
                        have: the paths10k benchmark)
    WS   /ws            WebSocket echo: every text or binary message comes back
"""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import parse_qs

TEXT = [(b"content-type", b"text/plain; charset=utf-8")]
START_200 = {"type": "http.response.start", "status": 200, "headers": TEXT}
HELLO = {"type": "http.response.body", "body": b"Hello, World!"}
OK = {"type": "http.response.body", "body": b"ok"}
MAX_SLEEP_MS = 60_000


def _sleep_ms(query: bytes) -> int:
    """`ms` from the query string; the benchmark's exact "ms=N" skips parse_qs."""
    if query.startswith(b"ms=") and query[3:].isdigit():
        return int(query[3:])
    return int(parse_qs(query.decode("latin-1")).get("ms", ["0"])[0])


async def _respond(send: Any, status: int, body: bytes) -> None:
    await send({"type": "http.response.start", "status": status, "headers": TEXT})
    await send({"type": "http.response.body", "body": body})


async def _lifespan(receive: Any, send: Any) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def _websocket_echo(receive: Any, send: Any) -> None:
    while True:
        message = await receive()
        kind = message["type"]
        if kind == "websocket.receive":
            if message.get("text") is not None:
                await send({"type": "websocket.send", "text": message["text"]})
            else:
                await send({"type": "websocket.send", "bytes": message["bytes"]})
        elif kind == "websocket.connect":
            await send({"type": "websocket.accept"})
        else:  # websocket.disconnect
            return


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
        elif scope["type"] == "websocket":
            if scope["path"] == "/ws":
                await _websocket_echo(receive, send)
            else:
                await send({"type": "websocket.close", "code": 1000})
        return
    path = scope["path"]
    if path == "/":
        await send(START_200)
        await send(HELLO)
    elif path == "/sleep":
        try:
            ms = _sleep_ms(scope["query_string"])
        except ValueError:
            await _respond(send, 400, b"ms must be an integer")
            return
        await asyncio.sleep(min(max(ms, 0), MAX_SLEEP_MS) / 1000)
        await send(START_200)
        await send(OK)
    elif path == "/upload":
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            size += len(message["body"])
            more = message.get("more_body", False)
        await _respond(send, 200, str(size).encode())
    elif path == "/headers":
        wanted = {b"user-agent": b"-", b"accept": b"-"}
        for name, value in scope["headers"]:
            if name in wanted:
                wanted[name] = value
        await _respond(
            send, 200, b"user-agent: " + wanted[b"user-agent"] + b"\naccept: " + wanted[b"accept"]
        )
    elif path.startswith("/users/"):
        # one path per user: what a REST API's ids look like to a server
        # (the paths10k benchmark asks for 10,000 different ones)
        await _respond(send, 200, b"user " + path[7:].encode())
    else:
        await _respond(send, 404, b"Not Found")
