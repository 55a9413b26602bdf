/*
 * test_parser.c -- standalone tests for parser.c and chunked.c.
 *
 * No framework: CHECK() counts, prints each failure with the case name and
 * carries on; the exit status is non-zero if anything failed.
 *
 * The specification is tests/spec/: raw requests and what the parser must
 * make of them, written once and read by the server-level tests too.
 * fuzz/Makefile turns it into spec_cases.h (`python -m tests.spec.c_header`)
 * before it compiles this file.  Every accepted head is fed four ways (h11's
 * test_io.py, and the resumed parse a connection makes): whole; as every
 * proper prefix, which must be CP_INCOMPLETE with a sound
 * incomplete_line_start; one byte at a time, resumed; and followed by its
 * body and the next pipelined request, where the consumed count must stop
 * exactly at the end of the head.  Every rejected head is fed the same ways
 * and must give its status as soon as it can be told, and never anything but
 * incomplete before.  Every input is copied into a heap block of exactly its
 * size, so AddressSanitizer catches any read past len.
 *
 * Chunked bodies (of the spec's accepted rows, of its rows whose body is
 * refused, and the decoder's own cases below) are fed whole, one byte at a
 * time, in every two-piece split and followed by the next request; the data
 * spans, concatenated, must equal the expected body and the outcome must not
 * depend on the feeding.
 *
 * What stays here is the parser's contract beyond the spec: limits other
 * than the defaults, at and just past their values; incomplete_line_start;
 * every byte at every position; a huge len; the decoder's incomplete
 * answers and its own limits.
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

static void print_span(const char *buf, cp_span s, char *dst, size_t cap)
{
    size_t n = s.len < cap - 1 ? s.len : cap - 1;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)buf[s.off + i];
        dst[i] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
    }
    dst[n] = '\0';
}

/* ---- the spec (tests/spec/, generated into spec_cases.h) ---------------- */

typedef struct {
    const char *p;
    size_t n;
} spec_bytes;

#define SB(s) {s, sizeof(s) - 1} /* a literal and its length, NULs included */

typedef struct {
    spec_bytes name, value;
} spec_field;

/* An accepted row: raw is the head (head_len bytes, leading empty lines
   included), the body (body_len bytes; body_complete is 0 when raw holds only
   part of it) and, when after_status is not 0, more bytes that are read as
   the next request and rejected with that status. */
typedef struct {
    const char *name;
    spec_bytes raw;
    uint32_t raw_hash; /* FNV-1a of raw: the bytes survived the generator */
    size_t head_len, body_len;
    int body_complete;
    int after_status;
    spec_bytes method;
    int method_id;
    spec_bytes target, path, query;
    int minor;
    int64_t content_length; /* -1: none */
    unsigned flags;
    const spec_field *headers; /* every field line, in order */
    size_t num_headers;
    spec_bytes data; /* the body once decoded */
} spec_accept;

/* A rejected row: the head is refused with status; or, when head_len is not
   0, a chunked head of that length is fine and the body after it is refused,
   with data the decoder hands out before it can tell. */
typedef struct {
    const char *name;
    spec_bytes raw;
    uint32_t raw_hash;
    int status;
    size_t head_len;
    spec_bytes data;
} spec_reject;

#include "spec_cases.h"

static uint32_t fnv1a(const char *p, size_t n)
{
    uint32_t h = 0x811C9DC5u;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)p[i]) * 0x01000193u;
    return h;
}

static int span_eq(const char *buf, cp_span s, spec_bytes want)
{
    return s.len == want.n && memcmp(buf + s.off, want.p, want.n) == 0;
}

#define SPAN_IS(buf, span, want)                                               \
    do {                                                                       \
        char shown_[64], wanted_[64];                                          \
        print_span((buf), (span), shown_, sizeof shown_);                      \
        print_span((want).p, (cp_span){0, (uint32_t)(want).n}, wanted_,        \
                   sizeof wanted_);                                            \
        CHECK(span_eq((buf), (span), (want)), #span " is \"%s\", want \"%s\"", \
              shown_, wanted_);                                                \
    } while (0)

/* ---- limits other than the defaults: the parser's contract ------------ */

typedef struct {
    const char *name;
    const char *raw;
    int status;
    cp_limits lim;
} limit_case;

#define H11 "HTTP/1.1\r\n"
#define RL "GET / " H11 /* a request line */
#define HOST "Host: a\r\n"

/* clang-format off */
static const limit_case limit_cases[] = {
    {"too many headers", RL HOST "A: 1\r\nB: 2\r\n\r\n", 431, {8190, 8190, 2, 0}},
    {"max_headers 0", "GET / HTTP/1.0\r\nA: 1\r\n\r\n", 431, {8190, 8190, 0, 0}},
    {"request line too long, complete", "GET /abcdefgh " H11 HOST "\r\n", 414,
     {21, 8190, 100, 0}},
    {"request line too long, no LF", "GET /abcdefghijklmnopqrstuvwxyz", 414,
     {22, 8190, 100, 0}},
    {"field line too long, complete", RL HOST "X: 0123456789\r\n\r\n", 431,
     {8190, 12, 100, 0}},
    {"field line too long, no LF", RL HOST "X: 0123456789abcdef", 431,
     {8190, 12, 100, 0}},
};
/* clang-format on */

/* ---- drivers ------------------------------------------------------------- */

static void parse(const char *raw, size_t n, const cp_limits *lim, cp_request *req,
                  cp_header *hdrs, ptrdiff_t *ret)
{
    char *buf = copy_exact(raw, n);
    *ret = cp_parse_request(buf, n, lim, req, hdrs);
    free(buf);
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

static void check_hash(const char *name, spec_bytes raw, uint32_t want)
{
    current = name;
    CHECK(fnv1a(raw.p, raw.n) == want, "raw bytes hash to 0x%08x, want 0x%08x",
          fnv1a(raw.p, raw.n), want);
}

static void check_fields(const spec_accept *c, const char *buf, const cp_request *r,
                         const cp_header *h)
{
    SPAN_IS(buf, r->method, c->method);
    CHECK(r->method_id == c->method_id, "method_id %d, want %d", r->method_id,
          c->method_id);
    SPAN_IS(buf, r->target, c->target);
    SPAN_IS(buf, r->path, c->path);
    SPAN_IS(buf, r->query, c->query);
    CHECK(r->http_minor == c->minor, "http_minor %d, want %d", r->http_minor, c->minor);
    CHECK(r->content_length == c->content_length, "content_length %lld, want %lld",
          (long long)r->content_length, (long long)c->content_length);
    CHECK(r->flags == c->flags, "flags 0x%x, want 0x%x", r->flags, c->flags);
    CHECK(r->num_headers == c->num_headers, "num_headers %zu, want %zu", r->num_headers,
          c->num_headers);
    for (size_t i = 0; i < c->num_headers && i < r->num_headers; i++) {
        SPAN_IS(buf, h[i].name, c->headers[i].name);
        SPAN_IS(buf, h[i].value, c->headers[i].value);
    }
}

static void run_chunked(const char *name, const char *raw, size_t n, int outcome,
                        const char *data, size_t data_len, const cp_limits *lim);

static void run_accept(const spec_accept *c)
{
    const cp_limits *lim = &default_limits;
    const char *raw = c->raw.p;
    size_t n = c->head_len;
    cp_header hdrs[128];
    cp_request req;
    ptrdiff_t ret;
    char label[160];

    check_hash(c->name, c->raw, c->raw_hash);

    /* whole: the head alone, in a block of exactly its size */
    snprintf(label, sizeof label, "%s / whole", c->name);
    current = label;
    {
        char *buf = copy_exact(raw, n);
        ret = cp_parse_request(buf, n, lim, &req, hdrs);
        CHECK(ret == (ptrdiff_t)n, "returned %td (status %d: %s), want %zu", ret,
              req.error_status, req.error_reason ? req.error_reason : "-", n);
        if (ret == (ptrdiff_t)n)
            check_fields(c, buf, &req, hdrs);
        free(buf);
    }

    /* every proper prefix is incomplete */
    for (size_t k = 0; k < n; k++) {
        snprintf(label, sizeof label, "%s / prefix %zu", c->name, k);
        current = label;
        char *buf = copy_exact(raw, k);
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
            char *buf = copy_exact(raw, k);
            ret = cp_parse_request_from(buf, k, lim, &req, hdrs, &progress);
            if (k < n) {
                CHECK(ret == CP_INCOMPLETE, "prefix %zu returned %td (status %d)", k, ret,
                      req.error_status);
                if (ret == CP_INCOMPLETE)
                    check_incomplete(buf, k, lim, &req);
            } else {
                CHECK(ret == (ptrdiff_t)n, "returned %td, want %zu", ret, n);
                if (ret == (ptrdiff_t)n)
                    check_fields(c, buf, &req, hdrs);
            }
            free(buf);
        }
    }

    /* followed by its body and the next pipelined request (or, with
       after_status, by the bytes that follow it in raw, which are refused) */
    snprintf(label, sizeof label, "%s / pipelined", c->name);
    current = label;
    {
        size_t tn = sizeof next_request - 1, next = n + c->body_len;
        char *buf = concat(raw, c->raw.n, next_request, tn);
        ret = cp_parse_request(buf, c->raw.n + tn, lim, &req, hdrs);
        CHECK(ret == (ptrdiff_t)n, "returned %td, want %zu", ret, n);
        if (ret == (ptrdiff_t)n)
            check_fields(c, buf, &req, hdrs);
        if (c->after_status) {
            ret = cp_parse_request(buf + next, c->raw.n + tn - next, lim, &req, hdrs);
            CHECK(ret == CP_ERROR && req.error_status == c->after_status,
                  "what follows returned %td, status %d, want error %d", ret,
                  req.error_status, c->after_status);
        } else if (c->body_complete) {
            ret = cp_parse_request(buf + next, tn, lim, &req, hdrs);
            CHECK(ret == (ptrdiff_t)tn, "next request returned %td", ret);
        }
        free(buf);
    }

    if (c->flags & CP_F_CHUNKED)
        run_chunked(c->name, raw + n, c->body_len, CP_CHUNK_DONE, c->data.p, c->data.n,
                    lim);
}

/* A head that must be refused with `status`, fed whole, as every prefix, byte
   by byte resumed and with the next request behind it. */
static void check_rejected_head(const char *name, const char *raw, size_t n, int status,
                                const cp_limits *lim)
{
    cp_header hdrs[128];
    cp_request req;
    ptrdiff_t ret;
    char label[160];

    snprintf(label, sizeof label, "%s / whole", name);
    current = label;
    parse(raw, n, lim, &req, hdrs, &ret);
    CHECK(ret == CP_ERROR && req.error_status == status,
          "returned %td, status %d (%s), want error %d", ret, req.error_status,
          req.error_reason ? req.error_reason : "-", status);
    CHECK(ret != CP_ERROR || req.error_reason != NULL, "no error_reason");

    /* Prefixes: incomplete, or already this very error. */
    for (size_t k = 0; k < n; k++) {
        snprintf(label, sizeof label, "%s / prefix %zu", name, k);
        current = label;
        parse(raw, k, lim, &req, hdrs, &ret);
        CHECK(ret == CP_INCOMPLETE || (ret == CP_ERROR && req.error_status == status),
              "returned %td, status %d (%s)", ret, req.error_status,
              req.error_reason ? req.error_reason : "-");
    }

    /* One byte at a time, resumed: the same error, once it can be told. */
    snprintf(label, sizeof label, "%s / resumed byte by byte", name);
    current = label;
    {
        cp_head_progress progress = {0};
        ret = CP_INCOMPLETE;
        size_t k = 0;
        for (; k <= n && ret == CP_INCOMPLETE; k++) {
            char *buf = copy_exact(raw, k);
            ret = cp_parse_request_from(buf, k, lim, &req, hdrs, &progress);
            free(buf);
        }
        CHECK(ret == CP_ERROR && req.error_status == status,
              "returned %td at %zu bytes, status %d (%s), want error %d", ret, k,
              req.error_status, req.error_reason ? req.error_reason : "-", status);
    }

    /* The next request behind it changes nothing. */
    snprintf(label, sizeof label, "%s / pipelined", name);
    current = label;
    {
        size_t tn = sizeof next_request - 1;
        char *buf = concat(raw, n, next_request, tn);
        ret = cp_parse_request(buf, n + tn, lim, &req, hdrs);
        CHECK(ret == CP_ERROR && req.error_status == status,
              "returned %td, status %d (%s), want error %d", ret, req.error_status,
              req.error_reason ? req.error_reason : "-", status);
        free(buf);
    }
}

static void run_reject(const spec_reject *c)
{
    check_hash(c->name, c->raw, c->raw_hash);
    if (c->head_len == 0) {
        check_rejected_head(c->name, c->raw.p, c->raw.n, c->status, &default_limits);
        return;
    }
    /* a good chunked head, then a body the decoder refuses */
    char label[160];
    cp_header hdrs[128];
    cp_request req;
    snprintf(label, sizeof label, "%s / head", c->name);
    current = label;
    char *buf = copy_exact(c->raw.p, c->raw.n);
    ptrdiff_t ret = cp_parse_request(buf, c->raw.n, &default_limits, &req, hdrs);
    CHECK(ret == (ptrdiff_t)c->head_len && (req.flags & CP_F_CHUNKED),
          "returned %td (status %d), flags 0x%x; want %zu, chunked", ret,
          req.error_status, req.flags, c->head_len);
    free(buf);
    run_chunked(c->name, c->raw.p + c->head_len, c->raw.n - c->head_len, c->status,
                c->data.p, c->data.n, &default_limits);
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

/* The decoder's own cases: its incomplete answers and its limits.  Chunked
   bodies that are served or refused are spec rows. */
typedef struct {
    const char *name;
    const char *raw;
    size_t len;         /* 0: strlen(raw) */
    int outcome;        /* CP_CHUNK_DONE, CP_CHUNK_MORE, or an error status */
    const char *data;   /* expected data */
    const cp_limits *lim;
} chunk_case;

#define DONE CP_CHUNK_DONE
#define MORE CP_CHUNK_MORE

static const cp_limits trailer_limits = {8190, 12, 2, 0};

/* clang-format off */
static const chunk_case chunk_cases[] = {
    {"incomplete chunk", "5\r\nhel", 0, MORE, "hel", NULL},
    {"incomplete size line", "5;ext=1", 0, MORE, "", NULL},
    {"incomplete trailers", "0\r\nX: y\r\n", 0, MORE, "", NULL},
    {"size 2^62 is allowed", "4000000000000000\r\nab", 0, MORE, "ab", NULL},
    {"size 2^62 with leading zeros", "0004000000000000000\r\n", 0, MORE, "", NULL},
    {"size line too long (extension)", NULL, 0, 400, "", NULL}, /* built below */
    {"size line exactly the limit", NULL, 0, DONE, "x", NULL},   /* built below */
    {"trailers, exactly the limits", "0\r\nAbc: 1234567\r\nB: 1\r\n\r\n", 0, DONE, "",
     &trailer_limits},
    {"trailer line too long", "0\r\nAbc: 12345678\r\n\r\n", 0, 431, "", &trailer_limits},
    {"too many trailers", "0\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n", 0, 431, "",
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

/* outcome: CP_CHUNK_DONE, CP_CHUNK_MORE, or the error status */
static void check_chunk_result(int outcome, const char *data, size_t dl, size_t n,
                               const chunk_result *res)
{
    if (outcome == DONE) {
        CHECK(res->outcome == DONE, "outcome %d (status %d), want DONE", res->outcome,
              res->status);
        CHECK(res->total == n, "consumed %zu, want %zu", res->total, n);
    } else if (outcome == MORE) {
        CHECK(res->outcome == MORE, "outcome %d (status %d), want MORE", res->outcome,
              res->status);
        CHECK(res->total == n, "consumed %zu, want %zu", res->total, n);
    } else {
        CHECK(res->outcome == CP_CHUNK_ERROR && res->status == outcome,
              "outcome %d status %d, want error %d", res->outcome, res->status, outcome);
    }
    CHECK(res->data_len == dl && memcmp(res->data, data, dl) == 0,
          "data of %zu bytes, want %zu", res->data_len, dl);
}

static void run_chunked(const char *name, const char *raw, size_t n, int outcome,
                        const char *data, size_t dl, const cp_limits *lim)
{
    chunk_result res;
    char label[160];

    snprintf(label, sizeof label, "chunked %s / whole", name);
    current = label;
    decode_pieces(raw, n, lim, 0, n, &res);
    check_chunk_result(outcome, data, dl, n, &res);
    free(res.data);

    snprintf(label, sizeof label, "chunked %s / byte by byte", name);
    current = label;
    decode_pieces(raw, n, lim, 1, 0, &res);
    check_chunk_result(outcome, data, dl, n, &res);
    free(res.data);

    for (size_t k = 1; k < n; k++) {
        snprintf(label, sizeof label, "chunked %s / split at %zu", name, k);
        current = label;
        decode_pieces(raw, n, lim, 0, k, &res);
        check_chunk_result(outcome, data, dl, n, &res);
        free(res.data);
    }

    if (outcome == DONE) {
        snprintf(label, sizeof label, "chunked %s / pipelined", name);
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
        const cp_limits *lim = c->lim ? c->lim : &default_limits;
        if (c->raw != NULL) {
            run_chunked(c->name, c->raw, c->len ? c->len : strlen(c->raw), c->outcome,
                        c->data, strlen(c->data), lim);
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
        run_chunked(c->name, raw, n, c->outcome, c->data, strlen(c->data), lim);
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

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

int main(void)
{
    size_t body_rejects = 0, chunked_accepts = 0;
    for (size_t i = 0; i < COUNT(spec_accepted); i++) {
        run_accept(&spec_accepted[i]);
        chunked_accepts += (spec_accepted[i].flags & CP_F_CHUNKED) != 0;
    }
    for (size_t i = 0; i < COUNT(spec_rejected); i++) {
        run_reject(&spec_rejected[i]);
        body_rejects += spec_rejected[i].head_len != 0;
    }
    for (size_t i = 0; i < COUNT(limit_cases); i++)
        check_rejected_head(limit_cases[i].name, limit_cases[i].raw,
                            strlen(limit_cases[i].raw), limit_cases[i].status,
                            &limit_cases[i].lim);
    test_limits();
    test_incomplete();
    test_every_position();
    test_huge_len();
    test_chunked();

    printf("test_parser: spec rows: %zu accepted (%zu chunked), %zu rejected (%zu in the "
           "body); %zu limit cases, %zu decoder cases; %d checks, %d failed\n",
           COUNT(spec_accepted), chunked_accepts, COUNT(spec_rejected), body_rejects,
           COUNT(limit_cases), COUNT(chunk_cases), n_checks, n_failures);
    return n_failures ? 1 : 0;
}
