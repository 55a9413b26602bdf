"""carpinus as a gunicorn worker class: `gunicorn -k carpinus.workers.CarpinusWorker app:app`.

gunicorn's arbiter then does the process management (binding, forking,
signals, --max-requests, timeouts) and each worker runs one carpinus Server
on the sockets gunicorn bound.  gunicorn's settings map onto carpinus'
options as follows (docs/deployment.md has the table):

    keepalive                 → timeout_keep_alive
    graceful_timeout          → timeout_graceful_shutdown
    max_requests (+ jitter)   → max_requests (gunicorn draws the jitter)
    limit_request_line        → limit_request_line (0, unlimited: the core's maximum)
    limit_request_fields      → limit_request_headers
    limit_request_field_size  → limit_request_header_size (0: the core's maximum)
    (the three together)      → limit_request_head: the longest head they admit
    backlog                   → backlog
    threads                   → threads (serving threads, each with its event loop)
    root_path, asgi_loop, asgi_lifespan (gunicorn ≥ 24) → root_path, loop, lifespan
    timeout                   → the worker notifies the arbiter from its event loop,
                                so a loop blocked longer than `timeout` gets the
                                worker killed and replaced, as with gunicorn's own workers

Options gunicorn has no setting for can be set by subclassing and filling
CONFIG_KWARGS, e.g. `class Worker(CarpinusWorker): CONFIG_KWARGS = {"loop": "asyncio"}`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
import time
from collections.abc import Generator
from typing import Any

from gunicorn.arbiter import Arbiter  # type: ignore[import-untyped]
from gunicorn.workers.base import Worker  # type: ignore[import-untyped]

from carpinus.config import MAX_REQUEST_HEAD, Config, ConfigError
from carpinus.logging import ACCESS_LOGGER, ERROR_LOGGER
from carpinus.server import Server

logger = logging.getLogger(ERROR_LOGGER)

# gunicorn's "0 = unlimited" for line sizes becomes the largest line the C
# core accepts (16 MiB, src/carpinus/_core/server.c).
CORE_MAX_LINE = 1 << 24


def _largest_head(line: int, fields: int, field_size: int) -> int:
    """The longest head gunicorn's limits admit (0: unlimited), capped by the core's."""
    if not line or not field_size:
        return MAX_REQUEST_HEAD
    return min(MAX_REQUEST_HEAD, line + 2 + fields * (field_size + 2) + 2)


def _setting(cfg: Any, name: str, default: Any) -> Any:
    """A gunicorn setting that older gunicorn versions may not have."""
    setting = cfg.settings.get(name)
    return default if setting is None else setting.get()


class GunicornServer(Server):
    """A carpinus Server that keeps gunicorn's arbiter informed."""

    def __init__(self, config: Config, worker: CarpinusWorker) -> None:
        super().__init__(config)
        self.worker = worker
        # gunicorn kills a worker that has not notified for `timeout` seconds
        # (worker.timeout is half of that); notify well within it.
        self.notify_interval = min(1.0, worker.timeout / 2) if worker.timeout else 1.0
        self._last_notify = 0.0

    def _log_listening(self, sock: Any) -> None:
        logger.debug("Worker [%d] accepting on %s", os.getpid(), sock.getsockname())

    def notify(self) -> None:
        now = time.monotonic()
        if now - self._last_notify >= self.notify_interval:
            self._last_notify = now
            self.worker.notify()

    async def main_loop(self) -> None:
        self.worker.notify()
        await super().main_loop()

    def on_tick(self) -> None:
        super().on_tick()
        # (with threads, only while every serving loop turns: a blocked one is
        # what gunicorn's --timeout is there to catch)
        if self.loops_responsive(self.notify_interval):
            self.notify()
        if self.worker.ppid != os.getppid() and not self.should_exit:
            logger.info("Parent changed, shutting down worker [%d].", os.getpid())
            self.should_exit = True

    async def shutdown(self) -> None:
        # Keep notifying while requests drain, or the arbiter would take a
        # long drain for a hung worker.
        async def keep_notifying() -> None:
            while True:
                self.notify()
                await asyncio.sleep(self.notify_interval)

        beat = asyncio.ensure_future(keep_notifying())
        try:
            await super().shutdown()
        finally:
            beat.cancel()

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        """As gunicorn's own workers: SIGTERM drains gracefully; SIGQUIT and SIGINT
        (gunicorn's quick shutdown) quit at once; SIGUSR1 reopens the log files."""
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGQUIT, self.quit_now)
        loop.add_signal_handler(signal.SIGUSR1, self.worker.log.reopen_files)
        try:
            with super().capture_signals():
                loop.add_signal_handler(signal.SIGINT, self.quit_now)  # replaces the drain
                yield
        finally:
            loop.remove_signal_handler(signal.SIGQUIT)
            loop.remove_signal_handler(signal.SIGUSR1)

    def quit_now(self) -> None:
        self.should_exit = True
        self.force_exit = True


class CarpinusWorker(Worker):  # type: ignore[misc]  # gunicorn has no type hints
    """A gunicorn worker that serves an ASGI app with carpinus."""

    CONFIG_KWARGS: dict[str, Any] = {}

    def init_process(self) -> None:
        # In the worker process (after the fork): carpinus' records go through
        # gunicorn's handlers and levels.
        for name, source in ((ERROR_LOGGER, self.log.error_log),
                             (ACCESS_LOGGER, self.log.access_log)):
            target = logging.getLogger(name)
            target.handlers = source.handlers
            target.setLevel(source.level)
            target.propagate = False
        super().init_process()

    def init_signals(self) -> None:
        # gunicorn installs handlers for its own loop; the carpinus Server
        # installs asyncio ones (capture_signals above) once its loop runs.
        for sig in self.SIGNALS:
            signal.signal(sig, signal.SIG_DFL)
        # (until the loop takes over, SIGUSR1 from logrotate must not kill us)
        signal.signal(signal.SIGUSR1, lambda sig, frame: self.log.reopen_files())
        signal.signal(signal.SIGABRT, self.abort)

    def abort(self, sig: int, frame: Any) -> None:
        """SIGABRT: the arbiter found this worker silent past --timeout.  Exit at once
        (rather than dump core); the arbiter starts a replacement."""
        self.cfg.worker_abort(self)
        self.log.error("Worker [%d] aborted by the arbiter (timeout).", os.getpid())
        os._exit(1)

    def carpinus_config(self) -> Config:
        """gunicorn's settings as a carpinus Config (see the module docstring)."""
        cfg = self.cfg
        kwargs: dict[str, Any] = {
            "app": self.wsgi,  # the object gunicorn imported (named so for WSGI)
            "workers": 1,  # gunicorn manages the processes
            "configure_logging": False,
            "backlog": cfg.backlog,
            "threads": cfg.threads,
            # 0 in gunicorn: no keep-alive; the shortest carpinus has is one tick
            "timeout_keep_alive": float(cfg.keepalive) if cfg.keepalive > 0 else 0.1,
            "timeout_graceful_shutdown": float(cfg.graceful_timeout)
            if cfg.graceful_timeout > 0 else 0.01,
            "limit_request_line": cfg.limit_request_line or CORE_MAX_LINE,
            "limit_request_headers": cfg.limit_request_fields,
            "limit_request_header_size": cfg.limit_request_field_size or CORE_MAX_LINE,
            # gunicorn has no limit on the whole head: the largest its own
            # limits let through
            "limit_request_head": _largest_head(cfg.limit_request_line,
                                                cfg.limit_request_fields,
                                                cfg.limit_request_field_size),
            "max_requests": self.max_requests if cfg.max_requests > 0 else None,
            "access_log": bool(self.log.access_log.handlers),
            "root_path": _setting(cfg, "root_path", "") or "",
            "loop": _setting(cfg, "asgi_loop", "auto"),
            "lifespan": _setting(cfg, "asgi_lifespan", "auto"),
        }
        kwargs["forwarded_allow_ips"] = cfg.forwarded_allow_ips
        if cfg.is_ssl:
            # gunicorn's own TLS settings; the context is built by carpinus's Config
            options = cfg.ssl_options
            kwargs.update(
                ssl_certfile=options.get("certfile"),
                ssl_keyfile=options.get("keyfile"),
                ssl_ca_certs=options.get("ca_certs"),
                ssl_cert_reqs=options.get("cert_reqs"),
            )
            if options.get("ciphers"):
                kwargs["ssl_ciphers"] = options["ciphers"]
        kwargs.update(self.CONFIG_KWARGS)
        return Config(**kwargs)

    def run(self) -> None:
        try:
            config = self.carpinus_config()
        except (ConfigError, RuntimeError) as exc:
            self.log.error("carpinus cannot start: %s", exc)
            sys.exit(Arbiter.WORKER_BOOT_ERROR)
        server = GunicornServer(config, self)
        sockets = [getattr(s, "sock", s) for s in self.sockets]
        code = server.run(sockets=sockets)
        if not server.started:
            # The arbiter stops instead of restarting workers that would all fail.
            sys.exit(Arbiter.WORKER_BOOT_ERROR)
        if code:
            sys.exit(code)
