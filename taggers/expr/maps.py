"""Functions that read maps (a keyed aggregate's value, ``by: props.category``): the value
for a key, the top keys, and the keys over a threshold. Their type rules and their
evaluation functions, which never raise (a value of the wrong kind behaves like null).

Order: keys rank by value, largest first; keys with equal values by key, in string
order (``top_key`` of ``{'a': 2, 'b': 2}`` is ``'a'``). Values that are not numbers (a
null, a dyn of the wrong kind) rank nowhere. Lists come back as the language's lists.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from taggers.expr.checked import Checked, Compile, Fn, Values, arity, article, start
from taggers.expr.parser import Call, ExprError
from taggers.expr.types import (
    DURATION,
    DYN,
    INT,
    NULL,
    STRING,
    TIMESTAMP,
    Type,
    assignable,
    common,
    comparable,
    list_of,
)

_RANKED_VALUES: Final = "a map of numbers, durations or timestamps"


def _arguments(compile_: Compile, node: Call, count: int) -> list[Checked]:
    arity(node, count)
    return [compile_(arg) for arg in node.args]


def _map(node: Call, out: Checked, *, ranked: bool) -> Type:
    """The type of the values of the map argument (``ranked``: values that order)."""
    type_ = out.type
    if type_ in (DYN, NULL):
        return DYN
    if type_.kind != "map":
        what = _RANKED_VALUES if ranked else "a map"
        raise ExprError(
            f"{node.name} needs {what}, not {article(type_)}",
            start(node.args[0]),
            "a map is an aggregate kept per key: {count: purchase, by: props.category}",
        )
    assert type_.elem is not None
    elem = type_.elem
    if ranked and not (elem.numeric or elem in (DURATION, TIMESTAMP, DYN)):
        raise ExprError(f"{node.name} needs {_RANKED_VALUES}, not {type_}", start(node.args[0]))
    return elem


def _typed(node: Call, out: Checked, at: int, wanted: Type, what: str) -> None:
    if not assignable(out.type, wanted) or (wanted == INT and out.type.kind == "double"):
        raise ExprError(f"{node.name} needs {what}, not {article(out.type)}", start(node.args[at]))


def _ranked(found: Any) -> list[str]:
    """A map's keys by value, largest first (ties: by key); non-numbers left out."""
    entries = [
        (key, value)
        for key, value in found.items()
        if isinstance(value, int | float) and not isinstance(value, bool)
    ]
    entries.sort(key=lambda entry: (-entry[1], entry[0]))
    return [key for key, _ in entries]


def _at_least(found: Any, threshold: Any) -> list[str]:
    return sorted(
        key
        for key, value in found.items()
        if isinstance(value, int | float) and not isinstance(value, bool) and value >= threshold
    )


def _over_map(apply: Callable[[dict[str, Any], Any], Any], mf: Fn, af: Fn) -> Fn:
    """``apply(map, argument)``: null unless the map is a map and the argument is there."""

    def call(values: Values) -> Any:
        found, argument = mf(values), af(values)
        if not isinstance(found, dict) or argument is None:
            return None
        try:
            return apply(found, argument)
        except TypeError:  # a dyn argument of the wrong kind
            return None

    return call


def get(compile_: Compile, node: Call) -> Checked:
    """``get(m, key, default)``: the value for ``key``, or ``default`` when there is none."""
    m, key, default = _arguments(compile_, node, 3)
    elem = _map(node, m, ranked=False)
    _typed(node, key, 1, STRING, "a string key")
    type_ = common([elem, default.type])
    if type_ is None:
        raise ExprError(
            f"get's default must be {article(elem)} like the map's values,"
            f" not {article(default.type)}",
            start(node.args[2]),
        )
    mf, kf, df = m.fn, key.fn, default.fn

    def found(values: Values) -> Any:
        entries, at = mf(values), kf(values)
        value = entries.get(at) if isinstance(entries, dict) and isinstance(at, str) else None
        return df(values) if value is None else value

    return Checked(type_, found, m.const and key.const and default.const)


def top_key(compile_: Compile, node: Call) -> Checked:
    """``top_key(m)``: the key with the largest value (ties: the smallest key), or null."""
    (m,) = _arguments(compile_, node, 1)
    _map(node, m, ranked=True)
    mf = m.fn

    def top(values: Values) -> Any:
        found = mf(values)
        ranked = _ranked(found) if isinstance(found, dict) else []
        return ranked[0] if ranked else None

    return Checked(STRING, top, m.const)


def top_keys(compile_: Compile, node: Call) -> Checked:
    """``top_keys(m, n)``: the ``n`` keys with the largest values, largest first."""
    m, n = _arguments(compile_, node, 2)
    _map(node, m, ranked=True)
    _typed(node, n, 1, INT, "an int count")

    def first(found: dict[str, Any], count: Any) -> tuple[str, ...]:
        if isinstance(count, bool) or not isinstance(count, int):
            raise TypeError("a count is an int")
        return tuple(_ranked(found)[: max(count, 0)])

    return Checked(list_of(STRING), _over_map(first, m.fn, n.fn), m.const and n.const)


def _threshold(compile_: Compile, node: Call) -> tuple[Checked, Checked]:
    m, threshold = _arguments(compile_, node, 2)
    elem = _map(node, m, ranked=True)
    if not comparable(elem, threshold.type, ordering=True) or threshold.type == STRING:
        raise ExprError(
            f"{node.name} compares the map's values with its threshold: {article(elem)}"
            f" cannot be compared with {article(threshold.type)}",
            start(node.args[1]),
        )
    return m, threshold


def keys_at_least(compile_: Compile, node: Call) -> Checked:
    """``keys_at_least(m, threshold)``: the keys whose value is at least ``threshold``,
    sorted."""
    m, threshold = _threshold(compile_, node)

    def keys(found: dict[str, Any], bound: Any) -> tuple[str, ...]:
        return tuple(_at_least(found, bound))

    fn = _over_map(keys, m.fn, threshold.fn)
    return Checked(list_of(STRING), fn, m.const and threshold.const)


def count_at_least(compile_: Compile, node: Call) -> Checked:
    """``count_at_least(m, threshold)``: how many keys have a value at least ``threshold``."""
    m, threshold = _threshold(compile_, node)

    def count(found: dict[str, Any], bound: Any) -> int:
        return len(_at_least(found, bound))

    return Checked(INT, _over_map(count, m.fn, threshold.fn), m.const and threshold.const)
