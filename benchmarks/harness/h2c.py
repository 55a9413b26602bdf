"""One HTTP/2 cleartext request with curl: the h2 workloads' probe and readiness check.

h2load reports status codes but never a body, so each h2 measurement starts,
like the HTTP/1.1 ones, by sending its request once and checking the answer.
curl speaks h2c with prior knowledge (`--http2-prior-knowledge`, the same
connection preface h2load sends) and reports the HTTP version it used, which
catches a server that somehow answered in HTTP/1.1.  A server that serves
HTTP/2 only (granian `--http 2`) cannot be polled with http.client for
readiness either: `answers_200` here does that poll over h2c.
"""

from __future__ import annotations

import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from harness.wrk import client_env

# Between the body and this trailer curl prints "<status> <http version>".
WRITE_OUT_MARKER = "\nCARPINUS_H2C "


@dataclass(frozen=True)
class H2cAnswer:
    status: int
    http_version: str
    body: bytes


class H2cFailed(RuntimeError):
    pass


def request(host: str, port: int, method: str, path: str,
            headers: tuple[tuple[str, str], ...] = (), body: bytes = b"",
            timeout_s: float = 10) -> H2cAnswer:
    """Send one request over h2c prior knowledge; the answer, or H2cFailed."""
    command = ["curl", "--silent", "--show-error", "--http2-prior-knowledge",
               "--max-time", str(timeout_s), "--request", method,
               "--write-out", WRITE_OUT_MARKER + "%{http_code} %{http_version}"]
    for name, value in headers:
        command += ["--header", f"{name}: {value}"]
    with tempfile.TemporaryDirectory(prefix="carpinus-h2c-") as tmp:
        if body:
            body_path = Path(tmp) / "body"
            body_path.write_bytes(body)
            command += ["--data-binary", f"@{body_path}"]
        command.append(f"http://{host}:{port}{path}")
        try:
            done = subprocess.run(command, capture_output=True, timeout=timeout_s + 5,
                                  env=client_env(), check=False)
        except subprocess.TimeoutExpired:
            raise H2cFailed(f"curl got no answer within {timeout_s + 5:.0f} s") from None
    if done.returncode != 0:
        raise H2cFailed(f"curl exited with {done.returncode}: "
                        f"{done.stderr.decode(errors='replace').strip()}")
    answer, _, trailer = done.stdout.rpartition(WRITE_OUT_MARKER.encode())
    status, _, version = trailer.decode().partition(" ")
    return H2cAnswer(int(status), version.strip(), answer)


def answers_200(host: str, port: int) -> bool:
    """`GET /` over h2c answered 200: the readiness poll for HTTP/2-only servers."""
    try:
        return request(host, port, "GET", "/", timeout_s=2).status == 200
    except H2cFailed:
        return False


def probe(host: str, port: int, method: str, path: str, headers: tuple[tuple[str, str], ...],
          body: bytes, expected_body: bytes | None) -> str | None:
    """Send the request once over h2c and check it; the problem found, or None."""
    try:
        answer = request(host, port, method, path, headers, body)
    except H2cFailed as exc:
        return f"h2c {method} {path} failed: {exc}"
    if answer.http_version != "2":
        return f"h2c {method} {path} was answered in HTTP/{answer.http_version}, not HTTP/2"
    if answer.status != 200:
        return f"h2c {method} {path} answered {answer.status}, expected 200"
    if expected_body is not None and answer.body != expected_body:
        return f"h2c {method} {path} answered {answer.body[:80]!r}, expected {expected_body!r}"
    return None
