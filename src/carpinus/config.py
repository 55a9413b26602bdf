"""Config: every option of the server, with uvicorn's names where the concept is the same."""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import os
import ssl
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

from carpinus.importer import ImportFromStringError, import_from_string
from carpinus.logging import LogConfigError
from carpinus.logging import configure_logging as apply_logging
from carpinus.optimizations import resolve as resolve_optimizations
from carpinus.tls import SSL_CERT_REQS, SSL_CIPHERS, SSL_PROTOCOL_VERSION

LoopChoice = Literal["auto", "asyncio", "uvloop"]
LifespanChoice = Literal["auto", "on", "off"]
WebSocketChoice = Literal["auto", "none", "wsproto"]

DEMO_APP = "carpinus.demo:app"

DEFAULT_FORWARDED_ALLOW_IPS = "127.0.0.1"
# The largest --limit-request-head the C core takes (64 MiB).
MAX_REQUEST_HEAD = 1 << 26

logger = logging.getLogger("carpinus.error")


class ConfigError(ValueError):
    """An option has a value the server cannot use."""


def load_env_file(path: str | os.PathLike[str]) -> None:
    """Variables from a .env file into os.environ (ones already set win), as
    uvicorn does with python-dotenv."""
    try:
        from dotenv import load_dotenv
    except ImportError:
        raise ConfigError(
            "env_file needs python-dotenv (pip install 'carpinus[standard]' or "
            "'carpinus[dotenv]')"
        ) from None
    if not os.path.isfile(path):
        raise ConfigError(f"env_file {os.fspath(path)!r} is not a file")
    load_dotenv(dotenv_path=path)


def encode_headers(headers: Sequence[tuple[str, str]]) -> list[tuple[bytes, bytes]]:
    """--header pairs as the bytes the server sends (latin-1, as uvicorn),
    names lowercased, surrounding whitespace dropped."""
    encoded = []
    for item in headers:
        if not (isinstance(item, (tuple, list)) and len(item) == 2):
            raise ConfigError(f"headers: expected (name, value) pairs, got {item!r}")
        name, value = item
        try:
            encoded.append(
                (str(name).strip().lower().encode("latin-1"), str(value).strip().encode("latin-1"))
            )
        except UnicodeEncodeError:
            raise ConfigError(f"header {name}: {value!r} is not latin-1 text") from None
    return encoded


def _positive(name: str, value: float | None, allow_none: bool = True) -> None:
    if value is None:
        if not allow_none:
            raise ConfigError(f"{name} is required")
        return
    if value <= 0:
        raise ConfigError(f"{name} must be positive, got {value!r}")


def _workers_from(workers: int | None) -> int:
    """`workers`, or $WEB_CONCURRENCY when it is not given (as uvicorn and gunicorn do), or 1."""
    if workers is not None:
        return workers
    text = os.environ.get("WEB_CONCURRENCY")
    if not text:
        return 1
    try:
        return int(text)
    except ValueError:
        raise ConfigError(f"WEB_CONCURRENCY must be a number of workers, got {text!r}") from None


def _as_list(value: Sequence[str] | str | None) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    return list(value)


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
        timeout_request_body: float = 60.0,
        timeout_graceful_shutdown: float | None = None,
        limit_request_line: int = 8190,
        limit_request_headers: int = 100,
        limit_request_header_size: int = 8190,
        limit_request_head: int = 65536,
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
        ssl_keyfile: str | os.PathLike[str] | None = None,
        ssl_certfile: str | os.PathLike[str] | None = None,
        ssl_keyfile_password: str | None = None,
        ssl_version: int = SSL_PROTOCOL_VERSION,
        ssl_cert_reqs: int = SSL_CERT_REQS,
        ssl_ca_certs: str | os.PathLike[str] | None = None,
        ssl_ciphers: str | None = SSL_CIPHERS,
        proxy_headers: bool = True,
        forwarded_allow_ips: str | Sequence[str] | None = None,
        headers: Sequence[tuple[str, str]] | None = None,
        env_file: str | os.PathLike[str] | None = None,
        log_config: str | os.PathLike[str] | Mapping[str, Any] | None = None,
        access_log_format: str | None = None,
        workers: int | None = None,
        max_requests: int | None = None,
        max_requests_jitter: int = 0,
        timeout_worker_healthcheck: float = 30.0,
        reload: bool = False,
        reload_dirs: Sequence[str] | str | None = None,
        reload_includes: Sequence[str] | str | None = None,
        reload_excludes: Sequence[str] | str | None = None,
        pid_file: str | None = None,
        configure_logging: bool = True,
    ) -> None:
        # The arguments exactly as given (this must stay the first statement):
        # a worker process started by the supervisor rebuilds its Config from
        # them, so everything __init__ does (logging set-up included) happens
        # in the worker too.
        arguments = dict(locals())
        del arguments["self"]
        self.arguments: dict[str, Any] = arguments
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
        self.timeout_request_body = timeout_request_body
        self.timeout_graceful_shutdown = timeout_graceful_shutdown
        self.limit_request_line = limit_request_line
        self.limit_request_headers = limit_request_headers
        self.limit_request_header_size = limit_request_header_size
        self.limit_request_head = limit_request_head
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
        self.ssl_keyfile = ssl_keyfile
        self.ssl_certfile = ssl_certfile
        self.ssl_keyfile_password = ssl_keyfile_password
        self.ssl_version = ssl_version
        self.ssl_cert_reqs = ssl_cert_reqs
        self.ssl_ca_certs = ssl_ca_certs
        self.ssl_ciphers = ssl_ciphers
        self.proxy_headers = proxy_headers
        self.headers: list[tuple[str, str]] = list(headers or ())  # checked in validate()
        self.env_file = env_file
        self.log_config = log_config
        self.access_log_format = access_log_format
        # Process model (carpinus.main.launch): one server in this process, or a
        # supervisor with `workers` worker processes (docs/deployment.md).
        self.workers = _workers_from(workers)
        self.max_requests = max_requests
        self.max_requests_jitter = max_requests_jitter
        self.timeout_worker_healthcheck = timeout_worker_healthcheck
        self.reload = reload
        self.reload_dirs = _as_list(reload_dirs)
        self.reload_includes = _as_list(reload_includes)
        self.reload_excludes = _as_list(reload_excludes)
        self.pid_file = pid_file
        self.configure_logging = configure_logging
        self.loaded_app: Callable[..., Any] | None = None
        self.loaded = False
        # The .env file first: it may set FORWARDED_ALLOW_IPS, and the app
        # (imported later, in load()) reads its settings from the environment.
        if env_file is not None:
            load_env_file(env_file)
        if forwarded_allow_ips is None:
            forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", DEFAULT_FORWARDED_ALLOW_IPS)
        self.forwarded_allow_ips: str | Sequence[str] = forwarded_allow_ips
        if configure_logging:
            try:
                apply_logging(self.log_level, self.log_config)
            except LogConfigError as exc:
                raise ConfigError(str(exc)) from None
        if env_file is not None:
            logger.info("Loaded environment from %r", os.fspath(env_file))
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
        _positive("timeout_request_body", self.timeout_request_body, allow_none=False)
        _positive("timeout_graceful_shutdown", self.timeout_graceful_shutdown)
        if self.limit_request_line < 16:
            raise ConfigError("limit_request_line must be at least 16")
        if self.limit_request_header_size < 16:
            raise ConfigError("limit_request_header_size must be at least 16")
        if self.limit_request_headers < 1:
            raise ConfigError("limit_request_headers must be at least 1")
        if not 256 <= self.limit_request_head <= MAX_REQUEST_HEAD:
            raise ConfigError(
                f"limit_request_head must be between 256 and {MAX_REQUEST_HEAD} bytes")
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
        if self.workers < 1:
            raise ConfigError(f"workers must be >= 1, got {self.workers}")
        if self.max_requests is not None and self.max_requests < 1:
            raise ConfigError("max_requests must be >= 1")
        if self.max_requests_jitter < 0:
            raise ConfigError("max_requests_jitter must be >= 0")
        _positive("timeout_worker_healthcheck", self.timeout_worker_healthcheck, allow_none=False)
        if self.reload and importlib.util.find_spec("watchfiles") is None:
            raise ConfigError(
                "reload needs the watchfiles package: pip install 'carpinus[reload]'"
            )
        if self.uses_supervisor and not isinstance(self.app, str):
            # Worker processes import the app themselves (and reload re-imports it).
            raise ConfigError(
                'workers > 1 and reload need the app as an import string ("module:attribute"), '
                "not an object"
            )
        self._validate_network()

    def _validate_network(self) -> None:
        """TLS, proxy headers, default headers and the access log format:
        built here once, so that a mistake is reported before serving."""
        from carpinus import _core
        from carpinus.access_log import AccessLogFormat
        from carpinus.proxy_headers import TrustedHosts
        from carpinus.tls import TLSConfigError, create_ssl_context

        self.ssl: ssl.SSLContext | None = None
        if self.ssl_certfile:
            try:
                self.ssl = create_ssl_context(
                    certfile=self.ssl_certfile,
                    keyfile=self.ssl_keyfile,
                    password=self.ssl_keyfile_password,
                    ssl_version=self.ssl_version,
                    cert_reqs=self.ssl_cert_reqs,
                    ca_certs=self.ssl_ca_certs,
                    ciphers=self.ssl_ciphers,
                )
            except TLSConfigError as exc:
                raise ConfigError(str(exc)) from None
        else:
            given = [
                name
                for name, value in (
                    ("ssl_keyfile", self.ssl_keyfile),
                    ("ssl_keyfile_password", self.ssl_keyfile_password),
                    ("ssl_ca_certs", self.ssl_ca_certs),
                )
                if value
            ]
            if self.ssl_cert_reqs != SSL_CERT_REQS:
                given.append("ssl_cert_reqs")
            if given:
                raise ConfigError(f"{', '.join(given)} given without ssl_certfile")
        try:
            self.trusted_hosts = TrustedHosts(self.forwarded_allow_ips)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        self.encoded_headers = encode_headers(self.headers)
        try:
            _core.default_headers(self.encoded_headers, self.server_header)
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"headers: {exc}") from None
        self.access_log_formatter: AccessLogFormat | None = None
        if self.access_log_format is not None:
            try:
                self.access_log_formatter = AccessLogFormat(self.access_log_format)
            except ValueError as exc:
                raise ConfigError(str(exc)) from None

    @property
    def is_ssl(self) -> bool:
        return self.ssl is not None

    @property
    def uses_supervisor(self) -> bool:
        """True when a supervisor process runs the server in worker processes."""
        return self.reload or self.workers > 1

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
