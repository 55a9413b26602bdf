"""The two kinds of row in the request spec, and how an accepted row is read.

A row is the raw bytes a client sends and what must become of them:

  Accepted   the request is served: the parser's reading of the head (method,
             target split into path and query, version, every field in order,
             the framing of the body and the connection flags) and the body
             the app receives;
  Rejected   the server answers `status` and closes, with `why` (and the RFC
             section, where one says so).  `in_body` rows have a good chunked
             head and a bad body: the head is served and the chunked decoder
             refuses what follows.

Accepted rows state what is unusual about them and let `accept()` read the
rest off the bytes, with the plainest reading there is: the request line split
at its two spaces, each field line at its first colon with SP and HTAB
stripped from the value, the target split at its first "?".  That reading is
right for every valid head (RFC 9112 3, 5; RFC 9110 5.5), and it is not the
parser's code: tests/c/test_parser.c checks the parser's spans against it.  A
row may still spell out `headers`, `path` and `query` where they are its
point; `accept()` then checks that the bytes say the same.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, overload

Fields = tuple[tuple[bytes, bytes], ...]

# Pieces the rows are built from.
H11 = b" HTTP/1.1\r\n"  # the end of a request line
H = b"Host: a\r\n"  # the shortest valid Host line, to keep rows short
GET = b"GET / HTTP/1.1\r\n"  # a request line alone
POST = b"POST / HTTP/1.1\r\n" + H  # a request line and its Host line
CHUNKED_POST = POST + b"Transfer-Encoding: chunked\r\n\r\n"
SMUGGLED = b"GET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n"  # hidden in a body: never served
HELLO = b"5\r\nhello\r\n0\r\n\r\n"  # a chunked body: one chunk, "hello"

# Connection semantics the parser reports for a head (parser.h, CP_F_*).  The
# chunked framing is not among them: it is `framing="chunked"`.
FLAGS = frozenset({
    "close",            # Connection: close
    "keep-alive",       # Connection: keep-alive
    "upgrade",          # an Upgrade field is present
    "expect-continue",  # Expect: 100-continue
    "absolute-form",    # the target is http(s)://authority/...
    "asterisk-form",    # the target is "*" (OPTIONS)
    "proxy-headers",    # X-Forwarded-For, X-Forwarded-Proto or Forwarded
})


@dataclass(frozen=True)
class Accepted:
    name: str
    raw: bytes                  # everything the client sends for this row
    method: bytes
    target: bytes
    path: bytes                 # the target's path (absolute-form: after the authority)
    query: bytes                # after the first "?", without it; b"" when there is none
    version: str                # "1.0" or "1.1"
    headers: Fields             # every field line: name as sent, value without OWS
    framing: int | str | None   # the Content-Length, "chunked", or None: no body
    data: bytes                 # the body the app receives
    flags: frozenset[str]       # see FLAGS
    head_len: int               # the head through its empty line, leading CRLFs included
    body_len: int               # the body as it is on the wire (chunked: with its framing)
    after_status: int | None    # raw goes on after the body: the status that part gets
    why: str
    rfc: str
    server: str                 # non-empty: why the server-level tests leave the row out

    @property
    def body_complete(self) -> bool:
        return not isinstance(self.framing, int) or self.body_len == self.framing

    @property
    def persistent(self) -> bool:
        """Whether the connection stays open after this request (RFC 9112 9.3)."""
        if "close" in self.flags:
            return False
        return self.version == "1.1" or "keep-alive" in self.flags


@dataclass(frozen=True)
class Rejected:
    name: str
    raw: bytes
    status: int
    why: str
    rfc: str = ""
    in_body: bool = False       # the head is good; the chunked body after it is not
    head_len: int = 0           # in_body: the length of that head
    data: bytes = b""           # in_body: what the decoder hands out before the error


Row = Accepted | Rejected


# ---------------------------------------------------------------------------
# Reading an accepted head
# ---------------------------------------------------------------------------


def head_length(raw: bytes) -> int:
    """The head's length: leading empty lines, the request line, the field
    lines and the empty line that ends them."""
    start = 0
    while raw.startswith(b"\r\n", start):
        start += 2
    end = raw.find(b"\r\n\r\n", start)
    if end < 0:
        raise ValueError(f"no end of head in {raw[:60]!r}")
    return end + 4


def read_head(head: bytes) -> tuple[bytes, bytes, str, Fields]:
    """method, target, version and fields of a valid head (see the module doc)."""
    lines = head.lstrip(b"\r\n").split(b"\r\n")
    assert lines[-2:] == [b"", b""], head
    method, target, version = lines[0].split(b" ")
    assert version in (b"HTTP/1.0", b"HTTP/1.1"), version
    fields = []
    for line in lines[1:-2]:
        name, colon, value = line.partition(b":")
        assert colon and name, line
        fields.append((name, value.strip(b" \t")))
    return method, target, version[5:].decode(), tuple(fields)


def split_target(target: bytes) -> tuple[bytes, bytes]:
    """path and query of an origin-form or asterisk-form target."""
    assert target.startswith(b"/") or target == b"*", \
        f"{target!r}: give path and query of an absolute-form target explicitly"
    path, _, query = target.partition(b"?")
    return path, query


def accept(name: str, raw: bytes, *, why: str = "", rfc: str = "",
           framing: int | str | None = None, data: bytes | None = None,
           flags: Iterable[str] = (), headers: Sequence[tuple[bytes, bytes]] | None = None,
           path: bytes | None = None, query: bytes | None = None,
           after_status: int | None = None, server: str = "") -> Accepted:
    """An accepted row; see the module doc for what it reads off `raw`.

    framing  the Content-Length (its value), "chunked", or None (no body)
    data     the body the app receives: needed for chunked bodies; a
             Content-Length body is the bytes after the head
    after_status  raw goes on past the request (only with framing None or a
             Content-Length): the status the rest gets as the next request
    server   why the server-level tests leave the row out (HEAD, an upgrade,
             a body too large to send)
    """
    flags = frozenset(flags)
    assert flags <= FLAGS, flags - FLAGS
    head_len = head_length(raw)
    method, target, version, fields = read_head(raw[:head_len])
    if headers is not None:
        assert tuple(headers) == fields, (name, fields)
    if path is None or query is None:
        path, query = split_target(target)
    rest = len(raw) - head_len
    if framing == "chunked":
        assert after_status is None, "a chunked body runs to the end of raw"
        assert data is not None, f"{name}: say what the chunked body decodes to"
        body_len = rest
    elif isinstance(framing, int):
        body_len = min(framing, rest)
        assert body_len == framing or server, f"{name}: the body is short of its length"
        assert data is None or data == raw[head_len:head_len + body_len]
        data = raw[head_len:head_len + body_len]
    else:
        assert framing is None, framing
        body_len = 0
        data = b""
    assert (len(raw) > head_len + body_len) == (after_status is not None), \
        f"{name}: bytes after the request need after_status, and only they do"
    return Accepted(name, raw, method, target, path, query, version, fields, framing, data,
                    flags, head_len, body_len, after_status, why, rfc, server)


def reject(name: str, raw: bytes, status: int, why: str, rfc: str = "") -> Rejected:
    """A row the parser rejects in the head (or the request line alone)."""
    return Rejected(name, raw, status, why, rfc)


def reject_chunks(name: str, head: bytes, body: bytes, status: int, why: str, *,
                  data: bytes = b"", rfc: str = "") -> Rejected:
    """A good chunked head followed by a body the decoder refuses; `data` is
    what it hands out before it can tell."""
    return Rejected(name, head + body, status, why, rfc, in_body=True, head_len=len(head),
                    data=data)


@overload
def section(rfc: str, rows: Sequence[Accepted]) -> list[Accepted]: ...
@overload
def section(rfc: str, rows: Sequence[Rejected]) -> list[Rejected]: ...
@overload
def section(rfc: str, rows: Sequence[Row]) -> list[Row]: ...
def section(rfc: str, rows: Sequence[Row]) -> list[Any]:
    """Rows under one RFC heading: each gets `rfc` unless it names its own."""
    return [row if row.rfc else dataclasses.replace(row, rfc=rfc) for row in rows]


def check_names(*tables: Sequence[Row]) -> None:
    for rows in tables:
        names = [row.name for row in rows]
        dupes = sorted({n for n in names if names.count(n) > 1})
        assert not dupes, dupes
