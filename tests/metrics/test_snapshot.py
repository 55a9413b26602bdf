"""The shared block a serving process publishes its counters into."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

from carpinus.metrics.snapshot import (
    _VALUES,
    DURATION_BOUNDS,
    FIELDS,
    SnapshotWriter,
    _slot,
    file_pid,
    read_block,
    read_file,
)
from tests.support.waiting import wait_for


def numbered(offset: float = 0.0) -> dict[str, float]:
    return {name: i + offset for i, name in enumerate(FIELDS)}


def test_a_worker_file_round_trips(tmp_path: Path) -> None:
    writer = SnapshotWriter(str(tmp_path))
    assert writer.path is not None
    (name,) = os.listdir(tmp_path)
    assert file_pid(name) == os.getpid()
    assert read_file(writer.path) == dict.fromkeys(FIELDS, 0.0)  # not yet published
    writer.publish(numbered())
    assert read_file(writer.path) == numbered()
    writer.close()
    os.unlink(writer.path)
    assert read_file(writer.path) is None


def test_a_reader_never_sees_half_an_update() -> None:
    """Two slots behind a publication count: a half-written slot is never
    the one the count points at, and every copy the reader returns is one
    whole snapshot while a writer publishes as fast as it can."""
    writer = SnapshotWriter()
    writer.publish(numbered())
    # a writer stopped half-way through its next publication
    _VALUES.pack_into(writer.block, _slot(writer.sequence + 1), *range(len(FIELDS)))
    assert read_block(writer.block) == numbered()
    done = threading.Event()

    def write() -> None:
        n = 0
        while not done.is_set():
            n += 1
            writer.publish(dict.fromkeys(FIELDS, float(n)))

    thread = threading.Thread(target=write)
    thread.start()
    try:
        for _ in range(200):
            snapshot = read_block(writer.block)
            assert snapshot is not None and len(set(snapshot.values())) == 1
    finally:
        done.set()
        thread.join()


PUBLISH_FOREVER = """
import sys
from carpinus.metrics.snapshot import FIELDS, SnapshotWriter
writer = SnapshotWriter(sys.argv[1])
print(writer.path, flush=True)
n = 0
while True:
    n += 1
    writer.publish(dict.fromkeys(FIELDS, float(n)))
"""


def test_a_writer_killed_mid_publication_leaves_its_last_snapshot(tmp_path: Path) -> None:
    """SIGKILL lands wherever the writer is; a worker publishing all the
    time is killed mid-publication most of the time, and its file must still
    read as one whole, nonzero snapshot (the supervisor folds it into the
    totals; a lost read would lose the worker's counts for good)."""
    for _ in range(10):
        child = subprocess.Popen([sys.executable, "-c", PUBLISH_FOREVER, str(tmp_path)],
                                 stdout=subprocess.PIPE, text=True)
        assert child.stdout is not None
        path = child.stdout.readline().strip()
        wait_for(lambda path=path: (read_file(path) or {}).get("requests_total", 0) > 100,
                 10, what="the writer publishing")
        child.kill()
        child.wait()
        child.stdout.close()
        snapshot = read_file(path)
        assert snapshot is not None and len(set(snapshot.values())) == 1, snapshot
        assert snapshot["requests_total"] > 100
        os.unlink(path)


def test_file_names() -> None:
    assert file_pid("123-abcd.metrics") == 123
    assert file_pid("123-abcd.tmp") is None and file_pid("x-1.metrics") is None


def test_bounds_are_the_cores(serve) -> None:
    handle = serve(lambda *a: None)
    assert handle.state.metrics()["duration_bounds"] == DURATION_BOUNDS
