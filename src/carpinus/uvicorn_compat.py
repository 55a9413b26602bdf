"""uvicorn's command-line options that name things carpinus does not have, and what
carpinus does instead.

`carpinus` accepts every option of `uvicorn` (0.34 to 0.55), so that
`uvicorn main:app ...` becomes `carpinus main:app ...` by changing the first
word (docs/migrating-from-uvicorn.md).  Most options are carpinus's own, with
uvicorn's names.  The rest choose among uvicorn's implementations (`--http
h11`, `--ws websockets`, `--loop zuvloop`), or tune one of them (`--h11-...`),
or change something carpinus does one fixed way (`--use-colors`,
`--reset-contextvars`).  Those are accepted, and `compatibility_notes()` says
once, at start-up, what carpinus does instead; the option table
(carpinus.options) takes its allowed values from the tuples below.

`--interface asgi2` is the exception that does something: the app is wrapped
so that carpinus can call it (`asgi2_app`), as uvicorn does.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from carpinus.config import Config

# uvicorn's --http values besides "auto": its HTTP/1.1 implementations.
UVICORN_HTTP = ("h11", "httptools", "zttp")
# uvicorn's --ws values besides "auto" and "none": its WebSocket implementations.
UVICORN_WS = ("websockets", "websockets-sansio", "wsproto")
# uvicorn's --loop values besides auto, asyncio and uvloop
UVICORN_LOOPS = ("none", "zuvloop")
INTERFACES = ("auto", "asgi3", "asgi2", "wsgi")


def http_version_from_uvicorn(http: str) -> str:
    """carpinus's --http value ("auto": HTTP/1.1 and HTTP/2, "1": HTTP/1.1 only) for
    one of uvicorn's; carpinus's own values are returned as they are.

    uvicorn's --http names an implementation, carpinus's the HTTP versions to
    serve.  h11 and httptools speak HTTP/1.1 only, so they mean "1".  zttp is
    uvicorn's HTTP/2-capable one (HTTP/2 with --http2): "auto", which serves
    HTTP/1.1 as well, so that --http2 need not be looked at.  Never "2": for
    carpinus that means HTTP/2 *only*.

    carpinus.options' --http row allows both sets of values and converts
    through this function.
    """
    return {"h11": "1", "httptools": "1", "zttp": "auto"}.get(http, http)


def compatibility_notes(config: Config) -> list[str]:
    """One line per uvicorn-only option that `config` sets: what carpinus does instead.
    Logged once by the process the command started (carpinus.main), not by workers."""
    notes = []
    if config.http in UVICORN_HTTP:
        versions = {"1": "HTTP/1.1 only"}.get(http_version_from_uvicorn(config.http),
                                              "the HTTP versions of --http auto")
        notes.append(f"--http {config.http}: not a carpinus implementation; carpinus parses "
                     f"HTTP with its own C parser and serves {versions}.")
    if config.http2:
        notes.append("--http2: carpinus chooses HTTP versions with --http; auto, the default, "
                     "includes HTTP/2 where this build supports it.")
    if config.ws in UVICORN_WS:
        notes.append(f"--ws {config.ws}: WebSockets are served by carpinus's own C frame "
                     "codec.")
    if config.loop in UVICORN_LOOPS:
        instead = "asyncio's default loop" if config.loop == "none" else (
            "uvloop when it is installed, else asyncio")
        notes.append(f"--loop {config.loop}: not a carpinus event loop; using {instead}.")
    if config.interface == "asgi2":
        notes.append("--interface asgi2: the app is called the ASGI 2 way, app(scope) and "
                     "then await instance(receive, send), through an adapter as in uvicorn.")
    elif config.interface == "wsgi":
        notes.append("--interface wsgi: carpinus serves ASGI; the WSGI app is wrapped with "
                     "a2wsgi.WSGIMiddleware (requests run in its thread pool).")
    if config.use_colors:
        notes.append("--use-colors: carpinus's log lines carry no colour codes; they are "
                     "written plain.")
    if config.reset_contextvars:
        notes.append("--reset-contextvars: already so in carpinus: every request runs in "
                     "its own copy of the context the server started with, and context "
                     "variables set during lifespan startup are not in it.")
    if config.h11_max_incomplete_event_size is not None:
        notes.append(f"--h11-max-incomplete-event-size {config.h11_max_incomplete_event_size}:"
                     f" carpinus has no h11; a request head is limited by "
                     f"--limit-request-head ({config.limit_request_head} bytes) instead.")
    return notes


# The options uvicorn has too (carpinus's names).  uvicorn reads each from
# UVICORN_<its parameter name> (click's auto_envvar_prefix), and so does carpinus,
# after CARPINUS_<name>.  The names differ for two of them.
UVICORN_OPTIONS = frozenset("""
    host port uds fd reload reload_dirs reload_includes reload_excludes reload_delay workers
    loop http http2 ws ws_max_size ws_max_queue ws_ping_interval ws_ping_timeout
    ws_per_message_deflate lifespan interface env_file log_config log_level access_log
    use_colors proxy_headers server_header date_header forwarded_allow_ips root_path
    limit_concurrency backlog max_requests max_requests_jitter timeout_keep_alive
    timeout_graceful_shutdown timeout_worker_healthcheck ssl_keyfile ssl_certfile
    ssl_keyfile_password ssl_version ssl_cert_reqs ssl_ca_certs ssl_ciphers headers app_dir
    h11_max_incomplete_event_size reset_contextvars factory
""".split())
_UVICORN_NAMES = {"max_requests": "limit_max_requests",
                  "max_requests_jitter": "limit_max_requests_jitter"}
UVICORN_APP_ENVVAR = "UVICORN_APP"


def uvicorn_envvar(option: str) -> str | None:
    """The environment variable uvicorn reads carpinus option `option` from, if it has it."""
    if option not in UVICORN_OPTIONS:
        return None
    return "UVICORN_" + _UVICORN_NAMES.get(option, option).upper()


# --log-config files written for uvicorn name its loggers and formatters.
UVICORN_LOGGERS = {"uvicorn": "carpinus", "uvicorn.error": "carpinus.error",
                   "uvicorn.access": "carpinus.access"}
UVICORN_FORMATTERS = ("uvicorn.logging.DefaultFormatter", "uvicorn.logging.AccessFormatter",
                      "uvicorn.logging.ColourizedFormatter")
FORMATTER = "carpinus.logging.UvicornFormatter"


def log_config_from_uvicorn(config: dict[str, Any]) -> dict[str, Any]:
    """A logging dictConfig written for uvicorn, made to configure carpinus the same way.

    Its uvicorn loggers also configure carpinus's of the same role (unless the
    config names those itself), and uvicorn's formatters become
    carpinus.logging.UvicornFormatter, which knows the same fields
    (%(levelprefix)s, %(client_addr)s, %(request_line)s, %(status_code)s).
    uvicorn's own formatters cannot be used even when uvicorn is installed:
    its AccessFormatter unpacks record.args the way uvicorn logs them.
    A config that names no uvicorn logger or formatter is returned as it is.
    """
    loggers = config.get("loggers")
    formatters = config.get("formatters")
    if not isinstance(loggers, dict) or not isinstance(formatters, dict):
        return config
    config = {**config, "loggers": dict(loggers), "formatters": dict(formatters)}
    for theirs, ours in UVICORN_LOGGERS.items():
        if theirs in loggers and ours not in loggers:
            config["loggers"][ours] = loggers[theirs]
    for name, formatter in formatters.items():
        if not isinstance(formatter, dict):
            continue
        for key in ("()", "class"):
            if formatter.get(key) in UVICORN_FORMATTERS:
                formatter = {k: v for k, v in formatter.items() if k not in ("()", "class")}
                formatter["()"] = FORMATTER
        config["formatters"][name] = formatter
    return config


def wsgi_available() -> bool:
    return importlib.util.find_spec("a2wsgi") is not None


def adapt_app(app: Any, interface: str) -> Any:
    """The ASGI 3 callable that serves `app` given as --interface says."""
    if interface == "asgi2":
        return asgi2_app(app)
    if interface == "wsgi":
        from a2wsgi import WSGIMiddleware

        return WSGIMiddleware(app)
    return app


def asgi2_app(app: Callable[[dict[str, Any]], Any]) -> Callable[..., Any]:
    """An ASGI 2 app (`app(scope)` returns `async (receive, send)`) as an ASGI 3 one."""

    async def asgi3(scope: dict[str, Any], receive: Any, send: Any) -> None:
        instance = app(scope)
        await instance(receive, send)

    return asgi3
