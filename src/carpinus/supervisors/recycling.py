"""When the supervisor replaces a worker that is still healthy: --max-worker-memory
and --max-worker-lifetime.

The supervisor asks `due()` about each serving worker on its wake-ups (at
most once per CHECK_INTERVAL); a worker that is due is replaced the way
SIGHUP replaces one: its successor starts first and the old worker drains
only once the new one is ready, so nothing is refused meanwhile.

--max-worker-lifetime gets a random 0..LIFETIME_JITTER share on top, drawn per
worker when it starts: workers started together (all of them, at boot) would
otherwise all be replaced in the same second, every lifetime.
(--max-requests has its own jitter option, as in gunicorn; a lifetime rarely
needs tuning beyond "about this long", so a fixed share keeps the option one.)
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from carpinus.config import Config
from carpinus.resident_memory import MIB, resident_bytes

CHECK_INTERVAL = 1.0  # seconds between two looks at the workers' memory and age
LIFETIME_JITTER = 0.1  # up to 10% on top of --max-worker-lifetime


@dataclass(frozen=True)
class Recycle:
    """Why a worker is to be replaced: `kind` counts it, `detail` is for the log."""

    kind: str  # "memory" or "lifetime"
    detail: str


class RecyclingPolicy:
    """--max-worker-memory (MiB) and --max-worker-lifetime (seconds), either may be None."""

    def __init__(self, max_memory_mib: int | None, max_lifetime: float | None) -> None:
        self.max_memory_mib = max_memory_mib
        self.max_lifetime = max_lifetime

    @classmethod
    def from_config(cls, config: Config) -> RecyclingPolicy:
        return cls(config.max_worker_memory, config.max_worker_lifetime)

    @property
    def enabled(self) -> bool:
        return self.max_memory_mib is not None or self.max_lifetime is not None

    def lifetime(self) -> float | None:
        """A new worker's lifetime in seconds, jitter included (None: unlimited)."""
        if self.max_lifetime is None:
            return None
        return self.max_lifetime * (1.0 + random.uniform(0.0, LIFETIME_JITTER))

    def due(self, pid: int, age: float, lifetime: float | None) -> Recycle | None:
        """Whether worker `pid`, started `age` seconds ago with `lifetime`, is to be replaced."""
        if lifetime is not None and age >= lifetime:
            return Recycle("lifetime", f"it has served {age:.1f}s, its lifetime "
                           f"(--max-worker-lifetime {self.max_lifetime:g} + jitter) is "
                           f"{lifetime:.1f}s")
        if self.max_memory_mib is not None:
            resident = resident_bytes(pid)
            if resident is not None and resident > self.max_memory_mib * MIB:
                return Recycle("memory", f"its resident memory, {resident / MIB:.0f} MiB, is "
                               f"above --max-worker-memory {self.max_memory_mib} MiB")
        return None
