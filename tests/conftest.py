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
    """Starts carpinus (or gunicorn) processes for one test; stops every one after it."""
    spawner = Spawner()
    try:
        yield spawner
    finally:
        spawner.close()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """With CARPINUS_TEST_OPTIMIZATIONS set (the `make test` leg that reruns the
    suite with every optimization off), run only the tests whose in-process
    server takes that setting: the `serve` fixture, tests/protocols and
    tests/_core.  The rest (processes started with default options, the CLI,
    config parsing, benchmarks) would only repeat the main leg word for word."""
    if not os.environ.get("CARPINUS_TEST_OPTIMIZATIONS"):
        return
    root = config.rootpath / "tests"
    in_process = (root / "protocols", root / "_core", root / "test_server.py")
    keep, drop = [], []
    for item in items:
        path = item.path
        uses_switches = "serve" in getattr(item, "fixturenames", ()) or any(
            path == p or p in path.parents for p in in_process)
        (keep if uses_switches else drop).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep
