"""The pending kind: open items keyed by a field, each with a due time.

``{pending: props.coupon_id, of: coupon_issued, close: coupon_redeemed, due:
props.expires_at}`` opens an item on an ``of`` event, closes it on a ``close`` event, and
lets it go at its due time. Its value is the number of items not yet due. It is not a
monoid of one value: it folds whole events.

The state is ``{key: [due, reminded, at], ...}``: ``at`` is the time of the event that
last opened or closed the key, and a key that was closed (or came due) keeps a record
``[None, 0, at]``. The records are what lets two profiles of one person merge item by
item: a coupon issued under one id and redeemed, later, under the other ends closed, as
the latest action on each key (by event time) wins. At most ``limit`` items are open (a
new one past that drops the one due soonest) and at most ``limit`` records of closed
keys are kept (the oldest goes). An item stored as ``[due, reminded]`` (before records
were kept) is open, its action time unknown: it counts as older than any other.
"""

from __future__ import annotations

from typing import Any, Final

from taggers.aggregates.kind import Kind, Option, Source, State, Ticks, Value, not_a_monoid
from taggers.aggregates.values import value_key
from taggers.events import BehaviourEvent, to_epoch_ms
from taggers.expr import INT

DEFAULT_PENDING_LIMIT: Final = 100

Item = list[Any]


def _fold(aggregate: Source, state: State, event: BehaviourEvent) -> tuple[State, bool]:
    """Open or close an item; True if the set of open items changed (a close of a key
    that is not open changes only the records)."""
    key = value_key(aggregate.extract(event)) if aggregate.extract else None
    if key is None:
        return state, False
    items: dict[str, Item] = state if state is not None else {}
    changed = False
    if aggregate.types is None or event.type in aggregate.types:
        try:
            due = to_epoch_ms(aggregate.due(event) if aggregate.due else None)
        except ValueError:
            due = None  # no usable due time: nothing to remind about
        if due is not None:
            items[key] = [due, 0, event.ts]
            changed = True
    if event.type in aggregate.close_types:
        found = items.get(key)
        changed = changed or (found is not None and found[0] is not None)
        items[key] = [None, 0, event.ts]
    if len(items) > aggregate.limit:
        _bound(items, aggregate.limit)
    return items or None, changed


def _at(item: Item) -> int:
    """When the key's latest action happened (an item stored without it: before all)."""
    return item[2] if len(item) > 2 else -1


def _bound(items: dict[str, Item], limit: int) -> None:
    """At most ``limit`` open items (the latest due stay) and ``limit`` closed records
    (the latest stay), in place."""
    opened = [key for key, item in items.items() if item[0] is not None]
    if len(opened) > limit:
        opened.sort(key=lambda key: items[key][0], reverse=True)
        for key in opened[limit:]:
            del items[key]
    closed = [key for key, item in items.items() if item[0] is None]
    if len(closed) > limit:
        closed.sort(key=lambda key: items[key][2], reverse=True)
        for key in closed[limit:]:
            del items[key]


def _merge(states: list[State], limit: int) -> State:
    """Item by item, the latest action on each key wins (on a tie the later state's:
    the absorbed profile's events count as after the survivor's at the same time)."""
    present = [s for s in states if s]
    if len(present) <= 1:
        return present[0] if present else None
    merged: dict[str, Item] = {}
    for state in present:
        for key, item in state.items():
            found = merged.get(key)
            if found is None or _at(item) >= _at(found):
                merged[key] = item
    if len(merged) > limit:
        _bound(merged, limit)
    return merged


def _open(state: State, now: int) -> Value:
    return sum(1 for item in (state or {}).values() if item[0] is not None and item[0] > now)


def _moved(state: State, now: int) -> bool:
    return any(item[0] is not None and item[0] <= now for item in state.values())


def _next_due(state: State, now: int) -> int | None:
    return min(
        (item[0] for item in state.values() if item[0] is not None and item[0] > now),
        default=None,
    )


def _expire(state: State, now: int) -> State:
    """Items due by ``now`` become records of when they were opened (an item stored
    without that time just goes)."""
    for key, item in list(state.items()):
        if item[0] is not None and item[0] <= now:
            if len(item) > 2:
                state[key] = [None, 0, item[2]]
            else:
                del state[key]
    return state or None


def reminders_due(state: State, before_ms: int, now: int) -> list[tuple[str, Item]]:
    """The open items, by key, not yet reminded of and due within ``before_ms`` of now;
    a caller that reminds marks each one (``item[1] = 1``)."""
    return [
        (key, item)
        for key, item in sorted((state or {}).items())
        if item[0] is not None and not item[1] and item[0] - before_ms <= now and item[0] > now
    ]


def next_reminders(state: State, before_ms: int, now: int) -> list[int]:
    """When each item not yet reminded of is to be (at the latest now)."""
    return [
        max(item[0] - before_ms, now)
        for item in (state or {}).values()
        if item[0] is not None and not item[1]
    ]


PENDING: Final[Kind] = Kind(
    "pending",
    "field",
    INT,
    not_a_monoid,
    _merge,
    _open,
    "{pending: props.coupon_id, of: coupon_issued, close: coupon_redeemed, due: props.expires_at}",
    windowable=False,
    default_limit=DEFAULT_PENDING_LIMIT,
    time=Ticks(_moved, _next_due, _expire),
    mutates=True,
    options=(
        Option("close", "types", "pending: types that close"),
        Option("due", "field", "pending: field with the due time"),
    ),
    requires=("of", "close", "due"),
    fold_event=_fold,
    description="Open items keyed by this field, e.g. props.coupon_id",
)
