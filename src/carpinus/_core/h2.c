/*
 * h2.c -- HTTP/2 streams as ASGI request cycles, over libnghttp2 (h2.h).
 *
 * One nghttp2 server session per connection.  Bytes read go to
 * nghttp2_session_mem_recv(); its callbacks collect each stream's request
 * head, and when the head is complete the stream gets a RequestCycle and a
 * scope from the same code that serves HTTP/1.1 (scope.c, cycle.c).  The
 * app's send() comes back here through cycle.c: the response head that
 * response.c serialized and checked becomes the HEADERS frame, body
 * messages queue on the stream and nghttp2 pulls them as DATA when the
 * peer's window allows.
 *
 * Flow control is the app's pace: automatic WINDOW_UPDATE is off, and the
 * window is given back (nghttp2_session_consume) when the app takes body
 * bytes with receive().  So a stream holds at most its window of unread
 * body, and a connection at most the connection window.  Outbound, send()
 * waits while a stream has more than CP_H2_HIGH_WATER bytes the peer has
 * not yet let us send, or while the transport paused writing.
 *
 * Re-entrancy: nghttp2 forbids calling nghttp2_session_send() (or freeing
 * the session) from inside its callbacks, yet an app started eagerly (3.12+)
 * runs inside on_frame_recv and may send.  So `depth` counts how deep we
 * are inside nghttp2; a flush asked for inside is done when the outermost
 * call returns, and a session closed inside is freed then.
 */
#include "core.h"
#include "h2.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef CP_HAVE_NGHTTP2

#include <nghttp2/nghttp2.h>

/* Unsent response bytes on one stream past which send() waits. */
#define CP_H2_HIGH_WATER (64 * 1024)
/* Empty DATA frames (no END_STREAM) a connection may send: each costs us a
   callback and the peer nothing (CVE-2019-9518). */
#define CP_H2_MAX_EMPTY_DATA 1000
/* Streams a client may reset (CVE-2023-44487, rapid reset): a bucket of
   this many, refilled at this many per second -- nghttp2's own figures.
   nghttp2 enforces them too, but with a GOAWAY that takes effect only
   once sent: every stream opened in the rest of the same read (up to
   256 KiB of them on asyncio's transports) would still start an app.
   Terminating the session here refuses them at once. */
#define CP_H2_RESET_BURST 1000.0
#define CP_H2_RESET_RATE 33.0

typedef struct cp_h2_stream {
    int32_t id;
    struct cp_h2_stream *prev, *next; /* cp_h2.streams */
    RequestCycle *cy; /* strong, once the request head is complete */

    /* the request head as it arrives: names and values back to back in
       buf, spans into it */
    cp_buf buf;
    cp_header *fields;
    size_t nfields, fields_cap;
    cp_span method, path, authority;
    int have_method, have_path, have_authority, have_host;
    unsigned flags;         /* CP_F_PROXY_HEADERS */
    cp_buf cookie;          /* the cookie crumbs joined with "; " */
    size_t head_size;       /* as SETTINGS_MAX_HEADER_LIST_SIZE counts */
    int head_status;        /* 431 once the head is over a limit */
    int64_t content_length; /* -1: none */

    /* request body */
    int64_t body_seen;
    size_t unconsumed;  /* bytes given to the app's queue, window not yet
                           given back */
    int refused;        /* the server answered this stream itself */

    /* response body not yet framed: a FIFO of bytes objects */
    PyObject **outq;
    size_t outq_head, outq_len, outq_cap;
    size_t out_off;     /* bytes of outq[outq_head] already framed */
    size_t out_queued;  /* unframed bytes in the FIFO */
    int out_eof;        /* the app's final body message is queued */
    int deferred;       /* the data source said DEFERRED: resume on data */
    int wake;           /* out_queued fell below the high-water mark */
    /* trailer fields, sent when the data runs out (head_to_nv over a copy
       of their lines), or NULL */
    nghttp2_nv *trailer_nva;
    Py_ssize_t trailer_n;
    char *trailer_lines, *trailer_lower;
} cp_h2_stream;

typedef struct cp_h2 {
    nghttp2_session *session;
    HttpProtocol *c; /* borrowed: the connection owns this */
    cp_buf out;      /* frames nghttp2 serialized, written as one */
    int depth;       /* inside nghttp2 calls */
    int flush_wanted;
    int dead;        /* closed: free the session when depth drops to 0 */
    int goaway;      /* GOAWAY sent (graceful shutdown) */
    int flush_scheduled; /* the loop will call _flush_h2 (request_flush) */
    cp_h2_stream *streams;
    size_t n_streams;
    size_t empty_data;
    double reset_tokens; /* CP_H2_RESET_BURST's bucket */
    double reset_stamp;  /* cp_monotonic() of its last refill */
    PyObject *pending_exc; /* SystemExit / KeyboardInterrupt from an app
                              started eagerly inside a callback */
} cp_h2;

int cp_h2_available(void)
{
    return 1;
}

/* ---- streams ----------------------------------------------------------- */

static cp_h2_stream *stream_of(cp_h2 *h, int32_t id)
{
    return (cp_h2_stream *)nghttp2_session_get_stream_user_data(h->session, id);
}

static cp_h2_stream *stream_new(cp_h2 *h, int32_t id)
{
    cp_h2_stream *st = calloc(1, sizeof(*st));
    if (st == NULL) {
        return NULL;
    }
    st->id = id;
    st->content_length = -1;
    cp_buf_init(&st->buf, NULL, 0);
    cp_buf_init(&st->cookie, NULL, 0);
    st->next = h->streams;
    if (h->streams != NULL) {
        h->streams->prev = st;
    }
    h->streams = st;
    h->n_streams++;
    return st;
}

static void outq_clear(cp_h2_stream *st)
{
    for (size_t i = 0; i < st->outq_len; i++) {
        Py_DECREF(st->outq[(st->outq_head + i) % st->outq_cap]);
    }
    free(st->outq);
    st->outq = NULL;
    st->outq_head = st->outq_len = st->outq_cap = 0;
    st->out_off = st->out_queued = 0;
}

static int outq_push(cp_h2_stream *st, PyObject *b)
{
    if (st->outq_len == st->outq_cap) {
        size_t cap = st->outq_cap ? st->outq_cap * 2 : 4;
        PyObject **q = malloc(cap * sizeof(*q));
        if (q == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        for (size_t i = 0; i < st->outq_len; i++) {
            q[i] = st->outq[(st->outq_head + i) % st->outq_cap];
        }
        free(st->outq);
        st->outq = q;
        st->outq_cap = cap;
        st->outq_head = 0;
    }
    st->outq[(st->outq_head + st->outq_len) % st->outq_cap] = Py_NewRef(b);
    st->outq_len++;
    st->out_queued += (size_t)PyBytes_GET_SIZE(b);
    return 0;
}

static void trailers_free(cp_h2_stream *st)
{
    free(st->trailer_nva);
    free(st->trailer_lines);
    free(st->trailer_lower);
    st->trailer_nva = NULL;
    st->trailer_lines = st->trailer_lower = NULL;
}

/* Unlink and free a stream; its cycle hears http.disconnect if its
   response was not complete. */
static void stream_free(cp_h2 *h, cp_h2_stream *st)
{
    if (st->prev != NULL) {
        st->prev->next = st->next;
    } else {
        h->streams = st->next;
    }
    if (st->next != NULL) {
        st->next->prev = st->prev;
    }
    h->n_streams--;
    RequestCycle *cy = st->cy;
    st->cy = NULL;
    outq_clear(st);
    cp_buf_release(&st->buf);
    cp_buf_release(&st->cookie);
    free(st->fields);
    trailers_free(st);
    free(st);
    if (cy != NULL) {
        if (!cy->response_complete) {
            cp_cycle_disconnect(cy);
        }
        Py_DECREF(cy);
    }
}

/* ---- writing -------------------------------------------------------------- */

static ssize_t on_send(nghttp2_session *session, const uint8_t *data, size_t length,
                       int flags, void *user_data)
{
    (void)session;
    (void)flags;
    cp_h2 *h = user_data;
    if (cp_buf_put(&h->out, data, length) < 0) {
        return NGHTTP2_ERR_CALLBACK_FAILURE;
    }
    return (ssize_t)length;
}

static void h2_free(HttpProtocol *c);

/* Wake the send()s of streams whose backlog went below the mark. */
static void wake_writers(cp_h2 *h)
{
    HttpProtocol *c = h->c;
    for (cp_h2_stream *st = h->streams; st != NULL; st = st->next) {
        if (st->wake) {
            st->wake = 0;
            if (st->cy != NULL && !c->writing_paused) {
                cp_cycle_wake_writer(st->cy);
            }
        }
    }
}

void cp_h2_flush(HttpProtocol *c)
{
    cp_h2 *h = c->h2;
    if (h == NULL || h->dead) {
        return;
    }
    if (h->depth > 0) {
        h->flush_wanted = 1;
        return;
    }
    if (c->writing_paused) {
        /* The peer does not read: what nghttp2 has to send stays queued in
           it (resume_writing flushes), so its limits on queued frames (a
           SETTINGS or PING flood's acknowledgements) apply instead of our
           transport's buffer growing with every frame the peer sends. */
        h->flush_wanted = 1;
        return;
    }
    Py_INCREF(c);
    for (int round = 0; round < 4; round++) {
        h->flush_wanted = 0;
        h->depth++;
        int rv = nghttp2_session_send(h->session);
        h->depth--;
        if (rv != 0) {
            cp_conn_close(c);
            break;
        }
        if (h->out.len > 0) {
            PyObject *b = PyBytes_FromStringAndSize(h->out.data, (Py_ssize_t)h->out.len);
            h->out.len = 0;
            if (b == NULL || cp_conn_write(c, b) < 0) {
                PyErr_WriteUnraisable((PyObject *)c);
            }
            Py_XDECREF(b);
        }
        if (c->h2 != h || h->dead) {
            break;
        }
        wake_writers(h);
        if (c->h2 != h || h->dead || !h->flush_wanted) {
            break;
        }
    }
    if (c->h2 == h && !h->dead && !nghttp2_session_want_read(h->session) &&
        !nghttp2_session_want_write(h->session)) {
        cp_conn_close(c); /* GOAWAY exchanged and every stream done */
    }
    if (c->h2 == h && h->dead && h->depth == 0) {
        h2_free(c);
    }
    Py_DECREF(c);
}

/* Output is ready on a stream of c.  With other streams open, their apps
   are likely to answer in the same turn of the loop: write once for all of
   them, from a callback the loop runs after this turn (one write, and one
   system call, instead of one per response).  Alone, or inside nghttp2,
   as cp_h2_flush. */
static void request_flush(HttpProtocol *c)
{
    cp_h2 *h = c->h2;
    if (h == NULL || h->dead) {
        return;
    }
    if (h->depth > 0 || h->n_streams <= 1) {
        cp_h2_flush(c);
        return;
    }
    if (h->flush_scheduled) {
        return;
    }
    PyObject *cb = PyObject_GetAttr((PyObject *)c, c->server->mod->s_flush_h2);
    PyObject *handle = cb != NULL ? PyObject_CallOneArg(c->server->call_soon, cb) : NULL;
    Py_XDECREF(cb);
    if (handle == NULL) {
        PyErr_WriteUnraisable((PyObject *)c);
        cp_h2_flush(c);
        return;
    }
    Py_DECREF(handle);
    h->flush_scheduled = 1;
}

void cp_h2_scheduled_flush(HttpProtocol *c)
{
    if (c->h2 != NULL) {
        c->h2->flush_scheduled = 0;
        cp_h2_flush(c);
    }
}

/* ---- the response head ------------------------------------------------ */

/* Fields that only mean something to one HTTP/1.1 connection: an HTTP/2
   message must not carry them (RFC 9113 8.2.2). */
static int connection_specific(const char *n, size_t len)
{
    return cp_name_is(n, len, "connection", 10) || cp_name_is(n, len, "keep-alive", 10) ||
           cp_name_is(n, len, "proxy-connection", 16) ||
           cp_name_is(n, len, "transfer-encoding", 17) || cp_name_is(n, len, "upgrade", 7);
}

/* The HEADERS of a response from its HTTP/1.1 form (response.c's head, or
   a canned error response): the status line's code, then each field with
   its name lowercased, connection-specific fields dropped; up to the blank
   line, or the end.  *body_at: where the bytes after the blank line start
   (len if none).  content_length >= 0: a content-length field is added
   with that value.  status_line 0: there is none (trailer fields).  Names
   point into *lower, which the caller frees, values into head.  Returns
   the number of entries, -1 with an exception. */
static Py_ssize_t head_to_nv(const char *head, size_t len, int status_line,
                             int64_t content_length, nghttp2_nv **nva, char **lower,
                             size_t *body_at)
{
    size_t lines = 2;
    for (size_t i = 0; i < len; i++) {
        lines += head[i] == '\n';
    }
    *nva = malloc(lines * sizeof(nghttp2_nv));
    *lower = malloc(len + 4 + 24);
    if (*nva == NULL || *lower == NULL) {
        free(*nva);
        free(*lower);
        *nva = NULL;
        *lower = NULL;
        PyErr_NoMemory();
        return -1;
    }
    char *w = *lower;
    Py_ssize_t n = 0;
    *body_at = len;
    /* "HTTP/1.1 NNN Reason\r\n" */
    const char *eol = status_line ? memchr(head, '\n', len) : NULL;
    size_t pos = !status_line ? 0 : eol != NULL ? (size_t)(eol - head) + 1 : len;
    if (status_line && len >= 12) {
        memcpy(w, head + 9, 3);
        (*nva)[n++] = (nghttp2_nv){(uint8_t *)":status", (uint8_t *)w, 7, 3,
                                   NGHTTP2_NV_FLAG_NO_COPY_NAME};
        w += 3;
    }
    while (pos < len) {
        const char *line = head + pos;
        const char *end = memchr(line, '\n', len - pos);
        size_t llen = end != NULL ? (size_t)(end - line) : len - pos;
        pos += llen + (end != NULL);
        if (llen > 0 && line[llen - 1] == '\r') {
            llen--;
        }
        if (llen == 0) {
            *body_at = pos;
            break;
        }
        const char *colon = memchr(line, ':', llen);
        if (colon == NULL) {
            continue;
        }
        size_t nlen = (size_t)(colon - line);
        const char *v = colon + 1;
        while (v < line + llen && (*v == ' ' || *v == '\t')) {
            v++;
        }
        if (connection_specific(line, nlen)) {
            continue;
        }
        for (size_t i = 0; i < nlen; i++) {
            char ch = line[i];
            w[i] = (ch >= 'A' && ch <= 'Z') ? (char)(ch + 32) : ch;
        }
        (*nva)[n++] = (nghttp2_nv){(uint8_t *)w, (uint8_t *)v, nlen,
                                   (size_t)(line + llen - v), NGHTTP2_NV_FLAG_NONE};
        w += nlen;
    }
    if (content_length >= 0) {
        int vlen = snprintf(w, 24, "%lld", (long long)content_length);
        (*nva)[n++] = (nghttp2_nv){(uint8_t *)"content-length", (uint8_t *)w, 14,
                                   (size_t)vlen, NGHTTP2_NV_FLAG_NO_COPY_NAME};
    }
    return n;
}

/* nghttp2 pulls response DATA from the stream's FIFO. */
static ssize_t data_read(nghttp2_session *session, int32_t id, uint8_t *buf, size_t length,
                         uint32_t *data_flags, nghttp2_data_source *source, void *user_data)
{
    (void)user_data;
    cp_h2_stream *st = source->ptr;
    size_t n = 0;
    int was_high = st->out_queued > CP_H2_HIGH_WATER;
    while (n < length && st->outq_len > 0) {
        PyObject *b = st->outq[st->outq_head];
        size_t avail = (size_t)PyBytes_GET_SIZE(b) - st->out_off;
        size_t take = avail < length - n ? avail : length - n;
        memcpy(buf + n, PyBytes_AS_STRING(b) + st->out_off, take);
        n += take;
        st->out_off += take;
        if (st->out_off == (size_t)PyBytes_GET_SIZE(b)) {
            st->outq_head = (st->outq_head + 1) % st->outq_cap;
            st->outq_len--;
            st->out_off = 0;
            Py_DECREF(b); /* a bytes object: no code runs */
        }
    }
    st->out_queued -= n;
    if (was_high && st->out_queued <= CP_H2_HIGH_WATER) {
        st->wake = 1;
    }
    if (st->outq_len == 0 && st->out_eof) {
        *data_flags |= NGHTTP2_DATA_FLAG_EOF;
        if (st->trailer_nva != NULL) {
            /* the stream ends with the trailers' HEADERS, not this DATA */
            *data_flags |= NGHTTP2_DATA_FLAG_NO_END_STREAM;
            int rv = nghttp2_submit_trailer(session, id, st->trailer_nva, (size_t)st->trailer_n);
            trailers_free(st);
            if (rv != 0) {
                return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE; /* resets the stream */
            }
        }
    } else if (n == 0) {
        st->deferred = 1;
        return NGHTTP2_ERR_DEFERRED;
    }
    return (ssize_t)n;
}

/* Submit a response the server makes itself (status, from
   cp_error_response) on a stream whose app has not answered. */
static int submit_canned(cp_h2 *h, cp_h2_stream *st, int status)
{
    PyObject *resp = cp_error_response(h->c->server, status);
    if (resp == NULL) {
        return -1;
    }
    nghttp2_nv *nva;
    char *lower;
    size_t body_at;
    const char *p = PyBytes_AS_STRING(resp);
    size_t len = (size_t)PyBytes_GET_SIZE(resp);
    Py_ssize_t n = head_to_nv(p, len, 1, -1, &nva, &lower, &body_at);
    if (n < 0) {
        Py_DECREF(resp);
        return -1;
    }
    outq_clear(st);
    int rc = 0;
    if (body_at < len) {
        PyObject *body = PyBytes_FromStringAndSize(p + body_at, (Py_ssize_t)(len - body_at));
        if (body == NULL || outq_push(st, body) < 0) {
            rc = -1;
        }
        Py_XDECREF(body);
    }
    st->out_eof = 1;
    if (rc == 0) {
        nghttp2_data_provider prd = {.source = {.ptr = st}, .read_callback = data_read};
        if (nghttp2_submit_response(h->session, st->id, nva, (size_t)n,
                                    st->outq_len ? &prd : NULL) != 0) {
            rc = 0; /* the stream is gone: nothing to answer */
        }
    }
    free(nva);
    free(lower);
    Py_DECREF(resp);
    return rc;
}

/* The server answers a stream itself (431, 413, 503, ...), logs it, and
   stops reading its body. */
static void refuse(cp_h2 *h, cp_h2_stream *st, int status, const char *reason)
{
    HttpProtocol *c = h->c;
    ServerState *s = c->server;
    st->refused = 1;
    cp_count_refusal(s, status);
    if (s->metrics) {
        cp_metrics_response(s, status, 0);
    }
    if (submit_canned(h, st, status) < 0) {
        PyErr_WriteUnraisable((PyObject *)c);
    }
    PyObject *request = NULL;
    if (s->report_refusal != NULL) {
        request = Py_BuildValue("(s#y#s)", st->have_method ? st->buf.data + st->method.off : "",
                                (Py_ssize_t)(st->have_method ? st->method.len : 0),
                                st->have_path ? st->buf.data + st->path.off : "",
                                (Py_ssize_t)(st->have_path ? st->path.len : 0), "2");
        if (request == NULL) {
            PyErr_WriteUnraisable((PyObject *)c);
        } else {
            cp_conn_report_refusal(c, status, reason, request);
            Py_DECREF(request);
        }
    }
}

/* ---- the request head --------------------------------------------------- */

static int on_begin_headers(nghttp2_session *session, const nghttp2_frame *frame,
                            void *user_data)
{
    cp_h2 *h = user_data;
    if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST) {
        return 0;
    }
    cp_h2_stream *st = stream_new(h, frame->hd.stream_id);
    if (st == NULL ||
        nghttp2_session_set_stream_user_data(session, frame->hd.stream_id, st) != 0) {
        if (st != NULL) {
            stream_free(h, st);
        }
        return NGHTTP2_ERR_CALLBACK_FAILURE;
    }
    HttpProtocol *c = h->c;
    c->deadline = 0; /* a request is being served: no idle timeout */
    return 0;
}

static int put_span(cp_buf *b, const uint8_t *p, size_t n, cp_span *span)
{
    if (b->len + n > UINT32_MAX || cp_buf_put(b, p, n) < 0) {
        return -1;
    }
    span->off = (uint32_t)(b->len - n);
    span->len = (uint32_t)n;
    return 0;
}

static int add_field(cp_h2_stream *st, const uint8_t *name, size_t nlen, const uint8_t *value,
                     size_t vlen)
{
    if (st->nfields == st->fields_cap) {
        size_t cap = st->fields_cap ? st->fields_cap * 2 : 16;
        cp_header *f = realloc(st->fields, cap * sizeof(*f));
        if (f == NULL) {
            return -1;
        }
        st->fields = f;
        st->fields_cap = cap;
    }
    cp_header *hd = &st->fields[st->nfields];
    if (put_span(&st->buf, name, nlen, &hd->name) < 0 ||
        put_span(&st->buf, value, vlen, &hd->value) < 0) {
        return -1;
    }
    st->nfields++;
    return 0;
}

#define NAME_IS(lit) (nlen == sizeof(lit) - 1 && memcmp(name, lit, sizeof(lit) - 1) == 0)

static int on_header(nghttp2_session *session, const nghttp2_frame *frame, const uint8_t *name,
                     size_t nlen, const uint8_t *value, size_t vlen, uint8_t flags,
                     void *user_data)
{
    (void)flags;
    cp_h2 *h = user_data;
    if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST) {
        return 0; /* trailers: nothing in ASGI carries request trailers */
    }
    cp_h2_stream *st = stream_of(h, frame->hd.stream_id);
    if (st == NULL || st->head_status) {
        return 0;
    }
    ServerState *s = h->c->server;
    /* RFC 9113's measure of a field list: each field's name and value plus
       32.  The HPACK bomb (a small block decoding to a huge list) stops
       here: nothing past the limit is kept. */
    st->head_size += nlen + vlen + 32;
    if (st->head_size > s->h2_max_header_list_size || st->nfields >= s->limits.max_headers) {
        st->head_status = 431;
        return 0;
    }
    (void)session;
    int rc = 0;
    if (nlen > 0 && name[0] == ':') {
        if (NAME_IS(":method")) {
            rc = put_span(&st->buf, value, vlen, &st->method);
            st->have_method = 1;
        } else if (NAME_IS(":path")) {
            rc = put_span(&st->buf, value, vlen, &st->path);
            st->have_path = 1;
        } else if (NAME_IS(":authority")) {
            rc = put_span(&st->buf, value, vlen, &st->authority);
            st->have_authority = 1;
        }
        /* :scheme: the connection's own scheme is the scope's (as on
           HTTP/1.1, where the request line's absolute form does not set
           it either); proxy headers may change it. */
    } else if (NAME_IS("cookie")) {
        /* crumbs are joined again (RFC 9113 8.2.3): ASGI has one field */
        if ((st->cookie.len > 0 && cp_buf_put(&st->cookie, "; ", 2) < 0) ||
            cp_buf_put(&st->cookie, value, vlen) < 0) {
            rc = -1;
        }
    } else {
        if (NAME_IS("host")) {
            st->have_host = 1;
        } else if (NAME_IS("content-length")) {
            int64_t cl;
            if (cp_parse_length((const char *)value, vlen, &cl) == 0) {
                st->content_length = cl;
            }
        } else if (NAME_IS("forwarded") || NAME_IS("x-forwarded-for") ||
                   NAME_IS("x-forwarded-proto") || NAME_IS("x-forwarded-host")) {
            st->flags |= CP_F_PROXY_HEADERS;
        }
        rc = add_field(st, name, nlen, value, vlen);
    }
    return rc < 0 ? NGHTTP2_ERR_CALLBACK_FAILURE : 0;
}

#undef NAME_IS

/* The request's fields for the scope: `host` from :authority first when
   the request has none of its own, then the fields as sent, then the
   joined cookie.  Spans into st->buf.  -1: no memory. */
static int finish_fields(cp_h2_stream *st)
{
    int add_host = st->have_authority && !st->have_host;
    int add_cookie = st->cookie.len > 0;
    size_t n = st->nfields + (size_t)add_host + (size_t)add_cookie;
    cp_header *f = malloc((n ? n : 1) * sizeof(*f));
    if (f == NULL) {
        return -1;
    }
    size_t i = 0;
    if (add_host) {
        cp_span name;
        if (put_span(&st->buf, (const uint8_t *)"host", 4, &name) < 0) {
            free(f);
            return -1;
        }
        f[i++] = (cp_header){name, st->authority};
    }
    if (st->nfields > 0) {
        memcpy(f + i, st->fields, st->nfields * sizeof(*f));
        i += st->nfields;
    }
    if (add_cookie) {
        cp_header ck;
        if (put_span(&st->buf, (const uint8_t *)"cookie", 6, &ck.name) < 0 ||
            put_span(&st->buf, (const uint8_t *)st->cookie.data, st->cookie.len, &ck.value) < 0) {
            free(f);
            return -1;
        }
        f[i++] = ck;
    }
    free(st->fields);
    st->fields = f;
    st->nfields = st->fields_cap = n;
    return 0;
}

/* The stream's request head is complete: answer it ourselves, or give it
   a RequestCycle and start the app.  -1 only for a failure of nghttp2's
   session (no memory). */
static int start_request(cp_h2 *h, cp_h2_stream *st, int end_stream)
{
    HttpProtocol *c = h->c;
    ServerState *s = c->server;
    s->stats.requests_total++;
    if (st->head_status) {
        refuse(h, st, st->head_status, "request header list too large");
        return 0;
    }
    if (!st->have_method || !st->have_path) {
        refuse(h, st, 501, "CONNECT is not served"); /* nghttp2 let only CONNECT through */
        return 0;
    }
    if (st->content_length >= 0 && s->max_body >= 0 && st->content_length > s->max_body) {
        refuse(h, st, 413, "Content-Length over limit_request_body");
        return 0;
    }
    if (s->limit_concurrency >= 0 && s->n_tasks >= s->limit_concurrency) {
        refuse(h, st, 503, "limit_concurrency reached");
        return 0;
    }
    if (finish_fields(st) < 0) {
        return -1;
    }
    const char *base = st->buf.data;
    cp_request req;
    memset(&req, 0, sizeof(req));
    req.method = st->method;
    req.method_id = cp_method_id(base + st->method.off, st->method.len);
    req.target = st->path;
    req.path = st->path;
    const char *q = memchr(base + st->path.off, '?', st->path.len);
    if (q != NULL) {
        uint32_t at = (uint32_t)(q - base);
        req.path.len = at - st->path.off;
        req.query.off = at + 1;
        req.query.len = st->path.off + st->path.len - at - 1;
    }
    req.http_minor = 2;
    req.num_headers = st->nfields;
    req.content_length = st->content_length;
    req.flags = st->flags;

    PyObject *scope = cp_build_scope(s, c, base, &req, st->fields);
    if (scope != NULL && c->proxy_trusted && (req.flags & CP_F_PROXY_HEADERS)) {
        PyObject *fixed = PyObject_CallOneArg(s->proxy_fixup, scope);
        if (fixed == NULL) {
            Py_CLEAR(scope);
        }
        Py_XDECREF(fixed);
    }
    RequestCycle *cy = scope != NULL ? cp_cycle_new(s, c) : NULL;
    if (cy == NULL) {
        PyErr_WriteUnraisable((PyObject *)c);
        Py_XDECREF(scope);
        refuse(h, st, 500, "internal error");
        return 0;
    }
    cy->stream_id = st->id;
    cy->is_head = req.method_id == CP_METHOD_HEAD;
    cy->framing.http_minor = 1;
    cy->framing.keep_alive = 1;
    cy->trailers_allowed = 1;
    cy->body_complete = end_stream;
    st->cy = cy; /* the stream's reference */
    cp_buf_release(&st->cookie);
    Py_INCREF(cy);
    int rc = cp_cycle_start(cy, scope); /* may run the whole app (eager) */
    Py_DECREF(scope);
    if (rc < 0) {
        if (cp_err_must_propagate()) {
            if (h->pending_exc == NULL) {
                h->pending_exc = cp_err_take();
            } else {
                PyErr_Clear();
            }
        } else {
            PyErr_WriteUnraisable((PyObject *)c);
        }
        if (!cy->response_complete && !cy->wire_started && st->cy == cy) {
            cy->response_complete = 1;
            refuse(h, st, 500, "internal error");
        }
    }
    Py_DECREF(cy);
    return 0;
}

/* One stream reset by the client: take a token, or end the connection. */
static int count_reset(cp_h2 *h)
{
    double now = cp_monotonic();
    h->reset_tokens += (now - h->reset_stamp) * CP_H2_RESET_RATE;
    if (h->reset_tokens > CP_H2_RESET_BURST) {
        h->reset_tokens = CP_H2_RESET_BURST;
    }
    h->reset_stamp = now;
    if (h->reset_tokens < 1.0) {
        nghttp2_session_terminate_session(h->session, NGHTTP2_ENHANCE_YOUR_CALM);
        return 0;
    }
    h->reset_tokens -= 1.0;
    return 0;
}

static int on_frame_recv(nghttp2_session *session, const nghttp2_frame *frame, void *user_data)
{
    (void)session;
    cp_h2 *h = user_data;
    int end_stream = (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0;
    cp_h2_stream *st;
    switch (frame->hd.type) {
    case NGHTTP2_HEADERS:
        st = stream_of(h, frame->hd.stream_id);
        if (st == NULL) {
            return 0;
        }
        if (frame->headers.cat == NGHTTP2_HCAT_REQUEST) {
            return start_request(h, st, end_stream) < 0 ? NGHTTP2_ERR_CALLBACK_FAILURE : 0;
        }
        if (end_stream && st->cy != NULL) { /* trailers end the body */
            cp_cycle_body_done(st->cy);
        }
        return 0;
    case NGHTTP2_DATA:
        if (frame->hd.length == 0 && !end_stream &&
            ++h->empty_data > CP_H2_MAX_EMPTY_DATA) {
            nghttp2_session_terminate_session(h->session, NGHTTP2_ENHANCE_YOUR_CALM);
            return 0;
        }
        st = stream_of(h, frame->hd.stream_id);
        if (st != NULL && end_stream && st->cy != NULL) {
            cp_cycle_body_done(st->cy);
        }
        return 0;
    case NGHTTP2_RST_STREAM:
        return count_reset(h);
    default:
        return 0;
    }
}

static int on_data_chunk_recv(nghttp2_session *session, uint8_t flags, int32_t id,
                              const uint8_t *data, size_t len, void *user_data)
{
    (void)flags;
    cp_h2 *h = user_data;
    ServerState *s = h->c->server;
    cp_h2_stream *st = stream_of(h, id);
    s->stats.body_bytes += len;
    if (st == NULL || st->cy == NULL || st->refused) {
        nghttp2_session_consume(session, id, len);
        return 0;
    }
    RequestCycle *cy = st->cy;
    st->body_seen += (int64_t)len;
    if (s->max_body >= 0 && st->body_seen > s->max_body) {
        nghttp2_session_consume(session, id, len);
        if (!cy->wire_started && !cy->response_started) {
            cy->response_complete = 1;
            cp_cycle_disconnect(cy);
            refuse(h, st, 413, "body over limit_request_body");
        } else {
            cp_cycle_disconnect(cy);
            nghttp2_submit_rst_stream(session, NGHTTP2_FLAG_NONE, id, NGHTTP2_CANCEL);
        }
        return 0;
    }
    if (cy->disconnected || cy->body_final_sent || cy->response_complete) {
        nghttp2_session_consume(session, id, len);
        s->stats.body_bytes_drained += len;
        return 0;
    }
    PyObject *b = PyBytes_FromStringAndSize((const char *)data, (Py_ssize_t)len);
    if (b == NULL) {
        return NGHTTP2_ERR_CALLBACK_FAILURE;
    }
    st->unconsumed += len;
    s->stats.body_bytes_copied += len;
    if (cp_cycle_push_body(cy, b, 0) < 0) {
        return NGHTTP2_ERR_CALLBACK_FAILURE;
    }
    return 0;
}

static int on_stream_close(nghttp2_session *session, int32_t id, uint32_t error_code,
                           void *user_data)
{
    (void)error_code;
    cp_h2 *h = user_data;
    cp_h2_stream *st = stream_of(h, id);
    if (st == NULL) {
        return 0;
    }
    if (st->unconsumed > 0) {
        nghttp2_session_consume_connection(session, st->unconsumed);
    }
    nghttp2_session_set_stream_user_data(session, id, NULL);
    stream_free(h, st); /* a reset (or a stream cut short) is http.disconnect */
    HttpProtocol *c = h->c;
    if (h->n_streams == 0 && !h->dead) {
        /* idle: the keep-alive timeout runs again */
        c->deadline = cp_server_now(c->server) + c->server->timeout_keep_alive;
        c->deadline_kind = CP_DL_KEEP_ALIVE;
    }
    return 0;
}

/* ---- the connection ------------------------------------------------------ */

/* End a connection.  A closing transport waits to flush what it holds, and
   a TLS one for the peer's close_notify (uvloop: up to 30 s), reading and
   dropping whatever the peer sends meanwhile; a peer that does not read can
   make that wait as long as it likes.  So the transport is aborted when
   writing is paused, or when the peer flooded us (`flooded`): it gets its
   GOAWAY only if that could be written at once. */
static void drop_connection(HttpProtocol *c, int flooded)
{
    int stuck = c->writing_paused || flooded;
    PyObject *transport = Py_XNewRef(c->transport);
    cp_conn_close(c);
    if (stuck && transport != NULL && !c->lost) {
        PyObject *r = PyObject_CallMethodNoArgs(transport, c->server->mod->s_abort);
        if (r == NULL) {
            PyErr_WriteUnraisable((PyObject *)c);
        }
        Py_XDECREF(r);
    }
    Py_XDECREF(transport);
}

int cp_h2_begin(HttpProtocol *c)
{
    ServerState *s = c->server;
    cp_h2 *h = calloc(1, sizeof(*h));
    if (h == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    h->reset_tokens = CP_H2_RESET_BURST;
    h->reset_stamp = cp_monotonic();
    h->c = c;
    cp_buf_init(&h->out, NULL, 0);
    nghttp2_session_callbacks *cbs = NULL;
    nghttp2_option *opt = NULL;
    int rv = nghttp2_session_callbacks_new(&cbs);
    if (rv == 0) {
        nghttp2_session_callbacks_set_send_callback(cbs, on_send);
        nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, on_begin_headers);
        nghttp2_session_callbacks_set_on_header_callback(cbs, on_header);
        nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, on_frame_recv);
        nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, on_data_chunk_recv);
        nghttp2_session_callbacks_set_on_stream_close_callback(cbs, on_stream_close);
        rv = nghttp2_option_new(&opt);
    }
    if (rv == 0) {
        /* the window is given back as the app reads (cp_h2_body_consumed) */
        nghttp2_option_set_no_auto_window_update(opt, 1);
        /* streams past our SETTINGS_MAX_CONCURRENT_STREAMS are refused by
           nghttp2 even before the peer has acknowledged them */
        nghttp2_option_set_max_deflate_dynamic_table_size(opt, 4096);
        rv = nghttp2_session_server_new2(&h->session, cbs, h, opt);
    }
    if (cbs != NULL) {
        nghttp2_session_callbacks_del(cbs);
    }
    if (opt != NULL) {
        nghttp2_option_del(opt);
    }
    if (rv == 0) {
        nghttp2_settings_entry iv[] = {
            {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, (uint32_t)s->h2_max_concurrent_streams},
            {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, (uint32_t)s->h2_initial_window_size},
            {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, (uint32_t)s->h2_max_header_list_size},
        };
        rv = nghttp2_submit_settings(h->session, NGHTTP2_FLAG_NONE, iv,
                                     sizeof(iv) / sizeof(iv[0]));
    }
    if (rv == 0 && s->h2_connection_window_size > NGHTTP2_INITIAL_CONNECTION_WINDOW_SIZE) {
        rv = nghttp2_session_set_local_window_size(h->session, NGHTTP2_FLAG_NONE, 0,
                                                   (int32_t)s->h2_connection_window_size);
    }
    if (rv != 0) {
        if (h->session != NULL) {
            nghttp2_session_del(h->session);
        }
        cp_buf_release(&h->out);
        free(h);
        PyErr_Format(PyExc_RuntimeError, "HTTP/2 session: %s", nghttp2_strerror(rv));
        return -1;
    }
    c->h2 = h;
    cp_conn_enter(c, CP_ST_H2);
    s->stats.h2_connections++;
    cp_h2_flush(c);
    return 0;
}

int cp_h2_feed(HttpProtocol *c)
{
    cp_h2 *h = c->h2;
    if (h == NULL || h->dead) {
        c->rpos = c->rlen;
        return 0;
    }
    const uint8_t *p = (const uint8_t *)cp_conn_data(c) + c->rpos;
    size_t n = c->rlen - c->rpos;
    c->rpos = c->rlen;
    Py_INCREF(c);
    h->depth++;
    ssize_t rv = nghttp2_session_mem_recv(h->session, p, n);
    h->depth--;
    PyObject *exc = h->pending_exc;
    h->pending_exc = NULL;
    int rc = 0;
    if (rv < 0 && !h->dead) {
        /* a connection error: nghttp2 queued its GOAWAY; send it, close */
        nghttp2_session_terminate_session(h->session, NGHTTP2_PROTOCOL_ERROR);
        cp_h2_flush(c);
        drop_connection(c, rv == NGHTTP2_ERR_FLOODED);
        rc = -1;
    } else {
        cp_h2_flush(c);
    }
    if (c->h2 == h && h->dead && h->depth == 0) {
        h2_free(c);
    }
    Py_DECREF(c);
    if (exc != NULL) {
        cp_err_restore(exc);
        return -2;
    }
    return rc;
}

static void h2_free(HttpProtocol *c)
{
    cp_h2 *h = c->h2;
    c->h2 = NULL;
    while (h->streams != NULL) {
        stream_free(h, h->streams);
    }
    nghttp2_session_del(h->session);
    cp_buf_release(&h->out);
    Py_XDECREF(h->pending_exc);
    free(h);
}

void cp_h2_close(HttpProtocol *c)
{
    cp_h2 *h = c->h2;
    if (h == NULL || h->dead) {
        return;
    }
    h->dead = 1;
    /* every app still serving a stream hears http.disconnect now */
    for (cp_h2_stream *st = h->streams; st != NULL; st = st->next) {
        if (st->cy != NULL && !st->cy->response_complete) {
            st->cy->response_complete = 1;
            cp_cycle_disconnect(st->cy);
        }
    }
    if (h->depth == 0) {
        h2_free(c);
    }
}

void cp_h2_shutdown(HttpProtocol *c)
{
    cp_h2 *h = c->h2;
    if (h == NULL || h->dead || h->goaway) {
        return;
    }
    h->goaway = 1;
    int32_t last = nghttp2_session_get_last_proc_stream_id(h->session);
    nghttp2_submit_goaway(h->session, NGHTTP2_FLAG_NONE, last, NGHTTP2_NO_ERROR, NULL, 0);
    cp_h2_flush(c);
    if (c->h2 == h && !h->dead && h->n_streams == 0) {
        cp_conn_close(c);
    }
}

void cp_h2_idle_timeout(HttpProtocol *c)
{
    cp_h2 *h = c->h2;
    if (h != NULL && !h->dead) {
        nghttp2_session_terminate_session(h->session, NGHTTP2_NO_ERROR);
        cp_h2_flush(c);
    }
    drop_connection(c, 0);
}

void cp_h2_resume_writing(HttpProtocol *c)
{
    cp_h2 *h = c->h2;
    if (h == NULL || h->dead) {
        return;
    }
    cp_h2_flush(c);
    if (c->h2 != h || h->dead) {
        return;
    }
    for (cp_h2_stream *st = h->streams; st != NULL; st = st->next) {
        if (st->cy != NULL && st->out_queued <= CP_H2_HIGH_WATER) {
            cp_cycle_wake_writer(st->cy);
        }
    }
}

size_t cp_h2_open_streams(const HttpProtocol *c)
{
    return c->h2 != NULL ? c->h2->n_streams : 0;
}

int cp_h2_traverse(HttpProtocol *c, visitproc visit, void *arg)
{
    if (c->h2 == NULL) {
        return 0;
    }
    for (cp_h2_stream *st = c->h2->streams; st != NULL; st = st->next) {
        Py_VISIT(st->cy);
    }
    return 0;
}

/* ---- the request cycle's side ------------------------------------------ */

static cp_h2 *live_h2(RequestCycle *cy)
{
    HttpProtocol *c = cy->conn;
    if (c == NULL || c->h2 == NULL || c->h2->dead) {
        return NULL;
    }
    return c->h2;
}

/* The stream the cycle's response goes to, and (*h) its session; NULL
   with ClientDisconnected when the stream was reset, closed, or answered
   by the server itself. */
static cp_h2_stream *writable_stream(RequestCycle *cy, cp_h2 **h)
{
    *h = live_h2(cy);
    cp_h2_stream *st = *h != NULL ? stream_of(*h, cy->stream_id) : NULL;
    if (st == NULL || st->refused) {
        PyErr_SetString(cy->server->mod->ClientDisconnected, "The stream is closed.");
        return NULL;
    }
    return st;
}

void cp_h2_body_consumed(RequestCycle *cy, size_t n)
{
    cp_h2 *h = live_h2(cy);
    if (h == NULL || n == 0) {
        return;
    }
    cp_h2_stream *st = stream_of(h, cy->stream_id);
    if (st == NULL) {
        return;
    }
    if (n > st->unconsumed) {
        n = st->unconsumed;
    }
    st->unconsumed -= n;
    nghttp2_session_consume(h->session, cy->stream_id, n);
    if (nghttp2_session_want_write(h->session)) {
        request_flush(cy->conn);
    }
}

/* The stream has data (or its end) again for a data source that said
   DEFERRED. */
static void resume(cp_h2 *h, cp_h2_stream *st)
{
    if (st->deferred && (st->outq_len > 0 || st->out_eof)) {
        st->deferred = 0;
        nghttp2_session_resume_data(h->session, st->id);
    }
}

int cp_h2_write(RequestCycle *cy, cp_body_parts *parts)
{
    cp_h2 *h;
    cp_h2_stream *st = writable_stream(cy, &h);
    if (st == NULL) {
        return -1;
    }
    if (parts->first) {
        nghttp2_nv *nva;
        char *lower;
        size_t body_at;
        /* a body in one message gets its length, as on HTTP/1.1 (writer.c) */
        const cp_framing *f = &cy->framing;
        int64_t length = !parts->more_body && f->length < 0 && !f->no_body
                             ? (int64_t)parts->body_len
                             : -1;
        Py_ssize_t n =
            head_to_nv(cy->head.data, cy->head.len, 1, length, &nva, &lower, &body_at);
        if (n < 0) {
            return -1;
        }
        /* HEADERS alone end the stream unless data or trailers follow */
        int with_data = parts->more_body || parts->body != NULL || cy->trailers_expected;
        nghttp2_data_provider prd = {.source = {.ptr = st}, .read_callback = data_read};
        int rv = nghttp2_submit_response(h->session, cy->stream_id, nva, (size_t)n,
                                         with_data ? &prd : NULL);
        free(nva);
        free(lower);
        if (rv != 0) {
            PyErr_Format(cy->server->mod->ClientDisconnected, "The stream is closed (%s).",
                         nghttp2_strerror(rv));
            return -1;
        }
    }
    if (parts->body != NULL && outq_push(st, parts->body) < 0) {
        return -1;
    }
    if (!parts->more_body && !cy->trailers_expected) {
        st->out_eof = 1;
    }
    resume(h, st);
    request_flush(cy->conn);
    return 0;
}

int cp_h2_trailers(RequestCycle *cy)
{
    cp_h2 *h;
    cp_h2_stream *st = writable_stream(cy, &h);
    if (st == NULL) {
        return -1;
    }
    trailers_free(st);
    size_t len = cy->head.len, body_at;
    st->trailer_lines = malloc(len + 1);
    if (st->trailer_lines == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    if (len > 0) {
        memcpy(st->trailer_lines, cy->head.data, len);
    }
    st->trailer_n = head_to_nv(st->trailer_lines, len, 0, -1, &st->trailer_nva,
                               &st->trailer_lower, &body_at);
    if (st->trailer_n < 0) {
        trailers_free(st);
        return -1;
    }
    if (st->trailer_n == 0) {
        trailers_free(st); /* no fields: the DATA ends the stream */
    }
    st->out_eof = 1;
    resume(h, st);
    request_flush(cy->conn);
    return 0;
}

int cp_h2_must_wait(RequestCycle *cy)
{
    cp_h2 *h = live_h2(cy);
    if (h == NULL || cy->conn->lost) {
        return 0;
    }
    if (cy->conn->writing_paused) {
        return 1;
    }
    cp_h2_stream *st = stream_of(h, cy->stream_id);
    return st != NULL && st->out_queued > CP_H2_HIGH_WATER;
}

void cp_h2_app_failed(HttpProtocol *c, RequestCycle *cy)
{
    cp_h2 *h = c->h2;
    if (h == NULL || h->dead) {
        return;
    }
    cp_h2_stream *st = stream_of(h, cy->stream_id);
    if (st == NULL) {
        return;
    }
    if (!cy->wire_started) {
        cy->status = 500;
        if (submit_canned(h, st, 500) < 0) {
            PyErr_WriteUnraisable((PyObject *)cy);
        }
        if (cy->server->metrics) {
            cp_metrics_response(cy->server, 500, cy->started);
        }
        cp_cycle_access_log(cy, 500, (int64_t)strlen(cp_reason_phrase(500)));
    } else {
        nghttp2_submit_rst_stream(h->session, NGHTTP2_FLAG_NONE, cy->stream_id,
                                  NGHTTP2_INTERNAL_ERROR);
    }
    request_flush(c);
}

int cp_h2_early_hint(RequestCycle *cy, const char *head, size_t len)
{
    cp_h2 *h;
    cp_h2_stream *st = writable_stream(cy, &h);
    if (st == NULL) {
        return -1;
    }
    nghttp2_nv *nva;
    char *lower;
    size_t body_at;
    Py_ssize_t n = head_to_nv(head, len, 1, -1, &nva, &lower, &body_at);
    if (n < 0) {
        return -1;
    }
    /* an interim response: HEADERS without END_STREAM before the final one */
    int rv = nghttp2_submit_headers(h->session, NGHTTP2_FLAG_NONE, cy->stream_id, NULL, nva,
                                    (size_t)n, NULL);
    free(nva);
    free(lower);
    if (rv < 0) {
        PyErr_Format(cy->server->mod->ClientDisconnected, "The stream is closed (%s).",
                     nghttp2_strerror(rv));
        return -1;
    }
    request_flush(cy->conn);
    return 0;
}

#else /* !CP_HAVE_NGHTTP2: HTTP/1.1 only */

int cp_h2_available(void)
{
    return 0;
}

int cp_h2_begin(HttpProtocol *c)
{
    (void)c;
    PyErr_SetString(PyExc_RuntimeError,
                    "HTTP/2 needs libnghttp2: carpinus was built without it "
                    "(install libnghttp2-dev and pkg-config, then rebuild)");
    return -1;
}

int cp_h2_feed(HttpProtocol *c)
{
    c->rpos = c->rlen;
    return 0;
}

void cp_h2_flush(HttpProtocol *c)
{
    (void)c;
}

void cp_h2_scheduled_flush(HttpProtocol *c)
{
    (void)c;
}

void cp_h2_close(HttpProtocol *c)
{
    (void)c;
}

void cp_h2_shutdown(HttpProtocol *c)
{
    cp_conn_close(c);
}

void cp_h2_idle_timeout(HttpProtocol *c)
{
    cp_conn_close(c);
}

void cp_h2_resume_writing(HttpProtocol *c)
{
    (void)c;
}

size_t cp_h2_open_streams(const HttpProtocol *c)
{
    (void)c;
    return 0;
}

int cp_h2_traverse(HttpProtocol *c, visitproc visit, void *arg)
{
    (void)c;
    (void)visit;
    (void)arg;
    return 0;
}

void cp_h2_body_consumed(RequestCycle *cy, size_t n)
{
    (void)cy;
    (void)n;
}

int cp_h2_write(RequestCycle *cy, cp_body_parts *parts)
{
    (void)parts;
    PyErr_SetString(cy->server->mod->ClientDisconnected, "The stream is closed.");
    return -1;
}

int cp_h2_trailers(RequestCycle *cy)
{
    PyErr_SetString(cy->server->mod->ClientDisconnected, "The stream is closed.");
    return -1;
}

int cp_h2_early_hint(RequestCycle *cy, const char *head, size_t len)
{
    (void)head;
    (void)len;
    PyErr_SetString(cy->server->mod->ClientDisconnected, "The stream is closed.");
    return -1;
}

int cp_h2_must_wait(RequestCycle *cy)
{
    (void)cy;
    return 0;
}

void cp_h2_app_failed(HttpProtocol *c, RequestCycle *cy)
{
    (void)c;
    (void)cy;
}

#endif /* CP_HAVE_NGHTTP2 */
