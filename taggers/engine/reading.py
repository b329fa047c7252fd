"""Reading the values rules read: stage, the step's time, the event, lists, params and
aggregates."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from taggers.events import BehaviourEvent
from taggers.profile import Profile
from taggers.ruleset import NOW, RuleSet

Reader = Callable[[Profile, int, BehaviourEvent | None], Any]


def event_dict(event: BehaviourEvent) -> dict[str, Any]:
    """The event as rules with ``upon:`` read it (``event.props.amount``)."""
    return {
        "event_id": event.event_id,
        "user_id": event.user_id,
        "type": event.type,
        "ts": event.ts,
        "channel": event.channel,
        "props": event.props,
    }


def reader(rules: RuleSet, name: str) -> Reader:
    """How to read one name; built once per name, as this is on every rule's path."""
    if name == "stage":
        return lambda profile, _now, _event: profile.stage
    if name == NOW:
        return lambda _profile, now, _event: now
    if name == "event":
        return lambda _profile, _now, event: None if event is None else event_dict(event)
    if name == "lists":
        lists = rules.lists
        return lambda _profile, _now, _event: lists
    if name in rules.params:
        param = rules.params[name]
        return lambda _profile, _now, _event: param
    aggregate = rules.aggregates[name]
    kind, window, limit, key = aggregate.kind, aggregate.window, aggregate.limit, aggregate.key
    if window is not None:
        return lambda profile, now, _event: window.value(kind, profile.aggs.get(key), now, limit)
    result = kind.result
    return lambda profile, now, _event: result(profile.aggs.get(key), now)
