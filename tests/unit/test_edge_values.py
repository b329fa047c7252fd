"""Values at the edges of their types: one message can never stop a partition, numbers mean
what the producer sent, and whatever the engine keeps survives Redis exactly.

Each case of issue 10 is here as it was reported (``ts: 1e309``, ``2**64``, two purchases of
``1e308``, ``"amount": "1500.50"``...), and generated events (any JSON value, numbers at the
edges, odd strings, nesting) go through decode, the engine and a real Redis round trip.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import jsonschema
import orjson
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from prometheus_client import REGISTRY
from redis.crc import key_slot

from streams.cli import main
from streams.redis_store import Keys
from streams.settings import SettingsError, load_settings
from streams.worker.fetches import count_batch
from taggers.aggregates import KINDS, LARGEST, Window
from taggers.bundled import BUNDLED_RULES
from taggers.durations import DAY_MS
from taggers.engine import Engine
from taggers.events import (
    MAX_AMOUNT,
    MAX_EVENT_BYTES,
    MAX_INTEGER,
    MIN_INTEGER,
    REASONS,
    BehaviourEvent,
    EventError,
    decode_event,
    event_json_schema,
)
from taggers.outputs import output_to_dict
from taggers.pipeline import Pipeline, Record
from taggers.profile import Profile
from taggers.replay import BadLine, Replay
from taggers.ruleset import RuleSet, load_rules
from taggers.store import MemoryStore
from tests.support.core import START_MS, FailsOnRefunds, edited_rules
from tests.support.raw_json import Raw, raw_json
from tests.support.stores import StoreKind

RULES = load_rules(BUNDLED_RULES)
TS = START_MS + DAY_MS

# Aggregates of every kind over a prop that the contract does not type, and rules on them.
CUSTOM_RULES = """\
aggregates:
  v_sum:      {sum: props.v, of: x_event}
  v_sum_7d:   {sum: props.v, of: x_event, window: 7d}
  v_min:      {min: props.v, of: x_event}
  v_max:      {max: props.v, of: x_event}
  v_avg:      {avg: props.v, of: x_event}
  v_avg_7d:   {avg: props.v, of: x_event, window: 7d}
  v_distinct: {distinct: props.v, of: x_event}
  v_top:      {top: props.v, of: x_event, window: 7d}
  v_first:    {first: props.v, of: x_event}
  v_last:     {last: props.v, of: x_event}
  v_nested:   {last: props.w.x, of: x_event}
tags:
  v_big: {display: big v, when: "v_sum > 100 && v_max > 10"}
  v_last_big: {display: last v big, when: "v_last > 10 || v_nested == 'x' || v_avg_7d < 0"}
  v_value:
    display: top v
    value: v_top
"""


def line(type_: str = "purchase", ts: object = TS, user: object = "u1", **props: object) -> str:
    """One event as JSON text; ``ts`` and props values may be raw JSON tokens (see raw)."""
    return raw_json(
        {"event_id": f"e{next_id()}", "user_id": user, "type": type_, "ts": ts} | {"props": props}
    )


_ids = iter(range(10**9))


def next_id() -> int:
    return next(_ids)


def error_of(text: str | bytes) -> EventError:
    with pytest.raises(EventError) as caught:
        decode_event(text)
    assert caught.value.reason in REASONS
    return caught.value


def values(rules: RuleSet, lines: list[str], user: str = "u1") -> dict[str, Any]:
    store = MemoryStore()
    replay = Replay(Engine(rules), store)
    bad = [item for item in replay.run(lines) if isinstance(item, BadLine)]
    assert bad == []
    profile = store.get(user)
    assert profile is not None
    return Engine(rules).aggregate_values(profile, replay.clock)


@pytest.fixture(scope="module")
def custom_rules(tmp_path_factory: pytest.TempPathFactory) -> RuleSet:
    directory = edited_rules(tmp_path_factory.mktemp("custom") / "rules")
    (directory / "custom.yaml").write_text(CUSTOM_RULES, encoding="utf-8")
    return load_rules(directory)


# --- one message must never stop a partition ------------------------------------------------


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        (line(ts=Raw("1e309"), amount=1), "ts: inf"),
        (line(ts=Raw("-1e309"), amount=1), "ts: -inf"),
        (line(ts=Raw("NaN"), amount=1), "ts: nan"),
        (line(ts=Raw("1e300"), amount=1), "ts: "),
        (line("coupon_issued", coupon_id="c1", expires_at=Raw("1e309")), "expires_at: inf"),
        (line("coupon_issued", coupon_id="c1", expires_at=Raw("-Infinity")), "expires_at"),
        (line("custom", v=2**64), "props.v: an integer outside the 64-bit range"),
        (line("custom", v=-(2**63) - 1), "props.v: an integer outside the 64-bit range"),
        (line("custom", v=[1, {"w": 10**30}]), "props.v[1].w: an integer"),
        (line("custom", v=Raw("1e309")), "props.v: inf is not a finite number"),
        (line("custom", v={"x": Raw("NaN")}), "props.v.x: nan is not a finite number"),
        (line("custom", v=Raw("-Infinity")), "props.v: -inf is not a finite number"),
        (line("purchase", amount=1e308), "amount: must be at most 1,000,000,000,000"),
        (line("points_earned", points=-1e13), "points: must be at most"),
    ],
)
def test_numbers_no_store_can_hold_are_a_schema_error_naming_the_field(
    text: str, fragment: str
) -> None:
    error = error_of(text)
    assert error.reason == "schema"
    assert fragment in error.message


def test_the_largest_numbers_the_store_holds_exactly_are_accepted() -> None:
    event = decode_event(line("custom", a=MAX_INTEGER, b=MIN_INTEGER, c=LARGEST, d=-LARGEST))
    assert event.props == {"a": 2**64 - 1, "b": -(2**63), "c": LARGEST, "d": -LARGEST}
    assert orjson.loads(orjson.dumps(event.props)) == event.props


def test_a_decoder_bug_is_the_messages_error_not_a_crash(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*_args: object, **_kwargs: object) -> BehaviourEvent:
        raise OverflowError("cannot convert float infinity to integer")

    monkeypatch.setattr(BehaviourEvent, "model_validate_json", broken)
    # A float ts: the fast path of decoding leaves the line to the model.
    text = line(ts=TS + 0.5, amount=1)
    error = error_of(text)
    assert (error.reason, error.message) == ("schema", "cannot be decoded (OverflowError)")
    # ... and so the worker's batch dead-letters it, and a replay reports the line.
    pipeline = Pipeline(Engine(RULES), MemoryStore(copies=True), MAX_EVENT_BYTES)
    batch = pipeline.prepare(0, [Record(0, 7, text.encode())])
    assert [(d.record.offset, d.reason) for d in batch.dead] == [(7, "schema")]
    bad = list(Replay(Engine(RULES)).run([text]))
    assert bad == [BadLine(1, "schema", "cannot be decoded (OverflowError)")]


def test_text_that_is_not_unicode_is_not_utf8() -> None:
    assert error_of("\ud800").reason == "not_utf8"


def test_replay_goes_on_past_the_issues_lines(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    events = tmp_path / "events.jsonl"
    lines = [
        line(ts=Raw("1e309"), amount=1),
        line("coupon_issued", coupon_id="c1", expires_at=Raw("1e309")),
        line("custom", v=2**64),
        line(amount="1500.50"),
    ]
    events.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert main(["replay", str(events), "--json"]) == 0
    records = [orjson.loads(text) for text in capsys.readouterr().out.splitlines()]
    errors = [(r["line"], r["reason"]) for r in records if r["kind"] == "error"]
    assert errors == [(1, "schema"), (2, "schema"), (3, "schema")]
    (profile,) = (r for r in records if r["kind"] == "profile")
    assert profile["aggregates"]["spend_total"] == 1500.5


# --- sums stay finite ------------------------------------------------------------------------


def test_two_purchases_of_1e308_never_reach_the_engine() -> None:
    # Typed amounts are bounded at the edge, so that no sum of them can overflow.
    assert error_of(line(amount=1e308)).reason == "schema"


def test_sums_of_untyped_props_saturate_instead_of_becoming_infinite(
    custom_rules: RuleSet,
) -> None:
    lines = [line("x_event", ts=TS + n, v=1e308) for n in range(3)]
    lines += [line("x_event", ts=TS + DAY_MS * 2, v=1.5e308)]
    got = values(custom_rules, lines)
    for name in ("v_sum", "v_sum_7d", "v_avg", "v_avg_7d"):
        assert math.isfinite(got[name]), name
    assert got["v_sum"] == got["v_sum_7d"] == LARGEST
    assert got["v_max"] == 1.5e308


def test_a_windowed_sum_merged_over_buckets_stays_finite() -> None:
    window = Window(7 * DAY_MS, DAY_MS)
    kind = KINDS["sum"]
    state = None
    for day in range(3):
        ts = START_MS + day * DAY_MS
        state = window.add(kind, state, 1e308, ts, ts, 1000)
    assert state is not None
    assert len(state) == 3  # three buckets, each finite, whose merge would overflow
    assert window.value(kind, state, START_MS + 2 * DAY_MS, 1000) == LARGEST
    assert KINDS["avg"].merge([[1e308, 1], [1e308, 1]], 1000) == [LARGEST, 2]


def test_a_saturated_sum_still_moves_both_ways() -> None:
    kind = KINDS["sum"]
    state = kind.add(kind.add(None, 1e308, 0, 0), 1e308, 0, 0)
    assert kind.add(state, -1e308, 0, 0) == LARGEST - 1e308


# --- numbers mean what the producer sent -----------------------------------------------------


@pytest.mark.parametrize(
    ("type_", "props", "name", "want"),
    [
        ("purchase", {"amount": "1500.50"}, "amount", 1500.5),
        ("purchase", {"amount": " 12 "}, "amount", 12.0),
        ("refund", {"amount": "1e3"}, "amount", 1000.0),
        ("points_earned", {"points": "500"}, "points", 500.0),
        ("points_earned", {"points": "-20"}, "points", -20.0),
        ("survey", {"score": "9"}, "score", 9),
        ("survey", {"score": 9.0}, "score", 9),
    ],
)
def test_numeric_strings_become_the_numbers_rules_read(
    type_: str, props: dict[str, object], name: str, want: float
) -> None:
    event = decode_event(line(type_, **props))
    assert event.props[name] == want
    assert type(event.props[name]) is type(want)


def test_rules_read_the_number_of_a_numeric_string() -> None:
    got = values(
        RULES,
        [
            line(amount="1500.50"),
            line("points_earned", points="500"),
            line("survey", score="9"),
        ],
    )
    assert got["spend_total"] == got["spend_90d"] == 1500.5
    assert got["points"] == 500.0
    assert got["last_nps_score"] == 9
    store = MemoryStore()
    replay = Replay(Engine(RULES), store)
    list(replay.run([line(amount="1500.50"), line("survey", score="9")]))
    profile = store.get("u1")
    assert profile is not None
    assert {"high_value", "nps_promoter"} <= set(profile.tags)


@pytest.mark.parametrize(
    ("type_", "props", "fragment"),
    [
        ("purchase", {"amount": True}, "amount: must be a number, not true"),
        ("purchase", {"amount": False}, "amount: must be a number, not false"),
        ("purchase", {"amount": Raw("NaN")}, "amount: must be a finite number"),
        ("purchase", {"amount": Raw("Infinity")}, "amount: must be a finite number"),
        ("purchase", {"amount": "NaN"}, "amount: must be a number, not the text 'NaN'"),
        ("purchase", {"amount": "inf"}, "amount: must be a number, not the text"),
        ("purchase", {"amount": "1_000"}, "amount: must be a number, not the text"),
        ("purchase", {"amount": "lots"}, "amount: must be a number, not the text 'lots'"),
        ("purchase", {"amount": "-5"}, "amount: Input should be greater than or equal to 0"),
        ("purchase", {"amount": [1]}, "amount: must be a number, not list"),
        ("refund", {"amount": "1" * 400}, "amount: must be a number"),
        ("points_earned", {"points": True}, "points: must be a number, not true"),
        ("points_earned", {"points": "10 points"}, "points: must be a number"),
        ("survey", {"score": True}, "score: must be a number, not true"),
        ("survey", {"score": "9.5"}, "score: Input should be a valid integer"),
        ("survey", {"score": "11"}, "score: Input should be less than or equal to 10"),
    ],
)
def test_a_numeric_prop_that_is_not_a_number_is_a_schema_error_naming_it(
    type_: str, props: dict[str, object], fragment: str
) -> None:
    error = error_of(line(type_, **props))
    assert error.reason == "schema"
    assert fragment in error.message, error.message


@settings(max_examples=150, deadline=None)
@given(st.floats(allow_nan=False, allow_infinity=False, min_value=0, max_value=MAX_AMOUNT))
def test_an_amount_as_text_means_the_same_as_the_number(amount: float) -> None:
    as_number = decode_event(line(amount=amount)).props["amount"]
    as_text = decode_event(line(amount=repr(amount))).props["amount"]
    assert as_number == as_text == amount


# --- skipped values are counted --------------------------------------------------------------


def test_an_aggregate_counts_the_values_of_the_wrong_type_it_skips(custom_rules: RuleSet) -> None:
    lines = [
        line("x_event", v=5),
        line("x_event", v="five"),  # not a number: the sums skip it; distinct/top take it
        line("x_event", v={"a": 1}),  # an object: skipped by every kind but first/last
        line("x_event", v=True),
        line("x_event"),  # no value at all: nothing to count
    ]
    replay = Replay(Engine(custom_rules))
    assert not [item for item in replay.run(lines) if isinstance(item, BadLine)]
    numeric = ("v_sum", "v_sum_7d", "v_min", "v_max", "v_avg", "v_avg_7d")
    assert replay.skipped == Counter({name: 3 for name in numeric} | {"v_distinct": 1, "v_top": 1})


def test_the_pipeline_reports_skipped_values_per_batch(custom_rules: RuleSet) -> None:
    pipeline = Pipeline(Engine(custom_rules), MemoryStore(copies=True), MAX_EVENT_BYTES)
    records = [
        Record(0, n, line("x_event", v=v).encode(), b"u1") for n, v in enumerate([1, "x", 2])
    ]
    batch = pipeline.prepare(0, records)
    assert batch.skipped["v_sum"] == 1
    assert batch.skipped["v_top"] == 0


def test_replay_shows_skipped_values_in_its_summary(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, custom_rules: RuleSet
) -> None:
    directory = edited_rules(tmp_path / "rules")
    (directory / "custom.yaml").write_text(CUSTOM_RULES, encoding="utf-8")
    events = tmp_path / "events.jsonl"
    events.write_text(f"{line('x_event', v='ten')}\n{line('x_event', v=3)}\n", encoding="utf-8")
    assert main(["replay", str(events), "--rules", str(directory), "-q"]) == 0
    err = capsys.readouterr().err
    assert "values skipped (wrong type) by aggregate (6):" in err
    assert re.search(r"\bv_sum +1\b", err)
    assert "v_last" not in err
    assert main(["replay", str(events), "--rules", str(directory), "--json"]) == 0
    records = [orjson.loads(text) for text in capsys.readouterr().out.splitlines()]
    skipped = {r["aggregate"]: r["values"] for r in records if r["kind"] == "skipped"}
    assert skipped["v_sum"] == 1
    assert "v_last" not in skipped


# --- ids ----------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", ["a}b", "{a}", "a{b", "}", "a\nb", "a\x00", "a\x7f"])
@pytest.mark.parametrize("field", ["user_id", "event_id"])
def test_ids_with_braces_or_control_characters_are_refused(field: str, bad: str) -> None:
    data = {"event_id": "e1", "user_id": "u1", "type": "custom", "ts": TS} | {field: bad}
    error = error_of(orjson.dumps(data))
    assert error.reason == "schema"
    assert error.message.startswith(f"{field}: must not contain")


def test_an_invitee_or_coupon_id_follows_the_same_rule() -> None:
    assert error_of(line("referral", invitee_id="a}b")).message.startswith("props of referral")
    assert error_of(line("coupon_issued", coupon_id="{c}", expires_at=TS)).reason == "schema"


@settings(max_examples=300, deadline=None)
@given(st.text(min_size=1, max_size=40))
def test_every_accepted_user_id_is_the_hash_tag_of_its_keys(user_id: str) -> None:
    raw = orjson.dumps({"event_id": "e1", "user_id": user_id, "type": "custom", "ts": TS})
    try:
        event = decode_event(raw)
    except EventError as error:
        assert error.reason == "schema"
        return
    # Redis Cluster hashes only what is between the first { and the next }: the id itself.
    assert key_slot(Keys().user(event.user_id).encode()) == key_slot(event.user_id.encode())


def test_a_key_prefix_with_braces_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TAGGER_REDIS_PREFIX", "shop{1}")
    with pytest.raises(SettingsError, match="TAGGER_REDIS_PREFIX"):
        load_settings()


def test_a_b_brace_id_would_have_hashed_as_a() -> None:
    # Why the rule exists: the key of a}b hashes as "a", not as the user's own id.
    assert key_slot(Keys().user("a}b").encode()) == key_slot(b"a")


# --- generated events: decode, engine, and a real Redis round trip ------------------------

EDGE_NUMBERS = st.sampled_from(
    [
        0,
        -0.0,
        1,
        -1,
        MAX_INTEGER,
        MAX_INTEGER + 1,
        MIN_INTEGER,
        MIN_INTEGER - 1,
        2**53 + 1,
        LARGEST,
        -LARGEST,
        5e-324,
        1e308,
        MAX_AMOUNT,
        MAX_AMOUNT + 1,
        0.1,
        Raw("1e309"),
        Raw("-1e309"),
        Raw("NaN"),
        Raw("Infinity"),
        Raw("1E400"),
        Raw("-0"),
        Raw("1e-400"),
    ]
)
ODD_STRINGS = st.sampled_from(
    ["", " ", "1500.50", "500", "9", "-1", "1e309", "NaN", "true", "a}b", "{u}", "\u0000", "美妆"]
) | st.text(max_size=8)
SCALARS = (
    st.none()
    | st.booleans()
    | EDGE_NUMBERS
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | ODD_STRINGS
)
JSON_VALUES = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(
            st.sampled_from(["x", "w", "v", ""]) | st.text(max_size=3), inner, max_size=3
        )
    ),
    max_leaves=8,
)
TYPES = st.sampled_from(
    ["purchase", "refund", "points_earned", "survey", "coupon_issued", "coupon_redeemed"]
    + ["x_event"] * 4  # the custom type, whose props no contract bounds
)
PROP_NAMES = st.sampled_from(
    ["amount", "points", "score", "v", "w", "category", "coupon_id", "expires_at"]
)


# The numbers whose sums overflow: drawn often, as two of them must meet in one profile.
BIG_NUMBERS = st.sampled_from([LARGEST, -LARGEST, 1e308, -1e308, MAX_INTEGER, MIN_INTEGER])
AMOUNTS = (
    st.floats(min_value=0, max_value=MAX_AMOUNT)
    | st.integers(0, MAX_AMOUNT)
    | st.sampled_from([0, 1e-300, MAX_AMOUNT, "1500.50", "500", " 9 ", "1e3", "0"])
)
VALID_PROPS: dict[str, st.SearchStrategy[dict[str, object]]] = {
    "purchase": st.fixed_dictionaries({"amount": AMOUNTS, "category": ODD_STRINGS}),
    "refund": st.fixed_dictionaries({"amount": AMOUNTS}),
    "points_earned": st.fixed_dictionaries({"points": AMOUNTS}),
    "survey": st.fixed_dictionaries({"score": st.integers(0, 10) | st.sampled_from(["9", "0"])}),
    "coupon_issued": st.fixed_dictionaries(
        {"coupon_id": st.sampled_from(["c1", "c2"]), "expires_at": st.integers(TS, TS + 9 * DAY_MS)}
    ),
    "coupon_redeemed": st.fixed_dictionaries({"coupon_id": st.sampled_from(["c1", "c2"])}),
    "x_event": st.fixed_dictionaries(
        {"v": st.one_of(BIG_NUMBERS, BIG_NUMBERS, EDGE_NUMBERS, SCALARS), "w": JSON_VALUES}
    ),
}


@st.composite
def generated_lines(draw: st.DrawFn) -> list[str]:
    """Mostly valid events of a few users, with values at the edges, and now and then a
    prop, an id or a time replaced by any JSON value."""
    lines = []
    for n in range(draw(st.integers(1, 12))):
        type_ = draw(TYPES)
        props = draw(VALID_PROPS[type_])
        if draw(st.integers(0, 3)) == 0:
            props |= draw(st.dictionaries(PROP_NAMES, JSON_VALUES, max_size=2))
        ts: object = TS + draw(st.integers(0, 20)) * DAY_MS // 2
        if draw(st.integers(0, 9)) == 0:
            ts = draw(SCALARS)
        user: object = draw(st.sampled_from(["u1", "u1", "u1", "用户"]))
        if draw(st.integers(0, 9)) == 0:
            user = draw(ODD_STRINGS)
        event = {
            "event_id": "e0" if draw(st.integers(0, 9)) == 0 else f"e{n}",  # a retry
            "user_id": user,
            "type": type_,
            "ts": ts,
            "props": props,
        }
        lines.append(raw_json(event))
    return lines


@settings(max_examples=300, deadline=None)
@given(JSON_VALUES, PROP_NAMES, TYPES)
def test_decode_of_any_json_value_in_any_prop_raises_only_event_errors(
    value: object, name: str, type_: str
) -> None:
    text = line(type_, **{name: value})
    try:
        event = decode_event(text)
    except EventError as error:
        assert error.reason in REASONS
        return
    # What decodes is what the store can write, and reads back the same.
    data = event.model_dump()
    assert orjson.loads(orjson.dumps(data)) == data


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(generated_lines())
@example(  # the issue's cases: a sum over 1e308, numeric text, a time and an integer too big
    [
        line("x_event", v=1e308),
        line("x_event", ts=TS + 1, v=1e308),
        line("x_event", ts=TS + 2, v=-LARGEST),
        line(ts=TS + 3, amount="1500.50"),
        line("x_event", ts=Raw("1e309"), v=1),
        line("x_event", ts=TS + 4, v=2**64),
    ]
)
def test_generated_events_give_the_same_profiles_on_each_store_as_in_memory(
    copying_store_kind: StoreKind, custom_rules: RuleSet, lines: list[str]
) -> None:
    # Over every copying store of the contract (tests/unit/test_store_contract.py): Redis, a
    # Redis Cluster, and the memory store with copies (JSON round trips, as Redis does).
    memory, on_redis = MemoryStore(), copying_store_kind.emptied()
    in_memory = list(Replay(Engine(custom_rules), memory).run(lines))
    through_redis = list(Replay(Engine(custom_rules), on_redis).run(lines))

    def comparable(items: list[Any]) -> list[Any]:
        return [item if isinstance(item, BadLine) else output_to_dict(item) for item in items]

    assert comparable(through_redis) == comparable(in_memory)
    for item in in_memory:
        if isinstance(item, BadLine):
            assert item.reason in REASONS
        else:
            orjson.dumps(output_to_dict(item))  # every output can be sent
    users = sorted(memory.users())
    assert sorted(on_redis.users()) == users
    stored = copying_store_kind.open().load(users)  # on Redis a new store: read back
    for user in users:
        want = memory.get(user)
        assert want is not None
        assert stored[user].to_dict() == want.to_dict()
        for value in Engine(custom_rules).aggregate_values(stored[user]).values():
            assert not isinstance(value, float) or math.isfinite(value)


def test_the_json_schema_says_numeric_props_take_numeric_text() -> None:
    props = event_json_schema()["$defs"]
    amount = props["PurchaseProps"]["properties"]["amount"]
    score = props["SurveyProps"]["properties"]["score"]
    for good in (1500.5, "1500.50", " 12 ", 0):
        jsonschema.validate(good, amount)
    for bad in (True, "NaN", "lots", -1, MAX_AMOUNT + 1):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, amount)
    jsonschema.validate("9", score)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(11, score)


def test_a_replay_on_a_copying_store_leaves_out_an_event_the_engine_fails_on_as_the_worker_does(
    copying_store_kind: StoreKind,
) -> None:
    lines = [
        line(amount=100),
        line("refund", ts=TS + 1, amount=100),
        line("refund", ts=TS + 2, user="u2", amount=5),  # a new user's only event
        line(ts=TS + 3, amount=50),
    ]
    store = copying_store_kind.open()
    got = list(Replay(FailsOnRefunds(RULES), store).run(lines))
    bad = [(item.line, item.reason) for item in got if isinstance(item, BadLine)]
    assert bad == [(2, "engine_error"), (3, "engine_error")]
    without = MemoryStore()
    want = list(Replay(Engine(RULES), without).run([lines[0], lines[3]]))
    assert [output_to_dict(o) for o in got if not isinstance(o, BadLine)] == [
        output_to_dict(o) for o in want if not isinstance(o, BadLine)
    ]
    assert sorted(store.users()) == ["u1"]
    expected = without.get("u1")
    assert expected is not None
    assert store.load(["u1"])["u1"].to_dict() == expected.to_dict()


def test_the_worker_exports_skipped_values_per_aggregate(custom_rules: RuleSet) -> None:
    pipeline = Pipeline(Engine(custom_rules), MemoryStore(copies=True), MAX_EVENT_BYTES)
    records = [
        Record(0, n, line("x_event", v=v).encode(), b"u1") for n, v in enumerate(["a", "b", 1])
    ]
    batch = pipeline.prepare(0, records)
    sample = "tagger_aggregate_skipped_values_total"
    before = REGISTRY.get_sample_value(sample, {"aggregate": "v_avg"}) or 0.0
    count_batch("behaviour-events", [SimpleNamespace(timestamp=0.0)] * 3, batch)  # type: ignore[list-item]
    assert REGISTRY.get_sample_value(sample, {"aggregate": "v_avg"}) == before + 2


def test_a_profile_whose_sums_an_older_version_stored_as_null_can_be_read_and_updated() -> None:
    # Before sums saturated, 1e308 + 1e308 was stored in Redis as null: such a profile
    # could no longer be read (GET /profiles answered 500) nor take a purchase.
    engine = Engine(RULES)
    profile = engine.new_profile("u1")
    engine.apply(profile, decode_event(line(amount=10)))
    aggs = RULES.aggregates
    profile.aggs[aggs["avg_order"].key] = [None, 2]
    profile.aggs[aggs["spend_total"].key] = None
    stored = Profile.from_dict(orjson.loads(orjson.dumps(profile.to_dict())))
    assert engine.describe(stored)["aggregates"]["avg_order"] == 0.0
    engine.apply(stored, decode_event(line(ts=TS + 1, amount=30)))
    assert engine.aggregate_values(stored)["avg_order"] == 10.0
