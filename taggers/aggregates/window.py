"""Sliding windows: an aggregate's partials per time bucket, merged when read.

A windowed aggregate keeps one partial per time bucket (``[[bucket, partial], ...]``
ascending) and merges the buckets still inside the window when read. A bucket of a
window in whole days is a local day of the rule set's time zone (``days``, numbered as
``taggers.localdays`` says: in UTC, ``ts // DAY_MS``); an hour bucket is ``ts // HOUR_MS``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

from taggers.aggregates.kind import Kind, State, Value
from taggers.durations import DAY_MS, HOUR_MS
from taggers.localdays import LocalDays

MAX_BUCKETS: Final = 1000


def bucket_size(window_ms: int) -> int:
    """Bucket width for a window: a day for whole-day windows, else an hour."""
    return DAY_MS if window_ms % DAY_MS == 0 else HOUR_MS


@dataclass(frozen=True, slots=True)
class Window:
    """A sliding window of ``buckets`` buckets of ``bucket_ms``, ending at the current
    bucket; ``days``: the local days of day buckets (None: UTC days, or hour buckets)."""

    window_ms: int
    bucket_ms: int
    days: LocalDays | None = None
    buckets: int = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "buckets", self.window_ms // self.bucket_ms)

    def bucket(self, ts: int) -> int:
        """The bucket of the instant ``ts``."""
        days = self.days
        return ts // self.bucket_ms if days is None else days.day_of(ts)

    def start(self, bucket: int) -> int:
        """The first instant of ``bucket``."""
        days = self.days
        return bucket * self.bucket_ms if days is None else days.start_of(bucket)

    def first_bucket(self, now: int) -> int:
        """The oldest bucket still inside the window at ``now``."""
        days = self.days
        current = now // self.bucket_ms if days is None else days.day_of(now)
        return current - self.buckets + 1

    def add(self, kind: Kind, state: State, value: Value, ts: int, now: int, limit: int) -> State:
        """Fold an observation into its bucket and drop buckets that left the window."""
        days, size = self.days, self.bucket_ms
        bucket = ts // size if days is None else days.day_of(ts)
        # first_bucket, inlined (every event folds into each of its windows); an event
        # is usually the latest of its user, in the bucket of now.
        current = bucket if ts == now else now // size if days is None else days.day_of(now)
        first = current - self.buckets + 1
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
        # first_bucket, inlined: this is read for every windowed value of every step.
        days = self.days
        first = (now // self.bucket_ms if days is None else days.day_of(now)) - self.buckets + 1
        if state[0][0] >= first:  # the usual case: pruned when last touched
            if len(state) == 1:
                return kind.result(state[0][1], now)
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
            return self.start(int(oldest) + self.buckets)
        for entry in state:
            if entry[0] >= first:
                return self.start(int(entry[0]) + self.buckets)
        return None


def _from(buckets: list[list[Any]], first: int) -> list[list[Any]] | None:
    """The buckets from ``first`` on (a new list only if some are dropped), or None."""
    if buckets and buckets[0][0] < first:
        buckets = [entry for entry in buckets if entry[0] >= first]
    return buckets or None
