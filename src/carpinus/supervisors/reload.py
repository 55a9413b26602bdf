"""--reload: watch source files with watchfiles and tell the supervisor what changed.

Which changes count follows uvicorn: files matching an --reload-include
pattern (default `*.py`) under the --reload-dir directories (default: the
current directory), unless they match an --reload-exclude pattern (default
`.*`, `.py[cod]`, `.sw.*`, `~*`) or lie in an excluded directory.  A default
pattern named with the other option is dropped (`--reload-exclude '*.py'`
stops watching Python files; `--reload-include '.*'` watches hidden files).
Patterns match the end of a path (pathlib's PurePath.match), so `*.html` and
`templates/*.html` both work.  watchfiles' own filter also applies: no
events from `__pycache__`, `.git`, virtual environments and the like.

watchfiles blocks while it waits, so it runs in a thread; it hands batches of
changes to the supervisor's select() loop through a pipe.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from carpinus.config import Config

logger = logging.getLogger("carpinus.error")

DEFAULT_INCLUDES = ("*.py",)
DEFAULT_EXCLUDES = (".*", ".py[cod]", ".sw.*", "~*")


class ChangeFilter:
    """Decides whether a changed path should reload the workers."""

    def __init__(self, includes: Sequence[str], excludes: Sequence[str]) -> None:
        self.includes = [p for p in DEFAULT_INCLUDES if p not in excludes]
        self.includes += [p for p in includes if p not in self.includes]
        self.excluded_dirs: list[Path] = []
        self.excludes = [p for p in DEFAULT_EXCLUDES if p not in includes]
        for pattern in excludes:
            if pattern in DEFAULT_INCLUDES:
                continue
            path = Path(pattern)
            if path.is_dir():
                self.excluded_dirs.append(path.resolve())
            else:
                self.excludes.append(pattern)

    def __call__(self, path: Path) -> bool:
        if not any(path.match(pattern) for pattern in self.includes):
            return False
        if any(path.match(pattern) for pattern in self.excludes):
            return False
        return not any(directory in path.parents for directory in self.excluded_dirs)


def watched_directories(config: Config) -> list[Path]:
    """--reload-dir values that exist (resolved), or the current directory."""
    directories = []
    for name in config.reload_dirs:
        path = Path(name).resolve()
        if path.is_dir():
            directories.append(path)
        else:
            logger.warning("--reload-dir %s is not a directory; ignored.", name)
    if not directories:
        directories = [Path.cwd()]
    # A directory inside another one is watched through its parent already.
    return sorted(
        d for d in set(directories) if not any(p in d.parents for p in directories if p != d)
    )


class FileWatcher:
    """Runs watchfiles in a thread; `fileno()` turns readable when changes are waiting."""

    def __init__(self, directories: Sequence[Path], change_filter: ChangeFilter,
                 delay: float = 0.0) -> None:
        self.directories = list(directories)
        self.filter = change_filter
        self.delay = delay  # --reload-delay
        self._read_fd, self._write_fd = os.pipe()
        os.set_blocking(self._read_fd, False)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._changes: set[Path] = set()
        self._thread: threading.Thread | None = None

    @classmethod
    def from_config(cls, config: Config) -> FileWatcher:
        return cls(
            watched_directories(config),
            ChangeFilter(config.reload_includes, config.reload_excludes),
            config.reload_delay,
        )

    def fileno(self) -> int:
        return self._read_fd

    def start(self) -> None:
        logger.info(
            "Will watch for changes in these directories: %s",
            [str(d) for d in self.directories],
        )
        self._thread = threading.Thread(target=self._watch, name="carpinus-reload", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5.0)
        for fd in (self._read_fd, self._write_fd):
            try:
                os.close(fd)
            except OSError:
                pass

    def take_changes(self) -> list[Path]:
        """The changed paths that count, since the last call (sorted)."""
        try:
            os.read(self._read_fd, 4096)
        except BlockingIOError:
            pass
        with self._lock:
            changes, self._changes = self._changes, set()
        return sorted(changes)

    def _watch(self) -> None:
        import watchfiles

        default_filter = watchfiles.DefaultFilter()

        def wanted(change: Any, path: str) -> bool:
            return default_filter(change, path) and self.filter(Path(path))

        try:
            for batch in watchfiles.watch(
                *self.directories,
                watch_filter=wanted,
                stop_event=self._stop,
                raise_interrupt=False,
                ignore_permission_denied=True,
            ):
                with self._lock:
                    self._changes.update(Path(path) for _, path in batch)
                os.write(self._write_fd, b"!")
                # Look again only after the delay: what changes meanwhile (the
                # rest of a save-all, a checkout) comes as one batch.
                if self._stop.wait(self.delay):
                    break
        except Exception:  # pragma: no cover - watchfiles failed (e.g. inotify limits)
            logger.exception("The file watcher stopped; --reload no longer works.")
