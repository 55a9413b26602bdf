"""--pid PATH with real processes: the file names the process to signal, and goes away."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from carpinus.pidfile import PidFileError, pid_file
from tests.support.processes import Spawner, child_pids
from tests.support.waiting import wait_for

PROCESS_APP = "tests.support.process_apps:app"


def test_pid_file_of_a_single_server(spawn: Spawner, tmp_path: Path) -> None:
    """Without a supervisor the file holds the server's pid; SIGTERM to it removes the file."""
    path = tmp_path / "carpinus.pid"
    server = spawn.start(PROCESS_APP, "--pid", str(path))
    assert path.read_text() == f"{server.pid}\n"
    os.kill(int(path.read_text()), signal.SIGTERM)
    assert server.wait(timeout=30) == 0
    assert not path.exists()


def test_pid_file_of_a_supervisor(spawn: Spawner, tmp_path: Path) -> None:
    """With workers the file holds the supervisor's pid (the one to signal), not a worker's."""
    path = tmp_path / "carpinus.pid"
    server = spawn.start(PROCESS_APP, "--workers", "2", "--pid", str(path))
    assert server.wait_for_output("ready.", timeout=60, count=2), server.output
    pid = int(path.read_text())
    assert pid == server.pid
    wait_for(lambda: len(child_pids(pid)) == 2, 10, interval=0.05)
    os.kill(pid, signal.SIGHUP)  # the pid works for every signal the supervisor takes
    assert server.wait_for_output("replaces worker", timeout=60, count=2), server.output
    os.kill(pid, signal.SIGTERM)
    assert server.wait(timeout=30) == 0
    assert not path.exists()


def test_pid_file_naming_a_live_process_is_refused(spawn: Spawner, tmp_path: Path) -> None:
    """Two servers must not share a pid file: the second exits 1 and names the first."""
    path = tmp_path / "carpinus.pid"
    first = spawn.start(PROCESS_APP, "--pid", str(path))
    second = spawn.start(PROCESS_APP, "--pid", str(path), wait=False)
    assert second.wait(timeout=30) == 1
    assert f"names process {first.pid}, which is running" in second.output
    assert path.read_text() == f"{first.pid}\n"


def test_stale_pid_file_is_replaced(tmp_path: Path) -> None:
    """A pid file left by a process that is gone is overwritten, then removed."""
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    path = tmp_path / "stale.pid"
    path.write_text(dead.stdout)
    with pid_file(str(path)):
        assert path.read_text() == f"{os.getpid()}\n"
    assert not path.exists()


def test_unwritable_pid_file(tmp_path: Path) -> None:
    with pytest.raises(PidFileError, match="cannot write pid file"):
        with pid_file(str(tmp_path / "missing-dir" / "x.pid")):
            pass


def test_pid_file_replaced_by_someone_else_is_left_alone(tmp_path: Path) -> None:
    """On exit the file is removed only if it still holds our pid."""
    path = tmp_path / "x.pid"
    with pid_file(str(path)):
        path.write_text("1\n")
    assert path.read_text() == "1\n"
