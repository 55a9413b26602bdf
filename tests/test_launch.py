"""launch(): the single-process path stays as it was; --max-requests without a supervisor."""

from __future__ import annotations

from tests.process_utils import Spawner
from tests.utils import RawClient

PROCESS_APP = "tests.process_apps:app"


def test_max_requests_without_supervisor_exits_0(spawn: Spawner) -> None:
    """A single server with --max-requests 3 stops gracefully after 3 requests and exits 0
    (uvicorn's behaviour: a process manager is expected to start it again)."""
    server = spawn.start(PROCESS_APP, "--max-requests", "3", "--lifespan", "on")
    assert server.port is not None
    for _ in range(3):
        with RawClient("127.0.0.1", server.port, 30) as client:
            assert client.request("GET", "/", headers=[("Connection", "close")]).status == 200
    assert server.wait(timeout=30) == 0, server.output
    assert "Maximum request limit of 3 reached" in server.output
    assert "Application shutdown complete." in server.output
