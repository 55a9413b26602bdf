/*
 * server.c -- ServerState: everything one running server shares between its
 * connections.  Python creates it once per event loop and hands it to
 * loop.create_server() as the protocol factory (it is callable).  Nothing
 * here locks: a ServerState is used on its loop's thread only (core.h,
 * "Threads").
 */
#include "core.h"

#include <math.h>
#include <string.h>

/* Call fn on every connection; safe if fn closes (but does not unlink). */
static void for_each_conn(ServerState *s, void (*fn)(HttpProtocol *, double), double arg)
{
    HttpProtocol *c = s->conns;
    if (c != NULL) {
        Py_INCREF(c);
    }
    while (c != NULL) {
        HttpProtocol *next = c->next;
        Py_XINCREF(next);
        fn(c, arg);
        Py_DECREF(c);
        c = next;
    }
}

/* ---- construction --------------------------------------------------- */

/* How a core option is read into its ServerState field. */
typedef enum {
    CP_KW_BOOL,     /* int: the value's truth */
    CP_KW_SIZE,     /* size_t: an int in [min, max] */
    CP_KW_LIMIT,    /* int64_t: an int in [min, max], or None for no limit (-1) */
    CP_KW_SECONDS,  /* double: a number in [min, max] (or (min, max]) */
    CP_KW_STR,      /* PyObject *: a str (a strong reference) */
    CP_KW_OPT_BITS, /* unsigned: CP_OPT_* bits */
} cp_kw_kind;

/* A core option: one row of the table in server_options.h, which
   scripts/gen_options.py generates from the option table
   (src/carpinus/options.py), where the option's default is too. */
typedef struct {
    const char *name; /* the keyword argument (and Config field) */
    cp_kw_kind kind;
    size_t offset; /* of its field in ServerState */
    double min, max;
    int min_open;        /* min itself is not allowed ("positive") */
    const char *allowed; /* min and max in words, for the error */
} cp_core_option;

#define CP_CORE_FIELD(field, type)                                                    \
    _Static_assert(_Generic(((ServerState *)0)->field, type: 1, default: 0),           \
                   "ServerState." #field " must be a " #type)

#include "server_options.h"

static PyObject **core_object(ServerState *s, const cp_core_option *o)
{
    return (PyObject **)((char *)s + o->offset);
}

/* Read one core option into its field.  The values allowed are the option
   table's, which Python checked already: this is the core keeping itself
   safe from any other caller. */
static int set_core_option(ServerState *s, const cp_core_option *o, PyObject *value)
{
    char *field = (char *)s + o->offset;
    double number;
    if (o->kind == CP_KW_BOOL) {
        int truth = PyObject_IsTrue(value);
        if (truth < 0) {
            return -1;
        }
        *(int *)field = truth;
        return 0;
    }
    if (o->kind == CP_KW_STR) {
        if (!PyUnicode_Check(value)) {
            PyErr_Format(PyExc_TypeError, "%s must be a str, got %R", o->name, value);
            return -1;
        }
        Py_XSETREF(*core_object(s, o), Py_NewRef(value));
        return 0;
    }
    if (o->kind == CP_KW_OPT_BITS) {
        unsigned long bits = PyLong_AsUnsignedLong(value);
        if (bits == (unsigned long)-1 && PyErr_Occurred()) {
            return -1;
        }
        if ((bits & ~(unsigned long)CP_OPT_ALL) != 0) {
            PyErr_Format(PyExc_ValueError, "%s has unknown bits: %R", o->name, value);
            return -1;
        }
        *(unsigned *)field = (unsigned)bits;
        return 0;
    }
    if (o->kind == CP_KW_LIMIT && value == Py_None) {
        *(int64_t *)field = -1;
        return 0;
    }
    if (o->kind == CP_KW_SECONDS) {
        number = PyFloat_AsDouble(value);
        if (number == -1.0 && PyErr_Occurred()) {
            return -1;
        }
    } else {
        Py_ssize_t n = PyLong_AsSsize_t(value);
        if (n == -1 && PyErr_Occurred()) {
            return -1;
        }
        number = (double)n;
    }
    /* (NaN fails both comparisons) */
    if (!(o->min_open ? number > o->min : number >= o->min) || !(number <= o->max)) {
        PyErr_Format(PyExc_ValueError, "%s must be %s, got %R", o->name, o->allowed, value);
        return -1;
    }
    switch (o->kind) {
    case CP_KW_SECONDS:
        *(double *)field = number;
        break;
    case CP_KW_SIZE:
        *(size_t *)field = (size_t)number;
        break;
    case CP_KW_LIMIT:
        *(int64_t *)field = (int64_t)number;
        break;
    default:
        break;
    }
    return 0;
}

/* Every core option, taken out of `kw` (a dict of its own): what is left
   are the run-time arguments.  Each is required: the core has no defaults,
   so it cannot disagree with the table's. */
static int set_core_options(ServerState *s, PyObject *kw)
{
    for (const cp_core_option *o = cp_core_options; o->name != NULL; o++) {
        PyObject *value = PyDict_GetItemString(kw, o->name); /* borrowed */
        if (value == NULL) {
            PyErr_Format(PyExc_TypeError,
                         "ServerState() missing required keyword argument '%s'", o->name);
            return -1;
        }
        Py_INCREF(value);
        int rc = set_core_option(s, o, value);
        Py_DECREF(value);
        if (rc < 0 || PyDict_DelItemString(kw, o->name) < 0) {
            return -1;
        }
    }
    return 0;
}

static PyObject *server_new(PyTypeObject *tp, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"app",
                             "loop",
                             "report_exception",
                             "task_factory",
                             "task_kwargs",
                             "log_error",
                             "lifespan_state",
                             "access_log",
                             "use_writelines",
                             "default_headers",
                             "proxy_fixup",
                             "proxy_trust",
                             "websocket",
                             "base_context",
                             "context_kwarg",
                             "report_refusal",
                             "tls_extensions",
                             "metrics",
                             "pathsend",
                             "extensions",
                             "task_name_kwarg",
                             NULL};
    PyObject *app, *loop, *report_exception, *task_factory, *task_kwargs = Py_None, *log_error;
    PyObject *lifespan_state = Py_None, *access_log = Py_None;
    int use_writelines = 0;
    PyObject *default_headers = Py_None, *proxy_fixup = Py_None, *proxy_trust = Py_None;
    PyObject *websocket = Py_None, *base_context = Py_None, *report_refusal = Py_None;
    PyObject *tls_extensions = Py_None, *pathsend = Py_None, *extensions = Py_None;
    int context_kwarg = 0, metrics = 0, task_name_kwarg = 0;
    ServerState *s = (ServerState *)tp->tp_alloc(tp, 0);
    if (s == NULL) {
        return NULL;
    }
    /* the core options first, into s; then the rest.  (kw keeps the
       values it shares with kwds alive until the end.) */
    PyObject *kw = kwds != NULL ? PyDict_Copy(kwds) : PyDict_New();
    if (kw == NULL || set_core_options(s, kw) < 0 ||
        !PyArg_ParseTupleAndKeywords(args, kw, "OOOOOO|$OOpOOOOOpOOpOOp:ServerState", kwlist,
                                     &app, &loop, &report_exception, &task_factory,
                                     &task_kwargs, &log_error, &lifespan_state, &access_log,
                                     &use_writelines, &default_headers, &proxy_fixup,
                                     &proxy_trust, &websocket, &base_context,
                                     &context_kwarg, &report_refusal, &tls_extensions,
                                     &metrics, &pathsend, &extensions, &task_name_kwarg)) {
        goto fail;
    }
    if (s->http_versions == 0 || (s->http_versions & ~(size_t)(CP_HTTP_1 | CP_HTTP_2)) != 0) {
        PyErr_SetString(PyExc_ValueError, "http must be 1 (HTTP/1.1), 2 (HTTP/2) or 3 (both)");
        goto fail;
    }
    if (!cp_h2_available()) {
        /* built without libnghttp2: 'auto' is HTTP/1.1; HTTP/2 alone cannot be */
        if (s->http_versions == CP_HTTP_2) {
            PyErr_SetString(PyExc_ValueError,
                            "HTTP/2 needs libnghttp2, which this build of carpinus lacks");
            goto fail;
        }
        s->http_versions = CP_HTTP_1;
    }
    if (report_refusal != Py_None && !PyCallable_Check(report_refusal)) {
        PyErr_SetString(PyExc_TypeError, "report_refusal must be a callable or None");
        goto fail;
    }
    if (base_context != Py_None && !PyContext_CheckExact(base_context)) {
        PyErr_SetString(PyExc_TypeError, "base_context must be a contextvars.Context or None");
        goto fail;
    }
    if (tls_extensions != Py_None && !PyCallable_Check(tls_extensions)) {
        PyErr_SetString(PyExc_TypeError, "tls_extensions must be a callable or None");
        goto fail;
    }
    if (pathsend != Py_None && !PyCallable_Check(pathsend)) {
        PyErr_SetString(PyExc_TypeError, "pathsend must be a callable or None");
        goto fail;
    }
    if (extensions != Py_None && !PyDict_CheckExact(extensions)) {
        PyErr_SetString(PyExc_TypeError, "extensions must be a dict or None");
        goto fail;
    }
    if (websocket != Py_None && !PyCallable_Check(websocket)) {
        PyErr_SetString(PyExc_TypeError, "websocket must be a callable or None");
        goto fail;
    }
    s->mod = cp_get_state_from_type(tp);
    if (s->mod == NULL) {
        goto fail;
    }
    s->app = Py_NewRef(app);
    s->loop = Py_NewRef(loop);
    s->report_exception = Py_NewRef(report_exception);
    s->task_factory = Py_NewRef(task_factory);
    s->log_error = Py_NewRef(log_error);
    s->report_refusal = report_refusal != Py_None ? Py_NewRef(report_refusal) : NULL;
    /* None: the context of the code that makes the server */
    s->base_context = base_context != Py_None ? Py_NewRef(base_context)
                                              : PyContext_CopyCurrent();
    s->context_kwarg = context_kwarg;
    if (s->base_context == NULL) {
        goto fail;
    }
    if ((s->raw_root_path = cp_raw_root_path(s->root_path)) == NULL) {
        goto fail;
    }
    s->access_log = access_log != Py_None ? Py_NewRef(access_log) : NULL;
    if (cp_default_headers(default_headers, s->server_header, &s->server_line,
                           &s->extra_headers) < 0) {
        goto fail;
    }
    if ((proxy_fixup != Py_None && !PyCallable_Check(proxy_fixup)) ||
        (proxy_trust != Py_None && !PyCallable_Check(proxy_trust))) {
        PyErr_SetString(PyExc_TypeError, "proxy_fixup and proxy_trust must be callables or None");
        goto fail;
    }
    if (proxy_fixup != Py_None) {
        s->proxy_fixup = Py_NewRef(proxy_fixup);
        s->proxy_trust = proxy_trust != Py_None ? Py_NewRef(proxy_trust) : NULL;
    }
    s->websocket = websocket != Py_None ? Py_NewRef(websocket) : NULL;
    s->tls_extensions = tls_extensions != Py_None ? Py_NewRef(tls_extensions) : NULL;
    s->pathsend = pathsend != Py_None ? Py_NewRef(pathsend) : NULL;
    if (extensions != Py_None && PyDict_GET_SIZE(extensions) > 0 &&
        (s->extensions_template = PyDict_Copy(extensions)) == NULL) {
        goto fail;
    }
    s->use_writelines = use_writelines;
    s->metrics = metrics;
    s->scope_cache = PyMem_Calloc(s->scope_cache_size, sizeof(cp_scope_slot));
    if (s->scope_cache == NULL) {
        PyErr_NoMemory();
        goto fail;
    }
    s->tasks = PySet_New(NULL);
    s->create_future = PyObject_GetAttrString(loop, "create_future");
    s->call_soon = PyObject_GetAttrString(loop, "call_soon");
    if (s->tasks == NULL || s->create_future == NULL || s->call_soon == NULL) {
        goto fail;
    }
    s->scope_template = cp_scope_template(s->mod, s->root_path);
    s->asgi_template = PyDict_Copy(s->mod->asgi_template);
    if (s->scope_template == NULL || s->asgi_template == NULL) {
        goto fail;
    }
    if (lifespan_state == Py_None) {
        s->lifespan_state = PyDict_New();
    } else if (PyDict_Check(lifespan_state)) {
        s->lifespan_state = Py_NewRef(lifespan_state);
    } else {
        PyErr_SetString(PyExc_TypeError, "lifespan_state must be a dict");
        goto fail;
    }
    if (s->lifespan_state == NULL) {
        goto fail;
    }
    s->name_tasks = task_name_kwarg && (s->opts & CP_OPT_TASK_NAMES);
    if (task_kwargs != Py_None || context_kwarg || s->name_tasks) {
        /* kwnames: the task_kwargs keys, then "name" and "context" when the
           core passes them (their values are made per request) */
        if (task_kwargs != Py_None &&
            (!PyDict_Check(task_kwargs) || PyDict_GET_SIZE(task_kwargs) > 3)) {
            PyErr_SetString(PyExc_TypeError, "task_kwargs must be a dict of at most 3 items");
            goto fail;
        }
        PyObject *keys = task_kwargs != Py_None ? PyDict_Keys(task_kwargs) : PyList_New(0);
        PyObject *values = task_kwargs != Py_None ? PyDict_Values(task_kwargs) : PyList_New(0);
        if (keys == NULL || values == NULL ||
            (s->name_tasks && PyList_Append(keys, s->mod->s_name) < 0) ||
            (context_kwarg && PyList_Append(keys, s->mod->s_context) < 0)) {
            Py_XDECREF(keys);
            Py_XDECREF(values);
            goto fail;
        }
        s->task_kwnames = PyList_AsTuple(keys);
        s->task_kwvalues = PyList_AsTuple(values);
        Py_DECREF(keys);
        Py_DECREF(values);
        if (s->task_kwnames == NULL || s->task_kwvalues == NULL) {
            goto fail;
        }
    }

    s->header_spans = PyMem_Calloc(s->limits.max_headers, sizeof(cp_header));
    s->scratch_cap = CP_SCRATCH_SIZE;
    s->scratch = PyMem_Malloc(s->scratch_cap);
    if (s->header_spans == NULL || s->scratch == NULL) {
        PyErr_NoMemory();
        goto fail;
    }
    s->scratch_view =
        PyMemoryView_FromMemory(s->scratch, (Py_ssize_t)s->scratch_cap, PyBUF_WRITE);
    s->discard = PyMem_Malloc(CP_DISCARD_SIZE);
    if (s->scratch_view == NULL || s->discard == NULL) {
        if (s->discard == NULL) {
            PyErr_NoMemory();
        }
        goto fail;
    }
    s->discard_view = PyMemoryView_FromMemory(s->discard, CP_DISCARD_SIZE, PyBUF_WRITE);
    if (s->discard_view == NULL) {
        goto fail;
    }
    s->module = PyType_GetModule(tp);
    Py_XINCREF(s->module);
    Py_DECREF(kw);
    return (PyObject *)s;
fail:
    Py_XDECREF(kw);
    Py_DECREF(s);
    return NULL;
}

/* ---- methods -------------------------------------------------------- */

static PyObject *server_call(ServerState *s, PyObject *args, PyObject *kwds)
{
    if (PyTuple_GET_SIZE(args) != 0 || (kwds != NULL && PyDict_GET_SIZE(kwds) != 0)) {
        PyErr_SetString(PyExc_TypeError, "the protocol factory takes no arguments");
        return NULL;
    }
    return cp_protocol_new(s);
}

static PyObject *server_tick(ServerState *s, PyObject *unused)
{
    (void)unused;
    for_each_conn(s, cp_conn_tick, cp_server_now(s));
    Py_RETURN_NONE;
}

static void shutdown_one(HttpProtocol *c, double unused)
{
    (void)unused;
    cp_conn_shutdown(c);
}

/* Close a connection now; one already closing (a TLS transport waiting for
   the peer's close_notify) is aborted. */
static void close_one(HttpProtocol *c, double unused)
{
    (void)unused;
    if (c->state < CP_ST_CLOSED) {
        cp_conn_close(c);
    } else if (!c->lost && c->transport != NULL) {
        PyObject *r = PyObject_CallMethodNoArgs(c->transport, c->server->mod->s_abort);
        if (r == NULL) {
            PyErr_WriteUnraisable((PyObject *)c);
        }
        Py_XDECREF(r);
    }
}

static PyObject *server_advance_clock(ServerState *s, PyObject *arg)
{
    double seconds = PyFloat_AsDouble(arg);
    if (seconds == -1.0 && PyErr_Occurred()) {
        return NULL;
    }
    if (!(seconds >= 0) || isinf(seconds)) {
        PyErr_SetString(PyExc_ValueError, "the clock only moves forward, by a finite time");
        return NULL;
    }
    s->clock_offset += seconds;
    Py_RETURN_NONE;
}

/* Stop the clock at its reading rounded up to a whole second: from then on
   a deadline set at T with a timeout of d falls exactly at T + d, and moving
   the clock by sums of binary fractions (0.5, 2**-10) lands on it exactly. */
static PyObject *server_freeze_clock(ServerState *s, PyObject *unused)
{
    (void)unused;
    if (!s->clock_frozen) {
        s->clock_offset = ceil(cp_server_now(s));
        s->clock_frozen = 1;
    }
    Py_RETURN_NONE;
}

static PyObject *server_shutdown(ServerState *s, PyObject *unused)
{
    (void)unused;
    s->shutting_down = 1;
    for_each_conn(s, shutdown_one, 0);
    Py_RETURN_NONE;
}

/* Does a graceful shutdown still wait for this connection?  An open one,
   yes; a closed one only while its transport holds bytes to send.  A TLS
   transport reports the connection lost only after the peer's close_notify
   (or 30 s): an idle client that does not answer would hold the shutdown up
   for nothing. */
static int conn_busy(HttpProtocol *c)
{
    if (c->state < CP_ST_CLOSED) {
        return 1;
    }
    if (c->lost || c->transport == NULL) {
        return 0;
    }
    PyObject *r = PyObject_CallMethodNoArgs(c->transport, c->server->mod->s_get_write_buffer_size);
    Py_ssize_t n = r != NULL ? PyLong_AsSsize_t(r) : -1;
    Py_XDECREF(r);
    if (n < 0) {
        PyErr_Clear();
        return 1; /* cannot tell: wait for it */
    }
    return n > 0;
}

static PyObject *server_busy_connections(ServerState *s, PyObject *unused)
{
    (void)unused;
    Py_ssize_t n = 0;
    HttpProtocol *c = s->conns;
    Py_XINCREF(c);
    while (c != NULL) {
        HttpProtocol *next = c->next;
        Py_XINCREF(next);
        n += conn_busy(c);
        Py_DECREF(c);
        c = next;
    }
    return PyLong_FromSsize_t(n);
}

static PyObject *server_close_all(ServerState *s, PyObject *unused)
{
    (void)unused;
    s->shutting_down = 1;
    for_each_conn(s, close_one, 0);
    Py_RETURN_NONE;
}

static PyObject *server_stats(ServerState *s, PyObject *unused)
{
    (void)unused;
    const cp_stats *t = &s->stats;
    const cp_state *st = s->mod;
    PyObject *d = PyDict_New();
    if (d == NULL) {
        return NULL;
    }
    /* (name, value) pairs: a table, so that adding a counter is one line */
    struct {
        const char *name;
        long long value; /* counters stay far below 2**63 */
    } counters[] = {
        {"connections_total", (long long)t->connections_total},
        {"requests_total", (long long)t->requests_total},
        {"parse_errors", (long long)t->parse_errors},
        {"bodies_too_large", (long long)t->bodies_too_large},
        {"timeouts", (long long)t->timeouts},
        {"overloaded", (long long)t->overloaded},
        {"internal_errors", (long long)t->internal_errors},
        {"app_errors", (long long)t->app_errors},
        {"body_bytes", (long long)t->body_bytes},
        {"body_bytes_drained", (long long)t->body_bytes_drained},
        {"connections", (long long)s->n_conns},
        {"active_requests", (long long)s->n_tasks},
        {"body_bytes_zero_copy", (long long)t->body_bytes_zero_copy},
        {"body_bytes_copied", (long long)t->body_bytes_copied},
        {"zero_copy_pending", (long long)s->zc_pending},
        {"scope_cache_hits", (long long)t->scope_cache_hits},
        {"scope_cache_misses", (long long)t->scope_cache_misses},
        {"cycles_reused", (long long)t->cycles_reused},
        {"lazy_headers_created", (long long)t->lazy_headers_created},
        {"headers_built", (long long)t->headers_built},
        {"responses_coalesced", (long long)t->responses_coalesced},
        {"responses_split", (long long)t->responses_split},
        {"status_lines_cached", (long long)t->status_lines_cached},
        {"status_lines_formatted", (long long)t->status_lines_formatted},
        {"websocket_upgrades", (long long)t->websocket_upgrades},
        {"h2_connections", (long long)t->h2_connections},
        /* module-wide: shared by every server of this interpreter */
        {"header_name_hits", (long long)cp_counter_get(&st->header_name_hits)},
        {"header_name_misses", (long long)cp_counter_get(&st->header_name_misses)},
        {"lazy_headers_materialized", (long long)cp_counter_get(&st->lazy_headers_materialized)},
        {"optimizations", (long long)s->opts},
    };
    for (size_t i = 0; i < sizeof counters / sizeof counters[0]; i++) {
        PyObject *v = PyLong_FromLongLong(counters[i].value);
        if (v == NULL || PyDict_SetItemString(d, counters[i].name, v) < 0) {
            Py_XDECREF(v);
            Py_DECREF(d);
            return NULL;
        }
        Py_DECREF(v);
    }
    return d;
}

static PyObject *server_metrics(ServerState *s, PyObject *unused)
{
    (void)unused;
    return cp_metrics_snapshot(s);
}

static PyObject *server_get_connections(ServerState *s, void *closure)
{
    (void)closure;
    return PyLong_FromSsize_t(s->n_conns);
}

static PyObject *server_get_active(ServerState *s, void *closure)
{
    (void)closure;
    return PyLong_FromSsize_t(s->n_tasks);
}

static PyObject *server_get_tasks(ServerState *s, void *closure)
{
    (void)closure;
    return PyFrozenSet_New(s->tasks);
}

static PyObject *server_get_websocket(ServerState *s, void *closure)
{
    (void)closure;
    return Py_NewRef(s->websocket != NULL ? s->websocket : Py_None);
}

static PyObject *server_get_shutting_down(ServerState *s, void *closure)
{
    (void)closure;
    return PyBool_FromLong(s->shutting_down);
}

/* ---- type ------------------------------------------------------------ */

static int server_traverse(ServerState *s, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(s));
    Py_VISIT(s->module);
    Py_VISIT(s->app);
    Py_VISIT(s->app_call);
    Py_VISIT(s->app_type);
    Py_VISIT(s->loop);
    Py_VISIT(s->create_future);
    Py_VISIT(s->call_soon);
    Py_VISIT(s->report_exception);
    Py_VISIT(s->task_factory);
    Py_VISIT(s->task_kwnames);
    Py_VISIT(s->task_kwvalues);
    Py_VISIT(s->raw_root_path);
    Py_VISIT(s->base_context);
    Py_VISIT(s->report_refusal);
    Py_VISIT(s->discard_view);
    Py_VISIT(s->scope_template);
    Py_VISIT(s->lifespan_state);
    Py_VISIT(s->access_log);
    Py_VISIT(s->server_line);
    Py_VISIT(s->extra_headers);
    Py_VISIT(s->proxy_fixup);
    Py_VISIT(s->proxy_trust);
    Py_VISIT(s->log_error);
    Py_VISIT(s->tasks);
    Py_VISIT(s->websocket);
    Py_VISIT(s->tls_extensions);
    Py_VISIT(s->pathsend);
    Py_VISIT(s->extensions_template);
    Py_VISIT(s->asgi_template);
    Py_VISIT(s->scratch_view);
    for (const cp_core_option *o = cp_core_options; o->name != NULL; o++) {
        if (o->kind == CP_KW_STR) {
            Py_VISIT(*core_object(s, o)); /* root_path */
        }
    }
    for (size_t i = 0; s->scope_cache != NULL && i < s->scope_cache_size; i++) {
        Py_VISIT(s->scope_cache[i].key);
        Py_VISIT(s->scope_cache[i].scope);
    }
    for (HttpProtocol *c = s->conns; c != NULL; c = c->next) {
        Py_VISIT(c);
    }
    return 0;
}

static int server_clear(ServerState *s)
{
    while (s->conns != NULL) {
        cp_conn_unlink(s, s->conns);
    }
    Py_CLEAR(s->app);
    Py_CLEAR(s->app_call);
    Py_CLEAR(s->app_type);
    Py_CLEAR(s->loop);
    Py_CLEAR(s->create_future);
    Py_CLEAR(s->call_soon);
    Py_CLEAR(s->report_exception);
    Py_CLEAR(s->task_factory);
    Py_CLEAR(s->task_kwnames);
    Py_CLEAR(s->task_kwvalues);
    Py_CLEAR(s->raw_root_path);
    Py_CLEAR(s->base_context);
    Py_CLEAR(s->report_refusal);
    Py_CLEAR(s->discard_view);
    Py_CLEAR(s->scope_template);
    Py_CLEAR(s->lifespan_state);
    Py_CLEAR(s->access_log);
    Py_CLEAR(s->server_line);
    Py_CLEAR(s->extra_headers);
    Py_CLEAR(s->proxy_fixup);
    Py_CLEAR(s->proxy_trust);
    Py_CLEAR(s->log_error);
    Py_CLEAR(s->tasks);
    Py_CLEAR(s->websocket);
    Py_CLEAR(s->tls_extensions);
    Py_CLEAR(s->pathsend);
    Py_CLEAR(s->extensions_template);
    Py_CLEAR(s->asgi_template);
    Py_CLEAR(s->scratch_view);
    for (const cp_core_option *o = cp_core_options; o->name != NULL; o++) {
        if (o->kind == CP_KW_STR) {
            Py_CLEAR(*core_object(s, o)); /* root_path */
        }
    }
    for (size_t i = 0; s->scope_cache != NULL && i < s->scope_cache_size; i++) {
        Py_CLEAR(s->scope_cache[i].key);
        Py_CLEAR(s->scope_cache[i].scope);
    }
    Py_CLEAR(s->module);
    return 0;
}

static void server_dealloc(ServerState *s)
{
    PyTypeObject *tp = Py_TYPE(s);
    PyObject_GC_UnTrack(s);
    server_clear(s);
    PyMem_Free(s->scratch);
    PyMem_Free(s->discard);
    PyMem_Free(s->header_spans);
    PyMem_Free(s->scope_cache);
    tp->tp_free((PyObject *)s);
    Py_DECREF(tp);
}

static PyMethodDef server_methods[] = {
    {"tick", (PyCFunction)server_tick, METH_NOARGS,
     "Enforce the timeouts, and give an app that waits the part of a zero-copy body "
     "that came; call about every 100 ms."},
    {"shutdown", (PyCFunction)server_shutdown, METH_NOARGS,
     "Stop keeping connections alive: close idle ones now, busy ones after their "
     "response."},
    {"close_all", (PyCFunction)server_close_all, METH_NOARGS,
     "Close every connection now (abort those already closing)."},
    {"busy_connections", (PyCFunction)server_busy_connections, METH_NOARGS,
     "Connections a graceful shutdown waits for: open ones, and closed ones whose "
     "transport still has bytes to send."},
    {"stats", (PyCFunction)server_stats, METH_NOARGS, "Counters, as a dict."},
    {"metrics", (PyCFunction)server_metrics, METH_NOARGS,
     "What --metrics-bind adds to stats() (counted only with metrics=True): responses by "
     "status class, the request-duration histogram, bytes in and out; and the idle "
     "connections."},
    {"_advance_clock", (PyCFunction)server_advance_clock, METH_O,
     "For tests: move this server's deadline clock on by so many seconds (the "
     "next tick() sees deadlines that would have come by then)."},
    {"_freeze_clock", (PyCFunction)server_freeze_clock, METH_NOARGS,
     "For tests: stop this server's deadline clock (at its reading rounded up to "
     "a whole second); from then on only _advance_clock() moves it."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef server_getset[] = {
    {"connections", (getter)server_get_connections, NULL, "Open connections.", NULL},
    {"active_requests", (getter)server_get_active, NULL, "App tasks still running.", NULL},
    {"tasks", (getter)server_get_tasks, NULL, "The running app tasks (a snapshot).", NULL},
    {"shutting_down", (getter)server_get_shutting_down, NULL, "shutdown() was called.",
     NULL},
    {"websocket", (getter)server_get_websocket, NULL,
     "The websocket handler connections are upgraded to, or None.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot server_slots[] = {
    {Py_tp_new, server_new},
    {Py_tp_call, server_call},
    {Py_tp_dealloc, server_dealloc},
    {Py_tp_traverse, server_traverse},
    {Py_tp_clear, server_clear},
    {Py_tp_methods, server_methods},
    {Py_tp_getset, server_getset},
    {Py_tp_doc, "ServerState(app, loop, report_exception, task_factory, task_kwargs, log_error, *, "
                "..., **core_options)\n\nShared state of one running server; call it to get "
                "a protocol.  The core options are the option table's (carpinus.options, "
                "core=), every one required.  Not thread-safe: use it on its loop's thread "
                "only."},
    {0, NULL},
};

PyType_Spec cp_server_state_spec = {
    .name = "carpinus._core.ServerState",
    .basicsize = sizeof(ServerState),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_IMMUTABLETYPE,
    .slots = server_slots,
};
