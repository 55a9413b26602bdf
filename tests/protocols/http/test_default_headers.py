"""--header NAME:VALUE: extra headers on every response, serialized once by the C
response writer; a `server` header replaces the default one (uvicorn's rules)."""

from __future__ import annotations

import pytest

from carpinus import _core
from carpinus.config import Config, ConfigError
from tests.support import apps
from tests.support.processes import Spawner, run_cli

EXTRA = [("X-Frame-Options", "DENY"), ("strict-transport-security", " max-age=63072000 ")]


def test_extra_headers_on_every_response(serve) -> None:
    handle = serve(apps.hello, headers=EXTRA)
    with handle.connect() as c:
        for _ in range(2):  # keep-alive: the second response has them too
            r = c.request("GET", "/")
            assert r.status == 200 and r.body == b"Hello, World!"
            assert r.header_all("x-frame-options") == ["DENY"]
            assert r.header_all("strict-transport-security") == ["max-age=63072000"]
            assert r.header("server") == "carpinus"
            assert r.header("date") is not None
            # names are sent lowercased, as the server's own headers are
            assert b"\r\nx-frame-options: DENY\r\n" in r.raw_head + b"\r\n"


def test_extra_headers_on_error_responses(serve) -> None:
    """The server's own answers (400, 500) carry them too."""

    async def broken(scope, receive, send):
        raise RuntimeError("boom")

    handle = serve(broken, headers=EXTRA)
    with handle.connect() as c:
        r = c.request("GET", "/")
        assert r.status == 500
        assert r.header("x-frame-options") == "DENY"
    with handle.connect() as c:
        c.send(b"GET / HTTP/1.1\r\nHost: a\r\nBad Header: x\r\n\r\n")
        r = c.read_response()
        assert r.status == 400
        assert r.header("x-frame-options") == "DENY"
        assert r.header("connection") == "close"


def test_extra_headers_beside_the_apps_own(serve) -> None:
    """As in uvicorn, a default header is sent even when the app sends the same name."""

    async def app(scope, receive, send):
        await apps.send_text(send, b"x", headers=[(b"x-frame-options", b"SAMEORIGIN")])

    handle = serve(app, headers=EXTRA)
    with handle.connect() as c:
        r = c.request("GET", "/")
    assert sorted(r.header_all("x-frame-options")) == ["DENY", "SAMEORIGIN"]


@pytest.mark.parametrize("server_header", [True, False])
def test_server_header_replaces_the_default(serve, server_header: bool) -> None:
    handle = serve(apps.hello, headers=[("Server", "edge/1.0")], server_header=server_header)
    with handle.connect() as c:
        r = c.request("GET", "/")
    assert r.header_all("server") == ["edge/1.0"]


def test_apps_server_header_wins(serve) -> None:
    async def app(scope, receive, send):
        await apps.send_text(send, b"x", headers=[(b"server", b"my-app")])

    handle = serve(app, headers=[("server", "edge")])
    with handle.connect() as c:
        r = c.request("GET", "/")
    assert r.header_all("server") == ["my-app"]


def test_head_and_no_body_responses_carry_them(serve) -> None:
    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    handle = serve(app, headers=EXTRA)
    with handle.connect() as c:
        r = c.request("HEAD", "/")
        assert r.status == 204 and r.header("x-frame-options") == "DENY"


@pytest.mark.parametrize("headers, message", [
    ([("Bad Name", "x")], "Invalid HTTP header name"),
    ([("", "x")], "Invalid HTTP header name"),
    ([("x-a", "line\r\nInjected: yes")], "Invalid HTTP header value"),
    ([("x-a", "nul\x00")], "Invalid HTTP header value"),
    ([("Content-Length", "5")], "cannot be a default header"),
    ([("transfer-encoding", "chunked")], "cannot be a default header"),
    ([("Connection", "close")], "cannot be a default header"),
    ([("Date", "yesterday")], "cannot be a default header"),
    ([("x-a", "caf\u00e9 \u2603")], "not latin-1"),
    ([("only-a-name",)], "pairs"),
])
def test_bad_default_headers(headers: list[tuple[str, ...]], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Config(apps.hello, headers=headers, configure_logging=False)  # type: ignore[arg-type]


def test_core_serializes_once() -> None:
    """What the C core will write, computed at start-up."""
    server, extra = _core.default_headers([(b"X-A", b"1"), (b"x-b", b"")], True)
    assert server == b"server: carpinus\r\n"
    assert extra == b"x-a: 1\r\nx-b: \r\n"
    assert _core.default_headers([], False) == (None, None)
    assert _core.default_headers([(b"SERVER", b"a"), (b"server", b"b")], True) == (
        b"server: a\r\nserver: b\r\n", None)
    with pytest.raises(TypeError):
        _core.default_headers([("x", "y")], True)


def test_cli_header_option() -> None:
    spawner = Spawner()
    try:
        server = spawner.start("tests.support.process_apps:app",
                               "--header", "X-Frame-Options: DENY", "--header", "server:edge")
        with server.http_client() as client:
            r = client.get("/")
        assert r.headers["x-frame-options"] == "DENY"
        assert r.headers.get_list("server") == ["edge"]
    finally:
        spawner.close()


@pytest.mark.parametrize("value, message", [
    ("no-colon", "expects NAME:VALUE"),
    (":value", "expects NAME:VALUE"),
    ("content-length: 3", "cannot be a default header"),
])
def test_cli_rejects_bad_header(value: str, message: str) -> None:
    result = run_cli("tests.support.process_apps:app", "--header", value)
    assert result.returncode == 2
    assert message in result.stderr
