/*
 * headers.c -- request header names as shared, lowercased bytes objects.
 *
 * ASGI wants header names lowercased.  Most requests carry the same two
 * dozen names, so each of those is created once per module and shared by
 * every scope (bytes are immutable, so sharing is invisible to apps).  Any
 * other name is lowercased into a new bytes object.
 */
#include "core.h"

#include <string.h>

/* Sorted by nothing in particular; looked up by length first.  The count
   must match CP_COMMON_HEADER_COUNT. */
static const char *const common_names[CP_COMMON_HEADER_COUNT] = {
    "host",
    "user-agent",
    "accept",
    "accept-encoding",
    "accept-language",
    "accept-charset",
    "connection",
    "content-type",
    "content-length",
    "content-encoding",
    "cache-control",
    "cookie",
    "authorization",
    "referer",
    "origin",
    "pragma",
    "upgrade",
    "upgrade-insecure-requests",
    "transfer-encoding",
    "te",
    "expect",
    "range",
    "if-none-match",
    "if-modified-since",
    "if-match",
    "if-unmodified-since",
    "if-range",
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "x-real-ip",
    "x-request-id",
    "x-requested-with",
    "forwarded",
    "dnt",
    "sec-fetch-dest",
    "sec-fetch-mode",
    "sec-fetch-site",
    "sec-fetch-user",
    "priority",
};

int cp_common_headers_init(cp_state *st)
{
    memset(st->headers_by_len, -1, sizeof(st->headers_by_len));
    for (int i = 0; i < CP_COMMON_HEADER_COUNT; i++) {
        size_t len = strlen(common_names[i]);
        int n = 0;
        while (len <= CP_COMMON_HEADER_MAXLEN && st->headers_by_len[len][n] >= 0) {
            n++;
        }
        /* the table is sized for at most 7 names of one length */
        if (len > CP_COMMON_HEADER_MAXLEN || n >= 7) {
            PyErr_SetString(PyExc_SystemError, "common header table overflow");
            return -1;
        }
        st->headers_by_len[len][n] = (signed char)i;
        st->common_headers[i] = PyBytes_FromStringAndSize(common_names[i],
                                                          (Py_ssize_t)len);
        if (st->common_headers[i] == NULL) {
            return -1;
        }
    }
    return 0;
}

/* A new bytes object: name with ASCII letters lowercased. */
static PyObject *lowered_bytes(const char *name, size_t len)
{
    PyObject *out = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)len);
    if (out == NULL) {
        return NULL;
    }
    char *dst = PyBytes_AS_STRING(out);
    for (size_t i = 0; i < len; i++) {
        dst[i] = (char)cp_ascii_lower((unsigned char)name[i]);
    }
    return out;
}

PyObject *cp_header_name(cp_state *st, const char *name, size_t len)
{
    char small[64];
    if (len <= sizeof(small)) {
        for (size_t i = 0; i < len; i++) {
            small[i] = (char)cp_ascii_lower((unsigned char)name[i]);
        }
        if (len <= CP_COMMON_HEADER_MAXLEN) {
            const signed char *slot = st->headers_by_len[len];
            for (int n = 0; slot[n] >= 0; n++) {
                PyObject *cand = st->common_headers[slot[n]];
                if (memcmp(PyBytes_AS_STRING(cand), small, len) == 0) {
                    cp_counter_add(&st->header_name_hits, 1);
                    return Py_NewRef(cand);
                }
            }
        }
        cp_counter_add(&st->header_name_misses, 1);
        return PyBytes_FromStringAndSize(small, (Py_ssize_t)len);
    }
    cp_counter_add(&st->header_name_misses, 1);
    return lowered_bytes(name, len);
}

PyObject *cp_header_name_ex(cp_state *st, int use_cache, const char *name, size_t len)
{
    if (use_cache) {
        return cp_header_name(st, name, len);
    }
    return lowered_bytes(name, len);
}
