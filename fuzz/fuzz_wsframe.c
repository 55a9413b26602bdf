/*
 * fuzz_wsframe.c -- libFuzzer target for the WebSocket decoder (links
 * wsframe.c, chars.c and zlib).
 *
 * Input layout: byte 0 picks the options -- bit 0 permessage-deflate, bit 1
 * client_no_context_takeover, bits 2-4 the client's window (8 + 0..7), bits
 * 5-7 max_message (none, 1, 125, 126, 1000, 65535, 65536, 1 MiB); bytes 1-2
 * the split point; the rest is the stream from the client.
 *
 * The decoder keeps its place between calls, so how the stream is cut up
 * must not matter: we decode it whole, in two pieces cut at the chosen
 * point, and one byte at a time, and require the same events (kind, bytes,
 * close code), the same outcome (needs more / closed / error with the same
 * close code) and, unless it failed, the same number of bytes consumed.
 * Every call must keep the contract: consumed <= len, CP_WS_MORE only when
 * everything was consumed, CP_WS_CLOSED consuming nothing, errors only
 * 1002, 1007 or 1009 and sticky.  Every message is within max_message, and
 * the message buffer never grew past it; text messages and close reasons
 * are valid UTF-8; control payloads are at most 125 bytes; close codes are
 * sendable ones or 1005.  Finally each message goes back through the
 * encoder (compressed when deflate is on) and, masked, through a fresh
 * decoder, and must come out the same.
 */
#include "wsframe.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "require.h"

typedef struct {
    int opcode;
    unsigned code;
    unsigned char *data;
    size_t len;
} event;

typedef struct {
    int outcome; /* CP_WS_MORE, CP_WS_CLOSED or CP_WS_ERROR */
    unsigned error;
    size_t consumed;
    event *ev;
    size_t nev, cap;
} result;

static void add_event(result *res, const cp_ws_event *ev)
{
    if (res->nev == res->cap) {
        res->cap = res->cap ? res->cap * 2 : 8;
        res->ev = realloc(res->ev, res->cap * sizeof *res->ev);
        REQUIRE(res->ev != NULL);
    }
    event *e = &res->ev[res->nev++];
    e->opcode = ev->opcode;
    e->code = ev->close_code;
    e->len = ev->len;
    e->data = malloc(ev->len ? ev->len : 1);
    REQUIRE(e->data != NULL);
    if (ev->len)
        memcpy(e->data, ev->data, ev->len);
}

static void free_result(result *res)
{
    for (size_t i = 0; i < res->nev; i++)
        free(res->ev[i].data);
    free(res->ev);
    memset(res, 0, sizeof *res);
}

static void check_event(const cp_ws_event *ev, size_t max)
{
    REQUIRE(ev->data != NULL);
    switch (ev->opcode) {
    case CP_WS_TEXT:
        REQUIRE(cp_ws_utf8_ok(ev->data, ev->len));
        /* fallthrough */
    case CP_WS_BINARY:
        REQUIRE(max == 0 || ev->len <= max);
        break;
    case CP_WS_PING:
    case CP_WS_PONG:
        REQUIRE(ev->len <= 125);
        break;
    case CP_WS_CLOSE:
        REQUIRE(ev->len <= 123);
        REQUIRE(cp_ws_utf8_ok(ev->data, ev->len));
        REQUIRE(cp_ws_close_code_ok(ev->close_code) ||
                (ev->close_code == CP_WS_CLOSE_NO_STATUS && ev->len == 0));
        break;
    default:
        REQUIRE(!"unknown event opcode");
    }
}

/* Feed stream[0..n) to d: every `every` bytes, or cut once at `cut` (0: whole). */
static void decode(const cp_ws_decoder_opts *o, const unsigned char *stream, size_t n,
                   size_t cut, size_t every, result *res)
{
    cp_ws_decoder d;
    cp_ws_decoder_init(&d, o);
    memset(res, 0, sizeof *res);
    res->outcome = CP_WS_MORE;
    size_t pos = 0;
    int done = 0;
    while (pos < n && !done) {
        size_t next = every ? (n - pos < every ? n : pos + every)
                            : (pos == 0 && cut > 0 ? cut : n);
        size_t piece = next - pos;
        unsigned char *buf = malloc(piece);
        REQUIRE(buf != NULL);
        memcpy(buf, stream + pos, piece);
        size_t off = 0;
        for (;;) {
            size_t used = (size_t)-1;
            cp_ws_event ev;
            int r = cp_ws_decode(&d, buf + off, piece - off, &used, &ev);
            if (o->max_message != 0)
                REQUIRE(d.msg_cap <= o->max_message);
            if (r == CP_WS_EVENT) {
                REQUIRE(used <= piece - off);
                check_event(&ev, o->max_message);
                add_event(res, &ev);
                off += used;
                continue;
            }
            if (r == CP_WS_MORE) {
                REQUIRE(used == piece - off);
                off += used;
                break;
            }
            REQUIRE(r == CP_WS_CLOSED || r == CP_WS_ERROR);
            if (r == CP_WS_CLOSED)
                REQUIRE(used == 0);
            else
                REQUIRE(d.error_code == 1002 || d.error_code == 1007 ||
                        d.error_code == 1009);
            res->outcome = r;
            res->error = r == CP_WS_ERROR ? d.error_code : 0;
            /* sticky */
            unsigned char ping[6] = {0x89, 0x80, 0, 0, 0, 0};
            size_t again = 1;
            REQUIRE(cp_ws_decode(&d, ping, sizeof ping, &again, &ev) == r && again == 0);
            done = 1;
            break;
        }
        free(buf);
        pos += off;
    }
    res->consumed = pos;
    cp_ws_decoder_free(&d);
}

static void same(const result *a, const result *b)
{
    REQUIRE(a->outcome == b->outcome);
    REQUIRE(a->error == b->error);
    if (a->outcome != CP_WS_ERROR)
        REQUIRE(a->consumed == b->consumed);
    REQUIRE(a->nev == b->nev);
    for (size_t i = 0; i < a->nev; i++) {
        REQUIRE(a->ev[i].opcode == b->ev[i].opcode);
        REQUIRE(a->ev[i].code == b->ev[i].code);
        REQUIRE(a->ev[i].len == b->ev[i].len);
        REQUIRE(a->ev[i].len == 0 || memcmp(a->ev[i].data, b->ev[i].data, a->ev[i].len) == 0);
    }
}

/* The messages of r through our encoder and back through a decoder. */
static void round_trip(const result *r, const cp_ws_deflate_params *p, unsigned char key)
{
    cp_ws_deflater c;
    cp_ws_deflate_params server = {0, 0, 15, 15};
    cp_ws_deflate_params client = {0, 0, 15, 15};
    if (p != NULL) {
        /* we compress as the decoder's client would: same window, same resets */
        server.server_no_context_takeover = p->client_no_context_takeover;
        server.server_max_window_bits = p->client_max_window_bits;
        client = *p;
    }
    cp_ws_deflater_init(&c, &server, -1);
    cp_ws_decoder d;
    cp_ws_decoder_opts o = {0, p != NULL ? &client : NULL};
    cp_ws_decoder_init(&d, &o);
    for (size_t i = 0; i < r->nev; i++) {
        const event *e = &r->ev[i];
        if (e->opcode != CP_WS_TEXT && e->opcode != CP_WS_BINARY)
            continue;
        const unsigned char *frame;
        size_t flen;
        unsigned char *plain = NULL;
        if (p != NULL) {
            REQUIRE(cp_ws_deflate_frame(&c, e->opcode, e->data, e->len, &frame, &flen) ==
                    0);
        } else {
            plain = malloc(CP_WS_HEADER_MAX + e->len);
            REQUIRE(plain != NULL);
            flen = cp_ws_write_header(plain, e->opcode, 1, 0, e->len);
            if (e->len)
                memcpy(plain + flen, e->data, e->len);
            flen += e->len;
            frame = plain;
        }
        /* mask it: MASK bit, the key after the length */
        size_t h = (frame[1] & 0x7f) == 126 ? 4 : (frame[1] & 0x7f) == 127 ? 10 : 2;
        unsigned char *m = malloc(flen + 4);
        REQUIRE(m != NULL);
        memcpy(m, frame, h);
        m[1] |= 0x80;
        unsigned char k[4] = {key, (unsigned char)(key + 1), (unsigned char)~key, 0x5a};
        memcpy(m + h, k, 4);
        for (size_t j = h; j < flen; j++)
            m[j + 4] = frame[j] ^ k[(j - h) & 3];
        size_t used;
        cp_ws_event ev;
        REQUIRE(cp_ws_decode(&d, m, flen + 4, &used, &ev) == CP_WS_EVENT);
        REQUIRE(used == flen + 4);
        REQUIRE(ev.opcode == e->opcode && ev.len == e->len);
        REQUIRE(e->len == 0 || memcmp(ev.data, e->data, e->len) == 0);
        free(m);
        free(plain);
    }
    cp_ws_decoder_free(&d);
    cp_ws_deflater_free(&c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const size_t maxes[8] = {0, 1, 125, 126, 1000, 65535, 65536, 1 << 20};
    if (size < 3)
        return 0;
    cp_ws_deflate_params p = {0, (data[0] >> 1) & 1, 15, 8 + ((data[0] >> 2) & 7)};
    cp_ws_decoder_opts o = {maxes[data[0] >> 5], (data[0] & 1) ? &p : NULL};
    size_t split = ((size_t)data[1] << 8) | data[2];
    const unsigned char *stream = data + 3;
    size_t n = size - 3;

    result whole, two, bytes;
    decode(&o, stream, n, 0, 0, &whole);
    if (whole.outcome == CP_WS_MORE)
        REQUIRE(whole.consumed == n);
    decode(&o, stream, n, n ? split % n : 0, 0, &two);
    same(&whole, &two);
    decode(&o, stream, n, 0, 1, &bytes);
    same(&whole, &bytes);

    round_trip(&whole, o.deflate, data[1]);

    free_result(&whole);
    free_result(&two);
    free_result(&bytes);
    return 0;
}
