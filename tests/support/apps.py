"""Small raw-ASGI apps the tests serve."""

from __future__ import annotations

import asyncio
import json
from typing import Any


async def send_text(send: Any, body: bytes, status: int = 200,
                    headers: list[tuple[bytes, bytes]] | None = None) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": headers if headers is not None else [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": body})


async def read_body(receive: Any) -> tuple[bytes, list[dict[str, Any]]]:
    """The whole request body and the messages it came in."""
    parts = []
    messages = []
    while True:
        message = await receive()
        messages.append(message)
        assert message["type"] == "http.request", message
        assert isinstance(message["body"], bytes)
        parts.append(message["body"])
        if not message.get("more_body", False):
            return b"".join(parts), messages


async def hello(scope: Any, receive: Any, send: Any) -> None:
    await send_text(send, b"Hello, World!")


def _jsonable_scope(scope: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in scope.items():
        if key == "headers":
            out[key] = [[n.decode("latin-1"), v.decode("latin-1")] for n, v in value]
        elif isinstance(value, bytes):
            out[key] = value.decode("latin-1")
        elif key in ("client", "server"):
            out[key] = list(value) if value is not None else None
        elif key == "state":
            out[key] = {k: repr(v) for k, v in value.items()}
        else:
            out[key] = value
    out["_types"] = {k: type(v).__name__ for k, v in scope.items()}
    if scope.get("headers"):
        out["_header_types"] = sorted({f"{type(n).__name__},{type(v).__name__}"
                                       for n, v in scope["headers"]})
    return out


async def echo_scope(scope: Any, receive: Any, send: Any) -> None:
    await send_text(send, json.dumps(_jsonable_scope(scope)).encode(),
                    headers=[(b"content-type", b"application/json")])


async def echo_body(scope: Any, receive: Any, send: Any) -> None:
    """Answers with the body it received and, in a header, how many messages it took."""
    body, messages = await read_body(receive)
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"x-messages", str(len(messages)).encode())]})
    await send({"type": "http.response.body", "body": body})


async def sleep_app(scope: Any, receive: Any, send: Any) -> None:
    ms = int(scope["query_string"].decode().partition("=")[2] or 0)
    await asyncio.sleep(ms / 1000)
    await send_text(send, b"ok")
