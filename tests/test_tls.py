"""TLS: real HTTPS over the event loop's TLS transport (asyncio's and uvloop's),
with certificates made by trustme.  The C protocol must see scheme "https",
keep its BufferedProtocol reads (and zero-copy bodies) working through TLS,
and the options must fail early with a message a person can act on."""

from __future__ import annotations

import json
import shutil
import ssl
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from carpinus.config import Config, ConfigError
from carpinus.optimizations import DEFAULTS
from carpinus.tls import create_ssl_context
from tests.support import apps
from tests.support.clients import RawClient, build_request
from tests.support.processes import Spawner
from tests.support.servers import ServerHandle
from tests.support.tls_leg import NO_TRUSTME, issue_certificates
from tests.support.waiting import wait_for

# trustme needs cryptography, which has no build for the free-threaded 3.13
# of `make test-ft`; tests/test_tls_leg.py checks the openssl certificates
# that replace trustme's in the rest of the suite there.
pytest.importorskip("trustme", reason=NO_TRUSTME)
import trustme  # noqa: E402
from cryptography.hazmat.primitives import serialization  # noqa: E402


@dataclass
class Certs:
    ca: trustme.CA
    ca_file: Path
    certfile: Path
    keyfile: Path
    client_ctx: ssl.SSLContext  # trusts the CA, presents no certificate

    def client_with_cert(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context()
        self.ca.configure_trust(ctx)
        self.ca.issue_cert("client@example.org").configure_cert(ctx)
        return ctx


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certs:
    ca, files = issue_certificates(tmp_path_factory.mktemp("tls"))
    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)
    return Certs(ca, Path(files.ca_file), Path(files.certfile), Path(files.keyfile), client_ctx)


def https_url(handle: ServerHandle, path: str = "/") -> str:
    return f"https://127.0.0.1:{handle.port}{path}"


def tls_raw_client(handle: ServerHandle, ctx: ssl.SSLContext) -> RawClient:
    """The strict raw HTTP/1.1 client of the other tests, over TLS."""
    return RawClient(handle.host, handle.port, tls=ctx)


ServeTLS = Callable[..., ServerHandle]


@pytest.fixture
def serve_tls(serve: Callable[..., ServerHandle], certs: Certs) -> ServeTLS:
    def start(app: object, **options: object) -> ServerHandle:
        options.setdefault("ssl_certfile", str(certs.certfile))
        options.setdefault("ssl_keyfile", str(certs.keyfile))
        return serve(app, **options)

    return start


def test_https_request_with_trustme_ca(serve_tls: ServeTLS, certs: Certs) -> None:
    """httpx verifies the server against the trustme CA; the scope says https."""
    handle = serve_tls(apps.echo_scope)
    with httpx.Client(verify=certs.client_ctx) as client:
        r = client.get(https_url(handle, "/secure?x=1"))
    assert r.status_code == 200
    assert r.headers["server"] == "carpinus"
    scope = r.json()
    assert scope["scheme"] == "https"
    assert scope["path"] == "/secure" and scope["query_string"] == "x=1"
    assert scope["client"][0] == "127.0.0.1" and isinstance(scope["client"][1], int)
    assert scope["server"] == ["127.0.0.1", handle.port]


def test_plain_http_to_tls_port_is_refused(serve_tls: ServeTLS, certs: Certs) -> None:
    """A plaintext request to the TLS port never reaches the app; the server goes on."""
    calls = []

    async def app(scope, receive, send):
        calls.append(scope["path"])
        await apps.send_text(send, b"ok")

    handle = serve_tls(app)
    with handle.connect() as c:
        c.send(build_request("GET", "/plain"))
        received = b""
        while True:  # until the server closes (it may send a TLS alert first)
            try:
                chunk = c.sock.recv(4096)
            except ConnectionResetError:
                break
            if not chunk:
                break
            received += chunk
        assert b"HTTP/1.1" not in received
    with httpx.Client(verify=certs.client_ctx) as client:
        assert client.get(https_url(handle, "/tls")).text == "ok"
    assert calls == ["/tls"]


def test_keep_alive_and_pipelining_over_tls(serve_tls: ServeTLS, certs: Certs) -> None:
    """Several requests on one TLS connection, some pipelined in one TLS record."""
    handle = serve_tls(apps.echo_scope)
    with tls_raw_client(handle, certs.client_ctx) as c:
        for i in range(3):
            r = c.request("GET", f"/one/{i}")
            assert r.status == 200 and json.loads(r.body)["path"] == f"/one/{i}"
        c.send(b"".join(build_request("GET", f"/piped/{i}") for i in range(4)))
        paths = [json.loads(c.read_response().body)["path"] for _ in range(4)]
    assert paths == [f"/piped/{i}" for i in range(4)]


@pytest.mark.parametrize("zero_copy", [True, False], ids=["zero_copy", "copied"])
def test_large_upload_over_tls(serve_tls: ServeTLS, certs: Certs, zero_copy: bool) -> None:
    """Big bodies arrive intact through TLS: with Content-Length (read straight into
    the app's bytes object when zero_copy_body is on) and chunked."""
    handle = serve_tls(
        apps.echo_body,
        optimizations={**DEFAULTS, "zero_copy_body": zero_copy},
        zero_copy_threshold=16384,
    )
    body = bytes(range(256)) * 12_000  # 3 072 000 bytes: under ZERO_COPY_MAX
    with httpx.Client(verify=certs.client_ctx, timeout=30) as client:
        r = client.post(https_url(handle, "/upload"), content=body)
        assert r.status_code == 200 and r.content == body
        if zero_copy:
            assert r.headers["x-messages"] == "1"  # one bytes object for the whole body

        def pieces():
            for i in range(0, len(body), 100_000):
                yield body[i : i + 100_000]

        r = client.post(https_url(handle, "/chunked"), content=pieces())
        assert r.status_code == 200 and r.content == body
    stats = handle.state.stats()
    if zero_copy:
        # most of the body went from the TLS layer straight into its bytes object
        assert stats["body_bytes_zero_copy"] > len(body) // 2
    else:
        assert stats["body_bytes_zero_copy"] == 0


def test_large_response_over_tls(serve_tls: ServeTLS, certs: Certs) -> None:
    """Write flow control through the TLS transport: a 8 MB streamed response."""
    part = b"z" * 65536

    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for _ in range(128):
            await send({"type": "http.response.body", "body": part, "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    handle = serve_tls(app)
    with httpx.Client(verify=certs.client_ctx, timeout=30) as client:
        r = client.get(https_url(handle))
    assert r.status_code == 200 and len(r.content) == 128 * 65536


def test_close_notify_mid_body(serve_tls: ServeTLS, certs: Certs) -> None:
    """TLS's counterpart of a TCP half-close: the client ends the TLS session
    (close_notify) before the body is complete.  The request can never end, so
    the server closes without answering and the app hears http.disconnect."""
    seen: list[str] = []

    async def app(scope, receive, send):
        while True:
            message = await receive()
            seen.append(message["type"])
            if message["type"] == "http.disconnect" or not message.get("more_body"):
                break

    handle = serve_tls(app)
    c = tls_raw_client(handle, certs.client_ctx)
    try:
        c.send(build_request("POST", "/upload", [("Content-Length", "100")]) + b"x" * 10)
        wait_for(lambda: seen, what="the app reading the body")
        assert isinstance(c.sock, ssl.SSLSocket)
        plain = c.sock.unwrap()  # sends close_notify, waits for the server's
        plain.settimeout(5)
        assert plain.recv(1) == b""  # then the TCP close, and no answer
    finally:
        c.close()
    wait_for(lambda: seen[-1] == "http.disconnect", what="http.disconnect")
    wait_for(lambda: handle.state.connections == 0 and handle.state.active_requests == 0,
             what="the connection released")


def test_client_certificate_required(serve_tls: ServeTLS, certs: Certs) -> None:
    """ssl_cert_reqs=2: a client with a certificate from the CA is served, one
    without is refused during the handshake, and the server goes on serving."""
    handle = serve_tls(apps.echo_scope, ssl_cert_reqs=ssl.CERT_REQUIRED,
                       ssl_ca_certs=str(certs.ca_file))
    with httpx.Client(verify=certs.client_with_cert()) as client:
        assert client.get(https_url(handle)).json()["scheme"] == "https"
    with httpx.Client(verify=certs.client_ctx) as client, pytest.raises(httpx.TransportError):
        client.get(https_url(handle))
    other_ca = trustme.CA()
    stranger = ssl.create_default_context()
    certs.ca.configure_trust(stranger)
    other_ca.issue_cert("stranger@example.org").configure_cert(stranger)
    with httpx.Client(verify=stranger) as client, pytest.raises(httpx.TransportError):
        client.get(https_url(handle))
    with httpx.Client(verify=certs.client_with_cert()) as client:
        assert client.get(https_url(handle)).status_code == 200


def test_tls_over_unix_socket(serve_tls: ServeTLS, certs: Certs, tmp_path: Path) -> None:
    """TLS works on a Unix domain socket too (the scope still says https)."""
    path = str(tmp_path / "tls.sock")
    serve_tls(apps.echo_scope, uds=path)
    transport = httpx.HTTPTransport(uds=path, verify=certs.client_ctx)
    with httpx.Client(transport=transport) as client:
        r = client.get("https://localhost/over-uds")
    assert r.json()["scheme"] == "https"
    assert r.json()["path"] == "/over-uds"


# -- protocol versions and cipher suites with the defaults --------------------
# A server started with nothing but a key and a certificate must serve the
# clients people have: TLS 1.3, and TLS 1.2 with the AEAD suites that today's
# clients offer (the old "TLSv1" cipher default left none of them).

AEAD_MARKERS = ("GCM", "CHACHA20")


def client_context(certs: Certs, version: ssl.TLSVersion) -> ssl.SSLContext:
    """A client that trusts the CA and speaks only `version` (Python's default suites)."""
    ctx = ssl.create_default_context()
    certs.ca.configure_trust(ctx)
    ctx.minimum_version = ctx.maximum_version = version
    return ctx


def test_tls12_client_gets_an_aead_suite(serve_tls: ServeTLS, certs: Certs) -> None:
    handle = serve_tls(apps.hello)
    with tls_raw_client(handle, client_context(certs, ssl.TLSVersion.TLSv1_2)) as c:
        r = c.request("GET", "/")
        assert isinstance(c.sock, ssl.SSLSocket)
        version, cipher = c.sock.version(), c.sock.cipher()
    assert r.status == 200 and r.body == b"Hello, World!"
    assert version == "TLSv1.2"
    assert cipher is not None and any(m in cipher[0] for m in AEAD_MARKERS), cipher


def test_tls13_client(serve_tls: ServeTLS, certs: Certs) -> None:
    handle = serve_tls(apps.hello)
    with tls_raw_client(handle, client_context(certs, ssl.TLSVersion.TLSv1_3)) as c:
        r = c.request("GET", "/")
        assert isinstance(c.sock, ssl.SSLSocket)
        version = c.sock.version()
    assert r.status == 200 and version == "TLSv1.3"


def test_openssl_s_client_tls12_ecdhe_aesgcm(serve_tls: ServeTLS, certs: Certs) -> None:
    """The command-line client people reach for when a handshake fails."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("the openssl command-line tool is not installed "
                    "(Debian: apt-get install openssl)")
    handle = serve_tls(apps.hello)
    result = subprocess.run(
        [openssl, "s_client", "-tls1_2", "-cipher", "ECDHE+AESGCM",
         "-connect", f"127.0.0.1:{handle.port}", "-CAfile", str(certs.ca_file),
         "-verify_return_error", "-ign_eof"],
        input=build_request("GET", "/", [("Connection", "close")]),
        capture_output=True, timeout=30, check=False)
    out = result.stdout.decode("latin-1")
    assert result.returncode == 0, out + result.stderr.decode("latin-1")
    assert "HTTP/1.1 200 OK" in out and "Hello, World!" in out
    assert "Protocol  : TLSv1.2" in out
    assert "Verify return code: 0 (ok)" in out


def test_given_cipher_string_is_applied(serve_tls: ServeTLS, certs: Certs) -> None:
    """--ssl-ciphers still restricts TLS 1.2: only ChaCha20 is offered here."""
    handle = serve_tls(apps.hello, ssl_ciphers="ECDHE+CHACHA20")
    with tls_raw_client(handle, client_context(certs, ssl.TLSVersion.TLSv1_2)) as c:
        assert c.request("GET", "/").status == 200
        assert isinstance(c.sock, ssl.SSLSocket)
        cipher = c.sock.cipher()
    assert cipher is not None and "CHACHA20" in cipher[0], cipher


def test_plain_server_says_http(serve) -> None:
    """Without TLS options nothing changes: scheme http."""
    handle = serve(apps.echo_scope)
    assert httpx.get(handle.url).json()["scheme"] == "http"


# -- options -------------------------------------------------------------------


def encrypted_key(certs: Certs, tmp_path: Path, password: bytes) -> Path:
    key = serialization.load_pem_private_key(certs.keyfile.read_bytes(), password=None)
    path = tmp_path / "encrypted-key.pem"
    path.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(password)))
    return path


def test_encrypted_key_with_password(serve_tls: ServeTLS, certs: Certs,
                                     tmp_path: Path) -> None:
    keyfile = encrypted_key(certs, tmp_path, b"s3cret")
    handle = serve_tls(apps.hello, ssl_keyfile=str(keyfile), ssl_keyfile_password="s3cret")
    with httpx.Client(verify=certs.client_ctx) as client:
        assert client.get(https_url(handle)).text == "Hello, World!"


def test_encrypted_key_password_missing_or_wrong(certs: Certs, tmp_path: Path) -> None:
    """No terminal prompt: a clear error naming the option instead."""
    keyfile = encrypted_key(certs, tmp_path, b"s3cret")
    with pytest.raises(ConfigError, match="--ssl-keyfile-password"):
        Config(apps.hello, ssl_certfile=str(certs.certfile), ssl_keyfile=str(keyfile),
               configure_logging=False)
    with pytest.raises(ConfigError, match="password"):
        Config(apps.hello, ssl_certfile=str(certs.certfile), ssl_keyfile=str(keyfile),
               ssl_keyfile_password="wrong", configure_logging=False)


@pytest.mark.parametrize("options, message", [
    ({"ssl_certfile": "/nonexistent/cert.pem"}, "cannot read the certificate"),
    ({"ssl_keyfile": "KEY"}, "ssl_keyfile given without ssl_certfile"),
    ({"ssl_ca_certs": "CA"}, "ssl_ca_certs given without ssl_certfile"),
    ({"ssl_cert_reqs": 2}, "ssl_cert_reqs given without ssl_certfile"),
    ({"ssl_certfile": "CERT", "ssl_keyfile": "KEY", "ssl_cert_reqs": 2},
     "ssl_ca_certs, which is not set"),
    ({"ssl_certfile": "CERT", "ssl_keyfile": "KEY", "ssl_cert_reqs": 5},
     "ssl_cert_reqs must be between 0 and 2, got 5"),
    ({"ssl_certfile": "CERT", "ssl_keyfile": "KEY", "ssl_ciphers": "NO-SUCH-CIPHER"},
     "selects no cipher"),
    ({"ssl_certfile": "CERT", "ssl_keyfile": "KEY", "ssl_ca_certs": "/nonexistent/ca.pem",
      "ssl_cert_reqs": 2}, "cannot load CA certificates"),
    ({"ssl_certfile": "CERT", "ssl_keyfile": "CA"}, "cannot load the certificate/key"),
])
def test_bad_tls_options(certs: Certs, options: dict[str, object], message: str) -> None:
    paths = {"CERT": str(certs.certfile), "KEY": str(certs.keyfile), "CA": str(certs.ca_file)}
    resolved = {k: paths.get(v, v) if isinstance(v, str) else v for k, v in options.items()}
    with pytest.raises(ConfigError, match=message):
        Config(apps.hello, configure_logging=False, **resolved)


def tls12_suites(ctx: ssl.SSLContext) -> list[str]:
    return [c["name"] for c in ctx.get_ciphers() if c["protocol"] == "TLSv1.2"]


def test_context_defaults(certs: Certs) -> None:
    """uvicorn's defaults for the client check; the cipher list is Python's own
    (no set_ciphers call), so TLS 1.2 has its ECDHE AES-GCM suites."""
    ctx = create_ssl_context(certs.certfile, certs.keyfile)
    assert ctx.verify_mode == ssl.CERT_NONE
    assert ctx.protocol == ssl.PROTOCOL_TLS_SERVER
    assert tls12_suites(ctx) == tls12_suites(ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER))
    assert any(name.startswith("ECDHE-") and "GCM" in name for name in tls12_suites(ctx))
    restricted = create_ssl_context(certs.certfile, certs.keyfile, ciphers="ECDHE+AESGCM")
    assert tls12_suites(restricted) and all("GCM" in n for n in tls12_suites(restricted))
    required = create_ssl_context(certs.certfile, certs.keyfile, cert_reqs=2,
                                  ca_certs=certs.ca_file)
    assert required.verify_mode == ssl.CERT_REQUIRED


# -- the command line ----------------------------------------------------------


def test_cli_serves_https(certs: Certs) -> None:
    """`carpinus --ssl-certfile --ssl-keyfile` in a real process: https in the log,
    a verified request with the trustme CA."""
    spawner = Spawner()
    try:
        server = spawner.start("tests.support.process_apps:app",
                               "--ssl-certfile", str(certs.certfile),
                               "--ssl-keyfile", str(certs.keyfile), tcp="port")
        assert f"https://127.0.0.1:{server.port}" in server.output
        with httpx.Client(verify=certs.client_ctx, timeout=10) as client:
            r = client.get(f"https://127.0.0.1:{server.port}/scope")
        assert r.status_code == 200
        assert r.json()["scheme"] == "https"
    finally:
        spawner.close()


def test_cli_rejects_unreadable_certificate(tmp_path: Path) -> None:
    from tests.support.processes import run_cli

    result = run_cli("tests.support.process_apps:app", "--ssl-certfile", str(tmp_path / "none.pem"))
    assert result.returncode == 2
    assert "cannot read the certificate" in result.stderr


def test_cli_rejects_cipher_string_that_selects_nothing(certs: Certs) -> None:
    from tests.support.processes import run_cli

    result = run_cli("tests.support.process_apps:app", "--ssl-certfile", str(certs.certfile),
                     "--ssl-keyfile", str(certs.keyfile), "--ssl-ciphers", "NO-SUCH-CIPHER")
    assert result.returncode == 2
    assert "ssl_ciphers 'NO-SUCH-CIPHER' selects no cipher" in result.stderr
