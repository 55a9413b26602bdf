"""Shared fixtures: a real carpinus server on a real socket, per test."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.process_utils import Spawner
from tests.utils import ServerHandle, run_server

# uvloop and the stdlib loop use different transports: the C protocol must
# behave the same on both.  CARPINUS_TEST_LOOPS narrows the list.
LOOPS = os.environ.get("CARPINUS_TEST_LOOPS", "asyncio,uvloop").split(",")


@pytest.fixture(params=LOOPS)
def loop_name(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    if name == "uvloop":
        pytest.importorskip("uvloop")
    return name


@pytest.fixture
def serve(loop_name: str) -> Iterator[Callable[..., ServerHandle]]:
    """serve(app, **config) starts a server in a thread; stopped after the test."""
    stack: list[Any] = []

    def start(app: Any, **config: Any) -> ServerHandle:
        config.setdefault("loop", loop_name)
        cm = run_server(app, **config)
        handle = cm.__enter__()
        stack.append(cm)
        return handle

    yield start
    while stack:
        stack.pop().__exit__(None, None, None)


@pytest.fixture
def spawn() -> Iterator[Spawner]:
    """Starts server processes (tests/process_utils.py); stops them after the test."""
    spawner = Spawner()
    try:
        yield spawner
    finally:
        spawner.close()
