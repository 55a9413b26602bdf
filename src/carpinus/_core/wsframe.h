/*
 * wsframe.h -- the WebSocket frame codec (RFC 6455) with permessage-deflate
 * (RFC 7692), server side.
 *
 * Like parser.h and writer.h this is the wire floor: no Python, no I/O.  The
 * caller hands in the bytes it read and gets back whole messages and control
 * frames; it hands in a message and gets back the bytes to write.  Every
 * rule and every limit is enforced inside, so no caller can forget one:
 *
 *   1002 (protocol error)   an unmasked frame; RSV2 or RSV3; RSV1 without
 *        permessage-deflate, on a continuation or on a control frame; an
 *        unknown opcode; a fragmented control frame or one longer than 125
 *        bytes; a continuation with no message open, or a new message
 *        while one is open; a length not in its shortest form (126 for
 *        0..125, 127 for 0..65535: RFC 6455 5.2 says "the minimal number of
 *        bytes MUST be used", and wsproto refuses them too), or with the
 *        64-bit length's high bit set; a one-byte close payload; a close
 *        code that may not be sent (below 1000, 1004-1006, 1015-2999, over
 *        4999)
 *   1007 (invalid payload)  invalid UTF-8 in a text message (found at the
 *        first bad byte, across fragments and after inflation; a code
 *        point split between fragments is fine, one left open at the end
 *        of the message is not) or in a close reason; compressed data that
 *        does not inflate, or that stops part-way through a deflate block
 *   1009 (too big)          a message longer than max_message after
 *        inflation: an uncompressed frame is refused from its header, a
 *        compressed one as soon as inflation passes the limit, and the
 *        message buffer never grows past the limit
 *   1011 (internal error)   out of memory, or zlib failed
 *
 * Accepted close codes: 1000-1003, 1007-1014 (1012 service restart, 1013 try
 * again later and 1014 bad gateway are in the IANA registry; Autobahn's
 * 7.7.* and 7.9.* test neither way), and 3000-4999.  1005, 1006 and 1015 are
 * never on the wire.
 *
 * This file is the contract; wsframe.c implements it; tests/c/test_wsframe.c
 * and fuzz/fuzz_wsframe.c check it.
 */
#ifndef CARPINUS_WSFRAME_H
#define CARPINUS_WSFRAME_H

#include <stddef.h>
#include <stdint.h>

struct z_stream_s; /* zlib's z_stream: only wsframe.c includes zlib.h */

/* Opcodes (RFC 6455 5.2). */
enum {
    CP_WS_CONT = 0x0,
    CP_WS_TEXT = 0x1,
    CP_WS_BINARY = 0x2,
    CP_WS_CLOSE = 0x8,
    CP_WS_PING = 0x9,
    CP_WS_PONG = 0xA
};

/* Close codes the codec itself produces or reports. */
enum {
    CP_WS_CLOSE_NORMAL = 1000,
    CP_WS_CLOSE_PROTOCOL_ERROR = 1002,
    CP_WS_CLOSE_NO_STATUS = 1005, /* reported for a close frame without a code */
    CP_WS_CLOSE_INVALID_DATA = 1007,
    CP_WS_CLOSE_TOO_BIG = 1009,
    CP_WS_CLOSE_INTERNAL_ERROR = 1011
};

/* Whether a close code may be sent in a close frame (see above). */
int cp_ws_close_code_ok(unsigned code);

/* Whether p[0..n) is valid UTF-8 (no surrogates, no overlong forms, nothing
   past U+10FFFF). */
int cp_ws_utf8_ok(const unsigned char *p, size_t n);

/* ---- permessage-deflate negotiation ---------------------------------- */

/* What both sides agreed; the decoder and the deflater are set up from it. */
typedef struct {
    int server_no_context_takeover; /* we reset our compressor per message */
    int client_no_context_takeover; /* the client resets its compressor, so we
                                       reset our decompressor per message */
    int server_max_window_bits;     /* 8..15: our compressor's window (8: zlib
                                       cannot deflate with a 256-byte window, so
                                       our messages go out uncompressed) */
    int client_max_window_bits;     /* 8..15: the client's compressor window,
                                       15 when the response did not limit it */
} cp_ws_deflate_params;

/* The server's wishes. */
typedef struct {
    int server_no_context_takeover; /* ask for it even when not offered */
    int server_max_window_bits;     /* 9..15: the most we use (15: no limit) */
    int client_max_window_bits;     /* 8..15: limit the client to this when it
                                       allows a limit (15: no limit) */
} cp_ws_deflate_prefs;

/* The longest response value cp_ws_negotiate_deflate writes, with its NUL. */
#define CP_WS_DEFLATE_RESPONSE_MAX 160

/*
 * Pick the first acceptable permessage-deflate offer among the client's
 * Sec-WebSocket-Extensions values, hdr[0..n) (several header lines joined
 * with ", "); prefs NULL means the defaults (15, 15, no wishes).
 *
 * An offer is declined, and the next one tried, when a parameter is unknown,
 * repeated, has a value it may not have or lacks one it needs, or a window
 * size is not 8..15 written without leading zeros (a quoted "10" is fine);
 * other extensions are skipped; an element that does not parse is skipped up
 * to the next comma outside quotes.
 *
 * Returns 1 with *out and the response value in resp (a NUL-terminated
 * string of at most CP_WS_DEFLATE_RESPONSE_MAX bytes, e.g.
 * "permessage-deflate; client_max_window_bits=15"), or 0 when no offer is
 * acceptable (the handshake goes on without the extension).
 */
int cp_ws_negotiate_deflate(const char *hdr, size_t n, const cp_ws_deflate_prefs *prefs,
                            cp_ws_deflate_params *out, char *resp);

/* ---- decoder ----------------------------------------------------------- */

typedef struct {
    size_t max_message;               /* bytes after inflation; 0: no limit */
    const cp_ws_deflate_params *deflate; /* NULL: permessage-deflate is off */
} cp_ws_decoder_opts;

/* What one call found.  data points into the caller's buffer (a whole
   message in one uncompressed frame) or into the decoder; either way it is
   valid until the next call or cp_ws_decoder_free. */
typedef struct {
    int opcode;                /* CP_WS_TEXT, BINARY, PING, PONG or CLOSE */
    const unsigned char *data; /* the message, the ping/pong payload, or the
                                  close reason (UTF-8, after the code) */
    size_t len;
    unsigned close_code; /* CLOSE: the code, CP_WS_CLOSE_NO_STATUS if none */
} cp_ws_event;

typedef struct {
    /* private */
    int state;
    unsigned char hdr[14];
    unsigned hdr_len, hdr_need;
    int fin, rsv1, opcode; /* of the current frame */
    uint64_t remaining;    /* payload bytes of the current frame still to come */
    unsigned char mask[4];
    unsigned mask_pos;
    int msg_opcode;     /* CP_WS_TEXT / BINARY of the open message, 0: none */
    int msg_compressed; /* the open message has RSV1 */
    int msg_done;       /* the last call returned the message: empty it */
    uint32_t utf8;      /* UTF-8 state of the open text message */
    unsigned char *msg; /* the message so far (heap, at most max_message) */
    size_t msg_len, msg_cap;
    unsigned char ctl[125];
    size_t ctl_len;
    size_t max_message;
    int deflate, reset_inflater;
    struct z_stream_s *inflater; /* made with the first compressed message */
    int stream_ended;            /* the message's data ended a final block */
    int msg_deflated_in;         /* compressed bytes of the message so far: any */
    /* set on CP_WS_ERROR */
    unsigned error_code; /* 1002, 1007, 1009 or 1011 */
    const char *error_reason;
} cp_ws_decoder;

enum {
    CP_WS_ERROR = -1, /* error_code and error_reason say why (sticky) */
    CP_WS_MORE = 0,   /* every byte consumed; need more */
    CP_WS_EVENT = 1,  /* *ev holds a message or a control frame */
    CP_WS_CLOSED = 2  /* after the close frame: nothing more is decoded */
};

void cp_ws_decoder_init(cp_ws_decoder *d, const cp_ws_decoder_opts *opts);
void cp_ws_decoder_free(cp_ws_decoder *d);

/*
 * Decode from buf[0..len), written to in place: payload bytes are unmasked
 * where they lie.  *consumed is set to the bytes used (<= len); with
 * CP_WS_MORE it is len (a partial header is kept inside), with CP_WS_EVENT
 * call again with the bytes after it.  One event per call.  After the close
 * frame's event every call returns CP_WS_CLOSED consuming nothing: the
 * bytes after it are not ours.  On CP_WS_ERROR *consumed says nothing.
 */
int cp_ws_decode(cp_ws_decoder *d, unsigned char *buf, size_t len, size_t *consumed,
                 cp_ws_event *ev);

/* ---- encoder ----------------------------------------------------------- */

/* A server frame header: FIN, RSV1, opcode, the length in its shortest
   form, no mask.  Writes 2, 4 or 10 bytes into out and returns the count. */
#define CP_WS_HEADER_MAX 10
size_t cp_ws_write_header(unsigned char *out, int opcode, int fin, int rsv1,
                          uint64_t len);

/* A whole close frame with code and reason into out (at least
   CP_WS_HEADER_MAX + 125 bytes).  code 0 writes an empty close frame.
   Returns its length, or 0 when the code may not be sent or the reason is
   longer than 123 bytes or not UTF-8. */
#define CP_WS_CLOSE_FRAME_MAX (2 + 125)
size_t cp_ws_write_close(unsigned char *out, unsigned code, const char *reason,
                         size_t reason_len);

/* The compressor for outgoing messages. */
typedef struct {
    /* private */
    struct z_stream_s *deflater; /* made with the first message */
    int bits, reset;
    int level, large_level, current_level; /* small messages', large ones', now */
    unsigned char *out;
    size_t out_cap;
} cp_ws_deflater;

/* level: zlib's 0..9, or -1 for its default (6), for messages under 4 KiB;
   larger ones get level 1 at most (wsframe.c, DEFLATE_LARGE_MESSAGE). */
void cp_ws_deflater_init(cp_ws_deflater *c, const cp_ws_deflate_params *params,
                         int level);
void cp_ws_deflater_free(cp_ws_deflater *c);

/*
 * One whole message as one frame (FIN, RSV1 when compressed): header and
 * payload, compressed with the trailing 0x00 0x00 0xff 0xff removed, as
 * *frame[0..*frame_len) in storage of the deflater's, valid until the next
 * call.  Control frames, empty messages and, with server_max_window_bits 8,
 * every message go out uncompressed.
 * Returns 0, or -1 when memory runs out or zlib fails: the compressor's
 * context is then lost, and the connection should be closed (1011).
 */
int cp_ws_deflate_frame(cp_ws_deflater *c, int opcode, const unsigned char *payload,
                        size_t n, const unsigned char **frame, size_t *frame_len);

#endif /* CARPINUS_WSFRAME_H */
