"""The ASGI lifespan protocol: startup and shutdown events, and lifespan state."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

logger = logging.getLogger("carpinus.error")


class Lifespan:
    """Runs the app's lifespan scope in a task and talks to it through two events.

    mode "on": any failure stops the server.  mode "auto": an app that raises
    before answering startup is taken not to support lifespan, and the server
    runs without it (as uvicorn does).
    """

    def __init__(self, app: Callable[..., Any], mode: str) -> None:
        self.app = app
        self.mode = mode
        self.state: dict[str, Any] = {}
        self.startup_failed = False
        self.shutdown_failed = False
        self.should_exit = False
        self.unsupported = False
        self._queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._startup_done = asyncio.Event()
        self._shutdown_done = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._started = False

    async def startup(self) -> None:
        logger.info("Waiting for application startup.")
        self._task = asyncio.get_running_loop().create_task(self._main())
        await self._queue.put({"type": "lifespan.startup"})
        await self._startup_done.wait()
        if self.startup_failed or (self.unsupported and self.mode == "on"):
            logger.error("Application startup failed. Exiting.")
            self.should_exit = True
        elif not self.unsupported:
            logger.info("Application startup complete.")

    async def shutdown(self) -> None:
        if self.unsupported or self.startup_failed or self._task is None:
            return
        logger.info("Waiting for application shutdown.")
        await self._queue.put({"type": "lifespan.shutdown"})
        await self._shutdown_done.wait()
        if self.shutdown_failed or (self.unsupported and self.mode == "on"):
            logger.error("Application shutdown failed. Exiting.")
            self.should_exit = True
        else:
            logger.info("Application shutdown complete.")

    async def cancel(self) -> None:
        """Forced exit: stop the lifespan task without running shutdown."""
        if self._task is not None and not self._task.done():
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _main(self) -> None:
        scope = {
            "type": "lifespan",
            "asgi": {"version": "3.0", "spec_version": "2.4"},
            "state": self.state,
        }
        try:
            await self.app(scope, self._receive, self._send)
        except asyncio.CancelledError:
            raise  # forced exit: not the app's fault, nothing to report
        except BaseException as exc:
            self.unsupported = True
            if self.startup_failed or self.shutdown_failed:
                return
            if self.mode == "auto" and not self._started:
                logger.info("ASGI 'lifespan' protocol appears unsupported.")
            else:
                logger.error("Exception in 'lifespan' protocol\n", exc_info=exc)
        finally:
            self._startup_done.set()
            self._shutdown_done.set()

    async def _receive(self) -> dict[str, Any]:
        return await self._queue.get()

    async def _send(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if kind == "lifespan.startup.complete":
            self._started = True
            self._startup_done.set()
        elif kind == "lifespan.startup.failed":
            self._started = True
            self.startup_failed = True
            self._startup_done.set()
            if message.get("message"):
                logger.error(message["message"])
        elif kind == "lifespan.shutdown.complete":
            self._shutdown_done.set()
        elif kind == "lifespan.shutdown.failed":
            self.shutdown_failed = True
            self._shutdown_done.set()
            if message.get("message"):
                logger.error(message["message"])
        else:
            raise RuntimeError(f"Unexpected ASGI lifespan message {kind!r}.")
