"""Glue between the asyncio server and the C HTTP/1.1 protocol (carpinus._core)."""

from __future__ import annotations

import asyncio
import collections.abc
import logging
import sys
from typing import Any

from carpinus import _core
from carpinus.config import Config
from carpinus.logging import ACCESS_LOGGER, ERROR_LOGGER, AccessLogFormat, access_line
from carpinus.optimizations import bits as optimization_bits
from carpinus.proxy_headers import ProxyHeaders

logger = logging.getLogger(ERROR_LOGGER)
access_logger = logging.getLogger(ACCESS_LOGGER)

ClientDisconnected = _core.ClientDisconnected

# scope["headers"] may be a LazyHeaders (the lazy_headers optimization): make
# it a MutableSequence for isinstance() checks, as a list is.
collections.abc.MutableSequence.register(_core.LazyHeaders)


def report_exception(exc: BaseException, scope: dict[str, Any], disconnected: bool) -> None:
    """Log an exception that escaped the app (called from the C core)."""
    where = f"{scope.get('method')} {scope.get('path')}"
    if isinstance(exc, asyncio.CancelledError):
        logger.debug("Request task cancelled: %s", where)
    elif isinstance(exc, ClientDisconnected) or disconnected:
        logger.debug("Client went away during %s", where)
    else:
        logger.error("Exception in ASGI application\n", exc_info=exc)


def _log_access(scope: dict[str, Any], status: int, size: int, seconds: float) -> None:
    access_logger.info(access_line(scope, status))


def _access_log_callable(config: Config) -> Any:
    """What the C core calls once per finished response, or None: with the
    access log off the core does no work for it at all."""
    if not (config.access_log and access_logger.isEnabledFor(logging.INFO)):
        return None
    formatter: AccessLogFormat | None = config.access_log_formatter
    if formatter is None:
        return _log_access
    info = access_logger.info
    fmt = formatter.format

    def log_access(scope: dict[str, Any], status: int, size: int, seconds: float) -> None:
        info(fmt(scope, status, size, seconds))

    return log_access


def _task_factory(loop: asyncio.AbstractEventLoop) -> tuple[Any, dict[str, Any] | None]:
    """Eager tasks on 3.12+: an app that never suspends costs no loop iteration."""
    if sys.version_info >= (3, 12):
        return asyncio.Task, {"loop": loop, "eager_start": True}
    return loop.create_task, None


def make_server_state(
    config: Config, loop: asyncio.AbstractEventLoop, app: Any, lifespan_state: dict[str, Any]
) -> _core.ServerState:
    """The protocol factory for loop.create_server: one per running server."""
    factory, task_kwargs = _task_factory(loop)
    proxy = ProxyHeaders(config.trusted_hosts) if config.proxy_headers else None
    websocket = None
    if config.websocket_implementation() is not None:
        from carpinus.protocols.websocket_handler import WebSocketHandler

        websocket = WebSocketHandler(config, loop, app)
    state = _core.ServerState(
        app,
        loop,
        report_exception,
        factory,
        task_kwargs,
        logger.error,
        root_path=config.root_path,
        lifespan_state=lifespan_state,
        access_log=_access_log_callable(config),
        server_header=config.server_header,
        date_header=config.date_header,
        limit_request_line=config.limit_request_line,
        limit_request_headers=config.limit_request_headers,
        limit_request_header_size=config.limit_request_header_size,
        limit_request_body=config.limit_request_body,
        limit_concurrency=config.limit_concurrency,
        timeout_keep_alive=float(config.timeout_keep_alive),
        timeout_request_header=float(config.timeout_request_header),
        timeout_request_body=float(config.timeout_request_body),
        use_writelines=type(loop).__module__.startswith("uvloop"),
        optimizations=optimization_bits(config.optimizations),
        zero_copy_threshold=config.zero_copy_threshold,
        lazy_headers_min=config.lazy_headers_min,
        scope_cache_size=config.scope_cache_size,
        default_headers=config.encoded_headers,
        proxy_fixup=proxy.fixup if proxy is not None else None,
        proxy_trust=proxy.trust_callable if proxy is not None else None,
        websocket=websocket,
    )
    if websocket is not None:
        websocket.server_state = state
    return state
