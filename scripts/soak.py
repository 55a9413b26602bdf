"""Soak test: mixed load against one carpinus process, sampling its RSS and fds.

    python -m scripts.soak --seconds 600 --out soak-report.json [--csv samples.csv]

(from the project root: responses are read with the tests' response parser,
tests/support/response_parser.py).

Starts `python -m carpinus soak_app:app` (scripts/soak_app.py) on a socket it
binds itself (--fd), then runs --clients concurrent clients on 127.0.0.1 that
each pick, again and again until the time is up, one of these scenarios:

    hello       20 GETs on one keep-alive connection
    upload      a POST of 1 KiB - 1 MiB, with Content-Length or chunked
    stream      GET /stream: 64 chunks of 4 KiB
    pipelined   10 GETs in one write, then the 10 responses
    http10      an HTTP/1.0 request, closed by the server after the response
    error       GET /boom: the app raises, the server answers 500
    abort_head  half a request head, then a reset (RST)
    abort_body  the head and half the body of an upload, then a reset
    abort_resp  GET /stream?n=512, read the head, then a reset
    slow_head   a request head trickled over ~1 s
    slow_body   an upload body trickled over ~1 s
    stalled     half a head, then silence: the server must answer 408

Every --interval seconds it samples the server's RSS (VmRSS) and open file
descriptors (/proc/PID/fd).  When the load stops it waits for the server to
close every connection, and takes the final fd count.  The report (JSON, and
CSV samples with --csv) gives RSS at the end of the warm-up (the first 10 % of
the run, at least one sample), at the end, the growth between them, and the
fd growth from before the load to after it.  Exit status 1 when a request got
a wrong answer, fds grew, or RSS grew more than --max-rss-growth-mib.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import json
import os
import random
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

from tests.support.response_parser import MalformedResponse, parse_response

HERE = Path(__file__).resolve().parent
READY = "carpinus running on"
IO_TIMEOUT = 30.0

# scenario -> weight
SCENARIOS = {
    "hello": 30, "upload": 12, "stream": 10, "pipelined": 10, "http10": 5, "error": 3,
    "abort_head": 5, "abort_body": 5, "abort_resp": 5, "slow_head": 4, "slow_body": 4,
    "stalled": 2,
}


class WrongAnswer(Exception):
    """The server answered something other than what the scenario expects."""


# ---------------------------------------------------------------------------
# The server process
# ---------------------------------------------------------------------------


@dataclass
class ServerProcess:
    proc: subprocess.Popen[bytes]
    port: int
    log_path: Path

    def rss_kib(self) -> int:
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise RuntimeError("no VmRSS")

    def fds(self) -> int:
        return len(os.listdir(f"/proc/{self.proc.pid}/fd"))

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def start_server(tmp: Path, extra: list[str]) -> ServerProcess:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(1024)
    port = sock.getsockname()[1]
    log_path = tmp / "server.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CARPINUS_")}
    cmd = [sys.executable, "-m", "carpinus", "soak_app:app", "--app-dir", str(HERE),
           "--fd", str(sock.fileno()),
           "--no-access-log", "--lifespan", "off", "--timeout-request-header", "2",
           "--timeout-request-body", "2", "--timeout-keep-alive", "2", *extra]
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, env=env,
                                stderr=subprocess.STDOUT, pass_fds=[sock.fileno()])
    sock.close()
    server = ServerProcess(proc, port, log_path)
    deadline = time.monotonic() + 20
    while READY not in server.log():
        if proc.poll() is not None or time.monotonic() > deadline:
            stop_server(server)
            raise RuntimeError(f"the server did not start:\n{server.log()}")
        time.sleep(0.05)
    return server


def stop_server(server: ServerProcess) -> int:
    if server.proc.poll() is None:
        server.proc.send_signal(signal.SIGTERM)
        try:
            server.proc.wait(15)
        except subprocess.TimeoutExpired:
            server.proc.kill()
            server.proc.wait(5)
    return server.proc.returncode


# ---------------------------------------------------------------------------
# A minimal strict HTTP/1.1 client on asyncio streams
# ---------------------------------------------------------------------------


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes


class Responses:
    """Reads responses off one connection with the shared parser, keeping the
    bytes that follow one (the next pipelined response) for the next."""

    def __init__(self, reader: asyncio.StreamReader) -> None:
        self.reader = reader
        self.buf = b""

    async def read_response(self, head_only: bool = False) -> Response:
        at_eof = False
        while True:
            parsed, end = parse_response(self.buf, head_request=head_only, at_eof=at_eof)
            if parsed.complete:
                break
            if at_eof:
                raise asyncio.IncompleteReadError(self.buf, None)
            chunk = await self.reader.read(1 << 16)
            at_eof = not chunk
            self.buf += chunk
        self.buf = self.buf[end:]
        headers = {name.decode("latin-1").lower(): value.decode("latin-1").strip()
                   for name, value in parsed.headers}
        return Response(parsed.status, headers, parsed.body)

    async def rest(self) -> bytes:
        """Whatever the server sends until it closes the connection."""
        data, self.buf = self.buf + await self.reader.read(), b""
        return data


def request(method: str, path: str, headers: list[tuple[str, str]] | None = None,
            body: bytes = b"", version: str = "1.1") -> bytes:
    lines = [f"{method} {path} HTTP/{version}", "Host: soak"]
    lines += [f"{k}: {v}" for k, v in headers or []]
    if body and not any(k.lower() in ("content-length", "transfer-encoding")
                        for k, _ in headers or []):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def chunked(body: bytes, size: int) -> bytes:
    out = bytearray()
    for i in range(0, len(body), size):
        part = body[i:i + size]
        out += b"%x\r\n" % len(part) + part + b"\r\n"
    return bytes(out + b"0\r\n\r\n")


def reset(writer: asyncio.StreamWriter) -> None:
    """Close with an RST instead of a FIN."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


def expect(cond: bool, what: str) -> None:
    if not cond:
        raise WrongAnswer(what)


# ---------------------------------------------------------------------------
# Scenarios
# ---------------------------------------------------------------------------


class Load:
    def __init__(self, port: int, rng: random.Random) -> None:
        self.port = port
        self.rng = rng
        self.done: Counter[str] = Counter()
        self.requests = 0
        self.wrong: list[str] = []

    async def connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        return await asyncio.open_connection("127.0.0.1", self.port, limit=1 << 22)

    async def run_one(self, name: str) -> None:
        reader, writer = await self.connect()
        try:
            await asyncio.wait_for(getattr(self, name)(Responses(reader), writer), IO_TIMEOUT)
            self.done[name] += 1
        except (WrongAnswer, MalformedResponse) as exc:
            self.wrong.append(f"{name}: {exc}")
        except (OSError, asyncio.IncompleteReadError, asyncio.TimeoutError) as exc:
            self.wrong.append(f"{name}: {type(exc).__name__}: {exc}")
        finally:
            if not writer.is_closing():
                writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def hello(self, r: Responses, w: asyncio.StreamWriter) -> None:
        for _ in range(20):
            w.write(request("GET", "/"))
            resp = await r.read_response()
            expect(resp.status == 200 and resp.body == b"Hello, World!", f"{resp}")
            self.requests += 1

    async def upload(self, r: Responses, w: asyncio.StreamWriter) -> None:
        size = self.rng.choice([1024, 16 * 1024, 100_000, 1 << 20])
        body = os.urandom(64) * (size // 64)
        if self.rng.random() < 0.5:
            w.write(request("POST", "/upload", body=body))
        else:
            w.write(request("POST", "/upload", [("Transfer-Encoding", "chunked")])
                    + chunked(body, self.rng.choice([100, 4096, 65536])))
        resp = await r.read_response()
        expect(resp.status == 200 and resp.body == b"%d" % len(body), f"upload {resp.status}")
        self.requests += 1

    async def stream(self, r: Responses, w: asyncio.StreamWriter) -> None:
        w.write(request("GET", "/stream?n=64"))
        resp = await r.read_response()
        expect(resp.status == 200 and len(resp.body) == 64 * 4096, f"stream {len(resp.body)}")
        self.requests += 1

    async def pipelined(self, r: Responses, w: asyncio.StreamWriter) -> None:
        w.write(b"".join(request("GET", f"/?i={i}") for i in range(10)))
        for _ in range(10):
            resp = await r.read_response()
            expect(resp.status == 200, f"pipelined {resp.status}")
            self.requests += 1

    async def http10(self, r: Responses, w: asyncio.StreamWriter) -> None:
        w.write(b"GET / HTTP/1.0\r\n\r\n")
        resp = await r.read_response()
        expect(resp.status == 200 and resp.headers.get("connection") == "close", f"{resp}")
        expect(await r.rest() == b"", "bytes after an HTTP/1.0 response")
        self.requests += 1

    async def error(self, r: Responses, w: asyncio.StreamWriter) -> None:
        w.write(request("GET", "/boom"))
        resp = await r.read_response()
        expect(resp.status == 500, f"boom gave {resp.status}")
        self.requests += 1

    async def abort_head(self, r: Responses, w: asyncio.StreamWriter) -> None:
        w.write(request("GET", "/")[:15])
        await w.drain()
        await asyncio.sleep(0.01)
        reset(w)

    async def abort_body(self, r: Responses, w: asyncio.StreamWriter) -> None:
        w.write(request("POST", "/upload", [("Content-Length", "100000")]) + b"x" * 50_000)
        await w.drain()
        await asyncio.sleep(0.01)
        reset(w)

    async def abort_resp(self, r: Responses, w: asyncio.StreamWriter) -> None:
        w.write(request("GET", "/stream?n=512"))
        resp = await r.read_response(head_only=True)
        expect(resp.status == 200, f"abort_resp {resp.status}")
        await r.reader.read(10_000)
        reset(w)

    async def slow_head(self, r: Responses, w: asyncio.StreamWriter) -> None:
        raw = request("GET", "/", [("X-Slow", "y" * 40)])
        step = max(1, len(raw) // 10)
        for i in range(0, len(raw), step):
            w.write(raw[i:i + step])
            await w.drain()
            await asyncio.sleep(0.1)
        resp = await r.read_response()
        expect(resp.status == 200, f"slow_head {resp.status}")
        self.requests += 1

    async def slow_body(self, r: Responses, w: asyncio.StreamWriter) -> None:
        body = b"z" * 1000
        w.write(request("POST", "/upload", [("Content-Length", str(len(body)))]))
        for i in range(0, len(body), 100):
            w.write(body[i:i + 100])
            await w.drain()
            await asyncio.sleep(0.1)
        resp = await r.read_response()
        expect(resp.status == 200 and resp.body == b"1000", f"slow_body {resp}")
        self.requests += 1

    async def stalled(self, r: Responses, w: asyncio.StreamWriter) -> None:
        w.write(request("GET", "/")[:20])
        resp = await r.read_response()  # --timeout-request-header 2
        expect(resp.status == 408, f"stalled got {resp.status}")
        expect(await r.rest() == b"", "bytes after the 408")


async def client_loop(load: Load, until: float) -> None:
    names = list(SCENARIOS)
    weights = [SCENARIOS[n] for n in names]
    while time.monotonic() < until:
        await load.run_one(load.rng.choices(names, weights)[0])


# ---------------------------------------------------------------------------
# Sampling and the report
# ---------------------------------------------------------------------------


@dataclass
class Sample:
    t: float
    rss_kib: int
    fds: int
    requests: int


@dataclass
class Report:
    seconds: float
    clients: int
    samples: list[Sample] = field(default_factory=list)
    baseline_fds: int = 0
    final_fds: int = 0
    fd_growth: int = 0
    rss_start_kib: int = 0
    rss_after_warmup_kib: int = 0
    rss_final_kib: int = 0
    rss_max_kib: int = 0
    rss_growth_after_warmup_kib: int = 0
    requests: int = 0
    scenarios: dict[str, int] = field(default_factory=dict)
    wrong_answers: list[str] = field(default_factory=list)
    server_exit_code: int | None = None
    server_errors_logged: int = 0
    ok: bool = False


async def sample_loop(server: ServerProcess, load: Load, report: Report, started: float,
                      until: float, interval: float) -> None:
    while True:
        report.samples.append(Sample(round(time.monotonic() - started, 2), server.rss_kib(),
                                     server.fds(), load.requests))
        if time.monotonic() >= until:
            return
        await asyncio.sleep(min(interval, max(0.0, until - time.monotonic())))


async def soak(server: ServerProcess, args: argparse.Namespace, report: Report) -> Load:
    load = Load(server.port, random.Random(args.seed))
    started = time.monotonic()
    until = started + args.seconds
    sampler = asyncio.create_task(sample_loop(server, load, report, started, until,
                                              args.interval))
    await asyncio.gather(*(client_loop(load, until) for _ in range(args.clients)))
    await sampler
    return load


def wait_for_fds(server: ServerProcess, target: int, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    while True:
        n = server.fds()
        if n <= target or time.monotonic() > deadline:
            return n
        time.sleep(0.2)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=600)
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--interval", type=float, default=None,
                    help="seconds between samples [default: seconds/60, 1..10]")
    ap.add_argument("--out", type=Path, default=Path("soak-report.json"))
    ap.add_argument("--csv", type=Path, default=None)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--max-rss-growth-mib", type=float, default=8.0)
    ap.add_argument("--loop", default="auto", choices=["auto", "asyncio", "uvloop"])
    args = ap.parse_args(argv)
    if args.interval is None:
        args.interval = min(10.0, max(1.0, args.seconds / 60))
    report = Report(args.seconds, args.clients)
    with tempfile.TemporaryDirectory() as tmp:
        server = start_server(Path(tmp), ["--loop", args.loop])
        try:
            time.sleep(0.5)
            report.baseline_fds = server.fds()
            report.rss_start_kib = server.rss_kib()
            load = asyncio.run(soak(server, args, report))
            # every client has closed; the server closes its side at once
            report.final_fds = wait_for_fds(server, report.baseline_fds, 15)
            report.rss_final_kib = server.rss_kib()
        finally:
            report.server_exit_code = stop_server(server)
            log = server.log()
    report.fd_growth = report.final_fds - report.baseline_fds
    warm = max(1, len(report.samples) // 10)
    report.rss_after_warmup_kib = report.samples[warm - 1].rss_kib if report.samples else 0
    report.rss_max_kib = max((s.rss_kib for s in report.samples), default=0)
    report.rss_growth_after_warmup_kib = report.rss_final_kib - report.rss_after_warmup_kib
    report.requests = load.requests
    report.scenarios = dict(sorted(load.done.items()))
    report.wrong_answers = load.wrong[:50]
    report.server_errors_logged = log.count("Exception in ASGI application")
    report.ok = (not load.wrong and report.fd_growth <= 0 and report.server_exit_code == 0
                 and report.rss_growth_after_warmup_kib <= args.max_rss_growth_mib * 1024)
    data = asdict(report)
    args.out.write_text(json.dumps(data, indent=1) + "\n")
    if args.csv:
        with open(args.csv, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(["t", "rss_kib", "fds", "requests"])
            for s in report.samples:
                writer.writerow([s.t, s.rss_kib, s.fds, s.requests])
    summary = {k: v for k, v in data.items() if k != "samples"}
    print(json.dumps(summary, indent=1))
    if not report.ok:
        print("soak: FAILED (see above)", file=sys.stderr)
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
