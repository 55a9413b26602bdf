"""The listening sockets: bind them (--host/--port, --uds) or adopt one (--fd),
say where carpinus listens, and close them.

A single server binds here itself (Server.startup) and hands the sockets to
its event loop.  With workers, the supervisor binds once, before any worker
exists, and every worker inherits the same descriptors: the kernel keeps
one accept queue per socket, so a connection waits there, never refused,
while a worker is being replaced (docs/deployment.md explains why this is
preferred to SO_REUSEPORT).  --reuse-port sets SO_REUSEPORT on the sockets
bound here anyway, for users who run several carpinus processes on one
port; within one carpinus the workers still share them.  The gunicorn
worker gets its sockets from gunicorn's arbiter.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket

from carpinus.config import Config

logger = logging.getLogger("carpinus.error")


def bind_sockets(config: Config) -> list[socket.socket]:
    """The sockets `config` asks for (--fd, --uds or --host/--port), listening.

    Raises OSError when an address cannot be bound.
    """
    if config.fd is not None:
        # Adopt the descriptor itself (not a dup), so that closing the socket
        # really stops listening on it during a graceful shutdown.
        sock = socket.socket(fileno=config.fd)
        sock.listen(config.backlog)
        return [sock]
    if config.uds is not None:
        return [_bind_unix(config.uds, config.backlog)]
    return _bind_tcp(config.host, config.port, config.backlog, config.reuse_port)


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


def _bind_tcp(host: str, port: int, backlog: int,
              reuse_port: bool = False) -> list[socket.socket]:
    """One socket per address `host` resolves to, as loop.create_server does;
    with `reuse_port`, each with SO_REUSEPORT (Config checked the system has it)."""
    try:
        infos = socket.getaddrinfo(
            host or None, port, socket.AF_UNSPEC, socket.SOCK_STREAM, 0, socket.AI_PASSIVE
        )
    except socket.gaierror as exc:
        raise OSError(exc.errno, f"cannot bind to host {host!r}: {exc.strerror}") from None
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
            if reuse_port:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
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


def log_listening(config: Config, sock: socket.socket) -> None:
    """The "carpinus running on ..." line (tests and people wait for it)."""
    addr = sock.getsockname()
    if sock.family == socket.AF_UNIX:
        where = f"unix socket {addr}{' with TLS' if config.is_ssl else ''}"
    else:
        host, port = addr[0], addr[1]
        shown = f"[{host}]" if sock.family == socket.AF_INET6 else host
        where = f"{'https' if config.is_ssl else 'http'}://{shown}:{port}"
    if config.fd is not None:
        where += f" from socket fd {config.fd}"
    logger.info("carpinus running on %s (Press CTRL+C to quit)", where)


def close_sockets(config: Config, sockets: list[socket.socket]) -> None:
    """Close the sockets bind_sockets() returned (the event loop may have
    closed them already); remove the Unix socket file it created."""
    for sock in sockets:
        sock.close()
    if config.uds is not None:
        with contextlib.suppress(OSError):
            os.unlink(config.uds)
