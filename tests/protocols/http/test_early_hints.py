"""http.response.early_hint: 103 Early Hints before the final response, on the
wire in that order, to HTTP/1.1 clients; nothing to HTTP/1.0 ones."""

from __future__ import annotations

from tests.support.clients import build_request
from tests.support.waiting import wait_for


async def hinting_app(scope, receive, send):
    assert "http.response.early_hint" in scope["extensions"]
    await send({"type": "http.response.early_hint",
                "links": [b"</style.css>; rel=preload; as=style", b"</app.js>; rel=preload"]})
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-length", b"2")]})
    await send({"type": "http.response.body", "body": b"ok"})


def read_until(sock, marker: bytes) -> bytes:
    data = b""
    while marker not in data:
        chunk = sock.recv(65536)
        assert chunk, data
        data += chunk
    return data


def test_103_before_200_on_the_wire(serve):
    handle = serve(hinting_app)
    with handle.connect() as c:
        c.send(build_request("GET", "/"))
        data = read_until(c.sock, b"\r\n\r\nok")
    assert data.startswith(b"HTTP/1.1 103 Early Hints\r\n"
                           b"link: </style.css>; rel=preload; as=style\r\n"
                           b"link: </app.js>; rel=preload\r\n\r\n"
                           b"HTTP/1.1 200 OK\r\n")


def test_no_103_to_http10(serve):
    handle = serve(hinting_app)
    with handle.connect() as c:
        c.send(b"GET / HTTP/1.0\r\n\r\n")
        data = read_until(c.sock, b"\r\n\r\nok")
    assert data.startswith(b"HTTP/1.1 200 OK\r\n")


def test_early_hint_after_start_is_an_error(serve):
    errors = []

    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": []})
        try:
            await send({"type": "http.response.early_hint", "links": [b"</a>; rel=preload"]})
        except RuntimeError as exc:
            errors.append(exc)
        await send({"type": "http.response.body", "body": b"x"})

    handle = serve(app)
    assert handle.get("/").content == b"x"
    wait_for(lambda: errors)
