"""carpinus.sockets: binding (--host/--port, --uds), adopting (--fd) and closing the
listening sockets, for a single server and for a supervisor."""

from __future__ import annotations

import socket
from pathlib import Path

from carpinus.config import Config
from carpinus.sockets import bind_sockets, close_sockets
from tests.support.processes import Spawner, listening_socket


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
