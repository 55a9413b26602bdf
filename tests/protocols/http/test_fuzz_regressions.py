"""Every input the end-to-end fuzzer ever broke the protocol with, replayed.

fuzz/regressions/ keeps the crashing inputs of fuzz/fuzz_protocol.py (after
the fix, each is an ordinary passing input); this test feeds each through the
same harness and checks -- the real C protocol and asyncio loop, the shared
fake transport (tests/support/fake_transport.py) -- so that the bug cannot
come back unnoticed.  The same files seed the fuzzer (fuzz/Makefile).

Each input runs in a process of its own (`python -m fuzz.fuzz_protocol
--replay FILE`, which prints the options the input chose and the violation):
some of these made the core crash outright.

  protocol-close-all-under-a-running-app
      ServerState.close_all() while an app was running: the 500 for that app
      was written to the transport after close().
  protocol-eof-with-pipelined-requests-scheduled
      the client's EOF arrived after a response completed but before the
      pipelined request waiting behind it was parsed: the transport closed,
      and the parse then wrote a 400 into it.
  protocol-retry-after-a-write-reset
      transport.write() raised ConnectionResetError (uvloop closes the
      transport first); the app caught it and sent again, into the closed
      transport.
  protocol-receive-cancelled-after-its-wake-up
      a receive() under asyncio.wait_for: the body arrived and woke it, and
      the timeout cancelled it before it resumed; the message had been put
      into its Future and was lost with it (h11 saw a byte the app did not).
  protocol-tls-close-notify-while-answering
      TLS: the client's close_notify while its request was being answered;
      the TLS transport shuts down whatever eof_received() says, but the
      connection stayed open for the response, which was then written into
      the closing transport.

Inputs named after a finding of the C core review
(../shared/reviews/c-core-2026-12, B1-B15), one small input each, written
with the fake transport's switches and the fuzz app's behaviours:

  B1-tls-close-reenters-get-buffer
      TLS: a 413 answered while the body is still in the read; close()
      re-enters get_buffer(), which hands out a negative-size view
      ("Fatal error on SSL protocol").
  B3-cancelled-write-waiter-poisons-next-send
      a send() given up under asyncio.wait_for while writing is paused; the
      next send() raises CancelledError that nobody asked for.
  B4-send-reentered-from-more-body
      more_body's __bool__ completes the response through a nested send();
      the outer send() then writes through a NULL connection (SIGSEGV).
  B5-cancel-awaitable-without-throw
      the app's awaitable has no throw(); a cancellation kills the task but
      the request never finishes (the task stays in ServerState.tasks).
  B7-1xx-status-accepted
      http.response.start with status 103 is accepted as a final response.
  B8-app-transfer-encoding-passed-through
      the app's "Transfer-Encoding: gzip, chunked" reaches the client.
  B9-create-task-receive-typeerror
      asyncio.create_task(receive()) raises TypeError when receive() must wait.
  B11-retry-after-failed-write-corrupts-head
      transport.write() raises, the app retries, and the head goes out with
      the framing headers appended twice.
  B15-tls-eof-received-returns-true
      TLS: the client's close_notify while a response is streaming;
      eof_received() returns True (sslproto warns and closes anyway).

OPEN lists the findings not fixed yet: their inputs are expected to fail
(strict: once one passes, take it off the list).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.processes import REPO

pytest.importorskip("h11")  # fuzz_protocol's oracle

INPUTS = sorted((REPO / "fuzz" / "regressions").iterdir())

# review findings whose regression input still fails against the core
OPEN: set[str] = set()


def test_there_are_regression_inputs() -> None:
    assert INPUTS


def finding_of(path: Path) -> str:
    return path.name.split("-", 1)[0]


@pytest.mark.parametrize("path", INPUTS, ids=[p.name for p in INPUTS])
def test_fuzzer_finding_stays_fixed(path: Path, request: pytest.FixtureRequest) -> None:
    if finding_of(path) in OPEN:
        request.applymarker(pytest.mark.xfail(
            strict=True, reason=f"review finding {finding_of(path)} is not fixed yet"))
    done = subprocess.run([sys.executable, "-m", "fuzz.fuzz_protocol", "--replay", str(path)],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"exit status {done.returncode}\n{done.stdout}{done.stderr}"
