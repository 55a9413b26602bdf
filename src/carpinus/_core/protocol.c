/*
 * protocol.c -- HttpProtocol: one HTTP/1.1 connection as an asyncio
 * BufferedProtocol written in C.
 *
 * Theory of operation
 * -------------------
 * The transport asks get_buffer() where to put the next read and then tells
 * buffer_updated(n).  A connection with no unconsumed bytes of its own
 * (the usual case: every read is one or more whole requests) is handed the
 * server's shared scratch buffer; reads complete synchronously, so one buffer
 * serves every connection of the loop.  Whatever a read leaves unconsumed
 * (a partial head, pipelined requests waiting their turn) is copied into the
 * connection's own buffer, which exists only while it holds bytes: an idle
 * keep-alive connection owns no buffer at all.
 *
 * What the scratch buffer relies on, and how each is kept:
 *   - a transport keeps no view of a buffer after buffer_updated() returns
 *     (none does: they read into it and call buffer_updated at once);
 *   - no other connection reads into scratch while one is processing bytes
 *     there: `scratch_busy` is set for that time, and a connection that asks
 *     meanwhile is given its own buffer;
 *   - a transport may call get_buffer()/buffer_updated() from inside one of
 *     its own calls: stdlib TLS (sslproto) does from close(), which we may be
 *     calling from inside conn_process.  A closed connection's reads go to a
 *     discard buffer; a live connection's reads made while it is processing
 *     go to a side buffer, appended to its bytes once the processing ends.
 *     Neither touches the buffer being parsed.
 *
 * The connection is a small state machine:
 *
 *   HEAD ──head parsed──► BODY ──body ends──► WAIT_RESPONSE
 *    ▲   (no body) ─────────────────────────►      │
 *    │                                             │ response complete,
 *    ├─────────────────────────────────────────────┘ keep-alive
 *    │
 *    └──body ends── DRAIN ◄── response complete while the body still arrives
 *
 *   any state ── error / timeout / Connection: close / connection_lost ──► CLOSED
 *
 *   HEAD ── head asks for Upgrade: websocket (and a handler is set) ──► UPGRADED
 *   The websocket handler (Python, protocols/websocket/handler.py) takes the
 *   transport; this object lets go of it and of the server (see conn_upgrade).
 *
 * Requests are served strictly one at a time: bytes of a pipelined request
 * wait in WAIT_RESPONSE until the previous response is complete, so
 * responses are in order and an error in request N+1 can never be written
 * into the middle of response N.
 *
 * Re-entrancy: on Python >= 3.12 the app starts eagerly, i.e. inside
 * buffer_updated, and may complete its response (and so the request) before
 * the call that started it returns.  conn_process() is therefore a loop
 * guarded by `processing`: a nested call returns at once and the outer loop
 * picks up the new state.  One read starts at most CP_REQUESTS_PER_READ
 * requests; the rest wait for the next loop iteration (_process_pending).
 */
#include "core.h"

#include <string.h>

#define MIN_READ 16384 /* least free space offered to a read */

/* The request line and field spans of a head whose parse stopped half way
   (cp_parse_request_from): the spans live in the server's shared array
   during a parse, so a connection keeps its own copy between reads. */
typedef struct cp_head_saved {
    cp_request req;
    size_t cap;          /* entries of spans[] */
    cp_header spans[];
} cp_head_saved;

static int conn_process(HttpProtocol *c);
static PyObject *conn_settle(HttpProtocol *c, int process_rc);

/* ---- buffer helpers ------------------------------------------------- */

/* The connection's own buffer (c->own, a cp_buf) holds its unconsumed bytes
   at [rpos, rlen) whenever they are not in the scratch buffer. */
static void buf_free(HttpProtocol *c)
{
    cp_buf_release(&c->own);
    c->rpos = c->rlen = 0;
}

/* Make room for at least `extra` more bytes after rlen in the own buffer.
   Never called while the connection is processing: it may move the bytes. */
static int buf_reserve(HttpProtocol *c, size_t extra)
{
    c->own.len = c->rlen;
    if (c->rpos > 0 && (c->rpos == c->rlen || c->own.cap - c->rlen < extra)) {
        cp_buf_drop_front(&c->own, c->rpos);
        c->rlen = c->own.len;
        c->rpos = 0;
    }
    if (cp_buf_reserve(&c->own, extra) < 0) {
        PyErr_NoMemory();
        return -1;
    }
    return 0;
}

/* ---- the server's connection list ------------------------------------- */

/* ServerState.conns is an intrusive doubly-linked list through each
   connection's prev/next; it holds a strong reference to each. */
void cp_conn_link(ServerState *s, HttpProtocol *c)
{
    if (c->linked) {
        return;
    }
    Py_INCREF(c);
    c->linked = 1;
    c->prev = NULL;
    c->next = s->conns;
    if (s->conns != NULL) {
        s->conns->prev = c;
    }
    s->conns = c;
    s->n_conns++;
}

void cp_conn_unlink(ServerState *s, HttpProtocol *c)
{
    if (!c->linked) {
        return;
    }
    c->linked = 0;
    if (c->prev != NULL) {
        c->prev->next = c->next;
    } else {
        s->conns = c->next;
    }
    if (c->next != NULL) {
        c->next->prev = c->prev;
    }
    c->prev = c->next = NULL;
    s->n_conns--;
    Py_DECREF(c);
}

/* ---- transport calls ------------------------------------------------ */

/* transport.write() raised (the exception is set).  An OSError means the
   transport is broken -- uvloop closes it before raising -- so nothing more
   can be written: the request in flight is cut off as by a reset, and the
   app's next send() raises ClientDisconnected instead of writing again.
   Anything else (the stdlib's "cannot write" refusals) leaves it open.
   Returns -1 with the exception still set. */
static int write_failed(HttpProtocol *c)
{
    if (PyErr_ExceptionMatches(PyExc_OSError)) {
        PyObject *exc = cp_err_take();
        cp_conn_close(c);
        cp_err_restore(exc);
    }
    return -1;
}

int cp_conn_write(HttpProtocol *c, PyObject *data)
{
    if (c->write == NULL) {
        return 0;
    }
    if (c->server->metrics) {
        cp_metrics_bytes_out(c->server, data);
    }
    PyObject *r = PyObject_CallOneArg(c->write, data);
    if (r == NULL) {
        return write_failed(c);
    }
    Py_DECREF(r);
    return 0;
}

int cp_conn_writelines(HttpProtocol *c, PyObject *list)
{
    if (c->transport == NULL) {
        return 0;
    }
    if (!c->server->use_writelines) {
        /* The stdlib transport's writelines() does not apply write flow
           control on some CPython versions (gh-127655): write each part. */
        for (Py_ssize_t i = 0; i < PyList_GET_SIZE(list); i++) {
            if (cp_conn_write(c, PyList_GET_ITEM(list, i)) < 0) {
                return -1;
            }
        }
        return 0;
    }
    if (c->server->metrics) {
        for (Py_ssize_t i = 0; i < PyList_GET_SIZE(list); i++) {
            cp_metrics_bytes_out(c->server, PyList_GET_ITEM(list, i));
        }
    }
    PyObject *r = PyObject_CallMethodOneArg(c->transport, c->server->mod->s_writelines, list);
    if (r == NULL) {
        return write_failed(c);
    }
    Py_DECREF(r);
    return 0;
}

static void call_transport(HttpProtocol *c, PyObject *name)
{
    if (c->transport == NULL) {
        return;
    }
    PyObject *r = PyObject_CallMethodNoArgs(c->transport, name);
    if (r == NULL) {
        PyErr_WriteUnraisable((PyObject *)c);
    } else {
        Py_DECREF(r);
    }
}

/* The request in flight is cut off: nothing more from its app goes out, and
   the app hears http.disconnect. */
static void detach_cycle(HttpProtocol *c)
{
    RequestCycle *cy = c->cycle;
    if (cy != NULL) {
        c->cycle = NULL;
        cy->response_complete = 1;
        cp_cycle_disconnect(cy);
        Py_DECREF(cy);
    }
}

void cp_conn_close(HttpProtocol *c)
{
    if (c->state >= CP_ST_CLOSED) {
        return;
    }
    cp_conn_enter(c, CP_ST_CLOSED);
    /* Closed under a request in flight (ServerState.close_all): without this
       its later send() -- or the 500 for an app that then fails -- would
       write to a closing transport.  On HTTP/2, every stream's. */
    detach_cycle(c);
    cp_h2_close(c);
    /* stdlib TLS reads what is pending from inside close(): get_buffer()
       sees CLOSED and hands out the discard buffer */
    call_transport(c, c->server->mod->s_close);
}

static void set_reading(HttpProtocol *c, int paused)
{
    if (c->reading_paused == paused || c->lost) {
        return;
    }
    c->reading_paused = paused;
    call_transport(c, paused ? c->server->mod->s_pause_reading
                             : c->server->mod->s_resume_reading);
}

/* The body timeout (--timeout-request-body) runs only while body bytes are
   due from the client: in BODY or DRAIN with reading not paused.  Every
   read restarts it, so it measures silence, not the length of an upload;
   while we hold reading paused (the app lags behind) the wait is ours, not
   the client's, and no deadline runs. */
static void update_body_deadline(HttpProtocol *c)
{
    if ((c->state == CP_ST_BODY || c->state == CP_ST_DRAIN) && !c->reading_paused) {
        c->deadline = cp_server_now(c->server) + c->server->timeout_request_body;
        c->deadline_kind = CP_DL_BODY;
    } else if (c->deadline_kind == CP_DL_BODY) {
        c->deadline = 0;
    }
}

/* Pause reading while the app lags behind the body or pipelined requests
   pile up; resume once it catches up.  Bytes of a head still arriving are
   never a backlog: reading must go on for the head to complete (the head
   limit keeps it below the high-water mark). */
static void update_reading(HttpProtocol *c)
{
    if (c->state >= CP_ST_CLOSED) {
        return;
    }
    int pipelined = c->state == CP_ST_WAIT_RESPONSE || c->process_scheduled;
    int backlog = (pipelined && c->rlen - c->rpos > CP_HIGH_WATER) ||
                  (c->cycle != NULL && cp_cycle_body_backlogged(c->cycle));
    if (backlog != c->reading_paused) {
        set_reading(c, backlog);
        update_body_deadline(c);
    }
}

void cp_conn_body_consumed(HttpProtocol *c)
{
    if (c->reading_paused) {
        update_reading(c);
    }
}

void cp_conn_update_reading(HttpProtocol *c)
{
    update_reading(c);
    update_body_deadline(c);
}

static inline void set_keep_alive_deadline(HttpProtocol *c)
{
    c->deadline = cp_server_now(c->server) + c->server->timeout_keep_alive;
    c->deadline_kind = CP_DL_KEEP_ALIVE;
}

/* Shorten a connection's request-header deadline to the shutdown grace. */
static void set_shutdown_grace(HttpProtocol *c)
{
    double grace = cp_server_now(c->server) + CP_SHUTDOWN_HEAD_GRACE;
    if (c->deadline == 0 || grace < c->deadline) {
        c->deadline = grace;
    }
    c->deadline_kind = CP_DL_HEADER;
}

/* ---- the state machine ----------------------------------------------
 *
 * Every change of c->state is a call of cp_conn_enter(), which also sets
 * what the new state owes the client in time (its deadline); after each
 * event cp_conn_update_reading() recomputes the reading policy and the body
 * deadline from the state, whether reading is paused and what is buffered.
 *
 *   from            to              on                                 deadline
 *   (new)           HEAD            connection_made                    request head (shutdown grace)
 *   HEAD            BODY            a head with a body                 body silence
 *   HEAD            WAIT_RESPONSE   a head without a body              none
 *   BODY            WAIT_RESPONSE   the body ends                      none
 *   BODY            DRAIN           response complete, a small rest    body silence
 *   WAIT_RESPONSE   HEAD            response complete, keep-alive      keep-alive
 *   DRAIN           HEAD            the rest drained                   keep-alive
 *   HEAD            UPGRADED        Upgrade: websocket                 none (the handler's)
 *   any             CLOSED          error, timeout, close, lost        none
 *
 * Going back to HEAD after a request while the server shuts down closes
 * instead: keep-alive ends with the server.
 */
void cp_conn_enter(HttpProtocol *c, enum cp_conn_state next)
{
    ServerState *s = c->server;
    enum cp_conn_state prev = c->state;
    if (next == CP_ST_HEAD && prev != CP_ST_HEAD && s->shutting_down) {
        cp_conn_close(c);
        return;
    }
    c->state = next;
    switch (next) {
    case CP_ST_HEAD:
        if (prev == CP_ST_HEAD) { /* a new connection: its first head is due */
            c->deadline = cp_server_now(s) + s->timeout_request_header;
            c->deadline_kind = CP_DL_HEADER;
            if (s->shutting_down) {
                /* accepted in the same loop iteration that closed the listener */
                set_shutdown_grace(c);
            }
        } else {
            set_keep_alive_deadline(c);
        }
        break;
    case CP_ST_BODY:
    case CP_ST_DRAIN:
        update_body_deadline(c);
        break;
    case CP_ST_H2:
        /* idle until the first stream opens; h2.c keeps it from there */
        set_keep_alive_deadline(c);
        break;
    default: /* WAIT_RESPONSE: the app answers; CLOSED, UPGRADED: nothing due */
        c->deadline = 0;
        break;
    }
}

/* ---- errors and deadlines ------------------------------------------ */

/* What the request was, for the log line of a response the server made
   itself: the scope when the cycle kept one (the access log is on), else
   (method, target, http_version) when the request line was read, else None.
   New reference, or NULL with an exception. */
static PyObject *refused_request(HttpProtocol *c, const char *base, const cp_request *req)
{
    if (c->cycle != NULL && c->cycle->scope != NULL) {
        return Py_NewRef(c->cycle->scope);
    }
    if (base == NULL || req == NULL || req->target.len == 0) {
        Py_RETURN_NONE;
    }
    return Py_BuildValue("(s#y#s)", base + req->method.off, (Py_ssize_t)req->method.len,
                         base + req->target.off, (Py_ssize_t)req->target.len,
                         req->http_minor ? "1.1" : "1.0");
}

/* Tell Python about a response the server made itself: it logs the reason
   (rate-limited) and writes the access line. */
void cp_conn_report_refusal(HttpProtocol *c, int status, const char *reason, PyObject *request)
{
    ServerState *s = c->server;
    if (s->report_refusal == NULL) {
        return;
    }
    PyObject *st = PyLong_FromLong(status);
    PyObject *why = PyUnicode_FromString(reason ? reason : "");
    PyObject *r = NULL;
    if (st != NULL && why != NULL) {
        PyObject *args[4] = {st, why, c->client, request ? request : Py_None};
        r = PyObject_Vectorcall(s->report_refusal, args, 4, NULL);
    }
    if (r == NULL) {
        PyErr_WriteUnraisable(s->report_refusal);
    }
    Py_XDECREF(r);
    Py_XDECREF(st);
    Py_XDECREF(why);
}

void cp_count_refusal(ServerState *s, int status)
{
    switch (status) {
    case 408:
        s->stats.timeouts++;
        break;
    case 413:
        s->stats.bodies_too_large++;
        break;
    case 503:
        s->stats.overloaded++;
        break;
    case 500:
        s->stats.internal_errors++;
        break;
    default:
        s->stats.parse_errors++;
        cp_metrics_parse_error(s, status);
        break;
    }
}

/* Answer a protocol error (unless response bytes are already out) and
   close.  The app, if running, sees http.disconnect.  base/req describe the
   request for the log when the caller has them (else NULL). */
static void conn_fail_request(HttpProtocol *c, int status, const char *reason,
                              const char *base, const cp_request *req)
{
    if (c->state >= CP_ST_CLOSED) {
        return;
    }
    ServerState *s = c->server;
    cp_count_refusal(s, status);
    cp_body_drop(c);
    RequestCycle *cy = c->cycle;
    /* no answer once response bytes are out, or while draining the body of
       a request whose response was already sent */
    int can_answer = (cy == NULL || !cy->wire_started) && c->state != CP_ST_DRAIN;
    PyObject *request = NULL;
    if (s->report_refusal != NULL && can_answer && status > 0) {
        request = refused_request(c, base, req);
        if (request == NULL) {
            PyErr_WriteUnraisable((PyObject *)c);
        }
    }
    detach_cycle(c);
    if (can_answer && status > 0 && !c->lost) {
        if (s->metrics) {
            cp_metrics_response(s, status, 0);
        }
        PyObject *resp = cp_error_response(s, status);
        if (resp == NULL || cp_conn_write(c, resp) < 0) {
            PyErr_WriteUnraisable((PyObject *)c);
        }
        Py_XDECREF(resp);
    }
    cp_conn_close(c);
    if (request != NULL) {
        cp_conn_report_refusal(c, status, reason, request);
        Py_DECREF(request);
    }
}

void cp_conn_fail(HttpProtocol *c, int status, const char *reason)
{
    conn_fail_request(c, status, reason, NULL, NULL);
}

/* An internal error (an exception is set) while serving: report it, answer
   500 if nothing was written yet, close.  Returns -1; or -2 with the
   exception still set when it must propagate (cp_err_must_propagate). */
int cp_conn_internal_error(HttpProtocol *c)
{
    if (cp_err_must_propagate()) {
        PyObject *exc = cp_err_take();
        cp_conn_fail(c, 500, "internal error");
        cp_err_restore(exc);
        return -2;
    }
    PyErr_WriteUnraisable((PyObject *)c);
    cp_conn_fail(c, 500, "internal error");
    return -1;
}

static void check_deadline(HttpProtocol *c, double now)
{
    if (c->deadline == 0 || now < c->deadline || c->state >= CP_ST_CLOSED) {
        return;
    }
    if (c->state == CP_ST_H2) {
        cp_h2_idle_timeout(c); /* no stream open for timeout_keep_alive */
        return;
    }
    if (c->deadline_kind == CP_DL_HEADER && c->state == CP_ST_HEAD && c->rlen > c->rpos) {
        cp_conn_fail(c, 408, "request head not complete in time"); /* part of it came */
    } else if (c->deadline_kind == CP_DL_BODY &&
               (c->state == CP_ST_BODY || c->state == CP_ST_DRAIN)) {
        /* the body stalled: 408 unless the response already started (or
           was sent: DRAIN), then just close; the app hears http.disconnect */
        cp_conn_fail(c, 408, "request body stalled");
    } else {
        if (c->deadline_kind != CP_DL_KEEP_ALIVE) {
            c->server->stats.timeouts++; /* a client that never sent a head */
        }
        cp_conn_close(c);
    }
}

void cp_conn_shutdown(HttpProtocol *c)
{
    if (c->state == CP_ST_H2) {
        cp_h2_shutdown(c); /* GOAWAY; streams in flight finish */
        return;
    }
    if (c->state != CP_ST_HEAD || c->cycle != NULL) {
        return; /* the response in flight carries Connection: close; a
                   connection draining a body closes when the body ends */
    }
    if (c->deadline_kind == CP_DL_HEADER) {
        /* nothing served yet on this connection, or part of the next head
           arrived: the client is sending a request, let it (see core.h) */
        set_shutdown_grace(c);
    } else {
        cp_conn_close(c); /* idle between requests */
    }
}

/* ---- request dispatch ---------------------------------------------- */

static int keep_alive_of(const cp_request *req)
{
    if (req->flags & CP_F_CONN_CLOSE) {
        return 0;
    }
    if (req->http_minor == 0) {
        return (req->flags & CP_F_CONN_KEEP_ALIVE) != 0;
    }
    return 1;
}

/* ---- WebSocket upgrade ------------------------------------------------ */

/* Does an Upgrade field list the protocol "websocket" (a case-insensitive
   token of its comma-separated list)?  Only called when the parser saw an
   Upgrade field and a handler is installed, so plain requests pay nothing
   but the flag test in try_head. */
static int wants_websocket(const char *buf, const cp_request *req, const cp_header *hdrs)
{
    for (size_t i = 0; i < req->num_headers; i++) {
        const cp_header *h = &hdrs[i];
        if (cp_name_is(buf + h->name.off, h->name.len, "upgrade", 7) &&
            cp_list_has_token(buf + h->value.off, h->value.len, "websocket", 9)) {
            return 1;
        }
    }
    return 0;
}

/* The request's scope, with proxy headers applied.  They cost a Python call
   only on a trusted connection and only for a request that carries one (the
   parser flagged it).  The fix-up replaces values in this scope dict alone:
   the connection's client/scheme and any cached scope template stay as they
   were. */
static PyObject *request_scope(HttpProtocol *c, const char *base, const cp_request *req)
{
    ServerState *s = c->server;
    PyObject *scope = cp_build_scope(s, c, base, req, s->header_spans);
    if (scope != NULL && c->proxy_trusted && (req->flags & CP_F_PROXY_HEADERS)) {
        PyObject *fixed = PyObject_CallOneArg(s->proxy_fixup, scope);
        if (fixed == NULL) {
            Py_CLEAR(scope);
        }
        Py_XDECREF(fixed);
    }
    return scope;
}

/* Hand the connection to the server's websocket handler and detach.

   The request's scope is built as for HTTP (the handler turns it into a
   websocket scope); the bytes after the head -- a client may send its first
   frames right behind the handshake -- go along as `rest`.  Before the call
   this protocol lets go of the transport: it enters the terminal UPGRADED
   state, leaves the server's connection list (timeouts, shutdown and the
   connection count no longer see it; the handler keeps its own), consumes
   every buffered byte and resumes reading if it had paused it, so the
   handler starts from a clean transport.  The handler calls
   transport.set_protocol(); if it raises instead, the transport is closed.
   Always ends this connection's processing (returns 0, or -2 with an
   exception to propagate). */
static int conn_upgrade(HttpProtocol *c, const char *base, size_t head_len,
                        const cp_request *req)
{
    ServerState *s = c->server;
    PyObject *scope = NULL, *rest = NULL, *transport = NULL, *r = NULL;
    scope = request_scope(c, base, req);
    if (scope == NULL) {
        goto error;
    }
    rest = PyBytes_FromStringAndSize(base + head_len,
                                     (Py_ssize_t)(c->rlen - c->rpos - head_len));
    if (rest == NULL) {
        goto error;
    }
    s->stats.websocket_upgrades++;
    set_reading(c, 0);
    cp_conn_enter(c, CP_ST_UPGRADED);
    c->rpos = c->rlen; /* everything is in `rest`; the buffer is freed on return */
    transport = c->transport; /* our reference moves here */
    c->transport = NULL;
    Py_CLEAR(c->write);
    cp_body_drop(c);
    cp_conn_unlink(s, c); /* conn_process holds a reference to c */
    int rc = 0;
    if (transport != NULL) {
        PyObject *args[3] = {transport, scope, rest};
        r = PyObject_Vectorcall(s->websocket, args, 3, NULL);
        if (r == NULL) {
            rc = cp_err_must_propagate() ? -2 : 0;
            PyObject *exc = rc ? cp_err_take() : NULL;
            if (exc == NULL) {
                PyErr_WriteUnraisable(s->websocket);
            }
            PyObject *cr = PyObject_CallMethodNoArgs(transport, s->mod->s_close);
            if (cr == NULL) {
                PyErr_WriteUnraisable(transport);
            }
            Py_XDECREF(cr);
            cp_err_restore(exc);
        }
    }
    Py_XDECREF(r);
    Py_XDECREF(transport);
    Py_DECREF(scope);
    Py_DECREF(rest);
    if (!c->in_scratch) {
        buf_free(c); /* the caller reads nothing more from it */
    }
    return rc;
error:
    Py_XDECREF(scope);
    return cp_conn_internal_error(c);
}

/* ---- request heads -------------------------------------------------- */

static void head_forget(HttpProtocol *c)
{
    memset(&c->head_progress, 0, sizeof c->head_progress);
    c->head_checked = c->head_scanned = 0;
    PyMem_Free(c->head_saved);
    c->head_saved = NULL;
}

#define HEAD_NO_MEMORY (-100) /* parse_head: MemoryError set */

/* Parse the head at base, resuming where the last call stopped.  On
   CP_INCOMPLETE the spans found so far are saved with the connection. */
static ptrdiff_t parse_head(HttpProtocol *c, const char *base, size_t len, cp_request *req)
{
    ServerState *s = c->server;
    cp_head_saved *saved = c->head_saved;
    if (c->head_progress.in_fields && saved != NULL) {
        *req = saved->req;
        memcpy(s->header_spans, saved->spans, req->num_headers * sizeof(cp_header));
    }
    ptrdiff_t r = cp_parse_request_from(base, len, &s->limits, req, s->header_spans,
                                        &c->head_progress);
    if (r != CP_INCOMPLETE) {
        head_forget(c);
        return r;
    }
    if (c->head_progress.in_fields) {
        size_t n = req->num_headers;
        if (saved == NULL || saved->cap < n) {
            size_t cap = n < 8 ? 8 : n * 2;
            if (cap > s->limits.max_headers) {
                cap = s->limits.max_headers > n ? s->limits.max_headers : n;
            }
            cp_head_saved *grown =
                PyMem_Realloc(saved, sizeof(cp_head_saved) + cap * sizeof(cp_header));
            if (grown == NULL) {
                PyErr_NoMemory();
                return HEAD_NO_MEMORY;
            }
            saved = c->head_saved = grown;
            saved->cap = cap;
        }
        saved->req = *req;
        memcpy(saved->spans, s->header_spans, n * sizeof(cp_header));
    }
    return r;
}

/* Try to parse a head at rpos and start its request.  Returns 1 when a
   request was started, 0 when more bytes are needed, -1 after a failure
   (handled: the connection is closed), -2 with an exception that must
   propagate. */
static int try_head(HttpProtocol *c)
{
    ServerState *s = c->server;
    const char *base = cp_conn_data(c) + c->rpos;
    size_t len = c->rlen - c->rpos;

    /* A partial head was seen before: parse again only once a line may have
       completed, a CR is followed by a byte (it can only be a bare CR, a 400
       the client should hear now rather than at the header timeout), or the
       partial line may have outgrown every limit.  Bytes up to head_scanned
       are known to hold no '\n', and no CR except possibly the last one. */
    if (c->head_scanned > 0 && c->head_scanned <= len) {
        size_t from = c->head_scanned - 1;
        const char *nl = memchr(base + c->head_scanned, '\n', len - c->head_scanned);
        if (nl == NULL && memchr(base + from, '\r', len - 1 - from) == NULL &&
            len - c->head_checked <= c->head_line_max &&
            (s->limits.max_head_size == 0 || len <= s->limits.max_head_size)) {
            c->head_scanned = len;
            return 0;
        }
    }
    cp_request req;
    ptrdiff_t r = parse_head(c, base, len, &req);
    if (r == CP_INCOMPLETE) {
        c->head_checked = req.incomplete_line_start;
        c->head_line_max = req.incomplete_line_max;
        c->head_scanned = len > req.incomplete_line_start ? len : req.incomplete_line_start;
        if (c->deadline_kind != CP_DL_HEADER || c->deadline == 0) {
            c->deadline = cp_server_now(s) + s->timeout_request_header;
            c->deadline_kind = CP_DL_HEADER;
        }
        return 0;
    }
    if (r == HEAD_NO_MEMORY) {
        return cp_conn_internal_error(c);
    }
    if (r == CP_ERROR) {
        /* "PRI * HTTP/2.0" is no HTTP/1.1 request: on a connection's first
           bytes it is the HTTP/2 preface (h2c with prior knowledge) */
        if ((s->http_versions & CP_HTTP_2) && !c->served && c->rpos == 0) {
            size_t n = len < CP_H2_PREFACE_LEN ? len : CP_H2_PREFACE_LEN;
            if (memcmp(base, CP_H2_PREFACE, n) == 0) {
                if (n < CP_H2_PREFACE_LEN) {
                    return 0; /* the rest of the preface is on its way */
                }
                return cp_h2_begin(c) < 0 ? cp_conn_internal_error(c) : 1;
            }
        }
        conn_fail_request(c, req.error_status, req.error_reason, base, &req);
        return -1;
    }
    c->deadline = 0;
    c->served = 1;
    s->stats.requests_total++;
    if (!(s->http_versions & CP_HTTP_1)) {
        conn_fail_request(c, 505, "HTTP/1.1 is off (--http 2)", base, &req);
        return -1;
    }

    if (req.content_length >= 0 && s->max_body >= 0 && req.content_length > s->max_body) {
        conn_fail_request(c, 413, "Content-Length over limit_request_body", base, &req);
        return -1;
    }
    if (s->limit_concurrency >= 0 && s->n_tasks >= s->limit_concurrency) {
        conn_fail_request(c, 503, "limit_concurrency reached", base, &req);
        return -1;
    }
    if ((req.flags & CP_F_UPGRADE) && s->websocket != NULL &&
        wants_websocket(base, &req, s->header_spans)) {
        return conn_upgrade(c, base, (size_t)r, &req);
    }

    PyObject *scope = request_scope(c, base, &req);
    if (scope == NULL) {
        return cp_conn_internal_error(c);
    }
    RequestCycle *cy = cp_cycle_for_request(s, c);
    if (cy == NULL) {
        Py_DECREF(scope);
        return cp_conn_internal_error(c);
    }
    c->rpos += (size_t)r;
    cy->framing.http_minor = req.http_minor;
    cy->is_head = req.method_id == CP_METHOD_HEAD;
    cy->framing.keep_alive = keep_alive_of(&req);
    cy->trailers_allowed = req.http_minor == 1 && (req.flags & CP_F_TE_TRAILERS);
    c->cycle = cy; /* the connection's reference */
    if (cp_body_begin(c, &req) < 0) {
        Py_DECREF(scope);
        return cp_conn_internal_error(c);
    }
    cy->expect_continue = c->body_mode != CP_BODY_NONE && req.http_minor == 1 &&
                          (req.flags & CP_F_EXPECT_CONTINUE);
    if (c->body_mode == CP_BODY_NONE) {
        cy->body_complete = 1;
        cp_conn_enter(c, CP_ST_WAIT_RESPONSE);
    } else {
        cp_conn_enter(c, CP_ST_BODY);
        /* Hand over the body bytes that came with the head before the app
           runs, so its first receive() need not wait. */
        int fed = cp_body_feed(c);
        if (fed < 0 || c->cycle != cy) {
            Py_DECREF(scope);
            return fed < 0 ? fed : -1;
        }
        if (cy->body_queued > 0 || c->zc_fill > 0) {
            cy->expect_continue = 0; /* the client did not wait for it */
        }
    }
    Py_INCREF(cy);
    int rc = cp_cycle_start(cy, scope); /* may run the whole app (eager) */
    Py_DECREF(scope);
    int still_ours = c->cycle == cy;
    Py_DECREF(cy);
    if (rc < 0) {
        if (still_ours) {
            return cp_conn_internal_error(c); /* the app never got going: 500 */
        }
        /* The app ran and finished inside the call (eager start) and then
           the task's creation raised: what the app had to answer is
           answered; only the exception is left to deal with. */
        if (cp_err_must_propagate()) {
            return -2;
        }
        PyErr_WriteUnraisable((PyObject *)c);
    }
    return 1;
}

/* Have the loop call _process_pending for the bytes still buffered (once). */
static int schedule_processing(HttpProtocol *c)
{
    if (c->process_scheduled) {
        return 0;
    }
    PyObject *cb = PyObject_GetAttr((PyObject *)c, c->server->mod->s_process_pending);
    PyObject *h = cb ? PyObject_CallOneArg(c->server->call_soon, cb) : NULL;
    Py_XDECREF(cb);
    if (h == NULL) {
        return -1;
    }
    Py_DECREF(h);
    c->process_scheduled = 1;
    return 0;
}

/* Serve what the buffered bytes complete.  Returns 0, or -1 with an
   exception set that must propagate to the transport's caller. */
static int conn_process(HttpProtocol *c)
{
    if (c->processing) {
        return 0;
    }
    c->processing = 1;
    Py_INCREF(c);
    int started = 0, rc = 0, more_later = 0;
    for (;;) {
        int r;
        switch (c->state) {
        case CP_ST_HEAD:
            if (c->rpos < c->rlen && started == CP_REQUESTS_PER_READ) {
                more_later = 1; /* enough for one read: the rest next time */
                r = 0;
                break;
            }
            r = c->rpos < c->rlen ? try_head(c) : 0;
            started += r == 1;
            break;
        case CP_ST_BODY:
        case CP_ST_DRAIN:
            r = cp_body_feed(c);
            break;
        case CP_ST_H2:
            r = cp_h2_feed(c); /* takes every byte: 0 */
            break;
        default:
            r = 0;
            break;
        }
        if (r == -2) {
            rc = -1;
        }
        if (r <= 0) {
            break;
        }
    }
    c->processing = 0;
    if (more_later && rc == 0 && c->state == CP_ST_HEAD && schedule_processing(c) < 0 &&
        cp_conn_internal_error(c) == -2) {
        rc = -1;
    }
    Py_DECREF(c);
    return rc;
}

/* Move unconsumed scratch bytes into the connection's own buffer. */
static int keep_leftover(HttpProtocol *c)
{
    if (!c->in_scratch) {
        if (c->rpos == c->rlen) {
            buf_free(c);
        }
        return 0;
    }
    c->in_scratch = 0;
    c->server->scratch_busy = 0;
    size_t left = c->rlen - c->rpos;
    size_t from = c->rpos;
    c->rpos = c->rlen = 0;
    if (left == 0 || c->state >= CP_ST_CLOSED) {
        return 0;
    }
    if (buf_reserve(c, left < MIN_READ ? MIN_READ : left) < 0) {
        return -1;
    }
    memcpy(c->own.data, c->server->scratch + from, left);
    c->rlen = left;
    return 0;
}

/* Bytes read while the connection was processing follow its own. */
static int absorb_side(HttpProtocol *c)
{
    size_t n = c->side.len;
    if (buf_reserve(c, n) < 0) {
        return -1;
    }
    memcpy(c->own.data + c->rlen, c->side.data, n);
    c->rlen += n;
    cp_buf_release(&c->side);
    return 0;
}

/* A SystemExit or KeyboardInterrupt came up while serving (an app started
   eagerly inside the read raised it): raise it again from a callback of the
   loop's own, which every loop lets through to stop itself.  Raising it out
   of buffer_updated() would work with stdlib transports only: uvloop's
   catches whatever a protocol raises and just closes the connection.
   Steals exc; returns None, or NULL with exc raised if the loop cannot take
   the callback. */
static PyObject *reraise_now(PyObject *exc, PyObject *unused)
{
    (void)unused;
    PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
    return NULL;
}

static PyMethodDef reraise_def = {"reraise", reraise_now, METH_NOARGS,
                                  "Raise the exception again (from the loop)."};

static PyObject *raise_from_loop(ServerState *s, PyObject *exc)
{
    PyObject *cb = PyCFunction_New(&reraise_def, exc);
    PyObject *h = cb != NULL ? PyObject_CallOneArg(s->call_soon, cb) : NULL;
    Py_XDECREF(cb);
    if (h == NULL) {
        PyErr_Clear();
        cp_err_restore(exc);
        return NULL;
    }
    Py_DECREF(h);
    Py_DECREF(exc);
    Py_RETURN_NONE;
}

/* After a read (or the loop's call to _process_pending): serve, keep what is
   left, take in what was read meanwhile, then set reading and deadlines.
   process_rc is conn_process()'s result for the bytes just processed. */
static PyObject *conn_settle(HttpProtocol *c, int process_rc)
{
    Py_INCREF(c);
    PyObject *exc = process_rc < 0 ? cp_err_take() : NULL;
    for (;;) {
        if (keep_leftover(c) < 0) {
            if (cp_conn_internal_error(c) == -2 && exc == NULL) {
                exc = cp_err_take();
            }
            break;
        }
        if (c->side.len == 0 || c->state >= CP_ST_CLOSED || exc != NULL) {
            break;
        }
        if (absorb_side(c) < 0) {
            if (cp_conn_internal_error(c) == -2) {
                exc = cp_err_take();
            }
            break;
        }
        if (conn_process(c) < 0) {
            exc = cp_err_take();
        }
    }
    if (c->state >= CP_ST_CLOSED) {
        cp_buf_release(&c->side);
    } else {
        update_reading(c);
        update_body_deadline(c);
    }
    ServerState *s = c->server;
    Py_DECREF(c); /* the transport (or the loop's handle) still holds c */
    if (exc != NULL) {
        return raise_from_loop(s, exc);
    }
    Py_RETURN_NONE;
}

void cp_conn_response_complete(HttpProtocol *c, int keep_alive)
{
    RequestCycle *cy = c->cycle;
    c->cycle = NULL;
    if (c->state >= CP_ST_CLOSED) {
        Py_XDECREF(cy);
        return;
    }
    if (!keep_alive) {
        cp_conn_close(c);
    } else if (c->state == CP_ST_WAIT_RESPONSE) {
        cp_conn_enter(c, CP_ST_HEAD); /* (closes if the server shuts down) */
    } else if (c->state == CP_ST_BODY) {
        /* answered before the body was read: drop the rest if it is small
           (and the server goes on), else close */
        if (!c->server->shutting_down &&
            cp_body_abandon(c, cy != NULL && cy->expect_continue)) {
            cp_conn_enter(c, CP_ST_DRAIN);
        } else {
            cp_body_drop(c);
            cp_conn_close(c);
        }
    }
    Py_XDECREF(cy);
    if (c->state >= CP_ST_CLOSED) {
        return;
    }
    if (!c->processing && c->rpos < c->rlen && schedule_processing(c) < 0) {
        /* Pipelined bytes wait.  We are inside the app's send(); serving the
           next request from here would nest one app inside another, as deep
           as the pipeline is long.  The loop calls us back instead. */
        PyErr_WriteUnraisable((PyObject *)c);
        cp_conn_close(c);
        return;
    }
    if (!c->processing && c->rpos == c->rlen && !c->in_scratch) {
        buf_free(c);
    }
    update_reading(c);
}

static PyObject *proto_flush_h2(HttpProtocol *c, PyObject *unused)
{
    (void)unused;
    cp_h2_scheduled_flush(c);
    Py_RETURN_NONE;
}

static PyObject *proto_process_pending(HttpProtocol *c, PyObject *unused)
{
    (void)unused;
    c->process_scheduled = 0;
    if (c->state >= CP_ST_CLOSED || c->processing) {
        Py_RETURN_NONE;
    }
    return conn_settle(c, conn_process(c));
}

/* The loop's tick: deadlines, and a zero-copy body that is late (an app
   waiting in receive() gets what has arrived: body.c). */
void cp_conn_tick(HttpProtocol *c, double now)
{
    cp_body_tick(c);
    check_deadline(c, now);
}

/* ---- asyncio protocol methods -------------------------------------- */

/* (host, port) from a socket address as asyncio reports it, else None. */
static PyObject *address_tuple(PyObject *addr, int for_server)
{
    if (PyTuple_Check(addr) && PyTuple_GET_SIZE(addr) >= 2) {
        PyObject *host = PyTuple_GET_ITEM(addr, 0);
        PyObject *port = PyTuple_GET_ITEM(addr, 1);
        if (PyUnicode_Check(host) && PyLong_Check(port)) {
            return PyTuple_Pack(2, host, port);
        }
    }
    if (for_server && PyUnicode_Check(addr) && PyUnicode_GET_LENGTH(addr) > 0) {
        return PyTuple_Pack(2, addr, Py_None); /* Unix socket path */
    }
    Py_RETURN_NONE;
}

static PyObject *extra_info(HttpProtocol *c, PyObject *transport, PyObject *name)
{
    PyObject *args[2] = {transport, name};
    return PyObject_VectorcallMethod(c->server->mod->s_get_extra_info, args,
                                     2 | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
}

/* Decide once per connection whether its peer may speak for the client
   through proxy headers: proxy_trust(peername) -> bool, or everyone when
   there is no proxy_trust (forwarded_allow_ips "*"). */
static int proxy_trust(HttpProtocol *c, PyObject *peer)
{
    ServerState *s = c->server;
    if (s->proxy_trust == NULL) {
        c->proxy_trusted = 1;
        return 0;
    }
    PyObject *r = PyObject_CallOneArg(s->proxy_trust, peer);
    if (r == NULL) {
        return -1;
    }
    int trusted = PyObject_IsTrue(r);
    Py_DECREF(r);
    if (trusted < 0) {
        return -1;
    }
    c->proxy_trusted = trusted;
    return 0;
}

/* Whether TLS's ALPN chose "h2" for this connection: 1, 0, -1 on error. */
static int alpn_is_h2(HttpProtocol *c, PyObject *transport)
{
    PyObject *sslobj = extra_info(c, transport, c->server->mod->s_ssl_object);
    if (sslobj == NULL) {
        return -1;
    }
    if (sslobj == Py_None) {
        Py_DECREF(sslobj);
        return 0;
    }
    PyObject *proto = PyObject_CallMethodNoArgs(sslobj, c->server->mod->s_selected_alpn);
    Py_DECREF(sslobj);
    if (proto == NULL) {
        return -1;
    }
    int h2 = PyUnicode_Check(proto) && PyUnicode_CompareWithASCIIString(proto, "h2") == 0;
    Py_DECREF(proto);
    return h2;
}

/* A TLS connection whose client chose "h2" by ALPN speaks HTTP/2 from its
   first byte; one that did not is refused when HTTP/1.1 is off. */
static void choose_tls_protocol(HttpProtocol *c, PyObject *transport)
{
    ServerState *s = c->server;
    int h2 = (s->http_versions & CP_HTTP_2) ? alpn_is_h2(c, transport) : 0;
    if (h2 < 0) {
        PyErr_WriteUnraisable((PyObject *)c);
        h2 = 0;
    }
    if (h2) {
        if (cp_h2_begin(c) < 0) {
            PyErr_WriteUnraisable((PyObject *)c);
            cp_conn_close(c);
        }
    } else if (!(s->http_versions & CP_HTTP_1)) {
        cp_conn_close(c); /* --http 2 and the client did not offer h2 */
    }
}

/* Ask once per TLS connection for its scope extensions (the ASGI tls
   extension).  A failing call must not cost the connection: it is reported
   and the scopes go without. */
static void tls_extensions(HttpProtocol *c, PyObject *transport)
{
    ServerState *s = c->server;
    PyObject *ext = PyObject_CallOneArg(s->tls_extensions, transport);
    if (ext != NULL && !PyDict_CheckExact(ext)) {
        PyErr_Format(PyExc_TypeError, "tls_extensions must return a dict, not %.100s",
                     Py_TYPE(ext)->tp_name);
        Py_CLEAR(ext);
    }
    if (ext == NULL) {
        PyErr_WriteUnraisable(s->tls_extensions);
    }
    Py_XSETREF(c->extensions, ext);
}

static PyObject *proto_connection_made(HttpProtocol *c, PyObject *transport)
{
    ServerState *s = c->server;
    cp_state *st = s->mod;
    PyObject *peer = NULL, *sock = NULL, *ssl = NULL;
    Py_XSETREF(c->transport, Py_NewRef(transport));
    Py_XSETREF(c->write, PyObject_GetAttr(transport, st->s_write));
    if (c->write == NULL) {
        goto fail;
    }
    if ((peer = extra_info(c, transport, st->s_peername)) == NULL ||
        (sock = extra_info(c, transport, st->s_sockname)) == NULL ||
        (ssl = extra_info(c, transport, st->s_sslcontext)) == NULL) {
        goto fail;
    }
    Py_XSETREF(c->client, address_tuple(peer, 0));
    Py_XSETREF(c->server_addr, address_tuple(sock, 1));
    if (c->client == NULL || c->server_addr == NULL) {
        goto fail;
    }
    c->scheme = ssl != Py_None ? st->v_https : st->v_http;
    if (ssl != Py_None && s->tls_extensions != NULL) {
        tls_extensions(c, transport);
    }
    if (s->proxy_fixup != NULL && proxy_trust(c, peer) < 0) {
        /* a failing check must not cost the connection: it is untrusted */
        PyErr_WriteUnraisable(s->proxy_trust);
        c->proxy_trusted = 0;
    }
    int tls = ssl != Py_None;
    Py_DECREF(peer);
    Py_DECREF(sock);
    Py_DECREF(ssl);
    s->stats.connections_total++;
    cp_conn_link(s, c);
    cp_conn_enter(c, CP_ST_HEAD);
    if (tls && s->http_versions != CP_HTTP_1) {
        choose_tls_protocol(c, transport);
    }
    Py_RETURN_NONE;
fail:
    /* Not served: a connection outside the server's list would have no
       deadlines and no shutdown.  The loop reports the exception. */
    Py_XDECREF(peer);
    Py_XDECREF(sock);
    Py_XDECREF(ssl);
    {
        PyObject *exc = cp_err_take();
        cp_conn_enter(c, CP_ST_CLOSED);
        PyObject *r = PyObject_CallMethodNoArgs(transport, st->s_close);
        if (r == NULL) {
            PyErr_WriteUnraisable(transport);
        }
        Py_XDECREF(r);
        cp_err_restore(exc);
    }
    return NULL;
}

static PyObject *proto_get_buffer(HttpProtocol *c, PyObject *sizehint)
{
    (void)sizehint;
    ServerState *s = c->server;
    if (s == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "the connection was cleared");
        return NULL;
    }
    if (c->state >= CP_ST_CLOSED) {
        /* Closing: stdlib TLS reads what the peer still had in flight from
           inside transport.close() -- perhaps our own, from inside
           conn_process.  Nothing more is served, so the bytes are dropped,
           and the buffers being parsed are left alone. */
        c->read_into = CP_READ_DISCARD;
        return Py_NewRef(s->discard_view);
    }
    if (c->processing) {
        /* A transport call made while we process this connection's bytes
           reads more: keep them aside, in order, until the processing ends. */
        if (cp_buf_reserve(&c->side, MIN_READ) < 0) {
            return PyErr_NoMemory();
        }
        c->read_into = CP_READ_SIDE;
        return PyMemoryView_FromMemory(c->side.data + c->side.len,
                                       (Py_ssize_t)(c->side.cap - c->side.len), PyBUF_WRITE);
    }
    PyObject *body_view = cp_body_view(c);
    if (body_view != NULL || PyErr_Occurred()) {
        c->read_into = CP_READ_BODY;
        return body_view;
    }
    if (c->rlen > c->rpos || s->scratch_busy) {
        if (buf_reserve(c, MIN_READ) < 0) {
            return NULL;
        }
        c->read_into = CP_READ_OWN;
        return PyMemoryView_FromMemory(c->own.data + c->rlen, (Py_ssize_t)(c->own.cap - c->rlen),
                                       PyBUF_WRITE);
    }
    c->read_into = CP_READ_SCRATCH;
    return Py_NewRef(s->scratch_view);
}

static PyObject *proto_buffer_updated(HttpProtocol *c, PyObject *arg)
{
    Py_ssize_t n = PyLong_AsSsize_t(arg);
    if (n < 0) {
        if (!PyErr_Occurred()) {
            PyErr_SetString(PyExc_ValueError, "negative byte count");
        }
        return NULL;
    }
    ServerState *s = c->server;
    if (s != NULL && s->metrics) {
        s->stats.bytes_in += (uint64_t)n;
    }
    enum cp_read_into into = c->read_into;
    c->read_into = CP_READ_NONE;
    switch (into) {
    case CP_READ_DISCARD:
        Py_RETURN_NONE;
    case CP_READ_SIDE:
        if ((size_t)n > c->side.cap - c->side.len) {
            break;
        }
        c->side.len += (size_t)n; /* the processing under way takes them in */
        Py_RETURN_NONE;
    case CP_READ_BODY: {
        if (c->state >= CP_ST_CLOSED) {
            Py_RETURN_NONE;
        }
        Py_INCREF(c);
        int rc = cp_body_read(c, (size_t)n);
        Py_DECREF(c); /* the transport still holds c, and c holds s */
        if (rc == -1) {
            return NULL;
        }
        if (rc == -2) {
            return raise_from_loop(s, cp_err_take());
        }
        Py_RETURN_NONE;
    }
    case CP_READ_SCRATCH:
        if ((size_t)n > s->scratch_cap) {
            break;
        }
        if (c->state >= CP_ST_CLOSED) {
            Py_RETURN_NONE;
        }
        c->in_scratch = 1;
        s->scratch_busy = 1;
        c->rpos = 0;
        c->rlen = (size_t)n;
        return conn_settle(c, conn_process(c));
    case CP_READ_OWN:
        if ((size_t)n > c->own.cap - c->rlen) {
            break;
        }
        if (c->state >= CP_ST_CLOSED) {
            Py_RETURN_NONE;
        }
        c->rlen += (size_t)n;
        return conn_settle(c, conn_process(c));
    case CP_READ_NONE:
        PyErr_SetString(PyExc_RuntimeError, "buffer_updated() without get_buffer()");
        return NULL;
    }
    PyErr_SetString(PyExc_ValueError, "buffer_updated: more bytes than the buffer holds");
    return NULL;
}

static PyObject *proto_data_received(HttpProtocol *c, PyObject *data)
{
    /* For transports that do not speak BufferedProtocol. */
    Py_buffer view;
    if (PyObject_GetBuffer(data, &view, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    PyObject *res = NULL;
    size_t n = (size_t)view.len;
    if (c->server != NULL && c->server->metrics) {
        c->server->stats.bytes_in += n;
    }
    if (c->state >= CP_ST_CLOSED) {
        res = Py_NewRef(Py_None); /* closing: dropped, as in get_buffer */
    } else if (c->processing) {
        if (cp_buf_put(&c->side, view.buf, n) == 0) {
            res = Py_NewRef(Py_None);
        } else {
            PyErr_NoMemory();
        }
    } else {
        /* bytes held in scratch are moved out whenever processing ends, so
           a connection that is not processing keeps its bytes in its own buffer */
        if (buf_reserve(c, n) == 0) {
            memcpy(c->own.data + c->rlen, view.buf, n);
            c->rlen += n;
            PyBuffer_Release(&view);
            return conn_settle(c, conn_process(c));
        }
    }
    PyBuffer_Release(&view);
    return res;
}

static PyObject *proto_eof_received(HttpProtocol *c, PyObject *unused)
{
    (void)unused;
    /* The client half-closed.  If it sent a whole request that is still
       being answered, the app hears http.disconnect from receive() (so long
       polls and streams can stop), but the response may still be written;
       the connection closes after it.  Anything else -- idle, a partial
       request, or pipelined requests not yet started -- closes now (they
       are dropped, as the requests after the current one are above).
       TLS has no half-close: after the peer's close_notify the TLS
       transport shuts down whatever we answer (and warns if we answer
       True), so the connection closes now and the app's next send() raises
       ClientDisconnected instead of writing into a closing transport. */
    if (c->state == CP_ST_WAIT_RESPONSE && c->cycle != NULL &&
        c->scheme != c->server->mod->v_https) {
        cp_cycle_client_eof(c->cycle);
        Py_RETURN_TRUE;
    }
    /* Closed from here on, not only once connection_lost comes: pipelined
       bytes whose turn was already scheduled (_process_pending) must not be
       served into the closing transport.  (Found by fuzz_protocol.) */
    cp_conn_close(c);
    Py_RETURN_FALSE;
}

static void conn_lost_cleanup(HttpProtocol *c)
{
    c->lost = 1;
    cp_conn_enter(c, CP_ST_CLOSED);
    cp_h2_close(c);
    RequestCycle *cy = c->cycle;
    c->cycle = NULL;
    if (cy != NULL) {
        cp_cycle_disconnect(cy);
        Py_DECREF(cy);
    }
    cp_cycle_drop_spare(c);
    Py_CLEAR(c->write);
    Py_CLEAR(c->transport);
    cp_body_drop(c);
    if (!c->processing) {
        buf_free(c); /* else conn_settle frees it as the processing ends */
        cp_buf_release(&c->side);
    }
    head_forget(c);
    cp_conn_unlink(c->server, c);
}

static PyObject *proto_connection_lost(HttpProtocol *c, PyObject *exc)
{
    (void)exc;
    Py_INCREF(c);
    conn_lost_cleanup(c);
    Py_DECREF(c);
    Py_RETURN_NONE;
}

static PyObject *proto_pause_writing(HttpProtocol *c, PyObject *unused)
{
    (void)unused;
    c->writing_paused = 1;
    Py_RETURN_NONE;
}

static PyObject *proto_resume_writing(HttpProtocol *c, PyObject *unused)
{
    (void)unused;
    c->writing_paused = 0;
    if (c->cycle != NULL) {
        cp_cycle_wake_writer(c->cycle);
    }
    cp_h2_resume_writing(c);
    Py_RETURN_NONE;
}

static PyObject *proto_get_state(HttpProtocol *c, void *closure)
{
    (void)closure;
    static const char *const names[] = {"head", "body", "wait_response", "drain", "h2",
                                        "closed", "upgraded"};
    return PyUnicode_FromString(names[c->state]);
}

static PyObject *proto_get_buffered(HttpProtocol *c, void *closure)
{
    (void)closure;
    return PyLong_FromSize_t(c->own.cap);
}

/* ---- type ------------------------------------------------------------ */

PyObject *cp_protocol_new(ServerState *s)
{
    PyTypeObject *tp = s->mod->HttpProtocol_Type;
    HttpProtocol *c = (HttpProtocol *)tp->tp_alloc(tp, 0);
    if (c == NULL) {
        return NULL;
    }
    c->server = (ServerState *)Py_NewRef((PyObject *)s);
    c->client = Py_NewRef(Py_None);
    c->server_addr = Py_NewRef(Py_None);
    c->scheme = s->mod->v_http;
    c->state = CP_ST_HEAD;
    return (PyObject *)c;
}

static int proto_traverse(HttpProtocol *c, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(c));
    Py_VISIT(c->server);
    Py_VISIT(c->transport);
    Py_VISIT(c->write);
    Py_VISIT(c->client);
    Py_VISIT(c->server_addr);
    Py_VISIT(c->extensions);
    Py_VISIT(c->cycle);
    Py_VISIT(c->spare);
    Py_VISIT(c->spare_receive);
    Py_VISIT(c->spare_send);
    Py_VISIT(c->zc_body);
    return cp_h2_traverse(c, visit, arg);
}

static int proto_clear(HttpProtocol *c)
{
    cp_h2_close(c);
    cp_body_drop(c);
    Py_CLEAR(c->transport);
    Py_CLEAR(c->write);
    Py_CLEAR(c->client);
    Py_CLEAR(c->server_addr);
    Py_CLEAR(c->extensions);
    Py_CLEAR(c->cycle);
    cp_cycle_drop_spare(c);
    if (c->linked && c->server != NULL) {
        cp_conn_unlink(c->server, c);
    }
    Py_CLEAR(c->server);
    return 0;
}

static void proto_dealloc(HttpProtocol *c)
{
    PyTypeObject *tp = Py_TYPE(c);
    PyObject_GC_UnTrack(c);
    proto_clear(c);
    buf_free(c);
    cp_buf_release(&c->side);
    head_forget(c);
    tp->tp_free((PyObject *)c);
    Py_DECREF(tp);
}

static PyMethodDef proto_methods[] = {
    {"connection_made", (PyCFunction)proto_connection_made, METH_O, NULL},
    {"get_buffer", (PyCFunction)proto_get_buffer, METH_O, NULL},
    {"buffer_updated", (PyCFunction)proto_buffer_updated, METH_O, NULL},
    {"data_received", (PyCFunction)proto_data_received, METH_O, NULL},
    {"eof_received", (PyCFunction)proto_eof_received, METH_NOARGS, NULL},
    {"connection_lost", (PyCFunction)proto_connection_lost, METH_O, NULL},
    {"pause_writing", (PyCFunction)proto_pause_writing, METH_NOARGS, NULL},
    {"resume_writing", (PyCFunction)proto_resume_writing, METH_NOARGS, NULL},
    {"_flush_h2", (PyCFunction)proto_flush_h2, METH_NOARGS,
     "Write what HTTP/2 streams queued in this turn of the loop (h2.c)."},
    {"_process_pending", (PyCFunction)proto_process_pending, METH_NOARGS,
     "Serve pipelined requests that waited for the previous response."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef proto_getset[] = {
    {"state", (getter)proto_get_state, NULL, "Connection state (for tests).", NULL},
    {"buffer_capacity", (getter)proto_get_buffered, NULL,
     "Bytes of receive buffer this connection owns (0 when idle).", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot proto_slots[] = {
    {Py_tp_dealloc, proto_dealloc},
    {Py_tp_traverse, proto_traverse},
    {Py_tp_clear, proto_clear},
    {Py_tp_methods, proto_methods},
    {Py_tp_getset, proto_getset},
    {Py_tp_doc, "One HTTP/1.1 connection (an asyncio BufferedProtocol)."},
    {0, NULL},
};

PyType_Spec cp_protocol_spec = {
    .name = "carpinus._core.HttpProtocol",
    .basicsize = sizeof(HttpProtocol),
    /* not IMMUTABLETYPE: its base, asyncio.BufferedProtocol, is a mutable
       Python class, and 3.12+ deprecate immutable subclasses of those */
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_DISALLOW_INSTANTIATION,
    .slots = proto_slots,
};
