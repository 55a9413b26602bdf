"""The HTTP/2 command-line clients the tests run: curl (Debian's is built with
nghttp2) and h2load (nghttp2-client), each over h2c with prior knowledge or,
in the TLS leg, over TLS trusting the leg's CA."""

from __future__ import annotations

import shutil
import ssl
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

from tests.support.processes import tool_env

if TYPE_CHECKING:
    from tests.support.servers import ServerHandle


def ca_file(handle: ServerHandle, directory: Path) -> Path | None:
    """The CAs the handle's client context trusts, as a PEM file (None: cleartext)."""
    if handle.tls is None:
        return None
    path = directory / "h2-ca.pem"
    path.write_text("".join(ssl.DER_cert_to_PEM_cert(der)
                            for der in handle.tls.get_ca_certs(binary_form=True)))
    return path


def curl_command(handle: ServerHandle, directory: Path, path: str) -> list[str]:
    curl = shutil.which("curl")
    assert curl is not None, "curl is not installed"
    ca = ca_file(handle, directory)
    how = ["--http2-prior-knowledge"] if ca is None else ["--http2", "--cacert", str(ca)]
    return [curl, "-sS", "--max-time", "20", *how, handle.url + path]


def curl_process(handle: ServerHandle, directory: Path, path: str,
                 *extra: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([*curl_command(handle, directory, path), *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=tool_env())


def h2load_command(handle: ServerHandle, path: str, *options: str) -> list[str]:
    h2load = shutil.which("h2load")
    assert h2load is not None, "h2load (Debian nghttp2-client) is not installed"
    # h2load verifies no certificate: the TLS leg's self-made CA is fine
    return [h2load, *options, handle.url + path]
