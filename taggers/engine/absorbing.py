"""Absorbing one profile into another of the same person: the state they combine into,
and what the merged person's rules then decide.

Aggregates merge kind by kind (``merging``), so that the merged aggregates are those of
both histories replayed as one person. What the rules decided is not merged but decided
again from the merged values: the survivor's tags are the starting point, and only what
changes for the survivor goes out (a tag gained or lost, at most one transition); an edge
alert that was on in either profile stays on rather than firing again.
"""

from __future__ import annotations

from typing import Any

from taggers.engine.merging import merge_aggregates
from taggers.engine.plan import Plan
from taggers.profile import RECENT_EVENT_IDS, Profile


def absorb_state(plan: Plan, survivor: Profile, absorbed: Profile, now: int) -> None:
    """Fold ``absorbed``'s state into ``survivor`` in place, as of ``now`` (both advanced
    to it): everything but the tags, which the rules decide afresh.

    The stage is the one of the profile active last (the later clock; ties: the
    survivor's): it reflects what the person did most recently."""
    survivor.aggs = merge_aggregates(plan, survivor.aggs, absorbed.aggs, now)
    if (absorbed.clock > survivor.clock and absorbed.stage is not None) or survivor.stage is None:
        survivor.stage, survivor.stage_since = absorbed.stage, absorbed.stage_since
    survivor.clock = max(survivor.clock, absorbed.clock, now)
    survivor.events += absorbed.events
    recent = survivor.recent_ids
    recent.extend(i for i in absorbed.recent_ids if i not in recent)
    del recent[:-RECENT_EVENT_IDS]
    for name in absorbed.alerts_on:
        survivor.alerts_on.setdefault(name, 1)
    survivor.fired = merge_fired(survivor.fired, absorbed.fired)
    survivor.consent = later_consent(survivor.consent, absorbed.consent)
    joined = [absorbed.user_id, *absorbed.ids]
    survivor.ids.extend(i for i in joined if i not in survivor.ids and i != survivor.user_id)


def merge_fired(survivor: dict[str, Any], absorbed: dict[str, Any]) -> dict[str, Any]:
    """Timer latches and calendar dates of both: a latch holds the anchor (or date) it
    fired for, so the later one is the one that still counts."""
    merged = dict(survivor)
    for key, value in absorbed.items():
        mine = merged.get(key)
        if mine is None:
            merged[key] = value
        elif isinstance(mine, int | float) and isinstance(value, int | float):
            merged[key] = max(mine, value)
    return merged


def later_consent(first: list[Any] | None, second: list[Any] | None) -> list[Any] | None:
    """The later of two consents (``[ts, "out"|"in"]``); at the same time, "out" wins."""
    if first is None:
        return second
    if second is None:
        return first
    return max(first, second, key=lambda c: (c[0], c[1] == "out"))
