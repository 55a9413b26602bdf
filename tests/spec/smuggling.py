"""Request smuggling: framing tricks, each rejected or framed exactly.

Two tables:

  SMUGGLING  Content-Length against Transfer-Encoding (CL.TE, TE.CL and their
             obfuscations) and chunked bodies that hide a request: every one
             is rejected, and the request hidden in it (SMUGGLED) never runs;
  VECTORS    the vectors of the smuggling campaign that had no row elsewhere:
             rejected, or valid HTTP/1.1 (however odd it looks) that is framed
             exactly -- the server-level test sends each followed by NEXT and
             checks that the responses are exactly the expected ones.

COVERED_ELSEWHERE names the campaign's other vectors and the row that covers
each.
"""

from __future__ import annotations

from tests.spec.rows import (
    CHUNKED_POST,
    GET,
    HELLO,
    POST,
    SMUGGLED,
    Accepted,
    H,
    Rejected,
    accept,
    reject,
    reject_chunks,
    section,
)

# What the server-level test pipelines behind every vector.
NEXT = b"GET /next HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"


def _te_cl() -> bytes:
    # The front end uses TE: one chunk that hides the smuggled request; the
    # back end uses CL: the body is just the size line, and the chunk data is
    # read as the next request.
    size_line = b"%x\r\n" % len(SMUGGLED)
    return (POST + b"Content-Length: %d\r\n" % len(size_line)
            + b"Transfer-Encoding: chunked\r\n\r\n" + size_line + SMUGGLED + b"\r\n0\r\n\r\n")


def _cl_te(te_line: bytes) -> bytes:
    # The front end uses CL: everything is body; the back end uses TE: the body
    # ends at "0\r\n\r\n" and the smuggled request follows.
    body = b"0\r\n\r\n" + SMUGGLED
    return POST + b"Content-Length: %d\r\n" % len(body) + te_line + b"\r\n" + body


def _chunks(name: str, body: bytes, why: str, *, data: bytes = b"", rfc: str = "") -> Rejected:
    return reject_chunks(name, CHUNKED_POST, body, 400, why, data=data, rfc=rfc)


SMUGGLING: list[Rejected] = section("RFC 9112 6.1", [
    reject("cl-te", _cl_te(b"Transfer-Encoding: chunked\r\n"), 400,
           "CL.TE: a front end that frames by Content-Length passes the hidden request on "
           "as body", "RFC 9112 6.3"),
    reject("te-cl", _te_cl(), 400,
           "TE.CL: a front end that frames by Transfer-Encoding passes it on as chunk data",
           "RFC 9112 6.3"),
    reject("cl-te-xchunked", _cl_te(b"Transfer-Encoding: xchunked\r\n"), 400,
           "CL.TE with a coding a front end may not know: still both fields"),
    reject("cl-te-space-before-colon", _cl_te(b"Transfer-Encoding : chunked\r\n"), 400,
           "a TE field some front ends do not see", "RFC 9112 5.1"),
    reject("cl-te-tab-ows", _cl_te(b"Transfer-Encoding:\tchunked\r\n"), 400,
           "HTAB before the value (valid OWS): still both fields"),
    reject("cl-te-second-te-field", _cl_te(b"Transfer-Encoding: chunked\r\n"
                                          b"Transfer-Encoding: x\r\n"), 400,
           "a second TE field a front end may read instead"),
    reject("cl-te-obs-fold", _cl_te(b"X: y\r\n Transfer-Encoding: chunked\r\n"), 400,
           "a TE field folded into the line before", "RFC 9112 5.2"),
    reject("cl-te-leading-space", _cl_te(b" Transfer-Encoding: chunked\r\n"), 400,
           "likewise, a TE line starting with SP", "RFC 9112 5.2"),
    reject("cl-te-bare-lf", _cl_te(b"X: y\nTransfer-Encoding: chunked\r\n"), 400,
           "a TE field after a bare LF: a line to one parser, part of a value to another",
           "RFC 9112 2.2"),
    reject("cl-te-lf-in-name", _cl_te(b"Transfer-Encoding\n: chunked\r\n"), 400,
           "a bare LF inside the TE field", "RFC 9112 2.2"),
    reject("cl-cl", POST + b"Content-Length: 0\r\nContent-Length: %d\r\n\r\n" % len(SMUGGLED)
           + SMUGGLED, 400, "CL.CL: two lengths, the hidden request in the longer",
           "RFC 9112 6.3"),
    # The head is fine, so the app may run once for "/" (or not at all, when the
    # bad body arrives with the head and is refused before the app starts), but
    # never for the smuggled request.
    _chunks("chunk-data-without-crlf", b"5\r\nhelloXX0\r\n\r\n" + SMUGGLED,
            "chunk data not followed by CRLF (h11 CVE-2025-43859)", data=b"hello"),
    _chunks("chunk-size-wraps-64-bits", b"10000000000000005\r\nhello\r\n0\r\n\r\n" + SMUGGLED,
            "a size that is 5 in a 64-bit accumulator"),
    _chunks("chunk-ext-bare-lf", b"5;x\nhello\r\n0\r\n\r\n" + SMUGGLED,
            "a bare LF ending a size line with an extension", rfc="RFC 9112 2.2"),
])

VECTORS: list[Accepted | Rejected] = [
    # -- TE.TE: Transfer-Encoding obfuscations, alone (no Content-Length) ----
    *section("RFC 9112 6.1", [
        accept("te-leading-space-value", POST + b"Transfer-Encoding:  chunked\r\n\r\n" + HELLO,
               framing="chunked", data=b"hello", rfc="RFC 9110 5.5",
               why="OWS around a field value is not part of it"),
        accept("te-leading-tab-value", POST + b"Transfer-Encoding:\tchunked\r\n\r\n" + HELLO,
               framing="chunked", data=b"hello", rfc="RFC 9110 5.5", why="HTAB is OWS too"),
        accept("te-trailing-tab-value", POST + b"Transfer-Encoding: chunked\t\r\n\r\n" + HELLO,
               framing="chunked", data=b"hello", rfc="RFC 9110 5.5", why="trailing OWS"),
        reject("te-chunked-identity", POST + b"Transfer-Encoding: chunked, identity\r\n\r\n"
               + HELLO + SMUGGLED, 501,
               "identity is not a transfer coding any more (RFC 9112 7); chunked not last"),
        reject("te-identity-chunked", POST + b"Transfer-Encoding: identity, chunked\r\n\r\n"
               + HELLO + SMUGGLED, 501, "unknown coding before chunked"),
        reject("te-chunked-then-identity-field", POST + b"Transfer-Encoding: chunked\r\n"
               b"Transfer-Encoding: identity\r\n\r\n0\r\n\r\n" + SMUGGLED, 501,
               "two fields are one list: chunked, identity"),
        reject("te-chunkedx", POST + b"Transfer-Encoding: chunkedx\r\n\r\n0\r\n\r\n" + SMUGGLED,
               501, "a different token, not chunked"),
        reject("te-quoted", POST + b"Transfer-Encoding: \"chunked\"\r\n\r\n0\r\n\r\n" + SMUGGLED,
               400, "a quoted string is not a transfer coding"),
        reject("te-vertical-tab", POST + b"Transfer-Encoding: chunked\x0b\r\n\r\n0\r\n\r\n"
               + SMUGGLED, 400, "VT is a control character, not OWS", "RFC 9110 5.5"),
        reject("te-nul", POST + b"Transfer-Encoding: chun\x00ked\r\n\r\n0\r\n\r\n" + SMUGGLED, 400,
               "NUL in a field value", "RFC 9110 5.5"),
        reject("te-space-before-colon-alone", POST + b"Transfer-Encoding : chunked\r\n\r\n"
               b"0\r\n\r\n" + SMUGGLED, 400, "whitespace before the colon", "RFC 9112 5.1"),
        accept("te-underscore-name", POST + b"Transfer_Encoding: chunked\r\n\r\n0\r\n\r\n",
               after_status=400, rfc="RFC 9110 5.1",
               why="an unknown field, so no body: the would-be chunk '0' is the next request "
                   "line, which is malformed -- the same reading a strict front end makes"),
        reject("cl-te-identity", POST + b"Content-Length: 5\r\nTransfer-Encoding: identity\r\n"
               b"\r\nhello" + SMUGGLED, 400, "Content-Length with Transfer-Encoding",
               "RFC 9112 6.3"),
    ]),
    # -- Content-Length ----------------------------------------------------
    *section("RFC 9110 8.6", [
        accept("cl-ows-around", POST + b"Content-Length:  5 \t\r\n\r\nhello", framing=5,
               rfc="RFC 9110 5.5", why="OWS"),
        reject("cl-minus-zero", POST + b"Content-Length: -0\r\n\r\n" + SMUGGLED, 400,
               "1*DIGIT: no sign"),
        reject("cl-exponent", POST + b"Content-Length: 1e1\r\n\r\nhelloworld" + SMUGGLED, 400,
               "1*DIGIT"),
        reject("cl-space-before-colon", POST + b"Content-Length : 5\r\n\r\nhello" + SMUGGLED,
               400, "whitespace before the colon", "RFC 9112 5.1"),
        reject("cl-underscore-digits", POST + b"Content-Length: 1_0\r\n\r\nhelloworld"
               + SMUGGLED, 400, "1*DIGIT"),
        accept("cl-on-get", GET + H + b"Content-Length: 5\r\n\r\nhello", framing=5,
               rfc="RFC 9110 9.3.1", why="a GET may have a body; it is framed like any other"),
        accept("chunked-on-get", GET + H + b"Transfer-Encoding: chunked\r\n\r\n" + HELLO,
               framing="chunked", data=b"hello", rfc="RFC 9110 9.3.1", why="likewise"),
        accept("cl-in-trailer-ignored", CHUNKED_POST + b"5\r\nhello\r\n0\r\nContent-Length: 100"
               b"\r\n\r\n", framing="chunked", data=b"hello", rfc="RFC 9112 7.1.2",
               why="trailer fields never frame the message"),
    ]),
    # -- chunk-size tricks ---------------------------------------------------
    *section("RFC 9112 7.1", [
        _chunks("chunk-size-plus", b"+5\r\nhello\r\n0\r\n\r\n" + SMUGGLED,
                "chunk-size = 1*HEXDIG"),
        _chunks("chunk-size-16-f", b"ffffffffffffffff\r\nhello\r\n0\r\n\r\n" + SMUGGLED,
                "over 2^62: a size no body can have"),
        _chunks("chunk-size-nul", b"5\x00\r\nhello\r\n0\r\n\r\n" + SMUGGLED, "NUL after the size"),
        _chunks("chunk-size-underscore", b"1_0\r\n" + b"x" * 16 + b"\r\n0\r\n\r\n" + SMUGGLED,
                "1*HEXDIG"),
        accept("chunk-ext-empty-name", CHUNKED_POST + b"5;\r\nhello\r\n0\r\n\r\n",
               framing="chunked", data=b"hello", rfc="RFC 9112 7.1.1",
               why="extensions are discarded; only their bytes are checked"),
        accept("chunk-ext-quoted-semicolon", CHUNKED_POST + b"5;a=\"x;y\";b=c\r\nhello\r\n"
               b"0\r\n\r\n", framing="chunked", data=b"hello", rfc="RFC 9112 7.1.1",
               why="likewise"),
        accept("chunk-ext-4000-bytes", CHUNKED_POST + b"5;" + b"e" * 4000 + b"\r\nhello\r\n"
               b"0\r\n\r\n", framing="chunked", data=b"hello", rfc="RFC 9112 7.1.1",
               why="a size line within CP_CHUNK_LINE_MAX (4096)"),
        _chunks("chunk-ext-5000-bytes", b"5;" + b"e" * 5000 + b"\r\nhello\r\n0\r\n\r\n"
                + SMUGGLED, "a size line over CP_CHUNK_LINE_MAX: extensions cannot be used "
                "to make the server buffer without bound"),
        _chunks("chunk-ext-nul", b"5;a=\x00\r\nhello\r\n0\r\n\r\n" + SMUGGLED,
                "control character in an extension"),
        _chunks("chunk-ext-bare-cr", b"5;a\rb\r\nhello\r\n0\r\n\r\n" + SMUGGLED, "bare CR",
                rfc="RFC 9112 2.2"),
        _chunks("last-chunk-then-request", b"5\r\nhello\r\n0\r\n" + SMUGGLED,
                "without the final CRLF the request line is read as a trailer field, which "
                "has no colon", data=b"hello"),
        _chunks("chunk-data-bare-cr-lf", b"5\r\nhello\r0\r\n\r\n" + SMUGGLED,
                "chunk data must be followed by CRLF exactly (h11 CVE-2025-43859)",
                data=b"hello"),
    ]),
    # -- obs-fold and line endings in the middle of framing fields ------------
    reject("cl-obs-fold", POST + b"Content-Length:\r\n 5\r\n\r\nhello" + SMUGGLED, 400,
           "obs-fold", "RFC 9112 5.2"),
    reject("te-obs-fold-value", POST + b"Transfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n"
           + SMUGGLED, 400, "obs-fold", "RFC 9112 5.2"),
    reject("cl-bare-cr-value", POST + b"Content-Length: 5\r0\r\n\r\nhello" + SMUGGLED, 400,
           "bare CR", "RFC 9112 2.2"),
    # -- the connection ends where it says it ends ---------------------------
    accept("chunked-with-connection-close", POST + b"Transfer-Encoding: chunked\r\n"
           b"Connection: close\r\n\r\n" + HELLO, framing="chunked", data=b"hello",
           flags={"close"}, rfc="RFC 9112 9.6",
           why="nothing after a request with Connection: close is read"),
]

# Vectors of the campaign that have a row in another table:
# vector -> (table, row name).
COVERED_ELSEWHERE: dict[str, tuple[str, str]] = {
    "CL.TE": ("SMUGGLING", "cl-te"),
    "TE.CL": ("SMUGGLING", "te-cl"),
    "Transfer-Encoding: xchunked": ("SMUGGLING", "cl-te-xchunked"),
    "Transfer-Encoding: xchunked (alone)": ("REJECTED", "te-xchunked"),
    "Transfer-Encoding: chunked, gzip": ("REJECTED", "te-chunked-gzip"),
    "TE with HTAB before the value, with CL": ("SMUGGLING", "cl-te-tab-ows"),
    "TE line starting with a space": ("SMUGGLING", "cl-te-leading-space"),
    "space before the colon, with CL": ("SMUGGLING", "cl-te-space-before-colon"),
    "a second TE field": ("SMUGGLING", "cl-te-second-te-field"),
    "duplicated TE (list)": ("REJECTED", "te-chunked-twice-list"),
    "duplicated TE (fields)": ("REJECTED", "te-chunked-twice-fields"),
    "chunked with parameters": ("REJECTED", "te-chunked-with-params"),
    "TE in HTTP/1.0": ("REJECTED", "te-in-http10"),
    "upper-case chunked": ("ACCEPTED", "te-upper"),
    "duplicate CL, differing": ("SMUGGLING", "cl-cl"),
    "duplicate CL, equal": ("ACCEPTED", "cl-two-equal-fields"),
    "CL list, differing": ("REJECTED", "cl-list-differs"),
    "CL with a plus sign": ("REJECTED", "cl-plus"),
    "CL negative": ("REJECTED", "cl-negative"),
    "CL with leading zeros": ("ACCEPTED", "cl-leading-zeros"),
    "CL with an inner space": ("REJECTED", "cl-two-numbers"),
    "CL in hex": ("REJECTED", "cl-hex"),
    "CL overflowing 64 bits": ("REJECTED", "cl-2-pow-64-plus-5"),
    "chunk size 0x10": ("REJECTED", "chunk-size-0x"),
    "chunk size negative": ("REJECTED", "chunk-size-negative"),
    "chunk size with leading space": ("REJECTED", "chunk-size-leading-space"),
    "chunk size with trailing space": ("REJECTED", "chunk-size-trailing-space"),
    "chunk size with 17 digits": ("REJECTED", "chunk-size-17-digits"),
    "chunk size wrapping 64 bits": ("SMUGGLING", "chunk-size-wraps-64-bits"),
    "chunk size zero-padded": ("ACCEPTED", "chunk-size-zero-padded"),
    "chunk extension with bare LF": ("SMUGGLING", "chunk-ext-bare-lf"),
    "chunk extension with a control character": ("REJECTED", "chunk-ext-ctl"),
    "chunk data without CRLF": ("SMUGGLING", "chunk-data-without-crlf"),
    "bare LF in the head": ("SMUGGLING", "cl-te-bare-lf"),
    "bare LF in a field name": ("SMUGGLING", "cl-te-lf-in-name"),
    "bare CR in a field": ("REJECTED", "bare-cr-field"),
    "bare LF after the chunk size": ("REJECTED", "chunk-bare-lf-size"),
    "bare CR after the chunk size": ("REJECTED", "chunk-bare-cr-size"),
    "NUL in a field value": ("REJECTED", "value-nul"),
    "NUL in the target": ("REJECTED", "target-nul"),
    "obs-fold": ("SMUGGLING", "cl-te-obs-fold"),
    "obs-fold in a trailer": ("REJECTED", "trailer-obs-fold"),
}
