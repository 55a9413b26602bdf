"""What the C HTTP/1.1 protocol must refuse, and the near misses it must accept.

The contract is src/carpinus/_core/parser.h (RFC 9112, strict).  Every
rejection below is checked the same way, by `assert_rejected`:

  1. the response has the expected status and carries `connection: close`;
  2. the server then closes that connection (no second chance on a socket
     whose framing can no longer be trusted);
  3. a NEW connection to the same server still gets a 200.

The tables are meant to be read as documentation: raw bytes in, status out.
Most rows run against one shared server per event loop (default config),
which also proves that a long series of hostile requests leaves the server
healthy; tests that need a custom limit start their own server.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

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
# The table of rejections
# ---------------------------------------------------------------------------

H = b"Host: a\r\n"  # the minimal valid Host line, to keep rows short

CHUNKED_POST = b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n"

REJECTIONS: list[tuple[str, bytes, int]] = [
    # -- 400: malformed request line ---------------------------------------
    ("line-method-only", b"GET\r\n" + H + b"\r\n", 400),
    ("line-no-version", b"GET /\r\n" + H + b"\r\n", 400),
    ("line-empty-version", b"GET / \r\n" + H + b"\r\n", 400),
    ("line-two-spaces-after-method", b"GET  / HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("line-two-spaces-before-version", b"GET /  HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("line-leading-space", b" GET / HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("line-tab-after-method", b"GET\t/ HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("line-tab-before-version", b"GET /\tHTTP/1.1\r\n" + H + b"\r\n", 400),
    ("line-lowercase-http", b"GET / http/1.1\r\n" + H + b"\r\n", 400),
    ("line-trailing-space", b"GET / HTTP/1.1 \r\n" + H + b"\r\n", 400),
    ("line-extra-word", b"GET / HTTP/1.1 extra\r\n" + H + b"\r\n", 400),
    ("version-no-minor", b"GET / HTTP/1\r\n" + H + b"\r\n", 400),
    ("version-two-digit-minor", b"GET / HTTP/1.10\r\n" + H + b"\r\n", 400),
    ("version-two-digit-major", b"GET / HTTP/11.1\r\n" + H + b"\r\n", 400),
    ("version-letter", b"GET / HTTP/1.x\r\n" + H + b"\r\n", 400),
    ("version-missing-slash", b"GET / HTTP1.1\r\n" + H + b"\r\n", 400),
    ("too-many-empty-lines-first", b"\r\n" * 9 + b"GET / HTTP/1.1\r\n" + H + b"\r\n", 400),
    # -- 400: bad method token ---------------------------------------------
    ("method-paren", b"GE(T / HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("method-slash", b"GE/T / HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("method-nul", b"GE\x00T / HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("method-obs-text", b"G\xc9T / HTTP/1.1\r\n" + H + b"\r\n", 400),
    # -- 400: bad request-target -------------------------------------------
    ("target-nul", b"GET /a\x00b HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("target-ctl-01", b"GET /a\x01b HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("target-del", b"GET /a\x7fb HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("target-space", b"GET /a b HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("target-not-slash", b"GET foo HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("target-asterisk-with-get", b"GET * HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("target-asterisk-not-alone", b"OPTIONS */x HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("target-absolute-no-authority", b"GET http:///x HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("target-absolute-userinfo", b"GET http://u@h/x HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("target-other-scheme", b"GET ftp://h/x HTTP/1.1\r\n" + H + b"\r\n", 400),
    # -- 400: malformed field lines ----------------------------------------
    ("obs-fold-space", b"GET / HTTP/1.1\r\n" + H + b"X-A: b\r\n c\r\n\r\n", 400),
    ("obs-fold-tab", b"GET / HTTP/1.1\r\n" + H + b"X-A: b\r\n\tc\r\n\r\n", 400),
    ("obs-fold-first-field", b"GET / HTTP/1.1\r\n Host: a\r\n\r\n", 400),
    ("space-before-colon", b"GET / HTTP/1.1\r\n" + H + b"X-A : b\r\n\r\n", 400),
    ("tab-before-colon", b"GET / HTTP/1.1\r\n" + H + b"X-A\t: b\r\n\r\n", 400),
    ("space-before-colon-host", b"GET / HTTP/1.1\r\nHost : a\r\n\r\n", 400),
    ("empty-field-name", b"GET / HTTP/1.1\r\n" + H + b": b\r\n\r\n", 400),
    ("no-colon", b"GET / HTTP/1.1\r\n" + H + b"X-A b\r\n\r\n", 400),
    ("name-not-token", b"GET / HTTP/1.1\r\n" + H + b"X(A): b\r\n\r\n", 400),
    ("name-obs-text", b"GET / HTTP/1.1\r\n" + H + b"X-\xe9: b\r\n\r\n", 400),
    ("value-nul", b"GET / HTTP/1.1\r\n" + H + b"X-A: a\x00b\r\n\r\n", 400),
    ("value-ctl-01", b"GET / HTTP/1.1\r\n" + H + b"X-A: a\x01b\r\n\r\n", 400),
    ("value-ctl-1f", b"GET / HTTP/1.1\r\n" + H + b"X-A: a\x1fb\r\n\r\n", 400),
    ("value-del", b"GET / HTTP/1.1\r\n" + H + b"X-A: a\x7fb\r\n\r\n", 400),
    # -- 400: line endings ---------------------------------------------------
    ("bare-lf-everywhere", b"GET / HTTP/1.1\nHost: a\n\n", 400),
    ("bare-lf-request-line", b"GET / HTTP/1.1\n" + H + b"\r\n", 400),
    ("bare-lf-field", b"GET / HTTP/1.1\r\nHost: a\n\r\n", 400),
    ("bare-lf-end-of-head", b"GET / HTTP/1.1\r\n" + H + b"\n", 400),
    ("bare-lf-in-name", b"GET / HTTP/1.1\r\n" + H + b"X-A\n: b\r\n\r\n", 400),
    ("bare-cr-request-line", b"GET / HTTP/1.1\rHost: a\r\n\r\n", 400),
    ("bare-cr-in-target", b"GET /\r HTTP/1.1\r\n" + H + b"\r\n", 400),
    ("bare-cr-field", b"GET / HTTP/1.1\r\nHost: a\rX-A: b\r\n\r\n", 400),
    ("bare-cr-in-value", b"GET / HTTP/1.1\r\n" + H + b"X-A: a\rb\r\n\r\n", 400),
    # -- 400: Content-Length -----------------------------------------------
    ("cl-and-te", b"POST / HTTP/1.1\r\n" + H
     + b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    ("te-and-cl", b"POST / HTTP/1.1\r\n" + H
     + b"Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n", 400),
    ("cl-two-fields-differ", b"POST / HTTP/1.1\r\n" + H
     + b"Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!", 400),
    ("cl-list-differs", b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 5, 6\r\n\r\nhello!", 400),
    ("cl-list-trailing-comma", b"POST / HTTP/1.1\r\n" + H
     + b"Content-Length: 5,\r\n\r\nhello", 400),
    ("cl-abc", b"POST / HTTP/1.1\r\n" + H + b"Content-Length: abc\r\n\r\n", 400),
    ("cl-plus", b"POST / HTTP/1.1\r\n" + H + b"Content-Length: +5\r\n\r\nhello", 400),
    ("cl-hex", b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 0x5\r\n\r\nhello", 400),
    ("cl-negative", b"POST / HTTP/1.1\r\n" + H + b"Content-Length: -1\r\n\r\n", 400),
    ("cl-two-numbers", b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 5 5\r\n\r\nhello", 400),
    ("cl-empty", b"POST / HTTP/1.1\r\n" + H + b"Content-Length:\r\n\r\n", 400),
    ("cl-decimal-point", b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 5.0\r\n\r\nhello", 400),
    ("cl-overflow", b"POST / HTTP/1.1\r\n" + H
     + b"Content-Length: 99999999999999999999999\r\n\r\n", 400),
    ("cl-2-pow-64-plus-5", b"POST / HTTP/1.1\r\n" + H  # wraps to 5 in a 64-bit accumulator
     + b"Content-Length: 18446744073709551621\r\n\r\nhello", 400),
    # -- 400: Host ---------------------------------------------------------
    ("host-missing-http11", b"GET / HTTP/1.1\r\n\r\n", 400),
    ("host-missing-other-fields", b"GET / HTTP/1.1\r\nX-A: b\r\n\r\n", 400),
    ("host-twice", b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
    ("host-twice-same", b"GET / HTTP/1.1\r\nHost: a\r\nhost: a\r\n\r\n", 400),
    ("host-with-space", b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400),
    ("host-with-slash", b"GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", 400),
    # -- 400: Transfer-Encoding ------------------------------------------
    ("te-in-http10", b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    ("te-chunked-twice-list", b"POST / HTTP/1.1\r\n" + H
     + b"Transfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n", 400),
    ("te-chunked-twice-fields", b"POST / HTTP/1.1\r\n" + H
     + b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    ("te-chunked-with-params", b"POST / HTTP/1.1\r\n" + H
     + b"Transfer-Encoding: chunked;q=1\r\n\r\n0\r\n\r\n", 400),
    ("te-empty", b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding:\r\n\r\n", 400),
    ("te-garbage", b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked \"x\"\r\n\r\n", 400),
    # -- 400: chunked framing (the head is fine; the body is not) ------------
    ("chunk-size-zz", CHUNKED_POST + b"zz\r\nhello\r\n0\r\n\r\n", 400),
    ("chunk-size-negative", CHUNKED_POST + b"-1\r\nhello\r\n0\r\n\r\n", 400),
    ("chunk-size-leading-space", CHUNKED_POST + b" 5\r\nhello\r\n0\r\n\r\n", 400),
    ("chunk-size-0x", CHUNKED_POST + b"0x5\r\nhello\r\n0\r\n\r\n", 400),
    ("chunk-size-empty", CHUNKED_POST + b"\r\nhello\r\n0\r\n\r\n", 400),
    ("chunk-size-trailing-space", CHUNKED_POST + b"5 \r\nhello\r\n0\r\n\r\n", 400),
    ("chunk-size-17-digits", CHUNKED_POST + b"10000000000000005\r\nhello\r\n0\r\n\r\n", 400),
    ("chunk-size-17-f", CHUNKED_POST + b"fffffffffffffffff\r\nhello\r\n0\r\n\r\n", 400),
    ("chunk-size-over-2-pow-62", CHUNKED_POST + b"4000000000000001\r\nhello\r\n0\r\n\r\n", 400),
    ("chunk-data-no-crlf", CHUNKED_POST + b"5\r\nhello0\r\n\r\n", 400),
    ("chunk-data-xx-not-crlf", CHUNKED_POST + b"5\r\nhelloXX0\r\n\r\n", 400),
    ("chunk-data-too-long", CHUNKED_POST + b"5\r\nhello!\r\n0\r\n\r\n", 400),
    ("chunk-bare-lf-size", CHUNKED_POST + b"5\nhello\r\n0\r\n\r\n", 400),
    ("chunk-bare-lf-after-data", CHUNKED_POST + b"5\r\nhello\n0\r\n\r\n", 400),
    ("chunk-bare-lf-last", CHUNKED_POST + b"5\r\nhello\r\n0\n\r\n", 400),
    ("chunk-bare-lf-final", CHUNKED_POST + b"5\r\nhello\r\n0\r\n\n", 400),
    ("chunk-bare-lf-in-ext", CHUNKED_POST + b"5;a\nhello\r\n0\r\n\r\n", 400),
    ("chunk-bare-cr-size", CHUNKED_POST + b"5\rhello\r\n0\r\n\r\n", 400),
    ("chunk-ext-ctl", CHUNKED_POST + b"5;a=\x01\r\nhello\r\n0\r\n\r\n", 400),
    ("trailer-obs-fold", CHUNKED_POST + b"0\r\nX-T: a\r\n b\r\n\r\n", 400),
    ("trailer-no-colon", CHUNKED_POST + b"0\r\nX-T a\r\n\r\n", 400),
    ("trailer-space-before-colon", CHUNKED_POST + b"0\r\nX-T : a\r\n\r\n", 400),
    ("trailer-value-nul", CHUNKED_POST + b"0\r\nX-T: a\x00b\r\n\r\n", 400),
    # -- 414 / 431 with the default limits (8190 bytes, 100 fields) ----------
    ("request-line-8300", b"GET /" + b"a" * 8300 + b" HTTP/1.1\r\n" + H + b"\r\n", 414),
    ("request-line-8300-no-crlf", b"GET /" + b"a" * 8300, 414),
    ("header-line-8300", b"GET / HTTP/1.1\r\n" + H + b"X-Long: " + b"a" * 8300 + b"\r\n\r\n", 431),
    ("header-line-8300-no-crlf", b"GET / HTTP/1.1\r\n" + H + b"X-Long: " + b"a" * 8300, 431),
    ("header-fields-101", b"GET / HTTP/1.1\r\n" + H
     + b"".join(b"X-%d: v\r\n" % i for i in range(100)) + b"\r\n", 431),
    # -- 501 ---------------------------------------------------------------
    ("te-gzip", b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: gzip\r\n\r\n", 501),
    ("te-gzip-chunked", b"POST / HTTP/1.1\r\n" + H
     + b"Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 501),
    ("te-xchunked", b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: xchunked\r\n\r\n", 501),
    ("te-identity", b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: identity\r\n\r\n", 501),
    # "chunked" not last: parser.h lists it under 400, but the parser judges
    # unknown codings first (judge_head), so any coding after chunked -- the
    # only way chunked can fail to be last -- is answered 501.
    ("te-chunked-gzip", b"POST / HTTP/1.1\r\n" + H
     + b"Transfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n", 501),
    ("te-chunked-then-gzip-field", b"POST / HTTP/1.1\r\n" + H
     + b"Transfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n\r\n0\r\n\r\n", 501),
    ("connect", b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n", 501),
    # -- 505: well-formed versions other than 1.0 / 1.1 ---------------------
    ("http-2.0", b"GET / HTTP/2.0\r\n" + H + b"\r\n", 505),
    ("http-1.2", b"GET / HTTP/1.2\r\n" + H + b"\r\n", 505),
    ("http-1.9", b"GET / HTTP/1.9\r\n" + H + b"\r\n", 505),
    ("http-0.9", b"GET / HTTP/0.9\r\n" + H + b"\r\n", 505),
    ("http-3.0", b"GET / HTTP/3.0\r\n" + H + b"\r\n", 505),
]

# A representative few, also sent one byte at a time: same verdict whatever
# the split (the parser must not decide differently on a partial line).
SLOW_IDS = {
    "obs-fold-space", "cl-and-te", "chunk-size-zz", "chunk-data-no-crlf",
    "request-line-8300-no-crlf", "bare-cr-field", "http-2.0",
}


def _params(rows: list[tuple[str, bytes, int]]) -> list[Any]:
    return [pytest.param(raw, status, id=name) for name, raw, status in rows]


@pytest.mark.parametrize("raw, status", _params(REJECTIONS))
def test_rejected(shared, raw, status):
    handle = shared.handle
    assert_rejected(handle, raw, status)


@pytest.mark.parametrize("raw, status",
                         _params([row for row in REJECTIONS if row[0] in SLOW_IDS]))
def test_rejected_one_byte_at_a_time(shared, raw, status):
    handle = shared.handle
    assert_rejected(handle, raw, status, slowly=True)


def test_slow_ids_exist():
    """Guard against a renamed row silently dropping out of the slow subset."""
    assert SLOW_IDS <= {name for name, _, _ in REJECTIONS}


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

ACCEPTED: list[tuple[str, bytes, dict[str, Any]]] = [
    ("leading-empty-line", b"\r\nGET / HTTP/1.1\r\n" + H + b"\r\n", {}),
    ("eight-leading-empty-lines", b"\r\n" * 8 + b"GET / HTTP/1.1\r\n" + H + b"\r\n", {}),
    ("cl-list-of-equal", b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 5, 5\r\n\r\nhello",
     {"body": "hello"}),
    ("cl-list-of-equal-ows", b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 5 ,\t5\r\n\r\nhello",
     {"body": "hello"}),
    ("cl-two-equal-fields", b"POST / HTTP/1.1\r\n" + H
     + b"Content-Length: 5\r\nContent-Length: 5\r\n\r\nhello", {"body": "hello"}),
    ("cl-leading-zeros", b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 005\r\n\r\nhello",
     {"body": "hello"}),
    ("cl-zero", b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 0\r\n\r\n", {"body": ""}),
    ("value-spaces-tabs-obs-text", b"GET / HTTP/1.1\r\n" + H + b"X-A: a  b\t\tc \x80\xff\r\n\r\n",
     {"header": ("x-a", "a  b\t\tc \x80\xff")}),
    ("value-ows-trimmed", b"GET / HTTP/1.1\r\n" + H + b"X-A: \t v w \t\r\n\r\n",
     {"header": ("x-a", "v w")}),
    ("value-empty", b"GET / HTTP/1.1\r\n" + H + b"X-Empty:\r\n\r\n", {"header": ("x-empty", "")}),
    ("value-only-ows", b"GET / HTTP/1.1\r\n" + H + b"X-Empty: \t \r\n\r\n",
     {"header": ("x-empty", "")}),
    ("http10-no-host", b"GET / HTTP/1.0\r\n\r\n", {"http_version": "1.0"}),
    ("http10-body", b"POST / HTTP/1.0\r\nContent-Length: 5\r\n\r\nhello",
     {"http_version": "1.0", "body": "hello"}),
    ("host-empty", b"GET / HTTP/1.1\r\nHost:\r\n\r\n", {"header": ("host", "")}),
    ("host-port", b"GET / HTTP/1.1\r\nHost: example.com:8080\r\n\r\n",
     {"header": ("host", "example.com:8080")}),
    ("host-ipv6", b"GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n",
     {"header": ("host", "[::1]:8080")}),
    ("host-any-case", b"GET / HTTP/1.1\r\nhOsT: a\r\n\r\n", {"header": ("host", "a")}),
    ("method-extension", b"PROPFIND / HTTP/1.1\r\n" + H + b"\r\n", {"method": "PROPFIND"}),
    ("chunk-ext", CHUNKED_POST + b"5;name=value\r\nhello\r\n0\r\n\r\n", {"body": "hello"}),
    ("chunk-ext-quoted-bws", CHUNKED_POST + b"5 ;a=\"x y\";b\r\nhello\r\n0;z\r\n\r\n",
     {"body": "hello"}),
    ("chunk-trailers", CHUNKED_POST + b"5\r\nhello\r\n0\r\nX-T: 1\r\nX-U: two words\r\n\r\n",
     {"body": "hello"}),
    ("chunk-uppercase-hex",
     CHUNKED_POST + b"A\r\n0123456789\r\n1F\r\n" + b"x" * 31 + b"\r\n0\r\n\r\n",
     {"body": "0123456789" + "x" * 31}),
    ("chunk-lowercase-hex", CHUNKED_POST + b"a\r\n0123456789\r\n0\r\n\r\n", {"body": "0123456789"}),
    # The size limit is on the value (2^62), not on the digit count: leading
    # zeros are fine (h11 allows up to 20 digits).
    ("chunk-size-zero-padded", CHUNKED_POST + b"00000000000000005\r\nhello\r\n0\r\n\r\n",
     {"body": "hello"}),
    ("chunk-many-small", CHUNKED_POST + b"1\r\nh\r\n1\r\ne\r\n3\r\nllo\r\n0\r\n\r\n",
     {"body": "hello"}),
    ("chunk-empty-body", CHUNKED_POST + b"0\r\n\r\n", {"body": ""}),
    ("te-case-and-ows", b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding:  Chunked \r\n\r\n"
     + b"5\r\nhello\r\n0\r\n\r\n", {"body": "hello"}),
    ("te-upper", b"POST / HTTP/1.1\r\n" + H + b"transfer-encoding: CHUNKED\r\n\r\n"
     + b"5\r\nhello\r\n0\r\n\r\n", {"body": "hello"}),
    ("te-empty-list-elements", b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: , chunked,\r\n\r\n"
     + b"5\r\nhello\r\n0\r\n\r\n", {"body": "hello"}),
]


@pytest.mark.parametrize("raw, expect",
                         [pytest.param(raw, expect, id=name) for name, raw, expect in ACCEPTED])
@pytest.mark.parametrize("feed", ["whole", "byte-by-byte"])
def test_accepted(shared, raw, expect, feed):
    """The app sees exactly what was sent, and (for HTTP/1.1) the connection
    is still in sync: a second request on it is answered normally."""
    handle = shared.handle
    with handle.connect() as c:
        if feed == "whole":
            c.send(raw)
        else:
            c.send_slowly(raw)
        r = c.read_response()
        assert r.status == 200, (r.status, r.body[:200])
        seen = json.loads(r.body)
        if "body" in expect:
            assert seen["body"] == expect["body"]
        if "header" in expect:
            assert list(expect["header"]) in seen["headers"], seen["headers"]
        if "method" in expect:
            assert seen["method"] == expect["method"]
        assert seen["http_version"] == expect.get("http_version", "1.1")
        if seen["http_version"] == "1.1":
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


SMUGGLED = b"GET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n"


def _te_cl() -> bytes:
    # The front end uses TE: one chunk that hides the smuggled request; the
    # back end uses CL: the body is just the size line, and the chunk data is
    # read as the next request.
    size_line = b"%x\r\n" % len(SMUGGLED)
    return (b"POST / HTTP/1.1\r\n" + H + b"Content-Length: %d\r\n" % len(size_line)
            + b"Transfer-Encoding: chunked\r\n\r\n" + size_line + SMUGGLED + b"\r\n0\r\n\r\n")


def _cl_te(te_line: bytes) -> bytes:
    # The front end uses CL: everything is body; the back end uses TE: the body
    # ends at "0\r\n\r\n" and the smuggled request follows.
    body = b"0\r\n\r\n" + SMUGGLED
    return (b"POST / HTTP/1.1\r\n" + H + b"Content-Length: %d\r\n" % len(body)
            + te_line + b"\r\n" + body)


# (raw, expected status, how many times the app may run for "/")
SMUGGLING: list[tuple[str, bytes, int, int]] = [
    ("cl-te", _cl_te(b"Transfer-Encoding: chunked\r\n"), 400, 0),
    ("te-cl", _te_cl(), 400, 0),
    ("cl-te-xchunked", _cl_te(b"Transfer-Encoding: xchunked\r\n"), 400, 0),
    ("cl-te-space-before-colon", _cl_te(b"Transfer-Encoding : chunked\r\n"), 400, 0),
    ("cl-te-tab-ows", _cl_te(b"Transfer-Encoding:\tchunked\r\n"), 400, 0),
    ("cl-te-second-te-field", _cl_te(b"Transfer-Encoding: chunked\r\nTransfer-Encoding: x\r\n"),
     400, 0),
    ("cl-te-obs-fold", _cl_te(b"X: y\r\n Transfer-Encoding: chunked\r\n"), 400, 0),
    ("cl-te-leading-space", _cl_te(b" Transfer-Encoding: chunked\r\n"), 400, 0),
    ("cl-te-bare-lf", _cl_te(b"X: y\nTransfer-Encoding: chunked\r\n"), 400, 0),
    ("cl-te-lf-in-name", _cl_te(b"Transfer-Encoding\n: chunked\r\n"), 400, 0),
    ("cl-cl", b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 0\r\nContent-Length: %d\r\n\r\n"
     % len(SMUGGLED) + SMUGGLED, 400, 0),
    # The head is fine, so the app may run once for "/" (or not at all, when
    # the bad body arrives with the head and is refused before the app
    # starts), but never for the smuggled request.
    ("chunk-data-without-crlf", CHUNKED_POST + b"5\r\nhelloXX0\r\n\r\n" + SMUGGLED, 400, 1),
    ("chunk-size-wraps-64-bits", CHUNKED_POST + b"10000000000000005\r\nhello\r\n0\r\n\r\n"
     + SMUGGLED, 400, 1),
    ("chunk-ext-bare-lf", CHUNKED_POST + b"5;x\nhello\r\n0\r\n\r\n" + SMUGGLED, 400, 1),
]


@pytest.mark.parametrize("raw, status, max_invocations",
                         [pytest.param(r, s, n, id=i) for i, r, s, n in SMUGGLING])
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
