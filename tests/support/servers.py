"""The server the behavioural tests talk to: carpinus in a thread of the test
process, on 127.0.0.1 and a free port (run_server; the `serve` fixture).

In the TLS leg (tests/support/tls_leg.py) it serves HTTPS with the session's
certificate and its handle gives clients that trust it; a test reads
`handle.scheme` where the scheme matters.  With CARPINUS_TEST_OPTIMIZATIONS
set it runs with every optimization off (or all of them on).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import os
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from carpinus.config import Config
from carpinus.optimizations import OPTIMIZATIONS
from carpinus.server import Server
from tests.support import tls_leg
from tests.support.clients import IO_TIMEOUT, RawClient, http_client

if TYPE_CHECKING:
    import httpx

START_TIMEOUT = 10.0

# uvloop and the stdlib loop use different transports: the C protocol must
# behave the same on both.  CARPINUS_TEST_LOOPS narrows the list (the
# valgrind run keeps asyncio only); tests/conftest.py turns it into the
# loop_name and module_loop_name fixtures.
LOOPS = tuple(os.environ.get("CARPINUS_TEST_LOOPS", "asyncio,uvloop").split(","))


@dataclass
class ServerHandle:
    server: Server
    host: str
    port: int
    # The client side of the TLS leg's certificate when run_server made this
    # server TLS; None when it serves plain HTTP (or the test set TLS up itself).
    tls: ssl.SSLContext | None = None

    @property
    def scheme(self) -> str:
        return "https" if self.tls else "http"

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}"

    @property
    def state(self) -> Any:
        return self.server.state

    def connect(self, timeout: float = IO_TIMEOUT) -> RawClient:
        return RawClient(self.host, self.port, timeout, tls=self.tls)

    def http_client(self, **options: Any) -> httpx.Client:
        """An httpx client with base_url set to this server (over its Unix socket
        when it listens on one), trusting the TLS leg's CA."""
        return http_client(self.url, self.tls, uds=self.server.config.uds, **options)

    def get(self, path: str, **options: Any) -> httpx.Response:
        """One GET with a client of its own."""
        with self.http_client() as client:
            return client.get(path, **options)


def stats_on_their_loops(server: Server) -> list[dict[str, Any]]:
    """Every serving loop's ServerState.stats(), each read on the loop it
    belongs to, while they serve.  A ServerState is its loop thread's: read
    from the test's thread meanwhile, its counters race with the loop's
    writes (`make test-tsan` reports it).  Once the loops have stopped and
    their threads are joined, reading them directly is fine."""
    def read(state: Any, into: concurrent.futures.Future[dict[str, Any]]) -> None:
        try:
            into.set_result(state.stats())
        except BaseException as exc:  # handed to the test's thread
            into.set_exception(exc)

    futures = []
    for serving in server.servings:
        assert serving.loop is not None
        future: concurrent.futures.Future[dict[str, Any]] = concurrent.futures.Future()
        serving.loop.call_soon_threadsafe(read, serving.state, future)
        futures.append(future)
    return [future.result(timeout=IO_TIMEOUT) for future in futures]


def apply_optimizations_leg(options: dict[str, Any]) -> None:
    """The optimization legs of `make test`: CARPINUS_TEST_OPTIMIZATIONS=off
    runs the behavioural suite with every marshalling optimization switched
    off, =all with every one on -- lazy_headers, off by default, included,
    and for every request that has a header (lazy_headers_min 1, not 4), so
    that its C code serves every request of the suite.  A test that chose
    its own switches keeps them.  Every server a test makes in-process goes
    through here: run_server, and tests/support/fake_server.py."""
    mode = os.environ.get("CARPINUS_TEST_OPTIMIZATIONS")
    if not mode:
        return
    if mode not in ("off", "all"):
        raise ValueError(f"CARPINUS_TEST_OPTIMIZATIONS={mode!r}: expected 'off' or 'all'")
    if "optimizations" not in options:
        options["optimizations"] = dict.fromkeys(OPTIMIZATIONS, mode == "all")
        if mode == "all":
            options.setdefault("lazy_headers_min", 1)


@contextlib.contextmanager
def run_server(app: Any, **options: Any) -> Iterator[ServerHandle]:
    """Start carpinus on 127.0.0.1 and a free port, in a thread; stop it after."""
    options.setdefault("port", 0)
    options.setdefault("access_log", False)
    options.setdefault("lifespan", "off")
    options.setdefault("configure_logging", False)  # let pytest's caplog see records
    options.setdefault("gc_freeze", False)  # the test process starts many servers
    apply_optimizations_leg(options)
    # The TLS leg: HTTPS with the session's certificate, unless the test set
    # TLS up itself.
    leg = tls_leg.leg_certificates()
    if leg is not None and "ssl_certfile" not in options:
        options["ssl_certfile"], options["ssl_keyfile"] = leg.certfile, leg.keyfile
    else:
        leg = None
    config = Config(app, **options)
    server = Server(config)
    errors: list[BaseException] = []

    def target() -> None:
        try:
            server.run()
        except BaseException as exc:  # pragma: no cover - surfaced below
            errors.append(exc)

    thread = threading.Thread(target=target, name="carpinus-test-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + START_TIMEOUT
    while not server.started:
        if errors or not thread.is_alive():
            raise RuntimeError(f"server failed to start: {errors or server.exit_code}")
        if time.monotonic() > deadline:
            raise RuntimeError("server did not start in time")
        time.sleep(0.005)
    try:
        yield ServerHandle(server, "127.0.0.1", server.port,
                           leg.client_context if leg is not None else None)
    finally:
        server.should_exit = True
        thread.join(START_TIMEOUT)
        if thread.is_alive():  # pragma: no cover
            server.force_exit = True
            thread.join(START_TIMEOUT)
        if errors:
            raise errors[0]
