/*
 * cycle.c -- RequestCycle: one request, the app's receive() and send().
 *
 * receive() hands out the queued body as one `bytes` per call (more_body
 * tells whether more follows), then waits for the client to go away or the
 * response to complete, then answers http.disconnect forever.
 *
 * send() checks the order of messages (start, body..., final body),
 * serializes through response.c and writes.  While the transport asked us to
 * pause writing, each send() waits on a Future of its own (so that a
 * cancelled send, by asyncio.timeout or an anyio cancel scope, never touches
 * another).  After the client went away send() raises ClientDisconnected, an
 * OSError, as ASGI spec 2.4 asks.  App code that send() runs (a message's
 * __bool__, a headers generator, a Mapping's __getitem__) may not call
 * send() again: that raises RuntimeError instead of changing the response
 * under the call that is writing it.
 *
 * Both return an Outcome (awaitable.c): ready when the answer is known now,
 * waiting on a Future otherwise -- the same coroutine-shaped type either way.
 *
 * The app runs in its own Task through an AppRunner (runner.c), which calls
 * cp_cycle_app_done() when the app returns or raises: that is where a missing
 * or broken response becomes a 500 or a closed connection.
 */
#include "core.h"

#include <stddef.h>
#include <stdio.h>
#include <string.h>

static const char CONTINUE_100[] = "HTTP/1.1 100 Continue\r\n\r\n";

/* What a cycle holds beyond zeroed memory before its request starts (a new
   one and a reused one alike). */
static void cycle_init(RequestCycle *cy)
{
    cp_buf_init(&cy->head, cy->head_inline, CP_HEAD_INLINE);
    cy->framing.length = -1;
}

RequestCycle *cp_cycle_new(ServerState *s, HttpProtocol *c)
{
    PyTypeObject *tp = s->mod->RequestCycle_Type;
    RequestCycle *cy = (RequestCycle *)tp->tp_alloc(tp, 0);
    if (cy == NULL) {
        return NULL;
    }
    cy->server = (ServerState *)Py_NewRef((PyObject *)s);
    cy->conn = (HttpProtocol *)Py_NewRef((PyObject *)c);
    cycle_init(cy);
    return cy;
}

/* ---- reuse on a keep-alive connection (the cycle_reuse switch) ------- */

void cp_cycle_drop_spare(HttpProtocol *c)
{
    Py_CLEAR(c->spare_receive);
    Py_CLEAR(c->spare_send);
    Py_CLEAR(c->spare);
}

/* Whether c's spare cycle can serve the next request: its app has
   finished and nothing outside the connection holds the cycle, its receive
   or its send -- not the app (which kept send, or receive.__self__), not a
   Task, not a pathsend helper.  The cycle is then referenced exactly three
   times: by c->spare and by the two callables bound to it.  Free-threaded
   builds skip reuse: their reference counts are split between threads. */
#ifndef Py_GIL_DISABLED
/* A callable nothing but the spare slot holds, and nothing watches. */
static int callable_unshared(PyObject *fn)
{
    return Py_REFCNT(fn) == 1 && ((PyCFunctionObject *)fn)->m_weakreflist == NULL;
}
#endif

static int spare_reusable(HttpProtocol *c)
{
#ifdef Py_GIL_DISABLED
    (void)c;
    return 0;
#else
    RequestCycle *cy = c->spare;
    return cy != NULL && Py_REFCNT(cy) == 3 && callable_unshared(c->spare_receive) &&
           callable_unshared(c->spare_send) && !cy->app_running && !cy->sending &&
           cy->task == NULL && cy->receive_waiter == NULL && cy->write_waiters == NULL;
#endif
}

/* Back to the state cp_cycle_new leaves a cycle in: every field after
   `conn` zeroed (as tp_alloc zeroes them), its own references released
   first.  Only bytes and lists of bytes are let go here (the body queue),
   whose deallocation runs no Python code. */
static void cycle_reset(RequestCycle *cy, HttpProtocol *c)
{
    Py_CLEAR(cy->scope);
    Py_CLEAR(cy->body_first);
    Py_CLEAR(cy->body_more);
    cp_buf_release(&cy->head);
    memset((char *)cy + offsetof(RequestCycle, stream_id), 0,
           sizeof(RequestCycle) - offsetof(RequestCycle, stream_id));
    Py_XSETREF(cy->conn, (HttpProtocol *)Py_NewRef((PyObject *)c));
    cycle_init(cy);
}

RequestCycle *cp_cycle_for_request(ServerState *s, HttpProtocol *c)
{
    if (c->spare != NULL) {
        if ((s->opts & CP_OPT_CYCLE_REUSE) && spare_reusable(c)) {
            RequestCycle *cy = (RequestCycle *)Py_NewRef((PyObject *)c->spare);
            cycle_reset(cy, c);
            s->stats.cycles_reused++;
            return cy;
        }
        cp_cycle_drop_spare(c);
    }
    return cp_cycle_new(s, c);
}

static void wake_receiver(RequestCycle *cy);

/* ---- body queue ----------------------------------------------------- */

int cp_cycle_push_body(RequestCycle *cy, PyObject *data, int last)
{
    Py_ssize_t n = PyBytes_GET_SIZE(data);
    if (last) {
        /* so that a waiting receive() gets more_body=False with these bytes
           instead of an extra empty message after them */
        cy->body_complete = 1;
    }
    if (n == 0 || cy->body_final_sent || cy->disconnected) {
        Py_DECREF(data);
        return 0;
    }
    if (cy->body_first == NULL) {
        cy->body_first = data;
    } else {
        if (cy->body_more == NULL && (cy->body_more = PyList_New(0)) == NULL) {
            Py_DECREF(data);
            return -1;
        }
        int r = PyList_Append(cy->body_more, data);
        Py_DECREF(data);
        if (r < 0) {
            return -1;
        }
    }
    cy->body_queued += (size_t)n;
    wake_receiver(cy);
    return 0;
}

int cp_cycle_body_backlogged(RequestCycle *cy)
{
    return cy->body_queued > CP_HIGH_WATER;
}

/* Queued body for one http.request message (new reference).  Small chunks
   are joined into one bytes object; a large one is handed over as it is, so
   a big upload is never copied again to glue its pieces together. */
#define JOIN_MAX (64 * 1024)

static PyObject *take_body(RequestCycle *cy)
{
    PyObject *first = cy->body_first;
    if (first == NULL) {
        return Py_NewRef(cy->server->mod->empty_bytes);
    }
    Py_ssize_t nmore = cy->body_more ? PyList_GET_SIZE(cy->body_more) : 0;
    Py_ssize_t first_len = PyBytes_GET_SIZE(first);
    /* How many queued chunks (after the first) go into this message. */
    Py_ssize_t take = 0;
    size_t total = (size_t)first_len;
    if (first_len < JOIN_MAX) {
        while (take < nmore) {
            Py_ssize_t n = PyBytes_GET_SIZE(PyList_GET_ITEM(cy->body_more, take));
            if (total + (size_t)n > JOIN_MAX && take > 0) {
                break;
            }
            total += (size_t)n;
            take++;
            if (total >= JOIN_MAX) {
                break;
            }
        }
    }
    PyObject *out;
    if (take == 0) {
        out = first; /* our reference moves to the caller */
    } else {
        out = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)total);
        if (out == NULL) {
            return NULL;
        }
        char *w = PyBytes_AS_STRING(out);
        memcpy(w, PyBytes_AS_STRING(first), (size_t)first_len);
        w += first_len;
        for (Py_ssize_t i = 0; i < take; i++) {
            PyObject *b = PyList_GET_ITEM(cy->body_more, i);
            memcpy(w, PyBytes_AS_STRING(b), (size_t)PyBytes_GET_SIZE(b));
            w += PyBytes_GET_SIZE(b);
        }
        Py_DECREF(first);
    }
    cy->body_first = NULL;
    cy->body_queued -= total;
    /* the next chunk, if any, becomes the first */
    if (take < nmore) {
        cy->body_first = Py_NewRef(PyList_GET_ITEM(cy->body_more, take));
        if (PyList_SetSlice(cy->body_more, 0, take + 1, NULL) < 0) {
            Py_DECREF(out);
            return NULL;
        }
    } else {
        Py_CLEAR(cy->body_more);
    }
    return out;
}

/* ---- messages ------------------------------------------------------- */

static PyObject *disconnect_message(cp_state *st)
{
    PyObject *msg = PyDict_New();
    if (msg != NULL && PyDict_SetItem(msg, st->k_type, st->v_http_disconnect) < 0) {
        Py_CLEAR(msg);
    }
    return msg;
}

/* The next http.request message if one is due now, else NULL with no
   exception set. */
static PyObject *next_request_message(RequestCycle *cy)
{
    if (cy->body_final_sent || (cy->body_queued == 0 && !cy->body_complete)) {
        return NULL;
    }
    cp_state *st = cy->server->mod;
    PyObject *body = take_body(cy);
    if (body == NULL) {
        return NULL;
    }
    int more = !cy->body_complete || cy->body_queued > 0;
    PyObject *msg = PyDict_New();
    if (msg == NULL || PyDict_SetItem(msg, st->k_type, st->v_http_request) < 0 ||
        PyDict_SetItem(msg, st->k_body, body) < 0 ||
        PyDict_SetItem(msg, st->k_more_body, more ? Py_True : Py_False) < 0) {
        Py_XDECREF(msg);
        Py_DECREF(body);
        return NULL;
    }
    size_t taken = (size_t)PyBytes_GET_SIZE(body);
    Py_DECREF(body);
    if (!more) {
        cy->body_final_sent = 1;
    }
    if (cy->conn != NULL) {
        if (cy->stream_id != 0) {
            cp_h2_body_consumed(cy, taken); /* the peer may send as much again */
        } else {
            cp_conn_body_consumed(cy->conn);
        }
    }
    return msg;
}

/* Is the future still waiting (not cancelled by the app's task)? */
static int future_pending(cp_state *st, PyObject *fut)
{
    PyObject *r = PyObject_CallMethodNoArgs(fut, st->s_done);
    if (r == NULL) {
        return -1;
    }
    int done = PyObject_IsTrue(r);
    Py_DECREF(r);
    return done < 0 ? -1 : !done;
}

/* Give the Future in *slot (taken from it) its result, unless it is done
   already: one the app's task cancelled (asyncio.wait_for, a cancel scope)
   is skipped silently.  One Python call per wake-up: set_result is tried
   first, and only when it fails does done() tell whether that was because
   the Future was done (no error: what asking done() first would have
   skipped) or a real failure (reported). */
static void resolve(cp_state *st, PyObject **slot, PyObject *value)
{
    PyObject *fut = *slot;
    *slot = NULL;
    PyObject *r = PyObject_CallMethodOneArg(fut, st->s_set_result, value);
    if (r != NULL) {
        Py_DECREF(r);
        Py_DECREF(fut);
        return;
    }
    PyObject *exc = cp_err_take();
    int pending = future_pending(st, fut);
    if (pending == 0) {
        Py_XDECREF(exc); /* it was done: InvalidStateError */
    } else {
        if (pending > 0) {
            cp_err_restore(exc);
        } else {
            Py_XDECREF(exc); /* done() failed too: report that */
        }
        PyErr_WriteUnraisable(fut);
    }
    Py_DECREF(fut);
}

/* What receive() answers now: the next http.request, else http.disconnect
   once the client is gone (or half-closed) or the response is complete,
   else NULL (wait).  NULL with an exception on error. */
static PyObject *receive_answer(RequestCycle *cy)
{
    if (!cy->disconnected && !cy->response_complete) {
        PyObject *msg = next_request_message(cy);
        if (msg != NULL || PyErr_Occurred()) {
            return msg;
        }
        if (!cy->client_eof) {
            return NULL;
        }
    }
    return disconnect_message(cy->server->mod);
}

/* Give a waiting receive() its answer, if there is one now. */
/* Would receive() have an answer now? (receive_answer without taking it) */
static int receive_ready(const RequestCycle *cy)
{
    if (cy->disconnected || cy->response_complete) {
        return 1;
    }
    if (!cy->body_final_sent && (cy->body_queued > 0 || cy->body_complete)) {
        return 1;
    }
    return cy->client_eof;
}

/* Wake a waiting receive() if it has an answer now.  The answer is not taken
   here but when the receive() resumes (receive_again): a receive() cancelled
   in between (asyncio.wait_for, a cancel scope) leaves the body queued for
   the next one instead of losing it with the Future's result. */
static void wake_receiver(RequestCycle *cy)
{
    if (cy->receive_waiter == NULL || !receive_ready(cy)) {
        return;
    }
    resolve(cy->server->mod, &cy->receive_waiter, Py_None); /* skips a cancelled one */
}
void cp_cycle_client_eof(RequestCycle *cy)
{
    cy->client_eof = 1;
    cy->framing.keep_alive = 0;
    wake_receiver(cy);
}

int cp_cycle_body_done(RequestCycle *cy)
{
    cy->body_complete = 1;
    wake_receiver(cy);
    return 0;
}

void cp_cycle_wake_writer(RequestCycle *cy)
{
    PyObject *waiters = cy->write_waiters;
    if (waiters == NULL) {
        return;
    }
    cy->write_waiters = NULL; /* a send() woken here may wait again */
    cp_state *st = cy->server->mod;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(waiters); i++) {
        PyObject *fut = Py_NewRef(PyList_GET_ITEM(waiters, i));
        resolve(st, &fut, Py_None); /* skips one that was cancelled */
    }
    Py_DECREF(waiters);
}

int cp_cycle_receiving(RequestCycle *cy)
{
    return cy->receive_waiter != NULL;
}

void cp_cycle_disconnect(RequestCycle *cy)
{
    if (cy->disconnected) {
        return;
    }
    cy->disconnected = 1;
    wake_receiver(cy);
    cp_cycle_wake_writer(cy);
}

/* ---- receive() ------------------------------------------------------ */

static int cycle_cleared(RequestCycle *cy);

/* A receive() that waited was woken (or its Future completed anyhow): its
   answer now, or (taken meanwhile by another receive()) a new Future to wait
   on in *wait_on. */
static PyObject *receive_again(PyObject *owner, PyObject **wait_on)
{
    RequestCycle *cy = (RequestCycle *)owner;
    *wait_on = NULL;
    if (cycle_cleared(cy)) {
        return NULL;
    }
    PyObject *msg = receive_answer(cy);
    if (msg != NULL || PyErr_Occurred()) {
        return msg;
    }
    if (cy->receive_waiter != NULL) {
        PyErr_SetString(PyExc_RuntimeError,
                        "receive() called while another receive() is waiting");
        return NULL;
    }
    PyObject *fut = PyObject_CallNoArgs(cy->server->create_future);
    if (fut == NULL) {
        return NULL;
    }
    cy->receive_waiter = Py_NewRef(fut);
    *wait_on = fut;
    return NULL;
}

/* receive()/send() may outlive their cycle's fields: a callable kept past
   the cycle's clearing by the collector (a finalizer that resurrects it). */
static int cycle_cleared(RequestCycle *cy)
{
    if (cy->server == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "this request's receive()/send() is gone");
        return 1;
    }
    return 0;
}

static PyObject *cycle_receive(RequestCycle *cy, PyObject *unused)
{
    (void)unused;
    if (cycle_cleared(cy)) {
        return NULL;
    }
    cp_state *st = cy->server->mod;
    HttpProtocol *c = cy->conn;
    if (cy->expect_continue) {
        cy->expect_continue = 0;
        if (c != NULL && !c->lost && !cy->wire_started && !cy->disconnected) {
            PyObject *b = PyBytes_FromStringAndSize(CONTINUE_100, sizeof(CONTINUE_100) - 1);
            int r = b ? cp_conn_write(c, b) : -1;
            Py_XDECREF(b);
            if (r < 0) {
                return NULL;
            }
        }
    }
    PyObject *msg = receive_answer(cy);
    if (msg != NULL) {
        return cp_outcome_ready(st, msg);
    }
    if (PyErr_Occurred()) {
        return NULL;
    }
    /* wait for body bytes, the end of the response, or a disconnect */
    if (cy->receive_waiter != NULL) {
        int pending = future_pending(st, cy->receive_waiter);
        if (pending < 0) {
            return NULL;
        }
        if (pending) {
            PyErr_SetString(PyExc_RuntimeError,
                            "receive() called while another receive() is waiting");
            return NULL;
        }
        Py_CLEAR(cy->receive_waiter); /* an earlier receive() was cancelled */
    }
    PyObject *fut = PyObject_CallNoArgs(cy->server->create_future);
    if (fut == NULL) {
        return NULL;
    }
    cy->receive_waiter = Py_NewRef(fut);
    return cp_outcome_waiting(st, fut, (PyObject *)cy, receive_again);
}

/* ---- send() --------------------------------------------------------- */

/* expected is an interned ASCII str; apps usually pass an equal, not
   identical, literal ("http.response.start" is not interned by the
   compiler), so compare the bytes directly. */
static int type_is(PyObject *type, PyObject *expected)
{
    if (type == expected) {
        return 1;
    }
    return PyUnicode_Check(type) && PyUnicode_IS_COMPACT_ASCII(type) &&
           PyUnicode_GET_LENGTH(type) == PyUnicode_GET_LENGTH(expected) &&
           memcmp(PyUnicode_DATA(type), PyUnicode_DATA(expected),
                  (size_t)PyUnicode_GET_LENGTH(type)) == 0;
}

void cp_cycle_access_log(RequestCycle *cy, int status, int64_t body_bytes)
{
    ServerState *s = cy->server;
    if (s->access_log == NULL || cy->scope == NULL) {
        return;
    }
    /* access_log(scope, status, body bytes sent, seconds since the head) */
    PyObject *st = PyLong_FromLong(status);
    PyObject *size = PyLong_FromLongLong(body_bytes);
    PyObject *took = PyFloat_FromDouble(cp_monotonic() - cy->started);
    PyObject *args[4] = {cy->scope, st, size, took};
    PyObject *r = st && size && took ? PyObject_Vectorcall(s->access_log, args, 4, NULL) : NULL;
    Py_XDECREF(st);
    Py_XDECREF(size);
    Py_XDECREF(took);
    if (r == NULL) {
        PyErr_WriteUnraisable(s->access_log);
    }
    Py_XDECREF(r);
}

static inline void response_finished(RequestCycle *cy)
{
    HttpProtocol *c = cy->conn;
    if (cy->server->metrics) {
        cp_metrics_response(cy->server, cy->status, cy->started);
    }
    cp_cycle_access_log(cy, cy->status, cy->out_sent);
    Py_CLEAR(cy->scope);
    /* receive() now answers http.disconnect */
    wake_receiver(cy);
    if (c != NULL) {
        cy->conn = NULL; /* detach: the connection moves on */
        if (c->cycle == cy) {
            cp_conn_response_complete(c, cy->framing.keep_alive);
        }
        Py_DECREF(c);
    }
}

/* What send() returns: done, or (writing paused) a wait on a Future of its
   own until the transport resumes writing or the connection is lost. */
static PyObject *send_wait(RequestCycle *cy)
{
    HttpProtocol *c = cy->conn;
    cp_state *st = cy->server->mod;
    if (c == NULL || c->lost || !(cy->stream_id ? cp_h2_must_wait(cy) : c->writing_paused)) {
        return Py_NewRef(st->done_awaitable);
    }
    if (cy->write_waiters == NULL && (cy->write_waiters = PyList_New(0)) == NULL) {
        return NULL;
    }
    PyObject *fut = PyObject_CallNoArgs(cy->server->create_future);
    if (fut == NULL) {
        return NULL;
    }
    if (PyList_Append(cy->write_waiters, fut) < 0) {
        Py_DECREF(fut);
        return NULL;
    }
    return cp_outcome_waiting(st, fut, NULL, NULL);
}

/* 1 when the transport is closing: the peer reset the connection (the
   transport knows at once; connection_lost only follows on a later loop
   iteration) or the server closed it.  A streaming app whose send() never
   has to wait would otherwise not hear of it until its stream ends.  Asked
   only for the messages after the first body: single-message responses
   never pay for it.  -1 on error. */
static int transport_closing(HttpProtocol *c)
{
    if (c->state == CP_ST_CLOSED || c->transport == NULL) {
        return 1;
    }
    PyObject *r = PyObject_CallMethodNoArgs(c->transport, c->server->mod->s_is_closing);
    if (r == NULL) {
        return -1;
    }
    int closing = PyObject_IsTrue(r);
    Py_DECREF(r);
    return closing;
}

/* Bodies up to this size are copied next to the head (or the chunk's size
   line) so that the whole part is one write; larger ones are written as
   their own object, not copied. */
#define COALESCE_MAX 16384

/* Write prefix + body + suffix: one bytes object (so one write() and, on a
   socket, one send()) when the body is small, else the pieces. */
static int write_pieces(HttpProtocol *c, const char *prefix, size_t plen, PyObject *body,
                        const char *suffix, size_t slen)
{
    Py_ssize_t blen = body != NULL ? PyBytes_GET_SIZE(body) : 0;
    if (plen + (size_t)blen + slen == 0) {
        return 0; /* an empty part in the middle of a stream */
    }
    if (blen <= COALESCE_MAX) {
        PyObject *out = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)plen + blen + (Py_ssize_t)slen);
        if (out == NULL) {
            return -1;
        }
        char *w = PyBytes_AS_STRING(out);
        memcpy(w, prefix, plen);
        if (blen) {
            memcpy(w + plen, PyBytes_AS_STRING(body), (size_t)blen);
        }
        memcpy(w + plen + (size_t)blen, suffix, slen);
        int r = cp_conn_write(c, out);
        Py_DECREF(out);
        return r;
    }
    PyObject *list = PyList_New(0);
    PyObject *p = NULL, *sfx = NULL;
    int r = -1;
    if (list == NULL ||
        (plen && ((p = PyBytes_FromStringAndSize(prefix, (Py_ssize_t)plen)) == NULL ||
                  PyList_Append(list, p) < 0)) ||
        PyList_Append(list, body) < 0 ||
        (slen && ((sfx = PyBytes_FromStringAndSize(suffix, (Py_ssize_t)slen)) == NULL ||
                  PyList_Append(list, sfx) < 0))) {
        goto done;
    }
    r = cp_conn_writelines(c, list);
done:
    Py_XDECREF(p);
    Py_XDECREF(sfx);
    Py_XDECREF(list);
    return r;
}

/* Put a body message's parts on the wire: 0, or -1 with an exception.
   Without the direct_response optimization the head is its own write (the
   baseline that optimization is measured against). */
static int write_parts(RequestCycle *cy, cp_body_parts *parts)
{
    HttpProtocol *c = cy->conn;
    if (c == NULL) {
        PyErr_SetString(cy->server->mod->ClientDisconnected, "The connection is closed.");
        return -1;
    }
    if (cy->stream_id != 0) {
        return cp_h2_write(cy, parts); /* HEADERS and DATA frames */
    }
    const char *prefix = parts->prefix;
    size_t plen = parts->plen;
    if (parts->first && !(cy->server->opts & CP_OPT_DIRECT_RESPONSE)) {
        if (write_pieces(c, prefix, parts->head_end, NULL, "", 0) < 0) {
            return -1;
        }
        /* the head is out: nothing to put back any more */
        parts->first = 0;
        cy->wire_started = 1;
        cy->head.len = 0;
        prefix += parts->head_end;
        plen -= parts->head_end;
        if (cy->conn == NULL) {
            PyErr_SetString(cy->server->mod->ClientDisconnected, "The connection is closed.");
            return -1;
        }
    }
    return write_pieces(c, prefix, plen, parts->body, parts->suffix, parts->slen);
}

/* http.response.trailers (the trailers extension): after the final body of
   a response whose start said trailers: True.  Fields accumulate until a
   message without more_trailers, which ends the response: the last chunk
   and the fields on HTTP/1.1, a HEADERS frame with END_STREAM on HTTP/2.
   Where the extension was not offered (and the start could not ask for
   it), trailers sent anyway are dropped: the response is complete. */
static PyObject *send_trailers(RequestCycle *cy, PyObject *message)
{
    cp_state *st = cy->server->mod;
    if (!cy->awaiting_trailers) {
        if (cy->response_complete && !cy->trailers_allowed) {
            return Py_NewRef(st->done_awaitable);
        }
        PyErr_SetString(PyExc_RuntimeError,
                        cy->trailers_expected
                            ? "Unexpected ASGI message 'http.response.trailers' sent before "
                              "the final 'http.response.body'."
                            : "Unexpected ASGI message 'http.response.trailers' sent: the "
                              "'http.response.start' did not say trailers: True.");
        return NULL;
    }
    int more;
    if (cp_response_trailers(cy, message, &more) < 0) {
        return NULL;
    }
    if (more) {
        return Py_NewRef(st->done_awaitable);
    }
    HttpProtocol *c = cy->conn;
    if (c == NULL || cy->disconnected) {
        PyErr_SetString(st->ClientDisconnected, "The connection is closed.");
        return NULL;
    }
    int rc;
    if (cy->stream_id != 0) {
        rc = cp_h2_trailers(cy);
    } else {
        PyObject *end = cp_response_trailer_bytes(cy);
        rc = end != NULL ? cp_conn_write(c, end) : -1;
        Py_XDECREF(end);
    }
    cy->head.len = 0;
    if (rc < 0) {
        return NULL;
    }
    cy->awaiting_trailers = 0;
    cy->response_complete = 1;
    response_finished(cy);
    return Py_NewRef(st->done_awaitable);
}

/* http.response.pathsend (the pathsend extension): the file at "path" is
   the whole body, in place of http.response.body messages.  What send()
   returns is the awaitable of the server's pathsend helper
   (protocols/http/pathsend.py), which sends the file through this cycle:
   its errors (no such file, no permission) come before any byte of the
   response, so the app's failure becomes a 500. */
static PyObject *send_path(RequestCycle *cy, PyObject *message)
{
    cp_state *st = cy->server->mod;
    if (!cy->response_started || cy->wire_started || cy->out_sent > 0 || cy->head.len == 0) {
        PyErr_SetString(PyExc_RuntimeError,
                        "Unexpected ASGI message 'http.response.pathsend': it must follow "
                        "'http.response.start' and replace every 'http.response.body'.");
        return NULL;
    }
    PyObject *path;
    if (PyDict_CheckExact(message)) {
        (void)PyDict_GetItemRef(message, st->k_path_key, &path);
    } else {
        path = PyObject_GetItem(message, st->k_path_key);
    }
    if (path == NULL) {
        if (!PyErr_Occurred() || PyErr_ExceptionMatches(PyExc_KeyError)) {
            PyErr_Clear();
            PyErr_SetString(PyExc_RuntimeError, "'http.response.pathsend' has no 'path'.");
        }
        return NULL;
    }
    PyObject *args[2] = {(PyObject *)cy, path};
    PyObject *result = PyObject_Vectorcall(cy->server->pathsend, args, 2, NULL);
    Py_DECREF(path);
    return result;
}

/* http.response.early_hint: a 103 Early Hints with the message's links as
   Link fields, before the final response; to HTTP/1.1 and HTTP/2 clients
   (an HTTP/1.0 client knows no interim responses: nothing is sent). */
static PyObject *send_early_hint(RequestCycle *cy, PyObject *message)
{
    cp_state *st = cy->server->mod;
    if (cy->response_started) {
        PyErr_SetString(PyExc_RuntimeError,
                        "Unexpected ASGI message 'http.response.early_hint' sent after "
                        "'http.response.start'.");
        return NULL;
    }
    HttpProtocol *c = cy->conn;
    if (c == NULL || cy->disconnected || c->lost) {
        PyErr_SetString(st->ClientDisconnected, "The connection is closed.");
        return NULL;
    }
    char storage[512];
    cp_buf hint;
    cp_buf_init(&hint, storage, sizeof(storage));
    int rc = cp_response_early_hint(cy, message, &hint);
    if (rc == 0 && hint.len > 0) {
        if (cy->stream_id != 0) {
            rc = cp_h2_early_hint(cy, hint.data, hint.len);
        } else if (cy->framing.http_minor == 1) {
            PyObject *b = PyBytes_FromStringAndSize(hint.data, (Py_ssize_t)hint.len);
            rc = b != NULL ? cp_conn_write(c, b) : -1;
            Py_XDECREF(b);
        }
    }
    cp_buf_release(&hint);
    return rc < 0 ? NULL : Py_NewRef(st->done_awaitable);
}

static PyObject *cycle_send_message(RequestCycle *cy, PyObject *message);

static PyObject *cycle_send(RequestCycle *cy, PyObject *message)
{
    if (cycle_cleared(cy)) {
        return NULL;
    }
    if (cy->sending) {
        PyErr_SetString(PyExc_RuntimeError,
                        "send() called while another send() of this request is running "
                        "(from code that send() itself ran: a message's __bool__, a "
                        "headers iterator or a Mapping's __getitem__)");
        return NULL;
    }
    cy->sending = 1;
    Py_INCREF(cy);
    PyObject *result = cycle_send_message(cy, message);
    cy->sending = 0;
    Py_DECREF(cy);
    return result;
}

static PyObject *cycle_send_message(RequestCycle *cy, PyObject *message)
{
    cp_state *st = cy->server->mod;
    PyObject *type;
    if (PyDict_CheckExact(message)) {
        /* a strong reference from the start: without the GIL the app's
           other threads may change the dict under us */
        (void)PyDict_GetItemRef(message, st->k_type, &type);
    } else if (PyMapping_Check(message)) {
        type = PyObject_GetItem(message, st->k_type);
        if (type == NULL && PyErr_ExceptionMatches(PyExc_KeyError)) {
            PyErr_Clear();
        }
    } else {
        PyErr_Format(PyExc_TypeError, "Expected an ASGI message dict, but got %R.",
                     (PyObject *)Py_TYPE(message));
        return NULL;
    }
    if (type == NULL) {
        if (!PyErr_Occurred()) {
            PyErr_SetString(PyExc_RuntimeError, "ASGI message has no 'type'.");
        }
        return NULL;
    }
    PyObject *result = NULL;
    if (cy->disconnected || (cy->conn != NULL && cy->conn->lost)) {
        PyErr_SetString(st->ClientDisconnected, "The client has disconnected.");
        goto done;
    }
    if (type_is(type, st->v_http_response_start)) {
        if (cy->response_started) {
            PyErr_SetString(PyExc_RuntimeError,
                            "Expected ASGI message 'http.response.body', but got "
                            "'http.response.start'.");
            goto done;
        }
        if (cy->conn == NULL) {
            PyErr_SetString(st->ClientDisconnected, "The connection is closed.");
            goto done;
        }
        if (cp_response_start(cy, message) < 0) {
            goto done;
        }
        cy->response_started = 1;
        result = Py_NewRef(st->done_awaitable);
    } else if (type_is(type, st->v_http_response_body)) {
        if (!cy->response_started) {
            PyErr_SetString(PyExc_RuntimeError,
                            "Expected ASGI message 'http.response.start', but got "
                            "'http.response.body'.");
            goto done;
        }
        if (cy->response_complete) {
            PyErr_SetString(PyExc_RuntimeError,
                            "Unexpected ASGI message 'http.response.body' sent, after "
                            "response already completed.");
            goto done;
        }
        if (cy->awaiting_trailers) {
            PyErr_SetString(PyExc_RuntimeError,
                            "Expected ASGI message 'http.response.trailers' (the start "
                            "said trailers: True), but got 'http.response.body'.");
            goto done;
        }
        if (cy->conn == NULL) {
            PyErr_SetString(st->ClientDisconnected, "The connection is closed.");
            goto done;
        }
        if (cy->wire_started) {
            int closing = transport_closing(cy->conn);
            if (closing != 0) {
                if (closing > 0) {
                    PyErr_SetString(st->ClientDisconnected, "The connection is closed.");
                }
                goto done;
            }
        }
        size_t sent_before = (size_t)cy->out_sent;
        cp_body_parts parts;
        if (cp_response_body_parts(cy, message, &parts) < 0) {
            goto done;
        }
        int written = write_parts(cy, &parts);
        cp_response_body_written(cy, &parts, written == 0);
        if (written < 0) {
            goto done;
        }
        if (cy->response_complete) {
            response_finished(cy);
            result = Py_NewRef(st->done_awaitable);
        } else {
            result = send_wait(cy);
            /* A stream whose sends never wait would never let the loop run:
               not to serve other connections, and not to deliver the
               connection_lost by which a TLS transport reports a reset (its
               is_closing() stays false until then).  Now and then send()
               gives the loop a turn. */
            cy->unyielded += (size_t)cy->out_sent - sent_before;
            if (result == st->done_awaitable && cy->unyielded >= CP_YIELD_BYTES) {
                Py_SETREF(result, cp_outcome_yield(st));
            }
            if (result != st->done_awaitable) {
                cy->unyielded = 0;
            }
        }
    } else if (type_is(type, st->v_http_response_trailers)) {
        result = send_trailers(cy, message);
    } else if (type_is(type, st->v_http_response_pathsend) && cy->server->pathsend != NULL) {
        result = send_path(cy, message);
    } else if (type_is(type, st->v_http_response_early_hint)) {
        result = send_early_hint(cy, message);
    } else {
        PyErr_Format(PyExc_RuntimeError,
                     "Unexpected ASGI message %R sent, expected 'http.response.start' or "
                     "'http.response.body'.",
                     type);
    }
done:
    Py_DECREF(type);
    return result;
}

/* ---- app lifecycle -------------------------------------------------- */

static PyMethodDef receive_def = {"receive", (PyCFunction)cycle_receive, METH_NOARGS,
                                  "ASGI receive()."};
static PyMethodDef send_def = {"send", (PyCFunction)cycle_send, METH_O, "ASGI send()."};

/* Report an exception raised before the app's task existed, then answer.
   Returns 0, or -1 with the exception set again when it must propagate. */
static int start_failed(RequestCycle *cy, PyObject *scope)
{
    ServerState *s = cy->server;
    int propagate = cp_err_must_propagate();
    PyObject *exc = cp_err_take();
    if (exc != NULL) {
        PyObject *args[3] = {exc, scope, Py_False};
        PyObject *res = PyObject_Vectorcall(s->report_exception, args, 3, NULL);
        if (res == NULL) {
            PyErr_WriteUnraisable(s->report_exception);
        }
        Py_XDECREF(res);
    }
    cy->app_running = 1; /* cp_cycle_app_done undoes the count */
    s->n_tasks++;
    cp_cycle_app_done(cy, 1);
    if (propagate) {
        cp_err_restore(exc);
        return -1;
    }
    Py_XDECREF(exc);
    return 0;
}

/* "carpinus-request-<n>", n counted over the process (task_names).  The
   Task's own default, "Task-<n>", goes through PyUnicode_FromFormat on 3.11:
   about ten times the instructions of these few stores. */
static PyObject *request_task_name(cp_state *m)
{
    static const char prefix[] = "carpinus-request-";
    char text[sizeof(prefix) - 1 + CP_UINT_DIGITS_MAX];
    memcpy(text, prefix, sizeof(prefix) - 1);
    size_t len = sizeof(prefix) - 1 +
                 cp_format_uint(text + sizeof(prefix) - 1,
                                cp_counter_next(&m->request_tasks_named));
    PyObject *name = PyUnicode_New((Py_ssize_t)len, 127);
    if (name != NULL) {
        memcpy(PyUnicode_1BYTE_DATA(name), text, len);
    }
    return name;
}

/* The request's Task, in its own copy of the server's base context. */
static PyObject *create_task(ServerState *s, PyObject *runner)
{
    PyObject *ctx = PyContext_Copy(s->base_context);
    if (ctx == NULL) {
        return NULL;
    }
    /* Task(runner, **task_kwargs[, name=...][, context=ctx]): at most three
       task_kwargs (server.c) */
    PyObject *args[6] = {runner, NULL, NULL, NULL, NULL, NULL};
    PyObject *name = NULL;
    Py_ssize_t nkw = 0;
    if (s->task_kwnames != NULL) {
        Py_ssize_t nvalues = PyTuple_GET_SIZE(s->task_kwvalues);
        for (Py_ssize_t i = 0; i < nvalues; i++) {
            args[1 + i] = PyTuple_GET_ITEM(s->task_kwvalues, i);
        }
        Py_ssize_t next = 1 + nvalues;
        if (s->name_tasks) {
            if ((name = request_task_name(s->mod)) == NULL) {
                Py_DECREF(ctx);
                return NULL;
            }
            args[next++] = name;
        }
        if (s->context_kwarg) {
            args[next] = ctx; /* the last kwname is "context" */
        }
        nkw = PyTuple_GET_SIZE(s->task_kwnames);
    }
    PyObject *kwnames = nkw > 0 ? s->task_kwnames : NULL;
    PyObject *task;
    if (s->context_kwarg) {
        task = PyObject_Vectorcall(s->task_factory, args, 1, kwnames);
    } else {
        /* the factory copies the current context: make it this one */
        if (PyContext_Enter(ctx) < 0) {
            Py_DECREF(ctx);
            return NULL;
        }
        task = PyObject_Vectorcall(s->task_factory, args, 1, kwnames);
        PyObject *exc = task == NULL ? cp_err_take() : NULL;
        if (PyContext_Exit(ctx) < 0) {
            Py_XDECREF(exc);
            Py_CLEAR(task);
        } else {
            cp_err_restore(exc);
        }
    }
    Py_XDECREF(name);
    Py_DECREF(ctx);
    return task;
}

/* (Re)compute app_call, app_type and app_call_tag (core.h) for the app's
   class as it is now.  Never fails: when in doubt the app is called as it
   is. */
static void resolve_app_call(ServerState *s)
{
    s->app_call_known = 1;
    Py_CLEAR(s->app_call);
    Py_CLEAR(s->app_type);
    s->app_call_tag = 0;
#if PY_VERSION_HEX >= 0x030B0000
    /* 3.11+: version tags are never reused (3.10 hands them out again after
       sys._clear_type_cache(), so a stale tag could match there). */
    PyTypeObject *tp = Py_TYPE(s->app);
    if (tp->tp_call == NULL || PyFunction_Check(s->app) || PyType_Check(s->app) ||
        !(tp->tp_flags & Py_TPFLAGS_HEAPTYPE)) {
        return; /* functions, methods, partials, C callables, classes:
                   they have their own fast call, or are not instances */
    }
    /* What tp_call (slot_tp_call) itself finds: the MRO's __call__, looked
       up on the type alone; the lookup also gives the type a version tag. */
    PyObject *call = _PyType_Lookup(tp, s->mod->s_dunder_call);
    unsigned int tag = tp->tp_version_tag;
    if (call == NULL || !PyFunction_Check(call) || tag == 0) {
        return; /* a builtin, a staticmethod, a descriptor: the usual call */
    }
    s->app_call = Py_NewRef(call);
    s->app_type = (PyTypeObject *)Py_NewRef((PyObject *)tp);
    s->app_call_tag = tag;
#endif
}

/* app(scope, receive, send).  A class-instance app goes straight to its
   type's __call__ function (resolve_app_call) while its class is
   unchanged; a changed class is looked at again. */
static PyObject *call_app(ServerState *s, PyObject *scope, PyObject *receive, PyObject *send)
{
    if (!s->app_call_known ||
        (s->app_type != NULL &&
         (Py_TYPE(s->app) != s->app_type || s->app_type->tp_version_tag != s->app_call_tag))) {
        resolve_app_call(s);
    }
    if (s->app_type != NULL) {
        PyObject *args[5] = {NULL, s->app, scope, receive, send};
        return PyObject_Vectorcall(s->app_call, args + 1, 4 | PY_VECTORCALL_ARGUMENTS_OFFSET,
                                   NULL);
    }
    PyObject *args[4] = {NULL, scope, receive, send};
    return PyObject_Vectorcall(s->app, args + 1, 3 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
}

int cp_cycle_start(RequestCycle *cy, PyObject *scope)
{
    ServerState *s = cy->server;
    PyObject *receive = NULL, *send = NULL, *result = NULL, *runner = NULL, *task = NULL;
    int rc = 0;
    if (s->access_log != NULL) {
        cy->scope = Py_NewRef(scope);
        cy->started = cp_monotonic();
    } else if (s->metrics) {
        cy->started = cp_monotonic(); /* the request-duration histogram */
    }
    HttpProtocol *c = cy->conn;
    if (c != NULL && c->spare == cy) { /* reused (cp_cycle_for_request) */
        receive = Py_NewRef(c->spare_receive);
        send = Py_NewRef(c->spare_send);
    } else {
        receive = PyCFunction_New(&receive_def, (PyObject *)cy);
        send = PyCFunction_New(&send_def, (PyObject *)cy);
        if (receive == NULL || send == NULL) {
            goto fail;
        }
        if ((s->opts & CP_OPT_CYCLE_REUSE) && c != NULL && cy->stream_id == 0) {
            /* kept for the connection's next request (HTTP/1.1 only) */
            cp_cycle_drop_spare(c);
            c->spare = (RequestCycle *)Py_NewRef((PyObject *)cy);
            c->spare_receive = Py_NewRef(receive);
            c->spare_send = Py_NewRef(send);
        }
    }
    /* For an `async def` app this only creates the coroutine; its code runs
       inside the Task. */
    result = call_app(s, scope, receive, send);
    if (result == NULL || (runner = cp_runner_new(cy, scope, result)) == NULL) {
        rc = start_failed(cy, scope);
        goto done;
    }
    s->n_tasks++;
    cy->app_running = 1;
    /* On 3.12+ (eager start) the app may run to its end inside this call;
       then its runner has already done cp_cycle_app_done(). */
    task = create_task(s, runner);
    if (task == NULL) {
        /* The factory failed, or (eager) the app raised SystemExit or
           KeyboardInterrupt, which the Task lets out of its constructor.
           Undo the count only if the app's end has not undone it. */
        if (cy->app_running) {
            cy->app_running = 0;
            s->n_tasks--;
        }
        goto fail;
    }
    if (cy->app_running) { /* not finished eagerly */
        if (PySet_Add(s->tasks, task) < 0) {
            goto fail;
        }
        cy->task = Py_NewRef(task);
    }
    goto done;
fail:
    rc = -1;
done:
    Py_XDECREF(receive);
    Py_XDECREF(send);
    Py_XDECREF(result);
    Py_XDECREF(runner);
    Py_XDECREF(task);
    return rc;
}

/* The app returned (failed == 0) or raised (failed == 1; already reported).
   A response that is not complete becomes a 500 or a closed connection. */
void cp_cycle_app_done(RequestCycle *cy, int failed)
{
    ServerState *s = cy->server;
    if (!cy->app_running) {
        return;
    }
    cy->app_running = 0;
    s->n_tasks--;
    if (cy->task != NULL) {
        if (PySet_Discard(s->tasks, cy->task) < 0) {
            PyErr_WriteUnraisable((PyObject *)cy);
        }
        Py_CLEAR(cy->task);
    }
    if (cy->response_complete) {
        return;
    }
    s->stats.app_errors++;
    HttpProtocol *c = cy->conn;
    if (!failed && !cy->disconnected) {
        const char *problem = cy->response_started
                                  ? "ASGI callable returned without completing response."
                                  : "ASGI callable returned without starting response.";
        PyObject *r = PyObject_CallFunction(s->log_error, "s", problem);
        if (r == NULL) {
            PyErr_WriteUnraisable(s->log_error);
        }
        Py_XDECREF(r);
    }
    cy->response_complete = 1;
    wake_receiver(cy);
    if (c != NULL) {
        cy->conn = NULL;
        if (cy->stream_id != 0) {
            if (!c->lost) {
                cp_h2_app_failed(c, cy);
            }
        } else if (c->cycle == cy && !c->lost) {
            if (!cy->wire_started) {
                cy->status = 500;
                PyObject *resp = cp_error_response(s, 500);
                if (resp == NULL || cp_conn_write(c, resp) < 0) {
                    PyErr_WriteUnraisable((PyObject *)cy);
                }
                Py_XDECREF(resp);
                if (s->metrics) {
                    cp_metrics_response(s, 500, cy->started);
                }
                cp_cycle_access_log(cy, 500, (int64_t)strlen(cp_reason_phrase(500)));
            }
            cp_conn_response_complete(c, 0);
        }
        Py_DECREF(c);
    }
    Py_CLEAR(cy->scope);
}

/* ---- for the pathsend helper (protocols/http/pathsend.py) ----------- */

/* _file_length(n): the body will be n bytes.  The response gets a
   Content-Length of n unless the app gave one, which must say n. */
/* A byte count from Python: 0, or -1 with an exception. */
static int byte_count(PyObject *arg, long long *n)
{
    *n = PyLong_AsLongLong(arg);
    if (*n >= 0) {
        return 0;
    }
    if (!PyErr_Occurred()) {
        PyErr_SetString(PyExc_ValueError, "negative length");
    }
    return -1;
}

static PyObject *cycle_file_length(RequestCycle *cy, PyObject *arg)
{
    long long n;
    if (byte_count(arg, &n) < 0 || cycle_cleared(cy)) {
        return NULL;
    }
    if (cy->head.len == 0 || cy->wire_started) {
        PyErr_SetString(PyExc_RuntimeError, "the response head was already sent");
        return NULL;
    }
    cp_framing *f = &cy->framing;
    if (f->length >= 0 && f->length != n) {
        PyErr_Format(PyExc_RuntimeError,
                     "the app's Content-Length is %lld but the file has %lld bytes",
                     (long long)f->length, n);
        return NULL;
    }
    if (f->length < 0 && !f->no_body) {
        char line[48];
        int len = snprintf(line, sizeof(line), "content-length: %lld\r\n", n);
        if (cp_buf_put(&cy->head, line, (size_t)len) < 0) {
            return PyErr_NoMemory();
        }
        f->length = n;
    }
    Py_RETURN_NONE;
}

/* _sendfile_transport(): the transport to hand to loop.sendfile() -- an
   HTTP/1.x connection's, once the head is out and while nothing else is
   being written -- or None (HTTP/2, or closed): send the file as body
   messages. */
static PyObject *cycle_sendfile_transport(RequestCycle *cy, PyObject *unused)
{
    (void)unused;
    HttpProtocol *c = cy->conn;
    if (c == NULL || c->lost || c->state >= CP_ST_CLOSED || cy->stream_id != 0 ||
        c->transport == NULL || cy->framing.chunked || cy->framing.no_body) {
        Py_RETURN_NONE;
    }
    return Py_NewRef(c->transport);
}

/* _file_sent(n): loop.sendfile() wrote n body bytes behind our back. */
static PyObject *cycle_file_sent(RequestCycle *cy, PyObject *arg)
{
    long long n;
    if (byte_count(arg, &n) < 0) {
        return NULL;
    }
    cy->out_sent += n;
    Py_RETURN_NONE;
}

static PyObject *cycle_get_disconnected(RequestCycle *cy, void *closure)
{
    (void)closure;
    return PyBool_FromLong(cy->disconnected || (cy->conn != NULL && cy->conn->lost));
}

/* ---- type ------------------------------------------------------------ */

static int cycle_traverse(RequestCycle *cy, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(cy));
    Py_VISIT(cy->server);
    Py_VISIT(cy->conn);
    Py_VISIT(cy->scope);
    Py_VISIT(cy->task);
    Py_VISIT(cy->body_first);
    Py_VISIT(cy->body_more);
    Py_VISIT(cy->receive_waiter);
    Py_VISIT(cy->write_waiters);
    return 0;
}

static int cycle_clear(RequestCycle *cy)
{
    Py_CLEAR(cy->conn);
    Py_CLEAR(cy->scope);
    Py_CLEAR(cy->task);
    Py_CLEAR(cy->body_first);
    Py_CLEAR(cy->body_more);
    Py_CLEAR(cy->receive_waiter);
    Py_CLEAR(cy->write_waiters);
    if (cy->app_running && cy->server != NULL) {
        cy->app_running = 0;
        cy->server->n_tasks--;
    }
    Py_CLEAR(cy->server);
    return 0;
}

static void cycle_dealloc(RequestCycle *cy)
{
    PyTypeObject *tp = Py_TYPE(cy);
    PyObject_GC_UnTrack(cy);
    cycle_clear(cy);
    cp_buf_release(&cy->head);
    tp->tp_free((PyObject *)cy);
    Py_DECREF(tp);
}

static PyMethodDef cycle_methods[] = {
    {"receive", (PyCFunction)cycle_receive, METH_NOARGS, "ASGI receive()."},
    {"send", (PyCFunction)cycle_send, METH_O, "ASGI send()."},
    {"_file_length", (PyCFunction)cycle_file_length, METH_O,
     "pathsend: the body will be this many bytes."},
    {"_sendfile_transport", (PyCFunction)cycle_sendfile_transport, METH_NOARGS,
     "pathsend: the transport for loop.sendfile(), or None."},
    {"_file_sent", (PyCFunction)cycle_file_sent, METH_O,
     "pathsend: loop.sendfile() wrote this many body bytes."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef cycle_getset[] = {
    {"disconnected", (getter)cycle_get_disconnected, NULL,
     "Whether the client has gone away.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot cycle_slots[] = {
    {Py_tp_dealloc, cycle_dealloc},
    {Py_tp_traverse, cycle_traverse},
    {Py_tp_clear, cycle_clear},
    {Py_tp_methods, cycle_methods},
    {Py_tp_getset, cycle_getset},
    {Py_tp_doc, "The state of one HTTP request and its response."},
    {0, NULL},
};

PyType_Spec cp_cycle_spec = {
    .name = "carpinus._core.RequestCycle",
    .basicsize = sizeof(RequestCycle),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_IMMUTABLETYPE |
             Py_TPFLAGS_DISALLOW_INSTANTIATION,
    .slots = cycle_slots,
};
