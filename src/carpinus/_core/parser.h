/*
 * parser.h -- HTTP/1.1 request-head parser and chunked-body decoder.
 *
 * Both are pure functions over a caller-owned buffer, in the style of
 * picohttpparser: no allocation, no callbacks, no Python.  The head parser
 * reports what it found as (offset, length) spans into the buffer so that the
 * caller may move or grow the buffer between calls.  Every limit is enforced
 * *inside* the parser, so no caller can forget one.
 *
 * Strictness (RFC 9112): anything ambiguous is rejected, with the status the
 * caller should answer before closing the connection:
 *   400  malformed request line, bad method token, bad target, obs-fold,
 *        whitespace before a colon, control characters, bare CR or bare LF,
 *        Content-Length with Transfer-Encoding, differing / non-numeric /
 *        overflowing Content-Length, missing or repeated Host in HTTP/1.1,
 *        Transfer-Encoding in HTTP/1.0, "chunked" not last or repeated,
 *        bad chunk size, missing CRLF after chunk data; also a Host value
 *        that is not host[:port], userinfo in an absolute-form target, and
 *        more than 8 empty lines before the request line
 *   414  request line longer than the limit
 *   431  one header field longer than the limit, too many fields, or the
 *        whole head longer than its limit
 *   501  a transfer coding other than chunked; CONNECT
 *   505  an HTTP version other than 1.0 / 1.1 (but well formed)
 *
 * This file is the contract; parser.c and chunked.c implement it.
 */
#ifndef CARPINUS_PARSER_H
#define CARPINUS_PARSER_H

#include <stddef.h>
#include <stdint.h>

/* ---- limits ---------------------------------------------------------- */

typedef struct {
    size_t max_request_line; /* bytes, without the CRLF; over it -> 414 */
    size_t max_header_size;  /* one field line, name+colon+value, no CRLF -> 431 */
    size_t max_headers;      /* number of field lines; over it -> 431 */
    size_t max_head_size;    /* the whole head through its final CRLF (leading
                                empty lines included); over it -> 431 (414 if
                                the request line itself reaches past it).
                                0: no limit beyond the per-line ones */
} cp_limits;

/* ---- head parser ----------------------------------------------------- */

typedef struct {
    uint32_t off; /* offset from the start of the buffer */
    uint32_t len;
} cp_span;

typedef struct {
    cp_span name;  /* as sent (not lowercased); a valid token */
    cp_span value; /* leading and trailing SP/HTAB stripped */
} cp_header;

/* Methods with a fixed identity; anything else is CP_METHOD_OTHER. */
enum {
    CP_METHOD_OTHER = 0,
    CP_METHOD_GET,
    CP_METHOD_HEAD,
    CP_METHOD_POST,
    CP_METHOD_PUT,
    CP_METHOD_DELETE,
    CP_METHOD_PATCH,
    CP_METHOD_OPTIONS,
    CP_METHOD_TRACE,
    CP_METHOD_COUNT
};

/* The CP_METHOD_* of a method token (CP_METHOD_OTHER when not one of them). */
int cp_method_id(const char *m, size_t n);

/* cp_request.flags */
#define CP_F_CHUNKED 0x01         /* Transfer-Encoding: chunked */
#define CP_F_CONN_CLOSE 0x02      /* Connection: close */
#define CP_F_CONN_KEEP_ALIVE 0x04 /* Connection: keep-alive */
#define CP_F_UPGRADE 0x10         /* an Upgrade header is present */
#define CP_F_EXPECT_CONTINUE 0x20 /* Expect: 100-continue */
#define CP_F_ABSOLUTE_FORM 0x40   /* target was http://host/path */
#define CP_F_ASTERISK_FORM 0x80   /* target was "*" (OPTIONS only) */
#define CP_F_PROXY_HEADERS 0x100  /* X-Forwarded-For, X-Forwarded-Proto,
                                     X-Forwarded-Host or Forwarded is present
                                     (not validated: read only for trusted
                                     peers) */
#define CP_F_TE_TRAILERS 0x200    /* TE lists "trailers": the client takes
                                     trailer fields in a chunked response */

typedef struct {
    cp_span method;
    int method_id;      /* CP_METHOD_* */
    cp_span target;     /* the whole request-target as sent */
    cp_span path;       /* raw path: target up to '?', the path part of an
                           absolute-form target (len 0 if empty: the caller
                           substitutes "/"), or "*" */
    cp_span query;      /* after the first '?', excluding it; len 0 if none */
    int http_minor;     /* 0 or 1 (HTTP/1.0, HTTP/1.1) */
    size_t num_headers; /* entries written to the caller's header array */
    int64_t content_length; /* -1 when there is no Content-Length */
    unsigned flags;         /* CP_F_* */
    /* On CP_ERROR: */
    int error_status;         /* 400, 414, 431, 501 or 505 */
    const char *error_reason; /* static text for logs, e.g. "obs-fold" */
    /* On CP_INCOMPLETE: offset where the first incomplete line starts.
       Then buf[incomplete_line_start..len) holds no '\n' and is at most
       cp_longest_line(lim) bytes long.  The caller need not call again
       until a '\n' arrives at or after it, or until the bytes from it
       exceed cp_longest_line(lim): until then the answer can only be
       CP_INCOMPLETE or an error that the next call will still report. */
    size_t incomplete_line_start;
    /* On CP_INCOMPLETE: the most bytes the incomplete line may hold (its own
       limit + 1 for a CR awaiting its LF).  A tighter bound than
       cp_longest_line(): a caller that waits until the partial line exceeds
       it (or a '\n' arrives) reports a too-long line as soon as possible. */
    size_t incomplete_line_max;
} cp_request;

#define CP_ERROR (-1)
#define CP_INCOMPLETE (-2)

/* Facts about the field lines parsed so far that are judged only once the
   head is complete (Host count, the Transfer-Encoding verdict). */
typedef struct {
    unsigned te_fields;   /* Transfer-Encoding field lines seen */
    unsigned te_chunked;  /* "chunked" codings without parameters */
    int te_bad;           /* a syntax error in some field */
    int te_unknown;       /* a coding other than chunked */
    int te_chunked_param; /* "chunked;..." */
    unsigned hosts;       /* Host field lines seen */
} cp_head_facts;

/* Where the parse of an incomplete head stopped, so that the next call
   resumes at the first line not yet parsed instead of starting over: a
   client that sends its head a line at a time then costs one pass over the
   head, not one pass per line.  All zero: nothing parsed yet. */
typedef struct {
    size_t pos;           /* offset of the first line not yet parsed */
    int in_fields;        /* the request line is parsed; field lines follow */
    int empty_lines;      /* empty lines skipped before the request line */
    cp_head_facts facts;  /* over the field lines parsed so far */
} cp_head_progress;

/*
 * Parse one request head (request line + field lines + the empty line) at
 * the start of buf[0..len).  Leading empty lines (CRLF) before the request
 * line are skipped, as RFC 9112 section 2.2 allows, and count as consumed.
 *
 * headers must have room for lim->max_headers entries.
 *
 * Returns the number of bytes consumed through the final CRLF (> 0),
 * CP_INCOMPLETE if more bytes are needed (no limit is exceeded yet), or
 * CP_ERROR with out->error_status and out->error_reason set.
 */
ptrdiff_t cp_parse_request(const char *buf, size_t len, const cp_limits *lim,
                           cp_request *out, cp_header *headers);

/*
 * The same, resumable.  *progress starts all zero.  After CP_INCOMPLETE it
 * says where parsing stopped, and *out and headers[0 .. out->num_headers)
 * hold what the lines before that point gave: pass all three back unchanged
 * (the bytes may have moved, with buf pointing at the same head start, since
 * every span is an offset) with the same bytes plus more, and parsing goes on
 * from there.  After any other result *progress is spent: zero it before the
 * next head.  The result is the same as one cp_parse_request() call over
 * the final bytes, however the head was split.
 */
ptrdiff_t cp_parse_request_from(const char *buf, size_t len, const cp_limits *lim,
                                cp_request *out, cp_header *headers,
                                cp_head_progress *progress);

/* The longest incomplete line the parser may have to wait for (for the
   caller's "call again?" check):
       max(lim->max_request_line, lim->max_header_size) + 1
   (saturating at SIZE_MAX): a line's content may be as long as its limit,
   plus the CR of the CRLF whose LF has not arrived.  One byte more without
   a '\n' is certainly over a limit, and the parser says so (414 or 431). */
size_t cp_longest_line(const cp_limits *lim);

/* ---- chunked-body decoder ------------------------------------------- */

/* Maximum length of a chunk-size line including extensions, and of one
   trailer field line when the limits allow less. */
#define CP_CHUNK_LINE_MAX 4096

typedef struct {
    int state;          /* private */
    uint64_t remaining; /* private: data bytes left in the current chunk
                           (on a size line: the size read so far) */
    size_t line_len;    /* private: bytes seen on the current line */
    size_t trailers;    /* private: trailer field lines seen */
    int error_status;   /* set on CP_CHUNK_ERROR (400 or 431) */
    const char *error_reason;
} cp_chunked;

enum {
    CP_CHUNK_ERROR = -1,
    CP_CHUNK_MORE = 0, /* all input consumed; need more bytes */
    CP_CHUNK_DATA = 1, /* a span of body data is ready */
    CP_CHUNK_DONE = 2  /* last chunk and trailer section consumed */
};

void cp_chunked_init(cp_chunked *st);

/*
 * Decode from buf[0..len).  On return *consumed is the number of input bytes
 * used (always <= len).  For CP_CHUNK_DATA, body data is
 * buf[*data_off .. *data_off + *data_len) (inside the consumed part, and
 * data_len > 0); call again with the bytes after *consumed.  CP_CHUNK_DONE
 * means the message ended at *consumed; bytes after it belong to the next
 * request.  Trailer fields are validated like header fields (limits from
 * lim) and discarded.
 */
int cp_chunked_decode(cp_chunked *st, const char *buf, size_t len,
                      const cp_limits *lim, size_t *consumed, size_t *data_off,
                      size_t *data_len);

#endif /* CARPINUS_PARSER_H */
