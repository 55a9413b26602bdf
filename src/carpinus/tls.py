"""TLS: the ssl.SSLContext for --ssl-certfile and friends (uvicorn's options).

The context is handed to loop.create_server(ssl=...), so the event loop's own
TLS transport (asyncio's or uvloop's) wraps the socket; the C protocol sees
plain bytes through the same BufferedProtocol interface and reports scheme
"https" because the transport carries an `sslcontext`.
"""

from __future__ import annotations

import os
import ssl

# uvicorn's defaults: a server-side context, no client certificate asked for.
SSL_PROTOCOL_VERSION = int(ssl.PROTOCOL_TLS_SERVER)
SSL_CERT_REQS = int(ssl.CERT_NONE)
# No cipher string unless one is given: the context keeps the list Python's
# ssl module sets for OpenSSL (ECDHE with AES-GCM or ChaCha20 first).  The old
# default, uvicorn's "TLSv1", left only SHA-1 CBC suites for TLS 1.2, which
# a client with Python >= 3.10's defaults refuses: a TLS 1.2 client could not
# connect at all.  uvicorn (Kludex/uvicorn#2940) and gunicorn (#1970) dropped
# it too.
SSL_CIPHERS: str | None = None

CERT_REQS_NAMES = {0: "CERT_NONE", 1: "CERT_OPTIONAL", 2: "CERT_REQUIRED"}


class TLSConfigError(ValueError):
    """The TLS options do not make a usable context (the message says why)."""


class _MissingPassword(Exception):
    pass


def create_ssl_context(
    certfile: str | os.PathLike[str],
    keyfile: str | os.PathLike[str] | None = None,
    password: str | None = None,
    ssl_version: int = SSL_PROTOCOL_VERSION,
    cert_reqs: int = SSL_CERT_REQS,
    ca_certs: str | os.PathLike[str] | None = None,
    ciphers: str | None = SSL_CIPHERS,
    alpn: tuple[str, ...] = ("http/1.1",),
) -> ssl.SSLContext:
    """A server context with the certificate chain loaded.  Raises
    TLSConfigError with a message a person can act on."""
    if cert_reqs not in CERT_REQS_NAMES:
        raise TLSConfigError(
            f"ssl_cert_reqs must be 0 (none), 1 (optional) or 2 (required), got {cert_reqs!r}"
        )
    if cert_reqs != ssl.CERT_NONE and not ca_certs:
        raise TLSConfigError(
            f"ssl_cert_reqs={cert_reqs} ({CERT_REQS_NAMES[cert_reqs]}) checks client "
            "certificates against ssl_ca_certs, which is not set"
        )
    try:
        ctx = ssl.SSLContext(ssl_version)
    except (ValueError, OSError) as exc:
        raise TLSConfigError(f"ssl_version {ssl_version!r} is not usable: {exc}") from None

    def get_password() -> str:
        # Without a password OpenSSL would prompt on the terminal, once per
        # worker: refuse instead, with the option to use.
        if password is None:
            raise _MissingPassword
        return password

    try:
        ctx.load_cert_chain(certfile, keyfile, get_password)
    except _MissingPassword:
        raise TLSConfigError(
            f"the key in {os.fspath(keyfile or certfile)!r} is encrypted: "
            "give its password with --ssl-keyfile-password"
        ) from None
    except FileNotFoundError as exc:
        raise TLSConfigError(f"cannot read the certificate or key: {exc}") from None
    except (ssl.SSLError, OSError) as exc:
        what = "certificate/key" if password is None else "certificate/key or password"
        raise TLSConfigError(
            f"cannot load the {what} from ssl_certfile={os.fspath(certfile)!r}"
            f"{'' if keyfile is None else f', ssl_keyfile={os.fspath(keyfile)!r}'}: {exc}"
        ) from None
    ctx.verify_mode = ssl.VerifyMode(cert_reqs)
    if ca_certs:
        try:
            ctx.load_verify_locations(ca_certs)
        except (ssl.SSLError, OSError) as exc:
            raise TLSConfigError(
                f"cannot load CA certificates from ssl_ca_certs={os.fspath(ca_certs)!r}: {exc}"
            ) from None
    if ciphers:
        try:
            ctx.set_ciphers(ciphers)
        except ssl.SSLError as exc:
            raise TLSConfigError(f"ssl_ciphers {ciphers!r} selects no cipher: {exc}") from None
    # What --http serves, in our order of preference ("h2" first): a client
    # that offers both gets HTTP/2, one that offers neither still gets HTTP/1.1.
    ctx.set_alpn_protocols(list(alpn))
    return ctx
