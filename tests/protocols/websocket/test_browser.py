"""A real browser as the WebSocket client: headless Chromium loads a page that
carpinus serves (browser_echo.html), opens a WebSocket back to it with the
extensions Chromium itself offers (permessage-deflate), echoes text and binary
messages up to 1 MiB, and closes with 1000.  The page compares every echo with
what it sent; the server's app hashes what it received, so both ends must
agree on every byte.  Driven over the DevTools protocol (tests/support/chromium.py).
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from carpinus.protocols.websocket import handshake
from tests.support import apps, chromium, ws_apps
from tests.support.chromium import Browser

PAGE = (Path(__file__).parent / "browser_echo.html").read_bytes()
BINARY = chromium.executable()
pytestmark = pytest.mark.skipif(
    BINARY is None, reason="chromium is not installed (apt-get install chromium; "
                           "scripts/ensure-tools.sh installs it when run as root)")


class EchoSite:
    """GET / answers the page; /ws is the suite's echo (ws_apps.echo), with the
    SHA-256 of every message it received kept, and the close code and reason."""

    def __init__(self) -> None:
        self.received: list[tuple[str, int, str]] = []  # (kind, size, sha256)
        self.closes: list[tuple[int, str]] = []  # (code, reason) of each disconnect
        # Set when the WebSocket app returns.  The server answers the browser's
        # close frame itself, before the app's receive() hands it the
        # disconnect, so the browser's onclose can run first.
        self.finished = threading.Event()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            await apps.send_text(send, PAGE, headers=[(b"content-type", b"text/html")])
            return

        async def recording_receive() -> dict[str, Any]:
            message: dict[str, Any] = await receive()
            if message["type"] == "websocket.disconnect":
                self.closes.append((message["code"], message.get("reason", "")))
            elif message["type"] == "websocket.receive":
                text = message.get("text")
                data = text.encode() if text is not None else message["bytes"]
                self.received.append(("text" if text is not None else "binary", len(data),
                                      hashlib.sha256(data).hexdigest()))
            return message

        try:
            await ws_apps.echo(scope, recording_receive, send)
        finally:
            self.finished.set()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    assert BINARY is not None
    with chromium.launch(BINARY) as started:
        yield started


@pytest.fixture
def agreed_extensions(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """The Sec-WebSocket-Extensions answers the server agreed to, as it agreed them."""
    agreed: list[bytes] = []
    negotiate = handshake.negotiate_deflate

    def recording(extensions: bytes) -> Any:
        result = negotiate(extensions)
        if result is not None:
            agreed.append(result[0])
        return result

    monkeypatch.setattr(handshake, "negotiate_deflate", recording)
    return agreed


def test_chromium_echoes_through_carpinus(serve, browser, agreed_extensions):
    site = EchoSite()
    handle = serve(site)
    with browser.tab(handle.url + "/") as tab:
        report = tab.evaluate('runEcho("/ws")', timeout=30)

    # permessage-deflate, as Chromium offered it and carpinus answered it
    assert len(agreed_extensions) == 1
    assert agreed_extensions[0].startswith(b"permessage-deflate")
    assert report["extensions"] == agreed_extensions[0].decode()

    echoes = report["echoes"]
    assert [e for e in echoes if not e["equal"]] == []
    assert max(e["size"] for e in echoes) == 1024 * 1024
    assert {e["kind"] for e in echoes} == {"text", "binary"}
    assert site.received == [(e["kind"], e["size"], e["sha256"]) for e in echoes]

    # closed cleanly with 1000: the browser's close frame (code and reason)
    # reached the app, the server's answering close frame (code 1000, no
    # reason: RFC 6455 5.5.1 asks only for the code back) reached the browser
    assert site.finished.wait(10)
    assert site.closes == [(1000, "done")]
    assert report["close"] == {"code": 1000, "reason": "", "wasClean": True}
