/*
 * metrics.c -- the per-response counters behind --metrics-bind: responses by
 * status class, a histogram of request durations, bytes read and written
 * (and parse errors by status, which are counted always).
 *
 * They are counted only on a ServerState made with metrics=True (one test of
 * s->metrics where they would be counted, nothing else when it is off), into
 * s->stats like every other counter.  Python reads them with
 * ServerState.metrics() and publishes them for the scrape
 * (carpinus/metrics/; docs/metrics.md).
 */
#include "core.h"

/* Upper bounds of the duration buckets, in seconds: Prometheus' usual
   latency buckets, from a millisecond to ten seconds.  The last bucket
   (+Inf) is the one after them. */
static const double duration_bounds[CP_DURATION_BOUNDS] = {
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
};

void cp_metrics_response(ServerState *s, int status, double started)
{
    cp_stats *t = &s->stats;
    if (status >= 100 && status <= 599) {
        t->responses_by_class[status / 100 - 1]++;
    }
    if (started > 0) {
        double took = cp_monotonic() - started;
        int i = 0;
        while (i < CP_DURATION_BOUNDS && took > duration_bounds[i]) {
            i++;
        }
        t->duration_counts[i]++;
        t->duration_sum += took;
    }
}

/* The statuses a parse error is answered with, as parse_errors_by_status
   counts them (also the order of ServerState.metrics()'s tuple). */
static const int parse_error_statuses[5] = {400, 414, 431, 501, 505};

void cp_metrics_parse_error(ServerState *s, int status)
{
    int i = 0; /* anything else is counted with 400 */
    for (int j = 1; j < 5; j++) {
        if (status == parse_error_statuses[j]) {
            i = j;
        }
    }
    s->stats.parse_errors_by_status[i]++;
}

void cp_metrics_bytes_out(ServerState *s, PyObject *data)
{
    if (PyBytes_Check(data)) {
        s->stats.bytes_out += (uint64_t)PyBytes_GET_SIZE(data);
    } else if (PyByteArray_Check(data)) {
        s->stats.bytes_out += (uint64_t)PyByteArray_GET_SIZE(data);
    } else if (PyMemoryView_Check(data)) {
        s->stats.bytes_out += (uint64_t)PyMemoryView_GET_BUFFER(data)->len;
    }
}

/* Connections waiting for a request with nothing of one received: idle
   keep-alive connections, and new ones that have sent nothing yet. */
static Py_ssize_t idle_connections(ServerState *s)
{
    Py_ssize_t n = 0;
    for (HttpProtocol *c = s->conns; c != NULL; c = c->next) {
        n += c->state == CP_ST_HEAD && c->cycle == NULL && c->rpos == c->rlen;
    }
    return n;
}

static PyObject *u64_tuple(const uint64_t *values, size_t n)
{
    PyObject *t = PyTuple_New((Py_ssize_t)n);
    for (size_t i = 0; t != NULL && i < n; i++) {
        PyObject *v = PyLong_FromUnsignedLongLong(values[i]);
        if (v == NULL) {
            Py_CLEAR(t);
            break;
        }
        PyTuple_SET_ITEM(t, (Py_ssize_t)i, v);
    }
    return t;
}

PyObject *cp_metrics_snapshot(ServerState *s)
{
    const cp_stats *t = &s->stats;
    PyObject *bounds = PyTuple_New(CP_DURATION_BOUNDS);
    for (Py_ssize_t i = 0; bounds != NULL && i < CP_DURATION_BOUNDS; i++) {
        PyObject *v = PyFloat_FromDouble(duration_bounds[i]);
        if (v == NULL) {
            Py_CLEAR(bounds);
            break;
        }
        PyTuple_SET_ITEM(bounds, i, v);
    }
    PyObject *classes = u64_tuple(t->responses_by_class, 5);
    PyObject *counts = u64_tuple(t->duration_counts, CP_DURATION_BOUNDS + 1);
    PyObject *parse_errors = u64_tuple(t->parse_errors_by_status, 5);
    PyObject *d = NULL;
    if (bounds != NULL && classes != NULL && counts != NULL && parse_errors != NULL) {
        d = Py_BuildValue("{sOsOsOsOsdsKsKsn}", "responses_by_class", classes,
                          "parse_errors_by_status", parse_errors,
                          "duration_bounds", bounds, "duration_counts", counts,
                          "duration_sum", t->duration_sum,
                          "bytes_in", (unsigned long long)t->bytes_in,
                          "bytes_out", (unsigned long long)t->bytes_out,
                          "connections_idle", idle_connections(s));
    }
    Py_XDECREF(bounds);
    Py_XDECREF(classes);
    Py_XDECREF(counts);
    Py_XDECREF(parse_errors);
    return d;
}
