"""Shared fixtures: the event loops, a real carpinus server on a real socket per
test, processes, and the leg selections of `make test` (tests/support has the
helpers themselves)."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.support import tls_leg
from tests.support.processes import Spawner
from tests.support.servers import LOOPS, ServerHandle, run_server


def _loop(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    if name == "uvloop":
        pytest.importorskip("uvloop")
    return name


@pytest.fixture(params=LOOPS)
def loop_name(request: pytest.FixtureRequest) -> str:
    """Each event loop of LOOPS (CARPINUS_TEST_LOOPS), for one test."""
    return _loop(request)


@pytest.fixture(scope="module", params=LOOPS)
def module_loop_name(request: pytest.FixtureRequest) -> str:
    """The same, for a module-scoped fixture: one server per loop shared by a table."""
    return _loop(request)


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


class _ErrorRecords(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture(autouse=True)
def no_event_loop_errors() -> Iterator[None]:
    """asyncio reports what went wrong inside a loop -- a transport's fatal error,
    a callback that raised, a task exception nobody retrieved -- by logging it on
    the "asyncio" logger, and the request may still look fine from outside.  Such
    a record from a server the test started fails the test (at teardown)."""
    handler = _ErrorRecords()
    logger = logging.getLogger("asyncio")
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)
    if handler.records:
        first = handler.records[0]
        detail = first.getMessage()
        if first.exc_info and first.exc_info[1] is not None:
            detail += f": {type(first.exc_info[1]).__name__}: {first.exc_info[1]}"
        pytest.fail(f"the event loop logged {len(handler.records)} error(s); the first: "
                    f"{detail}", pytrace=False)


@pytest.fixture
def spawn() -> Iterator[Spawner]:
    """Starts carpinus (or gunicorn) processes for one test; stops every one after it."""
    spawner = Spawner()
    try:
        yield spawner
    finally:
        spawner.close()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "tcp_only(reason): the test's point is a plain-TCP property that TLS "
        "cannot show the same way; skipped in the TLS leg, with the reason")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    keep_in_process_tests(config, items)
    keep_tls_leg_tests(config, items)


def _deselect(config: pytest.Config, items: list[pytest.Item],
              keep: Callable[[pytest.Item], bool]) -> None:
    drop = [item for item in items if not keep(item)]
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = [item for item in items if keep(item)]


def keep_tls_leg_tests(config: pytest.Config, items: list[pytest.Item]) -> None:
    """With CARPINUS_TEST_TLS set (tests/support/tls_leg.py), run the tests that talk to a
    server the suite starts for them: the `serve` fixture, tests/protocols and
    the process lifecycle tests in test_server.py.  test_tls.py is left out: it
    sets TLS up itself in every leg and checks the plain case too.  A test
    marked tcp_only is skipped with its reason."""
    if not tls_leg.ENABLED:
        return
    root = config.rootpath / "tests"
    in_leg = (root / "protocols", root / "test_server.py")

    def keep(item: pytest.Item) -> bool:
        if item.path == root / "test_tls.py":
            return False
        return "serve" in getattr(item, "fixturenames", ()) or any(
            item.path == p or p in item.path.parents for p in in_leg)

    _deselect(config, items, keep)
    for item in items:
        marker = item.get_closest_marker("tcp_only")
        if marker is not None:
            reason = marker.args[0] if marker.args else marker.kwargs["reason"]
            item.add_marker(pytest.mark.skip(reason=f"TCP only: {reason}"))


def keep_in_process_tests(config: pytest.Config, items: list[pytest.Item]) -> None:
    """With CARPINUS_TEST_OPTIMIZATIONS set (the `make test` legs that rerun the
    suite with every optimization off, and with every one on), run only the
    tests whose in-process server takes that setting (tests/support/servers.py
    apply_optimizations_leg): the `serve` fixture, tests/protocols and
    tests/_core.  The rest (processes started with default options, the CLI,
    config parsing, benchmarks) would only repeat the main leg word for word."""
    if not os.environ.get("CARPINUS_TEST_OPTIMIZATIONS"):
        return
    root = config.rootpath / "tests"
    in_process = (root / "protocols", root / "_core", root / "test_server.py")

    def uses_switches(item: pytest.Item) -> bool:
        return "serve" in getattr(item, "fixturenames", ()) or any(
            item.path == p or p in item.path.parents for p in in_process)

    _deselect(config, items, uses_switches)
