"""Drive the C HTTP/1.1 protocol (carpinus._core) over a fake transport.

The end-to-end fuzz target (fuzz_protocol.py) and the differential parsing
script (differential.py) share this: a byte stream goes in, cut into reads at
chosen points, and what comes out is checked.

What is real and what is fake: the protocol, the request cycle, the app's
receive()/send() and the asyncio event loop and tasks are the real ones.  Only
the transport is a stand-in (tests/support/fake_transport.py, shared with the
tests), so that every read boundary, pause and close is under the fuzzer's
control and every byte written is recorded.  Besides reads through
get_buffer()/buffer_updated() or data_received(), pause/resume reading,
close() followed by connection_lost() and write flow control, each run may
switch on (Options.from_seed) the behaviours where real transports differ:

  - TLS (stdlib sslproto): close() re-enters get_buffer()/buffer_updated()
    before it returns; the client keeps its next read queued so that there
    is something to deliver then; eof_received() must not return True;
  - write() raising (a reset, closing the transport as uvloop does; or a
    RuntimeError that leaves it open), at a chosen write;
  - pause_writing() and resume_writing() both from inside write();
  - a client that drains only every few loop iterations (writing stays
    paused), and the app's task -- or the future it awaits -- cancelled from
    outside at a chosen read, as asyncio.timeout, 3.11's wait_for and anyio
    cancel scopes do; the app then either lets the cancellation end it or
    catches it (as a timeout in its own code would be) and finishes its
    response;

and the app behaviours (FuzzApp) include apps that re-enter send() from
inside send() (through more_body's __bool__, a headers generator, or a
Mapping message's __getitem__), await receive()/send() under
asyncio.wait_for with a tiny or zero timeout, run them as tasks
(asyncio.create_task(receive())), start a response with a 1xx status, set
their own Transfer-Encoding, or return an awaitable without throw().

Invariants (Violation is raised; the fuzz target turns it into a crash):

  - nothing the transport would report: the protocol never raises into it,
    hands it no bad buffer (with TLS: no "Fatal error on SSL protocol" from
    the read inside close()), never writes after close() and calls it
    consistently (FakeTransport.violations); no exception reaches
    sys.unraisablehook (the core reports internal failures that way) but the
    transport's own injected write error;
  - what the apps check as they go (Seen.violations): a send() re-entered
    from inside send() raises RuntimeError and the outer one goes on; a
    receive() or send() raises CancelledError only if something cancelled
    the task; asyncio.create_task() accepts what receive() and send()
    return, whether or not they have to wait; a 1xx status in
    http.response.start is refused with RuntimeError; the app's own
    Transfer-Encoding never makes send() fail;
  - the bytes written parse as a sequence of well-formed HTTP/1.1 responses:
    app responses in request order (each app response carries x-app: N),
    each carrying exactly the body the app sent, never the app's
    Transfer-Encoding header and no Transfer-Encoding at all for HTTP/1.0,
    then at most one response made by the server itself (an error status
    with connection: close), after which the server closes the connection;
  - a response that says connection: close is followed by close();
  - a truncated final response only when the app died mid-stream (on
    purpose, by a cancellation it did not catch, or by a failed write) or
    the client went away;
  - once the connection is lost every app task finishes (a cancelled one
    too), and the server counts no connection and no running request;
  - a well-behaved app never sees an exception from send() other than
    ClientDisconnected (or the transport's injected write error).
"""

from __future__ import annotations

import asyncio
import os
import random
import sys
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, NoReturn

from carpinus import _core
from carpinus.options import core_defaults
from tests.support.fake_transport import Canceller, FakeTransport
from tests.support.response_parser import MalformedResponse, ParsedResponse, parse_response

# The statuses the server itself answers with (parser.h, protocol.c).
SERVER_STATUSES = {400, 408, 413, 414, 431, 500, 501, 503, 505}
MAX_LOOP_ITERATIONS = 20_000


class Violation(AssertionError):
    """An invariant of the protocol does not hold."""


# ---------------------------------------------------------------------------
# Apps: each request gets one behaviour, chosen by the input
# ---------------------------------------------------------------------------

BEHAVIOURS = ["echo", "early", "stream", "raise_before", "raise_mid", "no_content",
              "slow_reader", "bad_header_then_ok", "respond_then_receive", "return_early"]
# Apps that use the ASGI interface in ways that are legal but unusual, or
# wrong in ways the server must refuse cleanly.  Drawn after every choice
# above, so that older inputs keep their earlier choices.
TRICKY_BEHAVIOURS = ["reenter_more_body", "reenter_headers", "reenter_mapping",
                     "wait_for_receive", "wait_for_send", "create_task", "status_1xx",
                     "app_transfer_encoding", "no_throw"]
# behaviours after which a truncated response is expected
TRUNCATING = {"raise_mid"}
# behaviours whose app returns without a complete response (the server answers
# 500 or closes) or raises on purpose
MISBEHAVING = {"raise_before", "raise_mid", "return_early"}
# receive() under asyncio.wait_for: long enough for an awaitable that is
# ready to finish, short enough that one that waits times out
TINY_TIMEOUT = 1e-6
START = "http.response.start"
BODY = "http.response.body"


class AppFailure(Exception):
    """Raised by an app on purpose."""


@dataclass
class Seen:
    """One request as the app saw it, and what its app did."""

    index: int
    behaviour: str
    method: str
    raw_path: bytes
    query: bytes
    http_version: str
    headers: list[tuple[bytes, bytes]]
    body: bytearray = field(default_factory=bytearray)
    body_complete: bool = False
    disconnected: bool = False
    send_errors: list[BaseException] = field(default_factory=list)
    finished: bool = False
    task: asyncio.Task[Any] | None = None
    # what the app's send() calls did (at call time: carpinus does a send()'s
    # work when it is called, the awaitable only waits for the drain)
    started: bool = False
    complete: bool = False
    sent_body: bytearray = field(default_factory=bytearray)
    app_transfer_encoding: bytes | None = None
    write_failed: bool = False       # a receive()/send() raised the injected write error
    canceller: Canceller | None = None
    cancel_absorbed: bool = False    # the app caught the cancellation and went on
    violations: list[str] = field(default_factory=list)

    @property
    def cancel_pending(self) -> bool:
        """Cancelled from outside, and the app has not caught it (yet)."""
        return self.canceller is not None and not self.cancel_absorbed

    @property
    def cut_off(self) -> bool:
        """Cancelled from outside, and the cancellation ended the app."""
        return self.canceller is not None and not self.cancel_absorbed


class ReenterBool:
    """A more_body value whose truth test calls send() again."""

    def __init__(self, value: bool, reenter: Callable[[], None]) -> None:
        self.value = value
        self.reenter: Callable[[], None] | None = reenter

    def __bool__(self) -> bool:
        reenter, self.reenter = self.reenter, None
        if reenter is not None:
            reenter()
        return self.value


class ReenterMessage(Mapping[str, Any]):
    """A message (a Mapping, not a dict) whose __getitem__(key) calls send() again."""

    def __init__(self, message: dict[str, Any], key: str, reenter: Callable[[], None]) -> None:
        self.message = message
        self.key = key
        self.reenter: Callable[[], None] | None = reenter

    def __getitem__(self, key: str) -> Any:
        if key == self.key and self.reenter is not None:
            reenter, self.reenter = self.reenter, None
            reenter()
        return self.message[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.message)

    def __len__(self) -> int:
        return len(self.message)


class NoThrowAwaitable:
    """An awaitable whose iterator has only __next__ (no send(), throw() or
    close()), as `iter([...])` or a hand-written awaitable has: the app's
    coroutine stepped through __next__.  A cancellation cannot be thrown into
    it; the server must still finish the request (review finding B5)."""

    def __init__(self, coro: Any) -> None:
        self.coro = coro

    def __await__(self) -> Any:
        return self

    def __iter__(self) -> NoThrowAwaitable:
        return self

    def __next__(self) -> Any:
        return self.coro.send(None)


class FuzzApp:
    def __init__(self, choose: Callable[[int], str], variants: random.Random,
                 absorb_cancel: bool = True) -> None:
        self.choose = choose
        self.variants = variants  # the choices inside a behaviour
        self.absorb_cancel = absorb_cancel
        self.write_error: BaseException | None = None  # the transport's injected one
        self.seen: list[Seen] = []
        self.scopes: dict[int, int] = {}  # id(scope) -> request index, while it runs

    def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Awaitable[None]:
        index = len(self.seen)
        behaviour = self.choose(index)
        req = Seen(index, behaviour, scope["method"], scope["raw_path"], scope["query_string"],
                   scope["http_version"], [(bytes(n), bytes(v)) for n, v in scope["headers"]])
        self.seen.append(req)
        self.scopes[id(scope)] = index
        coro = self._run(req, receive, send)
        return NoThrowAwaitable(coro) if behaviour == "no_throw" else coro

    def request_of(self, scope: Any) -> Seen | None:
        index = self.scopes.get(id(scope))
        return self.seen[index] if index is not None else None

    async def _run(self, req: Seen, receive: Any, send: Any) -> None:
        req.task = asyncio.current_task()
        try:
            try:
                await self._serve(req, receive, send)
            except asyncio.CancelledError:
                if not self._absorb(req):
                    raise
                await self._finish_after_cancel(req, send)
        except _core.ClientDisconnected as exc:
            req.send_errors.append(exc)
        finally:
            req.finished = True

    # -- cancellation from outside -------------------------------------------

    def _absorb(self, req: Seen) -> bool:
        """A timeout or cancel scope around the app's work expired: the app
        catches the cancellation at the scope's edge and goes on."""
        if req.canceller is None or req.cancel_absorbed or not self.absorb_cancel:
            return False
        req.cancel_absorbed = True
        req.canceller.stop()
        task: Any = req.task
        if task is not None and hasattr(task, "uncancel"):  # 3.11+
            while task.cancelling():
                task.uncancel()
        return True

    async def _finish_after_cancel(self, req: Seen, send: Any) -> None:
        if not req.started:
            await self._send(req, send, {"type": START, "status": 200,
                                         "headers": [self._tag(req)]})
        if not req.complete:
            await self._send(req, send, {"type": BODY, "body": b"cancelled"})

    # -- receive() and send() as a careful app calls them --------------------

    @staticmethod
    def _tag(req: Seen) -> tuple[bytes, bytes]:
        return (b"x-app", b"%d" % req.index)

    def _note_write_error(self, req: Seen, exc: BaseException) -> None:
        if exc is self.write_error:
            req.write_failed = True

    async def _wait(self, req: Seen, awaitable: Any, what: str) -> Any:
        try:
            return await awaitable
        except asyncio.CancelledError:
            if not req.cancel_pending:
                req.violations.append(
                    f"{what} raised CancelledError, but nothing cancelled the task "
                    f"(a waiter left over from an earlier, cancelled call?)")
            raise

    def _call_receive(self, req: Seen, receive: Any) -> Any:
        try:
            return receive()
        except BaseException as exc:
            self._note_write_error(req, exc)  # a 100 Continue is written from receive()
            raise

    async def _receive(self, req: Seen, receive: Any) -> Any:
        return await self._wait(req, self._call_receive(req, receive), "receive()")

    def _took_effect(self, req: Seen, message: Mapping[str, Any]) -> None:
        if message["type"] == START:
            req.started = True
        elif message["type"] == BODY:
            req.sent_body += message.get("body", b"")
            if not message.get("more_body", False):
                req.complete = True

    def _call_send(self, req: Seen, send: Any, message: Any,
                   record: Mapping[str, Any] | None = None) -> Any:
        """send(message) -> its awaitable, and what took effect recorded
        (`record`: the message as plain values, when `message` is a trick).
        A send() that fails with the transport's injected write error is
        tried once more, as an app retrying a failed write might: the server
        must then refuse, or write a correct response -- never a corrupt one."""
        for attempt in (1, 2):
            try:
                awaitable = send(message)
            except BaseException as exc:
                self._note_write_error(req, exc)
                if attempt == 1 and exc is self.write_error:
                    continue
                raise
            self._took_effect(req, message if record is None else record)
            return awaitable
        raise AssertionError("unreachable")

    async def _send(self, req: Seen, send: Any, message: Any,
                    record: Mapping[str, Any] | None = None) -> None:
        await self._wait(req, self._call_send(req, send, message, record), "send()")

    async def _read_body(self, req: Seen, receive: Any, pause: bool = False) -> None:
        while not req.body_complete:
            message = await self._receive(req, receive)
            if self._take(req, message) and pause:
                for _ in range(3):
                    await asyncio.sleep(0)
            if req.disconnected:
                return

    def _take(self, req: Seen, message: Any) -> bool:
        """Account for one receive() message; True while more body follows."""
        if message["type"] == "http.disconnect":
            req.disconnected = True
            return False
        if message["type"] != "http.request" or not isinstance(message["body"], bytes):
            raise Violation(f"bad receive() message {message!r}")
        req.body += message["body"]
        if not message.get("more_body", False):
            req.body_complete = True
            return False
        return True

    # -- the behaviours -------------------------------------------------------

    async def _serve(self, req: Seen, receive: Any, send: Any) -> None:
        tag = self._tag(req)
        start = {"type": START, "status": 200, "headers": [tag]}
        behaviour = req.behaviour
        if behaviour in ("echo", "slow_reader"):
            await self._read_body(req, receive, pause=behaviour == "slow_reader")
            await self._send(req, send, start)
            await self._send(req, send, {"type": BODY, "body": b"%d" % len(req.body)})
        elif behaviour == "early":
            await self._send(req, send, start)
            await self._send(req, send, {"type": BODY, "body": b"early"})
        elif behaviour in ("stream", "no_throw"):
            await self._read_body(req, receive)
            await self._send(req, send, start)
            for part in (b"a" * 100, b"", b"b" * 5000):
                await self._send(req, send, {"type": BODY, "body": part, "more_body": True})
                await asyncio.sleep(0)
            await self._send(req, send, {"type": BODY, "body": b"end"})
        elif behaviour == "raise_before":
            raise AppFailure("before the response")
        elif behaviour == "raise_mid":
            await self._send(req, send, start)
            await self._send(req, send, {"type": BODY, "body": b"partial", "more_body": True})
            raise AppFailure("in the middle of the response")
        elif behaviour == "no_content":
            await self._read_body(req, receive)
            await self._send(req, send, {"type": START, "status": 204, "headers": [tag]})
            await self._send(req, send, {"type": BODY, "body": b""})
        elif behaviour == "bad_header_then_ok":
            try:
                send({"type": START, "status": 200,
                      "headers": [tag, (b"x-bad", b"a\r\nx-injected: 1")]})
            except RuntimeError:
                pass
            else:
                req.violations.append("a header value with CRLF was accepted")
                return
            await self._send(req, send, {"type": START, "status": 200,
                                         "headers": [tag, (b"content-length", b"2")]})
            await self._send(req, send, {"type": BODY, "body": b"ok"})
        elif behaviour == "respond_then_receive":
            await self._send(req, send, start)
            await self._send(req, send, {"type": BODY, "body": b"done"})
            message = await self._receive(req, receive)
            if message["type"] != "http.disconnect":
                req.violations.append(f"receive() after the response gave {message!r}")
        elif behaviour == "return_early":
            await self._send(req, send, start)
        elif behaviour.startswith("reenter_"):
            await self._reentrant(req, receive, send)
        elif behaviour == "wait_for_receive":
            await self._wait_for_receive(req, receive, send)
        elif behaviour == "wait_for_send":
            await self._wait_for_send(req, receive, send)
        elif behaviour == "create_task":
            await self._create_task(req, receive, send)
        elif behaviour == "status_1xx":
            await self._status_1xx(req, send)
        elif behaviour == "app_transfer_encoding":
            await self._app_transfer_encoding(req, receive, send)
        else:  # pragma: no cover
            raise AssertionError(behaviour)

    def _reenter(self, req: Seen, send: Any, inner: dict[str, Any], where: str) -> None:
        """send(inner) from inside a send() in progress: must raise RuntimeError."""
        try:
            awaitable = send(inner)
        except RuntimeError:
            return
        except BaseException as exc:
            req.violations.append(f"send() re-entered from {where} raised {exc!r}, "
                                  f"not RuntimeError")
            return
        req.violations.append(f"send() re-entered from {where} was accepted "
                              f"({inner['type']}, more_body={inner.get('more_body', False)}); "
                              f"it must raise RuntimeError")
        close = getattr(awaitable, "close", None)
        if asyncio.iscoroutine(awaitable) and close is not None:
            close()

    def _inner_body(self) -> dict[str, Any]:
        if self.variants.random() < 0.5:
            return {"type": BODY, "body": b"inner", "more_body": True}
        return {"type": BODY, "body": b"inner"}  # would complete the response

    async def _first_chunk(self, req: Seen, send: Any) -> None:
        """Half the time, a chunk before the tricky message: the response is
        then on the wire and chunked, and a re-entered final body completes it
        under the outer send()."""
        if self.variants.random() < 0.5:
            await self._send(req, send, {"type": BODY, "body": b"first", "more_body": True})

    async def _reentrant(self, req: Seen, receive: Any, send: Any) -> None:
        """send() re-entered from inside send(); the outer send() goes on."""
        tag = self._tag(req)
        await self._read_body(req, receive)
        inner_start = {"type": START, "status": 200, "headers": [tag, (b"x-inner", b"1")]}
        if req.behaviour == "reenter_more_body":
            await self._send(req, send, {"type": START, "status": 200, "headers": [tag]})
            await self._first_chunk(req, send)
            inner = self._inner_body()
            more = self.variants.random() < 0.5
            flag = ReenterBool(more, lambda: self._reenter(req, send, inner,
                                                           "more_body.__bool__"))
            await self._send(req, send, {"type": BODY, "body": b"outer", "more_body": flag},
                             record={"type": BODY, "body": b"outer", "more_body": more})
            if more:
                await self._send(req, send, {"type": BODY, "body": b"end"})
        elif req.behaviour == "reenter_headers":
            def headers() -> Iterator[tuple[bytes, bytes]]:
                yield tag
                self._reenter(req, send, inner_start, "the headers iterable")
                yield (b"x-after", b"1")

            await self._send(req, send, {"type": START, "status": 200, "headers": headers()},
                             record={"type": START})
            await self._send(req, send, {"type": BODY, "body": b"after"})
        else:  # reenter_mapping
            if self.variants.random() < 0.5:
                key = self.variants.choice(["status", "headers"])
                message = {"type": START, "status": 200, "headers": [tag]}
                await self._send(req, send, ReenterMessage(
                    message, key, lambda: self._reenter(req, send, inner_start,
                                                        f"message.__getitem__({key!r})")),
                    record=message)
                await self._send(req, send, {"type": BODY, "body": b"after"})
            else:
                await self._send(req, send, {"type": START, "status": 200, "headers": [tag]})
                await self._first_chunk(req, send)
                key = self.variants.choice(["body", "more_body"])
                message = {"type": BODY, "body": b"outer", "more_body": False}
                inner = self._inner_body()
                await self._send(req, send, ReenterMessage(
                    message, key, lambda: self._reenter(req, send, inner,
                                                        f"message.__getitem__({key!r})")),
                    record=message)

    async def _wait_for_receive(self, req: Seen, receive: Any, send: Any) -> None:
        """The body through asyncio.wait_for(receive(), tiny): a timeout is
        no error, the app asks again."""
        for _ in range(MAX_LOOP_ITERATIONS):
            if req.body_complete or req.disconnected:
                break
            awaitable = self._call_receive(req, receive)
            try:
                message = await self._wait(req, asyncio.wait_for(awaitable, TINY_TIMEOUT),
                                           "receive() under wait_for")
            except asyncio.TimeoutError:
                await asyncio.sleep(0)
                continue
            self._take(req, message)
        await self._send(req, send, {"type": START, "status": 200, "headers": [self._tag(req)]})
        await self._send(req, send, {"type": BODY, "body": b"%d" % len(req.body)})

    async def _wait_for_send(self, req: Seen, receive: Any, send: Any) -> None:
        """Stream, giving up on waiting for the drain at once
        (asyncio.wait_for(send(...), 0)): then go on streaming."""
        await self._read_body(req, receive)
        await self._send(req, send, {"type": START, "status": 200, "headers": [self._tag(req)]})
        await self._send(req, send, {"type": BODY, "body": b"w" * 5000, "more_body": True})
        for part in (b"x" * 3000, b"y" * 10):
            awaitable = self._call_send(req, send, {"type": BODY, "body": part,
                                                    "more_body": True})
            try:
                await self._wait(req, asyncio.wait_for(awaitable, 0), "send() under wait_for")
            except asyncio.TimeoutError:
                pass  # the bytes are taken; only the wait for the drain was given up
        await self._send(req, send, {"type": BODY, "body": b"z" * 100, "more_body": True})
        await self._send(req, send, {"type": BODY, "body": b"end"})

    async def _as_task(self, req: Seen, awaitable: Any, what: str) -> Any:
        try:
            task = asyncio.create_task(awaitable)
        except TypeError as exc:
            req.violations.append(f"asyncio.create_task({what}) raised TypeError ({exc}): "
                                  f"receive() and send() must always return a coroutine")
            return await self._wait(req, awaitable, what)
        return await self._wait(req, task, what)

    async def _create_task(self, req: Seen, receive: Any, send: Any) -> None:
        """receive() and send() run as tasks, one of them while it must wait."""
        while not req.body_complete and not req.disconnected:
            self._take(req, await self._as_task(req, self._call_receive(req, receive),
                                                "receive()"))
        # waits until the response is complete (or the client leaves)
        watcher = asyncio.ensure_future(self._as_task(req, self._call_receive(req, receive),
                                                      "receive()"))
        tag = self._tag(req)
        await self._as_task(req, self._call_send(req, send, {"type": START, "status": 200,
                                                             "headers": [tag]}), "send()")
        await self._as_task(req, self._call_send(req, send, {"type": BODY, "body": b"t" * 5000,
                                                             "more_body": True}), "send()")
        await self._as_task(req, self._call_send(req, send, {"type": BODY, "body": b"done"}),
                            "send()")
        message = await watcher
        if message["type"] != "http.disconnect":
            req.violations.append(f"receive() after the body gave {message!r}")

    async def _status_1xx(self, req: Seen, send: Any) -> None:
        status = self.variants.choice([100, 101, 102, 103, 199])
        tag = self._tag(req)
        try:
            send({"type": START, "status": status, "headers": [tag]})
        except RuntimeError:
            pass
        else:
            req.violations.append(f"http.response.start with status {status} was accepted; "
                                  f"a 1xx status must be refused with RuntimeError")
            return
        await self._send(req, send, {"type": START, "status": 200, "headers": [tag]})
        await self._send(req, send, {"type": BODY, "body": b"after a 1xx"})

    async def _app_transfer_encoding(self, req: Seen, receive: Any, send: Any) -> None:
        """The app sets Transfer-Encoding, which the server must ignore
        (ASGI www.rst, Response Start)."""
        await self._read_body(req, receive)
        value = self.variants.choice([b"chunked", b"gzip, chunked", b"gzip", b"identity",
                                      b"Chunked"])
        req.app_transfer_encoding = value
        messages: list[dict[str, Any]] = [
            {"type": START, "status": 200,
             "headers": [self._tag(req), (b"Transfer-Encoding", value)]}]
        if self.variants.random() < 0.5:
            messages.append({"type": BODY, "body": b"streamed", "more_body": True})
        messages.append({"type": BODY, "body": b"the end"})
        for message in messages:
            try:
                awaitable = self._call_send(req, send, message)
            except RuntimeError as exc:
                if req.write_failed:
                    raise
                req.violations.append(f"the app's Transfer-Encoding: {value!r} made send() "
                                      f"raise {exc!r}; the server must ignore it")
                return
            await self._wait(req, awaitable, "send()")


# ---------------------------------------------------------------------------
# Response stream parsing
# ---------------------------------------------------------------------------

# The framing is the shared parser's (tests/support/response_parser.py, which
# the tests' RawClient and the soak script use too); what the harness adds is
# what it forbids on top: a field the server writes once written twice, an
# interim response other than a bare 100, Transfer-Encoding on a 204/304.
ONCE_PER_HEAD = (b"content-length", b"transfer-encoding", b"date", b"server")


def parse_responses(data: bytes, methods: Callable[[int], str | None]) -> list[ParsedResponse]:
    """Parse a server's output strictly.  The last response may be incomplete
    (complete=False); anything malformed raises Violation.  `methods` gives
    the method of the request an app response (x-app: N) answers."""

    def answers_head(resp: ParsedResponse) -> bool:
        app_index = resp.header(b"x-app")
        return app_index is not None and methods(int(app_index)) == "HEAD"

    out: list[ParsedResponse] = []
    pos = 0
    while pos < len(data):
        try:
            resp, pos = parse_response(data, pos, head_request=answers_head, at_eof=True)
        except MalformedResponse as exc:
            raise Violation(str(exc)) from None
        out.append(resp)
        if not resp.head:  # cut before the end of the head
            break
        names = [n.lower() for n, _ in resp.headers]
        for once in ONCE_PER_HEAD:
            if names.count(once) > 1:
                raise Violation(f"{once!r} twice in a response head")
        if resp.status < 200 and (resp.status != 100 or resp.headers):
            raise Violation(f"unexpected interim response {resp.status}")
        if resp.status in (204, 304) and resp.header(b"transfer-encoding") is not None:
            raise Violation(f"transfer-encoding on a {resp.status}")
    return out


# ---------------------------------------------------------------------------
# One run
# ---------------------------------------------------------------------------

# CARPINUS_FUZZ_DISABLE=tls,cancel,... switches features off in every run
# (Options.from_seed), to fuzz on past a known defect: any of FEATURES and
# any behaviour name (that behaviour becomes "echo").
DISABLE_ENV = "CARPINUS_FUZZ_DISABLE"
FEATURES = ("tls", "flush_in_write", "write_error", "slow_drain", "cancel")


def disabled_features() -> set[str]:
    names = {n.strip() for n in os.environ.get(DISABLE_ENV, "").split(",") if n.strip()}
    unknown = names - set(FEATURES) - set(BEHAVIOURS) - set(TRICKY_BEHAVIOURS)
    if unknown:
        raise ValueError(f"{DISABLE_ENV}: unknown {sorted(unknown)}; known: "
                         f"{', '.join(FEATURES + tuple(BEHAVIOURS + TRICKY_BEHAVIOURS))}")
    return names


ALL_OPTIMIZATIONS = (_core.OPT_ZERO_COPY_BODY | _core.OPT_DIRECT_RESPONSE
                     | _core.OPT_SCOPE_CACHE | _core.OPT_HEADER_NAMES | _core.OPT_LAZY_HEADERS
                     | _core.OPT_STATUS_CACHE)


@dataclass
class Options:
    """Everything about a run that is not the byte stream itself.  The
    defaults are a plain socket transport and a well-behaved client (what
    differential.py runs with)."""

    cuts: list[int]                  # read boundaries (sorted offsets)
    behaviours: list[str]            # app behaviour per request, cycled
    buffered: bool = True            # get_buffer/buffer_updated, else data_received
    optimizations: int = ALL_OPTIMIZATIONS
    zero_copy_threshold: int = 16384
    limits: dict[str, Any] = field(default_factory=dict)
    write_high_water: int = 1 << 20
    ending: str = "eof"              # eof | reset | reset_early | none
    reset_at: int = 0                # for reset_early: after this many reads
    yields_per_read: int = 1         # loop iterations between reads
    server_event: str = "none"       # none | shutdown | close_all (a server stopping)
    event_at: int = 0                # ... after this many reads
    # the behaviours where real transports differ (tests/support/fake_transport.py)
    tls: bool = False                # the stdlib SSL transport: close() re-enters reads
    lookahead: bool = False          # the client queues its next read early
    flush_in_write: bool = False     # pause_writing + resume_writing inside write()
    write_error: str = "none"        # none | reset (closes, as uvloop) | runtime (stays open)
    write_error_at: int = 0          # ... raised by this write() call (1-based)
    drain_every: int = 1             # the client drains every N loop iterations
    cancel: str = "none"             # none | task | waiter | scope (Canceller)
    cancel_at: int = 0               # ... after this many reads (or once all is read)
    cancel_absorb: bool = True       # the app catches the cancellation and finishes
    app_seed: int = 0                # the choices inside app behaviours

    @classmethod
    def from_seed(cls, seed: bytes, length: int) -> Options:
        """Derive every choice from a few bytes, so that the fuzzer can mutate them.
        (Choices added later are drawn after the earlier ones, so that an input
        keeps what it chose before.)"""
        rng = random.Random(seed)
        ncuts = rng.choice([0, 0, 1, 2, 3, 8, length])
        cuts = sorted({rng.randrange(1, length) for _ in range(ncuts)} if length > 1 else set())
        behaviours = [rng.choice(BEHAVIOURS) for _ in range(rng.randint(1, 4))]
        limits: dict[str, Any] = {}
        if rng.random() < 0.3:
            limits = {"limit_request_line": rng.choice([16, 40, 100, 8190]),
                      "limit_request_header_size": rng.choice([16, 40, 100, 8190]),
                      "limit_request_headers": rng.choice([1, 2, 5, 100])}
        if rng.random() < 0.2:
            limits["limit_request_body"] = rng.choice([0, 1, 10, 1000])
        if rng.random() < 0.1:
            limits["limit_concurrency"] = 1
        opts = cls(
            cuts=cuts,
            behaviours=behaviours,
            buffered=rng.random() < 0.8,
            optimizations=ALL_OPTIMIZATIONS if rng.random() < 0.7
            else rng.randrange(0, ALL_OPTIMIZATIONS + 1),
            zero_copy_threshold=rng.choice([1, 5, 64, 16384]),
            limits=limits,
            write_high_water=rng.choice([0, 16, 1000, 1 << 20]),
            ending=rng.choice(["eof", "eof", "reset", "reset_early", "none"]),
            reset_at=rng.randrange(0, len(cuts) + 2),
            yields_per_read=rng.choice([0, 1, 1, 3]),
            server_event=rng.choice(["none"] * 8 + ["shutdown", "close_all"]),
            event_at=rng.randrange(0, len(cuts) + 2),
        )
        # -- drawn after everything above ----------------------------------
        for i in range(len(behaviours)):
            if rng.random() < 0.35:
                behaviours[i] = rng.choice(TRICKY_BEHAVIOURS)
        opts.tls = rng.random() < 0.3
        opts.lookahead = opts.tls and rng.random() < 0.7
        opts.flush_in_write = rng.random() < 0.2
        opts.write_error = rng.choice(["none"] * 6 + ["reset", "runtime"])
        opts.write_error_at = rng.randint(1, 8)
        opts.drain_every = rng.choice([1, 1, 1, 4, 32])
        opts.cancel = rng.choice(["none"] * 5 + ["task", "waiter", "scope"])
        opts.cancel_at = rng.randrange(0, len(cuts) + 3)
        opts.cancel_absorb = rng.random() < 0.6
        opts.app_seed = rng.randrange(1 << 30)
        opts.disable(disabled_features())
        return opts

    def disable(self, names: set[str]) -> None:
        if "tls" in names:
            self.tls = self.lookahead = False
        if "flush_in_write" in names:
            self.flush_in_write = False
        if "write_error" in names:
            self.write_error = "none"
        if "slow_drain" in names:
            self.drain_every = 1
        if "cancel" in names:
            self.cancel = "none"
        self.behaviours = ["echo" if b in names else b for b in self.behaviours]


@dataclass
class Outcome:
    seen: list[Seen]
    responses: list[ParsedResponse]
    output: bytes
    closed_by_server: bool
    reported: list[tuple[BaseException, bool, Seen | None]]
    logged: list[str]


WRITE_ERRORS: dict[str, Callable[[], BaseException]] = {
    "reset": lambda: ConnectionResetError("write failed: reset by the fuzzer"),
    "runtime": lambda: RuntimeError("write refused by the fuzzer"),
}


class Run:
    """Feed one byte stream through a fresh ServerState and one connection."""

    def __init__(self, loop: asyncio.AbstractEventLoop, data: bytes, opts: Options) -> None:
        self.loop = loop
        self.data = data
        self.opts = opts
        self.app = FuzzApp(lambda i: opts.behaviours[i % len(opts.behaviours)],
                           random.Random(opts.app_seed), opts.cancel_absorb)
        make_error = WRITE_ERRORS.get(opts.write_error)
        self.write_error = make_error() if make_error is not None else None
        self.app.write_error = self.write_error
        self.reported: list[tuple[BaseException, bool, Seen | None]] = []
        self.logged: list[str] = []
        # HTTP/1.1 only: the checks below read HTTP/1.1 responses, and an input
        # that opens with the HTTP/2 preface is fuzz_h2.py's (here: a 505)
        self.state = _core.ServerState(
            self.app, loop, self._report, loop.create_task, None, self.logged.append,
            **core_defaults(optimizations=opts.optimizations,
                            zero_copy_threshold=opts.zero_copy_threshold,
                            http=_core.HTTP_1, **opts.limits))
        self.protocol = self.state()
        self.transport = FakeTransport(
            loop, self.protocol, buffered=opts.buffered, tls=opts.tls,
            write_high_water=opts.write_high_water, flush_in_write=opts.flush_in_write,
            write_error=self.write_error, write_error_at=opts.write_error_at)
        self.end_state: tuple[str, int] = ("", 0)  # protocol state, buffer once all is fed
        self.iterations = 0
        self.cancelled = False

    @property
    def fed(self) -> int:
        """Bytes handed to the protocol."""
        return self.transport.delivered

    def _report(self, exc: BaseException, scope: Any, disconnected: bool) -> None:
        self.reported.append((exc, disconnected, self.app.request_of(scope)))

    def _client_turn(self) -> None:
        """Between loop iterations the client reads what was written (every
        drain_every iterations: a slow client keeps writing paused)."""
        self.iterations += 1
        if self.iterations % self.opts.drain_every == 0:
            self.transport.drain()

    async def _yield(self, n: int) -> None:
        for _ in range(n):
            await asyncio.sleep(0)
            self._client_turn()

    def _progress(self) -> tuple[int, ...]:
        t = self.transport
        return (len(t.out), len(self.state.tasks), t.closed, t.lost, t.reading_paused,
                len(self.app.seen))

    async def _settle(self) -> None:
        """Run the loop until nothing changes any more for a while (apps done,
        or waiting for bytes that will not come)."""
        quiet = 0
        last = self._progress()
        for _ in range(MAX_LOOP_ITERATIONS):
            await asyncio.sleep(0)
            self._client_turn()
            now = self._progress()
            quiet = quiet + 1 if now == last else 0
            last = now
            if (not self.state.tasks and self.transport.lost) or \
                    quiet >= 20 + self.opts.drain_every:
                return
        self._raise(Violation("the connection never settled"))

    def _server_event(self) -> None:
        if self.opts.server_event == "shutdown":
            self.state.shutdown()  # graceful: busy connections close after the response
        elif self.opts.server_event == "close_all":
            self.state.close_all()  # forced: every connection closes now

    def _cancel_from_outside(self) -> None:
        """A timeout or cancel scope around the apps expires (once per run)."""
        if self.opts.cancel == "none" or self.cancelled:
            return
        self.cancelled = True
        started = set()
        for req in self.app.seen:
            if req.task is not None:
                started.add(req.task)
                if not req.finished:
                    req.canceller = Canceller(req.task, self.opts.cancel)
                    req.canceller.fire()
        for task in self.state.tasks:
            if task in started or task.done():
                continue
            # the app was called, but its coroutine has not taken a step yet
            waiting = next((r for r in reversed(self.app.seen) if r.task is None), None)
            if waiting is not None and waiting.canceller is None:
                waiting.canceller = Canceller(task, self.opts.cancel)
                waiting.canceller.fire()

    def _raise(self, violation: Violation) -> NoReturn:
        """Raise what was recorded first (usually the cause), else violation."""
        raise recorded_violation(self) or violation

    async def drive(self) -> Outcome:
        t = self.transport
        self.protocol.connection_made(t)
        bounds = [0, *self.opts.cuts, len(self.data)]
        pieces = [self.data[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]
        queued = 0
        reads = 0
        for i, piece in enumerate(pieces):
            # the client sends this piece -- with lookahead the next one too,
            # which a TLS close() then finds pending
            upto = min(len(pieces), i + (2 if self.opts.lookahead else 1))
            while queued < upto:
                t.queue(pieces[queued])
                queued += 1
            left = len(piece)
            while left and not t.closed:
                spins = 0
                while t.reading_paused and not t.closed:
                    await self._yield(1)
                    spins += 1
                    if spins > MAX_LOOP_ITERATIONS:
                        self._raise(Violation("reading paused for good: the app cannot "
                                              "catch up"))
                if t.closed:
                    break
                left -= t.read(left)
                reads += 1
                if reads == self.opts.event_at:
                    self._server_event()
                if reads == self.opts.cancel_at:
                    self._cancel_from_outside()
                if self.opts.ending == "reset_early" and reads >= self.opts.reset_at:
                    break
                await self._yield(self.opts.yields_per_read)
            if t.closed or (self.opts.ending == "reset_early" and reads >= self.opts.reset_at):
                break
        await self._yield(3)
        self._cancel_from_outside()  # if no read came at cancel_at
        self.end_state = (self.protocol.state, self.protocol.buffer_capacity)
        closed_by_server = t.server_closed
        if not t.closed:
            if self.opts.ending == "eof":
                t.client_eof()
            elif self.opts.ending in ("reset", "reset_early"):
                t.client_reset()
        await self._settle()
        if not t.lost:
            t.client_reset()  # "none": the client finally goes away
        for _ in range(MAX_LOOP_ITERATIONS):
            if not self.state.tasks and t.lost:
                break
            await asyncio.sleep(0)
        for req in self.app.seen:
            if req.canceller is not None:
                req.canceller.stop()  # nothing of this run left in the loop's queue
        await asyncio.sleep(0)
        if self.state.tasks:
            stuck = ", ".join(f"{task!r} (done: {task.done()})" for task in self.state.tasks)
            self._raise(Violation(f"app tasks left in ServerState.tasks after "
                                  f"connection_lost: {stuck}"))
        return Outcome(self.app.seen, [], bytes(t.out), closed_by_server, self.reported,
                       self.logged)


def recorded_violation(run: Run) -> Violation | None:
    """The first thing the transport or an app recorded, as a Violation."""
    t = run.transport
    if t.violations:
        first = t.violations[0]
        found = Violation(f"transport: {first}")
        found.__cause__ = first.exc
        return found
    for req in run.app.seen:
        if req.violations:
            return Violation(f"app for request {req.index} ({req.behaviour}): "
                             f"{req.violations[0]}")
    return None


def check(run: Run, outcome: Outcome) -> list[ParsedResponse]:
    """Every invariant about the output of one run; returns the parsed responses."""
    t = run.transport
    seen = outcome.seen
    found = recorded_violation(run)
    if found is not None:
        raise found
    if run.state.connections != 0 or run.state.active_requests != 0:
        raise Violation(f"counts after the end: {run.state.connections} connections, "
                        f"{run.state.active_requests} requests")
    for exc, disconnected, owner in outcome.reported:
        if isinstance(exc, Violation):
            raise exc
        if isinstance(exc, (AppFailure, _core.ClientDisconnected, asyncio.CancelledError)):
            continue
        if exc is run.write_error or (owner is not None and owner.write_failed):
            continue  # the failed write, or what the app's retry got
        if disconnected and isinstance(exc, OSError):
            continue
        raise Violation(f"unexpected exception from the app: {exc!r}") from exc
    for req in seen:
        if not req.finished and not (req.task is None and req.canceller is not None):
            # (a coroutine cancelled before its first step never runs)
            raise Violation(f"app for request {req.index} never finished")
        for exc in req.send_errors:
            if not isinstance(exc, _core.ClientDisconnected):
                raise Violation(f"send() raised {exc!r}")

    def method_of(i: int) -> str | None:
        return seen[i].method if 0 <= i < len(seen) else None

    responses = parse_responses(outcome.output, method_of)
    outcome.responses = responses
    # TLS has no half-close: the client's close_notify ends the connection
    # (sslproto shuts down whatever eof_received() answers), so a response
    # still streaming then is cut off, as by a reset
    aborted = run.opts.ending in ("reset", "reset_early", "none") or \
        run.opts.server_event == "close_all" or (run.opts.tls and run.opts.ending == "eof")
    next_app = 0
    for k, resp in enumerate(responses):
        last = k == len(responses) - 1
        if resp.status == 100:
            continue
        tag = resp.header(b"x-app")
        owner = seen[int(tag)] if tag is not None and int(tag) < len(seen) else None
        if not resp.complete:
            if not last:
                raise Violation("an incomplete response that is not the last")
            behaviour = owner.behaviour if owner is not None else None
            if not aborted and behaviour not in TRUNCATING and not t.write_error_raised and \
                    not (owner is not None and owner.cut_off):
                raise Violation(f"response {k} truncated (app {behaviour}, ending "
                                f"{run.opts.ending})")
            if owner is not None and not t.write_error_raised and \
                    not bytes(owner.sent_body).startswith(resp.body):
                raise Violation(f"response {k}: the body so far {resp.body[:60]!r} is not "
                                f"what app {owner.index} sent ({bytes(owner.sent_body)[:60]!r})")
            continue
        if tag is None:
            # the server's own answer: an error, then the end of the connection
            if resp.status not in SERVER_STATUSES:
                raise Violation(f"server answered {resp.status}")
            if resp.header(b"connection") != b"close":
                raise Violation(f"server error {resp.status} without connection: close")
            if not last:
                raise Violation(f"a response after the server's {resp.status}")
            if not t.server_closed:
                raise Violation(f"connection left open after the server's {resp.status}")
            if resp.status == 500:
                # only when an app failed or gave up before responding
                failed = seen[next_app] if next_app < len(seen) else None
                if failed is None or not (failed.behaviour in MISBEHAVING or failed.cut_off
                                          or failed.write_failed):
                    name = failed.behaviour if failed is not None else None
                    raise Violation(f"500 for a well-behaved app ({name})")
            continue
        if owner is None or owner.index != next_app:
            raise Violation(f"app response {tag!r} out of order (expected {next_app})")
        next_app += 1
        check_app_response(owner, resp, k)
        if resp.header(b"connection") == b"close" and not aborted:
            if not last:
                raise Violation("a response after connection: close")
            # (a transport that failed a write closed itself: nothing left to close)
            if not t.server_closed and t.close_reason != "fatal":
                raise Violation("connection: close, but the server did not close")
    if next_app > len(seen):
        raise Violation("more app responses than requests")
    return responses


def check_app_response(req: Seen, resp: ParsedResponse, k: int) -> None:
    """A complete response of the app's: its body, and framing the server chose."""
    te = resp.header(b"transfer-encoding")
    if te is not None and req.http_version == "1.0":
        raise Violation(f"response {k}: transfer-encoding {te!r} to an HTTP/1.0 client")
    if req.app_transfer_encoding is not None and \
            any(name == b"Transfer-Encoding" for name, _ in resp.headers):
        raise Violation(f"response {k}: the app's Transfer-Encoding: "
                        f"{req.app_transfer_encoding!r} was passed through; the server "
                        f"must ignore it and choose the framing itself")
    if resp.status in (204, 304) or req.method == "HEAD":
        return
    if resp.body != bytes(req.sent_body):
        raise Violation(f"response {k}: body {resp.body[:60]!r} is not what app "
                        f"{req.index} sent ({bytes(req.sent_body)[:60]!r})")


def run_stream(loop: asyncio.AbstractEventLoop, data: bytes, opts: Options) -> tuple[Run, Outcome]:
    run = Run(loop, data, opts)
    unraisable: list[Any] = []
    old_hook = sys.unraisablehook
    sys.unraisablehook = unraisable.append
    try:
        outcome = loop.run_until_complete(run.drive())
    finally:
        sys.unraisablehook = old_hook
        # the collector does not see into UnraisableHookArgs: holding one
        # would keep its exception's traceback, the frames and this run alive
        unexpected = [(u.exc_value, u.object) for u in unraisable
                      if u.exc_value is not run.write_error]
        unraisable.clear()
    if unexpected:
        exc, obj = unexpected[0]
        raise recorded_violation(run) or Violation(
            f"unraisable exception in the core: {exc!r} ({obj!r})")
    return run, outcome
