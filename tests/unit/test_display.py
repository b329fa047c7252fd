"""Values as people and machines read them (taggers/display.py): each type's form, over
generated values, and the same forms in replay (text and JSON), profiles and rule tests."""

from __future__ import annotations

import re
from datetime import UTC
from pathlib import Path
from zoneinfo import ZoneInfo

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from streams.cli import main
from taggers.display import describe_output, format_value, format_values, json_value
from taggers.durations import DAY_MS, HOUR_MS, MINUTE_MS, SECOND_MS, UNIT_MS, format_duration
from taggers.engine import Engine
from taggers.events import to_epoch_ms
from taggers.expr import BOOL, DOUBLE, DURATION, DYN, INT, STRING, TIMESTAMP, Type
from taggers.expr.types import list_of, map_of
from taggers.replay import Replay
from taggers.ruleset import load_rules
from taggers.store import MemoryStore
from tests.support.values import EVENTS, RULES

MIN_MS, MAX_MS = to_epoch_ms("2000-01-01T00:00:00Z"), to_epoch_ms("2099-12-31T23:59:59Z")
times = st.integers(MIN_MS, MAX_MS)
zones = st.sampled_from([UTC, ZoneInfo("Asia/Shanghai"), ZoneInfo("America/St_Johns")])
money = st.floats(-1e9, 1e9, allow_nan=False)
durations = st.integers(0, 36_500 * DAY_MS)
PART = re.compile(r"(\d+(?:\.\d+)?)(ms|d|h|m|s)")


@given(times, zones)
def test_a_time_is_iso_in_its_zone_and_parses_back_to_the_same_ms(ms: int, tz: ZoneInfo) -> None:
    shown = format_value(ms, TIMESTAMP, tz)
    assert to_epoch_ms(shown) == ms
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}(Z|[+-]\d\d:\d\d)", shown)


@given(times, zones)
def test_a_times_json_form_is_utc_iso_and_shows_as_the_raw_time(ms: int, tz: ZoneInfo) -> None:
    sent = json_value(ms, TIMESTAMP)
    assert isinstance(sent, str) and sent.endswith("Z") and to_epoch_ms(sent) == ms
    # A record read off a topic shows as the engine's own value does.
    assert format_value(sent, TIMESTAMP, tz) == format_value(ms, TIMESTAMP, tz)


def test_a_time_in_shanghai_has_its_offset() -> None:
    ms = to_epoch_ms("2026-01-05T14:48:26.763Z")
    assert format_value(ms, TIMESTAMP, ZoneInfo("Asia/Shanghai")) == "2026-01-05T22:48:26.763+08:00"
    assert format_value(ms, TIMESTAMP) == "2026-01-05T14:48:26.763Z"


def _parts(text: str) -> list[tuple[float, str]]:
    assert re.fullmatch(r"(\d+(\.\d+)?(ms|d|h|m|s))( \d+(ms|d|h|m|s))?", text), text
    return [(float(n), unit) for n, unit in PART.findall(text)]


@given(durations)
def test_a_duration_shows_its_two_largest_units_and_drops_less_than_the_smaller(ms: int) -> None:
    shown = format_duration(ms)
    parts = _parts(shown)
    total = sum(round(n * UNIT_MS[unit]) for n, unit in parts)
    smallest = UNIT_MS[parts[-1][1]]
    assert total <= ms < total + max(smallest, 1)
    if ms >= DAY_MS:
        assert parts[0][1] == "d" and all(unit in ("d", "h") for _, unit in parts)
    elif ms >= HOUR_MS:  # under a day: hours and minutes
        assert parts[0][1] == "h" and all(unit in ("h", "m") for _, unit in parts)
    elif ms >= MINUTE_MS:
        assert parts[0][1] == "m"
    assert format_value(ms, DURATION) == shown
    assert json_value(ms, DURATION) == ms  # whole milliseconds in JSON


@pytest.mark.parametrize(
    ("ms", "shown"),
    [
        (492_642_765, "5d 16h"),  # the issue's purchase_gap
        (90 * DAY_MS, "90d"),
        (36 * HOUR_MS, "1d 12h"),
        (16 * HOUR_MS + 50 * MINUTE_MS + 42_765, "16h 50m"),
        (12 * HOUR_MS, "12h"),
        (50 * MINUTE_MS + 42 * SECOND_MS, "50m 42s"),
        (1_500, "1.5s"),
        (765, "765ms"),
        (0, "0ms"),
        (-1_500, "-1.5s"),
    ],
)
def test_durations_people_read(ms: int, shown: str) -> None:
    assert format_duration(ms) == shown


@given(money)
def test_a_double_is_rounded_to_cents_within_half_a_cent(value: float) -> None:
    shown = format_value(value, DOUBLE)
    assert re.fullmatch(r"-?\d+(\.\d{1,2})?", shown), shown
    assert abs(float(shown) - value) <= 0.005 + 1e-9 * abs(value)
    sent = json_value(value, DOUBLE)
    assert isinstance(sent, float) and abs(sent - value) <= 0.005 + 1e-9 * abs(value)
    assert format_value(sent, DOUBLE) == shown  # the JSON form shows the same


def test_the_issues_values_read_as_people_write_them() -> None:
    assert format_value(845.7800000000001, DOUBLE) == "845.78"
    assert json_value(845.7800000000001, DOUBLE) == 845.78
    assert format_value(-0.001, DOUBLE) == "0"
    assert format_value(None, TIMESTAMP) == "null"
    types = {"member_joined_at": TIMESTAMP, "points": DOUBLE}
    assert format_values({"member_joined_at": None, "points": 193.0}, types) == (
        "member_joined_at=null, points=193"
    )


TYPES = [INT, DOUBLE, BOOL, STRING, DURATION, TIMESTAMP, DYN, None]


@given(st.sampled_from(TYPES))
def test_null_is_null_whatever_the_type(type_: Type | None) -> None:
    assert format_value(None, type_) == "null"
    assert json_value(None, type_) is None


def test_booleans_lists_and_maps_read_item_by_item() -> None:
    assert format_value(True, BOOL) == "true" and format_value(False, DYN) == "false"
    assert format_value([0.1 + 0.2, None], list_of(DOUBLE)) == "[0.3, null]"
    gaps = {"美妆": 2 * DAY_MS, "食品": 3 * HOUR_MS}
    assert format_value(gaps, map_of(DURATION)) == "{美妆: 2d, 食品: 3h}"
    assert json_value({"a": 1.004 + 1e-12, "b": 2}, map_of(DOUBLE)) == {"a": 1.0, "b": 2}
    assert json_value([MIN_MS], list_of(TIMESTAMP)) == ["2000-01-01T00:00:00.000Z"]


values = st.recursive(
    st.none() | st.booleans() | st.integers(MIN_MS, MAX_MS) | money | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner),
    max_leaves=8,
)


@given(values, st.sampled_from(TYPES))
def test_the_json_form_of_a_json_form_is_itself(value: object, type_: Type | None) -> None:
    once = json_value(value, type_)
    assert json_value(once, type_) == once
    assert format_value(once, type_) == format_value(value, type_)


# --- the same forms in replay (text and JSON) and in rule tests ----------------------------


@pytest.fixture
def example(tmp_path: Path) -> tuple[Path, Path]:
    """A rule directory with a value of each type, and the events above."""
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "rules.yaml").write_text(RULES, encoding="utf-8")
    (tmp_path / "events.jsonl").write_text(EVENTS, encoding="utf-8")
    return tmp_path / "rules", tmp_path / "events.jsonl"


def _replay(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    assert main(["replay", *argv, "--now", "2026-02-01T00:00:00Z"]) == 0
    return capsys.readouterr().out


def test_replay_shows_values_as_people_read_them(
    example: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    rules, events = example
    lines = _replay(capsys, str(events), "--rules", str(rules)).splitlines()
    assert "2026-01-01T00:00:00.000Z  u1  tag +buyer  because joined=null, spend=0.1" in lines
    assert (
        "2026-01-06T16:50:42.765Z  u1  ALERT second_order [low]  with spend=0.3, gap=5d 16h,"
        " last_at=2026-01-06T16:50:42.765Z, joined=null  because orders=2"
    ) in lines
    assert "2026-01-06T16:50:42.765Z  u1  tag +regular  because gap=5d 16h" in lines
    assert "None" not in "\n".join(lines) and "0000000" not in "\n".join(lines)


def test_replay_json_carries_iso_times_cents_and_whole_ms(
    example: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    rules, events = example
    records = [
        orjson.loads(line)
        for line in _replay(capsys, str(events), "--rules", str(rules), "--json").splitlines()
    ]
    (alert,) = [r for r in records if r["kind"] == "alert"]
    assert alert["details"] == {
        "spend": 0.3,
        "gap": 492_642_765,
        "last_at": "2026-01-06T16:50:42.765Z",
        "joined": None,
    }
    (regular,) = [r for r in records if r.get("tag") == "regular"]
    assert regular["reason"]["values"] == {"gap": 492_642_765}
    (profile,) = [r for r in records if r["kind"] == "profile"]
    assert profile["aggregates"] == {
        "orders": 2,
        "spend": 0.3,
        "last_at": "2026-01-06T16:50:42.765Z",
        "gap": 492_642_765,
        "joined": None,
    }


def test_the_profile_view_is_in_the_json_form(example: tuple[Path, Path]) -> None:
    rules, events = example
    engine = Engine(load_rules(rules))
    store = MemoryStore()
    list(Replay(engine, store).run(events.read_text(encoding="utf-8").splitlines()))
    profile = store.get("u1")
    assert profile is not None
    view = engine.describe(profile)
    assert view["aggregates"]["last_at"] == "2026-01-06T16:50:42.765Z"
    assert view["aggregates"]["spend"] == 0.3
    assert view["tags"]["buyer"]["values"] == {"joined": None, "spend": 0.1}
    # A profile stored before values had a JSON form shows in it all the same.
    profile.tags["regular"]["values"] = {"gap": 492_642_765.0}
    assert engine.describe(profile)["tags"]["regular"]["values"] == {"gap": 492_642_765}


def test_a_failing_rule_test_shows_values_as_people_read_them(
    example: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    rules, _ = example
    (rules / "tests").mkdir()
    (rules / "tests" / "values.yaml").write_text(
        "tests:\n"
        "  - name: values\n"
        "    events:\n"
        "      - {type: purchase, at: +0d, props: {amount: 0.1}}\n"
        "      - {type: purchase, at: +2d, props: {amount: 0.2}}\n"
        "    expect: {values: {gap: 1000, joined: 1767225600000, spend: 1.0}}\n",
        encoding="utf-8",
    )
    assert main(["rules", "test", str(rules)]) == 1
    out = capsys.readouterr().out
    assert "expected: 1000 (1s)\n    actual:   172800000.0 (2d)" in out
    assert "expected: 1767225600000 (2026-01-01T00:00:00.000Z)\n    actual:   null" in out
    assert "expected: 1.0 (1)\n    actual:   0.30000000000000004 (0.3)" in out


def test_an_output_line_shows_its_times_in_the_zone_it_is_given() -> None:
    record = {
        "kind": "alert",
        "user_id": "u1",
        "name": "coupon_unused",
        "severity": "low",
        "display": None,
        "details": {"key": "c1", "due": "2026-01-03T16:30:00.000Z", "gap": 36 * HOUR_MS},
        "at": "2026-01-01T16:30:00.000Z",
        "reason": {"values": {"last_at": "2026-01-01T00:00:00.000Z"}},
    }
    types = {"gap": DURATION, "last_at": TIMESTAMP}
    assert describe_output(record, types, ZoneInfo("Asia/Shanghai")) == (
        "2026-01-02T00:30:00.000+08:00  u1  ALERT coupon_unused [low]"
        "  with key=c1, due=2026-01-04T00:30:00.000+08:00, gap=1d 12h"
        "  because last_at=2026-01-01T08:00:00.000+08:00"
    )
