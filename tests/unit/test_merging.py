"""How two profiles' aggregate states merge, kind by kind (where other systems fail: counts
unioned instead of added, first/last by arrival, pending items opened under one id and
closed under the other), and pending's records in stored profiles of before."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from taggers.aggregates import KINDS, Window, keyed
from taggers.durations import DAY_MS
from taggers.engine import Engine
from taggers.engine.merging import merge_aggregates, merge_buckets
from taggers.events import BehaviourEvent
from taggers.outputs import Alert
from taggers.profile import Profile
from taggers.ruleset import load_rules
from tests.support.core import START_MS, make_event

RULES = """
aggregates:
  orders: {count: purchase}
  orders_by: {count: purchase, by: props.category}
  spend: {sum: props.amount, of: purchase}
  smallest: {min: props.amount, of: purchase}
  largest: {max: props.amount, of: purchase}
  basket: {avg: props.amount, of: purchase}
  skus: {distinct: props.sku, of: view}
  skus_2: {distinct: props.sku, of: view, limit: 2}
  favourite: {top: props.category, of: view}
  first_channel: {first: channel}
  last_channel: {last: channel}
  last_order: {last_ts: purchase}
  order_gap: {avg_gap: purchase}
  idle: {days_since: purchase}
  views_2d: {count: view, window: 2d}
  coupons:
    pending: props.coupon_id
    of: coupon_issued
    close: coupon_redeemed
    due: props.expires_at
alerts:
  lapsed: {since: purchase, after: 30d}
  coupon_unused: {pending: coupons, before: 1d}
"""


@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    (tmp_path / "rules.yaml").write_text(RULES, encoding="utf-8")
    return Engine(load_rules(tmp_path))


def day(n: float) -> int:
    return START_MS + int(n * DAY_MS)


def purchase(at: float, amount: float, category: str = "x", user: str = "a") -> BehaviourEvent:
    return make_event("purchase", user=user, day=at, amount=amount, category=category)


def view(at: float, sku: str, category: str = "x", channel: str = "app") -> BehaviourEvent:
    return make_event("view", day=at, sku=sku, category=category, channel=channel)


def issued(at: float, coupon: str, due: float) -> BehaviourEvent:
    return make_event("coupon_issued", day=at, coupon_id=coupon, expires_at=day(due))


def redeemed(at: float, coupon: str) -> BehaviourEvent:
    return make_event("coupon_redeemed", day=at, coupon_id=coupon)


def merged_values(
    engine: Engine, first: list[BehaviourEvent], second: list[BehaviourEvent], now: int
) -> dict[str, Any]:
    """Every aggregate's value once the profiles of ``first`` and ``second`` merge."""
    profiles = []
    for user, events in (("a", first), ("b", second)):
        profile = engine.new_profile(user)
        for event in events:
            engine.apply(profile, event)
        engine.advance(profile, now)
        profiles.append(profile)
    aggs = merge_aggregates(engine.plan, profiles[0].aggs, profiles[1].aggs, now)
    return engine.aggregate_values(Profile(user_id="a", aggs=aggs, clock=now), now)


def test_counts_and_sums_add_rather_than_union(engine: Engine) -> None:
    values = merged_values(
        engine,
        [purchase(1, 10), purchase(2, 20, "y")],
        [purchase(3, 60), purchase(4, 10)],
        day(5),
    )
    assert values["orders"] == 4
    assert values["orders_by"] == {"x": 3, "y": 1}
    assert values["spend"] == 100.0
    assert (values["smallest"], values["largest"]) == (10.0, 60.0)
    assert values["basket"] == 25.0  # 100 / 4, not the mean of the two means (15 and 35)
    assert values["order_gap"] == DAY_MS  # days 1..4, three gaps of a day
    assert values["last_order"] == day(4)
    assert values["idle"] == 1.0


def test_distinct_sets_union_within_their_limit(engine: Engine) -> None:
    values = merged_values(
        engine, [view(1, "s1"), view(2, "s2")], [view(3, "s2"), view(4, "s3")], day(5)
    )
    assert values["skus"] == 3  # s2 once
    assert values["skus_2"] == 2  # at its limit, as one person with three skus reads


def test_first_and_last_go_by_event_time_not_by_profile(engine: Engine) -> None:
    later = [view(2, "s1", channel="app"), view(5, "s1", channel="app")]
    earlier = [view(1, "s1", channel="web"), view(3, "s1", channel="store")]
    values = merged_values(engine, later, earlier, day(6))
    assert values["first_channel"] == "web"  # the absorbed profile's, the earliest event
    assert values["last_channel"] == "app"  # the survivor's, the latest event


@pytest.mark.parametrize(("name", "expected"), [("first", "ours"), ("last", "theirs")])
def test_at_the_same_millisecond_the_absorbed_events_count_as_later(
    name: str, expected: str
) -> None:
    kind = KINDS[name]
    ours, theirs = kind.add(None, "ours", 5, 1), kind.add(None, "theirs", 5, 1)
    assert kind.result(kind.merge([ours, theirs], 1), 5) == expected


def test_top_adds_counts_and_keeps_its_tie_rule(engine: Engine) -> None:
    values = merged_values(
        engine,
        [view(1, "s", "x"), view(2, "s", "x"), view(3, "s", "y")],
        [view(4, "s", "y"), view(5, "s", "y")],
        day(6),
    )
    assert values["favourite"] == "y"  # 3 against 2: each profile alone had another view
    tied = merged_values(
        engine,
        [view(1, "s", "x"), view(4, "s", "x")],
        [view(2, "s", "y"), view(3, "s", "y")],
        day(6),
    )
    assert tied["favourite"] == "y"  # 2 each: y reached 2 first (day 3, x on day 4)


def test_a_window_merges_bucket_by_bucket_and_is_pruned_at_now() -> None:
    window = Window(2 * DAY_MS, DAY_MS)
    count = KINDS["count"]
    ours = [[day(1) // DAY_MS, 2], [day(3) // DAY_MS, 1]]
    theirs = [[day(0) // DAY_MS, 5], [day(2) // DAY_MS, 4], [day(3) // DAY_MS, 3]]
    merged = merge_buckets(window, count, ours, theirs, day(3), 1000)
    assert merged == [[day(2) // DAY_MS, 4], [day(3) // DAY_MS, 4]]
    assert merge_buckets(window, count, ours, None, day(9), 1000) is None


def test_a_windowed_count_of_both_profiles(engine: Engine) -> None:
    values = merged_values(
        engine, [view(0, "s"), view(2.5, "s")], [view(1.5, "s"), view(2.6, "s")], day(2.9)
    )
    assert values["views_2d"] == 3  # day 0 is out of the window; day 1.5 is in


def test_keyed_keeps_the_most_recently_seen_keys_past_its_bound() -> None:
    """Past ``keys`` the merge keeps the keys seen last, as the fold does (exact only
    within the bound: docs/identity.md)."""
    kind = keyed(KINDS["count"], 2)
    ours = kind.add(kind.add(None, ("x", None), 1, 1000), ("y", None), 5, 1000)
    theirs = kind.add(kind.add(None, ("x", None), 2, 1000), ("z", None), 3, 1000)
    # x was seen at 1 and 2, z at 3, y at 5: x goes (as it would for one person)
    assert kind.result(kind.merge([ours, theirs], 1000), 9) == {"y": 1, "z": 1}


def test_a_coupon_issued_under_one_id_and_redeemed_under_the_other_is_closed(
    engine: Engine,
) -> None:
    values = merged_values(engine, [issued(1, "k1", 9)], [redeemed(2, "k1")], day(3))
    assert values["coupons"] == 0
    # Either way round: the survivor redeemed what the absorbed id was issued.
    assert merged_values(engine, [redeemed(2, "k1")], [issued(1, "k1", 9)], day(3))["coupons"] == 0


def test_the_latest_action_on_a_coupon_wins(engine: Engine) -> None:
    # Redeemed before it was issued again: open.
    assert merged_values(engine, [issued(3, "k1", 9)], [redeemed(2, "k1")], day(4))["coupons"] == 1
    # Issued again under the other id after the redemption: open.
    first = [issued(1, "k1", 9), redeemed(2, "k1")]
    assert merged_values(engine, first, [issued(3, "k1", 9)], day(4))["coupons"] == 1
    # Re-issued under one id with an earlier due time that has passed: the older issue
    # under the other id (due later) does not bring it back.
    values = merged_values(engine, [issued(2, "k1", 3)], [issued(1, "k1", 9)], day(4))
    assert values["coupons"] == 0


def test_pending_records_of_closed_keys_are_bounded(tmp_path: Path) -> None:
    (tmp_path / "rules.yaml").write_text(
        "aggregates:\n  coupons: {pending: props.coupon_id, of: coupon_issued,"
        " close: coupon_redeemed, due: props.expires_at, limit: 2}\n",
        encoding="utf-8",
    )
    engine = Engine(load_rules(tmp_path))
    profile = engine.new_profile("a")
    for n, coupon in enumerate(["k1", "k2", "k3", "k4"]):
        engine.apply(profile, issued(n, coupon, 10 + n))
    engine.apply(profile, redeemed(5, "k9"))  # not open: only its record is kept
    for n, coupon in enumerate(["k1", "k2", "k3"]):
        engine.apply(profile, redeemed(6 + n, coupon))
    state = next(iter(profile.aggs.values()))
    assert {key: item[0] is None for key, item in state.items()} == {
        "k4": False,  # the open ones: at most 2, the latest due stay (k3 then closed)
        "k2": True,  # the closed ones: at most 2, the latest stay
        "k3": True,
    }
    assert engine.value_of("coupons", profile, day(9)) == 1


def test_a_stored_pending_item_of_before_still_counts_reminds_merges_and_expires(
    engine: Engine,
) -> None:
    key = engine.rules.aggregates["coupons"].key
    old = Profile(user_id="a", aggs={key: {"k1": [day(5), 0]}}, clock=day(1), due=day(4))
    assert engine.value_of("coupons", old, day(1)) == 1
    outputs = engine.advance(old, day(4))  # its reminder, a day before it is due
    assert [(o.name, o.details["key"]) for o in outputs if isinstance(o, Alert)] == [
        ("coupon_unused", "k1")
    ]
    assert old.due == day(5)
    # It counts as older than any recorded action, and as open against nothing.
    closed = {key: {"k1": [None, 0, day(0)]}}
    assert merge_aggregates(engine.plan, old.aggs, closed, day(4)) == closed
    assert merge_aggregates(engine.plan, {key: {"k1": [day(5), 1]}}, {}, day(4)) == {
        key: {"k1": [day(5), 1]}
    }
    engine.advance(old, day(5))
    assert key not in old.aggs  # it came due and went, as before


def test_timer_anchors_merge_as_the_later_time_and_unknown_state_goes(engine: Engine) -> None:
    anchor = engine.rules.aggregates["_last:purchase"].key
    ours = {anchor: day(3), "gone@123456": 7}
    theirs = {anchor: day(5), "gone@abcdef": [1, 2]}
    assert merge_aggregates(engine.plan, ours, theirs, day(6)) == {anchor: day(5)}


def test_a_merge_of_every_aggregate_with_nothing_changes_no_value(engine: Engine) -> None:
    events = [
        purchase(1, 10),
        view(1.5, "s1"),
        issued(2, "k1", 9),
        redeemed(2.5, "k2"),
        purchase(3, 5, "y"),
    ]
    profile = engine.new_profile("a")
    for event in events:
        engine.apply(profile, event)
    expected = engine.aggregate_values(profile, day(4))
    aggs = merge_aggregates(engine.plan, dict(profile.aggs), {}, day(4))
    assert engine.aggregate_values(Profile(user_id="a", aggs=aggs), day(4)) == expected
    aggs = merge_aggregates(engine.plan, {}, dict(profile.aggs), day(4))
    assert engine.aggregate_values(Profile(user_id="a", aggs=aggs), day(4)) == expected
