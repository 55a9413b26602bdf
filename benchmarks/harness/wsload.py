"""The WebSocket load client: build benchmarks/wsload/wsload.c, run it like wrk.

wrk speaks only HTTP.  wsload is a single-threaded epoll client in C (so the
client is not the bottleneck, as a Python client on one core would be) that
opens the connections, does the handshakes (offering permessage-deflate when
asked, as browsers offer it), then keeps one message in flight per connection
for the duration.  It prints the same result line as
benchmarks/wrk/report.lua, so its numbers land in the same records: one
"request" is one echoed message.
"""

from __future__ import annotations

import atexit
import base64
import hashlib
import os
import shutil
import socket
import struct
import subprocess
import tempfile
import zlib
from pathlib import Path

from harness.wrk import EXTRA_WAIT, WrkFailed, WrkResult, WrkSettings, client_env, parse_output

SOURCE = Path(__file__).resolve().parent.parent / "wsload" / "wsload.c"
GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
DEFLATE_OFFER = "permessage-deflate; client_max_window_bits"
DEFLATE_TAIL = b"\x00\x00\xff\xff"  # RFC 7692 7.2.1: dropped after each message
_built: dict[str, Path] = {}


def _scratch_directory() -> Path:
    if "directory" not in _built:
        directory = tempfile.mkdtemp(prefix="carpinus-wsload-")
        atexit.register(shutil.rmtree, directory, ignore_errors=True)
        _built["directory"] = Path(directory)
    return _built["directory"]


def build() -> Path:
    """Compile wsload once per run (a few hundred milliseconds), into a temporary directory."""
    if "path" in _built and _built["path"].exists():
        return _built["path"]
    out = _scratch_directory() / "wsload"
    done = subprocess.run(["gcc", "-O2", "-std=c11", "-Wall", "-Wextra", "-o", str(out),
                           str(SOURCE), "-lz"], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise WrkFailed(f"building wsload failed:\n{done.stderr}")
    _built["path"] = out
    return out


def messages_file(messages: list[bytes]) -> Path:
    """The messages, one a line, in the scratch directory (wsload reads them)."""
    text = b"\n".join(messages)
    path = _scratch_directory() / f"messages-{hashlib.sha256(text).hexdigest()[:16]}.txt"
    if not path.exists():
        path.write_bytes(text)
    return path


def run_wsload(host: str, port: int, path: str, messages: list[bytes], deflate: bool,
               duration_s: int, settings: WrkSettings) -> WrkResult:
    command = ["taskset", "-c", settings.cpus, str(build()), host, str(port), path,
               str(settings.connections), str(duration_s), str(settings.timeout_s),
               str(messages_file(messages)), "1" if deflate else "0"]
    done = subprocess.run(command, capture_output=True, text=True, env=client_env(),
                          timeout=duration_s + EXTRA_WAIT + settings.timeout_s, check=False)
    if done.returncode != 0:
        raise WrkFailed(f"wsload exited with {done.returncode}: "
                        f"{done.stderr.strip() or done.stdout}")
    return parse_output(done.stdout)


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise ConnectionError(f"closed after {len(data)} of {n} bytes")
        data += chunk
    return data


def _client_frame(opcode: int, payload: bytes, rsv1: bool = False) -> bytes:
    """A masked client frame, FIN set."""
    mask = os.urandom(4)
    first = 0x80 | (0x40 if rsv1 else 0) | opcode
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", first, 0x80 | n)
    elif n < 1 << 16:
        head = struct.pack("!BBH", first, 0x80 | 126, n)
    else:
        head = struct.pack("!BBQ", first, 0x80 | 127, n)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return head + mask + masked


def _read_message(sock: socket.socket) -> tuple[int, bool, bytes]:
    """(opcode, compressed, payload) of the next data message, fragments joined."""
    opcode, compressed, parts = -1, False, []
    while True:
        first, second = _recv_exact(sock, 2)
        n = second & 0x7F
        if n == 126:
            (n,) = struct.unpack("!H", _recv_exact(sock, 2))
        elif n == 127:
            (n,) = struct.unpack("!Q", _recv_exact(sock, 8))
        payload = _recv_exact(sock, n)
        if first & 0x0F >= 8:  # a control frame (a ping, say) between fragments
            continue
        if opcode < 0:
            opcode, compressed = first & 0x0F, bool(first & 0x40)
        parts.append(payload)
        if first & 0x80:
            return opcode, compressed, b"".join(parts)


def probe_websocket(host: str, port: int, path: str, message: bytes,
                    deflate: bool = False) -> str | None:
    """Handshake and one echo, checked byte for byte (after inflation, with
    permessage-deflate, which the server must then agree to); the problem
    found, or None."""
    key = base64.b64encode(os.urandom(16))
    offer = f"Sec-WebSocket-Extensions: {DEFLATE_OFFER}\r\n" if deflate else ""
    request = (f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
               f"Connection: Upgrade\r\nSec-WebSocket-Key: {key.decode()}\r\n"
               f"Sec-WebSocket-Version: 13\r\n{offer}\r\n").encode()
    try:
        with socket.create_connection((host, port), timeout=10) as sock:
            sock.sendall(request)
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = sock.recv(1)
                if not chunk:
                    return f"WebSocket {path}: connection closed during the handshake"
                head += chunk
            status = head.split(b"\r\n", 1)[0]
            accept = base64.b64encode(hashlib.sha1(key + GUID).digest())
            if not status.startswith(b"HTTP/1.1 101") or accept not in head:
                return f"WebSocket {path}: handshake answered {status.decode(errors='replace')}"
            if deflate and b"permessage-deflate" not in head.lower():
                return f"WebSocket {path}: the server did not agree to permessage-deflate"
            if deflate:
                compressor = zlib.compressobj(wbits=-15)
                body = compressor.compress(message) + compressor.flush(zlib.Z_SYNC_FLUSH)
                sock.sendall(_client_frame(0x1, body[:-4], rsv1=True))
            else:
                sock.sendall(_client_frame(0x1, message))
            opcode, compressed, payload = _read_message(sock)
            if compressed:
                payload = zlib.decompressobj(wbits=-15).decompress(payload + DEFLATE_TAIL)
            if opcode != 0x1 or payload != message:
                return f"WebSocket {path}: echo was opcode {opcode} {payload[:80]!r}"
            sock.sendall(_client_frame(0x8, struct.pack("!H", 1000)))
    except (OSError, zlib.error) as exc:
        return f"WebSocket {path} failed: {exc!r}"
    return None
