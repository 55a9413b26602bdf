"""The http.response.pathsend extension: Starlette's FileResponse and raw apps
name a file; the server sends it (the kernel's sendfile() on plain TCP, by
loop.sendfile() on asyncio's loop and by hand on uvloop's; reads in chunks
on TLS and HTTP/2), with a Content-Length, back-pressure and bounded memory,
and a 500 when the file cannot be opened."""

from __future__ import annotations

import hashlib
import logging
import os
import socket
import threading
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.responses import FileResponse
from starlette.routing import Route

from carpinus.protocols.http import core as http_core
from tests.support import apps
from tests.support.waiting import wait_for


@pytest.fixture
def big_file(tmp_path: Path) -> Path:
    path = tmp_path / "big.bin"
    path.write_bytes(os.urandom(1 << 20) * 3 + b"tail")  # 3 MiB + 4
    return path


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The paths the server's pathsend helper was asked to send."""
    seen: list[str] = []
    real = http_core.send_path

    async def spy(cycle: Any, path: str) -> None:
        seen.append(path)
        await real(cycle, path)

    monkeypatch.setattr(http_core, "send_path", spy)
    return seen


def starlette_files(path: Path) -> Starlette:
    async def one(request: Any) -> FileResponse:
        return FileResponse(path)
    return Starlette(routes=[Route("/file", one, methods=["GET", "HEAD"])])


def test_starlette_file_response_uses_pathsend(serve, big_file, calls):
    handle = serve(starlette_files(big_file))
    with handle.http_client() as client:
        r = client.get("/file")
        assert r.status_code == 200
        assert r.headers["content-length"] == str(big_file.stat().st_size)
        assert hashlib.sha256(r.content).digest() == hashlib.sha256(big_file.read_bytes()).digest()
        head = client.head("/file")
        assert head.headers["content-length"] == str(big_file.stat().st_size)
        assert head.content == b""
        assert client.get("/file").content == r.content  # keep-alive goes on
    assert calls == [str(big_file)] * 2  # (Starlette sends no body to a HEAD)


def test_the_kernel_sends_the_file_on_plain_tcp(serve, big_file, monkeypatch):
    """os.sendfile() carries the body on both loops over TCP (asyncio's
    loop.sendfile() calls it too); over TLS the bytes must pass through the
    TLS layer, so it is never called."""
    offsets = []
    real = os.sendfile

    def spy(out_fd: int, in_fd: int, offset: Any, count: int) -> int:
        offsets.append(offset)
        return real(out_fd, in_fd, offset, count)

    monkeypatch.setattr(os, "sendfile", spy)
    handle = serve(starlette_files(big_file))
    with handle.http_client() as client:
        for _ in range(3):  # keep-alive after a file sent behind the protocol's back
            r = client.get("/file")
            assert r.content == big_file.read_bytes()
    if handle.tls:
        assert offsets == []
    else:
        assert offsets and offsets[0] == 0


def test_a_client_that_leaves_mid_file(serve, tmp_path, caplog):
    """The client closes 1 MiB into 64: the send ends, nothing is logged as
    the app's error, and the server goes on."""
    path = tmp_path / "huge.bin"
    path.write_bytes(os.urandom(1 << 20) * 64)
    ended = threading.Event()

    async def app(scope, receive, send):
        if scope["path"] == "/ok":
            await apps.send_text(send, b"ok")
            return
        await send({"type": "http.response.start", "status": 200, "headers": []})
        try:
            await send({"type": "http.response.pathsend", "path": str(path)})
        finally:
            ended.set()

    handle = serve(app)
    with caplog.at_level(logging.ERROR), handle.connect() as c:
        c.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        received = 0
        while received < 1 << 20:
            data = c.sock.recv(65536)
            assert data
            received += len(data)
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    assert ended.wait(10)
    assert handle.get("/ok").content == b"ok"
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []


def test_raw_app_without_content_length(serve, tmp_path):
    path = tmp_path / "small.txt"
    path.write_bytes(b"0123456789")

    async def app(scope, receive, send):
        assert "http.response.pathsend" in scope["extensions"]
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.pathsend", "path": str(path)})

    handle = serve(app)
    r = handle.get("/")
    assert r.content == b"0123456789"
    assert r.headers["content-length"] == "10"


@pytest.mark.parametrize("problem", ["missing", "directory", "wrong_length"])
def test_a_file_that_cannot_be_sent_is_a_500(serve, tmp_path, problem):
    (tmp_path / "five").write_bytes(b"12345")
    path = {"missing": tmp_path / "nope", "directory": tmp_path,
            "wrong_length": tmp_path / "five"}[problem]
    headers = [(b"content-length", b"3")] if problem == "wrong_length" else []

    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.pathsend", "path": str(path)})

    handle = serve(app)
    with handle.connect() as c:
        r = c.request("GET", "/")
        assert r.status == 500
    assert handle.get("/").status_code == 500  # the server goes on


def test_pathsend_must_follow_start_and_replace_the_body(serve, tmp_path):
    errors = []
    (tmp_path / "f").write_bytes(b"x")

    async def app(scope, receive, send):
        try:
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"a", "more_body": True})
            await send({"type": "http.response.pathsend", "path": str(tmp_path / "f")})
        except RuntimeError as exc:
            errors.append(str(exc))
            raise

    handle = serve(app)
    with handle.connect() as c:
        c.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        wait_for(lambda: errors)
    assert "pathsend" in errors[0]


def test_back_pressure_on_a_large_file(serve, tmp_path):
    """64 MiB to a client that does not read: the send is held up, the server
    does not read the whole file into memory, and it all arrives once the
    client reads."""
    path = tmp_path / "huge.bin"
    with path.open("wb") as f:
        for _ in range(64):
            f.write(os.urandom(1 << 20))
    finished = threading.Event()

    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.pathsend", "path": str(path)})
        finished.set()

    handle = serve(app)
    with handle.connect() as c:
        c.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert not finished.wait(1.0), "the whole file was taken without the client reading"
        digest = hashlib.sha256()
        head = b""
        while b"\r\n\r\n" not in head:
            head += c.sock.recv(65536)
        head, _, body = head.partition(b"\r\n\r\n")
        assert b"content-length: 67108864" in head.lower()
        received = len(body)
        digest.update(body)
        while received < 64 << 20:
            data = c.sock.recv(1 << 20)
            assert data, "the connection closed early"
            received += len(data)
            digest.update(data)
    assert digest.hexdigest() == hashlib.sha256(path.read_bytes()).hexdigest()
    assert finished.wait(10)


def test_settings_are_read_only_and_per_request_dicts_are_fresh(serve):
    seen = []

    async def app(scope, receive, send):
        ext = scope["extensions"]
        with pytest.raises(TypeError):
            ext["http.response.pathsend"]["x"] = 1
        ext["mine"] = True  # the dict itself is the request's own
        seen.append(dict(ext))
        await apps.send_text(send, b"ok")

    handle = serve(app)
    handle.get("/")
    handle.get("/")
    assert [("mine" in s) for s in seen] == [True, True]
    assert seen[1]["http.response.pathsend"] == {}


def test_extensions_can_be_switched_off(serve, big_file, calls):
    seen = []

    async def app(scope, receive, send):
        seen.append(dict(scope["extensions"]))
        await apps.send_text(send, b"ok")

    handle = serve(app, response_extensions=False)
    handle.get("/")
    assert "http.response.pathsend" not in seen[0]
    assert "http.response.early_hint" not in seen[0]
    # Starlette then reads the file itself
    files = serve(starlette_files(big_file), response_extensions=False)
    assert files.get("/file").content == big_file.read_bytes()
    assert calls == []
