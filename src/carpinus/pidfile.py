"""--pid PATH: a file holding the pid of the process to signal (supervisor or server)."""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator

logger = logging.getLogger("carpinus.error")


class PidFileError(Exception):
    """The pid file cannot be written, or names another live carpinus."""


def _pid_in(path: str) -> int | None:
    try:
        with open(path, encoding="ascii") as f:
            return int(f.read().strip() or "0") or None
    except (OSError, ValueError):
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's live process
    return True


@contextlib.contextmanager
def pid_file(path: str) -> Iterator[None]:
    """Write our pid to `path` for as long as the block runs; remove it after.

    The file is written atomically (a temporary file renamed into place), so
    a reader never sees it half-written.  A file naming a live process other
    than this one is an error (two servers would fight over it); one naming a
    dead process is stale and replaced.  The file is removed on exit only if
    it still holds our pid.
    """
    path = os.path.abspath(path)
    pid = os.getpid()
    old = _pid_in(path)
    if old is not None and old != pid and _alive(old):
        raise PidFileError(
            f"pid file {path} names process {old}, which is running; "
            "stop it or remove the file"
        )
    if old is not None and old != pid:
        logger.warning("Replacing stale pid file %s (process %d is gone)", path, old)
    temporary = f"{path}.{pid}.tmp"
    try:
        with open(temporary, "w", encoding="ascii") as f:
            f.write(f"{pid}\n")
        os.replace(temporary, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise PidFileError(f"cannot write pid file {path}: {exc.strerror or exc}") from None
    try:
        yield
    finally:
        if _pid_in(path) == pid:
            with contextlib.suppress(OSError):
                os.unlink(path)
