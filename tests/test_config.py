"""Config: option validation, the event-loop choice and app loading (unit tests, no sockets).

Every Config here is built with configure_logging=False: the real set-up
would attach a handler to the "carpinus" logger and stop propagation, which
would hide records from pytest's caplog in later tests of the same session.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from carpinus.config import DEMO_APP, Config, ConfigError
from tests.support import apps


def make(**options: Any) -> Config:
    options.setdefault("configure_logging", False)
    return Config(apps.hello, **options)


def test_defaults_are_valid() -> None:
    """The defaults (uvicorn's, where the concept is shared) validate and load the demo app."""
    config = Config(configure_logging=False)
    assert config.app == DEMO_APP and config.is_demo
    assert (config.host, config.port, config.loop, config.lifespan) == (
        "127.0.0.1", 8000, "auto", "auto")
    assert (config.timeout_keep_alive, config.timeout_request_header) == (5.0, 10.0)
    # (not uvicorn's: a stop ends, docs/deployment.md)
    assert config.timeout_graceful_shutdown == 5.0
    assert config.limit_request_body is None and config.limit_concurrency is None
    config.load()
    from carpinus.demo import app

    assert config.loaded_app is app


def test_config_error_is_a_value_error() -> None:
    """ConfigError subclasses ValueError, so callers may catch either."""
    assert issubclass(ConfigError, ValueError)


@pytest.mark.parametrize(("options", "message"), [
    ({"loop": "bogus"}, "loop must be auto, asyncio, uvloop, none or zuvloop, got 'bogus'"),
    ({"loop": "trio"}, "loop must be"),
    ({"lifespan": "maybe"}, "lifespan must be auto, on or off, got 'maybe'"),
    ({"lifespan": True}, "lifespan must be"),
])
def test_bad_choices(options: dict[str, Any], message: str) -> None:
    """loop and lifespan accept only their documented choices; the error quotes the value."""
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        make(**options)


@pytest.mark.parametrize("loop", ["auto", "asyncio", "uvloop"])
@pytest.mark.parametrize("lifespan", ["auto", "on", "off"])
def test_good_choices(loop: str, lifespan: str) -> None:
    """Every documented loop/lifespan choice is accepted."""
    config = make(loop=loop, lifespan=lifespan)
    assert (config.loop, config.lifespan) == (loop, lifespan)


@pytest.mark.parametrize("root_path", ["", "/api", "/a/b", "/v1.2"])
def test_root_path_accepted(root_path: str) -> None:
    """An empty root_path, or one that starts with '/' and does not end with one."""
    assert make(root_path=root_path).root_path == root_path


@pytest.mark.parametrize("root_path", ["api", "api/", "/api/", "/", "//"])
def test_root_path_rejected(root_path: str) -> None:
    """A root_path without a leading '/' or with a trailing '/' is refused."""
    with pytest.raises(ConfigError, match="root_path must start with '/' and not end with '/'"):
        make(root_path=root_path)


@pytest.mark.parametrize("name", ["timeout_keep_alive", "timeout_request_header",
                                  "timeout_request_body", "timeout_graceful_shutdown"])
@pytest.mark.parametrize("value", [0, 0.0, -1, -0.5])
def test_non_positive_timeouts_rejected(name: str, value: float) -> None:
    """Timeouts must be positive: zero or negative would close everything at once."""
    with pytest.raises(ConfigError, match=f"{name} must be positive, got {value!r}"):
        make(**{name: value})


@pytest.mark.parametrize("name", ["timeout_keep_alive", "timeout_request_header",
                                  "timeout_request_body"])
def test_required_timeouts(name: str) -> None:
    """The keep-alive and request-header timeouts cannot be switched off with None."""
    with pytest.raises(ConfigError, match=f"{name} is required"):
        make(**{name: None})


def test_positive_timeouts_accepted() -> None:
    """Small positive timeouts are fine; the graceful-shutdown one may be None or inf (wait
    forever), but not 0 or NaN."""
    config = make(timeout_keep_alive=0.01, timeout_request_header=0.5,
                  timeout_graceful_shutdown=0.1)
    assert config.timeout_graceful_shutdown == 0.1
    assert make(timeout_graceful_shutdown=None).timeout_graceful_shutdown is None
    assert make(timeout_graceful_shutdown=float("inf")).timeout_graceful_shutdown == float("inf")
    for bad in (0, -1.0, float("nan")):
        with pytest.raises(ConfigError, match="timeout_graceful_shutdown must be positive"):
            make(timeout_graceful_shutdown=bad)


@pytest.mark.parametrize(("options", "message"), [
    ({"limit_request_line": 15}, "limit_request_line must be between 16 and 16777216, got 15"),
    ({"limit_request_line": 0}, "limit_request_line must be between 16 and 16777216, got 0"),
    ({"limit_request_line": 1 << 24 | 1},
     "limit_request_line must be between 16 and 16777216, got 16777217"),
    ({"limit_request_header_size": 15},
     "limit_request_header_size must be between 16 and 16777216, got 15"),
    ({"limit_request_headers": 0}, "limit_request_headers must be between 1 and 100000, got 0"),
    ({"limit_request_head": 255}, "limit_request_head must be between 256 and 67108864, got 255"),
    ({"limit_request_body": -1}, "limit_request_body must be >= 0, got -1"),
    ({"limit_concurrency": 0}, "limit_concurrency must be >= 1, got 0"),
    ({"limit_concurrency": -5}, "limit_concurrency must be >= 1, got -5"),
    ({"backlog": 0}, "backlog must be >= 1, got 0"),
])
def test_bad_limits(options: dict[str, Any], message: str) -> None:
    """Each limit has a floor (and the C core's ceiling), and the error names the
    limit, the value and what is allowed."""
    with pytest.raises(ConfigError, match=message) as info:
        make(**options)
    assert info.value.option == next(iter(options))


def test_limits_at_their_floor() -> None:
    """The smallest allowed value of each limit is accepted (limit_request_body=0 included)."""
    config = make(limit_request_line=16, limit_request_header_size=16, limit_request_headers=1,
                  limit_request_body=0, limit_concurrency=1, backlog=1)
    assert config.limit_request_body == 0 and config.limit_concurrency == 1


def test_uds_and_fd_are_exclusive() -> None:
    """A server listens one way: uds and fd together are refused."""
    with pytest.raises(ConfigError, match="use at most one of uds and fd"):
        make(uds="/tmp/carpinus-test.sock", fd=3)
    assert make(uds="/tmp/carpinus-test.sock").uds == "/tmp/carpinus-test.sock"
    assert make(fd=3).fd == 3


def test_bad_log_level() -> None:
    """An unknown log level name is refused when logging is configured."""
    with pytest.raises(ValueError, match="unknown log level 'loud'"):
        Config(apps.hello, log_level="loud")


# -- the event loop ------------------------------------------------------------


def test_loop_factory_asyncio() -> None:
    """loop="asyncio" always gives the stdlib loop."""
    assert make(loop="asyncio").loop_factory() is asyncio.new_event_loop


@pytest.mark.parametrize("loop", ["auto", "uvloop"])
def test_loop_factory_picks_uvloop_when_installed(loop: str) -> None:
    """loop="auto" and loop="uvloop" give uvloop's loop when uvloop is importable."""
    uvloop = pytest.importorskip("uvloop")
    factory = make(loop=loop).loop_factory()
    assert factory is uvloop.new_event_loop
    event_loop = factory()
    try:
        assert isinstance(event_loop, uvloop.Loop)
    finally:
        event_loop.close()


def test_loop_factory_auto_without_uvloop(monkeypatch: pytest.MonkeyPatch) -> None:
    """loop="auto" falls back to asyncio when uvloop cannot be imported."""
    monkeypatch.setitem(sys.modules, "uvloop", None)  # makes `import uvloop` fail
    assert make(loop="auto").loop_factory() is asyncio.new_event_loop


def test_loop_factory_uvloop_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    """loop="uvloop" without uvloop installed is an error that says how to install it."""
    monkeypatch.setitem(sys.modules, "uvloop", None)
    config = make(loop="uvloop")  # validation passes: uvloop is a valid choice
    with pytest.raises(ConfigError, match=r"pip install 'carpinus\[uvloop\]'"):
        config.loop_factory()


# -- loading the app -----------------------------------------------------------


def test_load_app_object() -> None:
    """An ASGI callable passes straight through."""
    config = make()
    config.load()
    assert config.loaded_app is apps.hello and config.loaded


def test_load_import_string() -> None:
    """'module:attribute' is imported."""
    config = Config("tests.support.apps:echo_body", configure_logging=False)
    config.load()
    assert config.loaded_app is apps.echo_body
    assert not config.is_demo
    # naming the demo app explicitly is not "no app given"
    assert not Config(DEMO_APP, configure_logging=False).is_demo


def test_load_is_done_once() -> None:
    """load() resolves the app once; calling it again changes nothing."""
    calls = []

    def factory() -> Any:
        calls.append(1)
        return apps.hello

    config = Config(factory, factory=True, configure_logging=False)
    config.load()
    config.load()
    assert config.loaded_app is apps.hello and calls == [1]


@pytest.fixture
def app_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A directory holding `cfg_test_app.py`; sys.path and sys.modules restored after."""
    (tmp_path / "cfg_test_app.py").write_text(
        "async def app(scope, receive, send):\n    pass\n\n"
        "def create_app():\n    return app\n\n"
        "def needs_argument(arg):\n    return app\n\n"
        "not_callable = 42\n")
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.delitem(sys.modules, "cfg_test_app", raising=False)
    yield tmp_path
    sys.modules.pop("cfg_test_app", None)


def test_app_dir(app_dir: Path) -> None:
    """app_dir is put first on sys.path, so the app module is found there."""
    config = Config("cfg_test_app:app", app_dir=str(app_dir), configure_logging=False)
    config.load()
    assert sys.path[0] == str(app_dir)
    assert config.loaded_app is sys.modules["cfg_test_app"].app


def test_factory(app_dir: Path) -> None:
    """factory=True calls the named callable and uses its return value."""
    config = Config("cfg_test_app:create_app", factory=True, app_dir=str(app_dir),
                    configure_logging=False)
    config.load()
    assert config.loaded_app is sys.modules["cfg_test_app"].app


@pytest.mark.parametrize(("app", "factory", "logged"), [
    ("cfg_test_app:missing", False, 'Attribute "missing" not found in module "cfg_test_app"'),
    ("no_such_module_for_cfg:app", False, 'Could not import module "no_such_module_for_cfg"'),
    ("cfg_test_app", False, "must be in format"),
    ("cfg_test_app:not_callable", False, "is not callable"),
    ("cfg_test_app:needs_argument", True, "Error loading ASGI app factory"),
])
def test_load_failures_exit_with_a_log_line(app_dir: Path, caplog: pytest.LogCaptureFixture,
                                            app: str, factory: bool, logged: str) -> None:
    """An app that cannot be loaded: an error log line saying why, then SystemExit(1)."""
    config = Config(app, factory=factory, app_dir=str(app_dir), configure_logging=False)
    with caplog.at_level(logging.ERROR, logger="carpinus"), pytest.raises(SystemExit) as info:
        config.load()
    assert info.value.code == 1
    assert logged in caplog.text
    assert not config.loaded and config.loaded_app is None


# -- env_file --------------------------------------------------------------------


def test_env_file_loads_before_the_app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Variables from the .env file are in os.environ when the app module is imported;
    variables already set win; FORWARDED_ALLOW_IPS may come from the file."""
    for name in ("CARPINUS_ENV_GREETING", "CARPINUS_ENV_KEEP", "FORWARDED_ALLOW_IPS"):
        # set, then delete: monkeypatch then restores the variable's original
        # state (usually absent) after the test, removing what the file set
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)
    monkeypatch.setenv("CARPINUS_ENV_KEEP", "from-process")
    env = tmp_path / "app.env"
    env.write_text("CARPINUS_ENV_GREETING='hello from .env'\nCARPINUS_ENV_KEEP=from-file\n"
                   "FORWARDED_ALLOW_IPS=10.0.0.0/8\n")
    module = tmp_path / "env_file_app.py"
    module.write_text("import os\nGREETING = os.environ['CARPINUS_ENV_GREETING']\n"
                      "async def app(scope, receive, send):\n    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    config = Config("env_file_app:app", env_file=str(env), configure_logging=False)
    config.load()
    assert sys.modules["env_file_app"].GREETING == "hello from .env"
    assert os.environ["CARPINUS_ENV_KEEP"] == "from-process"
    assert "10.1.2.3" in config.trusted_hosts and "127.0.0.1" not in config.trusted_hosts


def test_env_file_missing(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="is not a file"):
        make(env_file=str(tmp_path / "nope.env"))


def test_env_file_without_dotenv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """carpinus imports without python-dotenv; the option then says what to install."""
    env = tmp_path / "x.env"
    env.write_text("A=1\n")
    monkeypatch.setitem(sys.modules, "dotenv", None)  # import dotenv -> ImportError
    with pytest.raises(ConfigError, match="python-dotenv"):
        make(env_file=str(env))


def test_yaml_log_config_without_pyyaml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config_file = tmp_path / "logging.yaml"
    config_file.write_text("version: 1\n")
    monkeypatch.setitem(sys.modules, "yaml", None)
    with pytest.raises(ConfigError, match="PyYAML"):
        Config(apps.hello, log_config=str(config_file))
# -- process model -----------------------------------------------------------------


def test_process_model_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    """One worker, no supervisor, no reload, no request limit, no pid file."""
    monkeypatch.delenv("WEB_CONCURRENCY", raising=False)
    config = make()
    assert (config.workers, config.reload, config.uses_supervisor) == (1, False, False)
    assert (config.max_requests, config.max_requests_jitter) == (None, 0)
    assert config.pid_file is None
    assert config.timeout_worker_healthcheck == 30.0


@pytest.mark.parametrize("options", [
    {"workers": 2}, {"reload": True}, {"supervise": True}, {"max_worker_memory": 512},
    {"max_worker_lifetime": 3600.0},
])
def test_what_runs_a_supervisor(monkeypatch: pytest.MonkeyPatch, options: dict[str, Any]) -> None:
    """Each of these needs worker processes, even with one worker (docs/deployment.md)."""
    monkeypatch.delenv("WEB_CONCURRENCY", raising=False)
    assert Config("tests.support.apps:hello", configure_logging=False, **options).uses_supervisor


def test_workers_from_web_concurrency(monkeypatch: pytest.MonkeyPatch) -> None:
    """$WEB_CONCURRENCY gives the worker count when `workers` is not set (as in uvicorn)."""
    monkeypatch.setenv("WEB_CONCURRENCY", "4")
    config = Config("tests.support.apps:hello", configure_logging=False)
    assert config.workers == 4 and config.uses_supervisor
    assert Config("tests.support.apps:hello", workers=2, configure_logging=False).workers == 2
    monkeypatch.setenv("WEB_CONCURRENCY", "many")
    with pytest.raises(ConfigError, match="WEB_CONCURRENCY must be a number"):
        Config("tests.support.apps:hello", configure_logging=False)


@pytest.mark.parametrize(("options", "message"), [
    ({"workers": 0}, "workers must be >= 1"),
    ({"max_requests": 0}, "max_requests must be >= 1"),
    ({"max_requests_jitter": -1}, "max_requests_jitter must be >= 0"),
    ({"timeout_worker_healthcheck": 0}, "timeout_worker_healthcheck must be positive"),
])
def test_bad_process_options(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Config("tests.support.apps:hello", configure_logging=False, **options)


@pytest.mark.parametrize("options", [{"workers": 2}, {"reload": True}])
def test_supervisor_needs_an_import_string(options: dict[str, Any]) -> None:
    """Worker processes import the app themselves: an app object cannot be sent to them."""
    with pytest.raises(ConfigError, match="import string"):
        make(**options)


def test_arguments_rebuild_the_same_config() -> None:
    """Config.arguments is what a worker process rebuilds its Config from."""
    config = Config("tests.support.apps:hello", workers=3, max_requests=7, reload_dirs="src",
                    root_path="/api", optimizations={"scope_cache": False},
                    configure_logging=False)
    again = Config(**config.arguments)
    for name in ("app", "workers", "max_requests", "reload_dirs", "root_path",
                 "optimizations"):
        assert getattr(again, name) == getattr(config, name), name
    assert again.reload_dirs == ["src"]
# -- WebSocket options -----------------------------------------------------------


def test_websocket_defaults() -> None:
    """uvicorn's defaults: 16 MiB messages, 32 queued, pings every 20 s, deflate on."""
    config = make()
    assert (config.ws, config.ws_max_size, config.ws_max_queue) == ("auto", 16 * 1024 * 1024, 32)
    assert (config.ws_ping_interval, config.ws_ping_timeout) == (20.0, 20.0)
    assert config.ws_per_message_deflate is True


@pytest.mark.parametrize(("options", "message"), [
    ({"ws": "websocket"},
     "ws must be auto, none, websockets, websockets-sansio or wsproto, got 'websocket'"),
    ({"ws_max_size": 0}, "ws_max_size must be >= 1"),
    ({"ws_max_queue": 0}, "ws_max_queue must be >= 1"),
    ({"ws_ping_interval": 0}, "ws_ping_interval must be positive"),
    ({"ws_ping_timeout": -1}, "ws_ping_timeout must be positive"),
])
def test_bad_websocket_options(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        make(**options)


def test_websocket_pings_can_be_off() -> None:
    config = make(ws_ping_interval=None, ws_ping_timeout=None)
    assert config.ws_ping_interval is None and config.ws_ping_timeout is None


def test_websocket_implementation_choice() -> None:
    """auto (and wsproto, its former name) serve WebSockets with the C codec; none never."""
    assert make(ws="auto").websocket_implementation() == "c"
    assert make(ws="wsproto").websocket_implementation() == "c"
    assert make(ws="none").websocket_implementation() is None
