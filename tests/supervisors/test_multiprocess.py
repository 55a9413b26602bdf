"""The supervisor and its workers, as real processes over real sockets.

`python -m carpinus --workers N` runs a supervisor that binds the socket (here
an inherited --fd) and N worker processes.  The tests find the workers as the
supervisor's children in /proc, learn which one served a request from the
`/pid` route, and follow the supervisor's log ("Worker [pid] ready.", ...)
as it is written.  Every wait polls with a deadline sized for a loaded
two-core machine; nothing asserts on speed.
"""

from __future__ import annotations

import os
import signal
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.support.clients import RawClient
from tests.support.process_apps import SLEEP_MARKER
from tests.support.processes import Load, ServerProcess, Spawner, child_env, child_pids, http_get
from tests.support.waiting import wait_for

PROCESS_APP = "tests.support.process_apps:app"
READY = "ready."
BOOT = 60.0  # seconds a set of workers may take to start on a busy machine

# Real processes on a possibly loaded machine: the waits above are bounded by
# BOOT, so the test as a whole needs more than pytest's default 60 s.
pytestmark = pytest.mark.timeout(300)
SHUTDOWN_COMPLETE = "Application shutdown complete."


def start_workers(spawn: Spawner, n: int, *args: str, env: dict[str, str] | None = None,
                  ) -> ServerProcess:
    """A supervisor with `n` workers, returned once all of them have said they are ready."""
    server = spawn.start(PROCESS_APP, "--workers", str(n), *args, env=env)
    assert server.wait_for_output(READY, timeout=BOOT, count=n), server.output
    wait_for(lambda: len(child_pids(server.pid)) == n, 10, interval=0.05,
             detail=lambda: server.output)
    return server


def served_by(port: int) -> int:
    response = http_get(port, "/pid")
    assert response.status == 200
    return int(response.body)


# -- a dying worker is replaced ------------------------------------------------------


def test_kill_9_worker_under_load(spawn: Spawner) -> None:
    """kill -9 one of two workers while 6 clients keep sending requests.

    Only requests already in flight when the kill was sent may fail (those on
    the killed worker); every request started after it succeeds, served by
    the survivor until the supervisor has started a replacement, which it
    does and logs.
    """
    server = start_workers(spawn, 2)
    assert server.port is not None
    workers = child_pids(server.pid)
    victim = min(workers)
    with Load(server.port, "/sleep?ms=100", clients=6) as load:
        load.wait_successes_since(0, 30, timeout=60)
        os.kill(victim, signal.SIGKILL)
        killed_at = time.monotonic()
        assert server.wait_for_output(f"Worker [{victim}] died (killed by SIGKILL)",
                                      timeout=15), server.output
        wait_for(lambda: len(child_pids(server.pid) - workers) == 1, BOOT, interval=0.05,
                 detail=lambda: server.output)
        replacement = (child_pids(server.pid) - workers).pop()
        assert server.wait_for_output(f"Worker [{replacement}] ready.", timeout=BOOT), \
            server.output
        replaced_at = time.monotonic()
        load.wait_successes_since(replaced_at, 30, timeout=60)
    failures = load.failures()
    assert all(f.started < killed_at for f in failures), failures
    assert len(failures) <= 6, failures
    assert load.successes_since(killed_at) > 0
    assert child_pids(server.pid) == workers - {victim} | {replacement}
    assert server.stop() == 0


def test_blocked_worker_is_killed_and_replaced(spawn: Spawner) -> None:
    """A worker whose event loop is blocked past --timeout-worker-healthcheck is replaced."""
    server = start_workers(spawn, 2, "--timeout-worker-healthcheck", "5")
    assert server.port is not None
    workers = child_pids(server.pid)
    with ThreadPoolExecutor(1) as pool:
        blocked = pool.submit(http_get, server.port, "/block?ms=60000", 90)
        assert server.wait_for_output("sent no heartbeat for 5s", timeout=45), server.output
        with pytest.raises((OSError, EOFError)):
            blocked.result(timeout=45)
    wait_for(lambda: len(child_pids(server.pid)) == 2
             and len(child_pids(server.pid) & workers) == 1,
             BOOT, interval=0.05, detail=lambda: server.output)
    assert http_get(server.port, "/").status == 200


def test_workers_stop_when_the_supervisor_is_killed(spawn: Spawner) -> None:
    """kill -9 of the supervisor does not leave its workers serving on their own."""
    server = start_workers(spawn, 2)
    workers = child_pids(server.pid)
    os.kill(server.pid, signal.SIGKILL)
    try:
        assert server.wait_for_output("is gone; stopping worker", timeout=30, count=2), \
            server.output
        wait_for(lambda: not live(workers), 30, interval=0.05, detail=lambda: server.output)
    finally:
        for pid in live(workers):  # if the test failed: leave nothing running
            os.kill(pid, signal.SIGKILL)


def live(pids: set[int]) -> set[int]:
    """Those of `pids` that are running (not exited, not zombies)."""
    alive = set()
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            alive.add(pid)
    return alive


# -- graceful stop ---------------------------------------------------------------


def test_sigterm_with_50_slow_requests_in_flight(spawn: Spawner) -> None:
    """SIGTERM while 50 slow requests run on two workers: all 50 complete, each worker runs
    lifespan shutdown, the supervisor exits 0."""
    n = 50
    server = start_workers(spawn, 2, "--lifespan", "on")
    assert server.port is not None
    with ThreadPoolExecutor(n) as pool:
        futures = [pool.submit(http_get, server.port, "/sleep?ms=2000", 60) for _ in range(n)]
        assert server.wait_for_output(SLEEP_MARKER, timeout=60, count=n), server.output
        server.send_signal(signal.SIGTERM)
        results = [f.result(timeout=90) for f in futures]
    assert [(r.status, r.body) for r in results] == [(200, b"ok")] * n
    assert server.wait(timeout=30) == 0, server.output
    log = server.output
    assert log.count(SHUTDOWN_COMPLETE) == 2, log
    assert "Stopping supervisor process" in log


def test_sigint_twice_forces_workers_out(spawn: Spawner) -> None:
    """A second SIGINT stops waiting for a 60 s request: the workers quit at once."""
    server = start_workers(spawn, 2)
    assert server.port is not None
    with ThreadPoolExecutor(1) as pool:
        slow = pool.submit(http_get, server.port, "/sleep?ms=60000", 90)
        assert server.wait_for_output(SLEEP_MARKER, timeout=30), server.output
        server.send_signal(signal.SIGINT)
        assert server.wait_for_output("Waiting for connections to close", timeout=30), \
            server.output
        server.send_signal(signal.SIGINT)
        assert server.wait(timeout=30) == 0, server.output
        with pytest.raises((OSError, EOFError)):
            slow.result(timeout=30)


def test_graceful_shutdown_timeout_bounds_each_worker(spawn: Spawner) -> None:
    """--timeout-graceful-shutdown reaches the workers: a 60 s request does not hold the
    supervisor's exit up; it is cut off after the timeout."""
    server = start_workers(spawn, 2, "--timeout-graceful-shutdown", "1")
    assert server.port is not None
    with ThreadPoolExecutor(1) as pool:
        slow = pool.submit(http_get, server.port, "/sleep?ms=60000", 90)
        assert server.wait_for_output(SLEEP_MARKER, timeout=30), server.output
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=30) == 0, server.output
        with pytest.raises((OSError, EOFError)):
            slow.result(timeout=30)
    assert "Graceful shutdown timed out after 1s" in server.output


def test_new_connections_refused_during_the_drain(spawn: Spawner) -> None:
    """Once every process has closed the listening socket, new clients are refused (not
    queued until exit) while the request in flight (8 s, within the drain's bound) still
    completes."""
    server = start_workers(spawn, 2, "--timeout-graceful-shutdown", "30")
    port = server.port
    assert port is not None
    with ThreadPoolExecutor(1) as pool:
        slow = pool.submit(http_get, port, "/sleep?ms=8000", 60)
        assert server.wait_for_output(SLEEP_MARKER, timeout=30), server.output
        server.send_signal(signal.SIGTERM)
        assert server.wait_for_output("Shutting down", timeout=30, count=2), server.output
        wait_for(lambda: _refused(port), 10, interval=0.05, detail=lambda: server.output)
        assert not slow.done()
        assert slow.result(timeout=60).status == 200
    assert server.wait(timeout=30) == 0


def _refused(port: int) -> bool:
    try:
        RawClient("127.0.0.1", port, 5).close()
    except ConnectionRefusedError:
        return True
    return False


# -- SIGHUP, SIGTTIN, SIGTTOU ----------------------------------------------------


def test_sighup_replaces_workers_without_refusing_connections(spawn: Spawner) -> None:
    """SIGHUP under load: every worker is replaced one by one and not one request fails."""
    server = start_workers(spawn, 2)
    assert server.port is not None
    old = child_pids(server.pid)
    with Load(server.port, "/pid", clients=4) as load:
        load.wait_successes_since(0, 20, timeout=60)
        server.send_signal(signal.SIGHUP)
        assert server.wait_for_output("replaces worker", timeout=BOOT, count=2), server.output
        wait_for(lambda: len(child_pids(server.pid)) == 2 and not child_pids(server.pid) & old, 30,
                 interval=0.05, detail=lambda: server.output)
        done = time.monotonic()
        load.wait_successes_since(done, 20, timeout=60)
    assert load.failures() == []
    new = child_pids(server.pid)
    late = {int(o.body) for o in load.snapshot() if o.started > done + 1}
    assert late <= new, (late, new)
    assert server.stop() == 0


def test_sigttin_sigttou_change_the_worker_count(spawn: Spawner) -> None:
    """TTIN adds a worker, TTOU retires one, never below one; requests keep working."""
    server = start_workers(spawn, 2)
    assert server.port is not None

    def count_is(n: int) -> bool:
        return len(child_pids(server.pid)) == n

    server.send_signal(signal.SIGTTIN)
    assert server.wait_for_output("now 3 worker(s)", timeout=10), server.output
    assert server.wait_for_output(READY, timeout=BOOT, count=3), server.output
    wait_for(lambda: count_is(3), 10, interval=0.05, detail=lambda: server.output)
    for expected in (2, 1):
        server.send_signal(signal.SIGTTOU)
        assert server.wait_for_output(f"now {expected} worker(s)", timeout=10), server.output
        wait_for(lambda: count_is(expected), 30,  # noqa: B023
                 interval=0.05, detail=lambda: server.output)
        assert http_get(server.port, "/").status == 200
    server.send_signal(signal.SIGTTOU)
    assert server.wait_for_output("already at one worker", timeout=10), server.output
    assert count_is(1)
    assert http_get(server.port, "/").status == 200
    assert server.stop() == 0


# -- max-requests -----------------------------------------------------------------


@pytest.mark.parametrize("jitter", ["0", "3"])
def test_max_requests_recycles_workers(spawn: Spawner, jitter: str) -> None:
    """--max-requests 5: workers are recycled gracefully and no request fails."""
    server = start_workers(spawn, 2, "--max-requests", "5", "--max-requests-jitter", jitter)
    port = server.port
    assert port is not None
    served: list[int] = []

    def request() -> bool:
        served.append(served_by(port))
        return len(set(served)) >= 3  # at least one worker was replaced

    # The limit is checked on the server's tick (10 per second): go on until
    # a recycled worker shows, rather than for a fixed number of requests.
    wait_for(request, 60, interval=0.05, detail=lambda: served)
    assert "Maximum request limit of" in server.output
    assert "is stopping by itself; starting a replacement" in server.output
    assert server.stop() == 0


def test_max_requests_with_load(spawn: Spawner) -> None:
    """Recycling under concurrent load drops nothing: each worker finishes what it took."""
    server = start_workers(spawn, 2, "--max-requests", "20")
    assert server.port is not None
    with Load(server.port, "/sleep?ms=20", clients=4) as load:
        load.wait_successes_since(0, 120, timeout=120)
    assert load.failures() == []
    wait_for(lambda: len(child_pids(server.pid)) == 2, 30, interval=0.05)
    assert server.output.count("Maximum request limit of") >= 2
    assert server.stop() == 0


# -- configuration -----------------------------------------------------------------


def test_web_concurrency_sets_the_worker_count(spawn: Spawner) -> None:
    """Without --workers, $WEB_CONCURRENCY gives the number of workers (as for uvicorn)."""
    server = spawn.start(PROCESS_APP, env=child_env(WEB_CONCURRENCY="3"))
    assert server.wait_for_output(READY, timeout=BOOT, count=3), server.output
    wait_for(lambda: len(child_pids(server.pid)) == 3, 10, interval=0.05)
    assert server.stop() == 0


def test_workers_that_cannot_start_stop_the_supervisor(spawn: Spawner) -> None:
    """Lifespan startup failing in the workers: exit code 3 instead of a restart loop."""
    server = spawn.start("tests.support.process_apps:startup_failed_app", "--workers", "2",
                         "--lifespan", "on", wait=False)
    assert server.wait(timeout=BOOT) == 3, server.output
    assert "failed to start" in server.output
    assert "database unreachable" in server.output


def test_app_import_error_stops_the_supervisor(spawn: Spawner) -> None:
    server = spawn.start("tests.support.process_apps:missing", "--workers", "2", wait=False)
    assert server.wait(timeout=BOOT) == 3, server.output
    assert 'Attribute "missing" not found' in server.output


def test_one_worker_is_one_process(spawn: Spawner) -> None:
    """--workers 1 (the default) keeps the single-process server: no supervisor, no child."""
    server = spawn.start(PROCESS_APP, "--workers", "1")
    assert server.port is not None
    assert served_by(server.port) == server.pid
    assert child_pids(server.pid) == set()
    assert "supervisor" not in server.output


def test_supervisor_binds_host_and_port(spawn: Spawner) -> None:
    """Without --fd the supervisor binds --host/--port itself and logs the address once."""
    server = spawn.start(PROCESS_APP, "--workers", "2", tcp="port")
    assert server.port is not None
    assert server.wait_for_output(READY, timeout=BOOT, count=2), server.output
    assert http_get(server.port, "/").status == 200
    assert server.output.count("carpinus running on") == 1
    assert server.stop() == 0


def test_supervisor_on_unix_socket(spawn: Spawner, tmp_path: Path) -> None:
    """--uds with workers: the supervisor creates the socket file and removes it on exit."""
    path = tmp_path / "carpinus.sock"
    server = spawn.start(PROCESS_APP, "--workers", "2", "--uds", str(path), tcp="none")
    assert server.wait_for_output(READY, timeout=BOOT, count=2), server.output
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(30)
        sock.connect(str(path))
        sock.sendall(b"GET /pid HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := sock.recv(4096):
            data += chunk
    assert data.startswith(b"HTTP/1.1 200 ")
    assert server.stop() == 0
    assert not path.exists()
