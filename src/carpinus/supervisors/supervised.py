"""The worker side of the supervisor: a Server that reports to the process that started it.

carpinus.supervisors.multiprocess starts each worker as
`python -c BOOTSTRAP CONFIG_FD STATUS_FD SOCKET_FD...`.  The worker reads its
options from CONFIG_FD (a pickle the supervisor writes once), serves on the
inherited listening sockets, and writes one-byte messages on STATUS_FD, a
pipe the supervisor reads:

    READY      startup finished (lifespan included); the worker is accepting
    HEARTBEAT  once a second from the event loop: the loop (with --threads, every
               serving thread's loop) is not blocked
    STOPPING   a graceful shutdown began on the worker's own account
               (--max-requests, or the supervisor disappeared)

End-of-file on the pipe tells the supervisor the worker has exited.
"""

from __future__ import annotations

import logging
import os
import pickle
import socket
import time
from typing import Any

from carpinus.config import Config, ConfigError
from carpinus.server import STARTUP_FAILURE, Server

logger = logging.getLogger("carpinus.error")

READY = b"r"
HEARTBEAT = b"h"
STOPPING = b"s"
HEARTBEAT_INTERVAL = 1.0  # seconds

# Run by a fresh interpreter.  sys.path is made the supervisor's before the
# first carpinus import, so the worker finds carpinus and the app exactly
# where the supervisor would.
BOOTSTRAP = """\
import os, pickle, sys
with os.fdopen(int(sys.argv[1]), "rb") as f:
    sys.path[:], options = pickle.load(f)
from carpinus.supervisors.supervised import main
sys.exit(main(options, sys.argv[2:]))
"""


class SupervisedServer(Server):
    """A Server that tells its supervisor when it is ready, alive, and stopping."""

    def __init__(self, config: Config, status_fd: int) -> None:
        super().__init__(config)
        self.status_fd = status_fd
        self.supervisor_pid = os.getppid()
        self._last_heartbeat = 0.0

    def open_metrics(self) -> Any:
        # The supervisor serves the scrape; we publish into its directory.
        from carpinus.metrics.exporter import WORKER_METRICS_DIR_ENV, WorkerPublisher

        return WorkerPublisher(os.environ[WORKER_METRICS_DIR_ENV])

    def _log_listening(self, sock: socket.socket) -> None:
        # The supervisor logged the address once; N copies would only be noise.
        logger.debug("Worker [%d] accepting on %s", os.getpid(), sock.getsockname())

    async def main_loop(self) -> None:
        self._tell(READY)
        self._last_heartbeat = time.monotonic()
        await super().main_loop()

    def on_tick(self) -> None:
        super().on_tick()
        now = time.monotonic()
        # (with --threads, only while every serving loop turns too: a blocked
        # loop is what the supervisor's healthcheck is there to catch)
        if (now - self._last_heartbeat >= HEARTBEAT_INTERVAL
                and self.loops_responsive(HEARTBEAT_INTERVAL)):
            self._last_heartbeat = now
            self._tell(HEARTBEAT)
        if os.getppid() != self.supervisor_pid and not self.should_exit:
            # Killed supervisors cannot stop their workers: stop on our own
            # rather than serve unsupervised forever.
            logger.warning(
                "Supervisor process [%d] is gone; stopping worker [%d].",
                self.supervisor_pid,
                os.getpid(),
            )
            self.should_exit = True

    async def shutdown(self) -> None:
        self._tell(STOPPING)
        await super().shutdown()

    def _tell(self, message: bytes) -> None:
        try:
            os.write(self.status_fd, message)
        except BlockingIOError:
            pass  # the supervisor is behind on reading; the next heartbeat will do
        except OSError:
            self.should_exit = True  # the pipe is broken: the supervisor is gone


def main(options: bytes, argv: list[str]) -> int:
    """Entry point of a worker process (see BOOTSTRAP); returns its exit code."""
    status_fd, *socket_fds = (int(arg) for arg in argv)
    # Neither the status pipe nor the listeners may leak into processes the
    # app starts: a grandchild holding the pipe would hide this worker's exit.
    os.set_inheritable(status_fd, False)
    os.set_blocking(status_fd, False)
    sockets = [socket.socket(fileno=fd) for fd in socket_fds]
    for sock in sockets:
        sock.set_inheritable(False)
    try:
        config = Config(**pickle.loads(options))
    except ConfigError as exc:  # pragma: no cover - the supervisor validated the same options
        logging.getLogger("carpinus.error").error("%s", exc)
        return STARTUP_FAILURE
    server = SupervisedServer(config, status_fd)
    try:
        return server.run(sockets=sockets)
    except KeyboardInterrupt:
        # Ctrl+C reaches every process of the terminal's group; a worker
        # interrupted before its signal handlers were in place just exits.
        return 1
