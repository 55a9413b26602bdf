"""Test helpers: run the real server in a thread, talk to it over real sockets.

In the TLS leg (tests/tls_leg.py) the server serves HTTPS and the clients
here speak TLS to it; a test reads `handle.scheme` where the scheme matters.
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from carpinus.config import Config
from carpinus.optimizations import OPTIMIZATIONS
from carpinus.server import Server
from tests import tls_leg

if TYPE_CHECKING:
    import httpx

START_TIMEOUT = 10.0
IO_TIMEOUT = 10.0


@dataclass
class ServerHandle:
    server: Server
    host: str
    port: int
    # The client side of the TLS leg's certificate when run_server made this
    # server TLS; None when it serves plain HTTP (or the test set TLS up itself).
    tls: ssl.SSLContext | None = None

    @property
    def scheme(self) -> str:
        return "https" if self.tls else "http"

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}"

    @property
    def state(self) -> Any:
        return self.server.state

    def connect(self, timeout: float = IO_TIMEOUT) -> RawClient:
        return RawClient(self.host, self.port, timeout, tls=self.tls)

    def http_client(self, **options: Any) -> httpx.Client:
        """An httpx client with base_url set to this server (over its Unix socket
        when it listens on one), trusting the TLS leg's CA."""
        return http_client(self.url, self.tls, uds=self.server.config.uds, **options)

    def get(self, path: str, **options: Any) -> httpx.Response:
        """One GET with a client of its own."""
        with self.http_client() as client:
            return client.get(path, **options)


def http_client(base_url: str, tls: ssl.SSLContext | None, uds: str | None = None,
                **options: Any) -> httpx.Client:
    """httpx.Client for base_url; with `tls` it verifies the server against that
    context's CAs instead of the system's."""
    import httpx  # not every user of this module (the fuzz tools) has httpx

    options.setdefault("timeout", IO_TIMEOUT)
    verify: ssl.SSLContext | bool = tls if tls is not None else True
    if uds is not None:
        options.setdefault("transport", httpx.HTTPTransport(uds=uds, verify=verify))
        base_url = f"{'https' if tls else 'http'}://localhost"
    return httpx.Client(base_url=base_url, verify=verify, **options)


def apply_optimizations_leg(options: dict[str, Any]) -> None:
    """The optimization legs of `make test`: CARPINUS_TEST_OPTIMIZATIONS=off
    runs the behavioural suite with every marshalling optimization switched
    off, =all with every one on -- lazy_headers, off by default, included,
    and for every request that has a header (lazy_headers_min 1, not 4), so
    that its C code serves every request of the suite.  A test that chose
    its own switches keeps them.  Every server a test makes in-process goes
    through here: run_server, and tests/support/fake_server.py."""
    mode = os.environ.get("CARPINUS_TEST_OPTIMIZATIONS")
    if not mode:
        return
    if mode not in ("off", "all"):
        raise ValueError(f"CARPINUS_TEST_OPTIMIZATIONS={mode!r}: expected 'off' or 'all'")
    if "optimizations" not in options:
        options["optimizations"] = dict.fromkeys(OPTIMIZATIONS, mode == "all")
        if mode == "all":
            options.setdefault("lazy_headers_min", 1)


@contextlib.contextmanager
def run_server(app: Any, **options: Any) -> Iterator[ServerHandle]:
    """Start carpinus on 127.0.0.1 and a free port, in a thread; stop it after."""
    options.setdefault("port", 0)
    options.setdefault("access_log", False)
    options.setdefault("lifespan", "off")
    options.setdefault("configure_logging", False)  # let pytest's caplog see records
    options.setdefault("gc_freeze", False)  # the test process starts many servers
    apply_optimizations_leg(options)
    # The TLS leg: HTTPS with the session's certificate, unless the test set
    # TLS up itself.
    leg = tls_leg.leg_certificates()
    if leg is not None and "ssl_certfile" not in options:
        options["ssl_certfile"], options["ssl_keyfile"] = leg.certfile, leg.keyfile
    else:
        leg = None
    config = Config(app, **options)
    server = Server(config)
    errors: list[BaseException] = []

    def target() -> None:
        try:
            server.run()
        except BaseException as exc:  # pragma: no cover - surfaced below
            errors.append(exc)

    thread = threading.Thread(target=target, name="carpinus-test-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + START_TIMEOUT
    while not server.started:
        if errors or not thread.is_alive():
            raise RuntimeError(f"server failed to start: {errors or server.exit_code}")
        if time.monotonic() > deadline:
            raise RuntimeError("server did not start in time")
        time.sleep(0.005)
    try:
        yield ServerHandle(server, "127.0.0.1", server.port,
                           leg.client_context if leg is not None else None)
    finally:
        server.should_exit = True
        thread.join(START_TIMEOUT)
        if thread.is_alive():  # pragma: no cover
            server.force_exit = True
            thread.join(START_TIMEOUT)
        if errors:
            raise errors[0]


@dataclass
class Response:
    status: int
    reason: str
    headers: list[tuple[str, str]]
    body: bytes
    raw_head: bytes = b""
    chunked: bool = False

    def header(self, name: str) -> str | None:
        name = name.lower()
        for k, v in self.headers:
            if k.lower() == name:
                return v
        return None

    def header_all(self, name: str) -> list[str]:
        name = name.lower()
        return [v for k, v in self.headers if k.lower() == name]


@dataclass
class RawClient:
    """A TCP client (TLS when given a context) that reads HTTP/1.1 responses strictly."""

    host: str
    port: int
    timeout: float = IO_TIMEOUT
    tls: ssl.SSLContext | None = None
    sock: socket.socket = field(init=False)
    buf: bytes = field(init=False, default=b"")

    def __post_init__(self) -> None:
        self.sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.tls is not None:
            try:  # the handshake happens here, within `timeout`
                self.sock = self.tls.wrap_socket(self.sock, server_hostname=self.host)
            except BaseException:
                self.sock.close()
                raise

    def __enter__(self) -> RawClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()

    def send(self, data: bytes) -> None:
        with server_closed_as_broken_pipe():
            self.sock.sendall(data)

    def send_slowly(self, data: bytes, step: int = 1) -> None:
        """One small write at a time: the server must cope with any split."""
        with server_closed_as_broken_pipe():
            for i in range(0, len(data), step):
                self.sock.sendall(data[i : i + step])

    def _fill(self) -> bool:
        chunk = self.sock.recv(65536)
        if not chunk:
            return False
        self.buf += chunk
        return True

    def _read_until(self, marker: bytes) -> bytes:
        while marker not in self.buf:
            if not self._fill():
                raise EOFError(f"connection closed before {marker!r}; got {self.buf[:200]!r}")
        head, _, self.buf = self.buf.partition(marker)
        return head

    def _read_exact(self, n: int) -> bytes:
        while len(self.buf) < n:
            if not self._fill():
                raise EOFError(f"connection closed with {len(self.buf)} of {n} bytes")
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def read_response(self, head_request: bool = False) -> Response:
        raw_head = self._read_until(b"\r\n\r\n")
        lines = raw_head.split(b"\r\n")
        version, status, reason = lines[0].decode("latin-1").split(" ", 2)
        assert version == "HTTP/1.1", lines[0]
        headers = []
        for line in lines[1:]:
            name, sep, value = line.decode("latin-1").partition(":")
            assert sep and name == name.strip(), line
            headers.append((name, value.strip()))
        resp = Response(int(status), reason, headers, b"", raw_head)
        if 100 <= resp.status < 200:
            return resp
        te = resp.header("transfer-encoding")
        cl = resp.header("content-length")
        if head_request or resp.status in (204, 304):
            return resp
        if te is not None:
            assert te.lower() == "chunked", te
            assert cl is None, "both Content-Length and Transfer-Encoding"
            resp.chunked = True
            body = b""
            while True:
                size_line = self._read_until(b"\r\n")
                size = int(size_line, 16)
                if size == 0:
                    assert self._read_until(b"\r\n") == b""  # no trailers expected
                    break
                body += self._read_exact(size)
                assert self._read_exact(2) == b"\r\n"
            resp.body = body
        elif cl is not None:
            resp.body = self._read_exact(int(cl))
        else:
            while self._fill():
                pass
            resp.body, self.buf = self.buf, b""
        return resp

    def request(self, method: str = "GET", path: str = "/",
                headers: list[tuple[str, str]] | None = None,
                body: bytes = b"", version: str = "1.1") -> Response:
        self.send(build_request(method, path, headers, body, version))
        return self.read_response(head_request=method == "HEAD")

    def is_closed(self, timeout: float = 2.0) -> bool:
        """True when the server closed the connection (EOF or reset) in time."""
        if self.buf:
            return False
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(1)
        except ConnectionResetError:
            return True
        except TimeoutError:
            return False
        finally:
            self.sock.settimeout(self.timeout)
        if data:
            self.buf += data
            return False
        return True


@contextlib.contextmanager
def server_closed_as_broken_pipe() -> Iterator[None]:
    """Writing after the server closed fails with EPIPE or ECONNRESET over TCP;
    over TLS the ssl module may say SSLZeroReturnError (the server's
    close_notify came first) or SSLEOFError instead.  Tests that tolerate a
    server closing early catch the TCP names, whatever the transport."""
    try:
        yield
    except (ssl.SSLZeroReturnError, ssl.SSLEOFError) as exc:
        raise BrokenPipeError(errno.EPIPE, f"the server closed the TLS connection: {exc}") \
            from exc


def wait_for(predicate: Callable[[], object], timeout: float = 10.0,
             what: str = "condition") -> None:
    """Poll a condition (set by the server's thread or process) until it holds,
    with a deadline."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not met within {timeout} s")
        time.sleep(0.005)


def build_request(method: str = "GET", path: str = "/",
                  headers: list[tuple[str, str]] | None = None,
                  body: bytes = b"", version: str = "1.1") -> bytes:
    hdrs = list(headers or [])
    names = {k.lower() for k, _ in hdrs}
    if "host" not in names and version == "1.1":
        hdrs.insert(0, ("Host", "test"))
    if body and "content-length" not in names and "transfer-encoding" not in names:
        hdrs.append(("Content-Length", str(len(body))))
    head = f"{method} {path} HTTP/{version}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in hdrs)
    return head.encode("latin-1") + b"\r\n" + body


def chunked(body: bytes, size: int = 1000) -> bytes:
    """Encode body with Transfer-Encoding: chunked, `size` bytes per chunk."""
    out = b""
    for i in range(0, len(body), size):
        part = body[i : i + size]
        out += f"{len(part):x}\r\n".encode() + part + b"\r\n"
    return out + b"0\r\n\r\n"
