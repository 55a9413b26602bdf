"""carpinus.main: the `carpinus` command line, run as a real process (`python -m
carpinus` and the script), and launch()'s choice of process model.

Servers are started on a socket the test binds and passes with --fd (no port
races) unless the test is about another way of listening.  Readiness is the
"carpinus running on" log line; every wait is bounded.
"""

from __future__ import annotations

import inspect
import json
import signal
import textwrap
import threading
from pathlib import Path

import httpx
import pytest

import carpinus
from carpinus.config import Config
from carpinus.main import main as cli_main
from tests.support.clients import RawClient
from tests.support.process_apps import SLEEP_MARKER
from tests.support.processes import (
    CONSOLE_SCRIPT,
    READY_LINE,
    Spawner,
    child_env,
    module_command,
    run_cli,
)

PROCESS_APP = "tests.support.process_apps:app"

# Every option the command had before the option table, spelled as on the command line.
CLI_OPTIONS = [
    "--host", "--port", "--uds", "--fd", "--backlog", "--loop", "--lifespan", "--factory",
    "--app-dir", "--root-path", "--log-level", "--access-log", "--no-access-log",
    "--server-header", "--no-server-header", "--date-header", "--no-date-header",
    "--timeout-keep-alive", "--timeout-request-header", "--timeout-request-body",
    "--timeout-graceful-shutdown",
    "--limit-request-line", "--limit-request-headers", "--limit-request-header-size",
    "--limit-request-head",
    "--limit-request-body", "--limit-concurrency", "--gc-freeze", "--no-gc-freeze",
    "--malloc-tuning", "--no-malloc-tuning", "--opt", "--zero-copy-threshold",
    "--lazy-headers-min", "--scope-cache-size",
    "--ssl-keyfile", "--ssl-certfile", "--ssl-keyfile-password", "--ssl-version",
    "--ssl-cert-reqs", "--ssl-ca-certs", "--ssl-ciphers", "--proxy-headers",
    "--no-proxy-headers", "--forwarded-allow-ips", "--header", "--env-file", "--log-config",
    "--access-log-format",
    "--workers", "--max-requests", "--limit-max-requests", "--max-requests-jitter",
    "--limit-max-requests-jitter", "--timeout-worker-healthcheck", "--reload", "--reload-dir",
    "--reload-include", "--reload-exclude", "--pid",
    "--ws", "--ws-max-size", "--ws-max-queue", "--ws-ping-interval", "--ws-ping-timeout",
    "--ws-per-message-deflate",
    "--version", "--help",
]

COMMANDS = {
    "python -m carpinus": module_command(),
    "carpinus script": [str(CONSOLE_SCRIPT)],
}


@pytest.fixture
def app_dir(tmp_path: Path) -> Path:
    """A directory, not on sys.path, holding `myapp.py` with an app and a factory."""
    directory = tmp_path / "apps"
    directory.mkdir()
    (directory / "myapp.py").write_text(textwrap.dedent('''
        async def app(scope, receive, send):
            if scope["type"] != "http":
                return
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"from myapp"})

        def create_app():
            async def made(scope, receive, send):
                if scope["type"] != "http":
                    return
                await send({"type": "http.response.start", "status": 200, "headers": []})
                await send({"type": "http.response.body", "body": b"made by factory"})
            return made

        def needs_argument(arg):
            return app

        not_callable = 42
    '''))
    return directory


# -- --version / --help --------------------------------------------------------


@pytest.mark.parametrize("command", COMMANDS.values(), ids=COMMANDS.keys())
def test_version(command: list[str]) -> None:
    """--version prints "carpinus <version>" and exits 0, from both entry points."""
    result = run_cli("--version", command=command)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"carpinus {carpinus.__version__} ")
    assert "Python" in result.stdout or "CPython" in result.stdout


def test_help_lists_every_option() -> None:
    """--help documents each of these options, and the APP argument."""
    result = run_cli("--help")
    assert result.returncode == 0, result.stderr
    for option in CLI_OPTIONS:
        assert option in result.stdout, f"{option} missing from --help"
    assert "APP" in result.stdout
    assert "demo app" in result.stdout


def test_cli_keeps_every_spelling() -> None:
    """Every spelling in CLI_OPTIONS above is still defined (users' scripts and
    uvicorn command lines rely on them).  New options need not be added here:
    test_options.py checks that the command defines exactly the option table's."""
    defined = set()
    for param in cli_main.params:
        defined.update(param.opts)
        defined.update(param.secondary_opts)
    defined.add("--help")
    assert set(CLI_OPTIONS) <= defined, set(CLI_OPTIONS) - defined


def test_one_cli_option_per_config_field() -> None:
    """Each Config keyword is settable from the command line under the same name
    (configure_logging aside): both are made from the option table."""
    fields = set(inspect.signature(Config).parameters) - {"app", "configure_logging"}
    options = {p.name for p in cli_main.params} - {"app", "version"}
    assert fields == options


# -- the demo app --------------------------------------------------------------


@pytest.mark.parametrize("command", COMMANDS.values(), ids=COMMANDS.keys())
def test_no_app_serves_demo(spawn: Spawner, command: list[str]) -> None:
    """Without APP the demo app is served, the log says so, and its five routes answer."""
    server = spawn.start(command=command)
    assert "demo app" in server.output
    with httpx.Client(base_url=server.url, timeout=10) as client:
        r = client.get("/")
        assert (r.status_code, r.text) == (200, "Hello, World!")
        assert r.headers["server"] == "carpinus"
        assert "date" in r.headers
        r = client.get("/sleep", params={"ms": "5"})
        assert (r.status_code, r.text) == (200, "ok")
        r = client.post("/upload", content=b"x" * 100_000)
        assert (r.status_code, r.text) == (200, "100000")
        r = client.get("/headers", headers={"User-Agent": "cli-test/1", "Accept": "text/x-test"})
        assert r.status_code == 200
        assert r.text == "user-agent: cli-test/1\naccept: text/x-test"
        r = client.get("/users/4711")
        assert (r.status_code, r.text) == (200, "user 4711")
        assert client.get("/nope").status_code == 404


# -- finding the app -----------------------------------------------------------


def test_app_dir(spawn: Spawner, app_dir: Path, tmp_path: Path) -> None:
    """--app-dir puts a directory on sys.path so `myapp:app` imports from it."""
    server = spawn.start("myapp:app", "--app-dir", str(app_dir), command=[str(CONSOLE_SCRIPT)],
                         cwd=tmp_path)
    assert httpx.get(server.url + "/", timeout=10).text == "from myapp"


def test_app_in_the_current_directory(spawn: Spawner, app_dir: Path) -> None:
    """Without --app-dir the console script imports APP from the current directory,
    as `uvicorn myapp:app` does."""
    server = spawn.start("myapp:app", command=[str(CONSOLE_SCRIPT)], cwd=app_dir)
    assert httpx.get(server.url + "/", timeout=10).text == "from myapp"


def test_factory(spawn: Spawner, app_dir: Path, tmp_path: Path) -> None:
    """--factory calls the named callable and serves what it returns."""
    server = spawn.start("myapp:create_app", "--factory", "--app-dir", str(app_dir),
                         cwd=tmp_path)
    assert httpx.get(server.url + "/", timeout=10).text == "made by factory"


@pytest.mark.parametrize(("app", "extra", "message"), [
    ("no_such_module_xyz:app", [], 'Could not import module "no_such_module_xyz"'),
    ("myapp", [], "must be in format"),
    ("myapp:missing", [], 'Attribute "missing" not found in module "myapp"'),
    ("myapp:not_callable", [], "is not callable"),
    ("myapp:needs_argument", ["--factory"], "Error loading ASGI app factory"),
])
def test_bad_app_exits_with_message(app_dir: Path, tmp_path: Path, app: str,
                                    extra: list[str], message: str) -> None:
    """An app that cannot be loaded: non-zero exit and a message naming the problem."""
    result = run_cli(app, "--app-dir", str(app_dir), *extra, "--port", "0", cwd=tmp_path)
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert message in output, output
    assert READY_LINE not in output
    assert "Traceback" not in output


@pytest.mark.parametrize(("args", "message"), [
    (["--loop", "bogus"], "--loop"),
    (["--lifespan", "sometimes"], "--lifespan"),
    (["--port", "eighty"], "--port"),
    (["--port", "99999"], "'--port': must be between 0 and 65535, got 99999"),
    (["--port", "-1"], "'--port': must be between 0 and 65535, got -1"),
    (["--host", "999.1.1.1"],
     "'--host': must be an IP address or a host name, got '999.1.1.1' (not an IPv4 address)"),
    (["--host", "bad host"], "'--host': must be an IP address or a host name, got 'bad host'"),
    (["--fd", "-1"], "'--fd': must be >= 0, got -1"),
    (["--timeout-keep-alive", "0"], "'--timeout-keep-alive': must be positive, got 0.0"),
    (["--timeout-request-header", "-1"], "'--timeout-request-header': must be positive, got -1.0"),
    (["--timeout-request-body", "0"], "'--timeout-request-body': must be positive, got 0.0"),
    (["--timeout-graceful-shutdown", "0"],
     "'--timeout-graceful-shutdown': must be positive, got 0.0"),
    (["--timeout-graceful-shutdown", "nan"],
     "'--timeout-graceful-shutdown': must be positive, got nan"),
    (["--root-path", "api"], "'--root-path': must start with '/' and not end with '/', got 'api'"),
    (["--limit-concurrency", "0"], "'--limit-concurrency': must be >= 1, got 0"),
    (["--limit-request-line", "1"],
     "'--limit-request-line': must be between 16 and 16777216, got 1"),
    (["--uds", "/tmp/x.sock", "--fd", "3"], "at most one of uds and fd"),
    (["--reuse-port", "--uds", "/tmp/x.sock"], "reuse_port applies to the sockets carpinus"),
    (["--workers", "0"], "'--workers': must be >= 1, got 0"),
    (["--max-requests", "0"], "'--max-requests' / '--limit-max-requests': must be >= 1, got 0"),
    (["--max-requests-jitter", "-1"], "must be >= 0, got -1"),
    (["--timeout-worker-healthcheck", "0"],
     "'--timeout-worker-healthcheck': must be positive, got 0.0"),
    (["--ws-ping-interval", "-1"], "'--ws-ping-interval': must be positive, got -1.0"),
    (["--header", "no-colon"], "'--header': expects NAME:VALUE, got 'no-colon'"),
    (["--opt", "turbo=on"], "'--opt': unknown optimization 'turbo'"),
    (["--no-such-option"], "No such option"),
])
def test_invalid_option_values_exit_non_zero(args: list[str], message: str) -> None:
    """Bad option values are usage errors (exit 2) that name the option, the value and
    what is allowed, before anything binds; nothing is served."""
    result = run_cli(PROCESS_APP, *args)
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    assert message in result.stderr, result.stderr
    assert READY_LINE not in result.stdout + result.stderr


# -- ways to listen ------------------------------------------------------------


def test_uds(spawn: Spawner, tmp_path: Path) -> None:
    """--uds serves HTTP over a Unix domain socket at the given path."""
    path = tmp_path / "carpinus.sock"
    server = spawn.start(PROCESS_APP, "--uds", str(path), tcp="none")
    assert "unix socket" in server.output
    assert path.is_socket()
    transport = httpx.HTTPTransport(uds=str(path))
    with httpx.Client(transport=transport, timeout=10) as client:
        r = client.get("http://carpinus/")
        assert (r.status_code, r.text) == (200, "Hello")
        assert json.loads(client.get("http://carpinus/scope").text)["path"] == "/scope"


def test_fd(spawn: Spawner) -> None:
    """--fd serves on a socket inherited from the parent (pass_fds), reporting its address."""
    server = spawn.start(PROCESS_APP, tcp="fd")
    assert "socket fd" in server.output
    r = httpx.get(server.url + "/scope", timeout=10)
    assert r.status_code == 200
    assert json.loads(r.text)["server"] == ["127.0.0.1", server.port]


def test_host_and_port(spawn: Spawner) -> None:
    """--host/--port bind the address themselves and log the URL."""
    server = spawn.start(PROCESS_APP, "--host", "127.0.0.1", tcp="port")
    assert f"{READY_LINE} http://127.0.0.1:{server.port}" in server.output
    assert httpx.get(server.url + "/", timeout=10).text == "Hello"


# -- options visible in responses and logs ------------------------------------


def test_root_path(spawn: Spawner) -> None:
    """--root-path is the scope's root_path and the start of path and raw_path:
    a proxy that strips the mount point sends /scope, and the app sees the
    full path (as with uvicorn >= 0.26)."""
    server = spawn.start(PROCESS_APP, "--root-path", "/api")
    body = json.loads(httpx.get(server.url + "/scope", timeout=10).text)
    assert body["root_path"] == "/api"
    assert body["path"] == "/api/scope"
    assert body["raw_path"] == "/api/scope"


def test_no_server_header_no_date_header(spawn: Spawner) -> None:
    """--no-server-header and --no-date-header drop those response headers."""
    server = spawn.start(PROCESS_APP, "--no-server-header", "--no-date-header")
    r = httpx.get(server.url + "/", timeout=10)
    assert r.status_code == 200
    assert "server" not in r.headers
    assert "date" not in r.headers


def test_access_log_on_by_default(spawn: Spawner) -> None:
    """By default each request logs one access line: client, request line, status."""
    server = spawn.start(PROCESS_APP)
    with server.connect() as client:
        assert client.request("GET", "/logged?x=1").status == 404
        local = client.sock.getsockname()
    expected = f'{local[0]}:{local[1]} - "GET /logged?x=1 HTTP/1.1" 404'
    assert server.wait_for_output(expected, timeout=10), server.output


def test_no_access_log(spawn: Spawner) -> None:
    """--no-access-log: no access line, even once the process has exited and flushed."""
    server = spawn.start(PROCESS_APP, "--no-access-log")
    assert httpx.get(server.url + "/quiet", timeout=10).status_code == 404
    server.send_signal(signal.SIGTERM)
    assert server.wait() == 0
    assert "Shutting down" in server.output
    assert "/quiet" not in server.output


def test_limit_concurrency(spawn: Spawner) -> None:
    """--limit-concurrency 1: while one slow request runs, another gets 503; later ones 200."""
    server = spawn.start(PROCESS_APP, "--limit-concurrency", "1")
    results: list[httpx.Response] = []

    def slow() -> None:
        results.append(httpx.get(server.url + "/sleep?ms=1500", timeout=10))

    thread = threading.Thread(target=slow)
    thread.start()
    try:
        assert server.wait_for_output(SLEEP_MARKER, timeout=10), server.output
        with server.connect() as client:
            r = client.request("GET", "/")
            assert r.status == 503
            assert client.is_closed()
    finally:
        thread.join(10)
    assert [(r.status_code, r.text) for r in results] == [(200, "ok")]
    assert httpx.get(server.url + "/", timeout=10).status_code == 200


def test_options_from_environment(spawn: Spawner) -> None:
    """Options can come from CARPINUS_* environment variables (click's auto_envvar_prefix)."""
    server = spawn.start(PROCESS_APP, env=child_env(CARPINUS_ROOT_PATH="/from-env"))
    body = json.loads(httpx.get(server.url + "/scope", timeout=10).text)
    assert body["root_path"] == "/from-env"



def test_env_file(spawn: Spawner, tmp_path: Path) -> None:
    """--env-file: the variables are set before the app is imported (the app reads
    one at import time) and before FORWARDED_ALLOW_IPS is read."""
    (tmp_path / "envapp.py").write_text(textwrap.dedent('''
        import json, os
        GREETING = os.environ["ENVAPP_GREETING"]

        async def app(scope, receive, send):
            if scope["type"] != "http":
                return
            body = json.dumps({"greeting": GREETING, "client": scope["client"]})
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": body.encode()})
    '''))
    env = tmp_path / "prod.env"
    env.write_text("ENVAPP_GREETING=hi from env\nFORWARDED_ALLOW_IPS=10.0.0.1\n")
    server = spawn.start("envapp:app", "--app-dir", str(tmp_path), "--env-file", str(env))
    assert "Loaded environment from" in server.output
    with server.connect() as client:
        r = client.request("GET", "/", headers=[("X-Forwarded-For", "203.0.113.7")])
        local = client.sock.getsockname()
    body = json.loads(r.body)
    assert body["greeting"] == "hi from env"
    assert body["client"] == [local[0], local[1]]  # 127.0.0.1 is not trusted now


# -- launch(): one process, no supervisor ----------------------------------------


def test_max_requests_without_supervisor_exits_0(spawn: Spawner) -> None:
    """A single server with --max-requests 3 stops gracefully after 3 requests and exits 0
    (uvicorn's behaviour: a process manager is expected to start it again)."""
    server = spawn.start(PROCESS_APP, "--max-requests", "3", "--lifespan", "on")
    assert server.port is not None
    for _ in range(3):
        with RawClient("127.0.0.1", server.port, 30) as client:
            assert client.request("GET", "/", headers=[("Connection", "close")]).status == 200
    assert server.wait(timeout=30) == 0, server.output
    assert "Maximum request limit of 3 reached" in server.output
    assert "Application shutdown complete." in server.output
