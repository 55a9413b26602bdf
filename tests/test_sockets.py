"""carpinus.sockets: binding (--host/--port, --uds), adopting (--fd) and closing the
listening sockets, for a single server and for a supervisor."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from carpinus.config import Config, ConfigError
from carpinus.sockets import bind_sockets, close_sockets
from tests.support.processes import ServerProcess, Spawner, free_port, listening_socket
from tests.support.waiting import wait_for


def config(**options: object) -> Config:
    return Config("tests.support.process_apps:app", configure_logging=False, **options)  # type: ignore


def test_tcp_socket_is_bound_and_listening() -> None:
    sockets = bind_sockets(config(host="127.0.0.1", port=0))
    try:
        assert len(sockets) == 1
        host, port = sockets[0].getsockname()
        assert host == "127.0.0.1" and port > 0
        with socket.create_connection((host, port), timeout=10):
            pass  # the kernel completes the handshake: it is listening
    finally:
        close_sockets(config(), sockets)


def test_unix_socket_replaces_a_stale_file_and_is_removed(tmp_path: Path) -> None:
    path = tmp_path / "app.sock"
    path.write_text("stale")
    cfg = config(uds=str(path))
    sockets = bind_sockets(cfg)
    assert path.is_socket()
    close_sockets(cfg, sockets)
    assert not path.exists()


def test_inherited_descriptor_is_adopted() -> None:
    original = listening_socket()
    port = original.getsockname()[1]
    sockets = bind_sockets(config(fd=original.detach()))
    try:
        assert sockets[0].getsockname()[1] == port
    finally:
        close_sockets(config(), sockets)


def test_port_in_use_exits_1(spawn: Spawner) -> None:
    """The supervisor cannot bind: a clear error and exit code 1, no worker started."""
    with listening_socket() as taken:
        port = taken.getsockname()[1]
        server = spawn.start("tests.support.process_apps:app", "--workers", "2",
                             "--port", str(port), tcp="none", wait=False)
        assert server.wait(timeout=30) == 1, server.output
    assert "error while attempting to bind" in server.output
    assert "Started worker process" not in server.output


def test_single_server_binds_the_same_way(spawn: Spawner, tmp_path: Path) -> None:
    """Without a supervisor the server binds with the same code: a stale file at
    --uds is replaced, and the socket file is removed when the server exits."""
    path = tmp_path / "app.sock"
    path.write_text("stale")
    server = spawn.start("tests.support.process_apps:app", "--uds", str(path), tcp="none")
    assert path.is_socket()
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(10)
        sock.connect(str(path))
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert sock.recv(4096).startswith(b"HTTP/1.1 200 ")
    assert server.stop() == 0
    assert not path.exists()
    assert server.output.count("carpinus running on unix socket") == 1


# -- --reuse-port ------------------------------------------------------------------


def test_reuse_port_sets_so_reuseport() -> None:
    """Off by default; with reuse_port each bound socket has SO_REUSEPORT, so a second
    one can bind the same port."""
    plain = bind_sockets(config(host="127.0.0.1", port=0))
    try:
        assert not plain[0].getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT)
    finally:
        close_sockets(config(), plain)
    first = bind_sockets(config(host="127.0.0.1", port=0, reuse_port=True))
    port = first[0].getsockname()[1]
    try:
        assert first[0].getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT)
        second = bind_sockets(config(host="127.0.0.1", port=port, reuse_port=True))
        assert second[0].getsockname()[1] == port
        close_sockets(config(), second)
    finally:
        close_sockets(config(), first)


@pytest.mark.parametrize("where", [{"uds": "/tmp/x.sock"}, {"fd": 3}], ids=["uds", "fd"])
def test_reuse_port_only_for_host_and_port(where: dict[str, object]) -> None:
    with pytest.raises(ConfigError, match="reuse_port applies to the sockets carpinus binds"):
        config(reuse_port=True, **where)


def _pid(server: ServerProcess) -> int:
    with server.connect() as client:
        response = client.request("GET", "/pid", headers=[("Connection", "close")])
    assert response.status == 200
    return int(response.body)


def test_two_servers_on_one_port_with_reuse_port(spawn: Spawner) -> None:
    """Two carpinus processes bind the same port with --reuse-port: the kernel spreads
    new connections over both; when one stops, the other goes on serving the port."""
    port = free_port()
    first = spawn.start("tests.support.process_apps:app", "--port", str(port),
                        "--reuse-port", tcp="none")
    second = spawn.start("tests.support.process_apps:app", "--port", str(port),
                         "--reuse-port", tcp="none")
    first.port = second.port = port
    assert "error while attempting to bind" not in second.output
    seen: set[int] = set()

    def both_served() -> bool:
        seen.add(_pid(first))  # a fresh connection each time: a new source port
        return len(seen) == 2

    wait_for(both_served, 30, interval=0.01, what="connections served by both processes",
             detail=lambda: seen)
    assert seen == {first.pid, second.pid}
    assert first.stop() == 0
    assert all(_pid(second) == second.pid for _ in range(20))


def test_second_server_without_reuse_port_cannot_bind(spawn: Spawner) -> None:
    """Without --reuse-port (the default) a port in use stays an error (exit 1)."""
    port = free_port()
    spawn.start("tests.support.process_apps:app", "--port", str(port), "--reuse-port",
                tcp="none")
    late = spawn.start("tests.support.process_apps:app", "--port", str(port), tcp="none",
                       wait=False)
    assert late.wait(timeout=30) == 1, late.output
    assert "error while attempting to bind" in late.output
