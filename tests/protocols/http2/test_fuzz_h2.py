"""The HTTP/2 fuzz target's corpus (fuzz/corpus/h2/: seeds, and inputs that once
broke it) replayed through the target's own checks (fuzz/fuzz_h2.py), so that
the suite runs every one of them on every build."""

from __future__ import annotations

from pathlib import Path

import pytest

from fuzz import fuzz_h2

pytestmark = pytest.mark.skipif(
    not __import__("carpinus._core", fromlist=["HAVE_HTTP2"]).HAVE_HTTP2,
    reason="this build has no libnghttp2 (make test installs libnghttp2-dev)")

CORPUS = sorted((Path(__file__).parents[3] / "fuzz" / "corpus" / "h2").iterdir())


@pytest.mark.parametrize("path", CORPUS, ids=[p.name for p in CORPUS])
def test_corpus_input(path: Path) -> None:
    fuzz_h2.test_one_input(path.read_bytes())
