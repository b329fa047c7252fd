"""Keyed aggregates (``by: props.category``): one state of a kind per key, read as a map.

``keyed(kind, keys)`` wraps any monoid kind: the observations it folds are ``(key,
value)`` pairs (the compiled aggregate's extractor makes them), each folded into its
key's state by the kind's own ``add``; buckets of a window merge key by key with the
kind's own ``merge``; the value read is ``{key: the kind's value}``. No kind is special:
the wrapper only ever calls the wrapped kind's functions.

The state is ``{key: [last_seen, state of the kind]}``, JSON as it is (keys are strings,
``value_key``). Memory is bounded by ``keys``: when a new key would make one too many, the
key least recently seen (the smallest latest event time) goes; among keys seen at the same
time, the largest key (in string order) goes. A window's buckets are each bounded so, and
their merge keeps the ``keys`` most recently seen keys the same way.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Final

from taggers.aggregates.kind import Kind, State, Value
from taggers.expr import map_of

DEFAULT_KEYS: Final = 64
"""The most keys a keyed aggregate keeps unless its ``keys:`` says otherwise."""
MAX_KEYS: Final = 1000
"""The most keys a rule file may ask for (``keys: N``)."""


def _evicted(entries: dict[str, list[Any]]) -> str:
    """The key to forget: the least recently seen; among equals the largest key."""
    return max(entries.items(), key=_rank)[0]


def _rank(item: tuple[str, list[Any]]) -> tuple[int, str]:
    """Keys in the order they are kept: the most recently seen first, then by key."""
    return -item[1][0], item[0]


def _kept(entries: dict[str, list[Any]], keys: int) -> dict[str, list[Any]]:
    """The ``keys`` most recently seen entries (ties: the smallest keys stay)."""
    if len(entries) <= keys:
        return entries
    return dict(sorted(entries.items(), key=_rank)[:keys])


def _merged(kind: Kind, states: list[dict[str, list[Any]]], limit: int) -> dict[str, list[Any]]:
    """The entries of several states merged key by key: the latest time, and the kind's
    merge of the partials. A windowed read merges every bucket at each event: plain
    loops, no call per key."""
    inners: dict[str, list[State]] = {}
    seen: dict[str, int] = {}
    for state in states:
        for key, (last, inner) in state.items():
            found = inners.get(key)
            if found is None:
                inners[key] = [inner]
                seen[key] = last
            else:
                found.append(inner)
                seen[key] = max(seen[key], last)
    inner_merge = kind.merge
    return {
        key: [seen[key], found[0] if len(found) == 1 else inner_merge(found, limit)]
        for key, found in inners.items()
    }


def _added_up(states: list[dict[str, list[Any]]]) -> dict[str, list[Any]] | None:
    """The entries of a kind whose states add up (``Kind.counts``), merged key by key: the
    latest time, and the sum of the partials, as the kind's merge would give it (ints add
    exactly in any order). None if a partial is not a positive int (a state this version
    did not write): the kind's own merge decides then."""
    merged: dict[str, list[Any]] = {}
    for state in states:
        for key, (last, inner) in state.items():
            if inner.__class__ is not int or inner <= 0:
                return None
            entry = merged.get(key)
            if entry is None:
                merged[key] = [last, inner]
            else:
                entry[0] = max(entry[0], last)
                entry[1] += inner
    return merged


def keyed(kind: Kind, keys: int) -> Kind:
    """``kind`` kept per key, at most ``keys`` keys; its value is a map of the kind's values."""

    def add(state: State, observation: Value, ts: int, limit: int) -> State:
        key, value = observation
        entries: dict[str, list[Any]] = state if state is not None else {}
        entry = entries.get(key)
        if entry is None:
            entries[key] = [ts, kind.add(None, value, ts, limit)]
            if len(entries) > keys:
                del entries[_evicted(entries)]
        else:
            entry[0] = max(entry[0], ts)
            entry[1] = kind.add(entry[1], value, ts, limit)
        return entries

    def merge(states: list[State], limit: int) -> State:
        present = [s for s in states if s]
        if len(present) <= 1:
            return present[0] if present else None
        if kind.counts and (totals := _added_up(present)) is not None:
            return _kept(totals, keys)
        return _kept(_merged(kind, present, limit), keys)

    def result(state: State, now: int) -> Value:
        inner_result = kind.result
        values: dict[str, Value] = {}
        for key, (_, inner) in (state or {}).items():
            value = inner_result(inner, now)
            if value is not None:  # a null (an avg_gap of one event) is left out of the map
                values[key] = value
        return values

    return replace(
        kind,
        result_type=map_of(kind.result_type),
        add=add,
        merge=merge,
        result=result,
        mutates=True,
        counts=False,  # its states are maps; ``counts`` is the kind's it keeps per key
        accepts=lambda observation: kind.accepts(observation[1]),
        time=None,
    )


def takes_keys(kind: Kind) -> bool:
    """Whether a kind can be kept per key: a windowable monoid (not pending, days_since)."""
    return kind.windowable and kind.fold_event is None and kind.time is None
