"""Run wrk pinned to the client CPUs and read the line report.lua prints."""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

RESULT_MARKER = "CARPINUS_BENCH_RESULT "
# wrk stops by itself after -d; this only guards against a wedged wrk.
EXTRA_WAIT = 60.0
SOCKET_ERROR_KINDS = ("connect", "read", "write", "timeout")


class WrkFailed(RuntimeError):
    pass


@dataclass(frozen=True)
class WrkSettings:
    connections: int
    cpus: str
    threads: int
    timeout_s: int


@dataclass(frozen=True)
class WrkResult:
    requests: int
    duration_s: float
    avg_ms: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    non_2xx: int
    socket_errors: dict[str, int]

    @property
    def rps(self) -> float:
        return self.requests / self.duration_s if self.duration_s else 0.0

    @property
    def errors(self) -> int:
        return self.non_2xx + sum(self.socket_errors.values())


def wrk_command(url: str, script: Path, duration_s: int, settings: WrkSettings) -> list[str]:
    return [
        "taskset", "-c", settings.cpus,
        "wrk", f"-t{settings.threads}", f"-c{settings.connections}", f"-d{duration_s}s",
        f"--timeout={settings.timeout_s}s", "--latency", "-s", str(script), url,
    ]


def client_env() -> dict[str, str]:
    """The environment without preloaded libraries.

    wrk is the load generator, not what is under test: a sanitizer runtime
    preloaded for the server (the test suite's ASan leg) would only slow it.
    """
    return {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}


def run_wrk(url: str, script: Path, duration_s: int, settings: WrkSettings) -> WrkResult:
    command = wrk_command(url, script, duration_s, settings)
    done = subprocess.run(command, capture_output=True, text=True, env=client_env(),
                          timeout=duration_s + EXTRA_WAIT, check=False)
    if done.returncode != 0:
        raise WrkFailed(f"wrk exited with {done.returncode}: {done.stderr.strip() or done.stdout}")
    return parse_output(done.stdout)


def parse_output(stdout: str) -> WrkResult:
    for line in stdout.splitlines():
        if line.startswith(RESULT_MARKER):
            raw = json.loads(line[len(RESULT_MARKER):])
            return WrkResult(
                requests=raw["requests"],
                duration_s=raw["duration_us"] / 1e6,
                avg_ms=raw["latency_mean_us"] / 1000,
                p50_ms=raw["latency_p50_us"] / 1000,
                p99_ms=raw["latency_p99_us"] / 1000,
                max_ms=raw["latency_max_us"] / 1000,
                non_2xx=raw["non_2xx"],
                socket_errors={kind: raw[kind] for kind in SOCKET_ERROR_KINDS},
            )
    raise WrkFailed(f"wrk printed no {RESULT_MARKER.strip()} line:\n{stdout}")
