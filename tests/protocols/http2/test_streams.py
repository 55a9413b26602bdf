"""HTTP/2 over real sockets: h2c with prior knowledge on cleartext, h2 by ALPN in
the TLS leg.  Streams are ASGI request cycles: scope, bodies both ways with flow
control as back-pressure, resets as http.disconnect, the response rules of
HTTP/1.1 (one implementation) and the ones HTTP/2 adds."""

from __future__ import annotations

import asyncio
import contextvars
import json
import logging
import threading

import h2.errors
import h2.events
import pytest

from tests.support import apps
from tests.support.h2_clients import H2Client, h2_http_client
from tests.support.h2_tools import curl_process
from tests.support.waiting import wait_for

pytestmark = pytest.mark.skipif(
    not __import__("carpinus._core", fromlist=["HAVE_HTTP2"]).HAVE_HTTP2,
    reason="this build has no libnghttp2 (make test installs libnghttp2-dev)")


def test_httpx_speaks_http2(serve):
    handle = serve(apps.hello)
    with h2_http_client(handle) as client:
        for _ in range(3):  # one connection, several streams
            r = client.get("/")
            assert r.http_version == "HTTP/2"
            assert r.status_code == 200
            assert r.text == "Hello, World!"
            assert r.headers["content-length"] == "13"
            assert r.headers["server"] == "carpinus"
            assert "date" in r.headers
    assert handle.state.stats()["h2_connections"] == 1


def test_http1_still_served_on_the_same_port(serve):
    handle = serve(apps.hello)
    r = handle.get("/")
    assert r.http_version == "HTTP/1.1" and r.text == "Hello, World!"


def test_scope(serve):
    handle = serve(apps.echo_scope, root_path="/mount")
    with H2Client.to(handle) as c:
        r = c.get("/caf%C3%A9/a%2Fb?x=1&y=%20", authority="example.com:8443", headers=[
            ("user-agent", "t"), ("cookie", "a=1"), ("x-dup", "1"), ("cookie", "b=2"),
            ("x-dup", "2")])
    assert r.status == 200
    scope = json.loads(r.body)
    assert scope["type"] == "http"
    assert scope["http_version"] == "2"
    assert scope["method"] == "GET"
    assert scope["scheme"] == handle.scheme
    assert scope["path"] == "/mount/café/a/b"
    assert scope["raw_path"] == "/mount/caf%C3%A9/a%2Fb"
    assert scope["query_string"] == "x=1&y=%20"
    assert scope["root_path"] == "/mount"
    # :authority is the host header; cookie crumbs are one field again
    assert scope["headers"] == [["host", "example.com:8443"], ["user-agent", "t"],
                                ["x-dup", "1"], ["x-dup", "2"], ["cookie", "a=1; b=2"]]
    assert scope["_header_types"] == ["bytes,bytes"]
    assert scope["server"] == ["127.0.0.1", handle.port]
    assert scope["state"] == {}
    # trailers (always offered on HTTP/2) and the tls extension on HTTPS (h2 by ALPN)
    tls = scope["extensions"].pop("tls", None)
    assert scope["extensions"] == {"http.response.trailers": {}, "http.response.pathsend": {},
                                   "http.response.early_hint": {}}
    assert (tls is not None) == (handle.tls is not None)
    if tls is not None:
        assert tls["tls_version"] in (0x0303, 0x0304)


def test_a_request_with_its_own_host_gets_no_second_one(serve):
    handle = serve(apps.echo_scope)
    with H2Client.to(handle) as c:
        r = c.get("/", authority="a.test", headers=[("host", "a.test")])
    assert json.loads(r.body)["headers"] == [["host", "a.test"]]


def test_request_body_streams_with_more_body(serve):
    messages = []

    async def app(scope, receive, send):
        body, msgs = await apps.read_body(receive)
        messages.extend(msgs)
        await apps.send_text(send, body)

    handle = serve(app)
    with H2Client.to(handle) as c:
        sid = c.request("POST", "/", end=False)
        for piece in (b"ab", b"cd", b"ef"):
            c.send_data(sid, piece)
            wait_for(lambda: len(messages) > 0 or True)
        c.send_data(sid, b"", end=True)
        r = c.response(sid)
    assert bytes(r.body) == b"abcdef"
    assert messages[-1]["more_body"] is False
    assert all(m["more_body"] for m in messages[:-1])


def test_upload_and_download_one_mebibyte(serve):
    handle = serve(apps.echo_body)
    payload = bytes(range(256)) * 4096
    with h2_http_client(handle) as client:
        r = client.post("/", content=payload)
    assert r.http_version == "HTTP/2"
    assert r.content == payload


def test_window_is_given_back_only_as_the_app_reads(serve):
    gate = threading.Event()

    async def app(scope, receive, send):
        await asyncio.to_thread(gate.wait, 10)
        body, _ = await apps.read_body(receive)
        await apps.send_text(send, str(len(body)).encode())

    window = 64 * 1024
    handle = serve(app, h2_initial_window_size=window, h2_connection_window_size=window)
    with H2Client.to(handle) as c:
        sid = c.request("POST", "/", end=False)
        c.wait(lambda: c.conn.local_flow_control_window(sid) == window)
        c.send_data(sid, b"x" * window)
        assert c.conn.local_flow_control_window(sid) == 0
        # the app has read nothing: no WINDOW_UPDATE comes
        with pytest.raises(AssertionError):
            c.wait(lambda: c.conn.local_flow_control_window(sid) > 0, timeout=0.5)
        gate.set()  # the app reads: the window comes back
        c.wait(lambda: c.conn.local_flow_control_window(sid) > 0)
        c.send_data(sid, b"y" * 1000, end=True)
        r = c.response(sid)
    assert bytes(r.body) == str(window + 1000).encode()


def test_send_waits_while_the_peer_window_is_exhausted(serve):
    sent = []
    chunk = 16 * 1024

    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for _ in range(64):  # 1 MiB
            await send({"type": "http.response.body", "body": b"z" * chunk, "more_body": True})
            sent.append(chunk)
        await send({"type": "http.response.body", "body": b""})

    handle = serve(app)
    # the client grants 16 KiB and gives nothing back until it chooses to
    with H2Client.to(handle, settings={4: chunk}, auto_window=False) as c:
        sid = c.request()
        c.wait(lambda: len(c.streams[sid].body) == chunk)
        with pytest.raises(AssertionError):
            c.wait(lambda: False, timeout=0.3)
        # 16 KiB went out; the server holds at most its high-water mark more
        assert sum(sent) <= 64 * 1024 + 2 * chunk
        c.auto_window = True
        c.conn.acknowledge_received_data(chunk, sid)
        c.conn.increment_flow_control_window(1 << 24)
        c.conn.increment_flow_control_window(1 << 24, sid)
        c.flush()
        r = c.response(sid)
    assert len(r.body) == 64 * chunk


def test_reset_is_disconnect_for_that_stream_only(serve):
    got = {}
    first_seen = set()

    async def app(scope, receive, send):
        first = await receive()
        first_seen.add(scope["path"])
        second = await receive()
        got[scope["path"]] = (first["type"], second["type"])
        if second["type"] == "http.request":
            await apps.send_text(send, b"fine")

    handle = serve(app)
    with H2Client.to(handle) as c:
        one = c.request("POST", "/one", end=False)
        two = c.request("POST", "/two", end=False)
        c.send_data(one, b"a")
        c.send_data(two, b"b")
        wait_for(lambda: first_seen == {"/one", "/two"})
        c.reset(one)
        wait_for(lambda: "/one" in got)
        c.send_data(two, b"c", end=True)
        r = c.response(two)
    assert got["/one"] == ("http.request", "http.disconnect")
    assert got["/two"] == ("http.request", "http.request")
    assert bytes(r.body) == b"fine"


def test_connection_specific_headers_are_dropped(serve):
    async def app(scope, receive, send):
        await apps.send_text(send, b"ok", headers=[
            (b"Connection", b"keep-alive"), (b"Keep-Alive", b"timeout=5"),
            (b"Transfer-Encoding", b"chunked"), (b"Upgrade", b"foo"), (b"X-Kept", b"1")])

    handle = serve(app)
    # h2 (the client library) refuses a response that carries any of them
    with H2Client.to(handle) as c:
        r = c.get("/")
    names = [n for n, _ in r.headers]
    assert b"x-kept" in names  # lowercased, as HTTP/2 requires
    for name in (b"connection", b"keep-alive", b"transfer-encoding", b"upgrade"):
        assert name not in names
    assert bytes(r.body) == b"ok"


@pytest.mark.parametrize("method,status", [("HEAD", 200), ("GET", 204), ("GET", 304)])
def test_no_body_for_head_204_304(serve, method, status):
    async def app(scope, receive, send):
        await apps.send_text(send, b"body!", status=status,
                             headers=[(b"content-length", b"5")] if status == 200 else [])

    handle = serve(app)
    with H2Client.to(handle) as c:
        r = c.response(c.request(method, "/"))
    assert r.status == status
    assert bytes(r.body) == b""
    assert r.ended


def test_default_headers(serve):
    handle = serve(apps.hello, headers=[("x-site", "one"), ("server", "edge")],
                   date_header=False)
    with H2Client.to(handle) as c:
        r = c.get("/")
    assert r.header(b"x-site") == b"one"
    assert r.header(b"server") == b"edge"
    assert r.header(b"date") is None


def test_app_exception_is_500_and_logged(serve, caplog):
    async def app(scope, receive, send):
        raise RuntimeError("boom")

    handle = serve(app)
    with caplog.at_level(logging.ERROR), H2Client.to(handle) as c:
        r = c.get("/")
        assert r.status == 500
        assert c.get("/").status == 500  # the connection goes on
    assert any("boom" in (rec.exc_text or "") or "boom" in rec.getMessage()
               for rec in caplog.records)


def test_app_without_response_is_500(serve):
    async def app(scope, receive, send):
        return None

    handle = serve(app)
    with H2Client.to(handle) as c:
        assert c.get("/").status == 500


def test_app_failing_mid_response_resets_the_stream(serve):
    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": []})
        if scope["path"] == "/ok":
            await send({"type": "http.response.body", "body": b"ok"})
            return
        await send({"type": "http.response.body", "body": b"part", "more_body": True})
        raise RuntimeError("mid-stream")

    handle = serve(app)
    with H2Client.to(handle) as c:
        r = c.get("/")
        # With eager tasks (3.12+) the app fails before the HEADERS frame left,
        # and nghttp2 drops frames queued for a stream it resets: the client
        # may see the reset alone.  Either way the stream ends in INTERNAL_ERROR.
        assert r.reset == h2.errors.ErrorCodes.INTERNAL_ERROR
        assert not r.ended
        ok = c.get("/ok")  # the connection goes on
        assert (ok.status, bytes(ok.body)) == (200, b"ok")


def test_state_and_context_are_per_stream(serve):
    var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")
    seen = []

    async def app(scope, receive, send):
        if scope["type"] == "lifespan":
            await receive()
            scope["state"]["base"] = 1
            await send({"type": "lifespan.startup.complete"})
            await receive()
            await send({"type": "lifespan.shutdown.complete"})
            return
        seen.append((var.get(), dict(scope["state"])))
        var.set(scope["path"])
        scope["state"]["mutated"] = scope["path"]
        await apps.send_text(send, b"ok")

    handle = serve(app, lifespan="on")
    with H2Client.to(handle) as c:
        sids = [c.request("GET", f"/{i}") for i in range(5)]
        for sid in sids:
            c.response(sid)
    assert seen == [("unset", {"base": 1})] * 5


def test_access_log_says_http2(serve, caplog):
    caplog.set_level(logging.INFO, logger="carpinus.access")
    handle = serve(apps.hello, access_log=True)
    with H2Client.to(handle) as c:
        c.get("/logged?q=1")
        wait_for(lambda: any("/logged" in rec.getMessage() for rec in caplog.records))
    line = next(rec.getMessage() for rec in caplog.records if "/logged" in rec.getMessage())
    assert '"GET /logged?q=1 HTTP/2" 200' in line


def test_many_concurrent_streams(serve):
    async def app(scope, receive, send):
        await asyncio.sleep(0.01)
        await apps.send_text(send, scope["path"].encode())

    handle = serve(app)
    with H2Client.to(handle) as c:
        sids = {c.request("GET", f"/{i}"): f"/{i}" for i in range(90)}
        for sid, path in sids.items():
            assert bytes(c.response(sid).body) == path.encode()


def test_concurrent_streams_over_the_limit_are_refused(serve):
    gate = threading.Event()

    async def app(scope, receive, send):
        await asyncio.to_thread(gate.wait, 10)
        await apps.send_text(send, b"ok")

    handle = serve(app, h2_max_concurrent_streams=2)
    with H2Client.to(handle) as c:
        # sent before the server's SETTINGS are read: a client that ignores them
        sids = [c.request("GET", f"/{i}") for i in range(3)]
        c.wait(lambda: c.streams[sids[2]].reset is not None)
        assert c.streams[sids[2]].reset == h2.errors.ErrorCodes.REFUSED_STREAM
        gate.set()
        assert c.response(sids[0]).status == 200 and c.response(sids[1]).status == 200


def test_header_list_over_the_limit_is_431(serve):
    handle = serve(apps.hello, h2_max_header_list_size=1024)
    with H2Client.to(handle) as c:
        r = c.get("/", headers=[("x-big", "v" * 2000)])
        assert r.status == 431
        assert c.get("/").status == 200  # the connection goes on


def test_body_over_the_limit_is_413(serve):
    handle = serve(apps.echo_body, limit_request_body=1000)
    with H2Client.to(handle) as c:
        declared = c.response(c.request("POST", "/", body=b"x" * 2000,
                                        headers=[("content-length", "2000")]))
        assert declared.status == 413
        sid = c.request("POST", "/", end=False)  # no Content-Length: counted as it comes
        c.send_data(sid, b"x" * 800)
        c.send_data(sid, b"x" * 800, end=True)
        assert c.response(sid).status == 413
        assert c.response(c.request("POST", "/", body=b"y" * 10)).status == 200


def test_limit_concurrency_counts_streams(serve):
    gate = threading.Event()

    async def app(scope, receive, send):
        await asyncio.to_thread(gate.wait, 10)
        await apps.send_text(send, b"ok")

    handle = serve(app, limit_concurrency=2)
    with H2Client.to(handle) as c:
        sids = [c.request("GET", f"/{i}") for i in range(3)]
        assert c.response(sids[2]).status == 503
        gate.set()
        assert [c.response(s).status for s in sids[:2]] == [200, 200]


def test_graceful_shutdown_sends_goaway_and_finishes_streams(serve, tmp_path):
    gate = threading.Event()

    async def app(scope, receive, send):
        await asyncio.to_thread(gate.wait, 10)
        await apps.send_text(send, b"finished")

    handle = serve(app)
    # curl (nghttp2's client) reads the in-flight stream to its end after the
    # GOAWAY; h2 (the Python library) stops at the GOAWAY, so it only checks it
    curl = curl_process(handle, tmp_path, "/in-flight")
    with H2Client.to(handle) as c:
        sid = c.request()
        wait_for(lambda: handle.state.stats()["requests_total"] == 2)
        handle.server.should_exit = True
        c.wait(lambda: c.goaway is not None)
        assert c.goaway.last_stream_id == sid
        assert c.goaway.error_code == h2.errors.ErrorCodes.NO_ERROR
    gate.set()
    out, err = curl.communicate(timeout=10)
    assert curl.returncode == 0, err
    assert out == b"finished"


def test_idle_connection_gets_goaway(serve):
    handle = serve(apps.hello, timeout_keep_alive=0.3)
    with H2Client.to(handle) as c:
        assert c.get("/").status == 200
        c.wait_closed(timeout=5)
        assert c.goaway is not None


@pytest.mark.tcp_only("the preface is cleartext HTTP/2; over TLS, ALPN decides")
def test_http_1_refuses_the_preface(serve):
    handle = serve(apps.hello, http="1")
    with handle.connect() as c:
        c.sock.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        r = c.read_response()
    assert r.status == 505


def test_http_2_refuses_http11(serve):
    handle = serve(apps.hello, http="2")
    with handle.connect() as c:
        c.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        try:
            r = c.read_response()
        except (OSError, EOFError):
            r = None
    # cleartext: 505; TLS: a client that did not offer h2 is not served
    assert r is None or r.status == 505
    with H2Client.to(handle) as h:
        assert h.get("/").status == 200


@pytest.mark.parametrize("body", [b"", b"payload"])
def test_trailers(serve, body):
    """gRPC's shape: data, then trailer fields that end the stream."""
    offered = []

    async def app(scope, receive, send):
        offered.append("http.response.trailers" in scope["extensions"])
        await send({"type": "http.response.start", "status": 200, "trailers": True,
                    "headers": [(b"content-type", b"application/grpc")]})
        await send({"type": "http.response.body", "body": body})
        await send({"type": "http.response.trailers", "more_trailers": True,
                    "headers": [(b"grpc-status", b"0")]})
        await send({"type": "http.response.trailers", "headers": [(b"Grpc-Message", b"ok")]})

    handle = serve(app)
    with H2Client.to(handle) as c:
        r = c.get("/")
        assert r.status == 200 and bytes(r.body) == body
        assert r.trailers == [(b"grpc-status", b"0"), (b"grpc-message", b"ok")]
        assert c.get("/").trailers  # the connection goes on
    assert offered == [True, True]


def test_pathsend_over_http2(serve, tmp_path):
    path = tmp_path / "f.bin"
    path.write_bytes(bytes(range(256)) * 5000)  # 1.2 MB: several windows' worth

    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.pathsend", "path": str(path)})

    handle = serve(app)
    with h2_http_client(handle) as client:
        r = client.get("/")
    assert r.http_version == "HTTP/2"
    assert r.content == path.read_bytes()
    assert r.headers["content-length"] == str(len(r.content))


def test_early_hint_over_http2(serve):
    async def app(scope, receive, send):
        await send({"type": "http.response.early_hint", "links": [b"</s.css>; rel=preload"]})
        await apps.send_text(send, b"final")

    handle = serve(app)
    with H2Client.to(handle) as c:
        sid = c.request()
        r = c.response(sid)
        informational = [e for e in c.events
                         if isinstance(e, h2.events.InformationalResponseReceived)]
    assert [dict(e.headers)[b":status"] for e in informational] == [b"103"]
    assert dict(informational[0].headers)[b"link"] == b"</s.css>; rel=preload"
    assert r.status == 200 and bytes(r.body) == b"final"
