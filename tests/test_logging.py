"""Logging: the access log (default line and --access-log-format), and the user's
own logging configuration (--log-config: JSON, YAML, INI) in a real process."""

from __future__ import annotations

import json
import logging
import os
import re
import textwrap
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from carpinus.config import Config, ConfigError
from carpinus.logging import ACCESS_LOG_ATOMS, AccessLogFormat, access_line
from carpinus.protocols.http_c import _access_log_callable
from tests import apps
from tests.process_utils import Spawner, run_cli

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
    assert _access_log_callable(off) is None
    quiet = logging.getLogger("carpinus.access")
    old = quiet.level
    quiet.setLevel(logging.WARNING)  # on, but the logger would drop INFO anyway
    try:
        assert _access_log_callable(Config(apps.hello, configure_logging=False)) is None
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


# -- --log-config in a real process ------------------------------------------------------


def _dict_config(log_file: Path) -> dict[str, Any]:
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"plain": {"format": "CFG %(name)s %(levelname)s %(message)s"}},
        "handlers": {"file": {"class": "logging.FileHandler", "filename": str(log_file),
                              "formatter": "plain"}},
        "loggers": {"carpinus": {"handlers": ["file"], "level": "INFO",
                                 "propagate": False}},
    }


def _write_ini(path: Path, log_file: Path) -> None:
    path.write_text(textwrap.dedent(f"""\
        [loggers]
        keys=root,carpinus

        [handlers]
        keys=file

        [formatters]
        keys=plain

        [logger_root]
        level=WARNING
        handlers=

        [logger_carpinus]
        level=INFO
        handlers=file
        qualname=carpinus
        propagate=0

        [handler_file]
        class=FileHandler
        args=({str(log_file)!r},)
        formatter=plain

        [formatter_plain]
        format=CFG %(name)s %(levelname)s %(message)s
        """))


@pytest.mark.parametrize("kind", ["json", "yaml", "ini"])
def test_log_config_file(tmp_path: Path, kind: str) -> None:
    log_file = tmp_path / "carpinus.log"
    config_file = tmp_path / f"logging.{kind}"
    if kind == "json":
        config_file.write_text(json.dumps(_dict_config(log_file)))
    elif kind == "yaml":
        yaml = pytest.importorskip("yaml")
        config_file.write_text(yaml.safe_dump(_dict_config(log_file)))
    else:
        _write_ini(config_file, log_file)
    spawner = Spawner()
    try:
        # The ready line goes to the file, not to stderr: don't wait for it.  The
        # test bound the listening socket (--fd), so the request below simply
        # waits in the backlog until the server accepts it.
        server = spawner.start("tests.process_apps:app", "--log-config", str(config_file),
                               "--access-log-format", "%(m)s %(U)s %(s)s", wait=False)
        assert httpx.get(server.url + "/configured", timeout=10).status_code == 404
        assert server.stop() == 0
    finally:
        spawner.close()
    text = log_file.read_text()
    assert "CFG carpinus.error INFO carpinus running on" in text
    assert "CFG carpinus.access INFO GET /configured 404" in text
    assert "running on" not in server.output  # our own stderr handler is not installed


def test_log_config_errors(tmp_path: Path) -> None:
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    result = run_cli("tests.process_apps:app", "--log-config", str(broken))
    assert result.returncode == 2
    assert "cannot apply log_config" in result.stderr
    missing_section = tmp_path / "empty.ini"
    missing_section.write_text("")
    result = run_cli("tests.process_apps:app", "--log-config", str(missing_section))
    assert result.returncode == 2 and "cannot apply log_config" in result.stderr


def test_log_config_dict_from_python() -> None:
    """Config(log_config={...}) applies the dictionary itself (dictConfig)."""
    probe = logging.getLogger("tests.logging.probe")
    before = probe.level
    try:
        Config(apps.hello, log_config={
            "version": 1, "disable_existing_loggers": False,
            "loggers": {"tests.logging.probe": {"level": "DEBUG"}}})
        assert probe.level == logging.DEBUG
    finally:
        probe.setLevel(before)
    with pytest.raises(ConfigError, match="cannot apply log_config"):
        Config(apps.hello, log_config={"version": 99})
