"""Raw-ASGI WebSocket apps the WebSocket tests share (their clients: ws_clients.py)."""

from __future__ import annotations

import json
import threading
from typing import Any

from tests.support import apps


async def echo(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Accepts, then echoes every message; 'scope' answers with the scope as JSON."""
    if scope["type"] == "http":
        await apps.send_text(send, b"plain http: " + scope["path"].encode())
        return
    assert (await receive())["type"] == "websocket.connect"
    await send({"type": "websocket.accept"})
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            return
        if message.get("text") == "scope":
            safe = {k: v for k, v in scope.items() if k not in ("headers", "state")}
            safe["raw_path"] = scope["raw_path"].decode()
            safe["query_string"] = scope["query_string"].decode()
            safe["header_names"] = [name.decode() for name, _ in scope["headers"]]
            await send({"type": "websocket.send", "text": json.dumps(safe)})
        elif message.get("text") is not None:
            await send({"type": "websocket.send", "text": message["text"]})
        else:
            await send({"type": "websocket.send", "bytes": message["bytes"]})


class Recorder:
    """An app that records what it receives and does what the test scripted."""

    def __init__(self, on_connect: list[dict[str, Any]] | None = None,
                 after_first: list[dict[str, Any]] | None = None) -> None:
        self.on_connect = on_connect if on_connect is not None else [{"type": "websocket.accept"}]
        self.after_first = after_first or []
        self.messages: list[dict[str, Any]] = []
        self.errors: list[BaseException] = []
        self.scopes: list[dict[str, Any]] = []
        self.done = threading.Event()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        self.scopes.append(scope)
        try:
            self.messages.append(await receive())
            for message in self.on_connect:
                await send(message)
            while True:
                message = await receive()
                self.messages.append(message)
                if message["type"] == "websocket.disconnect":
                    return
                for reply in self.after_first:
                    await send(reply)
                self.after_first = []
        except BaseException as exc:
            self.errors.append(exc)
            raise
        finally:
            self.done.set()
