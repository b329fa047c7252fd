"""The pending kind: open items keyed by a field, each with a due time.

``{pending: props.coupon_id, of: coupon_issued, close: coupon_redeemed, due:
props.expires_at}`` opens an item on an ``of`` event, closes it on a ``close`` event, and
lets it go at its due time. The state is ``{key: [due, reminded], ...}``; its value is
the number of items not yet due. It is not a monoid of one value: it folds whole events.
"""

from __future__ import annotations

from typing import Any, Final

from taggers.aggregates.kind import Kind, Option, Source, State, Ticks, Value, not_a_monoid
from taggers.aggregates.values import value_key
from taggers.events import BehaviourEvent, to_epoch_ms
from taggers.expr import INT

DEFAULT_PENDING_LIMIT: Final = 100


def _fold(aggregate: Source, state: State, event: BehaviourEvent) -> tuple[State, bool]:
    """Open or close an item; True if the set of open items changed."""
    key = value_key(aggregate.extract(event)) if aggregate.extract else None
    if key is None:
        return state, False
    items: dict[str, list[int]] = state if state is not None else {}
    changed = False
    if aggregate.types is None or event.type in aggregate.types:
        try:
            due = to_epoch_ms(aggregate.due(event) if aggregate.due else None)
        except ValueError:
            due = None  # no usable due time: nothing to remind about
        if due is not None:
            items[key] = [due, 0]
            changed = True
            if len(items) > aggregate.limit:
                del items[min(items, key=lambda k: items[k][0])]
    if event.type in aggregate.close_types and items.pop(key, None) is not None:
        changed = True
    return items or None, changed


def _open(state: State, now: int) -> Value:
    return sum(1 for item in (state or {}).values() if item[0] > now)


def _moved(state: State, now: int) -> bool:
    return any(item[0] <= now for item in state.values())


def _next_due(state: State, now: int) -> int | None:
    return min((item[0] for item in state.values() if item[0] > now), default=None)


def _expire(state: State, now: int) -> State:
    for key in [k for k, item in state.items() if item[0] <= now]:
        del state[key]
    return state or None


def reminders_due(state: State, before_ms: int, now: int) -> list[tuple[str, list[Any]]]:
    """The open items, by key, not yet reminded of and due within ``before_ms`` of now;
    a caller that reminds marks each one (``item[1] = 1``)."""
    return [
        (key, item)
        for key, item in sorted((state or {}).items())
        if not item[1] and item[0] - before_ms <= now and item[0] > now
    ]


def next_reminders(state: State, before_ms: int, now: int) -> list[int]:
    """When each item not yet reminded of is to be (at the latest now)."""
    return [max(due - before_ms, now) for due, reminded in (state or {}).values() if not reminded]


PENDING: Final = Kind(
    "pending",
    "field",
    INT,
    not_a_monoid,
    not_a_monoid,
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
