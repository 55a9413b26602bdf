"""The workloads: what wrk (wsload, h2load) sends, and a probe that checks one answer first.

Every workload targets the same routes, served by the raw ASGI demo app
(carpinus.demo:app) or its FastAPI twin (benchmarks/apps/fastapi_app.py).
wrk builds its request once from `wrk.method`, `wrk.body` and `wrk.headers`
(no per-request Lua), adding Host and, for a body, Content-Length.  The
WebSocket workloads are driven by benchmarks/wsload/wsload.c instead
(harness/wsload.py): each connection echoes one text message at a time, 16
bytes or 16 KiB of JSON, with permessage-deflate negotiated or not.  The
HTTP/2 workloads (h2-*) send the HTTP/1.1 workloads' requests over h2c with
h2load (harness/h2load.py), with 10 streams in flight per connection (-m10)
or one (-m1).  The static-file workloads (file1m, file64m) need
`--app fastapi`, whose module serves them with Starlette's FileResponse.
"""

from __future__ import annotations

import http.client
import json
from dataclasses import dataclass, replace
from pathlib import Path

REPORT_LUA = Path(__file__).resolve().parent.parent / "wrk" / "report.lua"

# A browser's navigation request (Firefox 128 on Linux), the same headers as
# benchmarks/micro.py: with the Host header wrk adds, 12 in all.  The demo app
# reads two of them (user-agent and accept).
BROWSER_HEADERS: tuple[tuple[str, str], ...] = (
    ("User-Agent", "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"),
    ("Accept", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"),
    ("Accept-Language", "en-US,en;q=0.5"),
    ("Accept-Encoding", "gzip, deflate, br, zstd"),
    ("Connection", "keep-alive"),
    ("Cookie", "session=8f14e45fceea167a5a36dedd4bea2543; theme=dark"),
    ("Upgrade-Insecure-Requests", "1"),
    ("Sec-Fetch-Dest", "document"),
    ("Sec-Fetch-Mode", "navigate"),
    ("Sec-Fetch-Site", "none"),
    ("Priority", "u=0, i"),
)
OCTET_STREAM = (("Content-Type", "application/octet-stream"),)
# Headers HTTP/2 forbids (RFC 9113 8.2.2): a request carrying one is
# malformed and every server resets its stream.  Host becomes :authority,
# which h2load sends from the URL.
CONNECTION_SPECIFIC = {"connection", "keep-alive", "proxy-connection", "transfer-encoding",
                       "upgrade"}

# What the demo app answers to /headers: the two headers it reads.
HEADERS_ANSWER = b"user-agent: %s\naccept: %s" % (
    dict(BROWSER_HEADERS)["User-Agent"].encode(), dict(BROWSER_HEADERS)["Accept"].encode())


@dataclass(frozen=True)
class Workload:
    method: str
    path: str
    headers: tuple[tuple[str, str], ...] = ()
    body_size: int = 0
    # What a correct app answers (the ceilings answer "Hello, World!" to all).
    expected_body: bytes | None = None
    description: str = ""
    # "http": wrk; "websocket": wsload, echoing text messages of message_size
    # bytes (websocket_messages), compressed with permessage-deflate or not;
    # "h2": h2load over h2c, `streams` in flight per connection
    protocol: str = "http"
    message_size: int = 0
    deflate: bool = False
    streams: int = 0
    # a static file of this many bytes: the answer is static_file_bytes(size),
    # and only the FastAPI app serves it
    file_size: int = 0
    # wrk asks for `path` followed by 0, 1, ... distinct_paths - 1 in turn
    # (the probe asks for path + "0"); 0: always `path`
    distinct_paths: int = 0

    @property
    def body(self) -> bytes:
        # wrk sends the same bytes; "x" keeps the Lua source and the probe simple.
        return b"x" * self.body_size


WORKLOADS: dict[str, Workload] = {
    "hello": Workload("GET", "/", expected_body=b"Hello, World!",
                      description="GET / answering 'Hello, World!'"),
    "sleep": Workload("GET", "/sleep?ms=1", expected_body=b"ok",
                      description="GET /sleep?ms=1: the app awaits asyncio.sleep(0.001)"),
    "upload16k": Workload("POST", "/upload", OCTET_STREAM, 16 * 1024, b"16384",
                          "POST /upload with a 16 KiB body; the app answers its length"),
    "upload1m": Workload("POST", "/upload", OCTET_STREAM, 1024 * 1024, b"1048576",
                         "POST /upload with a 1 MiB body; the app answers its length"),
    "headers": Workload("GET", "/headers", BROWSER_HEADERS,
                        expected_body=HEADERS_ANSWER,
                        description="GET /headers with 12 browser headers (Host included); "
                                    "the app reads 2"),
    "websocket": Workload("GET", "/ws", protocol="websocket", message_size=16,
                          description="WebSocket /ws: each connection sends a 16-byte text "
                                      "message and waits for its echo, again and again"),
    "websocket-deflate": Workload("GET", "/ws", protocol="websocket", message_size=16,
                                  deflate=True,
                                  description="the same with permessage-deflate negotiated"),
    "websocket16k": Workload("GET", "/ws", protocol="websocket", message_size=16 * 1024,
                             description="WebSocket /ws: 16 KiB JSON text messages echoed, "
                                         "one in flight per connection"),
    "websocket16k-deflate": Workload("GET", "/ws", protocol="websocket",
                                     message_size=16 * 1024, deflate=True,
                                     description="the same with permessage-deflate negotiated"),
    "paths10k": Workload("GET", "/users/", expected_body=b"user 0", distinct_paths=10_000,
                         description="GET /users/<id> over 10,000 different ids in turn "
                                     "(a path cache never sees the same one twice in a row)"),
    "file1m": Workload("GET", "/files/1m", file_size=1 << 20,
                       description="GET /files/1m: a 1 MiB file through Starlette's "
                                   "FileResponse (--app fastapi)"),
    "file64m": Workload("GET", "/files/64m", file_size=64 << 20,
                        description="GET /files/64m: a 64 MiB file through Starlette's "
                                    "FileResponse (--app fastapi)"),
}


def static_file_bytes(size: int) -> bytes:
    """What the FastAPI app's static file of `size` bytes holds
    (benchmarks/apps/fastapi_app.py writes it the same way)."""
    return bytes(range(256)) * (size // 256)


def over_h2(workload: Workload, streams: int) -> Workload:
    """The same request over h2c, `streams` in flight per connection, without
    the headers HTTP/2 forbids (the browser set keeps 10 of its 11)."""
    headers = tuple((n, v) for n, v in workload.headers if n.lower() not in CONNECTION_SPECIFIC)
    description = workload.description.replace(
        "12 browser headers (Host included)", f"{len(headers)} browser headers (no Connection)")
    return replace(workload, headers=headers, protocol="h2", streams=streams,
                   description=f"{description}; h2c, {streams} stream(s) per connection")


# The HTTP/2 workloads: h2-hello-m10, h2-hello-m1, h2-headers-m10, ...
H2_STREAMS = (10, 1)
WORKLOADS.update({f"h2-{name}-m{streams}": over_h2(WORKLOADS[name], streams)
                  for name in ("hello", "headers", "upload16k") for streams in H2_STREAMS})

# Messages of at least this size are JSON, as an API would send; smaller ones letters.
JSON_MESSAGE_MIN = 1024
# Distinct JSON messages each connection sends in turn: a compressor that
# keeps its context (permessage-deflate's default) never sees the same bytes
# twice in a row, as it would not in an application.
JSON_MESSAGES = 4


def websocket_messages(workload: Workload) -> list[bytes]:
    """What wsload sends (and the probe checks), message_size bytes each: a..z
    repeating for small messages; for large ones JSON-like text with its own
    ids, names and prices per message, cut to size.  No newline inside one
    (wsload reads them one a line)."""
    size = workload.message_size
    if size < JSON_MESSAGE_MIN:
        return [bytes(0x61 + i % 26 for i in range(size))]
    messages = []
    for variant in range(JSON_MESSAGES):
        items = []
        length = 0
        for i in range(variant * 1000, variant * 1000 + size):
            item = json.dumps({"id": i, "name": f"item {i * 7919 % 10007}",
                               "price": round(i * 1.37 % 997, 2),
                               "tags": ["sale" if i % 3 else "new", f"t{i % 17}"]})
            items.append(item)
            length += len(item) + 2
            if length > size:
                break
        messages.append(("[" + ", ".join(items))[:size].encode())
    return messages


def lua_string(text: str) -> str:
    """A Lua string literal.  JSON's escapes are Lua's for ASCII text."""
    if not text.isascii():
        raise ValueError(f"wrk scripts are kept ASCII, got {text!r}")
    return json.dumps(text)


def lua_script(workload: Workload) -> str:
    """The request set-up for wrk, followed by the shared result reporter."""
    lines = [f"wrk.method = {lua_string(workload.method)}"]
    if workload.body_size:
        lines.append(f'wrk.body = string.rep("x", {workload.body_size})')
    for name, value in workload.headers:
        lines.append(f"wrk.headers[{lua_string(name)}] = {lua_string(value)}")
    if workload.distinct_paths:
        lines += ["local next_id = 0",
                  "request = function()",
                  f"   local path = {lua_string(workload.path)} .. next_id",
                  f"   next_id = (next_id + 1) % {workload.distinct_paths}",
                  "   return wrk.format(nil, path)",
                  "end"]
    return "\n".join(lines) + "\n\n" + REPORT_LUA.read_text()


def write_client_files(workloads: list[str], directory: Path) -> dict[str, Path]:
    """What each load client reads, per workload: wrk's Lua script for an
    HTTP/1.1 workload, h2load's request body (`--data FILE`) for an h2 one
    that sends a body; nothing for the others."""
    files = {}
    for name in workloads:
        workload = WORKLOADS[name]
        if workload.protocol == "http":
            files[name] = directory / f"{name}.lua"
            files[name].write_text(lua_script(workload))
        elif workload.protocol == "h2" and workload.body_size:
            files[name] = directory / f"{name}.body"
            files[name].write_bytes(workload.body)
    return files


def probe(workload: Workload, host: str, port: int, ceiling: bool) -> str | None:
    """Send the workload's request once; the problem found, or None.

    wrk counts only 4xx/5xx and socket errors: a redirect or a wrong answer
    would pass it unnoticed, so each measurement starts by checking one reply.
    """
    target = workload.path + ("0" if workload.distinct_paths else "")
    connection = http.client.HTTPConnection(host, port, timeout=10)
    try:
        connection.request(workload.method, target, body=workload.body or None,
                           headers=dict(workload.headers))
        response = connection.getresponse()
        body = response.read()
    except (OSError, http.client.HTTPException) as exc:
        return f"{workload.method} {target} failed: {exc!r}"
    finally:
        connection.close()
    if response.status != 200:
        return f"{workload.method} {target} answered {response.status}, expected 200"
    if workload.file_size and body != static_file_bytes(workload.file_size):
        return (f"{workload.method} {target} answered {len(body)} bytes, not the "
                f"{workload.file_size} of the file")
    if not ceiling and workload.expected_body is not None and body != workload.expected_body:
        return (f"{workload.method} {target} answered {body[:80]!r}, "
                f"expected {workload.expected_body!r}")
    return None
