"""Time in rules: `now`, timestamp constants and params, date functions in the rule set's
time zone, the `timezone:` key, and day buckets that follow local midnight."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from taggers.durations import DAY_MS, HOUR_MS
from taggers.engine import Engine
from taggers.events import to_epoch_ms
from taggers.expr import DURATION, TIMESTAMP, compile_expression
from taggers.localdays import LocalDays, local_time
from taggers.outputs import Alert, TagChange
from taggers.ruleset import RuleSet, load_rules
from taggers.yaml_source import RuleSetError
from tests.support.core import make_event

ZONES = (
    "UTC",
    "Asia/Shanghai",
    "Asia/Kolkata",
    "America/New_York",
    "Europe/London",
    "Australia/Lord_Howe",  # a half-hour daylight saving
    "America/Santiago",  # changes at midnight: some days start at 01:00
    "Pacific/Apia",  # skipped 2011-12-30 altogether
    "Asia/Tehran",
    "Etc/GMT-8",
)


def rules(tmp_path: Path, text: str) -> RuleSet:
    (tmp_path / "rules.yaml").write_text(text, encoding="utf-8")
    return load_rules(tmp_path)


def problems(tmp_path: Path, **files: str) -> list[str]:
    for name, text in files.items():
        (tmp_path / f"{name}.yaml").write_text(text, encoding="utf-8")
    with pytest.raises(RuleSetError) as caught:
        load_rules(tmp_path)
    return [str(p).replace(str(tmp_path) + "/", "") for p in caught.value.problems]


# --- now -------------------------------------------------------------------------------------


def test_now_is_the_events_time_and_the_deadlines_time(tmp_path: Path) -> None:
    """A tag reading `now` is decided at each step as of its time; `now` in a timer's
    `after` is read at each step too (here: wait until a fixed day, at least one day)."""
    engine = Engine(
        rules(
            tmp_path,
            """\
params:
  campaign_start: 2026-01-05T00:00:00Z
aggregates:
  views: {count: view}
tags:
  campaign_on: {when: "views >= 1 && now >= campaign_start"}
alerts:
  wake_up:
    since: view
    after: "max(1d, timestamp('2026-01-10T00:00:00Z') - now)"
""",
        ),
    )
    profile = engine.new_profile("u1")
    assert engine.apply(profile, make_event("view", day=1)) == []
    assert profile.due == to_epoch_ms("2026-01-10T00:00:00Z")  # 9 days after the view
    changes = engine.apply(profile, make_event("view", day=6))
    assert [(c.tag, c.at) for c in changes if isinstance(c, TagChange)] == [
        ("campaign_on", to_epoch_ms("2026-01-07T00:00:00Z"))
    ]
    fired = engine.advance(profile, to_epoch_ms("2026-02-01T00:00:00Z"))
    assert [(a.name, a.at) for a in fired if isinstance(a, Alert)] == [
        ("wake_up", to_epoch_ms("2026-01-10T00:00:00Z"))
    ]


def test_now_is_a_name_of_the_language(tmp_path: Path) -> None:
    found = problems(tmp_path, a="params:\n  now: 3\n")
    assert found == [
        "a.yaml:2:3: 'now' is a name of the language (hint: `now` is the step's time;"
        " give this one another name)"
    ]


# --- timestamps --------------------------------------------------------------------------------


def test_timestamp_params_quoted_or_not_are_the_same_instant(tmp_path: Path) -> None:
    loaded = rules(
        tmp_path,
        """\
params:
  unquoted: 2026-06-18T00:00:00+08:00
  quoted: "2026-06-18T00:00:00+08:00"
  zulu: 2026-06-17T16:00:00Z
  text: "a 2026 campaign"
""",
    )
    assert loaded.params["unquoted"] == loaded.params["quoted"] == loaded.params["zulu"]
    assert loaded.params["quoted"] == to_epoch_ms("2026-06-17T16:00:00Z")
    assert {n: loaded.types[n] for n in ("unquoted", "quoted")} == {
        "unquoted": TIMESTAMP,
        "quoted": TIMESTAMP,
    }
    assert loaded.params["text"] == "a 2026 campaign"


@pytest.mark.parametrize("value", ["2026-06-18T00:00:00", '"2026-06-18T00:00:00"'])
def test_a_timestamp_param_without_an_offset_is_a_problem(tmp_path: Path, value: str) -> None:
    (found,) = problems(tmp_path, a=f"params:\n  start: {value}\n")
    assert found.startswith("a.yaml:2:10: ")
    assert "offset" in found or "time zone" in found


def test_a_bad_timestamp_literal_is_a_compile_error_where_it_is(tmp_path: Path) -> None:
    (found,) = problems(
        tmp_path,
        a="aggregates:\n  views: {count: view}\ntags:\n"
        "  t: {when: \"views > 0 && now > timestamp('2026-13-01T00:00:00Z')\"}\n",
    )
    assert found.startswith("a.yaml:4:43: not an ISO-8601 timestamp: '2026-13-01T00:00:00Z'")


def test_timestamp_arithmetic_types_and_values() -> None:
    names = {"now": TIMESTAMP}
    start = compile_expression("timestamp('2026-06-18T00:00:00+08:00')", names)
    assert start.type == TIMESTAMP
    gap = compile_expression("now - timestamp('2026-06-18T00:00:00+08:00')", names)
    assert gap.type == DURATION
    assert gap.evaluate({"now": start.evaluate({}) + DAY_MS}) == DAY_MS
    later = compile_expression("now + 1d - 2h", names)
    assert later.type == TIMESTAMP and later.evaluate({"now": 0}) == DAY_MS - 2 * HOUR_MS
    assert compile_expression("now - 3d < now", names).evaluate({"now": 5}) is True


# --- date functions ----------------------------------------------------------------------------


def test_date_functions_read_the_local_date_of_the_rule_sets_zone() -> None:
    instant = to_epoch_ms("2026-06-17T16:30:00Z")  # Thursday 00:30 in Shanghai
    source = (
        "[string(day_of_week(now)), string(month(now)), string(day(now)),"
        " string(hour(now)), date(now)]"
    )
    shanghai = compile_expression(source, {"now": TIMESTAMP}, zone=ZoneInfo("Asia/Shanghai"))
    utc = compile_expression(source, {"now": TIMESTAMP})
    assert list(shanghai.evaluate({"now": instant})) == ["4", "6", "18", "0", "2026-06-18"]
    assert list(utc.evaluate({"now": instant})) == ["3", "6", "17", "16", "2026-06-17"]


def test_days_between_counts_local_calendar_days() -> None:
    names = {"a": TIMESTAMP, "b": TIMESTAMP}
    between = compile_expression("days_between(a, b)", names, zone=ZoneInfo("Asia/Shanghai"))
    late = to_epoch_ms("2026-06-17T15:59:00Z")  # 23:59 local
    assert between.evaluate({"a": late, "b": late + 2 * 60_000}) == 1  # past midnight
    assert between.evaluate({"a": late + 2 * 60_000, "b": late}) == -1
    assert between.evaluate({"a": late, "b": None}) is None


def test_date_functions_take_timestamps_only(tmp_path: Path) -> None:
    (found,) = problems(
        tmp_path, a='aggregates:\n  views: {count: view}\ntags:\n  t: {when: "month(views) == 6"}\n'
    )
    assert found.startswith("a.yaml:4:20: month needs a timestamp, not an int")


# --- the rule set's time zone ----------------------------------------------------------------


def test_the_default_zone_is_utc_and_a_file_sets_another(tmp_path: Path) -> None:
    assert rules(tmp_path, "params: {x: 1}\n").timezone == "UTC"
    assert rules(tmp_path, "timezone: Asia/Shanghai\n").timezone == "Asia/Shanghai"


def test_an_unknown_zone_is_a_problem_with_a_hint(tmp_path: Path) -> None:
    assert problems(tmp_path, a="timezone: Asia/Shangai\n") == [
        "a.yaml:1:11: unknown time zone 'Asia/Shangai' (hint: did you mean 'Asia/Shanghai'?)"
    ]


def test_two_files_that_disagree_on_the_zone_are_a_problem(tmp_path: Path) -> None:
    found = problems(tmp_path, a="timezone: Asia/Shanghai\n", b="timezone: UTC\n")
    assert found == [
        "b.yaml:1:11: timezone 'UTC' disagrees with 'Asia/Shanghai' (hint: a rule set has"
        " one time zone; it is set at a.yaml:1:11)"
    ]
    (tmp_path / "b.yaml").write_text("timezone: Asia/Shanghai\n", encoding="utf-8")
    assert load_rules(tmp_path).timezone == "Asia/Shanghai"  # agreeing files are fine


# --- local days --------------------------------------------------------------------------------

_INSTANTS = st.integers(to_epoch_ms("2000-01-01T00:00:00Z"), to_epoch_ms("2099-12-31T00:00:00Z"))


@settings(max_examples=300, deadline=None)
@given(zone_name=st.sampled_from(ZONES), ts=_INSTANTS)
def test_local_days_equal_zoneinfos_local_dates(zone_name: str, ts: int) -> None:
    zone = ZoneInfo(zone_name)
    days = LocalDays(zone, zone_name)
    epoch = datetime(1970, 1, 1).date().toordinal()
    day = days.day_of(ts)
    expected = (datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=ts)).astimezone(zone)
    assert day == expected.date().toordinal() - epoch
    start, end = days.start_of(day), days.start_of(day + 1)
    assert start <= ts < end
    assert days.day_of(start) == day and days.day_of(start - 1) < day
    assert days.day_of(ts) == day  # again, through the remembered day
    first = local_time(start, zone)
    assert first.date().toordinal() - epoch == day
    assert (first.hour, first.minute) <= (1, 0)  # midnight, or the end of a skipped hour


def test_a_one_day_window_empties_at_local_midnight(tmp_path: Path) -> None:
    engine = Engine(
        rules(
            tmp_path,
            "timezone: Asia/Shanghai\naggregates:\n  views_1d: {count: view, window: 1d}\n"
            'tags:\n  viewed_today: {when: "views_1d >= 1"}\n',
        )
    )
    profile = engine.new_profile("u1")
    late = to_epoch_ms("2026-03-01T23:30:00+08:00")
    event = make_event("view", day=(late - to_epoch_ms("2026-01-01T00:00:00Z")) / DAY_MS)
    assert [c.tag for c in engine.apply(profile, event) if isinstance(c, TagChange)] == [
        "viewed_today"
    ]
    midnight = to_epoch_ms("2026-03-02T00:00:00+08:00")
    assert profile.due == midnight  # not UTC midnight, eight hours later
    (removed,) = engine.advance(profile, midnight)
    assert isinstance(removed, TagChange) and removed.at == midnight and removed.op == "remove"


def test_a_window_in_a_zone_with_daylight_saving_follows_its_midnights(tmp_path: Path) -> None:
    engine = Engine(
        rules(
            tmp_path,
            "timezone: America/New_York\naggregates:\n  views_2d: {count: view, window: 2d}\n"
            'tags:\n  viewed: {when: "views_2d >= 1"}\n',
        )
    )
    profile = engine.new_profile("u1")
    at = to_epoch_ms("2026-03-07T12:00:00-05:00")  # the clocks go forward on the 8th
    engine.apply(
        profile, make_event("view", day=(at - to_epoch_ms("2026-01-01T00:00:00Z")) / DAY_MS)
    )
    assert profile.due == to_epoch_ms("2026-03-09T00:00:00-04:00")  # a 23-hour day between
