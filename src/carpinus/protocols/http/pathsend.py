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
- on a plain-TCP HTTP/1.x connection of uvloop, which has no
  loop.sendfile(), through the kernel's sendfile() all the same, on a
  duplicate of the socket's descriptor (send_by_kernel below);
- otherwise (TLS on uvloop; HTTP/2, whose DATA frames nghttp2 makes), read
  in CHUNK-sized pieces and sent as body messages through the request's own
  send(), so back-pressure applies as to any app.

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

from carpinus import _core

ClientDisconnected = _core.ClientDisconnected

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
        if size > 0:
            # the head, alone; then the body behind the protocol's back
            await cycle.send({"type": "http.response.body", "body": b"", "more_body": True})
            transport = cycle._sendfile_transport()
            if transport is not None:
                try:
                    if _loop_sendfile(loop):
                        sent = await loop.sendfile(transport, file, 0, size)
                    elif _plain_socket(transport):
                        sent = await send_by_kernel(loop, transport, file, size)
                    else:
                        sent = -1
                except ConnectionError as exc:
                    # what send() raises once the client is gone: not the app's fault
                    raise ClientDisconnected("The connection is closed.") from exc
                if sent >= 0:
                    cycle._file_sent(sent)
                    await cycle.send({"type": "http.response.body", "body": b""})
                    return
        await _send_in_chunks(cycle, file, size)


def _loop_sendfile(loop: asyncio.AbstractEventLoop) -> bool:
    """asyncio's own loop implements loop.sendfile() (natively on plain TCP,
    by reads on TLS); uvloop's raises NotImplementedError."""
    return isinstance(loop, asyncio.BaseEventLoop)


def _plain_socket(transport: asyncio.BaseTransport) -> bool:
    """A TCP transport without TLS, that exposes its socket."""
    return (transport.get_extra_info("sslcontext") is None
            and transport.get_extra_info("socket") is not None)


async def send_by_kernel(loop: asyncio.AbstractEventLoop, transport: Any, file: Any,
                         size: int) -> int:
    """os.sendfile() from `file` to the transport's socket: `size` bytes, or
    fewer if the file shrank; the bytes sent.

    The socket is the transport's, so it is used through a duplicate of its
    descriptor: the loop refuses add_writer() on a descriptor a transport
    owns, and the transport may close its own while this waits -- the
    number then names nothing, or another connection's socket.  The
    transport writes nothing meanwhile: its buffer is empty before the first
    byte goes (the head may still sit there), and the connection's protocol
    writes nothing else before this response ends.
    """
    fd = os.dup(transport.get_extra_info("socket").fileno())
    try:
        while transport.get_write_buffer_size():
            await _writable(loop, fd, transport)
        sent = 0
        while sent < size:
            try:
                n = os.sendfile(fd, file.fileno(), sent, size - sent)
            except BlockingIOError:
                await _writable(loop, fd, transport)
                continue
            if n == 0:  # the file is shorter than it was
                break
            sent += n
        return sent
    finally:
        os.close(fd)


async def _writable(loop: asyncio.AbstractEventLoop, fd: int, transport: Any) -> None:
    """Wait until the socket takes bytes again; ConnectionResetError if the
    transport closed meanwhile (the client went, or the server is shutting
    down)."""
    if transport.is_closing():
        raise ConnectionResetError("the connection closed while a file was being sent")
    ready = loop.create_future()

    def wake() -> None:
        if not ready.done():
            ready.set_result(None)

    loop.add_writer(fd, wake)
    try:
        await ready
    finally:
        loop.remove_writer(fd)
    if transport.is_closing():
        raise ConnectionResetError("the connection closed while a file was being sent")


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
