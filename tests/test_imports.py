"""The Python package's imports point one way: no circle, and every import goes down the floors.

The graph is read from the sources with `ast`, not by importing them.  An
import counts wherever it is written -- at module level, inside a class or
inside a function: a function-level import that closes a circle is a circle
postponed, not removed.  Only imports under `if TYPE_CHECKING:` are left
out: they never run.  Importing `a.b.c` also runs the `__init__` of `a.b` and
`a` (unless the importer lives inside that package, which is then already
being imported), so those count as imports too.

FLOORS below is the layout of docs/architecture.md ("The Python package"):
a module may import its own floor or any floor below it, never one above.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "src" / "carpinus"

# Top to bottom.  A name ending in ".*" is that package and everything in it.
FLOORS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("entry points", ("carpinus", "carpinus.__main__", "carpinus.main", "carpinus.workers")),
    ("process management", ("carpinus.supervisors.*",)),
    ("one server", ("carpinus.server", "carpinus.threads", "carpinus.serving",
                    "carpinus.sockets", "carpinus.lifespan", "carpinus.pidfile")),
    ("protocols", ("carpinus.protocols.*",)),
    ("configuration and services", ("carpinus.config", "carpinus.options", "carpinus.logging",
                                    "carpinus.tls", "carpinus.tls_extension",
                                    "carpinus.metrics.*",
                                    "carpinus.access_log",
                                    "carpinus.proxy_headers", "carpinus.optimizations",
                                    "carpinus.importer", "carpinus.demo",
                                    "carpinus.resident_memory", "carpinus.uvicorn_compat")),
    ("the C core", ("carpinus._core",)),
)


def module_files(package_dir: Path) -> dict[str, Path]:
    """Module name -> source file, for every .py of the package (and a .pyi
    without a .py beside it: the C extension's stub stands for the extension)."""
    root = package_dir.parent
    modules: dict[str, Path] = {}
    for path in sorted(package_dir.rglob("*.py*")):
        if path.suffix == ".pyi" and path.with_suffix(".py").exists():
            continue
        if path.suffix not in (".py", ".pyi"):
            continue
        parts = path.relative_to(root).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _import_nodes(nodes: list[ast.stmt]) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import statement below `nodes`, at any depth, except under TYPE_CHECKING."""
    for node in nodes:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        elif isinstance(node, ast.If) and _is_type_checking(node.test):
            yield from _import_nodes(node.orelse)
        else:
            for child in ast.iter_child_nodes(node):
                if isinstance(child, ast.stmt):
                    yield from _import_nodes([child])
                elif isinstance(child, ast.ExceptHandler | ast.match_case):
                    yield from _import_nodes(child.body)


def imported_names(module: str, path: Path) -> set[str]:
    """The dotted names a module's import statements name (modules or attributes)."""
    is_package = path.stem == "__init__"
    names: set[str] = set()
    for node in _import_nodes(ast.parse(path.read_text(), str(path)).body):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
            continue
        base = node.module or ""
        if node.level:
            anchor = module.split(".") if is_package else module.split(".")[:-1]
            anchor = anchor[: len(anchor) - (node.level - 1)]
            base = ".".join(anchor + ([node.module] if node.module else []))
        names.add(base)
        names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def import_graph(package_dir: Path) -> dict[str, set[str]]:
    """Module -> the package's modules that importing it runs directly."""
    files = module_files(package_dir)
    graph: dict[str, set[str]] = {}
    for module, path in files.items():
        targets: set[str] = set()
        for name in imported_names(module, path):
            parts = name.split(".")
            for i in range(1, len(parts) + 1):  # the module and the packages it is in
                target = ".".join(parts[:i])
                inside = module == target or module.startswith(target + ".")
                if target in files and not inside:
                    targets.add(target)
        graph[module] = targets
    return graph


def circles(graph: dict[str, set[str]]) -> list[tuple[list[str], list[str]]]:
    """Each group of modules that import each other, directly or not (Tarjan's
    strongly connected components), with one shortest circle through it: a
    path that returns to its start."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[set[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.add(member)
                if member == node:
                    break
            if len(group) > 1 or node in graph[node]:
                groups.append(group)

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return [(sorted(group), _circle_in(graph, group)) for group in groups]


def _circle_in(graph: dict[str, set[str]], group: set[str]) -> list[str]:
    """A shortest path from the group's first module back to itself, inside the group."""
    start = min(group)
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        nxt_frontier = []
        for node in frontier:
            for nxt in sorted(graph[node] & group):
                if nxt == start:
                    return paths[node] + [start]
                if nxt not in paths:
                    paths[nxt] = paths[node] + [nxt]
                    nxt_frontier.append(nxt)
        frontier = nxt_frontier
    raise AssertionError(f"no circle in {group}")  # pragma: no cover


def floor_of(module: str) -> int:
    for level, (_, members) in enumerate(FLOORS):
        for member in members:
            if member.endswith(".*"):
                package = member[:-2]
                if module == package or module.startswith(package + "."):
                    return level
            elif module == member:
                return level
    raise KeyError(module)


# -- the package ----------------------------------------------------------------


def test_no_import_circles() -> None:
    found = circles(import_graph(PACKAGE))
    assert not found, "import circles in carpinus:\n" + "\n".join(
        f"  {len(group)} modules import each other: {', '.join(group)}\n"
        f"    e.g. {' -> '.join(circle)}" for group, circle in found)


def test_every_module_has_a_floor() -> None:
    unplaced = []
    for module in import_graph(PACKAGE):
        try:
            floor_of(module)
        except KeyError:
            unplaced.append(module)
    assert not unplaced, f"add these modules to FLOORS (and docs/architecture.md): {unplaced}"


def test_imports_go_down_the_floors() -> None:
    upward = []
    for module, targets in sorted(import_graph(PACKAGE).items()):
        for target in sorted(targets):
            if floor_of(target) < floor_of(module):
                upward.append(f"  {module} ({FLOORS[floor_of(module)][0]}) imports "
                              f"{target} ({FLOORS[floor_of(target)][0]})")
    assert not upward, "imports that run back up:\n" + "\n".join(upward)


def test_only_the_entry_points_import_main() -> None:
    """carpinus.main (the CLI, run(), launch) is the top: only `carpinus`
    (which re-exports run) and `python -m carpinus` import it."""
    graph = import_graph(PACKAGE)
    importers = {m for m, targets in graph.items() if "carpinus.main" in targets}
    assert importers == {"carpinus", "carpinus.__main__"}


# -- the check itself, on a package made for it ---------------------------------


def _write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root / "pkg"


def test_the_check_sees_function_level_and_relative_imports(tmp_path: Path) -> None:
    package = _write(tmp_path, {
        "pkg/__init__.py": "",
        "pkg/a.py": "from pkg import b\n",
        "pkg/b.py": "def f():\n    from .sub import c\n",
        "pkg/sub/__init__.py": "",
        "pkg/sub/c.py": "try:\n    import pkg.a\nexcept ImportError:\n    pass\n",
        "pkg/d.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg import e\n",
        "pkg/e.py": "import pkg.d\n",
    })
    graph = import_graph(package)
    assert graph["pkg.a"] == {"pkg.b"}
    assert graph["pkg.b"] == {"pkg.sub", "pkg.sub.c"}
    assert graph["pkg.d"] == set()  # TYPE_CHECKING only
    assert circles(graph) == [(["pkg.a", "pkg.b", "pkg.sub.c"],
                                ["pkg.a", "pkg.b", "pkg.sub.c", "pkg.a"])]


@pytest.mark.parametrize("init, found", [
    ("from pkg.sub.h import H\n", [["pkg.core", "pkg.sub", "pkg.sub.h", "pkg.core"]]),
    ("", []),
], ids=["init-imports-h", "init-imports-nothing"])
def test_the_check_sees_package_inits(tmp_path: Path, init: str,
                                      found: list[list[str]]) -> None:
    """`import pkg.sub.frames` from outside pkg.sub runs pkg/sub/__init__.py
    first; if that imports h, and h imports the importer, there is a circle
    although nothing names pkg.sub's __init__ directly."""
    package = _write(tmp_path, {
        "pkg/__init__.py": "",
        "pkg/core.py": "def later():\n    import pkg.sub.frames\n",
        "pkg/sub/__init__.py": init,
        "pkg/sub/h.py": "from pkg import core\n\nH = 1\n",
        "pkg/sub/frames.py": "import pkg.sub\n",  # its own package: already being imported
    })
    graph = import_graph(package)
    assert graph["pkg.core"] == {"pkg.sub", "pkg.sub.frames"}
    assert graph["pkg.sub.frames"] == set()
    assert [circle for _, circle in circles(graph)] == found
