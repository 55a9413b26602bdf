"""The WebSocket load client: build benchmarks/wsload/wsload.c, run it like wrk.

wrk speaks only HTTP.  wsload is a single-threaded epoll client in C (so the
client is not the bottleneck, as a Python client on one core would be) that
opens the connections, does the handshakes, then keeps one small message in
flight per connection for the duration.  It prints the same result line as
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
from pathlib import Path

from harness.wrk import EXTRA_WAIT, WrkFailed, WrkResult, WrkSettings, client_env, parse_output

SOURCE = Path(__file__).resolve().parent.parent / "wsload" / "wsload.c"
GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_built: dict[str, Path] = {}


def build() -> Path:
    """Compile wsload once per run (a few hundred milliseconds), into a temporary directory."""
    if "path" in _built and _built["path"].exists():
        return _built["path"]
    directory = tempfile.mkdtemp(prefix="carpinus-wsload-")
    atexit.register(shutil.rmtree, directory, ignore_errors=True)
    out = Path(directory) / "wsload"
    done = subprocess.run(["gcc", "-O2", "-std=c11", "-Wall", "-Wextra", "-o", str(out),
                           str(SOURCE)], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise WrkFailed(f"building wsload failed:\n{done.stderr}")
    _built["path"] = out
    return out


def run_wsload(host: str, port: int, path: str, message_size: int, duration_s: int,
               settings: WrkSettings) -> WrkResult:
    command = ["taskset", "-c", settings.cpus, str(build()), host, str(port), path,
               str(settings.connections), str(duration_s), str(settings.timeout_s),
               str(message_size)]
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


def probe_websocket(host: str, port: int, path: str, message: bytes) -> str | None:
    """Handshake and one echo, checked byte for byte; the problem found, or None."""
    key = base64.b64encode(os.urandom(16))
    request = (f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
               f"Connection: Upgrade\r\nSec-WebSocket-Key: {key.decode()}\r\n"
               f"Sec-WebSocket-Version: 13\r\n\r\n").encode()
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
            mask = os.urandom(4)
            masked = bytes(b ^ mask[i % 4] for i, b in enumerate(message))
            sock.sendall(struct.pack("!BB", 0x81, 0x80 | len(message)) + mask + masked)
            first, second = _recv_exact(sock, 2)
            payload = _recv_exact(sock, second & 0x7F)
            if first != 0x81 or payload != message:
                return f"WebSocket {path}: echo was {bytes([first]) + payload!r}"
            sock.sendall(struct.pack("!BB", 0x88, 0x82) + mask
                         + bytes(b ^ mask[i] for i, b in enumerate(struct.pack("!H", 1000))))
    except OSError as exc:
        return f"WebSocket {path} failed: {exc!r}"
    return None
