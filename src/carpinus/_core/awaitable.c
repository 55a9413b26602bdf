/*
 * awaitable.c -- Ready: an awaitable whose result is already known.
 *
 * receive() and send() usually complete without waiting (the body is already
 * buffered, the transport accepted the bytes).  Returning an asyncio Future
 * for those would cost a loop iteration; returning a coroutine would cost a
 * frame.  A Ready costs one small allocation: `await` calls am_await (self),
 * then am_send, which returns the result at once (PYGEN_RETURN), so the
 * awaiting coroutine never suspends.  tp_iternext exists for callers that
 * drive awaitables with next()/send() instead of PyIter_Send.
 *
 * A Ready gives its result once; awaiting it again gives None, like awaiting
 * an exhausted iterator.
 */
#include "core.h"

typedef struct {
    PyObject_HEAD
    PyObject *result; /* owned; NULL once consumed or when the result is None */
} Ready;

PyObject *cp_ready_new(cp_state *st, PyObject *result)
{
    Ready *r = PyObject_New(Ready, st->Ready_Type);
    if (r == NULL) {
        Py_XDECREF(result);
        return NULL;
    }
    r->result = result; /* stolen */
    return (PyObject *)r;
}

static void ready_dealloc(Ready *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    Py_XDECREF(self->result);
    tp->tp_free((PyObject *)self);
    Py_DECREF(tp);
}

static PyObject *ready_await(PyObject *self)
{
    return Py_NewRef(self);
}

static PySendResult ready_am_send(PyObject *self, PyObject *arg, PyObject **presult)
{
    (void)arg;
    Ready *r = (Ready *)self;
    PyObject *res = r->result;
    r->result = NULL;
    *presult = res != NULL ? res : Py_NewRef(Py_None);
    return PYGEN_RETURN;
}

static PyObject *ready_iternext(PyObject *self)
{
    Ready *r = (Ready *)self;
    PyObject *res = r->result;
    r->result = NULL;
    if (res == NULL || res == Py_None) {
        /* Exhausted with result None: returning NULL without an exception is
           the iterator protocol's cheap "stop" (Python 3.12+'s SEND opcode
           calls tp_iternext and reads this as None). */
        Py_XDECREF(res);
        return NULL;
    }
    if (PyTuple_Check(res) || PyExceptionInstance_Check(res)) {
        /* these would be unpacked / re-raised by PyErr_SetObject */
        PyObject *exc = PyObject_CallOneArg(PyExc_StopIteration, res);
        Py_DECREF(res);
        if (exc != NULL) {
            PyErr_SetObject(PyExc_StopIteration, exc);
            Py_DECREF(exc);
        }
        return NULL;
    }
    PyErr_SetObject(PyExc_StopIteration, res); /* StopIteration(res) */
    Py_DECREF(res);
    return NULL;
}

static PyObject *ready_send(PyObject *self, PyObject *arg)
{
    (void)arg;
    PyObject *res = ready_iternext(self);
    if (res == NULL && !PyErr_Occurred()) {
        PyErr_SetNone(PyExc_StopIteration); /* .send() must raise to stop */
    }
    return res;
}

static PyObject *ready_throw(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    (void)self;
    if (nargs < 1) {
        PyErr_SetString(PyExc_TypeError, "throw expected at least 1 argument");
        return NULL;
    }
    PyObject *typ = args[0];
    if (PyExceptionInstance_Check(typ)) {
        PyErr_SetObject((PyObject *)Py_TYPE(typ), typ);
    } else if (PyExceptionClass_Check(typ)) {
        PyObject *val = nargs > 1 ? args[1] : NULL;
        if (val != NULL && val != Py_None) {
            PyErr_SetObject(typ, val);
        } else {
            PyErr_SetNone(typ);
        }
    } else {
        PyErr_SetString(PyExc_TypeError, "exceptions must derive from BaseException");
    }
    return NULL;
}

static PyObject *ready_close(PyObject *self, PyObject *unused)
{
    (void)unused;
    Ready *r = (Ready *)self;
    Py_CLEAR(r->result);
    Py_RETURN_NONE;
}

static PyMethodDef ready_methods[] = {
    {"send", (PyCFunction)ready_send, METH_O, NULL},
    {"throw", (PyCFunction)(void (*)(void))ready_throw, METH_FASTCALL, NULL},
    {"close", ready_close, METH_NOARGS, NULL},
    {NULL, NULL, 0, NULL},
};

static PyType_Slot ready_slots[] = {
    {Py_tp_dealloc, ready_dealloc},
    {Py_am_await, ready_await},
    {Py_am_send, ready_am_send},
    {Py_tp_iter, ready_await},
    {Py_tp_iternext, ready_iternext},
    {Py_tp_methods, ready_methods},
    {Py_tp_doc, "An awaitable that completes without suspending."},
    {0, NULL},
};

PyType_Spec cp_ready_spec = {
    .name = "carpinus._core.Ready",
    .basicsize = sizeof(Ready),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_IMMUTABLETYPE |
             Py_TPFLAGS_DISALLOW_INSTANTIATION,
    .slots = ready_slots,
};
