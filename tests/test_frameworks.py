"""Starlette and FastAPI apps served by carpinus over real sockets, on every loop.

The frameworks exercise the ASGI surface the way real applications do:
JSON in and out, multipart uploads parsed by python-multipart, streamed
responses, background tasks, exception middleware, lifespan state and
Starlette's zero-timeout `receive()` in `request.is_disconnected()`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import socket
import struct
import threading
import time
from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any

import httpx
import pytest
from fastapi import Depends, FastAPI, File, Form, Header, Query, UploadFile
from fastapi import HTTPException as FastAPIHTTPException
from pydantic import BaseModel
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, StreamingResponse
from starlette.routing import Route

from tests.support.clients import build_request
from tests.support.servers import ServerHandle

WAIT = 5.0  # bound for every cross-thread wait in this file
DISCONNECT_WAIT = 3.0  # how long the /disconnect handler polls is_disconnected()
# The server's housekeeping tick (and so its stop at teardown) runs every
# min(timeouts)/4 s, at most 0.5 s; a 1 s request-header timeout (ample for a
# client that writes its request at once) makes teardown ~4x faster.
SERVE_OPTIONS: dict[str, Any] = {"lifespan": "on", "timeout_request_header": 1.0}
STREAM_CHUNKS = [f"chunk-{i}\n".encode() for i in range(8)]


class Hooks:
    """Threading events shared between a test (client thread) and its app (server thread)."""

    def __init__(self) -> None:
        self.client_got_response = threading.Event()
        self.background_done = threading.Event()
        self.background_saw_response = False
        self.client_saw_first_chunk = threading.Event()
        self.stream_waited_ok = False
        self.handler_started = threading.Event()
        self.disconnect_results: list[bool] = []
        self.disconnect_done = threading.Event()


async def _wait_event(event: threading.Event) -> bool:
    """Wait for a threading.Event without blocking the server's loop (bounded)."""
    return await asyncio.to_thread(event.wait, WAIT)


# -- shared route handlers (plain Starlette; FastAPI mounts the same logic) ------


def _stream(hooks: Hooks) -> AsyncIterator[bytes]:
    async def body() -> AsyncIterator[bytes]:
        yield STREAM_CHUNKS[0]
        # The next chunk is only produced once the client has *received* the
        # first: a server that buffered the whole response would stall here.
        hooks.stream_waited_ok = await _wait_event(hooks.client_saw_first_chunk)
        for chunk in STREAM_CHUNKS[1:]:
            await asyncio.sleep(0)
            yield chunk
    return body()


async def _background(hooks: Hooks) -> None:
    # Runs after the response: it waits for the client to confirm receipt.
    hooks.background_saw_response = await _wait_event(hooks.client_got_response)
    hooks.background_done.set()


@contextlib.asynccontextmanager
async def _lifespan(app: Any) -> AsyncIterator[dict[str, Any]]:
    yield {"answer": 42, "shared": []}


def make_starlette(hooks: Hooks) -> Starlette:
    async def json_route(request: Request) -> JSONResponse:
        return JSONResponse({"framework": "starlette", "ok": True, "n": [1, 2, 3]})

    async def item(request: Request) -> JSONResponse:
        return JSONResponse({
            "item_id": request.path_params["item_id"],
            "name": request.path_params["name"],
            "q": request.query_params.get("q"),
            "tags": request.query_params.getlist("tag"),
        })

    async def headers(request: Request) -> JSONResponse:
        return JSONResponse({
            "x-custom": request.headers["X-Custom"],
            "x-multi": request.headers.getlist("x-multi"),
            "user-agent": request.headers.get("user-agent"),
        })

    async def upload(request: Request) -> JSONResponse:
        async with request.form() as form:
            file = form["file"]
            assert not isinstance(file, str)
            data = await file.read()
            return JSONResponse({"size": len(data), "sha256": hashlib.sha256(data).hexdigest(),
                                 "filename": file.filename, "note": form["note"]})

    async def missing(request: Request) -> None:
        raise HTTPException(status_code=404, detail="no such thing")

    async def boom(request: Request) -> None:
        raise RuntimeError("route failed on purpose")

    async def stream(request: Request) -> StreamingResponse:
        return StreamingResponse(_stream(hooks), media_type="text/plain")

    async def background(request: Request) -> PlainTextResponse:
        return PlainTextResponse("accepted", background=BackgroundTask(_background, hooks))

    async def state(request: Request) -> JSONResponse:
        scope_state = request.scope["state"]
        body = {"answer": request.state.answer, "keys": sorted(scope_state),
                "shared": list(request.state.shared)}
        request.state.leaked = "from an earlier request"   # top-level key: per request
        request.state.shared.append(len(body["shared"]))    # shared object: shallow copy
        return JSONResponse(body)

    async def disconnect(request: Request) -> PlainTextResponse:
        results = hooks.disconnect_results
        results.append(await request.is_disconnected())      # client still there
        hooks.handler_started.set()
        deadline = time.monotonic() + DISCONNECT_WAIT
        while time.monotonic() < deadline:
            if await request.is_disconnected():
                results.append(True)
                break
            await asyncio.sleep(0.01)
        hooks.disconnect_done.set()
        return PlainTextResponse("done")

    return Starlette(routes=[
        Route("/json", json_route),
        Route("/items/{item_id:int}/{name}", item),
        Route("/headers", headers),
        Route("/upload", upload, methods=["POST"]),
        Route("/missing", missing),
        Route("/boom", boom),
        Route("/stream", stream),
        Route("/background", background),
        Route("/state", state),
        Route("/disconnect", disconnect),
    ], lifespan=_lifespan)


class Item(BaseModel):
    name: str
    price: float
    tags: list[str] = []


def token(x_token: Annotated[str, Header()]) -> str:
    if x_token != "secret":
        raise FastAPIHTTPException(status_code=401, detail="bad token")
    return x_token


def current_user(tok: Annotated[str, Depends(token)]) -> dict[str, str]:
    """A dependency that has a dependency of its own."""
    return {"name": "alice", "token": tok}


def make_fastapi(hooks: Hooks) -> FastAPI:
    app = FastAPI(lifespan=_lifespan)

    @app.get("/json")
    async def json_route() -> dict[str, Any]:
        return {"framework": "fastapi", "ok": True, "n": [1, 2, 3]}

    @app.get("/items/{item_id}/{name}")
    async def item(item_id: int, name: str, q: str | None = None,
                   tag: Annotated[list[str] | None, Query()] = None) -> dict[str, Any]:
        return {"item_id": item_id, "name": name, "q": q, "tags": tag or []}

    @app.get("/headers")
    async def headers(request: Request) -> dict[str, Any]:
        return {"x-custom": request.headers["X-Custom"],
                "x-multi": request.headers.getlist("x-multi"),
                "user-agent": request.headers.get("user-agent")}

    @app.post("/upload")
    async def upload(file: Annotated[UploadFile, File()],
                     note: Annotated[str, Form()]) -> dict[str, Any]:
        data = await file.read()
        return {"size": len(data), "sha256": hashlib.sha256(data).hexdigest(),
                "filename": file.filename, "note": note}

    @app.get("/missing")
    async def missing() -> None:
        raise FastAPIHTTPException(status_code=404, detail="no such thing")

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("route failed on purpose")

    @app.get("/stream")
    async def stream() -> StreamingResponse:
        return StreamingResponse(_stream(hooks), media_type="text/plain")

    @app.get("/background")
    async def background() -> PlainTextResponse:
        return PlainTextResponse("accepted", background=BackgroundTask(_background, hooks))

    @app.get("/state")
    async def state(request: Request) -> dict[str, Any]:
        body = {"answer": request.state.answer, "keys": sorted(request.scope["state"]),
                "shared": list(request.state.shared)}
        request.state.leaked = "from an earlier request"
        request.state.shared.append(len(body["shared"]))
        return body

    @app.post("/items")
    async def create_item(item: Item) -> dict[str, Any]:
        return {"item": item.model_dump(), "total": item.price * 2}

    @app.get("/me")
    async def me(current: Annotated[dict[str, str], Depends(current_user)]) -> dict[str, str]:
        return current

    return app


FRAMEWORKS: dict[str, Callable[[Hooks], Any]] = {
    "starlette": make_starlette,
    "fastapi": make_fastapi,
}


@pytest.fixture(params=list(FRAMEWORKS))
def framework(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture
def hooks() -> Hooks:
    return Hooks()


@pytest.fixture
def served(serve: Callable[..., ServerHandle], framework: str, hooks: Hooks) -> ServerHandle:
    """The framework's app, served with lifespan on (both apps have a lifespan)."""
    return serve(FRAMEWORKS[framework](hooks), **SERVE_OPTIONS)


@pytest.fixture
def client(served: ServerHandle) -> Any:
    with served.http_client() as c:
        yield c


# -- both frameworks ---------------------------------------------------------------


def test_json_response(client: httpx.Client, framework: str) -> None:
    """A JSON response arrives whole, with its content type and length."""
    r = client.get("/json")
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/json"
    assert int(r.headers["content-length"]) == len(r.content)
    assert r.json() == {"framework": framework, "ok": True, "n": [1, 2, 3]}


def test_path_and_query_params(client: httpx.Client) -> None:
    """Path params (typed and percent-decoded) and repeated query params reach the route."""
    r = client.get("/items/17/caf%C3%A9", params=[("q", "a b&c"), ("tag", "x"), ("tag", "y")])
    assert r.status_code == 200
    assert r.json() == {"item_id": 17, "name": "café", "q": "a b&c", "tags": ["x", "y"]}


def test_request_headers_lookup(client: httpx.Client) -> None:
    """request.headers is case-insensitive and keeps repeated fields in order."""
    r = client.get("/headers", headers=[("X-Custom", "v1"), ("X-Multi", "a"), ("x-multi", "b"),
                                        ("User-Agent", "frameworks-test")])
    assert r.json() == {"x-custom": "v1", "x-multi": ["a", "b"], "user-agent": "frameworks-test"}


def test_multipart_upload(client: httpx.Client) -> None:
    """A ~1 MiB file and a text field via multipart/form-data, parsed by python-multipart."""
    data = bytes(range(256)) * 4096 + b"tail"
    r = client.post("/upload", files={"file": ("blob.bin", data, "application/octet-stream")},
                    data={"note": "hello form"})
    assert r.status_code == 200, r.text
    assert r.json() == {"size": len(data), "sha256": hashlib.sha256(data).hexdigest(),
                        "filename": "blob.bin", "note": "hello form"}


def test_http_exception_404(client: httpx.Client) -> None:
    """HTTPException(404) becomes a 404 response; unknown routes too; the connection lives on."""
    r = client.get("/missing")
    assert r.status_code == 404
    assert "no such thing" in r.text
    assert client.get("/no/such/route").status_code == 404
    assert client.get("/json").status_code == 200


def test_route_exception_is_500(client: httpx.Client, caplog: pytest.LogCaptureFixture) -> None:
    """A route raising gives the client a 500 and the server logs the exception."""
    with caplog.at_level(logging.ERROR, logger="carpinus"):
        r = client.get("/boom")
        assert r.status_code == 500
        assert r.text == "Internal Server Error"
        deadline = time.monotonic() + WAIT
        while "route failed on purpose" not in caplog.text and time.monotonic() < deadline:
            time.sleep(0.01)  # the server thread logs after the response is out
    assert "Exception in ASGI application" in caplog.text
    assert "route failed on purpose" in caplog.text
    assert client.get("/json").status_code == 200  # the server keeps serving


def test_streaming_response(served: ServerHandle, hooks: Hooks) -> None:
    """StreamingResponse: chunked transfer-encoding, chunks in order, and really streamed
    (the client holds the first chunk before the app produces the second)."""
    with served.http_client() as client, client.stream("GET", "/stream") as r:
        assert r.status_code == 200
        assert r.headers["transfer-encoding"] == "chunked"
        assert "content-length" not in r.headers
        received = b""
        for piece in r.iter_raw():
            received += piece
            if received.startswith(STREAM_CHUNKS[0]):
                hooks.client_saw_first_chunk.set()
    assert received == b"".join(STREAM_CHUNKS)
    assert hooks.stream_waited_ok, "the first chunk did not reach the client on its own"


def test_streaming_response_raw_framing(served: ServerHandle, hooks: Hooks) -> None:
    """On the wire the streamed body is valid chunked framing ending in a zero chunk."""
    hooks.client_saw_first_chunk.set()  # no lock-step needed here
    with served.connect() as c:
        r = c.request("GET", "/stream")
        assert r.chunked
        assert r.body == b"".join(STREAM_CHUNKS)
        assert c.request("GET", "/json").status == 200  # keep-alive after a chunked body


def test_background_task_runs_after_response(client: httpx.Client, hooks: Hooks) -> None:
    """The client gets the response while the background task is still running; the
    task then completes (it waits for the client's receipt, so order is proven)."""
    r = client.get("/background")
    assert (r.status_code, r.text) == (200, "accepted")
    assert not hooks.background_done.is_set()
    hooks.client_got_response.set()
    assert hooks.background_done.wait(WAIT)
    assert hooks.background_saw_response


def test_lifespan_state_is_copied_per_request(client: httpx.Client) -> None:
    """State yielded by the lifespan appears in request.state / scope["state"]; each
    request gets a shallow copy: a key set by one request is gone in the next, while
    objects inside the state are shared (ASGI lifespan-state semantics)."""
    first = client.get("/state").json()
    second = client.get("/state").json()
    assert first == {"answer": 42, "keys": ["answer", "shared"], "shared": []}
    assert second == {"answer": 42, "keys": ["answer", "shared"], "shared": [0]}


# -- FastAPI only ----------------------------------------------------------------


@pytest.fixture
def fastapi_client(serve: Callable[..., ServerHandle], hooks: Hooks) -> Any:
    handle = serve(make_fastapi(hooks), **SERVE_OPTIONS)
    with handle.http_client() as c:
        yield c


def test_fastapi_json_body_echo(fastapi_client: httpx.Client) -> None:
    """A JSON body validated into a pydantic model and echoed back."""
    r = fastapi_client.post("/items", json={"name": "pen", "price": 1.5, "tags": ["a"]})
    assert r.status_code == 200
    assert r.json() == {"item": {"name": "pen", "price": 1.5, "tags": ["a"]}, "total": 3.0}


def test_fastapi_json_body_chunked(fastapi_client: httpx.Client) -> None:
    """The same body sent with Transfer-Encoding: chunked in several pieces."""
    def pieces() -> Any:
        yield b'{"name": "ch'
        yield b'unked", "price": '
        yield b"2}"

    r = fastapi_client.post("/items", content=pieces(),
                            headers={"content-type": "application/json"})
    assert r.status_code == 200, r.text
    assert r.json()["item"]["name"] == "chunked"


def test_fastapi_validation_error(fastapi_client: httpx.Client) -> None:
    """Invalid input gets FastAPI's 422 with the failing fields named."""
    r = fastapi_client.post("/items", json={"name": "pen"})
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"] == ["body", "price"]
    assert fastapi_client.get("/items/notanint/x").status_code == 422


def test_fastapi_dependency(fastapi_client: httpx.Client) -> None:
    """Nested dependencies read a header; a failing one short-circuits with its 401."""
    assert fastapi_client.get("/me", headers={"x-token": "secret"}).json() == \
        {"name": "alice", "token": "secret"}
    r = fastapi_client.get("/me", headers={"x-token": "wrong"})
    assert (r.status_code, r.json()) == (401, {"detail": "bad token"})
    assert fastapi_client.get("/me").status_code == 422  # header missing


# -- Starlette only ----------------------------------------------------------------


@pytest.mark.parametrize("close", ["close", "reset"])
def test_starlette_is_disconnected(serve: Callable[..., ServerHandle], hooks: Hooks,
                                   close: str) -> None:
    """request.is_disconnected(): False while the client is connected (the zero-timeout
    receive() is cancelled cleanly), True once the client has gone away.

    "close" is an ordinary close() (FIN), what browsers and HTTP clients do when
    a user gives up; "reset" is an abortive close (SO_LINGER 0, RST).
    """
    handle = serve(make_starlette(hooks), **SERVE_OPTIONS)
    with handle.connect() as c:
        c.send(build_request("GET", "/disconnect"))
        assert hooks.handler_started.wait(WAIT)
        if close == "reset":
            c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    assert hooks.disconnect_done.wait(DISCONNECT_WAIT + WAIT)
    assert hooks.disconnect_results == [False, True], \
        f"no disconnect seen within {DISCONNECT_WAIT}s of the client closing"
    with handle.connect() as c:  # the server is fine afterwards
        assert c.request("GET", "/json").status == 200


@pytest.mark.parametrize("framework", ["starlette", "fastapi"])
def test_root_path_is_kept_in_urls(serve: Callable[..., ServerHandle], framework: str) -> None:
    """Behind a proxy that strips /api (--root-path /api), routes match the
    path without it, and request.url and url_for keep it (Starlette >= 0.35
    reads it from the scope's path, which includes root_path)."""

    async def where(request: Request) -> JSONResponse:
        return JSONResponse({"url": str(request.url),
                             "for": str(request.url_for("where", item="x")),
                             "root_path": request.scope["root_path"]})

    if framework == "starlette":
        app: Any = Starlette(routes=[Route("/items/{item}", where, name="where")])
    else:
        app = FastAPI()
        app.add_api_route("/items/{item}", where, name="where")
    handle = serve(app, root_path="/api")
    r = handle.get("/items/7?q=1", timeout=WAIT)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["url"] == f"{handle.url}/api/items/7?q=1"
    assert body["for"] == f"{handle.url}/api/items/x"
    assert body["root_path"] == "/api"
