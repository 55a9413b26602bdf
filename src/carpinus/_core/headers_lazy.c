/*
 * headers_lazy.c -- LazyHeaders: scope["headers"] whose tuples are built on
 * first touch.
 *
 * Theory of operation
 * -------------------
 * Building scope["headers"] eagerly costs one tuple and one or two bytes
 * objects per header field, and most apps look at two or three of them.  A
 * LazyHeaders stands in for that list of (name, value) tuples.  It has two
 * states and moves from the first to the second at most once:
 *
 *   lazy          the object holds a private copy of the header block (the
 *                 parser's buffer is reused for the next request) and, per
 *                 field, the spans of its name and value plus a slot for the
 *                 built tuple.  Reads build what they touch and keep it, so
 *                 the same index gives the same tuple object every time.
 *   materialized  the first mutating call builds every remaining tuple,
 *                 moves all of them (same objects) into a real list, `list`,
 *                 and from then on every operation is delegated to that list.
 *
 * Indexing, slicing, `in` and iteration build only the items they reach.
 * Reads that need every item (==, <, repr, copy(), count(), index(), +, *)
 * work on a snapshot: a new list holding the built tuples, which is then
 * handed to list's own implementation.  That keeps the exact semantics (and
 * error messages) of list without a second copy of its algorithms here, and
 * a snapshot costs one pointer per field.  A snapshot does not switch the
 * object to materialized: `_materialized` tells whether the app mutated the
 * headers, which is what the counters want to know.
 *
 * Known differences from list, all accepted:
 *   - isinstance(x, list) is False (a list subclass could not stay lazy:
 *     list's C functions, and C code that takes the PyList_Check fast paths,
 *     read ob_item directly).  Code that needs a list calls list(x); the
 *     type is meant to be registered as collections.abc.MutableSequence
 *     where the package imports _core.
 *   - copy.copy(), copy.deepcopy() and pickle give a plain list (__reduce__).
 *   - there is no __reversed__ attribute (reversed(x) works through
 *     __len__ and __getitem__, with list_reverseiterator's semantics).
 *   - count()/index()/== on a not yet materialized object compare against a
 *     snapshot, so an __eq__ that mutates the headers while they run sees the
 *     old items; a real list would see the new ones.
 *   - Error messages name "list" (as list's do) except for a wrong number
 *     of arguments to append()/extend(), which name LazyHeaders.
 *
 * Re-entrancy: building a tuple allocates, an allocation can start the
 * cyclic GC, and a finalizer run by it is arbitrary Python code that might
 * touch (even mutate) this very object.  So after every build the state is
 * checked again (see lh_item and lh_materialize); the entry array never
 * moves or shrinks, which keeps every such interleaving memory-safe.
 *
 * GC: a lazy object refers only to tuples of bytes (and its type), which
 * cannot close a cycle, so it is not tracked until it materializes; the list
 * may then hold anything the app appended, including the object itself.
 *
 * Threads: without the GIL (3.13t) every slot and method runs inside the
 * object's critical section (see "entry points" below), so two threads that
 * read the same headers never both build an entry, and a reader never sees
 * a half-done materialization.
 *
 * Memory layout: one variable-size allocation holds the object, the entry
 * array and the copied text (ob_size counts bytes; itemsize is 1), so a
 * LazyHeaders costs one allocation however many fields it has.
 */
#include "core.h"

#include <string.h>

typedef struct {
    PyObject *item; /* the built (name, value) tuple, or NULL: not built yet,
                       or moved into `list` on materialization */
    cp_header span; /* offsets into the object's text */
} lh_entry;

typedef struct {
    PyObject_VAR_HEAD
    PyObject *list;   /* the materialized list, or NULL while lazy */
    Py_ssize_t n;     /* number of entries */
    Py_ssize_t built; /* tuples built so far (for tests and counters) */
    int name_cache;   /* names via the shared common-name cache */
    lh_entry entries[]; /* n entries, then the text */
} LazyHeaders;

static void lh_dealloc(PyObject *op);

/* Our instances, from any module object (sub-interpreters, reimports): the
   type cannot be subclassed, and its tp_dealloc is ours alone. */
#define LH_Check(op) (Py_TYPE(op)->tp_dealloc == lh_dealloc)

static inline const char *lh_text(LazyHeaders *self)
{
    return (const char *)&self->entries[self->n];
}

static inline Py_ssize_t lh_len(LazyHeaders *self)
{
    return self->list != NULL ? PyList_GET_SIZE(self->list) : self->n;
}

static PyObject *index_error(void)
{
    PyErr_SetString(PyExc_IndexError, "list index out of range");
    return NULL;
}

/* ---- construction ------------------------------------------------------ */

PyObject *cp_lazy_headers_new(cp_state *st, int name_cache, const char *buf,
                              const cp_header *headers, size_t n)
{
    /* Copy the bytes from the lowest to the highest offset any non-empty
       span covers: one memcpy (the ": " and CRLF between fields come along,
       a few bytes per field), then rebase the spans onto the copy. */
    size_t lo = SIZE_MAX, hi = 0;
    for (size_t i = 0; i < n; i++) {
        const cp_span *spans[2] = {&headers[i].name, &headers[i].value};
        for (int k = 0; k < 2; k++) {
            if (spans[k]->len == 0) {
                continue;
            }
            size_t off = spans[k]->off, end = off + spans[k]->len;
            lo = off < lo ? off : lo;
            hi = end > hi ? end : hi;
        }
    }
    if (lo > hi) { /* no bytes at all */
        lo = hi = 0;
    }
    size_t text_len = hi - lo;
    if (n > ((size_t)PY_SSIZE_T_MAX - text_len) / sizeof(lh_entry)) {
        PyErr_NoMemory();
        return NULL;
    }
    Py_ssize_t nbytes = (Py_ssize_t)(n * sizeof(lh_entry) + text_len);
    LazyHeaders *self = PyObject_GC_NewVar(LazyHeaders, st->LazyHeaders_Type, nbytes);
    if (self == NULL) {
        return NULL;
    }
    self->list = NULL;
    self->n = (Py_ssize_t)n;
    self->built = 0;
    self->name_cache = name_cache;
    for (size_t i = 0; i < n; i++) {
        lh_entry *e = &self->entries[i];
        e->item = NULL;
        e->span = headers[i];
        /* an empty span's offset may lie outside [lo, hi) */
        e->span.name.off = e->span.name.len ? (uint32_t)(e->span.name.off - lo) : 0;
        e->span.value.off = e->span.value.len ? (uint32_t)(e->span.value.off - lo) : 0;
    }
    if (text_len > 0) {
        memcpy((char *)lh_text(self), buf + lo, text_len);
    }
    /* not tracked by the GC while lazy: see the comment at the top */
    return (PyObject *)self;
}

/* New reference to the tuple for entry i (lazy state, 0 <= i < n). */
static PyObject *lh_build(LazyHeaders *self, Py_ssize_t i)
{
    cp_state *st = cp_get_state_from_type(Py_TYPE(self));
    const lh_entry *e = &self->entries[i];
    const char *text = lh_text(self);
    PyObject *name = NULL, *value = NULL, *pair;

    name = cp_header_name_ex(st, self->name_cache, text + e->span.name.off,
                             e->span.name.len);
    if (name == NULL) {
        goto fail;
    }
    if (e->span.value.len == 0) {
        value = st->empty_bytes != NULL ? Py_NewRef(st->empty_bytes)
                                        : PyBytes_FromStringAndSize(NULL, 0);
    } else {
        value = PyBytes_FromStringAndSize(text + e->span.value.off,
                                          (Py_ssize_t)e->span.value.len);
    }
    if (value == NULL) {
        goto fail;
    }
    pair = PyTuple_New(2);
    if (pair == NULL) {
        goto fail;
    }
    PyTuple_SET_ITEM(pair, 0, name);  /* steals */
    PyTuple_SET_ITEM(pair, 1, value); /* steals */
    return pair;
fail:
    Py_XDECREF(name);
    Py_XDECREF(value);
    return NULL;
}

/* ---- reads --------------------------------------------------------------- */

/* sq_item: new reference to item i, in either state; IndexError outside
   [0, len). */
static PyObject *lh_item_impl(PyObject *op, Py_ssize_t i)
{
    LazyHeaders *self = (LazyHeaders *)op;
    if (self->list != NULL) {
        /* IndexError outside [0, len).  The list's own accessor: a list
           method running on it (a sort whose key function waits) may have
           let go of our critical section, but not of the list's */
        return PyList_GetItemRef(self->list, i);
    }
    if (i < 0 || i >= self->n) {
        return index_error();
    }
    PyObject *item = self->entries[i].item;
    if (item != NULL) {
        return Py_NewRef(item);
    }
    item = lh_build(self, i);
    if (item == NULL) {
        return NULL;
    }
    if (self->list != NULL || self->entries[i].item != NULL) {
        /* Code run by the GC during the build materialized us or built this
           entry: take the answer from the new state (no recursion beyond
           this one call: both cases return without building). */
        Py_DECREF(item);
        return lh_item_impl(op, i);
    }
    self->entries[i].item = Py_NewRef(item);
    self->built++;
    return item;
}

/* New reference to a list with the current items: the materialized list
   itself (callers must not let it escape) or a fresh snapshot. */
static PyObject *lh_as_list(LazyHeaders *self)
{
    if (self->list != NULL) {
        return Py_NewRef(self->list);
    }
    Py_ssize_t n = self->n;
    PyObject *list = PyList_New(n);
    if (list == NULL) {
        return NULL;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *item = lh_item_impl((PyObject *)self, i);
        if (item == NULL) {
            Py_DECREF(list); /* unfilled slots are NULL: list_dealloc copes */
            return NULL;
        }
        PyList_SET_ITEM(list, i, item); /* steals */
    }
    return list;
}

/* New reference to a list for a list or LazyHeaders operand. */
static PyObject *as_list(PyObject *op)
{
    return LH_Check(op) ? lh_as_list((LazyHeaders *)op) : Py_NewRef(op);
}

static Py_ssize_t lh_length_impl(PyObject *op)
{
    return lh_len((LazyHeaders *)op);
}

static PyObject *lh_subscript_impl(PyObject *op, PyObject *key)
{
    LazyHeaders *self = (LazyHeaders *)op;
    if (self->list != NULL) {
        return PyObject_GetItem(self->list, key);
    }
    if (PyIndex_Check(key)) {
        Py_ssize_t i = PyNumber_AsSsize_t(key, PyExc_IndexError);
        if (i == -1 && PyErr_Occurred()) {
            return NULL;
        }
        if (i < 0) {
            i += lh_len(self);
        }
        return lh_item_impl(op, i);
    }
    if (PySlice_Check(key)) {
        Py_ssize_t start, stop, step;
        /* may run __index__ of the slice's members: read the length after */
        if (PySlice_Unpack(key, &start, &stop, &step) < 0) {
            return NULL;
        }
        Py_ssize_t count = PySlice_AdjustIndices(lh_len(self), &start, &stop, step);
        PyObject *out = PyList_New(count);
        if (out == NULL) {
            return NULL;
        }
        for (Py_ssize_t k = 0, i = start; k < count; k++, i += step) {
            PyObject *item = lh_item_impl(op, i);
            if (item == NULL) {
                Py_DECREF(out);
                return NULL;
            }
            PyList_SET_ITEM(out, k, item); /* steals */
        }
        return out;
    }
    PyErr_Format(PyExc_TypeError, "list indices must be integers or slices, not %.200s",
                 Py_TYPE(key)->tp_name);
    return NULL;
}

static int lh_contains_impl(PyObject *op, PyObject *value)
{
    LazyHeaders *self = (LazyHeaders *)op;
    if (self->list != NULL) {
        return PySequence_Contains(self->list, value);
    }
    /* as list_contains: stop at the first match, re-read the length each
       time (a comparison may mutate us) */
    for (Py_ssize_t i = 0; i < lh_len(self); i++) {
        PyObject *item = lh_item_impl(op, i);
        if (item == NULL) {
            return -1;
        }
        int cmp = PyObject_RichCompareBool(item, value, Py_EQ);
        Py_DECREF(item);
        if (cmp != 0) {
            return cmp;
        }
    }
    return 0;
}

static PyObject *lh_iter_impl(PyObject *op)
{
    LazyHeaders *self = (LazyHeaders *)op;
    if (self->list != NULL) {
        return PyObject_GetIter(self->list);
    }
    /* The generic sequence iterator calls sq_item with 0, 1, 2, ... until
       IndexError: items are built as the iteration reaches them, and, like
       list's iterator, it sees appends made while it runs (and keeps
       working through a materialization, as sq_item does). */
    return PySeqIter_New(op);
}

static PyObject *lh_repr_impl(PyObject *op)
{
    PyObject *list = lh_as_list((LazyHeaders *)op);
    if (list == NULL) {
        return NULL;
    }
    /* list's repr guards against recursion (x.append(x) gives "[...]") */
    PyObject *r = PyObject_Repr(list);
    Py_DECREF(list);
    return r;
}

static PyObject *lh_richcompare_impl(PyObject *op, PyObject *other, int cmp)
{
    /* Like list: ordered comparison with lists (and us) only; anything else,
       tuples included, is NotImplemented, so == is False there. */
    if (!LH_Check(op) || !(LH_Check(other) || PyList_Check(other))) {
        Py_RETURN_NOTIMPLEMENTED;
    }
    if (cmp == Py_EQ || cmp == Py_NE) {
        Py_ssize_t other_len = LH_Check(other) ? lh_len((LazyHeaders *)other)
                                               : PyList_GET_SIZE(other);
        if (lh_len((LazyHeaders *)op) != other_len) {
            return Py_NewRef(cmp == Py_EQ ? Py_False : Py_True);
        }
    }
    PyObject *a = NULL, *b = NULL, *res = NULL;
    if ((a = as_list(op)) != NULL && (b = as_list(other)) != NULL) {
        res = PyObject_RichCompare(a, b, cmp);
    }
    Py_XDECREF(a);
    Py_XDECREF(b);
    return res;
}

/* nb_add: self + list, list + self, self + self -> a new list. */
static PyObject *lh_add_impl(PyObject *left, PyObject *right)
{
    if (!(LH_Check(left) || PyList_Check(left)) ||
        !(LH_Check(right) || PyList_Check(right))) {
        Py_RETURN_NOTIMPLEMENTED; /* then TypeError, as list + tuple */
    }
    PyObject *a = NULL, *b = NULL, *res = NULL;
    if ((a = as_list(left)) != NULL && (b = as_list(right)) != NULL) {
        res = PySequence_Concat(a, b);
    }
    Py_XDECREF(a);
    Py_XDECREF(b);
    return res;
}

static PyObject *lh_repeat_impl(PyObject *op, Py_ssize_t count)
{
    PyObject *list = lh_as_list((LazyHeaders *)op);
    if (list == NULL) {
        return NULL;
    }
    PyObject *res = PySequence_Repeat(list, count);
    Py_DECREF(list);
    return res;
}

/* ---- mutation -------------------------------------------------------------- */

/* Switch to the materialized state (see the top of the file). */
static int lh_materialize(LazyHeaders *self)
{
    if (self->list != NULL) {
        return 0;
    }
    for (Py_ssize_t i = 0; i < self->n; i++) {
        if (self->entries[i].item == NULL) {
            PyObject *item = lh_item_impl((PyObject *)self, i); /* builds, caches */
            if (item == NULL) {
                return -1;
            }
            Py_DECREF(item); /* the entry keeps it alive */
            if (self->list != NULL) {
                return 0; /* materialized by code the GC ran meanwhile */
            }
        }
    }
    PyObject *list = PyList_New(self->n);
    if (list == NULL) {
        return -1;
    }
    if (self->list != NULL) { /* ditto, during PyList_New */
        Py_DECREF(list);
        return 0;
    }
    /* From here on nothing can run Python code. */
    for (Py_ssize_t i = 0; i < self->n; i++) {
        PyList_SET_ITEM(list, i, self->entries[i].item); /* moves the reference */
        self->entries[i].item = NULL;
    }
    self->list = list;
    cp_counter_add(&((cp_state *)PyType_GetModuleState(Py_TYPE(self)))->lazy_headers_materialized,
                   1);
    if (!PyObject_GC_IsTracked((PyObject *)self)) {
        PyObject_GC_Track((PyObject *)self);
    }
    return 0;
}

static int lh_ass_subscript_impl(PyObject *op, PyObject *key, PyObject *value)
{
    LazyHeaders *self = (LazyHeaders *)op;
    if (lh_materialize(self) < 0) {
        return -1;
    }
    /* list's slice assignment copies a non-list right-hand side (even us)
       before it changes anything */
    return value != NULL ? PyObject_SetItem(self->list, key, value)
                         : PyObject_DelItem(self->list, key);
}

/* The argument for list.extend() / +=: a LazyHeaders becomes a list, so
   that x.extend(x) copies once, as for a list.  (Iterating over ourselves
   while the list grows would never end.) */
static PyObject *extend_arg(PyObject *arg)
{
    return LH_Check(arg) ? lh_as_list((LazyHeaders *)arg) : Py_NewRef(arg);
}

static PyObject *lh_inplace_add_impl(PyObject *op, PyObject *other)
{
    if (!LH_Check(op)) {
        Py_RETURN_NOTIMPLEMENTED;
    }
    LazyHeaders *self = (LazyHeaders *)op;
    if (lh_materialize(self) < 0) {
        return NULL;
    }
    PyObject *arg = extend_arg(other);
    if (arg == NULL) {
        return NULL;
    }
    /* list += x is list.extend(x): any iterable */
    PyObject *res = PySequence_InPlaceConcat(self->list, arg);
    Py_DECREF(arg);
    if (res == NULL) {
        return NULL;
    }
    Py_DECREF(res); /* our own list */
    return Py_NewRef(op);
}

static PyObject *lh_inplace_repeat_impl(PyObject *op, Py_ssize_t count)
{
    LazyHeaders *self = (LazyHeaders *)op;
    if (lh_materialize(self) < 0) {
        return NULL;
    }
    PyObject *res = PySequence_InPlaceRepeat(self->list, count);
    if (res == NULL) {
        return NULL;
    }
    Py_DECREF(res); /* our own list */
    return Py_NewRef(op);
}

static PyObject *lh_append_impl(PyObject *op, PyObject *value)
{
    LazyHeaders *self = (LazyHeaders *)op;
    if (lh_materialize(self) < 0 || PyList_Append(self->list, value) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *lh_extend_impl(PyObject *op, PyObject *iterable)
{
    LazyHeaders *self = (LazyHeaders *)op;
    if (lh_materialize(self) < 0) {
        return NULL;
    }
    PyObject *arg = extend_arg(iterable);
    if (arg == NULL) {
        return NULL;
    }
    PyObject *res = PySequence_InPlaceConcat(self->list, arg); /* list.extend */
    Py_DECREF(arg);
    if (res == NULL) {
        return NULL;
    }
    Py_DECREF(res);
    Py_RETURN_NONE;
}

/* Call list's own method `name` with our arguments: on the materialized list
   (mutating methods materialize first) or on a snapshot (reads).  Argument
   parsing and errors are then exactly list's. */
static PyObject *forward_impl(PyObject *op, const char *name, int mutates,
                         PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    LazyHeaders *self = (LazyHeaders *)op;
    PyObject *target, *meth, *res;
    if (mutates) {
        if (lh_materialize(self) < 0) {
            return NULL;
        }
        target = Py_NewRef(self->list);
    } else if ((target = lh_as_list(self)) == NULL) {
        return NULL;
    }
    meth = PyObject_GetAttrString(target, name);
    Py_DECREF(target); /* the bound method holds it */
    if (meth == NULL) {
        return NULL;
    }
    res = PyObject_Vectorcall(meth, args, (size_t)nargs, kwnames);
    Py_DECREF(meth);
    return res;
}

/* (locked: defined with the other entry points below) */
static PyObject *forward(PyObject *op, const char *name, int mutates, PyObject *const *args,
                         Py_ssize_t nargs, PyObject *kwnames);

#define FORWARD(pyname, mutates)                                                   \
    static PyObject *lh_fwd_##pyname(PyObject *op, PyObject *const *args,            \
                                     Py_ssize_t nargs, PyObject *kwnames)            \
    {                                                                               \
        return forward(op, #pyname, mutates, args, nargs, kwnames);                 \
    }

FORWARD(insert, 1)
FORWARD(pop, 1)
FORWARD(remove, 1)
FORWARD(clear, 1)
FORWARD(reverse, 1)
FORWARD(sort, 1)
FORWARD(index, 0)
FORWARD(count, 0)
#undef FORWARD

static PyObject *lh_copy_impl(PyObject *op, PyObject *unused)
{
    (void)unused;
    LazyHeaders *self = (LazyHeaders *)op;
    if (self->list != NULL) {
        return PyList_GetSlice(self->list, 0, PY_SSIZE_T_MAX);
    }
    return lh_as_list(self); /* a fresh list already */
}

/* copy.copy / copy.deepcopy / pickle: a plain list (the type cannot be
   instantiated from Python, and a list is what scope["headers"] stands for). */
static PyObject *lh_reduce_impl(PyObject *op, PyObject *unused)
{
    (void)unused;
    PyObject *list = lh_copy_impl(op, NULL);
    if (list == NULL) {
        return NULL;
    }
    return Py_BuildValue("O(N)", (PyObject *)&PyList_Type, list); /* steals list */
}

/* ---- testing hook ---------------------------------------------------------- */

/* LazyHeaders._from_pairs(pairs, name_cache=True): lay the pairs out as
   "Name: value\r\n" lines, as the parser would have seen them, and build a
   LazyHeaders over that buffer. */
static PyObject *lh_from_pairs(PyObject *cls, PyObject *const *args, Py_ssize_t nargs,
                               PyObject *kwnames)
{
    PyObject *pairs = NULL, *cache_arg = NULL, *fast = NULL, *res = NULL;
    char *buf = NULL;
    cp_header *spans = NULL;

    if (nargs > 2) {
        PyErr_Format(PyExc_TypeError,
                     "_from_pairs() takes at most 2 arguments (%zd given)", nargs);
        return NULL;
    }
    pairs = nargs > 0 ? args[0] : NULL;
    cache_arg = nargs > 1 ? args[1] : NULL;
    Py_ssize_t nkw = kwnames != NULL ? PyTuple_GET_SIZE(kwnames) : 0;
    for (Py_ssize_t k = 0; k < nkw; k++) {
        PyObject *key = PyTuple_GET_ITEM(kwnames, k);
        PyObject **slot = PyUnicode_CompareWithASCIIString(key, "pairs") == 0 ? &pairs
                          : PyUnicode_CompareWithASCIIString(key, "name_cache") == 0
                              ? &cache_arg
                              : NULL;
        if (slot == NULL || *slot != NULL) {
            PyErr_Format(PyExc_TypeError, "_from_pairs() got %s keyword argument '%U'",
                         slot == NULL ? "an unexpected" : "a repeated", key);
            return NULL;
        }
        *slot = args[nargs + k];
    }
    if (pairs == NULL) {
        PyErr_SetString(PyExc_TypeError,
                        "_from_pairs() missing required argument 'pairs'");
        return NULL;
    }
    int name_cache = cache_arg != NULL ? PyObject_IsTrue(cache_arg) : 1;
    if (name_cache < 0) {
        return NULL;
    }
    fast = PySequence_Fast(pairs, "pairs must be a sequence of (name, value) pairs");
    if (fast == NULL) {
        return NULL;
    }
    Py_ssize_t n = PySequence_Fast_GET_SIZE(fast);

    /* pass 1: validate, measure (no Python code runs between the passes) */
    size_t total = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *pair = PySequence_Fast_GET_ITEM(fast, i);
        if (!(PyTuple_Check(pair) || PyList_Check(pair)) ||
            PySequence_Fast_GET_SIZE(pair) != 2 ||
            !PyBytes_Check(PySequence_Fast_GET_ITEM(pair, 0)) ||
            !PyBytes_Check(PySequence_Fast_GET_ITEM(pair, 1))) {
            PyErr_Format(PyExc_TypeError, "pairs[%zd] is not a (bytes, bytes) pair", i);
            goto done;
        }
        total += (size_t)PyBytes_GET_SIZE(PySequence_Fast_GET_ITEM(pair, 0)) +
                 (size_t)PyBytes_GET_SIZE(PySequence_Fast_GET_ITEM(pair, 1)) + 4;
        if (total > UINT32_MAX) {
            PyErr_SetString(PyExc_ValueError,
                            "header block too large for 32-bit spans");
            goto done;
        }
    }
    buf = PyMem_Malloc(total ? total : 1);
    spans = PyMem_Calloc(n ? (size_t)n : 1, sizeof(cp_header));
    if (buf == NULL || spans == NULL) {
        PyErr_NoMemory();
        goto done;
    }

    /* pass 2: lay out "Name: value\r\n" */
    size_t pos = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *pair = PySequence_Fast_GET_ITEM(fast, i);
        PyObject *name = PySequence_Fast_GET_ITEM(pair, 0);
        PyObject *value = PySequence_Fast_GET_ITEM(pair, 1);
        size_t nlen = (size_t)PyBytes_GET_SIZE(name);
        size_t vlen = (size_t)PyBytes_GET_SIZE(value);
        spans[i].name.off = (uint32_t)pos;
        spans[i].name.len = (uint32_t)nlen;
        memcpy(buf + pos, PyBytes_AS_STRING(name), nlen);
        pos += nlen;
        memcpy(buf + pos, ": ", 2);
        pos += 2;
        spans[i].value.off = (uint32_t)pos;
        spans[i].value.len = (uint32_t)vlen;
        memcpy(buf + pos, PyBytes_AS_STRING(value), vlen);
        pos += vlen;
        memcpy(buf + pos, "\r\n", 2);
        pos += 2;
    }
    res = cp_lazy_headers_new(cp_get_state_from_type((PyTypeObject *)cls), name_cache,
                              buf, spans, (size_t)n);
done:
    PyMem_Free(buf);
    PyMem_Free(spans);
    Py_DECREF(fast);
    return res;
}

/* ---- counters -------------------------------------------------------------- */

static PyObject *lh_get_materialized_impl(PyObject *op, void *closure)
{
    (void)closure;
    return PyBool_FromLong(((LazyHeaders *)op)->list != NULL);
}

static PyObject *lh_get_built_impl(PyObject *op, void *closure)
{
    (void)closure;
    return PyLong_FromSsize_t(((LazyHeaders *)op)->built);
}

/* ---- GC and type ----------------------------------------------------------- */

static int lh_traverse(PyObject *op, visitproc visit, void *arg)
{
    LazyHeaders *self = (LazyHeaders *)op;
    Py_VISIT(Py_TYPE(op));
    Py_VISIT(self->list);
    for (Py_ssize_t i = 0; i < self->n; i++) {
        Py_VISIT(self->entries[i].item);
    }
    return 0;
}

static int lh_clear(PyObject *op)
{
    LazyHeaders *self = (LazyHeaders *)op;
    Py_CLEAR(self->list);
    for (Py_ssize_t i = 0; i < self->n; i++) {
        Py_CLEAR(self->entries[i].item);
    }
    return 0;
}

static void lh_dealloc(PyObject *op)
{
    PyTypeObject *tp = Py_TYPE(op);
    PyObject_GC_UnTrack(op);
    (void)lh_clear(op);
    tp->tp_free(op);
    Py_DECREF(tp);
}

/* ---- entry points: each runs its _impl in a critical section ------------- */

/* Without the GIL, two threads may read (or mutate) one scope's headers at
   once -- an app that hands them to run_in_executor(), say.  Every slot and
   method locks the object and calls its _impl; the _impl functions call
   each other, never these.  Operations on two operands lock both (a
   LazyHeaders operand is read through lh_as_list).  A critical section is
   let go for a while when the thread blocks inside it (on another lock, or
   in Python code that waits), just as the GC can run a finalizer in the
   middle of a build: the _impl functions already check the state again
   after anything that can run code (see the top of the file), which is what
   keeps both cases safe.  With the GIL these are plain calls. */

/* static ret name(params): name##_impl(args) inside the critical section of
   `op` (LOCKED) or of both `a` and `b` (LOCKED2). */
#define LOCKED(ret, name, params, args)                                              \
    static ret name params                                                           \
    {                                                                                \
        ret res;                                                                     \
        Py_BEGIN_CRITICAL_SECTION(op);                                               \
        res = name##_impl args;                                                      \
        Py_END_CRITICAL_SECTION();                                                   \
        return res;                                                                  \
    }
#define LOCKED2(ret, name, params, args)                                             \
    static ret name params                                                           \
    {                                                                                \
        ret res;                                                                     \
        Py_BEGIN_CRITICAL_SECTION2(a, b);                                            \
        res = name##_impl args;                                                      \
        Py_END_CRITICAL_SECTION2();                                                  \
        return res;                                                                  \
    }

LOCKED(PyObject *, lh_item, (PyObject *op, Py_ssize_t i), (op, i))
LOCKED(Py_ssize_t, lh_length, (PyObject *op), (op))
LOCKED(PyObject *, lh_subscript, (PyObject *op, PyObject *key), (op, key))
LOCKED(int, lh_contains, (PyObject *op, PyObject *value), (op, value))
LOCKED(PyObject *, lh_iter, (PyObject *op), (op))
LOCKED(PyObject *, lh_repr, (PyObject *op), (op))
LOCKED2(PyObject *, lh_richcompare, (PyObject *a, PyObject *b, int cmp), (a, b, cmp))
LOCKED2(PyObject *, lh_add, (PyObject *a, PyObject *b), (a, b))
LOCKED(PyObject *, lh_repeat, (PyObject *op, Py_ssize_t count), (op, count))
LOCKED(int, lh_ass_subscript, (PyObject *op, PyObject *key, PyObject *value), (op, key, value))
LOCKED2(PyObject *, lh_inplace_add, (PyObject *a, PyObject *b), (a, b))
LOCKED(PyObject *, lh_inplace_repeat, (PyObject *op, Py_ssize_t count), (op, count))
LOCKED(PyObject *, lh_append, (PyObject *op, PyObject *value), (op, value))
LOCKED2(PyObject *, lh_extend, (PyObject *a, PyObject *b), (a, b))
LOCKED(PyObject *, forward,
       (PyObject *op, const char *name, int mutates, PyObject *const *args, Py_ssize_t nargs,
        PyObject *kwnames),
       (op, name, mutates, args, nargs, kwnames))
LOCKED(PyObject *, lh_copy, (PyObject *op, PyObject *unused), (op, unused))
LOCKED(PyObject *, lh_reduce, (PyObject *op, PyObject *unused), (op, unused))
LOCKED(PyObject *, lh_get_materialized, (PyObject *op, void *closure), (op, closure))
LOCKED(PyObject *, lh_get_built, (PyObject *op, void *closure), (op, closure))
#undef LOCKED
#undef LOCKED2

#define FASTKW (METH_FASTCALL | METH_KEYWORDS)
#define METH(name, func, flags, doc)                                                 \
    {name, (PyCFunction)(void (*)(void))func, flags, doc}

static PyMethodDef lh_methods[] = {
    METH("append", lh_append, METH_O, "As list.append()."),
    METH("extend", lh_extend, METH_O, "As list.extend()."),
    METH("insert", lh_fwd_insert, FASTKW, "As list.insert()."),
    METH("pop", lh_fwd_pop, FASTKW, "As list.pop()."),
    METH("remove", lh_fwd_remove, FASTKW, "As list.remove()."),
    METH("clear", lh_fwd_clear, FASTKW, "As list.clear()."),
    METH("reverse", lh_fwd_reverse, FASTKW, "As list.reverse()."),
    METH("sort", lh_fwd_sort, FASTKW, "As list.sort()."),
    METH("index", lh_fwd_index, FASTKW, "As list.index()."),
    METH("count", lh_fwd_count, FASTKW, "As list.count()."),
    METH("copy", lh_copy, METH_NOARGS, "A shallow copy, as a list."),
    METH("__reduce__", lh_reduce, METH_NOARGS, "Copies and pickles as a plain list."),
    METH("_from_pairs", lh_from_pairs, METH_CLASS | FASTKW,
         "_from_pairs(pairs, name_cache=True) -> LazyHeaders\n\n"
         "TESTING HOOK, not an API: build a LazyHeaders from (name, value) bytes pairs "
         "as if they had been parsed from a request head (names are lowercased, and "
         "shared when name_cache is true)."),
    {NULL, NULL, 0, NULL},
};
#undef METH
#undef FASTKW

static PyGetSetDef lh_getset[] = {
    {"_materialized", lh_get_materialized, NULL,
     "Whether a mutation turned the object into a list internally (testing).", NULL},
    {"_built", lh_get_built, NULL,
     "How many (name, value) tuples were built so far (testing).", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot lazy_slots[] = {
    {Py_tp_dealloc, lh_dealloc},
    {Py_tp_traverse, lh_traverse},
    {Py_tp_clear, lh_clear},
    {Py_tp_repr, lh_repr},
    {Py_tp_hash, PyObject_HashNotImplemented}, /* __hash__ = None, as list */
    {Py_tp_richcompare, lh_richcompare},
    {Py_tp_iter, lh_iter},
    {Py_tp_methods, lh_methods},
    {Py_tp_getset, lh_getset},
    {Py_sq_length, lh_length},
    {Py_sq_item, lh_item},
    {Py_sq_contains, lh_contains},
    {Py_sq_repeat, lh_repeat},
    {Py_sq_inplace_repeat, lh_inplace_repeat},
    {Py_mp_length, lh_length},
    {Py_mp_subscript, lh_subscript},
    {Py_mp_ass_subscript, lh_ass_subscript},
    /* + is nb_add rather than sq_concat so that list + LazyHeaders works:
       list's sq_concat rejects non-lists outright, but nb_add of the right
       operand is tried before it */
    {Py_nb_add, lh_add},
    {Py_nb_inplace_add, lh_inplace_add},
    {Py_tp_doc,
     "The request's headers, a list-compatible sequence of (name, value) tuples\n"
     "built on first access (created by the server only)."},
    {0, NULL},
};

PyType_Spec cp_lazy_headers_spec = {
    .name = "carpinus._core.LazyHeaders",
    .basicsize = sizeof(LazyHeaders),
    .itemsize = 1, /* entries and text share the object's allocation */
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_IMMUTABLETYPE |
             Py_TPFLAGS_DISALLOW_INSTANTIATION | Py_TPFLAGS_SEQUENCE,
    .slots = lazy_slots,
};
