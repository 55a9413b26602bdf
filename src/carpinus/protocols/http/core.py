"""Glue between the asyncio server and the C HTTP protocol (carpinus._core)."""

from __future__ import annotations

import asyncio
import collections.abc
import contextvars
import logging
import sys
import time
from collections.abc import Mapping
from typing import Any

from carpinus import _core
from carpinus.access_log import LogAccess, client_address, make_access_log
from carpinus.config import Config
from carpinus.logging import ERROR_LOGGER
from carpinus.options import core_kwargs
from carpinus.protocols.http.pathsend import send_path
from carpinus.proxy_headers import ProxyHeaders
from carpinus.tls_extension import TLSExtensions

logger = logging.getLogger(ERROR_LOGGER)

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


def _task_factory(
    loop: asyncio.AbstractEventLoop,
) -> tuple[Any, dict[str, Any] | None, bool, bool]:
    """How the core makes each request's Task: (factory, its keyword arguments,
    whether it takes context=, whether the core should give it name=).  The
    core gives every Task its own copy of the server's base context, as a
    context= argument where the factory takes one, else by entering the copy
    around the call.  It names the Task itself only where that is cheaper than
    the Task's own default name (3.11; the `task_names` switch).

    A task factory the loop already has when the server starts (OpenTelemetry,
    aiomonitor, asyncio.eager_task_factory) is honoured on every version; it
    need not take context=.  Otherwise: eager tasks on 3.12+, so that an app
    that never suspends costs no loop iteration."""
    if loop.get_task_factory() is not None:
        return loop.create_task, None, False, False
    if sys.version_info >= (3, 12):
        # (3.12+ Tasks format their default name only when asked for it)
        return asyncio.Task, {"loop": loop, "eager_start": True}, True, False
    if sys.version_info >= (3, 11):
        # what loop.create_task does, without its call: asyncio's is Python
        # code, uvloop's a method call; both only add a closed-loop check
        return asyncio.Task, {"loop": loop}, True, True
    return loop.create_task, None, False, False


# A client that sends garbage can send a lot of it: at most this many
# refusals are logged per second, and the next line says how many were not.
REFUSALS_LOGGED_PER_SECOND = 10


class RefusalLog:
    """Log the responses the server makes itself (400, 408, 413, 431, 503 ...)
    and write their access lines; called by the C core for each one."""

    def __init__(self, access: LogAccess | None) -> None:
        self.access = access
        self.window = 0
        self.logged = 0
        self.suppressed = 0

    def __call__(self, status: int, reason: str, client: Any, request: Any) -> None:
        who = client_address(client)
        if status == 408:
            logger.debug("Request from %s timed out: %s", who, reason)
        else:
            now = int(time.monotonic())
            if now != self.window:
                self.window, self.logged = now, 0
            if self.logged < REFUSALS_LOGGED_PER_SECOND:
                self.logged += 1
                more = (f" ({self.suppressed} more refused since, not logged)"
                        if self.suppressed else "")
                self.suppressed = 0
                if status == 503:
                    logger.warning("Exceeded concurrency limit: %s answered 503%s", who, more)
                elif status == 500:  # the exception itself went to sys.unraisablehook
                    logger.error("Internal error while serving %s (answered 500)%s", who, more)
                else:
                    logger.warning("Invalid HTTP request from %s: %s (answered %d)%s",
                                   who, reason, status, more)
            else:
                self.suppressed += 1
        if self.access is not None:
            self.access(_request_scope(request, client), status, 0, 0.0)


def _request_scope(request: Any, client: Any) -> dict[str, Any]:
    """The scope of a refused request, or what the access log needs of one."""
    if isinstance(request, dict):
        return request
    scope: dict[str, Any] = {"type": "http", "client": client, "method": "-",
                             "raw_path": b"-", "query_string": b"", "http_version": "1.1",
                             "headers": []}
    if request is not None:
        method, target, version = request
        path, _, query = target.partition(b"?")
        scope.update(method=method, raw_path=path, query_string=query, http_version=version)
    return scope


class NoSettings(dict[str, Any]):
    """The value of an extension that has no settings: an empty dict (so
    isinstance, ==, json.dumps treat it as one) that refuses to change, which
    lets one object be shared by every scope."""

    def _refuse(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError("this extension's settings are read-only")

    __setitem__ = __delitem__ = __ior__ = _refuse
    update = setdefault = pop = popitem = clear = _refuse


# The ASGI extensions every request is offered (scope["extensions"]).  The
# core copies this dict into each scope without copying its values, which
# cannot change: nothing an app could change is shared between requests.
SERVER_EXTENSIONS: dict[str, Mapping[str, Any]] = {
    "http.response.pathsend": NoSettings(),
    "http.response.early_hint": NoSettings(),
}


def make_server_state(
    config: Config, loop: asyncio.AbstractEventLoop, app: Any, lifespan_state: dict[str, Any]
) -> _core.ServerState:
    """The protocol factory for loop.create_server: one per running server."""
    factory, task_kwargs, context_kwarg, task_name_kwarg = _task_factory(loop)
    proxy = (ProxyHeaders(config.trusted_hosts, host=config.forwarded_host)
             if config.proxy_headers else None)
    # Every request (and WebSocket) task starts from a copy of this context,
    # never from the context of whatever code started it: context variables
    # set while handling one request do not leak into the next.
    base_context = contextvars.copy_context()
    websocket = None
    if config.websocket_implementation() is not None:
        from carpinus.protocols.websocket.handler import WebSocketHandler

        websocket = WebSocketHandler(config, loop, app, base_context)
    access_log = make_access_log(config.access_log, config.access_log_formatter)
    tls = TLSExtensions(config.ssl, config.ssl_certfile) if config.ssl is not None else None
    state = _core.ServerState(
        app,
        loop,
        report_exception,
        factory,
        task_kwargs,
        logger.error,
        lifespan_state=lifespan_state,
        access_log=access_log,
        use_writelines=type(loop).__module__.startswith("uvloop"),
        default_headers=config.encoded_headers,
        proxy_fixup=proxy.fixup if proxy is not None else None,
        proxy_trust=proxy.trust_callable if proxy is not None else None,
        websocket=websocket,
        base_context=base_context,
        context_kwarg=context_kwarg,
        task_name_kwarg=task_name_kwarg,
        report_refusal=RefusalLog(access_log),
        tls_extensions=tls,
        metrics=config.metrics_bind is not None,
        pathsend=send_path if config.response_extensions else None,
        extensions=SERVER_EXTENSIONS if config.response_extensions else None,
        # every option of the table the core reads (carpinus.options, core=)
        **core_kwargs(config),
    )
    if websocket is not None:
        websocket.server_state = state
    return state
