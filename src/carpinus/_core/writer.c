/*
 * writer.c -- HTTP/1.1 response framing; contract in writer.h.
 *
 * Everything here is a function of its arguments: what a response's head
 * and framing look like for a given request and app message, written into a
 * caller's buffer.  The connection state, the Python objects and the I/O
 * stay with the callers (response.c, cycle.c), so the bytes can be checked
 * on their own (tests/c/test_writer.c), as the parser's are.
 */
#define _POSIX_C_SOURCE 200809L /* gmtime_r */

#include "writer.h"

#include <stdlib.h>
#include <string.h>

#include "chars.h"

/* ---- cp_buf ------------------------------------------------------------ */

void cp_buf_init(cp_buf *b, char *inline_data, size_t inline_cap)
{
    b->data = inline_data;
    b->len = 0;
    b->cap = inline_data != NULL ? inline_cap : 0;
    b->inline_data = inline_data;
    b->inline_cap = b->cap;
}

int cp_buf_reserve(cp_buf *b, size_t extra)
{
    if (b->cap - b->len >= extra) {
        return 0;
    }
    if (extra > SIZE_MAX / 2 - b->len) {
        return -1;
    }
    size_t cap = b->cap ? b->cap : 256;
    while (cap - b->len < extra) {
        cap *= 2;
    }
    char *p;
    if (b->data == b->inline_data) {
        p = malloc(cap);
        if (p != NULL && b->len > 0) {
            memcpy(p, b->data, b->len);
        }
    } else {
        p = realloc(b->data, cap);
    }
    if (p == NULL) {
        return -1;
    }
    b->data = p;
    b->cap = cap;
    return 0;
}

int cp_buf_put(cp_buf *b, const void *p, size_t n)
{
    if (cp_buf_reserve(b, n) < 0) {
        return -1;
    }
    if (n > 0) {
        memcpy(b->data + b->len, p, n);
    }
    b->len += n;
    return 0;
}

void cp_buf_drop_front(cp_buf *b, size_t n)
{
    if (n >= b->len) {
        b->len = 0;
        return;
    }
    memmove(b->data, b->data + n, b->len - n);
    b->len -= n;
}

void cp_buf_release(cp_buf *b)
{
    if (b->data != b->inline_data) {
        free(b->data);
    }
    cp_buf_init(b, b->inline_data, b->inline_cap);
}

/* ---- numbers ------------------------------------------------------------ */

size_t cp_format_uint(char *out, uint64_t v)
{
    char tmp[24];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    for (size_t i = 0; i < n; i++) {
        out[i] = tmp[n - 1 - i];
    }
    return n;
}

/* Lowercase hex digits of v into out; returns the length. */
static size_t format_hex(char *out, uint64_t v)
{
    static const char digits[] = "0123456789abcdef";
    char tmp[20];
    size_t n = 0;
    do {
        tmp[n++] = digits[v & 15];
        v >>= 4;
    } while (v != 0);
    for (size_t i = 0; i < n; i++) {
        out[i] = tmp[n - 1 - i];
    }
    return n;
}

int cp_parse_length(const char *p, size_t n, int64_t *out)
{
    if (n == 0 || n > 18) {
        return -1;
    }
    int64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9') {
            return -1;
        }
        v = v * 10 + (p[i] - '0');
    }
    *out = v;
    return 0;
}

/* ---- lines ------------------------------------------------------------- */

const char *cp_reason_phrase(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 101: return "Switching Protocols";
    case 102: return "Processing";
    case 103: return "Early Hints";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 203: return "Non-Authoritative Information";
    case 204: return "No Content";
    case 205: return "Reset Content";
    case 206: return "Partial Content";
    case 207: return "Multi-Status";
    case 208: return "Already Reported";
    case 226: return "IM Used";
    case 300: return "Multiple Choices";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 303: return "See Other";
    case 304: return "Not Modified";
    case 305: return "Use Proxy";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 402: return "Payment Required";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 406: return "Not Acceptable";
    case 407: return "Proxy Authentication Required";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 410: return "Gone";
    case 411: return "Length Required";
    case 412: return "Precondition Failed";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 416: return "Range Not Satisfiable";
    case 417: return "Expectation Failed";
    case 418: return "I'm a Teapot";
    case 421: return "Misdirected Request";
    case 422: return "Unprocessable Content";
    case 423: return "Locked";
    case 424: return "Failed Dependency";
    case 425: return "Too Early";
    case 426: return "Upgrade Required";
    case 428: return "Precondition Required";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 451: return "Unavailable For Legal Reasons";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    case 506: return "Variant Also Negotiates";
    case 507: return "Insufficient Storage";
    case 508: return "Loop Detected";
    case 510: return "Not Extended";
    case 511: return "Network Authentication Required";
    default: return "";
    }
}

size_t cp_write_status_line(char *out, int status)
{
    const char *reason = cp_reason_phrase(status);
    size_t rlen = strlen(reason);
    memcpy(out, "HTTP/1.1 ", 9);
    out[9] = (char)('0' + status / 100 % 10);
    out[10] = (char)('0' + status / 10 % 10);
    out[11] = (char)('0' + status % 10);
    out[12] = ' ';
    memcpy(out + 13, reason, rlen);
    out[13 + rlen] = '\r';
    out[14 + rlen] = '\n';
    return 15 + rlen;
}

/* "dd" into out. */
static void two_digits(char *out, int v)
{
    out[0] = (char)('0' + v / 10 % 10);
    out[1] = (char)('0' + v % 10);
}

size_t cp_write_date_line(char *out, time_t t)
{
    static const char days[7][4] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char months[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                       "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    struct tm tm;
    if (gmtime_r(&t, &tm) == NULL || tm.tm_year + 1900 < 0 || tm.tm_year + 1900 > 9999) {
        return 0;
    }
    /* "date: Wed, 02 Dec 2026 12:00:00 GMT\r\n" */
    char *w = out;
    memcpy(w, "date: ", 6);
    w += 6;
    memcpy(w, days[tm.tm_wday % 7], 3);
    w += 3;
    memcpy(w, ", ", 2);
    w += 2;
    two_digits(w, tm.tm_mday);
    w += 2;
    *w++ = ' ';
    memcpy(w, months[tm.tm_mon % 12], 3);
    w += 3;
    *w++ = ' ';
    int year = tm.tm_year + 1900;
    two_digits(w, year / 100);
    two_digits(w + 2, year % 100);
    w += 4;
    *w++ = ' ';
    two_digits(w, tm.tm_hour);
    w[2] = ':';
    two_digits(w + 3, tm.tm_min);
    w[5] = ':';
    two_digits(w + 6, tm.tm_sec);
    w += 8;
    memcpy(w, " GMT\r\n", 6);
    w += 6;
    return (size_t)(w - out);
}

int cp_field_name_ok(const char *p, size_t n)
{
    if (n == 0) {
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        if (!(cp_char_class[(unsigned char)p[i]] & CC_TOKEN)) {
            return 0;
        }
    }
    return 1;
}

int cp_field_value_ok(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (!(cp_char_class[(unsigned char)p[i]] & CC_VALUE)) {
            return 0;
        }
    }
    return 1;
}

static int put_field(cp_buf *b, const char *name, size_t nlen, const char *value,
                     size_t vlen, int lower)
{
    if (cp_buf_reserve(b, nlen + vlen + 4) < 0) {
        return -1;
    }
    char *w = b->data + b->len;
    if (lower) {
        for (size_t i = 0; i < nlen; i++) {
            w[i] = (char)cp_ascii_lower((unsigned char)name[i]);
        }
    } else {
        memcpy(w, name, nlen);
    }
    w += nlen;
    *w++ = ':';
    *w++ = ' ';
    memcpy(w, value, vlen);
    w += vlen;
    *w++ = '\r';
    *w++ = '\n';
    b->len = (size_t)(w - b->data);
    return 0;
}

int cp_buf_put_field(cp_buf *b, const char *name, size_t nlen, const char *value,
                     size_t vlen)
{
    return put_field(b, name, nlen, value, vlen, 0);
}

int cp_buf_put_field_lower(cp_buf *b, const char *name, size_t nlen, const char *value,
                           size_t vlen)
{
    return put_field(b, name, nlen, value, vlen, 1);
}

/* ---- framing ----------------------------------------------------------- */

int cp_finish_head(cp_buf *head, cp_framing *f, size_t body_len, int more_body)
{
    f->chunked = 0;
    f->close_delimited = 0;
    if (!f->no_body && f->length < 0) {
        if (!more_body) {
            /* the whole body is here: its length frames it */
            char line[40];
            memcpy(line, "content-length: ", 16);
            size_t n = 16 + cp_format_uint(line + 16, (uint64_t)body_len);
            line[n++] = '\r';
            line[n++] = '\n';
            if (cp_buf_put(head, line, n) < 0) {
                return -1;
            }
            f->length = (int64_t)body_len;
        } else if (f->http_minor >= 1) {
            if (cp_buf_put(head, "transfer-encoding: chunked\r\n", 28) < 0) {
                return -1;
            }
            f->chunked = 1;
        } else {
            f->close_delimited = 1; /* HTTP/1.0 cannot read chunks */
        }
    }
    f->keep_alive = f->keep_alive && !f->app_close && !f->close_delimited;
    if (!f->keep_alive && !f->app_close) {
        if (cp_buf_put(head, "connection: close\r\n", 19) < 0) {
            return -1;
        }
    } else if (f->keep_alive && f->http_minor == 0) {
        if (cp_buf_put(head, "connection: keep-alive\r\n", 24) < 0) {
            return -1;
        }
    }
    return cp_buf_put(head, "\r\n", 2);
}

size_t cp_chunk_prefix(char *pre, size_t n)
{
    if (n == 0) {
        return 0;
    }
    size_t len = format_hex(pre, (uint64_t)n);
    pre[len++] = '\r';
    pre[len++] = '\n';
    return len;
}

const char *cp_chunk_suffix(size_t n, int more_body, size_t *len)
{
    if (n > 0) {
        *len = more_body ? 2 : 7;
        return more_body ? "\r\n" : "\r\n0\r\n\r\n";
    }
    *len = more_body ? 0 : 5;
    return more_body ? "" : "0\r\n\r\n";
}

int cp_write_error_response(cp_buf *out, int status, const char *server_lines,
                            size_t server_len, const char *date_line, size_t date_len,
                            const char *extra, size_t extra_len)
{
    const char *reason = cp_reason_phrase(status);
    size_t rlen = strlen(reason);
    char line[CP_STATUS_LINE_MAX];
    char length[24];
    size_t llen = cp_format_uint(length, rlen);
    size_t n = cp_write_status_line(line, status);
    if (cp_buf_put(out, line, n) < 0 ||
        cp_buf_put(out, "content-type: text/plain; charset=utf-8\r\n", 41) < 0 ||
        cp_buf_put_field(out, "content-length", 14, length, llen) < 0 ||
        cp_buf_put(out, "connection: close\r\n", 19) < 0 ||
        cp_buf_put(out, server_lines, server_len) < 0 ||
        cp_buf_put(out, date_line, date_len) < 0 || cp_buf_put(out, extra, extra_len) < 0 ||
        cp_buf_put(out, "\r\n", 2) < 0 || cp_buf_put(out, reason, rlen) < 0) {
        return -1;
    }
    return 0;
}
