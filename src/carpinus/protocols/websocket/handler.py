"""The server's WebSocket handler: takes over upgraded connections, knows every live one.

It is what the C core calls for a request asking for `Upgrade: websocket`
(ServerState(websocket=...)), and what the Server asks to shut WebSockets
down.  The per-connection protocol (protocols/websocket/protocol.py) is
loaded on the first upgrade, so a server that never sees a WebSocket pays nothing for them.
"""

from __future__ import annotations

import asyncio
import contextvars
import sys
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

from carpinus import _core
from carpinus.access_log import make_access_log, websocket_access_line
from carpinus.config import Config

if TYPE_CHECKING:
    from carpinus.protocols.websocket.protocol import WebSocketProtocol


class WebSocketHandler:
    """Takes over upgraded connections for one server; knows every live one.

    The C core calls it (ServerState(websocket=...)); the Server asks it to
    shut down (close code 1012, "service restart", as uvicorn does) and how
    many connections and app tasks are still busy.
    """

    def __init__(self, config: Config, loop: asyncio.AbstractEventLoop, app: Any,
                 base_context: contextvars.Context | None = None) -> None:
        self.config = config
        self.loop = loop
        self.app = app
        # each connection's app task runs in a copy of it (see protocols/http/core.py)
        self.base_context = base_context if base_context is not None \
            else contextvars.copy_context()
        self.connections: set[WebSocketProtocol] = set()
        self.tasks: set[asyncio.Task[None]] = set()
        self.shutting_down = False
        self.server_state: Any = None  # the ServerState, for limit_concurrency
        # the Server line (ours, or one given with --header) and the other
        # --header lines, serialized as the C core does for HTTP responses
        server_lines, other_lines = _core.default_headers(config.encoded_headers,
                                                          config.server_header)
        self.default_headers = (server_lines or b"") + (other_lines or b"")
        self.date_header = config.date_header
        self._log_access = make_access_log(config.access_log, config.access_log_formatter,
                                           websocket_access_line)
        self.protocol_class: type[WebSocketProtocol] | None = None

    def __call__(self, transport: asyncio.Transport, scope: dict[str, Any], rest: bytes) -> None:
        protocol_class = self.protocol_class
        if protocol_class is None:
            # the protocol is imported with the first WebSocket, not at start-up:
            # a server that never sees one keeps its process lean.
            from carpinus.protocols.websocket.protocol import WebSocketProtocol

            protocol_class = self.protocol_class = WebSocketProtocol
        protocol = protocol_class(self, transport, scope)
        transport.set_protocol(protocol)
        protocol.start(rest)

    # -- what a WebSocketProtocol tells and asks --------------------------------

    def connection_opened(self, protocol: WebSocketProtocol) -> None:
        self.connections.add(protocol)

    def connection_closed(self, protocol: WebSocketProtocol) -> None:
        self.connections.discard(protocol)

    def refuses_new_websockets(self) -> bool:
        """True while a new WebSocket gets 503: during shutdown, or when
        --limit-concurrency requests and WebSocket apps are running."""
        if self.shutting_down:
            return True
        limit = self.config.limit_concurrency
        if limit is None:
            return False
        http = self.server_state.active_requests if self.server_state is not None else 0
        return len(self.tasks) + http >= limit

    def start_app(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """A connection's app task, in its own copy of the base context (not in
        the context of the HTTP request that asked for the upgrade), counted
        until it ends."""
        context = self.base_context.copy()
        if sys.version_info >= (3, 11):
            task = self.loop.create_task(coro, context=context)
        else:  # pragma: no cover - 3.10
            task = context.run(self.loop.create_task, coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    def standard_headers(self) -> bytes:
        """`server`, `--header` and `date` lines for our HTTP answers, as configured."""
        from email.utils import formatdate  # here: email is a big import for start-up

        out = self.default_headers
        if self.date_header:
            out += b"date: " + formatdate(usegmt=True).encode() + b"\r\n"
        return out

    def log_access(self, scope: dict[str, Any], status: int) -> None:
        """The access line of a WebSocket (or of its refusal) with this status."""
        if self._log_access is not None:
            self._log_access(scope, status, 0, 0.0)

    # -- what the Server asks -----------------------------------------------------

    @property
    def busy(self) -> int:
        """Connections and app tasks still alive (the graceful shutdown waits for 0)."""
        return len(self.connections) + len(self.tasks)

    def shutdown(self) -> None:
        """Close every websocket with 1012; refuse handshakes still pending with 503."""
        self.shutting_down = True
        for protocol in list(self.connections):
            protocol.shutdown()

    def close_all(self) -> None:
        """Drop every connection now (the graceful shutdown ran out of time)."""
        for protocol in list(self.connections):
            protocol.abort()
