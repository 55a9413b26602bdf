"""WebSocket clients: the `websockets` library's, connected the suite's way
(connect_ws, also over the TLS leg's TLS), and a raw-socket one (RawWebSocket)
for tests that need to send exactly the bytes they mean."""

from __future__ import annotations

import base64
import hashlib
import os
import selectors
import socket
import ssl
import struct
import threading
import time
from dataclasses import dataclass
from typing import Any, cast

from websockets.sync.client import ClientConnection, connect

from tests.support.clients import IO_TIMEOUT, RawClient, Response

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0, 1, 2, 8, 9, 10


# -- the `websockets` library's client ---------------------------------------


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



# -- a raw-socket client ----------------------------------------------------


def handshake_request(path: str = "/", key: bytes | None = None,
                      extra: list[tuple[str, str]] | None = None,
                      skip: tuple[str, ...] = (), method: str = "GET") -> tuple[bytes, bytes]:
    """The upgrade request's bytes and its key; `skip` leaves out headers by name."""
    key = key if key is not None else base64.b64encode(os.urandom(16))
    headers = [("Host", "test"), ("Upgrade", "websocket"), ("Connection", "Upgrade"),
               ("Sec-WebSocket-Key", key.decode()), ("Sec-WebSocket-Version", "13")]
    headers = [(k, v) for k, v in headers if k.lower() not in {s.lower() for s in skip}]
    headers += extra or []
    head = f"{method} {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers)
    return head.encode() + b"\r\n", key


def frame(opcode: int, payload: bytes, fin: bool = True, mask: bool = True,
          rsv: int = 0) -> bytes:
    """One client frame (masked unless told otherwise)."""
    first = (0x80 if fin else 0) | rsv << 4 | opcode
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", first, (0x80 if mask else 0) | n)
    elif n < 1 << 16:
        head = struct.pack("!BBH", first, (0x80 if mask else 0) | 126, n)
    else:
        head = struct.pack("!BBQ", first, (0x80 if mask else 0) | 127, n)
    if not mask:
        return head + payload
    key = os.urandom(4)
    stream = (key * (n // 4 + 1))[:n]
    masked = (int.from_bytes(payload, "big") ^ int.from_bytes(stream, "big")).to_bytes(n, "big")
    return head + key + masked


def close_frame(code: int, reason: bytes = b"") -> bytes:
    return frame(OP_CLOSE, struct.pack("!H", code) + reason)


@dataclass
class Frame:
    fin: bool
    opcode: int
    payload: bytes

    @property
    def close_code(self) -> int | None:
        if self.opcode != OP_CLOSE:
            return None
        return struct.unpack("!H", self.payload[:2])[0] if len(self.payload) >= 2 else 1005


class RawWebSocket(RawClient):
    """RawClient that performs the opening handshake and reads server frames."""

    def handshake(self, path: str = "/", extra: list[tuple[str, str]] | None = None,
                  trailing: bytes = b"") -> Response:
        request, key = handshake_request(path, extra=extra)
        self.send(request + trailing)
        response = self.read_response(head_request=True)
        assert response.status == 101, (response.status, response.body)
        expected = base64.b64encode(hashlib.sha1(key + GUID).digest()).decode()
        assert response.header("sec-websocket-accept") == expected
        return response

    def read_frame(self) -> Frame:
        first, second = self._read_exact(2)
        assert not second & 0x80, "server frames are never masked"
        n = second & 0x7F
        if n == 126:
            n = struct.unpack("!H", self._read_exact(2))[0]
        elif n == 127:
            n = struct.unpack("!Q", self._read_exact(8))[0]
        return Frame(bool(first & 0x80), first & 0x0F, self._read_exact(n))

    def read_until_close(self) -> Frame:
        """Frames up to the server's close frame (data frames before it are dropped)."""
        while True:
            f = self.read_frame()
            if f.opcode == OP_CLOSE:
                return f

    def wait_closed(self, timeout: float = IO_TIMEOUT) -> bool:
        """True once the server has closed TCP (after any frames still in flight)."""
        self.sock.settimeout(timeout)
        try:
            while True:
                data = self.sock.recv(65536)
                if not data:
                    return True
        except (ConnectionResetError, BrokenPipeError):
            return True
        except TimeoutError:
            return False
        finally:
            self.sock.settimeout(self.timeout)
