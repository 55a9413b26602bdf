"""The shared block a serving process publishes its counters into."""

from __future__ import annotations

import os
import threading
from pathlib import Path

from carpinus.metrics.snapshot import (
    _SEQUENCE,
    DURATION_BOUNDS,
    FIELDS,
    SnapshotWriter,
    file_pid,
    read_block,
    read_file,
)


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
    """The seqlock: while the sequence is odd the reader waits; every copy
    it returns is one whole snapshot."""
    writer = SnapshotWriter()
    writer.publish(numbered())
    _SEQUENCE.pack_into(writer.block, 0, writer.sequence + 1)  # a writer mid-update
    assert read_block(writer.block) is None  # it kept trying, and gave up
    _SEQUENCE.pack_into(writer.block, 0, writer.sequence)
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


def test_file_names() -> None:
    assert file_pid("123-abcd.metrics") == 123
    assert file_pid("123-abcd.tmp") is None and file_pid("x-1.metrics") is None


def test_bounds_are_the_cores(serve) -> None:
    handle = serve(lambda *a: None)
    assert handle.state.metrics()["duration_bounds"] == DURATION_BOUNDS
