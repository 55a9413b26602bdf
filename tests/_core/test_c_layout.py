"""The C core's layout: which file calls which, and that the calls point down.

docs/architecture.md draws the layers.  The wire floor -- the request
parser, the chunked decoder, the byte classes, the response writer and the
WebSocket frame codec -- is pure C without Python.h; above it the scope and header builders, the
response reader, then the connection and the request cycle, then the server
state and the module.  The one circle is the designed one: the connection
(protocol.c, with its body half, body.c, and its HTTP/2 half, h2.c) and the
request (cycle.c, with runner.c, the coroutine its Task runs) call each
other, as uvicorn's Protocol and RequestResponseCycle do.  This test reads the sources (a
function `cp_x` is defined in the file whose top level has `... cp_x(`) and
fails if another circle appears or the floor takes a dependency on Python.
"""

from __future__ import annotations

import re
from pathlib import Path

CORE = Path(__file__).resolve().parents[2] / "src" / "carpinus" / "_core"
WIRE_FLOOR = {"parser.c", "chunked.c", "chars.c", "writer.c", "wsframe.c"}
DESIGNED_CIRCLE = {"protocol.c", "body.c", "h2.c", "cycle.c", "runner.c"}

DEFINITION = re.compile(r"^(?:[A-Za-z_][\w \*]*?\s\**)(cp_\w+)\s*\(", re.M)
DATA_DEFINITION = re.compile(r"^(?:const\s+)?(?:PyType_Spec|unsigned char)\s+(cp_\w+)", re.M)


def call_graph() -> dict[str, set[str]]:
    sources = {path.name: path.read_text() for path in CORE.glob("*.c")}
    defined: dict[str, str] = {}
    for name, text in sources.items():
        for match in [*DEFINITION.finditer(text), *DATA_DEFINITION.finditer(text)]:
            defined[match.group(1)] = name
    return {name: {defined[u] for u in set(re.findall(r"\b(cp_\w+)\b", text))
                   if u in defined and defined[u] != name}
            for name, text in sources.items()}


def circles(graph: dict[str, set[str]]) -> list[set[str]]:
    """Strongly connected components of more than one file (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[set[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                component.add(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(component)

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_only_circle_is_the_connection_and_its_request_cycle() -> None:
    graph = call_graph()
    assert graph, "no C sources found"
    assert circles(graph) == [DESIGNED_CIRCLE], circles(graph)


def test_the_wire_floor_needs_no_python_and_calls_only_itself() -> None:
    graph = call_graph()
    for name in WIRE_FLOOR:
        text = (CORE / name).read_text()
        assert "Python.h" not in text and '"core.h"' not in text, name
        assert graph[name] <= WIRE_FLOOR, (name, graph[name])
    for header in ("parser.h", "chars.h", "writer.h", "wsframe.h"):
        assert "Python.h" not in (CORE / header).read_text(), header
