"""The http.response.trailers extension on HTTP/1.1: offered to a request that
says TE: trailers, whose chunked response then ends with the app's trailer
fields; not offered otherwise, and trailers an app sends anyway are dropped
(the response ends as it would without them)."""

from __future__ import annotations

import json

import h11
import pytest

from tests.support import apps
from tests.support.clients import build_request
from tests.support.waiting import wait_for


async def trailers_app(scope, receive, send):
    await apps.read_body(receive)
    offered = "http.response.trailers" in scope["extensions"]
    await send({"type": "http.response.start", "status": 200, "trailers": True,
                "headers": [(b"content-type", b"text/plain"), (b"trailer", b"x-checksum")]})
    await send({"type": "http.response.body", "body": json.dumps(offered).encode(),
                "more_body": True})
    await send({"type": "http.response.body", "body": b" tail"})
    await send({"type": "http.response.trailers", "headers": [(b"x-checksum", b"abc")],
                "more_trailers": True})
    await send({"type": "http.response.trailers", "headers": [(b"x-more", b"2")]})


def h11_exchange(sock, request: bytes):
    """Send one request, read its response with h11 (which reads trailers)."""
    conn = h11.Connection(h11.CLIENT)
    sock.sendall(request)
    conn.send(h11.Request(method="GET", target="/", headers=[("host", "x")]))  # h11's state
    events = []
    while not events or not isinstance(events[-1], h11.EndOfMessage):
        event = conn.next_event()
        if event is h11.NEED_DATA:
            conn.receive_data(sock.recv(65536))
            continue
        events.append(event)
    return events


def test_trailers_to_a_client_that_asks(serve):
    handle = serve(trailers_app)
    with handle.connect() as c:
        for _ in range(2):  # and the connection goes on after them
            events = h11_exchange(c.sock, build_request("GET", "/", [("TE", "trailers")]))
            response, end = events[0], events[-1]
            assert response.status_code == 200
            assert (b"transfer-encoding", b"chunked") in response.headers
            assert b"".join(bytes(e.data) for e in events if isinstance(e, h11.Data)) == \
                b"true tail"
            assert list(end.headers) == [(b"x-checksum", b"abc"), (b"x-more", b"2")]


def test_not_offered_without_te_and_trailers_are_dropped(serve):
    handle = serve(trailers_app)
    with handle.connect() as c:
        r = c.request("GET", "/")
        assert r.status == 200
        assert r.body == b"false tail"  # chunked, ended without trailers
        assert c.request("GET", "/").status == 200


@pytest.mark.parametrize("mistake", ["trailers_first", "body_after_final", "bad_field",
                                     "not_asked"])
def test_trailer_mistakes_are_runtime_errors(serve, mistake):
    errors = []

    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": 200,
                    "trailers": mistake != "not_asked", "headers": []})
        try:
            if mistake == "trailers_first":
                await send({"type": "http.response.trailers", "headers": []})
            await send({"type": "http.response.body", "body": b"x"})
            if mistake == "body_after_final":
                await send({"type": "http.response.body", "body": b"y"})
            name = b"content-length" if mistake == "bad_field" else b"x-ok"
            await send({"type": "http.response.trailers", "headers": [(name, b"1")]})
        except RuntimeError as exc:
            errors.append(str(exc))
            raise

    handle = serve(app)
    with handle.connect() as c:
        c.send(build_request("GET", "/", [("TE", "trailers")]))
        wait_for(lambda: errors)
    assert len(errors) == 1, errors
