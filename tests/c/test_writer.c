/*
 * test_writer.c -- standalone tests for writer.c, the response writer.
 *
 * No framework: CHECK() counts, prints each failure with the case name and
 * carries on; the exit status is non-zero if anything failed.
 *
 * The writer is the parser's twin, and it is tested the same way: what it
 * writes is read back by a strict response reader written here (independent
 * of the writer: status line, field lines, then Content-Length, chunked or
 * close-delimited framing), and every response is read three ways (h11's
 * test_io.py): whole; one byte at a time (the reader must answer
 * "incomplete" until the last byte, then the same response); and followed by
 * the next response, where it must stop exactly at its end.  A body is sent
 * whole, one byte per message, and in uneven pieces with empty messages in
 * between: the body read back is the body sent, whatever the pieces.
 */
#define _DEFAULT_SOURCE /* timegm */
#include "writer.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "check.h"

/* ---- a strict response reader ------------------------------------------- */

#define READ_INCOMPLETE (-2)
#define READ_ERROR (-1)
#define MAX_FIELDS 32

typedef struct {
    int status;
    size_t nfields;
    char names[MAX_FIELDS][64];
    char values[MAX_FIELDS][128];
    char body[1 << 16];
    size_t body_len;
    int chunked, close_delimited;
    const char *why; /* on READ_ERROR */
} response;

static const char *field(const response *r, const char *name)
{
    for (size_t i = 0; i < r->nfields; i++) {
        if (strcmp(r->names[i], name) == 0)
            return r->values[i];
    }
    return NULL;
}

static int count_field(const response *r, const char *name)
{
    int n = 0;
    for (size_t i = 0; i < r->nfields; i++)
        n += strcmp(r->names[i], name) == 0;
    return n;
}

static ptrdiff_t fail(response *r, const char *why)
{
    r->why = why;
    return READ_ERROR;
}

/* The end of the line at p[pos..len): the offset of its CR, or -1 (none yet);
   a CR not followed by LF, or a bare LF, is an error (-2). */
static ptrdiff_t line_end(const char *p, size_t pos, size_t len)
{
    for (size_t i = pos; i < len; i++) {
        if (p[i] == '\n')
            return -2;
        if (p[i] == '\r') {
            if (i + 1 == len)
                return -1;
            return p[i + 1] == '\n' ? (ptrdiff_t)i : -2;
        }
    }
    return -1;
}

/* Read one response from p[0..len).  `eof`: the connection ended at len
   (a close-delimited body is complete).  Returns the bytes it took,
   READ_INCOMPLETE or READ_ERROR. */
static ptrdiff_t read_response(const char *p, size_t len, int head_request, int eof,
                               response *r)
{
    memset(r, 0, sizeof(*r));
    ptrdiff_t e = line_end(p, 0, len);
    if (e == -2)
        return fail(r, "bad line end in the status line");
    if (e < 0)
        return READ_INCOMPLETE;
    if (e < 13 || memcmp(p, "HTTP/1.1 ", 9) != 0 || p[12] != ' ')
        return fail(r, "bad status line");
    for (int i = 9; i < 12; i++) {
        if (p[i] < '0' || p[i] > '9')
            return fail(r, "bad status code");
    }
    r->status = (p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0');
    size_t pos = (size_t)e + 2;
    for (;;) {
        e = line_end(p, pos, len);
        if (e == -2)
            return fail(r, "bad line end in a field line");
        if (e < 0)
            return READ_INCOMPLETE;
        if ((size_t)e == pos)
            break;
        const char *colon = memchr(p + pos, ':', (size_t)e - pos);
        if (colon == NULL || colon == p + pos || colon[1] != ' ')
            return fail(r, "bad field line");
        size_t nlen = (size_t)(colon - (p + pos)), vlen = (size_t)e - pos - nlen - 2;
        if (r->nfields == MAX_FIELDS || nlen >= 64 || vlen >= 128)
            return fail(r, "too many or too long fields");
        for (size_t i = 0; i < nlen; i++) {
            char c = p[pos + i];
            if (c <= ' ' || c >= 127 || strchr("()<>@,;:\\\"/[]?={}", c))
                return fail(r, "field name not a token");
            r->names[r->nfields][i] = (char)((c >= 'A' && c <= 'Z') ? c + 32 : c);
        }
        memcpy(r->values[r->nfields], colon + 2, vlen);
        r->nfields++;
        pos = (size_t)e + 2;
    }
    pos += 2; /* the blank line */
    const char *cl = field(r, "content-length"), *te = field(r, "transfer-encoding");
    if (count_field(r, "content-length") > 1 || count_field(r, "transfer-encoding") > 1)
        return fail(r, "framing field twice");
    if (cl != NULL && te != NULL)
        return fail(r, "content-length with transfer-encoding");
    if (head_request || r->status == 204 || r->status == 304)
        return cl != NULL && r->status == 204 ? fail(r, "length on a 204") : (ptrdiff_t)pos;
    if (te != NULL) {
        if (strcmp(te, "chunked") != 0)
            return fail(r, "a coding other than chunked");
        r->chunked = 1;
        for (;;) {
            e = line_end(p, pos, len);
            if (e == -2)
                return fail(r, "bad line end in a chunk size");
            if (e < 0)
                return READ_INCOMPLETE;
            size_t size = 0;
            if ((size_t)e == pos)
                return fail(r, "empty chunk size");
            for (size_t i = pos; i < (size_t)e; i++) {
                char c = p[i];
                int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
                if (d < 0)
                    return fail(r, "chunk size not lowercase hex");
                size = size * 16 + (size_t)d;
            }
            if ((size_t)e - pos > 1 && p[pos] == '0')
                return fail(r, "leading zero in a chunk size");
            pos = (size_t)e + 2;
            if (size == 0) {
                if (len - pos < 2)
                    return READ_INCOMPLETE;
                if (p[pos] != '\r' || p[pos + 1] != '\n')
                    return fail(r, "trailers after the last chunk");
                return (ptrdiff_t)(pos + 2);
            }
            if (len - pos < size + 2)
                return READ_INCOMPLETE;
            if (r->body_len + size > sizeof r->body)
                return fail(r, "body too long for the reader");
            memcpy(r->body + r->body_len, p + pos, size);
            r->body_len += size;
            pos += size;
            if (p[pos] != '\r' || p[pos + 1] != '\n')
                return fail(r, "chunk data not followed by CRLF");
            pos += 2;
        }
    }
    if (cl != NULL) {
        size_t n = strtoul(cl, NULL, 10);
        if (len - pos < n)
            return READ_INCOMPLETE;
        memcpy(r->body, p + pos, n);
        r->body_len = n;
        return (ptrdiff_t)(pos + n);
    }
    /* close-delimited: the body is the rest of the connection */
    r->close_delimited = 1;
    if (!eof)
        return READ_INCOMPLETE;
    memcpy(r->body, p + pos, len - pos);
    r->body_len = len - pos;
    return (ptrdiff_t)len;
}

/* Read `wire` whole, one byte at a time, and followed by another response;
   the answers must agree.  Returns the whole reading in *r. */
static void read_three_ways(const char *wire, size_t n, int head_request, response *r)
{
    static response part;
    int eof_framed = 0;
    ptrdiff_t whole = read_response(wire, n, head_request, 1, r);
    CHECK(whole == (ptrdiff_t)n, "read %td of %zu bytes (%s)", whole, n,
          whole == READ_ERROR ? r->why : "incomplete");
    if (whole != (ptrdiff_t)n)
        return;
    eof_framed = r->close_delimited;
    /* byte by byte: incomplete until the end */
    for (size_t k = 0; k < n; k++) {
        ptrdiff_t got = read_response(wire, k, head_request, 0, &part);
        CHECK(got == READ_INCOMPLETE, "prefix %zu: %td (%s)", k, got,
              got == READ_ERROR ? part.why : "-");
        if (got != READ_INCOMPLETE)
            break;
    }
    if (eof_framed)
        return; /* nothing can follow a close-delimited body */
    /* followed by the next response: it stops exactly at the end */
    static const char next[] = "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
    char *both = malloc(n + sizeof next - 1);
    memcpy(both, wire, n);
    memcpy(both + n, next, sizeof next - 1);
    ptrdiff_t first = read_response(both, n + sizeof next - 1, head_request, 0, &part);
    CHECK(first == (ptrdiff_t)n, "followed by another: read %td, want %zu", first, n);
    if (first == (ptrdiff_t)n) {
        ptrdiff_t second = read_response(both + n, sizeof next - 1, 0, 0, &part);
        CHECK(second == (ptrdiff_t)(sizeof next - 1) && part.body_len == 2,
              "the next response: %td", second);
    }
    free(both);
}

/* ---- building a response as the server does ----------------------------- */

typedef struct {
    char data[1 << 18];
    size_t len;
} wire;

static void wire_put(wire *w, const char *p, size_t n)
{
    if (w->len + n <= sizeof w->data) {
        memcpy(w->data + w->len, p, n);
        w->len += n;
    } else {
        CHECK(0, "wire overflow");
    }
}

/* One response: the head lines given, then the body in `parts` messages
   (lengths in sizes[]; the last is final), framed as response.c does. */
static void build(wire *w, cp_framing *f, const char *head_lines, const char *body,
                  const size_t *sizes, size_t nparts)
{
    char storage[64];
    cp_buf head;
    cp_buf_init(&head, storage, sizeof storage); /* small: it must grow */
    char line[CP_STATUS_LINE_MAX];
    size_t n = cp_write_status_line(line, 200);
    cp_buf_put(&head, line, n);
    cp_buf_put(&head, head_lines, strlen(head_lines));
    size_t off = 0;
    w->len = 0;
    for (size_t i = 0; i < nparts; i++) {
        size_t blen = sizes[i];
        int more = i + 1 < nparts;
        if (i == 0) {
            CHECK(cp_finish_head(&head, f, blen, more) == 0, "finish_head");
            wire_put(w, head.data, head.len);
        }
        if (f->no_body) {
            off += blen;
            continue;
        }
        if (f->chunked) {
            char pre[CP_CHUNK_PREFIX_MAX];
            size_t plen = cp_chunk_prefix(pre, blen), slen;
            const char *suffix = cp_chunk_suffix(blen, more, &slen);
            wire_put(w, pre, plen);
            wire_put(w, body + off, blen);
            wire_put(w, suffix, slen);
        } else {
            wire_put(w, body + off, blen);
        }
        off += blen;
    }
    cp_buf_release(&head);
}

static cp_framing framing(int minor, int no_body, int64_t length, int keep, int app_close)
{
    cp_framing f = {minor, no_body, length, keep, app_close, 0, 0};
    return f;
}

/* ---- the tests ---------------------------------------------------------- */

static void test_buf(void)
{
    current = "cp_buf";
    char storage[8];
    cp_buf b;
    cp_buf_init(&b, storage, sizeof storage);
    CHECK(cp_buf_put(&b, "abcdef", 6) == 0 && b.data == storage, "fits inline");
    CHECK(cp_buf_put(&b, "ghijkl", 6) == 0 && b.data != storage && b.len == 12 &&
              memcmp(b.data, "abcdefghijkl", 12) == 0,
          "grows to the heap, keeping its bytes");
    cp_buf_drop_front(&b, 4);
    CHECK(b.len == 8 && memcmp(b.data, "efghijkl", 8) == 0, "drop_front");
    cp_buf_drop_front(&b, 100);
    CHECK(b.len == 0, "drop_front past the end");
    cp_buf_release(&b);
    CHECK(b.data == storage && b.cap == sizeof storage && b.len == 0, "back inline");
    cp_buf none;
    cp_buf_init(&none, NULL, 0);
    CHECK(cp_buf_put(&none, "x", 1) == 0 && none.len == 1, "no inline storage");
    cp_buf_release(&none);
    CHECK(none.data == NULL && none.cap == 0, "released");
}

static void test_status_lines(void)
{
    current = "status lines";
    for (int code = 100; code < 1000; code++) {
        char out[CP_STATUS_LINE_MAX], want[80];
        size_t n = cp_write_status_line(out, code);
        int m = snprintf(want, sizeof want, "HTTP/1.1 %d %s\r\n", code, cp_reason_phrase(code));
        CHECK(n == (size_t)m && memcmp(out, want, n) == 0 && n <= CP_STATUS_LINE_MAX,
              "%d: %.*s", code, (int)n, out);
    }
    CHECK(strcmp(cp_reason_phrase(200), "OK") == 0 &&
              strcmp(cp_reason_phrase(431), "Request Header Fields Too Large") == 0 &&
              strcmp(cp_reason_phrase(299), "") == 0,
          "reason phrases");
}

static void test_date_lines(void)
{
    current = "date lines";
    static const time_t times[] = {0, 951782400 /* 2000-02-29 */, 1764676800, 4102444799};
    for (size_t i = 0; i < sizeof times / sizeof times[0]; i++) {
        char out[CP_DATE_LINE_MAX], want[80];
        struct tm tm;
        gmtime_r(&times[i], &tm);
        strftime(want, sizeof want, "date: %a, %d %b %Y %H:%M:%S GMT\r\n", &tm);
        size_t n = cp_write_date_line(out, times[i]);
        CHECK(n == strlen(want) && memcmp(out, want, n) == 0, "%lld: %.*s vs %s",
              (long long)times[i], (int)n, out, want);
    }
}

static void test_fields(void)
{
    current = "field checks";
    static const char *ok_names[] = {"x", "Content-Type", "x-a!#$%&'*+-.^_`|~9"};
    static const char *bad_names[] = {"", "a b", "a:b", "a\r", "a\n", "é", "a(b)", "a\"b"};
    for (size_t i = 0; i < sizeof ok_names / sizeof *ok_names; i++)
        CHECK(cp_field_name_ok(ok_names[i], strlen(ok_names[i])), "%s", ok_names[i]);
    for (size_t i = 0; i < sizeof bad_names / sizeof *bad_names; i++)
        CHECK(!cp_field_name_ok(bad_names[i], strlen(bad_names[i])), "%s", bad_names[i]);
    static const char ok_value[] = "a b\tc~\x80\xff";
    CHECK(cp_field_value_ok(ok_value, sizeof ok_value - 1), "SP HTAB VCHAR obs-text");
    CHECK(cp_field_value_ok("", 0), "empty value");
    static const char *bad_values[] = {"a\rb", "a\nb", "a\x7f", "\x01", "x\r\nevil: 1"};
    for (size_t i = 0; i < sizeof bad_values / sizeof *bad_values; i++)
        CHECK(!cp_field_value_ok(bad_values[i], strlen(bad_values[i])), "value %zu", i);
    CHECK(!cp_field_value_ok("a\0b", 3), "NUL");
    cp_buf b;
    cp_buf_init(&b, NULL, 0);
    cp_buf_put_field_lower(&b, "X-Mixed-Case", 12, "Value", 5);
    cp_buf_put_field(&b, "Keep-Case", 9, "v", 1);
    CHECK(b.len == 35 && memcmp(b.data, "x-mixed-case: Value\r\nKeep-Case: v\r\n", 35) == 0,
          "%.*s", (int)b.len, b.data);
    cp_buf_release(&b);
    int64_t v = -1;
    CHECK(cp_parse_length("0", 1, &v) == 0 && v == 0, "0");
    CHECK(cp_parse_length("123456789012345678", 18, &v) == 0 && v == 123456789012345678,
          "18 digits");
    CHECK(cp_parse_length("1234567890123456789", 19, &v) < 0, "19 digits");
    CHECK(cp_parse_length("", 0, &v) < 0 && cp_parse_length("1 ", 2, &v) < 0 &&
              cp_parse_length("-1", 2, &v) < 0 && cp_parse_length("+1", 2, &v) < 0,
          "not 1*DIGIT");
}

/* The framing for each kind of response: which lines the writer adds and
   whether the connection stays. */
static void test_framing(void)
{
    static const struct {
        const char *name;
        int minor, no_body, keep, app_close, more;
        int64_t length;
        size_t body_len;
        const char *added;     /* the lines cp_finish_head adds */
        int keep_after, chunked, close_delimited;
    } cases[] = {
        {"1.1 one part", 1, 0, 1, 0, 0, -1, 5, "content-length: 5\r\n\r\n", 1, 0, 0},
        {"1.1 one empty part", 1, 0, 1, 0, 0, -1, 0, "content-length: 0\r\n\r\n", 1, 0, 0},
        {"1.1 streamed", 1, 0, 1, 0, 1, -1, 5, "transfer-encoding: chunked\r\n\r\n", 1, 1, 0},
        {"1.1 app length", 1, 0, 1, 0, 1, 10, 5, "\r\n", 1, 0, 0},
        {"1.1 closing", 1, 0, 0, 0, 0, -1, 3, "content-length: 3\r\nconnection: close\r\n\r\n",
         0, 0, 0},
        {"1.1 app close", 1, 0, 1, 1, 0, -1, 3, "content-length: 3\r\n\r\n", 0, 0, 0},
        {"1.0 keep-alive", 0, 0, 1, 0, 0, -1, 3,
         "content-length: 3\r\nconnection: keep-alive\r\n\r\n", 1, 0, 0},
        {"1.0 streamed", 0, 0, 1, 0, 1, -1, 3, "connection: close\r\n\r\n", 0, 0, 1},
        {"1.0 close", 0, 0, 0, 0, 0, -1, 3, "content-length: 3\r\nconnection: close\r\n\r\n",
         0, 0, 0},
        {"no body (HEAD, 204, 304)", 1, 1, 1, 0, 1, -1, 9, "\r\n", 1, 0, 0},
        {"no body, 1.0 keep-alive", 0, 1, 1, 0, 0, -1, 0, "connection: keep-alive\r\n\r\n",
         1, 0, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        current = cases[i].name;
        cp_framing f = framing(cases[i].minor, cases[i].no_body, cases[i].length,
                               cases[i].keep, cases[i].app_close);
        cp_buf head;
        cp_buf_init(&head, NULL, 0);
        CHECK(cp_finish_head(&head, &f, cases[i].body_len, cases[i].more) == 0, "ok");
        size_t an = strlen(cases[i].added);
        CHECK(head.len == an && memcmp(head.data, cases[i].added, an) == 0, "wrote %.*s",
              (int)head.len, head.data);
        CHECK(f.keep_alive == cases[i].keep_after && f.chunked == cases[i].chunked &&
                  f.close_delimited == cases[i].close_delimited,
              "keep %d chunked %d close %d", f.keep_alive, f.chunked, f.close_delimited);
        cp_buf_release(&head);
    }
    current = "chunk framing";
    char pre[CP_CHUNK_PREFIX_MAX];
    size_t slen;
    CHECK(cp_chunk_prefix(pre, 0) == 0, "an empty part is no chunk");
    CHECK(cp_chunk_prefix(pre, 255) == 4 && memcmp(pre, "ff\r\n", 4) == 0, "hex, lowercase");
    CHECK(cp_chunk_prefix(pre, (size_t)1 << 40) == 13, "large");
    CHECK(strcmp(cp_chunk_suffix(5, 1, &slen), "\r\n") == 0 && slen == 2, "data, more");
    CHECK(strcmp(cp_chunk_suffix(5, 0, &slen), "\r\n0\r\n\r\n") == 0 && slen == 7, "last");
    CHECK(strcmp(cp_chunk_suffix(0, 0, &slen), "0\r\n\r\n") == 0 && slen == 5, "empty last");
    CHECK(strcmp(cp_chunk_suffix(0, 1, &slen), "") == 0 && slen == 0, "empty, more");
}

/* Bodies sent whole, a byte per message, and in uneven pieces with empty
   messages between: read back (three ways) they are the body sent. */
static void test_bodies(void)
{
    static wire w;
    static char body[3000];
    for (size_t i = 0; i < sizeof body; i++)
        body[i] = (char)('a' + i % 26);
    static size_t sizes[3100];
    static const size_t lengths[] = {0, 1, 2, 17, 255, 256, 3000};
    static const char *const ways[] = {"whole", "byte by byte", "uneven pieces"};
    for (size_t li = 0; li < sizeof lengths / sizeof *lengths; li++) {
        size_t blen = lengths[li];
        for (int way = 0; way < 3; way++) {
            size_t nparts = 0, left = blen;
            if (way == 0) {
                sizes[nparts++] = blen;
            } else if (way == 1) {
                for (size_t i = 0; i < blen; i++)
                    sizes[nparts++] = 1;
                sizes[nparts++] = 0;
            } else {
                for (size_t step = 1; left > 0; step = step * 3 % 97 + 1) {
                    size_t n = step < left ? step : left;
                    sizes[nparts++] = n;
                    sizes[nparts++] = 0; /* an empty message between */
                    left -= n;
                }
                sizes[nparts++] = 0;
            }
            for (int minor = 0; minor <= 1; minor++) {
                char name[96];
                snprintf(name, sizeof name, "body %zu, %s, HTTP/1.%d", blen, ways[way], minor);
                current = name;
                cp_framing f = framing(minor, 0, -1, 1, 0);
                build(&w, &f, "content-type: text/plain\r\n", body, sizes, nparts);
                static response r;
                read_three_ways(w.data, w.len, 0, &r);
                CHECK(r.status == 200 && r.body_len == blen && memcmp(r.body, body, blen) == 0,
                      "body of %zu read back as %zu bytes", blen, r.body_len);
                CHECK(r.chunked == (nparts > 1 && minor == 1), "chunked %d", r.chunked);
                CHECK(r.close_delimited == (nparts > 1 && minor == 0),
                      "close-delimited %d", r.close_delimited);
                const char *conn = field(&r, "connection");
                CHECK(f.keep_alive ? (minor == 0 ? conn && strcmp(conn, "keep-alive") == 0 : !conn)
                                   : conn && strcmp(conn, "close") == 0,
                      "connection %s, keep %d", conn ? conn : "-", f.keep_alive);
            }
        }
    }
    /* a declared length, the body in pieces: no framing of ours */
    current = "app Content-Length, in pieces";
    size_t pieces[] = {3, 0, 4};
    cp_framing f = framing(1, 0, 7, 1, 0);
    build(&w, &f, "content-length: 7\r\n", "abcdefg", pieces, 3);
    static response r;
    read_three_ways(w.data, w.len, 0, &r);
    CHECK(r.body_len == 7 && memcmp(r.body, "abcdefg", 7) == 0 && !r.chunked, "read back");
    /* HEAD: the head only, whatever the app sends */
    current = "HEAD";
    f = framing(1, 1, -1, 1, 0);
    size_t one[] = {5};
    build(&w, &f, "", "hello", one, 1);
    read_three_ways(w.data, w.len, 1, &r);
    CHECK(r.body_len == 0 && !field(&r, "content-length"), "no body, no length");
}

static void test_error_responses(void)
{
    static const int statuses[] = {400, 408, 413, 414, 431, 500, 501, 503, 505};
    for (size_t i = 0; i < sizeof statuses / sizeof *statuses; i++) {
        char name[40];
        snprintf(name, sizeof name, "error response %d", statuses[i]);
        current = name;
        cp_buf out;
        cp_buf_init(&out, NULL, 0);
        static const char server[] = "server: carpinus\r\n";
        static const char date[] = "date: Wed, 02 Dec 2026 12:00:00 GMT\r\n";
        static const char extra[] = "x-a: 1\r\nx-b: 2\r\n";
        int with = i % 2 == 0; /* every other one without the optional lines */
        CHECK(cp_write_error_response(&out, statuses[i], with ? server : NULL,
                                      with ? sizeof server - 1 : 0, with ? date : NULL,
                                      with ? sizeof date - 1 : 0, with ? extra : NULL,
                                      with ? sizeof extra - 1 : 0) == 0,
              "written");
        static response r;
        read_three_ways(out.data, out.len, 0, &r);
        const char *reason = cp_reason_phrase(statuses[i]);
        CHECK(r.status == statuses[i] && r.body_len == strlen(reason) &&
                  memcmp(r.body, reason, r.body_len) == 0,
              "status %d, body %.*s", r.status, (int)r.body_len, r.body);
        const char *conn = field(&r, "connection");
        CHECK(conn && strcmp(conn, "close") == 0, "connection: close");
        CHECK(!with || (field(&r, "server") && field(&r, "date") && field(&r, "x-b")),
              "the configured lines");
        cp_buf_release(&out);
    }
}

int main(void)
{
    test_buf();
    test_status_lines();
    test_date_lines();
    test_fields();
    test_framing();
    test_bodies();
    test_error_responses();
    printf("test_writer: %d checks, %d failed\n", n_checks, n_failures);
    return n_failures ? 1 : 0;
}
