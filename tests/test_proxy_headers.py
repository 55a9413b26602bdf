"""Proxy headers: X-Forwarded-For / X-Forwarded-Proto / Forwarded set the scope's
client and scheme only when the peer is trusted (--forwarded-allow-ips); with
--forwarded-host, X-Forwarded-Host / Forwarded host= set the Host header too.

First the parsing and trust rules on their own, then the real server: trusted
and untrusted peers, hops, `*`, Unix sockets, bad values, keep-alive
connections where only some requests carry the headers (with the
optimizations on and off), and the cost model (one trust check per
connection, a fix-up call only for requests that carry a proxy header).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from carpinus.config import Config, ConfigError
from carpinus.optimizations import OPTIMIZATIONS
from carpinus.proxy_headers import ProxyHeaders, TrustedHosts, parse_forwarded, split_node
from tests.support import apps
from tests.support.processes import Spawner, run_cli
from tests.support.servers import ServerHandle

ALL_ON = dict.fromkeys(OPTIMIZATIONS, True)
ALL_OFF = dict.fromkeys(OPTIMIZATIONS, False)

# -- trust list ----------------------------------------------------------------


def test_trusted_hosts_addresses_networks_literals() -> None:
    trusted = TrustedHosts("127.0.0.1, 10.0.0.0/8 ,2001:db8::/32, unix:, _edge")
    assert "127.0.0.1" in trusted
    assert "10.200.3.4" in trusted and "11.0.0.1" not in trusted
    assert "2001:db8::17" in trusted and "2001:db9::1" not in trusted
    assert "::ffff:127.0.0.1" in trusted  # an IPv4 peer on a dual-stack socket
    assert "unix:" in trusted and "_edge" in trusted and "_other" not in trusted
    assert "" not in trusted and None not in trusted
    assert trusted.trust_unix and not trusted.trust_all


def test_trusted_hosts_star_and_list_form() -> None:
    assert "198.51.100.1" in TrustedHosts("*")
    everything = TrustedHosts(["127.0.0.1", "*"])
    assert everything.trust_all and everything.trust_unix
    assert not TrustedHosts("127.0.0.1").trust_unix


def test_trusted_hosts_rejects_a_bad_network() -> None:
    with pytest.raises(ValueError, match="not an IP network"):
        TrustedHosts("10.0.0.0/33")
    with pytest.raises(ConfigError, match="not an IP network"):
        Config(apps.hello, forwarded_allow_ips="10.0.0/8/1", configure_logging=False)


def test_forwarded_allow_ips_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FORWARDED_ALLOW_IPS", "10.1.1.1")
    config = Config(apps.hello, configure_logging=False)
    assert config.forwarded_allow_ips == "10.1.1.1"
    assert "10.1.1.1" in config.trusted_hosts and "127.0.0.1" not in config.trusted_hosts
    explicit = Config(apps.hello, forwarded_allow_ips="*", configure_logging=False)
    assert explicit.trusted_hosts.trust_all


@pytest.mark.parametrize("node, expected", [
    ("203.0.113.7", ("203.0.113.7", None)),
    (" 203.0.113.7:4711 ", ("203.0.113.7", 4711)),
    ("2001:db8::1", ("2001:db8::1", None)),
    ("[2001:db8::1]", ("2001:db8::1", None)),
    ("[2001:DB8::1]:80", ("2001:db8::1", 80)),
    ("::ffff:192.0.2.1", ("192.0.2.1", None)),
    ("192.0.2.1:_obf", ("192.0.2.1", None)),
    ("unknown", None), ("_hidden", None), ("unix:", None), ("", None),
    ("[192.0.2.1]", None), ("300.1.1.1", None), ("[2001:db8::1", None), ("a.b.c.d", None),
])
def test_split_node(node: str, expected: tuple[str, int | None] | None) -> None:
    assert split_node(node) == expected


def test_pick_rightmost_untrusted_hop() -> None:
    trusted = TrustedHosts("127.0.0.1, 10.0.0.0/8")
    assert trusted.pick(["198.51.100.1", "203.0.113.9", "10.1.2.3"]) == 1
    assert trusted.pick(["10.0.0.1", "10.0.0.2"]) == 0  # all trusted: the leftmost
    assert trusted.pick(["203.0.113.9"]) == 0
    assert TrustedHosts("*").pick(["198.51.100.1", "203.0.113.9"]) == 0


# -- Forwarded (RFC 7239) syntax ---------------------------------------------


@pytest.mark.parametrize("values, expected", [
    (["for=192.0.2.60;proto=http;by=203.0.113.43"],
     [{"for": "192.0.2.60", "proto": "http", "by": "203.0.113.43"}]),
    (['for="[2001:db8:cafe::17]:4711"'], [{"for": "[2001:db8:cafe::17]:4711"}]),
    (["for=192.0.2.43, for=198.51.100.17"], [{"for": "192.0.2.43"}, {"for": "198.51.100.17"}]),
    (['For="_gazonk"', "for=192.0.2.43 ,for=198.51.100.17"],
     [{"for": "_gazonk"}, {"for": "192.0.2.43"}, {"for": "198.51.100.17"}]),
    (['for="a\\"b";PROTO=https'], [{"for": 'a"b', "proto": "https"}]),
    (["for=192.0.2.1:8080"], [{"for": "192.0.2.1:8080"}]),  # unquoted port, tolerated
    (["for=1.2.3.4, , for=5.6.7.8,"], [{"for": "1.2.3.4"}, {"for": "5.6.7.8"}]),
    ([";;"], []),
    ([""], []),
    # malformed elements stay in the list as hops about which nothing is known
    (["for=1.2.3.4;for=5.6.7.8, proto=https"], [{}, {"proto": "https"}]),
    (["garbage, for=1.2.3.4"], [{}, {"for": "1.2.3.4"}]),
    (["for=1.2.3.4 junk"], [{}]),
    (['for="unterminated'], [{}]),
    (["=x"], [{}]),
    (["for="], [{}]),
])
def test_parse_forwarded(values: list[str], expected: list[dict[str, str]]) -> None:
    assert parse_forwarded(values) == expected


# -- the fix-up on a scope dict --------------------------------------------------


def fixed(headers: list[tuple[bytes, bytes]], allow: str = "127.0.0.1",
          scope_type: str = "http") -> dict[str, Any]:
    scope: dict[str, Any] = {"type": scope_type, "scheme": "http", "headers": headers,
                             "client": ("127.0.0.1", 5000)}
    ProxyHeaders(TrustedHosts(allow)).fixup(scope)
    return scope


@pytest.mark.parametrize("headers, client, scheme", [
    ([(b"x-forwarded-for", b"203.0.113.7")], ("203.0.113.7", 0), "http"),
    ([(b"x-forwarded-proto", b"https")], ("127.0.0.1", 5000), "https"),
    ([(b"x-forwarded-proto", b" HTTPS ")], ("127.0.0.1", 5000), "https"),
    ([(b"x-forwarded-proto", b"wss")], ("127.0.0.1", 5000), "https"),  # http scope
    ([(b"x-forwarded-proto", b"javascript")], ("127.0.0.1", 5000), "http"),
    ([(b"x-forwarded-for", b"")], ("127.0.0.1", 5000), "http"),
    ([(b"x-forwarded-for", b"not-an-address")], ("127.0.0.1", 5000), "http"),
    ([(b"x-forwarded-for", b"[2001:db8::5]:443")], ("2001:db8::5", 443), "http"),
    # several field lines form one list, in order (RFC 9110 5.3)
    ([(b"x-forwarded-for", b"198.51.100.1"), (b"x-forwarded-for", b"203.0.113.9")],
     ("203.0.113.9", 0), "http"),
    # X-Forwarded-Proto entries line up with the chosen X-Forwarded-For hop
    ([(b"x-forwarded-for", b"198.51.100.1, 127.0.0.1"),
      (b"x-forwarded-proto", b"https, http")], ("198.51.100.1", 0), "https"),
    # ...or else the last one (written by our own peer) counts
    ([(b"x-forwarded-for", b"198.51.100.1"), (b"x-forwarded-proto", b"http, https")],
     ("198.51.100.1", 0), "https"),
    ([(b"forwarded", b'for="[2001:db8:cafe::17]:4711";proto=https')],
     ("2001:db8:cafe::17", 4711), "https"),
    ([(b"forwarded", b"for=unknown;proto=https")], ("127.0.0.1", 5000), "https"),
    ([(b"forwarded", b"for=_hidden")], ("127.0.0.1", 5000), "http"),
    ([(b"forwarded", b"nonsense")], ("127.0.0.1", 5000), "http"),
    # X-Forwarded-* present: Forwarded (perhaps made up by the client) is not read
    ([(b"forwarded", b"for=6.6.6.6;proto=https"), (b"x-forwarded-for", b"203.0.113.7")],
     ("203.0.113.7", 0), "http"),
])
def test_fixup(headers: list[tuple[bytes, bytes]], client: tuple[str, int],
               scheme: str) -> None:
    scope = fixed(headers)
    assert (scope["client"], scope["scheme"]) == (client, scheme)


def test_fixup_websocket_schemes() -> None:
    assert fixed([(b"x-forwarded-proto", b"https")], scope_type="websocket")["scheme"] == "wss"
    assert fixed([(b"x-forwarded-proto", b"ws")], scope_type="websocket")["scheme"] == "ws"


def test_fixup_walks_hops_from_the_right() -> None:
    """A client cannot push a made-up address past its own: the proxy appends it."""
    spoofed = [(b"x-forwarded-for", b"1.1.1.1, 203.0.113.9, 10.0.0.2")]
    assert fixed(spoofed, "127.0.0.1, 10.0.0.0/8")["client"] == ("203.0.113.9", 0)
    assert fixed(spoofed, "*")["client"] == ("1.1.1.1", 0)  # "*": the leftmost, as uvicorn
    forwarded = [(b"forwarded", b"for=1.1.1.1, for=203.0.113.9;proto=https, for=10.0.0.2")]
    scope = fixed(forwarded, "127.0.0.1, 10.0.0.0/8")
    assert (scope["client"], scope["scheme"]) == (("203.0.113.9", 0), "https")
    # a malformed hop is untrusted: the walk stops there and nothing is believed
    bad_hop = [(b"forwarded", b"for=1.1.1.1, garbage, for=10.0.0.2")]
    assert fixed(bad_hop, "127.0.0.1, 10.0.0.0/8")["client"] == ("127.0.0.1", 5000)
    # literals: nginx listening on a Unix socket writes "unix:" as the client
    unix_hop = [(b"x-forwarded-for", b"203.0.113.9, unix:")]
    assert fixed(unix_hop, "127.0.0.1, unix:")["client"] == ("203.0.113.9", 0)
    assert fixed(unix_hop, "127.0.0.1")["client"] == ("127.0.0.1", 5000)


def host_of(headers: list[tuple[bytes, bytes]], allow: str = "127.0.0.1",
            forwarded_host: bool = True) -> bytes | None:
    """The `host` header after the fix-up of a request whose own Host is `backend`."""
    scope: dict[str, Any] = {"type": "http", "scheme": "http", "client": ("127.0.0.1", 5000),
                             "headers": [(b"host", b"backend"), *headers]}
    ProxyHeaders(TrustedHosts(allow), host=forwarded_host).fixup(scope)
    hosts = [value for name, value in scope["headers"] if name == b"host"]
    assert len(hosts) == 1, hosts
    return hosts[0]


@pytest.mark.parametrize("headers, host", [
    ([(b"x-forwarded-host", b"example.com")], b"example.com"),
    ([(b"x-forwarded-host", b" example.com:8443 ")], b"example.com:8443"),
    ([(b"x-forwarded-host", b"[2001:db8::1]:443")], b"[2001:db8::1]:443"),
    ([(b"x-forwarded-host", b"203.0.113.7")], b"203.0.113.7"),
    # X-Forwarded-Host entries line up with the chosen X-Forwarded-For hop...
    ([(b"x-forwarded-for", b"198.51.100.1, 127.0.0.1"),
      (b"x-forwarded-host", b"public.example, internal.example")], b"public.example"),
    # ...or else the last one (written by our own peer) counts
    ([(b"x-forwarded-for", b"198.51.100.1"),
      (b"x-forwarded-host", b"made-up.example, public.example")], b"public.example"),
    ([(b"x-forwarded-host", b"a.example"), (b"x-forwarded-host", b"b.example")], b"b.example"),
    # Forwarded: host= of the element whose for= is the client
    ([(b"forwarded", b'for=192.0.2.60;host=example.com;proto=https')], b"example.com"),
    ([(b"forwarded", b'for=198.51.100.1;host="a.example:8080", for=127.0.0.1;host=b.example')],
     b"a.example:8080"),
    # X-Forwarded-* present: Forwarded (perhaps made up by the client) is not read
    ([(b"forwarded", b"host=evil.example"), (b"x-forwarded-host", b"example.com")],
     b"example.com"),
    ([(b"forwarded", b"host=evil.example"), (b"x-forwarded-for", b"203.0.113.7")], b"backend"),
    # not a host: ignored, never guessed at
    ([(b"x-forwarded-host", b"")], b"backend"),
    ([(b"x-forwarded-host", b"evil host")], b"backend"),
    ([(b"x-forwarded-host", b"example.com/path")], b"backend"),
    ([(b"x-forwarded-host", b"example.com:99999999")], b"backend"),
    ([(b"x-forwarded-host", b"user@example.com")], b"backend"),
    ([(b"forwarded", b"host=")], b"backend"),
])
def test_fixup_forwarded_host(headers: list[tuple[bytes, bytes]], host: bytes) -> None:
    assert host_of(headers) == host


def test_forwarded_host_is_opt_in() -> None:
    """Off (the default), X-Forwarded-Host changes nothing, not even which header
    family is read: a Forwarded header still gives the client."""
    assert host_of([(b"x-forwarded-host", b"example.com")], forwarded_host=False) == b"backend"
    scope: dict[str, Any] = {"type": "http", "scheme": "http", "client": ("127.0.0.1", 5000),
                             "headers": [(b"host", b"backend"),
                                         (b"x-forwarded-host", b"example.com"),
                                         (b"forwarded", b"for=192.0.2.60;host=other.example")]}
    ProxyHeaders(TrustedHosts("127.0.0.1")).fixup(scope)
    assert scope["client"] == ("192.0.2.60", 0)
    assert (b"host", b"backend") in scope["headers"]


def test_forwarded_host_adds_a_missing_host() -> None:
    """An HTTP/1.0 request may have no Host: the forwarded one is added."""
    scope: dict[str, Any] = {"type": "http", "scheme": "http", "client": ("127.0.0.1", 5000),
                             "headers": [(b"x-forwarded-host", b"example.com")]}
    ProxyHeaders(TrustedHosts("127.0.0.1"), host=True).fixup(scope)
    assert scope["headers"] == [(b"x-forwarded-host", b"example.com"), (b"host", b"example.com")]


def test_forwarded_host_needs_proxy_headers() -> None:
    with pytest.raises(ConfigError, match="forwarded_host reads a proxy header"):
        Config(apps.hello, forwarded_host=True, proxy_headers=False, configure_logging=False)


def test_trust_by_peername() -> None:
    proxy = ProxyHeaders(TrustedHosts("127.0.0.1, ::1"))
    assert proxy.trust(("127.0.0.1", 5000))
    assert proxy.trust(("::1", 5000, 0, 0))
    assert not proxy.trust(("10.0.0.1", 5000))
    assert not proxy.trust("")  # a Unix socket peer, "unix:" not listed
    assert not proxy.trust(None)
    assert ProxyHeaders(TrustedHosts("unix:")).trust("")
    assert ProxyHeaders(TrustedHosts("*")).trust_callable is None  # no call per connection


# -- the real server ---------------------------------------------------------------


def get_scope(handle: ServerHandle, headers: list[tuple[str, str]]) -> dict[str, Any]:
    with handle.connect() as c:
        r = c.request("GET", "/", headers=headers)
        assert r.status == 200
        scope: dict[str, Any] = json.loads(r.body)
        scope["_local"] = list(c.sock.getsockname())
        return scope


PROXIED = [("X-Forwarded-For", "203.0.113.7"), ("X-Forwarded-Proto", "https")]


def test_trusted_peer_sets_client_and_scheme(serve: Callable[..., ServerHandle]) -> None:
    """127.0.0.1 is trusted by default: the proxy's word is taken."""
    handle = serve(apps.echo_scope)
    scope = get_scope(handle, PROXIED)
    assert scope["client"] == ["203.0.113.7", 0]
    assert scope["scheme"] == "https"
    assert scope["_types"]["client"] == "tuple"
    # the headers themselves still reach the app
    assert ["x-forwarded-for", "203.0.113.7"] in scope["headers"]


def test_untrusted_peer_is_ignored(serve: Callable[..., ServerHandle]) -> None:
    handle = serve(apps.echo_scope, forwarded_allow_ips="10.0.0.1")
    scope = get_scope(handle, PROXIED)
    assert scope["client"] == scope["_local"]
    assert scope["scheme"] == handle.scheme


def test_proxy_headers_off(serve: Callable[..., ServerHandle]) -> None:
    handle = serve(apps.echo_scope, proxy_headers=False, forwarded_allow_ips="*")
    scope = get_scope(handle, PROXIED)
    assert scope["client"] == scope["_local"] and scope["scheme"] == handle.scheme


def test_multiple_hops_and_networks(serve: Callable[..., ServerHandle]) -> None:
    handle = serve(apps.echo_scope, forwarded_allow_ips="127.0.0.1,10.0.0.0/8")
    scope = get_scope(handle, [("X-Forwarded-For", "1.1.1.1, 203.0.113.9, 10.1.2.3")])
    assert scope["client"] == ["203.0.113.9", 0]


def test_trust_everything(serve: Callable[..., ServerHandle]) -> None:
    handle = serve(apps.echo_scope, forwarded_allow_ips="*")
    scope = get_scope(handle, [("X-Forwarded-For", "198.51.100.1, 203.0.113.9")])
    assert scope["client"] == ["198.51.100.1", 0]


def test_forwarded_header(serve: Callable[..., ServerHandle]) -> None:
    handle = serve(apps.echo_scope)
    scope = get_scope(handle, [("Forwarded", 'for="[2001:db8:cafe::17]:4711";proto=https')])
    assert (scope["client"], scope["scheme"]) == (["2001:db8:cafe::17", 4711], "https")
    scope = get_scope(handle, [("Forwarded", "for=192.0.2.60;proto=http;by=203.0.113.43")])
    assert (scope["client"], scope["scheme"]) == (["192.0.2.60", 0], "http")


def _host(scope: dict[str, Any]) -> list[str]:
    return [value for name, value in scope["headers"] if name == "host"]


@pytest.mark.parametrize("optimizations", [ALL_ON, ALL_OFF], ids=["opts-on", "opts-off"])
def test_forwarded_host_from_a_trusted_proxy(serve: Callable[..., ServerHandle],
                                             optimizations: dict[str, bool]) -> None:
    """--forwarded-host: the app's `host` header is the one the trusted proxy names, from
    X-Forwarded-Host alone (the parser flags it) or with the other X-Forwarded-*, or from
    Forwarded host=; the next request on the connection has its own Host again."""
    handle = serve(apps.echo_scope, forwarded_host=True, optimizations=optimizations,
                   lazy_headers_min=1)
    sequence = [
        ([("X-Forwarded-Host", "example.com")], "example.com", None),
        ([], "test", None),
        ([("X-Forwarded-For", "203.0.113.7"), ("X-Forwarded-Host", "shop.example:8443")],
         "shop.example:8443", ["203.0.113.7", 0]),
        ([("Forwarded", "for=192.0.2.60;host=api.example;proto=https")], "api.example",
         ["192.0.2.60", 0]),
        ([("X-Forwarded-Host", "bad host")], "test", None),
        ([("User-Agent", "plain")], "test", None),
    ]
    with handle.connect() as c:
        local = list(c.sock.getsockname())
        for headers, host, client in sequence:
            scope = json.loads(c.request("GET", "/same", headers=headers).body)
            assert _host(scope) == [host], (headers, scope["headers"])
            assert scope["client"] == (client or local)


def test_forwarded_host_untrusted_or_off(serve: Callable[..., ServerHandle]) -> None:
    """From an untrusted peer, or without --forwarded-host, the Host stays the client's."""
    headers = [("X-Forwarded-Host", "example.com"), ("X-Forwarded-For", "203.0.113.7")]
    untrusted = serve(apps.echo_scope, forwarded_host=True, forwarded_allow_ips="10.0.0.1")
    assert _host(get_scope(untrusted, headers)) == ["test"]
    off = serve(apps.echo_scope)
    scope = get_scope(off, headers)
    assert _host(scope) == ["test"] and scope["client"] == ["203.0.113.7", 0]
    everyone = serve(apps.echo_scope, forwarded_host=True, forwarded_allow_ips="*")
    assert _host(get_scope(everyone, headers)) == ["example.com"]


@pytest.mark.parametrize("headers", [
    [("X-Forwarded-For", "not-an-ip"), ("X-Forwarded-Proto", "gopher")],
    [("X-Forwarded-For", ""), ("X-Forwarded-Proto", "")],
    [("Forwarded", "for=unknown")],
    [("Forwarded", ";;==,,")],
    [("X-Forwarded-For", "1.2.3.4\t, , 300.1.1.1")],
], ids=["garbage", "empty", "unknown", "forwarded-garbage", "bad-hop"])
def test_bad_values_are_ignored(serve: Callable[..., ServerHandle],
                                headers: list[tuple[str, str]]) -> None:
    handle = serve(apps.echo_scope)
    scope = get_scope(handle, headers)
    assert scope["client"] == scope["_local"] and scope["scheme"] == handle.scheme


@pytest.mark.parametrize("optimizations", [ALL_ON, ALL_OFF], ids=["opts-on", "opts-off"])
def test_keep_alive_mixes_proxied_and_plain_requests(serve: Callable[..., ServerHandle],
                                                     optimizations: dict[str, bool]) -> None:
    """On one connection only some requests carry proxy headers: each scope gets its
    own values, and nothing leaks into the next request through the connection or
    the per-path scope cache (same path every time)."""
    handle = serve(apps.echo_scope, optimizations=optimizations, lazy_headers_min=1)
    # the proxy names the scheme the connection does not have (https over plain
    # TCP, http over TLS), so a value leaking into the next request shows
    own = handle.scheme
    other = "http" if own == "https" else "https"
    sequence = [
        ([("X-Forwarded-For", "203.0.113.1"), ("X-Forwarded-Proto", other)],
         ["203.0.113.1", 0], other),
        ([], None, own),
        ([("Forwarded", f"for=198.51.100.2;proto={other}")], ["198.51.100.2", 0], other),
        ([("User-Agent", "plain")], None, own),
        ([("X-Forwarded-Proto", other)], None, other),
        ([], None, own),
    ]
    with handle.connect() as c:
        local = list(c.sock.getsockname())
        for headers, client, scheme in sequence:
            scope = json.loads(c.request("GET", "/same?x=1", headers=headers).body)
            assert scope["client"] == (client or local)
            assert scope["scheme"] == scheme
    if optimizations["scope_cache"]:
        # admission: the path is installed on its second request
        assert handle.state.stats()["scope_cache_hits"] >= len(sequence) - 2


def test_pipelined_requests_keep_their_own_client(serve: Callable[..., ServerHandle]) -> None:
    handle = serve(apps.echo_scope)
    from tests.support.clients import build_request

    with handle.connect() as c:
        local = list(c.sock.getsockname())
        c.send(build_request("GET", "/a", [("X-Forwarded-For", "203.0.113.5")])
               + build_request("GET", "/a") + build_request("GET", "/a", [("Forwarded",
                                                                            "for=192.0.2.9")]))
        clients = [json.loads(c.read_response().body)["client"] for _ in range(3)]
    assert clients == [["203.0.113.5", 0], local, ["192.0.2.9", 0]]


def test_cost_model(serve: Callable[..., ServerHandle], monkeypatch: pytest.MonkeyPatch) -> None:
    """Trust is decided once per connection; the Python fix-up runs only for requests
    that carry a proxy header; an untrusted connection never reaches it."""
    calls = {"trust": 0, "fixup": 0}
    real_trust, real_fixup = ProxyHeaders.trust, ProxyHeaders.fixup

    def trust(self: ProxyHeaders, peer: Any) -> bool:
        calls["trust"] += 1
        return real_trust(self, peer)

    def fixup(self: ProxyHeaders, scope: Any) -> None:
        calls["fixup"] += 1
        real_fixup(self, scope)

    monkeypatch.setattr(ProxyHeaders, "trust", trust)
    monkeypatch.setattr(ProxyHeaders, "fixup", fixup)
    handle = serve(apps.echo_scope)
    with handle.connect() as c:
        for i in range(10):
            headers = [("X-Forwarded-For", "203.0.113.7")] if i % 5 == 0 else []
            assert c.request("GET", "/", headers=headers).status == 200
    assert calls == {"trust": 1, "fixup": 2}

    untrusted = serve(apps.echo_scope, forwarded_allow_ips="10.9.9.9")
    with untrusted.connect() as c:
        for _ in range(3):
            assert c.request("GET", "/", headers=PROXIED).status == 200
    assert calls == {"trust": 2, "fixup": 2}

    everyone = serve(apps.echo_scope, forwarded_allow_ips="*")
    with everyone.connect() as c:
        assert c.request("GET", "/", headers=PROXIED).status == 200
    assert calls == {"trust": 2, "fixup": 3}  # "*": no trust call at all


@pytest.mark.parametrize("allow, proxied", [("unix:", True), ("127.0.0.1", False),
                                            ("*", True)])
def test_unix_socket_peers(serve: Callable[..., ServerHandle], tmp_path: Path, allow: str,
                           proxied: bool) -> None:
    """A peer on a Unix domain socket is trusted by the literal "unix:" (or "*")."""
    path = str(tmp_path / "proxy.sock")
    handle = serve(apps.echo_scope, uds=path, forwarded_allow_ips=allow)
    with handle.http_client() as client:
        scope = client.get("/", headers=dict(PROXIED)).json()
    if proxied:
        assert (scope["client"], scope["scheme"]) == (["203.0.113.7", 0], "https")
    else:
        assert scope["client"] is None and scope["scheme"] == handle.scheme


def test_cli_proxy_options() -> None:
    """--forwarded-allow-ips / --no-proxy-headers in a real process."""
    spawner = Spawner()
    try:
        trusted = spawner.start("tests.support.process_apps:app", "--forwarded-allow-ips",
                                "10.0.0.0/8, 127.0.0.1")
        off = spawner.start("tests.support.process_apps:app", "--no-proxy-headers")
        headers = {"X-Forwarded-For": "203.0.113.7", "X-Forwarded-Proto": "https"}
        body = httpx.get(trusted.url + "/scope", headers=headers, timeout=10).json()
        assert (body["client"], body["scheme"]) == (["203.0.113.7", 0], "https")
        body = httpx.get(off.url + "/scope", headers=headers, timeout=10).json()
        assert body["client"][0] == "127.0.0.1" and body["scheme"] == "http"
    finally:
        spawner.close()


def test_cli_forwarded_host(spawn: Spawner) -> None:
    """--forwarded-host in a real process, behind Starlette: request.url is the public
    URL the proxy was asked for; --no-proxy-headers with it is a usage error."""
    server = spawn.start("tests.support.process_apps:url_app",
                         "--forwarded-host")
    headers = {"X-Forwarded-Host": "shop.example", "X-Forwarded-Proto": "https"}
    with server.http_client() as client:
        assert client.get("/cart?x=1", headers=headers).text == "https://shop.example/cart?x=1"
    result = run_cli("tests.support.process_apps:app", "--forwarded-host", "--no-proxy-headers")
    assert result.returncode == 2
    assert "forwarded_host reads a proxy header" in result.stderr
