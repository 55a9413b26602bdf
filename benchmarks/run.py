"""Load-test carpinus and its peers with wrk (h2load, wsload); write JSON, markdown, a chart.

    python benchmarks/run.py --servers carpinus,uvicorn,granian \\
        --workloads hello,sleep,upload16k,upload1m,headers --duration 10 --rounds 3 \\
        --json out.json --markdown out.md --plot out.png

Each server runs one worker process on 127.0.0.1 pinned to the server CPUs
(the free-threaded comparison's three run two event loops each); wrk runs
pinned to the client CPUs.  Rounds are interleaved: round 1 runs
every server through every workload, then round 2 does it again, and so on,
so a slow minute on a shared machine hurts one round of everyone rather than
all rounds of one server.  Each measurement is preceded by a probe (one
request whose answer is checked) and a warm-up run of wrk whose numbers are
dropped.  The h2-* workloads send the same requests over HTTP/2 cleartext
with h2load, the websocket* ones echo messages with wsload.  See
benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import importlib.util
import json
import os
import platform
import shlex
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

from harness import h2c, markdown
from harness.h2load import H2Request, run_h2load
from harness.requirements import (
    CURL,
    FASTAPI,
    GCC,
    H2LOAD,
    MATPLOTLIB,
    TASKSET,
    WRK,
    Requirement,
    explain_missing,
    missing,
)
from harness.results import Record, Summary, summarize_all
from harness.servers import HOST, SERVERS, GroupMemory, RunningServer, ServerFailed, running
from harness.workloads import WORKLOADS, probe, websocket_messages, write_client_files
from harness.wrk import WrkFailed, WrkResult, WrkSettings, run_wrk
from harness.wsload import probe_websocket, run_wsload

REPO = Path(__file__).resolve().parent.parent
APPS = {"raw": "carpinus.demo:app", "fastapi": "fastapi_app:app"}
DEFAULT_SERVERS = "carpinus,uvicorn,granian"
EXIT_INVALID = 1  # some result had errors or could not be measured
EXIT_USAGE = 2  # bad arguments or something missing on this machine


class UsageError(Exception):
    pass


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Benchmark carpinus against other ASGI servers with wrk, h2load and wsload.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--servers", default=DEFAULT_SERVERS,
                        help=f"comma-separated, or 'all': {', '.join(SERVERS)}")
    parser.add_argument("--workloads", default="all",
                        help=f"comma-separated, or 'all' (file1m and file64m only with "
                             f"--app fastapi, which serves them): {', '.join(WORKLOADS)}")
    parser.add_argument("--app", choices=sorted(APPS), default="raw",
                        help="raw: carpinus.demo:app; fastapi: benchmarks/apps/fastapi_app.py")
    parser.add_argument("--duration", type=int, default=10, help="seconds measured per run")
    parser.add_argument("--warmup", type=int, default=2,
                        help="seconds of load before each measured run (0: none)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=100,
                        help="connections: wrk -c, h2load -c, wsload")
    parser.add_argument("--timeout", type=int, default=2,
                        help="wrk --timeout: a reply slower than this counts as a socket error "
                             "(h2load has no such limit: see harness/h2load.py)")
    parser.add_argument("--server-cpus", default="0", help="taskset CPU list for the servers")
    parser.add_argument("--client-cpus", default="1",
                        help="taskset CPU list for the load client (wrk, h2load, wsload); "
                             "wrk and h2load get one thread per CPU")
    parser.add_argument("--json", type=Path, help="write every record here")
    parser.add_argument("--markdown", type=Path, help="write the tables here")
    parser.add_argument("--plot", type=Path, help="write the PNG chart here (needs matplotlib)")
    args = parser.parse_args(argv)
    for name in ("duration", "rounds", "connections", "timeout"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1")
    if args.warmup < 0:
        parser.error("--warmup must be 0 or more")
    return args


def pick(value: str, table: dict[str, Any], what: str) -> list[str]:
    names = list(table) if value == "all" else [n.strip() for n in value.split(",") if n.strip()]
    unknown = [n for n in names if n not in table]
    if unknown or not names:
        raise UsageError(f"unknown {what}(s) {', '.join(unknown) or '(none given)'}; "
                         f"choose from: {', '.join(table)}")
    return names


def parse_cpus(text: str) -> set[int]:
    """A taskset CPU list ("1", "0-3", "0,2") as a set."""
    cpus: set[int] = set()
    try:
        for part in text.split(","):
            low, _, high = part.partition("-")
            cpus.update(range(int(low), int(high or low) + 1))
    except ValueError:
        raise UsageError(f"{text!r} is not a CPU list like 1, 0-3 or 0,2") from None
    return cpus


def check_cpus(server_cpus: str, client_cpus: str) -> int:
    """Validate both CPU lists; the number of wrk threads (one per client CPU)."""
    available = os.sched_getaffinity(0)
    server, client = parse_cpus(server_cpus), parse_cpus(client_cpus)
    for option, cpus in (("--server-cpus", server), ("--client-cpus", client)):
        if not cpus <= available:
            raise UsageError(
                f"{option} {sorted(cpus)}: this process may only use CPUs {sorted(available)}; "
                "pass --server-cpus and --client-cpus from those")
    if server & client:
        print(f"warning: servers and wrk share CPU(s) {sorted(server & client)}; "
              "the numbers will mostly measure that contention", file=sys.stderr)
    return len(client)


def requirements_for(args: argparse.Namespace, servers: list[str],
                     workloads: list[str]) -> list[Requirement]:
    needed: list[Requirement] = [TASKSET]
    protocols = {WORKLOADS[w].protocol for w in workloads}
    if "http" in protocols:
        needed.append(WRK)
    if "websocket" in protocols:
        needed.append(GCC)  # wsload is built from source at the start of the run
    if "h2" in protocols:
        needed += [H2LOAD, CURL]  # curl probes each h2 workload once over h2c
    for server in servers:
        needed.extend(SERVERS[server].needs)
    if args.app == "fastapi":
        needed.append(FASTAPI)
    if args.plot:
        needed.append(MATPLOTLIB)
    return needed


def versions_of(servers: list[str]) -> dict[str, dict[str, str]]:
    return {s: {r.name: r.version() for r in SERVERS[s].needs} for s in servers}


def carpinus_build() -> dict[str, str]:
    """The checkout's commit, a digest of the built C core and where it was imported from.

    Taken at the start and at the end of a run: on a machine where carpinus
    is being developed, a rebuild in between means rounds ran different code.
    """
    done = subprocess.run(["git", "-C", str(REPO), "describe", "--always", "--dirty"],
                          capture_output=True, text=True, check=False)
    spec = importlib.util.find_spec("carpinus._core")
    core = Path(spec.origin) if spec and spec.origin else None
    digest = hashlib.sha256(core.read_bytes()).hexdigest()[:16] if core else "unknown"
    return {"commit": done.stdout.strip() or "unknown", "core_sha256": digest,
            "core_path": str(core) if core else "unknown"}


def warn_if_not_this_checkout(build: dict[str, str]) -> None:
    """The commit recorded is this checkout's; say so when the servers would
    import another carpinus (an editable install of another worktree, say)."""
    if not build["core_path"].startswith(str(REPO / "src") + os.sep):
        print(f"warning: carpinus is imported from {build['core_path']}, not from this "
              f"checkout; the recorded commit {build['commit']} is not what runs. "
              f"To run this checkout: PYTHONPATH={REPO / 'src'} (after building it)",
              file=sys.stderr)


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def loadavg() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


LoadRun = Callable[[int], WrkResult]  # runs the load client for so many seconds


def warm_up_and_measure(started: RunningServer, run: LoadRun,
                        args: argparse.Namespace) -> tuple[WrkResult, float, GroupMemory]:
    """run(seconds) for the warm-up (numbers dropped), then for the measurement:
    its result, the server's CPU seconds during it and its memory at the end."""
    if args.warmup:
        run(args.warmup)
    cpu = started.cpu_seconds()
    result = run(args.duration)
    return result, started.cpu_seconds() - cpu, started.memory()


def probe_and_client(server: str, workload: str, port: int, client_file: Path | None,
                     wrk: WrkSettings) -> tuple[str | None, LoadRun]:
    """Send the workload's request once and check the answer (the problem found,
    or None), and the load client that repeats it: wrk for HTTP/1.1, h2load
    over h2c (probed with curl), wsload for WebSocket (one request = one echoed
    message).  client_file: wrk's Lua script, or h2load's request body."""
    spec = WORKLOADS[workload]
    ceiling = SERVERS[server].ceiling
    url = f"http://{HOST}:{port}{spec.path}"
    if spec.protocol == "websocket":
        messages = websocket_messages(spec)
        return (probe_websocket(HOST, port, spec.path, messages[0], spec.deflate),
                lambda seconds: run_wsload(HOST, port, spec.path, messages, spec.deflate,
                                           seconds, wrk))
    if spec.protocol == "h2":
        request = H2Request(spec.path, spec.headers, client_file, spec.streams)
        return (h2c.probe(HOST, port, spec.method, spec.path, spec.headers, spec.body,
                          None if ceiling else spec.expected_body),
                lambda seconds: run_h2load(url, request, seconds, wrk))
    script = client_file
    assert script is not None, f"no wrk script was written for {workload}"
    return (probe(spec, HOST, port, ceiling),
            lambda seconds: run_wrk(url, script, seconds, wrk))


def measure(server: str, workload: str, started: RunningServer, round_number: int,
            client_file: Path | None, args: argparse.Namespace, wrk: WrkSettings) -> Record:
    """Probe, warm up, measure one server on one workload."""
    problem, run = probe_and_client(server, workload, started.port, client_file, wrk)
    if problem:
        return Record(server, workload, args.app, round_number, failure=problem)
    try:
        result, cpu, memory = warm_up_and_measure(started, run, args)
    except WrkFailed as exc:
        return Record(server, workload, args.app, round_number, failure=str(exc))
    return Record.measured(server, workload, args.app, round_number, result, cpu,
                           server_rss_mib=memory.rss_mib, server_pss_mib=memory.pss_mib,
                           server_processes=memory.processes)


def run_server_round(server: str, workloads: list[str], round_number: int,
                     client_files: dict[str, Path], args: argparse.Namespace,
                     wrk: WrkSettings) -> list[Record]:
    """Start `server` once and take it through every workload."""
    records = []
    try:
        with running(server, APPS[args.app], args.server_cpus) as started:
            for workload in workloads:
                record = measure(server, workload, started, round_number,
                                 client_files.get(workload), args, wrk)
                report_progress(record, args.rounds)
                records.append(record)
    except ServerFailed as exc:
        print(f"[round {round_number}/{args.rounds}] {exc}", file=sys.stderr, flush=True)
        for workload in workloads[len(records):]:
            record = Record(server, workload, args.app, round_number, failure=str(exc))
            report_progress(record, args.rounds)
            records.append(record)
    return records


def report_progress(record: Record, rounds: int) -> None:
    where = f"[round {record.round}/{rounds}] {record.server:<17} {record.workload:<16}"
    if record.failure:
        first_line = record.failure.splitlines()[0]
        print(f"{where} FAILED: {first_line}", file=sys.stderr, flush=True)
        return
    errors = "" if record.valid else f"  INVALID: {record.non_2xx} non-2xx, " \
        f"socket errors {record.socket_errors}"
    print(f"{where} {record.rps:>10,.0f} req/s  avg {record.avg_ms:7.2f} ms  "
          f"p99 {record.p99_ms:7.2f} ms{errors}", file=sys.stderr, flush=True)


def build_document(args: argparse.Namespace, argv: list[str], servers: list[str],
                   workloads: list[str], wrk: WrkSettings, started: str, load_start: str,
                   build_start: dict[str, str], records: list[Record],
                   summaries: dict[tuple[str, str], Summary]) -> dict[str, Any]:
    return {
        "schema": "carpinus-benchmark/1",
        "started": started,
        "command": "python benchmarks/run.py " + shlex.join(argv),
        "settings": {
            "app": args.app, "app_target": APPS[args.app], "servers": servers,
            "workloads": workloads, "duration_s": args.duration, "warmup_s": args.warmup,
            "rounds": args.rounds, "connections": args.connections,
            "wrk_threads": wrk.threads, "wrk_timeout_s": args.timeout,
            "server_cpus": args.server_cpus, "client_cpus": args.client_cpus,
        },
        "machine": {
            "cpu": cpu_model(), "cpus": os.cpu_count(), "kernel": platform.release(),
            "loadavg_start": load_start, "loadavg_end": loadavg(),
        },
        "python": {
            "version": platform.python_version(),
            "implementation": platform.python_implementation(),
            "executable": sys.executable,
        },
        "carpinus_build": {"start": build_start, "end": carpinus_build()},
        "versions": versions_of(servers),
        "tools": {"wrk": WRK.version() if WRK.is_present() else "not used",
                  "taskset": TASKSET.version(),
                  **({"h2load": H2LOAD.version()} if H2LOAD.is_present() else {}),
                  **({"gcc (wsload)": GCC.version()} if GCC.is_present() else {})},
        "records": [r.to_json() for r in records],
        "summary": [s.to_json() for s in summaries.values()],
    }


def write_outputs(args: argparse.Namespace, document: dict[str, Any], text: str,
                  summaries: dict[tuple[str, str], Summary], servers: list[str],
                  workloads: list[str], ceilings: set[str]) -> None:
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(document, indent=2) + "\n")
    if args.markdown:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(text)
    if args.plot:
        from harness import chart  # matplotlib only when a chart is asked for

        args.plot.parent.mkdir(parents=True, exist_ok=True)
        title = (f"{args.app} ASGI app, servers on CPU {args.server_cpus}, "
                 f"load client -c{args.connections} on CPU {args.client_cpus}, "
                 f"median of {args.rounds} x {args.duration} s")
        chart.draw(summaries, servers, workloads, ceilings, title, args.plot)


def stop_on_sigterm(signum: int, frame: FrameType | None) -> None:
    # Turn SIGTERM into SystemExit so the `finally` blocks stop our servers.
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    try:
        servers = pick(args.servers, SERVERS, "server")
        workloads = pick(args.workloads, WORKLOADS, "workload")
        threads = check_cpus(args.server_cpus, args.client_cpus)
        files = [w for w in workloads if WORKLOADS[w].file_size]
        if files and args.app != "fastapi":
            if args.workloads != "all":
                raise UsageError(f"{', '.join(files)}: the static files are served by "
                                 "--app fastapi")
            workloads = [w for w in workloads if w not in files]  # 'all' that this app serves
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    absent = missing(requirements_for(args, servers, workloads))
    if absent:
        print(explain_missing(absent), file=sys.stderr)
        return EXIT_USAGE
    signal.signal(signal.SIGTERM, stop_on_sigterm)
    wrk = WrkSettings(args.connections, args.client_cpus, threads, args.timeout)
    started = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    load_start = loadavg()
    build_start = carpinus_build()
    warn_if_not_this_checkout(build_start)

    records: list[Record] = []
    with tempfile.TemporaryDirectory(prefix="carpinus-bench-clients-") as tmp:
        client_files = write_client_files(workloads, Path(tmp))
        for round_number in range(1, args.rounds + 1):
            for server in servers:
                records += run_server_round(server, workloads, round_number, client_files,
                                            args, wrk)

    summaries = summarize_all(records, servers, workloads)
    ceilings = {s for s in servers if SERVERS[s].ceiling}
    document = build_document(args, argv, servers, workloads, wrk, started, load_start,
                              build_start, records, summaries)
    text = markdown.render(document, summaries, servers, workloads, ceilings)
    write_outputs(args, document, text, summaries, servers, workloads, ceilings)
    print(text)
    build = document["carpinus_build"]
    if build["start"] != build["end"]:
        print(f"warning: carpinus changed during the run: {build['start']} -> {build['end']}",
              file=sys.stderr)
    invalid = [f"{s.server}/{s.workload}" for s in summaries.values() if not s.valid]
    if invalid:
        print(f"invalid results (errors or failures): {', '.join(invalid)}", file=sys.stderr)
        return EXIT_INVALID
    return 0


if __name__ == "__main__":
    sys.exit(main())
