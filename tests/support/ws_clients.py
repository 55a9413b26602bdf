"""A raw-socket WebSocket client for tests that need to send exactly the bytes they mean."""

from __future__ import annotations

import base64
import hashlib
import os
import struct
from dataclasses import dataclass

from tests.support.clients import IO_TIMEOUT, RawClient, Response

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0, 1, 2, 8, 9, 10


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
