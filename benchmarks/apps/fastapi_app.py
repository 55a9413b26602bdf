"""The demo app's routes written the FastAPI way, for `run.py --app fastapi`.

Same paths and same answers as carpinus.demo:app, so the probe and the
workloads need no change; what differs is the framework's cost per request.
One route more, for the static-file workloads (file1m, file64m): Starlette's
FileResponse over files this module writes at import (STATIC_DIR), which a
server offering `http.response.pathsend` gets as one message per file and
any other server as the response's own reads.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from pathlib import Path
from typing import Annotated

from fastapi import FastAPI, Header, HTTPException, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import FileResponse, PlainTextResponse

MAX_SLEEP_MS = 60_000

# The static files, by name: their content is STATIC_PATTERN repeated, which
# the benchmark's probe checks (harness/workloads.py, static_file_bytes).
STATIC_SIZES = {"1m": 1 << 20, "64m": 64 << 20}
STATIC_PATTERN = bytes(range(256))
STATIC_DIR = Path(os.environ.get("CARPINUS_BENCH_STATIC_DIR",
                                 Path(tempfile.gettempdir()) / "carpinus-bench-static"))


def write_static_files() -> None:
    """Write each file unless it is there with its size; through a rename, so
    two servers starting at once never serve a half-written one."""
    STATIC_DIR.mkdir(parents=True, exist_ok=True)
    for name, size in STATIC_SIZES.items():
        path = STATIC_DIR / name
        if path.exists() and path.stat().st_size == size:
            continue
        partial = path.with_suffix(f".{os.getpid()}.partial")
        partial.write_bytes(STATIC_PATTERN * (size // len(STATIC_PATTERN)))
        partial.replace(path)


write_static_files()

app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)


@app.get("/", response_class=PlainTextResponse)
async def hello() -> str:
    return "Hello, World!"


@app.get("/sleep", response_class=PlainTextResponse)
async def sleep(ms: int = 0) -> str:
    await asyncio.sleep(min(max(ms, 0), MAX_SLEEP_MS) / 1000)
    return "ok"


@app.post("/upload", response_class=PlainTextResponse)
async def upload(request: Request) -> str:
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
    return str(size)


@app.get("/headers", response_class=PlainTextResponse)
async def headers(
    user_agent: Annotated[str, Header()] = "-", accept: Annotated[str, Header()] = "-"
) -> str:
    return f"user-agent: {user_agent}\naccept: {accept}"


@app.get("/users/{user_id}", response_class=PlainTextResponse)
async def user(user_id: str) -> str:
    return f"user {user_id}"


@app.get("/files/{name}")
async def static_file(name: str) -> FileResponse:
    if name not in STATIC_SIZES:
        raise HTTPException(404)
    return FileResponse(STATIC_DIR / name, media_type="application/octet-stream")


@app.websocket("/ws")
async def echo(websocket: WebSocket) -> None:
    await websocket.accept()
    try:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            if message.get("text") is not None:
                await websocket.send_text(message["text"])
            else:
                await websocket.send_bytes(message["bytes"])
    except WebSocketDisconnect:
        return
