"""Summarize a valgrind memcheck XML file; exit 1 on findings in carpinus' C core.

    python scripts/valgrind_report.py valgrind-pytest.xml

A finding counts when one of the frames of its stack is in the carpinus
extension (_core*.so): a definite leak allocated on behalf of our code, or a
memory error (invalid read/write/free, use of uninitialised memory) in it.
Definite leaks with no carpinus frame are CPython's or a library's, reported
as a count only.
"""

from __future__ import annotations

import sys
import xml.etree.ElementTree as ET

MEMORY_ERRORS = {"InvalidRead", "InvalidWrite", "InvalidFree", "MismatchedFree",
                 "InvalidJump", "UninitCondition", "UninitValue", "SyscallParam", "Overlap",
                 "ClientCheck", "InvalidMemPool", "FishyValue"}


def frames(error: ET.Element) -> list[tuple[str, str]]:
    stack = error.find("stack")
    if stack is None:
        return []
    return [(f.findtext("obj", ""), f.findtext("fn", "?")) for f in stack.findall("frame")]


def ours(error: ET.Element) -> bool:
    return any("carpinus" in obj and "_core" in obj for obj, _ in frames(error))


def describe(error: ET.Element) -> str:
    what = error.findtext("what") or error.findtext("xwhat/text") or "?"
    stack = "\n".join(f"    {fn}  ({obj.rsplit('/', 1)[-1]})" for obj, fn in frames(error)[:15])
    return f"{error.findtext('kind')}: {what}\n{stack}"


def main(path: str) -> int:
    root = ET.parse(path).getroot()
    errors = root.findall("error")
    leaks = [e for e in errors if e.findtext("kind") == "Leak_DefinitelyLost"]
    memory = [e for e in errors if e.findtext("kind") in MEMORY_ERRORS]
    our_leaks = [e for e in leaks if ours(e)]
    our_memory = [e for e in memory if ours(e)]
    leaked = sum(int(e.findtext("xwhat/leakedbytes", "0")) for e in leaks)
    print(f"valgrind: {len(leaks)} definite leak records ({leaked} bytes) in all, "
          f"{len(our_leaks)} with a carpinus frame; {len(memory)} memory errors in all, "
          f"{len(our_memory)} with a carpinus frame")
    for e in our_leaks + our_memory:
        print(describe(e))
    return 1 if our_leaks or our_memory else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
