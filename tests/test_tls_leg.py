"""The certificates of the TLS leg (tests/support/tls_leg.py) when trustme
is missing: the openssl command's CA and server certificate pass a default
client context's checks (VERIFY_X509_STRICT on 3.13+) for both names, as
trustme's do -- so that the free-threaded leg (`make test-ft`, where trustme's
cryptography does not build) serves HTTPS the same way."""

from __future__ import annotations

import ssl
from pathlib import Path

import httpx
import pytest

from tests.support import apps
from tests.support.clients import RawClient
from tests.support.tls_leg import openssl_certificates


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_openssl_certificates_verify(serve, tmp_path: Path, host: str) -> None:
    certs = openssl_certificates(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ca.pem", "cert.pem", "key.pem"]
    handle = serve(apps.echo_scope, ssl_certfile=certs.certfile, ssl_keyfile=certs.keyfile)
    with httpx.Client(verify=certs.client_context) as client:
        answer = client.get(f"https://{host}:{handle.port}/")
    assert answer.status_code == 200
    assert answer.json()["scheme"] == "https"


def test_openssl_certificates_are_refused_by_a_stranger(serve, tmp_path: Path) -> None:
    """The check is real: a context that trusts another CA refuses the server."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    certs = openssl_certificates(tmp_path / "a")
    other = openssl_certificates(tmp_path / "b")
    handle = serve(apps.echo_scope, ssl_certfile=certs.certfile, ssl_keyfile=certs.keyfile)
    with pytest.raises(ssl.SSLCertVerificationError):
        RawClient(handle.host, handle.port, tls=other.client_context).request()
