"""One fake asyncio transport for the tests and the fuzz harness.

The protocol under test (carpinus' C HttpProtocol, or any asyncio protocol)
talks to a FakeTransport as it would to a socket transport; the test or the
fuzzer plays the client through the methods at the bottom of the class
(queue, read, client_eof, client_reset, drain, stall).  Every read boundary,
pause, close and failure is under the caller's control, every byte written
is recorded, and whatever a real transport would answer with "Fatal error",
a warning or a silent drop is recorded in `violations` (never raised into
the protocol: a real transport does not raise there either).

Where the real transports differ, the fake can behave like each of them.
Every behaviour is a constructor switch; the defaults are the stdlib
selector transport (asyncio/selector_events.py, 3.11).

Reads (always)
    read() is one "socket readable" event: get_buffer(-1), copy, then
    buffer_updated(n) (selector_events._read_ready__get_buffer), or
    data_received(data) with buffered=False (transports that do not speak
    BufferedProtocol).  No read happens while the protocol has paused
    reading, or after close().  An exception from get_buffer() or
    buffer_updated(), an empty buffer, or a buffer that cannot be written,
    is what the stdlib reports as "Fatal error: protocol.get_buffer() call
    failed." (and closes): here a violation, and the transport closes.

Close and connection_lost (always)
    close() marks the transport closing (is_closing() is True at once) and
    connection_lost(None) follows on a later loop iteration.  Nothing may be
    written once the protocol has closed the transport, let it close (a
    false eof_received()), been told it failed (a write() that raised) or
    seen connection_lost(): the stdlib drops such writes and uvloop raises
    RuntimeError; here they are dropped and each is a violation.  A client
    reset is different: the transport is closing at once but the protocol
    hears of it only from connection_lost() on a later iteration, and real
    transports drop what is written in between without a word
    (`writes_dropped` counts it).

EOF (always)
    client_eof() calls eof_received(); a false answer makes the transport
    close itself (selector_events._read_ready__on_eof), a true one keeps it
    open for writing.

Write flow control (always; write_high_water)
    write() past write_high_water calls pause_writing() from inside write()
    (both selector_events and uvloop do); the client catches up in drain(),
    which calls resume_writing(), the way the loop does once the socket
    drains.  stall() makes the transport pause writing now, as if the
    socket buffer had filled from earlier writes.

flush_in_write=True -- pause and resume from inside write()
    A write() that goes over the high-water mark calls pause_writing() and
    then, having flushed everything at once, resume_writing() before it
    returns; a write() made while writing is paused flushes and calls
    resume_writing() from inside write().  Both callbacks thus run in the
    middle of the protocol's own write call.  This is the harshest order a
    transport can produce: uvloop calls pause_writing() from write() on a
    partial send (stream.pyx _initiate_write / _maybe_pause_protocol) and
    the stdlib SSL transport runs its _control_app_writing() -- which calls
    either callback -- from write() and from close().

write_error=exc, write_error_at=k -- write() that raises
    The k-th call of write() (1-based, counting writelines() as one) raises
    exc instead of writing.  An OSError (ConnectionResetError,
    BrokenPipeError) is what uvloop raises from write() when the socket
    write fails (UVStream._exec_write -> _fatal_error(exc, throw=True)): the
    transport is closed first and connection_lost(exc) follows.  Any other
    exception (RuntimeError) leaves the transport open, as the stdlib's
    refusals do ("Cannot call write() after write_eof()", "unable to write;
    sendfile is in progress").  `write_error_raised` tells whether it fired.

tls=True -- the stdlib SSL transport (asyncio/sslproto.py)
    * get_extra_info("sslcontext") is an ssl.SSLContext, not None.
    * get_buffer(n) is called with n = the number of bytes the transport
      holds (sslproto: self._incoming.pending), often 0, and a read takes
      everything that fits into the buffer.
    * close() re-enters the protocol before it returns:
      _SSLProtocolTransport.close() -> _start_shutdown() -> _do_flush() ->
      _do_read() -> _do_read__buffered(), which calls get_buffer(n) and
      evaluates len(buf); if the peer has bytes pending it writes them into
      the buffer and calls buffer_updated(k) -- with buffered=False it calls
      data_received(data) -- all synchronously, while the caller of close()
      is still on the stack.  An exception there, or a bad buffer (len()
      failing, an empty or read-only buffer), is what sslproto reports as
      "Fatal error on SSL protocol" before aborting without close_notify: a
      violation here.  (Skipped while the protocol has paused reading, as
      sslproto does.)  To give that buffer_updated() something to deliver,
      queue the client's next bytes before the server can close (the fuzz
      harness queues one read ahead).
    * After close() the peer answers close_notify, and sslproto calls
      eof_received() -- after the protocol's own close() -- then
      connection_lost().
    * client_eof() is the peer's close_notify: eof_received(), then the
      transport shuts down whatever it answers (with the same re-entering
      read as close()).  Returning True from eof_received() is a violation:
      sslproto logs "returning true from eof_received() has no effect when
      using ssl".

Cancellation from outside -- Canceller, below
    Timeouts and cancel scopes cancel an app's task, or the future it
    awaits, at a moment the app does not choose; Canceller does that on
    request in each of the ways asyncio.timeout, asyncio.wait_for (3.11)
    and anyio cancel scopes do.

App code re-entering send()/receive() is not the transport's business: the
fuzz harness's app behaviours provide it (fuzz/harness.py, FuzzApp).
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

# sslproto.SSLProtocol.max_size: the most one TLS read delivers
TLS_READ_SIZE = 256 * 1024

_TLS_CONTEXT: ssl.SSLContext | None = None


def tls_context() -> ssl.SSLContext:
    """The sslcontext a TLS transport reports (one, made on first use)."""
    global _TLS_CONTEXT
    if _TLS_CONTEXT is None:
        _TLS_CONTEXT = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    return _TLS_CONTEXT


@dataclass
class TransportViolation:
    """Something a real transport would report (an error logged by the loop,
    a warning, an abort) or that breaks the transport contract."""

    message: str
    exc: BaseException | None = None

    def __str__(self) -> str:
        return self.message if self.exc is None else f"{self.message}: {self.exc!r}"


class FakeTransport(asyncio.Transport):
    """A transport under the caller's control; see the module docstring."""

    def __init__(self, loop: asyncio.AbstractEventLoop, protocol: Any, *,
                 buffered: bool = True,
                 tls: bool = False,
                 write_high_water: int = 64 * 1024,
                 flush_in_write: bool = False,
                 write_error: BaseException | None = None,
                 write_error_at: int = 0,
                 peername: Any = ("127.0.0.1", 40000),
                 sockname: Any = ("127.0.0.1", 8000)) -> None:
        super().__init__()
        self.loop = loop
        self.protocol = protocol
        self.buffered = buffered
        self.tls = tls
        self.write_high_water = write_high_water
        self.flush_in_write = flush_in_write
        self.write_error = write_error
        self.write_error_at = write_error_at
        self.peername = peername
        self.sockname = sockname
        # what the client sent that no read has delivered yet
        self.pending = bytearray()
        self.delivered = 0
        # what the protocol wrote
        self.out = bytearray()
        self.unflushed = 0
        self.write_calls = 0
        self.write_error_raised = False
        # state
        self.closed = False              # closing: close(), abort, reset, fatal error
        self.close_reason = ""           # "protocol", "eof", "abort", "fatal", "reset"
        self.writes_dropped = 0          # written after a client reset, before connection_lost
        self.lost = False                # connection_lost() was called
        self.server_closed = False       # the protocol called close()
        self.reading_paused = False
        self.writing_paused = False
        self.eof_delivered = False
        self.aborted = False             # a fatal error: connection_lost(exc) follows
        self.violations: list[TransportViolation] = []
        # the calls into the protocol and from it, for tests to look at
        self.events: list[tuple[Any, ...]] = []

    # ------------------------------------------------------------------
    # What the protocol calls
    # ------------------------------------------------------------------

    def write(self, data: Any) -> None:
        self.write_calls += 1
        if self.closed:
            if self.close_reason == "reset" and not self.lost:
                self.writes_dropped += 1
            else:
                self._violation(f"write() after close ({self.close_reason}): "
                                f"{bytes(data)[:80]!r}")
            return
        if self.write_error is not None and self.write_calls == self.write_error_at:
            self._raise_write_error()
        data = bytes(data)
        self.events.append(("write", len(data)))
        self.out += data
        self.unflushed += len(data)
        if not self.writing_paused and self.unflushed > self.write_high_water:
            self.writing_paused = True
            self._call("pause_writing")
            if self.flush_in_write:
                self._flush_now()
        elif self.writing_paused and self.flush_in_write:
            self._flush_now()

    def writelines(self, list_of_data: Iterable[Any]) -> None:
        # asyncio.WriteTransport.writelines: one write() of the joined data
        self.write(b"".join(bytes(d) for d in list_of_data))

    def close(self) -> None:
        self.events.append(("close",))
        if self.closed:
            return
        self.server_closed = True
        self._shut_down("protocol")

    def abort(self) -> None:
        self.events.append(("abort",))
        if not self.closed:
            self.closed = True
            self.close_reason = "abort"
            self.loop.call_soon(self._lose, None)

    def is_closing(self) -> bool:
        return self.closed

    def pause_reading(self) -> None:
        self.events.append(("pause_reading",))
        if self.closed:
            return
        if self.reading_paused:
            self._violation("pause_reading() while reading is paused")
        self.reading_paused = True

    def resume_reading(self) -> None:
        self.events.append(("resume_reading",))
        if self.closed:
            return
        if not self.reading_paused:
            self._violation("resume_reading() while reading is not paused")
        self.reading_paused = False

    def is_reading(self) -> bool:
        return not self.reading_paused and not self.closed

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        info = {"peername": self.peername, "sockname": self.sockname,
                "sslcontext": tls_context() if self.tls else None}
        return info.get(name, default)

    def get_write_buffer_size(self) -> int:
        return self.unflushed

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return (0, self.write_high_water)

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        self.write_high_water = 64 * 1024 if high is None else high

    def can_write_eof(self) -> bool:
        return False

    def set_protocol(self, protocol: Any) -> None:
        self.protocol = protocol

    def get_protocol(self) -> Any:
        return self.protocol

    # ------------------------------------------------------------------
    # What the client (the test, the fuzzer) does
    # ------------------------------------------------------------------

    def queue(self, data: bytes) -> None:
        """The client sent data; it waits in the transport for a read (or, with
        tls=True, for the read inside close())."""
        self.pending += data

    def read(self, limit: int | None = None) -> int:
        """One read, as when the socket becomes readable: at most `limit` of
        the queued bytes (all that fit in the protocol's buffer if None).
        Returns how many were delivered; 0 while reading is paused, after
        close(), or with nothing queued."""
        if self.closed or self.reading_paused or not self.pending:
            return 0
        want = len(self.pending) if limit is None else min(limit, len(self.pending))
        if want <= 0:
            return 0
        return self._deliver(want, during_close=False)

    def client_eof(self) -> None:
        """The client half-closes: TCP EOF, or with tls=True its close_notify."""
        self.events.append(("client_eof",))
        if self.closed:
            return
        self.eof_delivered = True
        try:
            keep_open = self.protocol.eof_received()
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self._fatal("Error calling eof_received()", exc)
            return
        if self.tls:
            if keep_open:
                self._violation("returning true from eof_received() has no effect "
                                "when using ssl (sslproto logs a warning)")
            self._shut_down("eof")
        elif not keep_open:
            self._shut_down("eof")

    def client_reset(self) -> None:
        """The client reset the connection: the transport is closing at once,
        connection_lost(ConnectionResetError) follows on the next iteration."""
        self.events.append(("client_reset",))
        if self.closed:
            return
        self.closed = True
        self.close_reason = "reset"
        self.loop.call_soon(self._lose, ConnectionResetError("connection reset by the client"))

    def drain(self) -> None:
        """The client read everything written so far: resume_writing()."""
        self.unflushed = 0
        if self.writing_paused and not self.lost:
            self.writing_paused = False
            self._call("resume_writing")

    def stall(self) -> None:
        """The socket stops taking bytes: pause_writing() now (until drain())."""
        if not self.writing_paused and not self.lost:
            self.writing_paused = True
            self._call("pause_writing")

    # ------------------------------------------------------------------
    # Inside
    # ------------------------------------------------------------------

    def _violation(self, message: str, exc: BaseException | None = None) -> None:
        self.violations.append(TransportViolation(message, exc))

    def _call(self, name: str) -> None:
        """pause_writing()/resume_writing(): the loop logs what they raise."""
        self.events.append((name,))
        try:
            getattr(self.protocol, name)()
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self._violation(f"protocol.{name}() failed", exc)

    def _flush_now(self) -> None:
        self.unflushed = 0
        if self.writing_paused:
            self.writing_paused = False
            self._call("resume_writing")

    def _raise_write_error(self) -> None:
        exc = self.write_error
        assert exc is not None
        self.write_error_raised = True
        self.events.append(("write_error", exc))
        if isinstance(exc, OSError):
            # uvloop: _fatal_error(exc, throw=True) closes the handle, then raises
            self.closed = True
            self.close_reason = "fatal"
            self.loop.call_soon(self._lose, exc)
        raise exc

    def _fatal(self, message: str, exc: BaseException) -> None:
        """What a real transport does with an error from a protocol callback:
        log it (here: a violation) and abort; connection_lost(exc) follows."""
        self._violation(message, exc)
        if not self.closed:
            self.close_reason = "fatal"
        self.closed = True
        if not self.aborted and not self.lost:
            self.aborted = True
            self.loop.call_soon(self._lose, exc)

    def _deliver(self, want: int, during_close: bool) -> int:
        """Hand up to `want` queued bytes to the protocol in one read."""
        fatal = "Fatal error on SSL protocol" if self.tls else None
        if not self.buffered:
            data = bytes(self.pending[:want])
            del self.pending[:want]
            self.delivered += len(data)
            self.events.append(("data_received", len(data)))
            try:
                self.protocol.data_received(data)
            except (SystemExit, KeyboardInterrupt):
                raise
            except BaseException as exc:
                self._fatal(fatal or "Fatal error: protocol.data_received() call failed.", exc)
            return len(data)
        hint = len(self.pending) if self.tls else -1
        self.events.append(("get_buffer", hint))
        try:
            buf = self.protocol.get_buffer(hint)
            size = len(buf)
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self._fatal(fatal or "Fatal error: protocol.get_buffer() call failed.", exc)
            return 0
        if size == 0:
            # selector_events raises this; sslproto would read 0 bytes and take
            # that for the peer's close_notify
            self._fatal(fatal or "Fatal error: protocol.get_buffer() call failed.",
                        RuntimeError("get_buffer() returned an empty buffer"))
            return 0
        n = min(size, want)
        if during_close and n == 0:
            return 0
        try:
            with memoryview(buf) as view:
                view.cast("B")[:n] = self.pending[:n]
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self._fatal(fatal or "Fatal read error on socket transport", exc)
            return 0
        del self.pending[:n]
        self.delivered += n
        self.events.append(("buffer_updated", n))
        try:
            self.protocol.buffer_updated(n)
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self._fatal(fatal or "Fatal error: protocol.buffer_updated() call failed.", exc)
        return n

    def _shut_down(self, reason: str) -> None:
        """Close: at once for a socket; for TLS, sslproto's _start_shutdown()."""
        if self.closed:
            return
        self.closed = True  # sslproto sets _app_transport._closed first
        self.close_reason = reason
        if not self.tls:
            self.loop.call_soon(self._lose, None)
            return
        if not self.reading_paused:
            self._tls_read_in_close()
        if self.aborted:
            return  # sslproto aborted: no close_notify exchange
        if not self.eof_delivered:
            self.loop.call_soon(self._tls_peer_close_notify)
        self.loop.call_soon(self._lose, None)

    def _tls_read_in_close(self) -> None:
        """sslproto _do_flush() -> _do_read(): one read, before close() returns.
        The buffer is asked for and measured even when nothing is pending."""
        self.events.append(("tls_read_in_close", len(self.pending)))
        if not self.buffered:
            if self.pending:
                self._deliver(min(len(self.pending), TLS_READ_SIZE), during_close=True)
            return
        self._deliver(len(self.pending), during_close=True)

    def _tls_peer_close_notify(self) -> None:
        """The peer answered our close_notify: sslproto's _do_shutdown() ->
        _call_eof_received(), once, after the protocol's close()."""
        if self.lost or self.eof_delivered:
            return
        self.eof_delivered = True
        self.events.append(("eof_received_after_close",))
        try:
            keep_open = self.protocol.eof_received()
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self._violation("Error calling eof_received()", exc)
            return
        if keep_open:
            self._violation("returning true from eof_received() has no effect "
                            "when using ssl (sslproto logs a warning)")

    def _lose(self, exc: BaseException | None) -> None:
        if self.lost:
            return
        self.lost = True
        self.closed = True
        self.events.append(("connection_lost", exc))
        try:
            self.protocol.connection_lost(exc)
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc2:
            self._violation("protocol.connection_lost() failed", exc2)


# ---------------------------------------------------------------------------
# Cancellation from outside
# ---------------------------------------------------------------------------

CANCEL_MODES = ("task", "waiter", "scope")


class Canceller:
    """Cancel a task from outside, at a moment of the caller's choosing, the
    way timeouts and cancel scopes do:

      "task"    Task.cancel() once: asyncio.timeout(), TaskGroup, Server
                shutdown.  The task's pending future is cancelled and the
                CancelledError lands in the coroutine at its await.
      "waiter"  cancel the future the task is waiting on (Task._fut_waiter),
                not the task: asyncio.wait_for() on 3.11, when handed a
                Future, cancels that very Future on timeout.  Falls back to
                Task.cancel() when the task waits on no future.
      "scope"   an anyio cancel scope: Task.cancel() now, and again on every
                loop iteration while the task waits on a future that is not
                done (anyio's CancelScope._deliver_cancellation), until stop()
                -- the app left the scope -- or the task ends.

    fire() may be called again; `fired` counts the cancel() calls made.
    """

    MAX_REPEATS = 1000

    def __init__(self, task: asyncio.Task[Any], how: str) -> None:
        if how not in CANCEL_MODES:
            raise ValueError(f"how must be one of {CANCEL_MODES}, not {how!r}")
        self.task = task
        self.how = how
        self.fired = 0
        self.stopped = False

    def fire(self) -> None:
        if self.stopped or self.task.done():
            return
        if self.how == "waiter":
            waiter = getattr(self.task, "_fut_waiter", None)
            if waiter is not None and not waiter.done():
                waiter.cancel()
            else:
                self.task.cancel()
            self.fired += 1
            return
        self.task.cancel()
        self.fired += 1
        if self.how == "scope":
            self.task.get_loop().call_soon(self._deliver_again)

    def stop(self) -> None:
        """The app left the cancel scope: no more cancellation."""
        self.stopped = True

    def _deliver_again(self) -> None:
        if self.stopped or self.task.done() or self.fired >= self.MAX_REPEATS:
            return
        waiter = getattr(self.task, "_fut_waiter", None)
        if waiter is None or not waiter.done():
            self.task.cancel()
            self.fired += 1
        self.task.get_loop().call_soon(self._deliver_again)
