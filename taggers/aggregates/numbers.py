"""Numeric kinds: count, sum, min, max, avg (monoids over numbers)."""

from __future__ import annotations

import sys
from dataclasses import replace
from typing import Final

from taggers.aggregates.kind import Kind, Option, State, Value, same_state
from taggers.expr import DOUBLE, INT

LARGEST: Final = sys.float_info.max


def _number(value: Value) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _is_number(value: Value) -> bool:
    return _number(value) is not None


def finite(total: float) -> float:
    """A sum saturates at the largest float rather than becoming infinite: JSON (and so
    Redis) cannot hold an infinity, and every later value would be lost in it."""
    if total > LARGEST:
        return LARGEST
    if total < -LARGEST:
        return -LARGEST
    return total


def _count_add(state: State, _value: Value, _ts: int, _limit: int) -> State:
    return (state or 0) + 1


def _count_merge(states: list[State], _limit: int) -> State:
    return sum(s for s in states if s is not None) or None


def _count_result(state: State, _now: int) -> Value:
    return state or 0


def _sum_add(state: State, value: Value, _ts: int, _limit: int) -> State:
    number = _number(value)
    if number is None:
        return state
    return finite((state or 0.0) + number)


def _sum_merge(states: list[State], _limit: int) -> State:
    present = [s for s in states if s is not None]
    return finite(sum(present)) if present else None


def _net(kind: Kind) -> Kind:
    """A sum with ``minus`` types: read never below zero (a refund of an order older
    than the window, or of more than was spent, leaves nothing rather than a debt)."""
    result = kind.result
    return replace(kind, result=lambda state, now: max(0.0, result(state, now)))


MINUS: Final = Option(
    "minus",
    "types",
    "sum: event types whose values are subtracted (refunds); the sum is never read below 0",
    adjust=_net,
)


def _min_add(state: State, value: Value, _ts: int, _limit: int) -> State:
    number = _number(value)
    if number is None:
        return state
    return number if state is None or number < state else state


def _max_add(state: State, value: Value, _ts: int, _limit: int) -> State:
    number = _number(value)
    if number is None:
        return state
    return number if state is None or number > state else state


def min_merge(states: list[State], _limit: int) -> State:
    present = [s for s in states if s is not None]
    return min(present) if present else None


def max_merge(states: list[State], _limit: int) -> State:
    present = [s for s in states if s is not None]
    return max(present) if present else None


def _avg_add(state: State, value: Value, _ts: int, _limit: int) -> State:
    number = _number(value)
    if number is None:
        return state
    if state is None:
        return [number, 1]
    # `or 0.0`: a sum stored as null by a version that let it become infinite
    state[0] = finite((state[0] or 0.0) + number)
    state[1] += 1
    return state


def _avg_merge(states: list[State], _limit: int) -> State:
    present = [s for s in states if s is not None]
    if not present:
        return None
    return [finite(sum(s[0] or 0.0 for s in present)), sum(s[1] for s in present)]


def _avg_result(state: State, _now: int) -> Value:
    return None if state is None else (state[0] or 0.0) / state[1]


DECLARED: Final[tuple[Kind, ...]] = (
    Kind(
        "count",
        "types",
        INT,
        _count_add,
        _count_merge,
        _count_result,
        "{count: purchase}",
        counts=True,
    ),
    Kind(
        "sum",
        "field",
        DOUBLE,
        _sum_add,
        _sum_merge,
        lambda s, _n: s or 0.0,
        "{sum: props.amount, of: purchase}",
        accepts=_is_number,
        options=(MINUS,),
    ),
    Kind(
        "min",
        "field",
        DOUBLE,
        _min_add,
        min_merge,
        same_state,
        "{min: props.amount, of: purchase}",
        accepts=_is_number,
    ),
    Kind(
        "max",
        "field",
        DOUBLE,
        _max_add,
        max_merge,
        same_state,
        "{max: props.amount, of: purchase}",
        accepts=_is_number,
    ),
    Kind(
        "avg",
        "field",
        DOUBLE,
        _avg_add,
        _avg_merge,
        _avg_result,
        "{avg: props.amount, of: purchase}",
        mutates=True,
        accepts=_is_number,
    ),
)
"""The numeric kinds, in the order rule files list them."""
