"""Request smuggling vectors, over a real socket: rejected, or handled without desync.

Every vector is sent in one write followed by a second, pipelined request
(`GET /next` with `Connection: close`).  The server must answer exactly the
expected sequence of responses and then close:

  - a rejected vector: one error response with `connection: close`, then the
    close -- the pipelined request is never served (nor anything hidden in
    the vector's body);
  - a vector that is valid HTTP/1.1 (however odd it looks): the app sees the
    body we meant, then `/next` is answered -- the framing was read exactly,
    so nothing leaked into the next request.

Many vectors the campaign calls for already have a row in
test_rejections.py (REJECTIONS, ACCEPTED, SMUGGLING); they are not
repeated here.  COVERED_ELSEWHERE names each one, and
test_vectors_covered_elsewhere_exist keeps those names honest.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.protocols.http import test_rejections as rejections
from tests.protocols.http.test_rejections import RecordingEcho, assert_serves
from tests.support.clients import RawClient
from tests.support.servers import ServerHandle, run_server

H = b"Host: a\r\n"
POST = b"POST / HTTP/1.1\r\n" + H
CHUNKED_POST = POST + b"Transfer-Encoding: chunked\r\n\r\n"
NEXT = b"GET /next HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
SMUGGLED = b"GET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n"


@dataclass(frozen=True)
class Vector:
    name: str
    raw: bytes
    statuses: tuple[int, ...]  # every response the stream raw + NEXT gets, in order
    body: str | None = None    # the body the app must see for the first request
    why: str = ""


def ok(name: str, raw: bytes, body: str, why: str) -> Vector:
    """Valid after all: the app gets `body`, then /next is served."""
    return Vector(name, raw, (200, 200), body, why)


def rejected(name: str, raw: bytes, status: int, why: str) -> Vector:
    return Vector(name, raw, (status,), None, why)


LONG_EXT = b";" + b"e" * 5000  # a size line longer than CP_CHUNK_LINE_MAX (4096)
FITTING_EXT = b";" + b"e" * 4000

VECTORS: list[Vector] = [
    # -- TE.TE: Transfer-Encoding obfuscations, alone (no Content-Length) ----
    ok("te-leading-space-value", POST + b"Transfer-Encoding:  chunked\r\n\r\n"
       b"5\r\nhello\r\n0\r\n\r\n", "hello",
       "OWS around a field value is not part of it (RFC 9110 5.5)"),
    ok("te-leading-tab-value", POST + b"Transfer-Encoding:\tchunked\r\n\r\n"
       b"5\r\nhello\r\n0\r\n\r\n", "hello", "HTAB is OWS too"),
    ok("te-trailing-tab-value", POST + b"Transfer-Encoding: chunked\t\r\n\r\n"
       b"5\r\nhello\r\n0\r\n\r\n", "hello", "trailing OWS"),
    rejected("te-chunked-identity", POST + b"Transfer-Encoding: chunked, identity\r\n\r\n"
             b"5\r\nhello\r\n0\r\n\r\n" + SMUGGLED, 501,
             "identity is not a transfer coding any more (RFC 9112 7); chunked not last"),
    rejected("te-identity-chunked", POST + b"Transfer-Encoding: identity, chunked\r\n\r\n"
             b"5\r\nhello\r\n0\r\n\r\n" + SMUGGLED, 501, "unknown coding before chunked"),
    rejected("te-chunked-then-identity-field", POST + b"Transfer-Encoding: chunked\r\n"
             b"Transfer-Encoding: identity\r\n\r\n0\r\n\r\n" + SMUGGLED, 501,
             "two fields are one list: chunked, identity"),
    rejected("te-chunkedx", POST + b"Transfer-Encoding: chunkedx\r\n\r\n0\r\n\r\n" + SMUGGLED,
             501, "a different token, not chunked"),
    rejected("te-quoted", POST + b"Transfer-Encoding: \"chunked\"\r\n\r\n0\r\n\r\n" + SMUGGLED,
             400, "a quoted string is not a transfer coding"),
    rejected("te-vertical-tab", POST + b"Transfer-Encoding: chunked\x0b\r\n\r\n0\r\n\r\n"
             + SMUGGLED, 400, "VT is a control character, not OWS"),
    rejected("te-nul", POST + b"Transfer-Encoding: chun\x00ked\r\n\r\n0\r\n\r\n" + SMUGGLED, 400,
             "NUL in a field value"),
    rejected("te-space-before-colon-alone", POST + b"Transfer-Encoding : chunked\r\n\r\n"
             b"0\r\n\r\n" + SMUGGLED, 400, "whitespace before the colon (RFC 9112 5.1)"),
    Vector("te-underscore-name", POST + b"Transfer_Encoding: chunked\r\n\r\n0\r\n\r\n",
           (200, 400), None,
           "an unknown field, so no body: the would-be chunk '0' is the next request "
           "line, which is malformed -- the same reading a strict front end makes"),
    rejected("cl-te-identity", POST + b"Content-Length: 5\r\nTransfer-Encoding: identity\r\n\r\n"
             b"hello" + SMUGGLED, 400, "Content-Length with Transfer-Encoding"),
    # -- Content-Length ----------------------------------------------------
    ok("cl-ows-around", POST + b"Content-Length:  5 \t\r\n\r\nhello", "hello", "OWS"),
    rejected("cl-minus-zero", POST + b"Content-Length: -0\r\n\r\n" + SMUGGLED, 400,
             "1*DIGIT: no sign"),
    rejected("cl-exponent", POST + b"Content-Length: 1e1\r\n\r\nhelloworld" + SMUGGLED, 400,
             "1*DIGIT"),
    rejected("cl-space-before-colon", POST + b"Content-Length : 5\r\n\r\nhello" + SMUGGLED, 400,
             "whitespace before the colon"),
    rejected("cl-underscore-digits", POST + b"Content-Length: 1_0\r\n\r\nhelloworld" + SMUGGLED,
             400, "1*DIGIT"),
    ok("cl-on-get", b"GET / HTTP/1.1\r\n" + H + b"Content-Length: 5\r\n\r\nhello", "hello",
       "a GET may have a body; it is framed like any other"),
    ok("chunked-on-get", b"GET / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n"
       b"5\r\nhello\r\n0\r\n\r\n", "hello", "likewise"),
    ok("cl-in-trailer-ignored", CHUNKED_POST + b"5\r\nhello\r\n0\r\nContent-Length: 100\r\n\r\n",
       "hello", "trailer fields never frame the message (RFC 9112 7.1.2)"),
    # -- chunk-size tricks ---------------------------------------------------
    rejected("chunk-size-plus", CHUNKED_POST + b"+5\r\nhello\r\n0\r\n\r\n" + SMUGGLED, 400,
             "chunk-size = 1*HEXDIG"),
    rejected("chunk-size-16-f", CHUNKED_POST + b"ffffffffffffffff\r\nhello\r\n0\r\n\r\n"
             + SMUGGLED, 400, "over 2^62: a size no body can have"),
    rejected("chunk-size-nul", CHUNKED_POST + b"5\x00\r\nhello\r\n0\r\n\r\n" + SMUGGLED, 400,
             "NUL after the size"),
    rejected("chunk-size-underscore", CHUNKED_POST + b"1_0\r\n" + b"x" * 16 + b"\r\n0\r\n\r\n"
             + SMUGGLED, 400, "1*HEXDIG"),
    ok("chunk-ext-empty-name", CHUNKED_POST + b"5;\r\nhello\r\n0\r\n\r\n", "hello",
       "extensions are discarded; only their bytes are checked"),
    ok("chunk-ext-quoted-semicolon", CHUNKED_POST + b"5;a=\"x;y\";b=c\r\nhello\r\n0\r\n\r\n",
       "hello", "likewise"),
    ok("chunk-ext-4000-bytes", CHUNKED_POST + b"5" + FITTING_EXT + b"\r\nhello\r\n0\r\n\r\n",
       "hello", "a size line within CP_CHUNK_LINE_MAX"),
    rejected("chunk-ext-5000-bytes", CHUNKED_POST + b"5" + LONG_EXT + b"\r\nhello\r\n0\r\n\r\n"
             + SMUGGLED, 400, "a size line over CP_CHUNK_LINE_MAX: extensions cannot be used "
             "to make the server buffer without bound"),
    rejected("chunk-ext-nul", CHUNKED_POST + b"5;a=\x00\r\nhello\r\n0\r\n\r\n" + SMUGGLED, 400,
             "control character in an extension"),
    rejected("chunk-ext-bare-cr", CHUNKED_POST + b"5;a\rb\r\nhello\r\n0\r\n\r\n" + SMUGGLED, 400,
             "bare CR"),
    rejected("last-chunk-then-request", CHUNKED_POST + b"5\r\nhello\r\n0\r\n" + SMUGGLED, 400,
             "without the final CRLF the request line is read as a trailer field, which has "
             "no colon"),
    rejected("chunk-data-bare-cr-lf", CHUNKED_POST + b"5\r\nhello\r0\r\n\r\n" + SMUGGLED, 400,
             "chunk data must be followed by CRLF exactly (h11 CVE-2025-43859)"),
    # -- obs-fold and line endings in the middle of framing fields ------------
    rejected("cl-obs-fold", POST + b"Content-Length:\r\n 5\r\n\r\nhello" + SMUGGLED, 400,
             "obs-fold"),
    rejected("te-obs-fold-value", POST + b"Transfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n"
             + SMUGGLED, 400, "obs-fold"),
    rejected("cl-bare-cr-value", POST + b"Content-Length: 5\r0\r\n\r\nhello" + SMUGGLED, 400,
             "bare CR"),
    # -- the connection ends where it says it ends ---------------------------
    Vector("chunked-with-connection-close", POST + b"Transfer-Encoding: chunked\r\n"
           b"Connection: close\r\n\r\n5\r\nhello\r\n0\r\n\r\n", (200,), "hello",
           "nothing after a request with Connection: close is read"),
]

# Vectors of the campaign that have a row in test_rejections.py:
# vector -> (table, row name).
COVERED_ELSEWHERE: dict[str, tuple[str, str]] = {
    "CL.TE": ("SMUGGLING", "cl-te"),
    "TE.CL": ("SMUGGLING", "te-cl"),
    "Transfer-Encoding: xchunked": ("SMUGGLING", "cl-te-xchunked"),
    "Transfer-Encoding: xchunked (alone)": ("REJECTIONS", "te-xchunked"),
    "Transfer-Encoding: chunked, gzip": ("REJECTIONS", "te-chunked-gzip"),
    "TE with HTAB before the value, with CL": ("SMUGGLING", "cl-te-tab-ows"),
    "TE line starting with a space": ("SMUGGLING", "cl-te-leading-space"),
    "space before the colon, with CL": ("SMUGGLING", "cl-te-space-before-colon"),
    "a second TE field": ("SMUGGLING", "cl-te-second-te-field"),
    "duplicated TE (list)": ("REJECTIONS", "te-chunked-twice-list"),
    "duplicated TE (fields)": ("REJECTIONS", "te-chunked-twice-fields"),
    "chunked with parameters": ("REJECTIONS", "te-chunked-with-params"),
    "TE in HTTP/1.0": ("REJECTIONS", "te-in-http10"),
    "upper-case chunked": ("ACCEPTED", "te-upper"),
    "duplicate CL, differing": ("SMUGGLING", "cl-cl"),
    "duplicate CL, equal": ("ACCEPTED", "cl-two-equal-fields"),
    "CL list, differing": ("REJECTIONS", "cl-list-differs"),
    "CL with a plus sign": ("REJECTIONS", "cl-plus"),
    "CL negative": ("REJECTIONS", "cl-negative"),
    "CL with leading zeros": ("ACCEPTED", "cl-leading-zeros"),
    "CL with an inner space": ("REJECTIONS", "cl-two-numbers"),
    "CL in hex": ("REJECTIONS", "cl-hex"),
    "CL overflowing 64 bits": ("REJECTIONS", "cl-2-pow-64-plus-5"),
    "chunk size 0x10": ("REJECTIONS", "chunk-size-0x"),
    "chunk size negative": ("REJECTIONS", "chunk-size-negative"),
    "chunk size with leading space": ("REJECTIONS", "chunk-size-leading-space"),
    "chunk size with trailing space": ("REJECTIONS", "chunk-size-trailing-space"),
    "chunk size with 17 digits": ("REJECTIONS", "chunk-size-17-digits"),
    "chunk size wrapping 64 bits": ("SMUGGLING", "chunk-size-wraps-64-bits"),
    "chunk size zero-padded": ("ACCEPTED", "chunk-size-zero-padded"),
    "chunk extension with bare LF": ("SMUGGLING", "chunk-ext-bare-lf"),
    "chunk extension with a control character": ("REJECTIONS", "chunk-ext-ctl"),
    "chunk data without CRLF": ("SMUGGLING", "chunk-data-without-crlf"),
    "bare LF in the head": ("SMUGGLING", "cl-te-bare-lf"),
    "bare LF in a field name": ("SMUGGLING", "cl-te-lf-in-name"),
    "bare CR in a field": ("REJECTIONS", "bare-cr-field"),
    "bare LF after the chunk size": ("REJECTIONS", "chunk-bare-lf-size"),
    "bare CR after the chunk size": ("REJECTIONS", "chunk-bare-cr-size"),
    "NUL in a field value": ("REJECTIONS", "value-nul"),
    "NUL in the target": ("REJECTIONS", "target-nul"),
    "obs-fold": ("SMUGGLING", "cl-te-obs-fold"),
    "obs-fold in a trailer": ("REJECTIONS", "trailer-obs-fold"),
}


@dataclass
class Shared:
    handle: ServerHandle
    app: RecordingEcho


@pytest.fixture(scope="module")
def shared(module_loop_name: str) -> Iterator[Shared]:
    """One server per event loop for the whole table (as in test_rejections)."""
    app = RecordingEcho()
    with run_server(app, loop=module_loop_name) as handle:
        yield Shared(handle, app)


def read_until_closed(c: RawClient) -> list[tuple[int, str | None, bytes]]:
    """(status, connection header, body) of every response until the server closes."""
    out = []
    while c.buf or c._fill():
        r = c.read_response()
        out.append((r.status, r.header("connection"), r.body))
    return out


@pytest.mark.parametrize("vector", [pytest.param(v, id=v.name) for v in VECTORS])
def test_vector(shared: Shared, vector: Vector) -> None:
    start = len(shared.app.paths)
    with shared.handle.connect() as c:
        c.send(vector.raw + NEXT)
        responses = read_until_closed(c)  # bounded by the client's socket timeout
    statuses = tuple(status for status, _, _ in responses)
    assert statuses == vector.statuses, (responses, vector.why)
    paths = shared.app.paths[start:]
    assert "/smuggled" not in paths
    if vector.statuses[-1] != 200:
        assert responses[-1][1] == "close"  # an error ends the connection, and says so
    if vector.body is not None:
        first = json.loads(responses[0][2])
        assert first["path"] == "/" and first["body"] == vector.body
    if vector.statuses == (200, 200):
        assert json.loads(responses[1][2])["path"] == "/next"
        assert paths == ["/", "/next"]
    else:
        assert "/next" not in paths  # nothing after the error (or the close) is served
    assert_serves(shared.handle)


def test_vector_names_are_unique() -> None:
    names = [v.name for v in VECTORS]
    assert len(names) == len(set(names))


def test_vectors_covered_elsewhere_exist() -> None:
    tables = {
        "REJECTIONS": {row[0] for row in rejections.REJECTIONS},
        "ACCEPTED": {row[0] for row in rejections.ACCEPTED},
        "SMUGGLING": {row[0] for row in rejections.SMUGGLING},
    }
    missing = {what: where for what, where in COVERED_ELSEWHERE.items()
               if where[1] not in tables[where[0]]}
    assert not missing
