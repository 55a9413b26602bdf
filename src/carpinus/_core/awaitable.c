/*
 * awaitable.c -- Outcome: what receive() and send() return.
 *
 * Usually the outcome of a call is known at once (the body is already
 * buffered, the transport took the bytes).  Returning an asyncio Future for
 * those would cost a loop iteration; returning a coroutine would cost a
 * frame.  An Outcome costs one small allocation: `await` calls am_await
 * (self), then am_send, which returns the result at once (PYGEN_RETURN), so
 * the awaiting coroutine never suspends.
 *
 * When the call must wait (no body yet, writing paused), the Outcome holds
 * the Future it waits for and delegates every step to the Future's own
 * iterator, exactly as `await future` would: the Task sees the Future and
 * waits for it.  The Future only says "go on"; the answer is made when the
 * wait resumes (`again`, for receive()): a receive() cancelled after its
 * Future was resolved but before it resumed -- asyncio.wait_for() and
 * cancel scopes do that -- leaves its message queued for the next call,
 * where a message put into the Future would be lost with it.
 *
 * One type for both, shaped like a coroutine (send/throw/close/__await__):
 * asyncio.iscoroutine() accepts it, so `asyncio.create_task(receive())`
 * works the same whether or not the call has to wait -- returning a bare
 * Future only when waiting made that fail only under load.
 *
 * A third kind yields once before it completes (a bare `yield`, as
 * asyncio.sleep(0) does): send() returns it now and then to a streaming app
 * whose sends never have to wait, so that the loop gets a turn -- to serve
 * other connections, and to deliver a connection_lost that a TLS transport
 * reports only from the loop.
 *
 * An Outcome gives its result once; awaiting it again gives None, like
 * awaiting an exhausted iterator.  A ready one holds a result the server
 * built (a message dict of bytes and strings, or None) and is not tracked
 * by the GC: it can be part of no reference cycle.  A waiting one holds a
 * Future, whose callbacks lead to the Task that awaits the Outcome: that can
 * be a cycle, so those are tracked.
 *
 * send()'s usual answer, "done, None", is one object shared by every
 * request of every server (module state): a Done, a type of its own with no
 * fields at all, so that sharing it is safe on any thread and under any
 * Python -- an Outcome has fields that awaiting writes.
 */
#include "core.h"

typedef struct {
    PyObject_HEAD
    PyObject *result; /* owned; NULL once consumed or when the result is None */
    PyObject *future; /* owned: the Future to wait for, or NULL */
    PyObject *iter;   /* owned: future.__await__() once the wait started */
    PyObject *owner;  /* owned: what `again` asks for the answer, or NULL */
    cp_outcome_again again;
    int yields;       /* bare yields left before the result (cp_outcome_yield) */
} Outcome;

PyObject *cp_outcome_ready(cp_state *st, PyObject *result)
{
    Outcome *o = PyObject_GC_New(Outcome, st->Outcome_Type);
    if (o == NULL) {
        Py_XDECREF(result);
        return NULL;
    }
    o->result = result; /* stolen */
    o->future = NULL;
    o->iter = NULL;
    o->owner = NULL;
    o->again = NULL;
    o->yields = 0;
    return (PyObject *)o;
}

PyObject *cp_outcome_yield(cp_state *st)
{
    Outcome *o = (Outcome *)cp_outcome_ready(st, NULL);
    if (o != NULL) {
        o->yields = 1;
    }
    return (PyObject *)o;
}

PyObject *cp_outcome_waiting(cp_state *st, PyObject *future, PyObject *owner,
                             cp_outcome_again again)
{
    Outcome *o = PyObject_GC_New(Outcome, st->Outcome_Type);
    if (o == NULL) {
        Py_DECREF(future);
        return NULL;
    }
    o->result = NULL;
    o->future = future; /* stolen */
    o->iter = NULL;
    o->owner = Py_XNewRef(owner);
    o->again = again;
    o->yields = 0;
    PyObject_GC_Track(o);
    return (PyObject *)o;
}

static int outcome_traverse(Outcome *o, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(o));
    Py_VISIT(o->result);
    Py_VISIT(o->future);
    Py_VISIT(o->iter);
    Py_VISIT(o->owner);
    return 0;
}

static int outcome_clear(Outcome *o)
{
    Py_CLEAR(o->result);
    Py_CLEAR(o->future);
    Py_CLEAR(o->iter);
    Py_CLEAR(o->owner);
    return 0;
}

static void outcome_dealloc(Outcome *o)
{
    PyTypeObject *tp = Py_TYPE(o);
    PyObject_GC_UnTrack(o);
    outcome_clear(o);
    PyObject_GC_Del(o);
    Py_DECREF(tp);
}

static PyObject *outcome_await(PyObject *self)
{
    return Py_NewRef(self);
}

/* The Future's iterator, started on the first step. */
static PyObject *future_iter(Outcome *o)
{
    if (o->iter == NULL) {
        PyTypeObject *tp = Py_TYPE(o->future);
        if (tp->tp_as_async == NULL || tp->tp_as_async->am_await == NULL) {
            PyErr_SetString(PyExc_TypeError, "the loop's future is not awaitable");
            return NULL;
        }
        o->iter = tp->tp_as_async->am_await(o->future);
    }
    return o->iter;
}

/* The wait is over (the Future gave its result or raised): let go of it. */
static void wait_done(Outcome *o)
{
    Py_CLEAR(o->iter);
    Py_CLEAR(o->future);
}

static PySendResult outcome_am_send(PyObject *self, PyObject *arg, PyObject **presult)
{
    Outcome *o = (Outcome *)self;
    if (o->yields > 0) {
        /* a bare yield: the Task gives the loop one turn, then steps us again */
        o->yields--;
        *presult = Py_NewRef(Py_None);
        return PYGEN_NEXT;
    }
    if (o->future == NULL) {
        PyObject *res = o->result;
        if (res != NULL) {
            o->result = NULL;
            *presult = res;
        } else {
            *presult = Py_NewRef(Py_None);
        }
        return PYGEN_RETURN;
    }
    for (;;) {
        PyObject *it = future_iter(o);
        if (it == NULL) {
            *presult = NULL;
            return PYGEN_ERROR;
        }
        PySendResult r = PyIter_Send(it, arg, presult);
        if (r == PYGEN_NEXT) {
            return r;
        }
        wait_done(o);
        if (r == PYGEN_ERROR || o->again == NULL || o->owner == NULL) {
            return r;
        }
        /* the wait is over: the answer now (or another wait) */
        Py_CLEAR(*presult);
        PyObject *wait_on = NULL;
        PyObject *answer = o->again(o->owner, &wait_on);
        if (answer != NULL || wait_on == NULL) {
            Py_CLEAR(o->owner);
            *presult = answer;
            return answer != NULL ? PYGEN_RETURN : PYGEN_ERROR;
        }
        o->future = wait_on;
        arg = Py_None;
    }
}

/* Send result, as a method: a return is signalled by StopIteration(value). */
static PyObject *send_result_as_method(PySendResult r, PyObject *res)
{
    if (r == PYGEN_NEXT || r == PYGEN_ERROR) {
        return res;
    }
    if (res == Py_None) {
        /* NULL without an exception is the iterator protocol's cheap "stop"
           (3.12+'s SEND opcode calls tp_iternext and reads it as None) */
        Py_DECREF(res);
        return NULL;
    }
    /* StopIteration(res); a tuple or exception would be unpacked or
       re-raised by PyErr_SetObject, so wrap it first */
    PyObject *exc = PyObject_CallOneArg(PyExc_StopIteration, res);
    Py_DECREF(res);
    if (exc != NULL) {
        PyErr_SetObject(PyExc_StopIteration, exc);
        Py_DECREF(exc);
    }
    return NULL;
}

static PyObject *outcome_iternext(PyObject *self)
{
    PyObject *res;
    PySendResult r = outcome_am_send(self, Py_None, &res);
    return send_result_as_method(r, res);
}

static PyObject *outcome_send(PyObject *self, PyObject *arg)
{
    PyObject *res;
    PySendResult r = outcome_am_send(self, arg, &res);
    res = send_result_as_method(r, res);
    if (res == NULL && !PyErr_Occurred()) {
        PyErr_SetNone(PyExc_StopIteration); /* .send() must raise to stop */
    }
    return res;
}

void cp_raise_thrown(PyObject *const *args, Py_ssize_t nargs)
{
    PyObject *typ = nargs >= 1 ? args[0] : NULL;
    if (typ != NULL && PyExceptionInstance_Check(typ)) {
        PyErr_SetObject((PyObject *)Py_TYPE(typ), typ);
    } else if (typ != NULL && PyExceptionClass_Check(typ)) {
        PyObject *val = nargs > 1 ? args[1] : NULL;
        if (val != NULL && val != Py_None) {
            PyErr_SetObject(typ, val);
        } else {
            PyErr_SetNone(typ);
        }
    } else {
        PyErr_SetString(PyExc_TypeError, "throw() expects an exception");
    }
}

static PyObject *outcome_throw(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    Outcome *o = (Outcome *)self;
    if (o->iter == NULL) {
        /* not waiting (yet): the exception is raised here, as into a
           coroutine that has not started */
        wait_done(o);
        cp_raise_thrown(args, nargs);
        return NULL;
    }
    /* waiting: the Future's iterator decides (it raises what it is given) */
    cp_state *st = PyType_GetModuleState(Py_TYPE(self));
    PyObject *meth = PyObject_GetAttr(o->iter, st->s_throw);
    PyObject *res = meth ? PyObject_Vectorcall(meth, args, (size_t)nargs, NULL) : NULL;
    Py_XDECREF(meth);
    if (res == NULL) {
        wait_done(o);
    }
    return res;
}

/* The awaiting coroutine is closed: nobody will wait any more.  The Future
   is cancelled so that the cycle stops counting on it (its next receive()
   must not find "another receive() waiting"). */
static PyObject *outcome_close(PyObject *self, PyObject *unused)
{
    (void)unused;
    Outcome *o = (Outcome *)self;
    if (o->future == NULL && o->result == NULL) {
        Py_RETURN_NONE; /* nothing to let go of */
    }
    Py_CLEAR(o->result);
    if (o->future != NULL) {
        cp_state *st = PyType_GetModuleState(Py_TYPE(self));
        PyObject *r = PyObject_CallMethodNoArgs(o->future, st->s_cancel);
        if (r == NULL) {
            return NULL;
        }
        Py_DECREF(r);
    }
    wait_done(o);
    Py_RETURN_NONE;
}

static PyMethodDef outcome_methods[] = {
    {"send", (PyCFunction)outcome_send, METH_O, NULL},
    {"throw", (PyCFunction)(void (*)(void))outcome_throw, METH_FASTCALL, NULL},
    {"close", outcome_close, METH_NOARGS, NULL},
    {NULL, NULL, 0, NULL},
};

static PyType_Slot outcome_slots[] = {
    {Py_tp_dealloc, outcome_dealloc},
    {Py_tp_traverse, outcome_traverse},
    {Py_tp_clear, outcome_clear},
    {Py_am_await, outcome_await},
    {Py_am_send, outcome_am_send},
    {Py_tp_iter, outcome_await},
    {Py_tp_iternext, outcome_iternext},
    {Py_tp_methods, outcome_methods},
    {Py_tp_doc, "What receive() and send() return: await it for the outcome."},
    {0, NULL},
};

PyType_Spec cp_outcome_spec = {
    .name = "carpinus._core.Outcome",
    .basicsize = sizeof(Outcome),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_IMMUTABLETYPE |
             Py_TPFLAGS_DISALLOW_INSTANTIATION,
    .slots = outcome_slots,
};

/* ---- Done: the shared, immutable "done, None" ------------------------- */

/* No fields: awaiting it, sending to it or closing it changes nothing, so
   one instance serves every thread (module state's done_awaitable). */

PyObject *cp_done_new(cp_state *st)
{
    return PyType_GenericAlloc(st->Done_Type, 0);
}

static void done_dealloc(PyObject *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    tp->tp_free(self);
    Py_DECREF(tp);
}

static PySendResult done_am_send(PyObject *self, PyObject *arg, PyObject **presult)
{
    (void)self;
    (void)arg;
    *presult = Py_NewRef(Py_None);
    return PYGEN_RETURN;
}

static PyObject *done_iternext(PyObject *self)
{
    (void)self;
    return NULL; /* StopIteration(None), the cheap way (send_result_as_method) */
}

static PyObject *done_send(PyObject *self, PyObject *arg)
{
    (void)self;
    (void)arg;
    PyErr_SetNone(PyExc_StopIteration);
    return NULL;
}

static PyObject *done_throw(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    (void)self;
    cp_raise_thrown(args, nargs); /* as into a coroutine that has finished */
    return NULL;
}

static PyObject *done_close(PyObject *self, PyObject *unused)
{
    (void)self;
    (void)unused;
    Py_RETURN_NONE;
}

static PyMethodDef done_methods[] = {
    {"send", (PyCFunction)done_send, METH_O, NULL},
    {"throw", (PyCFunction)(void (*)(void))done_throw, METH_FASTCALL, NULL},
    {"close", done_close, METH_NOARGS, NULL},
    {NULL, NULL, 0, NULL},
};

static PyType_Slot done_slots[] = {
    {Py_tp_dealloc, done_dealloc},
    {Py_am_await, outcome_await},
    {Py_am_send, done_am_send},
    {Py_tp_iter, outcome_await},
    {Py_tp_iternext, done_iternext},
    {Py_tp_methods, done_methods},
    {Py_tp_doc, "What send() returns when it is done at once: await it for None."},
    {0, NULL},
};

PyType_Spec cp_done_spec = {
    .name = "carpinus._core.Done",
    .basicsize = sizeof(PyObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_IMMUTABLETYPE | Py_TPFLAGS_DISALLOW_INSTANTIATION,
    .slots = done_slots,
};
