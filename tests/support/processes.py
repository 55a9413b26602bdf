"""Run carpinus as a real process: start it, read its log as it is written, stop it.

Every wait here is bounded.  Readiness is the log line "carpinus running on"
(read by a thread as the child writes it), never a sleep.  Processes are
stopped by PID: SIGTERM, then SIGKILL after a timeout.
"""

from __future__ import annotations

import os
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tests.support import tls_leg
from tests.support.clients import RawClient, Response, http_client
from tests.support.waiting import wait_for

if TYPE_CHECKING:
    import httpx

REPO = Path(__file__).resolve().parents[2]  # the project root
START_TIMEOUT = 15.0
STOP_TIMEOUT = 5.0
READY_LINE = "carpinus running on"
CONSOLE_SCRIPT = Path(sys.executable).parent / "carpinus"


def child_env(**extra: str) -> dict[str, str]:
    """The environment for a child: `tests` importable, no stray CARPINUS_* options."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CARPINUS_")}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def tool_env() -> dict[str, str]:
    """The environment for a client program: without the ASan runtime that the
    sanitizer leg preloads into this process (scripts/run-asan.sh), which
    uninstrumented programs such as curl and
    chromium do not start with."""
    return {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", "ASAN_OPTIONS")}


def module_command(*args: str) -> list[str]:
    """`python -m carpinus ARGS` with the interpreter running the tests."""
    return [sys.executable, "-m", "carpinus", *args]


def free_port() -> int:
    """A TCP port that was free a moment ago (prefer passing --fd when possible)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def listening_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    return sock


@dataclass
class ServerProcess:
    """A child process whose merged stdout/stderr is collected line by line."""

    proc: subprocess.Popen[str]
    host: str = "127.0.0.1"
    port: int | None = None
    uds: str | None = None
    tls: ssl.SSLContext | None = None  # the client side, when the TLS leg made it serve HTTPS
    _lines: list[str] = field(default_factory=list)
    _eof: bool = False
    _cond: threading.Condition = field(default_factory=threading.Condition)

    def __post_init__(self) -> None:
        self._reader = threading.Thread(target=self._read, name="carpinus-log-reader",
                                        daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._cond:
                self._lines.append(line)
                self._cond.notify_all()
        with self._cond:
            self._eof = True
            self._cond.notify_all()

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.host}:{self.port}"

    @property
    def output(self) -> str:
        with self._cond:
            return "".join(self._lines)

    def wait_for_output(self, text: str, timeout: float = START_TIMEOUT, count: int = 1) -> bool:
        """True once `text` has appeared `count` times in the log; False at EOF or timeout."""

        def seen() -> int:
            return sum(line.count(text) for line in self._lines)

        with self._cond:
            self._cond.wait_for(lambda: seen() >= count or self._eof, timeout)
            return seen() >= count

    def wait_ready(self, timeout: float = START_TIMEOUT) -> None:
        if not self.wait_for_output(READY_LINE, timeout):
            raise AssertionError(
                f"server did not log {READY_LINE!r} within {timeout}s "
                f"(exit code {self.proc.poll()}); output:\n{self.output}")

    def connect(self, timeout: float = 10.0) -> RawClient:
        assert self.port is not None
        return RawClient(self.host, self.port, timeout, tls=self.tls)

    def http_client(self, **options: Any) -> httpx.Client:
        """An httpx client with base_url set to this server, trusting the TLS leg's CA."""
        return http_client(self.url, self.tls, uds=self.uds, **options)

    def send_signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def wait(self, timeout: float = STOP_TIMEOUT) -> int:
        """The exit code; raises subprocess.TimeoutExpired if it does not exit in time."""
        code = self.proc.wait(timeout)
        self._reader.join(STOP_TIMEOUT)  # the rest of the log
        return code

    def stop(self) -> int:
        """SIGTERM, then SIGKILL if it has not exited after STOP_TIMEOUT."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(STOP_TIMEOUT)
        self._reader.join(STOP_TIMEOUT)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        return self.proc.returncode


class Spawner:
    """Starts server processes for one test and stops every one of them afterwards.

    In the TLS leg, `python -m carpinus` (the default command) is given the
    session's certificate unless the test passes --ssl-certfile itself; other
    commands (scripts, gunicorn) choose their own transport.
    """

    def __init__(self) -> None:
        self.processes: list[ServerProcess] = []
        self.certificates = tls_leg.leg_certificates()

    def popen(self, command: Sequence[str], *, cwd: Path | str = REPO,
              pass_fds: Sequence[int] = (), env: dict[str, str] | None = None,
              **attrs: object) -> ServerProcess:
        proc = subprocess.Popen(
            list(command), cwd=cwd, env=env or child_env(), pass_fds=tuple(pass_fds),
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True, encoding="utf-8", errors="replace", bufsize=1)
        server = ServerProcess(proc, **attrs)  # type: ignore[arg-type]
        self.processes.append(server)
        return server

    def start(self, *args: str, command: Sequence[str] | None = None, tcp: str = "fd",
              wait: bool = True, cwd: Path | str = REPO,
              env: dict[str, str] | None = None) -> ServerProcess:
        """Run `python -m carpinus ARGS` (or `command + ARGS`) listening on 127.0.0.1.

        tcp="fd": the test binds the socket and the child inherits it (--fd);
        tcp="port": the child binds a free port itself (--port); tcp="none":
        ARGS say where to listen.
        """
        base = list(command) if command is not None else module_command()
        tls: ssl.SSLContext | None = None
        if self.certificates and command is None and "--ssl-certfile" not in args:
            args = (*args, "--ssl-certfile", self.certificates.certfile,
                    "--ssl-keyfile", self.certificates.keyfile)
            tls = self.certificates.client_context
        if tcp == "fd":
            sock = listening_socket()
            try:
                fd = sock.fileno()
                server = self.popen([*base, *args, "--fd", str(fd)], cwd=cwd, pass_fds=[fd],
                                    env=env, port=sock.getsockname()[1], tls=tls)
            finally:
                sock.close()  # only the child holds the listening socket now
        elif tcp == "port":
            port = free_port()
            server = self.popen([*base, *args, "--port", str(port)], cwd=cwd, env=env,
                                port=port, tls=tls)
        else:
            server = self.popen([*base, *args], cwd=cwd, env=env, tls=tls)
        if wait:
            server.wait_ready()
        return server

    def close(self) -> None:
        while self.processes:
            self.processes.pop().stop()


def run_cli(*args: str, command: Sequence[str] | None = None, timeout: float = 15.0,
            cwd: Path | str = REPO) -> subprocess.CompletedProcess[str]:
    """Run a command that is expected to exit by itself (--help, bad options...)."""
    base = list(command) if command is not None else module_command()
    return subprocess.run([*base, *args], cwd=cwd, env=child_env(), capture_output=True,
                          text=True, timeout=timeout, stdin=subprocess.DEVNULL)


def elapsed_until_closed(client: RawClient, timeout: float) -> float | None:
    """Seconds until the server closes `client` (EOF or reset), or None if it does not."""
    started = time.monotonic()
    return time.monotonic() - started if client.is_closed(timeout) else None


# -- process trees and load, for the supervisor tests --------------------------


def child_pids(pid: int) -> set[int]:
    """The live (not zombie) children of process `pid`, read from /proc (Linux)."""
    children = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # exited meanwhile
        # "pid (comm) state ppid ...": comm may hold spaces and parentheses
        fields = stat[stat.rindex(")") + 2:].split()
        if int(fields[1]) == pid and fields[0] != "Z":
            children.add(int(entry.name))
    return children


def http_get(port: int, path: str, timeout: float = 30.0) -> Response:
    """One GET on a fresh connection that the server is asked to close afterwards."""
    with RawClient("127.0.0.1", port, timeout) as client:
        return client.request("GET", path, headers=[("Connection", "close")])


@dataclass
class Outcome:
    started: float  # time.monotonic() just before connecting
    finished: float
    status: int | None = None  # None: the request failed (error says how)
    body: bytes = b""
    error: str = ""


class Load:
    """`clients` threads sending GET `path` on a fresh connection each, until stopped.

    Every request's outcome is kept, with monotonic start and end times, so a
    test can ask which requests failed and when they had started.
    """

    def __init__(self, port: int, path: str, clients: int, timeout: float = 30.0) -> None:
        self.port = port
        self.path = path
        self.timeout = timeout
        self.outcomes: list[Outcome] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._client, daemon=True,
                                          name=f"load-{i}") for i in range(clients)]

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(self.timeout + 5)

    def _client(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                response = http_get(self.port, self.path, self.timeout)
                outcome = Outcome(started, time.monotonic(), response.status, response.body)
            except (OSError, EOFError) as exc:
                outcome = Outcome(started, time.monotonic(), error=repr(exc))
            with self._lock:
                self.outcomes.append(outcome)

    def snapshot(self) -> list[Outcome]:
        with self._lock:
            return list(self.outcomes)

    def successes_since(self, moment: float) -> int:
        return sum(1 for o in self.snapshot() if o.started >= moment and o.status == 200)

    def wait_successes_since(self, moment: float, count: int, timeout: float) -> None:
        """Until `count` requests started at `moment` or later have succeeded."""
        wait_for(lambda: self.successes_since(moment) >= count, timeout, interval=0.05,
                 what=f"{count} successful requests", detail=self.failures)

    def failures(self) -> list[Outcome]:
        return [o for o in self.snapshot() if o.status != 200]
