"""Config: every option of the server, with uvicorn's names where the concept is the same."""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import os
import sys
from collections.abc import Callable, Mapping
from typing import Any, Literal

from carpinus.importer import ImportFromStringError, import_from_string
from carpinus.optimizations import resolve as resolve_optimizations

LoopChoice = Literal["auto", "asyncio", "uvloop"]
LifespanChoice = Literal["auto", "on", "off"]
WebSocketChoice = Literal["auto", "none", "wsproto"]

DEMO_APP = "carpinus.demo:app"

LOG_LEVELS: dict[str, int] = {
    "critical": logging.CRITICAL,
    "error": logging.ERROR,
    "warning": logging.WARNING,
    "info": logging.INFO,
    "debug": logging.DEBUG,
    "trace": 5,
}

logger = logging.getLogger("carpinus.error")


class ConfigError(ValueError):
    """An option has a value the server cannot use."""


def _positive(name: str, value: float | None, allow_none: bool = True) -> None:
    if value is None:
        if not allow_none:
            raise ConfigError(f"{name} is required")
        return
    if value <= 0:
        raise ConfigError(f"{name} must be positive, got {value!r}")


class Config:
    """Options for one server.  `load()` resolves the app and validates everything."""

    def __init__(
        self,
        app: Any = None,
        *,
        host: str = "127.0.0.1",
        port: int = 8000,
        uds: str | None = None,
        fd: int | None = None,
        backlog: int = 2048,
        loop: LoopChoice = "auto",
        lifespan: LifespanChoice = "auto",
        root_path: str = "",
        log_level: str | int | None = None,
        access_log: bool = True,
        server_header: bool = True,
        date_header: bool = True,
        timeout_keep_alive: float = 5.0,
        timeout_request_header: float = 10.0,
        timeout_graceful_shutdown: float | None = None,
        limit_request_line: int = 8190,
        limit_request_headers: int = 100,
        limit_request_header_size: int = 8190,
        limit_request_body: int | None = None,
        limit_concurrency: int | None = None,
        factory: bool = False,
        gc_freeze: bool = True,
        malloc_tuning: bool = True,
        optimizations: Mapping[str, bool] | None = None,
        zero_copy_threshold: int = 16384,
        lazy_headers_min: int = 4,
        scope_cache_size: int = 64,
        ws: WebSocketChoice = "auto",
        ws_max_size: int = 16 * 1024 * 1024,
        ws_max_queue: int = 32,
        ws_ping_interval: float | None = 20.0,
        ws_ping_timeout: float | None = 20.0,
        ws_per_message_deflate: bool = True,
        app_dir: str | None = None,
        configure_logging: bool = True,
    ) -> None:
        # No app: the bundled demo app (and the log says so).
        self.is_demo = app is None
        self.app = DEMO_APP if app is None else app
        self.host = host
        self.port = port
        self.uds = uds
        self.fd = fd
        self.backlog = backlog
        self.loop = loop
        self.lifespan = lifespan
        self.root_path = root_path
        self.log_level = log_level
        self.access_log = access_log
        self.server_header = server_header
        self.date_header = date_header
        self.timeout_keep_alive = timeout_keep_alive
        self.timeout_request_header = timeout_request_header
        self.timeout_graceful_shutdown = timeout_graceful_shutdown
        self.limit_request_line = limit_request_line
        self.limit_request_headers = limit_request_headers
        self.limit_request_header_size = limit_request_header_size
        self.limit_request_body = limit_request_body
        self.limit_concurrency = limit_concurrency
        self.factory = factory
        self.gc_freeze = gc_freeze
        self.malloc_tuning = malloc_tuning
        try:
            self.optimizations = resolve_optimizations(optimizations)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        self.zero_copy_threshold = zero_copy_threshold
        self.lazy_headers_min = lazy_headers_min
        self.scope_cache_size = scope_cache_size
        self.ws = ws
        self.ws_max_size = ws_max_size
        self.ws_max_queue = ws_max_queue
        self.ws_ping_interval = ws_ping_interval
        self.ws_ping_timeout = ws_ping_timeout
        self.ws_per_message_deflate = ws_per_message_deflate
        self.app_dir = app_dir
        self.configure_logging = configure_logging
        self.loaded_app: Callable[..., Any] | None = None
        self.loaded = False
        if configure_logging:
            from carpinus.logging import configure_logging as _configure

            _configure(self.log_level)
        self.validate()

    # -- validation ---------------------------------------------------------

    def validate(self) -> None:
        if self.loop not in ("auto", "asyncio", "uvloop"):
            raise ConfigError(f"loop must be auto, asyncio or uvloop, got {self.loop!r}")
        if self.lifespan not in ("auto", "on", "off"):
            raise ConfigError(f"lifespan must be auto, on or off, got {self.lifespan!r}")
        if self.root_path and (
            not self.root_path.startswith("/") or self.root_path.endswith("/")
        ):
            raise ConfigError("root_path must start with '/' and not end with '/'")
        _positive("timeout_keep_alive", self.timeout_keep_alive, allow_none=False)
        _positive("timeout_request_header", self.timeout_request_header, allow_none=False)
        _positive("timeout_graceful_shutdown", self.timeout_graceful_shutdown)
        if self.limit_request_line < 16:
            raise ConfigError("limit_request_line must be at least 16")
        if self.limit_request_header_size < 16:
            raise ConfigError("limit_request_header_size must be at least 16")
        if self.limit_request_headers < 1:
            raise ConfigError("limit_request_headers must be at least 1")
        if self.limit_request_body is not None and self.limit_request_body < 0:
            raise ConfigError("limit_request_body must be >= 0")
        if self.limit_concurrency is not None and self.limit_concurrency < 1:
            raise ConfigError("limit_concurrency must be >= 1")
        if self.zero_copy_threshold < 1:
            raise ConfigError("zero_copy_threshold must be >= 1")
        if self.lazy_headers_min < 0:
            raise ConfigError("lazy_headers_min must be >= 0")
        if not 1 <= self.scope_cache_size <= 1 << 20:
            raise ConfigError("scope_cache_size must be between 1 and 1048576")
        if self.ws not in ("auto", "none", "wsproto"):
            raise ConfigError(f"ws must be auto, none or wsproto, got {self.ws!r}")
        if self.ws == "wsproto" and importlib.util.find_spec("wsproto") is None:
            raise ConfigError(
                "ws=wsproto but wsproto is not installed (pip install 'carpinus[ws]')"
            )
        if self.ws_max_size < 1:
            raise ConfigError("ws_max_size must be >= 1")
        if self.ws_max_queue < 1:
            raise ConfigError("ws_max_queue must be >= 1")
        _positive("ws_ping_interval", self.ws_ping_interval)
        _positive("ws_ping_timeout", self.ws_ping_timeout)
        if self.backlog < 1:
            raise ConfigError("backlog must be >= 1")
        if sum(x is not None for x in (self.uds, self.fd)) > 1:
            raise ConfigError("use at most one of uds and fd")

    # -- loading ------------------------------------------------------------

    def load(self) -> None:
        """Import the app (once)."""
        if self.loaded:
            return
        if self.app_dir is not None:
            sys.path.insert(0, os.path.abspath(self.app_dir))
        try:
            app = import_from_string(self.app)
        except ImportFromStringError as exc:
            logger.error("Error loading ASGI app. %s", exc)
            raise SystemExit(1) from None
        if self.factory:
            try:
                app = app()
            except TypeError as exc:
                logger.error("Error loading ASGI app factory: %s", exc)
                raise SystemExit(1) from None
        if not callable(app):
            logger.error("ASGI app %r is not callable.", self.app)
            raise SystemExit(1)
        self.loaded_app = app
        self.loaded = True

    def loop_factory(self) -> Callable[[], asyncio.AbstractEventLoop]:
        """The event loop constructor the `loop` option asks for."""
        if self.loop in ("auto", "uvloop"):
            try:
                import uvloop
            except ImportError:
                if self.loop == "uvloop":
                    raise ConfigError(
                        "loop=uvloop but uvloop is not installed "
                        "(pip install 'carpinus[uvloop]')"
                    ) from None
            else:
                return uvloop.new_event_loop
        return asyncio.new_event_loop

    def websocket_implementation(self) -> str | None:
        """"wsproto" when WebSockets are served, None when they are not.

        `ws="auto"` uses wsproto when it is installed and otherwise serves
        upgrade requests as plain HTTP, saying so in the log once.
        """
        if self.ws == "none":
            return None
        # found, not imported: wsproto loads with the first WebSocket
        if importlib.util.find_spec("wsproto") is None:
            if self.ws == "wsproto":
                raise ConfigError(
                    "ws=wsproto but wsproto is not installed (pip install 'carpinus[ws]')"
                )
            logger.info(
                "WebSocket support is off: wsproto is not installed "
                "(pip install 'carpinus[ws]'); upgrade requests are served as plain HTTP."
            )
            return None
        return "wsproto"
