"""`carpinus` as a drop-in for the `uvicorn` command (carpinus.uvicorn_compat).

The heart of it is a list of real uvicorn command lines -- from uvicorn's
docs, FastAPI's and Docker images' entry points -- each run with `uvicorn`
replaced by `carpinus` (the console script), from a project directory holding
`main.py`; each must start and answer a request.  Options carpinus has no use
for must be logged once, saying what it does instead.
"""

from __future__ import annotations

import json
import os
import shlex
import sys
import textwrap
import types
from importlib.machinery import ModuleSpec
from pathlib import Path
from typing import Any

import click
import pytest

from carpinus.config import Config, ConfigError
from carpinus.main import main as cli_main
from carpinus.options import OPTIONS_BY_NAME
from carpinus.uvicorn_compat import (
    UVICORN_OPTIONS as UVICORN_OPTION_NAMES,
)
from carpinus.uvicorn_compat import (
    http_version_from_uvicorn,
    log_config_from_uvicorn,
    uvicorn_envvar,
)
from tests.support.processes import CONSOLE_SCRIPT, Spawner
from tests.support.servers import run_server
from tests.support.tls_leg import issue_certificates

pytestmark = pytest.mark.timeout(120)

# Every option of `uvicorn --help`, 0.34 to 0.55 (flags of toggles both ways).
UVICORN_OPTIONS = """
--host --port --uds --fd --reload --reload-dir --reload-include --reload-exclude
--reload-delay --workers --loop --http --http2 --ws --ws-max-size --ws-max-queue
--ws-ping-interval --ws-ping-timeout --ws-per-message-deflate --lifespan --interface
--env-file --log-config --log-level --access-log --no-access-log --use-colors
--no-use-colors --proxy-headers --no-proxy-headers --server-header --no-server-header
--date-header --no-date-header --forwarded-allow-ips --root-path --limit-concurrency
--backlog --limit-max-requests --limit-max-requests-jitter --timeout-keep-alive
--timeout-graceful-shutdown --timeout-worker-healthcheck --ssl-keyfile --ssl-certfile
--ssl-keyfile-password --ssl-version --ssl-cert-reqs --ssl-ca-certs --ssl-ciphers --header
--version --app-dir --h11-max-incomplete-event-size --reset-contextvars --factory --help
""".split()

# uvicorn's own logging configuration (uvicorn.config.LOGGING_CONFIG), with a
# timestamp added to the access line: what `--log-config log.json` files are
# usually made from.
UVICORN_LOG_CONFIG: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "default": {"()": "uvicorn.logging.DefaultFormatter",
                    "fmt": "%(levelprefix)s %(message)s", "use_colors": None},
        "access": {"()": "uvicorn.logging.AccessFormatter",
                   "fmt": 'ACCESS %(levelprefix)s %(client_addr)s - "%(request_line)s" '
                          "%(status_code)s"},
    },
    "handlers": {
        "default": {"formatter": "default", "class": "logging.StreamHandler",
                    "stream": "ext://sys.stderr"},
        "access": {"formatter": "access", "class": "logging.StreamHandler",
                   "stream": "ext://sys.stdout"},
    },
    "loggers": {
        "uvicorn": {"handlers": ["default"], "level": "INFO", "propagate": False},
        "uvicorn.error": {"level": "INFO"},
        "uvicorn.access": {"handlers": ["access"], "level": "INFO", "propagate": False},
    },
}

# (command line after `uvicorn`, a line its log must show once).  PORT is a free
# port; the project directory has main.py (app, create_app), src/, .env, log.json.
COMMAND_LINES = [
    # FastAPI's Docker docs / tiangolo/uvicorn-gunicorn images
    ("main:app --host 0.0.0.0 --port PORT --proxy-headers --forwarded-allow-ips '*'", None),
    ("main:app --workers 2 --loop uvloop --http httptools --port PORT",
     "--http httptools: not a carpinus implementation; carpinus parses HTTP with its own "
     "C parser and serves HTTP/1.1 only."),
    ("main:app --reload --reload-dir src --port PORT", None),
    ("main:app --log-config log.json --port PORT", None),
    ("main:app --env-file .env --port PORT", None),
    ("--factory main:create_app --port PORT", None),
    # uvicorn's settings page, one option of each kind
    ("main:app --port PORT --log-level debug --no-access-log --use-colors",
     "--use-colors: carpinus's log lines carry no colour codes"),
    ("main:app --port PORT --timeout-keep-alive 75 --timeout-graceful-shutdown 30 "
     "--limit-concurrency 100 --backlog 4096 --limit-max-requests 10000 "
     "--limit-max-requests-jitter 100 --timeout-worker-healthcheck 10", None),
    ("main:app --port PORT --ws websockets --ws-max-size 1048576 --ws-max-queue 16 "
     "--ws-ping-interval 30 --ws-ping-timeout 30 --ws-per-message-deflate false",
     "--ws websockets: WebSockets are served by carpinus's own C frame codec"),
    ("main:app --port PORT --http h11 --h11-max-incomplete-event-size 32768",
     "--h11-max-incomplete-event-size 32768: carpinus has no h11"),
    ("main:app --port PORT --lifespan on --interface asgi3 --root-path /api "
     "--no-server-header --no-date-header --header X-Served-By:carpinus --app-dir .", None),
    ("main:app --port PORT --reset-contextvars --loop asyncio --ws-per-message-deflate true",
     "--reset-contextvars: already so in carpinus"),
    ("main:app --port PORT --http zttp --http2 --loop zuvloop",
     "--loop zuvloop: not a carpinus event loop"),
    # uvicorn's HTTPS example (cert.pem/key.pem issued by a trustme CA for the test)
    ("main:app --port PORT --ssl-keyfile=./key.pem --ssl-certfile=./cert.pem", None),
]

MAIN_PY = '''
import os

async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    body = f"{scope['path']} {os.environ.get('GREETING', '-')}"  # (path has root_path)
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body.encode()})

def create_app():
    return app
'''


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A project directory as uvicorn users have one: main.py, src/, .env, log.json."""
    (tmp_path / "main.py").write_text(textwrap.dedent(MAIN_PY))
    (tmp_path / "src").mkdir()
    (tmp_path / ".env").write_text("GREETING=from-dotenv\n")
    (tmp_path / "log.json").write_text(json.dumps(UVICORN_LOG_CONFIG))
    return tmp_path


@pytest.mark.parametrize(("line", "note"), COMMAND_LINES, ids=[c[0] for c in COMMAND_LINES])
def test_uvicorn_command_line_serves(spawn: Spawner, project: Path, line: str,
                                     note: str | None) -> None:
    args = shlex.split(line)
    if "--loop uvloop" in line:
        pytest.importorskip("uvloop")  # missing in the free-threaded leg (make test-ft)
    certificates = issue_certificates(project)[1] if "--ssl-certfile" in line else None
    server = spawn.start(*args, command=[str(CONSOLE_SCRIPT)], tcp="port", cwd=project)
    if certificates is not None:
        server.tls = certificates.client_context  # the client trusts the CA; https:// URLs
        assert "carpinus running on https://" in server.output
    if "--workers" in args:
        assert server.wait_for_output("ready.", count=2), server.output
    with server.http_client() as client:
        response = client.get("/hello")
    assert response.status_code == 200, server.output
    if "--env-file" in args:
        assert response.text == "/hello from-dotenv"
    if "--root-path" in args:
        assert response.text.startswith("/api/hello")
        assert response.headers["x-served-by"] == "carpinus"
        assert "server" not in response.headers and "date" not in response.headers
    if "--log-config" in args:
        # uvicorn's formatter fields, on carpinus's access line
        assert server.wait_for_output('ACCESS INFO:     127.0.0.1:'), server.output
        assert '- "GET /hello HTTP/1.1" 200' in server.output
    assert server.stop() == 0, server.output
    if note is not None:
        assert server.output.count(note) == 1, server.output  # once, workers or not


def test_every_uvicorn_option_is_accepted() -> None:
    params = cli_main.get_params(click.Context(cli_main))  # (--help included)
    ours = {flag for param in params if isinstance(param, click.Option)
            for flag in (*param.opts, *param.secondary_opts)}
    assert set(UVICORN_OPTIONS) - ours == set()


# -- uvicorn's environment variables -----------------------------------------------------


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in list(os.environ):
        if name.startswith(("CARPINUS_", "UVICORN_")):
            monkeypatch.delenv(name)
    return monkeypatch


def parse(*args: str) -> dict[str, Any]:
    with cli_main.make_context("carpinus", list(args)) as ctx:
        return dict(ctx.params)


def test_uvicorn_options_are_in_the_table() -> None:
    assert UVICORN_OPTION_NAMES <= set(OPTIONS_BY_NAME)
    assert uvicorn_envvar("max_requests") == "UVICORN_LIMIT_MAX_REQUESTS"
    assert uvicorn_envvar("reload_dirs") == "UVICORN_RELOAD_DIRS"
    assert uvicorn_envvar("reuse_port") is None  # not a uvicorn option


def test_uvicorn_environment_variables(clean_env: pytest.MonkeyPatch) -> None:
    """UVICORN_<name> sets an option as it does for uvicorn; CARPINUS_<name> and the
    command line win over it."""
    clean_env.setenv("UVICORN_APP", "main:app")
    clean_env.setenv("UVICORN_PORT", "9001")
    clean_env.setenv("UVICORN_LIMIT_MAX_REQUESTS", "500")
    clean_env.setenv("UVICORN_PROXY_HEADERS", "false")
    clean_env.setenv("UVICORN_RELOAD_DIRS", "src lib")
    values = parse()
    assert (values["app"], values["port"], values["max_requests"]) == ("main:app", 9001, 500)
    assert values["proxy_headers"] is False and values["reload_dirs"] == ("src", "lib")
    clean_env.setenv("CARPINUS_PORT", "9002")
    assert parse()["port"] == 9002
    assert parse("--port", "9003", "other:app")["port"] == 9003


def test_bad_uvicorn_variable_is_named(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("UVICORN_PORT", "99999")
    with pytest.raises(click.BadParameter) as error:
        parse()
    assert "'--port' (from $UVICORN_PORT): must be between 0 and 65535" in \
        error.value.format_message()


# -- what the uvicorn-only values turn into -------------------------------------------


@pytest.mark.parametrize(("http", "version"), [
    ("auto", "auto"), ("h11", "1"), ("httptools", "1"), ("zttp", "auto"),
    ("1", "1"), ("2", "2"),  # carpinus's own (the HTTP/2 work's) pass through
])
def test_http_version_from_uvicorn(http: str, version: str) -> None:
    assert http_version_from_uvicorn(http) == version


def test_interface_asgi2_wraps_the_app() -> None:
    """An ASGI 2 app (a class taking the scope, instances awaited with receive, send)."""

    class ASGI2App:
        def __init__(self, scope: dict[str, Any]) -> None:
            self.path = scope["path"]

        async def __call__(self, receive: Any, send: Any) -> None:
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": f"asgi2 {self.path}".encode()})

    with run_server(ASGI2App, interface="asgi2") as handle:
        assert handle.get("/x").text == "asgi2 /x"


def test_interface_wsgi_needs_a2wsgi(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "a2wsgi", None)  # as if not installed
    with pytest.raises(ConfigError, match=r"a2wsgi .*carpinus\[wsgi\]"):
        Config("main:app", interface="wsgi", configure_logging=False)


def test_interface_wsgi_wraps_the_app_with_a2wsgi(monkeypatch: pytest.MonkeyPatch) -> None:
    """With a2wsgi importable, the WSGI app is served through its WSGIMiddleware (a stand-in
    here: the project does not depend on a2wsgi)."""
    wrapped: list[Any] = []

    def wsgi_app(environ: Any, start_response: Any) -> list[bytes]:  # pragma: no cover
        return []

    def middleware(app: Any) -> Any:
        wrapped.append(app)

        async def asgi(scope: dict[str, Any], receive: Any, send: Any) -> None:
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"via a2wsgi"})

        return asgi

    module = types.ModuleType("a2wsgi")
    module.__spec__ = ModuleSpec("a2wsgi", None)
    module.WSGIMiddleware = middleware  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "a2wsgi", module)
    with run_server(wsgi_app, interface="wsgi") as handle:
        assert handle.get("/").text == "via a2wsgi"
    assert wrapped == [wsgi_app]


def test_log_config_from_uvicorn() -> None:
    config = log_config_from_uvicorn(UVICORN_LOG_CONFIG)
    assert config["loggers"]["carpinus.access"] == UVICORN_LOG_CONFIG["loggers"]["uvicorn.access"]
    assert config["loggers"]["uvicorn"] == UVICORN_LOG_CONFIG["loggers"]["uvicorn"]  # kept
    assert {f["()"] for f in config["formatters"].values()} == {
        "carpinus.logging.UvicornFormatter"}
    assert config["formatters"]["default"]["use_colors"] is None  # passed on, ignored
    assert UVICORN_LOG_CONFIG["formatters"]["default"]["()"].startswith("uvicorn.")  # a copy
    own = {"version": 1, "loggers": {"carpinus": {"level": "INFO"}}, "formatters": {}}
    assert log_config_from_uvicorn(own) == own
