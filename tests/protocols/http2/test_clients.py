"""HTTP/2 with the clients people use: curl and h2load (both on nghttp2), httpx
(on h2) with Starlette and FastAPI apps, and a browser, headless Chromium,
which speaks HTTP/2 only over TLS and only when ALPN offers it."""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
from typing import Any

import pytest
from fastapi import FastAPI, File, UploadFile
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, StreamingResponse
from starlette.routing import Route

from tests.support import apps, tls_leg
from tests.support.h2_clients import h2_http_client
from tests.support.h2_tools import curl_command, h2load_command
from tests.support.processes import tool_env

pytestmark = pytest.mark.skipif(
    not __import__("carpinus._core", fromlist=["HAVE_HTTP2"]).HAVE_HTTP2,
    reason="this build has no libnghttp2 (make test installs libnghttp2-dev)")


def test_curl(serve, tmp_path):
    handle = serve(apps.echo_body)
    out = subprocess.run([*curl_command(handle, tmp_path, "/echo"), "--data-binary", "hello h2",
                          "-w", "\\n%{http_version} %{response_code}"],
                         capture_output=True, check=True, timeout=30, env=tool_env()).stdout
    assert out == b"hello h2\n2 200"


def test_h2load_zero_failures(serve):
    handle = serve(apps.hello)
    out = subprocess.run(h2load_command(handle, "/", "-n", "3000", "-c", "4", "-m", "10"),
                         capture_output=True, text=True, check=True, timeout=60,
                         env=tool_env()).stdout
    assert re.search(r"requests: 3000 total, 3000 started, 3000 done, 3000 succeeded, "
                     r"0 failed, 0 errored, 0 timeout", out), out
    assert "status codes: 3000 2xx" in out


def test_h2load_uploads(serve, tmp_path):
    handle = serve(apps.echo_body)
    body = tmp_path / "body"
    body.write_bytes(b"u" * 16384)
    out = subprocess.run(h2load_command(handle, "/", "-n", "500", "-c", "2", "-m", "10",
                                        "-d", str(body)),
                         capture_output=True, text=True, check=True, timeout=60,
                         env=tool_env()).stdout
    assert "500 succeeded, 0 failed" in out, out
    assert "status codes: 500 2xx" in out


def starlette_app() -> Starlette:
    async def json_echo(request: Request) -> JSONResponse:
        return JSONResponse({"got": await request.json(), "version": request.scope["http_version"]})

    async def stream(request: Request) -> StreamingResponse:
        async def parts() -> Any:
            for i in range(100):
                yield f"part {i}\n".encode()
        return StreamingResponse(parts(), media_type="text/plain")

    async def upload_digest(request: Request) -> PlainTextResponse:
        digest = hashlib.sha256()
        async for chunk in request.stream():
            digest.update(chunk)
        return PlainTextResponse(digest.hexdigest())

    return Starlette(routes=[Route("/json", json_echo, methods=["POST"]),
                             Route("/stream", stream),
                             Route("/upload", upload_digest, methods=["POST"])])


def test_starlette_json_streaming_upload(serve):
    handle = serve(starlette_app())
    payload = bytes(range(256)) * 8192  # 2 MiB: several windows' worth
    with h2_http_client(handle) as client:
        r = client.post("/json", json={"a": [1, 2, 3]})
        assert r.http_version == "HTTP/2"
        assert r.json() == {"got": {"a": [1, 2, 3]}, "version": "2"}
        r = client.get("/stream")
        assert r.text == "".join(f"part {i}\n" for i in range(100))
        r = client.post("/upload", content=payload)
        assert r.text == hashlib.sha256(payload).hexdigest()


def test_fastapi_over_http2(serve):
    app = FastAPI()

    @app.post("/items/{item_id}")
    async def item(item_id: int, body: dict[str, Any]) -> dict[str, Any]:
        return {"id": item_id, "body": body}

    @app.post("/file")
    async def upload(file: UploadFile = File(...)) -> dict[str, Any]:  # noqa: B008
        data = await file.read()
        return {"name": file.filename, "size": len(data)}

    handle = serve(app)
    with h2_http_client(handle) as client:
        r = client.post("/items/7", json={"x": 1})
        assert r.http_version == "HTTP/2"
        assert r.json() == {"id": 7, "body": {"x": 1}}
        r = client.post("/file", files={"file": ("a.bin", b"f" * 300_000)})
        assert r.json() == {"name": "a.bin", "size": 300_000}
        assert client.post("/items/x", json={}).status_code == 422


PAGE = """<!doctype html><html><head><title>h2</title></head><body>waiting<script>
Promise.all([fetch('/data/1').then(r => r.text()), fetch('/data/2').then(r => r.text())])
  .then(texts => {
    const hops = performance.getEntriesByType('resource')
      .filter(e => e.name.includes('/data/')).map(e => e.nextHopProtocol);
    const nav = performance.getEntriesByType('navigation')[0].nextHopProtocol;
    document.body.textContent = 'RESULT ' + nav + ' ' + hops.join(',') + ' ' + texts.join(',');
  })
  .catch(err => { document.body.textContent = 'RESULT error ' + err; });
</script></body></html>"""


@pytest.mark.skipif(shutil.which("chromium") is None,
                    reason="chromium is not installed (make test installs it as root)")
def test_chromium_loads_a_page_over_h2(serve, tmp_path):
    async def page(request: Request) -> HTMLResponse:
        return HTMLResponse(PAGE)

    async def data(request: Request) -> PlainTextResponse:
        return PlainTextResponse(f"{request.path_params['n']}@{request.scope['http_version']}")

    app = Starlette(routes=[Route("/", page), Route("/data/{n}", data)])
    # a browser speaks HTTP/2 only over TLS: a certificate of the test's own
    # (the browser is told to accept it) in either leg
    _, certs = tls_leg.issue_certificates(tmp_path)
    handle = serve(app, ssl_certfile=certs.certfile, ssl_keyfile=certs.keyfile)
    profile = tmp_path / "profile"
    out = subprocess.run(
        ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--ignore-certificate-errors",
         f"--user-data-dir={profile}", "--virtual-time-budget=10000", "--dump-dom",
         f"https://127.0.0.1:{handle.port}/"],
        capture_output=True, text=True, timeout=90, env=tool_env()).stdout
    match = re.search(r"RESULT ([^<]*)", out)
    assert match is not None, out[-2000:]
    assert match.group(1).strip() == "h2 h2,h2 1@2,2@2"
