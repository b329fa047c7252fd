"""Aggregate kinds and sliding windows, as pure functions over JSON-native state.

Most kinds are monoids: ``add`` folds one observation into a partial state and ``merge``
combines partials. An unwindowed aggregate keeps one partial; a windowed one keeps one
partial per time bucket (see ``window``). States are plain lists, dicts and numbers so
that a profile serialises to JSON as it is (for Redis and replays). Any monoid kind can
also be kept per key (``by:``, see ``keyed``).

``KINDS`` is the registry: every kind is declared once, as a ``Kind`` in the module of
its family (``numbers``, ``values``, ``times``, ``pending``), with its rule-file shape,
result type, limit, windowability and time behaviour. A new kind is a ``Kind`` in one of
those modules (or a new one listed below), a row in docs/rules.md and in the merge
table of docs/identity.md, and its tests; tests/unit/test_registry_aggregates.py says
what is missing.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from taggers.aggregates import numbers, pending, times, values
from taggers.aggregates.keyed import DEFAULT_KEYS, MAX_KEYS, keyed, takes_keys
from taggers.aggregates.kind import DEFAULT_LIMIT, Kind, Option, Shape, State, Ticks, Value
from taggers.aggregates.numbers import LARGEST
from taggers.aggregates.values import DEFAULT_TOP_LIMIT, value_key
from taggers.aggregates.window import MAX_BUCKETS, Window, bucket_size

_DECLARED: Final = (*numbers.DECLARED, *times.DECLARED, *values.DECLARED, pending.PENDING)

KINDS: Final[dict[str, Kind]] = {
    kind.name: kind for shape in ("types", "field") for kind in _DECLARED if kind.shape == shape
}
"""The aggregate kinds rule files may use, by name: those written ``kind: event_types``
first, then those written ``kind: field`` (the order rule-file messages list them in)."""

OPTIONS: Final[dict[str, Option]] = {o.name: o for k in KINDS.values() for o in k.options}
"""Rule-file keys that only some kinds take, by name."""


def fold(kind: Kind, observations: Iterable[tuple[Value, int]], limit: int) -> State:
    """Fold observations into one unwindowed state (used to recompute from scratch)."""
    state: State = None
    for value, ts in observations:
        state = kind.add(state, value, ts, limit)
    return state


__all__ = [
    "DEFAULT_KEYS",
    "DEFAULT_LIMIT",
    "DEFAULT_TOP_LIMIT",
    "KINDS",
    "LARGEST",
    "MAX_BUCKETS",
    "MAX_KEYS",
    "OPTIONS",
    "Kind",
    "Option",
    "Shape",
    "State",
    "Ticks",
    "Value",
    "Window",
    "bucket_size",
    "fold",
    "keyed",
    "takes_keys",
    "value_key",
]
