"""What the C HTTP/1.1 protocol writes for each kind of ASGI response.

Responses are read strictly with RawClient, often byte for byte: framing
(Content-Length, chunked, close-delimited), bodies that must not be sent
(HEAD, 204, 304), the server's own headers, header validation (no response
splitting), the send() calls refused before any byte (one table: a clean
500), Connection handling, Expect: 100-continue and write flow control.

A recurring check is "the next request on the same connection is answered
normally": a stray or missing body byte would desynchronise the connection
and make that second response unparseable.

Most tests run on one shared server per event loop: each test registers its
own app under a fresh path (`Shared.add`).  Tests that need a different
configuration start their own server with `serve`.
"""

from __future__ import annotations

import asyncio
import email.utils
import hashlib
import itertools
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.support import apps
from tests.support.clients import IO_TIMEOUT, RawClient, Response, build_request
from tests.support.servers import ServerHandle, run_server

App = Callable[..., Any]

# ---------------------------------------------------------------------------
# Shared server, helpers
# ---------------------------------------------------------------------------


@dataclass
class Router:
    """Dispatches on the path: each test adds its own app."""

    routes: dict[str, App] = field(default_factory=dict)
    counter: Iterator[int] = field(default_factory=itertools.count)

    def add(self, app: App) -> str:
        path = f"/t{next(self.counter)}"
        self.routes[path] = app
        return path

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["path"] == "/ok":
            await apps.send_text(send, b"ok")
            return
        await self.routes[scope["path"]](scope, receive, send)


@dataclass
class Shared:
    handle: ServerHandle
    router: Router

    def add(self, app: App) -> str:
        return self.router.add(app)


@pytest.fixture(scope="module")
def shared(module_loop_name: str) -> Iterator[Shared]:
    """One server per event loop for the whole module (as in test_rejections)."""
    router = Router()
    with run_server(router, loop=module_loop_name) as handle:
        yield Shared(handle, router)


def start(status: int = 200, headers: list[Any] | None = None) -> dict[str, Any]:
    return {"type": "http.response.start", "status": status,
            "headers": headers if headers is not None else []}


def body(data: bytes = b"", more: bool = False) -> dict[str, Any]:
    return {"type": "http.response.body", "body": data, "more_body": more}


def read_head(c: RawClient) -> Response:
    """Only the status line and headers; body bytes stay in c.buf."""
    return c.read_response(head_request=True)


def read_to_eof(c: RawClient) -> bytes:
    """Everything until the server closes (bounded by the socket timeout)."""
    while c._fill():
        pass
    data, c.buf = c.buf, b""
    return data


def assert_next_request_clean(c: RawClient) -> None:
    """The connection is still in sync: a second request parses normally."""
    r = c.request("GET", "/ok")
    assert r.status == 200 and r.body == b"ok", r


def assert_canned_500(r: Response) -> None:
    assert r.status == 500, r
    assert r.header("connection") == "close"
    assert r.body == b"Internal Server Error"


def get(c: RawClient, path: str, method: str = "GET", headers: list[tuple[str, str]] | None = None,
        version: str = "1.1") -> None:
    c.send(build_request(method, path, headers, version=version))


# ---------------------------------------------------------------------------
# Framing chosen by the server
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("size", [0, 5, 16384, 16385, 1024 * 1024])
def test_single_body_message_gets_content_length(shared, size):
    """One final body message and no Content-Length from the app: the server
    adds `content-length` (both for bodies written next to the head and for
    large ones written separately) and keeps the connection."""
    payload = bytes(i % 251 for i in range(size))

    async def app(scope, receive, send):
        await send(start(headers=[(b"content-type", b"application/octet-stream")]))
        await send(body(payload))

    path = shared.add(app)
    with shared.handle.connect() as c:
        r = c.request("GET", path)
        assert r.status == 200
        assert r.header_all("content-length") == [str(size)]
        assert r.header("transfer-encoding") is None
        assert r.header("connection") is None
        assert r.body == payload
        assert_next_request_clean(c)


CHUNKED_CASES = [
    # (messages as (body, more_body), exact bytes expected after the head)
    pytest.param([(b"hello", True), (b" ", True), (b"world", False)],
                 b"5\r\nhello\r\n1\r\n \r\n5\r\nworld\r\n0\r\n\r\n", id="last-with-data"),
    pytest.param([(b"hello", True), (b"world", True), (b"", False)],
                 b"5\r\nhello\r\n5\r\nworld\r\n0\r\n\r\n", id="empty-last"),
    # An empty message in the middle must write nothing: "0\r\n\r\n" there
    # would end the body early.
    pytest.param([(b"a", True), (b"", True), (b"b", True), (b"", False)],
                 b"1\r\na\r\n1\r\nb\r\n0\r\n\r\n", id="empty-in-the-middle"),
    pytest.param([(b"", True), (b"", False)], b"0\r\n\r\n", id="all-empty"),
    pytest.param([(b"x" * 20000, True), (b"y" * 3, False)],
                 b"4e20\r\n" + b"x" * 20000 + b"\r\n3\r\nyyy\r\n0\r\n\r\n", id="large-chunk"),
]


@pytest.mark.parametrize("messages, wire", CHUNKED_CASES)
def test_several_body_messages_are_chunked_for_http11(shared, messages, wire):
    """more_body=True on the first message and no Content-Length: HTTP/1.1 gets
    `transfer-encoding: chunked`, framed exactly, and the connection stays."""

    async def app(scope, receive, send):
        await send(start())
        for data, more in messages:
            await send(body(data, more))

    path = shared.add(app)
    with shared.handle.connect() as c:
        get(c, path)
        r = read_head(c)
        assert r.status == 200
        assert r.header_all("transfer-encoding") == ["chunked"]
        assert r.header("content-length") is None
        assert c._read_exact(len(wire)) == wire
        assert_next_request_clean(c)


def test_streamed_body_for_http10_is_close_delimited(shared):
    """HTTP/1.0 has no chunked coding: a streamed body of unknown length is
    delimited by closing the connection, even if the client asked to keep it."""

    async def app(scope, receive, send):
        await send(start())
        for part in (b"one ", b"two ", b"three"):
            await send(body(part, more=True))
        await send(body())

    path = shared.add(app)
    with shared.handle.connect() as c:
        get(c, path, headers=[("Connection", "keep-alive")], version="1.0")
        r = read_head(c)
        assert r.status == 200
        assert r.header("content-length") is None
        assert r.header("transfer-encoding") is None
        assert r.header("connection") == "close"
        assert read_to_eof(c) == b"one two three"


def test_http10_keep_alive_with_known_length(shared):
    """HTTP/1.0 + `Connection: keep-alive` and a single body message: the
    server answers `connection: keep-alive` and really keeps the connection."""

    async def app(scope, receive, send):
        await send(start())
        await send(body(b"hello"))

    path = shared.add(app)
    with shared.handle.connect() as c:
        for _ in range(2):
            r = c.request("GET", path, headers=[("Connection", "keep-alive")], version="1.0")
            assert r.status == 200 and r.body == b"hello"
            assert r.header("content-length") == "5"
            assert r.header("connection") == "keep-alive"


def test_http10_without_keep_alive_is_closed(shared):
    async def app(scope, receive, send):
        await send(start())
        await send(body(b"hello"))

    path = shared.add(app)
    with shared.handle.connect() as c:
        r = c.request("GET", path, version="1.0")
        assert r.body == b"hello" and r.header("connection") == "close"
        assert c.is_closed()


def test_app_transfer_encoding_chunked_is_framed_by_the_server(shared):
    """An app that declares `transfer-encoding: chunked` itself still sends
    plain bytes; the server ignores the app's header (ASGI: "the server must
    ignore it"), chooses the framing itself and writes its own header once."""

    async def app(scope, receive, send):
        await send(start(headers=[(b"Transfer-Encoding", b"chunked")]))
        await send(body(b"abc", more=True))
        await send(body(b"de"))

    path = shared.add(app)
    with shared.handle.connect() as c:
        get(c, path)
        r = read_head(c)
        assert r.header_all("transfer-encoding") == ["chunked"]
        assert b"Transfer-Encoding" not in r.raw_head  # the app's line is not passed on
        wire = b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
        assert c._read_exact(len(wire)) == wire
        assert_next_request_clean(c)


@pytest.mark.parametrize("value", [b"chunked", b"gzip, chunked", b"gzip", b"identity"])
def test_app_transfer_encoding_is_ignored(shared, value):
    """Whatever Transfer-Encoding the app names, the server frames the body
    itself: one message gets a Content-Length, and the client never reads a
    coding (gzip) the body does not have."""

    async def app(scope, receive, send):
        await send(start(headers=[(b"transfer-encoding", value)]))
        await send(body(b"hello"))

    path = shared.add(app)
    with shared.handle.connect() as c:
        r = c.request("GET", path)
        assert r.status == 200 and r.body == b"hello"
        assert r.header("transfer-encoding") is None
        assert r.header_all("content-length") == ["5"]
        assert_next_request_clean(c)


def test_app_transfer_encoding_chunked_to_http10_client_gets_its_body(shared):
    """A proxy-style app forwards `transfer-encoding: chunked` to an HTTP/1.0
    client: the header is ignored and the client gets the body, close-delimited
    (it cannot read chunks) -- not a 500."""

    async def app(scope, receive, send):
        await send(start(headers=[(b"transfer-encoding", b"chunked")]))
        await send(body(b"hel", more=True))
        await send(body(b"lo"))

    path = shared.add(app)
    with shared.handle.connect() as c:
        r = c.request("GET", path, version="1.0")
        assert r.status == 200 and r.body == b"hello"
        assert r.header("transfer-encoding") is None
        assert c.is_closed()


# ---------------------------------------------------------------------------
# Content-Length declared by the app
# ---------------------------------------------------------------------------


def test_app_content_length_exact(shared):
    """Declared length, sent in two messages: no chunking, header not
    duplicated, connection kept."""

    async def app(scope, receive, send):
        await send(start(headers=[(b"Content-Length", b"5")]))
        await send(body(b"hel", more=True))
        await send(body(b"lo"))

    path = shared.add(app)
    with shared.handle.connect() as c:
        r = c.request("GET", path)
        assert r.body == b"hello"
        assert r.header_all("content-length") == ["5"]
        assert r.header("transfer-encoding") is None
        assert r.header("connection") is None
        assert_next_request_clean(c)


@pytest.mark.parametrize("first_more", [False, True], ids=["first-message", "later-message"])
def test_app_body_longer_than_content_length_raises_and_writes_nothing(shared, first_more):
    """A body message that would exceed the declared Content-Length raises
    RuntimeError in send() and writes none of its bytes: the app can still
    finish the response correctly, and the connection stays in sync."""
    errors: list[BaseException] = []

    async def app(scope, receive, send):
        await send(start(headers=[(b"content-length", b"5")]))
        if first_more:
            await send(body(b"hel", more=True))
        try:
            await send(body(b"lo, world!" if first_more else b"hello, world!"))
        except RuntimeError as exc:
            errors.append(exc)
        await send(body(b"lo" if first_more else b"hello"))

    path = shared.add(app)
    with shared.handle.connect() as c:
        r = c.request("GET", path)
        assert r.status == 200 and r.body == b"hello"
        assert_next_request_clean(c)  # would fail on any stray ", world!" byte
    assert len(errors) == 1, errors


def test_app_body_too_long_after_bytes_went_out_closes(shared):
    """Too long in a later message and the app gives up: the bytes already
    sent stay the only ones, and the connection is closed (the client can
    tell the body is incomplete: it got 3 of 5 bytes)."""

    async def app(scope, receive, send):
        await send(start(headers=[(b"content-length", b"5")]))
        await send(body(b"hel", more=True))
        try:
            await send(body(b"lo, world!"))
        except RuntimeError:
            return

    path = shared.add(app)
    with shared.handle.connect() as c:
        get(c, path)
        r = read_head(c)
        assert r.status == 200 and r.header("content-length") == "5"
        assert read_to_eof(c) == b"hel"


def test_app_body_shorter_than_content_length_closes(shared):
    """The response ends short of the declared length: the client would wait
    for the rest forever on a kept connection, so the server closes it."""

    async def app(scope, receive, send):
        await send(start(headers=[(b"content-length", b"10")]))
        await send(body(b"hello"))

    path = shared.add(app)
    with shared.handle.connect() as c:
        get(c, path)
        r = read_head(c)
        assert r.header("content-length") == "10"
        assert read_to_eof(c) == b"hello"


def test_app_content_length_with_transfer_encoding_frames_by_the_length(shared):
    """Content-Length and Transfer-Encoding from the app: the ignored
    Transfer-Encoding cannot contradict the length, which frames the body."""

    async def app(scope, receive, send):
        await send(start(headers=[(b"content-length", b"5"),
                                  (b"transfer-encoding", b"chunked")]))
        await send(body(b"hel", more=True))
        await send(body(b"lo"))

    path = shared.add(app)
    with shared.handle.connect() as c:
        r = c.request("GET", path)
        assert r.status == 200 and r.body == b"hello"
        assert r.header_all("content-length") == ["5"]
        assert b"transfer-encoding" not in r.raw_head.lower()
        assert_next_request_clean(c)


# ---------------------------------------------------------------------------
# Responses without a body: HEAD, 204, 304
# ---------------------------------------------------------------------------

HEAD_APPS = {
    "single-body": [start(), body(b"hello")],
    "streamed-body": [start(), body(b"hel", True), body(b"lo", True), body()],
    "declared-length": [start(headers=[(b"content-length", b"5")]), body(b"hello")],
    # a HEAD answer may declare the GET length and send nothing
    "declared-length-no-body": [start(headers=[(b"content-length", b"5")]), body()],
}


@pytest.mark.parametrize("messages", list(HEAD_APPS.values()), ids=list(HEAD_APPS))
def test_head_sends_no_body(shared, messages):
    """Whatever the app sends, a HEAD response has no body bytes on the wire,
    and the connection stays usable (a stray byte would break the GET)."""

    async def app(scope, receive, send):
        for message in messages:
            await send(message)

    path = shared.add(app)
    with shared.handle.connect() as c:
        get(c, path, method="HEAD")
        r = read_head(c)
        assert r.status == 200
        assert r.header("connection") is None
        declared = messages[0]["headers"]
        if declared:
            assert r.header_all("content-length") == ["5"]
        assert_next_request_clean(c)
        # and once more, HEAD then GET on the same connection
        get(c, path, method="HEAD")
        read_head(c)
        assert_next_request_clean(c)


@pytest.mark.parametrize("status", [204, 304])
@pytest.mark.parametrize("messages", [
    pytest.param([body()], id="empty"),
    pytest.param([body(b"", True), body()], id="streamed-empty"),
    pytest.param([body(b"oops")], id="body-anyway"),
    pytest.param([body(b"oo", True), body(b"ps")], id="streamed-body-anyway"),
])
def test_no_body_statuses(shared, status, messages):
    """204 and 304 never have a body: no bytes of one, no content-length or
    transfer-encoding added, and the connection stays usable.  If the server
    refuses a body with RuntimeError instead of dropping it, that is fine
    too, as long as nothing reaches the wire."""

    async def app(scope, receive, send):
        await send(start(status))
        for message in messages:
            try:
                await send(message)
            except RuntimeError:
                await send(body())
                return

    path = shared.add(app)
    with shared.handle.connect() as c:
        get(c, path)
        r = read_head(c)
        assert r.status == status
        assert r.header("content-length") is None
        assert r.header("transfer-encoding") is None
        assert r.header("connection") is None
        assert_next_request_clean(c)


def test_304_keeps_the_apps_content_length(shared):
    """A 304 may carry the Content-Length of the full representation; it is
    passed through, no body follows, and the connection is kept."""

    async def app(scope, receive, send):
        await send(start(304, [(b"content-length", b"1234"), (b"etag", b'"v1"')]))
        await send(body())

    path = shared.add(app)
    with shared.handle.connect() as c:
        get(c, path)
        r = read_head(c)
        assert r.status == 304
        assert r.header_all("content-length") == ["1234"]
        assert_next_request_clean(c)


# ---------------------------------------------------------------------------
# server and date headers
# ---------------------------------------------------------------------------


def _hello_path(shared: Shared, headers: list[Any]) -> str:
    async def app(scope, receive, send):
        await send(start(headers=headers))
        await send(body(b"hi"))

    return shared.add(app)


def test_server_and_date_by_default(shared):
    path = _hello_path(shared, [])
    with shared.handle.connect() as c:
        r = c.request("GET", path)
    assert r.header_all("server") == ["carpinus"]
    (date,) = r.header_all("date")
    assert date.endswith(" GMT")
    sent = email.utils.parsedate_to_datetime(date).timestamp()
    assert abs(sent - time.time()) < 5, date


@pytest.mark.parametrize("headers, name, value", [
    ([(b"server", b"mine/1.0")], "server", "mine/1.0"),
    ([(b"Server", b"Mine")], "server", "Mine"),
    ([(b"date", b"Tue, 15 Nov 1994 08:12:31 GMT")], "date", "Tue, 15 Nov 1994 08:12:31 GMT"),
    ([(b"DATE", b"x")], "date", "x"),
])
def test_app_server_or_date_header_appears_once(shared, headers, name, value):
    path = _hello_path(shared, headers)
    with shared.handle.connect() as c:
        r = c.request("GET", path)
    assert r.header_all(name) == [value]
    other = "date" if name == "server" else "server"
    assert len(r.header_all(other)) == 1


@pytest.mark.parametrize("option, name", [("server_header", "server"), ("date_header", "date")])
def test_server_and_date_can_be_turned_off(serve, option, name):
    """The option removes the header from app responses and from the
    server's own error responses alike; the app can still send its own."""

    async def app(scope, receive, send):
        if scope["path"] == "/own":
            await send(start(headers=[(name.encode(), b"app-value")]))
            await send(body(b"hi"))
        elif scope["path"] == "/fail":
            raise RuntimeError("boom")
        else:
            await send(start())
            await send(body(b"hi"))

    handle = serve(app, **{option: False})
    other = "date" if name == "server" else "server"
    with handle.connect() as c:
        r = c.request("GET", "/")
        assert r.header(name) is None and r.header(other) is not None
        r = c.request("GET", "/own")
        assert r.header_all(name) == ["app-value"]
    with handle.connect() as c:
        r = c.request("GET", "/fail")
        assert r.status == 500 and r.header(name) is None
    with handle.connect() as c:
        c.send(b"GET / HTTP/1.1\r\n\r\n")  # no Host: the parser's 400
        r = c.read_response()
        assert r.status == 400 and r.header(name) is None


# ---------------------------------------------------------------------------
# Header validation: no response splitting, no partial heads
# ---------------------------------------------------------------------------

BAD_HEADERS = [
    # (id, the bad header pair, exception the app must see)
    ("name-space", (b"bad name", b"v"), RuntimeError),
    ("name-colon", (b"x:y", b"v"), RuntimeError),
    ("name-empty", (b"", b"v"), RuntimeError),
    ("name-crlf", (b"x\r\nX-Injected", b"1"), RuntimeError),
    ("name-nul", (b"x\x00", b"v"), RuntimeError),
    ("name-tab", (b"x\ty", b"v"), RuntimeError),
    ("name-paren", (b"x(y)", b"v"), RuntimeError),
    ("name-slash", (b"x/y", b"v"), RuntimeError),
    ("name-at", (b"x@y", b"v"), RuntimeError),
    ("name-quote", (b'x"y', b"v"), RuntimeError),
    ("name-obs-text", (b"caf\xc3\xa9", b"v"), RuntimeError),
    ("name-del", (b"x\x7f", b"v"), RuntimeError),
    ("value-cr", (b"x-a", b"a\rb"), RuntimeError),
    ("value-lf", (b"x-a", b"a\nb"), RuntimeError),
    ("value-crlf-injection", (b"x-a", b"a\r\nX-Injected: 1"), RuntimeError),
    ("value-crlfcrlf-split", (b"x-a", b"a\r\n\r\nHTTP/1.1 200 OK\r\nX-Injected: 1"), RuntimeError),
    ("value-nul", (b"x-a", b"a\x00b"), RuntimeError),
    ("value-01", (b"x-a", b"a\x01b"), RuntimeError),
    ("value-esc", (b"x-a", b"\x1b[31mred"), RuntimeError),
    ("value-del", (b"x-a", b"a\x7fb"), RuntimeError),
    ("name-str", ("x-a", b"v"), TypeError),
    ("value-str", (b"x-a", "v"), TypeError),
    ("value-int", (b"x-a", 1), TypeError),
    ("value-none", (b"x-a", None), TypeError),
    ("triple", (b"x-a", b"v", b"w"), TypeError),
    ("bytes-not-pair", b"x-a: v", TypeError),
]


def test_invalid_header_exception_propagating_gives_500(shared):
    """Same, when the app does not catch the error."""

    async def app(scope, receive, send):
        await send(start(headers=[(b"x-a", b"a\r\nX-Injected: 1")]))

    path = shared.add(app)
    with shared.handle.connect() as c:
        get(c, path)
        raw = read_to_eof(c)
    assert raw.startswith(b"HTTP/1.1 500 ")
    assert b"injected" not in raw.lower()


@pytest.mark.parametrize("rejected_headers", [
    pytest.param([(b"transfer-encoding", b"chunked"), (b"bad name", b"v")], id="te-chunked"),
    pytest.param([(b"content-length", b"3"), (b"bad name", b"v")], id="content-length"),
    pytest.param([(b"connection", b"close"), (b"bad name", b"v")], id="connection-close"),
])
def test_rejected_start_leaves_no_state_behind(shared, rejected_headers):
    """A start refused for a bad header must not influence the start that
    follows: the corrected response is framed by its own headers only
    (content-length 5, kept alive), not by what the refused one said."""

    async def app(scope, receive, send):
        try:
            await send(start(headers=rejected_headers))
        except RuntimeError:
            pass
        else:
            raise AssertionError("the bad header was accepted")
        await send(start(headers=[(b"x-retry", b"1")]))
        await send(body(b"hello"))

    path = shared.add(app)
    with shared.handle.connect() as c:
        get(c, path)
        r = read_head(c)
        assert r.status == 200 and r.header("x-retry") == "1"
        assert r.header("transfer-encoding") is None, r.raw_head
        assert r.header("content-length") == "5", r.raw_head
        assert c._read_exact(5) == b"hello"
        assert_next_request_clean(c)


# ---------------------------------------------------------------------------
# A send() refused before any byte went out: the app sees the error, the
# client a clean 500 (bad headers above, bad Content-Length, bad status,
# messages out of order, a body longer than declared)
# ---------------------------------------------------------------------------

ORDER_ERRORS = [
    # (id, messages the app sends in order; the last one must raise)
    ("body-before-start", [body(b"x")]),
    ("start-twice", [start(), start()]),
    ("unknown-type", [{"type": "http.response.bogus"}]),
    ("unknown-type-after-start", [start(), {"type": "http.response.bogus"}]),
    ("websocket-type", [{"type": "websocket.send", "text": "x"}]),
    ("no-type", [{"status": 200}]),
]
INVALID_CONTENT_LENGTHS = [b"abc", b"-1", b"+5", b"5, 6", b"", b"1e3"]
INVALID_STATUSES = [99, 0, -200, 600, 1000, "200", b"200", 200.0, None, 2**70]
OUT_OF_RANGE = (RuntimeError, OverflowError, ValueError)

# (id, messages the app sends in order -- the last one must raise --, the
# exception types it may raise).  No byte of a response went out before.
BAD_SENDS = [
    *[(f"header-{i}", [start(headers=[(b"x-before", b"1"), bad, (b"x-after", b"1")])], (exc,))
      for i, bad, exc in BAD_HEADERS],
    *[(f"content-length-{value.decode() or 'empty'}",
       [start(headers=[(b"content-length", value)])], (RuntimeError,))
      for value in INVALID_CONTENT_LENGTHS],
    *[(f"status-{status!r}", [{"type": "http.response.start", "status": status, "headers": []}],
       OUT_OF_RANGE if isinstance(status, int) else (TypeError,))
      for status in INVALID_STATUSES],
    ("status-missing", [{"type": "http.response.start", "headers": []}],
     (RuntimeError, KeyError)),
    *[(f"order-{i}", messages, (RuntimeError,)) for i, messages in ORDER_ERRORS],
    ("message-not-a-dict", [[("type", "http.response.start")]], (TypeError,)),
    ("body-longer-than-content-length",
     [start(headers=[(b"content-length", b"5"), (b"x-app", b"1")]), body(b"hello, world!")],
     (RuntimeError,)),
]


@pytest.mark.parametrize("messages, raises",
                         [pytest.param(m, r, id=i) for i, m, r in BAD_SENDS])
def test_refused_send_before_any_byte_gives_a_clean_500(shared, messages, raises):
    """The last message raises in the app's send() (the ones before it are
    accepted) and writes nothing.  The app gives up; no byte of its response
    went out, so the client gets the server's own 500 and the connection is
    closed after it: not one byte of the refused head -- not even the valid
    fields before a bad one -- reaches the wire (no response splitting)."""
    errors: list[BaseException] = []

    async def app(scope, receive, send):
        for message in messages[:-1]:
            await send(message)
        try:
            await send(messages[-1])
        except Exception as exc:
            errors.append(exc)
            return
        await send(body(b"should not happen"))

    path = shared.add(app)
    with shared.handle.connect() as c:
        r = c.request("GET", path)
        assert_canned_500(r)
        assert r.reason == "Internal Server Error"
        assert c.is_closed()  # and nothing after the 500
    wire = (r.raw_head + r.body).lower()
    for marker in (b"x-before", b"x-after", b"x-app", b"injected", b"should not", b"200 ok"):
        assert marker not in wire, wire
    assert len(errors) == 1 and type(errors[0]) in raises, errors


def test_body_after_final_body_raises_and_changes_nothing(shared):
    """The response is already complete: the extra message raises and writes
    nothing, so the connection is still in sync."""
    errors: list[BaseException] = []

    async def app(scope, receive, send):
        await send(start())
        await send(body(b"done"))
        for extra in (body(b"extra"), start()):
            try:
                await send(extra)
            except Exception as exc:
                errors.append(exc)

    path = shared.add(app)
    with shared.handle.connect() as c:
        r = c.request("GET", path)
        assert r.status == 200 and r.body == b"done"
        assert_next_request_clean(c)
    assert len(errors) == 2, errors
    # After completion the server may report either an order error or that
    # the connection moved on; both are errors the app sees.
    assert all(isinstance(e, (RuntimeError, OSError)) for e in errors), errors


def test_start_twice_after_bytes_went_out_closes(shared):
    """Once the head is on the wire a second start can only be refused, and
    when the app gives up mid-body the connection is closed without the
    terminating chunk, so the client can tell the body is incomplete."""
    errors: list[BaseException] = []

    async def app(scope, receive, send):
        await send(start())
        await send(body(b"partial", more=True))
        try:
            await send(start(500))
        except RuntimeError as exc:
            errors.append(exc)

    path = shared.add(app)
    with shared.handle.connect() as c:
        get(c, path)
        r = read_head(c)
        assert r.status == 200 and r.header("transfer-encoding") == "chunked"
        rest = read_to_eof(c)
    assert rest == b"7\r\npartial\r\n"  # no "0\r\n\r\n": truncation is visible
    assert len(errors) == 1


@pytest.mark.parametrize("how", ["returns", "raises"])
def test_app_stops_mid_stream_truncates_visibly(shared, how):
    async def app(scope, receive, send):
        await send(start())
        await send(body(b"partial", more=True))
        if how == "raises":
            raise ValueError("app failed mid-stream")

    path = shared.add(app)
    with shared.handle.connect() as c:
        get(c, path)
        r = read_head(c)
        assert r.status == 200
        assert read_to_eof(c) == b"7\r\npartial\r\n"


@pytest.mark.parametrize("stop", ["no-start", "start-only"])
@pytest.mark.parametrize("how", ["returns", "raises"])
def test_app_without_complete_response_gives_500(shared, stop, how):
    async def app(scope, receive, send):
        if stop == "start-only":
            await send(start(headers=[(b"x-app", b"1")]))
        if how == "raises":
            raise ValueError("app failed")

    path = shared.add(app)
    with shared.handle.connect() as c:
        r = c.request("GET", path)
        assert_canned_500(r)
        assert r.header("x-app") is None
        assert c.is_closed()


# ---------------------------------------------------------------------------
# Connection: close
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("value", [b"close", b"Close", b"keep-alive, close", b" CLOSE "])
def test_app_connection_close_closes_after_response(shared, value):
    """The app says close: the header goes out once, the response is
    complete, the socket closes, and a pipelined request is not served."""
    calls: list[str] = []

    async def app(scope, receive, send):
        calls.append(scope["path"])
        await send(start(headers=[(b"connection", value)]))
        await send(body(b"bye"))

    path = shared.add(app)
    with shared.handle.connect() as c:
        c.send(build_request("GET", path) + build_request("GET", path))
        r = c.read_response()
        assert r.body == b"bye"
        assert len(r.header_all("connection")) == 1
        assert c.is_closed()
    assert calls == [path]


def test_request_connection_close(shared):
    """The client says close: the response says so, then the socket closes,
    and a request pipelined after it is not served."""
    calls: list[str] = []

    async def app(scope, receive, send):
        calls.append(scope["path"])
        body_bytes, _ = await apps.read_body(receive)
        await send(start())
        await send(body(body_bytes))

    path = shared.add(app)
    with shared.handle.connect() as c:
        c.send(build_request("POST", path, [("Connection", "close")], b"payload")
               + build_request("GET", path))
        r = c.read_response()
        assert r.body == b"payload"
        assert r.header("connection") == "close"
        assert c.is_closed()
    assert calls == [path]


def test_request_connection_close_with_streamed_response(shared):
    async def app(scope, receive, send):
        await send(start())
        await send(body(b"a", more=True))
        await send(body(b"b"))

    path = shared.add(app)
    with shared.handle.connect() as c:
        r = c.request("GET", path, headers=[("Connection", "close")])
        assert r.body == b"ab" and r.chunked
        assert r.header("connection") == "close"
        assert c.is_closed()


# ---------------------------------------------------------------------------
# Expect: 100-continue
# ---------------------------------------------------------------------------


def _gated_echo(started: threading.Event, gate: threading.Event) -> App:
    """Signals when it runs, waits for the test's go, then reads and echoes."""

    async def app(scope, receive, send):
        started.set()
        await asyncio.get_running_loop().run_in_executor(None, gate.wait, IO_TIMEOUT)
        data, messages = await apps.read_body(receive)
        await send(start(headers=[(b"x-messages", str(len(messages)).encode())]))
        await send(body(data))

    return app


def assert_silent(c: RawClient, seconds: float) -> None:
    """Nothing arrives within `seconds`."""
    c.sock.settimeout(seconds)
    try:
        data = c.sock.recv(1)
    except TimeoutError:
        return
    finally:
        c.sock.settimeout(c.timeout)
    raise AssertionError(f"unexpected bytes from the server: {data!r}")


@pytest.mark.parametrize("framing", ["length", "chunked"])
def test_100_continue_only_when_the_app_reads(shared, framing):
    """The interim response is sent when the app first calls receive(), not
    when the head arrives; it is sent once; then the final response follows
    on the same, still usable connection."""
    started, gate = threading.Event(), threading.Event()
    path = shared.add(_gated_echo(started, gate))
    if framing == "length":
        headers = [("Expect", "100-continue"), ("Content-Length", "10")]
        pieces = [b"hello", b"world"]
    else:
        headers = [("Expect", "100-continue"), ("Transfer-Encoding", "chunked")]
        pieces = [b"5\r\nhello\r\n", b"5\r\nworld\r\n0\r\n\r\n"]
    with shared.handle.connect() as c:
        get(c, path, method="POST", headers=headers)
        assert started.wait(IO_TIMEOUT)
        assert_silent(c, 0.2)  # the app runs but has not asked for the body
        gate.set()
        interim = c.read_response()
        assert interim.status == 100 and interim.raw_head == b"HTTP/1.1 100 Continue"
        for piece in pieces:  # in two writes: receive() is called repeatedly
            c.send(piece)
            time.sleep(0.02)
        r = c.read_response()  # a second 100 would show up here
        assert r.status == 200 and r.body == b"helloworld"
        assert_next_request_clean(c)


def test_no_100_continue_when_the_body_came_with_the_head(shared):
    started, gate = threading.Event(), threading.Event()
    gate.set()
    path = shared.add(_gated_echo(started, gate))
    with shared.handle.connect() as c:
        c.send(build_request("POST", path, [("Expect", "100-continue")], b"hello"))
        r = c.read_response()
        assert r.status == 200 and r.body == b"hello"
        assert_next_request_clean(c)


def test_no_100_continue_without_a_body(shared):
    started, gate = threading.Event(), threading.Event()
    gate.set()
    path = shared.add(_gated_echo(started, gate))
    with shared.handle.connect() as c:
        r = c.request("GET", path, headers=[("Expect", "100-continue")])
        assert r.status == 200 and r.body == b""
        assert_next_request_clean(c)


def test_no_100_continue_for_http10(shared):
    """HTTP/1.0 has no 1xx responses: the server must not send one."""
    started, gate = threading.Event(), threading.Event()
    gate.set()
    path = shared.add(_gated_echo(started, gate))
    with shared.handle.connect() as c:
        get(c, path, method="POST", version="1.0",
            headers=[("Expect", "100-continue"), ("Content-Length", "5")])
        assert started.wait(IO_TIMEOUT)
        assert_silent(c, 0.2)  # the app waits in receive(); no 100 comes
        c.send(b"hello")
        r = c.read_response()
        assert r.status == 200 and r.body == b"hello"


@pytest.mark.parametrize("status", [200, 417])
def test_no_100_continue_when_the_app_answers_without_reading(shared, status):
    """The app decides from the head alone: the client gets the final
    response directly, no 100 before it."""

    async def app(scope, receive, send):
        await send(start(status))
        await send(body(b"decided"))

    path = shared.add(app)
    with shared.handle.connect() as c:
        get(c, path, method="POST", headers=[("Expect", "100-continue"), ("Content-Length", "5")])
        r = c.read_response()
        assert r.status == status and r.body == b"decided"


# ---------------------------------------------------------------------------
# Write flow control
# ---------------------------------------------------------------------------

TOTAL = 20 * 1024 * 1024
PIECE = 64 * 1024


def _piece(i: int) -> bytes:
    """Distinct content per piece, so that loss or reordering is detected."""
    return (b"%08d" % i) * (PIECE // 8)


def _expected_digest() -> str:
    h = hashlib.sha256()
    for i in range(TOTAL // PIECE):
        h.update(_piece(i))
    return h.hexdigest()


def _decode_chunked(data: bytes | bytearray) -> bytes:
    out = bytearray()
    pos = 0
    while True:
        eol = data.index(b"\r\n", pos)
        size = int(data[pos:eol], 16)
        pos = eol + 2
        if size == 0:
            assert data[pos:] == b"\r\n", data[pos:pos + 50]
            return bytes(out)
        out += data[pos:pos + size]
        assert data[pos + size:pos + size + 2] == b"\r\n"
        pos += size + 2


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_large_response_to_a_slow_reader(shared, framing):
    """20 MB in 64 KiB messages to a client that stalls and then reads slowly.

    send() must wait while the transport is paused: while the client has
    read only 1 MB, the app cannot have handed over much more than what the
    kernel buffers hold (client SO_RCVBUF is pinned small; the server's send
    buffer is at most wmem_max, 4 MB here).  An app that could run ahead
    would have sent all 20 MB into an ever-growing transport buffer.
    Then everything must arrive intact, in order.
    """
    progress = {"sent": 0, "done": False}

    async def app(scope, receive, send):
        headers = [(b"content-length", str(TOTAL).encode())] if framing == "content-length" else []
        await send(start(headers=headers))
        for i in range(TOTAL // PIECE):
            await send(body(_piece(i), more=True))
            progress["sent"] += PIECE
        await send(body())
        progress["done"] = True

    path = shared.add(app)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)  # before connect: no autotuning
    sock.settimeout(IO_TIMEOUT)
    try:
        sock.connect((shared.handle.host, shared.handle.port))
        if shared.handle.tls is not None:  # the TLS leg: the small buffer stays beneath
            sock = shared.handle.tls.wrap_socket(sock, server_hostname=shared.handle.host)
        sock.sendall(build_request("GET", path))
        buf = bytearray()
        while b"\r\n\r\n" not in buf:
            chunk = sock.recv(65536)
            assert chunk, "closed before the head"
            buf += chunk
        head, _, rest = bytes(buf).partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 ")
        data = bytearray(rest)
        while len(data) < 1024 * 1024:
            chunk = sock.recv(65536)
            assert chunk
            data += chunk
        time.sleep(0.3)  # stalled reader: the server must stop the app
        stalled_at = progress["sent"]
        assert not progress["done"]
        assert stalled_at < 10 * 1024 * 1024, f"app ran ahead to {stalled_at} bytes"
        wire_total = TOTAL if framing == "content-length" else None
        while True:
            if wire_total is not None and len(data) >= wire_total:
                break
            if wire_total is None and data.endswith(b"\r\n0\r\n\r\n"):
                break
            chunk = sock.recv(65536)
            assert chunk, f"closed after {len(data)} bytes"
            data += chunk
            time.sleep(0.0005)  # a slow reader throughout
    finally:
        sock.close()
    payload = bytes(data) if framing == "content-length" else _decode_chunked(data)
    assert len(payload) == TOTAL
    assert hashlib.sha256(payload).hexdigest() == _expected_digest()


def test_large_response_over_httpx(shared):
    """The same stream read by an independent HTTP client."""

    async def app(scope, receive, send):
        await send(start())
        for i in range(64):
            await send(body(_piece(i), more=True))
        await send(body())

    path = shared.add(app)
    r = shared.handle.get(path)
    assert r.status_code == 200 and r.headers["transfer-encoding"] == "chunked"
    assert r.content == b"".join(_piece(i) for i in range(64))
