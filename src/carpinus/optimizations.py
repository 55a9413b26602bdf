"""The six marshalling optimizations of the reference design, and the
per-request savings that came after them, as switches.

Each one is on by default where measurements showed it helps (see
docs/optimizations.md); each can be turned off alone with `--opt NAME=off` or
`carpinus.run(..., optimizations={"NAME": False})`.  The six change speed
only: an app cannot tell whether one is on.  `cycle_reuse` is the exception
an app could notice in one way: a connection's next request may get the very
`receive` and `send` objects of the previous one -- only when the app let go
of them -- and `task_names` in one: on Python 3.11 a request's task is named
"carpinus-request-N" instead of asyncio's "Task-N" (docs/optimizations.md).
"""

from __future__ import annotations

from collections.abc import Mapping

# name -> bit in the C core's ServerState.opts (carpinus._core.OPT_*)
OPTIMIZATIONS: dict[str, str] = {
    "zero_copy_body": "OPT_ZERO_COPY_BODY",
    "direct_response": "OPT_DIRECT_RESPONSE",
    "scope_cache": "OPT_SCOPE_CACHE",
    "header_names": "OPT_HEADER_NAMES",
    "lazy_headers": "OPT_LAZY_HEADERS",
    "status_cache": "OPT_STATUS_CACHE",
    "cycle_reuse": "OPT_CYCLE_REUSE",
    "task_names": "OPT_TASK_NAMES",
}

DEFAULTS: dict[str, bool] = {
    "zero_copy_body": True,
    "direct_response": True,
    "scope_cache": True,
    "header_names": True,
    "lazy_headers": False,
    "status_cache": True,
    "cycle_reuse": True,
    "task_names": True,
}


def resolve(overrides: Mapping[str, bool] | None) -> dict[str, bool]:
    """The defaults with `overrides` applied; unknown names are an error."""
    result = dict(DEFAULTS)
    for name, value in (overrides or {}).items():
        if name not in OPTIMIZATIONS:
            known = ", ".join(OPTIMIZATIONS)
            raise ValueError(f"unknown optimization {name!r} (known: {known})")
        if not isinstance(value, bool):
            raise ValueError(f"optimization {name!r} must be True or False, got {value!r}")
        result[name] = value
    return result


def parse_switch(text: str) -> tuple[str, bool]:
    """'NAME=on' / 'NAME=off' (also true/false, 1/0, yes/no) from the command line."""
    name, sep, value = text.partition("=")
    value = value.strip().lower()
    if not sep or value not in ("on", "off", "true", "false", "1", "0", "yes", "no"):
        raise ValueError(f"expected NAME=on|off, got {text!r}")
    resolve({name.strip(): True})  # validates the name
    return name.strip(), value in ("on", "true", "1", "yes")


def bits(switches: Mapping[str, bool]) -> int:
    """The C core's bit mask for a resolved set of switches."""
    from carpinus import _core

    mask = 0
    for name, on in switches.items():
        if on:
            mask |= getattr(_core, OPTIMIZATIONS[name])
    return mask
