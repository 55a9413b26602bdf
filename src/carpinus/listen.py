"""Bind the listening sockets that a supervisor shares with its worker processes.

A single server lets asyncio bind (Server._listen).  With workers, the
supervisor binds once, before any worker exists, and every worker inherits
the same descriptors: the kernel keeps one accept queue per socket, so a
connection waits there, never refused, while a worker is being replaced
(docs/deployment.md explains why this is preferred to SO_REUSEPORT).
"""

from __future__ import annotations

import contextlib
import os
import socket

from carpinus.config import Config


def bind_sockets(config: Config) -> list[socket.socket]:
    """The sockets `config` asks for (--fd, --uds or --host/--port), listening.

    Raises OSError when an address cannot be bound.
    """
    if config.fd is not None:
        sock = socket.socket(fileno=config.fd)
        sock.listen(config.backlog)
        return [sock]
    if config.uds is not None:
        return [_bind_unix(config.uds, config.backlog)]
    return _bind_tcp(config.host, config.port, config.backlog)


def _bind_unix(path: str, backlog: int) -> socket.socket:
    with contextlib.suppress(FileNotFoundError):
        if os.path.exists(path) and not os.path.isdir(path):
            os.unlink(path)  # a stale socket file from an earlier run
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(path)
        os.chmod(path, 0o666)
        sock.listen(backlog)
    except OSError:
        sock.close()
        raise
    return sock


def _bind_tcp(host: str, port: int, backlog: int) -> list[socket.socket]:
    """One socket per address `host` resolves to, as loop.create_server does."""
    infos = socket.getaddrinfo(
        host or None, port, socket.AF_UNSPEC, socket.SOCK_STREAM, 0, socket.AI_PASSIVE
    )
    sockets: list[socket.socket] = []
    seen: set[tuple[int, object]] = set()
    try:
        for family, kind, proto, _, address in infos:
            if (family, address) in seen:
                continue
            seen.add((family, address))
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6 and hasattr(socket, "IPPROTO_IPV6"):
                # "::" and "0.0.0.0" may both be listed: bind them separately.
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            try:
                sock.bind(address)
            except OSError as exc:
                raise OSError(
                    exc.errno, f"error while attempting to bind on address {address!r}: "
                    f"{exc.strerror}"
                ) from None
            sock.listen(backlog)
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    return sockets


def close_sockets(config: Config, sockets: list[socket.socket]) -> None:
    """Close the supervisor's copies; remove the Unix socket file it created."""
    for sock in sockets:
        sock.close()
    if config.uds is not None:
        with contextlib.suppress(OSError):
            os.unlink(config.uds)
