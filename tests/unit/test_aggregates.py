"""Aggregates: incremental folding (with windows) equals recomputing from scratch."""

from __future__ import annotations

from collections import Counter
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from taggers.aggregates import KINDS, Window, bucket_size
from taggers.durations import DAY_MS, HOUR_MS

START = 1_767_225_600_000  # 2026-01-01T00:00:00Z

observations = st.lists(
    st.tuples(
        st.sampled_from(["a", "b", "c", "d", 1, 2.5]),
        st.integers(min_value=0, max_value=200 * DAY_MS),
    ),
    max_size=60,
)


def scratch(kind: str, items: list[tuple[Any, int]], now: int) -> Any:
    """The value computed directly from the raw observations (the reference)."""
    numbers = [float(v) for v, _ in items if isinstance(v, int | float)]
    values = [v for v, _ in items]
    if kind == "count":
        return len(items)
    if kind == "sum":
        return sum(numbers) if numbers else 0.0
    if kind == "min":
        return min(numbers) if numbers else None
    if kind == "max":
        return max(numbers) if numbers else None
    if kind == "avg":
        return sum(numbers) / len(numbers) if numbers else None
    if kind == "distinct":
        return len({str(v) for v in values})
    if kind == "top":
        if not items:
            return None
        # Most frequent; ties: the value whose latest occurrence is the oldest; then the
        # smallest value.
        counts = Counter(str(v) for v in values)
        latest = {str(v): max(ts for w, ts in items if str(w) == str(v)) for v in values}
        return min(counts, key=lambda v: (-counts[v], latest[v], v))
    if kind == "first":
        return min(items, key=lambda it: it[1])[0] if items else None
    if kind == "last":
        # The latest timestamp; among equal timestamps the one that arrived last.
        return max(enumerate(items), key=lambda e: (e[1][1], e[0]))[1][0] if items else None
    if kind == "last_ts":
        return max(ts for _, ts in items) if items else None
    if kind == "avg_gap":
        if len(items) < 2:
            return None
        times = [ts for _, ts in items]
        return (max(times) - min(times)) / (len(times) - 1)
    raise AssertionError(kind)


FOLDABLE = [k for k in KINDS if k != "days_since"]


@settings(max_examples=60, deadline=None)
@given(observations, st.sampled_from(FOLDABLE))
def test_incremental_equals_scratch_without_window(items: list[tuple[Any, int]], kind: str) -> None:
    spec = KINDS[kind]
    state: Any = None
    for value, ts in items:
        state = spec.add(state, value, START + ts, 1000)
    now = START + 200 * DAY_MS
    shifted = [(v, START + ts) for v, ts in items]
    assert spec.result(state, now) == scratch(kind, shifted, now)


@settings(max_examples=80, deadline=None)
@given(
    observations,
    st.sampled_from(FOLDABLE),
    st.sampled_from([7 * DAY_MS, 30 * DAY_MS, 90 * DAY_MS, 12 * HOUR_MS]),
    st.integers(min_value=0, max_value=60 * DAY_MS),
)
def test_windowed_incremental_equals_scratch(
    items: list[tuple[Any, int]], kind: str, window_ms: int, later: int
) -> None:
    """Events arrive in time order; the clock may move on past the last one."""
    spec = KINDS[kind]
    window = Window(window_ms, bucket_size(window_ms))
    ordered = sorted(((v, START + ts) for v, ts in items), key=lambda it: it[1])
    state: Any = None
    now = START
    for value, ts in ordered:
        now = max(now, ts)
        state = window.add(spec, state, value, ts, now, 1000)
    now += later
    first_bucket = window.first_bucket(now)
    inside = [(v, ts) for v, ts in ordered if ts // window.bucket_ms >= first_bucket]
    assert window.value(spec, state, now, 1000) == scratch(kind, inside, now)


@settings(max_examples=40, deadline=None)
@given(observations, st.sampled_from([7 * DAY_MS, 30 * DAY_MS]))
def test_next_change_is_when_the_value_can_fall(
    items: list[tuple[Any, int]], window_ms: int
) -> None:
    spec = KINDS["count"]
    window = Window(window_ms, bucket_size(window_ms))
    ordered = sorted(((v, START + ts) for v, ts in items), key=lambda it: it[1])
    state: Any = None
    now = START
    for value, ts in ordered:
        now = max(now, ts)
        state = window.add(spec, state, value, ts, now, 1000)
    change = window.next_change(state, now)
    if change is None:
        assert window.value(spec, state, now, 1000) == 0
        return
    assert change > now
    assert window.value(spec, state, change - 1, 1000) == window.value(spec, state, now, 1000)
    assert window.value(spec, state, change, 1000) < window.value(spec, state, now, 1000)


def test_distinct_saturates_at_its_limit() -> None:
    spec = KINDS["distinct"]
    state: Any = None
    for i in range(50):
        state = spec.add(state, f"sku{i}", START, 10)
    assert spec.result(state, START) == 10


def test_top_keeps_memory_bounded_and_the_frequent_value() -> None:
    spec = KINDS["top"]
    state: Any = None
    for i in range(500):
        state = spec.add(state, "美妆", START, 8)
        state = spec.add(state, f"rare{i}", START, 8)
    assert len(state) <= 8
    assert spec.result(state, START) == "美妆"


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from(["数码", "家居", "美妆"]), min_size=1, max_size=40))
def test_top_keeps_its_leader_on_a_tie(values: list[str]) -> None:
    """Seen in time order, the leader changes only when another value passes its count:
    never on a tie (interest_数码 -> interest_家居 -> interest_数码 within minutes)."""
    spec = KINDS["top"]
    window = Window(30 * DAY_MS, DAY_MS)
    for windowed in (False, True):
        state: Any = None
        counts: Counter[str] = Counter()
        leader: str | None = None
        for minute, value in enumerate(values):
            ts = START + minute * 60_000
            counts[value] += 1
            if windowed:
                state = window.add(spec, state, value, ts, ts, 64)
                got = window.value(spec, state, ts, 64)
            else:
                state = spec.add(state, value, ts, 64)
                got = spec.result(state, ts)
            if leader is None or counts[value] > counts[leader]:
                leader = value
            assert got == leader


def test_top_reads_a_state_kept_before_it_kept_times() -> None:
    spec = KINDS["top"]
    state = {"家居": 2, "数码": 1}  # an older profile's bare counts
    assert spec.result(state, START) == "家居"
    state = spec.add(state, "数码", START, 64)
    assert spec.result(state, START) == "家居"  # a tie: the older leader stays
    state = spec.add(state, "数码", START, 64)
    assert spec.result(state, START) == "数码"
    assert spec.merge([{"a": 1}, {"a": [2, START], "b": [3, START]}], 64) == {
        "a": [3, START],
        "b": [3, START],
    }


def test_days_since_depends_on_the_clock() -> None:
    spec = KINDS["days_since"]
    state = spec.add(None, None, START, 1)
    assert spec.result(state, START + 3 * DAY_MS) == 3.0
    assert spec.clock_dependent


def test_events_older_than_the_window_are_ignored() -> None:
    spec = KINDS["sum"]
    window = Window(7 * DAY_MS, DAY_MS)
    now = START + 30 * DAY_MS
    state = window.add(spec, None, 5.0, START, now, 1000)
    assert state is None
    assert window.value(spec, state, now, 1000) == 0.0
