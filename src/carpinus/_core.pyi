"""Typed stubs for the C core, carpinus._core."""

import asyncio
import contextvars
from collections.abc import Awaitable, Callable, Iterable, MutableSequence, Sequence
from typing import Any, overload

OPT_ZERO_COPY_BODY: int
OPT_DIRECT_RESPONSE: int
OPT_SCOPE_CACHE: int
OPT_HEADER_NAMES: int
OPT_LAZY_HEADERS: int
OPT_STATUS_CACHE: int
OPT_DEFAULT: int
ZERO_COPY_MAX: int
ZERO_COPY_BUDGET: int

class LazyHeaders(MutableSequence[tuple[bytes, bytes]]):
    """scope["headers"] with lazy_headers on: a list of (name, value) built on use."""

    @overload
    def __getitem__(self, index: int) -> tuple[bytes, bytes]: ...
    @overload
    def __getitem__(self, index: slice) -> list[tuple[bytes, bytes]]: ...
    @overload
    def __setitem__(self, index: int, value: tuple[bytes, bytes]) -> None: ...
    @overload
    def __setitem__(self, index: slice, value: Iterable[tuple[bytes, bytes]]) -> None: ...
    def __delitem__(self, index: int | slice) -> None: ...
    def __len__(self) -> int: ...
    def insert(self, index: int, value: tuple[bytes, bytes]) -> None: ...
    @property
    def _materialized(self) -> bool: ...
    @property
    def _built(self) -> int: ...

def tune_allocator(trim_threshold: int, mmap_threshold: int) -> bool: ...
def default_headers(
    pairs: Sequence[tuple[bytes, bytes]] | None, server_header: bool
) -> tuple[bytes | None, bytes | None]: ...

class ClientDisconnected(OSError):
    """Raised by send() when the client has gone away (ASGI spec 2.4)."""

class ServerState:
    def __init__(
        self,
        app: Callable[..., Awaitable[None]],
        loop: asyncio.AbstractEventLoop,
        report_exception: Callable[[BaseException, dict[str, Any], bool], object],
        task_factory: Callable[..., asyncio.Task[None]],
        task_kwargs: dict[str, Any] | None,
        log_error: Callable[[str], object],
        *,
        root_path: str = "",
        lifespan_state: dict[str, Any] | None = None,
        access_log: Callable[[dict[str, Any], int, int, float], object] | None = None,
        server_header: bool = True,
        date_header: bool = True,
        limit_request_line: int | None = 8190,
        limit_request_headers: int | None = 100,
        limit_request_header_size: int | None = 8190,
        limit_request_head: int | None = 65536,
        limit_request_body: int | None = None,
        limit_concurrency: int | None = None,
        timeout_keep_alive: float = 5.0,
        timeout_request_header: float = 10.0,
        timeout_request_body: float = 60.0,
        use_writelines: bool = False,
        optimizations: int = ...,
        zero_copy_threshold: int = 16384,
        lazy_headers_min: int = 4,
        scope_cache_size: int = 64,
        default_headers: Sequence[tuple[bytes, bytes]] | None = None,
        proxy_fixup: Callable[[dict[str, Any]], object] | None = None,
        proxy_trust: Callable[[Any], bool] | None = None,
        websocket: Callable[[asyncio.Transport, dict[str, Any], bytes], object] | None = None,
        base_context: contextvars.Context | None = None,
        context_kwarg: bool = False,
        report_refusal: Callable[[int, str, Any, Any], object] | None = None,
    ) -> None: ...
    def __call__(self) -> HttpProtocol: ...
    def tick(self) -> None: ...
    def shutdown(self) -> None: ...
    def close_all(self) -> None: ...
    def busy_connections(self) -> int: ...
    def _advance_clock(self, seconds: float) -> None: ...
    def _freeze_clock(self) -> None: ...
    def stats(self) -> dict[str, int]: ...
    @property
    def connections(self) -> int: ...
    @property
    def active_requests(self) -> int: ...
    @property
    def tasks(self) -> frozenset[asyncio.Task[None]]: ...
    @property
    def shutting_down(self) -> bool: ...
    @property
    def websocket(self) -> Callable[[asyncio.Transport, dict[str, Any], bytes], object] | None: ...

class HttpProtocol(asyncio.BufferedProtocol):
    @property
    def state(self) -> str: ...
    @property
    def buffer_capacity(self) -> int: ...
    def _process_pending(self) -> None: ...

class RequestCycle:
    async def receive(self) -> dict[str, Any]: ...
    async def send(self, message: dict[str, Any]) -> None: ...
    @property
    def disconnected(self) -> bool: ...
