"""The markdown report: a median-and-ratio matrix per metric, then the details."""

from __future__ import annotations

from typing import Any

from harness.results import Summary
from harness.workloads import WORKLOADS

BASELINE = "carpinus"


def format_rps(value: float) -> str:
    return f"{value:,.0f}"


def format_ms(value: float) -> str:
    return f"{value:.2f}" if value < 10 else f"{value:.1f}"


def column_title(server: str, ceilings: set[str]) -> str:
    return f"{server} (ceiling)" if server in ceilings else server


def ratio_text(summary: Summary, baseline: Summary | None) -> str:
    if baseline is None or not baseline.rps or summary.server == BASELINE:
        return ""
    return f" ({summary.rps / baseline.rps:.2f}×)"


def rps_cell(summary: Summary, baseline: Summary | None) -> str:
    if not summary.rps:
        return "failed"
    cell = f"{format_rps(summary.rps)} ±{summary.rps_spread_pct / 2:.0f}%"
    cell += ratio_text(summary, baseline)
    return cell if summary.valid else f"⚠ {cell} invalid"


def p99_cell(summary: Summary) -> str:
    if not summary.rps:
        return "failed"
    cell = f"{format_ms(summary.p99_ms)}"
    return cell if summary.valid else f"⚠ {cell} invalid"


def cpu_cell(summary: Summary) -> str:
    if not summary.rps:
        return "failed"
    return f"{summary.server_cpu_us:.1f}"


def memory_cell(summary: Summary) -> str:
    if not summary.rps:
        return "failed"
    if not summary.server_pss_mib:
        return "–"  # /proc showed none (not Linux, or smaps_rollup before Linux 4.14)
    return f"{summary.server_pss_mib:.1f} ({summary.server_rss_mib:.1f})"


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |",
             "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def matrix_tables(summaries: dict[tuple[str, str], Summary], servers: list[str],
                  workloads: list[str], ceilings: set[str]) -> list[str]:
    header = ["workload"] + [column_title(s, ceilings) for s in servers]
    rps_rows = [[w] + [rps_cell(summaries[s, w], summaries.get((BASELINE, w))) for s in servers]
                for w in workloads]
    p99_rows = [[w] + [p99_cell(summaries[s, w]) for s in servers] for w in workloads]
    cpu_rows = [[w] + [cpu_cell(summaries[s, w]) for s in servers] for w in workloads]
    memory_rows = [[w] + [memory_cell(summaries[s, w]) for s in servers] for w in workloads]
    return [
        "### Requests per second",
        "",
        "Median of the rounds, ± half the spread between the slowest and the fastest "
        f"round, and in brackets the ratio to {BASELINE}'s median.",
        "",
        *table(header, rps_rows),
        "",
        "### p99 latency (ms)",
        "",
        "Median of the rounds' 99th percentiles.",
        "",
        *table(header, p99_rows),
        "",
        "### Server CPU per request (µs)",
        "",
        "Median of the rounds: the CPU time (user + system) of the server's processes "
        "during the measured run, divided by the requests served. Other work on the "
        "machine disturbs it far less than requests per second; a server that is not "
        "saturated spends more per request (fewer requests share each wake-up).",
        "",
        *table(header, cpu_rows),
        "",
        "### Server memory at the end of the run: PSS MiB (RSS MiB)",
        "",
        "Median of the rounds, read from /proc as each measured run ends: the sum over "
        "the server's processes (a supervisor and its workers; threads are part of their "
        "process) of PSS, which counts a page shared between them once, and in brackets "
        "of RSS, which counts it in each process that maps it.",
        "",
        *table(header, memory_rows),
        *file_tables(summaries, servers, workloads, header),
    ]


MIB = 1 << 20


def file_tables(summaries: dict[tuple[str, str], Summary], servers: list[str],
                workloads: list[str], header: list[str]) -> list[str]:
    """For the static-file workloads: the bytes per second the answers carry
    (requests per second times the file's size; the heads are left out), and
    the server's CPU per MiB sent."""
    files = [w for w in workloads if WORKLOADS[w].file_size]
    if not files:
        return []

    def throughput(s: str, w: str) -> str:
        summary = summaries[s, w]
        return f"{summary.rps * WORKLOADS[w].file_size / MIB:,.0f}" if summary.rps else "failed"

    def cpu_per_mib(s: str, w: str) -> str:
        summary = summaries[s, w]
        if not summary.rps:
            return "failed"
        return f"{summary.server_cpu_us * MIB / WORKLOADS[w].file_size / 1000:.2f}"

    return [
        "",
        "### Static files: MiB/s",
        "",
        "Requests per second × the file's size.",
        "",
        *table(header, [[w] + [throughput(s, w) for s in servers] for w in files]),
        "",
        "### Static files: server CPU per MiB sent (ms)",
        "",
        "The CPU per request above, divided by the file's size in MiB.",
        "",
        *table(header, [[w] + [cpu_per_mib(s, w) for s in servers] for w in files]),
    ]


def best_peer(summaries: dict[tuple[str, str], Summary], servers: list[str],
              workload: str, ceilings: set[str]) -> Summary | None:
    """The fastest valid server on `workload` that is neither carpinus nor a ceiling."""
    peers = [summaries[s, workload] for s in servers
             if s != BASELINE and s not in ceilings and summaries[s, workload].valid]
    return max(peers, key=lambda summary: summary.rps, default=None)


def best_peer_table(summaries: dict[tuple[str, str], Summary], servers: list[str],
                    workloads: list[str], ceilings: set[str]) -> list[str]:
    """carpinus against the fastest peer per workload: how a target reads
    ("≥ 1.5× the best peer's req/s, p99 no worse")."""
    if BASELINE not in servers or len(servers) < 2:
        return []
    rows = []
    for workload in workloads:
        ours, peer = summaries[BASELINE, workload], best_peer(summaries, servers, workload,
                                                             ceilings)
        if peer is None or not ours.rps or not peer.p99_ms:
            rows.append([workload, "–", "–", "–", "–"])
            continue
        rows.append([workload, peer.server, f"{ours.rps / peer.rps:.2f}×",
                     f"{format_ms(ours.p99_ms)} / {format_ms(peer.p99_ms)}",
                     f"{ours.p99_ms / peer.p99_ms:.2f}×"])
    return [
        f"### {BASELINE} against the best peer",
        "",
        f"Per workload the fastest valid server other than {BASELINE} and the ceilings; "
        f"req/s ratio {BASELINE} ÷ peer (above 1: {BASELINE} faster), p99 ratio "
        f"{BASELINE} ÷ peer (below 1: {BASELINE}'s tail shorter).",
        "",
        *table(["workload", "best peer", "req/s ratio", "p99 ms (ours / peer)", "p99 ratio"],
               rows),
        "",
    ]


def detail_table(summaries: dict[tuple[str, str], Summary], servers: list[str],
                 workload: str) -> list[str]:
    header = ["server", "req/s", "rounds min–max", "× carpinus", "avg ms", "p50 ms",
              "p99 ms", "p99 min–max", "server CPU µs/req", "errors"]
    baseline = summaries.get((BASELINE, workload))
    rows = []
    for server in servers:
        s = summaries[server, workload]
        ratio = f"{s.rps / baseline.rps:.2f}" if baseline and baseline.rps else "–"
        errors = str(s.errors) + ("" if s.valid else " ⚠ invalid")
        if s.failures:
            errors += f" ({len(s.failures)} round(s) failed: {s.failures[0][:60]})"
        rows.append([
            server, format_rps(s.rps), f"{format_rps(s.rps_min)}–{format_rps(s.rps_max)}",
            ratio, format_ms(s.avg_ms), format_ms(s.p50_ms), format_ms(s.p99_ms),
            f"{format_ms(s.p99_min_ms)}–{format_ms(s.p99_max_ms)}", cpu_cell(s), errors,
        ])
    return table(header, rows)


def notes(ceilings: set[str], workloads: list[str] | None = None,
          any_invalid: bool = True) -> list[str]:
    # The ⚠ legend only when a ⚠ is in the tables: a clean run should not read as a failed one.
    lines = ["⚠ invalid: at least one round had a non-2xx answer or a socket error, or could "
             "not be measured (the JSON records say which)."] if any_invalid else []
    if workloads and any(WORKLOADS[w].protocol == "websocket" for w in workloads):
        lines.append(
            "websocket*: measured with benchmarks/wsload (not wrk); one request is one echoed "
            "message, and an error is a failed handshake, a wrong echo or a socket error. "
            "Ceilings do not speak WebSocket and show as failed there.")
    if workloads and any(WORKLOADS[w].protocol == "h2" for w in workloads):
        lines.append(
            "h2-*: HTTP/2 cleartext (prior knowledge) driven by h2load (not wrk) with -c "
            "connections, each keeping -m10 or -m1 streams in flight; latencies are computed "
            "from h2load's per-request log, and an error is a non-2xx status or a failed "
            "stream. The headers workload drops Connection, which HTTP/2 forbids. Servers "
            "that do not serve h2c fail the probe.")
    if ceilings:
        lines.append(
            "Ceilings (" + ", ".join(sorted(ceilings)) + ") run no ASGI app: they answer every "
            "request at once with a fixed 'Hello, World!', so on `sleep` they do not wait and "
            "on the uploads they only skip the body.")
    return [line + "\n" for line in lines]


def build_line(build: dict[str, dict[str, str]]) -> str:
    start, end = build["start"], build["end"]
    line = (f"- carpinus build: commit {start['commit']}, C core sha256 {start['core_sha256']} "
            f"({start.get('core_path', 'path not recorded')})")
    if start != end:
        line += (f" ⚠ changed during the run, to commit {end['commit']}, "
                 f"C core {end['core_sha256']}")
    return line


def render(document: dict[str, Any], summaries: dict[tuple[str, str], Summary],
           servers: list[str], workloads: list[str], ceilings: set[str]) -> str:
    settings = document["settings"]
    lines = [
        f"## Results: {settings['app']} app, {settings['rounds']} round(s) of "
        f"{settings['duration_s']} s, -c{settings['connections']}",
        "",
        f"Command: `{document['command']}`",
        "",
        f"Machine: {document['machine']['cpu']}, {document['machine']['cpus']} CPUs; "
        f"servers on CPU {settings['server_cpus']}, the load client on CPU "
        f"{settings['client_cpus']}; "
        f"load average {document['machine']['loadavg_start']} at the start, "
        f"{document['machine']['loadavg_end']} at the end.",
        "",
        *matrix_tables(summaries, servers, workloads, ceilings),
        "",
        *best_peer_table(summaries, servers, workloads, ceilings),
        *notes(ceilings, workloads, any(not s.valid for s in summaries.values())),
        "### Details per workload",
    ]
    for workload in workloads:
        lines += ["", f"#### {workload}", "", *detail_table(summaries, servers, workload)]
    lines += ["", "### Versions", ""]
    lines += [f"- Python {document['python']['version']} ({document['python']['implementation']})",
              build_line(document["carpinus_build"])]
    for server, versions in document["versions"].items():
        lines.append(f"- {server}: " + ", ".join(f"{k} {v}" for k, v in versions.items()))
    lines.append("- tools: " + ", ".join(f"{v}" for v in document["tools"].values()))
    return "\n".join(lines) + "\n"
