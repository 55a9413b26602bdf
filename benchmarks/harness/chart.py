"""The PNG chart: req/s and p99 per workload per server.

matplotlib is imported here only, and this module only when --plot is given,
so running the benchmark without a chart needs no matplotlib.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from harness.results import Summary

if TYPE_CHECKING:
    from matplotlib.axes import Axes


def draw(summaries: dict[tuple[str, str], Summary], servers: list[str], workloads: list[str],
         ceilings: set[str], title: str, path: Path) -> None:
    """One column per workload (each with its own scale), req/s on top, p99 below.

    Error bars span the slowest to the fastest round, so noise is visible.
    """
    import matplotlib

    matplotlib.use("Agg")  # no display here, and none wanted
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(2, len(workloads), figsize=(3.2 * len(workloads) + 1.5, 7),
                                squeeze=False)
    colors: list[str] = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    positions = list(range(len(servers)))
    for column, workload in enumerate(workloads):
        rows = [summaries[s, workload] for s in servers]
        top, bottom = axes[0][column], axes[1][column]
        bar_colors = [colors[i % len(colors)] for i in positions]
        hatches = ["//" if s in ceilings else "" for s in servers]
        _bars(top, positions, [r.rps for r in rows], [r.rps_min for r in rows],
              [r.rps_max for r in rows], bar_colors, hatches)
        _bars(bottom, positions, [r.p99_ms for r in rows], [r.p99_min_ms for r in rows],
              [r.p99_max_ms for r in rows], bar_colors, hatches)
        top.set_title(workload)
        for axis in (top, bottom):
            axis.set_xticks(positions, servers, rotation=45, ha="right", fontsize=8)
            axis.grid(axis="y", alpha=0.3)
        for position, row in zip(positions, rows, strict=True):
            if not row.valid:
                top.annotate("invalid", (position, row.rps_max), ha="center", va="bottom",
                             fontsize=7, color="red")
    axes[0][0].set_ylabel("requests/s (median)")
    axes[1][0].set_ylabel("p99 latency, ms (median)")
    figure.suptitle(title + ("   (hatched: ceilings, not ASGI servers)" if ceilings else ""))
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def _bars(axis: Axes, positions: list[int], medians: list[float], lows: list[float],
          highs: list[float], colors: list[str], hatches: list[str]) -> None:
    errors = [[m - lo for m, lo in zip(medians, lows, strict=True)],
              [hi - m for m, hi in zip(medians, highs, strict=True)]]
    bars = axis.bar(positions, medians, color=colors, yerr=errors, capsize=3)
    for bar, hatch in zip(bars, hatches, strict=True):
        bar.set_hatch(hatch)
