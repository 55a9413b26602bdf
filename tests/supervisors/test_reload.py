"""--reload: a real carpinus process serving an app from tmp_path, and real file edits.

The app module answers with a version string; the test edits the file and
polls until the answer changes (bounded).  The filter rules are also checked
directly on ChangeFilter, which is a plain function of a path.
"""

from __future__ import annotations

import select
import textwrap
import time
from pathlib import Path

import pytest

from carpinus.config import Config
from carpinus.supervisors.reload import ChangeFilter, FileWatcher, watched_directories
from tests.support.clients import RawClient
from tests.support.processes import ServerProcess, Spawner, child_pids, http_get
from tests.support.waiting import wait_for

BOOT = 60.0

# Real processes on a possibly loaded machine: the waits above are bounded by
# BOOT, so the test as a whole needs more than pytest's default 60 s.
pytestmark = pytest.mark.timeout(300)


def write_app(directory: Path, version: str, extra: str = "") -> None:
    (directory / "versioned.py").write_text(textwrap.dedent(f'''
        {extra}
        async def app(scope, receive, send):
            if scope["type"] != "http":
                return
            await send({{"type": "http.response.start", "status": 200, "headers": []}})
            await send({{"type": "http.response.body", "body": b"{version}"}})
    '''))


def body(port: int) -> bytes | None:
    try:
        with RawClient("127.0.0.1", port, 10) as client:
            return client.request("GET", "/", headers=[("Connection", "close")]).body
    except (OSError, EOFError):
        return None


def start_reloading(spawn: Spawner, directory: Path, *args: str) -> ServerProcess:
    server = spawn.start("versioned:app", "--app-dir", str(directory), "--reload",
                         "--reload-dir", str(directory), *args)
    assert server.wait_for_output("ready.", timeout=BOOT), server.output
    assert server.wait_for_output("Will watch for changes", timeout=10), server.output
    return server


def test_reload_picks_up_an_edited_file(spawn: Spawner, tmp_path: Path) -> None:
    """Editing the app module restarts the worker; the next answers come from the new code."""
    write_app(tmp_path, "v1")
    server = start_reloading(spawn, tmp_path)
    assert server.port is not None
    assert body(server.port) == b"v1"
    first = child_pids(server.pid)
    # A different length too: a .pyc is reused when the source's size and
    # mtime (whole seconds) match, and both edits may fall in one second.
    write_app(tmp_path, "v2-new")
    wait_for(lambda: body(server.port) == b"v2-new", BOOT, interval=0.2,
             detail=lambda: server.output)
    assert "versioned.py" in server.output and "Reloading" in server.output
    wait_for(lambda: child_pids(server.pid).isdisjoint(first), 30, interval=0.05)
    assert server.stop() == 0


def test_reload_survives_a_broken_edit(spawn: Spawner, tmp_path: Path) -> None:
    """A syntax error in an edit: the old worker keeps serving, the error is logged, and
    the next good edit is picked up."""
    write_app(tmp_path, "v1")
    server = start_reloading(spawn, tmp_path)
    assert server.port is not None
    (tmp_path / "versioned.py").write_text("def broken(:\n")
    assert server.wait_for_output("failed to start", timeout=BOOT), server.output
    assert body(server.port) == b"v1"
    write_app(tmp_path, "v3-fixed")
    wait_for(lambda: body(server.port) == b"v3-fixed", BOOT, interval=0.2,
             detail=lambda: server.output)
    assert server.stop() == 0


def test_reload_include_and_exclude(spawn: Spawner, tmp_path: Path) -> None:
    """Only files passing --reload-include/--reload-exclude trigger a reload.

    notes.txt is included, skipped.py is excluded: editing skipped.py and then
    notes.txt makes exactly one reload, whose log names notes.txt only.
    """
    write_app(tmp_path, "v1")
    (tmp_path / "notes.txt").write_text("one")
    (tmp_path / "skipped.py").write_text("x = 1\n")
    server = start_reloading(spawn, tmp_path, "--reload-include", "*.txt",
                             "--reload-exclude", "skipped.py")
    assert server.port is not None
    (tmp_path / "skipped.py").write_text("x = 2\n")
    (tmp_path / "notes.txt").write_text("two")
    assert server.wait_for_output("Reloading", timeout=BOOT), server.output
    assert server.wait_for_output("replaces worker", timeout=BOOT), server.output
    reloads = [line for line in server.output.splitlines() if "Reloading" in line]
    assert len(reloads) == 1, reloads
    assert "notes.txt" in reloads[0] and "skipped.py" not in reloads[0]
    assert body(server.port) == b"v1"
    assert server.stop() == 0


# -- the filter on its own -------------------------------------------------------


def test_default_filter_watches_python_files_only() -> None:
    check = ChangeFilter([], [])
    assert check(Path("/src/app/main.py"))
    assert not check(Path("/src/app/notes.txt"))
    assert not check(Path("/src/app/.hidden.py"))
    assert not check(Path("/src/app/main.pyc"))


def test_filter_include_and_exclude_patterns(tmp_path: Path) -> None:
    excluded = tmp_path / "generated"
    excluded.mkdir()
    check = ChangeFilter(["*.html", "templates/*.txt"], ["test_*.py", str(excluded)])
    assert check(tmp_path / "page.html")
    assert check(tmp_path / "templates" / "mail.txt")
    assert not check(tmp_path / "other" / "mail.txt")
    assert not check(tmp_path / "test_app.py")
    assert check(tmp_path / "app.py")
    assert not check(excluded / "models.py")


def test_filter_defaults_can_be_overridden() -> None:
    assert not ChangeFilter([], ["*.py"])(Path("/src/app.py"))
    assert ChangeFilter([".*"], [])(Path("/src/.env"))


def test_watched_directories(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    inner = tmp_path / "inner"
    inner.mkdir()
    config = Config(None, reload=True, configure_logging=False,
                    reload_dirs=[str(tmp_path), str(inner), str(tmp_path / "missing")])
    assert watched_directories(config) == [tmp_path.resolve()]
    monkeypatch.chdir(inner)
    assert watched_directories(Config(None, reload=True, configure_logging=False)) == [
        inner.resolve()
    ]


def test_reload_delay_makes_one_batch_of_nearby_changes(tmp_path: Path) -> None:
    """--reload-delay: after a batch of changes the watcher looks again only that
    much later, so two edits half a second apart come as one batch (one restart);
    without the delay watchfiles would hand them over one by one."""
    config = Config("tests.support.apps:hello", reload=True, reload_dirs=[str(tmp_path)],
                    reload_delay=2.0, configure_logging=False)
    watcher = FileWatcher.from_config(config)
    assert watcher.delay == 2.0

    def batch(timeout: float) -> list[str]:
        readable, _, _ = select.select([watcher], [], [], timeout)
        return [path.name for path in watcher.take_changes()] if readable else []

    watcher.start()
    try:
        # the first change is seen as soon as the watcher runs (it may start late)
        deadline = time.monotonic() + BOOT
        while not batch(0.2):
            assert time.monotonic() < deadline, "the watcher saw no change"
            (tmp_path / "first.py").write_text(str(time.monotonic()))
        (tmp_path / "second.py").write_text("2")
        time.sleep(0.5)  # longer than watchfiles' own grouping (50 ms steps)
        (tmp_path / "third.py").write_text("3")
        changes = batch(BOOT)
        assert {"second.py", "third.py"} <= set(changes), changes
    finally:
        watcher.stop()


def test_reload_does_not_kill_a_stopped_event_loop(spawn: Spawner, tmp_path: Path) -> None:
    """With --reload a blocked loop is a developer at a breakpoint: the worker is not
    killed for missing heartbeats (with workers it would be, see test_multiprocess)."""
    server = spawn.start("tests.support.process_apps:app", "--reload",
                         "--reload-dir", str(tmp_path), "--timeout-worker-healthcheck", "4")
    assert server.wait_for_output("ready.", timeout=BOOT), server.output
    assert server.port is not None
    response = http_get(server.port, "/block?ms=10000", timeout=60)
    assert (response.status, response.body) == (200, b"unblocked")
    assert "sent no heartbeat" not in server.output
