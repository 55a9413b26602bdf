/*
 * module.c -- carpinus._core: module state and multi-phase initialization.
 *
 * Everything mutable or Python-owned lives in the module state (cp_state):
 * the heap types, interned keys, constant values.  There are no static
 * PyObject* globals, so each (sub-)interpreter gets its own copy.  What
 * lets the module run without the GIL is in core.h ("Threads").
 */
#include "core.h"

#include <string.h>
#ifdef __GLIBC__
#include <malloc.h>
#endif

static inline cp_state *get_state(PyObject *module)
{
    return (cp_state *)PyModule_GetState(module);
}

/* Every PyObject* field of cp_state, for traverse and clear. */
#define CP_STATE_FIELDS(X)                                                               \
    X(ServerState_Type)                                                                  \
    X(HttpProtocol_Type)                                                                 \
    X(RequestCycle_Type)                                                                 \
    X(Outcome_Type)                                                                      \
    X(Done_Type)                                                                         \
    X(AppRunner_Type)                                                                    \
    X(LazyHeaders_Type)                                                                  \
    X(WsCodec_Type)                                                                      \
    X(ClientDisconnected)                                                                \
    X(k_type)                                                                            \
    X(k_asgi)                                                                            \
    X(k_http_version)                                                                    \
    X(k_method)                                                                          \
    X(k_scheme)                                                                          \
    X(k_path)                                                                            \
    X(k_raw_path)                                                                        \
    X(k_query_string)                                                                    \
    X(k_root_path)                                                                       \
    X(k_headers)                                                                         \
    X(k_client)                                                                          \
    X(k_server)                                                                          \
    X(k_state)                                                                           \
    X(k_extensions)                                                                      \
    X(k_trailers)                                                                        \
    X(k_more_trailers)                                                                   \
    X(k_ext_trailers)                                                                    \
    X(k_status)                                                                          \
    X(k_body)                                                                            \
    X(k_more_body)                                                                       \
    X(k_version)                                                                         \
    X(k_spec_version)                                                                    \
    X(v_http)                                                                            \
    X(v_https)                                                                           \
    X(v_1_0)                                                                             \
    X(v_1_1)                                                                             \
    X(v_2)                                                                               \
    X(v_3_0)                                                                             \
    X(v_2_4)                                                                             \
    X(v_http_request)                                                                    \
    X(v_http_disconnect)                                                                 \
    X(v_http_response_start)                                                             \
    X(v_http_response_body)                                                              \
    X(v_http_response_trailers)                                                          \
    X(v_http_response_pathsend)                                                          \
    X(v_http_response_early_hint)                                                        \
    X(k_path_key)                                                                        \
    X(k_links)                                                                           \
    X(empty_bytes)                                                                       \
    X(asgi_template)                                                                     \
    X(s_write)                                                                           \
    X(s_writelines)                                                                      \
    X(s_close)                                                                           \
    X(s_is_closing)                                                                      \
    X(s_abort)                                                                           \
    X(s_get_write_buffer_size)                                                           \
    X(s_pause_reading)                                                                   \
    X(s_resume_reading)                                                                  \
    X(s_get_extra_info)                                                                  \
    X(s_peername)                                                                        \
    X(s_sockname)                                                                        \
    X(s_sslcontext)                                                                      \
    X(s_set_result)                                                                      \
    X(s_done)                                                                            \
    X(s_cancel)                                                                          \
    X(s_throw)                                                                           \
    X(s_process_pending)                                                                 \
    X(s_flush_h2)                                                                        \
    X(s_ssl_object)                                                                      \
    X(s_selected_alpn)                                                                   \
    X(s_context)                                                                         \
    X(s_name)                                                                            \
    X(s_dunder_call)                                                                     \
    X(done_awaitable)

static int core_traverse(PyObject *module, visitproc visit, void *arg)
{
    cp_state *st = get_state(module);
#define VISIT(name) Py_VISIT(st->name);
    CP_STATE_FIELDS(VISIT)
#undef VISIT
    for (int i = 0; i < CP_METHOD_COUNT; i++) {
        Py_VISIT(st->methods[i]);
    }
    for (int i = 0; i < CP_COMMON_HEADER_COUNT; i++) {
        Py_VISIT(st->common_headers[i]);
    }
    return 0;
}

static int core_clear(PyObject *module)
{
    cp_state *st = get_state(module);
#define CLEAR(name) Py_CLEAR(st->name);
    CP_STATE_FIELDS(CLEAR)
#undef CLEAR
    for (int i = 0; i < CP_METHOD_COUNT; i++) {
        Py_CLEAR(st->methods[i]);
    }
    for (int i = 0; i < CP_COMMON_HEADER_COUNT; i++) {
        Py_CLEAR(st->common_headers[i]);
    }
    return 0;
}

static void core_free(void *module)
{
    core_clear((PyObject *)module);
}

static int intern(PyObject **slot, const char *text)
{
    *slot = PyUnicode_InternFromString(text);
    return *slot == NULL ? -1 : 0;
}

static int add_type(PyObject *module, PyTypeObject **slot, PyType_Spec *spec,
                    PyObject *bases)
{
    *slot = (PyTypeObject *)PyType_FromModuleAndSpec(module, spec, bases);
    if (*slot == NULL) {
        return -1;
    }
    return PyModule_AddType(module, *slot);
}

static int core_exec(PyObject *module)
{
    cp_state *st = get_state(module);
    PyObject *asyncio = NULL, *buffered = NULL, *bases = NULL;

    /* HttpProtocol subclasses asyncio.BufferedProtocol so that transports
       (stdlib and uvloop) recognise it and call get_buffer/buffer_updated. */
    asyncio = PyImport_ImportModule("asyncio");
    if (asyncio == NULL) {
        goto fail;
    }
    buffered = PyObject_GetAttrString(asyncio, "BufferedProtocol");
    if (buffered == NULL || (bases = PyTuple_Pack(1, buffered)) == NULL) {
        goto fail;
    }
    if (add_type(module, &st->ServerState_Type, &cp_server_state_spec, NULL) < 0 ||
        add_type(module, &st->HttpProtocol_Type, &cp_protocol_spec, bases) < 0 ||
        add_type(module, &st->RequestCycle_Type, &cp_cycle_spec, NULL) < 0 ||
        add_type(module, &st->Outcome_Type, &cp_outcome_spec, NULL) < 0 ||
        add_type(module, &st->Done_Type, &cp_done_spec, NULL) < 0 ||
        add_type(module, &st->AppRunner_Type, &cp_runner_spec, NULL) < 0 ||
        add_type(module, &st->LazyHeaders_Type, &cp_lazy_headers_spec, NULL) < 0 ||
        add_type(module, &st->WsCodec_Type, &cp_wscodec_spec, NULL) < 0 ||
        cp_ws_add_constants(module) < 0) {
        goto fail;
    }
    st->ClientDisconnected = PyErr_NewExceptionWithDoc(
        "carpinus._core.ClientDisconnected",
        "Raised by send() when the client has gone away (ASGI spec 2.4).",
        PyExc_OSError, NULL);
    if (st->ClientDisconnected == NULL ||
        PyModule_AddObjectRef(module, "ClientDisconnected", st->ClientDisconnected) < 0) {
        goto fail;
    }

    if (intern(&st->k_type, "type") < 0 || intern(&st->k_asgi, "asgi") < 0 ||
        intern(&st->k_http_version, "http_version") < 0 ||
        intern(&st->k_method, "method") < 0 || intern(&st->k_scheme, "scheme") < 0 ||
        intern(&st->k_path, "path") < 0 || intern(&st->k_raw_path, "raw_path") < 0 ||
        intern(&st->k_query_string, "query_string") < 0 ||
        intern(&st->k_root_path, "root_path") < 0 || intern(&st->k_headers, "headers") < 0 ||
        intern(&st->k_client, "client") < 0 || intern(&st->k_server, "server") < 0 ||
        intern(&st->k_state, "state") < 0 || intern(&st->k_extensions, "extensions") < 0 ||
        intern(&st->k_trailers, "trailers") < 0 ||
        intern(&st->k_more_trailers, "more_trailers") < 0 ||
        intern(&st->k_ext_trailers, "http.response.trailers") < 0 ||
        intern(&st->v_http_response_trailers, "http.response.trailers") < 0 ||
        intern(&st->v_http_response_pathsend, "http.response.pathsend") < 0 ||
        intern(&st->v_http_response_early_hint, "http.response.early_hint") < 0 ||
        intern(&st->k_path_key, "path") < 0 || intern(&st->k_links, "links") < 0 ||
        intern(&st->k_status, "status") < 0 || intern(&st->k_body, "body") < 0 ||
        intern(&st->k_more_body, "more_body") < 0 || intern(&st->k_version, "version") < 0 ||
        intern(&st->k_spec_version, "spec_version") < 0 || intern(&st->v_http, "http") < 0 ||
        intern(&st->v_https, "https") < 0 || intern(&st->v_1_0, "1.0") < 0 ||
        intern(&st->v_1_1, "1.1") < 0 || intern(&st->v_2, "2") < 0 ||
        intern(&st->v_3_0, "3.0") < 0 ||
        intern(&st->v_2_4, "2.4") < 0 || intern(&st->v_http_request, "http.request") < 0 ||
        intern(&st->v_http_disconnect, "http.disconnect") < 0 ||
        intern(&st->v_http_response_start, "http.response.start") < 0 ||
        intern(&st->v_http_response_body, "http.response.body") < 0 ||
        intern(&st->s_write, "write") < 0 || intern(&st->s_writelines, "writelines") < 0 ||
        intern(&st->s_close, "close") < 0 || intern(&st->s_is_closing, "is_closing") < 0 ||
        intern(&st->s_abort, "abort") < 0 ||
        intern(&st->s_get_write_buffer_size, "get_write_buffer_size") < 0 ||
        intern(&st->s_pause_reading, "pause_reading") < 0 ||
        intern(&st->s_resume_reading, "resume_reading") < 0 ||
        intern(&st->s_get_extra_info, "get_extra_info") < 0 ||
        intern(&st->s_peername, "peername") < 0 || intern(&st->s_sockname, "sockname") < 0 ||
        intern(&st->s_sslcontext, "sslcontext") < 0 ||
        intern(&st->s_set_result, "set_result") < 0 || intern(&st->s_done, "done") < 0 ||
        intern(&st->s_cancel, "cancel") < 0 || intern(&st->s_throw, "throw") < 0 ||
        intern(&st->s_process_pending, "_process_pending") < 0 ||
        intern(&st->s_flush_h2, "_flush_h2") < 0 || intern(&st->s_ssl_object, "ssl_object") < 0 ||
        intern(&st->s_selected_alpn, "selected_alpn_protocol") < 0 ||
        intern(&st->s_context, "context") < 0 || intern(&st->s_name, "name") < 0 ||
        intern(&st->s_dunder_call, "__call__") < 0) {
        goto fail;
    }
    static const char *const method_names[CP_METHOD_COUNT] = {
        [CP_METHOD_OTHER] = "", [CP_METHOD_GET] = "GET",         [CP_METHOD_HEAD] = "HEAD",
        [CP_METHOD_POST] = "POST", [CP_METHOD_PUT] = "PUT",     [CP_METHOD_DELETE] = "DELETE",
        [CP_METHOD_PATCH] = "PATCH", [CP_METHOD_OPTIONS] = "OPTIONS",
        [CP_METHOD_TRACE] = "TRACE",
    };
    for (int i = 0; i < CP_METHOD_COUNT; i++) {
        if (intern(&st->methods[i], method_names[i]) < 0) {
            goto fail;
        }
    }
    st->empty_bytes = PyBytes_FromStringAndSize("", 0);
    st->asgi_template = PyDict_New();
    if (st->empty_bytes == NULL || st->asgi_template == NULL ||
        PyDict_SetItem(st->asgi_template, st->k_version, st->v_3_0) < 0 ||
        PyDict_SetItem(st->asgi_template, st->k_spec_version, st->v_2_4) < 0) {
        goto fail;
    }
    if (cp_common_headers_init(st) < 0) {
        goto fail;
    }
    if (PyModule_AddIntConstant(module, "OPT_ZERO_COPY_BODY", CP_OPT_ZERO_COPY_BODY) < 0 ||
        PyModule_AddIntConstant(module, "OPT_DIRECT_RESPONSE", CP_OPT_DIRECT_RESPONSE) < 0 ||
        PyModule_AddIntConstant(module, "OPT_SCOPE_CACHE", CP_OPT_SCOPE_CACHE) < 0 ||
        PyModule_AddIntConstant(module, "OPT_HEADER_NAMES", CP_OPT_HEADER_NAMES) < 0 ||
        PyModule_AddIntConstant(module, "OPT_LAZY_HEADERS", CP_OPT_LAZY_HEADERS) < 0 ||
        PyModule_AddIntConstant(module, "OPT_STATUS_CACHE", CP_OPT_STATUS_CACHE) < 0 ||
        PyModule_AddIntConstant(module, "OPT_CYCLE_REUSE", CP_OPT_CYCLE_REUSE) < 0 ||
        PyModule_AddIntConstant(module, "OPT_TASK_NAMES", CP_OPT_TASK_NAMES) < 0 ||
        PyModule_AddIntConstant(module, "ZERO_COPY_MAX", CP_ZERO_COPY_MAX) < 0 ||
        PyModule_AddIntConstant(module, "ZERO_COPY_BUDGET", CP_ZERO_COPY_BUDGET) < 0 ||
        PyModule_AddIntConstant(module, "HTTP_1", CP_HTTP_1) < 0 ||
        PyModule_AddIntConstant(module, "HTTP_2", CP_HTTP_2) < 0 ||
        /* 1 when built with libnghttp2 (HTTP/2) */
        PyModule_AddIntConstant(module, "HAVE_HTTP2", cp_h2_available()) < 0) {
        goto fail;
    }
    for (int code = 100; code < 600; code++) {
        st->status_line_len[code - 100] =
            (unsigned char)cp_write_status_line(st->status_lines[code - 100], code);
    }
    st->done_awaitable = cp_done_new(st);
    if (st->done_awaitable == NULL) {
        goto fail;
    }
    Py_DECREF(asyncio);
    Py_DECREF(buffered);
    Py_DECREF(bases);
    return 0;
fail:
    Py_XDECREF(asyncio);
    Py_XDECREF(buffered);
    Py_XDECREF(bases);
    return -1;
}

/* glibc returns freed memory at the top of the heap to the OS as soon as more
   than 128 KiB is free there (and serves allocations >= 128 KiB by mmap until
   its dynamic threshold catches up).  A server that allocates and frees
   request bodies at a high rate then spends its time in brk() and page faults:
   measured 35 % of the throughput of 16 KiB uploads.  This fixes both
   thresholds for the process. */
static PyObject *tune_allocator(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "tune_allocator(trim_threshold, mmap_threshold)");
        return NULL;
    }
    long trim = PyLong_AsLong(args[0]);
    long mmap_threshold = PyLong_AsLong(args[1]);
    if ((trim == -1 || mmap_threshold == -1) && PyErr_Occurred()) {
        return NULL;
    }
    if (trim < 0 || mmap_threshold < 0 || trim > INT_MAX || mmap_threshold > INT_MAX) {
        PyErr_SetString(PyExc_ValueError, "thresholds must be between 0 and INT_MAX");
        return NULL;
    }
#ifdef __GLIBC__
    if (mallopt(M_TRIM_THRESHOLD, (int)trim) && mallopt(M_MMAP_THRESHOLD, (int)mmap_threshold)) {
        Py_RETURN_TRUE;
    }
#endif
    Py_RETURN_FALSE;
}

/* Config checks --header values with the very code the server will use. */
static PyObject *default_headers(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "default_headers(pairs, server_header)");
        return NULL;
    }
    int server_header = PyObject_IsTrue(args[1]);
    if (server_header < 0) {
        return NULL;
    }
    PyObject *server_line, *extra;
    if (cp_default_headers(args[0], server_header, &server_line, &extra) < 0) {
        return NULL;
    }
    PyObject *res = PyTuple_Pack(2, server_line ? server_line : Py_None,
                                 extra ? extra : Py_None);
    Py_XDECREF(server_line);
    Py_XDECREF(extra);
    return res;
}

static PyMethodDef core_methods[] = {
    {"default_headers", (PyCFunction)(void (*)(void))default_headers, METH_FASTCALL,
     "default_headers(pairs, server_header) -> (server_lines, other_lines)\n\n"
     "The response header lines the server adds to every response, as bytes (or None), "
     "from (name, value) byte pairs; ValueError for a name or value it would refuse."},
    {"tune_allocator", (PyCFunction)(void (*)(void))tune_allocator, METH_FASTCALL,
     "tune_allocator(trim_threshold, mmap_threshold) -> bool\n\n"
     "Set glibc's malloc trim and mmap thresholds for the process (False when the C "
     "library is not glibc or refused)."},
    {"ws_close_frame", (PyCFunction)(void (*)(void))cp_ws_close_frame, METH_FASTCALL,
     "ws_close_frame(code, reason='') -> bytes\n\n"
     "A WebSocket close frame (server side): code 0 for none; the reason is cut to "
     "123 bytes at a code point; ValueError for a code that may not be sent."},
    {"ws_negotiate_deflate", (PyCFunction)(void (*)(void))cp_ws_negotiate,
     METH_VARARGS | METH_KEYWORDS,
     "ws_negotiate_deflate(offers, *, server_no_context_takeover=False, "
     "server_max_window_bits=15, client_max_window_bits=15) -> (bytes, params) | None\n\n"
     "Pick the first acceptable permessage-deflate offer (RFC 7692) among the "
     "Sec-WebSocket-Extensions values joined with ', ': the response value and the "
     "parameters for WsCodec(deflate=...), or None."},
    {NULL, NULL, 0, NULL},
};

static PyModuleDef_Slot core_slots[] = {
    {Py_mod_exec, core_exec},
#ifdef Py_mod_multiple_interpreters
    {Py_mod_multiple_interpreters, Py_MOD_PER_INTERPRETER_GIL_SUPPORTED},
#endif
#ifdef Py_mod_gil
    /* Safe without the GIL (3.13t): module state is immutable after exec
       except for counters bumped atomically, shared objects have no state
       (Done), objects an app may hand to other threads lock themselves
       (LazyHeaders), and containers the app owns are read under their
       critical section.  Everything else belongs to one ServerState, which
       one event loop thread drives (core.h). */
    {Py_mod_gil, Py_MOD_GIL_NOT_USED},
#endif
    {0, NULL},
};

static struct PyModuleDef core_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "carpinus._core",
    .m_doc = "The C core of carpinus: HTTP/1.1 parsing, ASGI scopes, responses.",
    .m_size = sizeof(cp_state),
    .m_methods = core_methods,
    .m_slots = core_slots,
    .m_traverse = core_traverse,
    .m_clear = core_clear,
    .m_free = core_free,
};

PyMODINIT_FUNC PyInit__core(void)
{
    return PyModuleDef_Init(&core_module);
}
