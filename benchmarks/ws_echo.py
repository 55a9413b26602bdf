"""A quick WebSocket echo microbenchmark: messages/s through one server.

    python benchmarks/ws_echo.py ws://127.0.0.1:8000/ws [--seconds 3]

Runs four variants one after the other -- 16-byte text and 16 KiB JSON-like
text, each without and with permessage-deflate -- each for --seconds over
--connections connections of the `websockets` asyncio client, every connection
keeping --window messages in flight; prints messages echoed per second.  The
client is Python too, so absolute numbers are bounded by it: compare servers
(or versions of one) with the same client on the same machine.  With
--server-pid (Linux) it also prints the server process's CPU time per echoed
message (user + system, from /proc), which a busy machine disturbs less.  For the
many-connection benchmark against other servers see benchmarks/run.py.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time

from websockets.asyncio.client import connect

SMALL = "x" * 16
LARGE = json.dumps([{"id": i, "name": f"item {i}", "price": i * 1.5, "tags": ["a", "b"]}
                    for i in range(250)])[:16 * 1024]


async def one_connection(url: str, message: str, deflate: bool, window: int,
                         deadline: float) -> int:
    done = 0
    async with connect(url, compression="deflate" if deflate else None,
                       max_size=None) as ws:
        while time.monotonic() < deadline:
            for _ in range(window):
                await ws.send(message)
            for _ in range(window):
                reply = await ws.recv()
                assert len(reply) == len(message)
            done += window
    return done


def cpu_seconds(pid: int | None) -> float:
    """User + system CPU time of process pid so far (0.0 without a pid)."""
    if pid is None:
        return 0.0
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def variant(url: str, message: str, deflate: bool,
                  args: argparse.Namespace) -> tuple[float, float]:
    """(messages/s, server CPU µs per message)."""
    cpu = cpu_seconds(args.server_pid)
    start = time.monotonic()
    deadline = start + args.seconds
    counts = await asyncio.wait_for(
        asyncio.gather(*(one_connection(url, message, deflate, args.window, deadline)
                         for _ in range(args.connections))),
        args.seconds + 30)
    total = sum(counts)
    return (total / (time.monotonic() - start),
            (cpu_seconds(args.server_pid) - cpu) * 1e6 / max(total, 1))


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("url")
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--window", type=int, default=8)
    parser.add_argument("--server-pid", type=int, default=None)
    args = parser.parse_args()
    for name, message in (("16 B text", SMALL), ("16 KiB text", LARGE)):
        for deflate in (False, True):
            rate, cpu = await variant(args.url, message, deflate, args)
            line = f"{name:12} {'deflate' if deflate else 'plain':8} {rate:10,.0f} msgs/s"
            if args.server_pid is not None:
                line += f"  {cpu:8.1f} µs server CPU/msg"
            print(line, flush=True)


if __name__ == "__main__":
    asyncio.run(main())
