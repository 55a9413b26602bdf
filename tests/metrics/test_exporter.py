"""--metrics-bind: real scrapes of a real server, parsed with prometheus_client's
own parser, against what the test sent.

The supervisor test is the one that matters most: two worker processes, one
scrape endpoint, totals that equal what was sent across both, and counters
that keep what a killed worker counted."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import urllib.request
from collections.abc import Callable
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from carpinus.config import Config, ConfigError
from carpinus.options import split_host_port
from tests.support import apps
from tests.support.clients import build_request
from tests.support.processes import Spawner, child_pids, free_port
from tests.support.servers import ServerHandle
from tests.support.waiting import wait_for

pytestmark = pytest.mark.timeout(300)
PROCESS_APP = "tests.support.process_apps:app"
BOOT = 60.0  # seconds two workers may take to start on a busy machine

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(port: int) -> Samples:
    """Every sample of one scrape: (name, sorted labels) -> value."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        text = r.read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


def exchange(port: int, request: bytes) -> bytes:
    """Send one request on a fresh connection; everything until the server closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    return received


def get(path: str) -> bytes:
    return build_request("GET", path, [("Connection", "close")])


def test_workers_are_summed_in_one_scrape(spawn: Spawner) -> None:
    metrics_port = free_port()
    server = spawn.start(PROCESS_APP, "--workers", "2", "--metrics-bind",
                         f"127.0.0.1:{metrics_port}")
    assert server.wait_for_output("ready.", timeout=BOOT, count=2), server.output
    workers = wait_for(lambda: len(child_pids(server.pid)) == 2 and child_pids(server.pid),
                       10, interval=0.05, detail=lambda: server.output)
    sent: list[bytes] = []
    received: list[bytes] = []
    served_by: set[int] = set()

    def send(request: bytes) -> bytes:
        answer = exchange(server.port, request)
        sent.append(request)
        received.append(answer)
        return answer

    # both workers must serve: ask /pid until each has answered once
    def both_served() -> bool:
        served_by.add(int(send(get("/pid")).partition(b"\r\n\r\n")[2]))
        return served_by == workers
    wait_for(both_served, 60, interval=0, what="both workers serving")
    pid_requests = len(sent)
    for _ in range(6):
        assert send(get("/")).startswith(b"HTTP/1.1 200 ")
    for _ in range(4):
        assert send(get("/missing")).startswith(b"HTTP/1.1 404 ")
    for _ in range(3):
        assert send(get("/raise")).startswith(b"HTTP/1.1 500 ")
    for _ in range(2):
        assert send(b"GET / HTTP/1.1\r\nHost: x\r\nBad Header: 1\r\n\r\n").startswith(
            b"HTTP/1.1 400 ")
    app_requests = pid_requests + 6 + 4 + 3
    expected = {
        ("carpinus_requests_total", ()): app_requests,
        ("carpinus_responses_total", (("status_class", "2xx"),)): pid_requests + 6,
        ("carpinus_responses_total", (("status_class", "4xx"),)): 4 + 2,
        ("carpinus_responses_total", (("status_class", "5xx"),)): 3,
        ("carpinus_request_duration_seconds_count", ()): app_requests,
        ("carpinus_app_errors_total", ()): 3,
        ("carpinus_refused_requests_total", (("reason", "bad_request"),)): 2,
        ("carpinus_connections_total", ()): len(sent),
        ("carpinus_received_bytes_total", ()): sum(map(len, sent)),
        ("carpinus_sent_bytes_total", ()): sum(map(len, received)),
        ("carpinus_workers", ()): 2,
        ("carpinus_worker_restarts_total", ()): 0,
    }

    def matches() -> Samples | None:
        samples = scrape(metrics_port)
        return samples if all(samples.get(k) == v for k, v in expected.items()) else None
    samples = wait_for(matches, 10, interval=0.1, what="the scrape to add up",
                       detail=lambda: {k: scrape(metrics_port).get(k) for k in expected})
    assert value(samples, "carpinus_responses_total", status_class="1xx") == 0
    assert value(samples, "carpinus_request_duration_seconds_bucket", le="+Inf") == app_requests
    assert value(samples, "carpinus_requests_in_flight") == 0

    # a worker killed: its counts stay, a restart is counted, a new worker serves
    victim = min(workers)
    os.kill(victim, signal.SIGKILL)
    expected[("carpinus_worker_restarts_total", ())] = 1
    wait_for(matches, 60, interval=0.1, what="the restart counted, with nothing lost",
             detail=lambda: {k: scrape(metrics_port).get(k) for k in expected})
    assert server.stop() == 0


@pytest.fixture
def serve_with_metrics(serve: Callable[..., ServerHandle],
                       ) -> Callable[..., tuple[ServerHandle, int]]:
    def start(app: Any, **options: Any) -> tuple[ServerHandle, int]:
        handle = serve(app, metrics_bind="127.0.0.1:0", **options)
        return handle, handle.server.metrics.exporter.port
    return start


def test_single_process_gauges(serve_with_metrics: Any) -> None:
    """Without a supervisor the server serves its own scrape, read live: in-flight
    requests, open and idle connections."""
    release = asyncio.Event()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["path"] == "/wait":
            await release.wait()
        await apps.send_text(send, b"ok")

    handle, port = serve_with_metrics(app)
    with handle.connect() as idle, handle.connect() as busy:
        assert idle.request("GET", "/").status == 200
        busy.send(build_request("GET", "/wait"))
        wanted = {"carpinus_requests_in_flight": 1, "carpinus_connections_open": 2,
                  "carpinus_connections_idle": 1}
        # the counters reach the registry at the server's next tick, the
        # gauges are read at the scrape: wait for both
        samples = wait_for(lambda: (s := scrape(port)) and all(
                               value(s, name) == n for name, n in wanted.items()) and
                           value(s, "carpinus_responses_total", status_class="2xx") == 1 and s,
                           10, interval=0.05, what="one request in flight, one idle connection",
                           detail=lambda: {name: value(scrape(port), name) for name in wanted})
        server_loop = next(iter(handle.state.tasks)).get_loop()  # the waiting request's
        server_loop.call_soon_threadsafe(release.set)
        assert busy.read_response().status == 200
    samples = wait_for(lambda: (s := scrape(port)) and
                       value(s, "carpinus_connections_open") == 0 and s,
                       10, interval=0.05, what="the connections closed")
    assert value(samples, "carpinus_responses_total", status_class="2xx") == 2
    assert value(samples, "carpinus_requests_in_flight") == 0


def test_metrics_off_counts_nothing_per_response(serve: Callable[..., ServerHandle]) -> None:
    """Without --metrics-bind the core skips the per-response counting."""
    handle = serve(apps.hello)
    assert handle.get("/").status_code == 200
    metrics = handle.state.metrics()
    assert metrics["responses_by_class"] == (0, 0, 0, 0, 0)
    assert sum(metrics["duration_counts"]) == 0
    assert metrics["bytes_in"] == metrics["bytes_out"] == 0
    assert handle.state.stats()["requests_total"] == 1


def test_metrics_on_counts_each_response(serve: Callable[..., ServerHandle]) -> None:
    handle = serve(apps.hello, metrics_bind="127.0.0.1:0")
    assert handle.get("/").status_code == 200
    metrics = wait_for(lambda: (m := handle.state.metrics())["responses_by_class"][1] == 1 and m)
    assert sum(metrics["duration_counts"]) == 1 and metrics["duration_sum"] > 0
    assert metrics["bytes_in"] > 0 and metrics["bytes_out"] > 0


@pytest.mark.parametrize(("bind", "problem"), [
    ("9100", "must be HOST:PORT"),
    ("127.0.0.1:70000", "must be HOST:PORT"),
    ("bad host!:9100", "has a host that must be an IP address or a host name"),
])
def test_bad_bind_is_refused_at_start(bind: str, problem: str) -> None:
    with pytest.raises(ConfigError, match=problem):
        Config(apps.hello, metrics_bind=bind, configure_logging=False)


def test_ipv6_and_any_interface_binds_are_accepted() -> None:
    assert split_host_port("[::1]:9100") == ("::1", 9100)
    assert split_host_port(":9100") == ("", 9100)


def test_busy_metrics_port_stops_the_supervisor(spawn: Spawner) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        server = spawn.start(PROCESS_APP, "--workers", "2", "--metrics-bind",
                             f"127.0.0.1:{port}", wait=False)
        assert server.wait(30) == 1
    assert "cannot listen for --metrics-bind" in server.output and "in use" in server.output


def test_busy_metrics_port_stops_a_single_server(spawn: Spawner) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        server = spawn.start(PROCESS_APP, "--metrics-bind", f"127.0.0.1:{port}", wait=False)
        assert server.wait(30) == 1
    assert f"cannot listen for --metrics-bind 127.0.0.1:{port}" in server.output
