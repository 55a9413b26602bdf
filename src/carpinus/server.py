"""Server: listen, serve, tick the timeouts, and shut down gracefully on a signal."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import random
import signal
import socket
import sys
import threading
import time
from collections.abc import Generator
from types import FrameType
from typing import Any

from carpinus.config import Config
from carpinus.lifespan import Lifespan
from carpinus.sockets import bind_sockets, close_sockets, log_listening

logger = logging.getLogger("carpinus.error")

STARTUP_FAILURE = 3
TICK_INTERVAL = 0.1  # seconds
HANDLED_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Server:
    """One server on one event loop.  `run()` blocks; `serve()` is the coroutine."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.should_exit = False
        self.force_exit = False
        self.started = False
        self.exit_code = 0
        self.servers: list[asyncio.base_events.Server] = []
        self.bound_sockets: list[socket.socket] = []  # the sockets this server bound itself
        self.state: Any = None  # carpinus._core.ServerState once started
        self.lifespan: Lifespan | None = None
        # --metrics-bind: publish(state) every tick and at the end, close()
        self.metrics: Any = None
        self._captured_signals: list[int] = []
        # --max-requests: this server stops gracefully after this many
        # requests; the jitter staggers workers so they do not all recycle
        # at once.  Under a supervisor a replacement takes over; alone, the
        # process exits 0 (as uvicorn does; docs/deployment.md).
        self.max_requests: int | None = None
        if config.max_requests is not None:
            self.max_requests = config.max_requests + random.randint(
                0, config.max_requests_jitter
            )

    # -- entry points -------------------------------------------------------

    def run(self, sockets: list[socket.socket] | None = None) -> int:
        """Serve until told to stop; returns the process exit code."""
        if self.config.malloc_tuning:
            tune_allocator()
        factory = self.config.loop_factory()
        if sys.version_info >= (3, 11):
            with asyncio.Runner(loop_factory=factory) as runner:
                runner.run(self.serve(sockets=sockets))
        else:  # pragma: no cover - 3.10
            loop = factory()
            try:
                asyncio.set_event_loop(loop)
                loop.run_until_complete(self.serve(sockets=sockets))
            finally:
                loop.close()
        return self.exit_code

    async def serve(self, sockets: list[socket.socket] | None = None) -> None:
        with self.capture_signals():
            await self._serve(sockets)

    async def _serve(self, sockets: list[socket.socket] | None) -> None:
        config = self.config
        config.load()
        if config.is_demo:
            logger.info("No app given: serving the bundled demo app %s", config.app)
        logger.info("Started server process [%d]", os.getpid())
        await self.startup(sockets)
        if self.should_exit:
            return
        await self.main_loop()
        await self.shutdown()
        logger.info("Finished server process [%d]", os.getpid())

    # -- start --------------------------------------------------------------

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        from carpinus.protocols.http.core import make_server_state

        config = self.config
        assert config.loaded_app is not None
        loop = asyncio.get_running_loop()
        lifespan_state: dict[str, Any] = {}
        if config.lifespan != "off":
            self.lifespan = Lifespan(config.loaded_app, config.lifespan)
            await self.lifespan.startup()
            if self.lifespan.should_exit:
                self.should_exit = True
                self.exit_code = STARTUP_FAILURE
                return
            lifespan_state = self.lifespan.state

        self.state = make_server_state(config, loop, config.loaded_app, lifespan_state)
        try:
            if config.metrics_bind is not None:
                self.metrics = self.open_metrics()
            await self._listen(loop, sockets)
        except OSError as exc:
            logger.error("%s", exc)
            for server in self.servers:
                server.close()
            self._release_sockets()
            self.close_metrics()
            self.should_exit = True
            self.exit_code = 1
            if self.lifespan is not None:
                await self.lifespan.shutdown()
            return
        if config.gc_freeze:
            # Everything alive now (modules, the app, its startup state) lives
            # as long as the process: move it out of the collector's sight so
            # that full collections during serving scan only request garbage.
            # This halves p99 latency under load (docs/architecture.md).
            gc.collect()
            gc.freeze()
        self.started = True

    async def _listen(
        self, loop: asyncio.AbstractEventLoop, sockets: list[socket.socket] | None
    ) -> None:
        config = self.config
        if not sockets:
            # bound here: closed (a Unix socket file removed) at shutdown
            sockets = self.bound_sockets = bind_sockets(config)
        for sock in sockets:
            server = await loop.create_server(
                self.state, sock=sock, backlog=config.backlog, ssl=config.ssl
            )
            self.servers.append(server)
        for sock in sockets:
            self._log_listening(sock)

    def open_metrics(self) -> Any:
        """--metrics-bind in a single server process: the scrape endpoint is
        ours (carpinus.metrics; a supervised worker publishes instead)."""
        from carpinus.metrics.exporter import InProcessMetrics

        assert self.config.metrics_bind is not None
        return InProcessMetrics(self.config.metrics_bind, self.state, asyncio.get_running_loop())

    def close_metrics(self) -> None:
        if self.metrics is not None:
            self.metrics.publish(self.state)  # the final numbers
            self.metrics.close()
            self.metrics = None

    def _log_listening(self, sock: socket.socket) -> None:
        log_listening(self.config, sock)

    def _release_sockets(self) -> None:
        if self.bound_sockets:
            close_sockets(self.config, self.bound_sockets)
            self.bound_sockets = []

    @property
    def port(self) -> int:
        """The TCP port actually bound (useful with port=0)."""
        port: int = self.servers[0].sockets[0].getsockname()[1]
        return port

    # -- run ----------------------------------------------------------------

    async def main_loop(self) -> None:
        # Timeouts are enforced by this tick (no timer per connection), so they
        # are precise to about TICK_INTERVAL; should_exit is noticed as fast.
        while not self.should_exit:
            await asyncio.sleep(TICK_INTERVAL)
            self.state.tick()
            self.on_tick()

    def on_tick(self) -> None:
        """Called by the main loop every TICK_INTERVAL; subclasses add their own checks."""
        if self.metrics is not None:
            self.metrics.publish(self.state)
        if (
            self.max_requests is not None
            and self.state.stats()["requests_total"] >= self.max_requests
        ):
            logger.info(
                "Maximum request limit of %d reached; stopping process [%d] gracefully.",
                self.max_requests,
                os.getpid(),
            )
            self.should_exit = True

    # -- stop ---------------------------------------------------------------

    async def shutdown(self) -> None:
        logger.info("Shutting down")
        for server in self.servers:
            server.close()
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
        while busy() and not self.force_exit:
            if deadline is not None and time.monotonic() >= deadline:
                logger.warning(
                    "Graceful shutdown timed out after %gs; closing %d connection(s).",
                    timeout,
                    state.connections + (len(websockets.connections) if websockets else 0),
                )
                break
            await asyncio.sleep(0.05)
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
        self._release_sockets()
        self.close_metrics()

        if self.lifespan is not None:
            if self.force_exit:
                await self.lifespan.cancel()
            else:
                await self.lifespan.shutdown()
            if self.lifespan.should_exit and self.exit_code == 0:
                self.exit_code = 1

    # -- signals ------------------------------------------------------------

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        """SIGINT/SIGTERM stop the server gracefully; a second one forces it."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        loop = asyncio.get_running_loop()
        installed = []
        for sig in HANDLED_SIGNALS:
            try:
                loop.add_signal_handler(sig, self.handle_exit, sig, None)
                installed.append(sig)
            except (NotImplementedError, RuntimeError):  # pragma: no cover
                signal.signal(sig, self.handle_exit)
        try:
            yield
        finally:
            for sig in installed:
                loop.remove_signal_handler(sig)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self.should_exit and sig == signal.SIGINT:
            self.force_exit = True
        else:
            self.should_exit = True


# glibc keeps up to this much freed memory at the top of the heap instead of
# giving it back after every burst, and serves allocations below the mmap
# threshold from the heap (docs/architecture.md, "Memory allocator").
MALLOC_TRIM_THRESHOLD = 64 * 1024 * 1024
MALLOC_MMAP_THRESHOLD = 4 * 1024 * 1024


def tune_allocator() -> bool:
    """Apply the thresholds above unless the environment already sets glibc's."""
    if any(name.startswith("MALLOC_") for name in os.environ) or "malloc" in os.environ.get(
        "GLIBC_TUNABLES", ""
    ):
        return False
    from carpinus import _core

    return _core.tune_allocator(MALLOC_TRIM_THRESHOLD, MALLOC_MMAP_THRESHOLD)
