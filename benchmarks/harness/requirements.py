"""What a server or the runner needs on this machine.

The runner installs nothing.  Each requirement can tell whether it is present,
what to run to get it, and which version is installed (for the results).
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import shutil
import subprocess
from dataclasses import dataclass
from typing import Protocol

BENCH_EXTRA = "pip install -e '.[bench]'   (in the repository root)"


class Requirement(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def install_hint(self) -> str: ...

    def is_present(self) -> bool: ...

    def version(self) -> str: ...


@dataclass(frozen=True)
class PythonPackage:
    """A distribution importable by the interpreter that runs the benchmark.

    Servers are started with that same interpreter, so checking here is
    checking there.
    """

    distribution: str
    module: str
    install_hint: str = BENCH_EXTRA

    @property
    def name(self) -> str:
        return self.distribution

    def is_present(self) -> bool:
        return importlib.util.find_spec(self.module) is not None

    def version(self) -> str:
        try:
            return importlib.metadata.version(self.distribution)
        except importlib.metadata.PackageNotFoundError:
            return "unknown"


@dataclass(frozen=True)
class Program:
    """An executable on PATH, from a Debian package."""

    executable: str
    debian_package: str
    version_args: tuple[str, ...] = ("--version",)

    @property
    def name(self) -> str:
        return self.executable

    @property
    def install_hint(self) -> str:
        return f"apt-get install -y {self.debian_package}"

    def is_present(self) -> bool:
        return shutil.which(self.executable) is not None

    def version(self) -> str:
        # Version flags disagree on exit codes (`wrk -v` exits 1) and streams
        # (`nginx -v` writes to stderr): take the first line printed anywhere.
        done = subprocess.run(
            [self.executable, *self.version_args],
            capture_output=True, text=True, timeout=10, check=False,
        )
        lines = (done.stdout + done.stderr).strip().splitlines()
        if not lines:
            return "unknown"
        # "nginx version: nginx/1.22.1", "wrk 4.1.0 [epoll] Copyright ...": the version only.
        first = lines[0].split(" Copyright")[0].strip()
        return first.split("version: ", 1)[-1]


def missing(requirements: list[Requirement]) -> list[Requirement]:
    """The requirements not present, each listed once."""
    seen: set[str] = set()
    absent = []
    for requirement in requirements:
        if requirement.name not in seen and not requirement.is_present():
            absent.append(requirement)
        seen.add(requirement.name)
    return absent


def explain_missing(absent: list[Requirement]) -> str:
    """A message a person can act on: what is missing and the command that brings it."""
    lines = ["Missing before anything can be measured (nothing is installed for you):"]
    for requirement in absent:
        lines.append(f"  - {requirement.name}: {requirement.install_hint}")
    return "\n".join(lines)


CARPINUS = PythonPackage("carpinus", "carpinus", "pip install -e .   (in the repository root)")
UVICORN = PythonPackage("uvicorn", "uvicorn")
HTTPTOOLS = PythonPackage("httptools", "httptools")
UVLOOP = PythonPackage("uvloop", "uvloop")
GRANIAN = PythonPackage("granian", "granian")
GUNICORN = PythonPackage("gunicorn", "gunicorn")
GUNICORN_H1C = PythonPackage("gunicorn-h1c", "gunicorn_h1c")
HYPERCORN = PythonPackage("hypercorn", "hypercorn")
WEBSOCKETS = PythonPackage("websockets", "websockets")
WSPROTO = PythonPackage("wsproto", "wsproto")
ZTTP = PythonPackage("zttp", "zttp")  # uvicorn's HTTP/2: --http zttp --http2
FASTAPI = PythonPackage("fastapi", "fastapi")
MATPLOTLIB = PythonPackage("matplotlib", "matplotlib")

WRK = Program("wrk", "wrk", ("-v",))
TASKSET = Program("taskset", "util-linux")
NGINX = Program("nginx", "nginx-light", ("-v",))
GCC = Program("gcc", "gcc")
H2LOAD = Program("h2load", "nghttp2-client")
CURL = Program("curl", "curl")
