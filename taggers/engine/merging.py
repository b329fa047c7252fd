"""Merging the aggregate states of two profiles of one person (an identity merge).

``merge_aggregates`` combines ``profile.aggs`` of the surviving and the absorbed profile
so that every aggregate reads as if both event histories had been folded into one
profile: each kind declares how two of its states combine (``Kind.merge``: counts and
sums add, min/max and first/last by value and event time, distinct sets union within
their limit, top-k adds counts, pending takes the latest action on each item, a keyed
aggregate merges key by key within ``keys``); a windowed aggregate merges bucket by
bucket and is then pruned at ``now``. docs/identity.md has the table, and what is exact
when a bound (``limit``, ``keys``) is reached.

Every key the engine writes into ``profile.aggs`` is an aggregate of the plan, under its
``Aggregate.key``: the declared ones and the internal last-seen times timers count from
(``_last:TYPES``, ``last_ts`` aggregates, so the later time wins). A key the plan does
not define (the state of a definition since changed or removed) is dropped, as
``Engine.recompute`` drops it: without its definition nothing says how it merges, and
no rule reads it.

The survivor's states come first: at equal event times the absorbed profile's events
count as the later ones (as ``sorted(survivor's + absorbed's, by time)`` orders them).
"""

from __future__ import annotations

from typing import Any

from taggers.aggregates import Kind, State, Window
from taggers.engine.plan import Plan


def merge_aggregates(
    plan: Plan, survivor: dict[str, Any], absorbed: dict[str, Any], now: int
) -> dict[str, Any]:
    """The merged ``profile.aggs`` of two profiles of one person, as of ``now`` (the
    later of their clocks). Both arguments are consumed: the result may hold their
    very states, changed."""
    merged: dict[str, Any] = {}
    for aggregate in plan.rules.aggregates.values():
        key = aggregate.key
        ours, theirs = survivor.get(key), absorbed.get(key)
        if aggregate.window is not None:
            state = merge_buckets(
                aggregate.window, aggregate.kind, ours, theirs, now, aggregate.limit
            )
        elif ours is None or theirs is None:
            state = theirs if ours is None else ours
        else:
            state = aggregate.kind.merge([ours, theirs], aggregate.limit)
        if state is not None:
            merged[key] = state
    return merged


def merge_buckets(
    window: Window, kind: Kind, ours: State, theirs: State, now: int, limit: int
) -> State:
    """Two windowed states merged bucket by bucket (a bucket both have merges as the
    kind says), in bucket order, without the buckets out of the window at ``now``."""
    by_bucket: dict[int, list[State]] = {}
    for buckets in (ours or (), theirs or ()):
        for bucket, state in buckets:
            by_bucket.setdefault(bucket, []).append(state)
    merged = [
        [bucket, states[0] if len(states) == 1 else kind.merge(states, limit)]
        for bucket, states in sorted(by_bucket.items())
    ]
    return window.prune(merged, now)
