"""The request spec, written once as data: raw bytes in, what must happen out.

    accepted.py   ACCEPTED   requests that are served, and the parser's reading
                             of each (rows.py says how a row is read)
    rejected.py   REJECTED   requests refused with a status, each with why
    smuggling.py  SMUGGLING  CL.TE and friends, with a hidden request
                  VECTORS    the smuggling campaign's other vectors

Read by
  - tests/c/test_parser.c, through the header `python -m tests.spec.c_header`
    writes at build time (fuzz/Makefile): the parser and the chunked decoder
    on every row, fed whole, as every prefix, byte by byte and with the next
    request behind;
  - the server-level tests (the rejection and smuggling tests in
    tests/protocols/): every row over a real socket;
  - fuzz/make_corpus.py (the seed corpus) and fuzz/differential.py (carpinus
    against h11 and httptools).

Plain data: importing it needs neither carpinus nor pytest.
"""

from __future__ import annotations

from tests.spec.accepted import ACCEPTED
from tests.spec.rejected import REJECTED
from tests.spec.rows import (
    CHUNKED_POST,
    GET,
    POST,
    SMUGGLED,
    Accepted,
    H,
    Rejected,
    Row,
    check_names,
)
from tests.spec.smuggling import COVERED_ELSEWHERE, NEXT, SMUGGLING, VECTORS

check_names(ACCEPTED, REJECTED, SMUGGLING, VECTORS)

# Every table by the name the fuzz corpus, the differential pins and
# COVERED_ELSEWHERE know it by.
TABLES: dict[str, list[Accepted] | list[Rejected] | list[Accepted | Rejected]] = {
    "REJECTED": REJECTED,
    "ACCEPTED": ACCEPTED,
    "SMUGGLING": SMUGGLING,
    "VECTORS": VECTORS,
}

__all__ = [
    "ACCEPTED", "CHUNKED_POST", "COVERED_ELSEWHERE", "GET", "H", "NEXT", "POST", "REJECTED",
    "SMUGGLED", "SMUGGLING", "TABLES", "VECTORS", "Accepted", "Rejected", "Row",
]
