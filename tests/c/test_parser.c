/*
 * test_parser.c -- standalone tests for parser.c and chunked.c.
 *
 * No framework: CHECK() counts, prints each failure with the case name and
 * carries on; the exit status is non-zero if anything failed.
 *
 * The fixtures below are the specification, written as raw bytes and what
 * the parser must make of them.  Every acceptable head is fed three ways
 * (h11's test_io.py): whole; as every proper prefix, which must be
 * CP_INCOMPLETE with a sound incomplete_line_start; and followed by the next
 * pipelined request, where the consumed count must stop exactly at the end of
 * the head.  Every input is copied into a heap block of exactly its size, so
 * AddressSanitizer catches any read past len.
 *
 * Chunked bodies are fed whole, one byte at a time, in every two-piece split
 * and followed by the next request; the data spans, concatenated, must equal
 * the expected body and the outcome must not depend on the feeding.
 */
#define _DEFAULT_SOURCE /* MAP_ANONYMOUS with -std=c11 */
#include "parser.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#if defined(__unix__) || defined(__APPLE__)
#include <sys/mman.h>
#endif

#include "check.h"

/* ---- mini harness ------------------------------------------------------- */

static const cp_limits default_limits = {8190, 8190, 100, 0};

static const char next_request[] = "GET /next HTTP/1.1\r\nHost: next\r\n\r\n";

/* A heap copy of exactly n bytes (ASan guards the end). */
static char *copy_exact(const char *s, size_t n)
{
    char *p = malloc(n ? n : 1);
    if (p == NULL) {
        perror("malloc");
        exit(2);
    }
    if (n)
        memcpy(p, s, n);
    return p;
}

static char *concat(const char *a, size_t an, const char *b, size_t bn)
{
    char *p = malloc(an + bn ? an + bn : 1);
    if (p == NULL) {
        perror("malloc");
        exit(2);
    }
    memcpy(p, a, an);
    memcpy(p + an, b, bn);
    return p;
}

static int span_is(const char *buf, cp_span s, const char *want)
{
    size_t n = strlen(want);
    return s.len == n && memcmp(buf + s.off, want, n) == 0;
}

static void print_span(const char *buf, cp_span s, char *dst, size_t cap)
{
    size_t n = s.len < cap - 1 ? s.len : cap - 1;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)buf[s.off + i];
        dst[i] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
    }
    dst[n] = '\0';
}

#define SPAN_CHECK(buf, span, want)                                            \
    do {                                                                       \
        char shown_[64];                                                       \
        print_span((buf), (span), shown_, sizeof shown_);                      \
        CHECK(span_is((buf), (span), (want)), #span " is \"%s\", want \"%s\"", \
              shown_, (want));                                                 \
    } while (0)

/* ---- acceptable heads ---------------------------------------------------- */

typedef struct {
    const char *name, *value;
} field;

typedef struct {
    const char *name;
    const char *raw;
    const cp_limits *lim; /* NULL: default_limits */
    const char *method;
    int mid;
    const char *target, *path, *query; /* query NULL: empty */
    int minor;
    int has_cl;
    int64_t cl;
    unsigned flags;
    field headers[16]; /* up to the first NULL name: all of them, in order */
} ok_case;

#define H11 "HTTP/1.1\r\n"

/* clang-format off */
static const ok_case ok_cases[] = {
    /* --- real clients --- */
    {.name = "curl",
     .raw = "GET / " H11 "Host: localhost:8000\r\nUser-Agent: curl/8.5.0\r\n"
            "Accept: */*\r\n\r\n",
     .method = "GET", .mid = CP_METHOD_GET, .target = "/", .path = "/", .minor = 1,
     .headers = {{"Host", "localhost:8000"}, {"User-Agent", "curl/8.5.0"},
                 {"Accept", "*/*"}}},
    {.name = "wrk",
     .raw = "GET /index.html " H11 "Host: 127.0.0.1:8080\r\n\r\n",
     .method = "GET", .mid = CP_METHOD_GET, .target = "/index.html",
     .path = "/index.html", .minor = 1, .headers = {{"Host", "127.0.0.1:8080"}}},
    {.name = "browser, 12 headers",
     .raw = "GET /search?q=hornbeam&lang=en " H11
            "Host: www.example.org\r\n"
            "Connection: keep-alive\r\n"
            "sec-ch-ua: \"Chromium\";v=\"124\", \"Not-A.Brand\";v=\"99\"\r\n"
            "sec-ch-ua-mobile: ?0\r\n"
            "Upgrade-Insecure-Requests: 1\r\n"
            "User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 "
            "(KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36\r\n"
            "Accept: text/html,application/xhtml+xml,application/xml;q=0.9,"
            "image/avif,image/webp,*/*;q=0.8\r\n"
            "Sec-Fetch-Site: none\r\n"
            "Sec-Fetch-Mode: navigate\r\n"
            "Accept-Encoding: gzip, deflate, br, zstd\r\n"
            "Accept-Language: en-US,en;q=0.9\r\n"
            "Cookie: session=abc123; theme=dark\r\n\r\n",
     .method = "GET", .mid = CP_METHOD_GET, .target = "/search?q=hornbeam&lang=en",
     .path = "/search", .query = "q=hornbeam&lang=en", .minor = 1,
     .flags = CP_F_CONN_KEEP_ALIVE,
     .headers = {{"Host", "www.example.org"},
                 {"Connection", "keep-alive"},
                 {"sec-ch-ua", "\"Chromium\";v=\"124\", \"Not-A.Brand\";v=\"99\""},
                 {"sec-ch-ua-mobile", "?0"},
                 {"Upgrade-Insecure-Requests", "1"},
                 {"User-Agent", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 "
                                "(KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36"},
                 {"Accept", "text/html,application/xhtml+xml,application/xml;q=0.9,"
                            "image/avif,image/webp,*/*;q=0.8"},
                 {"Sec-Fetch-Site", "none"},
                 {"Sec-Fetch-Mode", "navigate"},
                 {"Accept-Encoding", "gzip, deflate, br, zstd"},
                 {"Accept-Language", "en-US,en;q=0.9"},
                 {"Cookie", "session=abc123; theme=dark"}}},
    {.name = "POST with Content-Length",
     .raw = "POST /submit?x=1&y=2 " H11 "Host: api\r\nContent-Type: application/json\r\n"
            "Content-Length: 13\r\n\r\n",
     .method = "POST", .mid = CP_METHOD_POST, .target = "/submit?x=1&y=2",
     .path = "/submit", .query = "x=1&y=2", .minor = 1, .has_cl = 1, .cl = 13,
     .headers = {{"Host", "api"}, {"Content-Type", "application/json"},
                 {"Content-Length", "13"}}},
    {.name = "HTTP/1.0 without Host",
     .raw = "GET /old HTTP/1.0\r\n\r\n",
     .method = "GET", .mid = CP_METHOD_GET, .target = "/old", .path = "/old",
     .minor = 0},
    {.name = "HTTP/1.0 keep-alive",
     .raw = "HEAD / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n",
     .method = "HEAD", .mid = CP_METHOD_HEAD, .target = "/", .path = "/", .minor = 0,
     .flags = CP_F_CONN_KEEP_ALIVE, .headers = {{"Connection", "Keep-Alive"}}},

    /* --- leading empty lines --- */
    {.name = "two leading CRLFs",
     .raw = "\r\n\r\nGET / " H11 "Host: a\r\n\r\n",
     .method = "GET", .mid = CP_METHOD_GET, .target = "/", .path = "/", .minor = 1,
     .headers = {{"Host", "a"}}},
    {.name = "eight leading CRLFs",
     .raw = "\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\nGET / " H11 "Host: a\r\n\r\n",
     .method = "GET", .mid = CP_METHOD_GET, .target = "/", .path = "/", .minor = 1,
     .headers = {{"Host", "a"}}},

    /* --- methods --- */
    {.name = "PUT", .raw = "PUT /x " H11 "Host: a\r\n\r\n", .method = "PUT",
     .mid = CP_METHOD_PUT, .target = "/x", .path = "/x", .minor = 1,
     .headers = {{"Host", "a"}}},
    {.name = "DELETE", .raw = "DELETE /x " H11 "Host: a\r\n\r\n", .method = "DELETE",
     .mid = CP_METHOD_DELETE, .target = "/x", .path = "/x", .minor = 1,
     .headers = {{"Host", "a"}}},
    {.name = "PATCH", .raw = "PATCH /x " H11 "Host: a\r\n\r\n", .method = "PATCH",
     .mid = CP_METHOD_PATCH, .target = "/x", .path = "/x", .minor = 1,
     .headers = {{"Host", "a"}}},
    {.name = "TRACE", .raw = "TRACE /x " H11 "Host: a\r\n\r\n", .method = "TRACE",
     .mid = CP_METHOD_TRACE, .target = "/x", .path = "/x", .minor = 1,
     .headers = {{"Host", "a"}}},
    {.name = "OPTIONS path", .raw = "OPTIONS /x " H11 "Host: a\r\n\r\n",
     .method = "OPTIONS", .mid = CP_METHOD_OPTIONS, .target = "/x", .path = "/x",
     .minor = 1, .headers = {{"Host", "a"}}},
    {.name = "lower-case get is another token",
     .raw = "get / " H11 "Host: a\r\n\r\n", .method = "get", .mid = CP_METHOD_OTHER,
     .target = "/", .path = "/", .minor = 1, .headers = {{"Host", "a"}}},
    {.name = "extension method with tchars",
     .raw = "M-SEARCH!#$%&'*+.^_`|~9 / " H11 "Host: a\r\n\r\n",
     .method = "M-SEARCH!#$%&'*+.^_`|~9", .mid = CP_METHOD_OTHER, .target = "/",
     .path = "/", .minor = 1, .headers = {{"Host", "a"}}},
    {.name = "PROPFIND", .raw = "PROPFIND /dav " H11 "Host: a\r\n\r\n",
     .method = "PROPFIND", .mid = CP_METHOD_OTHER, .target = "/dav", .path = "/dav",
     .minor = 1, .headers = {{"Host", "a"}}},
    {.name = "PURGE (5 letters)", .raw = "PURGE /x " H11 "Host: a\r\n\r\n",
     .method = "PURGE", .mid = CP_METHOD_OTHER, .target = "/x", .path = "/x",
     .minor = 1, .headers = {{"Host", "a"}}},
    {.name = "UNLOCK (6 letters)", .raw = "UNLOCK /x " H11 "Host: a\r\n\r\n",
     .method = "UNLOCK", .mid = CP_METHOD_OTHER, .target = "/x", .path = "/x",
     .minor = 1, .headers = {{"Host", "a"}}},
    {.name = "CONNECTS (8 letters, not CONNECT)", .raw = "CONNECTS /x " H11 "Host: a\r\n\r\n",
     .method = "CONNECTS", .mid = CP_METHOD_OTHER, .target = "/x", .path = "/x",
     .minor = 1, .headers = {{"Host", "a"}}},
    {.name = "GETS is not GET", .raw = "GETS / " H11 "Host: a\r\n\r\n",
     .method = "GETS", .mid = CP_METHOD_OTHER, .target = "/", .path = "/",
     .minor = 1, .headers = {{"Host", "a"}}},

    /* --- request-target forms --- */
    {.name = "asterisk-form",
     .raw = "OPTIONS * " H11 "Host: a\r\n\r\n", .method = "OPTIONS",
     .mid = CP_METHOD_OPTIONS, .target = "*", .path = "*", .minor = 1,
     .flags = CP_F_ASTERISK_FORM, .headers = {{"Host", "a"}}},
    {.name = "absolute-form",
     .raw = "GET http://example.com:8080/a/b?c=d&e " H11 "Host: example.com:8080\r\n\r\n",
     .method = "GET", .mid = CP_METHOD_GET, .target = "http://example.com:8080/a/b?c=d&e",
     .path = "/a/b", .query = "c=d&e", .minor = 1, .flags = CP_F_ABSOLUTE_FORM,
     .headers = {{"Host", "example.com:8080"}}},
    {.name = "absolute-form, https, upper case, empty path",
     .raw = "GET HTTPS://Example.COM " H11 "Host: Example.COM\r\n\r\n",
     .method = "GET", .mid = CP_METHOD_GET, .target = "HTTPS://Example.COM",
     .path = "", .minor = 1, .flags = CP_F_ABSOLUTE_FORM,
     .headers = {{"Host", "Example.COM"}}},
    {.name = "absolute-form, empty path with query",
     .raw = "GET http://h?x=1 " H11 "Host: h\r\n\r\n",
     .method = "GET", .mid = CP_METHOD_GET, .target = "http://h?x=1", .path = "",
     .query = "x=1", .minor = 1, .flags = CP_F_ABSOLUTE_FORM,
     .headers = {{"Host", "h"}}},
    {.name = "absolute-form, IPv6 authority",
     .raw = "GET http://[::1]:80/ HTTP/1.0\r\n\r\n",
     .method = "GET", .mid = CP_METHOD_GET, .target = "http://[::1]:80/", .path = "/",
     .minor = 0, .flags = CP_F_ABSOLUTE_FORM},
    {.name = "origin-form, empty query and second '?'",
     .raw = "GET /p??a?b " H11 "Host: a\r\n\r\n",
     .method = "GET", .mid = CP_METHOD_GET, .target = "/p??a?b", .path = "/p",
     .query = "?a?b", .minor = 1, .headers = {{"Host", "a"}}},
    {.name = "origin-form, trailing '?'",
     .raw = "GET /p? " H11 "Host: a\r\n\r\n",
     .method = "GET", .mid = CP_METHOD_GET, .target = "/p?", .path = "/p",
     .query = "", .minor = 1, .headers = {{"Host", "a"}}},
    {.name = "target with obs-text, '#', '%', '\"'",
     .raw = "GET /caf\xc3\xa9/%20#x\"y{}|\\^~ " H11 "Host: a\r\n\r\n",
     .method = "GET", .mid = CP_METHOD_GET, .target = "/caf\xc3\xa9/%20#x\"y{}|\\^~",
     .path = "/caf\xc3\xa9/%20#x\"y{}|\\^~", .minor = 1, .headers = {{"Host", "a"}}},

    /* --- field lines --- */
    {.name = "OWS stripped, inner kept, empty values",
     .raw = "GET / " H11 "Host: a\r\nX-A:   a b \t\r\nX-B:\r\nX-C: \t \r\nX-D:\tv\r\n\r\n",
     .method = "GET", .mid = CP_METHOD_GET, .target = "/", .path = "/", .minor = 1,
     .headers = {{"Host", "a"}, {"X-A", "a b"}, {"X-B", ""}, {"X-C", ""},
                 {"X-D", "v"}}},
    {.name = "obs-text and odd bytes in values",
     .raw = "GET / " H11 "Host: a\r\nX-U: \x80\xff" "caf\xc3\xa9 :;\"(),/<=>?@[\\]{}\x7e\r\n\r\n",
     .method = "GET", .mid = CP_METHOD_GET, .target = "/", .path = "/", .minor = 1,
     .headers = {{"Host", "a"}, {"X-U", "\x80\xff" "caf\xc3\xa9 :;\"(),/<=>?@[\\]{}\x7e"}}},
    {.name = "field names of every tchar, colon in value",
     .raw = "GET / " H11 "Host: a\r\n!#$%&'*+-.^_`|~09azAZ: x:y\r\n\r\n",
     .method = "GET", .mid = CP_METHOD_GET, .target = "/", .path = "/", .minor = 1,
     .headers = {{"Host", "a"}, {"!#$%&'*+-.^_`|~09azAZ", "x:y"}}},
    {.name = "semantic names are case-insensitive",
     .raw = "POST / " H11 "HOST: a\r\ncontent-LENGTH: 7\r\nCONNECTION: CLOSE\r\n"
            "expect: 100-Continue\r\n\r\n",
     .method = "POST", .mid = CP_METHOD_POST, .target = "/", .path = "/", .minor = 1,
     .has_cl = 1, .cl = 7, .flags = CP_F_CONN_CLOSE | CP_F_EXPECT_CONTINUE,
     .headers = {{"HOST", "a"}, {"content-LENGTH", "7"}, {"CONNECTION", "CLOSE"},
                 {"expect", "100-Continue"}}},
    {.name = "look-alike names are not semantic",
     .raw = "GET / " H11 "Host: a\r\nTransfer_Encoding: gzip\r\nContent-Lengths: x\r\n"
            "Hosts: b\r\nExpects: 100-continue\r\nConnections: close\r\n\r\n",
     .method = "GET", .mid = CP_METHOD_GET, .target = "/", .path = "/", .minor = 1,
     .headers = {{"Host", "a"}, {"Transfer_Encoding", "gzip"}, {"Content-Lengths", "x"},
                 {"Hosts", "b"}, {"Expects", "100-continue"}, {"Connections", "close"}}},
    {.name = "Host: IPv6 literal",
     .raw = "GET / " H11 "Host: [::1]:8000\r\n\r\n",
     .method = "GET", .mid = CP_METHOD_GET, .target = "/", .path = "/", .minor = 1,
     .headers = {{"Host", "[::1]:8000"}}},
    {.name = "empty Host is allowed",
     .raw = "GET / " H11 "Host:\r\n\r\n",
     .method = "GET", .mid = CP_METHOD_GET, .target = "/", .path = "/", .minor = 1,
     .headers = {{"Host", ""}}},

    /* --- Content-Length --- */
    {.name = "Content-Length list of identical values",
     .raw = "POST / " H11 "Host: a\r\nContent-Length: 5, 5,5\t,  5\r\n\r\n",
     .method = "POST", .mid = CP_METHOD_POST, .target = "/", .path = "/", .minor = 1,
     .has_cl = 1, .cl = 5, .headers = {{"Host", "a"}, {"Content-Length", "5, 5,5\t,  5"}}},
    {.name = "repeated identical Content-Length fields",
     .raw = "POST / " H11 "Content-Length: 5\r\nHost: a\r\nContent-Length: 005\r\n\r\n",
     .method = "POST", .mid = CP_METHOD_POST, .target = "/", .path = "/", .minor = 1,
     .has_cl = 1, .cl = 5,
     .headers = {{"Content-Length", "5"}, {"Host", "a"}, {"Content-Length", "005"}}},
    {.name = "Content-Length: 0",
     .raw = "POST / " H11 "Host: a\r\nContent-Length: 0\r\n\r\n",
     .method = "POST", .mid = CP_METHOD_POST, .target = "/", .path = "/", .minor = 1,
     .has_cl = 1, .cl = 0, .headers = {{"Host", "a"}, {"Content-Length", "0"}}},
    {.name = "Content-Length: 2^62",
     .raw = "POST / " H11 "Host: a\r\nContent-Length: 4611686018427387904\r\n\r\n",
     .method = "POST", .mid = CP_METHOD_POST, .target = "/", .path = "/", .minor = 1,
     .has_cl = 1, .cl = INT64_C(4611686018427387904),
     .headers = {{"Host", "a"}, {"Content-Length", "4611686018427387904"}}},

    /* --- Transfer-Encoding --- */
    {.name = "Transfer-Encoding: chunked",
     .raw = "POST /up " H11 "Host: a\r\nTransfer-Encoding: chunked\r\n\r\n",
     .method = "POST", .mid = CP_METHOD_POST, .target = "/up", .path = "/up",
     .minor = 1, .flags = CP_F_CHUNKED,
     .headers = {{"Host", "a"}, {"Transfer-Encoding", "chunked"}}},
    {.name = "Transfer-Encoding: CHUNKED with OWS and empty elements",
     .raw = "POST / " H11 "Host: a\r\ntransfer-encoding: \t, ,CHUNKED , \r\n\r\n",
     .method = "POST", .mid = CP_METHOD_POST, .target = "/", .path = "/", .minor = 1,
     .flags = CP_F_CHUNKED,
     .headers = {{"Host", "a"}, {"transfer-encoding", ", ,CHUNKED ,"}}},
    {.name = "Transfer-Encoding over two fields, first only a comma",
     .raw = "POST / " H11 "Host: a\r\nTransfer-Encoding: ,\r\nTransfer-Encoding: chunked\r\n\r\n",
     .method = "POST", .mid = CP_METHOD_POST, .target = "/", .path = "/", .minor = 1,
     .flags = CP_F_CHUNKED,
     .headers = {{"Host", "a"}, {"Transfer-Encoding", ","},
                 {"Transfer-Encoding", "chunked"}}},

    /* --- Connection, Upgrade, Expect --- */
    {.name = "websocket upgrade",
     .raw = "GET /chat " H11 "Host: server.example.com\r\nUpgrade: websocket\r\n"
            "Connection: keep-alive, Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n",
     .method = "GET", .mid = CP_METHOD_GET, .target = "/chat", .path = "/chat",
     .minor = 1, .flags = CP_F_UPGRADE | CP_F_CONN_KEEP_ALIVE,
     .headers = {{"Host", "server.example.com"}, {"Upgrade", "websocket"},
                 {"Connection", "keep-alive, Upgrade"},
                 {"Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="},
                 {"Sec-WebSocket-Version", "13"}}},
    {.name = "Connection list over fields, unknown options ignored",
     .raw = "GET / " H11 "Host: a\r\nConnection: ,foo,  close ,\r\nConnection: x-close, Keep-Alive\r\n\r\n",
     .method = "GET", .mid = CP_METHOD_GET, .target = "/", .path = "/", .minor = 1,
     .flags = CP_F_CONN_CLOSE | CP_F_CONN_KEEP_ALIVE,
     .headers = {{"Host", "a"}, {"Connection", ",foo,  close ,"},
                 {"Connection", "x-close, Keep-Alive"}}},
    {.name = "Expect other than 100-continue is ignored",
     .raw = "PUT / " H11 "Host: a\r\nExpect: 100-continue-ish\r\nContent-Length: 1\r\n\r\n",
     .method = "PUT", .mid = CP_METHOD_PUT, .target = "/", .path = "/", .minor = 1,
     .has_cl = 1, .cl = 1,
     .headers = {{"Host", "a"}, {"Expect", "100-continue-ish"}, {"Content-Length", "1"}}},
    {.name = "empty Upgrade still counts as present",
     .raw = "GET / " H11 "Host: a\r\nUpgrade:\r\n\r\n",
     .method = "GET", .mid = CP_METHOD_GET, .target = "/", .path = "/", .minor = 1,
     .flags = CP_F_UPGRADE, .headers = {{"Host", "a"}, {"Upgrade", ""}}},

    /* --- proxy headers: flagged (in any case), never judged by the parser --- */
    {.name = "X-Forwarded-For flags proxy headers",
     .raw = "GET / " H11 "Host: a\r\nx-FORWARDED-for: 203.0.113.7, 10.0.0.1\r\n\r\n",
     .method = "GET", .mid = CP_METHOD_GET, .target = "/", .path = "/", .minor = 1,
     .flags = CP_F_PROXY_HEADERS,
     .headers = {{"Host", "a"}, {"x-FORWARDED-for", "203.0.113.7, 10.0.0.1"}}},
    {.name = "X-Forwarded-Proto flags proxy headers",
     .raw = "GET / " H11 "Host: a\r\nX-Forwarded-Proto: https\r\n\r\n",
     .method = "GET", .mid = CP_METHOD_GET, .target = "/", .path = "/", .minor = 1,
     .flags = CP_F_PROXY_HEADERS,
     .headers = {{"Host", "a"}, {"X-Forwarded-Proto", "https"}}},
    {.name = "Forwarded flags proxy headers, even with a nonsense value",
     .raw = "GET / " H11 "Host: a\r\nForwarded: ;;=,\r\n\r\n",
     .method = "GET", .mid = CP_METHOD_GET, .target = "/", .path = "/", .minor = 1,
     .flags = CP_F_PROXY_HEADERS, .headers = {{"Host", "a"}, {"Forwarded", ";;=,"}}},
    {.name = "look-alike names do not flag proxy headers",
     .raw = "GET / " H11 "Host: a\r\nX-Forwarded-Host: b\r\nX-Forwarded-Fo: c\r\n"
            "Forwarded-For: d\r\nX-Forwarded-Protocol: e\r\n\r\n",
     .method = "GET", .mid = CP_METHOD_GET, .target = "/", .path = "/", .minor = 1,
     .headers = {{"Host", "a"}, {"X-Forwarded-Host", "b"}, {"X-Forwarded-Fo", "c"},
                 {"Forwarded-For", "d"}, {"X-Forwarded-Protocol", "e"}}},
};
/* clang-format on */

/* ---- rejected heads ------------------------------------------------------ */

typedef struct {
    const char *name;
    const char *raw;
    size_t len; /* 0: strlen(raw) */
    int status;
    const cp_limits *lim;
} err_case;

#define RL "GET / " H11 /* a request line */
#define LIT(s) s, sizeof(s) - 1 /* a literal and its length, NULs included */
#define HOST "Host: a\r\n"

/* clang-format off */
static const err_case err_cases[] = {
    /* request line */
    {"double SP after method", "GET  / " H11 HOST "\r\n", 0, 400, NULL},
    {"double SP before version", "GET /  " H11 HOST "\r\n", 0, 400, NULL},
    {"SP after version", "GET / HTTP/1.1 \r\n" HOST "\r\n", 0, 400, NULL},
    {"leading SP", " GET / " H11 HOST "\r\n", 0, 400, NULL},
    {"HTAB as separator", "GET\t/ " H11 HOST "\r\n", 0, 400, NULL},
    {"HTAB in target", "GET /a\tb " H11 HOST "\r\n", 0, 400, NULL},
    {"SP in target", "GET /a b " H11 HOST "\r\n", 0, 400, NULL},
    {"DEL in target", "GET /a\x7f " H11 HOST "\r\n", 0, 400, NULL},
    {"NUL in target", LIT("GET /a\0b " H11 HOST "\r\n"), 400, NULL},
    {"NUL in method", LIT("G\0T / " H11 HOST "\r\n"), 400, NULL},
    {"non-tchar in method", "GE(T / " H11 HOST "\r\n", 0, 400, NULL},
    {"bare CR in method", "GE\rT / " H11 HOST "\r\n", 0, 400, NULL},
    {"lower-case connect is not CONNECT", "connect h:443 " H11 HOST "\r\n", 0, 400, NULL},
    {"short relative target", "GET a " H11 HOST "\r\n", 0, 400, NULL},
    {"method only", "GET\r\n" HOST "\r\n", 0, 400, NULL},
    {"no version", "GET /\r\n" HOST "\r\n", 0, 400, NULL},
    {"empty version", "GET / \r\n" HOST "\r\n", 0, 400, NULL},
    {"lower-case http", "GET / http/1.1\r\n" HOST "\r\n", 0, 400, NULL},
    {"HTTP/1", "GET / HTTP/1\r\n" HOST "\r\n", 0, 400, NULL},
    {"HTTP/1.10", "GET / HTTP/1.10\r\n" HOST "\r\n", 0, 400, NULL},
    {"HTTP/a.1", "GET / HTTP/a.1\r\n" HOST "\r\n", 0, 400, NULL},
    {"HTTP/1,1", "GET / HTTP/1,1\r\n" HOST "\r\n", 0, 400, NULL},
    {"HTTP/1.a", "GET / HTTP/1.a\r\n" HOST "\r\n", 0, 400, NULL},
    {"HTTP/1.1 with bare CR inside", "GET / HTTP/1.\r1\r\n" HOST "\r\n", 0, 400, NULL},
    {"HTTP/11", "GET / HTTP/11\r\n" HOST "\r\n", 0, 400, NULL},
    {"HTTP/1.2", "GET / HTTP/1.2\r\n" HOST "\r\n", 0, 505, NULL},
    {"HTTP/2.0", "GET / HTTP/2.0\r\n" HOST "\r\n", 0, 505, NULL},
    {"HTTP/0.9", "GET / HTTP/0.9\r\n\r\n", 0, 505, NULL},
    {"HTTP/9.9", "GET / HTTP/9.9\r\n\r\n", 0, 505, NULL},
    {"CONNECT", "CONNECT example.com:443 " H11 "Host: example.com:443\r\n\r\n", 0, 501, NULL},
    {"CONNECT origin-form", "CONNECT / " H11 HOST "\r\n", 0, 501, NULL},
    {"asterisk with GET", "GET * " H11 HOST "\r\n", 0, 400, NULL},
    {"asterisk plus more", "OPTIONS *x " H11 HOST "\r\n", 0, 400, NULL},
    {"asterisk then path", "OPTIONS */ " H11 HOST "\r\n", 0, 400, NULL},
    {"authority-form with GET", "GET example.com:80 " H11 HOST "\r\n", 0, 400, NULL},
    {"relative target", "GET index.html " H11 HOST "\r\n", 0, 400, NULL},
    {"other scheme", "GET ftp://h/ " H11 HOST "\r\n", 0, 400, NULL},
    {"http: without slashes", "GET http:h/ " H11 HOST "\r\n", 0, 400, NULL},
    {"http:// empty authority", "GET http:/// " H11 HOST "\r\n", 0, 400, NULL},
    {"http:// alone", "GET http:// " H11 HOST "\r\n", 0, 400, NULL},
    {"http://? empty authority", "GET http://?x " H11 HOST "\r\n", 0, 400, NULL},
    {"userinfo in absolute-form", "GET http://user@evil/ " H11 HOST "\r\n", 0, 400, NULL},

    /* line ends */
    {"bare LF after request line", "GET / HTTP/1.1\n" HOST "\r\n", 0, 400, NULL},
    {"bare LF after field", RL "Host: a\n\r\n", 0, 400, NULL},
    {"bare LF as final line", RL HOST "\n", 0, 400, NULL},
    {"bare LF before request line", "\nGET / " H11 HOST "\r\n", 0, 400, NULL},
    {"bare CR in request line", "GET / HTTP/1.1\rX\r\n" HOST "\r\n", 0, 400, NULL},
    {"bare CR in target", "GET /a\rb " H11 HOST "\r\n", 0, 400, NULL},
    {"bare CR in field value", RL "Host: a\rb\r\n\r\n", 0, 400, NULL},
    {"bare CR in field name", RL "Ho\rst: a\r\n\r\n", 0, 400, NULL},
    {"bare CR as final line", RL HOST "\rX", 0, 400, NULL},
    {"CR CR LF", RL HOST "\r\r\n", 0, 400, NULL},
    {"bare CR, no LF yet", RL "Host: a\rbcd", 0, 400, NULL},
    {"bare CR in first line, no LF yet", "GET /\rx", 0, 400, NULL},
    {"nine leading empty lines",
     "\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\nGET / " H11 HOST "\r\n", 0, 400, NULL},
    {"endless empty lines", "\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n", 0, 400,
     NULL},

    /* field lines */
    {"obs-fold", RL HOST "X: a\r\n b\r\n\r\n", 0, 400, NULL},
    {"obs-fold with HTAB", RL HOST "X: a\r\n\tb\r\n\r\n", 0, 400, NULL},
    {"whitespace before the first field", RL " Host: a\r\n\r\n", 0, 400, NULL},
    {"SP before colon", RL "Host : a\r\n\r\n", 0, 400, NULL},
    {"HTAB before colon", RL "Host\t: a\r\n\r\n", 0, 400, NULL},
    {"empty field name", RL HOST ": a\r\n\r\n", 0, 400, NULL},
    {"no colon", RL HOST "X-Foo\r\n\r\n", 0, 400, NULL},
    {"SP in name", RL HOST "X Foo: a\r\n\r\n", 0, 400, NULL},
    {"non-tchar in name", RL HOST "X(Foo): a\r\n\r\n", 0, 400, NULL},
    {"obs-text in name", RL HOST "X\xc3\xa9: a\r\n\r\n", 0, 400, NULL},
    {"NUL in value", LIT(RL HOST "X: a\0b\r\n\r\n"), 400, NULL},
    {"DEL in value", RL HOST "X: a\x7f" "b\r\n\r\n", 0, 400, NULL},
    {"ESC in value", RL HOST "X: \x1b[0m\r\n\r\n", 0, 400, NULL},
    {"VT in value", RL HOST "X: a\vb\r\n\r\n", 0, 400, NULL},
    {"FF in value", RL HOST "X: a\fb\r\n\r\n", 0, 400, NULL},

    /* Host */
    {"missing Host in HTTP/1.1", RL "Accept: */*\r\n\r\n", 0, 400, NULL},
    {"two Host fields", RL HOST "Host: b\r\n\r\n", 0, 400, NULL},
    {"two Host fields, same value", RL HOST HOST "\r\n", 0, 400, NULL},
    {"two Host fields in HTTP/1.0", "GET / HTTP/1.0\r\n" HOST HOST "\r\n", 0, 400, NULL},
    {"Host with SP", RL "Host: a b\r\n\r\n", 0, 400, NULL},
    {"Host with '/'", RL "Host: a/b\r\n\r\n", 0, 400, NULL},
    {"Host with userinfo", RL "Host: user@a\r\n\r\n", 0, 400, NULL},
    {"Host list", RL "Host: a, b\r\n\r\n", 0, 400, NULL},

    /* Content-Length */
    {"CL empty", RL HOST "Content-Length:\r\n\r\n", 0, 400, NULL},
    {"CL +5", RL HOST "Content-Length: +5\r\n\r\n", 0, 400, NULL},
    {"CL -1", RL HOST "Content-Length: -1\r\n\r\n", 0, 400, NULL},
    {"CL 0x5", RL HOST "Content-Length: 0x5\r\n\r\n", 0, 400, NULL},
    {"CL 5 5", RL HOST "Content-Length: 5 5\r\n\r\n", 0, 400, NULL},
    {"CL 5.0", RL HOST "Content-Length: 5.0\r\n\r\n", 0, 400, NULL},
    {"CL 1e3", RL HOST "Content-Length: 1e3\r\n\r\n", 0, 400, NULL},
    {"CL differing list", RL HOST "Content-Length: 5, 6\r\n\r\n", 0, 400, NULL},
    {"CL trailing comma", RL HOST "Content-Length: 5,\r\n\r\n", 0, 400, NULL},
    {"CL leading comma", RL HOST "Content-Length: ,5\r\n\r\n", 0, 400, NULL},
    {"CL empty element", RL HOST "Content-Length: 5,,5\r\n\r\n", 0, 400, NULL},
    {"CL 2^62 + 1", RL HOST "Content-Length: 4611686018427387905\r\n\r\n", 0, 400, NULL},
    {"CL 2^64", RL HOST "Content-Length: 18446744073709551616\r\n\r\n", 0, 400, NULL},
    {"CL huge", RL HOST "Content-Length: 99999999999999999999999999999\r\n\r\n", 0, 400,
     NULL},
    {"duplicate CL, different", RL HOST "Content-Length: 5\r\nContent-Length: 6\r\n\r\n", 0,
     400, NULL},
    {"duplicate CL, second empty", RL HOST "Content-Length: 5\r\nContent-Length:\r\n\r\n",
     0, 400, NULL},

    /* Transfer-Encoding and smuggling */
    {"CL.TE", "POST / " H11 HOST "Content-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n",
     0, 400, NULL},
    {"TE.CL", "POST / " H11 HOST "Transfer-Encoding: chunked\r\nContent-Length: 6\r\n\r\n",
     0, 400, NULL},
    {"CL with unknown TE", "POST / " H11 HOST "Content-Length: 6\r\nTransfer-Encoding: x\r\n\r\n",
     0, 400, NULL},
    {"TE in HTTP/1.0", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 0, 400,
     NULL},
    {"TE xchunked", "POST / " H11 HOST "Transfer-Encoding: xchunked\r\n\r\n", 0, 501, NULL},
    {"TE chunkedx", "POST / " H11 HOST "Transfer-Encoding: chunkedx\r\n\r\n", 0, 501, NULL},
    {"TE chunked, identity", "POST / " H11 HOST "Transfer-Encoding: chunked, identity\r\n\r\n",
     0, 501, NULL},
    {"TE identity", "POST / " H11 HOST "Transfer-Encoding: identity\r\n\r\n", 0, 501, NULL},
    {"TE gzip, chunked", "POST / " H11 HOST "Transfer-Encoding: gzip, chunked\r\n\r\n", 0,
     501, NULL},
    {"TE chunked then gzip field",
     "POST / " H11 HOST "Transfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n\r\n", 0,
     501, NULL},
    {"TE gzip;q=1 (parameters on unknown)",
     "POST / " H11 HOST "Transfer-Encoding: gzip;level=1, chunked\r\n\r\n", 0, 501, NULL},
    {"TE chunked twice", "POST / " H11 HOST "Transfer-Encoding: chunked, chunked\r\n\r\n",
     0, 400, NULL},
    {"TE chunked in two fields",
     "POST / " H11 HOST "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
     0, 400, NULL},
    {"TE chunked with parameter",
     "POST / " H11 HOST "Transfer-Encoding: chunked;foo=bar\r\n\r\n", 0, 400, NULL},
    {"TE chunked with empty parameter",
     "POST / " H11 HOST "Transfer-Encoding: chunked ;\r\n\r\n", 0, 400, NULL},
    {"TE empty", "POST / " H11 HOST "Transfer-Encoding:\r\n\r\n", 0, 400, NULL},
    {"TE whitespace only", "POST / " H11 HOST "Transfer-Encoding:  \t \r\n\r\n", 0, 400,
     NULL},
    {"TE only commas", "POST / " H11 HOST "Transfer-Encoding: , ,\r\n\r\n", 0, 400, NULL},
    {"TE quoted", "POST / " H11 HOST "Transfer-Encoding: \"chunked\"\r\n\r\n", 0, 400,
     NULL},
    {"TE chunked chunked (SP)", "POST / " H11 HOST "Transfer-Encoding: chunked chunked\r\n\r\n",
     0, 400, NULL},
    {"TE with SP before colon", "POST / " H11 HOST "Transfer-Encoding : chunked\r\n\r\n", 0,
     400, NULL},
    {"TE obs-fold", "POST / " H11 HOST "Transfer-Encoding:\r\n chunked\r\n\r\n", 0, 400,
     NULL},
    {"TE with vertical tab", "POST / " H11 HOST "Transfer-Encoding:\vchunked\r\n\r\n", 0,
     400, NULL},

    /* limits (see also test_limits) */
    {"too many headers", RL HOST "A: 1\r\nB: 2\r\n\r\n", 0, 431,
     &(const cp_limits){8190, 8190, 2, 0}},
    {"max_headers 0", "GET / HTTP/1.0\r\nA: 1\r\n\r\n", 0, 431,
     &(const cp_limits){8190, 8190, 0, 0}},
    {"request line too long, complete", "GET /abcdefgh " H11 HOST "\r\n", 0, 414,
     &(const cp_limits){21, 8190, 100, 0}},
    {"request line too long, no LF", "GET /abcdefghijklmnopqrstuvwxyz", 0, 414,
     &(const cp_limits){22, 8190, 100, 0}},
    {"field line too long, complete", RL HOST "X: 0123456789\r\n\r\n", 0, 431,
     &(const cp_limits){8190, 12, 100, 0}},
    {"field line too long, no LF", RL HOST "X: 0123456789abcdef", 0, 431,
     &(const cp_limits){8190, 12, 100, 0}},
};
/* clang-format on */

/* ---- drivers ------------------------------------------------------------- */

static int parse(const char *raw, size_t n, const cp_limits *lim, cp_request *req,
                 cp_header *hdrs, ptrdiff_t *ret)
{
    char *buf = copy_exact(raw, n);
    *ret = cp_parse_request(buf, n, lim, req, hdrs);
    free(buf);
    return 0;
}

/* Check a CP_INCOMPLETE answer for buf[0..n). */
static void check_incomplete(const char *buf, size_t n, const cp_limits *lim,
                             const cp_request *req)
{
    size_t ils = req->incomplete_line_start;
    CHECK(ils <= n, "incomplete_line_start %zu > len %zu", ils, n);
    if (ils > n)
        return;
    CHECK(ils == 0 || (ils >= 2 && buf[ils - 2] == '\r' && buf[ils - 1] == '\n'),
          "incomplete_line_start %zu is not at a line start", ils);
    CHECK(memchr(buf + ils, '\n', n - ils) == NULL,
          "a '\\n' after incomplete_line_start %zu (len %zu)", ils, n);
    CHECK(n - ils <= cp_longest_line(lim), "partial line of %zu bytes > longest %zu",
          n - ils, cp_longest_line(lim));
}

static void check_ok_fields(const ok_case *c, const char *buf, const cp_request *r,
                            const cp_header *h)
{
    SPAN_CHECK(buf, r->method, c->method);
    CHECK(r->method_id == c->mid, "method_id %d, want %d", r->method_id, c->mid);
    SPAN_CHECK(buf, r->target, c->target);
    SPAN_CHECK(buf, r->path, c->path);
    SPAN_CHECK(buf, r->query, c->query ? c->query : "");
    CHECK(r->http_minor == c->minor, "http_minor %d, want %d", r->http_minor, c->minor);
    int64_t cl = c->has_cl ? c->cl : -1;
    CHECK(r->content_length == cl, "content_length %lld, want %lld",
          (long long)r->content_length, (long long)cl);
    CHECK(r->flags == c->flags, "flags 0x%x, want 0x%x", r->flags, c->flags);
    size_t nh = 0;
    while (nh < 16 && c->headers[nh].name != NULL)
        nh++;
    CHECK(r->num_headers == nh, "num_headers %zu, want %zu", r->num_headers, nh);
    for (size_t i = 0; i < nh && i < r->num_headers; i++) {
        SPAN_CHECK(buf, h[i].name, c->headers[i].name);
        SPAN_CHECK(buf, h[i].value, c->headers[i].value);
    }
}

static void run_ok_case(const ok_case *c)
{
    const cp_limits *lim = c->lim ? c->lim : &default_limits;
    size_t n = strlen(c->raw);
    cp_header hdrs[128];
    cp_request req;
    ptrdiff_t ret;
    char label[160];

    /* whole */
    snprintf(label, sizeof label, "%s / whole", c->name);
    current = label;
    {
        char *buf = copy_exact(c->raw, n);
        ret = cp_parse_request(buf, n, lim, &req, hdrs);
        CHECK(ret == (ptrdiff_t)n, "returned %td (status %d: %s), want %zu", ret,
              req.error_status, req.error_reason ? req.error_reason : "-", n);
        if (ret == (ptrdiff_t)n)
            check_ok_fields(c, buf, &req, hdrs);
        free(buf);
    }

    /* every proper prefix is incomplete */
    for (size_t k = 0; k < n; k++) {
        snprintf(label, sizeof label, "%s / prefix %zu", c->name, k);
        current = label;
        char *buf = copy_exact(c->raw, k);
        ret = cp_parse_request(buf, k, lim, &req, hdrs);
        CHECK(ret == CP_INCOMPLETE, "returned %td (status %d: %s)", ret,
              req.error_status, req.error_reason ? req.error_reason : "-");
        if (ret == CP_INCOMPLETE)
            check_incomplete(buf, k, lim, &req);
        free(buf);
    }

    /* one byte at a time, resumed: the parse carries on from where it
       stopped, as a connection receiving a slow head does */
    snprintf(label, sizeof label, "%s / resumed byte by byte", c->name);
    current = label;
    {
        cp_head_progress progress = {0};
        ret = CP_INCOMPLETE;
        for (size_t k = 0; k <= n && ret == CP_INCOMPLETE; k++) {
            char *buf = copy_exact(c->raw, k);
            ret = cp_parse_request_from(buf, k, lim, &req, hdrs, &progress);
            if (k < n) {
                CHECK(ret == CP_INCOMPLETE, "prefix %zu returned %td (status %d)", k, ret,
                      req.error_status);
                if (ret == CP_INCOMPLETE)
                    check_incomplete(buf, k, lim, &req);
            } else {
                CHECK(ret == (ptrdiff_t)n, "returned %td, want %zu", ret, n);
                if (ret == (ptrdiff_t)n)
                    check_ok_fields(c, buf, &req, hdrs);
            }
            free(buf);
        }
    }

    /* followed by the next pipelined request */
    snprintf(label, sizeof label, "%s / pipelined", c->name);
    current = label;
    {
        size_t tn = sizeof next_request - 1;
        char *buf = concat(c->raw, n, next_request, tn);
        ret = cp_parse_request(buf, n + tn, lim, &req, hdrs);
        CHECK(ret == (ptrdiff_t)n, "returned %td, want %zu", ret, n);
        if (ret == (ptrdiff_t)n) {
            check_ok_fields(c, buf, &req, hdrs);
            /* and the next one parses from there */
            ret = cp_parse_request(buf + n, tn, lim, &req, hdrs);
            CHECK(ret == (ptrdiff_t)tn, "next request returned %td", ret);
        }
        free(buf);
    }
}

static void run_err_case(const err_case *c)
{
    const cp_limits *lim = c->lim ? c->lim : &default_limits;
    size_t n = c->len ? c->len : strlen(c->raw);
    cp_header hdrs[128];
    cp_request req;
    ptrdiff_t ret;
    char label[160];

    snprintf(label, sizeof label, "%s / whole", c->name);
    current = label;
    parse(c->raw, n, lim, &req, hdrs, &ret);
    CHECK(ret == CP_ERROR && req.error_status == c->status,
          "returned %td, status %d (%s), want error %d", ret, req.error_status,
          req.error_reason ? req.error_reason : "-", c->status);
    CHECK(ret != CP_ERROR || req.error_reason != NULL, "no error_reason");

    /* Prefixes: incomplete, or already this very error. */
    for (size_t k = 0; k < n; k++) {
        snprintf(label, sizeof label, "%s / prefix %zu", c->name, k);
        current = label;
        parse(c->raw, k, lim, &req, hdrs, &ret);
        CHECK(ret == CP_INCOMPLETE ||
                  (ret == CP_ERROR && req.error_status == c->status),
              "returned %td, status %d (%s)", ret, req.error_status,
              req.error_reason ? req.error_reason : "-");
    }

    /* One byte at a time, resumed: the same error, once it can be told. */
    snprintf(label, sizeof label, "%s / resumed byte by byte", c->name);
    current = label;
    {
        cp_head_progress progress = {0};
        ret = CP_INCOMPLETE;
        size_t k = 0;
        for (; k <= n && ret == CP_INCOMPLETE; k++) {
            char *buf = copy_exact(c->raw, k);
            ret = cp_parse_request_from(buf, k, lim, &req, hdrs, &progress);
            free(buf);
        }
        CHECK(ret == CP_ERROR && req.error_status == c->status,
              "returned %td at %zu bytes, status %d (%s), want error %d", ret, k,
              req.error_status, req.error_reason ? req.error_reason : "-", c->status);
    }

    /* The next request behind it changes nothing. */
    snprintf(label, sizeof label, "%s / pipelined", c->name);
    current = label;
    {
        size_t tn = sizeof next_request - 1;
        char *buf = concat(c->raw, n, next_request, tn);
        ret = cp_parse_request(buf, n + tn, lim, &req, hdrs);
        CHECK(ret == CP_ERROR && req.error_status == c->status,
              "returned %td, status %d (%s), want error %d", ret, req.error_status,
              req.error_reason ? req.error_reason : "-", c->status);
        free(buf);
    }
}

/* ---- limits, exactly at and just over ------------------------------------ */

/* "GET /xxx...x HTTP/1.1" with a request line of exactly `line` bytes. */
static char *make_request_line(size_t line, const char *rest, size_t *n)
{
    size_t rl = strlen(rest);
    char *p = malloc(line + 2 + rl);
    size_t path = line - 4 - 9; /* "GET " and " HTTP/1.1" */
    memcpy(p, "GET ", 4);
    p[4] = '/';
    memset(p + 5, 'a', path - 1);
    memcpy(p + 4 + path, " HTTP/1.1\r\n", 11);
    memcpy(p + line + 2, rest, rl);
    *n = line + 2 + rl;
    return p;
}

/* "X: vvv...v" with a field line of exactly `line` bytes, after RL HOST. */
static char *make_field_line(size_t line, size_t *n)
{
    const char *head = RL HOST;
    size_t hl = strlen(head);
    char *p = malloc(hl + line + 4);
    memcpy(p, head, hl);
    memcpy(p + hl, "X: ", 3);
    memset(p + hl + 3, 'v', line - 3);
    memcpy(p + hl + line, "\r\n\r\n", 4);
    *n = hl + line + 4;
    return p;
}

static void test_limits(void)
{
    cp_header hdrs[8];
    cp_request req;
    ptrdiff_t ret;
    const size_t max = 40;
    cp_limits lim = {max, max, 4, 0};
    size_t n;
    char *p;

    current = "limits: request line exactly max";
    p = make_request_line(max, HOST "\r\n", &n);
    ret = cp_parse_request(p, n, &lim, &req, hdrs);
    CHECK(ret == (ptrdiff_t)n, "returned %td", ret);
    /* max bytes + CR without LF: still incomplete; max + 1 non-CR: 414 */
    ret = cp_parse_request(p, max + 1, &lim, &req, hdrs);
    CHECK(ret == CP_INCOMPLETE, "max + CR: returned %td", ret);
    ret = cp_parse_request(p, max, &lim, &req, hdrs);
    CHECK(ret == CP_INCOMPLETE, "max: returned %td", ret);
    free(p);

    current = "limits: request line max + 1";
    p = make_request_line(max + 1, HOST "\r\n", &n);
    ret = cp_parse_request(p, n, &lim, &req, hdrs);
    CHECK(ret == CP_ERROR && req.error_status == 414, "returned %td/%d", ret,
          req.error_status);
    /* detected as soon as max + 1 content bytes are there */
    ret = cp_parse_request(p, max + 1, &lim, &req, hdrs);
    CHECK(ret == CP_ERROR && req.error_status == 414, "early: returned %td/%d", ret,
          req.error_status);
    ret = cp_parse_request(p, max, &lim, &req, hdrs);
    CHECK(ret == CP_INCOMPLETE, "max bytes of it: returned %td", ret);
    free(p);

    current = "limits: field line exactly max";
    p = make_field_line(max, &n);
    ret = cp_parse_request(p, n, &lim, &req, hdrs);
    CHECK(ret == (ptrdiff_t)n, "returned %td (%s)", ret,
          ret == CP_ERROR ? req.error_reason : "");
    CHECK(ret != (ptrdiff_t)n || hdrs[1].value.len == max - 3, "value len %u",
          (unsigned)hdrs[1].value.len);
    free(p);

    current = "limits: field line max + 1";
    p = make_field_line(max + 1, &n);
    ret = cp_parse_request(p, n, &lim, &req, hdrs);
    CHECK(ret == CP_ERROR && req.error_status == 431, "returned %td/%d", ret,
          req.error_status);
    ret = cp_parse_request(p, n - 4, &lim, &req, hdrs); /* no line end yet */
    CHECK(ret == CP_ERROR && req.error_status == 431, "early: returned %td/%d", ret,
          req.error_status);
    ret = cp_parse_request(p, n - 5, &lim, &req, hdrs); /* max bytes of it */
    CHECK(ret == CP_INCOMPLETE, "max bytes of it: returned %td", ret);
    free(p);

    current = "limits: exactly max_headers";
    {
        const char *raw = RL HOST "A: 1\r\nB: 2\r\nC: 3\r\n\r\n";
        ret = cp_parse_request(raw, strlen(raw), &lim, &req, hdrs);
        CHECK(ret == (ptrdiff_t)strlen(raw) && req.num_headers == 4, "returned %td",
              ret);
        const char *raw5 = RL HOST "A: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n";
        ret = cp_parse_request(raw5, strlen(raw5), &lim, &req, hdrs);
        CHECK(ret == CP_ERROR && req.error_status == 431, "5 fields: returned %td/%d",
              ret, req.error_status);
    }

    current = "limits: whole head exactly max_head_size";
    {
        static const char head[] = "GET / HTTP/1.1\r\nHost: a\r\nX-Pad: 0123456789\r\n\r\n";
        size_t hn = sizeof head - 1;
        cp_limits hl = {8190, 8190, 100, hn};
        ret = cp_parse_request(head, hn, &hl, &req, hdrs);
        CHECK(ret == (ptrdiff_t)hn, "returned %td/%d", ret, req.error_status);
        hl.max_head_size = hn - 1; /* one byte short: the final CRLF does not fit */
        ret = cp_parse_request(head, hn, &hl, &req, hdrs);
        CHECK(ret == CP_ERROR && req.error_status == 431, "returned %td/%d", ret,
              req.error_status);
        /* incomplete and already longer than the limit: 431 without waiting
           for a line end */
        hl.max_head_size = 20;
        ret = cp_parse_request(head, 30, &hl, &req, hdrs);
        CHECK(ret == CP_ERROR && req.error_status == 431, "returned %td/%d", ret,
              req.error_status);
        /* ... but a prefix that still fits is only incomplete */
        ret = cp_parse_request(head, 20, &hl, &req, hdrs);
        CHECK(ret == CP_INCOMPLETE, "returned %td/%d", ret, req.error_status);
        /* a request line that reaches past the head limit is too long: 414 */
        hl.max_head_size = 10;
        ret = cp_parse_request(head, hn, &hl, &req, hdrs);
        CHECK(ret == CP_ERROR && req.error_status == 414, "returned %td/%d", ret,
              req.error_status);
        /* leading empty lines count toward the head */
        static const char lead[] = "\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n";
        hl.max_head_size = sizeof lead - 2;
        ret = cp_parse_request(lead, sizeof lead - 1, &hl, &req, hdrs);
        CHECK(ret == CP_ERROR && req.error_status == 431, "returned %td/%d", ret,
              req.error_status);
        /* resumed parsing honours it the same way */
        cp_head_progress progress = {0};
        hl.max_head_size = hn - 1;
        ret = CP_INCOMPLETE;
        for (size_t k = 0; k <= hn && ret == CP_INCOMPLETE; k++)
            ret = cp_parse_request_from(head, k, &hl, &req, hdrs, &progress);
        CHECK(ret == CP_ERROR && req.error_status == 431, "resumed: returned %td/%d", ret,
              req.error_status);
    }

    current = "limits: zero limits";
    {
        cp_limits z = {0, 0, 0, 0};
        ret = cp_parse_request("G", 1, &z, &req, NULL);
        CHECK(ret == CP_ERROR && req.error_status == 414, "returned %td/%d", ret,
              req.error_status);
        ret = cp_parse_request("\r\n\r", 3, &z, &req, NULL);
        CHECK(ret == CP_INCOMPLETE && req.incomplete_line_start == 2, "returned %td",
              ret);
    }

    current = "cp_longest_line";
    {
        cp_limits a = {100, 50, 1, 0}, b = {50, 100, 1, 0}, c = {SIZE_MAX, 1, 1, 0};
        CHECK(cp_longest_line(&a) == 101, "%zu", cp_longest_line(&a));
        CHECK(cp_longest_line(&b) == 101, "%zu", cp_longest_line(&b));
        CHECK(cp_longest_line(&c) == SIZE_MAX, "%zu", cp_longest_line(&c));
        CHECK(cp_longest_line(&default_limits) == 8191, "%zu",
              cp_longest_line(&default_limits));
    }
}

/* ---- incomplete answers ---------------------------------------------------- */

static void test_incomplete(void)
{
    static const struct {
        const char *raw;
        size_t ils;
    } cases[] = {
        {"", 0},
        {"\r", 0},
        {"\r\n", 2},
        {"\r\n\r", 2},
        {"GET", 0},
        {"GET / HTTP/1.1\r", 0},
        {"GET / HTTP/1.1\r\n", 16},
        {"GET / HTTP/1.1\r\nHost: a\r\n", 25},
        {"GET / HTTP/1.1\r\nHost: a\r\n\r", 25},
        {"GET / HTTP/1.1\r\nHost: a\r\nX-Long: abc", 25},
        /* lines before the incomplete one are already validated */
        {"\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n", 16},
    };
    cp_header hdrs[8];
    cp_request req;

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        current = cases[i].raw;
        size_t n = strlen(cases[i].raw);
        char *buf = copy_exact(cases[i].raw, n);
        ptrdiff_t ret = cp_parse_request(buf, n, &default_limits, &req, hdrs);
        CHECK(ret == CP_INCOMPLETE, "returned %td", ret);
        CHECK(req.incomplete_line_start == cases[i].ils,
              "incomplete_line_start %zu, want %zu",
              req.incomplete_line_start, cases[i].ils);
        free(buf);
    }
    /* an error in an earlier complete line wins over an incomplete one */
    current = "error before incomplete line";
    ptrdiff_t ret = cp_parse_request("GET / HTTP/1.1\r\nA : b\r\nX", 25,
                                     &default_limits, &req, hdrs);
    CHECK(ret == CP_ERROR && req.error_status == 400, "returned %td", ret);
}

/* Every byte value at every position of a 40-byte field value and request-
   target, so that the word-at-a-time scans meet it at every alignment. */
static void test_every_position(void)
{
    cp_header hdrs[8];
    cp_request req;
    char label[96];

    for (int where = 0; where < 2; where++) {
        for (size_t pos = 0; pos < 40; pos++) {
            for (int c = 0; c < 256; c++) {
                static const char vpre[] = RL HOST "X: ", vpost[] = "\r\n\r\n";
                static const char tpre[] = "GET /", tpost[] = " " H11 HOST "\r\n";
                const char *pre = where ? tpre : vpre, *post = where ? tpost : vpost;
                size_t pl = strlen(pre), ql = strlen(post);
                size_t n = pl + 40 + ql;
                char raw[256];
                memcpy(raw, pre, pl);
                memset(raw + pl, 'a', 40);
                raw[pl + pos] = (char)c;
                memcpy(raw + pl + 40, post, ql);
                int ok = where == 0 ? (c == '\t' || (c >= 0x20 && c != 0x7f))
                                    : (c > 0x20 && c != 0x7f);
                char *buf = copy_exact(raw, n);
                ptrdiff_t ret = cp_parse_request(buf, n, &default_limits, &req, hdrs);
                snprintf(label, sizeof label, "%s: byte 0x%02x at %zu",
                         where ? "target" : "value", c, pos);
                current = label;
                if (ok) {
                    CHECK(ret == (ptrdiff_t)n, "returned %td (%s)", ret,
                          ret == CP_ERROR ? req.error_reason : "");
                } else {
                    CHECK(ret == CP_ERROR && req.error_status == 400, "returned %td",
                          ret);
                }
                free(buf);
            }
        }
    }
}

/* A huge len must not overflow a span: only MAX_HEAD bytes are ever looked at. */
static void test_huge_len(void)
{
#if (defined(__unix__) || defined(__APPLE__)) && SIZE_MAX > UINT32_MAX
    const size_t big = (size_t)UINT32_MAX + 4096;
    cp_header hdrs[8];
    cp_request req;
    ptrdiff_t ret;
    int flags = MAP_PRIVATE | MAP_ANONYMOUS;
#ifdef MAP_NORESERVE
    flags |= MAP_NORESERVE;
#endif
    char *p = mmap(NULL, big, PROT_READ | PROT_WRITE, flags, -1, 0);
    current = "huge len";
    if (p == MAP_FAILED) {
        fprintf(stderr, "note: huge-len test skipped (mmap failed)\n");
        return;
    }
    /* a normal head at the start of a huge buffer */
    static const char head[] = RL HOST "\r\n";
    memcpy(p, head, sizeof head - 1);
    ret = cp_parse_request(p, big, &default_limits, &req, hdrs);
    CHECK(ret == (ptrdiff_t)(sizeof head - 1), "returned %td", ret);
    /* unlimited lines: a field line that would run past 4 GiB */
    cp_limits unlimited = {SIZE_MAX, SIZE_MAX, 10, 0};
    memcpy(p, RL HOST "X: ", sizeof(RL HOST "X: ") - 1);
    memset(p + sizeof(RL HOST "X: ") - 1, 'v', 64);
    ret = cp_parse_request(p, big, &unlimited, &req, hdrs);
    CHECK(ret == CP_ERROR && req.error_status == 431, "returned %td/%d (%s)", ret,
          req.error_status, req.error_reason ? req.error_reason : "-");
    munmap(p, big);
#endif
}

/* ---- chunked bodies ---------------------------------------------------------- */

typedef struct {
    const char *name;
    const char *raw;
    size_t len;         /* 0: strlen(raw) */
    int outcome;        /* CP_CHUNK_DONE, CP_CHUNK_MORE, or an error status */
    const char *data;   /* expected data */
    size_t data_len;    /* 0: strlen(data) */
    const cp_limits *lim;
} chunk_case;

#define DONE CP_CHUNK_DONE
#define MORE CP_CHUNK_MORE

static const cp_limits trailer_limits = {8190, 12, 2, 0};

/* clang-format off */
static const chunk_case chunk_cases[] = {
    {"one chunk", "5\r\nhello\r\n0\r\n\r\n", 0, DONE, "hello", 0, NULL},
    {"three chunks", "3\r\nabc\r\n4\r\ndefg\r\n1\r\nh\r\n0\r\n\r\n", 0, DONE, "abcdefgh", 0,
     NULL},
    {"empty body", "0\r\n\r\n", 0, DONE, "", 0, NULL},
    {"hex digits, both cases",
     "A\r\n0123456789\r\na\r\nabcdefghij\r\n0\r\n\r\n", 0, DONE,
     "0123456789abcdefghij", 0, NULL},
    {"leading zeros", "0005\r\nhello\r\n000\r\n\r\n", 0, DONE, "hello", 0, NULL},
    {"20 digits with leading zeros", "00000000000000000001\r\nx\r\n0\r\n\r\n", 0, DONE, "x",
     0, NULL},
    {"data holding CRLFs", "4\r\n\r\n\r\n\r\n0\r\n\r\n", 0, DONE, "\r\n\r\n", 0, NULL},
    {"binary data", LIT("3\r\n\0\xff\n\r\n0\r\n\r\n"), DONE, LIT("\0\xff\n"), NULL},
    {"extensions", "5;name=value\r\nhello\r\n0;last\r\n\r\n", 0, DONE, "hello", 0, NULL},
    {"extensions with BWS and quoted string",
     "5 \t; a = \"q;\t\\\"s\" ;b\r\nhello\r\n0 ;x\r\n\r\n", 0, DONE, "hello", 0, NULL},
    {"trailers", "2\r\nhi\r\n0\r\nX-Checksum: abc\r\nEmpty:\r\nX: \t\x80 :\r\n\r\n", 0,
     DONE, "hi", 0, NULL},
    {"trailers, exactly the limits", "0\r\nAbc: 1234567\r\nB: 1\r\n\r\n", 0, DONE, "", 0,
     &trailer_limits},
    {"incomplete chunk", "5\r\nhel", 0, MORE, "hel", 0, NULL},
    {"incomplete size line", "5;ext=1", 0, MORE, "", 0, NULL},
    {"incomplete trailers", "0\r\nX: y\r\n", 0, MORE, "", 0, NULL},
    {"size 2^62 is allowed", "4000000000000000\r\nab", 0, MORE, "ab", 0, NULL},
    {"size 2^62 with leading zeros", "0004000000000000000\r\n", 0, MORE, "", 0, NULL},

    /* chunk-size */
    {"empty size", "\r\nhello\r\n0\r\n\r\n", 0, 400, "", 0, NULL},
    {"0x prefix", "0x5\r\nhello\r\n0\r\n\r\n", 0, 400, "", 0, NULL},
    {"plus sign", "+5\r\nhello\r\n0\r\n\r\n", 0, 400, "", 0, NULL},
    {"minus sign", "-5\r\nhello\r\n0\r\n\r\n", 0, 400, "", 0, NULL},
    {"leading SP", " 5\r\nhello\r\n0\r\n\r\n", 0, 400, "", 0, NULL},
    {"trailing SP without extension", "5 \r\nhello\r\n0\r\n\r\n", 0, 400, "", 0, NULL},
    {"non-hex", "5g\r\nhello\r\n0\r\n\r\n", 0, 400, "", 0, NULL},
    {"overflow, 18 f", "ffffffffffffffffff\r\n", 0, 400, "", 0, NULL},
    {"overflow, 2^62 + 1", "4000000000000001\r\n", 0, 400, "", 0, NULL},
    {"overflow, 17 significant digits", "10000000000000000\r\n", 0, 400, "", 0, NULL},
    {"size line too long (extension)", NULL, 0, 400, "", 0, NULL}, /* built below */
    {"size line exactly the limit", NULL, 0, DONE, "x", 0, NULL},   /* built below */
    {"control character in extension", "5;a\x01\r\nhello\r\n0\r\n\r\n", 0, 400, "", 0,
     NULL},
    {"NUL in extension", LIT("5;a\0\r\nhello\r\n0\r\n\r\n"), 400, "", 0, NULL},
    {"bare LF after size", "5\nhello\r\n0\r\n\r\n", 0, 400, "", 0, NULL},
    {"bare CR after size", "5\rhello\r\n0\r\n\r\n", 0, 400, "", 0, NULL},
    {"bare LF in extension", "5;a\nhello\r\n0\r\n\r\n", 0, 400, "", 0, NULL},

    /* data framing */
    {"missing CRLF after data", "5\r\nhelloX\r\n0\r\n\r\n", 0, 400, "hello", 0, NULL},
    {"data longer than size", "3\r\nhello\r\n0\r\n\r\n", 0, 400, "hel", 0, NULL},
    {"LF only after data", "5\r\nhello\n0\r\n\r\n", 0, 400, "hello", 0, NULL},
    {"CR only after data", "5\r\nhello\r0\r\n\r\n", 0, 400, "hello", 0, NULL},
    {"no CRLF before last chunk", "5\r\nhello0\r\n\r\n", 0, 400, "hello", 0, NULL},

    /* trailers */
    {"trailer obs-fold", "0\r\nA: b\r\n c\r\n\r\n", 0, 400, "", 0, NULL},
    {"trailer SP before colon", "0\r\nA : b\r\n\r\n", 0, 400, "", 0, NULL},
    {"trailer empty name", "0\r\n: b\r\n\r\n", 0, 400, "", 0, NULL},
    {"trailer without colon", "0\r\nA\r\n\r\n", 0, 400, "", 0, NULL},
    {"trailer NUL in value", LIT("0\r\nA: \0\r\n\r\n"), 400, "", 0, NULL},
    {"trailer bad name char", "0\r\nA(b): c\r\n\r\n", 0, 400, "", 0, NULL},
    {"trailer bare LF", "0\r\nA: b\n\r\n", 0, 400, "", 0, NULL},
    {"final bare CR", "0\r\n\rX", 0, 400, "", 0, NULL},
    {"final bare LF", "0\r\n\n", 0, 400, "", 0, NULL},
    {"trailer line too long", "0\r\nAbc: 12345678\r\n\r\n", 0, 431, "", 0,
     &trailer_limits},
    {"too many trailers", "0\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n", 0, 431, "", 0,
     &trailer_limits},
};
/* clang-format on */

/* Feed `n` bytes in pieces whose sizes come from cut[] (sum <= n; the rest is the
   last piece).  Returns the outcome; *data gets the decoded bytes. */
typedef struct {
    int outcome;  /* CP_CHUNK_DONE, CP_CHUNK_MORE, CP_CHUNK_ERROR */
    int status;   /* on error */
    size_t total; /* bytes consumed in all */
    char *data;
    size_t data_len;
} chunk_result;

static void decode_pieces(const char *raw, size_t n, const cp_limits *lim, size_t step,
                          size_t first_cut, chunk_result *res)
{
    cp_chunked st;
    size_t pos = 0;
    cp_chunked_init(&st);
    res->data = malloc(n ? n : 1);
    res->data_len = 0;
    res->total = 0;
    res->outcome = CP_CHUNK_MORE;
    res->status = 0;

    while (pos < n) {
        size_t piece = step ? step : (pos == 0 ? first_cut : n - pos);
        if (piece > n - pos)
            piece = n - pos;
        char *buf = copy_exact(raw + pos, piece);
        size_t off = 0;
        int r = CP_CHUNK_MORE;
        for (;;) {
            size_t used = 0, doff = 0, dlen = 0;
            r = cp_chunked_decode(&st, buf + off, piece - off, lim, &used, &doff,
                                  &dlen);
            CHECK(used <= piece - off, "consumed %zu > len %zu", used, piece - off);
            if (r == CP_CHUNK_DATA) {
                CHECK(dlen > 0 && doff + dlen <= used,
                      "bad data span %zu+%zu, used %zu", doff, dlen, used);
                memcpy(res->data + res->data_len, buf + off + doff, dlen);
                res->data_len += dlen;
                off += used;
                continue;
            }
            if (r == CP_CHUNK_MORE)
                CHECK(used == piece - off, "MORE but consumed %zu of %zu", used,
                      piece - off);
            off += used;
            break;
        }
        free(buf);
        pos += off;
        res->total = pos;
        if (r == CP_CHUNK_ERROR) {
            res->outcome = r;
            res->status = st.error_status;
            CHECK(st.error_reason != NULL, "no error_reason");
            /* sticky */
            size_t used = 1, doff, dlen;
            CHECK(cp_chunked_decode(&st, "0\r\n\r\n", 5, lim, &used, &doff, &dlen) ==
                          CP_CHUNK_ERROR && used == 0,
                  "error is not sticky");
            return;
        }
        if (r == CP_CHUNK_DONE) {
            res->outcome = r;
            size_t used = 1, doff, dlen;
            CHECK(cp_chunked_decode(&st, "5\r\n", 3, lim, &used, &doff, &dlen) ==
                          CP_CHUNK_DONE && used == 0,
                  "DONE is not sticky");
            return;
        }
    }
}

static void check_chunk_result(const chunk_case *c, size_t n, const chunk_result *res)
{
    size_t dl = c->data_len ? c->data_len : strlen(c->data);
    if (c->outcome == DONE) {
        CHECK(res->outcome == DONE, "outcome %d (status %d), want DONE", res->outcome,
              res->status);
        CHECK(res->total == n, "consumed %zu, want %zu", res->total, n);
    } else if (c->outcome == MORE) {
        CHECK(res->outcome == MORE, "outcome %d (status %d), want MORE", res->outcome,
              res->status);
        CHECK(res->total == n, "consumed %zu, want %zu", res->total, n);
    } else {
        CHECK(res->outcome == CP_CHUNK_ERROR && res->status == c->outcome,
              "outcome %d status %d, want error %d", res->outcome, res->status,
              c->outcome);
    }
    CHECK(res->data_len == dl && memcmp(res->data, c->data, dl) == 0,
          "data of %zu bytes, want %zu", res->data_len, dl);
}

static void run_chunk_case(const chunk_case *c, const char *raw, size_t n)
{
    const cp_limits *lim = c->lim ? c->lim : &default_limits;
    chunk_result res;
    char label[160];

    snprintf(label, sizeof label, "chunked %s / whole", c->name);
    current = label;
    decode_pieces(raw, n, lim, 0, n, &res);
    check_chunk_result(c, n, &res);
    free(res.data);

    snprintf(label, sizeof label, "chunked %s / byte by byte", c->name);
    current = label;
    decode_pieces(raw, n, lim, 1, 0, &res);
    check_chunk_result(c, n, &res);
    free(res.data);

    for (size_t k = 1; k < n; k++) {
        snprintf(label, sizeof label, "chunked %s / split at %zu", c->name, k);
        current = label;
        decode_pieces(raw, n, lim, 0, k, &res);
        check_chunk_result(c, n, &res);
        free(res.data);
    }

    if (c->outcome == DONE) {
        snprintf(label, sizeof label, "chunked %s / pipelined", c->name);
        current = label;
        size_t tn = sizeof next_request - 1;
        char *buf = concat(raw, n, next_request, tn);
        decode_pieces(buf, n + tn, lim, 0, n + tn, &res);
        CHECK(res.outcome == DONE && res.total == n,
              "outcome %d, consumed %zu, want %zu", res.outcome, res.total, n);
        free(res.data);
        free(buf);
    }
}

static void test_chunked(void)
{
    for (size_t i = 0; i < sizeof chunk_cases / sizeof chunk_cases[0]; i++) {
        const chunk_case *c = &chunk_cases[i];
        if (c->raw != NULL) {
            run_chunk_case(c, c->raw, c->len ? c->len : strlen(c->raw));
            continue;
        }
        /* "1;xxx...x\r\nx\r\n0\r\n\r\n" with a size line of the limit (+ 1) */
        size_t line = CP_CHUNK_LINE_MAX + (c->outcome == DONE ? 0 : 1);
        const char *tail = "\r\nx\r\n0\r\n\r\n";
        size_t n = line + strlen(tail);
        char *raw = malloc(n);
        raw[0] = '1';
        raw[1] = ';';
        memset(raw + 2, 'e', line - 2);
        memcpy(raw + line, tail, strlen(tail));
        run_chunk_case(c, raw, n);
        free(raw);
    }

    current = "chunked: corrupted state";
    {
        cp_chunked st;
        cp_chunked_init(&st);
        st.state = 1000;
        size_t used = 1, doff, dlen;
        CHECK(cp_chunked_decode(&st, "0\r\n\r\n", 5, &default_limits, &used, &doff,
                                &dlen) == CP_CHUNK_ERROR &&
                  st.error_status == 400 && used == 0,
              "not rejected");
    }

    /* a zeroed state is a fresh one, and the decoder makes no progress on len 0 */
    current = "chunked: zeroed state, empty input";
    {
        cp_chunked st;
        memset(&st, 0, sizeof st);
        size_t used = 1, doff, dlen;
        CHECK(cp_chunked_decode(&st, "", 0, &default_limits, &used, &doff, &dlen) ==
                      CP_CHUNK_MORE && used == 0,
              "len 0");
        int r = cp_chunked_decode(&st, "1\r\nx\r\n0\r\n\r\n", 11, &default_limits,
                                  &used, &doff, &dlen);
        CHECK(r == CP_CHUNK_DATA && doff == 3 && dlen == 1, "zeroed state");
    }
}

/* ---- main ---------------------------------------------------------------- */

int main(void)
{
    for (size_t i = 0; i < sizeof ok_cases / sizeof ok_cases[0]; i++)
        run_ok_case(&ok_cases[i]);
    for (size_t i = 0; i < sizeof err_cases / sizeof err_cases[0]; i++)
        run_err_case(&err_cases[i]);
    test_limits();
    test_incomplete();
    test_every_position();
    test_huge_len();
    test_chunked();

    printf("test_parser: %zu accepted heads, %zu rejected heads, %zu chunked bodies; "
           "%d checks, %d failed\n",
           sizeof ok_cases / sizeof ok_cases[0], sizeof err_cases / sizeof err_cases[0],
           sizeof chunk_cases / sizeof chunk_cases[0], n_checks, n_failures);
    return n_failures ? 1 : 0;
}
