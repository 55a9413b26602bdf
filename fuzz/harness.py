"""Drive the C HTTP/1.1 protocol (carpinus._core) over a fake transport.

The end-to-end fuzz target (fuzz_protocol.py) and the differential parsing
script (differential.py) share this: a byte stream goes in, cut into reads at
chosen points, and what comes out is checked.

What is real and what is fake: the protocol, the request cycle, the app's
receive()/send() and the asyncio event loop and tasks are the real ones.  Only
the transport is a stand-in (tests/support/fake_transport.py, shared with the
tests), so that every read boundary, pause and close is under the fuzzer's
control and every byte written is recorded: reads through
get_buffer()/buffer_updated() or data_received(), pause/resume reading,
close() followed by connection_lost(), write flow control with a client that
drains between loop iterations.

Invariants (Violation is raised; the fuzz target turns it into a crash):

  - nothing the transport would report: the protocol never raises into it,
    hands it no bad buffer and calls it consistently
    (FakeTransport.violations), and no exception reaches
    sys.unraisablehook (the core reports internal failures that way);
  - the bytes written parse as a sequence of well-formed HTTP/1.1 responses:
    app responses in request order (each app response carries x-app: N),
    then at most one response made by the server itself (an error status
    with connection: close), after which the server closes the connection;
  - nothing is written after close(), and a response that says
    connection: close is followed by close();
  - a truncated final response only when the app died mid-stream or the
    client went away;
  - once the connection is lost every app task finishes, and the server
    counts no connection and no running request;
  - a well-behaved app never sees an exception from send() other than
    ClientDisconnected.
"""

from __future__ import annotations

import asyncio
import random
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from carpinus import _core
from tests.support.fake_transport import FakeTransport

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
# behaviours after which a truncated response is expected
TRUNCATING = {"raise_mid"}
# behaviours whose app returns without a complete response (the server answers
# 500 or closes) or raises on purpose
MISBEHAVING = {"raise_before", "raise_mid", "return_early"}


class AppFailure(Exception):
    """Raised by an app on purpose."""


@dataclass
class Seen:
    """One request as the app saw it."""

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


class FuzzApp:
    def __init__(self, choose: Callable[[int], str]) -> None:
        self.choose = choose
        self.seen: list[Seen] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        index = len(self.seen)
        behaviour = self.choose(index)
        req = Seen(index, behaviour, scope["method"], scope["raw_path"], scope["query_string"],
                   scope["http_version"], [(bytes(n), bytes(v)) for n, v in scope["headers"]])
        self.seen.append(req)
        tag = (b"x-app", b"%d" % index)
        try:
            await self._serve(req, behaviour, tag, receive, send)
        except _core.ClientDisconnected as exc:
            req.send_errors.append(exc)
        finally:
            req.finished = True

    async def _read_body(self, req: Seen, receive: Any, pause: bool = False) -> None:
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                req.disconnected = True
                return
            if message["type"] != "http.request" or not isinstance(message["body"], bytes):
                raise Violation(f"bad receive() message {message!r}")
            req.body += message["body"]
            if not message.get("more_body", False):
                req.body_complete = True
                return
            if pause:
                for _ in range(3):
                    await asyncio.sleep(0)

    async def _serve(self, req: Seen, behaviour: str, tag: tuple[bytes, bytes],
                     receive: Any, send: Any) -> None:
        start = {"type": "http.response.start", "status": 200, "headers": [tag]}
        if behaviour in ("echo", "slow_reader"):
            await self._read_body(req, receive, pause=behaviour == "slow_reader")
            await send(start)
            await send({"type": "http.response.body", "body": b"%d" % len(req.body)})
        elif behaviour == "early":
            await send(start)
            await send({"type": "http.response.body", "body": b"early"})
        elif behaviour == "stream":
            await self._read_body(req, receive)
            await send(start)
            for part in (b"a" * 100, b"", b"b" * 5000):
                await send({"type": "http.response.body", "body": part, "more_body": True})
                await asyncio.sleep(0)
            await send({"type": "http.response.body", "body": b"end"})
        elif behaviour == "raise_before":
            raise AppFailure("before the response")
        elif behaviour == "raise_mid":
            await send(start)
            await send({"type": "http.response.body", "body": b"partial", "more_body": True})
            raise AppFailure("in the middle of the response")
        elif behaviour == "no_content":
            await self._read_body(req, receive)
            await send({"type": "http.response.start", "status": 204, "headers": [tag]})
            await send({"type": "http.response.body", "body": b""})
        elif behaviour == "bad_header_then_ok":
            try:
                await send({"type": "http.response.start", "status": 200,
                            "headers": [tag, (b"x-bad", b"a\r\nx-injected: 1")]})
            except RuntimeError:
                pass
            else:
                raise Violation("a header value with CRLF was accepted")
            await send({"type": "http.response.start", "status": 200,
                        "headers": [tag, (b"content-length", b"2")]})
            await send({"type": "http.response.body", "body": b"ok"})
        elif behaviour == "respond_then_receive":
            await send(start)
            await send({"type": "http.response.body", "body": b"done"})
            message = await receive()
            if message["type"] != "http.disconnect":
                raise Violation(f"receive() after the response gave {message!r}")
        elif behaviour == "return_early":
            await send(start)
        else:  # pragma: no cover
            raise AssertionError(behaviour)


# ---------------------------------------------------------------------------
# Response stream parsing
# ---------------------------------------------------------------------------

STATUS_LINE = re.compile(rb"HTTP/1\.1 ([1-5][0-9][0-9]) [\x20-\x7e]*\r\n")
FIELD_LINE = re.compile(rb"([!#$%&'*+\-.^_`|~0-9A-Za-z]+): ?([\t\x20-\x7e\x80-\xff]*)\r\n")


@dataclass
class ParsedResponse:
    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes
    complete: bool

    def header(self, name: bytes) -> bytes | None:
        for n, v in self.headers:
            if n.lower() == name:
                return v
        return None


def parse_responses(data: bytes, methods: Callable[[int], str | None]) -> list[ParsedResponse]:
    """Parse a server's output strictly.  The last response may be incomplete
    (complete=False); anything malformed raises Violation."""
    out: list[ParsedResponse] = []
    pos = 0
    while pos < len(data):
        m = STATUS_LINE.match(data, pos)
        if m is None:
            if data.find(b"\r\n", pos) == -1 and len(data) - pos < 64:
                out.append(ParsedResponse(0, [], b"", False))  # cut in the status line
                return out
            raise Violation(f"bad status line at {pos}: {data[pos:pos + 80]!r}")
        status = int(m.group(1))
        pos = m.end()
        headers: list[tuple[bytes, bytes]] = []
        while not data.startswith(b"\r\n", pos):
            fm = FIELD_LINE.match(data, pos)
            if fm is None:
                if b"\r\n" not in data[pos:]:
                    out.append(ParsedResponse(status, headers, b"", False))
                    return out
                raise Violation(f"bad field line: {data[pos:pos + 80]!r}")
            headers.append((fm.group(1), fm.group(2)))
            pos = fm.end()
        pos += 2
        resp = ParsedResponse(status, headers, b"", True)
        out.append(resp)
        names = [n.lower() for n, _ in headers]
        for once in (b"content-length", b"transfer-encoding", b"date", b"server"):
            if names.count(once) > 1:
                raise Violation(f"{once!r} twice in a response head")
        if status < 200:
            if status != 100 or headers:
                raise Violation(f"unexpected interim response {status}")
            continue
        cl = resp.header(b"content-length")
        te = resp.header(b"transfer-encoding")
        if cl is not None and te is not None:
            raise Violation("content-length and transfer-encoding in one response")
        app_index = resp.header(b"x-app")
        method = methods(int(app_index)) if app_index is not None else None
        if status in (204, 304) or method == "HEAD":
            if te is not None and status in (204, 304):
                raise Violation(f"transfer-encoding on a {status}")
            continue
        if te is not None:
            if te != b"chunked":
                raise Violation(f"transfer-encoding {te!r}")
            body = bytearray()
            while True:
                eol = data.find(b"\r\n", pos)
                if eol == -1:
                    resp.complete = False
                    resp.body = bytes(body)
                    return out
                size_text = data[pos:eol]
                if not re.fullmatch(rb"[0-9a-f]+", size_text):
                    raise Violation(f"bad chunk size {size_text[:40]!r}")
                size = int(size_text, 16)
                pos = eol + 2
                if size == 0:
                    if data[pos:pos + 2] != b"\r\n":
                        if len(data) - pos < 2:
                            resp.complete = False
                            return out
                        raise Violation("trailers or garbage after the last chunk")
                    pos += 2
                    break
                if len(data) < pos + size + 2:
                    resp.complete = False
                    resp.body = bytes(body + data[pos:pos + size])
                    return out
                body += data[pos:pos + size]
                if data[pos + size:pos + size + 2] != b"\r\n":
                    raise Violation("chunk data not followed by CRLF")
                pos += size + 2
            resp.body = bytes(body)
        elif cl is not None:
            if not cl.isdigit():
                raise Violation(f"content-length {cl!r}")
            n = int(cl)
            resp.body = data[pos:pos + n]
            if len(resp.body) < n:
                resp.complete = False
                return out
            pos += n
        else:  # close-delimited: the rest of the stream
            resp.body = data[pos:]
            pos = len(data)
    return out


# ---------------------------------------------------------------------------
# One run
# ---------------------------------------------------------------------------


@dataclass
class Options:
    """Everything about a run that is not the byte stream itself."""

    cuts: list[int]                  # read boundaries (sorted offsets)
    behaviours: list[str]            # app behaviour per request, cycled
    buffered: bool = True            # get_buffer/buffer_updated, else data_received
    optimizations: int = _core.OPT_ZERO_COPY_BODY | _core.OPT_DIRECT_RESPONSE \
        | _core.OPT_SCOPE_CACHE | _core.OPT_HEADER_NAMES | _core.OPT_LAZY_HEADERS \
        | _core.OPT_STATUS_CACHE
    zero_copy_threshold: int = 16384
    limits: dict[str, int] = field(default_factory=dict)
    write_high_water: int = 1 << 20
    ending: str = "eof"              # eof | reset | reset_early | none
    reset_at: int = 0                # for reset_early: after this many reads
    yields_per_read: int = 1         # loop iterations between reads
    server_event: str = "none"       # none | shutdown | close_all (a server stopping)
    event_at: int = 0                # ... after this many reads

    @classmethod
    def from_seed(cls, seed: bytes, length: int) -> Options:
        """Derive every choice from a few bytes, so that the fuzzer can mutate them."""
        rng = random.Random(seed)
        ncuts = rng.choice([0, 0, 1, 2, 3, 8, length])
        cuts = sorted({rng.randrange(1, length) for _ in range(ncuts)} if length > 1 else set())
        behaviours = [rng.choice(BEHAVIOURS) for _ in range(rng.randint(1, 4))]
        limits: dict[str, int] = {}
        if rng.random() < 0.3:
            limits = {"limit_request_line": rng.choice([16, 40, 100, 8190]),
                      "limit_request_header_size": rng.choice([16, 40, 100, 8190]),
                      "limit_request_headers": rng.choice([1, 2, 5, 100])}
        if rng.random() < 0.2:
            limits["limit_request_body"] = rng.choice([0, 1, 10, 1000])
        if rng.random() < 0.1:
            limits["limit_concurrency"] = 1
        all_opts = cls.__dataclass_fields__["optimizations"].default
        return cls(
            cuts=cuts,
            behaviours=behaviours,
            buffered=rng.random() < 0.8,
            optimizations=all_opts if rng.random() < 0.7 else rng.randrange(0, all_opts + 1),
            zero_copy_threshold=rng.choice([1, 5, 64, 16384]),
            limits=limits,
            write_high_water=rng.choice([0, 16, 1000, 1 << 20]),
            ending=rng.choice(["eof", "eof", "reset", "reset_early", "none"]),
            reset_at=rng.randrange(0, len(cuts) + 2),
            yields_per_read=rng.choice([0, 1, 1, 3]),
            server_event=rng.choice(["none"] * 8 + ["shutdown", "close_all"]),
            event_at=rng.randrange(0, len(cuts) + 2),
        )


@dataclass
class Outcome:
    seen: list[Seen]
    responses: list[ParsedResponse]
    output: bytes
    closed_by_server: bool
    reported: list[tuple[BaseException, bool]]
    logged: list[str]


class Run:
    """Feed one byte stream through a fresh ServerState and one connection."""

    def __init__(self, loop: asyncio.AbstractEventLoop, data: bytes, opts: Options) -> None:
        self.loop = loop
        self.data = data
        self.opts = opts
        self.app = FuzzApp(lambda i: opts.behaviours[i % len(opts.behaviours)])
        self.reported: list[tuple[BaseException, bool]] = []
        self.logged: list[str] = []
        self.state = _core.ServerState(
            self.app, loop, self._report, loop.create_task, None, self.logged.append,
            optimizations=opts.optimizations, zero_copy_threshold=opts.zero_copy_threshold,
            **opts.limits)
        self.protocol = self.state()
        self.transport = FakeTransport(loop, self.protocol, buffered=opts.buffered,
                                       write_high_water=opts.write_high_water)
        self.end_state: tuple[str, int] = ("", 0)  # protocol state, buffer once all is fed

    def _report(self, exc: BaseException, scope: Any, disconnected: bool) -> None:
        self.reported.append((exc, disconnected))

    async def _yield(self, n: int) -> None:
        for _ in range(n):
            await asyncio.sleep(0)
            self.transport.drain()

    @property
    def fed(self) -> int:
        """Bytes handed to the protocol."""
        return self.transport.delivered

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
            self.transport.drain()
            now = self._progress()
            quiet = quiet + 1 if now == last else 0
            last = now
            if (not self.state.tasks and self.transport.lost) or quiet >= 20:
                return
        raise Violation("the connection never settled")

    def _server_event(self) -> None:
        if self.opts.server_event == "shutdown":
            self.state.shutdown()  # graceful: busy connections close after the response
        elif self.opts.server_event == "close_all":
            self.state.close_all()  # forced: every connection closes now

    async def drive(self) -> Outcome:
        t = self.transport
        self.protocol.connection_made(t)
        bounds = [0, *self.opts.cuts, len(self.data)]
        reads = 0
        for a, b in zip(bounds, bounds[1:], strict=False):
            t.queue(self.data[a:b])
            left = b - a
            while left and not t.closed:
                spins = 0
                while t.reading_paused and not t.closed:
                    await self._yield(1)
                    spins += 1
                    if spins > MAX_LOOP_ITERATIONS:
                        raise Violation("reading paused for good: the app cannot catch up")
                if t.closed:
                    break
                left -= t.read(left)
                reads += 1
                if reads == self.opts.event_at:
                    self._server_event()
                if self.opts.ending == "reset_early" and reads >= self.opts.reset_at:
                    break
                await self._yield(self.opts.yields_per_read)
            if t.closed or (self.opts.ending == "reset_early" and reads >= self.opts.reset_at):
                break
        await self._yield(3)
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
        if self.state.tasks:
            raise Violation(f"app tasks still running after connection_lost: {self.state.tasks}")
        return Outcome(self.app.seen, [], bytes(t.out), closed_by_server, self.reported,
                       self.logged)


def check(run: Run, outcome: Outcome) -> list[ParsedResponse]:
    """Every invariant about the output of one run; returns the parsed responses."""
    t = run.transport
    seen = outcome.seen
    if t.violations:
        first = t.violations[0]
        raise Violation(f"transport: {first}") from first.exc
    if run.state.connections != 0 or run.state.active_requests != 0:
        raise Violation(f"counts after the end: {run.state.connections} connections, "
                        f"{run.state.active_requests} requests")
    for exc, disconnected in outcome.reported:
        if isinstance(exc, (AppFailure, _core.ClientDisconnected, asyncio.CancelledError)):
            continue
        if disconnected and isinstance(exc, OSError):
            continue
        raise Violation(f"unexpected exception from the app: {exc!r}") from exc
    for req in seen:
        if not req.finished:
            raise Violation(f"app for request {req.index} never finished")
        for exc in req.send_errors:
            if not isinstance(exc, _core.ClientDisconnected):
                raise Violation(f"send() raised {exc!r}")

    def method_of(i: int) -> str | None:
        return seen[i].method if 0 <= i < len(seen) else None

    responses = parse_responses(outcome.output, method_of)
    outcome.responses = responses
    aborted = run.opts.ending in ("reset", "reset_early", "none") or \
        run.opts.server_event == "close_all"
    next_app = 0
    for k, resp in enumerate(responses):
        last = k == len(responses) - 1
        if resp.status == 100:
            continue
        tag = resp.header(b"x-app")
        if not resp.complete:
            if not last:
                raise Violation("an incomplete response that is not the last")
            behaviour = seen[int(tag)].behaviour if tag is not None else None
            if not aborted and behaviour not in TRUNCATING:
                raise Violation(f"response {k} truncated (app {behaviour}, ending "
                                f"{run.opts.ending})")
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
                owner = seen[next_app].behaviour if next_app < len(seen) else None
                if owner not in MISBEHAVING:
                    raise Violation(f"500 for a well-behaved app ({owner})")
            continue
        if int(tag) != next_app:
            raise Violation(f"app response {tag!r} out of order (expected {next_app})")
        next_app += 1
        if resp.header(b"connection") == b"close" and not aborted:
            if not last:
                raise Violation("a response after connection: close")
            if not t.server_closed:
                raise Violation("connection: close, but the server did not close")
    if next_app > len(seen):
        raise Violation("more app responses than requests")
    return responses


def run_stream(loop: asyncio.AbstractEventLoop, data: bytes, opts: Options) -> tuple[Run, Outcome]:
    run = Run(loop, data, opts)
    unraisable: list[Any] = []
    old_hook = sys.unraisablehook
    sys.unraisablehook = unraisable.append
    try:
        outcome = loop.run_until_complete(run.drive())
    finally:
        sys.unraisablehook = old_hook
    if unraisable:
        u = unraisable[0]
        raise Violation(f"unraisable exception in the core: {u.exc_value!r} ({u.object!r})")
    return run, outcome
