"""In-process microbenchmark: the C protocol fed raw request bytes, no sockets.

Ablation of the six marshalling optimizations: every workload is measured
with all switches on, all off, and each switch off alone (docs/optimizations.md).

A fake transport stands in for the socket: requests are copied into the buffer
the protocol hands out (BufferedProtocol), responses are collected from
write().  Everything else is real: the event loop, the Task per request, the
demo app.  What is left is the cost of carpinus itself per request, which
sockets and the kernel would otherwise drown in noise.

    python benchmarks/micro.py                 # ns/request: all on, all off, each off
    python benchmarks/micro.py --modes all-on,all-off --json out.json
    python benchmarks/micro.py --instructions   # instructions/request under callgrind:
        # exactly repeatable, unlike ns on a noisy machine (slow: two valgrind
        # runs per cell, their difference divided by the extra requests)

Workloads: hello, headers, upload16k and upload1m are the demo app's; three
more answer "Hello, World!" like hello but reach the app another way --
hello-class through a class instance's __call__ (how every framework's app is
called: Starlette, FastAPI, any middleware stack), hello-keeps with an app that
holds on to the last request's scope, receive and send (so cycle_reuse never
can), paths10k over 10,000 distinct paths (/users/0 ... /users/9999, so the
scope cache misses on every request).
upload64k-stream hands its body over in reads with a loop turn between them,
as a socket does, so that the app waits in receive() and is woken (the other
workloads hand a whole request over before the app first runs).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

from carpinus.config import Config
from carpinus.demo import HELLO, START_200
from carpinus.optimizations import OPTIMIZATIONS
from carpinus.protocols.http.core import make_server_state

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



def upload(size: int) -> bytes:
    return (b"POST /upload HTTP/1.1\r\nHost: localhost:8000\r\nContent-Length: %d\r\n"
            b"Content-Type: application/octet-stream\r\n\r\n" % size) + b"x" * size


async def hello_any_path(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Hello, World! whatever the path (paths10k)."""
    await send(START_200)
    await send(HELLO)


class HelloApp:
    """The same as a class instance (hello-class): a framework's app."""

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send(START_200)
        await send(HELLO)


class HelloKeeps:
    """hello, but the app holds on to the last request's scope, receive and
    send after its response (hello-keeps): what a framework that keeps them
    in a request object, or a background task, does -- so the connection
    can never reuse them (the cycle_reuse switch)."""

    def __init__(self) -> None:
        self.kept: tuple[Any, ...] = ()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send(START_200)
        await send(HELLO)
        self.kept = (scope, receive, send)


# A workload is one request, sent again and again, or a sequence of requests
# sent in turn; its app is the demo app unless APPS names another.
WORKLOADS: dict[str, bytes | Sequence[bytes]] = {
    "hello": b"GET / HTTP/1.1\r\nHost: localhost:8000\r\n\r\n",
    "headers": b"GET /headers HTTP/1.1\r\n" + BROWSER_HEADERS + b"\r\n",
    "upload16k": upload(16384),
    "upload1m": upload(1048576),
    "hello-class": b"GET / HTTP/1.1\r\nHost: localhost:8000\r\n\r\n",
    "hello-keeps": b"GET / HTTP/1.1\r\nHost: localhost:8000\r\n\r\n",
    "paths10k": [b"GET /users/%d HTTP/1.1\r\nHost: localhost:8000\r\n\r\n" % i
                 for i in range(10000)],
}
APPS: dict[str, Any] = {"hello-class": HelloApp(), "hello-keeps": HelloKeeps(),
                        "paths10k": hello_any_path}
DEFAULT_WORKLOADS = tuple(WORKLOADS)
# Workloads whose reads each get a loop turn.
WORKLOADS["upload64k-stream"] = upload(65536)
STREAMED = {"upload64k-stream"}
# GET / with the browser's headers, which the demo app's "/" never looks at:
# the case lazy_headers is made for.
WORKLOADS["hello-browser"] = b"GET / HTTP/1.1\r\n" + BROWSER_HEADERS + b"\r\n"
# Extra body sizes for choosing --zero-copy-threshold (not run by default).
for _kib in (1, 4, 8, 32, 64, 256):
    WORKLOADS[f"upload{_kib}k"] = upload(_kib * 1024)


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


ALL_ON = dict.fromkeys(OPTIMIZATIONS, True)


def modes() -> dict[str, dict[str, bool]]:
    """all-on, all-off, and no-NAME (everything on but NAME)."""
    table = {"all-on": dict(ALL_ON), "all-off": dict.fromkeys(OPTIMIZATIONS, False)}
    for name in OPTIMIZATIONS:
        table[f"no-{name}"] = {**ALL_ON, name: False}
    return table


# --no-response-extensions (a module setting: the counting runs this script again)
RESPONSE_EXTENSIONS = True


async def drive(workload: str, requests: int, read_size: int,
                switches: dict[str, bool], zero_copy_threshold: int,
                metrics: bool = False) -> float:
    """Send `requests` requests of a workload through one connection; seconds taken."""
    from carpinus.demo import app as demo_app

    app = APPS.get(workload, demo_app)
    loop = asyncio.get_running_loop()
    # metrics: the core counts what --metrics-bind exports (no listener is
    # opened here: only a Server does that)
    config = Config(app, access_log=False, configure_logging=False, optimizations=switches,
                    zero_copy_threshold=zero_copy_threshold,
                    metrics_bind="127.0.0.1:0" if metrics else None,
                    response_extensions=RESPONSE_EXTENSIONS)
    state = make_server_state(config, loop, app, {})
    raws = WORKLOADS[workload]
    if isinstance(raws, bytes):
        raws = [raws]
    streamed = workload in STREAMED
    responses = 0
    done: asyncio.Future[None] | None = None

    def on_write(data: bytes) -> None:
        nonlocal responses
        # a response is one write, or two (head, then body) with direct_response off
        if not data.startswith(b"HTTP/1.1 "):
            return
        responses += 1
        if done is not None and not done.done():
            done.set_result(None)

    proto = state()
    proto.connection_made(FakeTransport(on_write))
    started = time.perf_counter()
    # itertools, not raws[i % len(raws)]: the loop's own bytecode is counted
    # per request too, and should cost what it cost before workloads had
    # several requests (so that counts stay comparable with earlier ones)
    for raw in itertools.islice(itertools.cycle(raws), requests):
        done = loop.create_future()
        sent = 0
        while sent < len(raw):
            buf = proto.get_buffer(-1)
            n = min(len(buf), len(raw) - sent, read_size)
            buf[:n] = raw[sent : sent + n]
            proto.buffer_updated(n)
            sent += n
            if streamed:
                await asyncio.sleep(0)
        if not done.done():
            await done
    elapsed = time.perf_counter() - started
    proto.connection_lost(None)
    assert responses == requests, (responses, requests)
    return elapsed


def measure(factory: Callable[[], asyncio.AbstractEventLoop], workload: str, n: int,
            read_size: int, switches: dict[str, bool], repeat: int,
            zero_copy_threshold: int, metrics: bool = False) -> float:
    """Best of `repeat` runs, in ns per request (the minimum is the least noisy)."""
    best = float("inf")
    for _ in range(repeat):
        loop = factory()
        try:
            loop.run_until_complete(drive(workload, min(200, n), read_size, switches,
                                          zero_copy_threshold, metrics))
            elapsed = loop.run_until_complete(drive(workload, n, read_size, switches,
                                                     zero_copy_threshold, metrics))
        finally:
            loop.close()
        best = min(best, elapsed / n * 1e9)
    return best


def requests_for(workload: str, requests: int) -> int:
    """Fewer requests for big bodies, so every cell takes seconds, not minutes."""
    raws = WORKLOADS[workload]
    body = len(raws if isinstance(raws, bytes) else raws[0])
    return requests if body < 65536 else max(1, requests * 16384 // body)


def count_instructions(workload: str, mode: str, loop: str, read_size: int,
                       zero_copy_threshold: int, low: int, high: int,
                       metrics: bool = False) -> float:
    """Instructions per request: callgrind totals at two request counts, differenced,
    so start-up, imports and warm-up cancel out.  The str hash seed is fixed
    (unless PYTHONHASHSEED is set): with a random one, dict probes differ from
    run to run and a cell moves by a few hundred instructions."""
    import os
    import re
    import subprocess

    env = {**os.environ, "PYTHONHASHSEED": os.environ.get("PYTHONHASHSEED", "0")}

    totals = []
    for n in (low, high):
        cmd = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null",
               sys.executable, __file__, "--workloads", workload, "--modes", mode,
               "--requests", str(n), "--repeat", "1", "--loop", loop,
               "--read-size", str(read_size),
               "--zero-copy-threshold", str(zero_copy_threshold),
               *(["--metrics"] if metrics else []),
               *([] if RESPONSE_EXTENSIONS else ["--no-response-extensions"])]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True, env=env).stderr
        match = re.search(r"Collected : (\d+)", out)
        if match is None:
            raise RuntimeError(f"no callgrind total in: {out[-500:]}")
        totals.append(int(match.group(1)))
    extra = requests_for(workload, high) - requests_for(workload, low)
    return (totals[1] - totals[0]) / extra


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--workloads", default=",".join(DEFAULT_WORKLOADS),
                        help=f"comma-separated, from: {', '.join(WORKLOADS)}")
    parser.add_argument("--modes", default=",".join(modes()),
                        help="all-on, all-off, no-NAME (comma-separated)")
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--repeat", type=int, default=3, help="runs per cell; the best counts")
    parser.add_argument("--read-size", type=int, default=262144,
                        help="largest chunk handed to the protocol at once")
    parser.add_argument("--loop", choices=["asyncio", "uvloop"], default="uvloop")
    parser.add_argument("--zero-copy-threshold", type=int, default=16384,
                        help="as the server option; sweep it with the uploadNk workloads")
    parser.add_argument("--json", dest="json_path")
    parser.add_argument("--instructions", action="store_true",
                        help="count instructions per request with valgrind instead of timing")
    parser.add_argument("--metrics", action="store_true",
                        help="with the counting --metrics-bind turns on in the core")
    parser.add_argument("--no-response-extensions", action="store_true",
                        help="scopes without the pathsend and early-hint extensions "
                             "(--no-response-extensions)")
    args = parser.parse_args(argv)
    global RESPONSE_EXTENSIONS
    RESPONSE_EXTENSIONS = not args.no_response_extensions

    factory: Callable[[], asyncio.AbstractEventLoop] = asyncio.new_event_loop
    if args.loop == "uvloop":
        import uvloop

        factory = uvloop.new_event_loop
    table = modes()
    chosen = args.modes.split(",")
    unknown = [m for m in chosen if m not in table]
    if unknown:
        parser.error(f"unknown modes {unknown}; known: {', '.join(table)}")
    results = []
    workloads = args.workloads.split(",")
    unit = "instructions/request" if args.instructions else "ns/request"
    print(f"{'mode':>22} " + " ".join(f"{w:>11}" for w in workloads) + f"   ({unit})")
    for mode in chosen:
        row = []
        for workload in workloads:
            n = requests_for(workload, args.requests)
            if args.instructions:
                value = count_instructions(workload, mode, args.loop, args.read_size,
                                           args.zero_copy_threshold, 1000, 3000, args.metrics)
                results.append({"mode": mode, "workload": workload,
                                "instructions_per_request": round(value)})
            else:
                value = measure(factory, workload, n, args.read_size, table[mode], args.repeat,
                                args.zero_copy_threshold, args.metrics)
                results.append({"mode": mode, "workload": workload, "requests": n,
                                "ns_per_request": round(value, 1)})
            row.append(value)
        print(f"{mode:>22} " + " ".join(f"{v:11.0f}" for v in row), flush=True)
    if args.json_path:
        with open(args.json_path, "w") as fh:
            json.dump({"python": sys.version.split()[0], "loop": args.loop,
                       "unit": unit, "requests": args.requests, "repeat": args.repeat,
                       "read_size": args.read_size,
                       "zero_copy_threshold": args.zero_copy_threshold,
                       "results": results}, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
