"""Differential parsing: one corpus through carpinus, h11 and httptools.

    python -m fuzz.differential             table of every input, disagreements marked
    python -m fuzz.differential --markdown  the disagreement table for docs/reliability.md
    python -m fuzz.differential --write     re-pin fuzz/differential.json

(from the project root, like every script of the fuzz package)

The corpus is every request of the request spec (tests/spec/: the rejected,
accepted and smuggling rows) plus the seed corpus of the parser fuzz target
(fuzz/corpus/parser/, minus the three bytes that pick limits: here every
parser runs with its default limits).

Each parser gets the whole input as if it had arrived at once followed by the
client's end of stream, and its verdict is written as one token per request:

    ok          a complete request, handed to the application
    reject      a protocol error (carpinus: the status it answers, e.g. reject:400)
    incomplete  the input ended inside a request
    closed      the connection ends by the rules (Connection: close, HTTP/1.0)
                while bytes are left

carpinus runs for real -- the C protocol with a fake transport (harness.py)
and an app that reads each body and answers -- and h11 and httptools run as
libraries, fed the same bytes.  Where the verdicts differ (reject statuses are
compared as "reject"), or where all accept but see different requests
(method, target or body), the input is a disagreement; every one needs an
entry in REASONS saying why ours is right, and the test
tests/protocols/http/test_differential.py fails on any new one.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fuzz.harness import Options, parse_responses, run_stream
from tests.spec import ACCEPTED, REJECTED, SMUGGLING, VECTORS

HERE = Path(__file__).resolve().parent

PIN_FILE = HERE / "differential.json"

Request = tuple[bytes, bytes, bytes]  # method, target, body


@dataclass
class Verdict:
    tokens: list[str]
    requests: list[Request]

    @property
    def text(self) -> str:
        return " ".join(self.tokens) if self.tokens else "-"

    @property
    def coarse(self) -> str:
        return " ".join(t.split(":")[0] for t in self.tokens) if self.tokens else "-"


# ---------------------------------------------------------------------------
# The corpus
# ---------------------------------------------------------------------------


def corpus() -> Iterator[tuple[str, bytes]]:
    for row in REJECTED:
        yield f"rejections/{row.name}", row.raw
    for accepted in ACCEPTED:
        yield f"accepted/{accepted.name}", accepted.raw
    for smuggling in SMUGGLING:
        yield f"smuggling/{smuggling.name}", smuggling.raw
    for vector in VECTORS:
        yield f"vectors/{vector.name}", vector.raw
    for path in sorted((HERE / "corpus" / "parser").iterdir()):
        if not path.name.startswith("hostile_"):  # those are the tables above again
            yield f"corpus/{path.name}", path.read_bytes()[3:]


# ---------------------------------------------------------------------------
# The three parsers
# ---------------------------------------------------------------------------

_LOOP: asyncio.AbstractEventLoop | None = None


def carpinus_verdict(data: bytes) -> Verdict:
    """The real C protocol, fed one byte per read (so that a close by the
    server shows how much was left unread), with an app that reads each body
    and answers."""
    global _LOOP
    if _LOOP is None:
        _LOOP = asyncio.new_event_loop()
    opts = Options(cuts=list(range(1, len(data))), behaviours=["echo"], ending="eof",
                   yields_per_read=3)
    run, outcome = run_stream(_LOOP, data, opts)
    tokens: list[str] = []
    requests: list[Request] = []
    for req in outcome.seen:
        target = req.raw_path + (b"?" + req.query if req.query else b"")
        if req.body_complete:
            requests.append((req.method.encode(), target, bytes(req.body)))
    for resp in parse_responses(outcome.output, lambda i: outcome.seen[i].method
                                if 0 <= i < len(outcome.seen) else None):
        if resp.status != 100:
            tokens.append("ok" if resp.header(b"x-app") is not None else f"reject:{resp.status}")
    if not tokens or tokens[-1] == "ok":
        state, buffered = run.end_state
        if outcome.closed_by_server:
            if data[run.fed:].strip(b"\r\n"):
                tokens.append("closed")
        elif state == "body" or (state == "head" and buffered > 0) or \
                len(outcome.seen) > len(tokens):
            tokens.append("incomplete")
    return Verdict(tokens, requests)


def origin_form(target: bytes) -> bytes:
    """The path and query of a target as carpinus hands them to the app
    (raw_path and query_string): an absolute-form target loses its scheme and
    authority, and an empty path is "/" (RFC 9112 3.2.1); an empty query is no
    query (ASGI cannot tell "/p?" from "/p")."""
    for scheme in (b"http://", b"https://"):
        if target[:len(scheme)].lower() == scheme:
            rest = target[len(scheme):]
            ends = [i for i in (rest.find(b"/"), rest.find(b"?")) if i >= 0]
            target = rest[min(ends):] if ends else b""
            if not target.startswith(b"/"):
                target = b"/" + target
            break
    return target[:-1] if target.endswith(b"?") else target


def h11_verdict(data: bytes) -> Verdict:
    import h11

    conn = h11.Connection(h11.SERVER)
    conn.receive_data(data)  # no end of stream: h11 would call a cut request an error
    tokens: list[str] = []
    requests: list[Request] = []
    body: list[bytes] = []
    method = target = b""
    while True:
        try:
            event = conn.next_event()
        except h11.RemoteProtocolError as exc:
            tokens.append(f"reject:{exc.error_status_hint}")
            break
        if event is h11.NEED_DATA:
            if conn.their_state is not h11.IDLE or conn.trailing_data[0].strip(b"\r\n"):
                tokens.append("incomplete")
            break
        if event is h11.PAUSED:
            break
        if isinstance(event, h11.Request):
            method, target, body = event.method, origin_form(event.target), []
        elif isinstance(event, h11.Data):
            body.append(bytes(event.data))
        elif isinstance(event, h11.EndOfMessage):
            tokens.append("ok")
            requests.append((method, target, b"".join(body)))
            try:
                conn.send(h11.Response(status_code=200, headers=[("content-length", "0")]))
                conn.send(h11.EndOfMessage())
                conn.start_next_cycle()
            except h11.LocalProtocolError:
                if conn.trailing_data[0].strip(b"\r\n"):
                    tokens.append("closed")
                break
        elif isinstance(event, h11.ConnectionClosed):
            break
    return Verdict(tokens, requests)


class _HttptoolsProtocol:
    def __init__(self) -> None:
        self.parser: Any = None
        self.method = b""
        self.url = b""
        self.body: list[bytes] = []
        self.done: list[tuple[bytes, bytes, bytes]] = []
        self.started = False

    def on_message_begin(self) -> None:
        self.url, self.body, self.started = b"", [], True

    def on_url(self, url: bytes) -> None:
        self.url += url


    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_headers_complete(self) -> None:
        self.method = self.parser.get_method()

    def on_message_complete(self) -> None:
        self.done.append((self.method, origin_form(self.url), b"".join(self.body)))
        self.started = False


def httptools_verdict(data: bytes) -> Verdict:
    import httptools

    proto = _HttptoolsProtocol()
    parser = httptools.HttpRequestParser(proto)
    proto.parser = parser
    error: str | None = None
    try:
        parser.feed_data(data)
    except httptools.HttpParserUpgrade:
        pass
    except httptools.HttpParserError as exc:
        error = str(exc)
    tokens = ["ok"] * len(proto.done)
    if error is not None:
        tokens.append("closed" if "Connection: close" in error else "reject")
    elif proto.started or (not proto.done and data.strip(b"\r\n")):
        tokens.append("incomplete")
    return Verdict(tokens, list(proto.done))


PARSERS = {"carpinus": carpinus_verdict, "h11": h11_verdict, "httptools": httptools_verdict}


# ---------------------------------------------------------------------------
# Why we differ, input by input
# ---------------------------------------------------------------------------

# Every disagreement, grouped by why carpinus does what it does.  RFC numbers:
# 9110 (HTTP semantics), 9112 (HTTP/1.1).
WHY: list[tuple[str, list[str]]] = [
    ("Bare LF as a line ending. RFC 9112 2.2 lets a recipient accept it, but a server that "
     "does while a proxy in front does not sees different lines in the same bytes; we "
     "accept CRLF only (h11 accepts LF: in `cl-te-bare-lf` it even serves the hidden "
     "request).",
     ["rejections/bare-lf-everywhere", "rejections/bare-lf-request-line",
      "rejections/bare-lf-field", "rejections/bare-lf-end-of-head",
      "rejections/bare-lf-leading", "rejections/chunk-bare-lf-final",
      "rejections/trailer-bare-lf", "smuggling/cl-te-bare-lf", "corpus/bare_lf"]),
    ("Bare CR. RFC 9112 2.2: a recipient must reject it or replace it with SP; we reject, "
     "and at once where h11 waits for more -- also when the bytes arrive one at a time: "
     "the connection parses a partial head again as soon as a CR is followed by any byte.",
     ["rejections/cr-cr-lf", "rejections/chunk-final-bare-cr",
      "rejections/bare-cr-end-of-head", "rejections/bare-cr-field-no-lf-yet",
      "rejections/bare-cr-request-line-no-lf-yet"]),
    ("obs-fold. RFC 9112 5.2: a server must reject it with 400 or replace it with SP; "
     "proxies differ on which, so a fold can hide a Transfer-Encoding or change a "
     "Content-Length. We reject (h11 unfolds).",
     ["rejections/obs-fold-space", "rejections/obs-fold-tab", "rejections/trailer-obs-fold",
      "smuggling/cl-te-obs-fold", "vectors/cl-obs-fold", "vectors/te-obs-fold-value",
      "corpus/obs_fold", "corpus/te_leading_space_line"]),
    ("Content-Length and Transfer-Encoding together: the classic CL.TE / TE.CL smuggling "
     "vector. RFC 9112 6.1 lets a server reject it and requires closing after it; we answer "
     "400 and close. h11 frames by Transfer-Encoding and goes on: in the CL.TE rows it "
     "serves the request hidden in the body.",
     ["rejections/cl-and-te", "rejections/te-and-cl", "smuggling/cl-te", "smuggling/te-cl",
      "smuggling/cl-te-tab-ows", "corpus/smuggle_cl_te", "corpus/smuggle_te_cl"]),
    ("Control characters (NUL, CR, 0x01-0x1f, DEL) in a field value or chunk extension. "
     "RFC 9110 5.5: field values are visible characters, SP and HTAB; a CR or NUL passed "
     "on is a response-splitting or truncation hazard downstream. Rejected (h11 accepts).",
     ["rejections/value-ctl-01", "rejections/value-ctl-1f", "rejections/value-esc",
      "rejections/value-del",
      "rejections/chunk-ext-ctl", "vectors/chunk-ext-nul", "vectors/chunk-ext-bare-cr"]),
    ("Request targets. RFC 9112 3.2: origin-form, absolute-form (http or https with an "
     "authority, which must not be empty, RFC 9110 4.2.1; no userinfo, RFC 9110 4.2.4) or "
     "`*` for OPTIONS only; authority-form is CONNECT's, which we do not serve (and "
     "`connect` is not CONNECT: methods are case-sensitive). Anything else has no meaning "
     "for an origin server and may be read differently by a proxy.",
     ["rejections/target-not-slash", "rejections/target-relative-one-byte",
      "rejections/target-asterisk-with-get", "rejections/target-asterisk-not-alone",
      "rejections/target-asterisk-then-letter", "rejections/target-authority-form-with-get",
      "rejections/method-lower-case-connect", "rejections/target-absolute-no-authority",
      "rejections/target-absolute-scheme-only",
      "rejections/target-absolute-empty-authority-query",
      "rejections/target-absolute-no-slashes", "rejections/target-absolute-userinfo",
      "rejections/target-other-scheme"]),
    ("Bytes in a target that RFC 3986 wants percent-encoded (obs-text, `\"`, `{`, `|`, "
     "`\\`, `^`). We check only what reading the request line depends on -- no SP, no "
     "control character, no DEL -- and hand the app the bytes as they came (`raw_path`); "
     "h11 and httptools reject them.",
     ["accepted/target-obs-text-and-punctuation"]),
    ("Methods are tokens, and case-sensitive (RFC 9110 9.1): any token is a method, "
     "handed to the app as it is. httptools (llhttp) knows a fixed list of methods and "
     "rejects the others.",
     ["accepted/method-lower-case-get", "accepted/method-every-tchar",
      "accepted/method-connects", "accepted/method-gets"]),
    ("Host. RFC 9112 3.2: a server must answer 400 to an HTTP/1.1 request with no Host, "
     "and to any request with more than one or an invalid one (httptools does not check; "
     "h11 does not check the value).",
     ["rejections/host-missing-http11", "rejections/host-missing-other-fields",
      "rejections/host-twice", "rejections/host-twice-same", "rejections/host-twice-http10",
      "rejections/host-with-space", "rejections/host-with-slash", "rejections/host-userinfo",
      "rejections/host-list", "corpus/host_duplicate"]),
    ("Request-line syntax. RFC 9112 3: exactly one SP between method, target and version, "
     "and a version is required (HTTP/0.9 is not supported). Lenient splitting on runs of "
     "whitespace is a known source of disagreement between servers (httptools accepts).",
     ["rejections/line-no-version", "rejections/line-two-spaces-after-method",
      "rejections/line-two-spaces-before-version"]),
    ("Empty lines before the request line. RFC 9112 2.2: a server should ignore at least "
     "one (clients send a stray CRLF after a body); we ignore up to 8 and answer 400 "
     "after that, so a connection cannot feed CRLFs for ever. h11 rejects even one; "
     "httptools has no bound.",
     ["accepted/leading-empty-line", "accepted/eight-leading-empty-lines",
      "corpus/leading_crlf", "rejections/too-many-empty-lines-first",
      "rejections/only-empty-lines", "corpus/nine_empty_lines"]),
    ("Transfer-Encoding in HTTP/1.0. RFC 9112 6.1: the framing is faulty and the "
     "connection must close; we answer 400 (h11 and httptools decode it as chunked).",
     ["rejections/te-in-http10", "corpus/te_http10"]),
    ("Chunk sizes no body can have. Above 2^62 we reject at once, and with it every size "
     "of 17 or more significant hex digits, which wraps around in a 64-bit parser (a "
     "smuggling vector). h11 (up to 20 digits) and httptools wait for the data instead.",
     ["rejections/chunk-size-17-digits", "rejections/chunk-size-17-f",
      "rejections/chunk-size-over-2-pow-62", "smuggling/chunk-size-wraps-64-bits",
      "vectors/chunk-size-16-f"]),
    ("Whitespace after a chunk size with no extension. RFC 9112 7.1 allows BWS only before "
     "the `;` of an extension (h11 accepts trailing spaces).",
     ["rejections/chunk-size-trailing-space"]),
    ("Content-Length beyond 2^62 (2^62 + 1, and 2^64 + 5, which a 64-bit parser wraps to "
     "5). Rejected at once; h11 has no bound and waits for the body.",
     ["rejections/cl-over-2-pow-62", "rejections/cl-2-pow-64-plus-5", "corpus/cl_overflow"]),
    ("Limits: lines of at most 8190 bytes and at most 100 fields by default "
     "(`--limit-request-line`, `--limit-request-header-size`, `--limit-request-headers`, "
     "as in uvicorn and gunicorn), answered 414 or 431 as soon as the excess is certain. "
     "h11 bounds only the whole head (16 KiB), httptools nothing.",
     ["rejections/request-line-8300", "rejections/request-line-8300-no-crlf",
      "rejections/header-line-8300", "rejections/header-line-8300-no-crlf",
      "rejections/header-fields-101"]),
    ("A chunk-size line (size plus extensions) longer than 4096 bytes: rejected, so that "
     "extensions cannot make the server buffer or scan without bound. h11 and httptools "
     "accept it.",
     ["vectors/chunk-ext-5000-bytes"]),
    ("Transfer codings other than chunked are not implemented: RFC 9112 6.1 says 501. "
     "httptools treats `gzip, chunked` and `identity, chunked` as chunked and would hand "
     "the app coded bytes.",
     ["rejections/te-gzip-chunked", "rejections/te-unknown-with-params",
      "vectors/te-identity-chunked"]),
    ("Empty list elements in Transfer-Encoding (`, chunked,`). RFC 9110 5.6.1: a recipient "
     "must accept and ignore them; h11 requires the exact value `chunked`, and so does "
     "httptools within one field.",
     ["accepted/te-empty-list-elements", "accepted/te-upper-ows-empty-elements",
      "accepted/te-two-fields-first-only-comma", "corpus/delete_te_trailing_comma"]),
    ("Trailing HTAB after `chunked` is OWS and not part of the value (RFC 9110 5.5); "
     "httptools rejects it.",
     ["vectors/te-trailing-tab-value"]),
    ("A list of identical Content-Length values, or the same field twice (what a proxy "
     "merging fields produces). RFC 9110 8.6 allows taking it as that one value; "
     "differing values are rejected. httptools rejects all of them; h11 compares the "
     "values as text, so 5 and 005 differ for it.",
     ["accepted/cl-list-of-equal", "accepted/cl-list-of-equal-ows",
      "accepted/cl-list-of-four-equal", "accepted/cl-two-equal-fields",
      "accepted/cl-equal-fields-spelled-differently", "corpus/cl_list_same"]),
    ("Chunk extensions are ignored (RFC 9112 7.1.1: unrecognized ones must be); we check "
     "only what framing depends on -- no control characters, the line ends in CRLF. h11 "
     "and httptools parse their grammar strictly (h11 rejects the BWS before `;` that RFC "
     "9112 7.1.1 allows; httptools an empty extension).",
     ["accepted/chunk-ext-quoted-bws", "accepted/chunk-ext-bws-quoted-pair",
      "vectors/chunk-ext-empty-name"]),
    ("A Content-Length field in the trailer section never frames the message (RFC 9112 "
     "7.1.2); it is dropped with the other trailers. httptools rejects it.",
     ["vectors/cl-in-trailer-ignored"]),
    ("CONNECT (tunnels) is not something an ASGI HTTP app can serve: 501.",
     ["rejections/connect", "rejections/connect-origin-form", "corpus/connect"]),
    ("HTTP versions other than 1.0 and 1.1: 505 (RFC 9110 15.6.6). h11 accepts any "
     "HTTP/x.y as HTTP/1.1, httptools some of them; the HTTP/2 connection preface "
     "(`PRI * HTTP/2.0`) gets a 505 instead of being served as an HTTP/1 request.",
     ["rejections/http-2.0", "rejections/http-1.2", "rejections/http-1.9",
      "rejections/http-0.9", "rejections/http-3.0", "rejections/http-9.9",
      "corpus/http2_preface"]),
]

REASONS: dict[str, str] = {name: why for why, names in WHY for name in names}


def classify() -> dict[str, dict[str, str]]:
    table: dict[str, dict[str, str]] = {}
    for name, raw in corpus():
        verdicts = {p: fn(raw) for p, fn in PARSERS.items()}
        row = {p: v.text for p, v in verdicts.items()}
        ours = verdicts["carpinus"]
        notes = []
        for other in ("h11", "httptools"):
            theirs = verdicts[other]
            if theirs.coarse != ours.coarse:
                notes.append(f"verdict differs from {other}")
            else:
                for a, b in zip(ours.requests, theirs.requests, strict=False):
                    if a != b:
                        notes.append(f"same verdict, different requests than {other}")
                        break
        row["disagreement"] = "; ".join(notes)
        table[name] = row
    return table


def versions() -> dict[str, str]:
    """The versions of the other two parsers (their verdicts are pinned for these)."""
    from importlib.metadata import version

    return {"h11": version("h11"), "httptools": version("httptools")}


def disagreements(table: dict[str, dict[str, str]]) -> dict[str, dict[str, str]]:
    return {name: row for name, row in table.items() if row["disagreement"]}


def markdown(table: dict[str, dict[str, str]]) -> str:
    """The disagreements, grouped by reason: a table per group."""
    found = disagreements(table)
    out = []
    for why, names in WHY:
        rows = [n for n in names if n in found]
        if not rows:
            continue
        out += [why, "", "| input | carpinus | h11 | httptools |", "|---|---|---|---|"]
        out += [f"| `{n}` | {found[n]['carpinus']} | {found[n]['h11']} | "
                f"{found[n]['httptools']} |" for n in rows]
        out.append("")
    missing = [n for n in found if n not in REASONS]
    if missing:
        out.append("**Without a reason:** " + ", ".join(f"`{n}`" for n in missing))
    return "\n".join(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--markdown", action="store_true", help="print the disagreement table")
    ap.add_argument("--write", action="store_true", help=f"re-pin {PIN_FILE.name}")
    args = ap.parse_args()
    table = classify()
    if args.write:
        pinned = {"versions": versions(), "verdicts": table}
        PIN_FILE.write_text(json.dumps(pinned, indent=1, sort_keys=True) + "\n")
    if args.markdown:
        print(markdown(table))
        return 0
    width = max(len(n) for n in table)
    for name, row in table.items():
        mark = "  <-- " + row["disagreement"] if row["disagreement"] else ""
        print(f"{name:<{width}}  carpinus={row['carpinus']:<14} h11={row['h11']:<14} "
              f"httptools={row['httptools']:<14}{mark}")
    missing = [n for n in disagreements(table) if n not in REASONS]
    print(f"\n{len(table)} inputs, {len(disagreements(table))} disagreements, "
          f"{len(missing)} without a reason", file=sys.stderr)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    sys.exit(main())
