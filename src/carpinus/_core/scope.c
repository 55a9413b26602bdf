/*
 * scope.c -- a parsed request head becomes an ASGI 3 `http` scope.
 *
 * Every scope is a fresh dict made by copying the server's base template
 * (constant keys and values, in spec order) and then replacing the values
 * that belong to this request.  Nothing mutable is shared between requests:
 * `asgi`, `state`, `extensions` and `headers` are new objects every time;
 * shared values (method names, header names, "http", "1.1", client/server
 * tuples of the connection) are immutable.
 *
 * root_path (the mount point, --root-path) is part of `path` and `raw_path`,
 * as uvicorn >= 0.26 and Starlette >= 0.35 expect (asgiref's reading of the
 * spec): a request for /users behind --root-path /api has path "/api/users"
 * and root_path "/api".
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

/* root_path as the start of a raw path: its UTF-8, with every byte that may
   not stand as it is in a path percent-encoded (a root path is a str; a raw
   path is bytes as they would be sent). */
PyObject *cp_raw_root_path(PyObject *root_path)
{
    static const char hex[] = "0123456789ABCDEF";
    Py_ssize_t n;
    const char *utf8 = PyUnicode_AsUTF8AndSize(root_path, &n);
    if (utf8 == NULL) {
        return NULL;
    }
    PyObject *out = PyBytes_FromStringAndSize(NULL, 3 * n);
    if (out == NULL) {
        return NULL;
    }
    char *w = PyBytes_AS_STRING(out);
    for (Py_ssize_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)utf8[i];
        if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
            (ch != 0 && strchr("-._~!$&'()*+,;=:@/%", ch) != NULL)) {
            *w++ = (char)ch;
        } else {
            *w++ = '%';
            *w++ = hex[ch >> 4];
            *w++ = hex[ch & 15];
        }
    }
    if (_PyBytes_Resize(&out, w - PyBytes_AS_STRING(out)) < 0) {
        return NULL;
    }
    return out;
}

/* prefix + raw[0..len) as one bytes object. */
static PyObject *prefixed_bytes(PyObject *prefix, const char *raw, size_t len)
{
    Py_ssize_t pn = PyBytes_GET_SIZE(prefix);
    PyObject *out = PyBytes_FromStringAndSize(NULL, pn + (Py_ssize_t)len);
    if (out != NULL) {
        memcpy(PyBytes_AS_STRING(out), PyBytes_AS_STRING(prefix), (size_t)pn);
        memcpy(PyBytes_AS_STRING(out) + pn, raw, len);
    }
    return out;
}

static PyObject *build_headers(ServerState *s, const char *buf, const cp_header *hdrs,
                               size_t n)
{
    cp_state *st = s->mod;
    int name_cache = (s->opts & CP_OPT_HEADER_NAMES) != 0;
    if ((s->opts & CP_OPT_LAZY_HEADERS) && n >= s->lazy_headers_min && n > 0) {
        s->stats.lazy_headers_created++;
        return cp_lazy_headers_new(st, name_cache, buf, hdrs, n);
    }
    s->stats.headers_built++;
    PyObject *list = PyList_New((Py_ssize_t)n);
    if (list == NULL) {
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        const cp_header *h = &hdrs[i];
        PyObject *name = cp_header_name_ex(st, name_cache, buf + h->name.off, h->name.len);
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

/* FNV-1a, as in the reference design: cheap and good enough for short paths. */
static uint64_t fnv1a(const char *p, size_t n)
{
    uint64_t h = 14695981039346656037ULL;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)p[i];
        h *= 1099511628211ULL;
    }
    return h;
}

/* A new dict for the request's scope with type, root_path, path and raw_path
   filled in.  With the scope_cache optimization, the path-derived values
   come from a per-path template: only what is decoded from the raw path is
   ever reused (never the method, query, headers, client, ... -- the
   reference implementation shipped a bug by caching the method). */
static PyObject *scope_with_path(ServerState *s, const char *raw, size_t len)
{
    cp_state *st = s->mod;
    cp_scope_slot *slot = NULL;
    uint64_t hash = 0;
    if (s->opts & CP_OPT_SCOPE_CACHE) {
        hash = fnv1a(raw, len);
        slot = &s->scope_cache[hash % s->scope_cache_size];
        if (slot->key != NULL && slot->hash == hash &&
            (size_t)PyBytes_GET_SIZE(slot->key) == len &&
            memcmp(PyBytes_AS_STRING(slot->key), raw, len) == 0) {
            s->stats.scope_cache_hits++;
            return PyDict_Copy(slot->scope);
        }
        s->stats.scope_cache_misses++;
        /* Admission: a template costs a second dict copy, paid back only
           by later hits; install it on the second miss of the same path
           in this slot, not the first (one-hit paths cost what no cache
           costs, plus the hash). */
        if (slot->seen != hash) {
            slot->seen = hash;
            slot = NULL;
        }
    }
    PyObject *scope = PyDict_Copy(s->scope_template);
    PyObject *raw_path, *path;
    if (PyBytes_GET_SIZE(s->raw_root_path) == 0) {
        raw_path = PyBytes_FromStringAndSize(raw, (Py_ssize_t)len);
        path = decode_path(raw, len);
    } else {
        raw_path = prefixed_bytes(s->raw_root_path, raw, len);
        path = decode_path(raw, len);
        if (path != NULL) {
            Py_SETREF(path, PyUnicode_Concat(s->root_path, path));
        }
    }
    if (scope == NULL || raw_path == NULL || path == NULL ||
        PyDict_SetItem(scope, st->k_path, path) < 0 ||
        PyDict_SetItem(scope, st->k_raw_path, raw_path) < 0) {
        goto fail;
    }
    if (slot != NULL) {
        /* the slot keeps a pristine copy: apps mutate the dict they get */
        PyObject *template = PyDict_Copy(scope);
        if (template == NULL) {
            goto fail;
        }
        Py_XSETREF(slot->scope, template);
        PyObject *key = PyBytes_GET_SIZE(s->raw_root_path) == 0
                            ? Py_NewRef(raw_path) /* the same bytes */
                            : PyBytes_FromStringAndSize(raw, (Py_ssize_t)len);
        if (key == NULL) {
            goto fail;
        }
        Py_XSETREF(slot->key, key);
        slot->hash = hash;
    }
    Py_DECREF(raw_path);
    Py_DECREF(path);
    return scope;
fail:
    Py_XDECREF(scope);
    Py_XDECREF(raw_path);
    Py_XDECREF(path);
    return NULL;
}

/* scope["extensions"] of a request on a TLS connection: a copy of
   c->extensions (not NULL) with each value that is a dict copied too --
   two levels deep: the app may edit scope["extensions"]["tls"] of one
   request without the next request seeing it.  (Plain TCP never comes
   here: its scopes get a new {} and pay one NULL test.) */
static PyObject *tls_scope_extensions(HttpProtocol *c)
{
    PyObject *out = PyDict_Copy(c->extensions);
    if (out == NULL) {
        return NULL;
    }
    PyObject *name, *value;
    Py_ssize_t pos = 0;
    while (PyDict_Next(c->extensions, &pos, &name, &value)) {
        if (PyDict_CheckExact(value)) {
            PyObject *copy = PyDict_Copy(value);
            if (copy == NULL || PyDict_SetItem(out, name, copy) < 0) {
                Py_XDECREF(copy);
                Py_DECREF(out);
                return NULL;
            }
            Py_DECREF(copy);
        }
    }
    return out;
}

/* scope["extensions"]: the server's own (pathsend, early hints: a shallow
   copy of s->extensions_template, whose values are read-only dicts), the
   connection's (tls) on TLS, and
   http.response.trailers where trailers can reach the client: on HTTP/2,
   and on HTTP/1.1 when the request said TE: trailers (its chunked response
   can end with them).  Not advertised elsewhere, so an app that checks
   (as the extension asks) sends none that would be lost. */
static PyObject *scope_extensions(ServerState *s, HttpProtocol *c, const cp_request *req)
{
    cp_state *st = s->mod;
    PyObject *ext;
    if (c->extensions != NULL) {
        ext = tls_scope_extensions(c);
        if (ext != NULL && s->extensions_template != NULL &&
            PyDict_Update(ext, s->extensions_template) < 0) {
            Py_CLEAR(ext);
        }
    } else {
        ext = s->extensions_template != NULL ? PyDict_Copy(s->extensions_template) : PyDict_New();
    }
    if (ext != NULL && (req->http_minor == 2 ||
                        (req->http_minor == 1 && (req->flags & CP_F_TE_TRAILERS)))) {
        PyObject *empty = PyDict_New();
        if (empty == NULL || PyDict_SetItem(ext, st->k_ext_trailers, empty) < 0) {
            Py_CLEAR(ext);
        }
        Py_XDECREF(empty);
    }
    return ext;
}

PyObject *cp_build_scope(ServerState *s, HttpProtocol *c, const char *buf,
                         const cp_request *req, const cp_header *headers)
{
    cp_state *st = s->mod;
    const char *raw_path = buf + req->path.off;
    size_t raw_path_len = req->path.len;
    if (raw_path_len == 0) { /* absolute-form with an empty path */
        raw_path = "/";
        raw_path_len = 1;
    }
    PyObject *scope = scope_with_path(s, raw_path, raw_path_len);
    if (scope == NULL) {
        return NULL;
    }
    if (set_steal(scope, st->k_asgi, PyDict_Copy(s->asgi_template)) < 0 ||
        PyDict_SetItem(scope, st->k_http_version,
                       req->http_minor == 1   ? st->v_1_1
                       : req->http_minor == 0 ? st->v_1_0
                                              : st->v_2) < 0 ||
        set_steal(scope, st->k_method, scope_method(st, buf, req)) < 0 ||
        PyDict_SetItem(scope, st->k_scheme, c->scheme) < 0 ||
        (req->query.len &&
         set_steal(scope, st->k_query_string,
                   PyBytes_FromStringAndSize(buf + req->query.off, req->query.len)) < 0) ||
        (!req->query.len &&
         PyDict_SetItem(scope, st->k_query_string, st->empty_bytes) < 0) ||
        set_steal(scope, st->k_headers, build_headers(s, buf, headers, req->num_headers)) < 0 ||
        PyDict_SetItem(scope, st->k_client, c->client) < 0 ||
        PyDict_SetItem(scope, st->k_server, c->server_addr) < 0 ||
        set_steal(scope, st->k_state, PyDict_Copy(s->lifespan_state)) < 0 ||
        set_steal(scope, st->k_extensions, scope_extensions(s, c, req)) < 0) {
        Py_DECREF(scope);
        return NULL;
    }
    return scope;
}
