"""The top floor: the `carpinus` command, carpinus.run(), and the process model.

Both entry points build a Config and hand it to launch(), which picks:

- one server in this process (the default: `--workers 1`, no `--reload`),
  with no supervisor in between (carpinus.server);
- a supervisor with worker processes (`--workers N`, N > 1, or `--reload`),
  see carpinus.supervisors.multiprocess.

`--pid PATH` names whichever process is the one to signal: the server in the
first case, the supervisor in the second.  The command has one option per
Config field, named as in uvicorn.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from typing import Any

import click

import carpinus
from carpinus.access_log import ACCESS_LOG_ATOMS
from carpinus.config import Config, ConfigError
from carpinus.logging import LOG_LEVELS
from carpinus.optimizations import parse_switch
from carpinus.pidfile import PidFileError, pid_file
from carpinus.server import Server
from carpinus.sockets import bind_sockets, close_sockets, log_listening
from carpinus.supervisors.multiprocess import Supervisor
from carpinus.supervisors.reload import FileWatcher
from carpinus.tls import SSL_CERT_REQS, SSL_CIPHERS, SSL_PROTOCOL_VERSION

logger = logging.getLogger("carpinus.error")


# -- the command line -------------------------------------------------------------


def _print_version(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    if not value or ctx.resilient_parsing:
        return
    import platform

    click.echo(
        f"carpinus {carpinus.__version__} with {platform.python_implementation()} "
        f"{platform.python_version()} on {platform.system()}"
    )
    ctx.exit()


def _parse_header(text: str) -> tuple[str, str]:
    name, sep, value = text.partition(":")
    if not sep or not name.strip():
        raise ValueError(f"--header expects NAME:VALUE, got {text!r}")
    return name.strip(), value.strip()


_ATOM_HELP = ", ".join(f"%({name})s {text}" for name, (text, _) in ACCESS_LOG_ATOMS.items())


@click.command(context_settings={"auto_envvar_prefix": "CARPINUS", "max_content_width": 100})
@click.argument("app", required=False, default=None)
@click.option("--host", default="127.0.0.1", show_default=True, help="Bind to this host.")
@click.option("--port", default=8000, type=int, show_default=True, help="Bind to this port.")
@click.option("--uds", default=None, help="Bind to this Unix domain socket path.")
@click.option("--fd", default=None, type=int, help="Use this already-bound socket file descriptor.")
@click.option("--backlog", default=2048, type=int, show_default=True,
              help="Pending connections the kernel may queue.")
@click.option("--loop", type=click.Choice(["auto", "asyncio", "uvloop"]), default="auto",
              show_default=True, help="Event loop; auto picks uvloop when it is installed.")
@click.option("--lifespan", type=click.Choice(["auto", "on", "off"]), default="auto",
              show_default=True, help="ASGI lifespan events.")
@click.option("--factory", is_flag=True, default=False,
              help="APP names a callable that returns the ASGI app.")
@click.option("--app-dir", default=".", show_default=True,
              help="Look for APP in this directory (added to sys.path); by default the "
                   "current directory, as with uvicorn.")
@click.option("--root-path", default="",
              help="Mount path of the app behind a proxy (scope root_path).")
@click.option("--log-level", type=click.Choice(list(LOG_LEVELS)), default=None,
              help="Log level.  [default: info]")
@click.option("--log-config", default=None, type=click.Path(exists=True, dir_okay=False),
              help="Logging configuration file: .json or .yaml/.yml (logging dictConfig; "
                   "YAML needs PyYAML) or .ini (logging fileConfig).  Loggers: "
                   "carpinus.error, carpinus.access.")
@click.option("--access-log/--no-access-log", default=True, show_default=True,
              help="Log one line per request.")
@click.option("--access-log-format", default=None, metavar="FORMAT",
              help="Access log line as a gunicorn-style format, e.g. "
                   "'%(h)s \"%(r)s\" %(s)s %(b)s %(L)s'.  Atoms: " + _ATOM_HELP +
                   ", %({header}i)s a request header, %({name}e)s an environment variable.  "
                   "[default: 'HOST:PORT - \"REQUEST LINE\" STATUS']")
@click.option("--env-file", default=None, type=click.Path(exists=True, dir_okay=False),
              help="Load environment variables from this .env file (python-dotenv) before "
                   "the app is imported; variables already set win.")
@click.option("--server-header/--no-server-header", default=True, show_default=True,
              help="Send 'server: carpinus'.")
@click.option("--date-header/--no-date-header", default=True, show_default=True,
              help="Send a Date header.")
@click.option("--header", "headers", multiple=True, metavar="NAME:VALUE",
              help="Add this header to every response (repeatable).  A 'server' header "
                   "replaces the default one.  Sent beside the app's own headers.")
@click.option("--proxy-headers/--no-proxy-headers", default=True, show_default=True,
              help="Take the client address and scheme from X-Forwarded-For/"
                   "X-Forwarded-Proto (or else Forwarded, RFC 7239) when the peer is in "
                   "--forwarded-allow-ips.")
@click.option("--forwarded-allow-ips", default=None,
              help="Comma-separated IP addresses, networks (10.0.0.0/8), literals "
                   "(e.g. 'unix:', which also trusts Unix-socket peers) or '*' to trust "
                   "with proxy headers.  [default: $FORWARDED_ALLOW_IPS or 127.0.0.1]")
@click.option("--ssl-keyfile", default=None, help="TLS private key file (PEM).")
@click.option("--ssl-certfile", default=None,
              help="TLS certificate (chain) file (PEM); serves HTTPS when given.")
@click.option("--ssl-keyfile-password", default=None, help="Password of an encrypted key.")
@click.option("--ssl-version", default=SSL_PROTOCOL_VERSION, type=int, show_default=True,
              help="TLS protocol constant of the ssl module (PROTOCOL_TLS_SERVER).")
@click.option("--ssl-cert-reqs", default=SSL_CERT_REQS, type=click.IntRange(0, 2),
              show_default=True,
              help="Client certificates: 0 not asked, 1 optional, 2 required "
                   "(checked against --ssl-ca-certs).")
@click.option("--ssl-ca-certs", default=None,
              help="CA certificates (PEM) that client certificates must chain to.")
@click.option("--ssl-ciphers", default=SSL_CIPHERS,
              help="OpenSSL cipher string for TLS 1.2 and older (TLS 1.3 suites are not "
                   "affected).  [default: Python's ssl defaults: ECDHE with AES-GCM or "
                   "ChaCha20]")
@click.option("--timeout-keep-alive", default=5.0, type=float, show_default=True,
              help="Close an idle keep-alive connection after this many seconds.")
@click.option("--timeout-request-header", default=10.0, type=float, show_default=True,
              help="Drop a client that takes longer than this to send a request head "
                   "(slow-header guard), in seconds.")
@click.option("--timeout-request-body", default=60.0, type=float, show_default=True,
              help="Drop a client that sends no byte of a request body it owes for this "
                   "many seconds (slow-body guard; 408 if no response was started).")
@click.option("--timeout-graceful-shutdown", default=None, type=float,
              help="On SIGTERM/SIGINT, wait at most this many seconds for in-flight "
                   "requests.  [default: wait for them]")
@click.option("--limit-request-line", default=8190, type=int, show_default=True,
              help="Longest request line in bytes; longer gets 414.")
@click.option("--limit-request-headers", default=100, type=int, show_default=True,
              help="Most header fields per request; more gets 431.")
@click.option("--limit-request-header-size", default=8190, type=int, show_default=True,
              help="Longest header field line in bytes; longer gets 431.")
@click.option("--limit-request-head", default=65536, type=int, show_default=True,
              help="Largest whole request head (request line and every header field) "
                   "in bytes; larger gets 431.")
@click.option("--limit-request-body", default=None, type=int,
              help="Largest request body in bytes; larger gets 413.  [default: unlimited]")
@click.option("--limit-concurrency", default=None, type=int,
              help="Most requests whose app is running at once; past it new requests get "
                   "503 (idle keep-alive connections do not count, unlike uvicorn's option "
                   "of the same name).  [default: none]")
@click.option("--gc-freeze/--no-gc-freeze", default=True, show_default=True,
              help="After startup, move every object alive into the collector's "
                   "permanent generation (gc.freeze) so collections while serving stay "
                   "short.")
@click.option("--malloc-tuning/--no-malloc-tuning", default=True, show_default=True,
              help="On glibc, keep freed heap memory (up to 64 MiB) for reuse instead of "
                   "returning it to the OS after every burst of requests.")
@click.option("--opt", "opt", multiple=True, metavar="NAME=on|off",
              help="Switch one marshalling optimization (repeatable): zero_copy_body, "
                   "direct_response, scope_cache, header_names, lazy_headers, status_cache. "
                   "Defaults and measurements: docs/optimizations.md.")
@click.option("--zero-copy-threshold", default=16384, type=int, show_default=True,
              help="Request bodies of at least this many bytes (with a Content-Length) are "
                   "read by the kernel straight into the bytes object the app receives.")
@click.option("--lazy-headers-min", default=4, type=int, show_default=True,
              help="With lazy_headers on, requests with at least this many headers get a "
                   "scope['headers'] that builds its items on first access.")
@click.option("--scope-cache-size", default=64, type=int, show_default=True,
              help="Slots of the per-path scope template cache (scope_cache).")
@click.option("--workers", default=None, type=int,
              help="Worker processes, each with its own event loop, sharing the listening "
                   "socket under a supervisor that replaces any that dies; SIGHUP replaces "
                   "them one by one, SIGTTIN/SIGTTOU add/remove one. Use about one per "
                   "core (docs/deployment.md).  [default: $WEB_CONCURRENCY or 1]")
@click.option("--max-requests", "--limit-max-requests", "max_requests", default=None, type=int,
              help="Recycle a worker after this many requests (it stops gracefully and the "
                   "supervisor starts a fresh one); without a supervisor the process exits "
                   "with code 0, as uvicorn does.  [default: never]")
@click.option("--max-requests-jitter", "--limit-max-requests-jitter", "max_requests_jitter",
              default=0, type=int, show_default=True,
              help="Add a random 0..N to --max-requests per worker, so that workers do not "
                   "all recycle at once.")
@click.option("--timeout-worker-healthcheck", default=30.0, type=float, show_default=True,
              help="With a supervisor: kill and replace a worker that takes longer than this "
                   "many seconds to start, or whose event loop stops answering for as long "
                   "(not with --reload).")
@click.option("--reload", is_flag=True, default=False,
              help="Development: restart the worker when a watched file changes "
                   "(needs watchfiles: pip install 'carpinus[reload]').")
@click.option("--reload-dir", "reload_dirs", multiple=True, metavar="DIR",
              help="Watch this directory for --reload (repeatable).  [default: the current "
                   "directory]")
@click.option("--reload-include", "reload_includes", multiple=True, metavar="PATTERN",
              help="Reload when a file matching this glob changes (repeatable; '*.py' is "
                   "always included unless excluded).")
@click.option("--reload-exclude", "reload_excludes", multiple=True, metavar="PATTERN",
              help="Ignore changes to files matching this glob, or under this directory "
                   "(repeatable; '.*', '.py[cod]', '.sw.*' and '~*' are excluded by default).")
@click.option("--pid", "pid_file", default=None, metavar="PATH",
              help="Write the pid of the process to signal (the supervisor, or the server "
                   "when there is none) to this file; removed on exit.")
@click.option("--ws", type=click.Choice(["auto", "none", "wsproto"]), default="auto",
              show_default=True,
              help="WebSocket implementation; auto uses wsproto when installed, none serves "
                   "upgrade requests as plain HTTP.")
@click.option("--ws-max-size", default=16 * 1024 * 1024, type=int, show_default=True,
              help="Largest incoming WebSocket message in bytes; larger closes with 1009.")
@click.option("--ws-max-queue", default=32, type=int, show_default=True,
              help="Incoming WebSocket messages queued for an app that does not receive() "
                   "them; past it the server stops reading from that client.")
@click.option("--ws-ping-interval", default=20.0, type=float, show_default=True,
              help="Send a WebSocket keep-alive ping every this many seconds (0: never).")
@click.option("--ws-ping-timeout", default=20.0, type=float, show_default=True,
              help="Close a WebSocket (1011) whose pong has not come this many seconds after "
                   "a ping; also how long a close frame waits for the client's (0: forever).")
@click.option("--ws-per-message-deflate", default=True, type=bool, show_default=True,
              help="Accept the permessage-deflate compression extension when a client "
                   "offers it.")
@click.option("--version", is_flag=True, callback=_print_version, expose_value=False,
              is_eager=True, help="Show the version and exit.")
def main(app: str | None, **options: Any) -> None:
    """Serve the ASGI application APP ("module:attribute") over HTTP/1.1 and WebSocket.

    Without APP, serve the bundled demo app (carpinus.demo:app).
    """
    try:
        switches = dict(parse_switch(text) for text in options.pop("opt"))
        headers = [_parse_header(text) for text in options.pop("headers")]
        for name in ("ws_ping_interval", "ws_ping_timeout"):
            if options[name] == 0:
                options[name] = None  # 0 on the command line: off
        config = Config(app, optimizations=switches, headers=headers, **options)
    except (ConfigError, ValueError) as exc:
        raise click.UsageError(str(exc)) from None
    code = launch(config)
    if code:
        sys.exit(code)


# -- the Python entry point -------------------------------------------------------


def run(app: Any, **kwargs: Any) -> None:
    """Serve `app` (an ASGI callable or "module:attr") until SIGINT/SIGTERM.

    Keyword arguments are the fields of Config (workers=, reload=, pid_file=
    included).  Exits the process with a non-zero code if startup fails, like
    the command line does.
    """
    config = Config(app, **kwargs)
    code = launch(config)
    if code:
        sys.exit(code)


# -- the process model ------------------------------------------------------------


def launch(config: Config) -> int:
    """Serve until told to stop; returns the process exit code."""
    try:
        with contextlib.ExitStack() as stack:
            if config.pid_file is not None:
                stack.enter_context(pid_file(config.pid_file))
            if config.uses_supervisor:
                return supervise(config)
            return Server(config).run()
    except (PidFileError, ConfigError) as exc:
        logger.error("%s", exc)
        return 1


def supervise(config: Config) -> int:
    """Bind the sockets once, then run the supervisor over worker processes."""
    watcher = FileWatcher.from_config(config) if config.reload else None
    try:
        sockets = bind_sockets(config)
    except OSError as exc:
        logger.error("%s", exc)
        return 1
    try:
        for sock in sockets:
            log_listening(config, sock)
        return Supervisor(config, sockets, watcher).run()
    finally:
        close_sockets(config, sockets)
