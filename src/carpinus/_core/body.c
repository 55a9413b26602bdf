/*
 * body.c -- a request's body, from the bytes read to the app's queue.
 *
 * A body is delimited by its Content-Length or by chunked encoding; it
 * reaches the app through the request cycle's queue (cycle.c), or is read
 * and dropped (DRAIN) when the response came before it and what is left is
 * small enough to keep the connection.
 *
 * Content-Length: the bytes of each read go to the app as one bytes object
 * -- or, with the zero_copy_body optimization, a body of 16 KiB to 4 MiB is
 * read by the kernel straight into the bytes object the app will get
 * (get_buffer hands out a view of it), so it is copied once, by the kernel.
 * A body that arrives at full speed lands in that object whole; one that is
 * late while the app waits is cut to what has arrived and handed over, and
 * the rest streams in as usual (cp_body_tick).
 *
 * Chunked: the decoder (chunked.c) finds the data of every chunk in a read;
 * it goes to the app as one bytes object per read, not one per chunk.
 *
 * The body never changes the connection's state itself: when it ends,
 * cp_conn_enter() (protocol.c) takes the connection to WAIT_RESPONSE, or
 * back to HEAD after a drain.
 */
#include "core.h"

#include <string.h>

/* body bytes we read and drop to keep a connection after an early response */
#define DRAIN_MAX (64 * 1024)

/* Should this request's body be read straight into its final bytes object?
   Only for a known length in [threshold, CP_ZERO_COPY_MAX]: the app then gets
   the whole body as one bytes object in one http.request message. */
static int zc_wanted(const ServerState *s, uint64_t length)
{
    return (s->opts & CP_OPT_ZERO_COPY_BODY) && length >= s->zero_copy_threshold &&
           length <= CP_ZERO_COPY_MAX && s->zc_pending + length <= CP_ZERO_COPY_BUDGET;
}

/* The body object leaves the connection: give its size back to the budget. */
void cp_body_release(HttpProtocol *c)
{
    if (c->zc_body != NULL && c->server != NULL) {
        c->server->zc_pending -= (size_t)PyBytes_GET_SIZE(c->zc_body);
    }
}

/* The body object is full: hand it to the request (or drop it). */
static int zc_deliver(HttpProtocol *c)
{
    cp_body_release(c);
    PyObject *body = c->zc_body;
    c->zc_body = NULL;
    c->zc_fill = 0;
    if (c->state == CP_ST_BODY && c->cycle != NULL) {
        return cp_cycle_push_body(c->cycle, body, 1); /* steals body */
    }
    Py_DECREF(body);
    return 0;
}

void cp_body_drop(HttpProtocol *c)
{
    cp_body_release(c);
    Py_CLEAR(c->zc_body);
    c->zc_fill = 0;
}

/* The app waits in receive() and the body is late: give it what has
   arrived, cut to size (the object is ours alone: no transport keeps a view
   of it between reads), and let the rest stream in as it comes. */
static int zc_give_partial(HttpProtocol *c)
{
    cp_body_release(c);
    PyObject *body = c->zc_body;
    Py_ssize_t fill = (Py_ssize_t)c->zc_fill;
    c->zc_body = NULL;
    c->zc_fill = 0;
    if (_PyBytes_Resize(&body, fill) < 0) {
        return -1; /* body is freed */
    }
    return cp_cycle_push_body(c->cycle, body, 0); /* steals body */
}

int cp_body_begin(HttpProtocol *c, const cp_request *req)
{
    ServerState *s = c->server;
    c->body_seen = 0;
    if (req->flags & CP_F_CHUNKED) {
        c->body_mode = CP_BODY_CHUNKED;
        cp_chunked_init(&c->chunked);
        return 0;
    }
    if (req->content_length <= 0) {
        c->body_mode = CP_BODY_NONE;
        return 0;
    }
    c->body_mode = CP_BODY_LENGTH;
    c->body_remaining = (uint64_t)req->content_length;
    if (zc_wanted(s, c->body_remaining)) {
        c->zc_body = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)c->body_remaining);
        if (c->zc_body == NULL) {
            return -1;
        }
        c->zc_fill = 0;
        c->zc_ticks = 0;
        s->zc_pending += (size_t)c->body_remaining;
    }
    return 0;
}

PyObject *cp_body_view(HttpProtocol *c)
{
    if (c->zc_body == NULL || c->rlen != c->rpos || c->state != CP_ST_BODY) {
        return NULL;
    }
    /* the kernel writes the rest of the body into its final object */
    return PyMemoryView_FromMemory(PyBytes_AS_STRING(c->zc_body) + c->zc_fill,
                                   (Py_ssize_t)c->body_remaining, PyBUF_WRITE);
}

int cp_body_read(HttpProtocol *c, size_t n)
{
    if (c->zc_body == NULL || n > c->body_remaining) {
        PyErr_SetString(PyExc_ValueError, "buffer_updated: more bytes than the body holds");
        return -1;
    }
    ServerState *s = c->server;
    c->zc_fill += n;
    c->body_remaining -= n;
    c->body_seen += n;
    s->stats.body_bytes += n;
    s->stats.body_bytes_zero_copy += n;
    if (c->body_remaining > 0) {
        cp_conn_update_reading(c); /* progress: the silence starts again */
        return 0;
    }
    int rc = 0;
    if (zc_deliver(c) < 0) {
        rc = cp_conn_internal_error(c);
    } else if (c->state == CP_ST_BODY) {
        cp_conn_enter(c, CP_ST_WAIT_RESPONSE);
        if (c->cycle != NULL && cp_cycle_body_done(c->cycle) < 0) {
            rc = cp_conn_internal_error(c);
        }
    }
    cp_conn_update_reading(c);
    return rc == -2 ? -2 : 0;
}

int cp_body_abandon(HttpProtocol *c, int expect_continue)
{
    cp_body_drop(c);
    return c->body_mode == CP_BODY_LENGTH && c->body_remaining <= DRAIN_MAX &&
           !expect_continue;
}

void cp_body_tick(HttpProtocol *c)
{
    /* A tick that finds a zero-copy body incomplete while the app waits
       marks it; the next one (100-200 ms later) gives the app what has
       arrived. */
    if (c->zc_body == NULL || c->zc_fill == 0 || c->state != CP_ST_BODY || c->cycle == NULL ||
        !cp_cycle_receiving(c->cycle)) {
        return;
    }
    if (c->zc_ticks++ > 0 && zc_give_partial(c) < 0 && cp_conn_internal_error(c) == -2) {
        PyErr_WriteUnraisable((PyObject *)c); /* a tick has no caller to tell */
    }
}

/* Move the body bytes that came in this read to the request.  Returns 1 when
   progress was made, 0 when nothing is left to feed, -1 after a failure
   (handled: the connection is closed), -2 with an exception that must
   propagate. */
int cp_body_feed(HttpProtocol *c)
{
    ServerState *s = c->server;
    char *base = cp_conn_data(c) + c->rpos;
    size_t len = c->rlen - c->rpos;
    if (len == 0) {
        return 0;
    }
    int deliver = c->state == CP_ST_BODY && c->cycle != NULL;
    int ended = 0;
    size_t data = 0; /* body bytes in this read */
    if (c->body_mode == CP_BODY_LENGTH) {
        size_t n = len < c->body_remaining ? len : (size_t)c->body_remaining;
        if (c->zc_body != NULL) {
            /* bytes that came with the head (or a read we could not direct)
               go into the same final object */
            memcpy(PyBytes_AS_STRING(c->zc_body) + c->zc_fill, base, n);
            c->zc_fill += n;
        } else if (deliver) {
            PyObject *chunk = PyBytes_FromStringAndSize(base, (Py_ssize_t)n);
            if (chunk == NULL ||
                cp_cycle_push_body(c->cycle, chunk, n == c->body_remaining) < 0) {
                return cp_conn_internal_error(c);
            }
        }
        c->rpos += n;
        c->body_remaining -= n;
        data = n;
        ended = c->body_remaining == 0;
        if (ended && c->zc_body != NULL && zc_deliver(c) < 0) {
            return cp_conn_internal_error(c);
        }
    } else {
        /* The data of every chunk in this read goes to the app as one bytes
           object (with 1-byte chunks, one 256 KiB read would otherwise make
           40,000 of them).  Each chunk's data is moved down over the framing
           already decoded, in place: the bytes before `used` are consumed,
           and the write position never passes the read position. */
        size_t used = 0;
        while (used < len) {
            size_t consumed, off, dlen;
            int rc = cp_chunked_decode(&c->chunked, base + used, len - used, &s->limits,
                                       &consumed, &off, &dlen);
            if (rc == CP_CHUNK_ERROR) {
                c->rpos += used + consumed;
                cp_conn_fail(c, c->chunked.error_status ? c->chunked.error_status : 400,
                          c->chunked.error_reason);
                return -1;
            }
            if (rc == CP_CHUNK_DATA) {
                if (s->max_body >= 0 && c->body_seen + data + dlen > (uint64_t)s->max_body) {
                    cp_conn_fail(c, 413, "chunked body over limit_request_body");
                    return -1;
                }
                if (deliver) {
                    memmove(base + data, base + used + off, dlen);
                }
                data += dlen;
            }
            used += consumed;
            if (rc == CP_CHUNK_DONE) {
                ended = 1;
                break;
            }
            if (rc == CP_CHUNK_MORE) {
                break;
            }
        }
        c->rpos += used;
        if (deliver && data > 0) {
            PyObject *chunk = PyBytes_FromStringAndSize(base, (Py_ssize_t)data);
            if (chunk == NULL || cp_cycle_push_body(c->cycle, chunk, 0) < 0) {
                return cp_conn_internal_error(c);
            }
        }
    }
    c->body_seen += data;
    s->stats.body_bytes += data;
    if (c->state == CP_ST_DRAIN) {
        s->stats.body_bytes_drained += data;
    } else {
        s->stats.body_bytes_copied += data;
    }
    if (ended) {
        if (c->state == CP_ST_DRAIN) {
            cp_conn_enter(c, CP_ST_HEAD); /* (closes if the server shuts down) */
            if (c->state >= CP_ST_CLOSED) {
                return -1;
            }
        } else {
            cp_conn_enter(c, CP_ST_WAIT_RESPONSE);
            if (c->cycle != NULL && cp_cycle_body_done(c->cycle) < 0) {
                return cp_conn_internal_error(c);
            }
        }
    }
    return 1;
}

