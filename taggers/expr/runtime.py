"""The evaluation functions that compiled expressions are made of, built once per
expression from the functions of its parts; the type checkers choose which.

Run-time rules, so that evaluating never raises:
- null in arithmetic gives null; an ordering comparison with null is false; null is false
  where a condition is wanted; ``max``/``min`` skip nulls.
- A ``dyn`` value of the wrong kind at run time behaves like null.
- ``/`` divides exactly (``7 / 2`` is 3.5); dividing by zero gives null.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any, Final

from taggers.expr.checked import Fn, Values

RUNTIME_ERRORS: Final = (TypeError, ValueError, ArithmeticError)
"""What a wrong-kinded value can raise in an operation; the result is then null."""
ORDERING: Final[dict[str, Callable[[Any, Any], bool]]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}
ARITHMETIC: Final[dict[str, Callable[[Any, Any], Any]]] = {
    "+": operator.add,
    "-": operator.sub,
    "*": operator.mul,
    "/": operator.truediv,
    "%": operator.mod,
}


_NUMBER: Final = (int, float)


def read(name: str) -> Fn:
    """The run-time value of ``name``."""
    return lambda values: values[name]


# --- operators -----------------------------------------------------------------------------


def negation(operand: Fn) -> Fn:
    """``!operand``: null and anything not true count as false."""
    return lambda values: operand(values) is not True


def negative(inner: Fn) -> Fn:
    """``-inner``."""

    def negate(values: Values) -> Any:
        value = inner(values)
        try:
            return None if value is None else -value
        except RUNTIME_ERRORS:
            return None

    return negate


def both(left: Fn, right: Fn) -> Fn:
    """``left && right``."""
    return lambda v: left(v) is True and right(v) is True


def either(left: Fn, right: Fn) -> Fn:
    """``left || right``."""
    return lambda v: left(v) is True or right(v) is True


def equal(lf: Fn, rf: Fn) -> Fn:
    """``left == right``."""
    return lambda v: lf(v) == rf(v)


def unequal(lf: Fn, rf: Fn) -> Fn:
    """``left != right``."""
    return lambda v: lf(v) != rf(v)


def name_compared(op: Callable[[Any, Any], bool], name: str, bound: Any) -> Fn:
    """``name op bound`` with a constant ``bound``: the hot path of most rules
    (``orders >= 7``), one closure and no inner calls."""

    def named(values: Values) -> bool:
        value = values[name]
        if value is None:
            return False
        try:
            return bool(op(value, bound))
        except TypeError:
            return False

    return named


def compared(op: Callable[[Any, Any], bool], lf: Fn, rf: Fn) -> Fn:
    """``left op right`` for an ordering ``op``."""

    def compare(values: Values) -> bool:
        a = lf(values)
        if a is None:
            return False
        b = rf(values)
        if b is None:
            return False
        try:
            return bool(op(a, b))
        except TypeError:
            return False

    return compare


def member_of(lf: Fn, rf: Fn) -> Fn:
    """``left in right``."""

    def contains(values: Values) -> bool:
        items = rf(values)
        if not isinstance(items, (list, tuple, dict, frozenset)):
            return False
        try:
            return lf(values) in items
        except TypeError:
            return False

    return contains


def calculated(op: Callable[[Any, Any], Any], lf: Fn, rf: Fn, *, whole: bool) -> Fn:
    """``left op right`` for an arithmetic ``op``; ``whole`` rounds the result down to an
    integer (durations and timestamps are whole milliseconds)."""

    numbers_only = op is not operator.add

    def calculate(values: Values) -> Any:
        a = lf(values)
        if a is None:
            return None
        b = rf(values)
        if b is None:
            return None
        if numbers_only and not (isinstance(a, _NUMBER) and isinstance(b, _NUMBER)):
            # Only a dyn value (event data) gets here as a string or list: Python would
            # repeat it (``'ab' * 10**9``) or %-format it, gigabytes from one event.
            return None
        try:
            result = op(a, b)
            return int(result) if whole else result
        except RUNTIME_ERRORS:
            return None

    return calculate


def chosen(test: Fn, tf: Fn, of: Fn) -> Fn:
    """``test ? then : otherwise``."""
    return lambda v: tf(v) if test(v) is True else of(v)


# --- access --------------------------------------------------------------------------------


def field(tf: Fn, name: str) -> Fn:
    """``target.name``."""

    def get(values: Values) -> Any:
        found = tf(values)
        return found.get(name) if isinstance(found, dict) else None

    return get


def item(tf: Fn, kf: Fn) -> Fn:
    """``target[key]``: a map's entry or a list's item (negative from the end)."""

    def get(values: Values) -> Any:
        found, at = tf(values), kf(values)
        if isinstance(found, dict):
            return found.get(at) if isinstance(at, str) else None
        if isinstance(found, (list, tuple)) and isinstance(at, int):
            return found[at] if -len(found) <= at < len(found) else None
        return None

    return get


def listed(fns: list[Fn]) -> Fn:
    """``[a, b, c]``."""
    return lambda v: tuple(fn(v) for fn in fns)


# --- calls ---------------------------------------------------------------------------------


def has_field(tf: Fn, key: str) -> Fn:
    """``has(target.key)``: the field is there and not null."""

    def has(values: Values) -> bool:
        found = tf(values)
        return isinstance(found, dict) and found.get(key) is not None

    return has


def extreme_of(pick: Callable[[list[Any]], Any], fns: tuple[Fn, ...]) -> Fn:
    """``max(...)`` or ``min(...)`` (``pick``) of the values that are not null."""

    def extreme(values: Values) -> Any:
        present = [value for value in (fn(values) for fn in fns) if value is not None]
        try:
            return pick(present) if present else None
        except TypeError:
            return None

    return extreme


def guarded(function: Callable[[Any], Any], arg: Fn) -> Fn:
    """``function(arg)``, null when ``arg`` is null or ``function`` refuses it."""

    def call(values: Values) -> Any:
        value = arg(values)
        if value is None:
            return None
        try:
            return function(value)
        except RUNTIME_ERRORS:
            return None

    return call


def to_string(value: Any) -> str:
    """``string(value)``: booleans as the language writes them."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def to_int(value: Any) -> int:
    """``int(value)``: a number's whole part, or a numeric string's."""
    return int(float(value)) if isinstance(value, str) else int(value)


def case_changed(change: Callable[[str], str], tf: Fn) -> Fn:
    """``target.lower()`` or ``target.upper()`` (``change``)."""
    return lambda v: change(s) if isinstance(s := tf(v), str) else None


def text_tested(test: Callable[[str, str], bool], tf: Fn, af: Fn) -> Fn:
    """``target.contains(part)`` and the like (``test``), false unless both are strings."""

    def check(values: Values) -> bool:
        text, part = tf(values), af(values)
        return isinstance(text, str) and isinstance(part, str) and bool(test(text, part))

    return check
