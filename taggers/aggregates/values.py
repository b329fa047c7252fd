"""Value kinds: distinct, top, first, last (over any field's values)."""

from __future__ import annotations

from typing import Any, Final

from taggers.aggregates.kind import Kind, State, Value
from taggers.expr import DYN, INT, STRING

DEFAULT_TOP_LIMIT: Final = 64


def value_key(value: Value) -> str | None:
    """Values are kept as string keys so that states stay JSON objects."""
    if value is None or isinstance(value, dict | list):
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _has_key(value: Value) -> bool:
    return value_key(value) is not None


def _distinct_add(state: State, value: Value, _ts: int, limit: int) -> State:
    key = value_key(value)
    if key is None:
        return state
    if state is None:
        state = {}
    # Saturates at the limit: the count is exact up to `limit` distinct values.
    if key not in state and len(state) < limit:
        state[key] = 1
    return state


def _distinct_merge(states: list[State], limit: int) -> State:
    merged: dict[str, int] = {}
    for state in states:
        for key in state or ():
            if len(merged) >= limit:
                return merged
            merged[key] = 1
    return merged or None


def _distinct_result(state: State, _now: int) -> Value:
    return 0 if state is None else len(state)


def _top_entry(entry: Any) -> tuple[int, int]:
    """(count, latest time) of one value; a bare count is a state kept before times were
    (it counts as seen at time 0, i.e. before anything newer)."""
    if isinstance(entry, list):
        return entry[0], entry[1]
    return int(entry), 0


def _top_order(item: tuple[str, Any]) -> tuple[int, int, str]:
    """The leader sorts first: most frequent; among equals, the one whose latest
    occurrence is the oldest (it reached that count first); then the smallest value."""
    count, last = _top_entry(item[1])
    return -count, last, item[0]


def _top_add(state: State, value: Value, ts: int, limit: int) -> State:
    key = value_key(value)
    if key is None:
        return state
    if state is None:
        state = {}
    entry = state.get(key)
    if isinstance(entry, list):  # the usual case, in place on this hot path
        entry[0] += 1
        entry[1] = max(entry[1], ts)
    else:
        count, last = _top_entry(entry) if entry is not None else (0, ts)
        state[key] = [count + 1, max(last, ts)]
    if len(state) > limit:
        # Bounded top-k: forget the rarest value (ties: the one seen least recently), so
        # memory stays bounded; frequent values are never the ones dropped.
        rarest = max(state.items(), key=_top_order)[0]
        del state[rarest]
    return state


def _top_merge(states: list[State], limit: int) -> State:
    if len(states) == 1:
        return states[0]
    try:
        merged = _top_sum(states)
    except TypeError:  # bare counts of an older profile among them
        merged = _top_sum(
            [{key: list(_top_entry(entry)) for key, entry in (s or {}).items()} for s in states]
        )
    if len(merged) > limit:
        merged = dict(sorted(merged.items(), key=_top_order)[:limit])
    return merged or None


def _top_sum(states: list[State]) -> dict[str, list[int]]:
    """Counts added up, latest times the latest; a windowed read does this for every
    bucket at each event, so it stays a plain loop."""
    counts: dict[str, int] = {}
    lasts: dict[str, int] = {}
    for state in states:
        if state:
            for key, (count, last) in state.items():
                counts[key] = counts.get(key, 0) + count
                if key not in lasts or last > lasts[key]:
                    lasts[key] = last
    return {key: [count, lasts[key]] for key, count in counts.items()}


def _top_result(state: State, _now: int) -> Value:
    if not state:
        return None
    # A tie never changes the leader: a value that catches up with the leader's count has
    # a later latest occurrence, so it must pass it to lead. The result depends on the
    # events' times only, never on the order they arrived in.
    try:  # every entry a [count, latest] pair: the usual case, without a call per value
        return min(state.items(), key=lambda item: (-item[1][0], item[1][1], item[0]))[0]
    except TypeError:  # bare counts of an older profile among them
        return min(state.items(), key=_top_order)[0]


def _first_add(state: State, value: Value, ts: int, _limit: int) -> State:
    if value is None:
        return state
    return [ts, value] if state is None or ts < state[0] else state


def _last_add(state: State, value: Value, ts: int, _limit: int) -> State:
    if value is None:
        return state
    return [ts, value] if state is None or ts >= state[0] else state


def _first_merge(states: list[State], _limit: int) -> State:
    present = [s for s in states if s is not None]
    return min(present, key=lambda s: s[0]) if present else None


def _last_merge(states: list[State], _limit: int) -> State:
    result = None
    for state in states:
        if state is not None and (result is None or state[0] >= result[0]):
            result = state
    return result


def _pair_value(state: State, _now: int) -> Value:
    return None if state is None else state[1]


DECLARED: Final[tuple[Kind, ...]] = (
    Kind(
        "distinct",
        "field",
        INT,
        _distinct_add,
        _distinct_merge,
        _distinct_result,
        "{distinct: props.sku, of: view, limit: 1000}",
        mutates=True,
        accepts=_has_key,
    ),
    Kind(
        "top",
        "field",
        STRING,
        _top_add,
        _top_merge,
        _top_result,
        "{top: props.category, of: [view, purchase], limit: 64}",
        default_limit=DEFAULT_TOP_LIMIT,
        mutates=True,
        accepts=_has_key,
    ),
    Kind(
        "first",
        "field",
        DYN,
        _first_add,
        _first_merge,
        _pair_value,
        "{first: channel}",
        typed_by_field=True,
    ),
    Kind(
        "last",
        "field",
        DYN,
        _last_add,
        _last_merge,
        _pair_value,
        "{last: props.score, of: survey}",
        typed_by_field=True,
    ),
)
"""The value kinds, in the order rule files list them."""
