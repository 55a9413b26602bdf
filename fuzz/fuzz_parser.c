/*
 * fuzz_parser.c -- libFuzzer target for cp_parse_request (links parser.c).
 *
 * Input layout: byte 0 picks max_request_line, byte 1 max_header_size, byte 2
 * max_headers (small values most of the time, so that limits are hit) and,
 * in bits 4-6, max_head_size; the rest is the buffer handed to the parser.
 *
 * The only allowed outcomes are "parsed", "incomplete" or "our protocol error"
 * with one of our statuses.  Beyond that we assert what the contract in
 * parser.h promises:
 *
 *   - consumed <= len; every span lies inside the consumed head and holds the
 *     bytes its grammar allows; num_headers <= max_headers (the header array
 *     is allocated with exactly max_headers entries, so ASan sees a write
 *     past it);
 *   - CP_INCOMPLETE: incomplete_line_start is a line start, no '\n' follows
 *     it, and the partial line is at most cp_longest_line() bytes -- this is
 *     what makes the caller's "don't call again yet" shortcut sound;
 *   - prefixes (the parser is a pure function of its bytes, and it only ever
 *     rejects what no continuation could repair):
 *       accepted with n  => every shorter prefix is CP_INCOMPLETE, every longer
 *                           one is accepted with the same n and the same spans;
 *       CP_INCOMPLETE    => every prefix is CP_INCOMPLETE;
 *       an error at k    => every longer prefix is an error too (more bytes
 *                           never repair a rejected head).
 *     The status may differ between a prefix and the whole (a line that is
 *     too long without its LF is a 414, and the same line ending in a bare LF
 *     is a 400), so only the kind of answer is compared.
 *   - resumed parsing (cp_parse_request_from, the bytes arriving in the same
 *     growing prefixes and the progress carried between calls) gives at every
 *     step the answer the stateless parse of that prefix gives, and at the
 *     end exactly the same request and spans;
 *   - an accepted head is never longer than max_head_size;
 *   - semantic cross-checks on accepted heads: Host counts, Content-Length
 *     only with a Content-Length field, CHUNKED exactly when a
 *     Transfer-Encoding field is present, never together with a length.
 */
#include "parser.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "require.h"

static int is_tchar(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

static int ci_is(const char *buf, cp_span s, const char *lower)
{
    size_t n = strlen(lower);
    if (s.len != n)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = buf[s.off + i];
        if (c >= 'A' && c <= 'Z')
            c = (char)(c + 32);
        if (c != lower[i])
            return 0;
    }
    return 1;
}

static void check_span(cp_span s, size_t consumed)
{
    REQUIRE((size_t)s.off + s.len <= consumed);
    REQUIRE(s.len == 0 || s.off < consumed);
}

static void check_accepted(const char *buf, size_t consumed, const cp_limits *lim,
                           const cp_request *r, const cp_header *h)
{
    const unsigned char *p = (const unsigned char *)buf;

    REQUIRE(consumed >= 2 && buf[consumed - 2] == '\r' && buf[consumed - 1] == '\n');
    check_span(r->method, consumed);
    check_span(r->target, consumed);
    check_span(r->path, consumed);
    check_span(r->query, consumed);
    REQUIRE(r->num_headers <= lim->max_headers);
    REQUIRE(r->http_minor == 0 || r->http_minor == 1);
    REQUIRE(r->method_id >= CP_METHOD_OTHER && r->method_id < CP_METHOD_COUNT);
    REQUIRE(r->content_length >= -1 && r->content_length <= ((int64_t)1 << 62));

    REQUIRE(r->method.len > 0);
    for (uint32_t i = 0; i < r->method.len; i++)
        REQUIRE(is_tchar(p[r->method.off + i]));
    REQUIRE(r->target.len > 0);
    for (uint32_t i = 0; i < r->target.len; i++) {
        unsigned char c = p[r->target.off + i];
        REQUIRE(c > 0x20 && c != 0x7f);
    }
    /* path and query lie inside the target */
    REQUIRE(r->path.off >= r->target.off &&
            r->path.off + r->path.len <= r->target.off + r->target.len);
    REQUIRE(r->query.off >= r->target.off &&
            r->query.off + r->query.len <= r->target.off + r->target.len);
    if (r->flags & CP_F_ASTERISK_FORM) {
        REQUIRE(r->method_id == CP_METHOD_OPTIONS && r->target.len == 1 &&
                p[r->target.off] == '*');
    } else if (r->flags & CP_F_ABSOLUTE_FORM) {
        REQUIRE(r->path.len == 0 || p[r->path.off] == '/');
    } else {
        REQUIRE(p[r->target.off] == '/' && r->path.off == r->target.off);
    }
    if (r->query.len > 0)
        REQUIRE(p[r->query.off - 1] == '?');

    unsigned hosts = 0, cls = 0, tes = 0;
    for (size_t i = 0; i < r->num_headers; i++) {
        check_span(h[i].name, consumed);
        check_span(h[i].value, consumed);
        REQUIRE(h[i].name.len > 0 && p[h[i].name.off + h[i].name.len] == ':');
        for (uint32_t j = 0; j < h[i].name.len; j++)
            REQUIRE(is_tchar(p[h[i].name.off + j]));
        for (uint32_t j = 0; j < h[i].value.len; j++) {
            unsigned char c = p[h[i].value.off + j];
            REQUIRE(c == '\t' || (c >= 0x20 && c != 0x7f));
        }
        if (h[i].value.len > 0) {
            unsigned char first = p[h[i].value.off];
            unsigned char last = p[h[i].value.off + h[i].value.len - 1];
            REQUIRE(first != ' ' && first != '\t' && last != ' ' && last != '\t');
        }
        hosts += ci_is(buf, h[i].name, "host");
        cls += ci_is(buf, h[i].name, "content-length");
        tes += ci_is(buf, h[i].name, "transfer-encoding");
    }
    REQUIRE(hosts <= 1);
    REQUIRE(r->http_minor == 0 || hosts == 1);
    REQUIRE((cls > 0) == (r->content_length >= 0));
    REQUIRE((tes > 0) == ((r->flags & CP_F_CHUNKED) != 0));
    if (r->flags & CP_F_CHUNKED)
        REQUIRE(r->content_length == -1 && r->http_minor == 1);
}

static void check_incomplete(const char *buf, size_t len, const cp_limits *lim,
                             const cp_request *r)
{
    size_t ils = r->incomplete_line_start;
    REQUIRE(ils <= len);
    REQUIRE(ils == 0 || (ils >= 2 && buf[ils - 2] == '\r' && buf[ils - 1] == '\n'));
    REQUIRE(memchr(buf + ils, '\n', len - ils) == NULL);
    REQUIRE(len - ils <= cp_longest_line(lim));
}

static ptrdiff_t parse_checked(const char *buf, size_t len, const cp_limits *lim,
                               cp_request *r, cp_header *h)
{
    memset(r, 0xA5, sizeof *r); /* nothing may be left to chance */
    ptrdiff_t ret = cp_parse_request(buf, len, lim, r, h);
    REQUIRE(ret > 0 || ret == CP_INCOMPLETE || ret == CP_ERROR);
    if (ret > 0) {
        REQUIRE((size_t)ret <= len);
        check_accepted(buf, (size_t)ret, lim, r, h);
    } else if (ret == CP_INCOMPLETE) {
        check_incomplete(buf, len, lim, r);
    } else {
        int s = r->error_status;
        REQUIRE(s == 400 || s == 414 || s == 431 || s == 501 || s == 505);
        REQUIRE(r->error_reason != NULL);
    }
    return ret;
}

/* Parse buf[0..k) and compare with the answer for the whole input. */
static ptrdiff_t check_prefix(const char *buf, size_t k, const cp_limits *lim,
                              ptrdiff_t ret, const cp_request *whole,
                              const cp_header *h, cp_request *part, cp_header *h2)
{
    /* an exact copy, so that a read past k is caught too */
    char *copy = malloc(k ? k : 1);
    REQUIRE(copy != NULL);
    if (k)
        memcpy(copy, buf, k);
    ptrdiff_t r = parse_checked(copy, k, lim, part, h2);
    free(copy);
    if (ret > 0) {
        if (k < (size_t)ret) {
            REQUIRE(r == CP_INCOMPLETE);
            /* the caller's shortcut would have called again: a '\n' came */
            REQUIRE(memchr(buf + part->incomplete_line_start, '\n',
                           (size_t)ret - part->incomplete_line_start) != NULL);
        } else {
            REQUIRE(r == ret);
            REQUIRE(part->num_headers == whole->num_headers);
            REQUIRE(memcmp(&part->method, &whole->method, sizeof part->method) == 0);
            REQUIRE(memcmp(&part->target, &whole->target, sizeof part->target) == 0);
            REQUIRE(memcmp(&part->path, &whole->path, sizeof part->path) == 0);
            REQUIRE(memcmp(&part->query, &whole->query, sizeof part->query) == 0);
            REQUIRE(part->method_id == whole->method_id &&
                    part->http_minor == whole->http_minor);
            REQUIRE(part->flags == whole->flags &&
                    part->content_length == whole->content_length);
            REQUIRE(memcmp(h, h2, whole->num_headers * sizeof(cp_header)) == 0);
        }
    } else if (ret == CP_INCOMPLETE) {
        REQUIRE(r == CP_INCOMPLETE);
    } else {
        REQUIRE(r == CP_INCOMPLETE || r == CP_ERROR);
    }
    return r;
}

static size_t pick_limit(uint8_t b, size_t usual)
{
    return b >= 128 ? usual : (size_t)b;
}

static void require_same_request(const cp_request *a, const cp_header *ha,
                                 const cp_request *b, const cp_header *hb)
{
    REQUIRE(a->num_headers == b->num_headers);
    REQUIRE(memcmp(&a->method, &b->method, sizeof a->method) == 0);
    REQUIRE(memcmp(&a->target, &b->target, sizeof a->target) == 0);
    REQUIRE(memcmp(&a->path, &b->path, sizeof a->path) == 0);
    REQUIRE(memcmp(&a->query, &b->query, sizeof a->query) == 0);
    REQUIRE(a->method_id == b->method_id && a->http_minor == b->http_minor);
    REQUIRE(a->flags == b->flags && a->content_length == b->content_length);
    REQUIRE(memcmp(ha, hb, a->num_headers * sizeof(cp_header)) == 0);
}

/* Feed buf in growing prefixes (ends[0..n) increasing, the last == len) to
   the resumable parser, carrying its progress, request and spans from call to
   call as a connection does; each answer must be the stateless answer for
   that prefix, and the last one the whole parse's. */
static void check_resumed(const char *buf, const size_t *ends, size_t n,
                          const cp_limits *lim, ptrdiff_t ret, const cp_request *whole,
                          const cp_header *h, cp_header *h3, cp_header *h4)
{
    cp_head_progress progress = {0};
    cp_request carried, alone;
    memset(&carried, 0xA5, sizeof carried);
    for (size_t i = 0; i < n; i++) {
        size_t k = ends[i];
        char *copy = malloc(k ? k : 1);
        REQUIRE(copy != NULL);
        if (k)
            memcpy(copy, buf, k);
        ptrdiff_t r = cp_parse_request_from(copy, k, lim, &carried, h3, &progress);
        ptrdiff_t r0 = cp_parse_request(copy, k, lim, &alone, h4);
        free(copy);
        REQUIRE(r == r0);
        if (r == CP_INCOMPLETE) {
            REQUIRE(carried.incomplete_line_start == alone.incomplete_line_start);
            REQUIRE(carried.incomplete_line_max == alone.incomplete_line_max);
            REQUIRE(progress.pos <= k);
            continue;
        }
        if (r == CP_ERROR) {
            REQUIRE(carried.error_status == alone.error_status);
        } else {
            require_same_request(&carried, h3, &alone, h4);
        }
        REQUIRE(i == n - 1 || r0 == CP_ERROR || r0 > 0);
        if (k == ends[n - 1] && ret > 0) {
            REQUIRE(r == ret);
            require_same_request(&carried, h3, whole, h);
        }
        return; /* the progress is spent */
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 3)
        return 0;
    static const size_t head_limits[8] = {64, 128, 256, 512, 1024, 4096, 65536, 0};
    cp_limits lim = {pick_limit(data[0], 8190), pick_limit(data[1], 8190),
                     data[2] >= 128 ? 100 : (size_t)(data[2] & 15),
                     head_limits[(data[2] >> 4) & 7]};
    size_t len = size - 3;
    /* A private copy of exactly len bytes: reads past it are caught. */
    char *buf = malloc(len ? len : 1);
    cp_header *h = malloc((lim.max_headers ? lim.max_headers : 1) * sizeof(cp_header));
    cp_header *h2 = malloc((lim.max_headers ? lim.max_headers : 1) * sizeof(cp_header));
    cp_header *h3 = malloc((lim.max_headers ? lim.max_headers : 1) * sizeof(cp_header));
    cp_header *h4 = malloc((lim.max_headers ? lim.max_headers : 1) * sizeof(cp_header));
    size_t *ends = malloc((len + 2) * sizeof(size_t));
    size_t nends = 0;
    REQUIRE(buf && h && h2 && h3 && h4 && ends);
    if (len)
        memcpy(buf, data + 3, len);

    cp_request whole, part;
    ptrdiff_t ret = parse_checked(buf, len, &lim, &whole, h);
    if (ret > 0 && lim.max_head_size > 0)
        REQUIRE((size_t)ret <= lim.max_head_size);

    /* Prefixes: all of them for short inputs, an even spread for long ones,
       in increasing order; then the lengths around an accepted head's end. */
    size_t step = len <= 300 ? 1 : len / 97;
    int seen_error = 0;
    for (size_t k = 0; k <= len; k += step) {
        ptrdiff_t r = check_prefix(buf, k, &lim, ret, &whole, h, &part, h2);
        if (seen_error)
            REQUIRE(r == CP_ERROR);
        seen_error = r == CP_ERROR;
        ends[nends++] = k;
    }
    if (nends == 0 || ends[nends - 1] != len)
        ends[nends++] = len;
    check_resumed(buf, ends, nends, &lim, ret, &whole, h, h3, h4);
    if (ret > 0) {
        size_t e = (size_t)ret;
        check_prefix(buf, e - 1, &lim, ret, &whole, h, &part, h2);
        check_prefix(buf, e, &lim, ret, &whole, h, &part, h2);
        if (e < len)
            check_prefix(buf, e + 1, &lim, ret, &whole, h, &part, h2);
    }

    free(ends);
    free(h4);
    free(h3);
    free(h2);
    free(h);
    free(buf);
    return 0;
}
