"""Merging two profiles of one person equals replaying both histories as one person.

The property: for a random rule set with an aggregate of every kind in
``taggers.aggregates.KINDS`` (each unwindowed or windowed where the kind takes a window,
kept per key where it ``takes_keys``, with or without a ``where:`` filter, read by a tag
or not, with a timer so that the internal last-seen anchor is there too), and two random
histories H1 under id ``a`` and H2 under id ``b`` whose events all have distinct times:
replay H1 into profile A and H2 into profile B with the engine, advance both to the same
``now`` (the later clock, or later), merge B's aggregate states into A's with
``merge_aggregates``; then every aggregate (timer anchors included) reads at ``now``
what it reads in the profile of ``sorted(H1 + H2)`` replayed as one person. And the
merged profile goes on as that one does: a third history H3 after ``now`` applied to
both leaves every aggregate reading the same again. Floats are compared with a relative
tolerance of 1e-9 (sums add up in another order).

Size: 150 examples; H1 + H2 together 0..60 events (23 on average, both ids in four
examples of five) of six types over ten days, so that the hour and day windows slide and
pending items come due; H3 0..10 events. The bounds (``keys``, ``top``'s and
``pending``'s ``limit``) are above the number of values drawn, as a merge is exact
within them (docs/identity.md), except ``distinct``, whose value is exact at its limit
too (``limit: 2`` is drawn). About 10 s on one core.
"""

from __future__ import annotations

import json
import math
import tempfile
from functools import lru_cache
from pathlib import Path
from typing import Any, Final

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from taggers.aggregates import KINDS, takes_keys
from taggers.durations import DAY_MS, HOUR_MS
from taggers.engine import Engine
from taggers.engine.merging import merge_aggregates
from taggers.events import BehaviourEvent
from taggers.profile import Profile
from taggers.ruleset import load_rules
from tests.support.core import START_MS, event_at

# One rule-file definition per kind; the strategy adds a window, a key, a filter.
BASE: Final[dict[str, dict[str, Any]]] = {
    "count": {"count": ["purchase", "view"]},
    "sum": {"sum": "props.amount", "of": ["purchase", "tip"], "minus": "refund"},
    "min": {"min": "props.amount", "of": ["purchase", "tip"]},
    "max": {"max": "props.amount", "of": ["purchase", "tip"]},
    "avg": {"avg": "props.amount", "of": ["purchase", "tip"]},
    "distinct": {"distinct": "props.sku", "of": "view"},
    "top": {"top": "props.category", "of": ["view", "purchase"]},
    "first": {"first": "channel"},
    "last": {"last": "props.amount", "of": ["purchase", "refund", "tip"]},
    "last_ts": {"last_ts": "purchase"},
    "avg_gap": {"avg_gap": "view"},
    "days_since": {"days_since": "purchase"},
    "pending": {
        "pending": "props.coupon_id",
        "of": "coupon_issued",
        "close": "coupon_redeemed",
        "due": "props.expires_at",
    },
}
TYPES: Final = ("purchase", "view", "refund", "tip", "coupon_issued", "coupon_redeemed")
CATEGORIES: Final = ("美妆", "x", "y")
SPAN_MS: Final = 10 * DAY_MS


def test_every_kind_has_a_definition_here() -> None:
    """A new kind is in the property as soon as it is registered (or this fails)."""
    assert set(BASE) == set(KINDS)
    assert all(next(iter(spec)) == name for name, spec in BASE.items())


@st.composite
def rule_texts(draw: st.DrawFn) -> str:
    """A rule file: an aggregate of every kind (some twice), in a random variant."""
    aggregates: dict[str, dict[str, Any]] = {}
    tags: dict[str, dict[str, str]] = {}
    for name, kind in KINDS.items():
        for copy in range(draw(st.integers(1, 2))):
            spec = dict(BASE[name])
            if kind.windowable and draw(st.booleans()):
                spec["window"] = draw(st.sampled_from(["5h", "2d", "7d"]))
            if takes_keys(kind) and draw(st.booleans()):
                spec["by"] = "props.category"
                spec["keys"] = draw(st.sampled_from([len(CATEGORIES), 64]))
            if draw(st.booleans()):
                spec["where"] = "channel == 'app'"
            if name == "distinct" and draw(st.booleans()):
                spec["limit"] = 2
            label = f"{name}_{copy}"
            aggregates[label] = spec
            if draw(st.booleans()):  # read by a rule: its deadlines run (prune, expire)
                tags["t_" + label] = {"when": f"{label} != null"}
    alerts = {"lapsed": {"since": "purchase", "after": "3d"}}
    return json.dumps({"aggregates": aggregates, "tags": tags, "alerts": alerts})


@lru_cache(maxsize=64)
def engine_for(text: str) -> Engine:
    with tempfile.TemporaryDirectory() as directory:
        (Path(directory) / "rules.yaml").write_text(text, encoding="utf-8")
        return Engine(load_rules(directory))


@st.composite
def events_at(draw: st.DrawFn, times: list[int], users: tuple[str, ...]) -> list[BehaviourEvent]:
    """One random event at each time (ascending), each under one of ``users``."""
    events = []
    for ts in times:
        type_ = draw(st.sampled_from(TYPES))
        props: dict[str, Any] = {"sku": draw(st.sampled_from(["s1", "s2", "s3", "s4"]))}
        if draw(st.booleans()):
            props["category"] = draw(st.sampled_from(CATEGORIES))
        if type_ in ("purchase", "refund"):  # typed: an amount of money is required
            props["amount"] = draw(st.one_of(st.integers(0, 50), st.floats(0, 100)))
        elif type_ == "tip" and draw(st.integers(0, 3)):  # untyped: any value, or none
            props["amount"] = draw(st.one_of(st.integers(-5, 50), st.floats(-9, 9), st.just("?")))
        if type_.startswith("coupon"):
            props["coupon_id"] = draw(st.sampled_from(["k1", "k2", "k3"]))
            delay = draw(st.sampled_from([HOUR_MS, 6 * HOUR_MS, DAY_MS, 3 * DAY_MS]))
            props["expires_at"] = ts + delay
        channel = draw(st.sampled_from(["app", "web", None]))
        user = draw(st.sampled_from(users))
        events.append(event_at(ts, type_, user=user, channel=channel, **props))
    return events


@st.composite
def cases(draw: st.DrawFn) -> tuple[str, list[BehaviourEvent], list[BehaviourEvent], int]:
    """(rules, H1 + H2 interleaved by time, H3 after now, now)."""
    text = draw(rule_texts())
    size = draw(st.integers(0, 60))
    offsets = draw(st.lists(st.integers(0, SPAN_MS), min_size=size, max_size=size, unique=True))
    history = draw(events_at(sorted(START_MS + o for o in offsets), ("a", "b")))
    last = max((e.ts for e in history), default=START_MS)
    now = last + draw(st.sampled_from([0, 1, HOUR_MS, 2 * DAY_MS]))
    size = draw(st.integers(0, 10))
    later = draw(st.lists(st.integers(1, 3 * DAY_MS), min_size=size, max_size=size, unique=True))
    return text, history, draw(events_at(sorted(now + o for o in later), ("a",))), now


def replayed(engine: Engine, user: str, events: list[BehaviourEvent], now: int) -> Profile:
    profile = engine.new_profile(user)
    for event in events:
        engine.apply(profile, event)
    engine.advance(profile, now)
    return profile


def close(found: Any, expected: Any) -> bool:
    """Equal, floats within a relative 1e-9 (in maps too)."""
    if isinstance(found, dict) and isinstance(expected, dict):
        return found.keys() == expected.keys() and all(close(found[k], expected[k]) for k in found)
    if isinstance(found, float) and isinstance(expected, float):
        return math.isclose(found, expected, rel_tol=1e-9, abs_tol=1e-9)
    return bool(found == expected) and type(found) is type(expected)


def differences(engine: Engine, merged: Profile, one: Profile, now: int) -> dict[str, Any]:
    """The aggregates (timer anchors included) whose values differ, with both values."""
    found = {}
    for name in engine.rules.aggregates:
        ours, theirs = engine.value_of(name, merged, now), engine.value_of(name, one, now)
        if not close(ours, theirs):
            found[name] = (ours, theirs)
    return found


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases())
def test_merged_profiles_read_as_both_histories_replayed_as_one(
    case: tuple[str, list[BehaviourEvent], list[BehaviourEvent], int],
) -> None:
    text, history, after, now = case
    engine = engine_for(text)
    first = replayed(engine, "a", [e for e in history if e.user_id == "a"], now)
    second = replayed(engine, "b", [e for e in history if e.user_id == "b"], now)
    one = replayed(engine, "a", history, now)
    aggs = merge_aggregates(engine.plan, first.aggs, second.aggs, now)
    merged = Profile(user_id="a", aggs=aggs, clock=now, events=first.events + second.events)
    assert differences(engine, merged, one, now) == {}
    # It goes on as the one person does (records, bounds and windows intact).
    engine.recompute(merged)
    end = max((e.ts for e in after), default=now)
    for event in after:
        engine.apply(merged, event)
        engine.apply(one, event)
    engine.advance(merged, end)
    engine.advance(one, end)
    assert differences(engine, merged, one, end) == {}
