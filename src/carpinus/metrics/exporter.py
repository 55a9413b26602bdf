"""The scrape endpoint of --metrics-bind: prometheus_client's HTTP server in a
thread, and a collector that turns the summed snapshots (snapshot.py) into
metric families (docs/metrics.md lists them).

Two ways to get the numbers:

- InProcessMetrics, a single server process: each scrape reads every
  ServerState (one per serving loop, --threads N), so the numbers are exact
  and current -- each on the event loop's thread it belongs to (its methods
  are not thread-safe: without the GIL another thread's read could meet a
  connection being freed), so the exporter's thread hands the reads to the
  loops and waits;
- WorkerMetrics, the supervisor: its workers publish into files of a
  directory it made (WorkerPublisher, their side), and each scrape sums them.
"""

from __future__ import annotations

import concurrent.futures
import logging
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from prometheus_client import start_http_server
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector, CollectorRegistry

from carpinus.metrics.snapshot import (
    COUNTERS,
    DURATION_BOUNDS,
    FIELDS,
    PARSE_ERROR_STATUSES,
    STATUS_CLASSES,
    SnapshotWriter,
    file_pid,
    read_file,
    sum_snapshots,
    take,
)
from carpinus.options import split_host_port

logger = logging.getLogger("carpinus.error")

# The supervisor hands its workers the directory to publish into in this variable.
WORKER_METRICS_DIR_ENV = "CARPINUS_WORKER_METRICS_DIR"

# Why the server answered a request itself: the labels of
# carpinus_refused_requests_total and the counters they come from.
REFUSAL_REASONS = {
    "bad_request": "parse_errors_400", "uri_too_long": "parse_errors_414",
    "headers_too_large": "parse_errors_431", "not_implemented": "parse_errors_501",
    "version_not_supported": "parse_errors_505", "body_too_large": "bodies_too_large",
    "timeout": "timeouts", "overloaded": "overloaded", "internal_error": "internal_errors",
}
assert {f"parse_errors_{s}" for s in PARSE_ERROR_STATUSES} <= set(REFUSAL_REASONS.values())


# The metrics that are one snapshot field each: (kind, name, help, field).
# prometheus_client adds "_total" to a counter's name.
PLAIN_METRICS = (
    ("counter", "carpinus_requests", "Request heads received (HTTP/1.1).", "requests_total"),
    ("gauge", "carpinus_requests_in_flight", "Requests whose app is running.",
     "active_requests"),
    ("counter", "carpinus_connections", "Connections accepted (HTTP/1.1).",
     "connections_total"),
    ("gauge", "carpinus_connections_open", "Open HTTP connections.", "connections"),
    ("gauge", "carpinus_connections_idle",
     "Open HTTP connections waiting for a request, with nothing of one received.",
     "connections_idle"),
    ("counter", "carpinus_received_bytes", "Bytes read from HTTP connections (after TLS).",
     "bytes_in"),
    ("counter", "carpinus_sent_bytes", "Bytes written to HTTP connections (before TLS).",
     "bytes_out"),
    ("counter", "carpinus_app_errors",
     "Requests whose app raised or returned without completing its response.", "app_errors"),
    ("counter", "carpinus_websocket_sessions", "Connections upgraded to WebSocket.",
     "websocket_upgrades"),
    ("gauge", "carpinus_websocket_sessions_open", "Open WebSocket sessions.", "websocket_open"),
)
SUPERVISOR_METRICS = (
    ("counter", "carpinus_worker_restarts", "Worker processes that exited while the server "
     "went on (died, killed, recycled or replaced).", "restarts"),
    ("gauge", "carpinus_workers", "Worker processes serving.", "workers"),
)
FAMILIES = {"counter": CounterMetricFamily, "gauge": GaugeMetricFamily}


def metric_families(totals: Mapping[str, float],
                    supervisor: Mapping[str, float] | None) -> Iterator[Metric]:
    """The exposition of one set of summed snapshots (and, under a supervisor,
    its own numbers: restarts and workers)."""
    for kind, name, doc, field in PLAIN_METRICS:
        yield FAMILIES[kind](name, doc, value=totals[field])
    responses = CounterMetricFamily(
        "carpinus_responses", "Responses sent, by status class (the server's own answers "
        "to requests it refused included).", labels=["status_class"])
    for status_class in STATUS_CLASSES:
        responses.add_metric([status_class], totals[f"responses_{status_class}"])
    yield responses
    refused = CounterMetricFamily(
        "carpinus_refused_requests", "Requests the server answered itself (or closed on), "
        "by reason.", labels=["reason"])
    for reason, field in REFUSAL_REASONS.items():
        refused.add_metric([reason], totals[field])
    yield refused
    buckets, cumulative = [], 0.0
    for i, bound in enumerate((*DURATION_BOUNDS, float("inf"))):
        cumulative += totals[f"duration_bucket_{i}"]
        buckets.append(("+Inf" if bound == float("inf") else repr(bound), cumulative))
    yield HistogramMetricFamily(
        "carpinus_request_duration_seconds", "Time from a request's head to the last byte "
        "of the app's response.", buckets=buckets, sum_value=totals["duration_sum"])
    if supervisor is not None:
        for kind, name, doc, field in SUPERVISOR_METRICS:
            yield FAMILIES[kind](name, doc, value=supervisor[field])


class ServerCollector(Collector):
    def __init__(self, read: Callable[[], tuple[Mapping[str, float],
                                                Mapping[str, float] | None]]) -> None:
        self.read = read

    def collect(self) -> Iterator[Metric]:
        totals, supervisor = self.read()
        yield from metric_families(totals, supervisor)


class Exporter:
    """The HTTP listener: prometheus_client's WSGI server in a daemon thread.
    Binding happens here, so a busy port is an OSError at start-up."""

    def __init__(self, bind: str, collector: Collector) -> None:
        host, port = split_host_port(bind)
        registry = CollectorRegistry(auto_describe=False)
        registry.register(collector)
        try:
            self.httpd, self.thread = start_http_server(port, host or "0.0.0.0", registry)
        except OSError as exc:
            raise OSError(exc.errno, f"cannot listen for --metrics-bind {bind}: "
                                     f"{exc.strerror or exc}") from None
        self.port: int = self.httpd.server_address[1]
        logger.info("Metrics at http://%s:%d/metrics", host or "0.0.0.0", self.port)

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join()


# How long a scrape waits for the loops to read their ServerStates before it
# takes a loop's numbers of its last tick instead (a loop held up by an app
# that blocks it).
LOOP_READ_TIMEOUT = 1.0


class InProcessMetrics:
    """A single server process: each scrape reads its ServerStates, each on
    its own loop.  `servings` returns what each serving loop serves
    (carpinus.serving.LoopServing: its state, loop and last-tick snapshot)."""

    def __init__(self, bind: str, servings: Callable[[], Sequence[Any]]) -> None:
        self.servings = servings
        self.exporter = Exporter(bind, ServerCollector(lambda: (self.read(), None)))

    def read(self) -> Mapping[str, float]:
        """(The exporter's thread) the sum of a snapshot taken on each loop now,
        or of that loop's last tick's when it does not get to it in time or
        has stopped."""
        pending = []
        for serving in self.servings():
            future: concurrent.futures.Future[dict[str, float]] = concurrent.futures.Future()

            def on_loop(serving: Any = serving, future: Any = future) -> None:
                try:
                    future.set_result(take(serving.state))
                except BaseException as exc:  # handed to the scrape, which reports it
                    future.set_exception(exc)

            try:
                serving.loop.call_soon_threadsafe(on_loop)
            except (AttributeError, RuntimeError):  # no loop yet, or closed
                future.cancel()
            pending.append((serving, future))
        snapshots = []
        deadline = time.monotonic() + LOOP_READ_TIMEOUT
        for serving, future in pending:
            try:
                snapshots.append(future.result(max(0.0, deadline - time.monotonic())))
            except (concurrent.futures.TimeoutError, concurrent.futures.CancelledError):
                if serving.snapshot is not None:
                    snapshots.append(serving.snapshot)
        return sum_snapshots(snapshots)

    def publish(self, snapshots: Sequence[Mapping[str, float]]) -> None:
        pass  # read on demand; the loops' own snapshots are the fall-back

    def close(self) -> None:
        self.exporter.close()


class WorkerPublisher:
    """A worker's side: its snapshot (every serving loop's, summed), published
    into the supervisor's directory."""

    def __init__(self, directory: str) -> None:
        self.writer = SnapshotWriter(directory)

    def publish(self, snapshots: Sequence[Mapping[str, float]]) -> None:
        self.writer.publish(sum_snapshots(snapshots))

    def close(self) -> None:
        self.writer.close()


class WorkerMetrics:
    """The supervisor's side: the directory its workers publish into, the sum
    of their snapshots, and the restarts it counts.  A worker's file is
    folded into `retired` (counters only) when the supervisor reaps it, so
    counters keep what exited workers counted and the directory does not
    grow with every replacement."""

    def __init__(self, bind: str) -> None:
        shm = "/dev/shm"
        self.directory = tempfile.mkdtemp(prefix="carpinus-metrics-",
                                          dir=shm if os.path.isdir(shm) else None)
        self.retired = dict.fromkeys(COUNTERS, 0.0)
        self.restarts = 0
        self.lock = threading.Lock()  # scrapes (threads) against folding (main thread)
        try:
            self.exporter = Exporter(bind, ServerCollector(self.totals))
        except BaseException:
            shutil.rmtree(self.directory, ignore_errors=True)
            raise

    def worker_environment(self) -> dict[str, str]:
        return {**os.environ, WORKER_METRICS_DIR_ENV: self.directory}

    def totals(self) -> tuple[dict[str, float], dict[str, float]]:
        with self.lock:
            totals = dict.fromkeys(FIELDS, 0.0)
            totals.update(self.retired)
            workers = 0
            for name in os.listdir(self.directory):
                values = read_file(os.path.join(self.directory, name))
                if file_pid(name) is None or values is None:
                    continue
                workers += 1
                for field, value in values.items():
                    totals[field] += value
            return totals, {"restarts": float(self.restarts), "workers": float(workers)}

    def worker_exited(self, pid: int, restarted: bool) -> None:
        """Called when the supervisor has reaped worker `pid`: its last
        snapshot is final (it published once more after shutting down)."""
        with self.lock:
            self.restarts += restarted
            for name in os.listdir(self.directory):
                if file_pid(name) != pid:
                    continue
                path = os.path.join(self.directory, name)
                values = read_file(path)
                if values is not None:
                    for field in COUNTERS:
                        self.retired[field] += values[field]
                os.unlink(path)

    def close(self) -> None:
        self.exporter.close()
        shutil.rmtree(self.directory, ignore_errors=True)
