/*
 * test_wsframe.c -- standalone tests for wsframe.c, the WebSocket codec.
 *
 * No framework: CHECK() counts, prints each failure with the case name and
 * carries on; the exit status is non-zero if anything failed.
 *
 * The fixtures below are the specification: client frames (built here,
 * masked with a key that changes from frame to frame) and what the decoder
 * must make of them -- the messages and control frames in order, then
 * "needs more", "closed" or an error with its close code.  Every stream is
 * fed whole, one byte at a time, in two pieces cut at every point, and
 * followed by the next frame (a ping, which must come out after the
 * expected events, or stay unread after a close), each piece copied into a
 * heap block of exactly its size so that AddressSanitizer catches a read
 * past the end.  The outcome must not depend on the feeding.
 *
 * Compressed streams are made here with zlib (as a client would), and the
 * encoder's frames are read back with zlib (as a client would).
 */
#include "wsframe.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "check.h"

/* ---- mini harness ------------------------------------------------------- */

static char label[256];

#define SET_LABEL(...)                                                         \
    do {                                                                       \
        snprintf(label, sizeof label, __VA_ARGS__);                            \
        current = label;                                                       \
    } while (0)

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (p == NULL) {
        perror("malloc");
        exit(2);
    }
    return p;
}

/* A heap copy of exactly n bytes (ASan guards the end). */
static unsigned char *copy_exact(const unsigned char *s, size_t n)
{
    unsigned char *p = xmalloc(n);
    if (n)
        memcpy(p, s, n);
    return p;
}

/* A growable byte string. */
typedef struct {
    unsigned char *p;
    size_t n, cap;
} bytes;

static void put(bytes *b, const void *s, size_t n)
{
    if (b->cap - b->n < n) {
        size_t cap = b->cap ? b->cap : 64;
        while (cap - b->n < n)
            cap *= 2;
        b->p = realloc(b->p, cap);
        if (b->p == NULL) {
            perror("realloc");
            exit(2);
        }
        b->cap = cap;
    }
    if (n)
        memcpy(b->p + b->n, s, n);
    b->n += n;
}

/* n bytes of valid ASCII text that repeats at several distances. */
static void pattern(unsigned char *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (unsigned char)('a' + (i * 7 + seed + (i >> 9) * 3) % 26);
}

/* ---- building client frames --------------------------------------------- */

#define FIN 0x80
#define RSV1 0x40
#define RSV2 0x20
#define RSV3 0x10
#define TEXT (FIN | CP_WS_TEXT)
#define BIN (FIN | CP_WS_BINARY)
#define TEXT_PART CP_WS_TEXT
#define BIN_PART CP_WS_BINARY
#define CONT_PART CP_WS_CONT
#define CONT (FIN | CP_WS_CONT)
#define CLOSE (FIN | CP_WS_CLOSE)
#define PING (FIN | CP_WS_PING)
#define PONG (FIN | CP_WS_PONG)

enum { SHORTEST = 0, FORM16 = 126, FORM64 = 127, UNMASKED = 1000 };

static unsigned key_counter;

/* A masked client frame: first byte b0, payload p[0..n), the length in the
   given form (SHORTEST, or forced FORM16 / FORM64), with a fresh key. */
static void put_frame_form(bytes *b, unsigned b0, const void *p, size_t n, int form)
{
    unsigned char h[14];
    size_t hl = 0;
    int masked = form != UNMASKED;
    if (form == UNMASKED)
        form = SHORTEST;
    h[hl++] = (unsigned char)b0;
    unsigned char m = masked ? 0x80 : 0;
    if (form == SHORTEST && n <= 125) {
        h[hl++] = (unsigned char)(m | n);
    } else if (form == FORM16 || (form == SHORTEST && n <= 0xffff)) {
        h[hl++] = m | 126;
        h[hl++] = (unsigned char)(n >> 8);
        h[hl++] = (unsigned char)n;
    } else {
        h[hl++] = m | 127;
        for (int i = 0; i < 8; i++)
            h[hl++] = (unsigned char)((uint64_t)n >> (56 - 8 * i));
    }
    unsigned char key[4] = {0, 0, 0, 0};
    if (masked) {
        key_counter = key_counter * 1103515245u + 12345u;
        for (int i = 0; i < 4; i++)
            key[i] = (unsigned char)(key_counter >> (8 * i + 3));
        memcpy(h + hl, key, 4);
        hl += 4;
    }
    put(b, h, hl);
    size_t at = b->n;
    put(b, p, n);
    for (size_t i = 0; i < n; i++)
        b->p[at + i] ^= key[i & 3];
}

static void put_frame(bytes *b, unsigned b0, const void *p, size_t n)
{
    put_frame_form(b, b0, p, n, SHORTEST);
}

/* ---- feeding the decoder ------------------------------------------------ */

typedef struct {
    int opcode;
    unsigned char *data;
    size_t len;
    unsigned code;
} got_event;

#define MAX_EVENTS 64

typedef struct {
    int outcome; /* CP_WS_MORE (all consumed, nothing pending), CLOSED, ERROR */
    unsigned error;
    size_t consumed;
    size_t nev;
    got_event ev[MAX_EVENTS];
    size_t max_msg_cap; /* the largest message buffer seen */
} run_result;

static void free_result(run_result *r)
{
    for (size_t i = 0; i < r->nev; i++)
        free(r->ev[i].data);
    r->nev = 0;
}

/* Feed raw[0..n) in pieces: every `step` bytes, or cut once at first_cut
   (step 0).  Each piece is an exact heap copy. */
static void feed(const cp_ws_decoder_opts *o, const unsigned char *raw, size_t n,
                 size_t step, size_t first_cut, run_result *res)
{
    cp_ws_decoder d;
    cp_ws_decoder_init(&d, o);
    memset(res, 0, sizeof *res);
    res->outcome = CP_WS_MORE;
    size_t pos = 0;
    while (pos < n) {
        size_t piece = step ? step : (pos == 0 ? first_cut : n - pos);
        if (piece > n - pos)
            piece = n - pos;
        unsigned char *buf = copy_exact(raw + pos, piece);
        size_t off = 0;
        int r;
        for (;;) {
            size_t used = (size_t)-1;
            cp_ws_event ev;
            r = cp_ws_decode(&d, buf + off, piece - off, &used, &ev);
            if (d.msg_cap > res->max_msg_cap)
                res->max_msg_cap = d.msg_cap;
            if (r == CP_WS_EVENT) {
                CHECK(used <= piece - off, "consumed %zu > len %zu", used, piece - off);
                CHECK(ev.data != NULL, "event data is NULL");
                if (res->nev < MAX_EVENTS) {
                    got_event *g = &res->ev[res->nev++];
                    g->opcode = ev.opcode;
                    g->len = ev.len;
                    g->data = copy_exact(ev.data, ev.len);
                    g->code = ev.close_code;
                }
                off += used;
                continue;
            }
            if (r == CP_WS_MORE)
                CHECK(used == piece - off, "MORE but consumed %zu of %zu", used,
                      piece - off);
            else if (r == CP_WS_CLOSED)
                CHECK(used == 0, "CLOSED consumed %zu", used);
            if (r != CP_WS_ERROR)
                off += used;
            break;
        }
        free(buf);
        pos += off;
        res->consumed = pos;
        if (r == CP_WS_ERROR || r == CP_WS_CLOSED) {
            res->outcome = r;
            res->error = r == CP_WS_ERROR ? d.error_code : 0;
            if (r == CP_WS_ERROR)
                CHECK(d.error_reason != NULL, "no error_reason");
            /* sticky */
            unsigned char ping[6] = {0x89, 0x80, 1, 2, 3, 4};
            size_t used = 1;
            cp_ws_event ev;
            CHECK(cp_ws_decode(&d, ping, sizeof ping, &used, &ev) == r && used == 0,
                  "outcome %d is not sticky", r);
            break;
        }
    }
    cp_ws_decoder_free(&d);
}

/* ---- the fixtures ---------------------------------------------------------- */

typedef struct {
    unsigned b0;
    const char *payload; /* NULL: `len` bytes of pattern() */
    size_t len;
    int form;
} tframe;

typedef struct {
    int opcode;
    const char *data; /* NULL: `len` bytes of pattern() */
    size_t len;
    unsigned code;
} tevent;

#define F(b0, s) {(b0), (s), sizeof(s) - 1, SHORTEST}
#define FF(b0, s, form) {(b0), (s), sizeof(s) - 1, (form)}
#define FN(b0, n) {(b0), NULL, (n), SHORTEST}
#define E(op, s) {(op), (s), sizeof(s) - 1, 0}
#define EN(op, n) {(op), NULL, (n), 0}
#define ECLOSE(code, s) {CP_WS_CLOSE, (s), sizeof(s) - 1, (code)}

typedef struct {
    const char *name;
    size_t max;  /* max_message (0: none) */
    int deflate; /* permessage-deflate negotiated (defaults) */
    tframe frames[8];
    tevent events[8];
    int outcome; /* CP_WS_MORE, CP_WS_CLOSED or CP_WS_ERROR */
    unsigned error;
} ws_case;

#define OK CP_WS_MORE, 0
#define CLOSED CP_WS_CLOSED, 0
#define FAILS(code) CP_WS_ERROR, (code)
#define P_ERR 1002
#define BAD_DATA 1007
#define TOO_BIG 1009

/* clang-format off */
static const ws_case cases[] = {
    /* messages */
    {"text", 0, 0, {F(TEXT, "Hello")}, {E(CP_WS_TEXT, "Hello")}, OK},
    {"binary with NUL and 0xff", 0, 0, {F(BIN, "\x00\xff\x80\x01")},
     {E(CP_WS_BINARY, "\x00\xff\x80\x01")}, OK},
    {"empty text", 0, 0, {F(TEXT, "")}, {E(CP_WS_TEXT, "")}, OK},
    {"empty binary", 0, 0, {F(BIN, "")}, {E(CP_WS_BINARY, "")}, OK},
    {"two messages", 0, 0, {F(TEXT, "one"), F(BIN, "two")},
     {E(CP_WS_TEXT, "one"), E(CP_WS_BINARY, "two")}, OK},
    {"text 125 bytes", 0, 0, {FN(TEXT, 125)}, {EN(CP_WS_TEXT, 125)}, OK},
    {"text 126 bytes (16-bit length)", 0, 0, {FN(TEXT, 126)}, {EN(CP_WS_TEXT, 126)}, OK},
    {"binary 65535 bytes", 0, 0, {FN(BIN, 65535)}, {EN(CP_WS_BINARY, 65535)}, OK},
    {"binary 65536 bytes (64-bit length)", 0, 0, {FN(BIN, 65536)},
     {EN(CP_WS_BINARY, 65536)}, OK},
    {"text exactly the size limit", 126, 0, {FN(TEXT, 126)}, {EN(CP_WS_TEXT, 126)}, OK},

    /* fragmentation */
    {"fragmented text", 0, 0, {F(TEXT_PART, "Hel"), F(CONT_PART, "l"), F(CONT, "o")},
     {E(CP_WS_TEXT, "Hello")}, OK},
    {"fragmented binary, empty fragments", 0, 0,
     {F(BIN_PART, ""), F(CONT_PART, "ab"), F(CONT_PART, ""), F(CONT, "")},
     {E(CP_WS_BINARY, "ab")}, OK},
    {"ping between fragments", 0, 0,
     {F(TEXT_PART, "frag"), F(PING, "p"), F(CONT_PART, "men"), F(PONG, ""), F(CONT, "ted")},
     {E(CP_WS_PING, "p"), E(CP_WS_PONG, ""), E(CP_WS_TEXT, "fragmented")}, OK},
    {"close between fragments", 0, 0, {F(TEXT_PART, "frag"), F(CLOSE, "\x03\xe8")},
     {ECLOSE(1000, "")}, CLOSED},
    {"fragments of 65536 and 126", 0, 0, {FN(BIN_PART, 65536), FN(CONT, 126)}, {}, OK},
    {"fragments within the size limit", 10, 0, {F(TEXT_PART, "12345"), F(CONT, "67890")},
     {E(CP_WS_TEXT, "1234567890")}, OK},

    /* UTF-8 */
    {"UTF-8 edges", 0, 0,
     {F(TEXT, "\xc2\x80\xdf\xbf\xe0\xa0\x80\xed\x9f\xbf\xee\x80\x80\xef\xbf\xbf"
              "\xf0\x90\x80\x80\xf4\x8f\xbf\xbf")},
     {E(CP_WS_TEXT, "\xc2\x80\xdf\xbf\xe0\xa0\x80\xed\x9f\xbf\xee\x80\x80\xef\xbf\xbf"
                    "\xf0\x90\x80\x80\xf4\x8f\xbf\xbf")}, OK},
    {"code point split between fragments", 0, 0,
     {F(TEXT_PART, "\xce\xba\xe1"), F(CONT_PART, "\xbd"), F(CONT, "\xb9\xcf\x83")},
     {E(CP_WS_TEXT, "\xce\xba\xe1\xbd\xb9\xcf\x83")}, OK},
    {"four-byte code point in four fragments", 0, 0,
     {F(TEXT_PART, "\xf0"), F(CONT_PART, "\x9f"), F(PING, ""), F(CONT_PART, "\x8c"),
      F(CONT, "\xb3")},
     {E(CP_WS_PING, ""), E(CP_WS_TEXT, "\xf0\x9f\x8c\xb3")}, OK},
    {"binary is not UTF-8 checked", 0, 0, {F(BIN, "\xc0\x80\xed\xa0\x80")},
     {E(CP_WS_BINARY, "\xc0\x80\xed\xa0\x80")}, OK},
    {"overlong NUL", 0, 0, {F(TEXT, "a\xc0\x80")}, {}, FAILS(BAD_DATA)},
    {"overlong three-byte", 0, 0, {F(TEXT, "\xe0\x9f\xbf")}, {}, FAILS(BAD_DATA)},
    {"overlong four-byte", 0, 0, {F(TEXT, "\xf0\x8f\xbf\xbf")}, {}, FAILS(BAD_DATA)},
    {"surrogate", 0, 0, {F(TEXT, "\xed\xa0\x80")}, {}, FAILS(BAD_DATA)},
    {"past U+10FFFF", 0, 0, {F(TEXT, "\xf4\x90\x80\x80")}, {}, FAILS(BAD_DATA)},
    {"lone continuation byte", 0, 0, {F(TEXT, "abc\x80")}, {}, FAILS(BAD_DATA)},
    {"0xF5", 0, 0, {F(TEXT, "\xf5\x80\x80\x80")}, {}, FAILS(BAD_DATA)},
    {"0xFF after 9 ASCII bytes", 0, 0, {F(TEXT, "123456789\xff")}, {}, FAILS(BAD_DATA)},
    {"message ends inside a code point", 0, 0, {F(TEXT, "\xe2\x82")}, {}, FAILS(BAD_DATA)},
    {"fragmented message ends inside a code point", 0, 0,
     {F(TEXT_PART, "\xe2"), F(CONT, "\x82")}, {}, FAILS(BAD_DATA)},
    {"invalid UTF-8 fails at the first fragment", 0, 0,
     {F(TEXT_PART, "\xce\xba\xed\xa0\x80")}, {}, FAILS(BAD_DATA)},

    /* control frames */
    {"ping", 0, 0, {F(PING, "hello")}, {E(CP_WS_PING, "hello")}, OK},
    {"ping 125 bytes", 0, 0, {FN(PING, 125)}, {EN(CP_WS_PING, 125)}, OK},
    {"pong, unsolicited", 0, 0, {F(PONG, "x")}, {E(CP_WS_PONG, "x")}, OK},
    {"close without code", 0, 0, {F(CLOSE, "")}, {ECLOSE(1005, "")}, CLOSED},
    {"close 1000", 0, 0, {F(CLOSE, "\x03\xe8")}, {ECLOSE(1000, "")}, CLOSED},
    {"close with reason", 0, 0, {F(CLOSE, "\x03\xe9going \xce\xba")},
     {ECLOSE(1001, "going \xce\xba")}, CLOSED},
    {"close with a 123-byte reason", 0, 0,
     {F(CLOSE, "\x0f\xa0" "0123456789012345678901234567890123456789012345678901234567890"
               "12345678901234567890123456789012345678901234567890123456789012")},
     {ECLOSE(4000, "0123456789012345678901234567890123456789012345678901234567890"
                   "12345678901234567890123456789012345678901234567890123456789012")},
     CLOSED},
    {"nothing is read after close", 0, 0, {F(CLOSE, ""), F(TEXT, "late")},
     {ECLOSE(1005, "")}, CLOSED},
    {"close with one byte", 0, 0, {F(CLOSE, "\x03")}, {}, FAILS(P_ERR)},
    {"close reason not UTF-8", 0, 0, {F(CLOSE, "\x03\xe8\xff")}, {}, FAILS(BAD_DATA)},
    {"close reason with a surrogate", 0, 0, {F(CLOSE, "\x03\xe8\xed\xa0\x80")}, {},
     FAILS(BAD_DATA)},
    {"ping 126 bytes", 0, 0, {FN(PING, 126)}, {}, FAILS(P_ERR)},
    {"close 126 bytes", 0, 0, {FN(CLOSE, 126)}, {}, FAILS(P_ERR)},
    {"fragmented ping", 0, 0, {F(CP_WS_PING, "a")}, {}, FAILS(P_ERR)},
    {"fragmented close", 0, 0, {F(CP_WS_CLOSE, "")}, {}, FAILS(P_ERR)},

    /* framing errors */
    {"unmasked", 0, 0, {FF(TEXT, "Hello", UNMASKED)}, {}, FAILS(P_ERR)},
    {"unmasked ping", 0, 0, {FF(PING, "", UNMASKED)}, {}, FAILS(P_ERR)},
    {"RSV1 without deflate", 0, 0, {F(TEXT | RSV1, "x")}, {}, FAILS(P_ERR)},
    {"RSV2", 0, 0, {F(TEXT | RSV2, "x")}, {}, FAILS(P_ERR)},
    {"RSV3", 0, 0, {F(BIN | RSV3, "x")}, {}, FAILS(P_ERR)},
    {"RSV2 with deflate", 0, 1, {F(TEXT | RSV2, "x")}, {}, FAILS(P_ERR)},
    {"RSV1 on a ping with deflate", 0, 1, {F(PING | RSV1, "")}, {}, FAILS(P_ERR)},
    {"RSV1 on a continuation with deflate", 0, 1,
     {F(TEXT_PART, "a"), F(CONT | RSV1, "b")}, {}, FAILS(P_ERR)},
    {"opcode 3", 0, 0, {F(FIN | 3, "")}, {}, FAILS(P_ERR)},
    {"opcode 7", 0, 0, {F(FIN | 7, "")}, {}, FAILS(P_ERR)},
    {"opcode 0xB", 0, 0, {F(FIN | 0xB, "")}, {}, FAILS(P_ERR)},
    {"opcode 0xF", 0, 0, {F(FIN | 0xF, "")}, {}, FAILS(P_ERR)},
    {"continuation without a message", 0, 0, {F(CONT, "x")}, {}, FAILS(P_ERR)},
    {"continuation after a whole message", 0, 0, {F(TEXT, "a"), F(CONT, "b")},
     {E(CP_WS_TEXT, "a")}, FAILS(P_ERR)},
    {"text inside a fragmented message", 0, 0, {F(TEXT_PART, "a"), F(TEXT, "b")}, {},
     FAILS(P_ERR)},
    {"binary inside a fragmented message", 0, 0, {F(BIN_PART, "a"), F(BIN_PART, "b")},
     {}, FAILS(P_ERR)},
    {"16-bit length for 125 bytes", 0, 0, {{BIN, NULL, 125, FORM16}}, {}, FAILS(P_ERR)},
    {"16-bit length for 0 bytes", 0, 0, {FF(BIN, "", FORM16)}, {}, FAILS(P_ERR)},
    {"64-bit length for 65535 bytes", 0, 0, {{BIN, NULL, 65535, FORM64}}, {},
     FAILS(P_ERR)},
    {"64-bit length for 5 bytes", 0, 0, {FF(TEXT, "Hello", FORM64)}, {}, FAILS(P_ERR)},

    /* size limit */
    {"text one byte over the limit", 10, 0, {F(TEXT, "12345678901")}, {}, FAILS(TOO_BIG)},
    {"fragments over the limit", 10, 0, {F(TEXT_PART, "123456"), F(CONT, "789012")}, {},
     FAILS(TOO_BIG)},
    {"limit does not apply to control frames", 10, 0, {F(PING, "12345678901")},
     {E(CP_WS_PING, "12345678901")}, OK},
};
/* clang-format on */

/* Streams the table cannot hold (bytes written by hand). */
typedef struct {
    const char *name;
    const char *raw;
    size_t len;
    tevent events[4];
    int outcome;
    unsigned error;
} raw_case;

/* clang-format off */
static const raw_case raw_cases[] = {
    /* RFC 6455 5.7: a masked "Hello" */
    {"RFC 6455 5.7 masked Hello",
     "\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58", 11, {E(CP_WS_TEXT, "Hello")}, OK},
    {"RFC 6455 5.7 unmasked Hello", "\x81\x05\x48\x65\x6c\x6c\x6f", 7, {}, FAILS(P_ERR)},
    /* a header announcing more than the limit fails before the payload */
    {"64-bit length over the limit, no payload yet",
     "\x82\xff\x00\x00\x00\x00\x00\x20\x00\x00\x01\x02\x03\x04", 14, {}, FAILS(TOO_BIG)},
    {"64-bit length with the high bit set",
     "\x82\xff\x80\x00\x00\x00\x00\x00\x00\x00\x01\x02\x03\x04", 14, {}, FAILS(P_ERR)},
    /* a bad first byte fails before the second arrives */
    {"reserved opcode alone", "\x83", 1, {}, FAILS(P_ERR)},
    {"unmasked bit alone", "\x81\x05", 2, {}, FAILS(P_ERR)},
    /* invalid UTF-8 fails before the rest of its frame arrives */
    {"invalid UTF-8 in the first of 10 bytes", "\x01\x8a\x00\x00\x00\x00\xff", 7, {},
     FAILS(BAD_DATA)},
};
/* clang-format on */

static const size_t raw_case_max = 1 << 20;

/* Compare a run with the expected events and outcome. */
static void check_run(const run_result *r, const tevent *want, size_t nwant, int outcome,
                      unsigned error, size_t n)
{
    CHECK(r->outcome == outcome && r->error == error,
          "outcome %d (error %u), want %d (error %u)", r->outcome, r->error, outcome,
          error);
    CHECK(r->nev == nwant, "%zu events, want %zu", r->nev, nwant);
    for (size_t i = 0; i < r->nev && i < nwant; i++) {
        const got_event *g = &r->ev[i];
        const tevent *w = &want[i];
        unsigned char *exp = xmalloc(w->len);
        if (w->data)
            memcpy(exp, w->data, w->len);
        else
            pattern(exp, w->len, 0);
        CHECK(g->opcode == w->opcode, "event %zu: opcode %d, want %d", i, g->opcode,
              w->opcode);
        CHECK(g->len == w->len && memcmp(g->data, exp, w->len) == 0,
              "event %zu: %zu bytes, want %zu", i, g->len, w->len);
        if (w->opcode == CP_WS_CLOSE)
            CHECK(g->code == w->code, "close code %u, want %u", g->code, w->code);
        free(exp);
    }
    if (outcome == CP_WS_MORE)
        CHECK(r->consumed == n, "consumed %zu of %zu", r->consumed, n);
}

static size_t count_events(const tevent *ev, size_t cap)
{
    size_t n = 0;
    while (n < cap && ev[n].opcode != 0)
        n++;
    return n;
}

static const cp_ws_deflate_params default_deflate = {0, 0, 15, 15};

/*
 * Run one stream every way: whole, byte by byte, cut in two at every point
 * (every 97th for long streams), and with a ping after it.
 */
static void run_stream(const char *name, const cp_ws_decoder_opts *o,
                       const unsigned char *raw, size_t n, const tevent *want,
                       size_t nwant, int outcome, unsigned error)
{
    run_result r;

    SET_LABEL("%s / whole", name);
    feed(o, raw, n, 0, n, &r);
    check_run(&r, want, nwant, outcome, error, n);
    size_t close_end = r.consumed; /* with CP_WS_CLOSED: where the close frame ends */
    free_result(&r);

    SET_LABEL("%s / byte by byte", name);
    feed(o, raw, n, 1, 0, &r);
    check_run(&r, want, nwant, outcome, error, n);
    if (outcome == CP_WS_CLOSED)
        CHECK(r.consumed == close_end, "consumed %zu, whole %zu", r.consumed, close_end);
    free_result(&r);

    size_t stride = n <= 300 ? 1 : 97;
    for (size_t k = 1; k < n; k += stride) {
        SET_LABEL("%s / cut at %zu", name, k);
        feed(o, raw, n, 0, k, &r);
        check_run(&r, want, nwant, outcome, error, n);
        if (outcome == CP_WS_CLOSED)
            CHECK(r.consumed == close_end, "consumed %zu, whole %zu", r.consumed,
                  close_end);
        free_result(&r);
    }

    /* followed by the next frame */
    SET_LABEL("%s / followed by a ping", name);
    bytes b = {0};
    put(&b, raw, n);
    put_frame(&b, PING, "next", 4);
    feed(o, b.p, b.n, 0, b.n, &r);
    if (outcome == CP_WS_MORE) {
        tevent more[MAX_EVENTS];
        if (nwant > 0)
            memcpy(more, want, nwant * sizeof *want);
        more[nwant] = (tevent)E(CP_WS_PING, "next");
        check_run(&r, more, nwant + 1, CP_WS_MORE, 0, b.n);
    } else {
        check_run(&r, want, nwant, outcome, error, n);
        if (outcome == CP_WS_CLOSED)
            CHECK(r.consumed == close_end, "consumed %zu past the close frame's %zu",
                  r.consumed, close_end);
    }
    free_result(&r);
    free(b.p);
}

static void run_case(const ws_case *c)
{
    bytes b = {0};
    for (size_t i = 0; i < 8 && (c->frames[i].b0 != 0 || c->frames[i].payload != NULL);
         i++) {
        const tframe *f = &c->frames[i];
        if (f->payload != NULL) {
            put_frame_form(&b, f->b0, f->payload, f->len, f->form);
        } else {
            unsigned char *p = xmalloc(f->len);
            pattern(p, f->len, 0);
            put_frame_form(&b, f->b0, p, f->len, f->form);
            free(p);
        }
    }
    cp_ws_decoder_opts o = {c->max, c->deflate ? &default_deflate : NULL};
    size_t nwant = count_events(c->events, 8);
    if (strcmp(c->name, "fragments of 65536 and 126") == 0) {
        /* the expected message is the concatenation of two patterns */
        run_result r;
        SET_LABEL("%s / whole", c->name);
        feed(&o, b.p, b.n, 0, b.n, &r);
        unsigned char *exp = xmalloc(65536 + 126);
        pattern(exp, 65536, 0);
        pattern(exp + 65536, 126, 0);
        CHECK(r.outcome == CP_WS_MORE && r.nev == 1 && r.ev[0].len == 65536 + 126 &&
                  memcmp(r.ev[0].data, exp, 65536 + 126) == 0,
              "outcome %d, %zu events", r.outcome, r.nev);
        free_result(&r);
        SET_LABEL("%s / byte by byte", c->name);
        feed(&o, b.p, b.n, 1, 0, &r);
        CHECK(r.outcome == CP_WS_MORE && r.nev == 1 && r.ev[0].len == 65536 + 126 &&
                  memcmp(r.ev[0].data, exp, 65536 + 126) == 0,
              "outcome %d, %zu events", r.outcome, r.nev);
        free_result(&r);
        free(exp);
    } else {
        run_stream(c->name, &o, b.p, b.n, c->events, nwant, c->outcome, c->error);
    }
    free(b.p);
}

/* ---- close codes ---------------------------------------------------------- */

static void test_close_codes(void)
{
    /* Autobahn 7.7.* (valid) and 7.9.* (invalid), 7.13.* (beyond), plus the
       IANA registrations 1012-1014 */
    static const struct {
        unsigned code;
        int ok;
    } codes[] = {{1000, 1}, {1001, 1}, {1002, 1}, {1003, 1}, {1007, 1}, {1008, 1},
                 {1009, 1}, {1010, 1}, {1011, 1}, {1012, 1}, {1013, 1}, {1014, 1},
                 {3000, 1}, {3999, 1}, {4000, 1}, {4999, 1}, {0, 0},     {999, 0},
                 {1004, 0}, {1005, 0}, {1006, 0}, {1015, 0}, {1016, 0},  {1100, 0},
                 {2000, 0}, {2999, 0}, {5000, 0}, {65535, 0}};
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
        unsigned code = codes[i].code;
        unsigned char p[2] = {(unsigned char)(code >> 8), (unsigned char)code};
        bytes b = {0};
        put_frame(&b, CLOSE, p, 2);
        char name[64];
        snprintf(name, sizeof name, "close code %u", code);
        tevent want = {CP_WS_CLOSE, "", 0, code};
        cp_ws_decoder_opts o = {0, NULL};
        if (codes[i].ok)
            run_stream(name, &o, b.p, b.n, &want, 1, CP_WS_CLOSED, 0);
        else
            run_stream(name, &o, b.p, b.n, NULL, 0, CP_WS_ERROR, P_ERR);
        free(b.p);
        current = name;
        CHECK(cp_ws_close_code_ok(code) == codes[i].ok, "cp_ws_close_code_ok");
    }
    /* every code, against the rule written out */
    current = "close codes 0..65535";
    for (unsigned code = 0; code < 65536; code++) {
        int want = (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) ||
                   (code >= 3000 && code <= 4999);
        CHECK(cp_ws_close_code_ok(code) == want, "code %u", code);
    }
}

/* ---- UTF-8 against a reference ------------------------------------------- */

/* A plain validator written from RFC 3629's rules, one code point at a time. */
static int ref_utf8_ok(const unsigned char *p, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned c = p[i], need;
        uint32_t cp, min;
        if (c < 0x80) {
            i++;
            continue;
        } else if ((c & 0xe0) == 0xc0) {
            need = 1, cp = c & 0x1f, min = 0x80;
        } else if ((c & 0xf0) == 0xe0) {
            need = 2, cp = c & 0x0f, min = 0x800;
        } else if ((c & 0xf8) == 0xf0) {
            need = 3, cp = c & 0x07, min = 0x10000;
        } else {
            return 0;
        }
        if (n - i - 1 < need)
            return 0;
        for (unsigned k = 1; k <= need; k++) {
            if ((p[i + k] & 0xc0) != 0x80)
                return 0;
            cp = cp << 6 | (p[i + k] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return 0;
        i += need + 1;
    }
    return 1;
}

static void test_utf8(void)
{
    unsigned char s[4];
    long mismatches = 0;
    current = "UTF-8: every sequence of 1 to 3 bytes";
    for (unsigned a = 0; a < 256; a++) {
        s[0] = (unsigned char)a;
        mismatches += cp_ws_utf8_ok(s, 1) != ref_utf8_ok(s, 1);
        for (unsigned b = 0; b < 256; b++) {
            s[1] = (unsigned char)b;
            mismatches += cp_ws_utf8_ok(s, 2) != ref_utf8_ok(s, 2);
            for (unsigned c = 0; c < 256; c++) {
                s[2] = (unsigned char)c;
                mismatches += cp_ws_utf8_ok(s, 3) != ref_utf8_ok(s, 3);
            }
        }
    }
    CHECK(mismatches == 0, "%ld differences from the reference", mismatches);
    current = "UTF-8: four bytes from lead 0xEF..0xFF";
    mismatches = 0;
    for (unsigned a = 0xef; a < 256; a++)
        for (unsigned b = 0x70; b < 0xd0; b++)
            for (unsigned c = 0x70; c < 0xd0; c += 7)
                for (unsigned d = 0x70; d < 0xd0; d += 3) {
                    s[0] = (unsigned char)a, s[1] = (unsigned char)b;
                    s[2] = (unsigned char)c, s[3] = (unsigned char)d;
                    mismatches += cp_ws_utf8_ok(s, 4) != ref_utf8_ok(s, 4);
                }
    CHECK(mismatches == 0, "%ld differences from the reference", mismatches);
    /* the eight-at-a-time ASCII skip: a bad byte at every position */
    current = "UTF-8: a bad byte after ASCII runs";
    for (size_t n = 1; n < 40; n++) {
        for (size_t at = 0; at < n; at++) {
            unsigned char *p = xmalloc(n);
            memset(p, 'a', n);
            p[at] = 0x80;
            CHECK(!cp_ws_utf8_ok(p, n), "n %zu at %zu", n, at);
            p[at] = 'b';
            CHECK(cp_ws_utf8_ok(p, n), "n %zu all ASCII", n);
            free(p);
        }
    }
}

/* ---- permessage-deflate: client side, done with zlib here ------------------ */

typedef struct {
    z_stream z;
    int reset;
} client_deflater;

static void client_init(client_deflater *c, int bits, int reset)
{
    memset(c, 0, sizeof *c);
    /* zlib refuses a raw 256-byte window; a client asked for 8 uses 9 */
    if (deflateInit2(&c->z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, -(bits < 9 ? 9 : bits), 8,
                     Z_DEFAULT_STRATEGY) != Z_OK) {
        fprintf(stderr, "deflateInit2 failed\n");
        exit(2);
    }
    c->reset = reset;
}

/* The compressed payload of a message as a client sends it (tail cut). */
static void client_compress(client_deflater *c, const unsigned char *msg, size_t n,
                            bytes *out)
{
    size_t cap = n + n / 2 + 64;
    unsigned char *buf = xmalloc(cap);
    c->z.next_in = (Bytef *)msg;
    c->z.avail_in = (uInt)n;
    c->z.next_out = buf;
    c->z.avail_out = (uInt)cap;
    int r = deflate(&c->z, Z_SYNC_FLUSH);
    size_t len = cap - c->z.avail_out;
    if (n == 0 && r == Z_BUF_ERROR && len == 0) {
        /* right after a sync flush zlib writes nothing for no input: an
           empty payload, which inflates (with the tail) to nothing */
        out->n = 0;
        free(buf);
        return;
    }
    if (r != Z_OK || c->z.avail_in != 0 || len < 4 ||
        memcmp(buf + len - 4, "\x00\x00\xff\xff", 4) != 0) {
        fprintf(stderr, "client deflate failed: %d, %u left, %zu out\n", r,
                c->z.avail_in, len);
        exit(2);
    }
    out->n = 0;
    put(out, buf, len - 4);
    free(buf);
    if (c->reset)
        deflateReset(&c->z);
}

/* A compressed message as 1..3 frames (first with RSV1); with 3, a ping
   "inside" between the first two. */
static void put_compressed(bytes *stream, int opcode, const bytes *payload, int parts)
{
    size_t n = payload->n, cut1 = n / 3, cut2 = parts == 3 ? 2 * n / 3 : cut1;
    if (parts == 1) {
        put_frame(stream, (unsigned)(FIN | RSV1 | opcode), payload->p, n);
        return;
    }
    put_frame(stream, (unsigned)(RSV1 | opcode), payload->p, cut1);
    if (parts == 3) {
        put_frame(stream, PING, "inside", 6);
        put_frame(stream, CONT_PART, payload->p + cut1, cut2 - cut1);
    }
    put_frame(stream, CONT, payload->p + cut2, n - cut2);
}

/* Messages built at run time (the expected events own their data). */
typedef struct {
    int opcode;
    unsigned char *data;
    size_t len;
} msg;

static void run_messages(const char *name, const cp_ws_decoder_opts *o, const bytes *s,
                         const msg *m, size_t nm, int outcome, unsigned error)
{
    tevent want[MAX_EVENTS];
    for (size_t i = 0; i < nm; i++) {
        want[i].opcode = m[i].opcode;
        want[i].data = (const char *)m[i].data;
        want[i].len = m[i].len;
        want[i].code = 0;
    }
    run_stream(name, o, s->p, s->n, want, nm, outcome, error);
}

static void test_deflate_decode(void)
{
    cp_ws_deflate_params params = default_deflate;
    cp_ws_decoder_opts o = {1 << 20, &params};
    bytes s = {0}, c = {0};
    client_deflater cd;
    unsigned char big[20000];
    pattern(big, sizeof big, 5);

    /* context takeover: later messages refer back to earlier ones */
    for (int reset = 0; reset < 2; reset++) {
        params.client_no_context_takeover = reset;
        client_init(&cd, 15, reset);
        s.n = 0;
        msg m[5] = {
            {CP_WS_TEXT, (unsigned char *)"Hello, hornbeam! Hello, hornbeam!", 33},
            {CP_WS_TEXT, (unsigned char *)"Hello, hornbeam! Hello, hornbeam!", 33},
            {CP_WS_BINARY, big, sizeof big},
            {CP_WS_TEXT, (unsigned char *)"", 0},
            {CP_WS_TEXT, (unsigned char *)"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5", 11},
        };
        for (int i = 0; i < 5; i++) {
            client_compress(&cd, m[i].data, m[i].len, &c);
            put_compressed(&s, m[i].opcode, &c, 1 + i % 3);
            if (i == 1)
                put_frame(&s, PING, "between", 7);
        }
        /* message 2 comes in three fragments with a ping inside */
        msg mm[7] = {m[0], m[1], {CP_WS_PING, (unsigned char *)"between", 7},
                     {CP_WS_PING, (unsigned char *)"inside", 6}, m[2], m[3], m[4]};
        char name[96];
        snprintf(name, sizeof name, "deflate, %s context takeover",
                 reset ? "no" : "with");
        run_messages(name, &o, &s, mm, 7, CP_WS_MORE, 0);
        deflateEnd(&cd.z);
    }

    /* the client keeps its context but we were told it would not */
    params.client_no_context_takeover = 1;
    client_init(&cd, 15, 0);
    s.n = 0;
    for (int i = 0; i < 2; i++) {
        client_compress(&cd, big, 3000, &c);
        put_compressed(&s, CP_WS_BINARY, &c, 1);
    }
    {
        msg m[1] = {{CP_WS_BINARY, big, 3000}};
        run_messages("deflate, context the decoder dropped", &o, &s, m, 1, CP_WS_ERROR,
                     BAD_DATA);
    }
    deflateEnd(&cd.z);
    params.client_no_context_takeover = 0;

    /* window sizes 8..15 (8: zlib compresses with 9, and we inflate with 9) */
    for (int bits = 8; bits <= 15; bits++) {
        params.client_max_window_bits = bits;
        client_init(&cd, bits, 0);
        s.n = 0;
        client_compress(&cd, big, sizeof big, &c);
        put_compressed(&s, CP_WS_BINARY, &c, 2);
        client_compress(&cd, big + 100, sizeof big - 100, &c);
        put_compressed(&s, CP_WS_BINARY, &c, 1);
        msg m[2] = {{CP_WS_BINARY, big, sizeof big}, {CP_WS_BINARY, big + 100, sizeof big - 100}};
        char name[64];
        snprintf(name, sizeof name, "deflate, client window %d", bits);
        run_messages(name, &o, &s, m, 2, CP_WS_MORE, 0);
        deflateEnd(&cd.z);
    }
    params.client_max_window_bits = 15;

    /* compressed and plain messages mixed; an empty compressed payload */
    client_init(&cd, 15, 0);
    s.n = 0;
    client_compress(&cd, (const unsigned char *)"squeezed", 8, &c);
    put_compressed(&s, CP_WS_TEXT, &c, 1);
    put_frame(&s, TEXT, "plain", 5);
    put_frame(&s, TEXT | RSV1, "", 0);
    put_frame(&s, BIN | RSV1, "\x00", 1);
    {
        msg m[4] = {{CP_WS_TEXT, (unsigned char *)"squeezed", 8},
                    {CP_WS_TEXT, (unsigned char *)"plain", 5},
                    {CP_WS_TEXT, (unsigned char *)"", 0},
                    {CP_WS_BINARY, (unsigned char *)"", 0}};
        run_messages("deflate, mixed with plain and empty", &o, &s, m, 4, CP_WS_MORE, 0);
    }
    deflateEnd(&cd.z);

    /* a final block (BFINAL, RFC 7692 7.2.3.3): the stream ends and restarts */
    {
        z_stream z;
        memset(&z, 0, sizeof z);
        deflateInit2(&z, 6, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY);
        unsigned char out[256];
        z.next_in = (Bytef *)"final block";
        z.avail_in = 11;
        z.next_out = out;
        z.avail_out = sizeof out;
        deflate(&z, Z_FINISH);
        size_t len = sizeof out - z.avail_out;
        deflateEnd(&z);
        s.n = 0;
        put_frame(&s, TEXT | RSV1, out, len);
        put_frame(&s, TEXT | RSV1, out, len);
        msg m[2] = {{CP_WS_TEXT, (unsigned char *)"final block", 11},
                    {CP_WS_TEXT, (unsigned char *)"final block", 11}};
        run_messages("deflate, final blocks", &o, &s, m, 2, CP_WS_MORE, 0);
    }

    /* the examples of RFC 7692 7.2.3: "Hello" twice with context takeover
       (the second a back-reference), fragmented, in a stored block, and
       in a final block followed by the start of an empty stored block */
    {
        static const struct {
            unsigned b0;
            const char *p;
            size_t n;
        } rfc[] = {
            {TEXT | RSV1, "\xf2\x48\xcd\xc9\xc9\x07\x00", 7},
            {TEXT | RSV1, "\xf2\x00\x11\x00\x00", 5},
            {TEXT_PART | RSV1, "\xf2\x48\xcd", 3},
            {CONT, "\xc9\xc9\x07\x00", 4},
            {TEXT | RSV1, "\x00\x05\x00\xfa\xff\x48\x65\x6c\x6c\x6f\x00", 11},
            {TEXT | RSV1, "\xf3\x48\xcd\xc9\xc9\x07\x00\x00", 8},
        };
        s.n = 0;
        for (size_t i = 0; i < sizeof rfc / sizeof rfc[0]; i++)
            put_frame(&s, rfc[i].b0, rfc[i].p, rfc[i].n);
        msg hello = {CP_WS_TEXT, (unsigned char *)"Hello", 5};
        msg m[5] = {hello, hello, hello, hello, hello};
        run_messages("deflate, the examples of RFC 7692", &o, &s, m, 5, CP_WS_MORE, 0);
    }

    /* broken compressed data */
    client_init(&cd, 15, 0);
    client_compress(&cd, big, 5000, &c);
    deflateEnd(&cd.z);
    s.n = 0;
    put_frame(&s, BIN | RSV1, c.p, c.n - 3);
    run_messages("deflate, truncated message", &o, &s, NULL, 0, CP_WS_ERROR, BAD_DATA);
    s.n = 0;
    put_frame(&s, BIN | RSV1, "\xff\xff\xff\xff", 4);
    run_messages("deflate, garbage", &o, &s, NULL, 0, CP_WS_ERROR, BAD_DATA);
    /* invalid UTF-8 after inflation, found before the message ends */
    client_init(&cd, 15, 0);
    client_compress(&cd, (const unsigned char *)"ok \xed\xa0\x80 then more text", 22, &c);
    deflateEnd(&cd.z);
    s.n = 0;
    put_frame(&s, TEXT_PART | RSV1, c.p, c.n);
    run_messages("deflate, invalid UTF-8 inside", &o, &s, NULL, 0, CP_WS_ERROR, BAD_DATA);

    /* the size limit counts inflated bytes */
    {
        cp_ws_decoder_opts small = {1000, &params};
        client_init(&cd, 15, 0);
        client_compress(&cd, big, 1000, &c);
        s.n = 0;
        put_compressed(&s, CP_WS_BINARY, &c, 1);
        msg m[1] = {{CP_WS_BINARY, big, 1000}};
        run_messages("deflate, exactly the limit", &small, &s, m, 1, CP_WS_MORE, 0);
        deflateEnd(&cd.z);
        client_init(&cd, 15, 0);
        client_compress(&cd, big, 1001, &c);
        s.n = 0;
        put_compressed(&s, CP_WS_BINARY, &c, 1);
        run_messages("deflate, one byte over the limit", &small, &s, NULL, 0,
                     CP_WS_ERROR, TOO_BIG);
        deflateEnd(&cd.z);
    }

    /* a deflate bomb: 16 MiB of zeros in about 16 KiB, limit 1 MiB; the
       message buffer never grows past the limit */
    {
        size_t n = (size_t)16 << 20;
        unsigned char *zeros = calloc(1, n);
        client_init(&cd, 15, 0);
        client_compress(&cd, zeros, n, &c);
        deflateEnd(&cd.z);
        free(zeros);
        s.n = 0;
        put_frame(&s, BIN | RSV1, c.p, c.n);
        run_result r;
        SET_LABEL("deflate bomb (%zu bytes) / whole", c.n);
        feed(&o, s.p, s.n, 0, s.n, &r);
        CHECK(r.outcome == CP_WS_ERROR && r.error == TOO_BIG, "outcome %d error %u",
              r.outcome, r.error);
        CHECK(r.max_msg_cap <= o.max_message, "message buffer grew to %zu",
              r.max_msg_cap);
        free_result(&r);
        SET_LABEL("deflate bomb / 1000-byte reads");
        feed(&o, s.p, s.n, 1000, 0, &r);
        CHECK(r.outcome == CP_WS_ERROR && r.error == TOO_BIG, "outcome %d error %u",
              r.outcome, r.error);
        CHECK(r.max_msg_cap <= o.max_message, "message buffer grew to %zu",
              r.max_msg_cap);
        free_result(&r);
    }
    free(s.p);
    free(c.p);
}

/* ---- the encoder ------------------------------------------------------------ */

static void test_headers(void)
{
    static const struct {
        uint64_t len;
        const char *want;
        size_t wlen;
    } cases_[] = {
        {0, "\x81\x00", 2},
        {125, "\x81\x7d", 2},
        {126, "\x81\x7e\x00\x7e", 4},
        {65535, "\x81\x7e\xff\xff", 4},
        {65536, "\x81\x7f\x00\x00\x00\x00\x00\x01\x00\x00", 10},
        {(uint64_t)1 << 32, "\x81\x7f\x00\x00\x00\x01\x00\x00\x00\x00", 10},
    };
    for (size_t i = 0; i < sizeof cases_ / sizeof cases_[0]; i++) {
        unsigned char out[CP_WS_HEADER_MAX];
        SET_LABEL("header for %llu bytes", (unsigned long long)cases_[i].len);
        size_t n = cp_ws_write_header(out, CP_WS_TEXT, 1, 0, cases_[i].len);
        CHECK(n == cases_[i].wlen && memcmp(out, cases_[i].want, n) == 0, "%zu bytes", n);
    }
    unsigned char out[CP_WS_HEADER_MAX];
    current = "header: opcode, FIN and RSV1 bits";
    CHECK(cp_ws_write_header(out, CP_WS_BINARY, 0, 1, 3) == 2 && out[0] == 0x42 &&
              out[1] == 3,
          "%02x %02x", out[0], out[1]);
    CHECK(cp_ws_write_header(out, CP_WS_PONG, 1, 0, 0) == 2 && out[0] == 0x8a, "%02x",
          out[0]);

    unsigned char f[CP_WS_HEADER_MAX + 125];
    current = "close frames";
    CHECK(cp_ws_write_close(f, 0, "", 0) == 2 && memcmp(f, "\x88\x00", 2) == 0, "empty");
    CHECK(cp_ws_write_close(f, 1000, "", 0) == 4 && memcmp(f, "\x88\x02\x03\xe8", 4) == 0,
          "1000");
    CHECK(cp_ws_write_close(f, 1012, "restart", 7) == 11 &&
              memcmp(f, "\x88\x09\x03\xf4restart", 11) == 0,
          "1012 with a reason");
    char reason[124];
    memset(reason, 'r', sizeof reason);
    CHECK(cp_ws_write_close(f, 4999, reason, 123) == 127 && f[1] == 125, "123-byte reason");
    CHECK(cp_ws_write_close(f, 4999, reason, 124) == 0, "124-byte reason");
    CHECK(cp_ws_write_close(f, 1005, "", 0) == 0, "1005");
    CHECK(cp_ws_write_close(f, 1006, "", 0) == 0, "1006");
    CHECK(cp_ws_write_close(f, 999, "", 0) == 0, "999");
    CHECK(cp_ws_write_close(f, 1000, "\xff", 1) == 0, "reason not UTF-8");
    CHECK(cp_ws_write_close(f, 0, "x", 1) == 0, "reason without code");
    /* what we write, we read */
    {
        size_t n = cp_ws_write_close(f, 3001, "bye \xce\xba", 6);
        cp_ws_decoder d;
        cp_ws_decoder_opts o = {0, NULL};
        cp_ws_decoder_init(&d, &o);
        /* mask it as a client would (key 0) */
        unsigned char masked[64];
        masked[0] = f[0];
        masked[1] = (unsigned char)(f[1] | 0x80);
        memset(masked + 2, 0, 4);
        memcpy(masked + 6, f + 2, n - 2);
        size_t used;
        cp_ws_event ev;
        int r = cp_ws_decode(&d, masked, n + 4, &used, &ev);
        CHECK(r == CP_WS_EVENT && ev.opcode == CP_WS_CLOSE && ev.close_code == 3001 &&
                  ev.len == 6 && memcmp(ev.data, "bye \xce\xba", 6) == 0,
              "read back: %d", r);
        cp_ws_decoder_free(&d);
    }
}

/* Read a server frame: header fields and payload span. */
static size_t read_server_frame(const unsigned char *f, size_t n, int *b0, size_t *plen)
{
    *b0 = f[0];
    size_t len = f[1] & 0x7f, h = 2;
    CHECK(!(f[1] & 0x80), "server frame is masked");
    if (len == 126) {
        len = (size_t)f[2] << 8 | f[3];
        h = 4;
        CHECK(len >= 126, "16-bit length %zu not minimal", len);
    } else if (len == 127) {
        len = 0;
        for (int i = 2; i < 10; i++)
            len = len << 8 | f[i];
        h = 10;
        CHECK(len > 0xffff, "64-bit length %zu not minimal", len);
    }
    CHECK(h + len == n, "frame of %zu bytes, header says %zu", n, h + len);
    *plen = len;
    return h;
}

static void test_deflate_encode(void)
{
    unsigned char big[70000];
    pattern(big, sizeof big, 11);
    const struct {
        const unsigned char *p;
        size_t n;
    } msgs[] = {{big, 40}, {big, 40}, {big, sizeof big}, {(const unsigned char *)"", 0},
                {big + 7, 300}, {big + 3, 5000}, {big, 40}};
    /* (small, large, small, large, small: the deflater switches between its two
       levels -- 4 KiB and more go at level 1 -- keeping its window) */
    for (int bits = 8; bits <= 15; bits++) {
        for (int reset = 0; reset < 2; reset++) {
            SET_LABEL("deflate frames, window %d, %s context takeover", bits,
                      reset ? "no" : "with");
            cp_ws_deflate_params params = {reset, 0, bits, 15};
            cp_ws_deflater c;
            cp_ws_deflater_init(&c, &params, -1);
            /* the client inflates with the window it agreed to */
            z_stream z;
            memset(&z, 0, sizeof z);
            int zbits = bits < 9 ? 9 : bits;
            inflateInit2(&z, -zbits);
            /* and our own decoder reads our payloads back when masked */
            cp_ws_decoder_opts o = {0, &params};
            cp_ws_deflate_params dparams = {0, reset, 15, bits};
            o.deflate = &dparams;
            bytes client_stream = {0};
            for (size_t i = 0; i < sizeof msgs / sizeof msgs[0]; i++) {
                const unsigned char *frame;
                size_t flen;
                int r = cp_ws_deflate_frame(&c, CP_WS_BINARY, msgs[i].p, msgs[i].n, &frame,
                                            &flen);
                CHECK(r == 0, "message %zu: %d", i, r);
                if (r != 0)
                    continue;
                int b0;
                size_t plen, h = read_server_frame(frame, flen, &b0, &plen);
                int compressed = bits >= 9 && msgs[i].n > 0;
                CHECK(b0 == (compressed ? 0xc2 : 0x82), "message %zu: first byte %02x",
                      i, b0);
                put_frame(&client_stream, (unsigned)b0, frame + h, plen);
                unsigned char *plain = xmalloc(msgs[i].n + 1);
                if (!(b0 & RSV1)) {
                    CHECK(plen == msgs[i].n && memcmp(frame + h, msgs[i].p, plen) == 0,
                          "message %zu: uncompressed payload", i);
                    free(plain);
                    continue;
                }
                unsigned char *in = xmalloc(plen + 4);
                memcpy(in, frame + h, plen);
                memcpy(in + plen, "\x00\x00\xff\xff", 4);
                z.next_in = in;
                z.avail_in = (uInt)(plen + 4);
                z.next_out = plain;
                z.avail_out = (uInt)(msgs[i].n + 1);
                int zr = inflate(&z, Z_SYNC_FLUSH);
                size_t got = msgs[i].n + 1 - z.avail_out;
                CHECK((zr == Z_OK || zr == Z_BUF_ERROR) && z.avail_in == 0 &&
                          got == msgs[i].n && memcmp(plain, msgs[i].p, got) == 0,
                      "message %zu: inflated %zu of %zu (zlib %d)", i, got, msgs[i].n, zr);
                if (reset)
                    inflateReset(&z);
                if (i == 1 && !reset)
                    CHECK(plen < 20, "a repeated message takes %zu bytes", plen);
                free(in);
                free(plain);
            }
            inflateEnd(&z);
            cp_ws_deflater_free(&c);
            /* our payloads, masked, through our decoder */
            tevent want[8];
            size_t nm = sizeof msgs / sizeof msgs[0];
            for (size_t i = 0; i < nm; i++)
                want[i] = (tevent){CP_WS_BINARY, (const char *)msgs[i].p, msgs[i].n, 0};
            char name[96];
            snprintf(name, sizeof name, "our deflate frames back through the decoder, "
                     "window %d, reset %d", bits, reset);
            run_result r;
            SET_LABEL("%s / whole", name);
            feed(&o, client_stream.p, client_stream.n, 0, client_stream.n, &r);
            check_run(&r, want, nm, CP_WS_MORE, 0, client_stream.n);
            free_result(&r);
            SET_LABEL("%s / 333-byte reads", name);
            feed(&o, client_stream.p, client_stream.n, 333, 0, &r);
            check_run(&r, want, nm, CP_WS_MORE, 0, client_stream.n);
            free_result(&r);
            free(client_stream.p);
        }
    }
    /* control frames are never compressed */
    current = "deflate frames: a ping goes out plain";
    cp_ws_deflate_params params = {0, 0, 15, 15};
    cp_ws_deflater c;
    cp_ws_deflater_init(&c, &params, -1);
    const unsigned char *frame;
    size_t flen;
    CHECK(cp_ws_deflate_frame(&c, CP_WS_PING, (const unsigned char *)"hi", 2, &frame,
                              &flen) == 0 &&
              flen == 4 && memcmp(frame, "\x89\x02hi", 4) == 0,
          "ping");
    cp_ws_deflater_free(&c);
}

/* ---- negotiation -------------------------------------------------------------- */

typedef struct {
    const char *offer;
    const char *response; /* NULL: declined */
    int snct, cnct, sbits, cbits;
} nego_case;

/* clang-format off */
static const nego_case nego_cases[] = {
    /* browsers */
    {"permessage-deflate; client_max_window_bits",
     "permessage-deflate; client_max_window_bits=15", 0, 0, 15, 15},
    {"permessage-deflate", "permessage-deflate", 0, 0, 15, 15},
    /* parameters */
    {"permessage-deflate; client_max_window_bits=10",
     "permessage-deflate; client_max_window_bits=10", 0, 0, 15, 10},
    {"permessage-deflate; server_max_window_bits=10",
     "permessage-deflate; server_max_window_bits=10", 0, 0, 10, 15},
    {"permessage-deflate; server_max_window_bits=15",
     "permessage-deflate; server_max_window_bits=15", 0, 0, 15, 15},
    {"permessage-deflate; server_max_window_bits=8",
     "permessage-deflate; server_max_window_bits=8", 0, 0, 8, 15},
    {"permessage-deflate; server_max_window_bits=\"9\"",
     "permessage-deflate; server_max_window_bits=9", 0, 0, 9, 15},
    {"permessage-deflate;server_no_context_takeover;client_no_context_takeover",
     "permessage-deflate; server_no_context_takeover; client_no_context_takeover",
     1, 1, 15, 15},
    {"permessage-deflate ; client_no_context_takeover ; client_max_window_bits = 9",
     "permessage-deflate; client_no_context_takeover; client_max_window_bits=9",
     0, 1, 15, 9},
    {"Permessage-Deflate; Client_Max_Window_Bits",
     "permessage-deflate; client_max_window_bits=15", 0, 0, 15, 15},
    /* declined offers */
    {"permessage-deflate; server_max_window_bits", NULL, 0, 0, 0, 0},
    {"permessage-deflate; server_max_window_bits=16", NULL, 0, 0, 0, 0},
    {"permessage-deflate; server_max_window_bits=7", NULL, 0, 0, 0, 0},
    {"permessage-deflate; server_max_window_bits=08", NULL, 0, 0, 0, 0},
    {"permessage-deflate; client_max_window_bits=0x9", NULL, 0, 0, 0, 0},
    {"permessage-deflate; server_max_window_bits=\"\"", NULL, 0, 0, 0, 0},
    {"permessage-deflate; server_max_window_bits=\"1234567890\"", NULL, 0, 0, 0, 0},
    {"permessage-deflate; server_no_context_takeover=1", NULL, 0, 0, 0, 0},
    {"permessage-deflate; client_no_context_takeover; client_no_context_takeover", NULL,
     0, 0, 0, 0},
    {"permessage-deflate; client_max_window_bits; client_max_window_bits=9", NULL,
     0, 0, 0, 0},
    {"permessage-deflate; server_max_window_bits=9; server_max_window_bits=9", NULL,
     0, 0, 0, 0},
    {"permessage-deflate; mux", NULL, 0, 0, 0, 0},
    {"permessage-deflate; a; b; c; d; e; f; g; h; i", NULL, 0, 0, 0, 0},
    {"x-webkit-deflate-frame", NULL, 0, 0, 0, 0},
    {"", NULL, 0, 0, 0, 0},
    {" , ,", NULL, 0, 0, 0, 0},
    {"permessage-deflate; server_max_window_bits=\"10", NULL, 0, 0, 0, 0},
    /* several offers: the first acceptable one */
    {"permessage-deflate; mux, permessage-deflate; client_max_window_bits",
     "permessage-deflate; client_max_window_bits=15", 0, 0, 15, 15},
    {"x-webkit-deflate-frame, permessage-deflate", "permessage-deflate", 0, 0, 15, 15},
    {"foo; bar=\"a,b;c\\\"\", permessage-deflate", "permessage-deflate", 0, 0, 15, 15},
    {"permessage-deflate; ;, permessage-deflate; server_no_context_takeover",
     "permessage-deflate; server_no_context_takeover", 1, 0, 15, 15},
    {"permessage-deflate =, permessage-deflate", "permessage-deflate", 0, 0, 15, 15},
    /* Autobahn 13.7: several offers */
    {"permessage-deflate; server_no_context_takeover; server_max_window_bits=8, "
     "permessage-deflate; server_no_context_takeover, permessage-deflate",
     "permessage-deflate; server_no_context_takeover; server_max_window_bits=8",
     1, 0, 8, 15},
};
/* clang-format on */

static void test_negotiation(void)
{
    for (size_t i = 0; i < sizeof nego_cases / sizeof nego_cases[0]; i++) {
        const nego_case *c = &nego_cases[i];
        SET_LABEL("negotiate \"%s\"", c->offer);
        char resp[CP_WS_DEFLATE_RESPONSE_MAX];
        cp_ws_deflate_params p;
        memset(&p, 0xee, sizeof p);
        size_t n = strlen(c->offer);
        char *hdr = (char *)copy_exact((const unsigned char *)c->offer, n);
        int r = cp_ws_negotiate_deflate(hdr, n, NULL, &p, resp);
        free(hdr);
        if (c->response == NULL) {
            CHECK(r == 0, "accepted: %s", r ? resp : "");
            continue;
        }
        CHECK(r == 1, "declined");
        if (r != 1)
            continue;
        CHECK(strcmp(resp, c->response) == 0, "response \"%s\", want \"%s\"", resp,
              c->response);
        CHECK(p.server_no_context_takeover == c->snct &&
                  p.client_no_context_takeover == c->cnct &&
                  p.server_max_window_bits == c->sbits &&
                  p.client_max_window_bits == c->cbits,
              "params %d %d %d %d", p.server_no_context_takeover,
              p.client_no_context_takeover, p.server_max_window_bits,
              p.client_max_window_bits);
    }

    /* the server's wishes */
    static const struct {
        cp_ws_deflate_prefs prefs;
        const char *offer, *response;
        int sbits, cbits;
    } wishes[] = {
        {{1, 15, 15}, "permessage-deflate", "permessage-deflate; server_no_context_takeover",
         15, 15},
        {{0, 10, 15}, "permessage-deflate", "permessage-deflate; server_max_window_bits=10",
         10, 15},
        {{0, 10, 15}, "permessage-deflate; server_max_window_bits=12",
         "permessage-deflate; server_max_window_bits=10", 10, 15},
        {{0, 12, 15}, "permessage-deflate; server_max_window_bits=9",
         "permessage-deflate; server_max_window_bits=9", 9, 15},
        {{0, 15, 12}, "permessage-deflate; client_max_window_bits",
         "permessage-deflate; client_max_window_bits=12", 15, 12},
        {{0, 15, 12}, "permessage-deflate; client_max_window_bits=10",
         "permessage-deflate; client_max_window_bits=10", 15, 10},
        {{0, 15, 12}, "permessage-deflate", "permessage-deflate", 15, 15},
    };
    for (size_t i = 0; i < sizeof wishes / sizeof wishes[0]; i++) {
        SET_LABEL("negotiate with wishes, \"%s\" -> \"%s\"", wishes[i].offer,
                  wishes[i].response);
        char resp[CP_WS_DEFLATE_RESPONSE_MAX];
        cp_ws_deflate_params p;
        int r = cp_ws_negotiate_deflate(wishes[i].offer, strlen(wishes[i].offer),
                                        &wishes[i].prefs, &p, resp);
        CHECK(r == 1 && strcmp(resp, wishes[i].response) == 0, "%d \"%s\"", r,
              r ? resp : "");
        CHECK(r != 1 || (p.server_max_window_bits == wishes[i].sbits &&
                         p.client_max_window_bits == wishes[i].cbits),
              "bits %d %d", p.server_max_window_bits, p.client_max_window_bits);
    }

    /* the longest response fits */
    current = "negotiate: the longest response";
    {
        const char *offer = "permessage-deflate; server_no_context_takeover; "
                            "client_no_context_takeover; server_max_window_bits=10; "
                            "client_max_window_bits=10";
        char resp[CP_WS_DEFLATE_RESPONSE_MAX];
        cp_ws_deflate_params p;
        CHECK(cp_ws_negotiate_deflate(offer, strlen(offer), NULL, &p, resp) == 1 &&
                  strcmp(resp, offer) == 0,
              "\"%s\"", resp);
    }
}

/* ---- misc ------------------------------------------------------------------- */

static void test_misc(void)
{
    cp_ws_decoder d;
    cp_ws_decoder_opts o = {0, NULL};
    size_t used = 1;
    cp_ws_event ev;

    current = "decoder: empty input";
    cp_ws_decoder_init(&d, &o);
    CHECK(cp_ws_decode(&d, NULL, 0, &used, &ev) == CP_WS_MORE && used == 0, "len 0");
    cp_ws_decoder_free(&d);

    current = "decoder: half a header is kept";
    cp_ws_decoder_init(&d, &o);
    {
        unsigned char *half = copy_exact((const unsigned char *)"\x81\xfe\x00", 3);
        CHECK(cp_ws_decode(&d, half, 3, &used, &ev) == CP_WS_MORE && used == 3, "half");
        free(half);
        unsigned char rest[4 + 4 + 126];
        memcpy(rest, "\x7e\x00\x00\x00\x00", 5);
        pattern(rest + 5, 126 + 3, 0);
        CHECK(cp_ws_decode(&d, rest, 5, &used, &ev) == CP_WS_MORE && used == 5, "rest");
    }
    cp_ws_decoder_free(&d);

    current = "decoder: corrupted state";
    cp_ws_decoder_init(&d, &o);
    d.state = 1000;
    unsigned char ping[6] = {0x89, 0x80, 1, 2, 3, 4};
    CHECK(cp_ws_decode(&d, ping, 6, &used, &ev) == CP_WS_ERROR && d.error_code == 1011,
          "not refused");
    cp_ws_decoder_free(&d);

    /* a big message buffer is given back after its message */
    current = "decoder: big buffers are not kept";
    {
        bytes b = {0};
        size_t n = (size_t)2 << 20;
        unsigned char *p = xmalloc(n);
        pattern(p, n, 0);
        put_frame(&b, BIN_PART, p, n);
        put_frame(&b, CONT, "", 0);
        put_frame(&b, TEXT_PART, "a", 1);
        put_frame(&b, CONT, "b", 1);
        free(p);
        cp_ws_decoder_init(&d, &o);
        size_t off = 0;
        int r = cp_ws_decode(&d, b.p, b.n, &used, &ev);
        CHECK(r == CP_WS_EVENT && ev.len == n, "first: %d", r);
        off += used;
        r = cp_ws_decode(&d, b.p + off, b.n - off, &used, &ev);
        CHECK(r == CP_WS_EVENT && ev.len == 2 && memcmp(ev.data, "ab", 2) == 0,
              "second: %d", r);
        CHECK(d.msg_cap < n, "kept %zu bytes", d.msg_cap);
        cp_ws_decoder_free(&d);
        free(b.p);
    }
}

/* ---- main ------------------------------------------------------------------- */

int main(void)
{
    size_t ncases = sizeof cases / sizeof cases[0];
    size_t nraw = sizeof raw_cases / sizeof raw_cases[0];
    for (size_t i = 0; i < ncases; i++)
        run_case(&cases[i]);
    for (size_t i = 0; i < nraw; i++) {
        const raw_case *c = &raw_cases[i];
        cp_ws_decoder_opts o = {raw_case_max, NULL};
        run_stream(c->name, &o, (const unsigned char *)c->raw, c->len, c->events,
                   count_events(c->events, 4), c->outcome, c->error);
    }
    test_close_codes();
    test_utf8();
    test_deflate_decode();
    test_headers();
    test_deflate_encode();
    test_negotiation();
    test_misc();

    printf("test_wsframe: %zu frame streams, %zu raw streams, %zu negotiations; "
           "%d checks, %d failed\n",
           ncases, nraw, sizeof nego_cases / sizeof nego_cases[0], n_checks, n_failures);
    return n_failures ? 1 : 0;
}
