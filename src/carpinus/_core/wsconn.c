/*
 * wsconn.c -- WsCodec: one WebSocket connection's frame codec, for Python.
 *
 * A thin binding over wsframe.c (the contract is in wsframe.h): the
 * WebSocket protocol (protocols/websocket/protocol.py) hands it the bytes
 * it read and gets back events; it hands it a message and gets back the
 * frame to write.  Everything runs under the GIL and calls no Python code:
 * feed() copies the bytes into a buffer of its own (the decoder unmasks in
 * place, and transports hand out immutable bytes), decodes them to the end,
 * the close frame or the first error, and returns the events as a list of
 * (kind, payload, code) tuples:
 *
 *   (WS_TEXT,   str,   0)     a whole message, its fragments joined
 *   (WS_BINARY, bytes, 0)
 *   (WS_PING,   bytes, 0)     the protocol answers with encode(WS_PONG, ...)
 *   (WS_PONG,   bytes, 0)
 *   (WS_CLOSE,  str,   code)  the reason, and the code (1005: none); the
 *                             last event: later feeds return []
 *   (WS_ERROR,  str,   code)  why, and the close code to fail with (1002,
 *                             1007, 1009, 1011); the last event too
 *
 * With permessage-deflate (deflate= the four numbers ws_negotiate_deflate
 * returned) incoming messages are inflated, the size limit counted after
 * inflation, and outgoing text and binary messages deflated.
 */
#include "core.h"
#include "wsframe.h"

#include <string.h>

typedef struct {
    PyObject_HEAD
    cp_ws_decoder dec;
    cp_ws_deflater enc;
    int deflate; /* permessage-deflate negotiated: enc is set up */
    int done;    /* the close frame or an error was returned */
    unsigned char *buf; /* feed()'s copy of the bytes, unmasked in place */
    size_t buf_cap;
} WsCodec;

enum { WS_ERROR = -1 };

/* ---- construction ------------------------------------------------------ */

static PyObject *wscodec_new(PyTypeObject *tp, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"max_size", "deflate", "level", NULL};
    Py_ssize_t max_size;
    PyObject *deflate = Py_None;
    int level = -1;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "n|O$i:WsCodec", kwlist, &max_size,
                                     &deflate, &level)) {
        return NULL;
    }
    if (max_size < 1) {
        PyErr_SetString(PyExc_ValueError, "max_size must be at least 1");
        return NULL;
    }
    if (level < -1 || level > 9) {
        PyErr_SetString(PyExc_ValueError, "level must be -1 (zlib's default) or 0..9");
        return NULL;
    }
    cp_ws_deflate_params params = {0, 0, 15, 15};
    int on = deflate != Py_None;
    if (on && !PyArg_ParseTuple(deflate, "iiii;deflate must be 4 integers (from "
                                         "ws_negotiate_deflate)",
                                &params.server_no_context_takeover,
                                &params.client_no_context_takeover,
                                &params.server_max_window_bits,
                                &params.client_max_window_bits)) {
        return NULL;
    }
    if (on && (params.server_max_window_bits < 8 || params.server_max_window_bits > 15 ||
               params.client_max_window_bits < 8 || params.client_max_window_bits > 15)) {
        PyErr_SetString(PyExc_ValueError, "window bits must be 8..15");
        return NULL;
    }
    WsCodec *self = (WsCodec *)tp->tp_alloc(tp, 0);
    if (self == NULL) {
        return NULL;
    }
    cp_ws_decoder_opts opts = {(size_t)max_size, on ? &params : NULL};
    cp_ws_decoder_init(&self->dec, &opts);
    self->deflate = on;
    if (on) {
        cp_ws_deflater_init(&self->enc, &params, level);
    }
    return (PyObject *)self;
}

static void wscodec_dealloc(WsCodec *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    cp_ws_decoder_free(&self->dec);
    if (self->deflate) {
        cp_ws_deflater_free(&self->enc);
    }
    free(self->buf);
    tp->tp_free((PyObject *)self);
    Py_DECREF(tp);
}

/* ---- decoding ------------------------------------------------------------ */

/* (kind, payload, code) for one decoded event; NULL with an exception. */
static PyObject *event_tuple(const cp_ws_event *ev)
{
    PyObject *payload;
    if (ev->opcode == CP_WS_TEXT || ev->opcode == CP_WS_CLOSE) {
        /* checked UTF-8 already (wsframe.c) */
        payload = PyUnicode_DecodeUTF8((const char *)ev->data, (Py_ssize_t)ev->len, NULL);
    } else {
        payload = PyBytes_FromStringAndSize((const char *)ev->data, (Py_ssize_t)ev->len);
    }
    if (payload == NULL) {
        return NULL;
    }
    PyObject *res = Py_BuildValue("(iNI)", ev->opcode, payload, ev->close_code);
    return res; /* Py_BuildValue's N took payload, on failure too */
}

static PyObject *wscodec_feed(WsCodec *self, PyObject *arg)
{
    Py_buffer view;
    PyObject *events = PyList_New(0);
    if (events == NULL) {
        return NULL;
    }
    if (self->done) {
        return events;
    }
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0) {
        Py_DECREF(events);
        return NULL;
    }
    size_t len = (size_t)view.len;
    if (len > self->buf_cap) {
        unsigned char *p = realloc(self->buf, len);
        if (p == NULL) {
            PyErr_NoMemory();
            goto fail;
        }
        self->buf = p;
        self->buf_cap = len;
    }
    if (len > 0) {
        memcpy(self->buf, view.buf, len);
    }
    PyBuffer_Release(&view);
    view.obj = NULL;

    size_t pos = 0;
    for (;;) {
        size_t used = 0;
        cp_ws_event ev;
        int r = cp_ws_decode(&self->dec, self->buf + pos, len - pos, &used, &ev);
        if (r == CP_WS_MORE || r == CP_WS_CLOSED) {
            break;
        }
        PyObject *item;
        if (r == CP_WS_ERROR) {
            self->done = 1;
            item = Py_BuildValue("(isI)", WS_ERROR, self->dec.error_reason,
                                 self->dec.error_code);
        } else {
            pos += used;
            if (ev.opcode == CP_WS_CLOSE) {
                self->done = 1;
            }
            item = event_tuple(&ev);
        }
        if (item == NULL) {
            goto fail;
        }
        int err = PyList_Append(events, item);
        Py_DECREF(item);
        if (err < 0) {
            goto fail;
        }
        if (self->done) {
            break;
        }
    }
    return events;
fail:
    if (view.obj != NULL) {
        PyBuffer_Release(&view);
    }
    Py_DECREF(events);
    return NULL;
}

/* ---- encoding ------------------------------------------------------------ */

/* A frame as a new bytes object: header, then payload[0..n), uncompressed. */
static PyObject *plain_frame(int opcode, const char *payload, size_t n)
{
    unsigned char head[CP_WS_HEADER_MAX];
    size_t h = cp_ws_write_header(head, opcode, 1, 0, n);
    if (n > (size_t)PY_SSIZE_T_MAX - h) {
        return PyErr_NoMemory();
    }
    PyObject *out = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)(h + n));
    if (out == NULL) {
        return NULL;
    }
    char *p = PyBytes_AS_STRING(out);
    memcpy(p, head, h);
    if (n > 0) {
        memcpy(p + h, payload, n);
    }
    return out;
}

static PyObject *wscodec_encode(WsCodec *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "encode(kind, payload)");
        return NULL;
    }
    long opcode = PyLong_AsLong(args[0]);
    if (opcode == -1 && PyErr_Occurred()) {
        return NULL;
    }
    if (opcode != CP_WS_TEXT && opcode != CP_WS_BINARY && opcode != CP_WS_PING &&
        opcode != CP_WS_PONG) {
        PyErr_SetString(PyExc_ValueError,
                        "encode() kind must be WS_TEXT, WS_BINARY, WS_PING or WS_PONG");
        return NULL;
    }
    Py_buffer view = {0};
    const char *data;
    Py_ssize_t n;
    if (PyUnicode_Check(args[1])) {
        data = PyUnicode_AsUTF8AndSize(args[1], &n); /* kept by the str */
        if (data == NULL) {
            return NULL;
        }
    } else {
        if (PyObject_GetBuffer(args[1], &view, PyBUF_SIMPLE) < 0) {
            return NULL;
        }
        data = view.buf;
        n = view.len;
    }
    PyObject *res = NULL;
    if (opcode == CP_WS_PING || opcode == CP_WS_PONG) {
        if (n > 125) {
            PyErr_SetString(PyExc_ValueError, "a ping or pong payload is at most 125 bytes");
        } else {
            res = plain_frame((int)opcode, data, (size_t)n);
        }
    } else if (!self->deflate) {
        res = plain_frame((int)opcode, data, (size_t)n);
    } else {
        const unsigned char *frame;
        size_t frame_len;
        if (cp_ws_deflate_frame(&self->enc, (int)opcode, (const unsigned char *)data, (size_t)n,
                                &frame, &frame_len) < 0) {
            PyErr_SetString(PyExc_MemoryError, "permessage-deflate: compressing failed");
        } else {
            res = PyBytes_FromStringAndSize((const char *)frame, (Py_ssize_t)frame_len);
        }
    }
    if (view.obj != NULL) {
        PyBuffer_Release(&view);
    }
    return res;
}

/* ---- module-level functions ------------------------------------------------ */

/* The longest prefix of p[0..n) that ends at a code point boundary. */
static size_t utf8_prefix(const unsigned char *p, size_t n)
{
    while (n > 0 && (p[n] & 0xc0) == 0x80) {
        n--;
    }
    return n;
}

PyObject *cp_ws_close_frame(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs < 1 || nargs > 2) {
        PyErr_SetString(PyExc_TypeError, "ws_close_frame(code, reason='')");
        return NULL;
    }
    long code = PyLong_AsLong(args[0]);
    if (code == -1 && PyErr_Occurred()) {
        return NULL;
    }
    const char *reason = "";
    Py_ssize_t n = 0;
    if (nargs == 2 && (reason = PyUnicode_AsUTF8AndSize(args[1], &n)) == NULL) {
        return NULL;
    }
    size_t len = (size_t)n;
    if (len > 123) {
        /* cut at a code point boundary (p[123] is read: len > 123) */
        len = utf8_prefix((const unsigned char *)reason, 123);
    }
    unsigned char frame[CP_WS_HEADER_MAX + 125];
    size_t size = 0;
    if (code >= 0 && code <= 0xffff) {
        size = cp_ws_write_close(frame, (unsigned)code, reason, len);
    }
    if (size == 0) {
        PyErr_Format(PyExc_ValueError,
                     "%ld is no close code to send (1000-1003, 1007-1014, 3000-4999; "
                     "0 for none, without a reason)", code);
        return NULL;
    }
    return PyBytes_FromStringAndSize((const char *)frame, (Py_ssize_t)size);
}

PyObject *cp_ws_negotiate(PyObject *module, PyObject *args, PyObject *kwargs)
{
    (void)module;
    static char *kwlist[] = {"offers", "server_no_context_takeover",
                             "server_max_window_bits", "client_max_window_bits", NULL};
    Py_buffer offers;
    cp_ws_deflate_prefs prefs = {0, 15, 15};
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "y*|$pii:ws_negotiate_deflate", kwlist,
                                     &offers, &prefs.server_no_context_takeover,
                                     &prefs.server_max_window_bits,
                                     &prefs.client_max_window_bits)) {
        return NULL;
    }
    PyObject *res = NULL;
    if (prefs.server_max_window_bits < 9 || prefs.server_max_window_bits > 15 ||
        prefs.client_max_window_bits < 8 || prefs.client_max_window_bits > 15) {
        PyErr_SetString(PyExc_ValueError, "server_max_window_bits must be 9..15 and "
                                          "client_max_window_bits 8..15");
        goto done;
    }
    cp_ws_deflate_params params;
    char resp[CP_WS_DEFLATE_RESPONSE_MAX];
    if (!cp_ws_negotiate_deflate(offers.buf, (size_t)offers.len, &prefs, &params, resp)) {
        res = Py_NewRef(Py_None);
        goto done;
    }
    res = Py_BuildValue("(y(iiii))", resp, params.server_no_context_takeover,
                        params.client_no_context_takeover, params.server_max_window_bits,
                        params.client_max_window_bits);
done:
    PyBuffer_Release(&offers);
    return res;
}

int cp_ws_add_constants(PyObject *module)
{
    if (PyModule_AddIntConstant(module, "WS_TEXT", CP_WS_TEXT) < 0 ||
        PyModule_AddIntConstant(module, "WS_BINARY", CP_WS_BINARY) < 0 ||
        PyModule_AddIntConstant(module, "WS_CLOSE", CP_WS_CLOSE) < 0 ||
        PyModule_AddIntConstant(module, "WS_PING", CP_WS_PING) < 0 ||
        PyModule_AddIntConstant(module, "WS_PONG", CP_WS_PONG) < 0 ||
        PyModule_AddIntConstant(module, "WS_ERROR", WS_ERROR) < 0) {
        return -1;
    }
    return 0;
}

/* ---- the type ---------------------------------------------------------------- */

static PyMethodDef wscodec_methods[] = {
    {"feed", (PyCFunction)wscodec_feed, METH_O,
     "feed(data) -> list of (kind, payload, code)\n\n"
     "Decode the bytes read from the client: whole messages, pings, pongs, then at "
     "most one close (WS_CLOSE) or error (WS_ERROR, with the close code to send); "
     "[] once either was returned."},
    {"encode", (PyCFunction)(void (*)(void))wscodec_encode, METH_FASTCALL,
     "encode(kind, payload) -> bytes\n\n"
     "One whole frame: WS_TEXT (a str), WS_BINARY, WS_PING or WS_PONG (bytes-like); "
     "text and binary deflated when permessage-deflate is on."},
    {NULL, NULL, 0, NULL},
};

static PyType_Slot wscodec_slots[] = {
    {Py_tp_new, wscodec_new},
    {Py_tp_dealloc, wscodec_dealloc},
    {Py_tp_methods, wscodec_methods},
    {Py_tp_doc, "WsCodec(max_size, deflate=None, *, level=-1)\n\n"
                "One WebSocket connection's frame codec (server side): feed() decodes, "
                "encode() frames.  max_size: the largest message, after inflation; "
                "deflate: the parameters ws_negotiate_deflate() returned, or None; "
                "level: zlib's for messages under 4 KiB (-1: 6), larger ones at 1 at most."},
    {0, NULL},
};

PyType_Spec cp_wscodec_spec = {
    .name = "carpinus._core.WsCodec",
    .basicsize = sizeof(WsCodec),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_IMMUTABLETYPE,
    .slots = wscodec_slots,
};
