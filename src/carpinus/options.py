"""The option table: every option of the server, declared once.

Each row says what an option is called, its type and default, its help text,
which values it allows, the environment variable it can come from, and whether
the C core reads it (`core=`, the ServerState field).  Everything else is
derived from this table:

- the `carpinus` command's options, their `--help` (grouped as here) and
  their environment variables (carpinus.main);
- `Config`'s keyword arguments, attribute types and per-option validation
  (carpinus.config; the signature and annotations are generated);
- the keyword arguments handed to the C core's ServerState
  (protocols/http/core.py passes `core_kwargs(config)`), the C table that
  parses them (`_core/server_options.h`, generated) and their stubs
  (`_core.pyi`, generated);
- the option list in `docs/configuration.md` (generated).

`python scripts/gen_options.py` rewrites the generated parts; a test fails
while one is stale.  Adding an option is one row here, plus one ServerState
field in `_core/core.h` if the core reads it, plus the code where it takes
effect.

Defaults live here only.  The C core has none of its own: Python passes every
core option (a missing one is a TypeError), so the core cannot drift from
what `--help` and the docs say.  Code that makes a ServerState directly (the
fuzz harness, tests) starts from `core_defaults()`.
"""

from __future__ import annotations

import importlib.util
import ipaddress
import re
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from carpinus.access_log import ACCESS_LOG_ATOMS
from carpinus.logging import LOG_LEVELS
from carpinus.optimizations import OPTIMIZATIONS, parse_switch
from carpinus.optimizations import bits as optimization_bits
from carpinus.optimizations import resolve as resolve_optimizations
from carpinus.tls import SSL_CERT_REQS, SSL_CIPHERS, SSL_PROTOCOL_VERSION
from carpinus.uvicorn_compat import (
    INTERFACES,
    UVICORN_HTTP,
    UVICORN_LOOPS,
    UVICORN_WS,
    http_version_from_uvicorn,
)

ENV_PREFIX = "CARPINUS_"

# The largest request head and line the C core's parser is built for.
MAX_REQUEST_HEAD = 1 << 26  # 64 MiB
MAX_REQUEST_LINE = 1 << 24  # 16 MiB
# --timeout-graceful-shutdown's default, in seconds (gunicorn: 30, hypercorn: 3,
# uvicorn: unbounded)
GRACEFUL_SHUTDOWN_TIMEOUT = 5.0


@dataclass(frozen=True)
class Option:
    """One row of the table.  Only name, type, default, help and group are
    required; the rest say what differs from the plain case (a value option
    `--name-with-dashes VALUE` read from $CARPINUS_NAME)."""

    name: str  # the Config keyword (and attribute)
    type: type  # int, float, str or bool: what the command line converts to
    default: Any
    help: str
    group: str  # --help and docs section
    # command-line spellings; the first names the option in messages
    flags: tuple[str, ...] = ()
    # bool options: "toggle" (--x/--no-x), "flag" (--x only) or "value" (--x BOOL)
    bool_style: str = "toggle"
    multiple: bool = False  # repeatable; Config takes a sequence
    metavar: str | None = None
    file: bool = False  # the command line checks that the file exists
    cli_default: Any = None  # when the command's default differs from Config's
    # -- allowed values --
    choices: tuple[str, ...] = ()
    cli_choices: tuple[str, ...] = ()  # checked by the command line only
    min: float | None = None
    max: float | None = None
    positive: bool = False  # > 0
    nullable: bool = False  # None is allowed (always, when the default is None)
    check: Callable[[Any], str | None] | None = None  # any other rule: the problem, or None
    zero_is_none: bool = False  # on the command line, 0 means None ("off")
    from_cli: Callable[[Any], Any] | None = None  # command-line value -> Config value
    # -- description --
    default_text: str | None = None  # --help/docs, when the default needs words
    annotation: str | None = None  # Config's parameter type, when not derived
    attribute: str | None = None  # Config's attribute type, when Config normalizes it
    envvar: str = field(default="")
    # -- the C core --
    core: str | None = None  # the ServerState field the core reads it into
    to_core: Callable[[Any], Any] | None = None  # Config value -> core value
    core_kind: str = ""  # how the core reads it; derived from type and nullable

    def __post_init__(self) -> None:
        if not self.flags:
            object.__setattr__(self, "flags", ("--" + self.name.replace("_", "-"),))
        if not self.envvar:
            object.__setattr__(self, "envvar", ENV_PREFIX + self.name.upper())
        if self.default is None:
            object.__setattr__(self, "nullable", True)
        if self.core and not self.core_kind:
            kind = {bool: "bool", str: "str", float: "seconds", int: "size"}[self.type]
            if self.nullable:
                kind = {"size": "limit"}.get(kind, kind + "?")  # (no other yet)
            object.__setattr__(self, "core_kind", kind)

    # -- derived facts ----------------------------------------------------

    @property
    def flag(self) -> str:
        """How messages and docs name it on the command line."""
        return self.flags[0]

    @property
    def cli_flags(self) -> str:
        """The click declaration: `--x/--no-x` for a toggle."""
        if self.type is bool and self.bool_style == "toggle":
            return f"{self.flag}/--no-{self.flag[2:]}"
        return self.flag

    @property
    def command_line_default(self) -> Any:
        return self.default if self.cli_default is None else self.cli_default

    @property
    def default_words(self) -> str | None:
        """The command's default as --help and the docs show it (None: nothing
        worth showing)."""
        if self.default_text is not None:
            return self.default_text
        value = self.command_line_default
        if self.type is bool:
            return "on" if value else "off"
        if value is None or value == "":
            return None
        return str(value)

    @property
    def allowed(self) -> str | None:
        """The allowed range in words ("between 0 and 65535", "positive")."""
        low, high = _number(self.min), _number(self.max)
        if self.positive:
            return "positive" if self.max is None else f"positive and at most {high}"
        if self.min is not None and self.max is not None:
            return f"between {low} and {high}"
        if self.min is not None:
            return f">= {low}"
        if self.max is not None:
            return f"<= {high}"
        return None

    def problem(self, value: Any) -> str | None:
        """What is wrong with `value` for this option ("must be ..., got ..."),
        or None when it is allowed."""
        if value is None:
            return None if self.nullable else "is required"
        if self.multiple:
            return None
        if self.type is int and (not isinstance(value, int) or isinstance(value, bool)):
            return f"must be an integer, got {value!r}"
        if self.type is float and (
            not isinstance(value, (int, float)) or isinstance(value, bool)
        ):
            return f"must be a number, got {value!r}"
        if self.choices and value not in self.choices:
            return f"must be {_either(self.choices)}, got {value!r}"
        if self.type in (int, float) and not self._in_range(value):
            return f"must be {self.allowed}, got {value!r}"
        if self.check is not None:
            return self.check(value)
        return None

    def _in_range(self, value: float) -> bool:
        if self.positive and not value > 0:  # (NaN too)
            return False
        if self.min is not None and not value >= self.min:
            return False
        return self.max is None or value <= self.max


def _number(value: float | None) -> str:
    return "" if value is None else str(int(value)) if value == int(value) else str(value)


def _either(words: tuple[str, ...]) -> str:
    return ", ".join(words[:-1]) + " or " + words[-1] if len(words) > 1 else words[0]


# -- rules and conversions the rows refer to ---------------------------------------


_HOST_LABEL = re.compile(r"(?!-)[A-Za-z0-9_-]{1,63}(?<!-)")


def split_host_port(text: str) -> tuple[str, int]:
    """"HOST:PORT" or "[IPv6]:PORT" -> (host, port).  ValueError says what is wrong."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"must be HOST:PORT with a port from 0 to 65535, got {text!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    problem = _check_host(host)
    if problem is not None:
        raise ValueError(f"has a host that {problem}")
    return host, int(port)


def _check_metrics_bind(text: Any) -> str | None:
    try:
        split_host_port(text)
    except ValueError as exc:
        return str(exc)
    if importlib.util.find_spec("prometheus_client") is None:
        return "needs prometheus_client: pip install 'carpinus[metrics]'"
    return None


def _check_host(host: Any) -> str | None:
    """An IPv4 or IPv6 address or a syntactically valid host name ('' binds
    every interface).  Whether a name resolves is found out when binding."""
    if not isinstance(host, str):
        return f"must be an IP address or a host name, got {host!r}"
    if host == "":
        return None
    if ":" in host:
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            return f"must be an IP address or a host name, got {host!r} (not an IPv6 address)"
        return None
    if all(c.isdigit() or c == "." for c in host):
        try:
            socket.inet_aton(host)  # what getaddrinfo accepts: 10.1, 127.0.0.1
        except OSError:
            return f"must be an IP address or a host name, got {host!r} (not an IPv4 address)"
        return None
    labels = host[:-1].split(".") if host.endswith(".") else host.split(".")
    if len(host) > 253 or not all(_HOST_LABEL.fullmatch(label) for label in labels):
        return f"must be an IP address or a host name, got {host!r}"
    return None


def _check_root_path(root_path: Any) -> str | None:
    if not isinstance(root_path, str):
        return f"must be a str, got {root_path!r}"
    if root_path and (not root_path.startswith("/") or root_path.endswith("/")):
        return f"must start with '/' and not end with '/', got {root_path!r}"
    return None


def _parse_header(text: str) -> tuple[str, str]:
    name, sep, value = text.partition(":")
    if not sep or not name.strip():
        raise ValueError(f"expects NAME:VALUE, got {text!r}")
    return name.strip(), value.strip()


def _headers_from_cli(texts: tuple[str, ...]) -> list[tuple[str, str]]:
    return [_parse_header(text) for text in texts]


def _switches_from_cli(texts: tuple[str, ...]) -> dict[str, bool]:
    return dict(parse_switch(text) for text in texts)


# --http: which versions the core speaks (its CP_HTTP_1 | CP_HTTP_2 bits)
HTTP_VERSIONS = {"auto": 3, "1": 1, "2": 2}


def _http_to_core(value: str) -> int:
    return HTTP_VERSIONS[http_version_from_uvicorn(value)]


def _optimizations_to_core(switches: Mapping[str, bool] | None) -> int:
    return optimization_bits(resolve_optimizations(switches))


_ATOM_HELP = ", ".join(f"%({name})s {text}" for name, (text, _) in ACCESS_LOG_ATOMS.items())

# -- the table ------------------------------------------------------------------------

LISTEN = "Listening"
APPLICATION = "The application"
HTTP = "HTTP"
TIMEOUTS = "Timeouts"
LIMITS = "Limits"
TLS = "TLS"
LOGGING = "Logging"
PROCESSES = "Processes"
METRICS = "Metrics"
RELOAD = "Reload"
WEBSOCKET = "WebSocket"
HTTP2 = "HTTP/2"
TUNING = "Event loop and tuning"
UVICORN = "Accepted for uvicorn's command lines"

OPTIONS: tuple[Option, ...] = (
    # -- where to listen --
    Option("host", str, "127.0.0.1", "Bind to this host.", LISTEN, check=_check_host),
    Option("port", int, 8000, "Bind to this port (0: any free port).", LISTEN,
           min=0, max=65535),
    Option("uds", str, None, "Bind to this Unix domain socket path.", LISTEN),
    Option("fd", int, None, "Use this already-bound socket file descriptor.", LISTEN, min=0),
    Option("backlog", int, 2048, "Pending connections the kernel may queue.", LISTEN, min=1),
    Option("reuse_port", bool, False,
           "Set SO_REUSEPORT on the --host/--port sockets, so that several carpinus "
           "processes (same user) can listen on one port and the kernel spreads connections "
           "among them.  Workers of one carpinus share one socket either way "
           "(docs/deployment.md).", LISTEN, bool_style="flag"),
    # -- the application --
    Option("factory", bool, False, "APP names a callable that returns the ASGI app.",
           APPLICATION, bool_style="flag"),
    Option("app_dir", str, None,
           "Look for APP in this directory (added to sys.path); by default the current "
           "directory, as with uvicorn.", APPLICATION, cli_default="."),
    Option("env_file", str, None,
           "Load environment variables from this .env file (python-dotenv) before the app "
           "is imported; variables already set win.", APPLICATION, file=True,
           annotation="str | os.PathLike[str] | None"),
    Option("lifespan", str, "auto", "ASGI lifespan events.", APPLICATION,
           choices=("auto", "on", "off")),
    Option("root_path", str, "", "Mount path of the app behind a proxy (scope root_path).",
           APPLICATION, check=_check_root_path, core="root_path"),
    # -- HTTP --
    Option("server_header", bool, True, "Send 'server: carpinus'.", HTTP,
           core="server_header"),
    Option("date_header", bool, True, "Send a Date header.", HTTP, core="date_header"),
    # (off: what it costs measured; docs/benchmarks.md)
    Option("response_extensions", bool, True,
           "Offer the http.response.pathsend and http.response.early_hint ASGI extensions "
           "in every HTTP scope (Starlette's FileResponse then lets the server send the "
           "file).  Off saves a dict per request; apps then read files themselves.", HTTP),
    Option("headers", str, None,
           "Add this header to every response (repeatable).  A 'server' header replaces "
           "the default one.  Sent beside the app's own headers.", HTTP,
           flags=("--header",), multiple=True, metavar="NAME:VALUE",
           from_cli=_headers_from_cli, default_text="none",
           annotation="Sequence[tuple[str, str]] | None", attribute="list[tuple[str, str]]"),
    Option("proxy_headers", bool, True,
           "Take the client address and scheme from X-Forwarded-For/X-Forwarded-Proto (or "
           "else Forwarded, RFC 7239) when the peer is in --forwarded-allow-ips.", HTTP),
    Option("forwarded_host", bool, False,
           "With --proxy-headers, also take the host the client asked for from "
           "X-Forwarded-Host (or Forwarded host=) when the peer is in --forwarded-allow-ips: "
           "the app's 'host' header becomes it.  Off by default: turn it on only when your "
           "proxy sets or replaces that header.", HTTP),
    Option("forwarded_allow_ips", str, None,
           "Comma-separated IP addresses, networks (10.0.0.0/8), literals (e.g. 'unix:', "
           "which also trusts Unix-socket peers) or '*' to trust with proxy headers.", HTTP,
           default_text="$FORWARDED_ALLOW_IPS or 127.0.0.1",
           annotation="str | Sequence[str] | None", attribute="str | Sequence[str]"),
    Option("http", str, "auto",
           "HTTP versions to serve on the port: 'auto' both HTTP/1.1 and HTTP/2 (h2 by ALPN "
           "over TLS, h2c with prior knowledge in cleartext), '1' HTTP/1.1 only, '2' HTTP/2 "
           "only (HTTP/1.1 requests get 505).  HTTP/2 needs the extension built with "
           "libnghttp2 (docs/http2.md).  uvicorn's h11 and httptools mean '1', zttp "
           "'auto'.", HTTP, choices=(*HTTP_VERSIONS, *UVICORN_HTTP),
           core="http_versions", core_kind="size", to_core=_http_to_core),
    # -- HTTP/2 --
    Option("h2_max_concurrent_streams", int, 100,
           "Most streams a client may have open at once on one HTTP/2 connection "
           "(SETTINGS_MAX_CONCURRENT_STREAMS); each running stream is one request.", HTTP2,
           min=1, max=(1 << 31) - 1, core="h2_max_concurrent_streams"),
    Option("h2_initial_window_size", int, 256 * 1024,
           "Request body bytes one stream may send ahead of what its app has read "
           "(SETTINGS_INITIAL_WINDOW_SIZE): the flow-control window given back as the app "
           "reads.", HTTP2, min=1, max=(1 << 31) - 1, core="h2_initial_window_size"),
    Option("h2_connection_window_size", int, 1024 * 1024,
           "Request body bytes all streams of a connection together may send ahead of what "
           "their apps have read (the connection's window).", HTTP2, min=65535,
           max=(1 << 31) - 1, core="h2_connection_window_size"),
    Option("h2_max_header_list_size", int, 65536,
           "Largest request header list, decoded, as HTTP/2 measures it (each field's name "
           "and value plus 32 bytes; SETTINGS_MAX_HEADER_LIST_SIZE); larger gets 431.",
           HTTP2, min=256, max=MAX_REQUEST_HEAD, core="h2_max_header_list_size"),
    # -- timeouts --
    Option("timeout_keep_alive", float, 5.0,
           "Close an idle keep-alive connection after this many seconds.", TIMEOUTS,
           positive=True, core="timeout_keep_alive"),
    Option("timeout_request_header", float, 10.0,
           "Drop a client that takes longer than this to send a request head (slow-header "
           "guard), in seconds.", TIMEOUTS, positive=True, core="timeout_request_header"),
    Option("timeout_request_body", float, 60.0,
           "Drop a client that sends no byte of a request body it owes for this many seconds "
           "(slow-body guard; 408 if no response was started).", TIMEOUTS, positive=True,
           core="timeout_request_body"),
    # Bounded by default, so that a streaming response (SSE, long poll) cannot
    # hold a stop up until the orchestrator's SIGKILL: 5 s leaves lifespan
    # shutdown time within docker stop's 10 s (docs/deployment.md).
    Option("timeout_graceful_shutdown", float, GRACEFUL_SHUTDOWN_TIMEOUT,
           "On SIGTERM/SIGINT, wait at most this many seconds for in-flight requests and "
           "WebSocket sessions; then close what is left (streaming responses, long polls) and "
           "run lifespan shutdown.  'inf' waits as long as they take (uvicorn's default).",
           TIMEOUTS, positive=True, nullable=True),
    # -- limits --
    Option("limit_request_line", int, 8190,
           "Longest request line in bytes; longer gets 414.", LIMITS,
           min=16, max=MAX_REQUEST_LINE, core="limits.max_request_line"),
    Option("limit_request_headers", int, 100,
           "Most header fields per request; more gets 431.", LIMITS,
           min=1, max=100_000, core="limits.max_headers"),
    Option("limit_request_header_size", int, 8190,
           "Longest header field line in bytes; longer gets 431.", LIMITS,
           min=16, max=MAX_REQUEST_LINE, core="limits.max_header_size"),
    # (the default stays below the core's read high-water mark, CP_HIGH_WATER,
    # so that a head in progress never looks like a backlog to pause)
    Option("limit_request_head", int, 65536,
           "Largest whole request head (request line and every header field) in bytes; "
           "larger gets 431.", LIMITS, min=256, max=MAX_REQUEST_HEAD,
           core="limits.max_head_size"),
    Option("limit_request_body", int, None,
           "Largest request body in bytes; larger gets 413.", LIMITS, min=0,
           default_text="unlimited", core="max_body"),
    Option("limit_concurrency", int, None,
           "Most requests whose app is running at once; past it new requests get 503 (idle "
           "keep-alive connections do not count, unlike uvicorn's option of the same "
           "name).", LIMITS, min=1, default_text="none", core="limit_concurrency"),
    # -- TLS --
    Option("ssl_keyfile", str, None, "TLS private key file (PEM).", TLS,
           annotation="str | os.PathLike[str] | None"),
    Option("ssl_certfile", str, None,
           "TLS certificate (chain) file (PEM); serves HTTPS when given.", TLS,
           annotation="str | os.PathLike[str] | None"),
    Option("ssl_keyfile_password", str, None, "Password of an encrypted key.", TLS),
    Option("ssl_version", int, SSL_PROTOCOL_VERSION,
           "TLS protocol constant of the ssl module (PROTOCOL_TLS_SERVER).", TLS),
    Option("ssl_cert_reqs", int, SSL_CERT_REQS,
           "Client certificates: 0 not asked, 1 optional, 2 required (checked against "
           "--ssl-ca-certs).", TLS, min=0, max=2),
    Option("ssl_ca_certs", str, None,
           "CA certificates (PEM) that client certificates must chain to.", TLS,
           annotation="str | os.PathLike[str] | None"),
    Option("ssl_ciphers", str, SSL_CIPHERS,
           "OpenSSL cipher string for TLS 1.2 and older (TLS 1.3 suites are not affected).",
           TLS, default_text="Python's ssl defaults: ECDHE with AES-GCM or ChaCha20"),
    # -- logging --
    Option("log_level", str, None, "Log level.", LOGGING, cli_choices=tuple(LOG_LEVELS),
           default_text="info", annotation="str | int | None"),
    Option("log_config", str, None,
           "Logging configuration file: .json or .yaml/.yml (logging dictConfig; YAML needs "
           "PyYAML) or .ini (logging fileConfig).  Loggers: carpinus.error, "
           "carpinus.access.", LOGGING, file=True,
           annotation="str | os.PathLike[str] | Mapping[str, Any] | None"),
    Option("access_log", bool, True, "Log one line per request.", LOGGING),
    Option("access_log_format", str, None,
           "Access log line as a gunicorn-style format, e.g. "
           "'%(h)s \"%(r)s\" %(s)s %(b)s %(L)s'.  Atoms: " + _ATOM_HELP +
           ", %({header}i)s a request header, %({name}e)s an environment variable.",
           LOGGING, metavar="FORMAT", default_text="'HOST:PORT - \"REQUEST LINE\" STATUS'"),
    # -- processes --
    Option("workers", int, None,
           "Worker processes, each with its own event loop, sharing the listening socket "
           "under a supervisor that replaces any that dies; SIGHUP replaces them one by one, "
           "SIGTTIN/SIGTTOU add/remove one. Use about one per core (docs/deployment.md).",
           PROCESSES, min=1, default_text="$WEB_CONCURRENCY or 1", attribute="int"),
    Option("threads", int, 1,
           "Serving threads per process (per worker with --workers), each with its own event "
           "loop and server state, all accepting on the same sockets; lifespan runs once per "
           "process, in the main thread's loop.  With the GIL the threads take turns: this "
           "helps apps that block in C code that releases the GIL; on free-threaded Python "
           "(3.13t and later) they run in parallel (docs/deployment.md, threads vs workers).",
           PROCESSES, min=1),
    Option("max_requests", int, None,
           "Recycle a worker after this many requests (it stops gracefully and the "
           "supervisor starts a fresh one); without a supervisor the process exits with "
           "code 0, as uvicorn does.", PROCESSES,
           flags=("--max-requests", "--limit-max-requests"), min=1, default_text="never"),
    Option("max_requests_jitter", int, 0,
           "Add a random 0..N to --max-requests per worker, so that workers do not all "
           "recycle at once.", PROCESSES,
           flags=("--max-requests-jitter", "--limit-max-requests-jitter"), min=0),
    # recycling and restarting under the supervisor (carpinus.supervisors.recycling)
    Option("supervise", bool, False,
           "Run the server under a supervisor even with one worker, so that a worker that "
           "dies (a crash, kill -9, the OOM killer) is restarted.  Implied by --workers N > 1, "
           "--reload, --max-worker-memory and --max-worker-lifetime.", PROCESSES,
           bool_style="flag"),
    Option("max_worker_memory", int, None,
           "Replace a worker whose resident memory (RSS, read from /proc once a second) is "
           "above this many MiB: a new worker starts first, then the old one drains within "
           "--timeout-graceful-shutdown.  Implies a supervisor; Linux only.", PROCESSES,
           min=1, metavar="MIB", default_text="never"),
    Option("max_worker_lifetime", float, None,
           "Replace each worker this many seconds after it started, plus a random 0-10% "
           "so that workers started together do not restart together; gracefully, as "
           "--max-worker-memory.  Implies a supervisor.", PROCESSES, positive=True,
           metavar="SECONDS", default_text="never"),
    Option("timeout_worker_healthcheck", float, 30.0,
           "With a supervisor: kill and replace a worker that takes longer than this many "
           "seconds to start, or whose event loop stops answering for as long (not with "
           "--reload).", PROCESSES, positive=True),
    Option("pid_file", str, None,
           "Write the pid of the process to signal (the supervisor, or the server when there "
           "is none) to this file; removed on exit.", PROCESSES, flags=("--pid",),
           metavar="PATH"),
    # -- metrics --
    Option("metrics_bind", str, None,
           "Serve Prometheus metrics at http://HOST:PORT/metrics, on a listener of their "
           "own: requests, responses by status class, durations, connections, bytes, "
           "refused requests, WebSocket sessions, worker restarts; one scrape sums every "
           "worker (docs/metrics.md). Needs prometheus_client (carpinus[metrics]).",
           METRICS, metavar="HOST:PORT", check=_check_metrics_bind, default_text="off"),
    # -- reload --
    Option("reload", bool, False,
           "Development: restart the worker when a watched file changes (needs watchfiles: "
           "pip install 'carpinus[reload]').", RELOAD, bool_style="flag"),
    Option("reload_dirs", str, None, "Watch this directory for --reload (repeatable).",
           RELOAD, flags=("--reload-dir",), multiple=True, metavar="DIR",
           default_text="the current directory",
           annotation="Sequence[str] | str | None", attribute="list[str]"),
    Option("reload_includes", str, None,
           "Reload when a file matching this glob changes (repeatable; '*.py' is always "
           "included unless excluded).", RELOAD, flags=("--reload-include",), multiple=True,
           metavar="PATTERN", default_text="'*.py'",
           annotation="Sequence[str] | str | None", attribute="list[str]"),
    Option("reload_excludes", str, None,
           "Ignore changes to files matching this glob, or under this directory "
           "(repeatable).", RELOAD, flags=("--reload-exclude",), multiple=True,
           metavar="PATTERN", default_text="'.*', '.py[cod]', '.sw.*', '~*'",
           annotation="Sequence[str] | str | None", attribute="list[str]"),
    Option("reload_delay", float, 0.25,
           "After a change, look for the next ones this many seconds later, so that files "
           "saved together restart the worker once (as uvicorn's).", RELOAD, min=0),
    # -- WebSocket --
    Option("ws", str, "auto",
           "WebSocket support; auto serves WebSockets with the C core's frame codec, none "
           "serves upgrade requests as plain HTTP; uvicorn's implementations (websockets, "
           "websockets-sansio, wsproto) are accepted as other names for auto.", WEBSOCKET,
           choices=("auto", "none", *UVICORN_WS)),
    Option("ws_max_size", int, 16 * 1024 * 1024,
           "Largest incoming WebSocket message in bytes; larger closes with 1009.", WEBSOCKET,
           min=1),
    Option("ws_max_queue", int, 32,
           "Incoming WebSocket messages queued for an app that does not receive() them; past "
           "it the server stops reading from that client.", WEBSOCKET, min=1),
    Option("ws_ping_interval", float, 20.0,
           "Send a WebSocket keep-alive ping every this many seconds (0: never).", WEBSOCKET,
           positive=True, nullable=True, zero_is_none=True),
    Option("ws_ping_timeout", float, 20.0,
           "Close a WebSocket (1011) whose pong has not come this many seconds after a ping; "
           "also how long a close frame waits for the client's (0: forever).", WEBSOCKET,
           positive=True, nullable=True, zero_is_none=True),
    Option("ws_per_message_deflate", bool, True,
           "Accept the permessage-deflate compression extension when a client offers it.",
           WEBSOCKET, bool_style="value"),
    # -- event loop, memory and the C core's optimizations --
    Option("loop", str, "auto",
           "Event loop; auto picks uvloop when it is installed.  uvicorn's none (asyncio) "
           "and zuvloop (auto) are accepted too.", TUNING,
           choices=("auto", "asyncio", "uvloop", *UVICORN_LOOPS)),
    Option("gc_freeze", bool, True,
           "After startup, move every object alive into the collector's permanent "
           "generation (gc.freeze) so collections while serving stay short.", TUNING),
    Option("malloc_tuning", bool, True,
           "On glibc, keep freed heap memory (up to 64 MiB) for reuse instead of returning "
           "it to the OS after every burst of requests.", TUNING),
    Option("optimizations", str, None,
           "Switch one marshalling optimization (repeatable): " + ", ".join(OPTIMIZATIONS) +
           ". Defaults and measurements: docs/optimizations.md.", TUNING,
           flags=("--opt",), multiple=True, metavar="NAME=on|off",
           from_cli=_switches_from_cli, default_text="lazy_headers off, the others on",
           annotation="Mapping[str, bool] | None", attribute="dict[str, bool]",
           core="opts", core_kind="bits", to_core=_optimizations_to_core),
    Option("zero_copy_threshold", int, 16384,
           "Request bodies of at least this many bytes (with a Content-Length) are read by "
           "the kernel straight into the bytes object the app receives.", TUNING, min=1,
           core="zero_copy_threshold"),
    Option("lazy_headers_min", int, 4,
           "With lazy_headers on, requests with at least this many headers get a "
           "scope['headers'] that builds its items on first access.", TUNING, min=0,
           core="lazy_headers_min"),
    Option("scope_cache_size", int, 64,
           "Slots of the per-path scope template cache (scope_cache).", TUNING,
           min=1, max=1 << 20, core="scope_cache_size"),
    # -- uvicorn's options for what carpinus does one fixed way (carpinus.uvicorn_compat):
    # accepted so that uvicorn's command lines run; the server logs once what it does
    # instead.  (uvicorn's --http values are taken by --http itself, above.)
    Option("http2", bool, False,
           "uvicorn's HTTP/2 switch; accepted: carpinus chooses HTTP versions with --http.",
           UVICORN, bool_style="flag"),
    Option("interface", str, "auto",
           "How to call APP: auto and asgi3 as ASGI 3 (carpinus does not guess ASGI 2, unlike "
           "uvicorn), asgi2 through an adapter, wsgi through a2wsgi (pip install "
           "'carpinus[wsgi]').",
           UVICORN, choices=INTERFACES),
    Option("use_colors", bool, False,
           "uvicorn's coloured log; accepted, and the log stays plain.", UVICORN),
    Option("reset_contextvars", bool, False,
           "uvicorn's fresh context per request; carpinus always does that.", UVICORN,
           bool_style="flag"),
    Option("h11_max_incomplete_event_size", int, None,
           "uvicorn's h11 buffer limit; accepted, and --limit-request-head applies instead.",
           UVICORN, min=1, default_text="none"),
)

OPTIONS_BY_NAME: dict[str, Option] = {option.name: option for option in OPTIONS}
GROUPS: tuple[str, ...] = tuple(dict.fromkeys(option.group for option in OPTIONS))
CORE_OPTIONS: tuple[Option, ...] = tuple(option for option in OPTIONS if option.core)


def core_kwargs(config: object) -> dict[str, Any]:
    """The core options of `config` (a Config), as ServerState's keyword arguments."""
    kwargs = {}
    for option in CORE_OPTIONS:
        value = getattr(config, option.name)
        kwargs[option.name] = option.to_core(value) if option.to_core else value
    return kwargs


def core_defaults(**overrides: Any) -> dict[str, Any]:
    """ServerState's keyword arguments for the defaults of the table (for code that
    makes a ServerState directly), with `overrides` (core values) applied."""
    kwargs = {}
    for option in CORE_OPTIONS:
        kwargs[option.name] = option.to_core(option.default) if option.to_core else option.default
    unknown = set(overrides) - set(kwargs)
    if unknown:
        raise TypeError(f"not core options: {', '.join(sorted(unknown))}")
    kwargs.update(overrides)
    return kwargs
