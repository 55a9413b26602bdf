"""Server lifecycle with real processes: signals, graceful drain, lifespan, timeouts, run().

Each test starts `python -m carpinus` (or a small script calling carpinus.run)
and talks to it over real sockets.  Waits are bounded and event-driven: the
server's log lines (read as they are written) tell the test when the server
is listening, when the app has started a slow request and when shutdown began.
"""

from __future__ import annotations

import json
import signal
import socket
import ssl
import subprocess
import sys
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.support.clients import RawClient, Response, build_request
from tests.support.process_apps import (
    LIFESPAN_GREETING,
    SLEEP_MARKER,
    STREAM_ENDED,
    STREAM_MARKER,
)
from tests.support.processes import ServerProcess, Spawner, listening_socket
from tests.support.response_parser import parse_response

PROCESS_APP = "tests.support.process_apps:app"
SHUTDOWN_COMPLETE = "Application shutdown complete."


def _get(server: ServerProcess, path: str) -> tuple[Response, bool]:
    """One request on its own connection: the response, and whether the server closed it."""
    with server.connect(timeout=10) as client:
        response = client.request("GET", path)
        return response, client.is_closed(timeout=5)


# -- graceful shutdown ----------------------------------------------------------


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_drains_in_flight_requests(spawn: Spawner, loop_name: str, sig: int) -> None:
    """SIGTERM/SIGINT with 20 slow requests in flight: all 20 get 200, then a clean exit.

    The process exits 0, closes each connection after its response, and runs
    lifespan shutdown after the drain.
    """
    n = 20
    server = spawn.start(PROCESS_APP, "--loop", loop_name, "--lifespan", "on")
    assert server.port is not None
    with ThreadPoolExecutor(n) as pool:
        futures = [pool.submit(_get, server, "/sleep?ms=500") for _ in range(n)]
        assert server.wait_for_output(SLEEP_MARKER, timeout=10, count=n), server.output
        server.send_signal(sig)
        results = [f.result(timeout=15) for f in futures]
    assert [(r.status, r.body) for r, _ in results] == [(200, b"ok")] * n
    assert all(closed for _, closed in results), "connections must close after the drain"
    assert server.wait(timeout=10) == 0, server.output
    log = server.output
    assert "Shutting down" in log
    assert SHUTDOWN_COMPLETE in log
    assert log.index("Shutting down") < log.index(SHUTDOWN_COMPLETE)


def test_second_sigint_forces_exit(spawn: Spawner) -> None:
    """A second SIGINT during the drain stops waiting for a 10 s request and exits at once."""
    server = spawn.start(PROCESS_APP, "--lifespan", "on")
    with server.connect() as client:
        client.send(build_request("GET", "/sleep?ms=10000"))
        assert server.wait_for_output(SLEEP_MARKER, timeout=10), server.output
        server.send_signal(signal.SIGINT)
        assert server.wait_for_output("Waiting for connections to close", timeout=5), \
            server.output
        sent = time.monotonic()
        server.send_signal(signal.SIGINT)
        server.wait(timeout=5)
        assert time.monotonic() - sent < 3.0
        with pytest.raises((EOFError, ConnectionError)):
            client.read_response()  # the slow request was abandoned, not answered


def test_forced_exit_logs_no_error(spawn: Spawner) -> None:
    """A forced quit is the operator's choice, not an app failure: no ERROR line and no
    traceback (e.g. the skipped lifespan task's CancelledError) in the log."""
    server = spawn.start(PROCESS_APP, "--lifespan", "on")
    with server.connect() as client:
        client.send(build_request("GET", "/sleep?ms=10000"))
        assert server.wait_for_output(SLEEP_MARKER, timeout=10), server.output
        server.send_signal(signal.SIGINT)
        assert server.wait_for_output("Waiting for connections to close", timeout=5), \
            server.output
        server.send_signal(signal.SIGINT)
        server.wait(timeout=5)
    assert "Traceback" not in server.output, server.output
    assert "ERROR:" not in server.output, server.output


def test_graceful_shutdown_timeout(spawn: Spawner) -> None:
    """--timeout-graceful-shutdown 0.5: a request sleeping 5 s does not hold the exit up."""
    server = spawn.start(PROCESS_APP, "--timeout-graceful-shutdown", "0.5")
    with server.connect() as client:
        client.send(build_request("GET", "/sleep?ms=5000"))
        assert server.wait_for_output(SLEEP_MARKER, timeout=10), server.output
        sent = time.monotonic()
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=5)
        assert time.monotonic() - sent < 2.0, server.output
        with pytest.raises((EOFError, ConnectionError)):
            client.read_response()
    assert "Graceful shutdown timed out" in server.output


def _read_until_closed(client: RawClient, timeout: float) -> tuple[bytes, float | None]:
    """Everything the server sends until it closes the connection, and when (monotonic
    time; None if it was still open after `timeout` seconds)."""
    data = client.buf
    client.buf = b""
    end = time.monotonic() + timeout
    while (left := end - time.monotonic()) > 0:
        client.sock.settimeout(left)
        try:
            chunk = client.sock.recv(65536)
        except TimeoutError:
            break
        except (ConnectionResetError, ssl.SSLEOFError, ssl.SSLZeroReturnError):
            return data, time.monotonic()
        if not chunk:
            return data, time.monotonic()
        data += chunk
    return data, None


def test_streaming_response_closed_at_the_default_deadline(spawn: Spawner) -> None:
    """A Server-Sent-Events response that never ends does not keep SIGTERM waiting: with
    no option given, the drain ends 5 s after the signal, the stream is closed (cut
    short: no last chunk, so the client knows it did not end normally), its app task is
    cancelled, lifespan shutdown runs and the process exits 0."""
    server = spawn.start(PROCESS_APP, "--lifespan", "on")
    with server.connect() as client:
        client.send(build_request("GET", "/stream?ms=100"))
        assert server.wait_for_output(STREAM_MARKER, timeout=10), server.output
        signalled = time.monotonic()
        server.send_signal(signal.SIGTERM)
        data, closed_at = _read_until_closed(client, timeout=15)
    assert closed_at is not None, "the stream was not closed"
    assert 4.5 <= closed_at - signalled < 7.0, closed_at - signalled
    # events kept flowing during the drain, then the response was cut short
    parsed, _ = parse_response(data, at_eof=False)
    assert parsed.status == 200 and parsed.header(b"content-type") == b"text/event-stream"
    assert not parsed.complete
    assert b"data: 40\n\n" in data, "the stream was not served during the drain"
    assert not data.endswith(b"0\r\n\r\n")
    assert server.wait(timeout=5) == 0, server.output
    log = server.output
    timed_out = log.index("Graceful shutdown timed out after 5s; closing 1 connection(s).")
    assert log.index("Waiting for connections to close, at most 5s.") < timed_out
    assert timed_out < log.index(f"{STREAM_ENDED} (cancelled)") < log.index(SHUTDOWN_COMPLETE)
    assert "Traceback" not in log and "ERROR:" not in log, log


def test_graceful_shutdown_timeout_inf_waits_for_a_stream(spawn: Spawner) -> None:
    """--timeout-graceful-shutdown inf is uvicorn's behaviour: the stream is still served
    well after the signal (until the client leaves, or a second SIGINT)."""
    server = spawn.start(PROCESS_APP, "--lifespan", "on", "--timeout-graceful-shutdown", "inf")
    with server.connect() as client:
        client.send(build_request("GET", "/stream?ms=50"))
        assert server.wait_for_output(STREAM_MARKER, timeout=10), server.output
        server.send_signal(signal.SIGTERM)
        assert server.wait_for_output("Waiting for connections to close. (CTRL+C", timeout=5)
        data, closed_at = _read_until_closed(client, timeout=1.5)
        assert closed_at is None and b"data: " in data
        assert server.proc.poll() is None
        server.send_signal(signal.SIGINT)  # the second signal: quit now
        assert server.wait(timeout=5) == 0, server.output
    assert "Graceful shutdown timed out" not in server.output


@pytest.mark.parametrize("tcp", ["port", "fd"], ids=["--port", "--fd"])
def test_new_connections_refused_after_signal(spawn: Spawner, tcp: str) -> None:
    """Once shutdown starts, the listening socket is closed: new clients cannot get in.

    A connection attempt is refused outright, or (if the kernel had already
    queued it) reset — promptly, while the request in flight is still being
    drained, not when the process finally exits.  That request still
    completes.  Checked for a port the server bound itself and for an
    inherited --fd socket.
    """
    server = spawn.start(PROCESS_APP, tcp=tcp)
    assert server.port is not None
    with ThreadPoolExecutor(1) as pool:
        in_flight = pool.submit(_get, server, "/sleep?ms=2000")
        assert server.wait_for_output(SLEEP_MARKER, timeout=10), server.output
        server.send_signal(signal.SIGTERM)
        assert server.wait_for_output("Shutting down", timeout=5), server.output
        # (over TLS the handshake already needs the server: connecting is
        # where a reset or a hang shows)
        try:
            with server.connect(timeout=1.0) as late:
                late.request("GET", "/")
                outcome = "answered"
        except ConnectionRefusedError:
            outcome = "refused"
        except (EOFError, ConnectionError, ssl.SSLError):
            outcome = "closed"
        except TimeoutError:
            outcome = "left hanging in the accept queue"
        drain_over = in_flight.done()
        response, _ = in_flight.result(timeout=10)
    assert outcome in ("refused", "closed"), outcome
    assert not drain_over, "the late client was only turned away when the drain ended"
    assert (response.status, response.body) == (200, b"ok")
    assert server.wait(timeout=5) == 0


def test_idle_connection_closed_at_shutdown(spawn: Spawner) -> None:
    """An idle keep-alive connection does not delay shutdown: it is closed at once."""
    server = spawn.start(PROCESS_APP, "--timeout-keep-alive", "30")
    with server.connect() as client:
        assert client.request("GET", "/").status == 200
        sent = time.monotonic()
        server.send_signal(signal.SIGTERM)
        assert client.is_closed(timeout=3)
        assert server.wait(timeout=3) == 0
        assert time.monotonic() - sent < 2.0


def test_request_arriving_just_after_shutdown_began_is_served(spawn: Spawner) -> None:
    """A connection the server accepted before it stopped listening, whose request head
    is still arriving, gets a moment (up to 1 s) to finish it: it is answered, with
    Connection: close, instead of being dropped.  (A worker being replaced would
    otherwise lose such connections.)"""
    server = spawn.start(PROCESS_APP)
    with server.connect() as early, server.connect() as later:
        early.send(b"GET / HTTP/1.1\r\n")  # part of a head
        # The accept queue is FIFO: once `later` is answered, `early` was accepted too.
        assert later.request("GET", "/").status == 200
        server.send_signal(signal.SIGTERM)
        assert server.wait_for_output("Shutting down", timeout=5), server.output
        early.send(b"Host: test\r\n\r\n")
        response = early.read_response()
        assert (response.status, response.body) == (200, b"Hello")
        assert response.header("connection") == "close"
        assert early.is_closed(timeout=5)
    assert server.wait(timeout=10) == 0


# -- lifespan -------------------------------------------------------------------


def test_lifespan_startup_failed(spawn: Spawner) -> None:
    """lifespan.startup.failed: the server never listens, logs why, and exits non-zero."""
    server = spawn.start("tests.support.process_apps:startup_failed_app", "--lifespan", "on",
                         wait=False)
    code = server.wait(timeout=10)
    assert code != 0
    log = server.output
    assert "database unreachable" in log
    assert "Application startup failed" in log
    assert "carpinus running on" not in log


@pytest.mark.parametrize("mode", ["on", "auto"])
def test_lifespan_startup_raises(spawn: Spawner, mode: str) -> None:
    """An app raising during startup with --lifespan on: error logged, non-zero exit.

    With --lifespan auto an exception before startup completes means "no
    lifespan support", so the server serves anyway (the uvicorn rule).
    """
    server = spawn.start("tests.support.process_apps:startup_raises_app", "--lifespan", mode,
                         wait=(mode == "auto"))
    if mode == "on":
        assert server.wait(timeout=10) != 0
        log = server.output
        assert "boom during startup" in log
        assert "Application startup failed" in log
        assert "carpinus running on" not in log
    else:
        assert "unsupported" in server.output
        with server.connect() as client:
            assert client.request("GET", "/").status == 200
        server.send_signal(signal.SIGTERM)
        assert server.wait() == 0


def test_lifespan_auto_unsupported_app_still_serves(spawn: Spawner) -> None:
    """--lifespan auto with an HTTP-only app: logs 'unsupported', serves, exits 0."""
    server = spawn.start("tests.support.process_apps:no_lifespan_app", "--lifespan", "auto")
    assert "unsupported" in server.output
    assert "Application startup failed" not in server.output
    with server.connect() as client:
        assert client.request("GET", "/").body == b"Hello"
    server.send_signal(signal.SIGTERM)
    assert server.wait() == 0
    assert SHUTDOWN_COMPLETE not in server.output  # no lifespan, no shutdown event


def test_lifespan_state_in_scope(spawn: Spawner) -> None:
    """State written during lifespan startup is in every request's scope["state"] —
    a copy per request, so a key one request adds is absent from the next."""
    server = spawn.start(PROCESS_APP, "--lifespan", "on")
    with server.connect() as client:
        first = json.loads(client.request("GET", "/scope").body)
        second = json.loads(client.request("GET", "/scope").body)
    assert first["greeting"] == LIFESPAN_GREETING
    assert first["state_keys"] == ["greeting", "shared_list"]
    assert second["state_keys"] == ["greeting", "shared_list"]  # no "added_by_request"


# -- timeouts -------------------------------------------------------------------
# The deadlines' rules and exact moments are tested without waiting, over the
# fake transport with the server's clock in the test's hand
# (tests/protocols/http/test_slow_clients.py).  These two stay on a real
# process, socket and clock, one per kind of deadline, for what only they
# show: the option reaches the core from the command line, the running
# server's own tick fires the deadline, and the TCP connection really closes.


def test_keep_alive_timeout(spawn: Spawner) -> None:
    """--timeout-keep-alive 1: an idle connection is closed after ~1 s (not before)."""
    server = spawn.start(PROCESS_APP, "--timeout-keep-alive", "1")
    with server.connect() as client:
        assert client.request("GET", "/").status == 200
        started = time.monotonic()
        assert client.is_closed(timeout=2.5)
        elapsed = time.monotonic() - started
    assert 0.8 <= elapsed <= 2.5, elapsed


def test_request_header_timeout(spawn: Spawner) -> None:
    """--timeout-request-header 1: a half-sent head gets 408 and a close within ~2.5 s;
    a client that sends nothing at all is closed in that time too (without a response)."""
    server = spawn.start(PROCESS_APP, "--timeout-request-header", "1")
    with server.connect() as partial, server.connect() as silent:
        started = time.monotonic()
        partial.send(b"GET /scope HTTP/1.1\r\nHost: x\r\nUser-Agent: sl")
        partial.sock.settimeout(2.5)
        response = partial.read_response()
        assert response.status == 408
        assert partial.is_closed(timeout=1)
        assert silent.is_closed(timeout=max(0.1, 2.5 - (time.monotonic() - started)))
        assert silent.buf == b""
        elapsed = time.monotonic() - started
    assert 0.8 <= elapsed <= 2.6, elapsed


# -- embedding --------------------------------------------------------------------


def _script(body: str) -> list[str]:
    return [sys.executable, "-c", textwrap.dedent(body)]


def test_carpinus_run_api(spawn: Spawner) -> None:
    """carpinus.run(app, ...) serves an app object with Config keywords; SIGTERM exits 0."""
    sock = listening_socket()
    try:
        fd = sock.fileno()
        server = spawn.popen(_script(f"""
            import carpinus
            from tests.support.process_apps import app
            carpinus.run(app, fd={fd}, lifespan="on", root_path="/embedded")
        """), pass_fds=[fd], port=sock.getsockname()[1])
    finally:
        sock.close()
    server.wait_ready()
    with server.connect() as client:
        body = json.loads(client.request("GET", "/scope").body)
    assert body["root_path"] == "/embedded"
    assert body["greeting"] == LIFESPAN_GREETING
    server.send_signal(signal.SIGTERM)
    assert server.wait() == 0
    assert SHUTDOWN_COMPLETE in server.output


def test_carpinus_run_exits_non_zero_on_startup_failure(spawn: Spawner) -> None:
    """carpinus.run exits the process with a non-zero code when startup fails."""
    server = spawn.popen(_script("""
        import carpinus
        carpinus.run("tests.support.process_apps:startup_failed_app", port=0, lifespan="on")
        print("run() returned")
    """))
    assert server.wait(timeout=10) != 0
    assert "Application startup failed" in server.output
    assert "run() returned" not in server.output


def test_config_server_pair_serve_coroutine(spawn: Spawner) -> None:
    """Config + Server.serve() embedded in the caller's own asyncio.run() also works."""
    sock = listening_socket()
    try:
        fd = sock.fileno()
        server = spawn.popen(_script(f"""
            import asyncio
            from carpinus import Config, Server
            from tests.support.process_apps import app

            async def main():
                server = Server(Config(app, fd={fd}, lifespan="off"))
                await server.serve()
                print("serve() returned", server.exit_code, flush=True)

            asyncio.run(main())
        """), pass_fds=[fd], port=sock.getsockname()[1])
    finally:
        sock.close()
    server.wait_ready()
    with server.connect() as client:
        assert client.request("GET", "/").body == b"Hello"
    server.send_signal(signal.SIGTERM)
    assert server.wait() == 0
    assert "serve() returned 0" in server.output


def test_port_in_use_exits_non_zero(spawn: Spawner) -> None:
    """Binding a port that is taken fails cleanly: a log line and a non-zero exit."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        server = spawn.start(PROCESS_APP, "--port", str(port), "--lifespan", "on",
                             tcp="none", wait=False)
        try:
            code = server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pytest.fail(f"server still running on a taken port:\n{server.output}")
    assert code != 0
    assert "address already in use" in server.output.lower()
    assert "Traceback" not in server.output


def test_gc_freeze_moves_startup_objects_out_of_collections() -> None:
    """--gc-freeze (the default) freezes what is alive after startup, so full
    collections while serving do not rescan modules and the app."""
    import gc

    from tests.support import apps
    from tests.support.servers import run_server

    gc.unfreeze()
    try:
        with run_server(apps.hello, gc_freeze=True) as handle:
            assert gc.get_freeze_count() > 0
            with handle.connect() as c:
                assert c.request().status == 200
    finally:
        gc.unfreeze()
    with run_server(apps.hello) as handle:  # the tests' default: off
        assert gc.get_freeze_count() == 0
