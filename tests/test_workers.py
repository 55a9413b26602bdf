"""carpinus.workers.CarpinusWorker under a real gunicorn arbiter (a subprocess).

gunicorn listens on a socket the test binds and passes as `--bind fd://N`;
readiness is a successful request, polled with a deadline.  The mapping of
gunicorn's settings onto carpinus' Config is checked on a real gunicorn
Config and Logger.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from gunicorn.config import Config as GunicornConfig
from gunicorn.glogging import Logger as GunicornLogger

from carpinus.workers import CORE_MAX_LINE, CarpinusWorker
from tests.support.process_apps import LIFESPAN_GREETING, SLEEP_MARKER, app
from tests.support.processes import ServerProcess, Spawner, child_pids, http_get, listening_socket
from tests.support.tls_leg import NO_TRUSTME
from tests.support.waiting import wait_for

WORKER_CLASS = "carpinus.workers.CarpinusWorker"
BOOT = 60.0

# Real processes on a possibly loaded machine: the waits above are bounded by
# BOOT, so the test as a whole needs more than pytest's default 60 s.
pytestmark = pytest.mark.timeout(300)


def gunicorn(spawn: Spawner, app_name: str, *args: str, wait: bool = True) -> ServerProcess:
    sock = listening_socket()
    try:
        fd = sock.fileno()
        server = spawn.popen(
            [sys.executable, "-m", "gunicorn", "-k", WORKER_CLASS, "--bind", f"fd://{fd}",
             *args, app_name],
            pass_fds=[fd], port=sock.getsockname()[1])
    finally:
        sock.close()
    if wait:
        assert server.port is not None
        wait_for(lambda: _answers(server.port), BOOT, interval=0.2, detail=lambda: server.output)
    return server


def _answers(port: int) -> bool:
    try:
        return http_get(port, "/").status == 200
    except (OSError, EOFError):
        return False


def test_gunicorn_worker_serves_requests(spawn: Spawner) -> None:
    """Two carpinus workers under gunicorn answer requests, with lifespan state."""
    server = gunicorn(spawn, "tests.support.process_apps:app", "--workers", "2")
    assert server.port is not None
    wait_for(lambda: len(child_pids(server.pid)) == 2, BOOT, interval=0.05,
             detail=lambda: server.output)
    response = http_get(server.port, "/scope")
    assert response.status == 200
    assert json.loads(response.body)["greeting"] == LIFESPAN_GREETING
    assert response.header("server") == "carpinus"
    assert int(http_get(server.port, "/pid").body) in child_pids(server.pid)
    assert "Application startup complete." in server.output
    assert server.stop() == 0


def test_gunicorn_sigterm_drains_and_runs_lifespan_shutdown(spawn: Spawner) -> None:
    """SIGTERM to gunicorn: the request in flight completes, lifespan shutdown runs."""
    server = gunicorn(spawn, "tests.support.process_apps:app", "--workers", "1",
                      "--graceful-timeout", "30")
    assert server.port is not None
    with ThreadPoolExecutor(1) as pool:
        slow = pool.submit(http_get, server.port, "/sleep?ms=2000")
        assert server.wait_for_output(SLEEP_MARKER, timeout=30), server.output
        server.send_signal(signal.SIGTERM)
        response = slow.result(timeout=60)
    assert (response.status, response.body) == (200, b"ok")
    assert server.wait(timeout=60) == 0, server.output
    assert "Application shutdown complete." in server.output


def test_gunicorn_max_requests_recycles_workers(spawn: Spawner) -> None:
    """gunicorn's --max-requests reaches carpinus: the worker stops and is replaced."""
    server = gunicorn(spawn, "tests.support.process_apps:app", "--workers", "1",
                      "--max-requests", "3")
    port = server.port
    assert port is not None
    pids: set[int] = set()

    def request() -> bool:
        # With one worker, a request may wait in the queue while gunicorn
        # starts the replacement: the generous client timeout covers it.
        response = http_get(port, "/pid", timeout=60)
        assert response.status == 200
        pids.add(int(response.body))
        return len(pids) >= 2

    wait_for(request, BOOT, interval=0.05, detail=lambda: (pids, server.output))
    assert "Maximum request limit of 3 reached" in server.output
    assert server.stop() == 0


def test_gunicorn_timeout_kills_a_blocked_worker_only(spawn: Spawner) -> None:
    """The worker notifies the arbiter from its event loop: idle workers outlive
    --timeout, a worker whose loop is blocked is killed and replaced."""
    server = gunicorn(spawn, "tests.support.process_apps:app", "--workers", "1", "--timeout", "3")
    assert server.port is not None
    first = child_pids(server.pid)
    # Over several timeouts, the idle worker keeps notifying (a negative: it
    # can only be checked by waiting).
    assert not server.wait_for_output("WORKER TIMEOUT", timeout=9), server.output
    assert child_pids(server.pid) == first
    with ThreadPoolExecutor(1) as pool:
        blocked = pool.submit(http_get, server.port, "/block?ms=60000", 90)
        assert server.wait_for_output("WORKER TIMEOUT", timeout=45), server.output
        with pytest.raises((OSError, EOFError)):
            blocked.result(timeout=45)
    wait_for(lambda: _answers(server.port), BOOT, interval=0.2, detail=lambda: server.output)
    assert child_pids(server.pid).isdisjoint(first)


def test_gunicorn_stops_when_lifespan_startup_fails(spawn: Spawner) -> None:
    """A worker whose startup fails exits with WORKER_BOOT_ERROR: gunicorn halts (exit 3)."""
    server = gunicorn(spawn, "tests.support.process_apps:startup_failed_app", "--workers", "1",
                      wait=False)
    assert server.wait(timeout=BOOT) == 3, server.output
    assert "database unreachable" in server.output


def test_gunicorn_stops_when_the_app_cannot_be_imported(spawn: Spawner) -> None:
    server = gunicorn(spawn, "tests.support.process_apps:missing", "--workers", "1", wait=False)
    code = server.wait(timeout=BOOT)
    assert code == 4, server.output  # gunicorn's APP_LOAD_ERROR
    assert "missing" in server.output


# -- the settings mapping, on real gunicorn objects ----------------------------------


@pytest.fixture
def make_worker() -> Iterator[Callable[..., CarpinusWorker]]:
    """make_worker(**settings): a CarpinusWorker as the arbiter builds it (before fork)."""
    made: list[CarpinusWorker] = []

    def make(cls: type[CarpinusWorker] = CarpinusWorker, **settings: object) -> CarpinusWorker:
        cfg = GunicornConfig()
        for name, value in settings.items():
            cfg.set(name, value)
        worker = cls(1, os.getpid(), [], None, cfg.timeout / 2, cfg, GunicornLogger(cfg))
        worker.wsgi = app  # what init_process would have loaded
        made.append(worker)
        return worker

    yield make
    for worker in made:
        worker.tmp.close()


def test_settings_map_onto_carpinus_config(make_worker: Callable[..., CarpinusWorker]) -> None:
    worker = make_worker(keepalive=7, graceful_timeout=12, limit_request_line=1000,
                         limit_request_fields=50, limit_request_field_size=2000,
                         max_requests=100, backlog=64, threads=3)
    config = worker.carpinus_config()
    assert config.app is app
    assert config.workers == 1
    assert config.timeout_keep_alive == 7
    assert config.timeout_graceful_shutdown == 12
    assert config.limit_request_line == 1000
    assert config.limit_request_headers == 50
    assert config.limit_request_header_size == 2000
    assert config.max_requests is not None and config.max_requests >= 100
    assert config.backlog == 64
    assert config.threads == 3
    assert config.access_log is False  # gunicorn has no access log configured


def test_unlimited_and_disabled_settings(make_worker: Callable[..., CarpinusWorker]) -> None:
    """gunicorn's 0 = unlimited/disabled becomes the nearest carpinus value."""
    config = make_worker(limit_request_line=0, limit_request_field_size=0, max_requests=0,
                         keepalive=0).carpinus_config()
    assert config.limit_request_line == CORE_MAX_LINE
    assert config.limit_request_header_size == CORE_MAX_LINE
    assert config.max_requests is None
    assert 0 < config.timeout_keep_alive <= 0.1


def test_config_kwargs_override(make_worker: Callable[..., CarpinusWorker]) -> None:
    """Options gunicorn has no setting for come from a subclass' CONFIG_KWARGS."""

    class AsyncioWorker(CarpinusWorker):
        CONFIG_KWARGS = {"loop": "asyncio", "limit_concurrency": 10}

    config = make_worker(AsyncioWorker).carpinus_config()
    assert config.loop == "asyncio"
    assert config.limit_concurrency == 10


def test_ssl_ciphers_only_when_gunicorn_has_them(make_worker: Callable[..., CarpinusWorker],
                                                 tmp_path: Path) -> None:
    """gunicorn's --ciphers (default None: Python's list) maps onto ssl_ciphers
    when given; otherwise carpinus keeps Python's list too."""
    import ssl

    trustme = pytest.importorskip("trustme", reason=NO_TRUSTME)

    cert = trustme.CA().issue_cert("127.0.0.1")
    certfile, keyfile = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.cert_chain_pems[0].write_to_path(str(certfile))
    cert.private_key_pem.write_to_path(str(keyfile))

    def tls12_suites(ctx: ssl.SSLContext | None) -> list[str]:
        assert ctx is not None
        return [c["name"] for c in ctx.get_ciphers() if c["protocol"] == "TLSv1.2"]

    default = make_worker(certfile=str(certfile), keyfile=str(keyfile)).carpinus_config()
    assert default.ssl_ciphers is None
    assert tls12_suites(default.ssl) == tls12_suites(ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER))
    chacha = make_worker(certfile=str(certfile), keyfile=str(keyfile),
                         ciphers="ECDHE+CHACHA20").carpinus_config()
    assert chacha.ssl_ciphers == "ECDHE+CHACHA20"
    assert tls12_suites(chacha.ssl) and all("CHACHA20" in n for n in tls12_suites(chacha.ssl))


def test_gunicorn_worker_serves_tls(spawn: Spawner, tmp_path: Path) -> None:
    """gunicorn's --certfile/--keyfile reach carpinus: HTTPS, and scope["scheme"] is https."""
    import ssl

    import httpx
    trustme = pytest.importorskip("trustme", reason=NO_TRUSTME)

    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    certfile, keyfile = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.private_key_pem.write_to_path(str(keyfile))
    for i, blob in enumerate(cert.cert_chain_pems):
        blob.write_to_path(str(certfile), append=i > 0)
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)
    server = gunicorn(spawn, "tests.support.process_apps:app", "--workers", "1",
                      "--certfile", str(certfile), "--keyfile", str(keyfile), wait=False)
    url = f"https://127.0.0.1:{server.port}/scope"

    def get() -> httpx.Response | None:
        try:
            return httpx.get(url, verify=client_context, timeout=10)
        except httpx.HTTPError:
            return None

    wait_for(lambda: get() is not None, BOOT, interval=0.2, detail=lambda: server.output)
    response = get()
    assert response is not None and response.status_code == 200
    assert json.loads(response.content)["scheme"] == "https"
    assert server.stop() == 0
