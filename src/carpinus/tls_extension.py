"""The ASGI "tls" extension: what a scope says about its HTTPS connection.

https://asgi.readthedocs.io/en/latest/specs/tls.html.  On a TLS connection
every HTTP and WebSocket scope carries `scope["extensions"]["tls"]`:

    server_cert        PEM of the server's certificate (the first one in
                       --ssl-certfile), or None
    client_cert_chain  PEM strings, the client's certificate first; empty when
                       the client sent none.  Python < 3.13 exposes only the
                       client's own certificate, so that is all it holds there;
                       3.13+ gives the chain (get_unverified_chain()): the
                       client's certificate, then each issuer -- with OpenSSL 3
                       up to the CA that verified it, even if the client did
                       not send that one
    client_cert_name   the client certificate's subject as an RFC 4514 string,
                       or None
    client_cert_error  always None: a certificate that fails verification
                       fails the handshake, so no request ever sees one
    tls_version        0x0301 (TLS 1.0) ... 0x0304 (TLS 1.3)
    cipher_suite       the IANA number of the negotiated suite

The mapping is made once per connection, when the C core's connection_made
sees a TLS transport (ServerState(tls_extensions=...)); each request's scope
gets a copy of it, so an app that edits its scope cannot change the next
request's.  Plain-TCP connections never call in here.
"""

from __future__ import annotations

import os
import ssl
from typing import Any

# ssl.SSLObject.version() -> the protocol's wire number
TLS_VERSIONS = {"SSLv3": 0x0300, "TLSv1": 0x0301, "TLSv1.1": 0x0302, "TLSv1.2": 0x0303,
                "TLSv1.3": 0x0304}

# RFC 4514, section 3: the attribute types with a short name.  OpenSSL's long
# names as ssl.getpeercert() gives them; any other type keeps that long name
# (e.g. emailAddress), as OpenSSL's own one-line form does.
RFC4514_NAMES = {
    "commonName": "CN", "localityName": "L", "stateOrProvinceName": "ST",
    "organizationName": "O", "organizationalUnitName": "OU", "countryName": "C",
    "streetAddress": "STREET", "domainComponent": "DC", "userId": "UID",
}

PEM_CERT_BEGIN = "-----BEGIN CERTIFICATE-----"
PEM_CERT_END = "-----END CERTIFICATE-----"


def cipher_suite_ids(context: ssl.SSLContext) -> dict[str, int]:
    """OpenSSL's suite names -> IANA numbers, for every suite `context` can
    negotiate.  OpenSSL knows both (SSLContext.get_ciphers()' "id" is
    0x0300XXXX, XXXX the IANA number), so no hand-kept table can fall out of
    step with it; a negotiated suite is always one of the context's."""
    return {c["name"]: c["id"] & 0xFFFF for c in context.get_ciphers()}


def first_certificate_pem(path: str | os.PathLike[str]) -> str | None:
    """The first certificate in a PEM file (the server's own: a chain file
    starts with the leaf), normalized as ssl writes PEM; None if none."""
    with open(path, encoding="ascii", errors="replace") as f:
        text = f.read()
    start = text.find(PEM_CERT_BEGIN)
    end = text.find(PEM_CERT_END, start)
    if start < 0 or end < 0:
        return None
    der = ssl.PEM_cert_to_DER_cert(text[start : end + len(PEM_CERT_END)])
    return ssl.DER_cert_to_PEM_cert(der)


def _escape_rfc4514(value: str) -> str:
    out = []
    for i, ch in enumerate(value):
        if ch in ',+"\\<>;' or (ch == "#" and i == 0) or (
                ch == " " and (i == 0 or i == len(value) - 1)):
            out.append("\\" + ch)
        elif ch == "\0":
            out.append("\\00")
        else:
            out.append(ch)
    return "".join(out)


def rfc4514_name(subject: Any) -> str:
    """ssl's subject form (a tuple of RDNs, each a tuple of (type, value),
    in certificate order) as an RFC 4514 string: last RDN first."""
    rdns = []
    for rdn in reversed(subject):
        rdns.append("+".join(f"{RFC4514_NAMES.get(kind, kind)}={_escape_rfc4514(value)}"
                             for kind, value in rdn))
    return ",".join(rdns)


def _chain_pems(ssl_object: ssl.SSLObject) -> tuple[str, ...]:
    """The client's chain as PEM, its own certificate first, each next one
    the issuer of the one before (see the module's docstring for what each
    Python version can tell)."""
    get_chain = getattr(ssl_object, "get_unverified_chain", None)  # Python 3.13+
    if get_chain is not None:
        return tuple(ssl.DER_cert_to_PEM_cert(der) for der in get_chain())
    der = ssl_object.getpeercert(binary_form=True)
    return (ssl.DER_cert_to_PEM_cert(der),) if der else ()


class TLSExtensions:
    """Called by the C core once per TLS connection with its transport:
    the connection's scope extensions, {"tls": {...}}."""

    def __init__(self, context: ssl.SSLContext,
                 certfile: str | os.PathLike[str] | None) -> None:
        self.server_cert = first_certificate_pem(certfile) if certfile else None
        self.suite_ids = cipher_suite_ids(context)

    def __call__(self, transport: Any) -> dict[str, dict[str, Any]]:
        ssl_object = transport.get_extra_info("ssl_object")
        return {"tls": self.describe(ssl_object)}

    def describe(self, ssl_object: ssl.SSLObject) -> dict[str, Any]:
        cipher = ssl_object.cipher()
        peer = ssl_object.getpeercert()  # {} unless verified, None if no cert
        subject = peer.get("subject") if peer else None
        return {
            "server_cert": self.server_cert,
            "client_cert_chain": _chain_pems(ssl_object),
            "client_cert_name": rfc4514_name(subject) if subject else None,
            "client_cert_error": None,
            "tls_version": TLS_VERSIONS.get(ssl_object.version() or ""),
            # None only if OpenSSL negotiated a suite it does not list for
            # the context, which it cannot
            "cipher_suite": self.suite_ids.get(cipher[0]) if cipher else None,
        }
