"""Proxy headers: a trusted proxy tells the client's address and scheme.

A proxy in front of the server connects to it itself, so the connection's
peer is the proxy.  Proxies say who the client was in `X-Forwarded-For` /
`X-Forwarded-Proto` (de facto standard) or in `Forwarded` (RFC 7239).  Anyone
can send those headers, so they are believed only from peers listed in
`forwarded_allow_ips`.

Cost model (the C core calls in here, never on the hot path):

* `ProxyHeaders.trust(peername)` runs once per connection, from
  `connection_made`; the C connection keeps the answer as a flag.
* `ProxyHeaders.fixup(scope)` runs only for a request on a trusted
  connection that carries one of the four headers (the C parser flags
  them).  It replaces `client`, `scheme` and/or the `host` header in that
  request's scope dict and nowhere else.

With `forwarded_host` on (off by default: uvicorn #965), `X-Forwarded-Host`
or `Forwarded: host=` also replaces the request's `host` header: the host the
client asked the proxy for, which URLs the app builds must use.

Which header is read: `X-Forwarded-For`/`X-Forwarded-Proto` (and
`X-Forwarded-Host` when it is used) when the request carries any of them;
otherwise `Forwarded`.  A proxy that speaks only
X-Forwarded-* (nginx, most load balancers) appends to X-Forwarded-For, so a
`Forwarded` header a client made up can never win over it.

Which hop is the client: proxies append, so the list is walked from the
right, skipping trusted addresses; the first untrusted one is the client (a
client cannot push a made-up address past its own).  If every hop is trusted,
the leftmost one is.  With `*` everything is trusted and the leftmost entry
is taken, as uvicorn does.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, MutableMapping, Sequence
from typing import Any

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# Literal in forwarded_allow_ips that trusts peers on a Unix domain socket
# (nginx also writes it as the client in X-Forwarded-For when it listens on
# one).
UNIX_LITERAL = "unix:"
HTTP_SCHEMES = {"http": "http", "https": "https", "ws": "http", "wss": "https"}
WEBSOCKET_SCHEMES = {"http": "ws", "https": "wss", "ws": "ws", "wss": "wss"}
_CACHE_LIMIT = 4096
# A forwarded host: a reg-name, IPv4 or [IPv6] address, with an optional port
# (RFC 9110 7.2; the characters the C parser allows in Host, less ",").
_FORWARDED_HOST = re.compile(r"(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._~!$&'()*+;=%-]+)(?::[0-9]{1,5})?")


def _parse_ip(text: str) -> IPAddress | None:
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return None
    # An IPv4 client on a dual-stack socket shows up as ::ffff:a.b.c.d.
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def split_node(node: str) -> tuple[str, int | None] | None:
    """A forwarded hop -> (address text, port or None), or None when it is not
    an IP address: "203.0.113.7", "203.0.113.7:4711", "2001:db8::1",
    "[2001:db8::1]", "[2001:db8::1]:4711"."""
    node = node.strip()
    port: int | None = None
    if node.startswith("["):
        end = node.find("]")
        if end < 0:
            return None
        host, rest = node[1:end], node[end + 1 :]
        if rest:
            if not rest.startswith(":"):
                return None
            port = _parse_port(rest[1:])
        ip = _parse_ip(host)
        if not isinstance(ip, ipaddress.IPv6Address) and not (ip and ":" in host):
            return None
        return str(ip), port
    if node.count(":") == 1:  # IPv4 with a port (some proxies write it)
        host, _, port_text = node.partition(":")
        ip = _parse_ip(host)
        if not isinstance(ip, ipaddress.IPv4Address):
            return None
        return str(ip), _parse_port(port_text)
    ip = _parse_ip(node)
    return (str(ip), None) if ip is not None else None


def _parse_port(text: str) -> int | None:
    # RFC 7239 also allows an obfuscated port ("_abc"): that is no port.
    return int(text) if text.isdigit() and len(text) <= 5 and int(text) <= 65535 else None


class TrustedHosts:
    """The forwarded_allow_ips list: IP addresses, networks (CIDR), literals
    (matched verbatim against forwarded hops, e.g. "unix:" or an RFC 7239
    obfuscated name "_proxy1"), and "*" for everything.  "unix:" also trusts
    peers connected over a Unix domain socket."""

    def __init__(self, spec: str | Sequence[str]) -> None:
        items = spec.split(",") if isinstance(spec, str) else list(spec)
        entries = [item.strip() for item in items if item.strip()]
        self.trust_all = "*" in entries
        self.addresses: set[IPAddress] = set()
        self.networks: list[IPNetwork] = []
        self.literals: set[str] = set()
        for entry in entries:
            if entry == "*":
                continue
            if "/" in entry:
                try:
                    self.networks.append(ipaddress.ip_network(entry, strict=False))
                except ValueError:
                    raise ValueError(
                        f"forwarded_allow_ips: {entry!r} is not an IP network"
                    ) from None
                continue
            ip = _parse_ip(entry)
            if ip is not None:
                self.addresses.add(ip)
            else:
                self.literals.add(entry)
        self.trust_unix = self.trust_all or UNIX_LITERAL in self.literals
        self._known: dict[str, bool] = {}

    def __contains__(self, host: object) -> bool:
        """Is this address text (or literal) trusted?"""
        if self.trust_all:
            return True
        if not isinstance(host, str) or not host:
            return False
        known = self._known.get(host)
        if known is None:
            ip = _parse_ip(host)
            if ip is None:
                known = host in self.literals
            else:
                known = ip in self.addresses or any(ip in net for net in self.networks)
            if len(self._known) >= _CACHE_LIMIT:
                self._known.clear()
            self._known[host] = known
        return known

    def hop_is_trusted(self, node: str) -> bool:
        split = split_node(node)
        return (split[0] if split else node.strip()) in self

    def pick(self, nodes: Sequence[str]) -> int:
        """Index of the client among forwarded hops (nodes must not be empty)."""
        if self.trust_all:
            return 0
        for i in range(len(nodes) - 1, -1, -1):
            if not self.hop_is_trusted(nodes[i]):
                return i
        return 0


def _comma_list(values: Iterable[str]) -> list[str]:
    return [item.strip() for value in values for item in value.split(",")]


_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# Parameter values are tokens or quoted strings; ":" "[" "]" are tolerated
# unquoted because proxies write for=192.0.2.1:80 although RFC 7239 asks for
# quotes there.
_VALUE_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z:\[\]]+")
_QUOTED = re.compile(r'"((?:[^"\\]|\\.)*)"')
_QUOTED_PAIR = re.compile(r"\\(.)")


def _skip_ows(value: str, pos: int) -> int:
    while pos < len(value) and value[pos] in " \t":
        pos += 1
    return pos


def parse_forwarded(values: Iterable[str]) -> list[dict[str, str]]:
    """RFC 7239 `Forwarded` field values -> one dict per element (hop), with
    parameter names lowercased and quoted strings unquoted.  A malformed
    element becomes {}: a hop about which nothing is known."""
    elements: list[dict[str, str]] = []
    for value in values:
        pos, end = 0, len(value)
        element: dict[str, str] = {}
        ok = True
        while True:
            pos = _skip_ows(value, pos)
            if pos < end and value[pos] not in ",;":
                pair = _parse_pair(value, pos)
                if pair is None:
                    ok = False
                    while pos < end and value[pos] not in ",;":
                        pos += 1
                else:
                    name, text, pos = pair
                    if name in element:
                        ok = False  # a parameter appears at most once per element
                    element[name] = text
                pos = _skip_ows(value, pos)
            if pos >= end or value[pos] == ",":
                # empty list elements ("a, , b") are no hops (RFC 9110 5.6.1)
                if element or not ok:
                    elements.append(element if ok else {})
                if pos >= end:
                    break
                element, ok = {}, True
                pos += 1
                continue
            if value[pos] != ";":
                ok = False
            pos += 1
    return elements


def _parse_pair(value: str, pos: int) -> tuple[str, str, int] | None:
    """token "=" (token / quoted-string) at pos -> (name, value, end) or None."""
    name = _TOKEN.match(value, pos)
    if name is None or not value.startswith("=", name.end()):
        return None
    pos = name.end() + 1
    quoted = _QUOTED.match(value, pos)
    if quoted is not None:
        return name.group().lower(), _QUOTED_PAIR.sub(r"\1", quoted.group(1)), quoted.end()
    token = _VALUE_TOKEN.match(value, pos)
    if token is None:
        return None
    return name.group().lower(), token.group(), token.end()


class ProxyHeaders:
    """The callables the C core uses for proxy headers (see the module doc)."""

    def __init__(self, trusted: TrustedHosts, host: bool = False) -> None:
        self.trusted = trusted
        self.host = host  # forwarded_host: X-Forwarded-Host / host= set the Host

    @property
    def trust_callable(self) -> Any:
        """What ServerState gets as proxy_trust: None means "trust every peer"."""
        return None if self.trusted.trust_all else self.trust

    def trust(self, peername: Any) -> bool:
        """May the peer of a new connection set client/scheme?  peername is
        the transport's: (host, port, ...) for IP, a str or bytes path for a
        Unix socket."""
        if isinstance(peername, tuple) and peername:
            return peername[0] in self.trusted
        if isinstance(peername, (str, bytes)):
            return self.trusted.trust_unix
        return False

    def fixup(self, scope: MutableMapping[str, Any]) -> None:
        """Rewrite scope["client"] / scope["scheme"] (and, with forwarded_host,
        the `host` header) from the proxy headers of a request that came over
        a trusted connection."""
        xff: list[str] = []
        xfp: list[str] = []
        xfh: list[str] = []
        fwd: list[str] = []
        for name, value in scope["headers"]:
            if name == b"x-forwarded-for":
                xff.append(value.decode("latin-1"))
            elif name == b"x-forwarded-proto":
                xfp.append(value.decode("latin-1"))
            elif name == b"x-forwarded-host":
                xfh.append(value.decode("latin-1"))
            elif name == b"forwarded":
                fwd.append(value.decode("latin-1"))
        if not self.host:
            xfh = []  # not read: it neither sets the host nor hides Forwarded
        if xff or xfp or xfh:
            client, proto, host = self._from_x_forwarded(xff, xfp, xfh)
        elif fwd:
            client, proto, host = self._from_forwarded(fwd)
        else:
            return
        if client is not None:
            scope["client"] = client
        if proto is not None:
            table = WEBSOCKET_SCHEMES if scope.get("type") == "websocket" else HTTP_SCHEMES
            scheme = table.get(proto.lower())
            if scheme is not None:
                scope["scheme"] = scheme
        if host is not None and self.host and _FORWARDED_HOST.fullmatch(host):
            _set_host(scope, host.encode("latin-1"))

    def _from_x_forwarded(
        self, xff: list[str], xfp: list[str], xfh: list[str]
    ) -> tuple[tuple[str, int] | None, str | None, str | None]:
        hops = _comma_list(xff)
        client = None
        chosen = None
        if hops and any(hops):
            chosen = self.trusted.pick(hops)
            split = split_node(hops[chosen])
            if split is not None:
                client = (split[0], split[1] or 0)
        return client, _aligned(_comma_list(xfp), chosen, hops), \
            _aligned(_comma_list(xfh), chosen, hops)

    def _from_forwarded(
        self, fwd: list[str]
    ) -> tuple[tuple[str, int] | None, str | None, str | None]:
        elements = parse_forwarded(fwd)
        if not elements:
            return None, None, None
        nodes = [element.get("for", "") for element in elements]
        chosen = self.trusted.pick(nodes)
        element = elements[chosen]
        split = split_node(nodes[chosen]) if nodes[chosen] else None
        client = (split[0], split[1] or 0) if split is not None else None
        return client, element.get("proto"), element.get("host")


def _aligned(entries: list[str], chosen: int | None, hops: list[str]) -> str | None:
    """The X-Forwarded-Proto/-Host entry that goes with the chosen X-Forwarded-For
    hop: the one at its position when every proxy appended to both lists (same
    length); otherwise the last entry, the one our own (trusted) peer wrote."""
    if not entries:
        return None
    if chosen is not None and len(entries) == len(hops):
        return entries[chosen]
    return entries[-1]


def _set_host(scope: MutableMapping[str, Any], host: bytes) -> None:
    """Replace the request's `host` header (add one to an HTTP/1.0 request that
    had none) in this scope's headers."""
    headers = scope["headers"]
    for i, (name, _) in enumerate(headers):
        if name == b"host":
            headers[i] = (b"host", host)
            return
    headers.append((b"host", host))
