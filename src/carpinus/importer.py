"""Import an ASGI app given as "module:attribute"."""

from __future__ import annotations

import importlib
from typing import Any


class ImportFromStringError(Exception):
    """The "module:attribute" string could not be resolved."""


def import_from_string(import_str: Any) -> Any:
    """Return the object named by "package.module:attr.sub" (objects pass through)."""
    if not isinstance(import_str, str):
        return import_str
    module_str, _, attrs_str = import_str.partition(":")
    if not module_str or not attrs_str:
        raise ImportFromStringError(
            f'Import string "{import_str}" must be in format "<module>:<attribute>".'
        )
    try:
        module = importlib.import_module(module_str)
    except ModuleNotFoundError as exc:
        if exc.name != module_str:
            raise  # a module the app itself imports is missing: show the real error
        raise ImportFromStringError(f'Could not import module "{module_str}".') from exc
    instance: Any = module
    try:
        for attr in attrs_str.split("."):
            instance = getattr(instance, attr)
    except AttributeError:
        raise ImportFromStringError(
            f'Attribute "{attrs_str}" not found in module "{module_str}".'
        ) from None
    return instance
