/*
 * writer.h -- HTTP/1.1 response framing, the twin of parser.h.
 *
 * The parser turns bytes into a request; the writer turns a response into
 * bytes.  Like the parser it is pure: no Python, no I/O, no allocation but
 * the cp_buf it is handed.  It decides the framing of a response (a length,
 * chunks, or the end of the connection), writes the head's lines, checks
 * field names and values (response splitting is impossible by
 * construction), and writes the canned answers the server makes itself.
 * response.c reads the app's messages and asks the writer for the bytes;
 * cycle.c writes them.
 *
 * This file is the contract; writer.c implements it; tests/c/test_writer.c
 * checks it, feeding what it writes back through a strict reader whole,
 * byte by byte and followed by the next response.
 */
#ifndef CARPINUS_WRITER_H
#define CARPINUS_WRITER_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* ---- a growable byte buffer ------------------------------------------ */

/* Bytes data[0..len) of capacity cap.  The storage starts as the caller's
   own (`inline_data`, often inside a struct) and moves to the heap when it
   must grow. */
typedef struct {
    char *data;
    size_t len, cap;
    char *inline_data; /* the caller's storage, or NULL */
    size_t inline_cap;
} cp_buf;

/* A buffer over the caller's storage (inline_data may be NULL, cap 0). */
void cp_buf_init(cp_buf *b, char *inline_data, size_t inline_cap);
/* Room for `extra` more bytes after len.  -1 when memory runs out (the
   buffer is unchanged). */
int cp_buf_reserve(cp_buf *b, size_t extra);
int cp_buf_put(cp_buf *b, const void *p, size_t n);
/* Drop data[0..n): the rest moves to the front. */
void cp_buf_drop_front(cp_buf *b, size_t n);
/* Back to empty, heap storage released. */
void cp_buf_release(cp_buf *b);

/* ---- lines ------------------------------------------------------------- */

/* The reason phrase of a status ("" when it has none we know). */
const char *cp_reason_phrase(int status);

/* Decimal digits of v into out (no terminator; at most CP_UINT_DIGITS_MAX
   bytes); returns the length. */
#define CP_UINT_DIGITS_MAX 20
size_t cp_format_uint(char *out, uint64_t v);

/* "HTTP/1.1 NNN Reason\r\n" for 100 <= status <= 999, into out (at least
   CP_STATUS_LINE_MAX bytes); returns its length. */
#define CP_STATUS_LINE_MAX 48
size_t cp_write_status_line(char *out, int status);

/* "date: Wed, 02 Dec 2026 12:00:00 GMT\r\n" for t (UTC), into out (at least
   CP_DATE_LINE_MAX bytes); returns its length (0 if t cannot be shown). */
#define CP_DATE_LINE_MAX 48
size_t cp_write_date_line(char *out, time_t t);

/* Field names are tokens; values hold HTAB, SP, VCHAR and obs-text only: no
   CR, LF, NUL or other control character. */
int cp_field_name_ok(const char *p, size_t n);
int cp_field_value_ok(const char *p, size_t n);

/* Append "name: value\r\n" (as given) / with the name lowercased. */
int cp_buf_put_field(cp_buf *b, const char *name, size_t nlen, const char *value,
                     size_t vlen);
int cp_buf_put_field_lower(cp_buf *b, const char *name, size_t nlen, const char *value,
                           size_t vlen);

/* A Content-Length value: 1 to 18 digits.  0, or -1 when it is not one. */
int cp_parse_length(const char *p, size_t n, int64_t *out);

/* ---- framing ----------------------------------------------------------- */

/* How a response's body is delimited, decided with its first body part. */
typedef struct {
    /* in (set before cp_finish_head) */
    int http_minor; /* of the request: 0 or 1 */
    int no_body;    /* HEAD, 204, 304: no body bytes follow the head */
    int64_t length; /* the app's Content-Length, -1 when it gave none */
    int keep_alive; /* the connection may stay open (request, server) */
    int app_close;  /* the app sent Connection: close (its line is in the head) */
    /* out (set by cp_finish_head) */
    int chunked;         /* Transfer-Encoding: chunked */
    int close_delimited; /* the body ends with the connection (HTTP/1.0) */
} cp_framing;

/* Finish a head for a first body part of body_len bytes, more_body saying
   whether more follow: the framing line (content-length, or
   transfer-encoding: chunked on HTTP/1.1; nothing for a close-delimited
   HTTP/1.0 body or a body-less response), the connection line, the blank
   line.  Sets f->length (when it adds one), f->chunked, f->close_delimited
   and f->keep_alive (whether the connection stays open).  -1: no memory. */
int cp_finish_head(cp_buf *head, cp_framing *f, size_t body_len, int more_body);

/* The chunk around n data bytes: its prefix "HEX\r\n" into pre (at least
   CP_CHUNK_PREFIX_MAX bytes; length returned, 0 when n is 0 -- an empty
   part is no chunk), and its suffix: "\r\n" (more follow), "\r\n0\r\n\r\n"
   (the last data), or "0\r\n\r\n" (an empty last part), "" for an empty
   part with more to come. */
#define CP_CHUNK_PREFIX_MAX 24
size_t cp_chunk_prefix(char *pre, size_t n);
const char *cp_chunk_suffix(size_t n, int more_body, size_t *len);

/* The answer the server makes itself to a request it refuses (400, 408,
   413, 431, 500, 503, ...): the status line, a plain-text content type,
   the length of the reason phrase that is its body, connection: close, the
   configured lines (server_lines, the Server header(s); date_line; extra,
   the --header lines: each may be empty), the blank line, the body.
   -1: no memory. */
int cp_write_error_response(cp_buf *out, int status, const char *server_lines,
                            size_t server_len, const char *date_line, size_t date_len,
                            const char *extra, size_t extra_len);

#endif /* CARPINUS_WRITER_H */
