"""The http.response.pathsend extension: the app names a file, the server sends it.

Starlette's FileResponse sends `{"type": "http.response.pathsend", "path": ...}`
after `http.response.start` whenever the server offers the extension, instead
of reading the file itself and sending it in `http.response.body` messages.
The C core hands the message to send_path() below (ServerState's `pathsend`),
and what the app awaits is this coroutine.

How the bytes go out:

- on an HTTP/1.x connection of asyncio's own event loop, through
  loop.sendfile(): the kernel's sendfile() on plain TCP -- the file never
  passes through Python -- and asyncio's read-and-write fallback on TLS;
- otherwise (uvloop, which has no loop.sendfile(); HTTP/2, whose DATA frames
  nghttp2 makes), read in CHUNK-sized pieces and sent as body messages
  through the request's own send(), so back-pressure applies as to any app.

Either way memory stays bounded whatever the file's size, and the response
gets a Content-Length of the file's size (an app's own must agree).  A file
that cannot be opened raises (FileNotFoundError, PermissionError,
IsADirectoryError) before any byte of the response: the app's failure then
becomes a 500, as for any app exception.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

# bytes read and sent at a time when loop.sendfile() is not used: big enough
# to keep the per-message cost small, small enough to hold per request
CHUNK = 256 * 1024


async def send_path(cycle: Any, path: str) -> None:
    """Send the file at `path` as the whole body of `cycle`'s response."""
    if not isinstance(path, str):
        raise TypeError(f"'http.response.pathsend' path must be a str, got {path!r}")
    with open(path, "rb") as file:  # noqa: ASYNC230 -- open() does not read
        size = os.fstat(file.fileno()).st_size
        cycle._file_length(size)
        loop = asyncio.get_running_loop()
        if size > 0 and _loop_sendfile(loop):
            # the head, alone; then the body behind the protocol's back
            await cycle.send({"type": "http.response.body", "body": b"", "more_body": True})
            transport = cycle._sendfile_transport()
            if transport is not None:
                sent = await loop.sendfile(transport, file, 0, size)
                cycle._file_sent(sent)
                await cycle.send({"type": "http.response.body", "body": b""})
                return
        await _send_in_chunks(cycle, file, size)


def _loop_sendfile(loop: asyncio.AbstractEventLoop) -> bool:
    """asyncio's own loop implements loop.sendfile() (natively on plain TCP,
    by reads on TLS); uvloop's raises NotImplementedError."""
    return isinstance(loop, asyncio.BaseEventLoop)


async def _send_in_chunks(cycle: Any, file: Any, size: int) -> None:
    left = size
    while True:
        # a local file read: the page cache, or a short wait on the disk
        chunk = file.read(min(CHUNK, left)) if left > 0 else b""
        left -= len(chunk)
        done = left <= 0 or not chunk
        await cycle.send({"type": "http.response.body", "body": chunk, "more_body": not done})
        if done:
            return
