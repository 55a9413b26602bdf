"""Headless Chromium driven over its DevTools protocol (CDP), for tests that
need a real browser on the other end of a connection.

Chromium is started with `--remote-debugging-port=0`: it picks a free port
and writes it, with the browser target's path, to DevToolsActivePort in its
profile directory, which we wait for (no fixed port, no sleep).  We speak CDP
with the `websockets` client (already a test dependency) over that browser
endpoint, attaching to each tab with a flat session id, so one connection
drives every tab.  The process is ours: stopped by its PID, SIGKILL after a
timeout.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from websockets.sync.client import ClientConnection, connect

from tests.support.processes import tool_env
from tests.support.waiting import wait_for

START_TIMEOUT = 15.0
STOP_TIMEOUT = 5.0

# As root (CI, containers) Chromium refuses to start without --no-sandbox.
FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
    "--no-first-run", "--no-default-browser-check", "--disable-extensions",
    "--disable-background-networking", "--disable-component-update", "--mute-audio",
    # the TLS leg's certificate comes from a CA the browser does not know
    "--ignore-certificate-errors",
    "--remote-debugging-port=0", "--remote-debugging-address=127.0.0.1",
)


def executable() -> str | None:
    """The Chromium binary on PATH (Debian: package `chromium`), or None."""
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    return None


class CdpError(RuntimeError):
    """A CDP command answered with an error, or a page's script threw."""


class Browser:
    """One CDP connection to a running Chromium; commands are answered in order."""

    def __init__(self, connection: ClientConnection) -> None:
        self.connection = connection
        self.ids = itertools.count(1)

    def command(self, method: str, session: str | None = None, timeout: float = 20.0,
                **params: Any) -> dict[str, Any]:
        """Send one command and return its result; events that arrive meanwhile
        are dropped (wait_event is for the ones a test waits on)."""
        message_id = next(self.ids)
        message: dict[str, Any] = {"id": message_id, "method": method, "params": params}
        if session is not None:
            message["sessionId"] = session
        self.connection.send(json.dumps(message))
        while True:
            reply = json.loads(self.connection.recv(timeout=timeout))
            if reply.get("id") != message_id:
                continue
            if "error" in reply:
                raise CdpError(f"{method}: {reply['error']}")
            result: dict[str, Any] = reply["result"]
            return result

    def wait_event(self, method: str, session: str, timeout: float = 20.0) -> dict[str, Any]:
        while True:
            event = json.loads(self.connection.recv(timeout=timeout))
            if event.get("method") == method and event.get("sessionId") == session:
                params: dict[str, Any] = event["params"]
                return params

    @contextlib.contextmanager
    def tab(self, url: str) -> Iterator[Tab]:
        """A new tab with `url` loaded (its load event fired); closed after."""
        target = self.command("Target.createTarget", url="about:blank")["targetId"]
        try:
            session = self.command("Target.attachToTarget", targetId=target,
                                   flatten=True)["sessionId"]
            self.command("Page.enable", session)
            navigated = self.command("Page.navigate", session, url=url)
            if "errorText" in navigated:
                raise CdpError(f"loading {url}: {navigated['errorText']}")
            self.wait_event("Page.loadEventFired", session)
            yield Tab(self, session)
        finally:
            self.command("Target.closeTarget", targetId=target)


class Tab:
    def __init__(self, browser: Browser, session: str) -> None:
        self.browser = browser
        self.session = session

    def evaluate(self, expression: str, timeout: float = 20.0) -> Any:
        """The value of a JavaScript expression in the page, a promise awaited,
        the result copied back as JSON."""
        result = self.browser.command("Runtime.evaluate", self.session, timeout=timeout,
                                      expression=expression, awaitPromise=True,
                                      returnByValue=True)
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            text = details.get("exception", {}).get("description") or details.get("text")
            raise CdpError(f"{expression}: {text}")
        return result["result"].get("value")


@contextlib.contextmanager
def launch(binary: str) -> Iterator[Browser]:
    """Start headless Chromium with a throw-away profile; stop it (by PID) after."""
    with tempfile.TemporaryDirectory(prefix="carpinus-chromium-") as profile:
        log_path = Path(profile) / "chromium.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                [binary, *FLAGS, f"--user-data-dir={profile}", "about:blank"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True, env=tool_env())
        try:
            port_file = Path(profile) / "DevToolsActivePort"

            def endpoint() -> str:  # "" until Chromium has written both lines
                if process.poll() is not None:
                    raise RuntimeError(f"chromium exited with {process.returncode}:\n"
                                       f"{log_path.read_text(errors='replace')[-2000:]}")
                lines = port_file.read_text().split() if port_file.exists() else []
                return f"ws://127.0.0.1:{lines[0]}{lines[1]}" if len(lines) == 2 else ""

            url = wait_for(endpoint, START_TIMEOUT, interval=0.02,
                           what="chromium's DevTools endpoint",
                           detail=lambda: log_path.read_text(errors="replace")[-2000:])
            with connect(url, max_size=None, open_timeout=START_TIMEOUT) as connection:
                yield Browser(connection)
        finally:
            stop(process)


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the PID we started, SIGKILL to its process group (its
    renderers, ours too: it leads a session we made) if it lingers."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            pass
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, 9)
    process.wait(STOP_TIMEOUT)
