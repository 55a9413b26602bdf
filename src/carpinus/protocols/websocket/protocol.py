"""WebSocket connections: the ASGI `websocket` protocol over the C frame codec.

The C HTTP/1.1 protocol parses every request head.  When one asks for
`Upgrade: websocket` and WebSockets are on, it builds the request's scope,
lets go of the connection and calls the server's WebSocketHandler with
(transport, scope, bytes after the head).  From there on the connection is
a WebSocketProtocol, in Python, with the C core's frame codec (WsCodec,
_core/wsconn.c over _core/wsframe.c) for every frame both ways, compressed
(permessage-deflate) or not:

    handshake checked (handshake.py) ── bad ──► 400 / 426, close
         │ ok: transport.set_protocol(WebSocketProtocol), the app's task starts
         ▼
    CONNECTING ── app: websocket.accept ──► OPEN ── close frames ──► CLOSED
         │  app: websocket.close ────────► 403, close          (either side)
         │  app: websocket.http.response ► the app's answer, close
         │  app returns / raises ────────► 500, close

Flow control, both ways, so that no client can make the server buffer
without bound: incoming messages wait in a queue of at most --ws-max-queue
(reading pauses past it, and while the transport's write buffer is full);
a message being assembled may grow to --ws-max-size after inflation (the
codec fails it with 1009 past it); send() waits while the transport has
paused writing.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from typing import TYPE_CHECKING, Any

from carpinus._core import (
    WS_BINARY,
    WS_CLOSE,
    WS_ERROR,
    WS_PING,
    WS_PONG,
    WS_TEXT,
    ClientDisconnected,
    WsCodec,
    ws_close_frame,
)
from carpinus.logging import ERROR_LOGGER
from carpinus.protocols.websocket import handshake as hs

if TYPE_CHECKING:  # the handler imports this module (on the first upgrade), not the reverse
    from carpinus.protocols.websocket.handler import WebSocketHandler

logger = logging.getLogger(ERROR_LOGGER)

# Connection phases.
CONNECTING = 0  # handshake valid, waiting for the app's accept / close / denial
OPEN = 1  # 101 sent: frames flow
CLOSING = 2  # we sent a close frame; waiting for the peer's
CLOSED = 3  # close handshake done, failed, or the transport is gone
REJECTED = 4  # answered with plain HTTP (403, 500, 503, or the app's denial)

# Bytes that may arrive before the app accepts (a client should send none);
# past this, reading pauses until the handshake is done.
PRE_ACCEPT_BUFFER = 64 * 1024
# With permessage-deflate, compressed input is handed to the decoder in
# slices of this size, so that one read cannot inflate to more than about
# 1000 times as much before --ws-max-size is checked.
INFLATE_SLICE = 16 * 1024


def app_close_code_ok(code: object) -> bool:
    """Close codes an app may send (RFC 6455 7.4): 1000-1003, 1007-1014 and
    3000-4999; 1004-1006 and 1015 are reserved, 1016-2999 are for the protocol."""
    return isinstance(code, int) and (1000 <= code <= 1003 or 1007 <= code <= 1014
                                      or 3000 <= code <= 4999)


class WebSocketProtocol(asyncio.Protocol):
    """One WebSocket connection and the app's receive()/send() for it."""

    def __init__(self, handler: WebSocketHandler, transport: asyncio.Transport,
                 scope: dict[str, Any]) -> None:
        self.handler = handler
        self.config = handler.config
        self.loop = handler.loop
        self.transport = transport
        self.scope = scope
        self.phase = CONNECTING
        self.request: hs.HandshakeRequest | None = None
        self.codec: WsCodec | None = None
        self.deflate = False
        self.pending = bytearray()  # bytes received before the handshake completed
        # incoming messages for the app
        self.queue: collections.deque[dict[str, Any]] = collections.deque()
        self.waiter: asyncio.Future[None] | None = None
        self.disconnect: dict[str, Any] | None = None  # what receive() says once gone
        # flow control
        self.reading_paused = False
        self.writing_paused = self._transport_write_paused()
        self.drain_waiters: list[asyncio.Future[None]] = []
        # the app's side
        self.close_sent = False  # the app sent websocket.close
        self.denial_started = False
        self.denial_chunked = False
        self.task: asyncio.Task[None] | None = None
        # timers
        self.ping_timer: asyncio.TimerHandle | None = None
        self.pong_timer: asyncio.TimerHandle | None = None
        self.close_timer: asyncio.TimerHandle | None = None
        self.lost = False

    # -- start --------------------------------------------------------------

    def _transport_write_paused(self) -> bool:
        """Whether the transport already asked the HTTP protocol to pause writing."""
        try:
            high = self.transport.get_write_buffer_limits()[1]
            return self.transport.get_write_buffer_size() > high
        except (AttributeError, NotImplementedError):
            return False

    def start(self, rest: bytes) -> None:
        handler = self.handler
        handler.connection_opened(self)
        scope = self.scope
        try:
            self.request = hs.check_request(scope)
        except hs.HandshakeError as exc:
            handler.log_access(scope, exc.status)
            self._reject(exc.status, exc.reason.encode() + b"\n", exc.headers)
            return
        if handler.refuses_new_websockets():
            handler.log_access(scope, 503)
            self._reject(503, b"Service Unavailable\n")
            return
        del scope["method"]
        scope["type"] = "websocket"
        scope["scheme"] = "wss" if scope["scheme"] == "https" else "ws"
        scope["subprotocols"] = self.request.subprotocols
        # the HTTP response extensions the core offers (pathsend, early hints,
        # trailers) are not a WebSocket's; tls stays
        extensions = scope["extensions"]
        for name in [name for name in extensions if name.startswith("http.")]:
            del extensions[name]
        extensions["websocket.http.response"] = {}
        if rest:
            self.pending += rest
        self.queue.append({"type": "websocket.connect"})
        self.task = handler.start_app(self._run_app())

    async def _run_app(self) -> None:
        try:
            await self.handler.app(self.scope, self.receive, self.send)
        except asyncio.CancelledError:
            self.abort()
            raise
        except BaseException as exc:
            if isinstance(exc, ClientDisconnected) or (self.lost and isinstance(exc, OSError)):
                logger.debug("WebSocket client went away: %s", self.scope.get("path"))
            else:
                logger.error("Exception in ASGI application\n", exc_info=exc)
            if self.phase == CONNECTING:
                self.handler.log_access(self.scope, 500)
                self._reject(500, b"Internal Server Error\n")
            elif self.phase == OPEN:
                self._close(1011, "")
            elif self.phase == REJECTED:
                self._close_transport()  # a denial response cut short
            if not isinstance(exc, Exception):
                raise
        else:
            if self.phase == CONNECTING:
                logger.error("ASGI callable returned without accepting or closing the "
                             "WebSocket (%s)", self.scope.get("path"))
                self.handler.log_access(self.scope, 500)
                self._reject(500, b"Internal Server Error\n")
            elif self.phase == OPEN:
                self._close(1000, "")
            elif self.phase == REJECTED:
                self._close_transport()  # a denial response the app never finished

    # -- asyncio protocol ---------------------------------------------------

    def data_received(self, data: bytes) -> None:
        if self.phase == OPEN or self.phase == CLOSING:
            self._feed(data)
        elif self.phase == CONNECTING:
            self.pending += data
            self._update_reading()

    def eof_received(self) -> bool | None:
        return None  # the peer half-closed: let the transport close

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self.handler.connection_closed(self)
        for timer in (self.ping_timer, self.pong_timer, self.close_timer):
            if timer is not None:
                timer.cancel()
        if self.phase in (CONNECTING, OPEN, CLOSING):
            self.phase = CLOSED
        self._disconnected(1006, "")
        self._wake_writers()

    def pause_writing(self) -> None:
        self.writing_paused = True
        self._update_reading()

    def resume_writing(self) -> None:
        self.writing_paused = False
        self._wake_writers()
        self._update_reading()

    # -- incoming frames ----------------------------------------------------

    def _feed(self, data: bytes | bytearray) -> None:
        if not self.deflate or len(data) <= INFLATE_SLICE:
            self._feed_slice(data)
            return
        view = memoryview(data)
        for start in range(0, len(view), INFLATE_SLICE):
            if self.phase != OPEN and self.phase != CLOSING:
                return
            self._feed_slice(view[start:start + INFLATE_SLICE])

    def _feed_slice(self, data: bytes | bytearray | memoryview) -> None:
        codec = self.codec
        assert codec is not None
        for kind, payload, code in codec.feed(data):
            if kind == WS_TEXT:
                self._on_message({"type": "websocket.receive", "text": payload})
            elif kind == WS_BINARY:
                self._on_message({"type": "websocket.receive", "bytes": payload})
            elif kind == WS_PING:
                if self.phase == OPEN:
                    self._write(codec.encode(WS_PONG, payload))
            elif kind == WS_PONG:
                if self.pong_timer is not None:
                    self.pong_timer.cancel()
                    self.pong_timer = None
            elif kind == WS_CLOSE:
                self._on_close(code, payload)
            elif kind == WS_ERROR:
                self._fail(code, payload)
            if self.phase != OPEN and self.phase != CLOSING:
                return

    def _on_message(self, message: dict[str, Any]) -> None:
        if self.phase != OPEN:
            return  # after our close frame: data is discarded (RFC 6455 1.4)
        self.queue.append(message)
        waiter = self.waiter
        if waiter is not None:
            self.waiter = None
            if not waiter.done():
                waiter.set_result(None)
        if len(self.queue) >= self.config.ws_max_queue:
            self._update_reading()

    def _on_close(self, code: int, reason: str) -> None:
        if self.phase == OPEN:
            # The peer closes: echo its code (RFC 6455 5.5.1), then close TCP
            # (the server closes first, 7.1.1).
            self._write(ws_close_frame(code if code != 1005 else 0))
        self.phase = CLOSED
        self._disconnected(code, reason)
        self._close_transport()

    def _fail(self, code: int, reason: str) -> None:
        """Fail the connection (RFC 6455 7.1.7): our close frame, then drop TCP."""
        if self.phase == OPEN:
            self._write(ws_close_frame(code, reason))
        self.phase = CLOSED
        self._disconnected(code, reason)
        self._close_transport()

    # -- the app's receive() -------------------------------------------------

    async def receive(self) -> dict[str, Any]:
        while not self.queue:
            if self.disconnect is not None:
                return dict(self.disconnect)
            waiter = self.loop.create_future()
            self.waiter = waiter
            try:
                await waiter
            finally:
                if self.waiter is waiter:
                    self.waiter = None
        message = self.queue.popleft()
        if self.reading_paused:
            self._update_reading()
        return message

    def _disconnected(self, code: int, reason: str) -> None:
        """The app's next receive() (after what is queued) answers websocket.disconnect."""
        if self.disconnect is None:
            self.disconnect = {"type": "websocket.disconnect", "code": code, "reason": reason}
            waiter = self.waiter
            if waiter is not None:
                self.waiter = None
                if not waiter.done():
                    waiter.set_result(None)

    # -- the app's send() ----------------------------------------------------

    async def send(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        phase = self.phase
        if phase == OPEN and not self.close_sent:
            if kind == "websocket.send":
                self._send_data(message)
            elif kind == "websocket.close":
                self._app_close(message)
            else:
                raise RuntimeError(f"Expected ASGI message 'websocket.send' or "
                                   f"'websocket.close', but got {kind!r}.")
            if self.writing_paused:
                await self._drain()
            return
        if self.close_sent:
            raise RuntimeError(f"Unexpected ASGI message {kind!r} after 'websocket.close'.")
        if phase == CONNECTING:
            if kind == "websocket.accept":
                self._accept(message)
            elif kind == "websocket.close":
                self.close_sent = True
                self.handler.log_access(self.scope, 403)
                self._reject(403, b"Forbidden\n")
            elif kind == "websocket.http.response.start":
                self._denial_start(message)
            else:
                raise RuntimeError(f"Expected ASGI message 'websocket.accept', "
                                   f"'websocket.close' or 'websocket.http.response.start', "
                                   f"but got {kind!r}.")
            return
        if phase == REJECTED and self.denial_started and not self.lost:
            if kind != "websocket.http.response.body":
                raise RuntimeError(f"Expected ASGI message 'websocket.http.response.body', "
                                   f"but got {kind!r}.")
            self._denial_body(message)
            if self.writing_paused:
                await self._drain()
            return
        raise ClientDisconnected(f"the WebSocket is closed; cannot send {kind!r}")

    def _send_data(self, message: dict[str, Any]) -> None:
        data = message.get("bytes")
        text = message.get("text")
        codec = self.codec
        assert codec is not None
        if data is not None and text is None:
            if not isinstance(data, (bytes, bytearray, memoryview)):
                raise RuntimeError(f"'websocket.send' bytes must be bytes, "
                                   f"got {type(data).__name__}.")
            self._write(codec.encode(WS_BINARY, data))
        elif text is not None and data is None:
            if not isinstance(text, str):
                raise RuntimeError(f"'websocket.send' text must be a str, "
                                   f"got {type(text).__name__}.")
            self._write(codec.encode(WS_TEXT, text))
        else:
            raise RuntimeError("'websocket.send' needs exactly one of 'bytes' and 'text'.")

    def _app_close(self, message: dict[str, Any]) -> None:
        code = message.get("code", 1000)
        reason = message.get("reason") or ""
        if not app_close_code_ok(code):
            raise RuntimeError(f"'websocket.close' code must be 1000-1003, 1007-1014 or "
                               f"3000-4999, got {code!r}.")
        if not isinstance(reason, str):
            raise RuntimeError(f"'websocket.close' reason must be a str, got {reason!r}.")
        self.close_sent = True
        self._close(code, reason)

    def _close(self, code: int, reason: str) -> None:
        """Start the close handshake; the peer's close frame ends it (or the timeout)."""
        if self.phase != OPEN:
            return
        self._write(ws_close_frame(code, reason))
        self.phase = CLOSING
        self._stop_pings()
        timeout = self.config.ws_ping_timeout
        if timeout is not None:
            self.close_timer = self.loop.call_later(timeout, self.abort)

    def _accept(self, message: dict[str, Any]) -> None:
        request = self.request
        assert request is not None
        subprotocol = message.get("subprotocol")
        if subprotocol is not None and subprotocol not in request.subprotocols:
            raise RuntimeError(f"'websocket.accept' subprotocol {subprotocol!r} is not one the "
                               f"client offered: {request.subprotocols!r}.")
        extra = hs.encode_headers(message.get("headers") or [], "'websocket.accept'")
        extension_header = None
        deflate_params = None
        if self.config.ws_per_message_deflate:
            agreed = hs.negotiate_deflate(request.extensions)
            if agreed is not None:
                extension_header, deflate_params = agreed
                self.deflate = True
        self.codec = WsCodec(self.config.ws_max_size, deflate_params)
        self._write(hs.accept_response(request.key, subprotocol, extension_header, extra,
                                       self.handler.standard_headers()))
        self.handler.log_access(self.scope, 101)
        self.phase = OPEN
        self._schedule_ping()
        if self.pending:
            pending, self.pending = bytes(self.pending), bytearray()
            self._feed(pending)
        self._update_reading()

    def _denial_start(self, message: dict[str, Any]) -> None:
        status = message.get("status")
        if not isinstance(status, int) or not 100 <= status <= 599 or status == 101:
            raise RuntimeError(f"'websocket.http.response.start' needs a status "
                               f"100-599 other than 101, got {status!r}.")
        headers = list(message.get("headers") or [])
        head = hs.encode_headers(headers, "'websocket.http.response.start'")
        names = {bytes(name).lower() for name, _ in headers}
        self.denial_chunked = b"content-length" not in names
        framing = b"transfer-encoding: chunked\r\n" if self.denial_chunked else b""
        self.phase = REJECTED
        self.denial_started = True
        self.handler.log_access(self.scope, status)
        self._write(hs.status_line(status) + head + framing + b"connection: close\r\n"
                    + self.handler.standard_headers() + b"\r\n")

    def _denial_body(self, message: dict[str, Any]) -> None:
        body = message.get("body", b"")
        more = message.get("more_body", False)
        if not isinstance(body, (bytes, bytearray, memoryview)):
            raise RuntimeError(f"'websocket.http.response.body' body must be bytes, "
                               f"got {type(body).__name__}.")
        if self.denial_chunked:
            out = (b"%x\r\n" % len(body) + bytes(body) + b"\r\n") if body else b""
            if not more:
                out += b"0\r\n\r\n"
        else:
            out = bytes(body)
        if out:
            self._write(out)
        if not more:
            self.denial_started = False
            self._disconnected(1000, "")
            self._close_transport()

    # -- keepalive ------------------------------------------------------------

    def _schedule_ping(self) -> None:
        interval = self.config.ws_ping_interval
        if interval is not None:
            self.ping_timer = self.loop.call_later(interval, self._ping)

    def _ping(self) -> None:
        self.ping_timer = None
        if self.phase != OPEN or self.codec is None:
            return
        self._write(self.codec.encode(WS_PING, b"carpinus"))
        timeout = self.config.ws_ping_timeout
        if timeout is not None and self.pong_timer is None:
            self.pong_timer = self.loop.call_later(timeout, self._pong_missing)
        self._schedule_ping()

    def _pong_missing(self) -> None:
        self.pong_timer = None
        logger.info("WebSocket ping not answered within %ss; closing %s",
                    self.config.ws_ping_timeout, self.scope.get("path"))
        self._fail(1011, "keepalive ping timeout")

    def _stop_pings(self) -> None:
        for timer in (self.ping_timer, self.pong_timer):
            if timer is not None:
                timer.cancel()
        self.ping_timer = self.pong_timer = None

    # -- shutdown -----------------------------------------------------------

    def shutdown(self) -> None:
        if self.phase == OPEN:
            self._close(1012, "")
            self._disconnected(1012, "")
        elif self.phase == CONNECTING:
            self.handler.log_access(self.scope, 503)
            self._reject(503, b"Service Unavailable\n")

    def abort(self) -> None:
        if not self.lost:
            self.phase = CLOSED if self.phase != REJECTED else REJECTED
            self._disconnected(1006, "")
            self.transport.abort()

    # -- writing, reading, closing -------------------------------------------

    def _write(self, data: bytes | bytearray) -> None:
        if not self.lost:
            self.transport.write(data)

    async def _drain(self) -> None:
        while self.writing_paused and not self.lost:
            waiter = self.loop.create_future()
            self.drain_waiters.append(waiter)
            await waiter
        if self.lost:
            raise ClientDisconnected("the WebSocket client went away")

    def _wake_writers(self) -> None:
        waiters, self.drain_waiters = self.drain_waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    def _update_reading(self) -> None:
        """Read while the app keeps up and the transport can take our answers."""
        if self.lost:
            return
        if self.phase == CONNECTING:
            pause = len(self.pending) > PRE_ACCEPT_BUFFER
        else:
            pause = len(self.queue) >= self.config.ws_max_queue or self.writing_paused
        if pause != self.reading_paused:
            self.reading_paused = pause
            if pause:
                self.transport.pause_reading()
            else:
                self.transport.resume_reading()

    def _reject(self, status: int, body: bytes,
                headers: list[tuple[bytes, bytes]] | None = None) -> None:
        """Answer the upgrade request with plain HTTP and close."""
        self.phase = REJECTED
        self._write(hs.plain_response(status, body, self.handler.standard_headers(), headers))
        self._disconnected(1006 if status != 503 else 1012, "")
        self._close_transport()

    def _close_transport(self) -> None:
        if not self.lost:
            self.transport.close()  # flushes what is buffered first
