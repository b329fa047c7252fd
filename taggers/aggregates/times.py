"""Time kinds: last_ts, avg_gap, days_since (over events' times)."""

from __future__ import annotations

from typing import Final

from taggers.aggregates.kind import Kind, State, Ticks, Value, same_state
from taggers.aggregates.numbers import max_merge
from taggers.durations import DAY_MS
from taggers.expr import DOUBLE, DURATION, TIMESTAMP


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


def _days_since_moved(_state: State, _now: int) -> bool:
    return True  # it steps once a day: every deadline may be a new day


def _next_day(state: State, now: int) -> int | None:
    """The next time the day count steps: a whole number of days after the event."""
    return int(state + ((now - state) // DAY_MS + 1) * DAY_MS)


DECLARED: Final[tuple[Kind, ...]] = (
    Kind("last_ts", "types", TIMESTAMP, _last_ts_add, max_merge, same_state, "{last_ts: purchase}"),
    Kind(
        "avg_gap",
        "types",
        DURATION,
        _gap_add,
        _gap_merge,
        _gap_result,
        "{avg_gap: purchase}",
        mutates=True,
    ),
    Kind(
        "days_since",
        "types",
        DOUBLE,
        _last_ts_add,
        max_merge,
        _days_since_result,
        "{days_since: purchase}",
        windowable=False,
        time=Ticks(_days_since_moved, _next_day),
    ),
)
"""The time kinds, in the order rule files list them."""
