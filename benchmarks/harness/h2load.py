"""Run h2load (nghttp2's HTTP/2 load generator) pinned to the client CPUs.

wrk speaks HTTP/1.1 only; the h2 workloads use h2load over h2c with prior
knowledge (an http:// URL): `-c` connections, each keeping `-m` streams in
flight, for `-D` seconds.  h2load prints counters but, for latency, only the
min/max/mean/sd of request time; the percentiles come from its
`--log-file`, one tab-separated row per request (start time in µs since the
epoch, status, µs until the end of the response; status -1 for a failed
stream).  The result is a WrkResult, so it lands in the same records as wrk's.

wrk's --timeout has no counterpart here: h2load's nearest, -N (a connection
silent that long is dropped), makes h2load 1.52 (Debian 12) abort on a libev
assertion ("I/O watcher with invalid fd found in epoll_ctl") as soon as it
fires, which a slow server (hypercorn at -m10) triggers within seconds.  A
wedged server cannot hang the run: -D ends h2load, and the subprocess has a
deadline.
"""

from __future__ import annotations

import re
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from harness.wrk import EXTRA_WAIT, WrkFailed, WrkResult, WrkSettings, client_env

# "requests: 109319 total, 110319 started, 109319 done, 109319 succeeded,
#  0 failed, 0 errored, 0 timeout".  In timing mode (-D) the streams still in
# flight when the time is up are "started" but not "done"; they are not failures.
REQUESTS_LINE = re.compile(
    r"^requests: (?P<total>\d+) total, (?P<started>\d+) started, (?P<done>\d+) done, "
    r"(?P<succeeded>\d+) succeeded, (?P<failed>\d+) failed, (?P<errored>\d+) errored, "
    r"(?P<timeout>\d+) timeout", re.MULTILINE)
STATUS_LINE = re.compile(
    r"^status codes: (?P<s2xx>\d+) 2xx, (?P<s3xx>\d+) 3xx, (?P<s4xx>\d+) 4xx, (?P<s5xx>\d+) 5xx",
    re.MULTILINE)
FINISHED_LINE = re.compile(
    r"^finished in (?P<time>[\d.]+)(?P<unit>us|ms|s), (?P<rps>[\d.]+) req/s", re.MULTILINE)
TIME_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0}
FAILED_STREAM = -1


@dataclass(frozen=True)
class H2Request:
    """What every stream sends: a path, extra headers, a body file for POST."""

    path: str
    headers: tuple[tuple[str, str], ...]
    body_file: Path | None
    streams: int  # h2load -m: streams in flight per connection


def h2load_command(url: str, request: H2Request, duration_s: int, log_file: Path,
                   settings: WrkSettings) -> list[str]:
    command = [
        "taskset", "-c", settings.cpus, "h2load",
        f"--threads={settings.threads}", f"--clients={settings.connections}",
        f"--max-concurrent-streams={request.streams}", f"--duration={duration_s}",
        f"--log-file={log_file}",
    ]
    for name, value in request.headers:
        command.append(f"--header={name}: {value}")
    if request.body_file is not None:
        command.append(f"--data={request.body_file}")  # makes every request a POST
    return [*command, url]


def run_h2load(url: str, request: H2Request, duration_s: int,
               settings: WrkSettings) -> WrkResult:
    with tempfile.TemporaryDirectory(prefix="carpinus-h2load-") as tmp:
        log_file = Path(tmp) / "requests.tsv"
        command = h2load_command(url, request, duration_s, log_file, settings)
        try:
            done = subprocess.run(command, capture_output=True, text=True, env=client_env(),
                                  timeout=duration_s + EXTRA_WAIT, check=False)
        except subprocess.TimeoutExpired:
            raise WrkFailed(f"h2load did not finish within {duration_s + EXTRA_WAIT:.0f} s") \
                from None
        if done.returncode != 0:
            raise WrkFailed(f"h2load exited with {done.returncode}: "
                            f"{done.stderr.strip() or done.stdout.strip()}")
        latencies_us = read_latencies(log_file)
    return parse_output(done.stdout, latencies_us)


def read_latencies(log_file: Path) -> list[int]:
    """The durations (µs) of the streams that got a response, sorted."""
    latencies = []
    with log_file.open() as rows:
        for row in rows:
            _, status, duration_us = row.split("\t", 2)
            if int(status) != FAILED_STREAM:
                latencies.append(int(duration_us))
    latencies.sort()
    return latencies


def percentile(sorted_values: list[int], fraction: float) -> float:
    """Nearest rank, as wrk's --latency reports it."""
    if not sorted_values:
        return 0.0
    rank = max(1, round(fraction * len(sorted_values)))
    return float(sorted_values[min(rank, len(sorted_values)) - 1])


def parse_output(stdout: str, latencies_us: list[int]) -> WrkResult:
    counts, statuses, finished = (REQUESTS_LINE.search(stdout), STATUS_LINE.search(stdout),
                                  FINISHED_LINE.search(stdout))
    if counts is None or statuses is None or finished is None:
        raise WrkFailed(f"h2load printed no result lines:\n{stdout}")
    succeeded, rps = int(counts["succeeded"]), float(finished["rps"])
    # h2load's req/s is succeeded / the exact duration; "finished in 8.00s"
    # is rounded, so the duration is taken back from the rate when there is one.
    duration_s = succeeded / rps if rps else float(finished["time"]) * TIME_UNITS[finished["unit"]]
    mean_us = sum(latencies_us) / len(latencies_us) if latencies_us else 0.0
    return WrkResult(
        requests=succeeded,
        duration_s=duration_s,
        avg_ms=mean_us / 1000,
        p50_ms=percentile(latencies_us, 0.50) / 1000,
        p99_ms=percentile(latencies_us, 0.99) / 1000,
        max_ms=(latencies_us[-1] if latencies_us else 0) / 1000,
        # Every answer must be 2xx (wrk counts only 4xx and 5xx; here a
        # redirect is as wrong as an error).
        non_2xx=int(statuses["s3xx"]) + int(statuses["s4xx"]) + int(statuses["s5xx"]),
        # "failed" already includes the "errored" and "timeout" streams.
        socket_errors={"failed": int(counts["failed"])},
    )
