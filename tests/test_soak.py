"""A short soak: scripts/soak.py for 20 s against a real server process.

The full run (`make soak`, 10 minutes) is in docs/reliability.md; this one
catches gross regressions: descriptors that are never closed, memory that
grows with every request, wrong answers under mixed load.  The RSS bound is
generous: 20 s is too short to tell a slow leak from the heap warming up.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.processes import REPO, child_env


@pytest.mark.timeout(180)
def test_short_soak(tmp_path: Path) -> None:
    out = tmp_path / "soak.json"
    proc = subprocess.run(
        [sys.executable, "-m", "scripts.soak", "--seconds", "20",
         "--interval", "1", "--clients", "8", "--max-rss-growth-mib", "64", "--out", str(out)],
        # small ASan quarantine: under the ASan leg freed memory would read as growth
        env=child_env(ASAN_OPTIONS=":".join(
            filter(None, [os.environ.get("ASAN_OPTIONS"), "quarantine_size_mb=4"]))),
        cwd=REPO, capture_output=True, text=True, timeout=150)
    assert out.exists(), proc.stdout + proc.stderr
    report = json.loads(out.read_text())
    assert report["wrong_answers"] == [], report["wrong_answers"]
    assert report["fd_growth"] <= 0, (report["baseline_fds"], report["final_fds"])
    assert report["rss_growth_after_warmup_kib"] <= 64 * 1024, report
    assert report["server_exit_code"] == 0
    assert report["requests"] > 100, report
    assert set(report["scenarios"]) >= {"hello", "upload", "stream", "pipelined"}, report
    assert proc.returncode == 0, proc.stdout + proc.stderr
