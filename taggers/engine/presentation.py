"""A profile as people and marketing systems read it: stage, tags with why and since
when, and every declared aggregate's value (JSON-ready: values in their JSON form,
``taggers.display.json_value``)."""

from __future__ import annotations

from typing import Any

from taggers.display import json_values
from taggers.engine.plan import Plan
from taggers.events import format_ts
from taggers.profile import Profile


def _iso(ms: int | None) -> str | None:
    return None if ms is None else format_ts(ms)


def aggregate_values(plan: Plan, profile: Profile, now: int | None = None) -> dict[str, Any]:
    """Every declared aggregate's value for a profile (internal timer anchors left out)."""
    at = profile.clock if now is None else now
    readers = plan.readers
    return {
        name: readers[name](profile, at, None)
        for name in plan.rules.aggregates
        if not name.startswith("_")
    }


def describe(plan: Plan, profile: Profile, now: int | None = None) -> dict[str, Any]:
    """A profile as people and marketing systems read it (JSON-ready)."""
    types = plan.rules.types
    lifecycle = plan.rules.lifecycle
    stages = lifecycle.stages if lifecycle else {}
    return {
        "user_id": profile.user_id,
        "ids": list(profile.ids),
        "opted_out": profile.opted_out,
        "stage": profile.stage,
        "stage_display": stages.get(profile.stage or ""),
        "stage_since": _iso(profile.stage_since),
        "tags": {
            name: {
                "display": record.get("display"),
                "since": format_ts(record["since"]),
                "expires": _iso(record.get("expires")),
                "rule": record.get("rule"),
                "version": record.get("version"),
                "when": record.get("when"),
                "values": json_values(record.get("values") or {}, types),
            }
            for name, record in sorted(profile.tags.items())
        },
        "aggregates": json_values(aggregate_values(plan, profile, now), types),
        "events": profile.events,
        "next_deadline": _iso(profile.due),
    }
