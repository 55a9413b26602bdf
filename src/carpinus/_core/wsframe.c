/*
 * wsframe.c -- the WebSocket frame codec and permessage-deflate; contract in
 * wsframe.h.
 *
 * Theory of operation
 * -------------------
 * A client sends frames: a header of 2 to 14 bytes (FIN, RSV1-3, opcode,
 * MASK, a 7-bit length or 126/127 and a 16/64-bit one, the 4-byte masking
 * key) and then the payload, XORed with the key.  Data frames carry a
 * message, split into fragments (TEXT or BINARY, then CONT frames, the last
 * with FIN); control frames (CLOSE, PING, PONG) are whole and short and may
 * come between the fragments of a message.
 *
 * The decoder keeps its place in a cp_ws_decoder, so reads may split the
 * stream anywhere.  It has three states: S_HEADER collects header bytes
 * (they are copied into d->hdr, at most 14 per frame, so a header split
 * between reads costs nothing special), S_PAYLOAD counts the payload down,
 * and S_CLOSED / S_ERROR are final.  Each header byte is judged as soon as
 * it arrives (the first byte's opcode and RSV bits, the second's MASK and
 * length), so a bad frame is refused before its payload is waited for, and
 * how the stream was cut never changes the verdict: the fuzz target checks
 * that.
 *
 * Payload bytes are unmasked in place, 8 at a time, and then go where they
 * belong: a control frame's into d->ctl (125 bytes at most); a data
 * frame's into the message buffer d->msg -- through zlib when the message
 * has RSV1 -- which grows as bytes arrive, never past max_message.  A text
 * message is checked as it grows by a UTF-8 automaton whose state lives
 * between fragments and reads, so the first invalid byte fails the message.
 * The common case skips the buffer: a whole uncompressed message in one
 * frame that is entirely in the caller's bytes is unmasked there and
 * handed out as it lies.
 *
 * Inflating (RFC 7692 7.2.2): the message's compressed bytes, then the
 * 0x00 0x00 0xff 0xff the sender removed, go through a raw inflater, which
 * writes straight into the message buffer in steps of INFLATE_STEP bytes at
 * most, and never past max_message: once the buffer is full, one more byte
 * is asked for in a 1-byte scratch buffer, and if it comes the message is
 * too big (1009).  A deflate bomb thus costs max_message bytes of memory
 * and the time to inflate that many, no more.  After the tail the inflater
 * must stand between two blocks (zlib's data_type bit 128); anything else
 * means the message ended inside a block (1007).  A final block (BFINAL,
 * allowed by RFC 7692 7.2.3.3) ends zlib's stream: the inflater is reset,
 * and when the message ends right there the tail is not fed (its four bytes
 * only complete a sync flush, which a final block does not have).  With
 * client_no_context_takeover the inflater is reset after every message.
 *
 * Encoding is simpler: headers are written in their shortest form with no
 * mask, and cp_ws_deflate_frame compresses a whole message with a sync
 * flush and cuts the 4-byte tail, leaving room in front for the header.
 */
#include "wsframe.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "chars.h"

/* ---- constants ---------------------------------------------------------- */

enum { S_HEADER = 0, S_PAYLOAD, S_CLOSED, S_ERROR };

/* Every inflater's window: 32 KiB, the most deflate uses (see
   cp_ws_decoder_init for why never less). */
#define INFLATE_WINDOW_BITS 15

/* Output asked of zlib per inflate() call. */
#define INFLATE_STEP ((size_t)64 * 1024)
/* Payload bytes handled per step (zlib counts in uInt). */
#define PAYLOAD_STEP ((size_t)1 << 30)
/* A message buffer above this is given back once its message is out. */
#define KEEP_MSG_CAP ((size_t)1 << 20)

/* The deflater's own settings, chosen for a server holding many connections
   (measured in docs/websocket.md, "Compression cost"): with a hundred
   connections taking turns, what costs is not the arithmetic but the cache
   misses on each connection's zlib state, 256 KiB with zlib's defaults (a
   32 KiB window, memLevel 8).  A 4 KiB window and memLevel 5 (what uvicorn's
   default WebSocket implementation and websockets'
   enable_server_permessage_deflate pick) cut it to 32 KiB and the time per
   16 KiB JSON message by ~60 %, for ~6 % more bytes.  Using a
   smaller window than server_max_window_bits allows is always valid: the
   peer's inflater only has to reach as far back as we do. */
#define DEFLATE_WINDOW_BITS 12
#define DEFLATE_MEM_LEVEL 5
/* Messages this large and larger are compressed at zlib level 1 (about half
   the time of level 6 on JSON, ~26 % more bytes); smaller ones at the
   codec's level, where the level changes little of the cost but some of
   the ratio.  zlib switches level between two messages for free (after a
   sync flush deflateParams has nothing to flush); the window is kept. */
#define DEFLATE_LARGE_MESSAGE ((size_t)4 * 1024)
#define DEFLATE_LARGE_LEVEL 1

static const unsigned char deflate_tail[4] = {0x00, 0x00, 0xff, 0xff};

/* ---- UTF-8 -------------------------------------------------------------- */

/*
 * A DFA over byte classes (RFC 3629, Table 3-7 of the Unicode standard): the
 * states say what the next bytes may be.  U_ACCEPT is "between code
 * points", U_REJECT is final.  The lead bytes E0, ED, F0 and F4 narrow the
 * range of the byte after them (no overlong forms, no surrogates, nothing
 * past U+10FFFF).
 */
enum {
    U_ACCEPT = 0,
    U_REJECT,
    U_CONT1, /* one continuation byte (80..BF) to go */
    U_CONT2,
    U_CONT3,
    U_E0, /* A0..BF, then one more */
    U_ED, /* 80..9F, then one more */
    U_F0, /* 90..BF, then two more */
    U_F4, /* 80..8F, then two more */
    U_STATES
};

enum {
    K_ASCII = 0,
    K_80, /* 80..8F */
    K_90, /* 90..9F */
    K_A0, /* A0..BF */
    K_BAD, /* C0, C1, F5..FF */
    K_L2,  /* C2..DF */
    K_E0,
    K_L3, /* E1..EC, EE, EF */
    K_ED,
    K_F0,
    K_L4, /* F1..F3 */
    K_F4,
    K_CLASSES
};

#define R4(x) x, x, x, x
#define R16(x) R4(x), R4(x), R4(x), R4(x)

static const unsigned char utf8_class[] = {
    R16(K_ASCII), R16(K_ASCII), R16(K_ASCII), R16(K_ASCII), /* 00..3F */
    R16(K_ASCII), R16(K_ASCII), R16(K_ASCII), R16(K_ASCII), /* 40..7F */
    R16(K_80),    R16(K_90),    R16(K_A0),    R16(K_A0),    /* 80..BF */
    K_BAD,        K_BAD,        R4(K_L2),     R4(K_L2),     /* C0..C9 */
    R4(K_L2),     K_L2,         K_L2,                       /* CA..CF */
    R16(K_L2),                                              /* D0..DF */
    K_E0,         R4(K_L3),     R4(K_L3),     R4(K_L3),     /* E0..EC */
    K_ED,         K_L3,         K_L3,                       /* ED..EF */
    K_F0,         K_L4,         K_L4,         K_L4,         /* F0..F3 */
    K_F4,         K_BAD,        K_BAD,        K_BAD,        /* F4..F7 */
    R4(K_BAD),    R4(K_BAD),                                /* F8..FF */
};
_Static_assert(sizeof utf8_class == 256, "one class per byte");

#define RJ U_REJECT
static const unsigned char utf8_next[U_STATES][K_CLASSES] = {
    /*            ASCII     80       90       A0       BAD L2       E0    L3       ED    F0    L4       F4 */
    [U_ACCEPT] = {U_ACCEPT, RJ,      RJ,      RJ,      RJ, U_CONT1, U_E0, U_CONT2, U_ED, U_F0, U_CONT3, U_F4},
    [U_REJECT] = {RJ,       RJ,      RJ,      RJ,      RJ, RJ,      RJ,   RJ,      RJ,   RJ,   RJ,      RJ},
    [U_CONT1] =  {RJ,       U_ACCEPT,U_ACCEPT,U_ACCEPT,RJ, RJ,      RJ,   RJ,      RJ,   RJ,   RJ,      RJ},
    [U_CONT2] =  {RJ,       U_CONT1, U_CONT1, U_CONT1, RJ, RJ,      RJ,   RJ,      RJ,   RJ,   RJ,      RJ},
    [U_CONT3] =  {RJ,       U_CONT2, U_CONT2, U_CONT2, RJ, RJ,      RJ,   RJ,      RJ,   RJ,   RJ,      RJ},
    [U_E0] =     {RJ,       RJ,      RJ,      U_CONT1, RJ, RJ,      RJ,   RJ,      RJ,   RJ,   RJ,      RJ},
    [U_ED] =     {RJ,       U_CONT1, U_CONT1, RJ,      RJ, RJ,      RJ,   RJ,      RJ,   RJ,   RJ,      RJ},
    [U_F0] =     {RJ,       RJ,      U_CONT2, U_CONT2, RJ, RJ,      RJ,   RJ,      RJ,   RJ,   RJ,      RJ},
    [U_F4] =     {RJ,       U_CONT2, RJ,      RJ,      RJ, RJ,      RJ,   RJ,      RJ,   RJ,   RJ,      RJ},
};
#undef RJ

/* Run the automaton from state s over p[0..n); returns the state after.
   Between code points, ASCII is skipped eight bytes at a time. */
static uint32_t utf8_run(uint32_t s, const unsigned char *p, size_t n)
{
    size_t i = 0;
    while (i < n) {
        if (s == U_ACCEPT) {
            while (n - i >= 8) {
                uint64_t w;
                memcpy(&w, p + i, 8);
                if (w & 0x8080808080808080u)
                    break;
                i += 8;
            }
            if (i == n)
                break;
        }
        s = utf8_next[s][utf8_class[p[i++]]];
        if (s == U_REJECT)
            break;
    }
    return s;
}

int cp_ws_utf8_ok(const unsigned char *p, size_t n)
{
    return utf8_run(U_ACCEPT, p, n) == U_ACCEPT;
}

/* ---- masking ------------------------------------------------------------ */

/* XOR p[0..n) with the key, starting at key byte `phase`: eight bytes at a
   time through memcpy (one unaligned load and store where the machine has
   them, byte order irrelevant since the key is laid out in memory order). */
static void unmask(unsigned char *p, size_t n, const unsigned char key[4], unsigned phase)
{
    unsigned char k8[8];
    for (unsigned i = 0; i < 8; i++)
        k8[i] = key[(phase + i) & 3];
    uint64_t k;
    memcpy(&k, k8, 8);
    size_t i = 0;
    for (; n - i >= 8; i += 8) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        w ^= k;
        memcpy(p + i, &w, 8);
    }
    for (; i < n; i++)
        p[i] ^= k8[i & 7];
}

/* ---- close codes -------------------------------------------------------- */

int cp_ws_close_code_ok(unsigned code)
{
    return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) ||
           (code >= 3000 && code <= 4999);
}

/* ---- decoder ------------------------------------------------------------ */

void cp_ws_decoder_init(cp_ws_decoder *d, const cp_ws_decoder_opts *opts)
{
    memset(d, 0, sizeof *d);
    d->state = S_HEADER;
    d->hdr_need = 2;
    d->max_message = opts->max_message;
    if (opts->deflate != NULL) {
        d->deflate = 1;
        d->reset_inflater = opts->deflate->client_no_context_takeover;
        /* Always a 32 KiB window, whatever client_max_window_bits the
           client agreed to.  zlib checks a back-reference against the
           window it has *plus what the current inflate() call has written*,
           so with a smaller window a distance the client promised not to
           use would inflate when a message arrives in one read and fail
           when it trickles in: the verdict would depend on how TCP cut the
           stream (fuzz_wsframe found it).  With the full window a distance
           is accepted exactly when the history holds it, however the bytes
           arrive; a stream made with any smaller window reads the same
           (also the 512-byte window old zlib used when asked for 256).
           The price is 32 KiB per compressed connection, as most servers
           pay anyway.  Hence INFLATE_WINDOW_BITS, not the offer's. */
    }
}

void cp_ws_decoder_free(cp_ws_decoder *d)
{
    if (d->inflater != NULL) {
        inflateEnd(d->inflater);
        free(d->inflater);
        d->inflater = NULL;
    }
    free(d->msg);
    d->msg = NULL;
    d->msg_len = d->msg_cap = 0;
}

static int fail(cp_ws_decoder *d, unsigned code, const char *reason)
{
    d->state = S_ERROR;
    d->error_code = code;
    d->error_reason = reason;
    return CP_WS_ERROR;
}

#define PROTOCOL_ERROR(d, why) fail((d), CP_WS_CLOSE_PROTOCOL_ERROR, (why))
#define INVALID_DATA(d, why) fail((d), CP_WS_CLOSE_INVALID_DATA, (why))

static int is_control(int opcode)
{
    return (opcode & 0x8) != 0;
}

/* The first header byte: FIN, RSV1-3, opcode. */
static int check_byte0(cp_ws_decoder *d, unsigned char b)
{
    d->fin = (b & 0x80) != 0;
    d->rsv1 = (b & 0x40) != 0;
    d->opcode = b & 0x0f;
    if (b & 0x30)
        return PROTOCOL_ERROR(d, "reserved bit RSV2 or RSV3 set");
    switch (d->opcode) {
    case CP_WS_CLOSE:
    case CP_WS_PING:
    case CP_WS_PONG:
        if (!d->fin)
            return PROTOCOL_ERROR(d, "fragmented control frame");
        if (d->rsv1)
            return PROTOCOL_ERROR(d, "RSV1 set on a control frame");
        return 0;
    case CP_WS_CONT:
        if (d->msg_opcode == 0)
            return PROTOCOL_ERROR(d, "continuation frame without a message to continue");
        if (d->rsv1)
            return PROTOCOL_ERROR(d, "RSV1 set on a continuation frame");
        return 0;
    case CP_WS_TEXT:
    case CP_WS_BINARY:
        if (d->msg_opcode != 0)
            return PROTOCOL_ERROR(d, "new message before the fragmented one ended");
        if (d->rsv1 && !d->deflate)
            return PROTOCOL_ERROR(d, "RSV1 set without permessage-deflate");
        return 0;
    default:
        return PROTOCOL_ERROR(d, "reserved opcode");
    }
}

/* The second header byte: MASK and the 7-bit length. */
static int check_byte1(cp_ws_decoder *d, unsigned char b)
{
    unsigned len7 = b & 0x7f;
    if (!(b & 0x80))
        return PROTOCOL_ERROR(d, "unmasked frame from the client");
    if (is_control(d->opcode) && len7 > 125)
        return PROTOCOL_ERROR(d, "control frame longer than 125 bytes");
    d->hdr_need = 2 + (len7 == 126 ? 2 : len7 == 127 ? 8 : 0) + 4;
    return 0;
}

/* Grow the message buffer to hold `want` more bytes (want <= what the limit
   leaves): doubling, but never past max_message. */
static int msg_room(cp_ws_decoder *d, size_t want)
{
    if (d->msg_cap - d->msg_len >= want)
        return 0;
    if (want > SIZE_MAX / 2 - d->msg_len)
        return -1;
    size_t need = d->msg_len + want;
    size_t cap = d->msg_cap > 128 ? d->msg_cap * 2 : 256;
    if (cap < need)
        cap = need;
    if (d->max_message != 0 && cap > d->max_message)
        cap = d->max_message;
    unsigned char *p = realloc(d->msg, cap);
    if (p == NULL)
        return -1;
    d->msg = p;
    d->msg_cap = cap;
    return 0;
}

static int append(cp_ws_decoder *d, const unsigned char *p, size_t n)
{
    if (n == 0)
        return 0;
    if (msg_room(d, n) < 0)
        return fail(d, CP_WS_CLOSE_INTERNAL_ERROR, "out of memory");
    memcpy(d->msg + d->msg_len, p, n);
    d->msg_len += n;
    return 0;
}

/* The header is complete: read the length and the key, start the frame. */
static int start_frame(cp_ws_decoder *d)
{
    const unsigned char *h = d->hdr;
    unsigned len7 = h[1] & 0x7f;
    uint64_t len = len7;
    const unsigned char *key = h + 2;
    if (len7 == 126) {
        len = (uint64_t)h[2] << 8 | h[3];
        key = h + 4;
        if (len < 126)
            return PROTOCOL_ERROR(d, "16-bit length for a frame under 126 bytes");
    } else if (len7 == 127) {
        len = 0;
        for (int i = 2; i < 10; i++)
            len = len << 8 | h[i];
        key = h + 10;
        if (len >> 63)
            return PROTOCOL_ERROR(d, "64-bit length with the high bit set");
        if (len <= 0xffff)
            return PROTOCOL_ERROR(d, "64-bit length for a frame under 65536 bytes");
    }
    memcpy(d->mask, key, 4);
    d->mask_pos = 0;
    d->remaining = len;
    if (is_control(d->opcode)) {
        d->ctl_len = 0;
        return 0;
    }
    if (d->opcode != CP_WS_CONT) {
        d->msg_opcode = d->opcode;
        d->msg_compressed = d->rsv1;
        d->msg_deflated_in = 0;
        d->utf8 = U_ACCEPT;
    }
    if (d->msg_compressed) {
        if (d->inflater == NULL) {
            z_stream *z = calloc(1, sizeof *z);
            if (z == NULL)
                return fail(d, CP_WS_CLOSE_INTERNAL_ERROR, "out of memory");
            if (inflateInit2(z, -INFLATE_WINDOW_BITS) != Z_OK) {
                free(z);
                return fail(d, CP_WS_CLOSE_INTERNAL_ERROR, "zlib inflateInit2 failed");
            }
            d->inflater = z;
        }
    } else if (d->max_message != 0 && len > d->max_message - d->msg_len) {
        return fail(d, CP_WS_CLOSE_TOO_BIG, "message larger than the size limit");
    }
    return 0;
}

/*
 * Inflate in[0..n) onto the message.  *at_boundary is set when the inflater
 * ends up between two deflate blocks (or at the end of a stream).
 */
static int inflate_onto(cp_ws_decoder *d, const unsigned char *in, size_t n,
                        int *at_boundary)
{
    z_stream *z = d->inflater;
    if (n > 0)
        d->stream_ended = 0;
    z->next_in = (Bytef *)in;
    z->avail_in = (uInt)n;
    for (;;) {
        size_t allowed = d->max_message ? d->max_message - d->msg_len : SIZE_MAX;
        unsigned char scratch[1];
        unsigned char *out = scratch;
        size_t room = 1;
        if (allowed > 0) {
            size_t want = allowed < INFLATE_STEP ? allowed : INFLATE_STEP;
            if (msg_room(d, want) < 0)
                return fail(d, CP_WS_CLOSE_INTERNAL_ERROR, "out of memory");
            out = d->msg + d->msg_len;
            room = d->msg_cap - d->msg_len;
            if (room > allowed)
                room = allowed;
            if (room > UINT_MAX)
                room = UINT_MAX;
        }
        uInt in_before = z->avail_in;
        z->next_out = out;
        z->avail_out = (uInt)room;
        int r = inflate(z, Z_SYNC_FLUSH);
        size_t produced = room - z->avail_out;
        if (produced > 0) {
            if (out == scratch)
                return fail(d, CP_WS_CLOSE_TOO_BIG, "message larger than the size limit");
            if (d->msg_opcode == CP_WS_TEXT) {
                d->utf8 = utf8_run(d->utf8, out, produced);
                if (d->utf8 == U_REJECT)
                    return INVALID_DATA(d, "invalid UTF-8 in a text message");
            }
            d->msg_len += produced;
        }
        *at_boundary = (z->data_type & 128) != 0;
        if (r == Z_STREAM_END) {
            /* a final block: what follows in the message starts afresh */
            inflateReset(z);
            *at_boundary = 1;
            if (z->avail_in == 0) {
                d->stream_ended = 1;
                return 0;
            }
            continue;
        }
        if (r == Z_DATA_ERROR || r == Z_NEED_DICT)
            return INVALID_DATA(d, "compressed data does not inflate");
        if (r != Z_OK && r != Z_BUF_ERROR)
            return fail(d, CP_WS_CLOSE_INTERNAL_ERROR, "zlib inflate failed");
        if (z->avail_in == 0 && z->avail_out > 0)
            return 0; /* all input read, all output out */
        if (produced == 0 && z->avail_in == in_before)
            return fail(d, CP_WS_CLOSE_INTERNAL_ERROR, "zlib inflate made no progress");
    }
}

/* Payload bytes p[0..n) of the current frame, unmasked. */
static int take_payload(cp_ws_decoder *d, const unsigned char *p, size_t n)
{
    if (is_control(d->opcode)) {
        memcpy(d->ctl + d->ctl_len, p, n);
        d->ctl_len += n;
        return 0;
    }
    if (d->msg_compressed) {
        int at_boundary;
        d->msg_deflated_in = 1;
        return inflate_onto(d, p, n, &at_boundary);
    }
    if (d->msg_opcode == CP_WS_TEXT) {
        d->utf8 = utf8_run(d->utf8, p, n);
        if (d->utf8 == U_REJECT)
            return INVALID_DATA(d, "invalid UTF-8 in a text message");
    }
    return append(d, p, n);
}

static int control_event(cp_ws_decoder *d, cp_ws_event *ev)
{
    ev->opcode = d->opcode;
    ev->data = d->ctl;
    ev->len = d->ctl_len;
    ev->close_code = 0;
    if (d->opcode != CP_WS_CLOSE)
        return CP_WS_EVENT;
    if (d->ctl_len == 1)
        return PROTOCOL_ERROR(d, "close frame with a one-byte payload");
    if (d->ctl_len == 0) {
        ev->close_code = CP_WS_CLOSE_NO_STATUS;
    } else {
        ev->close_code = (unsigned)d->ctl[0] << 8 | d->ctl[1];
        if (!cp_ws_close_code_ok(ev->close_code))
            return PROTOCOL_ERROR(d, "close code that may not be sent");
        if (!cp_ws_utf8_ok(d->ctl + 2, d->ctl_len - 2))
            return INVALID_DATA(d, "invalid UTF-8 in a close reason");
        ev->data = d->ctl + 2;
        ev->len = d->ctl_len - 2;
    }
    d->state = S_CLOSED;
    return CP_WS_EVENT;
}

/* The current frame's payload is all in: CP_WS_EVENT, CP_WS_MORE (a
   fragment that ends no message) or CP_WS_ERROR. */
static int end_frame(cp_ws_decoder *d, cp_ws_event *ev)
{
    d->state = S_HEADER;
    d->hdr_len = 0;
    d->hdr_need = 2;
    if (is_control(d->opcode))
        return control_event(d, ev);
    if (!d->fin)
        return CP_WS_MORE;
    if (d->msg_compressed) {
        /* the tail completes the sync flush the sender cut short; after a
           final block there is nothing to complete, and no bytes at all
           are an empty message (zlib has nothing to write for an empty
           message right after a sync flush, and Python senders then send
           nothing: the tail alone would open a stored block) */
        int skip = d->stream_ended || !d->msg_deflated_in;
        int at_boundary = skip;
        if (!skip && inflate_onto(d, deflate_tail, sizeof deflate_tail, &at_boundary) < 0)
            return CP_WS_ERROR;
        d->stream_ended = 0;
        if (!at_boundary)
            return INVALID_DATA(d, "compressed message ends inside a deflate block");
        if (d->reset_inflater)
            inflateReset(d->inflater);
    }
    if (d->msg_opcode == CP_WS_TEXT && d->utf8 != U_ACCEPT)
        return INVALID_DATA(d, "text message ends inside a UTF-8 sequence");
    ev->opcode = d->msg_opcode;
    ev->data = d->msg != NULL ? d->msg : deflate_tail; /* any non-NULL pointer */
    ev->len = d->msg_len;
    ev->close_code = 0;
    d->msg_opcode = 0;
    d->msg_done = 1;
    return CP_WS_EVENT;
}

/* Collect header bytes; 1 when the header is complete, 0 when more are
   needed (everything consumed), CP_WS_ERROR. */
static int take_header(cp_ws_decoder *d, const unsigned char *buf, size_t len,
                       size_t *pos)
{
    while (d->hdr_len < d->hdr_need && *pos < len) {
        if (d->hdr_len < 2) {
            unsigned char b = buf[(*pos)++];
            d->hdr[d->hdr_len++] = b;
            if ((d->hdr_len == 1 ? check_byte0(d, b) : check_byte1(d, b)) < 0)
                return CP_WS_ERROR;
            continue;
        }
        size_t take = d->hdr_need - d->hdr_len;
        if (take > len - *pos)
            take = len - *pos;
        memcpy(d->hdr + d->hdr_len, buf + *pos, take);
        d->hdr_len += (unsigned)take;
        *pos += take;
    }
    return d->hdr_len == d->hdr_need;
}

int cp_ws_decode(cp_ws_decoder *d, unsigned char *buf, size_t len, size_t *consumed,
                 cp_ws_event *ev)
{
    size_t pos = 0;
    int r;
    *consumed = 0;
    if (d->state == S_ERROR)
        return CP_WS_ERROR;
    if (d->state == S_CLOSED)
        return CP_WS_CLOSED;
    if (d->state != S_HEADER && d->state != S_PAYLOAD)
        return fail(d, CP_WS_CLOSE_INTERNAL_ERROR, "decoder state corrupted");
    if (d->msg_done) {
        d->msg_done = 0;
        d->msg_len = 0;
        if (d->msg_cap > KEEP_MSG_CAP) {
            free(d->msg);
            d->msg = NULL;
            d->msg_cap = 0;
        }
    }
    for (;;) {
        if (d->state == S_HEADER) {
            r = take_header(d, buf, len, &pos);
            if (r <= 0) {
                *consumed = pos;
                return r < 0 ? CP_WS_ERROR : CP_WS_MORE;
            }
            if (start_frame(d) < 0)
                return CP_WS_ERROR;
            /* A whole uncompressed message in one frame, all here: hand it
               out where it lies. */
            if (!is_control(d->opcode) && d->opcode != CP_WS_CONT && d->fin &&
                !d->rsv1 && d->remaining <= len - pos) {
                size_t n = (size_t)d->remaining;
                unsigned char *p = buf + pos;
                unmask(p, n, d->mask, 0);
                if (d->opcode == CP_WS_TEXT && !cp_ws_utf8_ok(p, n))
                    return INVALID_DATA(d, "invalid UTF-8 in a text message");
                pos += n;
                d->state = S_HEADER;
                d->hdr_len = 0;
                d->hdr_need = 2;
                d->msg_opcode = 0;
                ev->opcode = d->opcode;
                ev->data = p;
                ev->len = n;
                ev->close_code = 0;
                *consumed = pos;
                return CP_WS_EVENT;
            }
            d->state = S_PAYLOAD;
        }
        size_t n = len - pos;
        if (n > d->remaining)
            n = (size_t)d->remaining;
        if (n > PAYLOAD_STEP)
            n = PAYLOAD_STEP;
        if (n > 0) {
            unmask(buf + pos, n, d->mask, d->mask_pos);
            d->mask_pos = (unsigned)((d->mask_pos + n) & 3);
            if (take_payload(d, buf + pos, n) < 0)
                return CP_WS_ERROR;
            pos += n;
            d->remaining -= n;
        }
        if (d->remaining == 0) {
            r = end_frame(d, ev);
            if (r != CP_WS_MORE) {
                *consumed = pos;
                return r;
            }
        } else if (pos == len) {
            *consumed = pos;
            return CP_WS_MORE;
        }
    }
}

/* ---- encoder ------------------------------------------------------------ */

size_t cp_ws_write_header(unsigned char *out, int opcode, int fin, int rsv1,
                          uint64_t len)
{
    out[0] = (unsigned char)((fin ? 0x80 : 0) | (rsv1 ? 0x40 : 0) | (opcode & 0x0f));
    if (len <= 125) {
        out[1] = (unsigned char)len;
        return 2;
    }
    if (len <= 0xffff) {
        out[1] = 126;
        out[2] = (unsigned char)(len >> 8);
        out[3] = (unsigned char)len;
        return 4;
    }
    out[1] = 127;
    for (int i = 0; i < 8; i++)
        out[2 + i] = (unsigned char)(len >> (56 - 8 * i));
    return 10;
}

size_t cp_ws_write_close(unsigned char *out, unsigned code, const char *reason,
                         size_t reason_len)
{
    if (code == 0) {
        if (reason_len != 0)
            return 0;
        return cp_ws_write_header(out, CP_WS_CLOSE, 1, 0, 0);
    }
    if (!cp_ws_close_code_ok(code) || reason_len > 123 ||
        !cp_ws_utf8_ok((const unsigned char *)reason, reason_len))
        return 0;
    size_t h = cp_ws_write_header(out, CP_WS_CLOSE, 1, 0, 2 + reason_len);
    out[h] = (unsigned char)(code >> 8);
    out[h + 1] = (unsigned char)code;
    if (reason_len > 0)
        memcpy(out + h + 2, reason, reason_len);
    return h + 2 + reason_len;
}

void cp_ws_deflater_init(cp_ws_deflater *c, const cp_ws_deflate_params *params,
                         int level)
{
    memset(c, 0, sizeof *c);
    c->bits = params->server_max_window_bits;
    c->reset = params->server_no_context_takeover;
    c->level = level == Z_DEFAULT_COMPRESSION ? 6 : level;
    c->large_level = c->level < DEFLATE_LARGE_LEVEL ? c->level : DEFLATE_LARGE_LEVEL;
}

void cp_ws_deflater_free(cp_ws_deflater *c)
{
    if (c->deflater != NULL) {
        deflateEnd(c->deflater);
        free(c->deflater);
        c->deflater = NULL;
    }
    free(c->out);
    c->out = NULL;
    c->out_cap = 0;
}

static int out_room(cp_ws_deflater *c, size_t need)
{
    if (c->out_cap >= need)
        return 0;
    size_t cap = c->out_cap > 128 ? c->out_cap : 256;
    while (cap < need) {
        if (cap > SIZE_MAX / 2)
            return -1;
        cap *= 2;
    }
    unsigned char *p = realloc(c->out, cap);
    if (p == NULL)
        return -1;
    c->out = p;
    c->out_cap = cap;
    return 0;
}

/* Compress in[0..n) with a sync flush to c->out[CP_WS_HEADER_MAX..); the
   compressed length (with the tail) in *len. */
static int deflate_message(cp_ws_deflater *c, const unsigned char *in, size_t n,
                           size_t *len)
{
    z_stream *z = c->deflater;
    size_t done = CP_WS_HEADER_MAX;
    if (out_room(c, done + n / 2 + 64) < 0)
        return -1;
    z->next_in = (Bytef *)in;
    size_t left = n;
    for (;;) {
        uInt chunk = left > UINT_MAX ? UINT_MAX : (uInt)left;
        z->avail_in = chunk;
        left -= chunk;
        int last = left == 0;
        for (;;) {
            if (c->out_cap - done < 64 && out_room(c, c->out_cap * 2) < 0)
                return -1;
            size_t room = c->out_cap - done;
            if (room > UINT_MAX)
                room = UINT_MAX;
            z->next_out = c->out + done;
            z->avail_out = (uInt)room;
            int r = deflate(z, last ? Z_SYNC_FLUSH : Z_NO_FLUSH);
            if (r != Z_OK && r != Z_BUF_ERROR)
                return -1;
            done += room - z->avail_out;
            if (z->avail_in == 0 && z->avail_out > 0)
                break;
        }
        if (last)
            break;
    }
    *len = done - CP_WS_HEADER_MAX;
    return 0;
}

int cp_ws_deflate_frame(cp_ws_deflater *c, int opcode, const unsigned char *payload,
                        size_t n, const unsigned char **frame, size_t *frame_len)
{
    unsigned char head[CP_WS_HEADER_MAX];
    size_t plen;
    int rsv1 = 0;
    /* (an empty message goes out plain: after a sync flush zlib has nothing
       to say about no input, and a plain frame is shorter anyway) */
    if ((opcode == CP_WS_TEXT || opcode == CP_WS_BINARY) && c->bits >= 9 && n > 0) {
        if (c->deflater == NULL) {
            z_stream *z = calloc(1, sizeof *z);
            if (z == NULL)
                return -1;
            int bits = c->bits > DEFLATE_WINDOW_BITS ? DEFLATE_WINDOW_BITS : c->bits;
            if (deflateInit2(z, c->level, Z_DEFLATED, -bits, DEFLATE_MEM_LEVEL,
                             Z_DEFAULT_STRATEGY) != Z_OK) {
                free(z);
                return -1;
            }
            c->deflater = z;
            c->current_level = c->level;
        }
        int level = n >= DEFLATE_LARGE_MESSAGE ? c->large_level : c->level;
        if (level != c->current_level) {
            if (deflateParams(c->deflater, level, Z_DEFAULT_STRATEGY) != Z_OK)
                return -1;
            c->current_level = level;
        }
        if (deflate_message(c, payload, n, &plen) < 0) {
            deflateReset(c->deflater);
            return -1;
        }
        /* a sync flush ends with an empty stored block: 00 00 ff ff */
        if (plen < 4 || memcmp(c->out + CP_WS_HEADER_MAX + plen - 4, deflate_tail, 4))
            return -1;
        plen -= 4;
        if (c->reset)
            deflateReset(c->deflater);
        rsv1 = 1;
    } else {
        if (n > SIZE_MAX - CP_WS_HEADER_MAX || out_room(c, CP_WS_HEADER_MAX + n) < 0)
            return -1;
        if (n > 0)
            memcpy(c->out + CP_WS_HEADER_MAX, payload, n);
        plen = n;
    }
    size_t h = cp_ws_write_header(head, opcode, 1, rsv1, plen);
    memcpy(c->out + CP_WS_HEADER_MAX - h, head, h);
    *frame = c->out + CP_WS_HEADER_MAX - h;
    *frame_len = h + plen;
    return 0;
}

/* ---- permessage-deflate negotiation ------------------------------------- */

/*
 * Sec-WebSocket-Extensions (RFC 6455 9.1):
 *     extension-list  = 1#extension
 *     extension       = extension-token *( ";" extension-param )
 *     extension-param = token [ "=" ( token / quoted-string ) ]
 * OWS is allowed around ',' and ';' and, leniently, around '='.
 */

#define MAX_PARAMS 8
#define MAX_VALUE 8 /* longer values are no window size */

typedef struct {
    const char *name;
    size_t name_len;
    int has_value;
    char value[MAX_VALUE];
    size_t value_len; /* > MAX_VALUE: too long to be one of ours */
} ext_param;

static size_t skip_ows(const char *s, size_t n, size_t i)
{
    while (i < n && cp_is_ows((unsigned char)s[i]))
        i++;
    return i;
}

static size_t skip_token(const char *s, size_t n, size_t i)
{
    while (i < n && (cp_char_class[(unsigned char)s[i]] & CC_TOKEN))
        i++;
    return i;
}

/* A quoted-string at s[i] (the opening quote), unescaped into p->value;
   returns the index after the closing quote, or 0 when it does not close. */
static size_t read_quoted(const char *s, size_t n, size_t i, ext_param *p)
{
    p->value_len = 0;
    for (i++; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"')
            return i + 1;
        if (c == '\\') {
            if (++i == n)
                return 0;
            c = (unsigned char)s[i];
        } else if (c < 0x20 && c != '\t') {
            return 0;
        }
        if (c == 0x7f)
            return 0;
        if (p->value_len < MAX_VALUE)
            p->value[p->value_len] = (char)c;
        p->value_len++;
    }
    return 0;
}

/* Parse one extension at s[*i]: its name and parameters.  Returns 1 with *i
   after it (at a ',' or the end), 0 on a syntax error. */
static int read_extension(const char *s, size_t n, size_t *i, size_t *name_end,
                          ext_param *params, size_t *nparams, int *too_many)
{
    size_t j = skip_token(s, n, *i);
    if (j == *i)
        return 0;
    *name_end = j;
    *nparams = 0;
    *too_many = 0;
    for (;;) {
        j = skip_ows(s, n, j);
        if (j == n || s[j] == ',')
            break;
        if (s[j] != ';')
            return 0;
        j = skip_ows(s, n, j + 1);
        size_t k = skip_token(s, n, j);
        if (k == j)
            return 0;
        ext_param tmp, *p = *nparams < MAX_PARAMS ? &params[*nparams] : &tmp;
        if (*nparams == MAX_PARAMS)
            *too_many = 1;
        else
            (*nparams)++;
        p->name = s + j;
        p->name_len = k - j;
        p->has_value = 0;
        p->value_len = 0;
        j = skip_ows(s, n, k);
        if (j < n && s[j] == '=') {
            j = skip_ows(s, n, j + 1);
            p->has_value = 1;
            if (j < n && s[j] == '"') {
                k = read_quoted(s, n, j, p);
                if (k == 0)
                    return 0;
            } else {
                k = skip_token(s, n, j);
                if (k == j)
                    return 0;
                p->value_len = k - j;
                memcpy(p->value, s + j, p->value_len < MAX_VALUE ? p->value_len : MAX_VALUE);
            }
            j = k;
        } else {
            j = k;
        }
    }
    *i = j;
    return 1;
}

/* A window size: "8".."15", no leading zero; -1 otherwise. */
static int window_bits(const ext_param *p)
{
    if (p->value_len == 1 && p->value[0] >= '8' && p->value[0] <= '9')
        return p->value[0] - '0';
    if (p->value_len == 2 && p->value[0] == '1' && p->value[1] >= '0' && p->value[1] <= '5')
        return 10 + p->value[1] - '0';
    return -1;
}

#define PARAM_IS(p, lit) cp_name_is((p)->name, (p)->name_len, lit, sizeof(lit) - 1)

/* Judge one permessage-deflate offer; 1 and *out when acceptable. */
static int judge_offer(const ext_param *params, size_t nparams,
                       const cp_ws_deflate_prefs *prefs, cp_ws_deflate_params *out,
                       int *server_bits_offered, int *client_bits_offered)
{
    int snct = 0, cnct = 0, sbits = 0, cbits = 0; /* 0: absent */
    int seen_cbits = 0;
    for (size_t k = 0; k < nparams; k++) {
        const ext_param *p = &params[k];
        if (PARAM_IS(p, "server_no_context_takeover")) {
            if (snct || p->has_value)
                return 0;
            snct = 1;
        } else if (PARAM_IS(p, "client_no_context_takeover")) {
            if (cnct || p->has_value)
                return 0;
            cnct = 1;
        } else if (PARAM_IS(p, "server_max_window_bits")) {
            if (sbits || !p->has_value || (sbits = window_bits(p)) < 0)
                return 0;
        } else if (PARAM_IS(p, "client_max_window_bits")) {
            if (seen_cbits)
                return 0;
            seen_cbits = 1;
            cbits = 15;
            if (p->has_value && (cbits = window_bits(p)) < 0)
                return 0;
        } else {
            return 0;
        }
    }
    out->server_no_context_takeover = snct || prefs->server_no_context_takeover;
    out->client_no_context_takeover = cnct;
    int sp = prefs->server_max_window_bits;
    out->server_max_window_bits = sbits && sbits < sp ? sbits : sp;
    out->client_max_window_bits = 15;
    if (seen_cbits) {
        int cp = prefs->client_max_window_bits;
        out->client_max_window_bits = cbits < cp ? cbits : cp;
    }
    *server_bits_offered = sbits != 0;
    *client_bits_offered = seen_cbits;
    return 1;
}

static size_t put_str(char *resp, size_t at, const char *s)
{
    size_t n = strlen(s);
    memcpy(resp + at, s, n);
    return at + n;
}

static size_t put_bits(char *resp, size_t at, const char *name, int bits)
{
    at = put_str(resp, at, name);
    if (bits >= 10)
        resp[at++] = '1';
    resp[at++] = (char)('0' + bits % 10);
    return at;
}

int cp_ws_negotiate_deflate(const char *hdr, size_t n, const cp_ws_deflate_prefs *prefs,
                            cp_ws_deflate_params *out, char *resp)
{
    static const cp_ws_deflate_prefs defaults = {0, 15, 15};
    cp_ws_deflate_prefs pr = prefs != NULL ? *prefs : defaults;
    if (pr.server_max_window_bits < 9 || pr.server_max_window_bits > 15)
        pr.server_max_window_bits = 15;
    if (pr.client_max_window_bits < 8 || pr.client_max_window_bits > 15)
        pr.client_max_window_bits = 15;

    ext_param params[MAX_PARAMS];
    size_t i = 0;
    while (i < n) {
        i = skip_ows(hdr, n, i);
        if (i < n && hdr[i] == ',') {
            i++;
            continue;
        }
        if (i == n)
            break;
        size_t start = i, name_end, nparams;
        int too_many, sbits_offered, cbits_offered;
        if (!read_extension(hdr, n, &i, &name_end, params, &nparams, &too_many)) {
            /* skip to the next comma outside a quoted-string */
            int quoted = 0;
            for (i = start; i < n && (quoted || hdr[i] != ','); i++) {
                if (quoted && hdr[i] == '\\')
                    i++;
                else if (hdr[i] == '"')
                    quoted = !quoted;
            }
            continue;
        }
        if (!cp_name_is(hdr + start, name_end - start, "permessage-deflate", 18) ||
            too_many || !judge_offer(params, nparams, &pr, out, &sbits_offered, &cbits_offered))
            continue;
        size_t at = put_str(resp, 0, "permessage-deflate");
        if (out->server_no_context_takeover)
            at = put_str(resp, at, "; server_no_context_takeover");
        if (out->client_no_context_takeover)
            at = put_str(resp, at, "; client_no_context_takeover");
        /* an offered server_max_window_bits is accepted by answering it
           (RFC 7692 7.1.2.1); otherwise we may limit ourselves unasked */
        if (sbits_offered || out->server_max_window_bits < 15)
            at = put_bits(resp, at, "; server_max_window_bits=", out->server_max_window_bits);
        if (cbits_offered)
            at = put_bits(resp, at, "; client_max_window_bits=", out->client_max_window_bits);
        resp[at] = '\0';
        return 1;
    }
    return 0;
}
