"""The access log: the default lines (HTTP and WebSocket) and --access-log-format."""

from __future__ import annotations

import logging
import os
import re
import time
from pathlib import Path
from typing import Any

import pytest

from carpinus.access_log import (
    ACCESS_LOG_ATOMS,
    AccessLogFormat,
    access_line,
    make_access_log,
    websocket_access_line,
)
from carpinus.config import Config, ConfigError
from tests.support import apps, ws_apps
from tests.support.ws_clients import connect_ws

SCOPE: dict[str, Any] = {
    "type": "http", "method": "POST", "http_version": "1.1", "scheme": "https",
    "path": "/api/café", "raw_path": b"/api/caf%C3%A9", "root_path": "/api",
    "query_string": b"a=1&b=%20", "client": ("203.0.113.7", 4711),
    "headers": [(b"host", b"x"), (b"user-agent", b"curl/8"), (b"x-id", b"1"),
                (b"x-id", b"2")],
}


# -- format ---------------------------------------------------------------------


def test_default_line() -> None:
    """uvicorn's shape; the target as the client sent it (root_path not doubled)."""
    assert access_line(SCOPE, 201) == (
        '203.0.113.7:4711 - "POST /api/caf%C3%A9?a=1&b=%20 HTTP/1.1" 201')
    assert access_line({**SCOPE, "client": None, "query_string": b""}, 200).startswith(
        '- - "POST /api/caf%C3%A9 HTTP/1.1"')


def test_websocket_line() -> None:
    """The path as the app sees it: root_path is already its start, not added twice."""
    ws = {**SCOPE, "type": "websocket"}
    del ws["method"]
    assert websocket_access_line(ws, 101) == '203.0.113.7:4711 - "WebSocket /api/café" 101'
    assert websocket_access_line({**ws, "client": None}, 403) == '- - "WebSocket /api/café" 403'


def test_format_atoms() -> None:
    fmt = AccessLogFormat(
        '%(h)s %(l)s %(u)s "%(r)s" %(s)s %(b)s %(B)s "%(f)s" "%(a)s" %(m)s %(U)s %(q)s '
        "%(H)s %(S)s %(T)s %(M)s %(D)s %(L)s %({X-Id}i)s %({x-none}i)s %(p)s %%")
    line = fmt.format(SCOPE, 201, 0, 1.2345678)
    assert line == (
        '203.0.113.7 - - "POST /api/caf%C3%A9?a=1&b=%20 HTTP/1.1" 201 - 0 "-" "curl/8" '
        "POST /api/caf%C3%A9 a=1&b=%20 HTTP/1.1 https 1 1234 1234567 1.234568 1,2 - "
        f"<{os.getpid()}> %")
    assert AccessLogFormat("%(b)s").format(SCOPE, 200, 512, 0.0) == "512"


def test_time_and_environment_atoms(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CARPINUS_TEST_REGION", "eu-1")
    line = AccessLogFormat("%(t)s %({CARPINUS_TEST_REGION}e)s %({NOPE_NOT_SET}e)s").format(
        SCOPE, 200, 0, 0.0)
    assert re.fullmatch(r"\[\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4}\] eu-1 -", line), line


def test_format_of_a_websocket_scope() -> None:
    """A websocket scope has no method: its request was the GET asking for the upgrade."""
    ws = {**SCOPE, "type": "websocket", "scheme": "wss"}
    del ws["method"]
    assert AccessLogFormat('%(m)s "%(r)s" %(s)s %(b)s %(S)s').format(ws, 101, 0, 0.0) == (
        'GET "GET /api/caf%C3%A9?a=1&b=%20 HTTP/1.1" 101 - wss')


@pytest.mark.parametrize("fmt, message", [
    ("%(zz)s", "unknown atom"),
    ("%({bad header}i)s", "unknown atom"),
    ("%(s)d", "not a valid format"),
    ("%(s)s 100%", "not a valid format"),
])
def test_bad_formats(fmt: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        AccessLogFormat(fmt)
    with pytest.raises(ConfigError, match=message):
        Config(apps.hello, access_log_format=fmt, configure_logging=False)


def test_every_atom_is_documented() -> None:
    doc = (Path(__file__).parent.parent / "docs" / "proxies-and-tls.md").read_text()
    for atom in ACCESS_LOG_ATOMS:
        assert f"`%({atom})s`" in doc, atom


def test_access_log_off_costs_the_core_nothing() -> None:
    """With the access log off the C core gets access_log=None: it keeps no scope
    and takes no timestamps for it."""
    off = Config(apps.hello, access_log=False, access_log_format="%(h)s",
                 configure_logging=False)
    assert make_access_log(off.access_log, off.access_log_formatter) is None
    quiet = logging.getLogger("carpinus.access")
    old = quiet.level
    quiet.setLevel(logging.WARNING)  # on, but the logger would drop INFO anyway
    try:
        on = Config(apps.hello, configure_logging=False)
        assert make_access_log(on.access_log, on.access_log_formatter) is None
    finally:
        quiet.setLevel(old)


# -- the real server ------------------------------------------------------------------


def access_lines(caplog: pytest.LogCaptureFixture, count: int) -> list[str]:
    """The access lines logged so far, once there are `count` of them: the server
    thread logs a line after the response bytes are out, so the client may read
    the response first."""
    deadline = time.monotonic() + 10
    while True:
        lines = [rec.getMessage() for rec in caplog.records if rec.name == "carpinus.access"]
        if len(lines) >= count or time.monotonic() > deadline:
            return lines
        time.sleep(0.01)


def test_access_log_format_in_server(serve, caplog: pytest.LogCaptureFixture) -> None:
    async def app(scope, receive, send):
        body, _ = await apps.read_body(receive)
        await apps.send_text(send, b"x" * len(body), status=201)

    # the level must allow INFO when the server starts: that is when it decides
    # whether the core calls the access log at all
    caplog.set_level(logging.INFO, logger="carpinus.access")
    handle = serve(app, access_log=True,
                   access_log_format='%(h)s "%(r)s" %(s)s %(b)s %({x-trace}i)s %(L)s')
    with handle.connect() as c:
        r = c.request("POST", "/items?x=1", headers=[("X-Trace", "t-1")], body=b"abcde")
        assert r.status == 201
        r = c.request("GET", "/proxied", headers=[("X-Forwarded-For", "203.0.113.9")])
    lines = access_lines(caplog, 2)
    assert re.fullmatch(r'127\.0\.0\.1 "POST /items\?x=1 HTTP/1\.1" 201 5 t-1 \d+\.\d{6}',
                        lines[0]), lines[0]
    # the access log shows the client the proxy headers gave
    assert lines[1].startswith('203.0.113.9 "GET /proxied HTTP/1.1" 201 - - '), lines[1]


def test_default_access_line_in_server(serve, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="carpinus.access")
    handle = serve(apps.hello, access_log=True)
    with handle.connect() as c:
        assert c.request("GET", "/a?b=c").status == 200
        local = c.sock.getsockname()
    lines = access_lines(caplog, 1)
    assert lines == [f'{local[0]}:{local[1]} - "GET /a?b=c HTTP/1.1" 200']


def test_websocket_lines_in_server(serve, caplog: pytest.LogCaptureFixture) -> None:
    """WebSockets are logged by the same access log: the default line, or the format."""
    caplog.set_level(logging.INFO, logger="carpinus.access")
    plain = serve(ws_apps.echo, access_log=True, root_path="/m")
    formatted = serve(ws_apps.echo, access_log=True, access_log_format='%(h)s "%(r)s" %(s)s')
    with connect_ws(plain, "/chat") as ws:  # the proxy took /m off
        ws.send("hi")
        assert ws.recv(timeout=10) == "hi"
        local = ws.socket.getsockname()
    with connect_ws(formatted, "/chat?room=1") as ws:
        ws.send("hi")
        assert ws.recv(timeout=10) == "hi"
    lines = access_lines(caplog, 2)
    assert f'{local[0]}:{local[1]} - "WebSocket /m/chat" 101' in lines, lines
    assert '127.0.0.1 "GET /chat?room=1 HTTP/1.1" 101' in lines, lines
