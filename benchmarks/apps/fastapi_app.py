"""The demo app's routes written the FastAPI way, for `run.py --app fastapi`.

Same paths and same answers as carpinus.demo:app, so the probe and the
workloads need no change; what differs is the framework's cost per request.
"""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import FastAPI, Header, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import PlainTextResponse

MAX_SLEEP_MS = 60_000

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
