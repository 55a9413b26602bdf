"""Server: listen, serve, tick the timeouts, and shut down gracefully on a signal.

The Server is the process-wide part, always in the main thread's event loop:
the app, lifespan, signals, metrics, --max-requests.  What accepts and
serves connections is a LoopServing (carpinus.serving): in this same loop
by default, or one per serving thread with --threads N (carpinus.threads).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import random
import signal
import socket
import threading
import time
from collections.abc import Generator
from types import FrameType
from typing import Any

from carpinus.config import Config
from carpinus.lifespan import Lifespan
from carpinus.metrics.snapshot import take
from carpinus.serving import DRAIN_POLL, TICK_INTERVAL, LoopServing, run_in_new_loop
from carpinus.sockets import bind_sockets, close_sockets, log_listening
from carpinus.threads import ServingThread, gil_enabled

__all__ = ["HANDLED_SIGNALS", "STARTUP_FAILURE", "TICK_INTERVAL", "Server", "tune_allocator"]

logger = logging.getLogger("carpinus.error")

STARTUP_FAILURE = 3
HANDLED_SIGNALS = (signal.SIGINT, signal.SIGTERM)
# How long a forced exit waits for serving threads that do not stop (a thread
# blocked in C code cannot be interrupted); they are daemon threads.
FORCED_THREAD_STOP = 2.0  # seconds


class Server:
    """One server process.  `run()` blocks; `serve()` is the coroutine."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.should_exit = False
        self.force_exit = False
        self.started = False
        self.exit_code = 0
        # threads == 1: what this loop serves, in this loop
        self.serving: LoopServing | None = None
        # threads > 1: the serving threads, each with its loop and LoopServing
        self.serving_threads: list[ServingThread] = []
        # threads > 1: the listening sockets the serving threads accept on
        # (duplicates of them); closed when a shutdown begins
        self.listening: list[socket.socket] = []
        self.bound_sockets: list[socket.socket] = []  # the sockets this server bound itself
        self.lifespan: Lifespan | None = None
        # --metrics-bind: publish(states) every tick and at the end, close()
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

    @property
    def state(self) -> Any:
        """The ServerState of a server with one loop (None with --threads N > 1: see states)."""
        return self.serving.state if self.serving is not None else None

    @property
    def servers(self) -> list[asyncio.base_events.Server]:
        return self.serving.servers if self.serving is not None else []

    @property
    def servings(self) -> list[LoopServing]:
        """What each serving loop serves: this loop's, or each thread's."""
        if self.serving is not None:
            return [self.serving]
        return [thread.serving for thread in self.serving_threads]

    @property
    def states(self) -> list[Any]:
        """Every ServerState of the process: one per serving loop."""
        if self.serving is not None:
            return [self.serving.state] if self.serving.state is not None else []
        return [thread.state for thread in self.serving_threads if thread.state is not None]

    # -- entry points -------------------------------------------------------

    def run(self, sockets: list[socket.socket] | None = None) -> int:
        """Serve until told to stop; returns the process exit code."""
        if self.config.malloc_tuning:
            tune_allocator()
        run_in_new_loop(self.config, self.serve(sockets=sockets))
        return self.exit_code

    async def serve(self, sockets: list[socket.socket] | None = None) -> None:
        with self.capture_signals():
            await self._serve(sockets)

    async def _serve(self, sockets: list[socket.socket] | None) -> None:
        config = self.config
        config.load()
        if config.is_demo:
            logger.info("No app given: serving the bundled demo app %s", config.app)
        if config.threads > 1:
            # (after the app's import: an extension it imports may turn the GIL back on)
            logger.info("Started server process [%d] with %d serving threads (%s)", os.getpid(),
                        config.threads, "the GIL is on: they take turns running Python"
                        if gil_enabled() else "free-threaded: they run Python in parallel")
        else:
            logger.info("Started server process [%d]", os.getpid())
        await self.startup(sockets)
        if not self.started:
            return  # (startup cleaned up after itself)
        await self.main_loop()
        await self.shutdown()
        logger.info("Finished server process [%d]", os.getpid())

    # -- start --------------------------------------------------------------

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        config = self.config
        assert config.loaded_app is not None
        lifespan_state: dict[str, Any] = {}
        if config.lifespan != "off":
            # Once per process, in this (the main thread's) loop, whatever
            # --threads is: objects made here that belong to an event loop
            # belong to this one (docs/deployment.md, "Threads vs workers").
            self.lifespan = Lifespan(config.loaded_app, config.lifespan)
            await self.lifespan.startup()
            if self.lifespan.should_exit:
                self.should_exit = True
                self.exit_code = STARTUP_FAILURE
                return
            lifespan_state = self.lifespan.state

        try:
            if config.threads > 1:
                await self._start_threads(lifespan_state, sockets)
            else:
                self.serving = LoopServing(config, lifespan_state)
                self.serving.make_state()
                if config.metrics_bind is not None:
                    self.metrics = self.open_metrics()
                await self._listen(sockets)
        except OSError as exc:
            logger.error("%s", exc)
            await self._abandon_startup(exit_code=1)
            return
        if config.gc_freeze:
            # Everything alive now (modules, the app, its startup state) lives
            # as long as the process: move it out of the collector's sight so
            # that full collections during serving scan only request garbage.
            # This halves p99 latency under load (docs/architecture.md).
            gc.collect()
            gc.freeze()
        self.started = True

    async def _listen(self, sockets: list[socket.socket] | None) -> None:
        assert self.serving is not None
        if not sockets:
            # bound here: closed (a Unix socket file removed) at shutdown
            sockets = self.bound_sockets = bind_sockets(self.config)
        await self.serving.listen(sockets)
        for sock in sockets:
            self._log_listening(sock)

    async def _start_threads(self, lifespan_state: dict[str, Any],
                             sockets: list[socket.socket] | None) -> None:
        """--threads N: start the serving threads on (duplicates of) the sockets,
        and wait until each accepts.  Raises OSError when one cannot."""
        if not sockets:
            sockets = self.bound_sockets = bind_sockets(self.config)
        self.listening = list(sockets)
        for index in range(1, self.config.threads + 1):
            # Each thread gets its own copy of the state lifespan left (the
            # same objects in it): every request copies it again, and on a
            # free-threaded build copying a dict locks it, so one dict
            # copied by every thread for every request makes them queue.
            thread = ServingThread(self.config, index, sockets, dict(lifespan_state))
            self.serving_threads.append(thread)
            thread.start()
        # (each thread makes its state and listens within milliseconds; a
        # signal meanwhile is honoured once they have)
        while not all(thread.started for thread in self.serving_threads):
            await asyncio.sleep(0.01)
        failed = [thread.index for thread in self.serving_threads if thread.failed]
        if failed:
            raise OSError(f"serving thread(s) {', '.join(map(str, failed))} could not start")
        if self.config.metrics_bind is not None:
            self.metrics = self.open_metrics()
        for sock in sockets:
            self._log_listening(sock)

    async def _abandon_startup(self, exit_code: int) -> None:
        """A start that failed after lifespan startup: undo what was done."""
        if self.serving is not None:
            self.serving.close()
        await self._stop_threads()
        self._release_sockets()
        self.close_metrics()
        self.should_exit = True
        self.exit_code = exit_code
        if self.lifespan is not None:
            await self.lifespan.shutdown()

    def open_metrics(self) -> Any:
        """--metrics-bind in a single server process: the scrape endpoint is
        ours (carpinus.metrics; a supervised worker publishes instead)."""
        from carpinus.metrics.exporter import InProcessMetrics

        assert self.config.metrics_bind is not None
        return InProcessMetrics(self.config.metrics_bind, lambda: self.servings)

    def close_metrics(self) -> None:
        if self.metrics is not None:
            if self.states:
                # the final numbers: every serving loop has stopped, so this
                # thread may read their states now
                self.metrics.publish([take(state) for state in self.states])
            self.metrics.close()
            self.metrics = None

    def _log_listening(self, sock: socket.socket) -> None:
        log_listening(self.config, sock)

    def _close_listening(self) -> None:
        """--threads N: stop listening (the threads close their duplicates)."""
        for sock in self.listening:
            sock.close()

    def _release_sockets(self) -> None:
        if self.bound_sockets:
            close_sockets(self.config, self.bound_sockets)
            self.bound_sockets = []

    @property
    def port(self) -> int:
        """The TCP port actually bound (useful with port=0)."""
        if self.listening:
            return int(self.listening[0].getsockname()[1])
        port: int = self.servers[0].sockets[0].getsockname()[1]
        return port

    # -- run ----------------------------------------------------------------

    async def main_loop(self) -> None:
        # Timeouts are enforced by this tick (no timer per connection), so they
        # are precise to about TICK_INTERVAL; should_exit is noticed as fast.
        # (Serving threads tick their own states.)
        while not self.should_exit:
            await asyncio.sleep(TICK_INTERVAL)
            if self.serving is not None:
                self.serving.tick()
            self.on_tick()

    def on_tick(self) -> None:
        """Called by the main loop every TICK_INTERVAL; subclasses add their own checks."""
        states = self.states
        if self.metrics is not None:
            # each loop's own snapshot of its last tick: a ServerState is read
            # only on its loop's thread (docs/architecture.md, "Threads")
            self.metrics.publish([s.snapshot for s in self.servings if s.snapshot is not None])
        if (
            self.max_requests is not None
            and sum(state.stats()["requests_total"] for state in states) >= self.max_requests
        ):
            logger.info(
                "Maximum request limit of %d reached; stopping process [%d] gracefully.",
                self.max_requests,
                os.getpid(),
            )
            self.should_exit = True
        for thread in self.serving_threads:
            if not thread.alive and not self.should_exit:
                logger.error("Serving thread %d stopped unexpectedly; stopping the server.",
                             thread.index)
                self.exit_code = 1
                self.should_exit = True

    def loops_responsive(self, within: float) -> bool:
        """Whether every serving loop has ticked in the last `within` seconds
        (this loop's own ticks are what calls this)."""
        now = time.monotonic()
        return all(now - thread.last_tick <= within for thread in self.serving_threads)

    # -- stop ---------------------------------------------------------------

    async def shutdown(self) -> None:
        logger.info("Shutting down")
        if self.serving is not None:
            await self.serving.drain(lambda: self.force_exit)
        else:
            await self._stop_threads()
        self._release_sockets()
        self.close_metrics()

        if self.lifespan is not None:
            if self.force_exit:
                await self.lifespan.cancel()
            else:
                await self.lifespan.shutdown()
            if self.lifespan.should_exit and self.exit_code == 0:
                self.exit_code = 1

    async def _stop_threads(self) -> None:
        """Stop accepting, then have every serving thread drain (each within
        --timeout-graceful-shutdown, all at once) and wait for them to end.
        force_exit (a second SIGINT) is passed on to them."""
        self._close_listening()
        for thread in self.serving_threads:
            thread.stop(force=self.force_exit)
        forced_at: float | None = None
        while any(thread.alive for thread in self.serving_threads):
            if self.force_exit:
                if forced_at is None:
                    forced_at = time.monotonic()
                    for thread in self.serving_threads:
                        thread.stop(force=True)
                elif time.monotonic() - forced_at > FORCED_THREAD_STOP:
                    stuck = [t.index for t in self.serving_threads if t.alive]
                    logger.warning("Serving thread(s) %s did not stop; exiting without them.",
                                   ", ".join(map(str, stuck)))
                    return
            await asyncio.sleep(DRAIN_POLL)
        for thread in self.serving_threads:
            thread.join()

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
