"""What one event loop serves: a ServerState and the asyncio servers that accept into it.

A process serves from one loop (the default) or from one loop per thread
(--threads N, carpinus.threads); either way each loop has a LoopServing of
its own, so nothing of a connection is ever touched by two loops.  The
process-wide parts (lifespan, signals, metrics, --max-requests) stay in
carpinus.server.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import sys
import time
from collections.abc import Callable, Coroutine
from typing import Any

from carpinus.config import Config

logger = logging.getLogger("carpinus.error")

TICK_INTERVAL = 0.1  # seconds
DRAIN_POLL = 0.05  # seconds between looks at what is still busy during a drain


def run_in_new_loop(config: Config, main: Coroutine[Any, Any, None]) -> None:
    """Run `main` to the end in a new event loop of the kind --loop asks for."""
    factory = config.loop_factory()
    if sys.version_info >= (3, 11):
        with asyncio.Runner(loop_factory=factory) as runner:
            runner.run(main)
    else:  # pragma: no cover - 3.10
        loop = factory()
        try:
            asyncio.set_event_loop(loop)
            loop.run_until_complete(main)
        finally:
            loop.close()


class LoopServing:
    """The serving half of a server on the running loop: listen, tick, drain."""

    def __init__(self, config: Config, lifespan_state: dict[str, Any]) -> None:
        self.config = config
        # Every request's scope["state"] is a shallow copy of this dict (the C
        # core copies it per request), so the objects in it are shared by
        # every loop that serves with it.
        self.lifespan_state = lifespan_state
        self.state: Any = None  # carpinus._core.ServerState, once made
        self.loop: asyncio.AbstractEventLoop | None = None  # the loop it belongs to
        self.servers: list[asyncio.base_events.Server] = []
        # --metrics-bind: the state's numbers as of its last tick, taken on
        # its loop (other threads read this dict, never the state itself)
        self.snapshot: dict[str, float] | None = None

    def make_state(self) -> None:
        """The ServerState of the running loop (before listen(): metrics may read it)."""
        from carpinus.protocols.http.core import make_server_state

        config = self.config
        assert config.loaded_app is not None
        self.loop = asyncio.get_running_loop()
        self.state = make_server_state(config, self.loop, config.loaded_app,
                                       self.lifespan_state)
        self.take_snapshot()

    def take_snapshot(self) -> None:
        """(On the state's loop) what metrics read from other threads."""
        if self.config.metrics_bind is not None:
            from carpinus.metrics.snapshot import take

            self.snapshot = take(self.state)

    def tick(self) -> None:
        """(Every TICK_INTERVAL, on the state's loop) timeouts, then the snapshot."""
        self.state.tick()
        self.take_snapshot()

    async def listen(self, sockets: list[socket.socket]) -> None:
        """Accept on `sockets` from now on; the loop closes them when close() is called.
        Raises OSError (the servers made so far are closed again)."""
        loop = asyncio.get_running_loop()
        try:
            for sock in sockets:
                server = await loop.create_server(
                    self.state, sock=sock, backlog=self.config.backlog, ssl=self.config.ssl
                )
                self.servers.append(server)
        except OSError:
            self.close()
            raise

    def close(self) -> None:
        """Stop accepting (the listening sockets given to listen() are closed)."""
        for server in self.servers:
            server.close()

    async def drain(self, forced: Callable[[], bool]) -> None:
        """Stop accepting, let busy connections finish within
        --timeout-graceful-shutdown (or until `forced()` is true), then close
        what is left."""
        self.close()
        state = self.state
        state.shutdown()  # idle connections close now, busy ones after their response
        websockets = state.websocket  # the WebSocketHandler, or None
        if websockets is not None:
            websockets.shutdown()  # close code 1012, as uvicorn does

        def busy() -> bool:
            # not a connection the server closed that has nothing left to
            # send: over TLS it stays until the client answers our
            # close_notify (or 30 s), which an idle client may never do
            return bool(state.busy_connections() or state.active_requests
                        or (websockets is not None and websockets.busy))

        timeout = self.config.timeout_graceful_shutdown
        if timeout == float("inf"):
            timeout = None  # wait as long as it takes (uvicorn's default, not ours)
        deadline = None if timeout is None else time.monotonic() + timeout
        if busy():
            logger.info("Waiting for connections to close%s. (CTRL+C to force quit)",
                        "" if timeout is None else f", at most {timeout:g}s")
        while busy() and not forced():
            if deadline is not None and time.monotonic() >= deadline:
                logger.warning(
                    "Graceful shutdown timed out after %gs; closing %d connection(s).",
                    timeout,
                    state.connections + (len(websockets.connections) if websockets else 0),
                )
                break
            await asyncio.sleep(DRAIN_POLL)
            state.tick()

        if busy():
            state.close_all()
            tasks = set(state.tasks)
            if websockets is not None:
                websockets.close_all()
                tasks |= websockets.tasks
            for task in tasks:
                task.cancel()
            # let connection_lost callbacks and cancellations run
            for _ in range(20):
                if not busy():
                    break
                await asyncio.sleep(0.01)
        if state.connections:
            # closed, nothing left to send, but a TLS transport still waits
            # for the client's close_notify: do not
            state.close_all()
            for _ in range(20):
                if not state.connections:
                    break
                await asyncio.sleep(0.01)
        for server in self.servers:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 1.0)
