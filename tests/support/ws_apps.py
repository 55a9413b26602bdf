"""Raw-ASGI WebSocket apps and helpers the WebSocket tests share."""

from __future__ import annotations

import json
import selectors
import socket
import ssl
import threading
import time
from typing import Any, cast

from websockets.sync.client import ClientConnection, connect

from tests.support import apps
from tests.support.clients import IO_TIMEOUT


def ws_url(handle: Any, path: str = "/") -> str:
    return f"{'wss' if handle.tls else 'ws'}://{handle.host}:{handle.port}{path}"


def connect_ws(handle: Any, path: str = "/", **options: Any) -> ClientConnection:
    """The `websockets` client connected to `handle`, with the suite's open timeout.

    Over TLS the client gets a SerializedTLSSocket, already through its
    handshake (trusting the TLS leg's CA), and a ws:// URL so that it does
    not wrap the socket again; the server still sees a TLS connection."""
    options.setdefault("open_timeout", IO_TIMEOUT)
    client: ClientConnection
    if handle.tls is None:
        client = connect(ws_url(handle, path), **options)
        return client
    sock = socket.create_connection((handle.host, handle.port), timeout=options["open_timeout"])
    try:
        tls_sock = handle.tls.wrap_socket(sock, server_hostname=handle.host)
    except BaseException:
        sock.close()
        raise
    # duck-typed: SerializedTLSSocket has what websockets uses of a socket
    serialized = cast(socket.socket, SerializedTLSSocket(tls_sock))
    client = connect(f"ws://{handle.host}:{handle.port}{path}", sock=serialized, **options)
    return client


class SerializedTLSSocket:
    """An SSLSocket that two threads may use at once, for websockets' sync client.

    That client reads in a background thread while the caller writes.  One
    OpenSSL session must not be entered by two threads at once, and a bare
    SSLSocket releases the GIL inside SSL_read/SSL_write: when the server's
    TLS 1.3 session tickets arrived while the upgrade request was being
    written, the request was sometimes lost and the handshake timed out (on
    both event loops; python-socketio #1568 describes the same race).  Here
    every call into the session holds one lock, and waiting for the network
    happens outside it (the socket itself is non-blocking).  Only what
    websockets uses is implemented.
    """

    def __init__(self, sock: ssl.SSLSocket) -> None:
        sock.setblocking(False)
        self._sock = sock
        self._lock = threading.Lock()
        self._timeout: float | None = None
        self.family = sock.family

    def _call(self, method: Any, *args: Any, blocked: int = selectors.EVENT_READ) -> Any:
        """method(*args) under the lock, retried until the socket lets it finish;
        `blocked` is what to wait for when the socket itself would block (after
        shutdown() the TLS layer is gone)."""
        deadline = None if self._timeout is None else time.monotonic() + self._timeout
        while True:
            with self._lock:
                try:
                    return method(*args)
                except ssl.SSLWantReadError:
                    event = selectors.EVENT_READ
                except ssl.SSLWantWriteError:
                    event = selectors.EVENT_WRITE
                except BlockingIOError:
                    event = blocked
            with selectors.DefaultSelector() as selector:
                selector.register(self._sock, event)
                remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
                if not selector.select(remaining):
                    raise TimeoutError("timed out")

    def recv(self, size: int) -> bytes:
        data: bytes = self._call(self._sock.recv, size)
        return data

    def sendall(self, data: bytes) -> None:
        with memoryview(data) as view:
            sent = 0
            while sent < len(view):
                sent += self._call(self._sock.send, view[sent:], blocked=selectors.EVENT_WRITE)

    def settimeout(self, timeout: float | None) -> None:
        self._timeout = timeout

    def shutdown(self, how: int) -> None:
        with self._lock:
            self._sock.shutdown(how)

    def close(self) -> None:
        self._sock.close()

    def fileno(self) -> int:
        return self._sock.fileno()

    def setsockopt(self, *args: Any) -> None:
        self._sock.setsockopt(*args)

    def getsockname(self) -> Any:
        return self._sock.getsockname()

    def getpeername(self) -> Any:
        return self._sock.getpeername()


def wait_for(predicate: Any, timeout: float = IO_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.01)


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
