/*
 * runner.c -- AppRunner: the coroutine each request's Task runs.
 *
 * The Task must run "the app, then our bookkeeping": when the app returns,
 * a missing response becomes a 500; when it raises, the error is logged and
 * the connection answered or closed.  A Python `async def` wrapper would do
 * that at the price of a frame and a coroutine object per request.  AppRunner
 * does it in C instead: it is a coroutine-shaped object (send/throw/close,
 * am_send, __await__) that delegates every step to the app's own coroutine,
 * exactly as `await` would, and acts when that coroutine finishes.
 *
 * It never steps anything outside a Task: asyncio.Task drives the runner
 * (through am_send / throw), the runner drives the app's coroutine.
 *
 * To asyncio's tooling it looks like the app's coroutine: __name__,
 * __qualname__, cr_code, cr_frame and cr_running are the app coroutine's, and
 * cr_await is the app coroutine itself, so Task reprs name the app
 * ("app() running at app.py:12") and Task.get_stack() shows its frame.
 */
#include "core.h"

typedef struct {
    PyObject_HEAD
    PyObject *inner;     /* the app's coroutine or awaitable iterator */
    RequestCycle *cycle; /* strong, until finished */
    PyObject *scope;     /* for log messages on failure */
} AppRunner;

/* The app finished: exc is NULL for a normal return, else the exception
   (a new reference, consumed).  Returns 0 when the runner should return
   normally, -1 when the exception must propagate (it is restored). */
static int runner_finish(AppRunner *r, PyObject *exc)
{
    RequestCycle *cy = r->cycle;
    r->cycle = NULL;
    Py_CLEAR(r->inner);
    if (cy == NULL) {
        Py_XDECREF(exc);
        return 0;
    }
    ServerState *s = cy->server;
    int propagate = exc != NULL && (PyErr_GivenExceptionMatches(exc, PyExc_KeyboardInterrupt) ||
                                    PyErr_GivenExceptionMatches(exc, PyExc_SystemExit));
    if (exc != NULL && s != NULL) {
        /* log it (Python decides the level and format) */
        PyObject *args[3] = {exc, r->scope ? r->scope : Py_None,
                             (cy->disconnected || (cy->conn && cy->conn->lost)) ? Py_True
                                                                              : Py_False};
        PyObject *res = PyObject_Vectorcall(s->report_exception, args, 3, NULL);
        if (res == NULL) {
            PyErr_WriteUnraisable(s->report_exception);
        }
        Py_XDECREF(res);
    }
    cp_cycle_app_done(cy, exc != NULL);
    Py_DECREF(cy);
    Py_CLEAR(r->scope);
    if (propagate) {
        PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
        Py_DECREF(exc);
        return -1;
    }
    Py_XDECREF(exc);
    return 0;
}

static PySendResult runner_am_send(PyObject *self, PyObject *arg, PyObject **presult)
{
    AppRunner *r = (AppRunner *)self;
    if (r->inner == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "cannot reuse already awaited AppRunner");
        *presult = NULL;
        return PYGEN_ERROR;
    }
    PySendResult st = PyIter_Send(r->inner, arg, presult);
    if (st == PYGEN_NEXT) {
        return st;
    }
    if (st == PYGEN_RETURN) {
        Py_CLEAR(*presult);
        runner_finish(r, NULL);
        *presult = Py_NewRef(Py_None);
        return PYGEN_RETURN;
    }
    if (runner_finish(r, cp_err_take()) < 0) {
        *presult = NULL;
        return PYGEN_ERROR;
    }
    *presult = Py_NewRef(Py_None);
    return PYGEN_RETURN;
}

/* send()/throw() as methods: a return is signalled by StopIteration(None). */
static PyObject *result_as_method(PySendResult st, PyObject *result)
{
    if (st == PYGEN_NEXT) {
        return result;
    }
    if (st == PYGEN_RETURN) {
        Py_DECREF(result);
        PyErr_SetNone(PyExc_StopIteration);
    }
    return NULL;
}

static PyObject *runner_send(PyObject *self, PyObject *arg)
{
    PyObject *result;
    PySendResult st = runner_am_send(self, arg, &result);
    return result_as_method(st, result);
}

static PyObject *runner_throw(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    AppRunner *r = (AppRunner *)self;
    if (r->inner == NULL) {
        cp_raise_thrown(args, nargs); /* already finished: an exhausted coroutine */
        return NULL;
    }
    cp_state *st = PyType_GetModuleState(Py_TYPE(self));
    PyObject *meth = PyObject_GetAttr(r->inner, st->s_throw);
    PyObject *res = NULL;
    if (meth != NULL) {
        res = PyObject_Vectorcall(meth, args, (size_t)nargs, NULL);
        Py_DECREF(meth);
        if (res != NULL) {
            return res; /* the app yielded again */
        }
    } else if (PyErr_ExceptionMatches(PyExc_AttributeError)) {
        /* An awaitable iterator without throw(): as with `await` (PEP 380),
           the exception is raised where the app's awaitable is awaited, as
           if it had raised it -- the app is over. */
        PyErr_Clear();
        cp_raise_thrown(args, nargs);
    }
    PyObject *exc = cp_err_take();
    if (exc != NULL && PyErr_GivenExceptionMatches(exc, PyExc_StopIteration)) {
        Py_DECREF(exc);
        runner_finish(r, NULL);
        PyErr_SetNone(PyExc_StopIteration);
        return NULL;
    }
    if (runner_finish(r, exc) < 0) {
        return NULL;
    }
    PyErr_SetNone(PyExc_StopIteration);
    return NULL;
}

static PyObject *runner_close(PyObject *self, PyObject *unused)
{
    (void)unused;
    AppRunner *r = (AppRunner *)self;
    if (r->inner != NULL) {
        /* an awaitable iterator without close() has nothing to close */
        cp_state *st = PyType_GetModuleState(Py_TYPE(self));
        PyObject *meth = PyObject_GetAttr(r->inner, st->s_close);
        if (meth == NULL) {
            if (!PyErr_ExceptionMatches(PyExc_AttributeError)) {
                return NULL;
            }
            PyErr_Clear();
        } else {
            PyObject *res = PyObject_CallNoArgs(meth);
            Py_DECREF(meth);
            if (res == NULL) {
                return NULL;
            }
            Py_DECREF(res);
        }
    }
    if (r->cycle != NULL) {
        runner_finish(r, NULL);
    }
    Py_RETURN_NONE;
}

static PyObject *runner_await(PyObject *self)
{
    return Py_NewRef(self);
}

static PyObject *runner_iternext(PyObject *self)
{
    return runner_send(self, Py_None);
}

/* An iterator to drive for `await obj`: coroutines as they are, other
   awaitables through their __await__. */
static PyObject *awaitable_iter(PyObject *obj)
{
    if (PyCoro_CheckExact(obj)) {
        return Py_NewRef(obj);
    }
    unaryfunc await_slot = NULL;
    if (Py_TYPE(obj)->tp_as_async != NULL) {
        await_slot = Py_TYPE(obj)->tp_as_async->am_await;
    }
    if (await_slot == NULL) {
        PyErr_Format(PyExc_TypeError,
                     "The ASGI app returned %R, which is not awaitable; "
                     "is it an ASGI 3 application (async def app(scope, receive, send))?",
                     (PyObject *)Py_TYPE(obj));
        return NULL;
    }
    PyObject *it = await_slot(obj);
    if (it != NULL && !PyIter_Check(it)) {
        PyErr_Format(PyExc_TypeError, "__await__() returned non-iterator of type '%.100s'",
                     Py_TYPE(it)->tp_name);
        Py_CLEAR(it);
    }
    return it;
}

PyObject *cp_runner_new(RequestCycle *cy, PyObject *scope, PyObject *app_result)
{
    cp_state *st = cy->server->mod;
    PyObject *inner = awaitable_iter(app_result);
    if (inner == NULL) {
        return NULL;
    }
    AppRunner *r = PyObject_GC_New(AppRunner, st->AppRunner_Type);
    if (r == NULL) {
        Py_DECREF(inner);
        return NULL;
    }
    r->inner = inner;
    r->cycle = (RequestCycle *)Py_NewRef((PyObject *)cy);
    r->scope = Py_NewRef(scope);
    PyObject_GC_Track(r);
    return (PyObject *)r;
}

static int runner_traverse(AppRunner *r, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(r));
    Py_VISIT(r->inner);
    Py_VISIT(r->cycle);
    Py_VISIT(r->scope);
    return 0;
}

static int runner_clear(AppRunner *r)
{
    Py_CLEAR(r->inner);
    Py_CLEAR(r->cycle);
    Py_CLEAR(r->scope);
    return 0;
}

static void runner_dealloc(AppRunner *r)
{
    PyTypeObject *tp = Py_TYPE(r);
    PyObject_GC_UnTrack(r);
    runner_clear(r);
    PyObject_GC_Del(r);
    Py_DECREF(tp);
}

/* ---- what asyncio's tooling reads ------------------------------------ */

/* inner.<name>, or `missing` (a new reference) when the app's awaitable has
   no such attribute or the app is over. */
static PyObject *inner_attr(AppRunner *r, const char *name, PyObject *missing)
{
    if (r->inner != NULL) {
        PyObject *v = PyObject_GetAttrString(r->inner, name);
        if (v != NULL || !PyErr_ExceptionMatches(PyExc_AttributeError)) {
            Py_DECREF(missing);
            return v;
        }
        PyErr_Clear();
    }
    return missing;
}

static PyObject *runner_get_name(PyObject *self, void *closure)
{
    return inner_attr((AppRunner *)self, (const char *)closure,
                      PyUnicode_FromString("AppRunner"));
}

static PyObject *runner_get_inner_attr(PyObject *self, void *closure)
{
    return inner_attr((AppRunner *)self, (const char *)closure, Py_NewRef(Py_None));
}

static PyObject *runner_get_running(PyObject *self, void *closure)
{
    (void)closure;
    return inner_attr((AppRunner *)self, "cr_running", Py_NewRef(Py_False));
}

static PyObject *runner_get_await(PyObject *self, void *closure)
{
    (void)closure;
    AppRunner *r = (AppRunner *)self;
    return Py_NewRef(r->inner != NULL ? r->inner : Py_None);
}

static PyObject *runner_repr(PyObject *self)
{
    AppRunner *r = (AppRunner *)self;
    if (r->inner == NULL) {
        return PyUnicode_FromString("<AppRunner (finished)>");
    }
    return PyUnicode_FromFormat("<AppRunner of %R>", r->inner);
}

static PyGetSetDef runner_getset[] = {
    {"__name__", runner_get_name, NULL, "The app coroutine's name.", "__name__"},
    {"__qualname__", runner_get_name, NULL, "The app coroutine's qualified name.",
     "__qualname__"},
    {"cr_code", runner_get_inner_attr, NULL, "The app coroutine's code.", "cr_code"},
    {"cr_frame", runner_get_inner_attr, NULL, "The app coroutine's frame.", "cr_frame"},
    {"cr_running", runner_get_running, NULL, "Whether the app coroutine runs.", NULL},
    {"cr_await", runner_get_await, NULL, "What the runner awaits: the app's coroutine.",
     NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyMethodDef runner_methods[] = {
    {"send", (PyCFunction)runner_send, METH_O, NULL},
    {"throw", (PyCFunction)(void (*)(void))runner_throw, METH_FASTCALL, NULL},
    {"close", runner_close, METH_NOARGS, NULL},
    {NULL, NULL, 0, NULL},
};

static PyType_Slot runner_slots[] = {
    {Py_tp_dealloc, runner_dealloc},
    {Py_tp_traverse, runner_traverse},
    {Py_tp_clear, runner_clear},
    {Py_am_await, runner_await},
    {Py_am_send, runner_am_send},
    {Py_tp_iter, runner_await},
    {Py_tp_iternext, runner_iternext},
    {Py_tp_methods, runner_methods},
    {Py_tp_getset, runner_getset},
    {Py_tp_repr, runner_repr},
    {Py_tp_doc, "Runs one request's ASGI app inside its Task."},
    {0, NULL},
};

PyType_Spec cp_runner_spec = {
    .name = "carpinus._core.AppRunner",
    .basicsize = sizeof(AppRunner),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_IMMUTABLETYPE |
             Py_TPFLAGS_DISALLOW_INSTANTIATION,
    .slots = runner_slots,
};
