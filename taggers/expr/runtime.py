"""The evaluation functions that compiled expressions are made of, built once per
expression from the functions of its parts; the type checkers choose which.

Run-time rules, so that evaluating never raises:
- null in arithmetic gives null; a comparison (``== != < <= > >= in``) with null is false,
  unless the other side is the literal ``null`` (``x == null`` tests presence, and the
  compiler then uses ``is_null``); null is false where a condition is wanted;
  ``max``/``min`` skip nulls.
- Equality is CEL's: a bool never equals a number, an int equals the same double, lists
  (event arrays and literals alike) are equal item by item, maps key by key.
- A ``dyn`` value of the wrong kind at run time behaves like null; so does an int result
  outside int64 (CEL's overflow error).
- ``/`` divides exactly (``7 / 2`` is 3.5); dividing by zero gives null; ``%`` on ints
  truncates like CEL (``-3 % 5`` is -3).
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from typing import Any, Final

from taggers.events import format_ts
from taggers.expr.checked import Fn, Values

RUNTIME_ERRORS: Final = (TypeError, ValueError, ArithmeticError)
"""What a wrong-kinded value can raise in an operation; the result is then null."""
ORDERING: Final[dict[str, Callable[[Any, Any], bool]]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}
INT_MIN: Final = -(2**63)
INT_MAX: Final = 2**63 - 1
"""CEL's ints are int64: a result past these is null (CEL: an overflow error)."""
_NUMBERS: Final = frozenset({int, float})
_SEQUENCES: Final = frozenset({list, tuple})


def remainder(a: Any, b: Any) -> int:
    """``a % b`` for ints, truncated like CEL and C (``-3 % 5`` is -3, ``43 % -5`` is 3);
    there is no ``%`` on doubles (TypeError, so null)."""
    if a.__class__ is not int or b.__class__ is not int:
        raise TypeError("% works on ints")
    rest = abs(a) % abs(b)
    return -rest if a < 0 else rest


def joined(a: Any, b: Any) -> Any:
    """``a + b``: numbers, strings, or two lists (an event's array and a literal alike)."""
    kind, other = a.__class__, b.__class__
    if kind in _SEQUENCES and other in _SEQUENCES:
        return [*a, *b]
    if (kind is other is str) or (kind in _NUMBERS and other in _NUMBERS):
        return a + b
    raise TypeError("+ joins two numbers, two strings or two lists")


ARITHMETIC: Final[dict[str, Callable[[Any, Any], Any]]] = {
    "+": joined,
    "-": operator.sub,
    "*": operator.mul,
    "/": operator.truediv,
    "%": remainder,
}


def same(a: Any, b: Any) -> bool:
    """CEL's equality of two values that are there: a bool is not a number, an int equals
    the same double, lists are equal item by item and maps key by key (inside them, null
    equals null)."""
    kind, other = a.__class__, b.__class__
    if kind is other and kind not in _SEQUENCES and kind is not dict:
        return bool(a == b)
    if kind in _NUMBERS and other in _NUMBERS:
        return bool(a == b)
    if kind in _SEQUENCES and other in _SEQUENCES:
        return len(a) == len(b) and all(map(same, a, b))
    if kind is dict and other is dict:
        return a.keys() == b.keys() and all(same(value, b[key]) for key, value in a.items())
    return False


def orderable(a: Any, b: Any) -> bool:
    """Whether CEL orders ``a`` and ``b``: two numbers, two strings or two bools (durations
    and timestamps are ints by then)."""
    kind, other = a.__class__, b.__class__
    return (kind in _NUMBERS and other in _NUMBERS) or (kind is other and kind in (str, bool))


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
        if value.__class__ is int:
            return -value if value != INT_MIN else None
        return -value if value.__class__ is float else None

    return negate


def both(left: Fn, right: Fn) -> Fn:
    """``left && right``."""
    return lambda v: left(v) is True and right(v) is True


def either(left: Fn, right: Fn) -> Fn:
    """``left || right``."""
    return lambda v: left(v) is True or right(v) is True


def equal(lf: Fn, rf: Fn, *, negated: bool = False) -> Fn:
    """``left == right`` (``!=`` when ``negated``): false when either is null."""

    def test(values: Values) -> bool:
        a = lf(values)
        if a is None:
            return False
        b = rf(values)
        if b is None:
            return False
        return same(a, b) is not negated

    return test


def equal_to(lf: Fn, bound: Any, *, negated: bool = False) -> Fn:
    """``left == bound`` (``!=`` when ``negated``) with a constant ``bound`` that is there:
    ``stage == 'loyal'``; a string equals only a string, so Python's ``==`` is CEL's."""
    if bound.__class__ is str:
        if negated:
            return lambda v: (a := lf(v)) is not None and a != bound
        return lambda v: lf(v) == bound

    def test(values: Values) -> bool:
        a = lf(values)
        return a is not None and same(a, bound) is not negated

    return test


def is_null(inner: Fn, *, negated: bool = False) -> Fn:
    """``inner == null`` (``!= null`` when ``negated``): the presence tests."""
    if negated:
        return lambda v: inner(v) is not None
    return lambda v: inner(v) is None


class _Nothing:
    """The class of no value: what a name compared with a string or bool may not be."""


def name_compared(op: Callable[[Any, Any], bool], name: str, bound: Any) -> Fn:
    """``name op bound`` with a constant ``bound`` that is there: the hot path of most
    rules (``orders >= 7``), one closure and no inner calls. Only a value that CEL orders
    with ``bound`` compares (a bool is not a number)."""
    numeric = bound.__class__ in _NUMBERS
    kind = bound.__class__

    def named(values: Values) -> bool:
        value = values[name]
        cls = value.__class__
        if cls is kind or (numeric and (cls is int or cls is float)):
            return op(value, bound)  # a bool: these classes compare to one
        return False

    return named


def compared(op: Callable[[Any, Any], bool], lf: Fn, rf: Fn) -> Fn:
    """``left op right`` for an ordering ``op``: false unless CEL orders the two."""

    def compare(values: Values) -> bool:
        a = lf(values)
        if a is None:
            return False
        b = rf(values)
        if b is None:
            return False
        return orderable(a, b) and bool(op(a, b))

    return compare


def member_of(lf: Fn, rf: Fn, *, null: bool = False) -> Fn:
    """``left in right``: an item of a list (by CEL's equality) or a key of a map; false
    when ``left`` is null, unless it is the literal ``null`` (``null``)."""

    def contains(values: Values) -> bool:
        items = rf(values)
        found = lf(values)
        if found is None and not null:
            return False
        if items.__class__ is dict:
            return found.__class__ is str and found in items
        if items.__class__ not in _SEQUENCES:
            return False
        if found.__class__ is str:
            return found in items
        if found is None:
            return None in items
        return any(same(found, item) for item in items if item is not None)

    return contains


def calculated(op: Callable[[Any, Any], Any], lf: Fn, rf: Fn, *, whole: bool) -> Fn:
    """``left op right`` for an arithmetic ``op``; ``whole`` rounds the result down to an
    integer (durations and timestamps are whole milliseconds)."""

    numbers_only = op is not joined

    def calculate(values: Values) -> Any:
        a = lf(values)
        if a is None:
            return None
        b = rf(values)
        if b is None:
            return None
        if numbers_only and not (a.__class__ in _NUMBERS and b.__class__ in _NUMBERS):
            # Only a dyn value (event data) gets here as a string, list or bool: Python
            # would repeat it (``'ab' * 10**9``), %-format it, or count true as 1.
            return None
        try:
            result = int(op(a, b)) if whole else op(a, b)
        except RUNTIME_ERRORS:
            return None
        if result.__class__ is int and not INT_MIN <= result <= INT_MAX:
            return None
        return result

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
        if found.__class__ in _SEQUENCES and at.__class__ is int:
            return found[at] if 0 <= at < len(found) else None
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


_DIGITS: Final = re.compile(r"[+-]?[0-9]+")


def timestamp_text(ms: int) -> str:
    """``string(t)`` of a timestamp, as CEL writes one: RFC 3339 in UTC, fractions of a
    second only when there are some (``2009-02-13T23:31:30Z``)."""
    text = format_ts(ms)  # ...T23:31:30.000Z
    return text[:-5].rstrip(".") + "Z" if text.endswith(".000Z") else text[:-1].rstrip("0") + "Z"


def duration_text(ms: int) -> str:
    """``string(d)`` of a duration, as CEL writes one: seconds, ``1209600s`` or ``1.5s``."""
    seconds, rest = divmod(ms, 1000)
    return f"{seconds}s" if not rest else f"{seconds}.{rest:03d}".rstrip("0") + "s"


def to_int(value: Any) -> int:
    """``int(value)``, as CEL: a double's whole part (truncated toward zero), or a string of
    digits with an optional sign, exactly (``'1e3'``, ``' 12 '``, ``'1_000'`` refuse);
    past int64 it refuses (ValueError, so null), and a bool is not a number."""
    if value.__class__ is str:
        if _DIGITS.fullmatch(value) is None:
            raise ValueError(f"not an int: {value[:40]!r}")
        number = int(value)
    elif value.__class__ is float:
        if not -(2.0**63) < value < 2.0**63:  # NaN too; CEL refuses -2**63.0 as well
            raise ValueError("out of the int range")
        number = int(value)
    elif value.__class__ is int:
        number = value
    else:
        raise TypeError("not a number")
    if not INT_MIN <= number <= INT_MAX:
        raise ValueError("out of the int range")
    return number


def case_changed(change: Callable[[str], str], tf: Fn) -> Fn:
    """``target.lower()`` or ``target.upper()`` (``change``)."""
    return lambda v: change(s) if isinstance(s := tf(v), str) else None


def text_tested(test: Callable[[str, str], bool], tf: Fn, af: Fn) -> Fn:
    """``target.contains(part)`` and the like (``test``), false unless both are strings."""

    def check(values: Values) -> bool:
        text, part = tf(values), af(values)
        return isinstance(text, str) and isinstance(part, str) and bool(test(text, part))

    return check
