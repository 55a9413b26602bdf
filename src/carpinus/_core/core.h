/*
 * core.h -- the objects of the C core and how they refer to each other.
 *
 *   module state (cp_state)   interned keys, constants, types; one per module
 *        ^                    object, i.e. one per (sub-)interpreter
 *        |
 *   ServerState               one per running server (one event loop): the
 *        ^                    app, the limits, the connection list, the shared
 *        |                    read buffer, the Date cache, counters
 *   HttpProtocol              one per connection: transport, receive buffer,
 *        ^  |                 parse state, body decoder, timers
 *        |  v
 *   RequestCycle              one per request: the app's receive()/send(),
 *                             queued body, response state
 *
 * Ownership: a HttpProtocol owns a strong reference to its ServerState and to
 * its current RequestCycle; a RequestCycle owns a strong reference to its
 * HttpProtocol until its response is complete (then it detaches) and to its
 * ServerState until it is deallocated.  The ServerState's connection list
 * holds strong references, dropped in connection_lost.  All reference cycles
 * are visible to the GC through tp_traverse.
 *
 * Threads (the core declares Py_MOD_GIL_NOT_USED: on a free-threaded
 * Python nothing serializes these objects but this rule):
 *   - A ServerState, its HttpProtocols and their RequestCycles belong to the
 *     one event loop that serves them and are used only on that loop's
 *     thread.  Their methods and attributes (tick, stats, metrics,
 *     shutdown, close_all, busy_connections, connections, tasks, ...) and
 *     the receive()/send() a request's app is given are not thread-safe:
 *     call them from the loop's thread (from another thread, hand the call
 *     to the loop: call_soon_threadsafe, run_coroutine_threadsafe on a
 *     coroutine that calls send()).  Their caches -- the scope templates,
 *     the Date line, the spare cycle, the read buffer -- are therefore
 *     plain fields, with no locking.  Several servers on several threads,
 *     each with its own loop and ServerState, are fine.
 *   - Module state is shared by every server of the interpreter: it is
 *     immutable after the module's exec (types, interned strings, the
 *     status-line and header-name tables, the Done), except the counters
 *     kept there, which change only through cp_counter_add (compat.h).
 *   - What the app is given may travel to other threads: a scope and its
 *     values are ordinary dicts, lists, bytes and str, except
 *     scope["headers"] under lazy_headers, a LazyHeaders, which locks itself
 *     (headers_lazy.c).  Messages the app sends are its own dicts and
 *     lists: the core reads them with strong references (PyDict_GetItemRef)
 *     and under their critical section (response.c).
 *   - Free-threaded builds skip cycle_reuse, which trusts reference counts
 *     (cycle.c, spare_reusable).
 *
 * Re-entrancy: transport calls may call back into the protocol before they
 * return (stdlib TLS's close() calls get_buffer() and buffer_updated(); a
 * write() may call pause_writing() or resume_writing()), and app code may run
 * inside send() (a message's __bool__, a headers generator, a Mapping).  Any
 * state such a call can change is checked again after it.
 */
#ifndef CARPINUS_CORE_H
#define CARPINUS_CORE_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <time.h>

#include "chars.h"
#include "compat.h"
#include "parser.h"
#include "writer.h"

/* ---- module state -------------------------------------------------- */

/* Common request header names, lowercased, shared as bytes objects. */
#define CP_COMMON_HEADER_COUNT 40
#define CP_COMMON_HEADER_MAXLEN 31

typedef struct {
    PyTypeObject *ServerState_Type;
    PyTypeObject *HttpProtocol_Type;
    PyTypeObject *RequestCycle_Type;
    PyTypeObject *Outcome_Type;
    PyTypeObject *AppRunner_Type;
    PyTypeObject *LazyHeaders_Type;
    PyTypeObject *WsCodec_Type;
    PyObject *ClientDisconnected; /* OSError subclass raised by send() */

    /* interned scope keys */
    PyObject *k_type, *k_asgi, *k_http_version, *k_method, *k_scheme, *k_path,
        *k_raw_path, *k_query_string, *k_root_path, *k_headers, *k_client,
        *k_server, *k_state, *k_extensions;
    /* interned message keys */
    PyObject *k_status, *k_body, *k_more_body, *k_version, *k_spec_version, *k_trailers,
        *k_more_trailers;
    PyObject *k_ext_trailers; /* scope["extensions"] key of the trailers extension */
    PyObject *k_path_key, *k_links; /* pathsend's "path", early_hint's "links" */
    /* constant values */
    PyObject *v_http, *v_https, *v_1_0, *v_1_1, *v_2, *v_3_0, *v_2_4;
    PyObject *v_http_request, *v_http_disconnect, *v_http_response_start,
        *v_http_response_body, *v_http_response_trailers, *v_http_response_pathsend,
        *v_http_response_early_hint;
    PyObject *methods[CP_METHOD_COUNT]; /* str; [0] unused */
    PyObject *empty_bytes;
    PyObject *asgi_template; /* {"version": "3.0", "spec_version": "2.4"} */
    PyObject *common_headers[CP_COMMON_HEADER_COUNT]; /* bytes */
    /* indexes into common_headers by name length, -1 terminated */
    signed char headers_by_len[CP_COMMON_HEADER_MAXLEN + 1][8];
    /* attribute / method names used on asyncio objects */
    PyObject *s_write, *s_writelines, *s_close, *s_abort, *s_is_closing,
        *s_get_write_buffer_size, *s_pause_reading,
        *s_resume_reading, *s_get_extra_info, *s_peername, *s_sockname,
        *s_sslcontext, *s_set_result, *s_done, *s_cancel, *s_throw, *s_process_pending,
        *s_flush_h2, *s_ssl_object, *s_selected_alpn,
        *s_context, *s_name, *s_dunder_call;
    PyTypeObject *Done_Type;
    PyObject *done_awaitable; /* a Done: what a send() that need not wait
                                 returns; it has no state, so it is shared */
    /* status lines "HTTP/1.1 NNN Reason\r\n" for 100..599 (status_cache) */
    char status_lines[500][48];
    unsigned char status_line_len[500];
    /* counters kept where the work happens (not per server): bumped from
       whatever thread builds a header name -- the loop's, or one the app
       reads lazy headers from -- so only through cp_counter_add/get */
    uint64_t header_name_hits;
    uint64_t header_name_misses;
    uint64_t lazy_headers_materialized;
    uint64_t request_tasks_named; /* the last n of "carpinus-request-n" */
} cp_state;

/* ---- awaitable.c --------------------------------------------------- */

/* What receive() and send() return: one coroutine-shaped type whether or not
   the call has to wait, so that `await`, asyncio.create_task() and
   asyncio.ensure_future() accept it alike.
   cp_outcome_ready: the outcome is known now; `await` gives result without
   suspending.  Steals a reference to result; NULL means None.
   cp_outcome_waiting: `await` waits for the Future; then, with `again`,
   gives again(owner, &wait_on) -- the answer, or NULL with a new Future in
   wait_on to wait on next (or NULL with an exception) -- else the Future's
   result.  The answer is made when the wait resumes, not when the Future is
   resolved: a wait cancelled in between loses nothing.  Steals a reference
   to future; owner is borrowed and kept alive by the Outcome. */
typedef PyObject *(*cp_outcome_again)(PyObject *owner, PyObject **wait_on);
PyObject *cp_outcome_ready(cp_state *st, PyObject *result);
/* An outcome of None that first gives the loop one turn (a bare yield). */
PyObject *cp_outcome_yield(cp_state *st);
PyObject *cp_outcome_waiting(cp_state *st, PyObject *future, PyObject *owner,
                             cp_outcome_again again);
extern PyType_Spec cp_outcome_spec;
/* A Done: awaiting it gives None at once, as a ready Outcome of None does,
   but it has no state at all, so one instance is shared by every thread. */
PyObject *cp_done_new(cp_state *st);
extern PyType_Spec cp_done_spec;
/* Raise what a coroutine's throw() was given: an exception instance, or a
   class and an optional value (the form asyncio and PEP 342 use). */
void cp_raise_thrown(PyObject *const *args, Py_ssize_t nargs);

/* ---- exceptions (3.10 - 3.13) ---------------------------------------- */

/* The raised exception as one object (normalized, traceback attached), or
   NULL when none is set; clears it. */
static inline PyObject *cp_err_take(void)
{
#if PY_VERSION_HEX >= 0x030C0000
    return PyErr_GetRaisedException();
#else
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    PyErr_NormalizeException(&type, &value, &tb);
    if (value != NULL && tb != NULL) {
        PyException_SetTraceback(value, tb);
    }
    Py_XDECREF(type);
    Py_XDECREF(tb);
    return value;
#endif
}

/* Raise exc again (steals the reference; NULL: nothing). */
static inline void cp_err_restore(PyObject *exc)
{
#if PY_VERSION_HEX >= 0x030C0000
    PyErr_SetRaisedException(exc);
#else
    if (exc != NULL) {
        PyErr_Restore(Py_NewRef((PyObject *)Py_TYPE(exc)), exc, PyException_GetTraceback(exc));
    }
#endif
}

/* SystemExit and KeyboardInterrupt are not the server's to swallow: raised
   while serving a read (an app started eagerly), they are raised again from
   a callback of the loop's own, which stops the loop as they would from any
   of its callbacks (protocol.c, raise_from_loop). */
static inline int cp_err_must_propagate(void)
{
    return PyErr_ExceptionMatches(PyExc_SystemExit) ||
           PyErr_ExceptionMatches(PyExc_KeyboardInterrupt);
}

/* ---- small shared helpers ------------------------------------------- */

/* Monotonic seconds. */
static inline double cp_monotonic(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* The module state of one of this module's own types (they are final, so
   the type's module is ours: no PyType_GetModuleByDef walk needed). */
static inline cp_state *cp_get_state_from_type(PyTypeObject *tp)
{
    return (cp_state *)PyType_GetModuleState(tp);
}

/* ---- ServerState (server.c) ---------------------------------------- */

struct HttpProtocol;
struct RequestCycle;

/* The six marshalling optimizations of the reference design, each switchable
   (docs/optimizations.md).  ServerState.opts holds the bits that are on. */
#define CP_OPT_ZERO_COPY_BODY 0x01  /* body read by the kernel into its bytes */
#define CP_OPT_DIRECT_RESPONSE 0x02 /* interned-key reads, one coalesced write */
#define CP_OPT_SCOPE_CACHE 0x04     /* per-path scope templates */
#define CP_OPT_HEADER_NAMES 0x08    /* shared bytes for common header names */
#define CP_OPT_LAZY_HEADERS 0x10    /* headers built on first access */
#define CP_OPT_STATUS_CACHE 0x20    /* cached status lines and Date */
#define CP_OPT_CYCLE_REUSE 0x40     /* a keep-alive connection's next request
                                       reuses the last one's RequestCycle,
                                       receive and send when nothing else
                                       holds them */
#define CP_OPT_TASK_NAMES 0x80     /* 3.11: the core names request tasks
                                       (cheaper than asyncio's "Task-N") */
#define CP_OPT_ALL 0xff

/* Bodies at or above the threshold are read straight into their bytes
   object only up to this size; larger ones stream in chunks as usual. */
#define CP_ZERO_COPY_MAX (4 * 1024 * 1024)
/* A body object is allocated at its full declared length when its head
   arrives, before the bytes do.  So that clients declaring large bodies and
   sending nothing cannot make the server reserve memory without bound, the
   bodies still being received zero-copy share this budget per server; past
   it, bodies stream in chunks as they arrive (the path without the
   optimization). */
#define CP_ZERO_COPY_BUDGET (64 * 1024 * 1024)

/* The request-duration histogram's bucket bounds (metrics.c). */
#define CP_DURATION_BOUNDS 13

typedef struct {
    uint64_t connections_total;
    uint64_t requests_total;
    /* requests the server answered itself, by cause */
    uint64_t parse_errors;        /* malformed or over a head or chunk limit:
                                     400, 414, 431, 501, 505 */
    uint64_t parse_errors_by_status[5]; /* ... by that status, in that order
                                           (metrics.c, cp_metrics_parse_error) */
    uint64_t bodies_too_large;    /* 413 (limit_request_body) */
    uint64_t timeouts;            /* 408, or closed: the client was too slow */
    uint64_t overloaded;          /* 503 (limit_concurrency) */
    uint64_t internal_errors;     /* 500 for a failure of the server's own */
    uint64_t app_errors;          /* the app raised or left its response
                                     incomplete */
    uint64_t body_bytes;          /* request body bytes received */
    uint64_t body_bytes_drained;  /* ... of which read and dropped (an early
                                     response left them unread) */
    /* what the optimizations did (tests prove each switch with these) */
    uint64_t body_bytes_zero_copy; /* received straight into the app's bytes */
    uint64_t body_bytes_copied;    /* copied from the read buffer into bytes
                                      for the app */
    uint64_t scope_cache_hits;
    uint64_t scope_cache_misses;
    uint64_t cycles_reused;        /* requests started on a reused cycle */
    uint64_t lazy_headers_created;
    uint64_t headers_built;        /* scope header lists built eagerly */
    uint64_t responses_coalesced;  /* head and body in one write */
    uint64_t responses_split;      /* head written on its own */
    uint64_t status_lines_cached;  /* status lines copied from the cache */
    uint64_t status_lines_formatted;
    uint64_t websocket_upgrades;   /* connections handed to the websocket handler */
    uint64_t h2_connections;       /* connections that speak HTTP/2 */
    /* --metrics-bind (metrics.c): counted only when ServerState.metrics */
    uint64_t responses_by_class[5]; /* responses sent, 1xx .. 5xx (the server's
                                       own answers to refused requests too) */
    uint64_t duration_counts[CP_DURATION_BOUNDS + 1]; /* app responses by time
                                       from head to last byte, per bucket */
    double duration_sum;           /* seconds, of those */
    uint64_t bytes_in;             /* read from transports (after TLS) */
    uint64_t bytes_out;            /* handed to transports (HTTP, not WebSocket) */
} cp_stats;

/* ServerState.http_versions: what the server speaks (--http). */
#define CP_HTTP_1 0x01 /* HTTP/1.1 (and 1.0) */
#define CP_HTTP_2 0x02 /* HTTP/2: ALPN "h2" on TLS, the preface on cleartext */

/* One slot of the scope template cache: requests whose raw path is `key`
   start from a copy of `scope` (path and raw_path already set).  A path
   gets the slot only when it is seen twice in a row there (`seen`), so that
   paths that never repeat (/users/<id>) do not pay for a template copy. */
typedef struct {
    uint64_t hash;
    uint64_t seen;   /* hash of the last path that missed here */
    PyObject *key;   /* bytes: the raw path */
    PyObject *scope; /* dict template */
} cp_scope_slot;

typedef struct ServerState {
    PyObject_HEAD
    PyObject *module; /* strong: keeps `mod` alive */
    cp_state *mod;

    /* configuration (immutable after construction).  The fields named in
       the option table (src/carpinus/options.py, core=) are filled from the
       keyword arguments of the same option names by the table generated
       from it (server_options.h): adding such an option is a row there and
       a field here.  The others are run-time arguments, or derived. */
    PyObject *app;
    /* A class-instance app (every framework's) is called as
       app_call(app, scope, receive, send): the plain function its type's
       __call__ is, found on the first request (cycle.c, call_app) instead of
       through the type's tp_call, which looks __call__ up and packs the
       arguments into a tuple on every request.  Valid while the app's type
       is app_type (strong) and its version tag is still app_call_tag (any
       change to the class or its bases resets the tag).  app_type NULL:
       call the app itself (app_call_known: that was decided). */
    PyObject *app_call;
    PyTypeObject *app_type;
    unsigned int app_call_tag;
    int app_call_known;
    PyObject *loop;
    PyObject *create_future; /* loop.create_future */
    PyObject *call_soon;     /* loop.call_soon */
    PyObject *report_exception; /* callable(exc, scope, disconnected): logs */
    PyObject *task_factory;  /* callable(coro, **task_kwargs) -> Task */
    PyObject *task_kwnames;  /* kwnames for task_factory (ending in "context"
                                when context_kwarg), or NULL */
    PyObject *task_kwvalues; /* values for the other kwnames, or NULL */
    /* Every request task runs in its own copy of this context, never in the
       context of whatever code happened to start it (a read callback that a
       previous request's resume_reading() registered, another request's
       send()): no context variable leaks from one request to the next.
       context_kwarg: the factory takes context=; otherwise the copy is
       entered around the factory call (3.10, a loop's own task factory). */
    PyObject *base_context;
    int context_kwarg;
    /* the kwnames have "name" (before "context"): task_names is on and the
       factory takes name= (cycle.c, request_task_name) */
    int name_tasks;
    int server_header;       /* send "server: carpinus" (read at construction:
                                see server_line) */
    PyObject *root_path;     /* str */
    PyObject *raw_root_path; /* root_path as the bytes of a raw path
                                (percent-encoded UTF-8); b"" when none */
    PyObject *scope_template; /* see cp_scope_template */
    PyObject *asgi_template;  /* the module's asgi_template, copied: each scope's
                                 "asgi" is copied from this one, which no other
                                 thread copies at the same time (PyDict_Copy
                                 locks its source on a free-threaded build) */
    PyObject *lifespan_state;  /* dict copied into each scope */
    PyObject *access_log;      /* callable(scope, status, body_bytes, seconds) or
                                  NULL: access logging off costs nothing */
    PyObject *log_error;       /* callable(str): logs an error line */
    PyObject *report_refusal;  /* callable(status, reason, client, request):
                                  a response the server made itself (400,
                                  408, 413, 503, ...); logs it and writes its
                                  access line.  request: the scope when known,
                                  else (method, target, http_version) when the
                                  request line was read, else None.  Or NULL */
    PyObject *tasks;           /* set of running app tasks */
    PyObject *server_line;   /* bytes "server: ...\r\n" lines, or NULL: none */
    PyObject *extra_headers; /* bytes: the --header lines, or NULL */
    /* proxy headers (X-Forwarded-For/-Proto, Forwarded).  proxy_fixup NULL:
       off.  Otherwise each connection asks proxy_trust(peername) once
       (proxy_trust NULL: every peer is trusted), and a request on a trusted
       connection that carries one of the headers (CP_F_PROXY_HEADERS) is
       passed to proxy_fixup(scope), which may rewrite client and scheme. */
    PyObject *proxy_fixup;
    PyObject *proxy_trust;
    PyObject *tls_extensions; /* callable(transport) -> {"tls": {...}}: the
                                 scope extensions of a TLS connection, asked
                                 for once in its connection_made; or NULL */
    /* http.response.pathsend: callable(cycle, path) -> awaitable that sends
       the file as the response body (protocols/http/pathsend.py), or NULL:
       not offered */
    PyObject *pathsend;
    /* the extensions every scope advertises (pathsend, early hints): copied
       into each scope's "extensions"; their values are read-only dicts
       (protocols/http/core.py, NoSettings), so the copy is shallow without
       sharing anything an app can change.
       NULL: none */
    PyObject *extensions_template;
    PyObject *websocket; /* callable(transport, scope, rest) taking over a
                            connection that asks for Upgrade: websocket, or
                            NULL: such requests are served as plain HTTP */
    int date_header;
    int use_writelines; /* the transport's writelines() is one vectored write
                           with flow control (uvloop) */
    int metrics;        /* count what --metrics-bind exports (metrics.c) */
    cp_limits limits;
    int64_t max_body;             /* -1: unlimited */
    double timeout_keep_alive;    /* seconds */
    double timeout_request_header;
    double timeout_request_body;  /* longest silence while awaiting body bytes */
    int64_t limit_concurrency;    /* -1: none */
    size_t http_versions;         /* CP_HTTP_* */
    size_t h2_max_concurrent_streams;
    size_t h2_initial_window_size;    /* each stream's receive window */
    size_t h2_connection_window_size; /* the connection's receive window */
    size_t h2_max_header_list_size;   /* a request's decoded field list */

    /* runtime */
    struct HttpProtocol *conns; /* intrusive doubly-linked list (strong refs) */
    Py_ssize_t n_conns;
    Py_ssize_t n_tasks;
    size_t zc_pending; /* bytes allocated for zero-copy bodies not yet full */
    int shutting_down;
    double clock_offset; /* added to the monotonic clock for this server's
                            deadlines: tests move time on (_advance_clock);
                            once frozen, the clock's reading itself */
    int clock_frozen;    /* tests: only _advance_clock moves the clock */

    /* shared read buffer: all reads land here unless a connection has
       unconsumed bytes of its own (see protocol.c) */
    char *scratch;
    size_t scratch_cap;
    PyObject *scratch_view; /* memoryview over scratch, handed to transports */
    int scratch_busy;       /* a connection is processing bytes in scratch:
                               any other that reads meanwhile gets its own */
    /* where a closed connection's last reads go (TLS reads from close()) */
    char *discard;
    PyObject *discard_view;
    cp_header *header_spans; /* limits.max_headers entries */

    /* Date header cache */
    time_t date_second;
    char date_line[CP_DATE_LINE_MAX]; /* "date: Fri, 27 Nov 2026 07:54:03 GMT\r\n" */
    size_t date_len;

    /* optimizations (see CP_OPT_*) */
    unsigned opts;
    size_t zero_copy_threshold;
    size_t lazy_headers_min;
    size_t scope_cache_size;
    cp_scope_slot *scope_cache; /* scope_cache_size slots */

    cp_stats stats;
} ServerState;

extern PyType_Spec cp_server_state_spec;

/* The server's clock for deadlines: monotonic seconds (plus what a test
   moved it on by); a test may freeze it, so that a deadline is exactly
   where it moved the clock to (_freeze_clock). */
static inline double cp_server_now(const ServerState *s)
{
    return s->clock_frozen ? s->clock_offset : cp_monotonic() + s->clock_offset;
}

/* ---- HttpProtocol (protocol.c) ------------------------------------- */

enum cp_conn_state {
    CP_ST_HEAD = 0,      /* waiting for / parsing a request head */
    CP_ST_BODY,          /* reading the body of the current request */
    CP_ST_WAIT_RESPONSE, /* body done; holding further bytes until the
                            response is complete (pipelining) */
    CP_ST_DRAIN,         /* response sent; discarding the rest of the body */
    CP_ST_H2,            /* speaking HTTP/2: every byte goes to h2.c */
    CP_ST_CLOSED,        /* closing or closed: ignore everything */
    CP_ST_UPGRADED       /* handed to the websocket handler, which switched
                            the transport to its own protocol: terminal,
                            owns nothing, ignores everything */
};

enum cp_body_mode { CP_BODY_NONE = 0, CP_BODY_LENGTH, CP_BODY_CHUNKED };

/* Where the buffer the last get_buffer() handed out lies, so that
   buffer_updated() knows what the bytes are. */
enum cp_read_into {
    CP_READ_NONE = 0, /* no buffer handed out */
    CP_READ_SCRATCH,  /* the server's shared scratch buffer */
    CP_READ_OWN,      /* this connection's own buffer, after its unconsumed bytes */
    CP_READ_BODY,     /* the zero-copy body object */
    CP_READ_SIDE,     /* the side buffer (read while processing) */
    CP_READ_DISCARD   /* closing: the bytes are dropped */
};

/* What HttpProtocol.deadline guards. */
enum cp_deadline_kind {
    CP_DL_KEEP_ALIVE = 0, /* idle between requests: close quietly */
    CP_DL_HEADER,         /* a request head is due: 408 if part of it came */
    CP_DL_BODY            /* body bytes are due (reading not paused): 408 */
};

typedef struct HttpProtocol {
    PyObject_HEAD
    ServerState *server; /* strong */
    PyObject *transport;
    PyObject *write;       /* transport.write */
    PyObject *client;      /* (host, port) or None */
    PyObject *server_addr; /* (host, port), (path, None) or None */
    PyObject *scheme;      /* "http" or "https" (borrowed from mod) */
    int proxy_trusted;     /* the peer may set client/scheme by proxy headers */
    PyObject *extensions;  /* TLS: what tls_extensions gave, a dict of dicts
                              each scope gets a copy of; NULL: plain TCP, {} */
    struct HttpProtocol *prev, *next; /* ServerState.conns */
    int linked;

    enum cp_conn_state state;
    int lost;           /* connection_lost was called */
    int processing;     /* inside conn_process (re-entrancy guard) */
    int reading_paused; /* we called pause_reading */
    int writing_paused; /* the transport called pause_writing */
    int in_scratch;     /* the bytes being processed live in server->scratch */
    enum cp_read_into read_into; /* where the last get_buffer() pointed */

    /* receive buffer: unconsumed bytes are own.data[rpos..rlen).  While
       bytes are being processed they may instead live in the server's
       scratch buffer (in_scratch); leftovers are moved here before
       returning. */
    cp_buf own;
    size_t rpos, rlen;
    /* bytes read while processing (a transport that reads from inside one of
       its calls); appended to the own buffer once the processing ends */
    cp_buf side;
    size_t head_checked; /* start of the incomplete head line (see try_head) */
    size_t head_line_max; /* how long that line may grow before it is an error */
    size_t head_scanned; /* bytes of the pending head known to hold no further
                            '\n' (see try_head) */
    /* a head arriving in pieces: where its parse stopped, and (head_saved)
       the request line and field spans parsed so far */
    cp_head_progress head_progress;
    struct cp_head_saved *head_saved;
    int process_scheduled; /* _process_pending is queued with call_soon */

    /* body decoding of the current request (lives here because the body may
       outlive the cycle's interest in it: draining) */
    enum cp_body_mode body_mode;
    uint64_t body_remaining; /* CP_BODY_LENGTH */
    uint64_t body_seen;      /* bytes of body decoded so far */
    cp_chunked chunked;
    /* zero_copy_body: the bytes object the body is being read into, and how
       much of it is filled; zc_ticks counts server ticks that found it
       incomplete while the app waited (see cp_conn_tick) */
    PyObject *zc_body;
    size_t zc_fill;
    int zc_ticks;

    struct RequestCycle *cycle; /* strong; the request being served */
    /* cycle_reuse: the last HTTP/1.1 request's cycle and its receive and
       send callables (strong), for the next request if nobody else holds
       them then (cp_cycle_for_request) */
    struct RequestCycle *spare;
    PyObject *spare_receive;
    PyObject *spare_send;
    struct cp_h2 *h2;           /* the HTTP/2 session (CP_ST_H2), or NULL */
    int served;                 /* a request head was parsed: an HTTP/2
                                   preface can no longer start h2c */

    /* timeouts (monotonic seconds; 0 = none) */
    double deadline;
    enum cp_deadline_kind deadline_kind;
} HttpProtocol;

extern PyType_Spec cp_protocol_spec;
PyObject *cp_protocol_new(ServerState *s);
/* Add to / remove from the server's connection list (strong references). */
void cp_conn_link(ServerState *s, HttpProtocol *c);
void cp_conn_unlink(ServerState *s, HttpProtocol *c);
/* Called by the cycle when its response is complete. */
void cp_conn_response_complete(HttpProtocol *c, int keep_alive);
/* Write bytes (a new reference is NOT stolen).  Returns -1 on error. */
int cp_conn_write(HttpProtocol *c, PyObject *data);
int cp_conn_writelines(HttpProtocol *c, PyObject *list);
void cp_conn_close(HttpProtocol *c);
/* Called when the app drained the body queue below the high-water mark. */
void cp_conn_body_consumed(HttpProtocol *c);
/* Called by the ServerState's tick (about every 100 ms): deadlines, and a
   zero-copy body that is late (see body.c). */
void cp_conn_tick(HttpProtocol *c, double now);
void cp_conn_shutdown(HttpProtocol *c);
/* The one place the connection's state changes, with the deadline the new
   state sets (the transition table is in protocol.c). */
void cp_conn_enter(HttpProtocol *c, enum cp_conn_state next);
/* Answer a protocol error (unless response bytes are out) and close. */
void cp_conn_fail(HttpProtocol *c, int status, const char *reason);
/* An internal error (an exception is set): reported, 500 if nothing was
   written, closed.  -1; or -2 with the exception still set when it must
   propagate (cp_err_must_propagate). */
int cp_conn_internal_error(HttpProtocol *c);
/* A response the server made itself: counted by cause, and reported to
   Python (its log line and access line; request as in ServerState's
   report_refusal). */
void cp_count_refusal(ServerState *s, int status);
void cp_conn_report_refusal(HttpProtocol *c, int status, const char *reason, PyObject *request);
/* Recompute the reading policy and the body deadline after an event. */
void cp_conn_update_reading(HttpProtocol *c);

/* The bytes being processed: the shared scratch buffer or the connection's
   own, from rpos to rlen. */
static inline char *cp_conn_data(HttpProtocol *c)
{
    return c->in_scratch ? c->server->scratch : c->own.data;
}

/* ---- body.c -------------------------------------------------------- */

/* The body of the request whose head was just parsed: how it is delimited,
   and (zero_copy_body) the object it is read into.  -1: no memory. */
int cp_body_begin(HttpProtocol *c, const cp_request *req);
/* Feed the body bytes at rpos: 1 progress, 0 nothing to feed, -1 failed
   (the connection is closed), -2 with an exception that must propagate. */
int cp_body_feed(HttpProtocol *c);
/* A view for the kernel to read the rest of a zero-copy body into, or NULL
   (no exception) when the next read is not for it. */
PyObject *cp_body_view(HttpProtocol *c);
/* n bytes were read into that view: 0; -1 with an exception for the
   transport; -2 with one that must propagate. */
int cp_body_read(HttpProtocol *c, size_t n);
/* The response came before the body: whether to read and drop the rest
   (1) or close (0); the zero-copy object is let go either way. */
int cp_body_abandon(HttpProtocol *c, int expect_continue);
/* The tick: an app waiting on a late zero-copy body gets what came. */
void cp_body_tick(HttpProtocol *c);
/* Let the zero-copy body object go (giving its size back to the budget);
   cp_body_release only gives the size back. */
void cp_body_drop(HttpProtocol *c);
void cp_body_release(HttpProtocol *c);
/* Graceful shutdown: a connection that has not yet delivered a complete
   request head (accepted just before the listener closed, or part of a head
   received) gets at most this long, in seconds, to deliver it; it is then
   answered with Connection: close.  Idle keep-alive connections close at
   once.  Without this grace a worker being replaced (SIGHUP, max-requests)
   would drop connections it had accepted but not yet read. */
#define CP_SHUTDOWN_HEAD_GRACE 1.0

/* ---- RequestCycle (cycle.c) ---------------------------------------- */

#define CP_HEAD_INLINE 224

typedef struct RequestCycle {
    PyObject_HEAD
    ServerState *server;  /* strong */
    HttpProtocol *conn;   /* strong until the response is complete */
    int32_t stream_id;    /* the HTTP/2 stream, or 0: HTTP/1.x */
    PyObject *scope;      /* kept for the access log only, else NULL */
    PyObject *task;

    /* request */
    int http_minor;
    int is_head;
    int expect_continue; /* a "100 Continue" is owed on first receive() */
    int sending;         /* inside send(): app code it runs may not send */
    int body_complete;   /* every body byte has been decoded */
    int body_final_sent; /* the app got more_body=False */
    int disconnected;
    int client_eof; /* the client half-closed: receive() says disconnect, but
                       the response can still be written */
    /* the http.response.trailers extension: offered for this request (HTTP/2,
       or HTTP/1.1 with TE: trailers), asked for by http.response.start
       (trailers: True), and the final body sent, trailers due */
    int trailers_allowed;
    int trailers_expected;
    int awaiting_trailers;
    PyObject *body_first; /* queued body not yet given to the app */
    PyObject *body_more;  /* list of further chunks, or NULL */
    size_t body_queued;   /* bytes in the queue */
    PyObject *receive_waiter; /* Future the app awaits in receive(), or NULL */

    /* response */
    int response_started;
    int response_complete;
    int wire_started; /* response bytes have been written */
    size_t unyielded; /* body bytes sent since the app's task last let the
                         loop run (see cycle_send_message) */
    int app_running; /* the app's task has not finished */
    int status;
    cp_framing framing; /* the request's version and keep-alive, the app's
                           Content-Length and Connection: close; then how
                           the body is delimited (writer.h) */
    int64_t out_sent;    /* body bytes sent */
    double started;      /* monotonic start, taken only for the access log */
    PyObject *write_waiters; /* list of the Futures of the send() calls
                                waiting while writing is paused (one each:
                                cancelling one must not touch another), or
                                NULL */
    /* the serialized response head, until the first body message */
    cp_buf head;
    char head_inline[CP_HEAD_INLINE];
} RequestCycle;

extern PyType_Spec cp_cycle_spec;
RequestCycle *cp_cycle_new(ServerState *s, HttpProtocol *c);
/* The cycle for a new HTTP/1.1 request on c: the connection's spare one,
   reset, when the cycle_reuse switch is on and nothing but c holds it and
   its callables; else a new one (and the spare is let go). */
RequestCycle *cp_cycle_for_request(ServerState *s, HttpProtocol *c);
/* Let go of c's spare cycle (the connection is closing or gone). */
void cp_cycle_drop_spare(HttpProtocol *c);
/* Start the app for this cycle: builds receive/send, the runner, the task. */
int cp_cycle_start(RequestCycle *cy, PyObject *scope);
/* The app returned (failed=0) or raised (failed=1, already reported). */
void cp_cycle_app_done(RequestCycle *cy, int failed);

/* Body bytes arrived for this request; data is a new reference (stolen).
   last: these are the final bytes of the body. */
int cp_cycle_push_body(RequestCycle *cy, PyObject *data, int last);
/* The request body ended. */
int cp_cycle_body_done(RequestCycle *cy);
/* The client half-closed after sending the whole request. */
void cp_cycle_client_eof(RequestCycle *cy);
/* The client went away (or the request failed to parse mid-body). */
void cp_cycle_disconnect(RequestCycle *cy);
/* Writing was resumed or the connection was lost: wake send(). */
void cp_cycle_wake_writer(RequestCycle *cy);
/* Whether the cycle's own queue is above the high-water mark. */
int cp_cycle_body_backlogged(RequestCycle *cy);
/* Whether the app is waiting in receive(). */
int cp_cycle_receiving(RequestCycle *cy);
/* Write the access line of this response, if the access log is on. */
void cp_cycle_access_log(RequestCycle *cy, int status, int64_t body_bytes);

/* ---- runner.c ------------------------------------------------------ */

/* The coroutine the request's Task runs: app_result (the app's coroutine or
   awaitable) plus completion bookkeeping. */
PyObject *cp_runner_new(RequestCycle *cy, PyObject *scope, PyObject *app_result);
extern PyType_Spec cp_runner_spec;

/* ---- scope.c ------------------------------------------------------- */

PyObject *cp_build_scope(ServerState *s, HttpProtocol *c, const char *buf,
                         const cp_request *req, const cp_header *headers);
PyObject *cp_scope_template(cp_state *st, PyObject *root_path);
/* root_path (str) as the raw-path bytes that start every raw_path. */
PyObject *cp_raw_root_path(PyObject *root_path);

/* ---- headers_lazy.c ------------------------------------------------ */

/* A list-compatible sequence of (name, value) tuples over a private copy of
   a request's header lines; each tuple is built on first access, and the
   whole list is materialized on the first mutation.  Names are built with
   cp_header_name_ex(st, name_cache, ...).  buf/headers are only read during
   the call (the object keeps its own copy). */
PyObject *cp_lazy_headers_new(cp_state *st, int name_cache, const char *buf,
                              const cp_header *headers, size_t n);
extern PyType_Spec cp_lazy_headers_spec;

/* ---- headers.c ----------------------------------------------------- */

int cp_common_headers_init(cp_state *st);
/* New reference to the lowercased name as bytes (shared when common). */
PyObject *cp_header_name(cp_state *st, const char *name, size_t len);
/* The same with the shared-name cache on (use_cache) or off (always a new
   bytes object: the header_names optimization switched off). */
PyObject *cp_header_name_ex(cp_state *st, int use_cache, const char *name, size_t len);

/* ---- response.c ---------------------------------------------------- */

/* Serialize http.response.start into cy->head. Sets RuntimeError on a bad
   message. */
int cp_response_start(RequestCycle *cy, PyObject *message);
/* Read and check an http.response.trailers message: its fields are added
   to cy->head as "name: value" lines (checked as response headers are),
   *more says whether more_trailers follow.  -1 with an exception. */
int cp_response_trailers(RequestCycle *cy, PyObject *message, int *more);
/* An http.response.early_hint message as a 103 response head into *out
   ("HTTP/1.1 103 Early Hints", a Link field per link, the blank line);
   nothing when it has no links.  -1 with an exception. */
int cp_response_early_hint(RequestCycle *cy, PyObject *message, cp_buf *out);
/* The end of a chunked HTTP/1.1 response with the trailer lines in
   cy->head: "0\r\n", the lines, "\r\n".  New reference. */
PyObject *cp_response_trailer_bytes(RequestCycle *cy);

/* What one http.response.body puts on the wire, for cycle.c to write:
   prefix (the head and/or a chunk's size line), the body, a suffix. */
typedef struct cp_body_parts {
    const char *prefix;
    size_t plen;
    size_t head_end;  /* prefix[0..head_end) is the head (when first) */
    PyObject *body;   /* owned, or NULL: no body bytes */
    size_t body_len;  /* of the message's body */
    const char *suffix;
    size_t slen;
    int first;        /* the head goes out with this message */
    int more_body;
    char pre[CP_CHUNK_PREFIX_MAX]; /* storage for a chunk's size line */
    size_t head_len;  /* the head and framing before this message, */
    cp_framing framing; /* to put back if nothing could be written */
} cp_body_parts;
/* Read and check http.response.body and frame it into *parts (nothing is
   written).  -1 with an exception; parts then owns nothing. */
int cp_response_body_parts(RequestCycle *cy, PyObject *message, cp_body_parts *parts);
/* The parts were written (ok) or writing them failed (the head and framing
   go back to before the message).  Releases parts->body. */
void cp_response_body_written(RequestCycle *cy, cp_body_parts *parts, int ok);
/* The configured default headers as wire bytes: *server_line gets the Server
   lines (a "server" pair replaces "server: carpinus", which server_header
   adds otherwise) and *extra every other line; either may be NULL (nothing to
   send).  pairs: a sequence of (bytes, bytes) or None.  Names and values are
   checked as for app headers; framing headers and Date are refused
   (ValueError). */
int cp_default_headers(PyObject *pairs, int server_header, PyObject **server_line,
                       PyObject **extra);
/* A canned error response (400, 413, 500, 503, ...) with Connection: close. */
PyObject *cp_error_response(ServerState *s, int status);

/* ---- metrics.c ----------------------------------------------------- */

/* A response went out with this status; started: when its request's app
   was started (cp_monotonic), or 0 for the server's own answers, which
   have no duration.  Call only when s->metrics. */
void cp_metrics_response(ServerState *s, int status, double started);
/* A parse error answered with status (counted whether metrics are on or
   not: it is the error path). */
void cp_metrics_parse_error(ServerState *s, int status);
/* data (bytes, bytearray or memoryview) is being written. */
void cp_metrics_bytes_out(ServerState *s, PyObject *data);
/* ServerState.metrics(): the counters above, and the idle connections. */
PyObject *cp_metrics_snapshot(ServerState *s);

/* ---- WsCodec (wsconn.c) -------------------------------------------- */

/* One WebSocket connection's frame codec over wsframe.c, and the module
   functions beside it: ws_close_frame(code, reason=''),
   ws_negotiate_deflate(offers, ...), the WS_* constants. */
extern PyType_Spec cp_wscodec_spec;
PyObject *cp_ws_close_frame(PyObject *module, PyObject *const *args, Py_ssize_t nargs);
PyObject *cp_ws_negotiate(PyObject *module, PyObject *args, PyObject *kwargs);
int cp_ws_add_constants(PyObject *module);

/* ---- tuning -------------------------------------------------------- */

/* Read-flow high-water mark: per connection, for queued body and for
   unprocessed pipelined bytes. */
#define CP_HIGH_WATER (128 * 1024)
#define CP_SCRATCH_SIZE (256 * 1024)
/* What a closed connection's reads are dropped into. */
#define CP_DISCARD_SIZE (16 * 1024)
/* Requests one read may start before the rest waits for the next loop
   iteration: on 3.12+ an app that never suspends is served inside the read,
   and one read of tiny pipelined requests must not hold every other
   connection up for thousands of them. */
#define CP_REQUESTS_PER_READ 16
/* A streaming app whose send() never has to wait gives the loop a turn
   after this many body bytes (send() returns a bare yield). */
#define CP_YIELD_BYTES (256 * 1024)

#include "h2.h"

#endif /* CARPINUS_CORE_H */
