"""The access log: one line per answered request, HTTP or WebSocket.

The default line is uvicorn's (`host:port - "GET /path?q HTTP/1.1" 200`;
`host:port - "WebSocket /path" 101` for a WebSocket); --access-log-format
gives a gunicorn-style format instead, built from the atoms below and
checked once at start-up (Config).  Lines go to the carpinus.access logger.

Every record also carries the request's fields as attributes (ACCESS_FIELDS:
record.method, record.status_code, record.duration, ...), so that a JSON
formatter (python-json-logger, structlog's ProcessorFormatter) or a
logging.Formatter('%(method)s %(duration)s') uses them without parsing the
line.  None of it is computed when the access log is off: the C core is then
given no callable at all (make_access_log returns None).
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from carpinus.logging import ACCESS_LOGGER


def _request_target(scope: Mapping[str, Any]) -> str:
    """The request target as the client sent it: raw path and query."""
    raw = scope.get("raw_path")
    target = raw.decode("latin-1") if isinstance(raw, bytes) else scope.get("path", "")
    query = scope.get("query_string", b"")
    if query:
        target = f"{target}?{query.decode('latin-1')}"
    return target


def _method(scope: Mapping[str, Any]) -> str:
    # A websocket scope has no method: its request was the GET that asked
    # for the upgrade.
    return str(scope.get("method", "GET"))


def client_address(client: Sequence[Any] | None) -> str:
    """`host:port` of a scope's client, or "-" when it is not known."""
    return f"{client[0]}:{client[1]}" if client else "-"


def access_line(scope: Mapping[str, Any], status: int) -> str:
    """The default access line: `host:port - "GET /path?q HTTP/1.1" 200`."""
    return (
        f'{client_address(scope.get("client"))} - "{_method(scope)} {_request_target(scope)} '
        f'HTTP/{scope["http_version"]}" {status}'
    )


def websocket_access_line(scope: Mapping[str, Any], status: int) -> str:
    """The default line for a WebSocket: `host:port - "WebSocket /path" 101`
    (the path the app sees, which starts with root_path)."""
    return f'{client_address(scope.get("client"))} - "WebSocket {scope.get("path", "")}" {status}'


AtomFn = Callable[[Mapping[str, Any], int, int, float], str]

# The attributes every access-log record carries, with what they hold.
ACCESS_FIELDS: dict[str, str] = {
    "client_addr": "client address, 'host:port' (the one proxy headers gave), or None",
    "method": "request method ('GET' for a WebSocket, '-' for a request line not parsed)",
    "path": "URL path as sent (percent-encoded, without the query)",
    "query_string": "query string as sent, '' when none",
    "http_version": "'1.1' or '1.0'",
    "status_code": "response status (int)",
    "bytes_sent": "response body bytes sent (int; 0 for a WebSocket)",
    "duration": "seconds from the request head to the end of the response (float; 0.0 for a "
                "WebSocket, logged at its handshake)",
    "request_id": "the request's X-Request-ID header, or None",
}


def _header(scope: Mapping[str, Any], name: bytes) -> str:
    values = [v.decode("latin-1") for k, v in scope.get("headers", ()) if k == name]
    return ",".join(values) if values else "-"


def _client_host(scope: Mapping[str, Any]) -> str:
    client = scope.get("client")
    return str(client[0]) if client else "-"


def _request_line(scope: Mapping[str, Any]) -> str:
    return f"{_method(scope)} {_request_target(scope)} HTTP/{scope['http_version']}"


def _raw_path(scope: Mapping[str, Any]) -> str:
    raw = scope.get("raw_path")
    return raw.decode("latin-1") if isinstance(raw, bytes) else str(scope.get("path", ""))


def _request_id(scope: Mapping[str, Any]) -> str | None:
    """The first X-Request-ID header (set by a proxy: nginx's $request_id, Heroku's
    router, Envoy), or None."""
    for name, value in scope.get("headers", ()):
        if name == b"x-request-id":
            return str(value.decode("latin-1"))
    return None


def access_fields(scope: Mapping[str, Any], status: int, size: int,
                  seconds: float) -> dict[str, Any]:
    """The record attributes of one access-log line (ACCESS_FIELDS)."""
    client = scope.get("client")
    return {
        "client_addr": f"{client[0]}:{client[1]}" if client else None,
        "method": _method(scope),
        "path": _raw_path(scope),
        "query_string": scope.get("query_string", b"").decode("latin-1"),
        "http_version": scope.get("http_version"),
        "status_code": status,
        "bytes_sent": size,
        "duration": seconds,
        "request_id": _request_id(scope),
    }


# The atoms of gunicorn's access_log_format that an ASGI server can know.
# Each takes (scope, status, body bytes sent, seconds taken).
ACCESS_LOG_ATOMS: dict[str, tuple[str, AtomFn]] = {
    "h": ("client address (host only)", lambda sc, st, b, t: _client_host(sc)),
    "l": ("'-' (remote log name, never known)", lambda sc, st, b, t: "-"),
    "u": ("'-' (user name, not known to the server)", lambda sc, st, b, t: "-"),
    "t": ("time of the log line, [27/Nov/2026:10:01:02 +0000]",
          lambda sc, st, b, t: time.strftime("[%d/%b/%Y:%H:%M:%S %z]")),
    "r": ("request line, GET /path?query HTTP/1.1", lambda sc, st, b, t: _request_line(sc)),
    "m": ("request method", lambda sc, st, b, t: _method(sc)),
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
    # named atoms: the record attributes of the same names
    "duration": ("request time, decimal seconds (as %(L)s)", lambda sc, st, b, t: f"{t:.6f}"),
    "bytes_sent": ("response body bytes (as %(B)s)", lambda sc, st, b, t: str(b)),
    "request_id": ("X-Request-ID request header, '-' when none",
                   lambda sc, st, b, t: _request_id(sc) or "-"),
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


LogAccess = Callable[[Mapping[str, Any], int, int, float], None]


def make_access_log(enabled: bool, formatter: AccessLogFormat | None,
                    default: Callable[[Mapping[str, Any], int], str] = access_line
                    ) -> LogAccess | None:
    """What to call once per answered request -- (scope, status, body bytes
    sent, seconds taken) -- or None when nothing would be logged: with the
    access log off the C core does no work for it at all.  The line is
    `formatter`'s (--access-log-format) or else `default`'s; the record
    carries access_fields() as attributes."""
    logger = logging.getLogger(ACCESS_LOGGER)
    if not (enabled and logger.isEnabledFor(logging.INFO)):
        return None
    info = logger.info
    fields = access_fields
    if formatter is None:
        line = default

        def log_default(scope: Mapping[str, Any], status: int, size: int,
                        seconds: float) -> None:
            info(line(scope, status), extra=fields(scope, status, size, seconds))

        return log_default
    fmt = formatter.format

    def log_formatted(scope: Mapping[str, Any], status: int, size: int,
                      seconds: float) -> None:
        info(fmt(scope, status, size, seconds), extra=fields(scope, status, size, seconds))

    return log_formatted
