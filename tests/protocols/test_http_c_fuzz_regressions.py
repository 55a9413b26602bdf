"""Every input the end-to-end fuzzer ever broke the protocol with, replayed.

fuzz/regressions/ keeps the crashing inputs of fuzz/fuzz_protocol.py (after
the fix, each is an ordinary passing input); this test feeds each through the
same harness and checks -- the real C protocol and asyncio loop, a fake
transport (fuzz/harness.py) -- so that the bug cannot come back unnoticed.
The same files seed the fuzzer (fuzz/Makefile).

  protocol-close-all-under-a-running-app
      ServerState.close_all() while an app was running: the 500 for that app
      was written to the transport after close().
  protocol-eof-with-pipelined-requests-scheduled
      the client's EOF arrived after a response completed but before the
      pipelined request waiting behind it was parsed: the transport closed,
      and the parse then wrote a 400 into it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("h11")

from fuzz import fuzz_protocol  # noqa: E402  (after the importorskip)

INPUTS = sorted((Path(fuzz_protocol.__file__).parent / "regressions").iterdir())


def test_there_are_regression_inputs() -> None:
    assert INPUTS


@pytest.mark.parametrize("path", INPUTS, ids=[p.name for p in INPUTS])
def test_fuzzer_finding_stays_fixed(path: Path) -> None:
    fuzz_protocol.test_one_input(path.read_bytes())
