"""Write the generated part of the committed seed corpus.

    python -m fuzz.make_corpus [DIR]      (from the project root)

Adds to fuzz/corpus/, or to DIR (existing hand-made seeds are left alone):

  parser/real_*      requests as real clients send them: browsers, curl,
                     wget, HTTP libraries, load generators, CORS preflights
  parser/hostile_*   every request of the request spec, tests/spec/ (the
                     rejected, accepted and smuggling rows)
  chunked/hostile_*  the chunked bodies among those
  protocol/stream_*  whole connections for the end-to-end target: several
                     requests pipelined, with bodies, HEAD, Expect, HTTP/1.0
  wsframe/*          WebSocket client streams: messages, fragments with
                     control frames between them, every length form, close
                     codes, UTF-8 edges, protocol errors, and compressed
                     messages (made with zlib here) with and without context
                     takeover, at several window sizes

Parser seeds start with three 0xff bytes (default limits), chunked seeds with
0xff 0xff and a split point, protocol seeds with three seed bytes, wsframe
seeds with an options byte (fuzz/fuzz_wsframe.c) and a split point.
"""

from __future__ import annotations

import struct
import sys
import zlib
from pathlib import Path

from tests.spec import ACCEPTED, NEXT, REJECTED, SMUGGLING, VECTORS

HERE = Path(__file__).resolve().parent

PARSER_PREFIX = b"\xff\xff\xff"

REAL: dict[str, bytes] = {
    "safari": (
        b"GET /products/42?ref=home HTTP/1.1\r\nHost: shop.example.com\r\n"
        b"Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n"
        b"Sec-Fetch-Site: same-origin\r\nAccept-Encoding: gzip, deflate, br\r\n"
        b"Sec-Fetch-Mode: navigate\r\nUser-Agent: Mozilla/5.0 (Macintosh; Intel Mac OS X "
        b"10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15\r\n"
        b"Accept-Language: en-GB,en;q=0.9\r\nReferer: https://shop.example.com/\r\n"
        b"Sec-Fetch-Dest: document\r\nConnection: keep-alive\r\n\r\n"),
    "chrome_android": (
        b"GET /static/app.3f9a1c.js HTTP/1.1\r\nHost: m.example.com\r\nConnection: keep-alive\r\n"
        b"sec-ch-ua-platform: \"Android\"\r\nUser-Agent: Mozilla/5.0 (Linux; Android 14; "
        b"Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Mobile "
        b"Safari/537.36\r\nsec-ch-ua: \"Chromium\";v=\"124\", \"Google Chrome\";v=\"124\"\r\n"
        b"sec-ch-ua-mobile: ?1\r\nAccept: */*\r\nSec-Fetch-Site: same-origin\r\n"
        b"Sec-Fetch-Mode: no-cors\r\nSec-Fetch-Dest: script\r\n"
        b"Referer: https://m.example.com/\r\nAccept-Encoding: gzip, deflate, br, zstd\r\n"
        b"Accept-Language: de-DE,de;q=0.9,en-US;q=0.8,en;q=0.7\r\n"
        b"If-None-Match: W/\"5e1-18f0a\"\r\nIf-Modified-Since: Tue, 14 May 2024 08:12:31 GMT"
        b"\r\n\r\n"),
    "fetch_json_post": (
        b"POST /api/v1/orders HTTP/1.1\r\nHost: api.example.com\r\nConnection: keep-alive\r\n"
        b"Content-Length: 49\r\nsec-ch-ua-platform: \"Linux\"\r\nAuthorization: Bearer "
        b"eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiI0MiJ9.c2lnbmF0dXJl\r\nContent-Type: application/json"
        b"\r\nAccept: application/json\r\nOrigin: https://app.example.com\r\n"
        b"Sec-Fetch-Site: same-site\r\nSec-Fetch-Mode: cors\r\nSec-Fetch-Dest: empty\r\n\r\n"
        b"{\"item\":\"hornbeam\",\"quantity\":3,\"gift\":false}"),
    "cors_preflight": (
        b"OPTIONS /api/v1/orders HTTP/1.1\r\nHost: api.example.com\r\nConnection: keep-alive\r\n"
        b"Accept: */*\r\nAccess-Control-Request-Method: POST\r\n"
        b"Access-Control-Request-Headers: authorization,content-type\r\n"
        b"Origin: https://app.example.com\r\nSec-Fetch-Mode: cors\r\n\r\n"),
    "curl_form_post": (
        b"POST /login HTTP/1.1\r\nHost: localhost:8000\r\nUser-Agent: curl/8.5.0\r\n"
        b"Accept: */*\r\nContent-Length: 27\r\n"
        b"Content-Type: application/x-www-form-urlencoded\r\n\r\nuser=ada&password=hunter%212"),
    "curl_multipart": (
        b"POST /upload HTTP/1.1\r\nHost: localhost:8000\r\nUser-Agent: curl/8.5.0\r\n"
        b"Accept: */*\r\nContent-Length: 191\r\nContent-Type: multipart/form-data; "
        b"boundary=------------------------d74496d66958873e\r\n\r\n"
        b"--------------------------d74496d66958873e\r\nContent-Disposition: form-data; "
        b"name=\"file\"; filename=\"a.txt\"\r\nContent-Type: text/plain\r\n\r\nhello\n\r\n"
        b"--------------------------d74496d66958873e--\r\n"),
    "curl_upload_chunked_expect": (
        b"PUT /files/log.txt HTTP/1.1\r\nHost: localhost:8000\r\nUser-Agent: curl/8.5.0\r\n"
        b"Accept: */*\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n"
        b"1a\r\nfirst line of the log file\n\r\n12\r\nand the second one\r\n0\r\n\r\n"),
    "curl_http10": b"GET / HTTP/1.0\r\nHost: localhost:8000\r\nUser-Agent: curl/8.5.0\r\n"
                   b"Accept: */*\r\n\r\n",
    "curl_head": b"HEAD /big.iso HTTP/1.1\r\nHost: localhost:8000\r\nUser-Agent: curl/8.5.0\r\n"
                 b"Accept: */*\r\n\r\n",
    "curl_range": b"GET /big.iso HTTP/1.1\r\nHost: localhost:8000\r\nRange: bytes=0-1023,"
                  b"-512\r\nUser-Agent: curl/8.5.0\r\nAccept: */*\r\n\r\n",
    "wget": b"GET /index.html HTTP/1.1\r\nHost: example.com\r\nUser-Agent: Wget/1.21.4\r\n"
            b"Accept: */*\r\nAccept-Encoding: identity\r\nConnection: Keep-Alive\r\n\r\n",
    "python_requests": b"GET /status HTTP/1.1\r\nHost: 127.0.0.1:8000\r\nUser-Agent: "
                       b"python-requests/2.32.3\r\nAccept-Encoding: gzip, deflate\r\n"
                       b"Accept: */*\r\nConnection: keep-alive\r\n\r\n",
    "httpx_post": (b"POST /items HTTP/1.1\r\nHost: 127.0.0.1:8000\r\nAccept: */*\r\n"
                   b"Accept-Encoding: gzip, deflate\r\nConnection: keep-alive\r\n"
                   b"User-Agent: python-httpx/0.27.0\r\nContent-Length: 13\r\n"
                   b"Content-Type: application/json\r\n\r\n{\"name\":\"ok\"}"),
    "go_client": b"GET /healthz HTTP/1.1\r\nHost: svc.internal:8080\r\nUser-Agent: "
                 b"Go-http-client/1.1\r\nAccept-Encoding: gzip\r\n\r\n",
    "node_undici_chunked": (b"POST /ingest HTTP/1.1\r\nhost: 127.0.0.1:8000\r\nconnection: "
                            b"keep-alive\r\ncontent-type: text/plain\r\naccept: */*\r\n"
                            b"accept-language: *\r\nsec-fetch-mode: cors\r\nuser-agent: node\r\n"
                            b"accept-encoding: gzip, deflate\r\ntransfer-encoding: chunked\r\n"
                            b"\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"),
    "hey_load": b"GET / HTTP/1.1\r\nHost: 127.0.0.1:8000\r\nUser-Agent: hey/0.0.1\r\n"
                b"Content-Type: text/html\r\nAccept-Encoding: gzip\r\n\r\n",
    "ab_http10_keepalive": b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\nHost: 127.0.0.1:8000"
                           b"\r\nUser-Agent: ApacheBench/2.3\r\nAccept: */*\r\n\r\n",
    "nginx_proxy": (b"GET /app/ws?x=1 HTTP/1.1\r\nHost: backend\r\nX-Real-IP: 203.0.113.7\r\n"
                    b"X-Forwarded-For: 203.0.113.7, 10.0.0.2\r\nX-Forwarded-Proto: https\r\n"
                    b"Connection: close\r\nUser-Agent: Mozilla/5.0\r\n\r\n"),
    "long_cookie": (b"GET /dashboard HTTP/1.1\r\nHost: example.com\r\nCookie: "
                    + b"; ".join(b"c%d=%s" % (i, b"v" * 60) for i in range(60))
                    + b"\r\nAccept: text/html\r\n\r\n"),
    "percent_encoded_utf8": b"GET /caf%C3%A9/%E2%9C%93?q=%F0%9F%8C%B3&x=a+b HTTP/1.1\r\n"
                            b"Host: example.com\r\n\r\n",
    "delete_no_body": b"DELETE /api/v1/orders/42 HTTP/1.1\r\nHost: api.example.com\r\n"
                      b"Content-Length: 0\r\n\r\n",
}



def _fix_length(raw: bytes) -> bytes:
    """Make a Content-Length written by hand match the body that follows."""
    head, sep, body = raw.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    for i, line in enumerate(lines):
        if line.lower().startswith(b"content-length:"):
            lines[i] = b"Content-Length: %d" % len(body)
    return b"\r\n".join(lines) + sep + body


REAL = {name: _fix_length(raw) for name, raw in REAL.items()}

PROTOCOL_STREAMS: dict[str, bytes] = {
    "keepalive_mix": (
        REAL["python_requests"] + REAL["httpx_post"] + REAL["curl_head"]
        + REAL["node_undici_chunked"] + REAL["cors_preflight"] + REAL["curl_http10"]),
    "expect_then_get": REAL["curl_upload_chunked_expect"] + REAL["go_client"],
    "pipelined_uploads": b"".join(
        b"POST /u HTTP/1.1\r\nHost: a\r\nContent-Length: %d\r\n\r\n" % n + b"x" * n
        for n in (0, 1, 100, 5000, 17000)),
    "chunked_trailers_then_close": (
        b"POST /t HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"3;ext=1\r\nabc\r\n0\r\nX-Checksum: 1\r\n\r\n"
        b"GET /last HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\nGET /never HTTP/1.1\r\n"),
    "good_then_smuggle": (
        REAL["hey_load"] + b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 6\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\nG"),
    "http10_keepalive_pair": REAL["ab_http10_keepalive"] * 2 + REAL["curl_http10"],
}


# ---- WebSocket client streams (fuzz/fuzz_wsframe.c) ----------------------

WS_FIN, WS_RSV1 = 0x80, 0x40
WS_CONT, WS_TEXT, WS_BINARY, WS_CLOSE, WS_PING, WS_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA


def ws_frame(first: int, payload: bytes, key: bytes = b"\x37\xfa\x21\x3d",
             form: int = 0) -> bytes:
    """A masked client frame; form 126/127 forces a longer length form."""
    n = len(payload)
    if form == 0 and n <= 125:
        head = bytes([first, 0x80 | n])
    elif form == 126 or (form == 0 and n <= 0xFFFF):
        head = bytes([first, 0x80 | 126]) + struct.pack("!H", n)
    else:
        head = bytes([first, 0x80 | 127]) + struct.pack("!Q", n)
    masked = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
    return head + key + masked


def ws_options(deflate: bool = False, no_context: bool = False, bits: int = 15,
               max_index: int = 7) -> bytes:
    """fuzz_wsframe's options byte and a split point in the middle."""
    first = (1 if deflate else 0) | (2 if no_context else 0) | ((bits - 8) << 2) | (max_index << 5)
    return bytes([first, 0, 7])


def ws_compressed(messages: list[bytes], bits: int = 15, no_context: bool = False) -> list[bytes]:
    """Payloads as a zlib-based client compresses them (tail cut)."""
    out = []
    comp = zlib.compressobj(6, zlib.DEFLATED, -max(bits, 9))
    for message in messages:
        data = comp.compress(message) + comp.flush(zlib.Z_SYNC_FLUSH)
        out.append(data[:-4] if data.endswith(b"\x00\x00\xff\xff") else data)
        if no_context:
            comp = zlib.compressobj(6, zlib.DEFLATED, -max(bits, 9))
    return out


def ws_seeds() -> dict[str, bytes]:
    f = ws_frame
    plain = ws_options()
    text = WS_FIN | WS_TEXT
    seeds = {
        "hello": plain + f(text, b"Hello"),
        "binary": plain + f(WS_FIN | WS_BINARY, bytes(range(256))),
        "fragments_with_controls": plain + f(WS_TEXT, b"frag") + f(WS_FIN | WS_PING, b"p")
        + f(WS_CONT, b"men") + f(WS_FIN | WS_PONG, b"") + f(WS_FIN | WS_CONT, b"ted"),
        # the 64-bit length form needs 65536 bytes: its frame is cut short
        "lengths": plain + f(text, b"a" * 125) + f(text, b"b" * 126)
        + f(WS_FIN | WS_BINARY, b"c" * 65536)[:300],
        "non_minimal_length": plain + f(text, b"Hello", form=126),
        "utf8_split": plain + f(WS_TEXT, "κό".encode()[:3])
        + f(WS_FIN | WS_CONT, "κό".encode()[3:]),
        "utf8_invalid": plain + f(text, b"\xed\xa0\x80"),
        "close_reason": plain + f(WS_FIN | WS_CLOSE, struct.pack("!H", 1001) + "bye κ".encode()),
        "close_bad_code": plain + f(WS_FIN | WS_CLOSE, struct.pack("!H", 1005)),
        "close_then_more": plain + f(WS_FIN | WS_CLOSE, b"") + f(text, b"late"),
        "ping_too_long": plain + f(WS_FIN | WS_PING, b"x" * 126),
        "unmasked": plain + bytes([text, 5]) + b"Hello",
        "rsv1_without_deflate": plain + f(text | WS_RSV1, b"x"),
        "too_big": ws_options(max_index=4) + f(WS_FIN | WS_BINARY, b"x" * 1001),
    }
    messages = [b"Hello, hornbeam! " * 4, b"Hello, hornbeam! " * 4, bytes(3000), "κόσμε".encode()]
    for bits in (8, 9, 12, 15):
        for no_context in (False, True):
            stream = b""
            for i, payload in enumerate(ws_compressed(messages, bits, no_context)):
                opcode = WS_TEXT if i % 2 == 0 else WS_BINARY
                if i == 2 and len(payload) > 2:
                    half = len(payload) // 2
                    stream += f(WS_RSV1 | opcode, payload[:half]) + f(WS_FIN | WS_PING, b"")
                    stream += f(WS_FIN | WS_CONT, payload[half:])
                else:
                    stream += f(WS_FIN | WS_RSV1 | opcode, payload)
            name = f"deflate_w{bits}_{'reset' if no_context else 'takeover'}"
            seeds[name] = ws_options(True, no_context, bits) + stream
    bomb = ws_compressed([bytes(1 << 20)])[0]
    seeds["deflate_bomb"] = ws_options(True, max_index=4) + f(WS_FIN | WS_RSV1 | WS_BINARY, bomb)
    return seeds


def write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists() or path.read_bytes() != data:
        path.write_bytes(data)


def slug(name: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in name).strip("_")


def main(argv: list[str]) -> None:
    corpus = Path(argv[0]) if argv else HERE / "corpus"
    for name, raw in REAL.items():
        write(corpus / "parser" / f"real_{name}", PARSER_PREFIX + raw)
    hostile: dict[str, bytes] = {}
    for row in REJECTED:
        hostile[f"rej_{slug(row.name)}"] = row.raw
    for accepted in ACCEPTED:
        hostile[f"acc_{slug(accepted.name)}"] = accepted.raw
    for row in SMUGGLING:
        hostile[f"smug_{slug(row.name)}"] = row.raw
    for vector in VECTORS:  # as the smuggling test sends them
        hostile[f"vec_{slug(vector.name)}"] = vector.raw + NEXT
    for name, raw in hostile.items():
        write(corpus / "parser" / f"hostile_{name}", PARSER_PREFIX + raw)
        head, sep, body = raw.partition(b"\r\n\r\n")
        if sep and b"chunked" in head.lower() and body:
            write(corpus / "chunked" / f"hostile_{name}", b"\xff\xff\x00\x03" + body)
    for i, (name, raw) in enumerate(PROTOCOL_STREAMS.items()):
        write(corpus / "protocol" / f"stream_{name}", bytes([i * 37 % 256, 1, 2]) + raw)
    ws = ws_seeds()
    for name, raw in ws.items():
        write(corpus / "wsframe" / name, raw)
    print(f"{len(REAL)} real, {len(hostile)} hostile, {len(PROTOCOL_STREAMS)} stream, "
          f"{len(ws)} wsframe seeds")


if __name__ == "__main__":
    main(sys.argv[1:])
