"""fuzz_protocol.py -- end-to-end fuzz target: byte streams through the C protocol.

Run from the project root as a module (`python -m fuzz.fuzz_protocol ...`),
which is what `make -C fuzz run-protocol` does, with atheris (libFuzzer for Python) against
an ASan+UBSan build of carpinus._core that carries libFuzzer's coverage
instrumentation (CARPINUS_FUZZ=1, see setup.py), so that the fuzzer is guided
by the branches it reaches in the C core.

Input layout: bytes 0-2 are a seed for every choice that is not the stream
itself -- where the stream is cut into reads, which app behaviour serves each
request, the limits, the optimizations, read and write flow control, how the
client ends the connection, and the transport's behaviours (TLS-like close,
failing writes, pause/resume inside write, a slow client, a cancellation from
outside; see harness.Options.from_seed).  The rest is the byte stream the
client sends.  The layout matches corpus/parser/, whose first three bytes
pick the parser's limits, so that corpus seeds this one.

CARPINUS_FUZZ_DISABLE=tls,cancel,... switches features or app behaviours off
(harness.FEATURES), to fuzz on past a known defect.

    python -m fuzz.fuzz_protocol --replay FILE...   (no atheris needed)

runs inputs once each and prints what they chose and what failed, the way
tests/protocols/http/test_fuzz_regressions.py replays fuzz/regressions/.

Every run is checked by harness.check (responses well-formed and in order,
nothing written after close, a rejection closes the connection, every app
task finishes, ...), and then against h11 as an oracle for framing: the
requests both parsers accept must be the same requests -- same method, same
target, same body.  A difference there would be a desynchronisation: the two
would see different request boundaries in the same bytes.  Where h11 rejects
or stops earlier, or we do, the comparison ends at that request (the parsers
differ on what they accept; fuzz/differential.py lists those differences).
"""

from __future__ import annotations

import asyncio
import gc
import os
import sys
from pathlib import Path

import h11

from carpinus import _core
from fuzz.harness import Options, Seen, Violation, check, run_stream

# Behaviours that consume the whole body before answering: only for those is
# the body the app saw comparable with h11's (and only when it saw all of it).
READS_BODY = {"echo", "slow_reader", "stream", "no_content", "no_throw", "reenter_more_body",
              "reenter_headers", "reenter_mapping", "wait_for_receive", "wait_for_send",
              "create_task", "app_transfer_encoding"}


def h11_requests(data: bytes) -> list[tuple[bytes, bytes, bytes]]:
    """(method, target, body) of every request h11 parses from data, up to its
    first error or the end of the data."""
    conn = h11.Connection(h11.SERVER)
    conn.receive_data(data)
    conn.receive_data(b"")
    out: list[tuple[bytes, bytes, bytes]] = []
    current: list[bytes] | None = None
    method = target = b""
    while True:
        try:
            event = conn.next_event()
        except h11.RemoteProtocolError:
            return out
        if event is h11.NEED_DATA or event is h11.PAUSED:
            return out
        if isinstance(event, h11.Request):
            method, target, current = event.method, event.target, []
        elif isinstance(event, h11.Data):
            assert current is not None
            current.append(bytes(event.data))
        elif isinstance(event, h11.EndOfMessage):
            assert current is not None
            out.append((method, target, b"".join(current)))
            try:
                conn.send(h11.Response(status_code=200, headers=[("content-length", "0")]))
                conn.send(h11.EndOfMessage())
                conn.start_next_cycle()
            except h11.LocalProtocolError:
                return out  # Connection: close, or HTTP/1.0 without keep-alive
        else:  # ConnectionClosed
            return out


def compare_with_h11(stream: bytes, seen: list[Seen]) -> None:
    theirs = h11_requests(stream)
    for ours, (method, target, body) in zip(seen, theirs, strict=False):
        if ours.method.encode("latin-1") != method:
            raise Violation(f"desync: request {ours.index} is {ours.method} here, "
                            f"{method!r} for h11")
        if target.startswith(b"/"):
            path, sep, query = target.partition(b"?")
            if ours.raw_path != path or ours.query != query:
                raise Violation(f"desync: request {ours.index} target {ours.raw_path!r}?"
                                f"{ours.query!r} here, {target!r} for h11")
        if ours.behaviour in READS_BODY and ours.body_complete and bytes(ours.body) != body:
            raise Violation(f"desync: request {ours.index} body {bytes(ours.body)[:60]!r} here, "
                            f"{body[:60]!r} for h11")


LOOP = asyncio.new_event_loop()
asyncio.set_event_loop(LOOP)
CORE_TYPES = (_core.ServerState, _core.HttpProtocol, _core.RequestCycle, _core.LazyHeaders)
# every N inputs (CARPINUS_FUZZ_LEAK_CHECK_EVERY=1 finds the input that leaked)
LEAK_CHECK_EVERY = int(os.environ.get("CARPINUS_FUZZ_LEAK_CHECK_EVERY", "512"))
runs = 0


def check_no_core_objects_left() -> None:
    """Between inputs no object of the core may be alive: a reference leaked
    by the C code keeps its object (and all it holds) forever, which the
    collector cannot fix.  (Leaks of plain memory are valgrind's and the soak
    test's to find; libFuzzer's leak detection does not work under Python.)"""
    gc.collect()
    alive = [o for o in gc.get_objects() if isinstance(o, CORE_TYPES)]
    if alive:
        raise Violation(f"{len(alive)} core objects outlived their run: {alive[:5]!r}")


def test_one_input(data: bytes) -> None:
    global runs
    if len(data) < 3:
        return
    seed, stream = bytes(data[:3]), bytes(data[3:])
    opts = Options.from_seed(seed, len(stream))
    run, outcome = run_stream(LOOP, stream, opts)
    check(run, outcome)
    compare_with_h11(stream, outcome.seen)
    del run, outcome
    runs += 1
    if runs % LEAK_CHECK_EVERY == 0:
        check_no_core_objects_left()


def replay(paths: list[str]) -> int:
    """Run each input once; print its options and the outcome.  Exit status 1
    if any failed."""
    failed = 0
    for path in paths:
        data = Path(path).read_bytes()
        opts = Options.from_seed(data[:3], len(data) - 3) if len(data) >= 3 else None
        print(f"== {path}\n   {opts}")
        try:
            test_one_input(data)
        except Exception as exc:
            failed += 1
            print(f"   FAILED: {type(exc).__name__}: {exc}")
            if exc.__cause__ is not None:
                print(f"   cause: {exc.__cause__!r}")
        else:
            print("   ok")
    return 1 if failed else 0


def main() -> None:
    if sys.argv[1:2] == ["--replay"]:
        sys.exit(replay(sys.argv[2:]))
    import atheris

    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
