"""Records (one per server x workload x round), their summaries, the JSON document."""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

from harness.wrk import WrkResult


@dataclass
class Record:
    server: str
    workload: str
    app: str
    round: int
    rps: float = 0.0
    avg_ms: float = 0.0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    max_ms: float = 0.0
    requests: int = 0
    duration_s: float = 0.0
    errors: int = 0
    non_2xx: int = 0
    socket_errors: dict[str, int] = field(default_factory=dict)
    # The server's CPU time (its process group's, user + system) during the
    # measured run per request, in µs; 0 when not measured.
    server_cpu_us: float = 0.0
    # The memory of the server's processes at the end of the measured run, in
    # MiB: the sum of their RSS (shared pages once per process that maps them)
    # and of their PSS (every page once); 0 when not measured.
    server_rss_mib: float = 0.0
    server_pss_mib: float = 0.0
    server_processes: int = 0  # how many processes those sums are over
    # Set when nothing could be measured: the server did not start, the probe
    # found a wrong answer, or wrk failed.
    failure: str | None = None

    @property
    def valid(self) -> bool:
        return self.failure is None and self.errors == 0 and self.requests > 0

    @classmethod
    def measured(cls, server: str, workload: str, app: str, round_number: int,
                 result: WrkResult, server_cpu_s: float = 0.0, server_rss_mib: float = 0.0,
                 server_pss_mib: float = 0.0, server_processes: int = 0) -> Record:
        return cls(
            server, workload, app, round_number, rps=result.rps, avg_ms=result.avg_ms,
            p50_ms=result.p50_ms, p99_ms=result.p99_ms, max_ms=result.max_ms,
            requests=result.requests, duration_s=result.duration_s, errors=result.errors,
            non_2xx=result.non_2xx, socket_errors=dict(result.socket_errors),
            server_cpu_us=server_cpu_s * 1e6 / result.requests if result.requests else 0.0,
            server_rss_mib=server_rss_mib, server_pss_mib=server_pss_mib,
            server_processes=server_processes,
        )

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["valid"] = self.valid
        return data


@dataclass(frozen=True)
class Summary:
    """One server on one workload across its rounds: medians and the spread."""

    server: str
    workload: str
    rounds: int
    rps: float
    rps_min: float
    rps_max: float
    avg_ms: float
    p50_ms: float
    p99_ms: float
    p99_min_ms: float
    p99_max_ms: float
    server_cpu_us: float
    server_rss_mib: float
    server_pss_mib: float
    errors: int
    failures: tuple[str, ...]
    valid: bool

    @property
    def rps_spread_pct(self) -> float:
        """(max - min) / median across rounds: how much the rounds disagree."""
        return 100 * (self.rps_max - self.rps_min) / self.rps if self.rps else 0.0

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["rps_spread_pct"] = self.rps_spread_pct
        data["failures"] = list(self.failures)
        return data


def summarize(records: Iterable[Record], server: str, workload: str) -> Summary:
    mine = [r for r in records if r.server == server and r.workload == workload]
    measured = [r for r in mine if r.failure is None and r.requests > 0]
    failures = tuple(r.failure for r in mine if r.failure is not None)
    if not measured:
        return Summary(server, workload, len(mine), 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
                       sum(r.errors for r in mine), failures, False)
    rps = [r.rps for r in measured]
    p99 = [r.p99_ms for r in measured]
    return Summary(
        server, workload, rounds=len(mine),
        rps=statistics.median(rps), rps_min=min(rps), rps_max=max(rps),
        avg_ms=statistics.median(r.avg_ms for r in measured),
        p50_ms=statistics.median(r.p50_ms for r in measured),
        p99_ms=statistics.median(p99), p99_min_ms=min(p99), p99_max_ms=max(p99),
        server_cpu_us=statistics.median(r.server_cpu_us for r in measured),
        server_rss_mib=statistics.median(r.server_rss_mib for r in measured),
        server_pss_mib=statistics.median(r.server_pss_mib for r in measured),
        errors=sum(r.errors for r in mine), failures=failures,
        valid=all(r.valid for r in mine),
    )


def summarize_all(records: list[Record], servers: list[str],
                  workloads: list[str]) -> dict[tuple[str, str], Summary]:
    return {(s, w): summarize(records, s, w) for w in workloads for s in servers}
