"""Filters (``where:``), keys (``by:``/``keys:``) and net sums (``minus:``) on aggregates,
and families whose value is a list: what they fold, what they read, and the problems a
rule file with them gets at file:line:column."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from taggers.aggregates import KINDS, Window, bucket_size, fold, keyed
from taggers.durations import DAY_MS
from taggers.engine import Engine
from taggers.engine.tags import MAX_FAMILY_MEMBERS
from taggers.events import BehaviourEvent
from taggers.expr import INT, map_of
from taggers.outputs import Output, TagChange
from taggers.ruleset import RuleSet, load_rules
from taggers.yaml_source import RuleSetError
from tests.support.core import START_MS, make_event


def rules_of(tmp_path: Path, text: str) -> RuleSet:
    (tmp_path / "rules.yaml").write_text(text, encoding="utf-8")
    return load_rules(tmp_path)


def problems_of(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(RuleSetError) as caught:
        rules_of(tmp_path, text)
    return [str(problem) for problem in caught.value.problems]


def values_after(rules: RuleSet, events: list[BehaviourEvent], until: int | None = None) -> Any:
    engine = Engine(rules)
    profile = engine.new_profile("u1")
    for event in events:
        engine.apply(profile, event)
    if until is not None:
        engine.advance(profile, until)
    return engine.aggregate_values(profile, until)


def changes_of(outputs: list[Output]) -> list[tuple[str, str]]:
    """The tag changes among outputs, as (op, tag)."""
    return [(o.op, o.tag) for o in outputs if isinstance(o, TagChange)]


def purchase(day: float, category: str | None, amount: float = 10.0) -> BehaviourEvent:
    props: dict[str, Any] = {"amount": amount}
    if category is not None:
        props["category"] = category
    return make_event("purchase", day=day, **props)


# --- where --------------------------------------------------------------------------------


def test_a_filter_decides_which_events_feed_the_aggregate(tmp_path: Path) -> None:
    rules = rules_of(
        tmp_path,
        "params:\n  beauty: 美妆\n"
        "aggregates:\n"
        '  beauty_30d: {count: purchase, where: "props.category == beauty", window: 30d}\n'
        "  beauty_spend: {sum: props.amount, of: purchase, where: \"props.category == '美妆'\"}\n"
        "  on_wecom: {count: '*', where: \"channel == 'wecom' && type != 'view'\"}\n",
    )
    events = [
        purchase(0, "美妆", 30),
        purchase(1, "食品", 5),
        purchase(2, "美妆", 12),
        purchase(3, None),
        make_event("view", day=3, channel="wecom"),
        make_event("share", day=4, channel="wecom"),
    ]
    assert values_after(rules, events) == {"beauty_30d": 2, "beauty_spend": 42.0, "on_wecom": 1}
    # The first 美妆 purchase leaves the 30-day window on day 30: a deadline, no event.
    later = values_after(rules, events, START_MS + 30 * DAY_MS)
    assert later["beauty_30d"] == 1


def test_a_filter_refuses_a_pending_items_open_and_close(tmp_path: Path) -> None:
    rules = rules_of(
        tmp_path,
        "aggregates:\n"
        "  big_coupons:\n"
        "    pending: props.coupon_id\n"
        "    of: coupon_issued\n"
        "    close: coupon_redeemed\n"
        "    due: props.expires_at\n"
        '    where: "props.value >= 50"\n',
    )
    due = START_MS + 10 * DAY_MS
    events = [
        make_event("coupon_issued", day=0, coupon_id="a", expires_at=due, value=80),
        make_event("coupon_issued", day=0, coupon_id="b", expires_at=due, value=10),
        make_event("coupon_issued", day=0, coupon_id="c", expires_at=due, value=60),
        make_event("coupon_redeemed", day=1, coupon_id="a", value=80),
        make_event("coupon_redeemed", day=1, coupon_id="c"),  # refused: no value
    ]
    assert values_after(rules, events) == {"big_coupons": 1}  # c: its close was refused


def test_a_filter_and_keys_are_part_of_the_aggregates_identity(tmp_path: Path) -> None:
    plain = rules_of(tmp_path, "aggregates:\n  it: {count: purchase}\n").aggregates["it"]
    filtered = rules_of(
        tmp_path, "aggregates:\n  it: {count: purchase, where: \"channel == 'app'\"}\n"
    ).aggregates["it"]
    other = rules_of(
        tmp_path, "aggregates:\n  it: {count: purchase, where: \"channel == 'store'\"}\n"
    ).aggregates["it"]
    keys = {plain.key, filtered.key, other.key}
    for spec in (
        "{count: purchase, by: channel}",
        "{count: purchase, by: channel, keys: 8}",
        "{count: purchase, by: props.category}",
    ):
        keys.add(rules_of(tmp_path, f"aggregates:\n  it: {spec}\n").aggregates["it"].key)
    assert len(keys) == 6
    assert plain.key == "it@" + plain.key.split("@")[1]  # unchanged for rules without one


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        (
            "orders >= 1",
            "rules.yaml:3:33: unknown name 'orders' (hint: a filter decides which events feed"
            " the aggregate, before any rule runs: it reads the event, params and lists,"
            " not aggregate 'orders')",
        ),
        (
            "stage == 'new'",
            "rules.yaml:3:33: unknown name 'stage' (hint: a filter decides which events feed"
            " the aggregate, before any rule runs: it reads the event, params and lists,"
            " not the stage)",
        ),
        (
            "event.props.x == 1",
            "rules.yaml:3:33: unknown name 'event' (hint: a filter reads the event's fields"
            " as names: props.amount, channel, type)",
        ),
        (
            "size(channel)",
            "rules.yaml:3:33: a condition must be true or false, but this is an int",
        ),
        (
            "channel + 1 > 0",
            "rules.yaml:3:41: cannot use + on string and int",
        ),
    ],
)
def test_filter_problems_are_reported_where_they_are(
    tmp_path: Path, where: str, expected: str
) -> None:
    text = (
        f'aggregates:\n  orders: {{count: purchase}}\n  it: {{count: purchase, where: "{where}"}}\n'
    )
    found = problems_of(tmp_path, text)
    assert len(found) == 1
    assert found[0].split(str(tmp_path) + "/")[1].startswith(expected)


def test_a_filter_that_is_not_a_condition_is_refused(tmp_path: Path) -> None:
    found = problems_of(tmp_path, 'aggregates:\n  it: {count: purchase, where: "channel"}\n')
    assert found == [
        f"{tmp_path}/rules.yaml:2:33: a condition must be true or false, but this is a string"
        " (hint: compare it with something, e.g. spend_90d >= 1000)"
    ]


# --- by / keys ----------------------------------------------------------------------------

MONOIDS = [name for name, kind in KINDS.items() if kind.windowable]
CATEGORIES = st.sampled_from(["美妆", "食品", "母婴", "a", "b"])
OBSERVATIONS = st.lists(
    st.tuples(
        st.one_of(st.none(), CATEGORIES),
        st.integers(min_value=0, max_value=40 * 24),  # hours after the start
        st.one_of(st.integers(0, 50), st.floats(0, 50, allow_nan=False)),
    ),
    max_size=40,
)


def _spec(name: str) -> str:
    kind = KINDS[name]
    return f"{name}: purchase" if kind.shape == "types" else f"{name}: props.amount, of: purchase"


@settings(max_examples=30, deadline=None)
@given(observations=OBSERVATIONS, data=st.data())
def test_a_keyed_aggregate_is_per_key_the_filtered_plain_one(
    tmp_path_factory: pytest.TempPathFactory,
    observations: list[tuple[str | None, int, float]],
    data: st.DataObject,
) -> None:
    name = data.draw(st.sampled_from(MONOIDS))
    window = data.draw(st.sampled_from(["", ", window: 7d", ", window: 36h"]))
    keyed_spec = f"{{{_spec(name)}, by: props.category{window}}}"
    lines = [f"  by_key: {keyed_spec}"]
    for index, key in enumerate(["美妆", "食品", "母婴", "a", "b"]):
        lines.append(
            f"  only_{index}: {{{_spec(name)}, where: \"props.category == '{key}'\"{window}}}"
        )
    rules = rules_of(tmp_path_factory.mktemp("r"), "aggregates:\n" + "\n".join(lines) + "\n")
    events = [
        make_event("purchase", day=hours / 24, amount=amount, **_category(c))
        for c, hours, amount in observations
    ]
    until = START_MS + 41 * DAY_MS
    for at in (None, until):
        found = values_after(rules, events, at)
        expected = {
            key: found[f"only_{index}"]
            for index, key in enumerate(["美妆", "食品", "母婴", "a", "b"])
            if any(c == key for c, _, _ in observations)
        }
        by_key = found["by_key"]
        # A key the window has emptied, or whose value is null (an avg_gap of one event),
        # reads as absent; a count or sum of its events reads 0 there.
        assert {k: v for k, v in expected.items() if k in by_key} == by_key
        assert all(v in (None, 0, 0.0) for k, v in expected.items() if k not in by_key)


@settings(max_examples=50, deadline=None)
@given(
    observations=st.lists(
        st.tuples(CATEGORIES, st.integers(0, 20 * 24), st.integers(1, 9)), max_size=30
    ),
    now_hours=st.integers(0, 30 * 24),
)
def test_a_windowed_keyed_value_equals_the_value_recomputed_from_scratch(
    observations: list[tuple[str, int, int]], now_hours: int
) -> None:
    for name in ("count", "sum", "max", "avg", "distinct", "top", "last", "avg_gap"):
        kind = keyed(KINDS[name], 10)
        window = Window(7 * DAY_MS, bucket_size(7 * DAY_MS))
        now = START_MS + now_hours * 3_600_000
        state = None
        for key, hours, value in sorted(observations, key=lambda o: o[1]):
            ts = START_MS + hours * 3_600_000
            if ts <= now:
                state = window.add(kind, state, (key, value), ts, ts, KINDS[name].default_limit)
        inside = [
            (key, value, START_MS + hours * 3_600_000)
            for key, hours, value in observations
            if window.first_bucket(now) * window.bucket_ms <= START_MS + hours * 3_600_000 <= now
        ]
        scratch = fold(kind, [((k, v), ts) for k, v, ts in inside], KINDS[name].default_limit)
        assert window.value(kind, state, now, KINDS[name].default_limit) == kind.result(
            scratch, now
        ), name


@settings(max_examples=50, deadline=None)
@given(
    observations=st.lists(st.tuples(st.text("abcdef", min_size=1, max_size=2), st.integers(0, 99))),
    keys=st.integers(1, 5),
)
def test_keys_are_bounded_and_the_least_recently_seen_goes(
    observations: list[tuple[str, int]], keys: int
) -> None:
    kind = keyed(KINDS["count"], keys)
    state = None
    latest: dict[str, int] = {}
    for key, ts in observations:
        state = kind.add(state, (key, None), ts, 1000)
        assert len(state) <= keys
        latest[key] = max(latest.get(key, ts), ts)
    if len(latest) <= keys:  # nothing was evicted: exact
        assert kind.result(state, 0) == {
            k: sum(1 for o, _ in observations if o == k) for k in latest
        }
    # Merging keeps the most recently seen keys, ties by the smallest key.
    merged = kind.merge([state, {"zz": [-1, 1]}, {"aa": [10**6, 1]}], 1000)
    assert len(merged) <= keys and "aa" in merged


def test_eviction_is_documented_and_deterministic() -> None:
    kind = keyed(KINDS["count"], 2)
    state = None
    for key, ts in [("b", 5), ("a", 5), ("c", 6)]:
        state = kind.add(state, (key, None), ts, 1000)
    assert kind.result(state, 0) == {"a": 1, "c": 1}  # b and a both seen at 5: b goes
    assert kind.result_type == map_of(INT)


def test_a_keyed_aggregate_in_a_rule_file(tmp_path: Path) -> None:
    rules = rules_of(
        tmp_path,
        "aggregates:\n"
        "  orders_by_category: {count: purchase, by: props.category, window: 90d, keys: 2}\n"
        "  spend_by_channel: {sum: props.amount, of: purchase, by: channel}\n"
        "  last_by_category: {last: channel, of: purchase, by: props.category}\n",
    )
    assert str(rules.types["orders_by_category"]) == "map(int)"
    assert str(rules.types["spend_by_channel"]) == "map(double)"
    assert str(rules.types["last_by_category"]) == "map(string)"
    events = [purchase(0, "美妆"), purchase(1, "食品"), purchase(2, "美妆"), purchase(3, "母婴")]
    found = values_after(rules, events)
    assert found["orders_by_category"] == {"美妆": 2, "母婴": 1}  # 食品 seen least recently
    assert found["spend_by_channel"] == {"app": 40.0}
    assert found["last_by_category"] == {"美妆": "app", "食品": "app", "母婴": "app"}
    later = values_after(rules, events, START_MS + 92 * DAY_MS)
    assert later["orders_by_category"] == {"母婴": 1}


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (
            "{days_since: purchase, by: channel}",
            "rules.yaml:2:30: days_since cannot be kept per key (hint: 'by' goes with count,"
            " last_ts, avg_gap, sum, min, max, avg, distinct, top, first and last)",
        ),
        (
            "{count: purchase, keys: 5}",
            "rules.yaml:2:25: 'keys' goes with 'by' (hint: by: props.category)",
        ),
        (
            "{count: purchase, by: prop.category}",
            "rules.yaml:2:29: unknown event field 'prop.category' (hint: fields are channel,"
            " type, ts, event_id, user_id or props.<name>)",
        ),
        (
            "{count: purchase, by: channel, keys: 1001}",
            "rules.yaml:2:44: Input should be less than or equal to 1000",
        ),
        (
            "{count: purchase, minus: refund}",
            "rules.yaml:2:25: 'minus' only goes with sum",
        ),
        (
            "{sum: props.amount, minus: refund}",
            "rules.yaml:2:34: an event type is added or subtracted, not both: give 'of' its types",
        ),
        (
            "{sum: props.amount, of: [purchase, refund], minus: refund}",
            "rules.yaml:2:58: an event type is added or subtracted, not both: refund is in"
            " 'of' too",
        ),
    ],
)
def test_key_and_minus_problems(tmp_path: Path, spec: str, expected: str) -> None:
    found = problems_of(tmp_path, f"aggregates:\n  it: {spec}\n")
    assert len(found) == 1, found
    assert found[0].split(str(tmp_path) + "/")[1].startswith(expected)


# --- minus --------------------------------------------------------------------------------


def test_a_net_sum_subtracts_and_is_never_read_below_zero(tmp_path: Path) -> None:
    rules = rules_of(
        tmp_path,
        "aggregates:\n"
        "  net_90d: {sum: props.amount, of: purchase, minus: refund, window: 90d}\n"
        "  net: {sum: props.amount, of: purchase, minus: [refund]}\n"
        "  net_by_category: {sum: props.amount, of: purchase, minus: refund, by: props.category}\n",
    )
    events = [
        purchase(0, "美妆", 100),
        purchase(10, "食品", 50),
        make_event("refund", day=20, amount=30, category="食品"),
    ]
    assert values_after(rules, events) == {
        "net_90d": 120.0,
        "net": 120.0,
        "net_by_category": {"美妆": 100.0, "食品": 20.0},
    }
    # On day 90 the 美妆 order leaves the window and the refund outweighs what is left.
    events.append(make_event("refund", day=95, amount=80, category="食品"))
    assert values_after(rules, events) == {
        "net_90d": 0.0,
        "net": 40.0,
        "net_by_category": {"美妆": 100.0, "食品": 0.0},
    }


# --- list families ------------------------------------------------------------------------


def test_a_family_with_a_list_value_holds_one_tag_per_item(tmp_path: Path) -> None:
    rules = rules_of(
        tmp_path,
        "aggregates:\n"
        "  orders_by_category: {count: purchase, by: props.category, window: 90d}\n"
        "tags:\n"
        "  repurchase:\n"
        "    display: 复购品类\n"
        '    value: "keys_at_least(orders_by_category, 2)"\n',
    )
    engine = Engine(rules)
    profile = engine.new_profile("u1")
    changes: list[tuple[str, str]] = []
    for event in [
        purchase(0, "美妆"),
        purchase(1, "食品"),
        purchase(2, "美妆"),
        purchase(50, "食品"),
    ]:
        changes += changes_of(engine.apply(profile, event))
    assert changes == [("add", "repurchase_美妆"), ("add", "repurchase_食品")]
    assert profile.tags["repurchase_食品"]["display"] == "复购品类: 食品"
    # Day 91: the orders of days 0 to 2 have left the window; no category has two now.
    outputs = engine.advance(profile, START_MS + 91 * DAY_MS)
    assert changes_of(outputs) == [
        ("remove", "repurchase_美妆"),
        ("remove", "repurchase_食品"),
    ]
    outputs = engine.apply(profile, purchase(92, "食品"))
    assert changes_of(outputs) == [("add", "repurchase_食品")]
    assert set(profile.tags) == {"repurchase_食品"}


def test_a_list_family_is_bounded_and_keeps_its_allowed_values(tmp_path: Path) -> None:
    count = MAX_FAMILY_MEMBERS + 10
    rules = rules_of(
        tmp_path,
        "aggregates:\n"
        "  seen: {count: view, by: props.sku, keys: 1000}\n"
        "tags:\n"
        '  viewed: {value: "keys_at_least(seen, 1)"}\n'
        '  viewed_ab: {value: "keys_at_least(seen, 1)", values: [a0, b1]}\n',
    )
    engine = Engine(rules)
    profile = engine.new_profile("u1")
    for index in range(count):
        engine.apply(
            profile, make_event("view", day=index / 100, sku=f"{chr(97 + index % 26)}{index}")
        )
    assert sum(1 for r in profile.tags.values() if r["rule"] == "viewed") == MAX_FAMILY_MEMBERS
    assert {n for n, r in profile.tags.items() if r["rule"] == "viewed_ab"} == {
        "viewed_ab_a0",
        "viewed_ab_b1",
    }


def test_a_family_value_of_another_type_is_refused(tmp_path: Path) -> None:
    found = problems_of(
        tmp_path,
        'aggregates:\n  orders: {count: purchase}\ntags:\n  odd: {value: "orders"}\n',
    )
    assert found == [
        f"{tmp_path}/rules.yaml:4:17: a family's value is a string or a list of strings, not"
        " an int (hint: e.g. value: top_category_30d, or value:"
        " keys_at_least(orders_by_category, 2))"
    ]


def _category(category: str | None) -> dict[str, Any]:
    """The props of an observation: its category, if it has one."""
    return {"category": category} if category else {}


@settings(max_examples=100, deadline=None)
@given(
    buckets=st.lists(
        st.dictionaries(
            st.sampled_from(["a", "b", "c", "美妆"]),
            st.tuples(st.integers(0, 9), st.one_of(st.integers(1, 5), st.sampled_from([0, 2.0]))),
        ),
        max_size=6,
    ),
    keys=st.integers(1, 4),
)
def test_keyed_counts_add_up_as_the_counts_own_merge(
    buckets: list[dict[str, tuple[int, int | float]]], keys: int
) -> None:
    # A keyed count's buckets are added up key by key as they are read (Kind.counts); the
    # result, latest times and the keys kept, is the kind's own merge's, also for a state
    # this version would not write (a zero or a float partial: the kind's merge decides).
    states: list[Any] = [{k: list(entry) for k, entry in b.items()} or None for b in buckets]
    general = keyed(replace(KINDS["count"], counts=False), keys)
    assert keyed(KINDS["count"], keys).merge(states, 1000) == general.merge(states, 1000)
