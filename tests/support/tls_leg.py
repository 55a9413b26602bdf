"""The TLS leg of the suite: `make test-tls`, i.e. CARPINUS_TEST_TLS=1.

With the variable set, every server the behavioural tests start without TLS
options of their own (run_server, and carpinus processes started by a
Spawner) serves HTTPS with a certificate issued by a trustme CA made once per
test session, and the clients those tests use (RawClient, httpx through
ServerHandle.http_client, websockets through ws_clients.connect_ws) trust that
CA.  The same tests then show that the C protocol behaves the same behind the
event loop's TLS transport (asyncio's and uvloop's) as on a bare socket.

tests/conftest.py picks the tests of the leg and skips those marked
`tcp_only`, whose point is something TLS cannot show the same way.
"""

from __future__ import annotations

import atexit
import functools
import os
import shutil
import ssl
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Why a test that needs trustme itself is skipped where it is missing.
NO_TRUSTME = "trustme's cryptography has no free-threaded 3.13 build (make test-ft)"

ENABLED = os.environ.get("CARPINUS_TEST_TLS", "") not in ("", "0")


@dataclass(frozen=True)
class Certificates:
    """PEM files for a server on 127.0.0.1 / localhost, and the CA that issued them."""

    certfile: str
    keyfile: str
    ca_file: str

    @functools.cached_property
    def client_context(self) -> ssl.SSLContext:
        """Python's default client context, trusting only the session CA.  One
        context for every client: contexts are safe to share between threads."""
        return ssl.create_default_context(cafile=self.ca_file)


def issue_certificates(directory: Path) -> tuple[Any, Certificates]:
    """A new CA and a server certificate for 127.0.0.1 / localhost, written
    as PEM files into `directory`: (the trustme CA, the files).

    Without trustme (it needs cryptography, which has no build for the
    free-threaded 3.13 of `make test-ft`) the openssl command issues the
    same pair of certificates, and the CA object is None."""
    try:
        import trustme  # a test dependency; imported here so the fuzz tools need not have it
    except ImportError:
        return None, openssl_certificates(directory)

    ca = trustme.CA()
    leaf = ca.issue_cert("127.0.0.1", "localhost")
    certfile, keyfile, ca_file = (directory / n for n in ("cert.pem", "key.pem", "ca.pem"))
    certfile.write_bytes(b"".join(blob.bytes() for blob in leaf.cert_chain_pems))
    leaf.private_key_pem.write_to_path(str(keyfile))
    ca.cert_pem.write_to_path(str(ca_file))
    return ca, Certificates(str(certfile), str(keyfile), str(ca_file))


# The extensions a default client context (VERIFY_X509_STRICT since 3.13)
# asks of a CA and of the leaf it issued, as trustme writes them.
CA_EXTENSIONS = ("basicConstraints=critical,CA:TRUE", "keyUsage=critical,keyCertSign,cRLSign",
                 "subjectKeyIdentifier=hash")
LEAF_EXTENSIONS = ("basicConstraints=critical,CA:FALSE",
                   "keyUsage=critical,digitalSignature,keyEncipherment",
                   "extendedKeyUsage=serverAuth,clientAuth",
                   "subjectAltName=IP:127.0.0.1,DNS:localhost",
                   "subjectKeyIdentifier=hash", "authorityKeyIdentifier=keyid")


def openssl_certificates(directory: Path) -> Certificates:
    """A CA and a server certificate for 127.0.0.1 / localhost made by the
    openssl command (EC P-256 keys, valid for a day)."""
    certfile, keyfile, ca_file = (directory / n for n in ("cert.pem", "key.pem", "ca.pem"))
    ca_key, request, extensions = (directory / n for n in ("ca.key", "cert.csr", "cert.ext"))
    new_key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    ca_extensions = [arg for ext in CA_EXTENSIONS for arg in ("-addext", ext)]
    extensions.write_text("\n".join(LEAF_EXTENSIONS) + "\n")
    serial = str(int.from_bytes(os.urandom(8), "big"))
    for command in (
        ["req", "-x509", *new_key, "-keyout", ca_key, "-out", ca_file, "-days", "1",
         "-subj", "/O=carpinus tests/CN=carpinus test CA", *ca_extensions],
        ["req", *new_key, "-keyout", keyfile, "-out", request, "-subj", "/CN=localhost"],
        ["x509", "-req", "-in", request, "-CA", ca_file, "-CAkey", ca_key, "-set_serial", serial,
         "-days", "1", "-out", certfile, "-extfile", extensions],
    ):
        subprocess.run(["openssl", *map(str, command)], check=True, capture_output=True)
    for scratch in (ca_key, request, extensions):
        scratch.unlink()
    return Certificates(str(certfile), str(keyfile), str(ca_file))


@functools.cache
def session_certificates() -> Certificates:
    """Made on first use and removed when the test process exits."""
    directory = Path(tempfile.mkdtemp(prefix="carpinus-tls-leg-"))
    atexit.register(shutil.rmtree, directory, ignore_errors=True)
    return issue_certificates(directory)[1]


def leg_certificates() -> Certificates | None:
    """The session's certificates in the TLS leg, None in the others."""
    return session_certificates() if ENABLED else None
