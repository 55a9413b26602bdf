"""In-process microbenchmark: the C protocol fed raw request bytes, no sockets.

A fake transport stands in for the socket: requests are copied into the buffer
the protocol hands out (BufferedProtocol), responses are collected from
write().  Everything else is real: the event loop, the Task per request, the
demo app.  What is left is the cost of carpinus itself per request, which
sockets and the kernel would otherwise drown in noise.

    python benchmarks/micro.py                 # ns/request per workload
    python benchmarks/micro.py --json out.json
    valgrind --tool=callgrind python benchmarks/micro.py --requests 2000 --workloads hello
        # instructions per request, exactly repeatable
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Callable
from typing import Any

from carpinus.config import Config
from carpinus.protocols.http_c import make_server_state

BROWSER_HEADERS = (
    b"Host: localhost:8000\r\n"
    b"User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\r\n"
    b"Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n"
    b"Accept-Language: en-US,en;q=0.5\r\n"
    b"Accept-Encoding: gzip, deflate, br, zstd\r\n"
    b"Connection: keep-alive\r\n"
    b"Cookie: session=8f14e45fceea167a5a36dedd4bea2543; theme=dark\r\n"
    b"Upgrade-Insecure-Requests: 1\r\n"
    b"Sec-Fetch-Dest: document\r\n"
    b"Sec-Fetch-Mode: navigate\r\n"
    b"Sec-Fetch-Site: none\r\n"
    b"Priority: u=0, i\r\n"
)

WORKLOADS: dict[str, bytes] = {
    "hello": b"GET / HTTP/1.1\r\nHost: localhost:8000\r\n\r\n",
    "headers": b"GET /headers HTTP/1.1\r\n" + BROWSER_HEADERS + b"\r\n",
    "upload16k": b"POST /upload HTTP/1.1\r\nHost: localhost:8000\r\nContent-Length: 16384\r\n"
    b"Content-Type: application/octet-stream\r\n\r\n" + b"x" * 16384,
    "upload1m": b"POST /upload HTTP/1.1\r\nHost: localhost:8000\r\nContent-Length: 1048576\r\n"
    b"Content-Type: application/octet-stream\r\n\r\n" + b"x" * 1048576,
}


class FakeTransport:
    """Just enough of an asyncio transport for the C protocol."""

    def __init__(self, on_write: Callable[[bytes], None]) -> None:
        self.on_write = on_write
        self.closed = False

    def write(self, data: bytes) -> None:
        self.on_write(data)

    def writelines(self, parts: list[bytes]) -> None:
        for part in parts:
            self.on_write(part)

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 50000), "sockname": ("127.0.0.1", 8000)}.get(
            name, default
        )

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


async def drive(workload: str, requests: int, read_size: int) -> float:
    """Send `requests` copies of a workload through one connection; seconds taken."""
    from carpinus.demo import app

    loop = asyncio.get_running_loop()
    config = Config(app, access_log=False, configure_logging=False)
    state = make_server_state(config, loop, app, {})
    raw = WORKLOADS[workload]
    responses = 0
    done: asyncio.Future[None] | None = None

    def on_write(data: bytes) -> None:
        nonlocal responses
        # every demo response is one write (head + small body coalesced)
        responses += 1
        if done is not None and not done.done():
            done.set_result(None)

    proto = state()
    proto.connection_made(FakeTransport(on_write))
    started = time.perf_counter()
    for _ in range(requests):
        done = loop.create_future()
        sent = 0
        while sent < len(raw):
            buf = proto.get_buffer(-1)
            n = min(len(buf), len(raw) - sent, read_size)
            buf[:n] = raw[sent : sent + n]
            proto.buffer_updated(n)
            sent += n
        if not done.done():
            await done
    elapsed = time.perf_counter() - started
    proto.connection_lost(None)
    assert responses == requests, (responses, requests)
    return elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workloads", default=",".join(WORKLOADS))
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--read-size", type=int, default=262144,
                        help="largest chunk handed to the protocol at once")
    parser.add_argument("--loop", choices=["asyncio", "uvloop"], default="uvloop")
    parser.add_argument("--json", dest="json_path")
    args = parser.parse_args(argv)

    factory: Callable[[], asyncio.AbstractEventLoop] = asyncio.new_event_loop
    if args.loop == "uvloop":
        import uvloop

        factory = uvloop.new_event_loop
    results = []
    for workload in args.workloads.split(","):
        n = args.requests if not workload.startswith("upload1m") else max(1, args.requests // 50)
        loop = factory()
        try:
            loop.run_until_complete(drive(workload, min(200, n), args.read_size))  # warm-up
            elapsed = loop.run_until_complete(drive(workload, n, args.read_size))
        finally:
            loop.close()
        ns = elapsed / n * 1e9
        results.append({"workload": workload, "requests": n, "ns_per_request": round(ns, 1)})
        print(f"{workload:>10}: {ns:9.0f} ns/request  ({n} requests)")
    if args.json_path:
        with open(args.json_path, "w") as fh:
            json.dump({"python": sys.version.split()[0], "loop": args.loop,
                       "results": results}, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
