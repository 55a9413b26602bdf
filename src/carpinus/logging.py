"""Log set-up: uvicorn-style lines ("INFO:     message") on stderr, or the
user's own logging configuration (--log-config).  The names of carpinus'
loggers and levels live here; what an access line says is access_log.py's."""

from __future__ import annotations

import json
import logging
import logging.config
import os
import sys
from collections.abc import Mapping
from typing import Any

from carpinus.uvicorn_compat import log_config_from_uvicorn

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


class UvicornFormatter(logging.Formatter):
    """The fields of uvicorn's DefaultFormatter and AccessFormatter, for --log-config
    files written for uvicorn (carpinus.uvicorn_compat.log_config_from_uvicorn):
    %(levelprefix)s ("INFO:    "), and on access records %(request_line)s
    ("GET /path?q HTTP/1.1") besides the fields every access record has
    (%(client_addr)s, %(status_code)s, ...).  Without colours: use_colors is
    accepted and ignored."""

    def __init__(self, fmt: str | None = None, datefmt: str | None = None,
                 style: Any = "%", use_colors: bool | None = None) -> None:
        super().__init__(fmt, datefmt, style)

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 (stdlib name)
        record.levelprefix = f"{record.levelname}:".ljust(9)
        method = getattr(record, "method", None)
        if method is not None and not hasattr(record, "request_line"):
            query = getattr(record, "query_string", "")
            record.request_line = (f"{method} {getattr(record, 'path', '')}"
                                   f"{'?' + query if query else ''} "
                                   f"HTTP/{getattr(record, 'http_version', '')}")
        return super().formatMessage(record)


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
            logging.config.dictConfig(log_config_from_uvicorn(dict(log_config)))
            return
        path = os.fspath(log_config)
        if path.endswith(".json"):
            with open(path, encoding="utf-8") as file:
                logging.config.dictConfig(log_config_from_uvicorn(json.load(file)))
        elif path.endswith((".yaml", ".yml")):
            try:
                import yaml
            except ImportError:
                raise LogConfigError(
                    f"log_config {path!r} is YAML, which needs PyYAML "
                    "(pip install 'carpinus[standard]' or 'carpinus[yaml]')"
                ) from None
            with open(path, encoding="utf-8") as file:
                logging.config.dictConfig(log_config_from_uvicorn(yaml.safe_load(file)))
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
