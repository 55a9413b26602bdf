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

The vectors are rows of the request spec (tests/spec/smuggling.py, VECTORS),
which the parser's C tests and the fuzz corpus read too.  Many vectors the
campaign calls for already have a row in another table of the spec
(REJECTED, ACCEPTED, SMUGGLING, each sent by test_rejections.py); they
are not repeated here.  COVERED_ELSEWHERE names each one, and
test_vectors_covered_elsewhere_exist keeps those names honest.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.protocols.http.test_rejections import RecordingEcho, assert_serves
from tests.spec import COVERED_ELSEWHERE, NEXT, TABLES, VECTORS, Accepted, Rejected
from tests.support.clients import RawClient
from tests.support.servers import ServerHandle, run_server


@dataclass(frozen=True)
class Vector:
    name: str
    raw: bytes
    statuses: tuple[int, ...]  # every response the stream raw + NEXT gets, in order
    body: str | None = None    # the body the app must see for the first request
    why: str = ""


def vector(row: Accepted | Rejected) -> Vector:
    """What the stream row.raw + NEXT must get."""
    if isinstance(row, Rejected):
        return Vector(row.name, row.raw, (row.status,), None, row.why)
    if row.after_status is not None:  # the bytes after the request are a bad request
        statuses: tuple[int, ...] = (200, row.after_status)
    else:  # valid: the app gets the body, then /next is served -- unless it closes
        statuses = (200, 200) if row.persistent else (200,)
    return Vector(row.name, row.raw, statuses, row.data.decode("latin-1"), row.why)


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


@pytest.mark.parametrize("vector", [pytest.param(vector(row), id=row.name) for row in VECTORS])
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
    tables = {name: {row.name for row in rows} for name, rows in TABLES.items()}
    missing = {what: where for what, where in COVERED_ELSEWHERE.items()
               if where[1] not in tables[where[0]]}
    assert not missing
