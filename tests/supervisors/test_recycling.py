"""Worker recycling (--max-worker-memory, --max-worker-lifetime) and --supervise,
with real worker processes over real sockets.

A worker that leaks (the process app's /hold route keeps what it allocates)
or outlives its lifetime is replaced new-worker-first while clients keep
sending requests; none of them may fail.  The policy itself (which worker is
due, the lifetime's jitter) is also tested on its own, without processes.
"""

from __future__ import annotations

import os
import signal

import pytest

from carpinus.resident_memory import MIB, resident_bytes
from carpinus.supervisors.recycling import LIFETIME_JITTER, RecyclingPolicy
from tests.support.processes import Load, ServerProcess, Spawner, child_pids, http_get
from tests.support.waiting import wait_for

PROCESS_APP = "tests.support.process_apps:app"
BOOT = 60.0  # seconds a worker may take to start on a busy machine

pytestmark = pytest.mark.timeout(300)


def start_one_worker(spawn: Spawner, *args: str) -> tuple[ServerProcess, int]:
    """A supervisor with one worker, once that worker is ready; and the worker's pid."""
    server = spawn.start(PROCESS_APP, *args)
    assert server.wait_for_output("ready.", timeout=BOOT), server.output
    workers = wait_for(lambda: child_pids(server.pid), 10, interval=0.05,
                       detail=lambda: server.output)
    assert len(workers) == 1, workers
    return server, workers.pop()


def served_by(port: int) -> int:
    response = http_get(port, "/pid")
    assert response.status == 200
    return int(response.body)


# -- the policy --------------------------------------------------------------------


def test_lifetime_jitter_stays_within_its_share() -> None:
    policy = RecyclingPolicy(None, 100.0)
    lifetimes = [policy.lifetime() for _ in range(200)]
    assert all(lt is not None and 100.0 <= lt <= 100.0 * (1 + LIFETIME_JITTER)
               for lt in lifetimes)
    assert len(set(lifetimes)) > 1  # drawn per worker, not one value for all
    assert RecyclingPolicy(512, None).lifetime() is None


def test_due_for_lifetime_and_memory() -> None:
    own = resident_bytes(os.getpid())
    assert own is not None
    lifetime_only = RecyclingPolicy(None, 10.0)
    assert lifetime_only.due(os.getpid(), 9.0, 10.5) is None
    due = lifetime_only.due(os.getpid(), 10.6, 10.5)
    assert due is not None and due.kind == "lifetime"
    # this process is larger than 1 MiB and smaller than a terabyte
    due = RecyclingPolicy(1, None).due(os.getpid(), 0.0, None)
    assert due is not None and due.kind == "memory"
    assert f"{own // MIB}" in due.detail or f"{own // MIB + 1}" in due.detail
    assert RecyclingPolicy(1 << 20, None).due(os.getpid(), 0.0, None) is None
    assert not RecyclingPolicy(None, None).enabled


# -- real workers -------------------------------------------------------------------


def test_worker_over_the_memory_limit_is_replaced(spawn: Spawner) -> None:
    """A worker whose app leaks past --max-worker-memory is replaced gracefully: its
    successor serves, the old one exits, no request fails meanwhile."""
    # The limit sits 40 MiB above what an idle worker holds on this machine.
    probe, probe_worker = start_one_worker(spawn, "--supervise")
    idle = resident_bytes(probe_worker)
    assert idle is not None
    probe.stop()
    limit = idle // MIB + 40
    server, worker = start_one_worker(spawn, "--max-worker-memory", str(limit))
    assert server.port is not None
    assert "1 worker(s)" in server.output  # one worker, and still a supervisor
    with Load(server.port, "/pid", clients=2) as load:
        load.wait_successes_since(0, 5, timeout=30)
        assert http_get(server.port, "/hold?mib=60").status == 200
        assert server.wait_for_output(f"Recycling worker [{worker}]: its resident memory",
                                      timeout=30), server.output
        assert server.wait_for_output(f"replaces worker [{worker}]", timeout=BOOT), \
            server.output
        wait_for(lambda: worker not in child_pids(server.pid), 30, interval=0.05,
                 detail=lambda: server.output)
        assert served_by(server.port) != worker
    assert load.failures() == []
    assert server.stop() == 0
    assert "Workers replaced while serving: 1 (memory 1)." in server.output


def test_worker_lifetime_replaces_workers(spawn: Spawner) -> None:
    """--max-worker-lifetime 2 with one worker: replaced twice in a row (every ~2 s),
    with clients sending requests all along and none of them failing."""
    server, first = start_one_worker(spawn, "--max-worker-lifetime", "2")
    assert server.port is not None
    with Load(server.port, "/pid", clients=2) as load:
        assert server.wait_for_output("replaces worker", timeout=BOOT, count=2), server.output
        load.wait_successes_since(0, 5, timeout=30)
    assert load.failures() == []
    assert "(lifetime #2)" in server.output
    assert first not in child_pids(server.pid)
    assert served_by(server.port) != first
    assert server.stop() == 0


def test_supervise_restarts_a_crashed_single_worker(spawn: Spawner) -> None:
    """--supervise with one worker: kill -9 of the worker is logged, and a new one serves."""
    server, worker = start_one_worker(spawn, "--supervise")
    assert server.port is not None
    assert served_by(server.port) == worker != server.pid
    os.kill(worker, signal.SIGKILL)
    assert server.wait_for_output(f"Worker [{worker}] died (killed by SIGKILL)", timeout=15), \
        server.output
    assert server.wait_for_output("ready.", timeout=BOOT, count=2), server.output
    replacement = wait_for(lambda: child_pids(server.pid) - {worker}, 30, interval=0.05,
                           detail=lambda: server.output).pop()
    assert served_by(server.port) == replacement
    assert server.stop() == 0
    assert "Workers replaced while serving: 1 (died 1)." in server.output
