"""The one way the tests wait for something another thread or process does."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_for(predicate: Callable[[], T], timeout: float = 10.0, *, interval: float = 0.005,
             what: str = "condition", detail: Callable[[], object] | None = None) -> T:
    """Call `predicate` every `interval` seconds until it returns something true,
    and return that (a count, the stats that satisfied a check, True).

    After `timeout` seconds raise AssertionError naming `what`, followed by
    `detail()` when given (a process' log, the server's counters).  Poll
    in-process state at the default interval; a predicate that reads /proc or
    makes a request should poll less often (interval=0.05 or more).
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            message = f"{what} not met within {timeout} s"
            if detail is not None:
                message += f"\n{detail()}"
            raise AssertionError(message)
        time.sleep(interval)
