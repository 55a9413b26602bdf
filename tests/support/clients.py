"""Clients for the servers the tests start: a strict raw HTTP/1.1 client over
TCP or TLS, the requests it sends, and httpx set up for the TLS leg.

RawClient reads responses with the one response parser
(tests/support/response_parser.py), which the fuzz harness and the soak
script use too.
"""

from __future__ import annotations

import contextlib
import errno
import socket
import ssl
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tests.support.response_parser import parse_response

if TYPE_CHECKING:
    import httpx

IO_TIMEOUT = 10.0


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


@dataclass
class Response:
    """A response as RawClient read it: names and values as str (values stripped),
    the head as sent without its final CRLF CRLF, the body de-chunked."""

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
        """The next response (a 1xx too), read strictly; what follows it stays in buf.
        EOFError if the server closes before the response is complete."""
        at_eof = False
        while True:
            parsed, end = parse_response(self.buf, head_request=head_request, at_eof=at_eof)
            if parsed.complete:
                break
            if at_eof:
                raise EOFError(f"connection closed in the middle of a response; "
                               f"got {self.buf[:200]!r}")
            at_eof = not self._fill()
        self.buf = self.buf[end:]
        return Response(
            parsed.status, parsed.reason.decode("latin-1"),
            [(name.decode("latin-1"), value.decode("latin-1").strip())
             for name, value in parsed.headers],
            parsed.body, parsed.head[:-4], parsed.chunked)

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
