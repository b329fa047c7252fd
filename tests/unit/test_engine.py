"""The engine's guarantees: per-user determinism, time semantics, reasons and ids."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from taggers.bundled import BUNDLED_RULES
from taggers.durations import DAY_MS, HOUR_MS
from taggers.engine import RECENT_EVENT_IDS, Engine, family_member
from taggers.outputs import Alert, Output, TagChange, Transition, output_to_dict
from taggers.profile import Profile, TagRecord
from taggers.replay import BadLine, Replay, sweep
from taggers.ruleset import RuleSet, load_rules
from taggers.simulate import SimulationConfig, simulate
from taggers.store import MemoryStore
from tests.support.core import START_MS, make_event

RULES = load_rules(BUNDLED_RULES)
STREAM = [line.encode() for line in simulate(SimulationConfig(users=120, days=200, seed=3))]


def run(lines: list[bytes], rules: RuleSet = RULES) -> tuple[list[Output], MemoryStore, int]:
    store = MemoryStore()
    replay = Replay(Engine(rules), store)
    outputs = [o for o in replay.run(lines) if not isinstance(o, BadLine)]
    return outputs, store, replay.clock


def snapshot(profile: Profile) -> dict[str, object]:
    data = profile.to_dict()
    del data["clock"]  # when the last sweep ran is not part of the user's state
    return data


def test_a_replay_is_reproducible_down_to_output_ids() -> None:
    first, _, _ = run(STREAM)
    second, _, _ = run(STREAM)
    assert [output_to_dict(o) for o in first] == [output_to_dict(o) for o in second]
    assert len({o.id for o in first}) == len(first)


def test_a_users_result_does_not_depend_on_other_users() -> None:
    """Each user replayed alone, then advanced to the same clock, ends in the same state."""
    _, together, clock = run(STREAM)
    engine = Engine(RULES)
    users = sorted(together.users())[:25]
    for user in users:
        own = [line for line in STREAM if f'"user_id":"{user}"'.encode() in line]
        _, alone, _ = run(own)
        profile = alone.get(user)
        assert profile is not None
        engine.advance(profile, clock)
        expected = together.get(user)
        assert expected is not None
        assert snapshot(profile) == snapshot(expected), user


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=len(STREAM) - 1), max_size=8))
def test_when_sweeps_run_does_not_change_the_result(sweep_points: list[int]) -> None:
    """Deadlines fire as of their due time, so extra sweeps at random moments change nothing."""
    engine = Engine(RULES)
    store = MemoryStore()
    replay = Replay(engine, store)
    points = set(sweep_points)
    outputs: list[Output] = []
    for index, line in enumerate(STREAM[:600]):
        outputs.extend(o for o in replay.run([line], flush=False) if not isinstance(o, BadLine))
        if index in points:
            # A timer sweep that runs late: it processes everything due by now.
            outputs.extend(sweep(engine, store, replay.clock))
    outputs.extend(sweep(engine, store, replay.clock))
    reference, reference_store, _ = run(STREAM[:600])
    assert sorted(o.id for o in outputs) == sorted(o.id for o in reference)
    for user in reference_store.users():
        got, want = store.get(user), reference_store.get(user)
        assert got is not None and want is not None
        assert snapshot(got) == snapshot(want)


def test_every_change_says_why() -> None:
    engine = Engine(RULES)
    profile = engine.new_profile("u1")
    engine.apply(profile, make_event("purchase", day=0, amount=600))
    outputs = engine.apply(profile, make_event("purchase", day=1, amount=500))
    added = next(o for o in outputs if isinstance(o, TagChange) and o.tag == "high_value")
    assert added.op == "add"
    assert added.display == "高价值客户"
    assert added.reason.rule == "high_value"
    assert added.reason.version == RULES.version
    assert added.reason.values == {"spend_90d": 1100.0, "high_value_spend": 1000}
    assert profile.tags["high_value"]["since"] == START_MS + DAY_MS


def test_tags_fall_with_the_window_even_with_no_event() -> None:
    engine = Engine(RULES)
    profile = engine.new_profile("u1")
    engine.apply(profile, make_event("purchase", day=0, amount=1500))
    assert "high_value" in profile.tags
    outputs = engine.advance(profile, START_MS + 100 * DAY_MS)
    removed = [o for o in outputs if isinstance(o, TagChange) and o.tag == "high_value"]
    assert [o.op for o in removed] == ["remove"]
    # It fell exactly when the day-0 bucket left the 90-day window: the pack's days are
    # Shanghai's, and day 0 (00:00 UTC is 08:00 there) ends 8 hours before UTC midnight.
    assert removed[0].at == START_MS + 90 * DAY_MS - 8 * HOUR_MS


def test_a_late_event_never_moves_the_users_clock_back() -> None:
    engine = Engine(RULES)
    profile = engine.new_profile("u1")
    engine.apply(profile, make_event("purchase", day=10, amount=10))
    engine.apply(profile, make_event("purchase", day=2, amount=10))
    assert profile.clock == START_MS + 10 * DAY_MS
    assert engine.value_of("orders", profile, profile.clock) == 2


def test_a_producers_retry_of_a_recent_event_is_not_applied_again() -> None:
    engine = Engine(RULES)
    profile = engine.new_profile("u1")
    first = make_event("purchase", day=1, amount=10, event_id="order-1")
    assert engine.apply(profile, first)
    before = snapshot(profile)
    assert engine.apply(profile, first.model_copy()) == []  # the retry: a new message
    assert snapshot(profile) == before
    for n in range(RECENT_EVENT_IDS):  # enough later events push the id out of memory
        engine.apply(profile, make_event("view", day=2, category="美妆", event_id=f"v{n}"))
    engine.apply(profile, first)
    assert engine.value_of("orders", profile, profile.clock) == 2


def test_deadline_outputs_have_ids_from_the_deadline() -> None:
    engine = Engine(RULES)
    profile = engine.new_profile("u1")
    engine.apply(profile, make_event("purchase", day=0, amount=10))
    engine.apply(profile, make_event("purchase", day=5, amount=10))
    outputs = engine.advance(profile, START_MS + 70 * DAY_MS)
    dormant = next(o for o in outputs if isinstance(o, Transition) and o.to_stage == "dormant")
    assert dormant.at == START_MS + 65 * DAY_MS
    again = Engine(RULES)
    other = again.new_profile("u1")
    again.apply(other, make_event("purchase", day=0, amount=10, event_id="x1"))
    again.apply(other, make_event("purchase", day=5, amount=10, event_id="x2"))
    repeat = again.advance(other, START_MS + 70 * DAY_MS)
    assert dormant.id in {o.id for o in repeat}


def test_timers_fire_once() -> None:
    engine = Engine(RULES)
    profile = engine.new_profile("u1")
    engine.apply(profile, make_event("member_join", day=0))
    first = engine.advance(profile, START_MS + 8 * DAY_MS)
    second = engine.advance(profile, START_MS + 30 * DAY_MS)
    assert [o.name for o in first if isinstance(o, Alert)] == ["new_member_no_order"]
    assert not [o for o in second if isinstance(o, Alert)]


def test_rules_are_evaluated_only_when_what_they_read_changed(tmp_path: Path) -> None:
    (tmp_path / "r.yaml").write_text(
        "aggregates:\n"
        "  orders: {count: purchase}\n"
        "  views: {count: view}\n"
        "tags:\n"
        "  buyer: {when: 'orders >= 1'}\n"
        "  browser: {when: 'views >= 1'}\n",
        encoding="utf-8",
    )
    rules = load_rules(tmp_path)
    calls: list[str] = []
    for tag in rules.tags:
        assert tag.when is not None
        inner = tag.when.evaluate

        def counted(values: object, name: str = tag.name, inner: object = inner) -> object:
            calls.append(name)
            return inner(values)  # type: ignore[operator]

        object.__setattr__(tag.when, "evaluate", counted)
    engine = Engine(rules)
    profile = engine.new_profile("u1")
    engine.apply(profile, make_event("view", day=0))
    engine.apply(profile, make_event("view", day=1))
    engine.apply(profile, make_event("purchase", day=2, amount=1))
    assert calls == ["browser", "browser", "buyer"]


def test_family_names_are_clean() -> None:
    assert family_member("interest", "美妆") == "interest_美妆"
    assert family_member("source", "Mini Program") == "source_mini_program"
    assert family_member("source", None) is None
    assert family_member("source", " / ") is None


def _tag_ops(outputs: list[Output], tag: str) -> list[str]:
    return [o.op for o in outputs if isinstance(o, TagChange) and o.tag == tag]


def test_an_expired_tag_comes_back_when_an_event_confirms_it_again() -> None:
    """``expires_after`` counts from the last event that confirmed the rule: a condition
    that stays true (a lifetime count) must not keep an expired tag away for good."""
    engine = Engine(RULES)
    profile = engine.new_profile("u1")
    engine.apply(profile, make_event("store_visit", day=0, channel="store"))
    expired = engine.advance(profile, START_MS + 20 * DAY_MS)
    assert _tag_ops(expired, "recent_store_visitor") == ["remove"]
    # Other events (not what the rule reads) and time passing do not bring it back.
    engine.apply(profile, make_event("view", day=21, category="美妆"))
    engine.advance(profile, START_MS + 25 * DAY_MS)
    assert "recent_store_visitor" not in profile.tags
    back = engine.apply(profile, make_event("store_visit", day=30, channel="store"))
    assert _tag_ops(back, "recent_store_visitor") == ["add"]
    assert profile.tags["recent_store_visitor"]["expires"] == START_MS + 44 * DAY_MS
    again = engine.advance(profile, START_MS + 60 * DAY_MS)
    assert _tag_ops(again, "recent_store_visitor") == ["remove"]


def test_time_passing_neither_renews_nor_restores_an_expiring_tag(tmp_path: Path) -> None:
    """A deadline re-evaluates a windowed condition; only an event confirms the tag."""
    (tmp_path / "r.yaml").write_text(
        "aggregates:\n"
        "  views_30d: {count: view, window: 30d}\n"
        "tags:\n"
        "  browsing: {when: 'views_30d >= 1', expires_after: 5d}\n"
        "  level_a: {group: level, when: 'views_30d >= 2', expires_after: 5d}\n"
        "  level_b: {group: level, when: 'views_30d >= 1'}\n",
        encoding="utf-8",
    )
    engine = Engine(load_rules(tmp_path))
    profile = engine.new_profile("u1")
    engine.apply(profile, make_event("view", day=0))
    engine.apply(profile, make_event("view", day=3))
    assert profile.tags["browsing"]["expires"] == START_MS + 8 * DAY_MS
    assert profile.tags["level_a"]["expires"] == START_MS + 8 * DAY_MS  # a group renews too
    outputs = engine.advance(profile, START_MS + 31 * DAY_MS)  # the day-0 view leaves
    assert _tag_ops(outputs, "browsing") == ["remove"]  # expired at day 8, not renewed
    assert "browsing" not in profile.tags and "level_b" in profile.tags
    outputs = engine.apply(profile, make_event("view", day=32))
    assert _tag_ops(outputs, "browsing") == ["add"]
    assert _tag_ops(outputs, "level_a") == ["add"]  # the group's expired member is back


def test_an_expiring_family_tag_follows_the_same_rule(tmp_path: Path) -> None:
    (tmp_path / "r.yaml").write_text(
        "aggregates:\n"
        "  top_30d: {top: props.category, of: view, window: 30d}\n"
        "tags:\n"
        "  looking: {value: top_30d, expires_after: 5d}\n",
        encoding="utf-8",
    )
    engine = Engine(load_rules(tmp_path))
    profile = engine.new_profile("u1")
    engine.apply(profile, make_event("view", day=0, category="美妆"))
    engine.apply(profile, make_event("view", day=3, category="美妆"))  # confirms: day 8
    assert profile.tags["looking_美妆"]["expires"] == START_MS + 8 * DAY_MS
    outputs = engine.advance(profile, START_MS + 31 * DAY_MS)  # the window slides too
    assert _tag_ops(outputs, "looking_美妆") == ["remove"]
    assert not profile.tags
    outputs = engine.apply(profile, make_event("view", day=40, category="美妆"))
    assert _tag_ops(outputs, "looking_美妆") == ["add"]


def test_a_late_purchase_from_before_the_dormancy_is_no_win_back() -> None:
    """Win-back is a purchase made after the user went dormant, not one that arrives late."""
    engine = Engine(RULES)
    profile = engine.new_profile("u1")
    engine.apply(profile, make_event("purchase", day=0, amount=10))
    engine.apply(profile, make_event("purchase", day=10, amount=10))
    engine.apply(profile, make_event("view", day=80, category="美妆"))
    assert profile.stage == "dormant"
    late = engine.apply(profile, make_event("purchase", day=5, amount=10))  # sent late
    assert profile.stage == "dormant"
    assert not [o for o in late if isinstance(o, Alert | Transition)]
    assert engine.value_of("orders", profile, profile.clock) == 3  # it still counts
    later = engine.apply(profile, make_event("purchase", day=75, amount=10))  # after day 70
    assert [o.name for o in later if isinstance(o, Alert)] == ["win_back"]
    assert profile.stage == "active"


WARNINGS = {"churn_risk", "first_repurchase_nudge"}


@pytest.mark.parametrize("orders", [1, 2, 3, 6])
@pytest.mark.parametrize("rhythm", range(1, 181))
def test_a_warning_comes_before_every_dormancy(rhythm: int, orders: int) -> None:
    """Whatever the customer's purchase rhythm (1 to 180 days) and however many orders,
    churn_risk (or, for a one-time buyer, the first-repurchase nudge) is raised after the
    last purchase and before the customer turns dormant: never dormancy unannounced."""
    engine = Engine(RULES)
    profile = engine.new_profile("u1")
    outputs: list[Output] = []
    purchases = [START_MS + n * rhythm * DAY_MS for n in range(orders)]
    for n in range(orders):
        outputs += engine.apply(profile, make_event("purchase", day=n * rhythm, amount=50))
    outputs += engine.advance(profile, purchases[-1] + 400 * DAY_MS)
    dormancies = [o for o in outputs if isinstance(o, Transition) and o.to_stage == "dormant"]
    assert dormancies  # every path here goes quiet long enough
    for dormant in dormancies:
        last = max(ts for ts in purchases if ts < dormant.at)
        warned = [
            o for o in outputs if isinstance(o, Alert) and o.name in WARNINGS and last <= o.at
        ]
        assert warned and warned[0].at < dormant.at, (rhythm, orders, dormant)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.integers(min_value=0, max_value=100 * 24), min_size=1, max_size=12),
    st.lists(st.integers(min_value=0, max_value=130 * 24), max_size=12),
)
def test_recent_store_visitor_is_held_exactly_14_days_after_each_last_visit(
    visits: list[int], probes: list[int]
) -> None:
    """近期到店 at any moment means: a store visit in the last 14 days (hours here)."""
    engine = Engine(RULES)
    profile = engine.new_profile("u1")
    timeline = sorted([(h, "visit") for h in visits] + [(h, "probe") for h in probes])
    seen: list[int] = []
    for hour, what in timeline:
        if what == "visit":
            engine.apply(profile, make_event("store_visit", day=hour / 24, channel="store"))
            seen.append(hour)
        else:
            engine.advance(profile, START_MS + hour * 3_600_000)
        last = max(seen, default=None)
        expected = last is not None and hour < last + 14 * 24
        assert ("recent_store_visitor" in profile.tags) is expected, (hour, seen)


def test_a_tag_record_is_stored_as_it_always_was() -> None:
    """Tag records are typed (TagRecord) and stored as the same JSON object: the keys in
    the order stored profiles have them, so an older stored profile reads back as is."""
    engine = Engine(RULES)
    profile = engine.new_profile("u1")
    engine.apply(profile, make_event("purchase", day=0, amount=1500))
    record = profile.to_dict()["tags"]["high_value"]
    assert list(record) == ["since", "expires", "rule", "display", "version", "values", "when"]
    assert list(record) == list(TagRecord.__annotations__)
    stored = json.dumps(profile.to_dict(), ensure_ascii=False, sort_keys=False)
    again = Profile.from_dict(json.loads(stored))
    assert json.dumps(again.to_dict(), ensure_ascii=False, sort_keys=False) == stored
    assert engine.describe(again)["tags"]["high_value"]["rule"] == "high_value"


def test_a_replay_leaves_the_rule_set_as_it_was() -> None:
    """The rule set is immutable: what the engine indexes at run time is in its plan."""
    rules = load_rules(BUNDLED_RULES)
    before = {f.name: repr(getattr(rules, f.name)) for f in dataclasses.fields(rules)}
    run([line.encode() for line in simulate(SimulationConfig(users=20, days=60, seed=3))], rules)
    after = {f.name: repr(getattr(rules, f.name)) for f in dataclasses.fields(rules)}
    assert after == before
    with pytest.raises(dataclasses.FrozenInstanceError):
        rules.version = "other"  # type: ignore[misc]
    with pytest.raises((AttributeError, TypeError)):
        object.__setattr__(rules, "cache", {})  # slots: no room for a cache
