"""The access log: the default lines (HTTP and WebSocket) and --access-log-format."""

from __future__ import annotations

import json
import logging
import os
import re
import time
from pathlib import Path
from typing import Any

import pytest

from carpinus.access_log import (
    ACCESS_FIELDS,
    ACCESS_LOG_ATOMS,
    AccessLogFormat,
    access_fields,
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


def test_named_atoms() -> None:
    """%(duration)s, %(bytes_sent)s and %(request_id)s: the record attributes of the
    same names, in a line."""
    fmt = AccessLogFormat("%(duration)s %(bytes_sent)s %(request_id)s")
    assert fmt.format(SCOPE, 200, 512, 0.25) == "0.250000 512 -"
    scope = {**SCOPE, "headers": [*SCOPE["headers"], (b"x-request-id", b"req-7")]}
    assert fmt.format(scope, 200, 0, 1.0) == "1.000000 0 req-7"


def test_record_fields() -> None:
    """The attributes every access-log record carries, typed for a JSON formatter."""
    scope = {**SCOPE, "headers": [*SCOPE["headers"], (b"x-request-id", b"abc-1"),
                                  (b"x-request-id", b"second")]}
    assert access_fields(scope, 201, 512, 0.125) == {
        "client_addr": "203.0.113.7:4711", "method": "POST", "path": "/api/caf%C3%A9",
        "query_string": "a=1&b=%20", "http_version": "1.1", "status_code": 201,
        "bytes_sent": 512, "duration": 0.125, "request_id": "abc-1"}
    ws = {**SCOPE, "type": "websocket", "client": None}
    del ws["method"]
    fields = access_fields(ws, 101, 0, 0.0)
    assert (fields["client_addr"], fields["method"], fields["request_id"]) == (None, "GET", None)
    assert set(fields) == set(ACCESS_FIELDS)


def test_every_record_field_is_documented() -> None:
    doc = (Path(__file__).parent.parent / "docs" / "proxies-and-tls.md").read_text()
    for name in ACCESS_FIELDS:
        assert f"| `{name}` |" in doc, name


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


class _Lines(logging.Handler):
    """Formats the carpinus.access records it gets with `formatter`, one line each."""

    def __init__(self, formatter: logging.Formatter) -> None:
        super().__init__(logging.INFO)
        self.setFormatter(formatter)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))

    def wait(self, count: int) -> list[str]:
        deadline = time.monotonic() + 10
        while len(self.lines) < count and time.monotonic() < deadline:
            time.sleep(0.01)
        return list(self.lines)


@pytest.fixture
def access_handler(caplog: pytest.LogCaptureFixture):
    """attach(formatter): a handler on carpinus.access (INFO on, as the server must see
    it at start-up), removed after the test."""
    caplog.set_level(logging.INFO, logger="carpinus.access")
    logger = logging.getLogger("carpinus.access")
    handlers: list[_Lines] = []

    def attach(formatter: logging.Formatter) -> _Lines:
        handler = _Lines(formatter)
        logger.addHandler(handler)
        handlers.append(handler)
        return handler

    yield attach
    for handler in handlers:
        logger.removeHandler(handler)


async def _sized(scope, receive, send):
    """Answers with as many bytes as the request body had, after ?ms=N milliseconds."""
    import asyncio

    body, _ = await apps.read_body(receive)
    ms = int(scope["query_string"].decode().partition("ms=")[2] or 0)
    await asyncio.sleep(ms / 1000)
    await apps.send_text(send, b"x" * len(body), status=201)


@pytest.mark.parametrize("line_format", [None, '%(h)s "%(r)s" %(s)s'],
                         ids=["default line", "--access-log-format"])
def test_record_attributes_through_a_formatter(serve, access_handler, line_format) -> None:
    """A logging.Formatter names the record's attributes: no parsing of the line, with
    the default line or a custom one; a request refused by the parser has them too."""
    handler = access_handler(logging.Formatter(
        "%(client_addr)s|%(method)s|%(path)s|%(query_string)s|%(http_version)s|"
        "%(status_code)d|%(bytes_sent)d|%(duration).3f|%(request_id)s"))
    handle = serve(_sized, access_log=True, access_log_format=line_format)
    with handle.connect() as c:
        local = c.sock.getsockname()
        r = c.request("POST", "/items/%C3%A9?ms=200", body=b"abcde",
                      headers=[("X-Request-ID", "req-42")])
        assert r.status == 201
        r = c.request("GET", "/proxied", headers=[("X-Forwarded-For", "203.0.113.9")],
                      version="1.0")
        assert r.status == 201
    with handle.connect() as c:
        c.send(b"GET /\x01 HTTP/1.1\r\n\r\n")
        assert c.read_response().status == 400
    lines = handler.wait(3)
    assert len(lines) == 3, lines
    first = lines[0].split("|")
    assert first[:7] == [f"{local[0]}:{local[1]}", "POST", "/items/%C3%A9", "ms=200", "1.1",
                         "201", "5"]
    assert 0.2 <= float(first[7]) < 2.0, first  # the app slept 200 ms
    assert first[8] == "req-42"
    second = lines[1].split("|")
    assert second[:7] == ["203.0.113.9:0", "GET", "/proxied", "", "1.0", "201", "0"]
    assert second[8] == "None"
    assert lines[2].split("|")[1:6] == ["-", "-", "", "1.1", "400"]


def test_json_access_log_with_python_json_logger(serve, access_handler) -> None:
    """python-json-logger's JsonFormatter turns each record into an object whose fields
    are the record's attributes, with their types (int status, float duration): HTTP
    requests and a WebSocket."""
    from pythonjsonlogger.json import JsonFormatter

    handler = access_handler(JsonFormatter("%(levelname)s %(name)s %(message)s"))
    http = serve(_sized, access_log=True)
    ws = serve(ws_apps.echo, access_log=True)
    with http.connect() as c:
        local = c.sock.getsockname()
        assert c.request("PUT", "/a/b?c=d", body=b"xyz",
                         headers=[("X-Request-ID", "7f9c0b1e")]).status == 201
    with connect_ws(ws, "/chat?room=1") as conn:
        conn.send("hi")
        assert conn.recv(timeout=10) == "hi"
        ws_local = conn.socket.getsockname()
    # (two servers, two threads: the lines may come in either order)
    records = sorted((json.loads(line) for line in handler.wait(2)),
                     key=lambda record: record["status_code"])
    assert len(records) == 2, records
    ws_record, put = records
    duration = put.pop("duration")
    assert isinstance(duration, float) and 0 < duration < 2.0
    assert put == {
        "levelname": "INFO", "name": "carpinus.access",
        "message": f'{local[0]}:{local[1]} - "PUT /a/b?c=d HTTP/1.1" 201',
        "client_addr": f"{local[0]}:{local[1]}", "method": "PUT", "path": "/a/b",
        "query_string": "c=d", "http_version": "1.1", "status_code": 201, "bytes_sent": 3,
        "request_id": "7f9c0b1e"}
    assert ws_record == {
        "levelname": "INFO", "name": "carpinus.access",
        "message": f'{ws_local[0]}:{ws_local[1]} - "WebSocket /chat" 101',
        "client_addr": f"{ws_local[0]}:{ws_local[1]}", "method": "GET", "path": "/chat",
        "query_string": "room=1", "http_version": "1.1", "status_code": 101, "bytes_sent": 0,
        "duration": 0.0, "request_id": None}
