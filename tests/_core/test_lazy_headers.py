"""LazyHeaders (carpinus._core): scope["headers"] built on first touch.

The contract is "behaves as the list of (name, value) tuples it replaces".  The
model-based test below applies random list operations to a real list (the
model) and to two LazyHeaders made from the same header pairs, and requires
the same results, the same exception types and the same contents:

- `lazy` is compared with the model after every step (list() and repr(),
  which build every tuple), so it checks contents and repr continuously;
- `shadow` only receives the operations; nothing but the operations' own
  results touches it until teardown, so it stays partially built for as long
  as the operations allow, and the paths that build tuples on demand (and
  materialize a partially built object) are the ones exercised.

LazyHeaders objects are made with the testing hook LazyHeaders._from_pairs,
which lays the pairs out as header lines and goes through the same
constructor the server uses.
"""

from __future__ import annotations

import copy
import gc
import json
import operator
import pickle
import sys
import threading
import tracemalloc
import weakref
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from carpinus import _core

LazyHeaders = _core.LazyHeaders

Pair = tuple[bytes, bytes]


def make(pairs: list[Pair], name_cache: bool = True) -> Any:
    return LazyHeaders._from_pairs(pairs, name_cache=name_cache)


def lowered(pairs: list[Pair]) -> list[Pair]:
    """What the eager scope builder produces: ASCII-lowercased names."""
    return [(name.lower(), value) for name, value in pairs]


# ---- strategies ----------------------------------------------------------

COMMON = [b"Host", b"host", b"HOST", b"User-Agent", b"accept", b"Content-Type",
          b"Cookie", b"X-Forwarded-For", b"content-length", b"TE", b"dnt"]
names = st.one_of(
    st.sampled_from(COMMON),
    st.binary(min_size=1, max_size=12),
    st.text(alphabet="abcXYZ-_09", min_size=1, max_size=40).map(str.encode),
)
values = st.one_of(st.just(b""), st.binary(max_size=12))
header_pairs = st.tuples(names, values)
pair_lists = st.lists(header_pairs, max_size=12)
# what an app may put into its headers list: mostly header tuples, sometimes
# something else (which makes sort() and ordering comparisons raise TypeError)
elements = st.one_of(
    header_pairs.map(lambda p: (p[0].lower(), p[1])),
    header_pairs.map(lambda p: (p[0].lower(), p[1])),
    st.integers(-2, 2),
    st.just(None),
)
small_ints = st.integers(-16, 16)
optional_ints = st.one_of(st.none(), small_ints)

ERRORS = (IndexError, ValueError, TypeError)
MODEL, LAZY, SHADOW = 0, 1, 2
END = object()  # next() on an exhausted iterator


def outcome(fn: Callable[[], Any], target: Any) -> tuple[str, Any]:
    try:
        result = fn()
    except ERRORS as exc:
        return ("raise", type(exc))
    if result is target:
        return ("self", None)
    return ("ok", result)


class LazyHeadersMachine(RuleBasedStateMachine):
    model: list[Any]
    lazy: Any
    shadow: Any

    @initialize(pairs=pair_lists, name_cache=st.booleans())
    def start(self, pairs: list[Pair], name_cache: bool) -> None:
        self.pairs = pairs
        self.model = lowered(pairs)
        self.lazy = make(pairs, name_cache)
        self.shadow = make(pairs, name_cache)
        self.n0 = len(pairs)
        self.iters: list[tuple[Iterator[Any], ...]] = []
        assert type(self.lazy) is LazyHeaders
        assert not self.shadow._materialized and self.shadow._built == 0

    @property
    def targets(self) -> tuple[Any, Any, Any]:
        return (self.model, self.lazy, self.shadow)

    def apply(self, op: Callable[[Any, int], Any], *, mutates: bool = False,
              new_list: bool = False) -> Any:
        """op(target, role) on all three; outcomes must agree."""
        shadow_was_materialized = self.shadow._materialized
        outcomes = [outcome(lambda t=t, role=role: op(t, role), t)
                    for role, t in enumerate(self.targets)]
        assert outcomes[LAZY] == outcomes[MODEL], (outcomes[LAZY], outcomes[MODEL])
        assert outcomes[SHADOW] == outcomes[MODEL], (outcomes[SHADOW], outcomes[MODEL])
        kind, result = outcomes[LAZY]
        if new_list and kind == "ok":
            assert type(result) is list
            assert type(outcomes[SHADOW][1]) is list
        if not mutates:
            assert self.shadow._materialized == shadow_was_materialized
        elif kind != "raise":
            assert self.shadow._materialized
        return result

    def draw_others(self, data: st.DataObject) -> str:
        """A second operand: a list, a LazyHeaders (a list for the model), the
        target itself, a tuple, or a non-sequence."""
        kind = data.draw(st.sampled_from(["list", "lazy", "self", "tuple", "int"]))
        if kind == "list":
            items = data.draw(st.lists(elements, max_size=4))
            self._others = [list(items), list(items), list(items)]
        elif kind == "lazy":
            pairs = data.draw(pair_lists)
            self._others = [lowered(pairs), make(pairs), make(pairs)]
        elif kind == "self":
            self._others = list(self.targets)
        elif kind == "tuple":
            items = data.draw(st.lists(elements, max_size=4))
            self._others = [tuple(items)] * 3
        else:
            self._others = [7] * 3
        return kind

    def draw_existing_or_new(self, data: st.DataObject) -> Any:
        if self.model and data.draw(st.booleans()):
            i = data.draw(st.integers(0, len(self.model) - 1))
            # an equal object, not the same one: comparisons must do the work
            item = self.model[i]
            return tuple([*item]) if isinstance(item, tuple) else item
        return data.draw(elements)

    # ---- reads ----

    @rule(i=st.integers(-20, 20))
    def getitem(self, i: int) -> None:
        self.apply(lambda x, r: x[i])

    @rule(start=optional_ints, stop=optional_ints, step=st.one_of(st.none(), small_ints))
    def get_slice(self, start: int | None, stop: int | None, step: int | None) -> None:
        self.apply(lambda x, r: x[start:stop:step], new_list=True)

    @rule(key=st.sampled_from(["a", 1.0, None, (0,)]))
    def getitem_bad_key(self, key: Any) -> None:
        self.apply(lambda x, r: x[key])

    @rule()
    def length_and_truth(self) -> None:
        self.apply(lambda x, r: (len(x), bool(x)))

    @rule(data=st.data())
    def contains(self, data: st.DataObject) -> None:
        needle = self.draw_existing_or_new(data)
        self.apply(lambda x, r: needle in x)

    @rule(data=st.data())
    def count_and_index(self, data: st.DataObject) -> None:
        needle = self.draw_existing_or_new(data)
        args = data.draw(st.lists(small_ints, max_size=2))
        self.apply(lambda x, r: x.count(needle))
        self.apply(lambda x, r: x.index(needle, *args))

    @rule()
    def copy_(self) -> None:
        copies = [x.copy() for x in self.targets]
        assert all(type(c) is list for c in copies)
        assert copies[LAZY] == copies[MODEL] and copies[SHADOW] == copies[MODEL]
        assert copies[LAZY] is not self.lazy
        for c in copies:  # a copy, not a view: the originals must not change
            c.append(b"only in the copy")
        assert len(self.lazy) == len(self.shadow) == len(self.model)

    @rule()
    def reversed_(self) -> None:
        self.apply(lambda x, r: list(reversed(x)))

    @rule()
    def repr_(self) -> None:
        self.apply(lambda x, r: repr(x))

    @rule(data=st.data(), op=st.sampled_from(["==", "!=", "<", "<=", ">", ">="]),
          reflected=st.booleans())
    def compare(self, data: st.DataObject, op: str, reflected: bool) -> None:
        fn = {"==": operator.eq, "!=": operator.ne, "<": operator.lt,
              "<=": operator.le, ">": operator.gt, ">=": operator.ge}[op]
        kind = data.draw(st.sampled_from(["copy", "changed", "tuple", "lazy", "self"]))
        if kind == "copy":
            others = [list(self.model)] * 3
        elif kind == "changed" and self.model:
            changed = list(self.model)
            changed[data.draw(st.integers(0, len(changed) - 1))] = data.draw(elements)
            others = [changed] * 3
        elif kind == "tuple":
            others = [tuple(self.model)] * 3
        elif kind == "lazy" and all(isinstance(e, tuple) and len(e) == 2 and
                                    all(isinstance(b, bytes) for b in e)
                                    for e in self.model):
            # a LazyHeaders with the model's contents (names already lowercase)
            others = [list(self.model), make(self.model), make(self.model)]
        else:
            others = list(self.targets)
        if reflected:
            self.apply(lambda x, r: fn(others[r], x))
        else:
            self.apply(lambda x, r: fn(x, others[r]))

    @rule(data=st.data(), reflected=st.booleans())
    def add(self, data: st.DataObject, reflected: bool) -> None:
        self.draw_others(data)
        others = self._others
        if reflected:
            self.apply(lambda x, r: others[r] + x)
        else:
            self.apply(lambda x, r: x + others[r])

    @rule(k=st.one_of(st.integers(-1, 3), st.just("a")), reflected=st.booleans())
    def mul(self, k: Any, reflected: bool) -> None:
        if reflected:
            self.apply(lambda x, r: k * x)
        else:
            self.apply(lambda x, r: x * k)

    @rule()
    def start_iterators(self) -> None:
        if len(self.iters) < 4:
            self.iters.append(tuple(iter(x) for x in self.targets))
            self.iters.append(tuple(reversed(x) for x in self.targets))

    @precondition(lambda self: self.iters)
    @rule(data=st.data(), steps=st.integers(1, 4))
    def advance_iterator(self, data: st.DataObject, steps: int) -> None:
        its = self.iters[data.draw(st.integers(0, len(self.iters) - 1))]
        for _ in range(steps):
            hints = [operator.length_hint(it) for it in its]
            got = [next(it, END) for it in its]
            assert hints[LAZY] == hints[MODEL] and hints[SHADOW] == hints[MODEL]
            assert got[LAZY] == got[MODEL] and got[SHADOW] == got[MODEL]

    # ---- mutations ----

    @rule(data=st.data())
    def append(self, data: st.DataObject) -> None:
        value = data.draw(elements)
        self.apply(lambda x, r: x.append(value), mutates=True)

    @rule(data=st.data())
    def extend(self, data: st.DataObject) -> None:
        kind = self.draw_others(data)
        others = self._others
        if kind == "list" and data.draw(st.booleans()):
            # any iterable, consumed once
            self.apply(lambda x, r: x.extend(iter(list(others[r]))), mutates=True)
        else:
            self.apply(lambda x, r: x.extend(others[r]), mutates=True)

    @rule(data=st.data())
    def iadd(self, data: st.DataObject) -> None:
        self.draw_others(data)
        others = self._others
        self.apply(lambda x, r: operator.iadd(x, others[r]), mutates=True)

    @rule(k=st.one_of(st.integers(-1, 3), st.just("a")))
    def imul(self, k: Any) -> None:
        if len(self.model) * max(k if isinstance(k, int) else 0, 1) > 64:
            k = 1
        self.apply(lambda x, r: operator.imul(x, k), mutates=True)

    @rule(i=st.integers(-20, 20), data=st.data())
    def insert(self, i: int, data: st.DataObject) -> None:
        value = data.draw(elements)
        self.apply(lambda x, r: x.insert(i, value), mutates=True)

    @rule(i=st.integers(-20, 20), data=st.data())
    def setitem(self, i: int, data: st.DataObject) -> None:
        value = data.draw(elements)
        self.apply(lambda x, r: operator.setitem(x, i, value), mutates=True)

    @rule(start=optional_ints, stop=optional_ints, step=st.one_of(st.none(), small_ints),
          data=st.data())
    def setslice(self, start: int | None, stop: int | None, step: int | None,
                 data: st.DataObject) -> None:
        if data.draw(st.booleans()):
            items = data.draw(st.lists(elements, max_size=5))
            self.apply(lambda x, r: operator.setitem(x, slice(start, stop, step), list(items)),
                       mutates=True)
        else:  # x[a:b] = x copies first
            self.apply(lambda x, r: operator.setitem(x, slice(start, stop, step), x),
                       mutates=True)

    @rule(i=st.integers(-20, 20))
    def delitem(self, i: int) -> None:
        self.apply(lambda x, r: operator.delitem(x, i), mutates=True)

    @rule(start=optional_ints, stop=optional_ints, step=st.one_of(st.none(), small_ints))
    def delslice(self, start: int | None, stop: int | None, step: int | None) -> None:
        self.apply(lambda x, r: operator.delitem(x, slice(start, stop, step)), mutates=True)

    @rule(key=st.sampled_from(["a", 1.0, None]))
    def setitem_bad_key(self, key: Any) -> None:
        self.apply(lambda x, r: operator.setitem(x, key, (b"a", b"b")), mutates=True)

    @rule(i=st.one_of(st.none(), st.integers(-20, 20)))
    def pop(self, i: int | None) -> None:
        if i is None:
            self.apply(lambda x, r: x.pop(), mutates=True)
        else:
            self.apply(lambda x, r: x.pop(i), mutates=True)

    @rule(data=st.data())
    def remove(self, data: st.DataObject) -> None:
        needle = self.draw_existing_or_new(data)
        self.apply(lambda x, r: x.remove(needle), mutates=True)

    @rule()
    def clear(self) -> None:
        self.apply(lambda x, r: x.clear(), mutates=True)

    @rule()
    def reverse(self) -> None:
        self.apply(lambda x, r: x.reverse(), mutates=True)

    @rule(reverse=st.booleans(), key=st.sampled_from([None, repr, len, operator.itemgetter(1)]))
    def sort(self, reverse: bool, key: Any) -> None:
        self.apply(lambda x, r: x.sort(key=key, reverse=reverse), mutates=True)

    @rule()
    def bad_method_calls(self) -> None:
        self.apply(lambda x, r: x.insert(0), mutates=True)  # TypeError: arity
        self.apply(lambda x, r: x.pop("a"), mutates=True)
        self.apply(lambda x, r: x.index(), mutates=False)

    # ---- laziness ----

    @rule(data=st.data())
    def read_then_mutate_fresh(self, data: st.DataObject) -> None:
        """A fresh object: one read builds one tuple; a mutation after a few
        reads keeps the tuples already handed out."""
        fresh = make(self.pairs)
        base = lowered(self.pairs)
        assert fresh._built == 0 and len(fresh) == len(base) and fresh._built == 0
        if not base:
            return
        i = data.draw(st.integers(-len(base), len(base) - 1))
        first = fresh[i]
        assert first == base[i]
        assert fresh._built == 1 and not fresh._materialized
        assert fresh[i] is first
        more = data.draw(st.lists(st.integers(-len(base), len(base) - 1), max_size=3))
        touched = {i % len(base)} | {j % len(base) for j in more}
        handed = {j % len(base): fresh[j] for j in more}
        assert fresh._built == len(touched)
        fresh.append((b"x", b"y"))
        assert fresh._materialized and fresh._built == len(base)
        assert fresh[i % len(base)] is first
        for j, item in handed.items():
            assert fresh[j] is item
        assert list(fresh) == base + [(b"x", b"y")]

    # ---- invariants ----

    @invariant()
    def lazy_matches_model(self) -> None:
        assert list(self.lazy) == self.model
        assert repr(self.lazy) == repr(self.model)
        assert len(self.shadow) == len(self.model)
        assert 0 <= self.shadow._built <= self.n0

    def teardown(self) -> None:
        if hasattr(self, "shadow"):
            assert list(self.shadow) == self.model
            assert repr(self.shadow) == repr(self.model)


LazyHeadersMachine.TestCase.settings = settings(
    max_examples=300,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
test_lazy_headers_behave_like_a_list = LazyHeadersMachine.TestCase


# ---- plain tests ----------------------------------------------------------


def test_names_are_lowercased_values_untouched() -> None:
    x = make([(b"Content-TYPE", b"Text/HTML"), (b"X-Custom-HEADER", b"MiXeD"),
              (b"\xc4Z", b"\xff")])
    assert list(x) == [(b"content-type", b"Text/HTML"), (b"x-custom-header", b"MiXeD"),
                       (b"\xc4z", b"\xff")]
    assert all(type(n) is bytes and type(v) is bytes for n, v in x)
    assert all(type(item) is tuple for item in x)


def test_common_names_are_shared_only_with_the_name_cache() -> None:
    a = make([(b"Host", b"a"), (b"X-Rare", b"1")])
    b = make([(b"HOST", b"b"), (b"x-rare", b"2")])
    assert a[0][0] == b"host" and a[0][0] is b[0][0]
    assert a[1][0] == b[1][0] and a[1][0] is not b[1][0]  # not a common name
    c = make([(b"Host", b"a")], name_cache=False)
    d = make([(b"Host", b"a")], name_cache=False)
    assert c[0][0] == b"host" and c[0][0] is not d[0][0] and c[0][0] is not a[0][0]


def test_empty_values_share_one_object() -> None:
    x = make([(b"a", b""), (b"b", b""), (b"c", b"v")])
    y = make([(b"d", b"")])
    assert x[0][1] == b"" and x[0][1] is x[1][1] is y[0][1]


def test_no_headers() -> None:
    x = make([])
    assert len(x) == 0 and not x and list(x) == [] and repr(x) == "[]"
    assert x == [] and [] == x and x != [(b"a", b"b")]
    assert x[:] == [] and x[::-1] == [] and list(reversed(x)) == []
    with pytest.raises(IndexError):
        x[0]
    with pytest.raises(IndexError):
        x[-1]
    with pytest.raises(IndexError):
        x.pop()
    x.append((b"a", b"b"))
    assert x == [(b"a", b"b")]


def test_hundred_headers() -> None:
    pairs = [(f"X-Header-{i}".encode(), f"value {i}".encode() if i % 3 else b"")
             for i in range(100)]
    x = make(pairs)
    assert len(x) == 100 and x._built == 0
    assert x[58] == (b"x-header-58", b"value 58")
    assert x[-1] == (b"x-header-99", b"")
    assert x._built == 2
    assert x[10:20] == lowered(pairs)[10:20] and x._built == 12
    assert list(x) == lowered(pairs) and x._built == 100 and not x._materialized


def test_repeated_reads_give_the_same_tuple() -> None:
    x = make([(b"Host", b"h"), (b"Accept", b"*/*"), (b"X-A", b"1")])
    first = x[1]
    assert x[1] is first and x[-2] is first and x[1:2][0] is first
    assert [item for item in x][1] is first
    assert x._built == 3
    x.append((b"x-b", b"2"))  # materializes: the same tuple objects move over
    assert x[1] is first and x._materialized


def test_laziness_contains_stops_early() -> None:
    x = make([(b"a", b"1"), (b"b", b"2"), (b"c", b"3"), (b"d", b"4")])
    assert (b"b", b"2") in x
    assert x._built == 2
    assert (b"z", b"") not in x and x._built == 4


def test_iteration_is_lazy() -> None:
    x = make([(b"a", b"1"), (b"b", b"2"), (b"c", b"3")])
    it = iter(x)
    assert next(it) == (b"a", b"1") and x._built == 1
    assert operator.length_hint(it) == 2


def test_json_of_decoded_headers() -> None:
    pairs = [(b"Host", b"example.com"), (b"X-Empty", b"")]
    x = make(pairs)
    as_json = json.dumps([[n.decode("latin-1"), v.decode("latin-1")] for n, v in x])
    assert json.loads(as_json) == [["host", "example.com"], ["x-empty", ""]]
    # bytes are no more JSON-serializable here than in a list
    with pytest.raises(TypeError):
        json.dumps(list(x))
    assert json.dumps(x, default=lambda o: [[n.decode(), v.decode()] for n, v in o]) == as_json


@pytest.mark.parametrize("materialize_first", [False, True])
def test_appending_while_iterating_behaves_like_a_list(materialize_first: bool) -> None:
    pairs = [(b"a", b"1"), (b"b", b"2"), (b"c", b"3")]
    model, x = lowered(pairs), make(pairs)
    if materialize_first:
        x.append((b"m", b"0"))
        model.append((b"m", b"0"))
    seen: list[list[Any]] = [[], []]
    for k, target in enumerate((model, x)):
        for item in target:
            seen[k].append(item)
            if len(target) < 8:
                target.append((b"n", str(len(target)).encode()))
            elif len(target) == 8:
                del target[0]
    assert seen[1] == seen[0]
    assert list(x) == model


def test_reversed_iterator_stops_when_the_list_shrinks() -> None:
    x, model = make([(b"a", b"1"), (b"b", b"2"), (b"c", b"3")]), [(b"a", b"1"), (b"b", b"2"),
                                                               (b"c", b"3")]
    its = [reversed(x), reversed(model)]
    assert next(its[0]) == next(its[1])
    x.clear()
    model.clear()
    assert next(its[0], END) is END and next(its[1], END) is END


def test_unhashable_and_not_instantiable() -> None:
    x = make([(b"a", b"b")])
    assert LazyHeaders.__hash__ is None
    with pytest.raises(TypeError):
        hash(x)
    with pytest.raises(TypeError):
        LazyHeaders()
    with pytest.raises(TypeError):
        type("Sub", (LazyHeaders,), {})


def test_known_difference_isinstance_list() -> None:
    """Accepted: a list subclass could not stay lazy (list's C code reads its
    array directly).  Apps that insist on a list call list(headers)."""
    assert not isinstance(make([]), list)


def test_copy_deepcopy_and_pickle_give_lists() -> None:
    x = make([(b"Host", b"h"), (b"a", b"")])
    for y in (x.copy(), copy.copy(x), copy.deepcopy(x),
              pickle.loads(pickle.dumps(x, protocol=pickle.HIGHEST_PROTOCOL)),
              pickle.loads(pickle.dumps(x, protocol=0))):
        assert type(y) is list and y == x
    assert not x._materialized
    x.append(1)
    assert copy.copy(x) == [(b"host", b"h"), (b"a", b""), 1]


def test_match_statement_sees_a_sequence() -> None:
    x = make([(b"Host", b"h"), (b"Accept", b"a")])
    match x:
        case [(b"host", host), *rest]:
            assert host == b"h" and rest == [(b"accept", b"a")]
        case _:
            pytest.fail("sequence pattern did not match")


def test_self_reference_repr_and_gc() -> None:
    class Sentinel:
        pass

    x = make([(b"a", b"b")])
    model = [(b"a", b"b")]
    assert not gc.is_tracked(x)  # only bytes tuples: cannot be in a cycle
    s = Sentinel()
    ref = weakref.ref(s)
    x.append(s)
    model.append(s)
    assert gc.is_tracked(x)
    x.append(x)
    model.append(model)
    assert repr(x) == repr(model)
    del x, s, model
    gc.collect()
    assert ref() is None


def test_extend_and_iadd_with_itself_copy_once() -> None:
    x = make([(b"a", b"1"), (b"b", b"2")])
    x.extend(x)
    assert list(x) == [(b"a", b"1"), (b"b", b"2")] * 2
    y = make([(b"a", b"1")])
    y += y
    assert type(y) is LazyHeaders and list(y) == [(b"a", b"1")] * 2


@pytest.mark.parametrize("action", ["read", "mutate", "iterate"])
def test_gc_finalizer_touching_the_object_while_it_builds(action: str) -> None:
    """Building a tuple allocates; an allocation may run the cyclic GC, and a
    finalizer it runs may read or mutate the very object being built.  (Only
    on Pythons that collect inside allocations, 3.11 and earlier; harmless
    elsewhere.)  Whatever the interleaving, nothing may crash or leak, and the
    result must be one a list could have given."""
    pairs = [(f"X-H{i}".encode(), f"v{i}".encode()) for i in range(40)]
    x = make(pairs)
    late = (b"late", b"")
    fired = []

    class Bomb:
        def __del__(self) -> None:
            fired.append(len(x))
            if len(fired) % 2:
                x.append(late)  # materializes, mid-build of the outer call
            else:
                _ = x[len(x) // 2], x[-1]

    def prime() -> None:
        bomb = Bomb()
        bomb.cycle = bomb  # type: ignore[attr-defined]

    old = gc.get_threshold()
    gc.collect()
    gc.set_threshold(1)
    try:
        for i in range(len(pairs)):
            prime()
            if action == "read":
                _ = x[i]
            elif action == "mutate":
                x.insert(0, (b"front", b""))
            else:
                _ = list(x)
    finally:
        gc.set_threshold(*old)
    gc.collect()
    items = list(x)
    assert [p for p in items if p not in (late, (b"front", b""))] == lowered(pairs)
    assert items.count(late) == (len(fired) + 1) // 2
    assert x._built == len(pairs)


def test_from_pairs_rejects_bad_input() -> None:
    with pytest.raises(TypeError):
        LazyHeaders._from_pairs([(b"a", "str")])
    with pytest.raises(TypeError):
        LazyHeaders._from_pairs([(b"a",)])
    with pytest.raises(TypeError):
        LazyHeaders._from_pairs(5)
    with pytest.raises(TypeError):
        LazyHeaders._from_pairs()
    with pytest.raises(TypeError):
        LazyHeaders._from_pairs([], bogus=1)
    assert list(LazyHeaders._from_pairs(pairs=[(b"A", b"b")], name_cache=False)) == [
        (b"a", b"b")]


def exercise(pairs: list[Pair], sentinel: object) -> None:
    """One round of everything that allocates or moves references."""
    x = make(pairs)
    _ = x[0], x[-1], x[1:3], x[::-2], (b"host", b"h") in x
    _ = repr(x), x == list(x), [] != x, x + [1], [1] + x, x * 2
    it = iter(x)
    next(it)
    try:
        x[99]
    except IndexError:
        pass
    try:
        x + (1,)
    except TypeError:
        pass
    y = make(pairs, name_cache=False)
    y[2]
    y.append(sentinel)
    y.insert(0, sentinel)
    y += [sentinel]
    y.extend(x)
    del y[1]
    y.sort(key=repr)
    y.pop()
    z = make([])
    z.append(z)  # a cycle, left to the GC
    pickle.dumps(x)


def test_no_reference_or_memory_leak() -> None:
    pairs = [(b"Host", b"h"), (b"User-Agent", b"ua"), (b"X-Thing", b""), (b"Cookie", b"c=1"),
             (b"Accept", b"*/*")]
    sentinel = object()
    host = make([(b"host", b"")])[0][0]  # the shared name object
    empty = make([(b"a", b"")])[0][1]
    for _ in range(500):
        exercise(pairs, sentinel)
    gc.collect()
    refs = (sys.getrefcount(sentinel), sys.getrefcount(host), sys.getrefcount(empty))
    tracemalloc.start()
    try:
        for _ in range(2000):
            exercise(pairs, sentinel)
        gc.collect()
        before, _ = tracemalloc.get_traced_memory()
        for _ in range(10000):
            exercise(pairs, sentinel)
        gc.collect()
        after, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert (sys.getrefcount(sentinel), sys.getrefcount(host), sys.getrefcount(empty)) == refs
    # a leak of one small object per round would be > 300 KiB
    assert after - before < 64 * 1024, after - before


# ---- threads ----------------------------------------------------------------
#
# A scope's headers may be read from several threads (run_in_executor); on a
# free-threaded build the object's critical sections are all that keeps
# those reads apart.  With the GIL the same checks pass trivially.

THREADS = 4


def run_together(work: Callable[[int], None]) -> None:
    """work(0..THREADS-1), each on its own thread, released at the same moment."""
    start = threading.Barrier(THREADS)
    errors: list[BaseException] = []

    def run(n: int) -> None:
        try:
            start.wait()
            work(n)
        except BaseException as exc:  # re-raised below, in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(n,)) for n in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not any(thread.is_alive() for thread in threads)
    if errors:
        raise errors[0]


def test_threads_reading_one_object_build_each_tuple_once() -> None:
    pairs = [(f"X-Field-{i}".encode(), str(i).encode()) for i in range(64)]
    for _ in range(20):
        lazy = make(pairs)
        seen: list[list[Pair]] = [[] for _ in range(THREADS)]

        def read(n: int, lazy: Any = lazy, seen: list[list[Pair]] = seen) -> None:
            order = range(len(pairs)) if n % 2 else range(len(pairs) - 1, -1, -1)
            got = {i: lazy[i] for i in order}
            seen[n] = [got[i] for i in range(len(pairs))]

        run_together(read)
        assert lazy._built == len(pairs) and not lazy._materialized
        assert seen[0] == lowered(pairs)
        for other in seen[1:]:  # one tuple per entry, whoever built it
            assert all(a is b for a, b in zip(seen[0], other, strict=True))


def test_threads_reading_while_one_mutates() -> None:
    pairs = [(f"x-field-{i}".encode(), str(i).encode()) for i in range(64)]
    for _ in range(20):
        lazy = make(pairs)

        def work(n: int, lazy: Any = lazy) -> None:
            if n == 0:
                for i in range(32):
                    lazy.append((b"x-added", str(i).encode()))
                    del lazy[0]
            else:
                for _ in range(4):  # what they see is a race; that they see it is not
                    items = list(lazy)
                    assert all(type(p) is tuple and len(p) == 2 for p in items)
                    assert isinstance(lazy == items, bool)
                    assert isinstance(repr(lazy), str)

        run_together(work)
        assert lazy._materialized
        assert list(lazy) == pairs[32:] + [(b"x-added", str(i).encode()) for i in range(32)]


def test_starlette_headers_over_lazy_headers() -> None:
    datastructures = pytest.importorskip("starlette.datastructures")
    pairs = [(b"Host", b"example.com"), (b"Content-Type", b"text/plain"),
             (b"X-Dup", b"1"), (b"x-dup", b"2"), (b"Cookie", b"a=b")]
    scope = {"type": "http", "headers": make(pairs)}
    h = datastructures.Headers(scope=scope)
    assert h["host"] == "example.com" and h.getlist("x-dup") == ["1", "2"]
    assert "cookie" in h and len(h) == 5
    assert h.raw == lowered(pairs)

    scope = {"type": "http", "headers": make(pairs)}
    m = datastructures.MutableHeaders(scope=scope)
    m.append("X-New", "n")
    m["x-dup"] = "3"
    del m["cookie"]
    assert scope["headers"] == [(b"host", b"example.com"), (b"content-type", b"text/plain"),
                                (b"x-dup", b"3"), (b"x-new", b"n")]

    # raw= keeps our object and mutates it in place
    lazy = make(pairs)
    m = datastructures.MutableHeaders(raw=lazy)
    m.append("X-New", "n")
    m["x-dup"] = "3"
    del m["cookie"]
    m.setdefault("host", "ignored")
    assert m.raw is lazy and lazy._materialized
    assert list(lazy) == [(b"host", b"example.com"), (b"content-type", b"text/plain"),
                          (b"x-dup", b"3"), (b"x-new", b"n")]
    assert datastructures.Headers(raw=lazy).mutablecopy().raw == list(lazy)


def test_starlette_request_headers() -> None:
    requests = pytest.importorskip("starlette.requests")
    scope = {"type": "http", "method": "GET", "path": "/", "query_string": b"",
             "headers": make([(b"Host", b"h"), (b"Cookie", b"a=1; b=2")])}
    req = requests.Request(scope)
    assert req.headers["host"] == "h" and req.cookies == {"a": "1", "b": "2"}
