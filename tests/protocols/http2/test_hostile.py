"""Hostile HTTP/2 peers: each known attack on HTTP/2 servers, sent frame by frame.
For each, the server must survive, hold bounded memory for the attacker (it
closes the connection or answers the one stream), and keep serving other
connections meanwhile."""

from __future__ import annotations

import asyncio
import socket
import time

import h2.errors
import hpack
import pytest

from tests.support import apps
from tests.support.h2_clients import (
    CONTINUATION,
    DATA,
    END_HEADERS,
    END_STREAM,
    GOAWAY,
    HEADERS,
    PING,
    RST_STREAM,
    SETTINGS,
    H2Client,
    frame,
    h2_tls_context,
    preface_and_settings,
)
from tests.support.waiting import wait_for

pytestmark = pytest.mark.skipif(
    not __import__("carpinus._core", fromlist=["HAVE_HTTP2"]).HAVE_HTTP2,
    reason="this build has no libnghttp2 (make test installs libnghttp2-dev)")

REQUEST = [(":method", "GET"), (":scheme", "http"), (":authority", "x"), (":path", "/")]


def raw_connection(handle):
    """A socket that has sent the preface and SETTINGS (h2 over TLS in the TLS leg)."""
    sock = socket.create_connection((handle.host, handle.port), timeout=10)
    ctx = h2_tls_context(handle.tls)
    if ctx is not None:
        sock = ctx.wrap_socket(sock, server_hostname=handle.host)
    sock.sendall(preface_and_settings())
    return sock


def send_until_closed(sock, chunks, limit_seconds=10.0) -> bool:
    """Send the chunks (reading and dropping what comes back); True once the
    server closed the connection."""
    deadline = time.monotonic() + limit_seconds
    sock.settimeout(0.2)
    for chunk in chunks:
        if time.monotonic() > deadline:
            return False
        try:
            sock.sendall(chunk)
        except OSError:
            return True
    while time.monotonic() < deadline:
        try:
            if not sock.recv(65536):
                return True
        except TimeoutError:
            continue
        except OSError:
            return True
    return False


def still_serves(handle) -> None:
    with H2Client.to(handle) as c:
        assert c.get("/").status == 200


def test_rapid_reset(serve):
    """CVE-2023-44487: streams opened and reset at once, faster than any app
    can answer.  nghttp2's reset rate limit (its default burst 1000) ends the
    connection; the apps of the reset streams hear http.disconnect."""
    async def app(scope, receive, send):
        await asyncio.sleep(0.5)
        await apps.send_text(send, b"late")

    handle = serve(app)
    enc = hpack.Encoder()
    chunks = []
    for i in range(3000):
        sid = 1 + 2 * i
        chunks.append(frame(HEADERS, END_HEADERS | END_STREAM, sid, enc.encode(REQUEST)) +
                      frame(RST_STREAM, 0, sid, (8).to_bytes(4, "big")))
    with raw_connection(handle) as sock:
        # all at once, as one read of the server's: a GOAWAY queued in the
        # middle of it must refuse the streams that follow in the same read
        assert send_until_closed(sock, [b"".join(chunks)])
    still_serves(handle)
    # the bucket's 1000 resets, the stream whose reset emptied it, the
    # check above, and what the bucket refilled meanwhile (33 a second)
    assert handle.state.stats()["requests_total"] < 1100


def test_continuation_flood(serve):
    """CVE-2024-27316 and kin: a HEADERS frame followed by CONTINUATION frames
    that never end the block.  The connection ends after a few."""
    handle = serve(apps.hello)
    enc = hpack.Encoder()
    block = enc.encode(REQUEST)
    chunks = [frame(HEADERS, 0, 1, block)]
    chunks += [frame(CONTINUATION, 0, 1, enc.encode([("x-pad", "p" * 100)]))
               for _ in range(10000)]
    with raw_connection(handle) as sock:
        assert send_until_closed(sock, [b"".join(chunks[i:i + 100])
                                        for i in range(0, len(chunks), 100)])
    still_serves(handle)


def test_hpack_bomb(serve):
    """A small header block that decodes to a huge field list: one 4 KB field
    put in the dynamic table, then referenced a thousand times (one byte
    each).  The stream gets 431; nothing past the limit is kept."""
    handle = serve(apps.hello)
    with H2Client.to(handle) as c:
        c.wait(lambda: c.conn.remote_settings.max_header_list_size == 65536)
        enc = hpack.Encoder()
        block = enc.encode(REQUEST + [("x-bomb", "b" * 4000)]) + b"\xbe" * 2000
        # on a connection of its own: the block changes the server's HPACK table
    with raw_connection(handle) as sock:
        sock.sendall(frame(HEADERS, END_HEADERS | END_STREAM, 1, block))
        got = read_frames(sock, until=lambda f: f[0] == HEADERS and f[2] == 1)
    status = hpack.Decoder().decode(got[-1][3])
    assert (":status", "431") in status
    still_serves(handle)


def test_settings_and_ping_floods_from_a_peer_that_does_not_read(serve):
    """CVE-2019-9515 / 9512: each SETTINGS or PING asks for an acknowledgement;
    a peer that never reads them must not make the server queue them without
    bound.  Once the socket is full they queue in nghttp2, whose limit (1000)
    ends the connection -- or, where the transport stops reading while its
    writes are stuck (uvloop's TLS), the flood stalls: either way what the
    server took in stays small."""
    handle = serve(apps.hello)
    for kind, payload in ((SETTINGS, b""), (PING, b"12345678")):
        sock = raw_connection(handle)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        flood = frame(kind, 0, 0, payload) * 2000
        closed = False
        taken = 0
        deadline = time.monotonic() + 5
        sock.settimeout(0.5)
        while not closed and time.monotonic() < deadline:
            try:
                sock.sendall(flood)  # never reading
                taken += len(flood)
            except TimeoutError:
                pass
            except OSError:
                closed = True
        sock.close()
        # 1000 acknowledgements queued is the limit; the kernel buffers take
        # some megabytes of frames on their own
        assert closed or taken < 16 * 1024 * 1024, (kind, taken)
        still_serves(handle)


def test_empty_data_flood(serve):
    """CVE-2019-9518: DATA frames without a byte (or END_STREAM), each costing
    the server work and the peer nothing."""
    async def app(scope, receive, send):
        await apps.read_body(receive)
        await apps.send_text(send, b"ok")

    handle = serve(app)
    enc = hpack.Encoder()
    chunks = [frame(HEADERS, END_HEADERS, 1, enc.encode([(":method", "POST")] + REQUEST[1:]))]
    chunks += [frame(DATA, 0, 1, b"")] * 5000
    with raw_connection(handle) as sock:
        assert send_until_closed(sock, [b"".join(chunks[i:i + 500])
                                        for i in range(0, len(chunks), 500)])
    still_serves(handle)


def test_zero_window_slow_reader(serve):
    """A client that opens a window of 0 and never reads: the app's send()
    waits (at most the high-water mark is held for it), other connections
    are served, and the app hears of the client's departure."""
    sent = []
    outcome = []

    async def app(scope, receive, send):
        if scope["path"] != "/stream":
            return await apps.hello(scope, receive, send)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        try:
            for _ in range(640):  # 10 MiB
                await send({"type": "http.response.body", "body": b"s" * 16384,
                            "more_body": True})
                sent.append(16384)
            outcome.append("finished")
        except OSError:
            outcome.append("disconnected")

    handle = serve(app)
    c = H2Client.to(handle, settings={4: 0}, auto_window=False)
    c.request("GET", "/stream")
    time.sleep(0.5)
    assert sum(sent) <= 64 * 1024 + 16384
    still_serves(handle)
    c.close()
    wait_for(lambda: outcome == ["disconnected"])


def test_stream_id_exhaustion(serve):
    """The last stream id a client may use (2**31 - 1) is served, and the
    connection then ends with a GOAWAY naming it (nghttp2 says NO_ERROR: no
    stream can follow it); a lower id sent after it opens nothing.  The
    server goes on."""
    handle = serve(apps.hello)
    enc = hpack.Encoder()
    last = 2**31 - 1
    with raw_connection(handle) as sock:
        sock.sendall(frame(HEADERS, END_HEADERS | END_STREAM, last, enc.encode(REQUEST)))
        got = read_frames(sock, until=lambda f: f[0] == DATA and f[2] == last and f[1] & 1)
        assert any(f[0] == HEADERS and f[2] == last for f in got)
        sock.sendall(frame(HEADERS, END_HEADERS | END_STREAM, 1, enc.encode(REQUEST)))
        got = read_frames(sock, until=lambda f: f[0] == GOAWAY)
        last_id = int.from_bytes(got[-1][3][:4], "big") & 0x7FFFFFFF
        code = int.from_bytes(got[-1][3][4:8], "big")
        assert last_id == last
        assert code in (h2.errors.ErrorCodes.NO_ERROR, h2.errors.ErrorCodes.PROTOCOL_ERROR)
        assert not any(f[2] == 1 for f in got)
        assert send_until_closed(sock, [])
    still_serves(handle)


def read_frames(sock, until, timeout=10.0):
    """Raw frames (type, flags, stream id, payload) until one satisfies `until`."""
    buf = b""
    frames = []
    deadline = time.monotonic() + timeout
    sock.settimeout(0.5)
    while time.monotonic() < deadline:
        while len(buf) >= 9:
            length = int.from_bytes(buf[:3], "big")
            if len(buf) < 9 + length:
                break
            f = (buf[3], buf[4], int.from_bytes(buf[5:9], "big") & 0x7FFFFFFF, buf[9:9 + length])
            buf = buf[9 + length:]
            frames.append(f)
            if until(f):
                return frames
        try:
            data = sock.recv(65536)
        except TimeoutError:
            continue
        if not data:
            break
        buf += data
    raise AssertionError(f"frame not received; got {[(f[0], f[2]) for f in frames]}")
