"""carpinus: a fast, strict ASGI 3 server with an HTTP/1.1 core in C."""

from __future__ import annotations

__version__ = "0.1.0"

from carpinus.config import Config
from carpinus.main import run
from carpinus.server import Server

__all__ = ["Config", "Server", "run", "__version__"]
