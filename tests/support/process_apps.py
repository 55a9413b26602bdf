"""Raw-ASGI apps that the subprocess tests (test_main, test_server) serve by import string.

They print a marker line to stderr when a slow request starts, so a test can
wait for "the server is now running N requests" on the log instead of guessing
with sleeps.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import threading
import time
from typing import Any
from urllib.parse import parse_qs

SLEEP_MARKER = "process-app: sleep started"
THREAD_MARKER = "process-app: thread held"
STREAM_MARKER = "process-app: stream started"
STREAM_ENDED = "process-app: stream ended"
LIFESPAN_GREETING = "hello from lifespan"

# What /hold allocates stays here for the life of the process: a leak on demand.
_held: list[bytes] = []


async def _text(send: Any, body: bytes, status: int = 200) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": body})


async def _lifespan(scope: dict[str, Any], receive: Any, send: Any) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            if "state" in scope:
                scope["state"]["greeting"] = LIFESPAN_GREETING
                scope["state"]["shared_list"] = []
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """GET / → "Hello"; /sleep?ms=N → "ok" after N ms; /scope → JSON of scope fields;
    /pid → the serving process' pid; /block?ms=N → blocks the whole event loop N ms;
    /thread?ms=N → as /block, logged, answers "PID THREAD-ID" (with --threads the next
    connection has to go to another serving thread meanwhile);
    /raise → the app raises (500); /exit → sys.exit(3) from the app; /stream?ms=N → a
    Server-Sent-Events stream with one event every N ms that never ends by itself (it
    logs how it ended); /hold?mib=N → allocates N MiB and keeps it for good (a leak),
    answers with the pid."""
    if scope["type"] == "lifespan":
        await _lifespan(scope, receive, send)
        return
    assert scope["type"] == "http"
    path = scope["path"]
    if path == "/":
        await _text(send, b"Hello")
    elif path == "/sleep":
        query = parse_qs(scope["query_string"].decode("latin-1"))
        ms = int(query.get("ms", ["0"])[0])
        print(f"{SLEEP_MARKER} {ms}", file=sys.stderr, flush=True)
        await asyncio.sleep(ms / 1000)
        await _text(send, b"ok")
    elif path == "/stream":
        await _stream(scope, send)
    elif path == "/pid":
        await _text(send, str(os.getpid()).encode())
    elif path == "/hold":
        query = parse_qs(scope["query_string"].decode("latin-1"))
        # written, not calloc'ed zeros: the pages must be resident to count
        _held.append(b"\x01" * (int(query.get("mib", ["1"])[0]) << 20))
        await _text(send, str(os.getpid()).encode())
    elif path == "/raise":
        raise RuntimeError("process-app: raised on purpose")  # the server answers 500
    elif path == "/exit":
        sys.exit(3)  # before any await: on 3.12+ inside the read (eager start)
    elif path == "/block":
        query = parse_qs(scope["query_string"].decode("latin-1"))
        time.sleep(int(query.get("ms", ["0"])[0]) / 1000)  # on purpose: a blocked loop
        await _text(send, b"unblocked")
    elif path == "/thread":
        query = parse_qs(scope["query_string"].decode("latin-1"))
        print(THREAD_MARKER, file=sys.stderr, flush=True)
        time.sleep(int(query.get("ms", ["0"])[0]) / 1000)  # holds this thread's loop
        await _text(send, f"{os.getpid()} {threading.get_ident()}".encode())
    elif path.endswith("/scope"):
        state = scope.get("state", {})
        body = {
            "path": path,
            "raw_path": scope["raw_path"].decode("latin-1"),
            "root_path": scope.get("root_path"),
            "state_keys": sorted(state),
            "greeting": state.get("greeting"),
            "server": list(scope["server"]) if scope.get("server") else None,
            "client": list(scope["client"]) if scope.get("client") else None,
            "scheme": scope.get("scheme"),
        }
        state["added_by_request"] = True  # must not leak into the next request
        await _text(send, json.dumps(body).encode())
    else:
        await _text(send, b"Not Found", 404)


async def _stream(scope: dict[str, Any], send: Any) -> None:
    """SSE: "data: N" every `ms` milliseconds until the client goes or the task is
    cancelled; the marker lines let a test see it start and how it ended."""
    query = parse_qs(scope["query_string"].decode("latin-1"))
    ms = int(query.get("ms", ["100"])[0])
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/event-stream"),
                            (b"cache-control", b"no-cache")]})
    print(STREAM_MARKER, file=sys.stderr, flush=True)
    how = "by itself"
    try:
        n = 0
        while True:
            await send({"type": "http.response.body", "body": f"data: {n}\n\n".encode(),
                        "more_body": True})
            n += 1
            await asyncio.sleep(ms / 1000)
    except asyncio.CancelledError:
        how = "cancelled"
        raise
    except OSError:  # the client went away (send raises once disconnected)
        how = "disconnected"
    finally:
        print(f"{STREAM_ENDED} ({how})", file=sys.stderr, flush=True)


async def url_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Answers with the request's URL as Starlette reconstructs it (scheme, Host
    header, path, query): what a framework builds links and redirects from."""
    if scope["type"] != "http":
        return
    from starlette.requests import Request

    await _text(send, str(Request(scope).url).encode())


def create_app() -> Any:
    """An app factory, for --factory."""
    return app


async def no_lifespan_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """An app written for HTTP only: it raises on any other scope type."""
    if scope["type"] != "http":
        raise RuntimeError(f"this app only speaks http, got {scope['type']!r}")
    await _text(send, b"Hello")


async def startup_failed_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Answers lifespan.startup with lifespan.startup.failed."""
    if scope["type"] == "lifespan":
        message = await receive()
        assert message["type"] == "lifespan.startup"
        await send({"type": "lifespan.startup.failed", "message": "database unreachable"})
        return
    await _text(send, b"should never serve")


async def startup_raises_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Raises while handling lifespan.startup."""
    if scope["type"] == "lifespan":
        await receive()
        raise RuntimeError("boom during startup")
    await _text(send, b"should never serve")
