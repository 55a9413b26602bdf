"""The uvloop ceiling: a protocol that answers every request with one fixed response.

No HTTP parsing, no ASGI, no app: the only work per request is finding the
blank line that ends its head and, for a method starting with P (POST, PUT,
PATCH), skipping as many body bytes as its Content-Length says, so the upload
workloads still get exactly one answer per request.  What a server adds on
top of this is the cost of being a server.

    python benchmarks/apps/uvloop_raw.py --host 127.0.0.1 --port 8000
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from typing import cast

import uvloop

RESPONSE = (
    b"HTTP/1.1 200 OK\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"Content-Length: 13\r\n"
    b"\r\n"
    b"Hello, World!"
)
HEAD_END = b"\r\n\r\n"
CONTENT_LENGTH = b"\r\ncontent-length:"
P = ord("P")


def content_length(head: bytes) -> int:
    """The Content-Length in a request head (request line included), 0 when absent."""
    lowered = head.lower()
    start = lowered.find(CONTENT_LENGTH)
    if start < 0:
        return 0
    start += len(CONTENT_LENGTH)
    end = lowered.find(b"\r\n", start)
    return int(lowered[start:] if end < 0 else lowered[start:end])


class FixedResponseProtocol(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.partial_head = b""  # an unfinished head, kept until its end arrives
        self.body_left = 0  # body bytes of the current request still to skip

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's TCPTransport is not registered as an asyncio.Transport
        # subclass, so this is a cast, not a check.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        if self.partial_head:
            data, self.partial_head = self.partial_head + data, b""
        answers = 0
        position, size = 0, len(data)
        while position < size:
            if self.body_left:
                skipped = min(self.body_left, size - position)
                self.body_left -= skipped
                position += skipped
                answers += self.body_left == 0
                continue
            end = data.find(HEAD_END, position)
            if end < 0:
                self.partial_head = data[position:]
                break
            # Only POST, PUT and PATCH carry a body in the workloads: a GET's
            # head is not even looked at.
            if data[position] == P:
                self.body_left = content_length(data[position:end])
            position = end + len(HEAD_END)
            answers += self.body_left == 0
        if answers and self.transport is not None:
            self.transport.write(RESPONSE * answers)


async def serve(host: str, port: int) -> None:
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stopping.set)
    server = await loop.create_server(FixedResponseProtocol, host, port, backlog=2048)
    async with server:
        await stopping.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    args = parser.parse_args()
    uvloop.run(serve(args.host, args.port))


if __name__ == "__main__":
    main()
