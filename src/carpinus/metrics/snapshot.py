"""One serving process's counters as a fixed block of shared memory (see
carpinus.metrics): the layout, the writer the process publishes with, and
the reader the scrape uses."""

from __future__ import annotations

import mmap
import os
import struct
import time
from collections.abc import Mapping, Sequence
from typing import Any

# Upper bounds (seconds) of the request-duration histogram's buckets: the C
# core's (_core/metrics.c); publish() checks that they still agree.
DURATION_BOUNDS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
STATUS_CLASSES = ("1xx", "2xx", "3xx", "4xx", "5xx")
# ServerState.metrics()' parse_errors_by_status, in its order
PARSE_ERROR_STATUSES = (400, 414, 431, 501, 505)
# counters that ServerState.stats() has under these names
STATS_COUNTERS = ("requests_total", "connections_total", "parse_errors", "bodies_too_large",
                  "timeouts", "overloaded", "internal_errors", "app_errors",
                  "websocket_upgrades")

COUNTERS: tuple[str, ...] = (
    *STATS_COUNTERS, "bytes_in", "bytes_out", "duration_sum",
    *(f"responses_{c}" for c in STATUS_CLASSES),
    *(f"parse_errors_{s}" for s in PARSE_ERROR_STATUSES),
    *(f"duration_bucket_{i}" for i in range(len(DURATION_BOUNDS) + 1)),
)
GAUGES: tuple[str, ...] = ("connections", "connections_idle", "active_requests",
                           "websocket_open")
FIELDS = COUNTERS + GAUGES

# The block: a publication count, then two slots of values.  Publication n
# goes into slot n % 2 and is announced by storing n afterwards, so the slot
# the count points at is always whole, even when the writer was killed
# (SIGKILL, the OOM killer) in the middle of writing the other one.  A
# single slot behind an odd/even seqlock would leave a killed writer's block
# unreadable and its counts lost.
_SEQUENCE = struct.Struct("<Q")
_VALUES = struct.Struct("<" + "d" * len(FIELDS))
SIZE = _SEQUENCE.size + 2 * _VALUES.size
FILE_SUFFIX = ".metrics"


def _slot(sequence: int) -> int:
    """The offset of the slot publication `sequence` is written to."""
    return _SEQUENCE.size + (sequence % 2) * _VALUES.size


def take(state: Any) -> dict[str, float]:
    """The snapshot of a ServerState (and its WebSocket handler), by FIELDS name."""
    stats = state.stats()
    extra = state.metrics()
    if tuple(extra["duration_bounds"]) != DURATION_BOUNDS:
        raise RuntimeError("the C core's duration buckets differ from DURATION_BOUNDS")
    values = {name: stats[name] for name in STATS_COUNTERS}
    values.update(bytes_in=extra["bytes_in"], bytes_out=extra["bytes_out"],
                  duration_sum=extra["duration_sum"], connections=stats["connections"],
                  connections_idle=extra["connections_idle"],
                  active_requests=stats["active_requests"])
    values.update(zip((f"responses_{c}" for c in STATUS_CLASSES), extra["responses_by_class"],
                      strict=True))
    values.update(zip((f"parse_errors_{s}" for s in PARSE_ERROR_STATUSES),
                      extra["parse_errors_by_status"], strict=True))
    values.update((f"duration_bucket_{i}", n) for i, n in enumerate(extra["duration_counts"]))
    websockets = state.websocket
    values["websocket_open"] = len(websockets.connections) if websockets is not None else 0
    return values


def sum_snapshots(snapshots: Sequence[Mapping[str, float]]) -> dict[str, float]:
    """The snapshot of a process: the sum of its serving loops' snapshots
    (--threads N), counters and gauges alike."""
    totals = dict.fromkeys(FIELDS, 0.0)
    for snapshot in snapshots:
        for name, value in snapshot.items():
            totals[name] += value
    return totals


class SnapshotWriter:
    """The block one process publishes into: a file in `directory` (a worker
    under the supervisor), or anonymous memory (a single server process,
    whose exporter reads it in-process)."""

    def __init__(self, directory: str | None = None) -> None:
        self.path: str | None = None
        if directory is None:
            self.block = mmap.mmap(-1, SIZE)
        else:
            # pid first (the supervisor tells live workers from exited ones by
            # it), then something unique: a recycled pid gets a file of its own
            self.path = os.path.join(directory, f"{os.getpid()}-{os.urandom(4).hex()}{FILE_SUFFIX}")
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                os.ftruncate(fd, SIZE)
                self.block = mmap.mmap(fd, SIZE)
            finally:
                os.close(fd)
        self.sequence = 0

    def publish(self, values: Mapping[str, float]) -> None:
        # the slot the last publication did not use, then the count that
        # points readers at it (x86 and the kernel's shared pages keep the
        # two stores in this order for a reader in another process)
        sequence = self.sequence + 1
        _VALUES.pack_into(self.block, _slot(sequence), *(float(values[f]) for f in FIELDS))
        _SEQUENCE.pack_into(self.block, 0, sequence)
        self.sequence = sequence

    def close(self) -> None:
        self.block.close()


def read_block(block: Any) -> dict[str, float] | None:
    """A consistent copy of a block (mmap or bytes): the last publication
    (all zeros before the first).  None only if the writer published again
    during every one of a thousand copies, which a writer publishing ten
    times a second never does."""
    for _ in range(1000):
        (before,) = _SEQUENCE.unpack_from(block, 0)
        values = _VALUES.unpack_from(block, _slot(before))
        (after,) = _SEQUENCE.unpack_from(block, 0)
        if before == after:
            return dict(zip(FIELDS, values, strict=True))
        # a publication came in meanwhile: the next may have been writing
        # into the slot just copied
        time.sleep(0)
    return None


def read_file(path: str) -> dict[str, float] | None:
    """The snapshot in a worker's file; None if it is gone or not written yet."""
    try:
        with open(path, "rb") as f:
            if os.fstat(f.fileno()).st_size < SIZE:
                return None
            with mmap.mmap(f.fileno(), SIZE, access=mmap.ACCESS_READ) as block:
                return read_block(block)
    except (FileNotFoundError, ValueError):
        return None


def file_pid(name: str) -> int | None:
    """The pid a worker's file name starts with."""
    head = name.partition("-")[0]
    return int(head) if head.isdigit() and name.endswith(FILE_SUFFIX) else None
