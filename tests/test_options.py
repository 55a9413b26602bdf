"""The option table (carpinus.options) and everything made from it: the command's
options, their environment variables and --help, Config's keywords and checks,
ServerState's keyword arguments in C and in the stub, and the docs.

These run in-process (click's make_context parses the command line and the
environment without starting anything); tests/test_main.py runs the real command.
"""

from __future__ import annotations

import ast
import asyncio
import inspect
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import pytest

import carpinus.protocols.http.core as http_c
from carpinus import _core
from carpinus.config import Config, ConfigError
from carpinus.main import main as cli_main
from carpinus.options import (
    CORE_OPTIONS,
    GROUPS,
    OPTIONS,
    OPTIONS_BY_NAME,
    Option,
    core_defaults,
    core_kwargs,
)
from tests.support import apps

REPO = Path(__file__).resolve().parent.parent

# ServerState's keyword arguments that are not options (hand-written in server.c)
RUNTIME_ARGUMENTS = {
    "app", "loop", "report_exception", "task_factory", "task_kwargs", "log_error",
    "lifespan_state", "access_log", "use_writelines", "default_headers", "proxy_fixup",
    "proxy_trust", "websocket", "base_context", "context_kwarg", "report_refusal",
    "tls_extensions", "metrics", "pathsend", "extensions", "task_name_kwarg",
}


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    """No CARPINUS_* or UVICORN_* (nor $WEB_CONCURRENCY, $FORWARDED_ALLOW_IPS) from the
    outside."""
    import os

    for name in list(os.environ):
        if name.startswith(("CARPINUS_", "UVICORN_")) or name in ("WEB_CONCURRENCY",
                                                                  "FORWARDED_ALLOW_IPS"):
            monkeypatch.delenv(name)
    yield monkeypatch


def parse(*args: str) -> dict[str, Any]:
    """The values the command would hand to Config, for these arguments and the
    current environment (nothing is started)."""
    with cli_main.make_context("carpinus", list(args)) as ctx:
        return dict(ctx.params)


def make(**options: Any) -> Config:
    options.setdefault("configure_logging", False)
    return Config(apps.hello, **options)


# -- the table itself --------------------------------------------------------------


def test_rows_are_well_formed() -> None:
    """One row per name and per spelling; each group and env var follows the rules."""
    assert len(OPTIONS_BY_NAME) == len(OPTIONS)
    spellings = [flag for option in OPTIONS for flag in option.flags]
    assert len(spellings) == len(set(spellings))
    for option in OPTIONS:
        assert option.envvar == "CARPINUS_" + option.name.upper()
        assert option.type in (int, float, str, bool)
        assert option.help.endswith((".", ")")), option.name
        assert option.problem(option.default) is None, option.name
        if option.cli_default is not None:
            assert option.problem(option.cli_default) is None, option.name
    assert list(GROUPS) == list(dict.fromkeys(option.group for option in OPTIONS))


def test_generated_code_and_docs_are_current() -> None:
    """Config's signature, the stub, the C table and the docs are what
    scripts/gen_options.py makes of the table today."""
    result = subprocess.run([sys.executable, str(REPO / "scripts/gen_options.py"), "--check"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


# -- Config --------------------------------------------------------------------------


def test_config_keywords_are_the_table() -> None:
    """Config takes exactly the table's options (plus app and configure_logging),
    each with the table's default."""
    parameters = inspect.signature(Config).parameters
    assert list(parameters) == ["app", *(o.name for o in OPTIONS), "configure_logging"]
    for option in OPTIONS:
        assert parameters[option.name].default == option.default, option.name
        assert parameters[option.name].kind is inspect.Parameter.KEYWORD_ONLY


def test_config_attributes_have_the_defaults(clean_env: pytest.MonkeyPatch) -> None:
    """Config() holds each default (the options Config turns into something else:
    what it turns the default into)."""
    config = make()
    turned = {"headers": [], "forwarded_allow_ips": "127.0.0.1", "workers": 1,
              "reload_dirs": [], "reload_includes": [], "reload_excludes": [],
              "optimizations": config.optimizations}
    for option in OPTIONS:
        expected = turned.get(option.name, option.default)
        assert getattr(config, option.name) == expected, option.name


def test_unknown_keyword_is_a_type_error() -> None:
    with pytest.raises(TypeError, match="unexpected keyword argument 'prot'"):
        Config(apps.hello, prot=80)  # type: ignore[call-arg]


def out_of_range(option: Option) -> list[Any]:
    """Values just outside what the option allows."""
    values: list[Any] = []
    if option.positive:
        values += [0, -1]
    if option.min is not None:
        values.append(option.type(option.min) - 1)
    if option.max is not None:
        values.append(option.type(option.max) + 1)
    return values


RANGED = [option for option in OPTIONS if out_of_range(option)]


@pytest.mark.parametrize("option", RANGED, ids=[o.name for o in RANGED])
def test_config_refuses_values_out_of_range(option: Option) -> None:
    """From Python: a ConfigError naming the keyword, the value and the range."""
    for value in out_of_range(option):
        with pytest.raises(ConfigError) as info:
            make(**{option.name: value})
        assert str(info.value) == f"{option.name} must be {option.allowed}, got {value!r}"
        assert info.value.option == option.name


@pytest.mark.parametrize("option", RANGED, ids=[o.name for o in RANGED])
def test_command_refuses_values_out_of_range(clean_env: pytest.MonkeyPatch,
                                             option: Option) -> None:
    """From the command line: a usage error (exit 2) naming the flag, the value and
    the range; the same from the environment, naming the variable too."""
    for value in out_of_range(option):
        if option.zero_is_none and value == 0:
            continue  # 0 means "off" there
        with pytest.raises(click.BadParameter) as info:
            parse(option.flag, str(value))
        message = info.value.format_message()
        assert f"'{option.flag}'" in message
        assert f"must be {option.allowed}, got {option.type(value)!r}" in message
        assert info.value.exit_code == 2
        clean_env.setenv(option.envvar, str(value))
        with pytest.raises(click.BadParameter) as info:
            parse()
        assert f"(from ${option.envvar})" in info.value.format_message()
        clean_env.delenv(option.envvar)


@pytest.mark.parametrize("name", ["timeout_keep_alive", "port", "limit_request_line",
                                  "ws_max_size"])
@pytest.mark.parametrize("value", ["80", 8.5, True, None])
def test_config_checks_types(name: str, value: Any) -> None:
    """A number option given something else is refused by name, not at first use."""
    option = OPTIONS_BY_NAME[name]
    if option.type is float and isinstance(value, float):
        return  # a float is fine there
    with pytest.raises(ConfigError, match=f"^{name} (must be|is required)"):
        make(**{name: value})


@pytest.mark.parametrize("host", ["127.0.0.1", "0.0.0.0", "10.1", "", "::", "::1",
                                  "fe80::1%lo", "localhost", "example.com", "example.com.",
                                  "my_host", "a-b.c-d.internal"])
def test_hosts_accepted(host: str) -> None:
    assert make(host=host).host == host


@pytest.mark.parametrize("host", ["999.1.1.1", "1.2.3.4.5", "256.0.0.1", ":::", "::g",
                                  "bad host", "-leading.example", "a..b", "x" * 64 + ".com"])
def test_hosts_refused(host: str) -> None:
    """Neither an address nor a host name: refused before binding, naming the host."""
    with pytest.raises(ConfigError, match=f"^host must be an IP address or a host name, "
                                          f"got {host!r}"):
        make(host=host)


# -- the command line and the environment ----------------------------------------------


def test_command_options_are_the_table() -> None:
    """One click option per row, with the row's spellings, default and env var (then
    uvicorn's, for the options uvicorn has: tests/test_uvicorn_compat.py)."""
    params = {p.name: p for p in cli_main.params if isinstance(p, click.Option)}
    assert set(params) == {o.name for o in OPTIONS} | {"version"}
    for option in OPTIONS:
        param = params[option.name]
        assert param.opts == list(option.flags), option.name
        assert param.envvar[0] == option.envvar
        assert param.multiple == option.multiple
        if option.type is bool and option.bool_style == "toggle":
            assert param.secondary_opts == ["--no-" + option.flag[2:]]


def test_command_defaults_are_the_table(clean_env: pytest.MonkeyPatch) -> None:
    """Without arguments or environment the command passes the table's defaults
    (the command's own where the row has one: --app-dir .)."""
    values = parse()
    for option in OPTIONS:
        expected = option.command_line_default
        if option.multiple:
            expected = {"headers": [], "optimizations": {}}.get(option.name, ())
        assert values[option.name] == expected, option.name


def env_sample(option: Option, tmp_path: Path) -> tuple[str, Any]:
    """A value for the option's environment variable, other than the default, and
    what the command should make of it."""
    special: dict[str, tuple[str, Any]] = {
        "host": ("0.0.0.0", "0.0.0.0"),
        "root_path": ("/from-env", "/from-env"),
        "headers": ("X-A:1 X-B:two", [("X-A", "1"), ("X-B", "two")]),
        "optimizations": ("scope_cache=off lazy_headers=on",
                          {"scope_cache": False, "lazy_headers": True}),
        "log_level": ("debug", "debug"),
        "ws_ping_interval": ("0", None),
        "reload_dirs": ("src lib", ("src", "lib")),
        "metrics_bind": ("127.0.0.1:9100", "127.0.0.1:9100"),
    }
    if option.name in special:
        return special[option.name]
    if option.file:
        path = tmp_path / f"{option.name}.txt"
        path.write_text("x")
        return str(path), str(path)
    if option.type is bool:
        return ("false", False) if option.default else ("true", True)
    if option.choices:
        choice = [c for c in option.choices if c != option.default][-1]
        return choice, choice
    if option.type is int:
        value = int(option.min) if option.min is not None else 0
        if value == option.default:
            value += 1
        return str(value), value
    if option.type is float:
        return "7.5", 7.5
    if option.multiple:
        return "one two", ("one", "two")
    return "from-env", "from-env"


@pytest.mark.parametrize("option", OPTIONS, ids=[o.name for o in OPTIONS])
def test_every_option_comes_from_its_environment_variable(
        clean_env: pytest.MonkeyPatch, tmp_path: Path, option: Option) -> None:
    """$CARPINUS_<NAME> sets the option (as uvicorn's UVICORN_*); the command line
    wins over it."""
    text, expected = env_sample(option, tmp_path)
    clean_env.setenv(option.envvar, text)
    assert parse()[option.name] == expected
    if option.type is not bool and not option.multiple and not option.file:
        default = option.command_line_default
        if default is not None:
            assert parse(option.flag, str(default))[option.name] == default


def test_web_concurrency_still_counts(clean_env: pytest.MonkeyPatch) -> None:
    """--workers, then $CARPINUS_WORKERS, then $WEB_CONCURRENCY, then 1."""
    clean_env.setenv("WEB_CONCURRENCY", "3")
    assert parse()["workers"] is None  # Config reads $WEB_CONCURRENCY
    assert Config("tests.support.apps:hello", configure_logging=False).workers == 3
    clean_env.setenv("CARPINUS_WORKERS", "2")
    assert parse()["workers"] == 2
    assert parse("--workers", "4")["workers"] == 4


def test_help_is_grouped_and_shows_each_env_var() -> None:
    """--help lists the options under the table's group headings, in the table's
    order, each with its environment variable (and default and range when it has
    them)."""
    ctx = cli_main.make_context("carpinus", [], resilient_parsing=True)
    text = cli_main.get_help(ctx)
    positions = [text.index(f"\n{group}:\n") for group in GROUPS]
    assert positions == sorted(positions)
    flat = " ".join(text.split())
    for option in OPTIONS:
        assert option.flag in text
        assert f"env var: {option.envvar}" in flat, option.name
        if option.allowed:
            assert option.allowed in flat, option.name
    assert "default: 8000; between 0 and 65535; env var: CARPINUS_PORT" in flat


# -- the C core -------------------------------------------------------------------------


def test_core_takes_exactly_the_core_options() -> None:
    """ServerState requires every core option of the table (the core has no
    defaults) and no other keyword."""
    loop = asyncio.new_event_loop()
    args = (apps.hello, loop, print, loop.create_task, None, print)
    try:
        _core.ServerState(*args, **core_defaults())
        for option in CORE_OPTIONS:
            kwargs = core_defaults()
            del kwargs[option.name]
            with pytest.raises(TypeError, match=f"missing required keyword argument "
                                                f"'{option.name}'"):
                _core.ServerState(*args, **kwargs)
        # CPython's wording changed in 3.13
        with pytest.raises(TypeError, match="'bogus' is an invalid keyword argument"
                                            "|unexpected keyword argument 'bogus'"):
            _core.ServerState(*args, bogus=1, **core_defaults())
    finally:
        loop.close()


@pytest.mark.parametrize("option", [o for o in CORE_OPTIONS if out_of_range(o)],
                         ids=[o.name for o in CORE_OPTIONS if out_of_range(o)])
def test_core_refuses_what_the_table_refuses(option: Option) -> None:
    """The core keeps itself safe from any caller with the table's own ranges (the
    C rows are generated from them) and the same words."""
    loop = asyncio.new_event_loop()
    try:
        for value in out_of_range(option):
            with pytest.raises(ValueError) as info:
                _core.ServerState(apps.hello, loop, print, loop.create_task, None, print,
                                  **core_defaults(**{option.name: value}))
            assert str(info.value) == f"{option.name} must be {option.allowed}, got {value!r}"
    finally:
        loop.close()


def test_every_core_option_reaches_the_core(monkeypatch: pytest.MonkeyPatch) -> None:
    """make_server_state hands the core each core option's Config value (converted
    where the row says so), whatever the value."""
    seen: dict[str, Any] = {}

    def spy(*args: Any, **kwargs: Any) -> Any:
        seen.update(kwargs)
        return real(*args, **kwargs)

    real = _core.ServerState
    monkeypatch.setattr(http_c._core, "ServerState", spy)
    config = make(root_path="/r", server_header=False, date_header=False,
                  timeout_keep_alive=1.5, timeout_request_header=2.5,
                  timeout_request_body=3.5, limit_request_line=100,
                  limit_request_headers=7, limit_request_header_size=200,
                  limit_request_head=4096, limit_request_body=10, limit_concurrency=3,
                  optimizations={"lazy_headers": True}, zero_copy_threshold=99,
                  lazy_headers_min=2, scope_cache_size=5, http="1",
                  h2_max_concurrent_streams=7, h2_initial_window_size=1000,
                  h2_connection_window_size=100_000, h2_max_header_list_size=1000)
    defaults = core_defaults()
    loop = asyncio.new_event_loop()
    try:
        state = http_c.make_server_state(config, loop, apps.hello, {})
        assert state.stats()["optimizations"] == _core.OPT_ZERO_COPY_BODY | \
            _core.OPT_DIRECT_RESPONSE | _core.OPT_SCOPE_CACHE | _core.OPT_HEADER_NAMES | \
            _core.OPT_LAZY_HEADERS | _core.OPT_STATUS_CACHE | _core.OPT_CYCLE_REUSE | \
            _core.OPT_TASK_NAMES
    finally:
        loop.close()
    assert seen.keys() >= {o.name for o in CORE_OPTIONS}
    assert {name: seen[name] for name in defaults} == core_kwargs(config)
    for option in CORE_OPTIONS:
        assert seen[option.name] != defaults[option.name], option.name  # all were set


def test_stub_declares_the_core_options() -> None:
    """_core.pyi's ServerState takes the run-time arguments and, keyword-only and
    without defaults, exactly the table's core options."""
    tree = ast.parse((REPO / "src/carpinus/_core.pyi").read_text())
    (server_state,) = [n for n in tree.body if isinstance(n, ast.ClassDef)
                       and n.name == "ServerState"]
    (init,) = [n for n in server_state.body if isinstance(n, ast.FunctionDef)
               and n.name == "__init__"]
    positional = [a.arg for a in init.args.args[1:]]
    keywords = [a.arg for a in init.args.kwonlyargs]
    assert set(positional) | set(keywords) == RUNTIME_ARGUMENTS | {o.name for o in CORE_OPTIONS}
    required = [a.arg for a, d in zip(init.args.kwonlyargs, init.args.kw_defaults, strict=True)
                if d is None]
    assert required == [o.name for o in CORE_OPTIONS]


# -- the docs ---------------------------------------------------------------------------


def test_docs_list_every_option() -> None:
    """docs/configuration.md names every flag, keyword and environment variable."""
    text = (REPO / "docs/configuration.md").read_text()
    for option in OPTIONS:
        for word in (*option.flags, f"`{option.name}`", option.envvar):
            assert word in text, word
