/*
 * response.c -- ASGI send() messages become HTTP/1.1 bytes on the wire.
 *
 * http.response.start is validated and serialized at once into the cycle's
 * head buffer (so a bad header raises in the app's own send() call and never
 * reaches the wire), but nothing is written yet: the framing depends on the
 * first http.response.body.  If that body is final and the app declared no
 * Content-Length, we add one; if more follows, HTTP/1.1 gets chunked
 * encoding and HTTP/1.0 gets a close-delimited body.  Head and a small first
 * body go out in a single write.
 *
 * Header names must be tokens and values must not contain CR, LF, NUL or
 * other control characters (HTAB excepted): response splitting is impossible
 * by construction.  The framing is the server's alone: a Transfer-Encoding
 * header from the app is dropped (the ASGI spec says the server must ignore
 * it), and a 1xx status is refused (ASGI has no interim responses in
 * http.response.start; one written as final would desynchronise the client).
 *
 * App code may run while a message is read (a Mapping's __getitem__, a
 * headers iterator, more_body's __bool__): everything is read from the
 * message before the response's state changes, and the connection is looked
 * at again after.  send() itself refuses to be re-entered (cycle.c).
 */
#include "core.h"

#include <stdio.h>
#include <string.h>

/* Bodies up to this size are copied next to the head so that the whole
   response is one write; larger ones are written as their own object. */
#define COALESCE_MAX 16384

/* ---- reason phrases ------------------------------------------------- */

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

/* ---- byte classes --------------------------------------------------- */

static inline int is_tchar(unsigned char ch)
{
    return (cp_char_class[ch] & CC_TOKEN) != 0;
}

/* field-value: HTAB, SP, VCHAR, obs-text.  No CR, LF, NUL or other CTL. */
static inline int value_ok(const unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (!(cp_char_class[p[i]] & CC_VALUE)) {
            return 0;
        }
    }
    return 1;
}

/* Decimal digits of v into out (no terminator); returns the length. */
static size_t format_uint(char *out, uint64_t v)
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

/* ---- head buffer ---------------------------------------------------- */

static int head_reserve(RequestCycle *cy, size_t extra)
{
    size_t need = cy->head_len + extra;
    if (need <= cy->head_cap) {
        return 0;
    }
    size_t cap = cy->head_cap * 2;
    while (cap < need) {
        cap *= 2;
    }
    char *buf;
    if (cy->head == cy->head_inline) {
        buf = PyMem_Malloc(cap);
        if (buf != NULL) {
            memcpy(buf, cy->head, cy->head_len);
        }
    } else {
        buf = PyMem_Realloc(cy->head, cap);
    }
    if (buf == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    cy->head = buf;
    cy->head_cap = cap;
    return 0;
}

static inline int head_put(RequestCycle *cy, const char *p, size_t n)
{
    if (head_reserve(cy, n) < 0) {
        return -1;
    }
    memcpy(cy->head + cy->head_len, p, n);
    cy->head_len += n;
    return 0;
}

static int head_put_field(RequestCycle *cy, const char *name, size_t nlen,
                          const char *value, size_t vlen)
{
    if (head_reserve(cy, nlen + vlen + 4) < 0) {
        return -1;
    }
    char *w = cy->head + cy->head_len;
    memcpy(w, name, nlen);
    w += nlen;
    *w++ = ':';
    *w++ = ' ';
    memcpy(w, value, vlen);
    w += vlen;
    *w++ = '\r';
    *w++ = '\n';
    cy->head_len = (size_t)(w - cy->head);
    return 0;
}

size_t cp_format_status_line(char *out, int status)
{
    const char *reason = cp_reason_phrase(status);
    size_t rlen = strlen(reason);
    memcpy(out, "HTTP/1.1 ", 9);
    out[9] = (char)('0' + status / 100);
    out[10] = (char)('0' + status / 10 % 10);
    out[11] = (char)('0' + status % 10);
    out[12] = ' ';
    memcpy(out + 13, reason, rlen);
    out[13 + rlen] = '\r';
    out[14 + rlen] = '\n';
    return 15 + rlen;
}

/* The status line into out (>= 48 bytes); from the module's table when the
   status_cache optimization is on. */
static size_t status_line(ServerState *s, char *out, int status)
{
    if (s->opts & CP_OPT_STATUS_CACHE) {
        const cp_state *st = s->mod;
        size_t n = st->status_line_len[status - 100];
        memcpy(out, st->status_lines[status - 100], n);
        s->stats.status_lines_cached++;
        return n;
    }
    s->stats.status_lines_formatted++;
    return cp_format_status_line(out, status);
}

/* Make s->date_line current: cached for the second with status_cache,
   formatted for every response without it. */
static int date_line(ServerState *s)
{
    if (!(s->opts & CP_OPT_STATUS_CACHE)) {
        s->date_len = 0; /* forces cp_server_refresh_date to format again */
    }
    cp_server_refresh_date(s);
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
        v = PyDict_GetItemWithError(message, key);
        Py_XINCREF(v);
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

static int parse_content_length(const char *p, size_t n, int64_t *out)
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

/* ---- default headers (--header NAME:VALUE) --------------------------- */

/* Append "name: value\r\n" (name lowercased) to a bytearray. */
static int append_field(PyObject *out, const char *np, size_t nlen, const char *vp,
                        size_t vlen)
{
    Py_ssize_t at = PyByteArray_GET_SIZE(out);
    if (PyByteArray_Resize(out, at + (Py_ssize_t)(nlen + vlen + 4)) < 0) {
        return -1;
    }
    char *w = PyByteArray_AS_STRING(out) + at;
    for (size_t i = 0; i < nlen; i++) {
        *w++ = (char)cp_ascii_lower((unsigned char)np[i]);
    }
    *w++ = ':';
    *w++ = ' ';
    memcpy(w, vp, vlen);
    w += vlen;
    *w++ = '\r';
    *w++ = '\n';
    return 0;
}

/* *out = the bytes of a non-empty bytearray (new reference), else NULL. */
static int bytes_or_null(PyObject *bytearray, PyObject **out)
{
    *out = NULL;
    if (PyByteArray_GET_SIZE(bytearray) == 0) {
        return 0;
    }
    *out = PyBytes_FromStringAndSize(PyByteArray_AS_STRING(bytearray),
                                     PyByteArray_GET_SIZE(bytearray));
    return *out == NULL ? -1 : 0;
}

int cp_default_headers(PyObject *pairs, int server_header, PyObject **server_line,
                       PyObject **extra)
{
    *server_line = *extra = NULL;
    PyObject *servers = PyByteArray_FromStringAndSize(NULL, 0);
    PyObject *others = PyByteArray_FromStringAndSize(NULL, 0);
    PyObject *seq = NULL;
    if (servers == NULL || others == NULL) {
        goto fail;
    }
    if (pairs != NULL && pairs != Py_None) {
        seq = PySequence_Fast(pairs, "default headers must be a sequence of (name, value)");
        if (seq == NULL) {
            goto fail;
        }
        for (Py_ssize_t i = 0; i < PySequence_Fast_GET_SIZE(seq); i++) {
            PyObject *item = PySequence_Fast_GET_ITEM(seq, i);
            PyObject *name = NULL, *value = NULL;
            if (!PyTuple_Check(item) || PyTuple_GET_SIZE(item) != 2 ||
                !PyBytes_Check(name = PyTuple_GET_ITEM(item, 0)) ||
                !PyBytes_Check(value = PyTuple_GET_ITEM(item, 1))) {
                PyErr_Format(PyExc_TypeError,
                             "Expected each default header to be a (name, value) tuple of "
                             "bytes, but got %R.",
                             item);
                goto fail;
            }
            const char *np = PyBytes_AS_STRING(name);
            size_t nlen = (size_t)PyBytes_GET_SIZE(name);
            const char *vp = PyBytes_AS_STRING(value);
            size_t vlen = (size_t)PyBytes_GET_SIZE(value);
            /* the same rules as for headers an app sends (add_header) */
            int name_ok = nlen > 0;
            for (size_t k = 0; k < nlen && name_ok; k++) {
                name_ok = is_tchar((unsigned char)np[k]);
            }
            if (!name_ok) {
                PyErr_Format(PyExc_ValueError, "Invalid HTTP header name: %R.", name);
                goto fail;
            }
            if (!value_ok((const unsigned char *)vp, vlen)) {
                PyErr_Format(PyExc_ValueError, "Invalid HTTP header value: %R.", value);
                goto fail;
            }
            /* framing is decided per response, and Date is made per second */
            if (cp_name_is(np, nlen, "content-length", 14) ||
                cp_name_is(np, nlen, "transfer-encoding", 17) ||
                cp_name_is(np, nlen, "connection", 10) || cp_name_is(np, nlen, "date", 4)) {
                PyErr_Format(PyExc_ValueError,
                             "%R cannot be a default header: the server sets it per "
                             "response.",
                             name);
                goto fail;
            }
            PyObject *into = cp_name_is(np, nlen, "server", 6) ? servers : others;
            if (append_field(into, np, nlen, vp, vlen) < 0) {
                goto fail;
            }
        }
    }
    /* a default Server header given here replaces ours, as in uvicorn */
    if (PyByteArray_GET_SIZE(servers) == 0 && server_header &&
        append_field(servers, "server", 6, "carpinus", 8) < 0) {
        goto fail;
    }
    if (bytes_or_null(servers, server_line) < 0 || bytes_or_null(others, extra) < 0) {
        Py_CLEAR(*server_line);
        goto fail;
    }
    Py_XDECREF(seq);
    Py_DECREF(servers);
    Py_DECREF(others);
    return 0;
fail:
    Py_XDECREF(seq);
    Py_XDECREF(servers);
    Py_XDECREF(others);
    return -1;
}

/* ---- http.response.start ------------------------------------------- */

static int add_header(RequestCycle *cy, PyObject *item, int *seen_server, int *seen_date)
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
    const char *np = PyBytes_AS_STRING(name);
    size_t nlen = (size_t)PyBytes_GET_SIZE(name);
    const char *vp = PyBytes_AS_STRING(value);
    size_t vlen = (size_t)PyBytes_GET_SIZE(value);
    if (nlen == 0) {
        PyErr_SetString(PyExc_RuntimeError, "Invalid HTTP header name: empty.");
        return -1;
    }
    for (size_t i = 0; i < nlen; i++) {
        if (!is_tchar((unsigned char)np[i])) {
            PyErr_Format(PyExc_RuntimeError, "Invalid HTTP header name: %R.", name);
            return -1;
        }
    }
    if (!value_ok((const unsigned char *)vp, vlen)) {
        PyErr_Format(PyExc_RuntimeError, "Invalid HTTP header value: %R.", value);
        return -1;
    }
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
            cy->app_conn_close = 1;
        }
        break;
    case 14:
        if (cp_name_is(np, nlen, "content-length", 14)) {
            int64_t cl;
            if (parse_content_length(vp, vlen, &cl) < 0 ||
                (cy->out_length >= 0 && cy->out_length != cl)) {
                PyErr_Format(PyExc_RuntimeError, "Invalid Content-Length header: %R.",
                             value);
                return -1;
            }
            cy->out_length = cl;
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
    return head_put_field(cy, np, nlen, vp, vlen);
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
    /* a start that failed validation may have set these: start afresh */
    cy->out_length = -1;
    cy->out_chunked = 0;
    cy->app_conn_close = 0;
    cy->head_len = status_line(s, cy->head, cy->status);

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
        Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
        PyObject **items = PySequence_Fast_ITEMS(seq);
        for (Py_ssize_t i = 0; i < n; i++) {
            PyObject *item = items[i];
            Py_INCREF(item); /* the app's list may be mutated while we look */
            int r = add_header(cy, item, &seen_server, &seen_date);
            Py_DECREF(item);
            if (r < 0) {
                Py_DECREF(seq);
                return -1;
            }
        }
        Py_DECREF(seq);
    }
    if (s->server_line != NULL && !seen_server) {
        if (head_put(cy, PyBytes_AS_STRING(s->server_line),
                     (size_t)PyBytes_GET_SIZE(s->server_line)) < 0) {
            return -1;
        }
    }
    if (s->date_header && !seen_date) {
        if (date_line(s) < 0 || head_put(cy, s->date_line, s->date_len) < 0) {
            return -1;
        }
    }
    /* --header NAME:VALUE: serialized once at start-up, sent with every
       response (beside the app's own headers, as uvicorn does) */
    if (s->extra_headers != NULL) {
        if (head_put(cy, PyBytes_AS_STRING(s->extra_headers),
                     (size_t)PyBytes_GET_SIZE(s->extra_headers)) < 0) {
            return -1;
        }
    }
    int st_code = cy->status;
    cy->out_no_body = cy->is_head || st_code == 204 || st_code == 304;
    return 0;
}

/* ---- http.response.body -------------------------------------------- */

/* Finish the head: framing headers, Connection, the empty line. */
static int finish_head(RequestCycle *cy, Py_ssize_t body_len, int more_body)
{
    ServerState *s = cy->server;
    char line[64];
    if (!cy->out_no_body) {
        if (cy->out_length < 0 && !cy->out_chunked) {
            if (!more_body) {
                memcpy(line, "content-length: ", 16);
                size_t n = 16 + format_uint(line + 16, (uint64_t)body_len);
                line[n++] = '\r';
                line[n++] = '\n';
                if (head_put(cy, line, n) < 0) {
                    return -1;
                }
                cy->out_length = body_len;
            } else {
                if (cy->http_minor >= 1) {
                    if (head_put(cy, "transfer-encoding: chunked\r\n", 28) < 0) {
                        return -1;
                    }
                    cy->out_chunked = 1;
                } else {
                    cy->out_close_delim = 1;
                }
            }
        }
    }
    int keep = cy->keep_alive && !cy->app_conn_close && !cy->out_close_delim &&
               !s->shutting_down;
    cy->keep_alive = keep;
    if (!keep && !cy->app_conn_close) {
        if (head_put(cy, "connection: close\r\n", 19) < 0) {
            return -1;
        }
    } else if (keep && cy->http_minor == 0) {
        if (head_put(cy, "connection: keep-alive\r\n", 24) < 0) {
            return -1;
        }
    }
    return head_put(cy, "\r\n", 2);
}

static int write_parts(RequestCycle *cy, const char *prefix, size_t plen, PyObject *body,
                       const char *suffix, size_t slen)
{
    HttpProtocol *c = cy->conn;
    if (c == NULL) {
        PyErr_SetString(cy->server->mod->ClientDisconnected, "The connection is closed.");
        return -1;
    }
    Py_ssize_t blen = body ? PyBytes_GET_SIZE(body) : 0;
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
    if (list == NULL) {
        return -1;
    }
    PyObject *p = NULL, *sfx = NULL;
    if (plen && ((p = PyBytes_FromStringAndSize(prefix, (Py_ssize_t)plen)) == NULL ||
                 PyList_Append(list, p) < 0)) {
        goto fail;
    }
    if (PyList_Append(list, body) < 0) {
        goto fail;
    }
    if (slen && ((sfx = PyBytes_FromStringAndSize(suffix, (Py_ssize_t)slen)) == NULL ||
                 PyList_Append(list, sfx) < 0)) {
        goto fail;
    }
    int r = cp_conn_writelines(c, list);
    Py_XDECREF(p);
    Py_XDECREF(sfx);
    Py_DECREF(list);
    return r;
fail:
    Py_XDECREF(p);
    Py_XDECREF(sfx);
    Py_DECREF(list);
    return -1;
}

int cp_response_body(RequestCycle *cy, PyObject *message)
{
    cp_state *st = cy->server->mod;
    PyObject *body = msg_get(cy->server, message, st->k_body, "body");
    if (body == NULL && PyErr_Occurred()) {
        return -1;
    }
    PyObject *more_obj = msg_get(cy->server, message, st->k_more_body, "more_body");
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
    /* From here on we own a reference to body.  App code may have run
       (more_body's __bool__, a Mapping): look at the connection again. */
    int rc = -1;
    if (cy->conn == NULL || cy->disconnected || cy->response_complete) {
        PyErr_SetString(st->ClientDisconnected, "The connection is closed.");
        Py_DECREF(body);
        return -1;
    }
    Py_ssize_t blen = PyBytes_GET_SIZE(body);
    int first = cy->head_len > 0;
    /* What finish_head changes, to put back if nothing could be written:
       an app that retries after a failed write must get the same head, not
       a second set of framing lines after the first blank line. */
    size_t head_len = cy->head_len;
    int64_t out_length = cy->out_length;
    int out_chunked = cy->out_chunked, out_close_delim = cy->out_close_delim;
    int keep_alive = cy->keep_alive;

    if (cy->out_length >= 0 && !cy->out_no_body &&
        cy->out_sent + blen > cy->out_length) {
        PyErr_SetString(PyExc_RuntimeError, "Response content longer than Content-Length");
        goto restore;
    }
    if (first) {
        if (finish_head(cy, blen, more_body) < 0) {
            goto restore;
        }
        if (!(cy->server->opts & CP_OPT_DIRECT_RESPONSE)) {
            /* baseline without direct_response: the head is its own write */
            if (write_parts(cy, cy->head, cy->head_len, NULL, "", 0) < 0) {
                goto restore;
            }
            cy->head_len = 0;
            cy->wire_started = 1;
            first = 0;
            cy->server->stats.responses_split++;
        } else {
            cy->server->stats.responses_coalesced++;
        }
    }
    const char *prefix = first ? cy->head : "";
    size_t plen = first ? cy->head_len : 0;
    if (cy->out_no_body) {
        if (plen && write_parts(cy, prefix, plen, NULL, "", 0) < 0) {
            goto restore;
        }
    } else if (cy->out_chunked) {
        /* chunk: SIZE CRLF DATA CRLF; the last one: 0 CRLF CRLF */
        char pre[32];
        size_t prelen = 0;
        char *pbuf = NULL;
        const char *suffix = "";
        size_t slen = 0;
        if (blen > 0) {
            prelen = format_hex(pre, (uint64_t)blen);
            pre[prelen++] = '\r';
            pre[prelen++] = '\n';
            suffix = more_body ? "\r\n" : "\r\n0\r\n\r\n";
            slen = more_body ? 2 : 7;
        } else if (!more_body) {
            suffix = "0\r\n\r\n";
            slen = 5;
        }
        if (plen + prelen + slen + (size_t)blen == 0) {
            rc = 0;
            goto complete;
        }
        if (plen) {
            pbuf = PyMem_Malloc(plen + prelen);
            if (pbuf == NULL) {
                PyErr_NoMemory();
                goto restore;
            }
            memcpy(pbuf, prefix, plen);
            memcpy(pbuf + plen, pre, prelen);
        }
        int r = write_parts(cy, pbuf ? pbuf : pre, plen + prelen, blen ? body : NULL,
                            suffix, slen);
        PyMem_Free(pbuf);
        if (r < 0) {
            goto restore;
        }
    } else if (plen || blen) {
        if (write_parts(cy, prefix, plen, blen ? body : NULL, "", 0) < 0) {
            goto restore;
        }
    }
    cy->out_sent += blen;
    if (first) {
        cy->head_len = 0; /* the head is on the wire */
        cy->wire_started = 1;
    }
    rc = 0;
    goto complete;
restore:
    if (!cy->wire_started) {
        cy->head_len = head_len;
        cy->out_length = out_length;
        cy->out_chunked = out_chunked;
        cy->out_close_delim = out_close_delim;
        cy->keep_alive = keep_alive;
    }
    goto done;
complete:
    if (!more_body) {
        cy->response_complete = 1;
        if (cy->out_length >= 0 && !cy->out_no_body && cy->out_sent < cy->out_length) {
            /* shorter than declared: the client would wait for the rest */
            cy->keep_alive = 0;
        }
    }
done:
    Py_DECREF(body);
    return rc;
}

/* ---- canned error responses ---------------------------------------- */

PyObject *cp_error_response(ServerState *s, int status)
{
    char fixed[512];
    size_t extra_len = 0;
    if (s->server_line != NULL) {
        extra_len += (size_t)PyBytes_GET_SIZE(s->server_line);
    }
    if (s->extra_headers != NULL) {
        extra_len += (size_t)PyBytes_GET_SIZE(s->extra_headers);
    }
    /* status line, three fixed fields, Date and the reason fit in `fixed`;
       configured headers may not */
    size_t cap = sizeof(fixed) + extra_len;
    char *buf = extra_len > 0 ? PyMem_Malloc(cap) : fixed;
    if (buf == NULL) {
        return PyErr_NoMemory();
    }
    size_t n = cp_format_status_line(buf, status);
    const char *reason = cp_reason_phrase(status);
    size_t rlen = strlen(reason);
    n += (size_t)snprintf(buf + n, cap - n,
                          "content-type: text/plain; charset=utf-8\r\n"
                          "content-length: %zu\r\n"
                          "connection: close\r\n",
                          rlen);
    if (s->server_line != NULL) {
        memcpy(buf + n, PyBytes_AS_STRING(s->server_line),
               (size_t)PyBytes_GET_SIZE(s->server_line));
        n += (size_t)PyBytes_GET_SIZE(s->server_line);
    }
    if (s->date_header) {
        date_line(s);
        memcpy(buf + n, s->date_line, s->date_len);
        n += s->date_len;
    }
    if (s->extra_headers != NULL) {
        memcpy(buf + n, PyBytes_AS_STRING(s->extra_headers),
               (size_t)PyBytes_GET_SIZE(s->extra_headers));
        n += (size_t)PyBytes_GET_SIZE(s->extra_headers);
    }
    memcpy(buf + n, "\r\n", 2);
    n += 2;
    memcpy(buf + n, reason, rlen);
    n += rlen;
    PyObject *out = PyBytes_FromStringAndSize(buf, (Py_ssize_t)n);
    if (buf != fixed) {
        PyMem_Free(buf);
    }
    return out;
}
