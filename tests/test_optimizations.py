"""The six marshalling optimizations, cycle_reuse and task_names: each is
active when on, inactive when off, and invisible to the app either way (the
same scope, body and wire bytes; cycle_reuse: new receive/send whenever the
app kept the old; task_names: only the request task's name differs).

Activity is proven with the C core's counters (ServerState.stats()); the
whole behavioural suite additionally runs with every switch off
(CARPINUS_TEST_OPTIMIZATIONS=off, a `make test` leg).
"""

from __future__ import annotations

import asyncio
import json
import sys
import sysconfig
import time
from collections.abc import Callable
from typing import Any

import pytest

from carpinus import _core
from carpinus.config import Config, ConfigError
from carpinus.optimizations import DEFAULTS, OPTIMIZATIONS, parse_switch, resolve
from tests.support import apps
from tests.support.clients import build_request
from tests.support.waiting import wait_for

ALL_ON = dict.fromkeys(OPTIMIZATIONS, True)
ALL_OFF = dict.fromkeys(OPTIMIZATIONS, False)


# cycle_reuse reads reference counts, which a free-threaded build splits
# between threads: there the switch is accepted and does nothing (cycle.c).
reuses_cycles = pytest.mark.skipif(
    bool(sysconfig.get_config_var("Py_GIL_DISABLED")),
    reason="cycle_reuse does nothing on a free-threaded build (cycle.c, spare_reusable)",
)


def only(name: str, on: bool) -> dict[str, bool]:
    """Every switch at its default except `name`."""
    return {**DEFAULTS, name: on}


# -- configuration -----------------------------------------------------------


def test_names_and_defaults() -> None:
    assert set(OPTIMIZATIONS) == {"zero_copy_body", "direct_response", "scope_cache",
                                  "header_names", "lazy_headers", "status_cache",
                                  "cycle_reuse", "task_names"}
    assert resolve(None) == DEFAULTS
    assert resolve({"scope_cache": False})["scope_cache"] is False
    with pytest.raises(ValueError, match="unknown optimization"):
        resolve({"scope_cash": False})
    with pytest.raises(ConfigError):
        Config(optimizations={"nope": True}, configure_logging=False)


@pytest.mark.parametrize("text, expected", [
    ("scope_cache=off", ("scope_cache", False)),
    ("zero_copy_body=on", ("zero_copy_body", True)),
    ("status_cache = false", ("status_cache", False)),
    ("lazy_headers=1", ("lazy_headers", True)),
])
def test_parse_switch(text: str, expected: tuple[str, bool]) -> None:
    assert parse_switch(text) == expected


@pytest.mark.parametrize("text", ["scope_cache", "scope_cache=maybe", "bogus=on", "=on"])
def test_parse_switch_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_switch(text)


def test_threshold_options_validate() -> None:
    for bad in ({"zero_copy_threshold": 0}, {"lazy_headers_min": -1},
                {"scope_cache_size": 0}):
        with pytest.raises(ConfigError):
            Config(configure_logging=False, **bad)


# -- zero_copy_body ----------------------------------------------------------


def post_in_two_parts(handle, body: bytes, pause: float = 0.05):
    """Head plus the first bytes, then (after the server has read them) the rest:
    the rest is what the kernel can write straight into the body object."""
    with handle.connect() as c:
        head = build_request("POST", "/", [("Content-Length", str(len(body)))])
        c.send(head + body[:1000])
        time.sleep(pause)
        c.send(body[1000:])
        return c.read_response()


@pytest.mark.parametrize("on", [True, False])
def test_zero_copy_body(serve, on: bool) -> None:
    seen = []

    async def app(scope, receive, send):
        body, messages = await apps.read_body(receive)
        seen.append((type(body), len(messages)))
        await apps.send_text(send, body)

    handle = serve(app, optimizations=only("zero_copy_body", on), zero_copy_threshold=4096)
    body = bytes(range(256)) * 2000  # 512000 bytes, under ZERO_COPY_MAX
    r = post_in_two_parts(handle, body)
    assert r.body == body
    stats = handle.state.stats()
    if on:
        assert stats["body_bytes_zero_copy"] >= len(body) - 1000
        assert seen == [(bytes, 1)]  # one bytes object for the whole body
    else:
        assert stats["body_bytes_zero_copy"] == 0
        assert stats["body_bytes_copied"] == len(body)
    assert seen[0][0] is bytes


def test_zero_copy_thresholds(serve) -> None:
    """Below the threshold and above ZERO_COPY_MAX bodies are copied as usual."""
    handle = serve(apps.echo_body, optimizations=ALL_ON, zero_copy_threshold=100_000)
    small = b"s" * 50_000
    assert post_in_two_parts(handle, small).body == small
    assert handle.state.stats()["body_bytes_zero_copy"] == 0
    big = b"b" * (_core.ZERO_COPY_MAX + 1)
    assert post_in_two_parts(handle, big).body == big
    assert handle.state.stats()["body_bytes_zero_copy"] == 0


def test_zero_copy_client_vanishes_mid_body(serve) -> None:
    """A body half received into its object, then the client leaves: nothing leaks,
    the app hears disconnect, the server goes on."""
    got = []

    async def app(scope, receive, send):
        got.append(await receive())

    handle = serve(app, optimizations=ALL_ON, zero_copy_threshold=4096)
    c = handle.connect()
    c.send(build_request("POST", "/", [("Content-Length", "100000")]) + b"x" * 1000)
    time.sleep(0.05)
    c.send(b"y" * 20_000)
    time.sleep(0.05)
    c.close()
    deadline = time.monotonic() + 5
    while not got and time.monotonic() < deadline:
        time.sleep(0.01)
    assert got and got[0]["type"] == "http.disconnect"
    with handle.connect() as c2:
        assert c2.request("POST", "/", body=b"z" * 10).status == 500  # app sent nothing


def test_zero_copy_memory_is_bounded_per_server(serve) -> None:
    """Heads declaring big bodies, then silence: the objects reserved for them
    stay within ZERO_COPY_BUDGET (later ones stream), and are given back."""
    handle = serve(apps.echo_body, optimizations=ALL_ON)
    size = _core.ZERO_COPY_MAX
    fits = _core.ZERO_COPY_BUDGET // size
    conns = [handle.connect() for _ in range(fits + 4)]
    for c in conns:
        c.send(build_request("POST", "/", [("Content-Length", str(size))]))

    def stats_once(check: Callable[[dict[str, Any]], bool], what: str) -> dict[str, Any]:
        """The server's counters, once `check` holds for them."""
        return wait_for(lambda: check(stats := handle.state.stats()) and stats, interval=0.02,
                        what=what, detail=handle.state.stats)

    stats = stats_once(lambda s: s["requests_total"] == len(conns), "every head read")
    assert stats["zero_copy_pending"] == fits * size
    for c in conns:
        c.close()
    stats_once(lambda s: s["zero_copy_pending"] == 0 and s["connections"] == 0,
               "the reservations given back")
    body = b"q" * 100_000
    assert post_in_two_parts(handle, body).body == body


# -- direct_response ---------------------------------------------------------


@pytest.mark.parametrize("on", [True, False])
def test_direct_response_same_bytes_fewer_writes(serve, on: bool) -> None:
    handle = serve(apps.hello, optimizations=only("direct_response", on), date_header=False)
    with handle.connect() as c:
        r = c.request()
    assert r.raw_head == (b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n"
                          b"server: carpinus\r\ncontent-length: 13")
    assert r.body == b"Hello, World!"
    stats = handle.state.stats()
    assert (stats["responses_coalesced"], stats["responses_split"]) == ((1, 0) if on else (0, 1))


def test_direct_response_reads_non_dict_mappings(serve) -> None:
    """The fast path reads exact dicts; any other mapping still works."""
    from collections import UserDict

    async def app(scope, receive, send):
        await send(UserDict({"type": "http.response.start", "status": 201, "headers": []}))
        await send(UserDict({"type": "http.response.body", "body": b"m"}))

    for switches in (ALL_ON, ALL_OFF):
        handle = serve(app, optimizations=switches)
        with handle.connect() as c:
            r = c.request()
        assert (r.status, r.body) == (201, b"m")


# -- scope_cache -------------------------------------------------------------


def test_scope_cache_reuses_only_path_values(serve) -> None:
    """Same path, different method/query/headers/client: each scope is right
    (the reference shipped a bug where the method came from the template)."""
    scopes = []

    async def app(scope, receive, send):
        scopes.append({k: v for k, v in scope.items() if k != "state"})
        scope["path"] = "/mutated"  # apps may mutate their scope
        scope["added"] = True
        await apps.send_text(send, b"ok")

    handle = serve(app, optimizations=ALL_ON, root_path="/root")
    with handle.connect() as c1, handle.connect() as c2:
        c1.request("GET", "/caf%C3%A9?a=1", headers=[("X-One", "1")])
        c2.request("POST", "/caf%C3%A9?b=2", headers=[("X-Two", "2")], body=b"x")
        c1.request("DELETE", "/caf%C3%A9")
    stats = handle.state.stats()
    # admission: the first request misses, the second misses and installs
    # the template, the third is served from it
    assert stats["scope_cache_hits"] == 1 and stats["scope_cache_misses"] == 2
    assert [s["method"] for s in scopes] == ["GET", "POST", "DELETE"]
    assert [s["query_string"] for s in scopes] == [b"a=1", b"b=2", b""]
    assert [s["path"] for s in scopes] == ["/root/café"] * 3  # root_path included
    assert [s["raw_path"] for s in scopes] == [b"/root/caf%C3%A9"] * 3
    assert all(s["root_path"] == "/root" and "added" not in s for s in scopes)
    assert scopes[0]["headers"][1] == (b"x-one", b"1")
    assert scopes[1]["headers"][1] == (b"x-two", b"2")
    assert scopes[0]["client"] != scopes[1]["client"]
    assert scopes[0]["client"] == scopes[2]["client"]


def test_scope_cache_full_and_colliding(serve) -> None:
    """With one slot, alternating paths evict each other and stay correct."""
    paths = []

    async def app(scope, receive, send):
        paths.append((scope["path"], scope["raw_path"], scope["method"]))
        await apps.send_text(send, b"ok")

    handle = serve(app, optimizations=ALL_ON, scope_cache_size=1)
    with handle.connect() as c:
        for i in range(6):
            c.request("GET" if i % 2 else "PUT", f"/p{i % 3}")
    assert paths == [(f"/p{i % 3}", f"/p{i % 3}".encode(), "GET" if i % 2 else "PUT")
                     for i in range(6)]
    stats = handle.state.stats()
    assert stats["scope_cache_hits"] + stats["scope_cache_misses"] == 6


def test_scope_cache_admits_a_path_on_its_second_miss(serve) -> None:
    """Paths seen once (ids in the path) never get a template; a path that
    comes back does, and is served from it from its third request on."""
    handle = serve(apps.echo_scope, optimizations=ALL_ON, scope_cache_size=64)
    with handle.connect() as c:
        for i in range(20):
            assert json.loads(c.request("GET", f"/users/{i}").body)["path"] == f"/users/{i}"
        stats = handle.state.stats()
        assert (stats["scope_cache_hits"], stats["scope_cache_misses"]) == (0, 20)
        for _ in range(4):
            assert json.loads(c.request("GET", "/users/7").body)["path"] == "/users/7"
    stats = handle.state.stats()
    # the 21st request misses and installs /users/7 when it was the last
    # miss in its slot (3 hits), else the 22nd does (2 hits)
    assert stats["scope_cache_hits"] in (2, 3)
    assert stats["scope_cache_hits"] + stats["scope_cache_misses"] == 24


def test_scope_cache_off(serve) -> None:
    handle = serve(apps.echo_scope, optimizations=only("scope_cache", False))
    with handle.connect() as c:
        a = json.loads(c.request("GET", "/same").body)
        b = json.loads(c.request("GET", "/same").body)
    assert a["path"] == b["path"] == "/same"
    stats = handle.state.stats()
    assert stats["scope_cache_hits"] == stats["scope_cache_misses"] == 0


# -- header_names ------------------------------------------------------------


@pytest.mark.parametrize("on", [True, False])
def test_header_names_shared(serve, on: bool) -> None:
    names = []

    async def app(scope, receive, send):
        names.append(list(scope["headers"]))
        await apps.send_text(send, b"ok")

    switches = {**only("header_names", on), "lazy_headers": False}
    handle = serve(app, optimizations=switches)
    before = handle.state.stats()
    with handle.connect() as c:
        for _ in range(2):
            c.request(headers=[("User-Agent", "x"), ("X-Custom-Thing", "y")])
    first, second = names
    assert [n for n, _ in first] == [b"host", b"user-agent", b"x-custom-thing"]
    assert first == second
    assert (first[1][0] is second[1][0]) is on  # the shared object for a common name
    assert first[2][0] is not second[2][0]       # uncommon names are never shared
    after = handle.state.stats()
    hits = after["header_name_hits"] - before["header_name_hits"]
    assert (hits >= 4) if on else (hits == 0)


# -- lazy_headers ------------------------------------------------------------


@pytest.mark.parametrize("on", [True, False])
def test_lazy_headers(serve, on: bool) -> None:
    seen = []

    async def app(scope, receive, send):
        headers = scope["headers"]
        seen.append((type(headers).__name__, len(headers), list(headers)))
        await apps.send_text(send, b"ok")

    handle = serve(app, optimizations=only("lazy_headers", on), lazy_headers_min=3)
    with handle.connect() as c:
        c.request(headers=[("A", "1")])  # 2 headers with Host: under the minimum
        c.request(headers=[("A", "1"), ("B", "2"), ("C", "")])
    small, large = seen
    assert small[0] == "list"
    assert large[0] == ("LazyHeaders" if on else "list")
    assert large[1:] == (4, [(b"host", b"test"), (b"a", b"1"), (b"b", b"2"), (b"c", b"")])
    assert handle.state.stats()["lazy_headers_created"] == (1 if on else 0)


# -- status_cache ------------------------------------------------------------


@pytest.mark.parametrize("on", [True, False])
def test_status_cache(serve, on: bool) -> None:
    async def app(scope, receive, send):
        await apps.send_text(send, b"", status=int(scope["path"][1:]))

    handle = serve(app, optimizations=only("status_cache", on))
    with handle.connect() as c:
        for code, reason in ((200, "OK"), (404, "Not Found"), (418, "I'm a Teapot"),
                             (599, "")):
            r = c.request("GET", f"/{code}")
            assert (r.status, r.reason) == (code, reason)
            assert r.header("date") is not None
    stats = handle.state.stats()
    cached, formatted = stats["status_lines_cached"], stats["status_lines_formatted"]
    assert (cached, formatted) == ((4, 0) if on else (0, 4))


# -- cycle_reuse -------------------------------------------------------------


@reuses_cycles
def test_cycle_reuse_serves_each_request_from_a_clean_cycle(serve) -> None:
    """Requests on one keep-alive connection reuse the cycle when the app
    let go of receive and send; what one request left behind (an unread
    body, a HEAD, a chunked response, an early answer) never reaches the
    next, and each gets its own body and response."""
    seen: list[tuple[str, bytes, list[str]]] = []

    async def app(scope, receive, send):
        path = scope["path"]
        if path == "/unread":  # answers without reading its body
            await apps.send_text(send, b"early")
            return
        body, messages = await apps.read_body(receive)
        seen.append((path, body, [m["type"] for m in messages]))
        if path == "/stream":  # chunked: no Content-Length
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"s1", "more_body": True})
            await send({"type": "http.response.body", "body": b"s2"})
            return
        await apps.send_text(send, b"got " + body, status=201 if path == "/created" else 200)

    handle = serve(app, optimizations=ALL_ON)
    with handle.connect() as c:
        assert c.request("POST", "/unread", body=b"x" * 1000).body == b"early"
        r = c.request("POST", "/a", body=b"first")
        assert (r.status, r.body) == (200, b"got first")
        assert c.request("HEAD", "/head").body == b""
        r = c.request("GET", "/stream")
        assert (r.status, r.header("transfer-encoding"), r.body) == (200, "chunked", b"s1s2")
        r = c.request("POST", "/created", body=b"second")
        assert (r.status, r.body) == (201, b"got second")
        r = c.request("GET", "/b")
        assert (r.status, r.body) == (200, b"got ")
    assert seen == [("/a", b"first", ["http.request"]), ("/head", b"", ["http.request"]),
                    ("/stream", b"", ["http.request"]),
                    ("/created", b"second", ["http.request"]), ("/b", b"", ["http.request"])]
    # the first request's cycle can be reused by the second at the earliest;
    # each later one may find the previous task not yet let go of it
    assert 1 <= handle.state.stats()["cycles_reused"] <= 5


def test_cycle_reuse_never_hands_out_callables_the_app_kept(serve) -> None:
    """An app that keeps send or receive (or a weak reference to one) gets new
    ones on the next request; one that let go may get the same objects."""
    import weakref

    kept: list[Any] = []
    ids: list[tuple[int, int]] = []

    async def app(scope, receive, send):
        ids.append((id(receive), id(send)))
        if scope["path"] == "/keep":
            kept.append(send)
        elif scope["path"] == "/weak":
            kept.append(weakref.ref(receive))
        await apps.send_text(send, b"ok")

    handle = serve(app, optimizations=ALL_ON)
    with handle.connect() as c:
        for path in ("/keep", "/next", "/weak", "/next2"):
            assert c.request("GET", path).body == b"ok"
            wait_for(lambda: handle.state.stats()["active_requests"] == 0)
    # /next could not reuse /keep's cycle: its send is still held
    assert ids[0][1] == id(kept[0]) != ids[1][1]
    # /next2 could not reuse /weak's: its receive was watched, so it was let
    # go of (a reused one would still be alive, held for the next request)
    assert kept[1]() is None


def test_cycle_reuse_off(serve) -> None:
    handle = serve(apps.hello, optimizations=only("cycle_reuse", False))
    with handle.connect() as c:
        for _ in range(5):
            assert c.request("GET", "/").status == 200
    assert handle.state.stats()["cycles_reused"] == 0


@reuses_cycles
def test_cycle_reuse_counts_on_a_keep_alive_connection(serve) -> None:
    handle = serve(apps.hello, optimizations=ALL_ON)
    with handle.connect() as c:
        for _ in range(20):
            assert c.request("GET", "/").status == 200
            wait_for(lambda: handle.state.stats()["active_requests"] == 0)
    # every request after the first, once the previous task has ended
    assert handle.state.stats()["cycles_reused"] == 19


# -- task_names --------------------------------------------------------------


def task_names_served(serve, on: bool, n: int = 3) -> list[str]:
    """The names of the tasks `n` requests ran in, one connection."""
    async def app(scope, receive, send):
        await apps.send_text(send, asyncio.current_task().get_name().encode())

    handle = serve(app, optimizations=only("task_names", on))
    with handle.connect() as c:
        return [c.request("GET", "/").body.decode() for _ in range(n)]


@pytest.mark.parametrize("on", [True, False])
def test_task_names(serve, on: bool) -> None:
    """On 3.11 the core names a request's task carpinus-request-N (N counted
    over the process); off, and on 3.12+ either way, the Task's own Task-N.
    Every name is unique either way."""
    names = task_names_served(serve, on)
    ours = on and sys.version_info < (3, 12)
    prefix = "carpinus-request-" if ours else "Task-"
    assert all(name.startswith(prefix) for name in names), names
    numbers = [int(name.removeprefix(prefix)) for name in names]
    assert numbers == sorted(set(numbers)), names
    if ours:
        assert numbers == list(range(numbers[0], numbers[0] + len(numbers)))


# -- all together ------------------------------------------------------------


@pytest.mark.parametrize("switches", [ALL_ON, ALL_OFF], ids=["all-on", "all-off"])
def test_scope_is_identical_either_way(serve, switches) -> None:
    handle = serve(apps.echo_scope, optimizations=switches, lazy_headers_min=1)
    with handle.connect() as c:
        scope = json.loads(c.request("GET", "/a%20b?q=1", headers=[
            ("Accept", "*/*"), ("X-A", "1"), ("x-a", "2"), ("Cookie", "")]).body)
    assert scope["path"] == "/a b" and scope["raw_path"] == "/a%20b"
    assert scope["headers"] == [["host", "test"], ["accept", "*/*"], ["x-a", "1"],
                                ["x-a", "2"], ["cookie", ""]]
    assert scope["method"] == "GET" and scope["query_string"] == "q=1"
    assert handle.state.stats()["optimizations"] == sum(
        getattr(_core, "OPT_" + name.upper()) for name, on in switches.items() if on)


def test_lazy_headers_counted_when_materialized(serve) -> None:
    """Reading two headers builds two items; appending materializes the list."""
    built = []

    async def app(scope, receive, send):
        headers = scope["headers"]
        headers[1], headers[-1]
        built.append(headers._built)
        if scope["path"] == "/mutate":
            headers.append((b"x-added", b"1"))
            built.append(headers._materialized)
        await apps.send_text(send, b"ok")

    handle = serve(app, optimizations={**ALL_ON}, lazy_headers_min=4)
    before = handle.state.stats()["lazy_headers_materialized"]
    with handle.connect() as c:
        many = [("A", "1"), ("B", "2"), ("C", "3"), ("D", "4"), ("E", "5")]
        c.request("GET", "/read", headers=many)
        c.request("GET", "/mutate", headers=many)
    assert built == [2, 2, True]
    assert handle.state.stats()["lazy_headers_materialized"] - before == 1


def test_core_defaults_are_the_documented_ones() -> None:
    """The C core has no defaults of its own: a ServerState made directly (tests,
    embedders) takes the option table's, which have the optimizations Config has by
    default: one source of truth, lazy_headers off."""
    import asyncio

    from carpinus.optimizations import bits
    from carpinus.options import core_defaults

    loop = asyncio.new_event_loop()
    try:
        with pytest.raises(TypeError, match="missing required keyword argument"):
            _core.ServerState(apps.hello, loop, print, loop.create_task, None, print)
        state = _core.ServerState(apps.hello, loop, print, loop.create_task, None, print,
                                  **core_defaults())
        assert state.stats()["optimizations"] == bits(DEFAULTS)
        assert not DEFAULTS["lazy_headers"]
    finally:
        loop.close()
