"""Supervisor: owns the listening sockets and keeps N worker processes serving on them.

Theory of operation
-------------------
The supervisor binds the sockets (carpinus.sockets) and starts every worker
as a fresh interpreter that inherits them, plus one end of a status pipe
(carpinus.supervisors.supervised).  A fresh interpreter rather than a bare
fork(): each worker imports the app itself, so SIGHUP and --reload run the
code as it is on disk now, and the supervisor may hold threads (the file
watcher) without fork's hazards.  The supervisor never imports the app.

It sleeps in select() on three kinds of descriptors: a self-pipe that the
signal handlers wake (signal.set_wakeup_fd), each worker's status pipe, and
the file watcher's pipe (--reload).  Every wake-up runs the same steps:
handle queued signals, read status messages, reap exited workers, enforce
deadlines, and converge: start or retire workers until what runs is what is
wanted.  Nothing blocks in between, so a dead worker is replaced within one
wake-up plus its boot time, whatever else is going on.

A worker is *booting* (started, not READY yet), *serving* (READY), or
*retiring* (told to stop with SIGTERM, or it announced STOPPING by itself:
--max-requests).  The wanted state is `target` workers that are booting or
serving.  A retiring worker stops accepting at once and finishes its
requests (bounded by --timeout-graceful-shutdown) while its replacement
already serves: the shared accept queue means no connection is refused.

Rolling replacement (SIGHUP, a file change with --reload) queues the current
workers and replaces them one at a time: start a new worker, and only when it
is READY retire the old one.  If the new worker fails to start, the old ones
keep serving and the replacement is abandoned.

Recycling (carpinus.supervisors.recycling): a serving worker above
--max-worker-memory or past its --max-worker-lifetime joins the same queue,
so it is replaced like that too, new worker first.  Every replacement is
logged with its reason and counted (`replaced`, by reason: memory, lifetime,
max-requests, died, unresponsive); the counts are logged when the supervisor
stops.

Exit: SIGTERM/SIGINT retire every worker and wait for all of them (each
drains and runs lifespan shutdown); a second signal makes them quit
without waiting (SIGINT), a third kills them.  A worker that fails before it
is ever READY (app import error, lifespan startup failure) stops the
supervisor with exit code 3, as gunicorn does, since every replacement
would fail the same way; with --reload the supervisor waits for the next
change instead.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
import selectors
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from types import FrameType
from typing import TYPE_CHECKING

from carpinus.config import Config, ConfigError
from carpinus.server import STARTUP_FAILURE
from carpinus.supervisors.recycling import CHECK_INTERVAL, RecyclingPolicy
from carpinus.supervisors.reload import FileWatcher
from carpinus.supervisors.supervised import BOOTSTRAP, READY, STOPPING

if TYPE_CHECKING:  # prometheus_client is optional: imported only with --metrics-bind
    from carpinus.metrics.exporter import WorkerMetrics

logger = logging.getLogger("carpinus.error")

POLL_INTERVAL = 0.5  # seconds between deadline checks when nothing happens

SUPERVISOR_SIGNALS = tuple(
    getattr(signal, name)
    for name in ("SIGINT", "SIGTERM", "SIGHUP", "SIGTTIN", "SIGTTOU", "SIGCHLD")
    if hasattr(signal, name)
)


class WorkerProcess:
    """The supervisor's handle on one worker process."""

    def __init__(
        self, proc: subprocess.Popen[bytes], status_fd: int, replaces: WorkerProcess | None
    ) -> None:
        self.proc = proc
        self.pid = proc.pid
        self.status_fd: int | None = status_fd
        self.started = time.monotonic()
        self.last_seen = self.started
        self.ready = False
        self.retiring_since: float | None = None
        self.killed = False
        # While booting as a rolling replacement: the worker it will retire.
        self.replaces = replaces
        self.lifetime: float | None = None  # --max-worker-lifetime, jitter included
        # queued for replacement by the recycling policy: why ("memory", "lifetime")
        self.recycling: str | None = None

    @property
    def retiring(self) -> bool:
        return self.retiring_since is not None

    def send_signal(self, sig: int) -> None:
        # Popen.send_signal does nothing once the process has been reaped, so
        # a recycled pid is never signalled by mistake.
        with contextlib.suppress(ProcessLookupError):
            self.proc.send_signal(sig)

    def kill(self) -> None:
        self.killed = True
        self.send_signal(signal.SIGKILL)


def describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"


class Supervisor:
    """Runs config.workers worker processes on `sockets` until told to stop."""

    def __init__(
        self, config: Config, sockets: list[socket.socket], watcher: FileWatcher | None = None,
        metrics: WorkerMetrics | None = None,
    ) -> None:
        self.config = config
        self.metrics = metrics  # --metrics-bind: the workers publish, we serve the scrape
        self.sockets = sockets
        self.watcher = watcher
        self.target = config.workers
        self.workers: list[WorkerProcess] = []
        self.restart_queue: list[WorkerProcess] = []
        self.pending_signals: list[int] = []
        self.stop_requests = 0
        self.boot_failed = False  # with --reload: start nothing until the next change
        self.exit_code = 0
        self.recycling = RecyclingPolicy.from_config(config)
        self.next_recycling_check = 0.0
        # Workers replaced or restarted, by reason (see the module docstring).
        self.replaced: Counter[str] = Counter()
        self.selector = selectors.DefaultSelector()
        try:
            self.options = pickle.dumps((sys.path, pickle.dumps(config.arguments)))
        except (pickle.PicklingError, TypeError, AttributeError) as exc:
            raise ConfigError(f"the options cannot be sent to worker processes: {exc}") from None

    @property
    def stopping(self) -> bool:
        return self.stop_requests > 0

    # -- main loop ----------------------------------------------------------

    def run(self) -> int:
        """Supervise until every worker has stopped; returns the exit code."""
        logger.info("Started supervisor process [%d] with %d worker(s)", os.getpid(), self.target)
        wake_read, wake_write = os.pipe()
        for fd in (wake_read, wake_write):
            os.set_blocking(fd, False)
        self.selector.register(wake_read, selectors.EVENT_READ, "signal")
        previous_wakeup = signal.set_wakeup_fd(wake_write, warn_on_full_buffer=False)
        previous_handlers = {sig: signal.signal(sig, self._on_signal) for sig in SUPERVISOR_SIGNALS}
        try:
            if self.watcher is not None:
                self.watcher.start()
                self.selector.register(self.watcher.fileno(), selectors.EVENT_READ, "reload")
            self._converge()
            while self.workers or not self.stopping:
                self._wait()
                self._handle_signals()
                self._reap()
                self._check_deadlines()
                self._check_recycling()
                self._converge()
        finally:
            for worker in self.workers:  # only after an unexpected error
                worker.send_signal(signal.SIGTERM)
            for sig, handler in previous_handlers.items():
                signal.signal(sig, handler)
            signal.set_wakeup_fd(previous_wakeup)
            if self.watcher is not None:
                self.watcher.stop()
            self.selector.close()
            os.close(wake_read)
            os.close(wake_write)
        if self.replaced.total():
            counts = ", ".join(f"{reason} {n}" for reason, n in sorted(self.replaced.items())
                               if n)
            logger.info("Workers replaced while serving: %d (%s).",
                        sum(self.replaced.values()), counts)
        logger.info("Stopping supervisor process [%d]", os.getpid())
        return self.exit_code

    def _on_signal(self, sig: int, frame: FrameType | None) -> None:
        self.pending_signals.append(sig)

    def _wait(self) -> None:
        for key, _ in self.selector.select(POLL_INTERVAL):
            if key.data == "signal":
                with contextlib.suppress(BlockingIOError):
                    os.read(key.fd, 4096)  # the handlers queued the signals themselves
            elif key.data == "reload":
                assert self.watcher is not None
                changes = self.watcher.take_changes()
                if changes and not self.stopping:
                    shown = ", ".join(f"'{path}'" for path in changes)
                    logger.warning("Detected changes in %s. Reloading...", shown)
                    self._replace_all()
            else:
                self._read_status(key.data)

    # -- signals ------------------------------------------------------------

    def _handle_signals(self) -> None:
        while self.pending_signals:
            sig = self.pending_signals.pop(0)
            if sig in (signal.SIGINT, signal.SIGTERM):
                self._stop(f"Received {signal.Signals(sig).name}")
            elif sig == getattr(signal, "SIGHUP", None):
                if not self.stopping:
                    logger.info("Received SIGHUP: replacing the workers one by one.")
                    self._replace_all()
            elif sig == getattr(signal, "SIGTTIN", None):
                if not self.stopping:
                    self.target += 1
                    logger.info("Received SIGTTIN: now %d worker(s).", self.target)
            elif sig == getattr(signal, "SIGTTOU", None):
                if self.stopping:
                    pass
                elif self.target <= 1:
                    logger.info("Received SIGTTOU: already at one worker, the minimum.")
                else:
                    self.target -= 1
                    logger.info("Received SIGTTOU: now %d worker(s).", self.target)
            # SIGCHLD only wakes the loop: _reap() looks at every worker.

    def _stop(self, why: str) -> None:
        self.stop_requests += 1
        if self.stop_requests == 1:
            logger.info("%s: stopping the workers gracefully.", why)
            self.restart_queue.clear()
            for worker in self.workers:
                self._retire(worker)
            # Drop our copies of the listening sockets: once the workers have
            # closed theirs too, new clients are refused instead of queued.
            for sock in self.sockets:
                sock.close()
        elif self.stop_requests == 2:
            logger.info("%s again: workers quit without waiting for requests.", why)
            for worker in self.workers:
                worker.send_signal(signal.SIGINT)  # a draining Server forces its exit
        else:
            logger.info("%s a third time: killing the workers.", why)
            for worker in self.workers:
                worker.kill()

    def _replace_all(self) -> None:
        self.boot_failed = False
        self.restart_queue = [w for w in self.workers if not w.retiring]

    # -- worker status ------------------------------------------------------

    def _read_status(self, worker: WorkerProcess) -> None:
        if worker.status_fd is None:
            return
        try:
            data = os.read(worker.status_fd, 4096)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:  # the worker has exited (or is exiting): _reap() takes over
            self._close_status(worker)
            return
        now = time.monotonic()
        worker.last_seen = now
        if READY in data and not worker.ready:
            worker.ready = True
            logger.info("Worker [%d] ready.", worker.pid)
            old, worker.replaces = worker.replaces, None
            if old is not None and not old.retiring:
                logger.info("Worker [%d] replaces worker [%d].", worker.pid, old.pid)
                self._retire(old)
        if STOPPING in data and not worker.retiring:
            # It stops by itself (--max-requests): start its successor now
            # rather than when its last request is done.
            worker.retiring_since = now
            self.replaced["max-requests"] += 1
            logger.info("Worker [%d] is stopping by itself; starting a replacement.", worker.pid)
        # Any message, HEARTBEAT included, refreshed last_seen above.

    def _close_status(self, worker: WorkerProcess) -> None:
        if worker.status_fd is not None:
            self.selector.unregister(worker.status_fd)
            os.close(worker.status_fd)
            worker.status_fd = None

    def _reap(self) -> None:
        for worker in list(self.workers):
            code = worker.proc.poll()
            if code is None:
                continue
            if worker.status_fd is not None:
                self._read_status(worker)  # a last READY/STOPPING may be waiting
            self._close_status(worker)
            self.workers.remove(worker)
            if worker in self.restart_queue:
                self.restart_queue.remove(worker)
            self._on_exit(worker, code)
            if self.metrics is not None:
                self.metrics.worker_exited(worker.pid, restarted=not self.stopping)

    def _on_exit(self, worker: WorkerProcess, code: int) -> None:
        how = describe_exit(code)
        if worker.retiring or self.stopping:
            logger.info("Worker [%d] stopped (%s).", worker.pid, how)
            return
        if worker.replaces is not None:
            logger.error(
                "New worker [%d] failed to start (%s); worker [%d] keeps serving and the "
                "replacement is abandoned.",
                worker.pid,
                how,
                worker.replaces.pid,
            )
            if worker.replaces.recycling is not None:
                self.replaced[worker.replaces.recycling] -= 1  # counted when it began
            self.restart_queue.clear()
            return
        if not worker.ready:
            if self.watcher is not None:
                logger.error(
                    "Worker [%d] failed to start (%s); waiting for a file change to try again.",
                    worker.pid,
                    how,
                )
                self.boot_failed = True
                return
            logger.error(
                "Worker [%d] failed to start (%s); stopping, as every new worker would fail "
                "the same way.",
                worker.pid,
                how,
            )
            self.exit_code = STARTUP_FAILURE
            self._stop("A worker could not start")
            return
        if not worker.killed:  # (one the healthcheck killed is counted as unresponsive)
            self.replaced["died"] += 1
        if code == 0:
            logger.info("Worker [%d] exited; starting a replacement.", worker.pid)
        else:
            logger.error("Worker [%d] died (%s); starting a replacement.", worker.pid, how)

    def _check_deadlines(self) -> None:
        now = time.monotonic()
        limit = self.config.timeout_worker_healthcheck
        grace = self.config.timeout_graceful_shutdown
        for worker in self.workers:
            if worker.killed:
                continue
            if worker.retiring_since is not None:
                # The worker bounds its own drain by --timeout-graceful-shutdown;
                # this catches one that hangs after that (in lifespan shutdown).
                if grace is not None and now - worker.retiring_since > grace + limit:
                    logger.warning(
                        "Worker [%d] still running %.0fs after it was told to stop; killing it.",
                        worker.pid,
                        now - worker.retiring_since,
                    )
                    worker.kill()
            elif not worker.ready:
                if now - worker.started > limit:
                    logger.error(
                        "Worker [%d] did not start within %gs (--timeout-worker-healthcheck); "
                        "killing it.",
                        worker.pid,
                        limit,
                    )
                    worker.kill()
            elif self.watcher is None and now - worker.last_seen > limit:
                # (not with --reload: a breakpoint stops the loop on purpose)
                logger.error(
                    "Worker [%d] sent no heartbeat for %gs (its event loop is blocked?); "
                    "killing it.",
                    worker.pid,
                    limit,
                )
                worker.kill()
                self.replaced["unresponsive"] += 1

    def _check_recycling(self) -> None:
        """Queue the serving workers that --max-worker-memory/--max-worker-lifetime
        say are due for replacement (looked at once per CHECK_INTERVAL)."""
        now = time.monotonic()
        if not self.recycling.enabled or self.stopping or now < self.next_recycling_check:
            return
        self.next_recycling_check = now + CHECK_INTERVAL
        for worker in self.workers:
            if not worker.ready or worker.retiring or worker.recycling is not None \
                    or worker.killed:
                continue
            due = self.recycling.due(worker.pid, now - worker.started, worker.lifetime)
            if due is None:
                continue
            # Once: if its replacement cannot start, the worker keeps serving
            # (as after a failed SIGHUP) rather than a new one being tried each second.
            worker.recycling = due.kind
            self.replaced[due.kind] += 1
            logger.info("Recycling worker [%d]: %s; starting its replacement (%s #%d).",
                        worker.pid, due.detail, due.kind, self.replaced[due.kind])
            if worker not in self.restart_queue:
                self.restart_queue.append(worker)

    # -- converging on the wanted workers -------------------------------------

    def _converge(self) -> None:
        if self.stopping:
            return
        self._continue_replacement()
        active = [w for w in self.workers if not w.retiring]
        # A booting replacement and the live worker it will retire hold one slot.
        replaced = {w.replaces for w in active if w.replaces is not None}
        slots = len([w for w in active if w not in replaced])
        if not self.boot_failed:
            while slots < self.target:
                if self._spawn() is None:
                    break  # could not start a process now; retried on the next wake-up
                slots += 1
        if slots > self.target:
            # SIGTTOU: retire the oldest workers that are not part of a replacement.
            candidates = [w for w in active if w not in replaced and w.replaces is None]
            for worker in sorted(candidates, key=lambda w: w.started)[: slots - self.target]:
                logger.info("Retiring worker [%d].", worker.pid)
                self._retire(worker)

    def _continue_replacement(self) -> None:
        """Rolling replacement: one new worker at a time, each retiring one old worker."""
        if any(w.replaces is not None for w in self.workers) or self.boot_failed:
            return  # one is booting already
        while self.restart_queue:
            old = self.restart_queue.pop(0)
            if old in self.workers and not old.retiring:
                self._spawn(replaces=old)
                return
        # queue empty: replacement complete (or nothing to replace)

    def _retire(self, worker: WorkerProcess) -> None:
        if worker.retiring:
            return
        worker.retiring_since = time.monotonic()
        worker.send_signal(signal.SIGTERM)

    def _spawn(self, replaces: WorkerProcess | None = None) -> WorkerProcess | None:
        status_read, status_write = os.pipe()
        options_read, options_write = os.pipe()
        socket_fds = [sock.fileno() for sock in self.sockets]
        command = [sys.executable, "-c", BOOTSTRAP, str(options_read), str(status_write)]
        command += [str(fd) for fd in socket_fds]
        try:
            proc = subprocess.Popen(
                command, pass_fds=(options_read, status_write, *socket_fds),
                # --reload is for development: the worker shares the terminal,
                # so breakpoint() works in the app.
                stdin=None if self.watcher is not None else subprocess.DEVNULL,
                env=self.metrics.worker_environment() if self.metrics is not None else None,
            )
        except OSError as exc:
            logger.error("Cannot start a worker process: %s", exc)
            for fd in (status_read, status_write, options_read, options_write):
                os.close(fd)
            return None
        os.close(options_read)  # the worker's ends
        os.close(status_write)
        try:
            os.write(options_write, self.options)  # far below a pipe's capacity
        except BrokenPipeError:
            pass  # it died at once; _reap() reports it
        finally:
            os.close(options_write)
        os.set_blocking(status_read, False)
        worker = WorkerProcess(proc, status_read, replaces)
        worker.lifetime = self.recycling.lifetime()
        self.selector.register(status_read, selectors.EVENT_READ, worker)
        self.workers.append(worker)
        logger.info("Started worker process [%d]", worker.pid)
        return worker

