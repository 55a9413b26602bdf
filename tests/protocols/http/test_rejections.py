"""What the C HTTP/1.1 protocol must refuse, and the near misses it must accept.

The contract is src/carpinus/_core/parser.h (RFC 9112, strict).  Every
rejection below is checked the same way, by `assert_rejected`:

  1. the response has the expected status and carries `connection: close`;
  2. the server then closes that connection (no second chance on a socket
     whose framing can no longer be trusted);
  3. a NEW connection to the same server still gets a 200.

The rows are the request spec, tests/spec/ (raw bytes in, status out, with
why), which the parser's C tests and the fuzz corpus read too; this module
sends each over a real socket.  Most rows run against one shared server per
event loop (default config), which also proves that a long series of hostile
requests leaves the server healthy; tests that need a custom limit start
their own server.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.spec import ACCEPTED, CHUNKED_POST, REJECTED, SMUGGLING, Accepted, H, Rejected
from tests.support.clients import RawClient, build_request
from tests.support.servers import ServerHandle, run_server

# ---------------------------------------------------------------------------
# The app and the checks every test shares
# ---------------------------------------------------------------------------


class RecordingEcho:
    """Echoes what it was given as JSON, and records every invocation.

    It reads the whole body before it answers, so when a body is malformed
    the server finds out before the app could respond, and the server's own
    error response is what the client sees.  When receive() says
    http.disconnect (the server rejected the body) it returns quietly.
    """

    def __init__(self) -> None:
        self.paths: list[str] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        self.paths.append(scope["path"])  # recorded on entry: counts invocations
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message["body"]
            if not message.get("more_body", False):
                break
        payload = {
            "method": scope["method"],
            "path": scope["path"],
            "http_version": scope["http_version"],
            "headers": [[n.decode("latin-1"), v.decode("latin-1")] for n, v in scope["headers"]],
            "body": body.decode("latin-1"),
        }
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": json.dumps(payload).encode()})


@dataclass
class Shared:
    handle: ServerHandle
    app: RecordingEcho
    loop: str


@pytest.fixture(scope="module")
def shared(module_loop_name: str) -> Iterator[Shared]:
    """One default-config server per event loop for the whole table.

    Starting a server per row would cost a shutdown tick (~0.5 s) each; the
    rows only ever use fresh connections, so sharing one is sound -- and a
    rejection that damaged the server would show up in every later row.
    """
    app = RecordingEcho()
    with run_server(app, loop=module_loop_name) as handle:
        yield Shared(handle, app, module_loop_name)


def send_byte_by_byte(client: RawClient, raw: bytes) -> None:
    """RawClient.send_slowly, tolerating a server that answers (and closes)
    before the last byte: it may reject as soon as the error is certain.

    The first byte goes alone, then a short pause, so that the server has
    certainly seen (and parsed) a partial head before the rest trickles in;
    otherwise its first read could catch the whole request at once."""
    try:
        client.send(raw[:1])
        time.sleep(0.05)
        client.send_slowly(raw[1:])
    except (BrokenPipeError, ConnectionResetError):
        pass


def assert_serves(handle: ServerHandle) -> None:
    """A new connection still gets a good answer."""
    with handle.connect() as c:
        r = c.request("GET", "/still-alive")
        assert r.status == 200, r


def assert_rejected(handle: ServerHandle, raw: bytes, status: int, *, slowly: bool = False) -> None:
    """The status, `connection: close`, the close itself, and a healthy server."""
    with handle.connect() as c:
        if slowly:
            send_byte_by_byte(c, raw)
        else:
            c.send(raw)
        r = c.read_response()
        assert r.status == status, (r.status, r.reason, raw[:120])
        assert r.header("connection") == "close", r.headers
        assert r.header("content-length") == str(len(r.body))
        assert c.is_closed(), "the server kept a rejected connection open"
    assert_serves(handle)


def assert_silent(client: RawClient, seconds: float) -> None:
    """Nothing arrives within `seconds`: the server is (rightly) still waiting."""
    client.sock.settimeout(seconds)
    try:
        data = client.sock.recv(1)
    except TimeoutError:
        return
    finally:
        client.sock.settimeout(client.timeout)
    raise AssertionError(f"server answered too early: {data!r}")


# ---------------------------------------------------------------------------
# The table of rejections: tests/spec/rejected.py
# ---------------------------------------------------------------------------

# A representative few, also sent one byte at a time: same verdict whatever
# the split (the parser must not decide differently on a partial line).
SLOW_IDS = {
    "obs-fold-space", "cl-and-te", "chunk-size-zz", "chunk-data-no-crlf",
    "request-line-8300-no-crlf", "bare-cr-field", "http-2.0",
    # a bare CR in a line that has no LF yet: answered when the byte after
    # the CR arrives, not at the request-header timeout (408)
    "bare-cr-request-line-no-lf-yet", "bare-cr-field-no-lf-yet",
}


def _params(rows: list[Rejected]) -> list[Any]:
    return [pytest.param(row.raw, row.status, id=row.name) for row in rows]


@pytest.mark.parametrize("raw, status", _params(REJECTED))
def test_rejected(shared, raw, status):
    handle = shared.handle
    assert_rejected(handle, raw, status)


@pytest.mark.parametrize("raw, status",
                         _params([row for row in REJECTED if row.name in SLOW_IDS]))
def test_rejected_one_byte_at_a_time(shared, raw, status):
    handle = shared.handle
    assert_rejected(handle, raw, status, slowly=True)


def test_slow_ids_exist():
    """Guard against a renamed row silently dropping out of the slow subset."""
    assert SLOW_IDS <= {row.name for row in REJECTED}


# ---------------------------------------------------------------------------
# Limits: the exact boundary is accepted, one byte (or field) more is not
# ---------------------------------------------------------------------------


def request_line_of(length: int) -> bytes:
    """A valid GET request line exactly `length` bytes long (CRLF excluded)."""
    pad = length - len(b"GET / HTTP/1.1")
    assert pad >= 0
    return b"GET /" + b"a" * pad + b" HTTP/1.1"


def header_line_of(length: int) -> bytes:
    """A valid field line exactly `length` bytes long (CRLF excluded)."""
    pad = length - len(b"X-Long: ")
    assert pad >= 1
    return b"X-Long: " + b"v" * pad


def head_with_fields(count: int) -> bytes:
    """A GET head with exactly `count` field lines, Host included."""
    return (b"GET / HTTP/1.1\r\n" + H
            + b"".join(b"X-%d: v\r\n" % i for i in range(count - 1)) + b"\r\n")


def assert_accepted(handle: ServerHandle, raw: bytes) -> None:
    with handle.connect() as c:
        c.send(raw)
        r = c.read_response()
        assert r.status == 200, (r.status, r.body[:200])
        assert c.request("GET", "/next").status == 200  # framing consumed exactly


@pytest.fixture
def limits_server(request: pytest.FixtureRequest,
                  shared: Shared) -> Iterator[tuple[ServerHandle, dict[str, Any]]]:
    """The shared server for the default limits; for a custom limit, a fresh
    server on the same event loop."""
    options: dict[str, Any] = request.param
    if not options:
        yield shared.handle, options
        return
    with run_server(RecordingEcho(), loop=shared.loop, **options) as handle:
        yield handle, options


@pytest.mark.parametrize("limits_server", [{}, {"limit_request_line": 100}],
                         ids=["default", "custom-100"], indirect=True)
def test_request_line_limit(limits_server):
    handle, options = limits_server
    limit = options.get("limit_request_line", 8190)
    assert_accepted(handle, request_line_of(limit) + b"\r\n" + H + b"\r\n")
    assert_rejected(handle, request_line_of(limit + 1) + b"\r\n" + H + b"\r\n", 414)
    # No line end at all: 414 as soon as the line is certainly too long, with
    # the client still connected and silent (no need to wait for the rest).
    assert_rejected(handle, b"GET /" + b"a" * (limit + 100), 414)


# timeout_request_header=2: a server that fails to see the over-long line
# answers 408 after 2 s instead of 414 at once -- a quick, telling failure.
SLOW_LINE_LIMITS = [{}, {"limit_request_line": 100, "timeout_request_header": 2.0}]
SLOW_FIELD_LIMITS = [{}, {"limit_request_header_size": 100, "timeout_request_header": 2.0}]


@pytest.mark.parametrize("limits_server", SLOW_LINE_LIMITS, ids=["default", "custom-100"],
                         indirect=True)
def test_request_line_limit_one_byte_at_a_time(limits_server):
    """An endless request line trickling in is cut off with 414 as soon as it
    is longer than limit_request_line -- whatever the other limits are."""
    handle, options = limits_server
    limit = options.get("limit_request_line", 8190)
    assert_rejected(handle, b"GET /" + b"a" * (limit + 100), 414, slowly=True)


@pytest.mark.parametrize("limits_server", SLOW_FIELD_LIMITS, ids=["default", "custom-100"],
                         indirect=True)
def test_header_line_limit_one_byte_at_a_time(limits_server):
    """Same for a field line trickling in: 431 once it passes
    limit_request_header_size."""
    handle, options = limits_server
    limit = options.get("limit_request_header_size", 8190)
    raw = b"GET / HTTP/1.1\r\n" + H + header_line_of(limit + 100)
    assert_rejected(handle, raw, 431, slowly=True)


def test_request_line_at_limit_waits_for_its_lf(shared):
    """A line exactly at the limit plus its CR is a valid prefix: the server
    must wait for the LF rather than call it too long."""
    handle = shared.handle
    with handle.connect() as c:
        c.send(request_line_of(8190) + b"\r")
        assert_silent(c, 0.3)
        c.send(b"\n" + H + b"\r\n")
        assert c.read_response().status == 200


@pytest.mark.parametrize("limits_server", [{}, {"limit_request_header_size": 100}],
                         ids=["default", "custom-100"], indirect=True)
def test_header_line_limit(limits_server):
    handle, options = limits_server
    limit = options.get("limit_request_header_size", 8190)
    ok = b"GET / HTTP/1.1\r\n" + H + header_line_of(limit) + b"\r\n\r\n"
    too_long = b"GET / HTTP/1.1\r\n" + H + header_line_of(limit + 1) + b"\r\n\r\n"
    assert_accepted(handle, ok)
    assert_rejected(handle, too_long, 431)
    assert_rejected(handle, b"GET / HTTP/1.1\r\n" + H + header_line_of(limit + 100), 431)


@pytest.mark.parametrize("limits_server", [{}, {"limit_request_headers": 5}],
                         ids=["default", "custom-5"], indirect=True)
def test_header_count_limit(limits_server):
    handle, options = limits_server
    limit = options.get("limit_request_headers", 100)
    assert_accepted(handle, head_with_fields(limit))
    assert_rejected(handle, head_with_fields(limit + 1), 431)


def test_trailer_fields_count_against_the_header_limit(serve):
    """Trailers are field lines too: more than limit_request_headers is a 431."""
    handle = serve(RecordingEcho(), limit_request_headers=5)
    trailers = b"".join(b"X-T%d: v\r\n" % i for i in range(5))
    assert_accepted(handle, CHUNKED_POST + b"0\r\n" + trailers + b"\r\n")
    extra = b"".join(b"X-T%d: v\r\n" % i for i in range(6))
    assert_rejected(handle, CHUNKED_POST + b"0\r\n" + extra + b"\r\n", 431)


def test_trailer_line_length_limit(serve):
    handle = serve(RecordingEcho(), limit_request_header_size=100)
    assert_accepted(handle, CHUNKED_POST + b"0\r\n" + header_line_of(100) + b"\r\n\r\n")
    assert_rejected(handle, CHUNKED_POST + b"0\r\n" + header_line_of(101) + b"\r\n\r\n", 431)


# -- 413 ---------------------------------------------------------------------


def test_content_length_over_body_limit(serve):
    """413 from the head alone: the server must not wait for the body."""
    app = RecordingEcho()
    handle = serve(app, limit_request_body=10)
    post = b"POST / HTTP/1.1\r\n" + H
    assert_accepted(handle, post + b"Content-Length: 10\r\n\r\n0123456789")
    assert_rejected(handle, post + b"Content-Length: 11\r\n\r\n", 413)
    assert_rejected(handle, post + b"Content-Length: 99999999999\r\n\r\n", 413)
    # the 413s never reached the app (each rejection ends with a good request)
    assert app.paths == ["/", "/next", "/still-alive", "/still-alive"]


def test_chunked_body_growing_over_body_limit(serve):
    handle = serve(RecordingEcho(), limit_request_body=10)
    assert_accepted(handle, CHUNKED_POST + b"6\r\n012345\r\n4\r\n6789\r\n0\r\n\r\n")
    assert_rejected(handle, CHUNKED_POST + b"6\r\n012345\r\n5\r\n6789X\r\n0\r\n\r\n", 413)


def test_chunked_body_over_limit_in_pieces(serve):
    """The limit is enforced as data arrives, not only when the body ends."""
    handle = serve(RecordingEcho(), limit_request_body=10)
    with handle.connect() as c:
        c.send(CHUNKED_POST + b"6\r\n012345\r\n")
        assert_silent(c, 0.2)  # 6 bytes: fine so far
        c.send(b"6\r\n6789AB\r\n")  # 12 > 10, and the body has not ended
        r = c.read_response()
        assert r.status == 413
        assert r.header("connection") == "close"
        assert c.is_closed()
    assert_serves(handle)


# ---------------------------------------------------------------------------
# Requests that must be accepted
# ---------------------------------------------------------------------------

# tests/spec/accepted.py: the bytes and what the parser makes of them (rows
# with a `server` reason, e.g. HEAD or a WebSocket handshake, are not sent).


@pytest.mark.parametrize("row", [pytest.param(row, id=row.name) for row in ACCEPTED
                                 if not row.server])
@pytest.mark.parametrize("feed", ["whole", "byte-by-byte"])
def test_accepted(shared, row: Accepted, feed):
    """The app sees exactly what was sent -- the method, the version, every
    field (names lower-cased), the body -- and the connection is still in
    sync: a second request on it is answered normally, when the request asks
    for a persistent connection, and it is closed when it does not."""
    handle = shared.handle
    with handle.connect() as c:
        if feed == "whole":
            c.send(row.raw)
        else:
            c.send_slowly(row.raw)
        r = c.read_response()
        while r.status == 100:  # Expect: 100-continue, answered before the body is read
            r = c.read_response()
        assert r.status == 200, (r.status, r.body[:200])
        seen = json.loads(r.body)
        assert seen["method"] == row.method.decode("latin-1")
        assert seen["http_version"] == row.version
        assert seen["headers"] == [[name.decode("latin-1").lower(), value.decode("latin-1")]
                                   for name, value in row.headers]
        assert seen["body"] == row.data.decode("latin-1")
        if row.persistent:
            follow = c.request("GET", "/follow-up")
            assert follow.status == 200 and json.loads(follow.body)["path"] == "/follow-up"
        else:
            assert c.is_closed()


# ---------------------------------------------------------------------------
# Pipelining and request smuggling
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("bad, status", [
    pytest.param(b"GET / HTTP/1.1\r\n" + H + b"X-A: b\r\n c\r\n\r\n", 400, id="obs-fold"),
    pytest.param(b"GET / HTTP/9.9\r\n" + H + b"\r\n", 505, id="http-9.9"),
    pytest.param(b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\n" + H + b"\r\n", 414, id="414"),
    pytest.param(CHUNKED_POST + b"zz\r\n", 400, id="bad-chunk"),
])
def test_good_then_bad_in_one_write(serve, bad, status):
    """Responses stay in order: the good request's complete response first,
    then the error, then the close -- never the error inside the response."""
    app = RecordingEcho()
    handle = serve(app)
    good = build_request("POST", "/good", body=b"payload")
    with handle.connect() as c:
        c.send(good + bad)
        first = c.read_response()
        assert first.status == 200
        assert json.loads(first.body)["body"] == "payload"
        second = c.read_response()
        assert second.status == status
        assert second.header("connection") == "close"
        assert c.is_closed()
    assert_serves(handle)
    assert app.paths[0] == "/good"


def test_bad_request_waits_for_slow_good_response(serve):
    """Even when the app is slow, the error for the pipelined request is not
    written until the response before it is complete."""
    import asyncio

    async def slow(scope, receive, send):
        await asyncio.sleep(0.2)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"x" * 1000, "more_body": True})
        await asyncio.sleep(0.05)
        await send({"type": "http.response.body", "body": b"y" * 1000})

    handle = serve(slow)
    with handle.connect() as c:
        c.send(build_request("GET", "/slow") + b"GET / HTTP/1.1\r\n" + H + b" fold\r\n\r\n")
        first = c.read_response()
        assert first.status == 200 and first.body == b"x" * 1000 + b"y" * 1000
        second = c.read_response()
        assert second.status == 400 and second.header("connection") == "close"
        assert c.is_closed()


# tests/spec/smuggling.py.  A row rejected in its head never reaches the app; a
# row whose head is fine and whose chunked body is not may reach it once for
# "/" (or not at all, when the bad body arrives with the head and is refused
# before the app starts), but never for the smuggled request.
@pytest.mark.parametrize("raw, status, max_invocations",
                         [pytest.param(row.raw, row.status, int(row.in_body), id=row.name)
                          for row in SMUGGLING])
@pytest.mark.parametrize("feed", ["whole", "byte-by-byte"])
def test_smuggling_never_yields_a_second_request(shared, raw, status, max_invocations, feed):
    """Whatever the framing trick, the server answers one error and closes;
    the hidden request never reaches the app."""
    start = len(shared.app.paths)  # tests run one at a time: count from here
    # assert_rejected ends with one good request of its own, "/still-alive",
    # which also guarantees that any app task started earlier has run.
    assert_rejected(shared.handle, raw, status, slowly=feed == "byte-by-byte")
    paths = shared.app.paths[start:]
    assert paths[-1] == "/still-alive"
    assert "/smuggled" not in paths
    before = paths[:-1]
    assert before == ["/"] * len(before) and len(before) <= max_invocations, paths


@pytest.mark.tcp_only("over TLS the close is a close_notify, after which uvloop's TLS layer "
                     "reads and drops data until the client's own (or 30 s): writes succeed")
def test_rejected_connection_is_fully_closed(shared):
    """Closed means closed, not half-closed: the server no longer reads the
    socket, so writing to it soon fails (RST / EPIPE)."""
    handle = shared.handle
    with handle.connect() as c:
        c.send(b"GET / HTTP/1.1\r\n\r\n")  # no Host
        assert c.read_response().status == 400
        assert c.is_closed()
        with pytest.raises(OSError):
            for _ in range(50):  # bounded: 0.5 s at most
                c.sock.sendall(build_request("GET", "/after-close"))
                time.sleep(0.01)
