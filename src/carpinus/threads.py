"""--threads N: serving threads, each with an event loop and a ServerState of its own.

Theory of operation
-------------------
The main thread keeps what there is one of per process: the app (imported
once), lifespan (run in the main thread's own event loop), signals (Python
delivers them to the main thread only), metrics, --max-requests and the
supervisor's heartbeat.  carpinus.server does that part.

Each ServingThread runs a fresh event loop of the --loop kind with a
LoopServing (carpinus.serving): a ServerState of its own, accepting on its
own duplicates (dup()) of the process's listening sockets.  A duplicate is
another descriptor for the same socket, so every loop waits on the one
accept queue the kernel keeps per socket, and whichever loop is free takes
the next connection; a loop that is blocked (in the app, or in C code) takes
none.  A connection, once accepted, belongs to that loop until it closes.
Each loop closes its own duplicates when it stops accepting, so no
descriptor is ever closed by two loops.

The main thread steers a serving thread with two flags that the thread reads
on its tick (every TICK_INTERVAL): should_exit (stop accepting, drain within
--timeout-graceful-shutdown, stop) and force_exit (stop draining: close what
is left now).  The thread writes down when it last ticked, so that a loop
that has stopped turning can be told from one that is merely busy.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import sys
import threading
import time
from typing import Any

from carpinus.config import Config
from carpinus.serving import TICK_INTERVAL, LoopServing, run_in_new_loop

logger = logging.getLogger("carpinus.error")


def gil_enabled() -> bool:
    """Whether the GIL is on: always on a GIL build; on a free-threaded build
    (3.13t) unless an extension imported so far turned it back on."""
    is_enabled = getattr(sys, "_is_gil_enabled", None)
    return True if is_enabled is None else bool(is_enabled())


class ServingThread:
    """One of the --threads: a thread, its event loop, and what that loop serves."""

    def __init__(self, config: Config, index: int, sockets: list[socket.socket],
                 lifespan_state: dict[str, Any]) -> None:
        self.index = index
        self.config = config
        self.sockets = [sock.dup() for sock in sockets]  # this loop's own descriptors
        self.serving = LoopServing(config, lifespan_state)
        self.should_exit = False  # set by the main thread: drain and stop
        self.force_exit = False  # set by the main thread: stop draining
        self.serving_since: float | None = None  # when it began accepting
        self.last_tick = time.monotonic()
        self.failed = False  # could not start, or stopped by an error
        self.thread = threading.Thread(target=self._main, name=f"carpinus-serving-{index}",
                                       daemon=True)

    @property
    def state(self) -> Any:
        """Its ServerState (None until the thread has made it)."""
        return self.serving.state

    @property
    def alive(self) -> bool:
        return self.thread.is_alive()

    @property
    def started(self) -> bool:
        """Accepting connections, or done trying (failed, or stopped before it began)."""
        return self.serving_since is not None or not self.thread.is_alive()

    def start(self) -> None:
        self.thread.start()

    def stop(self, force: bool = False) -> None:
        """Ask the thread to drain and stop (force: to close what is left at once)."""
        self.should_exit = True
        if force:
            self.force_exit = True

    def join(self, timeout: float | None = None) -> None:
        self.thread.join(timeout)

    def _main(self) -> None:
        try:
            run_in_new_loop(self.config, self._serve())
        except BaseException as exc:
            self.failed = True
            logger.error("Serving thread %d stopped by an error.", self.index, exc_info=exc)
        finally:
            for sock in self.sockets:
                sock.close()  # (no-op for those its loop closed already)

    async def _serve(self) -> None:
        serving = self.serving
        serving.make_state()
        try:
            await serving.listen(self.sockets)
        except OSError as exc:
            logger.error("%s", exc)
            self.failed = True
            return
        self.serving_since = self.last_tick = time.monotonic()
        logger.debug("Serving thread %d accepting.", self.index)
        while not self.should_exit:
            await asyncio.sleep(TICK_INTERVAL)
            self.last_tick = time.monotonic()
            serving.tick()
        await serving.drain(lambda: self.force_exit)
