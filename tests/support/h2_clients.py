"""HTTP/2 clients for the tests: a frame-level client on the `h2` library over a
real socket (h2c with prior knowledge, or TLS with ALPN "h2"), for the tests
that must choose frames a well-behaved client never sends, and httpx with
http2=True for the rest.

H2Client keeps the whole conversation: every event h2 made of what the server
sent, and per stream the response headers, body and how the stream ended.
"""

from __future__ import annotations

import socket
import ssl
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings

from tests.support.clients import IO_TIMEOUT

if TYPE_CHECKING:
    import httpx

    from tests.support.servers import ServerHandle


def h2_tls_context(handle_tls: ssl.SSLContext | None) -> ssl.SSLContext | None:
    """A client context offering only "h2" by ALPN, trusting what the server
    handle's context trusts (the TLS leg's CA); None for a cleartext server."""
    if handle_tls is None:
        return None
    ctx = ssl.create_default_context()
    ctx.load_verify_locations(cadata=_ca_pems(handle_tls))
    ctx.set_alpn_protocols(["h2"])
    return ctx


def _ca_pems(ctx: ssl.SSLContext) -> str:
    return "".join(ssl.DER_cert_to_PEM_cert(der) for der in ctx.get_ca_certs(binary_form=True))


def h2_http_client(handle: ServerHandle, **options: Any) -> httpx.Client:
    """httpx speaking HTTP/2 only: h2c with prior knowledge on cleartext, h2
    by ALPN over TLS.  With a TLS context of its own: httpx sets ALPN on the
    context it is given, which would make every later client of the shared
    TLS-leg context offer h2."""
    from tests.support.clients import http_client

    return http_client(handle.url, h2_tls_context(handle.tls), http1=False, http2=True,
                       **options)


@dataclass
class StreamResult:
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    body: bytearray = field(default_factory=bytearray)
    trailers: list[tuple[bytes, bytes]] = field(default_factory=list)
    ended: bool = False
    reset: int | None = None  # the error code of a RST_STREAM from the server

    @property
    def status(self) -> int:
        return int(dict(self.headers)[b":status"])

    def header(self, name: bytes) -> bytes | None:
        return dict(self.headers).get(name)


class H2Client:
    """One HTTP/2 connection driven frame by frame."""

    def __init__(self, host: str, port: int, tls: ssl.SSLContext | None = None,
                 timeout: float = IO_TIMEOUT, settings: dict[int, int] | None = None,
                 auto_window: bool = True) -> None:
        sock = socket.create_connection((host, port), timeout=timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if tls is not None:
            sock = tls.wrap_socket(sock, server_hostname=host)
            assert sock.selected_alpn_protocol() == "h2"
        self.sock = sock
        self.timeout = timeout
        # the server's frames are checked by h2 as a strict client would
        config = h2.config.H2Configuration(client_side=True, header_encoding=None)
        self.conn = h2.connection.H2Connection(config=config)
        self.conn.initiate_connection()
        if settings:
            self.conn.update_settings(settings)
        self.auto_window = auto_window
        self.streams: dict[int, StreamResult] = {}
        self.events: list[Any] = []
        self.goaway: h2.events.ConnectionTerminated | None = None
        self.closed = False
        self.flush()

    @classmethod
    def to(cls, handle: ServerHandle, **options: Any) -> H2Client:
        return cls(handle.host, handle.port, h2_tls_context(handle.tls), **options)

    def __enter__(self) -> H2Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    # -- sending -----------------------------------------------------------

    def flush(self) -> None:
        data = self.conn.data_to_send()
        if data:
            self.sock.sendall(data)

    def send_raw(self, data: bytes) -> None:
        """Bytes h2 would refuse to make (malformed or hostile frames)."""
        self.sock.sendall(data)

    def request(self, method: str = "GET", path: str = "/", body: bytes | None = None,
                headers: list[tuple[str, str]] | None = None, end: bool = True,
                authority: str = "example.test") -> int:
        sid = self.conn.get_next_available_stream_id()
        hdrs = [(":method", method), (":scheme", "http"), (":authority", authority),
                (":path", path)] + (headers or [])
        self.streams[sid] = StreamResult()
        self.conn.send_headers(sid, hdrs, end_stream=end and body is None)
        self.flush()
        if body is not None:
            self.send_data(sid, body, end)
        return sid

    def send_data(self, sid: int, data: bytes, end: bool = False) -> None:
        """DATA frames of at most the peer's frame size."""
        size = self.conn.max_outbound_frame_size
        pieces = [data[i:i + size] for i in range(0, len(data), size)] or [b""]
        for i, piece in enumerate(pieces):
            self.conn.send_data(sid, piece, end_stream=end and i == len(pieces) - 1)
        self.flush()

    def reset(self, sid: int, code: int = 8) -> None:  # 8: CANCEL
        self.conn.reset_stream(sid, error_code=code)
        self.flush()

    # -- receiving ---------------------------------------------------------

    def receive_once(self, timeout: float | None = None) -> bool:
        """Read once and take in what came: False when the server closed."""
        self.sock.settimeout(self.timeout if timeout is None else timeout)
        try:
            data = self.sock.recv(65536)
        except (ConnectionResetError, BrokenPipeError):
            data = b""
        if not data:
            self.closed = True
            return False
        try:
            events = self.conn.receive_data(data)
        except h2.exceptions.ProtocolError:
            self.closed = True
            raise
        for event in events:
            self._take(event)
        self.flush()
        return True

    def _take(self, event: Any) -> None:
        self.events.append(event)
        sid = getattr(event, "stream_id", None)
        result = self.streams.setdefault(sid, StreamResult()) if sid else None
        if isinstance(event, h2.events.ResponseReceived):
            assert result is not None
            result.headers = list(event.headers)
        elif isinstance(event, h2.events.DataReceived):
            assert result is not None
            result.body += event.data
            if self.auto_window and event.flow_controlled_length and sid:
                self.conn.acknowledge_received_data(event.flow_controlled_length, sid)
        elif isinstance(event, h2.events.TrailersReceived):
            assert result is not None
            result.trailers = list(event.headers)
        elif isinstance(event, h2.events.StreamEnded):
            assert result is not None
            result.ended = True
        elif isinstance(event, h2.events.StreamReset):
            assert result is not None
            result.reset = event.error_code
        elif isinstance(event, h2.events.ConnectionTerminated):
            self.goaway = event

    def wait(self, predicate: Any, timeout: float | None = None) -> None:
        """Read until predicate() holds; AssertionError when it does not in time
        or the server closes first."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while not predicate():
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("the server did not answer in time")
            try:
                if not self.receive_once(left):
                    if predicate():
                        return
                    raise AssertionError("the server closed the connection")
            except TimeoutError:
                continue

    def response(self, sid: int, timeout: float | None = None) -> StreamResult:
        """The stream's response once it ended (or was reset)."""
        self.wait(lambda: self.streams[sid].ended or self.streams[sid].reset is not None,
                  timeout)
        return self.streams[sid]

    def get(self, path: str = "/", **options: Any) -> StreamResult:
        return self.response(self.request("GET", path, **options))

    def wait_closed(self, timeout: float | None = None) -> None:
        """Read (and drop) until the server closes the connection."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while time.monotonic() < deadline:
            try:
                if not self.receive_once(deadline - time.monotonic()):
                    return
            except TimeoutError:
                continue
            except h2.exceptions.ProtocolError:
                return
        raise AssertionError("the server did not close the connection")


def preface_and_settings(settings: dict[int, int] | None = None) -> bytes:
    """The client's first bytes, made by h2: preface and SETTINGS."""
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    conn.initiate_connection()
    if settings:
        conn.update_settings(settings)
    return conn.data_to_send()


def frame(kind: int, flags: int, stream_id: int, payload: bytes) -> bytes:
    """One raw HTTP/2 frame (RFC 9113 4.1)."""
    return (len(payload).to_bytes(3, "big") + bytes([kind, flags]) +
            (stream_id & 0x7FFFFFFF).to_bytes(4, "big") + payload)


# frame types and flags used by the hostile tests
DATA, HEADERS, RST_STREAM, SETTINGS, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = (
    0x0, 0x1, 0x3, 0x4, 0x6, 0x7, 0x8, 0x9)
END_STREAM, END_HEADERS = 0x1, 0x4
SETTINGS_INITIAL_WINDOW_SIZE = h2.settings.SettingCodes.INITIAL_WINDOW_SIZE
