"""The fake transport itself (tests/support/fake_transport.py): each switch
does what the real transport it imitates does, seen from a recording
protocol."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from tests.support.fake_transport import Canceller, FakeTransport


class Recorder(asyncio.BufferedProtocol):
    """Records every call; `during` names what the test is doing right now,
    so that a call made from inside close() or write() shows as such."""

    def __init__(self, buffer_size: int = 64) -> None:
        self.buf = bytearray(buffer_size)
        self.received = bytearray()
        self.calls: list[tuple[Any, ...]] = []
        self.during = ""
        self.keep_open = False
        self.transport: FakeTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, FakeTransport)
        self.transport = transport

    def get_buffer(self, sizehint: int) -> Any:
        self.calls.append(("get_buffer", sizehint, self.during))
        return self.buf

    def buffer_updated(self, nbytes: int) -> None:
        self.calls.append(("buffer_updated", nbytes, self.during))
        self.received += self.buf[:nbytes]

    def data_received(self, data: bytes) -> None:
        self.calls.append(("data_received", len(data), self.during))
        self.received += data

    def eof_received(self) -> bool:
        self.calls.append(("eof_received", self.during))
        return self.keep_open

    def connection_lost(self, exc: Exception | None) -> None:
        self.calls.append(("connection_lost", exc, self.during))

    def pause_writing(self) -> None:
        self.calls.append(("pause_writing", self.during))

    def resume_writing(self) -> None:
        self.calls.append(("resume_writing", self.during))

    def names(self) -> list[str]:
        return [c[0] for c in self.calls]


def run(body: Callable[[asyncio.AbstractEventLoop], Awaitable[None]]) -> None:
    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(body(loop))
    finally:
        loop.close()


async def iterations(n: int = 3) -> None:
    for _ in range(n):
        await asyncio.sleep(0)


def make(loop: asyncio.AbstractEventLoop, proto: Any | None = None,
         **switches: Any) -> tuple[Recorder, FakeTransport]:
    p = proto if proto is not None else Recorder()
    t = FakeTransport(loop, p, **switches)
    p.connection_made(t)
    return p, t


# ---------------------------------------------------------------------------
# Reads
# ---------------------------------------------------------------------------


def test_read_delivers_queued_bytes_through_get_buffer() -> None:
    async def body(loop: asyncio.AbstractEventLoop) -> None:
        p, t = make(loop)
        t.queue(b"hello world")
        assert t.read(5) == 5
        assert t.read() == 6
        assert t.read() == 0  # nothing left
        assert bytes(p.received) == b"hello world"
        assert p.calls[0] == ("get_buffer", -1, "")  # the selector transport's hint
        assert p.names() == ["get_buffer", "buffer_updated"] * 2
        assert t.delivered == 11
    run(body)


def test_read_is_limited_by_the_protocols_buffer() -> None:
    async def body(loop: asyncio.AbstractEventLoop) -> None:
        p, t = make(loop, Recorder(buffer_size=4))
        t.queue(b"abcdefghij")
        assert t.read() == 4
        assert bytes(t.pending) == b"efghij"
    run(body)


def test_data_received_without_buffered_protocol() -> None:
    async def body(loop: asyncio.AbstractEventLoop) -> None:
        p, t = make(loop, buffered=False)
        t.queue(b"abc")
        assert t.read() == 3
        assert p.calls == [("data_received", 3, "")]
    run(body)


def test_no_read_while_paused_or_after_close() -> None:
    async def body(loop: asyncio.AbstractEventLoop) -> None:
        p, t = make(loop)
        t.queue(b"abc")
        t.pause_reading()
        assert not t.is_reading()
        assert t.read() == 0
        t.resume_reading()
        t.close()
        assert t.read() == 0
        assert p.received == b""
        assert not t.violations
    run(body)


def test_pausing_twice_is_recorded() -> None:
    async def body(loop: asyncio.AbstractEventLoop) -> None:
        p, t = make(loop)
        t.pause_reading()
        t.pause_reading()
        t.resume_reading()
        t.resume_reading()
        assert [v.message for v in t.violations] == [
            "pause_reading() while reading is paused",
            "resume_reading() while reading is not paused"]
    run(body)


@pytest.mark.parametrize("bad", ["raises", "empty", "read_only"])
def test_a_bad_buffer_is_a_fatal_error(bad: str) -> None:
    class Bad(Recorder):
        def get_buffer(self, sizehint: int) -> Any:
            if bad == "raises":
                raise ValueError("no buffer")
            return bytearray() if bad == "empty" else b"read-only"

    async def body(loop: asyncio.AbstractEventLoop) -> None:
        p, t = make(loop, Bad())
        t.queue(b"abc")
        assert t.read() == 0
        assert t.violations and t.violations[0].message.startswith("Fatal")
        assert t.is_closing()
        await iterations()
        assert p.names()[-1] == "connection_lost"  # aborted, as the loop does
    run(body)


def test_an_exception_from_buffer_updated_is_recorded_not_raised() -> None:
    class Raising(Recorder):
        def buffer_updated(self, nbytes: int) -> None:
            raise RuntimeError("boom")

    async def body(loop: asyncio.AbstractEventLoop) -> None:
        p, t = make(loop, Raising())
        t.queue(b"abc")
        t.read()
        assert isinstance(t.violations[0].exc, RuntimeError)
        assert t.is_closing()
    run(body)


# ---------------------------------------------------------------------------
# Close and EOF
# ---------------------------------------------------------------------------


def test_close_then_connection_lost_on_a_later_iteration() -> None:
    async def body(loop: asyncio.AbstractEventLoop) -> None:
        p, t = make(loop)
        t.queue(b"not read")
        p.during = "close"
        t.close()
        p.during = ""
        assert t.is_closing() and t.server_closed and not t.lost
        assert p.calls == []  # a socket transport does not read in close()
        await iterations()
        assert p.calls == [("connection_lost", None, "")]
    run(body)


def test_writes_after_close_are_dropped_and_recorded() -> None:
    async def body(loop: asyncio.AbstractEventLoop) -> None:
        p, t = make(loop)
        t.write(b"before")
        t.close()
        t.write(b"after")
        assert t.out == b"before"
        assert [v.message for v in t.violations] == ["write() after close (protocol): b'after'"]
    run(body)


def test_writes_between_a_client_reset_and_connection_lost_are_dropped_silently() -> None:
    async def body(loop: asyncio.AbstractEventLoop) -> None:
        p, t = make(loop)
        t.client_reset()
        t.write(b"not yet told")
        assert t.out == b"" and t.writes_dropped == 1 and not t.violations
        await iterations()
        t.write(b"told")
        assert [v.message for v in t.violations] == ["write() after close (reset): b'told'"]
    run(body)


@pytest.mark.parametrize("keep_open", [False, True])
def test_client_eof(keep_open: bool) -> None:
    async def body(loop: asyncio.AbstractEventLoop) -> None:
        p, t = make(loop)
        p.keep_open = keep_open
        t.client_eof()
        await iterations()
        assert p.names()[0] == "eof_received"
        assert t.is_closing() is not keep_open
        assert ("connection_lost" in p.names()) is not keep_open
        assert not t.violations
    run(body)


def test_client_reset() -> None:
    async def body(loop: asyncio.AbstractEventLoop) -> None:
        p, t = make(loop)
        t.client_reset()
        assert t.is_closing() and not t.lost
        await iterations()
        (name, exc, _), = p.calls
        assert name == "connection_lost" and isinstance(exc, ConnectionResetError)
    run(body)


# ---------------------------------------------------------------------------
# Write flow control
# ---------------------------------------------------------------------------


def test_high_water_pauses_inside_write_and_drain_resumes() -> None:
    async def body(loop: asyncio.AbstractEventLoop) -> None:
        p, t = make(loop, write_high_water=4)
        p.during = "write"
        t.write(b"12345")
        p.during = ""
        assert p.calls == [("pause_writing", "write")]
        assert t.writing_paused and t.get_write_buffer_size() == 5
        t.drain()
        assert p.calls[-1] == ("resume_writing", "")
        assert t.get_write_buffer_size() == 0
    run(body)


def test_flush_in_write_pauses_and_resumes_inside_one_write() -> None:
    async def body(loop: asyncio.AbstractEventLoop) -> None:
        p, t = make(loop, write_high_water=4, flush_in_write=True)
        p.during = "write"
        t.write(b"12345")
        assert p.calls == [("pause_writing", "write"), ("resume_writing", "write")]
        assert not t.writing_paused
        # paused from outside, the next write flushes and resumes from inside
        p.during = ""
        t.stall()
        p.during = "write"
        t.write(b"x")
        assert p.calls[-2:] == [("pause_writing", ""), ("resume_writing", "write")]
        assert t.out == b"12345x"
    run(body)


def test_stall_pauses_writing_now() -> None:
    async def body(loop: asyncio.AbstractEventLoop) -> None:
        p, t = make(loop)
        t.stall()
        assert p.calls == [("pause_writing", "")] and t.writing_paused
    run(body)


def test_write_error_oserror_closes_and_raises() -> None:
    async def body(loop: asyncio.AbstractEventLoop) -> None:
        exc = ConnectionResetError("reset")
        p, t = make(loop, write_error=exc, write_error_at=2)
        t.write(b"one")
        with pytest.raises(ConnectionResetError):
            t.write(b"two")
        assert t.write_error_raised and t.is_closing()
        assert t.out == b"one"
        t.write(b"three")  # the protocol was told: uvloop raises, here a violation
        assert t.violations[0].message == "write() after close (fatal): b'three'"
        await iterations()
        assert p.calls == [("connection_lost", exc, "")]
    run(body)


def test_write_error_other_exception_leaves_the_transport_open() -> None:
    async def body(loop: asyncio.AbstractEventLoop) -> None:
        p, t = make(loop, write_error=RuntimeError("sendfile is in progress"),
                    write_error_at=1)
        with pytest.raises(RuntimeError):
            t.write(b"one")
        t.write(b"two")  # the next write goes through
        assert t.out == b"two" and not t.is_closing() and not t.violations
    run(body)


def test_writelines_is_one_write() -> None:
    async def body(loop: asyncio.AbstractEventLoop) -> None:
        p, t = make(loop)
        t.writelines([b"a", bytearray(b"b"), memoryview(b"c")])
        assert t.out == b"abc" and t.write_calls == 1
    run(body)


# ---------------------------------------------------------------------------
# TLS (asyncio/sslproto.py)
# ---------------------------------------------------------------------------


def test_tls_reports_an_sslcontext() -> None:
    async def body(loop: asyncio.AbstractEventLoop) -> None:
        _, plain = make(loop)
        _, tls = make(loop, tls=True)
        assert plain.get_extra_info("sslcontext") is None
        assert isinstance(tls.get_extra_info("sslcontext"), ssl.SSLContext)
        assert tls.get_extra_info("peername") == ("127.0.0.1", 40000)
    run(body)


def test_tls_close_calls_get_buffer_and_buffer_updated_before_it_returns() -> None:
    async def body(loop: asyncio.AbstractEventLoop) -> None:
        p, t = make(loop, tls=True)
        t.queue(b"pipelined")
        p.during = "close"
        t.close()
        p.during = ""
        # the hint is what the transport holds (sslproto: _incoming.pending)
        assert p.calls == [("get_buffer", 9, "close"), ("buffer_updated", 9, "close")]
        assert p.received == b"pipelined"
        assert t.is_closing()
        await iterations()
        # the peer answers close_notify: eof_received() after close(), then the end
        assert p.calls[2:] == [("eof_received", ""), ("connection_lost", None, "")]
        assert not t.violations
    run(body)


def test_tls_close_asks_for_a_buffer_even_with_nothing_pending() -> None:
    async def body(loop: asyncio.AbstractEventLoop) -> None:
        p, t = make(loop, tls=True)
        p.during = "close"
        t.close()
        assert p.calls == [("get_buffer", 0, "close")]
    run(body)


def test_tls_close_reads_with_data_received_too() -> None:
    async def body(loop: asyncio.AbstractEventLoop) -> None:
        p, t = make(loop, tls=True, buffered=False)
        t.queue(b"abc")
        p.during = "close"
        t.close()
        assert p.calls == [("data_received", 3, "close")]
    run(body)


def test_tls_close_skips_the_read_while_reading_is_paused() -> None:
    async def body(loop: asyncio.AbstractEventLoop) -> None:
        p, t = make(loop, tls=True)
        t.queue(b"abc")
        t.pause_reading()
        t.close()
        assert p.calls == []
    run(body)


class NegativeView:
    """What get_buffer() returned in review finding B1: len() fails."""

    def __len__(self) -> int:
        raise SystemError("<built-in function len> returned NULL without setting an exception")


@pytest.mark.parametrize("bad", ["negative", "raises", "empty"])
def test_tls_a_bad_buffer_in_close_is_a_fatal_error_on_ssl_protocol(bad: str) -> None:
    class Bad(Recorder):
        def get_buffer(self, sizehint: int) -> Any:
            super().get_buffer(sizehint)
            if bad == "raises":
                raise MemoryError
            return NegativeView() if bad == "negative" else bytearray()

    async def body(loop: asyncio.AbstractEventLoop) -> None:
        p, t = make(loop, Bad(), tls=True)
        t.queue(b"abc")
        t.close()  # does not raise: sslproto reports and aborts
        assert p.names() == ["get_buffer"]
        (violation,) = t.violations
        assert violation.message == "Fatal error on SSL protocol"
        await iterations()
        assert p.calls[-1][:2] == ("connection_lost", violation.exc)
    run(body)


def test_tls_close_notify_from_the_client() -> None:
    async def body(loop: asyncio.AbstractEventLoop) -> None:
        p, t = make(loop, tls=True)
        p.keep_open = True  # sslproto ignores it, with a warning
        t.client_eof()
        assert p.names() == ["eof_received", "get_buffer"]  # then the shutdown reads
        assert t.is_closing()
        assert [v.message for v in t.violations] == [
            "returning true from eof_received() has no effect when using ssl "
            "(sslproto logs a warning)"]
        await iterations()
        assert p.names()[-1] == "connection_lost"
        assert p.names().count("eof_received") == 1
    run(body)


# ---------------------------------------------------------------------------
# Cancellation from outside
# ---------------------------------------------------------------------------


async def waiting_task(loop: asyncio.AbstractEventLoop,
                       ) -> tuple[asyncio.Task[str], asyncio.Future[None]]:
    fut: asyncio.Future[None] = loop.create_future()

    async def waiter() -> str:
        try:
            await fut
        except asyncio.CancelledError:
            return "cancelled"
        return "done"

    task = loop.create_task(waiter())
    await iterations(1)
    return task, fut


def test_cancel_task() -> None:
    async def body(loop: asyncio.AbstractEventLoop) -> None:
        task, fut = await waiting_task(loop)
        c = Canceller(task, "task")
        c.fire()
        assert await task == "cancelled"
        assert fut.cancelled() and c.fired == 1
    run(body)


def test_cancel_waiter_cancels_the_awaited_future_not_the_task() -> None:
    async def body(loop: asyncio.AbstractEventLoop) -> None:
        task, fut = await waiting_task(loop)
        Canceller(task, "waiter").fire()
        assert fut.cancelled()
        assert await task == "cancelled"
        if hasattr(task, "cancelling"):
            assert task.cancelling() == 0
    run(body)


def test_cancel_scope_cancels_again_until_stopped() -> None:
    async def body(loop: asyncio.AbstractEventLoop) -> None:
        seen: list[str] = []
        futs = [loop.create_future() for _ in range(3)]

        async def stubborn() -> None:
            for fut in futs:
                try:
                    await fut
                except asyncio.CancelledError:
                    seen.append("cancelled")

        task = loop.create_task(stubborn())
        await iterations(1)
        c = Canceller(task, "scope")
        c.fire()
        await iterations(3)
        assert seen == ["cancelled"] * 3 and task.done()
        assert c.fired >= 3

        seen.clear()
        futs[:] = [loop.create_future() for _ in range(2)]
        task = loop.create_task(stubborn())
        await iterations(1)
        c = Canceller(task, "scope")
        c.fire()
        c.stop()  # the app left the scope before the next iteration
        await iterations(3)
        assert seen == ["cancelled"] and not task.done()
        futs[1].set_result(None)
        await task
    run(body)


def test_canceller_rejects_an_unknown_mode() -> None:
    async def body(loop: asyncio.AbstractEventLoop) -> None:
        task, fut = await waiting_task(loop)
        with pytest.raises(ValueError):
            Canceller(task, "politely")
        fut.set_result(None)
        await task
    run(body)
