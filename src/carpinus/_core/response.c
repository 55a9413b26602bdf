/*
 * response.c -- the app's http.response.* messages, read and checked; the
 * bytes they become come from the writer (writer.c), and cycle.c writes
 * them.
 *
 * http.response.start is validated and its head serialized at once into the
 * cycle's head buffer (so a bad header raises in the app's own send() call
 * and never reaches the wire), but nothing is written yet: the framing
 * depends on the first http.response.body.  If that body is final and the
 * app declared no Content-Length, the writer adds one; if more follows,
 * HTTP/1.1 gets chunked encoding and HTTP/1.0 a close-delimited body.  Head
 * and a small first body go out in a single write.
 *
 * The framing is the server's alone: a Transfer-Encoding header from the app
 * is dropped (the ASGI spec says the server must ignore it), and a 1xx status
 * is refused (ASGI has no interim responses in http.response.start; one
 * written as final would desynchronise the client).
 *
 * App code may run while a message is read (a Mapping's __getitem__, a
 * headers iterator, more_body's __bool__): everything is read from the
 * message before the response's state changes, and the connection is looked
 * at again after.  send() itself refuses to be re-entered (cycle.c).
 */
#include "core.h"

#include <string.h>

/* ---- the Date line and the status line ------------------------------ */

/* Make s->date_line current: kept for the second with status_cache, made
   for every response without it (the baseline the optimization is
   measured against). */
static void refresh_date(ServerState *s)
{
    time_t now = time(NULL);
    if ((s->opts & CP_OPT_STATUS_CACHE) && now == s->date_second && s->date_len > 0) {
        return;
    }
    s->date_len = cp_write_date_line(s->date_line, now);
    s->date_second = now;
}

/* The status line into the head; from the module's table with
   status_cache. */
static int put_status_line(ServerState *s, cp_buf *head, int status)
{
    if (cp_buf_reserve(head, CP_STATUS_LINE_MAX) < 0) {
        PyErr_NoMemory();
        return -1;
    }
    if (s->opts & CP_OPT_STATUS_CACHE) {
        const cp_state *st = s->mod;
        size_t n = st->status_line_len[status - 100];
        memcpy(head->data + head->len, st->status_lines[status - 100], n);
        head->len += n;
        s->stats.status_lines_cached++;
    } else {
        head->len += cp_write_status_line(head->data + head->len, status);
        s->stats.status_lines_formatted++;
    }
    return 0;
}

static int put(cp_buf *b, const char *p, size_t n)
{
    if (cp_buf_put(b, p, n) < 0) {
        PyErr_NoMemory();
        return -1;
    }
    return 0;
}

/* ---- message access ------------------------------------------------- */

/* New reference to message[key], or NULL without an exception when the key
   is absent; NULL with an exception on error.  With direct_response the key
   is the module's interned str and an exact dict is read directly; without
   it, the generic mapping protocol with a key made from `name` (the
   baseline the optimization is measured against). */
static PyObject *msg_get(const ServerState *s, PyObject *message, PyObject *key,
                         const char *name)
{
    PyObject *v;
    if ((s->opts & CP_OPT_DIRECT_RESPONSE) && PyDict_CheckExact(message)) {
        /* (strong from the start: the app's other threads may change the
           dict meanwhile when there is no GIL) */
        (void)PyDict_GetItemRef(message, key, &v);
        return v;
    }
    if (s->opts & CP_OPT_DIRECT_RESPONSE) {
        v = PyObject_GetItem(message, key);
    } else {
        v = PyMapping_GetItemString(message, name);
    }
    if (v == NULL && PyErr_ExceptionMatches(PyExc_KeyError)) {
        PyErr_Clear();
    }
    return v;
}

/* ---- default headers (--header NAME:VALUE) --------------------------- */

/* *out = the bytes of a non-empty buffer (new reference), else NULL. */
static int bytes_or_null(const cp_buf *b, PyObject **out)
{
    *out = NULL;
    if (b->len == 0) {
        return 0;
    }
    *out = PyBytes_FromStringAndSize(b->data, (Py_ssize_t)b->len);
    return *out == NULL ? -1 : 0;
}

/* One (name, value) default header into *servers (a Server line) or
   *others.  -1 with an exception. */
static int add_default_header(PyObject *item, cp_buf *servers, cp_buf *others)
{
    PyObject *name = NULL, *value = NULL;
    if (!PyTuple_Check(item) || PyTuple_GET_SIZE(item) != 2 ||
        !PyBytes_Check(name = PyTuple_GET_ITEM(item, 0)) ||
        !PyBytes_Check(value = PyTuple_GET_ITEM(item, 1))) {
        PyErr_Format(PyExc_TypeError,
                     "Expected each default header to be a (name, value) tuple of "
                     "bytes, but got %R.",
                     item);
        return -1;
    }
    const char *np = PyBytes_AS_STRING(name);
    size_t nlen = (size_t)PyBytes_GET_SIZE(name);
    const char *vp = PyBytes_AS_STRING(value);
    size_t vlen = (size_t)PyBytes_GET_SIZE(value);
    /* the same rules as for headers an app sends (add_header) */
    if (!cp_field_name_ok(np, nlen)) {
        PyErr_Format(PyExc_ValueError, "Invalid HTTP header name: %R.", name);
        return -1;
    }
    if (!cp_field_value_ok(vp, vlen)) {
        PyErr_Format(PyExc_ValueError, "Invalid HTTP header value: %R.", value);
        return -1;
    }
    /* framing is decided per response, and Date is made per second */
    if (cp_name_is(np, nlen, "content-length", 14) ||
        cp_name_is(np, nlen, "transfer-encoding", 17) ||
        cp_name_is(np, nlen, "connection", 10) || cp_name_is(np, nlen, "date", 4)) {
        PyErr_Format(PyExc_ValueError,
                     "%R cannot be a default header: the server sets it per response.",
                     name);
        return -1;
    }
    cp_buf *into = cp_name_is(np, nlen, "server", 6) ? servers : others;
    if (cp_buf_put_field_lower(into, np, nlen, vp, vlen) < 0) {
        PyErr_NoMemory();
        return -1;
    }
    return 0;
}

int cp_default_headers(PyObject *pairs, int server_header, PyObject **server_line,
                       PyObject **extra)
{
    *server_line = *extra = NULL;
    cp_buf servers, others;
    cp_buf_init(&servers, NULL, 0);
    cp_buf_init(&others, NULL, 0);
    PyObject *seq = NULL;
    int rc = -1;
    if (pairs != NULL && pairs != Py_None) {
        seq = PySequence_Fast(pairs, "default headers must be a sequence of (name, value)");
        if (seq == NULL) {
            goto done;
        }
        /* the caller's list (Config's): locked as the app's are
           (cp_response_start); the pairs are tuples, immutable */
        int pair_rc = 0;
        Py_BEGIN_CRITICAL_SECTION(seq);
        for (Py_ssize_t i = 0; pair_rc == 0 && i < PySequence_Fast_GET_SIZE(seq); i++) {
            PyObject *item = Py_NewRef(PySequence_Fast_GET_ITEM(seq, i));
            pair_rc = add_default_header(item, &servers, &others);
            Py_DECREF(item);
        }
        Py_END_CRITICAL_SECTION();
        if (pair_rc < 0) {
            goto done;
        }
    }
    /* a default Server header given here replaces ours, as in uvicorn */
    if (servers.len == 0 && server_header &&
        cp_buf_put_field(&servers, "server", 6, "carpinus", 8) < 0) {
        PyErr_NoMemory();
        goto done;
    }
    if (bytes_or_null(&servers, server_line) < 0 || bytes_or_null(&others, extra) < 0) {
        Py_CLEAR(*server_line);
        goto done;
    }
    rc = 0;
done:
    Py_XDECREF(seq);
    cp_buf_release(&servers);
    cp_buf_release(&others);
    return rc;
}

/* ---- http.response.start ------------------------------------------- */

/* One [name, value] pair of a message's headers, checked: the bytes of
   each (borrowed from item).  -1 with an exception. */
static inline int field_of(PyObject *item, const char **np, size_t *nlen, const char **vp,
                           size_t *vlen)
{
    PyObject *name, *value;
    if (PyTuple_CheckExact(item) && PyTuple_GET_SIZE(item) == 2) {
        name = PyTuple_GET_ITEM(item, 0);
        value = PyTuple_GET_ITEM(item, 1);
    } else if (PyList_CheckExact(item) && PyList_GET_SIZE(item) == 2) {
        name = PyList_GET_ITEM(item, 0);
        value = PyList_GET_ITEM(item, 1);
    } else {
        PyErr_Format(PyExc_TypeError,
                     "Expected each response header to be a [name, value] pair of "
                     "bytes, but got %R.",
                     item);
        return -1;
    }
    if (!PyBytes_Check(name) || !PyBytes_Check(value)) {
        PyErr_Format(PyExc_TypeError,
                     "Expected response header name and value to be bytes, but got "
                     "%R.",
                     item);
        return -1;
    }
    *np = PyBytes_AS_STRING(name);
    *nlen = (size_t)PyBytes_GET_SIZE(name);
    *vp = PyBytes_AS_STRING(value);
    *vlen = (size_t)PyBytes_GET_SIZE(value);
    if (*nlen == 0) {
        PyErr_SetString(PyExc_RuntimeError, "Invalid HTTP header name: empty.");
        return -1;
    }
    if (!cp_field_name_ok(*np, *nlen)) {
        PyErr_Format(PyExc_RuntimeError, "Invalid HTTP header name: %R.", name);
        return -1;
    }
    if (!cp_field_value_ok(*vp, *vlen)) {
        PyErr_Format(PyExc_RuntimeError, "Invalid HTTP header value: %R.", value);
        return -1;
    }
    return 0;
}

static int add_header_impl(RequestCycle *cy, PyObject *item, int *seen_server,
                           int *seen_date)
{
    const char *np, *vp;
    size_t nlen, vlen;
    if (field_of(item, &np, &nlen, &vp, &vlen) < 0) {
        return -1;
    }
    cp_framing *f = &cy->framing;
    switch (nlen) {
    case 4:
        if (cp_name_is(np, nlen, "date", 4)) {
            *seen_date = 1;
        }
        break;
    case 6:
        if (cp_name_is(np, nlen, "server", 6)) {
            *seen_server = 1;
        }
        break;
    case 10:
        if (cp_name_is(np, nlen, "connection", 10) && cp_list_has_token(vp, vlen, "close", 5)) {
            f->app_close = 1;
        }
        break;
    case 14:
        if (cp_name_is(np, nlen, "content-length", 14)) {
            int64_t cl;
            if (cp_parse_length(vp, vlen, &cl) < 0 || (f->length >= 0 && f->length != cl)) {
                /* (item is a checked pair: field_of) */
                PyErr_Format(PyExc_RuntimeError, "Invalid Content-Length header: %R.",
                             PyTuple_Check(item) ? PyTuple_GET_ITEM(item, 1)
                                                 : PyList_GET_ITEM(item, 1));
                return -1;
            }
            f->length = cl;
        }
        break;
    case 17:
        if (cp_name_is(np, nlen, "transfer-encoding", 17)) {
            return 0; /* ignored: the server chooses the framing */
        }
        break;
    default:
        break;
    }
    if (cp_buf_put_field(&cy->head, np, nlen, vp, vlen) < 0) {
        PyErr_NoMemory();
        return -1;
    }
    return 0;
}

/* One (name, value) pair into the head.  A tuple is read as it is; a pair
   that is a list may change under us without the GIL, so it is locked while
   its name and value (borrowed from it) are read.  Tuples -- what apps and
   frameworks send, often the same constant in every request -- are never
   locked: threads serving requests at once would otherwise queue on them. */
static int add_header(RequestCycle *cy, PyObject *item, int *seen_server, int *seen_date)
{
#ifdef Py_GIL_DISABLED
    if (!PyTuple_CheckExact(item)) {
        int rc;
        Py_BEGIN_CRITICAL_SECTION(item);
        rc = add_header_impl(cy, item, seen_server, seen_date);
        Py_END_CRITICAL_SECTION();
        return rc;
    }
#endif
    return add_header_impl(cy, item, seen_server, seen_date);
}

/* Item i of seq (what PySequence_Fast returned) as a new reference; NULL,
   without an exception, past its end.  seq may be the app's own list, which
   an app may share between requests -- and, without the GIL, between the
   threads serving them.  It is read without a lock (PyList_GetItemRef takes
   a strong reference lock-free on 3.13t), so that no thread waits for
   another on it, and its length is read afresh on every step, since it may
   change meanwhile.  (A tuple cannot change.) */
static PyObject *fast_item(PyObject *seq, Py_ssize_t i)
{
#ifndef Py_GIL_DISABLED
    /* with the GIL nothing changes the list while we read it */
    return i < PySequence_Fast_GET_SIZE(seq) ? Py_NewRef(PySequence_Fast_GET_ITEM(seq, i)) : NULL;
#endif
    if (PyTuple_CheckExact(seq)) {
        return i < PyTuple_GET_SIZE(seq) ? Py_NewRef(PyTuple_GET_ITEM(seq, i)) : NULL;
    }
    if (i >= PyList_GET_SIZE(seq)) {
        return NULL;
    }
    PyObject *item = PyList_GetItemRef(seq, i);
    if (item == NULL) {
        PyErr_Clear(); /* it got shorter since: its end */
    }
    return item;
}

int cp_response_start(RequestCycle *cy, PyObject *message)
{
    ServerState *s = cy->server;
    cp_state *st = s->mod;
    PyObject *status_obj = msg_get(s, message, st->k_status, "status");
    if (status_obj == NULL) {
        if (!PyErr_Occurred()) {
            PyErr_SetString(PyExc_RuntimeError,
                            "Expected 'status' in 'http.response.start' message.");
        }
        return -1;
    }
    if (!PyLong_Check(status_obj)) {
        PyErr_Format(PyExc_TypeError, "Expected an int status, but got %R.", status_obj);
        Py_DECREF(status_obj);
        return -1;
    }
    long status = PyLong_AsLong(status_obj);
    Py_DECREF(status_obj);
    if (status == -1 && PyErr_Occurred()) {
        return -1;
    }
    if (status < 100 || status > 599) {
        PyErr_Format(PyExc_RuntimeError, "Invalid HTTP status code: %ld.", status);
        return -1;
    }
    if (status < 200) {
        PyErr_Format(PyExc_RuntimeError,
                     "Status %ld is informational (1xx): http.response.start starts the "
                     "final response, which must be 200-599.",
                     status);
        return -1;
    }
    cy->status = (int)status;
    /* trailers: True asks for the trailers extension, where it is offered */
    cy->trailers_expected = 0;
    if (cy->trailers_allowed) {
        PyObject *trailers = msg_get(s, message, st->k_trailers, "trailers");
        if (trailers == NULL && PyErr_Occurred()) {
            return -1;
        }
        int want = trailers != NULL ? PyObject_IsTrue(trailers) : 0;
        Py_XDECREF(trailers);
        if (want < 0) {
            return -1;
        }
        cy->trailers_expected = want;
    }
    /* a start that failed validation may have set these: start afresh */
    cy->framing.length = -1;
    cy->framing.app_close = 0;
    cy->head.len = 0;
    if (put_status_line(s, &cy->head, cy->status) < 0) {
        return -1;
    }

    int seen_server = 0, seen_date = 0;
    PyObject *headers = msg_get(s, message, st->k_headers, "headers");
    if (headers == NULL && PyErr_Occurred()) {
        return -1;
    }
    if (headers != NULL) {
        PyObject *seq = PySequence_Fast(headers, "Expected 'headers' to be an iterable.");
        Py_DECREF(headers);
        if (seq == NULL) {
            return -1;
        }
        /* seq is the app's own list when it sent one (fast_item) */
        int rc = 0;
        PyObject *item;
        for (Py_ssize_t i = 0; rc == 0 && (item = fast_item(seq, i)) != NULL; i++) {
            rc = add_header(cy, item, &seen_server, &seen_date);
            Py_DECREF(item);
        }
        Py_DECREF(seq);
        if (rc < 0) {
            return -1;
        }
    }
    if (s->server_line != NULL && !seen_server &&
        put(&cy->head, PyBytes_AS_STRING(s->server_line),
            (size_t)PyBytes_GET_SIZE(s->server_line)) < 0) {
        return -1;
    }
    if (s->date_header && !seen_date) {
        refresh_date(s);
        if (put(&cy->head, s->date_line, s->date_len) < 0) {
            return -1;
        }
    }
    /* --header NAME:VALUE: serialized once at start-up, sent with every
       response (beside the app's own headers, as uvicorn does) */
    if (s->extra_headers != NULL &&
        put(&cy->head, PyBytes_AS_STRING(s->extra_headers),
            (size_t)PyBytes_GET_SIZE(s->extra_headers)) < 0) {
        return -1;
    }
    int code = cy->status;
    cy->framing.no_body = cy->is_head || code == 204 || code == 304;
    /* HTTP/1.1 carries trailers only after a chunked body: not after none,
       nor after one the app delimited with its Content-Length */
    if (cy->stream_id == 0 && (cy->framing.no_body || cy->framing.length >= 0)) {
        cy->trailers_expected = 0;
    }
    return 0;
}

/* ---- http.response.trailers ---------------------------------------- */

static int add_trailer_impl(RequestCycle *cy, PyObject *item)
{
    const char *np, *vp;
    size_t nlen, vlen;
    int rc = field_of(item, &np, &nlen, &vp, &vlen);
    /* what frames or routes a message cannot come after it (RFC 9110 6.5.1) */
    if (rc == 0 && (cp_name_is(np, nlen, "content-length", 14) ||
                    cp_name_is(np, nlen, "transfer-encoding", 17) ||
                    cp_name_is(np, nlen, "host", 4) || cp_name_is(np, nlen, "connection", 10) ||
                    cp_name_is(np, nlen, "trailer", 7))) {
        PyErr_Format(PyExc_RuntimeError, "%R cannot be a trailer field.", item);
        rc = -1;
    }
    if (rc == 0 && cp_buf_put_field(&cy->head, np, nlen, vp, vlen) < 0) {
        PyErr_NoMemory();
        rc = -1;
    }
    return rc;
}

/* One trailer field into cy->head; a pair that is a list is locked, as in
   add_header. */
static int add_trailer(RequestCycle *cy, PyObject *item)
{
#ifdef Py_GIL_DISABLED
    if (!PyTuple_CheckExact(item)) {
        int rc;
        Py_BEGIN_CRITICAL_SECTION(item);
        rc = add_trailer_impl(cy, item);
        Py_END_CRITICAL_SECTION();
        return rc;
    }
#endif
    return add_trailer_impl(cy, item);
}

int cp_response_trailers(RequestCycle *cy, PyObject *message, int *more)
{
    ServerState *s = cy->server;
    cp_state *st = s->mod;
    PyObject *more_obj = msg_get(s, message, st->k_more_trailers, "more_trailers");
    if (more_obj == NULL && PyErr_Occurred()) {
        return -1;
    }
    *more = more_obj != NULL ? PyObject_IsTrue(more_obj) : 0;
    Py_XDECREF(more_obj);
    if (*more < 0) {
        return -1;
    }
    PyObject *headers = msg_get(s, message, st->k_headers, "headers");
    if (headers == NULL) {
        return PyErr_Occurred() ? -1 : 0;
    }
    PyObject *seq = PySequence_Fast(headers, "Expected 'headers' to be an iterable.");
    Py_DECREF(headers);
    if (seq == NULL) {
        return -1;
    }
    int rc = 0;
    /* the app's list and pairs, read as in cp_response_start */
    PyObject *item;
    for (Py_ssize_t i = 0; rc == 0 && (item = fast_item(seq, i)) != NULL; i++) {
        rc = add_trailer(cy, item);
        Py_DECREF(item);
    }
    Py_DECREF(seq);
    return rc;
}

int cp_response_early_hint(RequestCycle *cy, PyObject *message, cp_buf *out)
{
    ServerState *s = cy->server;
    PyObject *links = msg_get(s, message, s->mod->k_links, "links");
    if (links == NULL) {
        if (!PyErr_Occurred()) {
            PyErr_SetString(PyExc_RuntimeError, "'http.response.early_hint' has no 'links'.");
        }
        return -1;
    }
    PyObject *seq = PySequence_Fast(links, "Expected 'links' to be an iterable of bytes.");
    Py_DECREF(links);
    if (seq == NULL) {
        return -1;
    }
    static const char status[] = "HTTP/1.1 103 Early Hints\r\n";
    int rc = 0;
    /* the app's list, read as in cp_response_start; the links are bytes */
    PyObject *link;
    Py_ssize_t n = 0;
    for (; rc == 0 && (link = fast_item(seq, n)) != NULL; n++) {
        if (n == 0 && cp_buf_put(out, status, sizeof(status) - 1) < 0) {
            PyErr_NoMemory();
            rc = -1;
        } else if (!PyBytes_Check(link)) {
            PyErr_Format(PyExc_TypeError, "Expected each link to be bytes, but got %R.", link);
            rc = -1;
        } else if (!cp_field_value_ok(PyBytes_AS_STRING(link), (size_t)PyBytes_GET_SIZE(link))) {
            PyErr_Format(PyExc_RuntimeError, "Invalid Link header value: %R.", link);
            rc = -1;
        } else if (cp_buf_put_field(out, "link", 4, PyBytes_AS_STRING(link),
                                    (size_t)PyBytes_GET_SIZE(link)) < 0) {
            PyErr_NoMemory();
            rc = -1;
        }
        Py_DECREF(link);
    }
    if (rc == 0 && n > 0 && cp_buf_put(out, "\r\n", 2) < 0) {
        PyErr_NoMemory();
        rc = -1;
    }
    Py_DECREF(seq);
    return rc;
}

PyObject *cp_response_trailer_bytes(RequestCycle *cy)
{
    size_t n = cy->head.len;
    PyObject *out = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)(n + 5));
    if (out != NULL) {
        char *w = PyBytes_AS_STRING(out);
        memcpy(w, "0\r\n", 3);
        memcpy(w + 3, cy->head.data, n);
        memcpy(w + 3 + n, "\r\n", 2);
    }
    return out;
}

/* ---- http.response.body -------------------------------------------- */

int cp_response_body_parts(RequestCycle *cy, PyObject *message, cp_body_parts *parts)
{
    ServerState *s = cy->server;
    cp_state *st = s->mod;
    memset(parts, 0, sizeof(*parts));
    parts->prefix = parts->suffix = ""; /* never NULL: they are memcpy'd */
    PyObject *body = msg_get(s, message, st->k_body, "body");
    if (body == NULL && PyErr_Occurred()) {
        return -1;
    }
    PyObject *more_obj = msg_get(s, message, st->k_more_body, "more_body");
    if (more_obj == NULL && PyErr_Occurred()) {
        Py_XDECREF(body);
        return -1;
    }
    int more_body = 0;
    if (more_obj != NULL) {
        more_body = PyObject_IsTrue(more_obj);
        Py_DECREF(more_obj);
        if (more_body < 0) {
            Py_XDECREF(body);
            return -1;
        }
    }
    if (body == NULL || body == Py_None) {
        Py_XDECREF(body);
        body = Py_NewRef(st->empty_bytes);
    }
    if (!PyBytes_Check(body)) {
        if (PyByteArray_Check(body) || PyMemoryView_Check(body)) {
            Py_SETREF(body, PyBytes_FromObject(body));
            if (body == NULL) {
                return -1;
            }
        } else {
            PyErr_Format(PyExc_TypeError, "Expected 'body' to be bytes, but got %R.",
                         (PyObject *)Py_TYPE(body));
            Py_DECREF(body);
            return -1;
        }
    }
    /* App code may have run (more_body's __bool__, a Mapping): look at the
       connection again. */
    if (cy->conn == NULL || cy->disconnected || cy->response_complete) {
        PyErr_SetString(st->ClientDisconnected, "The connection is closed.");
        Py_DECREF(body);
        return -1;
    }
    size_t blen = (size_t)PyBytes_GET_SIZE(body);
    cp_framing *f = &cy->framing;
    if (f->length >= 0 && !f->no_body && cy->out_sent + (int64_t)blen > f->length) {
        PyErr_SetString(PyExc_RuntimeError, "Response content longer than Content-Length");
        Py_DECREF(body);
        return -1;
    }
    parts->more_body = more_body;
    parts->body_len = blen;
    parts->first = cy->head.len > 0;
    /* what the head and framing were, to put back if nothing is written: an
       app that retries after a failed write must get the same head, not a
       second set of framing lines after the first blank line */
    parts->head_len = cy->head.len;
    parts->framing = *f;
    if (parts->first && cy->stream_id != 0) {
        /* HTTP/2: DATA frames delimit the body (h2.c); the head stays as
           response.c wrote it */
        parts->head_end = cy->head.len;
    } else if (parts->first) {
        f->keep_alive = f->keep_alive && !s->shutting_down;
        /* trailers due: the body is chunked and its last chunk waits for them */
        if (cp_finish_head(&cy->head, f, blen, more_body || cy->trailers_expected) < 0) {
            *f = parts->framing;
            cy->head.len = parts->head_len;
            Py_DECREF(body);
            PyErr_NoMemory();
            return -1;
        }
        parts->head_end = cy->head.len;
    }
    if (f->no_body) {
        Py_CLEAR(body); /* HEAD, 204, 304: not one body byte */
    } else if (f->chunked) {
        size_t prelen = cp_chunk_prefix(parts->pre, blen);
        parts->suffix = cp_chunk_suffix(blen, more_body || cy->trailers_expected, &parts->slen);
        if (parts->first && prelen > 0) {
            /* the head and the first chunk's size line in one piece */
            if (cp_buf_put(&cy->head, parts->pre, prelen) < 0) {
                *f = parts->framing;
                cy->head.len = parts->head_len;
                Py_DECREF(body);
                PyErr_NoMemory();
                return -1;
            }
        } else if (!parts->first) {
            parts->prefix = parts->pre;
            parts->plen = prelen;
        }
    }
    if (parts->first) {
        parts->prefix = cy->head.data;
        parts->plen = cy->head.len;
        if (s->opts & CP_OPT_DIRECT_RESPONSE) {
            s->stats.responses_coalesced++;
        } else {
            s->stats.responses_split++;
        }
    }
    if (body != NULL && blen == 0) {
        Py_CLEAR(body);
    }
    parts->body = body; /* our reference moves to parts */
    return 0;
}

void cp_response_body_written(RequestCycle *cy, cp_body_parts *parts, int ok)
{
    cp_framing *f = &cy->framing;
    if (ok) {
        cy->out_sent += (int64_t)parts->body_len;
        if (parts->first) {
            cy->head.len = 0; /* the head is on the wire */
            cy->wire_started = 1;
        }
        if (!parts->more_body && cy->trailers_expected) {
            cy->awaiting_trailers = 1; /* complete once they are sent */
        } else if (!parts->more_body) {
            cy->response_complete = 1;
            if (f->length >= 0 && !f->no_body && cy->out_sent < f->length) {
                /* shorter than declared: the client would wait for the rest */
                f->keep_alive = 0;
            }
        }
    } else if (parts->first && !cy->wire_started) {
        *f = parts->framing;
        cy->head.len = parts->head_len;
    }
    Py_CLEAR(parts->body);
}

/* ---- canned error responses ---------------------------------------- */

PyObject *cp_error_response(ServerState *s, int status)
{
    char storage[512];
    cp_buf out;
    cp_buf_init(&out, storage, sizeof(storage));
    if (s->date_header) {
        refresh_date(s);
    }
    PyObject *res = NULL;
    if (cp_write_error_response(
            &out, status, s->server_line ? PyBytes_AS_STRING(s->server_line) : NULL,
            s->server_line ? (size_t)PyBytes_GET_SIZE(s->server_line) : 0,
            s->date_header ? s->date_line : NULL, s->date_header ? s->date_len : 0,
            s->extra_headers ? PyBytes_AS_STRING(s->extra_headers) : NULL,
            s->extra_headers ? (size_t)PyBytes_GET_SIZE(s->extra_headers) : 0) < 0) {
        PyErr_NoMemory();
    } else {
        res = PyBytes_FromStringAndSize(out.data, (Py_ssize_t)out.len);
    }
    cp_buf_release(&out);
    return res;
}
