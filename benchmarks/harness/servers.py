"""The servers under test: one line each, and how to run one.

A server is a command template plus what it needs.  Every server runs ONE
worker process on the host given, pinned with taskset to the server CPUs; the
three of the free-threaded comparison are the exception, with two event loops
each (two threads of one process, or two worker processes).
Placeholders in a template:

    {python}   the interpreter running the benchmark (so peers come from its venv)
    {host}     127.0.0.1
    {port}     a port that was free a moment before the start
    {app}      the ASGI app, "module:attribute"
    {apps}     benchmarks/apps, for the ceiling programs
    {workdir}  a fresh temporary directory for this start (configs, pid files, logs)

Processes are started in a session of their own and stopped by their PID:
SIGTERM, then SIGKILL after a timeout.  Servers that fork a worker (granian,
gunicorn, hypercorn, carpinus --workers) are stopped through the PID we started; whatever is left
in the process group that PID leads (ours, made at start) is killed last.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from harness import h2c, nginx
from harness.requirements import (
    CARPINUS,
    GRANIAN,
    GUNICORN,
    GUNICORN_H1C,
    HTTPTOOLS,
    HYPERCORN,
    NGINX,
    UVICORN,
    UVLOOP,
    WEBSOCKETS,
    WSPROTO,
    ZTTP,
    Requirement,
)

HOST = "127.0.0.1"
APPS_DIR = Path(__file__).resolve().parent.parent / "apps"
START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0
POLL_INTERVAL = 0.05
LOG_TAIL_LINES = 30

Prepare = Callable[[Path, str, int], None]


@dataclass(frozen=True)
class ServerSpec:
    command: str
    needs: tuple[Requirement, ...]
    # A ceiling answers a fixed response without an ASGI app: it shows the
    # limit of the machine and loop, it is not a peer.
    ceiling: bool = False
    # Writes files the command reads (nginx.conf) into the work directory.
    prepare: Prepare | None = None
    # Serves HTTP/2 only, so readiness is polled over h2c (granian --http 2
    # does not answer HTTP/1.1 at all).
    h2c_only: bool = False


# Adding a server is one line here.
SERVERS: dict[str, ServerSpec] = {
    "carpinus": ServerSpec("{python} -m carpinus --host {host} --port {port} --loop uvloop --no-access-log {app}", (CARPINUS, UVLOOP)),  # noqa: E501
    # asyncio's own loop: the one whose loop.sendfile() pathsend uses (uvloop has none)
    "carpinus-asyncio": ServerSpec("{python} -m carpinus --host {host} --port {port} --loop asyncio --no-access-log {app}", (CARPINUS,)),  # noqa: E501
    "uvicorn": ServerSpec("{python} -m uvicorn --host {host} --port {port} --workers 1 --http httptools --loop uvloop --no-access-log {app}", (UVICORN, HTTPTOOLS, UVLOOP)),  # noqa: E501
    # uvicorn's two classic WebSocket implementations, for the WebSocket workloads
    # (plain `uvicorn` uses --ws auto: websockets-sansio)
    "uvicorn-websockets": ServerSpec("{python} -m uvicorn --host {host} --port {port} --workers 1 --http httptools --loop uvloop --ws websockets --no-access-log {app}", (UVICORN, HTTPTOOLS, UVLOOP, WEBSOCKETS)),  # noqa: E501
    "uvicorn-wsproto": ServerSpec("{python} -m uvicorn --host {host} --port {port} --workers 1 --http httptools --loop uvloop --ws wsproto --no-access-log {app}", (UVICORN, HTTPTOOLS, UVLOOP, WSPROTO)),  # noqa: E501
    "granian": ServerSpec("{python} -m granian --interface asgi --host {host} --port {port} --workers 1 --loop uvloop --no-access-log {app}", (GRANIAN, UVLOOP)),  # noqa: E501
    # The HTTP/2 peers for the h2-* workloads.  carpinus and hypercorn serve h2c
    # (prior knowledge) next to HTTP/1.1 on the same port by default; granian
    # needs --http 2 (its auto mode does not), uvicorn needs zttp.
    "granian-h2": ServerSpec("{python} -m granian --interface asgi --host {host} --port {port} --workers 1 --loop uvloop --no-access-log --http 2 {app}", (GRANIAN, UVLOOP), h2c_only=True),  # noqa: E501
    "uvicorn-zttp": ServerSpec("{python} -m uvicorn --host {host} --port {port} --workers 1 --http zttp --http2 --loop uvloop --no-access-log {app}", (UVICORN, ZTTP, UVLOOP)),  # noqa: E501
    "gunicorn": ServerSpec("{python} -m gunicorn --worker-class asgi --workers 1 --bind {host}:{port} --asgi-loop uvloop --http-parser fast --no-control-socket {app}", (GUNICORN, GUNICORN_H1C, UVLOOP)),  # noqa: E501
    "hypercorn": ServerSpec("{python} -m hypercorn --workers 1 --worker-class uvloop --bind {host}:{port} {app}", (HYPERCORN, UVLOOP)),  # noqa: E501
    "uvloop-raw": ServerSpec("{python} {apps}/uvloop_raw.py --host {host} --port {port}", (UVLOOP,), ceiling=True),  # noqa: E501
    "nginx": ServerSpec("nginx -p {workdir} -c {workdir}/nginx.conf -e {workdir}/error.log", (NGINX,), ceiling=True, prepare=nginx.write_config),  # noqa: E501
    # The free-threaded comparison (issue 16): two serving event loops each, run
    # on the interpreter that runs the runner -- a free-threaded 3.13t one with
    # PYTHON_GIL=0 for the comparison, where uvloop has no build (hence asyncio).
    # carpinus: two threads of one process, or a supervisor and two worker processes.
    "carpinus-threads2": ServerSpec("{python} -m carpinus --host {host} --port {port} --loop asyncio --threads 2 --no-access-log {app}", (CARPINUS,)),  # noqa: E501
    "carpinus-workers2": ServerSpec("{python} -m carpinus --host {host} --port {port} --loop asyncio --workers 2 --no-access-log {app}", (CARPINUS,)),  # noqa: E501
    # granian needs no option for threads: its free-threaded wheel (BUILD_GIL
    # false) always serves with MTServer, whose --workers are threads of one process,
    # each with its own asyncio loop; it refuses to start if the GIL is on.  On
    # a GIL build the same line runs a supervisor and two worker processes.
    # --runtime-mode (the Rust runtime in each worker) stays auto, as for
    # "granian": mt for ASGI, with --runtime-threads 1.
    "granian-ft2": ServerSpec("{python} -m granian --interface asgi --host {host} --port {port} --workers 2 --loop asyncio --no-access-log {app}", (GRANIAN,)),  # noqa: E501
}

# carpinus with its switches (docs/optimizations.md) set: carpinus-all-on,
# carpinus-all-off, and carpinus-no-NAME for each one.  Written out rather than
# imported so that the harness runs without carpinus installed; a smoke test
# checks that every switch of carpinus.optimizations.OPTIMIZATIONS is here.
OPTIMIZATION_NAMES = ("zero_copy_body", "direct_response", "scope_cache", "header_names",
                      "lazy_headers", "status_cache", "cycle_reuse", "task_names")


def _carpinus_with(switches: dict[str, bool]) -> ServerSpec:
    flags = " ".join(f"--opt {name}={'on' if on else 'off'}" for name, on in switches.items())
    return ServerSpec(SERVERS["carpinus"].command.replace(" {app}", f" {flags} {{app}}"),
                      (CARPINUS, UVLOOP))


SERVERS["carpinus-all-on"] = _carpinus_with(dict.fromkeys(OPTIMIZATION_NAMES, True))
SERVERS["carpinus-all-off"] = _carpinus_with(dict.fromkeys(OPTIMIZATION_NAMES, False))
for _name in OPTIMIZATION_NAMES:
    SERVERS[f"carpinus-no-{_name}"] = _carpinus_with(
        {**dict.fromkeys(OPTIMIZATION_NAMES, True), _name: False})


class ServerFailed(RuntimeError):
    """The server exited or never answered; the message carries its log tail."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def build_command(spec: ServerSpec, app: str, port: int, workdir: Path) -> list[str]:
    """The template split first, then filled, so paths with spaces stay one argument."""
    fields = {
        "python": sys.executable, "host": HOST, "port": str(port), "app": app,
        "apps": str(APPS_DIR), "workdir": str(workdir),
    }
    return [part.format(**fields) for part in shlex.split(spec.command)]


def child_env() -> dict[str, str]:
    """The benchmark apps importable, output unbuffered (the log is read on failure)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(APPS_DIR), env.get("PYTHONPATH")) if p)
    env["PYTHONUNBUFFERED"] = "1"
    return env


@dataclass
class RunningServer:
    name: str
    process: subprocess.Popen[bytes]
    port: int
    log_path: Path
    h2c_only: bool = False

    @property
    def pid(self) -> int:
        return self.process.pid

    def log_tail(self) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return "(no log)"
        return "\n".join(lines[-LOG_TAIL_LINES:])

    def wait_ready(self, timeout: float = START_TIMEOUT) -> None:
        """Poll `GET /` (over h2c for an HTTP/2-only server) until it answers 200,
        the process exits, or the deadline passes."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ServerFailed(
                    f"{self.name} exited with code {self.process.returncode} before it "
                    f"answered; its log:\n{self.log_tail()}"
                )
            if h2c.answers_200(HOST, self.port) if self.h2c_only else answers_200(self.port):
                return
            time.sleep(POLL_INTERVAL)
        raise ServerFailed(
            f"{self.name} did not answer GET / within {timeout:.0f} s; its log:\n{self.log_tail()}"
        )

    def memory(self) -> GroupMemory:
        """What every live process in the group we started holds in RAM now."""
        return group_memory(self.pid)

    def cpu_seconds(self) -> float:
        """User + system CPU time so far of every live process in the group we
        started (the server, and a supervisor's workers): what a measured run
        cost the server, which other work on the machine disturbs far less
        than requests per second."""
        return sum(group_cpu_seconds(self.pid).values())

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """SIGTERM to our PID, SIGKILL after `timeout`; then clear our process group."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                kill_group(self.pid)
                self.process.wait(timeout)
        # A forked worker may outlive its parent for a moment; the group id is
        # the PID we started, so everything in it is ours.
        deadline = time.monotonic() + timeout
        while group_alive(self.pid) and time.monotonic() < deadline:
            time.sleep(POLL_INTERVAL)
        if group_alive(self.pid):
            kill_group(self.pid)


def answers_200(port: int) -> bool:
    connection = http.client.HTTPConnection(HOST, port, timeout=2)
    try:
        connection.request("GET", "/")
        response = connection.getresponse()
        response.read()
        return response.status == 200
    except (OSError, http.client.HTTPException):
        return False
    finally:
        connection.close()


def group_stats(group_id: int) -> dict[int, list[str]]:
    """{pid: the fields of /proc/PID/stat after "pid (comm)"} of the processes
    in a process group (Linux /proc): state ppid pgrp ... utime (12th) stime (13th)."""
    found = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:  # gone meanwhile
            continue
        if int(fields[2]) == group_id:
            found[int(entry.name)] = fields
    return found


def group_cpu_seconds(group_id: int) -> dict[int, float]:
    """{pid: user + system CPU seconds} of the processes in a process group."""
    ticks = os.sysconf("SC_CLK_TCK")
    return {pid: (int(fields[11]) + int(fields[12])) / ticks
            for pid, fields in group_stats(group_id).items()}


MIB = 1 << 20


@dataclass(frozen=True)
class GroupMemory:
    """The memory of a process group's processes, summed (threads are part of
    their process).  RSS counts a page shared by several of them (the code of
    the interpreter, pages a forked child still shares) once per process; PSS
    splits each page among the processes that map it, so its sum counts every
    page once: the RAM the group costs."""

    rss_bytes: int
    pss_bytes: int
    processes: int

    @property
    def rss_mib(self) -> float:
        return self.rss_bytes / MIB

    @property
    def pss_mib(self) -> float:
        return self.pss_bytes / MIB


def proc_memory_bytes(path: str, key: str) -> int | None:
    """The bytes a "Key:   N kB" line of a /proc file gives; None when the file
    is gone (its process exited) or has no such line (a zombie has no memory)."""
    try:
        with open(path) as lines:
            for line in lines:
                if line.startswith(key):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):  # gone meanwhile, or a torn read
        return None
    return None


def group_memory(group_id: int) -> GroupMemory:
    """VmRSS (/proc/PID/status) and Pss (/proc/PID/smaps_rollup, Linux 4.14+)
    summed over the live processes of a process group.  A process that exits
    while being read, so that either number is missing, is left out of both."""
    rss = pss = processes = 0
    for pid in group_stats(group_id):
        process_rss = proc_memory_bytes(f"/proc/{pid}/status", "VmRSS:")
        process_pss = proc_memory_bytes(f"/proc/{pid}/smaps_rollup", "Pss:")
        if process_rss is None or process_pss is None:
            continue
        rss, pss, processes = rss + process_rss, pss + process_pss, processes + 1
    return GroupMemory(rss, pss, processes)


def group_alive(group_id: int) -> bool:
    try:
        os.killpg(group_id, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def kill_group(group_id: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(group_id, signal.SIGKILL)


@contextlib.contextmanager
def running(name: str, app: str, cpus: str) -> Iterator[RunningServer]:
    """Start server `name` pinned to `cpus`, wait until it answers, stop it on exit."""
    spec = SERVERS[name]
    with tempfile.TemporaryDirectory(prefix=f"carpinus-bench-{name}-") as tmp:
        workdir = Path(tmp)
        port = free_port()
        if spec.prepare is not None:
            spec.prepare(workdir, HOST, port)
        command = ["taskset", "-c", cpus, *build_command(spec, app, port, workdir)]
        log_path = workdir / "server.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                cwd=workdir, env=child_env(), start_new_session=True,
            )
        server = RunningServer(name, process, port, log_path, spec.h2c_only)
        try:
            server.wait_ready()
            yield server
        finally:
            server.stop()
