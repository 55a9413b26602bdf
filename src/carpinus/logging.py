"""Log set-up: uvicorn-style lines ("INFO:     message") on stderr, or the
user's own logging configuration (--log-config); and the access log line."""

from __future__ import annotations

import json
import logging
import logging.config
import os
import re
import sys
import time
from collections.abc import Callable, Mapping
from typing import Any

TRACE = 5
logging.addLevelName(TRACE, "TRACE")

# The names --log-level takes.
LOG_LEVELS: dict[str, int] = {
    "critical": logging.CRITICAL,
    "error": logging.ERROR,
    "warning": logging.WARNING,
    "info": logging.INFO,
    "debug": logging.DEBUG,
    "trace": TRACE,
}

ERROR_LOGGER = "carpinus.error"
ACCESS_LOGGER = "carpinus.access"


class LevelPrefixFormatter(logging.Formatter):
    """`INFO:     message`, the prefix padded so messages line up."""

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 (stdlib name)
        prefix = f"{record.levelname}:".ljust(10)
        return f"{prefix}{super().formatMessage(record)}"


class LogConfigError(ValueError):
    """A --log-config file that cannot be loaded or applied."""


def _resolve_level(level: str | int | None) -> int | None:
    if isinstance(level, str):
        try:
            return LOG_LEVELS[level.lower()]
        except KeyError:
            raise ValueError(f"unknown log level {level!r}") from None
    return level


def apply_log_config(log_config: str | os.PathLike[str] | Mapping[str, Any]) -> None:
    """Apply a logging configuration as uvicorn does: a dict (dictConfig), a
    .json / .yaml / .yml file (dictConfig) or any other file (fileConfig, the
    .ini format), keeping loggers that already exist."""
    try:
        if isinstance(log_config, Mapping):
            logging.config.dictConfig(dict(log_config))
            return
        path = os.fspath(log_config)
        if path.endswith(".json"):
            with open(path, encoding="utf-8") as file:
                logging.config.dictConfig(json.load(file))
        elif path.endswith((".yaml", ".yml")):
            try:
                import yaml
            except ImportError:
                raise LogConfigError(
                    f"log_config {path!r} is YAML, which needs PyYAML "
                    "(pip install 'carpinus[standard]' or 'carpinus[yaml]')"
                ) from None
            with open(path, encoding="utf-8") as file:
                logging.config.dictConfig(yaml.safe_load(file))
        else:
            if not os.path.exists(path):  # fileConfig's own error names a missing section
                raise FileNotFoundError(f"No such file: {path!r}")
            logging.config.fileConfig(path, disable_existing_loggers=False)
    except LogConfigError:
        raise
    except Exception as exc:  # json, yaml, configparser and dictConfig all have their own
        raise LogConfigError(f"cannot apply log_config {log_config!r}: {exc}") from exc


def configure_logging(
    level: str | int | None,
    log_config: str | os.PathLike[str] | Mapping[str, Any] | None = None,
) -> None:
    """Without log_config: attach a stderr handler to carpinus' loggers
    (idempotent), level `level` (default info).  With log_config: apply it
    instead of that handler; `level`, when given, still sets the level of
    carpinus' loggers."""
    resolved = _resolve_level(level)
    root = logging.getLogger("carpinus")
    ours = [h for h in root.handlers if getattr(h, "_carpinus", False)]
    if log_config is not None:
        apply_log_config(log_config)
        for handler in ours:  # the user's configuration decides where lines go
            root.removeHandler(handler)
        if ours and not root.handlers:
            root.propagate = True  # we had turned it off for our own handler
        if resolved is not None:
            root.setLevel(resolved)
        return
    if not ours:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(LevelPrefixFormatter("%(message)s"))
        handler._carpinus = True  # type: ignore[attr-defined]
        root.addHandler(handler)
        root.propagate = False
    root.setLevel(resolved if resolved is not None else logging.INFO)


# -- access log ----------------------------------------------------------------


def _request_target(scope: Mapping[str, Any]) -> str:
    """The request target as the client sent it: raw path and query."""
    raw = scope.get("raw_path")
    target = raw.decode("latin-1") if isinstance(raw, bytes) else scope.get("path", "")
    query = scope.get("query_string", b"")
    if query:
        target = f"{target}?{query.decode('latin-1')}"
    return target


def access_line(scope: Mapping[str, Any], status: int) -> str:
    """The default access line: `host:port - "GET /path?q HTTP/1.1" 200`."""
    client = scope.get("client")
    who = f"{client[0]}:{client[1]}" if client else "-"
    return (
        f'{who} - "{scope["method"]} {_request_target(scope)} '
        f'HTTP/{scope["http_version"]}" {status}'
    )


AtomFn = Callable[[Mapping[str, Any], int, int, float], str]


def _header(scope: Mapping[str, Any], name: bytes) -> str:
    values = [v.decode("latin-1") for k, v in scope.get("headers", ()) if k == name]
    return ",".join(values) if values else "-"


def _client_host(scope: Mapping[str, Any]) -> str:
    client = scope.get("client")
    return str(client[0]) if client else "-"


def _request_line(scope: Mapping[str, Any]) -> str:
    return f"{scope['method']} {_request_target(scope)} HTTP/{scope['http_version']}"


def _raw_path(scope: Mapping[str, Any]) -> str:
    raw = scope.get("raw_path")
    return raw.decode("latin-1") if isinstance(raw, bytes) else str(scope.get("path", ""))


# The atoms of gunicorn's access_log_format that an ASGI server can know.
# Each takes (scope, status, body bytes sent, seconds taken).
ACCESS_LOG_ATOMS: dict[str, tuple[str, AtomFn]] = {
    "h": ("client address (host only)", lambda sc, st, b, t: _client_host(sc)),
    "l": ("'-' (remote log name, never known)", lambda sc, st, b, t: "-"),
    "u": ("'-' (user name, not known to the server)", lambda sc, st, b, t: "-"),
    "t": ("time of the log line, [27/Nov/2026:10:01:02 +0000]",
          lambda sc, st, b, t: time.strftime("[%d/%b/%Y:%H:%M:%S %z]")),
    "r": ("request line, GET /path?query HTTP/1.1", lambda sc, st, b, t: _request_line(sc)),
    "m": ("request method", lambda sc, st, b, t: str(sc["method"])),
    "U": ("URL path as sent, without the query", lambda sc, st, b, t: _raw_path(sc)),
    "q": ("query string ('' when none)",
          lambda sc, st, b, t: sc.get("query_string", b"").decode("latin-1")),
    "H": ("protocol, HTTP/1.1", lambda sc, st, b, t: f"HTTP/{sc['http_version']}"),
    "s": ("response status", lambda sc, st, b, t: str(st)),
    "B": ("response body bytes", lambda sc, st, b, t: str(b)),
    "b": ("response body bytes, '-' for none", lambda sc, st, b, t: str(b) if b else "-"),
    "f": ("Referer header", lambda sc, st, b, t: _header(sc, b"referer")),
    "a": ("User-Agent header", lambda sc, st, b, t: _header(sc, b"user-agent")),
    "T": ("request time, whole seconds", lambda sc, st, b, t: str(int(t))),
    "M": ("request time, whole milliseconds", lambda sc, st, b, t: str(int(t * 1e3))),
    "D": ("request time, whole microseconds", lambda sc, st, b, t: str(int(t * 1e6))),
    "L": ("request time, decimal seconds", lambda sc, st, b, t: f"{t:.6f}"),
    "p": ("process id, <1234>", lambda sc, st, b, t: f"<{os.getpid()}>"),
    "S": ("URL scheme (http or https)", lambda sc, st, b, t: str(sc.get("scheme", "http"))),
}

_ATOM = re.compile(r"%\(([^)]*)\)")
_HEADER_ATOM = re.compile(r"\{([!#$%&'*+.^_`|~0-9A-Za-z-]+)\}([ie])")


class AccessLogFormat:
    """A gunicorn-style access log format such as '%(h)s "%(r)s" %(s)s %(b)s',
    checked once; each line computes only the atoms the format uses."""

    def __init__(self, fmt: str) -> None:
        self.fmt = fmt
        self.atoms: list[tuple[str, AtomFn]] = []
        for name in dict.fromkeys(_ATOM.findall(fmt)):
            self.atoms.append((name, self._atom(name)))
        try:  # catches a bad conversion ("%(h)q") or a lone "%"
            self.fmt % {name: "x" for name, _ in self.atoms}
        except (TypeError, ValueError, KeyError) as exc:
            raise ValueError(f"access_log_format {fmt!r} is not a valid format: {exc}") from None

    @staticmethod
    def _atom(name: str) -> AtomFn:
        if name in ACCESS_LOG_ATOMS:
            return ACCESS_LOG_ATOMS[name][1]
        match = _HEADER_ATOM.fullmatch(name)
        if match is None:
            known = ", ".join(ACCESS_LOG_ATOMS)
            raise ValueError(
                f"access_log_format: unknown atom %({name})s "
                f"(known: {known}, {{header}}i, {{variable}}e)"
            )
        key, kind = match.groups()
        if kind == "i":
            header = key.lower().encode("latin-1")
            return lambda sc, st, b, t: _header(sc, header)
        return lambda sc, st, b, t: os.environ.get(key, "-")

    def format(self, scope: Mapping[str, Any], status: int, size: int, seconds: float) -> str:
        return self.fmt % {name: fn(scope, status, size, seconds) for name, fn in self.atoms}
