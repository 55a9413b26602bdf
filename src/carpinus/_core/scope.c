/*
 * scope.c -- a parsed request head becomes an ASGI 3 `http` scope.
 *
 * Every scope is a fresh dict made by copying the server's base template
 * (constant keys and values, in spec order) and then replacing the values
 * that belong to this request.  Nothing mutable is shared between requests:
 * `asgi`, `state`, `extensions` and `headers` are new objects every time;
 * shared values (method names, header names, "http", "1.1", client/server
 * tuples of the connection) are immutable.
 */
#include "core.h"

#include <string.h>

static inline int hexval(unsigned char ch)
{
    if (ch >= '0' && ch <= '9') {
        return ch - '0';
    }
    ch |= 0x20;
    if (ch >= 'a' && ch <= 'f') {
        return ch - 'a' + 10;
    }
    return -1;
}

/* Percent-decode raw path bytes and decode them as UTF-8 (invalid sequences
   become U+FFFD, as urllib.parse.unquote does for uvicorn). */
static PyObject *decode_path(const char *raw, size_t len)
{
    const char *pct = memchr(raw, '%', len);
    if (pct == NULL) {
        return PyUnicode_DecodeUTF8(raw, (Py_ssize_t)len, "replace");
    }
    char small[512];
    char *out = len <= sizeof(small) ? small : PyMem_Malloc(len);
    if (out == NULL) {
        return PyErr_NoMemory();
    }
    size_t n = (size_t)(pct - raw);
    memcpy(out, raw, n);
    for (size_t i = n; i < len; i++) {
        int hi, lo;
        if (raw[i] == '%' && i + 2 < len && (hi = hexval((unsigned char)raw[i + 1])) >= 0 &&
            (lo = hexval((unsigned char)raw[i + 2])) >= 0) {
            out[n++] = (char)(hi << 4 | lo);
            i += 2;
        } else {
            out[n++] = raw[i];
        }
    }
    PyObject *res = PyUnicode_DecodeUTF8(out, (Py_ssize_t)n, "replace");
    if (out != small) {
        PyMem_Free(out);
    }
    return res;
}

static PyObject *build_headers(cp_state *st, const char *buf, const cp_header *hdrs,
                               size_t n)
{
    PyObject *list = PyList_New((Py_ssize_t)n);
    if (list == NULL) {
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        const cp_header *h = &hdrs[i];
        PyObject *name = cp_header_name(st, buf + h->name.off, h->name.len);
        if (name == NULL) {
            goto fail;
        }
        PyObject *value =
            h->value.len ? PyBytes_FromStringAndSize(buf + h->value.off, h->value.len)
                         : Py_NewRef(st->empty_bytes);
        if (value == NULL) {
            Py_DECREF(name);
            goto fail;
        }
        PyObject *pair = PyTuple_New(2);
        if (pair == NULL) {
            Py_DECREF(name);
            Py_DECREF(value);
            goto fail;
        }
        PyTuple_SET_ITEM(pair, 0, name);
        PyTuple_SET_ITEM(pair, 1, value);
        PyList_SET_ITEM(list, (Py_ssize_t)i, pair);
    }
    return list;
fail:
    Py_DECREF(list);
    return NULL;
}

static PyObject *scope_method(cp_state *st, const char *buf, const cp_request *req)
{
    if (req->method_id != CP_METHOD_OTHER) {
        return Py_NewRef(st->methods[req->method_id]);
    }
    return PyUnicode_DecodeASCII(buf + req->method.off, req->method.len, NULL);
}

/* Put key -> value into scope, stealing the reference to value. */
static inline int set_steal(PyObject *scope, PyObject *key, PyObject *value)
{
    if (value == NULL) {
        return -1;
    }
    int r = PyDict_SetItem(scope, key, value);
    Py_DECREF(value);
    return r;
}

/* The dict every scope starts as: every key in spec order, the values that
   are the same for every request of this server filled in, the others None.
   Copying it and replacing values never resizes the copy. */
PyObject *cp_scope_template(cp_state *st, PyObject *root_path)
{
    PyObject *t = PyDict_New();
    if (t == NULL) {
        return NULL;
    }
    PyObject *keys[] = {st->k_type,      st->k_asgi,         st->k_http_version,
                        st->k_method,    st->k_scheme,       st->k_path,
                        st->k_raw_path,  st->k_query_string, st->k_root_path,
                        st->k_headers,   st->k_client,       st->k_server,
                        st->k_state,     st->k_extensions};
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        PyObject *v = keys[i] == st->k_type        ? st->v_http
                      : keys[i] == st->k_root_path ? root_path
                                                   : Py_None;
        if (PyDict_SetItem(t, keys[i], v) < 0) {
            Py_DECREF(t);
            return NULL;
        }
    }
    return t;
}

PyObject *cp_build_scope(ServerState *s, HttpProtocol *c, const char *buf,
                         const cp_request *req, const cp_header *headers)
{
    cp_state *st = s->mod;
    PyObject *scope = PyDict_Copy(s->scope_template);
    if (scope == NULL) {
        return NULL;
    }
    const char *raw_path = buf + req->path.off;
    size_t raw_path_len = req->path.len;
    if (raw_path_len == 0) { /* absolute-form with an empty path */
        raw_path = "/";
        raw_path_len = 1;
    }

    if (set_steal(scope, st->k_asgi, PyDict_Copy(st->asgi_template)) < 0 ||
        set_steal(scope, st->k_http_version,
                  Py_NewRef(req->http_minor ? st->v_1_1 : st->v_1_0)) < 0 ||
        set_steal(scope, st->k_method, scope_method(st, buf, req)) < 0 ||
        set_steal(scope, st->k_scheme, Py_NewRef(c->scheme)) < 0 ||
        set_steal(scope, st->k_path, decode_path(raw_path, raw_path_len)) < 0 ||
        set_steal(scope, st->k_raw_path,
                  PyBytes_FromStringAndSize(raw_path, (Py_ssize_t)raw_path_len)) < 0 ||
        (req->query.len &&
         set_steal(scope, st->k_query_string,
                   PyBytes_FromStringAndSize(buf + req->query.off, req->query.len)) < 0) ||
        (!req->query.len &&
         PyDict_SetItem(scope, st->k_query_string, st->empty_bytes) < 0) ||
        set_steal(scope, st->k_headers,
                  build_headers(st, buf, headers, req->num_headers)) < 0 ||
        PyDict_SetItem(scope, st->k_client, c->client) < 0 ||
        PyDict_SetItem(scope, st->k_server, c->server_addr) < 0 ||
        set_steal(scope, st->k_state, PyDict_Copy(s->lifespan_state)) < 0 ||
        set_steal(scope, st->k_extensions, PyDict_New()) < 0) {
        Py_DECREF(scope);
        return NULL;
    }
    return scope;
}
