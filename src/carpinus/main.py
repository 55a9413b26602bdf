"""The top floor: the `carpinus` command, carpinus.run(), and the process model.

Both entry points build a Config and hand it to launch(), which picks:

- one server in this process (the default: `--workers 1`, no `--reload`),
  with no supervisor in between (carpinus.server), serving from its own
  event loop or, with `--threads N`, from N serving threads (carpinus.threads);
- a supervisor with worker processes (`--workers N`, N > 1, `--reload`,
  `--supervise`, `--max-worker-memory`, `--max-worker-lifetime`), see
  carpinus.supervisors.multiprocess.

`--pid PATH` names whichever process is the one to signal: the server in the
first case, the supervisor in the second.  The command has one option per
Config field, named as in uvicorn: both are made from the option table
(carpinus.options).  Every uvicorn option is accepted; the ones for things
carpinus does one fixed way are logged once here, with what it does instead
(carpinus.uvicorn_compat).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

import click
from click.core import ParameterSource

import carpinus
from carpinus.config import Config, ConfigError
from carpinus.options import GROUPS, OPTIONS, Option
from carpinus.pidfile import PidFileError, pid_file
from carpinus.server import Server
from carpinus.sockets import bind_sockets, close_sockets, log_listening
from carpinus.supervisors.multiprocess import Supervisor
from carpinus.supervisors.reload import FileWatcher
from carpinus.uvicorn_compat import UVICORN_APP_ENVVAR, compatibility_notes, uvicorn_envvar

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


_CLICK_TYPES: dict[type, Any] = {int: click.INT, float: click.FLOAT, str: click.STRING,
                                 bool: click.BOOL}


class TableOption(click.Option):
    """A click option made from a row of the option table (carpinus.options):
    its spellings, type, default and environment variable come from the row,
    its value is checked against the row's rules (the same Config applies),
    and its --help line ends with the default, the allowed values and the
    environment variable.  uvicorn's variable for the option (UVICORN_PORT)
    is read too, when carpinus's is not set."""

    def __init__(self, param_decls: Sequence[str], *, row: Option) -> None:
        self.row = row
        self.envvars = [row.envvar]
        uvicorn = uvicorn_envvar(row.name)
        if uvicorn is not None:
            self.envvars.append(uvicorn)
        kwargs: dict[str, Any] = {"help": row.help, "envvar": self.envvars,
                                  "multiple": row.multiple, "metavar": row.metavar}
        if row.type is bool and row.bool_style != "value":
            kwargs["is_flag"] = True
        elif row.choices or row.cli_choices:
            kwargs["type"] = click.Choice(list(row.choices or row.cli_choices))
        elif row.file:
            kwargs["type"] = click.Path(exists=True, dir_okay=False)
        else:
            kwargs["type"] = _CLICK_TYPES[row.type]
        default = row.command_line_default
        kwargs["default"] = () if row.multiple and default is None else default
        decls = [row.cli_flags, *row.flags[1:], row.name]
        super().__init__(decls, **kwargs)

    def process_value(self, ctx: click.Context, value: Any) -> Any:
        try:
            value = super().process_value(ctx, value)
            if ctx.resilient_parsing:
                return value
            row = self.row
            if row.from_cli is not None:
                try:
                    value = row.from_cli(value)
                except ValueError as exc:
                    raise click.BadParameter(str(exc), ctx, self) from None
            if row.zero_is_none and value == 0:
                value = None  # 0 on the command line: off
            problem = row.problem(value)
            if problem is not None:
                raise click.BadParameter(problem, ctx, self)
            return value
        except click.BadParameter as exc:
            if ctx.get_parameter_source(self.name or "") is ParameterSource.ENVIRONMENT:
                source = next(name for name in self.envvars if os.environ.get(name))
                exc.param_hint = f"{self.get_error_hint(ctx)} (from ${source})"
            raise

    def get_help_record(self, ctx: click.Context) -> tuple[str, str] | None:
        record = super().get_help_record(ctx)
        if record is None:
            return None
        spec, text = record
        row = self.row
        notes = []
        if row.default_words is not None and not (row.type is bool and row.bool_style == "flag"):
            notes.append(f"default: {row.default_words}")
        if row.allowed is not None:
            notes.append(row.allowed + (", or 0" if row.zero_is_none else ""))
        notes.append(f"env var: {row.envvar}")
        return spec, f"{text}  [{'; '.join(notes)}]"


def table_options(function: Callable[..., Any]) -> Callable[..., Any]:
    """One click option per row of the option table, in the table's order."""
    for row in reversed(OPTIONS):
        function = click.option(cls=TableOption, row=row)(function)
    return function


class GroupedCommand(click.Command):
    """--help lists the options in the option table's groups."""

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        sections: dict[str, list[tuple[str, str]]] = {group: [] for group in GROUPS}
        for param in self.get_params(ctx):
            record = param.get_help_record(ctx) if isinstance(param, click.Option) else None
            if record is not None:
                group = param.row.group if isinstance(param, TableOption) else "Other"
                sections.setdefault(group, []).append(record)
        # one column width for every section, so that they line up
        width = min(30, max(len(spec) for rows in sections.values() for spec, _ in rows))
        for group, rows in sections.items():
            if rows:
                with formatter.section(group):
                    formatter.write_dl([(spec.ljust(width), text) for spec, text in rows])


@click.command(cls=GroupedCommand, context_settings={"max_content_width": 100})
@click.argument("app", required=False, default=None, envvar=UVICORN_APP_ENVVAR)
@table_options
@click.option("--version", is_flag=True, callback=_print_version, expose_value=False,
              is_eager=True, help="Show the version and exit.")
def main(app: str | None, **options: Any) -> None:
    """Serve the ASGI application APP ("module:attribute") over HTTP/1.1 and WebSocket.

    Without APP, serve the bundled demo app (carpinus.demo:app).  Every option
    can also come from the environment variable shown with it
    (docs/configuration.md).

    A drop-in for the uvicorn command: every uvicorn option is accepted, with
    the same meaning where carpinus has the concept; the ones in the last
    section are logged once with what carpinus does instead
    (docs/migrating-from-uvicorn.md).
    """
    try:
        config = Config(app, **options)
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
    for note in compatibility_notes(config):
        logger.info("%s", note)
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
    metrics = None
    try:
        if config.metrics_bind is not None:
            from carpinus.metrics.exporter import WorkerMetrics  # prometheus_client: optional

            metrics = WorkerMetrics(config.metrics_bind)
        for sock in sockets:
            log_listening(config, sock)
        return Supervisor(config, sockets, watcher, metrics).run()
    except OSError as exc:  # the metrics listener could not bind (the message says so)
        logger.error("%s", exc)
        return 1
    finally:
        if metrics is not None:
            metrics.close()
        close_sockets(config, sockets)
