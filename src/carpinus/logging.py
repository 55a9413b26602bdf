"""Log set-up: uvicorn-style lines ("INFO:     message") on stderr."""

from __future__ import annotations

import logging
import sys
from typing import Any

TRACE = 5
logging.addLevelName(TRACE, "TRACE")

ERROR_LOGGER = "carpinus.error"
ACCESS_LOGGER = "carpinus.access"


class LevelPrefixFormatter(logging.Formatter):
    """`INFO:     message`, the prefix padded so messages line up."""

    def formatMessage(self, record: logging.LogRecord) -> str:  # noqa: N802 (stdlib name)
        prefix = f"{record.levelname}:".ljust(10)
        return f"{prefix}{super().formatMessage(record)}"


def configure_logging(level: str | int | None) -> None:
    """Attach a stderr handler to carpinus' loggers (idempotent)."""
    from carpinus.config import LOG_LEVELS

    if isinstance(level, str):
        try:
            level = LOG_LEVELS[level.lower()]
        except KeyError:
            raise ValueError(f"unknown log level {level!r}") from None
    root = logging.getLogger("carpinus")
    if not any(getattr(h, "_carpinus", False) for h in root.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(LevelPrefixFormatter("%(message)s"))
        handler._carpinus = True  # type: ignore[attr-defined]
        root.addHandler(handler)
        root.propagate = False
    root.setLevel(level if level is not None else logging.INFO)


def access_line(scope: dict[str, Any], status: int) -> str:
    client = scope.get("client")
    who = f"{client[0]}:{client[1]}" if client else "-"
    path = scope.get("root_path", "") + scope.get("path", "")
    query = scope.get("query_string", b"")
    if query:
        path = f"{path}?{query.decode('ascii', 'replace')}"
    return f'{who} - "{scope["method"]} {path} HTTP/{scope["http_version"]}" {status}'
