/*
 * fuzz_chunked.c -- libFuzzer target for the chunked decoder (links chunked.c).
 *
 * Input layout: byte 0 picks max_header_size (the trailer line limit), byte 1
 * max_headers (the trailer count limit), bytes 2-3 the split point; the rest
 * is the body.
 *
 * The decoder keeps its place between calls, so how the body is cut up must
 * not matter.  We decode the same bytes whole, in two pieces cut at the
 * chosen point, and one byte at a time, and require the same decoded data,
 * the same outcome (done / needs more / error with the same status) and the
 * same number of bytes consumed.  Every single call must keep the contract:
 * consumed <= len, a data span inside the consumed bytes and not empty,
 * CP_CHUNK_MORE only when everything was consumed, errors only 400 or 431,
 * and CP_CHUNK_DONE / CP_CHUNK_ERROR sticky.  A body that decoded to
 * CP_CHUNK_DONE must decode the same when cut off right after its end.
 */
#include "parser.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "require.h"

typedef struct {
    int outcome; /* CP_CHUNK_DONE, CP_CHUNK_MORE or CP_CHUNK_ERROR */
    int status;
    size_t consumed; /* in all */
    unsigned char *data;
    size_t data_len;
} result;

/* Feed one piece (an exact heap copy) until the decoder wants more or stops. */
static int feed(cp_chunked *st, const unsigned char *src, size_t n,
                const cp_limits *lim, result *res)
{
    unsigned char *buf = malloc(n ? n : 1);
    REQUIRE(buf != NULL);
    if (n)
        memcpy(buf, src, n);
    size_t off = 0;
    int r;
    for (;;) {
        size_t used = (size_t)-1, doff = (size_t)-1, dlen = (size_t)-1;
        r = cp_chunked_decode(st, (const char *)buf + off, n - off, lim, &used, &doff,
                              &dlen);
        REQUIRE(used <= n - off);
        if (r == CP_CHUNK_DATA) {
            REQUIRE(dlen > 0 && doff <= used && dlen <= used - doff);
            memcpy(res->data + res->data_len, buf + off + doff, dlen);
            res->data_len += dlen;
            off += used;
            continue;
        }
        off += used;
        if (r == CP_CHUNK_MORE) {
            REQUIRE(off == n);
        } else if (r == CP_CHUNK_ERROR) {
            REQUIRE(st->error_status == 400 || st->error_status == 431);
            REQUIRE(st->error_reason != NULL);
        } else {
            REQUIRE(r == CP_CHUNK_DONE);
        }
        break;
    }
    free(buf);
    res->consumed += off;
    res->outcome = r;
    if (r == CP_CHUNK_ERROR)
        res->status = st->error_status;
    return r;
}

static void check_sticky(cp_chunked *st, const cp_limits *lim, int outcome)
{
    size_t used = 1, doff, dlen;
    if (outcome == CP_CHUNK_DONE || outcome == CP_CHUNK_ERROR) {
        REQUIRE(cp_chunked_decode(st, "1\r\nx\r\n", 6, lim, &used, &doff, &dlen) ==
                outcome);
        REQUIRE(used == 0);
    }
}

/* Decode body[0..n) cut at the given points (strictly increasing, < n). */
static void decode(const unsigned char *body, size_t n, const cp_limits *lim,
                   const size_t *cuts, size_t ncuts, size_t every, result *res)
{
    cp_chunked st;
    cp_chunked_init(&st);
    res->data = malloc(n ? n : 1);
    REQUIRE(res->data != NULL);
    res->data_len = 0;
    res->consumed = 0;
    res->outcome = CP_CHUNK_MORE;
    res->status = 0;

    size_t pos = 0, ci = 0;
    while (pos < n || (pos == 0 && n == 0)) {
        size_t next = n;
        if (every)
            next = pos + every < n ? pos + every : n;
        else if (ci < ncuts)
            next = cuts[ci++];
        int r = feed(&st, body + pos, next - pos, lim, res);
        if (r != CP_CHUNK_MORE) {
            check_sticky(&st, lim, r);
            return;
        }
        pos = next;
        if (n == 0)
            break;
    }
}

static void same(const result *a, const result *b)
{
    REQUIRE(a->outcome == b->outcome);
    REQUIRE(a->status == b->status);
    REQUIRE(a->consumed == b->consumed);
    REQUIRE(a->data_len == b->data_len);
    REQUIRE(a->data_len == 0 || memcmp(a->data, b->data, a->data_len) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 4)
        return 0;
    cp_limits lim = {8190, data[0] >= 128 ? 8190 : (size_t)data[0],
                     data[1] >= 128 ? 100 : (size_t)(data[1] & 7), 0};
    size_t split = ((size_t)data[2] << 8) | data[3];
    const unsigned char *body = data + 4;
    size_t n = size - 4;

    result whole, two, bytes;
    decode(body, n, &lim, NULL, 0, 0, &whole);
    REQUIRE(whole.consumed <= n);
    if (whole.outcome == CP_CHUNK_MORE)
        REQUIRE(whole.consumed == n);

    size_t cut = n ? split % n : 0;
    if (cut == 0)
        decode(body, n, &lim, NULL, 0, 0, &two);
    else
        decode(body, n, &lim, &cut, 1, 0, &two);
    same(&whole, &two);

    decode(body, n, &lim, NULL, 0, 1, &bytes);
    same(&whole, &bytes);

    if (whole.outcome == CP_CHUNK_DONE) {
        result exact;
        decode(body, whole.consumed, &lim, NULL, 0, 0, &exact);
        same(&whole, &exact);
        free(exact.data);
    }

    free(whole.data);
    free(two.data);
    free(bytes.data);
    return 0;
}
