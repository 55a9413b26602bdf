"""A real ServerState on the running loop, its connections over the shared
fake transport (fake_transport.py), and its deadline clock in the test's hand.

    async def test(loop):
        srv = FakeServer(loop, app, timeout_request_body=1.0)
        c = srv.connect()
        c.send(build_request("POST", "/", [("Content-Length", "100")]) + b"x" * 10)
        await settle()
        await srv.advance(1.0 - JUST)   # a moment before the deadline: nothing
        assert not c.closed
        await srv.advance(JUST)         # at the deadline: 408 and a close
        assert c.out.startswith(b"HTTP/1.1 408 ")
    run(test)

The server state is made as the server makes it (Config ->
carpinus.protocols.http.core.make_server_state), with the optimization switches
of the suite's leg (CARPINUS_TEST_OPTIMIZATIONS).  The protocol, the request
cycle, the app's receive()/send(), the Python glue and the event loop are the
real ones; only the socket is fake, and time moves only when the test says.

The C core's deadlines (keep-alive, request head, request body silence, the
head grace at shutdown) are read from the server's own clock and checked by
ServerState.tick(), which a running Server calls every TICK_INTERVAL.  Here
nothing calls tick() but advance(): FakeServer freezes the clock
(ServerState._freeze_clock) when it is made, so a deadline falls exactly
where the test moved the clock to -- "just before" and "at" the deadline are
exact, not a race with the machine's load.  The WebSocket ping timers are
not on this clock (they are loop.call_later timers of the Python handler).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from carpinus.config import Config
from carpinus.protocols.http.core import make_server_state
from tests.support.fake_transport import FakeTransport
from tests.support.servers import apply_optimizations_leg

# A moment: about a millisecond, and a power of two, so that a clock moved
# by (timeout - JUST) and then by JUST lands exactly on the deadline (the
# frozen clock reads a whole number of seconds; sums of binary fractions of
# it are exact).
JUST = 2.0 ** -10


def make_state(loop: asyncio.AbstractEventLoop, app: Any, **options: Any) -> Any:
    """The ServerState the server would make for `app` with these Config
    options (no access log, no logging set-up, the leg's optimizations)."""
    options.setdefault("access_log", False)
    options.setdefault("configure_logging", False)
    apply_optimizations_leg(options)
    config = Config(app, **options)
    return make_server_state(config, loop, app, {})


class Conn:
    """One connection of a real ServerState, over a FakeTransport."""

    def __init__(self, state: Any, loop: asyncio.AbstractEventLoop, **transport: Any) -> None:
        self.state = state
        self.protocol = state()
        self.transport = FakeTransport(loop, self.protocol, **transport)
        self.protocol.connection_made(self.transport)

    def send(self, data: bytes, limit: int | None = None) -> None:
        """The client sends data and the server reads it (one read)."""
        self.transport.queue(data)
        self.transport.read(limit)

    @property
    def out(self) -> bytes:
        """Everything the server wrote."""
        return bytes(self.transport.out)

    @property
    def closed(self) -> bool:
        """The server closed the connection (or the transport closed)."""
        return self.transport.closed

    def responses(self) -> list[bytes]:
        return [b"HTTP/1.1 " + r for r in self.out.split(b"HTTP/1.1 ")[1:]]


class FakeServer:
    """A ServerState (see make_state) whose deadline clock only advance() moves."""

    def __init__(self, loop: asyncio.AbstractEventLoop, app: Any, **options: Any) -> None:
        self.loop = loop
        self.state = make_state(loop, app, **options)
        self.state._freeze_clock()

    def connect(self, **transport: Any) -> Conn:
        """A client connects (FakeTransport switches as keywords)."""
        return Conn(self.state, self.loop, **transport)

    async def advance(self, seconds: float, loop_iterations: int = 20) -> None:
        """Time passes: move the server's clock on, run one tick (the deadlines
        due by now fire), then let the loop run what that scheduled
        (connection_lost, the app hearing http.disconnect)."""
        self.state._advance_clock(seconds)
        self.state.tick()
        await settle(loop_iterations)

    def stats(self) -> dict[str, int]:
        return dict(self.state.stats())


async def settle(loop_iterations: int = 20) -> None:
    """Let the loop run a few iterations (the apps, connection_lost ...)."""
    for _ in range(loop_iterations):
        await asyncio.sleep(0)


def run(test: Callable[[asyncio.AbstractEventLoop], Awaitable[None]]) -> None:
    """Run test(loop) on a fresh event loop."""
    async def main() -> None:
        await test(asyncio.get_running_loop())

    asyncio.run(main())
