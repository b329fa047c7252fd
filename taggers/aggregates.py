"""Aggregate kinds and sliding windows, as pure functions over JSON-native state.

Every kind is a monoid: ``add`` folds one observation into a partial state and ``merge``
combines partials. An unwindowed aggregate keeps one partial; a windowed one keeps one
partial per time bucket (``[[bucket, partial], ...]`` ascending) and merges the buckets
still inside the window when read. States are plain lists, dicts and numbers so that a
profile serialises to JSON as it is (for Redis and replays).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Final

from taggers.durations import DAY_MS, HOUR_MS

State = Any
Value = Any

DEFAULT_LIMIT: Final = 1000
DEFAULT_TOP_LIMIT: Final = 64
MAX_BUCKETS: Final = 1000
LARGEST: Final = sys.float_info.max


@dataclass(frozen=True, slots=True)
class Kind:
    """One aggregate kind: how to fold an observation in, merge partials and read a value.

    ``add(state, value, ts, limit)`` returns the new state; kinds that ``mutate`` change a
    list/dict state in place, the others return the very same state when nothing changed
    (which lets the engine skip rules whose inputs did not move).
    ``result(state, now)`` turns a merged partial into the value rules read.
    ``accepts(value)`` says whether a value can be folded in (a sum takes numbers only);
    the engine counts the values it skips.
    """

    name: str
    needs_value: bool
    windowable: bool
    add: Callable[[State, Value, int, int], State]
    merge: Callable[[list[State], int], State]
    result: Callable[[State, int], Value]
    clock_dependent: bool = False
    mutates: bool = False
    accepts: Callable[[Value], bool] = lambda _value: True


def _none_if_empty(state: State, _now: int) -> Value:
    return state


def _number(value: Value) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _is_number(value: Value) -> bool:
    return _number(value) is not None


def _finite(total: float) -> float:
    """A sum saturates at the largest float rather than becoming infinite: JSON (and so
    Redis) cannot hold an infinity, and every later value would be lost in it."""
    if total > LARGEST:
        return LARGEST
    if total < -LARGEST:
        return -LARGEST
    return total


def _count_add(state: State, _value: Value, _ts: int, _limit: int) -> State:
    return (state or 0) + 1


def _sum_add(state: State, value: Value, _ts: int, _limit: int) -> State:
    number = _number(value)
    if number is None:
        return state
    return _finite((state or 0.0) + number)


def _sum_merge(states: list[State], _limit: int) -> State:
    present = [s for s in states if s is not None]
    return _finite(sum(present)) if present else None


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


def _min_merge(states: list[State], _limit: int) -> State:
    present = [s for s in states if s is not None]
    return min(present) if present else None


def _max_merge(states: list[State], _limit: int) -> State:
    present = [s for s in states if s is not None]
    return max(present) if present else None


def _avg_add(state: State, value: Value, _ts: int, _limit: int) -> State:
    number = _number(value)
    if number is None:
        return state
    if state is None:
        return [number, 1]
    # `or 0.0`: a sum stored as null by a version that let it become infinite
    state[0] = _finite((state[0] or 0.0) + number)
    state[1] += 1
    return state


def _avg_merge(states: list[State], _limit: int) -> State:
    present = [s for s in states if s is not None]
    if not present:
        return None
    return [_finite(sum(s[0] or 0.0 for s in present)), sum(s[1] for s in present)]


def _avg_result(state: State, _now: int) -> Value:
    return None if state is None else (state[0] or 0.0) / state[1]


def _key(value: Value) -> str | None:
    """Values are kept as string keys so that states stay JSON objects."""
    if value is None or isinstance(value, dict | list):
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _has_key(value: Value) -> bool:
    return _key(value) is not None


def _distinct_add(state: State, value: Value, _ts: int, limit: int) -> State:
    key = _key(value)
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
    key = _key(value)
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


def _last_ts_add(state: State, _value: Value, ts: int, _limit: int) -> State:
    return ts if state is None or ts > state else state


def _days_since_result(state: State, now: int) -> Value:
    return None if state is None else max(0.0, (now - state) / DAY_MS)


def _gap_add(state: State, _value: Value, ts: int, _limit: int) -> State:
    if state is None:
        return [ts, ts, 1]
    state[0] = min(state[0], ts)
    state[1] = max(state[1], ts)
    state[2] += 1
    return state


def _gap_merge(states: list[State], _limit: int) -> State:
    present = [s for s in states if s is not None]
    if not present:
        return None
    return [min(s[0] for s in present), max(s[1] for s in present), sum(s[2] for s in present)]


def _gap_result(state: State, _now: int) -> Value:
    # Average gap between consecutive events = span / (n - 1): needs two events.
    if state is None or state[2] < 2:
        return None
    return (state[1] - state[0]) / (state[2] - 1)


def _count_merge(states: list[State], _limit: int) -> State:
    return sum(s for s in states if s is not None) or None


def _count_result(state: State, _now: int) -> Value:
    return state or 0


KINDS: Final[dict[str, Kind]] = {
    kind.name: kind
    for kind in (
        Kind("count", False, True, _count_add, _count_merge, _count_result),
        Kind("sum", True, True, _sum_add, _sum_merge, lambda s, _n: s or 0.0, accepts=_is_number),
        Kind("min", True, True, _min_add, _min_merge, _none_if_empty, accepts=_is_number),
        Kind("max", True, True, _max_add, _max_merge, _none_if_empty, accepts=_is_number),
        Kind(
            "avg", True, True, _avg_add, _avg_merge, _avg_result, mutates=True, accepts=_is_number
        ),
        Kind(
            "distinct",
            True,
            True,
            _distinct_add,
            _distinct_merge,
            _distinct_result,
            mutates=True,
            accepts=_has_key,
        ),
        Kind("top", True, True, _top_add, _top_merge, _top_result, mutates=True, accepts=_has_key),
        Kind("first", True, True, _first_add, _first_merge, _pair_value),
        Kind("last", True, True, _last_add, _last_merge, _pair_value),
        Kind("last_ts", False, True, _last_ts_add, _max_merge, _none_if_empty),
        Kind("avg_gap", False, True, _gap_add, _gap_merge, _gap_result, mutates=True),
        Kind(
            "days_since",
            False,
            False,
            _last_ts_add,
            _max_merge,
            _days_since_result,
            clock_dependent=True,
        ),
    )
}
"""The aggregate kinds rule files may use, by name."""


def bucket_size(window_ms: int) -> int:
    """Bucket width for a window: a day for whole-day windows, else an hour."""
    return DAY_MS if window_ms % DAY_MS == 0 else HOUR_MS


@dataclass(frozen=True, slots=True)
class Window:
    """A sliding window of ``buckets`` buckets of ``bucket_ms``, ending at the current bucket."""

    window_ms: int
    bucket_ms: int
    buckets: int = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "buckets", self.window_ms // self.bucket_ms)

    def first_bucket(self, now: int) -> int:
        """The oldest bucket still inside the window at ``now``."""
        return now // self.bucket_ms - self.buckets + 1

    def add(self, kind: Kind, state: State, value: Value, ts: int, now: int, limit: int) -> State:
        """Fold an observation into its bucket and drop buckets that left the window."""
        bucket = ts // self.bucket_ms
        first = self.first_bucket(now)
        if bucket < first:
            return state  # older than the window: it can never count again
        buckets: list[list[Any]] = state if state is not None else []
        if buckets and buckets[-1][0] == bucket:
            last = buckets[-1]
            last[1] = kind.add(last[1], value, ts, limit)
        else:
            position = len(buckets)
            while position > 0 and buckets[position - 1][0] > bucket:
                position -= 1
            if position > 0 and buckets[position - 1][0] == bucket:
                entry = buckets[position - 1]
                entry[1] = kind.add(entry[1], value, ts, limit)
            else:
                buckets.insert(position, [bucket, kind.add(None, value, ts, limit)])
        return _from(buckets, first)

    def prune(self, buckets: list[list[Any]], now: int) -> list[list[Any]] | None:
        """Drop buckets outside the window; None when nothing is left."""
        return _from(buckets, self.first_bucket(now))

    def value(self, kind: Kind, state: State, now: int, limit: int) -> Value:
        """The aggregate's value over the buckets inside the window at ``now``."""
        if state is None:
            return kind.result(None, now)
        first = self.first_bucket(now)
        if state[0][0] >= first:  # the usual case: pruned when last touched
            inside = [entry[1] for entry in state]
        else:
            inside = [entry[1] for entry in state if entry[0] >= first]
        if len(inside) == 1:
            return kind.result(inside[0], now)
        return kind.result(kind.merge(inside, limit) if inside else None, now)

    def next_change(self, state: State, now: int) -> int | None:
        """When the oldest bucket inside the window leaves it (the value may fall then)."""
        if state is None:
            return None
        first = self.first_bucket(now)
        oldest = state[0][0]
        if oldest >= first:  # the usual case: pruned when last touched
            return int((oldest + self.buckets) * self.bucket_ms)
        for entry in state:
            if entry[0] >= first:
                return int((entry[0] + self.buckets) * self.bucket_ms)
        return None


def _from(buckets: list[list[Any]], first: int) -> list[list[Any]] | None:
    """The buckets from ``first`` on (a new list only if some are dropped), or None."""
    if buckets and buckets[0][0] < first:
        buckets = [entry for entry in buckets if entry[0] >= first]
    return buckets or None


def fold(kind: Kind, observations: Iterable[tuple[Value, int]], limit: int) -> State:
    """Fold observations into one unwindowed state (used to recompute from scratch)."""
    state: State = None
    for value, ts in observations:
        state = kind.add(state, value, ts, limit)
    return state
