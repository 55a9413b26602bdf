"""The WebSocket opening handshake (RFC 6455 section 4) and the HTTP answers around it.

Pure functions over the `http` scope the C core built for the upgrade request:
check it, pick the extensions, and serialize the `101 Switching Protocols`
answer or a plain HTTP one (a rejected handshake, `close` before `accept`,
or the app's own `websocket.http.response`).  No I/O here.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from carpinus._core import ws_negotiate_deflate

if TYPE_CHECKING:
    from carpinus._core import WsDeflateParams

# RFC 6455 section 1.3: appended to the client's key before hashing.
ACCEPT_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
VERSION = b"13"
TOKEN = re.compile(rb"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
BAD_VALUE = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")


class HandshakeError(Exception):
    """The upgrade request is not a valid WebSocket handshake."""

    def __init__(self, status: int, reason: str, headers: list[tuple[bytes, bytes]] | None = None):
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.headers = headers or []


@dataclass
class HandshakeRequest:
    """What a valid upgrade request asked for."""

    key: bytes
    subprotocols: list[str] = field(default_factory=list)
    # the Sec-WebSocket-Extensions values, joined with ", " (b"" when none)
    extensions: bytes = b""


def _tokens(values: Iterable[bytes]) -> list[str]:
    """The comma-separated items of every value, stripped, empty ones dropped."""
    out = []
    for value in values:
        for item in value.split(b","):
            item = item.strip()
            if item:
                out.append(item.decode("latin-1"))
    return out


def check_request(scope: dict[str, Any]) -> HandshakeRequest:
    """Validate the upgrade request; raise HandshakeError with the status to answer."""
    if scope.get("method") != "GET":
        raise HandshakeError(400, "a WebSocket handshake must be a GET request")
    if scope.get("http_version") != "1.1":
        raise HandshakeError(400, "a WebSocket handshake needs HTTP/1.1")
    fields: dict[bytes, list[bytes]] = {}
    for name, value in scope["headers"]:
        fields.setdefault(name, []).append(value)
    if b"transfer-encoding" in fields or any(
        v.strip() not in (b"", b"0") for v in fields.get(b"content-length", [])
    ):
        raise HandshakeError(400, "a WebSocket handshake has no request body")
    if "upgrade" not in (t.lower() for t in _tokens(fields.get(b"connection", []))):
        raise HandshakeError(400, "missing 'Connection: upgrade'")
    versions = fields.get(b"sec-websocket-version", [])
    if len(versions) != 1 or versions[0].strip() != VERSION:
        # RFC 6455 4.2.2: name the version we speak; 426 when the client
        # asked for another one, 400 when it named none (or several).
        status = 426 if len(versions) == 1 and versions[0].strip() else 400
        raise HandshakeError(status, "only WebSocket version 13 is supported",
                             [(b"sec-websocket-version", VERSION)])
    keys = fields.get(b"sec-websocket-key", [])
    key = keys[0].strip() if len(keys) == 1 else b""
    try:
        valid_key = len(base64.b64decode(key, validate=True)) == 16
    except (binascii.Error, ValueError):
        valid_key = False
    if not valid_key:
        raise HandshakeError(400, "Sec-WebSocket-Key must be 16 bytes in base64, sent once")
    return HandshakeRequest(
        key=key,
        subprotocols=_tokens(fields.get(b"sec-websocket-protocol", [])),
        extensions=b", ".join(fields.get(b"sec-websocket-extensions", [])),
    )


def accept_token(key: bytes) -> bytes:
    return base64.b64encode(hashlib.sha1(key + ACCEPT_GUID).digest())


def negotiate_deflate(extensions: bytes) -> tuple[bytes, WsDeflateParams] | None:
    """The first permessage-deflate offer we can take (RFC 7692, in the C core:
    cp_ws_negotiate_deflate): (response value, parameters for WsCodec), or None.

    An offer with an unknown, repeated or ill-valued parameter is declined and
    the next one tried; client_max_window_bits is answered when offered, and a
    server_max_window_bits or server_no_context_takeover asked for is granted."""
    if not extensions:
        return None
    return ws_negotiate_deflate(extensions)


def encode_headers(headers: Iterable[Any], what: str) -> bytes:
    """`name: value\\r\\n` lines from the app's headers; RuntimeError when one is unsafe."""
    out = []
    for item in headers:
        try:
            name, value = item
        except (TypeError, ValueError):
            raise RuntimeError(f"{what}: each header must be a [name, value] pair, "
                               f"got {item!r}") from None
        if not isinstance(name, bytes) or not isinstance(value, bytes):
            raise RuntimeError(f"{what}: header names and values must be bytes, "
                               f"got {item!r}")
        if not TOKEN.match(name) or BAD_VALUE.search(value):
            raise RuntimeError(f"{what}: invalid header {item!r}")
        out.append(name + b": " + value + b"\r\n")
    return b"".join(out)


def accept_response(key: bytes, subprotocol: str | None, extensions: bytes | None,
                    extra: bytes, standard: bytes) -> bytes:
    head = [
        b"HTTP/1.1 101 Switching Protocols\r\n",
        b"upgrade: websocket\r\nconnection: Upgrade\r\n",
        b"sec-websocket-accept: " + accept_token(key) + b"\r\n",
    ]
    if subprotocol is not None:
        head.append(b"sec-websocket-protocol: " + subprotocol.encode("latin-1") + b"\r\n")
    if extensions is not None:
        head.append(b"sec-websocket-extensions: " + extensions + b"\r\n")
    head += [standard, extra, b"\r\n"]
    return b"".join(head)


def status_line(status: int) -> bytes:
    from http import HTTPStatus

    try:
        reason = HTTPStatus(status).phrase
    except ValueError:
        reason = ""
    return f"HTTP/1.1 {status} {reason}\r\n".encode("latin-1")


def plain_response(status: int, body: bytes, standard: bytes,
                   headers: list[tuple[bytes, bytes]] | None = None) -> bytes:
    """A complete answer with a Content-Length, then `connection: close`."""
    extra = b"".join(n + b": " + v + b"\r\n" for n, v in headers or [])
    return (status_line(status) + b"content-type: text/plain; charset=utf-8\r\n"
            + b"content-length: " + str(len(body)).encode() + b"\r\n"
            + b"connection: close\r\n" + standard + extra + b"\r\n" + body)
