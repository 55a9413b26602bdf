"""The ASGI "tls" extension (carpinus.tls_extension): real HTTPS and WSS
connections, with and without a client certificate (mTLS with a trustme CA),
and what plain TCP gets instead."""

from __future__ import annotations

import asyncio
import dataclasses
import ssl
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from carpinus import _core
from carpinus.options import core_defaults
from carpinus.protocols.http.core import report_exception
from carpinus.tls_extension import TLS_VERSIONS, TLSExtensions, rfc4514_name
from tests.support import apps
from tests.support.clients import RawClient, build_request
from tests.support.fake_server import Conn, run, settle
from tests.support.fake_transport import FakeTransport
from tests.support.servers import ServerHandle
from tests.support.tls_leg import NO_TRUSTME, Certificates, issue_certificates
from tests.support.ws_clients import connect_ws

# trustme needs cryptography, which has no build for the free-threaded 3.13
# of `make test-ft`; tests/test_tls_leg.py checks the openssl certificates
# that replace trustme's in the rest of the suite there.
pytest.importorskip("trustme", reason=NO_TRUSTME)
import trustme  # noqa: E402
from cryptography import x509  # noqa: E402

# IANA numbers of suites (RFC 8446 B.4, RFC 5289, RFC 7905), written out here
# so the test does not ask OpenSSL the question the code asks it.
IANA_SUITES = {
    "TLS_AES_128_GCM_SHA256": 0x1301,
    "TLS_AES_256_GCM_SHA384": 0x1302,
    "TLS_CHACHA20_POLY1305_SHA256": 0x1303,
    "ECDHE-ECDSA-AES128-GCM-SHA256": 0xC02B,
    "ECDHE-ECDSA-AES256-GCM-SHA384": 0xC02C,
    "ECDHE-RSA-AES128-GCM-SHA256": 0xC02F,
    "ECDHE-RSA-AES256-GCM-SHA384": 0xC030,
    "ECDHE-RSA-CHACHA20-POLY1305": 0xCCA8,
    "ECDHE-ECDSA-CHACHA20-POLY1305": 0xCCA9,
}

Serve = Callable[..., ServerHandle]


@dataclasses.dataclass
class MutualTLS:
    ca: trustme.CA
    files: Certificates
    client_cert: trustme.LeafCert

    def client_context(self, with_cert: bool = True,
                       version: ssl.TLSVersion | None = None) -> ssl.SSLContext:
        ctx = ssl.create_default_context()
        self.ca.configure_trust(ctx)
        if with_cert:
            self.client_cert.configure_cert(ctx)
        if version is not None:
            ctx.minimum_version = ctx.maximum_version = version
        return ctx


@pytest.fixture(scope="module")
def mtls(tmp_path_factory: pytest.TempPathFactory) -> MutualTLS:
    ca, files = issue_certificates(tmp_path_factory.mktemp("tls-extension"))
    client_cert = ca.issue_cert("client@example.org", common_name="Alice, \"Ops\" +1",
                                organization_name="Example Org",
                                organization_unit_name="Payments")
    return MutualTLS(ca, files, client_cert)


def recording_app(seen: list[dict[str, Any]]) -> Any:
    """Answers "ok" and keeps each request's scope["extensions"]."""
    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(scope["extensions"])
        await apps.send_text(send, b"ok")
    return app


def serve_https(serve: Serve, mtls: MutualTLS, app: Any, cert_reqs: int) -> ServerHandle:
    options: dict[str, Any] = {"ssl_certfile": mtls.files.certfile,
                               "ssl_keyfile": mtls.files.keyfile, "ssl_cert_reqs": cert_reqs}
    if cert_reqs != ssl.CERT_NONE:
        options["ssl_ca_certs"] = mtls.files.ca_file
    return serve(app, **options)


def pem(cert: trustme.Blob) -> str:
    """A trustme PEM as ssl writes it (the form the extension gives)."""
    return ssl.DER_cert_to_PEM_cert(ssl.PEM_cert_to_DER_cert(cert.bytes().decode()))


def test_mutual_tls_request_carries_the_client_certificate(serve: Serve, mtls: MutualTLS) -> None:
    seen: list[dict[str, Any]] = []
    handle = serve_https(serve, mtls, recording_app(seen), ssl.CERT_REQUIRED)
    with RawClient(handle.host, handle.port, tls=mtls.client_context()) as c:
        assert c.request("GET", "/").status == 200
        assert isinstance(c.sock, ssl.SSLSocket)
        cipher = c.sock.cipher()
    assert cipher is not None
    tls = seen[0]["tls"]
    client_pem = pem(mtls.client_cert.cert_chain_pems[0])
    server_leaf = Path(mtls.files.certfile).read_text()
    assert tls["server_cert"] == ssl.DER_cert_to_PEM_cert(ssl.PEM_cert_to_DER_cert(
        server_leaf[: server_leaf.index("-----END CERTIFICATE-----") + 25]))
    assert list(tls["client_cert_chain"])[0] == client_pem
    expected_name = x509.load_pem_x509_certificate(client_pem.encode()).subject.rfc4514_string()
    assert tls["client_cert_name"] == expected_name
    assert "CN=Alice\\, \\\"Ops\\\" \\+1" in tls["client_cert_name"]
    assert tls["client_cert_error"] is None
    assert tls["tls_version"] == 0x0304
    assert tls["cipher_suite"] == IANA_SUITES[cipher[0]]


@pytest.mark.parametrize("cert_reqs", [ssl.CERT_NONE, ssl.CERT_OPTIONAL])
def test_request_without_client_certificate(serve: Serve, mtls: MutualTLS,
                                            cert_reqs: int) -> None:
    seen: list[dict[str, Any]] = []
    handle = serve_https(serve, mtls, recording_app(seen), cert_reqs)
    with httpx.Client(verify=mtls.client_context(with_cert=False)) as client:
        assert client.get(f"https://127.0.0.1:{handle.port}/").status_code == 200
    tls = seen[0]["tls"]
    assert tls["server_cert"].startswith("-----BEGIN CERTIFICATE-----")
    assert list(tls["client_cert_chain"]) == []
    assert tls["client_cert_name"] is None and tls["client_cert_error"] is None


def test_tls12_version_and_suite(serve: Serve, mtls: MutualTLS) -> None:
    seen: list[dict[str, Any]] = []
    handle = serve_https(serve, mtls, recording_app(seen), ssl.CERT_OPTIONAL)
    ctx = mtls.client_context(version=ssl.TLSVersion.TLSv1_2)
    ctx.set_ciphers("ECDHE+CHACHA20")
    with RawClient(handle.host, handle.port, tls=ctx) as c:
        assert c.request("GET", "/").status == 200
        assert isinstance(c.sock, ssl.SSLSocket)
        cipher = c.sock.cipher()
    assert cipher is not None and "CHACHA20" in cipher[0]
    tls = seen[0]["tls"]
    assert tls["tls_version"] == 0x0303
    assert tls["cipher_suite"] == IANA_SUITES[cipher[0]]
    assert tls["client_cert_name"] is not None  # optional, and this client sent one


def test_each_request_gets_its_own_copy(serve: Serve, mtls: MutualTLS) -> None:
    """Computed once per connection, but an app that edits its scope's tls
    mapping (or the extensions) does not change the next request's."""
    seen: list[dict[str, Any]] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(dict(scope["extensions"]["tls"]))
        scope["extensions"]["tls"]["tls_version"] = 0
        scope["extensions"]["extra"] = True
        await apps.send_text(send, b"ok")

    handle = serve_https(serve, mtls, app, ssl.CERT_REQUIRED)
    with RawClient(handle.host, handle.port, tls=mtls.client_context()) as c:
        for _ in range(3):
            assert c.request("GET", "/").status == 200
    assert len(seen) == 3 and seen[0] == seen[1] == seen[2]
    assert seen[0]["tls_version"] == 0x0304


def test_websocket_scope_carries_it_too(serve: Serve, mtls: MutualTLS) -> None:
    seen: list[dict[str, Any]] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        assert scope["type"] == "websocket" and scope["scheme"] == "wss"
        seen.append(scope["extensions"])
        await receive()
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.close"})

    handle = serve_https(serve, mtls, app, ssl.CERT_REQUIRED)
    with connect_ws(dataclasses.replace(handle, tls=mtls.client_context())):
        pass  # the handshake is what this test is about
    tls = seen[0]["tls"]
    assert tls["client_cert_name"].endswith(",OU=Payments,O=Example Org")
    assert tls["tls_version"] == 0x0304
    assert "websocket.http.response" in seen[0]


@pytest.mark.tcp_only(reason="the point is the plain-TCP scope; the leg's HTTPS has the "
                             "extension, which tests/protocols checks")
def test_plain_tcp_has_no_tls_extension(serve: Serve) -> None:
    seen: list[dict[str, Any]] = []
    handle = serve(recording_app(seen))
    assert handle.get("/").status_code == 200
    assert len(seen) == 1 and "tls" not in seen[0]


def test_rfc4514_escaping_and_order() -> None:
    subject = ((("countryName", "DE"),), (("organizationName", "#Hash, Inc."),),
               (("commonName", " padded "), ("emailAddress", "a@b.c")))
    assert rfc4514_name(subject) == "CN=\\ padded\\ +emailAddress=a@b.c,O=\\#Hash\\, Inc.,C=DE"


def test_versions_and_suite_ids_come_from_openssl(mtls: MutualTLS) -> None:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(mtls.files.certfile, mtls.files.keyfile)
    ext = TLSExtensions(ctx, mtls.files.certfile)
    for name, number in IANA_SUITES.items():
        if name in ext.suite_ids:
            assert ext.suite_ids[name] == number, name
    assert {"TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384"} <= set(ext.suite_ids)
    assert TLS_VERSIONS["TLSv1.3"] == 0x0304


# -- the core's side: asked once per TLS connection, never for plain TCP ---------------


def core_state(loop: asyncio.AbstractEventLoop, app: Any, tls_extensions: Any) -> Any:
    return _core.ServerState(app, loop, report_exception, loop.create_task, None, print,
                             tls_extensions=tls_extensions, **core_defaults())


def test_core_asks_once_per_tls_connection() -> None:
    calls: list[Any] = []
    seen: dict[str, dict[str, Any]] = {}

    def extensions(transport: Any) -> dict[str, Any]:
        calls.append(transport)
        return {"tls": {"tls_version": 0x0304}}

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen[scope["path"]] = scope["extensions"]
        await apps.send_text(send, b"ok")

    async def test(loop: asyncio.AbstractEventLoop) -> None:
        state = core_state(loop, app, extensions)
        tls = Conn(state, loop, tls=True)
        tls.send(build_request("GET", "/1") + build_request("GET", "/2"))
        plain = Conn(state, loop)
        plain.send(build_request("GET", "/3"))
        await settle()
        assert len(tls.responses()) == 2 and len(plain.responses()) == 1

    run(test)
    assert len(calls) == 1 and isinstance(calls[0], FakeTransport) and calls[0].tls
    assert seen["/1"] == seen["/2"] == {"tls": {"tls_version": 0x0304}}
    assert seen["/1"]["tls"] is not seen["/2"]["tls"]
    assert seen["/3"] == {}


@pytest.mark.parametrize("answer", [ValueError("broken"), ["not", "a", "dict"]],
                         ids=["raises", "not_a_dict"])
def test_core_serves_without_it_when_the_call_fails(monkeypatch: pytest.MonkeyPatch,
                                                    answer: Any) -> None:
    """The failure is reported (sys.unraisablehook); the connection is served,
    its scopes without the extension."""
    reported: list[Any] = []
    monkeypatch.setattr(sys, "unraisablehook", reported.append)
    seen: list[dict[str, Any]] = []

    def extensions(transport: Any) -> Any:
        if isinstance(answer, Exception):
            raise answer
        return answer

    async def test(loop: asyncio.AbstractEventLoop) -> None:
        c = Conn(core_state(loop, recording_app(seen), extensions), loop, tls=True)
        c.send(build_request("GET", "/"))
        await settle()
        assert c.responses()[0].startswith(b"HTTP/1.1 200")

    run(test)
    assert seen == [{}]
    assert len(reported) == 1
    assert isinstance(reported[0].exc_value, ValueError if isinstance(answer, Exception)
                      else TypeError)
