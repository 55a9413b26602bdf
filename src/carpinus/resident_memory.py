"""How much memory a process holds in RAM (its resident set size), read from /proc.

The supervisor reads its workers' size once a second for --max-worker-memory,
so this stays one small read of /proc/PID/statm (its second field is the
resident pages) rather than parsing /proc/PID/status.  Linux only: other
systems have no /proc, and Config refuses --max-worker-memory there.
"""

from __future__ import annotations

import os

MIB = 1024 * 1024
_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def memory_readable() -> bool:
    """True when this system shows processes' resident memory in /proc."""
    return os.path.exists("/proc/self/statm")


def resident_bytes(pid: int) -> int | None:
    """The resident set size of process `pid` in bytes; None if it has exited."""
    try:
        with open(f"/proc/{pid}/statm", "rb") as statm:
            fields = statm.read().split()
    except OSError:  # exited (or never was): nothing to measure
        return None
    return int(fields[1]) * _PAGE_SIZE
