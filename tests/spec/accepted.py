"""Requests that must be served, and what the parser makes of them.

Each row: the raw bytes, then only what `accept()` cannot read off them (see
rows.py): the body's framing and what it decodes to, the connection flags,
the path and query of an absolute-form target.  Rows that spell out
`headers` do so because the field values are their point.
"""

from __future__ import annotations

from tests.spec.rows import CHUNKED_POST, GET, H11, HELLO, POST, Accepted, H, accept, section

ACCEPTED: list[Accepted] = [
    # -- as real clients send them -------------------------------------------
    *section("RFC 9112 3, 5", [
        accept("curl", GET + b"Host: localhost:8000\r\nUser-Agent: curl/8.5.0\r\n"
               b"Accept: */*\r\n\r\n", why="curl's GET"),
        accept("wrk", b"GET /index.html" + H11 + b"Host: 127.0.0.1:8080\r\n\r\n",
               why="wrk's GET: one field"),
        accept("browser-12-fields",
               b"GET /search?q=hornbeam&lang=en" + H11 +
               b"Host: www.example.org\r\n"
               b"Connection: keep-alive\r\n"
               b"sec-ch-ua: \"Chromium\";v=\"124\", \"Not-A.Brand\";v=\"99\"\r\n"
               b"sec-ch-ua-mobile: ?0\r\n"
               b"Upgrade-Insecure-Requests: 1\r\n"
               b"User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 "
               b"(KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36\r\n"
               b"Accept: text/html,application/xhtml+xml,application/xml;q=0.9,"
               b"image/avif,image/webp,*/*;q=0.8\r\n"
               b"Sec-Fetch-Site: none\r\n"
               b"Sec-Fetch-Mode: navigate\r\n"
               b"Accept-Encoding: gzip, deflate, br, zstd\r\n"
               b"Accept-Language: en-US,en;q=0.9\r\n"
               b"Cookie: session=abc123; theme=dark\r\n\r\n",
               flags={"keep-alive"}, why="a browser's navigation, with a query"),
        accept("post-json", b"POST /submit?x=1&y=2" + H11 + b"Host: api\r\n"
               b"Content-Type: application/json\r\nContent-Length: 13\r\n\r\n{\"a\":\"bcdef\"}",
               framing=13, why="a JSON POST framed by Content-Length"),
        accept("http10-no-host", b"GET / HTTP/1.0\r\n\r\n", rfc="RFC 9112 3.2",
               why="Host is required from HTTP/1.1 on"),
        accept("http10-body", b"POST / HTTP/1.0\r\nContent-Length: 5\r\n\r\nhello", framing=5,
               why="HTTP/1.0 with a Content-Length body"),
        accept("http10-keep-alive-head", b"HEAD / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n",
               flags={"keep-alive"}, rfc="RFC 9112 9.3",
               why="HTTP/1.0 asks for a persistent connection; option names are "
                   "case-insensitive",
               server="HEAD: the echo app's answer has no body to read back"),
    ]),
    # -- empty lines before the request line -----------------------------------
    *section("RFC 9112 2.2", [
        accept("leading-empty-line", b"\r\n" + GET + H + b"\r\n",
               why="a server SHOULD ignore at least one empty line before the request line"),
        accept("eight-leading-empty-lines", b"\r\n" * 8 + GET + H + b"\r\n",
               why="we ignore up to eight (nine are rejected)"),
    ]),
    # -- methods: tokens, case-sensitive; eight have an identity ----------------
    *section("RFC 9110 9.1", [
        accept("method-put", b"PUT /x" + H11 + H + b"\r\n", why="a known method"),
        accept("method-delete", b"DELETE /x" + H11 + H + b"\r\n", why="a known method"),
        accept("method-patch", b"PATCH /x" + H11 + H + b"\r\n", why="a known method"),
        accept("method-trace", b"TRACE /x" + H11 + H + b"\r\n", why="a known method"),
        accept("method-options", b"OPTIONS /x" + H11 + H + b"\r\n",
               why="OPTIONS with an origin-form target"),
        accept("method-lower-case-get", b"get /" + H11 + H + b"\r\n",
               why="methods are case-sensitive: `get` is another method than GET"),
        accept("method-every-tchar", b"M-SEARCH!#$%&'*+.^_`|~9 /" + H11 + H + b"\r\n",
               rfc="RFC 9110 5.6.2", why="a method is any token: every tchar is allowed"),
        accept("method-extension", b"PROPFIND /" + H11 + H + b"\r\n",
               why="an extension method (WebDAV)"),
        accept("method-purge", b"PURGE /x" + H11 + H + b"\r\n",
               why="unknown, and as long as PATCH"),
        accept("method-unlock", b"UNLOCK /x" + H11 + H + b"\r\n",
               why="unknown, and as long as DELETE"),
        accept("method-connects", b"CONNECTS /x" + H11 + H + b"\r\n",
               why="CONNECT with one more letter is an ordinary unknown method"),
        accept("method-gets", b"GETS /" + H11 + H + b"\r\n", why="GET with one more letter"),
    ]),
    # -- request-target forms ------------------------------------------------------
    *section("RFC 9112 3.2", [
        accept("target-asterisk-form", b"OPTIONS *" + H11 + H + b"\r\n",
               flags={"asterisk-form"}, rfc="RFC 9112 3.2.4", why="asterisk-form, with OPTIONS"),
        accept("target-absolute-form", b"GET http://example.com:8080/a/b?c=d&e" + H11 +
               b"Host: example.com:8080\r\n\r\n", flags={"absolute-form"},
               path=b"/a/b", query=b"c=d&e", rfc="RFC 9112 3.2.2",
               why="absolute-form: the path and query follow the authority"),
        accept("target-absolute-https-upper-case-no-path", b"GET HTTPS://Example.COM" + H11 +
               b"Host: Example.COM\r\n\r\n", flags={"absolute-form"}, path=b"", query=b"",
               rfc="RFC 9112 3.2.2", why="the scheme is case-insensitive; the path may be empty"),
        accept("target-absolute-no-path-query", b"GET http://h?x=1" + H11 +
               b"Host: h\r\n\r\n", flags={"absolute-form"}, path=b"", query=b"x=1",
               rfc="RFC 9112 3.2.2", why="an empty path, then a query"),
        accept("target-absolute-ipv6-http10", b"GET http://[::1]:80/ HTTP/1.0\r\n\r\n",
               flags={"absolute-form"}, path=b"/", query=b"", rfc="RFC 9112 3.2.2",
               why="an IP-literal authority"),
        accept("target-empty-query-second-question-mark", b"GET /p??a?b" + H11 + H + b"\r\n",
               path=b"/p", query=b"?a?b",
               why="the query starts after the first '?' and may hold more"),
        accept("target-trailing-question-mark", b"GET /p?" + H11 + H + b"\r\n",
               path=b"/p", query=b"", why="an empty query"),
        accept("target-obs-text-and-punctuation",
               b"GET /caf\xc3\xa9/%20#x\"y{}|\\^~" + H11 + H + b"\r\n",
               path=b"/caf\xc3\xa9/%20#x\"y{}|\\^~", query=b"",
               why="the target is not judged beyond its bytes: any visible byte but SP "
                   "and DEL, obs-text included; '#' does not end the path"),
    ]),
    # -- field lines -------------------------------------------------------------
    *section("RFC 9110 5.5", [
        accept("value-ows-stripped-inner-kept",
               GET + H + b"X-A:   a b \t\r\nX-B:\r\nX-C: \t \r\nX-D:\tv\r\n\r\n",
               headers=[(b"Host", b"a"), (b"X-A", b"a b"), (b"X-B", b""), (b"X-C", b""),
                        (b"X-D", b"v")],
               why="OWS around a value is not part of it; whitespace inside is"),
        accept("value-spaces-tabs-obs-text", GET + H + b"X-A: a  b\t\tc \x80\xff\r\n\r\n",
               headers=[(b"Host", b"a"), (b"X-A", b"a  b\t\tc \x80\xff")],
               why="SP, HTAB and obs-text inside a value are kept as they are"),
        accept("value-ows-trimmed", GET + H + b"X-A: \t v w \t\r\n\r\n",
               headers=[(b"Host", b"a"), (b"X-A", b"v w")], why="OWS on both sides"),
        accept("value-empty", GET + H + b"X-Empty:\r\n\r\n",
               headers=[(b"Host", b"a"), (b"X-Empty", b"")], why="a field value may be empty"),
        accept("value-only-ows", GET + H + b"X-Empty: \t \r\n\r\n",
               headers=[(b"Host", b"a"), (b"X-Empty", b"")], why="OWS alone is an empty value"),
        accept("value-obs-text-and-punctuation",
               GET + H + b"X-U: \x80\xff" b"caf\xc3\xa9 :;\"(),/<=>?@[\\]{}\x7e\r\n\r\n",
               headers=[(b"Host", b"a"), (b"X-U", b"\x80\xff" b"caf\xc3\xa9 :;\"(),/<=>?@[\\]{}~")],
               why="obs-text and every delimiter are field-vchars"),
        accept("name-every-tchar", GET + H + b"!#$%&'*+-.^_`|~09azAZ: x:y\r\n\r\n",
               headers=[(b"Host", b"a"), (b"!#$%&'*+-.^_`|~09azAZ", b"x:y")],
               rfc="RFC 9110 5.1", why="a field name is any token; the value may hold colons"),
        accept("names-case-insensitive", b"POST / HTTP/1.1\r\nHOST: a\r\ncontent-LENGTH: 7\r\n"
               b"CONNECTION: CLOSE\r\nexpect: 100-Continue\r\n\r\nabcdefg", framing=7,
               flags={"close", "expect-continue"}, rfc="RFC 9110 5.1",
               why="field names, and the values Connection and Expect compare, are "
                   "case-insensitive"),
        accept("names-look-alike", GET + H + b"Transfer_Encoding: gzip\r\n"
               b"Content-Lengths: x\r\nHosts: b\r\nExpects: 100-continue\r\n"
               b"Connections: close\r\n\r\n", rfc="RFC 9110 5.1",
               why="names that only look like framing fields are ordinary fields"),
    ]),
    # -- Host --------------------------------------------------------------------
    *section("RFC 9110 7.2", [
        accept("host-empty", GET + b"Host:\r\n\r\n",
               why="an empty Host is allowed (a target URI without authority)"),
        accept("host-port", GET + b"Host: example.com:8080\r\n\r\n", why="host and port"),
        accept("host-ipv6", GET + b"Host: [::1]:8080\r\n\r\n", why="an IP-literal and port"),
        accept("host-any-case", GET + b"hOsT: a\r\n\r\n",
               why="the Host field is found whatever the case of its name"),
    ]),
    # -- Content-Length ------------------------------------------------------------
    *section("RFC 9112 6.3", [
        accept("cl-list-of-equal", POST + b"Content-Length: 5, 5\r\n\r\nhello", framing=5,
               why="a list of identical values is that value"),
        accept("cl-list-of-equal-ows", POST + b"Content-Length: 5 ,\t5\r\n\r\nhello", framing=5,
               why="likewise, with OWS around the commas"),
        accept("cl-list-of-four-equal", POST + b"Content-Length: 5, 5,5\t,  5\r\n\r\nhello",
               framing=5, why="any number of identical values"),
        accept("cl-two-equal-fields", POST + b"Content-Length: 5\r\nContent-Length: 5\r\n\r\n"
               b"hello", framing=5, why="two fields are one list: identical values"),
        accept("cl-equal-fields-spelled-differently", b"POST / HTTP/1.1\r\nContent-Length: 5\r\n"
               + H + b"Content-Length: 005\r\n\r\nhello", framing=5,
               why="5 and 005 are the same length, with another field between them"),
        accept("cl-leading-zeros", POST + b"Content-Length: 005\r\n\r\nhello", framing=5,
               rfc="RFC 9110 8.6", why="1*DIGIT: leading zeros are digits"),
        accept("cl-zero", POST + b"Content-Length: 0\r\n\r\n", framing=0, why="an empty body"),
        accept("cl-2-pow-62", POST + b"Content-Length: 4611686018427387904\r\n\r\n",
               framing=2**62, why="the largest length we accept",
               server="a body of 2^62 bytes cannot be sent"),
    ]),
    # -- Transfer-Encoding -----------------------------------------------------------
    *section("RFC 9112 6.1", [
        accept("te-case-and-ows", POST + b"Transfer-Encoding:  Chunked \r\n\r\n" + HELLO,
               framing="chunked", data=b"hello", why="coding names are case-insensitive"),
        accept("te-upper", POST + b"transfer-encoding: CHUNKED\r\n\r\n" + HELLO,
               framing="chunked", data=b"hello", why="likewise"),
        accept("te-empty-list-elements", POST + b"Transfer-Encoding: , chunked,\r\n\r\n" + HELLO,
               framing="chunked", data=b"hello", rfc="RFC 9110 5.6.1",
               why="empty list elements do not count"),
        accept("te-upper-ows-empty-elements",
               POST + b"transfer-encoding: \t, ,CHUNKED , \r\n\r\n0\r\n\r\n",
               framing="chunked", data=b"", rfc="RFC 9110 5.6.1",
               why="OWS, empty elements and upper case together"),
        accept("te-two-fields-first-only-comma",
               POST + b"Transfer-Encoding: ,\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
               framing="chunked", data=b"", rfc="RFC 9110 5.3",
               why="two fields are one list; the first holds only an empty element"),
    ]),
    # -- chunked bodies ----------------------------------------------------------------
    *section("RFC 9112 7.1", [
        accept("chunk-empty-body", CHUNKED_POST + b"0\r\n\r\n", framing="chunked", data=b"",
               why="the last chunk alone"),
        accept("chunk-many-small", CHUNKED_POST + b"1\r\nh\r\n1\r\ne\r\n3\r\nllo\r\n0\r\n\r\n",
               framing="chunked", data=b"hello", why="several chunks make one body"),
        accept("chunk-uppercase-hex",
               CHUNKED_POST + b"A\r\n0123456789\r\n1F\r\n" + b"x" * 31 + b"\r\n0\r\n\r\n",
               framing="chunked", data=b"0123456789" + b"x" * 31, why="HEXDIG, upper case"),
        accept("chunk-lowercase-hex", CHUNKED_POST + b"a\r\n0123456789\r\n0\r\n\r\n",
               framing="chunked", data=b"0123456789", why="and lower case"),
        accept("chunk-size-zero-padded", CHUNKED_POST + b"00000000000000005\r\nhello\r\n0\r\n\r\n",
               framing="chunked", data=b"hello",
               why="the limit is on the value (2^62), not on the digits: leading zeros are "
                   "fine (h11 allows up to 20 digits)"),
        accept("chunk-size-zeros-in-last-chunk", CHUNKED_POST + b"0005\r\nhello\r\n000\r\n\r\n",
               framing="chunked", data=b"hello", why="the last chunk may be written 000"),
        accept("chunk-size-20-digits", CHUNKED_POST + b"00000000000000000001\r\nx\r\n0\r\n\r\n",
               framing="chunked", data=b"x", why="20 digits, most of them leading zeros"),
        accept("chunk-data-crlfs", CHUNKED_POST + b"4\r\n\r\n\r\n\r\n0\r\n\r\n",
               framing="chunked", data=b"\r\n\r\n",
               why="chunk data is counted, never scanned: CRLFs in it are data"),
        accept("chunk-data-binary", CHUNKED_POST + b"3\r\n\x00\xff\n\r\n0\r\n\r\n",
               framing="chunked", data=b"\x00\xff\n", why="any byte is data"),
        accept("chunk-ext", CHUNKED_POST + b"5;name=value\r\nhello\r\n0\r\n\r\n",
               framing="chunked", data=b"hello", rfc="RFC 9112 7.1.1",
               why="extensions are read and discarded"),
        accept("chunk-ext-quoted-bws", CHUNKED_POST + b"5 ;a=\"x y\";b\r\nhello\r\n0;z\r\n\r\n",
               framing="chunked", data=b"hello", rfc="RFC 9112 7.1.1",
               why="BWS before ';', a quoted value, a name without value"),
        accept("chunk-ext-bws-quoted-pair",
               CHUNKED_POST + b"5 \t; a = \"q;\t\\\"s\" ;b\r\nhello\r\n0 ;x\r\n\r\n",
               framing="chunked", data=b"hello", rfc="RFC 9112 7.1.1",
               why="BWS around '=' and ';', a quoted-pair and ';' inside quotes"),
        accept("chunk-trailers", CHUNKED_POST + b"5\r\nhello\r\n0\r\nX-T: 1\r\nX-U: two words\r\n"
               b"\r\n", framing="chunked", data=b"hello", rfc="RFC 9112 7.1.2",
               why="trailer fields are read and dropped"),
        accept("chunk-trailers-empty-and-obs-text",
               CHUNKED_POST + b"2\r\nhi\r\n0\r\nX-Checksum: abc\r\nEmpty:\r\nX: \t\x80 :\r\n\r\n",
               framing="chunked", data=b"hi", rfc="RFC 9112 7.1.2",
               why="an empty trailer value, and obs-text in one"),
    ]),
    # -- Connection, Upgrade, Expect -----------------------------------------------------
    *section("RFC 9110 7.6.1", [
        accept("websocket-upgrade", b"GET /chat" + H11 + b"Host: server.example.com\r\n"
               b"Upgrade: websocket\r\nConnection: keep-alive, Upgrade\r\n"
               b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
               flags={"upgrade", "keep-alive"}, rfc="RFC 6455 4.1",
               why="a WebSocket handshake, as a browser sends it",
               server="the WebSocket side answers it, not the HTTP app"),
        accept("connection-list-over-fields",
               GET + H + b"Connection: ,foo,  close ,\r\nConnection: x-close, Keep-Alive\r\n\r\n",
               flags={"close", "keep-alive"},
               why="options are a list over every Connection field; unknown ones are ignored"),
        accept("expect-other-than-100-continue",
               b"PUT / HTTP/1.1\r\n" + H + b"Expect: 100-continue-ish\r\nContent-Length: 1\r\n"
               b"\r\nx", framing=1, rfc="RFC 9110 10.1.1",
               why="only 100-continue is an expectation we know; others are ignored"),
        accept("upgrade-empty", GET + H + b"Upgrade:\r\n\r\n", flags={"upgrade"},
               rfc="RFC 9110 7.8",
               why="an empty Upgrade still counts as present (the server then serves the "
                   "request as plain HTTP)"),
    ]),
    # -- proxy headers: flagged for the proxy code (in any case), never judged here --------
    accept("proxy-x-forwarded-for", GET + H + b"x-FORWARDED-for: 203.0.113.7, 10.0.0.1\r\n"
           b"\r\n", flags={"proxy-headers"}, why="X-Forwarded-For, in any case"),
    accept("proxy-x-forwarded-proto", GET + H + b"X-Forwarded-Proto: https\r\n\r\n",
           flags={"proxy-headers"}, why="X-Forwarded-Proto"),
    accept("proxy-x-forwarded-host", GET + H + b"X-Forwarded-Host: example.com\r\n\r\n",
           flags={"proxy-headers"}, why="X-Forwarded-Host (used with --forwarded-host)"),
    accept("proxy-forwarded-nonsense", GET + H + b"Forwarded: ;;=,\r\n\r\n",
           flags={"proxy-headers"}, rfc="RFC 7239 4",
           why="Forwarded, even with a value the proxy code will not use"),
    accept("proxy-look-alike-names", GET + H + b"X-Forwarded-Hosts: b\r\nX-Forwarded-Fo: c\r\n"
           b"Forwarded-For: d\r\nX-Forwarded-Protocol: e\r\n\r\n",
           why="other names do not flag proxy headers"),
]
