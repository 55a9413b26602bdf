/*
 * compat.h -- the C-API of Python 3.13 that the core uses, on 3.10 - 3.12.
 *
 * The core is written against 3.13's API, which is what the free-threaded
 * build (3.13t) needs: references that are strong from the moment a
 * container hands them over (PyDict_GetItemRef, PyList_GetItemRef), and
 * per-object critical sections around code that reads an object another
 * thread may change.
 * On older Pythons (always with the GIL) the shims below do what the GIL
 * already guaranteed: a borrowed reference made strong, and no locking at
 * all.  Drop a shim when the oldest supported Python has the real thing.
 *
 * On a build with the GIL -- every version, 3.13 included -- the critical
 * section macros expand to a bare block, so none of this costs anything
 * there.
 */
#ifndef CARPINUS_COMPAT_H
#define CARPINUS_COMPAT_H

#include <Python.h>
#include <stdint.h>

#if PY_VERSION_HEX < 0x030D0000

/* 1 and a new reference in *result when key is present, 0 and NULL when it
   is not, -1 and NULL with an exception. */
static inline int PyDict_GetItemRef(PyObject *mp, PyObject *key, PyObject **result)
{
    PyObject *item = PyDict_GetItemWithError(mp, key);
    if (item != NULL) {
        *result = Py_NewRef(item);
        return 1;
    }
    *result = NULL;
    return PyErr_Occurred() ? -1 : 0;
}

/* A new reference to list[index]; IndexError outside [0, len). */
static inline PyObject *PyList_GetItemRef(PyObject *op, Py_ssize_t index)
{
    return Py_XNewRef(PyList_GetItem(op, index));
}

#endif /* < 3.13 */

/* Critical sections (3.13): Py_BEGIN_CRITICAL_SECTION(op) locks op's own
   mutex until the matching END.  Not quite a lock held to the end of the
   block, though: while the thread blocks inside it -- waiting for another
   object's critical section, or in Python code that waits -- the section is
   let go and taken again afterwards (that is how they avoid deadlocks).
   Code inside one therefore reads afresh, after any such call, what it had
   read before it: a list's length and items, an object's state. */
#ifndef Py_BEGIN_CRITICAL_SECTION
/* (3.13 defines these, as a bare block too, on builds with the GIL) */
#define Py_BEGIN_CRITICAL_SECTION(op) {
#define Py_END_CRITICAL_SECTION() }
#define Py_BEGIN_CRITICAL_SECTION2(a, b) {
#define Py_END_CRITICAL_SECTION2() }
#endif

/* ---- counters that more than one thread may bump ---------------------- */

/* A statistics counter kept where any thread can reach it (module state, or
   an object the app may use from several threads).  Without the GIL the
   increments are atomic (relaxed would do; CPython's portable atomics are
   sequentially consistent, which costs the same on x86); with it they are
   plain, since the GIL serializes them already. */
static inline void cp_counter_add(uint64_t *counter, uint64_t n)
{
#ifdef Py_GIL_DISABLED
    (void)_Py_atomic_add_uint64(counter, n);
#else
    *counter += n;
#endif
}

/* Add one and return the new value (a number handed out once). */
static inline uint64_t cp_counter_next(uint64_t *counter)
{
#ifdef Py_GIL_DISABLED
    return _Py_atomic_add_uint64(counter, 1) + 1;
#else
    return ++*counter;
#endif
}

static inline uint64_t cp_counter_get(const uint64_t *counter)
{
#ifdef Py_GIL_DISABLED
    return _Py_atomic_load_uint64_relaxed(counter);
#else
    return *counter;
#endif
}

#endif /* CARPINUS_COMPAT_H */
