/*
 * headers_lazy.c -- LazyHeaders (work in progress: being written).
 */
#include "core.h"

PyObject *cp_lazy_headers_new(cp_state *st, int name_cache, const char *buf,
                              const cp_header *headers, size_t n)
{
    (void)st;
    (void)name_cache;
    (void)buf;
    (void)headers;
    (void)n;
    PyErr_SetString(PyExc_NotImplementedError, "LazyHeaders is not written yet");
    return NULL;
}

static PyType_Slot lazy_slots[] = {
    {0, NULL},
};

PyType_Spec cp_lazy_headers_spec = {
    .name = "carpinus._core.LazyHeaders",
    .basicsize = sizeof(PyObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_DISALLOW_INSTANTIATION,
    .slots = lazy_slots,
};
