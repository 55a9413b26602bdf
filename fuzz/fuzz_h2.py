"""fuzz_h2.py -- end-to-end fuzz target: HTTP/2 frame sequences through the C core.

Run from the project root as a module (`python -m fuzz.fuzz_h2 ...`, which is
what `make -C fuzz run-h2` does) with atheris against the ASan+UBSan build
with libFuzzer coverage that fuzz_protocol.py uses (fuzz/Makefile).

The input is a frame program, not raw bytes: raw bytes would rarely get past
the connection preface.  Byte 0 seeds every choice that is not a frame (where
the stream is cut into reads, which app serves each path, whether the
transport pauses writing); the rest is a sequence of frames, each four bytes
(type, flags, stream, length) and `length` bytes of payload.  A HEADERS frame
whose type byte has its high bit set carries a request made with the fuzz
run's HPACK encoder from the payload's choices (method, path, fields,
content-length), so that streams get to the apps; every other frame is sent
as it is, however malformed.  The client's preface and SETTINGS come first.

The connection is a real HttpProtocol of a real ServerState on the shared
fake transport (tests/support/fake_transport.py), so the whole path runs:
nghttp2 in h2.c, the request cycle, the apps' receive() and send().  Checked
after every run: the transport saw no violation (nothing written after a
close, no failed read), what the server wrote parses as HTTP/2 frames, every
app task ended once the connection did, and (every LEAK_CHECK_EVERY runs) no
core object outlived its run.

    python -m fuzz.fuzz_h2 --replay FILE...   (no atheris needed)
"""

from __future__ import annotations

import asyncio
import gc
import random
import sys
from pathlib import Path
from typing import Any

import hpack

from carpinus import _core
from tests.support.fake_server import make_state
from tests.support.fake_transport import FakeTransport
from tests.support.h2_clients import HEADERS, preface_and_settings

METHODS = ["GET", "POST", "HEAD", "PUT", "OPTIONS", "CONNECT", "get", ""]
PATHS = ["/", "/echo", "/stream", "/raise", "/hang", "/big?x=1", "*", "", "/a%2Fb", "x"]
FIELDS = [("content-type", "text/plain"), ("cookie", "a=1"), ("cookie", "b=2"),
          ("x-forwarded-for", "10.0.0.1"), ("te", "trailers"), ("connection", "close"),
          ("host", "h.test"), ("X-Upper", "1"), ("x-bin", "\x01")]
LEAK_CHECK_EVERY = 256
CORE_TYPES = (_core.ServerState, _core.HttpProtocol, _core.RequestCycle)


class Violation(AssertionError):
    pass


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    path = scope["path"]
    start = {"type": "http.response.start", "status": 200, "headers": [(b"x-a", b"1")]}
    if path == "/echo":
        body = b""
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return
            body += message["body"]
            if not message.get("more_body"):
                break
        await send(start)
        await send({"type": "http.response.body", "body": body})
    elif path == "/stream":
        await send(start)
        for i in range(8):
            await send({"type": "http.response.body", "body": b"s" * (i * 3000),
                        "more_body": True})
        await send({"type": "http.response.body", "body": b""})
    elif path == "/raise":
        raise RuntimeError("fuzz: the app raised")
    elif path == "/hang":
        while (await receive())["type"] != "http.disconnect":
            pass
    else:
        await send(start)
        await send({"type": "http.response.body", "body": b"hello"})


def frame(kind: int, flags: int, stream_id: int, payload: bytes) -> bytes:
    return (len(payload).to_bytes(3, "big") + bytes([kind, flags]) +
            (stream_id & 0x7FFFFFFF).to_bytes(4, "big") + payload)


def request_block(encoder: hpack.Encoder, choice: bytes) -> bytes:
    pick = list(choice) + [0] * 6
    fields = [(":method", METHODS[pick[0] % len(METHODS)]), (":scheme", "http"),
              (":authority", "fuzz.test"), (":path", PATHS[pick[1] % len(PATHS)])]
    fields = fields[: 4 - (pick[2] % 5 == 4)]  # sometimes a pseudo-header short
    for b in pick[3:3 + pick[2] % 4]:
        fields.append(FIELDS[b % len(FIELDS)])
    if pick[2] & 0x10:
        fields.append(("content-length", str(pick[4] * 7)))
    return encoder.encode(fields)


def program(data: bytes) -> bytes:
    """The client's bytes: preface, SETTINGS, then the frames of the input."""
    encoder = hpack.Encoder()
    out = [preface_and_settings()]
    i = 0
    while i + 4 <= len(data):
        kind, flags, stream, length = data[i:i + 4]
        payload = data[i + 4:i + 4 + length]
        i += 4 + length
        sid = 0 if stream == 0 else (stream & 0x7F) | 1 if not stream & 0x80 else stream & 0x7F
        if kind & 0x80 and (kind & 0x0F) == HEADERS:
            out.append(frame(HEADERS, flags | 0x4, sid, request_block(encoder, payload)))
        else:
            out.append(frame(kind % 10, flags, sid, payload))
    return b"".join(out)


def parse_frames(data: bytes) -> None:
    """What the server wrote must be whole HTTP/2 frames (a trailing partial
    frame only if the connection was cut while writing)."""
    pos = 0
    while pos + 9 <= len(data):
        length = int.from_bytes(data[pos:pos + 3], "big")
        kind = data[pos + 3]
        if kind > 0x9:
            raise Violation(f"frame of unknown type {kind} at {pos}")
        if length > 16384:
            raise Violation(f"frame of {length} bytes (the default maximum is 16384)")
        pos += 9 + length
    if pos > len(data):
        raise Violation("the last frame is cut short")


async def run_one(data: bytes) -> None:
    rng = random.Random(data[0] if data else 0)
    loop = asyncio.get_running_loop()
    state = make_state(loop, app, http="auto")
    protocol = state()
    transport = FakeTransport(loop, protocol, flush_in_write=rng.random() < 0.3,
                              write_high_water=rng.choice([1 << 20, 4096, 64]))
    protocol.connection_made(transport)
    stream = program(data[1:])
    pos = 0
    while pos < len(stream) and not transport.closed:
        n = rng.choice([1, 7, 24, 100, 1000, 1 << 16])
        transport.queue(stream[pos:pos + n])
        transport.read()
        pos += n
        for _ in range(rng.choice([0, 1, 3])):
            await asyncio.sleep(0)
        if rng.random() < 0.2:
            transport.drain()
    for _ in range(30):
        await asyncio.sleep(0)
        transport.drain()
    if not transport.closed:
        transport.client_reset() if rng.random() < 0.5 else transport.client_eof()
    for _ in range(30):
        await asyncio.sleep(0)
    if transport.violations:
        raise Violation(f"transport: {transport.violations[:3]}")
    parse_frames(bytes(transport.out))
    if state.active_requests:
        raise Violation(f"{state.active_requests} app tasks outlived the connection")
    state.close_all()


runs = 0
LOOP = asyncio.new_event_loop()


def test_one_input(data: bytes) -> None:
    global runs
    LOOP.run_until_complete(run_one(bytes(data)))
    runs += 1
    if runs % LEAK_CHECK_EVERY == 0:
        gc.collect()
        alive = [o for o in gc.get_objects() if isinstance(o, CORE_TYPES)]
        if alive:
            raise Violation(f"{len(alive)} core objects outlived their run: {alive[:3]!r}")


def replay(paths: list[str]) -> int:
    failed = 0
    for path in paths:
        try:
            test_one_input(Path(path).read_bytes())
        except Exception as exc:
            failed += 1
            print(f"{path}: FAILED: {type(exc).__name__}: {exc}")
        else:
            print(f"{path}: ok")
    return 1 if failed else 0


def main() -> None:
    if sys.argv[1:2] == ["--replay"]:
        sys.exit(replay(sys.argv[2:]))
    import atheris

    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
