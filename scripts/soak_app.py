"""The app that scripts/soak.py serves: a little of everything a server does.

    GET  /               Hello, World!
    POST /upload         reads the whole body, answers its length
    GET  /stream?n=K     K chunks of 4 KiB (chunked response), one per send()
    GET  /sleep?ms=N     answers after N ms
    GET  /boom           raises (the server answers 500)
"""

from __future__ import annotations

import asyncio
from typing import Any

TEXT = [(b"content-type", b"text/plain")]
CHUNK = b"s" * 4096


def _query_int(scope: dict[str, Any], name: bytes, default: int) -> int:
    for part in scope["query_string"].split(b"&"):
        key, _, value = part.partition(b"=")
        if key == name and value.isdigit():
            return int(value)
    return default


async def _text(send: Any, body: bytes, status: int = 200) -> None:
    await send({"type": "http.response.start", "status": status, "headers": TEXT})
    await send({"type": "http.response.body", "body": body})


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    path = scope["path"]
    if path == "/upload":
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            size += len(message["body"])
            if not message.get("more_body", False):
                break
        await _text(send, b"%d" % size)
    elif path == "/stream":
        await send({"type": "http.response.start", "status": 200, "headers": TEXT})
        for _ in range(min(_query_int(scope, b"n", 16), 1024)):
            await send({"type": "http.response.body", "body": CHUNK, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
    elif path == "/sleep":
        await asyncio.sleep(min(_query_int(scope, b"ms", 10), 10_000) / 1000)
        await _text(send, b"ok")
    elif path == "/boom":
        raise RuntimeError("soak: an app error on purpose")
    else:
        await _text(send, b"Hello, World!")
