"""The one HTTP/1.1 response parser: for the tests' clients, the fuzz harness and the soak script.

Sans-IO, like the server's own parser: parse_response() reads one response
out of bytes the caller already has and says where it ended, or that more
bytes are needed.  The callers bring the I/O: RawClient (tests/support/
clients.py) reads a socket until a response is complete, the fuzz harness
(fuzz/harness.py) parses everything a run wrote, at once, and the soak
script (scripts/soak.py) reads an asyncio stream.

Strict, because the server is the one under test: the status line is
`HTTP/1.1 NNN reason`, field lines are `token: value` (a value may hold
obs-text, never control characters), the framing is unambiguous (never
both Content-Length and Transfer-Encoding; Transfer-Encoding is only
`chunked`), chunk sizes are lowercase hex without extensions, and a chunked
body ends without trailers.  Anything else raises MalformedResponse.  What
a caller additionally forbids (the fuzz harness: no repeated Date, no 1xx
but 100) it checks on the parsed response.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

STATUS_LINE = re.compile(rb"HTTP/1\.1 ([1-5][0-9][0-9]) ([\x20-\x7e]*)\r\n")
FIELD_LINE = re.compile(rb"([!#$%&'*+\-.^_`|~0-9A-Za-z]+): ?([\t\x20-\x7e\x80-\xff]*)\r\n")
CHUNK_SIZE = re.compile(rb"[0-9a-f]+")
# a status line cut short is at most this long (the longest reason phrase
# is well under it); a longer run of bytes without CRLF is not a status line
STATUS_LINE_MAX = 64


class MalformedResponse(AssertionError):
    """The bytes are not a well-formed HTTP/1.1 response."""


@dataclass
class ParsedResponse:
    """One response, or as much of it as the bytes held (complete=False).

    `head` is the status line and field lines as sent, with the blank line
    that ends them; it is empty while the head itself is incomplete (status
    is then 0 if the status line was cut, and `headers` holds the complete
    field lines so far).  `body` is the body decoded (chunks joined), or as
    much of it as arrived.
    """

    status: int
    reason: bytes = b""
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    body: bytes = b""
    complete: bool = True
    head: bytes = b""
    chunked: bool = False

    def header(self, name: bytes) -> bytes | None:
        """The first value of field `name` (lowercase), or None."""
        for field_name, value in self.headers:
            if field_name.lower() == name:
                return value
        return None


def parse_response(data: bytes, start: int = 0, *,
                   head_request: bool | Callable[[ParsedResponse], bool] = False,
                   at_eof: bool = False) -> tuple[ParsedResponse, int]:
    """Parse the response that begins at data[start]: (the response, where it ends).

    The response has no body if it answers a HEAD request: `head_request`,
    or head_request(response) once the head is parsed, for a caller that
    learns the method from the head (the fuzz harness' x-app field).  A body
    delimited by the end of the connection is complete only `at_eof`; an
    incomplete response ends at len(data).
    """
    pos = start
    m = STATUS_LINE.match(data, pos)
    if m is None:
        if data.find(b"\r\n", pos) == -1 and len(data) - pos < STATUS_LINE_MAX:
            return ParsedResponse(0, complete=False), len(data)  # cut in the status line
        raise MalformedResponse(f"bad status line at {pos}: {data[pos:pos + 80]!r}")
    resp = ParsedResponse(int(m.group(1)), m.group(2), complete=False)
    pos = m.end()
    while not data.startswith(b"\r\n", pos):
        fm = FIELD_LINE.match(data, pos)
        if fm is None:
            if data.find(b"\r\n", pos) == -1:
                return resp, len(data)  # cut in a field line, or before the blank line
            raise MalformedResponse(f"bad field line: {data[pos:pos + 80]!r}")
        resp.headers.append((fm.group(1), fm.group(2)))
        pos = fm.end()
    pos += 2
    resp.head = data[start:pos]
    resp.complete = True
    cl = resp.header(b"content-length")
    te = resp.header(b"transfer-encoding")
    if cl is not None and te is not None:
        raise MalformedResponse("content-length and transfer-encoding in one response")
    no_body = head_request(resp) if callable(head_request) else head_request
    if resp.status < 200 or resp.status in (204, 304) or no_body:
        return resp, pos
    if te is not None:
        if te != b"chunked":
            raise MalformedResponse(f"transfer-encoding {te!r} in a response: the server "
                                    f"frames with chunked (an app's own must not pass)")
        resp.chunked = True
        return _chunked_body(data, pos, resp)
    if cl is not None:
        if not cl.isdigit():
            raise MalformedResponse(f"content-length {cl!r}")
        n = int(cl)
        resp.body = data[pos:pos + n]
        if len(resp.body) < n:
            resp.complete = False
            return resp, len(data)
        return resp, pos + n
    resp.body = data[pos:]  # delimited by the end of the connection
    resp.complete = at_eof
    return resp, len(data)


def _chunked_body(data: bytes, pos: int, resp: ParsedResponse) -> tuple[ParsedResponse, int]:
    body = bytearray()
    while True:
        eol = data.find(b"\r\n", pos)
        if eol == -1:
            resp.complete, resp.body = False, bytes(body)
            return resp, len(data)
        size_text = data[pos:eol]
        if not CHUNK_SIZE.fullmatch(size_text):
            raise MalformedResponse(f"bad chunk size {size_text[:40]!r}")
        size = int(size_text, 16)
        pos = eol + 2
        if size == 0:
            if data[pos:pos + 2] != b"\r\n":
                if len(data) - pos < 2:
                    resp.complete, resp.body = False, bytes(body)
                    return resp, len(data)
                raise MalformedResponse("trailers or garbage after the last chunk")
            resp.body = bytes(body)
            return resp, pos + 2
        if len(data) < pos + size + 2:
            resp.complete, resp.body = False, bytes(body + data[pos:pos + size])
            return resp, len(data)
        body += data[pos:pos + size]
        if data[pos + size:pos + size + 2] != b"\r\n":
            raise MalformedResponse("chunk data not followed by CRLF")
        pos += size + 2
