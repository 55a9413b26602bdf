"""Differential parsing, pinned: carpinus, h11 and httptools on one corpus.

fuzz/differential.py classifies every input of the corpus (the request tables
of the rejection and smuggling tests plus the parser fuzz corpus) with each
parser.  fuzz/differential.json pins the result.  This test recomputes it:

  - a change in carpinus' verdict on any input is a behaviour change that
    must be deliberate (re-pin with `python -m fuzz.differential --write`);
  - a change in h11's or httptools' verdict (for the versions the pin was
    made with, recorded in it) is a change in this script: re-pin;
  - every disagreement must have a reason in differential.REASONS and a row
    in docs/reliability.md.

carpinus runs for real here: the C protocol and the asyncio loop, with a fake
transport in place of the socket (fuzz/harness.py).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("httptools")
pytest.importorskip("h11")

from fuzz import differential  # noqa: E402  (after the importorskips)

DOC = Path(differential.__file__).resolve().parents[1] / "docs" / "reliability.md"


@pytest.fixture(scope="module")
def table() -> dict[str, dict[str, str]]:
    return differential.classify()


@pytest.fixture(scope="module")
def pinned() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(differential.PIN_FILE.read_text())
    return data


def same_libraries(pinned: dict[str, Any]) -> bool:
    """h11's and httptools' verdicts are pinned for the versions that made them."""
    return bool(pinned["versions"] == differential.versions())


def test_carpinus_classification_is_pinned(table: dict[str, dict[str, str]],
                                           pinned: dict[str, Any]) -> None:
    theirs = pinned["verdicts"]
    changed = {name: {"now": table.get(name, {}).get("carpinus"),
                      "pinned": theirs.get(name, {}).get("carpinus")}
               for name in sorted(set(table) | set(theirs))
               if table.get(name, {}).get("carpinus") != theirs.get(name, {}).get("carpinus")}
    assert not changed, json.dumps(changed, indent=1)


def test_whole_classification_is_pinned(table: dict[str, dict[str, str]],
                                        pinned: dict[str, Any]) -> None:
    """With the h11 and httptools the pin was made with, every verdict and
    every disagreement is as pinned.  (With other versions only carpinus'
    column is compared, above: their changes are theirs to explain.)"""
    if not same_libraries(pinned):
        pytest.skip(f"pinned for {pinned['versions']}, installed {differential.versions()}")
    changed = {name: {"now": table.get(name), "pinned": pinned["verdicts"].get(name)}
               for name in sorted(set(table) | set(pinned["verdicts"]))
               if table.get(name) != pinned["verdicts"].get(name)}
    assert not changed, json.dumps(changed, indent=1)


def test_every_disagreement_is_explained(table: dict[str, dict[str, str]],
                                         pinned: dict[str, Any]) -> None:
    if not same_libraries(pinned):
        pytest.skip(f"pinned for {pinned['versions']}, installed {differential.versions()}")
    disagreements = differential.disagreements(table)
    assert not [name for name in disagreements if name not in differential.REASONS]
    assert not [name for name in differential.REASONS if name not in disagreements], \
        "reasons for inputs that no longer disagree"
    doc = DOC.read_text()
    assert not [name for name in disagreements if f"`{name}`" not in doc]


def test_no_input_where_all_accept_different_requests(table: dict[str, dict[str, str]]) -> None:
    """The dangerous kind of disagreement -- the same bytes read as different
    requests -- must not occur with h11 (the stricter of the two)."""
    assert not [name for name, row in table.items()
                if "different requests than h11" in row["disagreement"]]
